"""The CQRS study: how far the read model runs behind the writes, and what the writer sees.

Picture the bank clerk of the pattern's module with a stopwatch: deposits reach the ledger as a
Poisson stream at λ_w per second, the clerk copies them into the summary one at a time, each
copy taking an exponential time of mean 1/μ_p. The clerk is an M/M/1 queue, and an event's
*lag* (written → visible in the read model) is its time in that queue: exponential with rate
μ_p − λ_w, so P(lag > t) = e^(−(μ_p−λ_w)t). A writer who reads d seconds after writing sees
a stale view with that probability at t = d.

``simulate`` draws the writes and the projection times from one seeded generator and runs the
projector(s) with the toolkit's fast path (``fastpath.fifo_ends``): one projector, ``partitions``
projectors each owning a share of the keys, or a batching projector (a batch of n costs
s₀ + n·s₁, taking whatever is pending when it is free, up to ``max_batch``). ``summary`` scores
the read-your-writes strategies from the lags; the closed forms sit beside the model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from patterns.architectural.cqrs import CQRSStore, Session
from patterns.checks import check_int, check_non_negative, check_positive
from simulations import experiments
from simulations.fastpath import fifo_ends
from simulations.metrics import per_bin, percentile_of, rate_over_time
from simulations.workloads import PoissonArrivals

__all__ = [
    "CQRSStore", "Run", "Scenario", "Session", "draw_staleness", "lag_quantile", "lag_survival",
    "mean_token_wait", "over_time", "plot_dashboard", "plot_sweep", "simulate", "summary",
    "sweep", "survival_curve",
]


@dataclass(frozen=True)
class Scenario:
    """Writes at ``write_rate`` per s into ``partitions`` projectors of ``projector_rate`` each.

    ``read_delay_s``: a writer reads this long after its write. ``max_batch`` > 1 turns on the
    batching projector (a batch of n costs ``setup_s + n·per_event_s``; the exponential
    projection time is then not used). ``burst``: (start, end, extra rate) of a write burst.
    """

    write_rate: float = 800.0
    projector_rate: float = 1000.0  # μ_p, events per second one projector applies
    partitions: int = 1
    read_delay_s: float = 0.02
    write_side_window_s: float = 0.05
    max_batch: int = 1
    setup_s: float = 0.0008  # s₀ of a batching projector (one transaction)
    per_event_s: float = 0.0001  # s₁ of a batching projector
    duration_s: float = 20.0
    burst: tuple[float, float, float] | None = None
    seed: int = 1

    def __post_init__(self) -> None:
        check_positive("Scenario.write_rate", self.write_rate)
        check_positive("Scenario.projector_rate", self.projector_rate)
        check_int("Scenario.partitions", self.partitions, 1)
        check_non_negative("Scenario.read_delay_s", self.read_delay_s)
        check_non_negative("Scenario.write_side_window_s", self.write_side_window_s)
        check_int("Scenario.max_batch", self.max_batch, 1)
        check_non_negative("Scenario.setup_s", self.setup_s)
        check_non_negative("Scenario.per_event_s", self.per_event_s)
        check_positive("Scenario.duration_s", self.duration_s)


@dataclass
class Run:
    """One row per write: when it was written, when the view showed it, its partition."""

    scenario: Scenario
    written: np.ndarray
    applied: np.ndarray
    partition: np.ndarray

    @property
    def lag(self) -> np.ndarray:
        return self.applied - self.written


def _writes(sc: Scenario, rng: np.random.Generator) -> np.ndarray:
    times = PoissonArrivals(sc.write_rate).times(rng, horizon=sc.duration_s)
    if sc.burst is not None:
        start, end, rate = sc.burst
        extra = start + PoissonArrivals(rate).times(rng, horizon=end - start)
        times = np.sort(np.concatenate([times, extra]))
    return times


def _batched_ends(written: np.ndarray, sc: Scenario) -> np.ndarray:
    """A projector that, when free, takes everything pending (up to ``max_batch``) as one
    batch costing s₀ + n·s₁; when idle it starts on the next write."""
    n, ends, free, i = len(written), np.empty(len(written)), 0.0, 0
    while i < n:
        start = max(free, written[i])
        j = min(int(np.searchsorted(written, start, side="right")), i + sc.max_batch)
        free = start + sc.setup_s + (j - i) * sc.per_event_s
        ends[i:j] = free
        i = j
    return ends


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """Run the projectors on seeded writes (common random numbers: the writes, the partition
    draws and the projection times come from the generator in a fixed order)."""
    rng = rng if rng is not None else np.random.default_rng(scenario.seed)
    written = _writes(scenario, rng)
    partition = rng.integers(scenario.partitions, size=len(written))
    work = rng.exponential(1.0 / scenario.projector_rate, size=len(written))
    applied = np.empty(len(written))
    for p in range(scenario.partitions):
        mine = partition == p
        if scenario.max_batch > 1:
            applied[mine] = _batched_ends(written[mine], scenario)
        else:
            applied[mine] = fifo_ends(written[mine], work[mine])
    return Run(scenario, written, applied, partition)


def summary(run: Run, warmup_s: float | None = None) -> dict[str, float]:
    """Lag percentiles and the read-your-writes strategies scored on the writes after warm-up.

    ``stale_view``: share of writers' reads (``read_delay_s`` after the write) that miss their
    own write when they read the view; ``stale_write_side``: the same with reads routed to the
    write side for ``write_side_window_s`` after a write (``write_side_share`` of reads go
    there); ``mean_token_wait_s``: mean wait of a read that waits for the view to reach its
    write's version (never stale).
    """
    sc = run.scenario
    warm = 0.1 * sc.duration_s if warmup_s is None else warmup_s
    keep = run.written >= warm
    lag = run.lag[keep]
    d = sc.read_delay_s
    stale = lag > d
    routed = d < sc.write_side_window_s
    return {
        "writes": float(len(lag)),
        "mean_lag_s": float(np.mean(lag)),
        "p99_lag_s": float(np.percentile(lag, 99)),
        "stale_view": float(np.mean(stale)),
        "stale_write_side": 0.0 if routed else float(np.mean(stale)),
        "write_side_share": 1.0 if routed else 0.0,
        "mean_token_wait_s": float(np.mean(np.maximum(0.0, lag - d))),
    }


def _model(rng: np.random.Generator, **params: Any) -> dict[str, float]:
    return summary(simulate(Scenario(**params), rng))


def sweep(grid: dict[str, Sequence[Any]], replications: int = 3, seed: int = 1,
          **fixed: Any) -> list[dict[str, Any]]:
    """`experiments.sweep` over `Scenario` fields: one summary row per run."""
    return experiments.sweep(_model, grid, seed=seed, replications=replications, fixed=fixed)


# --- closed forms ----------------------------------------------------------------------------


def lag_survival(t: float, write_rate: float, projector_rate: float, partitions: int = 1) -> float:
    """P(lag > t) = e^(−(μ_p − λ_w/k)·t) for an M/M/1 projector (Poisson writes, exponential
    projection times, FIFO, stable λ_w/k < μ_p; k projectors with keys spread evenly, each an
    M/M/1 with λ_w/k). 1 for an unstable projector (the lag grows without bound)."""
    spare = projector_rate - write_rate / partitions
    return 1.0 if spare <= 0 else math.exp(-spare * t)


def lag_quantile(q: float, write_rate: float, projector_rate: float, partitions: int = 1) -> float:
    """The q-quantile of the lag, −ln(1 − q)/(μ_p − λ_w/k)."""
    spare = projector_rate - write_rate / partitions
    return math.inf if spare <= 0 else -math.log(1 - q) / spare


def mean_token_wait(read_delay_s: float, write_rate: float, projector_rate: float,
                    partitions: int = 1) -> float:
    """Mean wait of a read that waits for its token, E[max(0, L − d)] = e^(−(μ−λ)d)/(μ−λ)
    (the memoryless lag: given L > d, L − d is again exponential)."""
    spare = projector_rate - write_rate / partitions
    return math.inf if spare <= 0 else math.exp(-spare * read_delay_s) / spare


# --- plots and time series ---------------------------------------------------------------------


def survival_curve(lags: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Empirical P(lag > t) at each t."""
    lags = np.sort(lags)
    return 1 - np.searchsorted(lags, ts, side="right") / len(lags)


