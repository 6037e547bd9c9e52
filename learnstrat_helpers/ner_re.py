"""Joint entity and relation extraction as a task: CoNLL04, BIO tags, entity pairs, batches, end-to-end prediction,
strict micro-F1, an HTML view (the model: :mod:`multitask`). Explained in 03, section "Data: CoNLL04"."""

import warnings
from dataclasses import dataclass
from itertools import permutations
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from . import assets
from .datasets import SchemaError, _offline, _read_jsonl_objects  # the one JSONL reader and "not found" error
from .training import length_grouped_batches, model_device, to_device

_HUB_ID, _SPLITS = "DFKI-SLT/conll04", ("train", "validation", "test")
_SAMPLE_DIR = Path(__file__).resolve().parent / "conll04_sample"   # ships in the wheel
_ENTITY_TYPES = ("Peop", "Loc", "Org", "Other")
_RELATIONS = {"Work_For": ("Peop", "Org"), "Kill": ("Peop", "Peop"), "OrgBased_In": ("Org", "Loc"),  # (head, tail)
              "Live_In": ("Peop", "Loc"), "Located_In": ("Loc", "Loc")}
_RELATION_TYPES = tuple(_RELATIONS)   # pair label 0: no relation; k >= 1: _RELATION_TYPES[k - 1]
_BIO_LABELS = ("O",) + tuple(f"{p}-{t}" for t in _ENTITY_TYPES for p in ("B", "I"))
_IGNORE = -100   # NER label of pieces that are not a word's first, [CLS], [SEP], padding: PyTorch's ignore_index


def _check_record(record: dict, where: str) -> dict:
    """``record``, or one clear SchemaError naming what is wrong with its tokens, entities or relations."""
    def fail(problem: str):
        raise SchemaError(where + problem)
    for name in ("tokens", "entities", "relations"):
        if not isinstance(record.get(name), list):
            fail(f": field {name!r} is missing or not a list.")
    tokens, entities, relations = record["tokens"], record["entities"], record["relations"]
    if not tokens:
        fail(": empty sentence (no tokens).")
    if (bad := next((i for i, t in enumerate(tokens) if not isinstance(t, str) or not t.strip()), None)) is not None:
        fail(f": token {bad} is {tokens[bad]!r}, not a non-empty string.")
    for i, e in enumerate(entities):
        if not isinstance(e, dict) or not all(isinstance(e.get(k), int) for k in ("start", "end")):
            fail(f", entity {i}: needs integer 'start' and 'end', got {e!r}.")
        if e.get("type") not in _ENTITY_TYPES:
            fail(f", entity {i}: type {e.get('type')!r} is not one of {_ENTITY_TYPES}.")
        if not 0 <= e["start"] < e["end"] <= len(tokens):
            fail(f", entity {i}: span [{e['start']}, {e['end']}) is empty or outside the sentence of {len(tokens)} "
                 "tokens (end is exclusive).")
    span = lambda k: f"{k} [{entities[k]['start']}, {entities[k]['end']})"  # noqa: E731
    order = sorted(range(len(entities)), key=lambda i: entities[i]["start"])
    for a, b in zip(order, order[1:]):
        if entities[b]["start"] < entities[a]["end"]:
            fail(f": entities {span(a)} and {span(b)} overlap.")
    for i, r in enumerate(relations):
        if not isinstance(r, dict) or r.get("type") not in _RELATIONS:
            kind = r.get("type") if isinstance(r, dict) else r
            fail(f", relation {i}: type {kind!r} is not one of {_RELATION_TYPES}.")
        for arg in ("head", "tail"):
            if not isinstance(r.get(arg), int) or not 0 <= r[arg] < len(entities):
                fail(f", relation {i}: {arg}={r.get(arg)!r} points past the entity list ({len(entities)} entities).")
        if r["head"] == r["tail"]:
            fail(f", relation {i}: head and tail are the same entity ({r['head']}).")
        expected, found = _RELATIONS[r["type"]], (entities[r["head"]]["type"], entities[r["tail"]]["type"])
        if found != expected:
            fail(f", relation {i}: {r['type']} needs arguments {' -> '.join(expected)}, got {' -> '.join(found)}.")
    return record


