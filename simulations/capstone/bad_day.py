"""The capstone study: run a learner's ``Design`` through a seeded bad day and score it.

- ``bad_day(seed)`` (``simulations.capstone.day``): the day's five incidents;
- ``run_day(design, day)``: the whole day in SimPy (``simulations.capstone.service``), as a
  ``DayResult`` (``simulations.capstone.scorecard``): series per five-minute bin, the score
  card and the diagnosis of the first SLO breach;
- ``grade(design, seeds)``: the visible day and hidden ones; the first failing day's diagnosis,
  with the part of the lesson that explains its incident;
- ``run_window(design, seed, kind)``: the fast path for sliders, one incident's window only
  (20 s before it, 5 s after), held to the full day by a test;
- ``plot_day``, ``plot_dashboard``: the day's traffic and incidents, and the dashboard.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from simulations.capstone.day import (
    DAY_S,
    INCIDENTS,
    VISIBLE_SEED,
    Day,
    Incident,
    bad_day,
    clock,
)
from simulations.capstone.scorecard import BIN_S, SLO, DayResult
from simulations.capstone.service import SYSTEM, Design, Signals, simulate

__all__ = ["BIN_S", "DAY_S", "INCIDENTS", "LESSON_PARTS", "SLO", "SYSTEM", "VISIBLE_SEED",
           "Day", "DayResult", "Design", "Grade", "Incident", "Signals", "bad_day", "clock",
           "grade", "plot_dashboard", "plot_day", "run_day", "run_window", "WARMUP_S"]

WARMUP_S = 20.0
"""The fast path starts this long before its incident (the cache warms, the pool fills)."""

LESSON_PARTS = {
    "surge": "The Bad Day (the traffic surge) and Auto Scaling, Load Shedding",
    "hot_key": "The Bad Day (the hot key) and Cache Stampede Protection",
    "dependency": "The Bad Day (the dependency slowdown) and Timeouts, Circuit Breaker",
    "replica_lost": "The Bad Day (the lost replica) and Cache-Aside, Read Replicas",
    "retry_storm": "The Bad Day (the retry storm) and Retry with Backoff and Jitter "
                   "(retry budgets)",
}
"""Where the lesson explains each incident and the patterns that answer it."""


def run_day(design: Design, day: Day | int = VISIBLE_SEED, slo: SLO | None = None) -> DayResult:
    """The whole day (09:00–17:00) for ``design``; ``day`` is a ``Day`` or a seed."""
    if not isinstance(design, Design):
        raise ValueError(f"design must be a Design (got {type(design).__name__})")
    day = bad_day(day) if isinstance(day, int) else day
    return _day(design, day, slo)


@functools.lru_cache(maxsize=32)
def _day(design: Design, day: Day, slo: SLO | None) -> DayResult:
    """One day's result, kept: the same design on the same day is simulated once."""
    return DayResult(simulate(design, day), slo)


@functools.lru_cache(maxsize=256)
def _window(design: Design, seed: int, kind: str) -> DayResult:
    day = bad_day(seed)
    incident = day.incident(kind)
    start = max(0.0, BIN_S * math.floor((incident.start_s - WARMUP_S) / BIN_S))
    end = min(DAY_S, BIN_S * math.ceil((incident.end_s + 5.0) / BIN_S))  # whole bins
    return DayResult(simulate(design, day, start, end))


def run_window(design: Design, seed: int = VISIBLE_SEED, kind: str = "surge") -> DayResult:
    """The fast path: only the window of incident ``kind`` (cached: a slider that comes back
    to a setting redraws at once). Its score card has one incident line and the window."""
    if kind not in INCIDENTS:
        raise ValueError(f"kind must be one of {', '.join(INCIDENTS)} (got {kind!r})")
    return _window(design, int(seed), kind)


@dataclass(frozen=True)
class Grade:
    """The verdict on several days: ``passed``, each day's score card, and the feedback."""

    passed: bool
    cards: dict[int, dict[str, Any]]
    feedback: str


