"""Metrics. Imports nothing else from the package. Explained in 01, section "Text: a frozen sentence encoder"."""

import torch


def accuracy(predictions, labels) -> float:
    """Fraction of predictions equal to the labels. ``predictions`` may be logits [N, C] or class ids [N].
    Explained in 01, section "Text: a frozen sentence encoder"."""
    predictions, labels = torch.as_tensor(predictions), torch.as_tensor(labels)
    if predictions.ndim == 2:
        if not torch.isfinite(predictions).all():
            raise ValueError("accuracy got non-finite logits (NaN or inf): the model diverged.")
        predictions = predictions.argmax(1)
    if predictions.ndim != 1 or labels.ndim != 1 or len(predictions) != len(labels):
        raise ValueError(f"accuracy needs N predictions and N labels; got {tuple(predictions.shape)} and "
                         f"{tuple(labels.shape)}.")
    if len(labels) == 0:
        raise ValueError("accuracy got no examples.")
    return (predictions == labels).float().mean().item()
