"""A frozen sentence encoder: tokenise, batch by length, mean-pool, cache.

Explained in 01, section "Text: a frozen sentence encoder".
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import torch

from . import assets
from .training import progress


def load_encoder(model_name_or_path: str | None = None, device: str | torch.device | None = None):
    """``(tokenizer, model)`` for a BERT-family encoder, in eval mode; MiniLM-L6 when no name is given.
    ``device`` defaults to the GPU when there is one.

    Explained in 01, section "Text: a frozen sentence encoder".
    """
    from transformers import AutoModel, AutoTokenizer

    source = model_name_or_path or assets.resolve_minilm()
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModel.from_pretrained(source)
    model.to(device or ("cuda" if torch.cuda.is_available() else "cpu")).eval()
    return tokenizer, model


def mean_pool(last_hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors, padding excluded: one vector per sentence.

    Explained in 01, section "Text: a frozen sentence encoder".
    """
    if last_hidden.ndim != 3 or attention_mask.shape != last_hidden.shape[:2]:
        raise ValueError(
            f"expected hidden states [batch, tokens, dim] and a mask [batch, tokens]; got "
            f"{tuple(last_hidden.shape)} and {tuple(attention_mask.shape)}."
        )
    mask = attention_mask.unsqueeze(-1).to(last_hidden.dtype)
    return (last_hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Index batches of similar length, so little compute is spent on padding.

    Explained in 01, section "Text: a frozen sentence encoder".
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i: i + batch_size] for i in range(0, len(order), batch_size)]


def checked_texts(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list, or one clear ValueError if it is empty or holds an empty or non-string text."""
    texts = list(texts)
    if not texts:
        raise ValueError("got no texts.")
    empty = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if empty:
        raise ValueError(f"text {empty[0]} is empty or not a string ({len(empty)} such texts).")
    return texts


@torch.no_grad()  # not inference_mode: callers train heads on these tensors
def embed_texts(texts: Sequence[str], tokenizer, model, *, batch_size: int = 64, max_length: int = 128,
                normalize: bool = True, show_progress: bool = True) -> torch.Tensor:
    """Sentence embeddings [N, dim] from a frozen encoder (mean pooling, L2-normalised by default).

    Explained in 01, section "Text: a frozen sentence encoder".
    """
    texts = checked_texts(texts)
    encoded = tokenizer(texts, truncation=True, max_length=max_length)
    lengths = [len(ids) for ids in encoded["input_ids"]]
    out = torch.empty(len(texts), model.config.hidden_size)
    batches = length_sorted_batches(lengths, batch_size)
    for batch in progress(batches, desc="embedding") if show_progress else batches:
        features = tokenizer.pad({k: [encoded[k][i] for i in batch] for k in encoded}, return_tensors="pt")
        features = {k: v.to(model.device) for k, v in features.items()}
        hidden = model(**features).last_hidden_state
        out[batch] = mean_pool(hidden, features["attention_mask"]).float().cpu()
    return torch.nn.functional.normalize(out, dim=1) if normalize else out


def embedding_cache_path(texts: Sequence[str], model_id: str, tag: str = "embeddings") -> Path:
    """Where the embeddings of these texts by this model are cached (a hash of both names the file)."""
    digest = hashlib.sha256(model_id.encode())
    for t in texts:
        digest.update(b"\x00" + t.encode())
    return assets.cache_dir() / "features" / f"{tag}-{digest.hexdigest()[:20]}.pt"


def embed_texts_cached(texts: Sequence[str], model_name_or_path: str | None = None, **kwargs) -> torch.Tensor:
    """:func:`embed_texts`, computed once per (model, texts) and then read from the cache folder.

    Explained in 01, section "Text: a frozen sentence encoder".
    """
    texts = checked_texts(texts)
    source = model_name_or_path or assets.resolve_minilm()
    settings = sorted((k, v) for k, v in kwargs.items() if k != "show_progress")
    path = embedding_cache_path(texts, f"{source}|{settings}")
    if path.is_file():
        cached = torch.load(path, weights_only=True)
        if cached.shape[0] == len(texts) and torch.isfinite(cached).all():
            return cached
    tokenizer, model = load_encoder(source)
    embeddings = embed_texts(texts, tokenizer, model, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(embeddings, tmp)
    tmp.replace(path)
    return embeddings
