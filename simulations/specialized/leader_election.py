"""The leader-election study: how long a cluster is leaderless after its leader crashes, and
how often the election splits, against the election-timeout range.

Picture the rowing crew again, now with a stopwatch: from the moment the cox falls in, how long
until someone is steering? Waiting longer before shouting (a higher minimum timeout) costs time
on every crash; spreading the shouts (a wider range) costs a little time on average but makes
two rowers shouting at once, and a wasted round, rare.

Two models. ``simulate`` is the round model behind the closed forms (numpy, thousands of trials
a millisecond): ``m = n - 1`` live followers received the crashed leader's last heartbeat at the
same moment, each fires at ``a + r·U`` after it, a one-way message takes exactly ``d``, a
follower whose timer fires before the first candidate's request arrives becomes a candidate
too, and every follower grants the first request it receives. ``RaftElectionNode`` runs the
pattern's ``RaftElection`` in the protocol lab, with random latencies and the nemesis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from patterns.checks import check_int, check_non_negative, check_positive
from patterns.specialized.leader_election import RaftElection, VoteRequest, majority
from simulations import plots
from simulations.lab import Context, Crash, LeaderWorkload, Nemesis, Node, Request, run
from simulations.lab import Scenario as LabScenario
from simulations.metrics import confidence_interval

__all__ = ["Bench", "FixedTimeoutNode", "PromiscuousVoterNode", "RaftElection",
           "RaftElectionNode", "Run", "Scenario", "crash_the_leader", "expected_detection_s",
           "expected_downtime_s", "leader_at", "leader_timeline", "plot_split_and_downtime",
           "simulate", "split_probability", "stale_answers", "summary", "sweep"]


@dataclass(frozen=True)
class Scenario:
    """A cluster of ``nodes`` whose leader crashes; election timeouts uniform on
    [``timeout_min_s``, ``timeout_max_s``], heartbeats every ``heartbeat_s``, one-way delay
    ``delay_s``; ``stagger``: node i's timeout is drawn from the i-th slice of the range
    instead (ranked timeouts, Level 4); ``trials`` crashes."""

    nodes: int = 5
    timeout_min_s: float = 0.15
    timeout_max_s: float = 0.3
    heartbeat_s: float = 0.05
    delay_s: float = 0.005
    stagger: bool = False
    trials: int = 2000
    max_rounds: int = 200

    def __post_init__(self) -> None:
        check_int("Scenario.nodes", self.nodes, 2)
        check_positive("Scenario.heartbeat_s", self.heartbeat_s)
        check_non_negative("Scenario.delay_s", self.delay_s)
        check_int("Scenario.trials", self.trials, 1)
        check_int("Scenario.max_rounds", self.max_rounds, 1)
        if not self.timeout_min_s > self.heartbeat_s:
            raise ValueError(f"Scenario.timeout_min_s must be > heartbeat_s = "
                             f"{self.heartbeat_s:g} (got {self.timeout_min_s!r})")
        if not self.timeout_max_s >= self.timeout_min_s:
            raise ValueError(f"Scenario.timeout_max_s must be >= timeout_min_s = "
                             f"{self.timeout_min_s:g} (got {self.timeout_max_s!r})")

    @property
    def range_s(self) -> float:
        return self.timeout_max_s - self.timeout_min_s


@dataclass(frozen=True)
class Run:
    """Per trial: seconds from the crash to a new leader (NaN if none within ``max_rounds``),
    the first timer's firing time, and the election rounds it took."""

    scenario: Scenario
    downtime_s: np.ndarray
    detection_s: np.ndarray
    rounds: np.ndarray


