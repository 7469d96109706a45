"""The partitioned-log-consumers lesson's model: the group and its offsets, the queueing study
against its closed forms, the lab pipeline under a nemesis, and Redis Streams beside the group."""

from __future__ import annotations

import math

import numpy as np
import pytest

from patterns.specialized.partitioned_log_consumers import (
    CommitRefusedError,
    ConsumerGroup,
    GroupConfig,
    IdempotentSink,
    PartitionedLog,
    ProductionConsumerGroup,
    range_assign,
)
from simulations import redis_server
from simulations.lab import run
from simulations.specialized import partitioned_log_consumers as study
from simulations.specialized.partitioned_log_lab import (
    CountEverything,
    DuplicatingBroker,
    SkipSeenOffsets,
    crash_scenario,
    random_scenario,
)

# ---------------------------------------------------------------- the pattern

def test_range_assign_matches_kafkas_range_rule() -> None:
    # Kafka's RangeAssignor javadoc: 3 partitions, 2 consumers -> C0: [p0, p1], C1: [p2]
    assert range_assign(3, ["C1", "C0"]) == {"C0": [0, 1], "C1": [2]}
    assert range_assign(2, ["a", "b", "c"]) == {"a": [0], "b": [1], "c": []}
    with pytest.raises(ValueError, match="at least one member"):
        range_assign(3, [])


def test_a_rebalance_replays_what_was_polled_but_not_committed() -> None:
    now = [0.0]
    log = PartitionedLog(2, lambda: now[0])
    for i in range(10):
        log.append(f"k{i}", i)
    group = ConsumerGroup(log, session_timeout_s=10, clock=lambda: now[0])
    group.join("a")
    first = group.poll("a")
    assert len(first) == 10
    group.commit("a", {r.partition: r.offset + 1 for r in first[:3]})  # commits a prefix only
    group.join("b")
    now[0] = 11.0
    group.poll("b")  # b stays alive; a has been silent for 11 s
    assert group.expire() == ["a"]
    replayed = group.poll("b")
    assert {(r.partition, r.offset) for r in replayed} <= {(r.partition, r.offset) for r in first}
    assert len(replayed) == 10 - sum(group.committed)
    with pytest.raises(CommitRefusedError, match="rebalanced"):
        group.commit("a", {0: 5})


def test_idempotent_sink_applies_each_offset_once() -> None:
    log = PartitionedLog(1, lambda: 0.0)
    records = [log.append("k", 2) for _ in range(5)]
    total = []
    sink = IdempotentSink(lambda r: total.append(r.value))
    for r in records[:3] + records:  # the first three come twice (a replay)
        sink.apply(r)
    assert sum(total) == 10 and sink.skipped == 3


@pytest.mark.parametrize(("field", "value", "allowed"), [
    ("session_timeout_s", 0, "> 0"), ("max_poll_records", 0, "integer >= 1"),
    ("assignor", "sticky", "one of range, roundrobin")])
def test_config_errors_name_field_value_and_allowed(field, value, allowed) -> None:
    with pytest.raises(ValueError) as error:
        GroupConfig(**{field: value})
    assert f"GroupConfig.{field}" in str(error.value) and allowed in str(error.value)


def test_production_group_drops_a_member_stuck_past_max_poll_interval(caplog) -> None:
    now = [0.0]
    log = PartitionedLog(4, lambda: now[0])
    group = ProductionConsumerGroup(log, GroupConfig(max_poll_interval_s=5), lambda: now[0])
    group.join("a")
    group.join("b")
    now[0] = 6.0
    group.heartbeat("a")  # a heartbeats (its background thread) but has not polled
    group.heartbeat("b")
    group.poll("b")
    with caplog.at_level("WARNING", logger="patterns.specialized.partitioned_log_consumers"):
        assert group.expire() == ["a"]
    assert "poll interval exceeded" in caplog.text
    assert group.assignment == {"b": [0, 1, 2, 3]}
    assert group.metrics.counts["rebalances"] == 3


# ---------------------------------------------------------------- the study against theory

def test_lag_matches_per_consumer_mm1_and_exceeds_the_pooled_mmc() -> None:
    # 600 s at 300 records/s is 180,000 records; the time-average lag of an M/M/1 at ρ = 0.75
    # has a relative standard error near 4 % over 600 s (batch means on longer runs), so a 12 %
    # band (3 standard errors) holds a correct model and fails a wrong one (pooled is 62 % lower).
    scenario = study.Scenario(arrival_rate=300, consumers=4, duration_s=600)
    measured = study.lag_between(study.simulate(scenario), 20, 600)
    exact = study.mean_lag(300, 100, scenario.shares, 4)
    assert measured == pytest.approx(exact, rel=0.12)
    assert study.pooled_mean_lag(300, 100, 8, 4) < 0.5 * measured


def test_a_hot_partition_caps_throughput_whatever_the_consumers() -> None:
    shares = study.partition_shares(8, 0.4)
    assert study.max_throughput(100, shares, 8) == pytest.approx(250)
    assert study.max_throughput(100, shares, 16) == pytest.approx(250)
    # overloaded at 300/s: the hot consumer finishes at most μ = 100/s of its 120/s; over 60 s
    # the measured throughput must sit at the bound 100 + 0.6·300 = 280/s within 2 %
    # (Poisson counts of ~15,000 have a 1 % standard error).
    run_ = study.simulate(study.Scenario(arrival_rate=300, hot_share=0.4, consumers=8))
    assert study.summary(run_, 10)["throughput_rps"] == pytest.approx(100 + 0.6 * 300, rel=0.02)


