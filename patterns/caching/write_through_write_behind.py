"""Write-through and write-behind caches: when does a write reach the database?

Picture a waiter taking orders. A write-through waiter walks each order to the kitchen before
saying "noted": slow, but nothing is forgotten if he faints. A write-behind waiter says "noted"
at once, jots the order on his pad and takes the pad to the kitchen every few minutes: fast,
and a second order for the same table just overwrites the first on the pad; but if he faints,
the pad's orders are gone.

``WriteThroughCache`` writes the store first, then the cache. ``WriteBehindCache`` keeps a
*dirty set* (key -> latest value, in the order keys first became dirty) and writes it to the
store in batches of at most ``max_batch`` when ``flush()`` is called (``tick()`` calls it every
``flush_interval_s`` of its injectable ``clock``). A flush clears only the entries it wrote and
that nobody rewrote meanwhile. ``take_batch()`` and ``written(batch)`` are the two halves of a
flush, for a simulation in which the store takes time. ``ProductionWriteBehindCache`` adds a
validated config, a lock, a bounded dirty set (backpressure), retried flushes, a background
flusher, logging and Prometheus metrics. The stores (``DictStore``, ``SQLiteStore``) take a
batch in one call. Nothing here imports from ``simulations``.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import Gauge

from patterns.caching.eviction_policies import LRUCache
from patterns.checks import check_int, check_non_negative, check_positive
from patterns.metrics import Instruments

__all__ = ["BufferFullError", "DictStore", "FlushFailedError", "ProductionWriteBehindCache",
           "SQLiteStore", "Store", "WriteBehindCache", "WriteBehindConfig", "WriteThroughCache"]

Clock = Callable[[], float]
Batch = list[tuple[Hashable, Any]]
log = logging.getLogger(__name__)


class Store(Protocol):
    """The database behind the cache: writes a batch of (key, value) in one call."""

    def write_many(self, items: Sequence[tuple[Hashable, Any]]) -> None: ...

    def read(self, key: Hashable, default: Any = None) -> Any: ...


class DictStore:
    """A store in a dict that remembers every batch it was given (``batches``)."""

    def __init__(self) -> None:
        self.data: dict[Hashable, Any] = {}
        self.batches: list[Batch] = []

    def write_many(self, items: Sequence[tuple[Hashable, Any]]) -> None:
        self.batches.append(list(items))
        self.data.update(items)

    def read(self, key: Hashable, default: Any = None) -> Any:
        return self.data.get(key, default)


class SQLiteStore:
    """A key-value table in SQLite; each batch is one transaction (all rows or none)."""

    def __init__(self, path: str) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.connection.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value)")

    UPSERT = "INSERT INTO kv VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"

    def write_many(self, items: Sequence[tuple[Hashable, Any]]) -> None:
        with self.connection:  # BEGIN ... COMMIT, or ROLLBACK on an error
            self.connection.execute("BEGIN")
            self.connection.executemany(self.UPSERT, [(str(k), v) for k, v in items])

    def read(self, key: Hashable, default: Any = None) -> Any:
        row = self.connection.execute("SELECT value FROM kv WHERE key = ?", (str(key),)).fetchone()
        return default if row is None else row[0]

    def items(self) -> dict[str, Any]:
        return dict(self.connection.execute("SELECT key, value FROM kv"))

    def close(self) -> None:
        self.connection.close()


class WriteThroughCache:
    """Every write goes to the store before it is acknowledged; reads are served from an LRU."""

    def __init__(self, store: Store, capacity: int = 1024) -> None:
        self.store = store
        self.cache = LRUCache(capacity)

    def put(self, key: Hashable, value: Any) -> None:
        self.store.write_many([(key, value)])  # durable first: a crash after this loses nothing
        self.cache.put(key, value)

    def get(self, key: Hashable, default: Any = None) -> Any:
        value = self.cache.get(key, _MISSING)
        if value is _MISSING:
            value = self.store.read(key, _MISSING)
            if value is _MISSING:
                return default
            self.cache.put(key, value)
        return value


_MISSING = object()


class WriteBehindCache(WriteThroughCache):
    """Writes are acknowledged once in memory and reach the store at the next flush.

    ``dirty`` maps each key written since its last flush to its latest value (a rewrite keeps
    the key's place: coalescing). ``flush()`` writes the oldest ``max_batch`` entries (all of
    them if None) in one store call. ``tick()`` flushes once ``flush_interval_s`` has passed
    since the last flush began.
    """

    def __init__(self, store: Store, flush_interval_s: float, max_batch: int | None = None,
                 capacity: int = 1024, clock: Clock = time.monotonic) -> None:
        super().__init__(store, capacity)
        self.flush_interval_s = check_positive("flush_interval_s", flush_interval_s)
        self.max_batch = None if max_batch is None else check_int("max_batch", max_batch, 1)
        self.clock = clock
        self.dirty: dict[Hashable, Any] = {}
        self.last_flush = clock()

    def put(self, key: Hashable, value: Any) -> None:
        self.dirty[key] = value  # acknowledged now, durable only after a flush
        self.cache.put(key, value)

    def get(self, key: Hashable, default: Any = None) -> Any:
        if key in self.dirty:  # the LRU may have evicted it; the dirty set never does
            return self.dirty[key]
        return super().get(key, default)

    def take_batch(self) -> Batch:
        """The oldest dirty entries, at most ``max_batch``, in the order they became dirty."""
        return list(itertools.islice(self.dirty.items(), self.max_batch))

    def written(self, batch: Batch) -> None:
        """The store holds ``batch``: clean each key unless it was rewritten since."""
        for key, value in batch:
            if key in self.dirty and self.dirty[key] == value:
                del self.dirty[key]

    def flush(self) -> int:
        """Write one batch to the store; return how many entries it held."""
        self.last_flush = self.clock()
        batch = self.take_batch()
        if batch:
            self.store.write_many(batch)
            self.written(batch)
        return len(batch)

    def tick(self) -> int:
        """Flush if ``flush_interval_s`` has passed since the last flush began."""
        if self.clock() - self.last_flush >= self.flush_interval_s:
            return self.flush()
        return 0


class BufferFullError(RuntimeError):
    """The dirty set stayed full for ``put_timeout_s``: the store is not keeping up."""


class FlushFailedError(RuntimeError):
    """The store refused a batch ``max_retries + 1`` times; its entries are still dirty."""


@dataclass(frozen=True)
class WriteBehindConfig:
    """Settings of a production write-behind cache, checked when created."""

    flush_interval_s: float = 1.0
    max_batch: int = 500
    max_dirty: int = 10_000  # the dirty set's bound: put() waits (backpressure) beyond it
    put_timeout_s: float = 1.0  # how long put() waits for room before BufferFullError
    max_retries: int = 3  # retries of a failed batch within one flush
    retry_backoff_s: float = 0.05  # first wait between retries, doubled after each

    def __post_init__(self) -> None:
        check_positive("WriteBehindConfig.flush_interval_s", self.flush_interval_s)
        check_int("WriteBehindConfig.max_batch", self.max_batch, 1)
        check_int("WriteBehindConfig.max_dirty", self.max_dirty, self.max_batch)
        check_non_negative("WriteBehindConfig.put_timeout_s", self.put_timeout_s)
        check_int("WriteBehindConfig.max_retries", self.max_retries, 0)
        check_non_negative("WriteBehindConfig.retry_backoff_s", self.retry_backoff_s)


class ProductionWriteBehindCache(WriteBehindCache):
    """The write-behind cache for threads: bounded, retried, measured.

    One lock guards the dirty set and the LRU; the store call runs outside it, so writers are
    not blocked by a slow store until the dirty set is full. Only one flush runs at a time
    (two concurrent flushes could land an older value after a newer one). ``start()`` runs a
    flusher thread every ``flush_interval_s``; ``close()`` stops it and flushes what is left.
    """

    def __init__(self, name: str, store: Store, config: WriteBehindConfig | None = None,
                 clock: Clock = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 capacity: int = 1024) -> None:
        self.config = config or WriteBehindConfig()
        super().__init__(store, self.config.flush_interval_s, self.config.max_batch,
                         capacity, clock)
        self.name, self.sleep = name, sleep
        self._room = threading.Condition()
        self._one_flush = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.metrics = Instruments("write_behind", "Writes and flushes of a write-behind cache")
        self._dirty_gauge = Gauge("write_behind_dirty_entries", "Entries not yet in the store",
                                  registry=self.metrics.registry)
        self._flush_seconds = self.metrics.histogram("flush_seconds", "Time to write one batch")
        self._batch_rows = self.metrics.histogram(
            "batch_rows", "Entries per batch", buckets=(1, 10, 100, 1000, 10_000))

    def put(self, key: Hashable, value: Any) -> None:
        with self._room:
            if not self._room.wait_for(lambda: key in self.dirty
                                       or len(self.dirty) < self.config.max_dirty,
                                       timeout=self.config.put_timeout_s):
                self.metrics.count("rejected")
                raise BufferFullError(f"{self.name}: {len(self.dirty)} dirty entries, bound "
                                      f"{self.config.max_dirty}; the store is not keeping up")
            super().put(key, value)
            self._dirty_gauge.set(len(self.dirty))
        self.metrics.count("writes")

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._room:
            return super().get(key, default)

    def flush(self) -> int:
        with self._one_flush:
            with self._room:
                self.last_flush = self.clock()
                batch = self.take_batch()
            if not batch:
                return 0
            self._write_with_retries(batch)
            with self._room:
                self.written(batch)
                self._dirty_gauge.set(len(self.dirty))
                self._room.notify_all()
            self.metrics.count("flushed_entries", len(batch))
            self._batch_rows.observe(len(batch))
            return len(batch)

    def _write_with_retries(self, batch: Batch) -> None:
        wait = self.config.retry_backoff_s
        for attempt in range(self.config.max_retries + 1):
            started = time.perf_counter()
            try:
                self.store.write_many(batch)
            except Exception as error:  # noqa: BLE001 - any store error: retry, then report
                self.metrics.count("flush_errors")
                if attempt == self.config.max_retries:
                    log.error("%s: flush of %d entries failed %d times; they stay dirty: %s",
                              self.name, len(batch), attempt + 1, error)
                    raise FlushFailedError(f"{self.name}: {error}") from error
                log.warning("%s: flush failed (%s); retry %d in %.3f s",
                            self.name, error, attempt + 1, wait)
                self.sleep(wait)
                wait *= 2
            else:
                self._flush_seconds.observe(time.perf_counter() - started)
                return

    def start(self) -> None:
        """Flush every ``flush_interval_s`` in a daemon thread until ``close()``."""
        def loop() -> None:
            while not self._stop.wait(self.config.flush_interval_s):
                try:
                    self.flush()
                except FlushFailedError:
                    pass  # logged and counted; the entries stay dirty for the next flush
        self._thread = threading.Thread(target=loop, name=f"{self.name}-flusher", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the flusher thread, then flush everything still dirty."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        while self.dirty:
            self.flush()
