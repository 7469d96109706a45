"""Queue-based load leveling: a bounded queue between a bursty producer and a fixed worker pool.

Picture the ticket office of a football ground: fans arrive in waves when the trains come in,
but the office has four windows and each sale takes the same time. The queue in front of the
windows absorbs each wave; the windows work at their own steady pace, never faster, however
long the line. Nobody is turned away unless the line reaches the end of the street (the
queue's ``capacity``), and a fan whose card keeps failing is sent to a separate desk instead of
rejoining the line for ever (the dead-letter list).

`LevelingQueue` is the Level 2 idea: producers ``send`` and get an answer at once (accepted or
full); workers ``receive`` a message, which is leased to them for ``visibility_timeout_s``, and
``ack`` it when done. A lease that runs out (the worker crashed or was too slow) makes the
message visible again; a message received ``max_receives`` times without an ack goes to
``dead_letters``. Time comes from an injectable ``clock``, so the class runs in real time and
inside SimPy (``clock=lambda: env.now``).

`ProductionLevelingQueue` hardens it for Level 3: a validated `QueueConfig`, a lock and
condition (``receive`` can wait for a message, like a long poll), ``logging``, and
``prometheus_client`` metrics. `WorkerPool` is the fixed pool of threads that drains it, and
`RedisListQueue` the same protocol on a real broker: a Redis list, with the processing list of
the reliable-queue pattern (``BLMOVE``). Nothing here imports from ``simulations``.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from patterns.checks import check_int, check_positive
from patterns.metrics import Instruments

__all__ = ["LevelingQueue", "Message", "ProductionLevelingQueue", "QueueConfig",
           "RedisListQueue", "WorkerPool"]

Clock = Callable[[], float]
log = logging.getLogger(__name__)


@dataclass
class Message:
    """One message: id, body, when it was sent, how often and when last received, lease end."""

    id: int
    body: Any
    sent_at: float
    receives: int = 0
    received_at: float = 0.0
    lease_until: float = 0.0


class LevelingQueue:
    """A bounded FIFO of messages with leases: ``send``, ``receive``, ``ack``.

    ``capacity`` bounds the messages held (waiting plus leased; None: unbounded). A received
    message stays held until it is acked; if its lease of ``visibility_timeout_s`` ends first,
    it goes back to the front of the line. A message already received ``max_receives`` times
    (None: no limit) is moved to ``dead_letters`` instead of being handed out again.
    """

    def __init__(self, capacity: int | None = None, visibility_timeout_s: float = 30.0,
                 max_receives: int | None = None, clock: Clock = time.monotonic) -> None:
        self.capacity = None if capacity is None else check_int("capacity", capacity, 1)
        self.visibility_timeout_s = check_positive("visibility_timeout_s", visibility_timeout_s)
        self.max_receives = None if max_receives is None else check_int(
            "max_receives", max_receives, 1)
        self.clock = clock
        self.ready: deque[Message] = deque()  # waiting, oldest first
        self.leased: dict[int, Message] = {}  # received, not yet acked
        self.dead_letters: list[Message] = []
        self.sent = self.rejected = self.acked = 0
        self._ids = itertools.count()

    def __len__(self) -> int:
        """Messages held: waiting plus leased (what ``capacity`` bounds)."""
        return len(self.ready) + len(self.leased)

    @property
    def depth(self) -> int:
        """Messages waiting for a worker (the backlog)."""
        return len(self.ready)

    def send(self, body: Any) -> Message | None:
        """Queue ``body``; the new `Message`, or None (counted in ``rejected``) when full."""
        if self.capacity is not None and len(self) >= self.capacity:
            self.rejected += 1
            return None
        message = Message(next(self._ids), body, self.clock())
        self.ready.append(message)
        self.sent += 1
        return message

    def receive(self) -> Message | None:
        """Lease the oldest waiting message to the caller (None if nothing is waiting)."""
        now = self.clock()
        self._expire(now)
        while self.ready:
            message = self.ready.popleft()
            if self.max_receives is not None and message.receives >= self.max_receives:
                self.dead_letters.append(message)  # poison: stop handing it out
                continue
            message.receives += 1
            message.received_at = now
            message.lease_until = now + self.visibility_timeout_s
            self.leased[message.id] = message
            return message
        return None

    def ack(self, message: Message) -> None:
        """The work is done: delete the message. A lease that already ran out cannot be acked."""
        self._expire(self.clock())
        if self.leased.pop(message.id, None) is None:
            raise KeyError(f"message {message.id} is not leased (its lease ran out, or it was "
                           "acked already)")
        self.acked += 1

    def nack(self, message: Message) -> None:
        """The work failed: end the lease now, so the message is redelivered at once."""
        if self.leased.pop(message.id, None) is not None:
            self.ready.appendleft(message)

    def oldest_age(self) -> float:
        """Seconds the oldest waiting message has waited (0 when none waits)."""
        return self.clock() - self.ready[0].sent_at if self.ready else 0.0

    def _expire(self, now: float) -> None:
        expired = sorted((m for m in self.leased.values() if m.lease_until <= now),
                         key=lambda m: m.id, reverse=True)
        for message in expired:  # back to the front of the line, oldest first
            del self.leased[message.id]
            self.ready.appendleft(message)


@dataclass(frozen=True)
class QueueConfig:
    """A production queue's settings, checked when created (``max_receives`` None: no limit).

    30 s is Amazon SQS's default visibility timeout; the bound and the receive limit are this
    course's choices, not a broker's defaults.
    """

    capacity: int = 10_000
    visibility_timeout_s: float = 30.0
    max_receives: int | None = 5

    def __post_init__(self) -> None:
        check_int("QueueConfig.capacity", self.capacity, 1)
        check_positive("QueueConfig.visibility_timeout_s", self.visibility_timeout_s)
        if self.max_receives is not None:
            check_int("QueueConfig.max_receives", self.max_receives, 1)


class ProductionLevelingQueue(LevelingQueue):
    """The Level 2 queue, thread-safe and observable; ``receive(timeout_s)`` waits for work.

    Counters: sent, rejected, received, redelivered, acked, nacked, dead_lettered; histograms:
    the wait from send to first receive, and the time from receive to ack.
    """

    def __init__(self, name: str, config: QueueConfig | None = None,
                 clock: Clock = time.monotonic) -> None:
        self.name, self.config = name, config or QueueConfig()
        super().__init__(self.config.capacity, self.config.visibility_timeout_s,
                         self.config.max_receives, clock)
        self._lock = threading.Condition()
        self.metrics = Instruments("leveling_queue", "Messages through the queue")
        self._wait = self.metrics.histogram("wait_seconds", "Send to first receive")
        self._work = self.metrics.histogram("work_seconds", "Receive to ack")

    def send(self, body: Any) -> Message | None:
        with self._lock:
            message = super().send(body)
            self.metrics.count("sent" if message is not None else "rejected")
            if message is not None:
                self._lock.notify()
            depth = len(self)
        if message is None:
            log.warning("%s: full at %d messages, send rejected", self.name, depth)
        return message

    def receive(self, timeout_s: float = 0.0) -> Message | None:
        """Lease the oldest message, waiting up to ``timeout_s`` for one to arrive."""
        deadline = time.monotonic() + timeout_s
        dead: list[Message] = []
        with self._lock:
            while True:
                before = len(self.dead_letters)
                message = super().receive()
                dead.extend(self.dead_letters[before:])
                if message is not None or time.monotonic() >= deadline:
                    break
                self._lock.wait(deadline - time.monotonic())
            if message is not None:
                self.metrics.count("received")
                if message.receives == 1:
                    self._wait.observe(self.clock() - message.sent_at)
                else:
                    self.metrics.count("redelivered")
            if dead:
                self.metrics.count("dead_lettered", len(dead))
        for poison in dead:
            log.error("%s: message %d dead-lettered after %d receives", self.name, poison.id,
                      poison.receives)
        return message

    def ack(self, message: Message) -> None:
        with self._lock:
            super().ack(message)
            self.metrics.count("acked")
            self._work.observe(max(self.clock() - message.received_at, 0.0))

    def nack(self, message: Message) -> None:
        with self._lock:
            super().nack(message)
            self.metrics.count("nacked")
            self._lock.notify()

    def stats(self) -> dict[str, int]:
        """A consistent snapshot of the gauges: waiting, leased, dead letters."""
        with self._lock:
            return {"depth": self.depth, "leased": len(self.leased),
                    "dead_letters": len(self.dead_letters)}


class WorkerPool:
    """``workers`` threads that drain ``queue`` at their own pace: receive, handle, ack.

    A handler that raises gets its message nacked (redelivered, and dead-lettered by the queue
    after ``max_receives``). ``stop()`` lets each worker finish its message, then joins them.
    """

    def __init__(self, queue: ProductionLevelingQueue, handler: Callable[[Any], None],
                 workers: int, poll_s: float = 0.02) -> None:
        self.queue, self.handler = queue, handler
        self.poll_s = check_positive("poll_s", poll_s)
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._run, name=f"{queue.name}-worker-{i}",
                                          daemon=True)
                         for i in range(check_int("workers", workers, 1))]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            message = self.queue.receive(timeout_s=self.poll_s)
            if message is None:
                continue
            try:
                self.handler(message.body)
            except Exception:
                log.debug("%s: handler failed on message %d", self.queue.name, message.id,
                          exc_info=True)
                self.queue.nack(message)
            else:
                self.queue.ack(message)

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Stop every worker after its current message; True if all have ended."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout_s)
        return not any(thread.is_alive() for thread in self._threads)


_BOUNDED_PUSH = """
if redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('RPUSH', KEYS[1], ARGV[1])
return 1
"""


class RedisListQueue:
    """The same send / receive / ack on a real broker, a Redis list (the reliable-queue
    pattern of Redis's ``LMOVE`` documentation).

    ``send`` pushes to ``<name>:ready`` unless ready plus processing hold ``capacity`` (one Lua
    script, so the check and the push are atomic); ``receive`` moves the oldest message to
    ``<name>:processing`` with ``BLMOVE`` (so a worker that dies leaves it there, recoverable,
    instead of lost); ``ack`` removes it from the processing list.
    """

    def __init__(self, client: Any, name: str, capacity: int) -> None:
        self.client, self.capacity = client, check_int("capacity", capacity, 1)
        self.ready_key, self.processing_key = f"{name}:ready", f"{name}:processing"
        self._push = client.register_script(_BOUNDED_PUSH)
        self._ids = itertools.count()

    def send(self, body: Any) -> bool:
        payload = json.dumps({"id": next(self._ids), "body": body})
        return bool(self._push(keys=[self.ready_key, self.processing_key],
                               args=[payload, self.capacity]))

    def receive(self, timeout_s: float = 0.1) -> str | None:
        """The oldest message's raw payload (pass it to ``ack``), or None after the timeout."""
        raw = self.client.blmove(self.ready_key, self.processing_key, timeout_s, "LEFT", "RIGHT")
        return raw.decode() if isinstance(raw, bytes) else raw

    @staticmethod
    def body(raw: str) -> Any:
        return json.loads(raw)["body"]

    def ack(self, raw: str) -> None:
        self.client.lrem(self.processing_key, 1, raw)

    @property
    def depth(self) -> int:
        return int(self.client.llen(self.ready_key))

    @property
    def processing(self) -> int:
        return int(self.client.llen(self.processing_key))
