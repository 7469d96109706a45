"""Turning request records into the numbers a lesson plots.

Like a shop manager's end-of-day report: how many customers came, how many were served, turned
away or gave up; how long the slowest one in a hundred waited (p99); how busy the clerks were;
how long the line was on average. Everything here reads a ``RequestTable`` (or plain arrays) and
returns floats or arrays: percentiles, time-weighted averages, utilisation, warm-up deletion,
confidence intervals across independent replications (Student t, computed without scipy) and
per-time-bin series for plots over time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from patterns.checks import check_int, check_non_negative, check_positive, check_range
from simulations.records import Outcome, RequestTable

__all__ = [
    "PERCENTILES",
    "confidence_interval",
    "drop_warmup",
    "goodput_over_time",
    "latency_over_time",
    "latency_percentiles",
    "number_in_system_over_time",
    "occupancy",
    "per_bin",
    "queue_length_over_time",
    "rate_over_time",
    "summarize",
    "t_quantile",
    "time_average",
    "utilisation",
]

PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0, 99.9)


def _percentile_key(q: float) -> str:
    """50 -> 'latency_p50_s', 99.9 -> 'latency_p999_s'."""
    return f"latency_p{q:g}_s".replace(".", "")


def latency_percentiles(
    latencies: np.ndarray, percentiles: Sequence[float] = PERCENTILES
) -> dict[str, float]:
    """Percentiles of ``latencies`` (NaN entries ignored) keyed like ``latency_p99_s``."""
    qs = [check_range("percentile", q, 0.0, 100.0) for q in percentiles]
    values = np.asarray(latencies, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return {_percentile_key(q): math.nan for q in qs}
    values = np.percentile(values, qs)
    return {_percentile_key(q): float(v) for q, v in zip(qs, values, strict=True)}


def drop_warmup(
    table: RequestTable, *, time_s: float | None = None, count: int | None = None
) -> RequestTable:
    """Remove the start-up transient: rows arriving before ``time_s``, or the first ``count``."""
    if (time_s is None) == (count is None):
        raise ValueError(
            f"drop_warmup needs exactly one of time_s or count (got {time_s!r}, {count!r})")
    if time_s is not None:
        return table.select(table.arrival >= check_non_negative("time_s", time_s))
    order = np.argsort(table.arrival, kind="stable")
    return table.select(np.sort(order[check_int("count", count, 0):]))


def occupancy(enter: np.ndarray, leave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How many items are present over time, given when each entered and left.

    Returns ``(times, counts)``: ``counts[i]`` items are present from ``times[i]`` until
    ``times[i+1]``. A NaN ``leave`` means the item never left; a NaN ``enter`` is skipped, and so
    is an item that leaves the moment it enters. At equal times, leaves count before enters,
    so a server handed from one request to the next never shows two at once.
    """
    enter, leave = np.asarray(enter, dtype=float), np.asarray(leave, dtype=float)
    entered = ~np.isnan(enter) & ~(enter == leave)
    left = entered & ~np.isnan(leave)
    times = np.concatenate((enter[entered], leave[left]))
    steps = np.concatenate((np.ones(entered.sum()), -np.ones(left.sum())))
    order = np.lexsort((steps, times))
    return times[order], np.cumsum(steps[order])


def time_average(times: np.ndarray, counts: np.ndarray, start_s: float, end_s: float) -> float:
    """Time-weighted mean of a step function (see ``occupancy``) over [start_s, end_s)."""
    start = check_non_negative("start_s", start_s)
    end = check_range("end_s", end_s, start, low_open=True)
    if len(times) == 0:
        return 0.0
    edges = np.clip(np.append(times, end), start, end)
    return float(np.sum(counts * np.diff(edges)) / (end - start))


def queue_length_over_time(table: RequestTable) -> tuple[np.ndarray, np.ndarray]:
    """Requests waiting for a server over time, as ``(times, counts)``.

    A request neither started nor answered when the run stopped counts as waiting to the end.
    """
    never_queued = np.isnan(table.start) & ~np.isnan(table.end)  # rejected or failed fast
    return occupancy(table.arrival, np.where(never_queued, table.arrival, table.start))


def number_in_system_over_time(table: RequestTable) -> tuple[np.ndarray, np.ndarray]:
    """Requests present (waiting or in service) over time, as ``(times, counts)``."""
    return occupancy(table.arrival, table.end)


