"""Failover: the manager's behaviour, its errors, fencing, and the availability arithmetic
held against the SimPy model.

Tolerances: each theory check runs R seeded replications and accepts the theory if it lies
within 3 standard errors of the replications' mean (plus, for the first-order formula, its own
neglected second-order term, bounded by (gap / MTTF)² per failure). With the fixed seeds the
checks are deterministic; 3 standard errors would reject a correct theory about 0.3 % of the
time for a fresh seed.
"""

from __future__ import annotations

import math
import threading
from dataclasses import replace

import numpy as np
import pytest
from concurrently import run_concurrently

from patterns.resilience.failover import (
    FailoverConfig,
    FailoverManager,
    ProductionFailoverManager,
    StalePrimaryError,
)
from simulations.distributions import Deterministic, Exponential
from simulations.resilience.failover import (
    Scenario,
    availability,
    downtime_per_year_min,
    failover_unavailability,
    intersect_spans,
    markov_availability,
    mean_detection_s,
    merge_spans,
    parallel_availability,
    simulate,
    summary,
    sweep,
    timeline,
)


def _mean_and_se(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values, ddof=1) / math.sqrt(len(values)))


def _availabilities(scenario: Scenario, replications: int = 8) -> list[float]:
    return [simulate(replace(scenario, seed=100 + k)).availability for k in range(replications)]


# ---------------------------------------------------------------- the manager


def test_manager_fails_over_after_detection_and_promotion() -> None:
    now = [0.0]
    m = FailoverManager(["a", "b"], heartbeat_s=1.0, timeout_s=2.0, promotion_s=5.0,
                        clock=lambda: now[0])
    for t in range(0, 11):  # both send heartbeats until t = 10, then "a" dies
        now[0] = float(t)
        m.heartbeat("a")
        m.heartbeat("b")
        assert m.tick() == "a"
    for t in (11.0, 12.0, 13.0):
        now[0] = t
        m.heartbeat("b")
        assert m.tick() == ("a" if t < 13 else None)  # suspected at 10 + 1 + 2
    now[0] = 17.9
    m.heartbeat("b")
    assert m.tick() is None  # still promoting
    now[0] = 18.0
    assert m.tick() == "b"
    assert [e for _, e, _ in m.history] == ["primary lost", "promoting", "promoted"]


def test_manager_abandons_a_promotion_whose_target_dies_and_waits_with_none_healthy() -> None:
    now = [0.0]
    m = FailoverManager(["a", "b"], 1.0, 0.0, 10.0, clock=lambda: now[0])
    now[0] = 1.0
    m.heartbeat("b")
    assert m.tick() is None  # "a" silent: lost; "b" promoting
    now[0] = 2.0
    assert m.tick() is None  # "b" silent too: promotion abandoned, nobody healthy
    assert m.promoting is None
    assert [e for _, e, _ in m.history] == ["primary lost", "promoting", "promotion abandoned"]
    m.heartbeat("a")
    now[0] = 2.5
    m.tick()
    assert m.promoting == "a"


def test_bad_settings_name_the_field_and_value() -> None:
    with pytest.raises(ValueError, match=r"FailoverConfig.heartbeat_s must be > 0 \(got 0\)"):
        FailoverConfig(heartbeat_s=0)
    with pytest.raises(ValueError, match=r"promotion_s must be >= 0 \(got -1"):
        FailoverManager(["a"], 1.0, 1.0, -1.0)
    with pytest.raises(ValueError, match="at least one replica"):
        FailoverManager([], 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"zones must be .*3.*\(got 4\)"):
        Scenario(replicas=3, zones=4)
    with pytest.raises(ValueError, match=r"replica_availability must be in \(0, 1\] \(got 1.5\)"):
        parallel_availability(1.5, 2)
    with pytest.raises(ValueError, match="sweep setting must be one of"):
        sweep(Scenario(), replications=1, colour=[1])


def test_fencing_refuses_the_old_primary_and_counts_it() -> None:
    now = [0.0]
    seen = []
    m = ProductionFailoverManager(["a", "b"], FailoverConfig(1.0, 1.0, 2.0), lambda: now[0],
                                  listeners=[lambda t, e, r: seen.append(e)])
    old_epoch = m.epoch
    m.check_write("a", old_epoch)  # the primary of the current epoch may write
    for t in (1.0, 2.0, 3.0, 5.0):
        now[0] = t
        m.heartbeat("b")
        m.tick()
    assert m.primary == "b" and m.epoch == old_epoch + 1
    with pytest.raises(StalePrimaryError, match="a wrote with epoch 1, but the primary is b"):
        m.check_write("a", old_epoch)
    m.check_write("b", m.epoch)
    assert m.metrics.counts == {"failovers": 1, "promotions": 1, "refused writes": 1}
    assert m.metrics.observed("gap_seconds") == 1
    assert seen == ["primary lost", "promoting", "promoted"]


def test_production_manager_is_consistent_under_threads() -> None:
    clock_lock, now = threading.Lock(), [0.0]

    def clock() -> float:
        with clock_lock:
            return now[0]

    m = ProductionFailoverManager(["a", "b", "c"], FailoverConfig(0.01, 0.0, 0.0), clock)

    def beats(name: str, alive_until: float) -> None:
        for i in range(2000):
            with clock_lock:
                now[0] = t = max(now[0], i * 0.001)
            if t < alive_until:
                m.heartbeat(name)
            m.tick()

    run_concurrently(lambda member: beats(*member), [("a", 0.5), ("b", 1.0), ("c", 9.0)])
    now[0] = 3.0
    m.heartbeat("c")
    m.tick()
    assert m.primary == "c"
    assert m.metrics.counts["promotions"] == m.epoch - 1 >= 1
    assert m.metrics.counts["failovers"] == m.metrics.counts["promotions"]


