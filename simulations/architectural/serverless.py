"""The Serverless keep-alive study: cold-start share against idle memory-time.

Picture the taxi rank again with a logbook: for each passenger, did a car wait (warm) or not
(cold), and how long did cars stand idle at the rank? A longer wait buys fewer cold starts with
more idle time; a policy that learns when passengers come can have both.

One function at one instance: invocations arrive with idle gaps drawn up front from one seeded
``numpy.random.Generator`` (Poisson, a periodic timer with jitter, or two timers, bimodal);
executions are short beside the gaps (taken as zero). ``simulate`` drives the pattern's own
``FunctionPool`` with a simulated clock; ``simulate_fast`` is the closed-loop fast path for a
fixed window (cold iff gap > τ, idle = min(gap, τ)), and a test asserts that the two agree.
Closed forms for Poisson arrivals: P(cold) = e^(−λτ), E[min(gap, τ)] = (1 − e^(−λτ))/λ.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from patterns.architectural.serverless import (
    FixedKeepAlive,
    FunctionPool,
    HistogramKeepAlive,
    ProductionFunctionPool,
)
from simulations import plots
from simulations.experiments import aggregate
from simulations.experiments import sweep as run_sweep

__all__ = ["FunctionPool", "HistogramKeepAlive", "ProductionFunctionPool", "Scenario",
           "idle_gaps", "simulate", "simulate_fast", "summary", "p_cold_poisson",
           "idle_poisson", "sweep", "draw_tradeoff", "plot_dashboard"]

WORKLOADS = ("poisson", "periodic", "bimodal")


@dataclass(frozen=True)
class Scenario:
    """One application's invocations and the keep-alive policy that serves them (seconds)."""

    workload: str = "poisson"
    mean_gap_s: float = 300.0      # poisson: 1/λ
    period_s: float = 600.0        # periodic: the timer; bimodal: the first timer
    second_period_s: float = 1500.0  # bimodal: the second timer
    jitter_s: float = 20.0         # periodic and bimodal: uniform ± jitter on each gap
    invocations: int = 2000
    policy: str = "fixed"          # "fixed" or "histogram"
    keep_alive_s: float = 600.0    # fixed window τ (also the histogram policy's fallback)
    head: float = 0.05
    tail: float = 0.99
    margin: float = 0.10
    bin_s: float = 60.0
    prewarm: bool = True
    shift_at: int | None = None    # periodic: from this invocation on the timer is 1.5x longer
    seed: int = 1


def idle_gaps(s: Scenario, rng: np.random.Generator | None = None) -> np.ndarray:
    """The idle gaps (s) between consecutive invocations, all drawn up front."""
    rng = rng if rng is not None else np.random.default_rng(s.seed)
    n = s.invocations
    u = rng.random(n)                      # common random numbers: the same draws per setting
    jitter = (2 * rng.random(n) - 1) * s.jitter_s
    if s.workload == "poisson":
        return -np.log1p(-u) * s.mean_gap_s
    if s.workload == "periodic":
        period = np.full(n, s.period_s)
        if s.shift_at is not None:
            period[s.shift_at:] *= 1.5
        return np.maximum(period + jitter, 0.0)
    if s.workload == "bimodal":
        return np.maximum(np.where(u < 0.5, s.period_s, s.second_period_s) + jitter, 0.0)
    raise ValueError(f"workload must be one of {', '.join(WORKLOADS)} (got {s.workload!r})")


def make_policy(s: Scenario) -> FixedKeepAlive | HistogramKeepAlive:
    fixed = FixedKeepAlive(s.keep_alive_s)
    if s.policy == "fixed":
        return fixed
    if s.policy == "histogram":
        return HistogramKeepAlive(bin_s=s.bin_s, head=s.head, tail=s.tail, margin=s.margin,
                                  fallback=fixed, prewarm=s.prewarm)
    raise ValueError(f"policy must be one of fixed, histogram (got {s.policy!r})")


@dataclass
class Run:
    """One run's rows, one per gap: when it ended, cold or warm, idle instance-time in it."""

    time_s: np.ndarray
    gap_s: np.ndarray
    cold: np.ndarray
    idle_s: np.ndarray