def over_time(run: Run, bin_s: float = 0.5) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write rate, projected rate, events pending at bin ends, and p99 lag / stale share per bin
    (by write time)."""
    end = run.scenario.duration_s
    mids, writes = rate_over_time(run.written, bin_s, 0.0, end)
    _, applied = rate_over_time(run.applied[run.applied < end], bin_s, 0.0, end)
    edges = mids + bin_s / 2
    pending = (np.searchsorted(np.sort(run.written), edges)
               - np.searchsorted(np.sort(run.applied), edges))
    stale = (run.lag > run.scenario.read_delay_s).astype(float)
    return {
        "writes": (mids, writes),
        "applied": (mids, applied),
        "pending": (mids, pending.astype(float)),
        "p99_lag": per_bin(run.written, run.lag, bin_s, 0.0, end, percentile_of(99)),
        "stale": per_bin(run.written, stale, bin_s, 0.0, end, np.mean),
    }


def plot_dashboard(runs: dict[str, Run], bin_s: float = 0.5, burst: tuple[float, float] = ()):
    """Write rate, events pending, p99 lag and the writer's stale reads over time, per run."""
    from simulations import plots

    series = {name: over_time(run, bin_s) for name, run in runs.items()}
    times = next(iter(series.values()))["writes"][0]
    panels = {
        "writes (events/s)": {n: s["writes"][1] for n, s in series.items()},
        "events pending in the projector": {n: s["pending"][1] for n, s in series.items()},
        "p99 lag (s)": {n: s["p99_lag"][1] for n, s in series.items()},
        "writer's stale reads (share)": {n: s["stale"][1] for n, s in series.items()},
    }
    return plots.dashboard(times, panels, windows=[burst] if burst else (),
                           window_label="write burst")


