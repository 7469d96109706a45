"""The load-balancing study: mean and p99 response time against utilisation for each policy,
and what stale load information costs.

Picture the supermarket again, now with a stopwatch at every till: shoppers arrive at random,
a balancer sends each one to a till, and each till serves its queue in order with exponential
service times. The loop dispatches one arrival at a time (the pattern's ``pick``), so the
balancer sees exactly what it would in a proxy; the load board it reads can be refreshed only
every ``refresh_s`` seconds, which is how herding appears.

The queues are n FIFO single servers, so each request's departure is max(arrival, the server's
last departure) + service: no event loop needed (``simulations.fastpath`` does the same for one
queue). Queue lengths are sampled just before arrivals: with Poisson arrivals these samples are
time averages (PASTA), the quantity the supermarket model (``simulations.theory``) predicts.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from patterns.checks import check_int, check_non_negative, check_positive, check_range
from patterns.performance.load_balancing import (
    POLICIES,
    Balancer,
    PowerOfChoices,
    RandomBalancer,
)
from simulations import plots, theory
from simulations.experiments import aggregate, sweep
from simulations.metrics import latency_percentiles, per_bin, percentile_of

__all__ = [
    "Run", "Scenario", "make_balancer", "max_load", "over_time", "plot_sweep", "policy_row",
    "queue_tail", "simulate", "summary", "supermarket_tails", "sweep_policies",
]


@dataclass(frozen=True)
class Scenario:
    """n exponential servers at utilisation ``load`` behind one balancer.

    ``policy`` is a name in ``patterns.performance.load_balancing.POLICIES`` (``choices`` is d
    for "two_choices"); ``refresh_s`` = 0 means the balancer reads live queue lengths, T > 0
    that it reads a snapshot taken every T seconds. Time unit: seconds.
    """

    servers: int = 100
    load: float = 0.9
    service_rate: float = 1.0
    policy: str = "two_choices"
    choices: int = 2
    refresh_s: float = 0.0
    requests: int = 40_000
    warmup_fraction: float = 0.2
    sample_every: int = 10
    seed: int = 1

    def __post_init__(self) -> None:
        check_int("Scenario.servers", self.servers, 1)
        check_range("Scenario.load", self.load, 0.0, 1.0, low_open=True, high_open=True)
        check_positive("Scenario.service_rate", self.service_rate)
        if self.policy not in POLICIES:
            raise ValueError(f"Scenario.policy must be one of {', '.join(POLICIES)} "
                             f"(got {self.policy!r})")
        check_int("Scenario.choices", self.choices, 1, self.servers)
        check_non_negative("Scenario.refresh_s", self.refresh_s)
        check_int("Scenario.requests", self.requests, 100)
        check_range("Scenario.warmup_fraction", self.warmup_fraction, 0.0, 1.0, high_open=True)
        check_int("Scenario.sample_every", self.sample_every, 1)


def make_balancer(scenario: Scenario) -> Balancer:
    """The scenario's policy as a pattern object (seeded from the scenario)."""
    cls = POLICIES[scenario.policy]
    if cls is PowerOfChoices:
        return cls(scenario.servers, scenario.choices, seed=scenario.seed)
    return cls(scenario.servers, seed=scenario.seed)


@dataclass
class Run:
    """One run: per request its arrival, response time and server; queue-length samples."""

    scenario: Scenario
    arrival: np.ndarray
    response: np.ndarray
    server: np.ndarray
    samples: np.ndarray = field(repr=False)  # (samples, servers) queue lengths before arrivals


def simulate(scenario: Scenario, rng: np.random.Generator | None = None,
             balancer: Balancer | None = None) -> Run:
    """Dispatch ``scenario.requests`` Poisson arrivals through ``balancer`` (default: the
    scenario's policy). All random numbers are drawn up front from ``rng`` (default: seeded
    from the scenario), so policies compared at one seed see the same traffic."""
    rng = rng if rng is not None else np.random.default_rng(scenario.seed)
    balancer = balancer if balancer is not None else make_balancer(scenario)
    n, total = scenario.servers, scenario.requests
    arrival_rate = scenario.load * scenario.service_rate * n
    arrivals = np.cumsum(rng.exponential(1 / arrival_rate, total)).tolist()
    services = rng.exponential(1 / scenario.service_rate, total).tolist()
    loads, last_departure, departures = [0] * n, [0.0] * n, []
    refresh, next_refresh = scenario.refresh_s, scenario.refresh_s
    seen = loads if refresh == 0 else list(loads)
    done, pick, every = balancer.done, balancer.pick, scenario.sample_every
    departure, server, samples = [0.0] * total, [0] * total, []
    for k, t in enumerate(arrivals):
        while refresh and next_refresh <= t:  # the load board is redrawn at its own instants
            while departures and departures[0][0] <= next_refresh:
                loads[(s := heapq.heappop(departures)[1])] -= 1
                done(s)
            seen, next_refresh = list(loads), next_refresh + refresh
        while departures and departures[0][0] <= t:
            loads[(s := heapq.heappop(departures)[1])] -= 1
            done(s)
        if k % every == 0:
            samples.append(list(loads))
        s = pick(seen)
        finish = max(t, last_departure[s]) + services[k]
        last_departure[s], departure[k], server[k] = finish, finish, s
        loads[s] += 1
        heapq.heappush(departures, (finish, s))
    arrival = np.array(arrivals)
    return Run(scenario, arrival, np.array(departure) - arrival, np.array(server),
               np.array(samples, dtype=np.int32))