def simulate(s: Scenario, rng: np.random.Generator | None = None) -> Run:
    """Drive the pattern's ``FunctionPool`` through the gaps on a simulated clock."""
    return drive(idle_gaps(s, rng), s)


def drive(gaps: np.ndarray, s: Scenario) -> Run:
    """Run ``FunctionPool`` with ``s``'s policy over given idle gaps (the first call is cold)."""
    now = [0.0]
    pool = FunctionPool(make_policy(s), clock=lambda: now[0])
    pool.acquire()
    pool.release()
    cold = np.zeros(len(gaps), dtype=bool)
    idle = np.zeros(len(gaps))
    for i, g in enumerate(gaps):
        now[0] += g
        before = pool.idle_s
        cold[i] = pool.acquire()
        idle[i] = pool.idle_s - before
        pool.release()
    return Run(np.cumsum(gaps), gaps, cold, idle)


def simulate_fast(s: Scenario, rng: np.random.Generator | None = None) -> Run:
    """The fast path for a fixed window: cold iff gap > τ; idle = min(gap, τ)."""
    gaps = idle_gaps(s, rng)
    return Run(np.cumsum(gaps), gaps, gaps > s.keep_alive_s, np.minimum(gaps, s.keep_alive_s))


def summary(run: Run, skip: int = 0) -> dict[str, float]:
    """Cold-start share and idle instance-seconds per invocation (after ``skip`` warm-up)."""
    cold, idle = run.cold[skip:], run.idle_s[skip:]
    return {"cold_share": float(cold.mean()), "idle_per_call_s": float(idle.mean()),
            "idle_share": float(idle.sum() / run.gap_s[skip:].sum())}


def p_cold_poisson(rate: float, keep_alive_s: float) -> float:
    """P(cold) = P(gap > τ) = e^(−λτ): Poisson arrivals (exponential gaps) at one instance,
    executions short beside the gaps, the instance kept τ after each execution."""
    return float(np.exp(-rate * keep_alive_s))


def idle_poisson(rate: float, keep_alive_s: float) -> float:
    """Idle instance-time per invocation E[min(gap, τ)] = (1 − e^(−λτ))/λ, same assumptions."""
    return float(-np.expm1(-rate * keep_alive_s) / rate)


def _model(rng: np.random.Generator, **params: Any) -> dict[str, float]:
    s = Scenario(**params)
    run = (simulate_fast if s.policy == "fixed" else simulate)(s, rng)
    return summary(run, skip=50 if s.policy == "histogram" else 0)


def sweep(base: Scenario, keep_alives: list[float], replications: int = 5,
          seed: int = 1) -> list[dict[str, Any]]:
    """Cold share and idle time against τ, mean and 95 % interval over ``replications``."""
    fixed = {k: v for k, v in base.__dict__.items() if k not in ("keep_alive_s", "seed")}
    rows = run_sweep(_model, {"keep_alive_s": keep_alives}, seed=seed,
                     replications=replications, fixed=fixed)
    return aggregate(rows, ["keep_alive_s"], ["cold_share", "idle_per_call_s"])


@functools.cache
def _histogram_point(workload: str, invocations: int, seed: int) -> dict[str, float]:
    s = Scenario(workload=workload, policy="histogram", invocations=invocations, seed=seed)
    return summary(simulate(s), skip=50)


