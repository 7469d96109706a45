"""Cache-aside (patterns.caching.cache_aside) and its study (simulations.caching.cache_aside):
reads and writes, the stale-fill race and its fixes, agreement with cachetools, a real Redis,
the production class, and the simulation against Che's approximation."""

from __future__ import annotations

import math
import sqlite3
from dataclasses import replace

import cachetools
import numpy as np
import pytest
from concurrently import run_concurrently

from patterns.caching.cache_aside import (
    CacheAside,
    CacheAsideConfig,
    ProductionCacheAside,
    RedisStore,
)
from patterns.caching.eviction_policies import LRUCache
from simulations.caches import replay
from simulations.caching import cache_aside as study
from simulations.workloads import ZipfKeys


class Database:
    """A dict with a log of what was done to it, in order."""

    def __init__(self, rows=None) -> None:
        self.rows = dict(rows or {})
        self.events: list[tuple[str, object]] = []

    def load(self, key):
        self.events.append(("load", key))
        return self.rows[key]

    def save(self, key, value) -> None:
        self.events.append(("save", key))
        self.rows[key] = value


def racing_reader(aside: CacheAside, db: Database, key, new_value):
    """The classic interleaving: the reader misses and reads the old row; before it fills the
    cache, a writer updates the row and invalidates the key; then the reader fills."""
    load = aside.load

    def slow_load(k):
        old = load(k)
        aside.load = load
        aside.set(k, new_value)  # the writer runs between the reader's load and its fill
        return old

    aside.load = slow_load
    return aside.get(key)


# ---------------------------------------------------------------- the Level 2 class

def test_reads_hit_after_the_first_miss_and_writes_invalidate_after_saving():
    db = Database({"a": 1})
    cache = LRUCache(4)
    aside = CacheAside(cache, db.load, db.save)
    assert [aside.get("a") for _ in range(3)] == [1, 1, 1]
    assert (aside.hits, aside.misses) == (2, 1) and db.events == [("load", "a")]
    deletes = []
    cache.delete = lambda key: deletes.append((key, db.rows[key])) or LRUCache.delete(cache, key)
    aside.set("a", 2)
    assert deletes == [("a", 2)], "the database must hold the new value before the invalidation"
    assert aside.get("a") == 2 and aside.misses == 2


def test_a_ttl_expires_entries_on_the_injected_clock():
    db, now = Database({"a": 1}), [0.0]
    aside = CacheAside(LRUCache(4), db.load, db.save, ttl_s=10, clock=lambda: now[0])
    aside.get("a")
    db.rows["a"] = 2  # changed behind the cache's back: no invalidation
    now[0] = 9.99
    assert aside.get("a") == 1
    now[0] = 10.0
    assert aside.get("a") == 2 and aside.misses == 2


def test_the_race_leaves_a_stale_entry_and_a_lease_refuses_the_stale_fill():
    for leases, cached in ((False, "old"), (True, None)):
        db = Database({"k": "old"})
        cache = LRUCache(8)
        aside = CacheAside(cache, db.load, db.save, leases=leases)
        assert racing_reader(aside, db, "k", "new") == "old"  # the reader saw the old row
        assert db.rows["k"] == "new"
        assert (cache.get("k") or [None])[0] == cached
        assert aside.stale_fills_refused == int(leases)
        assert aside.get("k") == ("old" if not leases else "new")
    assert CacheAside.lease_key("k") not in cache


def test_a_ttl_bounds_how_long_the_race_stays_stale():
    db, now = Database({"k": "old"}), [0.0]
    aside = CacheAside(LRUCache(8), db.load, db.save, ttl_s=5, clock=lambda: now[0])
    racing_reader(aside, db, "k", "new")
    now[0] = 4.9
    assert aside.get("k") == "old"
    now[0] = 5.0
    assert aside.get("k") == "new"


def test_cache_aside_over_lru_gives_the_hits_replay_counts():
    keys = ZipfKeys(500, 0.9).sample(np.random.default_rng(5), 5000).tolist()
    aside = CacheAside(LRUCache(50), lambda k: k, lambda k, v: None)
    hits = []
    for key in keys:
        before = aside.hits
        aside.get(key)
        hits.append(aside.hits > before)
    assert (np.array(hits) == replay(LRUCache(50), keys)).all()


