"""Fine-tuning plumbing (the notebook writes the step and LoRA's update): unpadded token ids, padded batches, layer-wise
lr decay, top-k unfreezing, the ``peft`` call. Explained in 02, section "Fine-tuning: the whole encoder learns"."""

import re
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .text import _checked_texts
from .training import _adamw, _History, _quiet_transformers, fit, length_grouped_batches, model_device, release_memory
from .training import to_device


@dataclass
class _TokenizedTexts:
    """Token ids of each text (unpadded, truncated) and their labels: tokenise once, batch many times."""
    input_ids: list[list[int]]
    labels: torch.Tensor
    pad_id: int
    texts: list[str]

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(ids) for ids in self.input_ids])

    def subset(self, index) -> "_TokenizedTexts":
        if not (index := [int(i) for i in index]):
            raise ValueError("subset got no indices.")
        return _TokenizedTexts([self.input_ids[i] for i in index], self.labels[index], self.pad_id,
                               [self.texts[i] for i in index])


def tokenize(texts: Sequence[str], labels, tokenizer, *, max_length: int = 64, n_labels: int = 2) -> _TokenizedTexts:
    """Tokenise ``texts`` once (truncated to ``max_length`` tokens, not padded); check texts and labels.
    Explained in 02, section "Mechanics: dynamic padding and length-grouped batches"."""
    texts, labels = _checked_texts(texts), torch.as_tensor(np.asarray(labels)).long()
    if labels.ndim != 1 or len(labels) != len(texts):
        raise ValueError(f"got {len(texts)} texts but labels of shape {tuple(labels.shape)}.")
    if bad := torch.nonzero((labels < 0) | (labels >= n_labels)).flatten().tolist():
        raise ValueError(f"label {int(labels[bad[0]])} (text {bad[0]}) is outside the label set 0..{n_labels - 1}.")
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2 (for [CLS] and [SEP]), got {max_length}.")
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    return _TokenizedTexts(ids, labels, int(tokenizer.pad_token_id), texts)


def _collate(data: _TokenizedTexts, index: Sequence[int], pad_to: int | None = None) -> dict[str, torch.Tensor]:
    rows = [data.input_ids[i] for i in index]
    lengths = torch.tensor([len(r) for r in rows])
    width = int(lengths.max()) if pad_to is None else pad_to
    if width < lengths.max():
        raise ValueError(f"pad_to={pad_to} is shorter than the longest text ({int(lengths.max())} tokens).")
    input_ids = torch.tensor([r + [data.pad_id] * (width - len(r)) for r in rows], dtype=torch.long)
    attention_mask = (torch.arange(width) < lengths[:, None]).long()
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": data.labels[list(index)]}


def load_classifier(source: str, n_labels: int = 2, seed: int = 0):
    """A pretrained encoder with a new, randomly initialised classification head (seeded), on the CPU.
    Explained in 02, section "Fine-tuning: the whole encoder learns"."""
    from transformers import AutoModelForSequenceClassification
    torch.manual_seed(seed)
    with _quiet_transformers():
        return AutoModelForSequenceClassification.from_pretrained(source, num_labels=n_labels)


def _encoder_layers(model: nn.Module) -> nn.ModuleList:
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and name.split(".")[-1] in ("layer", "layers") and len(module):
            return module
    raise ValueError("could not find the encoder's list of layers (a ModuleList named 'layer' or 'layers').")


def unfreeze_top_layers(model: nn.Module, k: int) -> nn.Module:
    """Freeze everything, then let the top ``k`` encoder layers, the pooler and the classifier train.
    Explained in 02, section "Strategies side by side"."""
    layers = _encoder_layers(model)
    if not 0 <= k <= len(layers):
        raise ValueError(f"k must be between 0 and {len(layers)} (the encoder's layers), got {k}.")
    model.requires_grad_(False)
    for name, module in model.named_modules():
        if module in layers[len(layers) - k:] or name.split(".")[-1] in ("pooler", "classifier"):
            module.requires_grad_(True)
    return model


def add_lora(model: nn.Module, r: int = 8, alpha: int = 16, dropout: float = 0.1,
             target_modules: Sequence[str] = ("query", "value")):
    """``model`` wrapped in place in ``peft``'s LoRA: low-rank updates of query and value, pooler and classifier train.
    Explained in 02, section "LoRA by hand: two small matrices"."""
    from peft import LoraConfig, TaskType, get_peft_model
    if r < 1:
        raise ValueError(f"the LoRA rank r must be at least 1, got {r}.")
    pooler = ["pooler"] * any(name.split(".")[-1] == "pooler" for name, _ in model.named_modules())  # trains, as in
    config = LoraConfig(task_type=TaskType.SEQ_CLS, r=r, lora_alpha=alpha, lora_dropout=dropout,  # top-k: the same
                        target_modules=list(target_modules), modules_to_save=["classifier", *pooler])  # head
    with warnings.catch_warnings(action="ignore", category=FutureWarning):  # peft calls an API deprecated in v6
        return get_peft_model(model, config)


