"""The distributed-system-model study: register designs run on the protocol lab's faulty
network, judged by what their clients saw, and what each design costs.

Picture a driving examiner testing four cars on the same closed course with the same script of
mishaps: the single-leader register (the lab's ``SingleLeaderRegister``), reads from any
replica (``ReadAnyReplica``), and synchronous and asynchronous primary-backup
(``patterns.foundations.distributed_system_model``). The same seed gives every design the
same clients and the same faults, so differences in the checker's verdict, in latency and in
messages per operation come from the design alone.

The closed forms beside the simulation (``expected_messages_per_op``, ``expected_latency_s``)
count the messages and the one-way link delays each design's operation needs; the lesson's
tests hold the simulation to them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from functools import cache
from typing import TYPE_CHECKING

import numpy as np

from patterns.foundations.distributed_system_model import AsyncPrimaryBackup, SyncPrimaryBackup
from simulations import plots
from simulations.lab import (
    CasRegister,
    Crash,
    Latency,
    Nemesis,
    Op,
    ReadAnyReplica,
    RegisterWorkload,
    Scenario,
    SingleLeaderRegister,
    Status,
    run,
)
from simulations.lab.checkers.linearizability import ILLEGAL

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["DESIGNS", "LINK_S", "AsyncPrimaryBackup", "SyncPrimaryBackup", "cost_table",
           "expected_latency_s", "expected_messages_per_op", "failover_delay_s",
           "failover_scenario", "first_failing_seed", "is_sequentially_consistent", "len_ops",
           "over_time", "plot_cost", "plot_over_time", "quiet_scenario", "tuned", "verdicts"]

LINK_S = 0.005  # mean one-way delay of every link (exponential), as the lab's default
DESIGNS = {"single leader": SingleLeaderRegister, "read any replica": ReadAnyReplica,
           "sync primary-backup": SyncPrimaryBackup, "async primary-backup": AsyncPrimaryBackup}


def quiet_scenario(nodes: int = 3, n_ops: int = 400, rate: float = 50.0,
                   read: float = 0.5) -> Scenario:
    """No faults, one register, reads and writes only (no compare-and-set), links of mean
    ``LINK_S``: the setting of the cost comparison and its closed forms."""
    workload = RegisterWorkload(n_ops=n_ops, rate=rate, read=read, write=1 - read, cas=0.0)
    return Scenario(nodes=nodes, workload=workload, latency=(Latency(LINK_S),))


def failover_scenario(crash_s: float = 2.08, n_ops: int = 400) -> Scenario:
    """Three nodes, the primary ``n1`` crashing for good at ``crash_s``."""
    return Scenario(nodes=3, workload=RegisterWorkload(n_ops=n_ops, rate=100.0),
                    nemesis=Nemesis((Crash("n1", crash_s),)), latency=(Latency(LINK_S),))


def verdicts(node_class: type, scenario: Scenario, seeds: Iterable[int]) -> dict[int, bool]:
    """Seed -> did the linearizability checker pass the run?"""
    return {seed: run(node_class, scenario, seed).check().valid for seed in seeds}


def first_failing_seed(node_class: type, scenario: Scenario, seeds: Iterable[int]) -> int | None:
    """The first seed whose run the checker fails, or None."""
    return next((s for s in seeds if not run(node_class, scenario, s).check().valid), None)


@cache
def _cost_row(name: str, nodes: int, read: float, seed: int) -> dict:
    lab_run = run(DESIGNS[name], quiet_scenario(nodes, read=read), seed)
    p = lab_run.performance()
    ok = lab_run.history.where(status=Status.OK)
    return {"design": name, "nodes": nodes, "read": read, "seed": seed,
            "valid": lab_run.check().valid, "messages_per_op": p["messages_per_op"],
            "latency_mean_s": float(np.mean(ok.column("latency_s"))),
            "latency_p50_s": p["latency_p50_s"], "latency_p99_s": p["latency_p99_s"],
            "duration_s": lab_run.duration_s}


def cost_table(names: Sequence[str] = tuple(DESIGNS), nodes: int = 3, read: float = 0.5,
               seeds: Sequence[int] = (0,)) -> list[dict]:
    """One row per design and seed of the quiet scenario: verdict, messages per operation,
    mean, p50 and p99 latency of the ok operations (runs are cached)."""
    return [_cost_row(name, nodes, read, seed) for name in names for seed in seeds]


def expected_messages_per_op(name: str, nodes: int, read: float, duration_s: float = 0.0,
                             n_ops: int = 1, heartbeat_s: float = 0.05,
                             ship_s: float = 0.1) -> float:
    """Messages between nodes per operation, for reads (share ``read``) and writes sent to a
    node drawn at random among ``nodes`` N, on reliable links.

    A request reaches a node other than the leader with probability (N − 1)/N and is then
    forwarded once (replies go straight to the client and are not counted). Single leader:
    (N − 1)/N. Read any replica: reads are answered locally; a write is forwarded and its new
    value copied to the N − 1 others: (1 − r)·((N − 1)/N + N − 1). Sync primary-backup: every
    request is forwarded, and a write costs a copy and an acknowledgement per backup:
    (N − 1)/N + (1 − r)·2(N − 1), plus heartbeats, N(N − 1) every ``heartbeat_s``, spread over
    the run's ``n_ops`` operations in ``duration_s``. Async primary-backup: forwards, one batch
    to each backup per ``ship_s`` (an upper bound: a batch is sent only if there was a write),
    and the heartbeats.
    """
    n, share = nodes, (nodes - 1) / nodes
    beats = nodes * (nodes - 1) * (duration_s / heartbeat_s) / n_ops if duration_s else 0.0
    if name == "single leader":
        return share
    if name == "read any replica":
        return (1 - read) * (share + n - 1)
    if name == "sync primary-backup":
        return share + (1 - read) * 2 * (n - 1) + beats
    if name == "async primary-backup":
        return share + (n - 1) * (duration_s / ship_s) / n_ops + beats
    raise ValueError(f"unknown design {name!r} (allowed: {', '.join(DESIGNS)})")


def expected_latency_s(name: str, nodes: int, read: float, link_s: float = LINK_S) -> float:
    """Mean latency of an operation in one-way link delays of mean ``link_s`` (no queueing, no
    faults): client → node, a forward with probability (N − 1)/N, node → client, and for a
    synchronous write one more round trip to the backups (the slower of N − 1 exponential
    round trips: its mean is the harmonic sum below, for two exponential legs per backup
    approximated by 1.5·H(N − 1) delays; exact for the round trip's mean when N − 1 = 1)."""
    share = (nodes - 1) / nodes
    if name in ("single leader", "async primary-backup"):
        return link_s * (2 + share)
    if name == "read any replica":
        return link_s * (2 + (1 - read) * share)
    if name == "sync primary-backup":
        return link_s * (2 + share + (1 - read) * _slowest_round_trip(nodes - 1))
    raise ValueError(f"unknown design {name!r} (allowed: {', '.join(DESIGNS)})")


def _slowest_round_trip(k: int) -> float:
    """E[max of k independent sums of two Exp(1)] (a round trip of two unit-mean legs), by
    the exact formula for k = 1, 2 and a Monte Carlo value with a fixed seed beyond."""
    if k == 1:
        return 2.0
    if k == 2:
        return 2.75  # E[max(X, Y)] for X, Y ~ Gamma(2, 1): 4 − E[min] = 4 − 1.25
    draws = np.random.default_rng(0).gamma(2.0, 1.0, size=(200_000, k)).max(axis=1)
    return float(draws.mean())


def is_sequentially_consistent(ops: Sequence[Op], model: CasRegister | None = None) -> bool:
    """Is there one order of the ok operations that keeps each client's own order and that a
    single copy would have produced? Real time between clients is ignored (that is what
    separates it from linearizability). Brute force: for the small hand-made histories of the
    lesson only (at most 8 operations)."""
    model = model or CasRegister()
    done = [op for op in ops if op.status is Status.OK]
    if len(done) > 8:
        raise ValueError(f"is_sequentially_consistent is a brute force for at most 8 "
                         f"operations (got {len(done)})")
    for order in itertools.permutations(done):
        position = {op.index: i for i, op in enumerate(order)}
        mine = all(position[a.index] < position[b.index] for a in done for b in done
                   if a.client == b.client and a.invoke_s < b.invoke_s)
        if not mine:
            continue
        state = model.initial
        for op in order:
            state = model.step(state, op)
            if state is ILLEGAL:
                break
        else:
            return True
    return False


def plot_cost(rows: Sequence[dict], ax: Axes | None = None) -> Axes:
    """Messages per operation against mean latency, one marker per design (and seed), with
    each design's closed form as an open marker."""
    ax = plots.new_axes(ax, figsize=(6.4, 3.8))
    for i, name in enumerate(dict.fromkeys(r["design"] for r in rows)):
        mine = [r for r in rows if r["design"] == name]
        color = plots.COLORS[i % len(plots.COLORS)]
        ax.plot([r["latency_mean_s"] * 1000 for r in mine], [r["messages_per_op"] for r in mine],
                "o", color=color, label=f"{name} ({'passes' if mine[0]['valid'] else 'fails'})")
        first = mine[0]
        theory_msgs = expected_messages_per_op(name, first["nodes"], first["read"],
                                               first["duration_s"], len_ops(first))
        theory_lat = expected_latency_s(name, first["nodes"], first["read"])
        ax.plot([theory_lat * 1000], [theory_msgs], "s", mfc="none", color=color)
    ax.plot([], [], "s", mfc="none", color="black", label="closed form")
    ax.set_xlabel("mean latency of an ok operation (ms)")
    ax.set_ylabel("messages between nodes per operation")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax


def len_ops(row: dict) -> int:
    """The number of operations of a cost row's run (the quiet scenario's ``n_ops``)."""
    return quiet_scenario(row["nodes"], read=row["read"]).workload.n_ops


def tuned(node_class: type, **settings: float) -> type:
    """A subclass of ``node_class`` with class settings changed, e.g.
    ``tuned(AsyncPrimaryBackup, ship_s=0.02)``; its name says which."""
    label = "_".join(f"{k}{v:g}".replace(".", "p") for k, v in sorted(settings.items()))
    return type(f"{node_class.__name__}_{label}", (node_class,), dict(settings))


def over_time(lab_run, bin_s: float = 0.25) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per time bin of a run: operations invoked that ended ok and unknown (per second), and
    messages between nodes sent (per second): the monitoring view of a failover."""
    end = lab_run.duration_s
    edges = np.arange(0.0, end + bin_s, bin_s)
    history, journal = lab_run.history, lab_run.journal
    invoke = history.column("invoke_s")
    status = np.array([op.status.value for op in history])
    between = journal.between_nodes(lab_run.nodes)
    series = {
        "ok operations / s": np.histogram(invoke[status == "ok"], edges)[0] / bin_s,
        "unknown (timed out) / s": np.histogram(invoke[status == "unknown"], edges)[0] / bin_s,
        "messages between nodes / s": np.histogram(journal.sent_s[between], edges)[0] / bin_s,
    }
    return edges[:-1] + bin_s / 2, series


def plot_over_time(lab_run, bin_s: float = 0.25, axes=None):
    """``over_time`` as a small dashboard: operations per second and messages per second, the
    nemesis's faults shaded."""
    import matplotlib.pyplot as plt

    times, series = over_time(lab_run, bin_s)
    if axes is None:
        _, axes = plt.subplots(2, 1, figsize=(7.0, 4.6), sharex=True)
    spans = [(a, lab_run.duration_s if b is None else b) for a, b, _ in lab_run.nemesis.spans()]
    ops = {k: v for k, v in series.items() if "operations" in k or "unknown" in k}
    plots.time_series(times, ops, ylabel="operations / s", windows=spans,
                      window_label="primary down", ax=axes[0])
    plots.time_series(times, {"messages between nodes / s":
                              series["messages between nodes / s"]},
                      ylabel="messages / s", windows=spans, window_label="primary down",
                      ax=axes[1])
    axes[0].set_xlabel("")
    return axes


def failover_delay_s(lab_run, crash_s: float, successor: str = "n2") -> float:
    """Seconds from the primary's crash until the ``successor`` takes over: it suspects the
    primary ``suspect_after_s`` (the node class's setting) after the last message it heard
    from it, and until then forwards every request to the dead node."""
    j = lab_run.journal
    heard = (j.src == "n1") & (j.dst == successor) & (j.fate == "delivered")
    last = float(j.arrived_s[heard].max()) if heard.any() else 0.0
    return last + lab_run.node_class.suspect_after_s - crash_s
