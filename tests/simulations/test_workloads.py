"""Arrival processes produce the rates they promise; Zipf keys follow their probabilities.

Count tolerances are 5 standard deviations of the count: sqrt(mean) for Poisson counts, and for
the two-state MMPP sqrt(IDC * mean) with its limiting index of dispersion
IDC = 1 + 2 r1 r2 (l1 - l2)^2 / ((r1 + r2)^2 (l1 r2 + l2 r1)) (switching rates r1, r2).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulations.workloads import (
    BurstyArrivals,
    ConstantArrivals,
    PoissonArrivals,
    TimeVaryingArrivals,
    ZipfKeys,
)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _count_ok(count: int, expected: float, idc: float = 1.0) -> bool:
    return abs(count - expected) < 5 * math.sqrt(idc * expected)


def test_poisson_count_over_a_horizon() -> None:
    t = PoissonArrivals(50.0).times(_rng(1), horizon=2_000.0)
    assert np.all(np.diff(t) >= 0) and t.min() >= 0 and t.max() < 2_000.0
    assert _count_ok(len(t), 50.0 * 2_000.0)


def test_poisson_gaps_are_exponential() -> None:
    gaps = np.diff(PoissonArrivals(4.0).times(_rng(2), n=200_000), prepend=0.0)
    assert abs(gaps.mean() - 0.25) < 5 * 0.25 / math.sqrt(len(gaps))
    assert gaps.var() / gaps.mean() ** 2 == pytest.approx(1.0, abs=0.03)


def test_n_and_horizon_together_stop_at_whichever_comes_first() -> None:
    rng = _rng(3)
    assert len(PoissonArrivals(10.0).times(rng, n=50, horizon=1_000.0)) == 50
    short = PoissonArrivals(10.0).times(rng, n=10_000, horizon=5.0)
    assert len(short) < 10_000 and short.max() < 5.0


def test_constant_arrivals_are_evenly_spaced() -> None:
    t = ConstantArrivals(4.0).times(_rng(), horizon=2.0)
    assert t.tolist() == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
    assert ConstantArrivals(2.0).times(_rng(), n=3).tolist() == [0.5, 1.0, 1.5]


def test_bursty_long_run_rate_and_burstiness() -> None:
    process = BurstyArrivals(rate_on=100.0, mean_on_s=1.0, mean_off_s=4.0)
    assert process.mean_rate == pytest.approx(20.0)
    horizon = 20_000.0
    t = process.times(_rng(4), horizon=horizon)
    r1, r2, l1, l2 = 1 / 1.0, 1 / 4.0, 100.0, 0.0
    idc = 1 + 2 * r1 * r2 * (l1 - l2) ** 2 / ((r1 + r2) ** 2 * (l1 * r2 + l2 * r1))
    assert _count_ok(len(t), 20.0 * horizon, idc)
    gaps = np.diff(t)
    assert gaps.var() / gaps.mean() ** 2 > 2.0  # far burstier than Poisson (scv 1)


def test_bursty_with_n_returns_exactly_n_sorted() -> None:
    t = BurstyArrivals(10.0, 0.5, 0.5, rate_off=1.0).times(_rng(5), n=1_000)
    assert len(t) == 1_000 and np.all(np.diff(t) >= 0)


def test_step_rate_changes_at_the_step() -> None:
    process = TimeVaryingArrivals.step(rate_before=10.0, rate_after=40.0, at_s=500.0)
    t = process.times(_rng(6), horizon=1_000.0)
    assert _count_ok(int(np.sum(t < 500.0)), 10.0 * 500.0)
    assert _count_ok(int(np.sum(t >= 500.0)), 40.0 * 500.0)
    assert process.rate_at(np.array([499.0, 500.0])).tolist() == [10.0, 40.0]


def test_ramp_rate_interpolates() -> None:
    process = TimeVaryingArrivals.ramp(0.0, 100.0, start_s=10.0, end_s=20.0)
    assert process.rate_at(np.array([0.0, 15.0, 30.0])).tolist() == [0.0, 50.0, 100.0]
    t = process.times(_rng(7), horizon=40.0)
    assert np.sum(t < 10.0) == 0
    assert _count_ok(int(np.sum((t >= 10.0) & (t < 20.0))), 500.0)


def test_diurnal_peak_half_has_more_arrivals_than_trough_half() -> None:
    process = TimeVaryingArrivals.diurnal(mean_rate=20.0, amplitude=0.5, period_s=100.0)
    t = process.times(_rng(8), horizon=10_000.0)
    phase = np.mod(t, 100.0)
    peak_half = np.sum((phase < 25.0) | (phase >= 75.0))
    # expected arrivals in the peak half per period: 20 * (50 + 0.5 * 100 / pi)
    assert _count_ok(int(peak_half), 100 * 20.0 * (50.0 + 50.0 / math.pi))
    assert _count_ok(len(t), 20.0 * 10_000.0)


def test_thinning_refuses_a_rate_above_the_peak() -> None:
    process = TimeVaryingArrivals(lambda t: np.full(np.shape(t), 2.0), peak_rate=1.0)
    with pytest.raises(ValueError, match=r"rate\(t\) must stay in \[0, peak_rate=1\]"):
        process.times(_rng(), horizon=100.0)


def test_zipf_probabilities() -> None:
    keys = ZipfKeys(1_000, 0.8)
    p = keys.probabilities
    assert p.sum() == pytest.approx(1.0)
    assert np.all(np.diff(p) < 0)
    assert p[0] / p[1] == pytest.approx(2**0.8)
    assert keys.top_share(10) == pytest.approx(p[:10].sum())
    assert keys.top_share(0) == 0.0
    assert np.allclose(ZipfKeys(4, 0.0).probabilities, 0.25)


def test_zipf_sample_frequencies() -> None:
    keys = ZipfKeys(100, 1.0)
    n = 200_000
    draws = keys.sample(_rng(9), n)
    assert draws.min() >= 0 and draws.max() < 100
    for k in (0, 1, 9, 99):
        p = keys.probabilities[k]
        assert abs(np.mean(draws == k) - p) < 5 * math.sqrt(p * (1 - p) / n)
    assert isinstance(keys.sample(_rng()), int)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: PoissonArrivals(-1.0), "rate must be > 0 (got -1.0)"),
        (lambda: PoissonArrivals(1.0).times(_rng()), "times needs n (a count) or horizon"),
        (lambda: PoissonArrivals(1.0).times(_rng(), horizon=0), "horizon must be > 0 (got 0)"),
        (lambda: ConstantArrivals(1.0).times(_rng(), n=-1), "n must be an integer >= 0"),
        (lambda: BurstyArrivals(1.0, 0.0, 1.0), "mean_on_s must be > 0 (got 0.0)"),
        (lambda: TimeVaryingArrivals.diurnal(1.0, 1.5, 10.0), "amplitude must be in [0, 1]"),
        (lambda: TimeVaryingArrivals.ramp(1.0, 2.0, 5.0, 5.0), "end_s must be > 5 (got 5.0)"),
        (lambda: ZipfKeys(0, 1.0), "n_keys must be an integer >= 1 (got 0)"),
        (lambda: ZipfKeys(10, -0.5), "alpha must be >= 0 (got -0.5)"),
    ],
)
def test_bad_parameters_are_named(call, message: str) -> None:
    with pytest.raises(ValueError) as info:
        call()
    assert message in str(info.value)
