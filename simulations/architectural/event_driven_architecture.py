"""The event-driven study: availability and user-visible latency of a synchronous call chain
against an event-driven flow, as the chain grows, and the price the events pay in completion
delay (queueing, and the backlog drained after an outage).

Picture the restaurant of the pattern's module with a stopwatch: the synchronous guest waits
for every station and gets nothing if one is closed; the event-driven guest gets a ticket at
once, and the dish arrives later, much later if a station was closed for a while.

Model (a fast path in numpy, every random number drawn up front from one seeded generator, so
settings share the same traffic and the same outages: common random numbers):

- requests arrive as a Poisson stream of rate λ; a chain has ``depth`` services, the first
  being the front door that the user calls;
- each service alternates up and down periods, exponential with means MTTF and MTTR, so it is
  up a fraction A = MTTF/(MTTF + MTTR) of the time; it starts in its stationary state;
- each call to a service takes an exponential time of mean ``hop_latency_s``;
- the first ``1 + sync_steps`` services are called synchronously: the request succeeds only if
  each of them is up when it arrives (outages last tens of seconds, calls tens of
  milliseconds, so a request sees one state per service), and the user waits for their sum;
- the remaining services are reached through events: a stage is a FIFO queue with
  ``consumers`` workers, each taking an exponential time of mean 1/``consumer_rate``; a worker
  starts nothing while its service is down (what it holds when the outage starts completes),
  so events pile up and are drained after it. Nothing is lost (a durable queue).
"""

from __future__ import annotations

import functools
import heapq
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from patterns.architectural.event_driven_architecture import EventBus, SyncChain
from patterns.checks import check_int, check_positive, check_probability
from simulations import experiments, plots, theory

__all__ = [
    "EventBus",
    "Result",
    "Scenario",
    "SyncChain",
    "backlog_drain_s",
    "chain_availability",
    "chain_latency_percentile",
    "completion_mean_s",
    "draw_tradeoff",
    "drained_after_s",
    "plot_dashboard",
    "plot_sweep",
    "simulate",
    "summary",
    "sweep",
]


@dataclass(frozen=True)
class Scenario:
    depth: int = 4  # services in the flow, the front door included
    sync_steps: int = 0  # services after the front called synchronously (depth − 1 = all)
    availability: float = 0.98  # A of every service
    mttr_s: float = 5.0  # mean outage length (s)
    hop_latency_s: float = 0.02  # mean time of one call
    arrival_rate: float = 20.0  # requests per second
    consumer_rate: float = 40.0  # events per second one consumer handles
    consumers: int = 1  # consumers per asynchronous stage
    duration_s: float = 600.0
    outage: tuple[int, float, float] | None = None  # (service, start, end): a scripted outage
    random_outages: bool = True
    seed: int = 1

    def __post_init__(self) -> None:
        check_int("Scenario.depth", self.depth, 1)
        check_int("Scenario.sync_steps", self.sync_steps, 0, self.depth - 1)
        check_probability("Scenario.availability", self.availability)
        check_positive("Scenario.mttr_s", self.mttr_s)
        check_positive("Scenario.hop_latency_s", self.hop_latency_s)
        check_positive("Scenario.arrival_rate", self.arrival_rate)
        check_positive("Scenario.consumer_rate", self.consumer_rate)
        check_int("Scenario.consumers", self.consumers, 1)
        check_positive("Scenario.duration_s", self.duration_s)


@dataclass
class Result:
    scenario: Scenario
    arrival: np.ndarray  # request times (s)
    accepted: np.ndarray  # bool: the synchronous part succeeded
    user_latency: np.ndarray  # what the user waits for (s), for every request
    done: np.ndarray  # time the whole flow completed (s); NaN if not accepted or not yet
    backlog_times: np.ndarray  # bin edges' left ends (s) for the backlog series
    backlog: np.ndarray  # events waiting in the asynchronous stages at each bin start
    down: list[list[tuple[float, float]]]  # outage windows per service

    @property
    def completion_delay(self) -> np.ndarray:
        return (self.done - self.arrival)[self.accepted]


def _outages(rng: np.random.Generator, availability: float, mttr: float,
             horizon: float) -> list[tuple[float, float]]:
    """Down windows of an alternating renewal process started in its stationary state."""
    if availability >= 1.0:
        return []
    mttf = mttr * availability / (1.0 - availability)
    n = int(4 + 3 * horizon / (mttf + mttr))
    ups, downs = rng.exponential(mttf, n), rng.exponential(mttr, n)
    start_down = rng.random() >= availability
    windows, t = [], 0.0
    for up, dn in zip(ups, downs, strict=True):
        if not start_down:
            t += up
        start_down = False
        if t > horizon:
            break
        windows.append((t, t + dn))
        t += dn
    return windows


