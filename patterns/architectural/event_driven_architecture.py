"""Event-driven architecture: publish what happened, let each service react in its own time.

Picture a restaurant. In a synchronous kitchen the waiter stands at the pass while the cook, the
dessert station and the till each finish, and the guest waits for all of them; if the till is
broken nobody eats. In an event-driven kitchen the waiter pins the ticket on the rail ("order
placed") and goes back to the guest; each station takes the tickets it cares about, and a
station that was closed for ten minutes works through its pile when it reopens.

Level 2: ``EventBus`` (an in-process bus: topics, handlers, a queue of deliveries, retries on a
failing handler) and ``SyncChain`` (the same business flow as direct calls, one after another).
Level 3: ``SQLiteEventStore`` (a durable queue with leases: at-least-once delivery that survives
a crash), ``IdempotentHandler`` (a handler that applies each event once, remembered in the same
database) and ``ProductionEventBus`` (validated config, a lock, ``logging``, metrics through
``patterns.metrics.Instruments``). Nothing here imports from ``simulations``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from patterns.checks import check_int, check_positive
from patterns.metrics import Instruments

__all__ = [
    "BusConfig",
    "Event",
    "EventBus",
    "IdempotentHandler",
    "ProductionEventBus",
    "SQLiteEventStore",
    "ServiceDown",
    "SyncChain",
    "order_flow",
]

Clock = Callable[[], float]
Handler = Callable[["Event"], None]
log = logging.getLogger(__name__)


class ServiceDown(RuntimeError):
    """A service that cannot answer now (a demo and test stand-in for an outage)."""


@dataclass(frozen=True)
class Event:
    """A fact that happened: ``topic`` ("OrderPlaced"), a payload, a unique id and a time."""

    topic: str
    payload: dict[str, Any]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    at: float = 0.0


# ---------------------------------------------------------------- Level 2: the core idea


class EventBus:
    """An in-process event bus: ``publish`` returns at once; ``dispatch`` delivers later.

    Each (event, handler) pair is one delivery in a FIFO queue. A handler that raises leaves
    its delivery at the back of the queue for another try (at-least-once), so a handler whose
    service is down only delays its own work, never the publisher or the other handlers.
    """

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self.handlers: dict[str, list[tuple[str, Handler]]] = {}
        self.queue: deque[tuple[Event, str, Handler]] = deque()
        self.delivered: list[tuple[float, str, str]] = []  # (time, handler name, event id)
        self.failures = 0

    def subscribe(self, topic: str, handler: Handler, name: str | None = None) -> None:
        self.handlers.setdefault(topic, []).append((name or handler.__name__, handler))

    def publish(self, topic: str, payload: dict[str, Any], event_id: str | None = None) -> Event:
        """Record the event and queue one delivery per subscriber; return without waiting.
        ``event_id`` lets a producer give a stable id (a republished event keeps its id)."""
        event = Event(topic, dict(payload), event_id or uuid.uuid4().hex, self.clock())
        for name, handler in self.handlers.get(topic, []):
            self.queue.append((event, name, handler))
        return event

    def dispatch(self, max_deliveries: int | None = None) -> int:
        """Try up to ``max_deliveries`` queued deliveries (all by default); return how many
        succeeded. A handler that raises is put back at the end of the queue."""
        budget = len(self.queue) if max_deliveries is None else max_deliveries
        done = 0
        for _ in range(min(budget, len(self.queue))):
            event, name, handler = self.queue.popleft()
            try:
                handler(event)
            except Exception:
                self.failures += 1
                self.queue.append((event, name, handler))
                continue
            self.delivered.append((self.clock(), name, event.id))
            done += 1
        return done

    def pending(self) -> int:
        return len(self.queue)


class SyncChain:
    """The same flow as direct calls: each step calls the next, the caller waits for all.

    ``call`` runs the steps in order and returns their results; if one raises, the whole
    request fails (the steps before it have already run: a real chain needs compensation).
    """

    def __init__(self, steps: list[tuple[str, Callable[[dict[str, Any]], Any]]],
                 clock: Clock = time.monotonic) -> None:
        self.steps, self.clock = steps, clock
        self.calls = 0
        self.failed = 0

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        results: dict[str, Any] = {}
        for name, step in self.steps:
            try:
                results[name] = step(request)
            except Exception:
                self.failed += 1
                raise
        return results


def order_flow(down: set[str] | None = None) -> tuple[dict[str, Callable], dict[str, list]]:
    """The course's business flow: order → payment → inventory → email, as four toy services.

    Returns ``(services, effects)``: each service appends to ``effects[name]`` and raises
    ``ServiceDown`` while its name is in the (mutable) set ``down``.
    """
    down = set() if down is None else down
    effects: dict[str, list] = {"order": [], "payment": [], "inventory": [], "email": []}

    def make(name: str) -> Callable:
        def service(message: Any) -> str:
            if name in down:
                raise ServiceDown(f"{name} is down")
            payload = message.payload if isinstance(message, Event) else message
            effects[name].append(payload["order_id"])
            return f"{name} ok"
        service.__name__ = name
        return service

    return {name: make(name) for name in effects}, effects


# ---------------------------------------------------------------- Level 3: production-grade


SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL, topic TEXT NOT NULL, handler TEXT NOT NULL, payload TEXT NOT NULL,
    published_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    lease_until REAL NOT NULL DEFAULT 0, done_at REAL,
    UNIQUE (event_id, handler)
);
CREATE INDEX IF NOT EXISTS deliveries_open ON deliveries (seq) WHERE done_at IS NULL;
"""
PROCESSED = """CREATE TABLE IF NOT EXISTS processed (
    handler TEXT NOT NULL, event_id TEXT NOT NULL, PRIMARY KEY (handler, event_id))"""


