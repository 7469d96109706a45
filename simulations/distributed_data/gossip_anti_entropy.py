"""The gossip study: how fast an update reaches every node, and what the chatter costs.

Picture the coffee-machine office of the pattern's module, now with a stopwatch and a meter on
the phone line. Every period each person rings ``fanout`` colleagues picked at random: with
*push* the caller passes on what it knows, with *pull* it asks what the other knows, with
*push-pull* both. How many periods until everyone has heard, and how many calls did that take?

- The round model (``Scenario``, ``simulate``, ``summary``, ``sweep``): synchronous rounds,
  every node of every run at once in numpy arrays, so a thousand nodes times a hundred
  runs take milliseconds. It is checked against Pittel's log₂N + ln N rounds for push and
  against the exact one-round expectation iterated (``expected_informed``).
- The stream model (``simulate_stream``): a steady flow of updates on a cluster that is
  partitioned for a while; the dashboard's metrics over time.
- Heartbeats by gossip (``simulate_heartbeats``): failure detection (the failure-detection
  lesson's φ accrual detector) fed by heartbeat counters that travel by gossip.
- Merkle trees (``measure_merkle`` on the pattern's ``MerkleTree``, beside the closed forms
  ``merkle_expected_compared`` and ``merkle_expected_keys``): bytes to find d differing keys,
  compared with sending the whole key list.
- The protocol lab's nodes: ``AntiEntropyNode`` (correct), ``RumorMonger`` (fire-and-forget:
  loses elements across a partition) and ``ForgetfulAntiEntropy`` (stops calling peers that did
  not answer: never heals after a partition), and ``wire_bytes`` for what they sent.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from patterns.checks import check_choice, check_int, check_positive, check_probability
from patterns.distributed_data.gossip_anti_entropy import (
    MODES,
    GossipNode,
    MerkleTree,
    merkle_diff,
)
from patterns.resilience.failure_detection import DetectorConfig, FailureDetectorRegistry
from simulations.experiments import sweep as sweep_grid
from simulations.lab import Context, Node, Request
from simulations.metrics import confidence_interval

__all__ = [
    "MODES",
    "AntiEntropyNode",
    "ForgetfulAntiEntropy",
    "GossipNode",
    "RumorMonger",
    "Run",
    "Scenario",
    "StreamRun",
    "expected_informed",
    "fanout_rounds",
    "full_list_bytes",
    "measure_merkle",
    "merkle_bytes",
    "merkle_expected_compared",
    "merkle_expected_keys",
    "pittel_rounds",
    "rumor_residue",
    "plot_dashboard",
    "plot_merkle",
    "plot_spread",
    "plot_sweep",
    "simulate",
    "simulate_heartbeats",
    "simulate_stream",
    "summary",
    "sweep",
    "wire_bytes",
]

HASH_BYTES = 32  # one SHA-256 tree hash on the wire
ENTRY_BYTES = 32  # one key with its version in a key list


# ---------------------------------------------------------------- theory

def pittel_rounds(nodes: int) -> float:
    """log₂N + ln N: the rounds push rumour spreading needs to reach all N nodes, up to an
    additive O(1) in probability (Pittel 1987; Frieze and Grimmett had the ratio → 1).
    Assumes one informed node at the start, each informed node calling one node chosen
    uniformly at random each round, and no losses."""
    n = check_int("nodes", nodes, 2)
    return math.log2(n) + math.log(n)


def fanout_rounds(nodes: int, fanout: int) -> float:
    """log_{1+k} N + (ln N)/k: push with k calls per informed node per round, read off the two
    phases of ``expected_informed`` (the informed count grows by a factor 1 + k while few know;
    the uninformed share shrinks by a factor e^-k once most know). For k = 1 it is Pittel's
    log₂N + ln N; a heuristic for k > 1, checked against the simulation, not a theorem."""
    n = check_int("nodes", nodes, 2)
    k = check_int("fanout", fanout, 1)
    return math.log(n) / math.log(1 + k) + math.log(n) / k


def _stay_uninformed(nodes: int, informed: np.ndarray | float, fanout: int, mode: str,
                     loss: float) -> np.ndarray | float:
    """P(an uninformed node is still uninformed after one round), given ``informed`` nodes.

    Push: each of the informed nodes' k·I calls reaches it with probability (1 − loss)/(N − 1).
    Pull: each of its own k calls finds an informed peer with probability (1 − loss)·I/(N − 1).
    Push-pull: both must fail (independent draws)."""
    reach = (1.0 - loss) / (nodes - 1)
    stay = 1.0
    if mode in ("push", "push-pull"):
        stay = stay * (1.0 - reach) ** (fanout * informed)
    if mode in ("pull", "push-pull"):
        stay = stay * (1.0 - reach * informed) ** fanout
    return stay


def expected_informed(nodes: int, fanout: int, mode: str, rounds: int, loss: float = 0.0,
                      initially: int = 1) -> np.ndarray:
    """The informed count after 0 ... ``rounds`` rounds in the mean-field model.

    One round is exact in expectation: E[U_{t+1} | I_t] = U_t · P(stay uninformed | I_t)
    (``_stay_uninformed``). Iterating it on the expected counts, as if they were the counts
    (Pittel's deterministic equation I(t+1) = n − (n − I(t))·exp(−I(t)/n) is this for push,
    k = 1, large n), gives the curve the simulation is compared with; it ignores the spread
    of the counts, which matters mostly in the last rounds."""
    n = check_int("nodes", nodes, 2)
    check_choice("mode", mode, MODES)
    i = [float(check_int("initially", initially, 1, n))]
    for _ in range(check_int("rounds", rounds, 0)):
        i.append(n - (n - i[-1]) * _stay_uninformed(n, i[-1], fanout, mode, loss))
    return np.array(i)


def rumor_residue(pushes: float) -> float:
    """The share of nodes a blind rumour never reaches, for large N: each node that learns the
    update pushes it to ``pushes`` = m random nodes and then stops. The residue s solves the
    epidemic final-size equation s = exp(−m(1 − s)); for m ≤ 1 the only root is 1 (the rumour
    dies out). Demers et al.'s rumour that loses interest with probability 1/k after calling a
    node that already knew gives the same equation with m = k + 1."""
    m = check_positive("pushes", pushes)
    if m <= 1:
        return 1.0
    low, high = 0.0, 1.0 - 1e-12  # f(s) = exp(-m(1-s)) - s: f(0) > 0, f just below 1 < 0
    for _ in range(100):
        mid = (low + high) / 2
        low, high = (mid, high) if math.exp(-m * (1 - mid)) > mid else (low, mid)
    return (low + high) / 2


def merkle_expected_compared(differing: int, depth: int) -> float:
    """E[tree hashes compared] to locate ``differing`` keys, each in an independent uniformly
    random bucket of a tree with 2^depth leaves: the root, plus both children of every node
    that differs above the leaves. A node of level ℓ (2^ℓ of them) differs with probability
    1 − (1 − 2^-ℓ)^d, so E = 1 + Σ_{ℓ<depth} 2·2^ℓ·(1 − (1 − 2^-ℓ)^d)."""
    d = check_int("differing", differing, 0)
    h = check_int("depth", depth, 0)
    return 1.0 + sum(2 * 2**ell * (1 - (1 - 2.0**-ell) ** d) for ell in range(h))


def merkle_expected_keys(differing: int, keys: int, depth: int) -> float:
    """E[keys in the differing buckets] (their key lists are what the leaves exchange): the d
    differing keys themselves, plus each of the other n − d keys whose bucket caught at least
    one of them, probability 1 − (1 − 2^-depth)^d."""
    d = check_int("differing", differing, 0)
    n = check_int("keys", keys, d)
    leaves = 2 ** check_int("depth", depth, 0)
    return d + (n - d) * (1 - (1 - 1 / leaves) ** d)


def merkle_bytes(differing: int, keys: int, depth: int, hash_bytes: int = HASH_BYTES,
                 entry_bytes: int = ENTRY_BYTES) -> float:
    """Expected bytes to find the differences with a Merkle tree: the hashes compared plus the
    key lists of the differing buckets."""
    return (hash_bytes * merkle_expected_compared(differing, depth)
            + entry_bytes * merkle_expected_keys(differing, keys, depth))


def full_list_bytes(keys: int, entry_bytes: int = ENTRY_BYTES) -> float:
    """Bytes to find the differences by sending every key with its version."""
    return check_int("keys", keys, 0) * entry_bytes


# ---------------------------------------------------------------- the round model

@dataclass(frozen=True)
class Scenario:
    """One update spreading through ``nodes`` nodes, in ``runs`` independent runs at once.

    Every round (one ``period_s``) each node opens ``fanout`` exchanges with peers chosen
    uniformly at random (anti-entropy: informed or not, it cannot know); an exchange is lost
    with probability ``loss`` and costs ``exchange_bytes``. With ``stop_after`` (push only) it
    is rumour mongering instead: a node pushes for that many rounds after it learned the update
    and then stops, and only such active nodes send.
    """

    nodes: int = 1000
    fanout: int = 1
    period_s: float = 1.0
    mode: str = "push-pull"
    loss: float = 0.0
    stop_after: int | None = None
    runs: int = 100
    max_rounds: int = 200
    exchange_bytes: int = 1000
    initially: int = 1

    def __post_init__(self) -> None:
        check_int("Scenario.nodes", self.nodes, 2)
        check_int("Scenario.fanout", self.fanout, 1, 64)
        check_positive("Scenario.period_s", self.period_s)
        check_choice("Scenario.mode", self.mode, MODES)
        check_probability("Scenario.loss", self.loss)
        if self.loss == 1.0:
            raise ValueError("Scenario.loss must be < 1 (got 1.0): nothing would ever arrive")
        if self.stop_after is not None:
            check_int("Scenario.stop_after", self.stop_after, 1)
            if self.mode != "push":
                raise ValueError(f"Scenario.stop_after is for push rumour mongering: mode must "
                                 f"be 'push' (got {self.mode!r})")
        check_int("Scenario.runs", self.runs, 1)
        check_int("Scenario.max_rounds", self.max_rounds, 1)
        check_int("Scenario.exchange_bytes", self.exchange_bytes, 0)
        check_int("Scenario.initially", self.initially, 1, self.nodes)


@dataclass(frozen=True, eq=False)
class Run:
    """A finished round-model run: ``informed[t, r]`` nodes knew the update after round t of
    run r (row 0: the start); ``done_round[r]`` is the first round in which all knew it
    (-1: never); ``sent[r]`` exchanges were opened in run r until it was done."""

    scenario: Scenario
    informed: np.ndarray
    done_round: np.ndarray
    sent: np.ndarray

    @property
    def times_s(self) -> np.ndarray:
        return np.arange(len(self.informed)) * self.scenario.period_s


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """Run the round model; every run and node at once (flat arrays of R·N)."""
    s = scenario
    rng = rng if rng is not None else np.random.default_rng(0)
    n, r, k = s.nodes, s.runs, s.fanout
    offset = np.repeat(np.arange(r) * n, n)  # where each flat node's run starts
    me = np.tile(np.arange(n), r)
    informed = np.zeros(r * n, bool)
    informed[(np.arange(r)[:, None] * n + np.arange(s.initially)).ravel()] = True
    learned = np.where(informed, 0, -1)
    counts = [informed.reshape(r, n).sum(1)]
    done = np.where(counts[0] == n, 0, -1)
    sent = np.zeros(r, dtype=np.int64)
    for t in range(1, s.max_rounds + 1):
        running = np.repeat(done < 0, n)
        if s.stop_after is not None:
            callers = np.flatnonzero(informed & (t - 1 - learned < s.stop_after) & running)
        elif s.mode == "pull":
            callers = np.flatnonzero(~informed & running)  # informed callers change nothing
        else:
            callers = np.flatnonzero(running)
        if s.stop_after is not None and not callers.size:
            break  # the rumour has died out everywhere
        callers = np.repeat(callers, k)
        peer = rng.integers(0, n - 1, callers.size)
        peer += peer >= me[callers]  # anyone but oneself
        if s.loss:
            kept = rng.random(callers.size) >= s.loss
            callers, peer = callers[kept], peer[kept]
        peer += offset[callers]
        new = informed.copy()
        if s.mode in ("push", "push-pull"):
            pushing = informed[callers]
            new[peer[pushing]] = True
        if s.mode in ("pull", "push-pull"):
            pulling = informed[peer]
            new[callers[pulling]] = True
        learned[new & ~informed] = t
        informed = new
        counts.append(informed.reshape(r, n).sum(1))
        done[(done < 0) & (counts[-1] == n)] = t
        if (done >= 0).all():
            break
    # exchanges opened: every running node k per round (anti-entropy; pull's informed callers
    # are skipped above only because they change nothing, they still call) or the rumour's pushes
    if s.stop_after is None:
        rounds_run = np.where(done >= 0, done, len(counts) - 1)
        sent = rounds_run.astype(np.int64) * n * k
    else:
        sent = _rumour_pushes(learned.reshape(r, n), len(counts) - 1, s.stop_after) * k
    return Run(s, np.array(counts), done, sent)


def _rumour_pushes(learned: np.ndarray, rounds: int, stop_after: int) -> np.ndarray:
    """Pushes per run: each informed node pushes in the rounds after it learned, up to
    ``stop_after`` of them, within the rounds simulated."""
    active = np.clip(rounds - learned, 0, stop_after)
    return np.where(learned >= 0, active, 0).sum(1)


def summary(run: Run) -> dict[str, float]:
    """How long the update took to reach everyone and what it cost.

    ``completed``: share of runs that reached all nodes; ``rounds_mean`` (with its 95 %
    half-width ``rounds_mean_ci``), ``rounds_p95`` and the same in seconds (``time_mean_s``,
    ``time_p95_s``), over the completed ones; ``residue``: mean share of nodes never reached;
    ``messages_per_node``: exchanges opened per node until done; ``bandwidth_bytes_s``: bytes
    per node per second while gossiping (fanout·exchange_bytes/period for anti-entropy)."""
    s = run.scenario
    done = run.done_round[run.done_round >= 0].astype(float)
    mean, half = confidence_interval(done) if done.size > 1 else (
        (float(done[0]), math.nan) if done.size else (math.nan, math.nan))
    p95 = float(np.percentile(done, 95)) if done.size else math.nan
    rounds_active = np.where(run.done_round >= 0, run.done_round, len(run.informed) - 1)
    per_node = run.sent / s.nodes
    busy = np.maximum(rounds_active, 1) * s.period_s
    return {
        "completed": float(np.mean(run.done_round >= 0)),
        "rounds_mean": float(mean), "rounds_mean_ci": float(half), "rounds_p95": p95,
        "time_mean_s": float(mean) * s.period_s, "time_mean_s_ci": float(half) * s.period_s,
        "time_p95_s": p95 * s.period_s,
        "residue": float(np.mean(1 - run.informed[-1] / s.nodes)),
        "messages_per_node": float(per_node.mean()),
        "bandwidth_bytes_s": float(np.mean(per_node * s.exchange_bytes / busy)),
    }


def _model(rng: np.random.Generator, **params: Any) -> dict[str, float]:
    return summary(simulate(Scenario(**params), rng))


def sweep(base: Scenario, seed: int = 1, **grid: Sequence[Any]) -> list[dict[str, Any]]:
    """``summary`` at every combination of the ``grid`` settings (Scenario fields), one row
    each; the intervals come from the scenario's own runs."""
    fixed = {name: getattr(base, name) for name in base.__dataclass_fields__ if name not in grid}
    return sweep_grid(_model, grid, seed=seed, fixed=fixed)


