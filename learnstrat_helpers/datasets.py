"""The course's datasets, validated, in the same schema whether read from a local folder or online.
Explained in 01, section "Set-up: where the models and data come from"."""

import gzip
import json
import math
from pathlib import Path

import numpy as np
import torch

from . import assets

SST2_LABELS = ("negative", "positive")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot")
_SST2_HUB_ID, _FASHION_MNIST_HUB_ID = "stanfordnlp/sst2", "zalando-datasets/fashion_mnist"
_SENTIMENT_DOMAINS = ("imdb", "amazon", "yelp")
_UCI_SENTENCES_URL = "https://archive.ics.uci.edu/static/public/331/sentiment+labelled+sentences.zip"


class SchemaError(ValueError):
    """A dataset record doesn't have the fields or values the course expects."""


def _read_jsonl_objects(path: Path) -> list[tuple[int, dict]]:
    """(line number, record) of every non-blank line; one clear error for bad JSON, a non-object, an empty file."""
    numbered = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SchemaError(f"{path}, line {line_number}: not valid JSON ({exc.msg}).") from exc
            if not isinstance(record, dict):
                raise SchemaError(f"{path}, line {line_number}: expected a JSON object, got {type(record).__name__}.")
            numbered.append((line_number, record))
    if not numbered:
        raise SchemaError(f"{path} is empty: expected one JSON record per line.")
    return numbered


def _jsonl_columns(path: Path) -> dict[str, list]:
    """``sentence``/``label`` columns parsed here, not by pyarrow, which silently coerces (a label "1" becomes 1)."""
    records = [r for _, r in _read_jsonl_objects(path)]
    return {c: [r[c] for r in records] for c in ("sentence", "label") if all(c in r for r in records)}


def _as_dataset_dict(columns: dict[str, dict[str, list]]):
    """Checked splits: both columns present, every sentence a non-empty string, every label an int in 0..1."""
    import datasets  # slow to import; only the text notebooks need it
    for split, cols in columns.items():
        if missing := [c for c in ("sentence", "label") if c not in cols]:
            raise SchemaError(f"split {split!r} lacks column(s) {missing}; it has {list(cols)}.")
        if not cols["label"]:
            raise SchemaError(f"split {split!r} is empty.")
        for name, kind in (("sentence", str), ("label", int)):
            for i, value in enumerate(cols[name]):
                if not isinstance(value, kind) or isinstance(value, bool) or (kind is str and not value.strip()):
                    raise SchemaError(f"split {split!r}, record {i}: {name}={value!r} is not a non-empty "
                                      f"{kind.__name__}.")
                if kind is int and not 0 <= value < len(SST2_LABELS):
                    raise SchemaError(f"split {split!r}, record {i}: label={value} is outside 0..1.")
    schema = datasets.Features({"sentence": datasets.Value("string"),
                                "label": datasets.ClassLabel(names=list(SST2_LABELS))})
    return datasets.DatasetDict({s: datasets.Dataset.from_dict(c, features=schema) for s, c in columns.items()})


def _offline(what: str, name: str, online: str, files: str, *also_tried: str) -> assets.AssetNotFound:
    tried = ["LEARNSTRAT_DATA_DIR: not set", f"{assets.cache_dir() / 'datasets' / name}: empty", f"{online}: offline"]
    tried += also_tried
    return assets.AssetNotFound(what, tried, f"go online once, or put {name}/{files} in LEARNSTRAT_DATA_DIR.")


def load_sst2(splits: tuple[str, ...] = ("train", "validation")):
    """SST-2 as a ``datasets.DatasetDict`` (``sentence``, ``label`` 0/1, each split checked) from
    ``$LEARNSTRAT_DATA_DIR/sst2/<split>.jsonl`` or the cache, else the Hub (GLUE hides test labels: no test split).
    Explained in 01, section "Text: a frozen sentence encoder"."""
    if unknown := [s for s in splits if s not in ("train", "validation")]:
        raise ValueError(f"Unknown SST-2 split(s) {unknown}: choose from train, validation.")
    if folder := assets.resolve_dataset_folder("sst2", [f"{s}.jsonl" for s in splits]):
        columns = {s: _jsonl_columns(folder / f"{s}.jsonl") for s in splits}
    elif assets.is_offline():
        raise _offline("the SST-2 dataset", "sst2", f"Hugging Face Hub ({_SST2_HUB_ID})", "<split>.jsonl")
    else:
        import datasets
        hub = datasets.load_dataset(_SST2_HUB_ID)
        columns = {s: {c: hub[s][c] for c in ("sentence", "label") if c in hub[s].column_names} for s in splits}
    return _as_dataset_dict(columns)


