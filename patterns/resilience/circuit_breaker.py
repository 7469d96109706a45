"""Circuit breakers: the fuse box between a service and a dependency that may fail.

A household breaker watches the current on one circuit. When a fault draws too much, it trips
and cuts the circuit at once, so the wiring does not burn while someone finds the fault; after a
while you try the switch again. A software circuit breaker does the same for calls to a remote
dependency: while the dependency keeps failing, calls are refused at once (*fast-fail*) instead of
each one holding a worker until its timeout; after a *sleep window* one trial call tests whether
the dependency is back.

Three states (named as pybreaker names them):

* ``closed``: calls go through; a *trip policy* watches their outcomes.
* ``open``: calls are refused without touching the dependency, until the sleep window has passed.
* ``half-open``: a few trial calls go through; success closes the breaker, a failure reopens it.

Time comes from an injectable ``clock`` (a callable returning seconds), so the same class runs in
real time (``time.monotonic``) and inside a SimPy simulation (``lambda: env.now``).

`CircuitBreaker` is the small breaker of the lesson's Level 2; `ProductionCircuitBreaker` hardens
it for Level 3 (validated `BreakerConfig`, a lock, ``logging``, counters, a latency histogram and
listeners).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from patterns.checks import check_int, check_positive, check_range
from patterns.metrics import Instruments

T = TypeVar("T")
Clock = Callable[[], float]
log = logging.getLogger(__name__)


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitOpenError(RuntimeError):
    """The breaker refused the call without trying the dependency (fast-fail)."""


class TripPolicy(Protocol):
    """Decides, from the outcomes of calls made while closed, when to trip."""

    def record(self, ok: bool, now: float) -> None: ...
    def should_trip(self, now: float) -> bool: ...
    def reset(self) -> None: ...


class ConsecutiveFailures:
    """Trip after ``threshold`` failures in a row (pybreaker's ``fail_max``)."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.failures = 0

    def record(self, ok: bool, now: float) -> None:
        self.failures = 0 if ok else self.failures + 1

    def should_trip(self, now: float) -> bool:
        return self.failures >= self.threshold

    def reset(self) -> None:
        self.failures = 0


class ErrorRate:
    """Trip when the failed share of the calls in the last ``window_s`` seconds reaches
    ``threshold``, once the window holds at least ``minimum_calls`` calls (Hystrix's rule)."""

    def __init__(self, threshold: float, window_s: float, minimum_calls: int) -> None:
        self.threshold, self.window_s, self.minimum_calls = threshold, window_s, minimum_calls
        self.outcomes: deque[tuple[float, bool]] = deque()
        self.failures = 0

    def record(self, ok: bool, now: float) -> None:
        self.outcomes.append((now, ok))
        self.failures += not ok

    def should_trip(self, now: float) -> bool:
        while self.outcomes and self.outcomes[0][0] <= now - self.window_s:
            self.failures -= not self.outcomes.popleft()[1]
        calls = len(self.outcomes)
        return calls >= self.minimum_calls and self.failures >= self.threshold * calls

    def reset(self) -> None:
        self.outcomes.clear()
        self.failures = 0


class CircuitBreaker:
    """Closed, open, half-open: fail fast while a dependency is down, probe when it may be back.

    Use ``call(fn)``, or in a simulation ``allow()`` before the call and ``record(ok)`` after.
    """

    def __init__(self, policy: TripPolicy, sleep_window_s: float,
                 clock: Clock = time.monotonic, half_open_calls: int = 1) -> None:
        self.policy, self.sleep_window_s, self.clock = policy, sleep_window_s, clock
        self.half_open_calls = half_open_calls
        self.state = State.CLOSED
        self.opened_at = -math.inf
        self.trials = self.trial_successes = 0
        self.transitions: list[tuple[float, State, State]] = []  # (time, from, to)

    def allow(self) -> bool:
        """May a call go to the dependency now? Moves open -> half-open once the sleep is over."""
        now = self.clock()
        if self.state is State.OPEN and now - self.opened_at >= self.sleep_window_s:
            self._move_to(State.HALF_OPEN, now)
        if self.state is State.HALF_OPEN and self.trials < self.half_open_calls:
            self.trials += 1
            return True
        return self.state is State.CLOSED

    def record(self, ok: bool) -> None:
        """Report the outcome of a call that ``allow()`` let through."""
        now = self.clock()
        if self.state is State.HALF_OPEN:
            self.trial_successes += ok
            if not ok:
                self._move_to(State.OPEN, now)
            elif self.trial_successes >= self.half_open_calls:
                self._move_to(State.CLOSED, now)
        elif self.state is State.CLOSED:
            self.policy.record(ok, now)
            if self.policy.should_trip(now):
                self._move_to(State.OPEN, now)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``fn`` through the breaker; raise `CircuitOpenError` when it is refused."""
        if not self.allow():
            raise CircuitOpenError(f"circuit {self.state.value}: call refused")
        try:
            result = fn(*args, **kwargs)
        except Exception:
            self.record(False)
            raise
        self.record(True)
        return result

    def _move_to(self, new: State, now: float) -> None:
        self.transitions.append((now, self.state, new))
        self.state = new
        self.trials = self.trial_successes = 0
        if new is State.OPEN:
            self.opened_at = now
        if new is State.CLOSED:
            self.policy.reset()


# ---------------------------------------------------------------- production-grade (Level 3)

@dataclass(frozen=True)
class BreakerConfig:
    """A breaker's settings; the defaults are Hystrix's documented defaults (50 % errors over
    a 10 s window with at least 20 calls, 5 s sleep window)."""

    failure_rate_threshold: float = 0.5
    window_s: float = 10.0
    minimum_calls: int = 20
    sleep_window_s: float = 5.0
    half_open_calls: int = 1

    def __post_init__(self) -> None:
        name = "BreakerConfig."
        check_range(name + "failure_rate_threshold", self.failure_rate_threshold, 0.0, 1.0,
                    low_open=True)
        check_positive(name + "window_s", self.window_s)
        check_int(name + "minimum_calls", self.minimum_calls, low=1)
        check_positive(name + "sleep_window_s", self.sleep_window_s)
        check_int(name + "half_open_calls", self.half_open_calls, low=1)


Listener = Callable[[str, State, State], None]  # (breaker name, from, to)


class ProductionCircuitBreaker(CircuitBreaker):
    """The Level 2 breaker hardened: validated config, thread-safe, logged, measured.

    The lock guards the breaker's state, never the call itself, so a slow dependency does not
    serialise the callers. Nor is it held while a transition is logged or its listeners run:
    a slow log handler cannot stall the other callers, and a listener may call the breaker
    again without deadlocking. Transitions are announced in the order they happened. A refused
    call returns ``fallback()`` when one is given.
    """

    def __init__(self, name: str, config: BreakerConfig | None = None,
                 clock: Clock = time.monotonic, listeners: Iterable[Listener] = ()) -> None:
        self.name, self.config = name, config or BreakerConfig()
        policy = ErrorRate(self.config.failure_rate_threshold, self.config.window_s,
                           self.config.minimum_calls)
        super().__init__(policy, self.config.sleep_window_s, clock, self.config.half_open_calls)
        self.listeners = list(listeners)
        self.metrics = Instruments("circuit_breaker", "Calls through the breaker")
        self.latency = self.metrics.histogram("call_seconds", "Latency of calls let through")
        self._lock = threading.Lock()
        self._unannounced: deque[tuple[float, State, State]] = deque()
        self._announcing = threading.RLock()  # keeps announcements in order; re-entrant

    def call(self, fn: Callable[..., T], *args: Any,
             fallback: Callable[[], T] | None = None, **kwargs: Any) -> T:
        with self._lock:
            self.metrics.count("calls")
            allowed = self.allow()
            if not allowed:
                self.metrics.count("rejections")
                state = self.state
        self._announce()
        if not allowed:
            if fallback is not None:
                return fallback()
            raise CircuitOpenError(f"breaker {self.name!r} is {state.value}: call refused")
        start = self.clock()
        try:
            result = fn(*args, **kwargs)
        except Exception:
            self._finish(False, start)
            raise
        self._finish(True, start)
        return result

    def _finish(self, ok: bool, start: float) -> None:
        with self._lock:
            self.metrics.count("successes" if ok else "failures")
            self.latency.observe(self.clock() - start)
            self.record(ok)
        self._announce()

    def _move_to(self, new: State, now: float) -> None:
        old = self.state
        super()._move_to(new, now)
        self.metrics.count("transitions")
        self._unannounced.append((now, old, new))

    def _announce(self) -> None:
        """Log the transitions made so far and tell the listeners, outside the state lock."""
        if not self._unannounced:  # the thread that makes a transition announces it itself
            return
        with self._announcing:
            while True:
                with self._lock:
                    if not self._unannounced:
                        return
                    now, old, new = self._unannounced.popleft()
                level = logging.WARNING if new is State.OPEN else logging.INFO
                log.log(level, "breaker %s: %s -> %s at t=%.3f s", self.name, old.value,
                        new.value, now)
                for listener in self.listeners:
                    listener(self.name, old, new)
