"""The token-validation study: added latency and issuer load against revocation delay, for
introspection (optionally cached for h seconds) and for local JWT validation.

Picture the club door of the pattern's module with a stopwatch and a tally: guests (requests)
arrive at random, each with one of a few hundred tickets (tokens, some far busier than others).
Phoning the box office costs a round trip; a note of the answer saves the next calls for
``cache_ttl_s``; a ticket checked by its hologram costs a glance but stays good until it
expires. Now and then the box office cancels a ticket: how long does the door keep letting it
in?

``simulate`` is the fast path: seeded Poisson arrivals (``PoissonArrivals``) with Zipf token
popularity (``ZipfKeys``), the TTL cache's hit-or-miss rule applied per token with one
``searchsorted`` per miss round, and the revocation delay read from the cache state at each
revocation. ``replay`` runs the pattern's own `CachedIntrospection` request by request on the
same random numbers (a test holds the two equal) and adds what the fast path leaves out: an
issuer outage, during which calls time out and tokens cannot be refreshed. Closed forms sit
beside the model: ``hit_ratio``, ``added_latency``, ``mean_revocation_delay_*``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from patterns.checks import check_choice, check_int, check_non_negative, check_positive
from patterns.security.token_validation import (
    AuthUnavailableError,
    CachedIntrospection,
    LocalJWTValidator,
)
from simulations import experiments
from simulations.metrics import per_bin, rate_over_time
from simulations.workloads import PoissonArrivals, ZipfKeys

__all__ = [
    "CachedIntrospection", "LocalJWTValidator", "MODES", "Run", "Scenario", "added_latency",
    "draw_tradeoff", "hit_ratio", "hit_ratio_one", "measure_seconds", "mean_revocation_delay",
    "over_time", "plot_dashboard", "plot_theory", "plot_tradeoff", "replay", "simulate",
    "summary", "sweep", "ttl_misses",
]

MODES = ("introspect", "local", "denylist")


@dataclass(frozen=True)
class Scenario:
    """One gateway: Poisson requests at ``request_rate``/s carrying ``n_tokens`` tokens with
    Zipf(``zipf_alpha``) popularity; the issuer is ``rtt_s`` away (gamma-distributed round
    trips with shape ``rtt_shape``).

    ``mode``: ``"introspect"`` (a call per miss of a ``cache_ttl_s`` cache; 0 = no cache),
    ``"local"`` (JWT checked locally at ``verify_s`` CPU; tokens live ``token_lifetime_s``,
    accepted ``leeway_s`` past ``exp``) or ``"denylist"`` (local, plus a revocation list
    pulled every ``denylist_poll_s``). ``revocations`` tokens are revoked at uniform times in
    the measured window [``warmup_s``, ``duration_s``); the cache starts warm (in its
    long-run state), so no warm-up is needed. ``outage``: (start, end) of an issuer
    outage (``replay`` only); a call then fails after ``timeout_s``.
    """

    mode: str = "introspect"
    request_rate: float = 200.0
    n_tokens: int = 200
    zipf_alpha: float = 0.6
    cache_ttl_s: float = 10.0
    token_lifetime_s: float = 300.0
    leeway_s: float = 0.0
    rtt_s: float = 0.002
    rtt_shape: float = 4.0
    verify_s: float = 0.0001
    denylist_poll_s: float = 10.0
    revocations: int = 40
    warmup_s: float = 0.0
    duration_s: float = 120.0
    outage: tuple[float, float] | None = None
    timeout_s: float = 0.5
    seed: int = 1

    def __post_init__(self) -> None:
        check_choice("Scenario.mode", self.mode, MODES)
        check_positive("Scenario.request_rate", self.request_rate)
        check_int("Scenario.n_tokens", self.n_tokens, 1)
        check_non_negative("Scenario.zipf_alpha", self.zipf_alpha)
        check_non_negative("Scenario.cache_ttl_s", self.cache_ttl_s)
        check_positive("Scenario.token_lifetime_s", self.token_lifetime_s)
        check_non_negative("Scenario.leeway_s", self.leeway_s)
        check_positive("Scenario.rtt_s", self.rtt_s)
        check_positive("Scenario.rtt_shape", self.rtt_shape)
        check_non_negative("Scenario.verify_s", self.verify_s)
        check_positive("Scenario.denylist_poll_s", self.denylist_poll_s)
        check_int("Scenario.revocations", self.revocations, 0, self.n_tokens)
        check_non_negative("Scenario.warmup_s", self.warmup_s)
        if not self.duration_s > self.warmup_s:
            raise ValueError(f"Scenario.duration_s must be > warmup_s = {self.warmup_s:g} "
                             f"(got {self.duration_s!r})")
        check_positive("Scenario.timeout_s", self.timeout_s)


@dataclass
class Draws:
    """Every random number of a run, drawn up front in one order (common random numbers)."""

    arrival: np.ndarray
    token: np.ndarray
    rtt: np.ndarray
    phase: np.ndarray  # when each token's holder refreshes it, modulo the lifetime
    poll_phase: float  # when the gateway pulls the denylist, modulo the poll interval
    revoked: np.ndarray
    revoked_at: np.ndarray
    warm_until: np.ndarray  # when each token's cached answer at t = 0 expires (0: none cached)


def draw(sc: Scenario, rng: np.random.Generator | None = None) -> Draws:
    rng = rng if rng is not None else np.random.default_rng(sc.seed)
    arrival = PoissonArrivals(sc.request_rate).times(rng, horizon=sc.duration_s)
    token = np.asarray(ZipfKeys(sc.n_tokens, sc.zipf_alpha).sample(rng, len(arrival)))
    rtt = rng.gamma(sc.rtt_shape, sc.rtt_s / sc.rtt_shape, len(arrival))
    phase = rng.uniform(0.0, 1.0, sc.n_tokens)
    poll_phase = float(rng.uniform(0.0, 1.0))
    revoked = rng.choice(sc.n_tokens, sc.revocations, replace=False)
    revoked_at = rng.uniform(sc.warmup_s, sc.duration_s, sc.revocations)
    cached, left = rng.random(sc.n_tokens), rng.random(sc.n_tokens)
    # The gateway has run for a while: at t = 0 a token's answer is cached with its long-run
    # probability hᵢ and has a uniform part of its TTL left (the equilibrium of the miss cycle).
    rates = sc.request_rate * ZipfKeys(sc.n_tokens, sc.zipf_alpha).probabilities
    hits = np.array([hit_ratio_one(r, sc.cache_ttl_s) for r in rates])
    warm_until = np.where(cached < hits, left * sc.cache_ttl_s, 0.0)
    return Draws(arrival, token, rtt, phase * sc.token_lifetime_s,
                 poll_phase * sc.denylist_poll_s, revoked, revoked_at, warm_until)


@dataclass
class Run:
    """Per-request rows and per-revocation rows of one run."""

    scenario: Scenario
    arrival: np.ndarray
    token: np.ndarray
    call: np.ndarray  # the request made a call to the issuer (a cache miss)
    added: np.ndarray  # seconds the validation added to the request
    accepted: np.ndarray  # the gateway let the request through
    revoked_token: np.ndarray  # the request carried a token that had been revoked
    revocation_delay: np.ndarray  # per revocation: how long the gateway kept accepting it
    exposure: np.ndarray  # per revocation: requests accepted after it
    refreshes: np.ndarray  # times at which a token was (re)issued by the issuer


def ttl_misses(arrival: np.ndarray, token: np.ndarray, ttl_s: float,
               warm_until: np.ndarray | None = None) -> np.ndarray:
    """Which requests miss a TTL cache keyed by token (`TTLCache`'s rule: an answer stored at
    a miss at t serves requests in [t, t + ttl); the next request from t + ttl on misses).

    Per token the misses are found one round at a time, all tokens at once: the next miss is
    the first arrival at or after the last miss + ttl (``searchsorted`` on time-by-token keys).
    ``warm_until[k]``: token k's answer is already cached until then (its first miss is the
    first request from then on).
    """
    if ttl_s <= 0:
        return np.ones(len(arrival), dtype=bool)
    order = np.lexsort((arrival, token))
    ks, ts = token[order], arrival[order]
    span = float(ts.max(initial=0.0)) + ttl_s + 1.0
    key = ks * span + ts
    ids = np.arange(int(ks.max(initial=-1)) + 1)
    starts, ends = np.searchsorted(ks, ids, "left"), np.searchsorted(ks, ids, "right")
    if warm_until is not None:
        starts = np.searchsorted(key, ids * span + warm_until[ids], "left")
    present = starts < ends
    cur, end = starts[present], ends[present]
    miss_sorted = np.zeros(len(ts), dtype=bool)
    while cur.size:
        miss_sorted[cur] = True
        nxt = np.searchsorted(key, key[cur] + ttl_s, "left")
        keep = nxt < end
        cur, end = nxt[keep], end[keep]
    miss = np.empty(len(ts), dtype=bool)
    miss[order] = miss_sorted
    return miss


def _refresh_times(sc: Scenario, d: Draws,
                   down: tuple[float, float] = (np.inf, np.inf)) -> np.ndarray:
    """When the issuer issues tokens: each holder refreshes at its token's exp (phase + n·L),
    or, if that falls in an outage, as soon as the issuer is back."""
    L, times = sc.token_lifetime_s, []
    if not down[0] < sc.duration_s:
        counts = np.floor((sc.duration_s - d.phase) / L).astype(int) + 1
        return np.sort(np.concatenate([p + L * np.arange(c) for p, c in zip(d.phase, counts,
                                                                            strict=True)]))
    for due in d.phase:
        while due < sc.duration_s:
            due = down[1] if down[0] <= due < down[1] else due
            times.append(due)
            due += L
    return np.sort(np.array(times))


def _local_delay(sc: Scenario, d: Draws) -> np.ndarray:
    """Until the revoked token's exp (its holder refreshes at phase + n·L), plus the leeway;
    with a denylist, no later than the next pull."""
    delay = np.mod(d.phase[d.revoked] - d.revoked_at, sc.token_lifetime_s) + sc.leeway_s
    if sc.mode == "denylist":
        delay = np.minimum(delay, np.mod(d.poll_phase - d.revoked_at, sc.denylist_poll_s))
    return delay


def _exposure(arrival: np.ndarray, token: np.ndarray, d: Draws,
              delay: np.ndarray) -> np.ndarray:
    """Requests with each revoked token in (revoked_at, revoked_at + delay)."""
    span = float(arrival.max(initial=0.0)) + float(delay.max(initial=0.0)) + 1.0
    order = np.lexsort((arrival, token))
    key = token[order] * span + arrival[order]
    lo = np.searchsorted(key, d.revoked * span + d.revoked_at, "right")
    hi = np.searchsorted(key, d.revoked * span + d.revoked_at + delay, "left")
    return (hi - lo).astype(float)


def _revoked_flags(token: np.ndarray, arrival: np.ndarray, d: Draws, n: int) -> np.ndarray:
    when = np.full(n, np.inf)
    when[d.revoked] = d.revoked_at
    return arrival >= when[token]


def simulate(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """One seeded run of the fast path (no outage: use ``replay`` for one)."""
    sc = scenario
    if sc.outage is not None:
        raise ValueError("simulate has no outage model: use replay(scenario) for an outage")
    d = draw(sc, rng)
    revoked = _revoked_flags(d.token, d.arrival, d, sc.n_tokens)
    if sc.mode == "introspect":
        call = ttl_misses(d.arrival, d.token, sc.cache_ttl_s, d.warm_until)
        added = np.where(call, d.rtt, 0.0)
        delay = _cached_delay(sc, d, call)
    else:
        call = np.zeros(len(d.arrival), dtype=bool)
        added = np.full(len(d.arrival), sc.verify_s)
        delay = _local_delay(sc, d)
    exposure = _exposure(d.arrival, d.token, d, delay)
    accepted = ~revoked | _within(d, delay, d.token, d.arrival, sc.n_tokens)
    return Run(sc, d.arrival, d.token, call, added, accepted, revoked, delay, exposure,
               _refresh_times(sc, d))


def _within(d: Draws, delay: np.ndarray, token: np.ndarray, arrival: np.ndarray,
            n: int) -> np.ndarray:
    until = np.full(n, -np.inf)
    until[d.revoked] = d.revoked_at + delay
    return arrival < until[token]


def _cached_delay(sc: Scenario, d: Draws, call: np.ndarray) -> np.ndarray:
    """At each revocation, what is left of the revoked token's cached answer (0 if none)."""
    if sc.cache_ttl_s <= 0 or not len(d.revoked):
        return np.zeros(len(d.revoked))
    span = sc.duration_s + sc.cache_ttl_s + 1.0
    t, k = d.arrival[call], d.token[call]
    mkey = np.sort(k * span + t)
    probe = d.revoked * span + d.revoked_at
    i = np.searchsorted(mkey, probe, "right") - 1
    last = np.where(i >= 0, mkey[np.maximum(i, 0)], -np.inf)
    same = last >= d.revoked * span
    left = np.where(same, last + sc.cache_ttl_s - probe, 0.0)
    left = np.maximum(left, d.warm_until[d.revoked] - d.revoked_at)
    return np.maximum(left, 0.0)