def _is_up(times: np.ndarray, windows: list[tuple[float, float]]) -> np.ndarray:
    up = np.ones(len(times), dtype=bool)
    for start, end in windows:
        up &= ~((times >= start) & (times < end))
    return up


def _lindley(ready: np.ndarray, work: np.ndarray, free: float) -> np.ndarray:
    """Finish times of one FIFO server, free from ``free`` on, for sorted ``ready``:
    F_k = S_k + max(free, max_{j≤k}(r_j − S_{j−1})), S the running sum of the work."""
    total = np.cumsum(work)
    return total + np.maximum(free, np.maximum.accumulate(ready - (total - work)))


def _stage(ready: np.ndarray, work: np.ndarray, workers: int,
           windows: list[tuple[float, float]], loop: bool = False) -> np.ndarray:
    """FIFO with ``workers`` servers that start nothing during an outage; finish times.

    One worker: vectorised Lindley recursion between outages (an event whose start falls in
    an outage starts when it ends). Several workers (or ``loop``): an event-by-event loop.
    """
    order = np.argsort(ready, kind="stable")
    r, s = ready[order], work[order]
    out = np.empty(len(r))
    if workers == 1 and not loop:
        i, free = 0, 0.0
        for a, b in sorted(windows):
            if i == len(r):
                break
            finish = _lindley(r[i:], s[i:], free)
            before = int(np.searchsorted(finish - s[i:], a, side="left"))
            out[i:i + before] = finish[:before]
            if before:
                free = float(finish[before - 1])
            i += before
            free = max(free, b)
        if i < len(r):
            out[i:] = _lindley(r[i:], s[i:], free)
    else:
        heap = [0.0] * workers
        w = 0
        for k in range(len(r)):
            start = max(r[k], heapq.heappop(heap))
            while w < len(windows) and windows[w][1] <= start:
                w += 1
            if w < len(windows) and windows[w][0] <= start:
                start = windows[w][1]
            out[k] = start + s[k]
            heapq.heappush(heap, out[k])
    finish = np.empty(len(r))
    finish[order] = out
    return finish


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Result:
    """One run (every random number drawn up front, in an order that no setting changes)."""
    s = scenario
    rng = np.random.default_rng(s.seed) if rng is None else rng
    horizon = s.duration_s
    max_depth = 12  # draw for the deepest chain the lesson uses, so depth keeps CRN too
    down = [_outages(rng, s.availability, s.mttr_s, 3 * horizon) if s.random_outages else []
            for _ in range(max(max_depth, s.depth))][: s.depth]
    if s.outage is not None:
        i, start, end = s.outage
        down[i] = sorted([*down[i], (start, end)])
    n = rng.poisson(s.arrival_rate * horizon)
    arrival = np.sort(rng.uniform(0.0, horizon, n))
    hops = rng.exponential(s.hop_latency_s, (n, max(max_depth, s.depth)))[:, : s.depth]
    work = rng.exponential(1.0 / s.consumer_rate, (n, max(max_depth, s.depth)))[:, : s.depth]

    synced = 1 + s.sync_steps
    accepted = np.ones(n, dtype=bool)
    for i in range(synced):
        accepted &= _is_up(arrival, down[i])
    user_latency = hops[:, :synced].sum(axis=1)
    done = np.full(n, np.nan)
    ready = (arrival + user_latency)[accepted]
    entered = ready.copy()
    finishes = []
    for i in range(synced, s.depth):
        ready = _stage(ready, work[accepted, i], s.consumers, down[i])
        finishes.append(ready)
    done[accepted] = ready
    edges = np.arange(0.0, horizon, 1.0)
    if finishes:
        inside = np.searchsorted(np.sort(entered), edges, side="right")
        left = np.searchsorted(np.sort(finishes[-1]), edges, side="right")
        backlog = (inside - left).astype(float)
    else:
        backlog = np.zeros(len(edges))
    return Result(s, arrival, accepted, user_latency, done, edges, backlog, down)


