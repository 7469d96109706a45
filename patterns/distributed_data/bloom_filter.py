"""Bloom filters: a doorman's list that may wave in a stranger but never turns away a guest.

Picture a cloakroom with a wall of m hooks, all empty. For every coat that comes in, an
attendant works out k hook numbers from the owner's name and hangs a tag on each of them (a
hook may already carry tags). When someone asks "is my coat here?", the attendant works out the
same k hooks: if any of them is bare, the coat was never checked in, and nobody walks to the
back to look. If all of them carry a tag, the coat is *probably* there: usually it is, but the
tags may belong to other coats (a *false positive*), and only the walk to the back settles it.
The wall is tiny compared with the coats, and a "no" is always right.

On the read path of a log-structured store (LevelDB, RocksDB, Cassandra) each sorted run on disk
has such a wall in memory: a point read asks each run's filter first and reads the run from disk
only on a "maybe", so a key that is in no run costs almost no disk reads at all.

* `key_hashes` turns a key into two 64-bit hashes from one BLAKE2b digest (deterministic across
  processes, unlike Python's salted ``hash()``); `BloomFilter` derives its k positions from them
  by double hashing, g_i = h1 + i·h2 mod m (Kirsch and Mitzenmacher).
* `BloomFilter` is the Level 2 filter: m bits, k positions per key, ``add`` and ``in``.
* `BloomConfig` sizes a filter from the expected number of keys and a target false-positive
  rate (or bits per key), validated; `ProductionBloomFilter` adds a lock, batch operations,
  serialisation with a checksum, union, ``logging`` and Prometheus metrics.
* `SortedRun` and `LSMStore` are the real part: immutable run files on disk, each with its filter
  in a footer, read newest first, counting the block reads the filters save.

Nothing here imports from ``simulations``. A Bloom filter has no notion of time, so nothing here
takes a clock: the study times the disk reads around it.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import math
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import Gauge

from patterns.checks import check_int, check_range
from patterns.metrics import Instruments

__all__ = ["BlockedBloomFilter", "BloomConfig", "BloomFilter", "LSMStore",
           "ProductionBloomFilter", "SortedRun", "add_hashes", "contains_hashes", "hash_matrix",
           "key_bytes", "key_hashes", "optimal_hashes", "positions_matrix"]

Key = str | bytes | int
log = logging.getLogger(__name__)
LN2 = math.log(2.0)


def key_bytes(key: Key) -> bytes:
    """A key as bytes: text as UTF-8, bytes as they are, an int as its decimal text (so 42 and
    "42" are the same key)."""
    if isinstance(key, bytes | bytearray):
        return bytes(key)
    if isinstance(key, str):
        return key.encode()
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key).encode()
    raise ValueError(f"key must be str, bytes or int (got {key!r}, a {type(key).__name__})")


def key_hashes(key: Key) -> tuple[int, int]:
    """Two independent 64-bit hashes of ``key``, the halves of one 16-byte BLAKE2b digest."""
    digest = hashlib.blake2b(key_bytes(key), digest_size=16).digest()
    return int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little")


def optimal_hashes(bits_per_key: float) -> int:
    """The whole number of hashes nearest to the best k = (m/n)·ln 2, at least 1."""
    return max(1, round(bits_per_key * LN2))


class BloomFilter:
    """A set that answers "definitely not" or "maybe": m bits, k positions per key.

    ``add(key)`` sets the key's k bits; ``key in f`` is True when all k are set, which is always
    the case for a key that was added (no false negatives) and, with probability about
    (1 − e^(−kn/m))^k, for one that was not. Bit p lives in byte p // 8 at bit p % 8.
    """

    def __init__(self, m: int, k: int) -> None:
        self.m, self.k = m, k  # bits, hashes per key
        self.n = 0  # keys added
        self.array = bytearray((m + 7) // 8)

    @classmethod
    def for_keys(cls, n: int, bits_per_key: float, k: int | None = None) -> BloomFilter:
        """A filter with ``bits_per_key`` bits for each of ``n`` keys; k defaults to the best."""
        return cls(max(1, math.ceil(n * bits_per_key)), k or optimal_hashes(bits_per_key))

    def positions(self, key: Key) -> list[int]:
        """The key's k bit positions by double hashing: (h1 + i·h2) mod m, i = 0 .. k−1."""
        h1, h2 = key_hashes(key)
        return [(h1 + i * h2) % self.m for i in range(self.k)]

    def add(self, key: Key) -> None:
        for p in self.positions(key):
            self.array[p >> 3] |= 1 << (p & 7)
        self.n += 1

    def __contains__(self, key: Key) -> bool:
        array = self.array
        return all(array[p >> 3] >> (p & 7) & 1 for p in self.positions(key))

    def positions_many(self, hashes: np.ndarray) -> np.ndarray:
        """`positions` of a batch of keys at once, from their `hash_matrix`: (n, k) int64."""
        return positions_matrix(hashes, self.m, self.k)

    def fill_ratio(self) -> float:
        """The share of bits set; a random absent key is a false positive with probability
        fill_ratio ** k (each of its k positions must land on a set bit)."""
        return int.from_bytes(self.array, "little").bit_count() / self.m


