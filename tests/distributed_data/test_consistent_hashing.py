"""The consistent-hashing lesson's model: the ring and its agreement with uhashring, the production
ring under threads, rendezvous and jump hashing, and the study against its closed forms."""

from __future__ import annotations

import logging
import math
import threading
import time

import numpy as np
import pytest
from uhashring import HashRing as UHashRing

from patterns.distributed_data.consistent_hashing import (
    EmptyRingError,
    HashRing,
    JumpHash,
    KetamaRing,
    ProductionHashRing,
    RendezvousHash,
    RingConfig,
    blake2b_hash,
    jump_hash,
    md5_hash,
)
from simulations.distributed_data import consistent_hashing as study

KEYS = [f"user:{i}" for i in range(3000)]


def placement(ring, keys=KEYS) -> dict[str, str]:
    return {key: ring.node_for(key) for key in keys}


# ---------------------------------------------------------------- the ring


def test_the_study_uses_the_pattern_ring():
    assert study.HashRing is HashRing


def test_a_join_moves_keys_only_to_the_newcomer_and_a_leave_only_from_the_leaver():
    ring = HashRing(["a", "b", "c", "d"], vnodes=50)
    before = placement(ring)
    ring.add("e")
    after = placement(ring)
    moved = {k for k in KEYS if before[k] != after[k]}
    assert moved and all(after[k] == "e" for k in moved)
    ring.remove("b")
    left = placement(ring)
    changed = {k for k in KEYS if left[k] != after[k]}
    assert changed == {k for k in KEYS if after[k] == "b"}
    ring.remove("e")
    ring.add("b")
    assert placement(ring) == before  # the same nodes give the same ring, whatever the history


def test_a_lookup_wraps_past_the_last_point_and_an_empty_ring_says_so():
    ring = HashRing(["a", "b"], vnodes=3)
    last_point, last_node = ring.ring[-1]
    assert ring.node_at(last_point + 1) == ring.ring[0][1]  # past the top: the first point
    assert ring.node_at(last_point - 1) == last_node
    with pytest.raises(EmptyRingError, match="no nodes"):
        HashRing().node_for("k")


def test_weights_multiply_the_points_and_the_share():
    ring = ProductionHashRing("w", RingConfig(vnodes=400))
    ring.add("small")
    ring.add("big", weight=3)
    assert sum(node == "big" for _, node in ring.ring) == 1200
    assert ring.ownership()["big"] == pytest.approx(0.75, abs=0.03)  # SD ≈ 0.022 at 1600 points


def test_the_preference_list_holds_distinct_nodes_in_ring_order():
    ring = HashRing(["a", "b", "c", "d"], vnodes=20)
    for key in KEYS[:200]:
        nodes = ring.preference_list(key, 3)
        assert len(set(nodes)) == 3 and nodes[0] == ring.node_for(key)
    assert sorted(ring.preference_list("k", 10)) == ["a", "b", "c", "d"]


def test_the_hand_made_ring_agrees_with_uhashring_key_by_key_with_weights_and_changes():
    nodes = {"cache-a": 1, "cache-b": 2, "cache-c": 1, "cache-d": 3}
    theirs = UHashRing(nodes={n: {"weight": w} for n, w in nodes.items()})
    ours = HashRing()
    for node, weight in nodes.items():
        ours.add(node, weight)
    assert placement(ours) == {k: theirs.get_node(k) for k in KEYS}
    theirs.remove_node("cache-b")
    ours.remove("cache-b")
    theirs.add_node("cache-e", {"weight": 2})
    ours.add("cache-e", 2)
    assert placement(ours) == {k: theirs.get_node(k) for k in KEYS}
    assert [p for p, _ in ours.ring] == theirs.runtime._keys  # the very same points


def test_the_ketama_ring_agrees_with_uhashring_in_ketama_mode():
    names = ["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"]
    theirs = UHashRing(nodes=names, hash_fn="ketama")
    ours = KetamaRing(names)
    assert [p for p, _ in ours.ring] == theirs.runtime._keys
    assert placement(ours) == {k: theirs.get_node(k) for k in KEYS}


def test_a_keyed_hash_is_fixed_per_seed_and_differs_between_seeds():
    assert blake2b_hash(1)("key") == blake2b_hash(1)("key") != blake2b_hash(2)("key")
    assert 0 <= blake2b_hash(7)("key") < 2**64


# ---------------------------------------------------------------- the production ring


@pytest.mark.parametrize(("kwargs", "text"), [
    ({"vnodes": 0}, "RingConfig.vnodes must be an integer in [1, 100000] (got 0)"),
    ({"vnodes": 2.5}, "RingConfig.vnodes must be an integer in [1, 100000] (got 2.5)"),
    ({"hash": "sha1"}, "RingConfig.hash must be one of md5, blake2b (got 'sha1')"),
    ({"max_weight": 0}, "RingConfig.max_weight must be an integer >= 1 (got 0)"),
])
def test_config_errors_name_the_field_the_value_and_what_is_allowed(kwargs, text):
    with pytest.raises(ValueError) as error:
        RingConfig(**kwargs)
    assert str(error.value) == text


