"""Load shedding by priority: turn away the least important work first when a service is full.

Picture the triage nurse at the door of an emergency room on a bad night: once the waiting room
holds more than an hour of work, sprained ankles are sent to a clinic across town, while heart
attacks are taken until the wait is much longer. ``LoadShedder`` is that nurse: it estimates the
queueing delay a new request would meet by Little's law (requests queued / recent completion
rate) and sheds a priority once the estimate passes that priority's limit.
``ProductionLoadShedder`` adds a validated ``ShedderConfig``, a lock, a fallback for shed calls,
``logging`` and ``prometheus_client`` metrics per priority.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from patterns.checks import (
    check_int,
    check_non_negative,
    check_positive,
)
from patterns.metrics import Instruments

log = logging.getLogger(__name__)
Clock = Callable[[], float]
T = TypeVar("T")


# ---------------------------------------------------------------- Level 2: the small shedder


class LoadShedder:
    """Admit or shed each request from the queueing delay it would meet.

    ``max_wait_s[p]`` is the longest estimated wait at which priority ``p`` (0 = most important)
    is still admitted. The estimate is Little's law applied to the queue: a request that finds
    all ``workers`` busy waits for ``in_flight - workers + 1`` completions, which take that many
    divided by the completion rate over the last ``window_s`` seconds (at least one completion
    per window is assumed, so a stalled service is seen as slow, not as idle). ``admit`` before
    the work, ``done`` after it.
    """

    def __init__(self, max_wait_s: Sequence[float], workers: int, window_s: float = 1.0,
                 clock: Clock = time.monotonic) -> None:
        self.max_wait_s = list(max_wait_s)
        self.workers = workers
        self.window_s = window_s
        self.clock = clock
        self.in_flight = 0
        self.admitted = [0] * len(self.max_wait_s)
        self.shed = [0] * len(self.max_wait_s)
        self._completions: deque[float] = deque()

    def completion_rate(self) -> float:
        """Completions per second over the last ``window_s`` (at least 1 per window)."""
        horizon = self.clock() - self.window_s
        while self._completions and self._completions[0] <= horizon:
            self._completions.popleft()
        return max(len(self._completions), 1) / self.window_s

    def estimated_wait_s(self) -> float:
        """Queueing delay a request admitted now would meet: completions to wait for / rate."""
        ahead = self.in_flight - self.workers + 1
        return ahead / self.completion_rate() if ahead > 0 else 0.0

    def admit(self, priority: int) -> bool:
        """True (and count the request in flight) if ``priority`` may come in now."""
        if self.estimated_wait_s() > self.max_wait_s[priority]:
            self.shed[priority] += 1
            return False
        self.admitted[priority] += 1
        self.in_flight += 1
        return True

    def done(self) -> None:
        """An admitted request has finished (whatever its outcome)."""
        self.in_flight -= 1
        self._completions.append(self.clock())


# ---------------------------------------------------------------- Level 3: production grade


@dataclass(frozen=True)
class ShedderConfig:
    """Validated settings: a wait limit per priority (0 first), the workers, the rate window."""

    max_wait_s: tuple[float, ...] = (1.0, 0.2)
    workers: int = 8
    window_s: float = 1.0

    def __post_init__(self) -> None:
        limits = tuple(self.max_wait_s) if isinstance(self.max_wait_s, Iterable) else None
        if not limits:
            raise ValueError("ShedderConfig.max_wait_s must be a non-empty sequence of seconds, "
                             f"one per priority (got {self.max_wait_s!r})")
        for p, limit in enumerate(limits):
            check_non_negative(f"ShedderConfig.max_wait_s[{p}]", limit)
        object.__setattr__(self, "max_wait_s", tuple(float(x) for x in limits))
        check_int("ShedderConfig.workers", self.workers, 1)
        check_positive("ShedderConfig.window_s", self.window_s)


class OverloadedError(RuntimeError):
    """The shedder turned the request away; retry later, elsewhere, or serve a fallback."""


class ProductionLoadShedder(LoadShedder):
    """The Level 2 shedder hardened: validated config, thread-safe, logged, measured.

    A lock guards the counts, never the work itself. ``call(fn, priority)`` runs ``fn`` if the
    request is admitted and raises ``OverloadedError`` (or returns ``fallback()``) if it is shed.
    Counters: ``admitted_<p>``, ``shed_<p>``, ``errors``; ``latency`` is a histogram of the time
    admitted calls took. The moments a priority starts and stops being shed are logged (a
    warning and an info line), not every request, so an overload does not flood the log.
    """

    def __init__(self, name: str, config: ShedderConfig | None = None,
                 clock: Clock = time.monotonic) -> None:
        self.name, self.config = name, config or ShedderConfig()
        super().__init__(self.config.max_wait_s, self.config.workers, self.config.window_s,
                         clock)
        self.metrics = Instruments("load_shedder", "Requests offered to the shedder")
        self.latency = self.metrics.histogram("call_seconds", "Latency of admitted calls")
        self.shedding: set[int] = set()
        self._lock = threading.Lock()

    def admit(self, priority: int) -> bool:
        check_int("priority", priority, 0, len(self.max_wait_s) - 1)
        with self._lock:
            allowed = super().admit(priority)
            self.metrics.count(f"{'admitted' if allowed else 'shed'}_{priority}")
            changed = allowed == (priority in self.shedding)
            if changed:
                (self.shedding.discard if allowed else self.shedding.add)(priority)
                wait = self.estimated_wait_s()
        if changed:
            log.log(logging.INFO if allowed else logging.WARNING,
                    "shedder %s: priority %d %s (estimated wait %.3f s, limit %.3f s)",
                    self.name, priority, "admitted again" if allowed else "shed", wait,
                    self.max_wait_s[priority])
        return allowed

    def done(self) -> None:
        with self._lock:
            super().done()

    def call(self, fn: Callable[..., T], *args: Any, priority: int,
             fallback: Callable[[], T] | None = None, **kwargs: Any) -> T:
        if not self.admit(priority):
            if fallback is not None:
                return fallback()
            raise OverloadedError(f"shedder {self.name!r}: priority {priority} shed, "
                                  f"estimated wait over {self.max_wait_s[priority]:g} s")
        start = self.clock()
        try:
            return fn(*args, **kwargs)
        except Exception:
            with self._lock:
                self.metrics.count("errors")
            raise
        finally:
            with self._lock:
                self.latency.observe(self.clock() - start)
            self.done()


