"""The bad day: one seeded generator of incidents over a compressed working day.

The simulated day is a working day from 09:00 to 17:00 squeezed into 480 simulated seconds: one
simulated second is one minute on the clock (``clock(t)``), while latencies, timeouts and
service times stay in real seconds. ``bad_day(seed)`` draws the five incidents of the day, in
an order and at times and magnitudes of the seed's own, from one ``numpy`` generator:

- ``surge``: the arrival rate climbs to ``magnitude`` × the base rate, holds, and falls back;
- ``hot_key``: a share ``magnitude`` of the browse traffic asks for one expensive page (a flash
  sale) whose cache entry may be at most 3 s stale, so it keeps expiring under load (a
  stampede on the read replicas);
- ``dependency``: payments slows down ``magnitude`` times for the first 60 % of the window,
  then hangs (answers nothing) for the rest;
- ``replica_lost``: read replica ``magnitude`` (an index) is lost and comes back at the end;
- ``retry_storm``: payments answers errors for the first third of the window and runs at
  1/``magnitude`` of its capacity for the rest (a brownout), while clients retry every error
  and every timeout: a retry storm waiting to happen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from patterns.checks import check_choice, check_non_negative, check_range

__all__ = ["DAY_S", "INCIDENTS", "OPENS_AT", "Day", "Incident", "bad_day", "clock",
           "VISIBLE_SEED"]

DAY_S = 480.0
"""Simulated seconds in the day: 09:00 to 17:00, one simulated second per clock minute."""
OPENS_AT = 9 * 60
"""The clock at t = 0, in minutes after midnight."""
VISIBLE_SEED = 2026
"""The day the lesson shows; the grader also runs hidden seeds from the same generator."""

INCIDENTS = {
    "surge": "the traffic surge",
    "hot_key": "the hot key",
    "dependency": "the dependency slowdown",
    "replica_lost": "the lost replica",
    "retry_storm": "the retry storm",
}
"""Each incident kind and how the score card names it."""


def clock(t: float) -> str:
    """The wall clock at simulated time ``t`` (s): 09:00 + t minutes, as "14:05"."""
    minutes = OPENS_AT + int(round(t))
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class Incident:
    """One incident: ``kind`` (see ``INCIDENTS``) active in [start_s, end_s)."""

    kind: str
    start_s: float
    end_s: float
    magnitude: float

    def __post_init__(self) -> None:
        check_choice("Incident.kind", self.kind, INCIDENTS)
        check_non_negative("Incident.start_s", self.start_s)
        check_range("Incident.end_s", self.end_s, self.start_s, DAY_S, low_open=True)

    @property
    def name(self) -> str:
        return INCIDENTS[self.kind]

    @property
    def window(self) -> str:
        return f"{clock(self.start_s)}–{clock(self.end_s)}"

    def active(self, t: float) -> bool:
        return self.start_s <= t < self.end_s

    def describe(self) -> str:
        m = self.magnitude
        what = {
            "surge": f"traffic climbs to {m:.1f}× the base rate",
            "hot_key": f"{m:.0%} of browse requests ask for one expensive page",
            "dependency": f"payments {m:.0f}× slower, then it hangs",
            "replica_lost": f"read replica {int(m)} is lost",
            "retry_storm": f"payments fails, then runs at 1/{m:.0f} of its capacity, "
                           "and every failure is retried",
        }[self.kind]
        return f"{self.window} {self.name}: {what}"


@dataclass(frozen=True)
class Day:
    """A seeded bad day: its incidents (in time order), base traffic and the clients' retries."""

    seed: int
    incidents: tuple[Incident, ...]
    base_rate: float = 15.0  # requests/s before any surge
    checkout_share: float = 0.25  # the rest browse
    client_retries: int = 2  # each client retries a failed or timed-out call this often
    client_timeout_s: float = 1.0  # and gives up on an answer after this long

    def incident(self, kind: str) -> Incident:
        return next(i for i in self.incidents if i.kind == kind)

    def active(self, t: float) -> Incident | None:
        return next((i for i in self.incidents if i.active(t)), None)

    def rate_at(self, t: np.ndarray | float) -> np.ndarray:
        """Arrival rate (requests/s) at time(s) ``t``: the base, times the surge's trapezoid."""
        t = np.asarray(t, dtype=float)
        s = self.incident("surge")
        ramp = 0.25 * (s.end_s - s.start_s)
        up = np.clip((t - s.start_s) / ramp, 0.0, 1.0)
        down = np.clip((s.end_s - t) / ramp, 0.0, 1.0)
        return self.base_rate * (1.0 + (s.magnitude - 1.0) * np.minimum(up, down))

    def windows(self) -> list[tuple[float, float]]:
        return [(i.start_s, i.end_s) for i in self.incidents]

    def timeline(self) -> str:
        return "\n".join(i.describe() for i in self.incidents)


_DURATIONS = {"surge": (45.0, 60.0), "hot_key": (40.0, 55.0), "dependency": (40.0, 55.0),
              "replica_lost": (40.0, 55.0), "retry_storm": (40.0, 55.0)}
_MAGNITUDES = {"surge": (2.2, 2.8), "hot_key": (0.4, 0.55), "dependency": (6.0, 9.0),
               "replica_lost": (0.0, 1.999), "retry_storm": (3.5, 4.5)}


def bad_day(seed: int = VISIBLE_SEED) -> Day:
    """The day of ``seed``: the five incidents in a random order, apart from each other, with
    durations and magnitudes drawn from the ranges above (one generator, so one seed is one
    day)."""
    rng = np.random.default_rng(seed)
    kinds = [str(k) for k in rng.permutation(list(INCIDENTS))]
    durations = [rng.uniform(*_DURATIONS[k]) for k in kinds]
    magnitudes = [rng.uniform(*_MAGNITUDES[k]) for k in kinds]
    slack = DAY_S - 30.0 - sum(durations) - 10.0  # a quiet first half hour, a quiet end
    gaps = rng.dirichlet(np.ones(len(kinds) + 1)) * slack
    incidents, t = [], 30.0
    for kind, duration, magnitude, gap in zip(kinds, durations, magnitudes, gaps, strict=False):
        t += gap
        if kind == "replica_lost":
            magnitude = float(int(magnitude))
        incidents.append(Incident(kind, round(t, 1), round(t + duration, 1), float(magnitude)))
        t += duration
    return Day(seed=int(seed), incidents=tuple(incidents))
