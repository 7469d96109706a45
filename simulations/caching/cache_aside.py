"""The cache-aside study: read latency and database load against the size of an LRU cache.

Picture the cook of the pattern's module with a stopwatch and a tally sheet. Orders come in at
a steady rate, some dishes far more popular than others (Zipf). Each order she finds in the
fridge takes a moment; each one she does not costs a walk to the store, where a few porters serve
one cook at a time and a queue forms when too many walks arrive at once. A bigger fridge means
fewer walks: the hit ratio h rises, the store sees (1 − h)·λ walks per second, and the slow
orders, the ones the tail percentiles count, become rarer.

Built from the toolkit: the key of each read from ``ZipfKeys``, whether it hits from replaying
the keys through the shared ``LRUCache`` (``simulations.caches.replay``: on a miss cache-aside
fills the key), the database a ``ServerPool`` behind a lookup handler (the recipe in
``simulations/__init__.py``), or the same queue on the toolkit's fast path. Che's approximation
(``simulations.theory``) predicts the hit ratio; the mean and the p99 follow from it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import simpy

from patterns.caching.cache_aside import CacheAside
from patterns.caching.eviction_policies import LRUCache
from patterns.checks import check_choice, check_int, check_non_negative, check_positive
from simulations.caches import read_latencies, replay
from simulations.clients import RequestSource
from simulations.distributions import Distribution, LogNormal, quantile
from simulations.experiments import sweep_scenario
from simulations.metrics import per_bin, rate_over_time
from simulations.records import RequestLog
from simulations.servers import ServerPool
from simulations.theory import che_hit_ratio
from simulations.workloads import PoissonArrivals, ZipfKeys

__all__ = ["CacheAside", "Run", "Scenario", "capacity_for_db_load", "db_load_rps", "draw",
           "mean_latency_s", "p99_latency_s", "plot_sweep", "plot_timeline", "predicted",
           "simulate", "summary", "sweep", "timeline"]

# ---------------------------------------------------------------- theory


def db_load_rps(hit_ratio: float, arrival_rate: float) -> float:
    """Reads per second that reach the database: the misses, (1 − h)·λ."""
    return (1.0 - hit_ratio) * arrival_rate


def mean_latency_s(hit_ratio: float, t_cache_s: float, t_db_s: float) -> float:
    """Mean read latency h·t_cache + (1 − h)·t_db, with ``t_db_s`` a miss's whole time (the
    cache lookup, then the database)."""
    return hit_ratio * t_cache_s + (1.0 - hit_ratio) * t_db_s


def p99_latency_s(hit_ratio: float, t_cache_s: float, db: Distribution, q: float = 0.99) -> float:
    """The q-quantile of read latency when the database never queues (unlimited workers).

    A read takes t_cache, plus a database time S on a miss, so P(latency > t_cache + x) =
    (1 − h)·P(S > x). With a miss ratio at most 1 − q the quantile is t_cache itself: the tail
    falls off a cliff once fewer than 1 % of reads miss. Otherwise it is t_cache plus S's
    quantile 1 − (1 − q)/(1 − h).
    """
    miss = 1.0 - hit_ratio
    if miss <= 1.0 - q:
        return t_cache_s
    return t_cache_s + quantile(db, 1.0 - (1.0 - q) / miss)


@functools.cache
def _popularity(n_keys: int, alpha: float) -> np.ndarray:
    return ZipfKeys(n_keys, alpha).probabilities


def predicted(scenario: Scenario) -> dict[str, float]:
    """Che's hit ratio for the scenario, and the database load, mean and p99 latency (ms) that
    follow from it (the p99 for a database that never queues)."""
    s = scenario
    h = che_hit_ratio(_popularity(s.n_keys, s.alpha), s.capacity)
    return {
        "hit_ratio": h,
        "db_load_rps": db_load_rps(h, s.arrival_rate),
        "mean_latency_ms": 1e3 * mean_latency_s(h, s.t_cache_s, s.t_cache_s + s.db.mean),
        "p99_latency_ms": 1e3 * p99_latency_s(h, s.t_cache_s, s.db),
    }


def capacity_for_db_load(scenario: Scenario, max_db_load_rps: float) -> int:
    """The smallest capacity whose Che hit ratio keeps the database load at or under the target
    (bisection on C: the hit ratio grows with C)."""
    target = check_positive("max_db_load_rps", max_db_load_rps)
    p = _popularity(scenario.n_keys, scenario.alpha)
    low, high = 0, scenario.n_keys  # the load at high (every key cached) is zero
    while high - low > 1:
        middle = (low + high) // 2
        if db_load_rps(che_hit_ratio(p, middle), scenario.arrival_rate) <= target:
            high = middle
        else:
            low = middle
    return high


# ---------------------------------------------------------------- the simulation


@dataclass(frozen=True)
class Scenario:
    """Reads of Zipf-popular keys through a cache-aside LRU cache in front of a database."""

    n_keys: int = 10_000
    alpha: float = 0.8  # Zipf exponent of key popularity
    capacity: int = 500  # cache entries
    arrival_rate: float = 1000.0  # reads per second (Poisson)
    t_cache_s: float = 0.0005  # the cache lookup, paid by every read
    db: Distribution = field(default_factory=lambda: LogNormal(0.005, 1.0))  # per database read
    db_workers: int | None = 4  # the database's concurrent reads (None: unlimited, no queue)
    requests: int = 30_000
    warmup: int = 10_000  # reads before the cache is warm: left out of the summary
    flush_at_s: float | None = None  # the cache restarts empty at this time
    prewarm: int = 0  # after a start or a flush, load this many of the hottest keys first
    seed: int = 1

    def __post_init__(self) -> None:
        check_int("n_keys", self.n_keys, 1)
        check_non_negative("alpha", self.alpha)
        check_int("capacity", self.capacity, 1)
        check_positive("arrival_rate", self.arrival_rate)
        check_non_negative("t_cache_s", self.t_cache_s)
        if self.db_workers is not None:
            check_int("db_workers", self.db_workers, 1)
        check_int("requests", self.requests, 1)
        check_int("warmup", self.warmup, 0, self.requests - 1)
        if self.flush_at_s is not None:
            check_non_negative("flush_at_s", self.flush_at_s)
        check_int("prewarm", self.prewarm, 0, self.capacity)


@dataclass(frozen=True, eq=False)
class Run:
    """One row per read: arrival time (s), key, hit, latency (s); and the database's rows."""

    scenario: Scenario
    arrival: np.ndarray
    key: np.ndarray
    hit: np.ndarray
    latency: np.ndarray


