"""The cell study: how many customers one failure reaches, and what smaller pools cost.

Picture a call centre of 24 agents. As one room, any free agent takes the next call, and a
caller rarely waits. Split into 4 rooms of 6 (cells), a fire drill in one room (a bad deploy, a
poison caller) silences only a quarter of the callers, but a caller now waits whenever *their*
room is busy, even while another room has agents idle. This module measures both sides:

* the **blast radius**: the share of customers a failed cell refuses (1/#cells in theory), and
  the share of customers whose whole shuffle shard a poison tenant shares (hypergeometric: 1/C(W,
  k) for the whole shard);
* the **pooling loss**: the same servers split into c cells, each an M/M/(N/c) fed λ/c, against
  the pooled M/M/N (Erlang C, ``simulations.theory``), simulated with the toolkit's fast path
  (``fifo_queue``, which a toolkit test holds equal to the SimPy ``ServerPool``), and the extra
  servers c cells need to keep the same chance of waiting.

Every random number comes from one seeded ``numpy.random.Generator``; runs that differ only in
the cell count see the same arrivals and service times (common random numbers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from patterns.architectural.cell_based_architecture import (
    CellRouter,
    CellUnavailableError,
    CustomerQuarantinedError,
    ProductionShardRouter,
    ShardRouterConfig,
    ShardUnavailableError,
    ShuffleShardAssigner,
    WorkerCrash,
)
from patterns.checks import check_choice, check_int, check_positive, check_range
from patterns.security.rate_limiting import TokenBucket
from simulations.experiments import aggregate
from simulations.experiments import sweep as sweep_grid
from simulations.fastpath import fifo_queue
from simulations.theory import erlang_c, min_servers, mmc_mean_wait

PLACEMENTS = ("table", "hash")
"""Customers placed on cells by a mapping table (balanced round robin) or by a hash."""

# ---------------------------------------------------------------- theory


def cell_blast_radius(cells: int) -> float:
    """Share of customers a single failed cell refuses, with customers spread evenly: 1/c."""
    return 1.0 / check_int("cells", cells, low=1)


def overlap_probability(workers: int, shard_size: int, shared: int) -> float:
    """Chance that a random shard of ``shard_size`` out of ``workers`` shares exactly ``shared``
    workers with a given shard (both drawn uniformly without replacement): hypergeometric,
    C(k, m) C(W-k, k-m) / C(W, k)."""
    w = check_int("workers", workers, low=1)
    k = check_int("shard_size", shard_size, low=1, high=w)
    m = check_int("shared", shared, low=0, high=k)
    return math.comb(k, m) * math.comb(w - k, k - m) / math.comb(w, k)


def full_overlap_probability(workers: int, shard_size: int) -> float:
    """Chance that another customer's shard is exactly a given one: 1/C(W, k). These are the
    customers a poison tenant that crashes its whole shard takes down."""
    return overlap_probability(workers, shard_size, shard_size)


def cell_mean_wait(arrival_rate: float, service_rate: float, servers: int, cells: int) -> float:
    """Mean queueing wait (s) when ``servers`` are split into ``cells`` equal cells, each fed an
    equal Poisson share λ/c: every cell is an M/M/(N/c), so one cell is the pooled M/M/N.
    Needs c to divide N and λ < Nμ."""
    n = check_int("servers", servers, low=1)
    c = check_int("cells", cells, low=1, high=n)
    if n % c:
        raise ValueError(f"cells must divide servers = {n} (got {cells})")
    return mmc_mean_wait(arrival_rate / c, service_rate, n // c)


def cell_wait_probability(arrival_rate: float, service_rate: float, servers: int,
                          cells: int) -> float:
    """Erlang C of one cell: the chance a request waits at all, with N/c servers and λ/c."""
    return erlang_c(arrival_rate / cells, service_rate, servers // cells)


def servers_for_target(arrival_rate: float, service_rate: float, cells: int,
                       max_wait_probability: float) -> int:
    """Total servers c cells need so that each keeps P(wait) <= the target (Erlang C per cell):
    the spare capacity cells cost is this minus the pooled (c = 1) figure."""
    c = check_int("cells", cells, low=1)
    return c * min_servers(arrival_rate / c, service_rate, max_wait_probability)


# ---------------------------------------------------------------- blast-radius simulations


def simulate_overlap(workers: int = 8, shard_size: int = 2, customers: int = 2000,
                     rng: np.random.Generator | None = None) -> dict[str, Any]:
    """Assign ``customers`` ids with `ShuffleShardAssigner` (salt drawn from ``rng``); customer 0
    is the poison tenant. Returns, over the others, the share sharing exactly m of its workers
    (``share_m``), the share sharing its whole shard (``full_share``, the ones it takes down) and
    the share sharing any worker (``any_share``, the ones that lose a worker)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    assigner = ShuffleShardAssigner(workers, shard_size, salt=f"s{rng.integers(2**32)}")
    poison = set(assigner.shard("customer-0"))
    shared = np.array([len(poison & set(assigner.shard(f"customer-{i}")))
                       for i in range(1, check_int("customers", customers, low=2))])
    out: dict[str, Any] = {f"share_{m}": float(np.mean(shared == m))
                           for m in range(shard_size + 1)}
    out["full_share"] = out[f"share_{shard_size}"]
    out["any_share"] = float(np.mean(shared > 0))
    out["others"] = len(shared)
    return out


