"""The cell lesson's model: the router and the shuffle-shard assigner, the production router
under a poison tenant, and the closed forms (1/cells, the hypergeometric overlap, Erlang C per
cell) against simulation."""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from itertools import combinations

import numpy as np
import pytest

from patterns.architectural.cell_based_architecture import (
    CellRouter,
    CellUnavailableError,
    CustomerQuarantinedError,
    ProductionShardRouter,
    ShardRouterConfig,
    ShardUnavailableError,
    ShuffleShardAssigner,
    WorkerCrash,
    stable_hash,
)
from simulations.architectural import cell_based_architecture as study
from simulations.metrics import confidence_interval


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def poison(worker: int) -> int:
    raise WorkerCrash(f"crashed {worker}")


# ---------------------------------------------------------------- Level 2

def test_routing_is_stable_and_spreads_customers() -> None:
    a, b = CellRouter(4), CellRouter(4)
    names = [f"c{i}" for i in range(4000)]
    cells = [a.route(n) for n in names]
    assert cells == [b.route(n) for n in names]
    assert stable_hash("x") == stable_hash("x") != stable_hash("x", "other salt")
    counts = np.bincount(cells, minlength=4)
    assert counts.min() > 900  # 1000 expected; 4 sd of a binomial(4000, 1/4) is about 110


def test_a_failed_cell_refuses_only_its_customers_until_it_is_back() -> None:
    clock = FakeClock()
    router = CellRouter(3, clock=clock)
    names = [f"c{i}" for i in range(300)]
    router.fail(1, 5.0)
    refused = []
    for n in names:
        try:
            assert router.admit(n) != 1
        except CellUnavailableError:
            refused.append(n)
    assert refused == [n for n in names if router.route(n) == 1]
    assert router.refused == len(refused) and router.admitted == 300 - len(refused)
    clock.now = 5.0
    assert router.admit(refused[0]) == 1


def test_shards_are_stable_distinct_workers_and_cover_every_combination() -> None:
    assigner = ShuffleShardAssigner(8, 2)
    shards = [assigner.shard(f"c{i}") for i in range(3000)]
    assert shards[:50] == [assigner.shard(f"c{i}") for i in range(50)]
    assert all(len(set(s)) == 2 and all(0 <= w < 8 for w in s) for s in shards)
    assert len({frozenset(s) for s in shards}) == assigner.combinations == 28
    assert assigner.overlap("c1", "c1") == 2


@pytest.mark.parametrize(("build", "message"), [
    (lambda: CellRouter(0), "cells must be an integer >= 1 (got 0)"),
    (lambda: CellRouter(2).fail(2, 1.0), "cell must be an integer in [0, 1] (got 2)"),
    (lambda: CellRouter(2).fail(0, 0), "for_s must be > 0 (got 0)"),
    (lambda: ShuffleShardAssigner(4, 5), "shard_size must be an integer in [1, 4] (got 5)"),
    (lambda: ShardRouterConfig(restart_s=-1), "ShardRouterConfig.restart_s must be > 0 (got -1)"),
    (lambda: ShardRouterConfig(shard_size=9),
     "ShardRouterConfig.shard_size must be an integer in [1, 8] (got 9)"),
    (lambda: ShardRouterConfig(quarantine_after=-1),
     "ShardRouterConfig.quarantine_after must be an integer >= 0 (got -1)"),
    (lambda: study.Scenario(cells=5), "Scenario.cells must divide Scenario.servers = 24 (got 5)"),
    (lambda: study.Scenario(load=1.0), "Scenario.load must be in (0, 1) (got 1.0)"),
    (lambda: study.Scenario(placement="random"),
     "Scenario.placement must be one of table, hash (got 'random')"),
    (lambda: study.Scenario(flood_start_s=50, flood_end_s=40),
     "Scenario.flood_end_s must be > 50 (got 40)"),
    (lambda: study.cell_mean_wait(100, 10, 24, 5), "cells must divide servers = 24 (got 5)"),
])
def test_bad_input_is_named_with_its_value_and_the_allowed_range(build, message) -> None:
    with pytest.raises(ValueError) as error:
        build()
    assert message in str(error.value)


# ---------------------------------------------------------------- Level 3

def test_a_poison_tenant_takes_down_exactly_the_customers_of_its_shard(caplog) -> None:
    with caplog.at_level(logging.WARNING, "patterns.architectural.cell_based_architecture"):
        episode = study.poison_episode(ShardRouterConfig(), customers=400)
    assert episode["failed"] == episode["same_shard"] and episode["same_shard"]
    assert episode["workers_crashed"] == 2
    assert sum("crashed on a request" in r.getMessage() for r in caplog.records) == 2
    snap = episode["router"].snapshot()
    assert snap["workers_up"] == 6 and snap["worker_crashes"] == 2


def test_quarantine_stops_the_poison_after_its_first_crash() -> None:
    clock = FakeClock()
    router = ProductionShardRouter(ShardRouterConfig(quarantine_after=1), clock=clock)
    with pytest.raises(CustomerQuarantinedError):
        router.call("bad", poison)
    with pytest.raises(CustomerQuarantinedError):
        router.call("bad", poison)
    assert router.metrics.counts["worker_crashes"] == 1
    router.release("bad")
    assert "bad" not in router.quarantined


def test_crashed_workers_come_back_after_restart_s() -> None:
    clock = FakeClock()
    router = ProductionShardRouter(ShardRouterConfig(restart_s=10.0), clock=clock)
    with pytest.raises(ShardUnavailableError, match="is down"):
        router.call("bad", poison)
    assert len(router.up_workers()) == 6
    clock.now = 10.0
    assert len(router.up_workers()) == 8
    assert router.call("bad", lambda w: w) in router.shard("bad")


