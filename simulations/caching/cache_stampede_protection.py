"""The cache-stampede study: one hot key, many readers, and what happens when it expires.

Picture the bakery of the pattern's module with a stopwatch: customers arrive at random (λ per
second), a loaf takes ``fill_s`` to bake, and the sign comes down every ``ttl_s`` seconds. We
count the loaves baked per expiry, how hard the oven (the database) is hit in the worst tenth of
a second, how long customers wait, and, for early baking, how much freshness is thrown away.

Built from the toolkit: reads are a ``RequestSource`` of ``PoissonArrivals`` into a front
``ServerPool`` whose handler is the cache; the database is a ``ServerPool`` with a
``Deterministic(fill_s)`` service time. Strategies: ``none`` (every miss recomputes), ``lock``
(single-flight: a miss while a recomputation is in flight waits for it, sharing one SimPy
event; per process when ``processes`` > 1), ``xfetch`` (each read may recompute early, by the
pattern's own `xfetch` rule) and ``xfetch+lock`` (early recomputation in the background, one at
a time, readers served the current value). The closed forms it is checked against sit beside it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import simpy

from patterns.caching.cache_stampede_protection import xfetch
from patterns.checks import check_choice, check_int, check_non_negative, check_positive
from simulations.clients import RequestSource
from simulations.distributions import Deterministic
from simulations.experiments import aggregate
from simulations.experiments import sweep as sweep_grid
from simulations.metrics import (
    latency_percentiles,
    occupancy,
    per_bin,
    percentile_of,
    rate_over_time,
)
from simulations.records import RequestTable
from simulations.servers import ServerPool
from simulations.workloads import PoissonArrivals

__all__ = ["STRATEGIES", "Run", "Scenario", "expected_lead_s", "herd_size", "over_time",
           "per_process_recomputes", "plot_dashboard", "plot_sweep", "simulate",
           "stampede_probability", "summary", "sweep", "xfetch_probability"]

STRATEGIES = ("none", "lock", "xfetch", "xfetch+lock")
EULER_GAMMA = 0.5772156649015329

# ---------------------------------------------------------------- theory


def herd_size(read_rate: float, fill_s: float) -> float:
    """Expected recomputations per expiry with no protection: 1 + λ·t_fill.

    The first read after expiry misses and starts a recomputation that takes ``fill_s``; every
    read in that window misses too (Poisson reads: λ·t_fill of them on average). Assumes the
    database does not slow down under the herd (unlimited servers); a real one does, which
    lengthens the window and makes the herd bigger still.
    """
    return 1.0 + check_positive("read_rate", read_rate) * check_positive("fill_s", fill_s)


def per_process_recomputes(read_rate: float, fill_s: float, processes: int) -> float:
    """Expected recomputations per expiry with a single-flight lock in each of N processes.

    Reads are spread evenly over the N processes (each a Poisson stream of λ/N). The first miss
    starts one recomputation; each other process recomputes once if at least one of its reads
    falls in the ``fill_s`` window: 1 + (N - 1)(1 - exp(-λ·t_fill/N)).
    """
    n = check_int("processes", processes, low=1)
    load = check_positive("read_rate", read_rate) * check_positive("fill_s", fill_s)
    return 1.0 + (n - 1) * (1.0 - math.exp(-load / n))


def xfetch_probability(time_to_expiry_s: float, delta_s: float, beta: float) -> float:
    """The chance that one read recomputes early by XFetch's rule: exp(-τ / (β·δ))."""
    return math.exp(-check_non_negative("time_to_expiry_s", time_to_expiry_s)
                    / (check_positive("beta", beta) * check_positive("delta_s", delta_s)))


def _trigger_mass(read_rate: float, delta_s: float, beta: float, ttl_s: float,
                  lead_s: float) -> float:
    """Expected early triggers while more than ``lead_s`` is left before expiry:
    ∫ λ·exp(-τ/(βδ)) dτ over τ in [lead_s, ttl_s]."""
    scale = beta * delta_s
    return read_rate * scale * (math.exp(-lead_s / scale) - math.exp(-ttl_s / scale))