def draw_tradeoff(workload: str = "periodic", keep_alive_min: float = 10.0) -> Any:
    """Cold share against idle time for fixed windows (a curve over τ), the chosen τ and the
    histogram policy (one point), for one workload. Returns the axes."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    taus = np.array([1, 2, 5, 8, 10, 12, 15, 20, 25, 30, 45, 60]) * 60.0
    base = Scenario(workload=workload, invocations=1500)
    gaps = idle_gaps(base)
    cold = [(gaps > t).mean() for t in taus]
    idle = [np.minimum(gaps, t).mean() / 60 for t in taus]
    chosen = keep_alive_min * 60.0
    fig, ax = plt.subplots(figsize=(6.2, 3.6), layout="none")
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.15, top=0.9)
    plots.new_axes(ax)
    ax.plot(idle, cold, "-", color=plots.COLORS[0], label="fixed keep-alive, τ = 1 … 60 min")
    ax.plot(np.minimum(gaps, chosen).mean() / 60, (gaps > chosen).mean(), "s", markersize=8,
            color=plots.COLORS[0], label=f"fixed, τ = {keep_alive_min:g} min")
    h = _histogram_point(workload, 1500, 1)
    ax.plot(h["idle_per_call_s"] / 60, h["cold_share"], "*", markersize=13,
            color=plots.COLORS[1], label="histogram policy")
    ax.set_xlabel("idle instance-time per invocation (min)")
    ax.set_ylabel("cold-start share")
    ax.set_ylim(-0.03, 1.03)
    ax.set_yticks([0.0, 0.25, 0.5, 0.75, 1.0])  # few fixed ticks: a redraw is mostly text
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.set_title(f"{workload} idle times", fontsize="medium")
    ax.legend(fontsize="small", loc="best")
    return ax


def plot_dashboard(runs: dict[str, Run], bin_s: float = 6 * 3600.0,
                   window: tuple[float, float] | None = None) -> Any:
    """Cold-start share and idle instance-minutes per hour over time, one curve per run."""
    end = min(r.time_s[-1] for r in runs.values())
    edges = np.arange(int(end // bin_s) + 1) * bin_s  # whole bins only
    mids = (edges[:-1] + edges[1:]) / 2 / 3600
    cold_panel, idle_panel = {}, {}
    for name, r in runs.items():
        which = np.digitize(r.time_s, edges) - 1
        n = np.bincount(which, minlength=len(mids))[: len(mids)]
        c = np.bincount(which, weights=r.cold, minlength=len(mids))[: len(mids)]
        w = np.bincount(which, weights=r.idle_s, minlength=len(mids))[: len(mids)]
        cold_panel[name] = c / np.maximum(n, 1)
        idle_panel[name] = w / 60 / (bin_s / 3600)
    windows = [(window[0] / 3600, window[1] / 3600)] if window else []
    return plots.dashboard(mids, {"cold-start share": cold_panel,
                                  "idle instance-min per hour": idle_panel},
                           windows=windows, window_label="timer changed", xlabel="time (h)")


def with_policy(s: Scenario, policy: str, **changes: Any) -> Scenario:
    return replace(s, policy=policy, **changes)


def batched_gaps(event_gaps: np.ndarray, max_items: int, linger_s: float) -> np.ndarray:
    """Gaps between invocations when events go through the Request Batching lesson's
    ``Batcher`` (a flush by size or after ``linger_s``) and each flush is one invocation."""
    from patterns.performance.request_batching import Batcher

    now, flushes = [0.0], []
    batcher = Batcher(max_items, linger_s, lambda batch: flushes.append(now[0]),
                      clock=lambda: now[0])
    for t in np.cumsum(event_gaps):
        if batcher.pending and t >= batcher.deadline():
            now[0] = batcher.deadline()
            batcher.poll()
        now[0] = t
        batcher.add(t)
    return np.diff(np.array(flushes))


def measure_cold_start(module: str = "json", repeats: int = 3, timeout_s: float = 10.0
                       ) -> tuple[float, float] | str:
    """A real cold start on this machine: a fresh Python process that imports ``module`` and
    calls it once, against the same call in this warm process. Returns the medians (s), or
    a one-line reason when a process cannot be started."""
    import importlib
    import subprocess
    import sys
    import time

    code = f"import {module}; {module}.dumps({{'ok': 1}})"
    cold = []
    try:
        for _ in range(repeats):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, timeout=timeout_s,
                           capture_output=True)
            cold.append(time.perf_counter() - started)
    except (OSError, subprocess.SubprocessError) as error:
        return f"a fresh Python process is unavailable here ({type(error).__name__})"
    mod = importlib.import_module(module)
    warm = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(1000):
            mod.dumps({"ok": 1})
        warm.append((time.perf_counter() - started) / 1000)
    return float(np.median(cold)), float(np.median(warm))
