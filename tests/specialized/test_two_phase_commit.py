"""Tests of two-phase commit (patterns.specialized.two_phase_commit) and its study
(simulations.specialized.two_phase_commit): the coordinator and participant, the production
coordinator, the hot-row model against its closed forms, the lab designs against the
atomic-commit checker, and SQLite's cross-file commit against the coordinator."""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import replace

import numpy as np
import pytest

from patterns.specialized.two_phase_commit import (
    ABORT,
    COMMIT,
    PREPARED,
    Coordinator,
    CoordinatorConfig,
    Participant,
    ProductionCoordinator,
    ProtocolError,
)
from simulations.lab import CommitWorkload, Crash, Nemesis, RandomNemesis, check_atomic_commit
from simulations.lab import Scenario as LabScenario
from simulations.lab import run as lab_run
from simulations.lab.history import History, Op, Status
from simulations.specialized import two_phase_commit as study
from simulations.specialized.two_phase_commit import (
    ImpatientCoordinator,
    Scenario,
    TwoPhaseCommitNode,
    UnilateralAbort,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# --- the pattern ---------------------------------------------------------------------------


def test_commit_needs_every_yes_and_one_no_aborts() -> None:
    c = Coordinator(("a", "b"), 1.0, FakeClock())
    assert c.begin("t1") == ("a", "b")
    assert c.vote("t1", "a", True) is None
    assert c.vote("t1", "b", True) == COMMIT
    c.begin("t2")
    assert c.vote("t2", "a", False) == ABORT
    assert c.vote("t2", "b", True) is None  # decided already: the late vote changes nothing
    assert c.log == {"t1": COMMIT, "t2": ABORT}


def test_a_missing_vote_aborts_at_the_timeout_and_never_commits_later() -> None:
    clock = FakeClock()
    c = Coordinator(("a", "b"), 1.0, clock)
    c.begin("t")
    c.vote("t", "a", True)
    clock.now = 0.99
    assert c.expired() == []
    clock.now = 1.0
    assert c.expired() == [("t", ABORT)]
    assert c.vote("t", "b", True) is None and c.log["t"] == ABORT


def test_a_restarted_coordinator_presumes_abort_for_what_it_had_not_decided() -> None:
    disk: dict = {}
    c = Coordinator(("a",), 1.0, FakeClock(), disk)
    c.begin("decided")
    c.vote("decided", "a", True)
    c.begin("in-flight")
    again = Coordinator(("a",), 1.0, FakeClock(), disk)  # the crash: memory lost, log kept
    assert again.status("decided") == COMMIT
    assert again.status("in-flight") == ABORT
    assert again.vote("in-flight", "a", True) is None and disk["in-flight"] == ABORT


def test_status_is_silent_while_votes_are_still_coming() -> None:
    c = Coordinator(("a",), 1.0, FakeClock())
    c.begin("t")
    assert c.status("t") is None


def test_a_participant_votes_once_and_refuses_a_conflicting_decision() -> None:
    p = Participant("a")
    assert p.prepare("t", True) and p.uncertain() == ["t"]
    assert p.prepare("t", False)  # asked again: the same answer, from the log
    assert p.learn("t", COMMIT) == COMMIT and p.uncertain() == []
    with pytest.raises(ProtocolError, match="a already committed 't'; told aborted"):
        p.learn("t", ABORT)
    assert not p.prepare("u", False) and p.log["u"] == ABORT


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"participants": ()}, r"CoordinatorConfig.participants must be one or more distinct names"
                           r" \(got \(\)\)"),
    ({"participants": ("a", "a")}, r"distinct names \(got \('a', 'a'\)\)"),
    ({"participants": ("a",), "vote_timeout_s": 0}, r"CoordinatorConfig.vote_timeout_s must be"
                                                    r" > 0 \(got 0\)"),
])
def test_config_errors_name_field_value_and_allowed(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        CoordinatorConfig(**kwargs)


def test_production_coordinator_counts_logs_and_refuses_strangers(caplog) -> None:
    clock = FakeClock()
    c = ProductionCoordinator(CoordinatorConfig(("a", "b"), 0.5), clock)
    c.begin("t")
    clock.now = 0.25
    c.vote("t", "a", True)
    with caplog.at_level(logging.INFO, logger="patterns.specialized.two_phase_commit"):
        assert c.vote("t", "b", True) == COMMIT
        c.vote("t", "b", True)
    assert "late vote on 't' from b ignored" in caplog.text
    with pytest.raises(ProtocolError, match="from 'z', not a participant"):
        c.vote("t", "z", True)
    with pytest.raises(ProtocolError, match="already begun"):
        c.begin("t")
    assert c.metrics.counts == {"begun": 1, COMMIT: 1, "late_votes": 1}
    assert c.metrics.observed("decision_seconds") == 1


def test_threads_voting_at_once_decide_each_transaction_once() -> None:
    c = ProductionCoordinator(CoordinatorConfig(tuple(f"p{i}" for i in range(8)), 10.0))
    for t in range(50):
        c.begin(t)

    def voter(name: str) -> None:
        for t in range(50):
            c.vote(t, name, t % 7 != 0 or name != "p3")

    threads = [threading.Thread(target=voter, args=(p,), daemon=True) for p in c.participants]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=10)
    assert not any(th.is_alive() for th in threads)
    assert len(c.log) == 50 and not c.pending
    assert c.metrics.counts[ABORT] == sum(t % 7 == 0 for t in range(50))


