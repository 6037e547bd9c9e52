"""Fine-tuning a BERT-family classifier: tokenise once, batch by length, train with the usual mechanics.

The notebook shows the training step itself (forward, loss, backward, clip, step, schedule); this module
holds the plumbing around it: token ids kept unpadded, length-grouped dynamically padded batches,
layer-wise learning-rate decay, warm-up + linear decay, per-epoch history, evaluation, top-k unfreezing,
LoRA through ``peft``, and a token-counting collator for the Hugging Face ``Trainer``.

Explained in 02, section "Fine-tuning: the whole encoder learns".
"""

from __future__ import annotations

import copy
import math
import re
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .training import limit_memory_growth, progress, release_memory, warmup_linear_schedule  # noqa: F401
from .text import checked_texts

N_LABELS_DEFAULT = 2


@dataclass
class TokenizedTexts:
    """Token ids of each text (unpadded, truncated) and their labels: tokenise once, batch many times.

    Explained in 02, section "Mechanics: dynamic padding and length-grouped batches".
    """

    input_ids: list[list[int]]
    labels: torch.Tensor
    pad_id: int
    texts: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(ids) for ids in self.input_ids])

    def subset(self, index) -> "TokenizedTexts":
        """The examples at ``index`` (a sequence of ints), in that order."""
        index = [int(i) for i in index]
        if not index:
            raise ValueError("subset got no indices.")
        return TokenizedTexts([self.input_ids[i] for i in index], self.labels[index], self.pad_id,
                              [self.texts[i] for i in index] if self.texts else [])


def tokenize(texts: Sequence[str], labels, tokenizer, *, max_length: int = 64,
             n_labels: int = N_LABELS_DEFAULT) -> TokenizedTexts:
    """Tokenise ``texts`` once (truncated to ``max_length`` tokens, not padded) and check the labels.

    Raises ValueError for no texts, an empty text, a count mismatch, or a label outside 0..n_labels-1.

    Explained in 02, section "Mechanics: dynamic padding and length-grouped batches".
    """
    texts = checked_texts(texts)
    labels = torch.as_tensor(np.asarray(labels)).long()
    if labels.ndim != 1 or len(labels) != len(texts):
        raise ValueError(f"got {len(texts)} texts but labels of shape {tuple(labels.shape)}.")
    bad = torch.nonzero((labels < 0) | (labels >= n_labels)).flatten()
    if len(bad):
        raise ValueError(f"label {int(labels[bad[0]])} (text {int(bad[0])}) is outside the label set 0..{n_labels - 1}.")
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2 (for [CLS] and [SEP]), got {max_length}.")
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    return TokenizedTexts(ids, labels, int(tokenizer.pad_token_id), texts)


def tokenize_dataset(dataset, tokenizer, *, text_column: str = "sentence", label_column: str = "label",
                     max_length: int = 64, n_labels: int = N_LABELS_DEFAULT) -> TokenizedTexts:
    """:func:`tokenize` for a ``datasets.Dataset``; a missing column raises a SchemaError naming it.

    Explained in 02, section "Mechanics: dynamic padding and length-grouped batches".
    """
    from .datasets import SchemaError

    missing = [c for c in (text_column, label_column) if c not in dataset.column_names]
    if missing:
        raise SchemaError(f"the dataset lacks column(s) {missing}; it has {dataset.column_names}.")
    return tokenize(dataset[text_column], dataset[label_column], tokenizer, max_length=max_length, n_labels=n_labels)


