"""Hedged requests: send a second copy of a slow request to another replica, take the first answer.

Picture a queue at two post-office counters. You join one; if it has not moved after a couple of
minutes, a friend joins the other, and whichever of you reaches a clerk first does the errand and
waves the other one home. Most days the friend is never called, so the trick costs little; on the
bad day it saves the morning.

``HedgedRequests`` (Level 2) sends the first attempt, waits ``delay_s``, sends the backup if no
answer has come, returns the first successful answer and, with ``cancel_loser``, tells the other
attempt to stop. ``AdaptiveHedger`` (Level 3) builds on it: the delay is a running percentile of
recent latencies, a hedge budget caps the extra load, the state is guarded by a lock, and every
event is logged and counted through ``prometheus_client``. The clock is injectable; nothing here
imports from ``simulations``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass
from typing import TypeVar

from patterns.checks import check_int, check_non_negative, check_positive, check_range
from patterns.metrics import Instruments

Clock = Callable[[], float]
T = TypeVar("T")
Attempt = Callable[[threading.Event], T]  # one copy; it may stop early once the event is set

__all__ = ["AdaptiveHedger", "HedgeConfig", "HedgedRequests", "RunningPercentile"]

logger = logging.getLogger(__name__)


class HedgedRequests:
    """Send ``attempts[0]``; after ``delay_s`` without an answer send ``attempts[1]``; first wins.

    A first attempt that fails before the delay counts as no answer: the backup goes at once.
    Each attempt is a function of one ``threading.Event``, set when the other copy has answered:
    a well-behaved attempt checks it and stops (``cancel_loser``). ``hedges`` and ``backup_wins``
    count what happened. ``clock`` times each call (``latencies``).
    """

    def __init__(self, delay_s: float, *, cancel_loser: bool = True,
                 clock: Clock = time.monotonic) -> None:
        self.delay_s = check_range("delay_s", delay_s, 0.0, allow_inf=True)  # inf: never hedge
        self.cancel_loser = cancel_loser
        self.clock = clock
        self.hedges = 0
        self.backup_wins = 0
        self.latencies: list[float] = []

    def hedge_delay(self) -> float:
        """How long to wait for the first attempt before sending the backup."""
        return self.delay_s

    def admit_hedge(self) -> bool:
        """Whether a backup may be sent now (always, here; a budget in ``AdaptiveHedger``)."""
        self.hedges += 1
        return True

    def record(self, latency_s: float, backup_won: bool) -> None:
        """Note one finished call: its latency, and whether the backup answered first."""
        self.latencies.append(latency_s)
        self.backup_wins += backup_won

    def call(self, attempts: Sequence[Attempt[T]], pool: Executor) -> T:
        """Run the hedged call on ``pool``; return the first successful answer."""
        if not 1 <= len(attempts) <= 2:
            raise ValueError(f"attempts must hold 1 or 2 functions (got {len(attempts)})")
        start, stop = self.clock(), threading.Event()
        pending: dict[Future[T], int] = {pool.submit(attempts[0], stop): 0}
        delay = self.hedge_delay()
        done, _ = wait(pending, timeout=None if math.isinf(delay) else delay)
        failed = any(future.exception() is not None for future in done)  # no answer either
        if (failed or not done) and len(attempts) == 2 and self.admit_hedge():
            pending[pool.submit(attempts[1], stop)] = 1
        error: BaseException | None = None
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                copy = pending.pop(future)
                if future.exception() is None:
                    if self.cancel_loser:
                        stop.set()
                    self.record(self.clock() - start, copy == 1)
                    return future.result()
                error = future.exception()
        raise error  # every copy failed: the last failure


class RunningPercentile:
    """The q-quantile of the last ``window`` values: the smallest v with at least q of them <= v.

    The same definition as ``numpy.percentile(values, 100 q, method="inverted_cdf")``. Kept sorted
    with ``bisect``, so an update costs O(window) and a read O(1).
    """

    def __init__(self, quantile: float, window: int) -> None:
        self.quantile = check_range("quantile", quantile, 0.0, 1.0, low_open=True, high_open=True)
        self.window = check_int("window", window, 1)
        self._recent: deque[float] = deque()
        self._sorted: list[float] = []

    def __len__(self) -> int:
        return len(self._recent)

    def add(self, value: float) -> None:
        self._recent.append(value)
        insort(self._sorted, value)
        if len(self._recent) > self.window:
            del self._sorted[bisect_left(self._sorted, self._recent.popleft())]

    def value(self) -> float:
        n = len(self._sorted)
        if n == 0:
            raise ValueError("RunningPercentile has no values yet (add some first)")
        rank = self.quantile * n
        index = int(rank) - (rank == int(rank))  # ceil(q n) - 1, exact for whole ranks
        return self._sorted[max(index, 0)]


@dataclass(frozen=True)
class HedgeConfig:
    """Settings of ``AdaptiveHedger``, checked on creation.

    ``percentile``: hedge once a request is slower than this share of recent ones (Dean and
    Barroso suggest the 95th). ``window``: how many recent latencies the estimate keeps.
    ``min_samples``: below this many, wait ``initial_delay_s``. ``budget_ratio``: each request
    earns this fraction of a hedge (0.05: at most about 5 % extra requests over time);
    ``budget_burst``: the most hedges saved up. ``log_interval_s``: at most one warning about
    an empty budget per interval.
    """

    percentile: float = 0.95
    window: int = 1000
    min_samples: int = 20
    initial_delay_s: float = 0.01
    budget_ratio: float = 0.05
    budget_burst: float = 10.0
    cancel_loser: bool = True
    log_interval_s: float = 60.0

    def __post_init__(self) -> None:
        check_range("HedgeConfig.percentile", self.percentile, 0.0, 1.0,
                    low_open=True, high_open=True)
        check_int("HedgeConfig.window", self.window, 1)
        check_int("HedgeConfig.min_samples", self.min_samples, 1, self.window)
        check_non_negative("HedgeConfig.initial_delay_s", self.initial_delay_s)
        check_range("HedgeConfig.budget_ratio", self.budget_ratio, 0.0, 1.0)
        check_positive("HedgeConfig.budget_burst", self.budget_burst)
        check_non_negative("HedgeConfig.log_interval_s", self.log_interval_s)


class AdaptiveHedger(HedgedRequests):
    """Hedges at a running percentile of recent latencies, within a hedge budget; thread-safe.

    A lock guards the estimate and the budget only, never a call. Metrics (a registry per hedger):
    events ``requests``, ``hedges``, ``hedges_denied``, ``backup_wins``; histogram
    ``latency_seconds``. Logs a warning when the budget refuses a hedge (at most one per
    ``log_interval_s``).
    """

    def __init__(self, name: str, config: HedgeConfig | None = None,
                 clock: Clock = time.monotonic) -> None:
        self.config = config or HedgeConfig()
        super().__init__(self.config.initial_delay_s, cancel_loser=self.config.cancel_loser,
                         clock=clock)
        self.name = name
        self.estimate = RunningPercentile(self.config.percentile, self.config.window)
        self.tokens = self.config.budget_burst
        self._lock = threading.Lock()
        self._warned_at = -math.inf
        self.metrics = Instruments("hedger", "Requests through the hedger")
        self._latency = self.metrics.histogram("latency_seconds", "Hedged call latency")

    def hedge_delay(self) -> float:
        """The running percentile once ``min_samples`` latencies are in, else the initial delay;
        each call also earns ``budget_ratio`` of a hedge."""
        with self._lock:
            self.tokens = min(self.tokens + self.config.budget_ratio, self.config.budget_burst)
            enough = len(self.estimate) >= self.config.min_samples
            delay = self.estimate.value() if enough else self.config.initial_delay_s
        self.metrics.count("requests")
        return delay

    def admit_hedge(self) -> bool:
        """Spend one hedge from the budget, or refuse (and count it) when there is none."""
        now = self.clock()
        with self._lock:
            admitted = self.tokens >= 1.0
            self.tokens -= admitted
            warn = not admitted and now - self._warned_at >= self.config.log_interval_s
            if warn:
                self._warned_at = now
        self.metrics.count("hedges" if admitted else "hedges_denied")
        if warn:
            logger.warning("hedger %s: hedge budget exhausted, backups refused (%d so far)",
                           self.name, self.metrics.counts["hedges_denied"])
        return admitted

    def record(self, latency_s: float, backup_won: bool) -> None:
        with self._lock:
            self.estimate.add(latency_s)
        self._latency.observe(latency_s)
        if backup_won:
            self.metrics.count("backup_wins")
