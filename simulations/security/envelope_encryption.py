"""The envelope-encryption study: key-service load and encrypt latency against data-key reuse.

Picture the flat keys of the pattern's module with a stopwatch: tenants (messages) arrive at
random, each building (client) keeps one flat key on its hook, and a new key means a trip to
the caretaker (the key service), who serves one request at a time. A key that may open many
doors (a large ``max_messages``, a long ``max_age_s``) means few trips, so the caretaker is
never swamped and nobody waits; but a lost key then opens many flats (the blast radius).

``simulate`` draws Poisson messages at ``arrival_rate`` (``workloads.PoissonArrivals``), deals
them at random to ``clients`` (each with its own ``DataKeyCache`` from the pattern, driven by the
message times as its clock), sends every cache miss to the key service, a FIFO server of
``key_service_s`` per request plus ``rtt_s`` of network (``fastpath.fifo_queue``), and makes the
messages that arrive before their key is ready wait for it. Encryption itself costs
``encrypt_s`` (measured on this machine in the lesson; fixed here). The closed forms
(``messages_per_key``, ``key_service_qps``) sit beside the model: with N ~ Poisson(λc·A) the
messages one client sees during a key's maximum age A, a key serves E[min(m, 1 + N)] messages,
and the key service sees λ / E[n] calls per second, λ/m when the count binds and
c/(A + c/λ) ≈ c/A for c clients when the age binds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from patterns.checks import check_int, check_non_negative, check_positive
from patterns.security.envelope_encryption import CachedKey, DataKeyCache, EnvelopeEncryptor
from simulations import experiments
from simulations.fastpath import fifo_queue
from simulations.metrics import per_bin, percentile_of, rate_over_time
from simulations.workloads import PoissonArrivals

__all__ = [
    "NO_LIMIT", "DataKeyCache", "EnvelopeEncryptor", "Run", "Scenario", "assign_keys",
    "draw_tradeoff",
    "key_service_qps", "messages_per_key", "over_time", "plot_dashboard", "plot_sweep",
    "plot_theory", "simulate", "summary", "sweep", "theory_rows",
]

NO_LIMIT = 2**62  # "no message limit" as an integer


@dataclass(frozen=True)
class Scenario:
    """Poisson messages at ``arrival_rate`` per s over ``clients`` caches and one key service.

    ``max_messages``/``max_age_s``: each data key's limits (``math.inf`` age: none).
    ``key_service_s``: the key service's time per request (its capacity is 1/key_service_s);
    ``rtt_s``: the network round trip added to every key-service call.
    ``slowdown``: (start, end, factor) of an episode in which the key service is that many
    times slower, for the dashboard.
    """

    arrival_rate: float = 1000.0
    clients: int = 4
    max_messages: int = 100
    max_age_s: float = 60.0
    key_service_s: float = 0.004
    rtt_s: float = 0.002
    encrypt_s: float = 0.00002
    duration_s: float = 20.0
    slowdown: tuple[float, float, float] | None = None
    seed: int = 1

    def __post_init__(self) -> None:
        check_positive("Scenario.arrival_rate", self.arrival_rate)
        check_int("Scenario.clients", self.clients, 1)
        check_int("Scenario.max_messages", self.max_messages, 1)
        check_positive("Scenario.max_age_s", self.max_age_s, allow_inf=True)
        check_positive("Scenario.key_service_s", self.key_service_s)
        check_non_negative("Scenario.rtt_s", self.rtt_s)
        check_non_negative("Scenario.encrypt_s", self.encrypt_s)
        check_positive("Scenario.duration_s", self.duration_s)


@dataclass
class Run:
    """Per-message rows (arrival, client, key, latency) and per-key rows of one run."""

    scenario: Scenario
    arrival: np.ndarray
    client: np.ndarray
    key: np.ndarray  # index of the data key that sealed each message
    latency: np.ndarray  # wait for the key (if any) + encryption
    key_start: np.ndarray  # when each key was requested (the miss)
    key_ready: np.ndarray  # when it came back from the key service
    key_messages: np.ndarray  # messages sealed under each key: its blast radius
    key_open: np.ndarray  # True for each client's last key, still in use when the run ends

    @property
    def waited(self) -> np.ndarray:
        """True for the messages that had to wait for a key from the key service."""
        return self.latency > self.scenario.encrypt_s * (1 + 1e-9)


def assign_keys(arrival: np.ndarray, client: np.ndarray, clients: int, max_messages: int,
                max_age_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Run each client's ``DataKeyCache`` (the pattern's own rule) over the message times:
    (key index of each message, request time of each key), keys numbered in request order."""
    now = [0.0]
    caches = [DataKeyCache(max_messages, max_age_s, clock=lambda: now[0]) for _ in range(clients)]
    ids = [-1] * clients
    key = np.empty(len(arrival), dtype=np.int64)
    starts: list[float] = []
    for i, (t, c) in enumerate(zip(arrival.tolist(), client.tolist(), strict=True)):
        now[0] = t
        cache = caches[c]
        if cache.take() is None:
            cache.put(CachedKey(b"", b"", t))
            ids[c] = len(starts)
            starts.append(t)
        key[i] = ids[c]
    return key, np.array(starts)


