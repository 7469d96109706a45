"""The write-through vs write-behind study: write latency against writes lost at a crash.

Picture the two waiters of the pattern's module with a stopwatch and a clipboard: how long
each guest waits for "noted", and, if the waiter fainted at a random moment, how many orders
the kitchen would never hear of.

Writes arrive as a Poisson stream (``RequestSource`` of ``PoissonArrivals``, uniform keys from
``ZipfKeys(n, 0)``) at a front ``ServerPool`` whose handler spends ``cache_s`` in the cache.
Write-through then calls the store, a ``ServerPool`` of ``store_workers`` whose handler takes a
log-normal time plus ``db_per_row_s`` per row, and acknowledges after it; write-behind
acknowledges at once and a flusher process sends the pattern's ``take_batch()`` to the store
every ``flush_interval_s`` (retrying after ``retry_backoff_s`` if the store fails). Each write
has an acknowledgement time and a durability time (when the store first holds its value or a
later one): the writes acknowledged but not durable at time t are what a crash at t loses, and
their time average is the expected loss at a crash at a random time. Little's law gives it:
``write_rate * (flush_interval_s / 2 + flush time)``. Dirty *keys* are fewer, as rewrites of a
key coalesce (``expected_dirty_keys``). ``crash_tests`` runs the real thing: a writer process
over SQLite killed with SIGKILL, then acknowledged writes compared with the table.
"""

from __future__ import annotations

import functools
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import simpy

from patterns.caching.write_through_write_behind import WriteBehindCache
from patterns.checks import check_choice, check_int, check_non_negative, check_positive
from simulations.clients import RequestSource
from simulations.distributions import LogNormal
from simulations.experiments import sweep as grid_sweep
from simulations.faults import FaultSchedule, FaultWindow
from simulations.metrics import latency_percentiles, occupancy, time_average, utilisation
from simulations.records import Outcome, RequestTable
from simulations.servers import ServerPool
from simulations.theory import mmc_mean_wait
from simulations.workloads import PoissonArrivals, ZipfKeys

__all__ = ["POLICIES", "CrashResult", "Run", "Scenario", "crash_tests", "draw_tradeoff",
           "expected_dirty_keys", "expected_flush_s", "expected_lost_writes", "lost_at",
           "plot_dashboard", "simulate", "summary", "sweep", "write_through_latency_s"]

POLICIES = ("write-through", "write-behind")


@dataclass(frozen=True)
class Scenario:
    """One run: the policy, the write traffic, the flush settings and the store."""

    policy: str = "write-behind"
    write_rate: float = 200.0  # writes per second (Poisson)
    n_keys: int = 1000  # keys written uniformly at random
    flush_interval_s: float = 1.0
    max_batch: int | None = None  # rows per flush (None: all dirty keys)
    max_dirty: int | None = None  # dirty keys before a write waits (None: unbounded)
    cache_s: float = 0.0002  # time to write the cache
    db_s: float = 0.005  # mean time of one store call (log-normal)
    db_scv: float = 1.0
    db_per_row_s: float = 0.00005  # extra store time per row in a batch
    store_workers: int = 4
    retry_backoff_s: float = 0.1  # wait before a failed flush is retried
    outage: tuple[float, float] | None = None  # the store fails fast in [start, end)
    duration_s: float = 30.0
    warmup_s: float = 2.0
    seed: int = 1

    def __post_init__(self) -> None:
        check_choice("policy", self.policy, POLICIES)
        check_positive("write_rate", self.write_rate)
        check_int("n_keys", self.n_keys, 1)
        check_positive("flush_interval_s", self.flush_interval_s)
        if self.max_batch is not None:
            check_int("max_batch", self.max_batch, 1)
        if self.max_dirty is not None:
            check_int("max_dirty", self.max_dirty, 1)
        for name in ("cache_s", "db_per_row_s", "retry_backoff_s"):
            check_non_negative(name, getattr(self, name))
        check_positive("db_s", self.db_s)
        check_positive("db_scv", self.db_scv)
        check_int("store_workers", self.store_workers, 1)
        check_positive("duration_s", self.duration_s)
        check_non_negative("warmup_s", self.warmup_s)
        if self.warmup_s >= self.duration_s:
            raise ValueError(f"warmup_s must be < duration_s = {self.duration_s:g} "
                             f"(got {self.warmup_s!r})")


