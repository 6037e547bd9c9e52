"""Multitask learning for joint NER and RE: hard and soft sharing, the tasks' losses, training (task: :mod:`ner_re`).
Explained in 03, section "The joint model: one encoder, two heads"."""

from typing import Callable, Sequence

import torch
from torch import nn

from . import training
from .ner_re import _BIO_LABELS, _ENTITY_TYPES, _RELATION_TYPES, collate_sentences  # the task's label sets


def _span_mean(hidden: torch.Tensor, rows: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden[rows]`` over pieces [start, end) per range (0 if empty): one matmul, no [P, T, H] copy."""
    n_rows, width, dim = hidden.shape
    positions = torch.arange(width, device=hidden.device)
    inside = ((positions[None, :] >= start[:, None]) & (positions[None, :] < end[:, None])).to(hidden.dtype)
    inside = inside / inside.sum(1, keepdim=True).clamp(min=1.0)                                 # [P, T]
    weights = hidden.new_zeros((len(rows), n_rows, width))
    weights[torch.arange(len(rows), device=hidden.device), rows] = inside
    return weights.flatten(1) @ hidden.reshape(n_rows * width, dim)                              # [P, H]


class JointModel(nn.Module):
    """Hard sharing: one encoder, an NER head on every piece, an RE head (MLP) on the pair representation; each piece
    also gets a learned vector for its word's case (what an uncased tokenizer loses).
    Explained in 03, section "The joint model: one encoder, two heads"."""

    def __init__(self, encoder: nn.Module, *, type_dim: int = 32, dropout: float = 0.1):
        super().__init__()
        hidden = encoder.config.hidden_size
        self.encoder, self.dropout = encoder, nn.Dropout(dropout)
        self.case_embedding = nn.Embedding(4, hidden)   # zero at the start: the model starts exactly as pretrained
        nn.init.zeros_(self.case_embedding.weight)
        self.ner_head = nn.Linear(hidden, len(_BIO_LABELS))
        self.type_embedding = nn.Embedding(len(_ENTITY_TYPES), type_dim)
        self.re_head = nn.Sequential(nn.Linear(3 * hidden + 2 * type_dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                     nn.Linear(hidden, 1 + len(_RELATION_TYPES)))

    @classmethod
    def from_pretrained(cls, source: str, n_layers: int | None = None, *, seed: int = 0) -> "JointModel":
        """On a pretrained encoder's first ``n_layers`` layers, heads seeded; word embeddings frozen (little gain)."""
        from transformers import AutoModel
        torch.manual_seed(seed)
        with training._quiet_transformers():
            encoder = AutoModel.from_pretrained(source, add_pooling_layer=False)
        layers = encoder.encoder.layer
        if n_layers is not None:
            if not 1 <= n_layers <= len(layers):
                raise ValueError(f"n_layers must be between 1 and {len(layers)}, got {n_layers}.")
            encoder.encoder.layer = nn.ModuleList(list(layers)[:n_layers])
            encoder.config.num_hidden_layers = n_layers
        encoder.embeddings.word_embeddings.requires_grad_(False)
        return cls(encoder)

    def shared_parameters(self) -> list[nn.Parameter]:   # the trainable parameters both tasks use: the encoder's
        return [p for p in self.encoder.parameters() if p.requires_grad]

    def encode(self, batch: dict) -> torch.Tensor:   # the encoder's vector of every piece, [sentences, pieces, hidden]
        embeds = self.encoder.embeddings.word_embeddings(batch["input_ids"]) + self.case_embedding(batch["case"])
        out = self.encoder(inputs_embeds=embeds, attention_mask=batch["attention_mask"])
        return self.dropout(out.last_hidden_state)

    def pair_representation(self, hidden: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """[P, 3 hidden + 2 type_dim]: head span mean, tail span mean, mean of the pieces between, both types."""
        b, hs, he, ts, te, htype, ttype = pairs.unbind(1)
        head, tail = _span_mean(hidden, b, hs, he), _span_mean(hidden, b, ts, te)
        between = _span_mean(hidden, b, torch.minimum(he, te), torch.maximum(hs, ts))
        return torch.cat([head, tail, between, self.type_embedding(htype), self.type_embedding(ttype)], dim=1)

    def pair_logits(self, hidden: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:   # [P, 1 + relations]
        if len(pairs) == 0:
            return hidden.new_zeros((0, 1 + len(_RELATION_TYPES)))
        return self.re_head(self.pair_representation(hidden, pairs))


class SoftSharedModel(nn.Module):
    """Soft sharing: one model per task (``ner``, ``re``), their encoders pulled together by the step's penalty.
    Explained in 03, section "Soft sharing: two encoders, pulled together"."""

    def __init__(self, ner: JointModel, re: JointModel):
        super().__init__()
        shapes = [[p.shape for p in m.shared_parameters()] for m in (ner, re)]
        if shapes[0] != shapes[1]:
            raise ValueError("soft sharing needs two models with the same trainable parameter shapes.")
        self.ner, self.re = ner, re


def task_losses(model: nn.Module, batch: dict, halves: bool = False) -> dict[str, torch.Tensor]:
    """Each task's cross-entropy: ``ner`` over first pieces (others are -100: ignored), ``re`` over the gold pairs (a
    :class:`SoftSharedModel`: each through its own model). ``halves``: also ``ner_1``, ``ner_2``, ``re_1``, ``re_2`` on
    each half of the sentences (none without pairs or for one sentence), from the same forward pass.
    Explained in 03, section "The joint model: one encoder, two heads"."""
    ner_net, re_net = (model.ner, model.re) if isinstance(model, SoftSharedModel) else (model, model)
    hidden = ner_net.encode(batch)
    ner_logits, ner_labels, pair_labels = ner_net.ner_head(hidden), batch["ner_labels"], batch["pair_labels"]
    out = {"ner": nn.functional.cross_entropy(ner_logits.flatten(0, 1), ner_labels.flatten())}
    if re_net is not ner_net:
        hidden = re_net.encode(batch)
    logits = re_net.pair_logits(hidden, batch["pairs"])   # a batch without pairs: an RE loss of 0 that keeps the graph
    out["re"] = nn.functional.cross_entropy(logits, pair_labels) if len(logits) else hidden.sum() * 0.0
    first = torch.arange(len(ner_labels), device=ner_labels.device) < len(ner_labels) // 2
    for k, rows in (("1", first), ("2", ~first)) if halves and len(ner_labels) >= 2 else ():
        out["ner_" + k] = nn.functional.cross_entropy(ner_logits[rows].flatten(0, 1), ner_labels[rows].flatten())
        pairs_in = rows[batch["pairs"][:, 0]]
        if pairs_in.any():
            out["re_" + k] = nn.functional.cross_entropy(logits[pairs_in], pair_labels[pairs_in])
    return out


def train_ner_re(model: nn.Module, data: Sequence, step: Callable, *, epochs: int, batch_size: int = 16,
                 pad_id: int = 0, seed: int = 0, lr: float = 1e-4, head_lr: float = 1e-3, extra_params: Sequence = (),
                 max_tokens: int | None = None, **fit_args) -> training._History:
    """:func:`training.fit` of ``step`` over length-grouped batches (<= ``max_tokens`` pieces, new order each epoch);
    AdamW: ``lr`` encoder, ``head_lr`` heads, 2e-2 undecayed for ``extra_params`` (loss weights); 10% warm-up.
    Explained in 03, section "The joint model: one encoder, two heads"."""
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}.")
    lengths = [len(s.input_ids) for s in data]
    plan = [training.length_grouped_batches(lengths, batch_size, seed=seed * 1000 + e, max_tokens=max_tokens)
            for e in range(epochs)]
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    groups = [g for g in ({"params": [p for n, p in named if "encoder." in n], "lr": lr},
                          {"params": [p for n, p in named if "encoder." not in n], "lr": head_lr},
                          {"params": list(extra_params), "lr": 2e-2, "weight_decay": 0.0}) if g["params"]]
    optimizer, scheduler = training._adamw(groups, sum(map(len, plan)), weight_decay=0.01)
    torch.manual_seed(seed)   # the same dropout masks for the same seed
    return training.fit(model, lambda epoch: [collate_sentences([data[i] for i in b], pad_id) for b in plan[epoch]],
                        step, optimizer=optimizer, scheduler=scheduler, epochs=epochs, **fit_args)
