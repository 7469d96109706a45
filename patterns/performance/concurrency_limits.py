"""Concurrency limits: cap the requests in flight at a service, and find the cap by measuring.

Picture a restaurant host with a clipboard: the kitchen cooks well with so many orders at once,
so the host seats a new table only when one leaves. Seat too few and cooks stand idle; seat too
many and every meal waits in the pass. A good host watches how long meals take and adjusts.

``Limiter`` counts calls in flight against a limit algorithm: ``FixedLimit`` (a constant),
``AIMDLimit`` (add one while calls are fine, cut by a ratio when one is too slow or dropped) or
``GradientLimit`` (scale the limit by how much the latest round trip exceeds a long-run
baseline). ``try_acquire()`` before a call returns a token or ``None`` (refused);
``token.release(dropped)`` after it feeds the round trip to the algorithm. Time is injectable
(``clock``), so the same classes run in real time and inside SimPy. ``ProductionLimiter`` adds
a lock, a validated config, ``logging`` and ``prometheus_client`` metrics. Nothing here imports
from ``simulations``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol, TypeVar

from patterns.checks import check_int, check_positive, check_range
from patterns.metrics import Instruments

Clock = Callable[[], float]
T = TypeVar("T")
log = logging.getLogger(__name__)

__all__ = [
    "AIMDLimit", "FixedLimit", "GradientLimit", "Limit", "Limiter", "LimitExceeded",
    "LimiterConfig", "ProductionLimiter", "Token", "WindowedLimit",
]


class Limit(Protocol):
    """A limit algorithm: the current ``limit`` and what to do with one measured call."""

    limit: float

    def update(self, rtt_s: float, inflight: int, dropped: bool) -> None: ...


class FixedLimit:
    """A constant limit: what a worker pool or a semaphore gives you."""

    def __init__(self, limit: int) -> None:
        self.limit = float(check_int("limit", limit, 1))

    def update(self, rtt_s: float, inflight: int, dropped: bool) -> None:
        """A fixed limit ignores what it measures."""


class AIMDLimit:
    """Additive increase, multiplicative decrease, as TCP's congestion window.

    A call that was dropped or took longer than ``timeout_s`` cuts the limit to
    ``backoff_ratio`` of itself; any other call adds one, but only while the limiter is at least
    half used (a limit nobody reaches would otherwise grow without evidence). The limit stays in
    [``min_limit``, ``max_limit``].
    """

    def __init__(self, initial_limit: int = 20, *, min_limit: int = 1, max_limit: int = 200,
                 backoff_ratio: float = 0.9, timeout_s: float = 5.0) -> None:
        self.min_limit = check_int("min_limit", min_limit, 1)
        self.max_limit = check_int("max_limit", max_limit, self.min_limit)
        self.limit = float(check_int("initial_limit", initial_limit, self.min_limit,
                                     self.max_limit))
        self.backoff_ratio = check_range("backoff_ratio", backoff_ratio, 0.5, 1.0,
                                         high_open=True)
        self.timeout_s = check_positive("timeout_s", timeout_s)

    def update(self, rtt_s: float, inflight: int, dropped: bool) -> None:
        """Cut on a drop or a slow call, add one on a good call while at least half used."""
        if dropped or rtt_s > self.timeout_s:
            self.limit = float(int(self.limit * self.backoff_ratio))
        elif 2 * inflight >= self.limit:
            self.limit += 1
        self.limit = min(self.max_limit, max(self.min_limit, self.limit))


class GradientLimit:
    """Scale the limit by the ratio of a long-run round trip to the latest one.

    The baseline is an exponential average of every round trip (``long_window`` samples, plain
    mean over the first ten). ``gradient = tolerance * baseline / rtt``, clipped to [0.5, 1]: 1
    while the call is no slower than ``tolerance`` times the baseline, less when a queue is
    building. The target is ``gradient * limit + queue_size`` (room to probe upwards), and the
    limit moves a ``smoothing`` fraction of the way to it. The limit does not move while less
    than half of it is in use; a baseline over twice the latest round trip decays by 5 % a call,
    so it comes down after a slow spell.
    """

    def __init__(self, initial_limit: int = 20, *, min_limit: int = 1, max_limit: int = 200,
                 smoothing: float = 0.2, queue_size: float = 4.0, long_window: int = 600,
                 tolerance: float = 1.5) -> None:
        self.min_limit = check_int("min_limit", min_limit, 1)
        self.max_limit = check_int("max_limit", max_limit, self.min_limit)
        self.limit = float(check_int("initial_limit", initial_limit, self.min_limit,
                                     self.max_limit))
        self.smoothing = check_range("smoothing", smoothing, 0.0, 1.0, low_open=True)
        self.queue_size = check_range("queue_size", queue_size, 0.0, None)
        self.long_window = check_int("long_window", long_window, 1)
        self.tolerance = check_range("tolerance", tolerance, 1.0, None)
        self.baseline_s = 0.0
        self._samples = 0

    def _observe(self, rtt_s: float) -> float:
        self._samples += 1
        if self._samples <= 10:
            self.baseline_s += (rtt_s - self.baseline_s) / self._samples
        else:
            self.baseline_s += (rtt_s - self.baseline_s) * 2.0 / (self.long_window + 1)
        return self.baseline_s

    def update(self, rtt_s: float, inflight: int, dropped: bool) -> None:
        """Move the limit towards ``gradient * limit + queue_size``."""
        rtt_s = max(rtt_s, 1e-9)
        baseline = self._observe(rtt_s)
        if baseline > 2 * rtt_s:
            self.baseline_s *= 0.95
        if inflight < self.limit / 2:
            return
        gradient = max(0.5, min(1.0, self.tolerance * baseline / rtt_s))
        target = self.limit * gradient + self.queue_size
        new = self.limit + self.smoothing * (target - self.limit)
        self.limit = min(self.max_limit, max(self.min_limit, new))


class WindowedLimit:
    """Feed ``delegate`` one summary per window instead of every call.

    Calls are gathered for ``window_s`` seconds and at least ``min_samples`` calls; the window
    then hands on its mean round trip, its largest in-flight count and whether any call was
    dropped. Averaging over a window keeps one slow call from moving a latency-driven limit.
    """

    def __init__(self, delegate: Limit, window_s: float = 1.0, min_samples: int = 10,
                 clock: Clock = time.monotonic) -> None:
        self.delegate, self.clock = delegate, clock
        self.window_s = check_positive("window_s", window_s)
        self.min_samples = check_int("min_samples", min_samples, 1)
        self._reset(clock())

    def _reset(self, now: float) -> None:
        self._ends, self._count, self._sum = now + self.window_s, 0, 0.0
        self._peak, self._drop = 0, False

    @property
    def limit(self) -> float:
        return self.delegate.limit

    def update(self, rtt_s: float, inflight: int, dropped: bool) -> None:
        """Add one call to the window; pass the window on once it is long and full enough."""
        self._count += 1
        self._sum += rtt_s
        self._peak = max(self._peak, inflight)
        self._drop = self._drop or dropped
        now = self.clock()
        if now >= self._ends and self._count >= self.min_samples:
            self.delegate.update(self._sum / self._count, self._peak, self._drop)
            self._reset(now)


class LimitExceeded(RuntimeError):
    """Raised by ``call`` when the limit is reached: the caller should shed the request."""


class Token:
    """One admitted call: release it exactly once, when the call ends."""

    def __init__(self, limiter: Limiter, started: float) -> None:
        self.limiter, self.started, self.released = limiter, started, False

    def release(self, dropped: bool = False) -> float:
        """End the call; ``dropped`` if it failed for overload (timeout, 503). Returns the RTT."""
        if self.released:
            raise RuntimeError("token already released")
        self.released = True
        return self.limiter._release(self, dropped)


class Limiter:
    """Admit a call only while fewer than ``limit.limit`` are in flight."""

    def __init__(self, limit: Limit, clock: Clock = time.monotonic) -> None:
        self.limit, self.clock, self.inflight = limit, clock, 0

    def try_acquire(self) -> Token | None:
        """A token for a call that may go ahead, or None if the limit is reached."""
        if self.inflight >= int(self.limit.limit):
            return None
        self.inflight += 1
        return Token(self, self.clock())

    def _release(self, token: Token, dropped: bool) -> float:
        rtt_s = self.clock() - token.started
        self.limit.update(rtt_s, self.inflight, dropped)
        self.inflight -= 1
        return rtt_s


@dataclass(frozen=True)
class LimiterConfig:
    """Settings of a production limiter; ``timeout_s`` marks a call that overran as dropped."""

    name: str = "service"
    timeout_s: float = 1.0

    def __post_init__(self) -> None:
        check_positive("LimiterConfig.timeout_s", self.timeout_s)


class ProductionLimiter(Limiter):
    """The limiter hardened: thread-safe, logged, with metrics; ``call(fn)`` wraps a call."""

    def __init__(self, limit: Limit, config: LimiterConfig = LimiterConfig(),
                 clock: Clock = time.monotonic) -> None:
        super().__init__(limit, clock)
        self.config = config
        self._lock = threading.Lock()
        self.metrics = Instruments("concurrency_limiter", "Calls through the limiter")
        self._rtt = self.metrics.histogram("rtt_seconds", "Round trip of admitted calls")
        self._shown = int(limit.limit)

    def try_acquire(self) -> Token | None:
        with self._lock:
            token = super().try_acquire()
        self.metrics.count("admitted" if token else "rejected")
        return token

    def _release(self, token: Token, dropped: bool) -> float:
        with self._lock:
            rtt_s = self.clock() - token.started
            dropped = dropped or rtt_s > self.config.timeout_s
            self.limit.update(rtt_s, self.inflight, dropped)
            self.inflight -= 1
            new = int(self.limit.limit)
            changed, self._shown = new != self._shown, new
        self._rtt.observe(rtt_s)
        self.metrics.count("dropped" if dropped else "completed")
        if changed:
            log.info("%s: limit now %d", self.config.name, new)
        return rtt_s

    @contextmanager
    def acquire(self) -> Iterator[None]:
        """``with limiter.acquire(): ...``: LimitExceeded when full; an exception marks a drop."""
        token = self.try_acquire()
        if token is None:
            raise LimitExceeded(f"{self.config.name}: {self.inflight} calls in flight, "
                                f"limit {int(self.limit.limit)}")
        try:
            yield
        except Exception:
            token.release(dropped=True)
            raise
        token.release()

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` inside the limit (see ``acquire``)."""
        with self.acquire():
            return fn()
