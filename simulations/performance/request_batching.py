"""The request-batching study: throughput against added latency as batch size and linger vary.

Picture the lift of the pattern's module with a stopwatch: people arrive at random (Poisson),
the lift leaves when it is full (``max_items``) or when the first person aboard has waited
``linger_s``, and a trip takes s₀ + n·s₁ for n people. Bigger loads raise the capacity
b/(s₀ + b·s₁) towards 1/s₁; waiting for them costs the first people their patience.

``simulate`` forms the batches with the pattern's own rule on seeded arrivals (a loop over
batches, ``form_batches``), and serves them in a FIFO queue with the toolkit's fast path
(``fastpath.fifo_queue``); ``simulate_simpy`` runs the real `Batcher` inside SimPy and gives
the same rows (a test holds them equal). The closed forms (``capacity``, ``mean_batch_size``,
``mean_added_wait``, ``oldest_wait``, ``rough_added_wait``) sit beside the model, and
``measure_flush_costs``/``fit_costs`` measure s₀ and s₁ of a real flush (SQLite inserts).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import simpy

from patterns.checks import check_int, check_non_negative, check_positive
from patterns.performance.request_batching import Batcher
from simulations import experiments
from simulations.fastpath import fifo_queue
from simulations.metrics import per_bin, percentile_of, rate_over_time
from simulations.workloads import PoissonArrivals

__all__ = [
    "Batcher", "Run", "Scenario", "capacity", "fit_costs", "form_batches", "mean_added_wait",
    "mean_batch_size", "measure_flush_costs", "oldest_wait", "over_time", "rough_added_wait",
    "draw_tradeoff", "plot_dashboard", "plot_sweep", "simulate", "simulate_simpy", "summary",
    "sweep",
]


@dataclass(frozen=True)
class Scenario:
    """Poisson items at ``arrival_rate`` per s into one batcher and one server (s₀ + n·s₁).

    ``idle_flush``: also flush as soon as the server is idle (natural batching, Level 4).
    ``burst``: (start, end, rate) of an overload episode, for the dashboard.
    """

    arrival_rate: float = 400.0
    max_items: int = 16
    linger_s: float = 0.005
    setup_s: float = 0.004  # s₀, the cost of a batch whatever its size
    per_item_s: float = 0.0002  # s₁, the cost of each item in it
    duration_s: float = 20.0
    idle_flush: bool = False
    burst: tuple[float, float, float] | None = None
    seed: int = 1

    def __post_init__(self) -> None:
        check_positive("Scenario.arrival_rate", self.arrival_rate)
        check_int("Scenario.max_items", self.max_items, 1)
        check_non_negative("Scenario.linger_s", self.linger_s)
        check_non_negative("Scenario.setup_s", self.setup_s)
        check_non_negative("Scenario.per_item_s", self.per_item_s)
        check_positive("Scenario.duration_s", self.duration_s)


@dataclass
class Run:
    """Per-item rows (arrival, dispatch, start, end) and per-batch rows of one run."""

    scenario: Scenario
    arrival: np.ndarray
    dispatch: np.ndarray  # when the item's batch left the batcher
    start: np.ndarray  # when the server began the item's batch
    end: np.ndarray  # when the item's batch was done
    batch_size: np.ndarray  # one entry per batch
    batch_dispatch: np.ndarray

    @property
    def latency(self) -> np.ndarray:
        return self.end - self.arrival

    @property
    def added_wait(self) -> np.ndarray:
        """Time spent in the batcher, waiting for the batch to fill or the linger to end."""
        return self.dispatch - self.arrival


def _arrivals(scenario: Scenario, rng: np.random.Generator) -> np.ndarray:
    times = PoissonArrivals(scenario.arrival_rate).times(rng, horizon=scenario.duration_s)
    if scenario.burst is not None:
        start, end, rate = scenario.burst
        extra = start + PoissonArrivals(rate).times(rng, horizon=end - start)
        times = np.sort(np.concatenate([times, extra]))
    return times


def form_batches(arrival: np.ndarray, max_items: int, linger_s: float) -> tuple[np.ndarray,
                                                                                np.ndarray]:
    """The `Batcher` rule on sorted arrival times: (index of each batch's first item, dispatch
    time of each batch). A batch starting at item i leaves at the arrival of item i + b − 1 if
    that comes by tᵢ + linger, else at tᵢ + linger."""
    n, firsts, leaves, i = len(arrival), [], [], 0
    while i < n:
        deadline = arrival[i] + linger_s
        full = i + max_items - 1
        firsts.append(i)
        if full < n and arrival[full] <= deadline:
            leaves.append(arrival[full])
            i = full + 1
        else:
            leaves.append(deadline)
            i = int(np.searchsorted(arrival, deadline, side="right"))
    return np.array(firsts, dtype=int), np.array(leaves)


def _idle_batches(arrival: np.ndarray, sc: Scenario) -> tuple[np.ndarray, np.ndarray,
                                                            np.ndarray]:
    """Natural batching: when the server frees up it takes everything waiting (up to b) at
    once; an item that finds it idle waits for no linger."""
    n, firsts, leaves, starts, i, free = len(arrival), [], [], [], 0, 0.0
    while i < n:
        leave = max(arrival[i], free)
        j = min(int(np.searchsorted(arrival, leave, side="right")), i + sc.max_items)
        firsts.append(i)
        leaves.append(leave)
        starts.append(leave)
        free = leave + sc.setup_s + (j - i) * sc.per_item_s
        i = j
    return np.array(firsts, dtype=int), np.array(leaves), np.array(starts)


def _rows(sc: Scenario, arrival: np.ndarray, firsts: np.ndarray, leaves: np.ndarray,
          starts: np.ndarray | None = None) -> Run:
    sizes = np.diff(np.append(firsts, len(arrival)))
    services = sc.setup_s + sizes * sc.per_item_s
    if starts is None:
        starts = fifo_queue(leaves, services).start
    ends = starts + services
    return Run(sc, arrival, np.repeat(leaves, sizes), np.repeat(starts, sizes),
               np.repeat(ends, sizes), sizes, leaves)


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """One seeded run: Poisson items, the batching rule, one FIFO server of batches."""
    rng = rng if rng is not None else np.random.default_rng(scenario.seed)
    arrival = _arrivals(scenario, rng)
    if scenario.idle_flush:
        return _rows(scenario, arrival, *_idle_batches(arrival, scenario))
    return _rows(scenario, arrival, *form_batches(arrival, scenario.max_items,
                                                  scenario.linger_s))


def simulate_simpy(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """The same run as ``simulate``, with the pattern's `Batcher` driven by SimPy's clock."""
    rng = rng if rng is not None else np.random.default_rng(scenario.seed)
    arrival = _arrivals(scenario, rng)
    env = simpy.Environment()
    batches = simpy.Store(env)
    batcher = Batcher(scenario.max_items, scenario.linger_s,
                      flush=lambda batch: batches.put((env.now, batch)), clock=lambda: env.now)
    started: list[float] = []

    def linger(deadline: float):
        yield env.timeout(deadline - env.now)
        batcher.poll()

    def source():
        for i, t in enumerate(arrival):
            yield env.timeout(t - env.now)
            was_empty = not batcher.pending
            batcher.add(i)
            if was_empty and batcher.pending:
                env.process(linger(batcher.deadline()))

    def server():
        while True:
            _, batch = yield batches.get()
            started.append(env.now)
            yield env.timeout(scenario.setup_s + len(batch) * scenario.per_item_s)

    env.process(source())
    env.process(server())
    env.run()
    sizes = np.array([size for _, size, _ in batcher.flushes])
    firsts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
    leaves = np.array([t for t, _, _ in batcher.flushes])
    return _rows(scenario, arrival, firsts, leaves, np.array(started))


def summary(run: Run, start_s: float = 0.0, end_s: float | None = None) -> dict[str, float]:
    """Throughput and latency of the items arriving in [start_s, end_s) (default: all)."""
    end_s = run.scenario.duration_s if end_s is None else end_s
    sel = (run.arrival >= start_s) & (run.arrival < end_s)
    latency, added = run.latency[sel], run.added_wait[sel]
    done = np.sum((run.end >= start_s) & (run.end < end_s))
    busy = np.sum(run.scenario.setup_s + run.batch_size * run.scenario.per_item_s)
    return {
        "throughput_rps": done / (end_s - start_s),
        "mean_latency_s": float(latency.mean()),
        "p50_latency_s": float(np.percentile(latency, 50)),
        "p99_latency_s": float(np.percentile(latency, 99)),
        "mean_added_wait_s": float(added.mean()),
        "mean_batch": float(run.batch_size.mean()),
        "utilisation": float(busy / max(run.end.max(), run.scenario.duration_s)),
    }


def _model(rng: np.random.Generator, **settings: Any) -> dict[str, float]:
    scenario = replace(Scenario(), **settings)
    return summary(simulate(scenario, rng), 0.1 * scenario.duration_s)


def sweep(grid: dict[str, Sequence[Any]], *, seed: int = 1, replications: int = 3,
          **fixed: Any) -> list[dict[str, Any]]:
    """``experiments.sweep`` over the scenario's settings (the first 10 % dropped as warm-up)."""
    return experiments.sweep(_model, grid, seed=seed, replications=replications, fixed=fixed)


