"""The circuit-breaker study: a service whose workers call a dependency that breaks for a while.

Picture a help desk with ``c`` clerks. Each customer's question needs a phone call to another
office. When that office stops answering, every clerk who dials waits on hold until giving up
(the client timeout), and soon all clerks are on hold while the queue at the desk grows: the
outage has spread to the help desk. A circuit breaker is the clerk who, after enough calls went
unanswered, puts up a sign "the other office is down" and answers at once (fast-fail, or a cached
answer as fallback), trying the phone again now and then.

This module holds the closed-form side of that story (Little's law for the clerks on hold, a
binomial model for false alarms and a fluid model for how fast a real outage is noticed) and the
SimPy model that checks it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import simpy

from simulations.breakers import BreakerConfig, CircuitBreaker, Clock, ErrorRate, State
from simulations.distributions import Distribution, LogNormal
from simulations.errors import check_int, check_non_negative, check_positive, check_probability
from simulations.faults import FaultSchedule, FaultWindow
from simulations.records import Outcome, RequestLog, RequestTable
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
    """What one run left behind: a row per request, the breaker's transitions, the fallbacks."""

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


def simulate(scenario: Scenario) -> Run:
    """Run the scenario with SimPy; deterministic for a given ``scenario.seed``.

    Every request's arrival, healthy dependency latency and baseline failure are drawn up front
    from the seed, so runs that differ only in the breaker see exactly the same traffic.
    """
    s = scenario
    rng = np.random.default_rng(s.seed)
    arrivals = PoissonArrivals(s.arrival_rate).times(rng, horizon=s.duration_s)
    latency = np.asarray(s.dependency.sample(rng, len(arrivals)), dtype=float)
    healthy_fails = rng.random(len(arrivals)) < s.baseline_error_rate
    faults = FaultSchedule([s.outage] if s.outage else [])

    env = simpy.Environment()
    pool = simpy.Resource(env, capacity=s.workers)
    log = RequestLog(expected=len(arrivals) + 1)
    fallback = np.zeros(len(arrivals), dtype=bool)
    breaker = make_breaker(s.breaker, lambda: env.now) if s.breaker else None

    def call_dependency(i: int) -> tuple[float, Outcome]:
        """How long the call holds the worker and how it ends, given the fault schedule."""
        fault = faults.active(env.now)
        if fault is not None and fault.kind == "hang":
            return s.timeout_s, Outcome.TIMEOUT
        if fault is not None and fault.kind == "error":
            return min(fault.error_delay_s, s.timeout_s), Outcome.ERROR
        took = latency[i] if fault is None else latency[i] * fault.slow_factor + fault.slow_add_s
        if took > s.timeout_s:
            return s.timeout_s, Outcome.TIMEOUT
        return took, Outcome.ERROR if healthy_fails[i] else Outcome.OK

    def request(i: int):
        row = log.add(env.now)
        with pool.request() as turn:
            yield turn
            log.started(row, env.now)
            yield env.timeout(s.local_work_s)
            if breaker is None or breaker.allow():
                took, outcome = call_dependency(i)
                yield env.timeout(took)
                if breaker is not None:
                    breaker.record(outcome is Outcome.OK)
            else:
                yield env.timeout(s.fast_fail_s)
                outcome = Outcome.REJECTED
            if outcome is not Outcome.OK and s.fallback:
                fallback[row], outcome = True, Outcome.OK
            log.finished(row, env.now, outcome)

    def source():
        previous = 0.0
        for i, t in enumerate(arrivals):
            yield env.timeout(t - previous)
            previous = t
            env.process(request(i))

    env.process(source())
    env.run(until=s.duration_s)
    return Run(s, log.table(), fallback, breaker.transitions if breaker else [])


def timeline(run: Run, bin_s: float = 1.0) -> dict[str, np.ndarray]:
    """Per-bin metrics for a dashboard: p99 latency (by completion time), goodput (fresh answers
    within the SLO per second), fallback answers and refusals per second, and the time-average
    number of busy workers (each request holds a worker from ``start`` to ``end``)."""
    r, s = run.requests, run.scenario
    edges = np.arange(0.0, s.duration_s + bin_s / 2, bin_s)
    done = ~np.isnan(r.end)
    which = np.digitize(r.end[done], edges) - 1
    lat = r.latency[done]
    ok = r.outcome[done] == Outcome.OK
    fresh = ok & ~run.fallback[: len(r)][done]
    n = len(edges) - 1
    p99 = np.full(n, np.nan)
    for b in range(n):
        in_bin = lat[which == b]
        if len(in_bin):
            p99[b] = np.percentile(in_bin, 99)

    def per_second(mask: np.ndarray) -> np.ndarray:
        return np.bincount(which[mask], minlength=n)[:n] / bin_s

    start = np.where(np.isnan(r.start), s.duration_s, r.start)
    end = np.where(np.isnan(r.end), s.duration_s, r.end)
    overlap = np.clip(np.minimum(end[:, None], edges[None, 1:])
                      - np.maximum(start[:, None], edges[None, :-1]), 0, None)
    return {
        "time_s": edges[:-1] + bin_s / 2,
        "p99_latency_s": p99,
        "goodput_rps": per_second(fresh & (lat <= s.slo_s)),
        "fallback_rps": per_second(run.fallback[: len(r)][done]),
        "rejected_rps": per_second(r.outcome[done] == Outcome.REJECTED),
        "busy_workers": overlap.sum(axis=0) / bin_s,
    }


