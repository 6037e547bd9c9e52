"""ServerApp: FedAvg (weighted by each bank's number of loans) over the banks that are connected, evaluated
each round on the held-out test loans (ROC-AUC). Tolerates a bank dropping out: a round needs only
``min-nodes`` banks.

Explained in 04, section "Part 3: the same strategy on Flower".
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from sklearn.metrics import roc_auc_score

from learnstrat_helpers import federated

from .task import load_test, make_model

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    x_test, y_test = load_test()
    torch.manual_seed(int(cfg["seed"]))          # the same initial model as the in-package simulation
    model = make_model(x_test.shape[1])
    results_path = str(cfg.get("results-path", ""))
    history: dict[str, list] = {"round": [], "roc_auc": [], "accuracy": [], "time": []}

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        model.load_state_dict(arrays.to_torch_state_dict())
        report = federated.test(model, x_test, y_test)
        auc = float(roc_auc_score(y_test.numpy(), report["scores"]))
        history["round"].append(server_round)
        history["roc_auc"].append(auc)
        history["accuracy"].append(report["accuracy"])
        history["time"].append(time.time())
        if results_path:
            Path(results_path).write_text(json.dumps(history, indent=2) + "\n")
        return MetricRecord({"roc_auc": auc, "accuracy": report["accuracy"]})

    min_nodes = int(cfg["min-nodes"])
    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=min_nodes,
                      min_available_nodes=min_nodes)
    strategy.start(grid=grid, initial_arrays=ArrayRecord(model.state_dict()),
                   num_rounds=int(cfg["num-server-rounds"]), train_config=ConfigRecord({}), evaluate_fn=evaluate)
