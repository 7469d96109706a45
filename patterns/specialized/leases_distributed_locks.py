"""Leases and fencing tokens: a lock that expires by itself, and a store that refuses the past.

Picture a library's reading-room key, lent for one hour at a time. The desk writes the loan
down with a loan number; if the borrower never comes back, the key is simply lent again once
the hour (plus a few minutes, in case the borrower's watch runs slow) is over. The room's door
remembers the highest loan number it has seen and will not open for an older one, so a
borrower who fell asleep and comes back late cannot walk in on the next one.

``LeaseLock`` is the desk (grant, renew, release; each grant a larger fencing token; an expired
lease is re-granted only after ``term_s`` plus the drift margin); ``FencedStore`` is the door;
``ProductionLeaseLock`` adds a validated config, a lock around its state, logging and
metrics; ``RedisLease`` is the same lease on a real Redis (``SET key value NX PX``, released
by a compare-and-delete script). Time is injectable (``clock``). Nothing here imports from
``simulations``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from patterns.checks import check_positive, check_range
from patterns.metrics import Instruments

__all__ = ["FencedStore", "Lease", "LeaseConfig", "LeaseLock", "ProductionLeaseLock",
           "RedisLease", "StaleTokenError", "drift_margin_s", "holder_deadline_s"]

Clock = Callable[[], float]
log = logging.getLogger(__name__)


def drift_margin_s(term_s: float, drift: float) -> float:
    """How long past the term the server waits when any clock may run up to ``drift`` fast or
    slow: ``term_s * 2 drift / (1 - drift)``.

    A holder counting ``term_s`` on a clock running at ``1 - drift`` stops ``term_s / (1 -
    drift)`` real seconds after it started; a server counting ``term_s + margin`` on a clock
    running at ``1 + drift`` waits ``(term_s + margin) / (1 + drift)`` real seconds; the margin
    makes the second at least the first.
    """
    return term_s * 2.0 * drift / (1.0 - drift)


def holder_deadline_s(sent_s: float, term_s: float, guard_s: float = 0.0) -> float:
    """When a holder must stop using a lease, by its own clock: counted from when it *sent*
    the request (the grant happened later), less ``guard_s`` for the write still in flight."""
    return sent_s + term_s - guard_s


@dataclass(frozen=True)
class Lease:
    """A granted lease: who holds it, its fencing token, and when the server lets it lapse."""

    holder: str
    token: int
    expires_s: float


class LeaseLock:
    """One lock lent for ``term_s`` at a time; an expired lease is given to someone else only
    after ``term_s + drift_margin_s(term_s, drift)`` since its last grant or renewal."""

    def __init__(self, term_s: float, drift: float = 0.0, clock: Clock = time.monotonic) -> None:
        self.term_s, self.drift, self.clock = term_s, drift, clock
        self.margin_s = drift_margin_s(term_s, drift)
        self.lease: Lease | None = None
        self.token = 0

    def _free(self, now: float) -> bool:
        return self.lease is None or now >= self.lease.expires_s + self.margin_s

    def acquire(self, holder: str) -> Lease | None:
        """A new lease with the next token if the lock is free (or its lease has lapsed past
        the margin); the holder's own lease renewed if it holds it; else None."""
        now = self.clock()
        if self.lease is not None and self.lease.holder == holder and not self._free(now):
            return self._extend(self.lease, now)
        if not self._free(now):
            return None
        self.token += 1
        self.lease = Lease(holder, self.token, now + self.term_s)
        return self.lease

    def renew(self, lease: Lease) -> Lease | None:
        """The same lease for another term, if it is still the current one and not expired."""
        return self._extend(lease, self.clock())

    def _extend(self, lease: Lease, now: float) -> Lease | None:
        if self.lease != lease or now >= lease.expires_s:
            return None
        self.lease = Lease(lease.holder, lease.token, now + self.term_s)
        return self.lease

    def release(self, lease: Lease) -> bool:
        """Give the lock back at once (a clean hand-over needs no wait); False if not current."""
        if self.lease is None or self.lease.token != lease.token:
            return False
        self.lease = None
        return True


class StaleTokenError(Exception):
    """A write carried a fencing token older than one the store has already accepted."""


class FencedStore:
    """A store that accepts a write only if its token is at least the highest it has seen."""

    def __init__(self) -> None:
        self.highest = 0
        self.log: list[tuple[int, Any]] = []

    def write(self, token: int, value: Any) -> None:
        if token < self.highest:
            raise StaleTokenError(f"token {token} is older than {self.highest}: the lease it came "
                                  f"from has been given to someone else")
        self.highest = token
        self.log.append((token, value))


@dataclass(frozen=True)
class LeaseConfig:
    """``term_s``: how long a grant lasts; ``drift``: the bound on clock rate error (0.001 is
    0.1 %, i.e. 1 ms per second), which sets the margin the server waits past the term."""

    term_s: float = 10.0
    drift: float = 0.001

    def __post_init__(self) -> None:
        check_positive("LeaseConfig.term_s", self.term_s)
        check_range("LeaseConfig.drift", self.drift, 0.0, 1.0, high_open=True)


class ProductionLeaseLock(LeaseLock):
    """The Level 2 lock, thread-safe, logged and metered: grants, renewals, refusals,
    releases and take-overs of lapsed leases, and how long each holder kept the lock."""

    def __init__(self, config: LeaseConfig | None = None, clock: Clock = time.monotonic) -> None:
        self.config = config or LeaseConfig()
        super().__init__(self.config.term_s, self.config.drift, clock)
        self._lock = threading.Lock()
        self._since: float | None = None
        self.metrics = Instruments("lease_lock", "Lease operations")
        self._held = self.metrics.histogram("held_seconds", "How long each holder kept the lock",
                                            buckets=(0.1, 0.5, 1, 5, 10, 30, 60, 300))

    def acquire(self, holder: str) -> Lease | None:
        with self._lock:
            before = self.lease
            lease = super().acquire(holder)
            if lease is None:
                self.metrics.count("refused")
            elif before is not None and lease.token == before.token:
                self.metrics.count("renewed")
            else:
                if before is not None:
                    self.metrics.count("taken_over")
                    self._end_hold()
                    log.warning("lease %d of %s lapsed; token %d to %s", before.token,
                                before.holder, lease.token, holder)
                self.metrics.count("granted")
                self._since = self.clock()
            return lease

    def renew(self, lease: Lease) -> Lease | None:
        with self._lock:
            renewed = super().renew(lease)
            self.metrics.count("renewed" if renewed else "renew_refused")
            return renewed

    def release(self, lease: Lease) -> bool:
        with self._lock:
            released = super().release(lease)
            if released:
                self.metrics.count("released")
                self._end_hold()
            return released

    def _end_hold(self) -> None:
        if self._since is not None:
            self._held.observe(self.clock() - self._since)
            self._since = None


_RELEASE = """if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0"""


class RedisLease:
    """A lease on a real Redis: ``SET key token NX PX term`` takes it, a Lua script deletes it
    only if it still holds our random token (so we never release someone else's lease)."""

    def __init__(self, client: Any, key: str, term_s: float) -> None:
        self.client, self.key = client, key
        self.term_ms = int(check_positive("RedisLease.term_s", term_s) * 1000)
        self._release = client.register_script(_RELEASE)

    def acquire(self, token: str) -> bool:
        return bool(self.client.set(self.key, token, nx=True, px=self.term_ms))

    def release(self, token: str) -> bool:
        return bool(self._release(keys=[self.key], args=[token]))
