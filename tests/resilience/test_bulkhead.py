"""The bulkhead lesson's model: bulkheads, their agreement with the standard library's
semaphores, the isolation study, and Erlang B / Erlang C / the fluid model against simulation."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
from concurrently import run_concurrently
from hypothesis import given, settings
from hypothesis import strategies as st

from patterns.resilience.bulkhead import (
    Bulkhead,
    BulkheadConfig,
    BulkheadFullError,
    ProductionBulkhead,
)
from patterns.resilience.circuit_breaker import BreakerConfig
from simulations.faults import FaultWindow
from simulations.metrics import confidence_interval
from simulations.resilience.bulkhead import (
    HEALTHY,
    NOISY,
    Scenario,
    flood_wait_s,
    partitioned_mean_response,
    pooling_penalty,
    replay,
    replay_asyncio,
    semaphore_rejection,
    simulate,
    smallest_partition,
    summary,
    sweep,
    timeline,
)
from simulations.theory import mmc_mean_response, mmc_response_percentile


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def boom() -> None:
    raise ConnectionError("dependency down")


# ---------------------------------------------------------------- the small bulkhead

def test_admits_up_to_the_limit_then_refuses_until_a_release() -> None:
    bulkhead = Bulkhead(2, clock=FakeClock())
    assert [bulkhead.try_acquire() for _ in range(3)] == [True, True, False]
    bulkhead.release()
    assert bulkhead.try_acquire() is True
    assert (bulkhead.admitted, bulkhead.rejected, bulkhead.in_use) == (3, 1, 2)


def test_call_gives_the_permit_back_when_the_function_raises() -> None:
    bulkhead = Bulkhead(1, clock=FakeClock())
    for _ in range(3):
        with pytest.raises(ConnectionError):
            bulkhead.call(boom)
    assert bulkhead.in_use == 0 and bulkhead.call(lambda: "ok") == "ok"
    bulkhead.try_acquire()
    with pytest.raises(BulkheadFullError, match="1 of 1 permits in use"):
        bulkhead.call(lambda: "never runs")


def test_mean_in_use_integrates_permits_over_clock_time() -> None:
    clock = FakeClock()
    bulkhead = Bulkhead(5, clock=clock)
    bulkhead.try_acquire()  # one permit over [0, 4)
    clock.now = 2.0
    bulkhead.try_acquire()  # a second over [2, 4)
    clock.now = 4.0
    bulkhead.release()
    bulkhead.release()
    clock.now = 8.0
    assert bulkhead.permit_seconds == pytest.approx(6.0)
    assert bulkhead.mean_in_use() == pytest.approx(6.0 / 8.0)


def test_release_without_a_permit_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="no permit in use"):
        Bulkhead(1).release()


@pytest.mark.parametrize(("build", "message"), [
    (lambda: Bulkhead(0), "max_concurrent must be an integer >= 1 (got 0)"),
    (lambda: BulkheadConfig(max_concurrent_calls=2.5),
     "BulkheadConfig.max_concurrent_calls must be an integer >= 1 (got 2.5)"),
    (lambda: BulkheadConfig(max_wait_s=-1), "BulkheadConfig.max_wait_s must be >= 0 (got -1)"),
    (lambda: Scenario(isolation="pooled"),
     "isolation must be one of shared, partitioned, semaphore (got 'pooled')"),
    (lambda: Scenario(noisy_workers=10), "noisy_workers must be an integer in [1, 9] (got 10)"),
    (lambda: Scenario(flood_start_s=30, flood_end_s=20), "flood_end_s must be > 30 (got 20)"),
    (lambda: Scenario(queue_limit=-1), "queue_limit must be an integer >= 0 (got -1)"),
    (lambda: partitioned_mean_response(5, 1, 10, 3), "partitions must divide servers = 10"),
    (lambda: smallest_partition(10, 10, 0.3), "target_s must exceed"),
    (lambda: replay(["acquire", "grab"], lambda: True, lambda: None),
     "operation must be one of acquire, release (got 'grab')"),
])
def test_bad_input_is_named_with_its_value_and_the_allowed_range(build, message) -> None:
    with pytest.raises(ValueError) as error:
        build()
    assert message in str(error.value)


# ---------------------------------------------------------------- production bulkhead

def test_production_bulkhead_counts_add_up_across_threads() -> None:
    bulkhead = ProductionBulkhead("inventory", BulkheadConfig(max_concurrent_calls=3))
    inside, worst = [0], [0]
    guard = threading.Lock()

    def work() -> None:
        with guard:
            inside[0] += 1
            worst[0] = max(worst[0], inside[0])
        time.sleep(0.0005)
        with guard:
            inside[0] -= 1

    def caller(_: int) -> None:
        for _ in range(100):
            bulkhead.call(work, fallback=lambda: None)

    run_concurrently(caller, range(8))
    numbers = bulkhead.snapshot()
    assert numbers["admitted"] + numbers["rejected"] == 800
    assert numbers["successes"] == numbers["admitted"] == bulkhead.metrics.observed("call_seconds")
    assert worst[0] <= 3 and numbers["peak_in_use"] <= 3 and numbers["in_use"] == 0


def test_a_waiting_caller_gets_the_permit_released_within_max_wait() -> None:
    bulkhead = ProductionBulkhead("db", BulkheadConfig(max_concurrent_calls=1, max_wait_s=5))
    holding, results = threading.Event(), []
    go = threading.Event()
    holder = threading.Thread(target=lambda: bulkhead.call(lambda: (holding.set(), go.wait(5))),
                              daemon=True)
    holder.start()
    holding.wait(5)
    waiter = threading.Thread(target=lambda: results.append(bulkhead.call(lambda: "served")),
                              daemon=True)
    waiter.start()
    time.sleep(0.05)
    go.set()
    for thread in (holder, waiter):
        thread.join(timeout=10)
    assert results == ["served"] and bulkhead.rejected == 0


def test_one_warning_per_full_episode_and_fallback(caplog) -> None:
    bulkhead = ProductionBulkhead("search", BulkheadConfig(max_concurrent_calls=1))
    bulkhead.try_acquire()  # someone holds the only permit
    with caplog.at_level(logging.INFO, logger="patterns.resilience.bulkhead"):
        answers = [bulkhead.call(lambda: "fresh", fallback=lambda: "cached") for _ in range(5)]
        bulkhead.release()
        answers.append(bulkhead.call(lambda: "fresh"))
    assert answers == ["cached"] * 5 + ["fresh"]
    messages = [record.getMessage() for record in caplog.records]
    assert messages == ["bulkhead search full: refusing calls (1 permits in use)",
                        "bulkhead search has room again after refusing 5 calls"]
    with pytest.raises(BulkheadFullError):
        bulkhead.try_acquire()
        bulkhead.call(lambda: "fresh")


# ---------------------------------------------------------------- agreement with the stdlib

@settings(max_examples=60, deadline=None)
@given(limit=st.integers(1, 5),
       operations=st.lists(st.sampled_from(["acquire", "release"]), max_size=60))
def test_admit_decisions_agree_with_the_standard_library_semaphores(limit, operations) -> None:
    ours = Bulkhead(limit, clock=FakeClock())
    bounded = threading.BoundedSemaphore(limit)

    expected = replay(operations, lambda: bounded.acquire(blocking=False), bounded.release)
    assert replay(operations, ours.try_acquire, ours.release) == expected
    assert replay_asyncio(operations, limit) == expected


# ---------------------------------------------------------------- the study

def test_runs_are_deterministic_and_share_traffic_across_isolations() -> None:
    runs = [simulate(replace(Scenario(duration_s=30), isolation=iso))
            for iso in ("shared", "partitioned", "shared")]
    for run in runs[1:]:
        np.testing.assert_array_equal(run.requests.arrival, runs[0].requests.arrival)
        np.testing.assert_array_equal(run.requests.cls, runs[0].requests.cls)
    np.testing.assert_array_equal(runs[0].requests.end, runs[2].requests.end)


def test_a_flood_spreads_in_a_shared_pool_and_stays_in_its_partition() -> None:
    base = Scenario()
    shared = summary(simulate(base))
    partitioned = summary(simulate(replace(base, isolation="partitioned")))
    semaphore = summary(simulate(replace(base, isolation="semaphore")))
    calm = summary(simulate(replace(base, flood_factor=1.0, isolation="partitioned")))
    assert shared["latency_p99_s"] > 10 * calm["latency_p99_s"]
    assert partitioned["latency_p99_s"] < 1.5 * calm["latency_p99_s"]
    assert semaphore["latency_p99_s"] < 1.5 * calm["latency_p99_s"]
    assert semaphore["rejected_share"] < 0.2 and partitioned["rejected_share"] == 0


def test_breaker_behind_the_bulkhead_frees_the_noisy_partition() -> None:
    hang = replace(Scenario(), flood_factor=1.0, outage=FaultWindow(20, 40, "hang"),
                   timeout_s=1.0, isolation="partitioned")
    without = simulate(hang)
    with_breaker = simulate(replace(hang, breaker=BreakerConfig(window_s=2, minimum_calls=5)))
    assert summary(without, NOISY, 22, 40)["busy_workers"] > 4.9  # all 5 held by hung calls
    assert summary(with_breaker, NOISY, 25, 40)["busy_workers"] < 1.0
    healthy = summary(without, HEALTHY)["latency_p99_s"]
    shared = summary(simulate(replace(hang, isolation="shared")), HEALTHY)["latency_p99_s"]
    assert healthy < 0.6 < 5 < shared


def test_timeline_and_sweep_have_one_value_per_bin_and_per_setting() -> None:
    run = simulate(Scenario(duration_s=20, flood_start_s=5, flood_end_s=10))
    bins = timeline(run, bin_s=2.0)
    assert len(bins["time_s"]) == 10 and len(bins["noisy_busy_workers"]) == 10
    assert np.all(bins["healthy_busy_workers"] + bins["noisy_busy_workers"] <= 10 + 1e-9)
    rows = sweep(Scenario(duration_s=20, flood_start_s=5, flood_end_s=10),
                 isolation=["shared", "partitioned"])
    assert [row["isolation"] for row in rows] == ["shared", "partitioned"]
    with pytest.raises(ValueError, match="sweep setting must be one of"):
        sweep(Scenario(), colour=["red"])


# ---------------------------------------------------------------- theory against simulation

def test_theory_sizes_and_penalties() -> None:
    assert partitioned_mean_response(8, 1, 10, 1) == mmc_mean_response(8, 1, 10)
    assert pooling_penalty(8, 1, 10, 2) > pooling_penalty(5, 1, 10, 2) > 1
    c = smallest_partition(30, 10, 0.5)
    assert mmc_response_percentile(30, 10, c, 0.99) <= 0.5 < \
        mmc_response_percentile(30, 10, c - 1, 0.99)
    assert flood_wait_s(10, 150, 10, 10) == pytest.approx(5.0)
    assert flood_wait_s(10, 90, 10, 10) == 0.0


def _replicated(scenario: Scenario, metric, seeds=range(5)):
    """Mean and 95 % t-interval half-width of ``metric(run)`` over independent seeds."""
    return confidence_interval([metric(simulate(replace(scenario, seed=s))) for s in seeds])


# Tolerances: five independent replications give a 95 % t-interval (t = 2.78, 4 d.f.); the
# closed form must lie within 1.5 half-widths of the simulated mean (a margin for the
# warm-up bias left after dropping the first 20 s), plus 1 % for the theory's own rounding.

CALM = Scenario(healthy_rate=40.0, noisy_rate=40.0, flood_factor=1.0, duration_s=220.0)


@pytest.fixture(scope="module")
def calm_latency() -> dict[str, tuple[float, float]]:
    """The healthy tenant's mean latency (mean, half-width) with one pool and with halves."""
    return {isolation: _replicated(replace(CALM, isolation=isolation),
                                   lambda run: summary(run, HEALTHY, 20, 220)["mean_latency_s"])
            for isolation in ("shared", "partitioned")}


