"""Datasets: SST-2, the sentiment sentences and Fashion-MNIST, validated, with clear errors for bad files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from learnstrat_helpers import assets
from learnstrat_helpers.datasets import (
    FASHION_MNIST_CLASSES,
    SchemaError,
    _read_idx,
    load_fashion_mnist,
    load_sentiment_sentences,
    load_sst2,
    sample_per_class,
)

FASHION_NAMES = [f"{split}-{kind}" for split in ("train", "t10k") for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")]


# ---------------------------------------------------------------- SST-2


def _write_sst2(base: Path, train: list[dict] | str, validation: list[dict] | str) -> Path:
    folder = base / "sst2"
    folder.mkdir(parents=True)
    for split, records in (("train", train), ("validation", validation)):
        text = records if isinstance(records, str) else "".join(json.dumps(r) + "\n" for r in records)
        (folder / f"{split}.jsonl").write_text(text)
    return base


GOOD = [{"sentence": "a fine film .", "label": 1}, {"sentence": "a dull film .", "label": 0}]


@pytest.mark.slow
def test_load_sst2_from_shared_data(monkeypatch, shared_data):
    import datasets

    if not (shared_data / "sst2" / "validation.jsonl").is_file():
        pytest.skip(f"{shared_data} has no sst2/")
    monkeypatch.setenv("LEARNSTRAT_DATA_DIR", str(shared_data))
    loaded = load_sst2()
    assert isinstance(loaded, datasets.DatasetDict) and set(loaded) == {"train", "validation"}
    for split in ("train", "validation"):
        assert loaded[split].column_names == ["sentence", "label"]
        assert isinstance(loaded[split].features["label"], datasets.ClassLabel)
        assert loaded[split].features["label"].names == ["negative", "positive"]
    assert loaded["validation"].num_rows == 872
    assert loaded["train"].num_rows > 60_000
    assert set(loaded["validation"]["label"]) == {0, 1}
    assert isinstance(loaded["validation"][0]["sentence"], str)


def test_load_sst2_small_local_copy(monkeypatch, tmp_path):
    monkeypatch.setenv("LEARNSTRAT_DATA_DIR", str(_write_sst2(tmp_path, GOOD, GOOD[::-1])))
    loaded = load_sst2()
    assert loaded["train"]["sentence"] == ["a fine film .", "a dull film ."]
    assert loaded["validation"]["label"] == [0, 1]
    assert loaded["validation"].features["label"].int2str(1) == "positive"


NO_LABEL = [{"sentence": "a fine film ."}, {"sentence": "a dull film ."}]


def test_load_sst2_missing_label_column_in_the_only_split(monkeypatch, tmp_path):
    monkeypatch.setenv("LEARNSTRAT_DATA_DIR", str(_write_sst2(tmp_path, NO_LABEL, GOOD)))
    with pytest.raises(SchemaError, match=r"split 'train' lacks column\(s\) \['label'\]"):
        load_sst2(("train",))


@pytest.mark.parametrize("which", ["train", "validation"])
def test_load_sst2_missing_label_column(monkeypatch, tmp_path, which):
    train, validation = (NO_LABEL, GOOD) if which == "train" else (GOOD, NO_LABEL)
    monkeypatch.setenv("LEARNSTRAT_DATA_DIR", str(_write_sst2(tmp_path, train, validation)))
    with pytest.raises(SchemaError, match=rf"split '{which}' lacks column\(s\) \['label'\]"):
        load_sst2()


def test_load_sst2_label_out_of_range_names_the_record(monkeypatch, tmp_path):
    bad = GOOD + [{"sentence": "a third kind of film .", "label": 2}]
    monkeypatch.setenv("LEARNSTRAT_DATA_DIR", str(_write_sst2(tmp_path, GOOD, bad)))
    with pytest.raises(SchemaError, match=r"split 'validation', record 2: label=2 is outside 0\.\.1"):
        load_sst2()


def test_load_sst2_negative_label(monkeypatch, tmp_path):
    bad = [{"sentence": "x", "label": -1}] + GOOD
    monkeypatch.setenv("LEARNSTRAT_DATA_DIR", str(_write_sst2(tmp_path, bad, GOOD)))
    with pytest.raises(SchemaError, match=r"record 0: label=-1"):
        load_sst2()


def test_load_sst2_empty_validation_file_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("LEARNSTRAT_DATA_DIR", str(_write_sst2(tmp_path, GOOD, "")))
    with pytest.raises(SchemaError, match=r"validation.*empty"):
        load_sst2()


@pytest.mark.parametrize("label", [None, "1"], ids=["null", "string"])
def test_load_sst2_non_integer_label_is_a_schema_error(monkeypatch, tmp_path, label):
    bad = GOOD + [{"sentence": "x", "label": label}]
    monkeypatch.setenv("LEARNSTRAT_DATA_DIR", str(_write_sst2(tmp_path, bad, GOOD)))
    with pytest.raises(SchemaError, match="label"):
        load_sst2()


def test_load_sst2_unknown_split(monkeypatch, tmp_path):
    monkeypatch.setenv("LEARNSTRAT_DATA_DIR", str(_write_sst2(tmp_path, GOOD, GOOD)))
    with pytest.raises(ValueError, match=r"Unknown SST-2 split\(s\) \['valid'\]"):
        load_sst2(("train", "valid"))
    with pytest.raises(ValueError, match=r"Unknown SST-2 split\(s\) \['test'\]"):   # GLUE hides its labels
        load_sst2(("test",))


def test_load_sst2_data_dir_without_the_file(monkeypatch, tmp_path):
    (tmp_path / "sst2").mkdir()
    monkeypatch.setenv("LEARNSTRAT_DATA_DIR", str(tmp_path))
    with pytest.raises(assets.AssetNotFound, match="train.jsonl"):
        load_sst2(("train",))


def test_load_sst2_offline_without_local_copy(monkeypatch, tmp_path):
    monkeypatch.delenv("LEARNSTRAT_DATA_DIR", raising=False)
    monkeypatch.setenv("LEARNSTRAT_CACHE_DIR", str(tmp_path))
    with pytest.raises(assets.AssetNotFound, match=r"Hugging Face Hub \(stanfordnlp/sst2\): offline"):
        load_sst2()


# ---------------------------------------------------------------- sentiment sentences (IMDb, Amazon, Yelp)


def _write_domains(base: Path, records: dict[str, list[dict] | str]) -> Path:
    folder = base / "sentiment_sentences"
    folder.mkdir(parents=True)
    for domain, rows in records.items():
        text = rows if isinstance(rows, str) else "".join(json.dumps(r) + "\n" for r in rows)
        (folder / f"{domain}.jsonl").write_text(text)
    return base


REVIEWS = [{"sentence": "Great phone, works well.", "label": 1}, {"sentence": "Broke after a week.", "label": 0}]


@pytest.mark.slow
def test_load_sentiment_sentences_from_shared_data(monkeypatch, shared_data):
    if not (shared_data / "sentiment_sentences" / "yelp.jsonl").is_file():
        pytest.skip(f"{shared_data} has no sentiment_sentences/")
    monkeypatch.setenv("LEARNSTRAT_DATA_DIR", str(shared_data))
    loaded = load_sentiment_sentences()
    assert list(loaded) == ["imdb", "amazon", "yelp"]
    for domain in loaded:
        assert loaded[domain].num_rows == 1000 and sum(loaded[domain]["label"]) == 500
        assert loaded[domain].features["label"].names == ["negative", "positive"]


def test_load_sentiment_sentences_small_local_copy(monkeypatch, tmp_path):
    monkeypatch.setenv("LEARNSTRAT_DATA_DIR", str(_write_domains(tmp_path, {"amazon": REVIEWS, "yelp": REVIEWS[::-1]})))
    loaded = load_sentiment_sentences(("amazon", "yelp"))
    assert loaded["amazon"]["sentence"] == ["Great phone, works well.", "Broke after a week."]
    assert loaded["yelp"]["label"] == [0, 1]


@pytest.mark.parametrize("bad, message", [({"sentence": "Fine.", "label": 3}, r"'yelp', record 2: label=3 is outside"),
                                          ({"sentence": "  ", "label": 1}, r"'yelp', record 2: sentence="),
                                          ({"text": "Fine.", "label": 1}, r"'yelp' lacks column\(s\) \['sentence'\]")])
def test_load_sentiment_sentences_bad_record_is_a_schema_error(monkeypatch, tmp_path, bad, message):
    monkeypatch.setenv("LEARNSTRAT_DATA_DIR", str(_write_domains(tmp_path, {"yelp": REVIEWS + [bad]})))
    with pytest.raises(SchemaError, match=message):
        load_sentiment_sentences(("yelp",))


def test_load_sentiment_sentences_missing_domain_file(monkeypatch, tmp_path):
    monkeypatch.setenv("LEARNSTRAT_DATA_DIR", str(_write_domains(tmp_path, {"imdb": REVIEWS, "yelp": REVIEWS})))
    with pytest.raises(assets.AssetNotFound, match="missing amazon.jsonl"):
        load_sentiment_sentences()


def test_load_sentiment_sentences_unknown_domain(monkeypatch, tmp_path):
    monkeypatch.setenv("LEARNSTRAT_DATA_DIR", str(_write_domains(tmp_path, {"yelp": REVIEWS})))
    with pytest.raises(ValueError, match=r"Unknown domain\(s\) \['twitter'\]: choose from imdb, amazon, yelp"):
        load_sentiment_sentences(("yelp", "twitter"))
    with pytest.raises(ValueError, match="none given"):
        load_sentiment_sentences(())


def test_load_sentiment_sentences_offline_without_local_copy(monkeypatch, tmp_path):
    monkeypatch.delenv("LEARNSTRAT_DATA_DIR", raising=False)
    monkeypatch.setenv("LEARNSTRAT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(assets, "is_offline", lambda *a, **k: True)
    with pytest.raises(assets.AssetNotFound, match=r"UCI archive .*: offline"):
        load_sentiment_sentences()


def _uci_zip(yelp_text: str) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("sentiment labelled sentences/yelp_labelled.txt", yelp_text)
        archive.writestr("__MACOSX/sentiment labelled sentences/._yelp_labelled.txt", "\x00 not text")
    return buffer.getvalue()


@pytest.mark.parametrize("yelp_text, error", [("Wow... Loved this place.\t1\nCrust is not good.\t0\n", None),
                                               ("Wow... Loved this place.\t1\nNo label here\n", "record 1: label=")])
def test_load_sentiment_sentences_online_reads_the_uci_archive(monkeypatch, tmp_path, yelp_text, error):
    import io
    import urllib.request

    monkeypatch.delenv("LEARNSTRAT_DATA_DIR", raising=False)
    monkeypatch.setenv("LEARNSTRAT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(assets, "is_offline", lambda *a, **k: False)
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: io.BytesIO(_uci_zip(yelp_text)))
    if error:
        with pytest.raises(SchemaError, match=error):
            load_sentiment_sentences(("yelp",))
    else:
        loaded = load_sentiment_sentences(("yelp",))
        assert loaded["yelp"]["sentence"] == ["Wow... Loved this place.", "Crust is not good."]
        assert loaded["yelp"]["label"] == [1, 0]


# ---------------------------------------------------------------- sample_per_class


LABELS = np.array([0] * 10 + [1] * 6 + [2] * 8)


def test_sample_per_class_is_balanced_and_unique():
    picked = sample_per_class(LABELS, per_class=5, seed=0)
    assert len(picked) == 15 and len(set(picked.tolist())) == 15
    assert np.bincount(LABELS[picked]).tolist() == [5, 5, 5]


def test_sample_per_class_is_deterministic_per_seed_and_differs_across_seeds():
    a, b = sample_per_class(LABELS, 4, seed=3), sample_per_class(LABELS, 4, seed=3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, sample_per_class(LABELS, 4, seed=4))


def test_sample_per_class_shuffles_classes():
    picked = sample_per_class(LABELS, per_class=5, seed=0)
    assert not np.array_equal(LABELS[picked], np.sort(LABELS[picked])), "classes should be interleaved"


def test_sample_per_class_too_small_class():
    with pytest.raises(ValueError, match="class 1 has 6 examples, fewer than the 7"):
        sample_per_class(LABELS, per_class=7, seed=0)


def test_sample_per_class_missing_class_with_n_classes():
    with pytest.raises(ValueError, match="class 3 has 0 examples"):
        sample_per_class(LABELS, per_class=1, seed=0, n_classes=4)


@pytest.mark.parametrize("per_class", [0, -1])
def test_sample_per_class_rejects_non_positive(per_class):
    with pytest.raises(ValueError, match="per_class must be at least 1"):
        sample_per_class(LABELS, per_class=per_class, seed=0)


# ---------------------------------------------------------------- idx files and Fashion-MNIST


def _idx_bytes(array: np.ndarray) -> bytes:
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.tobytes()


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, gz):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4) * 10
    path = tmp_path / ("x-idx3-ubyte.gz" if gz else "x-idx3-ubyte")
    path.write_bytes(gzip.compress(_idx_bytes(array)) if gz else _idx_bytes(array))
    read = _read_idx(path)
    assert read.dtype == np.uint8 and read.shape == (2, 3, 4)
    assert np.array_equal(read, array)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    (tmp_path / "l-idx1-ubyte").write_bytes(_idx_bytes(labels))
    assert np.array_equal(_read_idx(tmp_path / "l-idx1-ubyte"), labels)


@pytest.mark.parametrize("raw, message", [
    (b"\x00\x00", "not an idx file"),
    (b"\x08\x03\x00\x00" + b"\x00" * 16, "not an idx file"),
    (bytes([0, 0, 0x0D, 1]) + (4).to_bytes(4, "big") + b"\x00" * 16, "not an idx file"),  # float32 idx
    (bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big") + b"\x01\x02\x03", r"header says \(5,\) but holds 3"),
], ids=["short", "bad-magic", "not-bytes", "truncated"])
def test_read_idx_rejects_corrupt_files(tmp_path, raw, message):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(raw)
    with pytest.raises(SchemaError, match=message):
        _read_idx(path)


def _write_fashion(base: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    folder = base / "fashion-mnist"
    folder.mkdir(parents=True)
    for prefix in ("train", "t10k"):
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(images)))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(labels)))
    return base


def test_load_fashion_mnist_from_a_tiny_local_copy(monkeypatch, tmp_path):
    images = np.stack([np.full((28, 28), 25 * c, dtype=np.uint8) for c in range(10) for _ in range(2)])
    labels = np.repeat(np.arange(10, dtype=np.uint8), 2)
    monkeypatch.setenv("LEARNSTRAT_DATA_DIR", str(_write_fashion(tmp_path, images, labels)))
    x, y = load_fashion_mnist("train")
    assert x.shape == (20, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(y, torch.from_numpy(labels.astype(np.int64)))
    # Pixel values are scaled from 0..255 to 0..1, image by image with its own label.
    assert torch.allclose(x[:, 0, 0, 0], y.float() * 25 / 255)
    x2, y2 = load_fashion_mnist("test", per_class=1, seed=0, resolution=14)
    assert x2.shape == (10, 1, 14, 14) and sorted(y2.tolist()) == list(range(10))
    assert torch.allclose(x2.mean(dim=(1, 2, 3)), y2.float() * 25 / 255, atol=1e-6)


@pytest.mark.parametrize("images, labels, message", [
    (np.zeros((3, 4, 4)), np.zeros(3), r"expected \[N, 28, 28\] images"),
    (np.zeros((3, 28, 28)), np.zeros(2), r"expected \[N, 28, 28\] images and N labels"),
], ids=["wrong-image-size", "label-count"])
def test_load_fashion_mnist_wrong_shapes_are_schema_errors(monkeypatch, tmp_path, images, labels, message):
    monkeypatch.setenv("LEARNSTRAT_DATA_DIR", str(_write_fashion(tmp_path, images, labels)))
    with pytest.raises(SchemaError, match=message):
        load_fashion_mnist("test")


def test_load_fashion_mnist_corrupt_idx_is_a_schema_error(monkeypatch, tmp_path):
    base = _write_fashion(tmp_path, np.zeros((2, 28, 28)), np.zeros(2))
    bad = base / "fashion-mnist" / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(gzip.compress(_idx_bytes(np.zeros((2, 28, 28)))[:-100]))  # header says more than it holds
    monkeypatch.setenv("LEARNSTRAT_DATA_DIR", str(base))
    with pytest.raises(SchemaError, match="t10k-images-idx3-ubyte.gz: header says"):
        load_fashion_mnist("test")


@pytest.mark.parametrize("raw", [b"not gzip at all", gzip.compress(b"\x00" * 2000)[:30]], ids=["not-gzip", "cut-short"])
def test_read_idx_broken_gzip_is_a_schema_error(tmp_path, raw):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(raw)
    with pytest.raises(SchemaError, match="t10k-labels-idx1-ubyte.gz"):
        _read_idx(path)


@pytest.mark.parametrize("split", ["validation", "Train", ""])
def test_load_fashion_mnist_unknown_split(split):
    with pytest.raises(ValueError, match="Unknown Fashion-MNIST split"):
        load_fashion_mnist(split)


def test_load_fashion_mnist_rejects_tiny_resolution():
    with pytest.raises(ValueError, match="resolution must be at least 8"):
        load_fashion_mnist("test", resolution=4)


def test_load_fashion_mnist_offline_without_files(monkeypatch, tmp_path):
    monkeypatch.delenv("LEARNSTRAT_DATA_DIR", raising=False)
    monkeypatch.setattr(assets, "_DEBIAN_FASHION_MNIST", tmp_path / "none")
    monkeypatch.setenv("LEARNSTRAT_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(assets.AssetNotFound, match="dataset-fashion-mnist"):
        load_fashion_mnist("test")


@pytest.fixture
def real_fashion_mnist(monkeypatch):
    monkeypatch.delenv("LEARNSTRAT_DATA_DIR", raising=False)
    folder = assets._DEBIAN_FASHION_MNIST
    if not all((folder / n).is_file() or (folder / f"{n}.gz").is_file() for n in FASHION_NAMES):
        pytest.skip(f"Debian's dataset-fashion-mnist is not installed in {folder}")
    return folder


@pytest.mark.slow
def test_load_fashion_mnist_real_files(real_fashion_mnist):
    x, y = load_fashion_mnist("test", per_class=3, seed=0, resolution=32)
    assert x.shape == (30, 1, 32, 32) and x.dtype == torch.float32
    assert y.shape == (30,) and y.dtype == torch.int64
    assert torch.bincount(y, minlength=10).tolist() == [3] * 10
    assert 0.0 <= x.min().item() and x.max().item() <= 1.0 and x.max().item() > 0.5
    again, y_again = load_fashion_mnist("test", per_class=3, seed=0, resolution=32)
    assert torch.equal(x, again) and torch.equal(y, y_again)
    x_other, _ = load_fashion_mnist("test", per_class=3, seed=1, resolution=32)
    assert not torch.equal(x, x_other), "another seed draws other images"
    full, labels = load_fashion_mnist("test")
    assert full.shape == (10_000, 1, 28, 28) and torch.bincount(labels).tolist() == [1000] * 10
    assert len(FASHION_MNIST_CLASSES) == 10
