"""The ID-generation study: what a block of IDs buys, what random IDs risk, what clocks break.

Picture the cloakroom again, with a stopwatch and a tally sheet: how long a coat waits while a
helper's strip of tickets is being refilled, how often the head attendant is bothered, how many
tickets are thrown away when a helper leaves, how often two random tickets match, and what
happens to time-stamped tickets when a helper's watch is set back.

- The allocator model (SimPy, from the toolkit): ``app_servers`` callers, each fed Poisson
  requests, spend blocks of ``block_size`` IDs from one central ``BlockAllocator`` behind a
  ``ServerPool`` of one server (its service time is the durable write). A request that finds
  its caller's block empty waits for the refill; ``prefetch`` asks for the next block early.
  ``crashes`` crash caller 0 at random times, losing the rest of its block.
- Random IDs: ``collision_probability`` (birthday bound) and ``simulate_collisions``.
- The protocol lab: ``SnowflakeNode`` (correct: refuses while its clock is behind),
  ``TrustingSnowflakeNode`` (broken: trusts a clock that stepped back), ``BlockNode``
  (correct: the allocator's high-water mark on disk), ``ForgetfulAllocator`` (broken: kept in
  memory), all judged by the lab's ``check_unique_ids``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

from patterns.checks import check_int, check_non_negative, check_positive, check_range
from patterns.specialized.id_generation import (
    BlockAllocator,
    ClockMovedBackwards,
    SnowflakeGenerator,
    snowflake,
)
from simulations import (
    Exponential,
    FaultSchedule,
    FaultWindow,
    Outcome,
    PoissonArrivals,
    RequestLog,
    RequestSource,
    RequestTable,
    ServerPool,
    latency_over_time,
    latency_percentiles,
    rate_over_time,
)
from simulations.experiments import aggregate, sweep
from simulations.lab import Context, Node, Request, Status

__all__ = [
    "METRICS", "BlockAllocator", "BlockNode", "ForgetfulAllocator", "Run", "Scenario",
    "SnowflakeNode", "TrustingSnowflakeNode", "allocator_qps", "collision_probability",
    "exact_collision_probability", "ids_for_collision_probability", "ids_lost", "mean_wait_s",
    "plot_dashboard", "plot_waits", "simulate", "simulate_collisions", "summary",
    "sweep_block_size", "wait_probability", "worker_of",
]


# --- the allocator model ----------------------------------------------------------------------

@dataclass(frozen=True)
class Scenario:
    """``arrival_rate`` ID requests per second in all, split evenly over ``app_servers``; the
    allocator's durable write takes an exponential time of mean ``allocator_service_s``; a
    caller asks for its next block once ``prefetch`` × ``block_size`` IDs or fewer remain (0:
    only when empty); ``crashes`` crashes of caller 0 at uniform random times; ``outage``
    slows the allocator (a ``FaultWindow``)."""

    arrival_rate: float = 4000.0
    app_servers: int = 4
    block_size: int = 100
    allocator_service_s: float = 0.004
    prefetch: float = 0.0
    duration_s: float = 5.0
    crashes: int = 0
    outage: FaultWindow | None = None
    seed: int = 1

    def __post_init__(self) -> None:
        check_positive("Scenario.arrival_rate", self.arrival_rate)
        check_int("Scenario.app_servers", self.app_servers, 1)
        check_int("Scenario.block_size", self.block_size, 1)
        check_positive("Scenario.allocator_service_s", self.allocator_service_s)
        check_range("Scenario.prefetch", self.prefetch, 0.0, 1.0, high_open=True)
        check_positive("Scenario.duration_s", self.duration_s)
        check_int("Scenario.crashes", self.crashes, 0)


class _Holder:
    """One caller: the block it spends, with prefetch the next one, and the requests waiting
    for a block (first come, first served), each written to the caller's ``RequestLog``. A
    request that finds IDs in the block is answered at once, with no simulation event."""

    def __init__(self, env: simpy.Environment, allocator: ServerPool, ids: BlockAllocator,
                 block_size: int, prefetch: float) -> None:
        self.env, self.allocator, self.ids = env, allocator, ids
        self.threshold = prefetch * block_size if prefetch > 0 else -1
        self.block: list[int] = []  # the IDs left, in reverse so pop() gives the next
        self.spare: list[int] = []
        self.waiting: deque[int] = deque()
        self.fetching = False
        self.incarnation = 0
        self.log = RequestLog()
        self.issued: list[int] = []
        self.lost: list[int] = []

    def request(self, key: int, cls: int) -> None:
        self.waiting.append(self.log.add(self.env.now, key, cls))
        self._serve()

    def _serve(self) -> None:
        now = self.env.now
        while self.waiting:
            if not self.block:
                self.block, self.spare = self.spare, []
            if not self.block:
                self._ask()
                return
            row = self.waiting.popleft()
            self.log.started(row, now)
            self.log.finished(row, now, Outcome.OK)
            self.issued.append(self.block.pop())
        if len(self.block) <= self.threshold and not self.spare:
            self._ask()

    def _ask(self) -> None:
        if not self.fetching:
            self.fetching = True
            self.env.process(self._fetch(self.incarnation))

    def _fetch(self, incarnation: int):
        while (yield self.allocator.call()) != Outcome.OK:
            pass
        block = list(reversed(self.ids.allocate()))  # the write is done: the block is ours
        self.fetching = False
        if incarnation != self.incarnation:  # it was asked for before a crash: lost with it
            self.lost[-1] += len(block)
        elif self.block:
            self.spare = block
        else:
            self.block = block
        self._serve()

    def crash(self) -> None:
        self.lost.append(len(self.block) + len(self.spare))
        self.block, self.spare, self.incarnation = [], [], self.incarnation + 1


@dataclass
class Run:
    """A finished run: the requests' rows, the allocator's rows, every ID issued, the IDs lost
    at each crash, and the scenario."""

    scenario: Scenario
    requests: RequestTable
    allocator: RequestTable
    issued: np.ndarray
    lost: list[int] = field(default_factory=list)


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """Run the allocator model; every random number is drawn from ``rng`` (default: seeded
    from ``scenario.seed``)."""
    rng = rng if rng is not None else np.random.default_rng(scenario.seed)
    env = simpy.Environment()
    faults = FaultSchedule([scenario.outage]) if scenario.outage else None
    allocator = ServerPool(env, 1, Exponential(scenario.allocator_service_s), rng, faults=faults)
    ids = BlockAllocator(scenario.block_size)
    holders = [_Holder(env, allocator, ids, scenario.block_size, scenario.prefetch)
               for _ in range(scenario.app_servers)]
    for holder in holders:
        RequestSource(env, PoissonArrivals(scenario.arrival_rate / scenario.app_servers),
                      holder.request, rng, horizon_s=scenario.duration_s)
    for t in np.sort(rng.uniform(0, scenario.duration_s, scenario.crashes)):
        env.process(_crash_at(env, float(t), holders[0]))
    env.run(until=scenario.duration_s + 1.0)
    return Run(scenario, RequestTable.concat([h.log.table() for h in holders]),
               allocator.log.table(), np.concatenate([h.issued for h in holders]),
               holders[0].lost)


def _crash_at(env: simpy.Environment, t: float, holder: _Holder):
    yield env.timeout(t)
    holder.crash()


def summary(run: Run) -> dict[str, float]:
    """Latency of an ID request (mean, p99, p99.9, share that waited), allocator requests per
    second and its utilisation, IDs issued, whether all differ, and the IDs lost per crash."""
    s = run.scenario
    ok = run.requests.has(Outcome.OK)
    latency = run.requests.latency[ok]
    pct = latency_percentiles(latency, (99.0, 99.9))
    busy = np.nansum(run.allocator.service)
    return {
        "latency_mean_s": float(latency.mean()),
        "latency_p99_s": pct["latency_p99_s"],
        "latency_p999_s": pct["latency_p999_s"],
        "wait_fraction": float(np.mean(latency > 0)),
        "allocator_qps": len(run.allocator) / s.duration_s,
        "allocator_utilisation": float(busy / s.duration_s),
        "ids_issued": len(run.issued),
        "all_unique": bool(len(np.unique(run.issued)) == len(run.issued)),
        "lost_max": max(run.lost, default=0),
        "lost_mean": float(np.mean(run.lost)) if run.lost else 0.0,
    }


METRICS = ("latency_mean_s", "latency_p99_s", "latency_p999_s", "wait_fraction", "allocator_qps",
           "allocator_utilisation", "lost_max", "lost_mean")


def _model(rng: np.random.Generator, **params: Any) -> dict[str, float]:
    return summary(simulate(Scenario(**params), rng))


def sweep_block_size(block_sizes, *, replications: int = 3, seed: int = 1,
                     **fixed: Any) -> list[dict[str, Any]]:
    """``summary`` at each block size (and ``prefetch`` if given as a list in ``fixed``),
    aggregated over seeded replications (mean and 95 % interval per metric)."""
    grid: dict[str, Any] = {"block_size": list(block_sizes)}
    if isinstance(fixed.get("prefetch"), list | tuple):
        grid["prefetch"] = list(fixed.pop("prefetch"))
    rows = sweep(_model, grid, seed=seed, replications=replications, fixed=fixed)
    return aggregate(rows, by=list(grid), metrics=METRICS)


def allocator_qps(arrival_rate: float, block_size: int) -> float:
    """Requests per second reaching the allocator: λ / B (every ID comes from some block)."""
    return check_positive("arrival_rate", arrival_rate) / check_int("block_size", block_size, 1)


def _fetch_time_s(arrival_rate: float, block_size: int, service_s: float) -> float:
    """Mean allocator response R, as an M/M/1 queue at load λs/B (the callers' fetches are in
    fact more regular than Poisson, so this slightly overstates the queueing)."""
    load = allocator_qps(arrival_rate, block_size) * service_s
    if load >= 1:
        raise ValueError(f"the allocator is overloaded: λ·s/B = {load:.2f} must be < 1")
    return service_s / (1 - load)


def wait_probability(arrival_rate: float, app_servers: int, block_size: int,
                     service_s: float) -> float:
    """Share of ID requests that wait, without prefetch: per block of B, the request that finds
    it empty plus the λᵢR arriving during the refill, (1 + λᵢR) / B (needs λᵢR < B)."""
    r = _fetch_time_s(arrival_rate, block_size, service_s)
    return min(1.0, (1 + arrival_rate / app_servers * r) / block_size)


def mean_wait_s(arrival_rate: float, app_servers: int, block_size: int,
                service_s: float) -> float:
    """Mean latency of an ID request, without prefetch: R(1 + λᵢR) / B. The first waits R;
    those arriving during an exponential refill wait its residual, R on average (memoryless)."""
    r = _fetch_time_s(arrival_rate, block_size, service_s)
    return r * (1 + arrival_rate / app_servers * r) / block_size


# --- random IDs: the birthday bound -----------------------------------------------------------

def collision_probability(n: float, bits: int) -> float:
    """P(some two of n uniform random b-bit IDs are equal) ≈ 1 − exp(−n(n−1)/2^(b+1))
    (≈ 1 − exp(−n²/2^(b+1)); each of the n(n−1)/2 pairs matches with probability 2^−b, and
    the pairs are nearly independent when n ≪ 2^b)."""
    check_non_negative("n", n)
    check_int("bits", bits, 1)
    return -math.expm1(-n * (n - 1) / 2.0 ** (bits + 1))


def exact_collision_probability(n: int, bits: int) -> float:
    """The exact birthday probability 1 − Π_{i<n} (1 − i/2^b), summed in logs."""
    space = 2.0 ** check_int("bits", bits, 1)
    if check_int("n", n, 0) > space:
        return 1.0
    return -math.expm1(float(np.sum(np.log1p(-np.arange(n) / space))))


def ids_for_collision_probability(p: float, bits: int) -> float:
    """How many random b-bit IDs reach collision probability p: √(2^(b+1)·ln(1/(1−p)))."""
    check_range("p", p, 0.0, 1.0, low_open=True, high_open=True)
    return math.sqrt(2.0 ** (check_int("bits", bits, 1) + 1) * -math.log1p(-p))


def simulate_collisions(n: int, bits: int, trials: int,
                        rng: np.random.Generator) -> np.ndarray:
    """For each trial, whether n uniform random b-bit IDs held a repeat (bool per trial)."""
    check_int("n", n, 2)
    check_int("trials", trials, 1)
    draws = np.sort(rng.integers(0, 2 ** check_int("bits", bits, 1, 62), (trials, n)), axis=1)
    return np.any(draws[:, 1:] == draws[:, :-1], axis=1)


# --- the protocol lab --------------------------------------------------------------------------

def _no_sleep(seconds: float) -> None:
    raise RuntimeError("a lab handler cannot sleep: 4,096 IDs in one millisecond on one node")


def worker_of(ctx: Context) -> int:
    """The lab node's worker number: n1 → 1, n2 → 2, ..."""
    return int(ctx.node_id[1:])


