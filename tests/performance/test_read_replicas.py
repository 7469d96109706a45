"""Tests of the read-replicas pattern (patterns.performance.read_replicas) and its study
(simulations.performance.read_replicas): behaviour, error messages, theory vs simulation, the
lab's checker on a stale and a caught-up replica read, and SQLite as a real replica."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import numpy as np
import pytest

from patterns.performance.read_replicas import (
    ConsistentRouter,
    Primary,
    RoundRobinRouter,
    RouterConfig,
    replicas,
)
from simulations import theory
from simulations.distributions import Exponential, LogNormal
from simulations.lab import RandomNemesis, ReadAnyReplica, RegisterWorkload, run
from simulations.lab import Scenario as LabScenario
from simulations.performance import read_replicas as study


def _store(n=2, clock=lambda: 0.0):
    primary = Primary(clock)
    return primary, replicas(n)


def test_round_robin_sends_writes_to_the_primary_and_reads_in_turn():
    primary, copies = _store(3)
    router = RoundRobinRouter(primary, copies)
    assert router.write("x", 1) == 1 and primary.read("x") == 1
    assert [router.read("x")[0] for _ in range(4)] == ["r1", "r2", "r3", "r1"]
    assert router.read("x")[1] is None  # no replica has caught up: a stale read
    copies[1].catch_up(primary)
    assert copies[1].read("x") == 1 and copies[1].position == 1


def test_replica_lag_is_the_age_of_the_oldest_missing_write():
    now = [0.0]
    primary, (replica,) = _store(1, lambda: now[0])
    primary.write("a", 1)
    now[0] = 2.0
    primary.write("a", 2)
    now[0] = 5.0
    assert replica.lag_s(primary, now[0]) == 5.0
    replica.catch_up(primary, upto=1)
    assert replica.lag_s(primary, now[0]) == 3.0
    replica.catch_up(primary)
    assert replica.lag_s(primary, now[0]) == 0.0


def test_read_your_writes_waits_for_the_sessions_position():
    primary, copies = _store(2)
    router = ConsistentRouter(primary, copies, RouterConfig("read_your_writes"))
    router.write("k", "old", session="ann")
    for replica in copies:
        replica.catch_up(primary)
    router.write("k", "new", session="ann")
    assert router.read("k", session="ann") == ("primary", "new")
    assert router.read("k", session="bob")[1] == "old"  # another session may read stale
    copies[1].catch_up(primary)
    assert router.read("k", session="ann") == ("r2", "new")
    counts = router.metrics.counts
    assert counts["writes"] == 2 and counts["primary_reads"] == 1
    assert counts["replica_reads"] == 2 and router.metrics.observed("replica_lag_seconds") == 2


def test_bounded_staleness_uses_the_lag_in_seconds():
    now = [0.0]
    primary, copies = _store(1, lambda: now[0])
    router = ConsistentRouter(primary, copies, RouterConfig("bounded_staleness", max_lag_s=1.0))
    router.write("k", 1)
    now[0] = 0.5
    assert router.read("k")[0] == "r1"
    now[0] = 1.5
    assert router.read("k")[0] == "primary"


@pytest.mark.parametrize("make, message", [
    (lambda: RouterConfig(mode="fresh"), "RouterConfig.mode must be one of any, read_your"),
    (lambda: RouterConfig(max_lag_s=-1), "RouterConfig.max_lag_s must be >= 0 (got -1)"),
    (lambda: replicas(0), "replicas must be an integer >= 1 (got 0)"),
    (lambda: RoundRobinRouter(Primary(), []), "replicas must hold at least one Replica"),
    (lambda: study.Scenario(replicas=0), "Scenario.replicas must be an integer >= 1"),
    (lambda: study.Scenario(balancing="random"), "Scenario.balancing must be one of"),
    (lambda: study.Scenario(lag_spike=(5, 1, 2)), "Scenario.lag_spike must be"),
    (lambda: study.Scenario(warmup_s=60), "Scenario.warmup_s must be in [0, horizon_s"),
    (lambda: study.stale_probability(Exponential(1), -1), "age_s must be >= 0 (got -1)"),
])
def test_bad_settings_fail_with_one_line(make, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)")):
        make()


def test_simulation_is_deterministic():
    s = replace(study.Scenario(), horizon_s=10, warmup_s=1)
    a = study.summary(study.simulate(s, np.random.default_rng(4)))
    b = study.summary(study.simulate(s, np.random.default_rng(4)))
    assert a == b


def test_reads_over_a_shared_queue_match_erlang_c():
    # 240 reads/s over 3 replicas at 100/s (rho = 0.8), 300 s after a 5 s warm-up: about 70k
    # reads. The p99 of M/M/3 here is ~0.12 s; over 3 seeds the p99 estimate's spread (batch
    # means, correlated queue) was about 4 %, so 10 % is a 2.5-sigma band. Mean wait likewise.
    s = replace(study.Scenario(), horizon_s=300)
    p99s, means = [], []
    for seed in (1, 2, 3):
        row = study.summary(study.simulate(s, np.random.default_rng(seed)))
        p99s.append(row["read_latency_p99_s"])
        means.append(row["read_latency_mean_s"])
    assert np.mean(p99s) == pytest.approx(study.mmc_read_p99(s), rel=0.10)
    assert np.mean(means) == pytest.approx(
        theory.mmc_mean_response(s.read_rate, s.service_rate, s.replicas), rel=0.08)


def test_round_robin_is_slower_than_one_shared_queue():
    s = replace(study.Scenario(), horizon_s=120)
    shared = study.summary(study.simulate(s, np.random.default_rng(1)))
    rr = study.summary(study.simulate(replace(s, balancing="round_robin"),
                                      np.random.default_rng(1)))
    assert rr["read_latency_p99_s"] > 1.3 * shared["read_latency_p99_s"]


@pytest.mark.parametrize("lag", [Exponential(0.05), LogNormal(0.05, 1.0)])
def test_stale_share_by_age_matches_the_in_order_lag(lag):
    # 200 s, ~48k reads, ~2k per age bin of 8: the binomial s.e. of a share p is
    # sqrt(p(1-p)/2000) <= 0.011, so an absolute 0.04 is above 3.5 s.e. in every bin.
    s = replace(study.Scenario(), lag=lag, horizon_s=200)
    run_ = study.simulate(s, np.random.default_rng(3))
    binned = study.stale_by_age(run_, np.linspace(0, 0.2, 9))
    theory_ = study.in_order_lag_survival(lag, s.write_rate, binned["mid"])
    assert np.max(np.abs(binned["stale"] - theory_)) < 0.04
    share = study.summary(run_)["stale_fraction"]
    expected = study.stale_read_fraction(lag, s.write_rate / s.sessions, s.write_rate)
    assert share == pytest.approx(expected, abs=0.012)  # ~48k reads: s.e. 0.0015 (x ~5 corr.)


def test_a_lone_write_is_stale_with_probability_of_the_lag_tail():
    lag = Exponential(0.05)
    # writes so sparse that no write waits for another: the in-order form is the plain tail
    assert study.stale_probability(lag, 0.1, write_rate=1e-6) == pytest.approx(
        np.exp(-2), rel=1e-3)
    assert study.stale_probability(lag, 0.1, write_rate=20) > np.exp(-2) * 1.2
    assert study.stale_read_fraction(lag, 2.0) == pytest.approx(0.1 / 1.1, rel=1e-3)


def test_read_your_writes_never_reads_stale_and_falls_back_as_predicted():
    # 200 s, ~48k reads; fallback share ~0.057, binomial s.e. ~0.001 (x ~5 for correlation):
    # 0.012 absolute. The closed form treats the replicas' in-order delays as independent.
    s = replace(study.Scenario(router=RouterConfig("read_your_writes")), horizon_s=200)
    row = study.summary(study.simulate(s, np.random.default_rng(3)))
    assert row["stale_fraction"] == 0.0
    expected = study.fallback_fraction(s.lag, s.write_rate / s.sessions, s.replicas,
                                       s.write_rate)
    assert row["primary_read_fraction"] == pytest.approx(expected, abs=0.012)


def test_the_lab_finds_the_stale_read_and_passes_the_caught_up_one():
    scenario = LabScenario(nodes=3, workload=RegisterWorkload(n_ops=200, rate=50, clients=4))
    broken = run(ReadAnyReplica, scenario, seed=1).check()
    assert not broken.valid and broken.witness
    for seed in (1, 2, 3):
        run(study.CatchUpReplica, scenario, seed=seed).check().assert_valid()
        run(study.CatchUpReplica, replace(scenario, nemesis=RandomNemesis()),
            seed=seed).check().assert_valid()


def test_sqlite_replica_by_backup_agrees_with_the_log_replica(tmp_path):
    # the real part: a SQLite primary file, a replica copied with the backup API at a log
    # position, and the hand-made Replica caught up to the same position hold the same rows
    primary_db = sqlite3.connect(tmp_path / "primary.db")
    primary_db.execute("create table kv (k text primary key, v integer)")
    primary, (replica,) = _store(1)
    snapshot = None
    for i in range(10):
        key, value = f"k{i % 3}", i
        primary.write(key, value)
        primary_db.execute("insert or replace into kv values (?, ?)", (key, value))
        primary_db.commit()
        if i == 5:
            snapshot = tmp_path / "replica.db"
            with sqlite3.connect(snapshot) as copy:
                primary_db.backup(copy)
            replica.catch_up(primary)
    rows = dict(sqlite3.connect(snapshot).execute("select k, v from kv"))
    assert rows == replica.data
    assert rows != primary.data
