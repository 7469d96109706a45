"""Tests of the primary-backup nodes (patterns.foundations.distributed_system_model) and the
distributed-system-model study: verdicts under a failover, closed forms against the lab."""

from __future__ import annotations

import numpy as np
import pytest

from patterns.foundations.distributed_system_model import (
    AsyncPrimaryBackup,
    SyncPrimaryBackup,
    apply_register,
)
from simulations.foundations import distributed_system_model as study
from simulations.lab import History, Op, Status, check_linearizable, run


def test_the_study_uses_the_pattern_nodes():
    assert study.DESIGNS["sync primary-backup"] is SyncPrimaryBackup
    assert study.DESIGNS["async primary-backup"] is AsyncPrimaryBackup


def test_apply_register_reads_writes_and_compare_and_sets():
    registers: dict = {}
    assert apply_register(registers, "write", 0, 5) == (True, None)
    assert apply_register(registers, "cas", 0, (4, 6)) == (False, None)
    assert apply_register(registers, "cas", 0, (5, 6)) == (True, None)
    assert apply_register(registers, "read", 0, None) == (True, 6)


def test_sync_primary_backup_keeps_every_acknowledged_write_through_the_failover():
    verdicts = study.verdicts(SyncPrimaryBackup, study.failover_scenario(), range(10))
    assert all(verdicts.values()), verdicts


def test_async_primary_backup_loses_acknowledged_writes_and_the_checker_says_so():
    scenario = study.failover_scenario()
    seed = study.first_failing_seed(AsyncPrimaryBackup, scenario, range(10))
    assert seed is not None
    result = run(AsyncPrimaryBackup, scenario, seed).check()
    assert not result.valid and result.witness and f"seed {seed}" in str(result)
    reads = [op for op in result.witness if op.f == "read"]
    assert reads and all(op.invoke_s > 2.08 for op in reads)  # a read after the failover


def test_failover_keeps_the_service_available_where_a_single_leader_stops():
    scenario = study.failover_scenario()
    single = run(study.DESIGNS["single leader"], scenario, 0).performance()["availability"]
    backed = run(SyncPrimaryBackup, scenario, 0).performance()["availability"]
    assert backed > single + 0.2


@pytest.mark.parametrize("nodes", [3, 5])
@pytest.mark.parametrize("name", list(study.DESIGNS))
def test_messages_per_operation_match_the_closed_form(name, nodes):
    # The mean of three seeds of 400 operations (n = 1,200). The write share is binomial, so
    # its standard error is sqrt(0.25 / n) = 0.0144; a write costs at most 2(N - 1) + 1
    # messages, so three standard errors of the total are 3 * 0.0144 * (2N - 1). The async
    # batches are counted as an upper bound (a batch is sent only after a write): 5 % more.
    rows = study.cost_table((name,), nodes=nodes, seeds=(0, 1, 2))
    measured = np.mean([row["messages_per_op"] for row in rows])
    expected = np.mean([study.expected_messages_per_op(name, nodes, row["read"],
                                                       row["duration_s"], study.len_ops(row))
                        for row in rows])
    tolerance = 3 * np.sqrt(0.25 / (3 * 400)) * (2 * nodes - 1)
    assert abs(measured - expected) <= tolerance + 0.05 * expected, (measured, expected)


@pytest.mark.parametrize("nodes", [3, 5])
@pytest.mark.parametrize("name", list(study.DESIGNS))
def test_mean_latency_matches_the_closed_form(name, nodes):
    # 3 x 400 operations; one operation's latency is a sum of 2 to 5 exponential legs of mean
    # 5 ms (sd about 10 ms), so the mean of ~1,200 has a standard error of about 0.3 ms (2-3 %);
    # FIFO links and the synchronous round trip's approximation add a little, hence 8 %.
    rows = study.cost_table((name,), nodes=nodes, seeds=(0, 1, 2))
    measured = np.mean([row["latency_mean_s"] for row in rows])
    assert measured == pytest.approx(study.expected_latency_s(name, nodes, 0.5), rel=0.08)


def test_the_slowest_round_trip_formula():
    draws = np.random.default_rng(1).gamma(2.0, 1.0, size=(200_000, 2)).max(axis=1)
    assert study._slowest_round_trip(2) == pytest.approx(draws.mean(), rel=0.01)
    assert study._slowest_round_trip(1) == 2.0


def test_unknown_design_gets_one_clear_error():
    with pytest.raises(ValueError, match="unknown design 'paxos'"):
        study.expected_messages_per_op("paxos", 3, 0.5)


def op(index, client, f, value, output, start, end):
    return Op(index, client, f, 0, value, output, start, end, Status.OK)


# Client 0 writes 1 and then 2; client 1 reads 1 after the write of 2 has completed.
STALE = History.of([op(0, 0, "write", 1, None, 0.0, 1.0), op(1, 0, "write", 2, None, 2.0, 3.0),
                    op(2, 1, "read", None, 1, 4.0, 5.0)])


def test_a_stale_read_is_sequentially_consistent_but_not_linearizable():
    assert study.is_sequentially_consistent(STALE.ops)
    assert not check_linearizable(STALE).valid


def test_going_back_in_time_is_not_even_sequentially_consistent():
    back = History.of([op(0, 0, "write", 1, None, 0.0, 1.0), op(1, 0, "write", 2, None, 2.0, 3.0),
                       op(2, 1, "read", None, 2, 4.0, 5.0), op(3, 1, "read", None, 1, 6.0, 7.0)])
    assert not study.is_sequentially_consistent(back.ops)


def test_the_brute_force_refuses_long_histories():
    many = [op(i, 0, "write", i, None, float(i), i + 0.5) for i in range(9)]
    with pytest.raises(ValueError, match="at most 8 operations"):
        study.is_sequentially_consistent(many)


def test_tuned_changes_a_setting_and_names_it():
    fast = study.tuned(AsyncPrimaryBackup, ship_s=0.02)
    assert issubclass(fast, AsyncPrimaryBackup) and fast.ship_s == 0.02
    assert fast.__name__ == "AsyncPrimaryBackup_ship_s0p02"


def test_the_failover_delay_follows_the_suspicion_timeout():
    # n2 last hears n1 at most one heartbeat (50 ms) plus a link delay before the crash.
    for timeout in (0.1, 0.25, 0.6):
        design = study.tuned(SyncPrimaryBackup, suspect_after_s=timeout)
        lab_run = run(design, study.failover_scenario(), 0)
        delay = study.failover_delay_s(lab_run, 2.08)
        assert timeout - 0.05 <= delay <= timeout, (timeout, delay)
        answered = [op.complete_s for op in lab_run.history
                    if op.node == "n2" and op.status.value == "ok" and op.invoke_s > 2.08]
        assert min(answered) > 2.08 + delay  # nothing asked of n2 is answered before


def test_over_time_counts_every_operation_and_message_once():
    lab_run = run(AsyncPrimaryBackup, study.failover_scenario(), 1)
    times, series = study.over_time(lab_run, bin_s=0.25)
    counts = lab_run.history.counts()
    assert series["ok operations / s"].sum() * 0.25 == pytest.approx(counts["ok"])
    assert series["unknown (timed out) / s"].sum() * 0.25 == pytest.approx(counts["unknown"])
    sent = lab_run.journal.between_nodes(lab_run.nodes).sum()
    assert series["messages between nodes / s"].sum() * 0.25 == pytest.approx(sent)
    assert len(times) == len(series["ok operations / s"])
