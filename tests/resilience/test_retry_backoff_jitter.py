"""Retries, backoff and jitter: the pattern classes, their errors, the closed forms against the
simulation, and agreement with tenacity."""

from __future__ import annotations

import math
import random
import re
import threading
from dataclasses import replace

import numpy as np
import pytest
import tenacity

from patterns.resilience.retry_backoff_jitter import (
    Backoff,
    ProductionRetrier,
    Retrier,
    RetryBudget,
    RetryConfig,
    tenacity_wait,
)
from simulations.metrics import confidence_interval
from simulations.records import Outcome
from simulations.resilience.retry_backoff_jitter import (
    POLICIES,
    Scenario,
    collapse_persists,
    expected_attempts,
    herd,
    layered_calls,
    layered_expected_calls,
    layered_worst_case,
    policy,
    simulate,
    success_probability,
    summary,
    sustained_amplification,
)


class Flaky:
    """Fails the first ``failures`` calls with ConnectionError, then returns "ok"."""

    def __init__(self, failures: int, error: type[Exception] = ConnectionError) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error("down")
        return "ok"


# ---------------------------------------------------------------- Backoff


@pytest.mark.parametrize(("jitter", "expected"), [
    ("none", [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]),
    ("full", [0.025, 0.05, 0.1, 0.2, 0.25, 0.25]),
    ("equal", [0.0625, 0.125, 0.25, 0.5, 0.625, 0.625]),
])
def test_exponential_modes_follow_their_formula(jitter: str, expected: list[float]) -> None:
    waits = Backoff(0.1, 1.0, jitter).waits(6, rand=lambda: 0.25)
    assert waits == pytest.approx(expected)


def test_decorrelated_grows_from_the_previous_wait_and_is_capped() -> None:
    # u = 0.5: w1 = 0.1 + 0.5 (0.3 - 0.1) = 0.2, w2 = 0.1 + 0.5 (0.6 - 0.1) = 0.35, ...
    waits = Backoff(0.1, 1.0, "decorrelated").waits(5, rand=lambda: 0.5)
    assert waits == pytest.approx([0.2, 0.35, 0.575, 0.9125, 1.0])
    u = iter(np.random.default_rng(3).random(200))
    many = Backoff(0.1, 1.0, "decorrelated").waits(200, rand=lambda: next(u))
    assert min(many) >= 0.1 and max(many) <= 1.0


def test_ceiling_does_not_overflow_for_huge_retry_numbers() -> None:
    assert Backoff(0.1, 30.0, "none").delay(5000, 0.0, random.random) == 30.0
    assert Backoff(0.0, 0.0, "none").waits(3, random.random) == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"jitter": "pink"}, "jitter must be one of none, full, equal, decorrelated (got 'pink')"),
    ({"base_s": -1}, "base_s must be >= 0 (got -1)"),
    ({"base_s": 2.0, "cap_s": 1.0}, "cap_s must be >= 2 (got 1.0)"),
    ({"multiplier": 0.5}, "multiplier must be >= 1 (got 0.5)"),
])
def test_bad_backoff_settings_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Backoff(**kwargs)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_attempts": 0}, "RetryConfig.max_attempts must be an integer >= 1 (got 0)"),
    ({"jitter": "random"}, "RetryConfig.jitter must be one of"),
    ({"deadline_s": 0}, "RetryConfig.deadline_s must be > 0 (got 0)"),
    ({"budget_ratio": 1.5}, "RetryConfig.budget_ratio must be in [0, 1] (got 1.5)"),
])
def test_bad_config_is_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        RetryConfig(**kwargs)


def test_bad_scenario_and_policy_names() -> None:
    with pytest.raises(ValueError, match=re.escape("timeout_s must be > 0 (got -1)")):
        Scenario(timeout_s=-1)
    with pytest.raises(ValueError, match="policy must be one of no retries"):
        policy("retry forever")
    with pytest.raises(ValueError, match=re.escape("max_attempts must be an integer >= 1")):
        Retrier(0)


# ---------------------------------------------------------------- Retrier and budget


def test_retrier_retries_until_success_and_sleeps_the_backoff() -> None:
    slept: list[float] = []
    backoff = Backoff(0.1, 1.0, "none")
    retrier = Retrier(4, backoff, sleep=slept.append)
    flaky = Flaky(failures=2)
    assert retrier.call(flaky) == "ok"
    assert flaky.calls == 3
    assert slept == pytest.approx([0.1, 0.2])


def test_retrier_gives_up_after_max_attempts_and_does_not_retry_other_errors() -> None:
    retrier = Retrier(3, retry_on=(ConnectionError,), sleep=lambda _s: None)
    flaky = Flaky(failures=10)
    with pytest.raises(ConnectionError):
        retrier.call(flaky)
    assert flaky.calls == 3
    bad_input = Flaky(failures=10, error=KeyError)
    with pytest.raises(KeyError):
        retrier.call(bad_input)
    assert bad_input.calls == 1


