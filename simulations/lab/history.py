"""What the clients saw: one row per operation, from the moment it was asked to its answer.

Picture a bank's counter log: each customer's request is written down when it is handed over
(``invoke_s``), and again when the answer comes back (``complete_s``) with how it ended. It
either worked (``ok``, with what came back), was refused for sure (``fail``: it did not happen),
or the customer gave up waiting (``unknown``: it may or may not have happened, as with a timed-out
request). The checkers and the pictures read only this log, never the nodes' insides, which is
what makes them fair judges of any design.

``HistoryLog`` is the log being written during a run; ``History`` is its finished table, a tuple
of ``Op`` rows with a column view (``history.column("invoke_s")``).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import numpy as np

__all__ = ["History", "HistoryLog", "Op", "Status"]


class Status(StrEnum):
    """How an operation ended, in the words Jepsen's Knossos uses (ok, fail, info)."""

    OK = "ok"  # it happened, and ``output`` is what came back
    FAIL = "fail"  # it certainly did not happen (the node said so)
    UNKNOWN = "unknown"  # the client gave up waiting: it may or may not have happened


@dataclass(frozen=True)
class Op:
    """One client operation: ``f`` (``read``, ``write``, ``cas``, ``add``, ``generate``) on
    ``key`` with argument ``value``; ``output`` is what came back (None unless ok).

    ``complete_s`` is when the answer came or, for ``unknown``, when the client gave up; the
    checkers treat an unknown operation as possibly taking effect at any time after
    ``invoke_s``. ``node`` is the node the client asked.
    """

    index: int
    client: int
    f: str
    key: Hashable
    value: Any
    output: Any
    invoke_s: float
    complete_s: float
    status: Status
    node: str = ""

    @property
    def latency_s(self) -> float:
        """Seconds from invocation to the answer (or to giving up)."""
        return self.complete_s - self.invoke_s

    def describe(self) -> str:
        """A short label, e.g. ``write(3)``, ``read→3``, ``cas(1→4) fail``, ``read ?``."""
        arg = {"cas": lambda v: f"({v[0]}→{v[1]})", "read": lambda v: ""}.get(
            self.f, lambda v: f"({v})")(self.value)
        if self.status is Status.OK and (self.output is not None or self.f == "read"):
            out = f"→{_short(self.output)}"
        else:
            out = {"ok": "", "fail": " fail", "unknown": " ?"}[self.status]
        key = "" if self.key is None else f"[{self.key}]"
        return f"{self.f}{key}{arg}{out}"


def _short(value: Any) -> str:
    if isinstance(value, frozenset):
        return "{" + ",".join(map(str, sorted(value))) + "}" if len(value) <= 4 else \
            f"{{{len(value)} items}}"
    return str(value)


@dataclass(frozen=True, eq=False)
class History:
    """A finished history: the operations in the order they were invoked."""

    ops: tuple[Op, ...]

    @classmethod
    def of(cls, ops: Iterable[Op]) -> History:
        """A history from rows, sorted by invocation time (re-indexed 0, 1, ...)."""
        ordered = sorted(ops, key=lambda op: (op.invoke_s, op.index))
        return cls(tuple(replace(op, index=i) for i, op in enumerate(ordered)))

    def __len__(self) -> int:
        return len(self.ops)

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops)

    def __getitem__(self, i: int) -> Op:
        return self.ops[i]

    def column(self, name: str) -> np.ndarray:
        """One field of every row as an array, e.g. ``column("latency_s")``."""
        values = [getattr(op, name) for op in self.ops]
        numeric = name in ("index", "client", "invoke_s", "complete_s", "latency_s")
        return np.array(values, dtype=float if numeric else object)

    def where(self, *, f: str | None = None, status: Status | None = None) -> History:
        """The rows with that ``f`` and/or that ``status``."""
        return History(tuple(op for op in self.ops if (f is None or op.f == f)
                             and (status is None or op.status is status)))

    def by_key(self) -> dict[Hashable, History]:
        """One sub-history per key, in first-seen order."""
        groups: dict[Hashable, list[Op]] = {}
        for op in self.ops:
            groups.setdefault(op.key, []).append(op)
        return {key: History(tuple(ops)) for key, ops in groups.items()}

    def counts(self) -> dict[str, int]:
        """How many operations ended ok, fail and unknown."""
        return {s.value: sum(op.status is s for op in self.ops) for s in Status}


class HistoryLog:
    """The history being written during a run: ``invoke`` opens a row, ``complete`` closes it."""

    def __init__(self) -> None:
        self._open: dict[int, Op] = {}
        self._done: list[Op] = []

    @property
    def next_index(self) -> int:
        """The index the next ``invoke`` will return."""
        return len(self._open) + len(self._done)

    def invoke(self, client: int, f: str, key: Hashable, value: Any, node: str,
               time_s: float) -> int:
        """Record that ``client`` asked ``node`` for ``f(value)`` on ``key``; returns its index."""
        index = self.next_index
        self._open[index] = Op(index, client, f, key, value, None, time_s, np.nan,
                               Status.UNKNOWN, node)
        return index

    def complete(self, index: int, status: Status, output: Any, time_s: float) -> None:
        """Record how operation ``index`` ended, at ``time_s``."""
        op = self._open.pop(index)
        self._done.append(replace(op, status=status, output=output, complete_s=time_s))

    def table(self) -> History:
        """The finished rows (any still open stay unknown, with no completion time)."""
        return History(tuple(sorted(self._done + list(self._open.values()),
                                    key=lambda op: op.index)))
