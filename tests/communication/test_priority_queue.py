"""Tests of the Priority Queue pattern (patterns.communication.priority_queue) and its study
(simulations.communication.priority_queue): behaviour, error messages, theory vs simulation,
agreement with the standard library's heapq / queue.PriorityQueue and with Redis."""

from __future__ import annotations

import heapq
import queue
import threading
from dataclasses import replace

import numpy as np
import pytest

from patterns.communication.priority_queue import (
    PriorityQueue,
    ProductionPriorityQueue,
    QueueConfig,
    QueueFullError,
    RedisPriorityQueue,
)
from simulations import redis_server
from simulations.communication import priority_queue as study


def test_the_study_uses_the_pattern_class():
    assert study.PriorityQueue is PriorityQueue


def drain(q):
    out = []
    while len(q):
        out.append(q.get()[:2])
    return out


def test_order_by_priority_then_first_come_first_served():
    q = PriorityQueue(levels=3, clock=lambda: 0.0)
    for item, p in [("a", 2), ("b", 0), ("c", 1), ("d", 0), ("e", 2)]:
        q.put(item, p)
    assert q.peek() == ("b", 0)
    assert drain(q) == [("b", 0), ("d", 0), ("c", 1), ("a", 2), ("e", 2)]
    with pytest.raises(IndexError):
        q.get()


def test_aging_lets_an_old_low_item_overtake_a_new_high_one():
    now = [0.0]
    q = PriorityQueue(levels=2, aging_s=1.0, clock=lambda: now[0])
    q.put("old low", 1)
    now[0] = 0.5
    q.put("new high", 0)  # the low item has aged 0.5 of a level: the high one still wins
    assert q.peek() == ("new high", 0)
    now[0] = 1.5
    q.put("newer high", 0)  # the low item has now waited 1.5 s > 1 level
    q.get()
    assert q.get()[:2] == ("old low", 1)
    assert q.waiting == [1, 0]


def test_errors_name_the_field_and_value():
    with pytest.raises(ValueError, match=r"QueueConfig.max_size must be an integer >= 1 \(got 0\)"):
        QueueConfig(max_size=0)
    with pytest.raises(ValueError, match=r"QueueConfig.aging_s must be > 0 \(got -1\)"):
        QueueConfig(aging_s=-1)
    with pytest.raises(ValueError, match="priority"):
        PriorityQueue(levels=2).put("x", 2)
    with pytest.raises(ValueError, match="Scenario.high_share"):
        study.Scenario(high_share=1.5)


def test_library_heapq_and_queue_priorityqueue_agree_with_the_hand_made_queue():
    rng = np.random.default_rng(3)
    items = [(int(p), f"m{i}") for i, p in enumerate(rng.integers(0, 4, 300))]
    mine = PriorityQueue(levels=4, clock=lambda: 0.0)
    lib = queue.PriorityQueue()
    heap: list = []
    for i, (p, name) in enumerate(items):
        mine.put(name, p)
        lib.put((p, i, name))
        heapq.heappush(heap, (p, i, name))
    expected = [mine.get()[0] for _ in items]
    assert expected == [lib.get()[2] for _ in items]
    assert expected == [heapq.heappop(heap)[2] for _ in items]


def test_production_queue_bound_eviction_metrics_and_threads():
    q = ProductionPriorityQueue("t", QueueConfig(levels=2, max_size=3), clock=lambda: 0.0)
    for name in ("l1", "l2", "l3"):
        q.put(name, 1)
    q.put("h1", 0)  # full: the least urgent, newest low item makes room
    assert q.evicted == [("l3", 1)] and len(q) == 3
    q2 = ProductionPriorityQueue("u", QueueConfig(levels=2, max_size=1, evict_lower=False))
    q2.put("a", 0)
    with pytest.raises(QueueFullError):
        q2.put("b", 0)
    with pytest.raises(TimeoutError):
        ProductionPriorityQueue("e").get(timeout_s=0.01)
    got = []
    consumer = threading.Thread(target=lambda: got.append(q.get(timeout_s=2)), daemon=True)
    consumer.start()
    consumer.join(2)
    assert not consumer.is_alive() and got[0][:2] == ("h1", 0)
    counts = q.metrics.counts
    assert counts["put_p1"] == 3 and counts["put_p0"] == 1 and counts["evicted_p1"] == 1
    assert counts["get_p0"] == 1


