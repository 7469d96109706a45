"""Synchronous, semi-synchronous and asynchronous replication: when may the primary say "done"?

Picture a notary who keeps the master register and sends a copy of every new entry by courier to
two branch offices. The notary can tell a client "recorded" the moment the entry is in the master
register (asynchronous: quick, but if the office burns down before the couriers arrive, entries
the clients were told about are gone), or only once every branch has signed for its copy
(synchronous: nothing acknowledged is lost while one copy survives, but every client waits for
the slowest courier), or once ``k`` of the branches have signed (semi-synchronous: the client
waits for the k-th fastest courier, and any k signatures protect the entry).

- ``Primary`` (Level 2): numbers each write in its log, records which position each replica has
  confirmed (confirmations are cumulative: "I hold everything up to position p"), and
  acknowledges a write once ``acks`` replicas hold it (``acks = 0``: at once, asynchronous).
  ``acknowledged_position`` is that rule alone: the ``acks``-th largest confirmed position.
- ``Replica``: keeps the log in order, holding entries that arrive early, and confirms the
  position it holds. ``promote`` picks the replica with the longest log after a failure, and
  ``lost_writes`` counts the acknowledged writes it lacks.
- ``ReplicationConfig`` / ``ProductionPrimary`` (Level 3): validated settings, a lock and a
  condition variable so writer threads block until their write is acknowledged (or a timeout
  says what happened), the refusal of writes when too few replicas are in reach (Redis's
  ``min-replicas-to-write`` / ``min-replicas-max-lag``), ``logging`` and ``prometheus_client``
  metrics. ``ThreadReplica`` is a replica on its own thread with an injectable delay, to run it.
- ``timed_writes``: a real Redis primary's write latency with and without ``WAIT``.

Time comes from an injectable ``clock``, so the same classes run in real time, in a test with a
hand-moved clock and inside SimPy (``clock=lambda: env.now``). Nothing here imports from
``simulations``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from patterns.checks import check_choice, check_int, check_non_negative, check_positive
from patterns.metrics import Instruments

__all__ = ["ON_TIMEOUT", "Entry", "NotEnoughReplicas", "Primary", "ProductionPrimary", "Replica",
           "ReplicationConfig", "ReplicationTimeout", "ThreadReplica", "acknowledged_position",
           "lost_writes", "promote", "timed_writes"]

Clock = Callable[[], float]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    """One write in the log: its position (1, 2, ...), key, value and when it was appended."""

    position: int
    key: Hashable
    value: Any
    appended_s: float


def acknowledged_position(confirmed: Iterable[int], acks: int) -> int:
    """The highest log position that at least ``acks`` replicas hold: the ``acks``-th largest
    of their confirmed positions (0 when fewer replicas than that have confirmed anything)."""
    ranked = sorted(confirmed, reverse=True)
    return ranked[acks - 1] if 0 < acks <= len(ranked) else 0


class Primary:
    """The primary's side: append, count cumulative confirmations, acknowledge after ``acks``.

    ``acks = 0`` is asynchronous replication (a write is acknowledged when appended),
    ``acks = len(replicas)`` synchronous to all, anything between semi-synchronous.
    """

    def __init__(self, replicas: Sequence[str], acks: int, clock: Clock = time.monotonic) -> None:
        self.replicas = tuple(replicas)
        self.acks = check_int("acks", acks, 0, len(self.replicas))
        self.clock = clock
        self.log: list[Entry] = []
        self.confirmed = dict.fromkeys(self.replicas, 0)  # replica -> highest position it holds
        self.acknowledged_s: list[float] = []  # when each write was acknowledged, in log order

    @property
    def committed(self) -> int:
        """The position up to which writes are acknowledged."""
        return len(self.acknowledged_s)

    def append(self, key: Hashable, value: Any) -> int:
        """Add a write (already durable here) to the log; returns its position."""
        self.log.append(Entry(len(self.log) + 1, key, value, self.clock()))
        if self.acks == 0:
            self._acknowledge_to(len(self.log))
        return len(self.log)

    def confirm(self, replica: str, position: int) -> int:
        """``replica`` holds the log up to ``position``; returns the acknowledged position."""
        self.confirmed[replica] = max(self.confirmed[replica], position)
        self._acknowledge_to(acknowledged_position(self.confirmed.values(), self.acks))
        return self.committed

    def lag_s(self, replica: str) -> float:
        """How long the oldest write ``replica`` lacks has been in the log (0: up to date)."""
        held = self.confirmed[replica]
        return self.clock() - self.log[held].appended_s if held < len(self.log) else 0.0

    def _acknowledge_to(self, position: int) -> None:
        now = self.clock()
        self.acknowledged_s += [now] * (min(position, len(self.log)) - self.committed)


class Replica:
    """A copy of the log, kept in order: an entry that arrives early waits for the ones before."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.log: list[Entry] = []
        self._early: dict[int, Entry] = {}

    @property
    def position(self) -> int:
        return len(self.log)

    def receive(self, entry: Entry) -> int:
        """Store ``entry`` (duplicates are harmless); returns the position now held in order."""
        if entry.position > self.position:
            self._early[entry.position] = entry
        while self.position + 1 in self._early:
            self.log.append(self._early.pop(self.position + 1))
        return self.position


