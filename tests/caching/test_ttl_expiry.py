"""TTL expiry (patterns.caching.ttl_expiry) and its study (simulations.caching.ttl_expiry):
behaviour on a fake clock, error messages, agreement with cachetools, theory vs simulation.

Tolerances for theory vs simulation come from the sampling error measured in the runs: each
point is 8 independent replications, and ``aggregate`` gives the 95 % t-interval half-width
(about 2.4 standard errors with 7 degrees of freedom). A true closed form lies within twice
that half-width (about 5 standard errors) except with negligible probability, so the tests
assert |simulated mean − closed form| ≤ 2 × half-width, plus 0.002 absolute for the closed
forms' own edge effects (a run starts with an empty cache and stops mid-cycle: of the order of
one cycle, T + 1/λ, in thousands).
"""

from __future__ import annotations

import logging
import math

import cachetools
import numpy as np
import pytest
from concurrently import run_concurrently

from patterns.caching.ttl_expiry import BoundedTTLCache, ProductionTTLCache, TTLCache, TTLConfig
from simulations.caching import ttl_expiry as study
from simulations.workloads import ZipfKeys


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_is_fresh_until_its_ttl_and_a_read_does_not_extend_it():
    clock = FakeClock()
    cache = TTLCache(10, clock)
    cache.put("k", "v")
    clock.now = 9.999
    assert cache.get("k") == "v" and "k" in cache
    clock.now = 10.0  # the boundary is already expired
    assert "k" not in cache and len(cache) == 1  # looking does not drop it
    assert cache.get("k", "gone") == "gone" and len(cache) == 0


def test_put_per_entry_ttl_delete_and_purge():
    clock = FakeClock()
    cache = TTLCache(10, clock)
    cache.put("a", 1, ttl_s=2)
    cache.put("b", 2)
    assert cache.expires_at("a") == 2 and cache.expires_at("b") == 10
    clock.now = 5
    assert cache.purge() == 1 and len(cache) == 1 and cache.expires_at("a") is None
    assert cache.delete("b") and not cache.delete("b")


def test_bounded_ttl_cache_evicts_by_lru_and_expires_by_ttl():
    clock = FakeClock()
    cache = BoundedTTLCache(2, 10, clock)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    assert cache.put("c", 3) == "b"  # b is least recently used
    clock.now = 10
    assert cache.get("a", "expired") == "expired" and len(cache) == 1


@pytest.mark.parametrize(("make", "message"), [
    (lambda: TTLCache(0), r"ttl_s must be > 0 \(got 0\)"),
    (lambda: TTLCache(5).put("k", 1, ttl_s=-1), r"ttl_s must be > 0 \(got -1\)"),
    (lambda: TTLConfig(jitter=1.0), r"TTLConfig.jitter must be in \[0, 1\) \(got 1.0\)"),
    (lambda: TTLConfig(ttl_s=-5), r"TTLConfig.ttl_s must be > 0 \(got -5\)"),
    (lambda: TTLConfig(stale_while_revalidate_s=-1),
     r"TTLConfig.stale_while_revalidate_s must be >= 0 \(got -1\)"),
    (lambda: study.Scenario(update_rate=-0.1), r"update_rate must be >= 0 \(got -0.1\)"),
    (lambda: study.Scenario(jitter=2), r"jitter must be in \[0, 1\) \(got 2\)"),
    (lambda: study.hit_ratio(-1, 5), r"read_rate must be >= 0 \(got -1\)"),
    (lambda: study.largest_ttl_s(0.1, 1.5), r"target must be in \(0, 1\) \(got 1.5\)"),
])
def test_bad_input_is_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_cachetools_ttlcache_agrees_on_the_same_request_times():
    """Same random read times and keys on the same hand-moved clock: the same hits."""
    rng = np.random.default_rng(7)
    # gaps of 0, 0.5 or 1 s: many reads fall exactly on an expiry instant (t + 7.5)
    times = np.cumsum(rng.integers(0, 3, 5000) * 0.5).tolist()
    keys = rng.integers(0, 20, 5000).tolist()
    clock = FakeClock()
    ours = TTLCache(7.5, clock)
    theirs = cachetools.TTLCache(maxsize=10**9, ttl=7.5, timer=clock)
    ours_hits, theirs_hits, on_the_boundary = [], [], 0
    for t, key in zip(times, keys, strict=True):
        clock.now = t
        on_the_boundary += ours.expires_at(key) == t
        hit = ours.get(key, None) is not None
        if not hit:
            ours.put(key, t)
        ours_hits.append(hit)
        hit = key in theirs
        if not hit:
            theirs[key] = t
        theirs_hits.append(hit)
    assert ours_hits == theirs_hits
    assert 0.3 < np.mean(ours_hits) < 0.9 and on_the_boundary > 50