def replay(scenario: Scenario, rng: np.random.Generator | None = None) -> Run:
    """The same run request by request, with the pattern's `CachedIntrospection` on a
    simulated clock, and the issuer ``outage`` if any: a call then fails after ``timeout_s``
    (the request is refused, nothing is cached), and a token whose holder must refresh it
    during the outage is refused until the outage ends."""
    sc = scenario
    d = draw(sc, rng)
    n = len(d.arrival)
    down = sc.outage or (np.inf, np.inf)
    revoked_when = np.full(sc.n_tokens, np.inf)
    revoked_when[d.revoked] = d.revoked_at
    now = [0.0]

    def introspect(token: int) -> dict[str, Any]:
        if down[0] <= now[0] < down[1]:
            raise AuthUnavailableError("issuer down")
        return {"active": bool(now[0] < revoked_when[token])}

    gate = CachedIntrospection(introspect, sc.cache_ttl_s, clock=lambda: now[0])
    for k in np.flatnonzero(d.warm_until > 0):  # the answers cached before t = 0
        gate.cache.put(int(k), {"active": True}, ttl_s=float(d.warm_until[k]))
    call = np.zeros(n, dtype=bool)
    added = np.zeros(n)
    accepted = np.zeros(n, dtype=bool)
    delay = np.zeros(len(d.revoked))
    expiry = d.phase.copy()  # each token's current exp (refreshed at exp)
    pending = sorted(zip(d.revoked_at, range(len(d.revoked)), d.revoked, strict=True))
    next_rev = 0
    local_delay = _local_delay(sc, d) if sc.mode != "introspect" else None
    for i in range(n):
        t, k = float(d.arrival[i]), int(d.token[i])
        while next_rev < len(pending) and pending[next_rev][0] <= t:
            at, j, kk = pending[next_rev]
            now[0] = at
            if sc.mode == "introspect" and gate.cache is not None:
                expires = gate.cache.expires_at(int(kk))
                delay[j] = max(0.0, expires - at) if expires is not None else 0.0
            next_rev += 1
        now[0] = t
        if sc.mode == "introspect":
            calls = gate.calls
            try:
                accepted[i] = bool(gate.lookup(k)["active"])
                call[i] = gate.calls > calls
                added[i] = d.rtt[i] if call[i] else 0.0
            except AuthUnavailableError:
                call[i], added[i] = True, sc.timeout_s
            continue
        added[i] = sc.verify_s
        while t >= expiry[k]:  # the holder refreshes at exp, or as soon as the issuer is back
            due = expiry[k]
            issued = down[1] if down[0] <= due < down[1] else due
            if t < issued:
                break
            expiry[k] = issued + sc.token_lifetime_s
        accepted[i] = t < expiry[k]  # refused while its refresh waits for the issuer
    revoked = _revoked_flags(d.token, d.arrival, d, sc.n_tokens)
    if sc.mode != "introspect":
        delay = local_delay
        accepted &= ~revoked | _within(d, delay, d.token, d.arrival, sc.n_tokens)
    return Run(sc, d.arrival, d.token, call, added, accepted, revoked, delay,
               _exposure(d.arrival, d.token, d, delay), _refresh_times(sc, d, down))


