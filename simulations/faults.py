"""Failure injection: time windows during which a dependency misbehaves.

Picture a supplier whose phone line sometimes fails. During an outage window it may answer at once
with "can't help" (``error``: a fast failure, e.g. connection refused), pick up and say nothing
(``hang``: the call never returns, e.g. a black-holed TCP connection, so only the caller's
timeout ends it), or work but slowly (``slow``: each service time becomes
``time * slow_factor + slow_add_s``). A ``FaultSchedule`` holds non-overlapping windows; a
``ServerPool`` given one consults it when each request arrives (``error``/``hang``) or starts
service (``slow``).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from patterns.checks import check_choice, check_non_negative, check_positive, check_range
from simulations.distributions import Distribution

__all__ = ["FAULT_KINDS", "FaultSchedule", "FaultWindow"]

FAULT_KINDS = ("error", "hang", "slow")


@dataclass(frozen=True)
class FaultWindow:
    """The dependency misbehaves in [start_s, end_s) in the way ``kind`` says."""

    start_s: float
    end_s: float
    kind: str = "error"
    error_delay_s: float = 0.0  # how long a fast failure takes to come back ("error")
    slow_factor: float = 1.0  # service times are multiplied by this ("slow")
    slow_add_s: float = 0.0  # and this is added ("slow")

    def __post_init__(self) -> None:
        check_non_negative("start_s", self.start_s)
        check_range("end_s", self.end_s, self.start_s, low_open=True, allow_inf=True)
        check_choice("kind", self.kind, FAULT_KINDS)
        check_non_negative("error_delay_s", self.error_delay_s)
        check_positive("slow_factor", self.slow_factor)
        check_non_negative("slow_add_s", self.slow_add_s)


class FaultSchedule:
    """Non-overlapping fault windows, looked up by time."""

    def __init__(self, windows: Iterable[FaultWindow]) -> None:
        self.windows = tuple(sorted(windows, key=lambda w: w.start_s))
        for before, after in zip(self.windows, self.windows[1:], strict=False):
            if after.start_s < before.end_s:
                raise ValueError(
                    f"fault windows must not overlap (got [{before.start_s:g}, {before.end_s:g}) "
                    f"and [{after.start_s:g}, {after.end_s:g}))")
        self._starts = [w.start_s for w in self.windows]

    @classmethod
    def random_outages(
        cls,
        rng: np.random.Generator,
        mean_up_s: float,
        mean_down_s: float,
        horizon_s: float,
        kind: str = "error",
        **window_options: float,
    ) -> FaultSchedule:
        """Alternating exponential up times (mean ``mean_up_s``) and outages up to ``horizon_s``.

        The run starts up. ``window_options`` (e.g. ``slow_factor=5``) go to every window.
        """
        up = check_positive("mean_up_s", mean_up_s)
        down = check_positive("mean_down_s", mean_down_s)
        horizon = check_positive("horizon_s", horizon_s)
        windows, t = [], 0.0
        while True:
            t += rng.exponential(up)
            if t >= horizon:
                return cls(windows)
            length = rng.exponential(down)
            windows.append(FaultWindow(t, t + length, kind, **window_options))
            t += length

    @classmethod
    def alternating(
        cls,
        rng: np.random.Generator,
        up: Distribution,
        down: Distribution,
        horizon_s: float,
        kind: str = "error",
        **window_options: float,
    ) -> FaultSchedule:
        """Up times drawn from ``up`` alternating with outages drawn from ``down`` (any
        distributions, e.g. Weibull-like ``LogNormal`` lifetimes), until ``horizon_s``.

        The run starts up; an outage of zero length is skipped. ``window_options`` go to every
        window, as in `random_outages`.
        """
        horizon = check_positive("horizon_s", horizon_s)
        windows, t = [], 0.0
        while True:
            t += float(up.sample(rng))
            if t >= horizon:
                return cls(windows)
            length = float(down.sample(rng))
            if length > 0:
                windows.append(FaultWindow(t, t + length, kind, **window_options))
            t += length

    def active(self, now: float) -> FaultWindow | None:
        """The window covering time ``now``, or None."""
        i = bisect_right(self._starts, now) - 1
        if i >= 0 and now < self.windows[i].end_s:
            return self.windows[i]
        return None

    def spans(self) -> list[tuple[float, float]]:
        """(start_s, end_s) of every window, e.g. to shade them on a plot."""
        return [(w.start_s, w.end_s) for w in self.windows]
