"""The consistent-hashing study: how evenly a ring spreads the keys, what the unevenness costs in
latency on the busiest node, and how many keys move when a node joins.

Picture a cloakroom with a round rail and N attendants, each standing at a few spots along it;
every coat hangs at a spot given by its ticket number and is looked after by the first attendant
clockwise. With one spot each, some attendants get a long stretch of rail and a queue at their
counter; with many spots each, the stretches even out. A new attendant takes over only the coats
just before their spots. This module counts the coats (keys), times the queue at the busiest
counter (its latency), and checks both against the closed forms.

Built from the toolkit: the ring is the pattern's `HashRing` with a 64-bit keyed hash drawn per
run, key positions and popularity (``ZipfKeys``) come from one seeded generator, requests are
``PoissonArrivals`` routed through the ring, and the hottest node's queue runs on the fast path
(``fastpath.fifo_ends``, the rows a SimPy ``ServerPool`` gives) with ``Exponential`` service:
an M/M/1 queue whose closed form is in ``simulations.theory``. The cache-tier integration puts
the course's ``LRUCache`` (Eviction Policies) behind the ring, replayed with
``simulations.caches.replay``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from patterns.caching.eviction_policies import LRUCache
from patterns.checks import check_choice, check_int, check_non_negative, check_positive, check_range
from patterns.distributed_data.consistent_hashing import HashRing, blake2b_hash
from simulations.caches import replay
from simulations.distributions import Exponential
from simulations.experiments import aggregate
from simulations.experiments import sweep as sweep_grid
from simulations.fastpath import fifo_ends
from simulations.theory import mm1_response_percentile
from simulations.workloads import PoissonArrivals, ZipfKeys

SPACE = 2**64  # the study's hash space: `blake2b_hash` gives 64-bit positions


def node_name(i: int) -> str:
    return f"node-{i}"


# ---------------------------------------------------------------- theory


def harmonic(n: int) -> float:
    """H_n = 1 + 1/2 + ... + 1/n (≈ ln n + 0.5772 for large n)."""
    return sum(1.0 / k for k in range(1, check_int("n", n, low=1) + 1))


def share_relative_sd(nodes: int, vnodes: int) -> float:
    """Relative standard deviation of one node's share of the ring: √((N − 1)/(N·v + 1)).

    Assumes the N·v points are independent and uniform on the circle (a random hash). The N·v
    arcs between them are then Dirichlet(1, ..., 1); a node owns the v arcs that end at its
    points, so its share is Beta(v, (N − 1)·v), with mean 1/N and variance
    (1/N)(1 − 1/N)/(N·v + 1). Relative to the mean that is ≈ 1/√v: the Gamma(v) share.
    """
    n, v = check_int("nodes", nodes, low=1), check_int("vnodes", vnodes, low=1)
    return math.sqrt((n - 1) / (n * v + 1))


def expected_max_over_mean(nodes: int, vnodes: int, grid: int = 4001) -> float:
    """E[largest share / mean share] for N nodes with v random points each.

    The shares are G_j / ΣG with G_j ~ Gamma(v, 1) independent (a Dirichlet(v, ..., v)), and
    the ratio is independent of ΣG, so E[max share]·N = E[max_j G_j] / v exactly:
    (1/v)·∫₀^∞ (1 − P(v, x)^N) dx, P the Gamma(v) CDF. With v = 1 it is H_N ≈ ln N + 0.58
    (the longest of N arcs). Integrated numerically (trapezoid over ``grid`` points).
    """
    n, v = check_int("nodes", nodes, low=1), check_int("vnodes", vnodes, low=1)
    x = np.linspace(0.0, v + 16.0 * math.sqrt(v) + 4.0 * math.log(n) + 16.0, grid)[1:]
    log_x = np.log(x)
    log_term, upper = -x, np.exp(-x)  # P(Poisson(x) = k) for k = 0, and P(Poisson(x) < v)
    for k in range(1, v):
        log_term = log_term + log_x - math.log(k)
        upper = upper + np.exp(log_term)
    with np.errstate(divide="ignore"):
        cdf_max = np.exp(n * np.log1p(-np.minimum(upper, 1.0)))  # P(v, x)^N
    integrand = np.concatenate(([1.0], 1.0 - cdf_max))
    return float(np.trapezoid(integrand, np.concatenate(([0.0], x)))) / v


def expected_moved(keys: int, nodes: int) -> float:
    """Keys that change node when one node joins N: K/(N + 1) on average.

    The new node's share is Beta(v, N·v) (see `share_relative_sd`), with mean 1/(N + 1), and
    only the keys in it move; rendezvous and jump hashing move the same share.
    """
    return check_int("keys", keys, low=0) / (check_int("nodes", nodes, low=1) + 1)


def modulo_moved_fraction(old: int, new: int) -> float:
    """Share of keys whose node changes when ``hash mod old`` becomes ``hash mod new``.

    h mod a = h mod b exactly when h mod lcm(a, b) < min(a, b), so the share that stays is
    min(a, b)/lcm(a, b); from N to N + 1 nodes that is 1/(N + 1), and N/(N + 1) move.
    """
    a, b = check_int("old", old, low=1), check_int("new", new, low=1)
    return 1.0 - min(a, b) / math.lcm(a, b)


def hottest_p99_s(arrival_rate: float, service_rate: float) -> float:
    """p99 response time of an M/M/1 node: ln(100)/(μ − λ); infinite when λ ≥ μ."""
    if check_non_negative("arrival_rate", arrival_rate) >= check_positive("service_rate",
                                                                           service_rate):
        return math.inf
    return mm1_response_percentile(max(arrival_rate, 1e-12), service_rate, 0.99)


# ---------------------------------------------------------------- placement


@dataclass(frozen=True, eq=False)
class Placement:
    """One ring and where it puts K keys: ``owner[k]`` is key k's node (an index into
    ``names``), ``shares[j]`` node j's share of the hash space."""

    ring: HashRing
    names: list[str]
    positions: np.ndarray  # uint64: key k's position on the ring
    owner: np.ndarray
    shares: np.ndarray

    @property
    def loads(self) -> np.ndarray:
        """Keys per node."""
        return np.bincount(self.owner, minlength=len(self.names))


