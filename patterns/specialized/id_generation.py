"""Unique ID generation: numbers no two callers ever share, without asking one place every time.

Picture a cloakroom. One attendant with one roll of tickets is simple and never repeats, but
every coat waits for that attendant. Hand each helper a strip of 100 tickets (a block) and the
attendant is asked once per strip; a helper who goes home loses at most the rest of a strip,
and no number is ever printed twice. Or print the time and the helper's badge number on each
ticket (Snowflake): no one is asked at all, as long as the clocks do not run backwards. Or draw
a long random number (ULID, UUIDv7): no badges either, and a repeat is merely improbable.

- ``BlockAllocator`` / ``BlockClient``: a central counter that hands out blocks of ``B`` IDs
  and persists its high-water mark first, and the caller that spends a block locally.
- ``SnowflakeGenerator``: Twitter's 2010 layout, 41-bit milliseconds since a custom epoch,
  10-bit worker, 12-bit sequence (4,096 IDs per millisecond per worker); it refuses while the
  clock is behind the last timestamp it used, as Twitter's ``IdWorker`` does.
- ``ulid``, ``uuid7``, ``crockford32``: the ULID and RFC 9562 UUIDv7 layouts (48-bit
  milliseconds, then randomness) built by hand from a timestamp and random bits.
- ``ProductionSnowflake``: the generator with a validated ``SnowflakeConfig``, a lock, logging,
  ``prometheus_client`` metrics, and a bounded wait instead of an error for a small step back.

Time is injectable (``clock`` in seconds), so the same classes run in real time, in tests and in
SimPy. Nothing here imports from ``simulations``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass

from patterns.checks import check_int, check_non_negative
from patterns.metrics import Instruments

Clock = Callable[[], float]
log = logging.getLogger(__name__)

TWITTER_EPOCH_MS = 1288834974657  # "twepoch" in Twitter's IdWorker.scala (2010-11-04 UTC)
TIMESTAMP_BITS, WORKER_BITS, SEQUENCE_BITS = 41, 10, 12
MAX_WORKER = (1 << WORKER_BITS) - 1
MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class BlockAllocator:
    """The central counter: ``allocate()`` reserves the next ``block_size`` IDs, writing the new
    high-water mark to ``store`` (durable storage: a dict here, a database row in production)
    before answering, so a restart resumes after every block it ever handed out."""

    def __init__(self, block_size: int, store: MutableMapping | None = None) -> None:
        self.block_size = check_int("block_size", block_size, 1)
        self.store = store if store is not None else {}
        self.store.setdefault("next_free", 0)

    def allocate(self) -> range:
        start = self.store["next_free"]
        self.store["next_free"] = start + self.block_size  # persist first, then answer
        return range(start, start + self.block_size)


class BlockClient:
    """A caller that spends its current block locally and asks ``fetch`` for a new one only
    when the block is used up; ``crash()`` forgets the block (those IDs are lost, never reused)."""

    def __init__(self, fetch: Callable[[], range]) -> None:
        self.fetch = fetch
        self.block: range = range(0)
        self.used = 0
        self.fetches = 0

    @property
    def remaining(self) -> int:
        return len(self.block) - self.used

    def next_id(self) -> int:
        if self.remaining == 0:
            self.block, self.used = self.fetch(), 0
            self.fetches += 1
        self.used += 1
        return self.block[self.used - 1]

    def crash(self) -> int:
        """Lose the in-memory block; returns how many IDs were lost with it (at most B)."""
        lost, self.block, self.used = self.remaining, range(0), 0
        return lost


class ClockMovedBackwards(RuntimeError):
    """The clock reads earlier than the last timestamp used: an ID now could repeat one."""

    def __init__(self, behind_ms: int) -> None:
        super().__init__(f"clock moved backwards by {behind_ms} ms: refusing to generate IDs "
                         f"until it passes the last timestamp used")
        self.behind_ms = behind_ms


def snowflake(timestamp_ms: int, worker: int, sequence: int,
              epoch_ms: int = TWITTER_EPOCH_MS) -> int:
    """The 64-bit ID: 0 | 41 bits of ms since ``epoch_ms`` | 10 bits worker | 12 bits sequence."""
    return ((timestamp_ms - epoch_ms) << (WORKER_BITS + SEQUENCE_BITS)) | (
        worker << SEQUENCE_BITS) | sequence


def decode_snowflake(value: int, epoch_ms: int = TWITTER_EPOCH_MS) -> tuple[int, int, int]:
    """(unix timestamp in ms, worker, sequence) of a Snowflake ID."""
    return ((value >> (WORKER_BITS + SEQUENCE_BITS)) + epoch_ms,
            (value >> SEQUENCE_BITS) & MAX_WORKER, value & MAX_SEQUENCE)


class SnowflakeGenerator:
    """Time-ordered 64-bit IDs for one worker, with no coordination at all.

    Within a millisecond the sequence counts 0 ... 4095; the 4,097th request in the same
    millisecond waits (``sleep``) for the next one. A clock behind the last timestamp used
    raises ``ClockMovedBackwards``. ``state`` keeps ``last_ms`` and ``sequence``: pass durable
    storage so that a restart remembers them.
    """

    def __init__(self, worker: int, clock: Clock = time.time, *,
                 epoch_ms: int = TWITTER_EPOCH_MS, sleep: Callable[[float], None] = time.sleep,
                 state: MutableMapping | None = None) -> None:
        self.worker = check_int("worker", worker, 0, MAX_WORKER)
        self.clock, self.sleep, self.epoch_ms = clock, sleep, epoch_ms
        self.state = state if state is not None else {}
        self.state.setdefault("last_ms", -1)
        self.state.setdefault("sequence", 0)

    def millis(self) -> int:
        return int(self.clock() * 1000)

    def next_id(self) -> int:
        now, last = self.millis(), self.state["last_ms"]
        if now < last:
            raise ClockMovedBackwards(last - now)
        if now == last:
            sequence = (self.state["sequence"] + 1) & MAX_SEQUENCE
            while sequence == 0 and now <= last:  # 4,096 used this millisecond: wait for the next
                self.sleep((last + 1) / 1000 - self.clock())
                now = self.millis()
        else:
            sequence = 0
        self.state["last_ms"], self.state["sequence"] = now, sequence
        return snowflake(now, self.worker, sequence, self.epoch_ms)


def crockford32(value: int, length: int) -> str:
    """``value`` in Crockford's base 32 (5 bits a character), most significant first."""
    return "".join(CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(length)))


