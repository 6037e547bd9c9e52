"""learnstrat_helpers.exercises: the three verdicts of a check cell, none of which raises."""

from __future__ import annotations

import pytest

from learnstrat_helpers import exercises
from learnstrat_helpers.exercises import _Verdict


def _stub():
    raise NotImplementedError("your code here")


def _wrong():   # raised by hand: pytest rewrites this file's assert statements, and their messages
    raise AssertionError("the sum is off.")


def _crash():
    return {}["missing"]


@pytest.mark.parametrize("test, start, colour", [
    (lambda: "the sum is 2.", "✓ correct: the sum is 2.", "#1a7f37"),
    (_stub, "not answered yet: write it, then run again.", "#9a6700"),
    (lambda: exercises.answered(None), "not answered yet: write it, then run again.", "#9a6700"),
    (_wrong, "✗ not right yet: the sum is off. Hint: add.", "#cf222e"),
    (_crash, "✗ not right yet: your code raised KeyError: 'missing' Hint: add.", "#cf222e"),
])
def test_check_shows_one_verdict_and_never_raises(test, start, colour, capsys):
    assert exercises.check(test, hint="add.", todo="write it, then run again.") is None
    shown = capsys.readouterr().out
    assert shown == start + "\n"
    assert colour in _Verdict(start)._repr_html_()


def test_answered_passes_a_value_through():
    assert exercises.answered((3, 0.7)) == (3, 0.7)
    assert exercises.answered(0) == 0   # a falsy answer is still an answer


def test_the_html_box_escapes_the_text():
    assert "&lt;b&gt;" in _Verdict("✗ not right yet: <b>")._repr_html_()
