"""The course's standard plots, in one consistent style.

Like a house style for a newspaper's charts: the same colours for the same roles, units on every
axis, a legend naming every curve, theory drawn as a black dashed line and fault windows shaded
grey. Each function takes data (arrays or tables) and returns the matplotlib ``Axes`` it drew on
(pass ``ax=`` to draw several things on one figure); none of them calls ``plt.show()``.
"""

from __future__ import annotations

import functools
import textwrap
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["COLORS", "STYLE", "cdf", "dashboard", "latency_vs_load", "log_scale", "new_axes",
           "sweep_panels", "time_series", "tradeoff", "use_style"]

COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442")
"""Okabe-Ito colours, distinguishable with common colour-vision deficiencies."""

THEORY = {"color": "black", "linestyle": "--", "linewidth": 1.2}
WINDOW = {"color": "0.5", "alpha": 0.2, "linewidth": 0}


STYLE = "simulations.course"
"""The house style sheet, ``simulations/course.mplstyle``: these colours, a light grid, no
top/right frame, constrained layout."""


INLINE_PNG = {"bbox_inches": None, "pil_kwargs": {"compress_level": 1}}
"""How the notebook renders a figure: the whole figure, as constrained layout placed it (the
inline backend's default ``bbox_inches="tight"`` lays the figure out a second time to crop it,
a third of a redraw), and the fastest zlib level (the default level spends a fifth of a
redraw compressing the PNG)."""


def __getattr__(name: str) -> Any:
    """``plots.plt`` is ``matplotlib.pyplot``, imported on first use: the grader imports the
    studies in a fresh process for every exercise and never draws, and matplotlib is most of
    what such an import would cost."""
    if name == "plt":
        import matplotlib.pyplot

        return matplotlib.pyplot
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def use_style() -> None:
    """Apply the house style to every later figure, and draw inline figures at twice the pixel
    density (sharp on HiDPI screens), rendered as ``INLINE_PNG`` says. Each lesson's card cell
    calls this once."""
    import matplotlib.pyplot as plt

    plt.style.use(STYLE)
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:
        return
    if get_ipython() is not None:
        set_matplotlib_formats("retina", **INLINE_PNG)


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _plain_log_label(label: str) -> str:
    """matplotlib's log-axis label (mathtext, ``$\\mathdefault{2\\times10^{-3}}$``) as plain
    text (``2×10⁻³``)."""
    import re

    text = label.removeprefix("$\\mathdefault{").removesuffix("}$").replace("\\times", "×")
    return re.sub(r"\^\{(-?\d+)\}", lambda power: power[1].translate(_SUPERSCRIPT),
                  text).replace("-", "\u2212")


def log_scale(ax: Axes, axis: str = "y", base: float = 10) -> Axes:
    """Put ``axis`` (``"x"``, ``"y"`` or ``"both"``) of ``ax`` on a log scale ruled like log
    paper: a labelled tick at each power of ``base``, and for base 10 unlabelled ticks at 2 and
    5 times it; labels are plain text (``10³``).

    matplotlib's default rules every integer multiple (eight minor ticks a decade) and typesets
    each label as mathematics; the two take about half the time to redraw a figure with log
    axes."""
    from matplotlib.ticker import LogLocator, NullLocator

    if axis not in ("x", "y", "both"):
        raise ValueError(f"log_scale: axis must be 'x', 'y' or 'both' (got {axis!r})")
    plain = _plain_log_formatter()
    for name in ("x", "y") if axis == "both" else (axis,):
        getattr(ax, f"set_{name}scale")("log", base=base)
        scale = getattr(ax, f"{name}axis")
        scale.set_minor_locator(LogLocator(base, subs=(2.0, 5.0)) if base == 10 else NullLocator())
        scale.set_major_formatter(plain(base))
        scale.set_minor_formatter(plain(base, labelOnlyBase=False))
    return ax


@functools.cache
def _plain_log_formatter() -> type:
    """matplotlib's log-axis formatter, writing its labels as plain text (defined on first use:
    the studies import this module without matplotlib)."""
    from matplotlib.ticker import LogFormatterSciNotation

    class PlainLogFormatter(LogFormatterSciNotation):
        def __call__(self, x: float, pos: int | None = None) -> str:
            return _plain_log_label(super().__call__(x, pos))

    return PlainLogFormatter


