"""Is there one order of the operations, each taking effect at an instant between its invocation
and its answer, that a single correct copy of the data would have produced? (Linearizability.)

Picture a clerk who must explain a day's receipts as if one cashier had served everyone in
turn, and who may place each customer's turn anywhere while that customer stood at the counter.
The clerk tries customers in order of arrival, backs up when stuck, and remembers every
situation (who is already placed, what the till holds) that has led nowhere, so never explores
it twice. That is the search of Wing and Gong with Lowe's memoisation (G. Lowe, "Testing for
linearizability", Concurrency and Computation: Practice and Experience 29(4), 2017), as the
Porcupine checker publishes it (github.com/anishathalye/porcupine, ``checker.go``): the calls and
returns in one time-ordered linked list, calls before returns at equal times; at a call, try to
apply the operation to the model's state and lift it out of the list; at a return that is not
yet placed, undo the last placement; a cache of (placed set, state) pairs prunes what failed
before. Registers of different keys are independent, so a key-value history is checked one key
at a time (P-compositionality, which Porcupine also uses).

Operations that ended ``fail`` did not happen and are left out. An ``unknown`` one may have
happened at any time after its invocation, or not at all; an unknown read is left out, since
its answer was never seen. A write or compare-and-set whose value no remaining operation reads
is left out too when it is uncertain: placing it can only hide the value before it.

A failing key gets a small witness: operations, with their times, that cannot be ordered even
when every other operation of that key is allowed to take effect anywhere in its own interval
or not at all (reads among the others are ignored). It is found by keeping the shortest
prefix that still fails, then releasing, earliest first, each operation whose release keeps it
failing.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from simulations.lab.checkers.result import CheckResult
from simulations.lab.history import History, Op, Status

__all__ = ["CasRegister", "check_linearizable", "is_linearizable"]

ILLEGAL = object()
"""What a model's ``step`` returns when the operation cannot happen in that state."""


@dataclass(frozen=True)
class CasRegister:
    """The sequential specification of a register with read, write and compare-and-set
    (``value = (expected, new)``), starting at ``initial``."""

    initial: Hashable = None

    def step(self, state: Hashable, op: Op) -> Any:
        """The state after ``op``, or ``ILLEGAL`` if ``op`` could not have given its answer."""
        if op.f == "read":
            return state if op.output == state else ILLEGAL
        if op.f == "write":
            return op.value
        if op.f == "cas":
            expected, new = op.value
            return new if state == expected else ILLEGAL
        raise ValueError(f"a register's operations are read, write and cas (got {op.f!r} in "
                         f"operation {op.index})")

    def observes(self, op: Op) -> Iterable[Hashable]:
        """The values ``op`` needs to have been there: a read's output, a cas's expected."""
        if op.f == "read":
            return (op.output,)
        return (op.value[0],) if op.f == "cas" else ()

    def writes(self, op: Op) -> Hashable:
        return op.value if op.f == "write" else op.value[1]


@dataclass(frozen=True)
class _Call:
    op: Op
    optional: bool  # may also not have happened at all
    return_s: float


def _calls(ops: list[Op], model: CasRegister, kept: set[int] | None = None) -> list[_Call]:
    """The operations the search places; with ``kept``, every other one is released."""
    calls = []
    for op in ops:
        released = kept is not None and op.index not in kept
        if op.status is Status.FAIL or (op.f == "read" and (released or
                                                           op.status is Status.UNKNOWN)):
            continue
        optional = released or op.status is Status.UNKNOWN
        calls.append(_Call(op, optional, math.inf if op.status is Status.UNKNOWN
                           else op.complete_s))
    if kept is not None:  # released operations invoked after every kept one ended are moot
        last = max(c.return_s for c in calls if not c.optional)
        calls = [c for c in calls if not c.optional or c.op.invoke_s <= last]
    seen = {v for c in calls for v in model.observes(c.op)}
    return [c for c in calls if not c.optional or model.writes(c.op) in seen]