# ---------------------------------------------------------------- many updates, a partition

@dataclass(frozen=True, eq=False)
class StreamRun:
    """Per round: ``times_s``, ``stale_share`` (nodes lacking some update older than
    ``stale_after_s``), ``oldest_gap_s`` (age of the oldest update some node still lacks),
    ``differing_share`` (exchanges that found a difference) and ``payload_bytes_s`` (entries
    moved, per node per second)."""

    times_s: np.ndarray
    stale_share: np.ndarray
    oldest_gap_s: np.ndarray
    differing_share: np.ndarray
    payload_bytes_s: np.ndarray
    partition: tuple[float, float] | None


def simulate_stream(nodes: int = 60, mode: str = "push-pull", fanout: int = 1,
                    period_s: float = 1.0, duration_s: float = 180.0,
                    update_rate: float = 2.0, partition: tuple[float, float] | None = (60, 120),
                    entry_bytes: int = 200, stale_after_s: float = 10.0,
                    rng: np.random.Generator | None = None) -> StreamRun:
    """Updates arrive (Poisson, ``update_rate`` per second) at random nodes; every round each
    node reconciles with ``fanout`` random peers. During ``partition`` the nodes are split in
    two halves and exchanges across the cut fail."""
    n = check_int("nodes", nodes, 2)
    check_choice("mode", mode, MODES)
    rng = rng if rng is not None else np.random.default_rng(0)
    rounds = int(round(check_positive("duration_s", duration_s) / period_s))
    arrivals = rng.poisson(update_rate * period_s, rounds)
    total = int(arrivals.sum())
    have = np.zeros((n, total), bool)
    born = np.repeat(np.arange(rounds) * period_s, arrivals)
    where = rng.integers(0, n, total)
    side = np.arange(n) < n // 2
    rows: dict[str, list[float]] = {k: [] for k in ("stale", "gap", "differing", "payload")}
    first = 0
    for t in range(rounds):
        now = t * period_s
        last = first + arrivals[t]
        have[where[first:last], np.arange(first, last)] = True
        first = last
        caller = np.repeat(np.arange(n), fanout)
        peer = rng.integers(0, n - 1, caller.size)
        peer += peer >= caller
        if partition is not None and partition[0] <= now < partition[1]:
            ok = side[caller] == side[peer]
            caller, peer = caller[ok], peer[ok]
        new = have.copy()
        if mode in ("push", "push-pull"):
            np.logical_or.at(new, peer, have[caller])
        if mode in ("pull", "push-pull"):
            np.logical_or.at(new, caller, have[peer])
        moved = int((new & ~have).sum())
        rows["differing"].append(float(np.mean((have[caller] != have[peer]).any(1)))
                                 if caller.size else 0.0)
        have = new
        seen = have[:, :last]
        everywhere = seen.all(0)
        old = born[:last] <= now - stale_after_s
        rows["stale"].append(float(np.mean(~seen[:, old].all(1))) if old.any() else 0.0)
        rows["gap"].append(float(now - born[:last][~everywhere].min()) if not everywhere.all()
                           else 0.0)
        rows["payload"].append(moved * entry_bytes / n / period_s)
    return StreamRun(np.arange(rounds) * period_s, np.array(rows["stale"]),
                     np.array(rows["gap"]), np.array(rows["differing"]),
                     np.array(rows["payload"]), partition)


