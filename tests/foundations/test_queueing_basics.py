"""The queueing-basics study (simulations.foundations.queueing_basics) against theory."""

from __future__ import annotations

import numpy as np
import pytest

from simulations import theory
from simulations.distributions import Exponential, LogNormal
from simulations.foundations.queueing_basics import (
    MEAN_SERVICE_S,
    SERVICE_RATE,
    exact_mean_response,
    run_queue,
    run_split,
)
from simulations.metrics import confidence_interval

REPLICATIONS = 8  # runs of 40,000 requests per point; the 95 % interval must cover theory


@pytest.mark.parametrize(("servers", "load"), [(1, 0.5), (4, 0.7)])
def test_run_queue_mean_response_covers_erlang_c(servers, load):
    means = [run_queue(np.random.default_rng(seed), load, servers)["latency_mean_s"]
             for seed in range(REPLICATIONS)]
    mean, half = confidence_interval(means)
    exact = theory.mmc_mean_response(load * servers * SERVICE_RATE, SERVICE_RATE, servers)
    assert abs(mean - exact) <= max(half, 0.01 * exact)


def test_run_split_queues_are_each_mm1():
    """Random splitting of a Poisson stream gives each of the c queues an M/M/1 at the same ρ."""
    means = [run_split(np.random.default_rng(seed), 0.6, 4)["latency_mean_s"]
             for seed in range(REPLICATIONS)]
    mean, half = confidence_interval(means)
    exact = theory.mm1_mean_response(0.6 * SERVICE_RATE, SERVICE_RATE)
    assert abs(mean - exact) <= max(half, 0.01 * exact)


def test_exact_mean_response_where_a_closed_form_exists():
    service = LogNormal(MEAN_SERVICE_S, 4.0)
    assert exact_mean_response(0.5, 1, service) == pytest.approx(
        theory.mg1_mean_response(0.5 * SERVICE_RATE, MEAN_SERVICE_S, 4.0))
    assert exact_mean_response(0.5, 3, Exponential(MEAN_SERVICE_S)) == pytest.approx(
        theory.mmc_mean_response(1.5 * SERVICE_RATE, SERVICE_RATE, 3))
    assert exact_mean_response(0.5, 3, service) is None  # M/G/c has no closed form
