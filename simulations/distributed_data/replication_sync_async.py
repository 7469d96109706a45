"""The replication study: commit latency against the writes a primary failure loses.

Picture the notary of the pattern's module with a stopwatch and a fire alarm. Writes arrive at
random; each courier takes a random time to bring back a signature; the stopwatch measures how
long a client waits for "recorded" (the commit latency), and the alarm, rung at many moments,
counts the entries clients were told about that no surviving branch holds (the writes lost, and
how old the oldest of them is: the RPO in seconds).

- ``Scenario``, ``simulate(scenario, rng) -> ReplicationRun``: SimPy driving the pattern's own
  ``Primary`` and ``Replica`` on the simulated clock. Writes arrive as a Poisson stream; each is
  made durable locally (``local_s``), appended and shipped to every replica, which holds it
  after an exponential delay of its ``Site``'s mean (ship + make durable + confirm), in log
  order. Optionally a replica slows down for a while (``slowdown``) and the primary refuses
  writes when too few replicas are within ``max_lag_s`` (``min_replicas``).
  ``fast_simulate`` gives the same rows with numpy (no admission control), for sweeps and
  sliders; the tests hold the two together.
- ``losses_at`` / ``summary`` / ``sweep``: the writes lost and the RPO if the primary (and, with
  ``zone_failure``, every replica in its zone) failed at each of ``crashes`` instants.
- closed forms: ``commit_latency_mean`` (``simulations.theory.exponential_order_statistic_mean``
  for a write alone: H_n/μ for sync-all) and, for the log applied in order under Poisson writes,
  ``commit_cdf`` / ``commit_latency_percentile`` and ``expected_lost_writes``; the first-order
  ``writes_in_flight`` = λ_w × lag.
- the protocol lab: ``PrimaryBackup`` (log shipping, heartbeats through the failure-detection
  lesson's ``HeartbeatDetector``, promotion of the longest log), ``AsyncPrimaryBackup`` (acks
  before replicating: loses acknowledged writes at failover), ``QuorumPrimaryBackup`` with
  ``SyncPrimaryBackup`` and ``SemiSyncPrimaryBackup`` (pass), and ``lab_scenario``.
- plots: ``plot_sweep``, ``plot_dashboard``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import simpy

from patterns.checks import check_int, check_non_negative, check_positive
from patterns.distributed_data.replication_sync_async import (
    Entry,
    Primary,
    Replica,
    acknowledged_position,
    promote,
)
from patterns.resilience.failure_detection import HeartbeatDetector
from simulations import plots
from simulations.experiments import aggregate
from simulations.experiments import sweep as run_sweep
from simulations.lab import Crash, Latency, Nemesis, RegisterWorkload
from simulations.lab import Scenario as LabScenario
from simulations.lab.node import Context, Node, Request
from simulations.metrics import latency_percentiles, per_bin, percentile_of, rate_over_time
from simulations.theory import exponential_order_statistic_mean, littles_law
from simulations.workloads import PoissonArrivals

__all__ = [
    "PRIMARY_ZONE", "SITES", "AsyncPrimaryBackup", "PrimaryBackup", "QuorumPrimaryBackup",
    "ReplicationRun", "Scenario", "SemiSyncPrimaryBackup", "Site", "SyncPrimaryBackup",
    "commit_cdf", "commit_latency_mean", "commit_latency_mean_ordered",
    "commit_latency_percentile", "crash_times", "expected_lost_writes",
    "fast_simulate", "lab_scenario", "losses_at", "plot_dashboard", "plot_sweep", "simulate",
    "summary", "sweep", "timeline", "with_settings", "writes_in_flight",
]

PRIMARY_ZONE = "a"


@dataclass(frozen=True)
class Site:
    """Where one replica lives: its ``name``, the mean time (s) for a write to reach it and be
    confirmed (exponential), and its ``zone`` (the primary is in zone ``PRIMARY_ZONE``)."""

    name: str
    mean_delay_s: float
    zone: str

    def __post_init__(self) -> None:
        check_positive(f"Site({self.name!r}).mean_delay_s", self.mean_delay_s)


SITES = {site.name: site for site in (
    Site("same-zone", 0.0005, PRIMARY_ZONE),
    Site("zone-b", 0.002, "b"),
    Site("zone-c", 0.002, "c"),
    Site("zone-d", 0.002, "d"),
    Site("region-2", 0.04, "remote"),
)}
"""The placements the lesson and its exercises choose from: a replica beside the primary, three
in other zones of the region, one in another region."""


@dataclass(frozen=True)
class Scenario:
    """One run. ``acks``: confirmations before a write is acknowledged (0: asynchronous);
    ``write_rate`` per second; ``local_s``: the primary's own durable write; ``horizon_s`` of
    writes, the first ``warmup_s`` left out of the numbers. ``slowdown`` = (replica name, start,
    end, factor) multiplies that replica's delays for writes shipped in [start, end).
    ``min_replicas`` > 0 refuses a write unless that many replicas lag by at most ``max_lag_s``.
    A failure is looked at ``crashes`` times, evenly over the horizon after the warm-up; with
    ``zone_failure`` it also takes the replicas in the primary's zone."""

    replicas: tuple[Site, ...] = field(
        default_factory=lambda: (SITES["zone-b"], SITES["zone-c"], SITES["zone-d"]))
    acks: int = 1
    write_rate: float = 200.0
    local_s: float = 0.0005
    horizon_s: float = 20.0
    warmup_s: float = 1.0
    slowdown: tuple[str, float, float, float] | None = None
    min_replicas: int = 0
    max_lag_s: float = 0.1
    zone_failure: bool = False
    crashes: int = 400
    seed: int = 1

    def __post_init__(self) -> None:
        if not self.replicas or not all(isinstance(s, Site) for s in self.replicas):
            raise ValueError(f"Scenario.replicas must be a non-empty tuple of Site (got "
                             f"{self.replicas!r})")
        names = [s.name for s in self.replicas]
        if len(set(names)) != len(names):
            raise ValueError(f"Scenario.replicas must have distinct names (got {names})")
        check_int("Scenario.acks", self.acks, 0, len(self.replicas))
        check_positive("Scenario.write_rate", self.write_rate)
        check_non_negative("Scenario.local_s", self.local_s)
        check_positive("Scenario.horizon_s", self.horizon_s)
        if not 0 <= self.warmup_s < self.horizon_s:
            raise ValueError(f"Scenario.warmup_s must be in [0, horizon_s = {self.horizon_s:g})"
                             f" (got {self.warmup_s!r})")
        if self.slowdown is not None:
            name, start, end, factor = self.slowdown
            if name not in names or not (0 <= start < end and factor > 0):
                raise ValueError(f"Scenario.slowdown must be (replica name, start, end, factor)"
                                 f" with a replica of this run, 0 <= start < end and factor > 0"
                                 f" (got {self.slowdown!r})")
        check_int("Scenario.min_replicas", self.min_replicas, 0, len(self.replicas))
        check_positive("Scenario.max_lag_s", self.max_lag_s)
        check_int("Scenario.crashes", self.crashes, 1)

    @property
    def rates(self) -> np.ndarray:
        """Each replica's rate μ = 1 / mean delay."""
        return np.array([1.0 / s.mean_delay_s for s in self.replicas])

    def survivors(self) -> np.ndarray:
        """Mask of the replicas that outlive the failure."""
        return np.array([not (self.zone_failure and s.zone == PRIMARY_ZONE)
                         for s in self.replicas])


