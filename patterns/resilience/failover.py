"""Failover: promote a standby when the primary is declared dead, and fence the old one.

Picture a night pharmacy with one pharmacist on duty and colleagues on call: when the one on
duty falls ill, someone must notice, call a colleague in, and make sure the first one does not
come back and serve customers from a stale till. ``FailoverManager`` promotes the next healthy
replica when its failure detector suspects the primary; ``ProductionFailoverManager`` adds a
validated ``FailoverConfig``, a lock, listeners, ``logging``, ``prometheus_client`` metrics (a
histogram of failover gaps), and fencing: every promotion starts a new epoch, and a write that
carries an older epoch is refused with ``StalePrimaryError``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from patterns.checks import check_non_negative, check_positive
from patterns.metrics import Instruments
from patterns.resilience.failure_detection import HeartbeatDetector

log = logging.getLogger(__name__)
Clock = Callable[[], float]


# ---------------------------------------------------------------- Level 2: the pattern


class FailoverManager:
    """Active-passive failover over named replicas, driven by heartbeats.

    Each replica has a ``HeartbeatDetector`` (suspect after ``heartbeat_s + timeout_s`` of
    silence). ``tick()`` looks at them: a suspected primary is dropped, a healthy replica is
    chosen (the first in order) and promoted, which takes ``promotion_s``; until then there is
    no primary. A promotion whose target becomes suspected is abandoned. ``history`` records
    (time, event, replica).
    """

    def __init__(self, replicas: Sequence[str], heartbeat_s: float, timeout_s: float,
                 promotion_s: float, clock: Clock = time.monotonic) -> None:
        if not replicas:
            raise ValueError("replicas must name at least one replica (got none)")
        self.clock = clock
        self.promotion_s = check_non_negative("promotion_s", promotion_s)
        self.detectors = {r: HeartbeatDetector(heartbeat_s, timeout_s, clock) for r in replicas}
        self.primary: str | None = replicas[0]
        self.promoting: str | None = None
        self.ready_at = math.inf
        self.history: list[tuple[float, str, str]] = []

    def heartbeat(self, replica: str, sent_at: float | None = None) -> None:
        self.detectors[replica].heartbeat(sent_at)

    def healthy(self) -> list[str]:
        return [r for r, d in self.detectors.items() if not d.suspected()]

    def tick(self) -> str | None:
        """Act on what the detectors say now; returns the primary (None during a failover)."""
        now = self.clock()
        if self.promoting is not None and self.detectors[self.promoting].suspected():
            self._note(now, "promotion abandoned", self.promoting)
            self.promoting = None
        if self.primary is not None and self.detectors[self.primary].suspected():
            self._note(now, "primary lost", self.primary)
            self.primary = None
        if self.primary is None and self.promoting is None:
            candidates = self.healthy()
            if candidates:
                self.promoting, self.ready_at = candidates[0], now + self.promotion_s
                self._note(now, "promoting", self.promoting)
        if self.promoting is not None and now >= self.ready_at:
            self.primary, self.promoting = self.promoting, None
            self._note(now, "promoted", self.primary)
        return self.primary

    def _note(self, now: float, event: str, replica: str) -> None:
        self.history.append((now, event, replica))


# ---------------------------------------------------------------- Level 3: production grade


@dataclass(frozen=True)
class FailoverConfig:
    """Failover settings. The defaults are Patroni's documented ones (leader lock ttl 30 s,
    loop_wait 10 s): the lock expires 30 s after the last renewal, renewed every 10 s."""

    heartbeat_s: float = 10.0
    timeout_s: float = 20.0
    promotion_s: float = 5.0

    def __post_init__(self) -> None:
        check_positive("FailoverConfig.heartbeat_s", self.heartbeat_s)
        check_non_negative("FailoverConfig.timeout_s", self.timeout_s)
        check_non_negative("FailoverConfig.promotion_s", self.promotion_s)


class StalePrimaryError(RuntimeError):
    """A write carried an old fencing token: it came from a primary that was replaced."""


Listener = Callable[[float, str, str], None]  # (time, event, replica)


class ProductionFailoverManager(FailoverManager):
    """The Level 2 manager made safe to share and to watch.

    A lock around state (heartbeats come from network threads, ticks from a timer); each
    promotion increments a fencing ``epoch``, and ``check_write(replica, epoch)`` refuses
    writes from any replica that is not the current primary of the current epoch, so an old
    primary that wakes up after a pause cannot write (no split brain). Events go to ``logging``
    and the listeners outside the lock; ``counters`` counts failovers, promotions, abandoned
    promotions and refused writes; ``gaps`` is a histogram of failover gaps (primary lost to
    new primary promoted).
    """

    def __init__(self, replicas: Sequence[str], config: FailoverConfig | None = None,
                 clock: Clock = time.monotonic, listeners: Iterable[Listener] = ()) -> None:
        self.config = config or FailoverConfig()
        super().__init__(replicas, self.config.heartbeat_s, self.config.timeout_s,
                         self.config.promotion_s, clock)
        self.listeners = list(listeners)
        self.epoch = 1
        self.metrics = Instruments("failover", "Failover events")
        self.gaps = self.metrics.histogram("gap_seconds", "From primary lost to new primary",
                                           (1.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0))
        self._lost_at: float | None = None
        self._lock = threading.Lock()

    def heartbeat(self, replica: str, sent_at: float | None = None) -> None:
        with self._lock:
            super().heartbeat(replica, sent_at)

    def tick(self) -> str | None:
        with self._lock:
            seen = len(self.history)
            primary = super().tick()
            events = self.history[seen:]
            for now, event, _ in events:
                if event == "primary lost":
                    self.metrics.count("failovers")
                    self._lost_at = now
                elif event == "promoted":
                    self.metrics.count("promotions")
                    self.epoch += 1
                    if self._lost_at is not None:
                        self.gaps.observe(now - self._lost_at)
                        self._lost_at = None
                elif event == "promotion abandoned":
                    self.metrics.count("abandoned promotions")
        for now, event, replica in events:
            level = logging.WARNING if event in ("primary lost",
                                                 "promotion abandoned") else logging.INFO
            log.log(level, "%s: %s at t=%.3f s", event, replica, now)
            for listener in self.listeners:
                listener(now, event, replica)
        return primary

    def check_write(self, replica: str, epoch: int) -> None:
        """Raise `StalePrimaryError` unless ``replica`` is the primary of ``epoch`` (the
        current one). Storage calls this with the token the writer got when promoted."""
        with self._lock:
            if replica == self.primary and epoch == self.epoch:
                return
            self.metrics.count("refused writes")
            current = (self.primary, self.epoch)
        log.warning("refused a write from %s (epoch %d); primary is %s (epoch %d)",
                    replica, epoch, *current)
        raise StalePrimaryError(f"{replica} wrote with epoch {epoch}, but the primary is "
                                f"{current[0]} with epoch {current[1]}")