def load_conll04(splits: tuple[str, ...] = _SPLITS):
    """CoNLL04 as a checked ``datasets.DatasetDict``: ``tokens``, ``entities`` ({start, end (exclusive), type}),
    ``relations`` ({head, tail, type}: entity indices), ``orig_id``. From ``$LEARNSTRAT_DATA_DIR/conll04``, the cache,
    the Hub, else, warning loudly, the course's small sample; ``result.source`` says which.
    Explained in 03, section "Data: CoNLL04"."""
    import datasets
    if unknown := [s for s in splits if s not in _SPLITS]:
        raise ValueError(f"Unknown CoNLL04 split(s) {unknown}: choose from {', '.join(_SPLITS)}.")
    source = str(folder := assets.resolve_dataset_folder("conll04", [f"{s}.jsonl" for s in splits]))
    if folder is None and assets.is_offline() and all((_SAMPLE_DIR / f"{s}.jsonl").is_file() for s in splits):
        message = (f"CoNLL04 is not available (LEARNSTRAT_DATA_DIR not set, nothing cached, Hub offline): using the "
                   f"course's own small sample in {_SAMPLE_DIR} instead. Every number below is on that sample, NOT on "
                   "CoNLL04. Go online once, or set LEARNSTRAT_DATA_DIR to a folder holding conll04/<split>.jsonl.")
        warnings.warn(message, stacklevel=2)
        print("WARNING: " + message)
        folder, source = _SAMPLE_DIR, f"course sample ({_SAMPLE_DIR})"
    if folder is not None:
        loaded = {s: [_check_record(r, f"{s}.jsonl, line {n}") for n, r in _read_jsonl_objects(folder / f"{s}.jsonl")]
                  for s in splits}
    elif not assets.is_offline():
        hub, source = datasets.load_dataset(_HUB_ID), f"Hugging Face Hub ({_HUB_ID})"
        loaded = {s: [_check_record(r, f"{_HUB_ID} {s}, record {i}") for i, r in enumerate(hub[s].to_list())]
                  for s in splits}
    else:
        raise _offline("the CoNLL04 dataset", "conll04", f"Hugging Face Hub ({_HUB_ID})",
                       "{train,validation,test}.jsonl", f"course sample {_SAMPLE_DIR}: missing")
    columns = lambda i, r: {**{k: r[k] for k in ("tokens", "entities", "relations")},  # noqa: E731
                            "orig_id": int(r.get("orig_id", i))}
    result = datasets.DatasetDict({s: datasets.Dataset.from_list([columns(i, r) for i, r in enumerate(loaded[s])])
                                   for s in splits})   # the same columns whatever the source
    result.source = source
    return result


def _bio_to_spans(tags: Sequence[str]) -> list[dict]:
    """Entities {start, end, type} read from BIO tags; an I-type that continues no entity of its type starts one."""
    spans = []
    for w, tag in enumerate(tags):
        prefix, _, kind = tag.partition("-")
        if tag != "O" and (prefix not in ("B", "I") or kind not in _ENTITY_TYPES):
            raise ValueError(f"tag {w} is {tag!r}: expected O, B-type or I-type with a type in {_ENTITY_TYPES}.")
        if prefix == "I" and spans and spans[-1]["end"] == w and spans[-1]["type"] == kind:
            spans[-1]["end"] = w + 1
        elif tag != "O":
            spans.append({"start": w, "end": w + 1, "type": kind})
    return spans


def _word_case(word: str) -> int:
    """1 lower case or no letters, 2 Capitalised ("Paris"), 3 ALL CAPS ("NATO"); 0 is for pieces of no word."""
    letters = [c for c in word if c.isalpha()]
    if not letters or not letters[0].isupper():
        return 1
    return 3 if len(letters) > 1 and all(c.isupper() for c in letters) else 2


@dataclass
class _Sentence:
    """A sentence as the model sees it: piece ids, each kept word's first and (one past) last piece, labels, record."""

    input_ids: list[int]
    piece_start: list[int]
    piece_end: list[int]
    ner_labels: list[int]
    case: list[int]
    record: dict

    def kept_entities(self) -> list[int]:   # the gold entities wholly inside the words that fit in max_length pieces
        return [i for i, e in enumerate(self.record["entities"]) if e["end"] <= len(self.piece_start)]

    def piece_tags(self) -> list[str | None]:   # the BIO tag of every piece (None: ignored by the NER loss)
        return [None if y == _IGNORE else _BIO_LABELS[y] for y in self.ner_labels]


