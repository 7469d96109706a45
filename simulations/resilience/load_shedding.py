"""Load shedding by priority: turn away the least important work first when a service is full.

Picture a hospital emergency room on a bad night. The triage nurse at the door sends sprained
ankles to a clinic across town once the waiting room holds more than an hour of work, but keeps
taking heart attacks until the wait is much longer; inside, the heart attacks are seen first.
Without the nurse, everyone waits, patients leave before being seen, and the doctors spend the
night on people who are no longer there.

Here the waiting room is a ``ServerPool`` (FIFO, or ``discipline="priority"`` for triage
inside), the patients are requests of class 0 (critical) and 1 (best effort) from a
``RequestSource``, the patients' patience is a ``Client`` timeout, and the nurse is a
``LoadShedder`` of ``patterns.resilience.load_shedding``: it estimates the queueing delay a new
request would meet by Little's law (requests queued / recent completion rate) and sheds a class
once that estimate passes the class's limit. The module also holds the closed forms the
simulation is checked against (the priority M/M/1 queue) and the lesson's plots.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import simpy
from simpy.events import Event, Timeout

from patterns.checks import (
    check_choice,
    check_int,
    check_non_negative,
    check_positive,
    check_probability,
    check_range,
)
from patterns.resilience.load_shedding import (
    LoadShedder,
)
from simulations.clients import Client, RequestSource
from simulations.distributions import Distribution, Exponential
from simulations.experiments import aggregate
from simulations.experiments import sweep as sweep_grid
from simulations.metrics import (
    goodput_over_time,
    latency_percentiles,
    per_bin,
    percentile_of,
    rate_over_time,
)
from simulations.records import Outcome, RequestLog, RequestTable
from simulations.servers import DISCIPLINES, ServerPool
from simulations.workloads import PoissonArrivals, TimeVaryingArrivals

CRITICAL, BEST_EFFORT = 0, 1

# ---------------------------------------------------------------- the SimPy model


class SheddingService:
    """A ``Service`` that asks ``shedder`` before sending a call to ``pool``.

    A shed call never reaches the pool and comes back REJECTED at once; an admitted call is
    reported ``done`` to the shedder when the pool answers it.
    """

    def __init__(self, env: simpy.Environment, pool: ServerPool,
                 shedder: LoadShedder | None) -> None:
        self.env, self.pool, self.shedder = env, pool, shedder

    def call(self, key: int = -1, cls: int = -1) -> Event:
        if self.shedder is None:
            return self.pool.call(key, cls)
        if not self.shedder.admit(cls):
            return Timeout(self.env, 0.0, Outcome.REJECTED)
        answer = self.pool.call(key, cls)
        answer.callbacks.append(lambda _: self.shedder.done())
        return answer


@dataclass(frozen=True)
class Scenario:
    """One service under a two-class load (class 0 critical, class 1 best effort).

    ``offered_load`` is λ / (c μ) over both classes; ``surge`` = (start_s, end_s, load) raises
    it for a while. ``max_wait_s`` holds each class's wait limit (None: no shedding);
    ``discipline`` is the pool's queue order; ``skip_expired`` makes the servers drop, without
    working on it, a request whose caller has already given up (its deadline has passed).
    Metrics count requests arriving after ``warmup_s``.
    """

    offered_load: float = 1.5
    servers: int = 4
    mean_service_s: float = 0.05
    critical_share: float = 0.3
    timeout_s: float = 1.0
    max_wait_s: tuple[float, float] | None = (0.5, 0.1)
    discipline: str = "fifo"
    skip_expired: bool = False
    window_s: float = 1.0
    surge: tuple[float, float, float] | None = None
    duration_s: float = 30.0
    warmup_s: float = 5.0
    probe_s: float = 0.5
    seed: int = 1

    def __post_init__(self) -> None:
        check_positive("offered_load", self.offered_load)
        check_int("servers", self.servers, 1)
        check_positive("mean_service_s", self.mean_service_s)
        check_probability("critical_share", self.critical_share)
        check_positive("timeout_s", self.timeout_s)
        if self.max_wait_s is not None:
            if len(self.max_wait_s) != 2:
                raise ValueError("max_wait_s must be None or (critical, best effort) limits in "
                                 f"seconds (got {self.max_wait_s!r})")
            for name, limit in zip(("critical", "best effort"), self.max_wait_s, strict=True):
                check_non_negative(f"max_wait_s ({name})", limit)
        check_choice("discipline", self.discipline, DISCIPLINES)
        if self.discipline == "preemptive" and self.skip_expired:
            raise ValueError("skip_expired needs discipline 'fifo' or 'priority' "
                             "(got 'preemptive', which cannot run a handler)")
        check_positive("window_s", self.window_s)
        check_positive("duration_s", self.duration_s)
        check_range("warmup_s", self.warmup_s, 0.0, self.duration_s, high_open=True)
        check_positive("probe_s", self.probe_s)
        if self.surge is not None:
            start, end, load = self.surge
            check_non_negative("surge start", start)
            check_range("surge end", end, start, low_open=True)
            check_positive("surge load", load)

    @property
    def capacity_rps(self) -> float:
        """Requests per second the servers can complete: c μ."""
        return self.servers / self.mean_service_s


@dataclass(frozen=True, eq=False)
class Run:
    """What a run left behind: the callers' rows (``requests``: OK within the timeout, TIMEOUT,
    or REJECTED by the shedder), the servers' rows (``served``, keyed by the caller's row),
    and the shedder's estimated wait sampled every ``probe_s`` (``probe_time_s``,
    ``estimated_wait_s``)."""

    scenario: Scenario
    requests: RequestTable
    served: RequestTable
    probe_time_s: np.ndarray = field(repr=False)
    estimated_wait_s: np.ndarray = field(repr=False)


def _arrivals(s: Scenario) -> PoissonArrivals | TimeVaryingArrivals:
    rate = s.offered_load * s.capacity_rps
    if s.surge is None:
        return PoissonArrivals(rate)
    start, end, load = s.surge
    peak = load * s.capacity_rps
    return TimeVaryingArrivals(
        lambda t: np.where((np.asarray(t) >= start) & (np.asarray(t) < end), peak, rate),
        max(rate, peak))


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """Run the scenario with SimPy; deterministic for a given ``scenario.seed`` (or ``rng``).

    Callers are a ``Client`` with the timeout; it calls a ``SheddingService`` in front of a
    ``ServerPool`` of exponential servers. A request's key is its row in the callers' log, so
    the servers' rows can be matched to the callers'.
    """
    s = scenario
    rng = np.random.default_rng(s.seed) if rng is None else rng
    env = simpy.Environment()
    source = RequestSource(env, _arrivals(s), lambda _key, cls: client.call(len(callers), cls),
                           rng, horizon_s=s.duration_s,
                           class_weights=[s.critical_share, 1 - s.critical_share])
    callers = RequestLog(len(source.times) + 1)
    service: Distribution = Exponential(s.mean_service_s)
    if s.skip_expired:
        draws = iter(service.sample(rng, len(source.times) + 1).tolist())

        def work(key: int, _cls: int):
            """Serve the request unless its caller has already given up."""
            if env.now - callers.arrival[key] >= s.timeout_s:
                return Outcome.TIMEOUT
            yield env.timeout(next(draws))
            return Outcome.OK

        pool = ServerPool(env, s.servers, work, discipline=s.discipline)
    else:
        pool = ServerPool(env, s.servers, service, rng, discipline=s.discipline)
    shedder = (None if s.max_wait_s is None
               else LoadShedder(s.max_wait_s, s.servers, s.window_s, lambda: env.now))
    client = Client(env, SheddingService(env, pool, shedder), s.timeout_s, log=callers)
    probes: list[float] = []

    def probe():
        while True:
            probes.append(shedder.estimated_wait_s() if shedder is not None
                          else max(pool.queue_length, 0) / s.capacity_rps)
            yield env.timeout(s.probe_s)

    env.process(probe())
    env.run(until=s.duration_s)
    return Run(s, callers.table(), pool.log.table(),
               np.arange(len(probes)) * s.probe_s, np.array(probes))


# ---------------------------------------------------------------- metrics from the records


def _waited(table: RequestTable, end_s: float) -> np.ndarray:
    """Time to the answer; a request unanswered at the end of the run waited until then."""
    return np.where(np.isnan(table.end), end_s, table.end) - table.arrival


def summary(run: Run) -> dict[str, float]:
    """Headline numbers over the requests arriving after the warm-up.

    - ``goodput_rps`` / ``critical_goodput_rps``: answers within the timeout per second
    - ``critical_success``, ``best_effort_success``: share of each class answered in time
    - ``critical_shed``, ``best_effort_shed``: share of each class turned away by the shedder
    - ``critical_p99_s``: p99 of the time the servers took to answer critical requests they
      accepted (a request unanswered at the end waited until then; the caller may have left)
    - ``wasted_work``: share of the servers' busy time spent on requests whose caller had given up
    """
    s, r, served = run.scenario, run.requests, run.served
    span = s.duration_s - s.warmup_s
    after = r.arrival >= s.warmup_s
    ok = after & r.has(Outcome.OK)
    critical, best = after & (r.cls == CRITICAL), after & (r.cls == BEST_EFFORT)
    rejected = r.has(Outcome.REJECTED)

    def share(mask: np.ndarray, of: np.ndarray) -> float:
        return float((mask & of).sum() / of.sum()) if of.any() else math.nan

    accepted_critical = (served.cls == CRITICAL) & (served.arrival >= s.warmup_s)
    busy = (np.minimum(np.nan_to_num(served.end, nan=s.duration_s), s.duration_s)
            - served.start)
    busy = np.nan_to_num(busy)
    gave_up = r.has(Outcome.TIMEOUT)[served.key]
    return {
        "goodput_rps": float(ok.sum() / span),
        "critical_goodput_rps": float((ok & critical).sum() / span),
        "critical_success": share(ok, critical),
        "best_effort_success": share(ok, best),
        "critical_shed": share(rejected, critical),
        "best_effort_shed": share(rejected, best),
        "critical_p99_s": latency_percentiles(
            _waited(served.select(accepted_critical), s.duration_s), [99])["latency_p99_s"],
        "wasted_work": float(busy[gave_up].sum() / busy.sum()) if busy.sum() else 0.0,
    }


def timeline(run: Run, bin_s: float = 1.0) -> dict[str, np.ndarray]:
    """Per-bin series for a dashboard: offered and good requests per second, requests shed per
    second, the servers' p99 for critical requests (by arrival), the estimated wait."""
    s, r, served = run.scenario, run.requests, run.served
    end = s.duration_s
    time_s, offered = rate_over_time(r.arrival, bin_s, 0.0, end)
    critical = served.select(served.cls == CRITICAL)
    _, p99 = per_bin(critical.arrival, _waited(critical, end), bin_s, 0.0, end,
                     percentile_of(99))
    _, wait = per_bin(run.probe_time_s, run.estimated_wait_s, bin_s, 0.0, end, np.mean)
    edges = np.minimum(np.arange(len(time_s) + 1) * bin_s, end)
    return {
        "time_s": time_s,
        "offered_rps": offered,
        "goodput_rps": goodput_over_time(r, bin_s, 0.0, end)[1],
        "shed_rps": rate_over_time(r.arrival[r.has(Outcome.REJECTED)], bin_s, 0.0, end)[1],
        "critical_p99_s": p99,
        "estimated_wait_s": wait,
        "capacity_rps": np.full(len(edges) - 1, s.capacity_rps),
    }


