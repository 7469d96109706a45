"""Saga: a long business transaction as a chain of local transactions, each with an undo.

Picture booking a trip with three separate shops: the airline, the hotel and the car hire. No
clerk can hold all three counters at once, so you book one after another; if the car hire has
nothing left, you call the hotel and then the airline to cancel, newest first. Each booking is
a real, final transaction of its own shop; the "undo" is another real transaction (a
cancellation, a refund), not a rollback.

`Saga` is the Level 2 orchestrator: ``Step(name, action, compensation)`` objects run in order;
when a step raises, the compensations of the steps already done run in reverse. A compensation
that fails stops it: the saga is ``"stuck"`` (the pitfall the production class fixes). Time
comes from an injectable ``clock``, so a simulation can move it by hand.

`ProductionSaga` hardens it for Level 3: a persisted saga log in SQLite (``saga_log`` and
``sagas`` tables) written *before* each move, so that a new orchestrator resumes a crashed saga
(``resume`` / ``resume_all``): forward from the first step not logged done (that step may run
twice, so steps must be idempotent) or on with the compensation; compensations retried with
backoff (``SagaConfig``); an optional retrier around forward steps
(``patterns.resilience.retry_backoff_jitter``); a lock, ``logging`` and ``prometheus_client``
metrics. `Shop` is the example's participants in one SQLite database (orders, stock, payments),
each operation idempotent by key unless built with ``idempotent=False`` (a pitfall), with an
order kept ``PENDING`` until the saga's last step (the semantic lock) unless built with
``pending_state=False``. Nothing here imports from ``simulations``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from patterns.checks import check_int, check_non_negative
from patterns.metrics import Instruments

Clock = Callable[[], float]
Context = dict[str, Any]
log = logging.getLogger(__name__)

COMMITTED, COMPENSATED, STUCK = "committed", "compensated", "stuck"


class StepFailed(RuntimeError):
    """A participant said no (out of stock, card declined): the saga must compensate."""


class OrchestratorCrash(BaseException):
    """Stands in for the orchestrator process dying at a chosen point (a demo and test hook).
    A BaseException, so no ``except Exception`` in a step or a retrier swallows it."""


@dataclass(frozen=True)
class Step:
    """One local transaction ``action(ctx)`` and its compensation ``compensation(ctx)``.
    ``action`` may return a dict of results (a charge id, say), merged into ``ctx`` for the
    later steps and for the compensations."""

    name: str
    action: Callable[[Context], Context | None]
    compensation: Callable[[Context], None] | None = None


@dataclass
class SagaResult:
    """How a saga ended: ``status`` is ``"committed"``, ``"compensated"`` or ``"stuck"`` (a
    compensation failed, so some effects are neither kept on purpose nor undone)."""

    status: str
    completed: list[str]
    compensated: list[str]
    failed_step: str | None
    error: BaseException | None
    started_at: float
    finished_at: float
    context: Context = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.finished_at - self.started_at


class Saga:
    """Run steps T1..Tn in order; when Ti fails, run C(i-1)..C1 (newest first)."""

    def __init__(self, steps: Sequence[Step], clock: Clock = time.monotonic) -> None:
        names = [s.name for s in steps]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"Saga.steps must be one or more steps with distinct names "
                             f"(got {names})")
        self.steps, self.clock = list(steps), clock

    def run(self, ctx: Context | None = None,
            after_step: Callable[[str, Context], None] | None = None) -> SagaResult:
        """Run the saga on ``ctx``; ``after_step(name, ctx)`` runs after each forward step
        (a hook to look at the intermediate state, or to crash the orchestrator)."""
        ctx, started, done = dict(ctx or {}), self.clock(), []
        for step in self.steps:
            try:
                ctx.update(step.action(ctx) or {})
            except Exception as error:  # the step failed: undo what was done, newest first
                compensated, stuck = self.compensate(done, ctx)
                return SagaResult(STUCK if stuck else COMPENSATED, [s.name for s in done],
                                  compensated, step.name, stuck or error, started,
                                  self.clock(), ctx)
            done.append(step)
            if after_step is not None:
                after_step(step.name, ctx)
        return SagaResult(COMMITTED, [s.name for s in done], [], None, None, started,
                          self.clock(), ctx)

    def compensate(self, done: Sequence[Step], ctx: Context
                   ) -> tuple[list[str], Exception | None]:
        """Run the compensations of ``done`` in reverse; stop at the first that raises and
        return it (the saga is then stuck)."""
        compensated: list[str] = []
        for step in reversed(done):
            if step.compensation is None:
                continue
            try:
                step.compensation(ctx)
            except Exception as error:
                return compensated, error
            compensated.append(step.name)
        return compensated, None


# ---------------------------------------------------------------- Level 3: production-grade

LOG_SCHEMA = """
CREATE TABLE IF NOT EXISTS sagas (
    saga_id TEXT PRIMARY KEY, status TEXT NOT NULL, context TEXT NOT NULL, updated_at REAL);
