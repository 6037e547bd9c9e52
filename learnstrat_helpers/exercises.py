"""The exercises' check cells: one verdict per check, shown as a coloured box, that never stops "Run all".
Every notebook's section "Exercises" uses it: the check cell defines a test that calls the learner's code on
fresh random inputs and raises ``AssertionError`` with what is wrong; :func:`check` turns the outcome into one of
three verdicts, whose text starts with "✓ correct", "not answered yet" or "✗ not right yet"."""

from __future__ import annotations

import html
from typing import Any, Callable

_COLOURS = {"✓": "#1a7f37", "n": "#9a6700", "✗": "#cf222e"}   # readable on light and dark backgrounds


class _Verdict:
    """Shown as a bordered box in Jupyter (HTML), as its plain text everywhere else (and in tests)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        colour = _COLOURS[self.text[0]]
        return (f'<div style="border:2px solid {colour};border-left-width:8px;padding:6px 10px;margin:4px 0">'
                f'<b style="color:{colour}">{html.escape(self.text)}</b></div>')


def answered(value: Any) -> Any:
    """``value``, or "not answered yet" for a check when it is still ``None`` (the answer cell's stub)."""
    if value is None:
        raise NotImplementedError("the answer is still None")
    return value


def check(test: Callable[[], str], *, hint: str, todo: str = "write your answer above, then run this cell again") -> None:
    """Run ``test`` (it returns a confirmation, or raises ``AssertionError`` saying what is wrong) and show the
    verdict: "✓ correct: ...", "not answered yet: <todo>" (the learner's stub raised ``NotImplementedError``)
    or "✗ not right yet: <what> Hint: <hint>" (a failed assertion or any other error). Never raises: a wrong
    answer must not stop the cells after it (nor is the verdict returned: it would show twice)."""
    try:
        text = f"✓ correct: {test()}"
    except NotImplementedError:
        text = f"not answered yet: {todo}"
    except AssertionError as error:
        text = f"✗ not right yet: {error} Hint: {hint}"
    except Exception as error:   # the learner's code crashed: say how, without a traceback that stops Run all
        text = f"✗ not right yet: your code raised {type(error).__name__}: {error} Hint: {hint}"
    from IPython.display import display   # only here: importing the package stays free of IPython
    display(_Verdict(text))