def _param_groups(model: nn.Module, lr: float, layer_decay: float, weight_decay: float) -> list[dict]:
    """AdamW groups, lr ``lr * layer_decay**depth`` (head 0, top layer 1, ...); biases, LayerNorms undecayed."""
    if not 0 < layer_decay <= 1 or lr <= 0:
        raise ValueError(f"lr must be positive (got {lr}) and layer_decay must be in (0, 1] (got {layer_decay}).")
    n_layers, groups = len(_encoder_layers(model)), {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            found = re.search(r"\.(?:layer|layers)\.(\d+)\.", name)
            depth = n_layers - int(found.group(1)) if found else n_layers + 1 if "embeddings" in name else 0
            decay = p.ndim > 1 and "LayerNorm" not in name and "layer_norm" not in name
            groups.setdefault((depth, decay), {"params": [], "lr": lr * layer_decay ** depth, "depth": depth,
                                               "weight_decay": weight_decay if decay else 0.0})["params"].append(p)
    if not groups:
        raise ValueError("the model has no trainable parameters: unfreeze something first.")
    return sorted(groups.values(), key=lambda g: (g["depth"], g["weight_decay"]))


@torch.inference_mode()
def predict_proba(model, data: _TokenizedTexts, batch_size: int = 32) -> torch.Tensor:
    """Class probabilities [N, n_labels] on the CPU, in the original order, computed on the model's device
    (the model is left in eval mode). Explained in 02, section "Error analysis: the most confident mistakes"."""
    device, out = model_device(model.eval()), torch.empty(len(data), model.config.num_labels)
    for index in length_grouped_batches(data.lengths, batch_size, shuffle=False):
        batch = to_device({k: v for k, v in _collate(data, index).items() if k != "labels"}, device)
        out[index] = model(**batch).logits.float().cpu().softmax(-1)
    return out


def fine_tune(model, train: _TokenizedTexts, step: Callable, *, epochs: int = 1, batch_size: int = 32,
              lr: float = 5e-5, weight_decay: float = 0.01, warmup_ratio: float = 0.1, layer_decay: float = 1.0,
              val: _TokenizedTexts | None = None, eval_train: bool = False, patience: int | None = None,
              group_by_length: bool = True, pad_to: int | None = None, max_steps: int | None = None, seed: int = 0,
              show_progress: bool = True) -> _History:
    """``training.fit`` of ``step``: AdamW, layer-wise decay, warm-up + linear decay, a new length-grouped (or random)
    order each epoch; evaluations log ``val_loss``/``val_acc``, ``train_*`` (``eval_train``); ``patience`` stops early.
    Explained in 02, section "Fine-tuning: the whole encoder learns"."""
    if patience is not None and val is None:
        raise ValueError("early stopping needs validation data (val=...).")
    groups = _param_groups(model, lr, layer_decay, weight_decay)
    total = min(len(length_grouped_batches(train.lengths, batch_size)) * max(epochs, 1), max_steps or 2**62)
    optimizer, scheduler = _adamw(groups, total, warmup_ratio, lr=lr)

    def evaluate(model) -> dict:  # mean cross-entropy and accuracy
        metrics = {}
        for name, data in [("train", train)] * eval_train + [("val", val)] * (val is not None):
            proba = predict_proba(model, data)
            metrics[f"{name}_loss"] = nn.functional.nll_loss(proba.clamp_min(1e-12).log(), data.labels).item()
            metrics[f"{name}_acc"] = (proba.argmax(1) == data.labels).float().mean().item()
        return metrics
    history = fit(model, lambda epoch: [_collate(train, index, pad_to) for index in length_grouped_batches(
                      train.lengths, batch_size, group_by_length=group_by_length, seed=seed * 1000 + epoch)],
                  step, optimizer=optimizer, scheduler=scheduler, epochs=epochs, max_steps=max_steps,
                  evaluate=evaluate if val is not None or eval_train else None, patience=patience,
                  desc="fine-tuning", show_progress=show_progress)
    del optimizer, scheduler, groups   # AdamW's state is twice the trainable weights: hand it back now
    release_memory()
    return history