def test_duplicates_after_a_crash_match_the_uncommitted_window() -> None:
    # crash at 22 s with commits every 5 s: 2 s uncommitted at 50 records/s -> 100 expected;
    # the count is Poisson-like (sd ≈ 10), so the mean of 10 seeds has sd ≈ 3.2 and a 10 %
    # band is three of them.
    counts = [study.simulate(study.Scenario(crash_s=22.0, seed=s)).duplicates for s in range(10)]
    assert np.mean(counts) == pytest.approx(study.expected_duplicates(200, 0.25, 22, 5), rel=0.1)


def test_an_heir_works_off_the_backlog_in_the_fluid_time() -> None:
    # cooperative rebalance ends at 35 s; backlog 25/s × 15 s = 375 records; the heir runs at
    # 75 of 100 records/s, so the fluid model says 375 / 25 = 15 s. The queue is a random walk
    # with variance (λ + μ)·t ≈ 2600 records² over 15 s, i.e. ±2 s per heir; 16 heirs (8 seeds)
    # give a mean within ±0.5 s, so a 2 s band is four standard errors.
    scenario = study.Scenario(crash_s=22.0, protocol="cooperative", duration_s=90.0)
    drains = []
    for seed in range(8):
        r = study.simulate(study.Scenario(**{**scenario.__dict__, "seed": seed}))
        drains += [study.drained_s(r, heir, scenario.resume_s) - scenario.resume_s
                   for heir in r.heirs.values()]
    assert np.mean(drains) == pytest.approx(study.catch_up_s(375, 100, 75), abs=2.0)


def test_cooperative_rebalance_keeps_survivors_working() -> None:
    eager = study.simulate(study.Scenario(crash_s=22.0, protocol="eager"))
    coop = study.simulate(study.Scenario(crash_s=22.0, protocol="cooperative"))
    for i in (1, 2, 3):  # survivors: the eager pause adds lag, the cooperative one does not
        assert study.lag_between(coop, 32, 35, i) < study.lag_between(eager, 32, 35, i)
    assert study.catch_up_s(600, 100, 75) == pytest.approx(24)
    assert math.isinf(study.catch_up_s(10, 100, 120))


def test_scenario_errors_name_the_setting() -> None:
    with pytest.raises(ValueError, match="protocol must be one of eager, cooperative"):
        study.Scenario(protocol="sticky")
    with pytest.raises(ValueError, match="hot_share must be"):
        study.Scenario(hot_share=1.5)
    with pytest.raises(ValueError, match="consumers >= 2"):
        study.Scenario(consumers=1, crash_s=5.0)


# ---------------------------------------------------------------- the protocol lab

def test_idempotent_sink_passes_and_naive_sink_double_counts() -> None:
    good = run(SkipSeenOffsets, crash_scenario(), 1).check()
    bad = run(CountEverything, crash_scenario(), 1).check()
    assert good.valid, str(good)
    assert not bad.valid and bad.witness and "outside their bounds" in bad.reason
    for seed in (1, 3, 5):
        assert run(SkipSeenOffsets, random_scenario(), seed).check().valid


def test_offset_dedup_is_not_enough_without_producer_idempotence() -> None:
    class OffsetsOnly(DuplicatingBroker, SkipSeenOffsets):
        pass

    assert not run(OffsetsOnly, random_scenario(("duplicate",)), 1).check().valid


# ---------------------------------------------------------------- a real broker

@pytest.mark.skipif(redis_server.unavailable() is not None, reason="no redis-server here")
def test_redis_streams_redeliver_a_dead_consumers_entries() -> None:
    with redis_server.RedisServer() as server:
        r = server.client()
        r.xgroup_create("orders", "billing", id="0", mkstream=True)
        for i in range(20):
            r.xadd("orders", {"i": i})
        got = r.xreadgroup("billing", "dead", {"orders": ">"}, count=20)[0][1]
        r.xack("orders", "billing", *[entry for entry, _ in got[:15]])
        assert r.xpending("orders", "billing")["pending"] == 5
        claimed = r.xautoclaim("orders", "billing", "heir", min_idle_time=0)[1]
        assert [int(f["i"]) for _, f in claimed] == list(range(15, 20))


@pytest.mark.skipif(redis_server.unavailable() is not None, reason="no redis-server here")
def test_the_hand_made_group_hands_over_what_redis_hands_over() -> None:
    # the same 300 records in 3 partitions; consumer b reads its partitions and dies without
    # committing (acknowledging); both must hand exactly those records to the survivor
    now = [0.0]
    log = PartitionedLog(3, lambda: now[0])
    for i in range(300):
        log.append(f"k{i}", i)
    group = ConsumerGroup(log, session_timeout_s=1.0, clock=lambda: now[0])
    group.join("a")
    group.join("b")
    b_parts = group.assignment["b"]
    group.poll("b")
    now[0] = 2.0
    group.poll("a")
    group.commit("a")
    group.expire()
    ours = sorted(r.value for r in group.poll("a") if r.partition in b_parts)
    with redis_server.RedisServer() as server:
        r = server.client()
        for p in range(3):
            r.xgroup_create(f"s{p}", "g", id="0", mkstream=True)
            for record in log.logs[p]:
                r.xadd(f"s{p}", {"v": record.value})
        for p in b_parts:
            r.xreadgroup("g", "b", {f"s{p}": ">"}, count=1000)
        theirs = sorted(int(f["v"]) for p in b_parts
                        for _, f in r.xautoclaim(f"s{p}", "g", "a", 0, count=1000)[1])
    assert ours == theirs and len(ours) == sum(len(log.logs[p]) for p in b_parts)
