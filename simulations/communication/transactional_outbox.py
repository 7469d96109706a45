"""The transactional-outbox study: event lag against polling load as poll interval T and batch B
vary.

Picture the clerk and the runner of the pattern's module with a stopwatch: notes (events) are
written at random (Poisson, rate λ); the runner comes every T seconds, takes at most B notes, and
the trip costs a query time q₀ + q₁·n for n notes. A note waits for the next visit (T/2 on
average), then for the query; the runner makes 1/T trips a second whether there are notes or
not; and if notes come faster than B per T, the pile grows without end.

``simulate`` runs the relay's own rule on seeded arrivals (a loop over polls, the fast path of
this study), in one of four modes: ``"poll"`` (every T), ``"drain"`` (poll again at once after a
full batch), ``"notify"`` (a LISTEN/NOTIFY-style wake-up at the next commit, T as a safety poll)
and ``"cdc"`` (a log tailer: each event a fixed log delay after commit, no queries on the
table). ``outage`` stops the relay for a while (a crash and restart, for the dashboard). The
closed forms (``mean_lag``, ``poll_rate``, ``relay_capacity``, ``backlog_growth``) sit beside
the model; ``measure_relay`` times a real SQLite relay.
"""

from __future__ import annotations

import math
import os
import sqlite3
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from patterns.checks import check_choice, check_int, check_non_negative, check_positive
from patterns.communication.transactional_outbox import (
    TransactionalOutbox,
    insert_order,
)
from simulations import experiments
from simulations.fastpath import fifo_ends
from simulations.metrics import per_bin, percentile_of, rate_over_time
from simulations.workloads import PoissonArrivals

__all__ = [
    "MODES", "Run", "Scenario", "TransactionalOutbox", "backlog_growth", "draw_tradeoff",
    "mean_lag", "measure_relay", "over_time", "plot_dashboard", "plot_sweep", "poll_rate",
    "relay_capacity", "replay_real", "simulate", "summary", "sweep",
]

MODES = ("poll", "drain", "notify", "cdc")


@dataclass(frozen=True)
class Scenario:
    """Poisson events at ``arrival_rate`` per s into an outbox, one relay.

    A poll that returns n rows takes ``query_s + n·per_row_s`` (read, publish, mark).
    ``cdc_delay_s``: how long after commit a log tailer sees an event (mode ``"cdc"``).
    ``outage``: (start, end) in which the relay is down; ``burst``: (start, end, extra rate).
    """

    arrival_rate: float = 100.0
    poll_interval_s: float = 0.5
    batch_size: int = 100
    query_s: float = 0.002  # q₀: the cost of one poll, rows or not
    per_row_s: float = 0.0002  # q₁: publishing and marking one row
    mode: str = "poll"
    cdc_delay_s: float = 0.01
    duration_s: float = 60.0
    outage: tuple[float, float] | None = None
    burst: tuple[float, float, float] | None = None
    seed: int = 1

    def __post_init__(self) -> None:
        check_positive("Scenario.arrival_rate", self.arrival_rate)
        check_positive("Scenario.poll_interval_s", self.poll_interval_s)
        check_int("Scenario.batch_size", self.batch_size, 1)
        check_non_negative("Scenario.query_s", self.query_s)
        check_non_negative("Scenario.per_row_s", self.per_row_s)
        check_choice("Scenario.mode", self.mode, MODES)
        check_non_negative("Scenario.cdc_delay_s", self.cdc_delay_s)
        check_positive("Scenario.duration_s", self.duration_s)


@dataclass
class Run:
    """Per-event rows (commit, delivery; NaN if still in the outbox at the end) and per-poll
    rows (start, rows returned)."""

    scenario: Scenario
    arrival: np.ndarray
    delivered: np.ndarray
    poll_start: np.ndarray
    poll_rows: np.ndarray

    @property
    def lag(self) -> np.ndarray:
        """Commit to delivery, for the events delivered."""
        lag = self.delivered - self.arrival
        return lag[~np.isnan(lag)]


