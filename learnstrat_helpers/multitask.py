"""Multitask learning for joint named-entity recognition (NER) and relation extraction (RE).

The notebook shows the ideas: the training step, how the two losses are combined, the soft-sharing
penalty and the gradient cosine between the tasks. This module holds the plumbing around them:
spans <-> BIO tags over first sub-tokens, entity pairs, the model (a shared encoder, an NER head, an RE
head on a pair representation), length-grouped batches, the training loop, end-to-end prediction and the
strict micro-F1 of the literature.

Explained in 03, section "The joint model: one encoder, two heads".
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .datasets import CONLL04_ENTITY_TYPES, CONLL04_RELATIONS, SchemaError, check_conll04_record
from .training import release_memory, warmup_linear_schedule
from .training import progress

ENTITY_TYPES = CONLL04_ENTITY_TYPES
RELATION_TYPES = tuple(CONLL04_RELATIONS)
BIO_LABELS = ("O",) + tuple(f"{p}-{t}" for t in ENTITY_TYPES for p in ("B", "I"))
NO_RELATION = 0            # pair label 0: no relation; k >= 1: RELATION_TYPES[k - 1]
IGNORE = -100              # label of sub-tokens that are not a word's first, [CLS], [SEP] and padding


# ---------------------------------------------------------------- spans, tags and pairs


def spans_to_bio(n_words: int, entities: Sequence[dict]) -> list[str]:
    """Word-level BIO tags of a sentence of ``n_words`` words: ``B-type`` on an entity's first word,
    ``I-type`` on the rest, ``O`` elsewhere. Overlapping or out-of-range spans raise a SchemaError.

    Explained in 03, section "Data: CoNLL04".
    """
    if n_words < 1:
        raise SchemaError("empty sentence: no words to tag.")
    tags = ["O"] * n_words
    for i, e in enumerate(entities):
        if not 0 <= e["start"] < e["end"] <= n_words:
            raise SchemaError(f"entity {i} [{e['start']}, {e['end']}) is empty or outside the sentence of {n_words} words.")
        if e["type"] not in ENTITY_TYPES:
            raise SchemaError(f"entity {i}: unknown type {e['type']!r}; expected one of {ENTITY_TYPES}.")
        if any(t != "O" for t in tags[e["start"]: e["end"]]):
            raise SchemaError(f"entity {i} [{e['start']}, {e['end']}) overlaps another entity.")
        tags[e["start"]] = f"B-{e['type']}"
        for w in range(e["start"] + 1, e["end"]):
            tags[w] = f"I-{e['type']}"
    return tags


def bio_to_spans(tags: Sequence[str]) -> list[dict]:
    """Entities ``{start, end, type}`` (end exclusive) read from BIO tags. An ``I-type`` that does not
    continue an entity of the same type starts a new one (the usual lenient decoding).

    Explained in 03, section "Data: CoNLL04".
    """
    spans, current = [], None
    for w, tag in enumerate(list(tags) + ["O"]):
        prefix, _, kind = tag.partition("-")
        if tag != "O" and (prefix not in ("B", "I") or kind not in ENTITY_TYPES):
            raise ValueError(f"tag {w} is {tag!r}: expected O, B-type or I-type with a type in {ENTITY_TYPES}.")
        continues = current is not None and prefix == "I" and kind == current["type"]
        if current is not None and not continues:
            current["end"] = w
            spans.append(current)
            current = None
        if tag != "O" and not continues:
            current = {"start": w, "type": kind}
    return spans


def entity_pairs(entities: Sequence[dict], relations: Sequence[dict] = ()) -> list[tuple[int, int, int]]:
    """Every ordered pair ``(head, tail, label)`` of distinct entities, ``label`` 0 for no relation and
    1 + the index in RELATION_TYPES otherwise. Relations are directed, so (a, b) and (b, a) differ.

    Explained in 03, section "The joint model: one encoder, two heads".
    """
    labels = {}
    for i, r in enumerate(relations):
        for arg in ("head", "tail"):
            if not 0 <= r[arg] < len(entities):
                raise SchemaError(f"relation {i}: {arg}={r[arg]} points past the entity list ({len(entities)} entities).")
        if r["type"] not in RELATION_TYPES:
            raise SchemaError(f"relation {i}: unknown type {r['type']!r}; expected one of {RELATION_TYPES}.")
        labels[(r["head"], r["tail"])] = 1 + RELATION_TYPES.index(r["type"])
    return [(h, t, labels.get((h, t), NO_RELATION)) for h in range(len(entities)) for t in range(len(entities)) if h != t]


# ---------------------------------------------------------------- encoding sentences


@dataclass
class Encoded:
    """One sentence as the model sees it: word-piece ids, where each word's pieces start and end, the
    NER label of every piece (IGNORE except on first pieces), and the gold annotation (word spans).

    Explained in 03, section "Data: CoNLL04".
    """

    input_ids: list[int]
    piece_start: list[int]           # per kept word: index of its first piece
    piece_end: list[int]             # per kept word: one past its last piece
    ner_labels: list[int]
    record: dict                     # tokens, entities, relations (the full gold annotation)
    case: list[int] = field(default_factory=list)   # per piece: its word's capitalisation (word_case)

    @property
    def n_kept(self) -> int:
        """Words that fit in ``max_length`` pieces (the rest were cut off)."""
        return len(self.piece_start)

    def kept_entities(self) -> list[int]:
        """Indices of gold entities that lie wholly inside the kept words."""
        return [i for i, e in enumerate(self.record["entities"]) if e["end"] <= self.n_kept]


def word_case(word: str) -> int:
    """Capitalisation of a word: 1 lower case or no letters, 2 first letter upper case ("Paris"), 3 all upper
    case ("NATO"); 0 is kept for pieces that belong to no word ([CLS], [SEP], padding). An uncased tokenizer
    throws this away, yet it is the strongest single clue to a name in English text.

    Explained in 03, section "Data: CoNLL04".
    """
    letters = [c for c in word if c.isalpha()]
    if not letters or not letters[0].isupper():
        return 1
    return 3 if len(letters) > 1 and all(c.isupper() for c in letters) else 2


def encode(records: Sequence[dict], tokenizer, *, max_length: int = 128) -> list[Encoded]:
    """Tokenise each sentence's words (``is_split_into_words``), cut at ``max_length`` pieces, and label
    each word's first piece with its BIO tag; every piece also gets its word's :func:`word_case`. Every
    record is checked first.

    Explained in 03, section "Data: CoNLL04".
    """
    records = list(records)
    if not records:
        raise ValueError("encode got no sentences.")
    for i, r in enumerate(records):
        check_conll04_record(r, f"sentence {i}")
    batch = tokenizer([list(r["tokens"]) for r in records], is_split_into_words=True, truncation=True,
                      max_length=max_length)
    out = []
    for i, r in enumerate(records):
        word_ids = batch.word_ids(i)
        starts, ends = {}, {}
        for p, w in enumerate(word_ids):
            if w is not None:
                starts.setdefault(w, p)
                ends[w] = p + 1
        kept = 0
        while kept in starts:
            kept += 1
        tags = spans_to_bio(len(r["tokens"]), r["entities"])
        labels = [IGNORE] * len(word_ids)
        for w in range(kept):
            labels[starts[w]] = BIO_LABELS.index(tags[w])
        case = [0 if w is None else word_case(r["tokens"][w]) for w in word_ids]
        out.append(Encoded(list(batch["input_ids"][i]), [starts[w] for w in range(kept)],
                           [ends[w] for w in range(kept)], labels, r, case))
    return out


def length_grouped_batches(lengths: Sequence[int], batch_size: int, *, shuffle: bool = True, seed: int = 0,
                           chunk_batches: int = 50, max_tokens: int | None = None) -> list[list[int]]:
    """Batches of sentences of similar length: shuffle, sort within chunks of ``chunk_batches`` batches,
    shuffle the batches (as in 02). Without ``shuffle``: simply sorted by length. With ``max_tokens``, a batch
    of long sentences is split so that sentences x longest length stays within it (caps peak memory).

    Explained in 03, section "The joint model: one encoder, two heads".
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    lengths = np.asarray(lengths)
    if not shuffle:
        order = np.argsort(lengths, kind="stable")
    else:
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(lengths))
        chunk = batch_size * chunk_batches
        order = np.concatenate([c[np.argsort(lengths[c], kind="stable")] for c in
                                (order[i: i + chunk] for i in range(0, len(order), chunk))])
    batches = [order[i: i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    if max_tokens is not None:
        split = []
        for b in batches:
            size = max(1, min(len(b), max_tokens // int(max(lengths[b]))))
            split += [b[i: i + size] for i in range(0, len(b), size)]
        batches = split
    return [batches[i] for i in rng.permutation(len(batches))] if shuffle else batches


def collate(sentences: Sequence[Encoded], pad_id: int, entities: Sequence[Sequence[dict]] | None = None) -> dict:
    """One batch: padded ``input_ids``, ``attention_mask``, ``ner_labels``, ``case``, and ``pairs``, a [P, 7] tensor of
    (sentence, head piece start, head piece end, tail start, tail end, head type, tail type) with
    ``pair_labels`` [P]. Pairs come from the gold entities that fit, or from ``entities`` (predicted ones).

    Explained in 03, section "The joint model: one encoder, two heads".
    """
    width = max(len(s.input_ids) for s in sentences)
    input_ids = torch.full((len(sentences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sentences), width), dtype=torch.long)
    ner = torch.full((len(sentences), width), IGNORE, dtype=torch.long)
    case = torch.zeros((len(sentences), width), dtype=torch.long)
    pairs, pair_labels, pair_index = [], [], []
    for b, s in enumerate(sentences):
        n = len(s.input_ids)
        input_ids[b, :n], mask[b, :n], ner[b, :n] = torch.tensor(s.input_ids), 1, torch.tensor(s.ner_labels)
        if s.case:
            case[b, :n] = torch.tensor(s.case)
        if entities is None:
            keep = s.kept_entities()
            ents = [s.record["entities"][i] for i in keep]
            position = {old: new for new, old in enumerate(keep)}
            rels = [{**r, "head": position[r["head"]], "tail": position[r["tail"]]} for r in s.record["relations"]
                    if r["head"] in position and r["tail"] in position]
        else:
            ents, rels = [e for e in entities[b] if e["end"] <= s.n_kept], []
        for h, t, label in entity_pairs(ents, rels):
            eh, et = ents[h], ents[t]
            pairs.append([b, s.piece_start[eh["start"]], s.piece_end[eh["end"] - 1], s.piece_start[et["start"]],
                          s.piece_end[et["end"] - 1], ENTITY_TYPES.index(eh["type"]), ENTITY_TYPES.index(et["type"])])
            pair_labels.append(label)
            pair_index.append((b, h, t))
    return {"input_ids": input_ids, "attention_mask": mask, "ner_labels": ner, "case": case,
            "pairs": torch.tensor(pairs, dtype=torch.long).reshape(-1, 7),
            "pair_labels": torch.tensor(pair_labels, dtype=torch.long), "pair_index": pair_index}


# ---------------------------------------------------------------- the model


def load_encoder(source: str, n_layers: int | None = None, *, freeze_word_embeddings: bool = True, seed: int = 0):
    """A pretrained BERT-family encoder cut to its first ``n_layers`` transformer layers (all when None).
    Freezing the 30,522 x 384 word-embedding matrix saves most of the optimiser's work on a CPU and
    changes little when the data is small.

    Explained in 03, section "The joint model: one encoder, two heads".
    """
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    torch.manual_seed(seed)
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # "Loading weights" bars, once per model, would drown the notebook
    try:
        encoder = AutoModel.from_pretrained(source, add_pooling_layer=False)
    except TypeError:  # not a BERT-style class: keep its pooler
        encoder = AutoModel.from_pretrained(source)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    layers = encoder.encoder.layer
    if n_layers is not None:
        if not 1 <= n_layers <= len(layers):
            raise ValueError(f"n_layers must be between 1 and {len(layers)}, got {n_layers}.")
        encoder.encoder.layer = nn.ModuleList(list(layers)[:n_layers])
        encoder.config.num_hidden_layers = n_layers
    if freeze_word_embeddings:
        encoder.embeddings.word_embeddings.requires_grad_(False)
    return encoder


def _span_mean(hidden: torch.Tensor, rows: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """Mean over pieces [start, end) of ``hidden[rows]`` for each of P ranges; zeros where a range is empty.
    One matrix product over the flattened batch (no [P, T, H] copy), which keeps the RE head cheap."""
    n_rows, width, dim = hidden.shape
    positions = torch.arange(width, device=hidden.device)
    inside = ((positions[None, :] >= start[:, None]) & (positions[None, :] < end[:, None])).to(hidden.dtype)
    inside = inside / inside.sum(1, keepdim=True).clamp(min=1.0)                                 # [P, T]
    weights = hidden.new_zeros((len(rows), n_rows, width))
    weights[torch.arange(len(rows), device=hidden.device), rows] = inside
    return weights.flatten(1) @ hidden.reshape(n_rows * width, dim)                              # [P, H]


class JointModel(nn.Module):
    """Hard parameter sharing: one encoder, an NER head (a linear layer on every piece) and an RE head
    (an MLP on the pair representation: mean-pooled head span, tail span and the context between them,
    plus an embedding of each argument's entity type). Each piece's input embedding also gets a learned
    vector for its word's capitalisation, which an uncased tokenizer loses.

    Explained in 03, section "The joint model: one encoder, two heads".
    """

    def __init__(self, encoder: nn.Module, *, type_dim: int = 32, dropout: float = 0.1):
        super().__init__()
        hidden = encoder.config.hidden_size
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        # The word's capitalisation (word_case), added to the input embeddings; zero at the start, so the
        # model starts exactly as pretrained and learns how much to use it.
        self.case_embedding = nn.Embedding(4, hidden)
        nn.init.zeros_(self.case_embedding.weight)
        self.ner_head = nn.Linear(hidden, len(BIO_LABELS))
        self.type_embedding = nn.Embedding(len(ENTITY_TYPES), type_dim)
        self.re_head = nn.Sequential(nn.Linear(3 * hidden + 2 * type_dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                     nn.Linear(hidden, 1 + len(RELATION_TYPES)))

    def shared_parameters(self) -> list[nn.Parameter]:
        """The trainable parameters both tasks use: the encoder's."""
        return [p for p in self.encoder.parameters() if p.requires_grad]

    def encode(self, batch: dict) -> torch.Tensor:
        embeds = self.encoder.embeddings.word_embeddings(batch["input_ids"]) + self.case_embedding(batch["case"])
        return self.dropout(self.encoder(inputs_embeds=embeds, attention_mask=batch["attention_mask"]).last_hidden_state)

    def ner_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.ner_head(hidden)

    def pair_logits(self, hidden: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """Relation logits [P, 1 + relations] for the pairs (see :func:`collate`)."""
        if len(pairs) == 0:
            return hidden.new_zeros((0, 1 + len(RELATION_TYPES)))
        b, hs, he, ts, te, htype, ttype = pairs.unbind(1)
        head, tail = _span_mean(hidden, b, hs, he), _span_mean(hidden, b, ts, te)
        between = _span_mean(hidden, b, torch.minimum(he, te), torch.maximum(hs, ts))
        rep = torch.cat([head, tail, between, self.type_embedding(htype), self.type_embedding(ttype)], dim=1)
        return self.re_head(rep)


class SoftSharedModel(nn.Module):
    """Soft parameter sharing: one full model per task (``ner`` and ``re``), both started from the same
    pretrained weights; a penalty (:func:`l2_distance`) keeps their encoders close. With strength 0 this is
    simply two single-task models trained side by side.

    Explained in 03, section "Soft sharing: two encoders, pulled together".
    """

    def __init__(self, ner: JointModel, re: JointModel):
        super().__init__()
        self.ner, self.re = ner, re


def l2_distance(a: nn.Module, b: nn.Module) -> torch.Tensor:
    """Sum of squared differences between corresponding trainable parameters of two same-shaped modules.

    Explained in 03, section "Soft sharing: two encoders, pulled together".
    """
    pa = [p for p in a.parameters() if p.requires_grad]
    pb = [p for p in b.parameters() if p.requires_grad]
    if len(pa) != len(pb) or any(x.shape != y.shape for x, y in zip(pa, pb)):
        raise ValueError("l2_distance needs two modules with the same trainable parameter shapes.")
    return sum(((x - y) ** 2).sum() for x, y in zip(pa, pb))


def task_losses(model: nn.Module, batch: dict, tasks: Sequence[str] = ("ner", "re")) -> dict[str, torch.Tensor]:
    """Cross-entropy of each task on a batch: ``ner`` over first pieces, ``re`` over gold entity pairs.
    For a :class:`SoftSharedModel` each task uses its own model.

    Explained in 03, section "The joint model: one encoder, two heads".
    """
    losses, hidden = {}, None
    for task in tasks:
        net = getattr(model, task) if isinstance(model, SoftSharedModel) else model
        if hidden is None or isinstance(model, SoftSharedModel):
            hidden = net.encode(batch)
        if task == "ner":
            logits = net.ner_logits(hidden)
            losses["ner"] = nn.functional.cross_entropy(logits.flatten(0, 1), batch["ner_labels"].flatten(),
                                                        ignore_index=IGNORE)
        elif task == "re":
            logits = net.pair_logits(hidden, batch["pairs"])
            losses["re"] = (nn.functional.cross_entropy(logits, batch["pair_labels"]) if len(logits)
                            else hidden.sum() * 0.0)
        else:
            raise ValueError(f"unknown task {task!r}: 'ner' or 're'.")
    return losses


# ---------------------------------------------------------------- training


@dataclass
class TrainHistory:
    """Per step: every value the step returned (losses, cosines, ...) and its seconds; per epoch: seconds.

    Explained in 03, section "The joint model: one encoder, two heads".
    """

    steps: list[dict] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)

    def series(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(step numbers, values) of ``key`` over the steps that reported it."""
        found = [(i, s[key]) for i, s in enumerate(self.steps) if key in s]
        return np.array([i for i, _ in found]), np.array([v for _, v in found], dtype=float)

    @property
    def seconds(self) -> float:
        return float(sum(self.epoch_seconds))


def make_optimizer(model: nn.Module, total_steps: int, *, lr: float = 1e-4, head_lr: float = 1e-3,
                   weight_decay: float = 0.01, warmup_ratio: float = 0.1, extra_params: Sequence[nn.Parameter] = (),
                   extra_lr: float = 2e-2):
    """AdamW with ``lr`` for encoder parameters, ``head_lr`` for the heads and ``extra_lr`` (no weight decay)
    for ``extra_params`` such as learned loss weights, which must move far in a few hundred steps;
    warm-up then linear decay to 0 at ``total_steps``.

    Explained in 03, section "The joint model: one encoder, two heads".
    """
    encoder, heads = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (encoder if "encoder." in name else heads).append(p)
    groups = [{"params": encoder, "lr": lr}, {"params": heads, "lr": head_lr},
              {"params": list(extra_params), "lr": extra_lr, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    # The fused kernel updates all parameters in one pass, as in 02's fine_tune: with small batches on a CPU
    # the optimiser, not the model, is a large share of each step.
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype == torch.float32 for g in groups for p in g["params"])
    optimizer = torch.optim.AdamW(groups, weight_decay=weight_decay, fused=fused)
    return optimizer, warmup_linear_schedule(optimizer, int(warmup_ratio * total_steps), total_steps)


def train(model: nn.Module, data: Sequence[Encoded], step: Callable, *, epochs: int, batch_size: int = 16,
          pad_id: int = 0, seed: int = 0, lr: float = 1e-4, head_lr: float = 1e-3,
          extra_params: Sequence[nn.Parameter] = (), max_tokens: int | None = None, show_progress: bool = True,
          desc: str = "training") -> TrainHistory:
    """Train for ``epochs`` over length-grouped batches (at most ``max_tokens`` padded pieces each), calling
    ``step(model, batch, optimizer, scheduler, step_number)`` for each; the step returns a dict of numbers
    to log. Returns the :class:`TrainHistory`.

    Explained in 03, section "The joint model: one encoder, two heads".
    """
    if not data:
        raise ValueError("train got no sentences.")
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}.")
    torch.manual_seed(seed)
    lengths = [len(s.input_ids) for s in data]
    plan = [length_grouped_batches(lengths, batch_size, seed=seed * 1000 + e, max_tokens=max_tokens) for e in range(epochs)]
    optimizer, scheduler = make_optimizer(model, sum(map(len, plan)), lr=lr, head_lr=head_lr, extra_params=extra_params)
    history, done = TrainHistory(), 0
    model.train()
    for epoch, batches in enumerate(plan):
        start = time.perf_counter()
        for index in progress(batches, desc=f"{desc} {epoch + 1}/{epochs}") if show_progress else batches:
            began = time.perf_counter()
            logged = step(model, collate([data[i] for i in index], pad_id), optimizer, scheduler, done)
            history.step_seconds.append(time.perf_counter() - began)
            if not all(math.isfinite(v) for v in logged.values()):
                raise FloatingPointError(f"step {done}: {logged}: lower the learning rate.")
            history.steps.append(logged)
            done += 1
        history.epoch_seconds.append(time.perf_counter() - start)
    model.eval()
    del optimizer, scheduler
    release_memory()
    return history


# ---------------------------------------------------------------- prediction and evaluation


def _decode_words(tags_per_piece: torch.Tensor, sentence: Encoded) -> list[dict]:
    tags = [BIO_LABELS[int(tags_per_piece[p])] for p in sentence.piece_start]
    return bio_to_spans(tags) if tags else []


@torch.inference_mode()
def predict(ner_model: JointModel, sentences: Sequence[Encoded], *, re_model: JointModel | None = None,
            pad_id: int = 0, batch_size: int = 32, gold_entities: bool = False) -> list[dict]:
    """End-to-end predictions ``{"entities": [...], "relations": [...]}`` per sentence, in the dataset's
    schema: entities from ``ner_model``'s tags, then relations from ``re_model`` (default: the same model)
    on every ordered pair of *predicted* entities. ``gold_entities=True`` gives the RE model the gold
    entities instead (RE evaluated on its own).

    Explained in 03, section "The headline run".
    """
    re_model = re_model or ner_model
    for m in {id(ner_model): ner_model, id(re_model): re_model}.values():
        m.eval()
    out: list[dict | None] = [None] * len(sentences)
    for index in length_grouped_batches([len(s.input_ids) for s in sentences], batch_size, shuffle=False):
        chunk = [sentences[i] for i in index]
        if gold_entities:
            ents = [[s.record["entities"][k] for k in s.kept_entities()] for s in chunk]
        else:
            batch = collate(chunk, pad_id, entities=[[] for _ in chunk])
            tags = ner_model.ner_logits(ner_model.encode(batch)).argmax(-1)
            ents = [_decode_words(tags[b], s) for b, s in enumerate(chunk)]
        batch = collate(chunk, pad_id, entities=ents)
        labels = re_model.pair_logits(re_model.encode(batch), batch["pairs"]).argmax(-1).tolist()
        for b, i in enumerate(index):
            out[i] = {"entities": ents[b], "relations": []}
        for (b, h, t), label in zip(batch["pair_index"], labels):
            if label != NO_RELATION:
                out[index[b]]["relations"].append({"head": h, "tail": t, "type": RELATION_TYPES[label - 1]})
    return out


def _entity_set(sentences: Sequence[dict]) -> set:
    return {(i, e["start"], e["end"], e["type"]) for i, s in enumerate(sentences) for e in s["entities"]}


def _relation_set(sentences: Sequence[dict]) -> set:
    out = set()
    for i, s in enumerate(sentences):
        ents = s["entities"]
        for r in s["relations"]:
            if not (0 <= r["head"] < len(ents) and 0 <= r["tail"] < len(ents)):
                raise SchemaError(f"sentence {i}: relation {r} points past the entity list ({len(ents)} entities).")
            h, t = ents[r["head"]], ents[r["tail"]]
            out.add((i, h["start"], h["end"], h["type"], t["start"], t["end"], t["type"], r["type"]))
    return out


def _prf(gold: set, pred: set) -> dict:
    tp = len(gold & pred)
    p = tp / len(pred) if pred else 0.0
    r = tp / len(gold) if gold else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
            "tp": tp, "n_gold": len(gold), "n_pred": len(pred)}


def strict_f1(gold: Sequence[dict], predicted: Sequence[dict]) -> dict:
    """Strict micro precision, recall and F1 as the literature reports them on CoNLL04:
    an entity counts when its span and type match; a relation when its type, both argument spans and both
    argument entity types match (so a relation between mis-typed entities is wrong). Also per type:
    ``result["ner_by_type"]["Peop"]``, ``result["re_by_type"]["Work_For"]``.

    Explained in 03, section "The headline run".
    """
    if len(gold) != len(predicted):
        raise ValueError(f"got {len(gold)} gold sentences but {len(predicted)} predictions.")
    ge, pe, gr, pr = _entity_set(gold), _entity_set(predicted), _relation_set(gold), _relation_set(predicted)
    return {"ner": _prf(ge, pe), "re": _prf(gr, pr),
            "ner_by_type": {t: _prf({x for x in ge if x[3] == t}, {x for x in pe if x[3] == t}) for t in ENTITY_TYPES},
            "re_by_type": {t: _prf({x for x in gr if x[7] == t}, {x for x in pr if x[7] == t}) for t in RELATION_TYPES}}


def evaluate(ner_model: JointModel, sentences: Sequence[Encoded], *, re_model: JointModel | None = None,
             pad_id: int = 0, gold_entities: bool = False) -> dict:
    """:func:`strict_f1` of :func:`predict` against the sentences' full gold annotation (entities cut off
    by ``max_length`` count as missed).

    Explained in 03, section "The headline run".
    """
    predicted = predict(ner_model, sentences, re_model=re_model, pad_id=pad_id, gold_entities=gold_entities)
    return strict_f1([s.record for s in sentences], predicted)


# ---------------------------------------------------------------- gradients and display


def flat_grad(loss: torch.Tensor, params: Sequence[nn.Parameter]) -> torch.Tensor:
    """The gradient of ``loss`` with respect to ``params`` as one vector (zeros where unused); keeps the graph.

    Explained in 03, section "Task interference: do the gradients agree?".
    """
    grads = torch.autograd.grad(loss, list(params), retain_graph=True, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).flatten() for g, p in zip(grads, params)])


_COLOURS = {"Peop": "#56B4E9", "Loc": "#E69F00", "Org": "#009E73", "Other": "#CC79A7"}


def highlight_html(record: dict, title: str = "") -> str:
    """A sentence as HTML: entities highlighted by type, relations listed as head -[type]-> tail.

    Explained in 03, section "Predictions, sentence by sentence".
    """
    import html

    tokens, starts = record["tokens"], {e["start"]: e for e in record["entities"]}
    parts, w = [], 0
    while w < len(tokens):
        e = starts.get(w)
        if e is None:
            parts.append(html.escape(tokens[w]))
            w += 1
            continue
        words = html.escape(" ".join(tokens[e["start"]: e["end"]]))
        parts.append(f'<span style="background:{_COLOURS[e["type"]]};color:black;padding:1px 3px;border-radius:3px">'
                     f'{words} <sub>{e["type"]}</sub></span>')
        w = e["end"]
    ents = record["entities"]
    rels = "; ".join(f'{html.escape(" ".join(tokens[ents[r["head"]]["start"]: ents[r["head"]]["end"]]))} '
                     f'&rarr;<b>{r["type"]}</b>&rarr; '
                     f'{html.escape(" ".join(tokens[ents[r["tail"]]["start"]: ents[r["tail"]]["end"]]))}'
                     for r in record["relations"]) or "(no relations)"
    label = f"<b>{html.escape(title)}</b> " if title else ""
    return f'<div style="margin:4px 0">{label}{" ".join(parts)}<br><small>{rels}</small></div>'