def encode_sentences(records: Sequence[dict], tokenizer, *, max_length: int = 128) -> list[_Sentence]:
    """Checked, tokenised records cut at ``max_length`` pieces, each word's *first* piece tagged (B-, I-type or O),
    every piece given its word's case. Explained in 03, section "Data: CoNLL04"."""
    records = [_check_record(r, f"sentence {i}") for i, r in enumerate(records)]
    if not records:
        raise ValueError("encode_sentences got no sentences.")
    batch = tokenizer([r["tokens"] for r in records], is_split_into_words=True, truncation=True, max_length=max_length)
    out = []
    for i, r in enumerate(records):
        word_ids = batch.word_ids(i)
        starts = {w: p for p, w in reversed(list(enumerate(word_ids))) if w is not None}
        ends = {w: p + 1 for p, w in enumerate(word_ids) if w is not None}
        kept = next(w for w in range(len(r["tokens"]) + 1) if w not in starts)
        tags = ["O"] * len(r["tokens"])
        for e in r["entities"]:
            tags[e["start"]: e["end"]] = [f"B-{e['type']}"] + [f"I-{e['type']}"] * (e["end"] - e["start"] - 1)
        labels = [_IGNORE] * len(word_ids)
        for w in range(kept):
            labels[starts[w]] = _BIO_LABELS.index(tags[w])
        case = [0 if w is None else _word_case(r["tokens"][w]) for w in word_ids]
        out.append(_Sentence(list(batch["input_ids"][i]), [starts[w] for w in range(kept)],
                             [ends[w] for w in range(kept)], labels, case, r))
    return out


def collate_sentences(sentences: Sequence[_Sentence], pad_id: int, entities: Sequence[list] | None = None) -> dict:
    """A padded batch and ``pairs`` [P, 7] (sentence, head start, end, tail start, end, head type, tail type) for every
    ordered pair of distinct gold (or given ``entities``) entities, with ``pair_labels`` [P] (0: none, k: k-th type).
    Explained in 03, section "The joint model: one encoder, two heads"."""
    shape = (len(sentences), max(len(s.input_ids) for s in sentences))
    input_ids, mask = torch.full(shape, pad_id, dtype=torch.long), torch.zeros(shape, dtype=torch.long)
    ner, case = torch.full(shape, _IGNORE, dtype=torch.long), torch.zeros(shape, dtype=torch.long)
    pairs, pair_labels, pair_index = [], [], []
    for b, s in enumerate(sentences):
        n = len(s.input_ids)
        input_ids[b, :n], mask[b, :n] = torch.tensor(s.input_ids), 1
        ner[b, :n], case[b, :n] = torch.tensor(s.ner_labels), torch.tensor(s.case)
        if entities is None:
            keep = s.kept_entities()
            ents, position = [s.record["entities"][i] for i in keep], {old: new for new, old in enumerate(keep)}
            labels = {(position[r["head"]], position[r["tail"]]): 1 + _RELATION_TYPES.index(r["type"])
                      for r in s.record["relations"] if r["head"] in position and r["tail"] in position}
        else:
            ents, labels = [e for e in entities[b] if e["end"] <= len(s.piece_start)], {}
        for (h, eh), (t, et) in permutations(enumerate(ents), 2):   # every ordered pair of distinct entities
            pairs.append([b, s.piece_start[eh["start"]], s.piece_end[eh["end"] - 1], s.piece_start[et["start"]],
                          s.piece_end[et["end"] - 1], _ENTITY_TYPES.index(eh["type"]), _ENTITY_TYPES.index(et["type"])])
            pair_labels.append(labels.get((h, t), 0))
            pair_index.append((b, h, t))
    return {"input_ids": input_ids, "attention_mask": mask, "ner_labels": ner, "case": case,
            "pairs": torch.tensor(pairs, dtype=torch.long).reshape(-1, 7),
            "pair_labels": torch.tensor(pair_labels, dtype=torch.long), "pair_index": pair_index}


