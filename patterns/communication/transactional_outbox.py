"""Transactional outbox: commit the event in the same transaction as the change, relay it later.

Picture a shop clerk who writes every sale in the ledger and, on the same page and with the same
pen stroke, a note "tell the warehouse". A runner comes by every few minutes, reads the notes not
yet ticked, phones the warehouse and ticks them. If the runner faints after phoning but before
ticking, the next runner phones again: the warehouse may hear a note twice, but never misses one,
and it ignores a note whose number it has already seen.

`TransactionalOutbox` is the Level 2 idea on a ``sqlite3`` connection: ``record`` runs the
business change and inserts the outbox row (Debezium's column names: ``id``, ``aggregatetype``,
``aggregateid``, ``type``, ``payload``) in **one** transaction; ``relay_once`` reads up to
``batch_size`` unsent rows, publishes them in order, then marks them sent. A crash between the
two (``before_mark`` raising) leaves them unsent, so they are published again: at-least-once.
`IdempotentConsumer` dedupes by event id, which makes the duplicates harmless. `DualWriter` is the
pitfall the pattern removes: a commit and a publish that are two separate steps.

`ProductionOutboxRelay` hardens the relay for Level 3: a validated `OutboxConfig`, a lock (one
batch at a time per relay), ``logging``, ``prometheus_client`` metrics, an optional retrier for
publish failures (``patterns.resilience.retry_backoff_jitter``), a failed publish that stops the
batch and leaves the rest for the next poll, and ``drain`` / ``notify`` for the Level 4
optimisations. Time comes from an injectable ``clock``. Nothing here imports from
``simulations``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from patterns.checks import check_int, check_positive
from patterns.metrics import Instruments

Clock = Callable[[], float]
log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY, amount REAL NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    aggregatetype TEXT NOT NULL,
    aggregateid TEXT NOT NULL,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL,
    sent_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;
"""


@dataclass(frozen=True)
class Event:
    """One outbox row as the relay publishes it."""

    id: str
    aggregatetype: str
    aggregateid: str
    type: str
    payload: dict[str, Any]
    created_at: float


class RelayCrash(RuntimeError):
    """Stands in for the relay process dying at a chosen point (a demo and test hook)."""


