"""Event sourcing with snapshots: the state is the fold of its events, and a snapshot bookmarks it.

Picture a bank's ledger. Nobody writes "balance: 42" over yesterday's figure; every deposit and
withdrawal is a new line, and the balance is what you get by adding the lines up from the first
one (the *fold*, or *replay*). The ledger never forgets, which is why auditors like it; but after
ten years adding up every line to answer "may she withdraw 20?" is slow. So at the end of each
page the clerk writes the running total in the margin (a *snapshot*): to know the balance you
start from the last margin total and add only the lines below it. A margin total smudged by a
spilled coffee (a torn snapshot) is no disaster as long as you can tell it is smudged: the lines
are still there, and you add up from an older total, or from the first line.

Time comes from an injectable ``clock``: it stamps the events (``recorded_at``) when they are
written, and is never read while folding, so a replay tomorrow gives the state of today.

`EventSourcedRepository` is the lesson's Level 2: an in-memory event store with optimistic
concurrency (``expected_version``), a pure fold (`apply`), snapshots every ``snapshot_every``
events with a checksum and a schema number, and ``load`` from the latest usable snapshot.
`SQLiteEventStore` hardens it for Level 3 on a real SQLite file: the ``UNIQUE (stream, version)``
key as the concurrency control, snapshots in their own table written in one transaction with
retention, upcasting of older snapshot schemas, a torn snapshot detected and replaced by a full
replay, a validated `StoreConfig`, a lock, ``logging`` and ``prometheus_client`` metrics. Nothing
here imports from ``simulations``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from patterns.checks import check_int, check_positive
from patterns.metrics import Instruments

__all__ = [
    "KINDS", "SCHEMA", "Account", "ConcurrencyError", "Event", "EventSourcedRepository",
    "Loaded", "RejectedCommand", "SQLiteEventStore", "Snapshot", "StoreConfig", "apply",
    "decide", "replay", "snapshot_checksum",
]

Clock = Callable[[], float]
log = logging.getLogger(__name__)

SCHEMA = 1
"""The version of the state's shape (the fields of `Account`) that this code folds into."""

KINDS = ("opened", "deposited", "withdrew")


class ConcurrencyError(RuntimeError):
    """Another writer appended to the stream since this one read it (its expected_version is
    stale): reload and decide again."""


class RejectedCommand(ValueError):
    """The command breaks a rule of the aggregate (a withdrawal beyond the balance, ...)."""


@dataclass(frozen=True, slots=True)
class Event:
    """One fact, appended once and never changed: ``version`` is its place in its stream (1, 2,
    ...); ``recorded_at`` is when it was written (from the clock; never read by the fold)."""

    stream: str
    version: int
    kind: str
    amount: int = 0  # cents
    recorded_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Account:
    """The aggregate's state: what the fold of an account's events gives."""

    balance: int = 0  # cents
    transactions: int = 0
    is_open: bool = False


def apply(state: Account, event: Event) -> Account:
    """One step of the fold: a pure function of the state and the event (no clock, no I/O)."""
    if event.kind == "deposited":
        return Account(state.balance + event.amount, state.transactions + 1, state.is_open)
    if event.kind == "withdrew":
        return Account(state.balance - event.amount, state.transactions + 1, state.is_open)
    if event.kind == "opened":
        return Account(0, 0, True)
    raise ValueError(f"event.kind must be one of {', '.join(KINDS)} (got {event.kind!r})")


def replay(events: Iterable[Event], state: Account | None = None) -> Account:
    """Fold ``events`` into ``state`` (the empty account by default)."""
    state = Account() if state is None else state
    for event in events:
        state = apply(state, event)
    return state


def decide(state: Account, kind: str, amount: int) -> None:
    """Check a command against the current state; raise `RejectedCommand` if it breaks a rule."""
    if kind not in KINDS:
        raise RejectedCommand(f"kind must be one of {', '.join(KINDS)} (got {kind!r})")
    if kind == "opened":
        if state.is_open:
            raise RejectedCommand("the account is already open")
        return
    if not state.is_open:
        raise RejectedCommand(f"{kind}: the account is not open")
    if amount <= 0:
        raise RejectedCommand(f"amount must be > 0 cents (got {amount!r})")
    if kind == "withdrew" and amount > state.balance:
        raise RejectedCommand(f"withdrawal of {amount} exceeds the balance {state.balance}")


def snapshot_checksum(stream: str, version: int, schema: int, state: Mapping[str, Any]) -> int:
    """CRC-32 of the snapshot's canonical JSON: a torn or altered snapshot no longer matches."""
    text = json.dumps([stream, version, schema, dict(state)], sort_keys=True,
                      separators=(",", ":"))
    return zlib.crc32(text.encode())


