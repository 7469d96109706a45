"""Sharding: one key space split over many servers, each key always on the same one.

Picture the cloakroom of a large theatre with sixteen attendants. Each coat gets a ticket whose
number says which attendant's rail it hangs on, so nobody searches sixteen rails and every
attendant takes a sixteenth of the coats. Then a celebrity arrives with three hundred fans, and
every fan wants the one rail that holds the celebrity's coat: one attendant is swamped while
fifteen wait. Sharding is the ticket rule; splitting a hot key is giving the celebrity's fans
tickets for several rails, at the price of visiting all of them to count the coats.

A key goes to one of 16384 *hash slots* by CRC16 of the key, with Redis Cluster's hash tags
(only the part between ``{`` and ``}`` is hashed), and each slot belongs to one shard, so moving
load between shards means moving whole slots, never rehashing every key. `ShardedStore` is the
Level 2 store; `ProductionShardRouter` hardens it for Level 3: a validated `RouterConfig`, a lock,
``logging``, per-shard ``prometheus_client`` metrics, hot-key detection over a sliding window
(`HotKeyDetector`, a count-min sketch with an injectable clock) that splits a hot counter, and
live slot migration with Redis Cluster's redirect rule. Nothing here imports from ``simulations``.
"""

from __future__ import annotations

import binascii
import bisect
import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Gauge

from patterns.checks import check_int, check_range
from patterns.metrics import Instruments

Clock = Callable[[], float]
log = logging.getLogger(__name__)

SLOTS = 16384
"""Redis Cluster's number of hash slots: the 14 low bits of the key's CRC16."""

_MISSING = object()


def _crc16_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = (crc << 1) ^ 0x1021 if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC16_TABLE = _crc16_table()


def crc16(data: bytes) -> int:
    """CRC-16/XMODEM (polynomial 0x1021, start 0, no reflection): Redis Cluster's key hash.

    One table look-up per byte; the standard library's C version is ``binascii.crc_hqx(data, 0)``.
    """
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16_TABLE[(crc >> 8) ^ byte]
    return crc


def fast_crc16(data: bytes) -> int:
    """The same CRC from the standard library's C code (``binascii.crc_hqx``), for bulk hashing."""
    return binascii.crc_hqx(data, 0)


