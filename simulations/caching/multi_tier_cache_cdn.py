"""The CDN study: origin offload and user latency against edge-cache size and number of PoPs.

Picture the chain of shops again, now with a stopwatch and a map. More kiosks mean each
customer walks less far, but each kiosk sees fewer customers and, with the same stock split
between more kiosks, has less on its shelves: more trips to the warehouse and the factory.

Users are spread evenly over ``pops`` points of presence, each an LRU edge cache of
``edge_capacity`` entries, all asking for keys with the same Zipf(α) popularity; an optional LRU
shield of ``shield_capacity`` entries sits between the edges and the origin. The hits come from
replaying the requests through the course's ``LRUCache`` tier by tier (``simulations.caches.
replay``): each edge sees its users' requests, the shield sees the edges' misses in time order.
A request's latency is the round trips it made (user to edge, edge to shield, to the origin)
with log-normal jitter; tiers are assumed not to queue. ``simulate_timeline`` is the same system
in SimPy with an origin of a few workers that can queue, for the cold-restart storm.

Theory: Che's approximation per tier (``che_tiers``), the edges' miss stream taken as the
shield's independent-reference input. That is an approximation (a miss stream is not IRM: a key
just missed is now cached and will not miss again soon), and the tests measure its error.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import simpy

from patterns.caching.eviction_policies import LRUCache
from patterns.caching.multi_tier_cache_cdn import TieredCache
from patterns.checks import check_int, check_non_negative, check_positive
from simulations.caches import replay
from simulations.clients import RequestSource
from simulations.distributions import LogNormal
from simulations.experiments import aggregate
from simulations.experiments import sweep as run_sweep
from simulations.metrics import per_bin, percentile_of, rate_over_time
from simulations.records import Outcome
from simulations.servers import ServerPool
from simulations.theory import che_hit_probabilities
from simulations.workloads import PoissonArrivals, ZipfKeys

__all__ = ["Run", "Scenario", "TieredCache", "Timeline", "che_tiers", "edge_rtt_ms",
           "origin_load", "plot_dashboard", "plot_run", "plot_sweep", "simulate",
           "simulate_timeline", "summary", "sweep"]

EDGE, SHIELD, ORIGIN = 0, 1, 2  # the level that answered a request


def edge_rtt_ms(pops: int, near_ms: float = 5.0, reach_ms: float = 60.0) -> float:
    """User-to-PoP round trip: ``near_ms + reach_ms/√pops``.

    An assumption, not a measurement: with PoPs spread evenly over a region, the distance to
    the nearest falls as 1/√(PoPs per area); ``near_ms`` is the last mile that no PoP removes.
    """
    check_int("pops", pops, 1)
    return check_non_negative("near_ms", near_ms) + check_non_negative("reach_ms", reach_ms) / (
        pops ** 0.5)


@dataclass(frozen=True)
class Scenario:
    """One CDN: its PoPs, cache sizes (entries), round trips (ms) and traffic.

    The round trips are assumptions for a continent-sized region, not any provider's
    figures: ``edge_rtt_ms(pops, near_ms, reach_ms)`` to the PoP, ``shield_rtt_ms`` from a PoP
    to the shield, ``origin_rtt_ms`` from whichever tier asks the origin (fetch included).
    ``shield_capacity = 0`` means no shield: the edges ask the origin themselves. The first
    ``warmup`` requests fill the caches and are not measured.
    """

    pops: int = 4
    edge_capacity: int = 500
    shield_capacity: int = 4_000
    n_keys: int = 20_000
    alpha: float = 1.0
    requests: int = 60_000
    warmup: int = 20_000
    near_ms: float = 5.0
    reach_ms: float = 60.0
    shield_rtt_ms: float = 25.0
    origin_rtt_ms: float = 80.0
    jitter_scv: float = 0.1
    seed: int = 1

    def __post_init__(self) -> None:
        check_int("Scenario.pops", self.pops, 1, 1024)
        check_int("Scenario.edge_capacity", self.edge_capacity, 1)
        check_int("Scenario.shield_capacity", self.shield_capacity, 0)
        check_int("Scenario.n_keys", self.n_keys, 1)
        check_non_negative("Scenario.alpha", self.alpha)
        check_int("Scenario.requests", self.requests, 1)
        check_int("Scenario.warmup", self.warmup, 0, self.requests - 1)
        for name in ("near_ms", "reach_ms", "shield_rtt_ms", "origin_rtt_ms"):
            check_non_negative(f"Scenario.{name}", getattr(self, name))
        check_positive("Scenario.jitter_scv", self.jitter_scv)

    @property
    def popularity(self) -> ZipfKeys:
        return _zipf(self.n_keys, self.alpha)


@functools.cache
def _zipf(n_keys: int, alpha: float) -> ZipfKeys:
    return ZipfKeys(n_keys, alpha)


@dataclass(frozen=True)
class Run:
    """One run: per request its ``key``, ``pop``, the ``level`` that answered and its latency."""

    scenario: Scenario
    key: np.ndarray
    pop: np.ndarray
    level: np.ndarray
    latency_ms: np.ndarray


def _traffic(scenario: Scenario, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    keys = scenario.popularity.sample(rng, scenario.requests)
    return keys, rng.integers(scenario.pops, size=scenario.requests)


def _latency_ms(scenario: Scenario, level: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Round trips made by each request, each hop with its own log-normal jitter (mean 1)."""
    jitter = LogNormal(1.0, scenario.jitter_scv).sample(rng, (3, len(level)))
    shield = scenario.shield_capacity > 0
    latency = edge_rtt_ms(scenario.pops, scenario.near_ms, scenario.reach_ms) * jitter[0]
    latency += (level >= 1) * (scenario.shield_rtt_ms * jitter[1] if shield else 0.0)
    latency += (level == (ORIGIN if shield else SHIELD)) * scenario.origin_rtt_ms * jitter[2]
    return latency


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """Replay the requests through each PoP's LRU edge, then the misses through the shield.

    Equivalent to one ``TieredCache([edge_i, shield], fetch)`` per PoP sharing the shield
    (inclusive), looked up in arrival order (the tests check it); replaying each tier at once
    is several times faster. Without a shield, level 1 means the origin.
    """
    rng = rng if rng is not None else np.random.default_rng(scenario.seed)
    keys, pops = _traffic(scenario, rng)
    level = np.ones(scenario.requests, dtype=np.int8)
    for pop in range(scenario.pops):
        mine = np.flatnonzero(pops == pop)
        level[mine[replay(LRUCache(scenario.edge_capacity), keys[mine])]] = EDGE
    if scenario.shield_capacity > 0:
        missed = np.flatnonzero(level == SHIELD)
        level[missed[~replay(LRUCache(scenario.shield_capacity), keys[missed])]] = ORIGIN
    return Run(scenario, keys, pops, level, _latency_ms(scenario, level, rng))