def simulate_cell_failure(cells: int, customers: int = 2000,
                          rng: np.random.Generator | None = None) -> dict[str, float]:
    """Route ``customers`` ids with `CellRouter` (salt from ``rng``), fail one random cell for
    good, and count the share of customers it refuses."""
    rng = rng if rng is not None else np.random.default_rng(0)
    now = [0.0]
    router = CellRouter(cells, clock=lambda: now[0], salt=f"c{rng.integers(2**32)}")
    router.fail(int(rng.integers(cells)), math.inf)
    refused = 0
    for i in range(customers):
        try:
            router.admit(f"customer-{i}")
        except CellUnavailableError:
            refused += 1
    return {"refused_share": refused / customers}


# ---------------------------------------------------------------- queueing study


@dataclass(frozen=True)
class Scenario:
    """N servers split into ``cells`` equal cells; Poisson requests from ``customers`` equally
    busy customers; exponential service. ``placement`` puts customers on cells by a balanced
    table or by a hash of their id. ``flood_factor`` > 1 makes customer 0 send that many times
    its share from ``flood_start_s`` to ``flood_end_s``; ``tenant_limit_rps`` > 0 puts a token
    bucket per customer in front of the cells (the rate-limiting lesson's `TokenBucket`)."""

    servers: int = 24
    cells: int = 4
    load: float = 0.8
    service_rate: float = 10.0
    customers: int = 240
    horizon_s: float = 120.0
    placement: str = "table"
    flood_factor: float = 1.0
    flood_start_s: float = 40.0
    flood_end_s: float = 80.0
    tenant_limit_rps: float = 0.0

    def __post_init__(self) -> None:
        n = check_int("Scenario.servers", self.servers, low=1)
        c = check_int("Scenario.cells", self.cells, low=1, high=n)
        if n % c:
            raise ValueError(f"Scenario.cells must divide Scenario.servers = {n} (got {c})")
        check_range("Scenario.load", self.load, 0.0, 1.0, low_open=True, high_open=True)
        check_positive("Scenario.service_rate", self.service_rate)
        check_int("Scenario.customers", self.customers, low=1)
        check_positive("Scenario.horizon_s", self.horizon_s)
        check_choice("Scenario.placement", self.placement, PLACEMENTS)
        check_range("Scenario.flood_factor", self.flood_factor, 1.0)
        check_range("Scenario.flood_end_s", self.flood_end_s, self.flood_start_s, low_open=True)
        check_range("Scenario.tenant_limit_rps", self.tenant_limit_rps, 0.0)

    @property
    def arrival_rate(self) -> float:
        return self.load * self.servers * self.service_rate


def placement(scenario: Scenario) -> np.ndarray:
    """Cell of each customer: the table deals them round robin, the hash uses `CellRouter`."""
    if scenario.placement == "table":
        return np.arange(scenario.customers) % scenario.cells
    router = CellRouter(scenario.cells)
    return np.array([router.route(f"customer-{i}") for i in range(scenario.customers)])


