"""CQRS: a write side that appends events, a projector that folds them into a read model.

Think of a bank branch: the teller writes every deposit in the ledger at once (the write side),
and a clerk copies the ledger into the customers' passbook summary in the back office (the read
model). The summary is quick to look up but runs behind the ledger by however long the clerk's
queue is; a customer who deposits and then asks for the summary at once may see yesterday's
balance. That gap is the read model's *lag*, and read-your-writes is the fix for the writer.

``CQRSStore`` is the small in-memory version (Level 2) with an injectable clock;
``SQLiteCQRS`` (Level 3) keeps the events in one SQLite file and the read model, with the
projector's checkpoint, in another, so a restarted projector resumes exactly where it stopped.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from patterns.checks import check_choice, check_int, check_positive
from patterns.metrics import Instruments

__all__ = ["CQRSStore", "ProjectorConfig", "Session", "SQLiteCQRS", "StaleReadError"]

log = logging.getLogger(__name__)


class StaleReadError(RuntimeError):
    """The read model did not reach the version a reader asked for in time."""


class CQRSStore:
    """Deposits as events (write side), balances per account as the read model (query side).

    ``deposit`` appends an event and updates the write side's own balances at once;
    ``project(limit)`` applies up to ``limit`` pending events to the view and moves the
    checkpoint; ``read`` answers from the view, which lags by ``lag()`` events.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.events: list[tuple[int, float, str, float]] = []  # (version, written_at, key, amount)
        self.balances: dict[str, float] = {}  # the write side's current state
        self.view: dict[str, float] = {}  # the read model
        self.checkpoint = 0  # version of the last event applied to the view

    @property
    def version(self) -> int:
        """Version of the newest event written."""
        return len(self.events)

    def deposit(self, key: str, amount: float) -> int:
        """Write: append the event, update the write side, return the event's version."""
        version = self.version + 1
        self.events.append((version, self.clock(), key, amount))
        self.balances[key] = self.balances.get(key, 0.0) + amount
        return version

    def project(self, limit: int | None = None) -> int:
        """Apply up to ``limit`` (None: all) pending events to the view; return how many."""
        pending = self.events[self.checkpoint:]
        if limit is not None:
            pending = pending[:limit]
        for version, _, key, amount in pending:
            self.view[key] = self.view.get(key, 0.0) + amount
            self.checkpoint = version
        return len(pending)

    def read(self, key: str) -> float:
        """Query: the balance the read model shows (possibly stale)."""
        return self.view.get(key, 0.0)

    def lag(self) -> int:
        """Events written but not yet in the view."""
        return self.version - self.checkpoint

    def staleness_s(self) -> float:
        """How long the oldest pending event has waited (0 when the view is current)."""
        if self.checkpoint == self.version:
            return 0.0
        return self.clock() - self.events[self.checkpoint][1]


class Session:
    """One user's reads with a read-your-writes strategy over a `CQRSStore`.

    ``"view"``: always the read model (the pitfall). ``"write_side"``: for ``window_s`` after
    this user's last write, read the write side. ``"token"``: the session carries the version
    of its last write; a read waits (calls ``store.project`` through ``wait``) until the view's
    checkpoint reaches it.
    """

    STRATEGIES = ("view", "write_side", "token")

    def __init__(self, store: CQRSStore, strategy: str = "token", window_s: float = 1.0,
                 wait: Callable[[CQRSStore], None] | None = None) -> None:
        self.store = store
        self.strategy = check_choice("Session.strategy", strategy, self.STRATEGIES)
        self.window_s = check_positive("Session.window_s", window_s)
        self.wait = wait or (lambda s: s.project(1))
        self.token = 0  # version of this session's last write
        self.wrote_at = float("-inf")

    def deposit(self, key: str, amount: float) -> int:
        self.token = self.store.deposit(key, amount)
        self.wrote_at = self.store.clock()
        return self.token

    def read(self, key: str) -> float:
        store = self.store
        if self.strategy == "write_side" and store.clock() - self.wrote_at < self.window_s:
            return store.balances.get(key, 0.0)
        if self.strategy == "token":
            while store.checkpoint < self.token:
                self.wait(store)
        return store.read(key)


@dataclass(frozen=True)
class ProjectorConfig:
    """Settings of the SQLite projector: events per transaction, idle poll, read wait limit."""

    batch_size: int = 100
    poll_s: float = 0.005
    wait_timeout_s: float = 2.0

    def __post_init__(self) -> None:
        check_int("ProjectorConfig.batch_size", self.batch_size, 1)
        check_positive("ProjectorConfig.poll_s", self.poll_s)
        check_positive("ProjectorConfig.wait_timeout_s", self.wait_timeout_s)


_PRAGMAS = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
_WRITE_SCHEMA = _PRAGMAS + """
CREATE TABLE IF NOT EXISTS events (version INTEGER PRIMARY KEY AUTOINCREMENT,
    written_at REAL NOT NULL, key TEXT NOT NULL, amount REAL NOT NULL);
CREATE TABLE IF NOT EXISTS balances (key TEXT PRIMARY KEY, balance REAL NOT NULL);
"""
_READ_SCHEMA = _PRAGMAS + """
CREATE TABLE IF NOT EXISTS view (key TEXT PRIMARY KEY, balance REAL NOT NULL,
    deposits INTEGER NOT NULL, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoint (name TEXT PRIMARY KEY, version INTEGER NOT NULL);
"""