def summary(run: Run) -> dict[str, float]:
    """Hit ratios per tier, origin offload and latency over the measured (post-warmup) requests.

    ``shield_hit_ratio`` is the share of the requests reaching the shield that it answered;
    ``origin_offload`` the share of all requests that never reached the origin.
    """
    s = run.scenario
    level, latency = run.level[s.warmup:], run.latency_ms[s.warmup:]
    origin_level = _origin_level(s)
    reached_shield = int(np.sum(level >= 1))
    shield_hits = int(np.sum(level == SHIELD)) if s.shield_capacity > 0 else 0
    return {
        "edge_hit_ratio": float(np.mean(level == EDGE)),
        "shield_hit_ratio": shield_hits / max(reached_shield, 1),
        "origin_offload": float(np.mean(level != origin_level)),
        "mean_latency_ms": float(latency.mean()),
        "p99_latency_ms": float(np.percentile(latency, 99)),
    }


def origin_load(rate: float, edge_hit_ratio: float, shield_hit_ratio: float) -> float:
    """Requests per second reaching the origin: λ·(1 − h₁)·(1 − h₂), h₂ of what reaches it."""
    return rate * (1 - edge_hit_ratio) * (1 - shield_hit_ratio)


def che_tiers(scenario: Scenario) -> dict[str, float]:
    """Che's approximation per tier, with the edges' miss stream as the shield's input.

    Every edge sees the same popularity p, so key i misses at an edge with probability
    1 − hᵢ (Che, capacity C₁; the rate λ/P does not change hᵢ under IRM). The shield sees the
    sum of the edges' miss streams, key i at a rate ∝ pᵢ(1 − hᵢ); renormalised to qᵢ and taken
    as if it were IRM, Che with capacity C₂ gives its hit ratio Σqᵢgᵢ. Mean latency adds the
    round trips in proportion. Assumptions: IRM at the edges, LRU everywhere, and the miss
    stream treated as IRM (it is not; see the module's docstring).
    """
    p = scenario.popularity.probabilities
    edge = che_hit_probabilities(p, scenario.edge_capacity)
    h1 = float(p @ edge)
    h2 = 0.0
    if scenario.shield_capacity > 0:
        missed = p * (1 - edge)
        q = missed / missed.sum()
        h2 = float(q @ che_hit_probabilities(q, scenario.shield_capacity))
    shield = scenario.shield_capacity > 0
    mean = (edge_rtt_ms(scenario.pops, scenario.near_ms, scenario.reach_ms)
            + (1 - h1) * (scenario.shield_rtt_ms if shield else 0.0)
            + (1 - h1) * (1 - h2) * scenario.origin_rtt_ms)
    return {"edge_hit_ratio": h1, "shield_hit_ratio": h2,
            "origin_offload": 1 - (1 - h1) * (1 - h2), "mean_latency_ms": mean}


