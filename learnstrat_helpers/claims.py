"""Claims vs evidence: a claim is data (statement, number with a 95% interval, margin, this run's and the taught
verdict). Explained in 01, section "Claims vs evidence: how a claim is decided"."""

import math
from dataclasses import asdict, dataclass, fields
from typing import Callable, Sequence

import numpy as np

_VERDICTS, _SIDES = ("supported", "contradicted", "inconclusive"), ("strength", "limitation", "beyond")
_STRATEGIES = ("transfer learning", "fine-tuning", "multitask learning", "federated learning")


class ClaimMismatch(AssertionError):
    """A claim's verdict in this run differs from the verdict the notebook teaches."""


@dataclass(frozen=True)
class Claim:
    """One claim: supported when the whole interval ``ci_low``..``ci_high`` lies beyond ``threshold`` on its side
    (below it if not ``higher_supports``), contradicted when on the other side, else inconclusive. ``side``: the
    article's table row (``strength``, ``limitation``, or ``beyond`` the article)."""

    strategy: str
    side: str
    statement: str
    metric: str
    value: float
    ci_low: float
    ci_high: float
    threshold: float
    expected: str
    higher_supports: bool = True
    interval: str = "paired bootstrap over test examples"
    section: str = ""

    def __post_init__(self):
        numbers = {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high, "threshold": self.threshold}
        if bad := [f"{k}={v!r}" for k, v in numbers.items() if not isinstance(v, (int, float)) or not math.isfinite(v)]:
            raise ValueError(f"claim {self.statement!r}: {', '.join(bad)} must be finite numbers.")
        if self.ci_low > self.ci_high:
            raise ValueError(f"claim {self.statement!r}: ci_low {self.ci_low} is above ci_high {self.ci_high}.")
        for name, allowed in (("expected", _VERDICTS), ("strategy", _STRATEGIES), ("side", _SIDES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"claim {self.statement!r}: {name} must be one of {allowed}, got {getattr(self, name)!r}.")

    @property
    def verdict(self) -> str:
        if self.ci_low <= self.threshold <= self.ci_high:
            return "inconclusive"
        return "supported" if (self.ci_low > self.threshold) == self.higher_supports else "contradicted"

    @property
    def evidence(self) -> str:
        """The evidence sentence, generated from the fields."""
        need = "above" if self.higher_supports else "below"
        return (f"{self.metric} = {self.value:+.3f}, 95% interval [{self.ci_low:+.3f}, {self.ci_high:+.3f}] "
                f"({self.interval}); the claim needs the interval {need} {self.threshold:+.3f}: {self.verdict}.")

    def as_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict, "evidence": self.evidence}

    @classmethod
    def from_dict(cls, recorded: dict) -> "Claim":   # a results JSON's claim; its verdict is decided again
        claim = cls(**{f.name: recorded[f.name] for f in fields(cls) if f.name in recorded})
        if recorded.get("verdict", claim.verdict) != claim.verdict:
            raise ValueError(f"claim {claim.statement!r}: recorded verdict {recorded['verdict']!r}, but its interval "
                             f"gives {claim.verdict!r}.")
        return claim

    def table_line(self, where: str) -> str:
        """The line of the claims tables (build/claims.md, the site's front page); ``where``: a link to its section."""
        mismatch = "" if self.verdict == self.expected else f" (the notebook teaches **{self.expected}**)"
        return (f"**{self.verdict}**{mismatch}: {self.statement}. {self.metric} {self.value:+.3f} [{self.ci_low:+.3f}, "
                f"{self.ci_high:+.3f}], needs {'>' if self.higher_supports else '<'} {self.threshold:+.3f} ({where})")


