"""The read-replicas study: read latency, throughput and stale reads against the replica count.

Picture the newsroom of the pattern's module with a stopwatch: questions arrive at random, the
clerks (replicas) answer them from one shared line, the editor (the primary) takes the changes,
and each clerk copies each new line after a random delay (the replication lag). Two numbers
matter: how long a question waits, and how often a clerk answers with a line not yet copied.

- ``Scenario``, ``simulate(scenario, rng) -> ReplicaRun``: SimPy, with the pattern's own
  ``Primary``, ``Replica`` and ``ConsistentRouter`` on the simulated clock. Reads and writes
  arrive as Poisson streams from ``sessions`` users, each reading and writing only its own record
  (so a stale read is a user not seeing their own write). Each replica applies each write after a
  lag drawn from ``lag`` (in log order: a write waits for the ones before it). Reads go to the
  replicas (``balancing``: one shared queue, or one queue each in round robin) unless the router
  sends them to the primary; the primary also serves every write.
- ``summary``, ``sweep``, ``stale_by_age``: the run's numbers.
- closed forms: ``stale_probability`` (P(lag > age)), ``stale_read_fraction`` and
  ``fallback_fraction`` (averaged over the read's age), and the reads' M/M/c latency from
  ``simulations.theory``.
- the protocol lab: ``CatchUpReplica``, a replica that answers a read only once it has applied
  the primary's position at the time of the read (linearizable, unlike ``ReadAnyReplica``).
- plots: ``plot_replica_sweep``, ``plot_stale_by_age``, ``plot_dashboard``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import simpy

from patterns.checks import check_choice, check_int, check_non_negative, check_positive
from patterns.performance.read_replicas import (
    ConsistentRouter,
    Primary,
    RouterConfig,
    replicas,
)
from simulations import plots, theory
from simulations.distributions import Distribution, Exponential, quantile, survival
from simulations.experiments import aggregate
from simulations.experiments import sweep as run_sweep
from simulations.lab.examples import SingleLeaderRegister
from simulations.lab.node import Context, Request
from simulations.metrics import (
    latency_over_time,
    per_bin,
    percentile_of,
    rate_over_time,
    summarize,
)
from simulations.records import RequestTable
from simulations.servers import ServerPool
from simulations.workloads import PoissonArrivals

__all__ = [
    "BALANCING", "CatchUpReplica", "ReplicaRun", "Scenario", "fallback_fraction",
    "in_order_lag_survival", "mmc_read_p99",
    "plot_dashboard", "plot_replica_sweep", "plot_stale_by_age", "simulate", "stale_by_age",
    "stale_probability", "stale_read_fraction", "summary", "sweep",
]

BALANCING = ("shared_queue", "round_robin")


@dataclass(frozen=True)
class Scenario:
    """One run. Rates per second, times in seconds; ``service_rate`` is one node's (exponential
    service, the same for reads and writes). ``lag_spike`` = (start, end, factor) multiplies the
    lag of writes committed in [start, end) (a replication slowdown); ``horizon_s`` is the
    simulated time and ``warmup_s`` what ``summary`` leaves out."""

    replicas: int = 3
    read_rate: float = 240.0
    write_rate: float = 20.0
    service_rate: float = 100.0
    sessions: int = 10
    lag: Distribution = field(default_factory=lambda: Exponential(0.05))
    router: RouterConfig = field(default_factory=lambda: RouterConfig("any"))
    balancing: str = "shared_queue"
    lag_spike: tuple[float, float, float] | None = None
    horizon_s: float = 60.0
    warmup_s: float = 5.0

    def __post_init__(self) -> None:
        check_int("Scenario.replicas", self.replicas, 1)
        check_non_negative("Scenario.read_rate", self.read_rate)
        check_non_negative("Scenario.write_rate", self.write_rate)
        check_positive("Scenario.service_rate", self.service_rate)
        check_int("Scenario.sessions", self.sessions, 1)
        check_choice("Scenario.balancing", self.balancing, BALANCING)
        check_positive("Scenario.horizon_s", self.horizon_s)
        if not 0 <= self.warmup_s < self.horizon_s:
            raise ValueError(f"Scenario.warmup_s must be in [0, horizon_s = {self.horizon_s}) "
                             f"(got {self.warmup_s!r})")
        if self.lag_spike is not None:
            start, end, factor = self.lag_spike
            if not (0 <= start < end and factor > 0):
                raise ValueError(f"Scenario.lag_spike must be (start, end, factor) with "
                                 f"0 <= start < end and factor > 0 (got {self.lag_spike!r})")


@dataclass(frozen=True)
class ReplicaRun:
    """A finished run. ``reads`` and ``writes`` are per-request tables (``reads.server`` is -1
    for a read the primary answered); per read, ``age_s`` (time since its session's last write,
    inf if none), ``stale`` and ``at_primary``; per write, its commit time and each replica's
    apply time (``applied_s``, writes x replicas)."""

    scenario: Scenario
    reads: RequestTable
    writes: RequestTable
    age_s: np.ndarray
    stale: np.ndarray
    at_primary: np.ndarray
    committed_s: np.ndarray
    applied_s: np.ndarray


def _apply_times(committed: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """When each replica has applied each write: in log order, so never before the previous."""
    return np.maximum.accumulate(committed[:, None] + lags, axis=0)


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> ReplicaRun:
    """Run ``scenario`` in SimPy (see the module's docstring); draws come from ``rng``."""
    s = scenario
    rng = rng if rng is not None else np.random.default_rng(1)
    env = simpy.Environment()
    horizon = s.horizon_s
    read_times = PoissonArrivals(s.read_rate).times(rng, horizon=horizon) if s.read_rate else (
        np.empty(0))
    write_times = PoissonArrivals(s.write_rate).times(rng, horizon=horizon) if s.write_rate else (
        np.empty(0))
    read_sessions = rng.integers(0, s.sessions, len(read_times))
    write_sessions = rng.integers(0, s.sessions, len(write_times))
    lags = s.lag.sample(rng, (len(write_times), s.replicas)).reshape(len(write_times),
                                                                      s.replicas)
    if s.lag_spike is not None:
        start, end, factor = s.lag_spike
        lags[(write_times >= start) & (write_times < end)] *= factor
    applied = _apply_times(write_times, lags)
    service = Exponential(1.0 / s.service_rate)

    primary = Primary(clock=lambda: env.now)
    copies = replicas(s.replicas)
    router = ConsistentRouter(primary, copies, s.router)
    primary_pool = ServerPool(env, 1, service, rng)
    if s.balancing == "shared_queue":
        shared = ServerPool(env, s.replicas, service, rng)
        pools = dict.fromkeys((r.name for r in copies), shared)
    else:
        pools = {r.name: ServerPool(env, 1, service, rng) for r in copies}
    index = {r.name: i for i, r in enumerate(copies)}

    reads: list[tuple[int, int]] = []  # (pool row or -1-row at the primary, replica index)
    stale = np.zeros(len(read_times), dtype=bool)
    last_write = np.full(s.sessions, -math.inf)

    def copy_after(replica, position: int, delay: float):
        yield env.timeout(delay)
        replica.catch_up(primary, upto=position)

    def writer():
        for t, session, row in zip(write_times, write_sessions, applied, strict=True):
            yield env.timeout(t - env.now)
            position = router.write(int(session), float(t), session=int(session))
            last_write[session] = t
            primary_pool.submit(int(session), 1)
            for replica, at in zip(copies, row, strict=True):
                env.process(copy_after(replica, position, at - t))

    def reader():
        for i, (t, session) in enumerate(zip(read_times, read_sessions, strict=True)):
            yield env.timeout(t - env.now)
            name, value = router.read(int(session), session=int(session))
            stale[i] = value != primary.read(int(session))
            if name == primary.name:
                reads.append((primary_pool.submit(int(session), 0), -1))
            else:
                reads.append((pools[name].submit(int(session), 0), index[name]))
            ages[i] = t - last_write[session]

    ages = np.full(len(read_times), math.inf)
    env.process(writer())
    env.process(reader())
    env.run()

    at_primary = np.array([r < 0 for _, r in reads], dtype=bool)
    primary_rows = primary_pool.log.table()
    replica_tables = {id(p): p.log.table() for p in pools.values()}
    replica_of = list(pools.values())
    arrival, start, end = (np.empty(len(reads)) for _ in range(3))
    for i, (row, r) in enumerate(reads):
        table = primary_rows if r < 0 else replica_tables[id(replica_of[r])]
        arrival[i], start[i], end[i] = table.arrival[row], table.start[row], table.end[row]
    read_table = RequestTable(
        arrival=arrival, start=start, end=end,
        outcome=np.ones(len(reads), dtype=np.int8),
        server=np.array([r for _, r in reads], dtype=np.int32),
        cls=np.zeros(len(reads), dtype=np.int16), key=read_sessions.astype(np.int32))
    write_table = primary_rows.select(primary_rows.cls == 1)
    return ReplicaRun(s, read_table, write_table, ages, stale, at_primary, write_times, applied)


def summary(run: ReplicaRun) -> dict[str, float]:
    """After the warm-up: read latency (mean, p50, p99), stale and primary shares of the reads,
    write p99, and each tier's utilisation."""
    s = run.scenario
    keep = run.reads.arrival >= s.warmup_s
    reads = run.reads.select(keep)
    out = {f"read_{k}": v for k, v in summarize(reads).items()
           if k in ("latency_mean_s", "latency_p50_s", "latency_p99_s", "throughput_per_s")}
    out["stale_fraction"] = float(run.stale[keep].mean()) if keep.any() else math.nan
    out["primary_read_fraction"] = float(run.at_primary[keep].mean()) if keep.any() else math.nan
    writes = run.writes.select(run.writes.arrival >= s.warmup_s)
    out["write_latency_p99_s"] = summarize(writes)["latency_p99_s"]
    span = s.horizon_s - s.warmup_s
    replica_reads = (~run.at_primary[keep]).sum()
    out["replica_utilisation"] = replica_reads / (span * s.replicas * s.service_rate)
    out["primary_utilisation"] = (len(writes) + run.at_primary[keep].sum()) / (
        span * s.service_rate)
    return out


def _model(rng: np.random.Generator, **settings: Any) -> dict[str, float]:
    return summary(simulate(replace(Scenario(), **settings), rng))


def sweep(grid: dict[str, list], *, seed: int = 1, replications: int = 3,
          **fixed: Any) -> list[dict[str, Any]]:
    """``summary`` at every combination of ``grid`` (Scenario fields), averaged over seeded
    replications, with 95 % interval half-widths (``<metric>_ci``)."""
    rows = run_sweep(_model, grid, seed=seed, replications=replications, fixed=fixed)
    metrics = [k for k in rows[0] if k not in (*grid, *fixed, "replication")]
    return aggregate(rows, list(grid), metrics)


# --- closed forms ----------------------------------------------------------------------------


def in_order_lag_survival(lag: Distribution, write_rate: float,
                          ages: np.ndarray) -> np.ndarray:
    """P(a write is not yet applied ``ages`` after commit) when a replica applies the log in
    order: write j is applied at max(commit_j + L_j, when write j-1 was), so its delay is
    D_j = max(L_j, D_{j-1} - G_j) with G_j the gap between commits (Poisson writes at
    ``write_rate``). The stationary H(a) = P(D <= a) solves H(a) = F(a) E[H(a + G)]; it is found
    by fixed-point iteration on a grid (write_rate = 0: the lag alone, 1 - F)."""
    ages = np.asarray(ages, dtype=float)
    rate = check_non_negative("write_rate", write_rate)
    if rate == 0:
        return np.array([survival(lag, a) for a in ages])
    top = max(float(quantile(lag, 1 - 1e-7)), float(ages.max(initial=0.0))) * 4
    grid = np.linspace(0.0, top, 4001)
    step = grid[1] - grid[0]
    cdf = 1.0 - np.array([survival(lag, a) for a in grid])
    held = cdf.copy()
    decay = math.exp(-rate * step)
    for _ in range(200):
        # E[H(a + G)] = e^{ra} int_a^inf r e^{-rx} H(x) dx, summed backwards (H = 1 past top)
        ahead = np.empty_like(held)
        ahead[-1] = 1.0
        for i in range(len(grid) - 2, -1, -1):
            ahead[i] = decay * ahead[i + 1] + (1 - decay) * (held[i] + held[i + 1]) / 2
        new = cdf * ahead
        if np.max(np.abs(new - held)) < 1e-9:
            held = new
            break
        held = new
    return 1.0 - np.interp(ages, grid, held)


def stale_probability(lag: Distribution, age_s: float, write_rate: float = 0.0) -> float:
    """P(a read ``age_s`` after the write finds a replica that has not applied it) =
    P(lag > age) for a write alone (``write_rate`` = 0); with writes committed at
    ``write_rate`` in all, in-order apply makes it ``in_order_lag_survival``."""
    check_non_negative("age_s", age_s)
    return float(in_order_lag_survival(lag, write_rate, np.array([age_s]))[0])


def _age_average(tail, lag: Distribution, session_write_rate: float, write_rate: float) -> float:
    """E[tail(P(stale at age A))] over the age A ~ Exp(session_write_rate) of a Poisson-timed
    read (by PASTA, the time since the last event of a Poisson stream), by the trapezoid rule."""
    rate = check_positive("session_write_rate", session_write_rate)
    ages = np.linspace(0.0, min(float(quantile(lag, 1 - 1e-7)) * 4, 40.0 / rate), 4001)
    values = tail(in_order_lag_survival(lag, write_rate, ages)) * rate * np.exp(-rate * ages)
    return float(np.sum((values[1:] + values[:-1]) * np.diff(ages)) / 2)


def stale_read_fraction(lag: Distribution, session_write_rate: float,
                        write_rate: float = 0.0) -> float:
    """Share of a session's reads that are stale when every read goes to a replica:
    E[P(stale at age A)], A the time since the session's last write (each session writes at
    ``session_write_rate``; ``write_rate`` is all sessions' together, for in-order apply).
    Exponential lag of mean m with write_rate = 0 gives ν·m / (1 + ν·m)."""
    return _age_average(lambda p: p, lag, session_write_rate, write_rate)


def fallback_fraction(lag: Distribution, session_write_rate: float, replicas: int,
                      write_rate: float = 0.0) -> float:
    """Share of reads that read-your-writes routing sends to the primary: those for which none
    of the ``replicas`` (independent lags) has applied the session's write, E[P(stale)^c]."""
    check_int("replicas", replicas, 1)
    return _age_average(lambda p: p**replicas, lag, session_write_rate, write_rate)


def stale_by_age(run: ReplicaRun, edges: np.ndarray) -> dict[str, np.ndarray]:
    """Reads answered by a replica, binned by age: bin ``mid``, ``stale`` fraction, ``reads``."""
    by_replica = ~run.at_primary & np.isfinite(run.age_s)
    ages, stale = run.age_s[by_replica], run.stale[by_replica]
    which = np.digitize(ages, edges) - 1
    counts = np.bincount(which[(which >= 0) & (which < len(edges) - 1)],
                         minlength=len(edges) - 1)
    hits = np.bincount(which[(which >= 0) & (which < len(edges) - 1)],
                       weights=stale[(which >= 0) & (which < len(edges) - 1)],
                       minlength=len(edges) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = hits / counts
    return {"mid": (edges[1:] + edges[:-1]) / 2, "stale": fraction, "reads": counts}


# --- the protocol lab ------------------------------------------------------------------------


class CatchUpReplica(SingleLeaderRegister):
    """A replica read that waits to catch up: the follower asks the leader ``n1`` for its log
    position, waits until it has applied that much, then answers from its own copy. The leader
    numbers each change and sends it to every follower; followers apply changes in number order
    (holding early arrivals). Writes and compare-and-sets go to the leader, as in
    ``SingleLeaderRegister``; the leader answers its own reads."""

    def on_request(self, ctx: Context, request: Request) -> None:
        if request.f == "read" and ctx.node_id != ctx.nodes[0]:
            ctx.send(ctx.nodes[0], ("position?", request))
        else:
            super().on_request(ctx, request)

    def on_message(self, ctx: Context, src: str, message: Any) -> None:
        if isinstance(message, Request):
            self._apply(ctx, message)
        elif message[0] == "position?":
            ctx.send(src, ("position", ctx.disk.get("position", 0), message[1]))
        elif message[0] == "position":
            _, position, request = message
            ctx.disk.setdefault("waiting", []).append((position, request))
            self._answer_caught_up(ctx)
        else:  # ("change", position, key, value)
            ctx.disk.setdefault("early", {})[message[1]] = message[2:]
            early, registers = ctx.disk["early"], ctx.disk.setdefault("registers", {})
            while ctx.disk.get("position", 0) + 1 in early:
                ctx.disk["position"] = ctx.disk.get("position", 0) + 1
                key, value = early.pop(ctx.disk["position"])
                registers[key] = value
            self._answer_caught_up(ctx)

    def _answer_caught_up(self, ctx: Context) -> None:
        applied, registers = ctx.disk.get("position", 0), ctx.disk.get("registers", {})
        waiting = ctx.disk.get("waiting", [])
        for _, request in [w for w in waiting if w[0] <= applied]:
            ctx.reply(request, registers.get(request.key))
        ctx.disk["waiting"] = [w for w in waiting if w[0] > applied]

    def _apply(self, ctx: Context, request: Request) -> None:
        answers = ctx.disk.setdefault("answers", {})
        fresh = request.id not in answers and request.f != "read"
        super()._apply(ctx, request)
        if fresh and answers[request.id][0]:
            ctx.disk["position"] = ctx.disk.get("position", 0) + 1
            value = ctx.disk["registers"].get(request.key)
            ctx.broadcast(("change", ctx.disk["position"], request.key, value))


# --- plots -----------------------------------------------------------------------------------


def plot_replica_sweep(rows: list[dict[str, Any]], theory_rows: dict[str, list[float]]):
    """Read p99 and stale share against the replica count, simulation (95 % bars) beside
    theory; ``theory_rows`` maps a metric to its closed-form value per row."""
    axes = plots.sweep_panels(
        rows, x="replicas", by="router", metrics=["read_latency_p99_s", "stale_fraction",
                                                 "primary_utilisation"],
        xlabel="replicas", group_label=lambda r: f"simulated, {r.mode}",
        ylabels={"read_latency_p99_s": "read p99 latency (s)",
                 "stale_fraction": "stale reads (share of reads)",
                 "primary_utilisation": "primary utilisation"})
    for ax, metric in zip(axes, ["read_latency_p99_s", "stale_fraction", "primary_utilisation"],
                          strict=True):
        for name, values in theory_rows.get(metric, {}).items():
            xs = sorted({row["replicas"] for row in rows})
            ax.plot(xs, values, linestyle="--", label=f"theory, {name}")
        ax.legend(fontsize=8)
    return axes


def plot_stale_by_age(binned: dict[str, np.ndarray], lag: Distribution, ax=None):
    """Stale share of replica reads by age since the session's write, beside P(lag > age)."""
    ax = plots.new_axes(ax)
    ok = binned["reads"] > 0
    mid = binned["mid"][ok]
    half = 1.96 * np.sqrt(binned["stale"][ok] * (1 - binned["stale"][ok]) / binned["reads"][ok])
    ax.errorbar(mid, binned["stale"][ok], yerr=half, fmt="o", markersize=4, capsize=3,
                label="simulated (95 % interval)")
    grid = np.linspace(0, binned["mid"][-1], 200)
    ax.plot(grid, [stale_probability(lag, a) for a in grid], label="theory: P(lag > age)")
    ax.set(xlabel="age of the session's last write at the read (s)",
           ylabel="stale reads (share)")
    ax.legend()
    return ax


def plot_dashboard(run: ReplicaRun, bin_s: float = 1.0):
    """Reads per second by tier, stale reads per second, read and write p99, and the replicas'
    lag over time; the lag spike (if any) shaded."""
    s = run.scenario
    reads = run.reads
    times, replica_rate = rate_over_time(reads.arrival[~run.at_primary], bin_s, 0, s.horizon_s)
    _, primary_rate = rate_over_time(reads.arrival[run.at_primary], bin_s, 0, s.horizon_s)
    _, stale_rate = rate_over_time(reads.arrival[run.stale], bin_s, 0, s.horizon_s)
    _, read_p99 = latency_over_time(reads, bin_s, 0, s.horizon_s)
    _, write_p99 = latency_over_time(run.writes, bin_s, 0, s.horizon_s)
    lag = (run.applied_s - run.committed_s[:, None]).max(axis=1)
    _, lag_p99 = per_bin(run.committed_s, lag, bin_s, 0, s.horizon_s, percentile_of(99))
    windows = [] if s.lag_spike is None else [s.lag_spike[:2]]
    return plots.dashboard(times, {
        "reads per second": {"by a replica": replica_rate, "by the primary": primary_rate},
        "stale reads per second": {"stale": stale_rate},
        "p99 latency (s)": {"reads": read_p99, "writes": write_p99},
        "replication lag, p99 of slowest replica (s)": {"lag": lag_p99},
    }, windows=windows, window_label="replication slowed")


def mmc_read_p99(scenario: Scenario) -> float:
    """Erlang C's p99 of replica reads: all reads Poisson over c replicas with one queue."""
    return theory.mmc_response_percentile(scenario.read_rate, scenario.service_rate,
                                          scenario.replicas, 0.99)

