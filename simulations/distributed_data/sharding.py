"""The sharding study: one FIFO server per shard, Zipf-skewed keys, and the hottest shard's ceiling.

Picture the theatre cloakroom again, now with a stopwatch at every rail. Guests arrive at random
(Poisson, ``offered_rps`` a second) and each asks for one coat; a few coats are asked for far more
often than the rest (Zipf popularity). Each attendant serves one guest at a time in arrival order,
so the cloakroom as a whole can serve only as fast as its busiest attendant allows: once that
rail's attendant is busy all the time, its queue grows without bound while the others idle. That
offered load is the *throughput ceiling*, μ / (the busiest shard's share of the work).

Model: the key of popularity rank r (0 = hottest) has a name ``f"{namespace}:{id}"`` and lives on
the shard that owns its hash slot (the pattern's `ShardedStore` rule: CRC16, 16384 slots, equal
slot ranges, then any slot ``moves``). Each shard is one FIFO server with exponential service of
mean 1/μ. A ``read_share`` of requests are reads; the ``split_keys`` hottest keys are split into
``split_factor`` sub-keys: a write takes one at random, a read visits them all and is answered
when the last one answers. Optional parts: an LRU near-cache in front (reads that hit it never
reach a shard; a write invalidates its key), a popularity ``Spike`` on one key, and automatic
splitting by the pattern's `HotKeyDetector` (``auto_split``). Every random number is drawn up
front from one generator, and the queues run on the toolkit's fast path (``fifo_ends``, the same
rows as a SimPy server; a test holds them together).

The closed forms beside it: the balls-into-bins maximum (Raab and Steger, RANDOM 1998), the
exact expected maximum for independent bins, the work share of every shard and the ceiling
μ / max share, the mean-field share of the shard holding a hot key, and M/M/1 at the hottest shard.
"""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from patterns.caching.eviction_policies import LRUCache
from patterns.checks import (
    check_int,
    check_non_negative,
    check_positive,
    check_probability,
    check_range,
)
from patterns.distributed_data.sharding import (
    SLOTS,
    HotKeyDetector,
    RouterConfig,
    even_slot_owners,
    fast_crc16,
    hash_slot,
    plan_rebalance,
    sub_key,
)
from simulations.experiments import sweep_scenario
from simulations.fastpath import fifo_ends
from simulations.metrics import per_bin, percentile_of
from simulations.records import Outcome, RequestTable
from simulations.theory import mm1_response_percentile, order_statistic_cdf
from simulations.workloads import PoissonArrivals, ZipfKeys

__all__ = ["Run", "Scenario", "Spike", "ceiling_rps", "simulate", "summary", "sweep"]

_MISSING = object()

# ---------------------------------------------------------------- placement


def slot_owners(shards: int, moves: Sequence[tuple[int, int]] = ()) -> np.ndarray:
    """Slot -> shard: equal contiguous ranges, then each (slot, new shard) of ``moves``."""
    owner = np.array(even_slot_owners(shards))
    for slot, shard in moves:
        owner[check_int("moved slot", slot, 0, SLOTS - 1)] = check_int("new shard", shard, 0,
                                                                      shards - 1)
    return owner


@functools.cache
def key_names(namespace: str, keys: int) -> tuple[str, ...]:
    """The name of the key of each popularity rank: ``f"{namespace}:{id}"``, the ids 0 .. keys-1
    in an order shuffled by the namespace, since popularity has nothing to do with an id."""
    ids = np.random.default_rng(zlib.crc32(namespace.encode())).permutation(keys)
    return tuple(f"{namespace}:{i}" for i in ids.tolist())


@functools.cache
def key_slots(namespace: str, keys: int) -> np.ndarray:
    """The hash slot of every key, by rank (cached: a slider redraw reuses it)."""
    return np.array([hash_slot(name, fast_crc16) for name in key_names(namespace, keys)])


