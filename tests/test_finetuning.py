"""Fine-tuning plumbing, on a tiny randomly initialised BERT and MiniLM's real tokenizer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from device_check import assert_on_model_device
from learnstrat_helpers import assets, finetuning as ft, training

TEXTS = ["a gripping , moving film .", "dull and tedious", "the best movie of the year !", "awful .",
         "i loved every minute of it", "a waste of time and money", "charming", "not funny at all"]
LABELS = [1, 0, 1, 0, 1, 0, 1, 0]
NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "02_bert_fine_tuning.ipynb"


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        return AutoTokenizer.from_pretrained(assets.resolve_text_model())


def tiny_model(seed=0):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, num_labels=2)
    return BertForSequenceClassification(config)


def trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def notebook_train_step():
    """``train_step`` exactly as notebook 02 defines it (its cell, run here), slices of ``TOKENS_PER_PASS`` tokens."""
    cells = ["".join(c["source"]) for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "code"]
    namespace = {"math": math, "nn": nn, "device": "cpu"}
    exec(next(c for c in cells if "def train_step(" in c), namespace)
    return namespace


train_step = notebook_train_step()["train_step"]


def test_the_notebooks_sliced_step_has_the_one_pass_gradient(data):
    """Gradient accumulation in 02's step: a batch in slices gets the gradient and loss of one pass over it."""
    namespace = notebook_train_step()
    batch = ft._collate(data, list(range(len(data))))
    grads, losses = [], []
    for tokens_per_pass in (10**6, batch["attention_mask"].numel() // 3):   # one pass, then 3 slices
        namespace["TOKENS_PER_PASS"] = tokens_per_pass
        model = tiny_model().eval()   # no dropout: the two runs must compute the same function
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        losses.append(namespace["train_step"](model, batch, optimizer, scheduler, max_grad_norm=1e9)["loss"])
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6)


@pytest.fixture
def data(tokenizer):
    return ft.tokenize(TEXTS, LABELS, tokenizer, max_length=16)


def test_tokenize_keeps_ids_unpadded_and_truncated(tokenizer):
    data = ft.tokenize(TEXTS + ["word " * 100], LABELS + [1], tokenizer, max_length=16)
    assert len(data) == 9 and data.labels.dtype == torch.long
    assert data.lengths.max() == 16 and data.lengths.min() < 16
    assert all(ids[0] == tokenizer.cls_token_id for ids in data.input_ids)
    sub = data.subset([2, 0])
    assert sub.texts == [TEXTS[2], TEXTS[0]] and sub.labels.tolist() == [1, 1]
    with pytest.raises(ValueError, match="no indices"):
        data.subset([])


@pytest.mark.parametrize("texts, labels, message", [
    ([], [], "no texts"),
    (["fine", "  "], [0, 1], "text 1 is empty"),
    (["fine", "good"], [0, 2], "outside the label set 0..1"),
    (["fine", "good"], [0, -1], "outside the label set"),
    (["fine", "good"], [0], "2 texts but labels"),
])
def test_tokenize_rejects_bad_input(tokenizer, texts, labels, message):
    with pytest.raises(ValueError, match=message):
        ft.tokenize(texts, labels, tokenizer)
    with pytest.raises(ValueError, match="max_length must be at least 2"):
        ft.tokenize(TEXTS, LABELS, tokenizer, max_length=1)


def test_length_grouping_pads_less_and_fixed_padding_pads_to_its_width(data):
    def run(**how):
        history = ft.fine_tune(tiny_model(), data, train_step, epochs=2, batch_size=2, show_progress=False, **how)
        return history.series("tokens")[1].sum(), history.series("padded_tokens")[1].sum()

    grouped, plain, fixed = run(), run(group_by_length=False), run(group_by_length=False, pad_to=16)
    assert grouped[0] == plain[0] == fixed[0] == 2 * data.lengths.sum()   # every real token, once per epoch
    assert grouped[1] <= plain[1] < fixed[1] == 2 * len(data) * 16
    with pytest.raises(ValueError, match="shorter than the longest"):
        ft.fine_tune(tiny_model(), data, train_step, pad_to=2, show_progress=False)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        ft.fine_tune(tiny_model(), data, train_step, batch_size=0, show_progress=False)


def test_layerwise_groups_decay_with_depth_and_skip_frozen():
    model = tiny_model()
    groups = ft._param_groups(model, 1e-3, layer_decay=0.5, weight_decay=0.1)
    by_depth = {g["depth"]: g["lr"] for g in groups}
    assert by_depth[0] == pytest.approx(1e-3) and by_depth[1] == pytest.approx(5e-4)
    assert by_depth[3] == pytest.approx(1.25e-4)  # embeddings, below the 2 layers
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert all(g["weight_decay"] == 0 for g in groups if all(p.ndim == 1 for p in g["params"]))
    assert max(g["depth"] for g in ft._param_groups(ft.unfreeze_top_layers(model, 1), 1e-3, 1.0, 0.0)) == 1


