"""The secrets-rotation study: how long a leaked credential stays useful against how hard the
clients lean on the issuer (the vault), as the credential's lifetime (TTL) varies.

Picture the office door codes of the pattern's module with a stopwatch: every worker holds a code
of their own that lasts ``ttl_s``; each one goes back to the front desk (the issuer) for a new
code after ``fraction`` of its life, drawn up to ``jitter`` earlier at random, and the desk
serves one worker at a time. A code stolen at a random moment opens the door until it expires.

``simulate`` is a small discrete-event loop over renewal calls (a heap of due times and a FIFO
issuer of ``workers`` servers taking ``issue_s`` per credential; a renewal is due only after the
last one was answered, so the calls are not a fixed arrival stream). During an issuer
``outage`` the calls are refused and retried with `patterns.resilience.retry_backoff_jitter.
Backoff`. Client requests are Poisson; a request is refused when its client holds no unexpired
credential. Leaks fall at uniformly random times. The closed forms (``mean_exposure``,
``issuer_rate``) sit beside the model; ``shared_key_switch`` runs the real `KeyRing` with HMAC
signatures for the no-overlap pitfall.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from patterns.checks import check_int, check_non_negative, check_positive, check_range
from patterns.resilience.retry_backoff_jitter import Backoff
from patterns.security.secrets_rotation import KeyRing, Refresher, sign
from simulations import experiments
from simulations.metrics import per_bin, percentile_of, rate_over_time
from simulations.workloads import PoissonArrivals

__all__ = [
    "KeyRing", "Refresher", "Run", "Scenario", "cycle_moments", "draw_tradeoff",
    "issuer_rate", "mean_exposure", "over_time", "plot_dashboard", "plot_sweep",
    "shared_key_switch", "simulate", "summary", "sweep",
]

_DRAWS = 256  # uniforms drawn per client for refresh jitter (reused cyclically after that)


@dataclass(frozen=True)
class Scenario:
    """``clients`` holders of per-client credentials (lifetime ``ttl_s``) and one issuer.

    ``fraction``/``jitter``: the `Refresher` schedule. ``start_spread_s``: first fetches spread
    uniformly over this time (0: every client starts at once, a fleet-wide deploy).
    ``workers``, ``issue_s``: the issuer's servers and its time per credential.
    ``outage``: (start, end) in which the issuer refuses calls; a refused call is retried after
    ``Backoff(retry_base_s, retry_cap_s, retry_jitter)``. ``request_rate``: requests per second
    per client. ``leaks``: random leak times sampled for the exposure.
    """

    clients: int = 300
    ttl_s: float = 600.0
    fraction: float = 0.5
    jitter: float = 0.0
    start_spread_s: float = 600.0
    workers: int = 1
    issue_s: float = 0.02
    duration_s: float = 3600.0
    outage: tuple[float, float] | None = None
    retry_base_s: float = 1.0
    retry_cap_s: float = 60.0
    retry_jitter: str = "full"
    request_rate: float = 0.05
    leaks: int = 4000
    seed: int = 1

    def __post_init__(self) -> None:
        check_int("Scenario.clients", self.clients, 1)
        check_positive("Scenario.ttl_s", self.ttl_s)
        check_range("Scenario.fraction", self.fraction, 0.0, 1.0, low_open=True)
        check_range("Scenario.jitter", self.jitter, 0.0, 0.9)
        check_non_negative("Scenario.start_spread_s", self.start_spread_s)
        check_int("Scenario.workers", self.workers, 1)
        check_positive("Scenario.issue_s", self.issue_s)
        check_positive("Scenario.duration_s", self.duration_s)
        check_non_negative("Scenario.request_rate", self.request_rate)
        check_int("Scenario.leaks", self.leaks, 0)


@dataclass
class Run:
    """One run's rows: issuer calls, credentials, client requests and sampled leaks."""

    scenario: Scenario
    call_at: np.ndarray  # every issuer call (issued or refused), when it was made
    call_ok: np.ndarray  # bool: the call got a credential
    call_wait: np.ndarray  # seconds from the call to its answer (issued calls only meaningful)
    cred_client: np.ndarray  # one row per credential issued
    cred_issued: np.ndarray
    cred_expires: np.ndarray
    first_at: np.ndarray  # per client: when its first credential arrived
    req_at: np.ndarray  # client requests after the client's first credential
    req_ok: np.ndarray
    leak_at: np.ndarray
    exposure: np.ndarray  # seconds the credential leaked at leak_at stays valid


