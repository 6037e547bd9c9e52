"""Claims vs evidence: each notebook ends by checking the article's claims against its own run.

Explained in 01, section "Claims vs evidence".
"""

from __future__ import annotations

from dataclasses import dataclass


class ClaimContradicted(AssertionError):
    """The run's numbers contradict a claim the course makes."""


@dataclass(frozen=True)
class Claim:
    """One claim, the number(s) that test it, and whether this run supports it."""

    strategy: str
    claim: str
    evidence: str
    holds: bool


def check_claims(claims: list[Claim], enforce: bool = True) -> str:
    """Print a claims-vs-evidence table; raise :class:`ClaimContradicted` naming every claim the run
    contradicts. ``enforce=False`` (the ``quick`` profile, whose runs are too small to mean anything)
    prints the table without raising. Returns the table as text.

    Explained in 01, section "Claims vs evidence".
    """
    if not claims:
        raise ValueError("check_claims got no claims to check.")
    rows = []
    for c in claims:
        rows.append(f"[{'holds' if c.holds else 'CONTRADICTED'}] {c.strategy}: {c.claim}\n    evidence: {c.evidence}")
    table = "\n".join(rows)
    print(table)
    failed = [c for c in claims if not c.holds]
    if failed and not enforce:
        print(f"{len(failed)} claim(s) not supported, not enforced: this profile is too small to test claims.")
    elif failed:
        details = "\n".join(f"- {c.strategy}: '{c.claim}' is contradicted by this run: {c.evidence}" for c in failed)
        raise ClaimContradicted(
            f"{len(failed)} claim(s) not supported by this run:\n{details}\n"
            "Look at the figures above: a different seed or profile, a bug, or a claim that is not true here."
        )
    return table