def over_time(run: Run, bin_s: float = 0.5) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Dashboard series: arrivals and completions per s, mean batch size, p99 latency and
    p99 added wait per bin (by arrival), and the backlog of batches waiting for the server."""
    end = run.scenario.duration_s
    queued = run.start - run.dispatch
    return {
        "arrivals": rate_over_time(run.arrival, bin_s, 0, end),
        "completions": rate_over_time(run.end, bin_s, 0, end),
        "batch": per_bin(run.batch_dispatch, run.batch_size.astype(float), bin_s, 0, end,
                         np.mean),
        "p99_latency": per_bin(run.arrival, run.latency, bin_s, 0, end, percentile_of(99)),
        "p99_added_wait": per_bin(run.arrival, run.added_wait, bin_s, 0, end,
                                  percentile_of(99)),
        "server_wait": per_bin(run.arrival, queued, bin_s, 0, end, percentile_of(99)),
    }


# --- closed forms -------------------------------------------------------------------------


def capacity(max_items: int, setup_s: float, per_item_s: float) -> float:
    """Items per second a server doing full batches can sustain: b / (s₀ + b·s₁) → 1/s₁."""
    return max_items / (setup_s + max_items * per_item_s)


def _tail(rate: float, linger_s: float, max_items: int) -> np.ndarray:
    """P(N ≥ j) for j = 1 .. b − 1, N ~ Poisson(λ·linger) the arrivals during one linger."""
    if math.isinf(linger_s):
        return np.ones(max_items - 1)
    mean = rate * linger_s
    j = np.arange(max_items - 1)
    log_pmf = -mean + j * math.log(mean) - np.array([math.lgamma(k + 1) for k in j]) \
        if mean > 0 else np.where(j == 0, 0.0, -np.inf)
    return 1 - np.cumsum(np.exp(log_pmf))


def mean_batch_size(rate: float, max_items: int, linger_s: float) -> float:
    """E[batch] = E[min(b, 1 + N)] = 1 + Σ_{j=1}^{b−1} P(N ≥ j), N ~ Poisson(λ·linger)."""
    return 1 + float(np.sum(_tail(rate, linger_s, max_items)))


def oldest_wait(rate: float, max_items: int, linger_s: float) -> float:
    """Mean wait of a batch's first item, E[min(linger, S_{b−1})] with S_{b−1} the time of the
    (b−1)-th later arrival: (1/λ)·Σ_{j=1}^{b−1} P(N ≥ j). By Jensen's inequality (min is
    concave) it is at most the rough form min(linger, (b − 1)/λ)."""
    return float(np.sum(_tail(rate, linger_s, max_items))) / rate


def mean_added_wait(rate: float, max_items: int, linger_s: float) -> float:
    """Mean time an item waits in the batcher, Poisson arrivals (renewal-reward over batches).

    A batch's items wait in total ∫₀ᴰ (1 + N(u)) du, D its dispatch delay; taking the mean,
    (1/λ)·Σ_{j=1}^{b−1} j·P(N ≥ j). Divided by the mean batch size. Limits: (b − 1)/(2λ) with
    no linger cap; linger·(λ·linger + 2) / (2·(1 + λ·linger)) with no size cap.
    """
    tail = _tail(rate, linger_s, max_items)
    total = float(np.sum(np.arange(1, max_items) * tail)) / rate
    return total / (1 + float(np.sum(tail)))


def rough_added_wait(rate: float, max_items: int, linger_s: float) -> float:
    """The rule of thumb min(linger, (b − 1)/λ): the time to fill a batch, capped by linger."""
    return min(linger_s, (max_items - 1) / rate)


# --- measuring a real flush ---------------------------------------------------------------


def measure_flush_costs(flush: Callable[[list[Any]], None], make_batch: Callable[[int], list[Any]],
                        sizes: Sequence[int], repeats: int = 5) -> np.ndarray:
    """Median wall-clock seconds of ``flush(make_batch(n))`` for each n in ``sizes``."""
    check_int("repeats", repeats, 1)
    medians = []
    for n in sizes:
        runs = []
        for _ in range(repeats):
            batch = make_batch(n)
            began = time.perf_counter()
            flush(batch)
            runs.append(time.perf_counter() - began)
        medians.append(float(np.median(runs)))
    return np.array(medians)


def fit_costs(sizes: Sequence[int], seconds: Sequence[float]) -> tuple[float, float]:
    """Least-squares s₀, s₁ of seconds ≈ s₀ + n·s₁."""
    per_item, setup = np.polyfit(np.asarray(sizes, float), np.asarray(seconds, float), 1)
    return float(setup), float(per_item)


# --- plots --------------------------------------------------------------------------------


def plot_sweep(rows: Sequence[dict[str, Any]], by: str = "linger_s"):
    """p99 latency, mean added wait and throughput against ``max_items``, a line per ``by``."""
    from simulations import plots

    rows = experiments.aggregate(rows, by=("max_items", by), metrics=(
        "p99_latency_s", "mean_added_wait_s", "throughput_rps"))
    return plots.sweep_panels(
        rows, x="max_items", by=by, metrics=("p99_latency_s", "mean_added_wait_s",
                                            "throughput_rps"),
        xlabel="max_items b", group_label=lambda v: f"linger {v * 1e3:g} ms",
        ylabels={"p99_latency_s": "p99 latency (s)", "mean_added_wait_s":
                 "mean wait in the batcher (s)", "throughput_rps": "throughput (items/s)"},
        log_y=("p99_latency_s",))


def draw_tradeoff(arrival_rate: float = 800.0, linger_ms: float = 5.0, setup_ms: float = 4.0,
                  per_item_ms: float = 0.2, duration_s: float = 2.0):
    """The slider figure: capacity and p99 latency against b at one load, theory beside it."""
    from simulations import plots

    sizes = [1, 2, 4, 8, 16, 32, 64]
    xs = np.log2(sizes)
    base = Scenario(arrival_rate=arrival_rate, linger_s=linger_ms / 1e3, setup_s=setup_ms / 1e3,
                    per_item_s=per_item_ms / 1e3, duration_s=duration_s)
    runs = [summary(simulate(replace(base, max_items=b)), 0.25) for b in sizes]
    fig, (left, right) = plots.plt.subplots(1, 2, figsize=(9, 3.4))
    left.plot(xs, [capacity(b, base.setup_s, base.per_item_s) for b in sizes], **plots.THEORY,
              label="capacity b/(s₀ + b·s₁)")
    left.axhline(arrival_rate, color=plots.COLORS[1], label="offered load λ")
    left.plot(xs, [r["throughput_rps"] for r in runs], "o", label="simulated throughput")
    left.set_xlabel("max_items b")
    left.set_ylabel("items per second")
    left.legend(fontsize="small")
    right.plot(xs, [r["p99_latency_s"] * 1e3 for r in runs], "o-", label="p99 latency")
    right.plot(xs, [r["mean_added_wait_s"] * 1e3 for r in runs], "s", label="mean added wait")
    right.plot(xs, [mean_added_wait(arrival_rate, b, base.linger_s) * 1e3 for b in sizes],
               **plots.THEORY, label="added wait, closed form")
    plots.log_scale(right, "y")
    for ax in (left, right):  # b doubles: a plain axis at log2(b) draws faster than a log one
        ax.set_xticks(xs, [str(b) for b in sizes])
    right.set_xlabel("max_items b")
    right.set_ylabel("time (ms)")
    right.legend(fontsize="small")
    return fig


def plot_dashboard(runs: dict[str, Run], bin_s: float = 0.5, burst: tuple[float, float] = ()):
    """Completions, batch size, p99 wait and latency over time, a curve per run."""
    from simulations import plots

    series = {name: over_time(run, bin_s) for name, run in runs.items()}
    times = next(iter(series.values()))["arrivals"][0]
    panels = {
        "completions (items/s)": {n: s["completions"][1] for n, s in series.items()},
        "mean batch size (items)": {n: s["batch"][1] for n, s in series.items()},
        "p99 added wait (s)": {n: s["p99_added_wait"][1] for n, s in series.items()},
        "p99 latency (s)": {n: s["p99_latency"][1] for n, s in series.items()},
    }
    return plots.dashboard(times, panels, windows=[burst] if burst else (),
                           window_label="burst")