@dataclass(frozen=True, eq=False)
class ReplicationRun:
    """A finished run: per write its ``arrival_s`` and whether it was ``accepted``; per
    accepted write (log order) when each replica held it in order (``held_s``, writes x
    replicas) and when the primary acknowledged it (``acked_s``)."""

    scenario: Scenario
    arrival_s: np.ndarray
    accepted: np.ndarray
    held_s: np.ndarray
    acked_s: np.ndarray

    @property
    def commit_latency_s(self) -> np.ndarray:
        return self.acked_s - self.arrival_s[self.accepted]


def _draws(s: Scenario, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Arrival times and every (write, replica) delay, drawn up front (common random numbers)."""
    times = PoissonArrivals(s.write_rate).times(rng, horizon=s.horizon_s)
    delays = rng.exponential(1.0, (len(times), len(s.replicas))) / s.rates
    if s.slowdown is not None:
        name, start, end, factor = s.slowdown
        column = [site.name for site in s.replicas].index(name)
        shipped = times + s.local_s
        delays[(shipped >= start) & (shipped < end), column] *= factor
    return times, delays


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> ReplicationRun:
    """Run ``scenario`` in SimPy with the pattern's ``Primary`` and ``Replica`` (see the
    module's docstring); deterministic for a given ``scenario.seed`` (or ``rng``)."""
    s = scenario
    rng = np.random.default_rng(s.seed) if rng is None else rng
    times, delays = _draws(s, rng)
    env = simpy.Environment()
    names = [site.name for site in s.replicas]
    primary = Primary(names, s.acks, clock=lambda: env.now)
    copies = [Replica(name) for name in names]
    accepted = np.zeros(len(times), dtype=bool)
    held = np.full((len(times), len(names)), np.nan)

    def deliver(r: int, entry: Entry, delay: float):
        yield env.timeout(delay)
        before = copies[r].position
        now_held = copies[r].receive(entry)
        held[before:now_held, r] = env.now
        primary.confirm(names[r], now_held)

    def write(i: int):
        yield env.timeout(s.local_s)
        primary.append(i, i)
        for r in range(len(names)):
            env.process(deliver(r, primary.log[-1], delays[i, r]))

    def writer():
        for i, t in enumerate(times):
            yield env.timeout(t - env.now)
            in_reach = sum(primary.lag_s(name) <= s.max_lag_s for name in names)
            if in_reach >= s.min_replicas:
                accepted[i] = True
                env.process(write(i))

    env.process(writer())
    env.run()
    return ReplicationRun(s, times, accepted, held[:primary.committed],
                          np.array(primary.acknowledged_s))


def fast_simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> ReplicationRun:
    """`simulate`'s rows with numpy: replica r holds write s in order at
    max_{j ≤ s}(append_j + delay_jr), and the primary acknowledges at the ``acks``-th smallest
    of those (at the append when ``acks`` = 0). Admission control needs the simulation."""
    s = scenario
    if s.min_replicas:
        raise ValueError("fast_simulate cannot refuse writes (min_replicas > 0): use simulate")
    rng = np.random.default_rng(s.seed) if rng is None else rng
    times, delays = _draws(s, rng)
    appended = times + s.local_s
    held = np.maximum.accumulate(appended[:, None] + delays, axis=0)
    acked = appended if s.acks == 0 else np.sort(held, axis=1)[:, s.acks - 1]
    return ReplicationRun(s, times, np.ones(len(times), dtype=bool), held, acked)


# ---------------------------------------------------------------- what a failure loses


def losses_at(run: ReplicationRun, crash_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """If the primary failed at each time in ``crash_s``: the acknowledged writes the best
    surviving replica (the longest log, as ``promote`` picks) lacks, and the RPO in seconds
    (how long before the failure the oldest of them was acknowledged; 0 when none is lost)."""
    crash_s = np.asarray(crash_s, dtype=float)
    survivors = run.scenario.survivors()
    best = np.zeros(len(crash_s), dtype=int)
    for r in np.flatnonzero(survivors):
        best = np.maximum(best, np.searchsorted(run.held_s[:, r], crash_s, side="right"))
    acknowledged = np.searchsorted(run.acked_s, crash_s, side="right")
    lost = np.maximum(acknowledged - best, 0)
    oldest = run.acked_s[np.minimum(best, len(run.acked_s) - 1)] if len(run.acked_s) else 0.0
    return lost, np.where(lost > 0, crash_s - oldest, 0.0)


def crash_times(scenario: Scenario) -> np.ndarray:
    """The instants a failure is looked at: ``crashes`` of them, evenly after the warm-up."""
    s = scenario
    return np.linspace(s.warmup_s, s.horizon_s, s.crashes + 2)[1:-1]


def summary(run: ReplicationRun) -> dict[str, float]:
    """After the warm-up: commit latency (mean, p50, p99, in seconds), the share of writes
    refused, and over the failure instants the mean number of acknowledged writes lost, the
    share of failures that lose any, and the RPO (mean and worst, in seconds)."""
    s = run.scenario
    keep = run.arrival_s[run.accepted] >= s.warmup_s
    latency = latency_percentiles(run.commit_latency_s[keep], [50, 99])
    lost, rpo = losses_at(run, crash_times(s))
    late = run.arrival_s >= s.warmup_s
    return {"commit_mean_s": float(np.mean(run.commit_latency_s[keep])),
            "commit_p50_s": latency["latency_p50_s"], "commit_p99_s": latency["latency_p99_s"],
            "refused_share": float(1 - run.accepted[late].mean()),
            "lost_mean": float(lost.mean()), "loss_probability": float((lost > 0).mean()),
            "rpo_mean_s": float(rpo.mean()), "rpo_max_s": float(rpo.max())}


SWEEP_METRICS = ("commit_mean_s", "commit_p99_s", "lost_mean", "loss_probability",
                 "rpo_mean_s", "refused_share")


def sweep(base: Scenario, grid: dict[str, Sequence[Any]], replications: int = 3,
          fast: bool = True) -> list[dict[str, Any]]:
    """`summary` at every combination of ``grid`` (Scenario fields), averaged over seeded
    replications with 95 % interval half-widths (``<metric>_ci``); ``fast`` uses
    `fast_simulate`."""
    run = fast_simulate if fast else simulate

    def model(rng: np.random.Generator, **settings: Any) -> dict[str, float]:
        return summary(run(replace(base, **settings), rng))

    rows = run_sweep(model, grid, seed=base.seed, replications=replications)
    return aggregate(rows, list(grid), SWEEP_METRICS)


def timeline(run: ReplicationRun, bin_s: float = 0.5) -> dict[str, np.ndarray]:
    """Per-bin metrics for a dashboard: commit p99 (ms) of the writes acknowledged in the bin,
    writes refused per second, and, at each bin's end, the worst replica lag (ms: how long the
    oldest write it lacks has been acknowledged or appended) and the writes at risk (those a
    failure then would lose)."""
    s = run.scenario
    end_s = float(s.horizon_s)
    time_s, p99 = per_bin(run.acked_s, run.commit_latency_s * 1e3, bin_s, 0.0, end_s,
                          percentile_of(99))
    refused = rate_over_time(run.arrival_s[~run.accepted], bin_s, 0.0, end_s)[1]
    edges = np.minimum((np.arange(len(time_s)) + 1) * bin_s, end_s)
    appended = run.arrival_s[run.accepted] + s.local_s
    lag = np.zeros(len(edges))
    for r in range(len(s.replicas)):
        first_missing = np.searchsorted(run.held_s[:, r], edges, side="right")
        start = np.searchsorted(appended, edges, side="right")  # writes appended by then
        behind = first_missing < start
        oldest = appended[np.minimum(first_missing, len(appended) - 1)]
        lag = np.maximum(lag, np.where(behind, (edges - oldest) * 1e3, 0.0))
    return {"time_s": time_s, "commit_p99_ms": p99, "refused_rps": refused,
            "replica_lag_ms": lag, "at_risk": losses_at(run, edges)[0].astype(float)}


# ---------------------------------------------------------------- closed forms


def commit_latency_mean(mean_delay_s: float, replicas: int, acks: int,
                        local_s: float = 0.0) -> float:
    """Mean commit latency of a write alone in flight when each of ``replicas`` confirms it
    after an independent Exp(μ) delay of mean ``mean_delay_s``: local_s + E[acks-th smallest]
    = local_s + Σ_{i<acks} 1/((n − i)μ) (``exponential_order_statistic_mean``); sync-all
    (acks = n) is H_n/μ, asynchronous (acks = 0) local_s alone."""
    check_positive("mean_delay_s", mean_delay_s)
    check_int("acks", acks, 0, check_int("replicas", replicas, 1))
    if acks == 0:
        return check_non_negative("local_s", local_s)
    return local_s + exponential_order_statistic_mean(replicas, acks, 1.0 / mean_delay_s)


def writes_in_flight(write_rate: float, mean_lag_s: float) -> float:
    """λ_w × lag (Little's law): the acknowledged writes an asynchronous replica lacks on
    average, so the first-order loss when the primary fails and that replica is promoted. Exact
    for a replica that applies writes independently; the in-order log loses a little more
    (`expected_lost_writes`)."""
    return littles_law(arrival_rate=write_rate, mean_time=mean_lag_s)


def _subsets(indices: Sequence[int]) -> list[tuple[int, ...]]:
    return [c for j in range(len(indices) + 1) for c in itertools.combinations(indices, j)]


def _held_in_order(ages: np.ndarray, rates: Sequence[float], write_rate: float) -> np.ndarray:
    """P(every replica of ``rates`` holds, in order, the write appended ``ages`` ago), under
    Poisson writes at ``write_rate`` and independent Exp(μ_r) delays: the write itself has
    arrived, Π(1 − e^{−μ_r a}), and so has every earlier one, exp(−λ ∫_a^∞ (1 − Π_r(1 −
    e^{−μ_r x})) dx), the integral expanded over the non-empty subsets U as
    Σ (−1)^{|U|+1} e^{−a M_U} / M_U with M_U = Σ_{r∈U} μ_r."""
    ages = np.asarray(ages, dtype=float)
    own = np.prod([1.0 - np.exp(-mu * ages) for mu in rates], axis=0) if rates else 1.0
    tail = np.zeros_like(ages)
    for subset in _subsets(range(len(rates)))[1:]:
        total = sum(rates[r] for r in subset)
        tail += (-1) ** (len(subset) + 1) * np.exp(-total * ages) / total
    return own * np.exp(-write_rate * tail)


def _at_least(ages: np.ndarray, rates: Sequence[float], k: int, write_rate: float,
              none_of: Sequence[float] = ()) -> np.ndarray:
    """P(at least ``k`` of the replicas in ``rates`` hold the write in order, and none of those
    in ``none_of`` does): inclusion–exclusion, Σ_{j≥k} (−1)^{j−k} C(j−1, k−1) Σ_{|S|=j} over
    ``rates``, times Σ_T (−1)^{|T|} over the subsets of ``none_of``."""
    ages = np.asarray(ages, dtype=float)
    total = np.zeros_like(ages)
    others = list(none_of)
    for subset in _subsets(range(len(rates))):
        j = len(subset)
        if (k == 0 and j > 0) or j < k:
            continue  # with k = 0 only the empty subset counts: "at least none" always holds
        weight = (-1) ** (j - k) * math.comb(j - 1, k - 1) if k else 1
        for excluded in _subsets(range(len(others))):
            chosen = [rates[r] for r in subset] + [others[t] for t in excluded]
            total += weight * (-1) ** len(excluded) * _held_in_order(ages, chosen, write_rate)
    return total


def _grid(rates: Sequence[float], points: int = 6001) -> np.ndarray:
    """Ages from 0 to 60 slowest mean delays, fine enough for the trapezoid rule."""
    return np.linspace(0.0, 60.0 / min(rates), points)


def commit_cdf(t: float | np.ndarray, rates: Sequence[float], acks: int,
               write_rate: float = 0.0, local_s: float = 0.0) -> np.ndarray:
    """P(commit latency ≤ t): the write is durable locally after ``local_s`` and then held in
    order by at least ``acks`` of the replicas (rates μ_r = 1 / mean delay), with Poisson
    writes at ``write_rate`` (0: a write alone, the order statistic of independent
    exponentials, ``simulations.theory.order_statistic_cdf`` when the rates are equal)."""
    rates = [check_positive("rates", r) for r in rates]
    check_int("acks", acks, 0, len(rates))
    check_non_negative("write_rate", write_rate)
    ages = np.asarray(t, dtype=float) - local_s
    inside = np.clip(ages, 0.0, None)
    if acks == 0:
        return (ages >= 0).astype(float)
    return np.where(ages >= 0, np.clip(_at_least(inside, rates, acks, write_rate), 0, 1), 0.0)


def commit_latency_percentile(q: float, rates: Sequence[float], acks: int,
                              write_rate: float = 0.0, local_s: float = 0.0) -> float:
    """The ``q``-th percentile of the commit latency (`commit_cdf`), by bisection."""
    target = check_non_negative("q", q) / 100.0
    low, high = local_s, local_s + 60.0 / min(rates)
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if commit_cdf(middle, rates, acks, write_rate,
                                                 local_s) < target else (low, middle)
    return (low + high) / 2


def expected_lost_writes(survivor_rates: Sequence[float], acks: int, write_rate: float,
                         failed_rates: Sequence[float] = ()) -> float:
    """Mean acknowledged writes lost when the primary (and the replicas of ``failed_rates``, its
    zone) fails at a random moment and the longest surviving log is promoted: λ ∫_0^∞ P(the
    write appended a ago is acknowledged and no survivor holds it in order) da, by Campbell's
    theorem. Acknowledged means ``acks`` replicas hold it; with survivors none, so ``acks``
    of the failed ones (``acks`` = 0: every appended write)."""
    check_positive("write_rate", write_rate)
    check_int("acks", acks, 0, len(survivor_rates) + len(failed_rates))
    ages = _grid(list(survivor_rates) + list(failed_rates))
    risky = _at_least(ages, list(failed_rates), acks, write_rate, none_of=survivor_rates)
    return float(write_rate * np.trapezoid(np.clip(risky, 0, 1), ages))


def commit_latency_mean_ordered(rates: Sequence[float], acks: int, write_rate: float,
                                local_s: float = 0.0) -> float:
    """Mean commit latency with the log applied in order under Poisson writes: local_s +
    ∫ (1 − F(t)) dt over `commit_cdf`; with ``write_rate`` = 0 and equal rates, H-type sums."""
    if acks == 0:
        return local_s
    ages = _grid(rates)
    return float(local_s + np.trapezoid(1.0 - commit_cdf(ages + local_s, rates, acks,
                                                         write_rate, local_s), ages))


# ---------------------------------------------------------------- plots


LABELS = {"commit_mean_s": "mean commit latency (ms)", "commit_p99_s": "commit p99 (ms)",
          "lost_mean": "acknowledged writes lost per failure",
          "loss_probability": "failures that lose writes", "rpo_mean_s": "mean RPO (ms)",
          "refused_share": "writes refused"}
MILLISECONDS = ("commit_mean_s", "commit_p99_s", "rpo_mean_s")


def plot_sweep(rows: list[dict[str, Any]], x: str, by: str | None = None,
               metrics: Sequence[str] = ("commit_p99_s", "lost_mean"), xlabel: str = "",
               group_label: Callable[[Any], str] = str) -> list:
    """One panel per metric against ``x`` (times in ms), one line per value of ``by``, with
    95 % interval bars (``plots.sweep_panels``)."""
    scaled = []
    for row in rows:
        row = dict(row)
        for m in MILLISECONDS:
            for key in (m, m + "_ci"):
                if key in row:
                    row[key] = row[key] * 1e3
        scaled.append(row)
    return plots.sweep_panels(scaled, x=x, by=by, metrics=metrics, xlabel=xlabel or x,
                              ylabels={m: LABELS[m] for m in metrics}, group_label=group_label,
                              panel_size=(4.2, 3.2))


def plot_dashboard(runs: dict[str, ReplicationRun], bin_s: float = 0.5,
                   metrics: Sequence[str] = ("commit_p99_ms", "replica_lag_ms", "at_risk",
                                             "refused_rps")) -> list:
    """Small multiples over time (``plots.dashboard``), one line per run, the first run's
    slowdown shaded."""
    names = {"commit_p99_ms": "commit p99 (ms)", "replica_lag_ms": "worst replica lag (ms)",
             "at_risk": "acknowledged writes at risk", "refused_rps": "writes refused (per s)"}
    series = {label: timeline(run, bin_s) for label, run in runs.items()}
    first = next(iter(runs.values())).scenario
    windows = [(first.slowdown[1], first.slowdown[2])] if first.slowdown else []
    return plots.dashboard(next(iter(series.values()))["time_s"],
                           {names[m]: {label: v[m] for label, v in series.items()}
                            for m in metrics},
                           windows=windows, window_label="replica slowdown")


# ---------------------------------------------------------------- the protocol lab


class PrimaryBackup(Node):
    """Primary-backup replication of a register store, on the lab's nodes.

    ``ctx.disk["primary"]`` (first ``n1``) takes every request; the others forward theirs to it.
    The primary runs a write or a successful compare-and-set against its latest state, appends
    it to its log and, every ``tick_s``, ships each backup the entries it has not sent yet (an
    empty shipment is the heartbeat). A backup appends them in order and confirms its log
    length (``("ack", epoch, length)``). The primary answers a write once its position is
    acknowledgeable (`acknowledgeable`, the subclasses' rule) and a read once everything logged
    before it is, from the acknowledged state. ``admit`` may refuse a request up front
    (``ctx.fail``: it did not happen).

    Failover: a backup whose ``HeartbeatDetector`` (period ``tick_s``, timeout
    ``detect_timeout_s``) suspects the primary stops accepting its shipments and reports its
    log length to the other backups; once every node but the old primary has reported, each
    promotes the longest log (``promote``; ties to the first node), the winner leads the next
    epoch and ships the others what they lack, and held requests go to it.
    """

    tick_s: float = 0.1
    detect_timeout_s: float = 0.1

    def acknowledgeable(self, ctx: Context) -> int:
        """The highest log position whose writes may be acknowledged now."""
        raise NotImplementedError

    def admit(self, ctx: Context, request: Request) -> bool:
        """Whether the primary takes ``request`` at all (False: answer it ``fail``)."""
        return True

    # -- start, roles

    def on_start(self, ctx: Context) -> None:
        self.ctx = ctx
        ctx.disk.setdefault("log", [])
        ctx.disk.setdefault("epoch", 0)
        ctx.disk.setdefault("primary", ctx.nodes[0])
        self.detector = HeartbeatDetector(self.tick_s, self.detect_timeout_s,
                                          clock=lambda: self.ctx.now)
        self.electing: int | None = None
        self.reports: dict[str, int] = {}
        self.held: list[Request] = []
        if ctx.disk["primary"] == ctx.node_id:
            self._lead(ctx, dict.fromkeys(ctx.peers, 0))
        ctx.set_timer(self.tick_s, "tick")

    def _lead(self, ctx: Context, positions: dict[str, int]) -> None:
        """Become the primary, given what each backup holds."""
        self.acked, self.sent = dict(positions), dict(positions)
        self.heard = dict.fromkeys(ctx.peers, ctx.now)  # when each backup last confirmed
        self.committed, self.registers, self.latest = 0, {}, {}
        self.waiting: dict[int, Request] = {}
        self.reads: list[tuple[int, Request]] = []
        self.logged = set()
        for request_id, key, value in ctx.disk["log"]:
            self.latest[key] = value
            self.logged.add(request_id)
        self.commit(ctx, self.acknowledgeable(ctx))

    def _is_primary(self, ctx: Context) -> bool:
        return ctx.disk["primary"] == ctx.node_id and self.electing is None

    # -- clients

    def on_request(self, ctx: Context, request: Request) -> None:
        if self.electing is not None:
            self.held.append(request)
        elif self._is_primary(ctx):
            self._serve(ctx, request)
        else:
            ctx.send(ctx.disk["primary"], ("forward", request))

    def _serve(self, ctx: Context, request: Request) -> None:
        log = ctx.disk["log"]
        if not self.admit(ctx, request):
            ctx.fail(request)
            return
        if request.f == "read":
            self.reads.append((len(log), request))
            self.commit(ctx, self.acknowledgeable(ctx))
            return
        if request.id in self.logged:  # a copy of a request already in the log
            return
        value = request.value
        if request.f == "cas":
            expected, value = request.value
            if self.latest.get(request.key) != expected:
                ctx.fail(request)
                return
        log.append((request.id, request.key, value))
        self.latest[request.key] = value
        self.logged.add(request.id)
        self.waiting[len(log)] = request
        self.commit(ctx, self.acknowledgeable(ctx))

    def commit(self, ctx: Context, position: int) -> None:
        """Acknowledge the log up to ``position``: apply it, answer its writers and the reads
        waiting for it (a lower position than before changes nothing)."""
        log = ctx.disk["log"]
        while self.committed < min(position, len(log)):
            self.committed += 1
            _, key, value = log[self.committed - 1]
            self.registers[key] = value
            request = self.waiting.pop(self.committed, None)
            if request is not None:
                ctx.reply(request)
        ready = [r for p, r in self.reads if p <= self.committed]
        self.reads = [(p, r) for p, r in self.reads if p > self.committed]
        for request in ready:
            ctx.reply(request, self.registers.get(request.key))

    # -- replication, heartbeats, failover

    def on_timer(self, ctx: Context, name: Any) -> None:
        ctx.set_timer(self.tick_s, "tick")
        if self._is_primary(ctx):
            log = ctx.disk["log"]
            for peer in ctx.peers:
                ctx.send(peer, ("append", ctx.disk["epoch"], self.sent[peer],
                                log[self.sent[peer]:]))
                self.sent[peer] = len(log)
        elif self.electing is None and self.detector.suspected():
            self._elect(ctx, ctx.disk["epoch"] + 1)

    def on_message(self, ctx: Context, src: str, message: tuple) -> None:
        kind, *body = message
        if kind == "forward":
            self.on_request(ctx, body[0])
        elif kind == "append":
            epoch, start, entries = body
            if epoch != ctx.disk["epoch"] or self.electing is not None:
                return  # a deposed primary, or an election under way
            self.detector.heartbeat()
            log = ctx.disk["log"]
            if start <= len(log):
                log.extend(entries[len(log) - start:])
            ctx.send(src, ("ack", epoch, len(log)))
        elif kind == "ack":
            epoch, position = body
            if epoch == ctx.disk["epoch"] and self._is_primary(ctx):
                self.heard[src] = ctx.now
                self.acked[src] = max(self.acked[src], position)
                self.commit(ctx, self.acknowledgeable(ctx))
        elif kind == "report":
            epoch, length = body
            if epoch > ctx.disk["epoch"] and self.electing is None:
                self._elect(ctx, epoch)
            if epoch == self.electing:
                self.reports[src] = length
                self._conclude(ctx)

    def _elect(self, ctx: Context, epoch: int) -> None:
        """Stop following the primary and tell the other backups how long my log is."""
        self.electing, self.reports = epoch, {ctx.node_id: len(ctx.disk["log"])}
        for node in self._voters(ctx):
            if node != ctx.node_id:
                ctx.send(node, ("report", epoch, len(ctx.disk["log"])))
        self._conclude(ctx)

    def _voters(self, ctx: Context) -> list[str]:
        return [n for n in ctx.nodes if n != ctx.disk["primary"]]

    def _conclude(self, ctx: Context) -> None:
        voters = self._voters(ctx)
        if not set(voters) <= set(self.reports):
            return
        winner = promote({n: self.reports[n] for n in voters})
        ctx.disk["epoch"], ctx.disk["primary"] = self.electing, winner
        self.electing = None
        self.detector = HeartbeatDetector(self.tick_s, self.detect_timeout_s,
                                          clock=lambda: self.ctx.now)
        if winner == ctx.node_id:
            self._lead(ctx, {peer: self.reports.get(peer, 0) for peer in ctx.peers})
        held, self.held = self.held, []
        for request in held:
            self.on_request(ctx, request)


class AsyncPrimaryBackup(PrimaryBackup):
    """Acknowledge a write as soon as the primary has logged it; ship it later (asynchronous)."""

    def acknowledgeable(self, ctx: Context) -> int:
        return len(ctx.disk["log"])


class QuorumPrimaryBackup(PrimaryBackup):
    """Acknowledge a write once ``acks`` backups confirmed it ("all": every other node), the
    Level 2 rule `acknowledged_position`."""

    acks: int | str = "all"

    def acknowledgeable(self, ctx: Context) -> int:
        k = len(ctx.peers) if self.acks == "all" else self.acks
        return acknowledged_position(self.acked.values(), k)


class SyncPrimaryBackup(QuorumPrimaryBackup):
    """Synchronous to every backup."""

    acks = "all"


class SemiSyncPrimaryBackup(QuorumPrimaryBackup):
    """Semi-synchronous: one backup's confirmation (with three nodes, a majority has it)."""

    acks = 1


def with_settings(node_class: type, **settings: Any) -> type:
    """A subclass of ``node_class`` with class attributes changed (``tick_s``,
    ``detect_timeout_s``, ``acks``): ``with_settings(SemiSyncPrimaryBackup, acks=2)``."""
    name = node_class.__name__ + "".join(f"_{k}_{v}" for k, v in settings.items())
    return type(name.replace(".", "_"), (node_class,), dict(settings))


def lab_scenario(seed: int, nodes: int = 3, crash: bool = True, n_ops: int = 300,
                 rate: float = 150.0, latency: tuple[Latency, ...] = (Latency(),),
                 extra: tuple = ()) -> LabScenario:
    """The lesson's lab run: ``nodes`` nodes, clients doing reads, writes and compare-and-sets
    on one register (half of them writes), and, with ``crash``, the primary ``n1``
    crash-stopping at a moment drawn from ``seed`` between 25 % and 75 % of the run."""
    check_int("seed", seed, 0)
    at = float(np.random.default_rng([seed, 7]).uniform(0.25, 0.75)) * n_ops / rate
    faults = ((Crash("n1", at),) if crash else ()) + tuple(extra)
    workload = RegisterWorkload(n_ops=n_ops, rate=rate, clients=10, timeout_s=0.3, keys=3,
                                read=0.4, write=0.5, cas=0.1)
    return LabScenario(nodes=nodes, workload=workload, nemesis=Nemesis(faults),
                       latency=latency)
