"""accuracy, the results file, and the claims-vs-evidence check."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from learnstrat_helpers.claims import Claim, ClaimContradicted, check_claims
from learnstrat_helpers.metrics import accuracy
from learnstrat_helpers.results import Results, results_dir

# ---------------------------------------------------------------- accuracy


def test_accuracy_on_logits_and_on_ids():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0], [0.1, 0.2]])
    labels = torch.tensor([0, 1, 1, 1])
    assert accuracy(logits, labels) == pytest.approx(0.75)
    assert accuracy(torch.tensor([0, 1, 0, 1]), labels) == pytest.approx(0.75)
    assert accuracy([1, 1, 1], np.array([1, 1, 1])) == 1.0
    assert accuracy(np.array([0, 0]), [1, 1]) == 0.0
    assert isinstance(accuracy([1], [1]), float)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_accuracy_rejects_non_finite_logits(bad):
    with pytest.raises(ValueError, match="non-finite logits"):
        accuracy(torch.tensor([[0.0, 1.0], [bad, 0.0]]), torch.tensor([1, 0]))


@pytest.mark.parametrize("predictions, labels", [
    (torch.tensor([0, 1, 1]), torch.tensor([0, 1])),
    (torch.zeros(3, 2), torch.tensor([0, 1])),
    (torch.zeros(2, 2, 2), torch.tensor([0, 1])),
    (torch.tensor([0, 1]), torch.tensor([[0, 1]])),
])
def test_accuracy_rejects_mismatched_shapes(predictions, labels):
    with pytest.raises(ValueError, match="needs N predictions and N labels"):
        accuracy(predictions, labels)


def test_accuracy_rejects_empty_input():
    with pytest.raises(ValueError, match="no examples"):
        accuracy(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long))
    with pytest.raises(ValueError, match="no examples"):
        accuracy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))


# ---------------------------------------------------------------- Results


def test_results_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LEARNSTRAT_RESULTS_DIR", str(tmp_path / "r"))
    assert results_dir() == tmp_path / "r"
    results = Results("01_transfer_learning", "quick")
    assert results.path == tmp_path / "r" / "01_transfer_learning.json"


def test_record_writes_json_with_profile(tmp_path):
    results = Results("01_transfer_learning", "quick", folder=tmp_path)
    assert results.record("val_acc_largest", np.float32(0.875)) == pytest.approx(0.875)
    assert results.record("n_steps", 12) == 12.0
    data = json.loads((tmp_path / "01_transfer_learning.json").read_text())
    assert data == {"n_steps": 12.0, "profile": "quick", "val_acc_largest": 0.875}
    assert results["n_steps"] == 12.0
    assert not list(tmp_path.glob("*.tmp"))
    results.record("n_steps", torch.tensor(13))  # rewritten at once
    assert json.loads(results.path.read_text())["n_steps"] == 13.0


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -math.inf, np.nan, torch.tensor(float("nan"))])
def test_record_rejects_non_finite(tmp_path, value):
    results = Results("nb", "quick", folder=tmp_path)
    with pytest.raises(ValueError, match="NaN/inf needs fixing"):
        results.record("val_acc", value)
    assert not results.path.exists() and "val_acc" not in results.values


@pytest.mark.parametrize("name", ["val acc", "1st", "", "val-acc", "a.b"])
def test_record_rejects_bad_names(tmp_path, name):
    with pytest.raises(ValueError, match="identifiers"):
        Results("nb", "quick", folder=tmp_path).record(name, 0.5)


def test_record_keeps_harness_fields_and_drops_stale_headlines(tmp_path):
    path = tmp_path / "02_fine_tuning.json"
    path.write_text(json.dumps({"wall_s": 123.4, "peak_rss_mb": 987.0, "old_headline": 0.1,
                                "val_acc": 0.2, "profile": "default"}))
    results = Results("02_fine_tuning", "quick", folder=tmp_path)
    results.record("val_acc", 0.9)
    assert json.loads(path.read_text()) == {"wall_s": 123.4, "peak_rss_mb": 987.0, "val_acc": 0.9, "profile": "quick"}


def test_record_survives_a_corrupt_previous_file(tmp_path):
    path = tmp_path / "nb.json"
    path.write_text("{not json")
    Results("nb", "quick", folder=tmp_path).record("x", 1)
    assert json.loads(path.read_text()) == {"x": 1.0, "profile": "quick"}


@pytest.mark.parametrize("notebook", ["", "notebooks/01_transfer_learning", "01_transfer_learning.ipynb"])
def test_bad_notebook_names(notebook, tmp_path):
    with pytest.raises(ValueError, match="notebook's stem"):
        Results(notebook, "quick", folder=tmp_path)


# ---------------------------------------------------------------- claims


def _claims(*holds: bool) -> list[Claim]:
    return [Claim(strategy=f"strategy {i}", claim=f"claim number {i}", evidence=f"acc {i}.0", holds=h)
            for i, h in enumerate(holds)]


def test_check_claims_prints_the_table_and_returns_it(capsys):
    table = check_claims(_claims(True, True))
    out = capsys.readouterr().out
    assert out.strip() == table.strip()
    lines = table.splitlines()
    assert len(lines) == 4  # a claim line and an evidence line per claim
    assert lines[0] == "[holds] strategy 0: claim number 0" and lines[1].strip() == "evidence: acc 0.0"


def test_check_claims_raises_naming_every_failed_claim(capsys):
    with pytest.raises(ClaimContradicted) as info:
        check_claims(_claims(True, False, False))
    message = str(info.value)
    assert message.startswith("2 claim(s) not supported")
    assert "strategy 1: 'claim number 1' is contradicted by this run: acc 1.0" in message
    assert "strategy 2: 'claim number 2'" in message and "claim number 0" not in message
    assert isinstance(info.value, AssertionError)
    out = capsys.readouterr().out
    assert "[CONTRADICTED] strategy 2: claim number 2" in out  # the table is printed before raising


def test_check_claims_not_enforced_prints_but_does_not_raise(capsys):
    table = check_claims(_claims(False, True), enforce=False)
    out = capsys.readouterr().out
    assert "1 claim(s) not supported, not enforced" in out
    assert table.splitlines()[0].startswith("[CONTRADICTED]")


def test_check_claims_shows_long_claims_whole(capsys):
    long = Claim("s", "x" * 120, "e", True)
    assert "x" * 120 in check_claims([long]).splitlines()[0]


def test_check_claims_empty_list_raises():
    with pytest.raises(ValueError, match="no claims"):
        check_claims([])
    with pytest.raises(ValueError, match="no claims"):
        check_claims([], enforce=False)
