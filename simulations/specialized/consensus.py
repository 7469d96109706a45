"""The consensus study: a Raft key-value store in the protocol lab, and what a commit waits for.

Picture the club's minute book again, now with a stopwatch: an entry is decided when the
fastest majority of the books hold it, so the time to decide is the leader's own write plus
the ⌊n/2⌋-th fastest secretary's round trip, and the club keeps deciding while no more than
f of its 2f + 1 members are away.

``RaftKVNode`` runs the pattern's ``RaftLog`` (which extends the election lesson's
``RaftElection``) on a lab node: every read, write and compare-and-set is a log entry, applied
in log order to a key-value store once committed, and answered by the leader that proposed it.
``commit_latency_s`` is the order-statistic model of a commit, ``availability`` the majority
rule, and ``simulate`` draws both at once for a ``Scenario``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from patterns.checks import check_int, check_positive, check_probability
from patterns.specialized.consensus import LogVoteRequest, RaftLog
from patterns.specialized.leader_election import VoteRequest, majority
from simulations.lab import Context, Request
from simulations.lab.examples import apply_register
from simulations.specialized.leader_election import RaftElectionNode

__all__ = ["ForgetfulLogNode", "LogVoteRequest", "RaftKVNode", "RaftLog", "Scenario",
           "availability", "bench_replay", "busiest_node_messages_per_op", "commit_latency_s",
           "expected_commit_latency_s", "kv_timeline", "leader_by_replies", "pysyncobj_replay",
           "simulate"]


class RaftKVNode(RaftElectionNode):
    """A replicated key-value store: ``term``, ``voted_for`` and the ``log`` in ``ctx.disk``;
    the store itself is rebuilt from the log after a restart. Followers forward requests to
    the leader they know; a node that knows none refuses (nothing was proposed)."""

    election_class = RaftLog
    flush_s: float | None = 0.0  # replicate a proposal at once (0), after a batching window,
    # or only with the next heartbeat (None)

    def on_start(self, ctx: Context) -> None:
        self.kv: dict = {}
        self.answers: dict[int, tuple[bool, Any]] = {}
        self.waiting: dict[int, Request] = {}
        self.flushing = False
        super().on_start(ctx)

    def on_request(self, ctx: Context, request: Request) -> None:
        raft = self.election
        if raft.role == "leader":
            self.waiting[raft.propose(request)] = request
            if self.flush_s == 0:
                self.flush(ctx)
            elif self.flush_s is not None and not self.flushing:
                self.flushing = True
                ctx.set_timer(self.flush_s, "flush")
            self.send(ctx, [])
        elif raft.leader not in (None, ctx.node_id):
            ctx.send(raft.leader, request)
        else:
            ctx.fail(request)

    def flush(self, ctx: Context) -> None:
        """Send every follower the entries it lacks, now."""
        raft = self.election
        if raft.role == "leader":
            for peer in raft.peers:
                if raft.next_index[peer] <= len(raft.log):
                    ctx.send(peer, raft.append_for(peer))

    def on_timer(self, ctx: Context, name: Any) -> None:
        if name == "flush":
            self.flushing = False
            self.flush(ctx)
        else:
            super().on_timer(ctx, name)

    def send(self, ctx: Context, outbox: list) -> None:
        super().send(ctx, outbox)
        for index, command in self.election.newly_committed():
            if command is None:
                continue
            if command.id not in self.answers:  # a duplicated request is applied once
                self.answers[command.id] = apply_register(self.kv, command)
            request = self.waiting.pop(index, None)
            if request is not None and request.id == command.id:
                ok, value = self.answers[command.id]
                ctx.reply(request, value) if ok else ctx.fail(request)


class _NoElectionRestriction(RaftLog):
    def log_up_to_date(self, request: VoteRequest) -> bool:
        return True


class ForgetfulLogNode(RaftKVNode):
    """Broken: grants votes without Raft's up-to-date check, so a node missing committed
    entries can win and overwrite them: acknowledged writes are lost."""

    election_class = _NoElectionRestriction


def commit_latency_s(rtts: np.ndarray, nodes: int) -> np.ndarray:
    """Per row of follower round trips (shape (..., n − 1)): the leader commits when
    ⌊n/2⌋ followers have answered, i.e. at the ⌊n/2⌋-th smallest round trip."""
    k = nodes // 2
    return np.partition(rtts, k - 1, axis=-1)[..., k - 1]


def expected_commit_latency_s(nodes: int, mean_rtt_s: float) -> float:
    """E[commit] for i.i.d. exponential follower round trips of mean ``mean_rtt_s``: the k-th
    smallest of m = n − 1 exponentials has mean Σ_{i=0}^{k−1} 1/(m − i) times the mean
    (Rényi's representation), with k = ⌊n/2⌋."""
    m, k = nodes - 1, nodes // 2
    return mean_rtt_s * sum(1.0 / (m - i) for i in range(k))


def availability(nodes: int, p_up: float) -> float:
    """P(a majority of ``nodes`` independent nodes, each up with probability ``p_up``, is up):
    the cluster tolerates f = ⌊(n − 1)/2⌋ failures."""
    need = majority(nodes)
    return float(sum(math.comb(nodes, k) * p_up**k * (1 - p_up) ** (nodes - k)
                     for k in range(need, nodes + 1)))


@dataclass(frozen=True)
class Scenario:
    """A cluster of ``nodes`` voters, each up with probability ``p_up`` at any moment,
    follower round trips exponential with mean ``mean_rtt_s``; ``trials`` draws."""

    nodes: int = 5
    p_up: float = 0.99
    mean_rtt_s: float = 0.01
    trials: int = 20_000

    def __post_init__(self) -> None:
        check_int("Scenario.nodes", self.nodes, 1)
        check_probability("Scenario.p_up", self.p_up)
        check_positive("Scenario.mean_rtt_s", self.mean_rtt_s)
        check_int("Scenario.trials", self.trials, 1)


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> dict[str, float]:
    """Monte Carlo of one commit per trial: the share of trials in which a majority is up
    (``available``) and, over those, the mean commit latency (``commit_mean_s``): the
    ⌊n/2⌋-th fastest round trip among the followers that are up."""
    sc, rng = scenario, rng if rng is not None else np.random.default_rng(1)
    up = rng.random((sc.trials, sc.nodes)) < sc.p_up
    rtts = np.where(up[:, 1:], rng.exponential(sc.mean_rtt_s, (sc.trials, sc.nodes - 1)),
                    np.inf)
    ok = up.sum(axis=1) >= majority(sc.nodes)
    if sc.nodes == 1:
        latency = np.zeros(sc.trials)
    else:
        latency = commit_latency_s(rtts, sc.nodes)
    done = latency[ok]
    return {"available": float(ok.mean()),
            "commit_mean_s": float(done.mean()) if done.size else math.nan}


def leader_by_replies(lab_run: Any, before_s: float) -> str:
    """The node that sent the last answer to a client before ``before_s``: in this store only
    the leader answers, so that is who led then."""
    journal = lab_run.journal
    rows = [i for i in range(len(journal.src)) if str(journal.dst[i]).startswith("c")
            and journal.sent_s[i] < before_s]
    return str(journal.src[max(rows, key=lambda i: journal.sent_s[i])])


def kv_timeline(lab_run: Any, bin_s: float = 0.25) -> dict[str, np.ndarray]:
    """Per time bin: the share of operations answered (ok, or a refused compare-and-set; not
    timed out) and the median latency (s) of those answered ok."""
    history = lab_run.history
    t = history.column("invoke_s")
    answered = np.array([op.status != "unknown" for op in history])
    ok = np.array([op.status == "ok" for op in history])
    latency = history.column("complete_s") - t
    edges = np.arange(0.0, t.max() + bin_s, bin_s)
    which = np.clip(np.digitize(t, edges) - 1, 0, len(edges) - 2)
    share, p50 = [], []
    for b in range(len(edges) - 1):
        mine = which == b
        share.append(answered[mine].mean() if mine.any() else np.nan)
        p50.append(np.median(latency[mine & ok]) if (mine & ok).any() else np.nan)
    return {"time_s": edges[:-1] + bin_s / 2, "answered": np.array(share),
            "p50_s": np.array(p50)}


def busiest_node_messages_per_op(lab_run: Any) -> float:
    """Messages sent or received by the busiest node (the leader) per client operation."""
    journal = lab_run.journal
    counts: dict[str, int] = {}
    for src, dst in zip(journal.src, journal.dst, strict=True):
        for end in (str(src), str(dst)):
            if not end.startswith("c"):
                counts[end] = counts.get(end, 0) + 1
    return max(counts.values()) / len(lab_run.history)


def bench_replay(commands: list[tuple[str, Any]], nodes: int = 3, seed: int = 1) -> list[dict]:
    """Each replica's key-value store after the hand-made ``RaftLog`` on the election lesson's
    ``Bench`` commits ``commands`` ((key, value) writes, proposed on the leader)."""
    from simulations.specialized.leader_election import Bench

    bench = Bench(nodes=nodes, seed=seed, election_class=RaftLog)
    bench.run_until(1.0)
    leader = bench.nodes[next(iter(bench.leaders()))]
    for command in commands:
        leader.propose(command)
    bench.run_until(1.5)
    stores = []
    for raft in bench.nodes.values():
        store: dict = {}
        for _, command in raft.newly_committed():
            if command is not None:
                store[command[0]] = command[1]
        stores.append(store)
    return stores


def pysyncobj_replay(commands: list[tuple[str, Any]], nodes: int = 3,
                     timeout_s: float = 10.0) -> list[dict]:
    """Each replica's ``ReplDict`` after a ``nodes``-node PySyncObj (Raft) cluster on this
    machine's loopback commits the same writes; raises RuntimeError if no leader appears."""
    import socket
    import time as clock

    from pysyncobj import SyncObj, SyncObjConf
    from pysyncobj.batteries import ReplDict

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    addresses = [f"127.0.0.1:{free_port()}" for _ in range(nodes)]
    stores = [ReplDict() for _ in addresses]
    objs = [SyncObj(a, [b for b in addresses if b != a], consumers=[d], conf=SyncObjConf())
            for a, d in zip(addresses, stores, strict=True)]
    try:
        deadline = clock.monotonic() + timeout_s
        while all(o.getStatus()["leader"] is None for o in objs):  # no leader known yet
            if clock.monotonic() > deadline:
                raise RuntimeError(f"no PySyncObj leader within {timeout_s:g} s")
            clock.sleep(0.05)
        for key, value in commands:
            stores[0].set(key, value, sync=True, timeout=timeout_s)
        while any(o.raftCommitIndex != objs[0].raftCommitIndex for o in objs):
            if clock.monotonic() > deadline + timeout_s:
                break
            clock.sleep(0.05)
        return [dict(store.items()) for store in stores]
    finally:
        for o in objs:
            o.destroy()
