"""The saga study: completion time and compensation work against per-step failure probability,
and a hot row's throughput under a saga's short local transactions against two-phase commit.

Picture the trip booked shop by shop, now with a stopwatch and a tally: each booking takes a
while and may fail; a failure at the i-th booking costs i - 1 cancellations, and the sooner the
likely failure comes, the less there is to undo. Then picture the one room every traveller
wants (a hot row): with two-phase commit it stays locked while the coordinator collects votes
and writes its decision, two round trips and a few log forces; a saga's local transaction locks
it only for its own short commit.

``simulate`` runs sagas (Poisson starts, exponential step and compensation times, a failure
draw per attempt, retries with doubling backoff for transient failures, a failure-rate
``outage`` on one step) on numbers drawn up front from one seeded generator, so runs that differ
only in the settings see the same draws; ``replay_real`` drives the real Level 2 `Saga` with the
same draws on a hand-moved clock and gets the same rows. ``simulate_hot_row`` is the hot row as
a one-server FIFO queue (the row lock) whose service is the lock-hold time, run on the toolkit's
SimPy ``ServerPool`` or its fast path (same rows). The closed forms sit beside the models.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import simpy

from patterns.checks import (
    check_choice,
    check_int,
    check_non_negative,
    check_positive,
    check_probability,
)
from patterns.communication.saga import COMMITTED, Saga, Step, StepFailed
from simulations import experiments
from simulations.distributions import Deterministic
from simulations.fastpath import fifo_queue
from simulations.metrics import occupancy, per_bin, percentile_of, rate_over_time, time_average
from simulations.records import RequestTable
from simulations.servers import ServerPool
from simulations.workloads import PoissonArrivals

__all__ = [
    "HotRow", "MAX_ATTEMPTS", "PROTOCOLS", "Run", "STEP_NAMES", "Saga", "Scenario",
    "abort_probabilities", "commit_probability", "draw_hot_row", "draw_tradeoff",
    "expected_compensations", "expected_duration", "hot_row_capacity", "hot_row_summary",
    "lock_hold_s", "over_time", "plot_dashboard", "plot_sweep", "replay_real", "simulate",
    "simulate_hot_row", "step_failure_probability", "summary", "sweep", "uniform",
]

STEP_NAMES = ("create_order", "reserve", "charge", "confirm")  # the Level 3 shop's steps
MAX_ATTEMPTS = 8  # draws are made for this many attempts, whatever ``attempts`` is (CRN)
PROTOCOLS = ("2pc", "saga")


def _floats(name: str, values: Sequence[float], check: Any) -> tuple[float, ...]:
    return tuple(check(f"{name}[{k}]", v) for k, v in enumerate(values))


@dataclass(frozen=True)
class Scenario:
    """Sagas started as a Poisson stream at ``arrival_rate`` per s for ``duration_s``.

    Step k (in the shop's order, ``STEP_NAMES``) takes an exponential time of mean
    ``step_s[k]`` per attempt and fails with probability ``p_fail[k]`` per attempt; a failure
    is permanent (a business no: compensate at once) with probability ``permanent_share``,
    else transient and retried, up to ``attempts`` attempts with waits ``backoff_s``,
    2·``backoff_s``, ... between them. Compensating step k takes an exponential time of mean
    ``comp_s[k]``, one after another newest first (or all at once with
    ``parallel_compensation``). ``order`` runs the steps in another order (indices into the
    tuples). ``outage``: (start, end, step, p) sets that step's failure probability to p for
    attempts that end in [start, end).
    """

    p_fail: tuple[float, ...] = (0.01, 0.02, 0.08, 0.01)
    step_s: tuple[float, ...] = (0.02, 0.05, 0.2, 0.02)
    comp_s: tuple[float, ...] = (0.02, 0.05, 0.2, 0.0)
    permanent_share: float = 1.0
    attempts: int = 1
    backoff_s: float = 0.1
    order: tuple[int, ...] | None = None
    parallel_compensation: bool = False
    arrival_rate: float = 20.0
    duration_s: float = 60.0
    outage: tuple[float, float, int, float] | None = None
    seed: int = 1
    names: tuple[str, ...] = field(default=STEP_NAMES, compare=False)

    def __post_init__(self) -> None:
        n = len(self.p_fail)
        check_int("Scenario steps (len(p_fail))", n, 1, 12)
        for name in ("step_s", "comp_s"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Scenario.{name} must have one value per step, {n} "
                                 f"(got {len(getattr(self, name))})")
        _floats("Scenario.p_fail", self.p_fail, check_probability)
        _floats("Scenario.step_s", self.step_s, check_non_negative)
        _floats("Scenario.comp_s", self.comp_s, check_non_negative)
        check_probability("Scenario.permanent_share", self.permanent_share)
        check_int("Scenario.attempts", self.attempts, 1, MAX_ATTEMPTS)
        check_non_negative("Scenario.backoff_s", self.backoff_s)
        if self.order is not None and sorted(self.order) != list(range(n)):
            raise ValueError(f"Scenario.order must list each step index 0..{n - 1} once "
                             f"(got {self.order})")
        check_positive("Scenario.arrival_rate", self.arrival_rate)
        check_positive("Scenario.duration_s", self.duration_s)
        if self.outage is not None:
            check_int("Scenario.outage step", self.outage[2], 0, n - 1)
            check_probability("Scenario.outage p", self.outage[3])

    @property
    def steps(self) -> tuple[int, ...]:
        """The step indices in the order they run."""
        return tuple(range(len(self.p_fail))) if self.order is None else tuple(self.order)


def uniform(steps: int, p: float, step_s: float = 0.05, comp_s: float = 0.05,
            **settings: Any) -> Scenario:
    """A saga of ``steps`` alike steps, each failing with probability ``p`` per attempt."""
    return Scenario(p_fail=(p,) * steps, step_s=(step_s,) * steps, comp_s=(comp_s,) * steps,
                    names=tuple(f"T{k + 1}" for k in range(steps)), **settings)


@dataclass
class Draws:
    """Every random number of a run, drawn up front (per step index, not per position, so a
    reordering sees the same numbers)."""

    arrival: np.ndarray  # (N,)
    work: np.ndarray  # (steps, MAX_ATTEMPTS, N) unit exponentials
    fail: np.ndarray  # (steps, MAX_ATTEMPTS, N) uniforms: the attempt fails if < p
    permanent: np.ndarray  # (steps, MAX_ATTEMPTS, N) uniforms: permanent if < share
    undo: np.ndarray  # (steps, N) unit exponentials


def draws(sc: Scenario, rng: np.random.Generator) -> Draws:
    arrival = PoissonArrivals(sc.arrival_rate).times(rng, horizon=sc.duration_s)
    n, shape = len(arrival), (len(sc.p_fail), MAX_ATTEMPTS, len(arrival))
    return Draws(arrival, rng.exponential(1.0, shape), rng.random(shape), rng.random(shape),
                 rng.exponential(1.0, (len(sc.p_fail), n)))


def _p_at(sc: Scenario, step: int, t: np.ndarray) -> np.ndarray:
    p = np.full(len(t), sc.p_fail[step])
    if sc.outage is not None and sc.outage[2] == step:
        start, end, _, p_out = sc.outage
        p[(t >= start) & (t < end)] = p_out
    return p


@dataclass
class Run:
    """Per-saga rows: start, end (after any compensation), the position (1-based) of the step
    that aborted it (0: committed), attempts made and time spent compensating."""

    scenario: Scenario
    arrival: np.ndarray
    end: np.ndarray
    abort_at: np.ndarray
    attempts: np.ndarray
    compensation_s: np.ndarray

    @property
    def committed(self) -> np.ndarray:
        return self.abort_at == 0

    @property
    def compensations(self) -> np.ndarray:
        """Compensations each saga ran: the steps done before the one that failed."""
        return np.where(self.abort_at > 0, self.abort_at - 1, 0)

    @property
    def duration(self) -> np.ndarray:
        return self.end - self.arrival


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """One run: every saga to its end, on seeded draws (the same for every setting)."""
    sc = scenario
    d = draws(sc, np.random.default_rng(sc.seed) if rng is None else rng)
    n = len(d.arrival)
    t, alive = d.arrival.copy(), np.ones(n, dtype=bool)
    abort_at, tries = np.zeros(n, dtype=int), np.zeros(n, dtype=int)
    for pos, k in enumerate(sc.steps):
        pending = alive.copy()
        for a in range(sc.attempts):
            if not pending.any():
                break
            t[pending] += sc.step_s[k] * d.work[k, a, pending]
            tries[pending] += 1
            fail = pending & (d.fail[k, a] < _p_at(sc, k, t))
            give_up = fail & ((d.permanent[k, a] < sc.permanent_share) | (a == sc.attempts - 1))
            abort_at[give_up] = pos + 1
            alive &= ~give_up
            pending = fail & ~give_up
            t[pending] += sc.backoff_s * 2.0 ** a
    undo = np.array([sc.comp_s[k] * d.undo[k] for k in sc.steps]).reshape(len(sc.steps), n)
    done = np.arange(len(sc.steps))[:, None] < (abort_at - 1)[None, :]  # positions undone
    undo = np.where(done, undo, 0.0)
    comp = undo.max(axis=0) if sc.parallel_compensation else undo.sum(axis=0)
    return Run(sc, d.arrival, t + comp, abort_at, tries, comp)


def summary(run: Run, start_s: float = 0.0, end_s: float | None = None) -> dict[str, float]:
    """Outcomes of the sagas started in [start_s, end_s): commit share, compensations and
    attempts per saga, duration mean / p50 / p99, and the mean number in flight."""
    sc = run.scenario
    end_s = sc.duration_s if end_s is None else end_s
    sel = (run.arrival >= start_s) & (run.arrival < end_s)
    if not sel.any():
        nan = math.nan
        return {"sagas": 0.0, "commit_share": nan, "compensations_per_saga": nan,
                "attempts_per_saga": nan, "mean_s": nan, "p50_s": nan, "p99_s": nan,
                "in_flight": nan}
    dur = run.duration[sel]
    times, counts = occupancy(run.arrival, run.end)
    return {
        "sagas": float(sel.sum()),
        "commit_share": float(run.committed[sel].mean()),
        "compensations_per_saga": float(run.compensations[sel].mean()),
        "attempts_per_saga": float(run.attempts[sel].mean()),
        "mean_s": float(dur.mean()),
        "p50_s": float(np.percentile(dur, 50)),
        "p99_s": float(np.percentile(dur, 99)),
        "in_flight": float(time_average(times, counts, start_s, end_s)),
    }


def _model(rng: np.random.Generator, p: float = 0.05, steps: int = 4,
           **settings: Any) -> dict[str, float]:
    sc = uniform(steps, p, **settings)
    return summary(simulate(sc, rng))


def sweep(grid: dict[str, Sequence[Any]], *, seed: int = 1, replications: int = 3,
          **fixed: Any) -> list[dict[str, Any]]:
    """``experiments.sweep`` over ``p`` (per step), ``steps`` and any `Scenario` setting, on
    sagas of alike steps (`uniform`)."""
    return experiments.sweep(_model, grid, seed=seed, replications=replications, fixed=fixed)


def over_time(run: Run, bin_s: float = 1.0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Dashboard series by time of the saga's end: sagas started, committed and compensated
    per s, the share compensated, p99 duration per bin, and sagas in flight."""
    end = run.scenario.duration_s
    edges = np.arange(0.0, end + bin_s / 2, bin_s)
    mid = edges[:-1] + bin_s / 2
    ended = np.sort(run.end)
    committed, aborted = run.end[run.committed], run.end[~run.committed]
    n_c = np.histogram(committed, edges)[0]
    n_a = np.histogram(aborted, edges)[0]
    share = np.where(n_c + n_a > 0, n_a / np.maximum(1, n_c + n_a), np.nan)
    inflight = np.searchsorted(np.sort(run.arrival), mid, "right") - np.searchsorted(ended, mid,
                                                                                     "right")
    return {
        "started": rate_over_time(run.arrival, bin_s, 0, end),
        "committed": rate_over_time(committed, bin_s, 0, end),
        "compensated": rate_over_time(aborted, bin_s, 0, end),
        "compensated_share": (mid, share),
        "p99_s": per_bin(run.end, run.duration, bin_s, 0, end, percentile_of(99)),
        "in_flight": (mid, inflight.astype(float)),
    }


# --- closed forms -------------------------------------------------------------------------


def step_failure_probability(p: float, permanent_share: float = 1.0, attempts: int = 1) -> float:
    """P(a step gives up) with ``attempts`` tries, each failing with probability p, a failure
    being permanent with probability s (no retry) and transient otherwise. With a = p·s and
    b = p·(1 − s): a permanent failure after k transient ones, or r transient ones:
    Σ_{k<r} b^k·a + b^r = a(1 − b^r)/(1 − b) + b^r."""
    a, b = p * permanent_share, p * (1.0 - permanent_share)
    return (a * (1 - b ** attempts) / (1 - b) if b < 1 else a * attempts) + b ** attempts


def abort_probabilities(p: Sequence[float]) -> np.ndarray:
    """P(the saga aborts at step i) = Π_{j<i}(1 − p_j)·p_i, for steps that fail
    independently with (final) probabilities p_i, in the order they run."""
    p = np.asarray(p, dtype=float)
    survive = np.concatenate([[1.0], np.cumprod(1 - p)[:-1]])
    return survive * p


def commit_probability(p: Sequence[float]) -> float:
    """P(every step succeeds) = Π(1 − p_i)."""
    return float(np.prod(1 - np.asarray(p, dtype=float)))


def expected_compensations(p: Sequence[float]) -> float:
    """E[compensations per saga] = Σ_i (i − 1)·P(abort at step i): an abort at step i undoes
    the i − 1 steps before it (the failed step itself committed nothing)."""
    q = abort_probabilities(p)
    return float(np.sum(np.arange(len(q)) * q))


def expected_duration(p: Sequence[float], step_s: Sequence[float],
                      comp_s: Sequence[float]) -> float:
    """Mean saga time with one attempt per step and compensations one after another:
    Σ_i P(reach i)·d_i + Σ_i P(abort at i)·Σ_{j<i} c_j (the failing step takes its time
    too). Any step-time distributions with those means."""
    p, d, c = (np.asarray(x, dtype=float) for x in (p, step_s, comp_s))
    reach = np.concatenate([[1.0], np.cumprod(1 - p)[:-1]])
    undo_before = np.concatenate([[0.0], np.cumsum(c)[:-1]])
    return float(np.sum(reach * d) + np.sum(abort_probabilities(p) * undo_before))


def lock_hold_s(protocol: str, work_s: float, rtt_s: float, force_s: float,
                forces: int = 3) -> float:
    """How long the hot row stays locked per transaction. Two-phase commit: the participant
    locks the row when it does its update and unlocks it when the decision arrives, after
    the update's reply to the coordinator, PREPARE, the vote and the decision have each
    crossed the network (2 RTT) and ``forces`` log records were forced to disk (the
    participant's prepare and commit records, the coordinator's decision: 3). A saga's local
    transaction: the update and its own commit force."""
    check_choice("protocol", protocol, PROTOCOLS)
    if protocol == "2pc":
        return work_s + 2 * rtt_s + forces * force_s
    return work_s + force_s


def hot_row_capacity(hold_s: float) -> float:
    """Most transactions per second through one hot row: 1/T_hold (the lock is exclusive)."""
    return 1.0 / check_positive("hold_s", hold_s)


# --- the hot row ----------------------------------------------------------------------------


@dataclass(frozen=True)
class HotRow:
    """Transactions that all update one row, Poisson at ``arrival_rate`` per s; the row lock
    is held `lock_hold_s` per transaction (``protocol`` "2pc" or "saga")."""

    protocol: str = "2pc"
    arrival_rate: float = 30.0
    work_s: float = 0.001
    rtt_s: float = 0.01
    force_s: float = 0.002
    forces: int = 3
    duration_s: float = 30.0
    seed: int = 1

    def __post_init__(self) -> None:
        check_choice("HotRow.protocol", self.protocol, PROTOCOLS)
        check_positive("HotRow.arrival_rate", self.arrival_rate)
        check_non_negative("HotRow.work_s", self.work_s)
        check_non_negative("HotRow.rtt_s", self.rtt_s)
        check_non_negative("HotRow.force_s", self.force_s)
        check_int("HotRow.forces", self.forces, 0)
        check_positive("HotRow.duration_s", self.duration_s)
        check_positive("HotRow lock hold", self.hold_s)

    @property
    def hold_s(self) -> float:
        return lock_hold_s(self.protocol, self.work_s, self.rtt_s, self.force_s, self.forces)


def simulate_hot_row(sc: HotRow, rng: np.random.Generator | None = None,
                     engine: str = "fast") -> RequestTable:
    """Per-transaction rows (arrival, lock granted, lock released) of the hot row: a FIFO
    lock queue, on the toolkit's SimPy ``ServerPool`` (``engine="simpy"``) or its fast path
    (``"fast"``, the same rows)."""
    check_choice("engine", engine, ("fast", "simpy"))
    rng = np.random.default_rng(sc.seed) if rng is None else rng
    arrival = PoissonArrivals(sc.arrival_rate).times(rng, horizon=sc.duration_s)
    if engine == "fast":
        return fifo_queue(arrival, np.full(len(arrival), sc.hold_s), 1)
    env = simpy.Environment()
    lock = ServerPool(env, 1, Deterministic(sc.hold_s), rng)

    def source():
        for t in arrival:
            yield env.timeout(t - env.now)
            lock.submit(-1, -1)

    env.process(source())
    env.run()
    return lock.log.table()


def hot_row_summary(table: RequestTable, sc: HotRow, warmup_s: float | None = None
                    ) -> dict[str, float]:
    """Commits per second through the row (locks released in the window), the mean and p99
    time from arrival to commit of the transactions that arrived in it, and the share of
    time the row is locked."""
    start = 0.1 * sc.duration_s if warmup_s is None else warmup_s
    span = sc.duration_s - start
    done = (table.end >= start) & (table.end < sc.duration_s)
    sel = (table.arrival >= start) & (table.arrival < sc.duration_s)
    lat = table.latency[sel]
    busy = np.clip(np.minimum(table.end, sc.duration_s) - np.maximum(table.start, start), 0,
                   None)
    return {"throughput": float(done.sum() / span),
            "mean_latency_s": float(np.nanmean(lat)) if len(lat) else math.nan,
            "p99_latency_s": float(np.nanpercentile(lat, 99)) if len(lat) else math.nan,
            "locked_share": float(np.nansum(busy) / span)}


# --- the real class on the model's draws ----------------------------------------------------


def replay_real(scenario: Scenario, rng: np.random.Generator | None = None
                ) -> dict[str, np.ndarray]:
    """Drive the real Level 2 `Saga` with the draws `simulate` uses (one attempt per step,
    compensations one after another): each step's action moves a hand-held clock by its
    drawn time and raises `StepFailed` where the draw says so; each compensation moves it by
    its own. Returns per-saga ``end``, ``committed`` and ``compensations``, which equal the
    model's rows saga for saga."""
    sc = scenario
    if sc.attempts != 1 or sc.parallel_compensation:
        raise ValueError("replay_real runs the Level 2 saga: attempts must be 1 and "
                         "compensations sequential (got attempts="
                         f"{sc.attempts}, parallel_compensation={sc.parallel_compensation})")
    d = draws(sc, np.random.default_rng(sc.seed) if rng is None else rng)
    clock = [0.0]

    def make(k: int, j: int) -> Step:
        def action(ctx):
            clock[0] += sc.step_s[k] * d.work[k, 0, j]
            if d.fail[k, 0, j] < _p_at(sc, k, np.array([clock[0]]))[0]:
                raise StepFailed(sc.names[k])

        def compensation(ctx):
            clock[0] += sc.comp_s[k] * d.undo[k, j]

        return Step(sc.names[k], action, compensation)

    end, committed, undone = [], [], []
    for j, start in enumerate(d.arrival):
        clock[0] = float(start)
        result = Saga([make(k, j) for k in sc.steps], clock=lambda: clock[0]).run()
        end.append(result.finished_at)
        committed.append(result.status == COMMITTED)
        undone.append(len(result.compensated))
    return {"end": np.array(end), "committed": np.array(committed),
            "compensations": np.array(undone)}


# --- plots --------------------------------------------------------------------------------


def plot_sweep(rows: Sequence[dict[str, Any]], by: str = "attempts"):
    """Commit share, compensations per saga and mean / p99 duration against p, a line per
    ``by``."""
    from simulations import plots

    metrics = ("commit_share", "compensations_per_saga", "mean_s", "p99_s")
    rows = experiments.aggregate(rows, by=("p", by), metrics=metrics)
    return plots.sweep_panels(
        rows, x="p", by=by, metrics=metrics, xlabel="failure probability per attempt, per step",
        group_label=lambda v: f"{by} = {v}",
        ylabels={"commit_share": "sagas committed (share)",
                 "compensations_per_saga": "compensations per saga",
                 "mean_s": "mean saga time (s)", "p99_s": "p99 saga time (s)"},
        panel_size=(3.3, 3.0))


def draw_tradeoff(steps: int = 4, attempts: int = 1, permanent_share: float = 1.0,
                  parallel_compensation: bool = False, duration_s: float = 40.0):
    """The slider figure: compensations per saga and mean saga time against the per-step
    failure probability, simulation beside the closed forms."""
    from simulations import plots

    ps = np.array([0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3])
    runs = [summary(simulate(uniform(steps, p, attempts=attempts,
                                     permanent_share=permanent_share,
                                     parallel_compensation=parallel_compensation,
                                     duration_s=duration_s))) for p in ps]
    final = [step_failure_probability(p, permanent_share, attempts) for p in ps]
    fig, (left, right) = plots.plt.subplots(1, 2, figsize=(9, 3.4))
    left.plot(ps, [r["compensations_per_saga"] for r in runs], "o", label="simulated")
    left.plot(ps, [expected_compensations([q] * steps) for q in final], **plots.THEORY,
              label="Σ (i − 1)·P(abort at i)")
    left.set_xlabel("failure probability per attempt, per step")
    left.set_ylabel("compensations per saga")
    left.legend(fontsize="small")
    right.plot(ps, [r["mean_s"] for r in runs], "o", label="simulated mean")
    right.plot(ps, [r["p99_s"] for r in runs], "s", label="simulated p99")
    if attempts == 1 and not parallel_compensation:
        right.plot(ps, [expected_duration([p] * steps, [0.05] * steps, [0.05] * steps)
                        for p in ps], **plots.THEORY, label="closed-form mean")
    right.set_xlabel("failure probability per attempt, per step")
    right.set_ylabel("saga time (s)")
    right.legend(fontsize="small")
    return fig


def draw_hot_row(rtt_ms: float = 10.0, force_ms: float = 2.0, work_ms: float = 1.0,
                 duration_s: float = 10.0):
    """The slider figure: commits per second through one hot row against offered load, for
    two-phase commit and for a saga's local transaction, with each cap 1/T_hold."""
    from simulations import plots

    rates = np.array([10, 20, 40, 80, 160, 320, 640, 1280], dtype=float)
    fig, (left, right) = plots.plt.subplots(1, 2, figsize=(9, 3.4))
    for color, protocol in zip(plots.COLORS, PROTOCOLS, strict=False):
        base = HotRow(protocol, work_s=work_ms / 1e3, rtt_s=rtt_ms / 1e3,
                      force_s=force_ms / 1e3, duration_s=duration_s)
        rows = [hot_row_summary(simulate_hot_row(replace(base, arrival_rate=r)), base)
                for r in rates]
        label = "two-phase commit" if protocol == "2pc" else "saga step"
        left.plot(rates, [r["throughput"] for r in rows], "o-", color=color,
                  label=f"{label}: simulated")
        left.axhline(hot_row_capacity(base.hold_s), color=color, linestyle="--",
                     label=f"{label}: 1/T_hold = {hot_row_capacity(base.hold_s):.0f}/s")
        right.plot(rates, [r["p99_latency_s"] for r in rows], "o-", color=color, label=label)
    for ax in (left, right):
        plots.log_scale(ax, "x")
        ax.set_xlabel("offered load (transactions/s on the hot row)")
    plots.log_scale(left, "y")
    plots.log_scale(right, "y")
    left.set_ylabel("commits per second")
    right.set_ylabel("p99 time to commit (s)")
    left.legend(fontsize="x-small")
    right.legend(fontsize="small")
    return fig


def plot_dashboard(runs: dict[str, Run], bin_s: float = 1.0,
                   outage: tuple[float, float] = ()):
    """Sagas started and compensated per second, the share compensated, sagas in flight and
    p99 saga time, over time, a curve per run."""
    from simulations import plots

    series = {name: over_time(run, bin_s) for name, run in runs.items()}
    first = next(iter(series.values()))
    times = first["started"][0]
    panels = {
        "sagas per second": {"started": first["started"][1],
                             **{f"compensated, {n}": s["compensated"][1]
                                for n, s in series.items()}},
        "share compensated": {n: s["compensated_share"][1] for n, s in series.items()},
        "sagas in flight": {n: s["in_flight"][1] for n, s in series.items()},
        "p99 saga time (s)": {n: s["p99_s"][1] for n, s in series.items()},
    }
    return plots.dashboard(times, panels, windows=[outage] if outage else (),
                           window_label="payments failing")
