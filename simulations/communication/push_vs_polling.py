"""The push vs polling study: staleness against server load and held connections.

Picture the parcel again, now with a stopwatch and a tally sheet: how long each parcel sat on
the step before someone saw it (staleness), how many trips to the door found nothing (empty
polls), and how many people had to stand at the door (held connections).

N clients follow one feed whose updates are a Poisson stream of rate u. Each client is one of

- ``poll``: a request every T (``schedule="fixed"``: a timer, polls start T apart;
  ``"sleep"``: wait T after each answer, so polls are T + RTT apart), with optional jitter of
  the interval, a synchronised start, and an adaptive interval that doubles on an empty poll;
- ``long_poll``: a request the server holds until an update or ``hold_s``, re-sent after the
  answer arrives (plus ``regap_s``);
- ``push``: one held stream; a lost connection is noticed at once (a reset), after missed
  heartbeats, or never (a silent drop without heartbeats), then re-opened with a
  ``Backoff`` from the retry lesson and caught up from the last event id.

Every random number is drawn up front from one seeded ``numpy.random.Generator`` (common random
numbers: runs that differ only in the settings see the same updates and phases). The closed
forms sit beside the model: ``poll_staleness``, ``poll_load``, ``empty_fraction``,
``long_poll_cycle_s``, ``long_poll_staleness``, ``push_staleness``. ``measure_real`` runs the
three against the pattern's real HTTP server on localhost.
"""

from __future__ import annotations

import bisect
import functools
import http.client
import math
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from patterns.checks import (
    check_choice,
    check_int,
    check_non_negative,
    check_positive,
    check_range,
)
from patterns.communication.push_vs_polling import (
    Feed,
    FeedConfig,
    FeedHTTPServer,
    Poller,
    ProductionFeed,
    conditional_get,
    long_poll_get,
    read_events,
)
from patterns.resilience.retry_backoff_jitter import Backoff
from simulations import experiments, plots

__all__ = ["Feed", "Poller", "Run", "Scenario", "draw_tradeoff", "empty_fraction",
           "long_poll_cycle_s", "long_poll_staleness", "long_poll_timeout_fraction",
           "measure_real", "plot_dashboard",
           "plot_sweep", "poll_load", "poll_staleness", "push_staleness", "simulate",
           "summary", "sweep", "timeline"]

MODES = ("poll", "long_poll", "push")
FULL, EMPTY, FAILED, CONNECT = 0, 1, 2, 3  # request kinds


@dataclass(frozen=True)
class Scenario:
    """One run: N clients of one mode following a feed of Poisson updates."""

    mode: str = "poll"
    clients: int = 50
    update_rate: float = 0.5  # u, updates per second
    interval_s: float = 2.0  # T of a poller
    one_way_s: float = 0.025  # d; RTT = 2d
    schedule: str = "fixed"  # "fixed" (timer) or "sleep" (wait T after each answer)
    synchronized: bool = False  # every poller starts at t = 0 (a cron job, a deploy)
    jitter: float = 0.0  # each interval is T·(1 + jitter·(2U − 1)), U uniform
    max_interval_s: float | None = None  # adaptive: double T on an empty poll, up to this
    hold_s: float = 30.0  # longest hold of a long poll
    regap_s: float = 0.0  # a long poller's pause before its next request
    outage: tuple[float, float] | None = None  # server unreachable; held connections drop
    silent_drop: bool = False  # the drop sends no reset: only heartbeats reveal it
    heartbeat_s: float | None = None  # push: heartbeat period (None: no heartbeats)
    missed_heartbeats: int = 3  # push: heartbeats missed before the client reconnects
    reconnect: Backoff = Backoff(base_s=1.0, cap_s=1.0, jitter="none")
    duration_s: float = 60.0
    seed: int = 1

    def __post_init__(self) -> None:
        check_choice("mode", self.mode, MODES)
        check_int("clients", self.clients, 1)
        check_positive("update_rate", self.update_rate)
        check_positive("interval_s", self.interval_s)
        check_non_negative("one_way_s", self.one_way_s)
        check_choice("schedule", self.schedule, ("fixed", "sleep"))
        check_range("jitter", self.jitter, 0.0, 1.0)
        if self.max_interval_s is not None:
            check_range("max_interval_s", self.max_interval_s, self.interval_s)
        check_positive("hold_s", self.hold_s)
        check_non_negative("regap_s", self.regap_s)
        if self.heartbeat_s is not None:
            check_positive("heartbeat_s", self.heartbeat_s)
        check_int("missed_heartbeats", self.missed_heartbeats, 1)
        check_positive("duration_s", self.duration_s)