def make_batches(data: TokenizedTexts, batch_size: int, *, group_by_length: bool = True, shuffle: bool = True,
                 seed: int = 0, chunk_batches: int = 50) -> list[list[int]]:
    """Index batches for one epoch. With ``group_by_length`` the examples are shuffled, cut into chunks
    of ``chunk_batches`` batches, sorted by length inside each chunk, and the batches are shuffled again:
    each batch holds sentences of similar length (little padding) yet the epoch stays random.

    Explained in 02, section "Mechanics: dynamic padding and length-grouped batches".
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    if len(data) == 0:
        raise ValueError("make_batches got no examples.")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data)) if shuffle else np.arange(len(data))
    if group_by_length:
        lengths = data.lengths
        chunk = batch_size * chunk_batches
        order = np.concatenate([c[np.argsort(lengths[c], kind="stable")] for c in
                                (order[i: i + chunk] for i in range(0, len(order), chunk))])
    batches = [order[i: i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    if shuffle and group_by_length:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def collate(data: TokenizedTexts, index: Sequence[int], *, pad_to: int | None = None) -> dict[str, torch.Tensor]:
    """Tensors for one batch: ids padded to the batch's longest text (dynamic padding), or to ``pad_to``.

    Explained in 02, section "Mechanics: dynamic padding and length-grouped batches".
    """
    rows = [data.input_ids[i] for i in index]
    width = max(len(r) for r in rows) if pad_to is None else pad_to
    if width < max(len(r) for r in rows):
        raise ValueError(f"pad_to={pad_to} is shorter than the longest text ({max(len(r) for r in rows)} tokens).")
    input_ids = torch.full((len(rows), width), data.pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for j, r in enumerate(rows):
        input_ids[j, : len(r)] = torch.tensor(r)
        attention_mask[j, : len(r)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": data.labels[list(index)]}


def load_classifier(source: str, n_labels: int = N_LABELS_DEFAULT, seed: int = 0):
    """A pretrained encoder with a new, randomly initialised classification head (seeded).

    Explained in 02, section "Fine-tuning: the whole encoder learns".
    """
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    torch.manual_seed(seed)
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # "newly initialized: classifier" is the point, not a warning
    hf_logging.disable_progress_bar()  # a bar for a 0.1 s load is noise in the notebook
    try:
        model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=n_labels)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    return model


def count_trainable_parameters(model: nn.Module) -> int:
    """Number of parameters that receive gradients.

    Explained in 02, section "Strategies side by side".
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _encoder_layers(model: nn.Module) -> nn.ModuleList:
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and name.split(".")[-1] in ("layer", "layers") and len(module):
            return module
    raise ValueError("could not find the encoder's list of layers (a ModuleList named 'layer' or 'layers').")


def unfreeze_top_layers(model: nn.Module, k: int) -> nn.Module:
    """Freeze everything, then let the top ``k`` encoder layers, the pooler and the classifier train.

    Explained in 02, section "Strategies side by side".
    """
    layers = _encoder_layers(model)
    if not 0 <= k <= len(layers):
        raise ValueError(f"k must be between 0 and {len(layers)} (the encoder's layers), got {k}.")
    model.requires_grad_(False)
    for layer in list(layers)[len(layers) - k:]:
        layer.requires_grad_(True)
    for name, module in model.named_modules():
        if name.split(".")[-1] in ("pooler", "classifier"):
            module.requires_grad_(True)
    return model


def add_lora(model: nn.Module, r: int = 8, alpha: int = 16, dropout: float = 0.1,
             target_modules: Sequence[str] = ("query", "value")):
    """Wrap ``model`` with LoRA adapters (``peft``): the pretrained weights freeze; low-rank updates of the
    attention's query and value matrices, the pooler and the new classifier train.

    Explained in 02, section "Strategies side by side".
    """
    from peft import LoraConfig, TaskType, get_peft_model

    if r < 1:
        raise ValueError(f"the LoRA rank r must be at least 1, got {r}.")
    # The pooler trains too (as in top-k): its pretrained weights were never tuned for classification.
    modules = [name.split(".")[-1] for name, _ in model.named_modules() if name.split(".")[-1] == "pooler"]
    config = LoraConfig(task_type=TaskType.SEQ_CLS, r=r, lora_alpha=alpha, lora_dropout=dropout,
                        target_modules=list(target_modules), modules_to_save=["classifier", *modules[:1]])
    with warnings.catch_warnings():  # peft calls a transformers API deprecated for v6: not the learner's concern
        warnings.filterwarnings("ignore", category=FutureWarning)
        return get_peft_model(model, config)


