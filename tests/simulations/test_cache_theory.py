"""Che's approximation (``simulations.theory``) against caches replayed on Zipf traffic.

Method: one seeded stream of 200,000 Zipf(α) requests over 10,000 keys per α; the first 50,000
warm the cache and the hit ratio is measured on the other 150,000. The binomial standard error
of a hit ratio h over n = 150,000 requests is √(h(1 − h)/n) ≤ 0.0013; requests are correlated
through the cache state, so the tolerance is 0.006 absolute (over four such errors) plus the
approximation's own error, which Che et al. and Martina et al. report as under a few per cent of
h for these catalogue sizes: 3 % relative.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from patterns.caching.eviction_policies import LRUCache
from simulations.caches import replay
from simulations.theory import characteristic_time, che_hit_probabilities, che_hit_ratio
from simulations.workloads import ZipfKeys

KEYS, REQUESTS, WARMUP = 10_000, 200_000, 50_000


@pytest.fixture(scope="module", params=[0.6, 0.8, 1.0])
def zipf_trace(request):
    popularity = ZipfKeys(KEYS, request.param)
    rng = np.random.default_rng(int(request.param * 10))
    return popularity, popularity.sample(rng, REQUESTS)


@pytest.mark.parametrize("capacity", [10, 100, 1000])
def test_che_predicts_the_lru_hit_ratio(zipf_trace, capacity):
    popularity, keys = zipf_trace
    measured = replay(LRUCache(capacity), keys)[WARMUP:].mean()
    predicted = che_hit_ratio(popularity.probabilities, capacity)
    assert measured == pytest.approx(predicted, abs=0.006, rel=0.03)


def test_occupancies_sum_to_the_capacity_and_lru_beats_fifo():
    p = ZipfKeys(1000, 0.9).probabilities
    for policy in ("lru", "fifo", "random"):
        assert che_hit_probabilities(p, 50, policy).sum() == pytest.approx(50, rel=1e-9)
    lru, fifo = che_hit_ratio(p, 50), che_hit_ratio(p, 50, "fifo")
    assert fifo < lru < ZipfKeys(1000, 0.9).top_share(50)
    assert che_hit_ratio(p, 50, "random") == fifo


def test_uniform_popularity_gives_capacity_over_keys():
    assert che_hit_ratio(np.ones(100), 25) == pytest.approx(0.25, rel=1e-9)


def test_a_cache_holding_every_key_hits_always():
    assert math.isinf(characteristic_time([0.5, 0.5, 0.0], 2))
    assert che_hit_ratio([0.5, 0.5, 0.0], 2) == 1.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([], 1), "probabilities must be a non-empty list"),
        (([0.5, -0.1], 1), "probabilities must be a non-empty list"),
        (([1.0, 1.0], 0), "capacity must be an integer >= 1 (got 0)"),
        (([1.0, 1.0], 1, "lfu"), "policy must be one of"),
    ],
)
def test_bad_input_is_named(args, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        che_hit_ratio(*args)
