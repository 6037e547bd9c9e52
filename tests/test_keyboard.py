"""Notebook 04's keyboard: Tiny Shakespeare's roles as users, validated; the public word list; next-word chunks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from learnstrat_helpers import assets, keyboard
from learnstrat_helpers.datasets import SchemaError

PLAY = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die\nthan to famish?\n\nAll:\nResolved. resolved.\n\n"
        "MENENIUS:\nI'll tell you, it isn't so.\n\n")


def _write_play(base: Path, records: list | str) -> Path:
    folder = base / "tiny_shakespeare"
    folder.mkdir(parents=True)
    text = records if isinstance(records, str) else "".join(json.dumps(r) + "\n" for r in records)
    (folder / "train.jsonl").write_text(text)
    return base


def test_words_split_contractions_as_sst2_writes_them():
    assert keyboard.words("I'll tell you, it isn't so. What's THAT?") == [
        "i", "'ll", "tell", "you", "it", "is", "n't", "so", "what", "'s", "that"]


def test_users_are_roles_with_their_turns_in_order(tmp_path, monkeypatch):
    monkeypatch.setenv("LEARNSTRAT_DATA_DIR", str(_write_play(tmp_path, [{"text": PLAY}])))
    typed, typed_next = keyboard.load_shakespeare_users(min_words=1, held_out=0.5)
    assert list(typed) == ["First Citizen", "All"]        # MENENIUS speaks once: no turn left to test on
    assert typed["First Citizen"] == ["Before we proceed any further, hear me speak."]
    assert typed_next["First Citizen"] == ["You are all resolved rather to die than to famish?"]
    assert typed_next["All"] == ["Resolved. resolved."]
    assert list(keyboard.load_shakespeare_users(min_words=12)[0]) == ["First Citizen"]   # 9 + 10 words; All has 4
    with pytest.raises(ValueError, match="no role speaks 1000 words"):
        keyboard.load_shakespeare_users(min_words=1000)
    for bad in ({"min_words": 0}, {"held_out": 1.0}, {"held_out": 0}):
        with pytest.raises(ValueError, match="min_words >= 1 and held_out"):
            keyboard.load_shakespeare_users(**bad)


def test_each_user_is_tested_on_their_last_turns(tmp_path, monkeypatch):
    play = "".join(f"KING:\nline {i} of the king.\n\n" for i in range(5))
    monkeypatch.setenv("LEARNSTRAT_DATA_DIR", str(_write_play(tmp_path, [{"text": play}])))
    typed, typed_next = keyboard.load_shakespeare_users(min_words=1, held_out=0.2)
    assert typed["KING"] == [f"line {i} of the king." for i in range(4)]
    assert typed_next["KING"] == ["line 4 of the king."]


@pytest.mark.parametrize("records, message", [
    ([{"text": PLAY}, {"txt": "x"}], "record 2"),
    ([{"text": PLAY}, {"text": "   "}], "record 2"),
    ([{"text": 3}], "record 1"),
    ([{"text": "no roles here, only words"}], "no speaking turns"),
])
def test_a_bad_record_is_a_schema_error_naming_it(tmp_path, monkeypatch, records, message):
    monkeypatch.setenv("LEARNSTRAT_DATA_DIR", str(_write_play(tmp_path, records)))
    with pytest.raises(SchemaError, match=message):
        keyboard.load_shakespeare_users(min_words=1)


def test_offline_without_the_files_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("LEARNSTRAT_DATA_DIR", raising=False)
    monkeypatch.setenv("LEARNSTRAT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(assets.AssetNotFound, match="Tiny Shakespeare"):
        keyboard.load_shakespeare_users()


def test_the_word_list_is_the_public_texts_commonest_words_after_the_special_ones():
    vocabulary = keyboard.word_list(["the film , the plot", "a film"], size=2)
    assert vocabulary == ["<pad>", "<unk>", "<s>", "the", "film"]
    with pytest.raises(ValueError, match="fewer than the 10"):
        keyboard.word_list(["too few words"], size=10)


def test_chunks_mark_unknown_words_and_ignore_padding_and_turn_starts():
    vocabulary = ["<pad>", "<unk>", "<s>", "to", "be", "or"]
    x, y = keyboard.next_word_chunks(["To be, or not", "to be"], vocabulary, length=4)
    # ids: <s> to be or not(<unk>) <s> to be  -> inputs are all but the last, targets all but the first
    assert x.tolist() == [[2, 3, 4, 5], [1, 2, 3, 4]]
    assert y.tolist() == [[3, 4, 5, 1], [-100, 3, 4, -100]]
    assert x.dtype == torch.int64
    for no_words in (["..."], ["...", "!"], []):   # turns without a word would leave nothing to score
        with pytest.raises(ValueError, match="need a word in the turns"):
            keyboard.next_word_chunks(no_words, vocabulary)
    with pytest.raises(ValueError, match="must start with"):
        keyboard.next_word_chunks(["to be"], ["to", "be"])


@pytest.mark.slow
def test_the_shared_tiny_shakespeare_gives_the_users_the_notebook_describes():
    if not (Path(os.environ.get("LEARNSTRAT_DATA_DIR", "/nonexistent")) / "tiny_shakespeare").is_dir():
        pytest.skip("LEARNSTRAT_DATA_DIR has no tiny_shakespeare/")
    typed, typed_next = keyboard.load_shakespeare_users(min_words=1000)
    assert len(typed) == len(typed_next) == 55   # measured: 272 roles in the train split, 55 with >= 1,000 words
    every_turn = [t for part in (typed, typed_next) for turns in part.values() for t in turns]
    assert sum(len(keyboard.words(t)) for t in every_turn) == 137_545
    assert all(len(typed[u]) >= 4 * len(typed_next[u]) - 4 and typed_next[u] for u in typed)
