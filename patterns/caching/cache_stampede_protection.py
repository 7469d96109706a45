"""Cache stampede protection: one recomputation per expiry instead of a herd of them.

Picture a bakery whose "today's bread" sign is taken down at noon. Every customer who walks in
after noon and sees no sign starts baking a loaf of their own, and the oven is full of identical
loaves. Two fixes: the first customer hangs up "baking, back in 10 minutes" and the others wait
for that one loaf (*single-flight*, or request coalescing); or now and then a customer bakes a
little *before* noon, more likely the nearer noon is, so the sign never comes down at all
(*probabilistic early recomputation*, XFetch).

`SingleFlight` is the Level 2 coalescer: callers of ``do(key, fn)`` for the same key share one
call of ``fn`` (Go's ``golang.org/x/sync/singleflight`` ``Group.Do``). `xfetch` is the early
recomputation rule of Vattani, Chierichetti and Lowenstein (PVLDB 8(8), 2015), with the clock
and the random source injectable. `StampedeCache` is the Level 3 cache that combines them with a
lock that has a timeout (a crashed holder blocks nobody for longer), stale values served to the
callers who wait, validated `StampedeConfig`, ``logging`` and ``prometheus_client`` metrics. Its
lock lives in `LocalLocks` (one process) or `RedisLocks` (``SET key token NX PX ms``, shared
by every process). Nothing here imports from ``simulations``.
"""

from __future__ import annotations

import logging
import math
import random
import secrets
import threading
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from patterns.checks import check_non_negative, check_positive
from patterns.metrics import Instruments

T = TypeVar("T")
Clock = Callable[[], float]
log = logging.getLogger(__name__)


def xfetch(now: float, expiry: float, delta: float, beta: float = 1.0,
           rng: Callable[[], float] = random.random) -> bool:
    """Recompute early? True when ``now - delta * beta * ln(u) >= expiry``.

    ``delta`` is how long the last recomputation took, ``beta`` > 1 favours earlier
    recomputation and < 1 later; ``u`` is uniform on (0, 1], taken as ``1 - rng()`` so that
    ``rng`` may be ``random.random`` (uniform on [0, 1)). The chance is exp(-(expiry - now) /
    (beta * delta)): tiny far from expiry, 1 once expired.
    """
    return now - delta * beta * math.log(1.0 - rng()) >= expiry


class _Flight:
    """One computation in progress: its result, once there, and who is waiting for it."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        self.shared = 0  # callers who joined instead of computing

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


class SingleFlight:
    """Callers asking for the same key at the same time share one computation.

    The first caller of ``do(key, fn)`` runs ``fn``; callers arriving while it runs wait for
    it and get the same value (or the same exception). Once it is done the key is forgotten,
    so the next call computes afresh. ``computations`` and ``shared`` count both kinds of call.
    """

    def __init__(self) -> None:
        self._flights: dict[Any, _Flight] = {}
        self._lock = threading.Lock()
        self.computations = self.shared = 0

    def do(self, key: Any, fn: Callable[[], T]) -> T:
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if leader:
                flight = self._flights[key] = _Flight()
                self.computations += 1
            else:
                flight.shared += 1
                self.shared += 1
        if not leader:
            flight.done.wait()
            return flight.result()
        try:
            flight.value = fn()
        except BaseException as error:  # the waiters get the same failure
            flight.error = error
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()
        return flight.result()

    def in_flight(self, key: Any) -> bool:
        with self._lock:
            return key in self._flights


# ---------------------------------------------------------------- production-grade (Level 3)

class Locks(Protocol):
    """A lock per key that expires by itself after ``ttl_s`` (a lease)."""

    def acquire(self, key: str, ttl_s: float) -> str | None: ...
    def release(self, key: str, token: str) -> bool: ...


class LocalLocks:
    """Leases in this process's memory: enough for threads, invisible to other processes."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._held: dict[str, tuple[str, float]] = {}  # key -> (token, expires at)
        self._lock = threading.Lock()

    def acquire(self, key: str, ttl_s: float) -> str | None:
        now = self.clock()
        with self._lock:
            held = self._held.get(key)
            if held is not None and held[1] > now:
                return None
            token = secrets.token_hex(8)
            self._held[key] = (token, now + ttl_s)
            return token

    def release(self, key: str, token: str) -> bool:
        with self._lock:
            if self._held.get(key, ("",))[0] != token:
                return False  # expired and taken by someone else meanwhile: not ours to free
            del self._held[key]
            return True


_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) " \
           "else return 0 end"


