"""The queue-load-leveling study: queue wait against utilisation, burst absorption and drain.

Picture the ticket office of the pattern's module with a stopwatch: fans arrive at random
(Poisson) or in waves (a two-state Markov-modulated Poisson process, MMPP-2), four windows
sell tickets, and the line in front of them is bounded or not. We time how long fans wait,
how many are turned away, how long the line takes to clear after a wave, and how many windows
keep the mean wait under a target.

``simulate`` draws seeded arrivals and service times and runs the FIFO pool with the toolkit's
fast path (``fastpath.fifo_queue``; a bounded queue turns away what finds it full); a "direct
call" is the same pool with no room to wait (capacity = workers). ``simulate_simpy`` runs the
pattern's own `LevelingQueue` with SimPy worker processes and gives the same rows (a test holds
them equal); it also takes an autoscaler that sets the worker count from the queue's backlog
(Level 4). Closed forms sit beside the model: the MMPP's arrival variability, the drain time
after a burst, Kingman's approximation and the workers needed for a wait target.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import simpy

from patterns.checks import check_choice, check_int, check_non_negative, check_positive
from patterns.communication.queue_load_leveling import LevelingQueue
from simulations import experiments, theory
from simulations.distributions import make_distribution
from simulations.fastpath import fifo_queue
from simulations.metrics import per_bin, percentile_of, queue_length_over_time, rate_over_time
from simulations.records import Outcome, RequestTable
from simulations.workloads import BurstyArrivals, PoissonArrivals

__all__ = [
    "LevelingQueue", "Run", "Scenario", "arrival_process", "burst_backlog", "draw_burst",
    "drain_time_s", "gap_scv", "kingman_multi_server_wait", "measured_idc", "mmpp_arrival_scv",
    "over_time", "plot_dashboard", "plot_sweep", "simulate", "simulate_simpy", "summary",
    "sweep", "worker_seconds", "workers_needed",
]


@dataclass(frozen=True)
class Scenario:
    """Messages at ``arrival_rate`` per s (mean) into a queue drained by ``workers`` workers.

    ``arrivals``: "poisson", or "bursty": an MMPP-2 whose rate alternates between
    (1 + swing)·λ and (1 − swing)·λ, each phase lasting an exponential time of mean
    ``phase_s``. ``capacity``: most messages held, waiting plus in service (None: unbounded).
    ``burst``: (start, end, extra rate) of an extra Poisson surge on top, for the burst demos.
    """

    arrival_rate: float = 300.0
    arrivals: str = "poisson"
    swing: float = 0.6
    phase_s: float = 0.1
    service_s: float = 0.01  # mean service time E[S]
    service_scv: float = 1.0  # c_s²: 0 constant, 1 exponential, otherwise lognormal
    workers: int = 4
    capacity: int | None = None
    duration_s: float = 60.0
    burst: tuple[float, float, float] | None = None
    seed: int = 1

    def __post_init__(self) -> None:
        check_positive("Scenario.arrival_rate", self.arrival_rate)
        check_choice("Scenario.arrivals", self.arrivals, ("poisson", "bursty"))
        if not 0 <= self.swing < 1:
            raise ValueError(f"Scenario.swing must be in [0, 1) (got {self.swing!r})")
        check_positive("Scenario.phase_s", self.phase_s)
        check_positive("Scenario.service_s", self.service_s)
        check_non_negative("Scenario.service_scv", self.service_scv)
        check_int("Scenario.workers", self.workers, 1)
        if self.capacity is not None:
            check_int("Scenario.capacity", self.capacity, self.workers)
        check_positive("Scenario.duration_s", self.duration_s)

    @property
    def load(self) -> float:
        """Utilisation ρ = λ·E[S]/c of the steady traffic (the burst not counted)."""
        return self.arrival_rate * self.service_s / self.workers


@dataclass
class Run:
    """One run: the scenario, one row per message, and (SimPy runs) the workers over time."""

    scenario: Scenario
    table: RequestTable
    workers_over_time: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def rejected(self) -> np.ndarray:
        return self.table.has(Outcome.REJECTED)


def arrival_process(scenario: Scenario) -> PoissonArrivals | BurstyArrivals:
    """The steady traffic: Poisson, or the MMPP-2 of ``swing`` and ``phase_s``."""
    if scenario.arrivals == "poisson":
        return PoissonArrivals(scenario.arrival_rate)
    high = (1 + scenario.swing) * scenario.arrival_rate
    low = (1 - scenario.swing) * scenario.arrival_rate
    return BurstyArrivals(high, scenario.phase_s, scenario.phase_s, rate_off=low)


def _draw(scenario: Scenario, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    times = arrival_process(scenario).times(rng, horizon=scenario.duration_s)
    if scenario.burst is not None:
        start, end, rate = scenario.burst
        extra = start + PoissonArrivals(rate).times(rng, horizon=end - start)
        times = np.sort(np.concatenate([times, extra]))
    kind = {0.0: "deterministic", 1.0: "exponential"}.get(float(scenario.service_scv),
                                                          "lognormal")
    scv = None if kind != "lognormal" else scenario.service_scv
    services = make_distribution(kind, scenario.service_s, scv).sample(rng, len(times))
    return times, services


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """One seeded run of the queue and its worker pool (the fast path, no event loop)."""
    rng = rng if rng is not None else np.random.default_rng(scenario.seed)
    times, services = _draw(scenario, rng)
    return Run(scenario, fifo_queue(times, services, scenario.workers, scenario.capacity))


def simulate_simpy(scenario: Scenario, rng: np.random.Generator | None = None,
                   autoscaler: Any = None, interval_s: float = 1.0, startup_s: float = 0.0,
                   held_per_worker: float = 2.0) -> Run:
    """The same run with the pattern's `LevelingQueue` and one SimPy process per worker.

    With an ``autoscaler`` (``desired(metric, current, now)``, e.g. the auto-scaling lesson's
    ``ProductionAutoscaler``), every ``interval_s`` it reads messages held per worker divided
    by ``held_per_worker`` (1.0 = on target) and sets the worker count; a new worker starts
    ``startup_s`` later, a removed one stops after its current message.
    """
    rng = rng if rng is not None else np.random.default_rng(scenario.seed)
    arrival, services = _draw(scenario, rng)
    n = len(arrival)
    env = simpy.Environment()
    queue = LevelingQueue(scenario.capacity, visibility_timeout_s=1e12, clock=lambda: env.now)
    start, end = np.full(n, np.nan), np.full(n, np.nan)
    outcome = np.full(n, int(Outcome.OK), dtype=np.int8)
    idle: deque[simpy.Event] = deque()
    wanted, running, timeline = [scenario.workers], [0], [(0.0, 0)]

    def count(change: int) -> None:
        running[0] += change
        timeline.append((env.now, running[0]))

    def worker():
        count(+1)
        while running[0] <= wanted[0]:
            message = queue.receive()
            if message is None:
                wake = env.event()
                idle.append(wake)
                yield wake
                continue
            start[message.body] = env.now
            yield env.timeout(services[message.id])  # the k-th admitted message's service
            end[message.body] = env.now
            queue.ack(message)
        count(-1)

    def later():
        yield env.timeout(startup_s)
        yield from worker()

    def source():
        for i, t in enumerate(arrival):
            yield env.timeout(t - env.now)
            if queue.send(i) is None:
                outcome[i], end[i] = int(Outcome.REJECTED), t
            elif idle:
                idle.popleft().succeed()

    def scaler():
        while True:
            yield env.timeout(interval_s)
            metric = len(queue) / (wanted[0] * held_per_worker)
            new = autoscaler.desired(metric, wanted[0], env.now)
            for _ in range(new - wanted[0]):
                env.process(later())
            wanted[0] = new
            while running[0] > wanted[0] and idle:  # idle workers above the target leave
                idle.popleft().succeed()

    for _ in range(scenario.workers):
        env.process(worker())
    env.process(source())
    if autoscaler is None:
        env.run()
    else:
        env.process(scaler())
        env.run(until=scenario.duration_s + 30.0)
    table = RequestTable(arrival=arrival, start=start, end=end, outcome=outcome,
                         server=np.full(n, -1, dtype=np.int32),
                         cls=np.full(n, -1, dtype=np.int16), key=np.full(n, -1, dtype=np.int32))
    times, counts = np.array(timeline).T
    return Run(scenario, table, (times, counts))


def worker_seconds(run: Run, end_s: float) -> float:
    """Worker-seconds used in [0, end_s) (SimPy runs: the running workers over time)."""
    if run.workers_over_time is None:
        return run.scenario.workers * end_s
    times, counts = run.workers_over_time
    edges = np.append(np.minimum(times, end_s), end_s)
    return float(np.sum(np.diff(edges) * counts))


def summary(run: Run, start_s: float | None = None, end_s: float | None = None
            ) -> dict[str, float]:
    """Wait, rejections and throughput of the messages arriving in [start_s, end_s)
    (default: after the first 10 % of the run, as warm-up)."""
    sc = run.scenario
    start_s = 0.1 * sc.duration_s if start_s is None else start_s
    end_s = sc.duration_s if end_s is None else end_s
    t = run.table
    sel = (t.arrival >= start_s) & (t.arrival < end_s)
    served = sel & t.has(Outcome.OK) & ~np.isnan(t.start)
    wait = t.wait[served]
    busy = np.nansum(t.end[served] - t.start[served])
    times, depth = queue_length_over_time(t)
    inside = (times >= start_s) & (times < end_s)
    return {
        "mean_wait_s": float(wait.mean()) if len(wait) else math.nan,
        "p99_wait_s": float(np.percentile(wait, 99)) if len(wait) else math.nan,
        "rejected_fraction": float(np.mean(run.rejected[sel])) if sel.any() else math.nan,
        "throughput_rps": float(served.sum() / (end_s - start_s)),
        "utilisation": float(busy / (sc.workers * (end_s - start_s))),
        "max_depth": float(depth[inside].max()) if inside.any() else 0.0,
    }


def _model(rng: np.random.Generator, **settings: Any) -> dict[str, float]:
    scenario = replace(Scenario(), **settings)
    return summary(simulate(scenario, rng))


def sweep(grid: dict[str, Sequence[Any]], *, seed: int = 1, replications: int = 3,
          **fixed: Any) -> list[dict[str, Any]]:
    """``experiments.sweep`` over the scenario's settings (the first 10 % of each run dropped)."""
    return experiments.sweep(_model, grid, seed=seed, replications=replications, fixed=fixed)


