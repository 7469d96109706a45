"""The auto-scaling study: SLO violations against instance-hours, as the policy's threshold,
its cooldown or stabilisation window and the provisioning delay vary.

Picture the supermarket manager of the pattern's module with a day's till receipts: every 15
seconds they count the customers who came in, how many tills were open, how long the lines
were, and at the end of the day they add up two numbers, the minutes the lines were too long and
the staff-hours paid.

The day is a step model, one step per autoscaler decision (``step_s`` = 15 s, the HPA's default
sync period). Arrivals per step are Poisson with the rate of a ``TimeVaryingArrivals`` (a daily
cycle with a flash surge); ready replicas serve ``service_rate`` requests/s each; what they cannot
serve carries over as backlog (the fluid part). A step violates the SLO when its estimated p99
wait, the time to drain the backlog plus the stationary M/M/c p99 wait at the step's rate and
ready replicas, exceeds ``slo_wait_s``. That estimate is an approximation (a queue that is
stationary within each step); the two closed forms it leans on, square-root staffing through
Erlang C and the backlog (λ − cμ)·D during a provisioning delay, are checked against a real
FIFO queue simulation (``simulations.fastpath.fifo_queue``) in ``staffing_wait_probability`` and
``backlog_after``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from patterns.checks import check_int, check_non_negative, check_positive
from patterns.performance.auto_scaling import (
    Autoscaler,
    HPAPolicy,
    PredictivePolicy,
    ThresholdPolicy,
    square_root_replicas,
)
from simulations import plots
from simulations.experiments import sweep
from simulations.fastpath import fifo_queue
from simulations.metrics import queue_length_over_time
from simulations.workloads import TimeVaryingArrivals

__all__ = ["POLICIES", "Run", "Scenario", "backlog_after", "backlog_estimate", "daily_load",
           "make_policy", "mmc_p99_wait", "plot_dashboard", "plot_tradeoff",
           "staffing_wait_probability", "simulate", "summary", "sweep_policies"]

DAY_S = 86_400.0


def daily_load(mean_rate: float = 200.0, amplitude: float = 0.5, peak_at_s: float = 54_000.0,
               surge_factor: float = 1.5, surge_at_s: float = 36_000.0,
               surge_s: float = 1_200.0) -> TimeVaryingArrivals:
    """A day of traffic: a cosine cycle peaking at ``peak_at_s`` (15:00), times
    ``surge_factor`` for ``surge_s`` seconds from ``surge_at_s`` (a flash surge at 10:00)."""
    base = TimeVaryingArrivals.diurnal(mean_rate, amplitude, DAY_S, peak_at_s)
    check_positive("surge_factor", surge_factor)

    def rate(t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        surging = (t >= surge_at_s) & (t < surge_at_s + surge_s)
        return base.rate_at(t) * np.where(surging, surge_factor, 1.0)

    return TimeVaryingArrivals(rate, base.peak_rate * max(surge_factor, 1.0))


POLICIES = ("hpa", "threshold", "predictive")


@dataclass(frozen=True)
class Scenario:
    """One day under one policy. ``threshold`` is the HPA's target utilisation, the threshold
    policy's scale-out level and the predictive policy's reactive target; ``cooldown_s`` is the
    HPA's scale-down stabilisation window or the threshold policy's cooldown."""

    policy: str = "hpa"
    threshold: float = 0.6
    cooldown_s: float = 300.0
    provisioning_delay_s: float = 180.0
    service_rate: float = 10.0  # requests/s per replica (100 ms each)
    slo_wait_s: float = 0.1  # p99 wait in queue
    step_s: float = 15.0
    duration_s: float = DAY_S
    beta: float = 1.0  # predictive headroom (square-root staffing)
    load: TimeVaryingArrivals = field(default_factory=daily_load)
    forecast: Callable[[float], float] | None = None  # None: the daily cycle without the surge
    booting_counts_as_busy: bool = False  # True: the metric ignores replicas still booting
    max_queue_s: float = float("inf")  # a bounded queue: at most this much work waits; rest shed
    seed: int = 1

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)} (got {self.policy!r})")
        check_non_negative("provisioning_delay_s", self.provisioning_delay_s)
        check_positive("service_rate", self.service_rate)
        check_positive("slo_wait_s", self.slo_wait_s)
        check_positive("step_s", self.step_s)
        check_positive("duration_s", self.duration_s)
        check_positive("max_queue_s", self.max_queue_s, allow_inf=True)


def make_policy(scenario: Scenario) -> Autoscaler:
    """The scenario's policy object, from the pattern module."""
    if scenario.policy == "hpa":
        return HPAPolicy(target=scenario.threshold, scale_down_window_s=scenario.cooldown_s)
    if scenario.policy == "threshold":
        return ThresholdPolicy(scale_out_at=scenario.threshold,
                               scale_in_at=scenario.threshold / 2, cooldown_s=scenario.cooldown_s)
    forecast = scenario.forecast or TimeVaryingArrivals.diurnal(200.0, 0.5, DAY_S, 54_000.0).rate_at
    return PredictivePolicy(forecast, scenario.service_rate, lead_s=scenario.provisioning_delay_s
                            + scenario.step_s, beta=scenario.beta, target=scenario.threshold)


