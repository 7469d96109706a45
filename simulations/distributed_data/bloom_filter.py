"""The Bloom-filter study: disk reads and read latency on an LSM read path against bits per key.

Picture the cloakroom of the pattern's module, now with several rooms of coats, one per sorted
run, newest first, and a queue at the stairs to the rooms (the disk, which serves a few walks
at a time). A guest asking for a coat that is in no room would walk to every room; with a tag
wall per room, the attendant walks only where all of the wall's hooks are tagged. A guest whose
coat is in room j walks to room j, plus to any earlier room whose wall wrongly says "maybe".
Each walk waits in the queue at the stairs, so the walks the walls save also shorten everyone's
wait.

The model, built from the toolkit: point reads arrive as ``PoissonArrivals``; each is a handler
on an unlimited ``ServerPool`` (the readers) that asks the runs' filters, newest first, and for
each "maybe" reads one block from the disk, a ``ServerPool`` of ``disk_queue_depth`` servers
with ``LogNormal`` block-read times; it stops at the run that holds the key. The filters are
the pattern's own `BloomFilter` (or `BlockedBloomFilter`), one per run, built from the runs'
real keys with the pattern's BLAKE2b double hashing. Closed forms beside it: the false-positive
rate (1 − e^(−kn/m))^k, the best k, the blocked filter's rate, and the disk reads per point read
they imply.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Any

import numpy as np
import simpy

from patterns.checks import (
    check_choice,
    check_int,
    check_non_negative,
    check_positive,
    check_probability,
    check_range,
)
from patterns.distributed_data.bloom_filter import (
    BlockedBloomFilter,
    BloomFilter,
    add_hashes,
    contains_hashes,
    hash_matrix,
    optimal_hashes,
)
from simulations.clients import RequestSource
from simulations.distributions import Distribution, LogNormal
from simulations.experiments import aggregate, sweep_scenario
from simulations.experiments import sweep as sweep_grid
from simulations.metrics import occupancy, per_bin, percentile_of, rate_over_time, time_average
from simulations.records import RequestLog, RequestTable
from simulations.servers import ServerPool
from simulations.workloads import PoissonArrivals

__all__ = ["LAYOUTS", "Run", "Scenario", "best_false_positive_rate", "best_hashes",
           "bits_per_key_for", "blocked_false_positive_rate", "build_filters",
           "disk_reads_per_read", "disk_reads_sd", "disk_utilisation", "draw",
           "false_positive_rate", "fpr_sweep", "measure_fpr", "plot_dashboard", "plot_sweep",
           "simulate", "summary", "sweep", "theory_fpr", "theory_reads", "theory_reads_sd",
           "timeline"]

LN2 = math.log(2.0)
LAYOUTS = {"standard": BloomFilter, "blocked": BlockedBloomFilter}

# ---------------------------------------------------------------- theory


def false_positive_rate(bits_per_key: float, hashes: int) -> float:
    """P(an absent key passes a filter of m/n = ``bits_per_key`` bits per key and k = ``hashes``):
    (1 − e^(−k·n/m))^k.

    Assumes the k positions of every key are independent and uniform over the m bits (ideal
    hashing; double hashing matches it asymptotically) and m large: a bit stays 0 after n·k
    settings with probability (1 − 1/m)^(kn) ≈ e^(−kn/m), and an absent key needs all k of its
    bits set. For small m the exact rate is slightly higher.
    """
    b = check_positive("bits_per_key", bits_per_key)
    k = check_int("hashes", hashes, low=1)
    return (1.0 - math.exp(-k / b)) ** k


def best_hashes(bits_per_key: float) -> float:
    """The k that minimises `false_positive_rate`: (m/n)·ln 2 (a real number; round it)."""
    return check_positive("bits_per_key", bits_per_key) * LN2


def best_false_positive_rate(bits_per_key: float) -> float:
    """The rate at the best (real) k: (1/2)^((m/n)·ln 2) ≈ 0.6185^(m/n). Half the bits are set."""
    return 0.5 ** best_hashes(bits_per_key)


def bits_per_key_for(target_fpr: float) -> float:
    """Bits per key an optimal filter needs for ``target_fpr``: −ln p / (ln 2)² ≈ 1.44·log2(1/p)."""
    p = check_range("target_fpr", target_fpr, 0.0, 1.0, low_open=True, high_open=True)
    return -math.log(p) / LN2**2


def blocked_false_positive_rate(bits_per_key: float, hashes: int, block_bits: int = 512) -> float:
    """The rate of a blocked filter: each key's k bits in one of m/B blocks of B bits.

    A block receives a Poisson number X of keys with mean B·n/m (keys pick blocks uniformly);
    an absent key lands in a block holding i keys and passes it with the standard filter's rate
    for B bits and i keys, (1 − (1 − 1/B)^(k·i))^k. Averaged over X (Putze, Sanders and Singler).
    The k bits inside the block are distinct here, a small gain this formula ignores.
    """
    k = check_int("hashes", hashes, low=1)
    b = check_int("block_bits", block_bits, low=1)
    mean = b / check_positive("bits_per_key", bits_per_key)
    top = int(mean + 12 * math.sqrt(mean) + 20)
    return sum(math.exp(i * math.log(mean) - mean - math.lgamma(i + 1))
               * (1.0 - (1.0 - 1.0 / b) ** (k * i)) ** k for i in range(top + 1))


def disk_reads_per_read(runs: int, fpr: float, absent_fraction: float) -> float:
    """Mean block reads per point read when each run's filter lets an absent key through with
    probability ``fpr``.

    A key in no run visits all R runs: R·f reads. A key in run j (equally likely any of the R,
    newest first) pays its own read plus f for each of the j − 1 runs before it: on average
    1 + (R − 1)·f/2. Without filters f = 1.
    """
    r = check_int("runs", runs, low=1)
    f = check_probability("fpr", fpr)
    a = check_probability("absent_fraction", absent_fraction)
    return a * r * f + (1.0 - a) * (1.0 + (r - 1) * f / 2.0)


def disk_reads_sd(runs: int, fpr: float, absent_fraction: float) -> float:
    """The standard deviation of one point read's block reads under `disk_reads_per_read`'s
    assumptions (reads independent): an absent key's count is Binomial(R, f); a key in run j
    reads 1 + Binomial(j − 1, f), with J = j − 1 uniform on 0 … R − 1. The mean of N reads has
    this over √N."""
    r = check_int("runs", runs, low=1)
    f = check_probability("fpr", fpr)
    a = check_probability("absent_fraction", absent_fraction)
    mean_j, mean_j2 = (r - 1) / 2, (r - 1) * (2 * r - 1) / 6
    absent_sq = r * f * (1 - f) + (r * f) ** 2
    present_sq = 1 + (2 * f + f * (1 - f)) * mean_j + f**2 * mean_j2
    second = a * absent_sq + (1 - a) * present_sq
    return math.sqrt(max(second - disk_reads_per_read(r, f, a) ** 2, 0.0))


def disk_utilisation(arrival_rate: float, reads_per_read: float, mean_read_s: float,
                     queue_depth: int) -> float:
    """Busy share of the disk's channels: λ · reads per point read · E[S] / c."""
    return (check_positive("arrival_rate", arrival_rate)
            * check_non_negative("reads_per_read", reads_per_read)
            * check_positive("mean_read_s", mean_read_s)
            / check_int("queue_depth", queue_depth, low=1))


