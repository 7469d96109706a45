"""Plot helpers draw what they are given, label axes with units and name every curve."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from simulations import plots  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_latency_vs_load_with_theory() -> None:
    load = [0.5, 0.7, 0.9]
    ax = plots.latency_vs_load(load, [2.0, 3.3, 10.0], ci=[0.1, 0.2, 1.0], label="M/M/1 sim",
                               theory=(load, [2.0, 3.33, 10.0]), theory_label="1/(μ−λ)")
    assert set(_legend(ax)) == {"M/M/1 sim", "1/(μ−λ)"}
    assert "(s)" in ax.get_ylabel() and "load" in ax.get_xlabel()
    plots.latency_vs_load(load, [1.0, 1.2, 2.0], label="M/M/2 sim", ax=ax)
    assert "M/M/2 sim" in _legend(ax)


def test_cdf_and_ccdf() -> None:
    x = np.random.default_rng(0).exponential(1.0, 1_000)
    ax = plots.cdf({"exp": x})
    line = ax.lines[0]
    assert line.get_ydata()[-1] == pytest.approx(1.0) and ax.get_ylabel() == "P(X ≤ x)"
    ax = plots.cdf({"exp": x, "slow": 2 * x}, complementary=True)
    assert ax.get_yscale() == "log" and _legend(ax) == ["exp", "slow"]
    assert min(ax.lines[0].get_ydata()) > 0  # no zero on a log axis


def test_time_series_shades_windows_once_in_the_legend() -> None:
    t = np.arange(10.0)
    ax = plots.time_series(t, {"p99": t**2, "goodput": t}, ylabel="p99 latency (s)",
                           windows=[(2.0, 3.0), (6.0, 7.0)])
    assert _legend(ax) == ["fault window", "p99", "goodput"]
    assert len(ax.patches) == 2 and ax.get_xlabel() == "time (s)"


def test_tradeoff_annotates_points() -> None:
    ax = plots.tradeoff({"breaker": ([1, 2], [0.5, 0.1])}, xlabel="false trips per hour",
                        ylabel="p99 latency (s)", annotations={"breaker": ["5 s", "30 s"]})
    assert [a.get_text() for a in ax.texts] == ["5 s", "30 s"]
    assert _legend(ax) == ["breaker"]
