"""The concurrency-limits study: throughput and latency against the limit, and the knee.

Picture the restaurant again, with a stopwatch at the pass: seat one more table at a time and
note how many meals leave per minute and how long each took. Meals per minute climb, then stop
climbing (the one grill is always busy); from there on every extra table only waits longer.

A request spends ``delay_s`` on work that does not queue (the network, a cache, other
services: an infinite-server station) and ``service_s`` on one server that does (the grill: a
single FIFO server, exponential times). ``D = delay_s + service_s``, ``D_max = service_s``;
the knee is ``N* = (D + Z) / D_max``. Traffic is either a backlog that never empties
(``arrival_rate=None``: a closed system of ``limit`` users with think time ``think_s``, the
operational-analysis picture) or Poisson arrivals that the limiter admits or rejects. A
"slow" fault multiplies the server's times from ``slowdown_at_s`` on. Built from the toolkit:
``ServerPool``, ``ClosedLoopUsers``, ``RequestSource``, ``FaultSchedule``, the metrics, and the
bounds in ``simulations.theory``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import simpy
from simpy.events import Event, Timeout

from patterns.checks import (
    check_choice,
    check_int,
    check_non_negative,
    check_positive,
    check_range,
)
from patterns.performance.concurrency_limits import (
    AIMDLimit,
    FixedLimit,
    GradientLimit,
    Limit,
    Limiter,
    WindowedLimit,
)
from simulations import plots
from simulations.clients import ClosedLoopUsers, RequestSource
from simulations.distributions import Deterministic, Exponential
from simulations.experiments import aggregate, sweep
from simulations.faults import FaultSchedule, FaultWindow
from simulations.metrics import latency_over_time, occupancy, rate_over_time, time_average
from simulations.records import Outcome, RequestLog, RequestTable
from simulations.servers import ServerPool, Service
from simulations.theory import knee_population, response_bound, throughput_bound
from simulations.workloads import PoissonArrivals

__all__ = [
    "POLICIES", "LimiterService", "Run", "Scenario", "exact_closed", "gradient_equilibrium", "knee",
    "knee_sweep",
    "make_limit", "plot_adaptive", "plot_knee", "simulate", "summary",
]

POLICIES = ("fixed", "aimd", "gradient")


@dataclass(frozen=True)
class Scenario:
    """One run: the service, the traffic, the limit policy and the slowdown."""

    policy: str = "fixed"
    limit: int = 10  # the fixed limit, or an adaptive one's starting value
    arrival_rate: float | None = 300.0  # req/s; None = a backlog that never empties
    think_s: float = 0.0  # closed system only: mean think time Z (exponential)
    service_s: float = 0.005  # the queueing server's mean time: D_max
    delay_s: float = 0.045  # mean time on work that does not queue
    min_limit: int = 1  # adaptive policies: the floor
    aimd_timeout_s: float = 0.1  # AIMD: a call slower than this counts as a drop
    window_s: float = 1.0  # gradient: calls are averaged over windows this long (0: none)
    tolerance: float = 1.5  # gradient: how much slower than the baseline is still fine
    slowdown_at_s: float | None = None
    slow_factor: float = 2.0
    duration_s: float = 60.0
    seed: int = 1

    def __post_init__(self) -> None:
        check_choice("policy", self.policy, POLICIES)
        check_int("limit", self.limit, 1)
        check_int("min_limit", self.min_limit, 1, self.limit)
        if self.arrival_rate is not None:
            check_positive("arrival_rate", self.arrival_rate)
        check_non_negative("think_s", self.think_s)
        check_positive("service_s", self.service_s)
        check_non_negative("delay_s", self.delay_s)
        check_positive("aimd_timeout_s", self.aimd_timeout_s)
        check_non_negative("window_s", self.window_s)
        check_range("tolerance", self.tolerance, 1.0)
        if self.slowdown_at_s is not None:
            check_non_negative("slowdown_at_s", self.slowdown_at_s)
        check_positive("slow_factor", self.slow_factor)
        check_positive("duration_s", self.duration_s)


def make_limit(scenario: Scenario, clock=None) -> Limit:
    """The scenario's limit algorithm; the gradient limit sees windows of ``window_s`` of calls
    (one second by default, as in Netflix's library; 0 updates it on every call)."""
    s = scenario
    if s.policy == "fixed":
        return FixedLimit(s.limit)
    if s.policy == "aimd":
        return AIMDLimit(s.limit, min_limit=s.min_limit, timeout_s=s.aimd_timeout_s)
    gradient = GradientLimit(s.limit, min_limit=s.min_limit, tolerance=s.tolerance)
    return WindowedLimit(gradient, s.window_s, clock=clock) if s.window_s > 0 else gradient


def knee(scenario: Scenario, slowed: bool = False) -> float:
    """N* = (D + Z) / D_max for the scenario, before (or after) the slowdown."""
    service = scenario.service_s * (scenario.slow_factor if slowed else 1.0)
    return knee_population(scenario.delay_s + service, service, scenario.think_s)


class LimiterService:
    """A ``Service`` that admits a call through ``limiter`` or answers REJECTED at once.

    It writes one row per call to its own ``log`` and notes the limit after every release
    (``limit_t``, ``limit_v``).
    """

    def __init__(self, env: simpy.Environment, service: Service, limiter: Limiter) -> None:
        self.env, self.service, self.limiter = env, service, limiter
        self.log = RequestLog()
        self.limit_t: list[float] = [0.0]
        self.limit_v: list[float] = [limiter.limit.limit]

    def call(self, key: int = -1, cls: int = -1) -> Event:
        row = self.log.add(self.env.now, key, cls)
        token = self.limiter.try_acquire()
        if token is None:
            self.log.finished(row, self.env.now, Outcome.REJECTED)
            return Timeout(self.env, 0.0, Outcome.REJECTED)
        self.log.started(row, self.env.now)
        answer = self.service.call(key, cls)

        def done(event: Event) -> None:
            token.release(dropped=event.value != Outcome.OK)
            self.log.finished(row, self.env.now, event.value)
            self.limit_t.append(self.env.now)
            self.limit_v.append(self.limiter.limit.limit)

        answer.callbacks.append(done)
        return answer


@dataclass(frozen=True)
class Run:
    """A finished run: one row per call at the limiter, and the limit over time."""

    scenario: Scenario
    table: RequestTable
    limit_t: np.ndarray
    limit_v: np.ndarray


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """Run the scenario with SimPy; deterministic for a given ``scenario.seed`` (or ``rng``)."""
    s = scenario
    rng = np.random.default_rng(s.seed) if rng is None else rng
    env = simpy.Environment()
    slow = ([FaultWindow(s.slowdown_at_s, math.inf, "slow", slow_factor=s.slow_factor)]
            if s.slowdown_at_s is not None else [])
    server = ServerPool(env, 1, Exponential(s.service_s), rng, faults=FaultSchedule(slow))
    delay = Exponential(s.delay_s) if s.delay_s > 0 else Deterministic(0.0)

    def handler(key: int, cls: int):  # the work that does not queue, then the server
        yield Timeout(env, float(delay.sample(rng)))
        return (yield server.call(key, cls))

    def clock() -> float:
        return env.now

    front = LimiterService(env, ServerPool(env, None, handler),
                           Limiter(make_limit(s, clock), clock=clock))
    if s.arrival_rate is None:
        think = Exponential(s.think_s) if s.think_s > 0 else Deterministic(0.0)
        ClosedLoopUsers(env, s.limit, think, front, rng)
    else:
        RequestSource(env, PoissonArrivals(s.arrival_rate), front.call, rng,
                      horizon_s=s.duration_s)
    env.run(until=s.duration_s)
    return Run(s, front.log.table(), np.array(front.limit_t), np.array(front.limit_v))


def summary(run: Run, start_s: float = 0.0, end_s: float | None = None) -> dict[str, float]:
    """Throughput, latency, calls in flight and the limit over [start_s, end_s)."""
    end_s = run.scenario.duration_s if end_s is None else end_s
    t = run.table
    arrived = (t.arrival >= start_s) & (t.arrival < end_s)
    ok = arrived & t.has(Outcome.OK) & (t.end < end_s)
    admitted = ~np.isnan(t.start)
    times, counts = occupancy(t.arrival[admitted], t.end[admitted])
    lat = t.latency[ok]
    keep = (run.limit_t >= start_s) & (run.limit_t < end_s)
    return {
        "throughput": float(ok.sum() / (end_s - start_s)),
        "mean_latency": float(lat.mean()) if len(lat) else math.nan,
        "p99_latency": float(np.percentile(lat, 99)) if len(lat) else math.nan,
        "in_flight": time_average(times, counts, start_s, end_s),
        "rejected": float(np.mean(t.has(Outcome.REJECTED)[arrived])) if arrived.any() else 0.0,
        "mean_limit": float(run.limit_v[keep].mean()) if keep.any() else math.nan,
    }


def gradient_equilibrium(scenario: Scenario, queue_size: float = 4.0) -> float:
    """Where a gradient limit settles under a backlog that never empties, before any slowdown.

    Past the knee the server is always busy, so X = 1 / D_max and, by Little's law, a limit of L
    gives R = L·D_max; the baseline stays near the no-load round trip D (it was learned below
    the knee). The limit stops moving when L = (tolerance·D / R)·L + queue_size, that is
    L = tolerance·D / D_max + queue_size: tolerance times the knee (Z = 0) plus the headroom.
    """
    return scenario.tolerance * knee(scenario) + queue_size


def exact_closed(users: int, service_s: float, delay_s: float,
                 think_s: float = 0.0) -> tuple[float, float]:
    """Exact (X, R) of the closed model by mean-value analysis (Reiser & Lavenberg, 1980).

    Assumes one exponential FIFO server and a pure delay (any distribution): a product-form
    network. With n users, an arrival at the server finds the mean queue of n − 1 users, so
    R_q(n) = S·(1 + Q(n − 1)), X(n) = n / (Z + d + R_q(n)), Q(n) = X(n)·R_q(n).
    """
    queue, throughput, response = 0.0, 0.0, 0.0
    for n in range(1, check_int("users", users, 1) + 1):
        at_server = service_s * (1.0 + queue)
        response = delay_s + at_server
        throughput = n / (think_s + response)
        queue = throughput * at_server
    return throughput, response


def _knee_model(rng: np.random.Generator, limit: int, **fixed) -> dict[str, float]:
    run = simulate(Scenario(limit=limit, arrival_rate=None, **fixed), rng)
    return summary(run, start_s=min(2.0, run.scenario.duration_s / 10))


def knee_sweep(limits, *, replications: int = 3, seed: int = 1, **fixed) -> list[dict]:
    """Fixed limits with a backlog that never empties: mean and 95 % interval per limit, beside
    the operational bounds and the exact closed-model values."""
    rows = sweep(_knee_model, {"limit": list(limits)}, seed=seed, replications=replications,
                 fixed=fixed)
    table = aggregate(rows, ["limit"], ["throughput", "mean_latency", "p99_latency",
                                        "in_flight"])
    base = Scenario(**fixed)
    demand = base.delay_s + base.service_s
    for row in table:
        n = row["limit"]
        row["x_bound"] = throughput_bound(n, demand, base.service_s, base.think_s)
        row["r_bound"] = response_bound(n, demand, base.service_s, base.think_s)
        row["x_exact"], row["r_exact"] = exact_closed(n, base.service_s, base.delay_s,
                                                      base.think_s)
    return table


def plot_knee(table: list[dict], scenario: Scenario = Scenario()):
    """Throughput and mean latency against the limit: simulation, bounds, exact values."""
    import matplotlib.pyplot as plt

    n = [row["limit"] for row in table]
    fig, (ax_x, ax_r) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    for ax, key, scale, label in ((ax_x, "throughput", 1.0, "throughput (req/s)"),
                                  (ax_r, "mean_latency", 1000.0, "mean latency (ms)")):
        plots.new_axes(ax)
        ax.errorbar(n, [r[key] * scale for r in table],
                    yerr=[r[key + "_ci"] * scale for r in table], fmt="o", capsize=3,
                    label="simulation (95 % CI)")
        bound = "x_bound" if key == "throughput" else "r_bound"
        exact = "x_exact" if key == "throughput" else "r_exact"
        ax.plot(n, [r[bound] * scale for r in table], "--", label="operational bound")
        ax.plot(n, [r[exact] * scale for r in table], ":", label="exact (MVA)")
        ax.axvline(knee(scenario), color="grey", lw=1, label=f"knee N* = {knee(scenario):.0f}")
        ax.set_xlabel("concurrency limit N")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    return fig


def plot_adaptive(runs: dict[str, Run], bin_s: float = 1.0):
    """Limit, goodput and p99 over time for each policy, with the knee drawn before and after
    the slowdown."""
    first = next(iter(runs.values())).scenario
    end = first.duration_s
    slowed = first.slowdown_at_s if first.slowdown_at_s is not None else end
    limit_panel: dict[str, np.ndarray] = {}
    goodput, p99 = {}, {}
    mids = None
    for name, run in runs.items():
        ok = run.table.has(Outcome.OK)
        mids, rate = rate_over_time(run.table.end[ok], bin_s, 0.0, end)
        goodput[name] = rate
        p99[name] = latency_over_time(run.table, bin_s, 0.0, end)[1] * 1000
        idx = np.searchsorted(run.limit_t, mids, side="right") - 1
        limit_panel[name] = run.limit_v[np.clip(idx, 0, None)]
    limit_panel["knee N*"] = np.where(mids < slowed, knee(first), knee(first, slowed=True))
    return plots.dashboard(mids, {"limit (calls)": limit_panel, "goodput (req/s)": goodput,
                                  "p99 latency (ms)": p99},
                           windows=[(slowed, end)] if slowed < end else [],
                           window_label="service slowed")