def test_budget_bounds_retries_by_reserve_plus_ratio_times_requests() -> None:
    budget = RetryBudget(ratio=0.1, reserve=5)
    retrier = Retrier(4, budget=budget, sleep=lambda _s: None)
    down = Flaky(failures=10**9)
    requests = 300
    for _ in range(requests):
        with pytest.raises(ConnectionError):
            retrier.call(down)
    retries = down.calls - requests
    assert retries <= 5 + 0.1 * requests
    assert retries >= 0.1 * requests - 1  # the budget is spent, not hoarded


def test_production_retrier_counts_logs_and_stops_at_the_deadline(caplog) -> None:
    now = [0.0]
    sleep = lambda s: now.__setitem__(0, now[0] + s)  # noqa: E731 - a hand-moved clock
    config = RetryConfig(max_attempts=10, base_s=1.0, cap_s=100.0, jitter="none",
                         deadline_s=10.0, budget_ratio=None)
    retrier = ProductionRetrier("db", config, clock=lambda: now[0], sleep=sleep)
    with caplog.at_level("INFO", logger="patterns.resilience.retry_backoff_jitter"), \
            pytest.raises(ConnectionError):
        retrier.call(Flaky(failures=100))
    # waits 1, 2, 4 end at t = 7; the next (8 s) would end at 15 > 10: stop after 4 attempts
    assert retrier.metrics.counts["attempts"] == 4
    assert retrier.metrics.counts["deadline_stops"] == 1
    assert retrier.metrics.counts["gave_up"] == 1
    assert retrier.attempts_per_call == {4: 1}
    assert "giving up after 4 attempt(s)" in caplog.text
    assert retrier.metrics.observed("wait_seconds") == 3


def test_production_retrier_is_consistent_under_threads() -> None:
    config = RetryConfig(max_attempts=4, base_s=0.0, cap_s=0.0, jitter="none",
                         budget_ratio=0.2, budget_reserve=3)
    retrier = ProductionRetrier("svc", config, sleep=lambda _s: None)
    lock, calls = threading.Lock(), [0]

    def sometimes() -> str:
        with lock:
            calls[0] += 1
            n = calls[0]
        if n % 2:
            raise ConnectionError("odd call fails")
        return "ok"

    def worker() -> None:
        for _ in range(200):
            try:
                retrier.call(sometimes)
            except ConnectionError:
                pass

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    c = retrier.metrics.counts
    assert c["calls"] == 1600 == c["successes"] + c["gave_up"]
    assert c["attempts"] == calls[0] == sum(k * v for k, v in retrier.attempts_per_call.items())
    assert c["attempts"] - c["calls"] == c["retries"] <= 3 + 0.2 * 1600


# ---------------------------------------------------------------- tenacity agrees


@pytest.mark.parametrize("jitter", ["none", "full", "equal"])
@pytest.mark.parametrize("seed", [1, 7, 2024])
def test_tenacity_waits_match_ours_for_the_same_seed(jitter: str, seed: int) -> None:
    backoff = Backoff(0.05, 2.0, jitter)
    theirs: list[float] = []
    random.seed(seed)
    retrying = tenacity.Retrying(wait=tenacity_wait(backoff), stop=tenacity.stop_after_attempt(9),
                                 sleep=theirs.append, reraise=True)
    with pytest.raises(ConnectionError):
        retrying(Flaky(failures=100))
    random.seed(seed)
    ours = backoff.waits(8, random.random)
    assert theirs == pytest.approx(ours, rel=1e-12, abs=1e-15)


def test_tenacity_has_no_decorrelated_jitter() -> None:
    with pytest.raises(ValueError, match="decorrelated"):
        tenacity_wait(Backoff(jitter="decorrelated"))


# ---------------------------------------------------------------- closed forms vs simulation


def test_expected_attempts_edge_cases() -> None:
    assert expected_attempts(0.0, 5) == 1.0
    assert expected_attempts(1.0, 5) == 5.0
    assert expected_attempts(0.5, 3) == pytest.approx(1.75)
    assert success_probability(0.5, 3) == pytest.approx(0.875)
    assert layered_worst_case(3, 3) == 64
    assert layered_expected_calls(1.0, 4, 3) == 64.0


