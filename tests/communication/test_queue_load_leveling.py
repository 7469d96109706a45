"""Tests of the Queue Load Leveling pattern (patterns.communication.queue_load_leveling) and its
study (simulations.communication.queue_load_leveling): behaviour, error messages, theory vs
simulation, agreement with the standard library's queue.Queue."""

from __future__ import annotations

import queue
import threading
from dataclasses import replace

import numpy as np
import pytest

from patterns.communication.queue_load_leveling import (
    LevelingQueue,
    ProductionLevelingQueue,
    QueueConfig,
    WorkerPool,
)
from simulations import theory
from simulations.communication import queue_load_leveling as study
from simulations.communication.queue_load_leveling import Scenario, simulate, summary


def test_the_study_uses_the_pattern_class():
    assert study.LevelingQueue is LevelingQueue


def test_bounded_send_lease_expiry_and_dead_letters():
    now = [0.0]
    q = LevelingQueue(capacity=2, visibility_timeout_s=5, max_receives=2, clock=lambda: now[0])
    assert q.send("a") and q.send("b") and q.send("c") is None and q.rejected == 1
    m = q.receive()
    assert m.body == "a" and q.depth == 1 and len(q) == 2
    now[0] = 5.0  # the lease ran out: "a" is back at the front
    assert q.receive().body == "a"
    with pytest.raises(KeyError, match="not leased"):
        q.ack(type(m)(99, "x", 0.0))
    now[0] = 10.0
    assert q.receive().body == "b" and [d.body for d in q.dead_letters] == ["a"]


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match=r"QueueConfig.capacity must be an integer >= 1 \(got 0\)"):
        QueueConfig(capacity=0)
    with pytest.raises(ValueError, match="QueueConfig.visibility_timeout_s must be > 0"):
        QueueConfig(visibility_timeout_s=-1)


def test_worker_pool_counters_add_up_with_a_poison_message():
    q = ProductionLevelingQueue("t", QueueConfig(capacity=500, max_receives=3))
    done = []

    def handle(body):
        if body == 7:
            raise ValueError("poison")
        done.append(body)

    for i in range(300):
        q.send(i)
    pool = WorkerPool(q, handle, workers=4, poll_s=0.01)
    for _ in range(500):
        if q.stats()["depth"] == 0 and not q.leased:
            break
        threading.Event().wait(0.01)
    assert pool.stop()
    c = q.metrics.counts
    assert sorted(done) == [i for i in range(300) if i != 7]
    assert c["acked"] == 299 and c["dead_lettered"] == 1 and c["received"] == 302


def test_agrees_with_stdlib_queue_on_the_same_operations():
    rng = np.random.default_rng(3)
    ours, theirs = LevelingQueue(capacity=5), queue.Queue(maxsize=5)
    got_ours, got_theirs = [], []
    for i in range(500):
        if rng.random() < 0.6:
            accepted = ours.send(i) is not None
            try:
                theirs.put_nowait(i)
                assert accepted
            except queue.Full:
                assert not accepted
        else:
            m = ours.receive()
            if m is not None:
                ours.ack(m)
                got_ours.append(m.body)
            try:
                got_theirs.append(theirs.get_nowait())
            except queue.Empty:
                pass
    assert got_ours == got_theirs and len(got_ours) > 100


def test_simpy_run_of_the_pattern_matches_the_fast_path():
    for sc in (Scenario(duration_s=5), Scenario(duration_s=5, capacity=20, burst=(1, 3, 900),
                                                arrivals="bursty")):
        fast, slow = simulate(sc), study.simulate_simpy(sc)
        assert np.array_equal(fast.rejected, slow.rejected)
        assert np.nanmax(np.abs(fast.table.wait - slow.table.wait)) < 1e-9


def test_mm1_and_mmc_mean_wait_match_the_simulation():
    # 600 s at λ up to 285/s is over 100k messages; the batch-means standard error of the mean
    # wait at ρ = 0.8 is about 3 %, so 10 % is over three standard errors.
    for workers, rate in ((1, 80.0), (4, 320.0)):
        sc = Scenario(arrival_rate=rate, workers=workers, duration_s=600.0)
        got = np.mean([summary(simulate(replace(sc, seed=s)))["mean_wait_s"] for s in (1, 2)])
        want = theory.mmc_mean_wait(rate, 100.0, workers)
        assert got == pytest.approx(want, rel=0.10)