class SQLiteEventStore:
    """A durable queue in one SQLite file: a row per (event, handler), with a lease.

    ``claim`` takes the oldest open deliveries whose lease has run out and leases them for
    ``lease_s``; ``ack`` marks one done. A consumer that dies between claim and ack loses only
    its lease: the delivery is claimed again after it expires (at-least-once, never lost).
    """

    def __init__(self, path: str, clock: Clock = time.time) -> None:
        self.path, self.clock = path, clock
        self._lock = threading.Lock()  # one connection shared by threads: one call at a time
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL: safe against a process crash
        self.db.executescript(SCHEMA)

    def enqueue(self, event: Event, handlers: list[str]) -> None:
        """One transaction: the event is stored for every handler, or for none."""
        with self._lock, self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT OR IGNORE INTO deliveries (event_id, topic, handler, payload,"
                " published_at) VALUES (?, ?, ?, ?, ?)",
                [(event.id, event.topic, h, json.dumps(event.payload), event.at)
                 for h in handlers])

    def claim(self, limit: int, lease_s: float) -> list[tuple[int, str, Event, int]]:
        """Lease up to ``limit`` due deliveries: (seq, handler, event, attempt number)."""
        now = self.clock()
        with self._lock, self.db:
            self.db.execute("BEGIN IMMEDIATE")
            rows = self.db.execute(
                "SELECT seq, handler, event_id, topic, payload, published_at, attempts"
                " FROM deliveries WHERE done_at IS NULL AND lease_until <= ?"
                " ORDER BY seq LIMIT ?", (now, limit)).fetchall()
            self.db.executemany(
                "UPDATE deliveries SET lease_until = ?, attempts = attempts + 1 WHERE seq = ?",
                [(now + lease_s, r[0]) for r in rows])
        return [(r[0], r[1], Event(r[3], json.loads(r[4]), r[2], r[5]), r[6] + 1) for r in rows]

    def ack(self, seq: int) -> None:
        with self._lock:
            self.db.execute("UPDATE deliveries SET done_at = ? WHERE seq = ?", (self.clock(), seq))

    def release(self, seq: int) -> None:
        """Give a failed delivery back at once (instead of waiting for its lease)."""
        with self._lock:
            self.db.execute("UPDATE deliveries SET lease_until = 0 WHERE seq = ?", (seq,))

    def open_count(self) -> int:
        with self._lock:
            return self.db.execute(
                "SELECT COUNT(*) FROM deliveries WHERE done_at IS NULL").fetchone()[0]

    def close(self) -> None:
        self.db.close()