@pytest.mark.skipif(redis_server.unavailable() is not None, reason="no redis-server here")
def test_redis_sorted_set_gives_the_same_order():
    rng = np.random.default_rng(5)
    items = [(int(p), f"m{i}") for i, p in enumerate(rng.integers(0, 3, 200))]
    now = [0.0]
    for aging in (None, 2.0):
        now[0] = 0.0
        mine = PriorityQueue(levels=3, aging_s=aging, clock=lambda: now[0])
        with redis_server.RedisServer() as server:
            red = RedisPriorityQueue(server.client(), "jobs", levels=3, aging_s=aging,
                                     clock=lambda: now[0])
            for p, name in items:
                now[0] += 0.1
                mine.put(name, p)
                red.put(name, p)
            assert [mine.get()[0] for _ in items] == [red.get()[0] for _ in items]
            assert red.get() is None


def test_event_loop_and_simpy_server_pool_give_the_same_rows():
    for sc in (study.Scenario(duration_s=100), study.Scenario(duration_s=100, discipline="fifo"),
               study.Scenario(duration_s=100, arrival_rate=45, high_share=0.7)):
        fast, pool = study.simulate(sc), study.simulate_pool(sc)
        assert np.allclose(fast.start, pool.start) and np.allclose(fast.end, pool.end)


def test_common_random_numbers_same_traffic_across_disciplines():
    a = study.simulate(study.Scenario(duration_s=50))
    b = study.simulate(study.Scenario(duration_s=50, discipline="fifo", aging_s=1.0))
    assert np.array_equal(a.arrival, b.arrival) and np.array_equal(a.cls, b.cls)


def _replicated(sc, reps):
    rows = [study.summary(study.simulate(replace(sc, seed=s))) for s in range(1, reps + 1)]
    return {k: np.array([r[k] for r in rows]) for k in ("high_mean_wait_s", "low_mean_wait_s",
                                                         "mean_wait_s")}


@pytest.mark.parametrize("share", [0.2, 0.5, 0.8])
def test_cobham_matches_the_simulation(share):
    # 6 independent replications of 2,000 s at ρ = 0.7 (about 70,000 requests each, 5 % warm-up
    # dropped). Tolerance: 4 standard errors of the mean across replications (the replications
    # are independent, so their spread measures the run's own autocorrelated noise), plus 2 %
    # for the warm-up bias. Measured gaps are under 2 standard errors.
    sc = study.Scenario(arrival_rate=35.0, high_share=share, duration_s=2000.0)
    got = _replicated(sc, 6)
    for name, expected in zip(("high_mean_wait_s", "low_mean_wait_s"), study.cobham_waits(sc),
                              strict=True):
        se = got[name].std(ddof=1) / np.sqrt(len(got[name]))
        assert abs(got[name].mean() - expected) < 4 * se + 0.02 * expected, (name, share)


def test_everything_high_is_fifo_and_the_conservation_law_holds():
    # With one service distribution for both classes the order does not change the mean wait
    # over all requests (Kleinrock's conservation law): priority only moves waiting between
    # classes. Same traffic (common random numbers), so the two means agree to within 3 %.
    sc = study.Scenario(arrival_rate=38.0, high_share=0.4, duration_s=2000.0)
    prio = study.summary(study.simulate(sc))["mean_wait_s"]
    fifo = study.summary(study.simulate(replace(sc, discipline="fifo")))["mean_wait_s"]
    assert abs(prio - fifo) / fifo < 0.03
    assert abs(fifo - study.fifo_wait(sc)) / study.fifo_wait(sc) < 0.1
    allhigh = study.simulate(replace(sc, high_share=1.0))
    assert np.allclose(allhigh.start, study.simulate(replace(sc, high_share=1.0,
                                                             discipline="fifo")).start)


def test_preemption_cuts_the_high_wait_and_aging_bounds_the_low_tail():
    sc = study.Scenario(arrival_rate=45.0, high_share=0.7, duration_s=600.0)
    plain = study.summary(study.simulate(sc))
    pre = study.summary(study.simulate(replace(sc, discipline="preemptive")))
    aged = study.summary(study.simulate(replace(sc, aging_s=0.5)))
    assert pre["high_mean_wait_s"] < 0.8 * plain["high_mean_wait_s"]
    assert aged["low_p99_wait_s"] < 0.6 * plain["low_p99_wait_s"]
    assert aged["high_mean_wait_s"] > plain["high_mean_wait_s"]


def test_priority_inheritance_helps_the_high_class():
    fifo, prio = study.inversion_demo("fifo"), study.inversion_demo("priority")
    assert prio["high_mean_latency_s"] < 0.8 * fifo["high_mean_latency_s"]


def test_shedding_protects_the_high_class_in_a_burst():
    sc = study.Scenario(duration_s=300.0, burst=(100.0, 200.0, 20.0), shed_max_wait_s=(1.0, 0.1))
    s = study.summary(study.simulate(sc))
    assert s["high_shed_share"] == 0.0 and s["low_shed_share"] > 0.05
    assert s["low_max_wait_s"] < study.summary(study.simulate(replace(
        sc, shed_max_wait_s=None)))["low_max_wait_s"]
