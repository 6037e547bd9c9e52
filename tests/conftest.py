"""Shared test set-up: quick profile, no progress bars, no network, caches and results in temp folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def session_cache_dir(tmp_path_factory) -> Path:
    """One cache folder for the whole run, so embeddings computed once are reused, and data/cache stays clean."""
    return tmp_path_factory.mktemp("learnstrat-cache")


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path_factory, session_cache_dir):
    monkeypatch.setenv("LEARNSTRAT_PROFILE", "quick")
    monkeypatch.setenv("LEARNSTRAT_PROGRESS", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("LEARNSTRAT_CACHE_DIR", str(session_cache_dir))
    monkeypatch.setenv("LEARNSTRAT_RESULTS_DIR", str(tmp_path_factory.mktemp("results")))
    # Arrow files that `datasets` writes for local JSON go to the session's temp folder, not ~/.cache.
    # (datasets reads this once, when first imported; the value is the same for the whole session.)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(session_cache_dir / "hf-datasets"))
    monkeypatch.setenv("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    yield


@pytest.fixture
def shared_data() -> Path:
    """The read-only benchmark data: $LEARNSTRAT_DATA_DIR, else ../shared/data beside the clone."""
    value = os.environ.get("LEARNSTRAT_DATA_DIR", "").strip()
    folder = Path(value).expanduser() if value else Path(__file__).resolve().parents[2] / "shared" / "data"
    if not folder.is_dir():
        pytest.skip(f"no shared benchmark data at {folder} (set LEARNSTRAT_DATA_DIR to the folder holding sst2/)")
    return folder