# ---------------------------------------------------------------- sweeps and plots

POLICIES: dict[str, dict[str, Any]] = {
    "no shedding": {"max_wait_s": None},
    "shed all alike": {"max_wait_s": (0.2, 0.2)},
    "shed by priority": {"max_wait_s": (0.5, 0.1)},
    "by priority + priority queue": {"max_wait_s": (0.5, 0.1), "discipline": "priority"},
}
"""The policies the lesson compares: settings of ``Scenario`` by name."""

SWEEP_METRICS = ("goodput_rps", "critical_goodput_rps", "critical_success",
                 "best_effort_success", "critical_p99_s", "critical_shed", "wasted_work")
LABELS = {
    "goodput_rps": "goodput (answers in time, req/s)",
    "critical_goodput_rps": "critical goodput (req/s)",
    "critical_success": "critical answered in time (share)",
    "best_effort_success": "best effort answered in time (share)",
    "critical_p99_s": "critical p99, servers' answer (s)",
    "critical_shed": "critical shed (share)",
    "wasted_work": "server time on abandoned requests (share)",
}


def sweep(loads: Sequence[float], policies: Sequence[str] = tuple(POLICIES),
          base: Scenario | None = None, replications: int = 1) -> list[dict[str, Any]]:
    """`summary` of every policy at every offered load (mean and 95 % half-width ``_ci`` over
    ``replications`` runs); every policy sees the same traffic (common random numbers)."""
    base = base or Scenario()
    for name in policies:
        check_choice("policy", name, POLICIES)

    def model(rng: np.random.Generator, policy: str, offered_load: float) -> dict[str, float]:
        return summary(simulate(replace(base, offered_load=offered_load, **POLICIES[policy]),
                                rng))

    rows = sweep_grid(model, {"policy": list(policies), "offered_load": list(loads)},
                      seed=base.seed, replications=replications)
    return aggregate(rows, by=["policy", "offered_load"], metrics=SWEEP_METRICS)


