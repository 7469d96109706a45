"""Tests of the Hedged Requests pattern (patterns.performance.hedged_requests) and its study
(simulations.performance.hedged_requests): behaviour, error messages, theory vs simulation."""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pytest

from patterns.performance.hedged_requests import (
    AdaptiveHedger,
    HedgeConfig,
    HedgedRequests,
    RunningPercentile,
)
from simulations.distributions import Exponential, quantile, survival
from simulations.performance import hedged_requests as study


def sleeper(seconds: float, answer: str, stopped: list[str] | None = None):
    def attempt(stop: threading.Event) -> str:
        if stop.wait(seconds) and stopped is not None:
            stopped.append(answer)
        return answer
    return attempt


def test_the_study_uses_the_pattern_class():
    assert study.HedgedRequests is HedgedRequests


def test_fast_first_attempt_sends_no_backup():
    hedger = HedgedRequests(0.05)
    with ThreadPoolExecutor(2) as pool:
        assert hedger.call([sleeper(0.0, "first"), sleeper(0.0, "second")], pool) == "first"
    assert hedger.hedges == 0 and hedger.backup_wins == 0


def test_slow_first_attempt_is_hedged_and_the_loser_cancelled():
    hedger, stopped = HedgedRequests(0.02), []
    with ThreadPoolExecutor(2) as pool:
        started = time.monotonic()
        answer = hedger.call([sleeper(2.0, "first", stopped), sleeper(0.0, "second")], pool)
        elapsed = time.monotonic() - started
    assert answer == "second" and hedger.hedges == 1 and hedger.backup_wins == 1
    assert stopped == ["first"]  # told to stop, so the pool did not wait 2 s
    assert elapsed < 1.0


def test_a_failed_copy_does_not_win():
    def broken(stop):
        raise ConnectionError("down")

    with ThreadPoolExecutor(2) as pool:
        assert HedgedRequests(0.0).call([broken, sleeper(0.01, "ok")], pool) == "ok"
        with pytest.raises(ConnectionError):
            HedgedRequests(0.0).call([broken, broken], pool)


def test_bad_settings_name_the_field():
    with pytest.raises(ValueError, match=r"delay_s must be >= 0 \(got -1\)"):
        HedgedRequests(-1)
    with pytest.raises(ValueError, match="HedgeConfig.percentile must be"):
        HedgeConfig(percentile=95)
    with pytest.raises(ValueError, match="HedgeConfig.min_samples must be"):
        HedgeConfig(window=10, min_samples=20)
    with pytest.raises(ValueError, match="attempts must hold 1 or 2"):
        with ThreadPoolExecutor(1) as pool:
            HedgedRequests(0.0).call([], pool)


def test_running_percentile_agrees_with_numpy():
    rng = np.random.default_rng(5)
    values = rng.lognormal(0, 1, 3000)
    for q in (0.5, 0.95, 0.99):
        estimate = RunningPercentile(q, window=500)
        for i, v in enumerate(values):
            estimate.add(float(v))
            if i % 97 == 0:
                recent = values[max(0, i - 499): i + 1]
                assert estimate.value() == np.percentile(recent, 100 * q, method="inverted_cdf")


def test_budget_caps_hedges_and_delay_follows_the_percentile():
    hedger = AdaptiveHedger("t", HedgeConfig(min_samples=5, window=100, budget_ratio=0.1,
                                             budget_burst=1.0, initial_delay_s=0.5))
    assert hedger.hedge_delay() == 0.5
    for v in range(1, 21):
        hedger.record(v / 100, backup_won=False)
    assert hedger.hedge_delay() == 0.19  # the 95th of 0.01 ... 0.20 (inverted CDF)
    admitted = 0
    for _ in range(100):
        hedger.hedge_delay()  # each request earns budget_ratio of a hedge
        admitted += hedger.admit_hedge()
    counts = hedger.metrics.counts
    assert admitted == counts["hedges"] and admitted + counts["hedges_denied"] == 100
    assert 10 <= admitted <= 12  # 1 saved + 0.1 per request over ~102 requests


def test_adaptive_hedger_is_thread_safe():
    hedger = AdaptiveHedger("t", HedgeConfig(min_samples=5, initial_delay_s=0.001))
    rng_lock, rng = threading.Lock(), np.random.default_rng(2)

    def attempt(stop):
        with rng_lock:
            pause = float(rng.exponential(0.002))
        stop.wait(pause)
        return "ok"

    def worker():
        with ThreadPoolExecutor(2) as pool:
            for _ in range(40):
                hedger.call([attempt, attempt], pool)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert not any(t.is_alive() for t in threads)
    c = hedger.metrics.counts
    assert c["requests"] == 240 == hedger.metrics.observed("latency_seconds")
    assert c["hedges"] + c["hedges_denied"] <= 240 and c["backup_wins"] <= c["hedges"]