def load_sentiment_sentences(domains: tuple[str, ...] = _SENTIMENT_DOMAINS):
    """Kotzias et al. 2015's reviews (IMDb, Amazon, Yelp; 1,000 each, half positive), one split per domain, checked as
    :func:`load_sst2`, from ``$LEARNSTRAT_DATA_DIR/sentiment_sentences/<domain>.jsonl``, the cache, else UCI.
    Explained in 02, section "Domain-specific? The SST-2 model on other review sites"."""
    if (unknown := [d for d in domains if d not in _SENTIMENT_DOMAINS]) or not domains:
        raise ValueError(f"Unknown domain(s) {unknown or '(none given)'}: choose from {', '.join(_SENTIMENT_DOMAINS)}.")
    if folder := assets.resolve_dataset_folder("sentiment_sentences", [f"{d}.jsonl" for d in domains]):
        return _as_dataset_dict({d: _jsonl_columns(folder / f"{d}.jsonl") for d in domains})
    if assets.is_offline():
        raise _offline("the sentiment sentences", "sentiment_sentences", f"UCI archive ({_UCI_SENTENCES_URL})",
                       "<domain>.jsonl")
    import io, urllib.request, zipfile  # noqa: E401  (online only)
    archive = zipfile.ZipFile(io.BytesIO(urllib.request.urlopen(_UCI_SENTENCES_URL, timeout=60).read()))
    columns = {}
    for d in domains:   # one "sentence<TAB>label" per line, no header; the archive also holds __MACOSX/._* files
        name = next(n for n in archive.namelist() if n.endswith(f"/{d}{'_cells' * (d == 'amazon')}_labelled.txt"))
        rows = [x.rsplit("\t", 1) for x in archive.read(name).decode("utf-8", "replace").splitlines() if x.strip()]
        columns[d] = {"sentence": [r[0].strip() for r in rows],
                      "label": [int(r[-1]) if len(r) == 2 and r[-1].strip() in ("0", "1") else r[-1] for r in rows]}
    return _as_dataset_dict(columns)


def _read_idx(path: Path) -> np.ndarray:
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:  # not gzip, or cut short
        raise SchemaError(f"{path} could not be read: {exc}") from exc
    if len(raw) < 8 or raw[:3] != b"\x00\x00\x08":
        raise SchemaError(f"{path} is not an idx file of unsigned bytes.")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(raw[3]))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * raw[3])
    if data.size != math.prod(shape):
        raise SchemaError(f"{path}: header says {shape} but holds {data.size} values.")
    return data.reshape(shape)


def _fashion_mnist_arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = {"train": "train", "test": "t10k"}[split]
    if folder := assets.resolve_fashion_mnist_folder():
        find = lambda stem: folder / stem if (folder / stem).is_file() else folder / f"{stem}.gz"  # noqa: E731
        return _read_idx(find(f"{prefix}-images-idx3-ubyte")), _read_idx(find(f"{prefix}-labels-idx1-ubyte"))
    if assets.is_offline():
        raise assets.AssetNotFound("the Fashion-MNIST dataset", ["$LEARNSTRAT_DATA_DIR/fashion-mnist",
            str(assets._DEBIAN_FASHION_MNIST), str(assets.cache_dir() / "datasets" / "fashion-mnist"),
            f"Hugging Face Hub ({_FASHION_MNIST_HUB_ID}): offline"],
            "sudo apt-get install dataset-fashion-mnist (Debian/Ubuntu), or go online once.")
    import datasets
    hub = datasets.load_dataset(_FASHION_MNIST_HUB_ID, split=split)
    return np.stack([np.asarray(img, dtype=np.uint8) for img in hub["image"]]), np.asarray(hub["label"], dtype=np.uint8)


def sample_per_class(labels, per_class: int, seed: int, n_classes: int | None = None) -> np.ndarray:
    """Indices of ``per_class`` examples of every class (``range(n_classes)``, else those present), drawn with ``seed``,
    interleaved; too few is an error. Explained in 01, section "Text: a frozen sentence encoder"."""
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}.")
    labels, rng, chosen = np.asarray(labels), np.random.default_rng(seed), []
    for c in range(n_classes) if n_classes is not None else np.unique(labels):
        members = np.flatnonzero(labels == c)
        if members.size < per_class:
            raise ValueError(f"class {c} has {members.size} examples, fewer than the {per_class} asked for.")
        chosen.append(rng.choice(members, size=per_class, replace=False))
    return rng.permutation(np.concatenate(chosen))


def load_fashion_mnist(split: str = "train", per_class: int | None = None, seed: int = 0,
                       resolution: int = 28) -> tuple[torch.Tensor, torch.Tensor]:
    """Images in [0, 1] ``[N, 1, resolution, resolution]`` and int64 labels, ``per_class`` of each class (None: all).
    Explained in 01, section "Vision: where transfer stops paying"."""
    if split not in ("train", "test"):
        raise ValueError(f"Unknown Fashion-MNIST split {split!r}: choose 'train' or 'test'.")
    if resolution < 8:
        raise ValueError(f"resolution must be at least 8 pixels, got {resolution}.")
    images, labels = _fashion_mnist_arrays(split)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise SchemaError(f"Fashion-MNIST {split}: expected [N, 28, 28] images and N labels, got {images.shape}, "
                          f"{labels.shape}.")
    if per_class is not None:
        index = sample_per_class(labels, per_class, seed, n_classes=len(FASHION_MNIST_CLASSES))
        images, labels = images[index], labels[index]
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    if resolution != 28:
        x = torch.nn.functional.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    return x, torch.from_numpy(labels.astype(np.int64))
