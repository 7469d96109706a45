"""The Edge Computing study: user latency and cost for k edge sites against one central site.

Picture the corner shops of the pattern's module with a stopwatch: the walk (the round trip)
shrinks as shops multiply, the queue at each till grows as the same tills are split among more
shops, and every shop costs its rent. The study finds the number of shops k where the sum of walk
and queue is smallest, from the closed form and from simulation.

**Assumptions, stated plainly (numbers of the course's own, not measurements):**

- users are spread evenly over ``regions`` (24) regions; with k sites each site serves the
  same share of regions, so each gets load Λ/k and c/k of the c servers (k divides both);
- the round trip to the nearest of k sites is RTT(k) = rtt_edge + (rtt_central − rtt_edge)/√k
  (k sites spread over an area: the distance to the nearest shrinks like 1/√k); one central site
  is k = 1, at rtt_central = 80 ms; a site in every region comes near rtt_edge = 10 ms; every
  user of a setting sees that same RTT;
- Poisson arrivals (Λ = 384 req/s), exponential service of mean 50 ms, FIFO at each site;
- cost per hour = k · site_cost + c · server_cost (a fixed overhead per site: rent, network,
  operations) with site_cost = 3 and server_cost = 1 (arbitrary units).

The static sweep runs on the toolkit's fast path (``simulations.fastpath.fifo_queue``: the same
rows as ``ServerPool``, without an event loop). The router study (spillover, a regional failure,
central failover) runs the pattern's :class:`ProductionEdgeRouter` inside SimPy with
``ServerPool`` sites.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from functools import cache

import numpy as np
import simpy

from patterns.architectural.edge_computing import (
    EdgeRouter,
    NoSiteAvailable,
    ProductionEdgeRouter,
    RouterConfig,
)
from patterns.checks import check_int, check_non_negative, check_positive
from simulations import theory
from simulations.clients import RequestSource
from simulations.distributions import Exponential
from simulations.experiments import aggregate
from simulations.experiments import sweep as run_sweep
from simulations.fastpath import fifo_queue
from simulations.metrics import per_bin, percentile_of
from simulations.servers import ServerPool
from simulations.workloads import BurstyArrivals, PoissonArrivals

__all__ = [
    "EdgeRouter", "ProductionEdgeRouter", "RouterConfig", "RouterScenario", "Scenario",
    "best_sites", "cost", "draw_tradeoff", "model", "nearest_rtt", "plot_dashboard",
    "plot_sweep", "simulate", "simulate_router", "summary", "sweep", "theory_latency",
]

SITE_CHOICES = (1, 2, 3, 4, 6, 8, 12, 24)


@dataclass(frozen=True)
class Scenario:
    """k sites sharing c servers and the users of ``regions`` regions (see the assumptions)."""

    sites: int = 1
    servers: int = 24
    arrival_rate: float = 384.0     # all users together, req/s
    service_s: float = 0.05         # mean service time, s
    rtt_edge_s: float = 0.010
    rtt_central_s: float = 0.080
    site_cost: float = 3.0          # per site per hour (arbitrary units)
    server_cost: float = 1.0        # per server per hour
    regions: int = 24
    duration_s: float = 60.0
    warmup_s: float = 5.0
    burst: float = 1.0              # > 1: each region bursts to burst × its share (same mean)

    def __post_init__(self) -> None:
        check_int("Scenario.sites", self.sites, 1)
        check_int("Scenario.servers", self.servers, 1)
        check_int("Scenario.regions", self.regions, 1)
        if self.servers % self.sites or self.regions % self.sites:
            raise ValueError(f"Scenario.sites must divide servers ({self.servers}) and regions "
                             f"({self.regions}) (got {self.sites})")
        check_positive("Scenario.arrival_rate", self.arrival_rate)
        check_positive("Scenario.service_s", self.service_s)
        check_non_negative("Scenario.rtt_edge_s", self.rtt_edge_s)
        check_non_negative("Scenario.rtt_central_s", self.rtt_central_s)
        check_non_negative("Scenario.site_cost", self.site_cost)
        check_non_negative("Scenario.server_cost", self.server_cost)
        check_positive("Scenario.duration_s", self.duration_s)
        check_non_negative("Scenario.warmup_s", self.warmup_s)
        check_positive("Scenario.burst", self.burst)


def nearest_rtt(sites: int, rtt_edge_s: float, rtt_central_s: float) -> float:
    """The assumed RTT to the nearest of ``sites`` sites: edge + (central − edge)/√k."""
    return rtt_edge_s + (rtt_central_s - rtt_edge_s) / math.sqrt(sites)


def cost(s: Scenario) -> float:
    """Cost per hour: a fixed overhead per site plus the servers (same c for every k)."""
    return s.sites * s.site_cost + s.servers * s.server_cost


def theory_latency(s: Scenario, quantile: float = 0.99) -> tuple[float, float]:
    """(mean, quantile) of user latency: RTT(k) + the M/M/(c/k) response at load Λ/k.

    Mean: RTT(k) + C/(c_k·μ − λ_k) + 1/μ (Erlang C, ``theory.mmc_mean_response``); the quantile
    inverts the M/M/c response survival (``theory.mmc_response_percentile``) and adds RTT(k),
    exact since every user of a setting sees the same RTT. Infinite when a site is unstable.
    """
    lam, mu, c_k = s.arrival_rate / s.sites, 1.0 / s.service_s, s.servers // s.sites
    rtt = nearest_rtt(s.sites, s.rtt_edge_s, s.rtt_central_s)
    if lam >= c_k * mu:
        return math.inf, math.inf
    return (rtt + theory.mmc_mean_response(lam, mu, c_k),
            rtt + theory.mmc_response_percentile(lam, mu, c_k, quantile))


def best_sites(s: Scenario, choices: tuple[int, ...] = SITE_CHOICES) -> dict[str, int]:
    """The crossover k from the closed form: the k of least mean latency, of least p99, and of
    least latency × cost (the best latency per unit of cost)."""
    valid = [k for k in choices if s.servers % k == 0 and s.regions % k == 0]
    mean = {k: theory_latency(replace(s, sites=k))[0] for k in valid}
    p99 = {k: theory_latency(replace(s, sites=k))[1] for k in valid}
    product = {k: mean[k] * cost(replace(s, sites=k)) for k in valid}
    return {"mean": min(mean, key=mean.get), "p99": min(p99, key=p99.get),
            "latency_x_cost": min(product, key=product.get)}


@dataclass(frozen=True)
class Run:
    """One run's rows: arrival time, site, latency (RTT + wait + service), wait in queue."""

    arrival: np.ndarray
    site: np.ndarray
    latency: np.ndarray
    wait: np.ndarray
    scenario: Scenario


