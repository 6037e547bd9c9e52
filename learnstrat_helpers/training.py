"""Seeding and one small training loop shared by the notebooks.

Explained in 01, section "Vision: where transfer stops paying".
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .metrics import accuracy
from .progress import progress


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so a run can be repeated.

    Explained in 01, section "Set-up: run profiles".
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def check_examples(x: torch.Tensor, y: torch.Tensor, n_classes: int, what: str = "training data") -> None:
    """One clear error for the usual mistakes: no examples, mismatched lengths, NaN, unknown labels."""
    if len(x) == 0:
        raise ValueError(f"{what} is empty.")
    if len(x) != len(y):
        raise ValueError(f"{what}: {len(x)} inputs but {len(y)} labels.")
    if x.is_floating_point() and not torch.isfinite(x).all():
        raise ValueError(f"{what} contains NaN or inf values.")
    if y.dtype not in (torch.int64, torch.int32) or y.ndim != 1:
        raise ValueError(f"{what}: labels must be a 1-d integer tensor, got {y.dtype} of shape {tuple(y.shape)}.")
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"{what}: labels must lie in 0..{n_classes - 1}, found {int(y.min())}..{int(y.max())}.")


@dataclass
class History:
    """What happened during training, one entry per evaluation."""

    step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    seconds: float = 0.0


@torch.inference_mode()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Logits for ``x`` (on the CPU), in batches on the model's device, with the model in eval mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    logits = torch.cat([model(x[i: i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return logits


def fit_classifier(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, n_classes: int, steps: int,
                   batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 1e-4,
                   val: tuple[torch.Tensor, torch.Tensor] | None = None, eval_every: int = 0,
                   augment=None, seed: int = 0, show_progress: bool = True) -> History:
    """Train ``model`` (its trainable parameters only) with AdamW and a cosine schedule for ``steps``
    mini-batch steps on in-memory CPU tensors, each batch moved to the model's device. Returns the
    :class:`History`.

    Explained in 01, section "Vision: where transfer stops paying".
    """
    check_examples(x, y, n_classes)
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}.")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters: unfreeze something first.")
    device = params[0].device  # the data stays on the CPU; each batch moves to the model's device
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps)
    generator = torch.Generator().manual_seed(seed)
    history, start = History(), time.perf_counter()
    batch_size = min(batch_size, len(x))
    order = torch.randperm(len(x), generator=generator)
    cursor = 0
    model.train()
    for step in progress(range(1, steps + 1), desc="training") if show_progress else range(1, steps + 1):
        if cursor + batch_size > len(x):
            order, cursor = torch.randperm(len(x), generator=generator), 0
        batch = order[cursor: cursor + batch_size]
        cursor += batch_size
        inputs = x[batch] if augment is None else augment(x[batch], generator)
        inputs, targets = inputs.to(device), y[batch].to(device)
        if inputs.ndim == 4:  # images: channels-last makes CPU convolutions markedly faster
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        loss = nn.functional.cross_entropy(model(inputs), targets)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the loss became {loss.item()} at step {step}: lower the learning rate.")
        if val is not None and eval_every and (step % eval_every == 0 or step == steps):
            history.step.append(step)
            history.train_loss.append(loss.item())
            history.val_acc.append(accuracy(predict(model, val[0]), val[1]))
    history.seconds = time.perf_counter() - start
    model.eval()
    return history
