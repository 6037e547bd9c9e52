"""A phone keyboard's next-word task: Tiny Shakespeare's roles as users, a word list fixed from public text, chunks.
Explained in 04, section "Part 4: a keyboard that learns from its users"."""

import collections
import re
from typing import Iterable, Sequence

import torch

from . import assets
from .datasets import SchemaError, _offline, _read_jsonl_objects

_HUB_ID = "karpathy/tiny_shakespeare"
_SPECIAL_WORDS = ("<pad>", "<unk>", "<s>")   # padding, a word outside the list, the start of a turn
_ROLE_LINE = re.compile(r"[A-Z][A-Za-z' ]*:")


def words(text: str) -> list[str]:
    """Lower-case words, "n't" and "'s" ('re, 've, 'll, 'd, 'm) split off as SST-2 writes them; punctuation dropped.
    Explained in 04, section "Part 4: a keyboard that learns from its users"."""
    text = re.sub(r"'(s|re|ve|ll|d|m)\b", r" '\1", re.sub(r"n't\b", " n't", text.lower()))
    return re.findall(r"n't|'?[a-z]+", text)


def load_shakespeare_users(min_words: int = 1000, held_out: float = 0.2) -> tuple[dict, dict]:
    """Tiny Shakespeare's train split as users, every speaking role with at least ``min_words`` words: ``(typed,
    typed_next)``, each ``{role: turns}``, a turn (a ``ROLE:`` line, the lines spoken) one string; the last
    ``held_out`` share of a role's turns is what it types next. From ``$LEARNSTRAT_DATA_DIR/tiny_shakespeare/``
    ``train.jsonl`` (``{"text": str}``), the cache, else the Hub.
    Explained in 04, section "Part 4: a keyboard that learns from its users"."""
    if min_words < 1 or not 0 < held_out < 1:
        raise ValueError(f"need min_words >= 1 and held_out in (0, 1), got {min_words!r}, {held_out!r}.")
    if folder := assets.resolve_dataset_folder("tiny_shakespeare", ["train.jsonl"]):
        where, records = folder / "train.jsonl", _read_jsonl_objects(folder / "train.jsonl")
    elif assets.is_offline():
        raise _offline("Tiny Shakespeare", "tiny_shakespeare", f"Hugging Face Hub ({_HUB_ID})", "train.jsonl")
    else:
        import datasets
        where, records = _HUB_ID, list(enumerate(datasets.load_dataset(_HUB_ID, split="train"), 1))
    turns = collections.defaultdict(list)
    for line, record in records:
        if not isinstance(record.get("text"), str) or not record["text"].strip():
            raise SchemaError(f"{where}, record {line}: expected {{'text': a non-empty string}}, got {record!r:.60}")
        for block in record["text"].split("\n\n"):
            role, _, speech = block.strip().partition("\n")
            if _ROLE_LINE.fullmatch(role) and speech.strip():
                turns[role[:-1]].append(" ".join(speech.split()))
    if not turns:
        raise SchemaError(f"{where}: no speaking turns (a 'ROLE:' line, then its lines) in the text.")
    users = {r: t for r, t in turns.items() if sum(len(words(x)) for x in t) >= min_words and len(t) >= 2}
    if not users:
        raise ValueError(f"no role speaks {min_words} words in two turns or more: lower min_words.")
    cut = {u: min(len(t) - 1, round(len(t) * (1 - held_out))) for u, t in users.items()}
    return {u: t[:cut[u]] for u, t in users.items()}, {u: t[cut[u]:] for u, t in users.items()}


def word_list(public_texts: Iterable[str], size: int) -> list[str]:
    """The special words, then the ``size`` most frequent words of ``public_texts``: fixed before any user types.
    Explained in 04, section "Part 4: a keyboard that learns from its users"."""
    counts = collections.Counter(w for text in public_texts for w in words(text))
    if len(counts) < size:
        raise ValueError(f"the public text has {len(counts)} distinct words, fewer than the {size} asked for.")
    return list(_SPECIAL_WORDS) + [w for w, _ in counts.most_common(size)]


def next_word_chunks(turns: Sequence[str], vocabulary: Sequence[str], length: int = 24):
    """A user's turns as ``(inputs, targets)`` [chunks, length] of word ids: ``<s>`` opens each turn, a word outside
    ``vocabulary`` is ``<unk>``; a target is the next word, -100 (ignored) where that is padding or ``<s>``.
    Explained in 04, section "Part 4: a keyboard that learns from its users"."""
    if tuple(vocabulary[:3]) != _SPECIAL_WORDS:
        raise ValueError(f"the vocabulary must start with {_SPECIAL_WORDS} (word_list's), got {tuple(vocabulary[:3])}.")
    index = {w: i for i, w in enumerate(vocabulary)}
    ids = [i for turn in turns for i in [2] + [index.get(w, 1) for w in words(turn)]]
    if len(ids) == len(turns) or length < 1:   # only <s>: no word to predict
        raise ValueError(f"need a word in the turns and length >= 1, got {len(ids) - len(turns)} words, {length}.")
    n = -(-(len(ids) - 1) // length)
    ids = torch.tensor(ids + [0] * (n * length + 1 - len(ids)))
    inputs, targets = ids[:-1].view(n, length), ids[1:].clone().view(n, length)
    targets[(targets == 0) | (targets == 2)] = -100
    return inputs, targets
