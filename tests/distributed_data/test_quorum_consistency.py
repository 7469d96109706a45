"""The quorum lesson's model: the register and the store, the WARS study against its closed
forms and the PBS Monte Carlo, and the lab's nodes against the linearizability checker."""

from __future__ import annotations

import numpy as np
import pytest
from concurrently import run_concurrently

from patterns.distributed_data.quorum_consistency import (
    ConsistencyLevel,
    ProductionQuorumStore,
    QuorumConfig,
    QuorumError,
    QuorumRegister,
    ReadQuorum,
    Replica,
    Unavailable,
    Version,
    block_for,
)
from simulations.distributed_data import quorum_consistency as study
from simulations.distributions import Deterministic
from simulations.lab import ClockSkew, Nemesis, RandomNemesis, RegisterWorkload, run
from simulations.lab import Scenario as LabScenario


def replicas(n=3):
    return [Replica(f"n{i + 1}") for i in range(n)]


# ---------------------------------------------------------------- Level 2


def test_partial_quorum_reads_stale_and_strict_quorum_does_not():
    nodes = replicas()
    nodes[1].up = nodes[2].up = False
    QuorumRegister(nodes, r=1, w=1, clock=lambda: 1.0).write("x", "new")
    nodes[1].up = nodes[2].up = True
    partial = QuorumRegister(nodes, r=1, w=1, read_repair=False)
    assert partial.read("x", order=["n2", "n1", "n3"]) is None  # stale: n2 never got it
    strict = QuorumRegister(nodes, r=3, w=1)
    assert strict.read("x", order=["n2", "n3", "n1"]) == "new"
    assert [n.get("x").value for n in nodes] == ["new"] * 3  # read repair fixed n2 and n3


def test_a_write_without_its_quorum_fails_and_lww_keeps_the_higher_stamp():
    nodes = replicas()
    nodes[2].up = False
    with pytest.raises(QuorumError, match="2 of 3 acks"):
        QuorumRegister(nodes, r=1, w=3).write("x", 1)
    replica = Replica("a")
    assert replica.apply("k", Version((2.0, "b"), "late"))
    assert not replica.apply("k", Version((1.0, "z"), "early"))  # older, even if it came last
    assert replica.apply("k", Version((2.0, "c"), "tie"))  # equal times: the name decides


def test_read_quorum_counts_each_replica_once_and_names_the_stale_ones():
    quorum = ReadQuorum(2)
    assert not quorum.offer("a", Version((1, "w"), 1))
    assert not quorum.offer("a", Version((5, "w"), 5))  # a repeat does not count
    assert quorum.offer("b", Version((3, "w"), 3))
    assert quorum.newest.value == 3 and quorum.stale == ["a"]


# ---------------------------------------------------------------- Level 3


@pytest.mark.parametrize(("rf", "level", "needed"), [
    (1, "QUORUM", 1), (3, "QUORUM", 2), (4, "QUORUM", 3), (5, "QUORUM", 3), (6, "QUORUM", 4),
    (5, "ONE", 1), (5, "TWO", 2), (5, "THREE", 3), (5, "ALL", 5)])
def test_block_for_is_cassandras_arithmetic(rf, level, needed):
    assert block_for(level, rf) == needed  # ConsistencyLevel.blockFor: quorum = RF / 2 + 1


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"replication_factor": 0}, "QuorumConfig.replication_factor must be an integer >= 1"),
    ({"read_level": "MOST"}, "QuorumConfig.read_level must be one of ONE, TWO"),
    ({"replication_factor": 2, "write_level": "THREE"}, "needs 3"),
    ({"max_hint_window_s": -1}, r"QuorumConfig.max_hint_window_s must be >= 0 \(got -1\)"),
])
def test_bad_config_fails_in_one_line_naming_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message) as error:
        QuorumConfig(**kwargs)
    assert "\n" not in str(error.value)


def test_store_refuses_before_writing_and_hints_repair_a_replica_that_was_down():
    clock = [0.0]
    nodes = replicas()
    store = ProductionQuorumStore(nodes, QuorumConfig(max_hint_window_s=10), clock=lambda: clock[0])
    store.mark_down("n3")
    clock[0] = 1.0
    store.write("x", "a")  # 2 of 3 at QUORUM; a hint for n3
    store.mark_down("n2")
    with pytest.raises(Unavailable):
        store.write("x", "b")
    assert nodes[0].get("x").value == "a"  # the refused write touched nothing
    store.mark_up("n2")
    clock[0] = 20.0  # n3 has been down 20 s, past the 10 s window: no new hint
    store.write("x", "c")
    assert store.mark_up("n3") == 1 and nodes[2].get("x").value == "a"
    assert store.read("x", order=["n3", "n1", "n2"]) == "c"  # QUORUM read; repairs n3
    counts = store.metrics.counts
    assert (counts["hints_stored"], counts["hints_skipped"], counts["unavailable"]) == (1, 1, 1)
    assert counts["read_repairs"] == 1 and nodes[2].get("x").value == "c"


def test_store_counts_add_up_under_threads_and_replicas_converge():
    nodes = replicas()
    store = ProductionQuorumStore(nodes, QuorumConfig(read_level=ConsistencyLevel.ONE))

    def worker(i):
        for j in range(200):
            if j % 50 == 0 and i == 0:
                store.mark_down("n3")
            if j % 50 == 25 and i == 0:
                store.mark_up("n3")
            store.write(f"k{j % 7}", (i, j)) if j % 2 else store.read(f"k{j % 7}")

    run_concurrently(worker, range(6))
    store.mark_up("n3")
    counts = store.metrics.counts
    assert counts["writes"] + counts["reads"] == 6 * 200
    assert all(nodes[0].get(f"k{k}") == nodes[2].get(f"k{k}") for k in range(7))


