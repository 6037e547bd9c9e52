"""Notebook 03's plumbing: CoNLL04 loading and checking (every annotation of the course's own sample), BIO tags on
first pieces, entity pairs, strict F1 (hand-computed), the joint model's pieces, and its training step on the
model's device."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch

from learnstrat_helpers import assets, multitask as mt, ner_re
from learnstrat_helpers.datasets import SchemaError
from device_check import DeviceRecorder, assert_on_model_device, watched

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "learnstrat_helpers" / "conll04_sample"
SENTENCE = {  # "John Smith works for Acme Corp in Boston ."
    "tokens": ["John", "Smith", "works", "for", "Acme", "Corp", "in", "Boston", "."],
    "entities": [{"start": 0, "end": 2, "type": "Peop"}, {"start": 4, "end": 6, "type": "Org"},
                 {"start": 7, "end": 8, "type": "Loc"}],
    "relations": [{"head": 0, "tail": 1, "type": "Work_For"}, {"head": 1, "tail": 2, "type": "OrgBased_In"}],
}


class FakeTokenizer:  # "Pusterla" -> 3 pieces, every other word 1 piece, [CLS] ... [SEP]; piece ids count up
    def __call__(self, sentences, is_split_into_words, truncation, max_length):
        assert is_split_into_words and truncation
        self.word_ids_, ids = [], []
        for words in sentences:
            w_ids = [None] + [w for w, word in enumerate(words) for _ in range(3 if word == "Pusterla" else 1)]
            w_ids = w_ids[: max_length - 1] + [None]
            self.word_ids_.append(w_ids)
            ids.append(list(range(1, len(w_ids) + 1)))
        outer = self

        class Batch(dict):
            def word_ids(self, i):
                return outer.word_ids_[i]
        return Batch(input_ids=ids)


def _with(**changes):
    return {**json.loads(json.dumps(SENTENCE)), **changes}


# ---------------------------------------------------------------- tags, pieces and pairs


def test_bio_tags_on_first_pieces_and_back():
    (enc,) = ner_re.encode_sentences([SENTENCE], FakeTokenizer())
    words = [t for t in enc.piece_tags() if t is not None]
    assert words == ["B-Peop", "I-Peop", "O", "O", "B-Org", "I-Org", "O", "B-Loc", "O"]
    assert ner_re._bio_to_spans(words) == SENTENCE["entities"]


def test_bio_decoding_edge_cases():
    # adjacent entities of the same type, an entity at the very end, a stray I- starting a new entity
    assert ner_re._bio_to_spans(["B-Loc", "B-Loc", "O", "I-Org", "I-Org", "I-Peop"]) == [
        {"start": 0, "end": 1, "type": "Loc"}, {"start": 1, "end": 2, "type": "Loc"},
        {"start": 3, "end": 5, "type": "Org"}, {"start": 5, "end": 6, "type": "Peop"}]
    assert ner_re._bio_to_spans(["O", "O"]) == []
    with pytest.raises(ValueError, match="B-Animal"):
        ner_re._bio_to_spans(["B-Animal"])


def test_pieces_labels_case_and_pairs():
    record = {"tokens": ["Bruno", "Pusterla", "said", "Rome"],
              "entities": [{"start": 0, "end": 2, "type": "Peop"}, {"start": 3, "end": 4, "type": "Loc"}],
              "relations": [{"head": 0, "tail": 1, "type": "Live_In"}]}
    (enc,) = ner_re.encode_sentences([record], FakeTokenizer(), max_length=32)
    # pieces: [CLS] Bruno Pus ##ter ##la said Rome [SEP]
    assert enc.piece_start == [1, 2, 5, 6] and enc.piece_end == [2, 5, 6, 7]
    assert enc.piece_tags() == [None, "B-Peop", "I-Peop", None, None, "O", "B-Loc", None]
    # cut after 5 pieces: "Rome" (and the entity on it) no longer fits, so its pair disappears
    (short,) = ner_re.encode_sentences([record], FakeTokenizer(), max_length=6)
    assert len(short.piece_start) == 2 and short.kept_entities() == [0]
    batch = ner_re.collate_sentences([enc], pad_id=0)
    assert batch["pairs"].tolist() == [[0, 1, 5, 6, 7, 0, 1], [0, 6, 7, 1, 5, 1, 0]]
    assert batch["pair_labels"].tolist() == [1 + ner_re._RELATION_TYPES.index("Live_In"), 0]   # directed
    assert len(ner_re.collate_sentences([short], pad_id=0)["pairs"]) == 0
    # every piece carries its word's capitalisation; [CLS], [SEP] and padding carry 0
    assert enc.case == [0, 2, 2, 2, 2, 1, 2, 0]
    two = ner_re.collate_sentences([enc, short], pad_id=0)
    assert two["case"].tolist() == [enc.case, short.case + [0, 0]]
    assert two["attention_mask"].tolist()[1] == [1] * 6 + [0, 0] and two["ner_labels"][1, 6:].tolist() == [-100] * 2


def test_every_ordered_pair_is_labelled():
    batch = ner_re.collate_sentences(ner_re.encode_sentences([SENTENCE], FakeTokenizer()), pad_id=0)
    assert len(batch["pairs"]) == 6 and [(h, t) for _, h, t in batch["pair_index"]] == list(
        itertools.permutations(range(3), 2))   # 3 entities: 3 * 2 ordered pairs
    labels = {(h, t): y for (_, h, t), y in zip(batch["pair_index"], batch["pair_labels"].tolist())}
    assert labels[(0, 1)] == 1 + ner_re._RELATION_TYPES.index("Work_For") and labels[(1, 0)] == 0
    assert labels[(1, 2)] == 1 + ner_re._RELATION_TYPES.index("OrgBased_In")
    # predicted entities instead of the gold ones: pairs, but no labels
    predicted = ner_re.collate_sentences(ner_re.encode_sentences([SENTENCE], FakeTokenizer()), 0,
                                         entities=[SENTENCE["entities"][:2]])
    assert len(predicted["pairs"]) == 2 and predicted["pair_labels"].tolist() == [0, 0]


def test_word_case():
    assert [ner_re._word_case(w) for w in ("said", "Paris", "NATO", "1984", "iPhone", "U.S.", "A")] == [1, 2, 3, 1, 1, 3, 2]


# ---------------------------------------------------------------- bad input: one clear error


@pytest.mark.parametrize("record, message", [
    (_with(tokens=[], entities=[], relations=[]), "empty sentence"),
    (_with(entities=[{"start": 0, "end": 2, "type": "Peop"}, {"start": 1, "end": 3, "type": "Org"}], relations=[]),
     r"entities 0 \[0, 2\) and 1 \[1, 3\) overlap"),
    (_with(relations=[{"head": 0, "tail": 7, "type": "Work_For"}]), r"tail=7 points past the entity list \(3 entities\)"),
    (_with(relations=[{"head": 0, "tail": 3, "type": "Work_For"}]), r"tail=3 points past the entity list \(3 entities\)"),
    (_with(relations=[{"head": 1, "tail": 0, "type": "Work_For"}]), "Work_For needs arguments Peop -> Org, got Org -> Peop"),
    (_with(entities=[{"start": 8, "end": 10, "type": "Loc"}], relations=[]), "outside the sentence of 9 tokens"),
    (_with(entities=[{"start": 1, "end": 1, "type": "Peop"}], relations=[]), "empty or outside"),
    (_with(entities=[{"start": 0, "end": 1, "type": "Person"}], relations=[]), "'Person' is not one of"),
    (_with(relations=[{"head": 0, "tail": 0, "type": "Kill"}]), "same entity"),
    (_with(relations=[{"head": 0, "tail": 1, "type": "Employs"}]), "'Employs' is not one of"),
    (_with(tokens=["John", " "]), "token 1 is ' ', not a non-empty string"),
    ({"tokens": ["a"], "entities": []}, "field 'relations' is missing"),
])
def test_bad_records_get_one_clear_error(record, message):
    with pytest.raises(SchemaError, match=message):
        ner_re.encode_sentences([SENTENCE, record], tokenizer=None)   # checked before anything is tokenised
    with pytest.raises(SchemaError, match="sentence 1"):
        ner_re.encode_sentences([SENTENCE, record], tokenizer=None)


def test_encode_refuses_no_sentences():
    with pytest.raises(ValueError, match="no sentences"):
        ner_re.encode_sentences([], FakeTokenizer())


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
    result = ner_re._strict_f1(gold, predicted)
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


def test_strict_f1_counts_per_sentence_add_up_to_the_totals():
    gold = [SENTENCE, _with(relations=[])]
    predicted = [{"entities": SENTENCE["entities"][:2], "relations": SENTENCE["relations"][:1]},   # 2 of 3, 1 of 2
                 {"entities": SENTENCE["entities"][1:] + [{"start": 3, "end": 4, "type": "Other"}],
                  "relations": [{"head": 0, "tail": 1, "type": "OrgBased_In"}]}]                  # a wrong relation
    result = ner_re._strict_f1(gold, predicted)
    assert result["counts"]["ner"].tolist() == [[2, 2, 3], [2, 3, 3]]   # per sentence: tp, predicted, gold
    assert result["counts"]["re"].tolist() == [[1, 1, 2], [0, 1, 0]]
    for task in ("ner", "re"):
        tp, n_pred, n_gold = result["counts"][task].sum(0)
        assert (tp, n_pred, n_gold) == (result[task]["tp"], result[task]["n_pred"], result[task]["n_gold"])
        assert 2 * tp / (n_pred + n_gold) == pytest.approx(result[task]["f1"])   # micro-F1 from the counts


def test_strict_f1_relation_counts_when_everything_matches():
    predicted = [{"entities": [dict(e) for e in SENTENCE["entities"]][::-1],  # order of entities doesn't matter
                  "relations": [{"head": 2, "tail": 1, "type": "Work_For"},          # right
                                {"head": 1, "tail": 0, "type": "Live_In"}]}]         # wrong relation type
    result = ner_re._strict_f1([SENTENCE], predicted)
    assert result["ner"]["f1"] == 1.0
    # relations: gold 2, predicted 2, correct 1 -> P = R = F1 = 0.5
    assert (result["re"]["tp"], result["re"]["f1"]) == (1, pytest.approx(0.5))
    assert result["re_by_type"]["Work_For"]["f1"] == 1.0 and result["re_by_type"]["OrgBased_In"]["recall"] == 0.0


def test_strict_f1_rejects_mismatch_and_bad_relation():
    with pytest.raises(ValueError, match="1 gold sentences but 0 predictions"):
        ner_re._strict_f1([SENTENCE], [])
    bad = [{"entities": [], "relations": [{"head": 0, "tail": 1, "type": "Kill"}]}]
    with pytest.raises(SchemaError, match="points past the entity list"):
        ner_re._strict_f1([SENTENCE], bad)


# ---------------------------------------------------------------- CoNLL04 and the course's own sample


SAMPLE_FILES = sorted(SAMPLE_DIR.glob("*.jsonl"))


def test_sample_has_three_splits_and_at_least_100_sentences():
    assert [p.name for p in SAMPLE_FILES] == ["test.jsonl", "train.jsonl", "validation.jsonl"]
    records = [json.loads(line) for p in SAMPLE_FILES for line in p.read_text().splitlines() if line.strip()]
    assert len(records) >= 100
    used = {r["type"] for rec in records for r in rec["relations"]}
    assert used == set(ner_re._RELATIONS), "every relation type appears in the sample"
    assert {e["type"] for rec in records for e in rec["entities"]} == {"Peop", "Loc", "Org", "Other"}
    texts = [" ".join(r["tokens"]) for r in records]
    assert len(set(texts)) == len(texts), "no duplicate sentences"


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=[p.stem for p in SAMPLE_FILES])
def test_every_sample_annotation_is_valid(path):
    for line_number, line in enumerate(path.read_text().splitlines(), 1):
        record = json.loads(line)
        assert set(record) == {"tokens", "entities", "relations", "orig_id"}
        ner_re._check_record(record, f"{path.name}, line {line_number}")  # spans inside, no overlaps, argument types
        for e in record["entities"]:
            assert all(t.strip() for t in record["tokens"][e["start"]: e["end"]])


def test_load_conll04_falls_back_to_the_sample_loudly(monkeypatch, capsys):
    monkeypatch.delenv("LEARNSTRAT_DATA_DIR", raising=False)
    with pytest.warns(UserWarning, match="NOT on CoNLL04"):
        data = ner_re.load_conll04()
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
    data = ner_re.load_conll04()
    assert data.source == str(folder)
    assert data["test"][0]["relations"] == SENTENCE["relations"] and data["test"][0]["orig_id"] == 7


def test_load_conll04_names_the_bad_line_and_split(monkeypatch, tmp_path):
    folder = tmp_path / "conll04"
    folder.mkdir()
    (folder / "train.jsonl").write_text(json.dumps(SENTENCE) + "\n" + json.dumps(_with(tokens=[], entities=[], relations=[])) + "\n")
    monkeypatch.setenv("LEARNSTRAT_DATA_DIR", str(tmp_path))
    with pytest.raises(SchemaError, match="train.jsonl, line 2: empty sentence"):
        ner_re.load_conll04(("train",))
    with pytest.raises(ValueError, match="Unknown CoNLL04 split"):
        ner_re.load_conll04(("dev",))


@pytest.mark.slow
def test_load_conll04_from_shared_data(monkeypatch, shared_data):
    if not (shared_data / "conll04" / "test.jsonl").is_file():
        pytest.skip(f"{shared_data} has no conll04/")
    monkeypatch.setenv("LEARNSTRAT_DATA_DIR", str(shared_data))
    data = ner_re.load_conll04()
    assert [data[s].num_rows for s in ("train", "validation", "test")] == [922, 231, 288]


# ---------------------------------------------------------------- the model


def tiny_joint_model(hidden=16):
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=64, hidden_size=hidden, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=2 * hidden, max_position_embeddings=64)
    torch.manual_seed(0)
    return mt.JointModel(BertModel(config, add_pooling_layer=False))


def notebook_step(measure_every=2):
    """Notebook 03's kind of step: both losses, the gradient cosine every few steps, clipping, optimizer, schedule."""
    count = itertools.count()

    def step(model, batch, optimizer, scheduler):
        losses = mt.task_losses(model, batch)
        logged = {task: loss.item() for task, loss in losses.items()}
        if next(count) % measure_every == 0:
            shared = model.shared_parameters()
            g = [torch.cat([x.flatten() for x in torch.autograd.grad(losses[t], shared, retain_graph=True)])
                 for t in ("ner", "re")]
            logged["cosine"] = torch.nn.functional.cosine_similarity(g[0], g[1], dim=0).item()
        loss = losses["ner"] + losses["re"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        return logged
    return step


def notebook_soft_step(strength=10.0):
    """Notebook 03's soft-sharing step: each task through its own model, plus the squared distance of the encoders."""
    def step(model, batch, optimizer, scheduler):
        losses = mt.task_losses(model, batch)
        distance = sum(((a - b) ** 2).sum() for a, b in zip(model.ner.shared_parameters(), model.re.shared_parameters()))
        optimizer.zero_grad(set_to_none=True)
        (losses["ner"] + losses["re"] + strength * distance).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        return {"ner": losses["ner"].item(), "re": losses["re"].item(), "distance": distance.item()}
    return step


def test_span_mean_pools_the_right_pieces():
    hidden = torch.arange(2 * 4 * 1, dtype=torch.float).reshape(2, 4, 1)  # sentence 0: 0..3, sentence 1: 4..7
    rows, start, end = torch.tensor([0, 1, 1]), torch.tensor([1, 0, 2]), torch.tensor([3, 2, 2])
    assert mt._span_mean(hidden, rows, start, end).flatten().tolist() == [1.5, 4.5, 0.0]  # empty range -> 0


def test_pair_representation_is_spans_context_and_types():
    model = tiny_joint_model().eval()
    batch = ner_re.collate_sentences(ner_re.encode_sentences([SENTENCE], FakeTokenizer()), pad_id=0)
    with torch.no_grad():
        hidden = model.encode(batch)
        rep = model.pair_representation(hidden, batch["pairs"])
        assert model.pair_logits(hidden, batch["pairs"]).shape == (6, 1 + len(ner_re._RELATION_TYPES))
    _, hs, he, ts, te, h_type, t_type = batch["pairs"][0].tolist()   # John Smith -> Acme Corp
    h = hidden[0]
    by_hand = torch.cat([h[hs:he].mean(0), h[ts:te].mean(0), h[he:ts].mean(0),
                         model.type_embedding.weight[h_type], model.type_embedding.weight[t_type]])
    assert torch.allclose(rep[0], by_hand, atol=1e-6)


def test_task_losses_on_halves_equal_the_losses_of_each_half_alone():
    model = tiny_joint_model().eval()   # eval: no dropout, so one forward pass and separate ones must agree
    sentences = ner_re.encode_sentences([SENTENCE, _with(tokens=SENTENCE["tokens"][:6], entities=SENTENCE["entities"][:2],
                                                         relations=SENTENCE["relations"][:1]), _with(relations=[])],
                                        FakeTokenizer())
    with torch.no_grad():
        both = mt.task_losses(model, ner_re.collate_sentences(sentences[:2], pad_id=0), halves=True)
        for k, one in (("1", sentences[:1]), ("2", sentences[1:2])):
            alone = mt.task_losses(model, ner_re.collate_sentences(one, pad_id=0))
            assert torch.allclose(both["ner_" + k], alone["ner"], atol=1e-5)
            assert torch.allclose(both["re_" + k], alone["re"], atol=1e-5)
        assert set(mt.task_losses(model, ner_re.collate_sentences(sentences[:1], pad_id=0), halves=True)) == {"ner", "re"}
        without_pairs = ner_re.collate_sentences([sentences[0], _sentence_without_entities()], pad_id=0)
        assert "re_2" not in mt.task_losses(model, without_pairs, halves=True)   # a half without any pair: no RE loss


def _sentence_without_entities():
    return ner_re.encode_sentences([_with(entities=[], relations=[])], FakeTokenizer())[0]


def test_soft_sharing_needs_two_models_of_the_same_shape():
    soft = mt.SoftSharedModel(tiny_joint_model(), tiny_joint_model())
    assert len(soft.ner.shared_parameters()) == len(soft.re.shared_parameters())
    with pytest.raises(ValueError, match="same trainable parameter shapes"):
        mt.SoftSharedModel(tiny_joint_model(16), tiny_joint_model(8))


def test_training_runs_through_fit_with_the_same_batches_for_the_same_seed():
    data = ner_re.encode_sentences([SENTENCE, _with(tokens=SENTENCE["tokens"][:6], entities=SENTENCE["entities"][:2],
                                                    relations=SENTENCE["relations"][:1])] * 3, FakeTokenizer())
    runs = []
    for _ in range(2):
        model = tiny_joint_model()
        history = mt.train_ner_re(model, data, notebook_step(), epochs=2, batch_size=2, seed=3, show_progress=False)
        runs.append((history.series("ner")[1], history.series("cosine")[0]))
    assert len(runs[0][0]) == 6 and list(runs[0][1]) == [0, 2, 4]   # 3 batches x 2 epochs; cosine every 2 steps
    assert (runs[0][0] == runs[1][0]).all(), "same seed, same batches and dropout: the same losses"
    with pytest.raises(ValueError, match="epochs"):
        mt.train_ner_re(model, data, notebook_step(), epochs=0)


@pytest.mark.parametrize("soft", [False, True], ids=["joint", "soft-shared"])
def test_the_training_step_computes_on_the_model_device(soft):
    data = ner_re.encode_sentences([SENTENCE, _with(relations=[])] * 2, FakeTokenizer())
    with torch.device("meta"):
        model = mt.SoftSharedModel(tiny_joint_model(), tiny_joint_model()) if soft else tiny_joint_model()
    step = notebook_soft_step() if soft else notebook_step(measure_every=1)
    assert_on_model_device(lambda watch: mt.train_ner_re(model, data, watch(step), epochs=1, batch_size=2,
                                                         show_progress=False))


@pytest.mark.slow
def test_joint_model_trains_a_few_steps_on_the_sample(monkeypatch):
    from transformers import AutoTokenizer

    records = [json.loads(line) for line in (SAMPLE_DIR / "train.jsonl").read_text().splitlines()][:16]
    source = assets.resolve_text_model()
    tokenizer = AutoTokenizer.from_pretrained(source)
    data = ner_re.encode_sentences(records, tokenizer, max_length=48)
    model = mt.JointModel.from_pretrained(source, n_layers=1)
    assert not model.encoder.embeddings.word_embeddings.weight.requires_grad
    history = mt.train_ner_re(model, data, notebook_step(), epochs=2, batch_size=8, pad_id=tokenizer.pad_token_id,
                              show_progress=False)
    assert len(history.logs) == 4 and history.series("ner")[1].shape == (4,)
    result = ner_re.evaluate_ner_re(model, data, pad_id=tokenizer.pad_token_id)
    assert 0.0 <= result["ner"]["f1"] <= 1.0 and result["ner"]["n_gold"] == sum(len(r["entities"]) for r in records)
    gold_re = ner_re.evaluate_ner_re(model, data, pad_id=tokenizer.pad_token_id, gold_entities=True)
    assert gold_re["ner"]["f1"] == 1.0  # gold entities handed over unchanged
    predicted = ner_re.predict_ner_re(model, data[:2], pad_id=tokenizer.pad_token_id)
    assert len(predicted) == 2 and all(set(p) == {"entities", "relations"} for p in predicted)
    with pytest.raises(ValueError, match="n_layers must be between 1 and 6"):
        mt.JointModel.from_pretrained(source, n_layers=7)


def test_the_device_check_catches_learned_loss_weights_left_on_the_cpu():
    data = ner_re.encode_sentences([SENTENCE] * 2, FakeTokenizer())
    with torch.device("meta"):
        model = tiny_joint_model()
    log_vars = torch.nn.Parameter(torch.zeros(2))   # notebook 03's uncertainty weights, not moved to the model's device

    def uncertainty_step(model, batch, optimizer, scheduler):
        losses = mt.task_losses(model, batch)
        loss = sum(torch.exp(-log_vars[i]) * losses[t] + log_vars[i] for i, t in enumerate(("ner", "re")))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss.item()}

    recorder = DeviceRecorder()
    with pytest.raises(NotImplementedError, match="meta"):   # backward can't bring a meta gradient to a CPU parameter
        mt.train_ner_re(model, data, watched(uncertainty_step, recorder), epochs=1, batch_size=2, show_progress=False)
    assert recorder.off_device and {device for device, _ in recorder.off_device} == {"cpu"}
