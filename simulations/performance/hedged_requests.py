"""The hedged-requests study: tail latency against extra load, as the hedge delay and the load vary.

Picture the two post-office counters again, now with a stopwatch and a tally of how often the
friend was sent. On a quiet day the friend rarely goes and cuts the worst waits; on a busy day
every friend sent lengthens the other queue, and past some crowd the trick makes things worse.

Two models, both built from the toolkit:

- ``independent``: replicas with no queueing, every copy's time drawn independently (the
  closed form ``simulations.theory.hedged_survival`` holds exactly); numpy only, so a slider
  can redraw it at once. ``fanout`` groups those reads into requests that wait for N of them.
- ``simulate``: ``replicas`` single-server ``ServerPool`` queues fed by a Poisson
  ``RequestSource``; each request goes to a random replica, its backup to another, and with
  ``cancel`` the loser stops as soon as the winner answers. The copies' extra work lengthens
  everyone's queue, which the no-queueing model leaves out.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from patterns.checks import check_choice, check_int, check_range
from patterns.performance.hedged_requests import AdaptiveHedger, HedgeConfig, HedgedRequests
from simulations import plots
from simulations.clients import RequestSource
from simulations.distributions import Distribution, LogNormal, Pareto, survival
from simulations.metrics import latency_percentiles
from simulations.records import Outcome
from simulations.servers import ServerPool
from simulations.theory import hedged_percentile, hedged_survival
from simulations.workloads import PoissonArrivals, TimeVaryingArrivals

__all__ = [
    "BIGTABLE_LIKE",
    "HedgedRequests",
    "Scenario",
    "fanout",
    "independent",
    "plot_delay_tradeoff",
    "plot_load_crossover",
    "simulate",
    "summary",
    "survival_theory",
    "theory_curve",
]

# Leaf reads with a heavy tail: P(T > 10 ms) = 2 % and P(T > 1.8 s) ≈ 1e-6 (a Pareto, shape 1.91),
# so a request for 1,000 of them has a p99.9 of about 1.8 s unhedged, as in Dean & Barroso.
BIGTABLE_LIKE = Pareto(0.00271, shape=1.91)


def independent(service: Distribution, delay_s: float, size: int,
                rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``size`` hedged reads on idle replicas: per read the latency, whether a backup was sent,
    and the work (server-seconds) with the loser cancelled and without."""
    delay = check_range("delay_s", delay_s, 0.0, allow_inf=True)
    check_int("size", size, 1)
    first, second = service.sample(rng, size), service.sample(rng, size)
    hedged = first > delay
    latency = np.where(hedged, np.minimum(first, delay + second), first)
    cancelled = latency + np.where(hedged, latency - delay, 0.0)
    kept = first + np.where(hedged, second, 0.0)
    return {"latency": latency, "hedged": hedged, "work_cancel": cancelled, "work_keep": kept}


def fanout(service: Distribution, delay_s: float, keys: int, requests: int,
           rng: np.random.Generator) -> np.ndarray:
    """Latencies of ``requests`` requests, each waiting for ``keys`` independent hedged reads."""
    reads = independent(service, delay_s, check_int("keys", keys, 1) * requests, rng)
    return reads["latency"].reshape(requests, keys).max(axis=1)


def theory_curve(service: Distribution, delays: np.ndarray, quantile: float,
                 fanout_n: int = 1) -> np.ndarray:
    """The closed-form ``quantile`` of the (fanned-out) hedged latency at each delay."""
    tail = functools.partial(survival, service)
    return np.array([hedged_percentile(tail, quantile, d, fanout_n, scale=service.mean)
                     for d in delays])


@dataclass(frozen=True)
class Scenario:
    """``replicas`` single-server replicas, each loaded to ``load`` by the original requests;
    hedge after ``delay_s`` (inf: never), cancelling the loser when ``cancel``. ``adaptive``
    replaces the fixed delay by an ``AdaptiveHedger`` (running percentile and budget).
    ``backup`` picks the backup's replica: ``"random"`` (another one at random) or
    ``"shorter"`` (the less busy of two others, as the load-balancing lesson's two choices).
    ``surge``: the load rises to its third value between its first two (seconds).
    """

    replicas: int = 10
    load: float = 0.3
    service: Distribution = LogNormal(0.01, 4.0)
    delay_s: float = math.inf
    cancel: bool = True
    adaptive: HedgeConfig | None = None
    backup: str = "random"
    surge: tuple[float, float, float] | None = None  # (start_s, end_s, load during it)
    requests: int = 20_000
    seed: int = 1

    def __post_init__(self) -> None:
        check_int("replicas", self.replicas, 2)
        check_range("load", self.load, 0.0, 1.0, low_open=True, high_open=True)
        check_range("delay_s", self.delay_s, 0.0, allow_inf=True)
        check_int("requests", self.requests, 100)
        check_choice("backup", self.backup, ("random", "shorter"))
        if self.surge is not None:
            check_range("surge load", self.surge[2], 0.0, 1.0, low_open=True, high_open=True)
        if self.backup == "shorter":
            check_int("replicas", self.replicas, 3)

    @property
    def arrival_rate(self) -> float:
        """Requests per second in all: load × replicas / mean service time."""
        return self.load * self.replicas / self.service.mean

    def arrivals(self) -> PoissonArrivals | TimeVaryingArrivals:
        if self.surge is None:
            return PoissonArrivals(self.arrival_rate)
        start, end, load = self.surge
        peak = load * self.replicas / self.service.mean
        rate = self.arrival_rate
        return TimeVaryingArrivals(
            lambda t: np.where((np.asarray(t) >= start) & (np.asarray(t) < end), peak, rate),
            max(peak, rate))