def _traffic(s: Scenario, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arrival times, regions and service times, drawn in that order (common random numbers:
    settings that differ only in ``sites`` see the same users and the same work)."""
    if s.burst > 1.0:
        # Each region bursts on its own (on a quarter of the time at burst × its share, the
        # off-rate chosen to keep the mean): independent regional bursts that a big pool averages
        # out and a small site must absorb alone.
        share = s.arrival_rate / s.regions
        on = share * s.burst
        off = max(0.0, (share - 0.25 * on) / 0.75)
        source = BurstyArrivals(on, 0.5, 1.5, rate_off=off)
        per_region = [source.times(rng, horizon=s.duration_s) for _ in range(s.regions)]
        times = np.concatenate(per_region)
        regions = np.concatenate([np.full(len(x), r) for r, x in enumerate(per_region)])
        order = np.argsort(times, kind="stable")
        times, regions = times[order], regions[order]
    else:
        times = PoissonArrivals(s.arrival_rate).times(rng, horizon=s.duration_s)
        regions = rng.integers(0, s.regions, len(times))
    services = rng.exponential(s.service_s, len(times))
    return times, regions, services


def simulate(s: Scenario, rng: np.random.Generator | None = None) -> Run:
    """Run k static sites on the fast path: region r goes to site r mod k."""
    rng = rng if rng is not None else np.random.default_rng(1)
    times, regions, services = _traffic(s, rng)
    site = regions % s.sites
    latency = np.empty(len(times))
    wait = np.empty(len(times))
    rtt = nearest_rtt(s.sites, s.rtt_edge_s, s.rtt_central_s)
    for k in range(s.sites):
        mine = site == k
        table = fifo_queue(times[mine], services[mine], s.servers // s.sites)
        latency[mine] = rtt + table.latency
        wait[mine] = table.wait
    return Run(times, site, latency, wait, s)


def summary(run: Run) -> dict[str, float]:
    """Mean and p99 latency (s) and mean wait after the warm-up, and the cost per hour."""
    kept = run.arrival >= run.scenario.warmup_s
    latency = run.latency[kept]
    return {"mean_latency_s": float(latency.mean()),
            "p99_latency_s": float(np.percentile(latency, 99)),
            "mean_wait_s": float(run.wait[kept].mean()),
            "cost": cost(run.scenario)}


def model(rng: np.random.Generator, **params) -> dict[str, float]:
    """``simulations.experiments`` model: one run of ``Scenario(**params)``."""
    return summary(simulate(Scenario(**params), rng))


def sweep(sites=SITE_CHOICES, replications: int = 5, seed: int = 11, **fixed) -> list[dict]:
    """Mean and 95 % interval of each metric per k (``replications`` seeded runs per k; the
    same seeds for every k, so the comparison uses common random numbers)."""
    rows = run_sweep(model, {"sites": list(sites)}, seed=seed, replications=replications,
                     fixed=fixed)
    return aggregate(rows, ["sites"], ["mean_latency_s", "p99_latency_s", "mean_wait_s", "cost"])


def plot_sweep(table: list[dict], base: Scenario | None = None):
    """Latency (mean and p99: closed form as lines, simulation as points with 95 % bars) and
    cost against the number of sites k."""
    from simulations import plots

    base = base or Scenario()
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9.5, 3.6), layout="constrained")
    ks = np.array([row["sites"] for row in table])
    fine = [k for k in SITE_CHOICES if base.servers % k == 0 and base.regions % k == 0]
    for color, metric, index, name in ((plots.COLORS[0], "mean_latency_s", 0, "mean"),
                                       (plots.COLORS[1], "p99_latency_s", 1, "p99")):
        th = [theory_latency(replace(base, sites=k))[index] * 1e3 for k in fine]
        ax.plot(fine, th, "--", color=color, label=f"{name}: closed form")
        ax.errorbar(ks, [r[metric] * 1e3 for r in table],
                    yerr=[r[metric + "_ci"] * 1e3 for r in table], fmt="o", color=color,
                    capsize=3, label=f"{name}: simulation (95 % CI)")
    plots.log_scale(ax, "x", base=2)
    ax.set_xlabel("edge sites k (c/k servers each)")
    ax.set_ylabel("user latency (ms)")
    ax.set_ylim(0, None)
    ax.legend(fontsize="x-small")
    bx.plot(fine, [cost(replace(base, sites=k)) for k in fine], "o-", color=plots.COLORS[2],
            label="k·site_cost + c·server_cost")
    plots.log_scale(bx, "x", base=2)
    bx.set_xlabel("edge sites k")
    bx.set_ylabel("cost per hour (units)")
    bx.legend(fontsize="x-small")
    return [ax, bx]


@cache
def _short_run(sites: int, arrival_rate: float, rtt_central_s: float, seed: int = 3):
    s = Scenario(sites=sites, arrival_rate=arrival_rate, rtt_central_s=rtt_central_s,
                 duration_s=12.0, warmup_s=2.0)
    return summary(simulate(s, np.random.default_rng(seed)))


def draw_tradeoff(arrival_rate: float = 384.0, rtt_central_ms: float = 80.0,
                  site_cost: float = 3.0):
    """The slider figure: mean and p99 latency against k (closed form as lines, a short
    simulation as points), the crossover k marked, and the best k for latency × cost in the
    title. One panel, k at evenly spaced positions with fixed ticks, to redraw fast."""
    import matplotlib.pyplot as plt

    from simulations import plots

    base = Scenario(arrival_rate=arrival_rate, rtt_central_s=rtt_central_ms / 1e3,
                    site_cost=site_cost)
    fine = list(SITE_CHOICES)
    x = np.arange(len(fine))
    th = np.array([theory_latency(replace(base, sites=k)) for k in fine]) * 1e3
    sim = np.array([[r["mean_latency_s"], r["p99_latency_s"]] for r in
                    (_short_run(k, arrival_rate, rtt_central_ms / 1e3) for k in fine)]) * 1e3
    best = best_sites(base)
    fig, ax = plt.subplots(figsize=(6.8, 3.6), layout="none")
    fig.subplots_adjust(left=0.11, right=0.98, bottom=0.15, top=0.88)
    for col, name, color in ((0, "mean", plots.COLORS[0]), (1, "p99", plots.COLORS[1])):
        ax.plot(x, th[:, col], "--", color=color, label=f"{name}: closed form")
        ax.plot(x, sim[:, col], "o", color=color, label=f"{name}: simulation (10 s)")
    ax.axvline(fine.index(best["mean"]), color="grey", linewidth=0.8, label="best k (mean)")
    finite = th[np.isfinite(th)]
    ax.set_ylim(0, min(1500.0, float(finite.max()) * 1.1) if finite.size else 1500.0)
    ax.set_xticks(x, [str(k) for k in fine])
    ax.set_xlabel("edge sites k (c/k servers each)")
    ax.set_ylabel("user latency (ms)")
    ax.set_title(f"best k: mean {best['mean']}, p99 {best['p99']}, "
                 f"latency × cost {best['latency_x_cost']} "
                 f"(cost {cost(replace(base, sites=best['latency_x_cost'])):g}/h)",
                 fontsize="medium")
    ax.legend(fontsize="x-small", loc="upper left")
    return [ax]


# --- The router in SimPy: spillover, a regional failure, central failover ---------------------


@dataclass(frozen=True)
class RouterScenario:
    """``regions`` regions, one edge site each (``edge_servers`` servers), and a central site.

    RTT from a region to its own site ``rtt_own_s``, to any other edge site ``rtt_other_s``,
    to the central site ``rtt_central_s``. Each region's load is ``arrival_rate / regions``;
    region 0 gets ``hot_factor`` × its share during ``hot`` (start, end). Site 0 is dead during
    ``outage`` (start, end): it stops its heartbeats (every ``beat_s``), and a request sent to it
    waits ``connect_timeout_s`` and then goes to the central site.
    """

    regions: int = 4
    edge_servers: int = 3
    central_servers: int = 12
    arrival_rate: float = 160.0
    service_s: float = 0.05
    rtt_own_s: float = 0.010
    rtt_other_s: float = 0.035
    rtt_central_s: float = 0.080
    max_in_flight: int = 6          # per edge site: servers + a short queue; then spill over
    spillover: bool = True
    health_timeout_s: float = 2.0
    beat_s: float = 0.5
    connect_timeout_s: float = 0.3
    duration_s: float = 60.0
    hot: tuple[float, float] | None = None
    hot_factor: float = 3.0
    outage: tuple[float, float] | None = None


def simulate_router(s: RouterScenario, rng: np.random.Generator | None = None) -> dict:
    """Run the production router over SimPy sites; rows per request and the router."""
    rng = rng if rng is not None else np.random.default_rng(5)
    env = simpy.Environment()
    names = [f"edge-{r}" for r in range(s.regions)]
    edge_rtt = {f"r{r}": {name: (s.rtt_own_s if i == r else s.rtt_other_s)
                          for i, name in enumerate(names)} for r in range(s.regions)}
    central_rtt = {f"r{r}": s.rtt_central_s for r in range(s.regions)}
    cap = s.max_in_flight if s.spillover else 10_000
    router = ProductionEdgeRouter(edge_rtt, central_rtt,
                                  RouterConfig(health_timeout_s=s.health_timeout_s,
                                               max_in_flight=cap),
                                  clock=lambda: env.now)
    service = Exponential(s.service_s)
    pools = {name: ServerPool(env, s.edge_servers, service, rng) for name in names}
    pools["central"] = ServerPool(env, s.central_servers, service, rng)
    rows: list[tuple[float, float, int, int]] = []  # arrival, latency, region, where (0 own ...)

    def dead(site: str) -> bool:
        return s.outage is not None and site == "edge-0" and s.outage[0] <= env.now < s.outage[1]

    def beats(site: str):
        while True:
            if not dead(site):
                router.heartbeat(site)
            yield env.timeout(s.beat_s)

    for site in pools:
        env.process(beats(site))

    def request(region: int):
        start = env.now
        key = f"r{region}"
        try:
            site = router.route(key)
        except NoSiteAvailable:
            rows.append((start, math.nan, region, 3))
            return
        where = 0 if site == names[region] else (2 if site == "central" else 1)
        if dead(site):
            yield env.timeout(s.connect_timeout_s)
            router.release(site)
            site, where = "central", 2
            router.in_flight["central"] += 1
        yield env.timeout(router.rtt_s[key][site])
        yield pools[site].call()
        router.release(site)
        rows.append((start, env.now - start, region, where))

    share = s.arrival_rate / s.regions
    logger = logging.getLogger("patterns.architectural.edge_computing")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        for r in range(s.regions):
            def send(key, cls, r=r):
                env.process(request(r))
            RequestSource(env, PoissonArrivals(share), send, rng, horizon_s=s.duration_s)
            if r == 0 and s.hot is not None:
                start, end = s.hot
                extra = share * (s.hot_factor - 1.0)

                def hot_source(r=r, start=start, end=end, extra=extra):
                    yield env.timeout(start)
                    RequestSource(env, PoissonArrivals(extra), lambda k, c, r=r:
                                  env.process(request(r)), rng, horizon_s=end - start)
                env.process(hot_source())
        env.run(until=s.duration_s + 5.0)
    finally:
        logger.setLevel(level)
    table = np.array(rows, dtype=float).reshape(-1, 4)
    order = np.argsort(table[:, 0])
    table = table[order]
    return {"arrival": table[:, 0], "latency": table[:, 1], "region": table[:, 2].astype(int),
            "where": table[:, 3].astype(int), "router": router, "scenario": s}


def router_summary(run: dict, region: int | None = None) -> dict[str, float]:
    """Mean and p99 latency (s), and the share served by the own site, another edge site, the
    central site, or refused; for one region or all."""
    pick = np.ones(len(run["arrival"]), bool) if region is None else run["region"] == region
    lat = run["latency"][pick]
    where = run["where"][pick]
    ok = lat[np.isfinite(lat)]
    return {"mean_latency_s": float(ok.mean()), "p99_latency_s": float(np.percentile(ok, 99)),
            "own": float(np.mean(where == 0)), "other_edge": float(np.mean(where == 1)),
            "central": float(np.mean(where == 2)), "refused": float(np.mean(where == 3))}


def plot_dashboard(runs: dict[str, dict], windows=(), bin_s: float = 2.0):
    """p99 latency, and the share of requests sent to the central site, per time bin."""
    from simulations import plots

    times = None
    p99, central = {}, {}
    for name, run in runs.items():
        end = run["scenario"].duration_s
        ok = np.isfinite(run["latency"])
        times, values = per_bin(run["arrival"][ok], run["latency"][ok] * 1e3, bin_s, 0.0, end,
                                percentile_of(99))
        p99[name] = values
        _, share = per_bin(run["arrival"], (run["where"] == 2).astype(float), bin_s, 0.0, end,
                           np.mean)
        central[name] = share
    return plots.dashboard(times, {"p99 latency (ms)": p99,
                                   "share of requests at the central site": central},
                           windows=windows, window_label="site edge-0 down")
