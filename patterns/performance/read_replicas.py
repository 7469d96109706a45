"""Read replicas: copies of the database answer the reads; the primary keeps its time for writes.

Picture a newsroom with one editor who writes the day's facts on a master board, numbering each
line, and clerks around the floor who copy the board onto their own, line by line, a little
behind. Questions go to any clerk (there are many of them); changes go to the editor alone. A
clerk who has not copied the latest line gives yesterday's answer: a stale read. Each clerk's
board shows the number of the last line copied (the replication position), so a careful
receptionist can send you to a clerk who has copied at least the line you wrote, or else to the
editor.

- ``Primary``: takes the writes and numbers them in its log (``position``, commit times).
- ``Replica``: applies the primary's log in order up to some position, and answers reads.
- ``RoundRobinRouter`` (Level 2): writes to the primary, reads to the replicas in turn.
- ``RouterConfig`` / ``ConsistentRouter`` (Level 3): reads routed by replication position:
  ``read_your_writes`` (a session reads from a replica that has applied its last write, else from
  the primary) or ``bounded_staleness`` (a replica at most ``max_lag_s`` behind), with a lock,
  ``logging`` and ``prometheus_client`` metrics. Nothing here imports from ``simulations``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from patterns.checks import check_choice, check_int, check_non_negative
from patterns.metrics import Instruments

__all__ = ["MODES", "ConsistentRouter", "LogEntry", "Primary", "Replica", "RoundRobinRouter",
           "RouterConfig", "replicas"]

Clock = Callable[[], float]
log = logging.getLogger(__name__)
MODES = ("any", "read_your_writes", "bounded_staleness")


@dataclass(frozen=True)
class LogEntry:
    """One committed write: its position in the log (1, 2, ...), commit time, key and value."""

    position: int
    committed_s: float
    key: Hashable
    value: Any


class Primary:
    """The one copy that takes writes; ``log`` holds every write in commit order."""

    name = "primary"

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self.data: dict[Hashable, Any] = {}
        self.log: list[LogEntry] = []

    @property
    def position(self) -> int:
        """The position of the last committed write (0: none yet)."""
        return len(self.log)

    def write(self, key: Hashable, value: Any) -> int:
        """Commit ``key = value``; returns the write's log position."""
        self.data[key] = value
        self.log.append(LogEntry(len(self.log) + 1, self.clock(), key, value))
        return len(self.log)

    def read(self, key: Hashable) -> Any:
        return self.data.get(key)


class Replica:
    """A copy of the primary that is ``position`` writes into its log."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.data: dict[Hashable, Any] = {}
        self.position = 0

    def catch_up(self, primary: Primary, upto: int | None = None) -> int:
        """Apply the primary's log in order up to position ``upto`` (default: all of it)."""
        end = primary.position if upto is None else min(upto, primary.position)
        for entry in primary.log[self.position:end]:
            self.data[entry.key] = entry.value
        self.position = max(self.position, end)
        return self.position

    def lag_s(self, primary: Primary, now: float) -> float:
        """How long the oldest write this replica lacks has been committed (0: up to date)."""
        if self.position >= primary.position:
            return 0.0
        return now - primary.log[self.position].committed_s

    def read(self, key: Hashable) -> Any:
        return self.data.get(key)


class RoundRobinRouter:
    """Writes go to the primary; reads go to the replicas in turn, however far behind."""

    def __init__(self, primary: Primary, replicas: Sequence[Replica]) -> None:
        if not replicas:
            raise ValueError("replicas must hold at least one Replica (got none)")
        self.primary, self.replicas = primary, list(replicas)
        self._next = 0

    def write(self, key: Hashable, value: Any) -> int:
        return self.primary.write(key, value)

    def _turn(self) -> list[Replica]:
        """The replicas in this read's order: the next one first, then the rest in turn."""
        n = len(self.replicas)
        order = [self.replicas[(self._next + k) % n] for k in range(n)]
        self._next = (self._next + 1) % n
        return order

    def read(self, key: Hashable) -> tuple[str, Any]:
        """(name of the copy that answered, its value)."""
        replica = self._turn()[0]
        return replica.name, replica.read(key)


@dataclass(frozen=True)
class RouterConfig:
    """``mode``: one of ``MODES``; ``max_lag_s``: how far behind a replica may be in
    ``bounded_staleness`` mode (seconds, >= 0)."""

    mode: str = "read_your_writes"
    max_lag_s: float = 1.0

    def __post_init__(self) -> None:
        check_choice("RouterConfig.mode", self.mode, MODES)
        check_non_negative("RouterConfig.max_lag_s", self.max_lag_s)


class ConsistentRouter(RoundRobinRouter):
    """Round robin over the replicas that are fresh enough for this read, else the primary.

    ``read_your_writes``: a replica is fresh enough for a session once its position has reached
    that session's last write (the position ``write`` returned). ``bounded_staleness``: once its
    lag (``Replica.lag_s``) is at most ``max_lag_s``. ``any``: every replica (Level 2's router).
    Metrics: events ``writes``, ``replica_reads``, ``primary_reads``; the histogram
    ``replica_lag_seconds`` of the lag of each replica that answered.
    """

    def __init__(self, primary: Primary, replicas: Sequence[Replica],
                 config: RouterConfig | None = None) -> None:
        super().__init__(primary, replicas)
        self.config = config or RouterConfig()
        self.sessions: dict[Hashable, int] = {}
        self._lock = threading.Lock()
        self.metrics = Instruments("read_router", "Reads and writes through the router")
        self._lag = self.metrics.histogram("replica_lag_seconds", "Lag of the replica that read")

    def write(self, key: Hashable, value: Any, session: Hashable = None) -> int:
        with self._lock:
            position = self.primary.write(key, value)
            if session is not None:
                self.sessions[session] = position
        self.metrics.count("writes")
        return position

    def _fresh(self, replica: Replica, session: Hashable, now: float) -> bool:
        if self.config.mode == "read_your_writes":
            return replica.position >= self.sessions.get(session, 0)
        if self.config.mode == "bounded_staleness":
            return replica.lag_s(self.primary, now) <= self.config.max_lag_s
        return True

    def read(self, key: Hashable, session: Hashable = None) -> tuple[str, Any]:
        with self._lock:
            now = self.primary.clock()
            chosen = next((r for r in self._turn() if self._fresh(r, session, now)), None)
            if chosen is None:
                value = self.primary.read(key)
            else:
                value, lag = chosen.read(key), chosen.lag_s(self.primary, now)
        if chosen is None:
            self.metrics.count("primary_reads")
            log.info("no replica fresh enough for session %r (%s): read from the primary",
                     session, self.config.mode)
            return self.primary.name, value
        self.metrics.count("replica_reads")
        self._lag.observe(lag)
        return chosen.name, value


def replicas(n: int) -> list[Replica]:
    """``n`` empty replicas named r1 ... rn."""
    return [Replica(f"r{i}") for i in range(1, check_int("replicas", n, 1) + 1)]