def _holding(cred_client, cred_issued, cred_expires, who, when, duration):
    """For each (client, time): expiry of the newest credential issued by then (−inf: none)."""
    scale = 4.0 * duration + 10.0 * cred_expires.max(initial=0.0) + 1.0
    keys = cred_client * scale + cred_issued
    order = np.argsort(keys, kind="stable")
    keys, clients, expires = keys[order], cred_client[order], cred_expires[order]
    idx = np.searchsorted(keys, who * scale + when, side="right") - 1
    found = (idx >= 0) & (clients[np.maximum(idx, 0)] == who)
    return np.where(found, expires[np.maximum(idx, 0)], -np.inf)


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """One seeded run. All random numbers are drawn up front (common random numbers)."""
    sc = scenario
    rng = rng if rng is not None else np.random.default_rng(sc.seed)
    n = sc.clients
    starts = rng.random(n) * sc.start_spread_s
    refresh_u = rng.random((n, _DRAWS))
    retry_u = rng.random((n, _DRAWS))
    requests = PoissonArrivals(sc.request_rate * n).times(rng, horizon=sc.duration_s) \
        if sc.request_rate > 0 else np.zeros(0)
    req_client = rng.integers(0, n, len(requests))
    leak_at = rng.random(sc.leaks) * sc.duration_s
    leak_client = rng.integers(0, n, sc.leaks)

    refresher = Refresher(sc.fraction, sc.jitter)
    backoff = Backoff(sc.retry_base_s, sc.retry_cap_s, sc.retry_jitter)
    outage = sc.outage or (math.inf, math.inf)
    due = [(float(t), c, 0, 0.0) for c, t in enumerate(starts)]  # (time, client, retry, wait)
    heapq.heapify(due)
    free = [0.0] * sc.workers
    renewals, retries = [0] * n, [0] * n
    calls: list[tuple[float, bool, float]] = []
    creds: list[tuple[int, float, float]] = []
    first = np.full(n, math.inf)
    while due:
        t, c, retry, last_wait = heapq.heappop(due)
        if t >= sc.duration_s:
            continue
        if outage[0] <= t < outage[1]:
            k = retry + 1
            wait = backoff.delay(k, last_wait, lambda c=c: float(
                retry_u[c, retries[c] % _DRAWS]))
            retries[c] += 1
            calls.append((t, False, 0.0))
            heapq.heappush(due, (t + wait, c, k, wait))
            continue
        start = max(t, heapq.heappop(free))
        done = start + sc.issue_s
        heapq.heappush(free, done)
        calls.append((t, True, done - t))
        creds.append((c, done, done + sc.ttl_s))
        first[c] = min(first[c], done)
        u = float(refresh_u[c, renewals[c] % _DRAWS])
        renewals[c] += 1
        heapq.heappush(due, (done + refresher.delay(sc.ttl_s, u), c, 0, 0.0))

    call = np.array(calls, dtype=float).reshape(-1, 3)
    cred = np.array(creds, dtype=float).reshape(-1, 3)
    cred_client = cred[:, 0].astype(int)
    started = requests >= first[req_client]
    req_at, req_client = requests[started], req_client[started]
    expiry = _holding(cred_client, cred[:, 1], cred[:, 2], req_client, req_at, sc.duration_s)
    leak_expiry = _holding(cred_client, cred[:, 1], cred[:, 2], leak_client, leak_at,
                           sc.duration_s)
    return Run(sc, call[:, 0], call[:, 1].astype(bool), call[:, 2], cred_client, cred[:, 1],
               cred[:, 2], first, req_at, expiry > req_at, leak_at,
               np.maximum(leak_expiry - leak_at, 0.0))


def summary(run: Run, start_s: float | None = None) -> dict[str, float]:
    """Exposure, issuer load and errors over [start_s, duration) (default: after the clients'
    start spread and one TTL, at most half the run)."""
    sc = run.scenario
    start = min(sc.start_spread_s + sc.ttl_s, 0.5 * sc.duration_s) if start_s is None \
        else start_s
    span = sc.duration_s - start
    calls = run.call_at >= start
    issued = calls & run.call_ok
    leaks = run.leak_at >= start
    req = run.req_at >= start
    per_s = np.bincount((run.call_at[calls] - start).astype(int))  # calls in each second
    waits = run.call_wait[issued]
    return {
        "mean_exposure_s": float(run.exposure[leaks].mean()) if leaks.any() else math.nan,
        "max_exposure_s": float(run.exposure[leaks].max()) if leaks.any() else math.nan,
        "issuer_qps": float(issued.sum() / span),
        "issuer_calls_qps": float(calls.sum() / span),
        "peak_issuer_qps": float(per_s.max()) if len(per_s) else math.nan,
        "p99_issue_wait_s": float(np.percentile(waits, 99)) if len(waits) else math.nan,
        "error_rate": float(1 - run.req_ok[req].mean()) if req.any() else 0.0,
        "refused_requests": int((~run.req_ok[req]).sum()),
    }