@dataclass
class Run:
    """What one run recorded: one row per write, its acknowledgement and durability times,
    the dirty-key intervals and the flushes (start, end, rows, succeeded)."""

    scenario: Scenario
    writes: RequestTable
    store: RequestTable
    ack: np.ndarray  # when the client was told "done" (NaN: never)
    durable: np.ndarray  # when the store first held this value or a later one (NaN: never)
    dirty_enter: np.ndarray
    dirty_leave: np.ndarray
    flushes: list[tuple[float, float, int, bool]] = field(default_factory=list)


def _service_times(rng: np.random.Generator, s: Scenario) -> Iterator[float]:
    distribution = LogNormal(s.db_s, s.db_scv)
    while True:
        yield from distribution.sample(rng, 4096).tolist()


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """Run the scenario; the traffic comes first from ``rng`` (common random numbers)."""
    s = scenario
    rng = rng if rng is not None else np.random.default_rng(s.seed)
    env = simpy.Environment()
    service = _service_times(np.random.default_rng(rng.integers(2**63)), s)

    def store_op(rows: int, cls: int):
        yield env.timeout(next(service) + rows * s.db_per_row_s)

    faults = FaultSchedule([FaultWindow(*s.outage, "error")]) if s.outage else None
    store = ServerPool(env, s.store_workers, store_op, faults=faults)
    keys, ack, durable = [], [], []
    cache = WriteBehindCache(store, s.flush_interval_s, s.max_batch, clock=lambda: env.now)
    pending: dict[int, deque[int]] = {}
    dirty_since: dict[int, float] = {}
    enter, leave, flushes = [], [], []
    room = [env.event()]  # succeeds after each flush, waking writers held by max_dirty

    def new_write(key: int) -> int:
        keys.append(key)
        ack.append(math.nan)
        durable.append(math.nan)
        return len(keys) - 1

    def write_through(key: int, cls: int):
        version = new_write(key)
        yield env.timeout(s.cache_s)
        outcome = yield store.call(1)
        if outcome != Outcome.OK:
            return outcome  # the client sees the error: never acknowledged
        ack[version] = durable[version] = env.now
        return None

    def write_behind(key: int, cls: int):
        version = new_write(key)
        yield env.timeout(s.cache_s)
        while s.max_dirty and len(cache.dirty) >= s.max_dirty and key not in cache.dirty:
            yield room[0]  # backpressure: wait for a flush to make room
        cache.put(key, version)
        ack[version] = env.now
        waiting = pending.setdefault(key, deque())
        if not waiting:
            dirty_since[key] = env.now
        waiting.append(version)

    def flusher():
        while True:
            started = env.now
            batch = cache.take_batch()
            if batch:
                outcome = yield store.call(len(batch))
                flushes.append((started, env.now, len(batch), outcome == Outcome.OK))
                if outcome != Outcome.OK:
                    yield env.timeout(s.retry_backoff_s)
                    continue
                cache.written(batch)
                for key, version in batch:
                    waiting = pending[key]
                    while waiting and waiting[0] <= version:
                        durable[waiting.popleft()] = env.now
                    if not waiting:
                        enter.append(dirty_since.pop(key))
                        leave.append(env.now)
                room[0].succeed()
                room[0] = env.event()
            yield env.timeout(max(0.0, started + s.flush_interval_s - env.now))

    handler = write_through if s.policy == "write-through" else write_behind
    front = ServerPool(env, None, handler)
    RequestSource(env, PoissonArrivals(s.write_rate), front.submit, rng,
                  horizon_s=s.duration_s, keys=ZipfKeys(s.n_keys, 0.0))
    if s.policy == "write-behind":
        env.process(flusher())
    env.run(until=s.duration_s)
    enter.extend(dirty_since.values())
    leave.extend([math.nan] * len(dirty_since))
    return Run(s, front.log.table(), store.log.table(), np.array(ack), np.array(durable),
               np.array(enter), np.array(leave), flushes)


def lost_at(run: Run, times: Sequence[float] | np.ndarray) -> np.ndarray:
    """Writes a crash at each of ``times`` would lose: acknowledged, not yet durable."""
    times = np.asarray(times, dtype=float)
    acked = np.searchsorted(np.sort(run.ack[~np.isnan(run.ack)]), times, side="right")
    stored = np.searchsorted(np.sort(run.durable[~np.isnan(run.durable)]), times, side="right")
    return acked - stored


def _whole_cycles(s: Scenario) -> tuple[float, float]:
    """The default window: after the warm-up, whole flush cycles only (a partial cycle would
    weigh one part of the saw-tooth of unflushed writes more than the rest)."""
    if s.policy == "write-through":
        return s.warmup_s, s.duration_s
    f = s.flush_interval_s
    start = math.ceil(s.warmup_s / f) * f
    cycles = math.floor((s.duration_s - start) / f)
    return (start, start + cycles * f) if cycles >= 1 else (s.warmup_s, s.duration_s)


