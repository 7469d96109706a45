"""Consistent hashing: put keys and nodes on one circle, so a change of nodes moves few keys.

Picture a round table with numbered seats. Each guest (a node) sits at a few seats picked from
their name, and each dish (a key) is put down at a seat picked from its name; a dish belongs to
the first guest sitting clockwise from it. When a guest arrives, only the dishes just before
their seats change hands; every other guest keeps their plate. The more seats each guest holds
(*virtual nodes*), the fairer the shares.

`HashRing` is the lesson's Level 2 ring (the point layout and the MD5 hash of uhashring's
default mode, so the two agree key by key); `KetamaRing` is the ketama layout (four points per
MD5 digest, uhashring's ``hash_fn="ketama"``); `ProductionHashRing` hardens the ring for Level 3
(validated `RingConfig`, lock-free lookups, serialised changes, ``logging``, metrics).
`RendezvousHash` and `JumpHash` are the two alternatives of Level 4. A hash ring has no notion of
time, so nothing here takes a clock. Nothing here imports from ``simulations``.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from patterns.checks import check_choice, check_int
from patterns.metrics import Instruments

Hash = Callable[[str], int]
log = logging.getLogger(__name__)


def md5_hash(key: str) -> int:
    """The 128-bit MD5 digest of ``key`` as an integer: uhashring's default key hash."""
    return int(hashlib.md5(key.encode("utf-8")).hexdigest(), 16)


def ketama_points(name: str) -> list[int]:
    """The four 32-bit ketama points of one MD5 digest (bytes 4i..4i+3, little-endian)."""
    digest = hashlib.md5(name.encode("utf-8")).digest()
    return [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]


def ketama_hash(key: str) -> int:
    """A key's position on a ketama ring: the first of its four ketama points (32 bits)."""
    return ketama_points(key)[0]


def blake2b_hash(seed: int = 0) -> Hash:
    """A 64-bit keyed BLAKE2b hash: a different, fixed hash function for every ``seed``
    (a study draws one per run; Python's own ``hash()`` of a string changes per process)."""
    salt = check_int("seed", seed, low=0).to_bytes(16, "big")

    def hash64(key: str) -> int:
        return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8,
                                              key=salt).digest(), "big")

    return hash64


class EmptyRingError(LookupError):
    """A lookup on a ring that has no nodes."""


class HashRing:
    """Nodes at ``vnodes × weight`` points each; a key goes to the first point clockwise.

    ``ring`` is the sorted list of ``(point, node)`` pairs (read it, do not change it). Points
    are named ``"<node>-<i>"`` and hashed with ``hash_fn``, as uhashring does; if two points
    collide, the node added last owns the point. Every change builds a new list and swaps it in
    with one assignment, so a lookup sees the ring before or after a change, never half of one.
    """

    def __init__(self, nodes: Iterable[str] = (), vnodes: int = 160,
                 hash_fn: Hash = md5_hash) -> None:
        self.vnodes, self.hash_fn = vnodes, hash_fn
        self.weights: dict[str, int] = {}
        self.ring: list[tuple[int, str]] = []
        self._place(dict.fromkeys(nodes, 1))

    def points_of(self, node: str, weight: int) -> list[int]:
        return [self.hash_fn(f"{node}-{i}") for i in range(self.vnodes * weight)]

    def add(self, node: str, weight: int = 1) -> None:
        """Put ``node`` on the ring (again, with a new weight, if it is there already)."""
        if node in self.weights:
            self.remove(node)
        self._place({node: weight})

    def _place(self, weights: dict[str, int]) -> None:
        self.weights.update(weights)
        owner = dict(self.ring)  # point -> node, in ring order; a collision keeps its place
        for node, weight in weights.items():
            owner.update(dict.fromkeys(self.points_of(node, weight), node))
        self.ring = sorted(owner.items())  # one sorted run plus the new points: a quick merge

    def remove(self, node: str) -> None:
        """Take ``node`` off the ring: its keys go to the next points clockwise."""
        del self.weights[node]
        self.ring = [pair for pair in self.ring if pair[1] != node]

    def node_at(self, position: int) -> str:
        """The owner of the first point after ``position``, wrapping past the top."""
        ring = self.ring
        if not ring:
            raise EmptyRingError("the ring has no nodes: add one before looking up keys")
        return ring[bisect.bisect(ring, position, key=_point) % len(ring)][1]

    def node_for(self, key: str) -> str:
        return self.node_at(self.hash_fn(str(key)))

    def preference_list(self, key: str, n: int) -> list[str]:
        """The first ``n`` distinct nodes clockwise from ``key``: where Dynamo keeps a key's
        n replicas, and the order in which the key falls back when nodes are down."""
        ring = self.ring
        start = bisect.bisect(ring, self.hash_fn(str(key)), key=_point)
        found: dict[str, None] = {}
        for k in range(len(ring)):
            found.setdefault(ring[(start + k) % len(ring)][1])
            if len(found) == n:
                break
        return list(found)


