"""The priority-queue study: high-priority latency against low-priority starvation.

Picture the triage desk of the pattern's module with a stopwatch: patients arrive at random
(Poisson), a share of them urgent, one doctor sees them one at a time and never leaves a patient
half seen (non-preemptive). The urgent wait little whatever the others do; the rest wait for the
urgent who keep arriving, and as the urgent share or the total load grows their wait explodes.

``simulate`` runs the pattern's own `PriorityQueue` (with or without aging) in front of one
server in a small event loop on seeded arrivals, classes and service times (common random
numbers: runs that differ only in the queue's settings see the same traffic); an optional
`LoadShedder` (the load-shedding lesson's pattern) admits each request first. ``simulate_pool``
runs the same traffic through the toolkit's SimPy ``ServerPool`` with its ``"priority"``,
``"preemptive"`` or ``"fifo"`` discipline; a test holds the two paths together. Cobham's
closed form (``simulations.theory.priority_mean_waits``) sits beside the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import numpy as np
import simpy

from patterns.checks import check_choice, check_positive, check_probability
from patterns.communication.priority_queue import PriorityQueue
from patterns.resilience.load_shedding import LoadShedder
from simulations import experiments, theory
from simulations.distributions import Deterministic, make_distribution
from simulations.metrics import per_bin, percentile_of, rate_over_time
from simulations.servers import ServerPool
from simulations.workloads import PoissonArrivals

__all__ = [
    "PriorityQueue", "Run", "Scenario", "cobham_waits", "draw_tradeoff", "fifo_wait",
    "inversion_demo", "over_time", "plot_dashboard", "plot_sweep", "simulate", "simulate_pool",
    "summary", "sweep",
]


@dataclass(frozen=True)
class Scenario:
    """Poisson requests at ``arrival_rate`` per s, a ``high_share`` of them class 0 (urgent),
    the rest class 1, one server, service times of mean ``mean_service_s`` and squared
    coefficient of variation ``service_scv`` (1: exponential), the same for both classes.

    ``discipline``: "priority" (the pattern), "fifo" (one level for all) or, in
    ``simulate_pool`` only, "preemptive". ``aging_s``: the pattern's aging (None: none).
    ``shed_max_wait_s``: a `LoadShedder` in front, its longest estimated wait per class.
    ``burst``: (start, end, extra rate) of an overload episode, for the dashboard.
    """

    arrival_rate: float = 40.0
    high_share: float = 0.3
    mean_service_s: float = 0.02
    service_scv: float = 1.0
    discipline: str = "priority"
    aging_s: float | None = None
    shed_max_wait_s: tuple[float, float] | None = None
    duration_s: float = 600.0
    burst: tuple[float, float, float] | None = None
    seed: int = 1

    def __post_init__(self) -> None:
        check_positive("Scenario.arrival_rate", self.arrival_rate)
        check_probability("Scenario.high_share", self.high_share)
        check_positive("Scenario.mean_service_s", self.mean_service_s)
        check_choice("Scenario.discipline", self.discipline, ("priority", "fifo", "preemptive"))
        if self.aging_s is not None:
            check_positive("Scenario.aging_s", self.aging_s)
        check_positive("Scenario.duration_s", self.duration_s)

    @property
    def load(self) -> float:
        """Offered load ρ = λ·E[S] (without the burst)."""
        return self.arrival_rate * self.mean_service_s


@dataclass
class Run:
    """One row per request: arrival, class, start and end of service (NaN when shed)."""

    scenario: Scenario
    arrival: np.ndarray
    cls: np.ndarray
    service: np.ndarray
    start: np.ndarray
    end: np.ndarray

    @property
    def wait(self) -> np.ndarray:
        return self.start - self.arrival

    @property
    def shed(self) -> np.ndarray:
        return np.isnan(self.start)


def _traffic(sc: Scenario, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    arrival = PoissonArrivals(sc.arrival_rate).times(rng, horizon=sc.duration_s)
    if sc.burst is not None:
        start, end, rate = sc.burst
        extra = start + PoissonArrivals(rate).times(rng, horizon=end - start)
        arrival = np.sort(np.concatenate([arrival, extra]))
    n = len(arrival)
    cls = (rng.random(n) >= sc.high_share).astype(int)  # drawn for every run: common numbers
    service = make_distribution("lognormal" if sc.service_scv not in (0.0, 1.0) else
                                ("exponential" if sc.service_scv == 1.0 else "deterministic"),
                                sc.mean_service_s, sc.service_scv).sample(rng, n)
    return arrival, cls, np.asarray(service, float)


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """One seeded run of the pattern's queue before one non-preemptive server."""
    sc = scenario
    if sc.discipline == "preemptive":
        return simulate_pool(sc, rng)
    rng = rng if rng is not None else np.random.default_rng(sc.seed)
    arrival, cls, service = _traffic(sc, rng)
    n = len(arrival)
    now = [0.0]
    queue = PriorityQueue(levels=2, aging_s=sc.aging_s, clock=lambda: now[0])
    shedder = None if sc.shed_max_wait_s is None else LoadShedder(
        sc.shed_max_wait_s, workers=1, window_s=1.0, clock=lambda: now[0])
    levels = cls if sc.discipline == "priority" else np.zeros(n, dtype=int)
    start, end = np.full(n, np.nan), np.full(n, np.nan)
    i, busy_until, busy = 0, np.inf, False
    arrival_l, levels_l, cls_l, service_l = (arrival.tolist(), levels.tolist(), cls.tolist(),
                                             service.tolist())

    def begin() -> float:
        j = queue.get()[0]
        start[j] = now[0]
        end[j] = now[0] + service_l[j]
        return end[j]

    while i < n or busy:
        if i < n and (not busy or arrival_l[i] < busy_until):
            now[0] = arrival_l[i]
            if shedder is None or shedder.admit(cls_l[i]):
                queue.put(i, levels_l[i])
                if not busy:
                    busy_until, busy = begin(), True
            i += 1
        else:
            now[0] = busy_until
            if shedder is not None:
                shedder.done()
            busy = bool(len(queue))
            busy_until = begin() if busy else np.inf
    return Run(sc, arrival, cls, service, start, end)


