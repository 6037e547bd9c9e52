"""Flower's deployment engine runs the same FedAvg as the in-package simulation: one SuperLink and one
SuperNode per bank, separate processes on 127.0.0.1. Checks the global model against the simulation, then
interrupts one SuperNode mid-run and checks that the run completes with the other banks. Every process is
stopped at the end, also when the test fails (``run_deployment`` stops them in a ``finally``).
The same measurement, with timings, is recorded by ``benchmarks/federated_sim_vs_flower.py``."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

import pytest
from sklearn.metrics import roc_auc_score

from learnstrat_helpers import datasets, federated

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "apps" / "flower_bank"
TOLERANCE = 0.005   # ROC-AUC: the same arithmetic in float32 on both sides, aggregated in another order


def load_launcher():
    spec = importlib.util.spec_from_file_location("flower_bank_launch", APP / "launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def simulated_auc(rounds: int, cfg: dict) -> float:
    banks = datasets.load_credit_banks()
    x_test, y_test = banks["test"]
    n_features = x_test.shape[1]
    parameters = federated.fedavg_loop(lambda: federated.mlp(n_features, 2), list(banks["banks"].values()),
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
    result = load_launcher().run_deployment(tmp_path, rounds=rounds, kill_after_round=kill_after)
    assert result["rounds"] == list(range(rounds + 1)), result          # round 0 = the initial model
    assert result["clients_answered"][:kill_after] == [4] * kill_after, result
    expected = simulated_auc(kill_after, cfg)
    got = result["roc_auc"][kill_after]
    assert abs(got - expected) <= TOLERANCE, f"Flower {got:.4f} vs simulation {expected:.4f} after {kill_after} rounds"
    # SuperNode 0 was interrupted after round 2: round 3 completed with the 3 other banks.
    assert result["killed_after_round"] == kill_after
    assert result["clients_answered"][-1] == 3, result