def utilisation(table: RequestTable, servers: int, start_s: float, end_s: float) -> float:
    """Busy server time in [start_s, end_s) divided by servers * (end_s - start_s).

    A request still in service at the end counts as busy until ``end_s``.
    """
    servers = check_int("servers", servers, 1)
    start = check_non_negative("start_s", start_s)
    end = check_range("end_s", end_s, start, low_open=True)
    served = ~np.isnan(table.start)
    busy_from = np.maximum(table.start[served], start)
    busy_to = np.minimum(np.nan_to_num(table.end[served], nan=end), end)
    return float(np.clip(busy_to - busy_from, 0.0, None).sum() / (servers * (end - start)))


def summarize(
    table: RequestTable,
    *,
    start_s: float | None = None,
    end_s: float | None = None,
    servers: int | None = None,
    slo_s: float | None = None,
) -> dict[str, float]:
    """The standard report for requests arriving in [start_s, end_s).

    The window defaults to the first through the last arrival in ``table`` (so after
    ``drop_warmup`` it starts where the warm-up ended).

    - ``requests``, ``arrival_rate_per_s``
    - ``throughput_per_s``: requests answered (OK, TIMEOUT or ERROR; not REJECTED) per second
    - ``goodput_per_s``: OK requests per second (within ``slo_s`` if given)
    - ``ok_fraction``, ``rejected_fraction``, ``timeout_fraction``, ``error_fraction``,
      ``in_flight_fraction``
    - ``latency_mean_s``, ``latency_p50_s``, ``latency_p90_s``, ``latency_p99_s``,
      ``latency_p999_s`` over OK requests; ``wait_mean_s`` (queueing delay of OK requests)
    - ``mean_in_system`` (time-weighted, all rows) and, with ``servers``, ``utilisation``
    """
    if start_s is None:
        start_s = float(table.arrival.min()) if len(table) else 0.0
    start = check_non_negative("start_s", start_s)
    if end_s is None:  # just after the last arrival
        last = float(table.arrival.max()) if len(table) else start
        end_s = float(np.nextafter(max(last, start), math.inf))
    end = check_range("end_s", end_s, start, low_open=True)
    duration = end - start
    window = table.select((table.arrival >= start) & (table.arrival < end))
    n = len(window)
    ok = window.has(Outcome.OK)
    latency = window.latency
    good = ok if slo_s is None else ok & (latency <= check_positive("slo_s", slo_s))
    answered = window.has(Outcome.OK, Outcome.TIMEOUT, Outcome.ERROR)

    def fraction(outcome: Outcome) -> float:
        return float(np.mean(window.outcome == outcome)) if n else math.nan

    report = {
        "requests": float(n),
        "arrival_rate_per_s": n / duration,
        "throughput_per_s": float(answered.sum()) / duration,
        "goodput_per_s": float(good.sum()) / duration,
        "ok_fraction": fraction(Outcome.OK),
        "rejected_fraction": fraction(Outcome.REJECTED),
        "timeout_fraction": fraction(Outcome.TIMEOUT),
        "error_fraction": fraction(Outcome.ERROR),
        "in_flight_fraction": fraction(Outcome.IN_FLIGHT),
        "latency_mean_s": float(latency[ok].mean()) if ok.any() else math.nan,
        **latency_percentiles(latency[ok]),
        "wait_mean_s": float(np.nanmean(window.wait[ok])) if ok.any() else math.nan,
        "mean_in_system": time_average(*number_in_system_over_time(table), start, end),
    }
    if servers is not None:
        report["utilisation"] = utilisation(table, servers, start, end)
    return report


