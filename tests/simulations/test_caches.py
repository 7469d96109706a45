"""Replaying requests through a cache: hits in request order, keys as Python ints."""

from __future__ import annotations

import numpy as np
import pytest

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


def test_read_latencies_charge_the_lookup_and_queue_the_misses():
    from simulations.caches import read_latencies
    from simulations.distributions import Deterministic

    times = np.array([0.0, 0.1, 0.2, 0.3])
    hits = np.array([False, False, True, False])
    rng = np.random.default_rng(0)
    # One worker, 1 s per miss: misses at 0.01, 0.11 and 0.31 s start at 0.01, 1.01 and 2.01.
    queued = read_latencies(times, hits, 0.01, Deterministic(1.0), 1, rng)
    assert queued.tolist() == pytest.approx([1.01, 1.91, 0.01, 2.71])
    free = read_latencies(times, hits, 0.01, Deterministic(1.0), None, rng)
    assert free.tolist() == pytest.approx([1.01, 1.01, 0.01, 1.01])