def summary(result: Result, warmup_s: float = 0.0) -> dict[str, float]:
    """Availability, user-visible latency and completion delay of the requests after warmup."""
    keep = result.arrival >= warmup_s
    acc = result.accepted[keep]
    lat = result.user_latency[keep][acc]
    delay = (result.done - result.arrival)[keep][acc]
    finished = delay[np.isfinite(delay)]
    return {
        "requests": float(keep.sum()),
        "availability": float(acc.mean()) if acc.size else math.nan,
        "mean_latency_s": float(lat.mean()) if lat.size else math.nan,
        "p99_latency_s": float(np.quantile(lat, 0.99)) if lat.size else math.nan,
        "completion_mean_s": float(finished.mean()) if finished.size else math.nan,
        "completion_p99_s": float(np.quantile(finished, 0.99)) if finished.size else math.nan,
        "max_backlog": float(result.backlog.max()) if result.backlog.size else 0.0,
    }


def drained_after_s(result: Result, end_s: float, threshold: float = 5.0) -> float:
    """Seconds after ``end_s`` (an outage's end) until fewer than ``threshold`` events wait;
    inf if the backlog never falls that low within the run."""
    later = (result.backlog_times > end_s) & (result.backlog < threshold)
    return float(result.backlog_times[later][0] - end_s) if later.any() else math.inf


# ---------------------------------------------------------------- closed forms


def chain_availability(availabilities: list[float] | tuple[float, ...]) -> float:
    """A synchronous chain is up only when every service is: ∏Aᵢ (independent failures)."""
    return float(np.prod([check_probability("availability", a) for a in availabilities]))


def chain_latency_percentile(depth: int, mean_hop_s: float, quantile: float) -> float:
    """Quantile of the sum of ``depth`` independent exponential calls of mean ``mean_hop_s``:
    an Erlang(depth) distribution, found by bisection on its CDF. The mean is depth·mean_hop_s."""
    depth = check_int("depth", depth, 1)

    def cdf(x: float) -> float:
        y = x / mean_hop_s
        term, total = 1.0, 1.0
        for k in range(1, depth):
            term *= y / k
            total += term
        return 1.0 - math.exp(-y) * total

    low, high = 0.0, mean_hop_s * (depth + 50)
    for _ in range(80):
        mid = (low + high) / 2
        low, high = (mid, high) if cdf(mid) < quantile else (low, mid)
    return (low + high) / 2


def backlog_drain_s(arrival_rate: float, outage_s: float, capacity: float) -> float:
    """Fluid model: an outage of D seconds piles up λ·D events, drained at c·μ − λ per second
    after it, so the backlog is gone λ·D/(c·μ − λ) seconds after recovery (needs c·μ > λ)."""
    if capacity <= arrival_rate:
        return math.inf
    return arrival_rate * outage_s / (capacity - arrival_rate)


def completion_mean_s(scenario: Scenario) -> float:
    """Mean completion delay of an accepted request, sync part included (approximation).

    Each asynchronous stage is an M/M/c queue (Jackson: a tandem of them passes Poisson
    traffic on), plus, for random outages, a fluid term: an outage of length D adds
    λ·D²/2 · cμ/(cμ − λ) of waiting; outages start at rate (1 − A)/MTTR and E[D²] = 2·MTTR²,
    so the extra mean delay per stage is (1 − A)·MTTR·cμ/(cμ − λ). Assumes outages are rare and
    long next to the service times and do not overlap between stages.
    """
    s = scenario
    capacity = s.consumers * s.consumer_rate
    total = (1 + s.sync_steps) * s.hop_latency_s
    for _ in range(s.sync_steps + 1, s.depth):
        total += theory.mmc_mean_response(s.arrival_rate, s.consumer_rate, s.consumers)
        if s.random_outages:
            total += (1 - s.availability) * s.mttr_s * capacity / (capacity - s.arrival_rate)
    return total


# ---------------------------------------------------------------- sweeps and plots


def _model(rng: np.random.Generator, design: str = "async", **params: Any) -> dict[str, float]:
    """One run; ``design`` is "sync" (every step called in the chain) or "async" (events)."""
    depth = params.get("depth", Scenario.depth)
    steps = depth - 1 if design == "sync" else 0
    return summary(simulate(Scenario(**params, sync_steps=steps), rng))


def sweep(grid: dict[str, list[Any]], *, replications: int = 5, seed: int = 1,
          **fixed: Any) -> list[dict[str, Any]]:
    """Run the study over ``grid`` (Scenario fields) and average the replications, with 95 %
    intervals (``<metric>_ci``)."""
    rows = experiments.sweep(_model, grid, seed=seed, replications=replications, fixed=fixed)
    metrics = ["availability", "mean_latency_s", "p99_latency_s", "completion_mean_s",
               "completion_p99_s", "max_backlog"]
    return experiments.aggregate(rows, list(grid), metrics)


