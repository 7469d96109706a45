"""The zero-trust mTLS study: request latency against the connection-reuse ratio q and depth.

Picture the badge readers of the pattern's module with a stopwatch: a request walks through
``depth`` doors in a row (a call chain of services). At each door it either finds the door
still open (a reused connection, probability q) or must badge in: a handshake of
``handshake_rtts`` round trips (1 for TLS 1.3, 2 for TLS 1.2) plus the handshake's crypto CPU
on the door's server. Every hop also costs one round trip for the call itself and its service.

``simulate`` draws all random numbers up front (common random numbers across settings) and runs
each hop's server as a FIFO queue with the toolkit's fast path (``fastpath.fifo_queue``); with
``pairs`` set, reuse is not a coin flip but the pattern's own `MtlsPool` on the simulated
clock, one pool per caller–callee pair, so q emerges from ``max_age_s`` (and a rotation at
``rotation_at`` flushes every pool, optionally spread by a jittered drain). The closed forms
(``mean_latency``: the syllabus formula plus the Pollaczek–Khinchine wait per hop;
``pool_reuse_ratio``) sit beside the model; ``measure_tls_costs`` times real handshakes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from patterns.checks import check_int, check_non_negative, check_positive, check_probability
from patterns.security.zero_trust_mtls import MtlsPool
from simulations import experiments
from simulations.fastpath import fifo_queue
from simulations.metrics import per_bin, percentile_of, rate_over_time
from simulations.theory import mg1_mean_wait
from simulations.workloads import PoissonArrivals

__all__ = [
    "MtlsPool", "Run", "Scenario", "draw_tradeoff", "formula_latency", "mean_latency",
    "measure_tls_costs", "over_time", "plot_dashboard", "plot_sweep", "pool_reuse_ratio",
    "simulate", "summary", "sweep",
]


@dataclass(frozen=True)
class Scenario:
    """Poisson requests through a chain of ``depth`` services, each one FIFO server.

    A hop reuses its connection with probability ``q_reuse``; otherwise it opens one: a share
    ``resume_share`` of them resume a session (``resumed_rtts`` round trips, 0 with early data,
    and ``resumed_cpu_s``), the rest do a full handshake (``handshake_rtts``, ``handshake_cpu_s``).
    With ``pairs`` > 0, reuse comes from `MtlsPool`s instead (one per caller–callee pair of a
    hop, a request picks a pair at random), connections live ``max_age_s``, and a rotation at
    ``rotation_at`` flushes every pool, each after a uniform delay in [0, ``drain_s``).
    """

    arrival_rate: float = 100.0
    depth: int = 4
    q_reuse: float = 0.9
    rtt_s: float = 0.002  # one network round trip between two services
    service_s: float = 0.001  # mean work per hop (exponential)
    handshake_rtts: int = 1  # TLS 1.3 full handshake: 1 RTT (TLS 1.2: 2)
    handshake_cpu_s: float = 0.003  # crypto CPU of a full handshake, on the callee's server
    resume_share: float = 0.0
    resumed_rtts: int = 1  # TLS 1.3 resumption: 1 RTT, 0 with early data (0-RTT)
    resumed_cpu_s: float = 0.001
    duration_s: float = 30.0
    pairs: int = 0  # > 0: reuse from MtlsPools, one per pair
    max_age_s: float = 60.0
    ticket_lifetime_s: float = 0.0
    rotation_at: float | None = None
    drain_s: float = 0.0
    seed: int = 1

    def __post_init__(self) -> None:
        check_positive("Scenario.arrival_rate", self.arrival_rate)
        check_int("Scenario.depth", self.depth, 1)
        check_probability("Scenario.q_reuse", self.q_reuse)
        check_non_negative("Scenario.rtt_s", self.rtt_s)
        check_positive("Scenario.service_s", self.service_s)
        check_int("Scenario.handshake_rtts", self.handshake_rtts, 0)
        check_non_negative("Scenario.handshake_cpu_s", self.handshake_cpu_s)
        check_probability("Scenario.resume_share", self.resume_share)
        check_int("Scenario.resumed_rtts", self.resumed_rtts, 0)
        check_non_negative("Scenario.resumed_cpu_s", self.resumed_cpu_s)
        check_positive("Scenario.duration_s", self.duration_s)
        check_int("Scenario.pairs", self.pairs, 0)
        check_positive("Scenario.max_age_s", self.max_age_s, allow_inf=True)
        check_non_negative("Scenario.ticket_lifetime_s", self.ticket_lifetime_s)
        check_non_negative("Scenario.drain_s", self.drain_s)


@dataclass
class Run:
    """Per-request rows and per-(request, hop) rows of one run."""

    scenario: Scenario
    arrival: np.ndarray  # (n,)
    end: np.ndarray  # (n,) when the answer is back at the caller
    kind: np.ndarray  # (n, depth): 0 reused, 1 resumed, 2 full
    hop_start: np.ndarray  # (n, depth) when the hop's connection was asked for
    busy_s: np.ndarray  # (depth,) server busy time per hop

    @property
    def latency(self) -> np.ndarray:
        return self.end - self.arrival


def _pool_kinds(sc: Scenario, times: np.ndarray, pair: np.ndarray,
                drain: np.ndarray) -> np.ndarray:
    """Connection kinds from one `MtlsPool` per pair on the simulated clock (times sorted)."""
    now = [0.0]
    pools = [MtlsPool(lambda peer, ticket: (object(), object(), ticket is not None),
                      sc.max_age_s, sc.ticket_lifetime_s, clock=lambda: now[0])
             for _ in range(sc.pairs)]
    flush_at = (sc.rotation_at + drain) if sc.rotation_at is not None else None
    flushed = np.zeros(sc.pairs, dtype=bool)
    code = {"reused": 0, "resumed": 1, "full": 2}
    kinds = np.empty(len(times), dtype=np.int8)
    for i in np.argsort(times, kind="stable"):
        now[0], p = float(times[i]), int(pair[i])
        if flush_at is not None and not flushed[p] and now[0] >= flush_at[p]:
            pools[p].flush()
            flushed[p] = True
        kinds[i] = code[pools[p].acquire("callee")[1]]
    return kinds


def simulate(scenario: Scenario, rng: np.random.Generator | None = None,
             drain: np.ndarray | None = None) -> Run:
    """One seeded run: Poisson requests, ``depth`` hops, one FIFO server per hop.

    ``drain`` (shape (depth, pairs)), if given, replaces the uniform drain delays after a
    rotation: the delay after ``rotation_at`` at which each pool is flushed."""
    sc = scenario
    rng = rng if rng is not None else np.random.default_rng(sc.seed)
    arrival = PoissonArrivals(sc.arrival_rate).times(rng, horizon=sc.duration_s)
    n, d = len(arrival), sc.depth
    u_reuse, u_resume = rng.random((n, d)), rng.random((n, d))
    work = rng.exponential(sc.service_s, (n, d))
    pair = rng.integers(0, max(sc.pairs, 1), (n, d))
    uniform = rng.random((d, max(sc.pairs, 1))) * sc.drain_s
    drain = uniform if drain is None else np.asarray(drain, dtype=float)
    kind = np.where(u_reuse < sc.q_reuse, 0, np.where(u_resume < sc.resume_share, 1, 2))
    rtts = np.array([0, sc.resumed_rtts, sc.handshake_rtts], dtype=float)
    cpu = np.array([0.0, sc.resumed_cpu_s, sc.handshake_cpu_s])
    hop_start = np.empty((n, d))
    busy = np.empty(d)
    t = arrival.copy()
    for k in range(d):
        hop_start[:, k] = t
        if sc.pairs:
            kind[:, k] = _pool_kinds(sc, t, pair[:, k], drain[k])
        at_server = t + rtts[kind[:, k]] * sc.rtt_s + sc.rtt_s / 2
        service = work[:, k] + cpu[kind[:, k]]
        order = np.argsort(at_server, kind="stable")
        table = fifo_queue(at_server[order], service[order])
        done = np.empty(n)
        done[order] = table.end
        busy[k] = service.sum()
        t = done
    end = t + d * sc.rtt_s / 2  # each answer travels back one half round trip per hop
    return Run(sc, arrival, end, kind.astype(np.int8), hop_start, busy)


def summary(run: Run, start_s: float = 0.0, end_s: float | None = None) -> dict[str, float]:
    """Latency, reuse ratio and handshake rate of the requests arriving in [start_s, end_s)."""
    end_s = run.scenario.duration_s if end_s is None else end_s
    sel = (run.arrival >= start_s) & (run.arrival < end_s)
    lat, kinds = run.latency[sel], run.kind[sel]
    span = end_s - start_s
    return {
        "mean_latency_s": float(lat.mean()),
        "p50_latency_s": float(np.percentile(lat, 50)),
        "p99_latency_s": float(np.percentile(lat, 99)),
        "reuse_ratio": float(np.mean(kinds == 0)),
        "handshakes_per_s": float(np.sum(kinds > 0) / span),
        "full_per_s": float(np.sum(kinds == 2) / span),
        "max_utilisation": float(run.busy_s.max() / run.scenario.duration_s),
    }


def _model(rng: np.random.Generator, **settings: Any) -> dict[str, float]:
    scenario = replace(Scenario(), **settings)
    return summary(simulate(scenario, rng), 0.1 * scenario.duration_s)


def sweep(grid: dict[str, Sequence[Any]], *, seed: int = 1, replications: int = 3,
          **fixed: Any) -> list[dict[str, Any]]:
    """``experiments.sweep`` over the scenario's settings (the first 10 % dropped as warm-up)."""
    return experiments.sweep(_model, grid, seed=seed, replications=replications, fixed=fixed)


