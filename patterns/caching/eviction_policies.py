"""Bounded caches that make room by evicting: the store every caching lesson puts in front.

Picture a small desk beside a big archive. The desk holds a few folders; when a new one must go
on a full desk, one folder goes back to the archive. Which one is the eviction policy: the one
untouched longest (LRU), the one that came first (FIFO), the one used least often (LFU), or any
(RANDOM), or the newcomer itself unless it has been asked for more often lately than the folder
it would push out (W-TinyLFU). ``EvictingCache`` is the desk; a policy is a subclass that says
which folder goes, and ``GuardedCache`` puts a lock and a meter on any of them.

Every cache here has the same small interface, the one the studies replay key sequences
through: ``get(key, default)`` (a use: a hit updates the policy's order), ``put(key, value)``
(insert or overwrite, returning the evicted key or None), ``delete(key)`` (invalidation),
``key in cache`` and ``len(cache)``, which never count as uses.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from patterns.checks import check_choice, check_int, check_range
from patterns.metrics import Instruments

__all__ = ["POLICY_NAMES", "EvictingCache", "FIFOCache", "FrequencySketch", "GuardedCache",
           "LFUCache", "LRUCache", "RandomCache", "WTinyLFUCache", "make_cache"]

_MISSING = object()


class EvictingCache:
    """A cache of at most ``capacity`` entries; subclasses choose the victim.

    A policy overrides the hooks: ``_used(key)`` after a hit or an overwrite, ``_admitted(key)``
    after an insert, ``_victim()`` for the key to evict from a full cache, ``_forgotten(key)``
    after a key leaves (evicted or deleted). The values live in ``self._values``, a dict the
    policy may replace in ``_new_store`` (LRU keeps them in an ``OrderedDict``).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = check_int("capacity", capacity, 1)
        self._values: dict[Hashable, Any] = self._new_store()

    def _new_store(self) -> dict[Hashable, Any]:
        return {}

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The cached value, or ``default`` on a miss; a hit counts as a use of ``key``."""
        try:
            value = self._values[key]
        except KeyError:
            return default
        self._used(key)
        return value

    def put(self, key: Hashable, value: Any) -> Hashable | None:
        """Store ``value`` under ``key``; return the key evicted to make room, or None."""
        if key in self._values:
            self._values[key] = value
            self._used(key)
            return None
        evicted = None
        if len(self._values) >= self.capacity:
            evicted = self._victim()
            del self._values[evicted]
            self._forgotten(evicted)
        self._values[key] = value
        self._admitted(key)
        return evicted

    def delete(self, key: Hashable) -> bool:
        """Drop ``key`` (an invalidation); True if it was cached."""
        if key not in self._values:
            return False
        del self._values[key]
        self._forgotten(key)
        return True

    def __contains__(self, key: Hashable) -> bool:
        return key in self._values

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(capacity={self.capacity}, size={len(self)})"

    def _used(self, key: Hashable) -> None:
        pass

    def _admitted(self, key: Hashable) -> None:
        pass

    def _forgotten(self, key: Hashable) -> None:
        pass

    def _victim(self) -> Hashable:
        raise NotImplementedError(f"{type(self).__name__} must choose a victim (_victim)")


class LRUCache(EvictingCache):
    """Evicts the least recently used key: the values sit in use order, oldest first."""

    def _new_store(self) -> OrderedDict:
        return OrderedDict()

    def _used(self, key: Hashable) -> None:
        self._values.move_to_end(key)

    def _victim(self) -> Hashable:
        return next(iter(self._values))


class FIFOCache(EvictingCache):
    """Evicts the key that came in first: a hit changes nothing (a dict keeps insertion order)."""

    def _victim(self) -> Hashable:
        return next(iter(self._values))


class LFUCache(EvictingCache):
    """Evicts the least frequently used key; among equals, the one that reached its count first.

    Keys sit in one bucket per use count (``count -> keys in the order they got there``), so a
    use moves a key one bucket up and the victim is the oldest key of the lowest bucket, both
    in O(1), the layout and tie-break of ``cachetools.LFUCache``. An evicted key's count is
    forgotten ("in-cache" LFU) unless ``keep_counts``: then counts are kept for every key ever
    seen, which approaches perfect LFU at the price of memory for the whole catalogue.
    """

    def __init__(self, capacity: int, keep_counts: bool = False) -> None:
        super().__init__(capacity)
        self.keep_counts = keep_counts
        self.counts: dict[Hashable, int] = {}
        self._buckets: dict[int, dict[Hashable, None]] = {}
        self._lowest = 1

    def _move(self, key: Hashable, count: int) -> None:
        self.counts[key] = count
        self._buckets.setdefault(count, {})[key] = None

    def _leave_bucket(self, key: Hashable) -> None:
        count = self.counts[key]
        bucket = self._buckets[count]
        del bucket[key]
        if not bucket:
            del self._buckets[count]

    def _used(self, key: Hashable) -> None:
        self._leave_bucket(key)
        count = self.counts[key]
        if count == self._lowest and count not in self._buckets:
            self._lowest = count + 1
        self._move(key, count + 1)

    def _admitted(self, key: Hashable) -> None:
        count = self.counts.get(key, 0) + 1
        self._move(key, count)
        self._lowest = min(self._lowest, count)

    def _victim(self) -> Hashable:
        if self._lowest not in self._buckets:
            self._lowest = min(self._buckets)
        return next(iter(self._buckets[self._lowest]))

    def _forgotten(self, key: Hashable) -> None:
        self._leave_bucket(key)
        if not self.keep_counts:
            del self.counts[key]


class RandomCache(EvictingCache):
    """Evicts a key chosen at random by ``rng`` (a ``random.Random``; seeded 0 by default).

    The keys also sit in a list (removal swaps the last key into the gap) so that a choice
    costs O(1); with the same ``rng``, ``cachetools.RRCache(choice=rng.choice)`` picks the same
    victims.
    """

    def __init__(self, capacity: int, rng: random.Random | None = None) -> None:
        super().__init__(capacity)
        self.rng = random.Random(0) if rng is None else rng
        self._keys: list[Hashable] = []
        self._index: dict[Hashable, int] = {}

    def _admitted(self, key: Hashable) -> None:
        self._index[key] = len(self._keys)
        self._keys.append(key)

    def _victim(self) -> Hashable:
        return self.rng.choice(self._keys)

    def _forgotten(self, key: Hashable) -> None:
        index, last = self._index.pop(key), self._keys.pop()
        if last != key:
            self._keys[index], self._index[last] = last, index


class FrequencySketch:
    """How often each key was seen lately, in a fixed, small table (a count-min sketch).

    Four rows of ``width`` counters (a power of two up to 2**16); a key adds one to a counter in
    each row, at four slices of one mixed 64-bit hash, and its estimate is the smallest of its
    four counters, so a collision can only overestimate. Counters stop at 15 (4 bits in
    TinyLFU), and after ``sample_size`` additions every counter is halved, so old popularity
    fades (TinyLFU's reset). Keys are hashed with ``hash``: the same in every run for ints, per
    process for strings.
    """

    def __init__(self, width: int, sample_size: int) -> None:
        self.width = 1 << (check_int("width", width, 1, 1 << 16) - 1).bit_length()
        self.sample_size = check_int("sample_size", sample_size, 1)
        self.rows = [[0] * self.width for _ in range(4)]
        self.additions = 0

    def _slots(self, key: Hashable) -> tuple[int, int, int, int]:
        mixed, mask = (hash(key) * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF, self.width - 1
        return mixed & mask, (mixed >> 16) & mask, (mixed >> 32) & mask, (mixed >> 48) & mask

    def add(self, key: Hashable) -> None:
        """Count one more request for ``key``; halve everything every ``sample_size`` adds."""
        for row, slot in zip(self.rows, self._slots(key), strict=True):
            if row[slot] < 15:
                row[slot] += 1
        self.additions += 1
        if self.additions >= self.sample_size:
            self.additions //= 2
            self.rows = [[count >> 1 for count in row] for row in self.rows]

    def estimate(self, key: Hashable) -> int:
        """Requests for ``key`` lately (an overestimate only where keys collide)."""
        a, b, c, d = self._slots(key)
        rows = self.rows
        return min(rows[0][a], rows[1][b], rows[2][c], rows[3][d])


class WTinyLFUCache(EvictingCache):
    """W-TinyLFU: a small LRU window in front of a main LRU, and a frequency sketch at the door.

    Every new key enters the window (``window_share`` of the capacity, at least one entry). When
    the window is full, its oldest key is a candidate for the main region and competes with the
    main region's LRU victim: the one the sketch has seen more often lately stays, the other is
    evicted (a tie evicts the candidate). A one-off key (a scan) thus passes through the window
    without pushing out keys that are used again and again. Einziger, Friedman and Manes, ACM
    TOS 2017; Caffeine's main region is a segmented LRU, a plain LRU here.
    """

    def __init__(self, capacity: int, window_share: float = 0.01,
                 sample_factor: int = 10) -> None:
        super().__init__(capacity)
        share = check_range("window_share", window_share, 0.0, 1.0, high_open=True)
        self.window_capacity = max(1, round(share * self.capacity))
        self.sketch = FrequencySketch(width=min(1 << 16, max(16, 4 * self.capacity)),
                                      sample_size=check_int("sample_factor", sample_factor, 1)
                                      * self.capacity)
        self.window: OrderedDict[Hashable, None] = OrderedDict()
        self.main: OrderedDict[Hashable, None] = OrderedDict()
        self.rejected = 0

    def _used(self, key: Hashable) -> None:
        self.sketch.add(key)
        (self.window if key in self.window else self.main).move_to_end(key)

    def _admitted(self, key: Hashable) -> None:
        self.sketch.add(key)
        self.window[key] = None
        main_room = self.capacity - self.window_capacity - len(self.main)
        while len(self.window) > self.window_capacity and main_room > 0:
            self.main[self.window.popitem(last=False)[0]] = None
            main_room -= 1

    def _victim(self) -> Hashable:
        if len(self.window) < self.window_capacity or not self.main:
            return next(iter(self.window or self.main))
        candidate, victim = next(iter(self.window)), next(iter(self.main))
        if self.sketch.estimate(candidate) > self.sketch.estimate(victim):
            del self.window[candidate]
            self.main[candidate] = None
            return victim
        self.rejected += 1
        return candidate

    def _forgotten(self, key: Hashable) -> None:
        (self.window if key in self.window else self.main).pop(key)


POLICY_NAMES = ("lru", "fifo", "lfu", "random", "w-tinylfu")


def make_cache(policy: str, capacity: int, **options: Any) -> EvictingCache:
    """A cache by policy name (one of ``POLICY_NAMES``); ``options`` go to its class
    (``rng`` for random, ``keep_counts`` for lfu, ``window_share`` for w-tinylfu)."""
    classes = dict(zip(POLICY_NAMES, (LRUCache, FIFOCache, LFUCache, RandomCache, WTinyLFUCache),
                       strict=True))
    return classes[check_choice("policy", policy, POLICY_NAMES)](capacity, **options)


class GuardedCache:
    """Any policy's cache made safe to share and to watch: a lock, metrics and logging.

    One lock around each operation (the policies' bookkeeping is not thread-safe); counters
    ``cache_events_total{event=hit|miss|put|eviction|delete}`` and a histogram of how long each
    evicted key had gone unused (``cache_evicted_idle_seconds``: for LRU this is Che's
    characteristic time, measured) in a registry of its own; evictions logged at DEBUG.
    ``clock`` is injectable (``time.monotonic`` by default; a request counter in a replay).
    """

    def __init__(self, cache: EvictingCache, name: str = "cache",
                 clock: Callable[[], float] = time.monotonic,
                 idle_buckets: Sequence[float] = (0.01, 0.1, 1, 10, 100, 1000, 10_000)) -> None:
        if not isinstance(cache, EvictingCache):
            raise ValueError(f"cache must be an EvictingCache (got {type(cache).__name__})")
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"name must be an identifier, as metric names need (got {name!r})")
        self.cache, self.name, self.clock = cache, name, clock
        self._lock = threading.Lock()
        self._last_used: dict[Hashable, float] = {}
        self.metrics = Instruments(name, f"Requests to the {name} cache")
        self._idle = self.metrics.histogram("evicted_idle_seconds",
                                            "Time an evicted key had gone unused", idle_buckets)
        self._log = logging.getLogger(__name__)

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The cached value (a hit) or ``default`` (a miss)."""
        with self._lock:
            value = self.cache.get(key, _MISSING)
            if value is _MISSING:
                self.metrics.count("miss")
                return default
            self._last_used[key] = self.clock()
        self.metrics.count("hit")
        return value

    def put(self, key: Hashable, value: Any) -> Hashable | None:
        """Store ``value``; returns the evicted key, if any."""
        with self._lock:
            now = self.clock()
            evicted = self.cache.put(key, value)
            self._last_used[key] = now
            idle = None if evicted is None else now - self._last_used.pop(evicted)
        self.metrics.count("put")
        if idle is not None:
            self.metrics.count("eviction")
            self._idle.observe(idle)
            self._log.debug("%s evicted %r after %.3g s unused", self.name, evicted, idle)
        return evicted

    def delete(self, key: Hashable) -> bool:
        """Invalidate ``key``; True if it was cached."""
        with self._lock:
            found = self.cache.delete(key)
            self._last_used.pop(key, None)
        if found:
            self.metrics.count("delete")
        return found

    def __contains__(self, key: Hashable) -> bool:
        return key in self.cache

    def __len__(self) -> int:
        return len(self.cache)

    @property
    def hit_ratio(self) -> float:
        """Hits over hits and misses so far (0 before the first request)."""
        counts = self.metrics.counts
        requests = counts["hit"] + counts["miss"]
        return counts["hit"] / requests if requests else 0.0
