"""The rate-limiting study: legitimate acceptance against attack throughput as b and r vary.

Picture the ticket dispenser of the pattern's module with a stopwatch: twenty regular customers
arrive in small groups (a page load is a burst of requests), and from t = 20 s to 40 s one
attacker presses the button hundreds of times a second. Behind the counter a single clerk
(the backend) serves whatever gets a ticket. A deep, fast dispenser lets every regular through
and the attacker too; a shallow, slow one stops the attacker and turns regulars away.

``simulate`` draws every arrival and service time up front from one seeded generator (common
random numbers: runs that differ only in the limiter see the same traffic), runs the pattern's
own limiter object per client with a moved clock, and serves the admitted requests in a FIFO
queue with the toolkit's fast path (``fastpath.fifo_queue``). ``simulate_simpy`` runs the same
limiters inside SimPy and gives the same decisions (a test holds them equal).

Closed forms beside the model: the arrival curve b + r·t (``arrival_curve``) and the window
algorithms' curves, the worst window of a run (``worst_window``), and the acceptance of Poisson
traffic by a token bucket, which is exactly an M/D/1/K queue with K = b
(``token_bucket_acceptance``).
"""

from __future__ import annotations

import contextlib
import heapq
import math
import time
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import simpy

from patterns.checks import check_choice, check_int, check_non_negative, check_positive
from patterns.security.rate_limiting import (
    FixedWindow,
    LeakyBucket,
    LeasedBucket,
    SlidingLog,
    TokenBucket,
)
from simulations import experiments
from simulations.fastpath import fifo_queue
from simulations.metrics import per_bin, percentile_of, rate_over_time
from simulations.workloads import BurstyArrivals, PoissonArrivals

__all__ = [
    "ALGORITHMS", "Run", "Scenario", "TokenBucket", "arrival_curve", "boundary_attack",
    "fixed_window_curve",
    "gateways", "leased_gateways", "limits_clock", "make_limiter", "over_time", "plot_dashboard",
    "plot_sweep", "retry_study", "simulate", "simulate_simpy", "sliding_log_curve", "summary",
    "sweep", "token_bucket_acceptance", "worst_window", "draw_tradeoff", "decision_cost",
]

ALGORITHMS = ("token", "leaky", "fixed", "sliding", "none")


@dataclass(frozen=True)
class Scenario:
    """Legitimate on-off clients and one flooding attacker, a limiter per client, one backend.

    Each of ``clients`` sends bursts (MMPP-2: ``burst_rate`` req/s for a mean ``burst_s``, then
    silent for a mean ``quiet_s``); the attacker sends Poisson ``attack_rate`` req/s during
    ``attack`` = (start, end). ``algorithm`` is token / leaky / fixed / sliding / none; the
    window algorithms get ``limit = burst`` per ``window = burst / rate`` (the same mean rate
    and the same largest burst as the bucket). The backend is ``servers`` FIFO servers with
    exponential service of mean ``service_s``.
    """

    rate: float = 1.0
    burst: float = 10.0
    algorithm: str = "token"
    clients: int = 20
    burst_rate: float = 10.0
    burst_s: float = 0.5
    quiet_s: float = 4.5
    attack_rate: float = 300.0
    attack: tuple[float, float] | None = (20.0, 40.0)
    servers: int = 1
    service_s: float = 0.004
    duration_s: float = 60.0
    seed: int = 1

    def __post_init__(self) -> None:
        check_positive("Scenario.rate", self.rate)
        check_positive("Scenario.burst", self.burst)
        check_choice("Scenario.algorithm", self.algorithm, ALGORITHMS)
        check_int("Scenario.clients", self.clients, 1)
        check_non_negative("Scenario.attack_rate", self.attack_rate)
        check_int("Scenario.servers", self.servers, 1)
        check_positive("Scenario.service_s", self.service_s)
        check_positive("Scenario.duration_s", self.duration_s)


def make_limiter(algorithm: str, rate: float, burst: float, clock: Callable[[], float]) -> Any:
    """One client's limiter; each has ``allow()``, the leaky bucket also ``offer()``."""
    limit = max(1, round(burst))
    if algorithm == "token":
        return TokenBucket(rate, burst, clock)
    if algorithm == "leaky":
        return LeakyBucket(rate, limit - 1, clock)  # admits what TokenBucket(rate, limit) does
    if algorithm == "fixed":
        return FixedWindow(limit, limit / rate, clock)
    if algorithm == "sliding":
        return SlidingLog(limit, limit / rate, clock)
    raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS[:-1])} (got {algorithm!r})")


