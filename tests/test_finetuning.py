"""Fine-tuning plumbing, on a tiny randomly initialised BERT and MiniLM's real tokenizer."""

from __future__ import annotations

import datasets as hf_datasets
import numpy as np
import pytest
import torch

from learnstrat_helpers import assets, finetuning as ft
from learnstrat_helpers.datasets import SchemaError

TEXTS = ["a gripping , moving film .", "dull and tedious", "the best movie of the year !", "awful .",
         "i loved every minute of it", "a waste of time and money", "charming", "not funny at all"]
LABELS = [1, 0, 1, 0, 1, 0, 1, 0]


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        return AutoTokenizer.from_pretrained(assets.resolve_minilm())


def tiny_model(seed=0):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, num_labels=2)
    return BertForSequenceClassification(config)


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


def test_tokenize_dataset_names_the_missing_column(tokenizer):
    good = hf_datasets.Dataset.from_dict({"sentence": TEXTS, "label": LABELS})
    assert len(ft.tokenize_dataset(good, tokenizer)) == len(TEXTS)
    with pytest.raises(SchemaError, match=r"lacks column\(s\) \['label'\]"):
        ft.tokenize_dataset(hf_datasets.Dataset.from_dict({"sentence": TEXTS}), tokenizer)


def test_length_grouped_batches_cover_everything_once_with_less_padding(data):
    grouped = ft.make_batches(data, 2, group_by_length=True, seed=1, chunk_batches=100)
    plain = ft.make_batches(data, 2, group_by_length=False, shuffle=False)
    assert sorted(i for b in grouped for i in b) == list(range(len(data)))
    assert sorted(i for b in plain for i in b) == list(range(len(data)))

    def padded(batches):
        return sum(ft.collate(data, b)["input_ids"].numel() for b in batches)
    assert padded(grouped) <= padded(plain)
    assert ft.make_batches(data, 3, seed=5) == ft.make_batches(data, 3, seed=5)


def test_make_batches_rejects_bad_sizes(data):
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        ft.make_batches(data, 0)


def test_collate_pads_dynamically_or_to_a_fixed_length(data):
    batch = ft.collate(data, [0, 3])
    longest = max(len(data.input_ids[0]), len(data.input_ids[3]))
    assert batch["input_ids"].shape == (2, longest)
    assert batch["attention_mask"].sum() == len(data.input_ids[0]) + len(data.input_ids[3])
    assert ft.collate(data, [0, 3], pad_to=16)["input_ids"].shape == (2, 16)
    with pytest.raises(ValueError, match="shorter than the longest"):
        ft.collate(data, [0, 3], pad_to=2)


def test_layerwise_groups_decay_with_depth_and_skip_frozen():
    model = tiny_model()
    groups = ft.layerwise_param_groups(model, 1e-3, layer_decay=0.5, weight_decay=0.1)
    by_depth = {g["depth"]: g["lr"] for g in groups}
    assert by_depth[0] == pytest.approx(1e-3) and by_depth[1] == pytest.approx(5e-4)
    assert by_depth[3] == pytest.approx(1.25e-4)  # embeddings, below the 2 layers
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert all(g["weight_decay"] == 0 for g in groups if all(p.ndim == 1 for p in g["params"]))
    ft.unfreeze_top_layers(model, 1)
    groups = ft.layerwise_param_groups(model, 1e-3)
    assert max(g["depth"] for g in groups) == 1
    with pytest.raises(ValueError, match="layer_decay must be in"):
        ft.layerwise_param_groups(model, 1e-3, layer_decay=0)
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        ft.layerwise_param_groups(model, 1e-3)


def test_unfreeze_top_layers_counts():
    model = tiny_model()
    total = ft.count_trainable_parameters(model)
    ft.unfreeze_top_layers(model, 0)
    head_only = ft.count_trainable_parameters(model)
    ft.unfreeze_top_layers(model, 1)
    one = ft.count_trainable_parameters(model)
    ft.unfreeze_top_layers(model, 2)
    assert head_only < one < ft.count_trainable_parameters(model) < total  # embeddings stay frozen
    with pytest.raises(ValueError, match="between 0 and 2"):
        ft.unfreeze_top_layers(model, 3)