# ---------------------------------------------------------------- batch hashing (numpy)


def hash_matrix(keys: Iterable[Key]) -> np.ndarray:
    """`key_hashes` of every key, as an (n, 2) array of uint64 (one digest per key, read as two
    little-endian 64-bit words)."""
    blake2b = hashlib.blake2b
    digests = b"".join([blake2b(key_bytes(key), digest_size=16).digest() for key in keys])
    return np.frombuffer(digests, dtype="<u8").astype(np.uint64).reshape(-1, 2)


def positions_matrix(hashes: np.ndarray, m: int, k: int) -> np.ndarray:
    """The k positions of each row of ``hashes`` in a filter of m bits, (n, k) int64: the same
    numbers as `BloomFilter.positions`, since (h1 + i·h2) mod m = (h1 mod m + i·(h2 mod m)) mod m
    and the right side never overflows 64 bits."""
    size = np.uint64(m)
    a, b = hashes[:, 0] % size, hashes[:, 1] % size
    return ((a[:, None] + np.arange(k, dtype=np.uint64)[None, :] * b[:, None]) % size).astype(
        np.int64)


def add_hashes(bloom: BloomFilter, hashes: np.ndarray) -> None:
    """``bloom.add`` for a batch of keys given by their `hash_matrix` (building a run's filter)."""
    positions = bloom.positions_many(hashes).ravel()
    view = np.frombuffer(bloom.array, dtype=np.uint8)
    np.bitwise_or.at(view, positions >> 3, (1 << (positions & 7)).astype(np.uint8))
    bloom.n += len(hashes)


def contains_hashes(bloom: BloomFilter, hashes: np.ndarray) -> np.ndarray:
    """``key in bloom`` for a batch of keys given by their `hash_matrix`, as a bool array."""
    positions = bloom.positions_many(hashes)
    view = np.frombuffer(bloom.array, dtype=np.uint8)
    bits = (view[positions >> 3] >> (positions & 7).astype(np.uint8)) & 1
    return bits.astype(bool).all(axis=1)


# Multipliers of the blocked filter's k in-block hashes, one odd 64-bit constant per hash,
# derived from BLAKE2b so that they are fixed and unrelated to each other.
_MULTIPLIERS = [int.from_bytes(hashlib.blake2b(b"block-%d" % i, digest_size=8).digest(),
                               "little") | 1 for i in range(32)]


