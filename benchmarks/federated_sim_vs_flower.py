"""Notebook 04's batched simulator against Flower, on the same task, side by side in one run.

The task: FedAvg over the four banks of notebook 04 (LendingClub loans split by US region), logistic
regression, every bank in every round, 5 local epochs, batch 64, lr 0.1, the same initial weights; ROC-AUC
on the same held-out test loans. Three engines:

1. ``learnstrat_helpers.federated.simulate``: all clients of a round trained together (vmap), one process;
2. Flower's simulation engine (``flwr run apps/flower_bank local``, Ray; needs ``pip install "flwr[simulation]"``,
   which the course itself does not install): skipped, and said so, when Ray is missing;
3. Flower's deployment engine: one SuperLink and four SuperNodes as separate processes on 127.0.0.1
   (``apps/flower_bank/launch.py``), with SuperNode 0 interrupted after round 2.

Rounds per second exclude one-off start-up (Ray, the SuperLink) and are measured between the server's first
and last evaluation; start-up is reported separately. Also: the simulator's rounds per second on notebook 04's
Fashion-MNIST federation (100 clients, 10 per round, default profile).

Writes benchmarks/federated_sim_vs_flower.json (notebook 04 reads it). Nothing contacts any address but 127.0.0.1.

    FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_UPDATE_CHECK=1 python benchmarks/federated_sim_vs_flower.py
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import psutil
import torch
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from learnstrat_helpers import banks, datasets, federated  # noqa: E402
from learnstrat_helpers.profiles import get_profile  # noqa: E402

APP = ROOT / "apps" / "flower_bank"
OUT = Path(__file__).with_suffix(".json")


def launcher():
    spec = importlib.util.spec_from_file_location("flower_bank_launch", APP / "launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def machine() -> str:
    cpu = platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    load = os.getloadavg()[0]
    return f"{cpu}, {psutil.cpu_count()} cores (load average {load:.1f} at the start), Python {platform.python_version()}, torch {torch.__version__}"


def in_package(rounds: int, cfg: dict, repeats: int = 5) -> dict:
    credit = banks.load_credit_banks()
    clients = list(credit["banks"].values())
    x_test, y_test = credit["test"]
    x = torch.cat([b[0] for b in clients])
    y = torch.cat([b[1] for b in clients])
    bounds = np.cumsum([0] + [len(b[1]) for b in clients])
    parts = [np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
    torch.manual_seed(int(cfg["seed"]))
    model = federated.mlp(x.shape[1], 2)
    settings = federated.SimSettings(rounds=rounds, fraction=1.0, epochs=int(cfg["local-epochs"]),
                                     batch_size=int(cfg["batch-size"]), lr=float(cfg["lr"]), seed=int(cfg["seed"]))
    timings = []
    for _ in range(repeats):   # the median of a few runs: the machine is shared
        hist = federated.simulate(model, x, y, parts, settings, show_progress=False)
        timings.append(hist.seconds)
    final = federated.mlp(x.shape[1], 2)
    final.load_state_dict(hist.parameters)
    auc = roc_auc_score(y_test.numpy(), federated.test(final, x_test, y_test)["scores"])
    return {"rounds": rounds, "seconds": float(np.median(timings)), "rounds_per_s": rounds / float(np.median(timings)),
            "roc_auc": float(auc)}


def fmnist_rate(rounds: int = 10) -> dict:
    fed = get_profile("default").federated
    x, y = datasets.load_fashion_mnist("train", resolution=fed.resolution)
    x = x.flatten(1)
    parts = federated.partition(y, fed.n_clients, "iid", seed=0)
    steps = 5 * int(np.ceil(len(x) / fed.n_clients / fed.batch_size))
    torch.manual_seed(0)
    settings = federated.SimSettings(rounds=rounds, fraction=fed.fraction, epochs=5, batch_size=fed.batch_size, lr=0.1,
                                     max_local_steps=steps)
    hist = federated.simulate(federated.mlp(x.shape[1], 10, fed.hidden), x, y, parts, settings, show_progress=False)
    return {"clients": fed.n_clients, "per_round": int(fed.fraction * fed.n_clients), "rounds": rounds,
            "rounds_per_s": rounds / hist.seconds}


def stop_started_here(before: set[int], flwr_home: str) -> list[int]:
    mine = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if proc.pid in before or "flower" not in " ".join(proc.info["cmdline"] or []):
                continue
            if proc.environ().get("FLWR_HOME") == flwr_home:
                mine.append(proc)
        except psutil.Error:
            continue
    for proc in mine:
        proc.send_signal(signal.SIGINT)
    _, alive = psutil.wait_procs(mine, timeout=15)
    for proc in alive:
        proc.kill()
    return [p.pid for p in mine]


def flower_simulation(rounds: int, workdir: Path) -> dict:
    if importlib.util.find_spec("ray") is None:
        return {"skipped": "Ray is not installed: pip install 'flwr[simulation]' to measure Flower's simulation engine"}
    env = launcher().flower_env(workdir / "flwr_home")
    (workdir / "flwr_home").mkdir(parents=True, exist_ok=True)
    results_path = workdir / "sim_metrics.json"
    command = ["flwr", "run", str(APP), "local", "--stream", "--federation-config", "num-supernodes=4",
               "--run-config", f'num-server-rounds={rounds} results-path="{results_path}"']
    before = {p.pid for p in psutil.process_iter()}
    start = time.time()
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    wall = time.time() - start
    # `flwr run ... local` leaves a local SuperLink running in the background: stop the ones this run started
    # (new processes whose FLWR_HOME is this run's folder), by their PIDs.
    stop_started_here(before, env["FLWR_HOME"])
    metrics = json.loads(results_path.read_text()) if results_path.is_file() else {"round": []}
    if run.returncode != 0 or len(metrics["round"]) != rounds + 1:
        log = run.stdout + run.stderr
        reasons = sorted({line.strip() for line in log.splitlines()
                          if re.search(r"timed out|Check failed|Exit Code|Exception:", line)})
        raylet = Path("/tmp/ray/session_latest/logs/raylet.out")
        if raylet.is_file():
            reasons += [line.split(")", 1)[-1].strip()[:300] for line in raylet.read_text(errors="replace").splitlines()
                        if "Check failed" in line]
        return {"failed": f"exit {run.returncode}, rounds evaluated {metrics['round']} of {rounds + 1}",
                "reasons": reasons[:6], "wall_s": wall}
    t = metrics["time"]
    return {"rounds": rounds, "wall_s": wall, "startup_s": t[0] - start, "rounds_per_s": rounds / (t[-1] - t[0]),
            "roc_auc": metrics["roc_auc"][-1], "roc_auc_per_round": metrics["roc_auc"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-deployment", action="store_true")
    args = parser.parse_args()
    os.environ.update(FLWR_TELEMETRY_ENABLED="0", FLWR_DISABLE_UPDATE_CHECK="1")
    cfg = launcher().app_config()
    report = {"recorded_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
              "task": "FedAvg, 4 banks (LendingClub by US region), logistic regression, all banks every round, "
                      f"{cfg['local-epochs']} local epochs, batch {cfg['batch-size']}, lr {cfg['lr']}, {args.rounds} rounds"}
    sim = in_package(args.rounds, cfg)
    report["simulator"] = sim
    report["sim_rounds_per_s"] = sim["rounds_per_s"]
    report["simulator_fmnist"] = fmnist_rate()
    print(json.dumps(report, indent=2), flush=True)
    with tempfile.TemporaryDirectory(prefix="flower-sim-") as tmp:
        report["flower_simulation"] = flower_simulation(args.rounds, Path(tmp))
    if "rounds_per_s" in report["flower_simulation"]:
        report["flower_sim_rounds_per_s"] = report["flower_simulation"]["rounds_per_s"]
        report["speed_up_vs_flower_sim"] = sim["rounds_per_s"] / report["flower_sim_rounds_per_s"]
    if not args.skip_deployment:
        with tempfile.TemporaryDirectory(prefix="flower-deploy-") as tmp:
            deployment = launcher().run_deployment(Path(tmp), rounds=args.rounds, kill_after_round=args.rounds - 1)
        compared = args.rounds - 1
        expected = in_package(compared, cfg, repeats=1)["roc_auc"]
        credit = banks.load_credit_banks()
        x_test, y_test = credit["test"]
        n_features = x_test.shape[1]
        reference = federated.fedavg_loop(lambda: federated.mlp(n_features, 2), list(credit["banks"].values()),
                                          rounds=compared, epochs=int(cfg["local-epochs"]), batch_size=int(cfg["batch-size"]),
                                          lr=float(cfg["lr"]), seed=int(cfg["seed"]))
        global_model = federated.set_parameters(federated.mlp(n_features, 2), reference)
        loop_auc = roc_auc_score(y_test.numpy(), federated.test(global_model, x_test, y_test)["scores"])
        deployment.update(compared_round=compared, simulated_roc_auc=float(loop_auc), batched_simulator_roc_auc=expected)
        report["flower_deployment"] = deployment
        report["flower_deployment_acc"] = deployment["accuracy"][-1]
        report["flower_deployment_roc_auc"] = deployment["roc_auc"][-1]
        report["flower_deployment_rounds_per_s"] = args.rounds / deployment["wall_s"]
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
