"""Replaying requests through a cache: hits in request order, keys as Python ints."""

from __future__ import annotations

import numpy as np

from patterns.caching.eviction_policies import LRUCache
from simulations.caches import replay


def test_replay_marks_hits_and_fills_on_a_miss():
    cache = LRUCache(2)
    assert replay(cache, [1, 2, 1, 3, 2, 1]).tolist() == [False, False, True, False, False, False]
    assert sorted(cache._values) == [1, 2]


def test_numpy_keys_reach_the_cache_as_ints():
    cache = LRUCache(4)
    replay(cache, np.array([7, 8], dtype=np.int64))
    assert all(type(key) is int for key in cache._values)


def test_a_cached_none_is_a_hit():
    cache = LRUCache(1)
    cache.put("k", None)
    assert replay(cache, ["k"]).tolist() == [True]
