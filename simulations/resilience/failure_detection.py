"""The failure-detection study: heartbeats over a jittery network, and a process that crashes.

Picture a lighthouse keeper who flashes a lamp every η seconds towards the harbour master.
Fog delays some flashes; now and then one is missed. The harbour master must decide when the
keeper is gone: wait long after a missing flash and a real collapse is noticed late; decide
quickly and every foggy night raises a false alarm. This module measures both sides of that
trade (detection time and false suspicions) for a fixed-timeout detector and the φ accrual
detector, and holds the closed forms it is checked against.

Built from the toolkit: network delays are a constant plus a ``Distribution``; the crash, a
congested stretch of network and a partition are ``FaultWindow``s of one ``FaultSchedule``
(``hang`` from the crash on: the sender is silent; ``slow``: delays are stretched; ``error``:
heartbeats are dropped); each heartbeat is a row of a ``RequestLog`` (sent = ``arrival``,
received = ``end``), so ``simulations.metrics`` bins them; sweeps use
``simulations.experiments``. The failover study adds a primary and a backup ``ServerPool``
called through ``Client``s with a timeout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import simpy
from numpy.polynomial.hermite_e import hermegauss

from patterns.checks import (
    check_choice,
    check_int,
    check_non_negative,
    check_positive,
    check_probability,
)
from patterns.resilience.failure_detection import (
    HeartbeatDetector,
    PhiAccrualDetector,
    normal_tail_z,
)
from simulations.clients import Client, RequestSource
from simulations.distributions import Distribution, LogNormal, survival
from simulations.experiments import aggregate
from simulations.experiments import sweep as sweep_grid
from simulations.faults import FaultSchedule, FaultWindow
from simulations.metrics import latency_over_time, per_bin, rate_over_time
from simulations.records import Outcome, RequestLog, RequestTable
from simulations.servers import ServerPool
from simulations.workloads import PoissonArrivals

__all__ = [
    "DETECTORS", "FailoverRun", "HeartbeatLink", "Run", "Scenario", "delay_survival",
    "failover_summary",
    "mean_detection_time_s", "mistake_rate", "phi_mean_detection_time_s", "phi_mistake_rate",
    "plot_dashboard", "plot_tradeoff", "simulate", "simulate_failover", "summary", "sweep",
    "timeline", "worst_detection_time_s",
]

DETECTORS = ("timeout", "arrival-timeout", "phi")
"""``timeout``: Chen et al.'s NFD-S (send timestamps, synchronised clocks); ``arrival-timeout``:
the same rule timed from arrivals; ``phi``: the φ accrual detector."""


@dataclass(frozen=True)
class Scenario:
    """One monitored process. Times in seconds.

    Heartbeat i is sent at i·``period_s`` until the crash; its delay is ``base_delay_s`` plus a
    draw of ``jitter`` (stretched inside ``slow`` windows), and it is lost with probability
    ``loss_probability`` (or always inside ``error`` windows). The crash is a ``hang`` window from
    ``crash_at_s`` on (None: no crash). ``faults`` adds network trouble. Mistakes are counted
    after ``warmup_s`` (the φ detector needs a window of real samples).
    """

    period_s: float = 1.0
    timeout_s: float = 0.5
    detector: str = "timeout"
    phi_threshold: float = 8.0
    window: int = 200
    min_std_s: float = 0.01
    base_delay_s: float = 0.01
    jitter: Distribution = field(default_factory=lambda: LogNormal(0.1, 4.0))
    loss_probability: float = 0.0
    crash_at_s: float | None = 3600.5
    duration_s: float = 3630.0
    faults: tuple[FaultWindow, ...] = ()
    warmup_s: float = 60.0
    seed: int = 1

    def __post_init__(self) -> None:
        check_positive("period_s", self.period_s)
        check_non_negative("timeout_s", self.timeout_s)
        check_choice("detector", self.detector, DETECTORS)
        check_positive("phi_threshold", self.phi_threshold)
        check_int("window", self.window, 2)
        check_non_negative("min_std_s", self.min_std_s)
        check_non_negative("base_delay_s", self.base_delay_s)
        if not isinstance(self.jitter, Distribution):
            raise ValueError(f"jitter must be a Distribution (got {self.jitter!r})")
        check_probability("loss_probability", self.loss_probability)
        check_positive("duration_s", self.duration_s)
        if self.crash_at_s is not None:
            check_non_negative("crash_at_s", self.crash_at_s)
        check_non_negative("warmup_s", self.warmup_s)

    def schedule(self) -> FaultSchedule:
        crash = () if self.crash_at_s is None else (FaultWindow(self.crash_at_s, math.inf, "hang"),)
        return FaultSchedule([*self.faults, *crash])


class HeartbeatLink:
    """Sender, network and monitor of one scenario inside a SimPy environment.

    ``suspected`` is the monitor's current verdict; ``suspicions`` lists (start, end) of every
    suspicion period (end None while it lasts); ``log`` holds one row per heartbeat; ``peaks``
    the φ (or the age relative to the deadline, for timeouts) just before each arrival.
    """

    def __init__(self, env: simpy.Environment, scenario: Scenario,
                 rng: np.random.Generator) -> None:
        s = self.scenario = scenario
        self.env = env
        self.faults = s.schedule()
        n = int(s.duration_s / s.period_s) + 1
        self._delays = s.base_delay_s + np.asarray(s.jitter.sample(rng, n), dtype=float)
        self._lost = rng.random(n) < s.loss_probability
        self.log = RequestLog(n)
        self.detector = self._make_detector()
        self.suspicions: list[tuple[float, float | None]] = []
        self.peaks: list[tuple[float, float]] = []
        self._inbox = simpy.Store(env)
        env.process(self._send(n))
        env.process(self._watch())

    def _make_detector(self) -> HeartbeatDetector | PhiAccrualDetector:
        s, clock = self.scenario, (lambda: self.env.now)
        if s.detector == "phi":
            return PhiAccrualDetector(s.phi_threshold, s.window, s.min_std_s, s.period_s, clock)
        return HeartbeatDetector(s.period_s, s.timeout_s, clock)

    @property
    def suspected(self) -> bool:
        return bool(self.suspicions) and self.suspicions[-1][1] is None

    def _send(self, n: int):
        env, s = self.env, self.scenario
        for i in range(n):
            yield env.timeout(i * s.period_s - env.now)
            window = self.faults.active(env.now)
            if window is not None and window.kind == "hang":
                return  # crashed: silent from now on
            row = self.log.add(env.now, key=i)
            self.log.started(row, env.now)
            if self._lost[i] or (window is not None and window.kind == "error"):
                continue  # the row stays IN_FLIGHT: never received
            delay = self._delays[i]
            if window is not None and window.kind == "slow":
                delay = delay * window.slow_factor + window.slow_add_s
            env.timeout(delay).callbacks.append(lambda _, row=row: self._inbox.put(row))

    def _watch(self):
        env, detector = self.env, self.detector
        get = None
        while True:
            if get is None:
                get = self._inbox.get()
            if not self.suspected:
                yield get | env.timeout(max(detector.deadline() - env.now, 0.0))
                if not get.triggered:  # the deadline came first
                    self.suspicions.append((env.now, None))
                    continue
            else:
                yield get
            row, get = get.value, None
            self.log.finished(row, env.now, Outcome.OK)
            if isinstance(detector, PhiAccrualDetector):
                self.peaks.append((env.now, detector.phi()))
                detector.heartbeat()
            else:
                self.peaks.append((env.now, env.now - detector.deadline()))
                detector.heartbeat(self.log.arrival[row] if self.scenario.detector == "timeout"
                                   else None)
            if self.suspected and env.now < detector.deadline():
                self.suspicions[-1] = (self.suspicions[-1][0], env.now)


@dataclass
class Run:
    """What one simulation left behind."""

    scenario: Scenario
    heartbeats: RequestTable
    suspicions: list[tuple[float, float | None]]
    peaks: np.ndarray  # (time, φ or deadline lateness) just before each arrival


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """Run the scenario; deterministic for a given ``scenario.seed`` (or ``rng``). Every delay
    and loss is drawn up front, so detectors compared on one seed see the same network."""
    rng = np.random.default_rng(scenario.seed) if rng is None else rng
    env = simpy.Environment()
    link = HeartbeatLink(env, scenario, rng)
    env.run(until=scenario.duration_s)
    return Run(scenario, link.log.table(), list(link.suspicions),
               np.array(link.peaks, dtype=float).reshape(-1, 2))


# ---------------------------------------------------------------- metrics from the records

def summary(run: Run) -> dict[str, float]:
    """Detection time after the crash, and the false suspicions between warm-up and crash.

    ``mistakes``: suspicions that started after warm-up and ended before the crash (a trusted
    process wrongly suspected); ``mistake_rate_per_h``; ``suspected_fraction``: the share of
    that healthy time spent wrongly suspected; ``mean_mistake_s``: how long a mistake lasts;
    ``detection_s``: from the crash to the start of the suspicion that never ends (NaN without
    a crash, 0 if a false suspicion was already running).
    """
    s = run.scenario
    healthy_end = s.duration_s if s.crash_at_s is None else s.crash_at_s
    span = healthy_end - s.warmup_s
    mistakes = [(a, b) for a, b in run.suspicions
                if a >= s.warmup_s and b is not None and b <= healthy_end]
    durations = np.array([b - a for a, b in mistakes])
    detection = math.nan
    if s.crash_at_s is not None and run.suspicions and run.suspicions[-1][1] is None:
        detection = max(run.suspicions[-1][0] - s.crash_at_s, 0.0)
    return {
        "detection_s": detection,
        "mistakes": float(len(mistakes)),
        "mistake_rate_per_h": 3600.0 * len(mistakes) / span,
        "suspected_fraction": float(durations.sum() / span),
        "mean_mistake_s": float(durations.mean()) if len(durations) else math.nan,
        "heartbeats_per_s": 1.0 / s.period_s,
    }


def timeline(run: Run, bin_s: float = 10.0) -> dict[str, np.ndarray]:
    """Per-bin metrics for a dashboard: heartbeats received per second, p99 heartbeat delay,
    the largest φ (or deadline lateness) seen before an arrival, and the share of the bin
    spent suspecting."""
    end = run.scenario.duration_s
    table = run.heartbeats
    ok = table.has(Outcome.OK)
    mids, received = rate_over_time(table.end[ok], bin_s, 0.0, end)
    _, p99 = latency_over_time(table, bin_s, 0.0, end, 99.0)
    _, peak = per_bin(run.peaks[:, 0], run.peaks[:, 1], bin_s, 0.0, end, np.max)
    edges = np.append(mids - bin_s / 2, end)
    suspected = np.zeros(len(mids))
    for a, b in run.suspicions:
        b = end if b is None else b
        overlap = np.clip(np.minimum(edges[1:], b) - np.maximum(edges[:-1], a), 0.0, None)
        suspected += overlap / np.diff(edges)
    return {"time_s": mids, "received_per_s": received, "p99_delay_s": p99, "peak": peak,
            "suspected": suspected}


# ---------------------------------------------------------------- closed forms

def delay_survival(scenario: Scenario, x: float) -> float:
    """P(D > x) for one heartbeat on a healthy network: lost (an infinite delay) or late."""
    s = scenario
    late = survival(s.jitter, x - s.base_delay_s) if x >= s.base_delay_s else 1.0
    return s.loss_probability + (1.0 - s.loss_probability) * late


def worst_detection_time_s(period_s: float, timeout_s: float) -> float:
    """NFD-S detects a crash at most η + δ after it: the worst case, a crash just after a send."""
    return check_positive("period_s", period_s) + check_non_negative("timeout_s", timeout_s)


def mean_detection_time_s(period_s: float, timeout_s: float) -> float:
    """NFD-S: a crash at time t between sends σ_k < t ≤ σ_k + η is suspected from
    σ_k + η + δ on, whatever the delays, so T_D = η + δ − (t − σ_k). For a crash at a uniformly
    random moment of the period, E[T_D] = δ + η/2 (and T_D lies in [δ, η + δ))."""
    return check_non_negative("timeout_s", timeout_s) + check_positive("period_s", period_s) / 2


def mistake_rate(scenario: Scenario) -> float:
    """False suspicions per second of NFD-S on a healthy network, exactly, for independent and
    identically distributed delays (and losses).

    Suspicion can only start at a freshness point τ_i = σ_i + δ, and does when no heartbeat
    m_j with j ≥ i has arrived by then (m_{i+k} is sent kη later, so it needs D ≤ δ − kη) while
    m_{i−1} had arrived (D ≤ η + δ), or the process would already be suspected:

        λ_M = (1/η) · P(D ≤ η + δ) · Π_{k ≥ 0, kη < δ} P(D > δ − kη)

    For δ < η this is (1/η) P(D > δ) P(D ≤ η + δ) ≈ (1/η) P(D > δ).
    """
    s = scenario
    eta, delta = s.period_s, s.timeout_s
    product, k = 1.0, 0
    while k * eta < delta or k == 0:
        product *= delay_survival(s, delta - k * eta)
        k += 1
    return (1.0 - delay_survival(s, eta + delta)) * product / eta


def _interarrival_std(scenario: Scenario) -> float:
    """Standard deviation of the gap between arrivals: √2 · sd(D) for independent delays."""
    return math.sqrt(2.0 * scenario.jitter.scv) * scenario.jitter.mean


def phi_mean_detection_time_s(scenario: Scenario) -> float:
    """φ detector, with its window's mean and deviation equal to the true η and √2·sd(D):
    suspicion starts z·σ after the next heartbeat was due, so E[T_D] = E[D] + η/2 + z·σ
    (z from the threshold: P(Z > z) = 10^-Φ)."""
    s = scenario
    std = max(_interarrival_std(s), s.min_std_s)
    return s.base_delay_s + s.jitter.mean + s.period_s / 2 + normal_tail_z(s.phi_threshold) * std


def phi_mistake_rate(scenario: Scenario, nodes: int = 80) -> float:
    """φ detector false suspicions per second: (1/η) P(D' − D > z·σ) for two independent
    delays (no loss, no reordering, window statistics equal to the true ones), computed by
    Gauss–Hermite quadrature over the log-normal D. Compare with the normal model's promise
    10^-Φ / η: real delay differences are not normal, so the promise can be far off."""
    s = scenario
    if not isinstance(s.jitter, LogNormal):
        raise ValueError(f"phi_mistake_rate needs a LogNormal jitter (got {s.jitter!r})")
    c = normal_tail_z(s.phi_threshold) * max(_interarrival_std(s), s.min_std_s)
    z, weights = hermegauss(check_int("nodes", nodes, 2))
    first = np.exp(s.jitter.mu + s.jitter.sigma * z)
    tail = np.array([survival(s.jitter, d + c) for d in first])
    return float(weights @ tail / math.sqrt(2 * math.pi)) / s.period_s


# ---------------------------------------------------------------- sweeps and plots

SWEEP_METRICS = ("detection_s", "mistake_rate_per_h", "suspected_fraction", "heartbeats_per_s")
SETTINGS = {"period_s": "heartbeat period η (s)", "timeout_s": "timeout δ (s)",
            "phi_threshold": "φ threshold Φ", "window": "φ window (heartbeats)",
            "loss_probability": "loss probability"}


def sweep(base: Scenario, replications: int = 1, **grid: Sequence[Any]) -> list[dict[str, Any]]:
    """Run ``base`` at every combination of the scenario settings in ``grid`` with the
    toolkit's ``sweep``; one row per setting with each metric's mean and 95 % half-width."""
    for name in grid:
        check_choice("sweep setting", name, SETTINGS)

    def model(rng: np.random.Generator, **settings: Any) -> dict[str, float]:
        return summary(simulate(replace(base, **settings), rng))

    rows = sweep_grid(model, grid, seed=base.seed, replications=replications)
    return aggregate(rows, by=list(grid), metrics=SWEEP_METRICS)


def plot_tradeoff(curves: dict[str, list[dict[str, Any]]],
                  theory: dict[str, tuple[Sequence[float], Sequence[float]]] | None = None):
    """Mean detection time (x) against false suspicions per hour (y, log), one line per
    detector family (rows of `sweep`), each point labelled with the setting it swept."""
    from simulations import plots

    def label(row: dict[str, Any]) -> str:
        return ", ".join(f"{row[name]:g}" for name in SETTINGS if name in row)

    ax = plots.tradeoff(
        {name: ([r["detection_s"] for r in rows], [r["mistake_rate_per_h"] for r in rows])
         for name, rows in curves.items()},
        xlabel="mean detection time after a crash (s)",
        ylabel="false suspicions per hour",
        annotations={name: [label(r) for r in rows] for name, rows in curves.items()},
    )
    for name, (x, y) in (theory or {}).items():
        ax.plot(x, y, label=name, **plots.THEORY)
    plots.log_scale(ax, "y")
    ax.legend(fontsize="small")
    return ax


def plot_dashboard(runs: dict[str, Run], bin_s: float = 10.0) -> list:
    """Heartbeats received, p99 delay, and the share of time each detector suspects, over
    time; the first run's fault windows (network trouble, the crash) shaded."""
    from simulations import plots

    lines = {name: timeline(run, bin_s) for name, run in runs.items()}
    first = next(iter(lines.values()))
    windows = [(a, min(b, first["time_s"][-1] + bin_s / 2))
               for a, b in next(iter(runs.values())).scenario.schedule().spans()]
    panels = {
        "heartbeats received (1/s)": {n: t["received_per_s"] for n, t in lines.items()},
        "p99 heartbeat delay (s)": {n: t["p99_delay_s"] for n, t in lines.items()},
        "time suspected (share)": {n: t["suspected"] for n, t in lines.items()},
    }
    return plots.dashboard(first["time_s"], panels, windows=windows,
                           window_label="network trouble / crash")


# ---------------------------------------------------------------- integration: failover

@dataclass
class FailoverRun:
    """Requests routed to a primary (or to the backup while the primary is suspected)."""

    scenario: Scenario
    requests: RequestTable  # as the callers saw them (Client log)
    to_backup: np.ndarray  # per request: was it sent to the backup?
    suspicions: list[tuple[float, float | None]]


def simulate_failover(scenario: Scenario, arrival_rate: float = 20.0, call_timeout_s: float = 1.0,
                      detect: bool = True, rng: np.random.Generator | None = None) -> FailoverRun:
    """Traffic to a primary service that crashes with the heartbeat sender at ``crash_at_s``.

    A router sends each request to the primary unless the detector suspects it (then to a
    backup pool). Both pools are ``ServerPool``s (log-normal service, mean 20 ms); the crashed
    primary hangs, so a request sent to it fails only when the caller's ``Client`` times out.
    ``detect=False`` never fails over.
    """
    rate = check_positive("arrival_rate", arrival_rate)
    rng = np.random.default_rng(scenario.seed) if rng is None else rng
    env = simpy.Environment()
    link = HeartbeatLink(env, scenario, rng)
    service = LogNormal(0.02, 1.0)
    primary = ServerPool(env, None, service, rng, faults=scenario.schedule())
    backup = ServerPool(env, None, service, rng)
    callers = Client(env, _Router(link if detect else None, primary, backup), call_timeout_s)
    RequestSource(env, PoissonArrivals(rate), callers.call, rng, horizon_s=scenario.duration_s)
    env.run(until=scenario.duration_s)
    table = callers.log.table()
    return FailoverRun(scenario, table, np.isin(np.arange(len(table)), callers.service.diverted),
                       list(link.suspicions) if detect else [])


class _Router:
    """A ``Service`` that picks the primary or, while it is suspected, the backup."""

    def __init__(self, link: HeartbeatLink | None, primary: ServerPool, backup: ServerPool):
        self.link, self.primary, self.backup = link, primary, backup
        self.calls = 0
        self.diverted: list[int] = []

    def call(self, key: int = -1, cls: int = -1):
        index, self.calls = self.calls, self.calls + 1
        if self.link is not None and self.link.suspected:
            self.diverted.append(index)
            return self.backup.call(key, cls)
        return self.primary.call(key, cls)


def failover_summary(run: FailoverRun) -> dict[str, float]:
    """Failed calls after the crash (timeouts), calls sent to the backup while the primary was
    healthy (needless failovers), and the detection time."""
    s, r = run.scenario, run.requests
    crash = s.crash_at_s if s.crash_at_s is not None else s.duration_s
    after = r.arrival >= crash
    done = ~np.isnan(r.end)
    return {
        "failed_after_crash": int((after & done & ~r.has(Outcome.OK)).sum()),
        "calls_after_crash": int((after & done).sum()),
        "needless_backup_calls": int((run.to_backup & (r.arrival < crash)).sum()),
        "failovers_before_crash": sum(1 for a, b in run.suspicions if b is not None and b <= crash),
    }
