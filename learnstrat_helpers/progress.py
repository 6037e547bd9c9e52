"""Progress bars that a learner sees and a test run doesn't.

Set ``LEARNSTRAT_PROGRESS=0`` (the test and benchmark harnesses do) to silence every bar.
"""

from __future__ import annotations

import os
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_enabled() -> bool:
    """False when ``LEARNSTRAT_PROGRESS`` is 0/false/off."""
    return os.environ.get("LEARNSTRAT_PROGRESS", "1").strip().lower() not in {"0", "false", "off", "no"}


def progress(iterable: Iterable[T], *, desc: str | None = None, total: int | None = None, leave: bool = False) -> Iterable[T]:
    """``tqdm.auto`` around ``iterable`` unless progress is switched off."""
    return tqdm(iterable, desc=desc, total=total, leave=leave, disable=not progress_enabled())
