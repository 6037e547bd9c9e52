"""Start a whole Flower deployment on this machine, run the bank app, and stop everything again.

One SuperLink and one SuperNode per bank, each a separate process on 127.0.0.1 (what a workshop would run on
separate machines, see the README), then ``flwr run``. Optionally interrupts one SuperNode (SIGINT) once a
given round has been evaluated, to show that the run completes with the remaining banks.

    python apps/flower_bank/launch.py --rounds 3 --kill-after-round 2 --out build/results/flower_bank.json

Everything phones home unless told not to: every process gets FLWR_TELEMETRY_ENABLED=0 and
FLWR_DISABLE_UPDATE_CHECK=1, and FLWR_HOME lives in a temporary folder. All processes are stopped at the end,
also when something fails.

Explained in 04, section "Part 3: the same strategy on Flower".
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent
REPO_ROOT = APP_DIR.parents[1]
N_BANKS = 4


def app_config() -> dict:
    """The app's run config (``[tool.flwr.app.config]`` in its pyproject.toml): rounds, local epochs, lr..."""
    return tomllib.loads((APP_DIR / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def flower_env(flwr_home: Path) -> dict[str, str]:
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)   # flower-superexec etc. must be on PATH for the SuperLink
    env.update(FLWR_HOME=str(flwr_home), FLWR_TELEMETRY_ENABLED="0", FLWR_DISABLE_UPDATE_CHECK="1",
               FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION="1", PYTHONUNBUFFERED="1",
               RAY_USAGE_STATS_ENABLED="0",   # Ray (Flower's simulation engine) reports usage unless told not to
               PATH=bin_dir + os.pathsep + env.get("PATH", ""),
               PYTHONPATH=os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p))
    return env


class Deployment:
    """The processes of one local deployment; ``stop()`` ends them all (SIGINT, then SIGKILL)."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.flwr_home = workdir / "flwr_home"
        self.flwr_home.mkdir(parents=True, exist_ok=True)
        self.env = flower_env(self.flwr_home)
        self.port = free_port()
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str, command: list[str]) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "w")
        # A new session per process: stop() signals its whole group (it starts helper processes of its own).
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                cwd=self.workdir, start_new_session=True)
        self.processes[name] = proc
        return proc

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.is_file() else ""

    def interrupt(self, name: str) -> None:
        proc = self.processes[name]
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)

    def stop(self, grace_s: float = 15.0) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace_s
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)   # whatever is left of its group (helper processes too)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait(timeout=10)

    def wait_for(self, what: str, check, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():
            for name, proc in self.processes.items():
                if proc.poll() is not None and name != "run":
                    raise RuntimeError(f"{name} exited (code {proc.returncode}) while waiting for {what}:\n"
                                       f"{self.log(name)[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"gave up after {timeout_s:.0f} s waiting for {what}.")
            time.sleep(0.5)


def run_deployment(workdir: Path, *, rounds: int = 3, kill_after_round: int | None = None,
                   n_banks: int = N_BANKS, timeout_s: float = 900.0, run_config: dict | None = None) -> dict:
    """Start a SuperLink and ``n_banks`` SuperNodes, ``flwr run`` the bank app, optionally interrupt SuperNode 0
    after round ``kill_after_round`` has been evaluated; stop everything. Returns the server's per-round
    ROC-AUC, the clients that answered each round, and the wall time."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    deployment = Deployment(workdir)
    results_path = workdir / "server_metrics.json"
    address = f"127.0.0.1:{deployment.port}"
    (deployment.flwr_home / "config.toml").write_text(
        f'[superlink]\ndefault = "local-deployment"\n\n[superlink.local-deployment]\naddress = "{address}"\ninsecure = true\n')
    start = time.monotonic()
    try:
        deployment.start("superlink", ["flower-superlink", "--insecure", "--disable-runtime-dependency-installation",
                                       "--host", "127.0.0.1", "--port", str(deployment.port)])
        deployment.wait_for("the SuperLink", lambda: "Uvicorn running" in deployment.log("superlink"), 120)
        for k in range(n_banks):
            deployment.start(f"supernode{k}", ["flower-supernode", "--insecure", "--superlink", address,
                                               "--port", str(free_port()),
                                               "--node-config", f"partition-id={k} num-partitions={n_banks}"])
        deployment.wait_for(f"{n_banks} SuperNodes to connect",
                            lambda: deployment.log("superlink").count("Activated node_id") >= n_banks, 180)
        config = {"num-server-rounds": rounds, "results-path": str(results_path), **(run_config or {})}
        overrides = " ".join(f"{k}={json.dumps(v) if isinstance(v, str) else v}" for k, v in config.items())
        run = deployment.start("run", ["flwr", "run", str(APP_DIR), "local-deployment", "--stream",
                                       "--run-config", overrides])
        killed_at = None
        deadline = time.monotonic() + timeout_s
        while run.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the Flower run did not finish in {timeout_s:.0f} s:\n{deployment.log('run')[-3000:]}")
            if kill_after_round is not None and killed_at is None and results_path.is_file():
                try:
                    evaluated = json.loads(results_path.read_text())["round"]
                except (json.JSONDecodeError, KeyError):
                    evaluated = []
                if evaluated and max(evaluated) >= kill_after_round:
                    deployment.interrupt("supernode0")
                    killed_at = max(evaluated)
            time.sleep(0.5)
        log = deployment.log("run")
        if run.returncode != 0 or not results_path.is_file():
            raise RuntimeError(f"flwr run failed (exit {run.returncode}):\n{log[-4000:]}")
        metrics = json.loads(results_path.read_text())
        answered = [int(n) for n in re.findall(r"aggregate_train: Received (\d+) results", log)]
        failures = [int(n) for n in re.findall(r"aggregate_train: Received \d+ results and (\d+) failures", log)]
        return {"rounds": metrics["round"], "roc_auc": metrics["roc_auc"], "accuracy": metrics["accuracy"],
                "clients_answered": answered, "client_failures": failures, "killed_after_round": killed_at,
                "n_banks": n_banks, "wall_s": time.monotonic() - start}
    finally:
        deployment.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kill-after-round", type=int, default=None,
                        help="interrupt SuperNode 0 once this round has been evaluated")
    parser.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flower-bank-") as tmp:
        result = run_deployment(Path(tmp), rounds=args.rounds, kill_after_round=args.kill_after_round)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
