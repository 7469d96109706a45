"""Service-time distributions, each set by its mean and its variability.

Picture a barista: some drinks always take the same 30 s (deterministic), most take about a
minute but a few take five (bimodal), and once in a while an order takes forever (heavy tail,
Pareto). Queueing results depend on the mean service time and on how variable it is, measured by
the squared coefficient of variation ``scv = variance / mean**2`` (0 for a constant, 1 for the
exponential). So every distribution here is built from ``mean`` (seconds) and, where it has a
free shape, ``scv``; each offers ``.mean``, ``.scv``, ``.second_moment`` and a vectorised
``.sample(rng, size)``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from statistics import NormalDist

import numpy as np

from patterns.checks import check_choice, check_positive, check_range

__all__ = [
    "Bimodal",
    "Deterministic",
    "Distribution",
    "Exponential",
    "LogNormal",
    "Pareto",
    "DISTRIBUTIONS",
    "make_distribution",
    "quantile",
    "survival",
]

_NORMAL = NormalDist()


class Distribution(ABC):
    """A non-negative random duration with a known mean and squared coefficient of variation."""

    mean: float
    scv: float

    @abstractmethod
    def sample(self, rng: np.random.Generator, size: int | None = None) -> np.ndarray | float:
        """One draw (``size=None``) or an array of ``size`` independent draws, in seconds."""

    @property
    def second_moment(self) -> float:
        """E[S^2] = mean^2 (1 + scv), as used by the Pollaczek-Khinchine formula."""
        return self.mean**2 * (1.0 + self.scv)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mean={self.mean:g}, scv={self.scv:g})"


class Exponential(Distribution):
    """Memoryless service times (scv = 1): the "M" in M/M/c."""

    def __init__(self, mean: float) -> None:
        self.mean = check_positive("mean", mean)
        self.scv = 1.0

    def sample(self, rng: np.random.Generator, size: int | None = None) -> np.ndarray | float:
        return rng.exponential(self.mean, size)


class Deterministic(Distribution):
    """Every request takes exactly ``mean`` seconds (scv = 0): the "D" in M/D/1."""

    def __init__(self, mean: float) -> None:
        self.mean = check_range("mean", mean, 0.0)
        self.scv = 0.0

    def sample(self, rng: np.random.Generator, size: int | None = None) -> np.ndarray | float:
        return self.mean if size is None else np.full(size, self.mean)


class LogNormal(Distribution):
    """Right-skewed times, typical of measured RPC latencies; any scv > 0.

    If ln S ~ Normal(mu, sigma^2) then sigma^2 = ln(1 + scv) and mu = ln(mean) - sigma^2 / 2.
    """

    def __init__(self, mean: float, scv: float) -> None:
        self.mean = check_positive("mean", mean)
        self.scv = check_positive("scv", scv)
        self.sigma = math.sqrt(math.log1p(self.scv))
        self.mu = math.log(self.mean) - self.sigma**2 / 2

    def sample(self, rng: np.random.Generator, size: int | None = None) -> np.ndarray | float:
        return rng.lognormal(self.mu, self.sigma, size)


class Bimodal(Distribution):
    """Mostly fast, sometimes slow: a two-point mix (cache hit vs miss, a GC pause).

    A fraction ``slow_fraction`` of requests take ``slow`` seconds, the rest ``fast`` seconds.
    Given ``mean``, ``scv`` and ``slow_fraction`` = p, the two values are
    ``slow - fast = mean * sqrt(scv / (p (1 - p)))`` and ``fast = mean - p (slow - fast)``.
    ``fast`` must stay >= 0, so scv may be at most (1 - p) / p (9 for the default p = 0.1).
    """

    def __init__(self, mean: float, scv: float, slow_fraction: float = 0.1) -> None:
        self.mean = check_positive("mean", mean)
        self.slow_fraction = check_range("slow_fraction", slow_fraction, 0.0, 1.0,
                                         low_open=True, high_open=True)
        p = self.slow_fraction
        self.scv = check_range("scv", scv, 0.0, (1 - p) / p)
        gap = self.mean * math.sqrt(self.scv / (p * (1 - p)))
        self.fast = max(self.mean - p * gap, 0.0)
        self.slow = self.fast + gap

    def sample(self, rng: np.random.Generator, size: int | None = None) -> np.ndarray | float:
        is_slow = rng.random(size) < self.slow_fraction
        return np.where(is_slow, self.slow, self.fast) if size is not None else (
            self.slow if is_slow else self.fast)


class Pareto(Distribution):
    """Heavy-tailed times (Pareto type I): a few requests are enormously long.

    P(S > x) = (x_min / x)^shape for x >= x_min, with x_min = mean (shape - 1) / shape.
    Give exactly one of ``scv`` (then shape = 1 + sqrt(1 + 1/scv), always > 2, so the variance is
    finite) or ``shape`` > 1 (shape <= 2 gives an infinite variance: scv = inf, the regime where
    averages converge very slowly and the tail dominates).
    """

    def __init__(self, mean: float, scv: float | None = None, shape: float | None = None) -> None:
        self.mean = check_positive("mean", mean)
        if (scv is None) == (shape is None):
            raise ValueError(
                f"Pareto needs exactly one of scv or shape (got scv={scv!r}, shape={shape!r})")
        if scv is not None:
            s = check_positive("scv", scv)
            self.shape = 1.0 + math.sqrt(1.0 + 1.0 / s)
        else:
            self.shape = check_range("shape", shape, 1.0, low_open=True)
        a = self.shape
        self.scv = 1.0 / (a * (a - 2.0)) if a > 2.0 else math.inf
        self.x_min = self.mean * (a - 1.0) / a

    def sample(self, rng: np.random.Generator, size: int | None = None) -> np.ndarray | float:
        return self.x_min * (1.0 + rng.pareto(self.shape, size))


DISTRIBUTIONS: dict[str, type[Distribution]] = {
    "exponential": Exponential,
    "deterministic": Deterministic,
    "lognormal": LogNormal,
    "bimodal": Bimodal,
    "pareto": Pareto,
}
_FIXED_SCV = {"exponential": 1.0, "deterministic": 0.0}


def make_distribution(name: str, mean: float, scv: float | None = None) -> Distribution:
    """Build a distribution by name, e.g. ``make_distribution("lognormal", 0.01, scv=4)``.

    Exponential and deterministic have a fixed scv (1 and 0): pass ``scv=None`` or that value.
    The others need ``scv``.
    """
    key = check_choice("distribution", name, DISTRIBUTIONS)
    if key in _FIXED_SCV:
        if scv is not None and scv != _FIXED_SCV[key]:
            raise ValueError(
                f"scv of the {key} distribution is fixed at {_FIXED_SCV[key]:g} (got {scv!r})")
        return DISTRIBUTIONS[key](mean)
    if scv is None:
        raise ValueError(f"scv is required for the {key} distribution (got None)")
    return DISTRIBUTIONS[key](mean, scv)


def survival(service: Distribution, t: float) -> float:
    """P(S > t) for one of the toolkit's service-time distributions (exact, closed form)."""
    if isinstance(service, Exponential):
        return math.exp(-max(t, 0.0) / service.mean)
    if isinstance(service, Deterministic):
        return 1.0 if t < service.mean else 0.0
    if isinstance(service, LogNormal):
        return 1.0 if t <= 0 else 1.0 - _NORMAL.cdf((math.log(t) - service.mu) / service.sigma)
    if isinstance(service, Bimodal):
        return 1.0 if t < service.fast else service.slow_fraction if t < service.slow else 0.0
    if isinstance(service, Pareto):
        return 1.0 if t < service.x_min else (service.x_min / t) ** service.shape
    raise ValueError(f"service must be Exponential, Deterministic, LogNormal, Bimodal or Pareto "
                     f"(got {service!r})")


def quantile(service: Distribution, p: float) -> float:
    """The smallest t with P(S ≤ t) ≥ p: the service time's p-quantile (p in (0, 1))."""
    p = check_range("p", p, 0.0, 1.0, low_open=True, high_open=True)
    if isinstance(service, Exponential):
        return -service.mean * math.log1p(-p)
    if isinstance(service, Deterministic):
        return service.mean
    if isinstance(service, LogNormal):
        return math.exp(service.mu + service.sigma * _NORMAL.inv_cdf(p))
    if isinstance(service, Bimodal):
        return service.fast if p <= 1.0 - service.slow_fraction else service.slow
    if isinstance(service, Pareto):
        return service.x_min * (1.0 - p) ** (-1.0 / service.shape)
    return survival(service, 0.0)  # raises the "service must be ..." error