@dataclass
class Run:
    """One simulation: per request its arrival, latency and whether it was hedged."""

    scenario: Scenario
    arrival: np.ndarray
    latency: np.ndarray
    hedged: np.ndarray
    busy_s: float  # server-seconds of work done, copies included
    horizon_s: float
    policy: HedgedRequests  # the hedger the run used (its metrics, for an AdaptiveHedger)


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """Run the replicas with hedging; every random number comes from one seeded generator."""
    s = scenario
    rng = rng if rng is not None else np.random.default_rng(s.seed)
    env = simpy.Environment()
    n = s.requests
    times = s.service.sample(rng, 2 * n).tolist()  # copy 2i is request i's first, 2i + 1 its backup
    first = rng.integers(0, s.replicas, n)
    other = (first + rng.integers(1, s.replicas, n)) % s.replicas
    spare = (other + rng.integers(1, s.replicas - 1, n)) % s.replicas  # a third replica...
    spare = np.where(spare == first, (spare + 1) % s.replicas, spare)  # ...never the first
    answered = [env.event() for _ in range(n)]
    latency, hedged = np.full(n, np.nan), np.zeros(n, dtype=bool)
    policy = (HedgedRequests(s.delay_s, cancel_loser=s.cancel, clock=lambda: env.now)
              if s.adaptive is None else AdaptiveHedger("study", s.adaptive, lambda: env.now))

    def work(key: int, cls: int):
        done = answered[key // 2]
        if s.cancel and done.triggered:  # the other copy answered while this one queued
            return Outcome.OK
        yield env.timeout(times[key]) | done if s.cancel else env.timeout(times[key])
        return Outcome.OK

    pools = [ServerPool(env, 1, work) for _ in range(s.replicas)]

    def request(i: int):
        sent = env.now
        reply = pools[first[i]].call(2 * i)
        delay = policy.hedge_delay()
        if math.isfinite(delay):
            yield reply | env.timeout(delay)
        if reply.triggered:
            pass
        elif math.isfinite(delay) and policy.admit_hedge():
            hedged[i] = True
            target = pools[other[i]]
            if s.backup == "shorter" and pools[spare[i]].in_system < target.in_system:
                target = pools[spare[i]]
            yield reply | target.call(2 * i + 1)
        else:
            yield reply
        latency[i] = env.now - sent
        answered[i].succeed()
        policy.record(latency[i], backup_won=not reply.triggered)

    count = iter(range(n))
    source = RequestSource(env, s.arrivals(), lambda key, cls: env.process(
        request(next(count))), rng, n=n)
    env.run()
    tables = [pool.log.table() for pool in pools]
    busy = float(sum(np.nansum(t.end - t.start) for t in tables))
    return Run(s, source.times, latency, hedged, busy, env.now, policy)


def summary(run: Run, warmup: float = 0.1) -> dict[str, float]:
    """p50/p99/p99.9 latency (s), hedged share, and utilisation per replica (copies included),
    after dropping the first ``warmup`` share of requests."""
    keep = slice(int(warmup * len(run.latency)), None)
    numbers: dict[str, Any] = latency_percentiles(run.latency[keep], (50, 99, 99.9))
    numbers["hedged_share"] = float(run.hedged[keep].mean())
    numbers["utilisation"] = run.busy_s / (run.horizon_s * run.scenario.replicas)
    return numbers


def plot_delay_tradeoff(service: Distribution, delays: np.ndarray, size: int, seed: int = 1,
                        ax=None):
    """p99 and p99.9 against the extra requests, one point per hedge delay: simulation
    (no queueing) as markers, the closed form as lines."""
    ax = plots.new_axes(ax, figsize=(6.4, 3.8))
    extra, measured = [], {99: [], 99.9: []}
    for d in delays:
        reads = independent(service, d, size, np.random.default_rng(seed))
        extra.append(100 * reads["hedged"].mean())
        for q in measured:
            measured[q].append(1000 * np.percentile(reads["latency"], q))
    theory_extra = [100 * survival(service, d) for d in delays]
    for q, color in zip(measured, plots.COLORS, strict=False):
        ax.plot(theory_extra, 1000 * theory_curve(service, delays, q / 100),
                **{**plots.THEORY, "color": color})
        ax.plot(extra, measured[q], "o", color=color, label=f"p{q:g}: simulation (line: theory)")
    plots.log_scale(ax, "y")
    ax.set_xlabel("extra requests sent (% of requests)")
    ax.set_ylabel("latency (ms)")
    ax.legend(fontsize="small")
    return ax


def plot_load_crossover(rows: list[dict[str, Any]], metric: str = "latency_p99_s", ax=None):
    """``metric`` (s) against per-replica load, one line per hedge setting (``label`` column)."""
    ax = plots.new_axes(ax, figsize=(6.4, 3.8))
    for label in dict.fromkeys(row["label"] for row in rows):
        mine = [row for row in rows if row["label"] == label]
        ax.plot([r["load"] for r in mine], [1000 * r[metric] for r in mine], "o-", label=label)
    plots.log_scale(ax, "y")
    ax.set_xlabel("load per replica without hedging (utilisation)")
    ax.set_ylabel(f"{metric.split('_')[1]} latency (ms)")
    ax.legend(fontsize="small")
    return ax


def survival_theory(service: Distribution, t: float, delay_s: float) -> float:
    """P(L > t) on idle replicas (see ``simulations.theory.hedged_survival``)."""
    return hedged_survival(functools.partial(survival, service), t, delay_s)