# ---------------------------------------------------------------- filters from real keys


def _key_ids(seed: int, run: int, count: int, keys_per_run: int) -> range:
    """The keys of run ``run`` for database ``seed``: distinct integers (absent keys use the
    numbers past the last run)."""
    start = seed * 10**12 + run * keys_per_run
    return range(start, start + count)


@functools.cache
def _stored_hashes(seed: int, runs: int, keys_per_run: int) -> np.ndarray:
    """`hash_matrix` of every stored key, run after run: (runs·n, 2)."""
    return hash_matrix(_key_ids(seed, 0, runs * keys_per_run, keys_per_run))


ABSENT_POOL = 1 << 13


@functools.cache
def _absent_hashes(seed: int, runs: int, keys_per_run: int) -> np.ndarray:
    """`hash_matrix` of ``ABSENT_POOL`` keys that are in no run; absent reads draw from them."""
    return hash_matrix(_key_ids(seed, runs, ABSENT_POOL, keys_per_run))


@functools.lru_cache(maxsize=256)
def build_filters(seed: int, runs: int, keys_per_run: int, bits_per_key: float,
                  hashes: int | None = None, layout: str = "standard") -> tuple[BloomFilter, ...]:
    """One filter per run, holding that run's real keys (cached: the runs are immutable)."""
    cls = LAYOUTS[check_choice("layout", layout, LAYOUTS)]
    stored = _stored_hashes(seed, runs, keys_per_run)
    filters = []
    for r in range(runs):
        bloom = cls(max(1, math.ceil(keys_per_run * bits_per_key)),
                    hashes or optimal_hashes(bits_per_key))
        add_hashes(bloom, stored[r * keys_per_run:(r + 1) * keys_per_run])
        filters.append(bloom)
    return tuple(filters)