@dataclass
class Run:
    """What one run wrote: requests at the server, deliveries, connections."""

    scenario: Scenario
    published: np.ndarray  # update publication times (s), sorted
    request_time: np.ndarray  # arrival at the server (s)
    request_kind: np.ndarray  # FULL, EMPTY (an empty poll or a timed-out hold), FAILED, CONNECT
    delivered: np.ndarray  # (clients, updates): when each client got each update (NaN: never)
    conn_start: np.ndarray  # open connections (a poll's round trip, a hold, a stream)
    conn_end: np.ndarray
    end_s: float  # how long the clients ran (past duration_s, so late updates are delivered)

    @property
    def staleness(self) -> np.ndarray:
        """Delivery minus publication, per (client, update); undelivered counted until end_s."""
        got = np.where(np.isnan(self.delivered), self.end_s, self.delivered)
        return got - self.published[None, :]


def _streams(scenario: Scenario, rng: np.random.Generator | None):
    rng = rng if rng is not None else np.random.default_rng(scenario.seed)
    seeds = rng.integers(0, 2**63, size=4)
    gen = [np.random.default_rng(int(s)) for s in seeds]
    n, horizon = scenario.clients, _end(scenario)  # updates go on after duration_s
    gaps = gen[0].exponential(1.0, size=int(1.5 * scenario.update_rate * horizon) + 100)
    times = np.cumsum(gaps / scenario.update_rate)
    published = times[times < horizon]
    phase = gen[1].random(n)
    # Intervals average at least T, so 2·end/T + 50 draws per client are plenty.
    jitter = gen[2].random((n, int(2 * _end(scenario) / scenario.interval_s) + 50))
    backoff = gen[3].random((n, 256))
    return published, phase, jitter, backoff