def stampede_probability(read_rate: float, delta_s: float, beta: float, ttl_s: float) -> float:
    """P(the value is not refreshed before it expires) under XFetch with Poisson reads.

    The reads that would trigger early recomputation are a thinned Poisson process of intensity
    λ·exp(-τ/(βδ)) at time τ before expiry. The refresh lands in time if the first trigger
    comes at least δ before expiry, so the stampede probability is the chance of no trigger in
    τ ∈ [δ, T]: exp(-λβδ(e^{-1/β} - e^{-T/(βδ)})). Assumes a recomputation takes exactly δ.
    """
    check_positive("read_rate", read_rate)
    check_positive("delta_s", delta_s)
    check_positive("beta", beta)
    check_positive("ttl_s", ttl_s)
    return math.exp(-_trigger_mass(read_rate, delta_s, beta, ttl_s, delta_s))


def expected_lead_s(read_rate: float, delta_s: float, beta: float, ttl_s: float) -> float:
    """How long before expiry XFetch starts its first recomputation, on average (seconds).

    P(lead < x) = exp(-m(x)) with m the trigger mass above x (see `stampede_probability`); for
    T ≫ βδ that is a Gumbel law, lead ≈ βδ·(ln(λβδ) + γ) with γ Euler's constant. Computed
    here by integrating the survival function exactly on [0, T] (0 if no read triggered).
    """
    check_positive("read_rate", read_rate)
    check_positive("delta_s", delta_s)
    check_positive("beta", beta)
    check_positive("ttl_s", ttl_s)
    xs = np.linspace(0.0, ttl_s, 4001)
    scale = beta * delta_s
    survival = 1.0 - np.exp(-read_rate * scale * (np.exp(-xs / scale) - math.exp(-ttl_s / scale)))
    return float(np.trapezoid(survival, xs))


# ---------------------------------------------------------------- the model


@dataclass(frozen=True)
class Scenario:
    """One hot key: reads at ``read_rate`` per second, recomputation ``fill_s``, TTL ``ttl_s``.

    ``processes`` app servers each keep their own single-flight table (the lock strategies).
    ``lock_timeout_s`` bounds how long a waiter waits for a holder before taking over (None:
    forever); ``holder_crashes`` makes the first recomputation after the start never finish
    (its holder died). ``db_servers`` None is a database that never queues.
    """

    strategy: str = "none"
    read_rate: float = 200.0
    fill_s: float = 0.5
    ttl_s: float = 10.0
    beta: float = 1.0
    duration_s: float = 40.0
    cache_s: float = 0.001
    processes: int = 1
    lock_timeout_s: float | None = 2.0
    holder_crashes: bool = False
    db_servers: int | None = None
    bin_s: float = 0.1
    seed: int = 1

    def __post_init__(self) -> None:
        check_choice("strategy", self.strategy, STRATEGIES)
        check_positive("read_rate", self.read_rate)
        check_positive("fill_s", self.fill_s)
        check_positive("ttl_s", self.ttl_s)
        check_non_negative("beta", self.beta)
        check_positive("duration_s", self.duration_s)
        check_non_negative("cache_s", self.cache_s)
        check_int("processes", self.processes, low=1)
        if self.lock_timeout_s is not None:
            check_positive("lock_timeout_s", self.lock_timeout_s)
        if self.db_servers is not None:
            check_int("db_servers", self.db_servers, low=1)
        check_positive("bin_s", self.bin_s)


@dataclass
class Run:
    """What one run leaves: the read and database tables, and per recomputation when it
    started and the expiry in force then (for the lead of early recomputation)."""

    scenario: Scenario
    reads: RequestTable
    db: RequestTable
    starts: np.ndarray
    expiries: np.ndarray


