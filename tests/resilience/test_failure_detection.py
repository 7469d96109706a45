"""Failure detectors (patterns.resilience.failure_detection) and the heartbeat study
(simulations.resilience.failure_detection).

Theory checks use independent replications and a t-interval: the simulated mean must lie within
k = 3 standard errors of the closed form (plus, for the φ approximations, a stated model margin).
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import replace

import numpy as np
import pytest
from concurrently import run_concurrently

from patterns.resilience.failure_detection import (
    DetectorConfig,
    FailureDetectorRegistry,
    HeartbeatDetector,
    PhiAccrualDetector,
    normal_tail_z,
    phi_exact,
    phi_logistic,
)
from simulations.distributions import LogNormal, survival
from simulations.metrics import t_quantile
from simulations.resilience.failure_detection import (
    Scenario,
    failover_summary,
    mean_detection_time_s,
    mistake_rate,
    phi_mean_detection_time_s,
    phi_mistake_rate,
    simulate,
    simulate_failover,
    summary,
    sweep,
    timeline,
    worst_detection_time_s,
)

K = 3.0  # standard errors allowed between simulation and theory


def mean_and_se(values):
    values = np.asarray(values, dtype=float)
    return values.mean(), values.std(ddof=1) / math.sqrt(len(values))


# ---------------------------------------------------------------- the small detectors

def test_heartbeat_detector_suspects_one_period_plus_timeout_after_the_freshest_send():
    now = [0.0]
    detector = HeartbeatDetector(period_s=1.0, timeout_s=0.5, clock=lambda: now[0])
    detector.heartbeat(sent_at=0.0)
    now[0] = 1.49
    assert not detector.suspected()
    now[0] = 1.5
    assert detector.suspected()
    detector.heartbeat(sent_at=1.0)  # a fresher heartbeat restores trust until 2.5 s
    assert not detector.suspected() and detector.deadline() == 2.5
    detector.heartbeat(sent_at=0.2)  # a stale, reordered one changes nothing
    assert detector.deadline() == 2.5


def test_heartbeat_detector_without_timestamps_times_from_arrival():
    now = [0.0]
    detector = HeartbeatDetector(1.0, 0.5, clock=lambda: now[0])
    now[0] = 0.3
    detector.heartbeat()
    assert detector.deadline() == pytest.approx(1.8)


def test_phi_rises_with_silence_and_crosses_the_threshold_at_the_deadline():
    now = [0.0]
    detector = PhiAccrualDetector(threshold=8.0, window=50, min_std_s=0.05, clock=lambda: now[0])
    rng = random.Random(3)
    for _ in range(60):
        now[0] += 1.0 + rng.gauss(0, 0.1)
        detector.heartbeat()
    last = now[0]
    phis = []
    for wait in (0.5, 1.0, 1.5, 2.0):
        now[0] = last + wait
        phis.append(detector.phi())
    assert phis == sorted(phis) and phis[0] < 1 < phis[-1]
    now[0] = detector.deadline()
    assert detector.phi() == pytest.approx(8.0, abs=1e-9)
    now[0] += 1e-6
    assert detector.suspected()
    now[0] -= 2e-6
    assert not detector.suspected()


def test_phi_matches_the_standard_library_normal_distribution_on_the_same_window():
    """The well-kept implementation beside ours: statistics.NormalDist on the raw window."""
    now = [0.0]
    detector = PhiAccrualDetector(window=100, min_std_s=0.0, clock=lambda: now[0])
    rng = random.Random(11)
    for _ in range(300):
        now[0] += rng.lognormvariate(0, 0.3)
        detector.heartbeat()
    window = list(detector.intervals)
    reference = statistics.NormalDist(statistics.fmean(window), statistics.pstdev(window))
    for elapsed in (0.1, 0.9, 1.5, 2.5, 3.0):
        now[0] = detector.last + elapsed
        expected = -math.log10(1.0 - reference.cdf(detector.last + elapsed - detector.last))
        # 1 - cdf near 1 keeps about 6 significant digits of a φ-8 tail in the reference
        assert detector.phi() == pytest.approx(expected, rel=1e-6)


def test_phi_exact_stays_finite_far_in_the_tail_and_the_logistic_form_is_close_near_the_mean():
    # erfc underflows near z = 37; the asymptotic form takes over smoothly: dφ/dz ≈ z / ln 10.
    low, high = phi_exact(37.0, 0.0, 1.0), phi_exact(37.2, 0.0, 1.0)
    assert math.isfinite(phi_exact(60.0, 0.0, 1.0))
    assert abs((high - low) - 37.1 * 0.2 / math.log(10)) < 0.05
    for z in np.linspace(-3, 3.5, 27):  # within 3 % of φ up to 3.5 standard deviations
        assert abs(phi_logistic(1 + z, 1.0, 1.0) - phi_exact(1 + z, 1.0, 1.0)) < 0.12
    # ... but near Akka's threshold of 8 the approximation overstates φ by more than 1
    assert phi_logistic(6.5, 1.0, 1.0) - phi_exact(6.5, 1.0, 1.0) > 1.0
    assert normal_tail_z(8.0) == pytest.approx(5.612, abs=1e-3)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: HeartbeatDetector(period_s=0, timeout_s=1), "period_s must be > 0 (got 0)"),
    (lambda: HeartbeatDetector(1, timeout_s=-1), "timeout_s must be >= 0 (got -1)"),
    (lambda: PhiAccrualDetector(threshold=-8), "threshold must be in (0, 300] (got -8)"),
    (lambda: PhiAccrualDetector(window=1), "window must be an integer >= 2 (got 1)"),
    (lambda: DetectorConfig(min_std_deviation_s=0),
     "DetectorConfig.min_std_deviation_s must be > 0 (got 0)"),
    (lambda: Scenario(detector="gossip"),
     "detector must be one of timeout, arrival-timeout, phi (got 'gossip')"),
    (lambda: Scenario(loss_probability=1.5), "loss_probability must be in [0, 1] (got 1.5)"),
])
def test_bad_settings_are_refused_with_a_clear_message(make, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        make()


# ---------------------------------------------------------------- production registry

def test_registry_announces_suspicion_and_recovery_once_each(caplog):
    now = [0.0]
    changes = []
    registry = FailureDetectorRegistry(DetectorConfig(acceptable_heartbeat_pause_s=0.0),
                                       clock=lambda: now[0],
                                       listeners=[lambda m, s, t: changes.append((m, s, t))])
    for t in range(10):
        now[0] = float(t)
        registry.heartbeat("db-1")
        registry.heartbeat("db-2")
    now[0] = 9.9
    assert registry.check() == []
    now[0] = 20.0
    registry.heartbeat("db-2")
    with caplog.at_level("INFO", logger="patterns.resilience.failure_detection"):
        assert registry.check() == [("db-1", True)]
        assert registry.check() == []
        registry.heartbeat("db-1")
        assert registry.check() == [("db-1", False)]
    assert changes == [("db-1", True, 20.0), ("db-1", False, 20.0)]
    assert registry.metrics.counts["suspicions"] == 1 and registry.metrics.counts["recoveries"] == 1
    assert "member db-1 suspected" in caplog.text
    intervals = registry.metrics.observed("heartbeat_interval_seconds")
    assert intervals == registry.metrics.counts["heartbeats"] - 2


def test_registry_counts_add_up_under_concurrent_heartbeats():
    registry = FailureDetectorRegistry()
    members = [f"node-{i}" for i in range(4)]

    def beat(member):
        for _ in range(2000):
            registry.heartbeat(member)
            registry.check()

    run_concurrently(beat, members)
    assert registry.metrics.counts["heartbeats"] == 8000
    assert registry.metrics.observed("heartbeat_interval_seconds") == 8000 - len(members)


# ---------------------------------------------------------------- the simulation against theory

def test_simulation_is_deterministic_and_logs_every_heartbeat():
    a, b = simulate(Scenario(duration_s=300, crash_at_s=200.5)), simulate(
        Scenario(duration_s=300, crash_at_s=200.5))
    assert a.suspicions == b.suspicions
    assert len(a.heartbeats) == 201  # sends at 0, 1, ..., 200; silent from the crash on
    line = timeline(a, bin_s=10)
    assert line["received_per_s"][5] == pytest.approx(1.0, abs=0.11)
    assert line["suspected"][-1] == pytest.approx(1.0)


@pytest.mark.parametrize("phase", [0.1, 0.5, 0.9])
def test_timeout_detection_time_is_exactly_period_plus_timeout_minus_the_crash_phase(phase):
    """NFD-S: T_D = η + δ − phase whatever the delays; its worst case is η + δ."""
    s = Scenario(period_s=1.0, timeout_s=0.7, duration_s=130, crash_at_s=120 + phase,
                 loss_probability=0.05)
    detection = summary(simulate(s))["detection_s"]
    assert detection == pytest.approx(1.0 + 0.7 - phase, abs=1e-9)
    assert detection < worst_detection_time_s(1.0, 0.7)


def test_mean_detection_time_over_random_crash_phases_is_delta_plus_half_a_period():
    rng = np.random.default_rng(5)
    s = Scenario(period_s=2.0, timeout_s=0.4, duration_s=80)
    times = [summary(simulate(replace(s, crash_at_s=60 + rng.uniform(0, 2), seed=i)))
             ["detection_s"] for i in range(12)]
    mean, se = mean_and_se(times)
    # Uniform phase: sd = η/√12 ≈ 0.58 s, so 3 SE over 12 runs ≈ 0.5 s.
    assert abs(mean - mean_detection_time_s(2.0, 0.4)) <= K * se


@pytest.mark.parametrize("timeout_s", [0.3, 1.2])
def test_timeout_mistake_rate_matches_the_closed_form(timeout_s):
    """λ_M = (1/η) P(D ≤ η+δ) Π_k P(D > δ − kη); δ = 1.2 > η exercises the product."""
    s = Scenario(timeout_s=timeout_s, jitter=LogNormal(0.1, 4.0), loss_probability=0.01,
                 duration_s=3600, crash_at_s=None, warmup_s=0)
    rates = [summary(simulate(replace(s, seed=seed)))["mistake_rate_per_h"] for seed in range(5)]
    mean, se = mean_and_se(rates)
    theory = 3600 * mistake_rate(s)
    # t-interval with 4 degrees of freedom would allow t·SE; we hold K = 3 SE (t_0.995 = 4.6).
    assert abs(mean - theory) <= K * se, (mean, se, theory)
    assert K < t_quantile(0.995, 4)


def test_the_simple_approximation_holds_when_the_timeout_is_shorter_than_the_period():
    s = Scenario(timeout_s=0.3, jitter=LogNormal(0.1, 4.0))
    simple = survival(s.jitter, 0.3 - s.base_delay_s) / s.period_s
    assert mistake_rate(s) == pytest.approx(simple, rel=0.01)


def test_phi_detection_time_and_mistake_rate_match_their_approximations():
    """With mild jitter (scv 0.25) the window's mean and deviation are close to the true ones.

    Model margin for the mistake rate: the window's deviation from 1000 samples has a relative
    error of about 3 %, and λ changes about 5 % per 1 % of deviation at Φ = 2, so a 15 % margin
    is added to the 3 standard errors.
    """
    s = Scenario(detector="phi", phi_threshold=2.0, window=1000, jitter=LogNormal(0.1, 0.25),
                 duration_s=3630, crash_at_s=3600.5)
    rows = [summary(simulate(replace(s, seed=seed))) for seed in range(4)]
    rate, rate_se = mean_and_se([r["mistake_rate_per_h"] for r in rows])
    theory = 3600 * phi_mistake_rate(s)
    assert abs(rate - theory) <= K * rate_se + 0.15 * theory, (rate, rate_se, theory)
    # the normal model's promise, 10^-Φ per heartbeat, is too rosy
    assert rate - K * rate_se > 3600 * 10 ** -s.phi_threshold
    detect, detect_se = mean_and_se([r["detection_s"] for r in rows])
    # The crash phase is fixed at η/2, so the spread is the delay's and the window's: small.
    assert abs(detect - phi_mean_detection_time_s(s)) <= K * detect_se + 0.05


def test_sweep_shows_the_trade_off_longer_timeouts_detect_later_and_err_less():
    rows = sweep(Scenario(duration_s=1230, crash_at_s=1200.5), timeout_s=[0.2, 0.6, 1.5])
    detection = [r["detection_s"] for r in rows]
    mistakes = [r["mistake_rate_per_h"] for r in rows]
    assert detection == sorted(detection) and mistakes == sorted(mistakes, reverse=True)
    with pytest.raises(ValueError, match="sweep setting must be one of"):
        sweep(Scenario(), colour=[1])


# ---------------------------------------------------------------- integration: failover

def test_failover_driven_by_the_detector_saves_the_calls_after_a_crash():
    s = Scenario(timeout_s=0.5, duration_s=180, crash_at_s=120.5)
    without = failover_summary(simulate_failover(s, detect=False))
    with_detector = failover_summary(simulate_failover(s))
    assert without["failed_after_crash"] == without["calls_after_crash"] > 0
    # Only the calls sent during the detection time (about η/2 + δ = 1 s at 20 req/s) fail.
    assert with_detector["failed_after_crash"] <= 20 * 1.5 + 10
    assert with_detector["failed_after_crash"] < without["failed_after_crash"] / 10
