"""The retry study: what retries, backoff, jitter and a retry budget do to a busy service.

Picture a call centre that can answer 50 calls a second and gets 35. Callers who hear the busy
tone ring again. On a normal day almost nobody does. Then the centre has a bad ten seconds, a
queue builds, callers hang up after a second of waiting and ring again, up to three more times
each. Now 35 callers a second place up to 140 calls a second, the centre answers 50 of them, and
by the time it answers one, its caller has hung up. The bad ten seconds are long over, yet
nothing gets through: the retries keep the centre overloaded (a *metastable* failure).

This module holds the closed forms (expected attempts, the layered worst case, the load a failed
state sustains) and three SimPy studies built from the toolkit:

- `simulate`: open-loop Poisson requests to a ``ServerPool`` (c servers, bounded queue), each
  attempt a ``Client`` call with a timeout, retried by the lesson's `Retrier` policy (and
  optionally a retry budget or a circuit breaker); a ``FaultSchedule`` slow-down is the trigger;
- `herd`: a crowd of clients that all fail at once and retry (Brooker's experiment in spirit):
  completion time and total calls per jitter mode;
- `layered_calls`: nested retriers, L layers deep, against a flaky bottom service.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
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
    check_range,
)
from patterns.resilience.circuit_breaker import BreakerConfig, CircuitBreaker, ErrorRate
from patterns.resilience.retry_backoff_jitter import Backoff, Retrier, RetryBudget
from simulations.clients import Client, RequestSource
from simulations.distributions import Exponential
from simulations.experiments import aggregate
from simulations.experiments import sweep as sweep_grid
from simulations.faults import FaultSchedule, FaultWindow
from simulations.metrics import (
    goodput_over_time,
    latency_percentiles,
    number_in_system_over_time,
    per_bin,
    percentile_of,
    rate_over_time,
    summarize,
    time_average,
)
from simulations.records import Outcome, RequestLog, RequestTable
from simulations.servers import ServerPool, Service
from simulations.workloads import PoissonArrivals

# ---------------------------------------------------------------- theory


def expected_attempts(failure_probability: float, max_attempts: int) -> float:
    """E[attempts] for one request = (1 − pⁿ)/(1 − p), and n when p = 1.

    Assumptions: each attempt fails independently with the same probability p; the request stops
    at its first success or after n = ``max_attempts`` attempts. The number of attempts N has
    P(N > k) = p^k for k < n, so E[N] = Σ_{k=0}^{n−1} p^k. This is also the load multiplier the
    retries put on the service.
    """
    p = check_probability("failure_probability", failure_probability)
    n = check_int("max_attempts", max_attempts, 1)
    return float(n) if p == 1 else (1 - p**n) / (1 - p)


def success_probability(failure_probability: float, max_attempts: int) -> float:
    """P(the request succeeds within n attempts) = 1 − pⁿ (same assumptions)."""
    p = check_probability("failure_probability", failure_probability)
    return 1 - p ** check_int("max_attempts", max_attempts, 1)


def layered_worst_case(retries: int, layers: int) -> int:
    """Calls reaching the bottom service per top-level request when every call fails and each
    of ``layers`` layers makes 1 + ``retries`` attempts of the layer below: (r + 1)^L."""
    return (check_int("retries", retries, 0) + 1) ** check_int("layers", layers, 1)


def layered_expected_calls(failure_probability: float, max_attempts: int, layers: int) -> float:
    """E[bottom calls per top request] when each layer makes up to n attempts of the one below
    and the bottom fails each call independently with probability p.

    A call into layer i fails only if all its attempts of layer i−1 fail: q_i = q_{i−1}ⁿ with
    q_0 = p. Attempts multiply down the stack, so E = Π_{i=1}^{L} (1 − q_{i−1}ⁿ)/(1 − q_{i−1}).
    With p = 1 this is nᴸ, the worst case.
    """
    q, calls = check_probability("failure_probability", failure_probability), 1.0
    n = check_int("max_attempts", max_attempts, 1)
    for _ in range(check_int("layers", layers, 1)):
        calls *= expected_attempts(q, n)
        q = q**n
    return calls


def sustained_amplification(max_attempts: int, budget_ratio: float | None = None) -> float:
    """Attempts per request while every attempt fails: n, or with a retry budget of ratio β
    at most min(n, 1 + β) in the long run (retries ≤ reserve + β · requests)."""
    n = check_int("max_attempts", max_attempts, 1)
    if budget_ratio is None:
        return float(n)
    return min(float(n), 1 + check_range("budget_ratio", budget_ratio, 0.0, 1.0))


def collapse_persists(arrival_rate: float, capacity_rate: float, max_attempts: int,
                      budget_ratio: float | None = None) -> bool:
    """Does a failed state sustain itself once the trigger is gone? (fluid model)

    In the failed state every attempt times out (the queue is longer than the timeout), so the
    service is offered λ · a attempts per second, a = `sustained_amplification`. If that exceeds
    its capacity μ the queue stays full and the failure persists; otherwise the queue drains.
    So a service with λ < μ is *metastable* when λ · a > μ: healthy until a trigger, failed after.
    """
    lam = check_positive("arrival_rate", arrival_rate)
    mu = check_positive("capacity_rate", capacity_rate)
    return lam * sustained_amplification(max_attempts, budget_ratio) > mu


# ---------------------------------------------------------------- the retry loop in SimPy


class FlakyService:
    """A ``Service`` wrapper whose OK answers turn into ERROR with probability ``p``, each
    independently (the assumption behind `expected_attempts`)."""

    def __init__(self, env: simpy.Environment, service: Service, p: float,
                 rng: np.random.Generator) -> None:
        self.env, self.service, self.rng = env, service, rng
        self.p = check_probability("p", p)

    def call(self, key: int = -1, cls: int = -1) -> Event:
        answer = Event(self.env)

        def settle(event: Event) -> None:
            failed = event.value == Outcome.OK and self.rng.random() < self.p
            answer.succeed(Outcome.ERROR if failed else event.value)

        self.service.call(key, cls).callbacks.append(settle)
        return answer


def retrying_call(env: simpy.Environment, service: Service, retrier: Retrier,
                  breaker: CircuitBreaker | None = None
                  ) -> Generator[Event, Any, tuple[Outcome, int]]:
    """One request as a SimPy process: attempts ``service`` until OK or the retrier says stop
    (``Retrier.next_wait``), waiting the backoff in between. Through a ``breaker``, a refused
    attempt ends the request at once (REJECTED) and is never retried.
    Returns (outcome, attempts)."""
    retrier.start()
    attempts, wait = 0, 0.0
    while True:
        if breaker is not None and not breaker.allow():
            return Outcome.REJECTED, attempts
        attempts += 1
        outcome = yield service.call()
        if breaker is not None:
            breaker.record(outcome == Outcome.OK)
        if outcome == Outcome.OK:
            return outcome, attempts
        wait = retrier.next_wait(attempts, wait)
        if wait is None:
            return outcome, attempts
        yield Timeout(env, wait)


# ---------------------------------------------------------------- the overload study


def slowdown(start_s: float = 10.0, end_s: float = 15.0, factor: float = 10.0) -> FaultWindow:
    """The usual trigger: service times ``factor`` times longer in [start_s, end_s)."""
    return FaultWindow(start_s, end_s, "slow", slow_factor=factor)


@dataclass(frozen=True)
class Scenario:
    """One run: Poisson requests to c servers with a bounded queue; callers time out and retry."""

    arrival_rate: float = 35.0  # requests per second
    servers: int = 5  # c
    service_mean_s: float = 0.1  # exponential; capacity μ = c / mean = 50 req/s
    queue_capacity: int = 100  # K: attempts in the pool (queued + served); more are REJECTED
    timeout_s: float = 1.0  # the caller gives up on an attempt after this long
    max_attempts: int = 1  # 1 = no retries
    backoff: Backoff = field(default_factory=lambda: Backoff(0.1, 2.0, "full"))
    budget_ratio: float | None = None  # retry budget: retries ≤ ratio × requests (+ reserve)
    budget_reserve: float = 10.0
    breaker: BreakerConfig | None = None  # a circuit breaker in front of every attempt
    error_rate: float = 0.0  # each served attempt fails independently with this probability
    trigger: FaultWindow | None = field(default_factory=slowdown)
    slo_s: float = 1.0  # an answer slower than this is not goodput
    duration_s: float = 60.0
    seed: int = 1

    def __post_init__(self) -> None:
        check_positive("arrival_rate", self.arrival_rate)
        check_int("servers", self.servers, 1)
        check_positive("service_mean_s", self.service_mean_s)
        check_int("queue_capacity", self.queue_capacity, self.servers)
        check_positive("timeout_s", self.timeout_s)
        check_int("max_attempts", self.max_attempts, 1)
        if self.budget_ratio is not None:
            check_range("budget_ratio", self.budget_ratio, 0.0, 1.0)
        check_non_negative("budget_reserve", self.budget_reserve)
        check_probability("error_rate", self.error_rate)
        check_positive("slo_s", self.slo_s)
        check_positive("duration_s", self.duration_s)

    @property
    def capacity_rate(self) -> float:
        """μ = c / E[S], attempts the servers can complete per second."""
        return self.servers / self.service_mean_s

    @property
    def load(self) -> float:
        """ρ = λ / μ, the offered load without retries."""
        return self.arrival_rate / self.capacity_rate


@dataclass(frozen=True, eq=False)
class Run:
    """A run's records: one row per request as its user saw it (arrival to final answer,
    outcome of the last attempt), one row per attempt as the servers saw it, and the
    attempts each request made."""

    scenario: Scenario
    requests: RequestTable
    attempts: RequestTable
    attempts_per_request: np.ndarray

    @property
    def amplification(self) -> float:
        """Attempts sent to the servers per request."""
        return len(self.attempts) / max(len(self.requests), 1)


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """Run the scenario with SimPy; deterministic for a given ``scenario.seed`` (or ``rng``)."""
    s = scenario
    rng = np.random.default_rng(s.seed) if rng is None else rng
    env = simpy.Environment()
    faults = FaultSchedule([s.trigger] if s.trigger else [])
    expected = int(s.arrival_rate * s.duration_s * 1.1) + 16
    pool = ServerPool(env, s.servers, Exponential(s.service_mean_s), rng,
                      capacity=s.queue_capacity, faults=faults,
                      log=RequestLog(expected * min(s.max_attempts, 4)))
    service: Service = pool if s.error_rate == 0 else FlakyService(env, pool, s.error_rate, rng)
    client = Client(env, service, s.timeout_s)
    budget = None if s.budget_ratio is None else RetryBudget(s.budget_ratio, s.budget_reserve)
    retrier = Retrier(s.max_attempts, s.backoff, budget=budget, rand=rng.random)
    breaker = None
    if s.breaker is not None:
        b = s.breaker
        breaker = CircuitBreaker(ErrorRate(b.failure_rate_threshold, b.window_s, b.minimum_calls),
                                 b.sleep_window_s, lambda: env.now, b.half_open_calls)
    requests = RequestLog(expected)
    attempts: list[int] = []

    def request(row: int) -> Generator[Event, Any, None]:
        outcome, tries = yield from retrying_call(env, client, retrier, breaker)
        requests.finished(row, env.now, outcome)
        attempts[row] = tries

    def arrive(_key: int, _cls: int) -> None:
        row = requests.add(env.now)
        requests.started(row, env.now)
        attempts.append(0)
        env.process(request(row))

    RequestSource(env, PoissonArrivals(s.arrival_rate), arrive, rng, horizon_s=s.duration_s)
    env.run(until=s.duration_s)
    return Run(s, requests.table(), pool.log.table(), np.array(attempts))


def summary(run: Run, start_s: float | None = None, end_s: float | None = None) -> dict:
    """Headline numbers for requests arriving in [start_s, end_s) (default: from 15 s after the
    trigger, or 10 s, to 5 s before the end, so late arrivals have time to finish).

    ``goodput_rps``: requests answered OK within the SLO per second; ``goodput_fraction``: the
    share of the window's arrivals answered so (at most 1, unlike goodput over the nominal rate,
    which Poisson arrivals push above 1 in a busy window); ``amplification``: attempts reaching
    the servers per request;
    ``p99_latency_s``: of OK answers; ``failed_fraction``: requests that did not end OK."""
    s = run.scenario
    if start_s is None:
        start_s = s.trigger.end_s + 15 if s.trigger else 10.0
    if end_s is None:
        end_s = s.duration_s - 5
    r = run.requests
    part = (r.arrival >= start_s) & (r.arrival < end_s)
    report = summarize(r, start_s=start_s, end_s=end_s, slo_s=s.slo_s)
    sent = (run.attempts.arrival >= start_s) & (run.attempts.arrival < end_s)
    return {
        "goodput_rps": report["goodput_per_s"],
        "goodput_fraction": report["goodput_per_s"] / report["arrival_rate_per_s"],
        "amplification": float(sent.sum()) / max(int(part.sum()), 1),
        "p99_latency_s": latency_percentiles(r.latency[part & r.has(Outcome.OK)],
                                             [99])["latency_p99_s"],
        "failed_fraction": 1 - report["ok_fraction"],
    }


def timeline(run: Run, bin_s: float = 1.0) -> dict[str, np.ndarray]:
    """Per-bin metrics for a dashboard: attempts sent to the servers per second (offered
    load, retries included), goodput per second, p99 latency of the answers given in each bin,
    and the time-average number of attempts held in the servers' pool (queue + in service)."""
    r, a, end_s = run.requests, run.attempts, run.scenario.duration_s
    time_s, sent = rate_over_time(a.arrival, bin_s, 0.0, end_s)
    ok = r.has(Outcome.OK)
    _, p99 = per_bin(r.end[ok], r.latency[ok], bin_s, 0.0, end_s,
                     percentile_of(99))
    held = number_in_system_over_time(a)
    edges = np.minimum(np.arange(len(time_s) + 1) * bin_s, end_s)
    return {
        "time_s": time_s,
        "attempts_rps": sent,
        "goodput_rps": goodput_over_time(r, bin_s, 0.0, end_s, slo_s=run.scenario.slo_s)[1],
        "p99_latency_s": p99,
        "in_pool": np.array([time_average(*held, lo, hi) for lo, hi in pairwise(edges)]),
    }