def over_time(run: Run, bin_s: float = 0.5) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Dashboard series: handshakes per s (all hops), reuse ratio and p99 latency per bin."""
    end = run.scenario.duration_s
    opened = run.hop_start[run.kind > 0]
    flat_t, flat_reused = run.hop_start.ravel(), (run.kind.ravel() == 0).astype(float)
    return {
        "requests": rate_over_time(run.arrival, bin_s, 0, end),
        "handshakes": rate_over_time(opened, bin_s, 0, end),
        "reuse": per_bin(flat_t, flat_reused, bin_s, 0, end, np.mean),
        "p99_latency": per_bin(run.arrival, run.latency, bin_s, 0, end, percentile_of(99)),
    }


# --- closed forms -------------------------------------------------------------------------


def _new_connection_costs(sc: Scenario) -> tuple[float, float, float]:
    """Mean round trips, mean CPU and mean squared CPU of one new connection."""
    r = sc.resume_share
    rtts = (1 - r) * sc.handshake_rtts + r * sc.resumed_rtts
    cpu = (1 - r) * sc.handshake_cpu_s + r * sc.resumed_cpu_s
    cpu2 = (1 - r) * sc.handshake_cpu_s**2 + r * sc.resumed_cpu_s**2
    return rtts, cpu, cpu2


def formula_latency(sc: Scenario) -> float:
    """The syllabus form, no queueing: E[lat] = base + (1 − q)·RTT_hs·depth + crypto CPU, with
    base = depth·(RTT + s), RTT_hs = (round trips of a new connection)·RTT and crypto CPU =
    (1 − q)·depth·(CPU of a new connection)."""
    rtts, cpu, _ = _new_connection_costs(sc)
    new = 1 - sc.q_reuse
    return (sc.depth * (sc.rtt_s + sc.service_s) + new * rtts * sc.rtt_s * sc.depth
            + new * sc.depth * cpu)


def hop_wait(sc: Scenario) -> float:
    """Pollaczek–Khinchine mean wait at one hop's server. Service S = exponential work (mean s)
    plus, with probability 1 − q, the new connection's CPU: E[S] = s + (1 − q)·c̄ and
    E[S²] = 2s² + 2s(1 − q)c̄ + (1 − q)·E[c²]. Assumes Poisson arrivals at every hop (exact at
    the first; later hops see departures of the one before, close to Poisson at low load)."""
    _, cpu, cpu2 = _new_connection_costs(sc)
    new = 1 - sc.q_reuse
    mean = sc.service_s + new * cpu
    second = 2 * sc.service_s**2 + 2 * sc.service_s * new * cpu + new * cpu2
    if sc.arrival_rate * mean >= 1:
        return math.inf
    return mg1_mean_wait(sc.arrival_rate, mean, second / mean**2 - 1)


def mean_latency(sc: Scenario) -> float:
    """``formula_latency`` plus ``depth`` times the Pollaczek–Khinchine wait of a hop."""
    return formula_latency(sc) + sc.depth * hop_wait(sc)


def pool_reuse_ratio(rate_per_pair: float, max_age_s: float) -> float:
    """q of one pooled connection per pair under Poisson calls of rate r per pair: a connection
    opened by a call serves every call in the next ``max_age_s`` seconds, then the next call
    opens a new one. Calls per connection: 1 + r·A, so q = r·A / (1 + r·A)."""
    check_positive("rate_per_pair", rate_per_pair)
    check_positive("max_age_s", max_age_s)
    calls = rate_per_pair * max_age_s
    return calls / (1 + calls)


# --- measuring real handshakes --------------------------------------------------------------


def measure_tls_costs(connect: Callable[[Any], Any], request: Callable[[Any], None],
                      close: Callable[[Any], None], repeats: int = 20) -> dict[str, float]:
    """Median seconds of a full handshake, a resumed one and one request on an open connection.

    ``connect(session)`` opens a connection (resuming ``session`` if not None) and returns it;
    ``request(conn)`` makes one round trip; ``close(conn)``. The handshake times include one
    request (the ping that fetches the TLS 1.3 ticket), so the request time is subtracted.
    """
    check_int("repeats", repeats, 1)
    full, resumed, reuse, reused_flags = [], [], [], []
    first = connect(None)
    request(first)
    session = first.session
    for _ in range(repeats):
        began = time.perf_counter()
        request(first)
        reuse.append(time.perf_counter() - began)
    close(first)
    for _ in range(repeats):
        began = time.perf_counter()
        conn = connect(None)
        full.append(time.perf_counter() - began)
        close(conn)
        began = time.perf_counter()
        conn = connect(session)
        resumed.append(time.perf_counter() - began)
        reused_flags.append(bool(conn.session_reused))
        close(conn)
    one = float(np.median(reuse))
    return {"full_s": float(np.median(full)) - one, "resumed_s": float(np.median(resumed)) - one,
            "reuse_s": one, "resumed_share": float(np.mean(reused_flags))}


# --- plots --------------------------------------------------------------------------------


def plot_sweep(rows: Sequence[dict[str, Any]], by: str = "depth"):
    """Mean and p99 latency and handshakes per second against q, a line per ``by``."""
    from simulations import plots

    metrics = ("mean_latency_s", "p99_latency_s", "handshakes_per_s")
    table = experiments.aggregate(rows, by=("q_reuse", by), metrics=metrics)
    return plots.sweep_panels(
        table, x="q_reuse", by=by, metrics=metrics, xlabel="connection-reuse ratio q",
        group_label=lambda v: f"{by} {v}",
        ylabels={"mean_latency_s": "mean latency (s)", "p99_latency_s": "p99 latency (s)",
                 "handshakes_per_s": "handshakes (per s)"})


def draw_tradeoff(q_reuse: float = 0.8, depth: int = 4, rtt_ms: float = 2.0,
                  handshake_rtts: int = 1, handshake_cpu_ms: float = 3.0,
                  arrival_rate: float = 100.0, duration_s: float = 4.0):
    """The slider figure: latency against q for the chosen depth, simulation beside the closed
    form, and the latency distribution at the chosen q."""
    from simulations import plots

    base = Scenario(arrival_rate=arrival_rate, depth=depth, rtt_s=rtt_ms / 1e3,
                    handshake_rtts=handshake_rtts, handshake_cpu_s=handshake_cpu_ms / 1e3,
                    duration_s=duration_s)
    qs = np.linspace(0.0, 1.0, 6)
    fig, (left, right) = plots.plt.subplots(1, 2, figsize=(9, 3.4))
    sims = [summary(simulate(replace(base, q_reuse=float(q))), 0.4) for q in qs]
    theory = [mean_latency(replace(base, q_reuse=float(q))) for q in qs]
    left.plot(qs, np.array(theory) * 1e3, **plots.THEORY, label="closed form (with queueing)")
    left.plot(qs, [s["mean_latency_s"] * 1e3 for s in sims], "o", label="simulated mean")
    left.plot(qs, [s["p99_latency_s"] * 1e3 for s in sims], "s", label="simulated p99")
    left.axvline(q_reuse, color="grey", linewidth=0.8)
    left.set_xticks(qs, [f"{q:g}" for q in qs])
    left.set_xlabel("connection-reuse ratio q")
    left.set_ylabel("latency (ms)")
    left.legend(fontsize="small")
    lat = simulate(replace(base, q_reuse=q_reuse)).latency * 1e3
    counts, edges = np.histogram(lat, bins=30)
    right.stairs(counts, edges, fill=True, color=plots.COLORS[0],
                 label=f"q = {q_reuse:.2f}, depth {depth}")  # one artist: draws faster than hist
    right.axvline(mean_latency(replace(base, q_reuse=q_reuse)) * 1e3, color="black",
                  linestyle="--", label="closed-form mean")
    right.set_xlabel("request latency (ms)")
    right.set_ylabel("requests")
    right.legend(fontsize="small")
    return fig


def plot_dashboard(runs: dict[str, Run], bin_s: float = 0.5, rotation: tuple[float, float] = ()):
    """Handshakes per s, reuse ratio and p99 latency over time, a curve per run."""
    from simulations import plots

    series = {name: over_time(run, bin_s) for name, run in runs.items()}
    times = next(iter(series.values()))["requests"][0]
    panels = {
        "requests (per s)": {n: s["requests"][1] for n, s in series.items()},
        "handshakes (per s, all hops)": {n: s["handshakes"][1] for n, s in series.items()},
        "reuse ratio q": {n: s["reuse"][1] for n, s in series.items()},
        "p99 latency (s)": {n: s["p99_latency"][1] for n, s in series.items()},
    }
    return plots.dashboard(times, panels, windows=[rotation] if rotation else (),
                           window_label="certificate rotation")
