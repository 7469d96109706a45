"""Gossip and anti-entropy: replicas agree by comparing notes with random peers, over and over.

Picture an office where news travels at the coffee machine. Every few minutes each person chats
with someone picked at random, and the two swap whatever one knows and the other does not.
Nobody keeps a list of who has heard what, nobody is in charge, and someone back from a day off
catches up at the first chat. Anti-entropy is that chat made exact: two replicas compare a
summary of their data, here a Merkle tree (a tree of hashes over buckets of keys), walk down
only the branches whose hashes differ, and swap the entries of the buckets that differ.

- ``leaf_hash``, ``node_hash``, ``merkle_tree_hash``: RFC 6962's hashing (SHA-256 with a 0x00
  prefix for leaves and 0x01 for inner nodes, so a leaf can never pass for an inner node).
- ``MerkleTree``: a fixed shape of ``2**depth`` buckets; a key's bucket comes from SHA-256 of
  the key, so every replica puts every key in the same bucket. ``differing_buckets`` walks two
  trees level by level; ``merkle_diff`` compares two trees in one process.
- ``GossipNode`` (Level 2): a replica of a versioned key-value map that, every ``period_s`` of
  its injectable ``clock``, reconciles with ``fanout`` random peers by push, pull or push-pull.
- ``GossipConfig``, ``ProductionGossipNode`` (Level 3): validated settings, a lock, logging,
  counters and histograms, and every message framed with a CRC-32 so a corrupted one is refused
  instead of spread.

Nothing here imports from ``simulations``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from patterns.checks import check_choice, check_int, check_positive
from patterns.metrics import Instruments

__all__ = [
    "MODES",
    "CorruptMessageError",
    "Exchange",
    "GossipConfig",
    "GossipNode",
    "MerkleTree",
    "ProductionGossipNode",
    "bucket_of",
    "differing_buckets",
    "leaf_hash",
    "merkle_diff",
    "merkle_tree_hash",
    "node_hash",
]

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Version = tuple[int, str]  # (Lamport counter, writer's name): totally ordered, no clocks needed
Entry = tuple[str, Version, Any]  # (key, version, value); a value of None is a tombstone
MODES = ("push", "pull", "push-pull")

EMPTY_ROOT = hashlib.sha256(b"").digest()  # RFC 6962: the hash of an empty list


# ---------------------------------------------------------------- Merkle trees

def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 §2.1: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 §2.1: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_tree_hash(entries: Sequence[bytes]) -> bytes:
    """RFC 6962's Merkle Tree Hash of a list: split at the largest power of two below its length."""
    n = len(entries)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hash(entries[0])
    k = 1 << ((n - 1).bit_length() - 1)
    return node_hash(merkle_tree_hash(entries[:k]), merkle_tree_hash(entries[k:]))


