"""The publish-subscribe study: time until every subscriber has a message, and the broker's
egress, against the number of subscribers N and partitions P.

Picture the printing house of the pattern's module with a stopwatch. Editions arrive at random
(Poisson, ``publish_rate`` per second); each goes to one of P presses (its partition, by key);
a press prints the N copies of an edition one after the other, each copy taking ``write_s`` plus
``serialize_s`` (or ``serialize_s`` once per edition, with ``serialize_once``); then each copy
travels to its reader for an independent delay D (log-normal, ``delay_mean_s``). An edition is
*everywhere* when its last copy arrives: that is the maximum of N delays plus the press's queue.

A press is a FIFO server, computed without an event loop by the toolkit's
``fastpath.fifo_ends`` (Lindley's recursion in one vectorised pass). The closed forms
it is checked against: P(all N by t) = F(t)^N for an ideal broker (``all_delivered_cdf``,
via ``simulations.theory.order_statistic_cdf`` with k = n), the staircase of an idle press
(``staircase_cdf``), and egress = N × publish rate up to the presses' capacity
(``egress_capacity``). ``consume`` is the consumer-group side: P partitions shared by C
consumers, throughput limited by the busiest consumer (``group_capacity``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from patterns.checks import check_int, check_non_negative, check_positive
from patterns.communication.publish_subscribe import assign_partitions
from simulations import experiments
from simulations.distributions import LogNormal, quantile, survival
from simulations.fastpath import fifo_ends
from simulations.metrics import per_bin, percentile_of, rate_over_time
from simulations.theory import order_statistic_cdf
from simulations.workloads import PoissonArrivals

__all__ = [
    "Run", "Scenario", "all_delivered_cdf", "all_delivered_percentile", "consume",
    "egress_capacity",
    "group_capacity", "group_throughput", "over_time", "plot_dashboard", "plot_sweep",
    "simulate", "staircase_cdf", "summary", "sweep",
]


@dataclass(frozen=True)
class Scenario:
    """Poisson messages to N subscribers through P partitions (one sender each).

    A copy costs ``write_s`` plus ``serialize_s``; with ``serialize_once`` the message is
    encoded once and each copy costs ``write_s`` (the first one also ``serialize_s``). After
    the sender, each copy takes an independent log-normal delay (mean ``delay_mean_s``, squared
    coefficient of variation ``delay_scv``) to reach its subscriber. ``burst``: (start, end,
    extra rate) of an overload episode, for the dashboard.
    """

    publish_rate: float = 200.0
    subscribers: int = 20
    partitions: int = 2
    write_s: float = 0.0001
    serialize_s: float = 0.0002
    serialize_once: bool = False
    delay_mean_s: float = 0.005
    delay_scv: float = 1.0
    duration_s: float = 10.0
    burst: tuple[float, float, float] | None = None
    seed: int = 1

    def __post_init__(self) -> None:
        check_positive("Scenario.publish_rate", self.publish_rate)
        check_int("Scenario.subscribers", self.subscribers, 1)
        check_int("Scenario.partitions", self.partitions, 1)
        check_non_negative("Scenario.write_s", self.write_s)
        check_non_negative("Scenario.serialize_s", self.serialize_s)
        check_positive("Scenario.delay_mean_s", self.delay_mean_s)
        check_positive("Scenario.delay_scv", self.delay_scv)
        check_positive("Scenario.duration_s", self.duration_s)

    @property
    def message_cost_s(self) -> float:
        """Sender time for all N copies of one message."""
        n = self.subscribers
        return (self.serialize_s + n * self.write_s if self.serialize_once
                else n * (self.serialize_s + self.write_s))

    @property
    def load(self) -> float:
        """Utilisation of each sender: (λ/P)·(cost of one message's copies)."""
        return self.publish_rate / self.partitions * self.message_cost_s


@dataclass
class Run:
    """One run: per message (publish time, partition), per copy (sent, delivered)."""

    scenario: Scenario
    published: np.ndarray  # (m,) publish times
    partition: np.ndarray  # (m,) partition of each message
    sent: np.ndarray  # (m, N) when each copy left its sender
    delivered: np.ndarray  # (m, N) when each copy reached its subscriber

    @property
    def all_delivered(self) -> np.ndarray:
        """Time until every subscriber had the message (s), per message."""
        return self.delivered.max(axis=1) - self.published

    @property
    def copy_latency(self) -> np.ndarray:
        """Publish-to-subscriber time of every copy (s), shape (m, N)."""
        return self.delivered - self.published[:, None]


def _copy_costs(sc: Scenario) -> np.ndarray:
    """The sender's time for each of the N copies of one message, in sending order."""
    per_copy = np.full(sc.subscribers, sc.write_s + (0.0 if sc.serialize_once else sc.serialize_s))
    if sc.serialize_once:
        per_copy[0] += sc.serialize_s
    return per_copy


def _arrivals(sc: Scenario, rng: np.random.Generator) -> np.ndarray:
    times = PoissonArrivals(sc.publish_rate).times(rng, horizon=sc.duration_s)
    if sc.burst is not None:
        start, end, rate = sc.burst
        extra = start + PoissonArrivals(rate).times(rng, horizon=end - start)
        times = np.sort(np.concatenate([times, extra]))
    return times


def simulate(scenario: Scenario, rng: np.random.Generator | None = None,
             max_subscribers: int | None = None) -> Run:
    """One seeded run. Random numbers are drawn in a fixed order (publish times, keys, then
    the delays subscriber by subscriber), so runs that differ only in N (up to
    ``max_subscribers``), P or the costs see the same messages and the same delays."""
    sc = scenario
    rng = rng if rng is not None else np.random.default_rng(sc.seed)
    published = _arrivals(sc, rng)
    m, n = len(published), sc.subscribers
    keys = rng.integers(0, 2**31, m)
    width = max(n, max_subscribers or n)
    delays = LogNormal(sc.delay_mean_s, sc.delay_scv).sample(rng, width * m)
    delays = delays.reshape(width, m)[:n].T  # column i: subscriber i's delays
    partition = keys % sc.partitions
    sent = np.empty((m, n))
    per_copy = _copy_costs(sc)
    for p in range(sc.partitions):
        mine = np.flatnonzero(partition == p)
        if len(mine):
            arrival = np.repeat(published[mine], n)
            ends = fifo_ends(arrival, np.tile(per_copy, len(mine)))
            sent[mine] = ends.reshape(len(mine), n)
    return Run(sc, published, partition, sent, sent + delays)


def summary(run: Run, start_s: float = 0.0, end_s: float | None = None) -> dict[str, float]:
    """Messages published in [start_s, end_s): time until all subscribers have them
    (mean, p50, p99), one copy's p99, and the egress rate (copies sent per second)."""
    end_s = run.scenario.duration_s if end_s is None else end_s
    sel = (run.published >= start_s) & (run.published < end_s)
    everywhere = run.all_delivered[sel]
    sent = run.sent.ravel()
    egress = np.sum((sent >= start_s) & (sent < end_s)) / (end_s - start_s)
    nan = math.nan
    return {
        "messages": int(sel.sum()),
        "mean_all_s": float(everywhere.mean()) if len(everywhere) else nan,
        "p50_all_s": float(np.percentile(everywhere, 50)) if len(everywhere) else nan,
        "p99_all_s": float(np.percentile(everywhere, 99)) if len(everywhere) else nan,
        "p99_copy_s": float(np.percentile(run.copy_latency[sel], 99)) if len(everywhere)
        else nan,
        "egress_cps": float(egress),
        "load": run.scenario.load,
    }


def sweep(base: Scenario, replications: int = 3, seed: int = 1, warmup_s: float = 1.0,
          **grid: Sequence[Any]) -> list[dict[str, Any]]:
    """Aggregated sweep over Scenario fields (e.g. ``subscribers=[...]``, ``partitions=[...]``):
    one row per setting with the mean and 95 % half-width of each metric."""
    top = max(grid.get("subscribers", [base.subscribers]))

    def model(rng: np.random.Generator, **params: Any) -> dict[str, float]:
        return summary(simulate(replace(base, **params), rng, max_subscribers=top), warmup_s)

    rows = experiments.sweep(model, grid, seed=seed, replications=replications)
    return experiments.aggregate(rows, list(grid), ["p50_all_s", "p99_all_s", "p99_copy_s",
                                                    "egress_cps"])


# ---------------------------------------------------------------- closed forms

def all_delivered_cdf(t: float, subscribers: int, delay_mean_s: float, delay_scv: float) -> float:
    """P(all N subscribers have a message by t) = F(t)^N for an ideal broker (no sending
    time): N independent delays with the same distribution F, all ≤ t. The N-th order
    statistic of N, ``order_statistic_cdf(F(t), n=N, k=N)``."""
    if t <= 0:
        return 0.0
    f = 1.0 - survival(LogNormal(delay_mean_s, delay_scv), t)
    return order_statistic_cdf(min(max(f, 0.0), 1.0), subscribers, subscribers)


def all_delivered_percentile(q: float, subscribers: int, delay_mean_s: float,
                             delay_scv: float) -> float:
    """The q-quantile of the time until all N have it, for the ideal broker: the
    q^(1/N)-quantile of one delay (F(t)^N = q)."""
    return float(quantile(LogNormal(delay_mean_s, delay_scv), q ** (1.0 / subscribers)))


def staircase_cdf(t: float, scenario: Scenario) -> float:
    """P(all N by t) when the sender is idle as each message arrives (light load): copy i
    (0-based) leaves after its cumulative cost c_i, so P = Π_i F(t − c_i). Exact for an idle
    sender; an upper bound otherwise (queueing only delays copies)."""
    sc = scenario
    leave = np.cumsum(_copy_costs(sc))
    d = LogNormal(sc.delay_mean_s, sc.delay_scv)
    left = t - leave
    if np.any(left <= 0):
        return 0.0
    return float(np.prod([1.0 - survival(d, x) for x in left]))


def egress_capacity(scenario: Scenario) -> float:
    """Copies per second the P senders can make: P·N / (cost of one message's N copies)."""
    return scenario.partitions * scenario.subscribers / scenario.message_cost_s


# ---------------------------------------------------------------- consumer groups

def group_capacity(partitions: int, consumers: int, consume_s: float) -> float:
    """Messages per second a group of C consumers can take from P evenly loaded partitions,
    each partition owned by one consumer: the busiest owns ⌈P/C⌉ partitions and caps the
    group at (P/⌈P/C⌉)/consume_s, so C > P adds nothing."""
    check_int("partitions", partitions, 1)
    check_int("consumers", consumers, 1)
    check_positive("consume_s", consume_s)
    return partitions / math.ceil(partitions / consumers) / consume_s


def group_throughput(publish_rate: float, partitions: int, consumers: int,
                     consume_s: float) -> float:
    """Messages per second the group finishes when each of P partitions gets λ/P: consumer j
    owning kⱼ partitions finishes min(λ·kⱼ/P, 1/consume_s)."""
    owned = assign_partitions(partitions, [f"c{i}" for i in range(consumers)])
    return sum(min(publish_rate * len(ps) / partitions, 1.0 / consume_s)
               for ps in owned.values())


def consume(publish_rate: float, partitions: int, consumers: int, consume_s: float,
            duration_s: float = 10.0, seed: int = 1) -> dict[str, float]:
    """Poisson messages spread over P partitions by key, consumed by a group of C (each
    partition owned by one consumer, ``assign_partitions``); each consumer takes its
    partitions' messages in arrival order, ``consume_s`` each. Throughput (messages finished
    per second in the second half of the run) and the p99 lag (publish to processed)."""
    rng = np.random.default_rng(seed)
    published = PoissonArrivals(publish_rate).times(rng, horizon=duration_s)
    partition = rng.integers(0, 2**31, len(published)) % partitions
    owner = np.empty(len(published), dtype=int)
    names = [f"c{i}" for i in range(consumers)]
    for i, (_, owned) in enumerate(assign_partitions(partitions, names).items()):
        owner[np.isin(partition, owned)] = i
    end = np.empty(len(published))
    for i in range(consumers):
        mine = owner == i
        end[mine] = fifo_ends(published[mine], np.full(mine.sum(), consume_s))
    half = duration_s / 2
    done = np.sum((end >= half) & (end < duration_s)) / half
    lag = end - published
    return {"throughput_mps": float(done), "p99_lag_s": float(np.percentile(lag, 99))}


# ---------------------------------------------------------------- over time and plots

def over_time(run: Run, bin_s: float = 0.5) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The dashboard's series: publish rate, egress, p99 time until all, sender backlog."""
    end = run.scenario.duration_s
    t, published = rate_over_time(run.published, bin_s, 0.0, end)
    _, egress = rate_over_time(run.sent.ravel(), bin_s, 0.0, end)
    _, p99 = per_bin(run.published, run.all_delivered, bin_s, 0.0, end, percentile_of(99))
    arrived = np.sort(np.repeat(run.published, run.scenario.subscribers))
    left = np.sort(run.sent.ravel())
    backlog = np.searchsorted(arrived, t, side="right") - np.searchsorted(left, t, side="right")
    return t, {"published": published, "egress": egress, "p99_all_ms": p99 * 1e3,
               "backlog": backlog.astype(float)}


def plot_dashboard(runs: dict[str, Run], bin_s: float = 0.5) -> list:
    """Publish rate, egress, p99 time until all subscribers have it and the senders' backlog,
    over time, one curve per run; the burst (if any) shaded."""
    from simulations import plots

    series = {name: over_time(run, bin_s) for name, run in runs.items()}
    t = next(iter(series.values()))[0]
    first = next(iter(runs.values())).scenario
    windows = [first.burst[:2]] if first.burst is not None else []
    panels = {
        "published (msg/s)": {n: s["published"] for n, (_, s) in series.items()},
        "egress (copies/s)": {n: s["egress"] for n, (_, s) in series.items()},
        "p99 until all have it (ms)": {n: s["p99_all_ms"] for n, (_, s) in series.items()},
        "copies waiting to be sent": {n: s["backlog"] for n, (_, s) in series.items()},
    }
    return plots.dashboard(t, panels, windows=windows, window_label="publish burst",
                           panel_height=1.7)


def plot_sweep(rows: list[dict[str, Any]], x: str = "subscribers", by: str | None = "partitions",
               metrics: Sequence[str] = ("p99_all_s", "egress_cps")) -> list:
    """One panel per metric against ``x``, a line per value of ``by``, 95 % interval bars."""
    from simulations import plots

    labels = {"p50_all_s": "p50 time until all have it (s)",
              "p99_all_s": "p99 time until all have it (s)",
              "p99_copy_s": "p99 of one copy (s)", "egress_cps": "egress (copies/s)"}
    xlabels = {"subscribers": "subscribers N", "partitions": "partitions P",
               "publish_rate": "publish rate (msg/s)"}
    return plots.sweep_panels(rows, x=x, by=by, metrics=metrics, xlabel=xlabels.get(x, x),
                              ylabels=labels, group_label=lambda g: f"{by} = {g}",
                              log_y={"p99_all_s"})
