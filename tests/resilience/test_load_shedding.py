"""Load shedding: the shedders, the simulation's behaviour, the priority M/M/1 closed forms, and
agreement with SimPy's PreemptiveResource."""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import replace

import numpy as np
import pytest

from patterns.resilience.load_shedding import (
    LoadShedder,
    OverloadedError,
    ProductionLoadShedder,
    ShedderConfig,
)
from simulations.experiments import replicate
from simulations.metrics import t_quantile
from simulations.resilience.load_shedding import (
    POLICIES,
    Scenario,
    nonpreemptive_response_time,
    preemptive_response_time,
    priority_mm1,
    simpy_preemptive_ends,
    simulate,
    summary,
    timeline,
    toolkit_preemptive_ends,
)
from simulations.theory import mm1_mean_response, mm1_response_percentile


def _shedder(**kwargs) -> tuple[LoadShedder, list[float]]:
    now = [0.0]
    return LoadShedder(kwargs.pop("max_wait_s", (1.0, 0.1)), kwargs.pop("workers", 2),
                       clock=lambda: now[0], **kwargs), now


def test_no_wait_is_estimated_while_a_worker_is_free() -> None:
    shedder, _ = _shedder(max_wait_s=(0.0, 0.0))
    assert shedder.admit(1) and shedder.admit(1)  # two workers, nothing queued yet
    assert shedder.estimated_wait_s() == pytest.approx(1.0)  # one completion at >= 1 per s
    assert not shedder.admit(1)


def test_wait_is_completions_ahead_over_the_recent_completion_rate() -> None:
    shedder, now = _shedder(max_wait_s=(100.0, 100.0), window_s=1.0)
    for _ in range(12):
        shedder.admit(0)
    for t in (0.1, 0.2, 0.3, 0.4):  # 4 completions in the last second
        now[0] = t
        shedder.done()
    now[0] = 0.5
    assert shedder.in_flight == 8
    assert shedder.estimated_wait_s() == pytest.approx((8 - 2 + 1) / 4.0)
    now[0] = 1.25  # the first two completions have left the window
    assert shedder.estimated_wait_s() == pytest.approx((8 - 2 + 1) / 2.0)


def test_lower_priority_is_shed_first() -> None:
    shedder, now = _shedder(max_wait_s=(1.0, 0.1))
    for _ in range(3):
        assert shedder.admit(0)
    shedder.done()  # 2 in flight on 2 workers, 1 completion per second: wait 1 s
    assert shedder.estimated_wait_s() == pytest.approx(1.0)
    assert not shedder.admit(1) and shedder.admit(0)
    assert shedder.admit(0) is False  # now 2 completions ahead: 2 s > 1 s
    assert shedder.shed == [1, 1] and shedder.admitted == [4, 0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_wait_s": ()}, "ShedderConfig.max_wait_s must be a non-empty sequence"),
        ({"max_wait_s": (1.0, -0.5)}, "ShedderConfig.max_wait_s[1] must be >= 0 (got -0.5)"),
        ({"workers": 0}, "ShedderConfig.workers must be an integer >= 1 (got 0)"),
        ({"window_s": 0}, "ShedderConfig.window_s must be > 0 (got 0)"),
    ],
)
def test_bad_shedder_config_is_named(kwargs, message: str) -> None:
    with pytest.raises(ValueError) as info:
        ShedderConfig(**kwargs)
    assert message in str(info.value)


def test_production_shedder_refuses_fails_over_and_counts(caplog) -> None:
    now = [0.0]
    shedder = ProductionLoadShedder("api", ShedderConfig((2.0, 0.0), workers=1),
                                    clock=lambda: now[0])
    with pytest.raises(ValueError, match=r"priority must be an integer in \[0, 1\] \(got 2\)"):
        shedder.admit(2)
    assert shedder.admit(0)  # holds the only worker
    with caplog.at_level(logging.INFO, logger="patterns.resilience.load_shedding"):
        assert shedder.call(lambda: "served", priority=0) == "served"  # waits 1 s <= 2 s
        assert shedder.admit(0)  # 1 completion seen, 1 ahead: 1 s
        with pytest.raises(OverloadedError, match="priority 1 shed"):
            shedder.call(lambda: "never", priority=1)  # 2 ahead: 2 s > 0 s
        assert shedder.call(lambda: "never", priority=1, fallback=lambda: "cached") == "cached"
    assert shedder.shedding == {1}
    assert [r.levelname for r in caplog.records] == ["WARNING"]  # logged once, not per request
    assert shedder.metrics.counts["shed_1"] == 2 and shedder.metrics.observed("call_seconds") == 1