# --- the hot row against its closed forms ----------------------------------------------------


def test_the_fast_path_and_simpy_give_the_same_rows() -> None:
    sc = Scenario(arrival_rate=30, failure_rate=1.0, repair_s=2.0, duration_s=20)
    fast, slow = study.simulate(sc), study.simulate(sc, engine="simpy")
    assert np.allclose(fast.table.end, slow.table.end)
    assert (fast.blocked == slow.blocked).all() and fast.blocked.any()


def test_saturated_throughput_is_one_over_the_mean_hold() -> None:
    sc = Scenario(arrival_rate=100, failure_rate=2.0, repair_s=0.5, duration_s=2000)
    row = study.summary(study.simulate(sc))
    p, n = study.block_probability(sc.failure_rate, sc.window_s), row["throughput"] * 1800
    # the busy time of n transactions varies by sqrt(n·p·(1-p))·B (binomial count of blocked
    # ones): about 0.9 % of n·E[S] here; 4 standard errors
    rel = 4 * math.sqrt(n * p * (1 - p)) * sc.blocked_s / (n * study.mean_hold_s(sc))
    assert row["throughput"] == pytest.approx(study.capacity(sc), rel=rel)
    assert study.capacity(replace(sc, failure_rate=0)) == pytest.approx(1 / 0.027)


def test_the_blocked_share_is_one_minus_e_to_the_minus_f_w() -> None:
    sc = Scenario(arrival_rate=50, failure_rate=2.0, duration_s=400)
    run = study.simulate(sc)
    p, n = study.block_probability(2.0, sc.window_s), len(run.blocked)
    # binomial sampling error of a share over n ≈ 20,000 draws; 4 standard errors
    assert run.blocked.mean() == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / n))
    assert p == pytest.approx(1 - math.exp(-2.0 * 0.012))


def test_the_mean_time_to_commit_matches_pollaczek_khinchine() -> None:
    sc = Scenario(arrival_rate=15, failure_rate=2.0, repair_s=0.5, duration_s=1000)
    means = [study.summary(study.simulate(sc, np.random.default_rng(s)))["mean_commit_s"]
             for s in range(8)]
    # 8 independent replications: 3 standard errors of their mean (about 0.008 s each)
    se = np.std(means, ddof=1) / math.sqrt(len(means))
    assert abs(np.mean(means) - study.mean_commit_s(sc)) < 3 * se
    assert study.mean_commit_s(replace(sc, failure_rate=0)) == pytest.approx(
        0.027 + 15 * 0.027**2 / (2 * (1 - 15 * 0.027)))


def test_paxos_commit_trades_the_repair_for_a_takeover() -> None:
    two = Scenario(failure_rate=5 / 60)
    paxos = replace(two, protocol="paxos-commit")
    assert two.blocked_s == 30.0 and paxos.blocked_s == pytest.approx(0.5 + 0.02)
    assert study.capacity(paxos) > 0.97 / two.hold_s > 2 * study.capacity(two)


def test_a_fixed_crash_blocks_the_one_transaction_in_doubt() -> None:
    sc = Scenario(arrival_rate=20, failure_rate=0.0, duration_s=20, crashes_s=(10.0,),
                  repair_s=3.0)
    run = study.simulate(sc)
    assert run.blocked.sum() <= 1
    waiting = study.summary(run)["p99_commit_s"]
    assert waiting > 1.0 if run.blocked.any() else waiting < 1.0


@pytest.mark.parametrize(("field", "value", "allowed"), [
    ("protocol", "3pc", "one of 2pc, paxos-commit"),
    ("arrival_rate", 0, "> 0"),
    ("repair_s", -1, ">= 0"),
    ("forces", 1.5, "an integer"),
])
def test_scenario_errors_name_field_value_and_allowed(field, value, allowed) -> None:
    with pytest.raises(ValueError, match=f"Scenario.{field} must be"):
        Scenario(**{field: value})


