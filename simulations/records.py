"""One compact row per request: when it arrived, started, ended, and how it ended.

Like a shop's ticket roll: every customer gets a numbered ticket, and the clerk writes the
arrival time, the moment service began, the moment it ended and the outcome (served, turned
away, gave up, failed). The roll is a set of numpy columns that grow by doubling, about 35 bytes
per request, so a million requests take roughly 35 MB rather than the hundreds of MB a Python
object per request would. ``RequestLog`` is the roll being written during a run;
``RequestTable`` is a finished copy that analyses read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from enum import IntEnum

import numpy as np

from patterns.checks import check_int

__all__ = ["Outcome", "RequestLog", "RequestTable"]


class Outcome(IntEnum):
    """How a request ended (stored as an int8 code)."""

    IN_FLIGHT = 0  # not finished when the run stopped (queued, in service or hung)
    OK = 1  # served
    REJECTED = 2  # turned away at once (queue full, breaker open, shed)
    TIMEOUT = 3  # the caller gave up waiting
    ERROR = 4  # the service answered with a failure


_COLUMNS: dict[str, tuple[type, float | int]] = {
    "arrival": (np.float64, np.nan),
    "start": (np.float64, np.nan),
    "end": (np.float64, np.nan),
    "outcome": (np.int8, int(Outcome.IN_FLIGHT)),
    "server": (np.int32, -1),
    "cls": (np.int16, -1),
    "key": (np.int32, -1),
}


class RequestLog:
    """A growing columnar log written while a simulation runs.

    Columns: ``arrival``, ``start`` (service began; NaN if never), ``end`` (answered; NaN while in
    flight) in seconds; ``outcome`` (an ``Outcome`` code); ``server`` (which server, -1 if none);
    ``cls`` (request class, -1 if unused); ``key`` (key id, -1 if unused).
    """

    def __init__(self, expected: int = 1024) -> None:
        self._capacity = check_int("expected", expected, 1)
        self.count = 0
        for name, (dtype, fill) in _COLUMNS.items():
            setattr(self, name, np.full(self._capacity, fill, dtype=dtype))

    def __len__(self) -> int:
        return self.count

    @property
    def nbytes(self) -> int:
        """Bytes held by the columns (including unused headroom)."""
        return sum(getattr(self, name).nbytes for name in _COLUMNS)

    def _grow(self) -> None:
        new = self._capacity * 2
        for name, (dtype, fill) in _COLUMNS.items():
            column = np.full(new, fill, dtype=dtype)
            column[: self._capacity] = getattr(self, name)
            setattr(self, name, column)
        self._capacity = new

    def add(self, arrival: float, key: int = -1, cls: int = -1) -> int:
        """Open a row for a request arriving at ``arrival``; returns its row number."""
        row = self.count
        if row == self._capacity:
            self._grow()
        self.arrival[row] = arrival
        if key != -1:
            self.key[row] = key
        if cls != -1:
            self.cls[row] = cls
        self.count = row + 1
        return row

    def started(self, row: int, time: float, server: int = -1) -> None:
        """Service of ``row`` began at ``time`` on ``server``."""
        self.start[row] = time
        self.server[row] = server

    def finished(self, row: int, time: float, outcome: int) -> None:
        """``row`` was answered at ``time`` with ``outcome``."""
        self.end[row] = time
        self.outcome[row] = outcome

    def table(self) -> RequestTable:
        """A copy of the rows written so far, for analysis."""
        return RequestTable(**{name: getattr(self, name)[: self.count].copy() for name in _COLUMNS})


@dataclass(frozen=True, eq=False)
class RequestTable:
    """Finished request rows as equal-length numpy columns (see ``RequestLog``)."""

    arrival: np.ndarray
    start: np.ndarray
    end: np.ndarray
    outcome: np.ndarray
    server: np.ndarray
    cls: np.ndarray
    key: np.ndarray

    def __len__(self) -> int:
        return len(self.arrival)

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, f.name).nbytes for f in fields(self))

    @property
    def latency(self) -> np.ndarray:
        """Response time seen by the caller, end - arrival (s); NaN if unanswered."""
        return self.end - self.arrival

    @property
    def wait(self) -> np.ndarray:
        """Time queued before service, start - arrival (s); NaN if never served."""
        return self.start - self.arrival

    @property
    def service(self) -> np.ndarray:
        """Time in service, end - start (s)."""
        return self.end - self.start

    def has(self, *outcomes: Outcome) -> np.ndarray:
        """Boolean mask of rows whose outcome is one of ``outcomes``."""
        return np.isin(self.outcome, [int(o) for o in outcomes])

    def select(self, mask: np.ndarray) -> RequestTable:
        """The rows where ``mask`` is true (a boolean mask or an index array)."""
        return RequestTable(**{f.name: getattr(self, f.name)[mask] for f in fields(self)})

    @classmethod
    def concat(cls, tables: Sequence[RequestTable]) -> RequestTable:
        """Stack tables (e.g. one per server pool behind a load balancer), sorted by arrival."""
        if not tables:
            raise ValueError("concat needs at least one table (got an empty sequence)")
        joined = cls(**{f.name: np.concatenate([getattr(t, f.name) for t in tables])
                        for f in fields(cls)})
        return joined.select(np.argsort(joined.arrival, kind="stable"))
