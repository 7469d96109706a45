"""The eviction-policies study: hit ratio against cache size for LRU, FIFO, LFU, RANDOM, W-TinyLFU.

Picture the desk beside the archive again, now with a tally sheet: the same stream of requests
is replayed through desks that differ only in the folder they send back, and the sheet says how
many requests each desk answered. Two kinds of stream: the independent-reference model (IRM:
every request drawn afresh from one fixed Zipf popularity, where theory has answers) and a
stream whose popularity drifts (new keys arrive hot and cool down, so the recent past predicts
the near future: temporal locality). A third, a scan, reads a run of cold keys once.

Built from the toolkit: ``ZipfKeys`` for popularity, ``simulations.caches.replay`` for the hits,
``simulations.theory`` (Che's approximation) and ``ZipfKeys.top_share`` (perfect LFU) for the
closed forms, ``simulations.plots`` for the figures, ``simulations.redis_server`` for a real
Redis with ``allkeys-lru``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from patterns.caching.eviction_policies import (
    EvictingCache,
    FIFOCache,
    LFUCache,
    LRUCache,
    RandomCache,
    WTinyLFUCache,
)
from patterns.checks import check_choice, check_int, check_non_negative
from simulations.caches import read_latencies, replay
from simulations.distributions import Distribution, LogNormal
from simulations.theory import che_hit_ratio
from simulations.workloads import PoissonArrivals, ZipfKeys

__all__ = ["POLICIES", "THEORY", "drifting_keys", "hit_ratio", "hit_ratio_over_time",
           "hit_ratios", "plot_comparison", "plot_sizes", "read_latency", "redis_lru_hit_ratio",
           "size_sweep",
           "theory_hit_ratios", "with_scan"]

POLICIES: dict[str, Callable[[int], EvictingCache]] = {
    "LRU": LRUCache,
    "FIFO": FIFOCache,
    "LFU": LFUCache,
    "RANDOM": lambda capacity: RandomCache(capacity, random.Random(1)),
    "W-TinyLFU": WTinyLFUCache,
}
"""Each policy's cache by name, for a capacity (RANDOM seeded, so every run is the same)."""

THEORY = {"LRU": "Che (LRU)", "FIFO": "Che (FIFO = RANDOM)", "LFU": "perfect LFU (top-C share)"}