def plot_sweep(rows: list[dict[str, Any]],
               metrics: Sequence[str] = ("goodput_rps", "critical_success", "critical_p99_s"),
               capacity_rps: float | None = None) -> list:
    """One panel per metric against offered load, one line per policy (``plots.sweep_panels``,
    95 % interval bars when rows average replications); goodput panels get the ideal
    min(λ, cμ) line when ``capacity_rps`` is given."""
    from simulations import plots

    for metric in metrics:
        check_choice("metric", metric, SWEEP_METRICS)
    axes = plots.sweep_panels(rows, x="offered_load", by="policy", metrics=metrics,
                              xlabel="offered load ρ = λ / (c μ)", ylabels=LABELS,
                              log_y=("critical_p99_s",), panel_size=(4.4, 3.6))
    for ax, metric in zip(axes, metrics, strict=True):
        if metric == "goodput_rps" and capacity_rps is not None:
            loads = sorted({row["offered_load"] for row in rows})
            ax.plot(loads, [min(x, 1.0) * capacity_rps for x in loads],
                    label="ideal: min(λ, cμ)", **plots.THEORY)
        ax.legend(fontsize="small")
    return axes


DASHBOARD = {
    "goodput_rps": "goodput (req/s)",
    "shed_rps": "shed (req/s)",
    "critical_p99_s": "critical p99 (s)",
    "estimated_wait_s": "estimated wait (s)",
}


