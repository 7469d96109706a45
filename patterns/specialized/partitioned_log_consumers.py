"""Partitioned log consumers: a consumer group shares a topic's partitions, one owner each.

Picture a sorting office with P conveyor belts (the partitions) and C clerks (the consumers).
Letters for one street always ride the same belt, so they stay in order. Each belt has exactly
one clerk, who writes on a slate how far down the belt they have got (the *committed offset*).
When a clerk goes home sick, the supervisor notices only after a while (the *session timeout*),
hands the belt to another clerk (a *rebalance*), and the new clerk starts from the slate: any
letter the sick clerk handled after the last note on the slate is handled again. Delivery is
*at least once*; a clerk who must not do anything twice checks the letter's number first
(an *idempotent* consumer).

`PartitionedLog`, `ConsumerGroup` and `IdempotentSink` are the small versions of the lesson's
Level 2 (time from an injectable ``clock``); `ProductionConsumerGroup` hardens the group for
Level 3 (a validated `GroupConfig` with Kafka's documented defaults, a lock, ``logging``,
``prometheus_client`` metrics). Keys go to partitions and partitions to consumers with the
publish-subscribe lesson's `partition_for` and `assign_partitions` (round robin); `range_assign`
is Kafka's default per-topic range rule. Nothing here imports from ``simulations``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from patterns.checks import check_choice, check_int, check_positive
from patterns.communication.publish_subscribe import assign_partitions, partition_for
from patterns.metrics import Instruments

Clock = Callable[[], float]
log = logging.getLogger(__name__)

__all__ = [
    "CommitRefusedError", "ConsumerGroup", "GroupConfig", "IdempotentSink", "PartitionedLog",
    "ProductionConsumerGroup", "Record", "assign_partitions", "partition_for", "range_assign",
]


@dataclass(frozen=True)
class Record:
    """One entry of the log: where it sits (partition, offset), its key, value and append time."""

    partition: int
    offset: int
    key: str
    value: Any
    time_s: float


class PartitionedLog:
    """P append-only lists. A key always lands in the same partition (``partition_for``), so
    the records of one key keep their order; across partitions there is no order."""

    def __init__(self, partitions: int, clock: Clock = time.monotonic) -> None:
        self.partitions = check_int("partitions", partitions, 1)
        self.clock = clock
        self.logs: list[list[Record]] = [[] for _ in range(partitions)]

    def append(self, key: str, value: Any) -> Record:
        p = partition_for(key, self.partitions)
        record = Record(p, len(self.logs[p]), key, value, self.clock())
        self.logs[p].append(record)
        return record

    def read(self, partition: int, offset: int, max_records: int) -> list[Record]:
        return self.logs[partition][offset:offset + max_records]

    def end_offsets(self) -> list[int]:
        return [len(part) for part in self.logs]


def range_assign(partitions: int, members: Sequence[str]) -> dict[str, list[int]]:
    """Kafka's RangeAssignor for one topic: members sorted by name, each takes a contiguous
    range of P // C partitions, and the first P % C members one more."""
    check_int("partitions", partitions, 1)
    if not members:
        raise ValueError("range_assign needs at least one member (got none)")
    names = sorted(members)
    share, extra = divmod(partitions, len(names))
    owned, start = {}, 0
    for i, name in enumerate(names):
        size = share + (i < extra)
        owned[name] = list(range(start, start + size))
        start += size
    return owned


ASSIGNORS = {"range": range_assign, "roundrobin": assign_partitions}


class CommitRefusedError(RuntimeError):
    """A commit from a member that no longer owns the partition (the group rebalanced)."""


class ConsumerGroup:
    """Members, who owns which partition, and the committed offset of every partition.

    Members ``join``; each ``poll`` is also a heartbeat. ``expire()`` removes members silent for
    longer than ``session_timeout_s`` and rebalances. After a rebalance every partition is read
    again from its committed offset: records polled but not committed are delivered again.
    """

    def __init__(self, log: PartitionedLog, session_timeout_s: float = 45.0,
                 clock: Clock = time.monotonic, assignor: str = "range") -> None:
        self.log, self.session_timeout_s, self.clock = log, session_timeout_s, clock
        self.assign = ASSIGNORS[check_choice("assignor", assignor, ASSIGNORS)]
        self.last_seen: dict[str, float] = {}
        self.assignment: dict[str, list[int]] = {}
        self.committed = [0] * log.partitions
        self.position = [0] * log.partitions  # the current owner's next offset to read
        self.generation = 0

    def join(self, member: str) -> None:
        self.last_seen[member] = self.clock()
        self._rebalance()

    def leave(self, member: str) -> None:
        if self.last_seen.pop(member, None) is not None:
            self._rebalance()

    def expire(self) -> list[str]:
        """Drop the members whose session has timed out; returns their names."""
        now = self.clock()
        dead = [m for m, seen in self.last_seen.items() if now - seen > self.session_timeout_s]
        for member in dead:
            del self.last_seen[member]
        if dead:
            self._rebalance()
        return dead

    def poll(self, member: str, max_records: int = 500) -> list[Record]:
        """The next records of the member's partitions (a heartbeat too)."""
        self.last_seen[member] = self.clock()
        out: list[Record] = []
        for p in self.assignment.get(member, []):
            batch = self.log.read(p, self.position[p], max_records - len(out))
            self.position[p] += len(batch)
            out.extend(batch)
        return out

    def commit(self, member: str, offsets: dict[int, int] | None = None) -> None:
        """Commit ``offsets`` (partition -> next offset), by default the member's positions."""
        owned = self.assignment.get(member, [])
        offsets = {p: self.position[p] for p in owned} if offsets is None else offsets
        for p, offset in offsets.items():
            if p not in owned:
                raise CommitRefusedError(f"{member} does not own partition {p} in generation "
                                         f"{self.generation}: the group has rebalanced")
            self.committed[p] = offset

    def lag(self) -> list[int]:
        """Records per partition that the group has not committed yet."""
        return [end - done for end, done in zip(self.log.end_offsets(), self.committed,
                                                 strict=True)]

    def _rebalance(self) -> None:
        members = list(self.last_seen)
        self.assignment = self.assign(self.log.partitions, members) if members else {}
        self.position = list(self.committed)  # every new owner starts from the slate
        self.generation += 1