def test_lora_trains_few_parameters():
    model = ft.add_lora(tiny_model(), r=2)
    trainable = ft.count_trainable_parameters(model)
    assert 0 < trainable < sum(p.numel() for p in model.parameters()) / 10
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("lora_A" in n for n in names) and any("classifier" in n for n in names)
    with pytest.raises(ValueError, match="rank r must be at least 1"):
        ft.add_lora(tiny_model(), r=0)


def test_warmup_then_linear_decay():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = ft.warmup_linear_schedule(optimizer, 2, 10)
    lrs = []
    for _ in range(10):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert lrs[0] < lrs[1] < lrs[2] and lrs[2] == pytest.approx(1.0)
    assert all(a > b for a, b in zip(lrs[2:], lrs[3:])) and lrs[-1] < 0.2
    with pytest.raises(ValueError, match="warmup_steps"):
        ft.warmup_linear_schedule(optimizer, 11, 10)


def test_fine_tune_learns_a_tiny_set_and_records_history(data):
    model = tiny_model()
    history = ft.fine_tune(model, data, epochs=6, batch_size=4, lr=3e-3, val=data, eval_train=True,
                           show_progress=False)
    assert len(history.train_loss) == len(history.val_loss) == len(history.train_eval_acc) == 6
    assert len(history.step_lr) == len(history.step_grad_norm) == 12
    assert history.val_loss[-1] < history.val_loss[0]
    assert 0 < history.tokens <= history.padded_tokens and history.tokens_per_s > 0
    proba = ft.predict_proba(model, data)
    assert proba.shape == (8, 2) and torch.allclose(proba.sum(1), torch.ones(8))
    loss, acc = ft.evaluate(model, data)
    assert loss == pytest.approx(history.val_loss[-1], rel=1e-4) and 0 <= acc <= 1


def test_fine_tune_uses_the_given_step_and_max_steps(data):
    calls = []

    def step(model, batch, optimizer, scheduler, max_grad_norm):
        calls.append(batch["input_ids"].shape[0])
        return ft.train_step(model, batch, optimizer, scheduler, max_grad_norm)

    history = ft.fine_tune(tiny_model(), data, epochs=3, batch_size=2, max_steps=5, step=step, show_progress=False,
                           pad_to=16)
    assert len(calls) == 5 and history.padded_tokens == 5 * 2 * 16


def test_early_stopping_restores_the_best_epoch(data):
    model = tiny_model()
    history = ft.fine_tune(model, data, epochs=4, batch_size=4, lr=3e-3, val=data, early_stopping_patience=1,
                           show_progress=False)
    assert history.best_epoch == int(np.argmin(history.val_loss))
    assert ft.evaluate(model, data)[0] == pytest.approx(min(history.val_loss), rel=1e-4)


def test_fine_tune_rejects_bad_settings(data):
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        ft.fine_tune(tiny_model(), data, epochs=0)
    with pytest.raises(ValueError, match="early stopping needs validation data"):
        ft.fine_tune(tiny_model(), data, early_stopping_patience=2)


def test_early_stopping_epoch():
    assert ft.early_stopping_epoch([1.0, 0.8, 0.9, 1.0, 1.1], patience=2) == (3, 1)
    assert ft.early_stopping_epoch([1.0, 0.8, 0.7], patience=2) == (2, 2)
    with pytest.raises(ValueError, match="empty"):
        ft.early_stopping_epoch([], 2)


def test_counting_collator_and_hf_dataset(data):
    ds = ft.to_hf_dataset(data)
    assert ds.column_names == ["input_ids", "labels"] and len(ds) == len(data)
    collator = ft.CountingCollator(data.pad_id)
    batch = collator([ds[0], ds[1]])
    assert batch["labels"].tolist() == LABELS[:2]
    assert collator.tokens == len(data.input_ids[0]) + len(data.input_ids[1])


def test_limit_memory_growth_applies_on_glibc_and_rejects_negative_threshold():
    import platform

    if platform.libc_ver()[0] == "glibc":
        assert ft.limit_memory_growth(2) is True
    with pytest.raises(ValueError, match="mmap_threshold_mb"):
        ft.limit_memory_growth(-1)


def test_load_classifier_hides_its_bar_but_leaves_the_setting_as_it_was(capsys):
    from transformers.utils import logging as hf_logging

    hf_logging.enable_progress_bar()
    ft.load_classifier(assets.resolve_minilm())
    assert "Loading weights" not in capsys.readouterr().err
    assert hf_logging.is_progress_bar_enabled()