def plot_dashboard(runs: dict[str, Run], bin_s: float = 1.0) -> list:
    """Small multiples over time (``plots.dashboard``): offered load and goodput, requests shed,
    critical p99 and the estimated wait, one line per run, the surge of the first run shaded."""
    from simulations import plots

    series = {label: timeline(run, bin_s) for label, run in runs.items()}
    first = next(iter(series.values()))
    panels: dict[str, dict[str, np.ndarray]] = {
        "offered, capacity,\ngoodput (req/s)": {
            "offered": first["offered_rps"], "capacity cμ": first["capacity_rps"],
            **{k: v["goodput_rps"] for k, v in series.items()}}}
    for metric in ("shed_rps", "critical_p99_s", "estimated_wait_s"):
        panels[DASHBOARD[metric]] = {f"{k}": v[metric] for k, v in series.items()}
    surge = next(iter(runs.values())).scenario.surge
    axes = plots.dashboard(first["time_s"], panels,
                           windows=[surge[:2]] if surge else [], window_label="surge")
    plots.log_scale(axes[2], "y")
    return axes


# ---------------------------------------------------------------- theory: priority M/M/1


def _sigma(arrival_rates: Sequence[float], service_rate: float, cls: int) -> tuple[float, float]:
    """(load of the classes before ``cls``, load of the classes up to and including it)."""
    mu = check_positive("service_rate", service_rate)
    rates = [check_non_negative("arrival_rates", rate) for rate in arrival_rates]
    k = check_int("cls", cls, 0, len(rates) - 1)
    before = sum(rates[:k]) / mu
    return before, before + rates[k] / mu


def preemptive_response_time(arrival_rates: Sequence[float], service_rate: float,
                             cls: int) -> float:
    """Mean response time of class ``cls`` in a preemptive-resume priority M/M/1 queue.

    Assumptions: Poisson arrivals per class (rates ``arrival_rates``, class 0 most urgent),
    exponential service with the same rate μ for every class, one server, preemptive-resume,
    FIFO within a class, classes 0..cls stable (σ_cls < 1). Then

        T_k = (1/μ) / (1 - σ_{k-1}) + (Σ_{i<=k} λ_i / μ²) / ((1 - σ_{k-1})(1 - σ_k)),

    so class 0 sees an M/M/1 queue of its own: T_0 = 1 / (μ - λ_0), whatever the lower classes
    offer (even beyond total load 1).
    """
    before, upto = _sigma(arrival_rates, service_rate, cls)
    if upto >= 1:
        raise ValueError(f"classes 0..{cls} must offer load < 1 (got {upto:g})")
    mu = service_rate
    residual = sum(arrival_rates[: cls + 1]) / mu**2
    return (1 / mu) / (1 - before) + residual / ((1 - before) * (1 - upto))


