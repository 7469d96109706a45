"""Tests of the concurrency-limits pattern (patterns.performance.concurrency_limits) and its
study (simulations.performance.concurrency_limits): behaviour, error messages, agreement with
a semaphore and with Netflix's own AIMD test cases, theory vs simulation."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from patterns.performance.concurrency_limits import (
    AIMDLimit,
    FixedLimit,
    GradientLimit,
    Limiter,
    LimiterConfig,
    LimitExceeded,
    ProductionLimiter,
    WindowedLimit,
)
from simulations.performance import concurrency_limits as study
from simulations.theory import littles_law


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_fixed_limit_refuses_past_the_limit_and_frees_on_release():
    limiter = Limiter(FixedLimit(2))
    a, b = limiter.try_acquire(), limiter.try_acquire()
    assert a and b and limiter.try_acquire() is None
    a.release()
    assert limiter.inflight == 1 and limiter.try_acquire() is not None
    with pytest.raises(RuntimeError, match="already released"):
        a.release()


def test_fixed_limiter_agrees_with_a_bounded_semaphore():
    # The standard library's semaphore is the well-kept fixed limit: non-blocking acquires and
    # releases in the same random order must be admitted or refused identically.
    rng = np.random.default_rng(3)
    limiter, semaphore = Limiter(FixedLimit(5)), threading.BoundedSemaphore(5)
    tokens, held = [], 0
    for _ in range(2000):
        if tokens and rng.random() < 0.45:
            tokens.pop(int(rng.integers(len(tokens)))).release()
            semaphore.release()
            held -= 1
        else:
            token, got = limiter.try_acquire(), semaphore.acquire(blocking=False)
            assert (token is not None) == got
            if got:
                tokens.append(token)
                held += 1
    assert limiter.inflight == held


def test_aimd_agrees_with_netflix_aimd_limit_test_cases():
    # AIMDLimitTest.java (Netflix/concurrency-limits, commit 78a74b9): 20 -> 21 on a 1 ms
    # success with 10 in flight; 30 -> 27 on a drop; 21 stays 21 at a maximum of 21.
    up = AIMDLimit(20)
    up.update(0.001, 10, False)
    down = AIMDLimit(30)
    down.update(0.0, 0, True)
    capped = AIMDLimit(21, max_limit=21)
    capped.update(0.001, 10, False)
    assert (up.limit, down.limit, capped.limit) == (21, 27, 21)


def test_aimd_cuts_on_a_slow_call_and_does_not_grow_when_underused():
    limit = AIMDLimit(20, timeout_s=0.1)
    limit.update(0.2, 15, False)
    assert limit.limit == 18
    limit.update(0.01, 5, False)  # 5 in flight is under half of 18: no evidence to grow
    assert limit.limit == 18


def test_gradient_grows_when_fast_and_shrinks_when_queueing():
    limit = GradientLimit(20)
    for _ in range(20):
        limit.update(0.05, 20, False)
    grown = limit.limit
    assert grown > 20
    for _ in range(20):
        limit.update(0.5, int(grown), False)  # ten times the baseline: gradient 0.5
    assert limit.limit < grown


def test_windowed_limit_passes_one_mean_per_window():
    clock, seen = FakeClock(), []

    class Spy:
        limit = 7.0

        def update(self, rtt_s, inflight, dropped):
            seen.append((rtt_s, inflight, dropped))

    windowed = WindowedLimit(Spy(), window_s=1.0, min_samples=3, clock=clock)
    for i, rtt in enumerate([0.1, 0.2, 0.3, 0.6]):
        clock.now = 0.4 * i
        windowed.update(rtt, i + 1, i == 1)
    assert seen == [(pytest.approx(0.3), 4, True)] and windowed.limit == 7.0


@pytest.mark.parametrize("make, message", [
    (lambda: FixedLimit(0), r"limit must be .*1.*\(got 0\)"),
    (lambda: AIMDLimit(20, backoff_ratio=1.0), r"backoff_ratio must be in \[0.5, 1\) \(got 1"),
    (lambda: AIMDLimit(5, min_limit=10), r"initial_limit must be .*\(got 5\)"),
    (lambda: GradientLimit(20, tolerance=0.9), r"tolerance must be .*\(got 0.9\)"),
    (lambda: GradientLimit(20, smoothing=0.0), r"smoothing must be in \(0, 1\] \(got 0"),
    (lambda: LimiterConfig(timeout_s=-1), r"LimiterConfig.timeout_s must be > 0 \(got -1\)"),
    (lambda: study.Scenario(policy="vegas"), r"policy must be one of .*\(got 'vegas'\)"),
    (lambda: study.Scenario(limit=0), r"limit must be .*\(got 0\)"),
])
def test_bad_input_names_the_parameter_and_range(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_production_limiter_sheds_marks_drops_and_counts():
    clock = FakeClock()
    limiter = ProductionLimiter(AIMDLimit(2, min_limit=1, max_limit=2),
                                LimiterConfig(name="db", timeout_s=0.5), clock=clock)
    with limiter.acquire():
        with limiter.acquire(), pytest.raises(LimitExceeded,
                                              match="db: 2 calls in flight, limit 2"):
            with limiter.acquire():
                pass
        clock.now = 1.0  # the outer call overruns the timeout: a drop
    assert limiter.limit.limit == 1
    assert limiter.call(lambda: "ok") == "ok"
    with pytest.raises(KeyError), limiter.acquire():
        raise KeyError("boom")
    counts = limiter.metrics.counts
    assert (counts["admitted"], counts["rejected"], counts["dropped"]) == (4, 1, 2)
    assert limiter.metrics.observed("rtt_seconds") == 4 and limiter.inflight == 0


def test_production_limiter_never_exceeds_its_limit_across_threads():
    limiter = ProductionLimiter(FixedLimit(3))
    peak, lock, gate = [0], threading.Lock(), threading.Event()

    def work():
        for _ in range(200):
            token = limiter.try_acquire()
            if token is None:
                continue
            with lock:
                peak[0] = max(peak[0], limiter.inflight)
            gate.wait(0.0001)
            token.release()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads)
    assert peak[0] <= 3 and limiter.inflight == 0


# Theory vs simulation. A closed run of 20 s has 360 (N = 1) to 4,000 (N >= 20) calls; with 3
# replications the 95 % t-interval of a mean (t = 4.30 on 2 degrees of freedom) is 1-5 % wide at
# N >= 10 and up to 15 % at N = 1 (few calls of exponential length). A check allows that
# half-width plus 1 % for the warm-up the 2 s cut does not remove; a simulation off by 20 % (a
# wrong service time) misses by far more than that at N >= 10.
TABLE = study.knee_sweep([1, 5, 10, 20, 40], replications=3, duration_s=20.0)


def test_knee_sweep_respects_the_operational_bounds():
    # X(N) <= min(N/D, 1/D_max) and R(N) >= max(D, N*D_max) hold for every run's averages.
    for row in TABLE:
        assert row["throughput"] <= row["x_bound"] * 1.01 + row["throughput_ci"]
        assert row["mean_latency"] >= row["r_bound"] * 0.99 - row["mean_latency_ci"]


def test_knee_sweep_matches_exact_mean_value_analysis():
    # The simulated model is product form, so MVA is exact: inside the interval (as above).
    for row in TABLE:
        assert abs(row["throughput"] - row["x_exact"]) <= (
            0.01 * row["x_exact"] + row["throughput_ci"])
        assert abs(row["mean_latency"] - row["r_exact"]) <= (
            0.01 * row["r_exact"] + row["mean_latency_ci"])


def test_the_theory_check_catches_a_wrong_service_time():
    # The same check against the exact values of a service 20 % slower must fail past the knee.
    slower = study.exact_closed(40, 0.006, 0.045)
    row = TABLE[-1]
    assert abs(row["throughput"] - slower[0]) > 0.01 * slower[0] + row["throughput_ci"]


def test_flat_past_the_knee_and_latency_grows_linearly():
    knee = study.knee(study.Scenario())
    past = [row for row in TABLE if row["limit"] >= 2 * knee]
    assert all(row["throughput"] == pytest.approx(200.0, rel=0.03) for row in past)
    assert past[-1]["mean_latency"] == pytest.approx(past[-1]["limit"] * 0.005, rel=0.05)


def test_littles_law_holds_in_the_open_run():
    # Little's law is an identity on a window's records; edge effects of a 40 s window at
    # ~150 admitted req/s (calls straddling its ends) stay under 2 %.
    run = study.simulate(study.Scenario(policy="aimd", limit=4, duration_s=45.0))
    s = study.summary(run, 5.0, 45.0)
    admitted = s["throughput"]  # every admitted call ends OK here
    assert s["in_flight"] == pytest.approx(
        littles_law(arrival_rate=admitted, mean_time=s["mean_latency"]), rel=0.02)


def test_gradient_settles_at_tolerance_times_the_knee_plus_headroom():
    # Between 10 s and 30 s the limit averages ~20 one-second windows; across seeds it varies
    # by about 5 %, so allow 12 %.
    for seed in (1, 2):
        run = study.simulate(study.Scenario(policy="gradient", limit=4, seed=seed,
                                            duration_s=30.0))
        mean = study.summary(run, 10.0, 30.0)["mean_limit"]
        assert mean == pytest.approx(study.gradient_equilibrium(run.scenario), rel=0.12)


def test_adaptive_limits_come_down_when_the_service_slows():
    for policy in ("aimd", "gradient"):
        run = study.simulate(study.Scenario(policy=policy, limit=4, slowdown_at_s=30.0))
        before, after = study.summary(run, 10, 30), study.summary(run, 40, 60)
        assert after["mean_limit"] < 0.85 * before["mean_limit"]


def test_runs_are_deterministic():
    scenario = study.Scenario(policy="gradient", limit=4, duration_s=10.0)
    a, b = study.simulate(scenario), study.simulate(scenario)
    assert np.array_equal(a.table.end, b.table.end, equal_nan=True)