class BlockedBloomFilter(BloomFilter):
    """A Bloom filter whose k bits for a key all fall in one block of 512 bits, a 64-byte cache
    line (Putze, Sanders and Singler's blocked Bloom filter): a lookup touches one line of
    memory instead of up to k, for a somewhat higher false-positive rate, since blocks fill
    unevenly. m is rounded up to whole blocks; h1 picks the block and the top 9 bits of h2·c_i
    (multiply-shift hashing, a fixed odd c_i per i) the i-th bit inside it.
    """

    BLOCK_BITS = 512

    def __init__(self, m: int, k: int) -> None:
        super().__init__(max(1, math.ceil(m / self.BLOCK_BITS)) * self.BLOCK_BITS, k)
        self.blocks = self.m // self.BLOCK_BITS

    def positions(self, key: Key) -> list[int]:
        h1, h2 = key_hashes(key)
        base = (h1 % self.blocks) * self.BLOCK_BITS
        return [base + (((h2 * c) & 0xFFFF_FFFF_FFFF_FFFF) >> 55) for c in _MULTIPLIERS[:self.k]]

    def positions_many(self, hashes: np.ndarray) -> np.ndarray:
        base = (hashes[:, 0] % np.uint64(self.blocks)) * np.uint64(self.BLOCK_BITS)
        multipliers = np.array(_MULTIPLIERS[:self.k], dtype=np.uint64)
        inside = (hashes[:, 1][:, None] * multipliers[None, :]) >> np.uint64(55)  # wraps mod 2^64
        return (base[:, None] + inside).astype(np.int64)


# ---------------------------------------------------------------- production-grade (Level 3)


@dataclass(frozen=True)
class BloomConfig:
    """How big a filter is: sized for ``expected_items`` keys at ``false_positive_rate``, or
    with ``bits_per_key`` bits for each (RocksDB's knob; it wins when given), with the best
    number of hashes unless ``hashes`` is set.

    The optimal sizing: m = −n·ln p / (ln 2)² bits (about 1.44·log2(1/p) bits per key) and
    k = (m/n)·ln 2, rounded to the nearest whole number.
    """

    expected_items: int
    false_positive_rate: float = 0.01
    bits_per_key: float | None = None
    hashes: int | None = None

    def __post_init__(self) -> None:
        name = "BloomConfig."
        check_int(name + "expected_items", self.expected_items, low=1)
        check_range(name + "false_positive_rate", self.false_positive_rate, 0.0, 1.0,
                    low_open=True, high_open=True)
        if self.bits_per_key is not None:
            check_range(name + "bits_per_key", self.bits_per_key, 0.0, 64.0, low_open=True)
        if self.hashes is not None:
            check_int(name + "hashes", self.hashes, low=1, high=32)

    @property
    def m(self) -> int:
        """Bits in the filter."""
        if self.bits_per_key is not None:
            return max(1, math.ceil(self.expected_items * self.bits_per_key))
        return max(1, math.ceil(-self.expected_items * math.log(self.false_positive_rate)
                                / LN2**2))

    @property
    def k(self) -> int:
        """Hashes per key."""
        return self.hashes or optimal_hashes(self.m / self.expected_items)


_MAGIC = b"BLM1"  # format 1: BLAKE2b-128 double hashing, bit p in byte p // 8 at bit p % 8
_HEADER = struct.Struct("<4sQHQ")  # magic, m, k, n
_CRC = struct.Struct("<I")