def _inline(work):
    work()


def test_production_cache_serves_stale_while_revalidating_and_keeps_it_if_the_source_fails():
    clock, loads = FakeClock(), []

    def load(key):
        loads.append(clock.now)
        if clock.now >= 25:
            raise ConnectionError("source down")
        return f"v@{clock.now}"

    cache = ProductionTTLCache("t", TTLConfig(ttl_s=10, jitter=0, stale_while_revalidate_s=5),
                               clock, spawn=_inline)
    assert cache.get("k", load) == "v@0.0"      # miss: loaded in the caller
    clock.now = 5
    assert cache.get("k", load) == "v@0.0"      # hit
    clock.now = 12
    assert cache.get("k", load) == "v@0.0"      # stale: served, refreshed behind it
    assert cache.get("k", load) == "v@12"       # the refreshed value
    clock.now = 23
    assert cache.get("k", load) == "v@12"       # stale; this refresh (at 23) still works
    clock.now = 34
    assert cache.get("k", load) == "v@23"       # stale; the refresh at 34 fails, old value kept
    assert cache.get("k", load) == "v@23"
    clock.now = 40
    with pytest.raises(ConnectionError):        # past the stale window: loaded in the caller
        cache.get("k", load)
    c = cache.metrics.counts
    assert (c["miss"], c["hit"], c["stale"], c["refresh"], c["refresh_error"], c["load_error"]) \
        == (2, 2, 4, 2, 2, 1)
    assert cache.metrics.observed("age_seconds") == 6


def test_jittered_ttls_stay_within_the_configured_range():
    cache = ProductionTTLCache("t", TTLConfig(ttl_s=100, jitter=0.2), seed=1)
    ttls = [cache.entry_ttl_s() for _ in range(2000)]
    assert 80 <= min(ttls) < 81 and 99 < max(ttls) <= 100
    assert np.mean(ttls) == pytest.approx(90, abs=0.5)


def test_production_cache_counts_add_up_under_threads():
    cache = ProductionTTLCache("t", TTLConfig(ttl_s=1e-4, stale_while_revalidate_s=1e-4))
    logging.getLogger("patterns.caching.ttl_expiry").setLevel(logging.ERROR)

    def worker(seed):
        rng = np.random.default_rng(seed)
        for key in rng.integers(0, 5, 500).tolist():
            cache.get(key, lambda k: k)

    run_concurrently(worker, range(6), timeout_s=10)
    c = cache.metrics.counts
    assert c["hit"] + c["stale"] + c["miss"] == 6 * 500


@pytest.mark.parametrize(("read_rate", "update_rate", "ttl_s"), [
    (2.0, 0.01, 30.0), (0.5, 0.05, 10.0), (5.0, 0.2, 2.0), (0.1, 0.002, 60.0), (1.0, 0.5, 5.0),
])
def test_one_object_matches_the_renewal_formulas(read_rate, update_rate, ttl_s):
    base = study.Scenario(read_rate=read_rate, update_rate=update_rate, duration_s=20_000)
    (row,) = study.sweep(base, replications=8, ttl_s=[ttl_s])
    h = study.hit_ratio(read_rate, ttl_s)
    s = study.stale_fraction_of_hits(update_rate, ttl_s)
    assert abs(row["hit_ratio"] - h) <= 2 * row["hit_ratio_ci"] + 0.002
    assert abs(row["stale_fraction_of_hits"] - s) <= 2 * row["stale_fraction_of_hits_ci"] + 0.002
    assert abs(row["stale_fraction_of_reads"] - h * s) \
        <= 2 * row["stale_fraction_of_reads_ci"] + 0.002


