"""Failover: a standby takes over when the primary fails, after a gap.

Picture a night pharmacy with one pharmacist on duty and colleagues on call. When the one on
duty falls ill, nobody notices at once (the phone just rings unanswered), then someone calls a
colleague in, who needs a while to arrive and open the till. The shop is closed for that gap,
however many colleagues are on call. And if a storm closes the whole street, no number of
colleagues helps: they are all behind the same flood (a correlated failure).

This module holds the availability arithmetic (A = MTTF / (MTTF + MTTR), 1 − (1 − A)^n for n
independent replicas, the cost of the failover gap, and an exact Markov model) and the SimPy
model that checks it, driving the failover manager of ``patterns.resilience.failover``. The
model is built from the toolkit: each replica's life is a ``FaultSchedule`` of outages
(``FaultSchedule.alternating`` from any distributions), its failure detector is the
``HeartbeatDetector`` of the failure-detection lesson, each replica serves requests as a
``ServerPool`` that fails during its outages, traffic is a ``RequestSource`` of
``PoissonArrivals``, and clients may retry with the retry lesson's ``Retrier``.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import simpy

from patterns.checks import check_choice, check_int, check_non_negative, check_positive
from patterns.resilience.failover import (
    FailoverManager,
)
from patterns.resilience.failure_detection import HeartbeatDetector
from patterns.resilience.retry_backoff_jitter import Backoff, Retrier
from simulations.clients import RequestSource
from simulations.distributions import Deterministic, Distribution, Exponential
from simulations.experiments import aggregate
from simulations.experiments import sweep as sweep_grid
from simulations.faults import FaultSchedule, FaultWindow
from simulations.records import Outcome, RequestLog, RequestTable
from simulations.servers import ServerPool
from simulations.workloads import PoissonArrivals

SECONDS_PER_YEAR = 365.25 * 24 * 3600

# ---------------------------------------------------------------- theory


def availability(mttf_s: float, mttr_s: float) -> float:
    """A = MTTF / (MTTF + MTTR): the long-run share of time one replica is up (an alternating
    renewal process; any distributions of up and down times with these means)."""
    mttf = check_positive("mttf_s", mttf_s)
    return mttf / (mttf + check_non_negative("mttr_s", mttr_s))


def parallel_availability(replica_availability: float, replicas: int) -> float:
    """1 − (1 − A)^n: P(at least one of n independent replicas is up). Assumes instant,
    perfect failover and independent failures; the two things this lesson takes away."""
    a = check_positive("replica_availability", replica_availability)
    if a > 1:
        raise ValueError(f"replica_availability must be in (0, 1] (got {a})")
    return 1.0 - (1.0 - a) ** check_int("replicas", replicas, low=1)


def mean_detection_s(heartbeat_s: float, timeout_s: float) -> float:
    """Mean time from a crash to suspicion for a heartbeat detector: the last heartbeat was sent
    a uniform share of a period before the crash, and suspicion starts one period plus the
    timeout after it, so on average heartbeat_s / 2 + timeout_s."""
    return check_positive("heartbeat_s", heartbeat_s) / 2 + check_non_negative("timeout_s",
                                                                                timeout_s)


def failover_unavailability(replicas: int, mttf_s: float, mttr_s: float, gap_s: float,
                            zone_mttf_s: float | None = None,
                            zone_mttr_s: float | None = None) -> float:
    """Unavailability with failover gaps, to first order in gap / MTTF.

    Without gaps the service is down only while every replica is down: U₀ = 1 − A_z(1 − qⁿ),
    q = 1 − A, with A_z the availability of the one zone they all share (1 without zone
    outages). Each loss of the primary (its own failure, at rate (1 − U₀)/MTTF with
    exponential lifetimes, or a zone outage, at rate 1/(MTTF_z + MTTR_z)) adds one gap of mean
    ``gap_s`` (detection + promotion) of downtime: U ≈ U₀ + gap·rate. Neglects a second failure
    during a gap, so it needs gap ≪ MTTF and gap ≪ MTTR.
    """
    n = check_int("replicas", replicas, low=1)
    q = 1.0 - availability(mttf_s, mttr_s)
    gap = check_non_negative("gap_s", gap_s)
    zone_a, zone_rate = 1.0, 0.0
    if zone_mttf_s is not None:
        zone_a = availability(zone_mttf_s, check_positive("zone_mttr_s", zone_mttr_s))
        zone_rate = 1.0 / (zone_mttf_s + zone_mttr_s)
    u0 = 1.0 - zone_a * (1.0 - q**n)
    return min(u0 + gap * ((1.0 - u0) / mttf_s + zone_rate), 1.0)


def markov_availability(replicas: int, mttf_s: float, mttr_s: float, gap_s: float,
                        zone_mttf_s: float | None = None,
                        zone_mttr_s: float | None = None) -> float:
    """Exact availability of active-passive failover as a continuous-time Markov chain.

    Assumptions: exponential lifetimes (mean ``mttf_s``) and repairs (``mttr_s``), independent
    replicas, optionally one shared zone with exponential outages (``zone_mttf_s``,
    ``zone_mttr_s``) that take every replica down; instant detection; a promotion that takes an
    exponential time of mean ``gap_s`` and restarts with another replica if its target fails;
    with no replica up, the first one back is promoted. State: (replicas up on their own, zone
    down?, mode), mode = serving, promoting, or idle (nothing up). Solves πQ = 0, Σπ = 1 and
    returns P(serving).
    """
    n = check_int("replicas", replicas, low=1)
    lam, mu = 1.0 / check_positive("mttf_s", mttf_s), 1.0 / check_positive("mttr_s", mttr_s)
    gap = check_non_negative("gap_s", gap_s)
    zone = zone_mttf_s is not None
    lam_z = 1.0 / check_positive("zone_mttf_s", zone_mttf_s) if zone else 0.0
    mu_z = 1.0 / check_positive("zone_mttr_s", zone_mttr_s) if zone else 0.0

    def after_loss(k: int, zone_down: bool) -> str:
        """Mode after the primary (or promotion target) is lost with k own-up replicas left."""
        if zone_down or k == 0:
            return "idle"
        return "serve" if gap == 0 else "promote"

    def moves(state: tuple[int, bool, str]) -> list[tuple[tuple[int, bool, str], float]]:
        k, zd, mode = state
        out = []
        if mode in ("serve", "promote"):  # here the zone is up and k ≥ 1; one replica is "the" one
            out.append(((k - 1, zd, after_loss(k - 1, zd)), lam))
            if k > 1:
                out.append(((k - 1, zd, mode), (k - 1) * lam))
            if k < n:
                out.append(((k + 1, zd, mode), (n - k) * mu))
            if zone:
                out.append(((k, True, "idle"), lam_z))
            if mode == "promote":
                out.append(((k, zd, "serve"), 1.0 / gap))
        else:  # idle: nothing effectively up
            if k > 0:
                out.append(((k - 1, zd, "idle"), k * lam))
            if k < n:
                out.append(((k + 1, zd, "idle" if zd else after_loss(k + 1, zd)), (n - k) * mu))
            if zone and not zd:
                out.append(((k, True, "idle"), lam_z))
            if zd:
                out.append(((k, False, after_loss(k, False)), mu_z))
        return out

    start = (n, False, "serve")
    index, frontier, edges = {start: 0}, [start], []
    while frontier:
        state = frontier.pop()
        for target, rate in moves(state):
            if target not in index:
                index[target] = len(index)
                frontier.append(target)
            edges.append((index[state], index[target], rate))
    q_matrix = np.zeros((len(index), len(index)))
    for i, j, rate in edges:
        q_matrix[i, j] += rate
        q_matrix[i, i] -= rate
    system = np.vstack([q_matrix.T, np.ones(len(index))])
    rhs = np.zeros(len(index) + 1)
    rhs[-1] = 1.0
    pi = np.linalg.lstsq(system, rhs, rcond=None)[0]
    return float(sum(pi[i] for state, i in index.items() if state[2] == "serve"))


def downtime_per_year_min(service_availability: float) -> float:
    """Minutes of downtime in a year (365.25 days) at this availability."""
    a = check_non_negative("service_availability", service_availability)
    if a > 1:
        raise ValueError(f"service_availability must be in [0, 1] (got {a})")
    return (1.0 - a) * SECONDS_PER_YEAR / 60.0


# ---------------------------------------------------------------- the SimPy study


@dataclass(frozen=True)
class Scenario:
    """Replicas that fail and get repaired, a failover manager, maybe zone outages and traffic.

    Times are seconds. Replicas sit in ``zones`` zones, round robin; with ``zone_ttf`` set, each
    zone has its own outages (up ``zone_ttf``, down ``zone_ttr``), during which all its replicas
    are down together. ``arrival_rate`` = 0 runs no traffic (availability only, fast).
    """

    replicas: int = 3
    ttf: Distribution = field(default_factory=lambda: Exponential(3600.0))  # time to failure
    ttr: Distribution = field(default_factory=lambda: Exponential(600.0))  # time to repair
    heartbeat_s: float = 1.0
    detect_timeout_s: float = 4.0
    promotion: Distribution = field(default_factory=lambda: Deterministic(10.0))
    zones: int = 1
    zone_ttf: Distribution | None = None
    zone_ttr: Distribution = field(default_factory=lambda: Exponential(1800.0))
    arrival_rate: float = 0.0  # requests per second
    service: Distribution = field(default_factory=lambda: Exponential(0.01))
    retry_attempts: int = 1  # attempts per request, the first included
    retry_backoff: Backoff = field(default_factory=lambda: Backoff(1.0, 30.0, "full"))
    horizon_s: float = 1_000_000.0
    seed: int = 1

    def __post_init__(self) -> None:
        check_int("replicas", self.replicas, low=1)
        check_positive("heartbeat_s", self.heartbeat_s)
        check_non_negative("detect_timeout_s", self.detect_timeout_s)
        check_int("zones", self.zones, low=1, high=self.replicas)
        check_non_negative("arrival_rate", self.arrival_rate)
        check_int("retry_attempts", self.retry_attempts, low=1)
        check_positive("horizon_s", self.horizon_s)

    @property
    def mean_gap_s(self) -> float:
        """Mean failover gap: detection (heartbeat / 2 + timeout) plus promotion."""
        return mean_detection_s(self.heartbeat_s, self.detect_timeout_s) + self.promotion.mean


@dataclass(frozen=True, eq=False)
class Run:
    """What one run left behind: when the service was up, every failover, the replicas' and
    zones' outages, and the request log (None without traffic)."""

    scenario: Scenario
    up: np.ndarray  # (k, 2) intervals [start, end) in which the service was up
    history: list[tuple[float, str, str]]  # the manager's (time, event, replica)
    outages: list[list[tuple[float, float]]]  # per replica, merged own + zone outages
    zone_outages: list[list[tuple[float, float]]]
    requests: RequestTable | None

    @property
    def availability(self) -> float:
        return float((self.up[:, 1] - self.up[:, 0]).sum() / self.scenario.horizon_s)

    @property
    def failovers(self) -> int:
        return sum(event == "primary lost" for _, event, _ in self.history)

    def all_down_spans(self) -> list[tuple[float, float]]:
        """When every replica was down at once: no failover can help then."""
        spans = self.outages[0]
        for other in self.outages[1:]:
            spans = intersect_spans(spans, other)
        return spans

    def down_spans(self) -> list[tuple[float, float]]:
        """The service's down intervals, e.g. to shade them on a plot."""
        edges = [0.0, *self.up.ravel(), self.scenario.horizon_s]
        return [(a, b) for a, b in zip(edges[::2], edges[1::2], strict=True) if b > a]