@cache
def _hash_placement(cells: int, customers: int) -> tuple[int, ...]:
    return tuple(placement(Scenario(servers=cells, cells=cells, customers=customers,
                                    placement="hash")))


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
    """One run: per-request arrival, customer, cell, wait and response (s); NaN wait for a
    request the tenant limiter refused. Arrivals and service times are drawn before the cells
    are known, so runs with other cell counts see the same traffic."""
    rng = rng if rng is not None else np.random.default_rng(0)
    lam = scenario.arrival_rate
    n = int(rng.poisson(lam * scenario.horizon_s))
    arrivals = np.sort(rng.uniform(0.0, scenario.horizon_s, n))
    customer = rng.integers(scenario.customers, size=n)
    services = rng.exponential(1.0 / scenario.service_rate, n)
    if scenario.flood_factor > 1.0:
        span = scenario.flood_end_s - scenario.flood_start_s
        extra_rate = (scenario.flood_factor - 1.0) * lam / scenario.customers
        m = int(rng.poisson(extra_rate * span))
        extra = rng.uniform(scenario.flood_start_s, scenario.flood_end_s, m)
        order = np.argsort(np.concatenate([arrivals, extra]), kind="stable")
        arrivals = np.concatenate([arrivals, extra])[order]
        customer = np.concatenate([customer, np.zeros(m, dtype=customer.dtype)])[order]
        services = np.concatenate([services, rng.exponential(1.0 / scenario.service_rate,
                                                              m)])[order]
    cells_of = (np.asarray(_hash_placement(scenario.cells, scenario.customers))
                if scenario.placement == "hash" else placement(scenario))
    cell = cells_of[customer]
    admitted = np.ones(len(arrivals), dtype=bool)
    if scenario.tenant_limit_rps > 0:
        now = [0.0]
        buckets: dict[int, TokenBucket] = {}
        limit = scenario.tenant_limit_rps
        for i in range(len(arrivals)):
            now[0] = arrivals[i]
            b = buckets.get(int(customer[i]))
            if b is None:
                b = buckets[int(customer[i])] = TokenBucket(limit, max(1.0, limit),
                                                            clock=lambda: now[0])
            admitted[i] = b.allow()
    wait = np.full(len(arrivals), np.nan)
    per_cell = scenario.servers // scenario.cells
    for c in range(scenario.cells):
        idx = np.flatnonzero((cell == c) & admitted)
        if len(idx):
            table = fifo_queue(arrivals[idx], services[idx], per_cell)
            wait[idx] = table.start - table.arrival
    return {"arrival": arrivals, "customer": customer, "cell": cell, "wait": wait,
            "response": wait + services, "admitted": admitted}


def summary(run: dict[str, np.ndarray], warmup_s: float = 10.0,
            customers: Sequence[int] | None = None) -> dict[str, float]:
    """Mean wait, p99 response (s) and P(wait > 0) of admitted requests after ``warmup_s``,
    optionally only of the given customers."""
    keep = (run["arrival"] >= warmup_s) & run["admitted"]
    if customers is not None:
        keep &= np.isin(run["customer"], list(customers))
    w, r = run["wait"][keep], run["response"][keep]
    return {"mean_wait_s": float(np.mean(w)) if len(w) else math.nan,
            "p99_s": float(np.percentile(r, 99)) if len(r) else math.nan,
            "wait_probability": float(np.mean(w > 1e-12)) if len(w) else math.nan,
            "requests": int(len(w))}


def model(rng: np.random.Generator, **params: Any) -> dict[str, float]:
    """`simulate` + `summary` as a sweep model, plus the theory for the same settings."""
    sc = Scenario(**params)
    out = summary(simulate(sc, rng))
    out["erlang_mean_wait_s"] = cell_mean_wait(sc.arrival_rate, sc.service_rate, sc.servers,
                                               sc.cells)
    out["blast_radius"] = cell_blast_radius(sc.cells)
    return out


def sweep(cells: Sequence[int] = (1, 2, 3, 4, 6, 8, 12), *, seed: int = 1,
          replications: int = 5, **fixed: Any) -> list[dict[str, Any]]:
    """The cell count swept with common random numbers; mean and 95 % CI per setting."""
    rows = sweep_grid(model, {"cells": list(cells)}, seed=seed, replications=replications,
                      fixed=fixed)
    return aggregate(rows, ["cells"], ["mean_wait_s", "p99_s", "wait_probability",
                                       "erlang_mean_wait_s", "blast_radius"])