def plot_sweep(rows: list[dict[str, Any]]) -> list:
    """Availability, user-visible p99 and completion p99 against depth, one line per design."""
    axes = plots.sweep_panels(
        rows, x="depth", by="design" if "design" in rows[0] else None,
        metrics=["availability", "p99_latency_s", "completion_p99_s"],
        xlabel="services in the flow (depth)",
        ylabels={"availability": "requests accepted (fraction)",
                 "p99_latency_s": "user-visible p99 latency (s)",
                 "completion_p99_s": "p99 time to complete (s)"},
        group_label=lambda d: {"sync": "synchronous chain", "async": "event-driven"}.get(d, d),
        panel_size=(4.0, 3.2))
    return axes


def plot_dashboard(results: dict[str, Result], outage: tuple[float, float],
                   bin_s: float = 5.0) -> list:
    """Accepted fraction, backlog and completion delay over time, the outage shaded."""
    first = next(iter(results.values()))
    edges = np.arange(0.0, first.scenario.duration_s + bin_s, bin_s)
    mids = edges[:-1]
    accepted, backlog, delay = {}, {}, {}
    for name, r in results.items():
        idx = np.digitize(r.arrival, edges) - 1
        counts = np.bincount(idx, minlength=len(mids))[: len(mids)]
        ok = np.bincount(idx, weights=r.accepted, minlength=len(mids))[: len(mids)]
        accepted[name] = ok / np.maximum(counts, 1)
        waits = np.where(r.accepted, r.done - r.arrival, np.nan)
        delay[name] = [float(np.nanmax(waits[idx == b])) if np.any(r.accepted[idx == b])
                       else math.nan for b in range(len(mids))]
        backlog[name] = np.interp(mids, r.backlog_times, r.backlog)
    return plots.dashboard(mids, {"requests accepted (fraction)": accepted,
                                  "events waiting (count)": backlog,
                                  "slowest completion of requests arriving then (s)": delay},
                           windows=[outage], window_label="inventory outage",
                           panel_height=1.9)


@functools.cache
def _tradeoff_rows(availability: float, arrival_rate: float, consumers: int,
                   mttr_s: float) -> tuple:
    """Summaries per depth for both designs. The event-driven user sees the front door only,
    and with common random numbers its front is the same at every depth, so one run of
    depth 1 stands for all depths (the slider figure draws no completion delay)."""
    common = dict(availability=availability, arrival_rate=arrival_rate, consumers=consumers,
                  mttr_s=mttr_s, duration_s=900.0)
    front = summary(simulate(Scenario(depth=1, **common)))
    out = []
    for depth in range(1, 9):
        chain = summary(simulate(Scenario(depth=depth, sync_steps=depth - 1, **common)))
        out += [(depth, False, chain), (depth, True, front)]
    return tuple(out)


def draw_tradeoff(availability: float = 0.98, arrival_rate: float = 20.0, consumers: int = 1,
                  mttr_s: float = 5.0) -> None:
    """Two panels against depth: availability (with ∏Aᵢ and A_front) and user-visible p99
    latency, the synchronous chain against the event-driven flow (few artists, fixed layout)."""
    import matplotlib.pyplot as plt

    rows = _tradeoff_rows(availability, arrival_rate, consumers, mttr_s)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.3), layout="none")
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.16, top=0.95, wspace=0.28)
    depths = np.arange(1, 9)
    for is_async, name, color in ((False, "synchronous chain", plots.COLORS[1]),
                                  (True, "event-driven", plots.COLORS[0])):
        part = [r for d, a, r in rows if a == is_async]
        left.plot(depths, [r["availability"] for r in part], "o", color=color,
                  label=f"{name} (simulated)")
        right.plot(depths, [r["p99_latency_s"] * 1e3 for r in part], "o-", color=color,
                   label=f"{name}: user p99")
    left.plot(depths, availability ** depths, **plots.THEORY, label="∏Aᵢ = A^depth")
    left.axhline(availability, color="grey", linewidth=0.8, label="A_front")
    left.set(xlabel="services in the flow (depth)", ylabel="requests accepted (fraction)")
    right.set(xlabel="services in the flow (depth)", ylabel="user-visible p99 latency (ms)")
    left.legend(fontsize="x-small", loc="lower left")
    right.legend(fontsize="x-small", loc="upper left")


def hybrid(scenario: Scenario, sync_steps: int) -> Scenario:
    """The same scenario with ``sync_steps`` services after the front called synchronously."""
    return replace(scenario, sync_steps=sync_steps)