class SnowflakeNode(Node):
    """One Snowflake worker per node (epoch: the run's start); the generator's last timestamp
    and sequence live on disk, and a request that comes while the clock is behind them is
    refused (``ctx.fail``), as Twitter's ``IdWorker`` refuses."""

    def on_request(self, ctx: Context, request: Request) -> None:
        generator = SnowflakeGenerator(worker_of(ctx), lambda: ctx.now, epoch_ms=0,
                                       sleep=_no_sleep, state=ctx.disk.setdefault("flake", {}))
        try:
            ctx.reply(request, generator.next_id())
        except ClockMovedBackwards:
            ctx.fail(request)


class TrustingSnowflakeNode(Node):
    """Broken: starts the sequence again at 0 whenever the millisecond differs from the last
    one, even when it is earlier, so a clock set back re-issues IDs it already gave out."""

    def on_request(self, ctx: Context, request: Request) -> None:
        now = int(ctx.now * 1000)
        state = ctx.disk.setdefault("flake", {"last_ms": -1, "sequence": 0})
        state["sequence"] = state["sequence"] + 1 if now == state["last_ms"] else 0
        state["last_ms"] = now
        ctx.reply(request, snowflake(now, worker_of(ctx), state["sequence"], 0))


class BlockNode(Node):
    """Every node hands out IDs from a block; ``n1`` also runs the allocator, whose high-water
    mark is on disk. A node asks ``n1`` for a block with a request number that it also keeps on
    disk, and installs only the answer to the request it is waiting for (a duplicated or late
    answer is ignored); a lost request is asked again after ``retry_s``."""

    block_size = 20
    retry_s = 0.05

    def allocator(self, ctx: Context) -> BlockAllocator:
        return BlockAllocator(self.block_size, ctx.disk)

    def on_start(self, ctx: Context) -> None:
        self.block: list[int] = []
        self.waiting: list[Request] = []
        self.asked: tuple[int, float] | None = None  # (request number, sent at)
        ctx.set_timer(self.retry_s, "retry")

    def on_request(self, ctx: Context, request: Request) -> None:
        self.waiting.append(request)
        self._serve(ctx)

    def _serve(self, ctx: Context) -> None:
        while self.waiting and self.block:
            ctx.reply(self.waiting.pop(0), self.block.pop())
        if self.waiting and self.asked is None:
            self._ask(ctx)

    def _ask(self, ctx: Context) -> None:
        if ctx.node_id == ctx.nodes[0]:
            self.block = list(reversed(self.allocator(ctx).allocate()))
            self._serve(ctx)
            return
        number = ctx.disk["asks"] = ctx.disk.get("asks", 0) + 1
        self.asked = (number, ctx.now)
        ctx.send(ctx.nodes[0], ("lease", number))

    def on_message(self, ctx: Context, src: str, message: tuple) -> None:
        if message[0] == "lease":
            block = self.allocator(ctx).allocate()
            ctx.send(src, ("block", message[1], block.start, block.stop))
        elif self.asked is not None and message[1] == self.asked[0]:
            self.asked = None
            self.block = list(reversed(range(message[2], message[3])))
            self._serve(ctx)

    def on_timer(self, ctx: Context, name: object) -> None:
        if self.asked is not None and ctx.now - self.asked[1] >= self.retry_s:
            self.asked = None
            self._ask(ctx)
        ctx.set_timer(self.retry_s, "retry")


