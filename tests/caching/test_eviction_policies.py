"""Bounded caches: the shared interface, LRU's order, and agreement with cachetools."""

from __future__ import annotations

import cachetools
import numpy as np
import pytest

from patterns.caching.eviction_policies import EvictingCache, LRUCache
from simulations.caches import replay
from simulations.workloads import ZipfKeys


def test_lru_evicts_the_least_recently_used_key():
    cache = LRUCache(2)
    assert cache.put("a", 1) is None
    cache.put("b", 2)
    assert cache.get("a") == 1          # a is now the most recent
    assert cache.put("c", 3) == "b"     # so b goes
    assert "b" not in cache and len(cache) == 2
    assert cache.get("b", "missing") == "missing"


def test_overwrite_counts_as_a_use_and_membership_does_not():
    cache = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("a", 10)
    assert "b" in cache                 # looking does not refresh b
    assert cache.put("c", 3) == "b"
    assert cache.get("a") == 10


def test_delete_is_an_invalidation():
    cache = LRUCache(2)
    cache.put("a", 1)
    assert cache.delete("a") is True and cache.delete("a") is False
    assert len(cache) == 0


def test_capacity_is_checked():
    with pytest.raises(ValueError, match=r"capacity must be an integer >= 1 \(got 0\)"):
        LRUCache(0)


def test_a_policy_without_a_victim_says_so():
    cache = EvictingCache(1)
    cache.put("a", 1)
    with pytest.raises(NotImplementedError, match="EvictingCache must choose a victim"):
        cache.put("b", 2)


def _cachetools_hits(cache, keys):
    hits = []
    for key in keys:
        hits.append(key in cache)
        if hits[-1]:
            cache[key]
        else:
            cache[key] = True
    return np.array(hits)


def test_lru_agrees_with_cachetools_on_a_zipf_trace():
    keys = ZipfKeys(2000, 0.8).sample(np.random.default_rng(3), 30_000).tolist()
    ours = replay(LRUCache(150), keys)
    theirs = _cachetools_hits(cachetools.LRUCache(150), keys)
    assert (ours == theirs).all() and 0.2 < ours.mean() < 0.6