# ---------------------------------------------------------------- policies, sweeps and plots

POLICIES = {
    "no retries": {"max_attempts": 1},
    "immediate retries": {"max_attempts": 4, "backoff": Backoff(0.0, 0.0, "none")},
    "backoff, no jitter": {"max_attempts": 4, "backoff": Backoff(0.1, 2.0, "none")},
    "backoff, full jitter": {"max_attempts": 4, "backoff": Backoff(0.1, 2.0, "full")},
    "full jitter + 10 % budget": {"max_attempts": 4, "backoff": Backoff(0.1, 2.0, "full"),
                                  "budget_ratio": 0.1},
}
"""The lesson's retry policies, as Scenario fields (4 attempts = 3 retries)."""

LABELS = {
    "goodput_rps": "goodput (req/s)",
    "goodput_fraction": "goodput / arrivals",
    "amplification": "attempts per request",
    "p99_latency_s": "p99 latency of OK answers (s)",
    "failed_fraction": "share of requests failed",
    "attempts_rps": "attempts sent (req/s)",
    "in_pool": "attempts in the pool",
    "load": "offered load ρ = λ/μ (no retries)",
}
TIMELINE_METRICS = ("attempts_rps", "goodput_rps", "p99_latency_s", "in_pool")
SWEEP_METRICS = ("goodput_rps", "goodput_fraction", "amplification", "p99_latency_s",
                 "failed_fraction")


