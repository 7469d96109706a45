"""The bulkhead study: two tenants share a service; one of them misbehaves.

Picture a canteen with ten cooks serving two offices. On a normal day each office sends its
orders and any free cook takes the next one: pooled cooks are never idle while an order waits.
Then one office orders a banquet (a *flood*) or keeps asking for a dish whose supplier has
stopped answering (a *hung dependency*). With one shared line the other office's lunch waits
behind the banquet. Bulkheads give each office its own cooks (*partitions*, Hystrix's thread
pools) or cap how many cooks one office may hold at once (*semaphores*, refusing the rest): the
banquet then floods one compartment only. The price is that on a normal day a cook of one office
may stand idle while the other office's orders wait, which Erlang's formulas measure.

This module holds the closed forms (Erlang C for the pooling cost, Erlang B for semaphore
refusals, a fluid model of the shared queue during a flood, partition sizing) and the SimPy
model that checks them, built from the toolkit: each tenant is a ``RequestSource``, the workers
are one or two ``ServerPool``\\ s, each tenant's dependency is a ``ServerPool`` behind a
``Client`` (with a timeout and, optionally, a circuit breaker from ``circuit_breaker``), and a
semaphore bulkhead is one more ``Service`` in front of the shared workers.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
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
    check_range,
)
from patterns.resilience.bulkhead import Bulkhead
from patterns.resilience.circuit_breaker import BreakerConfig
from simulations.clients import Client, RequestSource
from simulations.distributions import Exponential
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
    time_average,
)
from simulations.records import Outcome, RequestLog, RequestTable
from simulations.resilience.circuit_breaker import BreakerService, make_breaker
from simulations.servers import ServerPool, Service
from simulations.theory import erlang_b, mmc_mean_response, mmc_response_percentile
from simulations.workloads import PoissonArrivals, TimeVaryingArrivals

ISOLATIONS = ("shared", "partitioned", "semaphore")
"""One pool for everyone; a worker pool per tenant; per-tenant permits on one pool."""
TENANTS = ("healthy", "noisy")
"""Request classes: 0 is the well-behaved tenant, 1 the one that floods or hangs."""
HEALTHY, NOISY = 0, 1

# ---------------------------------------------------------------- theory


def partitioned_mean_response(arrival_rate: float, service_rate: float, servers: int,
                              partitions: int) -> float:
    """Mean response time when ``servers`` are split into ``partitions`` equal pools, each fed
    an equal share of the Poisson traffic: every pool is an M/M/(c/k) with rate λ/k (so one
    partition is the pooled M/M/c). Needs c divisible by k and λ < cμ."""
    c = check_int("servers", servers, low=1)
    k = check_int("partitions", partitions, low=1, high=c)
    if c % k:
        raise ValueError(f"partitions must divide servers = {c} (got {partitions})")
    return mmc_mean_response(arrival_rate / k, service_rate, c // k)


def pooling_penalty(arrival_rate: float, service_rate: float, servers: int,
                    partitions: int) -> float:
    """How many times longer the mean response is with ``partitions`` equal bulkheads than
    with one pool of the same ``servers`` at the same load (Erlang C on both sides)."""
    return (partitioned_mean_response(arrival_rate, service_rate, servers, partitions)
            / mmc_mean_response(arrival_rate, service_rate, servers))


def semaphore_rejection(arrival_rate: float, service_rate: float, permits: int) -> float:
    """Share of a tenant's calls refused by a semaphore bulkhead of ``permits`` that never
    queues (Resilience4j's ``maxWaitDuration`` = 0): an M/M/m/m loss system, Erlang B
    (insensitive to the service-time distribution beyond its mean)."""
    check_positive("service_rate", service_rate)
    return erlang_b(check_int("permits", permits, low=1),
                    check_positive("arrival_rate", arrival_rate) / service_rate)


def flood_wait_s(time_into_flood_s: float, total_rate: float, service_rate: float,
                 servers: int) -> float:
    """Queueing delay of a request arriving ``time_into_flood_s`` after a flood starts, in a
    shared FIFO pool (fluid model): the queue grows at λ − cμ per second and drains at cμ, so
    the wait is (λ − cμ)·t / (cμ); zero if the pool keeps up. Ignores the small queue before
    the flood and random fluctuations, which matter less the longer the flood lasts."""
    t = check_non_negative("time_into_flood_s", time_into_flood_s)
    capacity = check_int("servers", servers, low=1) * check_positive("service_rate",
                                                                     service_rate)
    return max(check_non_negative("total_rate", total_rate) - capacity, 0.0) * t / capacity


def smallest_partition(arrival_rate: float, service_rate: float, target_s: float,
                       quantile: float = 0.99) -> int:
    """Fewest workers c whose M/M/c response-time ``quantile`` meets ``target_s``: the size of
    a partition that keeps its tenant's tail under a target at its normal load."""
    lam = check_positive("arrival_rate", arrival_rate)
    mu = check_positive("service_rate", service_rate)
    target = check_positive("target_s", target_s)
    floor = -math.log1p(-quantile) / mu  # the service time alone: no c can beat it
    if target <= floor:
        raise ValueError(f"target_s must exceed the service-time {quantile:g} quantile "
                         f"{floor:.4g} s, which no number of workers can shorten "
                         f"(got {target_s!r})")
    c = math.floor(lam / mu) + 1
    while mmc_response_percentile(lam, mu, c, quantile) > target:
        c += 1
    return c


# ---------------------------------------------------------------- the SimPy study


@dataclass(frozen=True)
class Scenario:
    """Two tenants, one service of ``workers``, an isolation, and a flood or an outage."""

    healthy_rate: float = 30.0  # requests per second (Poisson)
    noisy_rate: float = 30.0  # the noisy tenant's normal rate
    mean_service_s: float = 0.1  # exponential dependency latency, which holds a worker
    workers: int = 10  # c, in total
    isolation: str = "shared"  # see ISOLATIONS
    noisy_workers: int = 5  # the noisy tenant's partition or permits; the healthy one gets the rest
    queue_limit: int | None = None  # waiting room of each worker pool (None: unbounded)
    flood_factor: float = 4.0  # the noisy tenant's rate is multiplied by this ...
    flood_start_s: float = 20.0  # ... from here ...
    flood_end_s: float = 40.0  # ... to here
    outage: FaultWindow | None = None  # the noisy tenant's dependency misbehaves
    timeout_s: float | None = None  # the client timeout on dependency calls (None: waits)
    breaker: BreakerConfig | None = None  # a breaker per dependency (None: none)
    fast_fail_s: float = 0.001  # a call refused by a breaker still costs this much
    slo_s: float = 0.5  # answers slower than this are not goodput
    duration_s: float = 60.0
    seed: int = 1

    def __post_init__(self) -> None:
        check_positive("healthy_rate", self.healthy_rate)
        check_positive("noisy_rate", self.noisy_rate)
        check_positive("mean_service_s", self.mean_service_s)
        check_int("workers", self.workers, low=2)
        check_choice("isolation", self.isolation, ISOLATIONS)
        check_int("noisy_workers", self.noisy_workers, low=1, high=self.workers - 1)
        if self.queue_limit is not None:
            check_int("queue_limit", self.queue_limit, low=0)
        check_non_negative("flood_factor", self.flood_factor)
        check_non_negative("flood_start_s", self.flood_start_s)
        check_range("flood_end_s", self.flood_end_s, self.flood_start_s, low_open=True)
        if self.timeout_s is not None:
            check_positive("timeout_s", self.timeout_s)
        check_non_negative("fast_fail_s", self.fast_fail_s)
        check_positive("slo_s", self.slo_s)
        check_positive("duration_s", self.duration_s)

    @property
    def shares(self) -> tuple[int, int]:
        """Workers (or permits) per tenant: (healthy, noisy)."""
        return self.workers - self.noisy_workers, self.noisy_workers

    @property
    def window(self) -> tuple[float, float]:
        """When the noisy tenant misbehaves: the outage if there is one, else the flood."""
        if self.outage is not None:
            return self.outage.start_s, min(self.outage.end_s, self.duration_s)
        return self.flood_start_s, self.flood_end_s


@dataclass(frozen=True, eq=False)
class Run:
    """What one run left behind: a row per request as its caller saw it (``cls`` is the
    tenant; REJECTED means refused by a bulkhead, a full queue or a breaker), and a row per
    request that held a worker (when it held it)."""

    scenario: Scenario
    requests: RequestTable
    workers: RequestTable


class BulkheadService:
    """A ``Service`` that admits a call to ``service`` only with a permit of ``bulkhead``.

    A call that finds the bulkhead full comes back REJECTED at once; an admitted call gives
    its permit back when its answer (or its caller's timeout) arrives.
    """

    def __init__(self, env: simpy.Environment, service: Service, bulkhead: Bulkhead) -> None:
        self.env, self.service, self.bulkhead = env, service, bulkhead

    def call(self, key: int = -1, cls: int = -1) -> Event:
        if not self.bulkhead.try_acquire():
            return Timeout(self.env, 0.0, Outcome.REJECTED)
        answer = self.service.call(key, cls)
        answer.callbacks.append(lambda _: self.bulkhead.release())
        return answer


def noisy_arrivals(s: Scenario) -> TimeVaryingArrivals:
    """The noisy tenant's Poisson traffic, ``flood_factor`` times heavier during the flood."""
    normal, flood = s.noisy_rate, s.noisy_rate * s.flood_factor

    def rate(t: np.ndarray) -> np.ndarray:
        t = np.asarray(t)
        return np.where((t >= s.flood_start_s) & (t < s.flood_end_s), flood, normal)

    return TimeVaryingArrivals(rate, max(normal, flood))


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """Run the scenario with SimPy; deterministic for a given ``scenario.seed`` (or ``rng``).

    Both tenants' arrivals and every request's dependency latency are drawn up front, so runs
    that differ only in the isolation see exactly the same traffic. A request enters through
    an unlimited front ``ServerPool`` (the caller's view), goes to its tenant's route (the
    shared workers, its own partition, or a semaphore on the shared workers), and its worker
    calls the tenant's dependency through a ``Client`` (and a breaker, if configured).
    """
    s = scenario
    rng = np.random.default_rng(s.seed) if rng is None else rng
    env = simpy.Environment()
    # A request's key is its row in the front log, which indexes its dependency latency.
    sources = [RequestSource(env, arrivals, lambda _k, _c, cls=cls: front.submit(len(front.log),
                                                                                  cls),
                             rng, horizon_s=s.duration_s)
               for cls, arrivals in enumerate([PoissonArrivals(s.healthy_rate),
                                               noisy_arrivals(s)])]
    n = sum(len(source.times) for source in sources)
    latency = np.asarray(Exponential(s.mean_service_s).sample(rng, n), dtype=float)
    faults = [None, FaultSchedule([s.outage]) if s.outage else None]

    def answer(key: int, cls: int):
        """The dependency's work; the noisy tenant's pool hangs or fails in its windows."""
        window = faults[cls].active(env.now) if faults[cls] else None
        took = latency[key]
        if window is not None and window.kind == "slow":  # pools stretch sampled times only
            took = took * window.slow_factor + window.slow_add_s
        yield env.timeout(took)

    guarded: list[Service] = []
    for cls in (HEALTHY, NOISY):
        dependency = ServerPool(env, None, answer, faults=faults[cls])
        client = Client(env, dependency, s.timeout_s)
        guarded.append(client if s.breaker is None else BreakerService(
            env, client, make_breaker(s.breaker, lambda: env.now), s.fast_fail_s))

    def work(key: int, cls: int):
        """One worker's job: call the tenant's dependency and wait for the answer."""
        return (yield guarded[cls].call(key, cls))

    def work_directly(key: int, _cls: int):
        """The same job when nothing can go wrong with the call (no outage, timeout or
        breaker): the worker is held for the dependency's latency, with fewer events."""
        yield Timeout(env, latency[key])

    direct = s.outage is None and s.timeout_s is None and s.breaker is None

    def pool(servers: int, log: RequestLog) -> ServerPool:
        capacity = None if s.queue_limit is None else servers + s.queue_limit
        return ServerPool(env, servers, work_directly if direct else work, capacity=capacity,
                          log=log)

    worker_log = RequestLog(n + 1)
    if s.isolation == "partitioned":
        route: list[Service] = [pool(share, worker_log) for share in s.shares]
    else:
        shared = pool(s.workers, worker_log)
        route = [shared, shared] if s.isolation == "shared" else [
            BulkheadService(env, shared, Bulkhead(share, lambda: env.now))
            for share in s.shares]

    def arrive(key: int, cls: int):
        """The caller's view: the request's outcome, however it ended."""
        return (yield route[cls].call(key, cls))

    front = ServerPool(env, None, arrive, log=RequestLog(n + 1))
    env.run(until=s.duration_s)
    return Run(s, front.log.table(), worker_log.table())


# ---------------------------------------------------------------- metrics from the records


def busy_workers(run: Run, tenant: int, start_s: float, end_s: float) -> float:
    """Time-average number of workers held by ``tenant``'s requests over [start_s, end_s)."""
    w = run.workers.select(run.workers.cls == check_int("tenant", tenant, 0, 1))
    return time_average(*occupancy(w.start, w.end), start_s, end_s)


def summary(run: Run, tenant: int = HEALTHY, start_s: float | None = None,
            end_s: float | None = None) -> dict[str, float]:
    """Headline numbers for ``tenant``'s requests arriving in [start_s, end_s); by default the
    window in which the noisy tenant misbehaves.

    Latencies count every answer the caller got (a refusal is fast; a request still
    unanswered at the end waited until then); ``rejected_share`` is the share refused at once;
    ``goodput_rps`` the OK answers within the SLO per second.
    """
    s = run.scenario
    if start_s is None or end_s is None:
        start_s, end_s = s.window
    r = run.requests
    part = (r.cls == check_int("tenant", tenant, 0, 1)) & (r.arrival >= start_s) & \
        (r.arrival < end_s)
    waited = np.where(np.isnan(r.latency), s.duration_s - r.arrival, r.latency)[part]
    good = part & r.has(Outcome.OK) & (r.latency <= s.slo_s)
    return {
        "mean_latency_s": float(waited.mean()) if len(waited) else math.nan,
        **latency_percentiles(waited, [50, 99]),
        "rejected_share": float((part & r.has(Outcome.REJECTED)).sum() / max(part.sum(), 1)),
        "failed_share": float((part & r.has(Outcome.TIMEOUT, Outcome.ERROR)).sum()
                              / max(part.sum(), 1)),
        "goodput_rps": float(good.sum() / (end_s - start_s)),
        "busy_workers": busy_workers(run, tenant, start_s, end_s),
    }


def timeline(run: Run, bin_s: float = 1.0) -> dict[str, np.ndarray]:
    """Per-bin metrics for a dashboard, per tenant: p99 latency of the answers given in the
    bin, goodput and refusals per second, and the time-average workers held."""
    r, end_s = run.requests, run.scenario.duration_s
    out: dict[str, np.ndarray] = {}
    for tenant, name in enumerate(TENANTS):
        mine = r.select(r.cls == tenant)
        done = ~np.isnan(mine.end)
        out["time_s"], out[f"{name}_p99_latency_s"] = per_bin(
            mine.end[done], mine.latency[done], bin_s, 0.0, end_s,
            percentile_of(99))
        out[f"{name}_goodput_rps"] = goodput_over_time(mine, bin_s, 0.0, end_s,
                                                       slo_s=run.scenario.slo_s)[1]
        out[f"{name}_rejected_rps"] = rate_over_time(mine.end[mine.has(Outcome.REJECTED)],
                                                     bin_s, 0.0, end_s)[1]
        edges = np.minimum(np.arange(len(out["time_s"]) + 1) * bin_s, end_s)
        w = run.workers.select(run.workers.cls == tenant)
        held = occupancy(w.start, w.end)
        out[f"{name}_busy_workers"] = np.array([time_average(*held, lo, hi)
                                                for lo, hi in pairwise(edges)])
    return out


# ---------------------------------------------------------------- sweeps and plots

METRICS = ("p99_latency_s", "goodput_rps", "rejected_rps", "busy_workers")
LABELS = {
    "p99_latency_s": "p99 latency (s)",
    "latency_p99_s": "p99 latency (s)",
    "latency_p50_s": "median latency (s)",
    "mean_latency_s": "mean latency (s)",
    "goodput_rps": "goodput (req/s)",
    "rejected_rps": "refused (req/s)",
    "rejected_share": "share refused",
    "failed_share": "share timed out or failed",
    "busy_workers": "workers held",
}
SWEEP_METRICS = ("mean_latency_s", "latency_p50_s", "latency_p99_s", "rejected_share",
                 "failed_share", "goodput_rps", "busy_workers")


def sweep(base: Scenario, tenant: int = HEALTHY, replications: int = 1,
          **grid: Sequence[Any]) -> list[dict[str, Any]]:
    """Run ``base`` at every combination of the ``grid`` (Scenario field -> values) with the
    toolkit's ``sweep``, and ``aggregate`` ``tenant``'s `summary` over ``replications`` runs:
    one row per setting with each metric's mean and 95 % half-width (``<metric>_ci``). Every
    setting sees the same traffic (common random numbers)."""
    fields = set(Scenario.__dataclass_fields__) - {"seed"}
    for name in grid:
        check_choice("sweep setting", name, sorted(fields))

    def model(rng: np.random.Generator, **settings: Any) -> dict[str, float]:
        return summary(simulate(replace(base, **settings), rng), tenant)

    rows = sweep_grid(model, grid, seed=base.seed, replications=replications)
    return aggregate(rows, by=list(grid), metrics=SWEEP_METRICS)


def plot_dashboard(runs: dict[str, Run], tenants: Sequence[str] = TENANTS,
                   metrics: Sequence[str] = ("p99_latency_s", "rejected_rps", "busy_workers"),
                   bin_s: float = 1.0) -> list:
    """Small multiples over time (``plots.dashboard``): one panel per metric, one line per run
    and tenant, the noisy tenant's flood or outage shaded. The runs must share their duration."""
    from simulations import plots

    for metric in metrics:
        check_choice("metric", metric, METRICS)
    for tenant in tenants:
        check_choice("tenant", tenant, TENANTS)
    series = {label: timeline(run, bin_s) for label, run in runs.items()}
    first = next(iter(runs.values())).scenario
    kind = f"outage ({first.outage.kind})" if first.outage else f"flood ×{first.flood_factor:g}"
    return plots.dashboard(
        next(iter(series.values()))["time_s"],
        {LABELS[m]: {f"{label}, {t}": values[f"{t}_{m}"] for label, values in series.items()
                     for t in tenants} for m in metrics},
        windows=[first.window], window_label=f"noisy tenant: {kind}",
    )


def plot_sweep(rows: list[dict[str, Any]], x: str, by: str, xlabel: str,
               metrics: Sequence[str] = ("latency_p99_s", "rejected_share"),
               tenant: str = "healthy tenant") -> list:
    """One panel per metric against setting ``x``, one line per value of ``by``
    (``plots.sweep_panels``), with 95 % interval bars when the rows average replications."""
    from simulations import plots

    return plots.sweep_panels(rows, x=x, by=by, metrics=metrics, xlabel=xlabel,
                              ylabels={m: f"{LABELS.get(m, m)}, {tenant}" for m in metrics},
                              group_label=lambda g: f"{by} = {g}")


# ---------------------------------------------------------------- comparing with libraries

OPERATIONS = ("acquire", "release")


def replay(operations: Iterable[str], acquire: Callable[[], bool],
           release: Callable[[], None]) -> list[bool]:
    """Run a sequence of ``"acquire"`` / ``"release"`` against a semaphore-like pair of
    functions and return the admit decision of each acquire. A release is only sent while a
    permit is held, so any correct bulkhead or bounded semaphore accepts the sequence."""
    decisions, held = [], 0
    for operation in operations:
        if check_choice("operation", operation, OPERATIONS) == "acquire":
            admitted = bool(acquire())
            decisions.append(admitted)
            held += admitted
        elif held:
            release()
            held -= 1
    return decisions


def replay_asyncio(operations: Iterable[str], limit: int) -> list[bool]:
    """`replay` against an ``asyncio.Semaphore(limit)`` used as a bulkhead: a call acquires
    only when a permit is free (``await acquire()`` then returns at once) and is refused
    otherwise. Runs in an event loop on a thread of its own, so it also works where a loop is
    already running, as in a notebook."""
    check_int("limit", limit, low=1)
    operations, decisions = list(operations), []

    def run() -> None:
        loop, semaphore = asyncio.new_event_loop(), asyncio.Semaphore(limit)
        try:
            decisions.extend(replay(
                operations,
                lambda: not semaphore.locked() and loop.run_until_complete(semaphore.acquire()),
                semaphore.release))
        finally:
            loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=10)
    if thread.is_alive():
        raise RuntimeError("replay_asyncio: the event loop thread did not finish in 10 s")
    return decisions