def mmc_p99_wait(arrival_rate: np.ndarray, service_rate: float, servers: np.ndarray) -> np.ndarray:
    """The stationary M/M/c p99 wait, ln(100·C)/(cμ − λ) (0 when C ≤ 1 %), for arrays of rates
    and server counts at once (Erlang B's recursion run on all of them; inf where λ ≥ cμ).
    Equal to ``simulations.theory.mmc_wait_percentile(λ, μ, c, 0.99)`` element by element."""
    lam = np.asarray(arrival_rate, dtype=float)
    c = np.asarray(servers, dtype=int)
    load = lam / service_rate
    blocking, at_c = np.ones_like(load), np.ones_like(load)
    for k in range(1, int(c.max(initial=1)) + 1):
        blocking = load * blocking / (k + load * blocking)
        at_c = np.where(c == k, blocking, at_c)
        if not blocking[c > k].any():  # 0 from here on, for every count still to come
            at_c = np.where(c > k, 0.0, at_c)
            break
    rho = load / np.maximum(c, 1)
    stable = (rho < 1) & (c >= 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        waiting = at_c / (1 - rho * (1 - at_c))
        wait = np.log(np.maximum(waiting, 1e-300) / 0.01) / (c * service_rate - lam)
    return np.where(stable, np.where(waiting > 0.01, wait, 0.0), np.inf)


@dataclass
class Run:
    """Per step: start time, arrival rate, ready and requested replicas, backlog at the end,
    utilisation of the ready replicas, estimated p99 wait and whether it broke the SLO."""

    scenario: Scenario
    t: np.ndarray
    rate: np.ndarray
    ready: np.ndarray
    requested: np.ndarray
    backlog: np.ndarray
    utilisation: np.ndarray
    p99_wait_s: np.ndarray
    violated: np.ndarray
    shed: np.ndarray  # requests refused by the bounded queue in the step


def simulate(scenario: Scenario, rng: np.random.Generator | None = None,
             policy: Autoscaler | None = None) -> Run:
    """Run one day, a decision per step; ``policy`` overrides the scenario's (any object with
    ``desired(metric, current, now)``). New replicas become ready after the provisioning delay;
    removed ones go at once (pending ones first)."""
    rng = rng if rng is not None else np.random.default_rng(scenario.seed)
    policy = policy if policy is not None else make_policy(scenario)
    dt, mu = scenario.step_s, scenario.service_rate
    t = np.arange(0.0, scenario.duration_s, dt)
    rate = scenario.load.rate_at(t + dt / 2)
    arrivals = rng.poisson(rate * dt)  # every random number drawn up front
    ready = square_root_replicas(float(rate[0]), mu, 1.0)
    pending: deque[list] = deque()  # booting replicas, oldest first: [ready at, how many]
    booting = 0  # how many replicas are in ``pending``
    backlog = 0.0
    n = len(t)
    ready_s, requested_s = np.empty(n, dtype=int), np.empty(n, dtype=int)
    backlog_s, util_s, shed_s = np.empty(n), np.empty(n), np.zeros(n)
    for k in range(n):
        now = t[k]
        while pending and pending[0][0] <= now:
            count = pending.popleft()[1]
            ready, booting = ready + count, booting - count
        capacity = ready * mu * dt
        work = backlog + arrivals[k]
        served = min(work, capacity)
        backlog = work - served
        if backlog > ready * mu * scenario.max_queue_s:  # shed what would wait too long
            shed_s[k] = backlog - ready * mu * scenario.max_queue_s
            backlog -= shed_s[k]
        utilisation = served / capacity if capacity else 1.0
        asked = ready + booting
        ready_s[k], requested_s[k], backlog_s[k], util_s[k] = ready, asked, backlog, utilisation
        # Booting replicas count as 0 % busy, as the HPA counts pods not yet ready on scale-up.
        metric = utilisation if scenario.booting_counts_as_busy else served / (asked * mu * dt)
        wanted = max(1, int(policy.desired(metric, asked, now)))
        change = wanted - asked
        if change > 0:
            pending.append([now + scenario.provisioning_delay_s, change])
            booting += change
        while change < 0 and pending:  # the newest booting replicas go first
            gone = min(-change, pending[-1][1])
            pending[-1][1] -= gone
            booting, change = booting - gone, change + gone
            if not pending[-1][1]:
                pending.pop()
        ready = max(1, ready + change) if change < 0 else ready
    drain = backlog_s / (np.maximum(ready_s, 1) * mu)
    p99 = drain + mmc_p99_wait(rate, mu, ready_s)
    return Run(scenario, t, rate, ready_s, requested_s, backlog_s, util_s, p99,
               p99 > scenario.slo_wait_s, shed_s)


def summary(run: Run) -> dict[str, float]:
    """The day's two numbers, and three more to read them by (shed: share of the offered load)."""
    dt = run.scenario.step_s
    return {
        "slo_violation_pct": 100.0 * float(run.violated.mean()),
        "instance_hours": float(run.requested.sum() * dt / 3600.0),
        "mean_utilisation": float(run.utilisation.mean()),
        "scale_events": int(np.count_nonzero(np.diff(run.requested))),
        "shed_pct": 100.0 * float(run.shed.sum() / (run.rate.sum() * dt)),
    }


def _model(rng: np.random.Generator, **settings: Any) -> dict[str, float]:
    return summary(simulate(replace(Scenario(), **settings), rng))


def sweep_policies(grid: dict[str, list[Any]], seed: int = 1, replications: int = 1,
                   **fixed: Any) -> list[dict[str, Any]]:
    """``simulations.experiments.sweep`` over Scenario fields, one row per run."""
    return sweep(_model, grid, seed=seed, replications=replications, fixed=fixed)


def backlog_estimate(arrival_rate: float, service_rate: float, servers: int,
                     delay_s: float) -> float:
    """Requests queued after ``delay_s`` seconds of overload with ``servers`` ready: (λ − cμ)·D
    (a fluid bound: the queue grows at the excess rate; it ignores the queue already there)."""
    check_positive("arrival_rate", arrival_rate)
    check_positive("service_rate", service_rate)
    check_int("servers", servers, 1)
    return max(arrival_rate - servers * service_rate, 0.0) * check_non_negative("delay_s", delay_s)


def backlog_after(arrival_rate: float, service_rate: float, servers: int, delay_s: float,
                  rng: np.random.Generator, before_rate: float | None = None,
                  warmup_s: float = 200.0) -> float:
    """A real FIFO queue (``fifo_queue``, exponential services): ``before_rate`` (default 70 % of
    capacity) for ``warmup_s``, then ``arrival_rate``; the queue length ``delay_s`` later."""
    capacity = servers * service_rate
    load = TimeVaryingArrivals.step(before_rate or 0.7 * capacity, arrival_rate, warmup_s)
    arrivals = load.times(rng, horizon=warmup_s + delay_s)
    table = fifo_queue(arrivals, rng.exponential(1 / service_rate, len(arrivals)), servers)
    times, queued = queue_length_over_time(table)
    at = np.searchsorted(times, warmup_s + delay_s, side="right") - 1
    return float(queued[at]) if at >= 0 else 0.0


def staffing_wait_probability(offered_load: float, beta: float, rng: np.random.Generator,
                              customers: int = 100_000) -> tuple[int, float]:
    """Square-root staffing c = ⌈R + β√R⌉ for a real M/M/c FIFO queue (μ = 1): (c, the share
    of customers who waited), the first 10 % dropped as warm-up."""
    servers = square_root_replicas(offered_load, 1.0, beta)
    arrivals = np.cumsum(rng.exponential(1 / offered_load, customers))
    table = fifo_queue(arrivals, rng.exponential(1.0, customers), servers)
    waits = table.wait[customers // 10:]
    return servers, float(np.mean(waits > 1e-12))


def plot_dashboard(runs: dict[str, Run], hours: tuple[float, float] = (0, 24)) -> list:
    """Load and replicas, utilisation and p99 wait over the day, one line per run."""
    first = next(iter(runs.values()))
    window = (first.t >= hours[0] * 3600) & (first.t < hours[1] * 3600)
    h = first.t[window] / 3600
    needed = first.rate[window] / first.scenario.service_rate
    return plots.dashboard(h, {
        "replicas ready": {"load / μ (replicas busy)": needed,
                           **{k: r.ready[window] for k, r in runs.items()}},
        "utilisation": {k: r.utilisation[window] for k, r in runs.items()},
        "p99 wait (s)": {k: np.minimum(r.p99_wait_s[window], 5.0) for k, r in runs.items()},
    }, xlabel="time of day (h)")


def plot_tradeoff(rows: list[dict[str, Any]], by: str, label: Callable[[Any], str] = str):
    """SLO violations against instance-hours, a line per policy, a point per ``by`` value."""
    curves, notes = {}, {}
    for policy in dict.fromkeys(row["policy"] for row in rows):
        mine = [row for row in rows if row["policy"] == policy]
        curves[policy] = ([row["instance_hours"] for row in mine],
                          [row["slo_violation_pct"] for row in mine])
        notes[policy] = [label(row[by]) for row in mine]
    return plots.tradeoff(curves, xlabel="instance-hours per day",
                          ylabel="time in SLO violation (%)", annotations=notes)