def cache_hits(scenario: Scenario, times: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Which reads hit: the keys replayed through a fresh `LRUCache` (a miss fills the key, as
    cache-aside does), restarted empty at ``flush_at_s`` and prewarmed with the hottest keys."""
    s = scenario

    def fresh() -> LRUCache:
        cache = LRUCache(s.capacity)
        for key in range(s.prewarm - 1, -1, -1):  # the hottest key ends most recently used
            cache.put(key, True)
        return cache

    cut = len(keys) if s.flush_at_s is None else int(np.searchsorted(times, s.flush_at_s))
    return np.concatenate([replay(fresh(), keys[:cut]), replay(fresh(), keys[cut:])])


def simulate(scenario: Scenario, rng: np.random.Generator | None = None,
             engine: str = "fast") -> Run:
    """Run the scenario; deterministic for a given ``scenario.seed`` (or ``rng``).

    Arrivals, then keys, then database times are drawn from one generator in that order, so
    ``engine="simpy"`` (a ``ServerPool`` database behind a lookup handler) and ``engine="fast"``
    (the same FIFO queue by ``fastpath.fifo_queue``) give the same rows, and runs that differ
    only in the cache see the same traffic.
    """
    s = scenario
    check_choice("engine", engine, ("fast", "simpy"))
    rng = np.random.default_rng(s.seed) if rng is None else rng
    zipf = ZipfKeys(s.n_keys, s.alpha)
    if engine == "simpy":
        return _simulate_simpy(s, rng, zipf)
    times = PoissonArrivals(s.arrival_rate).times(rng, n=s.requests)
    keys = zipf.sample(rng, s.requests)
    hit = cache_hits(s, times, keys)
    latency = read_latencies(times, hit, s.t_cache_s, s.db, s.db_workers, rng)
    return Run(s, times, keys, hit, latency)


def _simulate_simpy(s: Scenario, rng: np.random.Generator, zipf: ZipfKeys) -> Run:
    env = simpy.Environment()
    front = ServerPool(env, None, lambda key, cls: lookup(key), log=RequestLog(s.requests))
    source = RequestSource(env, PoissonArrivals(s.arrival_rate),
                           lambda _key, _cls: front.submit(len(front.log)), rng, n=s.requests,
                           keys=zipf)
    hit = cache_hits(s, source.times, source.keys)
    db = ServerPool(env, s.db_workers, s.db, rng, log=RequestLog(s.requests))

    def lookup(row: int):
        """A read: the cache lookup, then on a miss the database (queueing for a worker)."""
        yield env.timeout(s.t_cache_s)
        if not hit[row]:
            return (yield db.call(row))
        return None

    env.run()
    table = front.log.table()
    return Run(s, table.arrival, source.keys, hit, table.latency)


def summary(run: Run) -> dict[str, float]:
    """Headline numbers over the reads after the warm-up: hit ratio, database reads per second,
    mean and p99 read latency (ms)."""
    part = slice(run.scenario.warmup, None)
    arrival, hit, latency = run.arrival[part], run.hit[part], run.latency[part]
    duration = len(arrival) / run.scenario.arrival_rate
    return {
        "hit_ratio": float(hit.mean()),
        "db_load_rps": float((~hit).sum() / duration),
        "mean_latency_ms": 1e3 * float(latency.mean()),
        "p99_latency_ms": 1e3 * float(np.percentile(latency, 99)),
    }


def timeline(run: Run, bin_s: float = 0.5) -> dict[str, np.ndarray]:
    """Per-bin metrics for a dashboard: hit ratio, database reads per second, p99 (ms)."""
    end_s = float(run.arrival[-1])
    time_s, hit_ratio = per_bin(run.arrival, run.hit, bin_s, 0.0, end_s, np.mean)
    _, p99 = per_bin(run.arrival, 1e3 * run.latency, bin_s, 0.0, end_s,
                     lambda v: float(np.percentile(v, 99)))
    return {"time_s": time_s, "hit_ratio": hit_ratio,
            "db_load_rps": rate_over_time(run.arrival[~run.hit], bin_s, 0.0, end_s)[1],
            "p99_latency_ms": p99}


# ---------------------------------------------------------------- sweeps and plots

LABELS = {
    "hit_ratio": "hit ratio",
    "db_load_rps": "database reads (per s)",
    "mean_latency_ms": "mean read latency (ms)",
    "p99_latency_ms": "p99 read latency (ms)",
}
SETTINGS = {"capacity": "cache size C (entries)", "alpha": "Zipf α",
            "db_workers": "database workers", "arrival_rate": "reads per second"}


def sweep(base: Scenario, replications: int = 1, **grid: Sequence[Any]) -> list[dict[str, Any]]:
    """Run ``base`` (fast path) at every combination of the settings in ``grid`` (Scenario
    field -> values) with the toolkit's ``sweep`` and ``aggregate``: one row per setting with
    the mean of each `summary` metric and its 95 % half-width under ``<metric>_ci``."""
    return sweep_scenario(simulate, summary, base, grid, settings=SETTINGS, metrics=list(LABELS),
                          replications=replications)


def plot_sweep(rows: list[dict[str, Any]], base: Scenario,
               metrics: Sequence[str] = ("hit_ratio", "db_load_rps", "p99_latency_ms")) -> list:
    """One panel per metric against cache size, a line per Zipf α (``plots.sweep_panels``),
    with Che's prediction dashed on the hit-ratio and database-load panels."""
    from simulations import plots

    for metric in metrics:
        check_choice("metric", metric, LABELS)
    rows = sorted(rows, key=lambda row: (row["alpha"], row["capacity"]))
    axes = plots.sweep_panels(rows, x="capacity", by="alpha", metrics=metrics,
                              xlabel=SETTINGS["capacity"], ylabels=LABELS,
                              group_label=lambda a: f"α = {a:g}", log_y={"p99_latency_ms"})
    capacities = sorted({row["capacity"] for row in rows})
    for ax, metric in zip(axes, metrics, strict=True):
        plots.log_scale(ax, "x")
        if metric in ("hit_ratio", "db_load_rps"):
            for i, alpha in enumerate(sorted({row["alpha"] for row in rows})):
                theory = [predicted(replace(base, alpha=alpha, capacity=c))[metric]
                          for c in capacities]
                ax.plot(capacities, theory, **plots.THEORY,
                        label="Che's approximation" if i == 0 else None)
            ax.legend(fontsize="small")
    return axes


def plot_timeline(runs: dict[str, Run], bin_s: float = 0.5) -> list:
    """Hit ratio, database load and p99 over time, one line per run (``plots.dashboard``),
    the first run's cache flush marked."""
    from simulations import plots

    series = {label: timeline(run, bin_s) for label, run in runs.items()}
    flush = next(iter(runs.values())).scenario.flush_at_s
    metrics = ("hit_ratio", "db_load_rps", "p99_latency_ms")
    return plots.dashboard(
        next(iter(series.values()))["time_s"],
        {LABELS[m]: {label: values[m] for label, values in series.items()} for m in metrics},
        windows=[(flush, flush + bin_s)] if flush is not None else [],
        window_label="cache restarts empty")


_DEFAULT = Scenario()


@functools.cache
def _theory_curve(scenario: Scenario) -> tuple[np.ndarray, list[dict[str, float]]]:
    """`predicted` at 25 sizes from 10 to every key; depends on neither the size nor the
    database's workers, so a slider that moves only those reuses it."""
    sizes = np.unique(np.geomspace(10, scenario.n_keys, 25).astype(int))
    return sizes, [predicted(replace(scenario, capacity=int(c))) for c in sizes]


def draw(capacity: int = 500, alpha: float = 0.8, db_workers: int = 4,
         base: Scenario | None = None) -> None:
    """The lesson's slider figure: Che's hit ratio against cache size for this α, and mean and
    p99 latency against cache size (theory for a database that never queues), each with the
    simulated point at the chosen size and database workers."""
    import matplotlib.pyplot as plt

    from simulations import plots

    s = replace(base or _DEFAULT, capacity=capacity, alpha=alpha, db_workers=db_workers)
    measured = summary(simulate(s))
    sizes, theory = _theory_curve(replace(s, capacity=1, db_workers=None))

    _, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.6), layout="constrained")
    for ax in (left, right):  # linear axes: log ones would double the redraw time
        plots.new_axes(ax)
        ax.set_xlabel(SETTINGS["capacity"])
    left.plot(sizes, [t["hit_ratio"] for t in theory], **plots.THEORY, label="Che's approximation")
    left.plot([capacity], [measured["hit_ratio"]], "o", label="simulation")
    left.set(ylabel=LABELS["hit_ratio"], ylim=(0, 1), title=f"Zipf α = {alpha:g}")
    right.plot(sizes, [t["mean_latency_ms"] for t in theory], color=plots.COLORS[0],
               linestyle="--", label="mean, theory")
    right.plot(sizes, [t["p99_latency_ms"] for t in theory], color=plots.COLORS[1],
               linestyle="--", label="p99, theory (no queueing)")
    right.plot([capacity], [measured["mean_latency_ms"]], "o", color=plots.COLORS[0],
               label="mean, simulation")
    right.plot([capacity], [measured["p99_latency_ms"]], "s", color=plots.COLORS[1],
               label="p99, simulation")
    right.set(ylabel="read latency (ms)", ylim=(0, None),
              title=f"{db_workers} database workers, {s.arrival_rate:g} reads/s")
    for ax in (left, right):
        ax.legend(fontsize="small")
