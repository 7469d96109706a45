"""Cache-aside: the application looks in the cache first and fills it itself from the database.

Picture a cook with a small fridge beside the stove and a walk-in store down the corridor. For
each dish she looks in the fridge first; if the ingredient is not there she walks to the store,
brings it back and puts some in the fridge for next time. When a delivery changes what is in the
store, she throws the fridge's old copy out rather than trying to keep it in step: the next dish
will fetch the new one. The fridge never talks to the store; the cook does both trips.

That is cache-aside (also *look-aside*): reads go to the cache, and on a miss the application
loads the value from the database and fills the cache; writes go to the database, then delete
the cache's entry (an *invalidation*), so the next read loads the new value.

`CacheAside` is the lesson's Level 2 class, over any store with the shared cache interface
(``get(key, default)``, ``put(key, value)``, ``delete(key)``: the course's `LRUCache`, or
`RedisStore` for a real Redis). Entries carry their expiry time, read from an injectable
``clock``, so the same class runs in real time and in a simulation. With ``leases=True`` a fill
that an invalidation overtook is dropped (the stale-fill race; Facebook's memcache leases).
`ProductionCacheAside` hardens it for Level 3: a validated `CacheAsideConfig`, a lock, logging,
prometheus counters and a load-latency histogram, and reads that survive a broken cache.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from patterns.checks import check_positive
from patterns.metrics import Instruments

Clock = Callable[[], float]
Loader = Callable[[Hashable], Any]
Saver = Callable[[Hashable, Any], None]
log = logging.getLogger(__name__)

_MISSING = object()


class CacheAside:
    """Read: cache, else ``load(key)`` and fill. Write: ``save(key, value)``, then invalidate.

    ``cache`` is any store with ``get(key, default)``, ``put(key, value)`` and ``delete(key)``.
    An entry is ``(value, expires_at)``; ``ttl_s=None`` keeps it until it is evicted or
    invalidated. ``leases=True`` takes a lease (a fresh token under ``lease_key(key)``) on a miss,
    an invalidation deletes it, and the fill goes in only if the lease is still there.
    ``hits``, ``misses`` and ``stale_fills_refused`` count what happened.
    """

    def __init__(self, cache: Any, load: Loader, save: Saver, *, ttl_s: float | None = None,
                 leases: bool = False, clock: Clock = time.monotonic) -> None:
        self.cache, self.load, self.save = cache, load, save
        self.ttl_s = None if ttl_s is None else check_positive("ttl_s", ttl_s)
        self.leases, self.clock = leases, clock
        self.hits = self.misses = self.stale_fills_refused = 0
        self._tokens = itertools.count(1)

    @staticmethod
    def lease_key(key: Hashable) -> str:
        return f"lease:{key}"

    def get(self, key: Hashable) -> Any:
        """The value for ``key``: the cached one if live, else loaded and cached."""
        entry = self.cache.get(key, _MISSING)
        if entry is not _MISSING and entry[1] > self.clock():
            self.hits += 1
            return entry[0]
        self.misses += 1
        token = self._take_lease(key)
        value = self.load(key)
        self.fill(key, value, token)
        return value

    def set(self, key: Hashable, value: Any) -> None:
        """Write ``value`` to the database first, then invalidate the cached copy (and lease)."""
        self.save(key, value)
        self.invalidate(key)

    def invalidate(self, key: Hashable) -> None:
        self.cache.delete(key)
        if self.leases:
            self.cache.delete(self.lease_key(key))

    def fill(self, key: Hashable, value: Any, token: int | None = None) -> bool:
        """Cache ``value`` after a miss; with leases only while the miss's lease holds."""
        if self.leases:
            if self.cache.get(self.lease_key(key), None) != token:
                self.stale_fills_refused += 1
                return False
            self.cache.delete(self.lease_key(key))
        expires_at = math.inf if self.ttl_s is None else self.clock() + self.ttl_s
        self.cache.put(key, (value, expires_at))
        return True

    def _take_lease(self, key: Hashable) -> int | None:
        if not self.leases:
            return None
        token = next(self._tokens)
        self.cache.put(self.lease_key(key), token)
        return token


