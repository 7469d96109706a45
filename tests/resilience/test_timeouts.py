"""The timeouts lesson's model: deadlines, percentile timeouts, asyncio agreement, the theory."""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import replace
from statistics import NormalDist

import numpy as np
import own_loop
import pytest

from patterns.resilience.circuit_breaker import BreakerConfig
from patterns.resilience.timeouts import (
    Deadline,
    DeadlineExceeded,
    PercentileTimeout,
    ProductionTimeout,
    TimeoutConfig,
)
from simulations.distributions import (
    Bimodal,
    Deterministic,
    Exponential,
    LogNormal,
    Pareto,
    quantile,
    survival,
)
from simulations.faults import FaultWindow
from simulations.records import Outcome
from simulations.resilience.timeouts import (
    Scenario,
    expected_attempts,
    false_timeout_probability,
    fanout_timeout_probability,
    hedge_rate,
    hedged_survival,
    per_call_timeout_for_fanout,
    simulate,
    simulate_fast,
    summary,
    sweep,
    timeout_for_false_rate,
)

# Every theory check below allows K standard errors of a proportion estimated from n
# independent trials, sqrt(p (1 - p) / n) with p the theoretical value: a correct model
# fails one check with probability about 6e-5 (two-sided normal tail beyond 4 sigma), and the
# seeds are fixed, so the checks are deterministic.
K = 4.0


def within_sampling_error(measured: float, expected: float, n: int) -> bool:
    return abs(measured - expected) <= K * math.sqrt(expected * (1 - expected) / n) + 1e-12


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------- the pattern

def test_deadline_gives_each_call_what_is_left() -> None:
    clock = FakeClock()
    deadline = Deadline(1.0, clock)
    assert deadline.timeout_for(0.3) == 0.3
    clock.now = 0.8
    assert deadline.timeout_for(0.3) == pytest.approx(0.2)
    assert deadline.child(0.5).expires_at == pytest.approx(1.0)  # never later than the parent
    assert deadline.child(0.1).expires_at == pytest.approx(0.9)
    clock.now = 1.0
    assert deadline.expired
    with pytest.raises(DeadlineExceeded):
        deadline.timeout_for(0.3)


def test_percentile_timeout_follows_the_measured_tail() -> None:
    rng = np.random.default_rng(1)
    n, p = 20_000, 0.99
    timeout = PercentileTimeout(false_timeout_rate=1 - p, window=n, min_samples=100,
                                initial_s=2.0)
    assert timeout.current() == 2.0  # too few samples yet
    service = LogNormal(0.02, 4.0)
    # The sample p-quantile of a log-normal has, in log space, a standard error of about
    # sigma * sqrt(p (1 - p) / n) / phi(z_p) (asymptotic normality of sample quantiles);
    # allow K of them as a relative error (about 14 % here).
    phi = NormalDist().pdf(NormalDist().inv_cdf(p))
    tolerance = K * service.sigma * math.sqrt(p * (1 - p) / n) / phi
    for latency in service.sample(rng, n):
        timeout.observe(float(latency))
    assert abs(math.log(timeout.current() / quantile(service, p))) <= tolerance
    for latency in (3 * service.sample(rng, n)):  # the dependency gets 3x slower
        timeout.observe(float(latency))
    assert abs(math.log(timeout.current() / (3 * quantile(service, p)))) <= tolerance


