"""Backpressure: the bounded buffer, its production version, and the SimPy study against M/M/1/K.

Theory checks use independent seeded replications and a 99.9 % Student-t interval of their
mean: the simulation agrees with the closed form when the gap is within that half-width (so a
wrong model fails, while sampling noise fails about once in a thousand runs of a fixed seed,
i.e. never, since the seeds are fixed).
"""

from __future__ import annotations

import asyncio
import math
import queue
import threading
import time

import numpy as np
import pytest

from patterns.resilience.backpressure import (
    BoundedBuffer,
    BufferConfig,
    BufferFull,
    ProductionBoundedBuffer,
)
from simulations.metrics import confidence_interval
from simulations.resilience.backpressure import (
    Scenario,
    blocking_producer_rate,
    capacity_for_latency,
    overload_backlog,
    simulate,
    summary,
    timeline,
)
from simulations.theory import mm1k_blocking, mm1k_mean_response


def random_operations(seed: int, n: int = 400) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["put" if x < 0.55 else "take" for x in rng.random(n)]


# ---------------------------------------------------------------- the small class


def test_buffer_refuses_when_full_and_keeps_fifo_order_and_wait_times():
    now = [0.0]
    buffer = BoundedBuffer(2, clock=lambda: now[0])
    assert [buffer.offer(x) for x in "abc"] == [True, True, False]
    assert (buffer.accepted, buffer.rejected, buffer.free_slots) == (2, 1, 0)
    now[0] = 1.5
    assert buffer.take() == ("a", 1.5)
    assert buffer.offer("d") and buffer.free_slots == 0
    now[0] = 2.0
    assert [buffer.take()[0] for _ in range(2)] == ["b", "d"]
    with pytest.raises(IndexError, match="empty"):
        buffer.take()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_buffer_agrees_with_queue_queue_and_asyncio_queue(seed):
    ours = BoundedBuffer(4)
    threads_queue = queue.Queue(maxsize=4)
    async_queue = asyncio.Queue(maxsize=4)
    for operation in random_operations(seed):
        if operation == "put":
            item = object()
            decisions = [ours.offer(item)]
            for q, full in ((threads_queue, queue.Full), (async_queue, asyncio.QueueFull)):
                try:
                    q.put_nowait(item)
                    decisions.append(True)
                except full:
                    decisions.append(False)
            assert len(set(decisions)) == 1, decisions
        elif len(ours):
            item = ours.take()[0]
            assert threads_queue.get_nowait() is item and async_queue.get_nowait() is item
        else:
            assert threads_queue.empty() and async_queue.empty()


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"capacity": 0}, "BufferConfig.capacity must be an integer >= 1 (got 0)"),
    ({"capacity": 10, "high_watermark": 11},
     "BufferConfig.high_watermark must be an integer in [1, 10] (got 11)"),
    ({"capacity": 10, "high_watermark": 8, "low_watermark": 8},
     "BufferConfig.low_watermark must be an integer in [0, 7] (got 8)"),
    ({"put_timeout_s": -1}, "BufferConfig.put_timeout_s must be > 0 (got -1)"),
])
def test_buffer_config_errors_name_the_field_the_value_and_the_range(kwargs, message):
    with pytest.raises(ValueError) as error:
        BufferConfig(**kwargs)
    assert str(error.value) == message


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"policy": "shed"}, "policy must be one of drop, block, unbounded (got 'shed')"),
    ({"producer": "lazy"}, "producer must be one of paced, open (got 'lazy')"),
    ({"capacity": 0}, "capacity must be an integer >= 1 (got 0)"),
    ({"arrival_rate": -2}, "arrival_rate must be > 0 (got -2)"),
    ({"overload": (50, 40, 12)}, "overload must satisfy start_s < end_s <= duration_s"),
    ({"retries": 1.5}, "retries must be an integer >= 0 (got 1.5)"),
])
def test_scenario_errors(kwargs, fragment):
    with pytest.raises(ValueError, match=None) as error:
        Scenario(**kwargs)
    assert fragment in str(error.value)


def test_bounded_buffer_capacity_error():
    with pytest.raises(ValueError, match=r"capacity must be an integer >= 1 \(got -3\)"):
        BoundedBuffer(-3)


# ---------------------------------------------------------------- production version


def test_production_buffer_blocks_producers_and_never_exceeds_capacity():
    buffer = ProductionBoundedBuffer("orders", BufferConfig(capacity=5, high_watermark=5,
                                                            low_watermark=1))
    deepest = [0]
    signals = []
    buffer.listeners.append(lambda name, kind, depth: signals.append(kind))

    def producer():
        for i in range(50):
            buffer.put(i)
            deepest[0] = max(deepest[0], len(buffer))

    producers = [threading.Thread(target=producer) for _ in range(3)]
    for thread in producers:
        thread.start()
    taken = []
    while len(taken) < 150:
        time.sleep(0.0002)  # a slow consumer
        taken.append(buffer.get(timeout_s=5))
    for thread in producers:
        thread.join()
    c = buffer.metrics.counts
    assert deepest[0] <= 5 and len(buffer) == 0
    assert c["offered"] == c["accepted"] == c["taken"] == 150 and c["blocked_puts"] > 0
    assert buffer.metrics.observed("blocked_seconds") == 150
    assert buffer.metrics.observed("wait_seconds") == 150
    assert signals and all(a != b for a, b in zip(signals, signals[1:], strict=False))
    assert c["pauses"] == signals.count("pause") and c["resumes"] == signals.count("resume")