def simulate_pool(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """The same traffic through the toolkit's SimPy ``ServerPool`` (one server) with the
    scenario's discipline. For "priority" and "fifo" a handler replays each request's own
    service time, so the rows equal ``simulate``'s exactly (a test holds them equal); for
    "preemptive" (which needs a distribution) the pre-drawn times are served in start order,
    the same draws in another order."""
    sc = scenario
    rng = rng if rng is not None else np.random.default_rng(sc.seed)
    arrival, cls, service = _traffic(sc, rng)
    env = simpy.Environment()
    times = service.tolist()

    def handler(key: int, _cls: int):
        yield env.timeout(times[key])

    served = _Replayed(sc.mean_service_s, service) if sc.discipline == "preemptive" else handler
    pool = ServerPool(env, 1, served, rng, discipline=sc.discipline)

    def source():
        for i, (t, c) in enumerate(zip(arrival.tolist(), cls.tolist(), strict=True)):
            yield env.timeout(t - env.now)
            pool.submit(i, c if sc.discipline != "fifo" else 0)

    env.process(source())
    env.run()
    table = pool.log.table()
    if sc.discipline == "preemptive":
        service = table.end - table.start  # includes the time spent preempted
    return Run(sc, arrival, cls, service, table.start.copy(), table.end.copy())


class _Replayed(Deterministic):
    """The pre-drawn service times handed out in chunks, in the order the pool asks."""

    def __init__(self, mean: float, values: np.ndarray) -> None:
        super().__init__(mean)
        self._values, self._next = values, 0

    def sample(self, rng: np.random.Generator, size: int | None = None) -> np.ndarray:
        size = 1 if size is None else size
        chunk = self._values[self._next:self._next + size]
        self._next += len(chunk)
        return chunk if len(chunk) else np.full(size, self.mean)


def summary(run: Run, warmup_s: float | None = None) -> dict[str, float]:
    """Per-class mean and p99 wait, the low class's longest wait, shed shares (after warm-up)."""
    sc = run.scenario
    warmup_s = 0.05 * sc.duration_s if warmup_s is None else warmup_s
    sel = run.arrival >= warmup_s
    out: dict[str, float] = {}
    for k, name in ((0, "high"), (1, "low")):
        mine = sel & (run.cls == k)
        served = mine & ~run.shed
        waits = run.wait[served]
        out[f"{name}_mean_wait_s"] = float(waits.mean()) if len(waits) else float("nan")
        out[f"{name}_p99_wait_s"] = float(np.percentile(waits, 99)) if len(waits) else float("nan")
        out[f"{name}_max_wait_s"] = float(waits.max()) if len(waits) else float("nan")
        out[f"{name}_shed_share"] = float(run.shed[mine].mean()) if mine.any() else float("nan")
    out["mean_wait_s"] = float(run.wait[sel & ~run.shed].mean())
    return out


def _model(rng: np.random.Generator, **settings: Any) -> dict[str, float]:
    return summary(simulate(replace(Scenario(), **settings), rng))


def sweep(grid: dict[str, Sequence[Any]], *, seed: int = 1, replications: int = 3,
          **fixed: Any) -> list[dict[str, Any]]:
    """``experiments.sweep`` over the scenario's settings (the first 5 % dropped as warm-up)."""
    return experiments.sweep(_model, grid, seed=seed, replications=replications, fixed=fixed)


# --- closed forms -------------------------------------------------------------------------


def cobham_waits(scenario: Scenario) -> tuple[float, float]:
    """Cobham's mean queue waits (high, low) for the scenario's two classes (non-preemptive
    M/G/1 priority, Poisson arrivals, one service distribution for both classes)."""
    sc = scenario
    rates = [sc.arrival_rate * sc.high_share, sc.arrival_rate * (1 - sc.high_share)]
    high, low = theory.priority_mean_waits(rates, [sc.mean_service_s] * 2, [sc.service_scv] * 2)
    return high, low


def fifo_wait(scenario: Scenario) -> float:
    """Pollaczek–Khinchine mean wait of the same traffic in one FIFO line: W₀/(1 − ρ)."""
    sc = scenario
    residual = sc.arrival_rate * sc.mean_service_s ** 2 * (1 + sc.service_scv) / 2
    return residual / (1 - sc.load)


# --- priority inversion ------------------------------------------------------------------


def inversion_demo(db_discipline: str, *, arrival_rate: float = 150.0, high_share: float = 0.2,
                   workers: int = 8, cpu_s: float = 0.004, db_s: float = 0.005,
                   duration_s: float = 60.0, seed: int = 1) -> dict[str, float]:
    """Workers take requests from a priority queue, then each needs the one shared database
    connection (a lock). With ``db_discipline="fifo"`` the connection is granted in arrival
    order, so a high-priority request waits behind low-priority holders (priority inversion);
    ``"priority"`` passes the request's class down (priority inheritance). Mean latency per
    class."""
    env = simpy.Environment()
    rng = np.random.default_rng(seed)
    db = ServerPool(env, 1, make_distribution("exponential", db_s), rng,
                    discipline=db_discipline)

    def handler(key: int, cls: int):
        yield env.timeout(cpu_s)
        return (yield db.call(key, cls))

    front = ServerPool(env, workers, handler, discipline="priority")
    from simulations.clients import RequestSource

    RequestSource(env, PoissonArrivals(arrival_rate), front.submit, rng, horizon_s=duration_s,
                  class_weights=[high_share, 1 - high_share])
    env.run()
    table = front.log.table()
    keep = table.arrival > 0.1 * duration_s
    return {f"{name}_mean_latency_s": float(table.latency[keep & (table.cls == k)].mean())
            for k, name in ((0, "high"), (1, "low"))}


# --- over time and plots -------------------------------------------------------------------


def over_time(run: Run, bin_s: float = 5.0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Dashboard series: arrivals per s, p99 wait per class, shed per s and queue length."""
    end = run.scenario.duration_s
    served = ~run.shed
    series = {"arrivals": rate_over_time(run.arrival, bin_s, 0, end),
              "shed": rate_over_time(run.arrival[run.shed], bin_s, 0, end)}
    for k, name in ((0, "high"), (1, "low")):
        mine = served & (run.cls == k)
        series[f"{name}_p99"] = per_bin(run.arrival[mine], run.wait[mine], bin_s, 0, end,
                                        percentile_of(99))
    # requests waiting at each bin edge: arrived and admitted, not yet started
    edges = series["arrivals"][0]
    starts = np.sort(run.start[served])
    arrived = np.sort(run.arrival[served])
    series["queue"] = (edges, np.searchsorted(arrived, edges) - np.searchsorted(starts, edges))
    return series


def plot_sweep(rows: Sequence[dict[str, Any]], by: str = "arrival_rate"):
    """Mean wait of each class and the low class's p99 against the high share, a line per
    ``by`` value, with 95 % intervals across replications."""
    from simulations import plots

    metrics = ("high_mean_wait_s", "low_mean_wait_s", "low_p99_wait_s")
    rows = experiments.aggregate(rows, by=("high_share", by), metrics=metrics)
    return plots.sweep_panels(
        rows, x="high_share", by=by, metrics=metrics, xlabel="share of high-priority traffic",
        group_label=lambda v: f"λ = {v:g}/s (ρ = {v * Scenario().mean_service_s:.2f})",
        ylabels={"high_mean_wait_s": "high class: mean wait (s)",
                 "low_mean_wait_s": "low class: mean wait (s)",
                 "low_p99_wait_s": "low class: p99 wait (s)"},
        log_y=metrics)


@cache
def _draw_run(load: float, high_share: float, aging_s: float | None, duration_s: float):
    sc = Scenario(arrival_rate=load / Scenario().mean_service_s, high_share=high_share,
                  aging_s=aging_s, duration_s=duration_s)
    return summary(simulate(sc)), cobham_waits(sc), fifo_wait(sc)


def draw_tradeoff(load: float = 0.8, aging_s: float = 0.0, duration_s: float = 90.0):
    """The slider figure: each class's mean wait against the high share at one load, Cobham's
    curves beside the simulation, and the low class's p99 with the chosen aging (0: none)."""
    from simulations import plots

    shares = [0.0, 0.2, 0.4, 0.6, 0.8, 0.95]
    aging = aging_s if aging_s > 0 else None
    runs = [_draw_run(load, s, aging, duration_s) for s in shares]
    fig, (left, right) = plots.plt.subplots(1, 2, figsize=(9, 3.4))
    for k, name, color in ((0, "high", plots.COLORS[0]), (1, "low", plots.COLORS[1])):
        left.plot(shares, [r[1][k] * 1e3 for r in runs], color=color, linestyle="--",
                  label=f"{name}: Cobham")
        left.plot(shares, [r[0][f"{name}_mean_wait_s"] * 1e3 for r in runs], "o", color=color,
                  label=f"{name}: simulated" + (" (aging)" if aging else ""))
    left.plot(shares, [r[2] * 1e3 for r in runs], color="grey", linewidth=0.8,
              label="FIFO (no priority)")
    left.set_xlabel("share of high-priority traffic")
    left.set_ylabel("mean wait (ms)")
    left.set_title(f"ρ = {load:.2f}", fontsize="medium")
    left.legend(fontsize="x-small")
    for name, marker in (("high", "o-"), ("low", "s-")):
        right.plot(shares, [r[0][f"{name}_p99_wait_s"] * 1e3 for r in runs], marker,
                   label=f"{name}: p99 wait")
    plots.log_scale(right, "y")
    right.set_xlabel("share of high-priority traffic")
    right.set_ylabel("p99 wait (ms)")
    right.set_title("aging " + (f"{aging_s:g} s" if aging else "off"), fontsize="medium")
    right.legend(fontsize="small")
    return fig


def plot_dashboard(runs: dict[str, Run], bin_s: float = 5.0,
                   burst: tuple[float, float] = ()):
    """Arrivals, p99 wait of each class, shed rate and queue length over time, per run."""
    from simulations import plots

    series = {name: over_time(run, bin_s) for name, run in runs.items()}
    times = next(iter(series.values()))["arrivals"][0]
    panels = {
        "arrivals (req/s)": {n: s["arrivals"][1] for n, s in series.items()},
        "high p99 wait (s)": {n: s["high_p99"][1] for n, s in series.items()},
        "low p99 wait (s)": {n: s["low_p99"][1] for n, s in series.items()},
        "shed (req/s)": {n: s["shed"][1] for n, s in series.items()},
        "waiting (requests)": {n: s["queue"][1] for n, s in series.items()},
    }
    return plots.dashboard(times, panels, windows=[burst] if burst else (),
                           window_label="overload")
