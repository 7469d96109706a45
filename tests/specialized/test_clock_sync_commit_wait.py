"""Tests of the commit-wait pattern (patterns.specialized.clock_sync_commit_wait) and its study
(simulations.specialized.clock_sync_commit_wait): behaviour, error messages, the lab designs
under skewed clocks, and theory vs simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from patterns.specialized.clock_sync_commit_wait import (
    ClockOffsetError,
    ClockSyncCommitWait,
    CommitWait,
    CommitWaitConfig,
    HybridLogicalClock,
    ProductionCommitWait,
    TrueTime,
)
from simulations.lab import Status, run
from simulations.specialized import clock_sync_commit_wait as study


class HandClock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def test_the_study_uses_the_pattern_class():
    assert study.ClockSyncCommitWait is ClockSyncCommitWait is CommitWait


def test_commit_waits_two_epsilon_and_timestamps_increase():
    clock = HandClock()
    gate = CommitWait(TrueTime(0.004, clock), sleep=clock.sleep)
    s, waited = gate.commit(lambda s: None)
    assert s == pytest.approx(100.004) and waited == pytest.approx(0.008, abs=1e-5)
    assert gate.truetime.after(s) and not gate.truetime.before(s)
    assert gate.assign() > s  # the Start rule keeps timestamps increasing
    frozen = CommitWait(TrueTime(0.0, clock))
    assert frozen.assign() < frozen.assign()  # even when the clock has not moved


def test_a_growing_epsilon_is_rechecked():
    clock = HandClock(0.0)
    gate = CommitWait(TrueTime(lambda r: 0.01 + 0.1 * r, clock), sleep=clock.sleep)
    s, _ = gate.commit(lambda s: None)
    assert clock.t - (0.01 + 0.1 * clock.t) > s  # TT.after(s) holds with the ε of the end


def test_hlc_follows_messages_from_a_fast_clock_and_stays_near_physical_time():
    slow = HandClock(10.0)
    hlc = HybridLogicalClock(slow)
    first = hlc.now()
    received = hlc.update((10.5, 3))  # the sender's clock is 0.5 s ahead
    assert received > (10.5, 3) > first
    slow.t = 10.2
    assert hlc.now() == (10.5, 5)  # the counter carries on while l is ahead
    slow.t = 11.0
    assert hlc.now() == (11.0, 0)  # physical time caught up: the counter resets
    assert hlc.update((9.0, 7)) == (11.0, 1)  # an old message does not pull it back


def test_bad_settings_name_the_parameter():
    with pytest.raises(ValueError, match=r"TrueTime.epsilon_s must be >= 0 \(got -1\)"):
        TrueTime(-1)
    with pytest.raises(ValueError, match=r"CommitWaitConfig.epsilon_s must be in \[0, 0.5\]"):
        CommitWaitConfig(epsilon_s=0.7)
    with pytest.raises(ValueError, match="behind_s must be >= 0"):
        study.skewed(-0.01)


def test_production_gate_counts_commits_and_refuses_after_a_bad_offset():
    clock = HandClock()
    gate = ProductionCommitWait(CommitWaitConfig(epsilon_s=0.002, max_offset_s=0.1), clock,
                                clock.sleep)
    for _ in range(3):
        gate.commit(lambda s: None)
    gate.observe_offset("n2", 0.25)
    with pytest.raises(ClockOffsetError):
        gate.commit(lambda s: None)
    counts = gate.metrics.counts
    assert counts["commits"] == 3 and counts["offset_exceeded"] == 1 and counts["refused"] == 1
    assert gate.metrics.observed("wait_seconds") == 3


def test_local_clocks_fail_and_commit_wait_passes_under_skew():
    broken = run(study.LocalClockRegister, study.lab_scenario(study.skewed(0.05)), 1)
    result = broken.check()
    assert not result.valid and result.witness and "seed 1" in str(result)
    assert len(study.inversions(broken)) > 0
    for seed in (1, 2, 3):  # 2ε = 20 ms covers a 20 ms skew
        good = run(study.commit_wait_node(0.01), study.lab_scenario(study.skewed(0.02)), seed)
        good.check().assert_valid()
        assert len(study.inversions(good)) == 0
        hlc = run(study.HLCRegister, study.lab_scenario(study.skewed(0.05)), seed)
        hlc.check().assert_valid()
        assert len(study.inversions(hlc)) == 0


def test_commit_wait_adds_two_epsilon_to_the_mean_write_latency():
    def latencies(eps: float) -> np.ndarray:
        runs = [run(study.commit_wait_node(eps), study.lab_scenario(n_ops=200), s)
                for s in (1, 2, 3)]
        return np.concatenate([r.history.where(f="write", status=Status.OK).column("latency_s")
                               for r in runs])

    base = latencies(0.0)
    for eps in (0.01, 0.03):
        lat = latencies(eps)
        # 4 standard errors of a difference of two means (about 300 writes each, sd ~ 10 ms):
        # about 3 ms, far below the 20 ms and 60 ms being checked.
        tol = 4 * math.hypot(base.std() / math.sqrt(len(base)), lat.std() / math.sqrt(len(lat)))
        assert lat.mean() == pytest.approx(study.write_latency_theory(eps, base.mean()), abs=tol)


@pytest.mark.parametrize(("behind", "eps"), [(0.04, 0.0), (0.02, 0.0), (0.04, 0.01),
                                             (0.04, 0.02)])
def test_pair_model_matches_its_closed_form(behind, eps):
    n = 200_000
    share = study.pair_anomalies(3, 25.0, behind, eps, n, np.random.default_rng(7))
    theory = study.anomaly_share(3, 25.0, behind, eps)
    # 5 binomial standard errors over n - 1 pairs (at most 0.0047 for p = 0.14), plus 1e-9
    # for the exact zero of 2ε ≥ δ.
    assert share == pytest.approx(theory, abs=5 * math.sqrt(theory * (1 - theory) / n) + 1e-9)
    if 2 * eps >= behind:
        assert share == 0.0


def test_drifting_clocks_are_seeded_and_within_their_bounds():
    first, again = study.drifting_clocks(5), study.drifting_clocks(5)
    assert first == again and first != study.drifting_clocks(6)
    assert all(abs(f.skew_s) <= 0.005 and abs(f.drift) <= 0.02 for f in first.faults)
    with pytest.raises(ValueError, match=r"nodes must be an integer >= 2 \(got 1\)"):
        study.pair_anomalies(1, 10.0, 0.01, 0.0, 10, np.random.default_rng(1))


def test_the_plots_name_their_curves():
    import matplotlib

    matplotlib.use("Agg")
    rows = study.sweep_epsilon([0.0, 0.01], seeds=(1,), n_ops=60)
    assert len(study.plot_latency(rows, rows[0]["write_mean_s"]).get_legend().texts) == 2
    failures = study.failure_rate(study.LocalClockRegister, [0.0, 0.05], seeds=(1, 2), n_ops=60)
    assert failures[0]["fail_share"] == 0.0 and 0 < failures[0]["fail_high"] < 1
    label = study.plot_failures({"local": failures}).get_legend().texts[0].get_text()
    assert label.startswith("local")
    lab_run = run(study.commit_wait_node(0.01), study.lab_scenario(n_ops=60), 1)
    assert len(study.plot_dashboard(lab_run)) == 3