def test_production_shedder_counts_add_up_under_threads() -> None:
    shedder = ProductionLoadShedder("api", ShedderConfig((0.01, 0.0), workers=4))
    calls = []

    def worker(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(300):
            try:
                shedder.call(lambda: calls.append(1), priority=int(rng.integers(2)))
            except OverloadedError:
                pass

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    c = shedder.metrics.counts
    assert sum(c[f"{kind}_{p}"] for kind in ("admitted", "shed") for p in (0, 1)) == 2400
    latencies = shedder.metrics.observed("call_seconds")
    assert c["admitted_0"] + c["admitted_1"] == len(calls) == latencies
    assert shedder.in_flight == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"discipline": "lifo"}, "discipline must be one of fifo, priority, preemptive"),
        ({"max_wait_s": (0.5,)}, "max_wait_s must be None or (critical, best effort)"),
        ({"max_wait_s": (0.5, -1)}, "max_wait_s (best effort) must be >= 0 (got -1)"),
        ({"offered_load": 0}, "offered_load must be > 0 (got 0)"),
        ({"critical_share": 1.5}, "critical_share must be in [0, 1] (got 1.5)"),
        ({"warmup_s": 40}, "warmup_s must be in [0, 30) (got 40)"),
        ({"surge": (20, 10, 2.0)}, "surge end must be > 20 (got 10)"),
        ({"discipline": "preemptive", "skip_expired": True}, "skip_expired needs discipline"),
    ],
)
def test_bad_scenario_is_named(kwargs, message: str) -> None:
    with pytest.raises(ValueError) as info:
        Scenario(**kwargs)
    assert message in str(info.value)


def _at(load: float, policy: str, **kwargs) -> dict[str, float]:
    return summary(simulate(replace(Scenario(offered_load=load, **kwargs), **POLICIES[policy])))


def test_goodput_collapses_past_load_one_without_shedding() -> None:
    capacity = Scenario().capacity_rps
    below, above = _at(0.8, "no shedding"), _at(1.5, "no shedding")
    assert below["goodput_rps"] > 0.95 * 0.8 * capacity
    assert above["goodput_rps"] < 0.05 * capacity  # the queue outgrows the 1 s timeout
    assert above["wasted_work"] > 0.8


def test_priority_shedding_keeps_goodput_and_the_critical_class() -> None:
    capacity = Scenario().capacity_rps
    for load in (1.5, 2.0):
        shed = _at(load, "shed by priority")
        alike = _at(load, "shed all alike")
        assert shed["goodput_rps"] > 0.9 * capacity
        assert shed["critical_success"] > 0.98 and shed["critical_shed"] == 0
        assert alike["critical_success"] < 0.7  # class-blind shedding drops critical work too
        assert shed["best_effort_shed"] > 0.4


def test_priority_queue_lowers_the_critical_tail_under_shedding() -> None:
    fifo = _at(1.5, "shed by priority")
    queued = _at(1.5, "by priority + priority queue")
    assert queued["critical_p99_s"] < 0.85 * fifo["critical_p99_s"]


def test_skipping_expired_requests_saves_work_without_shedding() -> None:
    plain = _at(1.5, "no shedding")
    skip = _at(1.5, "no shedding", skip_expired=True)
    assert skip["goodput_rps"] > plain["goodput_rps"] + 10
    assert skip["wasted_work"] < plain["wasted_work"]


def test_runs_are_deterministic_and_timeline_counts_match() -> None:
    scenario = Scenario(offered_load=0.7, surge=(10, 20, 1.8))
    first, second = simulate(scenario), simulate(scenario)
    assert summary(first) == summary(second)
    series = timeline(first, bin_s=1.0)
    assert series["offered_rps"].sum() == pytest.approx(len(first.requests))
    assert series["shed_rps"][:9].sum() < 0.05 * series["shed_rps"][11:20].sum()


