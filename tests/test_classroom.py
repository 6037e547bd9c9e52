"""The workshop's keys and commands (apps/flower_bank/classroom.py): what Flower will be given is what it reads
(OpenSSH EC keys on a NIST curve, a server certificate for the classroom address signed by the CA), and the
SuperLink it starts has TLS and SuperNode authentication on."""

from __future__ import annotations

import importlib.util
import ipaddress
import stat
import tomllib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_ssh_private_key, load_ssh_public_key

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("classroom", ROOT / "apps" / "flower_bank" / "classroom.py")
classroom = importlib.util.module_from_spec(spec)
spec.loader.exec_module(classroom)


@pytest.fixture
def keys(tmp_path) -> Path:
    classroom.make_keys(tmp_path / "keys", ["192.168.1.10", "teacher.local"], 4)
    return tmp_path / "keys"


def test_supernode_keys_are_what_flower_reads(keys):
    for k in range(4):
        private = load_ssh_private_key((keys / f"supernode-{k}.key").read_bytes(), None)
        public = load_ssh_public_key((keys / f"supernode-{k}.pub").read_bytes())
        assert isinstance(private, ec.EllipticCurvePrivateKey) and isinstance(public, ec.EllipticCurvePublicKey)
        assert public.curve.name == "secp384r1"   # flwr supernode register accepts NIST curves only
        assert private.public_key().public_numbers() == public.public_numbers()
        assert stat.S_IMODE((keys / f"supernode-{k}.key").stat().st_mode) == 0o600


def test_server_certificate_names_the_classroom_address_and_is_signed_by_the_ca(keys):
    ca = x509.load_pem_x509_certificate((keys / "ca.crt").read_bytes())
    server = x509.load_pem_x509_certificate((keys / "server.pem").read_bytes())
    server.verify_directly_issued_by(ca)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.IPAddress)) == {ipaddress.ip_address("192.168.1.10"),
                                                            ipaddress.ip_address("127.0.0.1")}
    assert set(san.get_values_for_type(x509.DNSName)) == {"teacher.local", "localhost"}
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    key = load_pem_private_key((keys / "server.key").read_bytes(), None)
    assert key.public_key().public_numbers() == server.public_key().public_numbers()
    for private in ("ca.key", "server.key"):
        assert stat.S_IMODE((keys / private).stat().st_mode) == 0o600


def test_an_existing_key_set_is_not_overwritten(keys):
    with pytest.raises(FileExistsError, match="ca.crt exists"):
        classroom.make_keys(keys, ["192.168.1.10"], 4)


def test_bad_requests_are_refused(tmp_path):
    with pytest.raises(ValueError, match="--host"):
        classroom.make_keys(tmp_path / "a", [], 4)
    with pytest.raises(ValueError, match="--supernodes must be at least 1"):
        classroom.make_keys(tmp_path / "b", ["10.0.0.1"], 0)


def test_superlink_runs_with_tls_and_supernode_auth_never_insecure(keys):
    command = classroom.superlink_command(keys, "192.168.1.10", 9100)
    assert "--insecure" not in command and "--enable-supernode-auth" in command
    for flag, name in [("--ssl-ca-certfile", "ca.crt"), ("--ssl-certfile", "server.pem"),
                       ("--ssl-keyfile", "server.key")]:
        assert command[command.index(flag) + 1] == str(keys / name)
    assert command[command.index("--host") + 1] == "192.168.1.10"


def test_supernode_verifies_the_superlink_and_signs_in(keys):
    command = classroom.supernode_command(keys, "192.168.1.10:9100", 2, 4, 9110)
    assert "--insecure" not in command
    assert command[command.index("--root-certificates") + 1] == str(keys / "ca.crt")
    assert command[command.index("--auth-supernode-private-key") + 1] == str(keys / "supernode-2.key")
    assert "partition-id=2 num-partitions=4" in command


def test_connection_trusts_the_classroom_ca(keys):
    config = tomllib.loads(classroom.connection_toml("192.168.1.10:9100", keys))
    connection = config["superlink"][config["superlink"]["default"]]
    assert connection["address"] == "192.168.1.10:9100" and not connection.get("insecure", False)
    assert Path(connection["root-certificates"]) == (keys / "ca.crt").resolve()
