"""Arrival processes and key popularity: who knocks on the door, when, and asking for what.

Picture the door of a shop. Customers may arrive at random but steady (Poisson), exactly every
few seconds (constant), in bursts when a bus pulls up (on-off / two-state MMPP), or at a rate
that changes through the day (step, ramp, diurnal). Each arrival process generates all its
arrival times at once with numpy, ``times(rng, n=..., horizon=...)``, so that a simulation only
has to replay them. ``ZipfKeys`` says which item each customer asks for: a few keys are very
popular, most are rarely asked for.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np

from patterns.checks import check_int, check_non_negative, check_positive, check_range

__all__ = [
    "ArrivalProcess",
    "BurstyArrivals",
    "ConstantArrivals",
    "PoissonArrivals",
    "TimeVaryingArrivals",
    "ZipfKeys",
]


class ArrivalProcess(ABC):
    """A stream of arrival instants starting at time 0."""

    @abstractmethod
    def rate_at(self, t: np.ndarray | float) -> np.ndarray:
        """Expected arrivals per second at time(s) ``t`` (the long-run mean if stationary)."""

    @abstractmethod
    def _window(self, rng: np.random.Generator, span: float) -> np.ndarray:
        """Sorted arrival times in [0, span)."""

    @abstractmethod
    def _guess_rate(self) -> float:
        """A rate used to size the first window when only ``n`` is given."""

    def times(
        self, rng: np.random.Generator, n: int | None = None, horizon: float | None = None
    ) -> np.ndarray:
        """Sorted arrival times (s): the first ``n`` of them, those before ``horizon``, or both.

        At least one of ``n`` and ``horizon`` is required.
        """
        if n is None and horizon is None:
            raise ValueError("times needs n (a count) or horizon (seconds) (got neither)")
        if n is not None:
            n = check_int("n", n, 0)
        if horizon is not None:
            horizon = check_positive("horizon", horizon)
        if n is None:
            return self._window(rng, horizon)
        span = (n + 5.0 * math.sqrt(n) + 10.0) / self._guess_rate()
        while True:
            if horizon is not None:
                span = min(span, horizon)
            t = self._window(rng, span)
            if len(t) >= n or (horizon is not None and span >= horizon):
                return t[:n]
            span *= 2.0


def _poisson_window(rng: np.random.Generator, rate: float, span: float) -> np.ndarray:
    """Homogeneous Poisson arrivals in [0, span): a Poisson count placed uniformly."""
    count = rng.poisson(rate * span)
    return np.sort(rng.random(count) * span)


class _SteadyRate(ArrivalProcess):
    """An arrival process whose rate never changes."""

    def __init__(self, rate: float) -> None:
        self.rate = check_positive("rate", rate)

    def rate_at(self, t: np.ndarray | float) -> np.ndarray:
        return np.full(np.shape(t), self.rate)

    def _guess_rate(self) -> float:
        return self.rate


class PoissonArrivals(_SteadyRate):
    """Independent customers arriving at ``rate`` per second (exponential gaps, the "M")."""

    def _window(self, rng: np.random.Generator, span: float) -> np.ndarray:
        return _poisson_window(rng, self.rate, span)

    def times(
        self, rng: np.random.Generator, n: int | None = None, horizon: float | None = None
    ) -> np.ndarray:
        if n is not None and horizon is None:
            return np.cumsum(rng.exponential(1.0 / self.rate, check_int("n", n, 0)))
        return super().times(rng, n, horizon)


class ConstantArrivals(_SteadyRate):
    """One arrival exactly every ``1/rate`` seconds, the first at ``1/rate`` (the "D")."""

    def _window(self, rng: np.random.Generator, span: float) -> np.ndarray:
        t = np.arange(1, math.ceil(span * self.rate) + 1) / self.rate
        return t[t < span]


class BurstyArrivals(ArrivalProcess):
    """A two-state Markov-modulated Poisson process (MMPP-2): bursts and lulls.

    The source alternates between an "on" state (Poisson at ``rate_on``) lasting an exponential
    time of mean ``mean_on_s`` and an "off" state (``rate_off``, 0 by default, giving the classic
    on-off source) of mean ``mean_off_s``. It starts in its stationary state distribution, so the
    long-run rate is ``(rate_on*mean_on_s + rate_off*mean_off_s) / (mean_on_s + mean_off_s)``.
    """

    def __init__(
        self, rate_on: float, mean_on_s: float, mean_off_s: float, rate_off: float = 0.0
    ) -> None:
        self.rate_on = check_positive("rate_on", rate_on)
        self.rate_off = check_non_negative("rate_off", rate_off)
        self.mean_on_s = check_positive("mean_on_s", mean_on_s)
        self.mean_off_s = check_positive("mean_off_s", mean_off_s)
        cycle = self.mean_on_s + self.mean_off_s
        self.mean_rate = (self.rate_on * self.mean_on_s + self.rate_off * self.mean_off_s) / cycle

    def rate_at(self, t: np.ndarray | float) -> np.ndarray:
        return np.full(np.shape(t), self.mean_rate)

    def _guess_rate(self) -> float:
        return self.mean_rate

    def _window(self, rng: np.random.Generator, span: float) -> np.ndarray:
        starts_on = rng.random() < self.mean_on_s / (self.mean_on_s + self.mean_off_s)
        per_pair = int(span / (self.mean_on_s + self.mean_off_s)) + 2
        durations = np.empty(0)
        while durations.sum() < span:  # alternate on/off periods until they cover the window
            on = rng.exponential(self.mean_on_s, per_pair)
            off = rng.exponential(self.mean_off_s, per_pair)
            pairs = np.column_stack((on, off) if starts_on else (off, on)).ravel()
            durations = np.concatenate((durations, pairs))
        starts = np.concatenate(([0.0], np.cumsum(durations)[:-1]))
        keep = starts < span
        starts, durations = starts[keep], np.minimum(durations[keep], span - starts[keep])
        first, second = (self.rate_on, self.rate_off) if starts_on else (
            self.rate_off, self.rate_on)
        rates = np.where(np.arange(len(starts)) % 2 == 0, first, second)
        counts = rng.poisson(rates * durations)
        t = np.repeat(starts, counts) + rng.random(counts.sum()) * np.repeat(durations, counts)
        return np.sort(t)


class TimeVaryingArrivals(ArrivalProcess):
    """A Poisson process whose rate follows a function of time, generated by thinning.

    Candidates are drawn at ``peak_rate`` and each kept with probability rate(t)/peak_rate
    (Lewis and Shedler's thinning). Use the constructors ``step``, ``ramp`` and ``diurnal``.
    """

    def __init__(self, rate: Callable[[np.ndarray], np.ndarray], peak_rate: float) -> None:
        self.rate = rate
        self.peak_rate = check_positive("peak_rate", peak_rate)

    @classmethod
    def step(cls, rate_before: float, rate_after: float, at_s: float) -> TimeVaryingArrivals:
        """``rate_before`` until ``at_s`` seconds, then ``rate_after`` (a sudden surge or drop)."""
        before = check_non_negative("rate_before", rate_before)
        after = check_non_negative("rate_after", rate_after)
        at = check_non_negative("at_s", at_s)
        return cls(lambda t: np.where(np.asarray(t) < at, before, after), max(before, after))

    @classmethod
    def ramp(
        cls, rate_start: float, rate_end: float, start_s: float, end_s: float
    ) -> TimeVaryingArrivals:
        """``rate_start`` until ``start_s``, then linear to ``rate_end`` at ``end_s``, then flat."""
        r0 = check_non_negative("rate_start", rate_start)
        r1 = check_non_negative("rate_end", rate_end)
        t0 = check_non_negative("start_s", start_s)
        t1 = check_range("end_s", end_s, t0, low_open=True)
        return cls(lambda t: np.interp(t, [t0, t1], [r0, r1]), max(r0, r1))

    @classmethod
    def diurnal(
        cls, mean_rate: float, amplitude: float, period_s: float, peak_at_s: float = 0.0
    ) -> TimeVaryingArrivals:
        """Rate ``mean_rate * (1 + amplitude * cos(2 pi (t - peak_at_s) / period_s))``.

        ``amplitude`` in [0, 1] is the relative swing around the mean.
        """
        mean = check_positive("mean_rate", mean_rate)
        amp = check_range("amplitude", amplitude, 0.0, 1.0)
        period = check_positive("period_s", period_s)
        peak = check_non_negative("peak_at_s", peak_at_s)
        return cls(
            lambda t: mean * (1.0 + amp * np.cos(2.0 * np.pi * (np.asarray(t) - peak) / period)),
            mean * (1.0 + amp),
        )

    def rate_at(self, t: np.ndarray | float) -> np.ndarray:
        return np.asarray(self.rate(np.asarray(t, dtype=float)), dtype=float)

    def _guess_rate(self) -> float:
        return self.peak_rate

    def _window(self, rng: np.random.Generator, span: float) -> np.ndarray:
        t = _poisson_window(rng, self.peak_rate, span)
        r = self.rate_at(t)
        if np.any(r > self.peak_rate * (1 + 1e-9)) or np.any(r < 0):
            raise ValueError(
                f"rate(t) must stay in [0, peak_rate={self.peak_rate:g}] "
                f"(got values from {r.min():g} to {r.max():g})")
        return t[rng.random(len(t)) * self.peak_rate < r]


class ZipfKeys:
    """Key popularity following Zipf's law: key k (0 = most popular) has weight 1/(k+1)^alpha.

    ``alpha = 0`` is uniform; around 0.6 to 1.0 is typical of web and cache traces.
    """

    def __init__(self, n_keys: int, alpha: float) -> None:
        self.n_keys = check_int("n_keys", n_keys, 1)
        self.alpha = check_non_negative("alpha", alpha)
        weights = np.arange(1, self.n_keys + 1, dtype=float) ** -self.alpha
        self.probabilities = weights / weights.sum()
        self._cumulative = np.cumsum(self.probabilities)

    def top_share(self, count: int) -> float:
        """Share of requests for the ``count`` most popular keys (the perfect-LFU hit ratio)."""
        count = check_int("count", count, 0, self.n_keys)
        return float(self._cumulative[count - 1]) if count else 0.0

    def sample(self, rng: np.random.Generator, size: int | None = None) -> np.ndarray | int:
        """Key ids drawn independently with these probabilities (vectorised)."""
        u = rng.random(size) * self._cumulative[-1]
        keys = np.minimum(np.searchsorted(self._cumulative, u, side="right"), self.n_keys - 1)
        return keys if size is not None else int(keys)
