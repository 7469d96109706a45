"""Rate limiting: let each client through at a sustained rate, with a bounded burst.

Picture a ticket dispenser at a busy counter that prints one ticket every few seconds into a
tray holding at most b tickets. A customer who finds a ticket in the tray is served; one who
finds the tray empty is turned away. A quiet regular always finds a ticket, a crowd arriving
at once takes the b saved up, and someone pressing the button all day gets one ticket per
interval, never more. That tray is a *token bucket*: rate r, depth b.

The algorithms here, each with an injectable ``clock`` (seconds) so the same object runs in real
time, in a test with a hand-moved clock and inside a SimPy simulation (``lambda: env.now``):

* `TokenBucket` (rate r, depth b): admitted in any interval of length t is at most b + r·t;
* `LeakyBucket` (rate r, queue ``burst``): the NGINX ``limit_req`` style; it admits what a
  token bucket of depth ``burst + 1`` admits, but releases them spaced 1/r apart (a delay);
* `FixedWindow` (``limit`` per ``window_s``): one counter, reset at each window boundary; up to
  twice the limit passes in a short interval across a boundary;
* `SlidingLog` (``limit`` in any ``window_s``): a timestamp per admitted request, exact.

The Level 3 classes harden the token bucket: `RateLimitConfig` (validated), `ProductionTokenBucket`
(lock, ``logging``, ``prometheus_client`` metrics, a Retry-After value), `KeyedLimiter` (a
bucket per client, bounded memory) and `RedisTokenBucket` (one bucket shared by many gateway
instances through a Lua script in Redis). Nothing here imports from ``simulations``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from patterns.checks import check_int, check_positive
from patterns.metrics import Instruments

Clock = Callable[[], float]
log = logging.getLogger(__name__)

__all__ = [
    "Decision", "FixedWindow", "KeyedLimiter", "LeakyBucket", "LeasedBucket",
    "ProductionTokenBucket", "RateLimitConfig", "RedisTokenBucket", "SlidingLog", "TokenBucket",
]


class TokenBucket:
    """Tokens drip in at ``rate`` per second up to ``burst``; a request spends one (or ``cost``).

    The bucket starts full. Refill is lazy: the tokens are computed from the time elapsed when a
    request comes, so the state is two numbers whatever the rate.
    """

    def __init__(self, rate: float, burst: float, clock: Clock = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens = float(burst)
        self.last = clock()

    def _refill(self) -> float:
        now = self.clock()
        if now > self.last:
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
            self.last = now
        return now

    def allow(self, cost: float = 1.0) -> bool:
        """Spend ``cost`` tokens if the bucket holds them; False (nothing spent) if not."""
        self._refill()
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False

    def take(self, want: int) -> int:
        """Spend as many whole tokens as are there, up to ``want``; return how many."""
        self._refill()
        got = min(want, math.floor(self.tokens))
        self.tokens -= got
        return got

    def retry_after(self, cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens will be there (0 if they are now)."""
        self._refill()
        return max(0.0, (cost - self.tokens) / self.rate)


class LeakyBucket:
    """A queue drained at ``rate`` per second that holds at most ``burst`` waiting requests.

    ``offer()`` returns the delay (s) before the request may go on, or None when the queue is
    full (reject). With ``burst = 0`` a request passes only if the previous one left at least
    1/rate ago. NGINX's ``limit_req ... burst=N`` behaves like this (``nodelay`` would serve the
    queued ones at once instead of delaying them).
    """

    def __init__(self, rate: float, burst: int, clock: Clock = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.next_free = -math.inf  # when the queue can release its next request

    def offer(self) -> float | None:
        now = self.clock()
        release = max(now, self.next_free)
        if (release - now) * self.rate > self.burst + 1e-9:
            return None
        self.next_free = release + 1.0 / self.rate
        return release - now

    def allow(self) -> bool:
        return self.offer() is not None


class FixedWindow:
    """At most ``limit`` requests per window of ``window_s`` seconds, one counter per window.

    ``aligned=True``: windows are [k·W, (k+1)·W) on the clock. ``aligned=False``: a window opens
    with the first request after the previous one has ended (the ``limits`` library's rule).
    """

    def __init__(self, limit: int, window_s: float, clock: Clock = time.monotonic,
                 aligned: bool = True) -> None:
        self.limit, self.window_s, self.clock, self.aligned = limit, window_s, clock, aligned
        self.window_start, self.count = -math.inf, 0

    def allow(self) -> bool:
        now = self.clock()
        if now >= self.window_start + self.window_s:  # the current window is over
            self.window_start = (math.floor(now / self.window_s) * self.window_s
                                 if self.aligned else now)
            self.count = 0
        if self.count < self.limit:
            self.count += 1
            return True
        return False


class SlidingLog:
    """At most ``limit`` admitted requests in any ``window_s`` seconds: a log of their times.

    A request at time t is admitted if fewer than ``limit`` admitted requests lie in
    [t − window_s, t]. Exact, but its memory grows with ``limit``.
    """

    def __init__(self, limit: int, window_s: float, clock: Clock = time.monotonic) -> None:
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self.log: deque[float] = deque()

    def allow(self) -> bool:
        now = self.clock()
        while self.log and self.log[0] < now - self.window_s:
            self.log.popleft()
        if len(self.log) < self.limit:
            self.log.append(now)
            return True
        return False


# ---------------------------------------------------------------- production-grade (Level 3)

@dataclass(frozen=True)
class RateLimitConfig:
    """A token bucket's settings: ``rate`` (tokens/s), ``burst`` (depth), and for a keyed
    limiter the most clients tracked at once (``max_keys``; the least recently seen goes)."""

    rate: float = 10.0
    burst: float = 20.0
    max_keys: int = 10_000

    def __post_init__(self) -> None:
        check_positive("RateLimitConfig.rate", self.rate)
        check_positive("RateLimitConfig.burst", self.burst)
        if self.burst < 1:
            raise ValueError(f"RateLimitConfig.burst must be >= 1 (got {self.burst!r}): a "
                             "bucket shallower than one token admits nothing")
        check_int("RateLimitConfig.max_keys", self.max_keys, low=1)


@dataclass(frozen=True)
class Decision:
    """What a gateway needs for its answer: pass, or 429 with Retry-After."""

    allowed: bool
    remaining: int  # whole tokens left (an X-RateLimit-Remaining header)
    retry_after_s: float  # 0 when allowed


class ProductionTokenBucket(TokenBucket):
    """The Level 2 bucket, thread-safe, logged and measured, answering with a `Decision`.

    A lock guards the two numbers of state; the log line (a warning when the bucket starts
    refusing, info when it admits again) is written after the lock is released.
    """

    def __init__(self, name: str, config: RateLimitConfig | None = None,
                 clock: Clock = time.monotonic) -> None:
        self.name, self.config = name, config or RateLimitConfig()
        super().__init__(self.config.rate, self.config.burst, clock)
        self.metrics = Instruments("rate_limiter", "Requests seen by the rate limiter")
        self.waits = self.metrics.histogram(
            "retry_after_seconds", "Retry-After given to refused requests",
            buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0))
        self._lock = threading.Lock()
        self.refusing = False

    def acquire(self, cost: float = 1.0) -> Decision:
        with self._lock:
            allowed = self.allow(cost)
            wait = 0.0 if allowed else self.retry_after(cost)
            decision = Decision(allowed, math.floor(self.tokens), wait)
            changed = self.refusing == allowed  # refusing starts or stops
            self.refusing = not allowed
        self.metrics.count("allowed" if allowed else "rejected")
        if not allowed:
            self.waits.observe(wait)
        if changed:
            if allowed:
                log.info("limiter %s: admitting again", self.name)
            else:
                log.warning("limiter %s: bucket empty, refusing (retry after %.3f s)",
                            self.name, wait)
        return decision