class SQLiteCQRS(CQRSStore):
    """The store on SQLite: ``write.db`` (events + balances, one transaction per deposit) and
    ``read.db`` (view + checkpoint, updated together in one transaction per batch), both in
    WAL mode with ``synchronous=NORMAL`` (durable across a process crash, not a power loss).

    ``start()`` runs the projector in a thread; ``stop()`` stops it; a new object on the same
    folder resumes from the checkpoint in ``read.db``. ``read(key, min_version)`` waits until
    the view has reached ``min_version`` (a session token) or raises `StaleReadError`.
    ``fail_after`` (testing): the projector raises after applying that many events of a batch,
    inside the transaction, which SQLite rolls back.
    """

    def __init__(self, folder: str, config: ProjectorConfig | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        self.config = config or ProjectorConfig()
        self.write_path = os.path.join(folder, "write.db")
        self.read_path = os.path.join(folder, "read.db")
        self._write = sqlite3.connect(self.write_path, check_same_thread=False)
        self._write.executescript(_WRITE_SCHEMA)
        self._read = sqlite3.connect(self.read_path, check_same_thread=False)
        self._read.executescript(_READ_SCHEMA)
        self._lock = threading.Lock()  # guards the two connections
        self._applied = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.fail_after: int | None = None
        self.metrics = Instruments("cqrs", "Writes, projections and reads")
        self._lag = self.metrics.histogram("lag_seconds", "Write to view, per event")
        row = self._read.execute("SELECT version FROM checkpoint WHERE name='view'").fetchone()
        self.checkpoint = row[0] if row else 0
        log.info("projector resumes from checkpoint %d", self.checkpoint)

    @property
    def version(self) -> int:
        with self._lock:
            return self._write.execute("SELECT COALESCE(MAX(version), 0) FROM events").fetchone()[0]

    def deposit(self, key: str, amount: float) -> int:
        with self._lock, self._write:
            cur = self._write.execute("INSERT INTO events (written_at, key, amount) VALUES "
                                      "(?, ?, ?)", (self.clock(), key, amount))
            self._write.execute("INSERT INTO balances VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                                "SET balance = balance + excluded.balance", (key, amount))
        self.metrics.count("writes")
        return int(cur.lastrowid)

    def write_side_balance(self, key: str) -> float:
        with self._lock:
            row = self._write.execute("SELECT balance FROM balances WHERE key=?",
                                      (key,)).fetchone()
        return row[0] if row else 0.0

    def project(self, limit: int | None = None) -> int:
        """One batch: read up to ``limit`` (default ``batch_size``) events after the
        checkpoint, apply them and move the checkpoint in one read-side transaction."""
        limit = self.config.batch_size if limit is None else limit
        with self._lock:
            batch = self._write.execute(
                "SELECT version, written_at, key, amount FROM events WHERE version > ? "
                "ORDER BY version LIMIT ?", (self.checkpoint, limit)).fetchall()
            if not batch:
                return 0
            with self._read:  # commit on success, roll back on any exception
                for i, (version, _, key, amount) in enumerate(batch):
                    if self.fail_after is not None and i == self.fail_after:
                        raise RuntimeError(f"projector crashed at version {version}")
                    self._read.execute(
                        "INSERT INTO view VALUES (?, ?, 1, ?) ON CONFLICT(key) DO UPDATE SET "
                        "balance = balance + excluded.balance, deposits = deposits + 1, "
                        "version = excluded.version", (key, amount, version))
                self._read.execute("INSERT OR REPLACE INTO checkpoint VALUES ('view', ?)",
                                   (batch[-1][0],))
        now = self.clock()
        for _, written_at, _, _ in batch:
            self._lag.observe(max(0.0, now - written_at))
        with self._applied:
            self.checkpoint = batch[-1][0]
            self._applied.notify_all()
        self.metrics.count("projected", len(batch))
        self.metrics.count("batches")
        return len(batch)

    def read(self, key: str, min_version: int = 0) -> float:
        """The view's balance once it has reached ``min_version``; `StaleReadError` after
        ``wait_timeout_s``."""
        with self._applied:
            if not self._applied.wait_for(lambda: self.checkpoint >= min_version,
                                          self.config.wait_timeout_s):
                self.metrics.count("stale_timeouts")
                raise StaleReadError(f"view at version {self.checkpoint} < {min_version} after "
                                     f"{self.config.wait_timeout_s} s")
        with self._lock:
            row = self._read.execute("SELECT balance FROM view WHERE key=?", (key,)).fetchone()
        self.metrics.count("reads")
        return row[0] if row else 0.0

    def view_rows(self) -> dict[str, tuple[float, int]]:
        with self._lock:
            return {k: (b, n) for k, b, n in
                    self._read.execute("SELECT key, balance, deposits FROM view")}

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.project() == 0:
                    self._stop.wait(self.config.poll_s)
            except Exception:
                log.exception("projector stopped at checkpoint %d", self.checkpoint)
                self.metrics.count("projector_crashes")
                return

    def start(self) -> SQLiteCQRS:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="projector", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        self.stop()
        self._write.close()
        self._read.close()