def test_kingman_with_the_mmpp_dispersion_matches_heavy_traffic():
    # ρ = 0.9, one worker, 2000 s (360k messages). Kingman is an approximation: with the MMPP's
    # asymptotic dispersion it is within 15 % here, with the gaps' SCV it is 40 % too low.
    sc = Scenario(arrival_rate=90.0, workers=1, arrivals="bursty", duration_s=2000.0)
    got = summary(simulate(sc))["mean_wait_s"]
    ca2 = study.mmpp_arrival_scv(1.6 * 90, 0.4 * 90, 0.1, 0.1)
    assert got == pytest.approx(theory.kingman_mean_wait(90.0, 100.0, ca2, 1.0), rel=0.15)
    times = study.arrival_process(sc).times(np.random.default_rng(1), horizon=2000.0)
    low = theory.kingman_mean_wait(90.0, 100.0, study.gap_scv(times), 1.0)
    assert low < 0.75 * got
    # the closed form of the dispersion against counts in 20 s windows (100 windows: ±30 %)
    assert study.measured_idc(times, 20.0, 2000.0) == pytest.approx(ca2, rel=0.3)


def test_kingman_across_service_variability():
    # Poisson arrivals (exact Pollaczek-Khinchine for one worker), c_s² 0 and 4 at ρ = 0.8,
    # 1000 s (80k messages): within 12 % (lognormal tails make c_s² = 4 the noisiest).
    for scv in (0.0, 4.0):
        sc = Scenario(arrival_rate=80.0, workers=1, service_scv=scv, duration_s=1000.0)
        got = summary(simulate(sc))["mean_wait_s"]
        assert got == pytest.approx(theory.kingman_mean_wait(80.0, 100.0, 1.0, scv), rel=0.12)


def test_drain_time_after_a_burst_matches_the_fluid_model():
    # 900/s for 5 s into 4 workers (400/s): backlog ≈ 2500, drain at 400 − 250 = 150/s ≈ 16.7 s.
    # The backlog's Poisson noise is about √(900·5) ≈ 67 messages, under 3 %; 10 % allowed.
    sc = Scenario(arrival_rate=250.0, duration_s=40.0, burst=(5.0, 10.0, 650.0))
    run = simulate(sc)
    series = study.over_time(run, 0.25)
    times, depth = series["depth"]
    after = times[(times > 10.0) & (depth <= 5)]
    drained = after[0] - 10.0
    backlog = study.burst_backlog(900.0, 4, 0.01, 5.0)
    assert drained == pytest.approx(study.drain_time_s(backlog, 4, 0.01, 250.0), rel=0.10)


def test_workers_needed_meets_the_target_in_simulation_and_one_fewer_does_not():
    c = study.workers_needed(300.0, 0.01, 0.002)
    ok = summary(simulate(Scenario(workers=c, duration_s=300.0)))["mean_wait_s"]
    short = summary(simulate(Scenario(workers=c - 1, duration_s=300.0)))["mean_wait_s"]
    assert ok <= 0.002 < short


def test_scaling_workers_on_the_backlog_cuts_the_wait_of_a_surge():
    from patterns.performance.auto_scaling import HPAPolicy, ProductionAutoscaler, ScalingLimits

    surge = Scenario(arrival_rate=250.0, duration_s=40.0, burst=(10.0, 20.0, 550.0))
    fixed = study.simulate_simpy(surge)
    scaler = ProductionAutoscaler("w", HPAPolicy(target=1.0, scale_down_window_s=10.0),
                                  ScalingLimits(min_replicas=2, max_replicas=16))
    scaled = study.simulate_simpy(surge, autoscaler=scaler, startup_s=1.0)
    assert summary(scaled, 10, 40)["p99_wait_s"] < summary(fixed, 10, 40)["p99_wait_s"] / 2
    assert study.worker_seconds(fixed, 40.0) == pytest.approx(160.0)
    assert 4 < scaled.workers_over_time[1].max() <= 16
    # every message was served, none lost while workers came and went
    assert not np.isnan(scaled.table.end).any()


def test_workers_needed_grows_with_arrival_variability():
    assert study.workers_needed(300.0, 0.01, 0.002) == 5
    assert study.workers_needed(300.0, 0.01, 0.002, arrival_scv=11.8) > 5
    with pytest.raises(ValueError, match="wait_target_s must be > 0"):
        study.workers_needed(300.0, 0.01, 0.0)
