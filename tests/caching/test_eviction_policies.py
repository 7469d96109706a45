"""Bounded caches: the shared interface, each policy's order, agreement with cachetools, the
closed forms (Che, perfect LFU) against replayed traces, and Redis's sampled LRU."""

from __future__ import annotations

import random

import cachetools
import numpy as np
import pytest
from concurrently import run_concurrently

from patterns.caching.eviction_policies import (
    POLICY_NAMES,
    EvictingCache,
    FIFOCache,
    FrequencySketch,
    GuardedCache,
    LFUCache,
    LRUCache,
    RandomCache,
    WTinyLFUCache,
    make_cache,
)
from simulations.caches import replay
from simulations.caching import eviction_policies as study
from simulations.theory import che_hit_ratio
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


# --- FIFO, LFU, RANDOM and W-TinyLFU ----------------------------------------------------------


def test_fifo_ignores_hits():
    cache = FIFOCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1          # a hit does not save a
    assert cache.put("c", 3) == "a"


def test_lfu_evicts_the_least_used_and_breaks_ties_by_age():
    cache = LFUCache(3)
    for key in "abc":
        cache.put(key, key)
    cache.get("a")
    cache.get("b")
    assert cache.put("d", "d") == "c"   # c was used once, a and b twice
    assert cache.put("e", "e") == "d"   # d (once) goes before a and b
    cache.get("e")
    assert cache.put("f", "f") == "a"   # a, b, e all twice: a got there first
    assert cache.counts == {"b": 2, "e": 2, "f": 1}


def test_lfu_with_kept_counts_remembers_evicted_keys():
    cache = LFUCache(1, keep_counts=True)
    cache.put("a", 1)
    cache.get("a")
    cache.put("b", 2)                   # a evicted with 2 uses
    cache.put("a", 1)                   # back with its history
    assert cache.counts["a"] == 3 and "b" not in cache


def test_lfu_after_a_delete_still_finds_the_lowest_count():
    cache = LFUCache(2)
    cache.put("a", 1)
    cache.get("a")
    cache.put("b", 2)
    assert cache.delete("b")
    cache.put("c", 3)
    cache.get("c")
    cache.get("c")
    assert cache.put("d", 4) == "a"     # a (2 uses) before c (3)


def test_random_eviction_is_seeded():
    def victims(seed):
        cache = RandomCache(5, random.Random(seed))
        return [cache.put(k, k) for k in range(40)]

    assert victims(1) == victims(1) and victims(1) != victims(2)
    assert set(victims(1)[5:]) <= set(range(40))


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda: FIFOCache(150), lambda: cachetools.FIFOCache(150)),
        (lambda: LFUCache(150), lambda: cachetools.LFUCache(150)),
        (lambda: RandomCache(150, random.Random(4)),
         lambda: cachetools.RRCache(150, choice=random.Random(4).choice)),
    ],
    ids=["fifo", "lfu", "random"],
)
def test_policies_agree_with_cachetools_on_a_zipf_trace(ours, theirs):
    keys = ZipfKeys(2000, 0.8).sample(np.random.default_rng(3), 30_000).tolist()
    mine = replay(ours(), keys)
    assert (mine == _cachetools_hits(theirs(), keys)).all() and 0.2 < mine.mean() < 0.6


def test_the_sketch_counts_fades_and_caps():
    sketch = FrequencySketch(width=64, sample_size=100)
    assert sketch.width == 64 and FrequencySketch(50, 10).width == 64
    for _ in range(20):
        sketch.add(7)
    assert sketch.estimate(7) == 15     # 4-bit counters stop at 15
    assert sketch.estimate(8) <= 15
    for key in range(100, 180):         # 100 additions in all: everything is halved
        sketch.add(key)
    assert sketch.estimate(7) == 7 and sketch.additions == 50


