"""The TTL study: how long a cached copy may live, traded between hit ratio and stale reads.

Picture the office fridge again, with a stopwatch and a notebook. Colleagues come for milk at
random (reads, λ per second for each carton), and now and then the dairy changes its recipe
(updates, μ per second). Every time someone finds no valid carton they buy one (a miss) that is
good for T seconds; every pour before that is a hit, and a hit is *stale* if the recipe changed
since the carton was bought. The notebook's two columns are the lesson's trade-off: the share of
pours that needed no trip to the shop, and the share of pours of an out-of-date recipe.

Closed forms (Poisson reads and updates, independent; the TTL counts from the miss that wrote
the entry, reads do not extend it): per object the hit ratio is λT/(1 + λT) and the stale share
of hits is 1 − (1 − e^(−μT))/(μT); over a Zipf catalogue both are sums over keys. ``simulate``
replays the same Poisson streams through the pattern's ``TTLCache`` on a moved clock;
``simulate_service`` puts that cache in front of a database (``ServerPool``) in SimPy to measure
read latency and the database's load, including the miss spike when many entries expire at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import simpy
from simpy.events import Timeout

from patterns.caching.ttl_expiry import BoundedTTLCache, ProductionTTLCache, TTLCache, TTLConfig
from patterns.checks import check_int, check_non_negative, check_positive, check_range
from simulations.distributions import Exponential
from simulations.experiments import aggregate
from simulations.experiments import sweep as run_sweep
from simulations.metrics import latency_percentiles, per_bin, percentile_of, rate_over_time
from simulations.servers import ServerPool
from simulations.workloads import PoissonArrivals, ZipfKeys

__all__ = [
    "Run",
    "Scenario",
    "catalogue",
    "hit_ratio",
    "largest_ttl_s",
    "plot_dashboard",
    "read_through",
    "simulate",
    "simulate_service",
    "stale_fraction_of_hits",
    "stale_fraction_of_reads",
    "summary",
    "sweep",
    "timeline",
]

_MISSING = object()


# --- closed forms -------------------------------------------------------------------------------

def hit_ratio(read_rate: float, ttl_s: float) -> float:
    """λT/(1 + λT): one object, Poisson reads at ``read_rate``, entry written on a miss only.

    Renewal argument: a cycle is one miss, then the hits of the next T seconds (Poisson, mean
    λT), then the wait for the next read after expiry (a miss again). Per cycle 1 + λT reads,
    λT of them hits; the long-run ratio is their quotient (renewal-reward theorem).
    """
    x = check_non_negative("read_rate", read_rate) * check_positive("ttl_s", ttl_s)
    return x / (1.0 + x)


def stale_fraction_of_hits(update_rate: float, ttl_s: float) -> float:
    """1 − (1 − e^(−μT))/(μT): the share of hits that return an out-of-date value.

    A hit at age a (time since the miss that fetched the value) is stale iff the source was
    updated in (0, a]: probability 1 − e^(−μa) for Poisson updates at μ. Given their number,
    the hits of a cycle fall uniformly on [0, T), so the expected stale share is the average of
    1 − e^(−μa) over a in [0, T). It does not depend on the read rate.
    """
    x = check_non_negative("update_rate", update_rate) * check_positive("ttl_s", ttl_s)
    return 0.0 if x == 0 else 1.0 + math.expm1(-x) / x


def stale_fraction_of_reads(read_rate: float, update_rate: float, ttl_s: float) -> float:
    """Stale reads over all reads: the hit ratio times the stale share of hits."""
    return hit_ratio(read_rate, ttl_s) * stale_fraction_of_hits(update_rate, ttl_s)


def catalogue(probabilities: Sequence[float], read_rate: float, update_rate: float,
              ttl_s: float) -> dict[str, float]:
    """The closed forms summed over keys read with ``probabilities`` (``read_rate`` in total).

    Key i sees reads at λᵢ = pᵢ·λ and updates at ``update_rate`` (μ, the same for every key).
    Returns the overall hit ratio Σ pᵢhᵢ, the stale shares of hits and of reads, and the mean
    number of cached entries, Σ λᵢT/(1 + λᵢT) (each key is cached for T out of every
    T + 1/λᵢ seconds): the memory an unbounded TTL cache needs.
    """
    p = np.asarray(probabilities, dtype=float)
    p = p / p.sum()
    x = p * check_positive("read_rate", read_rate) * check_positive("ttl_s", ttl_s)
    h = x / (1.0 + x)
    stale = stale_fraction_of_hits(update_rate, ttl_s)
    overall = float(np.sum(p * h))
    return {"hit_ratio": overall, "stale_fraction_of_hits": stale,
            "stale_fraction_of_reads": overall * stale, "entries": float(h.sum())}


def largest_ttl_s(update_rate: float, target: float, read_rate: float | None = None) -> float:
    """The largest TTL whose stale share stays at ``target``: of hits, or of all reads when
    ``read_rate`` is given (both grow with T, so bisection finds it)."""
    check_range("target", target, 0.0, 1.0, low_open=True, high_open=True)
    check_positive("update_rate", update_rate)

    def stale(t: float) -> float:
        if read_rate is None:
            return stale_fraction_of_hits(update_rate, t)
        return stale_fraction_of_reads(read_rate, update_rate, t)

    low, high = 1e-9, 1.0 / update_rate
    while stale(high) < target:
        high *= 2.0
    for _ in range(100):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if stale(mid) < target else (low, mid)
    return low


# --- the replayed model ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Scenario:
    """Reads and updates over a catalogue of keys, and the TTL cache in front of it.

    ``read_rate``: reads per second in total, keys drawn from Zipf(``zipf_alpha``) over
    ``n_keys`` (one key: the per-object model). ``update_rate``: updates per second *per key*
    (μ). ``jitter``: each entry's TTL is drawn from [T(1 − jitter), T]. ``invalidate``: an update
    also deletes the cached entry (the write path invalidates). ``preload``: every key is
    written at t = 0, as a warm-up job would. ``capacity``: at most that many entries, the least
    recently used evicted first (``BoundedTTLCache``); None for no bound. Database times are for
    ``simulate_service``.
    """

    read_rate: float = 2.0
    update_rate: float = 0.01
    ttl_s: float = 30.0
    n_keys: int = 1
    zipf_alpha: float = 0.8
    duration_s: float = 20_000.0
    warmup_s: float = 0.0
    jitter: float = 0.0
    invalidate: bool = False
    preload: bool = False
    capacity: int | None = None
    db_servers: int = 4
    db_service_s: float = 0.01
    cache_s: float = 0.0005
    seed: int = 1

    def __post_init__(self) -> None:
        check_positive("read_rate", self.read_rate)
        check_non_negative("update_rate", self.update_rate)
        check_positive("ttl_s", self.ttl_s)
        check_int("n_keys", self.n_keys, 1)
        check_positive("duration_s", self.duration_s)
        check_range("warmup_s", self.warmup_s, 0.0, self.duration_s, high_open=True)
        check_range("jitter", self.jitter, 0.0, 1.0, high_open=True)
        if self.capacity is not None:
            check_int("capacity", self.capacity, 1)
        check_int("db_servers", self.db_servers, 1)
        check_positive("db_service_s", self.db_service_s)
        check_non_negative("cache_s", self.cache_s)


@dataclass
class Run:
    """One run: per read its time, key, hit and staleness; and for the service, its latency."""

    scenario: Scenario
    times: np.ndarray
    keys: np.ndarray
    hits: np.ndarray
    stale: np.ndarray
    latency: np.ndarray | None = None


def _cache(s: Scenario, clock) -> TTLCache | BoundedTTLCache:
    if s.capacity is None:
        return TTLCache(s.ttl_s, clock)
    return BoundedTTLCache(s.capacity, s.ttl_s, clock)


def _traffic(s: Scenario, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Read times and keys, update times and keys, and one TTL factor per possible write."""
    times = PoissonArrivals(s.read_rate).times(rng, horizon=s.duration_s)
    keys = (np.zeros(len(times), dtype=np.int64) if s.n_keys == 1
            else ZipfKeys(s.n_keys, s.zipf_alpha).sample(rng, len(times)))
    if s.update_rate > 0:
        update_times = PoissonArrivals(s.update_rate * s.n_keys).times(rng, horizon=s.duration_s)
    else:
        update_times = np.empty(0)
    update_keys = rng.integers(0, s.n_keys, len(update_times))
    ttl_factors = 1.0 - s.jitter * rng.random(len(times) + s.n_keys)
    return times, keys, update_times, update_keys, ttl_factors


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """Replay reads and updates in time order through ``TTLCache`` (``BoundedTTLCache`` with a
    ``capacity``) on a moved clock.

    The source's value of a key is its update count; a miss caches the current count, a hit is
    stale when the cached count is behind.
    """
    s = scenario
    rng = rng if rng is not None else np.random.default_rng(s.seed)
    times, keys, update_times, update_keys, ttl_factors = _traffic(s, rng)
    all_times = np.concatenate([times, update_times])
    order = np.argsort(all_times, kind="stable").tolist()
    n_reads = len(times)
    key_list = np.concatenate([keys, update_keys]).tolist()
    time_list = all_times.tolist()
    factors = (s.ttl_s * ttl_factors).tolist()
    now = [0.0]
    cache = _cache(s, lambda: now[0])
    version = [0] * s.n_keys
    written = 0
    if s.preload:
        for key in range(s.n_keys):
            cache.put(key, 0, factors[written])
            written += 1
    hits = np.zeros(n_reads, dtype=bool)
    stale = np.zeros(n_reads, dtype=bool)
    get, put, delete = cache.get, cache.put, cache.delete
    for i in order:
        key = key_list[i]
        now[0] = time_list[i]
        if i >= n_reads:  # an update at the source
            version[key] += 1
            if s.invalidate:
                delete(key)
            continue
        value = get(key, _MISSING)
        if value is _MISSING:
            put(key, version[key], factors[written])
            written += 1
        else:
            hits[i] = True
            stale[i] = value != version[key]
    return Run(s, times, keys, hits, stale)


