"""A frozen sentence encoder: tokenise, batch by length, mean-pool, cache.
Explained in 01, section "Text: a frozen sentence encoder"."""

import hashlib
from pathlib import Path
from typing import Sequence

import torch

from . import assets
from .training import length_grouped_batches, model_device, progress


def _load_sentence_encoder(source: str, device: str | torch.device):
    """``(tokenizer, model)`` of a BERT-family encoder, in eval mode, on ``device``."""
    from transformers import AutoModel, AutoTokenizer
    return AutoTokenizer.from_pretrained(source), AutoModel.from_pretrained(source).to(device).eval()


def _mean_pool(last_hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors, padding excluded: one vector per sentence."""
    if last_hidden.ndim != 3 or attention_mask.shape != last_hidden.shape[:2]:
        raise ValueError(f"expected hidden states [batch, tokens, dim] and a mask [batch, tokens]; got "
                         f"{tuple(last_hidden.shape)} and {tuple(attention_mask.shape)}.")
    mask = attention_mask.unsqueeze(-1).to(last_hidden.dtype)
    return (last_hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def _checked_texts(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list, or one clear ValueError if it is empty or holds an empty or non-string text."""
    texts = list(texts)
    empty = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if not texts or empty:
        raise ValueError("got no texts." if not texts else
                         f"text {empty[0]} is empty or not a string ({len(empty)} such texts).")
    return texts


@torch.no_grad()  # not inference_mode: callers train heads on these tensors
def _embed_texts(texts: list[str], tokenizer, model, *, batch_size: int = 64, max_length: int = 128,
                 normalize: bool = True, show_progress: bool = True) -> torch.Tensor:
    """Sentence embeddings [N, dim] on the CPU (mean-pooled, L2-normalised by default), length-grouped batches."""
    encoded = tokenizer(texts, truncation=True, max_length=max_length)
    out = torch.empty(len(texts), model.config.hidden_size)
    batches = length_grouped_batches([len(ids) for ids in encoded["input_ids"]], batch_size, shuffle=False)
    for batch in progress(batches, desc="embedding") if show_progress else batches:
        features = tokenizer.pad({k: [encoded[k][i] for i in batch] for k in encoded}, return_tensors="pt")
        features = {k: v.to(model_device(model)) for k, v in features.items()}
        out[batch] = _mean_pool(model(**features).last_hidden_state, features["attention_mask"]).float().cpu()
    return torch.nn.functional.normalize(out, dim=1) if normalize else out


def _cache_path(texts: Sequence[str], model_id: str) -> Path:
    digest = hashlib.sha256(model_id.encode() + b"".join(b"\x00" + t.encode() for t in texts))
    return assets.cache_dir() / "features" / f"embeddings-{digest.hexdigest()[:20]}.pt"


def embed_texts_cached(texts: Sequence[str], model_name_or_path: str | None = None, *,
                       device: str | torch.device | None = None, **kwargs) -> torch.Tensor:
    """Mean-pooled, L2-normalised (unless ``normalize=False``) embeddings [N, dim] of a BERT-family encoder (MiniLM by
    default), computed once on ``device`` (default: GPU if any), then cached.
    Explained in 01, section "Text: a frozen sentence encoder"."""
    texts, source = _checked_texts(texts), model_name_or_path or assets.resolve_text_model()
    path = _cache_path(texts, f"{source}|{sorted((k, v) for k, v in kwargs.items() if k != 'show_progress')}")
    if path.is_file():
        cached = torch.load(path, weights_only=True)
        if cached.shape[0] == len(texts) and torch.isfinite(cached).all():
            return cached
    tokenizer, model = _load_sentence_encoder(source, device or ("cuda" if torch.cuda.is_available() else "cpu"))
    embeddings = _embed_texts(texts, tokenizer, model, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(embeddings, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)
    return embeddings
