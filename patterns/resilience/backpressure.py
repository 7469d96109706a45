"""Bounded buffers: a belt between a producer and a consumer that holds at most so many items.

Picture a baker who puts trays on a belt and a packer who takes them off. The belt holds
``capacity`` trays; when it is full the baker must throw the tray away, wait for a free place,
or slow down when told to. ``BoundedBuffer`` is the small version with an injectable clock (the
producer's credit is ``free_slots``); ``ProductionBoundedBuffer`` adds a validated
``BufferConfig``, thread safety, a blocking ``put`` with a timeout, high and low watermarks that
signal pause and resume to listeners, ``logging``, and ``prometheus_client`` metrics.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from patterns.checks import check_int, check_positive
from patterns.metrics import Instruments

log = logging.getLogger(__name__)
Clock = Callable[[], float]


# ---------------------------------------------------------------- Level 2: the small class


class BoundedBuffer:
    """A FIFO of at most ``capacity`` items; ``offer`` refuses (returns False) when it is full.

    ``free_slots`` is the producer's credit: how many more items it may send now. ``take``
    returns the oldest item and how long it waited, timed by ``clock``.
    """

    def __init__(self, capacity: int, clock: Clock = time.monotonic) -> None:
        self.capacity = check_int("capacity", capacity, 1)
        self.clock = clock
        self.items: deque[tuple[Any, float]] = deque()
        self.accepted = self.rejected = 0

    def __len__(self) -> int:
        return len(self.items)

    @property
    def free_slots(self) -> int:
        return self.capacity - len(self.items)

    def offer(self, item: Any) -> bool:
        """Append ``item`` if there is room; False (and counted as rejected) if full."""
        if len(self.items) >= self.capacity:
            self.rejected += 1
            return False
        self.items.append((item, self.clock()))
        self.accepted += 1
        return True

    def take(self) -> tuple[Any, float]:
        """Remove the oldest item: ``(item, seconds it waited)``."""
        if not self.items:
            raise IndexError("take from an empty BoundedBuffer (check len(buffer) first)")
        item, since = self.items.popleft()
        return item, self.clock() - since


# ---------------------------------------------------------------- Level 3: production version


class BufferFull(Exception):
    """A blocking ``put`` found no free slot within its timeout."""


@dataclass(frozen=True)
class BufferConfig:
    """Validated settings of a ``ProductionBoundedBuffer``.

    ``high_watermark`` (default: capacity) is the depth at which consumers of the signal should
    pause their source; ``low_watermark`` (default: half of it) the depth at which they resume.
    ``put_timeout_s`` is how long a blocking ``put`` waits for room (None: forever).
    """

    capacity: int = 1000
    high_watermark: int | None = None
    low_watermark: int | None = None
    put_timeout_s: float | None = None

    def __post_init__(self) -> None:
        capacity = check_int("BufferConfig.capacity", self.capacity, 1)
        high = capacity if self.high_watermark is None else self.high_watermark
        high = check_int("BufferConfig.high_watermark", high, 1, capacity)
        low = high // 2 if self.low_watermark is None else self.low_watermark
        low = check_int("BufferConfig.low_watermark", low, 0, high - 1)
        object.__setattr__(self, "high_watermark", high)
        object.__setattr__(self, "low_watermark", low)
        if self.put_timeout_s is not None:
            check_positive("BufferConfig.put_timeout_s", self.put_timeout_s)


Listener = Callable[[str, str, int], None]  # (buffer name, "pause" or "resume", depth)


class ProductionBoundedBuffer(BoundedBuffer):
    """The Level 2 buffer made safe for threads, observable and able to push back.

    ``put`` blocks the producer until there is room (backpressure) or ``put_timeout_s`` passes
    (``BufferFull``); ``offer`` never blocks (drop). Crossing the high watermark on the way up
    announces "pause" once, and the low watermark on the way down "resume" once, to listeners
    (run outside the lock) and the log. Counters and two histograms (time producers were
    blocked, time items waited in the buffer) are what a metrics exporter would read.
    """

    def __init__(self, name: str, config: BufferConfig | None = None,
                 clock: Clock = time.monotonic, listeners: Iterable[Listener] = ()) -> None:
        self.name, self.config = name, config or BufferConfig()
        super().__init__(self.config.capacity, clock)
        self.listeners = list(listeners)
        self.metrics = Instruments("bounded_buffer", "Items through the buffer")
        self.blocked = self.metrics.histogram("blocked_seconds", "How long producers were blocked")
        self.waited = self.metrics.histogram("wait_seconds", "How long items waited in the buffer")
        self.paused = False
        self._lock = threading.Lock()
        self._not_full = threading.Condition(self._lock)
        self._not_empty = threading.Condition(self._lock)

    def offer(self, item: Any) -> bool:
        with self._lock:
            self.metrics.count("offered")
            ok = super().offer(item)
            self.metrics.count("accepted" if ok else "rejected")
            signal = self._watermark() if ok else None
            if ok:
                self._not_empty.notify()
        self._announce(signal)
        return ok

    def put(self, item: Any, timeout_s: float | None = None) -> None:
        """Add ``item``, waiting while the buffer is full; ``BufferFull`` after the timeout."""
        timeout = self.config.put_timeout_s if timeout_s is None else timeout_s
        started = time.monotonic()
        with self._lock:
            self.metrics.count("offered")
            if len(self.items) >= self.capacity:
                self.metrics.count("blocked_puts")
            if not self._not_full.wait_for(lambda: len(self.items) < self.capacity, timeout):
                self.metrics.count("put_timeouts")
                log.warning("%s: put timed out after %.3f s (buffer full at %d)",
                            self.name, timeout, self.capacity)
                raise BufferFull(f"{self.name}: no free slot within {timeout} s")
            super().offer(item)
            self.metrics.count("accepted")
            self.blocked.observe(time.monotonic() - started)
            signal = self._watermark()
            self._not_empty.notify()
        self._announce(signal)

    def get(self, timeout_s: float | None = None) -> Any:
        """Remove the oldest item, waiting up to ``timeout_s`` for one (``TimeoutError``)."""
        with self._lock:
            if not self._not_empty.wait_for(lambda: len(self.items) > 0, timeout_s):
                raise TimeoutError(f"{self.name}: empty for {timeout_s} s")
            item, waited = super().take()
            self.metrics.count("taken")
            self.waited.observe(waited)
            signal = self._watermark()
            self._not_full.notify()
        self._announce(signal)
        return item

    def _watermark(self) -> tuple[str, int] | None:
        """Called under the lock: the pause/resume signal this depth triggers, if any."""
        depth = len(self.items)
        if not self.paused and depth >= self.config.high_watermark:
            self.paused = True
        elif self.paused and depth <= self.config.low_watermark:
            self.paused = False
        else:
            return None
        kind = "pause" if self.paused else "resume"
        self.metrics.count(kind + "s")
        return kind, depth

    def _announce(self, signal: tuple[str, int] | None) -> None:
        if signal is None:
            return
        kind, depth = signal
        log.info("%s: %s at depth %d of %d", self.name, kind, depth, self.capacity)
        for listener in self.listeners:
            listener(self.name, kind, depth)