def _key_service(requests: np.ndarray, sc: Scenario) -> np.ndarray:
    """When each key request is done at the key service, a single FIFO server. During
    ``slowdown`` a request *served* in the window takes ``factor`` times longer."""
    if not len(requests):
        return np.array([])
    if sc.slowdown is None:
        return fifo_queue(requests, np.full(len(requests), sc.key_service_s)).end
    begin, end, factor = sc.slowdown
    done, free = np.empty(len(requests)), 0.0
    for k, t in enumerate(requests.tolist()):
        start = max(t, free)
        free = start + sc.key_service_s * (factor if begin <= start < end else 1.0)
        done[k] = free
    return done


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """One seeded run: the arrivals and their clients are drawn first, so runs that differ
    only in the key limits see the same messages (common random numbers)."""
    sc = scenario
    rng = rng if rng is not None else np.random.default_rng(sc.seed)
    arrival = PoissonArrivals(sc.arrival_rate).times(rng, horizon=sc.duration_s)
    client = rng.integers(sc.clients, size=len(arrival))
    key, starts = assign_keys(arrival, client, sc.clients, sc.max_messages, sc.max_age_s)
    ready = _key_service(starts, sc) + sc.rtt_s
    latency = np.maximum(ready[key] - arrival, 0.0) + sc.encrypt_s
    key_open = np.zeros(len(starts), dtype=bool)
    for c in range(sc.clients):
        mine = key[client == c]
        if len(mine):
            key_open[mine[-1]] = True
    return Run(sc, arrival, client, key, latency, starts, ready,
               np.bincount(key, minlength=len(starts)), key_open)


def summary(run: Run, start_s: float = 0.0, end_s: float | None = None) -> dict[str, float]:
    """Key-service calls per second, encrypt latency and messages per key in [start_s, end_s)
    (messages by arrival; keys by request time)."""
    end_s = run.scenario.duration_s if end_s is None else end_s
    sel = (run.arrival >= start_s) & (run.arrival < end_s)
    keys = (run.key_start >= start_s) & (run.key_start < end_s)
    latency = run.latency[sel]
    per_key = run.key_messages[keys & ~run.key_open]  # a key cut off by the end is not a sample
    return {
        "messages_per_s": float(np.sum(sel)) / (end_s - start_s),
        "key_qps": float(np.sum(keys)) / (end_s - start_s),
        "mean_latency_s": float(latency.mean()),
        "p99_latency_s": float(np.percentile(latency, 99)),
        "waited": float(np.mean(run.waited[sel])),
        "mean_messages_per_key": float(per_key.mean()) if len(per_key) else math.nan,
        "max_messages_per_key": float(per_key.max()) if len(per_key) else math.nan,
    }


def _model(rng: np.random.Generator, **settings: Any) -> dict[str, float]:
    scenario = replace(Scenario(), **settings)
    return summary(simulate(scenario, rng), 0.1 * scenario.duration_s)


def sweep(grid: dict[str, Sequence[Any]], *, seed: int = 1, replications: int = 3,
          **fixed: Any) -> list[dict[str, Any]]:
    """``experiments.sweep`` over the scenario's settings (the first 10 % dropped as warm-up)."""
    return experiments.sweep(_model, grid, seed=seed, replications=replications, fixed=fixed)