def grade(design: Design, seeds: Iterable[int] = (VISIBLE_SEED,),
          slo: SLO | None = None) -> Grade:
    """Run ``design`` on each day; the feedback is the first failing day's diagnosis and where
    the lesson explains that incident (never what to set)."""
    cards: dict[int, dict[str, Any]] = {}
    feedback = ""
    for seed in seeds:
        result = run_day(design, int(seed), slo)
        card = cards[int(seed)] = result.scorecard()
        if not card["passed"] and not feedback:
            breach = result.first_breach()
            kind = breach[0].kind if breach and breach[0] is not None else None
            where = LESSON_PARTS[kind] if kind else "The Score Card (cost)"
            feedback = (f"on the day of seed {seed}, {card['diagnosis']}. The lesson explains "
                        f"it in {where}")
    return Grade(all(c["passed"] for c in cards.values()), cards, feedback)


# ---------------------------------------------------------------- plots

def _clock_axis(ax: Any) -> None:
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    ax.xaxis.set_major_locator(MultipleLocator(60.0))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda t, _: clock(t)))


def _label_incidents(ax: Any, incidents: Sequence[Incident], start: float, end: float) -> None:
    for inc in incidents:
        if inc.end_s > start and inc.start_s < end:
            mid = (max(inc.start_s, start) + min(inc.end_s, end)) / 2
            ax.annotate(inc.name.removeprefix("the "), (mid, 1.0),
                        xycoords=("data", "axes fraction"),
                        xytext=(0, 2), textcoords="offset points", ha="center", va="bottom",
                        fontsize=7)


def plot_day(day: Day) -> Any:
    """The day as the clients and dependencies live it: arrival rate with the incidents shaded
    and named."""
    import numpy as np

    from simulations import plots

    t = np.linspace(0.0, DAY_S, 481)
    ax = plots.time_series(t, {"arrival rate": day.rate_at(t)}, ylabel="requests/s",
                           windows=day.windows(), window_label="incident", xlabel="clock")
    ax.set_ylim(0, None)
    _clock_axis(ax)
    _label_incidents(ax, day.incidents, 0.0, DAY_S)
    return ax


PANELS = {
    "latency": ("checkout latency (s)", {"p50": "checkout_p50_s", "p99": "checkout_p99_s"}),
    "tiers": ("tier p99 (s)", {"payments": "payments_p99_s", "recommendations": "recs_p99_s",
                               "replica reads": "replica_p99_s"}),
    "goodput": ("answered OK (requests/s)", {"checkout": "checkout_goodput",
                                             "browse": "browse_goodput"}),
    "errors": ("failed or turned away (requests/s)", {"failed": "errors",
                                                      "checkouts turned away": "rejected"}),
    "saturation": ("busy share", {"API pool": "busy", "busiest replica": "replica_busy",
                                  "payments breakers open": "payments_open",
                                  "recs breakers open": "recs_open"}),
    "queues": ("waiting (requests)", {"API queue": "queued", "payments queue": "queue_depth"}),
    "instances": ("API instances", {"instances": "instances"}),
}
"""The dashboard's panels: name -> (y label with units, {curve: series key})."""


def plot_dashboard(result: DayResult, panels: Sequence[str] = tuple(PANELS),
                   slo: bool = True) -> list[Any]:
    """The dashboard of ``result``: the chosen ``panels`` (keys of ``PANELS``) stacked over the
    clock, incidents shaded and named, the SLO's p99 as a dashed line."""
    from simulations import plots

    s = result.series
    chosen = {PANELS[p][0]: {name: s[key] for name, key in PANELS[p][1].items()}
              for p in panels}
    start, end = result.run.start_s, result.run.end_s
    windows = [(max(i.start_s, start), min(i.end_s, end)) for i in result.day.incidents
               if i.end_s > start and i.start_s < end]
    axes = plots.dashboard(s["t"], chosen, windows=windows, window_label="incident",
                           xlabel="clock", panel_height=1.6)
    for ax in axes:
        ax.set_xlim(start, end)
    if slo and "latency" in panels:
        ax = axes[list(panels).index("latency")]
        ax.axhline(result.slo.p99_s, color="black", linestyle="--", linewidth=0.8,
                   label="SLO p99")
        ax.legend(fontsize=7)
    _clock_axis(axes[-1])
    if end - start < 200:
        from matplotlib.ticker import MultipleLocator
        axes[-1].xaxis.set_major_locator(MultipleLocator(15.0))
    _label_incidents(axes[0], result.day.incidents, start, end)
    return axes
