"""Tests of the auto-scaling pattern (patterns.performance.auto_scaling) and its study
(simulations.performance.auto_scaling): behaviour, error messages, theory vs simulation."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from patterns.performance.auto_scaling import (
    HPAPolicy,
    PredictivePolicy,
    ProductionAutoscaler,
    ScalingLimits,
    ThresholdPolicy,
    square_root_replicas,
)
from simulations import theory
from simulations.performance import auto_scaling as study


def test_hpa_follows_the_documented_example_and_tolerance():
    # Kubernetes v1.33 tolerance blog post: 50 replicas at 90 % against a 75 % target -> 60.
    assert HPAPolicy(target=0.75).desired(0.90, 50, now=0) == 60
    assert HPAPolicy(target=0.75).desired(0.80, 50, now=0) == 50  # 6.7 % off: inside 10 %
    assert HPAPolicy(target=0.5).desired(0.56, 10, now=0) == 12  # 12 % off: ceil(11.2)


def test_hpa_scale_down_waits_for_the_stabilisation_window():
    hpa = HPAPolicy(target=0.5, scale_down_window_s=300)
    assert hpa.desired(0.5, 10, now=0) == 10
    for t in range(15, 300, 15):  # the load halves: the old recommendation of 10 still counts
        assert hpa.desired(0.25, 10, now=t) == 10
    assert hpa.desired(0.25, 10, now=315) == 5
    assert HPAPolicy(target=0.5, scale_down_window_s=0).desired(0.25, 10, now=0) == 5


def test_threshold_policy_respects_its_cooldown():
    policy = ThresholdPolicy(scale_out_at=0.8, scale_in_at=0.3, step=2, cooldown_s=60)
    assert policy.desired(0.9, 4, now=0) == 6
    assert policy.desired(0.9, 6, now=30) == 6  # cooling down
    assert policy.desired(0.9, 6, now=60) == 8
    assert policy.desired(0.1, 8, now=130) == 7


def test_predictive_policy_staffs_the_forecast_with_square_root_headroom():
    policy = PredictivePolicy(lambda t: 400.0 if t >= 100 else 100.0, service_rate=10,
                              lead_s=100, beta=1.0, target=0.6)
    assert policy.desired(0.5, 10, now=0) == square_root_replicas(400, 10, 1.0) == 47
    assert square_root_replicas(400, 10, 1.0) == theory.square_root_staffing(40, 1.0)


def test_bad_settings_name_the_parameter():
    with pytest.raises(ValueError, match=r"target must be in \(0, 1\] \(got 60\)"):
        HPAPolicy(target=60)
    with pytest.raises(ValueError, match="scale_in_at"):
        ThresholdPolicy(scale_out_at=0.5, scale_in_at=0.7)
    with pytest.raises(ValueError, match="ScalingLimits.max_replicas"):
        ScalingLimits(min_replicas=5, max_replicas=2)
    with pytest.raises(ValueError, match="policy must be one of"):
        study.Scenario(policy="magic")


def test_production_autoscaler_limits_and_survives_a_missing_metric():
    scaler = ProductionAutoscaler("web", HPAPolicy(target=0.5), ScalingLimits(2, 20, 2.0))
    assert scaler.desired(1.0, 4, now=0) == 8
    assert scaler.desired(5.0, 8, now=15) == 16  # ceil(80) capped at twice the current
    assert scaler.desired(None, 16, now=30) == 16
    assert scaler.desired(float("nan"), 16, now=45) == 16
    assert scaler.desired(5.0, 16, now=60) == 20  # max_replicas
    counts = scaler.metrics.counts
    assert counts["metric_missing"] == 2 and counts["decisions"] == 5
    assert counts["capped_scale_up"] == 2 and counts["scale_up"] == 3


def test_vectorised_p99_wait_equals_the_toolkit_formula():
    rates, servers = np.array([30.0, 55.0, 80.0, 99.0]), np.array([5, 7, 10, 10])
    ours = study.mmc_p99_wait(rates, 10.0, servers)
    expected = [theory.mmc_wait_percentile(r, 10.0, int(c), 0.99) for r, c in zip(rates, servers,
                                                                                   strict=True)]
    np.testing.assert_allclose(ours, expected, rtol=1e-9)
    assert study.mmc_p99_wait(np.array([120.0]), 10.0, np.array([10]))[0] == math.inf


def test_square_root_staffing_matches_a_real_queue():
    # fifo_queue with c = ceil(R + sqrt R) servers; 5 seeds x 100k customers (90k after warm-up).
    # Waits are correlated, so the share who waited is estimated from the spread across seeds:
    # its standard error is about 0.004 here; 4 standard errors + 0.005 is the tolerance.
    shares = [study.staffing_wait_probability(50.0, 1.0, np.random.default_rng(s))[1]
              for s in range(5)]
    servers = square_root_replicas(50.0, 1.0, 1.0)
    error_c = theory.erlang_c(50.0, 1.0, servers)
    se = np.std(shares, ddof=1) / np.sqrt(len(shares))
    assert abs(np.mean(shares) - error_c) < 4 * se + 0.005
    # Halfin-Whitt is the R -> infinity limit; at R = 50 with the ceiling it is within 0.04.
    assert abs(theory.halfin_whitt_wait_probability(1.0) - error_c) < 0.04


def test_backlog_during_the_provisioning_delay_matches_a_real_queue():
    # 20 servers at mu = 1, the rate jumps to 30/s; after D = 60 s the queue holds (30-20)*60.
    # One run's count has sd about sqrt((30 + 20) * 60) = 55; 20 seeds: se 12; tolerance 4 se.
    measured = np.mean([study.backlog_after(30.0, 1.0, 20, 60.0, np.random.default_rng(s))
                        for s in range(20)])
    assert abs(measured - study.backlog_estimate(30.0, 1.0, 20, 60.0)) < 50


def test_the_step_model_builds_the_same_backlog_while_replicas_boot():
    # Load jumps from 100 to 300 req/s at t = 600 s; 10 replicas at 10 req/s; D = 300 s.
    # Steps start..end cover the 300 s before the first new replica is ready: the backlog is
    # (300 - c*mu) * 300 with c the replicas ready at the jump, give or take the Poisson
    # spread of 300 s of arrivals (sd sqrt(300 * 300) = 300); tolerance 4 sd.
    from simulations.workloads import TimeVaryingArrivals

    scenario = study.Scenario(load=TimeVaryingArrivals.step(100, 300, 600), duration_s=1200,
                              provisioning_delay_s=300, cooldown_s=0)
    run = study.simulate(scenario)
    start = int(600 / scenario.step_s)
    end = start + int(300 / scenario.step_s) - 1
    assert run.ready[end] == run.ready[start]  # nobody new is ready yet
    expected = study.backlog_estimate(300, scenario.service_rate, run.ready[start], 300)
    assert abs(run.backlog[end] - expected) < 4 * 300


def test_longer_provisioning_delay_costs_slo_and_the_runs_are_deterministic():
    base = study.Scenario()
    fast = study.summary(study.simulate(replace(base, provisioning_delay_s=0)))
    slow = study.summary(study.simulate(replace(base, provisioning_delay_s=600)))
    assert slow["slo_violation_pct"] > fast["slo_violation_pct"]
    assert study.summary(study.simulate(base)) == study.summary(study.simulate(base))


def test_counting_booting_replicas_as_busy_overshoots():
    base = study.Scenario(provisioning_delay_s=300)
    right = study.summary(study.simulate(base))["instance_hours"]
    wrong = study.summary(study.simulate(replace(base, booting_counts_as_busy=True)))
    assert wrong["instance_hours"] > 3 * right


def test_a_bounded_queue_sheds_during_the_provisioning_delay():
    # The HPA at 80 % with a 600 s boot is overloaded during the 10:00 surge (1.5 x 0.8 > 1).
    slow = study.Scenario(threshold=0.8, provisioning_delay_s=600)
    open_queue = study.simulate(slow)
    bounded = study.simulate(replace(slow, max_queue_s=0.05))
    drain = bounded.backlog / (bounded.ready * slow.service_rate)
    assert open_queue.shed.sum() == 0 and open_queue.backlog.max() > 1_000
    assert drain.max() <= 0.05 + 1e-9 and 0 < study.summary(bounded)["shed_pct"] < 1
    with pytest.raises(ValueError, match="max_queue_s"):
        study.Scenario(max_queue_s=0)