def _arrivals(sc: Scenario, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    times = PoissonArrivals(sc.arrival_rate).times(rng, horizon=sc.duration_s)
    if sc.burst is not None:
        start, end, rate = sc.burst
        extra = start + PoissonArrivals(rate).times(rng, horizon=end - start)
        times = np.sort(np.concatenate([times, extra]))
    return times, float(rng.uniform())  # the phase of the first poll, as a fraction of T


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """One run of the relay's rule on seeded Poisson commits (same traffic for every setting)."""
    sc = scenario
    rng = np.random.default_rng(sc.seed) if rng is None else rng
    arrival, phase = _arrivals(sc, rng)
    n = len(arrival)
    delivered = np.full(n, np.nan)
    if sc.mode == "cdc":  # a single log tailer: serial, one row cost per event
        ready = arrival + sc.cdc_delay_s
        if sc.outage is not None:
            a, b = sc.outage
            ready = np.where((ready >= a) & (ready < b), b, ready)
        done = fifo_ends(ready, np.full(n, sc.per_row_s))  # a FIFO server, one row cost each
        delivered[done <= sc.duration_s] = done[done <= sc.duration_s]
        return Run(sc, arrival, delivered, np.array([]), np.array([], dtype=int))
    T, B = sc.poll_interval_s, sc.batch_size
    starts, rows = [], []
    t, i = phase * T, 0
    while t < sc.duration_s:
        if sc.outage is not None and sc.outage[0] <= t < sc.outage[1]:
            t = sc.outage[1]  # the relay restarts and polls at once
            continue
        visible = int(np.searchsorted(arrival, t, side="right"))
        k = min(B, visible - i)
        end = t + sc.query_s + k * sc.per_row_s
        if k:
            delivered[i:i + k] = end
        i += k
        starts.append(t)
        rows.append(k)
        if sc.mode == "drain" and k == B:
            t = end
        elif sc.mode == "notify":
            nxt = arrival[i] if i < n else math.inf  # the next commit's wake-up
            t = max(end, min(t + T, nxt))
        else:
            t = max(t + T, end)
    delivered[delivered > sc.duration_s] = np.nan
    return Run(sc, arrival, delivered, np.array(starts), np.array(rows, dtype=int))


def summary(run: Run, start_s: float = 0.0, end_s: float | None = None) -> dict[str, float]:
    """Lag of the events committed in [start_s, end_s), queries per second and the backlog."""
    sc = run.scenario
    end_s = sc.duration_s if end_s is None else end_s
    sel = (run.arrival >= start_s) & (run.arrival < end_s)
    lag = (run.delivered - run.arrival)[sel]
    got = lag[~np.isnan(lag)]
    polls = (run.poll_start >= start_s) & (run.poll_start < end_s)
    backlog = int(np.sum(run.arrival <= sc.duration_s) - np.sum(~np.isnan(run.delivered)))
    return {
        "mean_lag_s": float(got.mean()) if len(got) else math.nan,
        "p99_lag_s": float(np.percentile(got, 99)) if len(got) else math.nan,
        "polls_per_s": float(np.sum(polls) / (end_s - start_s)),
        "empty_poll_share": float(np.mean(run.poll_rows[polls] == 0)) if polls.any() else 0.0,
        "delivered_share": float(len(got) / max(1, np.sum(sel))),
        "backlog_end": float(backlog),
    }


def _model(rng: np.random.Generator, **settings: Any) -> dict[str, float]:
    scenario = replace(Scenario(), **settings)
    return summary(simulate(scenario, rng), 0.1 * scenario.duration_s)


def sweep(grid: dict[str, Sequence[Any]], *, seed: int = 1, replications: int = 3,
          **fixed: Any) -> list[dict[str, Any]]:
    """``experiments.sweep`` over the scenario's settings (the first 10 % dropped as warm-up)."""
    return experiments.sweep(_model, grid, seed=seed, replications=replications, fixed=fixed)


def over_time(run: Run, bin_s: float = 1.0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Dashboard series: commits and deliveries per s, polls per s, p99 lag per bin (by
    commit) and the outbox depth (rows not yet delivered) at each bin's end."""
    end = run.scenario.duration_s
    edges = np.arange(bin_s, end + bin_s / 2, bin_s)
    got = np.sort(run.delivered[~np.isnan(run.delivered)])
    depth = np.searchsorted(run.arrival, edges, "right") - np.searchsorted(got, edges, "right")
    lag = run.delivered - run.arrival
    ok = ~np.isnan(lag)
    return {
        "commits": rate_over_time(run.arrival, bin_s, 0, end),
        "deliveries": rate_over_time(got, bin_s, 0, end),
        "polls": rate_over_time(run.poll_start, bin_s, 0, end),
        "p99_lag": per_bin(run.arrival[ok], lag[ok], bin_s, 0, end, percentile_of(99)),
        "depth": (edges - bin_s / 2, depth.astype(float)),
    }


# --- closed forms -------------------------------------------------------------------------


def poll_rate(poll_interval_s: float, relays: int = 1) -> float:
    """Queries per second on the outbox table: 1/T per relay, rows or not."""
    return relays / poll_interval_s


def mean_lag(rate: float, poll_interval_s: float, query_s: float, per_row_s: float = 0.0) -> float:
    """Mean commit-to-publish lag of a relay polling every T, for Poisson commits at rate λ,
    when no poll is full (λT well under B) and a poll ends before the next (q < T).

    A commit waits for the next poll, T/2 on average (the polls are a fixed grid; Poisson
    arrivals see time averages), then for that poll's query, q₀ + q₁·n. The poll an event sits in
    holds, on average, 1 + λT rows (size-biased: the event itself plus a Poisson(λT) of others),
    so E[lag] = T/2 + q₀ + q₁·(1 + λT). With q₁ = 0 it is the rule of thumb T/2 + query time.
    """
    return poll_interval_s / 2 + query_s + per_row_s * (1 + rate * poll_interval_s)


def relay_capacity(batch_size: int, poll_interval_s: float, query_s: float = 0.0,
                   per_row_s: float = 0.0) -> float:
    """Most events per second one polling relay moves: B rows per max(T, q₀ + B·q₁)."""
    return batch_size / max(poll_interval_s, query_s + batch_size * per_row_s)


def backlog_growth(rate: float, batch_size: int, poll_interval_s: float, query_s: float = 0.0,
                   per_row_s: float = 0.0) -> float:
    """Rows per second the outbox grows by: max(0, λ − B/T) (the backlog condition λ > B/T)."""
    return max(0.0, rate - relay_capacity(batch_size, poll_interval_s, query_s, per_row_s))


# --- a real relay -------------------------------------------------------------------------


def replay_real(run: Run) -> np.ndarray:
    """Drive the real `TransactionalOutbox` (in-memory SQLite, a hand-moved clock) with a run's
    commit times and poll times: each commit is recorded at its time, each poll calls
    ``relay_once(batch_size)`` at its start. Returns each event's lag (publish minus commit),
    in commit order, for the events the relay published; with q₀ = q₁ = 0 it equals the
    model's ``run.lag`` event for event."""
    clock = [0.0]
    published: dict[str, float] = {}
    outbox = TransactionalOutbox(sqlite3.connect(":memory:"),
                                 lambda e: published.setdefault(e.id, clock[0]),
                                 clock=lambda: clock[0])
    committed: list[tuple[str, float]] = []
    k = 0
    for t_poll in run.poll_start:
        while k < len(run.arrival) and run.arrival[k] <= t_poll:
            clock[0] = float(run.arrival[k])
            committed.append((outbox.record(lambda db: None, "Order", str(k), "OrderPlaced",
                                            {}), clock[0]))
            k += 1
        clock[0] = float(t_poll)
        outbox.relay_once(run.scenario.batch_size)
    outbox.db.close()
    return np.array([published[i] - at for i, at in committed if i in published])


def measure_relay(events: int = 300, batch_size: int = 100) -> dict[str, float]:
    """Time a real SQLite outbox in a temporary folder: commits (order + outbox row in one
    transaction) and relay polls (read a batch, publish to a list, mark). Seconds per call."""
    published: list[Any] = []
    with tempfile.TemporaryDirectory() as folder:
        db = sqlite3.connect(os.path.join(folder, "shop.db"))
        outbox = TransactionalOutbox(db, published.append)
        began = time.perf_counter()
        for k in range(events):
            outbox.record(insert_order(f"o{k}", 10.0), "Order", f"o{k}", "OrderPlaced",
                          {"amount": 10.0})
        commit_s = (time.perf_counter() - began) / events
        polls, began = 0, time.perf_counter()
        while outbox.relay_once(batch_size):
            polls += 1
        poll_s = (time.perf_counter() - began) / max(1, polls)
        began = time.perf_counter()
        for _ in range(20):
            outbox.relay_once(batch_size)
        empty_s = (time.perf_counter() - began) / 20
        db.close()
    return {"commit_s": commit_s, "full_poll_s": poll_s, "empty_poll_s": empty_s,
            "published": float(len(published))}


# --- plots --------------------------------------------------------------------------------


def plot_sweep(rows: Sequence[dict[str, Any]], by: str = "batch_size"):
    """Mean and p99 lag, polls per second and the end backlog against T, a line per ``by``."""
    from simulations import plots

    metrics = ("mean_lag_s", "p99_lag_s", "polls_per_s", "backlog_end")
    rows = experiments.aggregate(rows, by=("poll_interval_s", by), metrics=metrics)
    return plots.sweep_panels(
        rows, x="poll_interval_s", by=by, metrics=metrics, xlabel="poll interval T (s)",
        group_label=lambda v: f"B = {v}",
        ylabels={"mean_lag_s": "mean lag (s)", "p99_lag_s": "p99 lag (s)",
                 "polls_per_s": "polls per second (1/s)",
                 "backlog_end": "rows left in the outbox at the end"},
        log_y=("mean_lag_s", "p99_lag_s"), panel_size=(3.4, 3.0))


def draw_tradeoff(arrival_rate: float = 100.0, batch_size: int = 100, query_ms: float = 2.0,
                  mode: str = "poll", duration_s: float = 20.0):
    """The slider figure: lag and polling load against T at one load, theory beside it."""
    from simulations import plots

    intervals = np.array([0.05, 0.1, 0.2, 0.5, 1.0, 2.0])
    base = Scenario(arrival_rate=arrival_rate, batch_size=batch_size, query_s=query_ms / 1e3,
                    mode=mode, duration_s=duration_s)
    runs = [summary(simulate(replace(base, poll_interval_s=T)), 2.0) for T in intervals]
    fig, (left, right) = plots.plt.subplots(1, 2, figsize=(9, 3.4))
    left.plot(intervals, [r["mean_lag_s"] for r in runs], "o", label="simulated mean lag")
    left.plot(intervals, [r["p99_lag_s"] for r in runs], "s", label="simulated p99 lag")
    left.plot(intervals, [mean_lag(arrival_rate, T, base.query_s, base.per_row_s)
                          for T in intervals], **plots.THEORY, label="T/2 + q₀ + q₁(1 + λT)")
    plots.log_scale(left, "y")
    left.set_xlabel("poll interval T (s)")
    left.set_ylabel("commit-to-publish lag (s)")
    left.legend(fontsize="small")
    right.plot(intervals, [r["polls_per_s"] for r in runs], "o", label="simulated polls/s")
    right.plot(intervals, 1 / intervals, **plots.THEORY, label="1/T")
    cap = np.array([relay_capacity(batch_size, T, base.query_s, base.per_row_s)
                    for T in intervals])
    right.plot(intervals, cap, "--", label="relay capacity B/T (events/s)")
    right.axhline(arrival_rate, color="grey", linewidth=0.8, label="offered λ (events/s)")
    plots.log_scale(right, "y")
    right.set_xlabel("poll interval T (s)")
    right.set_ylabel("per second")
    right.legend(fontsize="x-small")
    for ax in (left, right):
        plots.log_scale(ax, "x")
    return fig


def plot_dashboard(runs: dict[str, Run], bin_s: float = 1.0, outage: tuple[float, float] = ()):
    """Commits and deliveries, outbox depth, p99 lag and polls over time, a curve per run."""
    from simulations import plots

    series = {name: over_time(run, bin_s) for name, run in runs.items()}
    first = next(iter(series.values()))
    times = first["commits"][0]
    panels = {
        "deliveries (events/s)": {"commits": first["commits"][1],
                                  **{n: s["deliveries"][1] for n, s in series.items()}},
        "outbox depth (rows)": {n: np.interp(times, *s["depth"]) for n, s in series.items()},
        "p99 lag (s)": {n: s["p99_lag"][1] for n, s in series.items()},
        "polls per second (1/s)": {n: s["polls"][1] for n, s in series.items()},
    }
    return plots.dashboard(times, panels, windows=[outage] if outage else (),
                           window_label="relay down")
