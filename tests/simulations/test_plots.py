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


def test_dashboard_stacks_panels_on_one_time_axis_with_one_legend() -> None:
    t = np.arange(10.0)
    axes = plots.dashboard(t, {
        "p99 latency (s)": {"no breaker": t, "breaker": t / 2},
        "goodput (req/s)": {"breaker": 10 - t, "no breaker": 10 - 2 * t},
        "fallbacks (req/s)": {"breaker + fallback": t},
    }, windows=[(2.0, 4.0)], window_label="outage (hang)")
    assert [ax.get_ylabel().replace("\n", " ") for ax in axes] == [
        "p99 latency (s)", "goodput (req/s)", "fallbacks (req/s)"]
    assert _legend(axes[0]) == ["outage (hang)", "no breaker", "breaker"]
    assert axes[1].get_legend() is None  # its curves are named above
    assert "breaker + fallback" in _legend(axes[2])  # a new name gets a legend
    colour = {line.get_label(): line.get_color() for line in axes[0].lines}
    assert {line.get_label(): line.get_color() for line in axes[1].lines} == colour
    assert all(len(ax.patches) == 1 for ax in axes)  # the window is shaded in every panel
    assert axes[0].get_shared_x_axes().joined(axes[0], axes[2])
    assert axes[-1].get_xlabel() == "time (s)" and axes[0].get_xlabel() == ""
    with pytest.raises(ValueError, match="at least one panel"):
        plots.dashboard(t, {})


def test_dashboard_wraps_long_y_labels_inside_their_panel_and_aligns_them() -> None:
    plots.use_style()
    labels = ["p99 latency (s)", "fallback answers (req/s)", "refused by the breaker (req/s)",
              "calls refused by the breaker per second (req/s)", "busy workers"]
    t = np.arange(60.0)
    axes = plots.dashboard(t, {label: {"run": t} for label in labels})
    axes[0].figure.canvas.draw()
    renderer = axes[0].figure.canvas.get_renderer()
    for ax, label in zip(axes, labels, strict=True):
        assert " ".join(ax.get_ylabel().split()) == label  # broken at spaces, nothing lost
        text, panel = ax.yaxis.label.get_window_extent(renderer), ax.get_window_extent(renderer)
        assert panel.y0 <= text.y0 and text.y1 <= panel.y1, label  # clear of its neighbours
    assert len({round(ax.yaxis.label.get_window_extent(renderer).x1) for ax in axes}) == 1


def test_tradeoff_draws_interval_bars_only_where_given() -> None:
    ax = plots.tradeoff({"a": ([1, 2], [1.0, 2.0]), "b": ([1, 2], [3.0, 4.0])},
                        xlabel="x (s)", ylabel="y (s)",
                        ci={"a": [0.1, np.nan], "b": [np.nan, np.nan]})
    assert _legend(ax) == ["a", "b"]  # bars add no legend entries
    (bars,) = ax.collections  # only curve "a" has a finite half-width
    assert bars.get_segments()[0].tolist() == [[1.0, 0.9], [1.0, 1.1]]
    assert bars.get_color().tolist() == [list(matplotlib.colors.to_rgba(ax.lines[0].get_color()))]


def _curves(ax) -> list:
    return [line for line in ax.lines if not line.get_label().startswith("_")]


def _sweep_rows(ci: bool) -> list[dict[str, float | str]]:
    rows = []
    for policy in ("none", "jitter"):
        for load in (0.5, 0.9, 1.2):
            row: dict[str, float | str] = {"policy": policy, "load": load,
                                           "p99_s": load * 2, "goodput_rps": 10 / load}
            if ci:
                row |= {"p99_s_ci": 0.1, "goodput_rps_ci": 0.5}
            rows.append(row)
    return rows


def test_sweep_panels_one_panel_per_metric_one_line_per_group() -> None:
    ylabels = {"p99_s": "p99 latency (s)", "goodput_rps": "goodput (req/s)"}
    axes = plots.sweep_panels(_sweep_rows(ci=True), x="load", by="policy",
                              metrics=["p99_s", "goodput_rps"], xlabel="offered load ρ",
                              ylabels=ylabels,
                              group_label=lambda g: f"policy = {g}", log_y=["p99_s"])
    assert len(axes) == 2 and len(axes[0].figure.axes) == 2
    assert [ax.get_ylabel() for ax in axes] == ["p99 latency (s)", "goodput (req/s)"]
    assert all(ax.get_xlabel() == "offered load ρ" for ax in axes)
    assert [ax.get_yscale() for ax in axes] == ["log", "linear"]
    for ax in axes:
        assert _legend(ax) == ["policy = none", "policy = jitter"]
        assert [line.get_color() for line in _curves(ax)] == list(plots.COLORS[:2])
        assert len(ax.collections) == 2  # one set of interval bars per line
    jitter = _curves(axes[1])[1]
    assert jitter.get_xdata().tolist() == [0.5, 0.9, 1.2]
    assert jitter.get_ydata().tolist() == pytest.approx([20.0, 10 / 0.9, 10 / 1.2])


