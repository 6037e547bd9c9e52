"""Notebook 03's plumbing: spans <-> BIO, pairs, strict F1 (hand-computed), bad input, CoNLL04 loading,
and every annotation of the course's own sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from learnstrat_helpers import assets, multitask as mt
from learnstrat_helpers.datasets import (
    CONLL04_RELATIONS,
    CONLL04_SAMPLE_DIR,
    SchemaError,
    check_conll04_record,
    load_conll04,
)

SENTENCE = {  # "John Smith works for Acme Corp in Boston ."
    "tokens": ["John", "Smith", "works", "for", "Acme", "Corp", "in", "Boston", "."],
    "entities": [{"start": 0, "end": 2, "type": "Peop"}, {"start": 4, "end": 6, "type": "Org"},
                 {"start": 7, "end": 8, "type": "Loc"}],
    "relations": [{"head": 0, "tail": 1, "type": "Work_For"}, {"head": 1, "tail": 2, "type": "OrgBased_In"}],
}


# ---------------------------------------------------------------- spans and BIO


def test_spans_to_bio_and_back():
    tags = mt.spans_to_bio(9, SENTENCE["entities"])
    assert tags == ["B-Peop", "I-Peop", "O", "O", "B-Org", "I-Org", "O", "B-Loc", "O"]
    assert mt.bio_to_spans(tags) == SENTENCE["entities"]


def test_bio_decoding_edge_cases():
    # adjacent entities of the same type, an entity at the very end, a stray I- starting a new entity
    assert mt.bio_to_spans(["B-Loc", "B-Loc", "O", "I-Org", "I-Org", "I-Peop"]) == [
        {"start": 0, "end": 1, "type": "Loc"}, {"start": 1, "end": 2, "type": "Loc"},
        {"start": 3, "end": 5, "type": "Org"}, {"start": 5, "end": 6, "type": "Peop"}]
    assert mt.bio_to_spans(["O", "O"]) == []
    with pytest.raises(ValueError, match="B-Animal"):
        mt.bio_to_spans(["B-Animal"])


@pytest.mark.parametrize("entities, message", [
    ([{"start": 0, "end": 2, "type": "Peop"}, {"start": 1, "end": 3, "type": "Org"}], "overlaps"),
    ([{"start": 2, "end": 5, "type": "Peop"}], "outside the sentence"),
    ([{"start": 1, "end": 1, "type": "Peop"}], "empty or outside"),
    ([{"start": 0, "end": 1, "type": "Person"}], "unknown type"),
])
def test_spans_to_bio_rejects_bad_spans(entities, message):
    with pytest.raises(SchemaError, match=message):
        mt.spans_to_bio(4, entities)


def test_bio_over_first_sub_tokens():
    class FakeTokenizer:  # "Pusterla" -> 3 pieces, everything else 1 piece, [CLS] ... [SEP]
        def __call__(self, sentences, is_split_into_words, truncation, max_length):
            assert is_split_into_words
            self.word_ids_ = []
            ids = []
            for words in sentences:
                w_ids = [None]
                for w, word in enumerate(words):
                    w_ids += [w] * (3 if word == "Pusterla" else 1)
                w_ids = w_ids[: max_length - 1] + [None]
                self.word_ids_.append(w_ids)
                ids.append(list(range(len(w_ids))))
            outer = self

            class Batch(dict):
                def word_ids(self, i):
                    return outer.word_ids_[i]
            return Batch(input_ids=ids)

    record = {"tokens": ["Bruno", "Pusterla", "said", "Rome"],
              "entities": [{"start": 0, "end": 2, "type": "Peop"}, {"start": 3, "end": 4, "type": "Loc"}],
              "relations": [{"head": 0, "tail": 1, "type": "Live_In"}]}
    (enc,) = mt.encode([record], FakeTokenizer(), max_length=32)
    # pieces: [CLS] Bruno Pus ##ter ##la said Rome [SEP]
    assert enc.piece_start == [1, 2, 5, 6] and enc.piece_end == [2, 5, 6, 7]
    labels = [mt.BIO_LABELS[x] if x != mt.IGNORE else None for x in enc.ner_labels]
    assert labels == [None, "B-Peop", "I-Peop", None, None, "O", "B-Loc", None]
    # cut after 5 pieces: "Rome" (and the entity on it) no longer fits, so its pair disappears
    (short,) = mt.encode([record], FakeTokenizer(), max_length=6)
    assert short.n_kept == 2 and short.kept_entities() == [0]
    batch = mt.collate([enc], pad_id=0)
    assert batch["pairs"].tolist() == [[0, 1, 5, 6, 7, 0, 1], [0, 6, 7, 1, 5, 1, 0]]
    assert batch["pair_labels"].tolist() == [1 + mt.RELATION_TYPES.index("Live_In"), 0]
    assert len(mt.collate([short], pad_id=0)["pairs"]) == 0
    # every piece carries its word's capitalisation; [CLS], [SEP] and padding carry 0
    assert enc.case == [0, 2, 2, 2, 2, 1, 2, 0]
    assert mt.collate([enc, short], pad_id=0)["case"].tolist() == [enc.case, short.case + [0, 0]]


def test_word_case():
    assert [mt.word_case(w) for w in ("said", "Paris", "NATO", "1984", "iPhone", "U.S.", "A")] == [1, 2, 3, 1, 1, 3, 2]


# ---------------------------------------------------------------- pairs


def test_entity_pairs_are_ordered_and_labelled():
    pairs = mt.entity_pairs(SENTENCE["entities"], SENTENCE["relations"])
    assert len(pairs) == 6  # 3 entities: 3 * 2 ordered pairs
    labels = {(h, t): y for h, t, y in pairs}
    assert labels[(0, 1)] == 1 + mt.RELATION_TYPES.index("Work_For")
    assert labels[(1, 0)] == mt.NO_RELATION  # directed
    assert labels[(1, 2)] == 1 + mt.RELATION_TYPES.index("OrgBased_In")
    assert mt.entity_pairs([{"start": 0, "end": 1, "type": "Peop"}]) == []


def test_entity_pairs_reject_relation_past_the_entity_list():
    with pytest.raises(SchemaError, match=r"tail=3 points past the entity list \(3 entities\)"):
        mt.entity_pairs(SENTENCE["entities"], [{"head": 0, "tail": 3, "type": "Work_For"}])


# ---------------------------------------------------------------- strict micro-F1, by hand


def test_strict_f1_hand_computed():
    gold = [SENTENCE, {"tokens": ["Ann", "left", "Paris"], "entities": [{"start": 0, "end": 1, "type": "Peop"},
            {"start": 2, "end": 3, "type": "Loc"}], "relations": [{"head": 0, "tail": 1, "type": "Live_In"}]}]
    predicted = [
        {"entities": [{"start": 0, "end": 2, "type": "Peop"},     # right
                      {"start": 4, "end": 6, "type": "Loc"},      # right span, WRONG type (Org)
                      {"start": 7, "end": 8, "type": "Loc"}],     # right
         "relations": [{"head": 0, "tail": 1, "type": "Work_For"},       # right spans/type, but tail mis-typed
                       {"head": 1, "tail": 2, "type": "OrgBased_In"}]},  # head mis-typed
        {"entities": [{"start": 0, "end": 1, "type": "Peop"},     # right
                      {"start": 1, "end": 3, "type": "Loc"}],     # wrong span
         "relations": [{"head": 0, "tail": 1, "type": "Live_In"}]},      # tail span wrong
    ]
    result = mt.strict_f1(gold, predicted)
    # entities: gold 5, predicted 5, correct 3 -> P = R = F1 = 0.6
    assert result["ner"]["tp"] == 3 and result["ner"]["n_gold"] == 5 and result["ner"]["n_pred"] == 5
    assert result["ner"]["f1"] == pytest.approx(0.6)
    # relations: every predicted relation has a mis-typed or mis-spanned argument -> 0 correct
    assert result["re"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "tp": 0, "n_gold": 3, "n_pred": 3}
    assert result["ner_by_type"]["Peop"]["f1"] == pytest.approx(1.0)
    assert result["ner_by_type"]["Org"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "tp": 0, "n_gold": 1, "n_pred": 0}
    # Loc: gold 2 (Boston, Paris), predicted 3 (Acme Corp, Boston, "left Paris"), correct 1
    assert result["ner_by_type"]["Loc"]["precision"] == pytest.approx(1 / 3)
    assert result["ner_by_type"]["Loc"]["recall"] == pytest.approx(1 / 2)
    assert result["ner_by_type"]["Loc"]["f1"] == pytest.approx(0.4)


def test_strict_f1_relation_counts_when_everything_matches():
    predicted = [{"entities": [dict(e) for e in SENTENCE["entities"]][::-1],  # order of entities doesn't matter
                  "relations": [{"head": 2, "tail": 1, "type": "Work_For"},          # right
                                {"head": 1, "tail": 0, "type": "Live_In"}]}]         # wrong relation type
    result = mt.strict_f1([SENTENCE], predicted)
    assert result["ner"]["f1"] == 1.0
    # relations: gold 2, predicted 2, correct 1 -> P = R = F1 = 0.5
    assert (result["re"]["tp"], result["re"]["f1"]) == (1, pytest.approx(0.5))
    assert result["re_by_type"]["Work_For"]["f1"] == 1.0 and result["re_by_type"]["OrgBased_In"]["recall"] == 0.0


def test_strict_f1_rejects_mismatch_and_bad_relation():
    with pytest.raises(ValueError, match="1 gold sentences but 0 predictions"):
        mt.strict_f1([SENTENCE], [])
    bad = [{"entities": [], "relations": [{"head": 0, "tail": 1, "type": "Kill"}]}]
    with pytest.raises(SchemaError, match="points past the entity list"):
        mt.strict_f1([SENTENCE], bad)


# ---------------------------------------------------------------- record validation


def _with(**changes):
    return {**json.loads(json.dumps(SENTENCE)), **changes}


@pytest.mark.parametrize("record, message", [
    (_with(tokens=[], entities=[], relations=[]), "empty sentence"),
    (_with(entities=[{"start": 0, "end": 2, "type": "Peop"}, {"start": 1, "end": 3, "type": "Org"}], relations=[]),
     r"entities 0 \[0, 2\) and 1 \[1, 3\) overlap"),
    (_with(relations=[{"head": 0, "tail": 7, "type": "Work_For"}]), r"tail=7 points past the entity list \(3 entities\)"),
    (_with(relations=[{"head": 1, "tail": 0, "type": "Work_For"}]), "Work_For needs arguments Peop -> Org, got Org -> Peop"),
    (_with(entities=[{"start": 8, "end": 10, "type": "Loc"}], relations=[]), "outside the sentence of 9 tokens"),
    (_with(relations=[{"head": 0, "tail": 0, "type": "Kill"}]), "same entity"),
    (_with(relations=[{"head": 0, "tail": 1, "type": "Employs"}]), "'Employs' is not one of"),
])
def test_bad_records_get_one_clear_error(record, message):
    with pytest.raises(SchemaError, match=message):
        check_conll04_record(record, "test record")


def test_encode_refuses_an_empty_sentence():
    with pytest.raises(SchemaError, match="sentence 1: empty sentence"):
        mt.encode([SENTENCE, _with(tokens=[], entities=[], relations=[])], tokenizer=None)


# ---------------------------------------------------------------- the course's own sample


SAMPLE_FILES = sorted(CONLL04_SAMPLE_DIR.glob("*.jsonl"))


def test_sample_has_three_splits_and_at_least_100_sentences():
    assert [p.name for p in SAMPLE_FILES] == ["test.jsonl", "train.jsonl", "validation.jsonl"]
    records = [json.loads(line) for p in SAMPLE_FILES for line in p.read_text().splitlines() if line.strip()]
    assert len(records) >= 100
    used = {r["type"] for rec in records for r in rec["relations"]}
    assert used == set(CONLL04_RELATIONS), "every relation type appears in the sample"
    assert {e["type"] for rec in records for e in rec["entities"]} == {"Peop", "Loc", "Org", "Other"}
    texts = [" ".join(r["tokens"]) for r in records]
    assert len(set(texts)) == len(texts), "no duplicate sentences"


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=[p.stem for p in SAMPLE_FILES])
def test_every_sample_annotation_is_valid(path):
    for line_number, line in enumerate(path.read_text().splitlines(), 1):
        record = json.loads(line)
        assert set(record) == {"tokens", "entities", "relations", "orig_id"}
        check_conll04_record(record, f"{path.name}, line {line_number}")  # spans inside, no overlaps, argument types
        for e in record["entities"]:
            assert all(t.strip() for t in record["tokens"][e["start"]: e["end"]])


def test_load_conll04_falls_back_to_the_sample_loudly(monkeypatch, capsys):
    monkeypatch.delenv("LEARNSTRAT_DATA_DIR", raising=False)
    with pytest.warns(UserWarning, match="NOT on CoNLL04"):
        data = load_conll04()
    assert "WARNING" in capsys.readouterr().out
    assert data.source.startswith("course sample")
    assert data["train"].num_rows >= 70 and set(data) == {"train", "validation", "test"}
    assert data["train"][0]["entities"][0].keys() == {"start", "end", "type"}


def test_load_conll04_from_a_local_folder(monkeypatch, tmp_path):
    folder = tmp_path / "conll04"
    folder.mkdir()
    for split in ("train", "validation", "test"):
        (folder / f"{split}.jsonl").write_text(json.dumps({**SENTENCE, "orig_id": 7}) + "\n")
    monkeypatch.setenv("LEARNSTRAT_DATA_DIR", str(tmp_path))
    data = load_conll04()
    assert data.source == str(folder)
    assert data["test"][0]["relations"] == SENTENCE["relations"]


def test_load_conll04_names_the_bad_line(monkeypatch, tmp_path):
    folder = tmp_path / "conll04"
    folder.mkdir()
    (folder / "train.jsonl").write_text(json.dumps(SENTENCE) + "\n" + json.dumps(_with(tokens=[], entities=[], relations=[])) + "\n")
    monkeypatch.setenv("LEARNSTRAT_DATA_DIR", str(tmp_path))
    with pytest.raises(SchemaError, match="train.jsonl, line 2: empty sentence"):
        load_conll04(("train",))


@pytest.mark.slow
def test_load_conll04_from_shared_data(monkeypatch, shared_data):
    if not (shared_data / "conll04" / "test.jsonl").is_file():
        pytest.skip(f"{shared_data} has no conll04/")
    monkeypatch.setenv("LEARNSTRAT_DATA_DIR", str(shared_data))
    data = load_conll04()
    assert [data[s].num_rows for s in ("train", "validation", "test")] == [922, 231, 288]


# ---------------------------------------------------------------- model pieces


def test_length_grouped_batches_cover_everything_and_respect_max_tokens():
    lengths = [5, 120, 7, 6, 118, 8, 9, 100, 5, 6]
    batches = mt.length_grouped_batches(lengths, 4, seed=1, max_tokens=250)
    assert sorted(i for b in batches for i in b) == list(range(10))
    assert all(len(b) * max(lengths[i] for i in b) <= 250 or len(b) == 1 for b in batches)
    plain = mt.length_grouped_batches(lengths, 4, shuffle=False)
    assert plain == [[0, 8, 3, 9], [2, 5, 6, 7], [4, 1]]
    with pytest.raises(ValueError, match="batch_size"):
        mt.length_grouped_batches(lengths, 0)


def test_span_mean_pools_the_right_pieces():
    hidden = torch.arange(2 * 4 * 1, dtype=torch.float).reshape(2, 4, 1)  # sentence 0: 0..3, sentence 1: 4..7
    rows, start, end = torch.tensor([0, 1, 1]), torch.tensor([1, 0, 2]), torch.tensor([3, 2, 2])
    assert mt._span_mean(hidden, rows, start, end).flatten().tolist() == [1.5, 4.5, 0.0]  # empty range -> 0


def test_l2_distance_and_flat_grad():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    with torch.no_grad():
        b.weight.copy_(a.weight + 1.0)
        b.bias.copy_(a.bias)
    assert mt.l2_distance(a, b).item() == pytest.approx(4.0)
    with pytest.raises(ValueError, match="same trainable parameter shapes"):
        mt.l2_distance(a, torch.nn.Linear(3, 2))
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    unused = torch.nn.Parameter(torch.tensor([5.0]))
    assert mt.flat_grad((w ** 2).sum(), [w, unused]).tolist() == [2.0, 4.0, 0.0]


@pytest.mark.slow
def test_joint_model_trains_a_few_steps_on_the_sample(monkeypatch):
    from transformers import AutoTokenizer

    monkeypatch.delenv("LEARNSTRAT_DATA_DIR", raising=False)
    records = [json.loads(line) for line in (CONLL04_SAMPLE_DIR / "train.jsonl").read_text().splitlines()][:16]
    source = assets.resolve_minilm()
    tokenizer = AutoTokenizer.from_pretrained(source)
    data = mt.encode(records, tokenizer, max_length=48)
    model = mt.JointModel(mt.load_encoder(source, n_layers=1))

    def step(model, batch, optimizer, scheduler, n):
        losses = mt.task_losses(model, batch)
        optimizer.zero_grad()
        (losses["ner"] + losses["re"]).backward()
        optimizer.step()
        scheduler.step()
        return {k: v.item() for k, v in losses.items()}

    history = mt.train(model, data, step, epochs=2, batch_size=8, pad_id=tokenizer.pad_token_id, show_progress=False)
    assert len(history.steps) == 4 and history.series("ner")[1].shape == (4,)
    result = mt.evaluate(model, data, pad_id=tokenizer.pad_token_id)
    assert 0.0 <= result["ner"]["f1"] <= 1.0 and result["ner"]["n_gold"] == sum(len(r["entities"]) for r in records)
    gold_re = mt.evaluate(model, data, pad_id=tokenizer.pad_token_id, gold_entities=True)
    assert gold_re["ner"]["f1"] == 1.0  # gold entities handed over unchanged
    html = mt.highlight_html(records[0], "gold")
    assert "<span" in html and "gold" in html
