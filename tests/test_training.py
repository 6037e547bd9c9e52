"""Notebook 01's training path: seeding, the in-memory mini-batches (with their input checks), the step
notebook 01 writes, run by training.fit, and predictions that follow the model's device."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from device_check import assert_on_model_device
from learnstrat_helpers import training, vision
from learnstrat_helpers.training import seed_everything
from learnstrat_helpers.vision import batched_logits, shuffled_batches

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01_transfer_learning.ipynb"


def notebook_01_training():
    """``classifier_step`` and ``train_classifier`` exactly as notebook 01 defines them (its cell, run here)."""
    cells = ["".join(c["source"]) for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "code"]
    source = next(c for c in cells if c.startswith("def classifier_step("))
    namespace = {"nn": nn, "torch": torch, "vision": vision, "fit": training.fit}
    exec(source, namespace)
    return namespace


def toy_problem(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two well-separated Gaussian blobs in 2-d: linearly separable with a wide margin."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 2, generator=g) * 0.3 + (y.float() * 2 - 1).unsqueeze(1) * torch.tensor([2.0, 2.0])
    return x, y


def test_seed_everything_makes_all_rngs_repeatable():
    seed_everything(123)
    first = (torch.randn(5), np.random.rand(3), random.random())
    seed_everything(123)
    second = (torch.randn(5), np.random.rand(3), random.random())
    assert torch.equal(first[0], second[0])
    assert np.array_equal(first[1], second[1]) and first[2] == second[2]
    seed_everything(124)
    assert not torch.equal(first[0], torch.randn(5))


@pytest.mark.parametrize("x, y, n_classes, message", [
    (torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), 2, "is empty"),
    (torch.zeros(3, 2), torch.zeros(2, dtype=torch.long), 2, "3 inputs but 2 labels"),
    (torch.tensor([[0.0, float("nan")], [1.0, 1.0]]), torch.tensor([0, 1]), 2, "NaN or inf"),
    (torch.tensor([[0.0, float("inf")], [1.0, 1.0]]), torch.tensor([0, 1]), 2, "NaN or inf"),
    (torch.zeros(2, 2), torch.tensor([0, 2]), 2, r"labels must lie in 0\.\.1, found 0\.\.2"),
    (torch.zeros(2, 2), torch.tensor([-1, 1]), 2, r"labels must lie in 0\.\.1, found -1\.\.1"),
    (torch.zeros(2, 2), torch.tensor([0.0, 1.0]), 2, "labels must be a 1-d integer tensor, got torch.float32"),
    (torch.zeros(2, 2), torch.tensor([[0], [1]]), 2, r"labels must be a 1-d integer tensor.*\(2, 1\)"),
])
def test_shuffled_batches_checks_its_data(x, y, n_classes, message):
    with pytest.raises(ValueError, match=message):
        shuffled_batches(x, y, 4, steps=3, n_classes=n_classes)


@pytest.mark.parametrize("steps", [0, -3])
def test_shuffled_batches_rejects_no_steps(steps):
    x, y = toy_problem()
    with pytest.raises(ValueError, match="steps must be at least 1"):
        shuffled_batches(x, y, 8, steps=steps, n_classes=2)


def test_shuffled_batches_full_random_batches_each_epoch_repeatable_by_seed():
    x, y = toy_problem(20)
    x = x + torch.arange(20).unsqueeze(1) * 100.0   # row i is recognisable from its value
    batches, epochs = shuffled_batches(x, y, 8, steps=5, n_classes=2, seed=7)
    assert epochs == 3   # 2 full batches per epoch (the last 4 examples wait for the next epoch's order)
    first, second = batches(0), batches(1)
    assert len(first) == len(second) == 2 and all(len(b[0]) == 8 for b in first + second)
    rows = [int(r) for inputs, _ in first for r in (inputs[:, 0] / 100).round()]
    assert len(set(rows)) == 16 and rows != sorted(rows)
    assert all(torch.equal(yb, y[(xb[:, 0] / 100).round().long()]) for xb, yb in first)
    again, _ = shuffled_batches(x, y, 8, steps=5, n_classes=2, seed=7)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(again(0), first))
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(first, second)), "every epoch a new order"
    small, epochs = shuffled_batches(x[:3], y[:3], 8, steps=5, n_classes=2)
    assert epochs == 5 and [len(b[0]) for b in small(0)] == [3]   # the batch shrinks to the data


def test_shuffled_batches_images_channels_last():
    images, labels = torch.rand(6, 3, 4, 4), torch.tensor([0, 1, 0, 1, 0, 1])
    batches, _ = shuffled_batches(images, labels, 3, steps=2, n_classes=2)
    out = batches(0)
    assert [b[0].shape for b in out] == [torch.Size([3, 3, 4, 4])] * 2
    assert all(b[0].is_contiguous(memory_format=torch.channels_last) for b in out)


def test_notebook_01_training_learns_only_trainable_parameters_and_follows_fit():
    train_classifier = notebook_01_training()["train_classifier"]
    x, y = toy_problem()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2))
    model[0].requires_grad_(False)
    frozen = model[0].weight.clone()
    history = train_classifier(model, x, y, steps=30, batch_size=16, lr=0.1)
    assert len(history.logs) == 30 and history.seconds > 0 and not model.training
    assert torch.equal(model[0].weight, frozen)
    assert (batched_logits(model, x).argmax(1) == y).all()


def test_notebook_01_training_is_repeatable_with_a_seed_and_reports_divergence():
    train_classifier = notebook_01_training()["train_classifier"]
    x, y = toy_problem()
    weights = []
    for _ in range(2):
        torch.manual_seed(0)
        model = nn.Linear(2, 2)
        train_classifier(model, x, y, steps=5, batch_size=8, lr=0.05, seed=7)
        weights.append(model.weight.detach().clone())
    assert torch.equal(weights[0], weights[1])
    torch.manual_seed(0)
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        train_classifier(nn.Linear(2, 2), x, y, steps=20, lr=1e30)
    with pytest.raises(ValueError, match="empty parameter list"):
        train_classifier(nn.Linear(2, 2).requires_grad_(False), x, y, steps=5)


def test_notebook_01_training_step_runs_on_the_model_device():
    namespace = notebook_01_training()
    with torch.device("meta"):
        model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                              nn.Linear(4 * 8 * 8, 10))
    images, labels = torch.rand(12, 1, 8, 8), torch.arange(12) % 10   # on the CPU, like notebook 01's tensors
    step = namespace["classifier_step"]

    def run(watch):
        namespace["classifier_step"] = watch(step)
        namespace["train_classifier"](model, images, labels, steps=2, batch_size=6)

    assert_on_model_device(run)
    namespace["classifier_step"] = step
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=1)
    with pytest.raises(AssertionError, match="device"):   # a batch nobody moved is caught
        assert_on_model_device(lambda watch: watch(step)(model, (images[:6], labels[:6]), optimizer, scheduler))


class _DeviceEcho(nn.Module):
    """Records the device of its input; returns CPU logits so that a meta model can be 'predicted' with."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(2, device="meta"))
        self.seen: list[str] = []

    def forward(self, x):
        self.seen.append(x.device.type)
        return torch.zeros(len(x), 2)


def test_batched_logits_moves_batches_to_the_model_device_and_back():
    model = _DeviceEcho()
    out = batched_logits(model, torch.rand(7, 3), batch_size=3)
    assert model.seen == ["meta"] * 3 and out.shape == (7, 2) and out.device.type == "cpu"


@pytest.mark.parametrize("training_mode", [True, False])
def test_batched_logits_restores_the_mode_and_runs_in_eval(training_mode):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.5), nn.Linear(8, 2))
    model.train(training_mode)
    x = torch.randn(10, 3)
    logits = batched_logits(model, x, batch_size=3)
    assert model.training is training_mode
    assert logits.shape == (10, 2) and not logits.requires_grad
    model.eval()
    with torch.no_grad():
        assert torch.allclose(logits, model(x)), "batched_logits must run in eval mode (no dropout)"
