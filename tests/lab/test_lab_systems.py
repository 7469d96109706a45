"""The two example registers under a nemesis: the correct one passes, the broken one fails with
a witness, the same way for the same seed; a failure names its seed and replays from one call."""

from __future__ import annotations

import pytest

import simulations.lab as lab
from simulations.lab import (
    Crash,
    Duplicate,
    Loss,
    Nemesis,
    Partition,
    RandomNemesis,
    ReadAnyReplica,
    RegisterWorkload,
    Scenario,
    SingleLeaderRegister,
    Status,
    is_linearizable,
    run,
)

SCENARIO = Scenario(nodes=3, workload=RegisterWorkload(n_ops=300, rate=100.0, clients=5),
                    nemesis=RandomNemesis())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_single_leader_register_passes_under_a_random_nemesis(seed):
    lab_run = run(SingleLeaderRegister, SCENARIO, seed=seed)
    assert lab_run.nemesis.faults  # the nemesis did act
    lab_run.check().assert_valid()


def test_the_single_leader_register_stays_linearizable_through_a_leader_crash():
    """The leader keeps its registers and answers on disk: restarting loses nothing, and a
    duplicated forward is answered again, not applied twice."""
    nemesis = Nemesis((Crash("n1", 0.5, 1.0), Duplicate(0.0, None, probability=0.5),
                       Loss(1.5, 2.0, probability=0.5)))
    lab_run = run(SingleLeaderRegister, Scenario(nodes=3, nemesis=nemesis,
                                                 workload=RegisterWorkload(n_ops=300)), seed=4)
    assert lab_run.history.counts()["unknown"] > 0  # clients did lose answers
    lab_run.check().assert_valid()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_reads_from_any_replica_fail_with_a_small_witness_the_same_way_every_time(seed):
    first, again = (run(ReadAnyReplica, SCENARIO, seed=seed).check() for _ in range(2))
    assert not first.valid
    assert 2 <= len(first.witness) <= 6
    assert first.witness == again.witness and str(first) == str(again)
    assert not is_linearizable(lab.History.of(first.witness))
    assert any(op.f == "read" for op in first.witness)


def test_a_partition_makes_followers_serve_stale_reads():
    nemesis = Nemesis((Partition(0.5, 2.5, groups=(("n1",), ("n2", "n3"))),))
    result = run(ReadAnyReplica, Scenario(nodes=3, nemesis=nemesis), seed=5).check()
    witness_reads = [op for op in result.witness if op.f == "read"]
    assert not result.valid and any(op.node != "n1" for op in witness_reads)


def test_a_failing_check_prints_its_seed_and_the_call_that_replays_it():
    lab_run = run(ReadAnyReplica, SCENARIO, seed=9)
    report = str(lab_run.check())
    assert "seed 9" in report and lab_run.replay_call in report
    with pytest.raises(AssertionError, match="replay it with: run\\(ReadAnyReplica"):
        lab_run.check().assert_valid()
    again = eval(lab_run.replay_call, {**vars(lab), "ReadAnyReplica": ReadAnyReplica})
    assert again.journal.rows() == lab_run.journal.rows()
    assert list(again.history) == list(lab_run.history)


def test_the_broken_design_is_faster_and_the_correct_one_costs_forwarding():
    """The trade the foundation lesson shows: local reads answer sooner, forwarding costs."""
    quiet = Scenario(nodes=3, workload=RegisterWorkload(n_ops=400, read=0.8, write=0.2, cas=0.0))
    correct = run(SingleLeaderRegister, quiet, seed=1).performance()
    broken = run(ReadAnyReplica, quiet, seed=1).performance()
    assert broken["latency_p50_s"] < correct["latency_p50_s"]
    assert correct["availability"] == broken["availability"] == 1.0
    assert correct["ok"] == 400 and correct["unknown"] == 0


def test_compare_and_set_failures_are_definite_and_left_out():
    lab_run = run(SingleLeaderRegister, Scenario(workload=RegisterWorkload(n_ops=300)), seed=2)
    fails = lab_run.history.where(status=Status.FAIL)
    assert len(fails) > 0 and {op.f for op in fails} == {"cas"}