class IdempotentSink:
    """Applies each record once: remembers, per partition, the next offset it expects, and
    skips a record below it (a replay). The result and that offset change together."""

    def __init__(self, apply: Callable[[Record], None]) -> None:
        self.apply_fn = apply
        self.next_offset: dict[int, int] = {}
        self.applied = self.skipped = 0

    def apply(self, record: Record) -> bool:
        if record.offset < self.next_offset.get(record.partition, 0):
            self.skipped += 1
            return False
        self.apply_fn(record)
        self.next_offset[record.partition] = record.offset + 1
        self.applied += 1
        return True


# ---------------------------------------------------------------- production-grade (Level 3)

@dataclass(frozen=True)
class GroupConfig:
    """A group's settings; the defaults are Kafka's consumer defaults in ``ConsumerConfig``
    (session.timeout.ms 45000, max.poll.interval.ms 300000, max.poll.records 500,
    auto.commit.interval.ms 5000, RangeAssignor first)."""

    session_timeout_s: float = 45.0
    max_poll_interval_s: float = 300.0
    max_poll_records: int = 500
    auto_commit_interval_s: float = 5.0
    assignor: str = "range"

    def __post_init__(self) -> None:
        check_positive("GroupConfig.session_timeout_s", self.session_timeout_s)
        check_positive("GroupConfig.max_poll_interval_s", self.max_poll_interval_s)
        check_int("GroupConfig.max_poll_records", self.max_poll_records, low=1)
        check_positive("GroupConfig.auto_commit_interval_s", self.auto_commit_interval_s)
        check_choice("GroupConfig.assignor", self.assignor, ASSIGNORS)


class ProductionConsumerGroup(ConsumerGroup):
    """The Level 2 group, thread-safe, logged and measured, with Kafka's two liveness rules: a
    member is dropped after ``session_timeout_s`` without a heartbeat, or after
    ``max_poll_interval_s`` without a poll (alive but stuck in processing)."""

    def __init__(self, log: PartitionedLog, config: GroupConfig | None = None,
                 clock: Clock = time.monotonic) -> None:
        self.config = config or GroupConfig()
        super().__init__(log, self.config.session_timeout_s, clock, self.config.assignor)
        self.last_poll: dict[str, float] = {}
        self.metrics = Instruments("consumer_group", "Consumer-group events")
        self.batch = self.metrics.histogram("poll_records", "Records returned per poll",
                                            buckets=(0, 1, 10, 100, 500, 1000))
        self._lock = threading.RLock()

    def heartbeat(self, member: str) -> None:
        with self._lock:
            self.last_seen[member] = self.clock()

    def join(self, member: str) -> None:
        with self._lock:
            self.last_poll[member] = self.clock()
            super().join(member)

    def leave(self, member: str) -> None:
        with self._lock:
            self.last_poll.pop(member, None)
            super().leave(member)

    def expire(self) -> list[str]:
        with self._lock:
            now = self.clock()
            limit = self.config.max_poll_interval_s
            stuck = [m for m, t in self.last_poll.items() if now - t > limit]
            for member in stuck:
                self.last_seen[member] = -float("inf")  # treated as timed out below
            dead = super().expire()
            for member in dead:
                self.last_poll.pop(member, None)
                log.warning("consumer %s left the group (%s); generation %d", member,
                            "poll interval exceeded" if member in stuck else "session timeout",
                            self.generation)
            return dead

    def poll(self, member: str, max_records: int | None = None) -> list[Record]:
        with self._lock:
            self.last_poll[member] = self.clock()
            records = super().poll(member, max_records or self.config.max_poll_records)
            self.metrics.count("polls")
            self.metrics.count("records", len(records))
            self.batch.observe(len(records))
            return records

    def commit(self, member: str, offsets: dict[int, int] | None = None) -> None:
        with self._lock:
            try:
                super().commit(member, offsets)
            except CommitRefusedError:
                self.metrics.count("commits_refused")
                raise
            self.metrics.count("commits")

    def _rebalance(self) -> None:
        super()._rebalance()
        self.metrics.count("rebalances")
        log.info("rebalance to generation %d: %s", self.generation, self.assignment)

