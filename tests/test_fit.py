"""The one training loop (training.fit) and its helpers: batches, schedule, early stopping, devices."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from learnstrat_helpers import training
from device_check import assert_on_model_device


def sgd_step(model, batch, optimizer, scheduler):
    x, y = batch
    loss = nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return {"loss": loss.item()}


def toy_batches(n_batches=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_batches * 8, 4, generator=g)
    y = (x[:, 0] > 0).long()
    return [(x[i: i + 8], y[i: i + 8]) for i in range(0, len(x), 8)]


def test_fit_learns_and_logs_every_step():
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    batches = toy_batches()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    history = training.fit(model, batches, sgd_step, optimizer=opt, epochs=5, show_progress=False)
    assert len(history.logs) == 30 and len(history.step_seconds) == 30 and len(history.epoch_seconds) == 5
    steps, losses = history.series("loss")
    assert list(steps) == list(range(30)) and losses[-6:].mean() < losses[:6].mean()
    assert not model.training, "fit leaves the model in eval mode"


def test_fit_max_steps_cuts_the_plan_so_the_bar_total_is_what_runs():
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = []
    history = training.fit(model, lambda epoch: toy_batches(), lambda *a: seen.append(1) or sgd_step(*a),
                           optimizer=opt, epochs=3, max_steps=8, show_progress=False)
    assert len(seen) == 8 and len(history.epoch_seconds) == 2


def test_fit_evaluates_and_stops_early_restoring_the_best_weights():
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scores = iter([3.0, 1.0, 2.0, 2.5, 0.1])
    snapshots = []

    def evaluate(m):
        snapshots.append(m.weight.detach().clone())
        return {"val_loss": next(scores)}

    history = training.fit(model, toy_batches(), sgd_step, optimizer=opt, epochs=5, evaluate=evaluate, patience=2,
                           show_progress=False)
    assert [e["val_loss"] for e in history.evals] == [3.0, 1.0, 2.0, 2.5]
    assert history.best_epoch == 1 and torch.equal(model.weight, snapshots[1])


def test_fit_errors_are_clear():
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="epochs"):
        training.fit(model, toy_batches(), sgd_step, optimizer=opt, epochs=0)
    with pytest.raises(ValueError, match="evaluate"):
        training.fit(model, toy_batches(), sgd_step, optimizer=opt, patience=1)
    with pytest.raises(FloatingPointError, match="learning rate"):
        training.fit(model, toy_batches(), lambda *a: {"loss": float("nan")}, optimizer=opt, show_progress=False)


def test_fit_moves_every_batch_to_the_model_device():
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    assert_on_model_device(lambda watch: training.fit(model, lambda epoch: toy_batches(2), watch(sgd_step),
                                                      optimizer=opt, show_progress=False))


def test_the_device_check_catches_a_step_that_leaves_a_tensor_behind():
    with torch.device("meta"):
        model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    bias = torch.zeros(2)   # created on the CPU and never moved: the mistake the check exists for

    def broken_step(model, batch, optimizer, scheduler):
        x, y = batch
        loss = nn.functional.cross_entropy(model(x) + bias, y)
        loss.backward()
        return {"loss": loss.item()}

    with pytest.raises(AssertionError, match="device"):
        assert_on_model_device(lambda watch: training.fit(model, toy_batches(1), watch(broken_step), optimizer=opt,
                                                          show_progress=False))
    with pytest.raises(AssertionError, match="device"):   # and a batch the loop forgot to move
        assert_on_model_device(lambda watch: watch(sgd_step)(model, toy_batches(1)[0], opt, None))


@pytest.mark.parametrize("shuffle", [True, False])
def test_length_grouped_batches_cover_every_index_once_with_little_padding(shuffle):
    lengths = np.random.default_rng(0).integers(3, 60, size=500)
    batches = training.length_grouped_batches(lengths, 16, shuffle=shuffle, seed=1)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(500))
    padded = sum(len(b) * max(lengths[b]) for b in batches)
    random_padded = sum(len(b) * max(lengths[b]) for b in training.length_grouped_batches(
        lengths, 16, group_by_length=False, seed=1))
    assert padded < 0.8 * random_padded
    if not shuffle:
        assert [lengths[i] for b in batches for i in b] == sorted(lengths)


def test_length_grouped_batches_max_tokens_and_errors():
    lengths = [10] * 8 + [100] * 8
    batches = training.length_grouped_batches(lengths, 8, shuffle=False, max_tokens=400)
    assert all(len(b) * max(lengths[i] for i in b) <= 400 for b in batches)
    assert sorted(i for b in batches for i in b) == list(range(16))
    with pytest.raises(ValueError, match="batch_size"):
        training.length_grouped_batches(lengths, 0)
    with pytest.raises(ValueError, match="no examples"):
        training.length_grouped_batches([], 4)


def test_warmup_linear_schedule_rises_then_falls_to_zero():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = training.warmup_linear_schedule(opt, 2, 6)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    assert lrs[0] < lrs[1] < lrs[2] and lrs[2] > lrs[3] > lrs[4] > lrs[5] and lrs[-1] > 0
    assert opt.param_groups[0]["lr"] == 0
    with pytest.raises(ValueError):
        training.warmup_linear_schedule(opt, 7, 6)


def test_to_device_walks_containers_and_progress_can_be_silenced(monkeypatch):
    batch = {"a": torch.ones(2), "b": [torch.zeros(1), "text"], "c": (torch.ones(1),)}
    moved = training.to_device(batch, "meta")
    assert moved["a"].is_meta and moved["b"][0].is_meta and moved["b"][1] == "text" and moved["c"][0].is_meta
    monkeypatch.setenv("LEARNSTRAT_PROGRESS", "0")
    assert training.progress(range(3)).disable
    assert training.model_device(nn.Linear(1, 1)).type == "cpu"


def test_memory_helpers_run_and_check_their_argument():
    training.release_memory()
    assert training.limit_memory_growth() in (True, False)
    with pytest.raises(ValueError):
        training.limit_memory_growth(-1)
