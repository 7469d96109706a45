"""Serverless (FaaS) keep-alive: a pool of function instances that stay warm for a while.

Picture a taxi rank at a small station: after dropping a passenger a driver may wait at the rank
for a while (a warm start for the next passenger) or go home (no waiting cost, but the next
passenger waits for a car to come: a cold start). How long to wait is the keep-alive window.

The Level 2 class is ``FunctionPool``: instances of one function, each kept loaded for a window
after its last execution, chosen by a keep-alive policy (``FixedKeepAlive`` or the
histogram-based ``HistogramKeepAlive``). Time is injectable (a ``clock`` argument), so the same
class runs in real time and inside a simulation. ``ProductionFunctionPool`` builds on it: a
validated config (``patterns.checks``), a lock, ``logging``, ``prometheus_client`` metrics
through ``patterns.metrics.Instruments`` and a concurrency limit. Nothing here imports from
``simulations``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from patterns.checks import check_int, check_non_negative, check_positive, check_probability
from patterns.metrics import Instruments

Clock = Callable[[], float]
log = logging.getLogger(__name__)


class FixedKeepAlive:
    """Keep every instance loaded for ``keep_alive_s`` after its execution ends."""

    def __init__(self, keep_alive_s: float) -> None:
        self.keep_alive_s = check_non_negative("keep_alive_s", keep_alive_s)

    def observe(self, idle_s: float) -> None:
        """A fixed policy learns nothing from the idle times."""

    def windows(self) -> tuple[float, float]:
        """(pre-warm, keep-alive): unload after ``pre-warm`` s, reload, keep ``keep-alive`` s."""
        return 0.0, self.keep_alive_s


class HistogramKeepAlive:
    """Windows from a histogram of the application's idle times (after Shahrad et al. 2020's
    hybrid histogram policy; the head and tail defaults follow the dslab reimplementation, the
    margin is the course's choice).

    Idle times (from the end of one execution to the start of the next) are counted in bins of
    ``bin_s`` up to ``range_s``; longer ones are out of bounds. With at least ``min_samples``
    in range, the pre-warm window is the ``head`` percentile's bin start minus a ``margin``,
    and the keep-alive window runs to the ``tail`` percentile's bin end plus the margin. With
    too few samples, or more than ``max_oob`` of them out of bounds, it falls back to
    ``fallback`` (no pre-warm, a fixed keep-alive). ``prewarm=False`` keeps only the tail:
    no unloading, a keep-alive to the tail percentile.
    """

    def __init__(self, bin_s: float = 60.0, range_s: float = 4 * 3600.0, head: float = 0.05,
                 tail: float = 0.99, margin: float = 0.10, min_samples: int = 10,
                 max_oob: float = 0.5, fallback: FixedKeepAlive | None = None,
                 prewarm: bool = True) -> None:
        self.bin_s = check_positive("bin_s", bin_s)
        self.range_s = check_positive("range_s", range_s)
        self.head, self.tail = check_probability("head", head), check_probability("tail", tail)
        if self.head >= self.tail:
            raise ValueError(f"head must be < tail (got head={head!r}, tail={tail!r})")
        self.margin = check_probability("margin", margin)
        self.min_samples = check_int("min_samples", min_samples, 1)
        self.max_oob = check_probability("max_oob", max_oob)
        self.fallback = fallback or FixedKeepAlive(600.0)
        self.prewarm = prewarm
        self.counts = [0] * math.ceil(self.range_s / self.bin_s)
        self.in_range = 0
        self.out_of_bounds = 0
        self._cached: tuple[float, float] | None = None

    def observe(self, idle_s: float) -> None:
        if idle_s >= self.range_s:
            self.out_of_bounds += 1
        else:
            self.counts[int(idle_s // self.bin_s)] += 1
            self.in_range += 1
        self._cached = None

    def _bin_of(self, share: float) -> int:
        need, seen = share * self.in_range, 0
        for i, c in enumerate(self.counts):
            seen += c
            if c and seen >= need:
                return i
        return len(self.counts) - 1

    def windows(self) -> tuple[float, float]:
        if self._cached is not None:
            return self._cached
        total = self.in_range + self.out_of_bounds
        if self.in_range < self.min_samples or self.out_of_bounds > self.max_oob * total:
            self._cached = self.fallback.windows()
        else:
            start = 0.0
            if self.prewarm:
                start = self._bin_of(self.head) * self.bin_s * (1 - self.margin)
            end = (self._bin_of(self.tail) + 1) * self.bin_s * (1 + self.margin)
            self._cached = (start, end - start)
        return self._cached


class FunctionPool:
    """Instances of one function: a warm one serves a call at once, else one cold-starts.

    ``acquire()`` returns True for a cold start; ``release()`` ends an execution, and the
    instance is then kept per the policy's ``windows()``: unloaded for the pre-warm window,
    reloaded, kept loaded for the keep-alive window. ``idle_s`` is the loaded-but-idle
    instance-time so far (the memory that waits unbilled).
    """

    def __init__(self, policy: FixedKeepAlive | HistogramKeepAlive, clock: Clock = time.monotonic
                 ) -> None:
        self.policy, self.clock = policy, clock
        self.parked: list[tuple[float, float]] = []  # idle instances: (loaded_from, expires_at)
        self.busy = 0
        self.cold_starts = self.warm_starts = 0
        self.idle_s = 0.0
        self.last_release: float | None = None

    def _reap(self, now: float) -> None:
        kept = []
        for loaded_from, expires_at in self.parked:
            if expires_at < now:
                self.idle_s += max(0.0, expires_at - loaded_from)
            else:
                kept.append((loaded_from, expires_at))
        self.parked = kept

    def acquire(self) -> bool:
        now = self.clock()
        self._reap(now)
        if self.busy == 0 and self.last_release is not None:
            self.policy.observe(now - self.last_release)
        warm = [i for i, (loaded_from, _) in enumerate(self.parked) if loaded_from <= now]
        self.busy += 1
        if warm:
            loaded_from, _ = self.parked.pop(warm[-1])  # the most recently loaded
            self.idle_s += now - loaded_from
            self.warm_starts += 1
            return False
        if self.parked:  # an instance waiting for its pre-warm: not loaded yet, so none is idle
            self.parked.pop()
        self.cold_starts += 1
        return True

    def release(self) -> None:
        now = self.clock()
        self.busy -= 1
        self.last_release = now
        prewarm, keep = self.policy.windows()
        self.parked.append((now + prewarm, now + prewarm + keep))

    def idle_now(self) -> float:
        """``idle_s`` plus the idle time of the instances still parked, up to now."""
        now = self.clock()
        return self.idle_s + sum(max(0.0, min(now, e) - s) for s, e in self.parked)


@dataclass(frozen=True)
class PoolConfig:
    """A function pool's settings, checked when built."""

    keep_alive_s: float = 600.0
    max_instances: int = 10
    cold_start_s: float = 0.25
    histogram: bool = False

    def __post_init__(self) -> None:
        check_non_negative("PoolConfig.keep_alive_s", self.keep_alive_s)
        check_int("PoolConfig.max_instances", self.max_instances, 1)
        check_non_negative("PoolConfig.cold_start_s", self.cold_start_s)


