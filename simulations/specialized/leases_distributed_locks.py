"""The leases study: how long a lock stays orphaned after its holder dies, what keeping it
costs, and what a pause past the lease does to the data.

Picture the library's key desk with a stopwatch: how long the reading room stands empty after
a borrower vanishes (about one loan term plus the margin), and how often borrowers come back to
say "still here" (holders / renewal interval).

Two models:

- ``simulate`` (SimPy, the pattern's ``LeaseLock`` on ``env.now``): ``holders`` locks, each
  held by a process that renews every ``renew_fraction * term_s`` and crashes once at a
  uniformly random moment of its renewal cycle, and a standby that asks for the lock every
  ``poll_s`` (or with the retry lesson's ``Backoff``). Messages take ``delay_s`` each way.
  ``summary`` gives the unavailability after each crash and the renewal load; the closed forms
  ``mean_unavailability_s``, ``worst_unavailability_s`` and ``renewal_rate`` sit beside it.
- the protocol lab (``LeaseNode``): node ``n1`` is the lock service, the last node is the
  storage, the nodes between are workers that clients ask to write. Class attributes choose the
  design: ``fence`` (the storage refuses older tokens), ``recheck`` (a worker checks its lease
  again just before it writes), ``drift`` (the server's margin for clock drift). Judged by
  ``simulations.lab.check_fenced_writes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

import numpy as np
import simpy

from patterns.checks import check_int, check_non_negative, check_positive, check_range
from patterns.resilience.retry_backoff_jitter import Backoff
from patterns.specialized.leases_distributed_locks import (
    FencedStore,
    Lease,
    LeaseConfig,
    LeaseLock,
    ProductionLeaseLock,
    drift_margin_s,
    holder_deadline_s,
)
from simulations import plots
from simulations.experiments import aggregate, sweep
from simulations.lab import Crash, LockedWriteWorkload, Nemesis, Node, RandomNemesis
from simulations.lab import Scenario as LabScenario

__all__ = ["FAULTS", "RESTARTS", "CarefulLeaseNode", "FencedStore", "Lease", "LeaseConfig",
           "LeaseLock", "LeaseNode", "ProductionLeaseLock", "Scenario", "lab_scenario",
           "mean_unavailability_s", "plot_dashboard", "plot_frontier", "plot_sweep",
           "renewal_rate", "simulate", "summary", "sweep_terms", "worst_unavailability_s"]


# ---------------------------------------------------------------- failover model (SimPy)

@dataclass(frozen=True)
class Scenario:
    """``holders`` locks with one holder and one standby each; lease ``term_s``; renewals
    every ``renew_fraction * term_s``; the server's margin for clocks off by up to ``drift``;
    the standby asks every ``poll_s`` (or with ``backoff``); one-way message delay ``delay_s``;
    holders crash in ``[warmup_s, warmup_s + renewal interval)``, or leave cleanly, releasing
    the lock, when ``graceful``; ``per_session`` locks share one renewal (one session)."""

    term_s: float = 10.0
    renew_fraction: float = 1 / 3
    drift: float = 0.001
    holders: int = 100
    poll_s: float = 1.0
    delay_s: float = 0.005
    warmup_s: float = 60.0
    graceful: bool = False
    per_session: int = 1
    backoff: Backoff | None = None
    seed: int = 1
    trace: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        check_positive("Scenario.term_s", self.term_s)
        check_range("Scenario.renew_fraction", self.renew_fraction, 0.0, 1.0, low_open=True,
                    high_open=True)
        check_range("Scenario.drift", self.drift, 0.0, 0.5, high_open=True)
        check_int("Scenario.holders", self.holders, 1)
        check_positive("Scenario.poll_s", self.poll_s)
        check_non_negative("Scenario.delay_s", self.delay_s)
        check_positive("Scenario.warmup_s", self.warmup_s)
        check_int("Scenario.per_session", self.per_session, 1)
        if self.holders % self.per_session:
            raise ValueError(f"Scenario.per_session must divide holders = {self.holders} "
                             f"(got {self.per_session})")

    @property
    def renew_s(self) -> float:
        return self.renew_fraction * self.term_s


def renewal_rate(holders: int, renew_s: float, per_session: int = 1) -> float:
    """Renewals per second at the server: each of ``holders / per_session`` sessions renews
    once every ``renew_s`` seconds."""
    return holders / per_session / renew_s


def mean_unavailability_s(term_s: float, renew_s: float, drift: float, poll_s: float,
                          delay_s: float) -> float:
    """Mean time from a holder's crash until its standby knows it holds the lock.

    Assumes the crash falls uniformly in the renewal cycle (the last renewal was sent U(0,
    renew_s) before it), the server lets the lease lapse ``term_s + margin`` after that renewal
    arrived, the standby's next request arrives U(0, poll_s) later, and each message takes
    ``delay_s``: ``term_s + margin + 2 delay_s - renew_s / 2 + poll_s / 2``.
    """
    return term_s + drift_margin_s(term_s, drift) + 2 * delay_s - renew_s / 2 + poll_s / 2


def worst_unavailability_s(term_s: float, drift: float, poll_s: float, delay_s: float) -> float:
    """The longest such gap: a crash just after a renewal and a standby request just too
    early: ``term_s + margin + poll_s + 2 delay_s`` (about L plus the drift bound)."""
    return term_s + drift_margin_s(term_s, drift) + poll_s + 2 * delay_s


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> dict[str, Any]:
    """One run; every random number drawn up front. Returns the crash and take-over times per
    lock, renewal and acquire-attempt counts, and (with ``trace``) the event log."""
    s = scenario
    rng = rng if rng is not None else np.random.default_rng(s.seed)
    sessions = s.holders // s.per_session
    phase = rng.uniform(0, s.renew_s, sessions)
    crash = s.warmup_s + rng.uniform(0, s.renew_s, sessions)
    poll_phase = rng.uniform(0, s.poll_s, s.holders)
    jitter = rng.uniform(0, 1, (s.holders, 1024)) if s.backoff is not None else None
    crashed = np.repeat(crash, s.per_session)
    env = simpy.Environment()
    locks = [LeaseLock(s.term_s, s.drift, clock=lambda: env.now) for _ in range(s.holders)]
    leases: list[Lease | None] = [lock.acquire("holder") for lock in locks]
    taken = np.full(s.holders, np.nan)
    events: list[tuple[float, str, int]] = []
    counts = {"renewals": 0, "attempts": 0}

    def holder(k: int):  # renews at phase, phase + R, ... (the first renewal within R)
        mine = range(k * s.per_session, (k + 1) * s.per_session)
        next_renewal = phase[k]
        while next_renewal <= crash[k]:
            yield env.timeout(next_renewal - env.now)
            counts["renewals"] += s.renew_s <= env.now < s.warmup_s
            events.append((env.now, "renew", k))
            env.process(deliver(lambda mine=mine: renew(mine)))
            next_renewal += s.renew_s
        yield env.timeout(crash[k] - env.now)
        for i in mine:
            events.append((env.now, "crash", i))
            if s.graceful:
                env.process(deliver(lambda i=i: locks[i].release(leases[i])))

    def renew(mine: range) -> None:
        for i in mine:
            leases[i] = locks[i].renew(leases[i]) or leases[i]

    def deliver(action):
        yield env.timeout(s.delay_s)
        action()

    def standby(i: int):
        tries, draws = 0, iter(jitter[i]) if jitter is not None else None
        if draws is None:
            yield from skip_refused(i)
        else:
            yield env.timeout(poll_phase[i])
        while True:
            counts["attempts"] += 1
            yield env.timeout(s.delay_s)
            got = locks[i].acquire("standby")
            if got is not None:
                yield env.timeout(s.delay_s)
                taken[i] = env.now
                events.append((env.now, "taken", i))
                return
            tries += 1
            wait = s.poll_s if draws is None else s.backoff.delay(tries, 0.0, draws.__next__)
            yield env.timeout(max(wait - s.delay_s, 0.0))

    def skip_refused(i: int):
        """The fast path of fixed polling: a refused attempt changes nothing, so skip (and
        count) those whose answer is certain: every one arriving before the lock is free."""
        yield env.timeout(crashed[i] + s.delay_s)
        yield env.timeout(0)  # after anything else due now: the holder's last message landed
        lease, lock = locks[i].lease, locks[i]
        free_at = env.now if lease is None else max(env.now, lease.expires_s + lock.margin_s)
        skipped = max(0, int(np.ceil((free_at - s.delay_s - poll_phase[i]) / s.poll_s)))
        counts["attempts"] += skipped
        yield env.timeout(max(poll_phase[i] + skipped * s.poll_s - env.now, 0.0))

    for k in range(sessions):
        env.process(holder(k))
    for i in range(s.holders):
        env.process(standby(i))
    env.run(until=s.warmup_s + s.renew_s + worst_unavailability_s(
        s.term_s, s.drift, s.poll_s if s.backoff is None else s.backoff.cap_s, s.delay_s) + 1)
    return {"scenario": s, "crash_s": crashed, "taken_s": taken, "counts": counts,
            "events": events if s.trace else []}


def summary(result: dict[str, Any]) -> dict[str, float]:
    """Unavailability after the crashes (mean, max), renewal load and standby attempts per
    second before the crashes."""
    s: Scenario = result["scenario"]
    gap = result["taken_s"] - result["crash_s"]
    return {"unavailable_mean_s": float(np.nanmean(gap)),
            "unavailable_max_s": float(np.nanmax(gap)),
            "taken_over": float(np.mean(np.isfinite(gap))),
            "renewals_per_s": float(result["counts"]["renewals"] / (s.warmup_s - s.renew_s)),
            "attempts_per_s": result["counts"]["attempts"] / (s.warmup_s + s.term_s)}


def sweep_terms(base: Scenario, terms: list[float], replications: int = 5) -> list[dict]:
    """Mean and worst unavailability and renewal load against the lease term, with 95 %
    intervals over ``replications`` runs."""
    def model(rng, term_s):  # warm-up two terms: enough renewals to count, no longer
        return summary(simulate(replace(base, term_s=term_s, warmup_s=2 * term_s), rng))

    rows = sweep(model, {"term_s": terms}, seed=base.seed, replications=replications)
    return aggregate(rows, by=["term_s"], metrics=["unavailable_mean_s", "unavailable_max_s",
                                                   "renewals_per_s"])


def plot_sweep(rows: list[dict], base: Scenario):
    """Two panels against the term: unavailability (simulated, with the closed forms dashed)
    and renewals per second (simulated and holders / renewal interval)."""
    axes = plots.sweep_panels(rows, x="term_s", by=None,
                              metrics=["unavailable_mean_s", "renewals_per_s"],
                              xlabel="lease term L (s)", group_label=lambda _: "simulated mean",
                              ylabels={"unavailable_mean_s": "unavailable after a crash (s)",
                                       "renewals_per_s": "renewals at the server (1/s)"},
                              log_y=("renewals_per_s",))
    terms = np.array([row["term_s"] for row in rows])
    worst = [row["unavailable_max_s"] for row in rows]
    axes[0].plot(terms, worst, marker="s", markersize=4, label="simulated worst")
    axes[0].plot(terms, [mean_unavailability_s(t, base.renew_fraction * t, base.drift,
                                               base.poll_s, base.delay_s) for t in terms],
                 "k--", label="theory: mean")
    axes[0].plot(terms, [worst_unavailability_s(t, base.drift, base.poll_s, base.delay_s)
                         for t in terms], "k:", label="theory: L + margin + poll + 2d")
    axes[0].legend(fontsize=8)
    axes[1].plot(terms, [renewal_rate(base.holders, base.renew_fraction * t, base.per_session)
                         for t in terms], "k--", label="theory: holders / interval")
    axes[1].legend(fontsize=8)
    return axes


def plot_frontier(rows: list[dict], base: Scenario):
    """One panel: failover time (mean and worst) against renewal load, a point per term."""
    load = [row["renewals_per_s"] for row in rows]
    labels = [f"L={row['term_s']:g} s" for row in rows]
    ax = plots.tradeoff({"mean": (load, [row["unavailable_mean_s"] for row in rows]),
                         "worst": (load, [row["unavailable_max_s"] for row in rows])},
                        xlabel="renewals at the server (1/s)",
                        ylabel="unavailable after a crash (s)", annotations={"mean": labels})
    plots.log_scale(ax, "x")
    plots.log_scale(ax, "y")
    return ax


def plot_dashboard(result: dict[str, Any], bin_s: float = 1.0):
    """Renewals per second, locks held and locks orphaned over time, crash episode shaded."""
    s: Scenario = result["scenario"]
    end = s.warmup_s + s.renew_s + s.term_s * 1.2 + s.poll_s + 1
    edges = np.arange(0.0, end + bin_s, bin_s)
    mids = edges[:-1] + bin_s / 2
    times = {kind: np.array([t for t, k, _ in result["events"] if k == kind])
             for kind in ("renew", "crash", "taken")}
    renew = np.histogram(times["renew"], edges)[0] / bin_s
    crashed = np.searchsorted(np.sort(times["crash"]), mids)
    taken = np.searchsorted(np.sort(times["taken"]), mids)
    return plots.dashboard(mids, {
        "renewals (1/s)": {"renewals": renew},
        "locks (count)": {"orphaned (holder dead, not yet taken over)": crashed - taken,
                          "taken over by a standby": taken}},
        windows=[(float(result["crash_s"].min()), float(result["crash_s"].max()))],
        window_label="holders crash")


# ---------------------------------------------------------------- protocol lab

LOCK = "n1"


class LeaseNode(Node):
    """Lock service (``n1``), workers (the middle nodes) and storage (the last node) in one
    class: each node plays the role its id gives it.

    Worker: queues client writes; with a lease it works ``work_s`` on each, then sends
    ``("write", token, value, request)`` to the storage, which answers the client; it renews
    by asking again when its lease nears its deadline, and releases when its queue is empty.
    Lock service: ``("acquire",)`` gets ``("granted", token, term_s)`` or ``("busy",)``.
    """

    term_s = 0.3
    drift = 0.0  # the server's margin covers clocks off by this much
    work_s = 0.03
    guard_s = 0.05  # a worker with `recheck` writes only this long before its deadline
    retry_s = 0.02
    ask_timeout_s = 0.1
    fence = False
    recheck = False

    def on_start(self, ctx):
        self.role = "lock" if ctx.node_id == LOCK else (
            "store" if ctx.node_id == ctx.nodes[-1] else "worker")
        if self.role == "lock":
            self.lock_start(ctx)
        elif self.role == "store":
            ctx.disk.setdefault("log", [])
            ctx.disk.setdefault("highest", 0)
        else:
            self.queue, self.busy, self.asking = [], False, False
            self.token, self.deadline, self.sent = None, -1.0, 0.0

    # lock service: the lesson's version keeps its state in memory
    def lock_start(self, ctx):
        self.token, self.holder, self.expires = 0, None, -1.0

    def on_acquire(self, ctx, src):
        margin = drift_margin_s(self.term_s, self.drift)
        if self.holder == src and ctx.now < self.expires:
            self.expires = ctx.now + self.term_s
        elif self.holder is None or ctx.now >= self.expires + margin:
            self.token, self.holder, self.expires = self.token + 1, src, ctx.now + self.term_s
        else:
            ctx.send(src, ("busy",))
            return
        ctx.send(src, ("granted", self.token, self.term_s))

    def on_release(self, ctx, src, token):
        if self.holder == src and self.token == token:
            self.holder = None

    # storage
    def store_write(self, ctx, token, value, request):
        if self.fence and token < ctx.disk["highest"]:
            ctx.fail(request)
            return
        ctx.disk["highest"] = max(ctx.disk["highest"], token)
        ctx.disk["log"].append((token, value))
        ctx.reply(request, token)

    # everyone
    def on_request(self, ctx, request):
        if request.f == "read":
            if self.role == "store":
                ctx.reply(request, tuple(ctx.disk["log"]))
            else:
                ctx.send(ctx.nodes[-1], ("read", request))
        elif self.role == "worker":
            self.queue.append(request)
            self.pump(ctx)
        else:
            ctx.fail(request)

    def on_message(self, ctx, src, message):
        kind = message[0]
        if kind == "acquire":
            self.on_acquire(ctx, src)
        elif kind == "release":
            self.on_release(ctx, src, message[1])
        elif kind == "write":
            self.store_write(ctx, *message[1:])
        elif kind == "read":
            ctx.reply(message[1], tuple(ctx.disk["log"]))
        elif kind == "granted":
            self.asking = False
            self.token, self.deadline = message[1], holder_deadline_s(self.sent, message[2])
            self.pump(ctx)
        elif kind == "busy":
            self.asking = False
            ctx.set_timer(self.retry_s, "retry")

    def on_timer(self, ctx, name):
        if name == self.sent and self.asking:  # no answer: the request or its reply was lost
            self.asking = False
        if name == "done":
            request, self.busy = self.queue.pop(0), False
            if self.recheck and ctx.now > self.deadline - self.guard_s:
                self.token = None
                ctx.fail(request)
            else:
                ctx.send(ctx.nodes[-1], ("write", self.token, request.value, request))
            if not self.queue and self.token is not None:
                ctx.send(LOCK, ("release", self.token))
                self.token = None
        self.pump(ctx)

    def pump(self, ctx):
        if self.busy or not self.queue or self.asking:
            return
        if self.token is not None and ctx.now + self.work_s + self.guard_s < self.deadline:
            self.busy = True
            ctx.set_timer(self.work_s, "done")
            return
        self.asking, self.sent = True, ctx.now
        ctx.send(LOCK, ("acquire",))
        ctx.set_timer(self.ask_timeout_s, self.sent)


class CarefulLeaseNode(LeaseNode):
    """Workers that check their lease again just before each write, and a server whose margin
    covers clocks drifting up to 20 % (the lab's clock faults are that large, to be visible)."""

    recheck = True
    drift = 0.2


RESTARTS = Nemesis(tuple(Crash(LOCK, t, t + 0.05) for t in (2.0, 4.0, 6.0, 8.0)))
"""The lock service crashes four times and is back 50 ms later: leases it granted still run."""

FAULTS = RandomNemesis(kinds=("crash", "pause", "clock"), max_skew_s=0.0, max_drift=0.2,
                       mean_fault_s=0.6)
"""Crashes (restarted), pauses and clocks drifting up to 20 %, from the seed."""


@cache
def lab_scenario(nemesis: Any = None, n_ops: int = 150, rate: float = 20.0,
                 workers: int = 3) -> LabScenario:
    """The lab run the lesson uses: a lock, ``workers`` workers and a storage; ``n_ops``
    writes from 6 clients at ``rate`` per second."""
    return LabScenario(nodes=workers + 2,
                       workload=LockedWriteWorkload(n_ops=n_ops, rate=rate, clients=6),
                       nemesis=nemesis if nemesis is not None else Nemesis())
