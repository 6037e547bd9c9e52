"""Flower's deployment engine runs the same FedAvg as the in-package simulation: one SuperLink and one
SuperNode per bank, separate processes on 127.0.0.1. Checks the global model against the simulation, then
interrupts one SuperNode mid-run and checks that the run completes with the other banks. Every process is
stopped at the end, also when the test fails (``run_deployment`` stops them in a ``finally`` and at exit) or is
killed (each process gets SIGTERM when its parent dies); ports taken between choosing and binding are retried;
the whole deployment has a hard timeout. Unit tests: the ServerApp's results-path stays in its folder, insecure
mode only on 127.0.0.1, the port retry and the clean-up.
The same measurement, with timings, is recorded by ``benchmarks/federated_sim_vs_flower.py``."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import tomllib
from pathlib import Path

import pytest
from sklearn.metrics import roc_auc_score

import psutil

from learnstrat_helpers import banks, federated

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "apps" / "flower_bank"
TOLERANCE = 0.005   # ROC-AUC: the same arithmetic in float32 on both sides, aggregated in another order


def load_launcher():
    spec = importlib.util.spec_from_file_location("flower_bank_launch", APP / "launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def simulated_auc(rounds: int, cfg: dict) -> float:
    credit = banks.load_credit_banks()
    x_test, y_test = credit["test"]
    n_features = x_test.shape[1]
    parameters = federated.fedavg_loop(lambda: federated.mlp(n_features, 2), list(credit["banks"].values()),
                                       rounds=rounds, epochs=cfg["local-epochs"], batch_size=cfg["batch-size"],
                                       lr=cfg["lr"], seed=cfg["seed"])
    model = federated.set_parameters(federated.mlp(n_features, 2), parameters)
    return float(roc_auc_score(y_test.numpy(), federated.test(model, x_test, y_test)["scores"]))


def test_app_declares_its_components():
    app = tomllib.loads((APP / "pyproject.toml").read_text())["tool"]["flwr"]["app"]
    assert app["components"] == {"serverapp": "flower_bank.server_app:app", "clientapp": "flower_bank.client_app:app"}
    assert app["config"]["min-nodes"] < 4, "rounds must go on when one of the 4 banks drops out"


@pytest.mark.slow
def test_deployment_matches_simulation_and_survives_a_supernode_leaving(tmp_path):
    cfg = load_launcher().app_config()
    rounds, kill_after = 3, 2
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    result = load_launcher().run_deployment(tmp_path, rounds=rounds, kill_after_round=kill_after, timeout_s=600)
    left = [p.cmdline() for p in psutil.Process().children(recursive=True) if p.pid not in before]
    assert not left, f"processes left behind: {left}"
    assert result["rounds"] == list(range(rounds + 1)), result          # round 0 = the initial model
    assert result["clients_answered"][:kill_after] == [4] * kill_after, result
    expected = simulated_auc(kill_after, cfg)
    got = result["roc_auc"][kill_after]
    assert abs(got - expected) <= TOLERANCE, f"Flower {got:.4f} vs simulation {expected:.4f} after {kill_after} rounds"
    # SuperNode 0 was interrupted after round 2: round 3 completed with the 3 other banks.
    assert result["killed_after_round"] == kill_after
    assert result["clients_answered"][-1] == 3, result


def load_server_app():
    sys.path.insert(0, str(APP))
    try:
        from flower_bank import server_app
    finally:
        sys.path.remove(str(APP))
    return server_app


def test_results_path_stays_inside_the_results_folder(tmp_path):
    confined = load_server_app().confined_results_path
    root = tmp_path / "results"
    root.mkdir()
    assert confined("", root) is None
    assert confined("metrics.json", root) == root.resolve() / "metrics.json"
    assert confined("run1/metrics.json", root) == root.resolve() / "run1" / "metrics.json"
    assert confined(str(root / "abs.json"), root) == root.resolve() / "abs.json"
    (root / "out").symlink_to(tmp_path)
    for escaping in ["../../etc/x", "/etc/x", str(tmp_path / "elsewhere.json"), "a/../../x.json", "out/x.json", "."]:
        with pytest.raises(ValueError, match="outside the results folder"):
            confined(escaping, root)


def test_results_folder_is_set_by_the_operator_not_the_run(monkeypatch, tmp_path):
    server_app = load_server_app()
    monkeypatch.delenv(server_app.RESULTS_DIR_ENV, raising=False)
    monkeypatch.setenv("FLWR_HOME", str(tmp_path / "home"))
    assert server_app.results_dir() == tmp_path / "home" / "results" / "flower_bank"
    monkeypatch.setenv(server_app.RESULTS_DIR_ENV, str(tmp_path / "mine"))
    assert server_app.results_dir() == tmp_path / "mine"


def test_insecure_mode_only_on_loopback():
    launcher = load_launcher()
    for host in ["127.0.0.1", "localhost", "::1"]:
        launcher.require_loopback(host)
    for host in ["0.0.0.0", "192.168.1.10", "classroom.local", "::"]:
        with pytest.raises(ValueError, match="insecure mode listens only on 127.0.0.1"):
            launcher.require_loopback(host)


SERVER = ("import socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); "
          "time.sleep(60)")


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def test_a_port_taken_before_binding_is_retried(tmp_path, monkeypatch):
    launcher = load_launcher()
    taken = socket.socket()   # bound, not listening: what another program holds between our choice and our bind
    taken.bind(("127.0.0.1", 0))
    real_free_port, offered = launcher.free_port, []

    def first_the_taken_port(host="127.0.0.1"):
        offered.append(taken.getsockname()[1] if not offered else real_free_port(host))
        return offered[-1]

    monkeypatch.setattr(launcher, "free_port", first_the_taken_port)
    deployment = launcher.Deployment(tmp_path)
    try:
        port = deployment.start_on_free_port("server", lambda p: [sys.executable, "-c", SERVER, str(p)],
                                             _listening, timeout_s=30)
        assert offered[0] == taken.getsockname()[1] and port == offered[-1] != offered[0] and _listening(port)
    finally:
        deployment.stop(grace_s=2)
        taken.close()
    assert deployment.processes["server"].poll() is not None


SPAWNER = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
print(child.pid, flush=True)
time.sleep(120)
"""


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_stop_ends_helpers_in_other_sessions_and_closes_logs(tmp_path):
    # flower-superlink starts flower-superexec in a session of its own: a group kill alone would miss it.
    launcher = load_launcher()
    deployment = launcher.Deployment(tmp_path)
    proc = deployment.start("spawner", [sys.executable, "-c", SPAWNER])
    deployment.wait_for("the helper", lambda: deployment.log("spawner").strip() != "", 30)
    helper = int(deployment.log("spawner").split()[0])
    deployment.stop(grace_s=2)
    assert proc.poll() is not None
    assert _gone(helper), "a helper process outlived stop()"
    assert all(log.closed for log in deployment._logs.values()) and not deployment._logs


KILLED_PARENT = """
import sys, time
sys.path.insert(0, sys.argv[1])
import launch
from pathlib import Path
deployment = launch.Deployment(Path(sys.argv[2]))
proc = deployment.start("sleeper", [sys.executable, "-c", "import time; time.sleep(120)"])
print(proc.pid, flush=True)
time.sleep(120)
"""


def test_processes_die_with_a_killed_parent(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", KILLED_PARENT, str(APP), str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)   # no finally, no atexit: only the kernel's parent-death signal
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while not _gone(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _gone(child), "the deployment's process outlived its killed parent"
    finally:
        parent.stdout.close()
        if parent.poll() is None:
            parent.kill()


def test_flower_processes_print_no_colour_codes_even_from_a_notebook(monkeypatch, tmp_path):
    # A Jupyter kernel sets FORCE_COLOR: `flwr supernode list --format json` then coloured its JSON, and
    # launch.py, started from a notebook, never saw a SuperNode online.
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("CLICOLOR_FORCE", "1")
    env = load_launcher().flower_env(tmp_path / "flwr_home")
    assert "FORCE_COLOR" not in env and "CLICOLOR_FORCE" not in env and env["NO_COLOR"] == "1"
