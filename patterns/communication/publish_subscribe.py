"""Publish-subscribe: a broker copies every message on a topic to every subscriber of it.

Picture a newspaper's printing house. The editors (publishers) hand in one edition; the press
prints one copy per subscriber and the vans take them out. The editors never learn who reads
the paper, and a new subscriber needs no change at the newsroom. But the press prints N copies
for N subscribers, the last van decides when *everyone* has the paper, and a subscriber who
is away that morning either finds the paper in the mailbox (a durable subscription) or never
sees it (a fire-and-forget one).

`Broker` is the small version of the lesson's Level 2: topics, subscriptions that keep their
messages in a queue (durable ones also while disconnected), and the fan-out count.
`PartitionedTopic` splits a topic into P ordered logs by key, consumed by a group in which
each partition has exactly one owner: ordering holds within a partition only.
`ProductionBroker` hardens the broker for Level 3 (a validated `BrokerConfig`, a lock,
``logging``, ``prometheus_client`` metrics, and a rule for slow subscribers). Time comes from
an injectable ``clock``, so the same classes run in real time and inside a simulation.
Nothing here imports from ``simulations``.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from patterns.checks import check_choice, check_int
from patterns.metrics import Instruments

Clock = Callable[[], float]
log = logging.getLogger(__name__)

__all__ = [
    "Broker", "BrokerConfig", "Message", "PartitionedTopic", "ProductionBroker",
    "Subscription", "assign_partitions", "partition_for",
]


@dataclass(frozen=True)
class Message:
    """One published message: its topic, a broker-wide sequence number, the payload, the
    time it was published (by the broker's clock) and an optional key."""

    topic: str
    seq: int
    payload: Any
    published_at: float
    key: str | None = None


class Subscription:
    """One subscriber's queue on one topic.

    ``durable``: the queue lives in the broker and keeps filling while the subscriber is
    disconnected (a Redis Streams group, a Kafka offset, an SQS queue behind SNS). Not durable:
    the queue lives in the connection, like Redis pub/sub: while disconnected nothing is kept,
    and what was queued when the connection went is lost. ``max_queue`` (None: unbounded) is
    the most messages it may hold; the broker decides what happens beyond it.
    """

    def __init__(self, topic: str, name: str, durable: bool = False,
                 max_queue: int | None = None) -> None:
        self.topic, self.name, self.durable, self.max_queue = topic, name, durable, max_queue
        self.queue: deque[Message] = deque()
        self.connected = True
        self.received = 0  # messages handed to the subscriber by poll
        self.lost = 0  # copies this subscriber will never see

    def __len__(self) -> int:
        return len(self.queue)


class Broker:
    """Topic-based publish-subscribe with fan-out: ``publish`` puts one copy of the message in
    every subscription of the topic, and returns how many copies it made."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self.topics: dict[str, dict[str, Subscription]] = {}
        self.published = 0  # messages
        self.copies = 0  # copies queued for subscribers (the broker's egress)
        self.missed = 0  # copies never made: the subscriber was offline and not durable
        self._seq = 0

    def subscribe(self, topic: str, name: str, durable: bool = False,
                  max_queue: int | None = None) -> Subscription:
        """Add subscriber ``name`` to ``topic``; it receives what is published from now on."""
        subs = self.topics.setdefault(topic, {})
        if name in subs:
            raise ValueError(f"{name!r} is already subscribed to {topic!r}")
        subs[name] = Subscription(topic, name, durable, max_queue)
        return subs[name]

    def unsubscribe(self, topic: str, name: str) -> None:
        del self.topics[topic][name]

    def subscription(self, topic: str, name: str) -> Subscription:
        return self.topics[topic][name]

    def publish(self, topic: str, payload: Any, key: str | None = None) -> int:
        """Copy the message to every subscription of ``topic``; the number of copies made.

        A disconnected subscription that is not durable gets no copy (it is lost for it, and
        counted in its ``lost``). A subscription over its ``max_queue`` goes to `_overflow`.
        """
        message = Message(topic, self._seq, payload, self.clock(), key)
        self._seq += 1
        self.published += 1
        made = 0
        for sub in list(self.topics.get(topic, {}).values()):
            if not sub.connected and not sub.durable:
                sub.lost += 1
                self.missed += 1
                continue
            sub.queue.append(message)
            made += 1
            if sub.max_queue is not None and len(sub.queue) > sub.max_queue:
                self._overflow(sub)
        self.copies += made
        return made

    def poll(self, topic: str, name: str, max_messages: int | None = None) -> list[Message]:
        """The oldest messages queued for a connected subscriber (all, or ``max_messages``)."""
        sub = self.topics[topic][name]
        if not sub.connected:
            raise ConnectionError(f"{name!r} is disconnected from {topic!r}: reconnect first")
        n = len(sub.queue) if max_messages is None else min(max_messages, len(sub.queue))
        out = [sub.queue.popleft() for _ in range(n)]
        sub.received += n
        return out

    def disconnect(self, topic: str, name: str) -> None:
        """The subscriber's connection goes away. A durable queue stays in the broker; a
        connection's queue (not durable) goes with it, and its messages are lost."""
        sub = self.topics[topic][name]
        sub.connected = False
        if not sub.durable:
            sub.lost += len(sub.queue)
            sub.queue.clear()

    def reconnect(self, topic: str, name: str) -> None:
        self.topics[topic][name].connected = True

    def _overflow(self, sub: Subscription) -> None:
        """A subscription over ``max_queue``: drop its oldest message (a retention limit)."""
        sub.queue.popleft()
        sub.lost += 1


# ---------------------------------------------------------------- partitions and groups

def partition_for(key: str, partitions: int) -> int:
    """The partition of ``key``: a stable hash (CRC-32) modulo the partition count, so the
    same key always lands in the same partition (and keeps its order there)."""
    return zlib.crc32(key.encode()) % partitions


def assign_partitions(partitions: int, consumers: Sequence[str]) -> dict[str, list[int]]:
    """Give each partition to exactly one consumer of a group, round robin: partition p goes
    to ``consumers[p % C]``. Consumers beyond the partition count get nothing."""
    check_int("partitions", partitions, 1)
    if not consumers:
        raise ValueError("assign_partitions needs at least one consumer (got none)")
    owned: dict[str, list[int]] = {c: [] for c in consumers}
    for p in range(partitions):
        owned[consumers[p % len(consumers)]].append(p)
    return owned


class PartitionedTopic:
    """A topic as P append-only logs; a consumer group reads each partition from its own
    committed offset, each partition by exactly one member of the group."""

    def __init__(self, partitions: int, clock: Clock = time.monotonic) -> None:
        self.partitions = check_int("partitions", partitions, 1)
        self.clock = clock
        self.logs: list[list[Message]] = [[] for _ in range(partitions)]
        self.offsets: dict[str, list[int]] = {}  # group -> next offset per partition
        self._seq = 0

    def publish(self, key: str, payload: Any) -> tuple[int, int]:
        """Append to the key's partition; returns (partition, offset)."""
        p = partition_for(key, self.partitions)
        self.logs[p].append(Message("partitioned", self._seq, payload, self.clock(), key))
        self._seq += 1
        return p, len(self.logs[p]) - 1

    def poll(self, group: str, partitions: Sequence[int],
             max_messages: int | None = None) -> list[Message]:
        """The next messages of the given partitions for ``group``, partition by partition,
        and commit them (the group's offsets move past them)."""
        offsets = self.offsets.setdefault(group, [0] * self.partitions)
        out: list[Message] = []
        for p in partitions:
            room = None if max_messages is None else max_messages - len(out)
            end = len(self.logs[p]) if room is None else min(len(self.logs[p]),
                                                              offsets[p] + room)
            out.extend(self.logs[p][offsets[p]:end])
            offsets[p] = end
        return out


# ---------------------------------------------------------------- production-grade (Level 3)

@dataclass(frozen=True)
class BrokerConfig:
    """A broker's settings.

    ``max_queue``: the most messages one subscription may hold. ``slow_subscriber``: what
    happens to a subscription beyond it: ``"disconnect"`` (Redis pub/sub's rule for clients over
    ``client-output-buffer-limit pubsub``: the connection is closed and its queue discarded) or
    ``"drop_oldest"`` (a retention limit: the subscriber stays and misses the oldest).
    ``durable``: whether new subscriptions are durable.
    """

    max_queue: int = 1000
    slow_subscriber: str = "disconnect"
    durable: bool = False

    def __post_init__(self) -> None:
        check_int("BrokerConfig.max_queue", self.max_queue, 1)
        check_choice("BrokerConfig.slow_subscriber", self.slow_subscriber,
                     ("disconnect", "drop_oldest"))
        if not isinstance(self.durable, bool):
            raise ValueError(f"BrokerConfig.durable must be True or False (got {self.durable!r})")


class ProductionBroker(Broker):
    """The Level 2 broker, safe for threads, bounded, logged and measured.

    One lock guards the topics and queues; publishing never waits for a subscriber, and a
    subscriber that falls ``max_queue`` behind is handled by ``config.slow_subscriber`` instead
    of growing the broker's memory without bound. Counters: published, copies, delivered, lost
    (copies discarded), missed_offline (copies never made), slow_disconnects, so that
    copies = delivered + lost + queued; histograms: delivery_seconds (publish to poll) and
    fanout (copies per message). Log lines are written after the lock is released.
    """

    def __init__(self, name: str, config: BrokerConfig | None = None,
                 clock: Clock = time.monotonic) -> None:
        super().__init__(clock)
        self.name, self.config = name, config or BrokerConfig()
        self.metrics = Instruments("pubsub", "Messages through the broker")
        self.delivery = self.metrics.histogram("delivery_seconds",
                                               "Time from publish to poll, per copy")
        self.fanout = self.metrics.histogram(
            "fanout", "Copies made per published message",
            buckets=(0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000))
        self._lock = threading.Lock()
        self._to_log: list[str] = []

    def subscribe(self, topic: str, name: str, durable: bool | None = None,
                  max_queue: int | None = None) -> Subscription:
        with self._lock:
            return super().subscribe(topic, name, self.config.durable if durable is None
                                     else durable, max_queue or self.config.max_queue)

    def publish(self, topic: str, payload: Any, key: str | None = None) -> int:
        with self._lock:
            missed = self.missed
            made = super().publish(topic, payload, key)
            self.metrics.count("published")
            self.metrics.count("copies", made)
            self.metrics.count("missed_offline", self.missed - missed)
            self.fanout.observe(made)
        self._flush_log()
        return made

    def poll(self, topic: str, name: str, max_messages: int | None = None) -> list[Message]:
        with self._lock:
            out = super().poll(topic, name, max_messages)
            now = self.clock()
        for message in out:
            self.delivery.observe(now - message.published_at)
        self.metrics.count("delivered", len(out))
        return out

    def disconnect(self, topic: str, name: str) -> None:
        with self._lock:
            before = self.topics[topic][name].lost
            super().disconnect(topic, name)
            self.metrics.count("lost", self.topics[topic][name].lost - before)

    def reconnect(self, topic: str, name: str) -> None:
        with self._lock:
            super().reconnect(topic, name)

    def _overflow(self, sub: Subscription) -> None:  # called with the lock held
        if self.config.slow_subscriber == "drop_oldest":
            super()._overflow(sub)
            self.metrics.count("lost")
            return
        lost = len(sub.queue)
        sub.lost += lost
        sub.queue.clear()
        sub.connected = False
        self.metrics.count("lost", lost)
        self.metrics.count("slow_disconnects")
        self._to_log.append(f"broker {self.name}: subscriber {sub.name!r} of {sub.topic!r} "
                            f"went over max_queue={sub.max_queue}: disconnected, {lost} "
                            "queued messages discarded")

    def _flush_log(self) -> None:
        if not self._to_log:
            return
        with self._lock:
            lines, self._to_log = self._to_log, []
        for line in lines:
            log.warning(line)

    def queued(self) -> int:
        """Copies waiting in all subscriptions now."""
        with self._lock:
            return sum(len(s) for subs in self.topics.values() for s in subs.values())