class _Cache:
    """The hot key's state and the read handler for one strategy."""

    def __init__(self, env: simpy.Environment, scenario: Scenario, db: ServerPool) -> None:
        self.env, self.s, self.db = env, scenario, db
        self.expires_at, self.delta = scenario.ttl_s, scenario.fill_s  # warm at t = 0
        self.uniforms: Iterator[float] = iter(())  # per read: XFetch's uniform, the process
        self.owners: Iterator[int] = iter(())
        self.flights: list[dict[int, simpy.Event]] = [{} for _ in range(scenario.processes)]
        self.starts: list[float] = []
        self.expiries: list[float] = []
        self.crash_pending = scenario.holder_crashes

    def read(self, key: int, cls: int):
        env, s = self.env, self.s
        owner, u = next(self.owners), next(self.uniforms)
        if env.now < self.expires_at:
            if s.strategy.startswith("xfetch") and s.beta > 0 and xfetch(
                    env.now, self.expires_at, self.delta, s.beta, lambda: u):
                if s.strategy == "xfetch":
                    yield from self.recompute()  # the reader recomputes, and waits for it
                    return
                if 0 not in self.flights[owner]:
                    self.flights[owner][0] = env.event()
                    env.process(self.lead(owner, self.flights[owner][0]))
            yield env.timeout(s.cache_s)
            return
        if s.strategy in ("none", "xfetch"):
            yield from self.recompute()
            return
        flights = self.flights[owner]
        while env.now >= self.expires_at:  # until the value is fresh again
            flight = flights.get(0)
            if flight is None:
                flight = flights[0] = env.event()
                yield from self.lead(owner, flight)
                return
            if s.lock_timeout_s is None:
                yield flight
                return
            yield flight | env.timeout(s.lock_timeout_s)
            if flight.triggered:
                return
            if flights.get(0) is flight:  # the holder is gone: take the lock over
                del flights[0]
        yield env.timeout(s.cache_s)

    def lead(self, owner: int, flight: simpy.Event):
        """Recompute as the single-flight leader and wake the waiters (one shared event)."""
        yield from self.recompute()
        if self.flights[owner].get(0) is flight:
            del self.flights[owner][0]
        if not flight.triggered:
            flight.succeed()

    def recompute(self):
        env = self.env
        if self.crash_pending and env.now >= self.expires_at:
            self.crash_pending = False
            yield env.event()  # the holder died: this recomputation never finishes
        self.starts.append(env.now)
        self.expiries.append(self.expires_at)
        start = env.now
        yield self.db.call()
        self.delta = env.now - start
        self.expires_at = max(self.expires_at, env.now + self.s.ttl_s)


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """Run one scenario; every random number is drawn up front from one generator."""
    rng = rng if rng is not None else np.random.default_rng(scenario.seed)
    env = simpy.Environment()
    db = ServerPool(env, scenario.db_servers, Deterministic(scenario.fill_s), rng)
    cache = _Cache(env, scenario, db)
    front = ServerPool(env, None, cache.read)
    source = RequestSource(env, PoissonArrivals(scenario.read_rate), front.submit, rng,
                           horizon_s=scenario.duration_s)
    cache.uniforms = iter(rng.random(len(source.times)).tolist())  # one per read, for XFetch
    cache.owners = iter(rng.integers(0, scenario.processes, len(source.times)).tolist())
    env.run(until=scenario.duration_s + 2 * scenario.fill_s)
    return Run(scenario, front.log.table(), db.log.table(), np.array(cache.starts),
               np.array(cache.expiries))


def _ends(run: Run) -> np.ndarray:
    """When each recomputation finished (infinity: still running when the run stopped)."""
    return np.nan_to_num(run.db.end, nan=math.inf)


def _episodes(run: Run) -> list[int]:
    """Index of the first recomputation of each episode (a run of overlapping ones)."""
    firsts, busy_until = [], -math.inf
    for i, (start, end) in enumerate(zip(run.starts, _ends(run), strict=True)):
        if start > busy_until:
            firsts.append(i)
        busy_until = max(busy_until, end)
    return firsts


def summary(run: Run) -> dict[str, float]:
    """Per-expiry and per-read figures of one run.

    ``recomputes_per_expiry`` (mean calls per episode of overlapping recomputations),
    ``peak_concurrent`` (most recomputations in flight at once), ``peak_db_qps`` (database
    calls per second in the worst ``bin_s`` bin), ``p99_read_s`` (read latency, answered reads),
    ``stuck_reads`` (reads never answered), ``expired_fraction`` (episodes whose value expired
    before the new one landed, so that reads missed: a stampede unless they were coalesced),
    ``mean_lead_s`` (how long before expiry the first recomputation of an episode started;
    negative: after) and ``wasted_fraction`` (the early part of that lead as a share of the
    TTL: freshness thrown away).
    """
    s = run.scenario
    firsts = np.array(_episodes(run), dtype=int)
    leads = run.expiries[firsts] - run.starts[firsts] if len(firsts) else np.array([math.nan])
    refreshed = _ends(run)[firsts] <= run.expiries[firsts] if len(firsts) else np.array([False])
    _, concurrent = occupancy(run.starts, run.db.end)
    _, qps = rate_over_time(run.db.arrival, s.bin_s, 0.0, s.duration_s)
    answered = ~np.isnan(run.reads.end)
    p99 = latency_percentiles(run.reads.latency[answered], [99])["latency_p99_s"]
    return {
        "recomputes_per_expiry": len(run.starts) / max(len(firsts), 1),
        "peak_concurrent": float(concurrent.max()) if len(concurrent) else 0.0,
        "peak_db_qps": float(qps.max()),
        "p99_read_s": float(p99),
        "stuck_reads": float((~answered).sum()),
        "expired_fraction": float(np.mean(~refreshed)),
        "mean_lead_s": float(np.mean(leads)),
        "wasted_fraction": float(np.mean(np.clip(leads, 0.0, None)) / s.ttl_s),
        "episodes": float(len(firsts)),
    }