def policy(name: str, base: Scenario | None = None) -> Scenario:
    """``base`` (default Scenario()) with the retry settings of policy ``name`` (see POLICIES)."""
    check_choice("policy", name, POLICIES)
    return replace(base or Scenario(), **POLICIES[name])


def load_sweep(base: Scenario, loads: Sequence[float], policies: Sequence[str],
               replications: int = 1) -> list[dict[str, Any]]:
    """`summary` of each policy at each offered load ρ (arrival rate ρ·μ), averaged over
    ``replications`` seeded runs with the toolkit's ``sweep`` and ``aggregate``: one row per
    (policy, load) with the mean of each metric and its 95 % half-width under ``<metric>_ci``."""
    for name in policies:
        check_choice("policy", name, POLICIES)

    def model(rng: np.random.Generator, policy_name: str, load: float) -> dict:
        scenario = replace(policy(policy_name, base), arrival_rate=load * base.capacity_rate)
        return summary(simulate(scenario, rng))

    rows = sweep_grid(model, {"policy_name": list(policies), "load": list(loads)},
                      seed=base.seed, replications=replications)
    return aggregate(rows, by=["policy_name", "load"], metrics=SWEEP_METRICS)


def plot_dashboard(runs: dict[str, Run], metrics: Sequence[str] = TIMELINE_METRICS,
                   bin_s: float = 1.0) -> list:
    """Small multiples over time (``plots.dashboard``), one line per run, the trigger of the
    first run shaded and the servers' capacity drawn in the attempts panel."""
    from simulations import plots

    for metric in metrics:
        check_choice("metric", metric, TIMELINE_METRICS)
    series = {label: timeline(run, bin_s) for label, run in runs.items()}
    first = next(iter(runs.values())).scenario
    time_s = next(iter(series.values()))["time_s"]
    panels = {LABELS[m]: {label: values[m] for label, values in series.items()} for m in metrics}
    if "attempts_rps" in metrics:
        panels[LABELS["attempts_rps"]]["capacity μ"] = np.full(len(time_s), first.capacity_rate)
    trigger = first.trigger
    return plots.dashboard(time_s, panels,
                           windows=[(trigger.start_s, trigger.end_s)] if trigger else [],
                           window_label="trigger (slow-down)")


