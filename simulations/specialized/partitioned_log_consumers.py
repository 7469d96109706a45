"""The partitioned-log study: consumer lag against partitions, consumers, skew and rebalances.

Picture the sorting office of the pattern's module with a stopwatch: letters arrive at random
(Poisson, rate λ), ride the belt of their street (partition p, with share sₚ of the letters),
and each belt's one clerk handles its letters in arrival order, an exponential time of mean
1/μ each. The letters waiting on the belts are the *consumer lag*. A clerk with k belts is one
M/M/1 queue fed by the sum of their shares, so the busiest clerk sets the group's ceiling, and
a hot street caps it whatever the number of clerks. When a clerk falls ill, the belts stop until
the session timeout notices and the rebalance hands them on; an *eager* rebalance also stops
every other clerk for its duration, a *cooperative* one only the belts that move.

The queues come from the toolkit's fast path (``fastpath.fifo_ends``, one FIFO server per
consumer); lag over time is ``metrics.occupancy``; closed forms from ``simulations.theory``.
The protocol side (at-least-once delivery, idempotent consumers) is in
``simulations.specialized.partitioned_log_lab``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from patterns.checks import check_choice, check_int, check_non_negative, check_positive, check_range
from patterns.specialized.partitioned_log_consumers import range_assign
from simulations.experiments import sweep_scenario
from simulations.fastpath import fifo_ends
from simulations.metrics import latency_percentiles, occupancy, time_average
from simulations.theory import littles_law, mm1_mean_response, mmc_mean_response
from simulations.workloads import PoissonArrivals

PROTOCOLS = ("eager", "cooperative")

# ---------------------------------------------------------------- theory


def partition_shares(partitions: int, hot_share: float | None = None) -> np.ndarray:
    """Each partition's share of the records: even, or partition 0 takes ``hot_share`` and the
    others split the rest evenly."""
    p = check_int("partitions", partitions, 1)
    if hot_share is None:
        return np.full(p, 1.0 / p)
    hot = check_range("hot_share", hot_share, 0.0, 1.0, low_open=True)
    if p == 1:
        return np.ones(1)
    return np.array([hot] + [(1.0 - hot) / (p - 1)] * (p - 1))


def consumer_shares(shares: Sequence[float], consumers: int) -> np.ndarray:
    """The share of the records each consumer gets under Kafka's range assignment; consumers
    beyond the partition count get none."""
    names = [f"c{i}" for i in range(check_int("consumers", consumers, 1))]
    owned = range_assign(len(shares), names)
    return np.array([sum(shares[p] for p in owned[name]) for name in names])


def max_throughput(service_rate: float, shares: Sequence[float], consumers: int) -> float:
    """The group's ceiling: records/s at which its busiest consumer saturates, μ / max share.
    With even shares it is min(C, P)·μ when C divides P or C ≥ P; a hot partition of share h
    caps it at μ / h however many consumers there are."""
    return check_positive("service_rate", service_rate) / float(
        np.max(consumer_shares(shares, consumers)))


def mean_lag(arrival_rate: float, service_rate: float, shares: Sequence[float],
             consumers: int) -> float:
    """Mean records in the log not yet processed (waiting or in service), in steady state.

    Assumes Poisson arrivals, exponential processing at rate μ per consumer and a static
    assignment: consumer j is an M/M/1 queue at λ·(its share), so L = Σ ρⱼ/(1 − ρⱼ)
    (Little's law on the M/M/1 response time). Infinite if any consumer is overloaded.
    """
    total = 0.0
    for share in consumer_shares(shares, consumers):
        if share == 0:
            continue
        rate = arrival_rate * share
        if rate >= service_rate:
            return math.inf
        total += littles_law(arrival_rate=rate, mean_time=mm1_mean_response(rate, service_rate))
    return total


def pooled_mean_lag(arrival_rate: float, service_rate: float, partitions: int,
                    consumers: int) -> float:
    """The M/M/c lag with c = min(C, P) servers sharing one queue: what the group would reach if
    any idle consumer could take any record. A partitioned group is c separate queues, so its
    lag (`mean_lag`) is at least this: partitioning costs the pooling."""
    servers = min(check_int("partitions", partitions, 1), check_int("consumers", consumers, 1))
    return littles_law(arrival_rate=arrival_rate,
                       mean_time=mmc_mean_response(arrival_rate, service_rate, servers))


def expected_duplicates(arrival_rate: float, share: float, crash_s: float,
                        commit_interval_s: float) -> float:
    """Records a crashed consumer processed after its last commit: they are delivered again.

    With commits every I seconds (from t = 0) and a consumer that keeps up, it finishes records
    at its arrival rate λ·share, so E[duplicates] = λ·share·(crash_s mod I).
    """
    check_non_negative("crash_s", crash_s)
    window = crash_s - math.floor(crash_s / check_positive("commit_interval_s",
                                                           commit_interval_s)) * commit_interval_s
    return arrival_rate * share * window


def catch_up_s(backlog: float, service_rate: float, arrival_rate: float) -> float:
    """Fluid model: time for one consumer to work off ``backlog`` records while new ones keep
    arriving at ``arrival_rate``: backlog / (μ − λ); infinite if μ ≤ λ."""
    spare = check_positive("service_rate", service_rate) - arrival_rate
    return math.inf if spare <= 0 else check_non_negative("backlog", backlog) / spare


# ---------------------------------------------------------------- the study


@dataclass(frozen=True)
class Scenario:
    """One run of the sorting office. Without ``crash_s`` the group is static; with it,
    consumer ``crash_consumer`` dies then and the group rebalances ``session_timeout_s`` later,
    which takes ``rebalance_s``."""

    arrival_rate: float = 200.0  # records/s produced (Poisson)
    partitions: int = 8
    consumers: int = 4
    service_rate: float = 100.0  # records/s one consumer processes (exponential)
    hot_share: float | None = None  # share of partition 0; None: even
    duration_s: float = 60.0
    crash_s: float | None = None
    crash_consumer: int = 0
    session_timeout_s: float = 10.0
    rebalance_s: float = 3.0
    protocol: str = "eager"
    commit_interval_s: float = 5.0
    seed: int = 1

    def __post_init__(self) -> None:
        check_positive("arrival_rate", self.arrival_rate)
        check_int("partitions", self.partitions, 1)
        check_int("consumers", self.consumers, 1)
        check_positive("service_rate", self.service_rate)
        partition_shares(self.partitions, self.hot_share)
        check_positive("duration_s", self.duration_s)
        if self.crash_s is not None:
            check_range("crash_s", self.crash_s, 0.0, self.duration_s)
            check_int("crash_consumer", self.crash_consumer, 0, self.consumers - 1)
            if self.consumers < 2:
                raise ValueError("a crash needs consumers >= 2, so that a survivor takes over "
                                 f"(got consumers={self.consumers})")
        check_positive("session_timeout_s", self.session_timeout_s)
        check_non_negative("rebalance_s", self.rebalance_s)
        check_choice("protocol", self.protocol, PROTOCOLS)
        check_positive("commit_interval_s", self.commit_interval_s)

    @property
    def shares(self) -> np.ndarray:
        return partition_shares(self.partitions, self.hot_share)

    @property
    def resume_s(self) -> float:
        """When the dead consumer's partitions are read again."""
        return math.inf if self.crash_s is None else (
            self.crash_s + self.session_timeout_s + self.rebalance_s)


@dataclass(frozen=True, eq=False)
class Run:
    """Per record: when it was produced, its partition, when it was finally processed and by
    which consumer; and how many were processed twice."""

    scenario: Scenario
    arrival: np.ndarray
    partition: np.ndarray
    end: np.ndarray
    consumer: np.ndarray
    duplicates: int
    heirs: dict[int, int]  # after a crash: partition -> the consumer that took it over


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """Draw the records up front (arrival, partition, processing time), then run each
    consumer as one FIFO server over its partitions' records.

    A crash at t₀ stops the dead consumer: what it finished after its last commit is done again,
    and its partitions wait until t₀ + session timeout + rebalance time, then go to the
    survivors, least loaded first. An eager rebalance also stops every survivor for the
    rebalance time (after the record in hand); a cooperative one does not.
    """
    s = scenario
    rng = np.random.default_rng(s.seed) if rng is None else rng
    arrival = PoissonArrivals(s.arrival_rate).times(rng, horizon=s.duration_s)
    n = len(arrival)
    partition = rng.choice(s.partitions, n, p=s.shares)
    work = rng.exponential(1.0 / s.service_rate, n)
    names = [f"c{i}" for i in range(s.consumers)]
    owner_of = np.empty(s.partitions, dtype=int)
    for i, name in enumerate(names):
        owner_of[range_assign(s.partitions, names)[name]] = i
    consumer = owner_of[partition]
    end = np.empty(n)
    for i in range(s.consumers):
        mine = consumer == i
        end[mine] = fifo_ends(arrival[mine], work[mine])
    if s.crash_s is None:
        return Run(s, arrival, partition, end, consumer, 0, {})

    dead = s.crash_consumer
    last_commit = math.floor(s.crash_s / s.commit_interval_s) * s.commit_interval_s
    detect = s.crash_s + s.session_timeout_s
    redo = (consumer == dead) & (end > last_commit)
    duplicates = int(np.sum(redo & (end <= s.crash_s)))
    load = np.bincount(consumer, minlength=s.consumers).astype(float)
    load[dead] = math.inf
    heirs = {}
    for p in np.flatnonzero(owner_of == dead):  # hand each partition to the least loaded
        heir = heirs[int(p)] = int(np.argmin(load))
        load[heir] += np.sum(partition == p)
        consumer[redo & (partition == p)] = heir
    for i in range(s.consumers):
        if i == dead:
            continue
        mine = np.flatnonzero(consumer == i)
        ready = np.where(redo[mine], np.maximum(arrival[mine], s.resume_s), arrival[mine])
        jobs_at, jobs_work = ready, work[mine]
        if s.protocol == "eager":  # the stop-the-world pause, as one job of rebalance_s
            jobs_at, jobs_work = np.append(ready, detect), np.append(jobs_work, s.rebalance_s)
        order = np.argsort(jobs_at, kind="stable")
        done = np.empty(len(jobs_at))
        done[order] = fifo_ends(jobs_at[order], jobs_work[order])
        end[mine] = done[:len(mine)]
    return Run(s, arrival, partition, end, consumer, duplicates, heirs)


def lag_between(run: Run, start_s: float, end_s: float, consumer: int | None = None) -> float:
    """Time-average records produced but not yet processed over [start_s, end_s), for the
    group or one consumer (exact: a record counts from its arrival to its final processing)."""
    mine = slice(None) if consumer is None else run.consumer == consumer
    return time_average(*occupancy(run.arrival[mine], run.end[mine]), start_s, end_s)


def drained_s(run: Run, consumer: int, after_s: float) -> float:
    """The first moment after ``after_s`` at which ``consumer`` has no record left to process
    (its backlog worked off), or NaN if that never happens within the run."""
    mine = run.consumer == consumer
    times, counts = occupancy(run.arrival[mine], run.end[mine])
    empty = np.flatnonzero((times >= after_s) & (counts == 0))
    return float(times[empty[0]]) if len(empty) else math.nan


def summary(run: Run, start_s: float = 5.0, end_s: float | None = None) -> dict[str, float]:
    """Headline numbers over [start_s, end_s) (the first 5 s are the queues filling up): mean
    and peak lag in records, throughput (records processed per second), the p99 time from
    produce to processed, and the records processed twice."""
    s = run.scenario
    end_s = s.duration_s if end_s is None else end_s
    times, counts = occupancy(run.arrival, run.end)
    inside = (times >= start_s) & (times < end_s)
    arrived = (run.arrival >= start_s) & (run.arrival < end_s)
    delay = np.where(run.end <= s.duration_s, run.end, s.duration_s) - run.arrival
    return {
        "mean_lag": time_average(times, counts, start_s, end_s),
        "max_lag": float(counts[inside].max()) if inside.any() else 0.0,
        "throughput_rps": float(np.sum((run.end >= start_s) & (run.end < end_s)))
        / (end_s - start_s),
        "p99_delay_s": latency_percentiles(delay[arrived], [99])["latency_p99_s"],
        "duplicates": float(run.duplicates),
    }


def lag_over_time(run: Run, bin_s: float = 0.5) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Each consumer's time-average lag per bin (the dashboard's curves)."""
    edges = np.arange(0.0, run.scenario.duration_s + 1e-9, bin_s)
    series = {}
    for i in range(run.scenario.consumers):
        held = occupancy(run.arrival[run.consumer == i], run.end[run.consumer == i])
        series[f"c{i}"] = np.array([time_average(*held, lo, hi)
                                    for lo, hi in zip(edges[:-1], edges[1:], strict=True)])
    return (edges[:-1] + edges[1:]) / 2, series


SETTINGS = ("arrival_rate", "partitions", "consumers", "service_rate", "hot_share",
            "session_timeout_s", "rebalance_s", "protocol", "commit_interval_s")
METRICS = ("mean_lag", "max_lag", "throughput_rps", "p99_delay_s", "duplicates")
LABELS = {"mean_lag": "mean lag (records)", "max_lag": "peak lag (records)",
          "throughput_rps": "throughput (records/s)", "p99_delay_s": "p99 produce-to-done (s)",
          "duplicates": "records processed twice"}


def sweep(base: Scenario, replications: int = 1, **grid: Sequence[Any]) -> list[dict[str, Any]]:
    """`summary` at every combination of the Scenario settings in ``grid``, averaged over
    ``replications`` with 95 % intervals (``<metric>_ci``); common random numbers."""
    return sweep_scenario(simulate, summary, base, grid, settings=SETTINGS, metrics=METRICS,
                          replications=replications)


def plot_rebalance(runs: dict[str, Run], bin_s: float = 0.5) -> list:
    """One dashboard panel per run: each consumer's lag over time, the stall shaded from the
    crash to the end of the rebalance."""
    from simulations import plots

    first = next(iter(runs.values())).scenario
    panels, times = {}, None
    for label, run in runs.items():
        times, series = lag_over_time(run, bin_s)
        panels[f"lag (records), {label}"] = series
    return plots.dashboard(times, panels, windows=[(first.crash_s, first.resume_s)],
                           window_label="consumer dead, then rebalancing")


def plot_lag(run: Run, bin_s: float = 1.0) -> Any:
    """One run's lag per consumer over time on a single axes (light enough for a slider), the
    stall shaded from the crash to the end of the rebalance."""
    from simulations import plots

    times, series = lag_over_time(run, bin_s)
    s = run.scenario
    windows = [] if s.crash_s is None else [(s.crash_s, min(s.resume_s, s.duration_s))]
    return plots.time_series(times, series, ylabel="lag (records)", windows=windows,
                             window_label="consumer dead, then rebalancing",
                             ax=plots.new_axes(figsize=(6.4, 3.2)))


def plot_sweep(rows: list[dict[str, Any]], x: str, by: str | None,
               metrics: Sequence[str] = ("mean_lag", "throughput_rps")) -> list:
    """One panel per metric against setting ``x``, a line per value of ``by``."""
    from simulations import plots

    return plots.sweep_panels(rows, x=x, by=by, metrics=metrics, xlabel=x.replace("_", " "),
                              ylabels=LABELS, group_label=lambda g: f"{by} = {g}",
                              log_y=("mean_lag",))


__all__ = [
    "PROTOCOLS", "Run", "Scenario", "catch_up_s", "consumer_shares", "drained_s",
    "expected_duplicates",
    "lag_between", "lag_over_time", "max_throughput", "mean_lag", "partition_shares",
    "plot_lag", "plot_rebalance", "plot_sweep", "pooled_mean_lag", "simulate", "summary", "sweep",
]