def promote(positions: Mapping[str, int]) -> str:
    """The replica to promote after the primary fails: the longest log (first named on ties)."""
    if not positions:
        raise ValueError("positions must name at least one surviving replica (got none)")
    return max(positions, key=lambda name: positions[name])


def lost_writes(primary: Primary, survivor_position: int) -> int:
    """Acknowledged writes a promoted replica holding ``survivor_position`` does not have."""
    return max(0, primary.committed - survivor_position)


# ---------------------------------------------------------------- production-grade (Level 3)

ON_TIMEOUT = ("fail", "async")


class ReplicationTimeout(TimeoutError):
    """Too few replicas confirmed the write in time; it is in the primary's log, so it may
    still survive a failover: its outcome is unknown, not failed."""


class NotEnoughReplicas(RuntimeError):
    """The write was refused before it was logged: too few replicas are within reach."""


@dataclass(frozen=True)
class ReplicationConfig:
    """``acks``: confirmations a write waits for; ``timeout_s``: how long; ``on_timeout``:
    ``fail`` (raise `ReplicationTimeout`) or ``async`` (acknowledge anyway and count it, as
    MySQL's semi-synchronous replication falls back to asynchronous); ``min_replicas`` and
    ``max_lag_s``: refuse writes unless that many replicas confirmed something within
    ``max_lag_s`` (Redis's ``min-replicas-to-write`` and ``min-replicas-max-lag``; 0: off)."""

    acks: int = 1
    timeout_s: float = 1.0
    on_timeout: str = "fail"
    min_replicas: int = 0
    max_lag_s: float = 10.0

    def __post_init__(self) -> None:
        name = "ReplicationConfig."
        check_int(name + "acks", self.acks, low=0)
        check_positive(name + "timeout_s", self.timeout_s)
        check_choice(name + "on_timeout", self.on_timeout, ON_TIMEOUT)
        check_int(name + "min_replicas", self.min_replicas, low=0)
        check_positive(name + "max_lag_s", self.max_lag_s)


