"""Retries with capped exponential backoff and jitter, and a retry budget.

Picture a crowd at a shop door that has just reopened after a power cut. If everyone who was
turned away knocks again at exactly the same moment, the shop turns most of them away again. If
each waits a bit longer after every failed knock (exponential backoff), the knocks thin out; if
each also rolls a die for how long to wait (jitter), the knocks spread out and the shop can
serve them one by one. And if the shop is simply overwhelmed, the crowd should not knock more
than, say, one extra time for every ten customers (a retry budget), or the knocking itself keeps
the shop overwhelmed.

Level 2 (small, readable): `Backoff` (the wait before each retry, four jitter modes), `RetryBudget`
(retries at most a fixed share of requests) and `Retrier` (call a function, retrying failures).
Time is injectable: `Retrier` sleeps through its ``sleep`` argument and draws randomness from its
``rand`` argument, and a SimPy model uses `Retrier.next_wait` directly instead of ``call``.
Level 3 (production-grade): `RetryConfig` (validated) and `ProductionRetrier` (thread-safe,
logged, counters and histograms, an overall deadline, retryable error types).
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from patterns.checks import check_choice, check_int, check_non_negative, check_range
from patterns.metrics import Instruments

__all__ = [
    "JITTER_MODES",
    "Backoff",
    "ProductionRetrier",
    "RetryBudget",
    "RetryConfig",
    "Retrier",
    "tenacity_wait",
]

T = TypeVar("T")
JITTER_MODES = ("none", "full", "equal", "decorrelated")
"""How the wait before a retry is drawn (Brooker's names, AWS Architecture Blog, 2015)."""

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- Level 2: the pattern


@dataclass(frozen=True)
class Backoff:
    """The wait before each retry: capped exponential, with one of four jitter modes.

    For retry k (k = 1 after the first failed attempt), the exponential ceiling is
    ``c_k = min(cap_s, base_s * multiplier**(k-1))`` and u is uniform on [0, 1):

    - ``none``: wait c_k (every client waits the same: synchronised retries);
    - ``full``: wait u·c_k;
    - ``equal``: wait c_k/2 + u·c_k/2;
    - ``decorrelated``: wait min(cap_s, base_s + u·(3·w − base_s)), where w is the previous
      wait (base_s before the first retry): each wait grows from the last, not from k.

    ``base_s = 0`` gives immediate retries.
    """

    base_s: float = 0.1
    cap_s: float = 10.0
    jitter: str = "full"
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        check_non_negative("base_s", self.base_s)
        check_range("cap_s", self.cap_s, self.base_s)
        check_choice("jitter", self.jitter, JITTER_MODES)
        check_range("multiplier", self.multiplier, 1.0)

    def ceiling(self, retry: int) -> float:
        """c_k = min(cap_s, base_s · multiplier^(k−1)), without overflow for large k."""
        if self.base_s == 0:
            return 0.0
        growth = (retry - 1) * math.log(self.multiplier)
        if growth >= math.log(self.cap_s / self.base_s):
            return self.cap_s
        return self.base_s * self.multiplier ** (retry - 1)

    def delay(self, retry: int, previous_s: float, rand: Callable[[], float]) -> float:
        """The wait before retry ``retry``; ``previous_s`` is the last wait (0 if none);
        ``rand()`` gives a uniform number in [0, 1) and is called once, except in mode none."""
        if self.jitter == "none":
            return self.ceiling(retry)
        if self.jitter == "decorrelated":
            last = previous_s or self.base_s
            return min(self.cap_s, self.base_s + rand() * (3 * last - self.base_s))
        top = self.ceiling(retry)
        if self.jitter == "full":
            return top * rand()
        return top / 2 + top / 2 * rand()  # equal

    def waits(self, retries: int, rand: Callable[[], float]) -> list[float]:
        """The waits before retries 1 ... ``retries`` (a whole schedule, for plots and tests)."""
        out: list[float] = []
        for k in range(1, check_int("retries", retries, 0) + 1):
            out.append(self.delay(k, out[-1] if out else 0.0, rand))
        return out


class RetryBudget:
    """Retries may add at most ``ratio`` × requests, plus a reserve of ``reserve`` retries.

    Each request deposits ``ratio`` tokens (the balance never exceeds ``reserve``); each retry
    spends one whole token and is refused when there is none. Over any run, therefore,
    retries ≤ reserve + ratio × requests. One budget is shared by all calls of a client, so
    it holds a lock.
    """

    def __init__(self, ratio: float = 0.1, reserve: float = 10.0) -> None:
        self.ratio = check_range("ratio", ratio, 0.0, 1.0)
        self.reserve = check_non_negative("reserve", reserve)
        self.tokens = self.reserve
        self._lock = threading.Lock()

    def deposit(self) -> None:
        with self._lock:
            self.tokens = min(self.reserve, self.tokens + self.ratio)

    def withdraw(self) -> bool:
        with self._lock:
            if self.tokens < 1:
                return False
            self.tokens -= 1
            return True


class Retrier:
    """Call ``fn``; on an error of a type in ``retry_on``, wait and try again, up to
    ``max_attempts`` attempts in all (the first one included)."""

    def __init__(self, max_attempts: int = 3, backoff: Backoff | None = None, *,
                 budget: RetryBudget | None = None,
                 retry_on: tuple[type[BaseException], ...] = (Exception,),
                 sleep: Callable[[float], object] = time.sleep,
                 rand: Callable[[], float] = random.random) -> None:
        self.max_attempts = check_int("max_attempts", max_attempts, 1)
        self.backoff = backoff or Backoff()
        self.budget, self.retry_on = budget, retry_on
        self.sleep, self.rand = sleep, rand

    def next_wait(self, attempts: int, previous_s: float) -> float | None:
        """After ``attempts`` failed attempts: the wait before the next one, or None to stop
        (no attempts left, or the budget refuses the retry)."""
        if attempts >= self.max_attempts:
            return None
        if self.budget is not None and not self.budget.withdraw():
            return None
        return self.backoff.delay(attempts, previous_s, self.rand)

    def start(self) -> None:
        """A new request begins: it earns the budget its share of a retry."""
        if self.budget is not None:
            self.budget.deposit()

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        self.start()
        attempts, wait = 0, 0.0
        while True:
            attempts += 1
            try:
                return fn(*args, **kwargs)
            except self.retry_on:
                wait = self.next_wait(attempts, wait)
                if wait is None:
                    raise
                self.sleep(wait)


def tenacity_wait(backoff: Backoff) -> Any:
    """The tenacity wait strategy with the same schedule as ``backoff`` (tenacity ≥ 8.2).

    tenacity calls its wait after attempt k with ``attempt_number`` = k and waits
    ``multiplier · 2^(k−1)`` capped at ``max``, so ``multiplier`` = base_s and ``max`` = cap_s:
    ``none`` is ``wait_exponential``; ``full`` is ``wait_random_exponential`` (uniform on
    [0, c_k], one ``random.uniform`` call); ``equal`` is half of each added together. tenacity
    has no decorrelated jitter: a ValueError says so.
    """
    import tenacity

    b = backoff
    if b.jitter == "decorrelated":
        raise ValueError("jitter 'decorrelated' has no tenacity equivalent (tenacity has none, "
                         "full, and equal as a sum of two strategies)")
    if b.jitter == "none":
        return tenacity.wait_exponential(multiplier=b.base_s, max=b.cap_s, exp_base=b.multiplier)
    if b.jitter == "full":
        return tenacity.wait_random_exponential(multiplier=b.base_s, max=b.cap_s,
                                                exp_base=b.multiplier)
    half = {"multiplier": b.base_s / 2, "max": b.cap_s / 2, "exp_base": b.multiplier}
    return tenacity.wait_exponential(**half) + tenacity.wait_random_exponential(**half)


# ---------------------------------------------------------------- Level 3: production-grade


@dataclass(frozen=True)
class RetryConfig:
    """A retrier's settings, checked when created. ``deadline_s`` bounds the whole call
    (attempts and waits); ``budget_ratio`` None means no retry budget."""

    max_attempts: int = 3
    base_s: float = 0.1
    cap_s: float = 10.0
    jitter: str = "full"
    multiplier: float = 2.0
    deadline_s: float | None = None
    budget_ratio: float | None = 0.1
    budget_reserve: float = 10.0

    def __post_init__(self) -> None:
        name = "RetryConfig."
        check_int(name + "max_attempts", self.max_attempts, 1)
        check_non_negative(name + "base_s", self.base_s)
        check_range(name + "cap_s", self.cap_s, self.base_s)
        check_choice(name + "jitter", self.jitter, JITTER_MODES)
        check_range(name + "multiplier", self.multiplier, 1.0)
        if self.deadline_s is not None:
            check_range(name + "deadline_s", self.deadline_s, 0.0, low_open=True)
        if self.budget_ratio is not None:
            check_range(name + "budget_ratio", self.budget_ratio, 0.0, 1.0)
        check_non_negative(name + "budget_reserve", self.budget_reserve)

    def backoff(self) -> Backoff:
        return Backoff(self.base_s, self.cap_s, self.jitter, self.multiplier)


class ProductionRetrier(Retrier):
    """The Level 2 retrier hardened: validated config, an overall deadline, thread-safe
    counters, a log line per retry and per give-up, histograms of waits and attempts per call.

    Counters: ``calls``, ``attempts``, ``retries``, ``successes``, ``gave_up``,
    ``budget_refusals``, ``deadline_stops``, ``not_retryable``. A retry is skipped when its wait
    would end after the deadline (it could not finish in time anyway).
    """

    def __init__(self, name: str, config: RetryConfig | None = None, *,
                 retry_on: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError),
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] = time.sleep,
                 rand: Callable[[], float] = random.random) -> None:
        self.name, self.config = name, config or RetryConfig()
        c = self.config
        budget = None if c.budget_ratio is None else RetryBudget(c.budget_ratio, c.budget_reserve)
        super().__init__(c.max_attempts, c.backoff(), budget=budget, retry_on=retry_on,
                         sleep=sleep, rand=rand)
        self.clock = clock
        self.metrics = Instruments("retrier", "Calls and attempts")
        self.waits = self.metrics.histogram("wait_seconds", "Backoff waits before retries")
        self.attempts_per_call: Counter[int] = Counter()
        self._lock = threading.Lock()
        self._call = threading.local()  # this thread's call: deadline and attempts so far

    def _count(self, *names: str) -> None:
        with self._lock:
            for event in names:
                self.metrics.count(event)

    def next_wait(self, attempts: int, previous_s: float) -> float | None:
        wait = super().next_wait(attempts, previous_s)
        if wait is None:
            if attempts < self.max_attempts:
                self._count("budget_refusals")
            return None
        if self.clock() + wait > getattr(self._call, "deadline", math.inf):  # inf outside call
            self._count("deadline_stops")
            return None
        with self._lock:
            self.metrics.count("retries")
            self.waits.observe(wait)
        log.info("%s: attempt %d failed, retrying in %.3f s", self.name, attempts, wait)
        return wait

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        deadline_s = self.config.deadline_s
        self._call.deadline = math.inf if deadline_s is None else self.clock() + deadline_s
        self._call.attempts = 0

        def attempt() -> T:
            self._call.attempts += 1
            self._count("attempts")
            return fn(*args, **kwargs)

        self._count("calls")
        try:
            result = super().call(attempt)
        except self.retry_on as error:
            self._count("gave_up")
            log.warning("%s: giving up after %d attempt(s): %r", self.name,
                        self._call.attempts, error)
            raise
        except Exception:
            self._count("not_retryable")
            raise
        finally:
            with self._lock:
                self.attempts_per_call[self._call.attempts] += 1
        self._count("successes")
        return result
