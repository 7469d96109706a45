"""Tests of the sharding pattern (patterns.distributed_data.sharding) and its study
(simulations.distributed_data.sharding): Redis Cluster's slot rule against its documented
examples and redis-py, the store and the production router (hot-key split, live migration under
threads), the rebalancing plan, and the study against balls-into-bins and M/M/1."""

from __future__ import annotations

import binascii
import logging
import random
from dataclasses import replace

import numpy as np
import pytest
import redis.crc
import simpy
from concurrently import run_concurrently

from patterns.distributed_data.sharding import (
    SLOTS,
    HotKeyDetector,
    ProductionShardRouter,
    RouterConfig,
    ShardedStore,
    crc16,
    even_slot_owners,
    hash_slot,
    plan_rebalance,
    sub_key,
)
from simulations.distributed_data import sharding as study
from simulations.servers import ServerPool
from simulations.workloads import ZipfKeys

# ---------------------------------------------------------------- the slot rule


def test_crc16_is_xmodem_as_the_redis_cluster_spec_gives_it():
    assert crc16(b"123456789") == 0x31C3  # "Output for 123456789: 31C3" (cluster-spec)
    rng = random.Random(1)
    for _ in range(300):
        data = rng.randbytes(rng.randrange(0, 40))
        assert crc16(data) == binascii.crc_hqx(data, 0)


def test_hash_slots_match_the_documented_examples_and_redis_py():
    # CLUSTER KEYSLOT examples (redis-doc, commands/cluster-keyslot.md)
    assert hash_slot("somekey") == 11058
    assert hash_slot("foo{hash_tag}") == hash_slot("bar{hash_tag}") == 2515
    # hash-tag rules (redis-doc, docs/reference/cluster-spec.md, "Hash tags")
    assert hash_slot("{user1000}.following") == hash_slot("{user1000}.followers")
    assert hash_slot("{user1000}.following") == hash_slot("user1000")
    assert hash_slot("foo{}{bar}") == crc16(b"foo{}{bar}") % SLOTS
    assert hash_slot("foo{{bar}}zap") == crc16(b"{bar") % SLOTS
    assert hash_slot("foo{bar}{zap}") == crc16(b"bar") % SLOTS
    rng = random.Random(2)
    alphabet = "ab{}:#1"
    for _ in range(500):
        key = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))
        assert hash_slot(key) == redis.crc.key_slot(key.encode()), key


def test_sub_keys_salt_inside_the_hash_tag_so_they_change_slot():
    assert [sub_key("likes", p) for p in range(3)] == ["likes", "likes#1", "likes#2"]
    assert sub_key("{post9}:likes", 3) == "{post9#3}:likes"
    naive = {hash_slot(f"{{post9}}:likes#{p}") for p in range(8)}
    salted = {hash_slot(sub_key("{post9}:likes", p)) for p in range(8)}
    assert len(naive) == 1 and len(salted) == 8


def test_even_slot_owners_deal_equal_contiguous_ranges():
    owners = even_slot_owners(3)
    counts = np.bincount(owners)
    assert counts.max() - counts.min() <= 1 and owners == sorted(owners)
    with pytest.raises(ValueError, match=r"shards must be an integer in \[1, 16384\] \(got 0\)"):
        even_slot_owners(0)


# ---------------------------------------------------------------- the Level 2 store


def test_store_routes_every_key_to_the_shard_owning_its_slot():
    store = ShardedStore(4)
    for i in range(200):
        store.put(f"user:{i}", i)
    for i in range(200):
        key = f"user:{i}"
        assert store.get(key) == i and key in store.data[store.owner[hash_slot(key)]]
    assert sum(len(d) for d in store.data) == 200 and sum(store.requests) == 400
    assert store.delete("user:7") and not store.delete("user:7")
    assert store.get("user:7", "gone") == "gone"


def test_a_split_counter_spreads_writes_and_reads_cost_every_sub_key():
    store = ShardedStore(16)
    store.incr("likes", 5)
    store.split("likes", 4)
    for _ in range(8):
        store.incr("likes")
    assert [store.data[store.shard_for(sub_key("likes", p))].get(sub_key("likes", p))
            for p in range(4)] == [7, 2, 2, 2]  # the old value stays in sub-key 0
    before = sum(store.requests)
    assert store.counter("likes") == 13
    assert sum(store.requests) - before == 4
    store.split("likes", 2)  # never fewer sub-keys: their values would be lost
    assert store.splits["likes"] == 4 and store.counter("likes") == 13
    with pytest.raises(ValueError, match=r"parts must be an integer >= 1 \(got 0\)"):
        store.split("likes", 0)


# ---------------------------------------------------------------- hot-key detection