# ---------------------------------------------------------------- theory


def test_closed_forms() -> None:
    assert availability(99.0, 1.0) == pytest.approx(0.99)
    assert parallel_availability(0.99, 3) == pytest.approx(1 - 1e-6)
    assert mean_detection_s(10.0, 20.0) == 25.0
    assert downtime_per_year_min(0.999) == pytest.approx(525.96)
    # without gaps and zones, the first-order formula and the Markov chain are 1 − qⁿ
    for n in (1, 2, 4):
        exact = parallel_availability(availability(3600, 600), n)
        assert 1 - failover_unavailability(n, 3600, 600, 0.0) == pytest.approx(exact)
        assert markov_availability(n, 3600, 600, 0.0) == pytest.approx(exact, abs=1e-12)
    # one replica with a zone: both must be up, A · A_z
    assert markov_availability(1, 3600, 600, 0.0, 36000, 1800) == pytest.approx(
        availability(3600, 600) * availability(36000, 1800), abs=1e-12)
    # the zone caps availability however many replicas there are
    assert markov_availability(8, 3600, 600, 10.0, 36000, 1800) < availability(36000, 1800)
    assert merge_spans([(0, 2), (5, 6)], [(1, 3), (6, 7)]) == [(0, 3), (5, 7)]
    assert intersect_spans([(0, 2), (5, 9)], [(1, 6), (8, 10)]) == [(1, 2), (5, 6), (8, 9)]


@pytest.mark.parametrize("replicas", [1, 2, 3])
def test_simulation_matches_one_minus_q_to_the_n_without_gaps(replicas: int) -> None:
    scenario = Scenario(replicas=replicas, heartbeat_s=1e-3, detect_timeout_s=0.0,
                        promotion=Deterministic(0.0), horizon_s=500_000.0)
    mean, se = _mean_and_se(_availabilities(scenario))
    theory = parallel_availability(availability(3600, 600), replicas)
    assert abs(mean - theory) <= 3 * se + 1e-4, (mean, se, theory)  # 1e-4: detection 0.5 ms


@pytest.mark.parametrize("replicas", [1, 2, 3])
def test_simulation_matches_the_markov_chain_with_exponential_promotion(replicas: int) -> None:
    gap = 60.0
    scenario = Scenario(replicas=replicas, heartbeat_s=1e-3, detect_timeout_s=0.0,
                        promotion=Exponential(gap), horizon_s=500_000.0)
    mean, se = _mean_and_se(_availabilities(scenario))
    theory = markov_availability(replicas, 3600, 600, gap + 5e-4)
    assert abs(mean - theory) <= 3 * se, (mean, se, theory)


def test_simulation_with_heartbeat_detection_matches_the_first_order_formula() -> None:
    scenario = Scenario(replicas=3)  # heartbeat 1 s, timeout 4 s, promotion 10 s
    mean, se = _mean_and_se(_availabilities(scenario))
    theory = 1 - failover_unavailability(3, 3600, 600, scenario.mean_gap_s)
    second_order = (scenario.mean_gap_s / 3600) ** 2
    assert abs(mean - theory) <= 3 * se + second_order, (mean, se, theory)
    assert mean < parallel_availability(availability(3600, 600), 3) - 5 * se  # gaps cost


def test_zone_outages_cap_availability_and_spreading_lifts_the_cap() -> None:
    zone = {"zone_ttf": Exponential(36000.0), "zone_ttr": Exponential(1800.0)}
    shared = Scenario(replicas=3, **zone)
    mean, se = _mean_and_se(_availabilities(shared))
    theory = markov_availability(3, 3600, 600, shared.mean_gap_s, 36000, 1800)
    assert abs(mean - theory) <= 3 * se + 1e-3, (mean, se, theory)  # 1e-3: gap not exponential
    assert mean < availability(36000, 1800)
    spread, spread_se = _mean_and_se(_availabilities(replace(shared, zones=3)))
    assert spread > mean + 3 * (se + spread_se)


def test_request_success_tracks_availability_and_retries_ride_out_the_gap() -> None:
    base = Scenario(replicas=3, arrival_rate=0.05, horizon_s=400_000.0)
    plain, retried = simulate(base), simulate(replace(base, retry_attempts=8))
    n = len(plain.requests)
    # Poisson arrivals see time averages: success rate ≈ availability, binomial error
    se = math.sqrt(plain.availability * (1 - plain.availability) / n)
    assert abs(summary(plain)["success_rate"] - plain.availability) <= 4 * se
    assert plain.availability == retried.availability  # same outages: the retries change no state
    # retries spanning more than a gap rescue the requests that failed in failover gaps; what
    # still fails is (nearly) only what arrived while every replica was down
    all_down = sum(b - a for a, b in retried.all_down_spans()) / base.horizon_s
    failed_plain, failed_retried = (1 - summary(r)["success_rate"] for r in (plain, retried))
    assert failed_plain > all_down + 0.5 * base.mean_gap_s * plain.failovers / base.horizon_s
    assert abs(failed_retried - all_down) <= 4 * math.sqrt(all_down / n), (failed_retried,
                                                                            all_down)


def test_runs_are_seeded_and_timeline_adds_up() -> None:
    s = Scenario(replicas=2, arrival_rate=0.5, horizon_s=20_000.0)
    a, b = simulate(s), simulate(s)
    assert np.array_equal(a.up, b.up) and a.history == b.history
    line = timeline(a, 0.0, 20_000.0, 1000.0)
    assert line["up_share"].mean() == pytest.approx(a.availability)
    assert np.nansum(line["failed_rps"]) * 1000.0 == int((~a.requests.has(1)).sum())
