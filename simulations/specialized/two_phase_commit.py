"""The two-phase commit study: what a hot row pays for 2PC, and what a coordinator crash adds.

Picture the wedding of the pattern's module as a queue of couples at one altar (the hot row:
every transaction updates it, and its lock admits one at a time). Each couple holds the altar
for the vows and the pronouncement: two message round trips and a few forced log writes. Now
and then the officiant faints between the vows and the pronouncement (a coordinator crash in
the in-doubt window) and the couple, and everyone queued behind them, waits until the
officiant comes round (``repair_s``) or, with Paxos Commit, until a stand-in takes over
(``takeover_s``).

- ``Scenario``, ``simulate``, ``summary``, ``sweep``: the hot row as a one-server FIFO queue
  (the toolkit's ``ServerPool``, or its fast path ``fifo_queue``: the same rows) whose service
  is the lock-hold time, stretched for the transactions whose coordinator crashed in doubt.
- Closed forms beside the model: ``in_doubt_window_s``, ``block_probability``,
  ``mean_hold_s``, ``capacity``, ``mean_commit_s`` (Pollaczek–Khinchine).
- The protocol lab: ``TwoPhaseCommitNode`` (correct, blocks when its coordinator dies),
  ``ImpatientCoordinator`` (commits on a timeout without every vote) and ``UnilateralAbort``
  (a participant that gives up after voting yes), each on ``CommitWorkload``.
- Plots: ``draw_hot_row`` (the slider figure), ``plot_theory``, ``plot_dashboard``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import simpy

from patterns.checks import check_choice, check_int, check_non_negative, check_positive
from patterns.specialized.two_phase_commit import (
    ABORT,
    COMMIT,
    PREPARED,
    Coordinator,
    Participant,
)
from simulations import plots
from simulations.experiments import sweep_scenario
from simulations.fastpath import fifo_queue
from simulations.lab import Context, Node, Request
from simulations.metrics import per_bin
from simulations.servers import ServerPool
from simulations.theory import mg1_mean_response
from simulations.workloads import PoissonArrivals

__all__ = [
    "PROTOCOLS", "ImpatientCoordinator", "Run", "Scenario", "TwoPhaseCommitNode",
    "UnilateralAbort", "block_probability", "capacity", "coordinator_transfers",
    "draw_hot_row", "in_doubt_window_s", "mean_commit_s", "mean_hold_s", "plot_dashboard",
    "plot_theory", "simulate", "sqlite_transfers", "summary", "sweep",
]

PROTOCOLS = ("2pc", "paxos-commit")


# --- the hot row: model and closed forms -----------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """Transactions that all update one row, Poisson at ``arrival_rate`` per second.

    A transaction holds the row's lock for ``work_s`` + ``round_trips`` × ``rtt_s`` +
    ``forces`` × ``force_s``: by default the update's reply, PREPARE, the vote and the
    decision (2 round trips) and three forced records (the participant's prepare and commit,
    the coordinator's decision), as in the saga lesson's ``lock_hold_s``. Each transaction's
    coordinator crashes as a Poisson process of ``failure_rate`` per second; a crash in the
    in-doubt window (the participant voted yes, the decision has not arrived: ``rtt_s`` +
    ``force_s``) keeps the lock for ``repair_s`` more under ``"2pc"`` (until the coordinator
    restarts) or for ``takeover_s`` + 2 × ``rtt_s`` under ``"paxos-commit"`` (a backup
    coordinator notices and runs one ballot). ``crashes_s``: fixed crash times instead (a
    dashboard's episode).
    """

    protocol: str = "2pc"
    arrival_rate: float = 30.0
    work_s: float = 0.001
    rtt_s: float = 0.01
    force_s: float = 0.002
    forces: int = 3
    round_trips: int = 2
    failure_rate: float = 0.01
    repair_s: float = 30.0
    takeover_s: float = 0.5
    duration_s: float = 120.0
    crashes_s: tuple[float, ...] = ()
    seed: int = 1

    def __post_init__(self) -> None:
        check_choice("Scenario.protocol", self.protocol, PROTOCOLS)
        check_positive("Scenario.arrival_rate", self.arrival_rate)
        for name in ("work_s", "rtt_s", "force_s", "failure_rate", "repair_s", "takeover_s"):
            check_non_negative(f"Scenario.{name}", getattr(self, name))
        check_int("Scenario.forces", self.forces, 0)
        check_int("Scenario.round_trips", self.round_trips, 1)
        check_positive("Scenario.duration_s", self.duration_s)
        for t in self.crashes_s:
            check_non_negative("Scenario.crashes_s", t)
        check_positive("Scenario lock hold (work_s + round_trips·rtt_s + forces·force_s)",
                       self.hold_s)

    @property
    def hold_s(self) -> float:
        """The lock hold of a transaction nobody crashed on."""
        return self.work_s + self.round_trips * self.rtt_s + self.forces * self.force_s

    @property
    def window_s(self) -> float:
        return in_doubt_window_s(self.rtt_s, self.force_s)

    @property
    def blocked_s(self) -> float:
        """How much longer a transaction whose coordinator crashed in doubt holds the lock."""
        return self.repair_s if self.protocol == "2pc" else self.takeover_s + 2 * self.rtt_s


def in_doubt_window_s(rtt_s: float, force_s: float) -> float:
    """From the participant's yes vote to the decision's arrival: the vote's trip, the
    coordinator's forced decision record and the decision's trip (one RTT and one force)."""
    return rtt_s + force_s


def block_probability(failure_rate: float, window_s: float) -> float:
    """P(a Poisson(failure_rate) coordinator crash falls in a window of ``window_s``):
    1 − e^(−f·W)."""
    return -math.expm1(-check_non_negative("failure_rate", failure_rate)
                       * check_non_negative("window_s", window_s))


def mean_hold_s(sc: Scenario) -> float:
    """E[S] = T_hold + p·B: the mean lock hold with in-doubt crashes."""
    return sc.hold_s + block_probability(sc.failure_rate, sc.window_s) * sc.blocked_s


def capacity(sc: Scenario) -> float:
    """Most commits per second through the row: 1 / E[S] (1/T_hold with no crashes)."""
    return 1.0 / mean_hold_s(sc)


def mean_commit_s(sc: Scenario) -> float:
    """Mean time from arrival to commit, M/G/1 (Pollaczek–Khinchine) with the two-point
    service T_hold or T_hold + B: E[S²] = T² + p(2TB + B²). Needs λ·E[S] < 1."""
    p, t, b = block_probability(sc.failure_rate, sc.window_s), sc.hold_s, sc.blocked_s
    mean = t + p * b
    second = t * t + p * (2 * t * b + b * b)
    return mg1_mean_response(sc.arrival_rate, mean, second / mean**2 - 1)


@dataclass(frozen=True)
class Run:
    """One run: the lock's rows (``table``: arrival, start, end per transaction) and which
    transactions were blocked."""

    scenario: Scenario
    table: Any
    blocked: np.ndarray


def _services(sc: Scenario, rng: np.random.Generator, n: int) -> np.ndarray:
    blocked = rng.random(n) < block_probability(sc.failure_rate, sc.window_s)
    return sc.hold_s + blocked * sc.blocked_s


def simulate(sc: Scenario, rng: np.random.Generator | None = None,
             engine: str = "fast") -> Run:
    """Run the hot row; ``engine`` "fast" (``fifo_queue``) or "simpy" (``ServerPool``) give
    the same rows for random crashes; fixed ``crashes_s`` need "simpy"."""
    check_choice("engine", engine, ("fast", "simpy"))
    rng = np.random.default_rng(sc.seed) if rng is None else rng
    arrival = PoissonArrivals(sc.arrival_rate).times(rng, horizon=sc.duration_s)
    services = _services(sc, rng, len(arrival))
    if sc.crashes_s:
        services = np.full(len(arrival), sc.hold_s)
        engine = "simpy"
    if engine == "fast":
        table = fifo_queue(arrival, services, 1)
        return Run(sc, table, services > sc.hold_s)
    env = simpy.Environment()
    crashes = sorted(sc.crashes_s)
    blocked = np.zeros(len(arrival), dtype=bool)

    def hold(row: int, _cls: int):
        extra = 0.0
        if crashes:  # a crash inside this transaction's in-doubt window
            doubt = env.now + sc.hold_s - sc.window_s
            if any(doubt <= c < doubt + sc.window_s for c in crashes):
                extra, blocked[row] = sc.blocked_s, True
        yield env.timeout(services[row] + extra)

    lock = ServerPool(env, 1, hold)

    def source():
        for row, t in enumerate(arrival):
            yield env.timeout(t - env.now)
            lock.submit(row)

    env.process(source())
    env.run()
    return Run(sc, lock.log.table(), blocked if crashes else services > sc.hold_s)


def summary(run: Run, warmup_s: float | None = None) -> dict[str, float]:
    """Commits per second (locks released in the window), mean and p99 time to commit, the
    share of transactions blocked and the lock-seconds spent blocked per hour."""
    sc, table = run.scenario, run.table
    start = 0.1 * sc.duration_s if warmup_s is None else warmup_s
    span = sc.duration_s - start
    done = (table.end >= start) & (table.end < sc.duration_s)
    arrived = (table.arrival >= start) & (table.arrival < sc.duration_s)
    latency = table.latency[arrived & np.isfinite(table.latency)]
    return {
        "throughput": float(done.sum() / span),
        "mean_commit_s": float(latency.mean()) if len(latency) else math.nan,
        "p99_commit_s": float(np.percentile(latency, 99)) if len(latency) else math.nan,
        "blocked_share": float(run.blocked.mean()) if len(run.blocked) else 0.0,
        "blocked_s_per_hour": float(run.blocked[done].sum() * sc.blocked_s / span * 3600),
    }


def sweep(base: Scenario, replications: int = 3, **grid: Sequence[Any]) -> list[dict[str, Any]]:
    """``summary`` over every combination of ``grid`` (Scenario fields), with 95 % intervals;
    every setting sees the same arrivals (common random numbers)."""
    return sweep_scenario(simulate, summary, base, grid,
                          settings=[f for f in Scenario.__dataclass_fields__ if f != "seed"],
                          metrics=["throughput", "mean_commit_s", "p99_commit_s",
                                   "blocked_share", "blocked_s_per_hour"],
                          replications=replications)


# --- plots -----------------------------------------------------------------------------------


def plot_theory(rows: Sequence[dict[str, Any]], base: Scenario, ax: Any = None) -> Any:
    """Saturated throughput against coordinator failure rate: simulation (95 % bars) beside
    1/E[S], one line per protocol."""
    ax = plots.new_axes(ax)
    for color, protocol in zip(plots.COLORS, PROTOCOLS, strict=False):
        mine = [r for r in rows if r["protocol"] == protocol]
        if not mine:
            continue
        x = np.array([r["failure_rate"] for r in mine]) * 60
        ax.errorbar(x, [r["throughput"] for r in mine],
                    yerr=[r["throughput_ci"] for r in mine], fmt="o", color=color,
                    capsize=3, label=f"{protocol}: simulated (95 % CI)")
        fine = np.linspace(0, max(x), 60)
        ax.plot(fine, [capacity(replace(base, protocol=protocol, failure_rate=f / 60))
                       for f in fine], color=color, label=f"{protocol}: 1/E[S]")
    ax.set(xlabel="coordinator crashes per minute", ylabel="commits per second",
           title="Hot-row throughput at saturation")
    ax.legend()
    return ax


def draw_hot_row(crashes_per_min: float = 2.0, repair_s: float = 30.0,
                 takeover_s: float = 0.5, rtt_ms: float = 10.0, force_ms: float = 2.0):
    """The slider figure, both protocols: throughput at saturation (left) and mean time to
    commit at 60 % of the crash-free capacity (right) against the crash rate, theory lines
    (1/E[S]; Pollaczek–Khinchine, left out where the row is overloaded) and a 120 s
    simulation at the chosen rate."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    rates = np.linspace(0.0, 10.0, 21)
    for color, protocol in zip(plots.COLORS, PROTOCOLS, strict=False):
        base = Scenario(protocol=protocol, rtt_s=rtt_ms / 1000, force_s=force_ms / 1000,
                        repair_s=repair_s, takeover_s=takeover_s, duration_s=120.0)
        sat = replace(base, arrival_rate=2 / base.hold_s)
        load = replace(base, arrival_rate=0.6 / base.hold_s)
        left.plot(rates, [capacity(replace(sat, failure_rate=r / 60)) for r in rates],
                  color=color, label=f"{protocol}: theory")
        right.plot(rates, [_stable_commit_s(replace(load, failure_rate=r / 60)) for r in rates],
                   color=color)
        here = {"failure_rate": crashes_per_min / 60}
        left.plot([crashes_per_min], [summary(simulate(replace(sat, **here)))["throughput"]],
                  "o", color=color, label=f"{protocol}: simulated")
        right.plot([crashes_per_min],
                   [max(summary(simulate(replace(load, **here)))["mean_commit_s"], 1e-3)],
                   "o", color=color)
    for ax in (left, right):
        ax.axvline(crashes_per_min, color="0.6", linestyle=":")
    left.legend(fontsize=7)
    left.set(xlabel="coordinator crashes per minute", ylabel="commits per second",
             title="Saturated hot row")
    right.set(xlabel="coordinator crashes per minute", ylabel="mean time to commit (s)",
              title="At 60 % of the crash-free capacity")
    plots.log_scale(right)
    return fig


def _stable_commit_s(sc: Scenario) -> float:
    """``mean_commit_s``, or NaN where the row is overloaded (λ·E[S] ≥ 1: no steady state)."""
    return mean_commit_s(sc) if sc.arrival_rate * mean_hold_s(sc) < 1 else math.nan


def plot_dashboard(runs: dict[str, Run], bin_s: float = 2.0) -> list:
    """Commits per second, p99 time to commit and transactions at the row over time, one
    curve per run (same arrivals, same crash), the first run's crashes shaded."""
    first = next(iter(runs.values())).scenario
    edges = np.arange(0.0, first.duration_s + bin_s / 2, bin_s)
    panels: dict[str, dict[str, np.ndarray]] = {
        "commits per second": {}, "p99 time to commit (s)": {}, "transactions at the row": {}}
    for name, run in runs.items():
        table = run.table
        mids, p99 = per_bin(table.arrival, table.latency, bin_s, 0.0, first.duration_s,
                            lambda v: float(np.percentile(v, 99)))
        panels["commits per second"][name] = np.histogram(table.end, edges)[0] / bin_s
        panels["p99 time to commit (s)"][name] = p99
        panels["transactions at the row"][name] = np.array(
            [np.sum((table.arrival <= t) & (table.end > t)) for t in mids])
    windows = [(c, c + first.blocked_s) for c in first.crashes_s]
    return plots.dashboard(mids, panels, windows=windows,
                           window_label="coordinator down (2PC)")


# --- the protocol lab ------------------------------------------------------------------------


class TwoPhaseCommitNode(Node):
    """``n1`` coordinates (the pattern's ``Coordinator``), the others take part
    (``Participant``); both logs live in ``ctx.disk``. A prepared participant asks the
    coordinator for the outcome every ``retry_s`` until it hears it: a dead coordinator
    leaves it blocked, which is safe."""

    vote_timeout_s = 0.2
    retry_s = 0.1

    def on_start(self, ctx: Context) -> None:
        log = ctx.disk.setdefault("log", {})
        if ctx.node_id == ctx.nodes[0]:
            self.coordinator = Coordinator(ctx.peers, self.vote_timeout_s, lambda: ctx.now, log)
            self.waiting: dict[Hashable, Request] = {}
        else:
            self.participant = Participant(ctx.node_id, log)
            for txn in self.participant.uncertain():
                ctx.set_timer(self.retry_s, ("ask", txn))

    def on_request(self, ctx: Context, request: Request) -> None:
        if request.f == "read":
            ctx.reply(request, frozenset(ctx.disk["log"].items()))
            return
        self.waiting[request.key] = request
        for participant in self.coordinator.begin(request.key):
            ctx.send(participant, ("prepare", request.key, request.value))
        ctx.set_timer(self.vote_timeout_s, ("timeout", request.key))

    def on_message(self, ctx: Context, src: str, message: tuple) -> None:
        kind, txn, arg = message
        if kind == "prepare":
            new = txn not in self.participant.log
            yes = self.participant.prepare(txn, ctx.node_id not in arg)
            ctx.send(src, ("vote", txn, yes))
            if new and yes:
                ctx.set_timer(self.retry_s, ("ask", txn))
        elif kind == "decision":
            if self.participant.log.get(txn) in (None, PREPARED):
                self.participant.learn(txn, arg)
        elif kind == "vote":
            self._announce(ctx, txn, self.coordinator.vote(txn, src, arg))
        elif kind == "ask":
            decision = self.coordinator.status(txn)
            if decision is not None:
                ctx.send(src, ("decision", txn, decision))

    def on_timer(self, ctx: Context, name: tuple) -> None:
        kind, txn = name
        if kind == "timeout":
            for late, decision in self.coordinator.expired():
                self._announce(ctx, late, decision)
        elif self.participant.log.get(txn) == PREPARED:
            ctx.send(ctx.nodes[0], ("ask", txn, None))
            ctx.set_timer(self.retry_s, name)

    def _announce(self, ctx: Context, txn: Hashable, decision: str | None) -> None:
        if decision is None:
            return
        for participant in self.coordinator.participants:
            ctx.send(participant, ("decision", txn, decision))
        request = self.waiting.pop(txn, None)
        if request is not None and decision == COMMIT:
            ctx.reply(request, "commit")
        elif request is not None:
            ctx.fail(request)


class ImpatientCoordinator(TwoPhaseCommitNode):
    """Broken: when the vote timeout rings, it commits unless a no arrived, counting a
    missing vote as a yes."""

    def on_timer(self, ctx: Context, name: tuple) -> None:
        kind, txn = name
        if kind == "timeout" and txn in self.coordinator.pending:
            self._announce(ctx, txn, self.coordinator.decide(txn, COMMIT))
        else:
            super().on_timer(ctx, name)


class UnilateralAbort(TwoPhaseCommitNode):
    """Broken: a participant that voted yes and has not heard the outcome within
    ``retry_s`` aborts on its own instead of asking."""

    def on_timer(self, ctx: Context, name: tuple) -> None:
        kind, txn = name
        if kind == "ask" and self.participant.log.get(txn) == PREPARED:
            self.participant.log[txn] = ABORT
        else:
            super().on_timer(ctx, name)


# --- a real part: SQLite's commit across ATTACHed database files ------------------------------


def sqlite_transfers(folder: str, amounts: Sequence[int], start: int = 100,
                     cap: int = 150) -> list[str]:
    """Move each amount from ``a.db`` to ``b.db`` (two files, one connection, ``ATTACH``) in
    one transaction; a ``CHECK`` in each file is that file's vote (a never below 0, b never
    above ``cap``). Returns "committed" or "aborted" per transfer; SQLite commits the two files
    atomically through its super-journal (rollback-journal mode)."""
    import os
    import sqlite3

    a, b = os.path.join(folder, "a.db"), os.path.join(folder, "b.db")
    db = sqlite3.connect(a, isolation_level=None)
    try:
        db.execute("ATTACH DATABASE ? AS b", (b,))
        db.execute("CREATE TABLE main.acct(balance INTEGER CHECK (balance >= 0))")
        db.execute(f"CREATE TABLE b.acct(balance INTEGER CHECK (balance <= {int(cap)}))")
        db.execute("INSERT INTO main.acct VALUES (?)", (start,))
        db.execute("INSERT INTO b.acct VALUES (?)", (start,))
        outcomes = []
        for amount in amounts:
            db.execute("BEGIN")
            try:
                db.execute("UPDATE main.acct SET balance = balance - ?", (amount,))
                db.execute("UPDATE b.acct SET balance = balance + ?", (amount,))
                db.execute("COMMIT")
                outcomes.append(COMMIT)
            except sqlite3.IntegrityError:
                db.execute("ROLLBACK")
                outcomes.append(ABORT)
        return outcomes
    finally:
        db.close()


def coordinator_transfers(amounts: Sequence[int], start: int = 100, cap: int = 150) -> list[str]:
    """The same transfers decided by the pattern's ``Coordinator`` from the two votes."""
    balances = {"a": start, "b": start}
    outcomes = []
    for txn, amount in enumerate(amounts):
        coordinator = Coordinator(("a", "b"), vote_timeout_s=1.0, clock=lambda: 0.0)
        coordinator.begin(txn)
        decision = (coordinator.vote(txn, "a", balances["a"] - amount >= 0)
                    or coordinator.vote(txn, "b", balances["b"] + amount <= cap))
        if decision == COMMIT:
            balances["a"] -= amount
            balances["b"] += amount
        outcomes.append(decision)
    return outcomes