def hash_tag(key: bytes) -> bytes:
    """The part of ``key`` that is hashed: what lies between the first ``{`` and the first ``}``
    after it, if that is not empty; otherwise the whole key (Redis Cluster's rule)."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            return key[start + 1:end]
    return key


def hash_slot(key: str | bytes, crc: Callable[[bytes], int] = crc16) -> int:
    """The hash slot of ``key``: CRC16 of its hash tag (or of the whole key) mod 16384."""
    data = key.encode() if isinstance(key, str) else key
    return crc(hash_tag(data)) % SLOTS


def sub_key(key: str, part: int) -> str:
    """Sub-key ``part`` of a split key: the key itself for part 0, else the key with a salt that
    moves it to another slot: ``likes#3``, or, inside a hash tag, ``{post9#3}:likes`` (a salt
    outside the braces would not change the hashed part, so every sub-key would share one slot).
    """
    if part == 0:
        return key
    start = key.find("{")
    end = key.find("}", start + 1) if start >= 0 else -1
    if end > start + 1:
        return f"{key[:end]}#{part}{key[end:]}"
    return f"{key}#{part}"


def even_slot_owners(shards: int) -> list[int]:
    """Slot -> shard, in equal contiguous ranges: shard j owns slots [j·16384/n, (j+1)·16384/n)."""
    check_int("shards", shards, 1, SLOTS)
    return [slot * shards // SLOTS for slot in range(SLOTS)]


class ShardedStore:
    """A key-value store split over ``shards`` dicts: key -> hash slot -> the shard owning it.

    ``requests`` counts the operations each shard served. ``split(key, parts)`` spreads a hot
    counter over ``parts`` sub-keys: each ``incr`` writes one of them (in turn), and ``counter``
    reads them all and adds them up, so a read of a split key costs ``parts`` requests.
    """

    def __init__(self, shards: int) -> None:
        self.owner = even_slot_owners(shards)  # slot -> shard
        self.data: list[dict[str, Any]] = [{} for _ in range(shards)]
        self.requests = [0] * shards
        self.splits: dict[str, int] = {}  # split counter -> its number of sub-keys
        self._turn: dict[str, int] = {}

    def slot_of(self, key: str) -> int:
        return hash_slot(key)

    def shard_for(self, key: str) -> int:
        return self.owner[self.slot_of(key)]

    def _shard(self, key: str) -> dict[str, Any]:
        """The dict that holds ``key``, counting one request on its shard."""
        shard = self.shard_for(key)
        self.requests[shard] += 1
        return self.data[shard]

    def get(self, key: str, default: Any = None) -> Any:
        return self._shard(key).get(key, default)

    def put(self, key: str, value: Any) -> None:
        self._shard(key)[key] = value

    def delete(self, key: str) -> bool:
        return self._shard(key).pop(key, _MISSING) is not _MISSING

    def split(self, key: str, parts: int) -> None:
        """Spread counter ``key`` over ``parts`` sub-keys from now on (never fewer than before:
        its value may already sit in every sub-key)."""
        self.splits[key] = max(check_int("parts", parts, 1), self.splits.get(key, 1))

    def _pick(self, key: str, parts: int) -> int:
        """Which sub-key the next write of ``key`` takes: each in turn."""
        part = self._turn.get(key, 0) % parts
        self._turn[key] = part + 1
        return part

    def incr(self, key: str, amount: int = 1) -> None:
        """Add ``amount`` to counter ``key``, in one of its sub-keys if it is split."""
        target = sub_key(key, self._pick(key, self.splits.get(key, 1)))
        shard = self._shard(target)
        shard[target] = shard.get(target, 0) + amount

    def counter(self, key: str) -> int:
        """Counter ``key``'s value: the sum over its sub-keys, one request to each."""
        return sum(self.get(sub_key(key, part), 0) for part in range(self.splits.get(key, 1)))


# ---------------------------------------------------------------- production-grade (Level 3)


