"""Tests of the Scatter Gather pattern (patterns.communication.scatter_gather) and its study
(simulations.communication.scatter_gather): behaviour, error messages, theory vs simulation."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import own_loop
import pytest

from patterns.communication.scatter_gather import (
    GatherConfig,
    InsufficientCoverage,
    ProductionScatterGather,
    ScatterGather,
)
from patterns.resilience.timeouts import Deadline
from simulations.communication import scatter_gather as study
from simulations.theory import (
    exponential_order_statistic_mean,
    fanout_tail,
    order_statistic_cdf,
    order_statistic_percentile,
)


def shard(seconds, value):
    def call(stop: threading.Event):
        stop.wait(seconds)
        return value
    return call


def test_the_study_uses_the_pattern_class():
    assert study.ScatterGather is ScatterGather


def test_waits_for_all_without_deadline():
    with ThreadPoolExecutor(4) as pool:
        g = ScatterGather().gather([shard(0.01 * i, i) for i in range(4)], pool)
    assert g.complete and g.coverage == 1.0 and g.results == {0: 0, 1: 1, 2: 2, 3: 3}


def test_deadline_returns_partial_with_coverage_and_k_stops_early():
    with ThreadPoolExecutor(4) as pool:
        started = time.monotonic()
        g = ScatterGather(deadline_s=0.1).gather([shard(0, 0), shard(0, 1), shard(5, 2),
                                                  shard(5, 3)], pool)
        assert time.monotonic() - started < 1.0  # the stuck shards were told to stop
        assert g.coverage == 0.5 and g.missing == [2, 3] and not g.complete
        g = ScatterGather(k=2).gather([shard(0, 0), shard(5, 1), shard(0, 2)], pool)
    assert sorted(g.results) == [0, 2]


def test_errors_are_kept_apart_from_answers():
    def broken(stop):
        raise ConnectionError("down")
    with ThreadPoolExecutor(2) as pool:
        g = ScatterGather().gather([broken, shard(0, "ok")], pool)
    assert g.results == {1: "ok"} and isinstance(g.errors[0], ConnectionError)


def test_bad_settings_name_the_field():
    with pytest.raises(ValueError, match=r"GatherConfig.deadline_s must be > 0 \(got -1\)"):
        GatherConfig(deadline_s=-1)
    with pytest.raises(ValueError, match="GatherConfig.min_coverage must be"):
        GatherConfig(min_coverage=95)
    with pytest.raises(ValueError, match="k must be <= the number of shards 2"):
        ScatterGather(k=3).needed(2)
    with pytest.raises(ValueError, match="k must be"):
        study.Scenario(shards=5, k=6)


def test_production_floor_metrics_and_propagated_deadline():
    sg = ProductionScatterGather("t", GatherConfig(deadline_s=0.05, min_coverage=0.75))
    with ThreadPoolExecutor(4) as pool:
        g = sg.gather([shard(0, i) for i in range(3)] + [shard(5, 3)], pool)
        assert g.coverage == 0.75
        with pytest.raises(InsufficientCoverage, match="coverage 50% is below the minimum 75%"):
            sg.gather([shard(0, 0), shard(0, 1), shard(5, 2), shard(5, 3)], pool)
        started = time.monotonic()
        tight = ProductionScatterGather("d", GatherConfig(deadline_s=10.0, min_coverage=0.0))
        tight.gather([shard(5, 0)], pool, deadline=Deadline(0.05))
        assert time.monotonic() - started < 1.0  # the caller's 50 ms won over the 10 s
    c = sg.metrics.counts
    assert c["requests"] == 2 and c["partial"] == 2 and c["insufficient"] == 1
    assert c["shard_answers"] == 5 and c["shard_missing"] == 3
    assert sg.missing_by_shard[3] == 2 and sg.metrics.observed("coverage") == 2


def test_gather_outcome_is_the_kth_order_statistic():
    times = np.array([[3.0, 1.0, 2.0, 9.0]])
    assert gather_eq(times, 4, math.inf) == (9.0, 1.0)
    assert gather_eq(times, 2, math.inf) == (2.0, 0.5)
    assert gather_eq(times, 4, 2.5) == (2.5, 0.5)


def gather_eq(times, k, d):
    latency, coverage = study.gather_outcome(times, k, d)
    return float(latency[0]), float(coverage[0])


def test_mean_of_the_slowest_matches_harmonic_number():
    # 20,000 requests: the mean's standard error is about sd/sqrt(n) <= 1.3/mu/141 ≈ 1 % of
    # H_N/mu for N <= 50; a 3 % tolerance is three standard errors.
    for n in (1, 5, 50):
        r = study.run(study.Scenario(shards=n, requests=20_000, seed=n))
        theory = exponential_order_statistic_mean(n, n, 100.0)
        assert abs(r.latency.mean() / theory - 1) < 0.03
    # k-of-N: the 40th of 50 (20,000 requests, same 3 % tolerance)
    r = study.run(study.Scenario(shards=50, k=40, requests=20_000, seed=3))
    assert abs(r.latency.mean() / exponential_order_statistic_mean(50, 40, 100.0) - 1) < 0.03


def test_percentiles_and_fanout_tail_match_order_statistics():
    # p99 of waiting for all of N (20,000 requests: 200 above the p99; the quantile's relative
    # error is then a few %, so 6 %); P(some shard above the one-shard p99) = 1 - 0.99^N
    # (binomial standard error <= 0.0035 at 20,000 requests, so 0.015).
    cdf = lambda t: 1 - math.exp(-100 * max(t, 0.0))  # noqa: E731
    one_p99 = -math.log(0.01) / 100
    for n, k in ((10, 10), (50, 50), (50, 45)):
        r = study.run(study.Scenario(shards=n, k=k, requests=20_000, seed=k))
        theory = order_statistic_percentile(cdf, 0.99, n, k, scale=0.01)
        assert abs(np.percentile(r.latency, 99) / theory - 1) < 0.06
        if k == n:
            slow = (r.times > one_p99).any(axis=1).mean()
            assert abs(slow - fanout_tail(0.01, n)) < 0.015
            assert abs((r.latency <= 0.02).mean() - order_statistic_cdf(cdf(0.02), n, k)) < 0.015


def test_coverage_at_the_deadline_matches_the_binomial():
    # 20,000 requests x 20 shards; the mean coverage's standard error is below 0.002: tol 0.006
    for k, d in ((20, 0.03), (15, 0.03), (20, 0.01)):
        r = study.run(study.Scenario(shards=20, k=k, deadline_s=d, requests=20_000, seed=7))
        theory = study.expected_coverage(20, k, 1 - math.exp(-100 * d))
        assert abs(r.coverage.mean() - theory) < 0.006


def test_asyncio_wait_agrees_with_the_simulation_on_the_same_draws():
    # Real coroutines sleep the drawn times (scaled to 20 ms mean); asyncio.wait(timeout=) must
    # return the same shards the simulation counts, except any within 8 ms of the deadline.
    r = study.run(study.Scenario(shards=12, requests=3, service=study.Exponential(0.02),
                                 deadline_s=0.03, seed=4))

    async def one(times):
        tasks = {asyncio.create_task(asyncio.sleep(t, result=i)): i for i, t in enumerate(times)}
        done, pending = await asyncio.wait(tasks, timeout=0.03)
        for task in pending:
            task.cancel()
        return {task.result() for task in done}

    for times in r.times:
        got = own_loop.run(one(times))
        clear = np.abs(times - 0.03) > 0.008
        expected = {i for i in range(12) if times[i] <= 0.03}
        assert {i for i in got if clear[i]} == {i for i in expected if clear[i]}


def test_queueing_slows_the_gather_and_hedging_speeds_it():
    idle = study.summary(study.run(study.Scenario(shards=20, requests=3000)))
    busy = study.summary(study.run(study.Scenario(shards=20, load=0.5, requests=3000)))
    hedged = study.summary(study.run(study.Scenario(shards=20, hedge_delay_s=0.02,
                                                    requests=3000)))
    assert busy["latency_p99_s"] > idle["latency_p99_s"] > hedged["latency_p99_s"]