def test_a_zipf_catalogue_matches_the_sum_over_keys():
    base = study.Scenario(read_rate=200, update_rate=0.005, n_keys=5000, duration_s=500,
                          warmup_s=100)
    (row,) = study.sweep(base, replications=8, ttl_s=[60.0])
    theory = study.catalogue(ZipfKeys(5000, 0.8).probabilities, 200, 0.005, 60.0)
    for metric in ("hit_ratio", "stale_fraction_of_hits", "stale_fraction_of_reads"):
        assert abs(row[metric] - theory[metric]) <= 2 * row[metric + "_ci"] + 0.002, metric


def test_the_closed_forms_limits():
    assert study.hit_ratio(2, 1e9) == pytest.approx(1.0)
    assert study.stale_fraction_of_hits(0.0, 10) == 0.0
    assert study.stale_fraction_of_hits(1e-9, 1.0) == pytest.approx(5e-10, rel=1e-3)  # ≈ μT/2
    assert study.stale_fraction_of_hits(1e6, 1.0) == pytest.approx(1.0, abs=1e-5)
    t = study.largest_ttl_s(0.01, 0.05)
    assert study.stale_fraction_of_hits(0.01, t) == pytest.approx(0.05, rel=1e-6)
    t = study.largest_ttl_s(0.01, 0.05, read_rate=0.1)
    assert study.stale_fraction_of_reads(0.1, 0.01, t) == pytest.approx(0.05, rel=1e-6)
    p = ZipfKeys(100, 1.0).probabilities
    memory = study.catalogue(p, 10.0, 0.0, 5.0)["entries"]
    assert memory == pytest.approx(sum(10 * q * 5 / (1 + 10 * q * 5) for q in p), rel=1e-9)


def test_invalidation_on_update_removes_staleness_at_a_small_hit_ratio_cost():
    base = study.Scenario(read_rate=2.0, update_rate=0.02, ttl_s=60.0, duration_s=20_000)
    ttl_only, invalidated = study.simulate(base), study.simulate(study.replace(base,
                                                                               invalidate=True))
    assert study.summary(ttl_only)["stale_fraction_of_hits"] > 0.3
    assert study.summary(invalidated)["stale_fraction_of_hits"] == 0.0
    assert study.summary(invalidated)["hit_ratio"] < study.summary(ttl_only)["hit_ratio"]


def test_synchronised_expiry_makes_a_miss_spike_that_jitter_spreads():
    base = study.Scenario(read_rate=300, update_rate=0.005, ttl_s=30, n_keys=2000,
                          duration_s=90, preload=True, db_servers=2)
    peaks = {}
    for jitter in (0.0, 0.5):
        run = study.simulate_service(study.replace(base, jitter=jitter))
        peaks[jitter] = study.timeline(run, 2.0)["source_load_rps"].max()
    assert peaks[0.0] > 1.6 * peaks[0.5]


def test_the_service_model_agrees_with_the_replay_and_measures_latency():
    base = study.Scenario(read_rate=100, update_rate=0.01, ttl_s=20, n_keys=500, duration_s=300,
                          warmup_s=60)
    replayed, served = study.summary(study.simulate(base)), study.summary(
        study.simulate_service(base))
    assert served["hit_ratio"] == pytest.approx(replayed["hit_ratio"], abs=0.01)
    assert served["latency_p50_s"] == pytest.approx(base.cache_s)
    assert served["latency_p99_s"] > base.db_service_s
    assert math.isclose(served["reads"], replayed["reads"])


def test_read_through_without_a_stale_window_misses_exactly_where_the_replay_does():
    base = study.Scenario(read_rate=20, update_rate=0.01, ttl_s=30, n_keys=100, duration_s=500)
    replayed = study.summary(study.simulate(base))
    through = study.read_through(base, TTLConfig(ttl_s=30, jitter=0))
    assert through["waited_for_source"] == pytest.approx(1 - replayed["hit_ratio"], abs=1e-12)
    assert through["stale_fraction_of_reads"] == pytest.approx(
        replayed["stale_fraction_of_reads"], abs=1e-12)
    windowed = study.read_through(base, TTLConfig(ttl_s=30, jitter=0, stale_while_revalidate_s=30))
    assert windowed["waited_for_source"] < through["waited_for_source"] / 3