class HotKeyDetector:
    """Which keys take a large share of the last ``window_s`` seconds of requests.

    Picture a tally clerk at the door who cannot keep a line per guest: she has ``depth`` rows of
    ``width`` boxes, and each guest ticks one box per row, chosen by hashing the name. A guest's
    count is the smallest of their ticks: never below the truth, above it only where other guests
    share all of their boxes (a *count-min sketch*). The window slides in ``buckets`` steps: a
    sketch per 1/``buckets`` of the window, the oldest dropped as the clock moves on.

    ``record(key)`` counts one request and returns the key's share of the window's requests (0
    until the window holds ``min_requests``). Keys are hashed with BLAKE2b, the same in every
    process. Time comes from ``clock``.
    """

    def __init__(self, window_s: float, hot_share: float, width: int = 1024, depth: int = 4,
                 buckets: int = 10, min_requests: int = 100, clock: Clock = time.monotonic
                 ) -> None:
        self.window_s, self.hot_share = window_s, hot_share
        self.width, self.depth, self.buckets = width, depth, buckets
        self.min_requests, self.clock = min_requests, clock
        self.bucket_s = window_s / buckets
        self.sketches = [[[0] * width for _ in range(depth)] for _ in range(buckets)]
        self.total = [[0] * width for _ in range(depth)]  # the sum of the live sketches
        self.counts = [0] * buckets  # requests per bucket
        self.epochs: list[int | None] = [None] * buckets  # which step of time each bucket holds
        self.window_requests = 0
        self.watched: dict[str, float] = {}  # keys above half the hot share, with their share

    def _columns(self, key: str) -> list[int]:
        """The key's counter in each row: 4 bytes of its BLAKE2b digest per row."""
        digest = hashlib.blake2b(key.encode(), digest_size=4 * self.depth).digest()
        return [int.from_bytes(digest[4 * row:4 * row + 4], "little") % self.width
                for row in range(self.depth)]

    def _advance(self, now: float) -> int:
        """The bucket for ``now``, after clearing the buckets that have left the window."""
        epoch = int(now // self.bucket_s)
        bucket = epoch % self.buckets
        if self.epochs[bucket] != epoch:
            for old, seen in enumerate(self.epochs):
                if seen is not None and seen <= epoch - self.buckets:
                    self.total = [[t - o for t, o in zip(total, gone, strict=True)]
                                  for total, gone in zip(self.total, self.sketches[old],
                                                         strict=True)]
                    self.sketches[old] = [[0] * self.width for _ in range(self.depth)]
                    self.window_requests -= self.counts[old]
                    self.counts[old], self.epochs[old] = 0, None
            self.epochs[bucket] = epoch
            self.watched = {k: s for k, s in self.watched.items() if s >= self.hot_share / 4}
        return bucket

    def estimate(self, key: str) -> int:
        """Requests for ``key`` in the window (an overestimate only where keys collide)."""
        return min(row[c] for row, c in zip(self.total, self._columns(key), strict=True))

    def record(self, key: str) -> float:
        """Count one request for ``key`` now; return its share of the window's requests."""
        bucket = self._advance(self.clock())
        sketch, smallest = self.sketches[bucket], None
        for row, total, column in zip(sketch, self.total, self._columns(key), strict=True):
            row[column] += 1
            total[column] += 1
            smallest = total[column] if smallest is None else min(smallest, total[column])
        self.counts[bucket] += 1
        self.window_requests += 1
        if self.window_requests < self.min_requests:
            return 0.0
        share = smallest / self.window_requests
        if share >= self.hot_share / 2:
            self.watched[key] = share
        return share

    def hot(self) -> list[tuple[str, float]]:
        """The watched keys whose share of the window is at least ``hot_share``, hottest first."""
        self._advance(self.clock())
        requests = max(self.window_requests, 1)
        shares = [(key, self.estimate(key) / requests) for key in self.watched]
        return sorted([(k, s) for k, s in shares if s >= self.hot_share], key=lambda x: -x[1])


@dataclass(frozen=True)
class RouterConfig:
    """A shard router's settings: its shards' names, when a key counts as hot (``hot_share`` of
    the last ``window_s`` seconds, once the window holds ``min_requests``), how many sub-keys a
    hot counter gets, the sketch's size, and the seed of the sub-key a write picks."""

    shards: tuple[str, ...] = ("shard-0", "shard-1", "shard-2", "shard-3")
    hot_share: float = 0.1
    window_s: float = 10.0
    min_requests: int = 100
    split_factor: int = 8
    sketch_width: int = 1024
    sketch_depth: int = 4
    buckets: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        name = "RouterConfig."
        shards = self.shards
        if (not isinstance(shards, tuple) or not 1 <= len(shards) <= SLOTS
                or len(set(shards)) != len(shards)
                or not all(isinstance(s, str) and s for s in shards)):
            raise ValueError(f"{name}shards must be a tuple of 1 to {SLOTS} distinct non-empty "
                             f"names (got {shards!r})")
        check_range(name + "hot_share", self.hot_share, 0.0, 1.0, low_open=True)
        check_range(name + "window_s", self.window_s, 0.0, low_open=True)
        check_int(name + "min_requests", self.min_requests, low=1)
        check_int(name + "split_factor", self.split_factor, low=2, high=1024)
        check_int(name + "sketch_width", self.sketch_width, low=16)
        check_int(name + "sketch_depth", self.sketch_depth, low=1, high=16)
        check_int(name + "buckets", self.buckets, low=1)
        check_int(name + "seed", self.seed)


class ProductionShardRouter(ShardedStore):
    """The Level 2 store hardened: validated config, thread-safe, logged, measured, and able to
    detect and split a hot counter and to move a slot to another shard while serving.

    One lock guards the routing table and the shards (in-memory operations take microseconds).
    Every operation is counted per shard; a counter key whose share of the window reaches
    ``hot_share`` is split into ``split_factor`` sub-keys (a write then picks one at random, a read
    visits all). Slot migration follows Redis Cluster: while slot s moves from shard A to B, a key
    still in A is served by A, any other key of s by B (Redis's ASK redirect), and keys move in
    batches, each key atomically, so a key is always in exactly one shard.
    """

    def __init__(self, config: RouterConfig | None = None, clock: Clock = time.monotonic) -> None:
        self.config = config = config or RouterConfig()
        super().__init__(len(config.shards))
        self.names = config.shards
        self.detector = HotKeyDetector(config.window_s, config.hot_share, config.sketch_width,
                                       config.sketch_depth, config.buckets, config.min_requests,
                                       clock)
        self.rng = random.Random(config.seed)
        self.migrating: dict[int, int] = {}  # slot -> shard it is moving to
        self._pending: dict[int, list[str]] = {}  # slot -> keys still to move
        self._reported: set[str] = set()
        self._lock = threading.Lock()
        self.metrics = Instruments("shard_router", "Operations through the shard router")
        registry = self.metrics.registry
        self._served = Counter("shard_router_shard_requests", "Requests served, per shard",
                               ["shard"], registry=registry)
        keys = Gauge("shard_router_shard_keys", "Keys held, per shard", ["shard"],
                     registry=registry)
        for index, shard in enumerate(self.names):
            keys.labels(shard).set_function(lambda index=index: len(self.data[index]))
        self.fanout = self.metrics.histogram("read_fanout", "Shards one counter read visits",
                                             buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024))

    def slot_of(self, key: str) -> int:
        return hash_slot(key, fast_crc16)

    def shard_for(self, key: str) -> int:
        slot = self.slot_of(key)
        source, target = self.owner[slot], self.migrating.get(slot)
        if target is not None and key not in self.data[source]:
            self.metrics.count("ask_redirects")
            return target
        return source

    def _shard(self, key: str) -> dict[str, Any]:
        shard = self.shard_for(key)
        self.requests[shard] += 1
        self._served.labels(self.names[shard]).inc()
        return self.data[shard]

    def _pick(self, key: str, parts: int) -> int:
        return self.rng.randrange(parts)

    def _observe(self, key: str, counter: bool) -> None:
        """Feed the detector; split a counter that has turned hot, report any other hot key."""
        share = self.detector.record(key)
        if share < self.config.hot_share or key in self.splits:
            return
        if counter:
            self.split(key, self.config.split_factor)
            self.metrics.count("splits")
            log.warning("hot key %r: %.0f%% of the last %g s of requests; split into %d sub-keys",
                        key, 100 * share, self.config.window_s, self.config.split_factor)
        elif key not in self._reported:
            self._reported.add(key)
            self.metrics.count("hot_keys_reported")
            log.warning("hot key %r: %.0f%% of the last %g s of requests (not a counter: not "
                        "split)", key, 100 * share, self.config.window_s)

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            self.metrics.count("reads")
            self._observe(key, counter=False)
            return super().get(key, default)

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self.metrics.count("writes")
            self._observe(key, counter=False)
            super().put(key, value)

    def delete(self, key: str) -> bool:
        with self._lock:
            self.metrics.count("writes")
            return super().delete(key)

    def incr(self, key: str, amount: int = 1) -> None:
        with self._lock:
            self.metrics.count("writes")
            self._observe(key, counter=True)
            super().incr(key, amount)

    def counter(self, key: str) -> int:
        with self._lock:
            self.metrics.count("reads")
            self._observe(key, counter=True)
            parts = self.splits.get(key, 1)
            self.fanout.observe(parts)
            return sum(ShardedStore.get(self, sub_key(key, p), 0) for p in range(parts))

    # ------------------------------------------------------------ live slot migration

    def begin_migration(self, slot: int, target: str) -> int:
        """Start moving ``slot`` to shard ``target``; return how many keys it holds."""
        with self._lock:
            check_int("slot", slot, 0, SLOTS - 1)
            if target not in self.names:
                raise ValueError(f"target must be one of {', '.join(self.names)} (got {target!r})")
            to, source = self.names.index(target), self.owner[slot]
            if to == source or slot in self.migrating:
                raise ValueError(f"slot {slot} is already on {target!r} or moving (got {target!r})")
            self.migrating[slot] = to
            # New keys of the slot go to the target from now on, so this list only shrinks.
            self._pending[slot] = [k for k in self.data[source] if self.slot_of(k) == slot]
            log.info("slot %d: migrating %d keys from %s to %s", slot, len(self._pending[slot]),
                     self.names[source], target)
            return len(self._pending[slot])

    def migrate_keys(self, slot: int, count: int) -> int:
        """Move up to ``count`` of the slot's keys, each atomically; return how many moved."""
        with self._lock:
            pending, source = self._pending[slot], self.data[self.owner[slot]]
            moved = 0
            while pending and moved < count:
                key = pending.pop()
                value = source.pop(key, _MISSING)
                if value is not _MISSING:  # deleted meanwhile: nothing to move
                    self.data[self.migrating[slot]][key] = value
                    moved += 1
            self.metrics.count("migrated_keys", moved)
            return moved

    def finish_migration(self, slot: int) -> None:
        """Hand the slot to its target once every key has moved."""
        with self._lock:
            if self._pending.get(slot):
                raise ValueError(f"slot {slot} still has {len(self._pending[slot])} keys to move")
            source, self.owner[slot] = self.owner[slot], self.migrating.pop(slot)
            del self._pending[slot]
            self.metrics.count("slots_moved")
            log.info("slot %d: now on %s (was %s)", slot, self.names[self.owner[slot]],
                     self.names[source])

    def migrate_slot(self, slot: int, target: str, batch: int = 100) -> int:
        """Move ``slot`` to ``target`` in batches of ``batch`` keys, serving all the while."""
        check_int("batch", batch, 1)
        self.begin_migration(slot, target)
        moved = 0
        while step := self.migrate_keys(slot, batch):
            moved += step
        self.finish_migration(slot)
        return moved