def _t_two_sided_mass(theta: float, df: int) -> float:
    """P(|T| <= sqrt(df) tan(theta)) for Student t with integer ``df`` (exact series)."""
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 0:
        term = total = 1.0
        for k in range(1, df // 2):
            term *= c2 * (2 * k - 1) / (2 * k)
            total += term
        return s * total
    if df == 1:
        return 2.0 * theta / math.pi
    term = total = 1.0
    for k in range(1, (df - 1) // 2):
        term *= c2 * (2 * k) / (2 * k + 1)
        total += term
    return 2.0 / math.pi * (theta + s * math.cos(theta) * total)


def t_quantile(p: float, df: int) -> float:
    """The p-quantile of Student's t with ``df`` degrees of freedom (e.g. 0.975, 9 -> 2.262)."""
    p = check_range("p", p, 0.0, 1.0, low_open=True, high_open=True)
    df = check_int("df", df, 1)
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    target, low, high = 2.0 * p - 1.0, 0.0, math.pi / 2
    for _ in range(100):  # bisection on the angle theta = atan(t / sqrt(df))
        mid = (low + high) / 2
        low, high = (mid, high) if _t_two_sided_mass(mid, df) < target else (low, mid)
    return math.sqrt(df) * math.tan((low + high) / 2)


def confidence_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """(mean, half-width) of a ``level`` t-interval from independent replications.

    The half-width is NaN with a single value (no spread to estimate from).
    """
    level = check_range("level", level, 0.0, 1.0, low_open=True, high_open=True)
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        raise ValueError("confidence_interval needs at least one value (got none)")
    if len(x) == 1:
        return float(x[0]), math.nan
    half = t_quantile(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean()), float(half)


def _bin_edges(bin_s: float, start_s: float, end_s: float) -> np.ndarray:
    """Edges start, start + bin_s, ... up to end (the last bin may be shorter)."""
    bin_s = check_positive("bin_s", bin_s)
    start = check_non_negative("start_s", start_s)
    end = check_range("end_s", end_s, start, low_open=True)
    edges = np.arange(start, end, bin_s)
    return np.append(edges, end) if end - edges[-1] > bin_s * 1e-9 else np.append(edges[:-1], end)


def percentile_of(percentile: float) -> Callable[[np.ndarray], float]:
    """The statistic "the ``percentile``-th percentile of these values", for :func:`per_bin`."""
    q = check_range("percentile", percentile, 0.0, 100.0)
    return lambda values: float(np.percentile(values, q))


def per_bin(
    times: np.ndarray,
    values: np.ndarray,
    bin_s: float,
    start_s: float,
    end_s: float,
    statistic: Callable[[np.ndarray], float],
) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``statistic`` to the values whose times fall in each bin of width ``bin_s``.

    Returns ``(bin_midpoints, stats)``; empty bins give NaN. The last bin ends at ``end_s``
    and may be shorter.
    """
    edges = _bin_edges(bin_s, start_s, end_s)
    times, values = np.asarray(times, dtype=float), np.asarray(values, dtype=float)
    which = np.searchsorted(edges, times, side="right") - 1
    inside = (times >= edges[0]) & (times < edges[-1])
    stats = np.full(len(edges) - 1, math.nan)
    order = np.argsort(which[inside], kind="stable")
    grouped = values[inside][order]
    bounds = np.searchsorted(which[inside][order], np.arange(len(edges)))
    for i in range(len(edges) - 1):
        if bounds[i + 1] > bounds[i]:
            stats[i] = statistic(grouped[bounds[i]: bounds[i + 1]])
    return (edges[:-1] + edges[1:]) / 2, stats


def rate_over_time(
    times: np.ndarray, bin_s: float, start_s: float, end_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Events per second in each time bin (e.g. arrivals or completions)."""
    mids, counts = per_bin(times, np.ones(len(times)), bin_s, start_s, end_s, np.sum)
    return mids, np.nan_to_num(counts) / np.diff(_bin_edges(bin_s, start_s, end_s))


def latency_over_time(
    table: RequestTable, bin_s: float, start_s: float, end_s: float, percentile: float = 99.0
) -> tuple[np.ndarray, np.ndarray]:
    """The ``percentile`` of OK latency among requests arriving in each time bin (s)."""
    ok = table.has(Outcome.OK)
    return per_bin(table.arrival[ok], table.latency[ok], bin_s, start_s, end_s,
                   percentile_of(percentile))


def goodput_over_time(
    table: RequestTable, bin_s: float, start_s: float, end_s: float, slo_s: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """OK answers per second (within ``slo_s`` if given), binned by the time they were answered."""
    good = table.has(Outcome.OK)
    if slo_s is not None:
        good &= table.latency <= check_positive("slo_s", slo_s)
    return rate_over_time(table.end[good], bin_s, start_s, end_s)
