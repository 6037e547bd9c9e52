"""The classroom mode as it will run, on one machine: the SuperLink and four SuperNodes each in a network
namespace of its own, joined by veth pairs that this test creates and removes, with addresses only in a private
/24 inside those namespaces (the machine's own network never sees them). TLS and SuperNode authentication on,
the keys made by classroom.py: three rounds complete with the four registered banks, and a SuperNode whose key
is not registered is refused. Needs root and `ip netns` (CI runs as root); skipped otherwise."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "apps" / "flower_bank"
SUBNET = "10.77.0"          # a private /24, only inside the namespaces below
LINK_IP, PORT, N_BANKS, ROUNDS = f"{SUBNET}.1", 9100, 4, 3


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"flower_bank_{name}", APP / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


def _netns_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (ip netns, veth pairs); CI runs as root"
    if shutil.which("ip") is None:
        return "no `ip` command (apt-get install iproute2)"
    probe = f"lsprobe{os.getpid()}"
    try:
        _ip("netns", "add", probe)
        _ip("netns", "del", probe)
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"`ip netns add` is not allowed here: {getattr(exc, 'stderr', exc)}"
    return None


class Classroom:
    """One namespace for the SuperLink, one per bank; a veth pair from the SuperLink's to each bank's."""

    def __init__(self, n_banks: int):
        tag = f"ls{os.getpid() % 100000}"
        self.link = f"{tag}link"
        self.banks = [f"{tag}bank{k}" for k in range(n_banks)]
        self.created: list[str] = []

    def bank_ip(self, k: int) -> str:
        return f"{SUBNET}.{10 + k}"

    def create(self) -> None:
        for ns in [self.link, *self.banks]:
            _ip("netns", "add", ns)
            self.created.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        for k, ns in enumerate(self.banks):
            end = f"{self.link[:8]}v{k}"
            _ip("link", "add", end, "netns", self.link, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("-n", self.link, "addr", "add", f"{LINK_IP}/32", "dev", end)
            _ip("-n", self.link, "link", "set", end, "up")
            _ip("-n", self.link, "route", "add", f"{self.bank_ip(k)}/32", "dev", end)
            _ip("-n", ns, "addr", "add", f"{self.bank_ip(k)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")

    def destroy(self) -> None:
        # Deleting a namespace deletes its veth ends, and with them their peers.
        for ns in reversed(self.created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        self.created.clear()

    def run_in(self, ns: str) -> list[str]:
        return ["ip", "netns", "exec", ns]


HEALTH = """
import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
with urllib.request.urlopen(f"https://{sys.argv[1]}/health", context=ctx, timeout=5) as r:
    sys.exit(0 if r.status == 200 else 1)
"""


@pytest.mark.slow
def test_classroom_over_namespaces_with_tls_and_supernode_auth(tmp_path):
    reason = _netns_reason()
    if reason:
        pytest.skip(reason)
    launcher, classroom = _load("launch"), _load("classroom")
    keys = tmp_path / "keys"
    classroom.make_keys(keys, [LINK_IP], N_BANKS)
    classroom.make_supernode_key(keys, "stranger")            # a key nobody registers
    net = Classroom(N_BANKS)
    prefix = {"superlink": net.run_in(net.link), "run": net.run_in(net.link), "stranger": net.run_in(net.banks[-1])}
    prefix.update({f"supernode{k}": net.run_in(ns) for k, ns in enumerate(net.banks)})
    deployment = None
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    try:
        net.create()
        deployment = launcher.Deployment(tmp_path / "work", prefix=prefix)
        env = deployment.env
        address = f"{LINK_IP}:{PORT}"
        (deployment.flwr_home / "config.toml").write_text(classroom.connection_toml(address, keys))
        # Fresh namespaces: nothing else can hold a port there, so fixed ports are race-free.
        deployment.start("superlink", classroom.superlink_command(keys, LINK_IP, PORT))
        healthy = lambda: subprocess.run([*net.run_in(net.link), sys.executable, "-c", HEALTH, address,  # noqa: E731
                                          str(keys / "ca.crt")], capture_output=True, timeout=30).returncode == 0
        deployment.wait_for("the SuperLink over TLS", healthy, 120, interval_s=1.0)
        classroom.register_supernodes(sorted(keys.glob("supernode-*.pub")), env, prefix=net.run_in(net.link))
        for k in range(N_BANKS):
            deployment.start(f"supernode{k}", classroom.supernode_command(keys, address, k, N_BANKS, 9110))
        deployment.wait_for(f"{N_BANKS} SuperNodes online", lambda: launcher.online_nodes(
            env, classroom.CONNECTION, net.run_in(net.link)) >= N_BANKS, 180, interval_s=2.0)

        stranger = deployment.start("stranger", classroom.supernode_command(keys, address, 0, N_BANKS, 9111,
                                                                           key_name="stranger"))
        deadline = time.monotonic() + 120
        while stranger.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert stranger.poll() is not None and stranger.returncode != 0, \
            f"a SuperNode with an unregistered key was not refused:\n{deployment.log('stranger')[-2000:]}"
        nodes = launcher.supernodes(env, classroom.CONNECTION, net.run_in(net.link))
        assert len(nodes) == N_BANKS and all(n["status"] == "online" for n in nodes), nodes

        run = deployment.start("run", ["flwr", "run", str(APP), classroom.CONNECTION, "--stream", "--run-config",
                                       f'num-server-rounds={ROUNDS} results-path="classroom.json"'])
        try:
            run.wait(timeout=600)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the run did not finish in 600 s:\n{deployment.log('run')[-3000:]}")
        results = deployment.workdir / "classroom.json"   # FLOWER_BANK_RESULTS_DIR is the working folder
        assert run.returncode == 0 and results.is_file(), deployment.log("run")[-4000:]
        metrics = json.loads(results.read_text())
        assert metrics["round"] == list(range(ROUNDS + 1)), metrics
        assert metrics["answered"] == [N_BANKS] * ROUNDS and metrics["failures"] == [0] * ROUNDS, metrics
    finally:
        if deployment is not None:
            deployment.stop()
        net.destroy()
    left = [p.cmdline() for p in psutil.Process().children(recursive=True) if p.pid not in before]
    assert not left, f"processes left behind: {left}"
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(ns in listed for ns in [net.link, *net.banks]), listed