@pytest.mark.parametrize(("field", "value", "allowed"), [
    ("false_timeout_rate", 0.0, "in (0, 0.5]"),
    ("padding", 0.5, ">= 1"),
    ("max_s", 0.0005, ">= 0.001"),
    ("window", 0, ">= 1"),
])
def test_config_errors_name_field_value_and_allowed_range(field, value, allowed) -> None:
    with pytest.raises(ValueError) as error:
        TimeoutConfig(**{field: value})
    assert f"TimeoutConfig.{field}" in str(error.value)
    assert repr(value) in str(error.value) and allowed in str(error.value)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"timeout_s": -1.0}, "timeout_s must be > 0 (got -1.0)"),
    ({"retries": -1}, "retries must be an integer >= 0 (got -1)"),
    ({"fanout": 0}, "fanout must be an integer >= 1 (got 0)"),
    ({"servers": 0}, "servers must be an integer >= 1 (got 0)"),
    ({"hedge_delay_s": 0.1, "fanout": 3}, "hedge_delay_s needs fanout = 1 (got fanout=3)"),
])
def test_scenario_errors_are_clear(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Scenario(**kwargs)


def test_bad_inputs_to_theory_and_classes() -> None:
    with pytest.raises(ValueError, match=r"budget_s must be >= 0 \(got -1\)"):
        Deadline(-1)
    with pytest.raises(ValueError, match=r"false_timeout_rate must be in \(0, 1\) \(got 1.5\)"):
        timeout_for_false_rate(Exponential(1.0), 1.5)
    with pytest.raises(ValueError, match="service must be Exponential"):
        survival(object(), 1.0)


def test_production_timeout_cuts_a_hung_call_counts_and_logs(caplog) -> None:
    guard = ProductionTimeout("inventory", TimeoutConfig(initial_s=0.05, min_samples=5,
                                                         window=10))

    async def answer(delay: float) -> str:
        await asyncio.sleep(delay)
        return "42 in stock"

    async def scenario() -> list[str]:
        seen = []
        for delay in (0.001, 0.001, 10.0):  # the third call hangs
            try:
                seen.append(await guard.call(answer, delay))
            except TimeoutError:
                seen.append("timeout")
        expired = Deadline(0.0)
        with pytest.raises(DeadlineExceeded):
            await guard.call(answer, 0.001, deadline=expired)
        return seen

    with caplog.at_level(logging.WARNING, logger="patterns.resilience.timeouts"):
        assert own_loop.run(scenario()) == ["42 in stock", "42 in stock", "timeout"]
    c = guard.metrics.counts
    assert c["calls"] == 4 and c["successes"] == 2 and c["timeouts"] == 1
    assert c["deadline_exceeded"] == 1 and guard.metrics.observed("call_seconds") == 3
    assert any("timed out after 0.050 s" in r.message for r in caplog.records)


# ---------------------------------------------------------------- agreement with asyncio

def test_deadline_agrees_with_asyncio_timeout_and_wait_for() -> None:
    """A request makes sequential calls under one deadline. Our Deadline predicts, from the
    call latencies alone, which call is cut off; asyncio.timeout (one scope for the whole
    request) and asyncio.wait_for (a per-call timeout from Deadline.remaining) must agree.
    Latencies leave >= 40 ms between any running total and the deadline, so scheduling
    jitter on a busy machine cannot flip an outcome."""
    budget = 0.25
    chains = [(0.05, 0.05, 0.05), (0.1, 0.2, 0.05), (0.3,), (0.05, 0.06, 0.02, 0.2)]

    def predicted(chain) -> int:
        clock = FakeClock()
        deadline = Deadline(budget, clock)
        for i, latency in enumerate(chain):
            if latency >= deadline.timeout_for():
                return i
            clock.now += latency
        return len(chain)

    async def with_timeout_scope(chain) -> int:
        done = 0
        try:
            async with asyncio.timeout(budget):
                for latency in chain:
                    await asyncio.sleep(latency)
                    done += 1
        except TimeoutError:
            pass
        return done

    async def with_wait_for(chain) -> int:
        deadline = Deadline(budget)  # time.monotonic, the clock asyncio's loop also uses
        for i, latency in enumerate(chain):
            try:
                await asyncio.wait_for(asyncio.sleep(latency), deadline.timeout_for())
            except TimeoutError:
                return i
        return len(chain)

    for chain in chains:
        expected = predicted(chain)
        assert own_loop.run(with_timeout_scope(chain)) == expected, chain
        assert own_loop.run(with_wait_for(chain)) == expected, chain


# ---------------------------------------------------------------- theory

@pytest.mark.parametrize("service", [Exponential(0.02), Deterministic(0.02), LogNormal(0.02, 4),
                                     Bimodal(0.02, 2.0, 0.05), Pareto(0.02, shape=2.5)])
def test_quantile_inverts_survival(service) -> None:
    for p in (0.5, 0.9, 0.99, 0.999):
        t = quantile(service, p)
        assert survival(service, t) <= 1 - p + 1e-9
        assert survival(service, t * (1 - 1e-6)) >= 1 - p - 1e-9 or isinstance(
            service, Deterministic | Bimodal)


def test_closed_forms_on_known_values() -> None:
    service = Exponential(1.0)
    assert false_timeout_probability(service, math.log(100)) == pytest.approx(0.01)
    assert timeout_for_false_rate(service, 0.001) == pytest.approx(math.log(1000))
    assert fanout_timeout_probability(service, math.log(100), 100) == pytest.approx(
        1 - 0.99**100)  # 63 %
    t = per_call_timeout_for_fanout(service, 0.01, 100)
    assert fanout_timeout_probability(service, t, 100) == pytest.approx(0.01)
    assert hedge_rate(service, math.log(20)) == pytest.approx(0.05)
    assert hedged_survival(service, 3.0, 1.0) == pytest.approx(math.exp(-3) * math.exp(-2))
    assert expected_attempts(0.5, 2) == pytest.approx(1.75)


def test_false_timeout_rate_matches_one_minus_f() -> None:
    base = Scenario(servers=None, duration_s=100)  # no queueing: latency = service time
    service = base.service
    for p in (0.5, 0.9, 0.99):
        timeout = quantile(service, p)
        run = simulate(replace(base, timeout_s=timeout))
        n = len(run.attempts)
        measured = summary(run)["attempt_timeout_rate"]
        assert within_sampling_error(measured, false_timeout_probability(service, timeout), n)


def test_fanout_timeout_rate_matches_one_minus_f_to_the_n() -> None:
    service = LogNormal(0.02, 4.0)
    timeout = quantile(service, 0.99)
    for fanout in (1, 10, 50):
        run = simulate(Scenario(servers=None, fanout=fanout, arrival_rate=20, duration_s=100,
                                timeout_s=timeout, seed=2))
        n = len(run.requests)
        failed = 1 - summary(run)["success_rate"]
        assert within_sampling_error(failed, fanout_timeout_probability(service, timeout,
                                                                        fanout), n)


def test_hedged_tail_and_hedge_rate_match_theory() -> None:
    base = Scenario(servers=None, timeout_s=None, duration_s=200, seed=3)
    d = quantile(base.service, 0.95)
    run = simulate(replace(base, hedge_delay_s=d))
    n = len(run.requests)
    latency = run.requests.latency
    for t in (0.5 * d, 2 * d, 4 * d):
        assert within_sampling_error(float((latency > t).mean()),
                                     hedged_survival(base.service, t, d), n)
    hedges = summary(run)["load_factor"] - 1
    assert within_sampling_error(hedges, hedge_rate(base.service, d), n)


def test_retries_load_factor_matches_expected_attempts() -> None:
    base = Scenario(servers=None, duration_s=100, seed=4)
    timeout, retries = quantile(base.service, 0.7), 2
    run = simulate(replace(base, timeout_s=timeout, retries=retries))
    p = false_timeout_probability(base.service, timeout)
    probs = [p ** (j - 1) * (1 - p) for j in range(1, retries + 1)] + [p**retries]
    mean = sum(j * q for j, q in enumerate(probs, start=1))
    sd = math.sqrt(sum(j * j * q for j, q in enumerate(probs, start=1)) - mean**2)
    assert mean == pytest.approx(expected_attempts(p, retries))
    measured = summary(run)["load_factor"]
    assert abs(measured - mean) <= K * sd / math.sqrt(len(run.requests))  # K standard errors


# ---------------------------------------------------------------- the study

def test_deadline_bounds_a_chain_of_calls() -> None:
    slow = (FaultWindow(10, 20, "slow", slow_factor=3.0),)
    base = Scenario(arrival_rate=30, calls=3, timeout_s=0.2, retries=1, faults=slow,
                    slo_s=0.3, duration_s=30)
    free = summary(simulate(base), 10, 20)
    bounded = summary(simulate(replace(base, deadline_s=0.3)), 10, 20)
    assert free["latency_p999_s"] > 0.6  # several per-call timeouts add up
    assert bounded["latency_p999_s"] <= 0.3 + 1e-9
    assert bounded["load_factor"] < free["load_factor"]  # no call starts after the deadline
    assert bounded["goodput_rps"] > free["goodput_rps"]


def test_retries_after_a_slow_episode_stay_overloaded_and_a_breaker_recovers() -> None:
    slow = (FaultWindow(20, 30, "slow", slow_factor=1.8),)
    base = Scenario(faults=slow, duration_s=60)
    after = {name: summary(simulate(replace(base, **kw)), 40, 60)["goodput_rps"]
             for name, kw in {
                 "no retry": {},
                 "retry": {"retries": 1},
                 "retry + breaker": {"retries": 1, "breaker": BreakerConfig(
                     failure_rate_threshold=0.2, window_s=2, minimum_calls=20,
                     sleep_window_s=2)},
             }.items()}
    assert after["no retry"] > 90  # the queue drained once the episode ended
    assert after["retry"] < 10  # retried, abandoned work keeps the dependency saturated
    assert after["retry + breaker"] > 90


def test_runs_are_deterministic_and_rows_line_up() -> None:
    a, b = simulate(Scenario(duration_s=5)), simulate(Scenario(duration_s=5))
    assert np.array_equal(a.requests.end, b.requests.end, equal_nan=True)
    assert len(a.attempts) == len(a.work)  # one dependency row per attempt, same order
    assert np.allclose(a.attempts.arrival, a.work.arrival)
    assert set(np.unique(a.requests.outcome)) <= {int(Outcome.OK), int(Outcome.TIMEOUT)}


@pytest.mark.parametrize("scenario", [
    Scenario(duration_s=30, timeout_s=0.01, retries=1),
    Scenario(duration_s=30, arrival_rate=160, timeout_s=0.03, retries=1,
             faults=(FaultWindow(10, 20, "slow", slow_factor=2.0),)),  # overloaded: work left
])
def test_fast_path_gives_the_simpy_rows_the_slider_plots(scenario) -> None:
    slow, fast = simulate(scenario), simulate_fast(scenario)
    for name in ("requests", "attempts", "work"):
        a, b = getattr(slow, name), getattr(fast, name)
        assert np.array_equal(a.outcome, b.outcome)
        for column in ("arrival", "start", "end"):  # replayed as gaps: equal up to rounding
            assert np.allclose(getattr(a, column), getattr(b, column), rtol=1e-9, atol=1e-9,
                               equal_nan=True)
    assert summary(slow) == pytest.approx(summary(fast), rel=1e-9, nan_ok=True)
    for (settings, out), (fast_settings, fast_out) in zip(
            sweep(scenario, retries=[0, 1]), sweep(scenario, fast=True, retries=[0, 1]),
            strict=True):
        assert settings == fast_settings
        assert out == pytest.approx(fast_out, rel=1e-9, nan_ok=True)


@pytest.mark.parametrize("change", [{"servers": None}, {"timeout_s": None}, {"calls": 2},
                                    {"fanout": 2}, {"deadline_s": 1.0}, {"hedge_delay_s": 0.05},
                                    {"breaker": BreakerConfig()},
                                    {"faults": (FaultWindow(1, 2, "hang"),)}])
def test_fast_path_refuses_what_it_does_not_model(change) -> None:
    with pytest.raises(ValueError, match="use simulate"):
        simulate_fast(replace(Scenario(duration_s=5), **change))