def _timeouts(sc: Scenario, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    u = rng.random(shape)
    if sc.stagger:  # node i draws from slice i of the range
        u = (np.arange(shape[1]) + u) / shape[1]
    return sc.timeout_min_s + sc.range_s * u


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """The round model of the module docstring, ``scenario.trials`` crashes at once."""
    sc, rng = scenario, rng if rng is not None else np.random.default_rng(1)
    m, d, need = sc.nodes - 1, sc.delay_s, majority(sc.nodes)
    heard = -rng.uniform(0.0, sc.heartbeat_s, sc.trials) + d  # last heartbeat, crash at 0
    fire = heard[:, None] + _timeouts(sc, rng, (sc.trials, m))
    detection = fire.min(axis=1)
    downtime = np.full(sc.trials, np.nan)
    rounds = np.zeros(sc.trials, dtype=int)
    live = np.arange(sc.trials)
    for _ in range(sc.max_rounds):
        f = fire[live]
        first = f.min(axis=1)
        candidate = f < (first + d)[:, None]
        rounds[live] += 1
        won = 1 + (m - candidate.sum(axis=1)) >= need
        downtime[live[won]] = first[won] + 2 * d
        keep = ~won
        if not keep.any():
            break
        f, first, candidate = f[keep], first[keep], candidate[keep]
        restart = np.where(candidate, f, (first + d)[:, None])  # voters reset on granting
        fire[live[keep]] = restart + _timeouts(sc, rng, f.shape)
        live = live[keep]
    return Run(sc, downtime, detection, rounds)


def summary(run: Run) -> dict[str, float]:
    """Mean and p99 downtime (s), the split-vote rate (first round without a winner) and the
    share of trials that elected a leader."""
    done = run.downtime_s[~np.isnan(run.downtime_s)]
    return {"downtime_mean_s": float(done.mean()) if done.size else math.nan,
            "downtime_p99_s": float(np.percentile(done, 99)) if done.size else math.nan,
            "split_rate": float(np.mean(run.rounds > 1)),
            "rounds_mean": float(run.rounds.mean()),
            "elected": float(done.size / run.downtime_s.size)}


def sweep(base: Scenario, ranges_s: list[float], seed: int = 1,
          replications: int = 5) -> list[dict[str, Any]]:
    """``summary`` at each timeout range (max = min + range), ``replications`` independent
    runs each: the mean of each replication's split rate and mean downtime, with the
    half-width of its 95 % interval (``<name>_half``)."""
    rows = []
    for i, r in enumerate(ranges_s):
        sc = replace(base, timeout_max_s=base.timeout_min_s + r)
        reps = [summary(simulate(sc, np.random.default_rng([seed, i, k])))
                for k in range(replications)]
        row: dict[str, Any] = {"range_s": r}
        for name in ("split_rate", "downtime_mean_s"):
            values = [rep[name] for rep in reps]
            row[name], row[f"{name}_half"] = confidence_interval(values)
        rows.append(row)
    return rows


def split_probability(sc: Scenario) -> float:
    """P(the first round has no winner), exactly, in the round model.

    With ``m`` timers uniform on a range ``r``, the winner loses when at least ``j = m + 1 -
    need`` others fire within ``d`` of the first; the gap from the first to the (j+1)-th of
    m uniforms is distributed as the j-th, Beta(j, m + 1 - j), so P = P(Binomial(m, d/r) ≥ j).
    Assumes uniform (not staggered) timeouts and a constant delay.
    """
    m, j = sc.nodes - 1, sc.nodes - majority(sc.nodes)
    x = 1.0 if sc.range_s <= sc.delay_s else sc.delay_s / sc.range_s
    return float(sum(math.comb(m, k) * x**k * (1 - x) ** (m - k) for k in range(j, m + 1)))


def expected_detection_s(sc: Scenario) -> float:
    """Mean time from the crash to the first election timeout: d − h/2 + a + r/(m + 1).

    The crash falls uniformly in a heartbeat interval (the last beat was sent h/2 before it on
    average and arrived d later); the first of m uniform timers fires r/(m + 1) into the range.
    Assumes a > h, so no follower times out between beats.
    """
    m = sc.nodes - 1
    return sc.delay_s - sc.heartbeat_s / 2 + sc.timeout_min_s + sc.range_s / (m + 1)


def expected_downtime_s(sc: Scenario) -> float:
    """Detection plus election: detection + 2d (a vote request and its answer), plus, per
    failed round (a geometric number, p/(1 − p) on average with p = ``split_probability``),
    about a fresh timeout: d + a + r/(m + 1). The retry term is approximate (a retry's timers do
    not start together); exact when split votes are rare."""
    p, m = split_probability(sc), sc.nodes - 1
    retry = sc.delay_s + sc.timeout_min_s + sc.range_s / (m + 1)
    return expected_detection_s(sc) + 2 * sc.delay_s + (p / (1 - p) * retry if p < 1 else math.inf)


def plot_split_and_downtime(rows: list[dict[str, Any]], base: Scenario) -> list:
    """Two panels against the timeout range: split-vote rate and mean downtime, simulation
    (95 % intervals) beside the closed forms."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    ms = np.array([r["range_s"] for r in rows]) * 1e3
    fine = np.geomspace(ms.min(), ms.max(), 60)
    theory = [replace(base, timeout_max_s=base.timeout_min_s + x / 1e3) for x in fine]
    for ax, name, model, unit in ((left, "split_rate", split_probability, 1.0),
                                  (right, "downtime_mean_s", expected_downtime_s, 1e3)):
        y = np.array([r[name] for r in rows]) * unit
        half = np.array([r[f"{name}_half"] for r in rows]) * unit
        ax.errorbar(ms, y, yerr=half, fmt="o", capsize=3, label="simulation (95 % CI)")
        ax.plot(fine, [model(s) * unit for s in theory], label="closed form")
        ax.set_xlabel("election-timeout range r (ms)")
        plots.log_scale(ax, "x")
        ax.legend()
    plots.log_scale(left, "y")
    left.set_ylabel("split-vote rate (first round)")
    right.set_ylabel("mean time without leader (ms)")
    return [left, right]


class RaftElectionNode(Node):
    """The pattern's ``RaftElection`` on a lab node: ``term`` and ``voted_for`` in
    ``ctx.disk``; a client's ``leader`` question is answered ``(term, node_id)`` by a node that
    believes it leads, forwarded by a follower that knows a leader, refused otherwise."""

    timeout_range_s = (0.15, 0.3)
    heartbeat_s = 0.05
    election_class = RaftElection

    def on_start(self, ctx: Context) -> None:
        self.election = self.election_class(ctx.node_id, ctx.peers, self.timeout_range_s,
                                            self.heartbeat_s, ctx.disk, lambda: ctx.now, ctx.rng)
        self.armed = None
        self.arm(ctx)

    def arm(self, ctx: Context) -> None:
        """Set a timer for the election's next wake-up, unless one is set for it already."""
        wake = self.election.next_wakeup()
        if wake != self.armed:
            self.armed = wake
            ctx.set_timer(max(wake - ctx.now, 0.0), wake)

    def send(self, ctx: Context, outbox: list) -> None:
        for dst, message in outbox:
            ctx.send(dst, message)
        self.arm(ctx)

    def on_timer(self, ctx: Context, name: float) -> None:
        if name == self.armed:
            self.armed = None
        self.send(ctx, self.election.tick())

    def on_message(self, ctx: Context, src: str, message: Any) -> None:
        if isinstance(message, Request):
            self.on_request(ctx, message)
        else:
            self.send(ctx, self.election.handle(src, message))

    def on_request(self, ctx: Context, request: Request) -> None:
        leader = self.election.leader
        if self.election.role == "leader":
            ctx.reply(request, (self.election.term, ctx.node_id))
        elif leader is not None and leader != ctx.node_id:
            ctx.send(leader, request)  # a follower forwards to the leader it knows
        else:
            ctx.fail(request)


class Bench:
    """``RaftElection`` objects on a bench with one hand-moved clock and instant messages: the
    quickest way to watch an election step by step (Level 2) or to test one."""

    def __init__(self, nodes: int = 3, seed: int = 1, election_class: type = RaftElection,
                 **options: Any) -> None:
        self.now, self.down = 0.0, set()
        names = [f"n{i}" for i in range(1, nodes + 1)]
        rng = np.random.default_rng(seed)
        self.nodes = {n: election_class(n, [p for p in names if p != n], clock=lambda: self.now,
                                        rng=rng, **options) for n in names}
        self.delivered = 0

    def leaders(self) -> dict[str, int]:
        """{node: term} of every live node that believes it leads."""
        return {n: e.term for n, e in self.nodes.items()
                if e.role == "leader" and n not in self.down}

    def run_until(self, until_s: float) -> None:
        """Fire every timer due before ``until_s``, delivering each message at once."""
        while True:
            live = {n: e for n, e in self.nodes.items() if n not in self.down}
            name = min(live, key=lambda n: live[n].next_wakeup())
            wake = live[name].next_wakeup()
            if wake > until_s:
                self.now = until_s
                return
            self.now = max(self.now, wake)
            queue = [(name, dst, m) for dst, m in live[name].tick()]
            while queue:
                src, dst, message = queue.pop(0)
                if dst not in self.down:
                    self.delivered += 1
                    queue += [(dst, d, m) for d, m in self.nodes[dst].handle(src, message)]


class _GrantsEveryVote(RaftElection):
    def grant_vote(self, request: VoteRequest) -> bool:
        return request.term >= self.term


class PromiscuousVoterNode(RaftElectionNode):
    """Broken: grants every vote request of its term, even after voting for someone else, and
    its timeouts barely vary (150–151 ms), so elections are often contested."""

    timeout_range_s = (0.15, 0.151)
    election_class = _GrantsEveryVote


class FixedTimeoutNode(RaftElectionNode):
    """No randomization: every timeout is exactly 150 ms, so candidates keep colliding."""

    timeout_range_s = (0.15, 0.15)


def leader_at(node_class: type, scenario: Any, seed: int, at_s: float) -> str:
    """Who leads at ``at_s`` in a fault-free run of ``scenario`` with ``seed`` (a run with a
    fault that starts at ``at_s`` is identical up to then)."""
    calm = run(node_class, replace(scenario, nemesis=Nemesis()), seed)
    before = [op for op in calm.history if op.status == "ok" and op.complete_s < at_s]
    return max(before, key=lambda op: op.complete_s).output[1]


def crash_the_leader(node_class: type, seed: int = 1, crash_at_s: float = 1.0,
                     down_s: float = 1.0, nodes: int = 5, n_ops: int = 300,
                     rate: float = 100.0) -> Any:
    """A lab run in which whoever leads at ``crash_at_s`` crashes then for ``down_s``."""
    scenario = LabScenario(nodes=nodes, workload=LeaderWorkload(n_ops=n_ops, rate=rate,
                                                                timeout_s=0.2))
    leader = leader_at(node_class, scenario, seed, crash_at_s)
    nemesis = Nemesis((Crash(leader, crash_at_s, crash_at_s + down_s),))
    return run(node_class, replace(scenario, nemesis=nemesis), seed)


def stale_answers(history: Any, grace_s: float) -> list:
    """The acknowledged ``leader`` answers that named a term older than one some client had
    already seen answered ``grace_s`` before this question was asked: a deposed leader still
    serving."""
    ok = sorted((op for op in history if op.status == "ok"), key=lambda op: op.complete_s)
    done = np.array([op.complete_s for op in ok])
    newest = np.maximum.accumulate([op.output[0] for op in ok]) if ok else np.array([])
    stale = []
    for op in ok:
        k = int(np.searchsorted(done, op.invoke_s - grace_s, side="right"))
        if k and newest[k - 1] > op.output[0]:
            stale.append(op)
    return stale


def leader_timeline(lab_run: Any, bin_s: float = 0.1) -> dict[str, np.ndarray]:
    """Per time bin of a ``LeaderWorkload`` run: the share of ``leader`` questions answered
    and the highest term any answer named so far."""
    history = lab_run.history
    t, ok = history.column("invoke_s"), history.column("status") == "ok"
    terms = np.array([op.output[0] if op.output else 0 for op in history], dtype=float)
    edges = np.arange(0.0, t.max() + bin_s, bin_s)
    which = np.clip(np.digitize(t, edges) - 1, 0, len(edges) - 2)
    asked = np.bincount(which, minlength=len(edges) - 1)
    answered = np.bincount(which, weights=ok, minlength=len(edges) - 1)
    top = np.zeros(len(edges) - 1)
    np.maximum.at(top, which, terms)
    return {"time_s": edges[:-1] + bin_s / 2,
            "answered": np.divide(answered, asked, out=np.full(len(asked), np.nan),
                                  where=asked > 0),
            "term": np.maximum.accumulate(top)}