@functools.cache
def sub_key_slots(namespace: str, keys: int, ranks: tuple[int, ...], parts: int) -> np.ndarray:
    """Slots of sub-keys 0 .. parts-1 of each key in ``ranks``, one row per key."""
    names = key_names(namespace, keys)
    return np.array([[hash_slot(sub_key(names[r], p), fast_crc16) for p in range(parts)]
                     for r in ranks]).reshape(len(ranks), parts)


def random_key_loads(keys: int, shards: int, rng: np.random.Generator) -> np.ndarray:
    """Keys per shard when ``keys`` random 64-bit ids (8 raw bytes each) are hashed to slots:
    balls into bins, with CRC16 as the thrower."""
    blob = rng.bytes(8 * check_int("keys", keys, 1))
    slots = np.array([fast_crc16(blob[i:i + 8]) % SLOTS for i in range(0, len(blob), 8)])
    return np.bincount(slots * check_int("shards", shards, 1) // SLOTS, minlength=shards)


# ---------------------------------------------------------------- theory


def raab_steger_max_load(balls: int, bins: int) -> float:
    """The fullest bin when ``balls`` (m) go into ``bins`` (n) at random: m/n + √(2·(m/n)·ln n).

    The leading terms of Raab and Steger's bound for m ≫ n·ln n ("Balls into Bins: A Simple and
    Tight Analysis", RANDOM 1998): the maximum exceeds it with a probability that vanishes as n
    grows. For a handful of bins it sits a little above the typical maximum (see
    `expected_max_load`).
    """
    m, n = check_int("balls", balls, 1), check_int("bins", bins, 2)
    return m / n + math.sqrt(2 * (m / n) * math.log(n))


def expected_max_load(balls: int, bins: int) -> float:
    """E[fullest bin] = Σ_k P(max > k) with P(max ≤ k) = F(k)ⁿ, F the Binomial(m, 1/n) CDF.

    Treats the n bins as independent (they are slightly negatively correlated, since the loads
    add up to m), which is accurate to well under 1 % once m/n is 10 or more.
    """
    m, n = check_int("balls", balls, 1), check_int("bins", bins, 2)
    k = np.arange(m + 1)
    log_pmf = (math.lgamma(m + 1) - np.array([math.lgamma(x + 1) + math.lgamma(m - x + 1)
                                              for x in k])
               + k * math.log(1 / n) + (m - k) * math.log1p(-1 / n))
    cdf = np.minimum(np.cumsum(np.exp(log_pmf - log_pmf.max())) * math.exp(log_pmf.max()), 1.0)
    return float(sum(1.0 - order_statistic_cdf(float(f), n, n) for f in cdf))


def mean_field_hottest_share(hot_probability: float, shards: int, split_factor: int = 1,
                             read_share: float = 0.0) -> float:
    """The work share of a shard holding (one sub-key of) the hottest key, the rest spread evenly.

    The hottest key has request probability p. Unsplit, its shard gets p + (1 − p)/n of the work.
    Split into k sub-keys on k different shards, each of those gets p·((1 − r)/k + r) from it (a
    write goes to one sub-key, a read, share r, to all k) plus the same (1 − p)/n of the rest.
    """
    p = check_probability("hot_probability", hot_probability)
    n = check_int("shards", shards, 1)
    k = check_int("split_factor", split_factor, 1)
    r = check_probability("read_share", read_share)
    return p * ((1 - r) / k + r) + (1 - p) / n


def shard_work_shares(scenario: Scenario) -> np.ndarray:
    """Expected jobs per request on each shard (a request to a split key's read counts ``k``),
    from the scenario's real placement; no cache, no spike, splits as configured."""
    s = scenario
    p = ZipfKeys(s.keys, s.alpha).probabilities
    owner = slot_owners(s.shards, s.moves)
    home = owner[key_slots(s.namespace, s.keys)]
    split = min(s.split_keys, s.keys) if s.split_factor > 1 else 0
    shares = np.bincount(home[split:], weights=p[split:], minlength=s.shards)
    if split:
        subs = owner[sub_key_slots(s.namespace, s.keys, tuple(range(split)), s.split_factor)]
        per_sub = p[:split] * ((1 - s.read_share) / s.split_factor + s.read_share)
        np.add.at(shares, subs, np.repeat(per_sub[:, None], s.split_factor, axis=1))
    return shares


def ceiling_rps(scenario: Scenario) -> float:
    """The throughput ceiling: the offered load at which the busiest shard is busy all the
    time, μ / (its share of the work per request)."""
    return scenario.service_rate / float(shard_work_shares(scenario).max())


def hottest_p99_s(scenario: Scenario) -> float:
    """p99 response time at the busiest shard, as an M/M/1 queue: its jobs arrive as a Poisson
    stream at Λ·(its share) (exactly so without split reads) and take Exp(μ) each."""
    rate = scenario.offered_rps * float(shard_work_shares(scenario).max())
    return mm1_response_percentile(rate, scenario.service_rate, 0.99)


# ---------------------------------------------------------------- the study


@dataclass(frozen=True)
class Spike:
    """A key that turns hot for a while: in [start_s, end_s) a ``share`` of all requests asks
    for the key of popularity rank ``rank`` (a post that goes viral)."""

    start_s: float = 20.0
    end_s: float = 40.0
    rank: int = 5000
    share: float = 0.2

    def __post_init__(self) -> None:
        check_non_negative("Spike.start_s", self.start_s)
        check_range("Spike.end_s", self.end_s, self.start_s, low_open=True)
        check_int("Spike.rank", self.rank, 0)
        check_probability("Spike.share", self.share)


@dataclass(frozen=True)
class Scenario:
    """One run: Poisson requests over Zipf keys, hash-sharded over FIFO servers."""

    offered_rps: float = 5000.0  # Λ, requests per second (Poisson)
    shards: int = 16  # n, one FIFO server each
    service_rate: float = 1000.0  # μ per shard (exponential service, mean 1 ms)
    keys: int = 10_000
    alpha: float = 1.0  # Zipf exponent: 0 is uniform
    read_share: float = 0.1  # share of requests that are reads
    split_keys: int = 0  # how many of the hottest keys are split
    split_factor: int = 1  # k, sub-keys per split key
    moves: tuple[tuple[int, int], ...] = ()  # (slot, new shard) after the even slot ranges
    cache_entries: int = 0  # LRU near-cache in front of the shards (0: none)
    spike: Spike | None = None
    auto_split: RouterConfig | None = None  # split keys the HotKeyDetector finds hot
    detector_sample: int = 10  # the detector sees one request in this many
    namespace: str = "item"  # key names, hence their placement
    duration_s: float = 10.0
    warmup_s: float = 1.0  # summaries leave out requests arriving earlier
    seed: int = 1

    def __post_init__(self) -> None:
        check_positive("offered_rps", self.offered_rps)
        check_int("shards", self.shards, 1, SLOTS)
        check_positive("service_rate", self.service_rate)
        check_int("keys", self.keys, 1)
        check_non_negative("alpha", self.alpha)
        check_probability("read_share", self.read_share)
        check_int("split_keys", self.split_keys, 0, self.keys)
        check_int("split_factor", self.split_factor, 1, 1024)
        check_int("cache_entries", self.cache_entries, 0)
        check_int("detector_sample", self.detector_sample, 1)
        check_positive("duration_s", self.duration_s)
        check_range("warmup_s", self.warmup_s, 0.0, self.duration_s, high_open=True)
        if self.spike is not None:
            check_int("spike.rank", self.spike.rank, 0, self.keys - 1)
        if not isinstance(self.namespace, str) or not self.namespace:
            raise ValueError(f"namespace must be a non-empty string (got {self.namespace!r})")


@dataclass(frozen=True, eq=False)
class Run:
    """What one run left: a row per request (``cls`` 1 for a read, ``key`` its key's rank,
    ``server`` its first job's shard, -1 for a near-cache hit) and a row per job at a shard
    (``server`` the shard, ``key`` the request's row, ``cls`` the sub-key); each request's
    number of sub-keys when it arrived, and when each automatically split key was split."""

    scenario: Scenario
    requests: RequestTable
    jobs: RequestTable
    parts: np.ndarray
    split_at: dict[int, float]


def detect_hot_keys(arrival: np.ndarray, rank: np.ndarray, scenario: Scenario) -> dict[int, float]:
    """When the pattern's `HotKeyDetector` first finds each key hot, fed one request in
    ``detector_sample`` (sampling keeps the detector cheap; shares are unchanged by it)."""
    config = scenario.auto_split
    now = [0.0]
    detector = HotKeyDetector(config.window_s, config.hot_share, config.sketch_width,
                              config.sketch_depth, config.buckets, config.min_requests,
                              clock=lambda: now[0])
    found: dict[int, float] = {}
    step, names = scenario.detector_sample, key_names(scenario.namespace, scenario.keys)
    for t, r in zip(arrival[::step].tolist(), rank[::step].tolist(), strict=True):
        now[0] = t
        if detector.record(names[r]) >= config.hot_share and r not in found:
            found[r] = t
    return found


def near_cache_hits(rank: np.ndarray, reads: np.ndarray, capacity: int) -> np.ndarray:
    """True per request answered by an LRU near-cache of ``capacity`` entries (the caching
    lessons' `LRUCache`): a read that misses fills it, a write invalidates its key."""
    cache = LRUCache(capacity)
    hits = np.zeros(len(rank), dtype=bool)
    for i, (key, read) in enumerate(zip(rank.tolist(), reads.tolist(), strict=True)):
        if not read:
            cache.delete(key)
        elif cache.get(key, _MISSING) is _MISSING:
            cache.put(key, True)
        else:
            hits[i] = True
    return hits


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """Run the scenario; deterministic for a given ``scenario.seed`` (or ``rng``).

    Arrival times, keys, read/write, the sub-key each write picks and the first job's service time
    are drawn per request before anything else, so runs that differ only in shards, splits or
    caching see the same traffic (common random numbers); the extra jobs of fanned-out reads
    draw their service times last.
    """
    s = scenario
    rng = np.random.default_rng(s.seed) if rng is None else rng
    arrival = PoissonArrivals(s.offered_rps).times(rng, horizon=s.duration_s)
    n = len(arrival)
    rank = np.asarray(ZipfKeys(s.keys, s.alpha).sample(rng, n))
    spiked, reads, salt = rng.random(n), rng.random(n) < s.read_share, rng.random(n)
    first_service = rng.exponential(1 / s.service_rate, n)
    if s.spike is not None:
        during = (arrival >= s.spike.start_s) & (arrival < s.spike.end_s)
        rank = np.where(during & (spiked < s.spike.share), s.spike.rank, rank)

    parts_of, split_from = np.ones(s.keys, dtype=np.int64), np.full(s.keys, math.inf)
    parts_of[:s.split_keys], split_from[:s.split_keys] = s.split_factor, 0.0
    split_at = detect_hot_keys(arrival, rank, s) if s.auto_split is not None else {}
    for r, t in split_at.items():
        parts_of[r] = max(parts_of[r], s.auto_split.split_factor)
        split_from[r] = min(split_from[r], t)
    parts = np.where(arrival >= split_from[rank], parts_of[rank], 1)
    served = (~near_cache_hits(rank, reads, s.cache_entries) if s.cache_entries
              else np.ones(n, dtype=bool))

    # Jobs: one per served request, and one per sub-key for a read of a split key.
    fan = np.where(served, np.where(reads & (parts > 1), parts, 1), 0)
    request = np.repeat(np.arange(n), fan)
    first = np.cumsum(fan) - fan
    offset = np.arange(len(request)) - first[request]
    part = np.where(fan[request] > 1, offset, (salt[request] * parts[request]).astype(np.int64))
    owner = slot_owners(s.shards, s.moves)
    shard = owner[key_slots(s.namespace, s.keys)][rank[request]]
    split_ranks = np.flatnonzero(parts_of > 1)
    if len(split_ranks):
        row = np.full(s.keys, -1)
        row[split_ranks] = np.arange(len(split_ranks))
        table = owner[sub_key_slots(s.namespace, s.keys, tuple(split_ranks.tolist()),
                                    int(parts_of.max()))]
        moved = part > 0
        shard[moved] = table[row[rank[request[moved]]], part[moved]]
    service = np.where(offset == 0, first_service[request], 0.0)
    extra = offset > 0
    service[extra] = rng.exponential(1 / s.service_rate, int(extra.sum()))

    job_arrival = arrival[request]
    end = np.empty(len(request))
    order = np.argsort(shard, kind="stable")  # per shard, in arrival order
    bounds = np.cumsum(np.bincount(shard, minlength=s.shards))
    for group in np.split(order, bounds[:-1]):
        if len(group):
            end[group] = fifo_ends(job_arrival[group], service[group])
    answered = arrival.copy()
    has_jobs = fan > 0
    if len(request):
        answered[has_jobs] = np.maximum.reduceat(end, first[has_jobs])
    first_shard = np.full(n, -1, dtype=np.int32)
    first_shard[has_jobs] = shard[first[has_jobs]]
    requests = RequestTable(
        arrival=arrival, start=arrival.copy(), end=answered,
        outcome=np.full(n, int(Outcome.OK), dtype=np.int8), server=first_shard,
        cls=reads.astype(np.int16), key=rank.astype(np.int32))
    jobs = RequestTable(
        arrival=job_arrival, start=end - service, end=end,
        outcome=np.full(len(request), int(Outcome.OK), dtype=np.int8),
        server=shard.astype(np.int32), cls=part.astype(np.int16),
        key=request.astype(np.int32))
    return Run(s, requests, jobs, parts, split_at)


# ---------------------------------------------------------------- metrics from the records


def shard_busy_s(run: Run, times: np.ndarray) -> np.ndarray:
    """Busy seconds of each shard from 0 until each of ``times``: shape (shards, len(times)).

    A shard's jobs do not overlap and start in order, so its busy time up to t is the service of
    the jobs started before the last one started by t, plus the part of that one done by t.
    """
    j, times = run.jobs, np.asarray(times, dtype=float)
    busy = np.zeros((run.scenario.shards, len(times)))
    order = np.argsort(j.server, kind="stable")
    bounds = np.cumsum(np.bincount(j.server, minlength=run.scenario.shards))
    for shard, group in enumerate(np.split(order, bounds[:-1])):
        if not len(group):
            continue
        start, took = j.start[group], j.end[group] - j.start[group]
        done = np.concatenate(([0.0], np.cumsum(took)))
        last = np.searchsorted(start, times, side="right") - 1
        clipped = np.maximum(last, 0)
        partial = np.minimum(times - start[clipped], took[clipped])
        busy[shard] = np.where(last >= 0, done[clipped] + partial, 0.0)
    return busy


def shard_utilisations(run: Run, start_s: float, end_s: float) -> np.ndarray:
    """Each shard's busy fraction over [start_s, end_s)."""
    busy = shard_busy_s(run, np.array([start_s, end_s]))
    return (busy[:, 1] - busy[:, 0]) / (end_s - start_s)


def summary(run: Run, start_s: float | None = None, end_s: float | None = None) -> dict:
    """Headline numbers for requests arriving in [start_s, end_s) (default: after the warm-up).

    ``hottest_utilisation`` and ``mean_utilisation`` over the shards; ``p99_latency_s`` of every
    request (a near-cache hit takes 0 s), ``p99_split_read_s`` of reads of split keys (NaN if
    none); ``fan_out``, jobs per request; ``ceiling_rps``, the measured ceiling: requests per
    second over the hottest utilisation (valid below saturation; at or above it, it only says
    "no more than the offered load").
    """
    s, r = run.scenario, run.requests
    start_s = s.warmup_s if start_s is None else start_s
    end_s = s.duration_s if end_s is None else end_s
    util = shard_utilisations(run, start_s, end_s)
    part = (r.arrival >= start_s) & (r.arrival < end_s)
    latency = r.latency
    split_reads = part & (r.cls == 1) & (run.parts > 1)
    in_window = (run.jobs.arrival >= start_s) & (run.jobs.arrival < end_s)
    rate = part.sum() / (end_s - start_s)
    return {
        "hottest_utilisation": float(util.max()),
        "mean_utilisation": float(util.mean()),
        "p99_latency_s": float(np.percentile(latency[part], 99)) if part.any() else math.nan,
        "p99_split_read_s": (float(np.percentile(latency[split_reads], 99))
                             if split_reads.any() else math.nan),
        "fan_out": float(in_window.sum() / max(part.sum(), 1)),
        "ceiling_rps": float(rate / util.max()) if util.max() > 0 else math.inf,
    }


def timeline(run: Run, bin_s: float = 1.0) -> dict[str, np.ndarray]:
    """Per-bin metrics for a dashboard: p99 latency of the requests arriving in each bin, the
    hottest and the mean shard utilisation, and jobs per request (the read fan-out)."""
    s, r, j = run.scenario, run.requests, run.jobs
    time_s, p99 = per_bin(r.arrival, r.latency, bin_s, 0.0, s.duration_s, percentile_of(99))
    edges = np.minimum(np.arange(len(time_s) + 1) * bin_s, s.duration_s)
    util = np.diff(shard_busy_s(run, edges), axis=1) / np.diff(edges)
    jobs = np.histogram(j.arrival, edges)[0]
    requests = np.histogram(r.arrival, edges)[0]
    return {
        "time_s": time_s,
        "p99_latency_s": p99,
        "hottest_utilisation": util.max(axis=0),
        "mean_utilisation": util.mean(axis=0),
        "fan_out": jobs / np.maximum(requests, 1),
    }


# ---------------------------------------------------------------- optimisations


def rebalanced(scenario: Scenario, max_moves: int) -> Scenario:
    """The scenario with its slots rebalanced by the pattern's `plan_rebalance`, from the
    expected load of every slot (what per-slot request counters would show)."""
    s = scenario
    p = ZipfKeys(s.keys, s.alpha).probabilities
    slot_load = np.bincount(key_slots(s.namespace, s.keys), weights=p, minlength=SLOTS)
    moves = plan_rebalance(slot_load, slot_owners(s.shards, s.moves).tolist(), s.shards,
                           max_moves)
    return replace(s, moves=(*s.moves, *moves))


def max_keys_per_shard(keys: int, shards: int, replications: int, seed: int = 1) -> np.ndarray:
    """The fullest shard's key count in each of ``replications`` sets of random keys."""
    rng = np.random.default_rng(seed)
    return np.array([random_key_loads(keys, shards, rng).max()
                     for _ in range(check_int("replications", replications, 1))])


# ---------------------------------------------------------------- sweeps and plots

LABELS = {
    "hottest_utilisation": "hottest shard utilisation",
    "mean_utilisation": "mean shard utilisation",
    "p99_latency_s": "p99 latency (s)",
    "p99_split_read_s": "p99 of split-key reads (s)",
    "fan_out": "jobs per request",
    "ceiling_rps": "measured ceiling (req/s)",
}
SETTINGS = {
    "offered_rps": "offered load Λ (req/s)",
    "alpha": "Zipf α",
    "shards": "shards n",
    "split_factor": "split factor k",
    "split_keys": "hottest keys split",
    "read_share": "read share r",
    "cache_entries": "near-cache entries",
}
TIMELINE_METRICS = ("p99_latency_s", "hottest_utilisation", "mean_utilisation", "fan_out")


def sweep(base: Scenario, replications: int = 1, **grid: Sequence[Any]) -> list[dict[str, Any]]:
    """Run ``base`` at every combination of the settings in ``grid`` (Scenario field -> values)
    with the toolkit's ``sweep`` and ``aggregate`` the `summary` of each over ``replications``
    runs: one row per setting, the mean of each metric and its 95 % half-width under
    ``<metric>_ci``. Every setting sees the same traffic (common random numbers)."""
    return sweep_scenario(simulate, summary, base, grid, settings=SETTINGS, metrics=list(LABELS),
                          replications=replications)


def plot_sweep(rows: list[dict[str, Any]], x: str, by: str | None,
               metrics: Sequence[str] = ("hottest_utilisation", "p99_latency_s"),
               log_y: Sequence[str] = ("p99_latency_s",)) -> list:
    """One panel per metric against setting ``x``, a line per value of ``by``, 95 % bars."""
    from simulations import plots

    return plots.sweep_panels(
        rows, x=x, by=by, metrics=metrics, xlabel=SETTINGS.get(x, x),
        ylabels={m: LABELS[m] for m in metrics}, log_y=log_y,
        group_label=(lambda g: f"{SETTINGS.get(by, by)} = {g:g}") if by else (
            lambda _g: "simulated"), panel_size=(4.2, 3.2))


def plot_dashboard(runs: dict[str, Run], bin_s: float = 1.0,
                   metrics: Sequence[str] = TIMELINE_METRICS) -> list:
    """Small multiples over time (``plots.dashboard``), one line per run, the first run's spike
    shaded. The runs must share their duration."""
    from simulations import plots

    for metric in metrics:
        if metric not in TIMELINE_METRICS:
            raise ValueError(f"metric must be one of {', '.join(TIMELINE_METRICS)} "
                             f"(got {metric!r})")
    series = {label: timeline(run, bin_s) for label, run in runs.items()}
    spike = next(iter(runs.values())).scenario.spike
    return plots.dashboard(
        next(iter(series.values()))["time_s"],
        {LABELS[m]: {label: values[m] for label, values in series.items()} for m in metrics},
        windows=[(spike.start_s, spike.end_s)] if spike else [],
        window_label="celebrity key spike")


def plot_shards(run: Run) -> list:
    """Per shard, busiest first: utilisation (bars) beside the model's Λ·share/μ (dots), and
    p99 latency of the requests whose first job went there."""
    from matplotlib.ticker import MaxNLocator

    from simulations import plots

    s, r = run.scenario, run.requests
    util = shard_utilisations(run, s.warmup_s, s.duration_s)
    expected = np.minimum(s.offered_rps * shard_work_shares(s) / s.service_rate, 1.0)
    order = np.argsort(-util)
    part = (r.arrival >= s.warmup_s) & (r.server >= 0)
    by_shard = np.argsort(r.server[part], kind="stable")
    latency, bounds = r.latency[part][by_shard], np.cumsum(np.bincount(r.server[part],
                                                                       minlength=s.shards))
    p99 = np.array([np.percentile(group, 99) if len(group) else np.nan
                    for group in np.split(latency, bounds[:-1])])
    fig, axes = plots.plt.subplots(1, 2, figsize=(8, 3), layout="constrained")
    places = np.arange(s.shards)
    left = plots.new_axes(axes[0])
    left.bar(places, util[order], color=plots.COLORS[0], label="simulated")
    left.plot(places, expected[order], "o", color="black", markersize=4,
              label="model Λ·share/μ (no cache)" if s.cache_entries else "model Λ·share/μ")
    left.axhline(1.0, **plots.THEORY, label="saturated")
    left.set(xlabel="shard (busiest first)", ylabel="utilisation", ylim=(0, 1.3),
             yticks=np.arange(0.0, 1.01, 0.2))
    left.legend(fontsize="small", loc="upper right", ncol=3)
    right = plots.new_axes(axes[1])
    right.bar(places, p99[order], color=plots.COLORS[1], label="p99 of requests routed there")
    plots.log_scale(right, "y")
    right.set(xlabel="shard (busiest first)", ylabel="p99 latency (s)")
    right.legend(fontsize="small", loc="upper right")
    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return [left, right]
