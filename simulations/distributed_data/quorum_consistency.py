"""The quorum study: read and write latency against the chance of a stale read, as R and W vary.

Picture the club's secretaries again, now with a stopwatch on every phone call. A change takes
a while to reach each secretary (W) and her confirmation a while to come back (A); a question
takes a while to reach her (R) and her answer a while to return (S). The caller waits for the
W-th confirmation or the R-th answer, so latency is an order statistic of N such calls; an
answer is stale when the question reached that secretary before the last change did. These are
the four delays of the WARS model (Bailis et al., "Probabilistically Bounded Staleness for
Practical Partial Quorums", PVLDB 5(8), 2012).

- the SimPy study: ``Scenario`` (N, R, W, read and write rates, the four legs, a slow replica,
  read repair), ``simulate`` (Dynamo-style: every operation goes to all N replicas, the
  coordinator waits for W acks or R answers with the pattern's ``WriteQuorum`` /
  ``ReadQuorum``, and the replicas are the pattern's ``Replica``), ``summary`` (the run's own
  R and W, or any other R and W replayed on the same messages), ``sweep``, ``timeline``,
  ``visibility`` (stale reads against the time since the last write completed);
- closed forms: ``leg_pair_cdf`` and ``quorum_latency_percentile`` / ``quorum_latency_mean``
  (the k-th of N order statistic of a two-leg round trip), ``nonintersection_probability``
  (PBS's (N − W choose R) / (N choose R)) and ``instant_ack_staleness`` (its exact extension to
  time t when acks and read requests are instant and W is exponential), and
  ``wars_staleness``, the paper's Monte Carlo of t-visibility for any legs;
- the protocol lab: ``DynamoQuorum`` and ``dynamo_quorum`` (partial or strict quorums, last
  writer wins, reads without write-back), ``ABDRegister`` (Attiya, Bar-Noy and Dolev's
  linearizable register, with a query phase before writes as Lynch and Shvartsman extended it
  to many writers);
- plots: ``plot_tradeoff``, ``plot_dashboard``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import simpy

from patterns.checks import check_choice, check_int, check_non_negative, check_positive
from patterns.distributed_data.quorum_consistency import (
    NEVER_WRITTEN,
    ReadQuorum,
    Replica,
    Version,
    WriteQuorum,
)
from simulations import theory
from simulations.clients import RequestSource
from simulations.distributions import Deterministic, Distribution, Exponential
from simulations.experiments import aggregate
from simulations.lab.node import Context, Node, Request
from simulations.metrics import latency_percentiles, per_bin, percentile_of
from simulations.workloads import PoissonArrivals

__all__ = [
    "ABDRegister", "DynamoQuorum", "Legs", "Run", "Scenario", "dynamo_quorum",
    "instant_ack_staleness", "leg_pair_cdf", "nonintersection_probability", "plot_dashboard",
    "plot_tradeoff", "quorum_latency_mean", "quorum_latency_percentile", "simulate", "summary",
    "sweep", "targeted_reads", "timeline", "visibility", "wars_staleness",
]

# ---------------------------------------------------------------- theory


def _exponential_mean(leg: Distribution, name: str) -> float:
    """The mean of an exponential leg, 0 for an instant one; anything else is refused."""
    if isinstance(leg, Exponential) or (isinstance(leg, Deterministic) and leg.mean == 0):
        return leg.mean
    raise ValueError(f"{name} must be Exponential or Deterministic(0) for the closed form "
                     f"(got {leg!r})")


def leg_pair_cdf(first: Distribution, second: Distribution) -> Callable[[float], float]:
    """P(X + Y ≤ t) for independent exponential legs X and Y (either may be instant).

    With means a ≠ b it is 1 − (a e^{−t/a} − b e^{−t/b}) / (a − b) (hypoexponential); with a = b,
    1 − e^{−t/a} (1 + t/a) (Erlang-2); with one mean 0, the other exponential alone.
    """
    a, b = _exponential_mean(first, "first"), _exponential_mean(second, "second")
    a, b = max(a, b), min(a, b)

    def cdf(t: float) -> float:
        if t <= 0:
            return 0.0 if a > 0 else 1.0
        if b == 0:
            return -math.expm1(-t / a)
        if math.isclose(a, b):
            return 1.0 - math.exp(-t / a) * (1.0 + t / a)
        return 1.0 - (a * math.exp(-t / a) - b * math.exp(-t / b)) / (a - b)

    return cdf


def quorum_latency_percentile(first: Distribution, second: Distribution, n: int, k: int,
                              quantile: float) -> float:
    """The ``quantile`` of the k-th fastest of n independent round trips ``first`` + ``second``
    (``theory.order_statistic_percentile``): a read waiting for R = k answers, or a write for
    W = k acks, sent to all n replicas."""
    scale = first.mean + second.mean
    return theory.order_statistic_percentile(leg_pair_cdf(first, second), quantile, n, k,
                                             scale=scale if scale > 0 else 1.0)


def quorum_latency_mean(first: Distribution, second: Distribution, n: int, k: int) -> float:
    """E[k-th fastest of n round trips] = ∫ P(it is not done by t) dt, integrated numerically
    (Simpson's rule to 40 mean round trips). With one leg instant and the other Exp(μ) this is
    ``theory.exponential_order_statistic_mean(n, k, μ)`` = (1/μ) Σ_{j=n−k+1}^{n} 1/j."""
    cdf = leg_pair_cdf(first, second)
    top = 40 * (first.mean + second.mean)
    t = np.linspace(0.0, top, 4001)
    tail = np.array([1.0 - theory.order_statistic_cdf(cdf(x), n, k) for x in t])
    h = t[1] - t[0]
    return float(h / 3 * (tail[0] + tail[-1] + 4 * tail[1:-1:2].sum() + 2 * tail[2:-1:2].sum()))


def _check_nrw(n: int, r: int, w: int) -> None:
    check_int("n", n, 1)
    check_int("r", r, 1, n)
    check_int("w", w, 1, n)


def nonintersection_probability(n: int, r: int, w: int) -> float:
    """P(a read quorum of r misses a write quorum of w), both drawn uniformly among n:
    C(n − w, r) / C(n, r) (PBS, eq. 1; 0 when r + w > n)."""
    _check_nrw(n, r, w)
    return math.comb(n - w, r) / math.comb(n, r)


def instant_ack_staleness(n: int, r: int, w: int, write_mean_s: float, t: float) -> float:
    """P(stale read t seconds after a write completes) in WARS with exponential write legs of
    mean ``write_mean_s`` and instant acks and read requests (A = R = 0; S anything).

    The write completes when the w-th replica has it; by memorylessness each of the other n − w
    still gets it within t with probability q = 1 − e^{−t / mean}, so K = w + Binomial(n − w, q)
    replicas are fresh, and the first r answers are r replicas drawn uniformly (S does not
    depend on W): P(stale) = Σ_k P(K = k) C(n − k, r) / C(n, r). At t = 0 it is
    ``nonintersection_probability``.
    """
    _check_nrw(n, r, w)
    check_positive("write_mean_s", write_mean_s)
    q = -math.expm1(-check_non_negative("t", t) / write_mean_s)
    late = n - w
    return sum(math.comb(late, j) * q**j * (1 - q) ** (late - j)
               * math.comb(n - w - j, r) / math.comb(n, r) for j in range(late + 1))


@dataclass(frozen=True)
class Legs:
    """The four WARS delays (s): write to a replica (it stores the write on arrival), its ack
    back, a read request to a replica (it answers from what it holds then), the answer back."""

    write: Distribution = field(default_factory=lambda: Exponential(0.004))
    ack: Distribution = field(default_factory=lambda: Exponential(0.001))
    read: Distribution = field(default_factory=lambda: Exponential(0.001))
    response: Distribution = field(default_factory=lambda: Exponential(0.001))


def _draw(leg: Distribution, rng: np.random.Generator, rows: int, n: int) -> np.ndarray:
    return np.asarray(leg.sample(rng, rows * n), dtype=float).reshape(rows, n)


def wars_staleness(n: int, r: int, w: int, legs: Legs, lags: np.ndarray | float,
                   samples: int = 100_000, rng: np.random.Generator | None = None
                   ) -> float:
    """P(stale read) by the PBS paper's Monte Carlo of WARS (its Section 5.1): draw the n legs
    W, A, R, S; the write completes at w_t, the w-th smallest W + A; the read starts ``lags``
    later (a number, or one lag per sample); it is stale unless one of the r answers that come
    first (smallest R + S) reached a replica that already had the write, W ≤ w_t + lag + R."""
    _check_nrw(n, r, w)
    samples = check_int("samples", samples, 1)
    rng = np.random.default_rng(0) if rng is None else rng
    wl, al = _draw(legs.write, rng, samples, n), _draw(legs.ack, rng, samples, n)
    rl, sl = _draw(legs.read, rng, samples, n), _draw(legs.response, rng, samples, n)
    done = np.sort(wl + al, axis=1)[:, w - 1]
    first = np.argsort(rl + sl, axis=1)[:, :r]
    arrive = np.take_along_axis(rl, first, axis=1) + (done + np.asarray(lags, float))[:, None]
    fresh = np.take_along_axis(wl, first, axis=1) <= arrive
    return float(1.0 - fresh.any(axis=1).mean())


# ---------------------------------------------------------------- the SimPy study


@dataclass(frozen=True)
class Scenario:
    """One run: ``n`` replicas, reads waiting for ``r`` answers and writes for ``w`` acks, Poisson
    reads and writes of one key, the WARS ``legs``; ``slow`` = (start_s, end_s, factor) makes
    every leg of replica n1 ``factor`` times slower for operations starting in that window;
    ``read_repair`` writes the newest answer back to the answerers that were behind."""

    n: int = 3
    r: int = 1
    w: int = 1
    read_rate: float = 100.0
    write_rate: float = 10.0
    legs: Legs = field(default_factory=Legs)
    slow: tuple[float, float, float] | None = None
    read_repair: bool = False
    duration_s: float = 20.0
    seed: int = 1

    def __post_init__(self) -> None:
        check_int("Scenario.n", self.n, 1)
        check_int("Scenario.r", self.r, 1, self.n)
        check_int("Scenario.w", self.w, 1, self.n)
        check_positive("Scenario.read_rate", self.read_rate)
        check_positive("Scenario.write_rate", self.write_rate)
        check_positive("Scenario.duration_s", self.duration_s)
        if self.slow is not None:
            start, end, factor = self.slow
            check_non_negative("Scenario.slow start_s", start)
            if not end > start:
                raise ValueError(f"Scenario.slow end_s must be > start_s = {start:g} "
                                 f"(got {end!r})")
            check_positive("Scenario.slow factor", factor)


@dataclass(frozen=True, eq=False)
class Run:
    """Every message time of a run. Writes: ``write_start`` (also each write's stamp: the
    coordinator's clock), ``ack_at`` (when each replica's ack reached the coordinator, one
    column per replica), ``write_done`` (the w-th ack). Reads: ``read_start``, ``answer_at``
    and ``answer_stamp`` (each replica's answer: when it arrived, the stamp it carried),
    ``read_done`` and ``read_stamp`` (the r-th answer; the newest of the first r). Times that
    never came (the run ended first) are NaN; a never-written key's stamp is −inf."""

    scenario: Scenario
    write_start: np.ndarray
    ack_at: np.ndarray
    write_done: np.ndarray
    read_start: np.ndarray
    answer_at: np.ndarray
    answer_stamp: np.ndarray
    read_done: np.ndarray
    read_stamp: np.ndarray
    repairs: int


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """Run the scenario in SimPy; deterministic for ``scenario.seed`` (or ``rng``).

    Every arrival and every leg is drawn up front, so scenarios that differ only in R, W or
    read repair see the same messages (common random numbers). A write is stamped with the
    coordinator's clock (``env.now``) and sent to every replica, which stores it on arrival if
    it is newer (last writer wins) and acks; a read is sent to every replica, which answers
    with what it holds when the request arrives; the coordinator counts with the pattern's
    ``WriteQuorum`` and ``ReadQuorum``.
    """
    s = scenario
    rng = np.random.default_rng(s.seed) if rng is None else rng
    env = simpy.Environment()
    names = [f"n{i + 1}" for i in range(s.n)]
    replicas = [Replica(name) for name in names]
    next_write, next_read = itertools.count(), itertools.count()
    write_times = RequestSource(env, PoissonArrivals(s.write_rate),
                                lambda *_: start_write(next(next_write)), rng,
                                horizon_s=s.duration_s).times
    read_times = RequestSource(env, PoissonArrivals(s.read_rate),
                               lambda *_: start_read(next(next_read)), rng,
                               horizon_s=s.duration_s).times
    nw, nr = len(write_times), len(read_times)
    legs = s.legs
    wl, al = _draw(legs.write, rng, nw, s.n), _draw(legs.ack, rng, nw, s.n)
    rl, sl = _draw(legs.read, rng, nr, s.n), _draw(legs.response, rng, nr, s.n)
    fix = _draw(legs.write, rng, nr, s.n)  # read repair's write legs
    if s.slow is not None:
        start, end, factor = s.slow
        for times, arrays in ((write_times, (wl, al)), (read_times, (rl, sl, fix))):
            inside = (times >= start) & (times < end)
            for leg in arrays:
                leg[inside, 0] *= factor

    ack_at, answer_at = np.full((nw, s.n), np.nan), np.full((nr, s.n), np.nan)
    answer_stamp = np.full((nr, s.n), -np.inf)
    write_done, read_done = np.full(nw, np.nan), np.full(nr, np.nan)
    read_stamp = np.full(nr, -np.inf)
    repairs = [0]

    def later(delay: float, then: Callable[[], None]) -> None:
        env.timeout(delay).callbacks.append(lambda _: then())

    def start_write(j: int) -> None:
        version, quorum = Version((env.now, "coordinator"), j), WriteQuorum(s.w)

        def acked(i: int) -> None:
            ack_at[j, i] = env.now
            if not quorum.done and quorum.ack(names[i]):
                write_done[j] = env.now

        def stored(i: int) -> None:
            replicas[i].apply("x", version)
            later(al[j, i], lambda: acked(i))

        for i in range(s.n):
            later(wl[j, i], lambda i=i: stored(i))

    def start_read(k: int) -> None:
        quorum = ReadQuorum(s.r)

        def answered(i: int, version: Version) -> None:
            answer_at[k, i], answer_stamp[k, i] = env.now, version.stamp[0]
            if not quorum.done and quorum.offer(names[i], version):
                read_done[k], read_stamp[k] = env.now, quorum.newest.stamp[0]
                if s.read_repair:
                    for name in quorum.stale:
                        repairs[0] += 1
                        i = names.index(name)
                        later(fix[k, i], lambda i=i: replicas[i].apply("x", quorum.newest))

        def asked(i: int) -> None:
            version = replicas[i].get("x")
            later(sl[k, i], lambda: answered(i, version))

        for i in range(s.n):
            later(rl[k, i], lambda i=i: asked(i))

    env.run(until=s.duration_s + 1.0)
    return Run(s, write_times, ack_at, write_done, read_times, answer_at, answer_stamp,
               read_done, read_stamp, repairs[0])


# ---------------------------------------------------------------- metrics from the messages


def _outcome(run: Run, r: int | None, w: int | None) -> tuple[np.ndarray, ...]:
    """(write_done, read_done, read_stamp) at R = r and W = w: the run's own, or replayed on
    its messages (the replicas' states do not depend on R and W without read repair)."""
    s = run.scenario
    r, w = s.r if r is None else r, s.w if w is None else w
    _check_nrw(s.n, r, w)
    if (r, w) == (s.r, s.w):
        return run.write_done, run.read_done, run.read_stamp
    if s.read_repair:
        raise ValueError(f"r, w must be the run's own ({s.r}, {s.w}) when it has read repair "
                         f"(got ({r}, {w})): repairs change what later reads see")
    write_done = np.sort(run.ack_at, axis=1)[:, w - 1]  # NaN (never came) sorts last
    order = np.argsort(run.answer_at, axis=1)
    read_done = np.take_along_axis(run.answer_at, order[:, r - 1:r], axis=1)[:, 0]
    read_stamp = np.take_along_axis(run.answer_stamp, order[:, :r], axis=1).max(axis=1)
    return write_done, read_done, read_stamp


def _latest_completed(run: Run, write_done: np.ndarray) -> np.ndarray:
    """Per read, the stamp of the newest write completed when it started (−inf if none)."""
    done = ~np.isnan(write_done)
    order = np.argsort(write_done[done])
    ends = write_done[done][order]
    newest = np.maximum.accumulate(run.write_start[done][order]) if len(ends) else ends
    at = np.searchsorted(ends, run.read_start, side="right") - 1
    return np.where(at >= 0, newest[np.maximum(at, 0)] if len(ends) else -np.inf, -np.inf)


def _stale(run: Run, write_done: np.ndarray, read_done: np.ndarray,
           read_stamp: np.ndarray) -> np.ndarray:
    """Per read that finished: did it return a version older than the newest write completed
    before it started? (Regular semantics; NaN for reads that never finished.)"""
    stale = (read_stamp < _latest_completed(run, write_done)).astype(float)
    stale[np.isnan(read_done)] = np.nan
    return stale


def summary(run: Run, r: int | None = None, w: int | None = None,
            start_s: float = 0.0, end_s: float | None = None) -> dict[str, float]:
    """Headline numbers for operations starting in [start_s, end_s), at the run's own R and W
    or (without read repair) any other: read and write latency p50 / p99 / mean (s), the share
    of finished reads that were stale, and messages per operation (every operation goes to all
    N replicas and each answers: 2N, plus read repair's writes)."""
    s = run.scenario
    end_s = s.duration_s if end_s is None else end_s
    write_done, read_done, read_stamp = _outcome(run, r, w)
    wpart = (run.write_start >= start_s) & (run.write_start < end_s)
    rpart = (run.read_start >= start_s) & (run.read_start < end_s)
    reads = (read_done - run.read_start)[rpart]
    writes = (write_done - run.write_start)[wpart]
    stale = _stale(run, write_done, read_done, read_stamp)[rpart]
    rp, wp = latency_percentiles(reads, [50, 99]), latency_percentiles(writes, [50, 99])
    ops = int(rpart.sum() + wpart.sum())
    own = (r or s.r, w or s.w) == (s.r, s.w)
    return {
        "read_p50_s": rp["latency_p50_s"], "read_p99_s": rp["latency_p99_s"],
        "read_mean_s": float(np.nanmean(reads)) if len(reads) else math.nan,
        "write_p50_s": wp["latency_p50_s"], "write_p99_s": wp["latency_p99_s"],
        "write_mean_s": float(np.nanmean(writes)) if len(writes) else math.nan,
        "stale_fraction": float(np.nanmean(stale)) if len(stale) else math.nan,
        "reads": int(rpart.sum()), "writes": int(wpart.sum()),
        "messages_per_op": 2 * s.n + (run.repairs / ops if own and ops else 0.0),
    }


SWEEP_METRICS = ("read_p50_s", "read_p99_s", "read_mean_s", "write_p50_s", "write_p99_s",
                 "write_mean_s", "stale_fraction")


def sweep(base: Scenario, ns: Sequence[int] = (3, 5), replications: int = 1
          ) -> list[dict[str, Any]]:
    """Every (R, W) for each N in ``ns``: one simulation per N and replication serves all of
    them (the messages are the same; only what the coordinator waits for changes), summarised
    and ``aggregate``-d over the replications (mean and 95 % half-width ``<metric>_ci``).
    Replication i of every N uses child i of ``SeedSequence(base.seed)``."""
    if base.read_repair:
        raise ValueError("sweep needs a base scenario without read_repair (got read_repair="
                         "True): repairs make each (R, W) a run of its own")
    replications = check_int("replications", replications, 1)
    children = np.random.SeedSequence(base.seed).spawn(replications)
    rows = []
    for n in ns:
        for i, child in enumerate(children):
            run = simulate(replace(base, n=check_int("n", n, 1), r=1, w=1),
                           np.random.default_rng(child))
            rows += [{"n": n, "r": r, "w": w, "replication": i, **summary(run, r, w)}
                     for r in range(1, n + 1) for w in range(1, n + 1)]
    return aggregate(rows, by=["n", "r", "w"], metrics=SWEEP_METRICS)


def timeline(run: Run, r: int | None = None, w: int | None = None,
             bin_s: float = 1.0) -> dict[str, np.ndarray]:
    """Per bin of operation start times: read and write p99 (s) and the stale share of reads."""
    end = run.scenario.duration_s
    write_done, read_done, read_stamp = _outcome(run, r, w)
    stale = _stale(run, write_done, read_done, read_stamp)
    time_s, read_p99 = per_bin(run.read_start, read_done - run.read_start, bin_s, 0.0, end,
                               percentile_of(99))
    _, write_p99 = per_bin(run.write_start, write_done - run.write_start, bin_s, 0.0, end,
                           percentile_of(99))
    _, stale_share = per_bin(run.read_start, stale, bin_s, 0.0, end,
                             lambda x: float(np.nanmean(x)) if np.isfinite(x).any() else np.nan)
    return {"time_s": time_s, "read_p99_s": read_p99, "write_p99_s": write_p99,
            "stale_fraction": stale_share}


def visibility(run: Run, r: int | None = None, w: int | None = None) -> dict[str, np.ndarray]:
    """The reads that PBS's t-visibility is about: every write started before the read had
    completed when it started, and none started before it finished. For each, ``lag_s`` (its
    start minus the last write's completion) and ``stale`` (1.0 if it missed that write)."""
    write_done, read_done, read_stamp = _outcome(run, r, w)
    finished = np.where(np.isnan(write_done), np.inf, write_done)
    all_done_by = np.maximum.accumulate(finished)  # writes are in start order
    before = np.searchsorted(run.write_start, run.read_start, side="right") - 1
    after = np.append(run.write_start, np.inf)[before + 1]
    last = np.maximum(before, 0)
    keep = ((before >= 0) & (all_done_by[last] <= run.read_start) & (after > read_done)
            & ~np.isnan(read_done))
    lag = run.read_start[keep] - write_done[last[keep]]
    return {"lag_s": lag, "stale": (read_stamp[keep] < run.write_start[last[keep]]).astype(float)}


def targeted_reads(run: Run, r: int, rng: np.random.Generator,
                   hedger: Any = None) -> dict[str, float]:
    """Reads sent to only ``r`` replicas drawn at random (as Cassandra sends them) instead of
    all N, replayed on the run's round trips: the read waits for all r of them. With a
    ``hedger`` (the hedged-requests lesson's ``HedgedRequests`` or ``AdaptiveHedger``), one more
    replica is asked once ``hedger.hedge_delay()`` has passed without r answers (Cassandra's
    speculative retry), if ``hedger.admit_hedge()`` allows it. Returns the read latency p50 /
    p99 (s) and the messages per read."""
    s = run.scenario
    check_int("r", r, 1, s.n)
    trips = run.answer_at - run.read_start[:, None]
    latencies, messages = [], 0
    for k in np.flatnonzero(np.isfinite(trips).all(axis=1)):
        order = rng.permutation(s.n)
        chosen = trips[k, order[:r]]
        took = float(np.sort(chosen)[r - 1])
        messages += 2 * r
        if hedger is not None and r < s.n:
            delay = hedger.hedge_delay()
            if took > delay and hedger.admit_hedge():
                messages += 2
                hedged = float(np.sort(np.append(chosen, delay + trips[k, order[r]]))[r - 1])
                hedger.record(hedged, hedged < took)
                took = hedged
            else:
                hedger.record(took, False)
        latencies.append(took)
    p = latency_percentiles(np.array(latencies), [50, 99])
    return {"read_p50_s": p["latency_p50_s"], "read_p99_s": p["latency_p99_s"],
            "messages_per_read": messages / max(len(latencies), 1)}


# ---------------------------------------------------------------- the protocol lab


class DynamoQuorum(Node):
    """A Dynamo-style register: the node a client asks coordinates. A write is stamped with the
    coordinator's clock and name (last writer wins), sent to every node and answered after
    ``w`` acks; a read asks every node and answers the newest of the first ``r`` answers, with
    no write-back. Each node's copy is a pattern ``Replica`` on its disk. ``stamp`` is
    ``"clock"`` (the node's wall clock, as Cassandra's timestamps) or ``"counter"`` (a per-node
    count of writes). Compare-and-set is refused (it needs consensus)."""

    r, w, stamp = 1, 1, "clock"

    def on_start(self, ctx: Context) -> None:
        self.pending: dict[int, tuple[Request, ReadQuorum | WriteQuorum]] = {}

    def on_request(self, ctx: Context, request: Request) -> None:
        if request.f == "write":
            self.pending[request.id] = (request, WriteQuorum(self.w))
            version = Version(self.next_stamp(ctx), request.value)
            message = ("store", request.id, request.key, version)
        elif request.f == "read":
            self.pending[request.id] = (request, ReadQuorum(self.r))
            message = ("fetch", request.id, request.key)
        else:
            ctx.fail(request)
            return
        for node in ctx.nodes:
            ctx.send(node, message)

    def next_stamp(self, ctx: Context) -> tuple[float, str]:
        if self.stamp == "clock":
            return (ctx.now, ctx.node_id)
        ctx.disk["writes"] = ctx.disk.get("writes", 0) + 1
        return (ctx.disk["writes"], ctx.node_id)

    def on_message(self, ctx: Context, src: str, message: tuple) -> None:
        kind, op = message[0], message[1]
        replica = ctx.disk.setdefault("replica", Replica(ctx.node_id))
        if kind == "store":
            replica.apply(message[2], message[3])
            ctx.send(src, ("stored", op))
        elif kind == "fetch":
            ctx.send(src, ("fetched", op, replica.get(message[2])))
        elif op in self.pending:
            request, quorum = self.pending[op]
            done = quorum.ack(src) if kind == "stored" else quorum.offer(src, message[2])
            if done:
                del self.pending[op]
                ctx.reply(request, quorum.newest.value if kind == "fetched" else None)


def dynamo_quorum(r: int, w: int, stamp: str = "clock") -> type[DynamoQuorum]:
    """A ``DynamoQuorum`` node class with these R, W and stamps (the lab takes a class)."""
    check_int("r", r, 1)
    check_int("w", w, 1)
    check_choice("stamp", stamp, ("clock", "counter"))
    return type(f"DynamoQuorumR{r}W{w}", (DynamoQuorum,), {"r": r, "w": w, "stamp": stamp})


@dataclass
class _Operation:
    request: Request
    quorum: ReadQuorum | WriteQuorum
    version: Version = NEVER_WRITTEN
    phase: str = "query"


class ABDRegister(Node):
    """Attiya, Bar-Noy and Dolev's register over majorities, for many writers.

    Every operation has two phases, each a round trip to all nodes that ends with a majority's
    replies. Phase 1 (``query``) collects the majority's (stamp, value). A write then stamps its
    value (highest counter + 1, and a writer name unique to the operation: node and request id,
    since one node may coordinate two writes at once) and a read takes the newest version it saw;
    phase 2 (``update``) stores that version at a majority (a replica keeps it if newer), and
    only then is the client answered. The read's write-back is what stops a later read from
    returning an older value; the write's query phase is what makes its stamp higher than every
    completed write's, with no clock involved.
    """

    def on_start(self, ctx: Context) -> None:
        self.ops: dict[int, _Operation] = {}

    def majority(self, ctx: Context) -> int:
        return len(ctx.nodes) // 2 + 1

    def on_request(self, ctx: Context, request: Request) -> None:
        if request.f not in ("read", "write"):
            ctx.fail(request)
            return
        self.ops[request.id] = _Operation(request, ReadQuorum(self.majority(ctx)))
        for node in ctx.nodes:
            ctx.send(node, ("query", request.id, request.key))

    def on_message(self, ctx: Context, src: str, message: tuple) -> None:
        kind, op_id = message[0], message[1]
        replica = ctx.disk.setdefault("replica", Replica(ctx.node_id))
        if kind == "query":
            ctx.send(src, ("state", op_id, replica.get(message[2])))
        elif kind == "update":
            replica.apply(message[2], message[3])
            ctx.send(src, ("updated", op_id))
        elif op_id in self.ops:
            op = self.ops[op_id]
            if kind == "state" and op.phase == "query" and op.quorum.offer(src, message[2]):
                self.queried(ctx, op)
            elif kind == "updated" and op.phase == "update" and op.quorum.ack(src):
                self.finish(ctx, op, op.version.value if op.request.f == "read" else None)

    def queried(self, ctx: Context, op: _Operation) -> None:
        """Phase 1 is over: choose the version phase 2 stores."""
        newest = op.quorum.newest
        if op.request.f == "write":
            writer = f"{ctx.node_id}/{op.request.id}"  # unique even for concurrent writes
            newest = Version((max(newest.stamp[0], 0) + 1, writer), op.request.value)
        self.update(ctx, op, newest)

    def update(self, ctx: Context, op: _Operation, version: Version) -> None:
        """Phase 2: store ``version`` at a majority."""
        op.phase, op.version, op.quorum = "update", version, WriteQuorum(self.majority(ctx))
        for node in ctx.nodes:
            ctx.send(node, ("update", op.request.id, op.request.key, version))

    def finish(self, ctx: Context, op: _Operation, value: Any) -> None:
        del self.ops[op.request.id]
        ctx.reply(op.request, value)


# ---------------------------------------------------------------- plots


def plot_tradeoff(rows: Sequence[dict[str, Any]], ns: Sequence[int] = (3, 5)) -> list:
    """One panel per N: p99 read latency (ms) against the stale share of reads (%), a line per W
    through R = 1 ... N, with 95 % bars where the rows have them."""
    from simulations import plots

    fig, axes = plots.plt.subplots(1, len(ns), figsize=(5.0 * len(ns), 3.8), layout="constrained",
                                   squeeze=False)
    for ax, n in zip(axes[0], ns, strict=True):
        ax.set_prop_cycle(color=plots.COLORS)
        part = [row for row in rows if row["n"] == n]
        ws = sorted({row["w"] for row in part})
        curves, ci, labels = {}, {}, {}
        for w in ws:
            line = sorted((row for row in part if row["w"] == w), key=lambda row: row["r"])
            name = f"W = {w}"
            curves[name] = ([1000 * row["read_p99_s"] for row in line],
                            [100 * row["stale_fraction"] for row in line])
            ci[name] = [100 * row.get("stale_fraction_ci", math.nan) for row in line]
            labels[name] = [f"R={row['r']}" for row in line]
        plots.tradeoff(curves, xlabel="p99 read latency (ms)", ylabel="stale reads (%)",
                       annotations=labels, ci=ci, ax=ax)
        ax.set_title(f"N = {n}")
    return list(axes[0])


def plot_dashboard(runs: dict[str, tuple[Run, int, int]], bin_s: float = 1.0) -> list:
    """Over time: p99 read and write latency (ms) and the stale share of reads (%), one line per
    (run, R, W); the first run's slow-replica window shaded."""
    from simulations import plots

    series = {label: timeline(run, r, w, bin_s) for label, (run, r, w) in runs.items()}
    first = next(iter(runs.values()))[0].scenario
    panels = {
        "p99 read latency (ms)": {k: 1000 * v["read_p99_s"] for k, v in series.items()},
        "p99 write latency (ms)": {k: 1000 * v["write_p99_s"] for k, v in series.items()},
        "stale reads (%)": {k: 100 * v["stale_fraction"] for k, v in series.items()},
    }
    windows = [first.slow[:2]] if first.slow else []
    return plots.dashboard(next(iter(series.values()))["time_s"], panels, windows=windows,
                           window_label="replica n1 slow")