# ---------------------------------------------------------------- heartbeats by gossip

def simulate_heartbeats(nodes: int = 40, period_s: float = 1.0, rounds: int = 300,
                        crash_at_s: float = 200.0, gossip: bool = True,
                        config: DetectorConfig | None = None,
                        rng: np.random.Generator | None = None) -> dict[str, float]:
    """Node 0 watches every other node through the failure-detection lesson's
    ``FailureDetectorRegistry`` (φ accrual, Akka's defaults unless ``config`` says otherwise)
    while node 1 crashes at ``crash_at_s``.

    With ``gossip`` each node bumps its own heartbeat counter every round and push-pulls its
    whole table of counters with one random peer; node 0 hears a heartbeat of X whenever X's
    counter in its table goes up, which happens after a random number of rounds. Without,
    every node sends its heartbeat to every other node every round. Returns the crash's
    detection delay, the suspicions of live nodes (false ones), and what each way sends per
    round (messages, and heartbeat counters carried)."""
    n = check_int("nodes", nodes, 3)
    rng = rng if rng is not None else np.random.default_rng(0)
    clock = [0.0]
    registry = FailureDetectorRegistry(config or DetectorConfig(heartbeat_interval_s=period_s),
                                       clock=lambda: clock[0])
    known = np.zeros((n, n), dtype=np.int64)
    false_suspicions, detected_at = 0, math.nan
    for t in range(1, rounds + 1):
        clock[0] = now = t * period_s
        alive = np.ones(n, bool)
        alive[1] = now < crash_at_s
        live = np.flatnonzero(alive)
        before = known[0].copy()
        known[live, live] += 1  # each live node's own heartbeat
        if gossip:
            peer = rng.integers(0, n - 1, live.size)
            peer += peer >= live
            answered = alive[peer]
            caller, peer = live[answered], peer[answered]
            merged = known.copy()
            np.maximum.at(merged, peer, known[caller])
            np.maximum.at(merged, caller, known[peer])
            known = merged
        else:  # every live node tells every node its own counter
            known[:, live] = known[live, live]
        for x in np.flatnonzero(known[0] > before):
            registry.heartbeat(f"n{x}")
        for member, suspected in registry.check():
            if suspected and member == "n1" and now >= crash_at_s:
                detected_at = now if math.isnan(detected_at) else detected_at
            elif suspected:
                false_suspicions += 1
    return {"detection_s": detected_at - crash_at_s, "false_suspicions": false_suspicions,
            "messages_per_round": 2 * n if gossip else n * (n - 1),
            "counters_per_round": 2 * n * n if gossip else n * (n - 1)}