def test_w_tinylfu_keeps_hot_keys_through_a_scan():
    cache = WTinyLFUCache(10, window_share=0.1)
    for _ in range(5):
        for key in range(9):
            cache.put(key, key) if key not in cache else cache.get(key)
    for key in range(1000, 1100):       # a scan of 100 one-off keys
        cache.put(key, key)
    assert all(key in cache for key in range(9)) and cache.rejected >= 99
    assert len(cache) == 10 and cache.window_capacity == 1


# Che against the replayed FIFO and RANDOM caches, and perfect LFU against LFU with every key's
# count kept. Method as in tests/simulations/test_cache_theory.py: 120,000 Zipf(0.8) requests
# over 5,000 keys, the first 30,000 warm the cache, n = 90,000 measured. Binomial standard error
# √(h(1 − h)/n) ≤ 0.0017; the cache state correlates requests, so 0.008 absolute (over four
# such errors) plus 3 % relative for the approximation itself (Martina et al. report errors of
# a few per cent at this catalogue size).
THEORY_KEYS, THEORY_REQUESTS, THEORY_WARMUP = 5_000, 120_000, 30_000


@pytest.fixture(scope="module")
def irm_trace():
    popularity = ZipfKeys(THEORY_KEYS, 0.8)
    return popularity, popularity.sample(np.random.default_rng(8), THEORY_REQUESTS)


@pytest.mark.parametrize("capacity", [50, 500])
@pytest.mark.parametrize("policy", ["FIFO", "RANDOM"])
def test_che_predicts_fifo_and_random(irm_trace, policy, capacity):
    popularity, keys = irm_trace
    measured = study.hit_ratio(policy, capacity, keys, THEORY_WARMUP)
    predicted = che_hit_ratio(popularity.probabilities, capacity, "fifo")
    assert measured == pytest.approx(predicted, abs=0.008, rel=0.03)


@pytest.mark.parametrize("capacity", [50, 500])
def test_lfu_with_every_count_kept_reaches_perfect_lfu(irm_trace, capacity):
    # It holds the top C − 1 keys plus the latest miss, so the bound is top_share(C) less at
    # most the C-th key's share p_C, within the same 0.008 sampling tolerance.
    popularity, keys = irm_trace
    measured = replay(LFUCache(capacity, keep_counts=True), keys)[THEORY_WARMUP:].mean()
    p_c = popularity.probabilities[capacity - 1]
    assert popularity.top_share(capacity) - p_c - 0.008 <= measured
    assert measured <= popularity.top_share(capacity) + 0.008


def test_under_the_irm_w_tinylfu_and_lfu_beat_lru_which_beats_fifo(irm_trace):
    popularity, keys = irm_trace
    h = study.hit_ratios(200, keys[:60_000], warmup=20_000)
    assert h["FIFO"] < h["LRU"] < h["W-TinyLFU"] < popularity.top_share(200)
    assert h["LRU"] + 0.05 < h["LFU"] < popularity.top_share(200)


def test_drift_ruins_in_cache_lfu_and_not_lru():
    keys = study.drifting_keys(ZipfKeys(2000, 0.8), 30_000, np.random.default_rng(1), 20)
    h = study.hit_ratios(100, keys, warmup=10_000)
    assert h["LFU"] < 0.1 < 0.2 < h["LRU"] < h["W-TinyLFU"]
    assert keys.min() >= 0 and keys.max() <= 1999 + 29_999 // 20


def test_a_scan_asks_for_new_keys_once_each():
    keys = np.arange(10) % 3
    scanned = study.with_scan(keys, 4, 3)
    assert scanned.tolist() == [0, 1, 2, 0, 3, 4, 5, 1, 2, 0]