class ProductionBloomFilter(BloomFilter):
    """The Level 2 filter, sized from a validated `BloomConfig`, safe to share between threads,
    serialisable, mergeable and measured.

    Writers take a lock (setting a bit is a read-modify-write of a byte, and two threads that
    interleave could lose one's bit: a false negative later). Readers take none: bits only ever
    go from 0 to 1, so a reader sees a key either fully added or not yet. Adding more keys than
    ``expected_items`` logs one warning and counts ``over_capacity``: the false-positive rate
    climbs past its target, and ``estimated_fpr`` (fill_ratio ** k) shows by how much.
    """

    def __init__(self, config: BloomConfig, name: str = "filter") -> None:
        super().__init__(config.m, config.k)
        self.config, self.name = config, name
        self._lock = threading.Lock()
        self._warned = False
        self.metrics = Instruments("bloom_filter", "Bloom filter operations")
        self.batch_seconds = self.metrics.histogram(
            "batch_seconds", "Time to add or query one batch of keys",
            buckets=(1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0))
        self._fill = Gauge("bloom_filter_fill_ratio", "Share of the filter's bits set",
                           registry=self.metrics.registry)
        self._fill.set_function(self.fill_ratio)

    @property
    def estimated_fpr(self) -> float:
        """The false-positive rate of this filter as it is now, from the bits it has set."""
        return self.fill_ratio() ** self.k

    def add(self, key: Key) -> None:
        positions = self.positions(key)
        with self._lock:
            for p in positions:
                self.array[p >> 3] |= 1 << (p & 7)
            self.n += 1
        self._added(1)

    def __contains__(self, key: Key) -> bool:
        found = super().__contains__(key)
        self.metrics.count("maybe" if found else "definitely_not")
        return found

    def add_many(self, keys: Iterable[Key]) -> None:
        """Add a batch of keys under one lock (building the filter of a new run)."""
        start = time.perf_counter()
        hashes = hash_matrix(keys)
        with self._lock:
            add_hashes(self, hashes)
        self.batch_seconds.observe(time.perf_counter() - start)
        self._added(len(hashes))

    def contains_many(self, keys: Iterable[Key]) -> np.ndarray:
        """``key in self`` for a batch of keys, as a bool array."""
        start = time.perf_counter()
        found = contains_hashes(self, hash_matrix(keys))
        self.batch_seconds.observe(time.perf_counter() - start)
        self.metrics.count("maybe", int(found.sum()))
        self.metrics.count("definitely_not", int((~found).sum()))
        return found

    def _added(self, count: int) -> None:
        self.metrics.count("adds", count)
        if self.n > self.config.expected_items and not self._warned:
            self._warned = True
            self.metrics.count("over_capacity")
            log.warning("bloom filter %s holds %d keys, sized for %d: false-positive rate now "
                        "about %.2g (target %.2g)", self.name, self.n, self.config.expected_items,
                        self.estimated_fpr, self.config.false_positive_rate)

    def union(self, other: ProductionBloomFilter) -> ProductionBloomFilter:
        """A filter of the keys of both (bitwise OR); both must have the same m and k."""
        if (self.m, self.k) != (other.m, other.k):
            raise ValueError(f"union needs filters of the same shape (got m={self.m}, k={self.k} "
                             f"and m={other.m}, k={other.k})")
        merged = ProductionBloomFilter(self.config, f"{self.name}|{other.name}")
        merged.array = bytearray(a | b for a, b in zip(self.array, other.array, strict=True))
        merged.n = self.n + other.n  # an upper bound: keys in both count twice
        return merged

    def to_bytes(self) -> bytes:
        """Header (format, m, k, n), the bit array, and a CRC-32 of both."""
        body = _HEADER.pack(_MAGIC, self.m, self.k, self.n) + bytes(self.array)
        return body + _CRC.pack(zlib.crc32(body))

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "filter") -> ProductionBloomFilter:
        """The filter `to_bytes` wrote; a ``ValueError`` if the bytes are not one, or corrupt."""
        if len(data) < _HEADER.size + _CRC.size or data[:4] != _MAGIC:
            raise ValueError(f"bloom filter bytes must start with {_MAGIC!r} (got {data[:4]!r}, "
                             f"{len(data)} bytes)")
        body, (stored,) = data[:-_CRC.size], _CRC.unpack(data[-_CRC.size:])
        if zlib.crc32(body) != stored:
            raise ValueError(f"bloom filter bytes are corrupt: CRC-32 {zlib.crc32(body):#010x}, "
                             f"stored {stored:#010x}")
        _, m, k, n = _HEADER.unpack(body[:_HEADER.size])
        if len(body) - _HEADER.size != (m + 7) // 8:
            raise ValueError(f"bloom filter bytes hold {len(body) - _HEADER.size} bytes of bits, "
                             f"m={m} needs {(m + 7) // 8}")
        items = max(n, 1)
        filter_ = cls(BloomConfig(items, bits_per_key=min(m / items, 64.0), hashes=k), name)
        filter_.m, filter_.array, filter_.n = m, bytearray(body[_HEADER.size:]), n
        return filter_