# ---------------------------------------------------------------- poison tenant at Level 3/4


def poison_episode(config: ShardRouterConfig | None = None, customers: int = 400,
                   rounds: int = 3) -> dict[str, Any]:
    """Run `ProductionShardRouter` with a fake clock: every customer sends one request per
    round; customer-0's request crashes any worker it runs on. Returns which customers had a
    request fail, how many share the poison's whole shard, and the router's counters."""
    now = [0.0]
    router = ProductionShardRouter(config or ShardRouterConfig(), clock=lambda: now[0])

    def handler_for(name: str):
        def handle(worker: int) -> int:
            if name == "customer-0":
                raise WorkerCrash(f"poison request crashed worker {worker}")
            return worker
        return handle

    failed: set[str] = set()
    for r in range(rounds):
        now[0] = float(r)
        for i in range(customers):
            name = f"customer-{i}"
            try:
                router.call(name, handler_for(name))
            except (ShardUnavailableError, CustomerQuarantinedError):
                failed.add(name)
    poison = set(router.shard("customer-0"))
    same = {f"customer-{i}" for i in range(1, customers)
            if set(router.shard(f"customer-{i}")) == poison}
    others_failed = failed - {"customer-0"}
    return {"router": router, "failed": others_failed, "same_shard": same,
            "failed_share": len(others_failed) / (customers - 1),
            "workers_crashed": router.metrics.counts["worker_crashes"]}


def fixed_shard_blast_radius(workers: int, shard_size: int) -> float:
    """Plain sharding: the W workers split into W/k fixed shards; a poison tenant takes down its
    own shard, so k/W of the customers."""
    return shard_size / workers


# ---------------------------------------------------------------- dashboard


def deploy_timeline(scenario: Scenario | None = None, *, deploy_at_s: float = 30.0,
                    detect_s: float = 10.0, all_at_once: bool = False, bin_s: float = 2.0,
                    rng: np.random.Generator | None = None) -> dict[str, Any]:
    """A bad deploy: from ``deploy_at_s`` every request of the cells running the new version
    fails, until the error alarm (one time bin of errors) plus ``detect_s`` rolls it back.
    Deployed to cell 0 only (a wave) or to every cell at once. Per time bin: error share (%),
    share of customers with a failed request in that bin (%), mean wait (ms)."""
    sc = scenario or Scenario(horizon_s=90.0)
    run = simulate(sc, rng)
    rollback = deploy_at_s + bin_s + detect_s
    bad_cells = np.arange(sc.cells) if all_at_once else np.array([0])
    failed = ((run["arrival"] >= deploy_at_s) & (run["arrival"] < rollback)
              & np.isin(run["cell"], bad_cells))
    edges = np.arange(0.0, sc.horizon_s + bin_s / 2, bin_s)
    which = np.digitize(run["arrival"], edges) - 1
    nb = len(edges) - 1
    err, hit, wait = np.zeros(nb), np.zeros(nb), np.zeros(nb)
    for b in range(nb):
        sel = which == b
        if sel.any():
            err[b] = 100 * failed[sel].mean()
            hit[b] = 100 * len(np.unique(run["customer"][sel & failed])) / sc.customers
            wait[b] = 1000 * np.nanmean(run["wait"][sel])
    return {"times": edges[:-1] + bin_s / 2, "error_pct": err, "customers_hit_pct": hit,
            "mean_wait_ms": wait, "window": (deploy_at_s, rollback)}


def plot_dashboard(cells: int = 4, detect_s: float = 10.0, seed: int = 3) -> list:
    """Two deploys of the same bad version, to one cell and to all at once, as a dashboard."""
    from simulations.plots import dashboard

    sc = Scenario(cells=cells, horizon_s=90.0)
    wave = deploy_timeline(sc, detect_s=detect_s, rng=np.random.default_rng(seed))
    blast = deploy_timeline(sc, detect_s=detect_s, all_at_once=True,
                            rng=np.random.default_rng(seed))
    return dashboard(wave["times"], {
        "failed requests (%)": {"deploy to one cell": wave["error_pct"],
                                "deploy to all cells": blast["error_pct"]},
        "customers hit in the bin (%)": {"deploy to one cell": wave["customers_hit_pct"],
                                         "deploy to all cells": blast["customers_hit_pct"]},
        "mean wait (ms)": {"deploy to one cell": wave["mean_wait_ms"]},
    }, windows=[wave["window"]], window_label="bad version live")