def test_cache_aside_agrees_with_cachetools_cached_on_a_zipf_trace():
    keys = ZipfKeys(2000, 0.8).sample(np.random.default_rng(3), 20_000).tolist()
    ours_loads, theirs_loads = [], []
    aside = CacheAside(LRUCache(150), lambda k: ours_loads.append(k) or -k, lambda k, v: None)

    @cachetools.cached(cachetools.LRUCache(maxsize=150))
    def read(key):
        theirs_loads.append(key)
        return -key

    assert [aside.get(k) for k in keys] == [read(k) for k in keys]
    assert ours_loads == theirs_loads and 3000 < len(ours_loads) < 17_000


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"ttl_s": 0}, "ttl_s must be > 0 (got 0)"),
    ({"ttl_s": -1.0}, "ttl_s must be > 0 (got -1.0)"),
    ({"ttl_s": math.nan}, "ttl_s must be > 0 (got nan)"),
])
def test_a_bad_ttl_is_named(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        CacheAside(LRUCache(2), str, print, **kwargs)


@pytest.mark.parametrize(("field", "value", "allowed"), [
    ("ttl_s", 0, "> 0"), ("ttl_s", -5.0, "> 0"), ("leases", "yes", "True or False")])
def test_config_errors_name_field_value_and_allowed_range(field, value, allowed):
    with pytest.raises(ValueError) as error:
        CacheAsideConfig(**{field: value})
    message = str(error.value)
    assert f"CacheAsideConfig.{field}" in message and repr(value) in message and allowed in message


# ---------------------------------------------------------------- the production class

class BrokenCache:
    def get(self, key, default=None):
        raise ConnectionError("cache unreachable")

    put = delete = get


def test_production_reads_survive_a_broken_cache_and_do_not_cache_failed_loads(caplog):
    db = Database({"a": 1})
    broken = ProductionCacheAside("users", BrokenCache(), db.load, db.save)
    with caplog.at_level("WARNING", logger="patterns.caching.cache_aside"):
        assert broken.get("a") == 1
    assert "cache users: get('a') failed" in caplog.text
    assert broken.metrics.counts["cache_errors"] == 1

    cache = LRUCache(4)
    aside = ProductionCacheAside("users", cache, db.load, db.save)
    with pytest.raises(KeyError):
        aside.get("missing")
    assert "missing" not in cache and aside.metrics.counts["load_errors"] == 1
    assert aside.get("a") == 1 and aside.get("a") == 1
    counts = aside.metrics.counts
    assert (counts["hits"], counts["misses"], counts["fills"]) == (1, 2, 1)
    assert aside.metrics.observed("load_seconds") == 1


def test_production_counts_add_up_under_threads_and_leases_hold():
    db = Database({k: 0 for k in range(50)})
    aside = ProductionCacheAside("shared", LRUCache(64), db.load, db.save)

    def worker(seed):
        rng = np.random.default_rng(seed)
        for key in rng.integers(0, 50, 400).tolist():
            if rng.random() < 0.1:
                aside.set(key, seed)
            else:
                aside.get(key)

    run_concurrently(worker, range(6))
    c = aside.metrics.counts
    assert c["hits"] + c["misses"] + c["writes"] == 6 * 400
    assert c["misses"] == c["fills"] + c["stale_fills_refused"]
    for key in range(50):  # whatever is cached is what the database holds
        entry = aside.cache.get(key)
        assert entry is None or entry[0] == db.rows[key]


# ---------------------------------------------------------------- a real Redis and SQLite

def sqlite_table():
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE items (id TEXT PRIMARY KEY, value TEXT)")
    db.execute("INSERT INTO items VALUES ('k', 'old')")
    return db


def test_redis_and_sqlite_race_is_stale_without_leases_and_fresh_with_them(redis_client):
    for leases in (False, True):
        redis_client.flushall()
        db = sqlite_table()
        aside = CacheAside(
            RedisStore(redis_client, "item:"),
            lambda k, db=db: db.execute("SELECT value FROM items WHERE id = ?",
                                        (k,)).fetchone()[0],
            lambda k, v, db=db: db.execute("UPDATE items SET value = ? WHERE id = ?", (v, k)),
            leases=leases)
        loader = aside.load

        def slow_load(k, loader=loader, aside=aside):
            old = loader(k)
            aside.load = loader
            aside.set(k, "new")
            return old

        aside.load = slow_load
        assert aside.get("k") == "old"
        assert aside.get("k") == ("new" if leases else "old")
        assert redis_client.exists("item:lease:k") == 0


# ---------------------------------------------------------------- the study

def test_simpy_and_the_fast_path_give_the_same_rows():
    s = study.Scenario(requests=8000, warmup=1000, db_workers=3)
    fast, slow = study.simulate(s), study.simulate(s, engine="simpy")
    assert (fast.hit == slow.hit).all() and (fast.key == slow.key).all()
    np.testing.assert_allclose(fast.latency, slow.latency, rtol=1e-9, atol=1e-12)


# Che against the simulation: 60,000 reads, the first 20,000 warm the cache (at C = 2000 the
# cache is full after at most ~6,000 misses), h measured over n = 40,000 reads. Its binomial
# standard error is √(h(1 − h)/n) ≤ 0.0025; reads are correlated through the cache state, so
# allow 0.01 absolute (four such errors) plus Che's own error, reported under a few per cent of
# h for catalogues this size (Che et al. 2002; Martina et al. 2014): 3 % relative.
LONG = study.Scenario(requests=60_000, warmup=20_000, db_workers=None)


@pytest.mark.parametrize("alpha", [0.6, 0.8, 1.0])
@pytest.mark.parametrize("capacity", [100, 500, 2000])
def test_hit_ratio_and_database_load_follow_che(alpha, capacity):
    s = replace(LONG, alpha=alpha, capacity=capacity, seed=int(10 * alpha) + capacity)
    measured, theory = study.summary(study.simulate(s)), study.predicted(s)
    assert measured["hit_ratio"] == pytest.approx(theory["hit_ratio"], abs=0.01, rel=0.03)
    # the database load is (1 − h)·λ: the same tolerance, times λ
    assert measured["db_load_rps"] == pytest.approx(theory["db_load_rps"],
                                                    abs=0.01 * s.arrival_rate,
                                                    rel=0.03 * theory["hit_ratio"] /
                                                    (1 - theory["hit_ratio"]) + 0.01)


@pytest.mark.parametrize("capacity", [100, 2000])
def test_mean_and_p99_latency_follow_from_the_hit_ratio(capacity):
    # A database that never queues (unlimited workers): latency = t_cache + S on a miss.
    # Mean: h within 0.01 (above) moves it by 0.01·E[S] = 1 % of a miss; the sample mean of
    # ~25,000 LogNormal(scv 1) times has a relative standard error 1/√25,000 = 0.6 %: 4 %.
    # p99: the 99th percentile of 40,000 reads has a standard error of √(0.99·0.01/40,000)
    # ≈ 0.0005 in probability, i.e. 5 % of the 1 % tail; with h's error: 6 %.
    s = replace(LONG, capacity=capacity)
    measured, theory = study.summary(study.simulate(s)), study.predicted(s)
    assert measured["mean_latency_ms"] == pytest.approx(theory["mean_latency_ms"], rel=0.04)
    assert measured["p99_latency_ms"] == pytest.approx(theory["p99_latency_ms"], rel=0.06)


def test_the_p99_cliff_and_the_mixture_formulas():
    db = study.Scenario().db
    assert study.p99_latency_s(0.995, 0.0005, db) == 0.0005  # under 1 % of reads miss
    assert study.p99_latency_s(0.0, 0.0005, db) == pytest.approx(
        0.0005 + study.quantile(db, 0.99), rel=1e-9)
    assert study.mean_latency_s(0.9, 1.0, 11.0) == pytest.approx(2.0)
    assert study.db_load_rps(0.95, 20_000) == pytest.approx(1000)


def test_capacity_for_db_load_is_the_smallest_that_meets_it():
    s = study.Scenario()
    c = study.capacity_for_db_load(s, 300.0)
    p = ZipfKeys(s.n_keys, s.alpha).probabilities
    from simulations.theory import che_hit_ratio

    assert study.db_load_rps(che_hit_ratio(p, c), s.arrival_rate) <= 300
    assert study.db_load_rps(che_hit_ratio(p, c - 1), s.arrival_rate) > 300


def test_a_flush_costs_misses_and_prewarming_saves_most_of_them():
    s = study.Scenario(requests=20_000, warmup=0, flush_at_s=10.0)
    cold, warm = study.simulate(s), study.simulate(replace(s, prewarm=s.capacity))
    after = (cold.arrival >= 10.0) & (cold.arrival < 11.0)
    assert cold.hit[after].mean() < 0.9 * cold.hit[(cold.arrival > 8) & (cold.arrival < 10)].mean()
    assert (~warm.hit[after]).sum() < 0.9 * (~cold.hit[after]).sum()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"capacity": 0}, "capacity must be an integer >= 1 (got 0)"),
    ({"alpha": -0.5}, "alpha must be >= 0 (got -0.5)"),
    ({"warmup": 30_000}, "warmup must be an integer in [0, 29999] (got 30000)"),
    ({"prewarm": 600}, "prewarm must be an integer in [0, 500] (got 600)"),
    ({"db_workers": 0}, "db_workers must be an integer >= 1 (got 0)"),
])
def test_bad_scenarios_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        study.Scenario(**kwargs)


def test_bad_engine_and_sweep_setting_are_named():
    with pytest.raises(ValueError, match="engine must be one of fast, simpy"):
        study.simulate(study.Scenario(), engine="numba")
    with pytest.raises(ValueError, match="sweep setting must be one of"):
        study.sweep(study.Scenario(), ttl=[1])


def test_the_sweep_is_deterministic_and_hit_ratio_grows_with_size():
    base = study.Scenario(requests=12_000, warmup=4000)
    rows = study.sweep(base, capacity=[50, 500, 2000])
    assert rows == study.sweep(base, capacity=[50, 500, 2000])
    ratios = [row["hit_ratio"] for row in rows]
    assert ratios == sorted(ratios) and ratios[0] < ratios[-1]