def _end(s: Scenario) -> float:
    longest = (s.max_interval_s or s.interval_s) * (1 + s.jitter)
    return s.duration_s + longest + s.hold_s + 4 * s.one_way_s + 5.0


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """Run every client over the same updates (fast path: one loop per client, no queues)."""
    published, phase, jitter, backoff = _streams(scenario, rng)
    s, d, end = scenario, scenario.one_way_s, _end(scenario)
    plist = published.tolist()
    n_upd = len(plist)
    delivered = np.full((s.clients, n_upd), np.nan)
    req_t: list[float] = []
    req_k: list[int] = []
    c0: list[float] = []
    c1: list[float] = []
    a, b = s.outage if s.outage is not None else (math.inf, math.inf)

    def down(t: float) -> bool:
        return a <= t < b

    def refused(t: float, attempt: int, prev: float, rand) -> tuple[float, int, float]:
        """A connection attempt at t the dead server refuses: recorded as FAILED; returns
        the next attempt's time, the attempt count and the back-off just drawn."""
        req_k.append(FAILED)
        prev = s.reconnect.delay(attempt + 1, prev, rand)
        return t + 2 * d + prev, attempt + 1, prev

    for i in range(s.clients):
        tries = iter(backoff[i].tolist())

        def rand(tries=tries) -> float:
            return next(tries, 0.5)

        seen = 0
        if s.mode == "poll":
            t = 0.0 if s.synchronized else phase[i] * s.interval_s
            if s.synchronized and s.jitter:
                t = phase[i] * s.jitter * s.interval_s
            cur, k, jit = s.interval_s, 0, jitter[i]
            while t < end:
                read = t + d
                req_t.append(read)
                c0.append(t)
                c1.append(t + 2 * d)
                if down(read):
                    req_k.append(FAILED)
                else:
                    v = bisect.bisect_right(plist, read)
                    if v > seen:
                        delivered[i, seen:v] = read + d
                        seen = v
                        req_k.append(FULL)
                        cur = s.interval_s
                    else:
                        req_k.append(EMPTY)
                        if s.max_interval_s is not None:
                            cur = min(2 * cur, s.max_interval_s)
                step = cur * (1 + s.jitter * (2 * jit[k] - 1)) if s.jitter else cur
                k += 1
                t += step + (2 * d if s.schedule == "sleep" else 0.0)
        elif s.mode == "long_poll":
            t, attempt, prev = phase[i] + d, 0, 0.0  # clients start over the first second
            while t < end:
                req_t.append(t)
                if down(t):  # refused: try again after the reconnect back-off
                    t, attempt, prev = refused(t, attempt, prev, rand)
                    continue
                attempt, prev = 0, 0.0
                v = bisect.bisect_right(plist, t)
                if v > seen:
                    r, kind = t, FULL
                else:
                    nxt = plist[seen] if seen < n_upd else math.inf
                    r, kind = (nxt, FULL) if nxt <= t + s.hold_s else (t + s.hold_s, EMPTY)
                    if t < a < r:  # the server went away during the hold
                        req_k.append(FAILED)
                        c0.append(t - d)
                        c1.append(a)
                        attempt = 1
                        prev = s.reconnect.delay(attempt, 0.0, rand)
                        t = a + 2 * d + prev
                        continue
                req_k.append(kind)
                v = bisect.bisect_right(plist, r)
                delivered[i, seen:v] = r + d
                seen = v
                c0.append(t - d)
                c1.append(r + d)
                t = r + 2 * d + s.regap_s
        else:  # push
            t, attempt, prev = phase[i] + d, 0, 0.0  # clients start over the first second
            while t < end:
                req_t.append(t)
                if down(t):  # refused: try again after the reconnect back-off
                    t, attempt, prev = refused(t, attempt, prev, rand)
                    continue
                req_k.append(CONNECT)
                attempt, prev = 0, 0.0
                v = bisect.bisect_right(plist, t)
                delivered[i, seen:v] = t + d  # catch up from Last-Event-ID
                seen = v
                drop = a if a > t else end
                v = bisect.bisect_left(plist, drop)
                delivered[i, seen:v] = published[seen:v] + d
                seen = v
                c0.append(t - d)
                c1.append(min(drop, end))
                if drop >= end:
                    break
                if not s.silent_drop:
                    noticed = drop + d
                elif s.heartbeat_s is not None:
                    noticed = drop + s.heartbeat_s * (s.missed_heartbeats - rand())
                else:
                    break  # nothing will ever tell this client its stream is dead
                attempt = 1
                prev = s.reconnect.delay(attempt, 0.0, rand)
                t = noticed + prev + d
    return Run(s, published, np.asarray(req_t), np.asarray(req_k, dtype=int), delivered,
               np.asarray(c0), np.asarray(c1), end)


def summary(run: Run, warmup_s: float = 0.0, bin_s: float = 0.05) -> dict[str, float]:
    """Load, empty fraction, staleness and connections over [warmup_s, duration_s]."""
    s = run.scenario
    span = s.duration_s - warmup_s
    inside = (run.request_time >= warmup_s) & (run.request_time < s.duration_s)
    kinds = run.request_kind[inside]
    answered = np.sum((kinds == FULL) | (kinds == EMPTY))
    counts = np.bincount(np.floor(run.request_time[run.request_time < s.duration_s] / bin_s)
                         .astype(int), minlength=1)
    cols = (run.published >= warmup_s) & (run.published < s.duration_s)
    stale = run.staleness[:, cols]
    lo, hi = np.maximum(run.conn_start, warmup_s), np.minimum(run.conn_end, s.duration_s)
    held = np.clip(hi - lo, 0, None).sum() / span
    return {
        "requests_per_s": float(inside.sum() / span),
        "empty_fraction": float(np.sum(kinds == EMPTY) / answered) if answered else math.nan,
        "mean_staleness_s": float(stale.mean()) if stale.size else math.nan,
        "p99_staleness_s": float(np.percentile(stale, 99)) if stale.size else math.nan,
        "undelivered": int(np.isnan(run.delivered[:, cols]).sum()),
        "mean_connections": float(held),
        "peak_requests_per_bin": float(counts.max()),
        "mean_requests_per_bin": float(inside.sum() / span * bin_s),
    }