@functools.cache
def _key_pool(size: int = 1 << 16) -> np.ndarray:
    """`hash_matrix` of ``size`` distinct keys, hashed once; `measure_fpr` draws its stored and
    absent keys from it without replacement, so every replication sees fresh keys."""
    return hash_matrix(range(-size, 0))


def measure_fpr(rng: np.random.Generator, bits_per_key: float, hashes: int | None = None,
                keys: int = 2_048, queries: int = 20_000, layout: str = "standard") -> dict:
    """One filter of ``keys`` fresh random keys (2048 by default, a multiple of 512/8: for whole
    bits per key both layouts then have the very same m) and its false-positive rate on
    ``queries`` absent keys, with the bits a query probes and the memory lines (512-bit blocks)
    it touches before its answer (a lookup stops at its first unset bit), and the share of bits
    set. A ``simulations.experiments`` model."""
    cls = LAYOUTS[check_choice("layout", layout, LAYOUTS)]
    k = hashes or optimal_hashes(bits_per_key)
    bloom = cls(max(1, math.ceil(keys * bits_per_key)), k)
    pool = _key_pool()
    check_int("keys + queries", keys + queries, low=2, high=len(pool))
    chosen = pool[rng.choice(len(pool), size=keys + queries, replace=False)]
    add_hashes(bloom, chosen[:keys])
    probe = chosen[keys:]
    positions = bloom.positions_many(probe)
    view = np.frombuffer(bloom.array, dtype=np.uint8)
    bits = ((view[positions >> 3] >> (positions & 7).astype(np.uint8)) & 1).astype(bool)
    passed = bits.all(axis=1)
    probed = np.where(passed, k, np.argmin(bits, axis=1) + 1)  # probes up to the first 0 bit
    lines = np.where(np.arange(k)[None, :] < probed[:, None], positions // 512, -1)
    lines.sort(axis=1)
    distinct = ((np.diff(lines, axis=1) != 0) & (lines[:, 1:] >= 0)).sum(axis=1) + (
        lines[:, 0] >= 0)
    return {"fpr": float(passed.mean()), "probes_per_query": float(probed.mean()),
            "lines_per_query": float(distinct.mean()), "fill_ratio": bloom.fill_ratio()}


# ---------------------------------------------------------------- the SimPy study


@dataclass(frozen=True)
class Scenario:
    """Point reads on an LSM store of ``runs`` sorted runs, each with its own filter."""

    runs: int = 8  # sorted runs a read may visit, newest first
    keys_per_run: int = 2_000  # n, the keys in each run's filter
    bits_per_key: float = 10.0  # m/n; 0 means no filters (every run in the key range is read)
    hashes: int | None = None  # k; None: the best whole k for bits_per_key
    layout: str = "standard"  # or "blocked" (one cache line per lookup)
    absent_fraction: float = 0.5  # share of reads for keys that are in no run
    arrival_rate: float = 2_000.0  # point reads per second (Poisson)
    disk: Distribution = field(default_factory=lambda: LogNormal(0.00025, 1.0))  # a block read
    disk_queue_depth: int = 4  # block reads the disk serves at once
    reads: int = 3_000  # point reads simulated
    filters_offline: tuple[float, float] | None = None  # filters unusable in [start, end) s
    seed: int = 1

    def __post_init__(self) -> None:
        check_int("runs", self.runs, low=1, high=64)
        check_int("keys_per_run", self.keys_per_run, low=1)
        check_range("bits_per_key", self.bits_per_key, 0.0, 64.0)
        if self.hashes is not None:
            check_int("hashes", self.hashes, low=1, high=32)
        check_choice("layout", self.layout, LAYOUTS)
        check_probability("absent_fraction", self.absent_fraction)
        check_positive("arrival_rate", self.arrival_rate)
        check_int("disk_queue_depth", self.disk_queue_depth, low=1)
        check_int("reads", self.reads, low=1)
        if self.filters_offline is not None:
            start, end = self.filters_offline
            check_non_negative("filters_offline start", start)
            check_range("filters_offline end", end, start)
        check_int("seed", self.seed, low=0)

    @property
    def filter_memory_kib(self) -> float:
        return self.runs * self.keys_per_run * self.bits_per_key / 8 / 1024


@dataclass(frozen=True, eq=False)
class Run:
    """One row per point read (``reads``: arrival, end, latency), which run holds its key (−1:
    none), the block reads it made and how many of those found nothing; the filters' answers
    (read × run); and the disk's own rows (one per block read)."""

    scenario: Scenario
    reads: RequestTable
    holder: np.ndarray
    block_reads: np.ndarray
    wasted: np.ndarray
    maybe: np.ndarray
    disk: RequestTable


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """Run the scenario with SimPy; deterministic for a given ``scenario.seed`` (or ``rng``).

    The stored keys (and so the filters) come from ``scenario.seed``; the traffic from ``rng``:
    arrival times first, then which reads are absent, which run and key each present read asks
    for, which absent key each absent read asks for, then the disk's block-read times as the
    reads happen. Runs that differ only in their filters see the same traffic.
    """
    s = scenario
    rng = np.random.default_rng(s.seed) if rng is None else rng
    env = simpy.Environment()
    readers = ServerPool(env, None, lambda row, _cls: point_read(row), log=RequestLog(s.reads))
    RequestSource(env, PoissonArrivals(s.arrival_rate),
                  lambda _key, _cls: readers.submit(len(readers.log)), rng, n=s.reads)
    absent = rng.random(s.reads) < s.absent_fraction
    holder = np.where(absent, -1, rng.integers(0, s.runs, s.reads))
    offset = rng.integers(0, s.keys_per_run, s.reads)
    pick = rng.integers(0, ABSENT_POOL, s.reads)
    stored = _stored_hashes(s.seed, s.runs, s.keys_per_run)
    hashes = np.where(absent[:, None], _absent_hashes(s.seed, s.runs, s.keys_per_run)[pick],
                      stored[np.maximum(holder, 0) * s.keys_per_run + offset])
    if s.bits_per_key > 0:
        filters = build_filters(s.seed, s.runs, s.keys_per_run, s.bits_per_key, s.hashes,
                                s.layout)
        maybe = np.column_stack([contains_hashes(f, hashes) for f in filters])
    else:
        maybe = np.ones((s.reads, s.runs), dtype=bool)
    disk = ServerPool(env, s.disk_queue_depth, s.disk, rng, log=RequestLog(2 * s.reads))
    block_reads = np.zeros(s.reads, dtype=np.int16)
    wasted = np.zeros(s.reads, dtype=np.int16)
    offline = s.filters_offline or (math.inf, math.inf)
    answers = maybe.tolist()

    def point_read(row: int):
        """Ask the runs newest first; read a block on every "maybe"; stop where the key is."""
        mine, said = holder[row], answers[row]
        for run in range(s.runs):
            if said[run] or offline[0] <= env.now < offline[1]:
                block_reads[row] += 1
                yield disk.call(row)
                if run == mine:
                    return None
                wasted[row] += 1
        return None

    env.run()
    return Run(s, readers.log.table(), holder, block_reads, wasted, maybe, disk.log.table())


def summary(run: Run) -> dict[str, float]:
    """Headline numbers: block reads per point read (all, absent keys, present keys), the
    measured false-positive rate (a filter's "maybe" for a run that did not hold the key, among
    the filters asked), p50 and p99 read latency (ms), disk utilisation, filter memory (KiB)."""
    s, reads = run.scenario, run.reads
    absent = run.holder < 0
    asked = np.arange(s.runs)[None, :] <= np.where(absent, s.runs - 1, run.holder)[:, None]
    other = asked & (np.arange(s.runs)[None, :] != run.holder[:, None])
    latency_ms = 1e3 * reads.latency
    horizon = float(np.nanmax(reads.end))
    busy = time_average(*occupancy(run.disk.start, run.disk.end), 0.0, horizon)
    return {
        "reads_per_lookup": float(run.block_reads.mean()),
        "absent_reads": float(run.block_reads[absent].mean()) if absent.any() else math.nan,
        "present_reads": float(run.block_reads[~absent].mean()) if (~absent).any() else math.nan,
        "measured_fpr": float((run.maybe & other).sum() / max(other.sum(), 1)),
        "p50_latency_ms": float(np.percentile(latency_ms, 50)),
        "p99_latency_ms": float(np.percentile(latency_ms, 99)),
        "disk_utilisation": busy / s.disk_queue_depth,
        "filter_memory_kib": s.filter_memory_kib,
    }


def timeline(run: Run, bin_s: float = 0.25) -> dict[str, np.ndarray]:
    """Per-bin metrics for a dashboard: block reads per second and the wasted ones (blocks that
    did not hold the key), p99 latency of the reads arriving in each bin (ms), and the disk's
    busy share."""
    reads, disk = run.reads, run.disk
    end_s = float(np.nanmax(reads.end))
    time_s, p99 = per_bin(reads.arrival, 1e3 * reads.latency, bin_s, 0.0, end_s,
                          percentile_of(99))
    wasted_at = np.repeat(reads.arrival, run.wasted)
    edges = np.minimum(np.arange(len(time_s) + 1) * bin_s, end_s)
    held = occupancy(disk.start, disk.end)
    busy = [time_average(*held, lo, hi) / run.scenario.disk_queue_depth
            for lo, hi in pairwise(edges)]
    return {
        "time_s": time_s,
        "block_reads_per_s": rate_over_time(disk.start, bin_s, 0.0, end_s)[1],
        "wasted_reads_per_s": rate_over_time(wasted_at, bin_s, 0.0, end_s)[1],
        "p99_latency_ms": p99,
        "disk_utilisation": np.array(busy),
    }


# ---------------------------------------------------------------- sweeps and plots

LABELS = {
    "reads_per_lookup": "block reads per point read",
    "absent_reads": "block reads, absent key",
    "present_reads": "block reads, present key",
    "measured_fpr": "false-positive rate",
    "p50_latency_ms": "p50 read latency (ms)",
    "p99_latency_ms": "p99 read latency (ms)",
    "disk_utilisation": "disk utilisation",
    "filter_memory_kib": "filter memory (KiB)",
    "block_reads_per_s": "block reads per second",
    "wasted_reads_per_s": "wasted block reads per second",
}
SETTINGS = {
    "bits_per_key": "bits per key m/n",
    "hashes": "hashes k",
    "absent_fraction": "share of reads for absent keys",
    "arrival_rate": "point reads per second",
    "runs": "sorted runs",
    "layout": "filter layout",
}
SWEEP_METRICS = ("reads_per_lookup", "absent_reads", "present_reads", "measured_fpr",
                 "p50_latency_ms", "p99_latency_ms", "disk_utilisation")


def sweep(base: Scenario, replications: int = 1, **grid: Sequence[Any]) -> list[dict[str, Any]]:
    """Run ``base`` at every combination of the settings in ``grid`` (Scenario field -> values)
    with the toolkit's ``sweep`` and ``aggregate``: one row per setting with the mean of each
    `summary` metric and its 95 % half-width under ``<metric>_ci``. Every setting sees the same
    traffic (common random numbers) and the same stored keys."""
    return sweep_scenario(simulate, summary, base, grid, settings=SETTINGS, metrics=SWEEP_METRICS,
                          replications=replications)


def theory_fpr(scenario: Scenario) -> float:
    """The closed-form false-positive rate of the scenario's filters (the standard or the
    blocked layout's; 1 without filters)."""
    s = scenario
    if s.bits_per_key <= 0:
        return 1.0
    k = s.hashes or optimal_hashes(s.bits_per_key)
    return (blocked_false_positive_rate(s.bits_per_key, k) if s.layout == "blocked"
            else false_positive_rate(s.bits_per_key, k))


def theory_reads(scenario: Scenario) -> float:
    """`disk_reads_per_read` for the scenario, at `theory_fpr`."""
    return disk_reads_per_read(scenario.runs, theory_fpr(scenario), scenario.absent_fraction)


def theory_reads_sd(scenario: Scenario) -> float:
    """The sampling sd of the scenario's mean block reads per point read (`disk_reads_sd` over
    the square root of the reads)."""
    s = scenario
    return disk_reads_sd(s.runs, theory_fpr(s), s.absent_fraction) / math.sqrt(s.reads)


def plot_sweep(rows: list[dict[str, Any]], base: Scenario,
               metrics: Sequence[str] = ("reads_per_lookup", "p99_latency_ms",
                                         "disk_utilisation")) -> list:
    """One panel per metric against bits per key, a line per share of absent reads
    (``plots.sweep_panels``), with the closed form dashed on the block-reads panel."""
    from simulations import plots

    for metric in metrics:
        check_choice("metric", metric, LABELS)
    rows = sorted(rows, key=lambda row: (row["absent_fraction"], row["bits_per_key"]))
    axes = plots.sweep_panels(rows, x="bits_per_key", by="absent_fraction", metrics=metrics,
                              xlabel=SETTINGS["bits_per_key"], ylabels=LABELS,
                              group_label=lambda a: f"{a:.0%} absent",
                              log_y={"p99_latency_ms"})
    bits = np.linspace(min(r["bits_per_key"] for r in rows),
                       max(r["bits_per_key"] for r in rows), 60)
    for ax, metric in zip(axes, metrics, strict=True):
        if metric == "reads_per_lookup":
            for i, share in enumerate(sorted({r["absent_fraction"] for r in rows})):
                curve = [theory_reads(replace(base, bits_per_key=float(b), absent_fraction=share))
                         for b in bits]
                ax.plot(bits, curve, **plots.THEORY,
                        label="closed form, best whole k" if i == 0 else None)
            ax.legend(fontsize="small")
    return axes


def plot_dashboard(runs: dict[str, Run], bin_s: float = 0.25,
                   metrics: Sequence[str] = ("block_reads_per_s", "wasted_reads_per_s",
                                             "p99_latency_ms", "disk_utilisation")) -> list:
    """Metrics over time, one line per run (``plots.dashboard``), the first run's filter
    outage shaded."""
    from simulations import plots

    series = {label: timeline(run, bin_s) for label, run in runs.items()}
    window = next(iter(runs.values())).scenario.filters_offline
    times = min((v["time_s"] for v in series.values()), key=len)
    return plots.dashboard(
        times,
        {LABELS[m]: {label: v[m][:len(times)] for label, v in series.items()} for m in metrics},
        windows=[window] if window else [], window_label="filters unavailable")


def fpr_sweep(replications: int = 5, seed: int = 1, **grid: Sequence[Any]) -> list[dict]:
    """`measure_fpr` at every combination of ``grid`` (its parameters: ``bits_per_key``,
    ``hashes``, ``layout``, ``keys``, ``queries`` -> values), ``replications`` independent
    filters each, aggregated: the mean of each metric and its 95 % half-width (``<metric>_ci``).
    """
    for name in grid:
        check_choice("fpr_sweep setting", name, ("bits_per_key", "hashes", "layout", "keys",
                                                 "queries"))
    rows = sweep_grid(measure_fpr, grid, seed=seed, replications=replications)
    return aggregate(rows, by=list(grid),
                     metrics=["fpr", "probes_per_query", "lines_per_query", "fill_ratio"])


_DEFAULT = Scenario(reads=1_200)


@functools.lru_cache(maxsize=32)
def _run(scenario: Scenario) -> Run:
    return simulate(scenario)


def draw(bits_per_key: float = 10.0, hashes: int = 0, absent_fraction: float = 0.5,
         layout: str = "standard", base: Scenario | None = None) -> None:
    """The lesson's slider figure. Left: block reads per point read against bits per key, the
    closed form for these settings and the simulated point (hashes 0 means the best whole k).
    Right: the read-latency tail of this run, P(latency > x), beside the default run."""
    import matplotlib.pyplot as plt

    from simulations import plots

    s = replace(base or _DEFAULT, bits_per_key=float(bits_per_key), hashes=hashes or None,
                absent_fraction=absent_fraction, layout=layout)
    run, reference = _run(s), _run(base or _DEFAULT)
    numbers = summary(run)
    _, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    for ax in (left, right):
        plots.new_axes(ax)
    bits = np.linspace(0.5, 16, 40)
    left.plot(bits, [theory_reads(replace(s, bits_per_key=float(b))) for b in bits],
              **plots.THEORY, label="closed form")
    left.axhline(theory_reads(replace(s, bits_per_key=0.0)), color=plots.COLORS[1],
                 linestyle=":", label="no filters")
    left.plot([s.bits_per_key], [numbers["reads_per_lookup"]], "o", color=plots.COLORS[0],
              label="simulation")
    left.set(xlabel=SETTINGS["bits_per_key"], ylabel=LABELS["reads_per_lookup"])
    left.legend(fontsize="small")
    for label, r in (("default (10 bits/key, 50 % absent)", reference), ("these settings", run)):
        latency = np.sort(1e3 * r.reads.latency)
        right.step(latency, 1.0 - np.arange(1, len(latency) + 1) / len(latency), where="post",
                   label=label)
    plots.log_scale(right, "y")
    right.set_ylim(1 / len(run.reads.latency), 1)
    right.set(xlabel="read latency x (ms)", ylabel="P(latency > x)",
              title=f"p99 {numbers['p99_latency_ms']:.2f} ms, disk "
                    f"{numbers['disk_utilisation']:.0%} busy, filters "
                    f"{s.filter_memory_kib:.0f} KiB")
    right.legend(fontsize="small")