class RedisStore:
    """The shared cache interface over a redis-py client: values as JSON under ``prefix + key``.

    Eviction is the server's (``maxmemory`` with ``maxmemory-policy allkeys-lru``), so ``put``
    never names an evicted key. The client must decode responses (``decode_responses=True``).
    """

    def __init__(self, client: Any, prefix: str = "") -> None:
        self.client, self.prefix = client, prefix

    def get(self, key: Hashable, default: Any = None) -> Any:
        raw = self.client.get(f"{self.prefix}{key}")
        return default if raw is None else json.loads(raw)

    def put(self, key: Hashable, value: Any) -> None:
        self.client.set(f"{self.prefix}{key}", json.dumps(value))

    def delete(self, key: Hashable) -> bool:
        return bool(self.client.delete(f"{self.prefix}{key}"))


# ---------------------------------------------------------------- production-grade (Level 3)

@dataclass(frozen=True)
class CacheAsideConfig:
    """Settings of a production cache-aside: a TTL bounds how long any stale entry can live
    (None: no bound), and leases drop fills that an invalidation overtook."""

    ttl_s: float | None = 300.0
    leases: bool = True

    def __post_init__(self) -> None:
        if self.ttl_s is not None:
            check_positive("CacheAsideConfig.ttl_s", self.ttl_s)
        if not isinstance(self.leases, bool):
            raise ValueError(f"CacheAsideConfig.leases must be True or False (got {self.leases!r})")


class ProductionCacheAside(CacheAside):
    """The Level 2 class hardened: validated config, thread-safe, logged, measured.

    The lock guards the cache calls and counters, never the database call, so a slow load does
    not serialise the readers. A cache that raises (down, timing out) is logged and counted and
    the read goes to the database: the cache is an optimisation, never a new way to fail. A load
    that raises is counted and propagates, and nothing is cached for it.
    """

    def __init__(self, name: str, cache: Any, load: Loader, save: Saver,
                 config: CacheAsideConfig | None = None, clock: Clock = time.monotonic) -> None:
        self.name, self.config = name, config or CacheAsideConfig()
        super().__init__(cache, load, save, ttl_s=self.config.ttl_s, leases=self.config.leases,
                         clock=clock)
        self.metrics = Instruments("cache_aside", "Reads and writes through the cache")
        self.load_seconds = self.metrics.histogram("load_seconds", "Database loads on a miss")
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        try:
            with self._lock:
                entry = self.cache.get(key, _MISSING)
                if entry is not _MISSING and entry[1] > self.clock():
                    self.hits += 1
                    self.metrics.count("hits")
                    return entry[0]
                self.misses += 1
                self.metrics.count("misses")
                token = self._take_lease(key)
        except Exception as error:  # the cache is down: serve from the database
            self.metrics.count("cache_errors")
            log.warning("cache %s: get(%r) failed (%s); reading the database", self.name, key,
                        error)
            return self._load(key)
        value = self._load(key)
        try:
            with self._lock:
                filled = self.fill(key, value, token)
        except Exception as error:
            self.metrics.count("cache_errors")
            log.warning("cache %s: fill(%r) failed (%s)", self.name, key, error)
        else:
            self.metrics.count("fills" if filled else "stale_fills_refused")
            if not filled:
                log.info("cache %s: fill of %r refused, an invalidation overtook it",
                         self.name, key)
        return value

    def set(self, key: Hashable, value: Any) -> None:
        self.save(key, value)  # a failed database write raises before the cache is touched
        self.metrics.count("writes")
        try:
            with self._lock:
                self.invalidate(key)
        except Exception as error:
            self.metrics.count("cache_errors")
            log.error("cache %s: invalidate(%r) failed (%s); the entry may be stale until its "
                      "TTL", self.name, key, error)
            raise

    def _load(self, key: Hashable) -> Any:
        start = self.clock()
        try:
            value = self.load(key)
        except Exception:
            self.metrics.count("load_errors")
            log.error("cache %s: loading %r from the database failed", self.name, key)
            raise
        self.load_seconds.observe(max(self.clock() - start, 0.0))
        return value