def plan_rebalance(slot_load: Sequence[float], owner: Sequence[int], shards: int,
                   max_moves: int) -> list[tuple[int, int]]:
    """Slot moves (slot, new shard) that lower the busiest shard's load, greedily.

    Each step takes the busiest shard's heaviest slot that is lighter than the gap to the least
    loaded shard (so the move lowers the maximum) and gives it to that shard; it stops after
    ``max_moves`` moves or when no slot fits. The busiest shard can never get below its heaviest
    slot: rebalancing evens out many keys, it cannot divide a hot one.
    """
    check_int("shards", shards, 1)
    check_int("max_moves", max_moves, 0)
    if len(slot_load) != SLOTS or len(owner) != SLOTS:
        raise ValueError(f"slot_load and owner need one entry per slot, {SLOTS} (got "
                         f"{len(slot_load)} and {len(owner)})")
    load = [0.0] * shards
    held: list[list[tuple[float, int]]] = [[] for _ in range(shards)]  # (load, slot), ascending
    for slot, shard in enumerate(owner):
        load[shard] += slot_load[slot]
        if slot_load[slot] > 0:
            held[shard].append((float(slot_load[slot]), slot))
    for slots in held:
        slots.sort()
    moves: list[tuple[int, int]] = []
    while len(moves) < max_moves:
        hot = max(range(shards), key=load.__getitem__)
        cold = min(range(shards), key=load.__getitem__)
        fits = bisect.bisect_left(held[hot], (load[hot] - load[cold], -1)) - 1
        if fits < 0:
            break
        weight, slot = held[hot].pop(fits)
        bisect.insort(held[cold], (weight, slot))
        load[hot] -= weight
        load[cold] += weight
        moves.append((slot, cold))
    return moves