# ---------------------------------------------------------------- the real part: runs on disk

_RUN_MAGIC = b"RUN1"
_FOOTER = struct.Struct("<QIQI4s")  # index offset, length; filter offset, length; magic
_RECORD = struct.Struct("<HI")  # key length, value length
_ENTRY = struct.Struct("<QI")  # a block's offset and length, the value of an index record


def _pack_records(records: Iterable[tuple[bytes, bytes]]) -> bytes:
    return b"".join(_RECORD.pack(len(k), len(v)) + k + v for k, v in records)


def _unpack_records(data: bytes) -> Iterable[tuple[bytes, bytes]]:
    at = 0
    while at < len(data):
        klen, vlen = _RECORD.unpack_from(data, at)
        at += _RECORD.size
        yield data[at:at + klen], data[at + klen:at + klen + vlen]
        at += klen + vlen


class SortedRun:
    """One immutable sorted run on disk (an SSTable): data blocks of sorted records, an index of
    each block's first key (closed by the run's last key), the run's Bloom filter, and a fixed
    footer that points at both.

    Opening it reads the footer, the index and the filter into memory; a lookup then costs one
    block read (``os.pread``) at most, and none when the filter says "definitely not". A filter
    that fails its checksum is dropped with a warning: the run is still read correctly, every
    lookup in its key range then reading a block.
    """

    def __init__(self, path: Path, index: list[tuple[bytes, bytes]],
                 bloom: ProductionBloomFilter | None) -> None:
        self.path, self.bloom = path, bloom
        self.first_keys = [first for first, _ in index[:-1]]
        self.blocks = [_ENTRY.unpack(entry) for _, entry in index[:-1]]
        self.last_key = index[-1][0] if index else b""
        self.fd = os.open(path, os.O_RDONLY)

    @classmethod
    def write(cls, path: Path, items: Mapping[Key, bytes], bits_per_key: float | None,
              block_size: int = 4096) -> SortedRun:
        """Write ``items`` sorted by key, in blocks of about ``block_size`` bytes; with
        ``bits_per_key`` None the run has no filter."""
        records = sorted((key_bytes(k), bytes(v)) for k, v in items.items())
        data, index, block, size = bytearray(), [], [], 0
        for record in records:
            block.append(record)
            size += _RECORD.size + len(record[0]) + len(record[1])
            if size >= block_size:
                index.append((block[0][0], len(data)))
                data += _pack_records(block)
                block, size = [], 0
        if block:
            index.append((block[0][0], len(data)))
            data += _pack_records(block)
        ends = [offset for _, offset in index[1:]] + [len(data)]
        entries = [(first, _ENTRY.pack(offset, end - offset))
                   for (first, offset), end in zip(index, ends, strict=True)]
        last = [(records[-1][0], b"")] if records else []  # the run's last key closes the index
        index_bytes = _pack_records(entries + last)
        filter_bytes = b""
        if bits_per_key is not None:
            bloom = ProductionBloomFilter(BloomConfig(max(len(records), 1),
                                                      bits_per_key=bits_per_key), path.name)
            bloom.add_many(k for k, _ in records)
            filter_bytes = bloom.to_bytes()
        footer = _FOOTER.pack(len(data), len(index_bytes), len(data) + len(index_bytes),
                              len(filter_bytes), _RUN_MAGIC)
        path.write_bytes(bytes(data) + index_bytes + filter_bytes + footer)
        return cls.open(path)

    @classmethod
    def open(cls, path: Path) -> SortedRun:
        raw = Path(path).read_bytes()
        index_at, index_len, filter_at, filter_len, magic = _FOOTER.unpack(raw[-_FOOTER.size:])
        if magic != _RUN_MAGIC:
            raise ValueError(f"{path} is not a sorted run (footer magic {magic!r})")
        index = list(_unpack_records(raw[index_at:index_at + index_len]))
        bloom = None
        if filter_len:
            try:
                bloom = ProductionBloomFilter.from_bytes(raw[filter_at:filter_at + filter_len],
                                                         Path(path).name)
            except ValueError as error:
                log.warning("run %s: filter dropped, every lookup will read a block (%s)",
                            Path(path).name, error)
        return cls(Path(path), index, bloom)

    def block_for(self, key: bytes) -> int | None:
        """The block that would hold ``key``, or None when it is outside the run's key range."""
        if key > self.last_key:
            return None
        i = bisect.bisect_right(self.first_keys, key) - 1
        return i if i >= 0 else None

    def read_block(self, block: int) -> bytes:
        offset, length = self.blocks[block]
        return os.pread(self.fd, length, offset)

    def close(self) -> None:
        os.close(self.fd)


