"""Request batching: collect small requests and send them as one, by size or after a linger.

Picture a lift at the ground floor. It could carry each person up alone, but every trip costs
the same door-closing and acceleration whoever is inside, so it waits a few seconds for more
people, and leaves at once when it is full. The fixed cost of a trip (s₀) is shared by
everyone aboard; each extra person costs only a little (s₁).

`Batcher` is the Level 2 idea: ``add`` items; a batch is flushed when it holds ``max_items``
or when its oldest item has waited ``linger_s``, whichever comes first (Kafka's producer calls
these ``batch.size``, in bytes, and ``linger.ms``). Time comes from an injectable ``clock``,
so the same class runs in real time and inside SimPy (``clock=lambda: env.now``), where the
caller ``poll``\\ s at ``deadline()``.

`ProductionBatcher` hardens it for Level 3: a validated `BatcherConfig`, a lock, a flusher
thread that owns every call to the flush callback (so batches leave in order and callers never
block on I/O), a bound on pending items (`BatcherFullError`, backpressure), a failed flush kept
in ``failed`` instead of lost, ``logging``, and ``prometheus_client`` metrics. `SQLiteSink` is
a real flush callback: one transaction per batch.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from patterns.checks import check_int, check_non_negative
from patterns.metrics import Instruments

Clock = Callable[[], float]
Flush = Callable[[list[Any]], None]
log = logging.getLogger(__name__)


class Batcher:
    """Flush when ``max_items`` are pending or the oldest has waited ``linger_s``."""

    def __init__(self, max_items: int, linger_s: float, flush: Flush,
                 clock: Clock = time.monotonic) -> None:
        self.max_items = check_int("max_items", max_items, 1)
        self.linger_s = check_non_negative("linger_s", linger_s)
        self.flush, self.clock = flush, clock
        self.pending: list[Any] = []
        self.first_at = math.inf  # when the oldest pending item arrived
        self.flushes: list[tuple[float, int, str]] = []  # (time, batch size, "size" | "linger")

    def add(self, item: Any) -> None:
        """Queue ``item``; flush at once if the batch is full or its linger is already over."""
        now = self.clock()
        if not self.pending:
            self.first_at = now
        self.pending.append(item)
        if len(self.pending) >= self.max_items:
            self.flush(self._take(now, "size"))
        elif now >= self.deadline():
            self.flush(self._take(now, "linger"))

    def deadline(self) -> float:
        """When the oldest pending item's linger ends (infinity when nothing is pending)."""
        return self.first_at + self.linger_s

    def poll(self) -> None:
        """Flush if the linger of the oldest pending item is over (call it at ``deadline()``)."""
        now = self.clock()
        if self.pending and now >= self.deadline():
            self.flush(self._take(now, "linger"))

    def _take(self, now: float, reason: str) -> list[Any]:
        batch, self.pending, self.first_at = self.pending, [], math.inf
        self.flushes.append((now, len(batch), reason))
        return batch


class BatcherFullError(RuntimeError):
    """``max_pending`` items are already waiting: the caller must slow down (backpressure)."""


@dataclass(frozen=True)
class BatcherConfig:
    """A production batcher's settings, checked when created."""

    max_items: int = 100
    linger_s: float = 0.005
    max_pending: int = 10_000

    def __post_init__(self) -> None:
        check_int("BatcherConfig.max_items", self.max_items, 1)
        check_non_negative("BatcherConfig.linger_s", self.linger_s)
        check_int("BatcherConfig.max_pending", self.max_pending, self.max_items)


class ProductionBatcher(Batcher):
    """A thread-safe batcher whose own flusher thread calls ``flush``, one batch at a time.

    ``add`` only queues and wakes the flusher; ``close()`` flushes what is left and stops it.
    A flush that raises is logged, counted and its batch kept in ``failed``.
    """

    def __init__(self, name: str, config: BatcherConfig, flush: Flush,
                 clock: Clock = time.monotonic) -> None:
        super().__init__(config.max_items, config.linger_s, flush, clock)
        self.name, self.config = name, config
        self.failed: list[list[Any]] = []
        self._lock = threading.Condition()
        self._closing = False
        self.metrics = Instruments("batcher", "Items and batches through the batcher")
        self._sizes = self.metrics.histogram(
            "batch_items", "Items per flushed batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024))
        self._flush_seconds = self.metrics.histogram("flush_seconds", "Time in the flush callback")
        self._thread = threading.Thread(target=self._run, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    def add(self, item: Any) -> None:
        with self._lock:
            if self._closing:
                raise RuntimeError(f"batcher {self.name} is closed")
            if len(self.pending) >= self.config.max_pending:
                self.metrics.count("rejected")
                raise BatcherFullError(f"batcher {self.name}: {len(self.pending)} items pending")
            if not self.pending:
                self.first_at = self.clock()
                self._lock.notify()  # the flusher now has a deadline to wait for
            self.pending.append(item)
            self.metrics.count("items")
            if len(self.pending) >= self.max_items:
                self._lock.notify()

    def close(self, timeout_s: float = 5.0) -> None:
        """Flush every pending item, then stop the flusher thread."""
        with self._lock:
            self._closing = True
            self._lock.notify()
        self._thread.join(timeout_s)

    def _next_batch(self) -> list[Any] | None:
        with self._lock:
            while True:
                now = self.clock()
                if len(self.pending) >= self.max_items:
                    return self._counted(self._take_up_to(now, "size"), "size")
                if self.pending and (now >= self.deadline() or self._closing):
                    reason = "close" if self._closing and now < self.deadline() else "linger"
                    return self._counted(self._take_up_to(now, reason), reason)
                if self._closing:
                    return None
                wait = self.deadline() - now if self.pending else None
                self._lock.wait(wait)

    def _take_up_to(self, now: float, reason: str) -> list[Any]:
        self.pending, rest = self.pending[: self.max_items], self.pending[self.max_items:]
        batch = self._take(now, reason)
        if rest:  # more than a batch piled up while the last flush ran: they start a new one
            self.pending, self.first_at = rest, now
        return batch

    def _counted(self, batch: list[Any], reason: str) -> list[Any]:
        self.metrics.count(f"flush_{reason}")
        self._sizes.observe(len(batch))
        return batch

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            started = time.perf_counter()
            try:
                self.flush(batch)
                self.metrics.count("batches")
                self.metrics.count("flushed_items", len(batch))
            except Exception:
                log.exception("batcher %s: flush of %d items failed; kept in failed",
                              self.name, len(batch))
                self.metrics.count("flush_errors")
                self.failed.append(batch)
            finally:
                self._flush_seconds.observe(time.perf_counter() - started)


class SQLiteSink:
    """A real flush callback: insert each batch into SQLite in one transaction (one commit)."""

    def __init__(self, path: str) -> None:
        self.connection = sqlite3.connect(path, check_same_thread=False)
        self.connection.execute("CREATE TABLE IF NOT EXISTS events (id INTEGER, body TEXT)")
        self.connection.commit()

    def insert(self, rows: Sequence[tuple[int, str]]) -> None:
        with self.connection:  # BEGIN ... COMMIT: the commit is the fixed cost s₀
            self.connection.executemany("INSERT INTO events VALUES (?, ?)", rows)

    def count(self) -> int:
        return self.connection.execute("SELECT COUNT(*) FROM events").fetchone()[0]

    def close(self) -> None:
        self.connection.close()


__all__ = ["Batcher", "BatcherConfig", "BatcherFullError", "ProductionBatcher", "SQLiteSink"]