@pytest.mark.parametrize(("isolation", "servers", "rate"),
                         [("shared", 10, 80.0), ("partitioned", 5, 40.0)])
def test_mean_response_matches_erlang_c(calm_latency, isolation, servers, rate) -> None:
    mean, half = calm_latency[isolation]
    expected = mmc_mean_response(rate, 10.0, servers)
    assert abs(mean - expected) <= 1.5 * half + 0.01 * expected, (mean, half, expected)


def test_partitioning_costs_what_erlang_c_predicts(calm_latency) -> None:
    shared, split = calm_latency["shared"], calm_latency["partitioned"]
    assert split[0] > shared[0] + split[1] + shared[1]  # clearly slower, beyond the noise
    assert split[0] / shared[0] == pytest.approx(pooling_penalty(80, 10, 10, 2), rel=0.1)


def test_semaphore_refusals_match_erlang_b() -> None:
    scenario = replace(CALM, isolation="semaphore", healthy_rate=30.0, noisy_rate=30.0)
    mean, half = _replicated(scenario, lambda run: summary(run, HEALTHY, 20, 220)
                             ["rejected_share"])
    expected = semaphore_rejection(30.0, 10.0, 5)
    assert abs(mean - expected) <= 1.5 * half + 0.01 * expected, (mean, half, expected)


def test_shared_pool_wait_during_a_flood_follows_the_fluid_model() -> None:
    # Healthy requests arriving in the last 5 s of a 20 s flood at 150 req/s into 100 req/s of
    # capacity: the fluid model says they wait (150 - 100) * 17.5 / 100 = 8.75 s on average.
    def late_wait(run) -> float:
        return summary(run, HEALTHY, 35, 40)["mean_latency_s"]

    mean, half = _replicated(Scenario(), late_wait, seeds=range(4))
    expected = flood_wait_s(17.5, 150.0, 10.0, 10) + 0.1
    # the fluid model ignores randomness; over 15-20 s its error is a few Poisson standard
    # deviations of the backlog, sqrt(150 * 17.5) / 100 = 0.5 s; allow twice that
    assert abs(mean - expected) <= half + 1.0, (mean, half, expected)
