"""Cells and shuffle shards: limit how many customers one failure can reach.

Picture a block of flats with one water main per stairwell instead of one for the whole block: a
burst pipe floods one stairwell, and the plumber who botches a repair botches it for one
stairwell. A *cell* is a complete copy of a service (its workers, its database) that serves only
the customers routed to it, so a bad deploy, a poison request or a lost database hurts 1/#cells of
them. *Shuffle sharding* goes further with the same hardware: every customer gets its own small
combination of workers, so two customers rarely share all of theirs and a poison tenant that
crashes its own workers takes down only the few customers with exactly its combination.

`CellRouter` is the Level 2 router: a stable hash of the customer id picks its cell, and a cell
marked failed (with an injectable ``clock``) refuses its customers until it is back.
`ShuffleShardAssigner` gives each customer a stable combination of ``shard_size`` workers out of
``workers``, drawn from a hash of its id. `ProductionShardRouter` hardens the assigner for Level 3:
a validated `ShardRouterConfig`, a lock, ``logging``, metrics, a worker that crashes on a request
is taken out for ``restart_s`` and the request tried on the next worker of the shard, and a
customer whose requests have crashed ``quarantine_after`` workers is refused outright.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from patterns.checks import check_int, check_positive
from patterns.metrics import Instruments

T = TypeVar("T")
Clock = Callable[[], float]
log = logging.getLogger(__name__)

__all__ = [
    "CellRouter", "CellUnavailableError", "CustomerQuarantinedError", "ProductionShardRouter",
    "ShardRouterConfig", "ShardUnavailableError", "ShuffleShardAssigner", "WorkerCrash",
    "stable_hash",
]


def stable_hash(key: str, salt: str = "") -> int:
    """A 64-bit hash of ``key`` that is the same in every process (Python's ``hash`` of a str
    is salted per process, so it cannot route)."""
    digest = hashlib.blake2b(f"{salt}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class CellUnavailableError(RuntimeError):
    """The customer's cell is failed; the router does not send it elsewhere."""


class CellRouter:
    """Customer -> cell by a stable hash; a failed cell refuses its own customers only.

    ``route(customer)`` gives the cell (0 .. cells-1) and never changes for a customer while
    ``cells`` and ``salt`` stay the same. ``fail(cell, for_s)`` marks a cell down until
    ``clock() + for_s``; ``admit(customer)`` returns the cell or raises `CellUnavailableError`.
    """

    def __init__(self, cells: int, clock: Clock = time.monotonic, salt: str = "cells") -> None:
        self.cells = check_int("cells", cells, low=1)
        self.clock, self.salt = clock, salt
        self.down_until = [-math.inf] * self.cells
        self.admitted = self.refused = 0

    def route(self, customer: str) -> int:
        return stable_hash(customer, self.salt) % self.cells

    def healthy(self, cell: int) -> bool:
        return self.clock() >= self.down_until[cell]

    def fail(self, cell: int, for_s: float) -> None:
        self.down_until[check_int("cell", cell, 0, self.cells - 1)] = (
            self.clock() + check_positive("for_s", for_s, allow_inf=True))

    def admit(self, customer: str) -> int:
        cell = self.route(customer)
        if not self.healthy(cell):
            self.refused += 1
            raise CellUnavailableError(f"cell {cell} of customer {customer!r} is down")
        self.admitted += 1
        return cell


class ShuffleShardAssigner:
    """Each customer gets a stable combination of ``shard_size`` of ``workers`` workers.

    The combination is drawn without replacement by a generator seeded from the customer's
    hash, so it is the same on every router and every restart. With W workers and shards of k
    there are C(W, k) distinct shards: ``combinations``.
    """

    def __init__(self, workers: int, shard_size: int, salt: str = "shards") -> None:
        self.workers = check_int("workers", workers, low=1)
        self.shard_size = check_int("shard_size", shard_size, low=1, high=self.workers)
        self.salt = salt

    @property
    def combinations(self) -> int:
        return math.comb(self.workers, self.shard_size)

    def shard(self, customer: str) -> tuple[int, ...]:
        rng = np.random.default_rng(stable_hash(customer, self.salt))
        picks = rng.choice(self.workers, size=self.shard_size, replace=False)
        return tuple(int(w) for w in picks)

    def overlap(self, a: str, b: str) -> int:
        """How many workers customers ``a`` and ``b`` share."""
        return len(set(self.shard(a)) & set(self.shard(b)))


# ---------------------------------------------------------------- production-grade (Level 3)