def summary(run: Run) -> dict[str, float]:
    """Added latency, issuer load and revocation delay over the measured window."""
    sc = run.scenario
    sel = run.arrival >= sc.warmup_s
    window = sc.duration_s - sc.warmup_s
    added = run.added[sel]
    refreshes = np.sum((run.refreshes >= sc.warmup_s) & (run.refreshes < sc.duration_s))
    polls = window / sc.denylist_poll_s if sc.mode == "denylist" else 0.0
    calls = float(np.sum(run.call[sel]))
    has = len(run.revocation_delay) > 0
    return {
        "mean_added_ms": float(added.mean()) * 1e3,
        "p99_added_ms": float(np.percentile(added, 99)) * 1e3,
        "hit_ratio": 1.0 - calls / max(1, int(sel.sum())) if sc.mode == "introspect"
        else float("nan"),
        "introspection_qps": calls / window,
        "auth_qps": float(calls + refreshes + polls) / window,
        "mean_revocation_s": float(run.revocation_delay.mean()) if has else float("nan"),
        "max_revocation_s": float(run.revocation_delay.max()) if has else float("nan"),
        "mean_exposure": float(run.exposure.mean()) if has else float("nan"),
    }


def _model(rng: np.random.Generator, **settings: Any) -> dict[str, float]:
    return summary(simulate(replace(Scenario(), **settings), rng))


