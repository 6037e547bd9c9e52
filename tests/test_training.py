"""Seeding, input checks and the shared training loop, on tiny problems."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from learnstrat_helpers.training import History, check_examples, fit_classifier, predict, seed_everything


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
def test_check_examples_errors(x, y, n_classes, message):
    with pytest.raises(ValueError, match=message):
        check_examples(x, y, n_classes)


def test_check_examples_accepts_good_data_and_names_what():
    check_examples(torch.zeros(2, 3), torch.tensor([0, 1]), 2)
    check_examples(torch.zeros(2, 3, dtype=torch.long), torch.tensor([1, 1], dtype=torch.int32), 2)
    with pytest.raises(ValueError, match="^validation data is empty"):
        check_examples(torch.zeros(0), torch.zeros(0, dtype=torch.long), 2, what="validation data")


def test_fit_classifier_learns_a_separable_problem():
    x, y = toy_problem()
    torch.manual_seed(0)
    model = nn.Linear(2, 2)
    history = fit_classifier(model, x, y, n_classes=2, steps=30, batch_size=16, lr=0.1, show_progress=False)
    assert isinstance(history, History) and history.seconds > 0
    assert history.step == [] and history.val_acc == []  # no val given: nothing evaluated
    assert not model.training
    assert (predict(model, x).argmax(1) == y).all()


def test_fit_classifier_is_repeatable_with_a_seed():
    x, y = toy_problem()
    weights = []
    for _ in range(2):
        torch.manual_seed(0)
        model = nn.Linear(2, 2)
        fit_classifier(model, x, y, n_classes=2, steps=5, batch_size=8, lr=0.05, seed=7, show_progress=False)
        weights.append(model.weight.detach().clone())
    assert torch.equal(weights[0], weights[1])


def test_fit_classifier_history_with_validation():
    x, y = toy_problem(64, seed=0)
    xv, yv = toy_problem(32, seed=1)
    torch.manual_seed(0)
    model = nn.Linear(2, 2)
    history = fit_classifier(model, x, y, n_classes=2, steps=25, batch_size=16, lr=0.1, val=(xv, yv),
                             eval_every=10, show_progress=False)
    assert history.step == [10, 20, 25]  # every 10 steps, and always the last
    assert len(history.train_loss) == len(history.val_acc) == 3
    assert all(0.0 <= a <= 1.0 for a in history.val_acc)
    assert history.val_acc[-1] == 1.0
    assert all(np.isfinite(history.train_loss)) and history.train_loss[-1] < history.train_loss[0] + 1e-6


def test_fit_classifier_only_trains_trainable_parameters():
    x, y = toy_problem()
    model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2))
    model[0].requires_grad_(False)
    frozen = model[0].weight.clone()
    head = model[2].weight.clone()
    fit_classifier(model, x, y, n_classes=2, steps=3, lr=0.1, show_progress=False)
    assert torch.equal(model[0].weight, frozen)
    assert not torch.equal(model[2].weight, head)


def test_fit_classifier_rejects_a_fully_frozen_model():
    x, y = toy_problem()
    model = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        fit_classifier(model, x, y, n_classes=2, steps=5, show_progress=False)


@pytest.mark.parametrize("steps", [0, -3])
def test_fit_classifier_rejects_no_steps(steps):
    x, y = toy_problem()
    with pytest.raises(ValueError, match="steps must be at least 1"):
        fit_classifier(nn.Linear(2, 2), x, y, n_classes=2, steps=steps, show_progress=False)


def test_fit_classifier_checks_its_data():
    x, y = toy_problem()
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.0"):
        fit_classifier(nn.Linear(2, 2), x, y, n_classes=1, steps=5, show_progress=False)


def test_fit_classifier_divergence_raises_floating_point_error():
    x, y = toy_problem()
    torch.manual_seed(0)
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        fit_classifier(nn.Linear(2, 2), x, y, n_classes=2, steps=20, lr=1e30, show_progress=False)


def test_fit_classifier_applies_augment_with_its_generator():
    x, y = toy_problem(16)
    seen = []

    def augment(batch, generator):
        assert isinstance(generator, torch.Generator)
        seen.append(batch.shape)
        return batch

    fit_classifier(nn.Linear(2, 2), x, y, n_classes=2, steps=3, batch_size=4, show_progress=False, augment=augment)
    assert seen == [torch.Size([4, 2])] * 3


@pytest.mark.parametrize("training", [True, False])
def test_predict_restores_the_mode_and_batches(training):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.5), nn.Linear(8, 2))
    model.train(training)
    x = torch.randn(10, 3)
    logits = predict(model, x, batch_size=3)
    assert model.training is training
    assert logits.shape == (10, 2) and not logits.requires_grad
    model.eval()
    with torch.no_grad():
        expected = model(x)
    assert torch.allclose(logits, expected), "predict must run in eval mode (no dropout)"