def test_bad_membership_changes_are_refused_with_one_line():
    ring = ProductionHashRing("r", RingConfig(vnodes=4, max_weight=8))
    ring.add("a")
    for call, text in [(lambda: ring.add(""), "node must be a non-empty string (got '')"),
                       (lambda: ring.add("b", 9), "weight must be an integer in [1, 8] (got 9)"),
                       (lambda: ring.add("a"), "node 'a' is already on ring 'r'"),
                       (lambda: ring.remove("z"), "node must be one of a (got 'z')")]:
        with pytest.raises(ValueError, match=text.replace("[", r"\[").replace("(", r"\(")
                           .replace(")", r"\)")):
            call()
    ring.remove("a")
    with pytest.raises(EmptyRingError, match="ring 'r' has no nodes"):
        ring.node_for("k")


def test_the_production_ring_logs_and_counts_membership_changes(caplog):
    ring = ProductionHashRing("cache", RingConfig(vnodes=100))
    with caplog.at_level(logging.INFO, logger="patterns.distributed_data.consistent_hashing"):
        for node in ("a", "b", "c", "d"):
            ring.add(node)
        share = ring.ownership()["c"]
        ring.remove("c")
    assert "ring cache: d joined (weight 1, 100 points)" in caplog.text
    warning = [r for r in caplog.records if r.levelno == logging.WARNING][0].getMessage()
    assert f"c left; its {100 * share:.1f} % of the keys now go to 3 node(s)" in warning
    assert sum(ring.ownership().values()) == pytest.approx(1.0)
    ring.node_for("x")
    assert ring.metrics.counts == {"joins": 4, "leaves": 1, "lookups": 1}
    assert ring.metrics.observed("moved_share") == 5


def test_lookups_during_membership_changes_never_fail_nor_return_a_node_already_gone():
    ring = ProductionHashRing("shared", RingConfig(vnodes=64))
    for i in range(8):
        ring.add(f"n{i}")
    removed_at: dict[str, float] = {}
    errors: list[BaseException] = []
    seen: list[tuple[float, str]] = []
    done = threading.Event()

    def reader(offset: int) -> None:
        try:
            while not done.is_set():
                for i in range(200):
                    started = time.perf_counter()
                    seen.append((started, ring.node_for(f"k{offset}-{i}")))
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    def changer() -> None:
        for i in range(8, 20):
            ring.add(f"n{i}")
            victim = f"n{i - 8}"
            ring.remove(victim)
            removed_at[victim] = time.perf_counter()
        done.set()

    threads = [threading.Thread(target=reader, args=(k,), daemon=True) for k in range(4)]
    threads.append(threading.Thread(target=changer, daemon=True))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert not any(thread.is_alive() for thread in threads) and not errors
    assert not [(t, n) for t, n in seen if n in removed_at and t > removed_at[n]]
    assert ring.metrics.counts["lookups"] == len(seen)
    assert sorted(ring.weights) == sorted(f"n{i}" for i in range(12, 20))


# ---------------------------------------------------------------- rendezvous and jump


def test_jump_hash_matches_the_published_test_vectors_and_moves_keys_only_to_the_new_bucket():
    # The test vectors of the Go port (lithammer/go-jump-consistent-hash) of the paper's code.
    assert [jump_hash(k, b) for k, b in [(1, 1), (42, 57), (0xDEAD10CC, 1), (0xDEAD10CC, 666),
                                         (256, 1024)]] == [0, 43, 0, 361, 520]
    keys = [md5_hash(k) for k in KEYS]
    for buckets in (1, 5, 10):
        before = [jump_hash(k, buckets) for k in keys]
        after = [jump_hash(k, buckets + 1) for k in keys]
        assert all(a in (b, buckets) for a, b in zip(after, before, strict=True))


def test_jump_hash_can_drop_only_its_last_bucket():
    jump = JumpHash(["a", "b", "c"])
    with pytest.raises(ValueError, match="node must be the last bucket, \\['c'\\], for jump hash"):
        jump.remove("a")
    jump.remove("c")
    assert {jump.node_for(k) for k in KEYS} == {"a", "b"}


def test_rendezvous_moves_only_the_leavers_keys():
    hrw = RendezvousHash(["a", "b", "c", "d"])
    before = placement(hrw)
    hrw.remove("b")
    after = placement(hrw)
    assert {k for k in KEYS if before[k] != after[k]} == {k for k in KEYS if before[k] == "b"}


# ---------------------------------------------------------------- the study and its theory


def test_the_vectorised_lookup_is_the_rings_own():
    rng = np.random.default_rng(4)
    p = study.place(7, 5, 2000, rng)
    assert [p.names[i] for i in p.owner] == [p.ring.node_at(int(x)) for x in p.positions]
    assert p.shares.sum() == pytest.approx(1.0)