def test_fine_tune_rejects_bad_settings(data):
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        ft.fine_tune(tiny_model(), data, train_step, epochs=0)
    with pytest.raises(ValueError, match="early stopping needs validation data"):
        ft.fine_tune(tiny_model(), data, train_step, patience=2)
    with pytest.raises(ValueError, match="layer_decay must be in"):
        ft.fine_tune(tiny_model(), data, train_step, layer_decay=0)
    with pytest.raises(ValueError, match="lr must be positive"):
        ft.fine_tune(tiny_model(), data, train_step, lr=0)
    with pytest.raises(ValueError, match="no trainable parameters"):
        ft.fine_tune(tiny_model().requires_grad_(False), data, train_step)


def test_unfreeze_top_layers_counts():
    model = tiny_model()
    total = trainable(model)
    head_only = trainable(ft.unfreeze_top_layers(model, 0))
    one = trainable(ft.unfreeze_top_layers(model, 1))
    assert head_only < one < trainable(ft.unfreeze_top_layers(model, 2)) < total  # embeddings stay frozen
    with pytest.raises(ValueError, match="between 0 and 2"):
        ft.unfreeze_top_layers(model, 3)


def test_lora_trains_few_parameters_and_starts_as_the_base_model(data):
    base = tiny_model()
    model = ft.add_lora(tiny_model(), r=2)
    assert 0 < trainable(model) < sum(p.numel() for p in model.parameters()) / 10
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("lora_A" in n for n in names) and any("classifier" in n for n in names)
    assert torch.allclose(ft.predict_proba(base, data), ft.predict_proba(model, data), atol=1e-6)  # B = 0
    with pytest.raises(ValueError, match="rank r must be at least 1"):
        ft.add_lora(tiny_model(), r=0)


def test_fine_tune_learns_a_tiny_set_and_records_history(data):
    model = tiny_model()
    history = ft.fine_tune(model, data, train_step, epochs=6, batch_size=4, lr=3e-3, val=data, eval_train=True,
                           show_progress=False)
    assert len(history.logs) == 12 and len(history.evals) == len(history.epoch_seconds) == 6
    assert [e["epoch"] for e in history.evals] == list(range(6))
    _, val_loss = history.series("val_loss")
    assert val_loss[-1] < val_loss[0] and len(history.series("train_acc")[1]) == 6
    _, lrs = history.series("lr")
    assert lrs.max() == pytest.approx(3e-3) and lrs[0] < lrs.max() and lrs[-1] < lrs.max()  # warm-up, decay
    proba = ft.predict_proba(model, data)
    assert proba.shape == (8, 2) and torch.allclose(proba.sum(1), torch.ones(8))
    accuracy = (proba.argmax(1) == data.labels).float().mean().item()
    assert accuracy == pytest.approx(history.evals[-1]["val_acc"]) and not model.training


def test_fine_tune_max_steps_and_every_bar_runs_to_its_total(data, monkeypatch):
    bars = []

    def counting_progress(plan, **kwargs):   # what the learner's bar would show: its total, and steps done
        bars.append([len(plan), 0])
        for item in plan:
            bars[-1][1] += 1
            yield item

    monkeypatch.setattr(training, "progress", counting_progress)
    history = ft.fine_tune(tiny_model(), data, train_step, epochs=3, batch_size=2, max_steps=5)
    assert len(history.logs) == 5 and bars == [[4, 4], [1, 1]]


def test_early_stopping_restores_the_best_epoch(data):
    model = tiny_model()
    history = ft.fine_tune(model, data, train_step, epochs=4, batch_size=4, lr=3e-3, val=data, patience=1,
                           show_progress=False)
    _, val_loss = history.series("val_loss")
    assert history.best_epoch == int(np.argmin(val_loss))
    proba = ft.predict_proba(model, data)
    assert nn.functional.nll_loss(proba.log(), data.labels).item() == pytest.approx(val_loss.min(), rel=1e-4)


def test_fine_tune_computes_on_the_model_device(data):
    """Notebook 02's training path on a model built on ``meta``: fails if a batch stays on the CPU."""
    from transformers import BertConfig, BertForSequenceClassification

    with torch.device("meta"):
        model = BertForSequenceClassification(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                                                         num_attention_heads=2, intermediate_size=64, num_labels=2))
    assert_on_model_device(lambda watch: ft.fine_tune(model, data, watch(train_step), batch_size=4, max_steps=2,
                                                      show_progress=False))


def test_load_classifier_hides_its_bar_but_leaves_the_setting_as_it_was(capsys):
    from transformers.utils import logging as hf_logging

    hf_logging.enable_progress_bar()
    ft.load_classifier(assets.resolve_text_model())
    assert "Loading weights" not in capsys.readouterr().err
    assert hf_logging.is_progress_bar_enabled()