def timeline(run: Run, bin_s: float = 1.0) -> dict[str, np.ndarray]:
    """Per time bin: requests/s (all, failed), open connections, and the mean age of the
    clients' view (now minus the publication of the oldest update a client still lacks)."""
    s = run.scenario
    edges = np.arange(0.0, s.duration_s + bin_s / 2, bin_s)
    mid = edges[:-1] + bin_s / 2
    hist = np.histogram(run.request_time, edges)[0] / bin_s
    failed = np.histogram(run.request_time[run.request_kind == FAILED], edges)[0] / bin_s
    open_ = np.array([np.sum((run.conn_start <= t) & (run.conn_end > t)) for t in mid])
    got = np.where(np.isnan(run.delivered), np.inf, run.delivered)
    ages = np.zeros(len(mid))
    for j, t in enumerate(mid):
        missing = (run.published[None, :] <= t) & (got > t)
        oldest = np.where(missing, run.published[None, :], np.inf).min(axis=1)
        ages[j] = np.where(np.isfinite(oldest), t - oldest, 0.0).mean()
    return {"time": mid, "requests_per_s": hist, "failed_per_s": failed,
            "open_connections": open_, "view_age_s": ages}


# Closed forms -----------------------------------------------------------------------------


def poll_staleness(interval_s: float, one_way_s: float, schedule: str = "fixed",
                   jitter: float = 0.0) -> float:
    """Mean staleness of an update under polling, Poisson updates, random phase.

    A timer (``fixed``) reads the server every T: an update waits for the next read, T/2 on
    average, then travels d: T/2 + d. Jitter of the interval (uniform, ±jitter·T) raises the
    wait to E[X²]/(2E[X]) = T(1 + jitter²/3)/2 (the inspection paradox). A sleep-then-poll loop
    reads every T + 2d: (T + 2d)/2 + d = T/2 + RTT.
    """
    if schedule == "sleep":
        return interval_s / 2 + 2 * one_way_s
    return interval_s * (1 + jitter**2 / 3) / 2 + one_way_s


def poll_load(clients: int, interval_s: float, one_way_s: float = 0.0,
              schedule: str = "fixed") -> float:
    """Requests per second at the server: N/T (timer) or N/(T + RTT) (sleep loop)."""
    return clients / (interval_s + (2 * one_way_s if schedule == "sleep" else 0.0))


def empty_fraction(update_rate: float, interval_s: float, one_way_s: float = 0.0,
                   schedule: str = "fixed") -> float:
    """Fraction of polls that find nothing new: no Poisson update since the last read,
    e^(−uT) (timer) or e^(−u(T + RTT)) (sleep loop)."""
    gap = interval_s + (2 * one_way_s if schedule == "sleep" else 0.0)
    return math.exp(-update_rate * gap)


def long_poll_cycle_s(update_rate: float, hold_s: float, one_way_s: float,
                      regap_s: float = 0.0) -> float:
    """Mean time between a long poller's answers: the re-request gap G = 2d + g, then (if no
    update came during G) a hold of min(Exp(u), H): G + e^(−uG)(1 − e^(−uH))/u."""
    u, g = update_rate, 2 * one_way_s + regap_s
    return g + math.exp(-u * g) * (1 - math.exp(-u * hold_s)) / u


def long_poll_staleness(update_rate: float, hold_s: float, one_way_s: float,
                        regap_s: float = 0.0) -> float:
    """Mean staleness under long polling: d, plus the rest of the gap for an update that falls
    into a re-request gap: d + G²/(2·E[cycle]) (renewal-reward over answer-to-answer cycles)."""
    g = 2 * one_way_s + regap_s
    return one_way_s + g * g / (2 * long_poll_cycle_s(update_rate, hold_s, one_way_s, regap_s))


def long_poll_timeout_fraction(update_rate: float, hold_s: float, one_way_s: float,
                               regap_s: float = 0.0) -> float:
    """Fraction of long-poll answers that are timeouts: no update in the gap nor the hold."""
    return math.exp(-update_rate * (2 * one_way_s + regap_s + hold_s))


def push_staleness(one_way_s: float) -> float:
    """Push: an update travels once, d; the price is N connections held open."""
    return one_way_s


# Sweeps and plots -------------------------------------------------------------------------


def _model(rng: np.random.Generator, **params: Any) -> dict[str, float]:
    return summary(simulate(Scenario(**params), rng), warmup_s=5.0)


