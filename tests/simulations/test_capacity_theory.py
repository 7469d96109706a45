"""Staffing, load-balancing and operational-bound formulas in ``simulations.theory``.

These are identities and limits, checked exactly or against Erlang C; the lessons that use them
(load balancing, auto-scaling, concurrency limits) check them against simulation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulations import theory


@pytest.mark.parametrize(("arrival_rate", "target"), [(3.0, 0.5), (45.0, 0.2), (400.0, 0.05)])
def test_min_servers_is_the_first_count_that_meets_the_target(arrival_rate, target):
    servers = theory.min_servers(arrival_rate, 1.0, target)
    assert theory.erlang_c(arrival_rate, 1.0, servers) <= target
    if servers - 1 > arrival_rate:  # one fewer is still stable, so it must miss the target
        assert theory.erlang_c(arrival_rate, 1.0, servers - 1) > target


def test_square_root_staffing_approaches_the_halfin_whitt_limit():
    beta = 1.0
    limit = theory.halfin_whitt_wait_probability(beta)
    errors = []
    for load in (100.0, 10_000.0):
        servers = load + beta * math.sqrt(load)  # an integer for these loads
        assert servers == theory.square_root_staffing(load, beta)
        errors.append(abs(theory.erlang_c(load, 1.0, int(servers)) - limit))
    assert errors[1] < errors[0] / 5 and errors[1] < 0.002


def test_supermarket_tail_is_doubly_exponential_for_two_choices():
    load = 0.9
    assert [theory.supermarket_tail(load, i, 1) for i in range(4)] == pytest.approx(
        [1, 0.9, 0.81, 0.729])
    assert [theory.supermarket_tail(load, i, 2) for i in range(4)] == pytest.approx(
        [1, 0.9, 0.9**3, 0.9**7])
    assert theory.supermarket_tail(load, 3, 3) == pytest.approx(0.9**13)


@pytest.mark.parametrize("load", [0.3, 0.9, 0.99])
def test_supermarket_with_one_choice_is_mm1(load):
    assert theory.supermarket_mean_response(load, 1, 2.0) == pytest.approx(
        theory.mm1_mean_response(2.0 * load, 2.0), rel=1e-9)
    assert theory.supermarket_mean_response(load, 2) < theory.supermarket_mean_response(load, 1)


def test_max_load_with_two_choices_grows_more_slowly():
    bins = np.array([10**3, 10**6])
    one = [theory.max_load_estimate(int(n), 1) for n in bins]
    two = [theory.max_load_estimate(int(n), 2) for n in bins]
    assert two[1] / two[0] < one[1] / one[0]
    assert theory.max_load_estimate(10**6, 4) == pytest.approx(two[1] / 2)


@pytest.mark.parametrize("think_time", [0.0, 0.5])
def test_operational_bounds_meet_at_the_knee_and_agree_with_littles_law(think_time):
    total, bottleneck = 0.2, 0.05
    knee = theory.knee_population(total, bottleneck, think_time)
    assert theory.throughput_bound(knee, total, bottleneck, think_time) == pytest.approx(
        1 / bottleneck)
    assert theory.throughput_bound(1, total, bottleneck, think_time) == pytest.approx(
        1 / (total + think_time))
    for population in (1, knee / 2, knee, 2 * knee, 50):
        x = theory.throughput_bound(population, total, bottleneck, think_time)
        r = theory.response_bound(population, total, bottleneck, think_time)
        assert population == pytest.approx(x * (r + think_time))  # N = X·(R + Z)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: theory.min_servers(10, 1, 0), "max_wait_probability"),
    (lambda: theory.square_root_staffing(10, -1), "beta"),
    (lambda: theory.supermarket_tail(1.0, 2), "load"),
    (lambda: theory.supermarket_tail(0.5, 2, 0), "choices"),
    (lambda: theory.max_load_estimate(2, 2), "bins"),
    (lambda: theory.throughput_bound(4, 0.1, 0.2), "bottleneck_demand"),
    (lambda: theory.knee_population(0.1, 0.05, -1), "think_time"),
])
def test_bad_input_names_the_parameter(call, message):
    with pytest.raises(ValueError, match=message):
        call()