def over_time(run: Run, bin_s: float = 1.0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Dashboard series per bin: messages offered and served (service starts: the load the
    downstream sees) and rejected per s, the deepest backlog, and the p99 wait by arrival."""
    t, end = run.table, run.scenario.duration_s
    ok = ~np.isnan(t.start)
    times, depth = queue_length_over_time(t)
    edges = np.arange(bin_s, end + bin_s / 2, bin_s)
    # deepest backlog in each bin: the step function's maximum between the bin's edges
    idx = np.searchsorted(times, edges - bin_s, side="right")
    stop = np.searchsorted(times, edges, side="right")
    deepest = np.array([depth[max(a - 1, 0):b].max() if b > 0 else 0 for a, b in zip(
        idx, stop, strict=True)], dtype=float)
    return {
        "offered": rate_over_time(t.arrival, bin_s, 0, end),
        "served": rate_over_time(t.start[ok], bin_s, 0, end),
        "rejected": rate_over_time(t.arrival[run.rejected], bin_s, 0, end),
        "depth": (edges - bin_s / 2, deepest),
        "p99_wait": per_bin(t.arrival[ok], t.wait[ok], bin_s, 0, end, percentile_of(99)),
    }


# --- closed forms -------------------------------------------------------------------------


def mmpp_arrival_scv(rate_high: float, rate_low: float, mean_high_s: float,
                     mean_low_s: float) -> float:
    """The MMPP-2's asymptotic index of dispersion, lim Var N(t) / E N(t), the c_a² that
    heavy-traffic limits use.

    With π_h, π_l the shares of time in each phase and r = 1/mean_high + 1/mean_low the rate
    at which the phase forgets itself, the arrival rate λ(t) has autocovariance
    π_h·π_l·(λ_h − λ_l)²·e^{−r·τ}, so Var N(t) ≈ λ̄t + 2t·π_h·π_l·(λ_h − λ_l)²/r:
    c_a² = 1 + 2·π_h·π_l·(λ_h − λ_l)² / (r·λ̄). Poisson (λ_h = λ_l) gives 1.
    """
    check_non_negative("rate_high", rate_high)
    check_non_negative("rate_low", rate_low)
    up, down = 1 / check_positive("mean_high_s", mean_high_s), 1 / check_positive(
        "mean_low_s", mean_low_s)
    share_high, share_low = down / (up + down), up / (up + down)
    mean = share_high * rate_high + share_low * rate_low
    check_positive("mean rate", mean)
    return 1 + 2 * share_high * share_low * (rate_high - rate_low) ** 2 / ((up + down) * mean)


def gap_scv(times: np.ndarray) -> float:
    """Squared coefficient of variation of the gaps between arrivals, Var[gap]/E[gap]²."""
    gaps = np.diff(np.asarray(times, dtype=float))
    return float(gaps.var() / gaps.mean() ** 2)


def measured_idc(times: np.ndarray, window_s: float, horizon_s: float) -> float:
    """Var/mean of the arrivals counted in consecutive windows of ``window_s``."""
    counts = np.bincount((np.asarray(times) // window_s).astype(int),
                         minlength=int(horizon_s // window_s))[: int(horizon_s // window_s)]
    return float(counts.var() / counts.mean())


def kingman_multi_server_wait(arrival_rate: float, service_s: float, workers: int,
                              arrival_scv: float, service_scv: float) -> float:
    """Mean wait of c workers with general arrivals and service: the M/M/c wait (Erlang C)
    times Kingman's variability factor (c_a² + c_s²)/2. For c = 1 it is Kingman's formula;
    for c_a² = c_s² = 1 it is exact M/M/c."""
    mmc = theory.mmc_mean_wait(arrival_rate, 1 / service_s, workers)
    return mmc * (arrival_scv + service_scv) / 2


def workers_needed(arrival_rate: float, service_s: float, wait_target_s: float,
                   arrival_scv: float = 1.0, service_scv: float = 1.0) -> int:
    """The fewest workers whose mean wait (``kingman_multi_server_wait``) meets the target."""
    check_positive("wait_target_s", wait_target_s)
    c = math.floor(arrival_rate * service_s) + 1  # the first stable pool
    while kingman_multi_server_wait(arrival_rate, service_s, c, arrival_scv,
                                    service_scv) > wait_target_s:
        c += 1
    return c


def burst_backlog(burst_rate: float, workers: int, service_s: float, duration_s: float) -> float:
    """Fluid backlog at the end of a burst of ``burst_rate`` (total) lasting ``duration_s``:
    (λ_burst − c/E[S])·d, or 0 when the pool keeps up."""
    return max(0.0, (burst_rate - workers / service_s) * duration_s)


def drain_time_s(backlog: float, workers: int, service_s: float, arrival_rate: float) -> float:
    """Fluid time to clear ``backlog`` after a burst: B / (c/E[S] − λ); the pool works off the
    backlog only with the capacity the steady traffic leaves."""
    spare = workers / service_s - arrival_rate
    if spare <= 0:
        return math.inf
    return check_non_negative("backlog", backlog) / spare


# --- plots --------------------------------------------------------------------------------


def plot_sweep(rows: Sequence[dict[str, Any]]):
    """Mean and p99 wait against utilisation, a line per arrival process, with 95 % bars."""
    from simulations import plots

    table = experiments.aggregate(rows, by=("arrival_rate", "arrivals"),
                                  metrics=("mean_wait_s", "p99_wait_s", "utilisation"))
    for row in table:
        row["load"] = row["arrival_rate"] * Scenario().service_s / Scenario().workers
        row["mean_wait_ms"], row["mean_wait_ms_ci"] = row["mean_wait_s"] * 1e3, \
            row["mean_wait_s_ci"] * 1e3
        row["p99_wait_ms"], row["p99_wait_ms_ci"] = row["p99_wait_s"] * 1e3, \
            row["p99_wait_s_ci"] * 1e3
    return plots.sweep_panels(
        table, x="load", by="arrivals", metrics=("mean_wait_ms", "p99_wait_ms"),
        xlabel="utilisation ρ = λ·E[S]/c", group_label=lambda v: f"{v} arrivals",
        ylabels={"mean_wait_ms": "mean wait in the queue (ms)",
                 "p99_wait_ms": "p99 wait in the queue (ms)"},
        log_y=("mean_wait_ms", "p99_wait_ms"))


def draw_burst(burst_rate: float = 900.0, burst_s: float = 5.0, workers: int = 4,
               capacity: int = 2000, arrival_rate: float = 250.0):
    """The slider figure: a burst on top of steady traffic, queue against direct call.

    Top: the rate offered and the rate the downstream service sees; middle: the backlog with
    the fluid drain time marked; bottom: messages refused per s."""
    from simulations import plots

    base = Scenario(arrival_rate=arrival_rate, workers=workers, capacity=max(capacity, workers),
                    duration_s=30.0, burst=(5.0, 5.0 + burst_s, max(burst_rate - arrival_rate,
                                                                    1e-9)))
    queued = over_time(simulate(base), 0.5)
    direct = over_time(simulate(replace(base, capacity=workers)), 0.5)
    fig, axes = plots.plt.subplots(3, 1, figsize=(8, 6.2), sharex=True, layout="constrained")
    top, middle, bottom = axes
    top.plot(*queued["offered"], color="0.5", label="offered by the producer")
    top.plot(*queued["served"], label="seen downstream, with the queue")
    top.plot(*direct["served"], label="seen downstream, direct call")
    top.axhline(workers / base.service_s, color="black", linestyle=":",
                label="pool capacity c/E[S]")
    top.set_ylabel("messages/s")
    middle.plot(*queued["depth"], label="backlog, with the queue")
    backlog = min(burst_backlog(burst_rate, workers, base.service_s, burst_s), base.capacity)
    drain = drain_time_s(backlog, workers, base.service_s, arrival_rate)
    if math.isfinite(drain) and backlog > 0:
        middle.axvline(5.0 + burst_s + drain, color="black", linestyle="--",
                       label=f"fluid drain time {drain:.1f} s after the burst")
    middle.set_ylabel("messages waiting")
    middle.legend(fontsize="x-small")
    bottom.plot(*queued["rejected"], label="refused, with the queue")
    bottom.plot(*direct["rejected"], label="refused, direct call")
    bottom.set_ylabel("refused/s")
    bottom.set_xlabel("time (s)")
    bottom.legend(fontsize="x-small")
    for ax in axes:
        ax.axvspan(5.0, 5.0 + burst_s, **plots.WINDOW, label="burst" if ax is top else None)
        ax.grid(True, alpha=0.3)
    top.legend(fontsize="x-small", ncol=2)
    return fig


def plot_dashboard(runs: dict[str, Run], bin_s: float = 1.0,
                   burst: tuple[float, float] | None = None):
    """Offered and served rate, backlog, p99 wait and refusals over time, a curve per run."""
    from simulations import plots

    series = {name: over_time(run, bin_s) for name, run in runs.items()}
    times = next(iter(series.values()))["offered"][0]
    panels = {
        "served (messages/s)": {n: s["served"][1] for n, s in series.items()},
        "deepest backlog (messages)": {n: s["depth"][1] for n, s in series.items()},
        "p99 wait (s)": {n: s["p99_wait"][1] for n, s in series.items()},
        "refused (messages/s)": {n: s["rejected"][1] for n, s in series.items()},
    }
    return plots.dashboard(times, panels, windows=[burst] if burst else (),
                           window_label="burst")