class ProductionPrimary(Primary):
    """The Level 2 primary for threads: ``write`` blocks until the write is acknowledged.

    Each replica is a transport ``ship(entry)`` that delivers the entry and later calls
    ``confirm(name, position)`` from any thread. One lock guards the log and the positions;
    writers wait on a condition variable, so a slow replica delays only the writes that need it.
    Metrics: events ``writes``, ``acknowledged``, ``timeouts``, ``degraded`` (acknowledged
    after a timeout, without the confirmations) and ``refused``; histograms
    ``commit_seconds`` and ``replica_lag_seconds`` (sampled at each write).
    """

    def __init__(self, name: str, transports: Mapping[str, Callable[[Entry], None]],
                 config: ReplicationConfig | None = None, clock: Clock = time.monotonic) -> None:
        self.name, self.config = name, config or ReplicationConfig()
        for field, value in (("acks", self.config.acks),
                             ("min_replicas", self.config.min_replicas)):
            if value > len(transports):
                raise ValueError(f"ReplicationConfig.{field} must be <= the {len(transports)} "
                                 f"replicas (got {value})")
        super().__init__(list(transports), self.config.acks, clock)
        self.transports = dict(transports)
        self._changed = threading.Condition(threading.Lock())
        self.metrics = Instruments("replication", "Writes through the primary")
        self.commit_seconds = self.metrics.histogram(
            "commit_seconds", "Time from write to acknowledgement",
            buckets=(1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0))
        self.lag_seconds = self.metrics.histogram("replica_lag_seconds", "Replica lag at writes")

    def write(self, key: Hashable, value: Any) -> int:
        """Log the write, ship it, and return its position once it is acknowledged."""
        start = self.clock()
        with self._changed:
            self.metrics.count("writes")
            if not self._enough_in_reach(start):
                self.metrics.count("refused")
                raise NotEnoughReplicas(f"primary {self.name!r}: fewer than "
                                        f"{self.config.min_replicas} replicas confirmed within "
                                        f"{self.config.max_lag_s:g} s; write refused")
            for replica in self.replicas:
                self.lag_seconds.observe(self.lag_s(replica))
            position = self.append(key, value)
            entry = self.log[-1]
        for ship in self.transports.values():  # outside the lock: a transport may be slow
            ship(entry)
        with self._changed:
            done = self._changed.wait_for(lambda: self.committed >= position,
                                          timeout=self.config.timeout_s)
            if not done and self.config.on_timeout == "fail":
                self.metrics.count("timeouts")
                log.error("primary %s: write %d not confirmed by %d replicas within %g s",
                          self.name, position, self.acks, self.config.timeout_s)
                raise ReplicationTimeout(f"write {position} has fewer than {self.acks} "
                                         f"confirmations after {self.config.timeout_s:g} s")
            if not done:
                self.metrics.count("degraded")
                log.warning("primary %s: write %d acknowledged without %d confirmations "
                            "(asynchronous fallback)", self.name, position, self.acks)
            self.metrics.count("acknowledged")
        self.commit_seconds.observe(self.clock() - start)
        return position

    def confirm(self, replica: str, position: int) -> int:
        with self._changed:
            committed = super().confirm(replica, position)
            self._changed.notify_all()
        return committed

    def _enough_in_reach(self, now: float) -> bool:
        """At least ``min_replicas`` replicas lag by at most ``max_lag_s`` (`Primary.lag_s`:
        Redis counts the time since each replica's last ping instead; the data lag bounds the
        writes at risk directly)."""
        fresh = sum(self.lag_s(replica) <= self.config.max_lag_s for replica in self.replicas)
        return fresh >= self.config.min_replicas


class ThreadReplica(Replica):
    """A `Replica` on a daemon thread: each shipped entry is held ``delay()`` seconds (the
    network and the replica's disk), stored, and confirmed to the primary. ``hang()`` makes it
    stop confirming (a stuck disk, a dead link); ``resume()`` lets it catch up."""

    def __init__(self, name: str, delay: Callable[[], float] = lambda: 0.0) -> None:
        super().__init__(name)
        self.delay, self.primary = delay, None
        self._inbox: queue.Queue[Entry | None] = queue.Queue()
        self._running = threading.Event()
        self._running.set()
        self.thread = threading.Thread(target=self._serve, name=f"replica-{name}", daemon=True)
        self.thread.start()

    def ship(self, entry: Entry) -> None:
        self._inbox.put(entry)

    def hang(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self._running.set()
        self._inbox.put(None)

    def _serve(self) -> None:
        while (entry := self._inbox.get()) is not None:
            time.sleep(self.delay())
            self._running.wait()
            held = self.receive(entry)
            if self.primary is not None:
                self.primary.confirm(self.name, held)


def timed_writes(client: Any, count: int, numreplicas: int = 0, timeout_ms: int = 1000,
                 clock: Clock = time.perf_counter) -> tuple[list[float], list[int]]:
    """``count`` SETs on a real Redis primary through ``client`` (redis-py), each followed by
    ``WAIT numreplicas timeout_ms`` when ``numreplicas`` > 0: the seconds each took and the
    number of replicas WAIT reported (the write is asynchronous without it)."""
    check_int("count", count, low=1)
    check_int("numreplicas", numreplicas, low=0)
    check_non_negative("timeout_ms", timeout_ms)
    seconds, reached = [], []
    for i in range(count):
        start = clock()
        client.set(f"timed:{i}", i)
        reached.append(int(client.wait(numreplicas, timeout_ms)) if numreplicas else 0)
        seconds.append(clock() - start)
    return seconds, reached