class KeyedLimiter:
    """One token bucket per client key, at most ``config.max_keys`` of them in memory.

    A key not seen for a while is evicted (least recently used); it comes back with a full
    bucket, which is what an idle client would have had anyway once ``burst / rate`` seconds
    have passed.
    """

    def __init__(self, config: RateLimitConfig | None = None,
                 clock: Clock = time.monotonic) -> None:
        self.config, self.clock = config or RateLimitConfig(), clock
        self.buckets: OrderedDict[Any, TokenBucket] = OrderedDict()
        self._lock = threading.Lock()
        self.metrics = Instruments("keyed_limiter", "Requests seen by the keyed limiter")

    def allow(self, key: Any, cost: float = 1.0) -> bool:
        with self._lock:
            bucket = self.buckets.get(key)
            if bucket is None:
                bucket = self.buckets[key] = TokenBucket(self.config.rate, self.config.burst,
                                                         self.clock)
                if len(self.buckets) > self.config.max_keys:
                    self.buckets.popitem(last=False)
                    self.metrics.count("evicted")
            else:
                self.buckets.move_to_end(key)
            allowed = bucket.allow(cost)
        self.metrics.count("allowed" if allowed else "rejected")
        return allowed


# A token bucket inside Redis: read, refill, spend and write back in one atomic script, so that
# gateways sharing the key never race. The caller passes its clock (ARGV[3]), as in TokenBucket.
TOKEN_BUCKET_LUA = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local now, want = tonumber(ARGV[3]), tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'last')
local tokens, last = tonumber(state[1]) or burst, tonumber(state[2]) or now
if now > last then
  tokens = math.min(burst, tokens + (now - last) * rate)
  last = now
end
local got = math.min(want, math.floor(tokens))
tokens = tokens - got
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
           'last', string.format('%.17g', last))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return got
"""


class RedisTokenBucket:
    """A token bucket whose state lives in Redis under ``key``, shared by every instance that
    uses the same key. ``client`` is a ``redis.Redis``; each decision is one round trip."""

    def __init__(self, client: Any, key: str, rate: float, burst: float,
                 clock: Clock = time.time) -> None:
        self.client, self.key, self.rate, self.burst, self.clock = client, key, rate, burst, clock
        self.script = client.register_script(TOKEN_BUCKET_LUA)
        self.calls = 0

    def take(self, want: int) -> int:
        self.calls += 1
        args = [repr(float(self.rate)), repr(float(self.burst)), repr(float(self.clock())), want]
        return int(self.script(keys=[self.key], args=args))

    def allow(self) -> bool:
        return self.take(1) == 1


class LeasedBucket:
    """A gateway's local slice of a shared bucket: take ``lease`` tokens per round trip.

    ``shared`` is anything with ``take(n) -> int`` (a `RedisTokenBucket`, or a `TokenBucket`
    standing in for it). The total admitted never exceeds what the shared bucket granted, so
    the b + r·t bound still holds; the price is that one gateway may hold unused tokens while
    another refuses, and ``shared.take`` is called about once per ``lease`` requests.
    """

    def __init__(self, shared: Any, lease: int) -> None:
        self.shared, self.lease = shared, check_int("lease", lease, low=1)
        self.local = 0

    def allow(self) -> bool:
        if self.local == 0:
            self.local = self.shared.take(self.lease)
        if self.local > 0:
            self.local -= 1
            return True
        return False