def nonpreemptive_response_time(arrival_rates: Sequence[float], service_rate: float,
                                cls: int) -> float:
    """Mean response time of class ``cls`` in a non-preemptive priority M/M/1 queue (Cobham).

    Same assumptions as `preemptive_response_time`, but a request in service is never
    interrupted, and the total load ρ = Σ λ_i / μ must be < 1 (every class stable):

        T_k = (ρ / μ) / ((1 - σ_{k-1})(1 - σ_k)) + 1/μ,

    where ρ/μ = Σ λ_i E[S²] / 2 is the mean residual work in service an arrival finds.
    """
    before, upto = _sigma(arrival_rates, service_rate, cls)
    rho = sum(arrival_rates) / service_rate
    if rho >= 1:
        raise ValueError(f"the total load must be < 1 for Cobham's formula (got {rho:g})")
    return (rho / service_rate) / ((1 - before) * (1 - upto)) + 1 / service_rate


def priority_mm1(rng: np.random.Generator, discipline: str, critical_rate: float,
                 other_rate: float, service_rate: float = 1.0,
                 horizon_s: float = 4000.0) -> dict[str, float]:
    """One run of a two-class M/M/1 queue (``ServerPool`` with ``discipline``): the mean and
    p99 response time of class 0, over arrivals after the first 5 % of the horizon."""
    env = simpy.Environment()
    pool = ServerPool(env, 1, Exponential(1 / service_rate), rng, discipline=discipline)
    total = critical_rate + other_rate
    RequestSource(env, PoissonArrivals(total), pool.submit, rng, horizon_s=horizon_s,
                  class_weights=[critical_rate, other_rate])
    env.run(until=horizon_s)
    t = pool.log.table()
    top = t.select((t.cls == CRITICAL) & (t.arrival >= 0.05 * horizon_s))
    waited = _waited(top, horizon_s)
    return {"critical_mean_s": float(waited.mean()),
            "critical_p99_s": float(np.percentile(waited, 99))}


# ---------------------------------------------------------------- a library beside ours


def simpy_preemptive_ends(arrivals: Sequence[float], classes: Sequence[int],
                          services: Sequence[float], servers: int = 1) -> np.ndarray:
    """End times from SimPy's own ``PreemptiveResource`` on the same input.

    The k-th request to start service takes ``services[k]`` (as the toolkit's pool draws its
    samples); a preempted request re-requests with its original (class, arrival order) and
    ``preempt=False``, and resumes its remaining service.
    """
    env = simpy.Environment()
    resource = simpy.PreemptiveResource(env, capacity=servers)
    draws, end = iter(services), np.full(len(arrivals), np.nan)

    def request(i: int):
        remaining, preempt = None, True
        while True:
            with resource.request(priority=(classes[i], i), preempt=preempt) as turn:
                yield turn
                remaining = next(draws) if remaining is None else remaining
                began = env.now
                try:
                    yield env.timeout(remaining)
                    end[i] = env.now
                    return
                except simpy.Interrupt:
                    remaining -= env.now - began
                    preempt = False

    def source():
        for i, t in enumerate(arrivals):
            yield env.timeout(t - env.now)
            env.process(request(i))

    env.process(source())
    env.run()
    return end


class Replay(Distribution):
    """Service times replayed in order: the k-th draw is ``values[k]`` (for comparisons)."""

    def __init__(self, values: Sequence[float]) -> None:
        self.values = np.asarray(values, dtype=float)
        self.mean = float(self.values.mean())
        self.scv = float(self.values.var() / self.mean**2)
        self._next = 0

    def sample(self, rng: np.random.Generator, size: int | None = None) -> np.ndarray | float:
        n = 1 if size is None else size
        out = np.full(n, np.nan)
        chunk = self.values[self._next: self._next + n]
        out[: len(chunk)] = chunk
        self._next += n
        return out if size is not None else float(out[0])


def toolkit_preemptive_ends(arrivals: Sequence[float], classes: Sequence[int],
                            services: Sequence[float], servers: int = 1) -> np.ndarray:
    """End times from ``ServerPool(discipline="preemptive")`` on the same input."""
    env = simpy.Environment()
    pool = ServerPool(env, servers, Replay(services), np.random.default_rng(),
                      discipline="preemptive")

    def source():
        for t, cls in zip(arrivals, classes, strict=True):
            yield env.timeout(t - env.now)
            pool.submit(cls=int(cls))

    env.process(source())
    env.run()
    return pool.log.table().end


__all__ = [
    "BEST_EFFORT", "CRITICAL", "POLICIES", "Replay", "Run", "Scenario", "SheddingService",
    "nonpreemptive_response_time", "plot_dashboard", "plot_sweep", "preemptive_response_time",
    "priority_mm1", "simpy_preemptive_ends", "simulate", "summary", "sweep", "timeline",
    "toolkit_preemptive_ends"
]
