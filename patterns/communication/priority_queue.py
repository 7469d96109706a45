"""Priority Queue: hand out the most urgent waiting message first, oldest first within a level.

Picture the triage desk of an emergency room: whoever arrives with chest pain is seen before
the sprained ankle that came in an hour earlier, and two sprained ankles are seen in the order
they came. Left at that, the ankle may wait all night; a fair desk lets a patient's urgency
grow with the time they have waited (aging), so nobody waits for ever.

`PriorityQueue` is the Level 2 idea: ``put(item, priority)`` (0 is the most urgent), ``get()``
returns the waiting item of the best *effective* priority, the oldest first within it. With
``aging_s`` an item's effective priority improves by one level per ``aging_s`` seconds waited.
Because every item ages at the same rate, the order between two waiting items never changes
while they wait: the item put at time t with priority p ranks by the fixed key p + t/aging_s,
so one heap serves both (no re-sorting as time passes). Time comes from an injectable ``clock``,
so the same class runs in real time and inside a simulation (``clock=lambda: env.now``).

`ProductionPriorityQueue` hardens it for Level 3: a validated `QueueConfig`, a lock with a
blocking ``get(timeout_s)``, a bound on waiting items (`QueueFullError`, or evict the least
urgent when a more urgent item arrives), ``logging`` and ``prometheus_client`` metrics.
`RedisPriorityQueue` keeps the same order in a real Redis sorted set (ZADD / ZPOPMIN), so
several processes can share one queue.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from patterns.checks import check_int, check_positive
from patterns.metrics import Instruments

Clock = Callable[[], float]
log = logging.getLogger(__name__)


class PriorityQueue:
    """Lowest effective priority first (0 = most urgent), first in first out within a level.

    ``aging_s`` (None: no aging): an item waiting ``w`` seconds ranks as priority − w/aging_s.
    """

    def __init__(self, levels: int = 2, aging_s: float | None = None,
                 clock: Clock = time.monotonic) -> None:
        self.levels = check_int("levels", levels, 1)
        self.aging_s = None if aging_s is None else check_positive("aging_s", aging_s)
        self.clock = clock
        self._heap: list[tuple[float, int, int, float, Any]] = []
        self._seq = itertools.count()  # breaks ties first come first served
        self.waiting = [0] * self.levels  # items waiting, per priority level

    def __len__(self) -> int:
        return len(self._heap)

    def rank(self, priority: int, put_at: float) -> float:
        """The fixed sort key: priority, minus the aging credit counted from time 0."""
        return priority if self.aging_s is None else priority + put_at / self.aging_s

    def put(self, item: Any, priority: int) -> None:
        """Queue ``item`` at ``priority`` (an int in 0 .. levels − 1)."""
        check_int("priority", priority, 0, self.levels - 1)
        now = self.clock()
        heapq.heappush(self._heap, (self.rank(priority, now), next(self._seq), priority, now, item))
        self.waiting[priority] += 1

    def get(self) -> tuple[Any, int, float]:
        """Remove and return (item, priority, seconds it waited); IndexError when empty."""
        if not self._heap:
            raise IndexError("get from an empty priority queue")
        _, _, priority, put_at, item = heapq.heappop(self._heap)
        self.waiting[priority] -= 1
        return item, priority, self.clock() - put_at

    def peek(self) -> tuple[Any, int] | None:
        """The (item, priority) ``get`` would return, or None when empty."""
        return (self._heap[0][4], self._heap[0][2]) if self._heap else None


class QueueFullError(RuntimeError):
    """``max_size`` items already wait and none is less urgent than the new one."""


@dataclass(frozen=True)
class QueueConfig:
    """A production priority queue's settings, checked when created.

    ``evict_lower``: when full, drop the least urgent waiting item to make room for a more
    urgent one (instead of refusing the new one).
    """

    levels: int = 3
    aging_s: float | None = None
    max_size: int = 10_000
    evict_lower: bool = True

    def __post_init__(self) -> None:
        check_int("QueueConfig.levels", self.levels, 1, 255)
        if self.aging_s is not None:
            check_positive("QueueConfig.aging_s", self.aging_s)
        check_int("QueueConfig.max_size", self.max_size, 1)


class ProductionPriorityQueue(PriorityQueue):
    """A thread-safe priority queue with a bound, a blocking ``get`` and metrics per level."""

    def __init__(self, name: str, config: QueueConfig | None = None,
                 clock: Clock = time.monotonic) -> None:
        config = config if config is not None else QueueConfig()
        super().__init__(config.levels, config.aging_s, clock)
        self.name, self.config = name, config
        self.evicted: list[tuple[Any, int]] = []
        self._lock = threading.Condition()
        self.metrics = Instruments("priority_queue", "Messages through the priority queue")
        self._wait_seconds = self.metrics.histogram(
            "wait_seconds", "Time a message waited in the queue",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60))

    def put(self, item: Any, priority: int) -> None:
        check_int("priority", priority, 0, self.levels - 1)
        with self._lock:
            if len(self._heap) >= self.config.max_size:
                self._make_room(priority)
            super().put(item, priority)
            self.metrics.count(f"put_p{priority}")
            self._lock.notify()

    def _make_room(self, priority: int) -> None:
        worst = max(range(len(self._heap)), key=lambda i: self._heap[i][:2])
        rank, _, lowest, put_at, victim = self._heap[worst]
        if not self.config.evict_lower or rank <= self.rank(priority, self.clock()):
            self.metrics.count(f"rejected_p{priority}")
            log.warning("queue %s full (%d): refused a priority-%d message", self.name,
                        len(self._heap), priority)
            raise QueueFullError(f"priority queue {self.name} is full "
                                 f"({self.config.max_size} messages waiting)")
        self._heap[worst] = self._heap[-1]
        self._heap.pop()
        heapq.heapify(self._heap)
        self.waiting[lowest] -= 1
        self.evicted.append((victim, lowest))
        self.metrics.count(f"evicted_p{lowest}")
        log.info("queue %s full: evicted a priority-%d message for a priority-%d one",
                 self.name, lowest, priority)

    def get(self, timeout_s: float | None = None) -> tuple[Any, int, float]:
        """Wait up to ``timeout_s`` (None: for ever) for an item; TimeoutError if none came."""
        deadline = math.inf if timeout_s is None else time.monotonic() + timeout_s
        with self._lock:
            while not self._heap:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"priority queue {self.name}: nothing to get")
                self._lock.wait(None if math.isinf(left) else left)
            item, priority, waited = super().get()
        self.metrics.count(f"get_p{priority}")
        self._wait_seconds.observe(waited)
        return item, priority, waited


class RedisPriorityQueue:
    """The same order in a Redis sorted set: score = rank(priority, put time), ZPOPMIN to get.

    Members are ``"<seq>:<payload>"`` with a zero-padded sequence number, so equal scores (one
    level, no aging) pop first come first served, as Redis orders equal scores by member.
    """

    def __init__(self, client: Any, key: str, levels: int = 2, aging_s: float | None = None,
                 clock: Clock = time.time) -> None:
        self.order = PriorityQueue(levels, aging_s, clock)  # the rank rule, shared
        self.client, self.key, self.clock = client, key, clock

    def put(self, payload: str, priority: int) -> None:
        check_int("priority", priority, 0, self.order.levels - 1)
        seq = self.client.incr(f"{self.key}:seq")
        score = self.order.rank(priority, self.clock())
        self.client.zadd(self.key, {f"{seq:015d}:{priority}:{payload}": score})

    def get(self) -> tuple[str, int] | None:
        """(payload, priority) of the best-ranked member, removed atomically; None if empty."""
        popped = self.client.zpopmin(self.key)
        if not popped:
            return None
        member = popped[0][0]
        member = member.decode() if isinstance(member, bytes) else member
        _, priority, payload = member.split(":", 2)
        return payload, int(priority)

    def __len__(self) -> int:
        return int(self.client.zcard(self.key))


__all__ = ["PriorityQueue", "ProductionPriorityQueue", "QueueConfig", "QueueFullError",
           "RedisPriorityQueue"]
