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
import atexit
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent
REPO_ROOT = APP_DIR.parents[1]
N_BANKS = 4
PORT_ATTEMPTS = 5          # a port found free can be taken before our process binds it: try another one
BIND_ERRORS = ("address already in use", "errno 98", "failed to bind", "error while attempting to bind")


def app_config() -> dict:
    """The app's run config (``[tool.flwr.app.config]`` in its pyproject.toml): rounds, local epochs, lr..."""
    return tomllib.loads((APP_DIR / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def require_loopback(host: str) -> None:
    """Insecure mode (no TLS, any SuperNode) is for one machine only; a classroom uses classroom.py."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"insecure mode listens only on 127.0.0.1, not {host!r}: on a network anyone could "
                         "join or run an app; use apps/flower_bank/classroom.py (TLS and SuperNode keys)")


def flower_env(flwr_home: Path, results_dir: Path | None = None) -> dict[str, str]:
    """Every Flower process's environment: no telemetry, FLWR_HOME and the ServerApp's results folder
    (default: the folder above FLWR_HOME, the deployment's working folder) set, this venv's tools first."""
    # A Jupyter kernel sets FORCE_COLOR and CLICOLOR_FORCE: `flwr ... --format json` would then print colour codes
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "CLICOLOR_FORCE")} | {"NO_COLOR": "1"}
    bin_dir = str(Path(sys.executable).parent)   # flower-superexec etc. must be on PATH for the SuperLink
    env.update(FLWR_HOME=str(flwr_home), FLWR_TELEMETRY_ENABLED="0", FLWR_DISABLE_UPDATE_CHECK="1",
               FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION="1", PYTHONUNBUFFERED="1",
               RAY_USAGE_STATS_ENABLED="0",   # Ray (Flower's simulation engine) reports usage unless told not to
               FLOWER_BANK_RESULTS_DIR=str(results_dir or Path(flwr_home).parent),
               PATH=bin_dir + os.pathsep + env.get("PATH", ""),
               PYTHONPATH=os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p))
    return env


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM it when the process that started it dies (Linux), even by SIGKILL."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _descendants(pid: int) -> list:
    try:
        import psutil

        return psutil.Process(pid).children(recursive=True)
    except Exception:  # no psutil, or the process is gone
        return []


class Deployment:
    """The processes of one local deployment; ``stop()`` ends them all (SIGINT, then SIGKILL), closes their
    logs, and also runs at interpreter exit. ``prefix`` runs every command through another (``ip netns exec``)."""

    def __init__(self, workdir: Path, prefix: dict[str, list[str]] | None = None):
        self.workdir = workdir
        self.flwr_home = workdir / "flwr_home"
        self.flwr_home.mkdir(parents=True, exist_ok=True)
        self.env = flower_env(self.flwr_home)
        self.prefix = prefix or {}
        self.processes: dict[str, subprocess.Popen] = {}
        self._logs: dict[str, object] = {}
        self._known: dict[str, list] = {}
        atexit.register(self.stop)

    def start(self, name: str, command: list[str]) -> subprocess.Popen:
        if name in self._logs:
            self._logs.pop(name).close()
        log = self._logs[name] = open(self.workdir / f"{name}.log", "w")
        # A new session per process: stop() signals its whole group (it starts helper processes of its own).
        proc = subprocess.Popen([*self.prefix.get(name, []), *command], stdout=log, stderr=subprocess.STDOUT,
                                env=self.env, cwd=self.workdir, start_new_session=True, preexec_fn=_die_with_parent)
        self.processes[name] = proc
        return proc

    def start_on_free_port(self, name: str, command, ready, timeout_s: float, host: str = "127.0.0.1") -> int:
        """Start ``command(port)`` on a free port until ``ready(port)``; on a port taken meanwhile, another."""
        for _ in range(PORT_ATTEMPTS):
            port = free_port(host)
            proc = self.start(name, command(port))
            try:
                self.wait_for(f"{name} on port {port}", lambda: ready(port), timeout_s, only=name)
                return port
            except RuntimeError:
                if proc.poll() is None or not any(e in self.log(name).lower() for e in BIND_ERRORS):
                    raise
        raise RuntimeError(f"{name}: no free port after {PORT_ATTEMPTS} attempts:\n{self.log(name)[-2000:]}")

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.is_file() else ""

    def interrupt(self, name: str) -> None:
        proc = self.processes[name]
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)

    def stop(self, grace_s: float = 15.0) -> None:
        # Flower starts helpers in sessions of their own (flower-superexec): note them before signalling.
        for name, proc in self.processes.items():
            self._known.setdefault(name, []).extend(_descendants(proc.pid))
        for proc in self.processes.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace_s
        for name, proc in self.processes.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)   # whatever is left of its group (helper processes too)
            except (ProcessLookupError, PermissionError):
                pass
            helpers = self._known.get(name, [])
            for child in helpers:
                try:
                    child.kill()
                except Exception:  # already gone
                    pass
            if helpers:
                import psutil

                psutil.wait_procs(helpers, timeout=5)
            proc.wait(timeout=10)
        for log in self._logs.values():
            log.close()
        self._logs.clear()
        atexit.unregister(self.stop)

    def wait_for(self, what: str, check, timeout_s: float, only: str | None = None, interval_s: float = 0.5) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():
            for name, proc in self.processes.items():
                if proc.poll() is not None and name != "run" and only in (None, name):
                    raise RuntimeError(f"{name} exited (code {proc.returncode}) while waiting for {what}:\n"
                                       f"{self.log(name)[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"gave up after {timeout_s:.0f} s waiting for {what}.")
            time.sleep(interval_s)


def healthy(address: str, ca: Path | None = None) -> bool:
    """Whether the SuperLink at ``address`` answers on its /health route (https, verified with ``ca``)."""
    scheme, context = ("https", ssl.create_default_context(cafile=str(ca))) if ca else ("http", None)
    try:
        with urllib.request.urlopen(f"{scheme}://{address}/health", context=context, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def supernodes(env: dict[str, str], connection: str, prefix: list[str] = ()) -> list[dict]:
    """The SuperNodes the SuperLink knows, with their status (``flwr supernode list --format json``)."""
    run = subprocess.run([*prefix, "flwr", "supernode", "list", connection, "--format", "json"], env=env,
                         capture_output=True, text=True, timeout=60)
    try:
        return json.loads(run.stdout[run.stdout.index("{"):])["nodes"]
    except (ValueError, KeyError):
        return []


def online_nodes(env: dict[str, str], connection: str, prefix: list[str] = ()) -> int:
    """How many SuperNodes the SuperLink reports online."""
    return sum(node.get("status") == "online" for node in supernodes(env, connection, prefix))


def run_deployment(workdir: Path, *, rounds: int = 3, kill_after_round: int | None = None,
                   n_banks: int = N_BANKS, timeout_s: float = 900.0, run_config: dict | None = None) -> dict:
    """Start a SuperLink and ``n_banks`` SuperNodes on 127.0.0.1, ``flwr run`` the bank app, optionally interrupt
    SuperNode 0 after round ``kill_after_round`` has been evaluated; stop everything. ``timeout_s`` bounds the
    whole of it. Returns the server's per-round ROC-AUC, the banks that answered each round, and the wall time."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    deployment = Deployment(workdir)
    results_name = "server_metrics.json"      # inside FLOWER_BANK_RESULTS_DIR (= workdir), see server_app.py
    results_path = workdir / results_name
    host = "127.0.0.1"
    require_loopback(host)
    start = time.monotonic()
    deadline = start + timeout_s

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"the deployment did not finish in {timeout_s:.0f} s")
        return remaining

    try:
        port = deployment.start_on_free_port(
            "superlink", lambda p: ["flower-superlink", "--insecure", "--disable-runtime-dependency-installation",
                                    "--host", host, "--port", str(p)],
            lambda p: healthy(f"{host}:{p}"), min(120, left()))
        address = f"{host}:{port}"
        (deployment.flwr_home / "config.toml").write_text(
            f'[superlink]\ndefault = "local-deployment"\n\n[superlink.local-deployment]\naddress = "{address}"\n'
            'insecure = true\n')
        for k in range(n_banks):
            deployment.start_on_free_port(
                f"supernode{k}", lambda p, k=k: ["flower-supernode", "--insecure", "--superlink", address,
                                                 "--port", str(p),
                                                 "--node-config", f"partition-id={k} num-partitions={n_banks}"],
                lambda p: healthy(f"{host}:{p}"), min(120, left()))
        deployment.wait_for(f"{n_banks} SuperNodes online",
                            lambda: online_nodes(deployment.env, "local-deployment") >= n_banks, min(180, left()),
                            interval_s=2.0)   # each check is a `flwr` process: poll gently
        config = {"num-server-rounds": rounds, "results-path": results_name, **(run_config or {})}
        overrides = " ".join(f"{k}={json.dumps(v) if isinstance(v, str) else v}" for k, v in config.items())
        run = deployment.start("run", ["flwr", "run", str(APP_DIR), "local-deployment", "--stream",
                                       "--run-config", overrides])
        killed_at = None
        while run.poll() is None:
            if deadline - time.monotonic() <= 0:
                raise TimeoutError(f"the Flower run did not finish in {timeout_s:.0f} s:\n"
                                   f"{deployment.log('run')[-3000:]}")
            if kill_after_round is not None and killed_at is None and results_path.is_file():
                try:
                    evaluated = json.loads(results_path.read_text())["round"]
                except (json.JSONDecodeError, KeyError):
                    evaluated = []
                if evaluated and max(evaluated) >= kill_after_round:
                    deployment.interrupt("supernode0")
                    killed_at = max(evaluated)
            time.sleep(0.5)
        if run.returncode != 0 or not results_path.is_file():
            raise RuntimeError(f"flwr run failed (exit {run.returncode}):\n{deployment.log('run')[-4000:]}")
        metrics = json.loads(results_path.read_text())
        return {"rounds": metrics["round"], "roc_auc": metrics["roc_auc"], "accuracy": metrics["accuracy"],
                "clients_answered": metrics["answered"], "client_failures": metrics["failures"],
                "killed_after_round": killed_at, "n_banks": n_banks, "wall_s": time.monotonic() - start}
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