@dataclass(frozen=True)
class Snapshot:
    """The state after event ``version`` of ``stream``, in the shape ``schema``, as plain data
    (what a store serialises); ``state`` is None when the stored bytes could not be decoded."""

    stream: str
    version: int
    schema: int
    state: dict[str, Any] | None
    checksum: int

    @classmethod
    def take(cls, stream: str, version: int, state: Account | Mapping[str, Any],
             schema: int = SCHEMA) -> Snapshot:
        data = asdict(state) if isinstance(state, Account) else dict(state)
        return cls(stream, version, schema, data, snapshot_checksum(stream, version, schema, data))

    @property
    def intact(self) -> bool:
        """Do the stored state and header still match the checksum written with them?"""
        return self.state is not None and self.checksum == snapshot_checksum(
            self.stream, self.version, self.schema, self.state)


@dataclass(frozen=True)
class Loaded:
    """What ``load`` rebuilt: the state at ``version``, from the snapshot at
    ``snapshot_version`` (0: from the first event) plus ``replayed`` events after it."""

    state: Account
    version: int
    replayed: int
    snapshot_version: int


class EventSourcedRepository:
    """An account's events in an append-only stream; its state rebuilt from a snapshot + replay.

    ``append`` writes one event if the stream is still at ``expected_version`` (optimistic
    concurrency); ``load`` starts from the latest snapshot if it is `usable` (intact, current
    schema), else from the first event; ``execute`` is the command handler: load, `decide`,
    append, and save a snapshot when the new version is a multiple of ``snapshot_every``.
    """

    def __init__(self, snapshot_every: int | None = 100, clock: Clock = time.monotonic,
                 schema: int = SCHEMA) -> None:
        self.snapshot_every, self.clock, self.schema = snapshot_every, clock, schema
        self._events: dict[str, list[Event]] = {}
        self._snapshots: dict[str, list[Snapshot]] = {}

    # --- storage: in memory here; SQLiteEventStore overrides these five
    def version(self, stream: str) -> int:
        return len(self._events.get(stream, ()))

    def events_after(self, stream: str, version: int) -> list[Event]:
        return self._events.get(stream, [])[version:]

    def snapshots_of(self, stream: str) -> list[Snapshot]:
        """The stream's snapshots, newest first."""
        return self._snapshots.get(stream, [])[::-1]

    def _store_events(self, stream: str, events: list[Event], expected_version: int) -> None:
        if self.version(stream) != expected_version:
            raise ConcurrencyError(f"stream {stream!r} is at version {self.version(stream)}, "
                                   f"not the expected {expected_version}")
        self._events.setdefault(stream, []).extend(events)

    def _store_snapshot(self, snapshot: Snapshot) -> None:
        self._snapshots.setdefault(snapshot.stream, []).append(snapshot)

    # --- the pattern
    def append(self, stream: str, kind: str, amount: int, expected_version: int) -> Event:
        event = Event(stream, expected_version + 1, kind, amount, self.clock())
        self._store_events(stream, [event], expected_version)
        return event

    def usable(self, snapshot: Snapshot) -> bool:
        return snapshot.intact and snapshot.schema == self.schema

    def replay_from(self, stream: str, snapshot: Snapshot | None = None) -> Loaded:
        """The state from ``snapshot`` (None: the empty account) plus the events after it."""
        state, since = (Account(**snapshot.state), snapshot.version) if snapshot else (Account(), 0)
        events = self.events_after(stream, since)
        return Loaded(replay(events, state), since + len(events), len(events), since)

    def load(self, stream: str) -> Loaded:
        snapshots = self.snapshots_of(stream)
        latest = snapshots[0] if snapshots else None
        return self.replay_from(stream, latest if latest and self.usable(latest) else None)

    def snapshot_due(self, version: int) -> bool:
        return self.snapshot_every is not None and version % self.snapshot_every == 0

    def save_snapshot(self, stream: str, version: int, state: Account) -> Snapshot:
        snapshot = Snapshot.take(stream, version, state, self.schema)
        self._store_snapshot(snapshot)
        return snapshot

    def execute(self, stream: str, kind: str, amount: int = 0) -> Event:
        loaded = self.load(stream)
        decide(loaded.state, kind, amount)
        event = self.append(stream, kind, amount, loaded.version)
        if self.snapshot_due(event.version):
            self.save_snapshot(stream, event.version, apply(loaded.state, event))
        return event


