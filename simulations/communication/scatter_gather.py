"""The scatter-gather study: end-to-end latency and coverage against fan-out N, k and the deadline.

Picture the quiz master again, now with a stopwatch: the more teams are asked, the longer the wait
for the last one, and the earlier the bell, the fewer answers are read out.

Every request goes to all ``shards``. A shard's response time is its service time on an idle
shard (``load`` 0), or its time through a single-server FIFO queue fed by the requests' Poisson
arrivals (the toolkit's fast path, ``simulations.fastpath.fifo_queue``, which gives the same rows
as a SimPy ``ServerPool``). A shard may be hedged (the hedged-requests lesson's rule, idle shards
only) and one shard may be slowed down for a window. The gather answers at
min(k-th fastest shard, deadline) with the coverage it has by then. All random numbers come from
one seeded generator, drawn up front, so settings that differ in k or the deadline see the same
shard times (common random numbers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from patterns.checks import check_int, check_positive, check_range
from patterns.communication.scatter_gather import ScatterGather
from simulations import plots
from simulations.distributions import Distribution, Exponential
from simulations.fastpath import fifo_queue
from simulations.metrics import latency_percentiles
from simulations.workloads import PoissonArrivals

__all__ = ["Run", "ScatterGather", "Scenario", "expected_coverage", "gather_outcome", "model",
           "plot_fanout", "run", "summary"]


@dataclass(frozen=True)
class Scenario:
    """``shards`` shards, each request needing ``k`` answers (None: all) by ``deadline_s``.

    ``service``: one shard's service time (s). ``load``: each shard's utilisation (0: idle
    shards, no queueing). ``hedge_delay_s``: send a shard's backup copy after this delay (idle
    shards only). ``slow``: (start_s, end_s, factor) — shard 0 is ``factor`` times slower for
    requests arriving in that window.
    """

    shards: int = 20
    k: int | None = None
    deadline_s: float = math.inf
    service: Distribution = Exponential(0.010)
    load: float = 0.0
    hedge_delay_s: float = math.inf
    slow: tuple[float, float, float] | None = None
    requests: int = 4000
    seed: int = 1

    def __post_init__(self) -> None:
        check_int("shards", self.shards, 1)
        if self.k is not None:
            check_int("k", self.k, 1, self.shards)
        check_positive("deadline_s", self.deadline_s, allow_inf=True)
        check_range("load", self.load, 0.0, 1.0, high_open=True)
        check_range("hedge_delay_s", self.hedge_delay_s, 0.0, allow_inf=True)
        if self.load > 0 and math.isfinite(self.hedge_delay_s):
            raise ValueError("hedge_delay_s needs idle shards (load 0)")
        check_int("requests", self.requests, 1)

    @property
    def needed(self) -> int:
        return ScatterGather(self.k).needed(self.shards)


@dataclass
class Run:
    """Per request: arrival (s), latency (s), coverage; per shard call its response time (s)."""

    scenario: Scenario
    arrival: np.ndarray
    latency: np.ndarray
    coverage: np.ndarray
    times: np.ndarray  # requests x shards


def gather_outcome(times: np.ndarray, k: int, deadline_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Each row's answer time min(k-th smallest, deadline) and the share of shards done by then."""
    times = np.atleast_2d(times)
    kth = np.partition(times, k - 1, axis=1)[:, k - 1]
    answer = np.minimum(kth, deadline_s)
    return answer, (times <= answer[:, None]).mean(axis=1)


def shard_times(s: Scenario, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Arrival times and the (requests x shards) response times of the shard calls."""
    n, m = s.requests, s.shards
    rate = s.load / s.service.mean if s.load > 0 else 1.0 / s.service.mean
    arrival = PoissonArrivals(rate).times(rng, n=n)
    service = np.asarray(s.service.sample(rng, n * m)).reshape(n, m)
    backup = np.asarray(s.service.sample(rng, n * m)).reshape(n, m)
    if s.slow is not None:
        start, end, factor = s.slow
        service[:, 0] *= np.where((arrival >= start) & (arrival < end), factor, 1.0)
    if s.load == 0:
        d = s.hedge_delay_s
        times = np.where(service > d, np.minimum(service, d + backup), service)
    else:
        times = np.column_stack([fifo_queue(arrival, service[:, j]).latency for j in range(m)])
    return arrival, times


def run(s: Scenario, rng: np.random.Generator | None = None) -> Run:
    """One run of the scenario (seeded by ``s.seed`` unless a generator is given)."""
    rng = rng if rng is not None else np.random.default_rng(s.seed)
    arrival, times = shard_times(s, rng)
    latency, coverage = gather_outcome(times, s.needed, s.deadline_s)
    return Run(s, arrival, latency, coverage, times)


def summary(r: Run) -> dict[str, float]:
    """p50/p99 latency (s), mean coverage, the share of complete answers, and the extra shard
    calls a hedge sent (share of calls)."""
    numbers = latency_percentiles(r.latency, (50, 99))
    numbers["mean_latency_s"] = float(r.latency.mean())
    numbers["coverage"] = float(r.coverage.mean())
    numbers["complete_share"] = float((r.coverage == 1.0).mean())
    return numbers


def model(rng: np.random.Generator, **params) -> dict[str, float]:
    """For ``simulations.experiments.sweep``: ``summary(run(Scenario(**params), rng))``."""
    return summary(run(Scenario(**params), rng))


def expected_coverage(shards: int, k: int, done_by_deadline: float) -> float:
    """E[coverage] = E[min(X, k)] / N with X ~ Binomial(N, F(deadline)): the gather stops at
    the k-th answer if it comes before the deadline, else it has the X answers in by then
    (independent shards, continuous times)."""
    p = done_by_deadline
    return sum(min(j, k) * math.comb(shards, j) * p**j * (1 - p) ** (shards - j)
               for j in range(shards + 1)) / shards


def plot_fanout(rows: list[dict], metric: str = "latency_p99_s", ax=None):
    """``metric`` against fan-out N (latencies in ms, coverage in %), one line per ``label``,
    with 95 % interval bars."""
    ax = plots.new_axes(ax, figsize=(6.4, 3.8))
    latency = metric.startswith("latency")
    scale = 1000 if latency else 100
    for label in dict.fromkeys(row["label"] for row in rows):
        mine = [row for row in rows if row["label"] == label]
        bars = [scale * abs(np.nan_to_num(r.get(metric + "_ci", 0.0))) for r in mine]
        ax.errorbar([r["shards"] for r in mine], [scale * r[metric] for r in mine], yerr=bars,
                    fmt="o-", capsize=3, label=label)
    plots.log_scale(ax, "x")
    ax.set_xlabel("fan-out N (shards per request)")
    unit = f"{metric.split('_')[1]} latency (ms)" if latency else f"mean {metric} (%)"
    ax.set_ylabel(unit)
    ax.legend(fontsize="small")
    return ax