CREATE TABLE IF NOT EXISTS saga_log (
    saga_id TEXT NOT NULL, seq INTEGER NOT NULL, step TEXT NOT NULL, event TEXT NOT NULL,
    at REAL NOT NULL, PRIMARY KEY (saga_id, seq));
"""
RUNNING, COMPENSATING = "running", "compensating"


@dataclass(frozen=True)
class SagaConfig:
    """An orchestrator's settings, checked when created: how often a compensation is tried
    before the saga is marked stuck, and the first backoff wait (doubling each retry)."""

    compensation_attempts: int = 5
    compensation_backoff_s: float = 0.1

    def __post_init__(self) -> None:
        check_int("SagaConfig.compensation_attempts", self.compensation_attempts, 1)
        check_non_negative("SagaConfig.compensation_backoff_s", self.compensation_backoff_s)


class ProductionSaga(Saga):
    """The Level 2 saga with a persisted log, resume after a crash, compensation retries.

    Every move is logged (and committed) before it is made: ``(step, "started")`` before an
    action, ``(step, "done")`` after it with the context it returned, ``(step, "failed")``,
    then ``(step, "compensating")`` / ``(step, "compensated")``. ``resume(saga_id)`` replays the
    log: a saga still running goes on from the first step not logged done (at-least-once: the
    step that was in flight runs again, so it must be idempotent); a saga compensating goes on
    compensating. Counters: ``started``, ``committed``, ``compensated``, ``stuck``,
    ``step_failures``, ``compensations``, ``compensation_retries``, ``resumed``; histograms of
    saga duration and of compensations per saga.
    """

    def __init__(self, steps: Sequence[Step], db: sqlite3.Connection,
                 config: SagaConfig | None = None, *, retrier: Any = None,
                 clock: Clock = time.time, sleep: Callable[[float], object] = time.sleep) -> None:
        super().__init__(steps, clock)
        self.db, self.config, self.retrier, self.sleep = db, config or SagaConfig(), retrier, sleep
        self.db.executescript(LOG_SCHEMA)
        self._by_name = {s.name: s for s in self.steps}
        self._lock = threading.Lock()
        self.metrics = Instruments("saga", "Sagas and their steps")
        self._duration = self.metrics.histogram("duration_seconds", "Saga start to end")
        self._undone = self.metrics.histogram("compensations", "Compensations run per saga",
                                              buckets=(0, 1, 2, 3, 4, 5, 8))

    # --- the log ---------------------------------------------------------------------------

    def _write(self, saga_id: str, step: str, event: str, ctx: Context | None = None,
               status: str | None = None) -> None:
        with self._lock, self.db:  # one committed transaction per move
            seq = self.db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM saga_log "
                                  "WHERE saga_id = ?", (saga_id,)).fetchone()[0]
            self.db.execute("INSERT INTO saga_log VALUES (?, ?, ?, ?, ?)",
                            (saga_id, seq, step, event, self.clock()))
            if ctx is not None or status is not None:
                self.db.execute(
                    "INSERT INTO sagas VALUES (?, ?, ?, ?) ON CONFLICT(saga_id) DO UPDATE SET "
                    "status = COALESCE(?, status), context = COALESCE(?, context), "
                    "updated_at = excluded.updated_at",
                    (saga_id, status or RUNNING, json.dumps(ctx or {}), self.clock(), status,
                     None if ctx is None else json.dumps(ctx)))

    def history(self, saga_id: str) -> list[tuple[str, str]]:
        """The saga's log as (step, event) pairs, in order."""
        with self._lock:
            return self.db.execute("SELECT step, event FROM saga_log WHERE saga_id = ? "
                                   "ORDER BY seq", (saga_id,)).fetchall()

    def status(self, saga_id: str) -> str | None:
        with self._lock:
            row = self.db.execute("SELECT status FROM sagas WHERE saga_id = ?",
                                  (saga_id,)).fetchone()
        return None if row is None else row[0]

    def unfinished(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self.db.execute(
                "SELECT saga_id FROM sagas WHERE status IN (?, ?) ORDER BY rowid",
                (RUNNING, COMPENSATING))]

    # --- running ---------------------------------------------------------------------------

    def run(self, ctx: Context | None = None,  # type: ignore[override]
            after_step: Callable[[str, Context], None] | None = None, *,
            saga_id: str | None = None,
            after_action: Callable[[str, Context], None] | None = None) -> SagaResult:
        """Start saga ``saga_id`` (default ``ctx["saga_id"]``) and run it to its end.
        ``after_action(name, ctx)`` runs after a step's action and before its "done" record:
        the worst moment for a crash."""
        ctx = dict(ctx or {})
        saga_id = saga_id or ctx.get("saga_id")
        if not saga_id:
            raise ValueError("ProductionSaga.run needs a saga_id (got none)")
        ctx["saga_id"] = saga_id
        self._write(saga_id, "saga", "started", ctx, RUNNING)
        self.metrics.count("started")
        return self._forward(saga_id, ctx, [], self.clock(), after_step, after_action)

    def resume(self, saga_id: str) -> SagaResult | None:
        """Finish a saga a crashed orchestrator left: forward or on with the compensation."""
        with self._lock:
            row = self.db.execute("SELECT status, context FROM sagas WHERE saga_id = ?",
                                  (saga_id,)).fetchone()
        if row is None or row[0] not in (RUNNING, COMPENSATING):
            return None
        status, ctx = row[0], json.loads(row[1])
        events = self.history(saga_id)
        done = [self._by_name[s] for s, e in events if e == "done"]
        undone = {s for s, e in events if e == "compensated"}
        self.metrics.count("resumed")
        log.info("saga %s: resuming (%s) after %d done step(s)", saga_id, status, len(done))
        if status == COMPENSATING:
            failed = next((s for s, e in reversed(events) if e == "failed"), None)
            return self._backward(saga_id, ctx, done, undone, failed, None, self.clock())
        return self._forward(saga_id, ctx, done, self.clock(), None, None)

    def resume_all(self) -> list[SagaResult]:
        return [r for r in (self.resume(s) for s in self.unfinished()) if r is not None]

    def _call(self, fn: Callable[[Context], Any], ctx: Context) -> Any:
        return fn(ctx) if self.retrier is None else self.retrier.call(fn, ctx)

    def _forward(self, saga_id: str, ctx: Context, done: list[Step], started: float,
                 after_step: Callable[[str, Context], None] | None,
                 after_action: Callable[[str, Context], None] | None) -> SagaResult:
        names = {s.name for s in done}
        for step in self.steps:
            if step.name in names:
                continue
            self._write(saga_id, step.name, "started")
            try:
                ctx.update(self._call(step.action, ctx) or {})
            except Exception as error:
                self.metrics.count("step_failures")
                log.warning("saga %s: step %s failed (%r); compensating %d step(s)", saga_id,
                            step.name, error, len(done))
                self._write(saga_id, step.name, "failed", status=COMPENSATING)
                return self._backward(saga_id, ctx, done, set(), step.name, error, started)
            if after_action is not None:
                after_action(step.name, ctx)
            self._write(saga_id, step.name, "done", ctx)
            done.append(step)
            if after_step is not None:
                after_step(step.name, ctx)
        self._write(saga_id, "saga", COMMITTED, status=COMMITTED)
        return self._finish(COMMITTED, saga_id, ctx, done, [], None, None, started)

    def _backward(self, saga_id: str, ctx: Context, done: list[Step], undone: set[str],
                  failed: str | None, error: BaseException | None,
                  started: float) -> SagaResult:
        compensated: list[str] = []
        for step in reversed(done):
            if step.compensation is None or step.name in undone:
                continue
            self._write(saga_id, step.name, "compensating")
            problem = self._compensate_with_retries(saga_id, step, ctx)
            if problem is not None:
                self._write(saga_id, step.name, "compensation failed", status=STUCK)
                log.error("saga %s: compensation of %s failed %d times (%r): stuck, needs "
                          "an operator", saga_id, step.name,
                          self.config.compensation_attempts, problem)
                return self._finish(STUCK, saga_id, ctx, done, compensated, failed, problem,
                                    started)
            self._write(saga_id, step.name, "compensated")
            compensated.append(step.name)
            self.metrics.count("compensations")
        self._write(saga_id, "saga", COMPENSATED, status=COMPENSATED)
        return self._finish(COMPENSATED, saga_id, ctx, done, compensated, failed, error, started)

    def _compensate_with_retries(self, saga_id: str, step: Step,
                                 ctx: Context) -> Exception | None:
        wait = self.config.compensation_backoff_s
        for attempt in range(1, self.config.compensation_attempts + 1):
            try:
                step.compensation(ctx)  # type: ignore[misc]
                return None
            except Exception as error:
                if attempt == self.config.compensation_attempts:
                    return error
                self.metrics.count("compensation_retries")
                log.info("saga %s: compensation of %s failed (%r), retry in %.3f s", saga_id,
                         step.name, error, wait)
                self.sleep(wait)
                wait *= 2
        return None  # not reached

    def _finish(self, status: str, saga_id: str, ctx: Context, done: list[Step],
                compensated: list[str], failed: str | None, error: BaseException | None,
                started: float) -> SagaResult:
        self.metrics.count(status)
        self._duration.observe(max(0.0, self.clock() - started))
        if status != COMMITTED:
            self._undone.observe(len(compensated))
        return SagaResult(status, [s.name for s in done], compensated, failed, error, started,
                          self.clock(), ctx)


