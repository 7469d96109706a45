"""Caches in tiers: a small one near the user, a bigger one behind it, the origin at the end.

Picture a chain of shops. A customer asks the corner kiosk (the edge: close, small); if it has
none, the kiosk asks the regional warehouse (the shield: farther, larger), which asks the factory
(the origin) only if it has none either. On the way back each stop keeps a copy, so the next
customer finds it closer. A CDN is that chain: points of presence (PoPs) near users, a shield
tier in front of the origin, and the origin that the whole chain exists to protect.

``TieredCache`` composes the course's bounded caches (``patterns.caching.eviction_policies``):
it looks tier by tier and fills the tiers above on the way back (inclusive), or keeps each key
in one tier only (exclusive: promote on hit, demote on eviction). ``ProductionTieredCache`` adds
a validated config, a lock, logging and per-tier Prometheus metrics. ``RedisTier`` puts a real
Redis server in as one tier. Nothing here imports from ``simulations``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from patterns.caching.eviction_policies import LRUCache
from patterns.checks import check_int
from patterns.metrics import Instruments

__all__ = ["MappingTier", "ProductionTieredCache", "RedisTier", "TierConfig", "TieredCache",
           "TieredConfig"]

log = logging.getLogger(__name__)
Clock = Callable[[], float]
_MISSING = object()


class TieredCache:
    """``tiers`` looked up nearest first, with ``fetch(key)`` (the origin) behind the last one.

    A tier is any cache with ``get(key, default)``, ``put(key, value)``, ``delete(key)`` and
    ``in``: the course's ``EvictingCache`` policies, ``RedisTier``, or an adapter around a
    library cache. ``lookup`` returns the value and the *level* that answered: 0 for the first
    tier, ``len(tiers)`` for the origin; ``answered[level]`` counts them.

    Inclusive (the default, what CDNs do): a hit at level k copies the key into every tier above
    it, and an origin fetch fills every tier. Exclusive (``exclusive=True``): a key lives in one
    tier at a time; a hit below the first tier promotes it to the first (and deletes it where
    it was), an origin fetch fills the first tier only, and a key evicted from tier i is demoted
    into tier i + 1 (the tiers below must be ``EvictingCache`` policies, whose victims can be
    read before they go). Which tier answers depends only on the order of the requests, so no
    clock is needed here; ``ProductionTieredCache`` times its lookups with one.
    """

    def __init__(self, tiers: Sequence[Any], fetch: Callable[[Hashable], Any], *,
                 exclusive: bool = False) -> None:
        check_int("len(tiers)", len(tiers), 1)
        self.tiers = list(tiers)
        self.fetch = fetch
        self.exclusive = bool(exclusive)
        self.answered = [0] * (len(self.tiers) + 1)

    def lookup(self, key: Hashable) -> tuple[Any, int]:
        """The value for ``key`` and the level that answered it (``len(tiers)`` = origin)."""
        value, level = self._find(key)
        if level == len(self.tiers):
            value = self.fetch(key)
        self._fill(key, value, level)
        self.answered[level] += 1
        return value, level

    def get(self, key: Hashable) -> Any:
        """The value for ``key``, from the nearest tier that has it, else from the origin."""
        return self.lookup(key)[0]

    def _find(self, key: Hashable) -> tuple[Any, int]:
        for level, tier in enumerate(self.tiers):
            value = tier.get(key, _MISSING)
            if value is not _MISSING:
                return value, level
        return None, len(self.tiers)

    def _fill(self, key: Hashable, value: Any, level: int) -> None:
        if not self.exclusive:
            for tier in self.tiers[:level]:  # every tier the request passed on its way down
                tier.put(key, value)
            return
        if level == 0:
            return
        if level < len(self.tiers):
            self.tiers[level].delete(key)  # promoted: it now lives in the first tier only
        self._insert(0, key, value)

    def _insert(self, level: int, key: Hashable, value: Any) -> None:
        """Exclusive fill: put into tier ``level``; its victim moves one tier down, and so on."""
        while level < len(self.tiers):
            tier = self.tiers[level]
            victim = None
            if key not in tier and len(tier) >= tier.capacity:
                victim_key = tier._victim()
                victim = victim_key, tier._values[victim_key]
                tier.delete(victim_key)
            tier.put(key, value)
            if victim is None:
                return
            (key, value), level = victim, level + 1


class MappingTier:
    """A library cache that is a mapping (``cachetools.LRUCache``, a dict) as one tier."""

    def __init__(self, mapping: Any) -> None:
        self.mapping = mapping

    def get(self, key: Hashable, default: Any = None) -> Any:
        return self.mapping.get(key, default)

    def put(self, key: Hashable, value: Any) -> None:
        self.mapping[key] = value

    def delete(self, key: Hashable) -> bool:
        return self.mapping.pop(key, _MISSING) is not _MISSING

    def __contains__(self, key: Hashable) -> bool:
        return key in self.mapping


class RedisTier:
    """A Redis server as one tier: ``get``/``put``/``delete`` map to GET/SET/DEL under a prefix.

    Redis evicts by its own ``maxmemory-policy`` (``allkeys-lru`` samples a few keys and evicts
    the oldest of them, an approximation of LRU), so this tier has no ``capacity`` of its own and
    suits inclusive use only. ``client`` is a redis-py client with ``decode_responses=True``.
    """

    def __init__(self, client: Any, prefix: str = "tier:") -> None:
        self.client, self.prefix = client, prefix

    def get(self, key: Hashable, default: Any = None) -> Any:
        value = self.client.get(f"{self.prefix}{key}")
        return default if value is None else value

    def put(self, key: Hashable, value: Any) -> None:
        self.client.set(f"{self.prefix}{key}", value)

    def delete(self, key: Hashable) -> bool:
        return bool(self.client.delete(f"{self.prefix}{key}"))

    def __contains__(self, key: Hashable) -> bool:
        return bool(self.client.exists(f"{self.prefix}{key}"))


@dataclass(frozen=True)
class TierConfig:
    """One tier: its ``name`` (a metric label, e.g. "edge") and ``capacity`` in entries."""

    name: str
    capacity: int

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"TierConfig.name must be a name like 'edge' (got {self.name!r})")
        check_int(f"TierConfig({self.name}).capacity", self.capacity, 1)


@dataclass(frozen=True)
class TieredConfig:
    """The tiers nearest first, and whether they are exclusive (promote on hit)."""

    tiers: tuple[TierConfig, ...]
    exclusive: bool = False

    def __post_init__(self) -> None:
        check_int("TieredConfig.tiers (how many)", len(self.tiers), 1)
        names = [tier.name for tier in self.tiers]
        if len(set(names)) != len(names):
            raise ValueError(f"TieredConfig.tiers must have distinct names (got {names})")
        if self.exclusive:
            return
        for upper, lower in zip(self.tiers, self.tiers[1:], strict=False):
            if lower.capacity <= upper.capacity:
                raise ValueError(
                    f"TieredConfig.tiers: inclusive tier {lower.name!r} must be larger than "
                    f"{upper.name!r} above it (got {lower.capacity} <= {upper.capacity}); it "
                    "would hold only copies of what the tier above already holds")


class ProductionTieredCache(TieredCache):
    """The tiered cache for real traffic: LRU tiers from a validated config, thread-safe,
    logged, with Prometheus metrics per tier.

    The lock guards the tiers, never the origin fetch, so one slow fetch does not stall
    lookups of other keys (two threads missing the same key both fetch it: see the cache
    stampede lesson for coalescing). An origin error is counted, logged and raised, and leaves
    the tiers as they were. ``restart(name)`` empties one tier, as a crashed or redeployed
    server comes back cold. Metrics: ``<prefix>_events_total{event="hit_<tier>" | "origin_fetch"
    | "origin_error" | "restart_<tier>"}``, and the histograms ``<prefix>_lookup_seconds`` and
    ``<prefix>_origin_seconds``.
    """

    def __init__(self, config: TieredConfig, fetch: Callable[[Hashable], Any], *,
                 clock: Clock = time.perf_counter, prefix: str = "tiered_cache") -> None:
        if not isinstance(config, TieredConfig):
            raise ValueError(f"config must be a TieredConfig (got {config!r})")
        super().__init__([LRUCache(t.capacity) for t in config.tiers], fetch,
                         exclusive=config.exclusive)
        self.config, self.clock = config, clock
        self.names = [t.name for t in config.tiers]
        self._lock = threading.Lock()
        self.metrics = Instruments(prefix, "Lookups through the tiered cache")
        self._lookup_seconds = self.metrics.histogram("lookup_seconds", "Time per lookup")
        self._origin_seconds = self.metrics.histogram("origin_seconds", "Time per origin fetch")

    def lookup(self, key: Hashable) -> tuple[Any, int]:
        started = self.clock()
        with self._lock:
            value, level = self._find(key)
        if level == len(self.tiers):
            try:
                value = self.fetch(key)
            except Exception as error:
                self.metrics.count("origin_error")
                log.warning("origin fetch for %r failed: %s", key, error)
                raise
            finally:
                self._origin_seconds.observe(self.clock() - started)
            self.metrics.count("origin_fetch")
        else:
            self.metrics.count(f"hit_{self.names[level]}")
        with self._lock:
            self._fill(key, value, level)
            self.answered[level] += 1
        self._lookup_seconds.observe(self.clock() - started)
        return value, level

    def restart(self, name: str) -> None:
        """Empty the tier called ``name``, as a restarted server comes back with a cold cache."""
        if name not in self.names:
            raise ValueError(f"name must be one of {', '.join(self.names)} (got {name!r})")
        level = self.names.index(name)
        with self._lock:
            self.tiers[level] = LRUCache(self.config.tiers[level].capacity)
        self.metrics.count(f"restart_{name}")
        log.info("tier %s restarted empty (capacity %d)", name, self.config.tiers[level].capacity)

    def hit_ratios(self) -> dict[str, float]:
        """Per tier, the share of the lookups that reached it which it answered."""
        ratios, reached = {}, sum(self.answered)
        for name, answered in zip(self.names, self.answered, strict=False):
            ratios[name] = answered / reached if reached else 0.0
            reached -= answered
        return ratios
