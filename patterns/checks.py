"""Input checks shared by the patterns and the simulation toolkit.

Think of a form clerk who hands a form back with the wrong box circled: "rate must be > 0
(got -1.0)". Each helper checks one value, returns it (converted) when it is fine, and otherwise
raises ``ValueError`` naming the parameter, the value it got and the range it allows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Integral, Real

__all__ = [
    "check_choice",
    "check_int",
    "check_non_negative",
    "check_positive",
    "check_probability",
    "check_range",
]


def _number(x: float) -> str:
    """A limit as a person writes it: 2000000, not 2e+06; 0.5 stays 0.5."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _describe(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        left, right = ("(" if low_open else "["), (")" if high_open else "]")
        return f"in {left}{_number(low)}, {_number(high)}{right}"
    if low is not None:
        return f"{'>' if low_open else '>='} {_number(low)}"
    if high is not None:
        return f"{'<' if high_open else '<='} {_number(high)}"
    return "a finite number"


def check_range(
    name: str,
    value: object,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
) -> float:
    """Return ``value`` as a float if it lies in the range, else raise ``ValueError``.

    ``low_open``/``high_open`` make that end exclusive. NaN is always refused; infinity only
    with ``allow_inf``.
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name} must be a number {_describe(low, high, low_open, high_open)} "
                         f"(got {value!r})")
    x = float(value)
    bad = math.isnan(x) or (math.isinf(x) and not allow_inf)
    if low is not None:
        bad = bad or (x <= low if low_open else x < low)
    if high is not None:
        bad = bad or (x >= high if high_open else x > high)
    if bad:  # the message is written only when needed: a hot loop checks every call
        raise ValueError(f"{name} must be {_describe(low, high, low_open, high_open)} "
                         f"(got {value!r})")
    return x


def check_positive(name: str, value: object, *, allow_inf: bool = False) -> float:
    """A number > 0, e.g. a rate or a mean time."""
    return check_range(name, value, 0.0, low_open=True, allow_inf=allow_inf)


def check_non_negative(name: str, value: object) -> float:
    """A number >= 0, e.g. a delay that may be zero."""
    return check_range(name, value, 0.0)


def check_probability(name: str, value: object) -> float:
    """A number in [0, 1]."""
    return check_range(name, value, 0.0, 1.0)


def check_int(name: str, value: object, low: int | None = None, high: int | None = None) -> int:
    """An integer (not a bool, not a float) within [low, high]."""
    if (isinstance(value, bool) or not isinstance(value, Integral)
            or (low is not None and value < low) or (high is not None and value > high)):
        allowed = _describe(low, high, False, False).replace("a finite number", "any integer")
        raise ValueError(f"{name} must be an integer {allowed} (got {value!r})")
    return int(value)


def check_choice(name: str, value: object, allowed: Iterable[str]) -> str:
    """One of a fixed set of names; the message lists them."""
    options = list(allowed)
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(options)} (got {value!r})")
    return str(value)