def summary(run: Run, start_s: float | None = None, end_s: float | None = None) -> dict:
    """Latency (ms) of the writes arriving in [start_s, end_s) and, over that window, the
    expected writes and dirty keys a crash at a random time would lose (time averages).
    The default window starts after the warm-up and holds whole flush cycles."""
    s = run.scenario
    start, end = _whole_cycles(s)
    start, end = (start if start_s is None else start_s), (end if end_s is None else end_s)
    w = run.writes
    inside = (w.arrival >= start) & (w.arrival < end)
    ok = inside & (w.outcome == int(Outcome.OK))
    latency = latency_percentiles(w.latency[ok] * 1000, (50, 99))
    rows = sum(r for a, _, r, good in run.flushes if good and start <= a < end)
    return {
        "p50_latency_ms": latency["latency_p50_s"],
        "p99_latency_ms": latency["latency_p99_s"],
        "failed_writes": int(np.sum(inside & (w.outcome == int(Outcome.ERROR)))),
        "lost_writes": time_average(*occupancy(run.ack, run.durable), start, end),
        "dirty_keys": time_average(*occupancy(run.dirty_enter, run.dirty_leave), start, end),
        "store_rows_per_s": (rows if s.policy == "write-behind" else int(ok.sum())) / (end - start),
        "store_busy": utilisation(run.store, s.store_workers, start, end),
        "mean_flush_s": float(np.mean([b - a for a, b, _, good in run.flushes if good]))
        if run.flushes else math.nan,
    }


def sweep(grid: Mapping[str, Sequence[Any]], *, seed: int = 1, replications: int = 1,
          fixed: Mapping[str, Any] | None = None) -> list[dict]:
    """``summary`` at every combination of Scenario settings in ``grid``, seeded runs."""
    def model(rng: np.random.Generator, **params: Any) -> dict:
        return summary(simulate(Scenario(**params), rng))
    return grid_sweep(model, grid, seed=seed, replications=replications, fixed=fixed)


# --- closed forms ---------------------------------------------------------------------------

def expected_lost_writes(write_rate: float, flush_interval_s: float, flush_s: float = 0.0) -> float:
    """Little's law L = λW for unflushed writes under a periodic flush: a write waits on
    average F/2 for the next flush to begin, then the flush's duration D, so W = F/2 + D.
    Assumes Poisson writes (arrivals uniform over the flush cycle) and D < F."""
    check_positive("write_rate", write_rate)
    check_positive("flush_interval_s", flush_interval_s)
    check_non_negative("flush_s", flush_s)
    return write_rate * (flush_interval_s / 2 + flush_s)


def expected_dirty_keys(write_rate: float, flush_interval_s: float, n_keys: int,
                        flush_s: float = 0.0) -> float:
    """Mean dirty keys when writes pick one of ``n_keys`` uniformly (rewrites coalesce).

    A key is dirty at phase s of the flush cycle if it was written since the last snapshot,
    or (while that flush is in flight, s < D) in the cycle before. With a = λ/n each key is
    written as a Poisson stream, and averaging over s gives n·[1 − e^(−aD)(1 − e^(−aF))/(aF)],
    which tends to λ(F/2 + D) when keys are never rewritten (n → ∞). D is taken as constant.
    """
    check_positive("write_rate", write_rate)
    check_positive("flush_interval_s", flush_interval_s)
    n = check_int("n_keys", n_keys, 1)
    check_non_negative("flush_s", flush_s)
    a = write_rate / n
    return n * (1 - math.exp(-a * flush_s) * -math.expm1(-a * flush_interval_s)
                / (a * flush_interval_s))


def expected_flush_s(s: Scenario) -> float:
    """Mean time of one flush: a store call plus a row per key dirtied in one interval."""
    rows = s.n_keys * -math.expm1(-s.write_rate * s.flush_interval_s / s.n_keys)
    return s.db_s + s.db_per_row_s * (rows if s.max_batch is None else min(rows, s.max_batch))


def write_through_latency_s(s: Scenario) -> float:
    """Mean write-through latency: t_cache + t_db, plus the store's queueing wait (M/M/c
    with the store's mean time; exact for exponential times, close for scv near 1)."""
    return s.cache_s + s.db_s + mmc_mean_wait(s.write_rate, 1 / s.db_s, s.store_workers)


# --- plots ----------------------------------------------------------------------------------