def test_the_sweep_gives_intervals_for_each_setting() -> None:
    rows = study.sweep(Scenario(arrival_rate=60, duration_s=30), replications=2,
                       protocol=list(study.PROTOCOLS), failure_rate=[0.0, 0.5])
    assert len(rows) == 4 and all(r["replications"] == 2 for r in rows)
    assert all(math.isfinite(r["throughput_ci"]) for r in rows)


# --- the protocol lab ------------------------------------------------------------------------

RANDOM = LabScenario(nodes=4, workload=CommitWorkload(n_ops=200, rate=50.0, no_vote=0.1),
                     nemesis=RandomNemesis(kinds=("loss", "partition", "crash", "duplicate")))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_two_phase_commit_passes_the_atomic_commit_checker_under_faults(seed) -> None:
    result = lab_run(TwoPhaseCommitNode, RANDOM, seed).check()
    result.assert_valid()
    assert result.details["committed"] > 0 and result.details["aborted"] > 0


def test_an_impatient_coordinator_commits_against_a_no_vote() -> None:
    result = lab_run(ImpatientCoordinator, RANDOM, 1).check()
    assert not result.valid and "committed although" in result.reason
    assert result.seed == 1 and "run(ImpatientCoordinator" in result.replay
    assert result.witness[0].f == "commit" and result.witness[0].value


def test_a_participant_that_aborts_on_its_own_disagrees_with_the_others() -> None:
    result = lab_run(UnilateralAbort, RANDOM, 3).check()
    assert not result.valid and "both committed and aborted" in result.reason


def test_a_dead_coordinator_blocks_prepared_participants_until_it_restarts() -> None:
    work = CommitWorkload(n_ops=150, rate=50.0, no_vote=0.0)
    dead = lab_run(TwoPhaseCommitNode, LabScenario(
        nodes=4, workload=work, nemesis=Nemesis((Crash("n1", 1.581),))), 1).check()
    back = lab_run(TwoPhaseCommitNode, LabScenario(
        nodes=4, workload=work, nemesis=Nemesis((Crash("n1", 1.581, 2.5),))), 1).check()
    dead.assert_valid()
    back.assert_valid()
    assert dead.details["blocked"] >= 1 and back.details["blocked"] == 0


def test_the_checker_reads_decisions_from_the_final_reads() -> None:
    def op(i, f, key, value, output, status, node):
        return Op(i, 0, f, key, value, output, 0.0, 1.0, status, node)

    history = History.of([
        op(0, "commit", 7, (), "commit", Status.OK, "n1"),
        op(1, "read", 0, None, frozenset({(7, COMMIT)}), Status.OK, "n2"),
        op(2, "read", 0, None, frozenset({(7, PREPARED)}), Status.OK, "n3"),
    ])
    result = check_atomic_commit(history)
    assert result.valid and result.details["blocked"] == 1
    assert result.details["avoidably_blocked"] == 1
    split = History.of([*history][:2] + [op(2, "read", 0, None, frozenset({(7, ABORT)}),
                                            Status.OK, "n3")])
    result = check_atomic_commit(split)
    assert not result.valid and len(result.witness) == 3


# --- SQLite ----------------------------------------------------------------------------------


def test_sqlite_commits_attached_files_as_the_coordinator_decides(tmp_path) -> None:
    amounts = [30, 40, 60, 20, 50, 10, 80, 5]
    real = study.sqlite_transfers(str(tmp_path), amounts)
    assert real == study.coordinator_transfers(amounts)
    assert COMMIT in real and ABORT in real


# --- plots -----------------------------------------------------------------------------------


def test_the_plot_helpers_draw_theory_beside_simulation() -> None:
    import matplotlib.pyplot as plt

    fig = study.draw_hot_row(crashes_per_min=5.0)
    left, right = fig.axes
    assert {line.get_label() for line in left.lines} >= {"2pc: theory", "2pc: simulated",
                                                         "paxos-commit: theory"}
    assert right.get_yscale() == "log"
    base = Scenario(arrival_rate=60, duration_s=30)
    ax = study.plot_theory(study.sweep(base, replications=2, protocol=["2pc"],
                                       failure_rate=[0.0, 0.1]), base)
    assert len(ax.containers) == 1
    episode = Scenario(arrival_rate=20, failure_rate=0.0, duration_s=20, crashes_s=(5.0,))
    axes = study.plot_dashboard({"2pc": study.simulate(episode)})
    assert len(axes) == 3
    plt.close("all")