def drifting_keys(popularity: ZipfKeys, size: int, rng: np.random.Generator,
                  new_key_every: float = 0.0) -> np.ndarray:
    """``size`` requests whose popularity drifts: every ``new_key_every`` requests a new key
    takes rank 0 and every other key moves one rank down (news, feeds, new releases).

    Rank r at request t is key ``n_keys - 1 - r + t // new_key_every``, so key ids grow as keys
    arrive; ``new_key_every = 0`` is the IRM (no drift): ranks are keys, as in ``ZipfKeys``.
    """
    size = check_int("size", size, 1)
    new_key_every = check_non_negative("new_key_every", new_key_every)
    ranks = popularity.sample(rng, size)
    if new_key_every == 0:
        return ranks
    shift = (np.arange(size) // new_key_every).astype(np.int64)
    return popularity.n_keys - 1 - ranks + shift


def with_scan(keys: np.ndarray, start: int, length: int) -> np.ndarray:
    """``keys`` with requests ``start`` to ``start + length`` replaced by a scan: ``length``
    keys requested once each, none of which the stream ever asks for again (a batch job, a
    backup, a crawler)."""
    keys = np.asarray(keys)
    start = check_int("start", start, 0, len(keys))
    length = check_int("length", length, 0, len(keys) - start)
    scanned = keys.copy()
    scanned[start:start + length] = keys.max() + 1 + np.arange(length)
    return scanned


def hit_ratio(policy: str, capacity: int, keys: np.ndarray, warmup: int = 0) -> float:
    """The share of requests after the first ``warmup`` that ``policy`` (a ``POLICIES`` name)
    with ``capacity`` entries answered from the cache."""
    cache = POLICIES[check_choice("policy", policy, POLICIES)](capacity)
    return float(replay(cache, keys)[check_int("warmup", warmup, 0, len(keys) - 1):].mean())


def hit_ratios(capacity: int, keys: np.ndarray, warmup: int = 0,
               policies: Sequence[str] = tuple(POLICIES)) -> dict[str, float]:
    """``hit_ratio`` of each policy on the same requests (common random numbers)."""
    return {name: hit_ratio(name, capacity, keys, warmup) for name in policies}


def theory_hit_ratios(popularity: ZipfKeys, capacity: int) -> dict[str, float]:
    """The IRM's closed forms at ``capacity``: Che's approximation for LRU and for FIFO (the
    same number for RANDOM), and perfect LFU's top-C popularity share, an upper bound for any
    policy that does not know the future."""
    p = popularity.probabilities
    return {"LRU": che_hit_ratio(p, capacity, "lru"), "FIFO": che_hit_ratio(p, capacity, "fifo"),
            "LFU": popularity.top_share(capacity)}


def size_sweep(keys: np.ndarray, capacities: Sequence[int], warmup: int = 0,
               policies: Sequence[str] = tuple(POLICIES)) -> list[dict[str, float]]:
    """One row per capacity: ``{"capacity": C, <policy>: hit ratio, ...}``."""
    return [{"capacity": c, **hit_ratios(c, keys, warmup, policies)} for c in capacities]


def hit_ratio_over_time(hits: np.ndarray, bin_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The hit ratio per bin of ``bin_size`` requests: (request index at each bin's middle,
    hit ratio of the bin); a partial last bin is dropped."""
    bin_size = check_int("bin_size", bin_size, 1, len(hits))
    bins = len(hits) // bin_size
    ratio = np.asarray(hits[:bins * bin_size], dtype=float).reshape(bins, bin_size).mean(axis=1)
    return (np.arange(bins) + 0.5) * bin_size, ratio


def read_latency(hits: np.ndarray, arrival_rate: float = 1000.0, db: Distribution | None = None,
                 db_workers: int = 4, t_cache_s: float = 0.0005, seed: int = 1) -> dict[str, float]:
    """What a hit pattern costs the readers: cache-aside in front of a database.

    Reads arrive as a Poisson stream at ``arrival_rate`` per second, request k being
    ``hits[k]``; each pays ``t_cache_s`` and a miss then queues for one of ``db_workers``
    database workers (service ``db``, log-normal with mean 5 ms by default). The queue is the
    toolkit's FIFO fast path, which gives the rows a SimPy ``ServerPool`` gives. Returns the
    database load (reads/s), the mean and the p99 read latency (ms).
    """
    rng = np.random.default_rng(seed)
    db = LogNormal(0.005, 1.0) if db is None else db
    times = PoissonArrivals(arrival_rate).times(rng, n=len(hits))
    latency = read_latencies(times, hits, t_cache_s, db, check_int("db_workers", db_workers, 1),
                             rng)
    misses = ~np.asarray(hits, dtype=bool)
    return {"db_load_rps": float(misses.sum() / (times[-1] - times[0])),
            "mean_latency_ms": 1e3 * float(latency.mean()),
            "p99_latency_ms": 1e3 * float(np.percentile(latency, 99))}


def plot_sizes(rows: Sequence[Mapping[str, float]], popularity: ZipfKeys | None = None,
               ax=None, title: str = ""):
    """Hit ratio against capacity, a line per policy; with ``popularity`` (an IRM trace) the
    closed forms are drawn beside them, black and dashed."""
    from simulations import plots

    capacities = [row["capacity"] for row in rows]
    names = [name for name in POLICIES if name in rows[0]]
    ax = plots.tradeoff({name: (capacities, [row[name] for row in rows]) for name in names},
                        xlabel="cache size C (entries)", ylabel="hit ratio", ax=ax)
    if popularity is not None:
        grid = np.unique(np.geomspace(min(capacities), max(capacities), 40).astype(int))
        for (policy, label), style in zip(THEORY.items(), ("--", ":", "-."), strict=True):
            values = [theory_hit_ratios(popularity, int(c))[policy] for c in grid]
            ax.plot(grid, values, color="black", linestyle=style, linewidth=1.1, label=label)
    plots.log_scale(ax, "x")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return ax


def plot_comparison(measured: Mapping[str, float], predicted: Mapping[str, float] | None = None,
                    ax=None, title: str = ""):
    """One bar per policy (its measured hit ratio) with the closed forms marked on them."""
    from simulations import plots

    ax = plots.new_axes(ax, figsize=(6.4, 3.4))
    names = list(measured)
    ax.bar(names, [measured[n] for n in names], color=plots.COLORS[:len(names)],
           label="simulation")
    for i, name in enumerate(names):
        ax.annotate(f"{measured[name]:.3f}", (i, measured[name]), ha="center",
                    textcoords="offset points", xytext=(0, 3), fontsize=8)
    if predicted:
        shown = [(names.index(n), v) for n, v in predicted.items() if n in names]
        if "FIFO" in predicted and "RANDOM" in names:
            shown.append((names.index("RANDOM"), predicted["FIFO"]))
        xs, ys = zip(*shown, strict=True)
        ax.plot(xs, ys, "k_", markersize=30, markeredgewidth=2,
                label="theory (Che; perfect LFU for LFU)")
    ax.set(ylabel="hit ratio", ylim=(0, 1), title=title)
    ax.legend(fontsize="small", loc="upper left")
    return ax


def redis_lru_hit_ratio(keys: Sequence[int], capacity: int, samples: int,
                        value_bytes: int = 64, chunk: int = 500) -> dict[str, float]:
    """Replay ``keys`` through a real Redis with ``allkeys-lru`` and ``maxmemory-samples``.

    Redis bounds memory in bytes, not keys: the server starts unbounded, ``capacity`` keys of
    the trace's shape (``k:<id>``, ``value_bytes`` of value) are written to measure the bytes a
    key costs, the database is emptied and ``maxmemory`` set to the empty server's memory plus
    ``capacity`` keys' worth. Each request is one ``SET k v GET`` (a miss returns nothing and
    stores the key: cache-aside in one round trip), sent in pipelines of ``chunk``. Returns the
    hits per request, and the number of keys held after each chunk (``fitted``: the capacity
    Redis really had), as ``{"hits", "fitted_min", "fitted_max", "fitted_end", "bytes_per_key"}``.
    """
    from simulations import redis_server

    capacity = check_int("capacity", capacity, 1)
    samples = check_int("samples", samples, 1, 64)
    value = "x" * check_int("value_bytes", value_bytes, 1)
    with redis_server.RedisServer(maxmemory_policy="allkeys-lru",
                                  maxmemory_samples=samples) as server:
        r = server.client()
        empty = r.info("memory")["used_memory"]
        r.mset({f"k:{i}": value for i in range(capacity)})
        per_key = (r.info("memory")["used_memory"] - empty) / capacity
        r.flushall()
        r.config_set("maxmemory", int(r.info("memory")["used_memory"] + capacity * per_key))
        hits, fitted = [], []
        for begin in range(0, len(keys), chunk):
            pipe = r.pipeline(transaction=False)
            for key in keys[begin:begin + chunk]:
                pipe.set(f"k:{key}", value, get=True)
            hits += [old is not None for old in pipe.execute()]
            fitted.append(r.dbsize())
    return {"hits": np.array(hits), "fitted_min": min(fitted), "fitted_max": max(fitted),
            "fitted_end": fitted[-1], "bytes_per_key": per_key}