def ulid(timestamp_ms: int, randomness: int) -> str:
    """The ULID string: 48-bit ms timestamp then 80 random bits, as 10 + 16 base-32 characters."""
    check_int("timestamp_ms", timestamp_ms, 0, (1 << 48) - 1)
    check_int("randomness", randomness, 0, (1 << 80) - 1)
    return crockford32(timestamp_ms, 10) + crockford32(randomness, 16)


def uuid7(timestamp_ms: int, rand_a: int, rand_b: int) -> uuid.UUID:
    """RFC 9562 UUIDv7: 48-bit unix_ts_ms | ver 0111 | 12-bit rand_a | var 10 | 62-bit rand_b."""
    check_int("timestamp_ms", timestamp_ms, 0, (1 << 48) - 1)
    check_int("rand_a", rand_a, 0, (1 << 12) - 1)
    check_int("rand_b", rand_b, 0, (1 << 62) - 1)
    return uuid.UUID(int=(timestamp_ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62)
                     | rand_b)


@dataclass(frozen=True)
class SnowflakeConfig:
    """``worker`` (0 ... 1023), the ``epoch_ms`` the timestamps count from, and how far back
    the clock may step before the generator refuses instead of waiting (``max_wait_ms``)."""

    worker: int
    epoch_ms: int = TWITTER_EPOCH_MS
    max_wait_ms: float = 5.0

    def __post_init__(self) -> None:
        check_int("SnowflakeConfig.worker", self.worker, 0, MAX_WORKER)
        check_int("SnowflakeConfig.epoch_ms", self.epoch_ms, 0)
        check_non_negative("SnowflakeConfig.max_wait_ms", self.max_wait_ms)


class ProductionSnowflake(SnowflakeGenerator):
    """``SnowflakeGenerator`` for a multi-threaded service: one lock around the state, a step
    back of at most ``max_wait_ms`` waited out (longer ones refused and logged as errors), and
    counters (ids, waits, refusals) and a wait histogram in a registry of its own."""

    def __init__(self, config: SnowflakeConfig, clock: Clock = time.time, *,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(config.worker, clock, epoch_ms=config.epoch_ms, sleep=sleep)
        self.config = config
        self._lock = threading.Lock()
        self.metrics = Instruments("snowflake", "IDs generated")
        self._wait = self.metrics.histogram("clock_wait_seconds", "Time spent waiting for the "
                                            "clock to pass the last timestamp",
                                            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.05))

    def next_id(self) -> int:
        with self._lock:
            try:
                value = super().next_id()
            except ClockMovedBackwards as behind:
                if behind.behind_ms > self.config.max_wait_ms:
                    self.metrics.count("refused")
                    log.error("worker %d: %s", self.config.worker, behind)
                    raise
                self.metrics.count("clock_waits")
                self._wait.observe(behind.behind_ms / 1000)
                self.sleep(behind.behind_ms / 1000)
                value = super().next_id()  # raises again if the clock still has not caught up
            self.metrics.count("ids")
            return value
