"""A workload for a lock-protected store: clients ask the lock's users to write, then the
storage's log is read.

Picture an office where clerks (the worker nodes) may only write in the ledger (the storage
node) while holding the key (the lease from the lock node). Customers (the clients) hand
a clerk a line to write; at the end an auditor reads the ledger. The first node is the lock
service, the last the storage, the ones between the workers that clients call. Judged by
``check_fenced_writes``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from simulations.lab.checkers.fencing import check_fenced_writes
from simulations.lab.checkers.result import CheckResult
from simulations.lab.history import History
from simulations.lab.workloads import Workload, _Planned

__all__ = ["LockedWriteWorkload"]


@dataclass(frozen=True)
class LockedWriteWorkload(Workload):
    """``write`` of unique values sent to the worker nodes (all but the first and the last);
    every node then answers one final ``read`` with the storage's log."""

    final_reads: ClassVar[bool] = True

    def mix(self) -> dict[str, float]:
        return {"write": 1.0}

    def plan(self, rng: np.random.Generator, nodes: tuple[str, ...]) -> list[list[_Planned]]:
        if len(nodes) < 3:
            raise ValueError(f"LockedWriteWorkload needs at least 3 nodes (a lock, a worker, "
                             f"a storage; got {len(nodes)})")
        return super().plan(rng, nodes[1:-1])

    def check(self, history: History) -> CheckResult:
        return check_fenced_writes(history)
