"""`make check`, the workshop pre-flight: what it reports when something is missing, and its time estimate."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("preflight", ROOT / "scripts" / "preflight.py")
preflight = importlib.util.module_from_spec(spec)
spec.loader.exec_module(preflight)


def test_a_missing_package_is_named_with_the_fix(monkeypatch, capsys):
    monkeypatch.setattr(preflight, "PACKAGES", ("json", "no_such_package_xyz"))
    problems = preflight.check_packages()
    assert len(problems) == 1 and "no_such_package_xyz" in problems[0] and "make setup" in problems[0]
    assert "ok  json" in capsys.readouterr().out


def test_missing_assets_offline_are_reported(monkeypatch):
    from learnstrat_helpers import assets
    monkeypatch.setattr(assets, "is_offline", lambda: True)
    monkeypatch.setattr(assets, "resolve_fashion_mnist_folder", lambda: None)
    monkeypatch.setattr(assets, "resolve_dataset_folder", lambda name, files: None)
    problems = preflight.check_assets()
    assert any(p.startswith("Fashion-MNIST: offline") for p in problems)
    assert any(p.startswith("SST-2: offline") for p in problems)


def test_the_estimate_scales_the_recorded_run(monkeypatch, tmp_path, capsys):
    table = tmp_path / "README.md"
    table.write_text("| notebook | status | wall (s) |\n|---|---|---:|\n| 01_transfer_learning | ok | 100 | 1200 |\n"
                     "| 02_bert_fine_tuning | over budget: wall 400 s > 300 s | 400 | 1500 |\n")
    reference = tmp_path / "calibration.json"
    reference.write_text(json.dumps({"step_s": 0.1}))
    monkeypatch.setattr(preflight, "TABLE", table)
    monkeypatch.setattr(preflight, "REFERENCE", reference)
    assert preflight.recorded_walls() == {"01_transfer_learning": 100.0, "02_bert_fine_tuning": 400.0}
    monkeypatch.setattr(preflight, "calibrate", lambda: 0.2)
    monkeypatch.setattr(preflight, "check_assets", lambda: [])
    monkeypatch.setattr(preflight, "check_memory", lambda: [])
    monkeypatch.setattr("sys.argv", ["preflight.py"])
    assert preflight.main() == 0
    out = capsys.readouterr().out
    assert "2.00x the reference" in out and "01_transfer_learning: about 3.3 min" in out and "READY" in out
