"""Each figure function draws small inputs and rejects wrongly shaped ones."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from learnstrat_helpers import plots  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    before = set(plt.get_fignums())
    yield
    for num in set(plt.get_fignums()) - before:
        plt.close(num)


@pytest.fixture
def restore_rcparams():
    saved = matplotlib.rcParams.copy()
    yield
    matplotlib.rcParams.update(saved)


def test_use_course_style(restore_rcparams):
    plots.use_course_style()
    assert matplotlib.rcParams["axes.facecolor"] == "white"
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    assert [c.lower() for c in colours] == [c.lower() for c in plots.PALETTE]


def test_plot_learning_curves():
    sizes = [8, 32, 128]
    curves = {"frozen": np.array([[0.6, 0.7, 0.8], [0.62, 0.71, 0.79]]), "scratch": np.array([[0.5, 0.55, 0.7]])}
    ax = plots.plot_learning_curves(sizes, curves, title="t", xlabel="examples per class", chance=0.5)
    assert isinstance(ax, Axes)
    assert ax.get_title() == "t" and ax.get_xlabel() == "examples per class" and ax.get_ylabel() == "accuracy"
    assert ax.get_xscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["frozen (mean of 2 seeds)", "scratch (mean of 1 seeds)", "chance"]
    assert np.allclose(ax.lines[0].get_ydata(), [0.61, 0.705, 0.795])


def test_plot_learning_curves_draws_on_a_given_axes():
    fig, ax = plt.subplots()
    assert plots.plot_learning_curves([1, 2], {"a": np.ones((1, 2))}, title="t", xlabel="x", ax=ax) is ax


@pytest.mark.parametrize("values", [np.ones((2, 2)), np.ones(3), np.ones((2, 3, 1))])
def test_plot_learning_curves_wrong_shape(values):
    with pytest.raises(ValueError, match=r"curve 'a' must be \[seeds, 3\]"):
        plots.plot_learning_curves([1, 2, 4], {"a": values}, title="t", xlabel="x")


def test_plot_bars():
    values = np.array([[0.8, 0.6, 0.7], [0.82, 0.58, 0.72]])
    ax = plots.plot_bars(["a", "b", "c"], values, title="bars", ylabel="accuracy", reference=0.75,
                         reference_label="baseline")
    assert isinstance(ax, Axes) and ax.get_title() == "bars"
    heights = [p.get_height() for p in ax.patches]
    assert np.allclose(heights, [0.81, 0.59, 0.71])
    assert [t.get_text() for t in ax.texts] == ["0.810", "0.590", "0.710"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert ax.get_ylim()[1] <= 1.0


def test_plot_bars_one_seed_as_1d_and_values_above_one():
    ax = plots.plot_bars(["x", "y"], np.array([3.0, 5.0]), title="t", ylabel="seconds")
    assert np.allclose([p.get_height() for p in ax.patches], [3.0, 5.0])
    assert ax.get_ylim()[1] >= 5.0


@pytest.mark.parametrize("values", [np.ones((2, 2)), np.ones(4)])
def test_plot_bars_wrong_shape(values):
    with pytest.raises(ValueError, match=r"values must be \[seeds, 3\]"):
        plots.plot_bars(["a", "b", "c"], values, title="t", ylabel="y")


def test_curves_draw_and_check_shapes():
    ax = plots.plot_curves({"x": ([1, 2, 3], [0.1, 0.5, 0.7])}, title="t", xlabel="round", reference=0.8)
    assert isinstance(ax, Axes) and len(ax.lines) == 2
    with pytest.raises(ValueError, match="x values"):
        plots.plot_curves({"x": ([1, 2], [0.1])}, title="t", xlabel="round")
