"""The one training loop of the course and what every loop needs. The notebooks write the *step* (forward, loss,
backward, optimizer step): that is what they teach; :func:`fit` is the loop around it (device, logging, progress bar,
evaluation, early stopping). Federated simulation has its own lockstep loop (``federated.simulate``).
Explained in 01, section "Vision: where transfer stops paying", and in 02, section "Fine-tuning: the whole encoder learns"."""

import contextlib
import copy
import ctypes
import gc
import math
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so a run can be repeated. Explained in 01, section "Set-up: run profiles"."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def progress(iterable: Iterable, *, desc: str | None = None, total: int | None = None, leave: bool = False):
    """``tqdm.auto`` around ``iterable``, silent when ``LEARNSTRAT_PROGRESS`` is 0 (tests, ``make course``)."""
    off = os.environ.get("LEARNSTRAT_PROGRESS", "1").strip().lower() in {"0", "false", "off", "no"}
    return tqdm(iterable, desc=desc, total=total, leave=leave, disable=off)


def to_device(batch: Any, device: torch.device | str) -> Any:
    """``batch`` with every tensor in it (also inside dicts, lists and tuples) moved to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def _check_examples(x: torch.Tensor, y: torch.Tensor, what: str) -> None:
    """One clear ValueError for no examples, labels not matching the inputs, or NaN/inf inputs (``what``: the data)."""
    if len(x) == 0 or len(x) != len(y):
        raise ValueError(f"{what} is empty: no data to train on." if len(x) == 0 else
                         f"{what} has {len(x)} inputs but {len(y)} labels.")
    if x.is_floating_point() and not torch.isfinite(x).all():
        raise ValueError(f"{what} contains NaN or inf values.")


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def length_grouped_batches(lengths: Sequence[int], batch_size: int, *, shuffle: bool = True, seed: int = 0,
                           group_by_length: bool = True, max_tokens: int | None = None) -> list[list[int]]:
    """Index batches for one epoch: similar lengths share a batch (sorted within chunks of 50 batches), the order stays
    random (without ``shuffle``: sorted); ``max_tokens`` caps texts x longest length per batch.
    Explained in 02, section "Mechanics: dynamic padding and length-grouped batches"."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    if len(lengths := np.asarray(lengths)) == 0:
        raise ValueError("length_grouped_batches got no examples.")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths)) if shuffle else np.arange(len(lengths))
    if group_by_length and not shuffle:
        order = np.argsort(lengths, kind="stable")
    elif group_by_length:
        chunk = batch_size * 50
        order = np.concatenate([c[np.argsort(lengths[c], kind="stable")] for c in
                                (order[i: i + chunk] for i in range(0, len(order), chunk))])
    batches = [order[i: i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    if max_tokens is not None:
        batches = [b[i: i + size] for b in batches for size in [max(1, min(len(b), max_tokens // int(max(lengths[b]))))]
                   for i in range(0, len(b), size)]
    return [batches[i] for i in rng.permutation(len(batches))] if shuffle and group_by_length else batches


def _adamw(groups: list[dict], total_steps: int, warmup_ratio: float = 0.1, **kwargs):
    """``(AdamW, its warm-up schedule)``, AdamW fused where every parameter allows (much of a small-batch CPU step)."""
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype == torch.float32 for g in groups for p in g["params"])
    optimizer = torch.optim.AdamW(groups, fused=fused, **kwargs)
    return optimizer, warmup_linear_schedule(optimizer, int(warmup_ratio * total_steps), total_steps)


@contextlib.contextmanager
def _quiet_transformers():
    """Silence transformers while it loads: its "newly initialized" warning (the new head is the point), its bars."""
    from transformers.utils import logging as hf_logging
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar() if bars else hf_logging.disable_progress_bar()


def warmup_linear_schedule(optimizer, warmup_steps: int, total_steps: int):
    """Learning rate rising linearly over ``warmup_steps``, then falling linearly to 0 at ``total_steps``.
    Explained in 02, section "Mechanics: warm-up, layer-wise decay, clipping"."""
    if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"need 0 <= warmup_steps <= total_steps and total_steps >= 1, got {warmup_steps}, {total_steps}.")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass
class _History:
    """What :func:`fit` saw: per step its logged values and seconds; per evaluation the step, epoch and metrics; per
    epoch its seconds; the restored ``best_epoch``. Explained in 02, section "Fine-tuning: the whole encoder learns"."""

    logs: list[dict] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    best_epoch: int | None = None

    def series(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(step numbers, values) of ``key``, from the step logs, or from the evaluations if none logged it."""
        if not (rows := [(i, s[key]) for i, s in enumerate(self.logs) if key in s]):
            rows = [(e["step"], e[key]) for e in self.evals if key in e]
        return np.array([i for i, _ in rows], dtype=int), np.array([v for _, v in rows], dtype=float)

    @property
    def seconds(self) -> float:
        return float(sum(self.epoch_seconds))


def fit(model: nn.Module, batches: Sequence | Callable[[int], Sequence], step: Callable, *, optimizer, scheduler=None,
        epochs: int = 1, max_steps: int | None = None, evaluate: Callable[[nn.Module], dict] | None = None,
        patience: int | None = None, desc: str = "training", show_progress: bool = True) -> _History:
    """For each epoch, each batch of ``batches`` (or of ``batches(epoch)``), on the model's device:
    ``step(model, batch, optimizer, scheduler) -> dict`` of finite numbers to log; ``max_steps`` ends early.
    ``evaluate(model) -> dict`` runs after every epoch; with ``patience``, no better ``val_loss`` for that many epochs
    stops the run and restores the best epoch's weights.
    Explained in 02, section "Fine-tuning: the whole encoder learns"."""
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}.")
    if patience is not None and evaluate is None:
        raise ValueError("early stopping (patience=...) needs an evaluate function.")
    device = model_device(model)
    history, done, best, best_state, waited = _History(), 0, math.inf, None, 0
    for epoch in range(epochs):
        plan = list(batches(epoch) if callable(batches) else batches)
        if max_steps is not None:
            plan = plan[: max(0, max_steps - done)]   # cut before the bar: its total is what runs
        if not plan:
            break
        model.train()
        start, label = time.perf_counter(), f"{desc} {epoch + 1}/{epochs}" if epochs > 1 else desc
        for batch in progress(plan, desc=label) if show_progress else plan:
            began = time.perf_counter()
            logged = step(model, to_device(batch, device), optimizer, scheduler)
            history.step_seconds.append(time.perf_counter() - began)
            if not all(math.isfinite(v) for v in logged.values()):
                raise FloatingPointError(f"step {done + 1}: {logged}: lower the learning rate.")
            history.logs.append(logged)
            done += 1
        history.epoch_seconds.append(time.perf_counter() - start)
        if evaluate is not None:
            with torch.no_grad():
                history.evals.append({"step": done, "epoch": epoch, **evaluate(model.eval())})
        if patience is not None:
            if history.evals[-1]["val_loss"] < best:
                best, waited, history.best_epoch = history.evals[-1]["val_loss"], 0, epoch
                best_state = copy.deepcopy(model.state_dict())
            elif (waited := waited + 1) >= patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    del best_state
    release_memory()
    return history


def release_memory() -> None:
    """Collect garbage, empty the GPU cache and hand freed memory back to the OS (glibc ``malloc_trim``), so runs
    one after another don't ratchet memory up. Explained in 02, section "Fine-tuning: the whole encoder learns"."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    with contextlib.suppress(OSError, AttributeError):  # not glibc (macOS, Windows): nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def limit_memory_growth(mmap_threshold_mb: float = 1) -> bool:
    """Allocations above ``mmap_threshold_mb`` get their own memory map, freed to the OS, and all threads share one
    heap: dynamic padding fragments glibc's heaps (~100 MB a model). Used by 02 and 03 (fine-tuning); it made 01
    and 04 (many small image tensors) 1.6-2x slower. False without glibc. Explained in 02, section "Recap / imports"."""
    if mmap_threshold_mb < 0:
        raise ValueError(f"mmap_threshold_mb must be >= 0, got {mmap_threshold_mb}.")
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_mmap_threshold, m_arena_max = -3, -8  # from <malloc.h>; the threshold, once set, stays put
    mallopt(m_arena_max, 1)  # one heap: glibc's default, 8 per core, lets every thread fragment its own
    return bool(mallopt(m_mmap_threshold, int(mmap_threshold_mb * 2**20)))
