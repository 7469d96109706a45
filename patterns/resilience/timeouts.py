"""Timeouts and deadlines: how long a caller waits for an answer.

Picture phoning a shop to ask whether a part is in stock. Hang up too soon and you hang up on a
clerk who was about to answer; never hang up and you may wait all afternoon. If the part is one
of three you need before the shop closes, the closing time for the whole errand (a *deadline*)
matters more than ten seconds per call, and each call gets only what is left of it.

``Deadline`` carries that closing time from call to call; ``PercentileTimeout`` sets a call's
timeout from the latencies it has measured. ``ProductionTimeout`` hardens it: a validated
``TimeoutConfig``, a lock, ``logging``, ``prometheus_client`` metrics, and an asyncio ``call``
that honours a propagated deadline.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from patterns.checks import (
    check_int,
    check_non_negative,
    check_positive,
    check_range,
)
from patterns.metrics import Instruments

T = TypeVar("T")
Clock = Callable[[], float]
log = logging.getLogger(__name__)


# ---------------------------------------------------------------- the pattern (Level 2)


class DeadlineExceeded(TimeoutError):
    """No time is left for this request: do not start the call."""


class Deadline:
    """The instant after which an answer is useless, shared by every call made for one request.

    Each call gets ``timeout_for(per_call_s)``: its own timeout, but never more than what is
    left. ``child`` hands a downstream service a deadline no later than this one (propagation).
    """

    def __init__(self, budget_s: float, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self.expires_at = clock() + check_non_negative("budget_s", budget_s)

    def remaining(self) -> float:
        """Seconds left (0 once expired)."""
        return max(0.0, self.expires_at - self.clock())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def timeout_for(self, per_call_s: float | None = None) -> float:
        """The timeout for the next call: min(per-call timeout, time left)."""
        left = self.remaining()
        if left <= 0.0:
            raise DeadlineExceeded(f"deadline passed {self.clock() - self.expires_at:.3f} s ago")
        return left if per_call_s is None else min(check_positive("per_call_s", per_call_s), left)

    def child(self, budget_s: float | None = None) -> Deadline:
        """A deadline for a downstream call: this one, or sooner if ``budget_s`` is smaller."""
        left = self.remaining()
        return Deadline(left if budget_s is None else min(budget_s, left), self.clock)


class PercentileTimeout:
    """A timeout set from measured latency: the (1 − ``false_timeout_rate``) percentile of the
    last ``window`` observations, times ``padding``, clamped to [``min_s``, ``max_s``].

    Until ``min_samples`` latencies have been seen it answers ``initial_s``. Observe answered
    calls only: a timed-out call's latency is unknown, and counting it as the timeout would
    ratchet the timeout up by ``padding`` whenever more than ``false_timeout_rate`` of calls
    hang. Answers slower than the timeout are never seen, so ``padding`` > 1 is what lets the
    timeout grow when the dependency gets slower.
    """

    def __init__(self, false_timeout_rate: float = 0.001, window: int = 1000,
                 padding: float = 1.0, min_s: float = 0.001, max_s: float = 10.0,
                 initial_s: float = 1.0, min_samples: int = 100) -> None:
        self.false_timeout_rate, self.padding = false_timeout_rate, padding
        self.min_s, self.max_s, self.initial_s = min_s, max_s, initial_s
        self.min_samples = min_samples
        self.recent: deque[float] = deque(maxlen=window)

    def observe(self, latency_s: float) -> None:
        self.recent.append(latency_s)

    def current(self) -> float:
        """The timeout to use for the next call (s)."""
        if len(self.recent) < self.min_samples:
            return self.initial_s
        ordered = sorted(self.recent)
        rank = math.ceil((1.0 - self.false_timeout_rate) * len(ordered)) - 1
        return min(max(ordered[max(rank, 0)] * self.padding, self.min_s), self.max_s)


# ---------------------------------------------------------------- production-grade (Level 3)


@dataclass(frozen=True)
class TimeoutConfig:
    """Settings of a `ProductionTimeout`; the 0.1 % false-timeout target is the example of
    Amazon's Builders' Library article (timeout at the downstream p99.9)."""

    false_timeout_rate: float = 0.001
    window: int = 1000
    padding: float = 1.2
    min_s: float = 0.001
    max_s: float = 10.0
    initial_s: float = 1.0
    min_samples: int = 100

    def __post_init__(self) -> None:
        name = "TimeoutConfig."
        check_range(name + "false_timeout_rate", self.false_timeout_rate, 0.0, 0.5,
                    low_open=True)
        check_int(name + "window", self.window, 1)
        check_range(name + "padding", self.padding, 1.0)
        check_positive(name + "min_s", self.min_s)
        check_range(name + "max_s", self.max_s, self.min_s)
        check_range(name + "initial_s", self.initial_s, self.min_s, self.max_s)
        check_int(name + "min_samples", self.min_samples, 1, self.window)


class ProductionTimeout(PercentileTimeout):
    """The percentile timeout hardened: validated config, a lock, ``logging``, counters, a
    latency histogram, and an asyncio ``call`` that honours a propagated `Deadline`.

    The lock guards the window and the counters only, never the awaited call, so callers on
    several threads (each with its own event loop) can share one instance.
    """

    def __init__(self, name: str, config: TimeoutConfig | None = None,
                 clock: Clock = time.monotonic) -> None:
        self.name, self.config, self.clock = name, config or TimeoutConfig(), clock
        c = self.config
        super().__init__(c.false_timeout_rate, c.window, c.padding, c.min_s, c.max_s,
                         c.initial_s, c.min_samples)
        self.metrics = Instruments("timeout", "Calls under the timeout")
        self.latency = self.metrics.histogram("call_seconds",
                                              "Latency of calls (a timed-out call at its timeout)")
        self._lock = threading.Lock()

    def current(self) -> float:
        with self._lock:
            return super().current()

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any,
                   deadline: Deadline | None = None) -> T:
        """Await ``fn(*args)`` for at most the current timeout (and what is left of
        ``deadline``); raise ``TimeoutError`` (or `DeadlineExceeded` before starting)."""
        timeout = self.current()
        if deadline is not None:
            try:
                timeout = deadline.timeout_for(timeout)
            except DeadlineExceeded:
                self._count("deadline_exceeded")
                log.warning("%s: deadline already passed, call not started", self.name)
                raise
        start = self.clock()
        try:
            async with asyncio.timeout(timeout):
                result = await fn(*args)
        except TimeoutError:
            self._finish("timeouts", timeout)
            log.warning("%s: timed out after %.3f s", self.name, timeout)
            raise
        except Exception:
            self._finish("errors", self.clock() - start)
            raise
        self._finish("successes", self.clock() - start)
        return result

    def _count(self, what: str) -> None:
        with self._lock:
            self.metrics.count("calls")
            self.metrics.count(what)

    def _finish(self, what: str, latency_s: float) -> None:
        with self._lock:
            self.metrics.count("calls")
            self.metrics.count(what)
            self.latency.observe(latency_s)
            if what == "successes":
                self.observe(latency_s)


