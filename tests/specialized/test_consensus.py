"""Tests of the consensus pattern (patterns.specialized.consensus) and its study
(simulations.specialized.consensus): the log rules, the lab verdicts, and the closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from patterns.specialized.consensus import AppendEntries, LogVoteRequest, RaftLog
from patterns.specialized.leader_election import RaftElection
from simulations.lab import RandomNemesis, RegisterWorkload, Scenario, run
from simulations.specialized import consensus as study


def node(log=(), term=0):
    raft = RaftLog("n1", ["n2", "n3"], rng=np.random.default_rng(1),
                   store={"term": term, "voted_for": None, "log": list(log)})
    return raft


def test_the_log_extends_the_election_class():
    assert issubclass(RaftLog, RaftElection) and study.RaftKVNode.election_class is RaftLog


def test_votes_need_an_up_to_date_log():
    raft = node([(1, "a"), (2, "b")], term=2)
    assert not raft.grant_vote(LogVoteRequest(3, "n2", last_index=5, last_term=1))
    raft.become_follower(3)
    assert raft.grant_vote(LogVoteRequest(3, "n2", last_index=2, last_term=2))


def test_append_repairs_a_conflicting_suffix():
    raft = node([(1, "a"), (1, "b"), (1, "c")], term=1)
    (_, reply), = raft.handle("n2", AppendEntries(2, "n2", 1, 1, ((2, "x"),), 2))
    assert reply.ok and raft.log == [(1, "a"), (2, "x")] and raft.commit_index == 2
    (_, miss), = raft.handle("n2", AppendEntries(2, "n2", 5, 2, (), 2))
    assert not miss.ok and miss.match == 2


def test_an_old_term_entry_is_not_committed_by_counting_replicas():
    raft = node([(1, "a")], term=1)
    raft.store["term"] = 2
    raft.become_leader()
    raft.match_index = {"n2": 1, "n3": 0}
    raft.advance_commit()
    assert raft.commit_index == 0  # entry 1 (term 1) is on a majority but not committed
    raft.match_index["n2"] = 2
    raft.advance_commit()
    assert raft.commit_index == 2  # the new term's no-op commits, and entry 1 with it


def test_the_kv_store_is_linearizable_under_partitions_crashes_and_loss():
    scenario = Scenario(nodes=5, workload=RegisterWorkload(n_ops=300, rate=50, keys=3,
                                                           timeout_s=0.5),
                        nemesis=RandomNemesis(kinds=("partition", "crash", "loss")))
    for seed in (1, 2):
        run(study.RaftKVNode, scenario, seed).check().assert_valid()


def test_votes_without_the_up_to_date_check_lose_acknowledged_writes():
    scenario = Scenario(nodes=5, workload=RegisterWorkload(n_ops=300, rate=50, keys=3,
                                                           timeout_s=0.5),
                        nemesis=RandomNemesis(kinds=("partition", "crash", "loss")))
    result = run(study.ForgetfulLogNode, scenario, 4).check()
    assert not result.valid and result.witness


# The order statistic: 20,000 draws of exponential round trips; the sample mean's standard
# error is below 1 % of the mean, so a 4 % tolerance holds ~4 standard errors, while the wrong
# order statistic (the fastest or the slowest follower) is off by 40 % or more.
def test_commit_waits_for_the_half_fastest_follower():
    rng = np.random.default_rng(3)
    for nodes in (3, 5, 7):
        rtts = rng.exponential(0.01, (20_000, nodes - 1))
        measured = study.commit_latency_s(rtts, nodes).mean()
        assert abs(measured - study.expected_commit_latency_s(nodes, 0.01)) < 0.04 * measured


def test_availability_is_the_majority_binomial():
    assert study.availability(3, 0.99) > 0.9997
    assert study.availability(5, 0.99) > study.availability(3, 0.99)
    assert abs(study.availability(1, 0.9) - 0.9) < 1e-12


def test_the_hand_made_log_agrees_with_pysyncobj_on_the_same_writes():
    pytest.importorskip("pysyncobj")
    writes = [(f"k{i % 3}", i) for i in range(10)]
    ours = study.bench_replay(writes)
    theirs = study.pysyncobj_replay(writes)
    assert all(store == ours[0] for store in ours + theirs)
    assert ours[0] == {"k0": 9, "k1": 7, "k2": 8}