def bootstrap_interval(a, b=None, *, metric: Callable | None = None, labels=None, n_resamples: int = 2000,
                       seed: int = 0, confidence: float = 0.95) -> tuple[float, float, float]:
    """``(value, low, high)``: the statistic and its percentile interval over test examples resampled with replacement:
    ``mean(a) - mean(b)`` of per-example scores (1/0 correct, a loss), or ``metric(labels, a) - metric(labels, b)``
    (e.g. ROC-AUC); ``b`` None: ``a``'s alone. Both use the same indices (*paired*), so what they share cancels.
    Explained in 01, section "Claims vs evidence: how a claim is decided"."""
    a, b = np.asarray(a, dtype=float), None if b is None else np.asarray(b, dtype=float)
    if a.ndim != 1 or len(a) < 2 or (b is not None and b.shape != a.shape):
        raise ValueError(f"bootstrap_interval needs two equal-length 1-D arrays of >= 2 examples, got {a.shape} "
                         f"and {None if b is None else b.shape}.")
    if not np.isfinite(a).all() or (b is not None and not np.isfinite(b).all()):
        raise ValueError("bootstrap_interval got NaN or inf among the per-example values.")
    rng, n = np.random.default_rng(seed), len(a)
    if metric is None:
        diff = a if b is None else a - b
        stats = np.concatenate([diff[rng.integers(0, n, (min(500, n_resamples), n))].mean(1)
                                for _ in range(math.ceil(n_resamples / 500))])[:n_resamples]
        value = float(diff.mean())
    else:
        labels = np.asarray(labels)
        if labels.shape != a.shape:
            raise ValueError(f"labels have shape {labels.shape}, predictions {a.shape}.")
        score = lambda i: metric(labels[i], a[i]) - (0.0 if b is None else metric(labels[i], b[i]))  # noqa: E731
        value, stats = float(score(np.arange(n))), []
        while len(stats) < n_resamples:
            idx = rng.integers(0, n, n)
            if len(np.unique(labels[idx])) == len(np.unique(labels)):   # AUC needs every class in the resample
                stats.append(score(idx))
    low, high = np.quantile(stats, [(1 - confidence) / 2, (1 + confidence) / 2])
    return value, float(low), float(high)


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of a few independent runs (seeds, folds) with its Student-t interval, wide when
    the runs are few or disagree. Explained in 01, section "Claims vs evidence: how a claim is decided"."""
    from scipy import stats
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or len(x) < 2 or not np.isfinite(x).all():
        raise ValueError(f"mean_interval needs >= 2 finite values (one per seed or fold), got {list(x)}.")
    half = stats.t.ppf((1 + confidence) / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean()), float(x.mean() - half), float(x.mean() + half)


def _plot_claims(claims: list[Claim]) -> None:
    """One row per claim on its own scale: interval and value minus the margin, signed so right means its side."""
    import matplotlib.pyplot as plt
    colours = {"supported": "#1b9e77", "contradicted": "#d95f02", "inconclusive": "#7f7f7f"}
    fig, axes = plt.subplots(len(claims), 1, figsize=(7, 0.62 * len(claims) + 0.9), squeeze=False)
    for ax, c in zip(axes[:, 0], claims):
        sign = 1 if c.higher_supports else -1
        low, high = sorted((sign * (c.ci_low - c.threshold), sign * (c.ci_high - c.threshold)))
        ax.plot([low, high], [0, 0], color=colours[c.verdict], lw=6, solid_capstyle="butt")
        ax.plot(sign * (c.value - c.threshold), 0, "o", color="black", ms=4)
        ax.axvline(0, color="black", lw=1)
        reach = max(abs(low), abs(high), 1e-9) * 1.15
        ax.set(xlim=(-reach, reach), yticks=[])
        ax.set_title(f"{c.statement[:70]}{'...' if len(c.statement) > 70 else ''}: {c.verdict}", fontsize=8, loc="left")
        ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("value minus margin (right of 0: the claim's side); bar: 95% interval", fontsize=8)
    fig.tight_layout()
    plt.show()


def check_claims(claims: list[Claim], results=None, enforce: bool = True, plot: bool = True) -> str:
    """Print the claims table, plot each interval against its margin, record the claims in ``results``, and raise
    :class:`ClaimMismatch` naming every claim whose verdict differs from the expected one (``enforce=False``, for the
    ``quick`` profile: print only). Explained in 01, section "Claims vs evidence: how a claim is decided"."""
    if not claims:
        raise ValueError("check_claims got no claims to check.")
    table = "\n".join(f"[{c.verdict}{'' if c.verdict == c.expected else ' (expected: ' + c.expected + ')'}] "
                      f"{c.strategy}, {c.side}: {c.statement}\n    {c.evidence}" for c in claims)
    print(table)
    if plot:
        _plot_claims(claims)
    if results is not None:
        results.record_claims([c.as_dict() for c in claims])
    wrong = [c for c in claims if c.verdict != c.expected]
    if wrong and not enforce:
        print(f"{len(wrong)} verdict(s) differ from the expected ones, not enforced: this profile is too small.")
    elif wrong:
        details = "\n".join(f"- {c.strategy}: '{c.statement}': this run says {c.verdict}, the notebook teaches "
                            f"{c.expected}. {c.evidence}" for c in wrong)
        raise ClaimMismatch(
            f"{len(wrong)} claim(s) came out differently in your run:\n{details}\nWhat could explain it: another seed "
            "(LEARNSTRAT_SEED) or profile, a different machine or library version, a change to a cell above, or a "
            "claim that is simply not robust. Look at the figures and intervals above before trusting either verdict.")
    return table
