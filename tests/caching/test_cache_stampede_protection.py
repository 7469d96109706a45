"""Tests of cache stampede protection (patterns.caching.cache_stampede_protection) and its study
(simulations.caching.cache_stampede_protection): behaviour, error messages, theory vs simulation,
agreement with cachetools, and the Redis lock.

Tolerances of the theory checks, derived:

- herd size: recomputations per expiry without coalescing are 1 + Poisson(λ·t_fill) per expiry,
  with λ·t_fill = 100 here: standard deviation 10 per expiry. Over about 18 expiries (three
  seeds of a 70 s run with a 10 s TTL) the mean has a standard error of 10/√18 ≈ 2.4, 2.4 % of
  101; the tolerance is 8 % (over three standard errors).
- per-process single-flight: the count per expiry is 1 + Binomial(N - 1, p), p = 1 - e^{-λt/N};
  at N = 4 and λt = 4, p = 0.632, sd = √(3·p(1 - p)) = 0.84 per expiry; 100 expiries give a
  standard error of 0.084 on a mean of 2.9 (2.9 %); tolerance 10 %.
- XFetch's stampede probability p from about 400 episodes: binomial standard error
  √(p(1 - p)/400), 0.019 at p = 0.19 and 0.008 at p = 0.025; tolerance four of those (absolute).
- XFetch's mean lead: the lead is βδ times a Gumbel variable (sd π/√6 ≈ 1.28), so the mean of
  400 leads has a standard error of 0.064·βδ; tolerance 0.3·βδ absolute (over four).
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
from cachetools import TTLCache, cached

from patterns.caching.cache_stampede_protection import (
    Entry,
    LocalLocks,
    RedisLocks,
    SingleFlight,
    StampedeCache,
    StampedeConfig,
    xfetch,
)
from simulations.caching import cache_stampede_protection as study
from simulations.caching.cache_stampede_protection import Scenario, simulate, summary

# ---------------------------------------------------------------- the pattern


def test_xfetch_follows_its_rule_with_an_injected_rng():
    # u = 1 - rng(); recompute when now - δβ·ln(u) >= expiry
    assert xfetch(9.0, 10.0, delta=1.0, beta=1.0, rng=lambda: 1 - math.exp(-1.0))
    assert not xfetch(8.9, 10.0, delta=1.0, beta=1.0, rng=lambda: 1 - math.exp(-1.0))
    assert xfetch(10.0, 10.0, delta=1.0, rng=lambda: 0.0)  # expired: always
    assert not xfetch(0.0, 10.0, delta=1.0, rng=lambda: 0.5)


def test_xfetch_fires_with_probability_exp_minus_tau_over_beta_delta():
    rng = random.Random(4)
    n = 40_000
    rate = sum(xfetch(8.0, 10.0, 0.5, 2.0, rng.random) for _ in range(n)) / n
    expected = study.xfetch_probability(2.0, 0.5, 2.0)  # e^-2 = 0.135, binomial se 0.0017
    assert rate == pytest.approx(expected, abs=0.007)


def test_single_flight_shares_one_computation_among_concurrent_callers():
    group, started, release = SingleFlight(), threading.Event(), threading.Event()
    calls = []

    def slow():
        calls.append(1)
        started.set()
        release.wait(5)
        return 42

    results = []
    leader = threading.Thread(target=lambda: results.append(group.do("k", slow)), daemon=True)
    leader.start()
    started.wait(5)
    followers = [threading.Thread(target=lambda: results.append(group.do("k", slow)),
                                  daemon=True) for _ in range(5)]
    for t in followers:
        t.start()
    while group.shared < 5:  # every follower has joined the flight
        time.sleep(0.001)
    release.set()
    for t in [leader, *followers]:
        t.join(5)
    assert not any(t.is_alive() for t in [leader, *followers])
    assert results == [42] * 6 and len(calls) == 1
    assert group.computations == 1 and group.shared == 5 and not group.in_flight("k")
    assert group.do("k", lambda: 7) == 7  # done flights are forgotten


def test_single_flight_gives_every_waiter_the_same_error():
    group = SingleFlight()
    with pytest.raises(KeyError):
        group.do("k", lambda: {}["missing"])
    assert not group.in_flight("k")


def test_local_locks_expire_and_only_the_holder_releases():
    now = [0.0]
    locks = LocalLocks(lambda: now[0])
    token = locks.acquire("k", 1.0)
    assert token and locks.acquire("k", 1.0) is None
    now[0] = 1.5  # the lease ran out: someone else may take it
    other = locks.acquire("k", 1.0)
    assert other and not locks.release("k", token) and locks.release("k", other)


def make_cache(**config):
    now = [0.0]
    cache = StampedeCache("test", StampedeConfig(**config), clock=lambda: now[0],
                          sleep=lambda s: now.__setitem__(0, now[0] + s), rng=lambda: 0.999999)
    return cache, now


def test_stampede_cache_serves_hits_recomputes_on_expiry_and_counts():
    cache, now = make_cache(ttl_s=10, beta=0)
    loads = []
    assert cache.get("k", lambda: loads.append(1) or "v1") == "v1"
    now[0] = 5
    assert cache.get("k", lambda: "never") == "v1"
    now[0] = 11
    assert cache.get("k", lambda: "v2") == "v2"
    c = cache.metrics.counts
    assert (c["reads"], c["hits"], c["misses"], c["recomputes"]) == (3, 1, 2, 2)
    assert cache.metrics.observed("recompute_seconds") == 2


def test_waiters_get_the_stale_value_while_the_lock_is_held():
    cache, now = make_cache(ttl_s=10, beta=0, lock_timeout_s=3)
    cache.store["k"] = Entry("old", expires_at=1.0, delta=0.1)
    now[0] = 2.0
    token = cache.locks.acquire("k", 3)  # another caller is recomputing
    assert token and cache.get("k", lambda: "new") == "old"
    assert cache.metrics.counts["stale"] == 1


def test_a_crashed_holder_blocks_a_cold_key_only_until_its_lease_runs_out():
    cache, now = make_cache(ttl_s=10, beta=0, lock_timeout_s=2, poll_s=0.1)
    cache.locks.acquire("k", 2)  # taken at t = 0 by a holder that then died
    assert cache.get("k", lambda: "fresh") == "fresh"
    assert 2.0 <= now[0] < 2.2  # waited for the lease, then took over
    assert cache.metrics.counts["waits"] == 1


def test_early_recomputation_happens_near_expiry_and_only_with_the_lock():
    cache, now = make_cache(ttl_s=10, beta=1.0)
    cache.store["k"] = Entry("old", expires_at=10.0, delta=1.0)
    now[0] = 9.99  # u = 1e-6: -ln(u)·δ = 13.8 s > 0.01 s to go
    assert cache.get("k", lambda: "new") == "new"
    assert cache.metrics.counts["early_recomputes"] == 1
    cache.store["k"] = Entry("old", expires_at=30.0, delta=1.0)
    cache.locks.acquire("k", 5)
    assert cache.get("k", lambda: "never") == "old"  # wanted to, but another holds the lock


def test_loader_errors_release_the_lock():
    cache, _ = make_cache(beta=0)
    with pytest.raises(RuntimeError):
        cache.get("k", lambda: (_ for _ in ()).throw(RuntimeError("db down")))
    assert cache.get("k", lambda: "v") == "v" and cache.metrics.counts["errors"] == 1


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"ttl_s": 0}, "StampedeConfig.ttl_s must be > 0 (got 0)"),
    ({"lock_timeout_s": -1}, "StampedeConfig.lock_timeout_s must be > 0 (got -1)"),
    ({"beta": -0.5}, "StampedeConfig.beta must be >= 0 (got -0.5)"),
    ({"poll_s": math.nan}, "StampedeConfig.poll_s must be > 0 (got nan)"),
])
def test_bad_config_names_the_field(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$".replace("(", r"\(").replace(")", r"\)")):
        StampedeConfig(**kwargs)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"strategy": "mutex"}, "strategy must be one of none, lock, xfetch, xfetch+lock"),
    ({"read_rate": 0}, "read_rate must be > 0"),
    ({"processes": 0}, "processes must be an integer >= 1"),
    ({"lock_timeout_s": 0}, "lock_timeout_s must be > 0"),
    ({"beta": -1}, "beta must be >= 0"),
])
def test_bad_scenario_names_the_parameter(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("+", r"\+")):
        Scenario(**kwargs)


def test_theory_functions_check_their_inputs():
    with pytest.raises(ValueError, match="fill_s must be > 0"):
        study.herd_size(10, 0)
    with pytest.raises(ValueError, match="processes must be an integer >= 1"):
        study.per_process_recomputes(10, 1, 0)
    with pytest.raises(ValueError, match="beta must be > 0"):
        study.stampede_probability(10, 1, 0, 10)


# ---------------------------------------------------------------- the well-kept library


def hammer(get, threads=16):
    """`threads` threads read one cold key at once, thread i calling get(i); what each got."""
    barrier, got = threading.Barrier(threads), []

    def reader(i):
        barrier.wait(5)
        got.append(get(i))

    workers = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(10)
    assert not any(t.is_alive() for t in workers)
    return got


def test_hand_made_single_flight_and_cachetools_condition_agree():
    def counting_loader(counter):
        def load():
            counter.append(1)
            time.sleep(0.05)
            return "report"
        return load

    ours_calls, theirs_calls = [], []
    group = SingleFlight()
    ours = hammer(lambda i: group.do("report", counting_loader(ours_calls)))
    theirs_fn = cached(TTLCache(maxsize=10, ttl=60),
                       condition=threading.Condition())(counting_loader(theirs_calls))
    theirs = hammer(lambda i: theirs_fn())
    assert ours == theirs == ["report"] * 16
    assert len(ours_calls) == len(theirs_calls) == 1


# ---------------------------------------------------------------- the study vs theory


def test_the_herd_is_one_plus_lambda_t_fill_per_expiry():
    counts = [summary(simulate(Scenario(seed=seed, duration_s=70)))["recomputes_per_expiry"]
              for seed in range(3)]
    assert np.mean(counts) == pytest.approx(study.herd_size(200, 0.5), rel=0.08)


def test_single_flight_leaves_one_recomputation_and_cuts_the_peak():
    base = Scenario(duration_s=35)
    herd, lock = summary(simulate(base)), summary(simulate(replace(base, strategy="lock")))
    assert lock["recomputes_per_expiry"] == 1 and lock["peak_concurrent"] == 1
    assert herd["peak_db_qps"] > 15 * lock["peak_db_qps"]


def test_per_process_locks_give_the_binomial_count():
    s = Scenario(strategy="lock", processes=4, read_rate=8, fill_s=0.5, ttl_s=5,
                 duration_s=560, seed=5)  # λt = 4, about 100 expiries
    measured = summary(simulate(s))["recomputes_per_expiry"]
    assert measured == pytest.approx(study.per_process_recomputes(8, 0.5, 4), rel=0.10)


@pytest.mark.parametrize("beta", [0.7, 1.0, 1.5])
def test_xfetch_stampede_probability_and_lead_match_the_thinned_poisson_model(beta):
    s = Scenario(strategy="xfetch", read_rate=20, fill_s=0.5, ttl_s=5, beta=beta,
                 duration_s=2000, seed=2)
    result = summary(simulate(s))
    p = study.stampede_probability(20, 0.5, beta, 5)
    se = math.sqrt(max(p * (1 - p), 0.01 * 0.99) / result["episodes"])
    assert result["expired_fraction"] == pytest.approx(p, abs=4 * se)
    assert result["mean_lead_s"] == pytest.approx(study.expected_lead_s(20, 0.5, beta, 5),
                                                  abs=0.3 * beta * 0.5)


def test_expected_lead_approaches_the_gumbel_form_for_long_ttls():
    lead = study.expected_lead_s(200, 0.5, 1.0, 1000)
    assert lead == pytest.approx(0.5 * (math.log(100) + study.EULER_GAMMA), rel=1e-3)


def test_a_lock_without_timeout_strands_every_reader_after_a_crash():
    crash = Scenario(strategy="lock", holder_crashes=True, duration_s=25)
    forever = summary(simulate(replace(crash, lock_timeout_s=None)))
    bounded = summary(simulate(crash))
    assert forever["stuck_reads"] > 2000 and bounded["stuck_reads"] == 1  # the dead holder
    assert bounded["p99_read_s"] < crash.lock_timeout_s + 2 * crash.fill_s


def test_background_xfetch_with_a_lock_recomputes_once_and_never_blocks_readers():
    result = summary(simulate(Scenario(strategy="xfetch+lock", duration_s=35)))
    assert result["recomputes_per_expiry"] == 1 and result["expired_fraction"] == 0
    assert result["p99_read_s"] == pytest.approx(0.001)


def test_runs_are_deterministic_and_share_traffic_across_strategies():
    a, b = simulate(Scenario(seed=3)), simulate(Scenario(seed=3))
    assert np.array_equal(a.reads.arrival, b.reads.arrival) and summary(a) == summary(b)
    lock = simulate(Scenario(seed=3, strategy="lock"))
    assert np.array_equal(a.reads.arrival, lock.reads.arrival)


def test_sweep_gives_intervals_per_grid_point():
    rows = study.sweep(Scenario(duration_s=15), {"strategy": ["none", "lock"]}, replications=2)
    assert [r["strategy"] for r in rows] == ["none", "lock"]
    assert rows[1]["recomputes_per_expiry"] == 1 and rows[0]["replications"] == 2


# ---------------------------------------------------------------- Redis


def test_redis_lock_is_shared_by_every_process_and_released_only_by_its_holder(redis_client):
    a, b = RedisLocks(redis_client), RedisLocks(redis_client)
    token = a.acquire("report", 5)
    assert token and b.acquire("report", 5) is None
    assert not b.release("report", "someone-else") and a.release("report", token)
    assert b.acquire("report", 0.05) and redis_client.pttl("lock:report") <= 50


def test_processes_sharing_a_redis_lock_recompute_once(redis_client):
    redis_client.delete("lock:cold")
    store, calls = {}, []

    def load():
        calls.append(1)
        time.sleep(0.05)
        return "report"

    caches = [StampedeCache(f"app{i}", StampedeConfig(beta=0), locks=RedisLocks(redis_client),
                            store=store) for i in range(4)]
    got = hammer(lambda i: caches[i % 4].get("cold", load))
    assert got == ["report"] * 16 and len(calls) == 1


def test_a_caller_that_wins_the_lock_after_another_recomputed_does_not_recompute_again():
    """The race: a caller reads "missing", another recomputes and lets go, then it wins the lock."""
    cache = StampedeCache("race", StampedeConfig(beta=0))
    grant = cache.locks.acquire

    def acquire_after_someone_else_filled(key, ttl_s):
        cache.store[key] = Entry("theirs", time.monotonic() + 60, 0.01)
        return grant(key, ttl_s)

    cache.locks.acquire = acquire_after_someone_else_filled
    assert cache.get("cold", lambda: "recomputed twice") == "theirs"
    assert cache.locks.acquire("cold", 1) is not None  # and the lock was let go


def test_over_time_bins_agree_with_the_summary():
    run = simulate(Scenario(duration_s=15))
    bins, numbers = study.over_time(run), summary(run)
    assert bins["in_flight"].max() == numbers["peak_concurrent"]
    assert bins["db_qps"].max() == pytest.approx(numbers["peak_db_qps"])
    assert np.nansum(bins["db_qps"]) * run.scenario.bin_s == pytest.approx(len(run.starts))