def test_independent_model_matches_the_closed_form():
    """No queueing: the simulated extra load, p99 / p99.9 and survival match hedged_survival.

    400,000 reads: the hedged share's standard error is sqrt(p (1 - p) / n) <= 0.0008, so 0.003
    is about four; the p99.9 rests on 400 reads above it (relative standard error ~5 % for
    this heavy tail), so 15 % is three.
    """
    service = study.BIGTABLE_LIKE
    for delay in (0.005, 0.01, 0.02):
        reads = study.independent(service, delay, 400_000, np.random.default_rng(11))
        assert reads["hedged"].mean() == pytest.approx(survival(service, delay), abs=0.003)
        for q, rel in ((0.99, 0.06), (0.999, 0.15)):
            theory = study.theory_curve(service, np.array([delay]), q)[0]
            assert np.percentile(reads["latency"], 100 * q) == pytest.approx(theory, rel=rel)
        # the survival itself, at 12 points from 2 to 30 ms: each simulated share is binomial
        # with standard error sqrt(P (1 - P) / n); four of them is the tolerance (a backup 20 %
        # faster or a delay 20 % longer in the simulation fails it)
        ordered, n = np.sort(reads["latency"]), len(reads["latency"])
        for t in np.geomspace(0.002, 0.03, 12):
            theory = study.survival_theory(service, t, delay)
            simulated = 1.0 - np.searchsorted(ordered, t, side="right") / n
            assert abs(simulated - theory) <= 4 * math.sqrt(theory * (1 - theory) / n)


def test_the_theory_check_fails_when_the_delay_is_off_by_20_percent():
    service = study.BIGTABLE_LIKE
    reads = study.independent(service, 0.012, 400_000, np.random.default_rng(11))
    assert reads["hedged"].mean() != pytest.approx(survival(service, 0.01), abs=0.003)


def test_bigtable_in_spirit():
    """Fan-out of 1,000 reads, hedged at 10 ms: p99.9 falls from ~1.8 s to well under 0.1 s."""
    service, tail = study.BIGTABLE_LIKE, 0.999
    unhedged = study.theory_curve(service, np.array([math.inf]), tail, 1000)[0]
    hedged = study.theory_curve(service, np.array([0.01]), tail, 1000)[0]
    assert 1.6 < unhedged < 2.0 and hedged < 0.1
    assert survival(service, 0.01) == pytest.approx(0.02, rel=0.01)
    # and the simulated fan-out p99 agrees with the closed form (2,000 requests, 20 above
    # the p99: relative error about 1/sqrt(20) in the tail mass, ~25 % on this shape)
    sim = study.fanout(service, 0.01, 1000, 2000, np.random.default_rng(4))
    p99 = study.theory_curve(service, np.array([0.01]), 0.99, 1000)[0]
    assert np.percentile(sim, 99) == pytest.approx(p99, rel=0.25)


def test_cancellation_saves_work():
    reads = study.independent(Exponential(0.01), 0.0, 100_000, np.random.default_rng(1))
    # replicate at once: without cancelling each request costs 2 E[T]; with it 2 E[min] = E[T]
    assert reads["work_keep"].mean() == pytest.approx(0.02, rel=0.02)
    assert reads["work_cancel"].mean() == pytest.approx(0.01, rel=0.02)


def test_queueing_simulation_without_hedging_is_mm1_like_and_hedging_hurts_at_high_load():
    base = study.Scenario(requests=8000, cancel=False, service=Exponential(0.01))
    # no hedging: each replica is M/M/1 at load 0.3, mean response 0.01 / 0.7 = 14.3 ms;
    # 8,000 requests (7,200 kept), correlated by the queue: 10 % tolerance
    run = study.simulate(replace(base, load=0.3))
    assert np.nanmean(run.latency[800:]) == pytest.approx(0.01 / 0.7, rel=0.1)
    assert study.summary(run)["utilisation"] == pytest.approx(0.3, abs=0.03)
    low, high = 0.15, 0.6
    for load, helps in ((low, True), (high, False)):
        plain = study.summary(study.simulate(replace(base, load=load)))
        both = study.summary(study.simulate(replace(base, load=load, delay_s=0.0)))
        assert (both["latency_p99_s"] < plain["latency_p99_s"]) is helps


def test_scenario_rejects_bad_values():
    with pytest.raises(ValueError, match="load must be"):
        study.Scenario(load=1.2)
    with pytest.raises(ValueError, match="replicas must be"):
        study.Scenario(replicas=1)


def test_quantile_delay_gives_the_expected_extra_load():
    d = quantile(study.BIGTABLE_LIKE, 0.95)
    reads = study.independent(study.BIGTABLE_LIKE, d, 100_000, np.random.default_rng(8))
    assert reads["hedged"].mean() == pytest.approx(0.05, abs=0.004)