# ---------------------------------------------------------------- Merkle trees measured

def measure_merkle(keys: int, depth: int, differing: Sequence[int], draws: int = 5,
                   rng: np.random.Generator | None = None) -> list[dict[str, float]]:
    """Two replicas of ``keys`` keys that differ in d of them (chosen at random, ``draws``
    times for each d in ``differing``): the mean tree hashes compared and keys in the
    differing buckets that ``merkle_diff`` finds on the pattern's ``MerkleTree``, and the
    bytes they make (32 per hash, 32 per key with its version)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    names = [f"user:{i}" for i in range(check_int("keys", keys, 1))]
    base = MerkleTree(depth)
    base.update((name, (1, "a")) for name in names)
    rows = []
    for d in differing:
        compared, in_buckets = [], []
        for _ in range(check_int("draws", draws, 1)):
            other = base.copy()
            changed = rng.choice(keys, check_int("differing", d, 0, keys), replace=False)
            other.update((names[i], (2, "b")) for i in changed)
            buckets, hashes = merkle_diff(base, other)
            compared.append(hashes)
            in_buckets.append(sum(len(base.buckets[b]) for b in buckets))
        c, m = float(np.mean(compared)), float(np.mean(in_buckets))
        rows.append({"differing": d, "compared": c, "keys_in_buckets": m,
                     "bytes": HASH_BYTES * c + ENTRY_BYTES * m})
    return rows


# ---------------------------------------------------------------- the protocol lab

def _random_peers(ctx: Context, count: int) -> list[str]:
    peers = list(ctx.peers)
    if not count or not peers:
        return []
    picked = ctx.rng.choice(len(peers), min(count, len(peers)), replace=False)
    return [peers[i] for i in picked]


class AntiEntropyNode(Node):
    """Push-pull anti-entropy of a grow-only set: every ``period_s`` the node sends its whole
    set to one random peer, which merges it and answers with the elements the sender lacks
    (an empty answer too, so the sender knows it was heard). With ``rumor_fanout`` > 0 a new
    element is also pushed at once to that many random peers, as a rumour that anti-entropy
    backs up. The set lives in ``ctx.disk``, so it survives a crash."""

    period_s = 0.1
    rumor_fanout = 0

    def on_start(self, ctx: Context) -> None:
        ctx.disk.setdefault("seen", set())
        ctx.set_timer(self.period_s, "gossip")

    def on_request(self, ctx: Context, request: Request) -> None:
        seen = ctx.disk["seen"]
        if request.f == "add":
            seen.add(request.value)
            ctx.reply(request)
            for peer in _random_peers(ctx, self.rumor_fanout):
                ctx.send(peer, ("rumor", frozenset({request.value})))
        else:
            ctx.reply(request, frozenset(seen))

    def on_message(self, ctx: Context, src: str, message: tuple) -> None:
        kind, values = message
        seen = ctx.disk["seen"]
        if kind == "sync":
            ctx.send(src, ("reply", frozenset(seen - values)))
        seen |= values

    def on_timer(self, ctx: Context, name: Any) -> None:
        for peer in _random_peers(ctx, 1):
            ctx.send(peer, ("sync", frozenset(ctx.disk["seen"])))
        ctx.set_timer(self.period_s, "gossip")


class RumorMonger(Node):
    """Fire-and-forget rumour mongering: a node that hears of a new element (from a client or
    a peer) tells ``fanout`` random peers once, and never again; no timers, no retries. Broken:
    an element whose messages are dropped (a partition) is never sent again."""

    fanout = 2

    def on_request(self, ctx: Context, request: Request) -> None:
        seen = ctx.disk.setdefault("seen", set())
        if request.f == "add":
            self._learn(ctx, request.value)
            ctx.reply(request)
        else:
            ctx.reply(request, frozenset(seen))

    def on_message(self, ctx: Context, src: str, message: tuple) -> None:
        self._learn(ctx, message[1])

    def _learn(self, ctx: Context, value: Any) -> None:
        seen = ctx.disk.setdefault("seen", set())
        if value not in seen:
            seen.add(value)
            for peer in _random_peers(ctx, self.fanout):
                ctx.send(peer, ("rumor", value))


class ForgetfulAntiEntropy(AntiEntropyNode):
    """``AntiEntropyNode`` with a tidy-looking bug: a peer that leaves ``patience`` syncs in a
    row unanswered is dropped from the node's view for good. Broken: a partition longer than
    a few periods makes each side drop the other, and after it heals nobody calls across."""

    patience = 2

    def on_start(self, ctx: Context) -> None:
        self.unanswered = dict.fromkeys(ctx.peers, 0)
        self.waiting: set[str] = set()
        self.dropped: set[str] = set()
        super().on_start(ctx)

    def on_message(self, ctx: Context, src: str, message: tuple) -> None:
        if message[0] == "reply":
            self.unanswered[src] = 0
            self.waiting.discard(src)
        super().on_message(ctx, src, message)

    def on_timer(self, ctx: Context, name: Any) -> None:
        for peer in self.waiting:
            self.unanswered[peer] += 1
            if self.unanswered[peer] >= self.patience:
                self.dropped.add(peer)
        self.waiting.clear()
        alive = [p for p in ctx.peers if p not in self.dropped]
        if alive:
            peer = alive[int(ctx.rng.integers(len(alive)))]
            ctx.send(peer, ("sync", frozenset(ctx.disk["seen"])))
            self.waiting.add(peer)
        ctx.set_timer(self.period_s, "gossip")


def wire_bytes(lab_run: Any) -> int:
    """Bytes the nodes sent each other (each message body pickled), cut and lost ones too."""
    journal = lab_run.journal
    mask = journal.between_nodes(lab_run.nodes)
    return sum(len(pickle.dumps(body)) for body, m in zip(journal.body, mask, strict=True) if m)


# ---------------------------------------------------------------- plots

def plot_spread(runs: dict[str, Run], ax: Any = None) -> Any:
    """The share of nodes that know the update over time: each run's mean over its
    runs, with the band where 90 % of the runs lie (5th to 95th percentile)."""
    from simulations import plots

    ax = plots.new_axes(ax, figsize=(6.4, 3.8))
    for (label, run), color in zip(runs.items(), plots.COLORS, strict=False):
        share = run.informed / run.scenario.nodes
        ax.plot(run.times_s, share.mean(1), color=color, label=label)
        ax.fill_between(run.times_s, np.percentile(share, 5, axis=1),
                        np.percentile(share, 95, axis=1), color=color, alpha=0.2, linewidth=0)
    ax.set(xlabel="time (s)", ylabel="share of nodes that know the update", ylim=(0, 1.02))
    ax.legend(fontsize="small", loc="lower right")
    return ax


def plot_sweep(rows: list[dict[str, Any]], x: str = "fanout") -> list:
    """Convergence time (mean with its 95 % interval, and p95) and bandwidth per node against
    ``x``, a line per mode."""
    from simulations import plots

    return plots.sweep_panels(
        rows, x=x, by="mode", metrics=["time_mean_s", "time_p95_s", "bandwidth_bytes_s"],
        xlabel={"fanout": "fan-out (peers per round)", "period_s": "gossip period (s)"}.get(x, x),
        ylabels={"time_mean_s": "mean time to reach all (s)",
                 "time_p95_s": "p95 time to reach all (s)",
                 "bandwidth_bytes_s": "bandwidth per node (bytes/s)"},
        group_label=lambda mode: mode, panel_size=(4.0, 3.2))


def plot_merkle(keys: int, depth: int, measured: Sequence[dict[str, float]],
                ax: Any = None) -> Any:
    """Bytes to find d differing keys: measured Merkle exchanges (points), the closed form
    (dashed), and the full key list (flat line), on log axes."""
    from simulations import plots

    ax = plots.new_axes(ax, figsize=(6.4, 3.8))
    d = np.array([m["differing"] for m in measured])
    grid = np.unique(np.geomspace(max(d.min(), 1), d.max(), 60).astype(int))
    ax.plot(grid, [merkle_bytes(int(g), keys, depth) for g in grid], **plots.THEORY,
            label=f"closed form, depth {depth}")
    ax.plot(d, [m["bytes"] for m in measured], "o", label="measured on MerkleTree")
    ax.axhline(full_list_bytes(keys), color=plots.COLORS[1], label=f"full key list ({keys} keys)")
    plots.log_scale(ax, "both")
    ax.set(xlabel="differing keys d", ylabel="bytes to find the differences")
    ax.legend(fontsize="small")
    return ax


def plot_dashboard(runs: dict[str, StreamRun]) -> list:
    """The stream model's metrics over time, the partition shaded."""
    from simulations import plots

    first = next(iter(runs.values()))
    panels = {
        "stale replicas (share of nodes)": {k: r.stale_share for k, r in runs.items()},
        "oldest update not yet everywhere (s)": {k: r.oldest_gap_s for k, r in runs.items()},
        "exchanges that found a difference": {k: r.differing_share for k, r in runs.items()},
        "payload moved per node (bytes/s)": {k: r.payload_bytes_s for k, r in runs.items()},
    }
    windows = [first.partition] if first.partition else []
    return plots.dashboard(first.times_s, panels, windows=windows, window_label="partition",
                           panel_height=1.7)