class TransactionalOutbox:
    """The business write and its event in one transaction; a relay that publishes, then marks."""

    def __init__(self, db: sqlite3.Connection, publish: Callable[[Event], None],
                 clock: Clock = time.time) -> None:
        self.db, self.publish, self.clock = db, publish, clock
        self.db.executescript(SCHEMA)

    def record(self, change: Callable[[sqlite3.Connection], None], aggregatetype: str,
               aggregateid: str, event_type: str, payload: dict[str, Any]) -> str:
        """Run ``change(db)`` and insert its event in the same transaction; return the event id.
        If ``change`` raises, neither the change nor the event is kept."""
        event_id = str(uuid.uuid4())
        with self.db:  # BEGIN ... COMMIT, or ROLLBACK on an exception
            change(self.db)
            self.db.execute(
                "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (event_id, aggregatetype, aggregateid, event_type, json.dumps(payload),
                 self.clock()))
        return event_id

    def unsent(self, limit: int) -> list[Event]:
        """The oldest ``limit`` rows not yet marked sent, in commit order."""
        rows = self.db.execute(
            "SELECT id, aggregatetype, aggregateid, type, payload, created_at FROM outbox"
            " WHERE sent_at IS NULL ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [Event(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5]) for r in rows]

    def mark_sent(self, ids: list[str]) -> None:
        with self.db:
            self.db.executemany("UPDATE outbox SET sent_at = ? WHERE id = ?",
                                [(self.clock(), i) for i in ids])

    def relay_once(self, batch_size: int = 100,
                   before_mark: Callable[[list[Event]], None] | None = None) -> int:
        """One poll: read a batch, publish each event, then mark the batch sent. Returns how many
        were published. ``before_mark`` runs between publishing and marking (a crash hook)."""
        batch = self.unsent(batch_size)
        for event in batch:
            self.publish(event)
        if before_mark is not None:
            before_mark(batch)
        self.mark_sent([e.id for e in batch])
        return len(batch)

    def pending(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0]


class IdempotentConsumer:
    """Apply each event once: remember the ids seen and drop a repeat (at-least-once → once)."""

    def __init__(self, apply: Callable[[Event], None] | None = None) -> None:
        self.apply = apply or (lambda event: None)
        self.seen: set[str] = set()
        self.applied = 0
        self.duplicates = 0

    def handle(self, event: Event) -> bool:
        """True if the event was applied, False if it was a duplicate."""
        if event.id in self.seen:
            self.duplicates += 1
            return False
        self.apply(event)
        self.seen.add(event.id)
        self.applied += 1
        return True


class DualWriter:
    """The pitfall: commit the change, then publish (``"db-first"``), or the reverse, as two
    steps. ``crash_between`` makes the process die between them for that call."""

    def __init__(self, db: sqlite3.Connection, publish: Callable[[Event], None],
                 order: str = "db-first", clock: Clock = time.time) -> None:
        if order not in ("db-first", "publish-first"):
            raise ValueError(f"DualWriter.order must be one of db-first, publish-first "
                             f"(got {order!r})")
        self.db, self.publish, self.order, self.clock = db, publish, order, clock
        self.db.executescript(SCHEMA)

    def place_order(self, order_id: str, amount: float, crash_between: bool = False) -> None:
        event = Event(str(uuid.uuid4()), "Order", order_id, "OrderPlaced",
                      {"amount": amount}, self.clock())

        def commit() -> None:
            with self.db:
                self.db.execute("INSERT INTO orders VALUES (?, ?)", (order_id, amount))

        first, second = ((commit, lambda: self.publish(event)) if self.order == "db-first"
                         else (lambda: self.publish(event), commit))
        first()
        if crash_between:
            raise RelayCrash(f"process died between the two writes of order {order_id}")
        second()


def insert_order(order_id: str, amount: float) -> Callable[[sqlite3.Connection], None]:
    """The business change of the examples: one row in ``orders``."""
    return lambda db: db.execute("INSERT INTO orders VALUES (?, ?)", (order_id, amount))


# ---------------------------------------------------------------- Level 3: production-grade


@dataclass(frozen=True)
class OutboxConfig:
    """A relay's settings, checked when created."""

    batch_size: int = 100
    poll_interval_s: float = 0.5

    def __post_init__(self) -> None:
        check_int("OutboxConfig.batch_size", self.batch_size, 1)
        check_positive("OutboxConfig.poll_interval_s", self.poll_interval_s)


class ProductionOutboxRelay(TransactionalOutbox):
    """The Level 2 outbox and relay, hardened.

    One batch at a time per relay (a lock); a publish that fails (after the retrier, if one is
    given) stops the batch: the events already published are marked, the rest stay for the next
    poll, so order per outbox is kept and nothing is lost. ``drain()`` polls again at once while
    batches come back full; ``notify()`` (a LISTEN/NOTIFY-style wake-up after a commit) lets a
    loop in ``run`` poll before its interval is over. Counters: ``recorded``, ``polls``,
    ``empty_polls``, ``published``, ``publish_errors``, ``marked``; histograms of batch size and
    of lag (publish time minus commit time).
    """

    def __init__(self, db: sqlite3.Connection, publish: Callable[[Event], None],
                 config: OutboxConfig | None = None, *, retrier: Any = None,
                 clock: Clock = time.time) -> None:
        super().__init__(db, publish, clock)
        self.config = config or OutboxConfig()
        self.retrier = retrier
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self.metrics = Instruments("outbox", "Outbox rows through the relay")
        self._batch = self.metrics.histogram("batch_items", "Rows per poll",
                                             buckets=(0, 1, 2, 5, 10, 20, 50, 100, 200, 500))
        self._lag = self.metrics.histogram("lag_seconds", "Publish time minus commit time")

    def record(self, change: Callable[[sqlite3.Connection], None], aggregatetype: str,
               aggregateid: str, event_type: str, payload: dict[str, Any]) -> str:
        with self._lock:
            event_id = super().record(change, aggregatetype, aggregateid, event_type, payload)
        self.metrics.count("recorded")
        self.notify()
        return event_id

    def notify(self) -> None:
        """Wake a waiting ``run`` loop (what LISTEN/NOTIFY or a commit hook would do)."""
        self._wake.set()

    def relay_once(self, batch_size: int | None = None,
                   before_mark: Callable[[list[Event]], None] | None = None) -> int:
        with self._lock:
            batch = self.unsent(batch_size or self.config.batch_size)
            self.metrics.count("polls")
            if not batch:
                self.metrics.count("empty_polls")
            self._batch.observe(len(batch))
            done: list[Event] = []
            try:
                for event in batch:
                    if self.retrier is None:
                        self.publish(event)
                    else:
                        self.retrier.call(self.publish, event)
                    done.append(event)
                    self.metrics.count("published")
                    self._lag.observe(max(0.0, self.clock() - event.created_at))
            except RelayCrash:
                raise
            except Exception as error:  # the broker refused: keep the rest for the next poll
                self.metrics.count("publish_errors")
                log.warning("outbox relay: publish of %s failed (%r); %d of %d rows left "
                            "for the next poll", batch[len(done)].id, error,
                            len(batch) - len(done), len(batch))
            if before_mark is not None:
                before_mark(done)
            self.mark_sent([e.id for e in done])
            self.metrics.count("marked", len(done))
            return len(done)

    def drain(self, max_polls: int = 1000) -> int:
        """Poll again at once while batches come back full (the backlog optimisation)."""
        total = 0
        for _ in range(max_polls):
            n = self.relay_once()
            total += n
            if n < self.config.batch_size:
                break
        return total

    def run(self, stop: threading.Event) -> None:
        """Poll every ``poll_interval_s``, or at once when notified, until ``stop`` is set."""
        while not stop.is_set():
            self.drain()
            self._wake.wait(self.config.poll_interval_s)
            self._wake.clear()


__all__ = ["DualWriter", "Event", "IdempotentConsumer", "OutboxConfig", "ProductionOutboxRelay",
           "RelayCrash", "SCHEMA", "TransactionalOutbox", "insert_order"]