def _search(calls: list[_Call], model: CasRegister) -> bool:
    """Wing-Gong-Lowe: is there a legal order of ``calls`` that respects real time?"""
    n = len(calls)
    entries = sorted([(c.op.invoke_s, 0, i) for i, c in enumerate(calls)] +
                     [(c.return_s, 1, i) for i, c in enumerate(calls)])
    # A doubly linked list over positions 1..2n; 0 is the head, 2n + 1 the tail.
    nxt = list(range(1, 2 * n + 2)) + [-1]
    prv = [-1] + list(range(0, 2 * n + 1))
    is_call = [False] * (2 * n + 2)
    op_at = [-1] * (2 * n + 2)
    call_pos, return_pos = [0] * n, [0] * n
    for p, (_, kind, i) in enumerate(entries, start=1):
        is_call[p], op_at[p] = kind == 0, i
        (call_pos if kind == 0 else return_pos)[i] = p
    tail = 2 * n + 1

    def lift(i: int) -> None:
        for p in (call_pos[i], return_pos[i]):
            nxt[prv[p]], prv[nxt[p]] = nxt[p], prv[p]

    def unlift(i: int) -> None:
        for p in (return_pos[i], call_pos[i]):
            nxt[prv[p]] = prv[nxt[p]] = p

    state, placed = model.initial, 0
    cache: set[tuple[int, Hashable]] = set()
    stack: list[tuple[int, Hashable, bool]] = []  # (operation, state before, skipped?)
    p = nxt[0]
    while nxt[0] != tail:
        i = op_at[p]
        if is_call[p]:
            new = model.step(state, calls[i].op)
            if new is not ILLEGAL and (placed | 1 << i, new) not in cache:
                cache.add((placed | 1 << i, new))
                stack.append((i, state, False))
                state, placed = new, placed | 1 << i
                lift(i)
                p = nxt[0]
            else:
                p = nxt[p]
            continue
        if calls[i].optional and (placed | 1 << i, state) not in cache:
            cache.add((placed | 1 << i, state))  # it did not happen: skip it
            stack.append((i, state, True))
            placed |= 1 << i
            lift(i)
            p = nxt[0]
            continue
        while True:  # undo the last placement (a skip was forced, so undo past it)
            if not stack:
                return False
            i, state, skipped = stack.pop()
            placed &= ~(1 << i)
            unlift(i)
            if not skipped:
                p = nxt[call_pos[i]]
                break
    return True


def is_linearizable(history: History, model: CasRegister | None = None) -> bool:
    """True if every key's operations are linearizable (no witness is computed)."""
    model = model or CasRegister()
    return all(_search(_calls(list(sub), model), model) for sub in history.by_key().values())


def _witness(ops: list[Op], model: CasRegister) -> tuple[Op, ...]:
    order = sorted(ops, key=lambda op: (op.invoke_s, op.index))
    order = [op for op in order if op.status is Status.OK]

    def fails(kept: Iterable[Op]) -> bool:
        kept_ids = {op.index for op in kept}
        return bool(kept_ids) and not _search(_calls(ops, model, kept_ids), model)

    low, high = 1, len(order)  # the shortest prefix of ok operations that still fails
    while low < high:
        mid = (low + high) // 2
        low, high = (low, mid) if fails(order[:mid]) else (mid + 1, high)
    kept = order[:high]
    for op in order[:high - 1]:  # earliest first, so the latest context stays
        trial = [k for k in kept if k is not op]
        if fails(trial):
            kept = trial
    return tuple(kept)


def check_linearizable(history: History, model: CasRegister | None = None) -> CheckResult:
    """Check a register or key-value history, key by key; a failure names its key and gives a
    witness (the first failing key's)."""
    model = model or CasRegister()
    keys = history.by_key()
    failing = [key for key, sub in keys.items() if not _search(_calls(list(sub), model), model)]
    details = {"operations": len(history), "keys": len(keys), "failing_keys": failing}
    if not failing:
        return CheckResult("linearizability", True, f"{len(history)} operations on "
                           f"{len(keys)} key{'s' * (len(keys) != 1)} can be ordered", (), details)
    witness = _witness(list(keys[failing[0]]), model)
    return CheckResult(
        "linearizability", False,
        f"{len(failing)} of {len(keys)} keys cannot be ordered; on key {failing[0]!r} these "
        f"{len(witness)} operations cannot be ordered, whatever the others did", witness, details)