def _model(rng: np.random.Generator, **settings: Any) -> dict[str, float]:
    return summary(simulate(replace(Scenario(), **settings), rng))


def sweep(grid: dict[str, Sequence[Any]], *, seed: int = 1, replications: int = 3,
          **fixed: Any) -> list[dict[str, Any]]:
    """``experiments.sweep`` over the scenario's settings (the first TTL dropped as warm-up)."""
    return experiments.sweep(_model, grid, seed=seed, replications=replications, fixed=fixed)


def over_time(run: Run, bin_s: float = 10.0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Dashboard series: issuer calls and credentials issued per s, p99 issue wait, the share of
    client requests refused, and how many clients hold a valid credential."""
    end = run.scenario.duration_s
    mids, _ = rate_over_time(run.call_at, bin_s, 0, end)
    holding = _holding(run.cred_client, run.cred_issued, run.cred_expires,
                       np.repeat(np.arange(run.scenario.clients), len(mids)),
                       np.tile(mids, run.scenario.clients), end)
    valid = (holding > np.tile(mids, run.scenario.clients)).reshape(run.scenario.clients, -1)
    return {
        "calls": rate_over_time(run.call_at, bin_s, 0, end),
        "issued": rate_over_time(run.call_at[run.call_ok], bin_s, 0, end),
        "p99_wait": per_bin(run.call_at[run.call_ok], run.call_wait[run.call_ok], bin_s, 0, end,
                            percentile_of(99)),
        "refused": per_bin(run.req_at, (~run.req_ok).astype(float), bin_s, 0, end, np.mean),
        "valid_clients": (mids, valid.sum(axis=0).astype(float)),
    }


# --- closed forms -------------------------------------------------------------------------


def cycle_moments(ttl_s: float, fraction: float, jitter: float,
                  response_s: float = 0.0) -> tuple[float, float]:
    """E[C], E[C²] of the time between two issues of one client's credential:
    C = f·TTL·(1 − j·U) + r, U uniform on [0, 1), r the issuer's response time."""
    a = fraction * ttl_s
    mean = a * (1 - jitter / 2) + response_s
    second = a * a * (1 - jitter + jitter**2 / 3) + 2 * a * (1 - jitter / 2) * response_s \
        + response_s**2
    return mean, second


def mean_exposure(ttl_s: float, fraction: float = 1.0, jitter: float = 0.0,
                  response_s: float = 0.0) -> float:
    """Mean time a credential leaked at a uniformly random moment stays valid.

    The leak takes the credential the client holds then, issued A seconds earlier; it stays
    valid TTL − A. A uniformly random moment falls in a renewal cycle with probability
    proportional to its length (length-biased sampling), so E[A] = E[C²]/(2·E[C]) and the mean
    exposure is TTL − E[C²]/(2·E[C]). Renewing at expiry (f = 1, no jitter, r → 0) gives
    TTL/2; the worst case is TTL (a leak the moment a credential is issued).
    """
    mean, second = cycle_moments(ttl_s, fraction, jitter, response_s)
    return ttl_s - second / (2 * mean)


def issuer_rate(clients: int, ttl_s: float, fraction: float = 1.0, jitter: float = 0.0,
                response_s: float = 0.0) -> float:
    """Credentials issued per second in steady state: clients / E[C] (≈ clients/TTL at f = 1)."""
    return clients / cycle_moments(ttl_s, fraction, jitter, response_s)[0]


# --- the no-overlap pitfall with real keys ----------------------------------------------


def shared_key_switch(keep: int, *, pods: int = 6, rotate_every_s: float = 300.0,
                      cache_s: float = 60.0, horizon_s: float = 1200.0) -> dict[str, int]:
    """``pods`` replicas of one service share a signing key from a real `KeyRing`: each caches
    the current version for ``cache_s`` (pod k refreshes at offsets k·cache_s/pods) and signs
    one request per second (HMAC-SHA256, with the kid). The ring rotates every
    ``rotate_every_s`` and accepts the ``keep`` newest versions. Returns counts by outcome."""
    now = [0.0]
    ring = KeyRing(ttl_s=keep * rotate_every_s, keep=keep, clock=lambda: now[0])
    ring.rotate()
    cached = [ring.current() for _ in range(pods)]
    counts = {"accepted": 0, "unknown kid": 0, "expired": 0, "bad signature": 0}
    for second in range(int(horizon_s)):
        now[0] = float(second)
        if second and second % int(rotate_every_s) == 0:
            ring.rotate()
        for k in range(pods):
            if (second - k * cache_s / pods) % cache_s == 0:
                cached[k] = ring.current()
            message = f"pod {k} request at {second}".encode()
            kid, tag = sign(cached[k], message)
            reason = ring.refusal(kid, message, tag)
            counts["accepted" if reason is None else reason] += 1
    return counts


# --- plots --------------------------------------------------------------------------------


def plot_sweep(rows: Sequence[dict[str, Any]], by: str = "fraction"):
    """Mean exposure, issuer QPS and error rate against the TTL, a line per ``by``."""
    from simulations import plots

    metrics = ("mean_exposure_s", "issuer_qps", "error_rate")
    table = experiments.aggregate(rows, by=("ttl_s", by), metrics=metrics)
    return plots.sweep_panels(
        table, x="ttl_s", by=by, metrics=metrics, xlabel="credential TTL (s)",
        group_label=lambda v: f"{by} {v:g}",
        ylabels={"mean_exposure_s": "mean exposure after a leak (s)",
                 "issuer_qps": "issuer load (credentials/s)",
                 "error_rate": "share of requests refused"})


def draw_tradeoff(ttl_s: float = 600.0, fraction: float = 0.5, jitter: float = 0.0,
                  clients: int = 300, lockstep: bool = False):
    """The slider figure: issuer calls per second over time (lock-step spikes or not), and the
    exposure of leaks against the closed form."""
    from simulations import plots

    sc = Scenario(clients=clients, ttl_s=ttl_s, fraction=fraction, jitter=jitter,
                  start_spread_s=0.0 if lockstep else ttl_s, duration_s=3 * ttl_s,
                  leaks=600, request_rate=0.01)
    run = simulate(sc)
    s = summary(run)
    # Fixed margins instead of the house style's constrained layout: a redraw twice as fast.
    fig, (left, right) = plots.plt.subplots(1, 2, figsize=(8.5, 3.2), layout="none")
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.16, top=0.9, wspace=0.28)
    width = max(1.0, ttl_s / 100)
    counts, edges = np.histogram(run.call_at, bins=np.arange(0.0, sc.duration_s + width, width))
    left.plot(edges[:-1], counts / width, label="issuer calls (simulated)")
    left.axhline(issuer_rate(clients, ttl_s, fraction, jitter), **plots.THEORY,
                 label="clients / E[C]")
    left.set_xlabel("time (s)")
    left.set_ylabel("issuer calls per second")
    left.legend(fontsize="small", loc="upper right")  # a fixed place: "best" is slow
    ages = np.sort(run.exposure[run.leak_at >= ttl_s])
    step = max(1, len(ages) // 200)  # 200 points draw the same curve as 1000
    right.plot(ages[::step], np.linspace(0, 1, len(ages))[::step], label="simulated leaks")
    right.axvline(mean_exposure(ttl_s, fraction, jitter, sc.issue_s), **plots.THEORY,
                  label="mean, closed form")
    right.axvline(s["mean_exposure_s"], color=plots.COLORS[1], linestyle=":",
                  label="mean, simulated")
    right.set_xlabel("exposure after a leak (s)")
    right.set_ylabel("fraction of leaks")
    right.set_title(f"errors: {s['error_rate']:.2%}, peak {s['peak_issuer_qps']:.0f} calls/s",
                    fontsize="medium")
    right.legend(fontsize="small", loc="lower right")
    return fig


def plot_dashboard(runs: dict[str, Run], bin_s: float = 10.0, outage: tuple[float, float] = ()):
    """Issuer calls, p99 issue wait, refused requests and clients holding a valid credential."""
    from simulations import plots

    series = {name: over_time(run, bin_s) for name, run in runs.items()}
    times = next(iter(series.values()))["calls"][0]
    panels = {
        "issuer calls (per s)": {n: s["calls"][1] for n, s in series.items()},
        "p99 issue wait (s)": {n: s["p99_wait"][1] for n, s in series.items()},
        "requests refused (share)": {n: s["refused"][1] for n, s in series.items()},
        "clients with a valid credential": {n: s["valid_clients"][1]
                                            for n, s in series.items()},
    }
    return plots.dashboard(times, panels, windows=[outage] if outage else (),
                           window_label="issuer outage")
