"""The shared-nothing study: throughput against node count N under contention and coherency.

Picture the post office of the pattern's module with a stopwatch. Each of N nodes has one client
in a closed loop (a new request as soon as the last one is answered). A request does its local
work on its own node (mean ``work_s``, in parallel with every other node); with probability
``cross_fraction`` it then needs the *shared coordinator*, a lock that serves one request at a
time (FIFO). Holding it costs ``lock_s`` (contention) plus ``sync_s`` for each of the N − 1
other nodes it must bring up to date (coherency, pairwise cross-talk). Shared-everything is
``cross_fraction = 1`` with cross-talk; shared-nothing routes nearly every request to one
partition (``cross_fraction`` small) and has no cross-talk (``sync_s = 0``).

Nothing here plugs in the Universal Scalability Law: the curve comes from the queue at the lock.
``usl_fit`` then fits X(N) = λN/(1 + σ(N − 1) + κN(N − 1)) to the measurements by linear least
squares on N/X, ``mva_throughput`` is the exact mean-value analysis of the same closed network
(exponential times), and ``measure_sqlite_scaling`` times real writer threads on SQLite files.
"""

from __future__ import annotations

import heapq
import math
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from patterns.architectural.shared_nothing_scale_out import (
    PartitionedCluster,
    SQLitePartitions,
)
from patterns.checks import check_int, check_non_negative, check_positive, check_probability
from simulations import experiments
from simulations.metrics import confidence_interval, per_bin, percentile_of, rate_over_time

__all__ = [
    "PartitionedCluster", "Run", "Scenario", "SHARED_EVERYTHING", "SHARED_NOTHING",
    "amdahl_throughput", "draw_scaling", "epoch_throughput", "expected_max_work",
    "lock_demand_s", "measure_sqlite_scaling",
    "mva_throughput", "over_time", "plot_dashboard", "plot_scaling", "scaling_curve",
    "simulate", "summary", "sweep", "usl_fit", "usl_parameters", "usl_peak", "usl_throughput",
]


@dataclass(frozen=True)
class Scenario:
    """N nodes, one closed-loop client each, a shared FIFO coordinator (times exponential).

    ``sync_outside_lock``: the cross-talk is done by the node after releasing the lock
    (asynchronous invalidation, Level 4). ``episode``: (start, end, cross_fraction) of a
    stretch where more requests cross partitions (a scatter-gather job), for the dashboard.
    """

    nodes: int = 8
    work_s: float = 0.010  # local work on the request's own node
    lock_s: float = 0.0004  # time holding the shared coordinator (contention)
    sync_s: float = 0.00005  # per other node, to keep it coherent (cross-talk)
    cross_fraction: float = 1.0  # share of requests that need the coordinator
    sync_outside_lock: bool = False
    synchronous: bool = False  # a global commit epoch: every node waits for the slowest
    work_cv: float = 1.0  # coefficient of variation of the local work (1 = exponential)
    duration_s: float = 6.0
    warmup_s: float = 0.5
    episode: tuple[float, float, float] | None = None
    seed: int = 1

    def __post_init__(self) -> None:
        check_int("Scenario.nodes", self.nodes, 1)
        check_positive("Scenario.work_s", self.work_s)
        check_non_negative("Scenario.lock_s", self.lock_s)
        check_non_negative("Scenario.sync_s", self.sync_s)
        check_probability("Scenario.cross_fraction", self.cross_fraction)
        check_positive("Scenario.work_cv", self.work_cv)
        check_positive("Scenario.duration_s", self.duration_s)
        check_non_negative("Scenario.warmup_s", self.warmup_s)
        if self.warmup_s >= self.duration_s:
            raise ValueError(f"Scenario.warmup_s must be < duration_s (got {self.warmup_s})")


SHARED_EVERYTHING = Scenario(synchronous=True, work_cv=0.1)
SHARED_NOTHING = Scenario(cross_fraction=0.02, sync_s=0.0)


@dataclass
class Run:
    """One row per request: its node, when it reached the coordinator (or finished its local
    work), when the coordinator took it, when it was done, and whether it crossed partitions."""

    scenario: Scenario
    node: np.ndarray
    ready: np.ndarray
    start: np.ndarray
    end: np.ndarray
    crossed: np.ndarray

    @property
    def lock_wait(self) -> np.ndarray:
        return self.start - self.ready