def sweep(grid: dict[str, Sequence[Any]], *, seed: int = 1, replications: int = 3,
          **fixed: Any) -> list[dict[str, Any]]:
    """``experiments.sweep`` over the scenario's settings (metrics over the measured window)."""
    return experiments.sweep(_model, grid, seed=seed, replications=replications, fixed=fixed)


def over_time(run: Run, bin_s: float = 1.0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Dashboard series: share of valid-token requests accepted, calls to the issuer per s,
    mean added latency per bin, and requests with revoked tokens accepted per s."""
    end = run.scenario.duration_s
    valid = ~run.revoked_token
    ok = run.accepted[valid].astype(float)
    return {
        "accepted": per_bin(run.arrival[valid], ok, bin_s, 0, end, np.mean),
        "calls": rate_over_time(np.concatenate([run.arrival[run.call], run.refreshes]),
                                bin_s, 0, end),
        "added_ms": per_bin(run.arrival, run.added * 1e3, bin_s, 0, end, np.mean),
        "revoked_accepted": rate_over_time(run.arrival[run.revoked_token & run.accepted],
                                           bin_s, 0, end),
    }


# --- closed forms -------------------------------------------------------------------------


def hit_ratio_one(rate: float, ttl_s: float) -> float:
    """Hit ratio of one token's requests (Poisson at ``rate``/s) in a TTL cache: each miss
    opens a window of ttl in which rate·ttl requests hit on average, then the next request
    misses after 1/rate more; renewal-reward gives rate·ttl / (1 + rate·ttl)."""
    x = rate * ttl_s
    return x / (1.0 + x)


def hit_ratio(request_rate: float, probabilities: np.ndarray, ttl_s: float) -> float:
    """Hit ratio of the whole stream: the per-token ratios weighted by popularity pᵢ,
    Σ pᵢ·λpᵢh / (1 + λpᵢh), for Poisson requests split independently among tokens."""
    p = np.asarray(probabilities, dtype=float)
    x = request_rate * p * ttl_s
    return float(np.sum(p * x / (1.0 + x)))


def added_latency(hit: float, rtt_s: float) -> float:
    """The syllabus's closed form: introspection adds (1 − h)·RTT per request on average."""
    return (1.0 - hit) * rtt_s


def mean_revocation_delay(sc: Scenario) -> float:
    """Mean time a revoked token is still accepted (tokens revoked uniformly at random).

    introspect: a token is cached at a random moment with probability hᵢ (its hit ratio) and
    what is left of its entry is then uniform on (0, ttl): mean over tokens of hᵢ·ttl/2,
    and never more than ttl. local: time to exp, uniform on (0, L), plus the leeway: L/2 +
    leeway, never more than L + leeway. denylist: min of that and the time to the next pull,
    uniform on (0, P) when revocations are uniform over whole poll periods: a/2 − a²/(6b)
    with a = min(L, P), b = max(L, P) (no leeway).
    """
    if sc.mode == "introspect":
        p = ZipfKeys(sc.n_tokens, sc.zipf_alpha).probabilities
        x = sc.request_rate * p * sc.cache_ttl_s
        return float(np.mean(x / (1.0 + x))) * sc.cache_ttl_s / 2.0
    if sc.mode == "local":
        return sc.token_lifetime_s / 2.0 + sc.leeway_s
    a, b = sorted((sc.token_lifetime_s, sc.denylist_poll_s))
    return a / 2.0 - a * a / (6.0 * b)


# --- measuring the real thing -------------------------------------------------------------


def measure_seconds(fn: Callable[[], Any], repeats: int = 200, rounds: int = 5) -> float:
    """Median over ``rounds`` of the mean wall-clock seconds of ``fn()`` over ``repeats``."""
    check_int("repeats", repeats, 1)
    means = []
    for _ in range(check_int("rounds", rounds, 1)):
        began = time.perf_counter()
        for _ in range(repeats):
            fn()
        means.append((time.perf_counter() - began) / repeats)
    return float(np.median(means))


# --- plots --------------------------------------------------------------------------------


def _points(rows: Sequence[dict[str, Any]], by: str, metrics: Sequence[str]):
    return experiments.aggregate(rows, by=(by,), metrics=metrics)


def plot_tradeoff(introspect_rows: Sequence[dict[str, Any]],
                  local_rows: Sequence[dict[str, Any]]):
    """Added latency and issuer load against the mean revocation delay: introspection by
    cache TTL, local JWT by token lifetime (95 % intervals over replications)."""
    from simulations import plots

    metrics = ("mean_revocation_s", "mean_added_ms", "auth_qps")
    intro = _points(introspect_rows, "cache_ttl_s", metrics)
    local = _points(local_rows, "token_lifetime_s", metrics)
    fig, axes = plots.plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    for ax, metric, label in ((axes[0], "mean_added_ms", "mean added latency (ms)"),
                              (axes[1], "auth_qps", "issuer load (requests/s)")):
        plots.tradeoff({
            "introspection, cache TTL h": ([r["mean_revocation_s"] for r in intro],
                                           [r[metric] for r in intro]),
            "local JWT, lifetime L": ([r["mean_revocation_s"] for r in local],
                                      [r[metric] for r in local])},
            xlabel="mean revocation delay (s)", ylabel=label,
            annotations={"introspection, cache TTL h": [f"h={r['cache_ttl_s']:g}"
                                                        for r in intro],
                         "local JWT, lifetime L": [f"L={r['token_lifetime_s']:g}"
                                                   for r in local]},
            ci={"introspection, cache TTL h": [r[metric + "_ci"] for r in intro],
                "local JWT, lifetime L": [r[metric + "_ci"] for r in local]}, ax=ax)
        ax.set_xscale("symlog", linthresh=1.0)
    return axes


@functools.cache
def _tradeoff_curve(request_rate: float, n_tokens: int,
                    duration_s: float) -> tuple[tuple[float, ...], ...]:
    """(ttl, mean revocation delay, mean added ms per ms of RTT, issuer load) at five TTLs.
    The misses do not depend on the RTT and the round trips scale with it (same seed), so one
    run per TTL serves every RTT."""
    rows = []
    for ttl in (1.0, 3.0, 10.0, 30.0, 100.0):
        sc = Scenario(request_rate=request_rate, rtt_s=0.001, n_tokens=n_tokens,
                      cache_ttl_s=ttl, duration_s=duration_s, revocations=min(40, n_tokens))
        s = summary(simulate(sc))
        rows.append((ttl, s["mean_revocation_s"], s["mean_added_ms"], s["auth_qps"]))
    return tuple(rows)


def draw_tradeoff(request_rate: float = 200.0, rtt_ms: float = 2.0, n_tokens: int = 200,
                  token_lifetime_s: float = 300.0):
    """The slider figure: introspection's added latency and issuer load by cache TTL against
    the mean revocation delay (simulated points, closed-form lines), and local JWT's point."""
    from simulations import plots

    rows = _tradeoff_curve(request_rate, n_tokens, 45.0)
    p = ZipfKeys(n_tokens, 0.6).probabilities
    grid = np.geomspace(0.3, 300.0, 12)
    hits = np.array([hit_ratio(request_rate, p, h) for h in grid])
    x = request_rate * p[None, :] * grid[:, None]
    delay_theory = np.mean(x / (1 + x), axis=1) * grid / 2
    local_delay, refresh_qps = token_lifetime_s / 2, n_tokens / token_lifetime_s
    # A plain axis at log10(delay) with decade labels draws faster than a log axis.
    lx = np.log10
    fig, (left, right) = plots.plt.subplots(1, 2, figsize=(8.6, 3.2))
    left.plot(lx(delay_theory), (1 - hits) * rtt_ms, **plots.THEORY, label="(1 − h)·RTT")
    left.plot(lx([r[1] for r in rows]), [r[2] * rtt_ms for r in rows], "o",
              label="introspection, h = 1 … 100 s")
    left.plot(lx([local_delay]), [0.0], "s", label=f"local JWT, L = {token_lifetime_s:g} s")
    left.set_ylabel("mean added latency (ms)")
    right.plot(lx(delay_theory), (1 - hits) * request_rate + refresh_qps, **plots.THEORY,
               label="(1 − h)·λ + tokens/L")
    right.plot(lx([r[1] for r in rows]), [r[3] for r in rows], "o", label="introspection")
    right.plot(lx([local_delay]), [refresh_qps], "s", label="local JWT (refreshes)")
    right.set_ylabel("issuer load (requests/s)")
    decades = np.arange(-2, 4)
    for ax in (left, right):
        ax.set_xticks(decades, [f"{10.0 ** d:g}" for d in decades])
        ax.set_xlim(-1.7, 3.1)
        ax.set_xlabel("mean revocation delay (s, log scale)")
    left.legend(fontsize="small", loc="upper right")
    right.legend(fontsize="small", loc="upper right")
    return fig


def plot_theory(rows: Sequence[dict[str, Any]], sc: Scenario):
    """Simulation (means with 95 % intervals) against the closed forms, by cache TTL:
    added latency (1 − h)·RTT and the mean revocation delay."""
    from simulations import plots

    agg = _points(rows, "cache_ttl_s", ("mean_added_ms", "mean_revocation_s"))
    ttls = np.array([r["cache_ttl_s"] for r in agg])
    p = ZipfKeys(sc.n_tokens, sc.zipf_alpha).probabilities
    fine = np.concatenate([[0.0], np.geomspace(0.1, ttls.max(), 40)])
    fig, axes = plots.plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    theory = {"mean_added_ms": [added_latency(hit_ratio(sc.request_rate, p, h), sc.rtt_s) * 1e3
                                for h in fine],
              "mean_revocation_s": [mean_revocation_delay(replace(sc, cache_ttl_s=h))
                                    for h in fine]}
    labels = {"mean_added_ms": ("mean added latency (ms)", "(1 − h)·RTT"),
              "mean_revocation_s": ("mean revocation delay (s)", "mean over tokens of hᵢ·ttl/2")}
    for ax, metric in zip(axes, ("mean_added_ms", "mean_revocation_s"), strict=True):
        ax.plot(fine, theory[metric], **plots.THEORY, label=labels[metric][1])
        ax.errorbar(ttls, [r[metric] for r in agg], yerr=[r[metric + "_ci"] for r in agg],
                    fmt="o", capsize=3, label="simulation, 95 % CI")
        if metric == "mean_revocation_s":
            ax.plot(fine, fine, ":", color="grey", label="bound: ttl")
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlabel("cache TTL h (s)")
        ax.set_ylabel(labels[metric][0])
        ax.legend(fontsize="small")
    return axes


def plot_dashboard(runs: dict[str, Run], bin_s: float = 1.0,
                   outage: tuple[float, float] | None = None):
    """Accepted share of valid requests, calls to the issuer, added latency and accepted
    requests with revoked tokens, over time, a curve per run, the outage shaded."""
    from simulations import plots

    series = {name: over_time(run, bin_s) for name, run in runs.items()}
    times = next(iter(series.values()))["calls"][0]
    panels = {
        "valid requests accepted (share)": {n: s["accepted"][1] for n, s in series.items()},
        "calls to the issuer (per s)": {n: s["calls"][1] for n, s in series.items()},
        "mean added latency (ms)": {n: s["added_ms"][1] for n, s in series.items()},
        "revoked-token requests accepted (per s)": {n: s["revoked_accepted"][1]
                                                    for n, s in series.items()},
    }
    return plots.dashboard(times, panels, windows=[outage] if outage else (),
                           window_label="issuer outage")
