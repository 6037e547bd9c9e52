"""ServerApp: FedAvg (weighted by each bank's number of loans) over the banks that are connected, evaluated
each round on the held-out test loans (ROC-AUC). Tolerates a bank dropping out: a round needs only
``min-nodes`` banks.

``results-path`` comes with the run config, that is from whoever calls ``flwr run``: it names a file inside the
results folder that the SuperLink's operator chose (``FLOWER_BANK_RESULTS_DIR``, else
``$FLWR_HOME/results/flower_bank``), and a path that leaves that folder is refused.

Explained in 04, section "Part 3: the same strategy on Flower".
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from sklearn.metrics import roc_auc_score

from learnstrat_helpers import federated

from .task import load_test, make_model

RESULTS_DIR_ENV = "FLOWER_BANK_RESULTS_DIR"

app = ServerApp()


def results_dir() -> Path:
    """Where this SuperLink's runs may write: ``$FLOWER_BANK_RESULTS_DIR``, else ``$FLWR_HOME/results/flower_bank``
    (``~/.flwr`` when FLWR_HOME is unset). Set by whoever starts the SuperLink, not by the run config."""
    if value := os.environ.get(RESULTS_DIR_ENV, "").strip():
        return Path(value).expanduser()
    return Path(os.environ.get("FLWR_HOME", "~/.flwr")).expanduser() / "results" / "flower_bank"


def confined_results_path(value: str, root: Path) -> Path | None:
    """The file ``results-path`` names, inside ``root`` (relative paths are taken from there); None for "".
    Raises ValueError for a path that leaves ``root`` (``..``, an absolute path elsewhere, a symlink out)."""
    if not value.strip():
        return None
    root = root.resolve()
    path = Path(value).expanduser()
    path = (path if path.is_absolute() else root / path).resolve()
    if path == root or not path.is_relative_to(root):
        raise ValueError(f"results-path {value!r} is outside the results folder {root}: give a file name inside "
                         f"it (the SuperLink's operator sets the folder with {RESULTS_DIR_ENV})")
    return path


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    x_test, y_test = load_test()
    torch.manual_seed(int(cfg["seed"]))          # the same initial model as the in-package simulation
    model = make_model(x_test.shape[1])
    # Checked before any work: a run that asks for a path outside the results folder fails at once.
    results_path = confined_results_path(str(cfg.get("results-path", "")), results_dir())
    if results_path is not None:
        results_path.parent.mkdir(parents=True, exist_ok=True)
    # answered/failures: per training round, the replies FedAvg received (launch.py reads them from here).
    history: dict[str, list] = {"round": [], "roc_auc": [], "accuracy": [], "time": [], "answered": [],
                                "failures": []}

    def write_history() -> None:
        if results_path is not None:
            results_path.write_text(json.dumps(history, indent=2) + "\n")

    class CountingFedAvg(FedAvg):
        """Flower's FedAvg, recording how many banks answered each round."""

        def aggregate_train(self, server_round, replies):
            replies = list(replies)
            failures = sum(1 for msg in replies if msg.has_error())
            history["answered"].append(len(replies) - failures)
            history["failures"].append(failures)
            return super().aggregate_train(server_round, replies)

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        model.load_state_dict(arrays.to_torch_state_dict())
        report = federated.test(model, x_test, y_test)
        auc = float(roc_auc_score(y_test.numpy(), report["scores"]))
        history["round"].append(server_round)
        history["roc_auc"].append(auc)
        history["accuracy"].append(report["accuracy"])
        history["time"].append(time.time())
        write_history()
        return MetricRecord({"roc_auc": auc, "accuracy": report["accuracy"]})

    min_nodes = int(cfg["min-nodes"])
    strategy = CountingFedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=min_nodes,
                      min_available_nodes=min_nodes)
    strategy.start(grid=grid, initial_arrays=ArrayRecord(model.state_dict()),
                   num_rounds=int(cfg["num-server-rounds"]), train_config=ConfigRecord({}), evaluate_fn=evaluate)
