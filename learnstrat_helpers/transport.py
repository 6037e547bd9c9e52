"""What travels from the clients to the server and what is done on the way: compression and its bytes, DP's clipping
and noise. Updates are ``{name: [clients, *parameter shape]}``.
Explained in 04, section "Communication: bytes per round and megabytes to the target"."""

import math

import torch


def _quantize_8bit(t: torch.Tensor) -> torch.Tensor:
    """Each row of ``t`` on 256 levels from its minimum to its maximum, decoded: error <= half a step."""
    if not torch.isfinite(t).all():
        raise ValueError("the update contains NaN or inf values.")
    flat = t.reshape(t.shape[0], -1)
    low, high = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    step = ((high - low) / 255.0).clamp_min(1e-12)
    codes = torch.round((flat - low) / step).clamp(0, 255).to(torch.uint8)   # the 1-byte values sent
    return (codes.float() * step + low).reshape(t.shape)


def _topk(t: torch.Tensor, fraction: float) -> torch.Tensor:
    """Each row of ``t`` with only its ``fraction`` largest-magnitude entries kept."""
    flat = t.reshape(t.shape[0], -1)
    index = flat.abs().topk(max(1, int(round(fraction * flat.shape[1]))), dim=1).indices
    return torch.zeros_like(flat).scatter(1, index, flat.gather(1, index)).reshape(t.shape)


def compress(updates: dict[str, torch.Tensor], method: str = "float32",
             topk_fraction: float = 0.1) -> tuple[dict[str, torch.Tensor], int]:
    """The updates as decoded and one client's bytes: "float32" (4 per value), "8bit" (1 per value + 8 per tensor for
    its minimum and step) or "topk" (the ``topk_fraction`` largest changes per tensor, 8 bytes each with the index).
    Explained in 04, section "Communication: bytes per round and megabytes to the target"."""
    sizes = [math.prod(u.shape[1:]) for u in updates.values()]
    if method == "float32":
        return updates, 4 * sum(sizes)
    if method == "8bit":
        return {k: _quantize_8bit(u) for k, u in updates.items()}, sum(sizes) + 8 * len(sizes)
    if method != "topk":
        raise ValueError(f"unknown compression {method!r}: choose 'float32', '8bit' or 'topk'.")
    if not (isinstance(topk_fraction, (int, float)) and math.isfinite(topk_fraction) and 0 < topk_fraction <= 1):
        raise ValueError(f"topk_fraction must be a fraction in (0, 1], got {topk_fraction!r}.")
    kept = sum(8 * max(1, int(round(topk_fraction * n))) for n in sizes)
    return {k: _topk(u, topk_fraction) for k, u in updates.items()}, kept


def clip_updates(updates: dict[str, torch.Tensor], clip_norm: float) -> dict[str, torch.Tensor]:
    """Each client's whole update (all its tensors) scaled down to an L2 norm of at most ``clip_norm``.
    Explained in 04, section "Privacy beyond keeping the data home"."""
    if not (math.isfinite(clip_norm) and clip_norm > 0):
        raise ValueError(f"clip_norm must be positive, got {clip_norm!r}.")
    norms = torch.sqrt(sum(u.reshape(u.shape[0], -1).pow(2).sum(1) for u in updates.values()))
    scale = (clip_norm / norms.clamp_min(1e-12)).clamp(max=1.0)
    return {k: u * scale.view(-1, *[1] * (u.ndim - 1)) for k, u in updates.items()}


def gaussian_noise(mean_update: dict[str, torch.Tensor], noise_multiplier: float, clip_norm: float | None,
                   weights, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Noise for the weighted mean of clipped updates (DP-FedAvg): one client moves it by at most ``clip_norm *
    max(w) / sum(w)``, so the std is ``noise_multiplier`` times that. Drawn on the CPU, then moved.
    Explained in 04, section "Privacy beyond keeping the data home"."""
    if not (math.isfinite(noise_multiplier) and noise_multiplier >= 0):
        raise ValueError(f"noise_multiplier must be >= 0, got {noise_multiplier!r}.")
    if clip_norm is None or not (math.isfinite(clip_norm) and clip_norm > 0):
        raise ValueError(f"noise needs a positive clip_norm (got {clip_norm!r}): without clipping one client's "
                         "update is unbounded, and no amount of noise hides it.")
    w = torch.as_tensor(weights, dtype=torch.float64).flatten()
    if len(w) == 0 or not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be non-negative with a positive sum, got {w.tolist()}.")
    std = noise_multiplier * clip_norm * float(w.max() / w.sum())
    return {k: (torch.randn(v.shape, generator=generator) * std).to(v.device) for k, v in mean_update.items()}
