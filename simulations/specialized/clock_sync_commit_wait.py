"""The commit-wait study: what clock skew does to timestamp order, and what waiting it out costs.

Picture the two post offices again, now with an inspector. Letters are posted at random; each
is stamped by its office's wall clock. The inspector counts the pairs where a letter posted
later carries the smaller stamp (an ordering anomaly), first with no hold at the counter, then
with every letter held until its office is sure the stamp is in the past (commit wait), and
times how long the hold makes each customer wait.

Two views of it. The pair model (``pair_anomalies``) is numpy: Poisson events at random nodes,
one node's clock behind by δ; its closed form is ``anomaly_share``. The protocol lab runs three
register designs on three nodes with skewed clocks (``ClockSkew``), checked for linearizability:
``LocalClockRegister`` (writes stamped by the local clock, broken), ``CommitWaitRegister``
(stamped ``TT.now().latest``, held until ``TT.after``, correct while every clock is within ε)
and ``HLCRegister`` (hybrid logical clocks, no wait, but every write and write-back waits for
all replicas). All three are the quorum-consistency lesson's ``ABDRegister`` with the write's
query round replaced by a clock; reads keep ABD's majority query and write-back.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from patterns.checks import check_int, check_non_negative, check_positive
from patterns.distributed_data.quorum_consistency import ReadQuorum, Version, WriteQuorum
from patterns.specialized.clock_sync_commit_wait import (
    ClockSyncCommitWait,
    CommitWait,
    HybridLogicalClock,
    TrueTime,
)
from simulations import plots
from simulations.distributed_data.quorum_consistency import ABDRegister
from simulations.lab import ClockSkew, LabRun, Nemesis, RegisterWorkload, Scenario, Status, run
from simulations.lab.node import Context, Request
from simulations.metrics import latency_percentiles

__all__ = ["ClockSyncCommitWait", "CommitWaitRegister", "HLCRegister",
           "LocalClockRegister", "anomaly_share", "commit_wait_node", "drifting_clocks",
           "failure_rate", "inversions", "lab_scenario", "pair_anomalies", "plot_dashboard",
           "plot_failures", "plot_latency", "skewed", "summary", "sweep_epsilon",
           "write_latency_theory"]


# ---------------------------------------------------------------- the protocol lab


@dataclass
class _Write:
    request: Request
    quorum: Any = None
    version: Version | None = None
    phase: str = "stamp"


class LocalClockRegister(ABDRegister):
    """ABD with the write's query round replaced by the local clock: a write is stamped
    ``(ctx.now, writer)`` and stored at a majority at once. Broken: a node whose clock is
    behind stamps a later write below an earlier one, and last-writer-wins hides it."""

    def on_request(self, ctx: Context, request: Request) -> None:
        if request.f != "write":
            super().on_request(ctx, request)
            return
        op = self.ops[request.id] = _Write(request, ReadQuorum(self.majority(ctx)))
        self.stamp(ctx, op)

    def stamp(self, ctx: Context, op: _Write) -> None:
        self.publish(ctx, op, ctx.now)

    def publish(self, ctx: Context, op: _Write, time_s: float, *extra: Any) -> None:
        """Store the write's version at a majority (ABD's phase 2); note its stamp on disk."""
        stamp = (time_s, *extra, f"{ctx.node_id}/{op.request.id}")
        ctx.disk.setdefault("stamps", {})[op.request.id] = stamp
        self.update(ctx, op, Version(stamp, op.request.value))


class CommitWaitRegister(LocalClockRegister):
    """Spanner's rules on the lab's clocks: stamp a write ``s = TT.now().latest`` and keep it
    invisible (not sent to any replica) until ``TT.after(s)``, about 2ε later."""

    epsilon_s = 0.010

    def on_start(self, ctx: Context) -> None:
        super().on_start(ctx)
        self.gate = CommitWait(TrueTime(self.epsilon_s, lambda: ctx.now))

    def stamp(self, ctx: Context, op: _Write) -> None:
        op.version = Version((self.gate.assign(),), None)
        self.on_timer(ctx, ("commit", op.request.id))

    def on_timer(self, ctx: Context, name: tuple) -> None:
        op = self.ops[name[1]]
        s = op.version.stamp[0]
        if self.gate.truetime.after(s):
            self.publish(ctx, op, s)
        else:  # ring again when the earliest reading should be past s
            ctx.set_timer(max(self.gate.hold_s(s), 1e-6), name)


class HLCRegister(LocalClockRegister):
    """Writes stamped by a hybrid logical clock that every message carrying a version updates;
    no wait, but a write (and a read's write-back) is answered only when every replica has
    it, so every node's clock has passed its stamp before anyone can act on it."""

    write_all = True

    def on_start(self, ctx: Context) -> None:
        super().on_start(ctx)
        self.hlc = HybridLogicalClock(lambda: ctx.now)

    def stamp(self, ctx: Context, op: _Write) -> None:
        self.publish(ctx, op, *self.hlc.now())

    def on_message(self, ctx: Context, src: str, message: tuple) -> None:
        version = message[2] if message[0] == "state" else (
            message[3] if message[0] == "update" else None)
        if version is not None and math.isfinite(version.stamp[0]):
            self.hlc.update(version.stamp[:2])
        super().on_message(ctx, src, message)

    def update(self, ctx: Context, op: Any, version: Version) -> None:
        super().update(ctx, op, version)
        if self.write_all:
            op.quorum = WriteQuorum(len(ctx.nodes))


def commit_wait_node(epsilon_s: float) -> type[CommitWaitRegister]:
    """A ``CommitWaitRegister`` class with this ε (the lab takes a class)."""
    check_non_negative("epsilon_s", epsilon_s)
    return type(f"CommitWait{epsilon_s * 1e3:g}ms", (CommitWaitRegister,),
                {"epsilon_s": float(epsilon_s)})


def skewed(behind_s: float, node: str = "n3", at_s: float = 0.0) -> Nemesis:
    """One node's clock set ``behind_s`` seconds behind true time at ``at_s``."""
    check_non_negative("behind_s", behind_s)
    return Nemesis((ClockSkew(node, at_s, -behind_s),))


def drifting_clocks(seed: int, nodes: int = 3, max_skew_s: float = 0.005,
                    max_drift: float = 0.02) -> Nemesis:
    """Every node's clock set off by up to ``max_skew_s`` either way at t = 0 and drifting by
    up to ``max_drift`` (seconds per second) either way, drawn from ``seed``: at true time t,
    each clock is within ``max_skew_s + max_drift * t`` of it."""
    check_int("seed", seed, 0)
    rng = np.random.default_rng([seed, 2012])
    skews = rng.uniform(-max_skew_s, max_skew_s, nodes)
    drifts = rng.uniform(-max_drift, max_drift, nodes)
    return Nemesis(tuple(ClockSkew(f"n{i + 1}", 0.0, float(s), float(d))
                         for i, (s, d) in enumerate(zip(skews, drifts, strict=True))))


def lab_scenario(nemesis: Nemesis | None = None, n_ops: int = 300, rate: float = 100.0,
                 clients: int = 6) -> Scenario:
    """Three nodes, one register, half reads and half writes (no compare-and-set: a register
    over quorums cannot do it without consensus), 5 ms mean links."""
    return Scenario(nodes=3, workload=RegisterWorkload(n_ops=n_ops, rate=rate, clients=clients,
                                                       read=0.5, write=0.5, cas=0.0),
                    nemesis=nemesis or Nemesis())


def inversions(lab_run: LabRun) -> np.ndarray:
    """Invocation times of the acknowledged writes stamped below a write that had finished
    before they began (each such write is an ordering anomaly). The stamps are those that
    ``publish`` notes on the disks; a node that notes none has none counted."""
    stamps = {i: s for disk in lab_run.disks.values() for i, s in disk.get("stamps", {}).items()}
    writes = [op for op in lab_run.history
              if op.f == "write" and op.status is Status.OK and op.index in stamps]
    done = np.array([op.complete_s for op in writes])
    begun = np.array([op.invoke_s for op in writes])
    order = [stamps[op.index] for op in writes]
    bad = [b for j, b in enumerate(begun)
           if any(order[i] > order[j] for i in np.flatnonzero(done < b))]
    return np.array(bad, dtype=float)


def summary(lab_run: LabRun) -> dict[str, float]:
    """Write and read latency, linearizability, anomalies."""
    ok = lab_run.history.where(status=Status.OK)
    writes, reads = ok.where(f="write"), ok.where(f="read")
    w = writes.column("latency_s")
    row = {f"write_{k[8:]}": v for k, v in latency_percentiles(w, [50, 99]).items()}
    row |= {"write_mean_s": float(w.mean()) if len(w) else math.nan,
            "read_p50_s": latency_percentiles(reads.column("latency_s"), [50])["latency_p50_s"],
            "valid": float(lab_run.check().valid), "inversions": float(len(inversions(lab_run)))}
    return row


@functools.cache
def _run(node_class: type, nemesis: Nemesis, seed: int, n_ops: int) -> LabRun:
    return run(node_class, lab_scenario(nemesis, n_ops=n_ops), seed)


def sweep_epsilon(epsilons_s: Sequence[float], seeds: Sequence[int] = (1, 2, 3),
                  behind_s: float = 0.0, n_ops: int = 200) -> list[dict[str, float]]:
    """Commit-wait write latency against ε: one row per ε, means over ``seeds`` with 95 %
    t-intervals (``simulations.experiments.aggregate``)."""
    from simulations.experiments import aggregate

    rows = [{"epsilon_s": e, **summary(_run(commit_wait_node(e), skewed(behind_s), s, n_ops))}
            for e in epsilons_s for s in seeds]
    return aggregate(rows, by=["epsilon_s"], metrics=["write_mean_s", "write_p99_s", "valid"])


def write_latency_theory(epsilon_s: float, baseline_s: float) -> float:
    """Mean write latency with commit wait: the latency at ε = 0 plus the hold, 2ε.

    Assumes clocks that do not drift (the hold is 2ε of local time, so 2ε of true time) and a
    hold that delays nothing else (each write waits on its own timer, no queue)."""
    return baseline_s + 2 * epsilon_s


def failure_rate(node_class: type, behind_s: Sequence[float], seeds: Sequence[int],
                 n_ops: int = 200) -> list[dict[str, float]]:
    """Share of seeds whose history fails linearizability, per skew, with its 95 % Wilson
    score interval (``fail_low``, ``fail_high``), which stays honest at 0 and 1 of a few runs."""
    rows, z = [], 1.96
    for b in behind_s:
        fails = [not _run(node_class, skewed(b), s, n_ops).check().valid for s in seeds]
        n, p = len(fails), float(np.mean(fails))
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        rows.append({"behind_s": b, "fail_share": p, "fail_low": max(0.0, centre - half),
                     "fail_high": min(1.0, centre + half)})
    return rows


# ---------------------------------------------------------------- the pair model


def pair_anomalies(nodes: int, rate: float, behind_s: float, epsilon_s: float, events: int,
                   rng: np.random.Generator) -> float:
    """Share of consecutive event pairs that are ordering anomalies: the second began after
    the first was visible (its hold of 2ε over) yet carries the smaller stamp. Events are
    Poisson at ``rate`` at uniformly random nodes; node 0's clock is ``behind_s`` behind, the
    others exact; a stamp is the local reading plus ε."""
    check_int("nodes", nodes, 2)
    check_positive("rate", rate)
    check_non_negative("behind_s", behind_s)
    check_non_negative("epsilon_s", epsilon_s)
    gaps = rng.exponential(1 / rate, events)
    t = np.cumsum(gaps)
    where = rng.integers(0, nodes, events)
    stamp = t - behind_s * (where == 0) + epsilon_s
    ordered = np.diff(t) > 2 * epsilon_s
    return float(np.mean(ordered & (np.diff(stamp) < 0)))


def anomaly_share(nodes: int, rate: float, behind_s: float, epsilon_s: float = 0.0) -> float:
    """The pair model's closed form: a pair is an anomaly only if it goes from an exact node to
    the slow one (probability (n-1)/n²) and its gap g satisfies 2ε < g < δ; g is exponential, so
    the share is (n-1)/n² · max(0, exp(-2λε) - exp(-λδ)). Zero once 2ε ≥ δ: commit wait covers a
    skew between two clocks of up to 2ε."""
    check_int("nodes", nodes, 2)
    gap = math.exp(-2 * rate * epsilon_s) - math.exp(-rate * behind_s)
    return (nodes - 1) / nodes**2 * max(0.0, gap)


# ---------------------------------------------------------------- plots


def plot_latency(rows: Sequence[dict[str, float]], baseline_s: float):
    """Mean write latency against ε with 95 % bars, beside baseline + 2ε."""
    ax = plots.new_axes(figsize=(6.4, 3.6))
    eps = np.array([r["epsilon_s"] for r in rows]) * 1e3
    ax.errorbar(eps, [r["write_mean_s"] * 1e3 for r in rows],
                yerr=[r["write_mean_s_ci"] * 1e3 for r in rows], fmt="o", capsize=3,
                label="lab: mean write latency (95 % interval)")
    grid = np.linspace(0, eps.max(), 50)
    ax.plot(grid, [write_latency_theory(g / 1e3, baseline_s) * 1e3 for g in grid],
            **plots.THEORY, label="theory: latency at ε = 0, plus 2ε")
    ax.set(xlabel="clock uncertainty ε (ms)", ylabel="write latency (ms)")
    ax.legend(fontsize="small")
    return ax


def plot_failures(curves: dict[str, Sequence[dict[str, float]]]):
    """Share of lab runs failing linearizability against the skew, one line per design."""
    ax = plots.new_axes(figsize=(6.4, 3.6))
    for name, rows in curves.items():
        share = np.array([r["fail_share"] for r in rows])
        bars = [share - [r["fail_low"] for r in rows], [r["fail_high"] for r in rows] - share]
        ax.errorbar([r["behind_s"] * 1e3 for r in rows], share, yerr=np.clip(bars, 0, None),
                    marker="o", capsize=3, label=f"{name} (95 % Wilson interval)")
    ax.set(xlabel="one clock behind by (ms)", ylabel="share of runs not linearizable",
           ylim=(-0.05, 1.05))
    ax.legend(fontsize="small")
    return ax


def plot_dashboard(lab_run: LabRun, bin_s: float = 0.25, windows=()):
    """Write latency and ordering anomalies per time bin over one run."""
    ok = lab_run.history.where(status=Status.OK).where(f="write")
    start, lat = ok.column("invoke_s"), ok.column("latency_s")
    edges = np.arange(0.0, max(start.max(), bin_s) + bin_s, bin_s)
    which = np.digitize(start, edges) - 1
    mids = edges[:-1] + bin_s / 2
    p50 = [np.median(lat[which == b]) * 1e3 if np.any(which == b) else np.nan
           for b in range(len(mids))]
    bad = np.histogram(inversions(lab_run), edges)[0]
    rate = np.histogram(start, edges)[0] / bin_s
    return plots.dashboard(mids, {
        "write latency p50 (ms)": {"p50 write latency": p50},
        "acknowledged writes (per s)": {"writes": rate},
        "ordering anomalies (per bin)": {"write stamped below a finished one": bad},
    }, windows=windows, window_label="a clock outside ε")