@torch.inference_mode()
def predict_ner_re(ner_model, sentences: Sequence[_Sentence], *, re_model=None, pad_id: int = 0,
                   batch_size: int = 32, gold_entities: bool = False) -> list[dict]:
    """``{"entities", "relations"}`` per sentence, end to end: ``ner_model``'s entities, then ``re_model``'s (default:
    the same) relations between them (``gold_entities``: between the gold ones, RE alone), as plain Python.
    Explained in 03, section "The headline run"."""
    re_model = (re_model or ner_model).eval()
    ner_model.eval()
    out: list[dict | None] = [None] * len(sentences)
    for index in length_grouped_batches([len(s.input_ids) for s in sentences], batch_size, shuffle=False):
        chunk = [sentences[i] for i in index]
        if gold_entities:
            ents = [[s.record["entities"][k] for k in s.kept_entities()] for s in chunk]
        else:
            batch = to_device(collate_sentences(chunk, pad_id, entities=[[] for _ in chunk]), model_device(ner_model))
            tags = ner_model.ner_head(ner_model.encode(batch)).argmax(-1).cpu()
            ents = [_bio_to_spans([_BIO_LABELS[int(tags[b, p])] for p in s.piece_start]) for b, s in enumerate(chunk)]
        batch = to_device(collate_sentences(chunk, pad_id, entities=ents), model_device(re_model))
        labels = re_model.pair_logits(re_model.encode(batch), batch["pairs"]).argmax(-1).tolist()
        for b, i in enumerate(index):
            out[i] = {"entities": ents[b], "relations": []}
        for (b, h, t), label in zip(batch["pair_index"], labels):
            if label:
                out[index[b]]["relations"].append({"head": h, "tail": t, "type": _RELATION_TYPES[label - 1]})
    return out


def _strict_f1(gold: Sequence[dict], predicted: Sequence[dict]) -> dict:
    """Strict micro P/R/F1 (all, by type): entities match on span and type, relations on type and both arguments'
    spans and types; ``counts``: each sentence's true positives, predicted, gold (to bootstrap over sentences)."""
    if len(gold) != len(predicted):
        raise ValueError(f"got {len(gold)} gold sentences but {len(predicted)} predictions.")

    def facts(sentences):  # (sentence, span, type) of every entity; (sentence, head, tail, type) of every relation
        entities, relations, span = set(), set(), lambda e: (e["start"], e["end"], e["type"])
        for i, s in enumerate(sentences):
            entities |= {(i, *span(e)) for e in s["entities"]}
            for r in s["relations"]:
                if not (0 <= r["head"] < len(s["entities"]) and 0 <= r["tail"] < len(s["entities"])):
                    raise SchemaError(f"sentence {i}: relation {r} points past the entity list "
                                      f"({len(s['entities'])} entities).")
                relations.add((i, *span(s["entities"][r["head"]]), *span(s["entities"][r["tail"]]), r["type"]))
        return entities, relations

    def prf(gold_set, pred_set):
        tp = len(gold_set & pred_set)
        p, r = (tp / len(pred_set) if pred_set else 0.0), (tp / len(gold_set) if gold_set else 0.0)
        return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
                "tp": tp, "n_gold": len(gold_set), "n_pred": len(pred_set)}

    def per_sentence(gold_set, pred_set):   # [sentences, 3]: true positives, predicted, gold of each sentence
        return np.stack([np.bincount(np.array([x[0] for x in f], dtype=int), minlength=len(gold))
                         for f in (gold_set & pred_set, pred_set, gold_set)], axis=1)
    (ge, gr), (pe, pr) = facts(gold), facts(predicted)
    return {"ner": prf(ge, pe), "re": prf(gr, pr), "counts": {"ner": per_sentence(ge, pe), "re": per_sentence(gr, pr)},
            "ner_by_type": {t: prf({x for x in ge if x[3] == t}, {x for x in pe if x[3] == t}) for t in _ENTITY_TYPES},
            "re_by_type": {t: prf({x for x in gr if x[7] == t}, {x for x in pr if x[7] == t}) for t in _RELATION_TYPES}}


def evaluate_ner_re(ner_model, sentences: Sequence[_Sentence], *, re_model=None, pad_id: int = 0,
                    gold_entities: bool = False) -> dict:
    """Strict micro P/R/F1 of :func:`predict_ner_re` against all the gold (cut-off entities are missed): ``["ner"]``...
    Explained in 03, section "The headline run"."""
    predicted = predict_ner_re(ner_model, sentences, re_model=re_model, pad_id=pad_id, gold_entities=gold_entities)
    return _strict_f1([s.record for s in sentences], predicted)
