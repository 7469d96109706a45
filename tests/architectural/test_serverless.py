"""Tests of the Serverless keep-alive pattern (patterns.architectural.serverless) and its study
(simulations.architectural.serverless): behaviour, error messages, theory vs simulation, and
agreement with cachetools' TTLCache."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from patterns.architectural.serverless import (
    FixedKeepAlive,
    FunctionPool,
    HistogramKeepAlive,
    PoolConfig,
    ProductionFunctionPool,
    ThrottledError,
)
from simulations.architectural import serverless as study
from simulations.architectural.serverless import (
    Scenario,
    idle_poisson,
    p_cold_poisson,
    simulate,
    simulate_fast,
    summary,
)


def clocked(policy):
    now = [0.0]
    return FunctionPool(policy, clock=lambda: now[0]), now


def test_the_study_uses_the_pattern_class():
    assert study.FunctionPool is FunctionPool


def test_fixed_keep_alive_is_warm_within_the_window_and_counts_idle_time():
    pool, now = clocked(FixedKeepAlive(10.0))
    assert pool.acquire() is True
    pool.release()
    now[0] = 7.0
    assert pool.acquire() is False          # 7 s idle <= 10 s
    pool.release()
    now[0] = 7.0 + 10.5
    assert pool.acquire() is True           # expired after 10 s idle
    pool.release()
    assert (pool.cold_starts, pool.warm_starts) == (2, 1)
    assert pool.idle_s == pytest.approx(7.0 + 10.0)


def test_concurrent_calls_need_more_instances_and_reuse_the_warm_ones():
    pool, now = clocked(FixedKeepAlive(60.0))
    assert [pool.acquire() for _ in range(3)] == [True, True, True]
    for _ in range(3):
        pool.release()
    now[0] = 5.0
    assert [pool.acquire() for _ in range(4)] == [False, False, False, True]


def test_prewarm_unloads_then_reloads():
    class Windows(FixedKeepAlive):
        def windows(self):
            return 100.0, 20.0

    pool, now = clocked(Windows(0.0))
    pool.acquire()
    pool.release()
    now[0] = 50.0
    assert pool.acquire() is True and pool.idle_s == 0.0   # before the reload: cold, no idle
    pool.release()
    now[0] = 50.0 + 110.0
    assert pool.acquire() is False and pool.idle_s == pytest.approx(10.0)


def test_histogram_windows_from_percentiles_and_fallbacks():
    h = HistogramKeepAlive(bin_s=60.0, margin=0.0, min_samples=10,
                           fallback=FixedKeepAlive(123.0))
    assert h.windows() == (0.0, 123.0)      # too few samples
    for gap in [600.0] * 98 + [300.0, 900.0]:
        h.observe(gap)
    # 5th percentile in the 600 s bin [600, 660), 99th too; 900 s only above the 99th
    assert h.windows() == (600.0, 60.0)
    for _ in range(200):
        h.observe(10 * 3600.0)             # out of bounds: more than half, so fall back
    assert h.windows() == (0.0, 123.0)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: PoolConfig(keep_alive_s=-1), "PoolConfig.keep_alive_s must be"),
    (lambda: PoolConfig(max_instances=0), "PoolConfig.max_instances must be an integer"),
    (lambda: HistogramKeepAlive(head=0.9, tail=0.5), "head must be < tail"),
    (lambda: HistogramKeepAlive(bin_s=0), "bin_s must be > 0"),
])
def test_bad_settings_are_refused_with_a_clear_message(make, message):
    with pytest.raises(ValueError, match=message):
        make()
    with pytest.raises(ValueError, match=r"\(got -1\)"):
        PoolConfig(keep_alive_s=-1)


def test_production_pool_inits_once_throttles_and_counts():
    inits, gate, release = [], threading.Event(), threading.Event()
    pool = ProductionFunctionPool("f", PoolConfig(max_instances=2), init=lambda: inits.append(1))
    assert pool.invoke(lambda x: x + 1, 1) == 2
    assert pool.invoke(lambda x: x * 2, 4) == 8
    assert len(inits) == 1

    def slow():
        gate.set()
        release.wait(5)

    threads = [threading.Thread(target=pool.invoke, args=(slow,), daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    gate.wait(5)
    while pool.busy < 2:
        pass
    with pytest.raises(ThrottledError):
        pool.invoke(lambda: None)
    release.set()
    for t in threads:
        t.join(5)
    assert not any(t.is_alive() for t in threads)
    counts = pool.metrics.counts
    assert counts["throttled"] == 1 and counts["cold"] + counts["warm"] == 4
    assert pool.busy == 0


@pytest.mark.parametrize("workload", study.WORKLOADS)
def test_pattern_run_and_fast_path_agree(workload):
    s = Scenario(workload=workload, keep_alive_s=650.0, invocations=500)
    a, b = simulate(s), simulate_fast(s)
    assert np.array_equal(a.cold, b.cold)
    assert np.allclose(a.idle_s, b.idle_s)


@pytest.mark.parametrize("tau", [60.0, 300.0, 900.0])
def test_poisson_cold_share_and_idle_time_match_the_closed_forms(tau):
    # n = 20000 gaps; the cold share's standard error is sqrt(p(1-p)/n) <= 0.0036, and the
    # idle time's is std(min(gap, tau))/sqrt(n) <= (1/lambda)/sqrt(n) = 2.1 s: 4 SE each.
    n, lam = 20000, 1 / 300
    m = summary(simulate_fast(Scenario(keep_alive_s=tau, invocations=n, seed=7)))
    p = p_cold_poisson(lam, tau)
    assert abs(m["cold_share"] - p) < 4 * math.sqrt(p * (1 - p) / n)
    assert abs(m["idle_per_call_s"] - idle_poisson(lam, tau)) < 4 * 300 / math.sqrt(n)


def test_histogram_policy_wins_on_periodic_and_bimodal_idle_times():
    for workload in ("periodic", "bimodal"):
        hist = summary(simulate(Scenario(workload=workload, policy="histogram")), skip=50)
        # the fixed window that is as rarely cold must keep instances past the longest gap
        fixed = summary(simulate_fast(Scenario(workload=workload, keep_alive_s=1600.0)))
        assert hist["cold_share"] <= fixed["cold_share"] + 0.01
        assert hist["idle_per_call_s"] < 0.6 * fixed["idle_per_call_s"]


def test_cachetools_ttl_cache_gives_the_same_cold_starts():
    cachetools = pytest.importorskip("cachetools")
    s = Scenario(keep_alive_s=300.0, invocations=400)
    run = simulate(s)
    now = [0.0]
    # TTLCache expires an entry when now >= set time + ttl; the pool keeps it through
    # exactly τ, so the ttl is a hair longer (no gap falls within 1e-9 s of τ).
    cache = cachetools.TTLCache(maxsize=1, ttl=s.keep_alive_s + 1e-9, timer=lambda: now[0])
    cache["instance"] = True
    cold = []
    for t in run.time_s:
        now[0] = t
        cold.append("instance" not in cache)
        cache["instance"] = True
    assert cold == run.cold.tolist()