class ThrottledError(RuntimeError):
    """Every one of ``max_instances`` is busy: the call is refused (HTTP 429 on a platform)."""


class ProductionFunctionPool(FunctionPool):
    """A thread-safe pool with a concurrency limit, logging and Prometheus metrics.

    ``invoke(handler, *args)`` runs ``handler`` on an instance: ``init`` (the cold start's
    work) runs once per new instance, a call beyond ``max_instances`` raises ``ThrottledError``.
    """

    def __init__(self, name: str, config: PoolConfig, init: Callable[[], Any] | None = None,
                 clock: Clock = time.monotonic) -> None:
        policy = (HistogramKeepAlive(fallback=FixedKeepAlive(config.keep_alive_s))
                  if config.histogram else FixedKeepAlive(config.keep_alive_s))
        super().__init__(policy, clock)
        self.name, self.config, self.init = name, config, init
        self._lock = threading.Lock()
        self.metrics = Instruments("function_pool", "Invocations of the function")
        self._init_seconds = self.metrics.histogram("init_seconds", "Cold-start init time")

    def invoke(self, handler: Callable[..., Any], *args: Any) -> Any:
        with self._lock:
            if self.busy >= self.config.max_instances:
                self.metrics.count("throttled")
                log.warning("%s: throttled, %d instances busy", self.name, self.busy)
                raise ThrottledError(f"{self.name}: all {self.busy} instances busy")
            cold = self.acquire()
        self.metrics.count("cold" if cold else "warm")
        try:
            if cold:
                started = time.perf_counter()
                if self.init is not None:
                    self.init()
                self._init_seconds.observe(time.perf_counter() - started)
                log.info("%s: cold start", self.name)
            return handler(*args)
        except Exception:
            self.metrics.count("errors")
            log.exception("%s: invocation failed", self.name)
            raise
        finally:
            with self._lock:
                self.release()