def plot_sweep(rows: Sequence[dict[str, Any]], by: str = "partitions"):
    """p99 lag, the writer's stale reads and the token wait against the write rate."""
    from simulations import plots

    metrics = ("p99_lag_s", "stale_view", "mean_token_wait_s")
    table = experiments.aggregate(rows, by=("write_rate", by), metrics=metrics)
    return plots.sweep_panels(
        table, x="write_rate", by=by, metrics=metrics, xlabel="write rate λ_w (events/s)",
        group_label=lambda v: f"{v} projector{'s' if v != 1 else ''}",
        ylabels={"p99_lag_s": "p99 lag (s)", "stale_view": "writer's stale reads (share)",
                 "mean_token_wait_s": "mean token wait (s)"},
        log_y=("p99_lag_s", "mean_token_wait_s"))


def draw_staleness(write_rate: float = 800.0, projector_rate: float = 1000.0,
                   read_delay_ms: float = 20.0, partitions: int = 1, duration_s: float = 4.0):
    """The slider figure: P(lag > t), simulated beside e^(−(μ−λ/k)t), and the writer's
    stale-read share by strategy."""
    from simulations import plots

    sc = Scenario(write_rate=write_rate, projector_rate=projector_rate, partitions=partitions,
                  read_delay_s=read_delay_ms / 1e3, duration_s=duration_s)
    run = simulate(sc)
    s = summary(run)
    lags = run.lag[run.written >= 0.1 * duration_s]
    top = max(0.005, float(np.percentile(lags, 99.5)), 1.5 * sc.read_delay_s)
    ts = np.linspace(0.0, top, 40)
    fig, (left, right) = plots.plt.subplots(1, 2, figsize=(8.4, 3.1), layout="none")
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.17, top=0.9, wspace=0.3)
    left.plot(ts * 1e3, survival_curve(lags, ts), label="simulation")
    left.plot(ts * 1e3, [lag_survival(t, write_rate, projector_rate, partitions) for t in ts],
              **plots.THEORY, label="e^(−(μ_p − λ_w/k)t)")
    left.axvline(read_delay_ms, color="grey", linewidth=0.8, label="writer reads at d")
    left.set_ylim(0, 1.02)  # a linear axis: a log one costs twice the redraw time
    left.set_xlabel("t (ms)")
    left.set_ylabel("P(lag > t)")
    left.legend(fontsize="small")
    names = ["read the view", "write side\nfor a window", "wait for\ntoken"]
    shares = [100 * s["stale_view"], 100 * s["stale_write_side"], 0.0]
    right.bar(names, shares, color=plots.COLORS[:3])
    for x, share in enumerate(shares):
        right.text(x, share, f"{share:.2f} %", ha="center", va="bottom", fontsize="small")
    right.set_ylabel("writer's stale reads (%)")
    right.set_ylim(0, max(1.0, 1.25 * max(shares)))
    right.set_title(f"a token read waits {s['mean_token_wait_s'] * 1e3:.3f} ms on average",
                    fontsize="small")
    return fig