def sweep(grid: dict[str, list[Any]], *, replications: int = 3, seed: int = 1,
          **fixed: Any) -> list[dict[str, Any]]:
    """Aggregated rows (mean and 95 % CI per metric) over ``grid`` of Scenario fields."""
    rows = experiments.sweep(_model, grid, seed=seed, replications=replications, fixed=fixed)
    metrics = ["requests_per_s", "empty_fraction", "mean_staleness_s", "p99_staleness_s",
               "mean_connections"]
    return experiments.aggregate(rows, by=list(grid), metrics=metrics)


def plot_sweep(rows: list[dict[str, Any]], *, x: str = "interval_s", by: str | None = None):
    return plots.sweep_panels(
        rows, x=x, by=by, metrics=["mean_staleness_s", "requests_per_s", "empty_fraction"],
        xlabel="polling interval T (s)",
        ylabels={"mean_staleness_s": "mean staleness (s)",
                 "requests_per_s": "server load (requests/s)",
                 "empty_fraction": "empty polls (fraction)"},
        log_y=["requests_per_s"], panel_size=(3.6, 3.0))


@functools.cache
def _long_poll_and_push(clients: int, update_rate: float, one_way_s: float,
                        hold_s: float) -> tuple[dict[str, float], dict[str, float]]:
    base = Scenario(clients=clients, update_rate=update_rate, one_way_s=one_way_s,
                    hold_s=hold_s, duration_s=30.0)
    return (summary(simulate(replace(base, mode="long_poll")), 2.0),
            summary(simulate(replace(base, mode="push")), 2.0))


def draw_tradeoff(clients: int = 100, update_rate: float = 0.5, rtt_ms: float = 50.0,
                  hold_s: float = 30.0, interval_s: float = 2.0):
    """Staleness against server load: polling for every T (closed form, one simulated point at
    the chosen T), long polling and push (simulated); marker size ~ held connections."""
    import matplotlib.pyplot as plt

    d = rtt_ms / 2000
    fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    ts = np.geomspace(0.05, 60, 60)
    ax.plot([poll_load(clients, t) for t in ts], [poll_staleness(t, d) for t in ts],
            **plots.THEORY, label="polling, every T (T/2 + d, N/T)")
    point = summary(simulate(Scenario(clients=clients, update_rate=update_rate, one_way_s=d,
                                      interval_s=interval_s, duration_s=12.0)), 1.0)
    ax.plot(point["requests_per_s"], point["mean_staleness_s"], "o", color=plots.COLORS[0],
            label=f"polling T = {interval_s:g} s (sim.): {point['empty_fraction']:.0%} empty")
    lp, push = _long_poll_and_push(clients, update_rate, d, hold_s)
    ax.plot(lp["requests_per_s"], lp["mean_staleness_s"], "s", color=plots.COLORS[1],
            label=f"long polling (sim.): {lp['mean_connections']:.0f} held connections")
    ax.plot(max(push["requests_per_s"], 1e-2), push["mean_staleness_s"], "^",
            color=plots.COLORS[2],
            label=f"push (sim.): {push['mean_connections']:.0f} held connections")
    plots.log_scale(ax, "both")
    ax.set_xlabel("server load (requests/s)")
    ax.set_ylabel("mean staleness (s)")
    ax.set_title(f"N = {clients} clients, u = {update_rate:g} updates/s, RTT = {rtt_ms:g} ms",
                 fontsize="medium")
    ax.legend(fontsize="x-small")
    return ax


def plot_dashboard(runs: dict[str, Run], *, window: tuple[float, float] | None = None,
                   bin_s: float = 1.0):
    lines = {name: timeline(run, bin_s) for name, run in runs.items()}
    times = next(iter(lines.values()))["time"]
    panels = {
        "requests (per s)": {n: v["requests_per_s"] for n, v in lines.items()},
        "failed requests (per s)": {n: v["failed_per_s"] for n, v in lines.items()},
        "open connections": {n: v["open_connections"] for n, v in lines.items()},
        "age of the clients' view (s)": {n: v["view_age_s"] for n, v in lines.items()},
    }
    return plots.dashboard(times, panels, windows=[window] if window else [],
                           window_label="server unreachable", panel_height=1.7)


# Real HTTP on localhost -------------------------------------------------------------------