# ---------------------------------------------------------------- plots


def plot_tradeoff(load: float = 0.8, servers: int = 24, target: float = 0.2,
                  rows: list[dict[str, Any]] | None = None,
                  panels: Sequence[str] = ("blast", "wait", "spare")):
    """Against the cell count: blast radius, mean wait and extra servers needed (closed forms;
    the simulated waits with 95 % CI bars when ``rows`` from `sweep` are given). ``panels``
    picks which of the three to draw (the slider figure leaves out the blast radius, which no
    slider changes)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 2.9), layout="none",
                             squeeze=False)
    fig.subplots_adjust(left=0.18 / len(panels), right=0.99, bottom=0.16, top=0.9, wspace=0.3)
    mu = 10.0
    lam = load * servers * mu
    cells = [c for c in range(1, servers + 1) if servers % c == 0 and c < servers]
    for ax, panel in zip(axes[0], panels, strict=True):
        if panel == "blast":
            ax.plot(cells, [100 * cell_blast_radius(c) for c in cells], "o-",
                    label="one cell fails")
            ax.set(xlabel="cells", ylabel="customers hit (%)", title="blast radius")
            ax.legend(loc="upper right")
        elif panel == "wait":
            ax.plot(cells, [1000 * cell_mean_wait(lam, mu, servers, c) for c in cells], "o-",
                    label="Erlang C")
            if rows:
                ax.errorbar([r["cells"] for r in rows], [1000 * r["mean_wait_s"] for r in rows],
                            yerr=[1000 * r["mean_wait_s_ci"] for r in rows], fmt="s",
                            capsize=3, label="simulation (95 % CI)")
            ax.set(xlabel="cells", ylabel="mean wait (ms)",
                   title=f"pooling loss at load {load:.2f}")
            ax.legend(loc="upper left")
        else:
            base = servers_for_target(lam, mu, 1, target)
            ax.plot(cells, [servers_for_target(lam, mu, c, target) - base for c in cells], "o-",
                    label=f"P(wait) ≤ {target:g}")
            ax.set(xlabel="cells", ylabel="extra servers vs pooled", title="spare capacity")
            ax.legend(loc="upper left")
    return list(axes[0])


def plot_overlap(workers: int = 8, shard_size: int = 2, customers: int = 2000,
                 seeds: Sequence[int] = (1, 2, 3, 4, 5), ax=None):
    """Share of customers sharing m workers with the poison tenant: hypergeometric vs the
    simulated assigner (mean of ``seeds`` with 95 % CI bars). Returns the largest gap."""
    import matplotlib.pyplot as plt

    from simulations.metrics import confidence_interval

    ax = ax or plt.subplots(figsize=(5.5, 3.4), layout="constrained")[1]
    ms = np.arange(shard_size + 1)
    runs = [simulate_overlap(workers, shard_size, customers, np.random.default_rng(s))
            for s in seeds]
    theory = np.array([overlap_probability(workers, shard_size, int(m)) for m in ms])
    stats = [confidence_interval([r[f"share_{m}"] for r in runs]) for m in ms]
    mean = np.array([s[0] for s in stats])
    ax.bar(ms - 0.2, theory, width=0.4, label="hypergeometric")
    ax.bar(ms + 0.2, mean, width=0.4, yerr=[s[1] for s in stats], capsize=3,
           label="assigner (95 % CI)")
    ax.set(xlabel="workers shared with the poison tenant", ylabel="share of customers",
           xticks=ms, title=f"{workers} workers, shards of {shard_size}")
    ax.legend()
    return float(np.max(np.abs(mean - theory)))


__all__ = [
    "PLACEMENTS", "Scenario", "cell_blast_radius", "cell_mean_wait", "cell_wait_probability",
    "deploy_timeline", "fixed_shard_blast_radius", "full_overlap_probability", "model",
    "overlap_probability", "placement", "plot_dashboard", "plot_overlap", "plot_tradeoff",
    "poison_episode", "servers_for_target", "simulate", "simulate_cell_failure",
    "simulate_overlap", "summary", "sweep",
]