def new_axes(ax: Axes | None = None, figsize: tuple[float, float] = (6.4, 4.0)) -> Axes:
    """Return ``ax`` (or a fresh one) with the house style: light grid, no top/right frame."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=figsize, layout="constrained")
        ax.set_prop_cycle(color=COLORS)
    ax.grid(True, alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    return ax


def latency_vs_load(
    load: Sequence[float],
    latency: Sequence[float],
    *,
    label: str,
    ci: Sequence[float] | None = None,
    theory: tuple[Sequence[float], Sequence[float]] | None = None,
    theory_label: str = "theory",
    ax: Axes | None = None,
    xlabel: str = "offered load ρ = λ / (c μ)",
    ylabel: str = "mean latency (s)",
    log_y: bool = False,
) -> Axes:
    """The "hockey stick": simulated latency vs offered load, with CI bars and a theory curve."""
    ax = new_axes(ax)
    ax.errorbar(load, latency, yerr=ci, marker="o", markersize=4, capsize=3, label=label)
    if theory is not None:
        ax.plot(*theory, label=theory_label, **THEORY)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    if log_y:
        log_scale(ax, "y")
    ax.legend()
    return ax


def cdf(
    samples: Mapping[str, Sequence[float]],
    *,
    complementary: bool = False,
    theory: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
    ax: Axes | None = None,
    xlabel: str = "latency (s)",
    log_x: bool = False,
) -> Axes:
    """Empirical CDF (or CCDF, P(X > x), on a log y axis to show the tail) of each sample."""
    ax = new_axes(ax)
    for name, values in samples.items():
        x = np.asarray(values, dtype=float)
        x = x[~np.isnan(x)]
        if complementary:  # drop the last step, where P(X > x) = 0 has no place on a log axis
            x = np.sort(x)
            ax.step(x[:-1], 1.0 - np.arange(1, len(x)) / len(x), where="post", label=name)
        else:
            ax.ecdf(x, label=name)
    for name, (x, p) in (theory or {}).items():
        ax.plot(x, p, label=name, **THEORY)
    ax.set(xlabel=xlabel, ylabel="P(X > x)" if complementary else "P(X ≤ x)")
    if complementary:
        log_scale(ax, "y")
    if log_x:
        log_scale(ax, "x")
    ax.legend()
    return ax


def time_series(
    times: Sequence[float],
    series: Mapping[str, Sequence[float]],
    *,
    ylabel: str,
    windows: Sequence[tuple[float, float]] = (),
    window_label: str = "fault window",
    ax: Axes | None = None,
    xlabel: str = "time (s)",
) -> Axes:
    """Curves over time (e.g. p99 per bin) with failure windows shaded."""
    ax = new_axes(ax)
    for i, (start, end) in enumerate(windows):
        ax.axvspan(start, end, label=window_label if i == 0 else None, **WINDOW)
    for name, values in series.items():
        ax.plot(times, values, label=name)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.legend()
    return ax


def tradeoff(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    xlabel: str,
    ylabel: str,
    annotations: Mapping[str, Sequence[str]] | None = None,
    ci: Mapping[str, Sequence[float]] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Trade-off frontiers: one line of points per option, each point a parameter setting.

    ``annotations[name]`` labels the points of that curve (e.g. ``["T=0.1 s", "T=1 s"]``);
    ``ci[name]`` gives each point's interval half-width, drawn as bars in the curve's colour
    (NaN: no bar at that point).
    """
    ax = new_axes(ax)
    for name, (x, y) in curves.items():
        (line,) = ax.plot(x, y, marker="o", markersize=4, label=name)
        half = np.asarray((ci or {}).get(name, ()), dtype=float)
        if np.isfinite(half).any():
            ax.errorbar(x, y, yerr=half, fmt="none", color=line.get_color(), capsize=3)
        for text, xi, yi in zip((annotations or {}).get(name, ()), x, y, strict=False):
            ax.annotate(text, (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.legend()
    return ax


def sweep_panels(
    rows: Sequence[Mapping[str, Any]],
    *,
    x: str,
    by: str | None,
    metrics: Sequence[str],
    xlabel: str,
    ylabels: Mapping[str, str],
    group_label: Callable[[Any], str] = str,
    log_y: Collection[str] = (),
    panel_size: tuple[float, float] = (4.4, 3.4),
) -> list[Axes]:
    """A parameter sweep side by side: one panel per metric against setting ``x``.

    ``rows`` are a sweep's table (e.g. from ``experiments.aggregate``); each panel draws one
    line per value of column ``by`` (in first-seen order, named ``group_label(value)``; one
    line for all rows if ``by`` is None) with ``tradeoff``, and 95 % interval bars wherever
    the rows carry ``<metric>_ci``. ``ylabels[metric]`` is the panel's y label (with units);
    panels whose metric is in ``log_y`` get a log y axis.
    """
    if not rows or not metrics:
        raise ValueError(f"sweep_panels needs rows and metrics (got {len(rows)} rows, "
                         f"metrics {list(metrics)})")
    for column in [x, *([by] if by is not None else []), *metrics]:
        if column not in rows[0]:
            raise ValueError(f"column must be one of {', '.join(rows[0])} (got {column!r})")
    missing = [m for m in metrics if m not in ylabels]
    if missing:
        raise ValueError(f"ylabels must name every metric (missing {', '.join(missing)})")
    import matplotlib.pyplot as plt

    width, height = panel_size
    _, axes = plt.subplots(1, len(metrics), figsize=(width * len(metrics), height),
                           squeeze=False, layout="constrained")
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(None if by is None else row[by], []).append(row)
    for ax, metric in zip(axes[0], metrics, strict=True):
        ax.set_prop_cycle(color=COLORS)
        curves = {group_label(g): ([row[x] for row in part], [row[metric] for row in part])
                  for g, part in groups.items()}
        ci = {group_label(g): [row.get(metric + "_ci", np.nan) for row in part]
              for g, part in groups.items()}
        tradeoff(curves, xlabel=xlabel, ylabel=ylabels[metric], ci=ci, ax=ax)
        if metric in log_y:
            log_scale(ax, "y")
    return list(axes[0])


def dashboard(
    times: Sequence[float],
    panels: Mapping[str, Mapping[str, Sequence[float]]],
    *,
    windows: Sequence[tuple[float, float]] = (),
    window_label: str = "fault window",
    xlabel: str = "time (s)",
    width: float = 8.0,
    panel_height: float = 2.0,
) -> list[Axes]:
    """Small multiples over time: one panel per metric, stacked on a shared time axis.

    ``panels`` maps each panel's y label (with units) to its curves (name -> values at
    ``times``). A curve name keeps its colour in every panel, so the legend of the top panel
    names the curves below it too; a lower panel shows a legend only if it adds a name.
    ``windows`` are shaded in every panel (see ``time_series``). A y label too long for its
    panel is broken at spaces onto more lines, and the labels are aligned with each other.
    """
    if not panels:
        raise ValueError("dashboard needs at least one panel (got none)")
    import matplotlib.pyplot as plt
    from matplotlib.font_manager import FontProperties

    fig, axes = plt.subplots(len(panels), 1, sharex=True, squeeze=False, layout="constrained",
                             figsize=(width, panel_height * len(panels)))
    # A label fits along about 70 % of a panel's height (the rest is spacing and tick labels);
    # an average character of the sans-serif font is about 0.6 em wide.
    size = FontProperties(size=plt.rcParams["axes.labelsize"]).get_size_in_points()
    line_chars = max(1, int(0.7 * panel_height * 72 / (0.6 * size)))
    names = list(dict.fromkeys(name for series in panels.values() for name in series))
    named: set[str] = set()
    for ax, (ylabel, series) in zip(axes[:, 0], panels.items(), strict=True):
        if series:
            ax.set_prop_cycle(color=[COLORS[names.index(n) % len(COLORS)] for n in series])
        wrapped = textwrap.fill(ylabel, line_chars, break_long_words=False)
        time_series(times, series, ylabel=wrapped, windows=windows, window_label=window_label,
                    ax=ax, xlabel="")
        if named and set(series) <= named:
            ax.get_legend().remove()
        named.update(series)
    axes[-1, 0].set_xlabel(xlabel)
    fig.align_ylabels(axes[:, 0])
    return list(axes[:, 0])