def measure_real(duration_s: float = 1.0, clients: int = 3, interval_s: float = 0.1,
                 update_rate: float = 10.0, hold_s: float = 5.0, seed: int = 1,
                 state_bytes: int = 1000) -> dict[str, dict[str, float]]:
    """Conditional pollers (ETag), plain pollers, long pollers and SSE readers (``clients`` of
    each) against one real ``FeedHTTPServer`` on 127.0.0.1 for ``duration_s``; per mode:
    requests, empty answers, mean staleness (s), body bytes received. Threads are daemons
    joined with a time limit."""
    feed = ProductionFeed("real", FeedConfig(hold_s=hold_s, heartbeat_s=0.25))
    stop = threading.Event()
    stats: dict[str, dict[str, float]] = {m: {"requests": 0, "empty": 0, "bytes": 0,
                                              "staleness": 0.0, "seen": 0}
                                          for m in ("poll", "poll_plain", "long_poll", "push")}
    lock = threading.Lock()

    def seen(mode: str, versions: range, bytes_: int = 0, empty: bool = False) -> None:
        now = time.monotonic()
        if stop.is_set():  # the answers that release the clients at the end do not count
            return
        with lock:
            st = stats[mode]
            st["requests"] += mode != "push"
            st["empty"] += empty
            st["bytes"] += bytes_
            for v in versions:
                st["staleness"] += now - feed.updates[v - 1].published_at
                st["seen"] += 1

    def poller(port: int, conditional: bool = True) -> None:
        mode = "poll" if conditional else "poll_plain"
        conn, etag, have = http.client.HTTPConnection("127.0.0.1", port, timeout=2), None, 0
        while not stop.is_set():
            status, body, tag, size = conditional_get(conn, etag if conditional else None)
            newest = body[-1][0] if body else have
            seen(mode, range(have + 1, newest + 1), size, empty=newest == have)
            have, etag = newest, tag
            stop.wait(interval_s)
        conn.close()

    def long_poller(port: int) -> None:
        conn, have = http.client.HTTPConnection("127.0.0.1", port, timeout=hold_s + 2), 0
        while not stop.is_set():
            body = long_poll_get(conn, have, hold_s)
            newest = body[-1][0] if body else have
            seen("long_poll", range(have + 1, newest + 1), empty=not body)
            have = newest
        conn.close()

    def streamer(port: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/events")
        response = conn.getresponse()
        last = [0]

        def on_event(event_id: str, data: str) -> None:
            v = int(event_id)
            seen("push", range(last[0] + 1, v + 1))
            last[0] = v

        read_events(response, on_event)
        conn.close()

    rng = np.random.default_rng(seed)
    def guarded(fn):
        def run(port: int) -> None:
            try:
                fn(port)
            except (OSError, http.client.HTTPException, ValueError):
                pass  # the server closed under a request at the end of the measurement
        return run

    server = FeedHTTPServer(feed).__enter__()
    try:
        plain = functools.partial(poller, conditional=False)
        groups = [[threading.Thread(target=guarded(fn), args=(server.port,), daemon=True)
                   for _ in range(clients)] for fn in (poller, plain, long_poller, streamer)]
        threads = [t for group in groups for t in group]
        for thread in threads:
            thread.start()
        began = time.monotonic()
        next_at = began + rng.exponential(1 / update_rate)
        while time.monotonic() < began + duration_s:
            time.sleep(max(0.0, next_at - time.monotonic()))
            feed.publish({"n": feed.version + 1, "state": "x" * state_bytes})
            next_at += rng.exponential(1 / update_rate)
        time.sleep(0.05)
        stop.set()
        feed.publish({"n": feed.version + 1, "last": True})  # releases the holds
        for thread in groups[0] + groups[1] + groups[2]:
            thread.join(timeout=3)
    finally:
        server.close()  # ends the streams
    for thread in groups[3]:
        thread.join(timeout=3)
    alive = sum(thread.is_alive() for thread in threads)
    out = {}
    for mode, st in stats.items():
        out[mode] = {"requests": st["requests"], "empty": st["empty"], "bytes": st["bytes"],
                     "updates_seen": st["seen"],
                     "mean_staleness_s": st["staleness"] / st["seen"] if st["seen"] else math.nan}
    out["server"] = {"published": feed.version, "threads_alive": alive,
                     **{k: float(v) for k, v in feed.metrics.counts.items()}}
    return out
