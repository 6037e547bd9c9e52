"""accuracy, the results file, and the claims-vs-evidence check."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from learnstrat_helpers.claims import Claim, ClaimMismatch, bootstrap_interval, check_claims, mean_interval
from learnstrat_helpers.metrics import accuracy
from learnstrat_helpers.results import Results, _results_dir

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
    assert _results_dir() == tmp_path / "r"
    results = Results("01_transfer_learning", "quick")
    assert results.path == tmp_path / "r" / "01_transfer_learning.json"


def test_record_writes_json_with_profile(tmp_path):
    results = Results("01_transfer_learning", "quick", folder=tmp_path)
    assert results.record("val_acc_largest", np.float32(0.875)) == pytest.approx(0.875)
    assert results.record("n_steps", 12) == 12.0
    data = json.loads((tmp_path / "01_transfer_learning.json").read_text())
    assert data == {"n_steps": 12.0, "profile": "quick", "val_acc_largest": 0.875, "seed": 0, "claims": []}
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


def test_record_drops_an_earlier_runs_timings_and_headlines(tmp_path):
    # A quick run after a default `make course` must not leave the default run's wall_s beside quick numbers.
    path = tmp_path / "02_fine_tuning.json"
    path.write_text(json.dumps({"wall_s": 123.4, "peak_rss_mb": 987.0, "old_headline": 0.1,
                                "val_acc": 0.2, "profile": "default"}))
    results = Results("02_fine_tuning", "quick", folder=tmp_path)
    results.record("val_acc", 0.9)
    assert json.loads(path.read_text()) == {"val_acc": 0.9, "profile": "quick", "seed": 0, "claims": []}


def test_record_survives_a_corrupt_previous_file(tmp_path):
    path = tmp_path / "nb.json"
    path.write_text("{not json")
    Results("nb", "quick", folder=tmp_path).record("x", 1)
    assert json.loads(path.read_text()) == {"x": 1.0, "profile": "quick", "seed": 0, "claims": []}


@pytest.mark.parametrize("notebook", ["", "notebooks/01_transfer_learning", "01_transfer_learning.ipynb"])
def test_bad_notebook_names(notebook, tmp_path):
    with pytest.raises(ValueError, match="notebook's stem"):
        Results(notebook, "quick", folder=tmp_path)


# ---------------------------------------------------------------- claims


def _claim(low: float, high: float, *, threshold: float = 0.0, expected: str = "supported", higher: bool = True,
           statement: str = "A beats B") -> Claim:
    return Claim("fine-tuning", "strength", statement, "acc(A) - acc(B)", value=(low + high) / 2, ci_low=low,
                 ci_high=high, threshold=threshold, expected=expected, higher_supports=higher)


@pytest.mark.parametrize("low, high, higher, verdict", [
    (0.03, 0.08, True, "supported"),          # the whole interval clears the margin on the claim's side
    (-0.05, -0.01, True, "contradicted"),     # ... on the other side
    (-0.01, 0.04, True, "inconclusive"),      # straddles the margin: undecided
    (0.005, 0.04, True, "inconclusive"),      # straddles a margin of +0.01
    (-0.05, -0.02, False, "supported"),       # a claim that the value is *below* the margin
    (0.02, 0.05, False, "contradicted"),
])
def test_verdict_comes_from_the_interval_and_the_margin(low, high, higher, verdict):
    threshold = 0.01 if (low, high) == (0.005, 0.04) else 0.0
    claim = _claim(low, high, threshold=threshold, higher=higher, expected=verdict)
    assert claim.verdict == verdict
    assert verdict in claim.evidence and f"{low:+.3f}" in claim.evidence and f"{threshold:+.3f}" in claim.evidence


def test_a_claim_is_data_with_the_required_fields():
    row = _claim(0.01, 0.05).as_dict()
    for key in ("strategy", "statement", "value", "ci_low", "ci_high", "threshold", "verdict", "expected", "side"):
        assert key in row
    assert row["verdict"] == "supported" and json.loads(json.dumps(row)) == row


@pytest.mark.parametrize("kwargs, match", [
    ({"value": float("nan")}, "finite"),
    ({"ci_low": 0.2, "ci_high": 0.1}, "above ci_high"),
    ({"expected": "holds"}, "expected must be one of"),
    ({"side": "weakness"}, "side must be one of"),
    ({"strategy": "transfer"}, "strategy must be one of"),
])
def test_bad_claims_are_refused(kwargs, match):
    fields = dict(strategy="fine-tuning", side="strength", statement="x", metric="m", value=0.1, ci_low=0.0, ci_high=0.2,
                  threshold=0.0, expected="supported")
    with pytest.raises(ValueError, match=match):
        Claim(**{**fields, **kwargs})


def test_check_claims_prints_records_and_returns_the_table(capsys, tmp_path):
    results = Results("nb", "default", folder=tmp_path, seed=2)
    results.record("x", 1)
    table = check_claims([_claim(0.01, 0.05), _claim(-0.02, 0.03, expected="inconclusive")], results)
    assert capsys.readouterr().out.strip() == table.strip()
    assert table.splitlines()[0].startswith("[supported] fine-tuning, strength: A beats B")
    saved = json.loads((tmp_path / "nb.json").read_text())
    assert saved["x"] == 1.0 and saved["seed"] == 2
    assert [c["verdict"] for c in saved["claims"]] == ["supported", "inconclusive"]


def test_a_wrong_expected_verdict_fails_the_cell_naming_it(capsys, tmp_path):
    results = Results("nb", "default", folder=tmp_path)
    claims = [_claim(0.01, 0.05), _claim(-0.02, 0.03, statement="C beats D"), _claim(-0.05, -0.01, statement="E")]
    with pytest.raises(ClaimMismatch) as info:
        check_claims(claims, results)
    message = str(info.value)
    assert message.startswith("2 claim(s) came out differently")
    assert "'C beats D': this run says inconclusive, the notebook teaches supported" in message
    assert "'E': this run says contradicted" in message and "'A beats B'" not in message
    assert "LEARNSTRAT_SEED" in message and isinstance(info.value, AssertionError)
    assert "[inconclusive (expected: supported)]" in capsys.readouterr().out   # the table is printed first
    assert len(json.loads((tmp_path / "nb.json").read_text())["claims"]) == 3  # ... and recorded


def test_check_claims_not_enforced_prints_but_does_not_raise(capsys):
    check_claims([_claim(-0.05, -0.01)], enforce=False)
    assert "1 verdict(s) differ from the expected ones, not enforced" in capsys.readouterr().out


def test_check_claims_empty_list_raises():
    with pytest.raises(ValueError, match="no claims"):
        check_claims([])


# ---------------------------------------------------------------- intervals


def test_paired_bootstrap_of_per_example_scores_covers_the_difference():
    rng = np.random.default_rng(0)
    a = (rng.random(800) < 0.80).astype(float)
    b = np.where(rng.random(800) < 0.9, a, 1 - a)   # B agrees with A on 90% of examples
    value, low, high = bootstrap_interval(a, b, seed=1)
    assert value == pytest.approx(a.mean() - b.mean())
    assert low < value < high and high - low < 0.08   # pairing makes it much narrower than two separate CIs
    assert bootstrap_interval(a, b, seed=1) == (value, low, high)   # repeatable for a seed


def test_bootstrap_identical_models_give_a_zero_width_interval():
    a = np.array([1.0, 0.0, 1.0, 1.0])
    assert bootstrap_interval(a, a.copy()) == (0.0, 0.0, 0.0)


def test_bootstrap_with_a_metric_needs_every_class_and_pairs_the_models():
    from sklearn.metrics import roc_auc_score
    rng = np.random.default_rng(0)
    labels = (rng.random(300) < 0.2).astype(int)
    good, noise = labels + rng.normal(0, 0.6, 300), rng.normal(0, 1, 300)
    value, low, high = bootstrap_interval(good, noise, metric=roc_auc_score, labels=labels, n_resamples=300)
    assert value == pytest.approx(roc_auc_score(labels, good) - roc_auc_score(labels, noise))
    assert 0 < low < value < high
    alone = bootstrap_interval(good, metric=roc_auc_score, labels=labels, n_resamples=300)
    assert alone[0] == pytest.approx(roc_auc_score(labels, good)) and alone[1] < alone[0] < alone[2] <= 1


@pytest.mark.parametrize("a, b, match", [
    ([1.0], None, ">= 2 examples"),
    ([1.0, 0.0, 1.0], [1.0, 0.0], "equal-length"),
    ([1.0, float("nan")], None, "NaN"),
])
def test_bootstrap_rejects_bad_input(a, b, match):
    with pytest.raises(ValueError, match=match):
        bootstrap_interval(a, b)


def test_mean_interval_is_student_t_and_refuses_a_single_run():
    mean, low, high = mean_interval([0.70, 0.72, 0.74])
    assert mean == pytest.approx(0.72) and (high - mean) == pytest.approx(4.303 * 0.02 / 3 ** 0.5, rel=1e-3)
    with pytest.raises(ValueError, match=">= 2 finite values"):
        mean_interval([0.7])