class LSMStore:
    """A log-structured store's read path: sorted runs, newest first, each with its filter.

    ``flush(items)`` writes a new run; ``get(key)`` asks the runs from newest to oldest and
    stops at the first that holds the key. A run is read only when the key falls in its key
    range and its filter says "maybe"; a ``block_cache`` (anything with ``get(key, default)``
    and ``put(key, value)``, such as an ``LRUCache``) answers repeated blocks from memory.
    Metrics: ``gets``, ``found``, ``filter_skips`` (runs a filter ruled out), ``block_reads``
    (``os.pread`` calls), ``wasted_reads`` (blocks read that did not hold the key: the filter's
    false positives, or every miss without a filter) and ``cache_hits``.
    """

    def __init__(self, directory: str | os.PathLike, bits_per_key: float | None = 10.0,
                 block_size: int = 4096, block_cache: Any = None) -> None:
        if bits_per_key is not None:
            check_range("bits_per_key", bits_per_key, 0.0, 64.0, low_open=True)
        self.directory = Path(directory)
        self.bits_per_key = bits_per_key
        self.block_size = check_int("block_size", block_size, low=64)
        self.block_cache = block_cache
        self.runs: list[SortedRun] = []  # newest first
        self.metrics = Instruments("lsm_store", "Point reads through the store")
        self._lock = threading.Lock()

    def flush(self, items: Mapping[Key, bytes]) -> SortedRun:
        with self._lock:
            path = self.directory / f"run-{len(self.runs) + 1:05d}.sst"
            run = SortedRun.write(path, items, self.bits_per_key, self.block_size)
            self.runs.insert(0, run)
        return run

    def get(self, key: Key) -> bytes | None:
        wanted = key_bytes(key)
        self.metrics.count("gets")
        for run in list(self.runs):
            block = run.block_for(wanted)
            if block is None:
                continue
            if run.bloom is not None and wanted not in run.bloom:
                self.metrics.count("filter_skips")
                continue
            for k, v in _unpack_records(self._block(run, block)):
                if k >= wanted:  # records are sorted: the key is here or nowhere in the run
                    if k == wanted:
                        self.metrics.count("found")
                        return v
                    break
            self.metrics.count("wasted_reads")
        return None

    def _block(self, run: SortedRun, block: int) -> bytes:
        cache_key = (run.path.name, block)
        if self.block_cache is not None:
            cached = self.block_cache.get(cache_key, None)
            if cached is not None:
                self.metrics.count("cache_hits")
                return cached
        data = run.read_block(block)
        self.metrics.count("block_reads")
        if self.block_cache is not None:
            self.block_cache.put(cache_key, data)
        return data

    def close(self) -> None:
        for run in self.runs:
            run.close()
        self.runs.clear()