def test_production_router_counts_add_up_across_threads() -> None:
    router = ProductionShardRouter(clock=FakeClock())
    served = []

    def client(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(300):
            name = f"c{int(rng.integers(1, 60))}"
            try:
                router.call(name, lambda w: w)
                served.append(1)
            except ShardUnavailableError:
                pass

    threads = [threading.Thread(target=client, args=(s,), daemon=True) for s in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads)
    assert router.metrics.counts["served"] == len(served) == 1800
    assert router.metrics.observed("call_seconds") == 1800


# ---------------------------------------------------------------- theory vs simulation

def test_overlap_closed_form_agrees_with_exact_enumeration() -> None:
    # Library agreement: itertools enumerates every shard exactly.
    for w, k in [(8, 2), (10, 3), (12, 4)]:
        counts = Counter(len(set(range(k)) & set(s)) for s in combinations(range(w), k))
        total = math.comb(w, k)
        for m in range(k + 1):
            assert study.overlap_probability(w, k, m) == pytest.approx(counts[m] / total)
    assert study.full_overlap_probability(8, 2) == pytest.approx(1 / 28)


def test_simulated_overlap_matches_the_hypergeometric() -> None:
    # 5 seeds of 1999 customers: a share p has sd sqrt(p(1-p)/1999) <= 0.0112 per seed; the
    # mean of 5 is held to 4 of its sd (0.02), and the whole-shard share (p = 1/28, sd 0.0019
    # over the 5) within 0.01.
    runs = [study.simulate_overlap(8, 2, 2000, np.random.default_rng(s)) for s in range(5)]
    for m in range(3):
        mean = np.mean([r[f"share_{m}"] for r in runs])
        assert abs(mean - study.overlap_probability(8, 2, m)) < 0.02
    assert abs(np.mean([r["full_share"] for r in runs]) - 1 / 28) < 0.01


def test_a_failed_cell_refuses_one_over_cells_of_the_customers() -> None:
    # 5 seeds of 2000 customers: sd of the share is sqrt(p(1-p)/2000) <= 0.011 per seed, 0.005
    # over 5; held to 0.02 (4 sd).
    for cells in (2, 4, 8):
        shares = [study.simulate_cell_failure(cells, 2000, np.random.default_rng(s))
                  ["refused_share"] for s in range(5)]
        assert abs(np.mean(shares) - study.cell_blast_radius(cells)) < 0.02


@pytest.mark.parametrize("cells", [1, 4, 8])
def test_cell_waits_match_erlang_c_within_the_confidence_interval(cells) -> None:
    # 6 replications of 60 s (about 11 500 requests each); the cell wait is checked against
    # Erlang C within 3 half-widths of the 95 % t-interval of the replications, plus 5 %
    # for the start-up bias left after the 10 s warm-up.
    waits, probs = [], []
    for s in range(6):
        summary = study.summary(study.simulate(study.Scenario(cells=cells, horizon_s=60.0),
                                               np.random.default_rng(s)))
        waits.append(summary["mean_wait_s"])
        probs.append(summary["wait_probability"])
    mean, half = confidence_interval(waits)
    theory = study.cell_mean_wait(192.0, 10.0, 24, cells)
    assert abs(mean - theory) < 3 * half + 0.05 * theory
    mean_p, half_p = confidence_interval(probs)
    assert abs(mean_p - study.cell_wait_probability(192.0, 10.0, 24, cells)) < 3 * half_p + 0.02


def test_smaller_cells_need_more_servers_for_the_same_wait_probability() -> None:
    need = [study.servers_for_target(192.0, 10.0, c, 0.2) for c in (1, 2, 4, 8)]
    assert need == sorted(need) and need[0] < need[-1]
    for c, n in zip((1, 2, 4, 8), need, strict=True):
        assert study.cell_wait_probability(192.0, 10.0, n, c) <= 0.2 if n % c == 0 else True


def test_common_random_numbers_same_traffic_for_every_cell_count() -> None:
    a = study.simulate(study.Scenario(cells=2, horizon_s=20.0), np.random.default_rng(4))
    b = study.simulate(study.Scenario(cells=8, horizon_s=20.0), np.random.default_rng(4))
    assert np.array_equal(a["arrival"], b["arrival"])
    assert np.allclose(a["response"] - a["wait"], b["response"] - b["wait"], atol=1e-12)


def test_tenant_limiter_protects_the_cell_mates_of_a_flooding_tenant() -> None:
    mates = list(range(4, 240, 4))
    flood = study.summary(study.simulate(study.Scenario(flood_factor=40.0),
                                         np.random.default_rng(2)), customers=mates)
    limited = study.summary(study.simulate(study.Scenario(flood_factor=40.0,
                                                          tenant_limit_rps=1.5),
                                           np.random.default_rng(2)), customers=mates)
    assert limited["mean_wait_s"] < flood["mean_wait_s"] / 5


def test_a_wave_deploy_hits_one_cell_and_all_at_once_hits_everyone() -> None:
    sc = study.Scenario(horizon_s=60.0)
    wave = study.deploy_timeline(sc, rng=np.random.default_rng(3))
    blast = study.deploy_timeline(sc, all_at_once=True, rng=np.random.default_rng(3))
    assert 20 < wave["error_pct"].max() < 32 and blast["error_pct"].max() == 100
    assert wave["customers_hit_pct"].max() <= 25.0 + 1e-9