def bucket_of(key: str, depth: int) -> int:
    """The bucket (0 ... 2**depth - 1) of ``key``: the top ``depth`` bits of SHA-256(key)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") >> (64 - depth)


class MerkleTree:
    """Hashes over ``2**depth`` buckets of (key → version): level 0 is the root, level
    ``depth`` the leaves. Equal roots mean equal contents (up to a SHA-256 collision)."""

    def __init__(self, depth: int = 10) -> None:
        self.depth = check_int("MerkleTree.depth", depth, 0, 24)
        self.buckets: list[dict[str, Version]] = [{} for _ in range(1 << depth)]
        self.nodes: list[list[bytes]] = []
        h = leaf_hash(b"")
        for level in range(depth, -1, -1):
            self.nodes.insert(0, [h] * (1 << level))
            h = node_hash(h, h)

    def leaf_data(self, bucket: int) -> bytes:
        """What a leaf hashes: its entries sorted, each as length-prefixed key, counter and
        writer (so no two different buckets can give the same bytes, whatever the keys)."""
        entries = self.buckets[bucket].items()
        lines = sorted(f"{len(k)}:{k}{c}:{len(w)}:{w}" for k, (c, w) in entries)
        return "\n".join(lines).encode()

    def set(self, key: str, version: Version) -> None:
        self.update([(key, version)])

    def discard(self, key: str) -> None:
        bucket = bucket_of(key, self.depth)
        if self.buckets[bucket].pop(key, None) is not None:
            self._rehash({bucket})

    def update(self, items: Iterable[tuple[str, Version]]) -> None:
        """Set many keys, rehashing each changed leaf and inner node once."""
        dirty = set()
        for key, version in items:
            bucket = bucket_of(key, self.depth)
            self.buckets[bucket][key] = version
            dirty.add(bucket)
        self._rehash(dirty)

    def _rehash(self, dirty: set[int]) -> None:
        for bucket in dirty:
            self.nodes[self.depth][bucket] = leaf_hash(self.leaf_data(bucket))
        for level in range(self.depth - 1, -1, -1):
            dirty = {i // 2 for i in dirty}
            below = self.nodes[level + 1]
            for i in dirty:
                self.nodes[level][i] = node_hash(below[2 * i], below[2 * i + 1])

    def hash_at(self, level: int, index: int) -> bytes:
        return self.nodes[level][index]

    @property
    def root(self) -> bytes:
        return self.nodes[0][0]

    def copy(self) -> MerkleTree:
        twin = MerkleTree.__new__(MerkleTree)
        twin.depth = self.depth
        twin.buckets = [dict(b) for b in self.buckets]
        twin.nodes = [list(level) for level in self.nodes]
        return twin


def differing_buckets(tree: MerkleTree,
                      their_hashes: Callable[[int, list[int]], Sequence[bytes]],
                      ) -> tuple[list[int], int]:
    """Walk down from the root, asking ``their_hashes(level, indices)`` only for the children
    of nodes that differ. Returns (the buckets that differ, how many hashes were compared)."""
    frontier, compared = [0], 0
    for level in range(tree.depth + 1):
        theirs = their_hashes(level, frontier)
        compared += len(frontier)
        differing = [i for i, h in zip(frontier, theirs, strict=True)
                     if h != tree.hash_at(level, i)]
        if not differing or level == tree.depth:
            return differing, compared
        frontier = [child for i in differing for child in (2 * i, 2 * i + 1)]
    return [], compared  # pragma: no cover - the loop always returns at the leaf level


def merkle_diff(a: MerkleTree, b: MerkleTree) -> tuple[list[int], int]:
    """``differing_buckets`` between two trees in one process (same depth required)."""
    if a.depth != b.depth:
        raise ValueError(f"merkle_diff needs trees of the same depth (got {a.depth} and "
                         f"{b.depth}): with different bucket counts every bucket looks different")
    return differing_buckets(a, lambda level, index: [b.hash_at(level, i) for i in index])


# ---------------------------------------------------------------- the gossip node (Level 2)

class Exchange(NamedTuple):
    """What one anti-entropy exchange did."""

    peer: str
    buckets: int  # buckets found to differ
    compared: int  # tree hashes compared
    sent: int  # entries sent to the peer
    received: int  # entries taken from the peer (newer than ours)


class GossipNode:
    """A replica of a key-value map that reconciles with ``fanout`` random peers every
    ``period_s``: push gives them our entries of the buckets that differ, pull takes theirs,
    push-pull does both. Newer versions win; ``delete`` writes a tombstone (value None)."""

    def __init__(self, name: str, *, fanout: int = 1, period_s: float = 1.0,
                 mode: str = "push-pull", depth: int = 8, clock: Clock = time.monotonic,
                 rng: random.Random | None = None) -> None:
        self.name, self.fanout, self.period_s, self.mode = name, fanout, period_s, mode
        self.clock = clock
        self.rng = rng or random.Random(zlib.crc32(name.encode()))
        self.store: dict[str, tuple[Version, Any]] = {}
        self.tree = MerkleTree(depth)
        self.peers: list[Any] = []  # other nodes (Level 2) or their names (Level 3)
        self.counter = 0  # Lamport clock: above every version seen
        self.next_round = clock() + period_s

    def put(self, key: str, value: Any) -> Version:
        self.counter += 1
        version = (self.counter, self.name)
        self.store[key] = (version, value)
        self.tree.set(key, version)
        return version

    def delete(self, key: str) -> Version:
        return self.put(key, None)

    def get(self, key: str) -> Any:
        return self.store.get(key, (None, None))[1]

    def merge(self, entries: Iterable[Entry]) -> int:
        """Keep each entry that is newer than ours; return how many were kept."""
        newer = [(k, tuple(v), x) for k, v, x in entries
                 if k not in self.store or tuple(v) > self.store[k][0]]
        for key, version, value in newer:
            self.store[key] = (version, value)
            self.counter = max(self.counter, version[0])
        self.tree.update((key, version) for key, version, _ in newer)
        return len(newer)

    def entries_in(self, buckets: Iterable[int]) -> list[Entry]:
        return [(k, v, self.store[k][1]) for b in buckets for k, v in self.tree.buckets[b].items()]

    def tick(self) -> list[Exchange]:
        """If a round is due, reconcile with ``fanout`` random peers."""
        if self.clock() < self.next_round:
            return []
        self.next_round = self.clock() + self.period_s
        chosen = self.rng.sample(self.peers, min(self.fanout, len(self.peers)))
        return [self.sync(peer) for peer in chosen]

    def sync(self, peer: Any) -> Exchange:
        """One exchange: find the differing buckets level by level, then swap their entries."""
        def theirs(level: int, index: list[int]) -> Sequence[bytes]:
            return self._ask(peer, {"op": "hashes", "level": level, "index": index})["hashes"]

        buckets, compared = differing_buckets(self._snapshot(), theirs)
        sent = self.entries_in(buckets) if buckets and self.mode != "pull" else []
        received = 0
        if buckets:
            reply = self._ask(peer, {"op": "entries", "buckets": buckets, "entries": sent,
                                     "want": self.mode != "push"})
            received = self.merge(reply["entries"])
        return Exchange(getattr(peer, "name", str(peer)), len(buckets), compared, len(sent),
                        received)

    def handle(self, message: dict) -> dict:
        """Answer a peer: the hashes it asks for, or our entries of some buckets (taken before
        merging the entries it pushed, so they are not echoed back)."""
        if message["op"] == "hashes":
            return {"hashes": [self.tree.hash_at(message["level"], i) for i in message["index"]]}
        reply = self.entries_in(message["buckets"]) if message["want"] else []
        self.merge(message["entries"])
        return {"entries": reply}

    def _snapshot(self) -> MerkleTree:
        return self.tree

    def _ask(self, peer: Any, message: dict) -> dict:
        return peer.handle(message)


# ---------------------------------------------------------------- production-grade (Level 3)

class CorruptMessageError(ValueError):
    """A gossip message whose checksum does not match its contents."""


@dataclass(frozen=True)
class GossipConfig:
    """A gossip node's settings. The defaults follow Cassandra's gossiper (a round every
    second) with one peer per round and push-pull."""

    fanout: int = 1
    period_s: float = 1.0
    mode: str = "push-pull"
    depth: int = 10

    def __post_init__(self) -> None:
        check_int("GossipConfig.fanout", self.fanout, 1, 64)
        check_positive("GossipConfig.period_s", self.period_s)
        check_choice("GossipConfig.mode", self.mode, MODES)
        check_int("GossipConfig.depth", self.depth, 0, 24)


Transport = Callable[[str, bytes], bytes]  # (peer name, request frame) -> reply frame


def frame(message: dict) -> bytes:
    """A message as bytes: a CRC-32 of the JSON payload, then the payload (hashes as hex)."""
    body = dict(message)
    if "hashes" in body:
        body["hashes"] = [h.hex() for h in body["hashes"]]
    payload = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    return zlib.crc32(payload).to_bytes(4, "big") + payload


def unframe(data: bytes) -> dict:
    """The message in a frame, or `CorruptMessageError` if its checksum does not match."""
    if len(data) < 4 or zlib.crc32(data[4:]) != int.from_bytes(data[:4], "big"):
        raise CorruptMessageError(f"gossip frame of {len(data)} bytes fails its CRC-32")
    try:
        message = json.loads(data[4:])
    except ValueError as error:
        raise CorruptMessageError(f"gossip frame is not JSON: {error}") from None
    if "hashes" in message:
        message["hashes"] = [bytes.fromhex(h) for h in message["hashes"]]
    return message


class ProductionGossipNode(GossipNode):
    """The Level 2 node hardened: validated settings, a lock around the store and tree (a
    network thread merges while application threads write), messages framed with a CRC-32 and
    refused when corrupt (S3's 2008 outage spread one flipped bit by gossip), failures of one
    exchange logged and counted without stopping the next, and metrics in a registry of its
    own. Peers are names; ``transport(peer, frame)`` carries a request and returns the reply,
    and the peer's side answers with ``handle_frame``. The lock is never held while waiting on
    the network."""

    def __init__(self, name: str, config: GossipConfig | None = None, *,
                 transport: Transport, clock: Clock = time.monotonic,
                 rng: random.Random | None = None) -> None:
        self.config = config or GossipConfig()
        c = self.config
        super().__init__(name, fanout=c.fanout, period_s=c.period_s, mode=c.mode,
                         depth=c.depth, clock=clock, rng=rng)
        self.transport = transport
        self._lock = threading.RLock()
        self.metrics = Instruments("gossip", "Gossip and anti-entropy")
        self.differing = self.metrics.histogram(
            "differing_buckets", "Buckets found to differ per exchange",
            buckets=(0, 1, 2, 4, 8, 16, 64, 256, 1024))
        self.exchange_seconds = self.metrics.histogram("exchange_seconds",
                                                       "Duration of one exchange")

    def put(self, key: str, value: Any) -> Version:
        with self._lock:
            self.metrics.count("puts")
            return super().put(key, value)

    def get(self, key: str) -> Any:
        with self._lock:
            return super().get(key)

    def merge(self, entries: Iterable[Entry]) -> int:
        with self._lock:
            kept = super().merge(entries)
        self.metrics.count("entries_merged", kept)
        return kept

    def entries_in(self, buckets: Iterable[int]) -> list[Entry]:
        with self._lock:
            return super().entries_in(buckets)

    def tick(self) -> list[Exchange]:
        """Run a due round; an exchange that fails (peer unreachable, corrupt reply) is logged
        and counted, and the other peers of the round are still tried."""
        with self._lock:
            if self.clock() < self.next_round:
                return []
            self.next_round = self.clock() + self.period_s
            chosen = self.rng.sample(self.peers, min(self.fanout, len(self.peers)))
        self.metrics.count("rounds")
        done = []
        for peer in chosen:
            start = self.clock()
            try:
                exchange = self.sync(peer)
            except (ConnectionError, TimeoutError, CorruptMessageError) as error:
                self.metrics.count("exchanges_failed")
                log.warning("gossip %s -> %s failed: %s", self.name, peer, error)
                continue
            self.exchange_seconds.observe(self.clock() - start)
            self.differing.observe(exchange.buckets)
            self.metrics.count("exchanges")
            self.metrics.count("hashes_compared", exchange.compared)
            self.metrics.count("entries_sent", exchange.sent)
            if exchange.buckets:
                log.info("gossip %s <-> %s: %d buckets differ, sent %d, took %d", self.name,
                         peer, exchange.buckets, exchange.sent, exchange.received)
            done.append(exchange)
        return done

    def handle_frame(self, data: bytes) -> bytes:
        """Answer a peer's request frame; a corrupt one gets an error reply, never a merge."""
        self.metrics.count("bytes_received", len(data))
        try:
            message = unframe(data)
        except CorruptMessageError as error:
            self.metrics.count("corrupt_refused")
            log.warning("gossip %s refused a request: %s", self.name, error)
            return frame({"error": "corrupt request"})
        with self._lock:
            reply = self.handle(message)
        return frame(reply)

    def _snapshot(self) -> MerkleTree:
        with self._lock:
            return self.tree.copy()

    def _ask(self, peer: Any, message: dict) -> dict:
        request = frame(message)
        self.metrics.count("bytes_sent", len(request))
        reply = self.transport(peer, request)
        self.metrics.count("bytes_received", len(reply))
        try:
            answer = unframe(reply)
        except CorruptMessageError:
            self.metrics.count("corrupt_refused")
            raise
        if "error" in answer:
            raise CorruptMessageError(f"{peer} answered: {answer['error']}")
        return answer