@dataclass
class Run:
    """One row per request: arrival, client, attack, admitted, release (after any leaky-bucket
    delay), start and end of service (NaN when refused)."""

    scenario: Scenario
    arrival: np.ndarray
    client: np.ndarray
    attack: np.ndarray
    admitted: np.ndarray
    release: np.ndarray
    start: np.ndarray
    end: np.ndarray

    @property
    def latency(self) -> np.ndarray:
        return self.end - self.arrival


def _traffic(sc: Scenario, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    legit = BurstyArrivals(sc.burst_rate, sc.burst_s, sc.quiet_s)
    times, who = [], []
    for c in range(sc.clients):
        t = legit.times(rng, horizon=sc.duration_s)
        times.append(t)
        who.append(np.full(len(t), c))
    if sc.attack is not None and sc.attack_rate > 0:
        start, end = sc.attack
        t = start + PoissonArrivals(sc.attack_rate).times(rng, horizon=end - start)
        times.append(t)
        who.append(np.full(len(t), sc.clients))
    arrival, client = np.concatenate(times), np.concatenate(who)
    order = np.argsort(arrival, kind="stable")
    arrival, client = arrival[order], client[order]
    services = rng.exponential(sc.service_s, len(arrival))
    return arrival, client, services


def _decide(sc: Scenario, arrival: np.ndarray, client: np.ndarray) -> tuple[np.ndarray,
                                                                           np.ndarray]:
    """The limiters' answers in arrival order: admitted, and the release time of each."""
    n = len(arrival)
    if sc.algorithm == "none":
        return np.ones(n, bool), arrival.copy()
    now = [0.0]
    limiters = [make_limiter(sc.algorithm, sc.rate, sc.burst, lambda: now[0])
                for _ in range(sc.clients + 1)]
    admitted, release = np.zeros(n, bool), np.full(n, np.nan)
    leaky = sc.algorithm == "leaky"
    for i in range(n):
        now[0] = arrival[i]
        limiter = limiters[client[i]]
        if leaky:
            delay = limiter.offer()
            if delay is not None:
                admitted[i], release[i] = True, arrival[i] + delay
        elif limiter.allow():
            admitted[i], release[i] = True, arrival[i]
    return admitted, release


def _serve(sc: Scenario, arrival, client, services, admitted, release) -> Run:
    start, end = np.full(len(arrival), np.nan), np.full(len(arrival), np.nan)
    idx = np.flatnonzero(admitted)
    idx = idx[np.argsort(release[idx], kind="stable")]
    table = fifo_queue(release[idx], services[idx], servers=sc.servers)
    start[idx], end[idx] = table.start, table.end
    return Run(sc, arrival, client, client == sc.clients, admitted, release, start, end)


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """One seeded run: the traffic, a limiter per client, the backend's FIFO queue."""
    rng = rng if rng is not None else np.random.default_rng(scenario.seed)
    arrival, client, services = _traffic(scenario, rng)
    admitted, release = _decide(scenario, arrival, client)
    return _serve(scenario, arrival, client, services, admitted, release)


def simulate_simpy(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """The same run with the limiters driven by SimPy's clock (``lambda: env.now``)."""
    rng = rng if rng is not None else np.random.default_rng(scenario.seed)
    arrival, client, services = _traffic(scenario, rng)
    env = simpy.Environment()
    limiters = [make_limiter(scenario.algorithm, scenario.rate, scenario.burst, lambda: env.now)
                for _ in range(scenario.clients + 1)] if scenario.algorithm != "none" else []
    admitted, release = np.zeros(len(arrival), bool), np.full(len(arrival), np.nan)

    def source():
        for i, t in enumerate(arrival):
            yield env.timeout(t - env.now)
            if not limiters:
                admitted[i], release[i] = True, env.now
                continue
            limiter = limiters[client[i]]
            delay = limiter.offer() if scenario.algorithm == "leaky" else (
                0.0 if limiter.allow() else None)
            if delay is not None:
                admitted[i], release[i] = True, env.now + delay

    env.process(source())
    env.run()
    return _serve(scenario, arrival, client, services, admitted, release)


def summary(run: Run, start_s: float = 0.0, end_s: float | None = None) -> dict[str, float]:
    """Of the requests arriving in [start_s, end_s): the share of legitimate ones admitted,
    the attacker's admitted rate (per s of its attack inside the span), legitimate p99 latency
    (admitted ones, s) and the backend's utilisation."""
    sc = run.scenario
    end_s = sc.duration_s if end_s is None else end_s
    sel = (run.arrival >= start_s) & (run.arrival < end_s)
    legit, attack = sel & ~run.attack, sel & run.attack
    served = legit & run.admitted
    span = 0.0
    if sc.attack is not None:
        span = max(0.0, min(end_s, sc.attack[1]) - max(start_s, sc.attack[0]))
    busy = np.nansum(run.end[sel] - run.start[sel])
    return {
        "legit_acceptance": float(served.sum() / max(1, legit.sum())),
        "attack_admitted_rps": float((attack & run.admitted).sum() / span) if span else 0.0,
        "legit_p99_latency_s": float(np.percentile(run.latency[served], 99))
        if served.any() else math.nan,
        "utilisation": float(busy / (sc.servers * (end_s - start_s))),
    }


def _model(rng: np.random.Generator, **settings: Any) -> dict[str, float]:
    return summary(simulate(replace(Scenario(), **settings), rng))


def sweep(grid: dict[str, Sequence[Any]], *, seed: int = 1, replications: int = 3,
          **fixed: Any) -> list[dict[str, Any]]:
    """``experiments.sweep`` over the scenario's settings (common random numbers per point)."""
    return experiments.sweep(_model, grid, seed=seed, replications=replications, fixed=fixed)


def over_time(run: Run, bin_s: float = 1.0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Dashboard series per bin: admitted and refused req/s (legitimate and attack), the
    legitimate p99 latency, and the backend's busy share."""
    end = run.scenario.duration_s
    legit, attack, ok = ~run.attack, run.attack, run.admitted
    served = legit & ok
    lat = per_bin(run.arrival[served], run.latency[served], bin_s, 0, end, percentile_of(99))
    done = ~np.isnan(run.end)
    busy = per_bin(run.start[done], run.end[done] - run.start[done], bin_s, 0, end, np.sum)
    return {
        "legit_admitted": rate_over_time(run.arrival[legit & ok], bin_s, 0, end),
        "legit_refused": rate_over_time(run.arrival[legit & ~ok], bin_s, 0, end),
        "attack_admitted": rate_over_time(run.arrival[attack & ok], bin_s, 0, end),
        "attack_refused": rate_over_time(run.arrival[attack & ~ok], bin_s, 0, end),
        "legit_p99_latency": lat,
        "utilisation": (busy[0], np.nan_to_num(busy[1]) / (bin_s * run.scenario.servers)),
    }


# --- closed forms -------------------------------------------------------------------------


def arrival_curve(rate: float, burst: float, t: np.ndarray | float) -> np.ndarray:
    """α(t) = b + r·t: a token bucket admits at most this many in any interval of length t
    (Le Boudec & Thiran, Network Calculus, §1.2). Holds for any arrivals, no assumption."""
    return burst + rate * np.asarray(t, float)


def fixed_window_curve(limit: int, window_s: float, t: np.ndarray | float) -> np.ndarray:
    """The most a clock-aligned fixed window admits in a closed interval of length t > 0:
    limit·(1 + ⌈t/W⌉), since such an interval meets at most 1 + ⌈t/W⌉ windows. At small t it
    is 2·limit: a full window's worth just before a boundary and another just after."""
    return limit * (1 + np.ceil(np.asarray(t, float) / window_s))


def sliding_log_curve(limit: int, window_s: float, t: np.ndarray | float) -> np.ndarray:
    """The most a sliding log admits in a closed interval of length t: limit·(⌊t/W⌋ + 1)."""
    return limit * (np.floor(np.asarray(t, float) / window_s) + 1)


def boundary_attack(limit: int, window_s: float, windows: int,
                    spread_s: float = 0.02) -> np.ndarray:
    """An attacker who knows the windows: ``limit`` requests in the last ``spread_s`` seconds
    of every second window and ``limit`` more in the first ``spread_s`` of the next one."""
    out = []
    for k in range(1, windows, 2):
        edge = k * window_s
        out.append(np.linspace(edge - spread_s, edge - spread_s / limit, limit))
        out.append(np.linspace(edge, edge + spread_s, limit))
    return np.concatenate(out)


def worst_window(times: np.ndarray, lengths: Sequence[float]) -> np.ndarray:
    """For each length t, the most of ``times`` (sorted) inside any closed interval [s, s + t]
    (it suffices to start intervals at the times themselves)."""
    times = np.sort(np.asarray(times, float))
    if len(times) == 0:
        return np.zeros(len(lengths))
    return np.array([int(np.max(np.searchsorted(times, times + t, side="right")
                                - np.arange(len(times)))) for t in lengths])


def token_bucket_acceptance(arrival_rate: float, rate: float, burst: int) -> float:
    """Long-run share of Poisson(λ) requests a token bucket (r, integer b) admits.

    The bucket's deficit b − tokens rises by 1 per admitted request and drains at r, and a
    request is admitted iff the deficit is at most b − 1: the deficit is the work (in units of
    1/r) of an M/D/1/K queue with K = b and service 1/r, admission is "fewer than K in the
    system". With ρ = λ/r and π the distribution left by departures (embedded Markov chain),
    the admitted share is 1/(π₀ + ρ) (the embedded-chain result for M/G/1/K; for K = 1 it is
    the loss formula 1/(1 + ρ)). Assumes Poisson arrivals and a steady state (the start with a
    full bucket is forgotten).
    """
    check_positive("arrival_rate", arrival_rate)
    check_positive("rate", rate)
    k = check_int("burst", burst, 1)
    rho = arrival_rate / rate
    j = np.arange(k)
    a = np.exp(-rho + j * math.log(rho) - np.array([math.lgamma(x + 1) for x in j]))
    p = np.zeros((k, k))
    for i in range(k):
        base = max(i - 1, 0)  # customers left behind before the arrivals during service
        for dest in range(base, k - 1):
            p[i, dest] = a[dest - base]
        p[i, k - 1] = 1.0 - p[i, : k - 1].sum()
    w, v = np.linalg.eig(p.T)
    pi = np.real(v[:, np.argmin(np.abs(w - 1))])
    pi = pi / pi.sum()
    return float(1.0 / (pi[0] + rho))


# --- Level 4: many gateways, leases, retries ----------------------------------------------


def gateways(times: np.ndarray, n: int, make: Callable[[int], Any],
             now: list[float]) -> np.ndarray:
    """Send ``times`` round robin to ``n`` gateways, each a limiter ``make(i)`` reading the
    clock cell ``now``; return which requests were admitted."""
    now[0] = float(times[0]) if len(times) else 0.0
    limiters = [make(i) for i in range(n)]
    out = np.zeros(len(times), bool)
    for i, t in enumerate(times):
        now[0] = t
        out[i] = limiters[i % n].allow()
    return out


def leased_gateways(times: np.ndarray, n: int, rate: float, burst: float,
                    lease: int) -> tuple[int, int]:
    """``n`` gateways leasing ``lease`` tokens at a time from one shared bucket (an in-process
    `TokenBucket` standing in for Redis): (admitted, calls to the shared bucket)."""
    now = [0.0]
    shared = TokenBucket(rate, burst, lambda: now[0])
    calls = [0]
    take = shared.take

    def counted(want: int) -> int:
        calls[0] += 1
        return take(want)

    shared.take = counted  # type: ignore[method-assign]
    admitted = gateways(times, n, lambda _: LeasedBucket(shared, lease), now)
    return int(admitted.sum()), calls[0]


def decision_cost(limiter: Any, now: list[float], times: np.ndarray) -> float:
    """Mean wall-clock seconds of one ``allow()`` over ``times`` (a measurement, not a model)."""
    began = time.perf_counter()
    for t in times:
        now[0] = t
        limiter.allow()
    return (time.perf_counter() - began) / len(times)


def retry_study(wait: Callable[[int, float, TokenBucket], float | None], *, rate: float = 2.0,
                burst: float = 4.0, demand_rate: float = 4.0, requests: int = 400,
                seed: int = 1) -> dict[str, float]:
    """One client with ``requests`` Poisson calls at ``demand_rate`` against a bucket (r, b);
    a refused call is retried after ``wait(retry, previous_wait, bucket)`` seconds (None: give
    up). Returns attempts per call, the share that got through and their mean delay (s)."""
    rng = np.random.default_rng(seed)
    first = np.cumsum(rng.exponential(1 / demand_rate, requests))
    now = [0.0]
    bucket = TokenBucket(rate, burst, lambda: now[0])
    queue = [(t, i, 1, 0.0) for i, t in enumerate(first)]
    heapq.heapify(queue)
    attempts, delays = 0, []
    while queue:
        t, i, k, last = heapq.heappop(queue)
        now[0] = t
        attempts += 1
        if bucket.allow():
            delays.append(t - first[i])
            continue
        w = wait(k, last, bucket)
        if w is not None:
            heapq.heappush(queue, (t + w, i, k + 1, w))
    return {"attempts_per_call": attempts / requests, "succeeded": len(delays) / requests,
            "mean_delay_s": float(np.mean(delays)) if delays else math.nan}


@contextlib.contextmanager
def limits_clock(clock: Callable[[], float]) -> Iterator[None]:
    """Make the ``limits`` library's in-memory storage read ``clock`` instead of ``time.time``.

    ``limits.storage.memory`` calls ``time.time()`` itself and takes no clock, so this swaps
    that module's ``time`` for one whose ``time()`` is ``clock`` while the block runs.
    """
    import limits.storage.memory as memory

    real = memory.time
    memory.time = types.SimpleNamespace(time=clock)  # type: ignore[assignment]
    try:
        yield
    finally:
        memory.time = real


# --- plots --------------------------------------------------------------------------------


def plot_sweep(rows: Sequence[dict[str, Any]]):
    """Legitimate acceptance, attack throughput and legitimate p99 against b, a line per r."""
    from simulations import plots

    metrics = ("legit_acceptance", "attack_admitted_rps", "legit_p99_latency_s")
    table = experiments.aggregate(rows, by=("burst", "rate"), metrics=metrics)
    return plots.sweep_panels(
        table, x="burst", by="rate", metrics=metrics, xlabel="bucket depth b (requests)",
        group_label=lambda v: f"r = {v:g} req/s",
        ylabels={"legit_acceptance": "legitimate requests admitted (share)",
                 "attack_admitted_rps": "attack admitted (req/s)",
                 "legit_p99_latency_s": "legitimate p99 latency (s)"},
        log_y=("legit_p99_latency_s",))


def draw_tradeoff(rate: float = 1.0, attack_rate: float = 300.0, algorithm: str = "token",
                  duration_s: float = 30.0):
    """The slider figure: acceptance and attack throughput against b at one rate."""
    from simulations import plots

    depths = [2, 5, 10, 20, 40]
    base = Scenario(rate=rate, attack_rate=attack_rate, algorithm=algorithm,
                    duration_s=duration_s, attack=(10.0, 20.0), clients=10)
    runs = [summary(simulate(replace(base, burst=b))) for b in depths]
    fig, (left, right) = plots.plt.subplots(1, 2, figsize=(9, 3.4))
    left.plot(depths, [r["legit_acceptance"] for r in runs], "o-", label="legitimate admitted")
    left.set_xlabel("bucket depth b (requests)")
    left.set_ylabel("share admitted")
    left.set_ylim(0, 1.05)
    left.legend(fontsize="small")
    right.plot(depths, [r["attack_admitted_rps"] for r in runs], "s-",
               label="attack admitted (simulated)")
    right.plot(depths, [rate + b / 10.0 for b in depths], **plots.THEORY,
               label="token bucket bound r + b/T (T = 10 s)")
    right.set_xlabel("bucket depth b (requests)")
    right.set_ylabel("attack admitted (req/s)")
    right.legend(fontsize="small")
    return fig


def plot_dashboard(runs: dict[str, Run], bin_s: float = 1.0):
    """Admitted and refused traffic, legitimate p99 and backend load over time, per run."""
    from simulations import plots

    series = {name: over_time(run, bin_s) for name, run in runs.items()}
    times = next(iter(series.values()))["legit_admitted"][0]
    attack = next(iter(runs.values())).scenario.attack
    panels = {
        "legitimate admitted (req/s)": {n: s["legit_admitted"][1] for n, s in series.items()},
        "attack admitted (req/s)": {n: s["attack_admitted"][1] for n, s in series.items()},
        "refused, all clients (req/s)": {
            n: s["legit_refused"][1] + s["attack_refused"][1] for n, s in series.items()},
        "legitimate p99 latency (s)": {n: s["legit_p99_latency"][1] for n, s in series.items()},
        "backend busy (share)": {n: s["utilisation"][1] for n, s in series.items()},
    }
    return plots.dashboard(times, panels, windows=[attack] if attack else (),
                           window_label="attack")
