"""TTL expiry: every cached copy carries a best-before date, and is thrown out when it passes.

Picture the milk in an office fridge. Whoever buys a carton writes the date on it; nobody checks
with the dairy whether the milk has turned, they just pour it until the date, then bin the
carton and buy a new one. A TTL cache does the same with copies of remote data: an entry
written at time t is served until t + TTL without asking the source, so a longer TTL means fewer
trips to the source (a higher hit ratio) and a longer time in which the copy may be out of date
(more stale reads).

``TTLCache`` is the Level 2 cache: a dict of (value, expiry time), expiry checked lazily on
read, reading never extends an entry's life (the TTL counts from the write, as in cachetools,
Redis ``SET ... EX`` and HTTP ``max-age``). It is unbounded on purpose: the TTL already bounds
how long an entry lives, and the lesson measures what the TTL alone does; ``BoundedTTLCache``
adds an LRU size bound from the shared ``LRUCache``. ``ProductionTTLCache`` is the Level 3
read-through version: a validated ``TTLConfig``, jittered TTLs, stale-while-revalidate, a lock,
``logging`` and ``prometheus_client`` metrics. Time is injectable (``clock``), so the same
classes run in real time, under a test's fake clock and inside a simulation.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from patterns.caching.eviction_policies import LRUCache
from patterns.checks import check_non_negative, check_positive, check_range
from patterns.metrics import Instruments

__all__ = ["BoundedTTLCache", "ProductionTTLCache", "TTLCache", "TTLConfig"]

Clock = Callable[[], float]
log = logging.getLogger(__name__)


def _entry_ttl(ttl_s: object) -> float:
    """A per-entry TTL: a float in range passes at once (the hot path), anything else is checked."""
    if type(ttl_s) is float and 0.0 < ttl_s < math.inf:
        return ttl_s
    return check_positive("ttl_s", ttl_s)


class TTLCache:
    """Entries that expire ``ttl_s`` seconds after they were written (never refreshed by a read).

    An entry written at ``t`` is a hit for reads at times in ``[t, t + ttl_s)`` and a miss from
    ``t + ttl_s`` on (the boundary is a miss, as in cachetools' ``TTLCache``). Expired entries are
    dropped when read, or all at once by ``purge``.
    """

    def __init__(self, ttl_s: float, clock: Clock = time.monotonic) -> None:
        self.ttl_s = check_positive("ttl_s", ttl_s)
        self.clock = clock
        self._entries: dict[Hashable, tuple[Any, float]] = {}

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value while it is fresh; ``default`` once it has expired (and it is dropped)."""
        entry = self._entries.get(key)
        if entry is None:
            return default
        value, expires_at = entry
        if self.clock() >= expires_at:
            del self._entries[key]
            return default
        return value

    def put(self, key: Hashable, value: Any, ttl_s: float | None = None) -> None:
        """Store ``value``, fresh for ``ttl_s`` (the cache's TTL unless given) from now."""
        ttl = self.ttl_s if ttl_s is None else _entry_ttl(ttl_s)
        self._entries[key] = (value, self.clock() + ttl)

    def delete(self, key: Hashable) -> bool:
        """Drop ``key`` now (an invalidation); True if it was stored."""
        return self._entries.pop(key, None) is not None

    def expires_at(self, key: Hashable) -> float | None:
        """When ``key``'s entry expires, or None if it is not stored."""
        entry = self._entries.get(key)
        return None if entry is None else entry[1]

    def purge(self) -> int:
        """Drop every expired entry; returns how many went."""
        now = self.clock()
        expired = [key for key, (_, expires_at) in self._entries.items() if now >= expires_at]
        for key in expired:
            del self._entries[key]
        return len(expired)

    def __contains__(self, key: Hashable) -> bool:
        entry = self._entries.get(key)
        return entry is not None and self.clock() < entry[1]

    def __len__(self) -> int:
        """Entries stored, including expired ones not yet read or purged."""
        return len(self._entries)


class BoundedTTLCache(LRUCache):
    """A TTL cache of at most ``capacity`` entries: the shared LRU holds (value, expiry) pairs.

    An entry leaves when it expires (checked on read) or when it is the least recently used of
    a full cache, whichever comes first.
    """

    def __init__(self, capacity: int, ttl_s: float, clock: Clock = time.monotonic) -> None:
        super().__init__(capacity)
        self.ttl_s = check_positive("ttl_s", ttl_s)
        self.clock = clock

    def get(self, key: Hashable, default: Any = None) -> Any:
        entry = super().get(key)
        if entry is None:
            return default
        value, expires_at = entry
        if self.clock() >= expires_at:
            self.delete(key)
            return default
        return value

    def put(self, key: Hashable, value: Any, ttl_s: float | None = None) -> Hashable | None:
        """Store ``value`` fresh for ``ttl_s`` (the cache's TTL unless given); return the key
        evicted to make room, or None."""
        ttl = self.ttl_s if ttl_s is None else _entry_ttl(ttl_s)
        return super().put(key, (value, self.clock() + ttl))


@dataclass(frozen=True)
class TTLConfig:
    """Settings of a production TTL cache.

    ``ttl_s``: the freshness lifetime (HTTP's ``max-age``). ``jitter``: each entry's TTL is drawn
    uniformly from ``[ttl_s * (1 - jitter), ttl_s]``, so entries written together expire apart
    while no entry outlives ``ttl_s``. ``stale_while_revalidate_s``: for this long after expiry a
    read still gets the old value at once while one background load refreshes it (RFC 5861);
    0 turns it off.
    """

    ttl_s: float = 60.0
    jitter: float = 0.1
    stale_while_revalidate_s: float = 0.0

    def __post_init__(self) -> None:
        check_positive("TTLConfig.ttl_s", self.ttl_s)
        check_range("TTLConfig.jitter", self.jitter, 0.0, 1.0, high_open=True)
        check_non_negative("TTLConfig.stale_while_revalidate_s", self.stale_while_revalidate_s)


def _daemon_thread(work: Callable[[], None]) -> None:
    threading.Thread(target=work, daemon=True).start()


class ProductionTTLCache(TTLCache):
    """A read-through TTL cache: ``get(key, load)`` serves, refreshes or loads.

    A fresh entry is a hit. An entry expired less than ``stale_while_revalidate_s`` ago is served
    as it is ("stale") and one background load per key replaces it (``spawn`` runs that load: a
    daemon thread by default, ``lambda work: work()`` in a test or a simulation). Anything older,
    or absent, is loaded in the caller. A background load that fails keeps the old entry and is
    counted and logged; a load in the caller that fails raises. Events are counted in
    ``metrics`` (hit, stale, miss, refresh, refresh_error, load_error); ``load_seconds`` times
    loads and ``age_seconds`` the age of every value served from the cache.
    """

    def __init__(self, name: str, config: TTLConfig | None = None, clock: Clock = time.monotonic,
                 *, seed: int | None = None,
                 spawn: Callable[[Callable[[], None]], None] = _daemon_thread) -> None:
        self.config = config or TTLConfig()
        super().__init__(self.config.ttl_s, clock)
        self.name = name
        self.spawn = spawn
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._refreshing: set[Hashable] = set()
        self._written: dict[Hashable, float] = {}
        self.metrics = Instruments("ttl_cache", "Reads through the TTL cache")
        self._load_seconds = self.metrics.histogram("load_seconds", "Time to load from the source")
        self._age_seconds = self.metrics.histogram(
            "age_seconds", "Age of values served from the cache",
            buckets=(0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600))

    def entry_ttl_s(self) -> float:
        """One entry's TTL, jittered down by at most ``jitter`` of the configured TTL."""
        return self.config.ttl_s * (1.0 - self.config.jitter * self._rng.random())

    def put(self, key: Hashable, value: Any, ttl_s: float | None = None) -> None:
        with self._lock:
            self._written[key] = self.clock()
            super().put(key, value, self.entry_ttl_s() if ttl_s is None else ttl_s)

    def delete(self, key: Hashable) -> bool:
        with self._lock:
            self._written.pop(key, None)
            return super().delete(key)

    def purge(self) -> int:
        with self._lock:
            purged = super().purge()
            for key in [k for k in self._written if k not in self._entries]:
                del self._written[key]
            return purged

    def get(self, key: Hashable, load: Callable[[Hashable], Any]) -> Any:  # type: ignore[override]
        """The value of ``key``: from the cache while fresh (or within the stale window), else
        from ``load(key)``, which is then cached."""
        with self._lock:
            now = self.clock()
            entry = self._entries.get(key)
            state = "miss"
            if entry is not None:
                value, expires_at = entry
                if now < expires_at:
                    state = "hit"
                elif now < expires_at + self.config.stale_while_revalidate_s:
                    state = "stale"
                    refresh = key not in self._refreshing
                    self._refreshing.add(key)
            if state != "miss":
                self._age_seconds.observe(now - self._written[key])
        self.metrics.count(state)
        if state == "hit":
            return value
        if state == "stale":
            if refresh:
                self.spawn(lambda: self._refresh(key, load))
            return value
        try:
            return self._load(key, load)
        except Exception:
            self.metrics.count("load_error")
            raise

    def _load(self, key: Hashable, load: Callable[[Hashable], Any]) -> Any:
        start = time.perf_counter()
        value = load(key)
        self._load_seconds.observe(time.perf_counter() - start)
        self.put(key, value)
        log.debug("%s: loaded %r", self.name, key)
        return value

    def _refresh(self, key: Hashable, load: Callable[[Hashable], Any]) -> None:
        try:
            self._load(key, load)
            self.metrics.count("refresh")
        except Exception as error:  # the old value stays until the stale window closes
            self.metrics.count("refresh_error")
            log.warning("%s: refreshing %r failed (%s); serving the stale value", self.name,
                        key, error)
        finally:
            with self._lock:
                self._refreshing.discard(key)

