"""A Flower workshop on a classroom network, encrypted and with only the class's own SuperNodes.

1. On the server laptop (say 192.168.1.10), once: the keys. A certificate authority (CA), the SuperLink's TLS
   certificate for that address (plus 127.0.0.1 and localhost, which Flower's own SuperExec uses), and one
   key pair per bank laptop for SuperNode authentication:

       python apps/flower_bank/classroom.py keys --host 192.168.1.10 --supernodes 4 --out classroom

2. Give bank laptop k the files ``classroom/ca.crt`` and ``classroom/supernode-k.key`` (its private key: only
   that laptop gets it). Nothing else leaves the server laptop; ``ca.key`` never does.
3. On the server laptop: start the SuperLink with TLS and SuperNode authentication, and register the public
   keys ``classroom/supernode-*.pub`` (a SuperNode with any other key is refused). It runs until Ctrl-C:

       python apps/flower_bank/classroom.py superlink --keys classroom --host 192.168.1.10 --port 9100

4. On bank laptop k (0..3):

       python apps/flower_bank/classroom.py supernode --keys classroom --superlink 192.168.1.10:9100 \\
           --partition-id k --num-partitions 4

5. On the server laptop: ``flwr run apps/flower_bank classroom --stream`` (step 3 wrote the ``classroom``
   connection, with the CA, into ``$FLWR_HOME/config.toml``).

Keys use the ``cryptography`` package (a dependency of flwr): the CA and the server key are EC P-256, the
SuperNode keys EC P-384 in OpenSSH format (what ``flower-supernode --auth-supernode-private-key`` and
``flwr supernode register`` read). Explained in 04, section "Part 3: the same strategy on Flower".
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CONNECTION = "classroom"
VALID_DAYS = 30  # a workshop's keys: long enough for the course, short enough not to linger


def _write(path: Path, data: bytes, private: bool = False) -> Path:
    path.write_bytes(data)
    if private:
        path.chmod(0o600)
    return path


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def make_keys(out: Path, hosts: list[str], n_supernodes: int) -> dict[str, Path]:
    """Write the CA, the SuperLink's certificate for ``hosts`` (+ 127.0.0.1, localhost) and ``n_supernodes``
    SuperNode key pairs into ``out``. Refuses to overwrite an existing set (its public keys may be registered)."""
    if not hosts:
        raise ValueError("give the SuperLink's address with --host (the IP or name the bank laptops will use)")
    if n_supernodes < 1:
        raise ValueError(f"--supernodes must be at least 1, got {n_supernodes}")
    out.mkdir(parents=True, exist_ok=True)
    if (out / "ca.crt").exists():
        raise FileExistsError(f"{out / 'ca.crt'} exists: keep that set, or choose another --out")
    now = dt.datetime.now(dt.timezone.utc)
    valid = dict(not_valid_before=now - dt.timedelta(minutes=5), not_valid_after=now + dt.timedelta(days=VALID_DAYS))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "learnstrat classroom CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(valid["not_valid_before"])
          .not_valid_after(valid["not_valid_after"])
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    names = list(dict.fromkeys([*hosts, "127.0.0.1", "localhost"]))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
              .issuer_name(ca_name).public_key(server_key.public_key())
              .serial_number(x509.random_serial_number()).not_valid_before(valid["not_valid_before"])
              .not_valid_after(valid["not_valid_after"])
              .add_extension(x509.SubjectAlternativeName([_san(h) for h in names]), critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    files = {"ca.crt": _write(out / "ca.crt", ca.public_bytes(pem)),
             "ca.key": _write(out / "ca.key", _pem_key(ca_key), private=True),
             "server.pem": _write(out / "server.pem", server.public_bytes(pem)),
             "server.key": _write(out / "server.key", _pem_key(server_key), private=True)}
    for k in range(n_supernodes):
        files.update(make_supernode_key(out, f"supernode-{k}"))
    return files


def make_supernode_key(out: Path, name: str) -> dict[str, Path]:
    """One SuperNode key pair: ``<name>.key`` (OpenSSH private key, mode 600) and ``<name>.pub``."""
    key = ec.generate_private_key(ec.SECP384R1())
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return {f"{name}.key": _write(out / f"{name}.key", private, private=True),
            f"{name}.pub": _write(out / f"{name}.pub", public + b"\n")}


def superlink_command(keys: Path, host: str, port: int) -> list[str]:
    """flower-superlink with TLS and SuperNode authentication on ``host:port`` (Fleet, Control, Runtime APIs)."""
    return ["flower-superlink", "--ssl-ca-certfile", str(keys / "ca.crt"), "--ssl-certfile", str(keys / "server.pem"),
            "--ssl-keyfile", str(keys / "server.key"), "--enable-supernode-auth",
            "--disable-runtime-dependency-installation", "--host", host, "--port", str(port)]


def supernode_command(keys: Path, superlink: str, partition_id: int, num_partitions: int, port: int,
                      key_name: str | None = None) -> list[str]:
    """flower-supernode that checks the SuperLink's certificate against the CA and signs in with its key."""
    key = keys / f"{key_name or f'supernode-{partition_id}'}.key"
    return ["flower-supernode", "--root-certificates", str(keys / "ca.crt"), "--auth-supernode-private-key",
            str(key), "--superlink", superlink, "--port", str(port),
            "--node-config", f"partition-id={partition_id} num-partitions={num_partitions}"]