# ---------------------------------------------------------------- theory vs simulation


def _interval(rows: list[dict], metric: str, k: float) -> tuple[float, float]:
    """Mean over replications and k standard errors of it."""
    values = np.array([row[metric] for row in rows])
    return values.mean(), k * values.std(ddof=1) / math.sqrt(len(values))


@pytest.mark.parametrize("other_rate", [0.2, 0.9])
def test_preemptive_top_class_is_an_mm1_of_its_own(other_rate: float) -> None:
    # mu = 1, lambda_0 = 0.3; with lambda_1 = 0.9 the total load is 1.2 and class 1 is unstable,
    # yet class 0's response time stays exponential with rate mu - lambda_0. Tolerance: the
    # 99.9 % t-interval over 10 replications (about 4 standard errors with 9 df).
    rows = replicate(priority_mm1, seed=11, replications=10, discipline="preemptive",
                     critical_rate=0.3, other_rate=other_rate)
    k = t_quantile(0.9995, 9)
    mean, half = _interval(rows, "critical_mean_s", k)
    assert abs(mean - mm1_mean_response(0.3, 1.0)) < half
    assert mm1_mean_response(0.3, 1.0) == pytest.approx(
        preemptive_response_time([0.3, other_rate], 1.0, 0))
    p99, half = _interval(rows, "critical_p99_s", k)
    assert abs(p99 - mm1_response_percentile(0.3, 1.0, 0.99)) < half


def test_cobham_formula_for_the_non_preemptive_top_class() -> None:
    rows = replicate(priority_mm1, seed=12, replications=10, discipline="priority",
                     critical_rate=0.3, other_rate=0.4)
    mean, half = _interval(rows, "critical_mean_s", t_quantile(0.9995, 9))
    assert abs(mean - nonpreemptive_response_time([0.3, 0.4], 1.0, 0)) < half


def test_priority_formulas_by_hand() -> None:
    # mu = 1, lambda = (0.3, 0.4): sigma_0 = 0.3, sigma_1 = 0.7
    assert preemptive_response_time([0.3, 0.4], 1.0, 0) == pytest.approx(1 / 0.7)
    assert preemptive_response_time([0.3, 0.4], 1.0, 1) == pytest.approx(
        1 / 0.7 + 0.7 / (0.7 * 0.3))
    assert nonpreemptive_response_time([0.3, 0.4], 1.0, 0) == pytest.approx(0.7 / 0.7 + 1)
    assert nonpreemptive_response_time([0.3, 0.4], 1.0, 1) == pytest.approx(
        0.7 / (0.7 * 0.3) + 1)
    # with one class both reduce to M/M/1
    assert preemptive_response_time([0.5], 1.0, 0) == pytest.approx(mm1_mean_response(0.5, 1))
    assert nonpreemptive_response_time([0.5], 1.0, 0) == pytest.approx(
        mm1_mean_response(0.5, 1))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: preemptive_response_time([0.6, 0.2], 0.5, 0), "classes 0..0 must offer load < 1"),
        (lambda: nonpreemptive_response_time([0.6, 0.5], 1.0, 0),
         "the total load must be < 1 for Cobham's formula (got 1.1)"),
        (lambda: preemptive_response_time([0.1], 1.0, 1), "cls must be an integer in [0, 0]"),
        (lambda: preemptive_response_time([0.1], 0.0, 0), "service_rate must be > 0 (got 0.0)"),
    ],
)
def test_theory_refuses_what_it_cannot_answer(call, message: str) -> None:
    with pytest.raises(ValueError) as info:
        call()
    assert message in str(info.value)


@pytest.mark.parametrize(("servers", "seed"), [(1, 1), (1, 2), (2, 3), (3, 4)])
def test_pool_agrees_with_simpy_preemptive_resource(servers: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 400
    arrivals = np.cumsum(rng.exponential(1 / (1.1 * servers), n))
    classes = rng.integers(0, 3, n)
    services = rng.exponential(1.0, n)
    ours = toolkit_preemptive_ends(arrivals, classes, services, servers)
    theirs = simpy_preemptive_ends(arrivals, classes, services, servers)
    assert not np.isnan(ours).any()
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-9)