def lock_demand_s(sc: Scenario, nodes: int | None = None) -> float:
    """Mean time a request holds the coordinator: q·(lock_s + sync_s·(N − 1))."""
    n = sc.nodes if nodes is None else nodes
    hold = sc.lock_s + (0.0 if sc.sync_outside_lock else sc.sync_s * (n - 1))
    return sc.cross_fraction * hold


def _work(g: np.random.Generator, size: int, sc: Scenario) -> np.ndarray:
    """Local work times of mean work_s: exponential for cv = 1, else gamma of shape 1/cv²."""
    if sc.work_cv == 1.0:
        return g.standard_exponential(size) * sc.work_s
    shape = 1 / sc.work_cv**2
    return g.standard_gamma(shape, size) * (sc.work_s / shape)


def _simulate_epochs(sc: Scenario, streams: list[np.random.Generator]) -> Run:
    """Global commit epochs: all N nodes do one request's local work in parallel; then the
    ones that need the coordinator commit through it one after another (node order), each
    bringing its N − 1 peers up to date; the next epoch starts when the last commit is done."""
    n = sc.nodes
    size = int(2 * sc.duration_s / sc.work_s) + 16
    work = np.column_stack([_work(g, size, sc) for g in streams])
    hold = np.column_stack([g.standard_exponential(size) for g in streams]) * sc.lock_s
    coin = np.column_stack([g.random(size) for g in streams])
    crossed = coin < sc.cross_fraction
    hold = np.where(crossed, hold + sc.sync_s * (n - 1), 0.0)
    parallel = work.max(axis=1)
    length = parallel + hold.sum(axis=1)
    begin = np.concatenate([[0.0], np.cumsum(length)[:-1]])
    keep = begin + length <= sc.duration_s
    begin, parallel, work, hold, crossed = (begin[keep], parallel[keep], work[keep],
                                            hold[keep], crossed[keep])
    ready = begin[:, None] + work
    lock_done = (begin + parallel)[:, None] + np.cumsum(hold, axis=1)
    end = np.where(crossed, lock_done, ready)
    start = np.where(crossed, lock_done - hold, ready)
    node = np.broadcast_to(np.arange(n), ready.shape)
    return Run(sc, node.ravel(), ready.ravel(), start.ravel(), end.ravel(), crossed.ravel())


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """One seeded run. Node i's random numbers come from the i-th child of ``rng``, so runs
    with more nodes share the first nodes' draws (common random numbers across N)."""
    sc = scenario
    rng = rng if rng is not None else np.random.default_rng(sc.seed)
    n = sc.nodes
    streams = rng.spawn(n)
    if sc.synchronous:
        return _simulate_epochs(sc, streams)
    size = int(3 * sc.duration_s / sc.work_s) + 64
    work = [_work(g, size, sc) for g in streams]
    hold = [g.standard_exponential(size) for g in streams]
    coin = [g.random(size) for g in streams]
    hold_s = sc.lock_s + (0.0 if sc.sync_outside_lock else sc.sync_s * (n - 1))
    local_sync = sc.sync_s * (n - 1) if sc.sync_outside_lock else 0.0
    count = [0] * n
    heap = [(work[i][0], i) for i in range(n)]
    heapq.heapify(heap)
    lock_free = 0.0
    rows: list[tuple[int, float, float, float, bool]] = []
    while heap:
        t, i = heapq.heappop(heap)
        k = count[i]
        share = sc.cross_fraction
        if sc.episode is not None and sc.episode[0] <= t < sc.episode[1]:
            share = sc.episode[2]
        crossed = bool(coin[i][k] < share)
        if crossed:
            start = max(t, lock_free)
            end = start + hold[i][k] * hold_s
            lock_free = end
            end += local_sync
        else:
            start = end = t
        rows.append((i, t, start, end, crossed))
        count[i] = k = k + 1
        if k >= size:
            raise RuntimeError("ran out of pre-drawn times; lengthen size")  # pragma: no cover
        nxt = end + work[i][k]
        if nxt < sc.duration_s:
            heapq.heappush(heap, (nxt, i))
    a = np.array(rows, dtype=float).reshape(-1, 5)
    return Run(sc, a[:, 0].astype(int), a[:, 1], a[:, 2], a[:, 3], a[:, 4].astype(bool))


