"""Quorum consistency: N copies; a write waits for W of them, a read for R; R + W > N overlaps.

Picture a club whose membership list is kept by N secretaries, each with a notebook. A change is
phoned to all of them, and the caller hangs up once W have confirmed it; a question is phoned
to all of them too, and the caller believes the newest note among the first R answers. If
R + W > N, any R secretaries include at least one of the W who took the last change, so the
answer is never older than that change. With smaller quorums the calls are quicker (fewer
confirmations to wait for), and now and then every one of the first R answers is an old note: a
stale read.

Each copy keeps, per key, the version with the highest *stamp* (last writer wins, LWW); a stamp
is ``(time, writer)``, so the writer's name breaks ties. The stamp's time comes from the
writer's injectable ``clock``, which is also how a skewed clock loses a write (the lesson's
pitfall).

``QuorumRegister`` is the Level 2 coordinator over in-process ``Replica`` objects, built from the
two halves a simulation drives message by message: ``WriteQuorum`` (count acknowledgements up to
W) and ``ReadQuorum`` (collect answers up to R; the newest wins; the older answerers are the ones
read repair fixes). ``ProductionQuorumStore`` hardens it for Level 3: Cassandra-style consistency
levels (``ONE``, ``TWO``, ``THREE``, ``QUORUM``, ``ALL``; a quorum is RF // 2 + 1) in a validated
``QuorumConfig``, an ``Unavailable`` error raised before anything is written, read repair,
hinted handoff for replicas that are down, a lock, ``logging`` and ``prometheus_client``
metrics. Nothing here imports from ``simulations``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from patterns.checks import check_choice, check_int, check_non_negative
from patterns.metrics import Instruments

Clock = Callable[[], float]
Stamp = tuple[float, str]  # (time or counter, writer): compared as a tuple

log = logging.getLogger(__name__)

__all__ = ["ConsistencyLevel", "NEVER_WRITTEN", "ProductionQuorumStore", "QuorumConfig",
           "QuorumError", "QuorumRegister", "ReadQuorum", "Replica", "Unavailable", "Version",
           "WriteQuorum", "block_for"]


@dataclass(frozen=True)
class Version:
    """A value with the stamp of the write that made it; a higher stamp is newer."""

    stamp: Stamp
    value: Any


NEVER_WRITTEN = Version((-math.inf, ""), None)
"""What a replica holds for a key nobody wrote: older than any write."""


class Replica:
    """One copy of the data: per key, the version with the highest stamp it has seen (LWW)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.data: dict[Hashable, Version] = {}
        self.up = True

    def apply(self, key: Hashable, version: Version) -> bool:
        """Keep ``version`` if it is newer than what is stored; True if it was kept."""
        if version.stamp <= self.get(key).stamp:
            return False
        self.data[key] = version
        return True

    def get(self, key: Hashable) -> Version:
        return self.data.get(key, NEVER_WRITTEN)


class WriteQuorum:
    """A write's acknowledgements: done once ``w`` distinct replicas have confirmed it."""

    def __init__(self, w: int) -> None:
        self.w = w
        self.acks: set[str] = set()

    def ack(self, replica: str) -> bool:
        """Count ``replica``'s acknowledgement (a repeat counts once); True once done."""
        self.acks.add(replica)
        return self.done

    @property
    def done(self) -> bool:
        return len(self.acks) >= self.w


class ReadQuorum:
    """A read's answers: done once ``r`` replicas have answered; the newest answer wins."""

    def __init__(self, r: int) -> None:
        self.r = r
        self.answers: dict[str, Version] = {}

    def offer(self, replica: str, version: Version) -> bool:
        """Take ``replica``'s answer while fewer than ``r`` are in; True once done."""
        if not self.done:
            self.answers.setdefault(replica, version)
        return self.done

    @property
    def done(self) -> bool:
        return len(self.answers) >= self.r

    @property
    def newest(self) -> Version:
        return max(self.answers.values(), key=lambda v: v.stamp, default=NEVER_WRITTEN)

    @property
    def stale(self) -> list[str]:
        """The answerers that hold an older version than the newest (read repair's targets)."""
        newest = self.newest.stamp
        return [name for name, version in self.answers.items() if version.stamp < newest]


class QuorumError(RuntimeError):
    """Fewer replicas answered than the quorum needs."""