def _model(rng: np.random.Generator, scenario: Scenario, total_edge_capacity: int | None = None,
           **settings: Any) -> dict[str, float]:
    if total_edge_capacity is not None:
        settings["edge_capacity"] = max(1, total_edge_capacity // settings.get("pops",
                                                                               scenario.pops))
    return summary(simulate(replace(scenario, **settings), rng))


def sweep(scenario: Scenario, *, replications: int = 3, **grid: Sequence[Any]) -> list[dict]:
    """Run the study over a grid of ``Scenario`` fields (and ``total_edge_capacity``, split
    evenly over the PoPs); mean and 95 % interval per setting, with Che's prediction beside."""
    rows = run_sweep(_model, grid, seed=scenario.seed, replications=replications,
                     fixed={"scenario": scenario})
    metrics = ["edge_hit_ratio", "shield_hit_ratio", "origin_offload", "mean_latency_ms",
               "p99_latency_ms"]
    table = aggregate(rows, by=list(grid), metrics=metrics)
    for row in table:
        settings = {k: row[k] for k in grid if k != "total_edge_capacity"}
        if "total_edge_capacity" in grid:
            settings["edge_capacity"] = max(1, row["total_edge_capacity"]
                                            // settings.get("pops", scenario.pops))
        theory = che_tiers(replace(scenario, **settings))
        row.update({f"che_{name}": value for name, value in theory.items()})
    return table


# --- the same system in SimPy, with an origin that can queue ----------------------------------


@dataclass(frozen=True)
class Timeline:
    """A SimPy run: per request its arrival (s), level, latency (s); and the restart times."""

    scenario: Scenario
    arrival: np.ndarray
    level: np.ndarray
    latency_s: np.ndarray
    origin_busy: tuple[np.ndarray, np.ndarray]
    restarts: tuple[float, ...]


def simulate_timeline(scenario: Scenario, *, rate: float = 2_000.0, horizon_s: float = 30.0,
                      restart_at_s: float | None = None, origin_workers: int | None = 16,
                      origin_service_ms: float = 20.0,
                      rng: np.random.Generator | None = None) -> Timeline:
    """Poisson requests at ``rate``/s through one ``TieredCache`` per PoP (sharing the shield).

    The origin is a ``ServerPool`` of ``origin_workers`` (None = unlimited) with log-normal
    service of mean ``origin_service_ms`` on top of the round trip, so a burst of misses
    queues. At ``restart_at_s`` every edge restarts empty (a fleet-wide deploy). Caches are
    filled when a request arrives (no two requests for one key miss together: the stampede
    lesson covers that). ``scenario.requests`` is not used; the horizon sets the traffic.
    """
    check_positive("rate", rate)
    check_positive("horizon_s", horizon_s)
    rng = rng if rng is not None else np.random.default_rng(scenario.seed)
    env = simpy.Environment()
    origin = ServerPool(env, origin_workers, LogNormal(origin_service_ms / 1000, 1.0), rng)
    shield = [LRUCache(scenario.shield_capacity)] if scenario.shield_capacity > 0 else []
    caches = [TieredCache([LRUCache(scenario.edge_capacity), *shield], lambda key: key)
              for _ in range(scenario.pops)]
    edge_s = edge_rtt_ms(scenario.pops, scenario.near_ms, scenario.reach_ms) / 1000
    levels: list[int] = []

    def handle(key: int, pop: int):
        level = caches[pop].lookup(key)[1]
        levels.append(level)
        yield env.timeout(edge_s)
        if level >= 1 and shield:
            yield env.timeout(scenario.shield_rtt_ms / 1000)
        if level == len(caches[pop].tiers):
            yield env.timeout(scenario.origin_rtt_ms / 1000)
            return (yield origin.call(key))
        return Outcome.OK

    def restart():
        yield env.timeout(restart_at_s)
        for cache in caches:
            cache.tiers[0] = LRUCache(scenario.edge_capacity)

    front = ServerPool(env, None, handle)
    RequestSource(env, PoissonArrivals(rate), front.submit, rng, horizon_s=horizon_s,
                  keys=scenario.popularity, class_weights=[1.0] * scenario.pops)
    if restart_at_s is not None:
        env.process(restart())
    env.run()
    table = front.log.table()
    served = origin.log.table()
    times = np.concatenate([served.start, served.end])
    order = np.argsort(times, kind="stable")
    steps = np.cumsum(np.repeat([1.0, -1.0], len(served.start))[order])
    return Timeline(scenario, table.arrival, np.array(levels, dtype=np.int8), table.latency,
                    (times[order], steps), () if restart_at_s is None else (restart_at_s,))


def _origin_level(scenario: Scenario) -> int:
    return ORIGIN if scenario.shield_capacity > 0 else SHIELD


# --- plots -------------------------------------------------------------------------------------

_LABELS = {"edge_hit_ratio": "edge hit ratio", "shield_hit_ratio": "shield hit ratio",
           "origin_offload": "origin offload", "mean_latency_ms": "mean latency (ms)",
           "p99_latency_ms": "p99 latency (ms)"}


def plot_sweep(rows: Sequence[Mapping[str, Any]], *, x: str, xlabel: str, by: str | None = None,
               metrics: Sequence[str] = ("edge_hit_ratio", "origin_offload", "mean_latency_ms",
                                         "p99_latency_ms"),
               group_label=str, theory: bool = True) -> list:
    """One panel per metric against ``x``, a line per ``by`` value, Che's curve dashed."""
    from simulations import plots

    axes = plots.sweep_panels(rows, x=x, by=by, metrics=metrics, xlabel=xlabel,
                              ylabels={m: _LABELS[m] for m in metrics}, group_label=group_label,
                              panel_size=(3.4, 2.9))
    if theory:
        groups: dict[Any, list] = {}
        for row in rows:
            groups.setdefault(None if by is None else row[by], []).append(row)
        for ax, metric in zip(axes, metrics, strict=True):
            if f"che_{metric}" not in rows[0]:
                continue
            for i, part in enumerate(groups.values()):
                ax.plot([r[x] for r in part], [r[f"che_{metric}"] for r in part],
                        **plots.THEORY, label="Che per tier" if i == 0 else None)
            ax.legend(fontsize="x-small")
    return axes


def plot_dashboard(runs: Mapping[str, Timeline], bin_s: float = 1.0) -> list:
    """Origin requests/s, edge hit ratio, p99 latency and busy origin workers over time."""
    from simulations import plots

    first = next(iter(runs.values()))
    end = float(max(run.arrival.max() for run in runs.values()))
    panels: dict[str, dict[str, np.ndarray]] = {
        "origin (req/s)": {}, "edge hit ratio": {}, "p99 latency (ms)": {},
        "busy origin workers": {}}
    times = None
    for name, run in runs.items():
        origin = run.arrival[run.level == _origin_level(run.scenario)]
        times, panels["origin (req/s)"][name] = rate_over_time(origin, bin_s, 0.0, end)
        panels["edge hit ratio"][name] = per_bin(run.arrival, (run.level == EDGE).astype(float),
                                                 bin_s, 0.0, end, np.mean)[1]
        panels["p99 latency (ms)"][name] = 1000 * per_bin(
            run.arrival, run.latency_s, bin_s, 0.0, end, percentile_of(99))[1]
        change, busy = run.origin_busy
        index = np.searchsorted(change, times, side="right") - 1
        panels["busy origin workers"][name] = np.where(index >= 0, busy[np.maximum(index, 0)], 0)
    windows = [(t, t + bin_s) for t in first.restarts]
    return plots.dashboard(times, panels, windows=windows, window_label="edges restart")



def plot_run(run: Run) -> list:
    """One run: the share answered by each tier beside Che's, and the latency CCDF per CDN."""
    import matplotlib.pyplot as plt

    from simulations import plots

    _, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.3), layout="constrained")
    measured, theory = summary(run), che_tiers(run.scenario)
    names = ["edge_hit_ratio", "shield_hit_ratio", "origin_offload"]
    x = np.arange(len(names))
    plots.new_axes(left).bar(x, [measured[n] for n in names], 0.6, label="simulation")
    left.plot(x, [theory[n] for n in names], "_", color="black", markersize=28, mew=2,
              label="Che per tier")
    left.set_xticks(x, ["edge hit", "shield hit", "origin offload"])
    left.set_ylim(0, 1)
    left.set_ylabel("ratio")
    left.legend(fontsize="small", loc="upper left")
    # 2,000 evenly spaced quantiles draw the same curve as every sample, several times faster
    latency = np.quantile(run.latency_ms[run.scenario.warmup:], np.linspace(0, 0.9999, 2_000))
    plots.cdf({f"{run.scenario.pops} PoPs": latency}, complementary=True, ax=right,
              xlabel="user latency (ms)")
    right.axvline(measured["p99_latency_ms"], **plots.THEORY,
                  label=f"p99 {measured['p99_latency_ms']:.0f} ms")
    right.legend(fontsize="small")
    return [left, right]