# ---------------------------------------------------------------- production-grade (Level 3)

@dataclass(frozen=True)
class StoreConfig:
    """Settings of the SQLite store: a snapshot every ``snapshot_every`` events (None: never),
    the newest ``keep_snapshots`` kept per stream, the ``schema`` this code folds into, how many
    times a command is tried against concurrent writers, and how long a writer waits for
    SQLite's write lock."""

    snapshot_every: int | None = 100
    keep_snapshots: int = 2
    schema: int = SCHEMA
    max_attempts: int = 10
    busy_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        name = "StoreConfig."
        if self.snapshot_every is not None:
            check_int(name + "snapshot_every", self.snapshot_every, low=1)
        check_int(name + "keep_snapshots", self.keep_snapshots, low=1)
        check_int(name + "schema", self.schema, low=1)
        check_int(name + "max_attempts", self.max_attempts, low=1)
        check_positive(name + "busy_timeout_s", self.busy_timeout_s)


_SCHEMA_SQL = """
PRAGMA journal_mode=WAL;
PRAGMA synchronous=NORMAL;
CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL, version INTEGER NOT NULL, kind TEXT NOT NULL,
    amount INTEGER NOT NULL, recorded_at REAL NOT NULL,
    UNIQUE (stream, version));
CREATE TABLE IF NOT EXISTS snapshots (
    stream TEXT NOT NULL, version INTEGER NOT NULL, schema INTEGER NOT NULL,
    state TEXT NOT NULL, checksum INTEGER NOT NULL, taken_at REAL NOT NULL,
    PRIMARY KEY (stream, version));
"""

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class SQLiteEventStore(EventSourcedRepository):
    """The Level 2 repository on a SQLite file (WAL mode, ``synchronous=NORMAL``: durable across
    a process crash, not a power loss).

    Events: ``UNIQUE (stream, version)`` makes a second writer of the same version fail, which
    ``append`` reports as `ConcurrencyError`; ``execute`` then reloads and tries again, up to
    ``max_attempts`` times. ``position`` orders all streams' events for projectors
    (``read_all``). Snapshots: one transaction writes the snapshot and drops all but the newest
    ``keep_snapshots``, so a crash mid-way leaves the previous ones; on load a snapshot that
    fails its checksum (torn, altered) or whose schema cannot be brought up to date with
    ``upcasters`` (schema n -> n + 1) is logged, counted and skipped for a full replay.
    ``crash_hook(point)`` (testing) is called between writing a snapshot and committing it.
    Several objects (threads, processes) may share one file; each object locks its connection.
    """

    def __init__(self, path: str, config: StoreConfig | None = None, clock: Clock = time.time,
                 upcasters: Mapping[int, Upcaster] | None = None,
                 crash_hook: Callable[[str], None] | None = None) -> None:
        self.config = config or StoreConfig()
        super().__init__(self.config.snapshot_every, clock, self.config.schema)
        self.path, self.upcasters, self.crash_hook = path, dict(upcasters or {}), crash_hook
        self._db = sqlite3.connect(path, timeout=self.config.busy_timeout_s,
                                   check_same_thread=False)
        self._db.executescript(_SCHEMA_SQL)
        self._lock = threading.Lock()
        self.metrics = Instruments("event_store", "Appends, loads and snapshots")
        self._replayed = self.metrics.histogram(
            "replayed_events", "Events replayed per load",
            buckets=(0, 1, 10, 50, 100, 200, 500, 1000, 5000, 10000))
        self._load_seconds = self.metrics.histogram("load_seconds", "Time to load an aggregate")

    # --- storage on SQLite
    def version(self, stream: str) -> int:
        with self._lock:
            return self._db.execute("SELECT COALESCE(MAX(version), 0) FROM events WHERE "
                                    "stream = ?", (stream,)).fetchone()[0]

    def events_after(self, stream: str, version: int) -> list[Event]:
        with self._lock:
            rows = self._db.execute("SELECT stream, version, kind, amount, recorded_at FROM "
                                    "events WHERE stream = ? AND version > ? ORDER BY version",
                                    (stream, version)).fetchall()
        return [Event(*row) for row in rows]

    def snapshots_of(self, stream: str) -> list[Snapshot]:
        with self._lock:
            rows = self._db.execute("SELECT stream, version, schema, state, checksum FROM "
                                    "snapshots WHERE stream = ? ORDER BY version DESC",
                                    (stream,)).fetchall()
        return [Snapshot(s, v, schema, _decode(text), checksum)
                for s, v, schema, text, checksum in rows]

    def read_all(self, after_position: int = 0, limit: int = 1000) -> list[tuple[int, Event]]:
        """Every stream's events after ``after_position``, in the order they were written."""
        with self._lock:
            rows = self._db.execute("SELECT position, stream, version, kind, amount, "
                                    "recorded_at FROM events WHERE position > ? ORDER BY "
                                    "position LIMIT ?", (after_position, limit)).fetchall()
        return [(row[0], Event(*row[1:])) for row in rows]

    def _store_events(self, stream: str, events: list[Event], expected_version: int) -> None:
        rows = [(e.stream, e.version, e.kind, e.amount, e.recorded_at) for e in events]
        with self._lock:
            try:
                with self._db:  # one transaction: all the events or none
                    self._db.executemany("INSERT INTO events (stream, version, kind, amount, "
                                         "recorded_at) VALUES (?, ?, ?, ?, ?)", rows)
                    if expected_version and not self._db.execute(
                            "SELECT 1 FROM events WHERE stream = ? AND version = ?",
                            (stream, expected_version)).fetchone():
                        raise ConcurrencyError(f"stream {stream!r} has no version "
                                               f"{expected_version} yet: expected_version is "
                                               "ahead of the stream")
            except sqlite3.IntegrityError as error:  # the UNIQUE (stream, version) key
                self.metrics.count("conflicts")
                raise ConcurrencyError(f"stream {stream!r}: version {expected_version + 1} is "
                                       "already taken by another writer") from error
        self.metrics.count("events", len(events))

    def _store_snapshot(self, snapshot: Snapshot) -> None:
        text = json.dumps(snapshot.state, sort_keys=True)
        with self._lock, self._db:  # one transaction: commit on success, roll back otherwise
            self._db.execute("INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?, ?, ?, ?)",
                             (snapshot.stream, snapshot.version, snapshot.schema, text,
                              snapshot.checksum, self.clock()))
            if self.crash_hook is not None:
                self.crash_hook("snapshot written, not committed")
            self._db.execute("DELETE FROM snapshots WHERE stream = ? AND version NOT IN (SELECT "
                             "version FROM snapshots WHERE stream = ? ORDER BY version DESC "
                             "LIMIT ?)", (snapshot.stream, snapshot.stream,
                                          self.config.keep_snapshots))

    # --- the pattern, hardened
    def upcast(self, snapshot: Snapshot) -> Snapshot | None:
        """The snapshot in this code's schema, or None if it is torn or cannot be upcast."""
        if not snapshot.intact:
            return None
        while snapshot.schema < self.schema and snapshot.schema in self.upcasters:
            state = self.upcasters[snapshot.schema](dict(snapshot.state))
            snapshot = Snapshot.take(snapshot.stream, snapshot.version, state, snapshot.schema + 1)
        return snapshot if snapshot.schema == self.schema else None

    def load(self, stream: str) -> Loaded:
        started = time.perf_counter()
        snapshots = self.snapshots_of(stream)
        latest = snapshots[0] if snapshots else None
        usable = self.upcast(latest) if latest is not None else None
        if latest is not None and usable is None:
            reason = "checksum mismatch" if not latest.intact else f"schema {latest.schema}"
            log.warning("snapshot of %s at version %d skipped (%s): replaying from the start",
                        stream, latest.version, reason)
            self.metrics.count("snapshots_skipped")
        loaded = self.replay_from(stream, usable)
        self.metrics.count("loads")
        self._replayed.observe(loaded.replayed)
        self._load_seconds.observe(time.perf_counter() - started)
        return loaded

    def save_snapshot(self, stream: str, version: int, state: Account) -> Snapshot:
        snapshot = super().save_snapshot(stream, version, state)
        self.metrics.count("snapshots")
        log.debug("snapshot of %s at version %d", stream, version)
        return snapshot

    def execute(self, stream: str, kind: str, amount: int = 0) -> Event:
        """The command handler, tried again (reload, decide, append) when another writer got to
        the stream first; `ConcurrencyError` after ``max_attempts`` lost races."""
        attempt = 1
        while True:
            try:
                event = super().execute(stream, kind, amount)
            except ConcurrencyError:
                if attempt == self.config.max_attempts:
                    log.error("%s: gave up after losing %d races to other writers", stream,
                              attempt)
                    raise
                attempt += 1
                continue
            self.metrics.count("commands")
            return event

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _decode(text: str) -> dict[str, Any] | None:
    """The stored state, or None if the text is not a JSON object (a torn write)."""
    try:
        state = json.loads(text)
    except ValueError:
        return None
    return state if isinstance(state, dict) else None
