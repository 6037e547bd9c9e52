"""The course site: it builds offline from the notebooks, and every page opens in a real browser (headless
chromium) with no broken page, image, internal link or console error. Screenshots stay in build/."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_site, check_site = _script("build_site"), _script("check_site")


def test_the_site_builds_and_every_page_loads_in_chromium(tmp_path):
    # The executed notebooks of `make course` when it has run, else the stripped ones: the structure is the same.
    assert build_site.build_site(ROOT / "build", tmp_path / "site", tmp_path / "src") == 0
    pages = {p.name for p in check_site.pages_of(tmp_path / "site")}
    assert {"index.html", "which_strategy.html", "benchmarks.html", "glossary.html", "sections.html", "seeds.html",
            "facilitator.html"} <= pages
    assert {f"{stem}.html" for stem in build_site.TITLES} <= pages
    shots = ROOT / "build" / "site-screenshots"
    assert check_site.check_site(tmp_path / "site", shots) == []
    assert (shots / "index.html.png").stat().st_size > 10_000


def test_the_checker_finds_a_broken_image_link_anchor_and_console_error(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "good.html").write_text('<html><head><title>good</title></head><body><h1 id="top">ok</h1></body></html>')
    (site / "index.html").write_text(
        '<html><head><title>bad</title></head><body><img src="missing.png">'
        '<a href="nowhere.html">x</a><a href="good.html#bottom">y</a><a href="good.html#top">z</a>'
        '<script>console.error("boom")</script></body></html>')
    problems = check_site.check_site(site, tmp_path / "shots")
    text = "\n".join(problems)
    assert "index.html: image does not load" in text and "missing.png" in text
    assert "broken link to nowhere.html" in text
    assert "missing anchor #bottom in good.html" in text and "#top" not in text
    assert "console SEVERE" in text and "boom" in text
    assert not any(p.startswith("good.html") for p in problems)
    assert (tmp_path / "shots" / "good.html.png").is_file()


def test_the_front_page_carries_the_claims_and_the_measured_times(tmp_path):
    build = tmp_path / "build"
    (build / "results").mkdir(parents=True)
    claim = {"strategy": "fine-tuning", "side": "strength", "statement": "full FT beats frozen", "metric": "acc diff",
             "value": 0.05, "ci_low": 0.02, "ci_high": 0.08, "threshold": 0.01, "higher_supports": True,
             "verdict": "supported", "expected": "supported", "section": "Strategies: what to unfreeze"}
    (build / "results" / "02_bert_fine_tuning.json").write_text(
        json.dumps({"profile": "default", "wall_s": 123.4, "peak_rss_mb": 1500.0, "claims": [claim]}))
    src = build_site.stage(build, tmp_path / "src")
    index = (src / "index.md").read_text()
    assert "| 02 | [Fine-tuning BERT](02_bert_fine_tuning.ipynb) | 123 | 1500 | 1/1 |" in index
    assert "**supported**: full FT beats frozen" in index
    assert "(02_bert_fine_tuning.ipynb#strategies-what-to-unfreeze)" in index
    assert "| 01 | [Transfer learning](01_transfer_learning.ipynb) | not run | not run | not run |" in index
    guide = (src / "which_strategy.md").read_text()
    assert "*fine-tuning/strength*: **supported**: full FT beats frozen" in guide
    assert "<!--" not in index and "<!--" not in guide
    assert "colab-badge.svg" not in (src / "01_transfer_learning.ipynb").read_text()   # no remote images


def test_section_times_add_up_each_sections_cells(tmp_path):
    def code(busy, idle):
        return {"cell_type": "code", "source": "x", "metadata": {"execution": {
            "iopub.status.busy": f"2026-01-01T00:00:{busy:02d}.000000Z", "iopub.status.idle": f"2026-01-01T00:00:{idle:02d}.000000Z"}}}
    cells = [{"cell_type": "markdown", "source": "# Title", "metadata": {}}, code(0, 2),
             {"cell_type": "markdown", "source": ["## Data\n", "text"], "metadata": {}}, code(2, 5), code(5, 15),
             {"cell_type": "markdown", "source": "## Claims", "metadata": {}}, code(15, 16)]
    notebook = tmp_path / "nb.ipynb"
    notebook.write_text(json.dumps({"cells": cells}))
    assert build_site.section_times(notebook) == [("(before the first section)", 2.0), ("Data", 13.0), ("Claims", 1.0)]