def test_a_join_in_the_study_moves_keys_only_to_the_new_node_and_restores_the_ring():
    run = study.simulate(study.Scenario(nodes=6, vnodes=8, keys=5000, duration_s=0.5))
    assert run.moved_only_to_new and 0 < run.moved < 5000
    assert sorted(run.placement.ring.weights) == run.placement.names


def test_closed_forms_at_known_points():
    assert study.expected_max_over_mean(10, 1) == pytest.approx(study.harmonic(10), rel=1e-6)
    assert study.share_relative_sd(10, 1) == pytest.approx(math.sqrt(9 / 11))
    assert study.modulo_moved_fraction(10, 11) == pytest.approx(10 / 11)
    brute = np.mean([h % 9 != h % 12 for h in range(36 * 50)])
    assert study.modulo_moved_fraction(9, 12) == pytest.approx(brute)
    assert study.hottest_p99_s(900, 1000) == pytest.approx(math.log(100) / 100)
    assert study.hottest_p99_s(1000, 1000) == math.inf


def rings(nodes: int, vnodes: int, count: int, seed: int) -> np.ndarray:
    """Shares of ``count`` independent random rings, one row each."""
    rng = np.random.default_rng(seed)
    return np.array([study.place(nodes, vnodes, 1, rng).shares for _ in range(count)])


@pytest.mark.parametrize(("vnodes", "count"), [(1, 1500), (32, 150)])
def test_shares_match_the_beta_variance_and_the_gamma_maximum(vnodes, count):
    # Tolerance: 4 standard errors of the mean over `count` independent rings: about 3 % of
    # the expected maximum, and 5 % (v = 1) or 15 % (v = 32) of the relative variance.
    n = 10
    shares = rings(n, vnodes, count, seed=vnodes)
    rel_var = n * n * np.mean((shares - 1 / n) ** 2, axis=1)
    assert abs(rel_var.mean() - study.share_relative_sd(n, vnodes) ** 2) < \
        4 * rel_var.std(ddof=1) / math.sqrt(count)
    top = shares.max(axis=1) * n
    assert abs(top.mean() - study.expected_max_over_mean(n, vnodes)) < \
        4 * top.std(ddof=1) / math.sqrt(count)


def test_a_join_moves_k_over_n_plus_one_keys_on_average():
    # 60 independent rings; tolerance 4 standard errors of the mean moved share (about 12 %).
    rng = np.random.default_rng(11)
    moved = [study.join(study.place(9, 16, 4000, rng))[0] / 4000 for _ in range(60)]
    assert abs(np.mean(moved) - 1 / 10) < 4 * np.std(moved, ddof=1) / math.sqrt(60)


def test_the_hottest_nodes_p99_matches_m_m_1_at_its_rate():
    # Eight 20 s runs at ~60 % hot utilisation (p99 ≈ 11 ms), each p99 from ~11 000 correlated
    # samples; tolerance 4 standard errors of the mean ratio over the runs (about 11 %).
    ratios = []
    for seed in range(8):
        numbers = study.summary(study.simulate(study.Scenario(vnodes=64, keys=5000,
                                                              duration_s=20, seed=seed)))
        ratios.append(numbers["p99_hot_ms"] / numbers["p99_hot_mm1_ms"])
    assert abs(np.mean(ratios) - 1) < 4 * np.std(ratios, ddof=1) / math.sqrt(8)


def test_more_vnodes_even_out_the_load_and_cut_the_hottest_p99():
    rows = study.sweep(study.Scenario(keys=20_000, duration_s=3), replications=3,
                       vnodes=[1, 16, 256])
    by_v = {row["vnodes"]: row for row in rows}
    assert by_v[1]["max_over_mean"] > by_v[16]["max_over_mean"] > by_v[256]["max_over_mean"]
    assert by_v[256]["p99_hot_ms"] < by_v[16]["p99_hot_ms"] < by_v[1]["p99_hot_ms"]


def test_scenario_errors_name_the_setting():
    with pytest.raises(ValueError, match=r"utilisation must be in \(0, 1\) \(got 1.2\)"):
        study.Scenario(utilisation=1.2)
    with pytest.raises(ValueError, match="sweep setting must be one of"):
        study.sweep(study.Scenario(), seed=[1, 2])
    with pytest.raises(ValueError, match="scheme must be one of ring, modulo"):
        study.CacheTier(scheme="random")


def test_a_ring_keeps_a_cache_tier_warm_where_modulo_hashing_empties_it():
    ring = study.cache_timeline(study.simulate_cache_tier(study.CacheTier(duration_s=30,
                                                                           crash_at_s=15,
                                                                           join_at_s=25)))
    modulo = study.cache_timeline(study.simulate_cache_tier(
        study.CacheTier(scheme="modulo", duration_s=30, crash_at_s=15, join_at_s=25)))
    steady = slice(10, 15)  # warm, before the crash
    assert ring["hit_ratio_pct"][steady].mean() == pytest.approx(
        modulo["hit_ratio_pct"][steady].mean(), abs=3)
    assert modulo["hit_ratio_pct"][15] < ring["hit_ratio_pct"][15] - 15