def ring_arrays(ring: HashRing, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The ring's points (uint64, sorted) and their owners as indices into ``names``."""
    index = {name: i for i, name in enumerate(names)}
    points = np.fromiter((p for p, _ in ring.ring), dtype=np.uint64, count=len(ring.ring))
    owners = np.fromiter((index[n] for _, n in ring.ring), dtype=np.int64, count=len(ring.ring))
    return points, owners


def owners(ring: HashRing, names: Sequence[str], positions: np.ndarray) -> np.ndarray:
    """`HashRing.node_at` for many positions at once (as indices into ``names``): the first
    point after each position, wrapping past the top (a test holds the two equal)."""
    points, owner = ring_arrays(ring, names)
    return owner[np.searchsorted(points, positions, side="right") % len(points)]


def ring_shares(ring: HashRing, names: Sequence[str]) -> np.ndarray:
    """Each node's share of the 64-bit hash space: the arcs ending at its points."""
    points, owner = ring_arrays(ring, names)
    arcs = np.diff(points, prepend=points[-1:]).astype(np.float64)  # uint64 wraps: mod 2^64
    if len(points) == 1:
        arcs[0] = SPACE
    return np.bincount(owner, weights=arcs / SPACE, minlength=len(names))


def place(nodes: int, vnodes: int, keys: int, rng: np.random.Generator) -> Placement:
    """A ring of ``nodes`` nodes with ``vnodes`` points each, its hash drawn from ``rng``
    (a fresh random hash function), and ``keys`` keys at uniform random positions."""
    names = [node_name(i) for i in range(check_int("nodes", nodes, low=1))]
    ring = HashRing(names, check_int("vnodes", vnodes, low=1),
                    blake2b_hash(int(rng.integers(2**62))))
    positions = rng.integers(0, SPACE, size=check_int("keys", keys, low=1), dtype=np.uint64,
                             endpoint=False)
    return Placement(ring, names, positions, owners(ring, names, positions),
                     ring_shares(ring, names))


# ---------------------------------------------------------------- the study


@dataclass(frozen=True)
class Scenario:
    """N nodes with v virtual nodes each hold K keys; requests arrive at N·ρ·μ per second."""

    nodes: int = 10
    vnodes: int = 1
    keys: int = 50_000
    utilisation: float = 0.5  # ρ: the mean node's utilisation
    service_rate: float = 1000.0  # μ: requests per second one node serves
    duration_s: float = 10.0  # how long the hottest node's queue is simulated
    zipf_alpha: float = 0.0  # key popularity: 0 is uniform
    seed: int = 1

    def __post_init__(self) -> None:
        check_int("nodes", self.nodes, low=1, high=10_000)
        check_int("vnodes", self.vnodes, low=1, high=100_000)
        check_int("keys", self.keys, low=1)
        check_range("utilisation", self.utilisation, 0.0, 1.0, low_open=True, high_open=True)
        check_positive("service_rate", self.service_rate)
        check_positive("duration_s", self.duration_s)
        check_non_negative("zipf_alpha", self.zipf_alpha)

    @property
    def request_rate(self) -> float:
        """Λ = N·ρ·μ requests per second over the whole cluster."""
        return self.nodes * self.utilisation * self.service_rate


@dataclass(frozen=True, eq=False)
class Run:
    """One run: the placement; each node's request rate (req/s, from the key popularities);
    the hottest node's index and its requests' response times; and the join of one more node
    (``moved`` keys changed node, ``moved_only_to_new``: all of them to the new node)."""

    scenario: Scenario
    placement: Placement
    node_rate: np.ndarray
    hottest: int
    hot_arrival: np.ndarray
    hot_latency_s: np.ndarray
    moved: int
    moved_only_to_new: bool


def join(placement: Placement) -> tuple[int, bool]:
    """Add node N to the ring, count the keys whose node changed (and check they all went to
    the newcomer), then take it off again (the ring is as it was)."""
    ring, names = placement.ring, [*placement.names, node_name(len(placement.names))]
    ring.add(names[-1])
    try:
        after = owners(ring, names, placement.positions)
    finally:
        ring.remove(names[-1])
    changed = after != placement.owner
    return int(changed.sum()), bool(np.all(after[changed] == len(names) - 1))


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """Place the keys, route Poisson requests through the ring, queue the hottest node's share
    (M/M/1 on the fast path) and join one node. Deterministic for a seed (or ``rng``).

    Key k's popularity is the Zipf weight of rank k (uniform for α = 0); ranks and ring
    positions are independent, so a popular key is as likely to land on any node.
    """
    s = scenario
    rng = np.random.default_rng(s.seed) if rng is None else rng
    placement = place(s.nodes, s.vnodes, s.keys, rng)
    popularity = ZipfKeys(s.keys, s.zipf_alpha)
    node_rate = s.request_rate * np.bincount(placement.owner, weights=popularity.probabilities,
                                             minlength=s.nodes)
    hottest = int(np.argmax(node_rate))
    arrival = PoissonArrivals(s.request_rate).times(rng, horizon=s.duration_s)
    keys = (popularity.sample(rng, len(arrival)) if s.zipf_alpha else
            rng.integers(0, s.keys, len(arrival)))  # the same law, without a table lookup
    mine = arrival[placement.owner[keys] == hottest]
    service = Exponential(1.0 / s.service_rate).sample(rng, len(mine))
    moved, only_to_new = join(placement)
    return Run(s, placement, node_rate, hottest, mine, fifo_ends(mine, service) - mine, moved,
               only_to_new)


def summary(run: Run, warmup_s: float | None = None) -> dict[str, float]:
    """Headline numbers of a run.

    ``max_over_mean``: keys on the fullest node over the mean (what vnodes even out);
    ``share_max_over_mean`` and ``share_rel_var`` the same for the hash-space shares (the
    largest share times N, and N²·mean((share − 1/N)²), an unbiased estimate of the squared
    relative SD since the mean share is exactly 1/N); ``request_max_over_mean`` for the request
    rates (popularity included); ``hot_utilisation`` λ_hot/μ; ``p99_hot_ms`` measured on the
    hottest node (arrivals after ``warmup_s``, by default a tenth of the run) beside
    ``p99_hot_mm1_ms`` (M/M/1 at λ_hot); ``moved_fraction`` the keys moved by one join.
    """
    s, p = run.scenario, run.placement
    loads, n = p.loads, s.nodes
    warmup = s.duration_s / 10 if warmup_s is None else warmup_s
    settled = run.hot_latency_s[run.hot_arrival >= warmup]
    hot_rate = float(run.node_rate[run.hottest])
    return {
        "max_over_mean": float(loads.max() / loads.mean()),
        "share_max_over_mean": float(p.shares.max() * n),
        "share_rel_var": float(n * n * np.mean((p.shares - 1.0 / n) ** 2)),
        "request_max_over_mean": float(run.node_rate.max() / run.node_rate.mean()),
        "hot_utilisation": hot_rate / s.service_rate,
        "p99_hot_ms": float(np.percentile(settled, 99) * 1000) if len(settled) else math.nan,
        "p99_hot_mm1_ms": hottest_p99_s(hot_rate, s.service_rate) * 1000,
        "moved_fraction": run.moved / s.keys,
    }


SETTINGS = {
    "nodes": "nodes N",
    "vnodes": "virtual nodes per node v",
    "keys": "keys K",
    "utilisation": "mean node utilisation ρ",
    "zipf_alpha": "Zipf α of key popularity",
}
LABELS = {
    "max_over_mean": "max/mean keys per node",
    "share_max_over_mean": "max/mean share of the ring",
    "share_rel_var": "relative variance of a node's share",
    "request_max_over_mean": "max/mean requests per node",
    "hot_utilisation": "hottest node's utilisation",
    "p99_hot_ms": "hottest node's p99 (ms)",
    "p99_hot_mm1_ms": "hottest node's p99, M/M/1 (ms)",
    "moved_fraction": "share of keys moved by a join",
}


def sweep(base: Scenario, replications: int = 5, **grid: Sequence[Any]) -> list[dict[str, Any]]:
    """Run ``base`` at every combination of the ``grid`` settings (Scenario fields named in
    ``SETTINGS``) with the toolkit's ``sweep`` and ``aggregate`` each setting's `summary` over
    ``replications`` runs: the mean of each metric and its 95 % half-width (``<metric>_ci``).
    Replication r of every setting draws the same hash seed (common random numbers): the
    ring with 2v points per node holds the ring with v."""
    for name in grid:
        check_choice("sweep setting", name, SETTINGS)

    def model(rng: np.random.Generator, **settings: Any) -> dict[str, float]:
        return summary(simulate(replace(base, **settings), rng))

    rows = sweep_grid(model, grid, seed=base.seed, replications=replications)
    with np.errstate(invalid="ignore"):  # an unstable hottest node's M/M/1 p99 is inf
        return aggregate(rows, by=list(grid), metrics=list(LABELS))


def plot_vnodes(rows: list[dict[str, Any]], base: Scenario) -> list:
    """Three panels against v (log axis): max/mean keys per node beside the Gamma theory, the
    hottest node's p99 (simulated, and M/M/1 from the measured hot load), and the share of keys
    one join moves beside 1/(N + 1). ``rows`` come from ``sweep(base, vnodes=[...])``."""
    from simulations import plots

    rows = sorted(rows, key=lambda row: row["vnodes"])
    metrics = ("max_over_mean", "p99_hot_ms", "moved_fraction")
    axes = plots.sweep_panels(
        rows, x="vnodes", by=None, metrics=metrics, xlabel=SETTINGS["vnodes"],
        ylabels={m: LABELS[m] for m in metrics}, log_y=("p99_hot_ms",), panel_size=(4.0, 3.3),
        group_label=lambda _: f"simulation, N = {base.nodes}, K = {base.keys:,}")
    v = [row["vnodes"] for row in rows]
    finite = [row["p99_hot_mm1_ms"] if math.isfinite(row["p99_hot_mm1_ms"]) else math.nan
              for row in rows]
    theory = {
        "max_over_mean": ([expected_max_over_mean(base.nodes, x) for x in v],
                          "Gamma(v) shares (K → ∞)"),
        "p99_hot_ms": (finite, "M/M/1 at the hottest node's rate"),
        "moved_fraction": ([1 / (base.nodes + 1)] * len(v), "1/(N + 1)"),
    }
    for ax, metric in zip(axes, metrics, strict=True):
        values, label = theory[metric]
        ax.plot(v, values, label=label, **plots.THEORY)
        plots.log_scale(ax, "x")
        ax.legend(fontsize="small")
    return axes


# ---------------------------------------------------------------- integration: a cache tier


@dataclass(frozen=True)
class CacheTier:
    """A tier of ``nodes`` LRU caches (``capacity`` entries each) in front of a database, keys
    routed by a ring (``scheme="ring"``, ``vnodes`` points per node) or by ``hash mod n``
    (``"modulo"``). ``node-3`` crashes at ``crash_at_s`` (its cache is lost) and a new node
    joins at ``join_at_s`` with an empty cache; requests are Poisson, keys Zipf."""

    scheme: str = "ring"
    nodes: int = 8
    vnodes: int = 160
    keys: int = 50_000
    zipf_alpha: float = 0.8
    capacity: int = 2_000
    rate: float = 2000.0
    duration_s: float = 60.0
    crash_at_s: float = 20.0
    join_at_s: float = 40.0
    seed: int = 1

    def __post_init__(self) -> None:
        check_choice("scheme", self.scheme, ("ring", "modulo"))
        check_int("nodes", self.nodes, low=4)
        check_int("vnodes", self.vnodes, low=1)
        check_int("keys", self.keys, low=1)
        check_non_negative("zipf_alpha", self.zipf_alpha)
        check_int("capacity", self.capacity, low=1)
        check_positive("rate", self.rate)
        check_positive("duration_s", self.duration_s)
        check_range("crash_at_s", self.crash_at_s, 0.0, self.duration_s)
        check_range("join_at_s", self.join_at_s, self.crash_at_s, self.duration_s)


CRASHED = node_name(3)


@dataclass(frozen=True, eq=False)
class CacheRun:
    """Per request: its arrival time, the node that served it (an index into ``names``) and
    whether that node's cache had the key."""

    tier: CacheTier
    names: list[str]
    time: np.ndarray
    node: np.ndarray
    hit: np.ndarray


def simulate_cache_tier(tier: CacheTier, rng: np.random.Generator | None = None) -> CacheRun:
    """Route every request by the membership of its moment (all nodes, then without
    ``node-3``, then with the newcomer) and replay each node's requests, in order, through its
    own ``LRUCache``: the caches are independent, so that is the interleaved run exactly."""
    t = tier
    rng = np.random.default_rng(t.seed) if rng is None else rng
    names = [node_name(i) for i in range(t.nodes + 1)]
    hash_fn = blake2b_hash(int(rng.integers(2**62)))
    positions = rng.integers(0, SPACE, size=t.keys, dtype=np.uint64, endpoint=False)
    time = PoissonArrivals(t.rate).times(rng, horizon=t.duration_s)
    keys = ZipfKeys(t.keys, t.zipf_alpha).sample(rng, len(time))
    epochs = [names[:t.nodes], [n for n in names[:t.nodes] if n != CRASHED],
              [n for n in names if n != CRASHED]]
    starts = np.searchsorted(time, [0.0, t.crash_at_s, t.join_at_s])
    node = np.empty(len(time), dtype=np.int64)
    for members, lo, hi in zip(epochs, starts, [*starts[1:], len(time)], strict=True):
        if t.scheme == "ring":
            key_node = owners(HashRing(members, t.vnodes, hash_fn), names, positions)
        else:
            index = np.array([names.index(m) for m in members])
            key_node = index[(positions % np.uint64(len(members))).astype(np.int64)]
        node[lo:hi] = key_node[keys[lo:hi]]
    hit = np.zeros(len(time), dtype=bool)
    for j in range(len(names)):
        mine = np.flatnonzero(node == j)
        hit[mine] = replay(LRUCache(t.capacity), keys[mine])
    return CacheRun(t, names, time, node, hit)


def cache_timeline(run: CacheRun, bin_s: float = 1.0) -> dict[str, np.ndarray]:
    """Per-bin metrics of a cache tier: hit ratio (%), database reads per second (the
    misses), and the busiest live node's requests over the mean of the live nodes."""
    t = run.tier
    edges = np.arange(0.0, t.duration_s + bin_s / 2, check_positive("bin_s", bin_s))
    b = np.clip(np.searchsorted(edges, run.time, side="right") - 1, 0, len(edges) - 2)
    bins = len(edges) - 1
    total = np.bincount(b, minlength=bins)
    hits = np.bincount(b, weights=run.hit, minlength=bins)
    per_node = np.zeros((bins, len(run.names)))
    np.add.at(per_node, (b, run.node), 1)
    mid = edges[:-1] + bin_s / 2
    live = np.ones_like(per_node, dtype=bool)
    live[:, run.names.index(CRASHED)] = mid < t.crash_at_s
    live[:, -1] = mid >= t.join_at_s
    mean_live = np.where(live, per_node, 0).sum(axis=1) / live.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "time_s": mid,
            "hit_ratio_pct": 100 * hits / total,
            "db_reads_per_s": (total - hits) / bin_s,
            "load_imbalance": np.where(live, per_node, 0).max(axis=1) / mean_live,
        }


CACHE_LABELS = {
    "hit_ratio_pct": "hit ratio (%)",
    "db_reads_per_s": "database reads (per s)",
    "load_imbalance": "busiest node / mean node (requests)",
}


def plot_cache_dashboard(runs: dict[str, CacheRun], bin_s: float = 1.0) -> list:
    """The cache tier over time, one line per run: hit ratio, database reads, load imbalance;
    the crash and the join shaded (``plots.dashboard``)."""
    from simulations import plots

    series = {label: cache_timeline(run, bin_s) for label, run in runs.items()}
    tier = next(iter(runs.values())).tier
    return plots.dashboard(
        next(iter(series.values()))["time_s"],
        {CACHE_LABELS[m]: {label: s[m] for label, s in series.items()} for m in CACHE_LABELS},
        windows=[(tier.crash_at_s, tier.crash_at_s + bin_s), (tier.join_at_s,
                                                                tier.join_at_s + bin_s)],
        window_label=f"{CRASHED} crashes, then a node joins")


