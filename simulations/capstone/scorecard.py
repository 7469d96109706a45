"""From one simulated day to what the learner reads: series per time bin, a score card, and a
diagnosis of the first SLO breach that names the incident, the tier and the time.

The SLO is on the critical endpoint (checkout), as its clients see it (from the first try to
the last answer, retries included): p99 of answered requests ≤ ``SLO.p99_s`` and the answered
share ≥ ``SLO.availability``, over the day and in each incident's window. Cost is the
instance-hours of the API tier on the clock (one simulated second is one clock minute).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from patterns.checks import check_positive, check_probability
from simulations.capstone.day import INCIDENTS, Incident, clock
from simulations.capstone.service import BROWSE, CHECKOUT, SYSTEM, Run
from simulations.metrics import per_bin, percentile_of
from simulations.records import Outcome, RequestTable

__all__ = ["BIN_S", "SLO", "DayResult", "Score", "result"]

BIN_S = 5.0
"""Width of a dashboard bin: 5 simulated seconds, five minutes on the clock."""


@dataclass(frozen=True)
class SLO:
    """The critical endpoint's objective and the day's cost budget."""

    p99_s: float = 0.8
    availability: float = 0.99
    budget_instance_hours: float = 45.0

    def __post_init__(self) -> None:
        check_positive("SLO.p99_s", self.p99_s)
        check_probability("SLO.availability", self.availability)
        check_positive("SLO.budget_instance_hours", self.budget_instance_hours)


@dataclass(frozen=True)
class Score:
    """One line of the score card: a window (the day, or an incident) and how it went."""

    window: str
    incident: Incident | None
    requests: int
    p99_s: float
    availability: float
    slo: SLO

    @property
    def p99_ok(self) -> bool:
        return self.p99_s <= self.slo.p99_s

    @property
    def availability_ok(self) -> bool:
        return self.availability >= self.slo.availability

    @property
    def survived(self) -> bool:
        return self.p99_ok and self.availability_ok


def _window_stats(table: RequestTable, start: float, end: float) -> tuple[int, float, float]:
    inside = (table.arrival >= start) & (table.arrival < end)
    ok = inside & (table.outcome == int(Outcome.OK))
    n = int(inside.sum())
    p99 = float(np.percentile(table.latency[ok], 99)) if ok.any() else math.inf
    return n, p99, (float(ok.sum()) / n if n else 1.0)


def _bin_mean(t: np.ndarray, values: list[float], edges: np.ndarray,
              statistic: Any = np.mean) -> np.ndarray:
    _, out = per_bin(t, np.asarray(values, dtype=float), BIN_S, edges[0], edges[-1], statistic)
    return out


class DayResult:
    """A simulated day (or window), summarised: ``series`` per bin, ``scorecard()``,
    ``diagnosis()``. ``run`` keeps the raw logs."""

    def __init__(self, run: Run, slo: SLO | None = None) -> None:
        self.run, self.slo = run, slo or SLO()
        self.day, self.design = run.day, run.design
        # requests still in flight in the last client timeout are not judged
        self.judged_until = run.end_s - self.day.client_timeout_s * (self.day.client_retries + 1)
        self.checkout = run.requests[CHECKOUT].table()
        self.browse = run.requests[BROWSE].table()
        self.series = self._series()

    # ---------------------------------------------------------------- series
    def _series(self) -> dict[str, np.ndarray]:
        run, start, end = self.run, self.run.start_s, self.run.end_s
        edges = np.arange(start, end + 1e-9, BIN_S)
        out: dict[str, np.ndarray] = {"t": (edges[:-1] + edges[1:]) / 2}
        p50, p99 = percentile_of(50), percentile_of(99)

        def latency(table: RequestTable, stat: Any) -> np.ndarray:
            ok = table.has(Outcome.OK)
            return per_bin(table.arrival[ok], table.latency[ok], BIN_S, start, end, stat)[1]

        def rate(times: np.ndarray) -> np.ndarray:
            counts = np.histogram(times, edges)[0]
            return counts / BIN_S

        def failed_share(table: RequestTable) -> np.ndarray:
            done = table.outcome != int(Outcome.IN_FLIGHT)
            return per_bin(table.arrival[done], (table.outcome[done] != int(Outcome.OK)),
                           BIN_S, start, end, np.mean)[1]

        c, b = self.checkout, self.browse
        out["checkout_p50_s"], out["checkout_p99_s"] = latency(c, p50), latency(c, p99)
        out["browse_p99_s"] = latency(b, p99)
        out["checkout_failed"] = failed_share(c)
        out["checkout_goodput"] = rate(c.end[c.has(Outcome.OK)])
        out["browse_goodput"] = rate(b.end[b.has(Outcome.OK)])
        out["errors"] = rate(np.concatenate([t.end[~t.has(Outcome.OK, Outcome.IN_FLIGHT)]
                                             for t in (c, b)]))
        attempts = run.attempts.table()
        turned = attempts.has(Outcome.REJECTED) & (attempts.cls == CHECKOUT)
        out["rejected"] = rate(attempts.end[turned])  # checkout attempts turned away
        for name, log in (("payments", run.payments), ("recs", run.recs),
                          ("replica", run.replica_reads)):
            table = log.table()
            out[f"{name}_p99_s"] = latency(table, p99)
            out[f"{name}_failed"] = failed_share(table)
        t = np.asarray(run.samples["t"]) - SYSTEM.sample_s / 2
        for name in ("instances", "busy", "replica_busy", "payments_open", "recs_open"):
            out[name] = _bin_mean(t, run.samples[name], edges)
        for name in ("queued", "queue_depth"):
            out[name] = _bin_mean(t, run.samples[name], edges, np.max)
        return out

    # ---------------------------------------------------------------- score card
    def instance_hours(self) -> float:
        """API instances × clock hours: each sample is ``sample_s`` simulated seconds, that is
        ``sample_s`` clock minutes."""
        return float(np.sum(self.run.samples["instances"])) * SYSTEM.sample_s / 60.0

    def scores(self) -> list[Score]:
        rows = []
        for incident in self.day.incidents:
            start, end = max(incident.start_s, self.run.start_s), min(incident.end_s,
                                                                     self.judged_until)
            if end <= start:
                continue
            n, p99, avail = _window_stats(self.checkout, start, end)
            rows.append(Score(incident.window, incident, n, p99, avail, self.slo))
        n, p99, avail = _window_stats(self.checkout, self.run.start_s, self.judged_until)
        rows.append(Score(f"{clock(self.run.start_s)}–{clock(self.run.end_s)}", None, n, p99,
                          avail, self.slo))
        return rows

    def scorecard(self) -> dict[str, Any]:
        """The SLO over the day and per incident, the cost against the budget, and a verdict."""
        scores = self.scores()
        day = scores[-1]
        hours = self.instance_hours()
        survived = {s.incident.kind: s.survived for s in scores[:-1]}
        return {
            "p99_s": day.p99_s, "availability": day.availability,
            "instance_hours": hours, "budget_instance_hours": self.slo.budget_instance_hours,
            "within_budget": hours <= self.slo.budget_instance_hours,
            "survived": survived,
            "incidents": {s.incident.kind: {"p99_s": s.p99_s, "availability": s.availability,
                                            "requests": s.requests} for s in scores[:-1]},
            "passed": day.survived and all(survived.values())
                      and hours <= self.slo.budget_instance_hours,
            "diagnosis": self.diagnosis(),
        }

    def table(self) -> str:
        """The score card as text, one line per window."""
        lines = [f"{'window':13s} {'incident':26s} {'p99 (ms)':>9s} {'avail':>8s}  verdict"]
        for s in self.scores():
            name = s.incident.name if s.incident else "the whole day"
            verdict = "survived" if s.survived else (
                "FAILED: " + " and ".join(w for w, bad in (("p99", not s.p99_ok),
                                                          ("availability", not s.availability_ok))
                                         if bad))
            lines.append(f"{s.window:13s} {name:26s} {s.p99_s * 1000:9.0f} "
                         f"{s.availability:8.2%}  {verdict}")
        hours = self.instance_hours()
        lines.append(f"cost {hours:.1f} instance-hours of a {self.slo.budget_instance_hours:g} "
                     f"budget: {'within' if hours <= self.slo.budget_instance_hours else 'OVER'}")
        return "\n".join(lines)

    # ---------------------------------------------------------------- diagnosis
    def first_breach(self) -> tuple[Incident | None, str, float] | None:
        """(incident, "p99" or "availability", time) of the first bin that breaks the SLO
        inside a failing window; None if every window survived."""
        s = self.series
        scores = self.scores()
        failing = [sc for sc in scores[:-1] if not sc.survived] or [
            sc for sc in scores[-1:] if not sc.survived]  # the day only if no incident failed
        if not failing:
            return None
        best = None
        for score in failing:
            inc = score.incident
            start = inc.start_s if inc else self.run.start_s
            end = inc.end_s if inc else self.judged_until
            for i, mid in enumerate(s["t"]):
                if not (start <= mid + BIN_S / 2 and mid - BIN_S / 2 < end):
                    continue
                what = None
                if not score.p99_ok and s["checkout_p99_s"][i] > self.slo.p99_s:
                    what = "p99"
                elif (not score.availability_ok
                      and s["checkout_failed"][i] > 1 - self.slo.availability):
                    what = "availability"
                if what:
                    at = max(mid - BIN_S / 2, start)
                    if best is None or at < best[2]:
                        best = (inc, what, at)
                    break
        if best is None:  # the window failed on its whole, no single bin did
            score = failing[0]
            best = (score.incident, "p99" if not score.p99_ok else "availability",
                    score.incident.start_s if score.incident else self.run.start_s)
        return best

    def tier(self, start: float, until: float) -> tuple[str, float]:
        """The first saturation signal in [start, until]: (what it says, when)."""
        s, workers = self.series, SYSTEM.workers
        base = {k: float(np.nanmedian(s[k])) for k in ("payments_p99_s", "recs_p99_s",
                                                         "replica_p99_s")}
        signals = [
            ("the read replicas saturated", s["replica_busy"] >= 0.8),
            ("the replica reads slowed down", s["replica_p99_s"] >= 2.5 * base["replica_p99_s"]),
            ("payments failed (its breaker open)", s["payments_open"] >= 0.5),
            ("payments failed", s["payments_failed"] >= 0.3),
            ("payments slowed down", s["payments_p99_s"] >= 2.5 * base["payments_p99_s"]),
            ("recommendations failed", s["recs_failed"] >= 0.3),
            ("recommendations slowed down", s["recs_p99_s"] >= 2.5 * base["recs_p99_s"]),
            ("the edge turned checkouts away", s["rejected"] >= 0.2),
            ("the API pool saturated",
             (s["busy"] >= 0.9) | (s["queued"] >= workers * s["instances"])),
        ]
        window = (s["t"] + BIN_S / 2 > start) & (s["t"] - BIN_S / 2 <= until)
        first = None
        for phrase, fired in signals:
            hits = np.flatnonzero(np.nan_to_num(fired.astype(float)) * window)
            if hits.size and (first is None or s["t"][hits[0]] < first[1]):
                first = (phrase, float(s["t"][hits[0]] - BIN_S / 2))
        if first is None:
            return "no tier saturated (the tail came from the design's own waits: timeouts, " \
                   "retries, backoff)", start
        return first[0], max(first[1], start)

    def diagnosis(self) -> str:
        """One line on the first SLO breach: the incident, what broke, the tier and when."""
        breach = self.first_breach()
        hours = self.instance_hours()
        if breach is None:
            if hours > self.slo.budget_instance_hours:
                return (f"the SLO held all day, but the day cost {hours:.1f} instance-hours, "
                        f"over the budget of {self.slo.budget_instance_hours:g}")
            return "the SLO held all day, within the budget"
        incident, what, at = breach
        start = incident.start_s if incident else self.run.start_s
        tier, when = self.tier(start, at + BIN_S)
        during = f"during {incident.name}" if incident else "outside any incident"
        return f"{what} broke {during}: {tier} at {clock(when)}"


def result(run: Run, slo: SLO | None = None) -> DayResult:
    return DayResult(run, slo)


_ = INCIDENTS  # the names the diagnosis uses come from the day's incidents
