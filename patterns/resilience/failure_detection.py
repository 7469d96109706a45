"""Heartbeat failure detectors: a fixed timeout, and the φ accrual detector.

Picture a night watchman who phones the lighthouse keeper, and the keeper rings back every hour
on the hour. If the call is late the watchman must decide: is the keeper asleep, or is the line
just slow tonight? A fixed rule ("worried once the call is 10 minutes late") is simple but the
same in calm and stormy weather. An accrual detector keeps a notebook of how late past calls
were and says how *surprised* it is by the silence so far: φ = 3 means "a silence this long
happens once in a thousand calls", φ = 8 once in a hundred million.

Time comes from an injectable ``clock`` (a callable returning seconds), so the same classes run
in real time (``time.monotonic``), in a test with a hand-moved clock, and inside SimPy
(``clock=lambda: env.now``). Each detector answers ``deadline()``: the moment it will start
suspecting if no further heartbeat arrives, which lets a simulation wait for that moment
instead of polling.

- ``HeartbeatDetector``: suspect once the freshest heartbeat is older than one period plus a
  timeout. Given the send times (synchronised clocks) it is Chen, Toueg and Aguilera's NFD-S;
  given arrival times only, it is the "no heartbeat for period + pause" rule many systems use.
- ``PhiAccrualDetector``: Hayashibara et al.'s φ, from a normal fit to recent inter-arrival
  times, computed exactly with ``math.erfc``.
- ``DetectorConfig`` / ``FailureDetectorRegistry``: the production version, many monitored
  members, validated settings (Akka's documented defaults), a lock, logging, listeners,
  counters and a histogram of inter-arrival times.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from statistics import NormalDist

from patterns.checks import check_int, check_non_negative, check_positive, check_range
from patterns.metrics import Instruments

__all__ = [
    "DetectorConfig",
    "FailureDetectorRegistry",
    "HeartbeatDetector",
    "PhiAccrualDetector",
    "normal_tail_z",
    "phi_exact",
    "phi_logistic",
]

log = logging.getLogger(__name__)

Clock = Callable[[], float]
_LN10 = math.log(10.0)


# ---------------------------------------------------------------- the φ arithmetic

def phi_exact(elapsed_s: float, mean_s: float, std_s: float) -> float:
    """φ = -log10 P(X > elapsed) for X ~ Normal(mean, std²), as Hayashibara et al. define it.

    P(X > x) = erfc(z / √2) / 2 with z = (x - mean) / std. Far in the tail erfc underflows to
    0 (z above about 38), so there the leading term of its asymptotic series is used instead:
    log erfc(u) ≈ -u² - log(u √π).
    """
    std = check_positive("std_s", std_s)
    u = (elapsed_s - mean_s) / (std * math.sqrt(2.0))
    tail = 0.5 * math.erfc(u)
    if tail > 1e-300:
        return -math.log10(tail)
    return (u * u + math.log(u * math.sqrt(math.pi)) + math.log(2.0)) / _LN10


def phi_logistic(elapsed_s: float, mean_s: float, std_s: float) -> float:
    """φ with the logistic approximation of the normal CDF that Akka and Cassandra-style
    implementations use: F(z) ≈ 1 / (1 + exp(-z (1.5976 + 0.070566 z²)))."""
    std = check_positive("std_s", std_s)
    z = (elapsed_s - mean_s) / std
    e = math.exp(-z * (1.5976 + 0.070566 * z * z))
    tail = e / (1.0 + e) if z > 0 else 1.0 - 1.0 / (1.0 + e)
    return -math.log10(tail) if tail > 0 else math.inf


def normal_tail_z(threshold: float) -> float:
    """The z at which φ reaches ``threshold``: P(Z > z) = 10^-threshold (z = 5.61 for φ = 8)."""
    threshold = check_range("threshold", threshold, 0.0, 300.0, low_open=True)
    return -NormalDist().inv_cdf(10.0 ** -threshold)


# ---------------------------------------------------------------- the small versions (Level 2)

class HeartbeatDetector:
    """Suspect once the freshest heartbeat is older than ``period_s + timeout_s``.

    ``heartbeat(sent_at)`` with the sender's timestamp gives Chen et al.'s NFD-S (it needs
    synchronised clocks): trust lasts until ``freshest send time + period + timeout``, so a
    crash is detected at most ``period + timeout`` after it happens. ``heartbeat()`` without a
    timestamp uses the arrival time instead (no clock sync needed; detection then also waits
    for the last heartbeat's network delay). The detector trusts from its creation.
    """

    def __init__(self, period_s: float, timeout_s: float, clock: Clock = time.monotonic) -> None:
        self.period_s = check_positive("period_s", period_s)
        self.timeout_s = check_non_negative("timeout_s", timeout_s)
        self.clock = clock
        self.freshest = clock()

    def heartbeat(self, sent_at: float | None = None) -> None:
        """A heartbeat arrived; ``sent_at`` is its send time, if the clocks are synchronised."""
        stamp = self.clock() if sent_at is None else sent_at
        self.freshest = max(self.freshest, stamp)

    def deadline(self) -> float:
        """The time at which suspicion starts if no fresher heartbeat arrives."""
        return self.freshest + self.period_s + self.timeout_s

    def suspected(self) -> bool:
        return self.clock() >= self.deadline()


class PhiAccrualDetector:
    """Hayashibara et al.'s φ accrual detector over the last ``window`` inter-arrival times.

    φ(now) = -log10 P(X > now - last arrival), X normal with the window's mean and standard
    deviation (at least ``min_std_s``, so a very regular heartbeat does not make every small
    delay look impossible). Suspect when φ ≥ ``threshold``. Before real samples exist the
    window is seeded, as Akka does, with two intervals ``first_interval_s ± first_interval_s / 4``.
    """

    def __init__(self, threshold: float = 8.0, window: int = 1000, min_std_s: float = 0.1,
                 first_interval_s: float = 1.0, clock: Clock = time.monotonic) -> None:
        self.threshold = check_range("threshold", threshold, 0.0, 300.0, low_open=True)
        self.window = check_int("window", window, 2)
        self.min_std_s = check_non_negative("min_std_s", min_std_s)
        first = check_positive("first_interval_s", first_interval_s)
        self.clock = clock
        self.intervals: deque[float] = deque()
        self.total = self.total_sq = 0.0
        for seed in (first - first / 4, first + first / 4):
            self._add(seed)
        self.last = clock()
        self._z = normal_tail_z(self.threshold)

    def _add(self, interval: float) -> None:
        if len(self.intervals) == self.window:
            old = self.intervals.popleft()
            self.total -= old
            self.total_sq -= old * old
        self.intervals.append(interval)
        self.total += interval
        self.total_sq += interval * interval

    def heartbeat(self) -> None:
        now = self.clock()
        self._add(now - self.last)
        self.last = now

    def stats(self) -> tuple[float, float]:
        """(mean, standard deviation) of the window, the deviation floored at ``min_std_s``."""
        n = len(self.intervals)
        mean = self.total / n
        variance = max(self.total_sq / n - mean * mean, 0.0)
        return mean, max(math.sqrt(variance), self.min_std_s)

    def phi(self) -> float:
        mean, std = self.stats()
        return phi_exact(self.clock() - self.last, mean, std)

    def deadline(self) -> float:
        """When φ reaches the threshold if no heartbeat arrives: last + mean + z·std."""
        mean, std = self.stats()
        return self.last + mean + self._z * std

    def suspected(self) -> bool:
        return self.phi() >= self.threshold


# ---------------------------------------------------------------- production-grade (Level 3)

@dataclass(frozen=True)
class DetectorConfig:
    """φ detector settings; the defaults are Akka Cluster's documented ones (threshold 8,
    1000 samples, 100 ms minimum deviation, 3 s acceptable pause, 1 s heartbeat interval)."""

    threshold: float = 8.0
    max_sample_size: int = 1000
    min_std_deviation_s: float = 0.1
    acceptable_heartbeat_pause_s: float = 3.0
    heartbeat_interval_s: float = 1.0

    def __post_init__(self) -> None:
        name = "DetectorConfig."
        check_range(name + "threshold", self.threshold, 0.0, 300.0, low_open=True)
        check_int(name + "max_sample_size", self.max_sample_size, low=2)
        check_positive(name + "min_std_deviation_s", self.min_std_deviation_s)
        check_non_negative(name + "acceptable_heartbeat_pause_s", self.acceptable_heartbeat_pause_s)
        check_positive(name + "heartbeat_interval_s", self.heartbeat_interval_s)


Listener = Callable[[str, bool, float], None]  # (member, now suspected?, time)


class _PausedPhi(PhiAccrualDetector):
    """φ with an acceptable pause added to the mean, as Akka does (the tolerated silence)."""

    def __init__(self, config: DetectorConfig, clock: Clock) -> None:
        super().__init__(config.threshold, config.max_sample_size, config.min_std_deviation_s,
                         config.heartbeat_interval_s, clock)
        self.pause_s = config.acceptable_heartbeat_pause_s

    def stats(self) -> tuple[float, float]:
        mean, std = super().stats()
        return mean + self.pause_s, std


class FailureDetectorRegistry:
    """φ accrual detection for many members, safe to share between threads.

    ``heartbeat(member)`` from the network threads, ``check()`` from a timer: it compares every
    member's φ with the threshold and announces each change (suspected / trusted again) through
    ``logging`` and the listeners, outside the lock. ``counters`` counts heartbeats, suspicions
    and recoveries; ``intervals`` is a histogram of inter-arrival times.
    """

    def __init__(self, config: DetectorConfig | None = None, clock: Clock = time.monotonic,
                 listeners: Iterable[Listener] = ()) -> None:
        self.config = config or DetectorConfig()
        self.clock = clock
        self.listeners = list(listeners)
        self.metrics = Instruments("failure_detector", "Heartbeats and verdicts")
        self.intervals = self.metrics.histogram(
            "heartbeat_interval_seconds", "Time between heartbeats of a member",
            (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0))
        self._members: dict[str, _PausedPhi] = {}
        self._suspected: set[str] = set()
        self._lock = threading.Lock()

    def heartbeat(self, member: str) -> None:
        with self._lock:
            self.metrics.count("heartbeats")
            detector = self._members.get(member)
            if detector is None:
                self._members[member] = _PausedPhi(self.config, self.clock)
                return
            self.intervals.observe(self.clock() - detector.last)
            detector.heartbeat()

    def phi(self, member: str) -> float:
        """The member's current φ (0 for a member never heard from)."""
        with self._lock:
            detector = self._members.get(member)
            return 0.0 if detector is None else detector.phi()

    def is_available(self, member: str) -> bool:
        return self.phi(member) < self.config.threshold

    def check(self) -> list[tuple[str, bool]]:
        """Re-evaluate every member; return (and announce) the changes as (member, suspected)."""
        with self._lock:
            now = self.clock()
            changes = []
            for member, detector in self._members.items():
                suspected = detector.phi() >= self.config.threshold
                if suspected != (member in self._suspected):
                    (self._suspected.add if suspected else self._suspected.discard)(member)
                    self.metrics.count("suspicions" if suspected else "recoveries")
                    changes.append((member, suspected))
        for member, suspected in changes:
            if suspected:
                log.warning("member %s suspected at t=%.3f s", member, now)
            else:
                log.info("member %s trusted again at t=%.3f s", member, now)
            for listener in self.listeners:
                listener(member, suspected, now)
        return changes

    def remove(self, member: str) -> None:
        """Stop monitoring a member (it left on purpose)."""
        with self._lock:
            self._members.pop(member, None)
            self._suspected.discard(member)
