"""Clock uncertainty made explicit: TrueTime-style intervals, commit wait, hybrid logical clocks.

Picture two post offices whose wall clocks disagree by a few minutes. A letter stamped 10:02 at
the fast office and a reply stamped 10:00 at the slow one would file the reply before the
letter. If each office instead admits "it is between 9:58 and 10:06 here" and holds every
stamped letter at the counter until even the earliest reading is past its stamp, no later
letter, anywhere, can carry a smaller stamp. That hold is Spanner's commit wait; its price is
the width of the doubt, about 2ε per write.

``TrueTime`` turns any clock into an interval clock (``now()``, ``after(t)``, ``before(t)``)
with an uncertainty bound ``epsilon_s``; ``CommitWait`` assigns commit timestamps
(``TT.now().latest``, never below the last one) and says how long to hold each before it is
visible; ``HybridLogicalClock`` (Kulkarni et al.) stamps events with (physical, counter) pairs
that follow causality without waiting. ``ProductionCommitWait`` adds a validated config,
a lock, logging and metrics. Time is injectable everywhere (``clock``, ``sleep``), so the same
classes run in real time, under a hand-moved clock, and in the protocol lab. Nothing here
imports from ``simulations``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from patterns.checks import check_non_negative, check_positive, check_range
from patterns.metrics import Instruments

Clock = Callable[[], float]
Sleep = Callable[[float], None]

log = logging.getLogger(__name__)

__all__ = ["ClockOffsetError", "ClockSyncCommitWait", "CommitWait", "CommitWaitConfig",
           "HybridLogicalClock", "Interval", "ProductionCommitWait", "TrueTime"]


@dataclass(frozen=True)
class Interval:
    """The true time lies in [earliest, latest] (if the clock's bound holds)."""

    earliest: float
    latest: float


class TrueTime:
    """An interval clock: the local reading widened by ``epsilon_s`` on each side.

    ``epsilon_s`` may be a number or a function of the local reading (an uncertainty that grows
    between synchronisations, as TrueTime's does).
    """

    def __init__(self, epsilon_s: float | Callable[[float], float], clock: Clock = time.time
                 ) -> None:
        if not callable(epsilon_s):
            check_non_negative("TrueTime.epsilon_s", epsilon_s)
        self.epsilon_s, self.clock = epsilon_s, clock

    def epsilon(self, reading: float) -> float:
        return self.epsilon_s(reading) if callable(self.epsilon_s) else self.epsilon_s

    def now(self) -> Interval:
        reading = self.clock()
        eps = self.epsilon(reading)
        return Interval(reading - eps, reading + eps)

    def after(self, t: float) -> bool:
        """True if ``t`` has certainly passed."""
        return self.now().earliest > t

    def before(self, t: float) -> bool:
        """True if ``t`` has certainly not arrived yet."""
        return self.now().latest < t


class CommitWait:
    """Spanner's two rules. Start: a commit timestamp is at least ``TT.now().latest`` (and above
    every timestamp given before). Commit wait: nobody sees the write until ``TT.after(s)``.

    ``assign()`` gives the timestamp, ``hold_s(s)`` how much longer to wait (0 once it has
    passed); ``commit(apply)`` does both in real time with the injectable ``sleep``.
    """

    def __init__(self, truetime: TrueTime, sleep: Sleep = time.sleep) -> None:
        self.truetime, self.sleep = truetime, sleep
        self.last_s = float("-inf")

    def assign(self) -> float:
        s = max(self.truetime.now().latest, self.last_s)
        if s == self.last_s:
            s += 1e-9  # strictly above the previous timestamp
        self.last_s = s
        return s

    def hold_s(self, s: float) -> float:
        """Seconds of local clock until ``TT.after(s)`` (re-check after sleeping: ε may grow)."""
        return max(0.0, s - self.truetime.now().earliest)

    def commit(self, apply: Callable[[float], object]) -> tuple[float, float]:
        """Assign a timestamp, wait it out, then ``apply(s)``; returns (s, seconds waited)."""
        s, waited = self.assign(), 0.0
        while not self.truetime.after(s):
            pause = max(self.hold_s(s), 1e-6)
            self.sleep(pause)
            waited += pause
        apply(s)
        return s, waited


ClockSyncCommitWait = CommitWait  # the lesson's name for its Level 2 class


class HybridLogicalClock:
    """Kulkarni et al.'s HLC: a timestamp (l, c) where l is the largest physical reading heard
    of, so it stays close to physical time, and c counts events at the same l, so a message's
    receipt is always stamped after its sending, whatever the two clocks say."""

    def __init__(self, clock: Clock = time.time) -> None:
        self.clock = clock
        self.l, self.c = float("-inf"), 0

    def now(self) -> tuple[float, int]:
        """A local or send event."""
        pt = self.clock()
        if pt > self.l:
            self.l, self.c = pt, 0
        else:
            self.c += 1
        return self.l, self.c

    def update(self, remote: tuple[float, int]) -> tuple[float, int]:
        """A receive event carrying the sender's ``remote`` = (l, c)."""
        pt, (lm, cm) = self.clock(), remote
        l_new = max(self.l, lm, pt)
        if l_new == self.l == lm:
            self.c = max(self.c, cm) + 1
        elif l_new == self.l:
            self.c += 1
        elif l_new == lm:
            self.c = cm + 1
        else:
            self.c = 0
        self.l = l_new
        return self.l, self.c


@dataclass(frozen=True)
class CommitWaitConfig:
    """``epsilon_s``: the clock bound; ``max_offset_s``: refuse to serve when a measured offset
    to a peer exceeds it (a clock outside its bound breaks the guarantee silently)."""

    epsilon_s: float = 0.004
    max_offset_s: float = 0.5

    def __post_init__(self) -> None:
        check_non_negative("CommitWaitConfig.epsilon_s", self.epsilon_s)
        check_positive("CommitWaitConfig.max_offset_s", self.max_offset_s)
        check_range("CommitWaitConfig.epsilon_s", self.epsilon_s, 0, self.max_offset_s)


class ClockOffsetError(RuntimeError):
    """A peer's clock is further off than the configured maximum."""


class ProductionCommitWait(CommitWait):
    """``CommitWait`` with a validated config, a lock around the timestamp, offset checks that
    stop commits when a clock leaves its bound, logging, and Prometheus metrics."""

    def __init__(self, config: CommitWaitConfig = CommitWaitConfig(), clock: Clock = time.time,
                 sleep: Sleep = time.sleep) -> None:
        super().__init__(TrueTime(config.epsilon_s, clock), sleep)
        self.config = config
        self._lock = threading.Lock()
        self.healthy = True
        self.metrics = Instruments("commit_wait", "Commits through the commit-wait gate")
        self._wait = self.metrics.histogram("wait_seconds", "Commit wait per commit",
                                            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1))

    def observe_offset(self, peer: str, offset_s: float) -> None:
        """Record a measured clock offset to ``peer``; too large stops commits."""
        if abs(offset_s) > self.config.max_offset_s:
            self.healthy = False
            self.metrics.count("offset_exceeded")
            log.error("clock offset to %s is %.3f s, over max_offset_s %.3f s: refusing commits",
                      peer, offset_s, self.config.max_offset_s)

    def assign(self) -> float:
        with self._lock:
            return super().assign()

    def commit(self, apply: Callable[[float], object]) -> tuple[float, float]:
        if not self.healthy:
            self.metrics.count("refused")
            raise ClockOffsetError("a clock offset exceeded max_offset_s: commits are refused")
        s, waited = super().commit(apply)
        self.metrics.count("commits")
        self._wait.observe(waited)
        log.debug("committed at %.6f after waiting %.4f s", s, waited)
        return s, waited
