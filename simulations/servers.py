"""A pool of identical servers in front of one queue, first come first served by default.

Like a post office with ``c`` clerks and one line: a customer who finds a clerk free is served at
once; otherwise they join the end of the line, and if the office already holds ``capacity``
customers (in line plus at the counters) they are turned away. With ``discipline="priority"``
the line is ordered by request class instead (class 0 first, first come first served within a
class), like a clinic's triage; with ``"preemptive"`` an urgent arrival also takes a clerk from
a less urgent customer, who steps back to the head of their class and later resumes where they
stopped (preemptive-resume). Each clerk takes a service time
drawn from a distribution, or runs a handler (a SimPy generator) that may itself call other
services, such as a cache that falls back to a database. Every request gets a row in the pool's
``RequestLog``.

Anything with ``call(key, cls) -> simpy.Event`` is a ``Service``; the event succeeds (never fails)
with an ``Outcome`` when the request is answered. ``ServerPool.submit`` is the fire-and-forget
form for open-loop traffic: it records the request without creating an event, which keeps
large runs fast. Service times are drawn from numpy in blocks, and the pool schedules one SimPy
timeout per served request instead of a process per customer.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Generator
from typing import Any, Protocol

import numpy as np
import simpy
from simpy.events import Event, Timeout

from patterns.checks import check_choice, check_int
from simulations.distributions import Distribution
from simulations.faults import FaultSchedule
from simulations.records import Outcome, RequestLog

__all__ = ["DISCIPLINES", "Handler", "ServerPool", "Service"]

DISCIPLINES = ("fifo", "priority", "preemptive")
"""Queue orders: first come first served; by class (non-preemptive); by class, preempting."""

Handler = Callable[[int, int], Generator[Event, Any, "Outcome | int | None"]]
"""``handler(key, cls)``: a SimPy generator run while holding a server; returns an Outcome
(None means OK)."""

_OK, _REJECTED, _ERROR = int(Outcome.OK), int(Outcome.REJECTED), int(Outcome.ERROR)


class Service(Protocol):
    """Something a request can be sent to; the event's value is the request's ``Outcome``."""

    def call(self, key: int = -1, cls: int = -1) -> Event: ...


class _PriorityLine:
    """Waiting requests ordered by class (0 first; no class, -1, last), then by arrival.

    A request's row number in the log is its arrival order, so a preempted request that comes
    back keeps its place ahead of later arrivals of its class. Has the two deque methods the
    pool uses, ``append`` and ``popleft``, on ``(row, done)`` pairs.
    """

    def __init__(self, log: RequestLog) -> None:
        self._log = log
        self._heap: list[tuple[int, int, Event | None]] = []

    def __len__(self) -> int:
        return len(self._heap)

    def rank(self, row: int) -> int:
        cls = int(self._log.cls[row])
        return cls if cls >= 0 else 1 << 16

    def append(self, item: tuple[int, Event | None]) -> None:
        row, done = item
        heapq.heappush(self._heap, (self.rank(row), row, done))

    def popleft(self) -> tuple[int, Event | None]:
        _, row, done = heapq.heappop(self._heap)
        return row, done


class ServerPool:
    """``servers`` servers (None = unlimited) sharing one queue of up to ``capacity``.

    ``service`` is a ``Distribution`` of service times (needs ``rng``) or a ``Handler``.
    ``capacity`` caps requests in the pool (queued + in service), as the K of M/M/c/K; arrivals
    beyond it are REJECTED, whatever their class. ``faults`` makes the pool fail fast, hang or
    slow down during its windows (slow windows stretch sampled service times only, not handlers).
    ``discipline`` (see ``DISCIPLINES``) orders the queue: ``"fifo"`` (default), ``"priority"``
    (lower ``cls`` first, never interrupting service) or ``"preemptive"`` (preemptive-resume: an
    arrival of a lower class takes the server of the highest class in service, latest arrival
    first; that request resumes its remaining service later; needs a ``Distribution``). A
    preempted request's ``start`` is when its service first began.
    """

    def __init__(
        self,
        env: simpy.Environment,
        servers: int | None,
        service: Distribution | Handler,
        rng: np.random.Generator | None = None,
        *,
        capacity: int | None = None,
        faults: FaultSchedule | None = None,
        log: RequestLog | None = None,
        discipline: str = "fifo",
    ) -> None:
        self.env = env
        self.discipline = check_choice("discipline", discipline, DISCIPLINES)
        self.servers = None if servers is None else check_int("servers", servers, 1)
        if capacity is not None:
            capacity = check_int("capacity", capacity, self.servers or 1)
        self.capacity = capacity
        if isinstance(service, Distribution):
            if rng is None:
                raise ValueError("rng is required when service is a Distribution (got None)")
            self._handler: Handler | None = None
        elif callable(service):
            if discipline == "preemptive":
                raise ValueError("discipline='preemptive' needs a Distribution of service times, "
                                 f"not a handler (got {service!r}); use 'priority' with handlers")
            self._handler = service
        else:
            raise ValueError(
                f"service must be a Distribution or a handler function (got {service!r})")
        self.service = service
        self.faults = faults
        self.log = log if log is not None else RequestLog()
        self._rng = rng
        self._samples: Any = iter(())
        self._free: list[int] | None = (
            None if self.servers is None else list(range(self.servers - 1, -1, -1)))
        self._queue: deque[tuple[int, Event | None]] | _PriorityLine = (
            deque() if discipline == "fifo" else _PriorityLine(self.log))
        self._busy_unlimited = 0
        # preemptive only: what each server is doing (row, done, finish event, finish time) and
        # the remaining service of preempted requests, by row
        self._serving: dict[int, tuple[int, Event | None, Timeout, float]] | None = (
            {} if discipline == "preemptive" else None)
        self._remaining: dict[int, float] = {}

    @property
    def busy(self) -> int:
        """Servers busy right now."""
        if self._free is None:
            return self._busy_unlimited
        return self.servers - len(self._free)

    @property
    def queue_length(self) -> int:
        """Requests waiting for a server right now."""
        return len(self._queue)

    @property
    def in_system(self) -> int:
        """Requests in the pool right now (waiting + in service)."""
        return self.busy + len(self._queue)

    def submit(self, key: int = -1, cls: int = -1) -> int:
        """Send a request without waiting for it; returns its row in ``log``."""
        return self._arrive(key, cls, None)

    def call(self, key: int = -1, cls: int = -1) -> Event:
        """Send a request; the returned event succeeds with its ``Outcome`` when answered."""
        done = Event(self.env)
        self._arrive(key, cls, done)
        return done

    def _arrive(self, key: int, cls: int, done: Event | None) -> int:
        now = self.env.now
        row = self.log.add(now, key, cls)
        if self.faults is not None:
            window = self.faults.active(now)
            if window is not None and window.kind == "error":
                failure = Timeout(self.env, window.error_delay_s, (row, done))
                failure.callbacks.append(self._fail)
                return row
            if window is not None and window.kind == "hang":
                return row  # never answered: only the caller's timeout ends the wait
        free = self._free
        if free:
            self._start(row, free.pop(), done)
        elif free is None:
            self._busy_unlimited += 1
            self._start(row, -1, done)
        elif self.capacity is not None and self.servers + len(self._queue) >= self.capacity:
            self.log.finished(row, now, _REJECTED)
            if done is not None:
                done.succeed(Outcome.REJECTED)
        elif self._serving is None or not self._preempt(row, done):
            self._queue.append((row, done))
        return row

    def _preempt(self, row: int, done: Event | None) -> bool:
        """Give ``row`` the server of the least urgent request in service, if it is less urgent
        than ``row``; that request goes back to the queue with its remaining service time."""
        rank = self._queue.rank
        server, (victim, victim_done, finish, finish_at) = max(
            self._serving.items(), key=lambda item: (rank(item[1][0]), item[1][0]))
        if rank(victim) <= rank(row):
            return False
        finish.callbacks.remove(self._complete)  # the timeout still fires, and does nothing
        self._remaining[victim] = finish_at - self.env.now
        self._queue.append((victim, victim_done))
        self._start(row, server, done)
        return True

    def _start(self, row: int, server: int, done: Event | None) -> None:
        now = self.env.now
        delay = self._remaining.pop(row, None) if self._remaining else None
        if delay is None:
            self.log.started(row, now, server)
            if self._handler is not None:
                self.env.process(self._run_handler(row, server, done))
                return
            try:
                delay = next(self._samples)
            except StopIteration:
                self._samples = iter(self.service.sample(self._rng, 4096).tolist())
                delay = next(self._samples)
            if self.faults is not None:
                window = self.faults.active(now)
                if window is not None and window.kind == "slow":
                    delay = delay * window.slow_factor + window.slow_add_s
        else:  # a preempted request resumes
            self.log.server[row] = server
        finish = Timeout(self.env, delay, (row, server, done))
        finish.callbacks.append(self._complete)
        if self._serving is not None:
            self._serving[server] = (row, done, finish, now + delay)

    def _run_handler(
        self, row: int, server: int, done: Event | None
    ) -> Generator[Event, Any, None]:
        outcome = yield from self._handler(int(self.log.key[row]), int(self.log.cls[row]))
        self._finish(row, server, done, _OK if outcome is None else int(outcome))

    def _complete(self, event: Event) -> None:
        row, server, done = event.value
        if self._serving is not None:
            del self._serving[server]
        self._finish(row, server, done, _OK)

    def _fail(self, event: Event) -> None:
        row, done = event.value
        self.log.finished(row, self.env.now, _ERROR)
        if done is not None:
            done.succeed(Outcome.ERROR)

    def _finish(self, row: int, server: int, done: Event | None, outcome: int) -> None:
        self.log.finished(row, self.env.now, outcome)
        if done is not None:
            done.succeed(Outcome(outcome))
        if self._queue:
            next_row, next_done = self._queue.popleft()
            self._start(next_row, server, next_done)
        elif self._free is None:
            self._busy_unlimited -= 1
        else:
            self._free.append(server)