class WorkerCrash(RuntimeError):
    """Raised by a request handler when the request killed the worker that ran it."""


class ShardUnavailableError(RuntimeError):
    """Every worker of the customer's shard is down."""


class CustomerQuarantinedError(RuntimeError):
    """The customer's requests crashed too many workers; it is refused until released."""


@dataclass(frozen=True)
class ShardRouterConfig:
    """Settings of the production router: the fleet, the shard size, how long a crashed worker
    stays out, and after how many crashed workers a customer is quarantined (0: never)."""

    workers: int = 8
    shard_size: int = 2
    restart_s: float = 30.0
    quarantine_after: int = 0

    def __post_init__(self) -> None:
        check_int("ShardRouterConfig.workers", self.workers, low=1)
        check_int("ShardRouterConfig.shard_size", self.shard_size, low=1, high=self.workers)
        check_positive("ShardRouterConfig.restart_s", self.restart_s)
        check_int("ShardRouterConfig.quarantine_after", self.quarantine_after, low=0)


class ProductionShardRouter(ShuffleShardAssigner):
    """The Level 2 assigner as a router: thread-safe, logged, measured, poison-aware.

    ``call(customer, handler)`` runs ``handler(worker)`` on the first worker of the customer's
    shard that is up. If the handler raises `WorkerCrash`, that worker is out for
    ``restart_s`` and the request is tried on the next worker of the shard (a poison request
    therefore crashes at most the whole shard, never more). With every worker of the shard down
    the call raises `ShardUnavailableError`; a quarantined customer gets
    `CustomerQuarantinedError` at once. The lock guards the health table, never the handler.
    """

    def __init__(self, config: ShardRouterConfig | None = None,
                 clock: Clock = time.monotonic) -> None:
        self.config = config or ShardRouterConfig()
        super().__init__(self.config.workers, self.config.shard_size)
        self.clock = clock
        self.down_until = [-math.inf] * self.workers
        self.crashes_by: dict[str, int] = {}
        self.quarantined: set[str] = set()
        self.metrics = Instruments("shard_router", "Requests through the shard router")
        self.latency = self.metrics.histogram("call_seconds", "Latency of served requests")
        self._lock = threading.Lock()

    def up_workers(self) -> list[int]:
        with self._lock:
            now = self.clock()
            return [w for w in range(self.workers) if now >= self.down_until[w]]

    def call(self, customer: str, handler: Callable[[int], T]) -> T:
        if customer in self.quarantined:
            self.metrics.count("quarantined")
            raise CustomerQuarantinedError(f"customer {customer!r} is quarantined")
        for worker in self.shard(customer):
            with self._lock:
                if self.clock() < self.down_until[worker]:
                    continue
            start = self.clock()
            try:
                result = handler(worker)
            except WorkerCrash:
                self._crashed(customer, worker)
                if customer in self.quarantined:
                    raise CustomerQuarantinedError(
                        f"customer {customer!r} is quarantined") from None
                continue
            self.metrics.count("served")
            self.latency.observe(self.clock() - start)
            return result
        self.metrics.count("shard_unavailable")
        raise ShardUnavailableError(f"every worker of {customer!r}'s shard "
                                    f"{self.shard(customer)} is down")

    def release(self, customer: str) -> None:
        """Lift a quarantine (after the poison request was fixed)."""
        with self._lock:
            self.quarantined.discard(customer)
            self.crashes_by.pop(customer, None)

    def _crashed(self, customer: str, worker: int) -> None:
        with self._lock:
            self.down_until[worker] = self.clock() + self.config.restart_s
            crashes = self.crashes_by[customer] = self.crashes_by.get(customer, 0) + 1
            limit = self.config.quarantine_after
            quarantine = bool(limit) and crashes >= limit and customer not in self.quarantined
            if quarantine:
                self.quarantined.add(customer)
        self.metrics.count("worker_crashes")
        log.warning("worker %d crashed on a request of %s; out for %g s", worker, customer,
                    self.config.restart_s)
        if quarantine:
            self.metrics.count("quarantines")
            log.error("customer %s quarantined after crashing %d workers", customer, crashes)

    def snapshot(self) -> dict[str, float]:
        """Gauges and counters a metrics exporter would publish."""
        counts = self.metrics.counts
        return {"workers_up": len(self.up_workers()), "served": counts["served"],
                "worker_crashes": counts["worker_crashes"],
                "shard_unavailable": counts["shard_unavailable"],
                "quarantined_customers": len(self.quarantined)}