@functools.cache  # a slider move reruns only the points it changes (callers never mutate)
def _point(policy: str, write_rate: float, flush_interval_s: float, duration_s: float) -> dict:
    scenario = Scenario(policy=policy, write_rate=write_rate, flush_interval_s=flush_interval_s,
                        duration_s=duration_s)
    return summary(simulate(scenario))


DRAW_FLUSHES = (0.25, 1.0, 4.0)


def draw_tradeoff(flush_interval_s: float = 1.0, write_rate: float = 200.0,
                  duration_s: float | None = None) -> list:
    """Two panels against F: expected loss at a crash (theory lines, simulated points) and
    write latency p50/p99 of both policies; the chosen F is marked. By default a point
    simulates about 2400 writes (at most 12 s), and never fewer than two flush cycles."""
    from simulations import plots

    def span(f: float) -> float:
        return duration_s or max(2.0 * f, min(12.0, 2400.0 / write_rate))

    flushes = sorted({*DRAW_FLUSHES, flush_interval_s})
    base = Scenario(write_rate=write_rate)
    grid = np.geomspace(0.2, 5.0, 60)
    points = [_point("write-behind", write_rate, f, span(f)) for f in flushes]
    through = _point("write-through", write_rate, 1.0, span(1.0))
    fig, (left, right) = plots.plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    d = [expected_flush_s(replace(base, flush_interval_s=f)) for f in grid]
    left.plot(grid, [expected_lost_writes(write_rate, f, x) for f, x in zip(grid, d, strict=True)],
              **plots.THEORY, label="Little: λ(F/2 + D), writes")
    left.plot(grid, [expected_dirty_keys(write_rate, f, base.n_keys, x)
                     for f, x in zip(grid, d, strict=True)],
              color="grey", linestyle=":", label=f"dirty keys ({base.n_keys} keys)")
    left.plot(flushes, [p["lost_writes"] for p in points], "o", label="simulated, writes")
    left.plot(flushes, [p["dirty_keys"] for p in points], "s", label="simulated, dirty keys")
    left.axvline(flush_interval_s, color=plots.COLORS[4], linewidth=1)
    left.set(xlabel="flush interval F (s)", ylabel="lost at a crash (expected)",
             title=f"write-behind, λ = {write_rate:g} writes/s")
    left.legend(fontsize="small")
    for q, style in (("p50", "-"), ("p99", "--")):
        right.plot(flushes, [p[f"{q}_latency_ms"] for p in points], marker="o",
                   linestyle=style, color=plots.COLORS[0], label=f"write-behind {q}")
        right.axhline(through[f"{q}_latency_ms"], linestyle=style, color=plots.COLORS[1],
                      label=f"write-through {q}")
    right.axvline(flush_interval_s, color=plots.COLORS[4], linewidth=1)
    plots.log_scale(right, "y")
    right.set(xlabel="flush interval F (s)", ylabel="write latency (ms)")
    right.legend(fontsize="small")
    return [left, right]


def _level(enter: np.ndarray, leave: np.ndarray, at: np.ndarray) -> np.ndarray:
    times, counts = occupancy(enter, leave)
    if len(times) == 0:
        return np.zeros(len(at))
    where = np.searchsorted(times, at, side="right") - 1
    return np.where(where >= 0, counts[np.maximum(where, 0)], 0.0)


def plot_dashboard(runs: Mapping[str, Run], bin_s: float = 0.5) -> list:
    """Write p99, failed writes/s, dirty keys and writes at risk over time, per run, with the
    store outage (if any) shaded."""
    from simulations import plots
    from simulations.metrics import per_bin

    first = next(iter(runs.values())).scenario
    edges = np.arange(0.0, first.duration_s + bin_s / 2, bin_s)
    mids = (edges[:-1] + edges[1:]) / 2
    p99, failed, dirty, risk = {}, {}, {}, {}
    for name, run in runs.items():
        w = run.writes
        ok = w.outcome == int(Outcome.OK)
        _, p99[name] = per_bin(w.arrival[ok], w.latency[ok] * 1000, bin_s, 0.0, first.duration_s,
                               lambda x: float(np.percentile(x, 99)))
        errors = w.arrival[w.outcome == int(Outcome.ERROR)]
        failed[name] = np.histogram(errors, edges)[0] / bin_s
        dirty[name] = _level(run.dirty_enter, run.dirty_leave, mids)
        risk[name] = lost_at(run, mids)
    windows = [first.outage] if first.outage else []
    return plots.dashboard(mids, {"write p99 (ms)": p99, "failed writes (1/s)": failed,
                                  "dirty keys": dirty, "writes a crash would lose": risk},
                           windows=windows, window_label="store down")