def plot_load_sweep(rows: list[dict[str, Any]],
                    metrics: Sequence[str] = ("goodput_fraction", "amplification",
                                              "p99_latency_s")) -> list:
    """One panel per metric against offered load, one line per policy (``plots.sweep_panels``),
    with 95 % interval bars when rows average several replications; one legend, in the first
    panel."""
    from simulations import plots

    axes = plots.sweep_panels(rows, x="load", by="policy_name", metrics=metrics,
                              xlabel=LABELS["load"], ylabels=LABELS, panel_size=(4.4, 3.6))
    for ax in axes[1:]:
        ax.get_legend().remove()
    return axes


# ---------------------------------------------------------------- the thundering herd


def herd(backoff: Backoff, rng: np.random.Generator, *, clients: int = 100, servers: int = 1,
         service_mean_s: float = 0.01, queue_capacity: int = 5,
         max_attempts: int = 100) -> dict[str, float]:
    """``clients`` callers fail at t = 0 (a dependency has just come back) and all retry with
    ``backoff`` against a small ``ServerPool`` that rejects at once when ``queue_capacity`` is
    reached. Returns ``completion_s`` (when the last caller succeeded), ``mean_completion_s``,
    ``calls`` (attempts in all, the work the retries cost) and ``gave_up`` (callers that ran
    out of attempts)."""
    env = simpy.Environment()
    pool = ServerPool(env, servers, Exponential(service_mean_s), rng, capacity=queue_capacity)
    retrier = Retrier(max_attempts, backoff, rand=rng.random)
    done: list[float] = []
    gave_up = 0

    def caller() -> Generator[Event, Any, None]:
        nonlocal gave_up
        yield Timeout(env, 0)
        outcome, _ = yield from retrying_call(env, pool, retrier)
        if outcome == Outcome.OK:
            done.append(env.now)
        else:
            gave_up += 1

    for _ in range(check_int("clients", clients, 1)):
        env.process(caller())
    env.run()
    return {"completion_s": max(done) if done else math.nan,
            "mean_completion_s": float(np.mean(done)) if done else math.nan,
            "calls": float(len(pool.log)), "gave_up": float(gave_up)}