class IdempotentHandler:
    """Apply each event once per handler name, whatever the number of deliveries.

    The event id goes into ``processed`` in the same transaction as the handler's own writes
    (``apply(db, event)``), so a redelivered event finds its id there and is skipped.
    """

    def __init__(self, name: str, db: sqlite3.Connection,
                 apply: Callable[[sqlite3.Connection, Event], None]) -> None:
        self.name, self.db, self.apply = name, db, apply
        self.__name__ = name
        self.db.execute(PROCESSED)
        self.applied = 0
        self.duplicates = 0

    def __call__(self, event: Event) -> None:
        with self.db:
            self.db.execute("BEGIN")
            fresh = self.db.execute("INSERT OR IGNORE INTO processed VALUES (?, ?)",
                                    (self.name, event.id)).rowcount == 1
            if fresh:
                self.apply(self.db, event)
        if fresh:
            self.applied += 1
        else:
            self.duplicates += 1


@dataclass(frozen=True)
class BusConfig:
    """Settings of the production bus, checked when it is made."""

    lease_s: float = 30.0
    batch_size: int = 100
    max_attempts: int = 10

    def __post_init__(self) -> None:
        check_positive("BusConfig.lease_s", self.lease_s)
        check_int("BusConfig.batch_size", self.batch_size, 1)
        check_int("BusConfig.max_attempts", self.max_attempts, 1)


class ProductionEventBus(EventBus):
    """The Level 2 bus over a durable store: publish is one transaction, delivery is
    at-least-once through leases, and a delivery that failed ``max_attempts`` times is parked
    in ``dead`` (logged, counted) instead of blocking the rest. Thread-safe."""

    def __init__(self, store: SQLiteEventStore, config: BusConfig | None = None,
                 clock: Clock = time.time) -> None:
        super().__init__(clock)
        self.store, self.config = store, config or BusConfig()
        self._lock = threading.Lock()
        self.by_name: dict[str, Handler] = {}
        self.dead: list[tuple[str, str]] = []
        self.metrics = Instruments("event_bus", "Events through the bus")
        self._delay = self.metrics.histogram(
            "completion_seconds", "Publish to successful handling, seconds",
            buckets=(0.001, 0.01, 0.1, 1, 10, 60, 600))

    def subscribe(self, topic: str, handler: Handler, name: str | None = None) -> None:
        name = name or handler.__name__
        with self._lock:
            super().subscribe(topic, handler, name)
            self.by_name[name] = handler

    def publish(self, topic: str, payload: dict[str, Any], event_id: str | None = None) -> Event:
        event = Event(topic, dict(payload), event_id or uuid.uuid4().hex, self.clock())
        with self._lock:
            names = [n for n, _ in self.handlers.get(topic, [])]
        self.store.enqueue(event, names)
        self.metrics.count("published")
        log.debug("published %s %s to %d handlers", topic, event.id, len(names))
        return event

    def dispatch(self, max_deliveries: int | None = None,
                 crash_after_handler: bool = False) -> int:
        """Claim and run due deliveries; ack each success. ``crash_after_handler`` makes the
        consumer die after the first handler ran but before its ack (a demo hook)."""
        limit = self.config.batch_size if max_deliveries is None else max_deliveries
        done = 0
        for seq, name, event, attempt in self.store.claim(limit, self.config.lease_s):
            handler = self.by_name.get(name)
            try:
                if handler is None:
                    raise LookupError(f"no handler named {name!r}")
                handler(event)
            except Exception as error:
                self.metrics.count("handler_errors")
                if attempt >= self.config.max_attempts:
                    self.store.ack(seq)
                    with self._lock:
                        self.dead.append((name, event.id))
                    self.metrics.count("dead_lettered")
                    log.error("dead-lettered %s for %s after %d attempts: %s", event.id, name,
                              attempt, error)
                else:
                    self.store.release(seq)
                    log.warning("%s failed on %s (attempt %d): %s", name, event.id, attempt,
                                error)
                continue
            if crash_after_handler:
                raise SystemExit("consumer died before its ack")
            self.store.ack(seq)
            self.metrics.count("delivered")
            self._delay.observe(max(0.0, self.clock() - event.at))
            with self._lock:
                self.delivered.append((self.clock(), name, event.id))
            done += 1
        return done

    def pending(self) -> int:
        return self.store.open_count()