def summary(run: Run) -> dict[str, float]:
    """Throughput (completions per s after the warm-up), coordinator utilisation and waits."""
    sc = run.scenario
    done = (run.end >= sc.warmup_s) & (run.end < sc.duration_s)
    span = sc.duration_s - sc.warmup_s
    crossed = run.crossed & done
    busy = np.sum(np.minimum(run.end[crossed], sc.duration_s) - run.start[crossed])
    waits = run.lock_wait[crossed]
    return {
        "throughput_rps": float(done.sum() / span),
        "per_node_rps": float(done.sum() / span / sc.nodes),
        "lock_utilisation": float(busy / span) if not sc.sync_outside_lock else float(
            np.sum(run.end[crossed] - run.start[crossed] - sc.sync_s * (sc.nodes - 1)) / span),
        "mean_lock_wait_s": float(waits.mean()) if len(waits) else 0.0,
        "cross_share": float(crossed.sum() / max(done.sum(), 1)),
    }


def _model(rng: np.random.Generator, **settings: Any) -> dict[str, float]:
    return summary(simulate(replace(Scenario(), **settings), rng))


def sweep(grid: dict[str, Sequence[Any]], *, seed: int = 1, replications: int = 3,
          **fixed: Any) -> list[dict[str, Any]]:
    """``experiments.sweep`` over the scenario's settings (``nodes``, ``cross_fraction``, ...)."""
    return experiments.sweep(_model, grid, seed=seed, replications=replications, fixed=fixed)


def scaling_curve(base: Scenario, nodes: Sequence[int], replications: int = 5,
                  seed: int = 1) -> dict[str, np.ndarray]:
    """Throughput at each N: per-replication matrix ``X`` (replications × len(nodes)), its mean
    and 95 % half-width. Replication r uses the same seed at every N."""
    fields = {k: getattr(base, k) for k in base.__dataclass_fields__ if k not in ("nodes", "seed")}
    rows = sweep({"nodes": list(nodes)}, seed=seed, replications=replications, **fields)
    X = np.array([[r["throughput_rps"] for r in rows if r["nodes"] == n] for n in nodes]).T
    ci = [confidence_interval(X[:, j]) for j in range(len(nodes))]
    return {"nodes": np.asarray(nodes, float), "X": X, "mean": np.array([m for m, _ in ci]),
            "half": np.array([h for _, h in ci])}


def over_time(run: Run, bin_s: float = 0.25) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Dashboard series: completions per s, share of requests crossing partitions, p99 wait
    for the coordinator, and the coordinator's busy fraction per bin."""
    end = run.scenario.duration_s
    c = run.crossed
    busy_t = run.start[c]
    busy_v = run.end[c] - run.start[c]
    mids, busy = per_bin(busy_t, busy_v, bin_s, 0, end, np.sum)
    return {
        "completions": rate_over_time(run.end, bin_s, 0, end),
        "cross": per_bin(run.end, run.crossed.astype(float), bin_s, 0, end, np.mean),
        "p99_wait": per_bin(run.ready[c], run.lock_wait[c], bin_s, 0, end, percentile_of(99)),
        "busy": (mids, np.minimum(np.nan_to_num(busy) / bin_s, 1.0)),
    }


# --- closed forms -------------------------------------------------------------------------


def usl_throughput(nodes, lam: float, sigma: float, kappa: float) -> np.ndarray:
    """The Universal Scalability Law, X(N) = λN / (1 + σ(N − 1) + κN(N − 1))."""
    n = np.asarray(nodes, float)
    return lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))


def amdahl_throughput(nodes, lam: float, sigma: float) -> np.ndarray:
    """Amdahl's law as throughput, the USL with κ = 0: λN / (1 + σ(N − 1)) → λ/σ."""
    return usl_throughput(nodes, lam, sigma, 0.0)


def usl_peak(sigma: float, kappa: float) -> float:
    """N* = √((1 − σ)/κ), where dX/dN = 0 (infinite for κ = 0: Amdahl never turns down)."""
    return math.inf if kappa <= 0 else math.sqrt(max(1 - sigma, 0.0) / kappa)