def simulate_service(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """The cache in front of a database, in SimPy: a hit costs ``cache_s``, a miss waits for
    one of ``db_servers`` (exponential service of mean ``db_service_s``) and then writes the
    value it read. Same traffic as ``simulate`` for the same seed; the cache's clock is
    ``env.now``."""
    s = scenario
    rng = rng if rng is not None else np.random.default_rng(s.seed)
    times, keys, update_times, update_keys, ttl_factors = _traffic(s, rng)
    env = simpy.Environment()
    cache = _cache(s, lambda: env.now)
    db = ServerPool(env, s.db_servers, Exponential(s.db_service_s), rng)
    version = [0] * s.n_keys
    factors = iter((s.ttl_s * ttl_factors).tolist())
    if s.preload:
        for key in range(s.n_keys):
            cache.put(key, 0, next(factors))
    hits = np.zeros(len(times), dtype=bool)
    stale = np.zeros(len(times), dtype=bool)
    latency = np.full(len(times), np.nan)

    def read(i: int, key: int):
        value = cache.get(key, _MISSING)
        if value is _MISSING:
            yield db.call(key)
            cache.put(key, version[key], next(factors))
        else:
            hits[i], stale[i] = True, value != version[key]
            yield Timeout(env, s.cache_s)
        latency[i] = env.now - times[i]

    def reads():
        for i, (t, key) in enumerate(zip(times.tolist(), keys.tolist(), strict=True)):
            yield Timeout(env, t - env.now)
            env.process(read(i, key))

    def updates():
        for t, key in zip(update_times.tolist(), update_keys.tolist(), strict=True):
            yield Timeout(env, t - env.now)
            version[key] += 1
            if s.invalidate:
                cache.delete(key)

    env.process(reads())
    env.process(updates())
    env.run()
    return Run(s, times, keys, hits, stale, latency)


def read_through(scenario: Scenario, config: TTLConfig,
                 rng: np.random.Generator | None = None) -> dict[str, float]:
    """The scenario's reads through ``ProductionTTLCache`` (read-through, moved clock, refreshes
    run at once): how many reads waited for the source, and the stale share of all reads."""
    s = scenario
    rng = rng if rng is not None else np.random.default_rng(s.seed)
    times, keys, update_times, update_keys, _ = _traffic(s, rng)
    now = [0.0]
    cache = ProductionTTLCache("study", config, lambda: now[0], seed=s.seed,
                               spawn=lambda work: work())
    version = [0] * s.n_keys
    updates = iter(zip(update_times.tolist(), update_keys.tolist(), strict=True))
    pending = next(updates, None)
    stale = 0
    for t, key in zip(times.tolist(), keys.tolist(), strict=True):
        while pending is not None and pending[0] <= t:
            version[pending[1]] += 1
            pending = next(updates, None)
        now[0] = t
        stale += cache.get(key, version.__getitem__) != version[key]
    counts = cache.metrics.counts
    return {"reads": len(times), "waited_for_source": counts["miss"] / len(times),
            "served_stale_after_expiry": counts["stale"] / len(times),
            "stale_fraction_of_reads": stale / len(times),
            "source_loads_per_s": (counts["miss"] + counts["refresh"]) / s.duration_s}


def summary(run: Run, start_s: float | None = None, end_s: float | None = None) -> dict:
    """Hit ratio, stale shares, source load (misses/s) and, for a service run, latency, over
    reads arriving in [start_s, end_s) (default: after the warm-up, to the end)."""
    s = run.scenario
    start = s.warmup_s if start_s is None else start_s
    end = s.duration_s if end_s is None else end_s
    inside = (run.times >= start) & (run.times < end)
    hits, stale = run.hits[inside], run.stale[inside]
    n_hits = int(hits.sum())
    row = {"reads": int(inside.sum()), "hit_ratio": float(hits.mean()),
           "stale_fraction_of_hits": float(stale.sum() / n_hits) if n_hits else math.nan,
           "stale_fraction_of_reads": float(stale.mean()),
           "source_load_rps": float((~hits).sum() / (end - start))}
    if run.latency is not None:
        row.update(latency_percentiles(run.latency[inside], [50, 99]))
    return row


def timeline(run: Run, bin_s: float, start_s: float = 0.0,
             end_s: float | None = None) -> dict[str, np.ndarray]:
    """Per time bin: misses per second (the source's load), hit ratio, stale share of reads and,
    for a service run, p99 read latency."""
    end = run.scenario.duration_s if end_s is None else end_s
    mids, misses = rate_over_time(run.times[~run.hits], bin_s, start_s, end)
    out = {"time_s": mids, "source_load_rps": misses,
           "hit_ratio": per_bin(run.times, run.hits, bin_s, start_s, end, np.mean)[1],
           "stale_fraction": per_bin(run.times, run.stale, bin_s, start_s, end, np.mean)[1]}
    if run.latency is not None:
        out["p99_latency_s"] = per_bin(run.times, run.latency, bin_s, start_s, end,
                                       percentile_of(99))[1]
    return out


def sweep(base: Scenario, replications: int = 1, service: bool = False,
          **grid: Sequence[Any]) -> list[dict[str, Any]]:
    """``summary`` over a grid of Scenario fields (``ttl_s=[...]``), replicated with seeds from
    ``base.seed``; aggregated rows carry a 95 % interval (``<metric>_ci``)."""
    model = simulate_service if service else simulate

    def run(rng: np.random.Generator, **params: Any) -> dict[str, Any]:
        return summary(model(replace(base, **params), rng))

    rows = run_sweep(run, grid, seed=base.seed, replications=replications)
    metrics = [m for m in rows[0] if m not in grid and m != "replication"]
    return aggregate(rows, list(grid), metrics)


def plot_dashboard(runs: dict[str, Run], bin_s: float, end_s: float | None = None,
                   metrics: Sequence[str] = ("source_load_rps", "p99_latency_s")) -> list:
    """The runs' ``timeline`` metrics stacked over time (``simulations.plots.dashboard``)."""
    from simulations import plots

    labels = {"source_load_rps": "database load (misses/s)", "hit_ratio": "hit ratio",
              "stale_fraction": "stale share of reads", "p99_latency_s": "p99 read latency (s)"}
    lines = {name: timeline(run, bin_s, end_s=end_s) for name, run in runs.items()}
    times = next(iter(lines.values()))["time_s"]
    panels = {labels[m]: {name: line[m] for name, line in lines.items()} for m in metrics}
    return plots.dashboard(times, panels)