def layerwise_param_groups(model: nn.Module, lr: float, *, layer_decay: float = 1.0,
                           weight_decay: float = 0.01) -> list[dict]:
    """Optimizer parameter groups with layer-wise learning-rate decay: the classifier gets ``lr``, the
    top encoder layer ``lr * layer_decay``, the one below ``lr * layer_decay**2``, ..., the embeddings the
    smallest. Biases and LayerNorm weights get no weight decay. Frozen parameters are left out.

    Explained in 02, section "Mechanics: warm-up, layer-wise decay, clipping".
    """
    if not 0 < layer_decay <= 1:
        raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay}.")
    if lr <= 0:
        raise ValueError(f"lr must be positive, got {lr}.")
    n_layers = len(_encoder_layers(model))
    groups: dict[tuple[int, bool], dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        found = re.search(r"\.(?:layer|layers)\.(\d+)\.", name)
        if found:
            depth = n_layers - int(found.group(1))       # top layer: 1
        elif "embeddings" in name:
            depth = n_layers + 1
        else:                                            # pooler, classifier
            depth = 0
        decay = p.ndim > 1 and "LayerNorm" not in name and "layer_norm" not in name
        group = groups.setdefault((depth, decay), {"params": [], "lr": lr * layer_decay ** depth,
                                                   "weight_decay": weight_decay if decay else 0.0, "depth": depth})
        group["params"].append(p)
    if not groups:
        raise ValueError("the model has no trainable parameters: unfreeze something first.")
    return sorted(groups.values(), key=lambda g: (g["depth"], g["weight_decay"]))


def train_step(model, batch, optimizer, scheduler, max_grad_norm: float = 1.0) -> tuple[float, float]:
    """One optimisation step: forward, loss, backward, clip, step, schedule. Returns (loss, gradient norm).

    Explained in 02, section "Fine-tuning: the whole encoder learns".
    """
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = nn.functional.cross_entropy(logits, batch["labels"])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for p in model.parameters() if p.requires_grad]
    grad_norm = nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    scheduler.step()
    return loss.item(), float(grad_norm)


@torch.inference_mode()
def predict_proba(model, data: TokenizedTexts, batch_size: int = 32) -> torch.Tensor:
    """Class probabilities [N, n_labels] in the original order (batched by length, eval mode).

    Explained in 02, section "Error analysis: the most confident mistakes".
    """
    if len(data) == 0:
        raise ValueError("predict_proba got no examples.")
    was_training = model.training
    model.eval()
    out = None
    for index in make_batches(data, batch_size, group_by_length=True, shuffle=False, chunk_batches=10**6):
        batch = collate(data, index)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
        if out is None:
            out = torch.empty(len(data), logits.shape[1])
        out[index] = logits.softmax(-1)
    model.train(was_training)
    return out


def evaluate(model, data: TokenizedTexts, batch_size: int = 32) -> tuple[float, float]:
    """(mean cross-entropy loss, accuracy) of ``model`` on ``data``.

    Explained in 02, section "Fine-tuning: the whole encoder learns".
    """
    proba = predict_proba(model, data, batch_size)
    loss = nn.functional.nll_loss(proba.clamp_min(1e-12).log(), data.labels).item()
    return loss, (proba.argmax(1) == data.labels).float().mean().item()


@dataclass
class FineTuneHistory:
    """Per epoch: training loss (mean over the epoch's batches), optional train/validation loss and accuracy
    measured after the epoch, seconds; per step: learning rate of the top group and gradient norm.

    Explained in 02, section "Overfitting at the smallest size".
    """

    train_loss: list[float] = field(default_factory=list)
    train_eval_loss: list[float] = field(default_factory=list)
    train_eval_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    step_lr: list[float] = field(default_factory=list)
    step_grad_norm: list[float] = field(default_factory=list)
    tokens: int = 0                 # real (non-padding) tokens trained on
    padded_tokens: int = 0          # tokens including padding, what the model actually computed
    best_epoch: int | None = None   # set when early stopping restored the best weights

    @property
    def train_seconds(self) -> float:
        return float(sum(self.epoch_seconds))

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.train_seconds if self.train_seconds else float("nan")