def _point(pair: tuple[int, str]) -> int:
    return pair[0]


class KetamaRing(HashRing):
    """The ketama layout (libketama, uhashring's ``hash_fn="ketama"``): each of a node's
    ``vnodes × weight`` names gives four 32-bit points, and keys hash with `ketama_hash`.
    uhashring scales a node's count by its weight over the mean weight; with equal weights
    (all 1) the two agree key by key."""

    def __init__(self, nodes: Iterable[str] = (), vnodes: int = 40) -> None:
        super().__init__(nodes, vnodes, ketama_hash)

    def points_of(self, node: str, weight: int) -> list[int]:
        return [p for i in range(self.vnodes * weight) for p in ketama_points(f"{node}-{i}")]


# ---------------------------------------------------------------- production-grade (Level 3)

HASHES: dict[str, tuple[Hash, int]] = {"md5": (md5_hash, 128), "blake2b": (blake2b_hash(0), 64)}
"""Key hashes a production ring may use, with their width in bits."""


@dataclass(frozen=True)
class RingConfig:
    """A ring's settings: 160 points per unit of weight (uhashring's default), MD5 keys."""

    vnodes: int = 160
    hash: str = "md5"
    max_weight: int = 64

    def __post_init__(self) -> None:
        check_int("RingConfig.vnodes", self.vnodes, low=1, high=100_000)
        check_choice("RingConfig.hash", self.hash, HASHES)
        check_int("RingConfig.max_weight", self.max_weight, low=1)