# --- the real crash: a writer over SQLite, killed with SIGKILL --------------------------------

WRITER = """
import itertools, os, random, sys, time
from patterns.caching.write_through_write_behind import (SQLiteStore, WriteBehindCache,
                                                         WriteThroughCache)
db, acks, policy, rate, flush, keys, seed = sys.argv[1:]
store = SQLiteStore(db)
behind = policy == "write-behind"
cache = WriteBehindCache(store, float(flush)) if behind else WriteThroughCache(store)
rng, rate, keys = random.Random(int(seed)), float(rate), int(keys)
log = os.open(acks, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
due = time.monotonic()
for version in itertools.count(1):
    due += rng.expovariate(rate)
    pause = due - time.monotonic()
    if pause > 0:
        time.sleep(pause)
    key = rng.randrange(keys)
    cache.put(key, version)
    os.write(log, f"{key} {version} {time.monotonic()}\\n".encode())  # acknowledged
    if behind:
        cache.tick()
"""


@dataclass(frozen=True)
class CrashResult:
    """One killed writer: writes acknowledged, how many of them SQLite lacks, its write rate."""

    policy: str
    flush_interval_s: float
    acknowledged: int
    lost: int
    write_rate: float  # achieved, acknowledged writes per second


def _count_lost(db: Path, acks: Path) -> tuple[int, int, float]:
    lines = acks.read_bytes().split(b"\n")[:-1]  # a line cut by the kill has no newline
    acked = [line.split() for line in lines]
    connection = sqlite3.connect(db)  # opening rolls back a transaction the kill cut short
    stored = {int(k): v for k, v in connection.execute("SELECT key, value FROM kv")}
    connection.close()
    lost = sum(stored.get(int(key), 0) < int(version) for key, version, _ in acked)
    span = float(acked[-1][2]) - float(acked[0][2]) if len(acked) > 1 else math.nan
    return len(acked), lost, (len(acked) - 1) / span if span > 0 else math.nan


def crash_tests(specs: Sequence[Mapping[str, Any]], directory: str | Path, *,
                n_keys: int = 10_000, timeout_s: float = 20.0) -> list[CrashResult]:
    """Start one writer process per spec (policy, write_rate, flush_interval_s,
    kill_after_s, seed, and optionally min_acks), all at once; kill each with SIGKILL
    ``kill_after_s`` after its first acknowledged write, or later once it has ``min_acks``
    (a slow disk can hold a writer's fsyncs back), within ``timeout_s``; count the acknowledged
    writes SQLite does not hold."""
    directory = Path(directory)
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    jobs = []
    for i, spec in enumerate(specs):
        check_choice("policy", spec["policy"], POLICIES)
        check_positive("kill_after_s", spec["kill_after_s"])
        db, acks = directory / f"crash-{i}.sqlite", directory / f"crash-{i}.acks"
        for path in (db, acks, Path(f"{db}-journal")):
            path.unlink(missing_ok=True)
        process = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), str(acks), spec["policy"],
             str(check_positive("write_rate", spec["write_rate"])),
             str(check_positive("flush_interval_s", spec.get("flush_interval_s", 1.0))),
             str(n_keys), str(spec.get("seed", i))], env=env, cwd=root)
        jobs.append({"spec": spec, "db": db, "acks": acks, "process": process, "kill_at": None})
    deadline = time.monotonic() + timeout_s
    while any(job["process"].poll() is None for job in jobs):
        now = time.monotonic()
        for job in jobs:
            if job["process"].poll() is not None:
                continue
            if job["kill_at"] is None and job["acks"].exists() and job["acks"].stat().st_size:
                job["kill_at"] = now + job["spec"]["kill_after_s"]
            due = job["kill_at"] is not None and now >= job["kill_at"] and (
                job["acks"].read_bytes().count(b"\n") >= job["spec"].get("min_acks", 0))
            if due or now > deadline:
                job["process"].send_signal(signal.SIGKILL)
                job["process"].wait()
        time.sleep(0.002)
    results = []
    for job in jobs:
        if job["kill_at"] is None:
            raise RuntimeError(f"the writer for {job['spec']} exited before writing "
                               f"(return code {job['process'].returncode})")
        acked, lost, rate = _count_lost(job["db"], job["acks"])
        results.append(CrashResult(job["spec"]["policy"], job["spec"].get("flush_interval_s", 1.0),
                                   acked, lost, rate))
    return results