def busy_workers_between(run: Run, start_s: float, end_s: float) -> float:
    """Time-average number of busy workers over [start_s, end_s) (exact, from the records)."""
    r, s = run.requests, run.scenario
    start = np.where(np.isnan(r.start), s.duration_s, r.start)
    end = np.where(np.isnan(r.end), s.duration_s, r.end)
    held = np.clip(np.minimum(end, end_s) - np.maximum(start, start_s), 0, None)
    return float(held.sum() / (end_s - start_s))


def summary(run: Run, start_s: float | None = None, end_s: float | None = None) -> dict:
    """Headline numbers for requests arriving in [start_s, end_s); by default the outage and
    the 10 s after it (the recovery, where the sleep window matters)."""
    s, r = run.scenario, run.requests
    if start_s is None or end_s is None:
        start_s, end_s = ((s.outage.start_s, min(s.outage.end_s + 10, s.duration_s))
                          if s.outage else (0.0, s.duration_s))
    part = (r.arrival >= start_s) & (r.arrival < end_s)
    lat = np.where(np.isnan(r.latency), s.duration_s - r.arrival, r.latency)[part]
    fresh = (r.outcome == Outcome.OK)[part] & ~run.fallback[part] & (lat <= s.slo_s)
    return {
        "p99_latency_s": float(np.percentile(lat, 99)) if len(lat) else math.nan,
        "goodput_rps": float(fresh.sum() / (end_s - start_s)),
        "rejected": int((r.outcome[part] == Outcome.REJECTED).sum()),
        "fallbacks": int(run.fallback[part].sum()),
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
    "rejected_rps": "fast-failed (req/s)",
    "fallback_rps": "fallback answers (req/s)",
}


def sweep(base: Scenario, **grid: list) -> list[tuple[dict, dict]]:
    """Run ``base`` once per combination of breaker settings in ``grid`` (BreakerConfig field
    -> values); returns (settings, `summary` over the outage) pairs."""
    names = list(grid)
    rows = []
    for values in np.array(np.meshgrid(*grid.values(), indexing="ij")).reshape(len(names), -1).T:
        settings = {n: (int(v) if n in ("minimum_calls", "half_open_calls") else float(v))
                    for n, v in zip(names, values, strict=True)}
        config = replace(base.breaker or BreakerConfig(), **settings)
        rows.append((settings, summary(simulate(replace(base, breaker=config)))))
    return rows


def plot_dashboard(runs: dict[str, Run],
                   metrics: tuple[str, ...] = ("p99_latency_s", "goodput_rps", "busy_workers"),
                   bin_s: float = 1.0):
    """Small multiples over time, one panel per metric, one line per run, outage shaded."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(metrics), 1, sharex=True, figsize=(8, 2.2 * len(metrics)),
                             squeeze=False)
    for label, run in runs.items():
        series = timeline(run, bin_s)
        for ax, metric in zip(axes[:, 0], metrics, strict=True):
            ax.plot(series["time_s"], series[metric], label=label)
    outage = next(iter(runs.values())).scenario.outage
    for ax, metric in zip(axes[:, 0], metrics, strict=True):
        if outage is not None:
            ax.axvspan(outage.start_s, outage.end_s, color="tab:red", alpha=0.1,
                       label=f"outage ({outage.kind})")
        ax.set_ylabel(LABELS[metric])
    axes[0, 0].legend(loc="upper left", fontsize="small")
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    return fig


def plot_sweep(rows: list[tuple[dict, dict]], x: str, by: str,
               metrics: tuple[str, ...] = ("p99_latency_s", "goodput_rps")):
    """One panel per outcome metric against breaker setting ``x``, one line per value of ``by``."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.2), squeeze=False)
    for group in sorted({settings[by] for settings, _ in rows}):
        chosen = [(s[x], out) for s, out in rows if s[by] == group]
        for ax, metric in zip(axes[0], metrics, strict=True):
            ax.plot([v for v, _ in chosen], [out[metric] for _, out in chosen], "o-",
                    label=f"{by} = {group:g}")
    for ax, metric in zip(axes[0], metrics, strict=True):
        ax.set_xlabel(x)
        ax.set_ylabel(LABELS[metric] + " during the outage")
    axes[0, 0].legend(fontsize="small")
    fig.tight_layout()
    return fig