@pytest.mark.parametrize(("p", "n"), [(0.3, 3), (0.6, 5)])
def test_expected_attempts_matches_the_simulation(p: float, n: int) -> None:
    # Light load (ρ = 0.2) and no trigger, so attempts fail only by the injected, independent p.
    # Requests are independent, so the per-request attempt counts give a t-interval; the
    # formula must lie within 4 standard errors of the sample mean (≈ 1.4 half-widths).
    run = simulate(Scenario(arrival_rate=10.0, error_rate=p, max_attempts=n, trigger=None,
                            duration_s=200.0, seed=5))
    done = ~np.isnan(run.requests.end)
    counts = run.attempts_per_request[done]
    mean, half = confidence_interval(counts)
    standard_error = half / 1.96
    assert abs(mean - expected_attempts(p, n)) < 4 * standard_error
    ok = float(np.mean(run.requests.outcome[done] == 1))
    binomial_se = math.sqrt(ok * (1 - ok) / done.sum())
    assert abs(ok - success_probability(p, n)) < 4 * binomial_se


def test_layered_worst_case_and_expectation_match_nested_retriers() -> None:
    rng = np.random.default_rng(11)
    assert set(layered_calls(3, 4, 1.0, 50, rng)) == {64.0}
    counts = layered_calls(3, 3, 0.6, 4000, rng)
    mean, half = confidence_interval(counts)
    assert abs(mean - layered_expected_calls(0.6, 3, 3)) < 4 * half / 1.96
    one_layer = layered_calls(3, 4, 1.0, 50, rng, retry_at=[3])
    assert set(one_layer) == {4.0}


def test_metastable_collapse_matches_the_fluid_threshold() -> None:
    base = Scenario()  # ρ = 0.7, slow-down trigger in [10, 15) s
    assert not collapse_persists(base.arrival_rate, base.capacity_rate, 1)
    assert collapse_persists(base.arrival_rate, base.capacity_rate, 4)
    assert not collapse_persists(base.arrival_rate, base.capacity_rate, 4, budget_ratio=0.1)
    after = {name: summary(simulate(policy(name)))["goodput_fraction"] for name in POLICIES}
    assert after["no retries"] > 0.9
    assert after["full jitter + 10 % budget"] > 0.9
    for name in ("immediate retries", "backoff, no jitter", "backoff, full jitter"):
        assert after[name] < 0.05, name  # the trigger is long gone, goodput is not back
    healthy = simulate(replace(policy("backoff, full jitter"), trigger=None))
    assert summary(healthy)["goodput_fraction"] > 0.9  # the same load is fine without trigger
    # Below 1/n the failed state cannot sustain itself: λ·n = 10·4 < μ = 50, it recovers.
    low = replace(policy("backoff, full jitter"), arrival_rate=10.0)
    assert not collapse_persists(low.arrival_rate, low.capacity_rate, 4)
    assert summary(simulate(low))["goodput_fraction"] > 0.9


def test_goodput_fraction_is_the_share_of_arrivals_answered_in_time() -> None:
    # ρ = 0.15, no trigger: every request is answered in time. Seed 4 happens to bring 376
    # arrivals into the 45 s window (10-55 s) where 337.5 are expected, so goodput over the
    # nominal rate would read 1.11; the share of the window's own arrivals is 1.
    light = replace(policy("backoff, full jitter"), arrival_rate=7.5, trigger=None, seed=4)
    run = simulate(light)
    r = run.requests
    window = (r.arrival >= 10) & (r.arrival < 55)
    good = window & r.has(Outcome.OK) & (r.latency <= light.slo_s)
    assert window.sum() > light.arrival_rate * 45
    assert summary(run)["goodput_fraction"] == pytest.approx(good.sum() / window.sum())


def test_collapsed_amplification_is_the_sustained_amplification() -> None:
    collapsed = simulate(policy("backoff, full jitter"))
    assert summary(collapsed)["amplification"] == pytest.approx(sustained_amplification(4),
                                                                rel=0.03)
    budget = replace(policy("full jitter + 10 % budget"), arrival_rate=60.0, trigger=None)
    run = simulate(budget)
    retries = len(run.attempts) - len(run.requests)
    assert retries <= budget.budget_reserve + 0.1 * len(run.requests)


def test_simulation_is_deterministic_for_a_seed() -> None:
    a, b = simulate(policy("backoff, full jitter")), simulate(policy("backoff, full jitter"))
    assert np.array_equal(a.requests.end, b.requests.end, equal_nan=True)
    assert np.array_equal(a.attempts_per_request, b.attempts_per_request)


def test_jitter_breaks_up_the_thundering_herd() -> None:
    results = {mode: herd(Backoff(0.01, 10.0, mode), np.random.default_rng(4))
               for mode in ("none", "full", "equal", "decorrelated")}
    for mode in ("full", "equal", "decorrelated"):
        assert results[mode]["completion_s"] < results["none"]["completion_s"] / 5, mode
        assert results[mode]["calls"] < results["none"]["calls"], mode
    assert all(r["gave_up"] == 0 for r in results.values())
    assert herd(Backoff(0.01, 10.0, "full"), np.random.default_rng(4)) == results["full"]