def usl_fit(nodes, throughput, amdahl: bool = False) -> dict[str, float]:
    """Least squares on N/X = a + b(N − 1) + c·N(N − 1), linear in (a, b, c): λ = 1/a,
    σ = b/a, κ = c/a (``amdahl``: c = 0). Also the parameters' standard errors from the
    fit's covariance, by the delta method."""
    n = np.asarray(nodes, float)
    y = n / np.asarray(throughput, float)
    cols = [np.ones_like(n), n - 1] + ([] if amdahl else [n * (n - 1)])
    A = np.column_stack(cols)
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - A @ coef
    dof = max(len(n) - A.shape[1], 1)
    cov = np.linalg.inv(A.T @ A) * float(resid @ resid) / dof
    a, b = coef[0], coef[1]
    c = 0.0 if amdahl else coef[2]
    out = {"lam": 1 / a, "sigma": b / a, "kappa": c / a}
    # gradients of b/a and c/a with respect to (a, b, c)
    g_sigma = np.array([-b / a**2, 1 / a] + ([] if amdahl else [0.0]))
    out["sigma_se"] = float(math.sqrt(g_sigma @ cov @ g_sigma))
    if amdahl:
        out["kappa_se"] = 0.0
    else:
        g_kappa = np.array([-c / a**2, 0.0, 1 / a])
        out["kappa_se"] = float(math.sqrt(g_kappa @ cov @ g_kappa))
    out["peak"] = usl_peak(out["sigma"], out["kappa"])
    return out


def usl_parameters(sc: Scenario) -> dict[str, float]:
    """The USL parameters the epoch mechanism implies, with W = work_s, q = cross_fraction:
    an epoch lasts W + qN·lock_s + qN(N − 1)·sync_s, so N/X = (W + q·lock_s)
    + q·lock_s·(N − 1) + q·sync_s·N(N − 1): λ = 1/(W + q·lock_s), σ = q·lock_s·λ,
    κ = q·sync_s·λ. Exact for constant work; variable work adds E[max of N works] − W."""
    lam = 1 / (sc.work_s + sc.cross_fraction * sc.lock_s)
    return {"lam": lam, "sigma": sc.cross_fraction * sc.lock_s * lam,
            "kappa": sc.cross_fraction * sc.sync_s * lam}


def expected_max_work(sc: Scenario, nodes: int) -> float:
    """E[max of N local works] (gamma of mean work_s and cv work_cv), by quadrature of
    ∫(1 − F(x)^N) dx on a fine grid."""
    shape = 1 / sc.work_cv**2
    scale = sc.work_s / shape
    x = np.linspace(0, sc.work_s * (1 + 12 * sc.work_cv) + 20 * scale, 40_001)
    x[0] = 1e-12 * scale
    log_pdf = (shape - 1) * np.log(x / scale) - x / scale - math.lgamma(shape) - math.log(scale)
    pdf = np.exp(log_pdf)
    cdf = np.concatenate([[0.0], np.cumsum((pdf[1:] + pdf[:-1]) / 2 * np.diff(x))])
    cdf /= cdf[-1]  # the grid reaches far into the tail: the missing mass is rounding
    return float(np.trapezoid(1 - cdf**nodes, x))


def epoch_throughput(sc: Scenario, nodes: int | None = None) -> float:
    """Exact throughput of the epoch mechanism by renewal-reward: N requests per epoch of mean
    E[max W] + qN·(lock_s + sync_s·(N − 1))."""
    n = sc.nodes if nodes is None else check_int("nodes", nodes, 1)
    hold = sc.lock_s + sc.sync_s * (n - 1)
    return n / (expected_max_work(sc, n) + sc.cross_fraction * n * hold)


def mva_throughput(sc: Scenario, nodes: int | None = None) -> float:
    """Exact mean-value analysis of the closed network: N clients, each with its own node
    (a delay of mean work_s, plus the cross-talk when it is done outside the lock) and the
    shared FCFS coordinator of demand q·hold. Exact for exponential times (product form)."""
    n = sc.nodes if nodes is None else check_int("nodes", nodes, 1)
    demand = lock_demand_s(sc, n)
    think = sc.work_s + (sc.cross_fraction * sc.sync_s * (n - 1) if sc.sync_outside_lock
                         else 0.0)
    queue, x = 0.0, 0.0
    for k in range(1, n + 1):
        response = demand * (1 + queue)
        x = k / (think + response)
        queue = x * response
    return x


# --- the real part: SQLite writers ---------------------------------------------------------


