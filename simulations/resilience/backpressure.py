"""Bounded queues and backpressure: what happens when the producer is faster than the consumer.

Picture a baker who puts trays on a belt and a packer who takes them off. The belt holds
``capacity`` trays. When it is full the baker can throw the next tray away (*drop*: a bounded
queue that rejects), stop and wait until the packer frees a place (*block*: backpressure, the
full belt slows the baker down), or stack trays on the floor beside the belt (*unbounded*: nothing
is lost, but the stack, and the wait of the tray at its bottom, grows for as long as the baker is
faster).

This module is the lesson's study (the pattern itself is ``patterns.resilience.backpressure``):

* theory beside :mod:`simulations.theory`'s M/M/1/K functions: the blocking producer's rate (a
  buffer of K plus the item in the producer's hand is an M/M/1/(K+1) queue), the backlog of an
  unbounded queue under overload, and the buffer that fits a latency budget;
* the SimPy study (``Scenario``, ``simulate``, ``summary``, ``timeline``, ``capacity_sweep``),
  built from the toolkit: the consumer is a ``ServerPool`` (``capacity=K`` for *drop*), the
  producer's items are rows of a ``RequestLog``, the block policy hands out K credits, and a
  rejected item may be retried with jittered exponential backoff.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy
from simpy.events import Event

from patterns.checks import check_choice, check_int, check_non_negative, check_positive
from simulations.distributions import Exponential
from simulations.experiments import aggregate, sweep
from simulations.metrics import (
    latency_over_time,
    number_in_system_over_time,
    rate_over_time,
    summarize,
)
from simulations.records import Outcome, RequestLog, RequestTable
from simulations.servers import ServerPool
from simulations.theory import mm1k_blocking
from simulations.workloads import ArrivalProcess, PoissonArrivals, TimeVaryingArrivals

__all__ = [
    "POLICIES", "PRODUCERS", "Run", "Scenario", "blocking_producer_rate",
    "capacity_for_latency", "capacity_sweep", "items_held_over_time", "overload_backlog",
    "plot_dashboard", "simulate", "summary", "timeline"
]

POLICIES = ("drop", "block", "unbounded")
PRODUCERS = ("paced", "open")

# ---------------------------------------------------------------- theory


def blocking_producer_rate(arrival_rate: float, service_rate: float, capacity: int) -> float:
    """Items per second a *blocking* producer gets through a buffer of ``capacity`` (M/M/1).

    The producer makes an item after an Exp(λ) pause and waits, item in hand, while the buffer
    is full. Count the item in hand as one more place: births at λ in states 0..K, deaths at μ,
    i.e. M/M/1/(K+1). Its rate is λ(1 − P_block(K+1)); nothing is lost, the producer is slowed.
    """
    return arrival_rate * (1.0 - mm1k_blocking(arrival_rate, service_rate, capacity + 1))


def overload_backlog(arrival_rate: float, service_rate: float, elapsed_s: float) -> float:
    """Expected growth of an unbounded queue after ``elapsed_s`` of overload: (λ − μ)·t.

    While the server never idles, arrivals minus departures is Poisson(λt) − Poisson(μt): mean
    (λ − μ)t, standard deviation √((λ + μ)t). Zero when λ ≤ μ (the queue does not grow).
    """
    check_positive("arrival_rate", arrival_rate)
    check_positive("service_rate", service_rate)
    check_non_negative("elapsed_s", elapsed_s)
    return max(arrival_rate - service_rate, 0.0) * elapsed_s


def capacity_for_latency(service_rate: float, latency_budget_s: float) -> int:
    """The largest K whose worst admitted item, K services at 1/μ each, fits the budget: ⌊μ·B⌋.

    An item admitted into a buffer that already holds K − 1 waits for them and its own service,
    K/μ on average; beyond that K a longer queue only adds latency. At least 1.
    """
    check_positive("service_rate", service_rate)
    check_positive("latency_budget_s", latency_budget_s)
    return max(1, math.floor(service_rate * latency_budget_s + 1e-9))


# ---------------------------------------------------------------- the SimPy study


@dataclass(frozen=True)
class Scenario:
    """One producer feeding one consumer (exponential service) through a buffer.

    ``policy``: "drop" (bounded, reject when full), "block" (bounded, the producer waits for
    one of ``capacity`` credits) or "unbounded". ``producer``: "open" items come on their own
    Poisson schedule (a blocked open producer keeps them in an outbox); "paced" the producer
    makes its next item only after handing over the last (a blocked producer stops producing).
    ``overload`` = (start_s, end_s, arrival_rate) raises the rate for a while. A rejected item
    is retried up to ``retries`` times after a full-jitter exponential backoff
    (uniform in [0, retry_backoff_s · 2^attempt]).
    """

    policy: str = "drop"
    capacity: int = 10
    arrival_rate: float = 8.0
    service_rate: float = 10.0
    duration_s: float = 600.0
    producer: str = "open"
    overload: tuple[float, float, float] | None = None
    retries: int = 0
    retry_backoff_s: float = 0.2
    seed: int = 1

    def __post_init__(self) -> None:
        check_choice("policy", self.policy, POLICIES)
        check_choice("producer", self.producer, PRODUCERS)
        check_int("capacity", self.capacity, 1)
        check_positive("arrival_rate", self.arrival_rate)
        check_positive("service_rate", self.service_rate)
        check_positive("duration_s", self.duration_s)
        check_int("retries", self.retries, 0)
        check_positive("retry_backoff_s", self.retry_backoff_s)
        if self.overload is not None:
            start, end, rate = self.overload
            check_non_negative("overload start_s", start)
            if not start < end <= self.duration_s:
                raise ValueError(f"overload must satisfy start_s < end_s <= duration_s = "
                                 f"{self.duration_s:g} (got {self.overload!r})")
            check_positive("overload arrival_rate", rate)

    def arrivals(self) -> ArrivalProcess:
        if self.overload is None:
            return PoissonArrivals(self.arrival_rate)
        start, end, rate = self.overload
        base = self.arrival_rate
        return TimeVaryingArrivals(
            lambda t: np.where((np.asarray(t) >= start) & (np.asarray(t) < end), rate, base),
            max(base, rate))


@dataclass(frozen=True)
class Run:
    """A finished simulation: ``items`` as the producer saw them (arrival = made, start =
    entered the buffer, end = consumed or finally rejected), ``buffer`` the consumer pool's log
    (one row per attempt), and the number of attempts."""

    scenario: Scenario
    items: RequestTable
    buffer: RequestTable
    attempts: int


def simulate(scenario: Scenario) -> Run:
    """Run ``scenario``; traffic, service times and jitter come from separate seeded streams,
    so runs that differ only in policy or capacity see the same traffic."""
    s = scenario
    arrival_rng, service_rng, retry_rng = (
        np.random.default_rng(child) for child in np.random.SeedSequence(s.seed).spawn(3))
    env = simpy.Environment()
    pool = ServerPool(env, 1, Exponential(1.0 / s.service_rate), service_rng,
                      capacity=s.capacity if s.policy == "drop" else None)
    items = RequestLog()
    credits = simpy.Container(env, s.capacity, init=s.capacity) if s.policy == "block" else None
    attempts = [0]

    def send(row: int, attempt: int) -> None:
        attempts[0] += 1
        items.started(row, env.now)
        pool.call().callbacks.append(lambda event: answered(row, attempt, event.value))

    def answered(row: int, attempt: int, outcome: Outcome) -> None:
        if credits is not None:
            credits.put(1)
        if outcome is Outcome.REJECTED and attempt < s.retries:
            backoff = retry_rng.uniform(0.0, s.retry_backoff_s * 2.0 ** attempt)
            env.timeout(backoff).callbacks.append(lambda _: send(row, attempt + 1))
            return
        items.finished(row, env.now, int(outcome))

    def open_producer() -> Generator[Event, Any, None]:
        times = s.arrivals().times(arrival_rng, horizon=s.duration_s)
        outbox: simpy.Store | None = simpy.Store(env) if credits is not None else None
        if outbox is not None:
            env.process(forward(outbox))
        for t in times.tolist():
            yield env.timeout(t - env.now)
            row = items.add(env.now)
            if outbox is None:
                send(row, 0)
            else:
                outbox.put(row)

    def forward(outbox: simpy.Store) -> Generator[Event, Any, None]:
        while True:
            row = yield outbox.get()
            yield credits.get(1)
            send(row, 0)

    def paced_producer() -> Generator[Event, Any, None]:
        arrivals = s.arrivals()
        while True:
            rate = float(arrivals.rate_at(env.now))
            yield env.timeout(arrival_rng.exponential(1.0 / rate))
            if env.now >= s.duration_s:
                return
            row = items.add(env.now)
            if credits is not None:
                yield credits.get(1)
            send(row, 0)

    env.process(paced_producer() if s.producer == "paced" else open_producer())
    env.run(until=s.duration_s)
    return Run(s, items.table(), pool.log.table(), attempts[0])


def items_held_over_time(table: RequestTable) -> tuple[np.ndarray, np.ndarray]:
    """Items made but not yet consumed or dropped, anywhere (producer's hand, outbox, buffer):
    the memory a pipeline needs, as ``(times, counts)``."""
    return number_in_system_over_time(table)


def summary(run: Run, start_s: float = 0.0, end_s: float | None = None) -> dict[str, float]:
    """The toolkit's ``summarize`` over the items made in [start_s, end_s), plus the numbers
    this lesson adds: ``peak_held`` (most items held at once), ``blocked_fraction`` (items that
    waited for a credit), ``attempts_per_item`` and ``buffer_latency_mean_s`` (put to consumed).
    """
    end = run.scenario.duration_s if end_s is None else end_s
    report = summarize(run.items, start_s=start_s, end_s=end)
    window = run.items.select((run.items.arrival >= start_s) & (run.items.arrival < end))
    times, counts = items_held_over_time(run.items)
    during = (times >= start_s) & (times < end)
    ok = window.has(Outcome.OK)
    in_buffer = run.buffer.select(run.buffer.has(Outcome.OK)
                                  & (run.buffer.arrival >= start_s) & (run.buffer.arrival < end))
    report.update(
        peak_held=float(counts[during].max()) if during.any() else 0.0,
        blocked_fraction=float(np.mean(window.start > window.arrival)) if len(window) else 0.0,
        attempts_per_item=run.attempts / max(len(run.items), 1),
        buffer_latency_mean_s=float(in_buffer.latency.mean()) if len(in_buffer) else math.nan,
        loss_fraction=report["rejected_fraction"],
        delivered_fraction=float(ok.mean()) if len(window) else math.nan,
    )
    return report


def timeline(run: Run, bin_s: float = 5.0) -> dict[str, Any]:
    """Per-bin series for a dashboard: made, delivered and dropped items per second, items
    held (sampled at each bin's middle) and p99 latency of delivered items."""
    end = run.scenario.duration_s
    items = run.items
    mids, made = rate_over_time(items.arrival, bin_s, 0.0, end)
    _, delivered = rate_over_time(items.end[items.has(Outcome.OK)], bin_s, 0.0, end)
    _, dropped = rate_over_time(items.end[items.has(Outcome.REJECTED)], bin_s, 0.0, end)
    _, p99 = latency_over_time(items, bin_s, 0.0, end)
    times, counts = items_held_over_time(items)
    index = np.searchsorted(times, mids, side="right") - 1
    held = np.where(index >= 0, counts[np.maximum(index, 0)], 0.0) if len(times) else 0 * mids
    return {"time_s": mids, "made_rps": made, "delivered_rps": delivered,
            "dropped_rps": dropped, "held_items": held, "p99_latency_s": p99}


def _run_metrics(rng: np.random.Generator, **params: Any) -> dict[str, float]:
    seed = int(rng.integers(2**31))
    run = simulate(Scenario(**{**params, "seed": seed}))
    warmup = min(50.0, run.scenario.duration_s / 10)
    return summary(run, warmup, run.scenario.duration_s)


def capacity_sweep(base: Scenario, capacities: Sequence[int], *, policies: Sequence[str] = (
        "drop",), replications: int = 3, metrics: Sequence[str] = (
        "loss_fraction", "latency_mean_s", "latency_p99_s", "goodput_per_s",
        "mean_in_system")) -> list[dict[str, Any]]:
    """Mean and t-interval of ``metrics`` for each (policy, capacity), from seeded replications
    (the first 50 s, or a tenth of the run if shorter, dropped as warm-up)."""
    fixed = {k: v for k, v in vars(base).items() if k not in ("policy", "capacity", "seed")}
    rows = sweep(_run_metrics, {"policy": list(policies), "capacity": list(capacities)},
                 seed=base.seed, replications=replications, fixed=fixed)
    return aggregate(rows, ["policy", "capacity"], list(metrics))


def plot_dashboard(runs: dict[str, Run], bin_s: float = 5.0) -> Any:
    """Made/delivered/dropped rates, items held and p99 latency over time, one curve per run,
    the overload window (of the first run) shaded."""
    from simulations import plots

    lines = {label: timeline(run, bin_s) for label, run in runs.items()}
    first = next(iter(runs.values())).scenario
    panels = {
        "delivered (items/s)": {k: v["delivered_rps"] for k, v in lines.items()},
        "dropped (items/s)": {k: v["dropped_rps"] for k, v in lines.items()},
        "items held": {k: v["held_items"] for k, v in lines.items()},
        "p99 latency (s)": {k: v["p99_latency_s"] for k, v in lines.items()},
    }
    windows = [first.overload[:2]] if first.overload else []
    times = next(iter(lines.values()))["time_s"]
    return plots.dashboard(times, panels, windows=windows, window_label="overload")

