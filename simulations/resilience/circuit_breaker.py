"""The circuit-breaker study: a service whose workers call a dependency that breaks for a while.

Picture a help desk with ``c`` clerks. Each customer's question needs a phone call to another
office. When that office stops answering, every clerk who dials waits on hold until giving up
(the client timeout), and soon all clerks are on hold while the queue at the desk grows: the
outage has spread to the help desk. A circuit breaker is the clerk who, after enough calls went
unanswered, puts up a sign "the other office is down" and answers at once (fast-fail, or a cached
answer as fallback), trying the phone again now and then.

This module holds the closed-form side of that story (Little's law for the clerks on hold, a
binomial model for false alarms and a fluid model for how fast a real outage is noticed) and the
SimPy model that checks it, built from the toolkit: the clerks are a ``ServerPool``, the phone
call a ``Client`` with a timeout, the other office a ``ServerPool`` with a ``FaultSchedule``, and
the breaker one more ``Service`` in between.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Any

import numpy as np
import simpy
from simpy.events import Event, Timeout

from patterns.checks import (
    check_choice,
    check_int,
    check_non_negative,
    check_positive,
    check_probability,
)
from patterns.resilience.circuit_breaker import (
    BreakerConfig,
    CircuitBreaker,
    Clock,
    ErrorRate,
    State,
)
from simulations.clients import Client, RequestSource
from simulations.distributions import Distribution, LogNormal
from simulations.experiments import aggregate
from simulations.experiments import sweep as sweep_grid
from simulations.faults import FaultSchedule, FaultWindow
from simulations.metrics import (
    goodput_over_time,
    latency_percentiles,
    occupancy,
    per_bin,
    percentile_of,
    rate_over_time,
    summarize,
    time_average,
)
from simulations.records import Outcome, RequestLog, RequestTable
from simulations.servers import ServerPool, Service
from simulations.theory import littles_law
from simulations.workloads import PoissonArrivals

# ---------------------------------------------------------------- theory


def busy_workers(arrival_rate: float, hold_time_s: float) -> float:
    """Workers held on average = λ × time each request holds one (Little's law, L = λW).

    During an outage without a breaker every call holds a worker for the client timeout; with
    the breaker open it holds one only for the fast-fail (or fallback) time.
    """
    return littles_law(arrival_rate=arrival_rate, mean_time=hold_time_s)


def exhaustion_arrival_rate(pool_size: int, timeout_s: float) -> float:
    """The arrival rate above which an outage (every call waits ``timeout_s``) exhausts a pool
    of ``pool_size`` workers: λ·T > c  ⇔  λ > c / T."""
    return check_int("pool_size", pool_size, low=1) / check_positive("timeout_s", timeout_s)


def window_false_trip_probability(calls: int, error_rate: float, threshold: float,
                                  minimum_calls: int = 1) -> float:
    """P(a window of ``calls`` healthy calls looks like an outage).

    Each call fails independently with the baseline ``error_rate`` p, so the failures X in the
    window are Binomial(n, p); the breaker trips when n ≥ ``minimum_calls`` and X ≥ θ·n.
    """
    n = check_int("calls", calls, low=0)
    p = check_probability("error_rate", error_rate)
    theta = check_probability("threshold", threshold)
    if n < check_int("minimum_calls", minimum_calls, low=1):
        return 0.0
    first = math.ceil(theta * n - 1e-12)
    return sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(first, n + 1))


def snapshot_false_trip_probability(arrival_rate: float, window_s: float, error_rate: float,
                                    threshold: float, minimum_calls: int) -> float:
    """P(the breaker's window, looked at one instant of healthy traffic, says "trip").

    With Poisson arrivals the window holds N ~ Poisson(λ·W) calls; this averages
    `window_false_trip_probability` over N. A breaker that re-checks after every call trips at
    least this often per window (it looks many times), so this is a lower bound on its rate.
    """
    mean = check_positive("arrival_rate", arrival_rate) * check_positive("window_s", window_s)
    top = int(mean + 12 * math.sqrt(mean) + 20)
    return sum(
        math.exp(n * math.log(mean) - mean - math.lgamma(n + 1))
        * window_false_trip_probability(n, error_rate, threshold, minimum_calls)
        for n in range(minimum_calls, top + 1)
    )


def detection_delay_s(arrival_rate: float, error_rate: float, threshold: float,
                      window_s: float, minimum_calls: int, failure_latency_s: float,
                      workers: int | None = None) -> float:
    """Time from the start of a total outage until an error-rate breaker opens (fluid model).

    The first failure is known only T = ``failure_latency_s`` after the outage starts (a hung
    call ends at the client timeout). Failures then complete at rate λ_f = λ, or c / T when the
    ``workers`` pool (c) cannot hold λ·T hung calls, while the window still holds the healthy
    calls of its last W − T seconds (failed share p). The failed share reaches θ after
    d = λ(θ − p)(W − T) / (λ_f(1 − θ) + λ(θ − p)) seconds (d = (θ − p)(W − T)/(1 − p) when
    λ_f = λ); if the window then holds fewer than ``minimum_calls`` = m calls, the breaker waits
    until it holds m failures. Returns T + d, or ``math.inf`` if the window can never hold m calls.
    """
    lam = check_positive("arrival_rate", arrival_rate)
    p = check_probability("error_rate", error_rate)
    theta = check_probability("threshold", threshold)
    w = check_positive("window_s", window_s)
    m = check_int("minimum_calls", minimum_calls, low=1)
    t = check_non_negative("failure_latency_s", failure_latency_s)
    lam_f = lam if workers is None or t == 0 else min(lam, check_int("workers", workers, 1) / t)
    healthy_s = max(w - t, 0.0)
    excess = max(theta - p, 0.0)
    d = lam * excess * healthy_s / (lam_f * (1 - theta) + lam * excess) if excess else 0.0
    d = min(d, healthy_s)
    if lam_f * d + lam * (healthy_s - d) >= m:
        return t + d
    return t + max(healthy_s, m / lam_f) if m <= lam_f * w else math.inf


# ---------------------------------------------------------------- the SimPy study


@dataclass(frozen=True)
class Scenario:
    """One run of the help desk: a pool of workers, a dependency, an outage, maybe a breaker."""

    arrival_rate: float = 40.0  # requests per second (Poisson)
    workers: int = 20  # the service's worker pool, c
    local_work_s: float = 0.005  # work done before calling the dependency
    dependency: Distribution = field(default_factory=lambda: LogNormal(0.05, 1.0))
    baseline_error_rate: float = 0.01  # healthy dependency: share of calls that fail
    timeout_s: float = 1.0  # the client timeout on the dependency call
    outage: FaultWindow | None = field(default_factory=lambda: FaultWindow(20.0, 40.0, "hang"))
    breaker: BreakerConfig | None = None  # None: no breaker
    fast_fail_s: float = 0.001  # a refused call still costs this much worker time
    fallback: bool = False  # answer refused or failed calls from a cache
    slo_s: float = 0.5  # an answer slower than this does not count as goodput
    duration_s: float = 60.0
    seed: int = 1

    def __post_init__(self) -> None:
        check_positive("arrival_rate", self.arrival_rate)
        check_int("workers", self.workers, low=1)
        check_non_negative("local_work_s", self.local_work_s)
        check_probability("baseline_error_rate", self.baseline_error_rate)
        check_positive("timeout_s", self.timeout_s)
        check_non_negative("fast_fail_s", self.fast_fail_s)
        check_positive("slo_s", self.slo_s)
        check_positive("duration_s", self.duration_s)


@dataclass(frozen=True, eq=False)
class Run:
    """What one run left behind: the caller's row per request, whose outcome is how its
    dependency call ended (OK, TIMEOUT, ERROR, or REJECTED by the breaker); which of the failed
    or refused ones a fallback answered; the breaker's transitions."""

    scenario: Scenario
    requests: RequestTable
    fallback: np.ndarray  # bool per request: answered from the fallback
    transitions: list[tuple[float, State, State]]

    @property
    def trips(self) -> int:
        return sum(new is State.OPEN for _, _, new in self.transitions)


def make_breaker(config: BreakerConfig, clock: Clock) -> CircuitBreaker:
    """The Level 2 breaker with an error-rate policy, set up from a (validated) config."""
    policy = ErrorRate(config.failure_rate_threshold, config.window_s, config.minimum_calls)
    return CircuitBreaker(policy, config.sleep_window_s, clock, config.half_open_calls)


class BreakerService:
    """A ``Service`` that sends each call through ``breaker`` to ``service``.

    An allowed call goes on, and its outcome is recorded when it ends (only OK is a success). A
    refused call never reaches ``service``: it comes back REJECTED after ``fast_fail_s``.
    """

    def __init__(self, env: simpy.Environment, service: Service, breaker: CircuitBreaker,
                 fast_fail_s: float = 0.0) -> None:
        self.env, self.service, self.breaker = env, service, breaker
        self.fast_fail_s = check_non_negative("fast_fail_s", fast_fail_s)

    def call(self, key: int = -1, cls: int = -1) -> Event:
        if not self.breaker.allow():
            return Timeout(self.env, self.fast_fail_s, Outcome.REJECTED)
        answer = self.service.call(key, cls)
        answer.callbacks.append(lambda event: self.breaker.record(event.value == Outcome.OK))
        return answer


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """Run the scenario with SimPy; deterministic for a given ``scenario.seed`` (or ``rng``).

    Every request's arrival, healthy dependency latency and baseline failure are drawn up front,
    so runs that differ only in the breaker see exactly the same traffic. The caller's workers
    are a ``ServerPool`` whose handler does the local work and then calls the dependency through
    a ``Client`` with the timeout (and the breaker, if any); the dependency is a ``ServerPool``
    with the outage as its ``FaultSchedule``.
    """
    s = scenario
    rng = np.random.default_rng(s.seed) if rng is None else rng
    env = simpy.Environment()
    # A request's key is its row number in the callers' log: the dependency looks up its latency.
    source = RequestSource(env, PoissonArrivals(s.arrival_rate),
                           lambda _key, _cls: callers.submit(len(callers.log)), rng,
                           horizon_s=s.duration_s)
    n = len(source.times)
    latency = np.asarray(s.dependency.sample(rng, n), dtype=float)
    fails = rng.random(n) < s.baseline_error_rate
    faults = FaultSchedule([s.outage] if s.outage else [])

    def answer(key: int, _cls: int):
        """The dependency's work; the pool itself hangs or fails fast in those fault windows."""
        window = faults.active(env.now)
        took = latency[key]
        if window is not None and window.kind == "slow":  # the pool stretches only sampled times
            took = took * window.slow_factor + window.slow_add_s
        yield env.timeout(took)
        return Outcome.ERROR if fails[key] else Outcome.OK

    dependency = ServerPool(env, None, answer, faults=faults, log=RequestLog(n + 1))
    client = Client(env, dependency, s.timeout_s, log=RequestLog(n + 1))
    breaker = make_breaker(s.breaker, lambda: env.now) if s.breaker else None
    guarded = client if breaker is None else BreakerService(env, client, breaker, s.fast_fail_s)
    fallback = np.zeros(n, dtype=bool)

    def work(key: int, cls: int):
        """One worker's job: local work, then the dependency call; a fallback covers a failure."""
        yield env.timeout(s.local_work_s)
        outcome = yield guarded.call(key, cls)
        fallback[key] = s.fallback and outcome != Outcome.OK
        return outcome

    callers = ServerPool(env, s.workers, work, log=RequestLog(n + 1))
    env.run(until=s.duration_s)
    return Run(s, callers.log.table(), fallback, breaker.transitions if breaker else [])


# ---------------------------------------------------------------- metrics from the records


def busy_workers_between(run: Run, start_s: float, end_s: float) -> float:
    """Time-average number of busy workers over [start_s, end_s): exact, since a request holds
    a worker from its ``start`` to its ``end`` (to the end of the run if still in service)."""
    r = run.requests
    return time_average(*occupancy(r.start, r.end), start_s, end_s)


def timeline(run: Run, bin_s: float = 1.0) -> dict[str, np.ndarray]:
    """Per-bin metrics for a dashboard: p99 latency of the answers given in each bin (every
    outcome counts: a timeout or refusal is the answer the user got), goodput (fresh answers
    within the SLO per second), fallback answers and breaker refusals per second, and the
    time-average number of busy workers."""
    r, end_s = run.requests, run.scenario.duration_s
    done = ~np.isnan(r.end)
    time_s, p99 = per_bin(r.end[done], r.latency[done], bin_s, 0.0, end_s,
                          percentile_of(99))
    edges = np.minimum(np.arange(len(time_s) + 1) * bin_s, end_s)
    held = occupancy(r.start, r.end)
    return {
        "time_s": time_s,
        "p99_latency_s": p99,
        "goodput_rps": goodput_over_time(r, bin_s, 0.0, end_s, slo_s=run.scenario.slo_s)[1],
        "fallback_rps": rate_over_time(r.end[run.fallback], bin_s, 0.0, end_s)[1],
        "rejected_rps": rate_over_time(r.end[r.has(Outcome.REJECTED)], bin_s, 0.0, end_s)[1],
        "busy_workers": np.array([time_average(*held, lo, hi) for lo, hi in pairwise(edges)]),
    }


def summary(run: Run, start_s: float | None = None, end_s: float | None = None) -> dict:
    """Headline numbers for requests arriving in [start_s, end_s); by default the outage and
    the 10 s after it (the recovery, where the sleep window matters).

    ``p99_latency_s`` counts every request (a request still unanswered at the end waited until
    then); ``goodput_rps`` only fresh answers within the SLO; ``rejected`` the calls the breaker
    refused; ``failed`` the requests left with an error (refused, timed out or failed, with no
    fallback); ``fallbacks`` those answered from the fallback.
    """
    s, r = run.scenario, run.requests
    if start_s is None or end_s is None:
        start_s, end_s = ((s.outage.start_s, min(s.outage.end_s + 10, s.duration_s))
                          if s.outage else (0.0, s.duration_s))
    part = (r.arrival >= start_s) & (r.arrival < end_s)
    waited = np.where(np.isnan(r.latency), s.duration_s - r.arrival, r.latency)
    answered_badly = r.has(Outcome.REJECTED, Outcome.TIMEOUT, Outcome.ERROR) & ~run.fallback
    return {
        "p99_latency_s": latency_percentiles(waited[part], [99])["latency_p99_s"],
        "goodput_rps": summarize(r, start_s=start_s, end_s=end_s, slo_s=s.slo_s)["goodput_per_s"],
        "rejected": int((part & r.has(Outcome.REJECTED)).sum()),
        "failed": int((part & answered_badly).sum()),
        "fallbacks": int((part & run.fallback).sum()),
        "busy_workers": busy_workers_between(run, start_s, end_s),
        "trips": run.trips,
    }


def snapshot_trips(run: Run, config: BreakerConfig) -> np.ndarray:
    """Look at the run's calls through ``config``'s error-rate window once every ``window_s``
    (disjoint windows) and say, each time, whether it would trip. Feeds the same `ErrorRate`
    policy the breaker uses, but only watches: nothing is refused."""
    r = run.requests
    policy = ErrorRate(config.failure_rate_threshold, config.window_s, config.minimum_calls)
    done = np.flatnonzero(~np.isnan(r.end))
    done = done[np.argsort(r.end[done], kind="stable")]
    looks = np.arange(config.window_s, run.scenario.duration_s + 1e-9, config.window_s)
    verdicts, k = [], 0
    for now in looks:
        while k < len(done) and r.end[done[k]] <= now:
            policy.record(r.outcome[done[k]] == Outcome.OK, r.end[done[k]])
            k += 1
        verdicts.append(policy.should_trip(now))
    return np.array(verdicts)


# ---------------------------------------------------------------- sweeps and plots

LABELS = {
    "p99_latency_s": "p99 latency (s)",
    "goodput_rps": "goodput (req/s)",
    "busy_workers": "busy workers",
    "rejected_rps": "refused by the breaker (req/s)",
    "fallback_rps": "fallback answers (req/s)",
    "rejected": "calls refused",
    "failed": "requests left with an error",
    "fallbacks": "fallback answers",
    "trips": "breaker trips",
}
TIMELINE_METRICS = ("p99_latency_s", "goodput_rps", "fallback_rps", "rejected_rps", "busy_workers")
SETTINGS = {
    "failure_rate_threshold": "failure-rate threshold θ",
    "window_s": "window W (s)",
    "minimum_calls": "minimum calls in the window",
    "sleep_window_s": "sleep window (s)",
    "half_open_calls": "trial calls when half-open",
}
SWEEP_METRICS = ("p99_latency_s", "goodput_rps", "busy_workers", "rejected", "failed", "trips")


def sweep(base: Scenario, replications: int = 1, **grid: Sequence[Any]) -> list[dict[str, Any]]:
    """Run ``base`` at every combination of the breaker settings in ``grid`` (BreakerConfig
    field -> values) with the toolkit's ``sweep`` and ``aggregate`` the `summary` of each setting
    over ``replications`` runs: one row per setting with the mean of each metric and its 95 %
    interval half-width under ``<metric>_ci`` (NaN with one run). Every setting sees the same
    traffic (common random numbers)."""
    for name in grid:
        check_choice("sweep setting", name, SETTINGS)

    def model(rng: np.random.Generator, **settings: Any) -> dict:
        config = replace(base.breaker or BreakerConfig(), **settings)
        return summary(simulate(replace(base, breaker=config), rng))

    rows = sweep_grid(model, grid, seed=base.seed, replications=replications)
    return aggregate(rows, by=list(grid), metrics=SWEEP_METRICS)


def plot_dashboard(runs: dict[str, Run],
                   metrics: Sequence[str] = ("p99_latency_s", "goodput_rps", "busy_workers"),
                   bin_s: float = 1.0) -> list:
    """Small multiples over time (``plots.dashboard``): one panel per metric of `timeline`, one
    line per run, the outage of the first run shaded. The runs must share their duration."""
    from simulations import plots

    for metric in metrics:
        check_choice("metric", metric, TIMELINE_METRICS)
    series = {label: timeline(run, bin_s) for label, run in runs.items()}
    outage = next(iter(runs.values())).scenario.outage
    return plots.dashboard(
        next(iter(series.values()))["time_s"],
        {LABELS[m]: {label: values[m] for label, values in series.items()} for m in metrics},
        windows=[(outage.start_s, outage.end_s)] if outage else [],
        window_label=f"outage ({outage.kind})" if outage else "fault window",
    )


def plot_sweep(rows: list[dict[str, Any]], x: str, by: str,
               metrics: Sequence[str] = ("p99_latency_s", "goodput_rps")) -> list:
    """One panel per metric against breaker setting ``x``, one line per value of ``by``
    (``plots.sweep_panels``), with 95 % interval bars when the rows average replications."""
    from simulations import plots

    return plots.sweep_panels(
        sorted(rows, key=lambda row: row[by]), x=x, by=by, metrics=metrics,
        xlabel=SETTINGS.get(x, x),
        ylabels={m: f"{LABELS.get(m, m)}, outage + 10 s" for m in metrics},
        group_label=lambda g: f"{SETTINGS.get(by, by)} = {g:g}", panel_size=(4.2, 3.4),
    )