def merge_spans(*span_lists: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """The union of interval lists, as sorted, non-overlapping [start, end) intervals."""
    merged: list[list[float]] = []
    for start, end in sorted(s for spans in span_lists for s in spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def intersect_spans(a: Sequence[tuple[float, float]],
                    b: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The intersection of two sorted, non-overlapping interval lists."""
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


class _Life:
    """One replica's outages and heartbeat grid, queried by time."""

    def __init__(self, spans: list[tuple[float, float]], period_s: float, phase_s: float):
        self.starts = [a for a, _ in spans]
        self.ends = [b for _, b in spans]
        self.period, self.phase = period_s, phase_s

    def down_at(self, t: float) -> int:
        """Index of the outage covering t, or -1."""
        i = bisect_right(self.starts, t) - 1
        return i if i >= 0 and t < self.ends[i] else -1

    def last_heartbeat(self, t: float) -> float:
        """The latest heartbeat sent at or before t (heartbeats go out on the grid while up)."""
        beat = self.phase + math.floor((t - self.phase) / self.period) * self.period
        while (i := self.down_at(beat)) >= 0:
            beat = self.phase + (math.ceil((self.starts[i] - self.phase) / self.period) - 1) \
                * self.period
        return beat

    def next_heartbeat(self, t: float) -> float:
        """The first heartbeat sent after t."""
        beat = self.phase + (math.floor((t - self.phase) / self.period) + 1) * self.period
        while beat <= t or (i := self.down_at(beat)) >= 0:
            if beat <= t:  # rounding put the grid point at or before t
                beat += self.period
                continue
            beat = self.phase + math.ceil((self.ends[i] - self.phase) / self.period) * self.period
        return beat

    def up_between(self, a: float, b: float) -> list[tuple[float, float]]:
        """The parts of [a, b) in which this replica is up."""
        out, t = [], a
        i = bisect_right(self.starts, a) - 1
        i = max(i, 0)
        while t < b:
            if i < len(self.starts) and self.starts[i] <= t < self.ends[i]:
                t = self.ends[i]
                i += 1
                continue
            if i < len(self.starts) and self.starts[i] <= t:
                i += 1
                continue
            nxt = self.starts[i] if i < len(self.starts) else math.inf
            out.append((t, min(nxt, b)))
            t = nxt
        return [(x, y) for x, y in out if y > x]


def _suspicion_change(life: _Life, detector: HeartbeatDetector, now: float) -> float:
    """The next time after ``now`` at which this replica's detector changes its mind."""
    if detector.suspected():
        return life.next_heartbeat(now)
    i = bisect_right(life.starts, now) - 1
    if i < 0 or now >= life.ends[i]:
        i += 1
    for start in life.starts[i:]:  # the next outage long enough to be noticed
        deadline = life.last_heartbeat(start) + detector.period_s + detector.timeout_s
        if life.next_heartbeat(start) > deadline:
            return max(deadline, math.nextafter(now, math.inf))
    return math.inf


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """Run the scenario with SimPy; deterministic for a given ``scenario.seed`` (or ``rng``).

    Every outage, heartbeat phase and promotion time is drawn up front. A controller process
    wakes exactly when a detector changes its mind or a promotion ends, feeds each replica's
    latest heartbeat to the `FailoverManager` (clock ``env.now``) and ticks it. The service is
    up while the manager has a primary that is really up. Requests go to the manager's current
    primary: a ``ServerPool`` per replica that fails during its outages; with no primary a
    request fails at once. A client retries a failed request up to ``retry_attempts`` attempts
    with the ``Retrier``'s backoff, re-reading the primary each time.
    """
    s = scenario
    rng = np.random.default_rng(s.seed) if rng is None else rng
    own = [FaultSchedule.alternating(rng, s.ttf, s.ttr, s.horizon_s).spans()
           for _ in range(s.replicas)]
    zone_spans = [FaultSchedule.alternating(rng, s.zone_ttf, s.zone_ttr, s.horizon_s).spans()
                  if s.zone_ttf is not None else [] for _ in range(s.zones)]
    spans = [merge_spans(own[i], zone_spans[i % s.zones]) for i in range(s.replicas)]
    lives = [_Life(sp, s.heartbeat_s, p) for sp, p in
             zip(spans, rng.uniform(0, s.heartbeat_s, s.replicas), strict=True)]
    promotion_rng = np.random.default_rng(rng.integers(2**63))

    env = simpy.Environment()
    names = [f"r{i}" for i in range(s.replicas)]
    manager = FailoverManager(names, s.heartbeat_s, s.detect_timeout_s, s.promotion.mean,
                              lambda: env.now)
    reigns: list[tuple[float, int]] = [(0.0, 0)]  # (since, primary index or -1)

    def controller():
        while True:
            now = env.now
            for name, life in zip(names, lives, strict=True):
                manager.detectors[name].freshest = life.last_heartbeat(now)
            was_promoting = manager.promoting
            manager.tick()
            if manager.promoting is not None and manager.promoting != was_promoting:
                manager.ready_at = now + float(s.promotion.sample(promotion_rng))
            primary = -1 if manager.primary is None else names.index(manager.primary)
            if primary != reigns[-1][1]:
                reigns.append((now, primary))
            wake = min(_suspicion_change(life, manager.detectors[name], now)
                       for name, life in zip(names, lives, strict=True))
            if manager.promoting is not None:
                wake = min(wake, manager.ready_at)
            if wake >= s.horizon_s:
                return
            yield env.timeout(wake - now)

    env.process(controller())
    requests = None
    if s.arrival_rate > 0:
        requests = _traffic(env, s, rng, manager, names, spans)
    env.run(until=s.horizon_s)
    up = []
    bounds = [*(t for t, _ in reigns[1:]), s.horizon_s]
    for (since, primary), until in zip(reigns, bounds, strict=True):
        if primary >= 0:
            up.extend(lives[primary].up_between(since, until))
    return Run(s, np.array(up, dtype=float).reshape(-1, 2), manager.history, spans,
               zone_spans, None if requests is None else requests.log.table())


def _traffic(env: simpy.Environment, s: Scenario, rng: np.random.Generator,
             manager: FailoverManager, names: list[str],
             spans: list[list[tuple[float, float]]]) -> ServerPool:
    """Poisson requests through a client that retries, to whichever replica is primary."""
    pools = {name: ServerPool(env, None, s.service, rng,
                              faults=FaultSchedule(FaultWindow(a, b, "error") for a, b in sp))
             for name, sp in zip(names, spans, strict=True)}
    retrier = Retrier(s.retry_attempts, s.retry_backoff, rand=rng.random)

    def attempt():
        if manager.primary is None:  # no primary to talk to: refused at once
            return Outcome.ERROR
        return (yield pools[manager.primary].call())

    def request(_key: int, _cls: int):
        attempts, wait = 0, 0.0
        while True:
            attempts += 1
            outcome = yield from attempt()
            if outcome == Outcome.OK:
                return outcome
            wait = retrier.next_wait(attempts, wait)
            if wait is None:
                return outcome
            yield env.timeout(wait)

    front = ServerPool(env, None, request, log=RequestLog(int(s.arrival_rate * s.horizon_s * 1.1)
                                                          + 16))
    RequestSource(env, PoissonArrivals(s.arrival_rate), front.submit, rng, horizon_s=s.horizon_s)
    return front


# ---------------------------------------------------------------- metrics, sweeps and plots


def summary(run: Run) -> dict[str, float]:
    """Headline numbers: availability (share of time up), downtime per year at that rate,
    failovers, and, with traffic, the share of requests that succeeded (after any retries)."""
    out = {
        "availability": run.availability,
        "downtime_min_per_year": downtime_per_year_min(run.availability),
        "failovers": float(run.failovers),
    }
    if run.requests is not None:
        out["success_rate"] = float(run.requests.has(Outcome.OK).mean()) if len(
            run.requests) else math.nan
    return out


SETTINGS = ("replicas", "heartbeat_s", "detect_timeout_s", "promotion", "zones", "zone_ttf",
            "ttf", "ttr", "retry_attempts", "arrival_rate")
METRICS = ("availability", "downtime_min_per_year", "failovers", "success_rate")


def sweep(base: Scenario, replications: int = 5, **grid: Sequence[Any]) -> list[dict[str, Any]]:
    """Run ``base`` at every combination of the ``grid`` (Scenario field -> values) with
    ``replications`` seeded runs each (the toolkit's ``sweep``), and ``aggregate`` the
    `summary`: one row per setting with each metric's mean and 95 % t-interval half-width
    (``<metric>_ci``)."""
    for name in grid:
        check_choice("sweep setting", name, SETTINGS)

    def model(rng: np.random.Generator, **settings: Any) -> dict[str, float]:
        return summary(simulate(replace(base, **settings), rng))

    rows = sweep_grid(model, grid, seed=base.seed, replications=replications)
    metrics = [m for m in METRICS if m in rows[0]]
    return aggregate(rows, by=list(grid), metrics=metrics)


def timeline(run: Run, start_s: float, end_s: float, bin_s: float) -> dict[str, np.ndarray]:
    """Per-bin metrics over [start_s, end_s): the share of each bin the service was up, the
    request success rate (requests arriving in the bin), failed requests per second, and which
    replica was primary at the bin's start (-1: none)."""
    edges = np.arange(start_s, end_s + bin_s / 2, bin_s)
    lo, hi = edges[:-1], edges[1:]
    up = np.array([np.clip(np.minimum(run.up[:, 1], b) - np.maximum(run.up[:, 0], a), 0, None)
                   .sum() / (b - a) for a, b in zip(lo, hi, strict=True)])
    out = {"time_s": lo + bin_s / 2, "up_share": up}
    if run.requests is not None:
        r = run.requests
        which = np.digitize(r.arrival, edges) - 1
        inside = (which >= 0) & (which < len(lo))
        ok = np.bincount(which[inside], r.has(Outcome.OK)[inside], len(lo))
        total = np.bincount(which[inside], minlength=len(lo))
        out["success_rate"] = np.divide(ok, total, out=np.full(len(lo), np.nan),
                                        where=total > 0)
        out["failed_rps"] = (total - ok) / bin_s
    return out


LABELS = {
    "up_share": "service up (share of bin)",
    "success_rate": "request success rate",
    "failed_rps": "failed requests (req/s)",
}


def plot_dashboard(runs: dict[str, Run], start_s: float, end_s: float, bin_s: float = 10.0,
                   metrics: Sequence[str] = ("up_share", "success_rate", "failed_rps")) -> list:
    """Small multiples over time (``plots.dashboard``) for [start_s, end_s), one line per run,
    the first run's service outages shaded."""
    from simulations import plots

    for metric in metrics:
        check_choice("metric", metric, LABELS)
    series = {label: timeline(run, start_s, end_s, bin_s) for label, run in runs.items()}
    first = next(iter(runs.values()))
    windows = [(max(a, start_s), min(b, end_s)) for a, b in first.down_spans()
               if b > start_s and a < end_s]
    return plots.dashboard(
        next(iter(series.values()))["time_s"],
        {LABELS[m]: {label: values[m] for label, values in series.items()} for m in metrics},
        windows=windows, window_label="service down",
    )


def plot_availability(rows: dict[str, list[dict[str, Any]]],
                      theory: dict[str, Sequence[float]] | None = None, ax: Any = None) -> Any:
    """Unavailability (log scale) against the number of replicas: simulated rows (from
    `sweep` over ``replicas``, with 95 % intervals) per label, and theory curves."""
    from simulations import plots

    ax = plots.new_axes(ax, figsize=(6.4, 4.0))
    for style, (label, values) in zip(("--", ":", "-."), (theory or {}).items(), strict=False):
        ax.plot(range(1, len(values) + 1), [1 - v for v in values],
                **{**plots.THEORY, "linestyle": style}, label=label)
    for label, table in rows.items():
        n = [row["replicas"] for row in table]
        u = [1 - row["availability"] for row in table]
        ax.errorbar(n, u, yerr=[row["availability_ci"] for row in table], fmt="o", capsize=3,
                    label=label)
    plots.log_scale(ax, "y")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("replicas n")
    ax.set_ylabel("unavailability 1 − A (share of time down)")
    ax.legend(fontsize="small")
    return ax
