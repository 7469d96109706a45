"""Tests of the leader-election pattern (patterns.specialized.leader_election) and its study
(simulations.specialized.leader_election): behaviour, error messages, theory vs simulation, and
the protocol lab's verdicts on the correct and the broken nodes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from patterns.specialized.leader_election import (
    ElectionConfig,
    Heartbeat,
    ProductionRaftElection,
    RaftElection,
    VoteRequest,
    majority,
)
from simulations.lab import LeaderWorkload, RandomNemesis, run
from simulations.lab import Scenario as LabScenario
from simulations.lab.checkers.leaders import check_one_leader_per_term
from simulations.specialized import leader_election as study


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_majority():
    assert [majority(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 2, 3, 3]


def test_one_vote_per_term_and_a_higher_term_clears_it():
    clock = Clock()
    e = RaftElection("n1", ["n2", "n3"], clock=clock, rng=np.random.default_rng(1))
    assert e.handle("n2", VoteRequest(1, "n2"))[0][1].granted
    assert not e.handle("n3", VoteRequest(1, "n3"))[0][1].granted
    assert e.handle("n3", VoteRequest(2, "n3"))[0][1].granted
    assert (e.term, e.voted_for) == (2, "n3")


def test_state_lives_in_the_store_across_a_restart():
    store: dict = {}
    e = RaftElection("n1", ["n2", "n3"], store=store, rng=np.random.default_rng(1))
    e.handle("n2", VoteRequest(4, "n2"))
    again = RaftElection("n1", ["n2", "n3"], store=store, rng=np.random.default_rng(2))
    assert not again.handle("n3", VoteRequest(4, "n3"))[0][1].granted


def test_timeout_starts_an_election_and_a_heartbeat_ends_a_candidacy():
    clock = Clock()
    e = RaftElection("n1", ["n2", "n3"], clock=clock, rng=np.random.default_rng(1))
    assert 0.15 <= e.deadline <= 0.3 and e.tick() == []
    clock.now = e.deadline
    out = e.tick()
    assert e.role == "candidate" and {dst for dst, _ in out} == {"n2", "n3"}
    e.handle("n2", Heartbeat(1, "n2"))
    assert (e.role, e.leader) == ("follower", "n2")


def test_the_bench_elects_one_leader_and_replaces_a_crashed_one():
    bench = study.Bench(5, seed=3, election_class=ProductionRaftElection)
    bench.run_until(1.0)
    (first, term), = bench.leaders().items()
    bench.down.add(first)
    bench.run_until(2.0)
    (second, new_term), = bench.leaders().items()
    assert second != first and new_term > term
    counts = bench.nodes[second].metrics.counts
    assert counts["election_won"] == 1 and bench.nodes[second].metrics.observed(
        "election_seconds") == 1


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"heartbeat_s": 0}, "ElectionConfig.heartbeat_s must be > 0 (got 0)"),
    ({"timeout_min_s": 0.05}, "ElectionConfig.timeout_min_s must be > heartbeat_s = 0.05"),
    ({"timeout_max_s": 0.1}, "ElectionConfig.timeout_max_s must be >= timeout_min_s = 0.15"),
])
def test_config_errors_name_the_parameter(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ElectionConfig(**kwargs)


def test_scenario_errors_name_the_parameter():
    with pytest.raises(ValueError, match="Scenario.timeout_max_s must be >= timeout_min_s"):
        study.Scenario(timeout_max_s=0.1)
    with pytest.raises(ValueError, match="Scenario.nodes must be"):
        study.Scenario(nodes=1)


# Theory vs simulation. Tolerances are four standard errors of the simulated quantity (sample
# standard deviation / sqrt(trials), or sqrt(p(1 - p) / trials) for a rate), so a correct model
# fails about once in 15,000 runs while a wrong term (a missing h/2 = 25 ms, r/m for r/(m+1),
# a wrong majority) is several times larger than the tolerance.
TRIALS = 4000


@pytest.mark.parametrize("range_s", [0.02, 0.05, 0.15])
def test_split_rate_matches_the_order_statistic(range_s):
    sc = study.Scenario(timeout_max_s=0.15 + range_s, trials=TRIALS)
    run_ = study.simulate(sc, np.random.default_rng(11))
    p = study.split_probability(sc)
    assert abs(np.mean(run_.rounds > 1) - p) <= 4 * np.sqrt(p * (1 - p) / TRIALS) + 1e-3


@pytest.mark.parametrize("nodes", [3, 5, 7])
def test_detection_time_matches_the_closed_form(nodes):
    sc = study.Scenario(nodes=nodes, trials=TRIALS)
    run_ = study.simulate(sc, np.random.default_rng(12))
    se = run_.detection_s.std(ddof=1) / np.sqrt(TRIALS)
    assert abs(run_.detection_s.mean() - study.expected_detection_s(sc)) <= 4 * se


@pytest.mark.parametrize("range_s", [0.03, 0.15])
def test_downtime_matches_detection_plus_election(range_s):
    # The retry term is an approximation (1 % of the mean allowed on top of the sampling error).
    sc = study.Scenario(timeout_max_s=0.15 + range_s, trials=TRIALS)
    down = study.simulate(sc, np.random.default_rng(13)).downtime_s
    expected = study.expected_downtime_s(sc)
    assert abs(down.mean() - expected) <= 4 * down.std(ddof=1) / np.sqrt(TRIALS) + 0.01 * expected


def test_a_wider_range_means_fewer_split_votes_and_staggering_removes_them():
    rows = study.sweep(study.Scenario(trials=500), [0.01, 0.05, 0.15], replications=2)
    rates = [r["split_rate"] for r in rows]
    assert rates[0] > rates[1] > rates[2]
    staggered = study.summary(study.simulate(study.Scenario(stagger=True, trials=500)))
    assert staggered["split_rate"] == 0.0


def test_the_correct_node_passes_under_crashes_partitions_and_loss():
    nemesis = RandomNemesis(kinds=("crash", "partition", "loss"))
    for seed in (1, 2):
        lab_run = run(study.RaftElectionNode, LabScenario(
            nodes=5, workload=LeaderWorkload(n_ops=400, rate=100, timeout_s=0.2),
            nemesis=nemesis), seed)
        lab_run.check().assert_valid()


def test_a_node_that_votes_twice_elects_two_leaders_in_one_term():
    lab_run = run(study.PromiscuousVoterNode, LabScenario(
        nodes=5, workload=LeaderWorkload(n_ops=200, rate=100, timeout_s=0.2)), 0)
    result = lab_run.check()
    assert not result.valid and "had 2 leaders" in result.reason
    assert len({op.output[1] for op in result.witness}) == 2
    assert {op.output[0] for op in result.witness} == {1}


def test_fixed_timeouts_never_elect():
    lab_run = run(study.FixedTimeoutNode, LabScenario(
        nodes=5, workload=LeaderWorkload(n_ops=200, rate=100, timeout_s=0.2)), 1)
    assert lab_run.check().details["answered"] == 0
    assert min(disk["term"] for disk in lab_run.disks.values()) > 5


def test_crashing_the_leader_costs_about_one_election():
    lab_run = study.crash_the_leader(study.RaftElectionNode, seed=1)
    lab_run.check().assert_valid()
    crash = lab_run.nemesis.faults[0]
    new = [op.complete_s for op in lab_run.history
           if op.status == "ok" and op.output[1] != crash.node]
    outage = min(t for t in new if t > crash.start_s) - crash.start_s
    assert 0.1 < outage < 0.5


def test_stale_answers_and_the_checker_on_a_hand_made_history():
    from simulations.lab.history import History, Op, Status
    ops = [Op(0, 0, "leader", 0, None, (1, "n1"), 0.0, 0.1, Status.OK, "n1"),
           Op(1, 1, "leader", 0, None, (2, "n2"), 0.2, 0.3, Status.OK, "n2"),
           Op(2, 0, "leader", 0, None, (1, "n1"), 1.0, 1.1, Status.OK, "n1")]
    history = History.of(ops)
    assert [op.index for op in study.stale_answers(history, 0.5)] == [2]
    assert check_one_leader_per_term(history).valid
    clash = History.of([*ops, replace(ops[1], index=3, output=(2, "n3"))])
    assert not check_one_leader_per_term(clash).valid