def test_hit_ratio_over_time_bins_the_hits():
    middle, ratio = study.hit_ratio_over_time(np.array([1, 0, 1, 1, 0]), 2)
    assert middle.tolist() == [1.0, 3.0] and ratio.tolist() == [0.5, 1.0]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: WTinyLFUCache(10, window_share=1.0), "window_share must be"),
        (lambda: FrequencySketch(0, 10), "width must be an integer"),
        (lambda: LFUCache(0), "capacity must be an integer >= 1 (got 0)"),
        (lambda: RandomCache(-1), "capacity must be an integer >= 1 (got -1)"),
        (lambda: study.hit_ratio("MRU", 10, np.arange(5)), "policy must be one of"),
        (lambda: study.drifting_keys(ZipfKeys(10, 1), 5, np.random.default_rng(), -1),
         "new_key_every must be"),
        (lambda: study.with_scan(np.arange(5), 3, 4), "length must be an integer"),
    ],
)
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


def test_redis_allkeys_lru_is_an_approximation_of_lru():
    from simulations import redis_server

    reason = redis_server.unavailable()
    if reason:
        pytest.skip(reason)
    popularity = ZipfKeys(5000, 0.8)
    keys = popularity.sample(np.random.default_rng(2), 20_000).tolist()
    run = study.redis_lru_hit_ratio(keys, 500, samples=5)
    measured = run["hits"][8_000:].mean()
    exact = replay(LRUCache(run["fitted_max"]), keys)[8_000:].mean()
    # Never better than exact LRU with the most keys Redis held; never worse than a RANDOM
    # cache with the fewest (Redis's clock ticks once a second, so within this sub-second
    # replay recency ties and sampling degrades to random choice): 0.02 of sampling slack.
    assert che_hit_ratio(popularity.probabilities, run["fitted_min"], "random") - 0.02 \
        <= measured <= exact + 0.02
    assert 100 <= run["fitted_min"] <= run["fitted_max"] <= 1000


def test_make_cache_builds_each_policy_by_name():
    assert [type(make_cache(name, 3)).__name__ for name in POLICY_NAMES] == [
        "LRUCache", "FIFOCache", "LFUCache", "RandomCache", "WTinyLFUCache"]
    assert make_cache("lfu", 3, keep_counts=True).keep_counts
    with pytest.raises(ValueError, match="policy must be one of lru, fifo, lfu, random, "
                                         r"w-tinylfu \(got 'mru'\)"):
        make_cache("mru", 3)


def test_guarded_cache_counts_and_times_its_evictions():
    now = [0.0]
    cache = GuardedCache(make_cache("lru", 2), name="catalogue", clock=lambda: now[0])
    for t, key in enumerate("abacd"):
        now[0] = float(t)
        if cache.get(key) is None:
            cache.put(key, key.upper())
    assert cache.metrics.counts == {"hit": 1, "miss": 4, "put": 4, "eviction": 2}
    assert cache.hit_ratio == 0.2 and len(cache) == 2 and "d" in cache
    # b (last used at t=1) went at t=3, a (last used at t=2) at t=4: idle 2 s and 2 s.
    assert cache.metrics.observed("evicted_idle_seconds") == 2
    idle_sum = cache.metrics.registry.get_sample_value("catalogue_evicted_idle_seconds_sum")
    assert idle_sum == 4.0
    assert cache.delete("d") and not cache.delete("d") and cache.metrics.counts["delete"] == 1


def test_guarded_cache_survives_threads():
    cache = GuardedCache(make_cache("w-tinylfu", 50))

    def worker(seed):
        keys = ZipfKeys(500, 0.9).sample(np.random.default_rng(seed), 2_000).tolist()
        for key in keys:
            if cache.get(key) is None:
                cache.put(key, key)

    run_concurrently(worker, range(6))
    counts = cache.metrics.counts
    assert counts["hit"] + counts["miss"] == 12_000 and counts["put"] == counts["miss"]
    assert counts["eviction"] <= counts["put"] - len(cache) and len(cache) == 50


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: GuardedCache({}), "cache must be an EvictingCache (got dict)"),
        (lambda: GuardedCache(LRUCache(2), name="my cache"), "name must be an identifier"),
    ],
)
def test_guarded_cache_checks_its_settings(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()
