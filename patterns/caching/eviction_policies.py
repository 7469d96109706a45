"""Bounded caches that make room by evicting: the store every caching lesson puts in front.

Picture a small desk beside a big archive. The desk holds a few folders; when a new one must go
on a full desk, one folder goes back to the archive. Which one is the eviction policy: the one
untouched longest (LRU), the one that came first (FIFO), the one used least often (LFU), or any
(RANDOM). ``EvictingCache`` is the desk; a policy is a subclass that says which folder goes.

Every cache here has the same small interface, the one the studies replay key sequences
through: ``get(key, default)`` (a use: a hit updates the policy's order), ``put(key, value)``
(insert or overwrite, returning the evicted key or None), ``delete(key)`` (invalidation),
``key in cache`` and ``len(cache)``, which never count as uses.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from patterns.checks import check_int

__all__ = ["EvictingCache", "LRUCache"]


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
