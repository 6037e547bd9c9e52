"""The frozen sentence encoder: pooling, batching, the real MiniLM, and the embedding cache."""

from __future__ import annotations

import pytest
import torch

from learnstrat_helpers import assets, text
from learnstrat_helpers.text import _embed_texts as embed_texts, _mean_pool as mean_pool, embed_texts_cached

SENTENCES = ["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell sharply today."]


@pytest.fixture(scope="module")
def encoder():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_DATASETS_OFFLINE", "1")
        mp.delenv("LEARNSTRAT_MODEL_DIR", raising=False)
        return text._load_sentence_encoder(assets.resolve_text_model(), "cpu")


def test_mean_pool_ignores_padding():
    hidden = torch.tensor([
        [[1.0, 2.0], [3.0, 4.0], [100.0, -100.0]],   # last token is padding
        [[5.0, 6.0], [7.0, 8.0], [9.0, 10.0]],
    ])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    pooled = mean_pool(hidden, mask)
    assert torch.allclose(pooled, torch.tensor([[2.0, 3.0], [7.0, 8.0]]))


def test_mean_pool_all_padding_gives_zeros_not_nan():
    pooled = mean_pool(torch.ones(1, 2, 3), torch.zeros(1, 2, dtype=torch.long))
    assert torch.equal(pooled, torch.zeros(1, 3))


@pytest.mark.parametrize("hidden_shape, mask_shape", [((2, 3, 4), (2, 4)), ((2, 3, 4), (3, 3)), ((2, 3), (2, 3))])
def test_mean_pool_rejects_mismatched_shapes(hidden_shape, mask_shape):
    with pytest.raises(ValueError, match=r"expected hidden states \[batch, tokens, dim\]"):
        mean_pool(torch.zeros(hidden_shape), torch.ones(mask_shape))


@pytest.mark.slow
def test_embed_texts_with_minilm(encoder):
    tokenizer, model = encoder
    assert not model.training
    emb = embed_texts(SENTENCES, tokenizer, model, show_progress=False)
    assert emb.shape == (3, 384) and emb.dtype == torch.float32 and not emb.requires_grad
    assert torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-5)
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 2] + 0.2 and sim[0, 1] > sim[1, 2] + 0.2
    # Batching by length must not change or reorder the embeddings.
    one_by_one = embed_texts(SENTENCES, tokenizer, model, batch_size=1, show_progress=False)
    assert torch.allclose(emb, one_by_one, atol=1e-5)
    raw = embed_texts(SENTENCES, tokenizer, model, normalize=False, show_progress=False)
    assert torch.allclose(torch.nn.functional.normalize(raw, dim=1), emb, atol=1e-5)
    assert not torch.allclose(raw.norm(dim=1), torch.ones(3), atol=1e-3)


@pytest.mark.parametrize("texts, message", [
    ([], "got no texts"),
    (["fine", ""], "text 1 is empty"),
    (["fine", "   ", "ok", "\n"], r"text 1 is empty or not a string \(2 such texts\)"),
    (["fine", None], "text 1 is empty or not a string"),
])
def test_embed_texts_cached_rejects_empty_input(monkeypatch, texts, message):
    def unused(*args, **kwargs):
        raise AssertionError("the model must not be loaded for bad input")

    monkeypatch.setattr(text, "_load_sentence_encoder", unused)
    with pytest.raises(ValueError, match=message):
        embed_texts_cached(texts)


class _FakeTokenizer:
    def __call__(self, texts, truncation, max_length):
        ids = [[1] * len(t.split()) for t in texts]
        return {"input_ids": ids, "attention_mask": [[1] * len(i) for i in ids]}

    def pad(self, features, return_tensors):
        width = max(len(i) for i in features["input_ids"])
        return {k: torch.tensor([row + [0] * (width - len(row)) for row in v]) for k, v in features.items()}


class _FakeEncoder(torch.nn.Module):
    """A parameter on ``meta``; records the device of what it is given and answers on the CPU."""

    def __init__(self):
        super().__init__()
        self.weight, self.seen = torch.nn.Parameter(torch.zeros(1, device="meta")), []
        self.config = type("Config", (), {"hidden_size": 4})()

    def forward(self, input_ids, attention_mask):
        self.seen += [input_ids.device.type, attention_mask.device.type]
        return type("Out", (), {"last_hidden_state": torch.ones(*input_ids.shape, 4)})()


def test_embed_texts_batches_by_length_on_the_model_device(monkeypatch):
    model = _FakeEncoder()
    monkeypatch.setattr(text, "_mean_pool", lambda hidden, mask: torch.ones(len(mask), 4))   # meta can't come back
    out = embed_texts(["a b c", "a", "a b", "a b c d e"], _FakeTokenizer(), model, batch_size=2, show_progress=False)
    assert set(model.seen) == {"meta"} and len(model.seen) == 4   # two batches, both moved to the model's device
    assert out.shape == (4, 4) and out.device.type == "cpu"


def test_embedding_cache_path_depends_on_texts_and_model(monkeypatch, tmp_path):
    monkeypatch.setenv("LEARNSTRAT_CACHE_DIR", str(tmp_path))
    base = text._cache_path(["a", "b"], "m")
    assert base.parent == tmp_path / "features" and base.suffix == ".pt"
    assert base == text._cache_path(["a", "b"], "m")
    others = {text._cache_path(["a", "b"], "m2"), text._cache_path(["b", "a"], "m"), text._cache_path(["ab"], "m")}
    assert base not in others and len(others) == 3


@pytest.mark.slow
def test_embed_texts_cached_computes_once_then_reads(monkeypatch, tmp_path, encoder):
    monkeypatch.setenv("LEARNSTRAT_CACHE_DIR", str(tmp_path))
    loads = []

    def fake_load(source, device):
        loads.append(source)
        assert device == ("cuda" if torch.cuda.is_available() else "cpu")
        return encoder

    monkeypatch.setattr(text, "_load_sentence_encoder", fake_load)
    first = embed_texts_cached(SENTENCES, show_progress=False)
    assert loads == [assets.resolve_text_model()]
    files = list((tmp_path / "features").glob("*.pt"))
    assert len(files) == 1 and not list((tmp_path / "features").glob("*.tmp"))

    def no_load(*args, **kwargs):
        raise AssertionError("the second call must read the cache, not load the model")

    monkeypatch.setattr(text, "_load_sentence_encoder", no_load)
    second = embed_texts_cached(SENTENCES, show_progress=True)  # show_progress is not part of the cache key
    assert torch.equal(first, second) and first.shape == (3, 384)
    assert list((tmp_path / "features").glob("*.pt")) == files

    # Different settings are a different cache entry; a corrupt entry is recomputed.
    monkeypatch.setattr(text, "_load_sentence_encoder", fake_load)
    raw = embed_texts_cached(SENTENCES, normalize=False, show_progress=False)
    assert len(loads) == 2 and len(list((tmp_path / "features").glob("*.pt"))) == 2
    assert not torch.allclose(raw, first)
    torch.save(torch.full((3, 384), float("nan")), files[0])
    again = embed_texts_cached(SENTENCES, show_progress=False)
    assert len(loads) == 3 and torch.allclose(again, first, atol=1e-6)