def measure_sqlite_scaling(writers: Sequence[int], shared: bool, seconds: float = 0.25,
                           folder: str | None = None) -> np.ndarray:
    """Committed rows per second with w writer threads, each writing its own partition, for
    each w in ``writers``: in one shared file (one write lock) or one file per partition."""
    check_positive("seconds", seconds)
    rates = []
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        for w in writers:
            store = SQLitePartitions(tempfile.mkdtemp(dir=tmp), w, shared)
            done = [0] * w
            stop = time.perf_counter() + seconds

            def writer(p: int, store=store, done=done, stop=stop) -> None:
                db = store.connect(p)
                try:
                    while time.perf_counter() < stop:
                        store.write(db, p, done[p])
                        done[p] += 1
                finally:
                    db.close()

            began = time.perf_counter()
            threads = [threading.Thread(target=writer, args=(p,), daemon=True)
                       for p in range(w)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=seconds + 30)
            if any(t.is_alive() for t in threads):
                raise RuntimeError("a SQLite writer thread is stuck")
            rates.append(sum(done) / (time.perf_counter() - began))
    return np.array(rates)


# --- plots --------------------------------------------------------------------------------


def plot_scaling(curves: dict[str, dict[str, np.ndarray]], fits: dict[str, dict[str, float]]
                 | None = None, ax=None):
    """Throughput against N with 95 % bars, a fitted USL curve per design if given."""
    from simulations import plots

    ax = plots.new_axes(ax, figsize=(7, 4))
    for color, (name, c) in zip(plots.COLORS, curves.items(), strict=False):
        ax.errorbar(c["nodes"], c["mean"], yerr=c["half"], fmt="o", color=color, capsize=3,
                    label=f"{name}: simulation (95 % CI)")
        if fits and name in fits:
            f = fits[name]
            grid = np.linspace(1, c["nodes"].max(), 200)
            ax.plot(grid, usl_throughput(grid, f["lam"], f["sigma"], f["kappa"]), color=color,
                    label=f"{name}: USL fit σ={f['sigma']:.3f}, κ={f['kappa']:.5f}")
    ax.set_xlabel("nodes N")
    ax.set_ylabel("throughput (requests/s)")
    ax.legend(fontsize="x-small")
    return ax


def draw_scaling(work_ms: float = 10.0, lock_ms: float = 0.4, sync_us: float = 50.0,
                 cross_fraction: float = 1.0):
    """The slider figure: exact MVA throughput against N, the USL fitted to it and its peak,
    and the linear ideal (closed forms only, so a redraw is fast)."""
    from simulations import plots

    sc = Scenario(work_s=work_ms / 1e3, lock_s=lock_ms / 1e3, sync_s=sync_us / 1e6,
                  cross_fraction=cross_fraction)
    nodes = np.arange(1, 41)
    x = np.array([mva_throughput(sc, int(n)) for n in nodes])
    fit = usl_fit(nodes, x)
    best = int(nodes[np.argmax(x)])
    fig, ax = plots.plt.subplots(figsize=(7, 3.6), layout="none")
    fig.subplots_adjust(left=0.11, right=0.98, bottom=0.14, top=0.97)
    ax.plot(nodes, x[0] * nodes, ":", color="grey", label="linear: N·X(1)")
    ax.plot(nodes, x, "o", markersize=3, label=f"exact model (MVA), peak at N = {best}")
    ax.plot(nodes, usl_throughput(nodes, fit["lam"], fit["sigma"], fit["kappa"]),
            **plots.THEORY, label=f"USL fit: σ = {fit['sigma']:.3f}, κ = {fit['kappa']:.5f}, "
                                  f"N* = {fit['peak']:.1f}")
    ax.set_ylim(0, 1.15 * x.max())
    ax.set_xlabel("nodes N")
    ax.set_ylabel("throughput (requests/s)")
    ax.legend(fontsize="x-small", loc="lower right")
    return fig


def plot_dashboard(runs: dict[str, Run], bin_s: float = 0.25,
                   episode: tuple[float, float] = ()):
    """Completions, cross-partition share, p99 coordinator wait and its busy share over time."""
    from simulations import plots

    series = {name: over_time(run, bin_s) for name, run in runs.items()}
    times = next(iter(series.values()))["completions"][0]
    panels = {
        "completions (requests/s)": {n: s["completions"][1] for n, s in series.items()},
        "cross-partition share": {n: s["cross"][1] for n, s in series.items()},
        "p99 wait for the coordinator (s)": {n: s["p99_wait"][1] for n, s in series.items()},
        "coordinator busy share": {n: s["busy"][1] for n, s in series.items()},
    }
    return plots.dashboard(times, panels, windows=[episode] if episode else (),
                           window_label="scatter-gather job")
