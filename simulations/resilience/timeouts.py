"""Timeouts and deadlines: how long a caller waits for an answer, and what that choice costs.

Picture phoning a shop to ask whether a part is in stock. Most times the clerk answers in a few
seconds; now and then they go to the back room for a minute. If you hang up after ten seconds you
will sometimes hang up on a clerk who was about to answer (a *false timeout*), and if you never
hang up you may wait all afternoon on a line nobody will pick up. If the part is one of three you
need before the shop closes, what matters is not ten seconds per call but the closing time for
the whole errand (a *deadline*), and each call should only get what is left of it.

This module is the lesson's study (the pattern itself is ``patterns.resilience.timeouts``):

* closed forms: P(false timeout) = 1 − F(T) for the service-time distribution F, the timeout
  that gives a target false-timeout rate (a percentile of F), fan-out, hedged requests and the
  extra load of retries;
* the SimPy study (`Scenario`, `simulate`, `summary`, `timeline`), built from the toolkit: a
  `ServerPool` dependency called through `Client` objects with a timeout, traffic from a
  `RequestSource`, slow episodes from a `FaultSchedule`; `simulate_fast` gives the same rows
  without an event loop (``simulations.fastpath``) for the plain case a slider sweeps.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy
from simpy.events import Event

from patterns.checks import (
    check_int,
    check_non_negative,
    check_positive,
    check_probability,
    check_range,
)
from patterns.resilience.circuit_breaker import BreakerConfig, CircuitBreaker, ErrorRate
from simulations.clients import Client, RequestSource
from simulations.distributions import Distribution, LogNormal, quantile, survival
from simulations.fastpath import fifo_with_timeouts, service_stream
from simulations.faults import FaultSchedule, FaultWindow
from simulations.metrics import latency_percentiles, per_bin, percentile_of, rate_over_time
from simulations.records import Outcome, RequestLog, RequestTable
from simulations.servers import ServerPool
from simulations.theory import fanout_tail
from simulations.workloads import ArrivalProcess, PoissonArrivals

# ---------------------------------------------------------------- theory


def false_timeout_probability(service: Distribution, timeout_s: float) -> float:
    """P(a healthy call is cut off) = 1 − F(T): the call would have answered, only later than T.

    Assumes the call's latency is its service time (no queueing) and calls are independent.
    """
    return survival(service, check_positive("timeout_s", timeout_s))


def timeout_for_false_rate(service: Distribution, false_timeout_rate: float) -> float:
    """The timeout T with 1 − F(T) = rate: the (1 − rate) percentile (0.1 % -> p99.9)."""
    rate = check_range("false_timeout_rate", false_timeout_rate, 0.0, 1.0,
                       low_open=True, high_open=True)
    return quantile(service, 1.0 - rate)


def fanout_timeout_probability(service: Distribution, timeout_s: float, fanout: int) -> float:
    """P(a request that waits for all of ``fanout`` independent calls sees a timeout)
    = 1 − F(T)^N (the fan-out formula of the queueing-basics lesson, with q = 1 − F(T))."""
    return fanout_tail(false_timeout_probability(service, timeout_s), fanout)


def per_call_timeout_for_fanout(service: Distribution, request_false_rate: float,
                                fanout: int) -> float:
    """The per-call timeout that keeps a fan-out request's false-timeout rate at
    ``request_false_rate``: F(T)^N = 1 − r, so T is the (1 − r)^(1/N) percentile of F."""
    r = check_range("request_false_rate", request_false_rate, 0.0, 1.0,
                    low_open=True, high_open=True)
    n = check_int("fanout", fanout, 1)
    return quantile(service, math.exp(math.log1p(-r) / n))


def hedged_survival(service: Distribution, t: float, hedge_delay_s: float) -> float:
    """P(a hedged request takes longer than t): a backup copy is sent after ``hedge_delay_s``
    = d if the first has not answered, and the first answer wins. With independent copies
    (no queueing) the latency is min(S1, d + S2), so P(> t) = S(t) for t < d and S(t)·S(t − d)
    after."""
    d = check_non_negative("hedge_delay_s", hedge_delay_s)
    tail = survival(service, t)
    return tail if t < d else tail * survival(service, t - d)


def hedge_rate(service: Distribution, hedge_delay_s: float) -> float:
    """Share of requests that send a backup copy: P(S > d) (5 % when d is the p95)."""
    return survival(service, check_non_negative("hedge_delay_s", hedge_delay_s))


def expected_attempts(timeout_probability: float, retries: int) -> float:
    """Mean attempts per request when each attempt times out independently with probability p
    and is retried up to ``retries`` times: 1 + p + ... + p^retries (the load factor)."""
    p = check_probability("timeout_probability", timeout_probability)
    k = check_int("retries", retries, 0)
    return float(k + 1) if p == 1 else (1.0 - p ** (k + 1)) / (1.0 - p)


# ---------------------------------------------------------------- the SimPy study


@dataclass(frozen=True)
class Scenario:
    """Callers sending requests to a dependency, each request making ``calls`` sequential calls
    (each waiting for ``fanout`` parallel copies), with timeouts, retries, maybe a deadline,
    hedging or a breaker.

    The default dependency: 4 servers, log-normal service times with mean 20 ms (p50 9 ms,
    p99 172 ms), 100 requests/s, so the servers are 50 % busy.
    """

    arrival_rate: float = 100.0
    arrivals: ArrivalProcess | None = None  # overrides arrival_rate (e.g. a load step)
    servers: int | None = 4  # None: every call is served at once (no queueing)
    service: Distribution = field(default_factory=lambda: LogNormal(0.02, 4.0))
    timeout_s: float | None = 0.2  # per attempt; None waits forever
    retries: int = 0  # extra attempts after a timeout
    deadline_s: float | None = None  # for the whole request; None: no deadline
    calls: int = 1  # sequential calls per request
    fanout: int = 1  # parallel calls per step, all needed
    hedge_delay_s: float | None = None  # send a backup copy after this long
    breaker: BreakerConfig | None = None
    faults: tuple[FaultWindow, ...] = ()
    slo_s: float = 0.5  # a later answer does not count as goodput
    duration_s: float = 60.0
    seed: int = 1

    def __post_init__(self) -> None:
        check_positive("arrival_rate", self.arrival_rate)
        if self.servers is not None:
            check_int("servers", self.servers, 1)
        if self.timeout_s is not None:
            check_positive("timeout_s", self.timeout_s)
        check_int("retries", self.retries, 0)
        if self.deadline_s is not None:
            check_positive("deadline_s", self.deadline_s)
        check_int("calls", self.calls, 1)
        check_int("fanout", self.fanout, 1)
        if self.hedge_delay_s is not None:
            check_non_negative("hedge_delay_s", self.hedge_delay_s)
            if self.fanout > 1:
                raise ValueError(f"hedge_delay_s needs fanout = 1 (got fanout={self.fanout})")
        check_positive("slo_s", self.slo_s)
        check_positive("duration_s", self.duration_s)


@dataclass(frozen=True, eq=False)
class Run:
    """What one run left behind: a row per request (as the caller saw it), a row per call
    attempt (``attempts``) and, in the same order, the dependency's row for each attempt
    (``work``: when it really ran, even after the caller gave up)."""

    scenario: Scenario
    requests: RequestTable
    attempts: RequestTable
    work: RequestTable


def simulate(scenario: Scenario) -> Run:
    """Run the scenario with SimPy; deterministic for a given ``scenario.seed``."""
    s = scenario
    rng = np.random.default_rng(s.seed)
    env = simpy.Environment()
    dependency = ServerPool(env, s.servers, s.service, rng, faults=FaultSchedule(s.faults))
    attempts = RequestLog()
    breaker = None
    if s.breaker is not None:
        b = s.breaker
        breaker = CircuitBreaker(ErrorRate(b.failure_rate_threshold, b.window_s, b.minimum_calls),
                                 b.sleep_window_s, lambda: env.now, b.half_open_calls)

    def call(timeout_s: float) -> Event:
        """One attempt with its own timeout (inf: none); a row in ``attempts``."""
        limit = None if math.isinf(timeout_s) else timeout_s
        return Client(env, dependency, limit, attempts).call()

    def step(timeout_s: float) -> Generator[Event, Any, int]:
        """One attempt of one step: a call, a fan-out of calls, or a hedged pair."""
        if breaker is not None and not breaker.allow():
            return int(Outcome.REJECTED)
        if s.fanout > 1:
            copies = [call(timeout_s) for _ in range(s.fanout)]
            yield env.all_of(copies)
            worst = max(int(c.value) for c in copies)  # OK < REJECTED < TIMEOUT < ERROR
        elif s.hedge_delay_s is not None and s.hedge_delay_s < timeout_s:
            first = call(timeout_s)
            yield first | env.timeout(s.hedge_delay_s)
            copies = [first]
            if not first.triggered:
                copies.append(call(timeout_s - s.hedge_delay_s))
                yield env.any_of(copies)
            if not any(c.triggered and c.value is Outcome.OK for c in copies):
                yield env.all_of(copies)
            ok = any(c.triggered and c.value is Outcome.OK for c in copies)
            worst = int(Outcome.OK) if ok else max(int(c.value) for c in copies)
        else:
            worst = int((yield call(timeout_s)))
        if breaker is not None:
            breaker.record(worst == Outcome.OK)
        return worst

    def request(key: int, cls: int) -> Generator[Event, Any, int]:
        expires = env.now + (s.deadline_s or math.inf)
        per_call = s.timeout_s or math.inf
        for _ in range(s.calls):
            for _ in range(s.retries + 1):
                left = expires - env.now
                if left <= 0:
                    return int(Outcome.TIMEOUT)
                outcome = yield from step(min(per_call, left))
                if outcome in (Outcome.OK, Outcome.REJECTED):
                    break
            if outcome != Outcome.OK:
                return outcome
        return int(Outcome.OK)

    callers = ServerPool(env, None, request)
    arrivals = s.arrivals or PoissonArrivals(s.arrival_rate)
    RequestSource(env, arrivals, callers.submit, rng, horizon_s=s.duration_s)
    env.run(until=s.duration_s + 5 * (s.deadline_s or s.timeout_s or 1.0) * s.calls)
    return Run(s, callers.log.table(), attempts.table(), dependency.log.table())


def simulate_fast(scenario: Scenario) -> Run:
    """`simulate` without SimPy, for one call per request with a timeout, immediate retries, a
    queue of ``servers`` and at most "slow" faults: the toolkit's ``fifo_with_timeouts`` fed
    from the same seeded draws, so it gives the same rows (a test holds it to that)."""
    s = scenario
    plain = (s.servers is not None and s.timeout_s is not None and s.calls == 1
             and s.fanout == 1 and s.deadline_s is None and s.hedge_delay_s is None
             and s.breaker is None and all(w.kind == "slow" for w in s.faults))
    if not plain:
        raise ValueError("simulate_fast needs servers, a timeout, one call per request and only "
                         "'slow' faults (no deadline, fan-out, hedging or breaker); use simulate")
    rng = np.random.default_rng(s.seed)
    arrivals = (s.arrivals or PoissonArrivals(s.arrival_rate)).times(rng, horizon=s.duration_s)
    requests, attempts, work = fifo_with_timeouts(
        arrivals, service_stream(s.service, rng), s.servers, s.timeout_s, s.retries,
        FaultSchedule(s.faults) if s.faults else None, until=s.duration_s + 5 * s.timeout_s)
    return Run(s, requests, attempts, work)


def _window(run: Run, start_s: float | None, end_s: float | None) -> tuple[float, float]:
    return (0.0 if start_s is None else start_s,
            run.scenario.duration_s if end_s is None else end_s)


def summary(run: Run, start_s: float | None = None, end_s: float | None = None) -> dict:
    """Headline numbers for requests arriving in [start_s, end_s) (default: the whole run).

    - ``latency_p50_s`` ... ``latency_p999_s``: time until the caller had an answer, success or
      failure (a request still unanswered at the end counts until the end of the run)
    - ``success_rate``: share of requests answered OK; ``goodput_rps``: OK within ``slo_s``
    - ``attempt_timeout_rate``: share of call attempts that timed out
    - ``load_factor``: dependency calls per request (1 = no retries, hedges or fan-out)
    - ``wasted_work``: share of the dependency's busy time in the window spent on calls whose
      caller had given up (the dependency never hears that it may stop)
    - ``utilisation`` of the dependency's servers (with a finite pool)
    """
    s = run.scenario
    start, end = _window(run, start_s, end_s)
    r, a, w = run.requests, run.attempts, run.work
    mine = (r.arrival >= start) & (r.arrival < end)
    stop = max(float(np.nanmax(r.end, initial=end)), end)
    latency = np.where(np.isnan(r.end), stop, r.end)[mine] - r.arrival[mine]
    ok = r.outcome[mine] == Outcome.OK
    tried = (a.arrival >= start) & (a.arrival < end)
    n = int(mine.sum())
    began = np.where(np.isnan(w.start), end, np.maximum(w.start, start))
    busy = np.clip(np.minimum(np.nan_to_num(w.end, nan=end), end) - began, 0.0, None)
    abandoned = a.outcome == Outcome.TIMEOUT
    report = {
        **latency_percentiles(latency),
        "success_rate": float(ok.mean()) if n else math.nan,
        "goodput_rps": float((ok & (latency <= s.slo_s)).sum()) / (end - start),
        "attempt_timeout_rate": float((a.outcome[tried] == Outcome.TIMEOUT).mean())
        if tried.any() else math.nan,
        "load_factor": float(tried.sum()) / n if n else math.nan,
        "wasted_work": float(busy[abandoned].sum() / busy.sum()) if busy.sum() > 0 else 0.0,
    }
    if s.servers is not None:
        report["utilisation"] = float(busy.sum()) / (s.servers * (end - start))
    return report


def timeline(run: Run, bin_s: float = 1.0) -> dict[str, np.ndarray]:
    """Per-bin series for a dashboard: p99 of the time to answer (by arrival), goodput
    (OK within the SLO per second, by answer time), the attempt timeout rate and the load
    factor (dependency calls per request arriving in the bin)."""
    s, r, a = run.scenario, run.requests, run.attempts
    end = s.duration_s
    stop = max(float(np.nanmax(r.end, initial=end)), end)
    latency = np.where(np.isnan(r.end), stop, r.end) - r.arrival
    mids, p99 = per_bin(r.arrival, latency, bin_s, 0.0, end, percentile_of(99))
    good = (r.outcome == Outcome.OK) & (latency <= s.slo_s)
    _, goodput = rate_over_time(r.end[good], bin_s, 0.0, end)
    timed_out = (a.outcome == Outcome.TIMEOUT).astype(float)
    _, timeout_rate = per_bin(a.arrival, timed_out, bin_s, 0.0, end, np.mean)
    _, calls = rate_over_time(a.arrival, bin_s, 0.0, end)
    _, arrivals = rate_over_time(r.arrival, bin_s, 0.0, end)
    return {"time_s": mids, "p99_latency_s": p99, "goodput_rps": goodput,
            "attempt_timeout_rate": timeout_rate,
            "load_factor": np.divide(calls, arrivals, out=np.full_like(calls, np.nan),
                                     where=arrivals > 0)}


def sweep(base: Scenario, fast: bool = False, **grid: list) -> list[tuple[dict, dict]]:
    """Run ``base`` once per combination of Scenario fields in ``grid``; returns
    (settings, `summary`) pairs in grid order. ``fast`` runs `simulate_fast` (same rows)."""
    from dataclasses import replace
    from itertools import product

    names = list(grid)
    rows = []
    for values in product(*grid.values()):
        settings = dict(zip(names, values, strict=True))
        run = (simulate_fast if fast else simulate)(replace(base, **settings))
        rows.append((settings, summary(run)))
    return rows


def _labels() -> dict[str, str]:
    return {
        "latency_p99_s": "p99 time to answer (s)",
        "latency_p999_s": "p99.9 time to answer (s)",
        "attempt_timeout_rate": "attempts timed out (share)",
        "load_factor": "dependency calls per request",
        "goodput_rps": "goodput (OK within SLO, req/s)",
        "success_rate": "requests answered OK (share)",
        "wasted_work": "dependency time wasted (share)",
    }


def plot_sweep(rows: list[tuple[dict, dict]], x: str, by: str | None = None,
               metrics: tuple[str, ...] = ("attempt_timeout_rate", "latency_p99_s",
                                           "load_factor"),
               xlabel: str | None = None, log_y: tuple[str, ...] = ()):
    """One panel per metric against setting ``x``, one line per value of ``by``
    (``plots.sweep_panels``); returns the figure."""
    from simulations import plots

    axes = plots.sweep_panels([{**settings, **out} for settings, out in rows], x=x, by=by,
                              metrics=metrics, xlabel=xlabel or x, ylabels=_labels(),
                              group_label=lambda g: "simulated" if by is None else f"{by} = {g}",
                              log_y=log_y, panel_size=(4.0, 3.2))
    return axes[0].figure


def plot_dashboard(runs: dict[str, Run], bin_s: float = 1.0):
    """The monitoring view: p99, goodput, timeout rate and load factor over time, one line per
    run, fault windows shaded."""
    from simulations import plots

    series = {label: timeline(run, bin_s) for label, run in runs.items()}
    times = next(iter(series.values()))["time_s"]
    labels = _labels()
    panels = {labels[m] if m != "p99_latency_s" else "p99 time to answer (s)":
              {label: t[m] for label, t in series.items()}
              for m in ("p99_latency_s", "goodput_rps", "attempt_timeout_rate", "load_factor")}
    spans = [(w.start_s, w.end_s) for w in next(iter(runs.values())).scenario.faults]
    return plots.dashboard(times, panels, windows=spans, window_label="dependency slow")


__all__ = [
    "Run", "Scenario", "expected_attempts", "false_timeout_probability",
    "fanout_timeout_probability", "hedge_rate", "hedged_survival",
    "per_call_timeout_for_fanout", "plot_dashboard", "plot_sweep", "simulate", "simulate_fast",
    "summary", "sweep", "timeline", "timeout_for_false_rate"
]
