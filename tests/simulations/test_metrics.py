"""Metrics on hand-made tables with answers worked out by hand, plus CI coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulations.metrics import (
    confidence_interval,
    drop_warmup,
    goodput_over_time,
    latency_over_time,
    latency_percentiles,
    number_in_system_over_time,
    occupancy,
    per_bin,
    queue_length_over_time,
    rate_over_time,
    summarize,
    t_quantile,
    time_average,
    utilisation,
)
from simulations.records import Outcome, RequestTable

NAN = math.nan
OK, REJECTED, TIMEOUT, ERROR = Outcome.OK, Outcome.REJECTED, Outcome.TIMEOUT, Outcome.ERROR


def _table(rows: list[tuple[float, float, float, int]]) -> RequestTable:
    arrival, start, end, outcome = (np.array(c, dtype=float) for c in zip(*rows, strict=True))
    n = len(rows)
    return RequestTable(arrival, start, end, outcome.astype(np.int8), np.zeros(n, np.int32),
                        np.full(n, -1, np.int16), np.full(n, -1, np.int32))


# arrival, start, end, outcome
FOUR = _table([
    (0.0, 0.0, 1.0, OK),  # latency 1
    (2.0, 3.0, 5.0, OK),  # latency 3, waited 1
    (4.0, NAN, 4.0, REJECTED),
    (6.0, 6.0, 8.0, TIMEOUT),  # as a client log would show a give-up after 2 s
])


def test_percentiles_of_one_to_hundred() -> None:
    p = latency_percentiles(np.arange(1.0, 101.0))
    assert p == pytest.approx({"latency_p50_s": 50.5, "latency_p90_s": 90.1,
                               "latency_p99_s": 99.01, "latency_p999_s": 99.901})
    assert math.isnan(latency_percentiles(np.array([NAN]))["latency_p99_s"])


def test_summarize_hand_made_table() -> None:
    s = summarize(FOUR, start_s=0.0, end_s=10.0)
    assert s["requests"] == 4
    assert s["arrival_rate_per_s"] == pytest.approx(0.4)
    assert s["throughput_per_s"] == pytest.approx(0.3)  # OK, OK, TIMEOUT
    assert s["goodput_per_s"] == pytest.approx(0.2)
    assert (s["ok_fraction"], s["rejected_fraction"], s["timeout_fraction"]) == (0.5, 0.25, 0.25)
    assert s["error_fraction"] == 0.0 and s["in_flight_fraction"] == 0.0
    assert s["latency_mean_s"] == pytest.approx(2.0)
    assert s["wait_mean_s"] == pytest.approx(0.5)
    assert s["mean_in_system"] == pytest.approx((1 + 3 + 2) / 10)
    assert summarize(FOUR, start_s=0.0, end_s=10.0, slo_s=2.0)["goodput_per_s"] == 0.1
    assert summarize(FOUR, start_s=0.0, end_s=10.0, servers=1)["utilisation"] == 0.5


def test_summarize_defaults_to_the_arrival_span() -> None:
    s = summarize(FOUR)
    assert s["requests"] == 4
    assert s["arrival_rate_per_s"] == pytest.approx(4 / 6.0)


def test_utilisation_clips_to_the_window_and_counts_unfinished_service() -> None:
    table = _table([(0.0, 0.0, 2.0, OK), (0.0, 1.0, 3.0, OK), (3.0, 3.0, NAN, 0)])
    assert utilisation(table, 2, 0.0, 4.0) == pytest.approx((2 + 2 + 1) / 8)
    assert utilisation(table, 2, 1.0, 2.0) == pytest.approx(1.0)


def test_occupancy_and_time_average() -> None:
    times, counts = occupancy(np.array([0.0, 1.0]), np.array([2.0, 3.0]))
    assert times.tolist() == [0.0, 1.0, 2.0, 3.0] and counts.tolist() == [1, 2, 1, 0]
    assert time_average(times, counts, 0.0, 4.0) == pytest.approx(1.0)
    assert time_average(times, counts, 1.0, 2.0) == pytest.approx(2.0)
    assert time_average(np.array([]), np.array([]), 0.0, 1.0) == 0.0


def test_queue_and_system_over_time() -> None:
    t, n = queue_length_over_time(FOUR)
    assert time_average(t, n, 0.0, 10.0) == pytest.approx(0.1)  # one second of waiting
    t, n = number_in_system_over_time(FOUR)
    assert n.max() == 1 and n[-1] == 0


def test_drop_warmup_by_time_and_count() -> None:
    assert drop_warmup(FOUR, time_s=2.0).arrival.tolist() == [2.0, 4.0, 6.0]
    assert drop_warmup(FOUR, count=3).arrival.tolist() == [6.0]
    with pytest.raises(ValueError, match="exactly one of time_s or count"):
        drop_warmup(FOUR)


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    [(0.975, 1, 12.706), (0.975, 2, 4.303), (0.975, 10, 2.228), (0.975, 30, 2.042),
     (0.95, 9, 1.833), (0.995, 4, 4.604), (0.9, 100, 1.290)],
)
def test_t_quantile_matches_tables(p: float, df: int, expected: float) -> None:
    assert t_quantile(p, df) == pytest.approx(expected, abs=6e-4)
    assert t_quantile(1 - p, df) == pytest.approx(-t_quantile(p, df))


def test_t_quantile_median_and_bad_input() -> None:
    assert t_quantile(0.5, 3) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match=r"p must be in \(0, 1\) \(got 1.0\)"):
        t_quantile(1.0, 3)
    with pytest.raises(ValueError, match=r"df must be an integer >= 1 \(got 2.5\)"):
        t_quantile(0.9, 2.5)


def test_confidence_interval_by_hand() -> None:
    mean, half = confidence_interval([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert half == pytest.approx(4.303 * 1.0 / math.sqrt(3), rel=1e-3)
    assert math.isnan(confidence_interval([5.0])[1])
    with pytest.raises(ValueError, match="at least one value"):
        confidence_interval([])


def test_confidence_interval_coverage_is_near_nominal() -> None:
    # 2,000 intervals from 5 normal draws each: coverage within 4 binomial SDs of 0.95
    rng = np.random.default_rng(7)
    trials = 2_000
    hits = 0
    for _ in range(trials):
        mean, half = confidence_interval(rng.normal(3.0, 2.0, 5), 0.95)
        hits += abs(mean - 3.0) <= half
    assert abs(hits / trials - 0.95) < 4 * math.sqrt(0.95 * 0.05 / trials)


def test_per_bin_and_rates() -> None:
    mids, stats = per_bin(np.array([0.5, 1.5, 1.6, 3.5]), np.array([1.0, 2.0, 4.0, 8.0]),
                          1.0, 0.0, 4.0, np.mean)
    assert mids.tolist() == [0.5, 1.5, 2.5, 3.5]
    assert stats[:2].tolist() == [1.0, 3.0] and math.isnan(stats[2]) and stats[3] == 8.0
    mids, rate = rate_over_time(np.array([0.1, 0.2, 2.5]), 2.0, 0.0, 3.0)
    assert mids.tolist() == [1.0, 2.5]
    assert rate.tolist() == [1.0, 1.0]  # 2 events in 2 s; 1 event in the last 1 s


def test_latency_and_goodput_over_time() -> None:
    mids, p99 = latency_over_time(FOUR, 5.0, 0.0, 10.0, percentile=100.0)
    assert p99[0] == 3.0 and math.isnan(p99[1])  # the TIMEOUT row is not an OK latency
    mids, goodput = goodput_over_time(FOUR, 5.0, 0.0, 10.0)
    assert goodput.tolist() == [0.2, 0.2]  # OK answers at 1 s and at 5 s
    assert goodput_over_time(FOUR, 5.0, 0.0, 10.0, slo_s=2.0)[1].tolist() == [0.2, 0.0]


def test_bad_windows_are_named() -> None:
    with pytest.raises(ValueError, match=r"end_s must be > 3 \(got 2.0\)"):
        utilisation(FOUR, 1, 3.0, 2.0)
    with pytest.raises(ValueError, match=r"bin_s must be > 0 \(got 0\)"):
        per_bin(np.array([1.0]), np.array([1.0]), 0, 0.0, 1.0, np.mean)
    with pytest.raises(ValueError, match=r"percentile must be in \[0, 100\] \(got 120\)"):
        latency_percentiles(np.array([1.0]), [120])
