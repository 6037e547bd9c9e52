"""Headline numbers of a run in ``build/results/<notebook stem>.json`` (names to numbers, ``profile``, ``seed``,
``claims``), so anything outside can re-check a verdict. Explained in 01, section "Claims vs evidence"."""

import json
import math
import os
from pathlib import Path


def _results_dir() -> Path:
    """``$LEARNSTRAT_RESULTS_DIR``, else ``build/results`` in the clone (or the current folder)."""
    value, clone = os.environ.get("LEARNSTRAT_RESULTS_DIR", "").strip(), Path(__file__).resolve().parents[1]
    if value:
        return Path(value).expanduser()
    return (clone if (clone / "pyproject.toml").is_file() else Path.cwd()) / "build" / "results"


class Results:
    """Record a notebook's headline numbers; each ``record`` rewrites the JSON file at once, so a run that stops halfway
    still leaves what it measured. Explained in 01, section "Claims vs evidence"."""

    def __init__(self, notebook: str, profile: str, folder: Path | None = None, seed: int = 0):
        if not notebook or "/" in notebook or notebook.endswith(".ipynb"):
            raise ValueError(f"notebook must be a notebook's stem like '01_transfer_learning', got {notebook!r}.")
        self.notebook, self.profile, self.seed = notebook, profile, seed
        self.path = Path(folder or _results_dir()) / f"{notebook}.json"
        self.values: dict[str, float] = {}
        self.claims: list[dict] = []

    def record(self, name: str, value) -> float:
        """Store ``value`` (a finite number) under ``name`` and write the file; returns the number."""
        if not name.isidentifier():
            raise ValueError(f"result names are identifiers like 'val_acc_largest', got {name!r}.")
        if not math.isfinite(number := float(value)):
            raise ValueError(f"result {name!r} is {number}: a run that produced NaN/inf needs fixing, not recording.")
        self.values[name] = number
        self._write()
        return number

    def record_claims(self, claims: list[dict]) -> None:
        """Store the notebook's claims (``Claim.as_dict()`` each, see ``claims.check_claims``) and write the file."""
        self.claims = list(claims)
        self._write()

    def __getitem__(self, name: str) -> float:
        return self.values[name]

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # This run's numbers only: the harness adds wall_s and peak_rss_mb after the notebook ends, so an earlier
        # run's timings never sit beside another run's (or another profile's) numbers.
        merged = {**self.values, "profile": self.profile, "seed": self.seed, "claims": self.claims}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
        tmp.replace(self.path)