def test_detector_flags_a_hot_key_forgets_it_and_never_undercounts():
    now = [0.0]
    detector = HotKeyDetector(window_s=2.0, hot_share=0.2, width=64, depth=3, buckets=4,
                              min_requests=50, clock=lambda: now[0])
    rng = random.Random(3)
    truth: dict[str, int] = {}
    for i in range(2000):  # 1 s of traffic, a third of it for "hot"
        now[0] = i / 2000
        key = "hot" if i % 3 == 0 else f"k{rng.randrange(500)}"
        truth[key] = truth.get(key, 0) + 1
        detector.record(key)
    assert [k for k, _ in detector.hot()] == ["hot"]
    assert all(detector.estimate(k) >= n for k, n in truth.items())  # count-min never undercounts
    assert truth["hot"] <= detector.estimate("hot") <= 1.1 * truth["hot"]
    assert detector.window_requests == 2000
    now[0] = 3.1  # more than a window later: every bucket has expired
    assert detector.hot() == [] and detector.window_requests == 0
    assert detector.record("k1") == 0.0  # below min_requests


# ---------------------------------------------------------------- the production router


@pytest.mark.parametrize(("field", "value", "allowed"), [
    ("shards", ("a", "a"), "distinct non-empty names"),
    ("shards", [], "a tuple of 1 to 16384"),
    ("hot_share", 0, "in (0, 1]"),
    ("hot_share", 1.5, "in (0, 1]"),
    ("window_s", -1.0, "> 0"),
    ("min_requests", 0, "integer >= 1"),
    ("split_factor", 1, "integer in [2, 1024]"),
    ("sketch_width", 8, "integer >= 16"),
    ("sketch_depth", 2.5, "integer in [1, 16]"),
    ("buckets", True, "integer >= 1"),
])
def test_config_errors_name_field_value_and_allowed_range(field, value, allowed):
    with pytest.raises(ValueError) as error:
        RouterConfig(**{field: value})
    message = str(error.value)
    assert f"RouterConfig.{field}" in message and repr(value) in message and allowed in message
    assert "\n" not in message


def test_router_splits_a_hot_counter_keeps_its_value_and_counts_per_shard(caplog):
    clock = [0.0]
    config = RouterConfig(hot_share=0.2, window_s=1.0, min_requests=20, split_factor=4)
    router = ProductionShardRouter(config, lambda: clock[0])
    with caplog.at_level(logging.WARNING, logger="patterns.distributed_data.sharding"):
        for i in range(400):
            clock[0] = i / 1000
            router.incr("likes:{post9}" if i % 2 else f"views:{i}")
            router.put(f"page:{i % 3}", i)
    assert router.splits == {"likes:{post9}": 4}
    assert "hot key 'likes:{post9}'" in caplog.text and "split into 4 sub-keys" in caplog.text
    assert router.counter("likes:{post9}") == 200
    holders = {router.shard_for(sub_key("likes:{post9}", p)) for p in range(4)}
    assert len(holders) > 1  # the salt sits inside the tag: the sub-keys left the one slot
    counts = router.metrics.counts
    assert counts["splits"] == 1 and counts["writes"] == 800 and counts["reads"] == 1
    served = [router.metrics.registry.get_sample_value("shard_router_shard_requests_total",
                                                       {"shard": name}) or 0
              for name in config.shards]
    assert sum(served) == sum(router.requests) == 800 + 4
    assert router.metrics.observed("read_fanout") == 1
    keys = [router.metrics.registry.get_sample_value("shard_router_shard_keys", {"shard": name})
            for name in config.shards]
    assert sum(keys) == sum(len(d) for d in router.data)


