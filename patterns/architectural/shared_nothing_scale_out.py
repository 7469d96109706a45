"""Shared-nothing scale-out: split the data into partitions, one node owns each, and nodes share
no memory, disk or lock, so adding a node adds its whole capacity.

Picture a post office with N counters. If every clerk must take the one shared stamp book
(contention) and tell every other clerk about each parcel (coherency), a new counter adds less
than a clerk's worth of work, and past some size it slows everyone. Give each counter its own
stamp book and its own postcodes (a partition), and counters never wait for one another.

`PartitionedCluster` is the Level 2 idea: ``node_for(key)`` routes a key to the one node that
owns it (a stable hash modulo N), each node keeps its own dict, and a request that touches keys
of several nodes is counted as *cross-partition* (it is what needs coordination). Time comes
from an injectable ``clock``, so the same class runs in real time and inside a simulation.

`ProductionPartitionedCluster` hardens it for Level 3: a validated `ClusterConfig`, one lock per
partition (never a global one), a node that fails makes only its own partition unavailable
(`PartitionUnavailableError`), ``logging``, and ``prometheus_client`` metrics. `SQLitePartitions`
is a real storage layout: one SQLite file per partition, or one shared file with its single
write lock.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from patterns.checks import check_int
from patterns.metrics import Instruments

Clock = Callable[[], float]
log = logging.getLogger(__name__)


def stable_hash(key: Hashable) -> int:
    """A hash that is the same in every process and run (Python's ``hash`` of str is salted)."""
    return zlib.crc32(repr(key).encode())


class PartitionedCluster:
    """N nodes, each owning the keys whose stable hash is its index modulo N; nothing shared."""

    def __init__(self, nodes: int, clock: Clock = time.monotonic) -> None:
        self.nodes = check_int("nodes", nodes, 1)
        self.clock = clock
        self.partitions: list[dict[Hashable, Any]] = [{} for _ in range(self.nodes)]
        self.served = [0] * self.nodes  # requests each node handled
        self.cross_partition = 0  # multi-key requests that touched more than one node
        self.last_request_at = [float("-inf")] * self.nodes

    def node_for(self, key: Hashable) -> int:
        """The one node that owns ``key``."""
        return stable_hash(key) % self.nodes

    def _serve(self, node: int) -> None:
        self.served[node] += 1
        self.last_request_at[node] = self.clock()

    def put(self, key: Hashable, value: Any) -> int:
        """Store ``key`` on its owner; returns the node that served it."""
        node = self.node_for(key)
        self.partitions[node][key] = value
        self._serve(node)
        return node

    def get(self, key: Hashable, default: Any = None) -> Any:
        node = self.node_for(key)
        self._serve(node)
        return self.partitions[node].get(key, default)

    def touches(self, keys: Iterable[Hashable]) -> list[int]:
        """The nodes a request over ``keys`` must involve, in order."""
        return sorted({self.node_for(k) for k in keys})

    def put_many(self, items: dict[Hashable, Any]) -> list[int]:
        """A multi-key write; one that spans nodes is counted in ``cross_partition``."""
        nodes = self.touches(items)
        if len(nodes) > 1:
            self.cross_partition += 1
        for key, value in items.items():
            self.put(key, value)
        return nodes


class PartitionUnavailableError(RuntimeError):
    """The node that owns this key is down; the other partitions still serve."""


@dataclass(frozen=True)
class ClusterConfig:
    """A production cluster's settings, checked when created."""

    nodes: int = 4
    max_keys_per_node: int = 1_000_000

    def __post_init__(self) -> None:
        check_int("ClusterConfig.nodes", self.nodes, 1)
        check_int("ClusterConfig.max_keys_per_node", self.max_keys_per_node, 1)


class ProductionPartitionedCluster(PartitionedCluster):
    """Thread-safe with one lock per partition; a failed node takes down only its partition."""

    def __init__(self, name: str, config: ClusterConfig, clock: Clock = time.monotonic) -> None:
        super().__init__(config.nodes, clock)
        self.name, self.config = name, config
        self.down: set[int] = set()
        self._locks = [threading.Lock() for _ in range(self.nodes)]
        self._stats = threading.Lock()
        self.metrics = Instruments("partitioned_cluster", "Requests to the partitioned cluster")
        self._seconds = self.metrics.histogram("request_seconds", "Time inside one partition")

    def fail_node(self, node: int) -> None:
        self.down.add(check_int("node", node, 0, self.nodes - 1))
        log.warning("cluster %s: node %d is down; its partition is unavailable", self.name, node)
        self.metrics.count("node_failures")

    def recover_node(self, node: int) -> None:
        self.down.discard(node)
        log.info("cluster %s: node %d is back", self.name, node)

    def _owner(self, key: Hashable) -> int:
        node = self.node_for(key)
        if node in self.down:
            self.metrics.count("unavailable")
            raise PartitionUnavailableError(f"cluster {self.name}: node {node} owning {key!r} "
                                            "is down")
        return node

    def _serve(self, node: int) -> None:
        with self._stats:
            super()._serve(node)
        self.metrics.count("requests")

    def put(self, key: Hashable, value: Any) -> int:
        node = self._owner(key)
        started = time.perf_counter()
        with self._locks[node]:  # only this partition waits; the others go on
            part = self.partitions[node]
            if key not in part and len(part) >= self.config.max_keys_per_node:
                self.metrics.count("rejected_full")
                raise RuntimeError(f"cluster {self.name}: node {node} holds "
                                   f"{len(part)} keys, its limit")
            part[key] = value
        self._serve(node)
        self._seconds.observe(time.perf_counter() - started)
        return node

    def get(self, key: Hashable, default: Any = None) -> Any:
        node = self._owner(key)
        with self._locks[node]:
            value = self.partitions[node].get(key, default)
        self._serve(node)
        return value

    def put_many(self, items: dict[Hashable, Any]) -> list[int]:
        nodes = self.touches(items)
        for node in nodes:
            if node in self.down:
                self.metrics.count("unavailable")
                raise PartitionUnavailableError(f"cluster {self.name}: node {node} is down")
        if len(nodes) > 1:
            self.metrics.count("cross_partition")
            with self._stats:
                self.cross_partition += 1
        for node in nodes:  # a fixed lock order: two multi-key writes cannot deadlock
            self._locks[node].acquire()
        try:
            for key, value in items.items():
                self.partitions[self.node_for(key)][key] = value
        finally:
            for node in reversed(nodes):
                self._locks[node].release()
        for node in nodes:
            self._serve(node)
        return nodes


class SQLitePartitions:
    """Rows of N partitions in SQLite: ``shared=True`` puts them all in one file (one write lock
    for everyone, shared-everything storage); ``shared=False`` gives each partition its own
    file (shared nothing). ``connect(p)`` opens a connection for partition p's writer thread."""

    def __init__(self, folder: str, partitions: int, shared: bool) -> None:
        self.folder, self.shared = folder, shared
        self.partitions = check_int("partitions", partitions, 1)
        for p in range(self.partitions if not shared else 1):
            with sqlite3.connect(self.path(p)) as db:
                db.execute("CREATE TABLE IF NOT EXISTS rows (part INTEGER, n INTEGER, body TEXT)")

    def path(self, partition: int) -> str:
        name = "shared.db" if self.shared else f"part-{partition}.db"
        return os.path.join(self.folder, name)

    def connect(self, partition: int) -> sqlite3.Connection:
        return sqlite3.connect(self.path(partition), timeout=30.0)

    def write(self, db: sqlite3.Connection, partition: int, n: int) -> None:
        """One small transaction: a row and its commit."""
        with db:
            db.execute("INSERT INTO rows VALUES (?, ?, ?)", (partition, n, "payload " * 4))

    def count(self) -> int:
        total = 0
        for p in range(self.partitions if not self.shared else 1):
            with sqlite3.connect(self.path(p)) as db:
                total += db.execute("SELECT COUNT(*) FROM rows").fetchone()[0]
        return total


__all__ = ["ClusterConfig", "PartitionUnavailableError", "PartitionedCluster",
           "ProductionPartitionedCluster", "SQLitePartitions", "stable_hash"]