# ---------------------------------------------------------------- the example's participants

SHOP_SCHEMA = """
CREATE TABLE IF NOT EXISTS stock (item TEXT PRIMARY KEY, qty INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY, item TEXT NOT NULL, qty INTEGER NOT NULL, amount REAL NOT NULL,
    status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reservations (
    key TEXT PRIMARY KEY, item TEXT NOT NULL, qty INTEGER NOT NULL, released INTEGER DEFAULT 0);
CREATE TABLE IF NOT EXISTS payments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT, order_id TEXT NOT NULL,
    amount REAL NOT NULL, refunded INTEGER DEFAULT 0);
"""


class Shop:
    """Three participants (orders, stock, payments) as tables of one SQLite database, each
    operation one local transaction. With ``idempotent=True`` an operation carries a key
    (saga id and step) and a repeat does nothing; with ``pending_state=True`` an order is
    ``PENDING`` until ``confirm`` (the semantic lock), else it is ``PLACED`` at once.
    ``faults`` maps an operation name to a list of outcomes to play, one per call:
    ``"fail"`` (raise before acting), ``"decline"`` (a business no, ``StepFailed``) or
    ``"lose_reply"`` (act, then raise TimeoutError as if the reply were lost) or ``"crash"``
    (act, then raise `OrchestratorCrash`: the orchestrator died waiting for the reply)."""

    def __init__(self, db: sqlite3.Connection, *, idempotent: bool = True,
                 pending_state: bool = True) -> None:
        self.db, self.idempotent, self.pending_state = db, idempotent, pending_state
        self.db.executescript(SHOP_SCHEMA)
        self.faults: dict[str, list[str]] = {}

    def _fault(self, op: str) -> str | None:
        plan = self.faults.get(op)
        outcome = plan.pop(0) if plan else None
        if outcome == "fail":
            raise ConnectionError(f"{op}: service unavailable")
        if outcome == "decline":
            raise StepFailed(f"{op}: declined")
        return outcome

    def _reply(self, op: str, outcome: str | None) -> None:
        if outcome == "lose_reply":
            raise TimeoutError(f"{op}: no reply (the change was made)")
        if outcome == "crash":
            raise OrchestratorCrash(f"orchestrator killed while waiting for {op}")

    def stock_of(self, item: str) -> int:
        row = self.db.execute("SELECT qty FROM stock WHERE item = ?", (item,)).fetchone()
        return 0 if row is None else row[0]

    def add_stock(self, item: str, qty: int) -> None:
        with self.db:
            self.db.execute("INSERT INTO stock VALUES (?, ?) ON CONFLICT(item) DO UPDATE SET "
                            "qty = qty + excluded.qty", (item, qty))

    # each operation takes the saga's context and returns what later steps need

    def create_order(self, ctx: Context) -> None:
        outcome = self._fault("create_order")
        status = "PENDING" if self.pending_state else "PLACED"
        with self.db:
            self.db.execute("INSERT OR IGNORE INTO orders VALUES (?, ?, ?, ?, ?)",
                            (ctx["saga_id"], ctx["item"], ctx["qty"], ctx["amount"], status))
        self._reply("create_order", outcome)

    def cancel_order(self, ctx: Context) -> None:
        outcome = self._fault("cancel_order")
        with self.db:
            self.db.execute("UPDATE orders SET status = 'CANCELLED' WHERE id = ?",
                            (ctx["saga_id"],))
        self._reply("cancel_order", outcome)

    def reserve(self, ctx: Context) -> None:
        outcome = self._fault("reserve")
        key = f"{ctx['saga_id']}:reserve" if self.idempotent else None
        with self.db:
            if key and self.db.execute("SELECT 1 FROM reservations WHERE key = ?",
                                       (key,)).fetchone():
                return
            if self.stock_of(ctx["item"]) < ctx["qty"]:
                raise StepFailed(f"reserve: {ctx['item']} out of stock")
            self.db.execute("UPDATE stock SET qty = qty - ? WHERE item = ?",
                            (ctx["qty"], ctx["item"]))
            self.db.execute("INSERT INTO reservations (key, item, qty) VALUES (?, ?, ?)",
                            (key or f"{ctx['saga_id']}:reserve:{time.perf_counter_ns()}",
                             ctx["item"], ctx["qty"]))
        self._reply("reserve", outcome)

    def release(self, ctx: Context) -> None:
        outcome = self._fault("release")
        with self.db:
            rows = self.db.execute("SELECT key, item, qty FROM reservations WHERE key LIKE ? "
                                   "AND released = 0", (f"{ctx['saga_id']}:reserve%",)).fetchall()
            for key, item, qty in rows:
                self.db.execute("UPDATE stock SET qty = qty + ? WHERE item = ?", (qty, item))
                self.db.execute("UPDATE reservations SET released = 1 WHERE key = ?", (key,))
        self._reply("release", outcome)

    def charge(self, ctx: Context) -> Context:
        outcome = self._fault("charge")
        key = f"{ctx['saga_id']}:charge" if self.idempotent else None
        with self.db:
            found = key and self.db.execute("SELECT seq FROM payments WHERE key = ?",
                                            (key,)).fetchone()
            if found:
                seq = found[0]
            else:
                seq = self.db.execute("INSERT INTO payments (key, order_id, amount) "
                                      "VALUES (?, ?, ?)",
                                      (key, ctx["saga_id"], ctx["amount"])).lastrowid
        self._reply("charge", outcome)
        return {"payment": seq}

    def refund(self, ctx: Context) -> None:
        outcome = self._fault("refund")
        with self.db:  # refunds every charge of the order not yet refunded: a repeat is a no-op
            self.db.execute("UPDATE payments SET refunded = 1 WHERE order_id = ?",
                            (ctx["saga_id"],))
        self._reply("refund", outcome)

    def confirm(self, ctx: Context) -> None:
        outcome = self._fault("confirm")
        with self.db:
            self.db.execute("UPDATE orders SET status = 'CONFIRMED' WHERE id = ?",
                            (ctx["saga_id"],))
        self._reply("confirm", outcome)

    def steps(self) -> list[Step]:
        """The order saga: create the order, reserve stock, charge the card, confirm."""
        return [Step("create_order", self.create_order, self.cancel_order),
                Step("reserve", self.reserve, self.release),
                Step("charge", self.charge, self.refund),
                Step("confirm", self.confirm)]

    def charged(self, order_id: str | None = None) -> float:
        """Money taken and not refunded (for one order, or all)."""
        sql = "SELECT COALESCE(SUM(amount), 0) FROM payments WHERE refunded = 0"
        args: tuple[str, ...] = ()
        if order_id is not None:
            sql, args = sql + " AND order_id = ?", (order_id,)
        return float(self.db.execute(sql, args).fetchone()[0])

    def orders_by_status(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT status, COUNT(*) FROM orders GROUP BY status"))

    def pick_list(self) -> list[str]:
        """What the warehouse packs: orders that look final (not pending, not cancelled)."""
        return [r[0] for r in self.db.execute(
            "SELECT id FROM orders WHERE status IN ('PLACED', 'CONFIRMED') ORDER BY id")]


__all__ = ["COMMITTED", "COMPENSATED", "LOG_SCHEMA", "OrchestratorCrash", "ProductionSaga",
           "STUCK", "Saga", "SagaConfig", "SagaResult", "Shop", "Step", "StepFailed"]
