"""EfficientNet-Lite0 (B0 for mobile: ReLU6, no squeeze-excitation, TF "SAME" padding) in plain PyTorch, cut anywhere,
its names the lukemelas state dict's; and 01's in-memory batches.
Explained in 01, section "Vision: a model pretrained on ImageNet"."""

import functools
import math
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import assets
from .training import _check_examples, model_device, progress

# EfficientNet-B0 stages: (repeats, kernel, stride, expand ratio, output channels).
_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
           (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
_bn = functools.partial(nn.BatchNorm2d, eps=1e-3, momentum=0.01)  # TF's values


class _Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow "SAME" padding (the extra pixel after), computed from the input size."""

    def forward(self, x: Tensor) -> Tensor:
        pads = []
        for size, k, s, d in zip(x.shape[:-3:-1], self.kernel_size[::-1], self.stride[::-1], self.dilation[::-1]):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads) if any(pads) else x, self.weight, self.bias, self.stride, 0, self.dilation,
                        self.groups)


class _MBConvBlock(nn.Module):
    """Inverted residual block: expand 1x1 -> depthwise kxk -> project 1x1 (linear bottleneck)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, expand: int):
        super().__init__()
        hidden = in_channels * expand
        self.has_expansion, self.has_skip = expand != 1, stride == 1 and in_channels == out_channels
        if self.has_expansion:
            self._expand_conv, self._bn0 = _Conv2dSame(in_channels, hidden, 1, bias=False), _bn(hidden)
        self._depthwise_conv = _Conv2dSame(hidden, hidden, kernel, stride=stride, groups=hidden, bias=False)
        self._bn1 = _bn(hidden)
        self._project_conv, self._bn2 = _Conv2dSame(hidden, out_channels, 1, bias=False), _bn(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expansion else x
        h = self._bn2(self._project_conv(F.relu6(self._bn1(self._depthwise_conv(h)))))
        return h + x if self.has_skip else h


class EfficientNetLite0(nn.Module):
    """Cut between any of its 16 blocks: ``forward(x) == _fc(head_features(run_blocks(stem(x))))``, ``x`` normalised.
    Explained in 01, section "Vision: a model pretrained on ImageNet"."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self._conv_stem, self._bn0 = _Conv2dSame(3, 32, 3, stride=2, bias=False), _bn(32)
        blocks, channels = [], 32
        for repeats, kernel, stride, expand, out in _STAGES:
            for r in range(repeats):
                blocks.append(_MBConvBlock(channels, out, kernel, stride if r == 0 else 1, expand))
                channels = out
        self._blocks, self.num_blocks = nn.ModuleList(blocks), len(blocks)
        self._conv_head, self._bn1 = _Conv2dSame(channels, 1280, 1, bias=False), _bn(1280)
        self._fc = nn.Linear(1280, num_classes)

    def stem(self, x: Tensor) -> Tensor:
        return F.relu6(self._bn0(self._conv_stem(x)))

    def run_blocks(self, x: Tensor, start: int = 0, stop: int | None = None) -> Tensor:
        """Blocks ``start .. stop - 1`` on the output of the stem (``start == 0``) or of block ``start - 1``."""
        stop = self.num_blocks if stop is None else stop
        if not 0 <= start <= stop <= self.num_blocks:
            raise ValueError(f"need 0 <= start <= stop <= {self.num_blocks}, got start={start}, stop={stop}")
        return nn.Sequential(*self._blocks[start:stop])(x)   # an empty range returns x

    def head_features(self, x: Tensor) -> Tensor:
        """1x1 conv to 1280 channels, batch norm, ReLU6, global average pool: the image's embedding."""
        return F.relu6(self._bn1(self._conv_head(x))).mean(dim=(2, 3))

    def features(self, x: Tensor) -> Tensor:
        return self.head_features(self.run_blocks(self.stem(x)))

    def forward(self, x: Tensor) -> Tensor:
        return self._fc(self.features(x))


def load_efficientnet_lite0(weights_path: str | Path | None = None) -> EfficientNetLite0:
    """EfficientNet-Lite0 with its ImageNet weights (default: the asset's), loaded strictly, eval mode, on the CPU.
    Explained in 01, section "Vision: a model pretrained on ImageNet"."""
    state = torch.load(Path(weights_path or assets.resolve_efficientnet_lite0()), map_location="cpu", weights_only=True)
    model = EfficientNetLite0()
    model.load_state_dict(state, strict=True)
    return model.eval()


def _normalize(x: Tensor, channels: int = 3, name: str = "images") -> Tensor:
    """``(x - 0.5) / 0.5`` for float images in [0, 1] ``[N, channels, H, W]``; one clear error otherwise."""
    if not isinstance(x, Tensor) or x.ndim != 4:
        raise ValueError(f"{name} must be a rank 4 tensor [N, {channels}, H, W], got {getattr(x, 'shape', type(x))}")
    if x.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channel(s) in dim 1, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor with values in [0, 1], got dtype {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contain {int((~torch.isfinite(x)).sum())} non-finite value(s) (NaN or inf)")
    return (x - 0.5) / 0.5


def _grayscale_to_rgb_input(x: Tensor, size: int) -> Tensor:
    """Grayscale ``[N, 1, h, w]`` in [0, 1] as input ``[N, 3, size, size]``: resized, copied to R, G, B, normalised."""
    _normalize(x, 1, "grayscale images")
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return _normalize(x.expand(-1, 3, -1, -1))


@torch.no_grad()  # not inference_mode: heads are then trained on these features
def extract_features(model: EfficientNetLite0, images: Tensor, *, size: int | None = None,
                     pooled_after: Sequence[int] = (), maps_after: Sequence[int] = (), batch_size: int = 256,
                     show_progress: bool = False) -> dict:
    """One frozen pass, read after ``k`` blocks (0..16):
    ``{"head": [N, 1280], "pooled": {k: [N, C_k]}, "maps": {k: [N, C_k, H_k, W_k]}}`` on the CPU, of normalised RGB
    ``images`` or, with ``size``, grayscale ones in [0, 1] (resized, copied into R, G, B batch by batch).
    Explained in 01, section "Vision: where transfer stops paying"."""
    channels = 3 if size is None else 1
    if images.ndim != 4 or images.shape[1] != channels or images.shape[0] == 0:
        raise ValueError(f"images must be a non-empty [N, {channels}, H, W] batch, got {tuple(images.shape)}")
    cuts = sorted(set(pooled_after) | set(maps_after))
    if any(not 0 <= k <= model.num_blocks for k in cuts):
        raise ValueError(f"depths must lie in 0..{model.num_blocks}, got {cuts}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    was_training, device, head, pools, maps = model.training, model_device(model), [], {}, {}
    model.eval()
    try:
        starts = range(0, len(images), batch_size)
        for start in progress(starts, desc="features") if show_progress else starts:
            batch = images[start: start + batch_size]
            batch = batch if size is None else _grayscale_to_rgb_input(batch, size)
            # channels_last makes PyTorch's CPU convolutions (depthwise ones above all) ~1.7x faster here.
            x, done = model.stem(batch.to(device).contiguous(memory_format=torch.channels_last)), 0
            for k in cuts:
                x, done = model.run_blocks(x, done, k), k
                if k in pooled_after:
                    pools.setdefault(k, []).append(x.mean(dim=(2, 3)).cpu())
                if k in maps_after:
                    maps.setdefault(k, []).append(x.cpu().contiguous())
            head.append(model.head_features(model.run_blocks(x, done)).cpu())
    finally:
        model.train(was_training)
    return {"head": torch.cat(head), "pooled": {k: torch.cat(v) for k, v in pools.items()},
            "maps": {k: torch.cat(v) for k, v in maps.items()}}


def shuffled_batches(x: Tensor, y: Tensor, batch_size: int, *, steps: int, n_classes: int, seed: int = 0):
    """``(batches, epochs)`` for ``training.fit(..., epochs=epochs, max_steps=steps)`` on checked in-memory data:
    ``batches(epoch)``, full batches in a fresh order from one ``seed``-ed generator (ask for epochs in order).
    Explained in 01, section "Vision: where transfer stops paying"."""
    _check_examples(x, y, "the training data")
    if y.dtype not in (torch.int64, torch.int32) or y.ndim != 1:
        raise ValueError(f"labels must be a 1-d integer tensor, got {y.dtype} of shape {tuple(y.shape)}.")
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"labels must lie in 0..{n_classes - 1}, found {int(y.min())}..{int(y.max())}.")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}.")
    generator, batch_size = torch.Generator().manual_seed(seed), min(batch_size, len(x))

    def batches(epoch: int) -> list[tuple[Tensor, Tensor]]:
        order = torch.randperm(len(x), generator=generator)[: len(x) // batch_size * batch_size]   # full batches only
        return [(x[index].contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x[index], y[index])
                for index in order.split(batch_size)]
    return batches, math.ceil(steps / (len(x) // batch_size))


@torch.inference_mode()
def batched_logits(model: nn.Module, x: Tensor, batch_size: int = 512) -> Tensor:
    """The model's outputs for ``x`` (in batches on its device, eval mode restored after), on the CPU.
    Explained in 01, section "Vision: where transfer stops paying"."""
    was_training, device = model.training, model_device(model)
    model.eval()
    try:
        return torch.cat([model(x[i: i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)