def queue_tail(run: Run, longest: int = 10) -> np.ndarray:
    """Fraction of queues holding at least i requests, i = 0 ... ``longest`` (time average over
    the samples after the warm-up; s₀ = 1)."""
    kept = run.samples[int(len(run.samples) * run.scenario.warmup_fraction):]
    counts = np.bincount(kept.ravel(), minlength=longest + 2)
    tail = counts[::-1].cumsum()[::-1] / kept.size
    return tail[: longest + 1]


def summary(run: Run) -> dict[str, float]:
    """Mean, p50 and p99 response time (s) of the requests after the warm-up, the largest
    queue length seen, and the mean number per queue."""
    kept = run.response[int(len(run.response) * run.scenario.warmup_fraction):]
    pct = latency_percentiles(kept, (50, 99))
    samples = run.samples[int(len(run.samples) * run.scenario.warmup_fraction):]
    return {"mean_response_s": float(kept.mean()), "p50_response_s": pct["latency_p50_s"],
            "p99_response_s": pct["latency_p99_s"], "max_queue": int(samples.max()),
            "mean_queue": float(samples.mean())}


def policy_row(rng: np.random.Generator, **settings) -> dict[str, float]:
    """One run's summary, as a model for ``simulations.experiments.sweep``."""
    return summary(simulate(Scenario(**settings), rng))


def sweep_policies(policies: Sequence[str], loads: Sequence[float], *, replications: int = 2,
                   seed: int = 1, **fixed) -> list[dict]:
    """Mean and p99 response per policy and load, averaged over replications with 95 % CIs."""
    rows = sweep(policy_row, {"policy": policies, "load": loads}, seed=seed,
                 replications=replications, fixed=fixed)
    return aggregate(rows, ["policy", "load"], ["mean_response_s", "p99_response_s"])


def plot_sweep(rows: Sequence[dict], x: str = "load", xlabel: str = "utilisation per server"):
    """Mean and p99 response time against ``x``, one line per policy."""
    return plots.sweep_panels(
        rows, x=x, by="policy", metrics=("mean_response_s", "p99_response_s"), xlabel=xlabel,
        ylabels={"mean_response_s": "mean response time (s)",
                 "p99_response_s": "p99 response time (s)"},
        log_y=("mean_response_s", "p99_response_s"))


def max_load(bins: int, choices: int, seed: int = 0) -> int:
    """Balls into bins: ``bins`` balls placed one by one, each in the least loaded of
    ``choices`` random bins (the pattern's own balancers), and the fullest bin's count."""
    check_int("bins", bins, 3)
    balancer = (RandomBalancer(bins, seed) if choices == 1
                else PowerOfChoices(bins, choices, seed))
    counts = [0] * bins
    for _ in range(bins):
        counts[balancer.pick(counts)] += 1
    return max(counts)


def supermarket_tails(load: float, choices: int, longest: int = 10) -> np.ndarray:
    """``theory.supermarket_tail`` for i = 0 ... ``longest``, as an array."""
    return np.array([theory.supermarket_tail(load, i, choices) for i in range(longest + 1)])


def over_time(run: Run, bin_s: float = 10.0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per time bin: p99 response of the requests arriving in it (s), and the longest and the
    mean queue length in the samples taken in it (requests); for a dashboard."""
    end = float(run.arrival[-1])
    times, p99 = per_bin(run.arrival, run.response, bin_s, 0.0, end, percentile_of(99))
    sampled = run.arrival[:: run.scenario.sample_every][: len(run.samples)]
    _, longest = per_bin(sampled, run.samples.max(axis=1), bin_s, 0.0, end, np.max)
    _, mean = per_bin(sampled, run.samples.mean(axis=1), bin_s, 0.0, end, np.mean)
    return times, {"p99_response_s": p99, "longest_queue": longest, "mean_queue": mean}