def test_sweep_panels_without_ci_columns_or_groups_draws_no_bars() -> None:
    rows = _sweep_rows(ci=False)
    axes = plots.sweep_panels(rows, x="load", by=None, metrics=["p99_s"], xlabel="load",
                              ylabels={"p99_s": "p99 latency (s)"}, group_label=lambda _: "all")
    assert len(axes) == 1 and _legend(axes[0]) == ["all"]
    assert len(axes[0].lines) == 1 and len(axes[0].lines[0].get_xdata()) == len(rows)
    assert len(axes[0].collections) == 0


def test_sweep_panels_names_bad_input() -> None:
    rows = _sweep_rows(ci=False)
    with pytest.raises(ValueError, match="'latency_s'"):
        plots.sweep_panels(rows, x="load", by="policy", metrics=["latency_s"], xlabel="load",
                           ylabels={"latency_s": "latency (s)"})
    with pytest.raises(ValueError, match="missing goodput_rps"):
        plots.sweep_panels(rows, x="load", by="policy", metrics=["p99_s", "goodput_rps"],
                           xlabel="load", ylabels={"p99_s": "p99 latency (s)"})
    with pytest.raises(ValueError, match="needs rows and metrics"):
        plots.sweep_panels([], x="load", by="policy", metrics=["p99_s"], xlabel="load",
                           ylabels={"p99_s": "p99 latency (s)"})


def test_the_style_sheet_holds_the_house_colours_and_frame() -> None:
    with plt.style.context(plots.STYLE):
        assert plt.rcParams["axes.prop_cycle"].by_key()["color"] == list(plots.COLORS)
        assert plt.rcParams["axes.grid"] and not plt.rcParams["axes.spines.top"]
        _, ax = plt.subplots()  # drawn with plt directly, not through the toolkit
        assert not ax.spines["right"].get_visible()
        assert all(line.get_visible() for line in ax.xaxis.get_gridlines())


def test_log_scale_rules_decades_with_minor_ticks_at_2_and_5() -> None:
    ax = plots.new_axes()
    ax.plot([0.01, 10.0], [1.0, 1000.0])
    assert plots.log_scale(ax, "both") is ax
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    ax.figure.canvas.draw()
    minor = ax.xaxis.get_minorticklocs()
    inside = minor[(minor > 0.01) & (minor < 10)]
    assert np.allclose(inside, [0.02, 0.05, 0.2, 0.5, 2, 5])
    assert np.allclose(ax.yaxis.get_majorticklocs()[1:-1], [1, 10, 100, 1000])
    labels = [label.get_text() for label in ax.xaxis.get_majorticklabels()]
    assert labels[1:-1] == ["10\u207b\u00b2", "10\u207b\u00b9", "10\u2070", "10\u00b9"]
    assert not any("$" in label.get_text() for label in ax.xaxis.get_minorticklabels())
    with pytest.raises(ValueError, match=r"axis must be 'x', 'y' or 'both' \(got 'z'\)"):
        plots.log_scale(ax, "z")


def test_log_scale_labels_a_narrow_span_and_other_bases_in_plain_text() -> None:
    ax = plots.new_axes()
    ax.plot([2.0, 4.5], [1.0, 3.0])
    plots.log_scale(ax, "x")  # under one decade: matplotlib labels the minor ticks instead
    ax.figure.canvas.draw()
    shown = [label.get_text() for label in ax.xaxis.get_minorticklabels() if label.get_text()]
    assert "2\u00d710\u2070" in shown and "4\u00d710\u2070" in shown
    _, bx = plots.plt.subplots()
    bx.plot([1.0, 64.0], [1.0, 2.0])
    plots.log_scale(bx, "x", base=2)
    bx.figure.canvas.draw()
    assert [label.get_text() for label in bx.xaxis.get_majorticklabels()][1:-1] == [
        "2\u2070", "2\u00b9", "2\u00b2", "2\u00b3", "2\u2074", "2\u2075", "2\u2076"]
    assert len(bx.xaxis.get_minorticklocs()) == 0


def test_importing_the_studies_leaves_matplotlib_unloaded() -> None:
    """The grader imports a lesson's study in a fresh process for every exercise it runs and
    never draws: matplotlib, about a second of each such import, waits for the first plot."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    studies = sorted(".".join(p.relative_to(root).with_suffix("").parts)
                     for p in (root / "simulations").rglob("*.py")
                     if p.name not in ("__init__.py", "__main__.py"))
    code = (f"import importlib, sys\nfor name in {studies!r}:\n    importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                            text=True, check=True).stdout.strip()
    assert len(studies) > 40 and loaded == "[]", loaded
    from simulations import plots as fresh  # ``plots.plt`` still reaches pyplot on first use

    assert fresh.plt is plt