class QuorumRegister:
    """A register on ``replicas``: a write is sent to every replica that is up and succeeds once
    ``w`` have stored it; a read asks the replicas that are up and returns the newest of the
    first ``r`` answers, then (``read_repair``) writes it back to the answerers that were
    behind. In process, "the first r to answer" are the first ``r`` replicas that are up, in
    ``order`` (default: the order of ``replicas``). Stamps are ``(clock(), name)``.
    """

    def __init__(self, replicas: Sequence[Replica], r: int, w: int, *, name: str = "client",
                 clock: Clock = time.time, read_repair: bool = True) -> None:
        self.replicas = {replica.name: replica for replica in replicas}
        self.r, self.w, self.name, self.clock = r, w, name, clock
        self.read_repair = read_repair

    def write(self, key: Hashable, value: Any) -> Version:
        version = Version((self.clock(), self.name), value)
        quorum = WriteQuorum(self.w)
        for replica in self.replicas.values():
            if replica.up:
                replica.apply(key, version)
                quorum.ack(replica.name)
        if not quorum.done:
            raise QuorumError(f"write of {key!r}: {len(quorum.acks)} of {self.w} acks")
        return version

    def read(self, key: Hashable, order: Iterable[str] | None = None) -> Any:
        quorum = ReadQuorum(self.r)
        for name in order or self.replicas:
            replica = self.replicas[name]
            if replica.up and quorum.offer(name, replica.get(key)):
                break
        if not quorum.done:
            raise QuorumError(f"read of {key!r}: {len(quorum.answers)} of {self.r} answers")
        if self.read_repair:
            for name in quorum.stale:
                self.replicas[name].apply(key, quorum.newest)
        return quorum.newest.value


# ---------------------------------------------------------------- production-grade (Level 3)


class ConsistencyLevel(StrEnum):
    """How many replicas an operation waits for, named as Cassandra names them."""

    ONE = "ONE"
    TWO = "TWO"
    THREE = "THREE"
    QUORUM = "QUORUM"
    ALL = "ALL"


def block_for(level: ConsistencyLevel | str, replication_factor: int) -> int:
    """Replicas that must answer at ``level``: 1, 2 or 3; a quorum RF // 2 + 1; or all RF
    (Cassandra's ``ConsistencyLevel.blockFor`` for a single datacentre)."""
    rf = check_int("replication_factor", replication_factor, 1)
    level = ConsistencyLevel(check_choice("consistency level", level, list(ConsistencyLevel)))
    fixed = {ConsistencyLevel.ONE: 1, ConsistencyLevel.TWO: 2, ConsistencyLevel.THREE: 3}
    if level is ConsistencyLevel.QUORUM:
        return rf // 2 + 1
    return rf if level is ConsistencyLevel.ALL else fixed[level]


@dataclass(frozen=True)
class QuorumConfig:
    """A keyspace's replication and the levels of its reads and writes.

    Defaults: three replicas, QUORUM for both (2 + 2 > 3), read repair and hinted handoff on;
    no new hints are stored for a replica down longer than ``max_hint_window_s`` (Cassandra's
    ``max_hint_window``, 3 h in its ``cassandra.yaml``).
    """

    replication_factor: int = 3
    read_level: ConsistencyLevel | str = ConsistencyLevel.QUORUM
    write_level: ConsistencyLevel | str = ConsistencyLevel.QUORUM
    read_repair: bool = True
    hinted_handoff: bool = True
    max_hint_window_s: float = 3 * 3600.0

    def __post_init__(self) -> None:
        rf = check_int("QuorumConfig.replication_factor", self.replication_factor, 1)
        for field in ("read_level", "write_level"):
            level = check_choice(f"QuorumConfig.{field}", getattr(self, field),
                                 list(ConsistencyLevel))
            object.__setattr__(self, field, ConsistencyLevel(level))
            if block_for(level, rf) > rf:
                raise ValueError(f"QuorumConfig.{field} must need at most replication_factor "
                                 f"= {rf} replicas (got {level}, which needs "
                                 f"{block_for(level, rf)})")
        check_non_negative("QuorumConfig.max_hint_window_s", self.max_hint_window_s)

    @property
    def r(self) -> int:
        return block_for(self.read_level, self.replication_factor)

    @property
    def w(self) -> int:
        return block_for(self.write_level, self.replication_factor)

    @property
    def strict(self) -> bool:
        """R + W > N: every read quorum meets every write quorum."""
        return self.r + self.w > self.replication_factor


