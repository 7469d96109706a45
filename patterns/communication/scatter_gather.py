"""Scatter-gather: send one request to N shards at once and merge what comes back by a deadline.

Picture a quiz master who asks twenty teams the same question and reads out the answers when the
bell rings. Waiting for every team means waiting for the slowest one; ringing the bell early (or
once k teams have answered) gives an answer in time, and the quiz master says how many teams it
covers.

``ScatterGather`` (Level 2) submits every shard call to a ``concurrent.futures`` executor and
returns once ``k`` shards have answered or ``deadline_s`` has passed, with the ``coverage`` (the
share of shards that answered) in the result. ``ProductionScatterGather`` (Level 3) builds on it:
a validated ``GatherConfig``, a minimum coverage below which it raises instead of answering, a
propagated ``Deadline`` from the timeouts lesson, a lock, ``logging`` and ``prometheus_client``
metrics. The clock is injectable; nothing here imports from ``simulations``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass, field
from typing import Any

from patterns.checks import check_int, check_non_negative, check_positive, check_range
from patterns.metrics import Instruments
from patterns.resilience.timeouts import Deadline

Clock = Callable[[], float]
Shard = Callable[[threading.Event], Any]  # one shard call; it may stop once the event is set

__all__ = ["GatherConfig", "Gathered", "InsufficientCoverage", "ProductionScatterGather",
           "ScatterGather"]

logger = logging.getLogger(__name__)


@dataclass
class Gathered:
    """What came back: answers by shard index, failures, how many were asked, and how long."""

    results: dict[int, Any]
    shards: int
    latency_s: float
    errors: dict[int, BaseException] = field(default_factory=dict)

    @property
    def coverage(self) -> float:
        """The share of shards whose answer is in the result (1.0: complete)."""
        return len(self.results) / self.shards

    @property
    def complete(self) -> bool:
        return len(self.results) == self.shards

    @property
    def missing(self) -> list[int]:
        return [i for i in range(self.shards) if i not in self.results]


class ScatterGather:
    """Call every shard at once; return when ``k`` have answered or ``deadline_s`` has passed.

    ``k=None`` waits for all shards (still bounded by the deadline). Each shard call is a function
    of one ``threading.Event``, set once the gather is over, so a well-behaved shard stops early.
    """

    def __init__(self, k: int | None = None, deadline_s: float = math.inf, *,
                 clock: Clock = time.monotonic) -> None:
        self.k = None if k is None else check_int("k", k, 1)
        self.deadline_s = check_positive("deadline_s", deadline_s, allow_inf=True)
        self.clock = clock

    def needed(self, shards: int) -> int:
        """How many answers end the wait early: ``k``, or every shard."""
        if self.k is not None and self.k > shards:
            raise ValueError(f"k must be <= the number of shards {shards} (got {self.k})")
        return shards if self.k is None else self.k

    def record(self, gathered: Gathered) -> None:
        """Note one finished gather (nothing here; metrics in the production class)."""

    def gather(self, calls: Sequence[Shard], pool: Executor,
               deadline_s: float | None = None) -> Gathered:
        """Scatter ``calls`` on ``pool``; gather answers until enough or the deadline."""
        budget = self.deadline_s if deadline_s is None else deadline_s
        need, start, stop = self.needed(len(calls)), self.clock(), threading.Event()
        index: dict[Future, int] = {pool.submit(call, stop): i for i, call in enumerate(calls)}
        pending, results, errors = set(index), {}, {}
        while pending and len(results) < need:
            left = budget - (self.clock() - start)
            if left <= 0:
                break
            done, pending = wait(pending, timeout=None if math.isinf(left) else left,
                                 return_when=FIRST_COMPLETED)
            for future in done:
                if future.exception() is None:
                    results[index[future]] = future.result()
                else:
                    errors[index[future]] = future.exception()
        stop.set()  # the late shards may stop; their answers are not waited for
        for future in pending:
            future.cancel()
        gathered = Gathered(results, len(calls), self.clock() - start, errors)
        self.record(gathered)
        return gathered


class InsufficientCoverage(RuntimeError):
    """Fewer shards answered than the configured minimum coverage: no result is better."""

    def __init__(self, gathered: Gathered, minimum: float) -> None:
        super().__init__(f"coverage {gathered.coverage:.0%} is below the minimum {minimum:.0%} "
                         f"({len(gathered.results)} of {gathered.shards} shards answered)")
        self.gathered = gathered


@dataclass(frozen=True)
class GatherConfig:
    """Settings of ``ProductionScatterGather``, checked on creation.

    ``deadline_s``: the most the gather waits. ``min_shards``: answers that end the wait early
    (None: all). ``min_coverage``: below this share of shards, raise ``InsufficientCoverage``
    (1.0: all or nothing, like ``allow_partial_search_results=false``). ``log_interval_s``: at
    most one warning about partial results per interval.
    """

    deadline_s: float = 0.1
    min_shards: int | None = None
    min_coverage: float = 0.5
    log_interval_s: float = 60.0

    def __post_init__(self) -> None:
        check_positive("GatherConfig.deadline_s", self.deadline_s, allow_inf=True)
        if self.min_shards is not None:
            check_int("GatherConfig.min_shards", self.min_shards, 1)
        check_range("GatherConfig.min_coverage", self.min_coverage, 0.0, 1.0)
        check_non_negative("GatherConfig.log_interval_s", self.log_interval_s)


class ProductionScatterGather(ScatterGather):
    """The gather hardened: coverage always reported, a floor on it, a propagated deadline.

    Metrics (a registry per instance): events ``requests``, ``complete``, ``partial``,
    ``insufficient``, ``shard_answers``, ``shard_missing``, ``shard_errors``; histograms
    ``latency_seconds`` and ``coverage``. ``missing_by_shard`` counts, per shard, how often it
    was left out (the slow shard shows up there first). A lock guards that tally and the log
    rate limit only, never a call.
    """

    def __init__(self, name: str, config: GatherConfig | None = None,
                 clock: Clock = time.monotonic) -> None:
        self.config = config or GatherConfig()
        super().__init__(self.config.min_shards, self.config.deadline_s, clock=clock)
        self.name = name
        self.missing_by_shard: Counter[int] = Counter()
        self._lock = threading.Lock()
        self._warned_at = -math.inf
        self.metrics = Instruments("scatter_gather", "Gathers over shards")
        self._latency = self.metrics.histogram("latency_seconds", "Gather latency")
        self._coverage = self.metrics.histogram(
            "coverage", "Share of shards answered", buckets=(0.25, 0.5, 0.75, 0.9, 0.99, 1.0))

    def gather(self, calls: Sequence[Shard], pool: Executor,
               deadline: Deadline | None = None) -> Gathered:
        """As ``ScatterGather.gather``, within ``deadline`` (the caller's) if one is passed;
        raises ``InsufficientCoverage`` below ``min_coverage``."""
        budget = self.config.deadline_s if deadline is None else deadline.timeout_for(
            None if math.isinf(self.config.deadline_s) else self.config.deadline_s)
        gathered = super().gather(calls, pool, budget)
        if gathered.coverage < self.config.min_coverage:
            self.metrics.count("insufficient")
            logger.error("gather %s: %s", self.name,
                         InsufficientCoverage(gathered, self.config.min_coverage))
            raise InsufficientCoverage(gathered, self.config.min_coverage)
        return gathered

    def record(self, gathered: Gathered) -> None:
        now = self.clock()
        with self._lock:
            self.missing_by_shard.update(gathered.missing)
            warn = not gathered.complete and now - self._warned_at >= self.config.log_interval_s
            if warn:
                self._warned_at = now
        self.metrics.count("requests")
        self.metrics.count("complete" if gathered.complete else "partial")
        self.metrics.count("shard_answers", len(gathered.results))
        self.metrics.count("shard_missing", gathered.shards - len(gathered.results))
        self.metrics.count("shard_errors", len(gathered.errors))
        self._latency.observe(gathered.latency_s)
        self._coverage.observe(gathered.coverage)
        if warn:
            logger.warning("gather %s: partial result, %d of %d shards (missing %s)", self.name,
                           len(gathered.results), gathered.shards, gathered.missing[:5])