def over_time(run: Run, bin_s: float = 0.5) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Dashboard series: messages sealed (by completion time) and key-service calls per s,
    p99 encrypt latency and the share of messages that waited for a key (by arrival)."""
    end = run.scenario.duration_s
    return {
        "messages": rate_over_time(run.arrival + run.latency, bin_s, 0, end),
        "key_calls": rate_over_time(run.key_start, bin_s, 0, end),
        "p99_latency": per_bin(run.arrival, run.latency, bin_s, 0, end, percentile_of(99)),
        "waited": per_bin(run.arrival, run.waited.astype(float), bin_s, 0, end, np.mean),
    }


# --- closed forms -------------------------------------------------------------------------


def _mean_min(mean: float, cap: int) -> float:
    """E[min(N, cap)] for N ~ Poisson(mean), exactly (sum of P(N > j) for j < cap)."""
    if cap <= 0:
        return 0.0
    if math.isinf(mean):
        return float(cap)
    if cap > mean + 12 * math.sqrt(mean) + 40:  # P(N > cap) is below 1e-30: the cap never binds
        return mean
    j = np.arange(cap)
    log_pmf = -mean + j * math.log(mean) - np.array([math.lgamma(k + 1) for k in j]) \
        if mean > 0 else np.where(j == 0, 0.0, -np.inf)
    survival = np.clip(1 - np.cumsum(np.exp(log_pmf)), 0.0, 1.0)  # P(N > j)
    return float(np.sum(survival))


def messages_per_key(rate: float, max_messages: int, max_age_s: float) -> float:
    """Mean messages one data key seals, for one client seeing Poisson messages at ``rate``.

    A key opens with a message and then takes later ones while it has sealed fewer than m and
    is younger than A: E[n] = E[min(m, 1 + N)] = 1 + E[min(N, m − 1)], N ~ Poisson(rate·A).
    Limits: m with no age limit; 1 + rate·A with no message limit. The most a key ever seals
    is m: that is the blast radius the count limit guarantees.
    """
    return 1.0 + _mean_min(rate * max_age_s, max_messages - 1)


def key_service_qps(rate: float, clients: int, max_messages: int, max_age_s: float) -> float:
    """Key-service calls per second from ``clients`` caches sharing Poisson traffic ``rate``.

    Each client's keys form a renewal process (a key's cycle ends at its last message and the
    next begins at the next message), so by renewal-reward each client calls (rate/c) / E[n]
    times per second: λ/m when the count binds, c/(A + c/λ) ≈ c/A when the age binds.
    """
    per_client = rate / clients
    return clients * per_client / messages_per_key(per_client, max_messages, max_age_s)


def theory_rows(sizes: Sequence[int], ages: Sequence[float], *, replications: int = 5,
                seed: int = 7, **fixed: Any) -> list[dict[str, Any]]:
    """The sweep the Level 5 plot needs: key_qps and messages per key with their 95 % CIs,
    and the closed forms at the same settings."""
    rows = experiments.aggregate(
        sweep({"max_messages": list(sizes), "max_age_s": list(ages)}, seed=seed,
              replications=replications, **fixed),
        by=("max_messages", "max_age_s"), metrics=("key_qps", "mean_messages_per_key"))
    base = replace(Scenario(), **fixed)
    for row in rows:
        row["theory_qps"] = key_service_qps(base.arrival_rate, base.clients,
                                            row["max_messages"], row["max_age_s"])
        row["theory_messages"] = messages_per_key(base.arrival_rate / base.clients,
                                                  row["max_messages"], row["max_age_s"])
    return rows


# --- plots --------------------------------------------------------------------------------


def _age_label(age: float) -> str:
    return "no age limit" if math.isinf(age) else f"max age {age:g} s"


def plot_sweep(rows: Sequence[dict[str, Any]], by: str = "max_age_s"):
    """Key-service calls/s, p99 encrypt latency and messages per key against max_messages."""
    from simulations import plots

    metrics = ("key_qps", "p99_latency_s", "max_messages_per_key")
    table = experiments.aggregate(rows, by=("max_messages", by), metrics=metrics)
    axes = plots.sweep_panels(
        table, x="max_messages", by=by, metrics=metrics, xlabel="max_messages m per data key",
        group_label=_age_label,
        ylabels={"key_qps": "key-service calls (per s)", "p99_latency_s":
                 "p99 encrypt latency (s)", "max_messages_per_key":
                 "most messages under one key"}, log_y=metrics)
    for ax in axes:
        plots.log_scale(ax, "x")
    return axes


def draw_tradeoff(max_age_s: float = 2.0, arrival_rate: float = 1000.0, clients: int = 4,
                  key_service_ms: float = 4.0, duration_s: float = 2.0):
    """The slider figure: key-service calls/s (closed form beside the simulation) and p99
    encrypt latency against max_messages, at one age limit and load."""
    from simulations import plots

    sizes = [1, 3, 10, 30, 100, 300, 1000]
    base = Scenario(arrival_rate=arrival_rate, clients=clients, max_age_s=max_age_s,
                    key_service_s=key_service_ms / 1e3, duration_s=duration_s)
    runs = [summary(simulate(replace(base, max_messages=m)), 0.5) for m in sizes]
    xs = np.log10(sizes)
    fig, (left, right) = plots.plt.subplots(1, 2, figsize=(9, 3.4))
    left.plot(xs, [key_service_qps(arrival_rate, clients, m, max_age_s) for m in sizes],
              **plots.THEORY, label="λ / E[n] (closed form)")
    left.plot(xs, [r["key_qps"] for r in runs], "o", label="simulated calls/s")
    left.axhline(1e3 / key_service_ms, color=plots.COLORS[1], label="key-service capacity")
    plots.log_scale(left, "y")
    left.set_ylabel("key-service calls (per s)")
    right.plot(xs, [max(r["p99_latency_s"], 1e-5) * 1e3 for r in runs], "o-",
               label="p99 encrypt latency")
    right.plot(xs, [max(r["mean_latency_s"], 1e-5) * 1e3 for r in runs], "s--",
               label="mean encrypt latency")
    plots.log_scale(right, "y")
    right.set_ylabel("latency (ms)")
    for ax in (left, right):  # a plain axis at log10(m) draws faster than a log one
        ax.set_xticks(xs, [str(m) for m in sizes])
        ax.set_xlabel("max_messages m per data key")
        ax.legend(fontsize="small")
    left.set_title(f"{_age_label(max_age_s)}, λ = {arrival_rate:g}/s, {clients} clients",
                   fontsize="medium")
    return fig


def plot_theory(rows: Sequence[dict[str, Any]]):
    """Simulated key-service calls/s (95 % CI bars) beside λ/E[n], a line per age limit."""
    from simulations import plots

    ax = plots.new_axes(figsize=(6.5, 3.8))
    ages = list(dict.fromkeys(row["max_age_s"] for row in rows))
    for color, age in zip(plots.COLORS, ages, strict=False):
        part = [row for row in rows if row["max_age_s"] == age]
        xs = [row["max_messages"] for row in part]
        ax.plot(xs, [row["theory_qps"] for row in part], color=color, linestyle="--",
                label=f"{_age_label(age)}: λ / E[n]")
        ax.errorbar(xs, [row["key_qps"] for row in part],
                    yerr=[row["key_qps_ci"] for row in part], fmt="o", color=color,
                    capsize=3, label=f"{_age_label(age)}: simulation (95 % CI)")
    plots.log_scale(ax, "both")
    ax.set_xlabel("max_messages m per data key")
    ax.set_ylabel("key-service calls (per s)")
    ax.legend(fontsize="x-small")
    return ax


def plot_dashboard(runs: dict[str, Run], bin_s: float = 0.5,
                   slowdown: tuple[float, float] = ()):
    """Messages/s, key-service calls/s, p99 encrypt latency and share waiting, per run."""
    from simulations import plots

    series = {name: over_time(run, bin_s) for name, run in runs.items()}
    times = next(iter(series.values()))["messages"][0]
    panels = {
        "messages sealed (per s)": {n: s["messages"][1] for n, s in series.items()},
        "key-service calls (per s)": {n: s["key_calls"][1] for n, s in series.items()},
        "p99 encrypt latency (s)": {n: s["p99_latency"][1] for n, s in series.items()},
        "share waiting for a key": {n: s["waited"][1] for n, s in series.items()},
    }
    return plots.dashboard(times, panels, windows=[slowdown] if slowdown else (),
                           window_label="key service 10× slower")