# ---------------------------------------------------------------- theory


def test_closed_forms_agree_with_each_other():
    exp, instant = study.Exponential(0.002), Deterministic(0.0)
    # one instant leg: the mean is (1/μ) Σ_{j=n−k+1}^{n} 1/j
    for n, k in [(3, 1), (5, 3), (5, 5)]:
        exact = 0.002 * sum(1 / j for j in range(n - k + 1, n + 1))
        assert study.quorum_latency_mean(exp, instant, n, k) == pytest.approx(exact, rel=1e-6)
    assert study.instant_ack_staleness(5, 2, 2, 0.004, 0.0) == pytest.approx(
        study.nonintersection_probability(5, 2, 2)) == pytest.approx(0.3)
    assert study.nonintersection_probability(5, 3, 3) == 0.0
    cdf = study.leg_pair_cdf(study.Exponential(0.001), study.Exponential(0.001))
    assert cdf(0.001) == pytest.approx(1 - 2 * np.exp(-1))  # Erlang-2 at its mean


def test_wars_monte_carlo_matches_the_instant_ack_closed_form():
    # 100 000 samples: the standard error of a probability is at most 0.0016; 4 sigma = 0.0064.
    legs = study.Legs(ack=Deterministic(0.0), read=Deterministic(0.0))
    for t in (0.0, 0.002, 0.005):
        mc = study.wars_staleness(5, 2, 2, legs, t, samples=100_000, rng=np.random.default_rng(3))
        assert mc == pytest.approx(study.instant_ack_staleness(5, 2, 2, 0.004, t), abs=0.0065)


def test_simulated_latency_matches_the_order_statistics():
    # 2000 reads per run: the mean's standard error is below 2 % of it (an Erlang-2 round trip
    # has cv 0.71, so cv/sqrt(2000) ≈ 1.6 %); tolerance 5 %.
    run_ = study.simulate(study.Scenario(n=5))
    legs = run_.scenario.legs
    for k in (1, 3, 5):
        got = study.summary(run_, k, 1)["read_mean_s"]
        assert got == pytest.approx(study.quorum_latency_mean(legs.read, legs.response, 5, k),
                                    rel=0.05)


def test_simulated_staleness_matches_the_pbs_monte_carlo():
    # Reads in the first 4 ms after a write, N = 3, R = W = 1: about 300 of them in 40 s, so
    # the binomial standard error is at most 0.029; tolerance 0.08 (2.8 sigma at worst).
    run_ = study.simulate(study.Scenario(n=3, read_rate=200, duration_s=40))
    seen = study.visibility(run_, 1, 1)
    near = seen["lag_s"] < 0.004
    rng = np.random.default_rng(9)
    predicted = study.wars_staleness(3, 1, 1, run_.scenario.legs,
                                     rng.choice(seen["lag_s"][near], 50_000), 50_000, rng)
    assert near.sum() > 250
    assert seen["stale"][near].mean() == pytest.approx(predicted, abs=0.08)


def test_strict_quorums_are_never_stale_and_replay_matches_the_run():
    run_ = study.simulate(study.Scenario(n=3, r=2, w=1))
    own = study.summary(run_)
    assert own == study.summary(run_, 2, 1)  # the run's own R, W equals the replayed one
    for r in range(1, 4):
        for w in range(1, 4):
            stale = study.summary(run_, r, w)["stale_fraction"]
            assert (stale == 0) if r + w > 3 else (stale >= 0)
    assert study.summary(run_, 1, 1)["stale_fraction"] > 0


def test_read_repair_only_on_its_own_quorums_and_bad_scenarios_are_refused():
    run_ = study.simulate(study.Scenario(n=3, r=2, w=1, read_repair=True, duration_s=5))
    assert run_.repairs > 0
    with pytest.raises(ValueError, match="r, w must be the run's own"):
        study.summary(run_, 1, 1)
    with pytest.raises(ValueError, match="Scenario.r must be an integer in \\[1, 3\\]"):
        study.Scenario(n=3, r=4)
    with pytest.raises(ValueError, match="Scenario.slow end_s must be > start_s"):
        study.Scenario(slow=(5.0, 2.0, 10.0))


# ---------------------------------------------------------------- the protocol lab

WORKLOAD = RegisterWorkload(n_ops=200, rate=50, clients=4, read=0.5, write=0.5, cas=0.0)


def test_partial_quorum_and_skewed_lww_fail_the_checker_with_a_witness():
    partial = run(study.dynamo_quorum(1, 1), LabScenario(nodes=3, workload=WORKLOAD), 1).check()
    skewed = run(study.dynamo_quorum(2, 2), LabScenario(
        nodes=3, workload=WORKLOAD, nemesis=Nemesis((ClockSkew("n2", 0.0, -1.0),))), 1).check()
    for result in (partial, skewed):
        assert not result.valid and len(result.witness) >= 2


@pytest.mark.parametrize(("nodes", "seed"), [(3, 1), (3, 2), (5, 3)])
def test_abd_is_linearizable_under_a_random_nemesis(nodes, seed):
    lab = LabScenario(nodes=nodes, workload=WORKLOAD, nemesis=RandomNemesis())
    run(study.ABDRegister, lab, seed).check().assert_valid()
