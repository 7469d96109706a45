"""Tests of the Publish-Subscribe pattern (patterns.communication.publish_subscribe) and its study
(simulations.communication.publish_subscribe): behaviour, error messages, theory vs simulation."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from patterns.communication.publish_subscribe import (
    Broker,
    BrokerConfig,
    PartitionedTopic,
    ProductionBroker,
    assign_partitions,
    partition_for,
)
from simulations.communication import publish_subscribe as study


def test_fan_out_copies_to_every_subscriber():
    broker = Broker(clock=lambda: 1.0)
    for name in "abc":
        broker.subscribe("news", name)
    assert broker.publish("news", "hello") == 3
    assert [m.payload for m in broker.poll("news", "b")] == ["hello"]
    assert broker.copies == 3 and broker.published == 1


def test_fire_and_forget_loses_what_is_published_while_disconnected():
    broker = Broker()
    broker.subscribe("t", "volatile")
    broker.subscribe("t", "durable", durable=True)
    broker.publish("t", 0)
    broker.disconnect("t", "volatile")
    broker.disconnect("t", "durable")
    for i in range(1, 5):
        broker.publish("t", i)
    broker.reconnect("t", "volatile")
    broker.reconnect("t", "durable")
    assert broker.poll("t", "volatile") == []
    assert [m.payload for m in broker.poll("t", "durable")] == [0, 1, 2, 3, 4]
    assert broker.subscription("t", "volatile").lost == 5  # 1 queued + 4 missed


def test_poll_while_disconnected_raises():
    broker = Broker()
    broker.subscribe("t", "s")
    broker.disconnect("t", "s")
    with pytest.raises(ConnectionError, match="reconnect first"):
        broker.poll("t", "s")


def test_partitions_keep_order_per_key_and_one_owner_per_partition():
    topic = PartitionedTopic(3)
    for i in range(30):
        topic.publish(f"user{i % 5}", i)
    for log in topic.logs:
        for key in {m.key for m in log}:
            seq = [m.payload for m in log if m.key == key]
            assert seq == sorted(seq)
    owned = assign_partitions(3, ["a", "b", "c", "d"])
    assert sorted(p for ps in owned.values() for p in ps) == [0, 1, 2] and owned["d"] == []
    assert partition_for("user1", 3) == partition_for("user1", 3)
    got = topic.poll("g", owned["a"]) + topic.poll("g", owned["a"])
    assert len(got) == len(topic.logs[0])  # committed: the second poll returns nothing new


def test_config_errors_name_the_field():
    with pytest.raises(ValueError,
                       match=r"BrokerConfig.max_queue must be an integer >= 1 \(got -1\)"):
        BrokerConfig(max_queue=-1)
    with pytest.raises(ValueError, match="BrokerConfig.slow_subscriber must be one of"):
        BrokerConfig(slow_subscriber="block")


def test_slow_subscriber_is_disconnected_and_counters_add_up_under_threads():
    broker = ProductionBroker("b", BrokerConfig(max_queue=50))
    broker.subscribe("t", "fast", max_queue=10**6)  # whatever the threads' timing
    broker.subscribe("t", "slow")
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            broker.poll("t", "fast")

    def writer():
        for i in range(500):
            broker.publish("t", i)

    threads = [threading.Thread(target=writer, daemon=True) for _ in range(4)]
    poller = threading.Thread(target=reader, daemon=True)
    poller.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    stop.set()
    poller.join(10)
    assert not any(t.is_alive() for t in [*threads, poller])
    broker.poll("t", "fast")
    c = broker.metrics.counts
    assert c["published"] == 2000 and c["slow_disconnects"] == 1
    assert c["copies"] == c["delivered"] + c["lost"] + broker.queued()
    assert broker.subscription("t", "fast").received == 2000


def test_ideal_broker_matches_f_to_the_n():
    # 1800 messages per replication, 3 seeds; the empirical CDF of the maximum at a point
    # has standard error sqrt(p(1-p)/5400) <= 0.007, so 0.03 is more than four of them.
    ideal = study.Scenario(write_s=0.0, serialize_s=0.0, subscribers=30)
    times = np.concatenate([study.simulate(ideal, np.random.default_rng(s)).all_delivered
                            for s in range(3)])
    for t in (0.01, 0.02, 0.04, 0.08):
        theory = study.all_delivered_cdf(t, 30, ideal.delay_mean_s, ideal.delay_scv)
        assert abs(np.mean(times <= t) - theory) < 0.03


def test_light_load_matches_the_staircase():
    # load 0.06: the sender is almost always idle; same tolerance argument as above.
    sc = study.Scenario(publish_rate=50, subscribers=20, partitions=1)
    times = np.concatenate([study.simulate(sc, np.random.default_rng(s)).all_delivered
                            for s in range(4)])
    for t in (0.015, 0.03, 0.06):
        assert abs(np.mean(times <= t) - study.staircase_cdf(t, sc)) < 0.04


def test_egress_is_fan_out_times_publish_rate_until_capacity():
    # egress counts ~2000 messages x N copies: Poisson error ~ 1/sqrt(2000) = 2 %; allow 5 %.
    for n in (5, 20):
        sc = study.Scenario(subscribers=n, partitions=2)
        got = study.summary(study.simulate(sc), 1.0)["egress_cps"]
        assert got == pytest.approx(n * sc.publish_rate, rel=0.05)
    over = study.Scenario(subscribers=40, partitions=1)  # load 2.4: capped by the sender
    assert study.summary(study.simulate(over), 1.0)["egress_cps"] == pytest.approx(
        study.egress_capacity(over), rel=0.01)


def test_group_capacity_caps_consumption():
    # offered 800/s, capacity 500/s (4 partitions, 2 consumers, 4 ms): the measured throughput
    # sits within 3 % of capacity; with 8 consumers (> P) it is no higher than with 4.
    got = study.consume(800, 4, 2, 0.004)["throughput_mps"]
    assert got == pytest.approx(study.group_capacity(4, 2, 0.004), rel=0.03)
    assert study.group_capacity(4, 8, 0.004) == study.group_capacity(4, 4, 0.004)
