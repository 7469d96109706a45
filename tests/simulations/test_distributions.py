"""Each distribution's samples have the mean and scv it was built with.

Tolerances come from the sample size: 5 standard errors, with the standard error of the sample
variance estimated from the sample's fourth central moment (n = 400,000, fixed seeds).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulations.distributions import (
    DISTRIBUTIONS,
    Bimodal,
    Deterministic,
    Distribution,
    Exponential,
    LogNormal,
    Pareto,
    make_distribution,
)

N = 400_000

# Pareto(shape=5) has a finite fourth moment, so its sample scv has a usable standard error.
FINITE_KURTOSIS = [
    Exponential(2.0),
    LogNormal(0.01, 2.0),
    Bimodal(1.0, 3.0),
    Bimodal(0.5, 0.5, slow_fraction=0.3),
    Pareto(1.0, shape=5.0),
    Pareto(3.0, scv=0.05),
]


@pytest.mark.parametrize("dist", [*FINITE_KURTOSIS, Pareto(1.0, scv=0.25)], ids=repr)
def test_sample_mean_matches_mean(dist: Distribution) -> None:
    x = dist.sample(np.random.default_rng(1), N)
    standard_error = x.std() / math.sqrt(N)
    assert abs(x.mean() - dist.mean) < 5 * standard_error


@pytest.mark.parametrize("dist", FINITE_KURTOSIS, ids=repr)
def test_sample_scv_matches_scv(dist: Distribution) -> None:
    x = dist.sample(np.random.default_rng(2), N)
    variance = x.var()
    fourth = np.mean((x - x.mean()) ** 4)
    se_scv = math.sqrt((fourth - variance**2) / N) / dist.mean**2
    se_scv += 2 * dist.scv * x.std() / math.sqrt(N) / dist.mean  # from the estimated mean
    assert abs(variance / x.mean() ** 2 - dist.scv) < 5 * se_scv


def test_deterministic_is_constant() -> None:
    d = Deterministic(0.25)
    assert np.all(d.sample(np.random.default_rng(0), 10) == 0.25)
    assert d.sample(np.random.default_rng(0)) == 0.25
    assert (d.scv, d.second_moment) == (0.0, 0.0625)


def test_scalar_and_vector_draws() -> None:
    rng = np.random.default_rng(3)
    for dist in [*FINITE_KURTOSIS, Deterministic(1.0)]:
        assert np.ndim(dist.sample(rng)) == 0
        assert dist.sample(rng, 7).shape == (7,)
        assert np.all(dist.sample(rng, 1000) >= 0)


def test_second_moment_is_mean_squared_times_one_plus_scv() -> None:
    assert Exponential(2.0).second_moment == pytest.approx(8.0)
    assert LogNormal(1.0, 3.0).second_moment == pytest.approx(4.0)


def test_bimodal_is_two_points_with_the_slow_fraction() -> None:
    b = Bimodal(1.0, 4.0, slow_fraction=0.2)
    x = b.sample(np.random.default_rng(4), N)
    assert set(np.unique(x)) == {b.fast, b.slow}
    p_slow = np.mean(x == b.slow)
    assert abs(p_slow - 0.2) < 5 * math.sqrt(0.2 * 0.8 / N)
    assert (1 - 0.2) * b.fast + 0.2 * b.slow == pytest.approx(1.0)


def test_pareto_tail_follows_the_power_law() -> None:
    p = Pareto(1.0, shape=1.5)
    assert p.scv == math.inf
    x = p.sample(np.random.default_rng(5), N)
    assert x.min() >= p.x_min
    for multiple in (2.0, 10.0, 100.0):
        expected = multiple ** -1.5
        observed = np.mean(x > p.x_min * multiple)
        assert abs(observed - expected) < 5 * math.sqrt(expected * (1 - expected) / N)


def test_pareto_scv_and_shape_agree() -> None:
    from_scv = Pareto(2.0, scv=0.5)
    assert Pareto(2.0, shape=from_scv.shape).scv == pytest.approx(0.5)


def test_make_distribution_builds_each_kind() -> None:
    assert isinstance(make_distribution("exponential", 1.0), Exponential)
    assert make_distribution("deterministic", 2.0, scv=0.0).mean == 2.0
    lognormal = make_distribution("lognormal", 0.5, scv=2.0)
    assert (lognormal.mean, lognormal.scv) == (0.5, 2.0)
    assert make_distribution("pareto", 1.0, scv=0.5).scv == pytest.approx(0.5)
    assert make_distribution("bimodal", 1.0, scv=2.0).scv == pytest.approx(2.0)
    assert set(DISTRIBUTIONS) == {"exponential", "deterministic", "lognormal", "bimodal",
                                  "pareto"}


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: make_distribution("gaussian", 1.0),
         "distribution must be one of exponential, deterministic, lognormal, bimodal, pareto "
         "(got 'gaussian')"),
        (lambda: make_distribution("lognormal", 1.0), "scv is required for the lognormal"),
        (lambda: make_distribution("exponential", 1.0, scv=2.0),
         "scv of the exponential distribution is fixed at 1 (got 2.0)"),
        (lambda: Exponential(-1.0), "mean must be > 0 (got -1.0)"),
        (lambda: LogNormal(1.0, 0.0), "scv must be > 0 (got 0.0)"),
        (lambda: Bimodal(1.0, 10.0), "scv must be in [0, 9] (got 10.0)"),
        (lambda: Bimodal(1.0, 1.0, slow_fraction=1.0), "slow_fraction must be in (0, 1)"),
        (lambda: Pareto(1.0), "Pareto needs exactly one of scv or shape"),
        (lambda: Pareto(1.0, shape=1.0), "shape must be > 1 (got 1.0)"),
    ],
)
def test_bad_parameters_are_named(call, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        call()
    assert fragment in str(info.value)
