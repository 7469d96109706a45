"""The event-sourcing study: how often to snapshot, when every reload replays the tail.

Picture the bank clerk of the pattern's module, now with a stopwatch. Deposits arrive all day
(λ per second) and each adds a line to the ledger. Now and then (f per second) the clerk's
working copy of the balance is lost: the branch restarts, the account is moved to another
desk, the cache forgets it. Then the balance must be rebuilt: read the last margin total and
add every line below it, c_r seconds a line. Writing a margin total costs c_s seconds. Write
one every S lines: the totals cost λ·c_s/S seconds per second, and each rebuild adds up about
S/2 lines, f·c_r·S/2 seconds per second. Too few totals and rebuilds are slow; too many and the
clerk does little else. The best S balances the two: S* = √(2λc_s/(f c_r)), the snapshot form
of Young's checkpoint interval √(2·C·M) (J. W. Young, CACM 17(9), 1974).

This module holds that closed form (`overhead_rate`, `optimal_snapshot_interval`,
`young_interval_s`, the recovery-time mean and quantile) and the SimPy model that checks it:
the single writer of one account is a toolkit ``ServerPool`` with one server and two classes
of work (reloads first, then commands), fed by two ``RequestSource`` streams of Poisson
arrivals; inside it the pattern's own `EventSourcedRepository` appends, snapshots and loads,
on the simulation's clock. A reload's duration is the replay cost of exactly the events that
``load`` replayed; snapshots are written by the writer itself or, with
``background_snapshots``, by a second one-server pool (a snapshotter thread).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from itertools import count
from pathlib import Path
from typing import Any

import numpy as np
import simpy

from patterns.checks import check_choice, check_int, check_positive, check_probability
from patterns.distributed_data.event_sourcing_snapshots import (
    Account,
    EventSourcedRepository,
    apply,
)
from simulations.clients import RequestSource
from simulations.distributions import Distribution, LogNormal
from simulations.experiments import sweep_scenario
from simulations.faults import FaultSchedule, FaultWindow
from simulations.metrics import latency_percentiles, per_bin, percentile_of
from simulations.records import RequestLog, RequestTable
from simulations.servers import ServerPool
from simulations.workloads import PoissonArrivals

__all__ = [
    "EventSourcedRepository", "Run", "Scenario", "best_snapshot_interval", "draw_tradeoff",
    "events_since_snapshot", "kill_during_snapshot", "mean_recovery_s",
    "optimal_snapshot_interval", "overhead_rate", "plot_dashboard", "plot_sweep",
    "recovery_quantile_s", "replay_overhead", "simulate", "snapshot_overhead", "summary",
    "sweep", "timeline", "young_interval_s",
]

RELOAD, COMMAND = 0, 1  # the writer's two classes of work; reloads go first
STREAM = "account-1"

# ---------------------------------------------------------------- theory


def young_interval_s(checkpoint_cost_s: float, mtbf_s: float) -> float:
    """Young's first-order optimum checkpoint interval, T_opt ≈ √(2·C·M) (Young 1974).

    Assumptions: failures are a Poisson process with mean time between failures M, a failure
    loses the work done since the last checkpoint, a checkpoint costs C, and C ≪ M (the
    first-order approximation drops terms of higher order in T/M).
    """
    return math.sqrt(2 * check_positive("checkpoint_cost_s", checkpoint_cost_s)
                     * check_positive("mtbf_s", mtbf_s))


def snapshot_overhead(snapshot_every: int, arrival_rate: float, snapshot_s: float) -> float:
    """Seconds per second spent writing snapshots: λ·c_s / S (one snapshot every S events)."""
    return (check_positive("arrival_rate", arrival_rate) * check_positive("snapshot_s", snapshot_s)
            / check_int("snapshot_every", snapshot_every, low=1))


def replay_overhead(snapshot_every: int, recovery_rate: float, replay_s: float) -> float:
    """Seconds per second spent replaying on reloads: f·c_r·(S − 1)/2.

    A reload that arrives at a random time finds N events since the last snapshot, N uniform on
    {0, ..., S − 1} (the count since the last snapshot steps through 0 ... S − 1 and spends the
    same mean time 1/λ at each when events are a Poisson stream), so E[N] = (S − 1)/2 and each
    event costs c_r on average (Wald's identity covers a random cost per event).
    """
    s = check_int("snapshot_every", snapshot_every, low=1)
    return check_positive("recovery_rate", recovery_rate) * check_positive(
        "replay_s", replay_s) * (s - 1) / 2


def overhead_rate(snapshot_every: int, arrival_rate: float, snapshot_s: float,
                  recovery_rate: float, replay_s: float) -> float:
    """Total cost per unit time, C(S) = λ·c_s/S + f·c_r·(S − 1)/2 (seconds of work per second).

    Assumptions: events arrive as a Poisson stream at rate λ; a snapshot is written after every
    S-th event at cost c_s; reloads come as an independent Poisson stream at rate f, each
    replaying the events since the last snapshot at c_r per event on average; nothing else is
    lost (a reload never lands inside a snapshot write). The continuous form λc_s/S + f·c_r·S/2
    differs by the constant f·c_r/2 only, so both have the same minimiser.
    """
    return (snapshot_overhead(snapshot_every, arrival_rate, snapshot_s)
            + replay_overhead(snapshot_every, recovery_rate, replay_s))


def optimal_snapshot_interval(arrival_rate: float, snapshot_s: float, recovery_rate: float,
                              replay_s: float) -> float:
    """S* = √(2λc_s/(f c_r)): where dC/dS = −λc_s/S² + f·c_r/2 vanishes.

    It is Young's √(2·C·M) in events: with C = c_s, M = 1/f and work lost at λ·c_r seconds of
    replay per second since the last snapshot, the best interval in time is
    T* = √(2c_s/(f·λ·c_r)), and S* = λ·T*.
    """
    lam = check_positive("arrival_rate", arrival_rate)
    return math.sqrt(2 * lam * check_positive("snapshot_s", snapshot_s)
                     / (check_positive("recovery_rate", recovery_rate)
                        * check_positive("replay_s", replay_s)))


def best_snapshot_interval(arrival_rate: float, snapshot_s: float, recovery_rate: float,
                           replay_s: float) -> int:
    """The whole number of events S ≥ 1 that minimises `overhead_rate`: ⌊S*⌋ or ⌈S*⌉ (C(S)
    is convex in S)."""
    star = optimal_snapshot_interval(arrival_rate, snapshot_s, recovery_rate, replay_s)
    candidates = {max(1, math.floor(star)), max(1, math.ceil(star))}
    return min(sorted(candidates), key=lambda s: overhead_rate(
        s, arrival_rate, snapshot_s, recovery_rate, replay_s))


def mean_recovery_s(snapshot_every: int, replay_s: float) -> float:
    """Mean replay time of one reload, c_r·(S − 1)/2 (N uniform on {0, ..., S − 1})."""
    return check_positive("replay_s", replay_s) * (check_int("snapshot_every", snapshot_every,
                                                             low=1) - 1) / 2


def recovery_quantile_s(snapshot_every: int, replay_s: float, quantile: float) -> float:
    """The q-quantile of a reload's replay time when each event costs exactly c_r:
    c_r·(⌈q·S⌉ − 1), the q-quantile of N uniform on {0, ..., S − 1}. A random cost per event
    spreads it a little (by about c_r·cv·√N)."""
    s = check_int("snapshot_every", snapshot_every, low=1)
    q = check_probability("quantile", quantile)
    return check_positive("replay_s", replay_s) * max(math.ceil(q * s - 1e-9) - 1, 0)


# ---------------------------------------------------------------- the SimPy study


@dataclass(frozen=True)
class Scenario:
    """One account's single writer: commands at λ, reloads at f, a snapshot every S events."""

    arrival_rate: float = 50.0  # commands (each appends one event) per second, λ
    recovery_rate: float = 2.0  # reloads from the store per second, f (restarts, evictions)
    replay_s: Distribution = field(default_factory=lambda: LogNormal(0.0004, 0.25))  # c_r
    snapshot_s: float = 0.02  # time to write one snapshot, c_s
    apply_s: float = 0.004  # the writer's own work per command
    snapshot_every: int | None = 50  # S; None: no snapshots, every reload replays it all
    background_snapshots: bool = False  # a second worker writes snapshots, off the command path
    snapshot_outage: FaultWindow | None = None  # snapshot writes fail inside this window
    duration_s: float = 40.0
    seed: int = 1

    def __post_init__(self) -> None:
        check_positive("arrival_rate", self.arrival_rate)
        check_positive("recovery_rate", self.recovery_rate)
        check_positive("snapshot_s", self.snapshot_s)
        check_positive("apply_s", self.apply_s)
        if self.snapshot_every is not None:
            check_int("snapshot_every", self.snapshot_every, low=1)
        check_positive("duration_s", self.duration_s)


@dataclass(frozen=True, eq=False)
class Run:
    """What one run left behind: the writer's rows (class 0 reloads, class 1 commands), the
    events each reload replayed (by reload, in order of arrival), when each event was appended,
    the snapshots stored (time, version) and the time spent writing snapshots."""

    scenario: Scenario
    requests: RequestTable
    replayed: np.ndarray
    appended_at: np.ndarray  # index v - 1: when version v was appended
    snapshots: np.ndarray  # shape (k, 2): time stored, version
    snapshot_work_s: float
    failed_snapshots: int

    @property
    def reloads(self) -> RequestTable:
        return self.requests.select(self.requests.cls == RELOAD)

    @property
    def commands(self) -> RequestTable:
        return self.requests.select(self.requests.cls == COMMAND)


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """Run the scenario with SimPy; deterministic for a given ``scenario.seed`` (or ``rng``).

    Command and reload arrival times and the replay cost of every event (a property of the
    event, e.g. its size) are drawn up front, so runs that differ only in S or in where
    snapshots are written see exactly the same traffic. The writer is one server: a reload
    waits for the command in progress, then goes before the queued commands.
    """
    s = scenario
    rng = np.random.default_rng(s.seed) if rng is None else rng
    env = simpy.Environment()
    repo = EventSourcedRepository(s.snapshot_every, clock=lambda: env.now)
    repo.execute(STREAM, "opened")  # version 1 at t = 0
    reload_ids = count()
    commands = RequestSource(env, PoissonArrivals(s.arrival_rate),
                             lambda _k, _c: writer.submit(-1, COMMAND), rng,
                             horizon_s=s.duration_s)
    reloads = RequestSource(env, PoissonArrivals(s.recovery_rate),
                            lambda _k, _c: writer.submit(next(reload_ids), RELOAD), rng,
                            horizon_s=s.duration_s)
    events = len(commands.times) + 1
    # replay cost of versions a+1 ... b is cost[b] - cost[a]
    cost = np.concatenate([[0.0], np.cumsum(s.replay_s.sample(rng, events))]).tolist()
    replayed = np.full(len(reloads.times), -1, dtype=np.int64)
    appended_at = np.full(events, np.nan)
    appended_at[0] = 0.0
    stored: list[tuple[float, int]] = []
    work = {"snapshot_s": 0.0, "failed": 0}
    outage = FaultSchedule([s.snapshot_outage] if s.snapshot_outage else [])
    memory = {"state": repo.load(STREAM).state, "version": 1}  # the writer's cached aggregate
    pending: dict[int, Account] = {}  # background snapshots waiting for the snapshotter

    def write_snapshot(version: int, state: Account):
        yield env.timeout(s.snapshot_s)
        work["snapshot_s"] += s.snapshot_s
        if outage.active(env.now) is not None:
            work["failed"] += 1  # the write failed: no snapshot at this version
            return
        repo.save_snapshot(STREAM, version, state)
        stored.append((env.now, version))

    def work_on(key: int, cls: int):
        if cls == RELOAD:  # the cached state is gone: rebuild it from the store
            loaded = repo.load(STREAM)
            replayed[key] = loaded.replayed
            yield env.timeout(cost[loaded.version] - cost[loaded.snapshot_version])
            memory["state"], memory["version"] = loaded.state, loaded.version
            return
        yield env.timeout(s.apply_s)
        event = repo.append(STREAM, "deposited", 100, memory["version"])
        memory["state"], memory["version"] = apply(memory["state"], event), event.version
        appended_at[event.version - 1] = env.now
        if repo.snapshot_due(event.version):
            if s.background_snapshots:
                pending[event.version] = memory["state"]
                snapshotter.submit(event.version)
            else:
                yield from write_snapshot(event.version, memory["state"])

    def snapshot_job(version: int, _cls: int):
        yield from write_snapshot(version, pending.pop(version))

    writer = ServerPool(env, 1, work_on, discipline="priority",
                        log=RequestLog(events + len(reloads.times) + 1))
    snapshotter = ServerPool(env, 1, snapshot_job)
    env.run(until=s.duration_s)
    return Run(s, writer.log.table(), replayed, appended_at,
               np.array(stored, dtype=float).reshape(-1, 2), work["snapshot_s"], work["failed"])


# ---------------------------------------------------------------- metrics from the records


def summary(run: Run) -> dict[str, float]:
    """Headline numbers of a run: the work spent on snapshots and on replays per second of
    simulated time (``snapshot_overhead``, ``replay_overhead``, their sum ``overhead``), the
    reloads' replay times (mean, p99, max) and events replayed, command latency (p99, counting a
    command still waiting at the end as waiting until then), snapshots stored and failed."""
    s = run.scenario
    reloads, commands = run.reloads, run.commands
    done = ~np.isnan(reloads.end)
    recovery = reloads.service[done]
    waited = np.where(np.isnan(commands.end), s.duration_s - commands.arrival, commands.latency)
    replay_work = float(recovery.sum())
    return {
        "snapshot_overhead": run.snapshot_work_s / s.duration_s,
        "replay_overhead": replay_work / s.duration_s,
        "overhead": (run.snapshot_work_s + replay_work) / s.duration_s,
        "mean_recovery_s": float(recovery.mean()) if done.any() else math.nan,
        "p99_recovery_s": (latency_percentiles(recovery, [99])["latency_p99_s"]
                           if done.any() else math.nan),
        "max_recovery_s": float(recovery.max()) if done.any() else math.nan,
        "mean_replayed": float(run.replayed[run.replayed >= 0].mean()) if done.any() else math.nan,
        "p99_latency_s": latency_percentiles(waited, [99])["latency_p99_s"],
        "snapshots": len(run.snapshots),
        "failed_snapshots": run.failed_snapshots,
        "reloads": int(done.sum()),
    }


def events_since_snapshot(run: Run, times: np.ndarray) -> np.ndarray:
    """At each of ``times``, how many events a reload would replay: the stream's version then
    minus the version of the newest snapshot stored by then (the gauge to alert on)."""
    appended = run.appended_at[~np.isnan(run.appended_at)]
    version = np.searchsorted(appended, times, side="right")
    stored_t, stored_v = run.snapshots[:, 0], run.snapshots[:, 1]
    last = np.searchsorted(stored_t, times, side="right")
    snap_version = np.where(last > 0, stored_v[np.maximum(last - 1, 0)], 0)
    return version - snap_version


def timeline(run: Run, bin_s: float = 1.0) -> dict[str, np.ndarray]:
    """Per-bin metrics for a dashboard: command p99 latency (answers given in the bin), the
    longest reload replay ending in the bin, events since the last snapshot at the bin's end,
    and the writer's busy fraction spent on snapshots and replays in the bin."""
    end_s = run.scenario.duration_s
    commands, reloads = run.commands, run.reloads
    done = ~np.isnan(commands.end)
    time_s, p99 = per_bin(commands.end[done], commands.latency[done], bin_s, 0.0, end_s,
                          percentile_of(99))
    finished = ~np.isnan(reloads.end)
    _, longest = per_bin(reloads.end[finished], reloads.service[finished], bin_s, 0.0, end_s,
                         np.max)
    edges = np.minimum(np.arange(1, len(time_s) + 1) * bin_s, end_s)
    stored_per_bin = np.histogram(run.snapshots[:, 0], bins=np.r_[0.0, edges])[0]
    replay_per_bin = np.histogram(reloads.end[finished], bins=np.r_[0.0, edges],
                                  weights=reloads.service[finished])[0]
    snapshot_s = run.scenario.snapshot_s
    return {
        "time_s": time_s,
        "p99_latency_s": p99,
        "recovery_s": np.nan_to_num(longest, nan=0.0),
        "events_since_snapshot": events_since_snapshot(run, edges),
        "overhead": (stored_per_bin * snapshot_s + replay_per_bin) / bin_s,
    }


# ---------------------------------------------------------------- sweeps and plots

LABELS = {
    "overhead": "snapshot + replay work (s per s)",
    "snapshot_overhead": "snapshot work (s per s)",
    "replay_overhead": "replay work (s per s)",
    "mean_recovery_s": "mean reload replay time (s)",
    "p99_recovery_s": "p99 reload replay time (s)",
    "max_recovery_s": "longest reload replay (s)",
    "mean_replayed": "events replayed per reload",
    "p99_latency_s": "p99 command latency (s)",
    "recovery_s": "longest reload replay in the second (s)",
    "events_since_snapshot": "events since the last snapshot",
    "snapshots": "snapshots written",
}
SETTINGS = {
    "snapshot_every": "snapshot interval S (events)",
    "recovery_rate": "reloads per second f",
    "arrival_rate": "events per second λ",
    "background_snapshots": "snapshots in the background",
}
SWEEP_METRICS = ("overhead", "snapshot_overhead", "replay_overhead", "mean_recovery_s",
                 "p99_recovery_s", "p99_latency_s", "mean_replayed")
TIMELINE_METRICS = ("p99_latency_s", "recovery_s", "events_since_snapshot", "overhead")


def sweep(base: Scenario, replications: int = 1, **grid: Sequence[Any]) -> list[dict[str, Any]]:
    """Run ``base`` at every combination of the settings in ``grid`` (Scenario field -> values;
    see ``SETTINGS``) with the toolkit's ``sweep`` and ``aggregate`` the `summary` of each over
    ``replications`` runs: one row per setting with each metric's mean and its 95 % interval
    half-width under ``<metric>_ci`` (NaN with one run). Every setting sees the same traffic."""
    return sweep_scenario(simulate, summary, base, grid, settings=SETTINGS, metrics=SWEEP_METRICS,
                          replications=replications)


def plot_sweep(rows: list[dict[str, Any]], x: str = "snapshot_every", by: str | None = None,
               metrics: Sequence[str] = ("overhead", "mean_recovery_s", "p99_latency_s")) -> list:
    """One panel per metric against setting ``x`` (log scale), one line per value of ``by``
    (``plots.sweep_panels``), with 95 % interval bars when the rows average replications."""
    from simulations import plots

    axes = plots.sweep_panels(
        sorted(rows, key=lambda row: (row[by] if by else 0, row[x])), x=x, by=by,
        metrics=metrics, xlabel=SETTINGS.get(x, x), ylabels={m: LABELS[m] for m in metrics},
        group_label=lambda g: f"{SETTINGS.get(by, by)} = {g}" if by else "simulation",
        panel_size=(4.0, 3.2))
    for ax in axes:
        plots.log_scale(ax, "x")
    return axes


def plot_dashboard(runs: dict[str, Run],
                   metrics: Sequence[str] = TIMELINE_METRICS, bin_s: float = 1.0) -> list:
    """Small multiples over time (``plots.dashboard``): one panel per metric of `timeline`, one
    line per run, the first run's snapshot outage shaded. The runs must share their duration."""
    from simulations import plots

    for metric in metrics:
        check_choice("metric", metric, TIMELINE_METRICS)
    series = {label: timeline(run, bin_s) for label, run in runs.items()}
    outage = next(iter(runs.values())).scenario.snapshot_outage
    return plots.dashboard(
        next(iter(series.values()))["time_s"],
        {LABELS[m]: {label: values[m] for label, values in series.items()} for m in metrics},
        windows=[(outage.start_s, outage.end_s)] if outage else [],
        window_label="snapshot writes failing",
    )


def draw_tradeoff(snapshot_every: int = 50, recovery_rate: float = 2.0, snapshot_ms: float = 20.0,
                  background: bool = False, base: Scenario | None = None) -> list:
    """The slider figure: left, the closed-form cost C(S) (snapshots + replays) against S with
    S* marked and one simulated run at the chosen S; right, that run's reload replay times
    against their closed-form distribution (c_r times a uniform count on {0, ..., S − 1})."""
    from simulations import plots

    scenario = replace(base or Scenario(duration_s=20.0), snapshot_every=snapshot_every,
                       recovery_rate=recovery_rate, snapshot_s=snapshot_ms / 1000,
                       background_snapshots=background)
    run = simulate(scenario)
    numbers = summary(run)
    lam, c_s, c_r = scenario.arrival_rate, scenario.snapshot_s, scenario.replay_s.mean
    grid = np.unique(np.geomspace(1, 1000, 40).astype(int))
    # A fixed layout: constrained layout would measure every tick label first, most of a redraw
    fig, (left, right) = plots.plt.subplots(1, 2, figsize=(9.6, 3.4), layout="none")
    fig.subplots_adjust(left=0.09, right=0.985, bottom=0.15, top=0.97, wspace=0.24)
    for ax in (left, right):
        plots.new_axes(ax)
    left.plot(grid, [overhead_rate(g, lam, c_s, recovery_rate, c_r) for g in grid],
              **plots.THEORY, label="C(S) = λc_s/S + f·c_r(S−1)/2")
    left.plot(grid, lam * c_s / grid, color=plots.COLORS[1], lw=1, label="snapshots λc_s/S")
    left.plot(grid, recovery_rate * c_r * (grid - 1) / 2, color=plots.COLORS[2], lw=1,
              label="replays f·c_r(S−1)/2")
    star = optimal_snapshot_interval(lam, c_s, recovery_rate, c_r)
    left.axvline(star, color="0.5", lw=1, ls=":", label=f"S* = {star:.0f}")
    left.plot([snapshot_every], [numbers["overhead"]], "o", color=plots.COLORS[0], ms=7,
              label=f"simulated run, S = {snapshot_every}")
    from matplotlib.ticker import FuncFormatter, NullLocator

    left.set(xscale="log", yscale="log", xlabel="snapshot interval S (events)",
             ylabel="work (s per s)", ylim=(1e-4, 10))
    for axis in (left.xaxis, left.yaxis):  # decades only, labelled as plain numbers: minor
        axis.set_minor_locator(NullLocator())  # ticks and 10ⁿ (mathtext) labels cost a third
        axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))  # of a redraw
    left.legend(fontsize="x-small")
    replays = run.reloads.service[~np.isnan(run.reloads.end)] * 1000
    ks = np.arange(snapshot_every)
    if snapshot_every <= 60:
        right.step(c_r * 1000 * ks, (ks + 1) / snapshot_every, where="post", **plots.THEORY,
                   label="closed form: c_r × uniform{0..S−1}")
    else:  # the steps are too fine to see: the line through their corners
        right.plot(c_r * 1000 * ks[[0, -1]], (ks[[0, -1]] + 1) / snapshot_every,
                   **plots.THEORY, label="closed form: c_r × uniform{0..S−1}")
    if len(replays):
        right.ecdf(replays, label=f"simulation ({len(replays)} reloads)")
    right.set(xlabel="reload replay time (ms)", ylabel="P(replay ≤ x)")
    right.legend(fontsize="x-small", loc="lower right")
    return [left, right]


_CHILD = """
import os, signal, sys
from patterns.distributed_data.event_sourcing_snapshots import SQLiteEventStore, StoreConfig
path, stream, deposits, every = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

def kill(point):  # SIGKILL: no cleanup, no rollback, no flush of anything
    os.kill(os.getpid(), signal.SIGKILL)

store = SQLiteEventStore(path, StoreConfig(snapshot_every=every), crash_hook=kill)
for _ in range(deposits):
    store.execute(stream, "deposited", 100)
"""


def kill_during_snapshot(path: str | Path, stream: str, deposits: int, snapshot_every: int,
                         timeout_s: float = 30.0) -> int:
    """Run a writer process that deposits into ``stream`` of the SQLite store at ``path`` and
    is killed with SIGKILL at its first snapshot, after the snapshot row is written and before
    the transaction commits. Returns the process's return code (−9 on Linux: killed)."""
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), stream,
         str(check_int("deposits", deposits, low=1)),
         str(check_int("snapshot_every", snapshot_every, low=1))],
        env=env, cwd=root, timeout=check_positive("timeout_s", timeout_s),
        capture_output=True, check=False)
    return done.returncode