def _model(rng: np.random.Generator, **params: Any) -> dict[str, float]:
    return summary(simulate(Scenario(**params), rng))


def sweep(base: Scenario, grid: dict[str, list[Any]], replications: int = 3,
          metrics: tuple[str, ...] = ("recomputes_per_expiry", "peak_db_qps", "p99_read_s",
                                      "expired_fraction", "wasted_fraction")
          ) -> list[dict[str, Any]]:
    """Mean and 95 % interval of each metric at every grid point (seeded replications)."""
    fixed = {k: v for k, v in base.__dict__.items() if k not in grid and k != "seed"}
    rows = sweep_grid(_model, grid, seed=base.seed, replications=replications, fixed=fixed)
    return aggregate(rows, by=list(grid), metrics=list(metrics))


def with_strategy(base: Scenario, strategy: str, **changes: Any) -> Scenario:
    """The same scenario (and traffic) with another strategy."""
    return replace(base, strategy=strategy, **changes)


# ---------------------------------------------------------------- plots


def over_time(run: Run) -> dict[str, np.ndarray]:
    """Per ``bin_s`` bin: database calls per second, recomputations in flight (most at once)
    and the p99 latency of the reads arriving in the bin."""
    s = run.scenario
    mids, qps = rate_over_time(run.db.arrival, s.bin_s, 0.0, s.duration_s)
    times, flight = occupancy(run.starts, run.db.end)
    states = np.append(0.0, flight)  # states[k]: how many in flight after the k-th change
    edges = np.append(mids - s.bin_s / 2, s.duration_s)
    first = np.searchsorted(times, edges[:-1], "right")  # the state at each bin's start
    last = np.searchsorted(times, edges[1:], "left")  # ... and after each change inside it
    peak = np.array([states[a: b + 1].max() for a, b in zip(first, last, strict=True)])
    _, p99 = per_bin(run.reads.arrival, np.nan_to_num(run.reads.latency, nan=s.duration_s),
                     s.bin_s, 0.0, s.duration_s, percentile_of(99))
    return {"time": mids, "db_qps": qps, "in_flight": peak, "p99_read_s": p99}


PANELS = {"db_qps": "DB calls per second", "in_flight": "recomputations in flight",
          "p99_read_s": "p99 read latency (s)"}


def plot_dashboard(runs: dict[str, Run], windows: Sequence[tuple[float, float]] = (),
                   metrics: Sequence[str] = tuple(PANELS)) -> Any:
    """Database calls per second, recomputations in flight and p99 read latency over time
    (or the ``metrics`` named, keys of ``PANELS``), one curve per named run."""
    from simulations import plots

    series = {label: over_time(run) for label, run in runs.items()}
    first = next(iter(series.values()))
    panels = {PANELS[m]: {k: v[m] for k, v in series.items()} for m in metrics}
    return plots.dashboard(first["time"], panels, windows=windows, window_label="holder dead")


LABELS = {
    "recomputes_per_expiry": "recomputations per expiry",
    "peak_db_qps": "peak DB calls per second",
    "p99_read_s": "p99 read latency (s)",
    "expired_fraction": "expiries with misses (share)",
    "wasted_fraction": "TTL thrown away (share)",
    "mean_lead_s": "first recompute before expiry (s)",
}


def plot_sweep(rows: list[dict[str, Any]], x: str, by: str | None, metrics: Sequence[str],
               xlabel: str, log_y: Sequence[str] = ()) -> Any:
    """One panel per metric against ``x``, a line per value of ``by``, 95 % interval bars."""
    from simulations import plots

    return plots.sweep_panels(rows, x=x, by=by, metrics=metrics, xlabel=xlabel,
                              ylabels={m: LABELS[m] for m in metrics}, log_y=log_y,
                              panel_size=(3.6, 3.0))