class Unavailable(QuorumError):
    """Too few replicas are up for the consistency level: refused before anything is sent."""


class ProductionQuorumStore(QuorumRegister):
    """The Level 2 register hardened: consistency levels from a validated ``QuorumConfig``,
    ``Unavailable`` raised before a write or read that cannot reach its level, hints kept for
    replicas that are down (replayed by ``mark_up``; none stored once a replica has been down
    longer than ``max_hint_window_s``), one lock around the replicas and the hints,
    ``logging``, and metrics in a registry of its own (events ``writes``, ``reads``,
    ``unavailable``, ``read_repairs``, ``hints_stored``, ``hints_skipped``, ``hints_replayed``;
    histograms ``write_seconds``, ``read_seconds``). Hints do not count towards a write's
    level, as in Cassandra.
    """

    def __init__(self, replicas: Sequence[Replica], config: QuorumConfig | None = None, *,
                 name: str = "coordinator", clock: Clock = time.time) -> None:
        self.config = config or QuorumConfig()
        if len(replicas) != self.config.replication_factor:
            raise ValueError(f"replicas must hold replication_factor = "
                             f"{self.config.replication_factor} replicas (got {len(replicas)})")
        super().__init__(replicas, self.config.r, self.config.w, name=name, clock=clock,
                         read_repair=self.config.read_repair)
        self.hints: dict[str, list[tuple[Hashable, Version]]] = {
            replica: [] for replica in self.replicas}
        self.down_since: dict[str, float] = {}
        self.metrics = Instruments("quorum_store", "Operations through the coordinator")
        self.write_seconds = self.metrics.histogram("write_seconds", "Write latency")
        self.read_seconds = self.metrics.histogram("read_seconds", "Read latency")
        self._lock = threading.Lock()

    def _require(self, needed: int, what: str, key: Hashable) -> None:
        up = sum(replica.up for replica in self.replicas.values())
        if up < needed:
            self.metrics.count("unavailable")
            log.warning("%s %s of %r refused: %d replicas up, %d needed", self.name, what, key,
                        up, needed)
            raise Unavailable(f"{what} of {key!r} at {needed} replicas: only {up} up")

    def write(self, key: Hashable, value: Any) -> Version:
        start = self.clock()
        with self._lock:
            self._require(self.w, "write", key)
            version = super().write(key, value)
            if self.config.hinted_handoff:
                now = self.clock()
                for name, replica in self.replicas.items():
                    if replica.up:
                        continue
                    within = now - self.down_since.get(name, now) <= self.config.max_hint_window_s
                    if within:
                        self.hints[name].append((key, version))
                    self.metrics.count("hints_stored" if within else "hints_skipped")
        self.metrics.count("writes")
        self.write_seconds.observe(self.clock() - start)
        return version

    def read(self, key: Hashable, order: Iterable[str] | None = None) -> Any:
        start = self.clock()
        with self._lock:
            self._require(self.r, "read", key)
            before = {name: replica.get(key) for name, replica in self.replicas.items()}
            value = super().read(key, order)
            repaired = sum(replica.get(key) != before[name]
                           for name, replica in self.replicas.items())
        if repaired:
            self.metrics.count("read_repairs", repaired)
            log.info("%s read of %r repaired %d replica(s)", self.name, key, repaired)
        self.metrics.count("reads")
        self.read_seconds.observe(self.clock() - start)
        return value

    def mark_down(self, name: str) -> None:
        with self._lock:
            self.replicas[name].up = False
            self.down_since.setdefault(name, self.clock())
        log.warning("%s: replica %s is down", self.name, name)

    def mark_up(self, name: str) -> int:
        """Bring ``name`` back and replay the hints stored for it; returns how many."""
        with self._lock:
            replica = self.replicas[name]
            replica.up = True
            self.down_since.pop(name, None)
            hints, self.hints[name] = self.hints[name], []
            for key, version in hints:
                replica.apply(key, version)
        self.metrics.count("hints_replayed", len(hints))
        log.info("%s: replica %s is back, %d hints replayed", self.name, name, len(hints))
        return len(hints)