def herd_sweep(modes: Sequence[str], replications: int = 10, seed: int = 1,
               base_s: float = 0.01, cap_s: float = 10.0, **options: Any) -> list[dict]:
    """`herd` for each jitter mode, ``replications`` seeded runs each, aggregated (mean and
    95 % half-width of each metric)."""
    def model(rng: np.random.Generator, jitter: str) -> dict:
        return herd(Backoff(base_s, cap_s, jitter), rng, **options)

    rows = sweep_grid(model, {"jitter": list(modes)}, seed=seed, replications=replications)
    return aggregate(rows, by=["jitter"],
                     metrics=["completion_s", "mean_completion_s", "calls", "gave_up"])


# ---------------------------------------------------------------- retries across layers


def layered_calls(layers: int, max_attempts: int, failure_probability: float, requests: int,
                  rng: np.random.Generator, retry_at: Sequence[int] | None = None) -> np.ndarray:
    """Bottom calls per top-level request when ``layers`` services call one another, each
    through the lesson's `Retrier` (no waiting), and the bottom fails each call independently
    with ``failure_probability``. ``retry_at`` lists the layers (1 = just above the bottom)
    that retry; by default all do. Returns one count per request."""
    layers = check_int("layers", layers, 1)
    p = check_probability("failure_probability", failure_probability)
    chosen = set(range(1, layers + 1) if retry_at is None else retry_at)
    bottom_calls = 0

    def bottom() -> None:
        nonlocal bottom_calls
        bottom_calls += 1
        if rng.random() < p:
            raise ConnectionError("bottom service failed")

    call = bottom
    for layer in range(1, layers + 1):
        retrier = Retrier(max_attempts if layer in chosen else 1, Backoff(0.0, 0.0, "none"),
                          sleep=lambda _s: None)
        call = (lambda inner, r: lambda: r.call(inner))(call, retrier)
    counts = np.zeros(check_int("requests", requests, 1))
    for i in range(len(counts)):
        before = bottom_calls
        try:
            call()
        except ConnectionError:
            pass
        counts[i] = bottom_calls - before
    return counts