def connection_toml(address: str, keys: Path, name: str = CONNECTION) -> str:
    """A ``$FLWR_HOME/config.toml`` naming the SuperLink at ``address``, trusted through the classroom CA."""
    return (f'[superlink]\ndefault = "{name}"\n\n[superlink.{name}]\naddress = "{address}"\n'
            f'root-certificates = "{(keys / "ca.crt").resolve()}"\n')


def wait_until_healthy(address: str, ca: Path, timeout_s: float, alive=lambda: True) -> None:
    """Poll the SuperLink's /health over TLS, verified with the classroom CA, until it answers."""
    context = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"https://{address}/health", context=context, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if not alive():
            raise RuntimeError("the SuperLink exited before it answered on /health")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the SuperLink at {address} did not answer on /health within {timeout_s:.0f} s")
        time.sleep(0.5)


def register_supernodes(public_keys: list[Path], env: dict[str, str], connection: str = CONNECTION,
                        prefix: list[str] = ()) -> None:
    """``flwr supernode register`` each public key with the SuperLink of ``connection``."""
    for key in public_keys:
        run = subprocess.run([*prefix, "flwr", "supernode", "register", str(key), connection, "--name", key.stem],
                             env=env, capture_output=True, text=True, timeout=120)
        if run.returncode != 0:
            raise RuntimeError(f"registering {key.name} failed:\n{run.stdout[-2000:]}{run.stderr[-2000:]}")


def flower_env() -> dict[str, str]:
    return {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
            "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}


def _superlink(args: argparse.Namespace) -> int:
    keys = args.keys.resolve()
    env = flower_env()
    flwr_home = Path(env.get("FLWR_HOME", Path.home() / ".flwr"))
    flwr_home.mkdir(parents=True, exist_ok=True)
    address = f"{args.host}:{args.port}"
    (flwr_home / "config.toml").write_text(connection_toml(address, keys))
    print(f"wrote the '{CONNECTION}' connection to {flwr_home / 'config.toml'}", flush=True)
    proc = subprocess.Popen(superlink_command(keys, args.host, args.port), env=env)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `kill` too stops the SuperLink (finally below)
    try:
        wait_until_healthy(address, keys / "ca.crt", 120, alive=lambda: proc.poll() is None)
        public_keys = sorted(keys.glob("supernode-*.pub"))
        register_supernodes(public_keys, env)
        print(f"SuperLink on {address} with TLS; registered {len(public_keys)} SuperNode keys: "
              f"{', '.join(k.stem for k in public_keys)}. Ctrl-C stops it.", flush=True)
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    keys = sub.add_parser("keys", help="make the CA, the SuperLink certificate and the SuperNode key pairs")
    keys.add_argument("--host", action="append", required=True,
                      help="the SuperLink's IP or host name as the bank laptops reach it (repeatable)")
    keys.add_argument("--supernodes", type=int, default=4)
    keys.add_argument("--out", type=Path, default=Path("classroom"))
    link = sub.add_parser("superlink", help="start the SuperLink (TLS, SuperNode auth) and register the keys")
    link.add_argument("--keys", type=Path, default=Path("classroom"))
    link.add_argument("--host", required=True, help="the address to listen on (the one in the certificate)")
    link.add_argument("--port", type=int, default=9100)
    node = sub.add_parser("supernode", help="start one bank's SuperNode")
    node.add_argument("--keys", type=Path, default=Path("classroom"), help="holds ca.crt and supernode-<k>.key")
    node.add_argument("--superlink", required=True, help="host:port of the SuperLink")
    node.add_argument("--partition-id", type=int, required=True)
    node.add_argument("--num-partitions", type=int, default=4)
    node.add_argument("--port", type=int, default=9110, help="the SuperNode's local Runtime API port")
    args = parser.parse_args(argv)
    if args.command == "keys":
        files = make_keys(args.out, args.host, args.supernodes)
        print(f"wrote {', '.join(sorted(files))} to {args.out}/. Give bank k ca.crt and supernode-k.key only.")
        return 0
    if args.command == "superlink":
        return _superlink(args)
    command = supernode_command(args.keys.resolve(), args.superlink, args.partition_id, args.num_partitions, args.port)
    return subprocess.call(command, env=flower_env())


if __name__ == "__main__":
    sys.exit(main())