class ForgetfulAllocator(BlockNode):
    """Broken: the allocator keeps its high-water mark in memory, so after a crash-restart it
    counts from 0 again and hands out blocks it had already handed out."""

    def allocator(self, ctx: Context) -> BlockAllocator:
        if not hasattr(self, "_memory"):
            self._memory: dict = {}
        return BlockAllocator(self.block_size, self._memory)


def ids_lost(lab_run) -> dict[str, int]:
    """IDs the allocator reserved but no client was given: ``allocated`` (the high-water mark
    on n1's disk), ``acknowledged`` (IDs clients got), ``unknown`` (requests that timed out,
    which may have used one) and ``lost`` = allocated − acknowledged."""
    ok = lab_run.history.where(f="generate", status=Status.OK)
    unknown = lab_run.history.where(f="generate", status=Status.UNKNOWN)
    allocated = int(lab_run.disks[lab_run.nodes[0]].get("next_free", 0))
    return {"allocated": allocated, "acknowledged": len(ok), "unknown": len(unknown),
            "lost": allocated - len(ok)}


# --- plots ------------------------------------------------------------------------------------

def plot_waits(run: Run, ax=None):
    """One run at a glance: every ID request that waited for a block, as a dot at its arrival
    time and latency; requests served from the block at once (latency 0) are left out."""
    from simulations import plots

    ax = plots.new_axes(ax, figsize=(6.5, 3.2))
    table = run.requests
    waited = table.has(Outcome.OK) & (table.latency > 0)
    ax.plot(table.arrival[waited], table.latency[waited] * 1000, ".", markersize=3,
            label=f"requests that waited ({waited.sum()} of {len(table)})")
    ax.set_xlim(0, run.scenario.duration_s)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("arrival time (s)")
    ax.set_ylabel("ID latency (ms)")
    ax.legend(fontsize="small", loc="upper right")
    return ax


def plot_dashboard(runs: dict[str, Run], bin_s: float = 0.25):
    """The allocator's dashboard over time, one curve per run: p99 latency of an ID request,
    IDs issued per second, allocator requests per second; the outage shaded."""
    from simulations import plots

    first = next(iter(runs.values())).scenario
    end = first.duration_s
    panels: dict[str, dict[str, Any]] = {"p99 ID latency (ms)": {}, "IDs issued (per s)": {},
                                         "allocator requests (per s)": {}}
    times = None
    for name, run in runs.items():
        times, p99 = latency_over_time(run.requests, bin_s, 0, end)
        panels["p99 ID latency (ms)"][name] = p99 * 1000
        _, issued = rate_over_time(run.requests.end[run.requests.has(Outcome.OK)], bin_s, 0, end)
        panels["IDs issued (per s)"][name] = issued
        _, asked = rate_over_time(run.allocator.arrival, bin_s, 0, end)
        panels["allocator requests (per s)"][name] = asked
    windows = [(first.outage.start_s, first.outage.end_s)] if first.outage else []
    return plots.dashboard(times, panels, windows=windows, window_label="allocator slow")
