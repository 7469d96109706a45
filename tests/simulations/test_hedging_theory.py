"""The hedged-request closed forms in simulations.theory against direct computation and sampling."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulations.theory import hedged_percentile, hedged_survival


def exp_tail(t: float) -> float:
    return math.exp(-max(t, 0.0) / 0.01)


def test_hedged_survival_is_the_product_of_two_tails_beyond_the_delay():
    assert hedged_survival(exp_tail, 0.01, 0.02) == exp_tail(0.01)
    assert hedged_survival(exp_tail, 0.05, 0.02) == pytest.approx(math.exp(-5) * math.exp(-3))
    assert hedged_survival(exp_tail, 0.05, math.inf) == exp_tail(0.05)


def test_hedged_percentile_matches_sampling_and_the_fanout_form():
    rng = np.random.default_rng(3)
    first, second = rng.exponential(0.01, 400_000), rng.exponential(0.01, 400_000)
    latency = np.where(first > 0.02, np.minimum(first, 0.02 + second), first)
    # p99: 4,000 samples above it; the quantile's relative standard error is about
    # sqrt(q (1 - q) / n) / (f(x) x) ~ 1 %, so 3 % is three standard errors.
    assert hedged_percentile(exp_tail, 0.99, 0.02) == pytest.approx(
        np.percentile(latency, 99), rel=0.03)
    # fan-out 1: no change; fan-out N: the (1 - (1 - q)... ) form is the N-th power of the CDF
    x = hedged_percentile(exp_tail, 0.9, 0.02, fanout=10)
    assert (1 - hedged_survival(exp_tail, x, 0.02)) ** 10 == pytest.approx(0.9, rel=1e-9)


def test_bad_inputs_name_the_parameter():
    with pytest.raises(ValueError, match="delay_s must be"):
        hedged_survival(exp_tail, 0.01, -1)
    with pytest.raises(ValueError, match="fanout must be"):
        hedged_percentile(exp_tail, 0.9, 0.01, fanout=0)
