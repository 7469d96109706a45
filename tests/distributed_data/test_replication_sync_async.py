"""Synchronous vs asynchronous replication: the pattern's classes, the study against its closed
forms, the lab nodes under a crash-stop of the primary, and a real Redis with WAIT."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from concurrently import run_concurrently

from patterns.distributed_data.replication_sync_async import (
    Entry,
    NotEnoughReplicas,
    Primary,
    ProductionPrimary,
    Replica,
    ReplicationConfig,
    ReplicationTimeout,
    ThreadReplica,
    acknowledged_position,
    lost_writes,
    promote,
    timed_writes,
)
from simulations import redis_server
from simulations.distributed_data import replication_sync_async as study
from simulations.lab import Crash, Latency, run
from simulations.theory import order_statistic_cdf


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------- Level 2


def test_acknowledged_position_is_the_kth_largest_confirmation() -> None:
    assert acknowledged_position([5, 9, 2], 1) == 9
    assert acknowledged_position([5, 9, 2], 2) == 5
    assert acknowledged_position([5, 9, 2], 3) == 2
    assert acknowledged_position([5, 9], 3) == 0


@pytest.mark.parametrize(("acks", "after_first", "after_second"), [(0, 3, 3), (1, 3, 3),
                                                                   (2, 0, 3)])
def test_primary_acknowledges_after_acks_confirmations(acks, after_first, after_second) -> None:
    clock = FakeClock()
    primary = Primary(["r1", "r2"], acks, clock)
    for i in range(3):
        clock.now = float(i)
        primary.append(f"k{i}", i)
    assert primary.committed == (3 if acks == 0 else 0)
    clock.now = 10.0
    assert primary.confirm("r1", 3) == after_first
    primary.confirm("r2", 1)
    primary.confirm("r2", 3)
    assert primary.committed == after_second
    assert primary.confirm("r2", 2) == 3, "an old confirmation must not move anything back"


def test_primary_lag_is_the_age_of_the_oldest_write_a_replica_lacks() -> None:
    clock = FakeClock()
    primary = Primary(["r1"], 1, clock)
    primary.append("a", 1)
    clock.now = 2.0
    primary.append("b", 2)
    clock.now = 5.0
    assert primary.lag_s("r1") == 5.0
    primary.confirm("r1", 1)
    assert primary.lag_s("r1") == 3.0
    primary.confirm("r1", 2)
    assert primary.lag_s("r1") == 0.0


def test_replica_applies_in_order_and_ignores_duplicates() -> None:
    replica = Replica("r1")
    entries = [Entry(p, "k", p, 0.0) for p in (1, 2, 3)]
    assert replica.receive(entries[2]) == 0
    assert replica.receive(entries[0]) == 1
    assert replica.receive(entries[0]) == 1
    assert replica.receive(entries[1]) == 3
    assert [e.value for e in replica.log] == [1, 2, 3]


def test_promote_picks_the_longest_log_and_counts_the_loss() -> None:
    assert promote({"r1": 4, "r2": 7, "r3": 7}) == "r2"
    primary = Primary(["r1", "r2"], 0)
    for i in range(5):
        primary.append("k", i)
    assert lost_writes(primary, 3) == 2 and lost_writes(primary, 5) == 0
    with pytest.raises(ValueError, match="at least one surviving replica"):
        promote({})


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"acks": -1}, "ReplicationConfig.acks must be an integer >= 0 (got -1)"),
    ({"timeout_s": 0}, "ReplicationConfig.timeout_s must be > 0 (got 0)"),
    ({"on_timeout": "ignore"}, "ReplicationConfig.on_timeout must be one of fail, async"),
    ({"max_lag_s": -2.0}, "ReplicationConfig.max_lag_s must be > 0 (got -2.0)"),
])
def test_config_errors_name_the_field_the_value_and_what_is_allowed(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ReplicationConfig(**kwargs)


def test_primary_refuses_more_acks_than_replicas() -> None:
    with pytest.raises(ValueError, match=r"acks must be an integer in \[0, 2\] \(got 3\)"):
        Primary(["r1", "r2"], 3)
    with pytest.raises(ValueError, match="acks must be <= the 1 replicas"):
        ProductionPrimary("db", {"r1": lambda entry: None}, ReplicationConfig(acks=2))


# ---------------------------------------------------------------- Level 3


def _cluster(config: ReplicationConfig, delays=(0.0005, 0.0005, 0.0005)):
    replicas = [ThreadReplica(f"r{i}", delay=lambda d=d: d) for i, d in enumerate(delays)]
    primary = ProductionPrimary("db", {r.name: r.ship for r in replicas}, config)
    for r in replicas:
        r.primary = primary
    return primary, replicas


def test_production_primary_counts_add_up_under_threads() -> None:
    primary, replicas = _cluster(ReplicationConfig(acks=2, timeout_s=5.0))

    def writer(i: int) -> None:
        for j in range(40):
            primary.write(f"k{i}", j)

    run_concurrently(writer, range(4), timeout_s=30)
    counts = primary.metrics.counts
    assert counts["writes"] == counts["acknowledged"] == 160 == len(primary.log)
    assert primary.committed == 160
    assert sorted(e.position for e in primary.log) == list(range(1, 161))
    assert primary.metrics.observed("commit_seconds") == 160
    for r in replicas:
        r.stop()


def test_a_hung_replica_times_out_sync_all_or_degrades_to_async(caplog) -> None:
    primary, replicas = _cluster(ReplicationConfig(acks=3, timeout_s=0.05))
    replicas[2].hang()
    with pytest.raises(ReplicationTimeout, match="fewer than 3 confirmations"):
        primary.write("a", 1)
    degraded, others = _cluster(ReplicationConfig(acks=3, timeout_s=0.05, on_timeout="async"))
    others[0].hang()
    with caplog.at_level("WARNING", logger="patterns.distributed_data.replication_sync_async"):
        assert degraded.write("a", 1) == 1
    assert degraded.metrics.counts["degraded"] == 1 and degraded.committed == 0
    assert "asynchronous fallback" in caplog.text
    semi, more = _cluster(ReplicationConfig(acks=2, timeout_s=1.0))
    more[2].hang()
    assert semi.write("a", 1) == 1 and semi.metrics.counts["timeouts"] == 0
    for r in replicas + others + more:
        r.resume()
        r.stop()


def test_min_replicas_refuses_writes_when_replicas_lag() -> None:
    clock = FakeClock()
    primary = ProductionPrimary("db", {"r1": lambda e: None},
                                ReplicationConfig(acks=0, min_replicas=1, max_lag_s=1.0), clock)
    primary.write("a", 1)
    clock.now = 2.0
    with pytest.raises(NotEnoughReplicas, match="fewer than 1 replicas"):
        primary.write("b", 2)
    primary.confirm("r1", 1)
    assert primary.write("c", 3) == 2
    assert primary.metrics.counts["refused"] == 1


@pytest.mark.skipif(redis_server.unavailable() is not None, reason="no redis-server here")
def test_redis_wait_reports_the_replicas_that_hold_the_write() -> None:
    import signal
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with redis_server.RedisServer(port=port, bind="127.0.0.1",
                                  repl_diskless_sync_delay=0) as primary_server:
        client = primary_server.client()
        with redis_server.RedisServer(replicaof=f"127.0.0.1 {port}") as replica_server:
            for _ in range(500):
                if client.wait(1, 10) == 1:
                    break
            seconds, reached = timed_writes(client, 20, numreplicas=1, timeout_ms=2000)
            assert reached == [1] * 20 and len(seconds) == 20
            assert replica_server.client().get("timed:19") == "19"
            replica_server.process.send_signal(signal.SIGSTOP)
            try:
                _, stalled = timed_writes(client, 1, numreplicas=1, timeout_ms=100)
            finally:
                replica_server.process.send_signal(signal.SIGCONT)
            assert stalled == [0]


# ---------------------------------------------------------------- the study


def test_simpy_and_fast_path_give_the_same_rows() -> None:
    scenario = study.Scenario(horizon_s=3.0, slowdown=("zone-c", 1.0, 2.0, 5.0))
    for acks in (0, 2):
        slow = study.simulate(replace(scenario, acks=acks))
        fast = study.fast_simulate(replace(scenario, acks=acks))
        np.testing.assert_allclose(slow.held_s, fast.held_s, rtol=1e-12)
        np.testing.assert_allclose(slow.acked_s, fast.acked_s, rtol=1e-12)


def test_a_real_crash_in_simpy_loses_what_losses_at_predicts() -> None:
    scenario = study.Scenario(acks=0, horizon_s=2.0)
    run_ = study.fast_simulate(scenario)
    crash = np.array([0.5, 1.0, 1.5])
    lost, rpo = study.losses_at(run_, crash)
    for t, expected in zip(crash, lost, strict=True):
        held = [np.searchsorted(run_.held_s[:, r], t, side="right") for r in range(3)]
        best = held[[s.name for s in scenario.replicas].index(
            promote(dict(zip([s.name for s in scenario.replicas], held, strict=True))))]
        assert np.searchsorted(run_.acked_s, t, side="right") - best == expected
    assert np.all((rpo > 0) == (lost > 0))


def test_semi_sync_loses_nothing_unless_its_acks_share_the_primarys_zone() -> None:
    base = study.Scenario(horizon_s=5.0, crashes=300)
    assert study.summary(study.fast_simulate(base))["lost_mean"] == 0
    near = replace(base, replicas=(study.SITES["same-zone"], study.SITES["zone-b"]),
                   zone_failure=True)
    assert study.summary(study.fast_simulate(near))["lost_mean"] > 0
    assert study.summary(study.fast_simulate(replace(near, acks=2)))["lost_mean"] == 0


def test_lag_bound_refuses_writes_during_a_slowdown_and_shrinks_the_loss() -> None:
    slow = study.Scenario(replicas=(study.SITES["zone-b"],), acks=0, horizon_s=6.0,
                          slowdown=("zone-b", 2.0, 4.0, 100.0))
    free = study.summary(study.simulate(slow))
    bounded = study.summary(study.simulate(replace(slow, min_replicas=1, max_lag_s=0.05)))
    assert bounded["refused_share"] > 0.05 and free["refused_share"] == 0
    assert bounded["lost_mean"] < free["lost_mean"] / 5
    assert bounded["rpo_mean_s"] < free["rpo_mean_s"] / 2


def test_closed_forms_reduce_to_the_order_statistics_of_a_lone_write() -> None:
    for k in (1, 2, 3):
        cdf = study.commit_cdf(0.003, [500.0] * 3, k)
        assert cdf == pytest.approx(order_statistic_cdf(1 - np.exp(-1.5), 3, k), rel=1e-9)
        assert study.commit_latency_mean_ordered([500.0] * 3, k, 0.0) == pytest.approx(
            study.commit_latency_mean(0.002, 3, k), rel=1e-4)
    # One replica, async: 1 - e^-ρ + ρ·Ein(ρ), Ein the entire exponential integral (series).
    rho = 0.4
    ein = sum((-1) ** (j + 1) * rho**j / (j * np.prod(np.arange(1, j + 1, dtype=float)))
              for j in range(1, 20))
    assert study.expected_lost_writes([500.0], 0, 200.0) == pytest.approx(
        1 - np.exp(-rho) + rho * ein, rel=1e-5)
    assert study.writes_in_flight(200.0, 0.002) == pytest.approx(0.4)


def test_in_order_hold_probability_agrees_with_the_read_replicas_lesson() -> None:
    """One replica's in-order hold probability, against read-replicas' fixed-point solution."""
    from simulations.distributions import Exponential
    from simulations.performance.read_replicas import in_order_lag_survival

    ages = np.array([0.001, 0.002, 0.005])
    ours = study.commit_cdf(ages, [500.0], 1, write_rate=200.0)
    theirs = 1 - in_order_lag_survival(Exponential(0.002), 200.0, ages)
    np.testing.assert_allclose(ours, theirs, atol=2e-3)


def test_commit_latency_and_loss_match_the_ordered_log_theory() -> None:
    """Mean commit latency for k = 1, 2, 3 and async loss against the closed forms.

    Tolerance from the sampling error: 4 runs of 30 s (~6,000 writes each) put the standard
    error of the mean commit latency under 1 %; 3 % is over 3 standard errors. Loss: 4 runs
    with 3,000 failure instants each; the count's standard deviation is about 0.5 per look, so
    its mean has a standard error near 0.005, and the tolerance is 0.03 absolute.
    """
    base = study.Scenario(horizon_s=30.0, crashes=3000)
    for acks in (1, 2, 3):
        rows = [study.summary(study.fast_simulate(replace(base, acks=acks, seed=s)))
                for s in range(1, 5)]
        simulated = np.mean([r["commit_mean_s"] for r in rows])
        theory = study.commit_latency_mean_ordered(list(base.rates), acks, base.write_rate,
                                                   base.local_s)
        assert simulated == pytest.approx(theory, rel=0.03)
    rows = [study.summary(study.fast_simulate(replace(base, acks=0, seed=s)))
            for s in range(1, 5)]
    assert np.mean([r["lost_mean"] for r in rows]) == pytest.approx(
        study.expected_lost_writes(list(base.rates), 0, base.write_rate), abs=0.03)


def test_scenario_errors_are_one_line() -> None:
    with pytest.raises(ValueError, match=r"Scenario.acks must be an integer in \[0, 3\]"):
        study.Scenario(acks=4)
    with pytest.raises(ValueError, match="distinct names"):
        study.Scenario(replicas=(study.SITES["zone-b"], study.SITES["zone-b"]))
    with pytest.raises(ValueError, match="Scenario.slowdown must be"):
        study.Scenario(slowdown=("nowhere", 1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match="cannot refuse writes"):
        study.fast_simulate(study.Scenario(min_replicas=1))


# ---------------------------------------------------------------- the protocol lab


def test_async_loses_acknowledged_writes_and_the_quorum_nodes_do_not() -> None:
    broken = run(study.AsyncPrimaryBackup, study.lab_scenario(1), 1).check()
    assert not broken.valid and broken.witness
    for seed in (1, 2):
        for node in (study.SyncPrimaryBackup, study.SemiSyncPrimaryBackup):
            run(node, study.lab_scenario(seed), seed).check().assert_valid()


def test_sync_all_stops_writing_after_failover_and_semi_sync_does_not() -> None:
    scenario = study.lab_scenario(3)
    crash = scenario.nemesis.faults[0].start_s

    def late_ok_writes(node) -> int:
        history = run(node, scenario, 3).history
        return sum(op.status == "ok" and op.f == "write" and op.invoke_s > crash + 0.5
                   for op in history)

    assert late_ok_writes(study.SyncPrimaryBackup) == 0
    assert late_ok_writes(study.SemiSyncPrimaryBackup) > 10


def test_with_settings_makes_a_subclass() -> None:
    faster = study.with_settings(study.SemiSyncPrimaryBackup, detect_timeout_s=0.05)
    assert issubclass(faster, study.SemiSyncPrimaryBackup) and faster.detect_timeout_s == 0.05
    assert study.SemiSyncPrimaryBackup.detect_timeout_s == 0.1
    slow = study.lab_scenario(1, latency=(Latency(0.2, src="n1", dst="n3"), Latency()),
                              extra=(Crash("n3", 0.5),))
    assert len(slow.nemesis.faults) == 2