class RedisLocks:
    """Leases in Redis, shared by every process: ``SET lock:key token NX PX ms`` takes one,
    a compare-and-delete script frees it only for the holder whose token it still is."""

    def __init__(self, client: Any, prefix: str = "lock:") -> None:
        self.client, self.prefix = client, prefix
        self._release = client.register_script(_RELEASE)

    def acquire(self, key: str, ttl_s: float) -> str | None:
        token = secrets.token_hex(8)
        ok = self.client.set(self.prefix + key, token, nx=True, px=max(1, int(ttl_s * 1000)))
        return token if ok else None

    def release(self, key: str, token: str) -> bool:
        return bool(self._release(keys=[self.prefix + key], args=[token]))


@dataclass(frozen=True)
class Entry:
    """A cached value, when it expires, and how long it took to compute (XFetch's delta)."""

    value: Any
    expires_at: float
    delta: float


@dataclass(frozen=True)
class StampedeConfig:
    """How long values live, how long a recomputation may hold the lock, XFetch's beta
    (0 turns early recomputation off), and how often a caller with nothing to serve looks again."""

    ttl_s: float = 60.0
    lock_timeout_s: float = 5.0
    beta: float = 1.0
    poll_s: float = 0.01

    def __post_init__(self) -> None:
        name = "StampedeConfig."
        check_positive(name + "ttl_s", self.ttl_s)
        check_positive(name + "lock_timeout_s", self.lock_timeout_s)
        check_non_negative(name + "beta", self.beta)
        check_positive(name + "poll_s", self.poll_s)


class StampedeCache:
    """A read-through cache that recomputes each key once per expiry, whoever asks.

    ``get(key, loader)``: a fresh value is returned (and, by XFetch's rule, recomputed a little
    early by the one caller that wins the lock). A missing or expired value is recomputed by the
    caller that wins the lock; the others return the stale value if there is one, else wait
    for the new one, polling the store. The lock is a lease of ``lock_timeout_s``: if its holder
    dies, the lease runs out and the next caller takes over. ``store`` is any mapping of
    key -> `Entry` (a dict here; shared storage across processes in the Redis example).
    """

    def __init__(self, name: str, config: StampedeConfig | None = None, *,
                 locks: Locks | None = None, store: MutableMapping[str, Entry] | None = None,
                 clock: Clock = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 rng: Callable[[], float] = random.random) -> None:
        self.name, self.config = name, config or StampedeConfig()
        self.clock, self.sleep, self.rng = clock, sleep, rng
        self.locks: Locks = locks if locks is not None else LocalLocks(clock)
        self.store: MutableMapping[str, Entry] = store if store is not None else {}
        self.metrics = Instruments("stampede_cache", "Reads through the stampede-protected cache")
        self.recompute_seconds = self.metrics.histogram("recompute_seconds",
                                                        "Time taken by each recomputation")

    def get(self, key: str, loader: Callable[[], T]) -> T:
        self.metrics.count("reads")
        waited = False
        while True:
            entry, now = self.store.get(key), self.clock()
            if entry is not None and now < entry.expires_at:
                early = self.config.beta > 0 and xfetch(now, entry.expires_at, entry.delta,
                                                        self.config.beta, self.rng)
                if early and (token := self.locks.acquire(key, self.config.lock_timeout_s)):
                    self.metrics.count("early_recomputes")
                    return self._recompute(key, loader, token)
                self.metrics.count("hits")
                return entry.value
            token = self.locks.acquire(key, self.config.lock_timeout_s)
            if token is not None:
                fresh = self.store.get(key)
                if fresh is not None and self.clock() < fresh.expires_at:
                    # another caller recomputed and let go between our read and our lock
                    self.locks.release(key, token)
                    self.metrics.count("hits")
                    return fresh.value
                self.metrics.count("misses")
                return self._recompute(key, loader, token)
            if entry is not None:  # someone is recomputing: serve what we have meanwhile
                self.metrics.count("stale")
                return entry.value
            if not waited:
                self.metrics.count("waits")
                waited = True
            self.sleep(self.config.poll_s)

    def _recompute(self, key: str, loader: Callable[[], T], token: str) -> T:
        start = self.clock()
        try:
            value = loader()
        except Exception:
            log.warning("cache %s: recomputing %r failed; the lock is released", self.name, key)
            self.metrics.count("errors")
            raise
        else:
            done = self.clock()
            self.store[key] = Entry(value, done + self.config.ttl_s, done - start)
            self.recompute_seconds.observe(done - start)
            self.metrics.count("recomputes")
            log.info("cache %s: recomputed %r in %.3f s", self.name, key, done - start)
            return value
        finally:
            if not self.locks.release(key, token):
                log.warning("cache %s: the lock on %r had expired before its recomputation "
                            "finished (lock_timeout_s=%g s is too short)", self.name, key,
                            self.config.lock_timeout_s)