def test_production_buffer_put_times_out_and_offer_drops():
    buffer = ProductionBoundedBuffer("jobs", BufferConfig(capacity=2, put_timeout_s=0.01))
    buffer.put("a")
    assert buffer.offer("b") and not buffer.offer("c")
    with pytest.raises(BufferFull, match="no free slot within 0.01 s"):
        buffer.put("d")
    c = buffer.metrics.counts
    assert (c["offered"], c["accepted"], c["rejected"], c["put_timeouts"]) == (4, 2, 1, 1)
    with pytest.raises(TimeoutError):
        ProductionBoundedBuffer("empty").get(timeout_s=0.001)


def test_hysteresis_sends_fewer_signals_than_a_single_threshold():
    def signals(low: int) -> int:
        buffer = ProductionBoundedBuffer("b", BufferConfig(capacity=20, high_watermark=10,
                                                           low_watermark=low))
        for operation in random_operations(7, 3000):
            if operation == "put":
                buffer.offer(0)
            elif len(buffer):
                buffer.get()
        return buffer.metrics.counts["pauses"] + buffer.metrics.counts["resumes"]

    assert signals(low=5) < signals(low=9) / 2


# ---------------------------------------------------------------- theory


def test_theory_helpers():
    assert capacity_for_latency(10.0, 0.5) == 5 and capacity_for_latency(10.0, 0.01) == 1
    assert overload_backlog(8.0, 10.0, 100.0) == 0.0
    assert overload_backlog(12.0, 10.0, 30.0) == pytest.approx(60.0)
    # K + 1 places (buffer plus the producer's hand): below the dropping pipe's λ(1 − P_K)
    assert blocking_producer_rate(8, 10, 5) == pytest.approx(8 * (1 - mm1k_blocking(8, 10, 6)))
    assert blocking_producer_rate(8, 10, 5) > 8 * (1 - mm1k_blocking(8, 10, 5))


def replications(scenario: Scenario, metric, seeds=range(1, 7), warmup_s=50.0):
    return [metric(simulate(Scenario(**{**vars(scenario), "seed": s})), warmup_s) for s in seeds]


def assert_within_interval(values, expected):
    mean, half = confidence_interval(values, level=0.999)
    assert abs(mean - expected) <= half, (mean, half, expected)


@pytest.mark.parametrize(("rate", "capacity"), [(8.0, 2), (8.0, 5), (8.0, 10), (12.0, 5)])
def test_drop_policy_matches_mm1k_blocking_and_latency(rate, capacity):
    scenario = Scenario(policy="drop", capacity=capacity, arrival_rate=rate, duration_s=1500)
    loss = replications(scenario, lambda run, w: summary(run, w)["loss_fraction"])
    assert_within_interval(loss, mm1k_blocking(rate, 10.0, capacity))
    latency = replications(scenario, lambda run, w: summary(run, w)["latency_mean_s"])
    assert_within_interval(latency, mm1k_mean_response(rate, 10.0, capacity))


def test_paced_blocking_producer_matches_mm1_k_plus_one():
    scenario = Scenario(policy="block", producer="paced", capacity=3, arrival_rate=9.0,
                        duration_s=1500)
    rate = replications(scenario, lambda run, w: summary(run, w)["goodput_per_s"])
    assert_within_interval(rate, blocking_producer_rate(9.0, 10.0, 3))
    loss = replications(scenario, lambda run, w: summary(run, w)["loss_fraction"], seeds=[1])
    assert loss == [0.0]


def test_unbounded_queue_grows_at_lambda_minus_mu_under_overload():
    run = simulate(Scenario(policy="unbounded", arrival_rate=12.0, duration_s=400, seed=5))
    held = len(run.items) - int((run.items.outcome == 1).sum())
    # arrivals minus departures while the server never idles: sd √((λ + μ)t); allow 4 sd
    assert abs(held - overload_backlog(12.0, 10.0, 400)) <= 4 * math.sqrt(22 * 400)


# ---------------------------------------------------------------- the study


def test_runs_are_deterministic_and_policies_share_traffic():
    a = simulate(Scenario(policy="drop", duration_s=100, seed=3))
    b = simulate(Scenario(policy="drop", duration_s=100, seed=3))
    c = simulate(Scenario(policy="unbounded", duration_s=100, seed=3))
    assert np.array_equal(a.items.end, b.items.end, equal_nan=True)
    assert np.array_equal(a.items.arrival, c.items.arrival)


def test_block_policy_loses_nothing_and_bounds_the_buffer_under_overload():
    base = Scenario(capacity=8, arrival_rate=8.0, duration_s=200, overload=(50, 100, 16.0))
    blocked = simulate(Scenario(**{**vars(base), "policy": "block", "producer": "paced"}))
    dropped = simulate(base)
    assert summary(blocked)["loss_fraction"] == 0.0 < summary(dropped)["loss_fraction"]
    assert summary(blocked)["blocked_fraction"] > 0.1
    assert len(blocked.buffer) == len(blocked.items)
    in_buffer = blocked.buffer
    assert np.nanmax(in_buffer.latency) < np.nanmax(blocked.items.latency)
    series = timeline(dropped, bin_s=10)
    assert series["dropped_rps"][5:10].mean() > 4 and series["dropped_rps"][:4].max() < 2


def test_retries_amplify_attempts_and_recover_a_short_burst():
    base = Scenario(capacity=5, duration_s=120, overload=(40, 50, 20.0))
    once = summary(simulate(base))
    retried_run = simulate(Scenario(**{**vars(base), "retries": 3, "retry_backoff_s": 0.5}))
    retried = summary(retried_run)
    assert 1.0 < retried["attempts_per_item"] <= 4.0
    assert retried["loss_fraction"] < 0.75 * once["loss_fraction"]
