"""Bulkheads: watertight compartments for the calls a service makes.

A ship's hull is split by bulkheads into compartments; a breach floods one compartment and the
ship stays afloat. A service's workers (threads, connections, slots) are its hull: if every call
may use every worker, one slow dependency or one tenant's flood fills them all and everyone
waits. A software bulkhead caps how many calls of one kind may be inside at once; a call that
finds its compartment full is refused at once (or waits a bounded time) instead of taking a
worker that another kind of call needs.

`Bulkhead` is the small version of the lesson's Level 2: a counter of permits with an injectable
``clock`` that integrates the permits in use over time, so its mean concurrency can be checked
against Little's law in real time, in a test with a fake clock and inside SimPy
(``clock=lambda: env.now``). `ProductionBulkhead` hardens it for Level 3: a validated
`BulkheadConfig`, a condition variable so callers may wait up to ``max_wait_s`` for a permit,
``logging`` of full and recovered episodes, counters, a latency histogram and a fallback.
`replay` runs one sequence of acquires and releases against anything semaphore-like, so the
hand-made bulkhead can be compared with the standard library's semaphores.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from patterns.checks import check_int, check_non_negative
from patterns.metrics import Instruments

T = TypeVar("T")
Clock = Callable[[], float]
log = logging.getLogger(__name__)

__all__ = [
    "Bulkhead", "BulkheadConfig", "BulkheadFullError", "ProductionBulkhead"
]


class BulkheadFullError(RuntimeError):
    """The bulkhead refused the call: all its permits were in use."""


class Bulkhead:
    """At most ``max_concurrent`` calls inside at once; a call that finds it full is refused.

    Use ``call(fn)``, or in a simulation ``try_acquire()`` before the work and ``release()``
    after it. ``permit_seconds`` integrates the permits in use over ``clock`` time.
    """

    def __init__(self, max_concurrent: int, clock: Clock = time.monotonic) -> None:
        self.max_concurrent = check_int("max_concurrent", max_concurrent, low=1)
        self.clock = clock
        self.in_use = self.admitted = self.rejected = 0
        self.permit_seconds = 0.0
        self.created_at = self._changed_at = clock()

    def try_acquire(self) -> bool:
        """Take a permit if one is free; count a rejection if not."""
        if self.in_use >= self.max_concurrent:
            self.rejected += 1
            return False
        self._advance()
        self.in_use += 1
        self.admitted += 1
        return True

    def release(self) -> None:
        """Give back a permit taken by ``try_acquire``."""
        if self.in_use == 0:
            raise RuntimeError("release() called with no permit in use (more releases than "
                               "successful try_acquire() calls)")
        self._advance()
        self.in_use -= 1

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` holding a permit (given back even if it raises), or raise
        `BulkheadFullError` at once."""
        if not self.try_acquire():
            raise BulkheadFullError(f"bulkhead full: {self.in_use} of {self.max_concurrent} "
                                    "permits in use")
        try:
            return fn(*args, **kwargs)
        finally:
            self.release()

    def mean_in_use(self) -> float:
        """Time-average number of permits in use since the bulkhead was created."""
        now = self.clock()
        elapsed = now - self.created_at
        held = self.permit_seconds + self.in_use * (now - self._changed_at)
        return held / elapsed if elapsed > 0 else float(self.in_use)

    def _advance(self) -> None:
        now = self.clock()
        self.permit_seconds += self.in_use * (now - self._changed_at)
        self._changed_at = now


# ---------------------------------------------------------------- production-grade (Level 3)

@dataclass(frozen=True)
class BulkheadConfig:
    """A bulkhead's settings; the defaults are Resilience4j's documented defaults for its
    semaphore bulkhead (25 concurrent calls, no waiting)."""

    max_concurrent_calls: int = 25
    max_wait_s: float = 0.0

    def __post_init__(self) -> None:
        check_int("BulkheadConfig.max_concurrent_calls", self.max_concurrent_calls, low=1)
        check_non_negative("BulkheadConfig.max_wait_s", self.max_wait_s)


class ProductionBulkhead(Bulkhead):
    """The Level 2 bulkhead hardened: validated config, thread-safe, waits, logged, measured.

    A caller that finds the bulkhead full waits up to ``max_wait_s`` for a permit (zero: it is
    refused at once), then gets ``fallback()`` if given, else `BulkheadFullError`. The lock
    guards the counters and permits, never the call itself. The first refusal of a full
    episode is logged as a warning and the first admission after it as info, outside the lock,
    so a flood of refusals writes two lines, not thousands.
    """

    def __init__(self, name: str, config: BulkheadConfig | None = None,
                 clock: Clock = time.monotonic) -> None:
        self.name, self.config = name, config or BulkheadConfig()
        super().__init__(self.config.max_concurrent_calls, clock)
        self.metrics = Instruments("bulkhead", "Calls through the bulkhead")
        self.latency = self.metrics.histogram("call_seconds", "Latency of admitted calls")
        self.peak_in_use = 0
        self._room = threading.Condition()
        self._refused_in_episode = 0

    def call(self, fn: Callable[..., T], *args: Any,
             fallback: Callable[[], T] | None = None, **kwargs: Any) -> T:
        with self._room:
            self._room.wait_for(lambda: self.in_use < self.max_concurrent,
                                timeout=self.config.max_wait_s)
            admitted = self.try_acquire()
            self.peak_in_use = max(self.peak_in_use, self.in_use)
            episode = self._refused_in_episode
            self._refused_in_episode = 0 if admitted else episode + 1
        if not admitted:
            if episode == 0:
                log.warning("bulkhead %s full: refusing calls (%d permits in use)", self.name,
                            self.max_concurrent)
            if fallback is not None:
                return fallback()
            raise BulkheadFullError(f"bulkhead {self.name!r} full: {self.max_concurrent} "
                                    "permits in use")
        if episode:
            log.info("bulkhead %s has room again after refusing %d calls", self.name, episode)
        start = self.clock()
        try:
            result = fn(*args, **kwargs)
        except Exception:
            self._finish("failures", start)
            raise
        self._finish("successes", start)
        return result

    def snapshot(self) -> dict[str, float]:
        """The numbers a metrics exporter would publish: gauges and counters."""
        with self._room:
            return {"in_use": self.in_use, "peak_in_use": self.peak_in_use,
                    "admitted": self.admitted, "rejected": self.rejected,
                    "successes": self.metrics.counts["successes"],
                    "failures": self.metrics.counts["failures"], "mean_in_use": self.mean_in_use()}

    def _finish(self, outcome: str, start: float) -> None:
        with self._room:
            self.metrics.count(outcome)
            self.latency.observe(self.clock() - start)
            self.release()
            self._room.notify()
