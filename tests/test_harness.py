"""The benchmark harness's bookkeeping (running notebooks is `make course`'s job, not a unit test's)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("run_course", ROOT / "benchmarks" / "run_course.py")
run_course = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_course)


def _row(stem, wall_s, rss_mb, error=None, **numbers):
    return {"stem": stem, "results": {"wall_s": wall_s, "peak_rss_mb": rss_mb, "profile": "default", **numbers},
            "error": error}


def test_over_budget_uses_each_notebooks_limits():
    assert run_course.over_budget(_row("01_transfer_learning", 299, 1599)) == []
    assert run_course.over_budget(_row("01_transfer_learning", 301, 100)) == ["wall 301 s > 300 s"]
    assert run_course.over_budget(_row("01_transfer_learning", 10, 1700)) == ["peak RSS 1700 MB > 1600 MB"]
    assert run_course.over_budget(_row("03_multitask_ner_re", 470, 100)) == []  # 03 may take 8 minutes


def test_write_table_lists_status_and_numbers(tmp_path):
    rows = [_row("01_transfer_learning", 200, 1200, text_gain_vs_tfidf_32=0.12),
            _row("02_bert_fine_tuning", 400, 1000), _row("04_federated_learning", 5, 5, error="boom")]
    text = run_course.write_table(rows, "default", tmp_path / "table.md").read_text()
    assert "| 01_transfer_learning | ok | 200 | 1200 | 0/0 | `text_gain_vs_tfidf_32` 0.120 |" in text
    assert "| 02_bert_fine_tuning | over budget: wall 400 s > 300 s |" in text
    assert "| 04_federated_learning | failed |" in text
    assert "Machine:" in text and "Profile: `default`" in text


def _claim(strategy, side, statement, verdict, expected, section=""):   # an interval that gives `verdict`
    low = {"supported": 0.02, "inconclusive": 0.0, "contradicted": -0.04}[verdict]
    return {"strategy": strategy, "side": side, "statement": statement, "metric": "acc(A) - acc(B)", "value": low + 0.03,
            "ci_low": low, "ci_high": low + 0.06 - 0.05 * (verdict == "contradicted"), "threshold": 0.01,
            "higher_supports": True, "verdict": verdict, "expected": expected, "section": section}


def test_a_recorded_verdict_that_its_interval_does_not_give_is_refused(tmp_path):
    wrong = {**_claim("fine-tuning", "strength", "full FT beats frozen", "supported", "supported"), "verdict": "contradicted"}
    with pytest.raises(ValueError, match="recorded verdict 'contradicted'.*gives 'supported'"):
        run_course.write_claims_table([_row("02_bert_fine_tuning", 200, 1200, claims=[wrong])], "default", tmp_path / "c.md")


def test_claims_table_puts_each_claim_in_its_strategy_and_side(tmp_path):
    rows = [_row("02_bert_fine_tuning", 200, 1200, seed=1, claims=[
        _claim("fine-tuning", "strength", "full FT beats frozen", "supported", "supported", "Strategies compared"),
        _claim("fine-tuning", "limitation", "overfits on small data", "inconclusive", "supported"),
        _claim("fine-tuning", "beyond", "weight decay damps it", "supported", "supported")])]
    text = run_course.write_claims_table(rows, "default", tmp_path / "claims.md").read_text()
    line = next(l for l in text.splitlines() if l.startswith("| fine-tuning |"))
    strength, limitation = line.split(" | ")[1:3]
    assert "**supported**: full FT beats frozen" in strength and "(html/02_bert_fine_tuning.html#Strategies-compared)" in strength
    assert "**inconclusive** (the notebook teaches **supported**): overfits on small data" in limitation
    assert "[+0.020, +0.080], needs > +0.010" in strength
    assert "| transfer learning | not run | not run |" in text and "LEARNSTRAT_SEED 1" in text
    assert "## Beyond the article" in text and "- fine-tuning: **supported**: weight decay damps it" in text
    committed = run_course.write_claims_table(rows, "default", tmp_path / "c.md", committed=True).read_text()
    assert "(../notebooks/02_bert_fine_tuning.ipynb#Strategies-compared)" in committed
    assert "claims as expected" in run_course.write_table(rows, "default", tmp_path / "t.md").read_text()
    assert "| 2/3 |" in (tmp_path / "t.md").read_text()


def test_peak_memory_sees_a_child_process():
    with run_course.PeakMemory(interval_s=0.05) as memory:
        child = subprocess.Popen([sys.executable, "-c", "b = bytearray(200 * 2**20); import time; time.sleep(1.0)"])
        child.wait()
        time.sleep(0.1)
    assert memory.peak_bytes > 150 * 2**20


def _fake_course(monkeypatch, tmp_path, *args):
    """run_course.main() on a stand-in notebook run, with build/ in tmp_path; returns the exit status."""
    notebook = tmp_path / "01_transfer_learning.ipynb"
    notebook.write_text("{}")
    monkeypatch.setattr(run_course, "BUILD", tmp_path / "build")
    monkeypatch.setattr(run_course, "COMMITTED_CLAIMS", tmp_path / "committed_claims.md")
    monkeypatch.setattr(run_course, "machine_description", lambda: "test machine")
    monkeypatch.setattr(run_course, "run_notebook", lambda path, timeout_s: _row(path.stem, 10, 100, acc=0.5))
    monkeypatch.setattr(sys, "argv", ["run_course.py", *args, str(notebook)])
    return run_course.main()


def test_course_writes_the_table_under_build_and_leaves_the_committed_one(monkeypatch, tmp_path):
    committed = tmp_path / "committed.md"
    committed.write_text("the committed table\n")
    monkeypatch.setattr(run_course, "COMMITTED_TABLE", committed)
    assert _fake_course(monkeypatch, tmp_path) == 0
    assert committed.read_text() == "the committed table\n"
    table = (tmp_path / "build" / "benchmarks.md").read_text()
    assert "| 01_transfer_learning | ok | 10 | 100 | 0/0 | `acc` 0.500 |" in table and "test machine" in table


def test_update_committed_table_rewrites_it_when_asked(monkeypatch, tmp_path):
    committed = tmp_path / "committed.md"
    committed.write_text("the committed table\n")
    monkeypatch.setattr(run_course, "COMMITTED_TABLE", committed)
    assert _fake_course(monkeypatch, tmp_path, "--update-committed-table") == 0
    assert "| 01_transfer_learning | ok | 10 | 100 | 0/0 | `acc` 0.500 |" in committed.read_text()
    assert "| transfer learning |" in (tmp_path / "committed_claims.md").read_text()
    assert (tmp_path / "build" / "claims.md").is_file()


def test_the_committed_table_is_where_the_harness_writes_it():
    assert run_course.COMMITTED_TABLE == ROOT / "benchmarks" / "README.md"
    assert run_course.COMMITTED_TABLE.is_file()


def test_seeds_table_flags_a_verdict_that_moves_with_the_seed():
    spec = importlib.util.spec_from_file_location("run_seeds", ROOT / "benchmarks" / "run_seeds.py")
    run_seeds = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_seeds)
    good = _claim("fine-tuning", "strength", "full FT beats frozen", "supported", "supported")
    moved = {**good, "verdict": "inconclusive", "ci_low": -0.01}
    by_seed = {0: {"02_bert_fine_tuning": {"acc": 0.80, "claims": [good]}},
               1: {"02_bert_fine_tuning": {"acc": 0.84, "claims": [moved]}}}
    text, mismatches = run_seeds.table(by_seed)
    assert mismatches == 1
    assert "| 02 | full FT beats frozen | supported | supported +0.050 [+0.020, +0.080] | inconclusive **(differs)**" in text
    assert "| 02 | `acc` | 0.800 | 0.840 | 0.800 | 0.840 |" in text