def fine_tune(model, train: TokenizedTexts, *, epochs: int = 1, batch_size: int = 32, lr: float = 5e-5,
              weight_decay: float = 0.01, warmup_ratio: float = 0.1, layer_decay: float = 1.0,
              max_grad_norm: float = 1.0, val: TokenizedTexts | None = None, eval_train: bool = False,
              early_stopping_patience: int | None = None, group_by_length: bool = True, pad_to: int | None = None,
              max_steps: int | None = None, seed: int = 0, step: Callable = train_step,
              show_progress: bool = True) -> FineTuneHistory:
    """Train ``model``'s trainable parameters with AdamW, layer-wise LR decay, warm-up + linear decay and
    gradient clipping, calling ``step(model, batch, optimizer, scheduler, max_grad_norm)`` for every batch.

    Evaluates after each epoch on ``val`` (and on ``train`` with ``eval_train``). With
    ``early_stopping_patience`` it stops when the validation loss has not improved for that many epochs
    and restores the best epoch's weights. ``max_steps`` cuts the run short (throughput measurements).

    Explained in 02, section "Fine-tuning: the whole encoder learns".
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}.")
    if len(train) == 0:
        raise ValueError("the training data is empty.")
    if early_stopping_patience is not None and val is None:
        raise ValueError("early stopping needs validation data (val=...).")
    groups = layerwise_param_groups(model, lr, layer_decay=layer_decay, weight_decay=weight_decay)
    # The fused kernel updates all parameters in one pass (what Trainer uses too): with small batches the
    # optimizer, not the model, is most of a step's time.
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype == torch.float32 for g in groups for p in g["params"])
    optimizer = torch.optim.AdamW(groups, lr=lr, fused=fused)
    steps_per_epoch = math.ceil(len(train) / batch_size)
    total = steps_per_epoch * epochs if max_steps is None else min(max_steps, steps_per_epoch * epochs)
    scheduler = warmup_linear_schedule(optimizer, int(warmup_ratio * total), total)
    history, done, best, best_state, waited = FineTuneHistory(), 0, math.inf, None, 0
    for epoch in range(epochs):
        model.train()
        batches = make_batches(train, batch_size, group_by_length=group_by_length, seed=seed * 1000 + epoch)
        start, losses = time.perf_counter(), []
        for index in progress(batches, desc=f"epoch {epoch + 1}/{epochs}") if show_progress else batches:
            batch = collate(train, index, pad_to=pad_to)
            loss, grad_norm = step(model, batch, optimizer, scheduler, max_grad_norm)
            if not math.isfinite(loss):
                raise FloatingPointError(f"the loss became {loss} at step {done + 1}: lower the learning rate.")
            losses.append(loss)
            history.step_lr.append(optimizer.param_groups[0]["lr"])
            history.step_grad_norm.append(grad_norm)
            history.tokens += int(batch["attention_mask"].sum())
            history.padded_tokens += batch["attention_mask"].numel()
            done += 1
            if done >= total:
                break
        history.epoch_seconds.append(time.perf_counter() - start)
        history.train_loss.append(float(np.mean(losses)))
        if eval_train:
            loss, acc = evaluate(model, train)
            history.train_eval_loss.append(loss)
            history.train_eval_acc.append(acc)
        if val is not None:
            loss, acc = evaluate(model, val)
            history.val_loss.append(loss)
            history.val_acc.append(acc)
            if early_stopping_patience is not None:
                if loss < best:
                    best, waited, history.best_epoch = loss, 0, epoch
                    best_state = copy.deepcopy(model.state_dict())
                else:
                    waited += 1
                    if waited >= early_stopping_patience:
                        break
        if done >= total:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    del optimizer, scheduler, groups, best_state
    release_memory()
    return history


def early_stopping_epoch(val_losses: Sequence[float], patience: int) -> tuple[int, int]:
    """What early stopping would do on a validation-loss curve: (epoch it stops after, epoch it restores),
    both 0-based.

    Explained in 02, section "Overfitting at the smallest size".
    """
    if not val_losses:
        raise ValueError("early_stopping_epoch got an empty loss curve.")
    if patience < 1:
        raise ValueError(f"patience must be at least 1, got {patience}.")
    best, waited = 0, 0
    for epoch in range(1, len(val_losses)):
        if val_losses[epoch] < val_losses[best]:
            best, waited = epoch, 0
        else:
            waited += 1
            if waited >= patience:
                return epoch, best
    return len(val_losses) - 1, best


class CountingCollator:
    """Dynamic padding for the Hugging Face ``Trainer`` (like ``DataCollatorWithPadding``) that also counts
    the real tokens it hands out, so ``Trainer`` throughput can be compared with :func:`fine_tune`'s.

    Explained in 02, section "The same run through the Hugging Face Trainer".
    """

    def __init__(self, pad_id: int):
        self.pad_id, self.tokens = pad_id, 0

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        data = TokenizedTexts([f["input_ids"] for f in features], torch.tensor([f["labels"] for f in features]), self.pad_id)
        batch = collate(data, range(len(features)))
        self.tokens += int(batch["attention_mask"].sum())
        return batch


def to_hf_dataset(data: TokenizedTexts):
    """A ``datasets.Dataset`` with ``input_ids`` and ``labels``, for the ``Trainer``.

    Explained in 02, section "The same run through the Hugging Face Trainer".
    """
    import datasets

    return datasets.Dataset.from_dict({"input_ids": data.input_ids, "labels": data.labels.tolist()})
