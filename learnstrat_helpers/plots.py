"""One function per kind of figure, one style (white background for light and dark themes, labelled axes, a title
that states the claim). Explained in 01, section "Text: a frozen sentence encoder"."""

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

# Colour-blind-safe palette (Okabe & Ito).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")


def use_course_style() -> None:
    """Apply the course's matplotlib style (call once per notebook)."""
    plt.rcParams.update({"figure.facecolor": "white", "axes.facecolor": "white", "savefig.facecolor": "white",
                         "figure.dpi": 100, "font.size": 10, "axes.titlesize": 11, "axes.grid": True, "grid.alpha": 0.3,
                         "axes.spines.top": False, "axes.spines.right": False, "legend.frameon": False,
                         "axes.prop_cycle": plt.cycler(color=PALETTE)})


def _axes(ax):
    return plt.subplots(figsize=(6.4, 4.0))[1] if ax is None else ax


def plot_learning_curves(sizes: Sequence[float], curves: Mapping[str, np.ndarray], *, title: str,
                         xlabel: str, ylabel: str = "accuracy", ax=None, chance: float | None = None):
    """Learning curves ``name -> [seeds, len(sizes)]``: the mean as a line, the min-max over seeds as a band, each seed
    as a dot, on a log2 x axis. Explained in 01, section "Text: a frozen sentence encoder"."""
    ax, sizes = _axes(ax), np.asarray(sizes, dtype=float)
    for (name, values), colour in zip(curves.items(), PALETTE):
        values = np.asarray(values, dtype=float)
        if values.ndim != 2 or values.shape[1] != len(sizes):
            raise ValueError(f"curve {name!r} must be [seeds, {len(sizes)}], got {values.shape}.")
        ax.plot(sizes, values.mean(0), marker="o", color=colour, label=f"{name} (mean of {len(values)} seeds)")
        ax.fill_between(sizes, values.min(0), values.max(0), color=colour, alpha=0.15, linewidth=0)
        for row in values:
            ax.scatter(sizes, row, s=10, color=colour, alpha=0.5)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle=":", label="chance")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [f"{s:g}" for s in sizes])
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.legend(loc="best")
    return ax


def plot_bars(names: Sequence[str], values: np.ndarray, *, title: str, ylabel: str, ax=None,
              reference: float | None = None, reference_label: str = ""):
    """Bars of the mean over seeds with each seed as a dot; ``values`` is [seeds, len(names)].
    Explained in 01, section "Vision: where transfer stops paying"."""
    values = np.atleast_2d(np.asarray(values, dtype=float))
    if values.shape[1] != len(names):
        raise ValueError(f"values must be [seeds, {len(names)}], got {values.shape}.")
    ax, x = _axes(ax), np.arange(len(names))
    ax.bar(x, values.mean(0), color=[PALETTE[i % len(PALETTE)] for i in x], alpha=0.8)
    for row in values:
        ax.scatter(x, row, color="black", s=10, zorder=3)
    for xi, mean in zip(x, values.mean(0)):
        ax.annotate(f"{mean:.3f}", (xi, mean), ha="center", va="bottom", fontsize=8,
                    xytext=(0, 3), textcoords="offset points")
    if reference is not None:
        ax.axhline(reference, color="grey", linestyle="--", label=reference_label)
        ax.legend()
    ax.set_xticks(x, names, rotation=15, ha="right")
    ax.set(title=title, ylabel=ylabel)
    ax.set_ylim(max(0.0, values.min() - 0.1), min(1.0, values.max() + 0.05) if values.max() <= 1 else None)
    return ax


def plot_curves(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], *, title: str, xlabel: str,
                ylabel: str = "test accuracy", ax=None, reference: float | None = None,
                reference_label: str = "", logx: bool = False):
    """Several curves ``name -> (x, y)`` on one axis (e.g. accuracy against rounds or megabytes), with an optional
    horizontal reference line (a target, or the centralised model). Explained in 04, section "Part 2: 100 clients"."""
    if not curves:
        raise ValueError("plot_curves needs at least one curve.")
    ax = _axes(ax)
    for (name, (xs, ys)), colour in zip(curves.items(), PALETTE * 3):
        if len(xs) != len(ys):
            raise ValueError(f"curve {name!r}: {len(xs)} x values but {len(ys)} y values.")
        ax.plot(xs, ys, color=colour, label=name, marker="." if len(xs) < 40 else None)
    if reference is not None:
        ax.axhline(reference, color="grey", linestyle="--", label=reference_label)
    if logx:
        ax.set_xscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.legend(loc="best", fontsize=8)
    return ax