class ProductionHashRing(HashRing):
    """The Level 2 ring hardened: validated config and names, thread-safe, logged, measured.

    Lookups take no lock: each membership change builds a new ``ring`` list and swaps it in
    with one assignment (the Level 2 ring already works that way), so a lookup reads the ring
    before or after a change. Changes are serialised by a lock, and logged and measured after
    it is released: a join logs the share of the keys the new node takes, a leave (a WARNING:
    the node's keys now land on its successors) how many nodes take them over and the largest
    gain. Counters ``joins``, ``leaves`` and ``lookups``; a histogram of the share of the hash
    space that changed owner per change.
    """

    def __init__(self, name: str, config: RingConfig | None = None) -> None:
        self.name, self.config = name, config or RingConfig()
        hash_fn, bits = HASHES[self.config.hash]
        super().__init__((), self.config.vnodes, hash_fn)
        self.space = 1 << bits
        self.metrics = Instruments("hash_ring", "Ring membership changes and lookups")
        self.moved = self.metrics.histogram(
            "moved_share", "Share of the hash space that changed owner per membership change",
            buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0))
        self._lock = threading.Lock()

    def add(self, node: str, weight: int = 1) -> None:
        if not isinstance(node, str) or not node:
            raise ValueError(f"node must be a non-empty string (got {node!r})")
        check_int("weight", weight, low=1, high=self.config.max_weight)
        with self._lock:
            if node in self.weights:
                raise ValueError(f"node {node!r} is already on ring {self.name!r}: remove it "
                                 "first to change its weight")
            super().add(node, weight)
            share = self.ownership()[node]
        self.metrics.count("joins")
        self.moved.observe(share)
        log.info("ring %s: %s joined (weight %d, %d points) and takes %.1f %% of the keys",
                 self.name, node, weight, self.vnodes * weight, 100 * share)

    def remove(self, node: str) -> None:
        with self._lock:
            check_choice("node", node, self.weights)
            before = self.ownership()
            super().remove(node)
            after = self.ownership()
        gains = {n: after[n] - before[n] for n in after if after[n] > before[n]}
        self.metrics.count("leaves")
        self.moved.observe(before[node])
        top = max(gains, key=gains.get) if gains else "nobody"
        log.warning("ring %s: %s left; its %.1f %% of the keys now go to %d node(s), the most "
                    "(+%.1f %%) to %s", self.name, node, 100 * before[node], len(gains),
                    100 * gains.get(top, 0.0), top)

    def node_at(self, position: int) -> str:
        if not self.ring:
            raise EmptyRingError(f"ring {self.name!r} has no nodes: add one before looking up "
                                 "keys")
        self.metrics.count("lookups")
        return super().node_at(position)

    def ownership(self) -> dict[str, float]:
        """Each node's share of the hash space: the arcs that end at its points."""
        ring, shares = self.ring, dict.fromkeys(self.weights, 0.0)
        for i, (point, node) in enumerate(ring):
            shares[node] += ((point - ring[i - 1][0]) % self.space or self.space) / self.space
        return shares


# ---------------------------------------------------------------- alternatives (Level 4)


class RendezvousHash:
    """Highest random weight (Thaler & Ravishankar, 1998): every node bids ``hash(node, key)``
    and the highest bid wins. No ring to store; a lookup hashes the key once per node."""

    def __init__(self, nodes: Iterable[str] = (), hash_fn: Hash = md5_hash) -> None:
        self.nodes, self.hash_fn = list(nodes), hash_fn

    def add(self, node: str) -> None:
        self.nodes.append(node)

    def remove(self, node: str) -> None:
        self.nodes.remove(node)

    def node_for(self, key: str) -> str:
        if not self.nodes:
            raise EmptyRingError("no nodes: add one before looking up keys")
        return max(self.nodes, key=lambda node: self.hash_fn(f"{node}/{key}"))


def jump_hash(key: int, buckets: int) -> int:
    """Jump consistent hash (Lamping & Veach, 2014): a 64-bit key to a bucket in [0, buckets).

    The paper's five lines, with Python ints held to 64 bits: a key jumps forward from bucket
    to bucket on a pseudo-random walk seeded by itself, and stops at the last jump below
    ``buckets``; growing from n to n + 1 buckets moves a key only to the new bucket.
    """
    check_int("buckets", buckets, low=1)
    key &= 0xFFFF_FFFF_FFFF_FFFF
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & 0xFFFF_FFFF_FFFF_FFFF
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


class JumpHash:
    """Nodes as numbered buckets of `jump_hash`: no memory beyond the list, O(log n) lookups,
    but only the last node can leave (the buckets must stay numbered 0 .. n - 1)."""

    def __init__(self, nodes: Iterable[str] = (), hash_fn: Hash = md5_hash) -> None:
        self.nodes, self.hash_fn = list(nodes), hash_fn

    def add(self, node: str) -> None:
        self.nodes.append(node)

    def remove(self, node: str) -> None:
        if not self.nodes or node != self.nodes[-1]:
            raise ValueError(f"node must be the last bucket, {self.nodes[-1:]!r}, for jump "
                             f"hash (got {node!r})")
        self.nodes.pop()

    def node_for(self, key: str) -> str:
        if not self.nodes:
            raise EmptyRingError("no nodes: add one before looking up keys")
        return self.nodes[jump_hash(self.hash_fn(str(key)), len(self.nodes))]