def test_live_migration_under_threads_loses_nothing():
    config = RouterConfig(shards=("a", "b", "c"), hot_share=0.25, min_requests=200)
    router = ProductionShardRouter(config)
    keys = [f"user:{i}" for i in range(600)]
    for key in keys:
        router.incr(key)
    slots = sorted({router.slot_of(k) for k in keys if router.shard_for(k) == 0})[:40]
    per_thread, threads = 1500, 4

    def client(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(per_thread):
            router.incr("hot" if rng.random() < 0.4 else rng.choice(keys))

    def mover() -> None:
        for slot in slots:
            router.migrate_slot(slot, "c", batch=2)

    run_concurrently(lambda s: mover() if s == threads else client(s), range(threads + 1),
                     timeout_s=60)
    total = sum(router.counter(k) for k in keys) + router.counter("hot")
    assert total == len(keys) + threads * per_thread
    assert all(router.owner[s] == 2 for s in slots) and not router.migrating
    for shard, data in enumerate(router.data):  # every key once, on the shard owning its slot
        assert all(router.owner[router.slot_of(k)] == shard for k in data)
    assert "hot" in router.splits and router.metrics.counts["slots_moved"] == len(slots)


def test_migration_serves_moved_keys_from_the_target_meanwhile():
    router = ProductionShardRouter(RouterConfig(shards=("a", "b")))
    key = "user:1"
    slot, home = router.slot_of(key), router.shard_for(key)
    other = ("a", "b")[1 - home]
    router.put(key, "v1")
    assert router.begin_migration(slot, other) == 1
    assert router.get(key) == "v1" and router.shard_for(key) == home  # still in the source
    assert router.migrate_keys(slot, 10) == 1
    assert router.get(key) == "v1" and router.metrics.counts["ask_redirects"] >= 1
    router.finish_migration(slot)
    assert router.shard_for(key) == 1 - home and key in router.data[1 - home]
    with pytest.raises(ValueError, match="target must be one of a, b"):
        router.begin_migration(slot, "z")
    with pytest.raises(ValueError, match="already on"):
        router.begin_migration(slot, other)


def test_rebalance_plan_lowers_the_peak_down_to_the_hot_slot_and_no_further():
    owner = even_slot_owners(4)
    load = np.zeros(SLOTS)
    load[:4096] = 2.0 / 4096  # shard 0 twice as busy as each of the others
    load[4096:] = 3.0 / 12288
    load[5] = 4.0  # a hot key's slot on shard 0
    before = np.bincount(owner, weights=load)
    moves = plan_rebalance(load, owner, 4, max_moves=5000)
    moved = list(owner)
    for slot, shard in moves:
        moved[slot] = shard
    after = np.bincount(moved, weights=load, minlength=4)
    assert after.max() < before.max() and after.max() >= 4.0  # no plan divides one key
    hot = moved[5]
    assert after[hot] == pytest.approx(4.0 + sum(load[s] for s in range(SLOTS)
                                                 if moved[s] == hot and s != 5))
    assert len(plan_rebalance(load, owner, 4, max_moves=3)) == 3
    with pytest.raises(ValueError, match="one entry per slot"):
        plan_rebalance(load[:10], owner, 4, 1)


# ---------------------------------------------------------------- the study


def test_the_study_places_keys_as_the_pattern_store_does():
    s = study.Scenario(shards=7, keys=300)
    store = ShardedStore(7)
    names = study.key_names(s.namespace, s.keys)
    home = study.slot_owners(7)[study.key_slots(s.namespace, s.keys)]
    assert [store.shard_for(name) for name in names] == home.tolist()
    subs = study.slot_owners(7)[study.sub_key_slots(s.namespace, s.keys, (0, 5), 3)]
    assert subs.tolist() == [[store.shard_for(sub_key(names[r], p)) for p in range(3)]
                             for r in (0, 5)]


def test_scenario_errors_name_the_parameter():
    for field, value, allowed in [("offered_rps", 0, "> 0"), ("shards", 0, "[1, 16384]"),
                                  ("read_share", 2, "[0, 1]"), ("split_factor", 0, "[1, 1024]"),
                                  ("warmup_s", 20.0, "[0, 10)"), ("namespace", "", "non-empty")]:
        with pytest.raises(ValueError) as error:
            study.Scenario(**{field: value})
        assert field in str(error.value) and allowed in str(error.value)


def test_the_fast_path_gives_the_rows_of_one_simpy_server_per_shard():
    s = study.Scenario(offered_rps=400, shards=3, keys=50, duration_s=2.0, split_keys=2,
                       split_factor=3, read_share=0.5)
    run = study.simulate(s)
    jobs = run.jobs
    env = simpy.Environment()
    pools = [ServerPool(env, 1, lambda row, _cls: (yield env.timeout(
        float(jobs.end[row] - jobs.start[row])))) for _ in range(s.shards)]

    def source():
        for row in np.argsort(jobs.arrival, kind="stable").tolist():
            yield env.timeout(float(jobs.arrival[row]) - env.now)
            pools[int(jobs.server[row])].submit(row)

    env.process(source())
    env.run()
    ends = np.full(len(jobs), np.nan)
    for pool in pools:
        table = pool.log.table()
        ends[table.key] = table.end
    assert np.allclose(ends, jobs.end, rtol=0, atol=1e-9)
    reads = (run.requests.cls == 1) & (run.parts > 1)
    assert reads.any() and np.all(run.requests.end >= run.requests.arrival)


def test_simulation_is_deterministic_and_split_reads_fan_out():
    s = study.Scenario(offered_rps=3000, duration_s=3, split_keys=3, split_factor=4)
    a, b = study.simulate(s), study.simulate(s)
    assert np.array_equal(a.jobs.end, b.jobs.end)
    fan = np.bincount(a.jobs.key, minlength=len(a.requests))
    split_read = (a.requests.cls == 1) & (a.parts > 1)
    assert np.all(fan[split_read] == 4) and np.all(fan[~split_read] == 1)
    expected = 1 + s.read_share * 3 * ZipfKeys(s.keys, s.alpha).top_share(3)
    assert study.summary(a)["fan_out"] == pytest.approx(expected, rel=0.05)


def test_hottest_shard_utilisation_and_latency_match_the_model():
    # 40 s at 70 % of the ceiling: the hottest shard serves ~14000 jobs of Exp(1 ms), so its busy
    # fraction has a relative standard error of about √(2/14000) ≈ 1.2 %; we allow 6 %. Its mean
    # response and p99 are autocorrelated: over 30 seeds their relative errors had standard
    # deviations of 3.4 % and 6.2 %; we allow 12 % and 20 % (about 3.5 and 3.2 σ).
    base = study.Scenario(duration_s=40.0)
    s = replace(base, offered_rps=0.7 * study.ceiling_rps(base))
    run = study.simulate(s)
    numbers = study.summary(run)
    assert numbers["hottest_utilisation"] == pytest.approx(0.7, rel=0.06)
    assert numbers["ceiling_rps"] == pytest.approx(study.ceiling_rps(s), rel=0.06)
    shares = study.shard_work_shares(s)
    hot = int(np.argmax(shares))
    r = run.requests
    at_hot = (r.server == hot) & (r.arrival >= s.warmup_s)
    rate = s.offered_rps * shares.max()
    assert r.latency[at_hot].mean() == pytest.approx(1 / (s.service_rate - rate), rel=0.12)
    assert np.percentile(r.latency[at_hot], 99) == pytest.approx(study.hottest_p99_s(s), rel=0.2)
    over = study.summary(study.simulate(replace(s, offered_rps=1.3 * study.ceiling_rps(base),
                                                duration_s=5.0)))
    assert over["hottest_utilisation"] > 0.99 and over["p99_latency_s"] > 0.5


def test_balls_into_bins_maximum_against_theory():
    # 100 sets of 1600 random keys on 16 shards. The fullest shard's count has sd ≈ 6 keys, so
    # the mean of 100 has a standard error of 0.6 keys (0.5 %); we allow 2 %.
    loads = study.max_keys_per_shard(1600, 16, replications=100, seed=4)
    assert loads.mean() == pytest.approx(study.expected_max_load(1600, 16), rel=0.02)
    bound = study.raab_steger_max_load(1600, 16)
    assert 100 < loads.mean() < bound
    # Above the bound with probability ≈ 16·P(Z > 2.43) ≈ 0.12 here; 0.25 is 4 standard errors.
    assert np.mean(loads > bound) <= 0.25
    assert study.expected_max_load(160, 16) > 10 + 0.5 * (study.raab_steger_max_load(160, 16) - 10)


def test_mean_field_share_and_work_shares():
    assert study.mean_field_hottest_share(0.2, 10) == pytest.approx(0.2 + 0.08)
    assert study.mean_field_hottest_share(0.2, 10, 4, 0.5) == pytest.approx(
        0.2 * (0.5 / 4 + 0.5) + 0.08)
    s = study.Scenario(split_keys=5, split_factor=4, read_share=0.3)
    expected = 1 + 0.3 * 3 * ZipfKeys(s.keys, s.alpha).top_share(5)
    assert study.shard_work_shares(s).sum() == pytest.approx(expected)
    assert study.ceiling_rps(s) == pytest.approx(1000 / study.shard_work_shares(s).max())


def test_rebalancing_near_caching_and_auto_split_lower_the_hottest_shard():
    s = study.Scenario(alpha=0.6, offered_rps=12000, duration_s=4)
    assert study.ceiling_rps(study.rebalanced(s, 16)) > 1.1 * study.ceiling_rps(s)
    read_heavy = study.Scenario(offered_rps=8000, read_share=0.9, duration_s=3)
    cached = study.summary(study.simulate(replace(read_heavy, cache_entries=100)))
    assert cached["hottest_utilisation"] < 0.6 and cached["fan_out"] < 0.8
    spike = replace(study.Scenario(offered_rps=3000, duration_s=12),
                    spike=study.Spike(4, 10, 5000, 0.3),
                    auto_split=RouterConfig(hot_share=0.2, window_s=1.0, buckets=4,
                                            min_requests=20, split_factor=8))
    run = study.simulate(spike)
    assert list(run.split_at) == [5000] and 4.0 < run.split_at[5000] < 5.0
    assert run.parts[(run.requests.key == 5000) & (run.requests.arrival > 5.0)].min() == 8
    tl = study.timeline(run)
    assert tl["hottest_utilisation"].max() <= 1.0 + 1e-9 and len(tl["time_s"]) == 12
