"""The atomic-commit workload: clients ask a coordinator to commit transactions across nodes.

Picture a travel agent booking a trip as one purchase: flight, hotel and car must all be
confirmed or none. Each client request is one such purchase, sent to the coordinator ``n1``;
the other nodes are the participants. Whether a participant can commit is written in the
request (``value``: the names of the participants that will vote no, each chosen with
probability ``no_vote``), so the checker knows which commits were allowed. The run ends with a
read from every node of its ``{transaction: state}`` record, judged by
``check_atomic_commit``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from patterns.checks import check_probability
from simulations.lab.checkers.atomic_commit import check_atomic_commit
from simulations.lab.checkers.result import CheckResult
from simulations.lab.history import History
from simulations.lab.workloads import Workload, _Planned

__all__ = ["CommitWorkload"]


@dataclass(frozen=True)
class _PlannedCommit(_Planned):
    no_voters: tuple[str, ...] = ()


@dataclass(frozen=True)
class CommitWorkload(Workload):
    """``n_ops`` transactions (keys 0, 1, ...) sent to the coordinator ``n1``, each
    participant voting no with probability ``no_vote``."""

    no_vote: float = 0.1

    final_reads: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_probability("CommitWorkload.no_vote", self.no_vote)

    def mix(self) -> dict[str, float]:
        return {"commit": 1.0}

    def argument(self, f: str, planned: _Planned, fresh: int, seen: Any) -> Any:
        return getattr(planned, "no_voters", None)

    def plan(self, rng: np.random.Generator, nodes: tuple[str, ...]) -> list[list[_Planned]]:
        scripts = super().plan(rng, nodes)
        refuse = rng.random((self.n_ops, len(nodes) - 1)) < self.no_vote
        txn = 0
        out: list[list[_Planned]] = [[] for _ in scripts]
        for i, script in enumerate(scripts):
            for planned in script:
                no = tuple(p for p, r in zip(nodes[1:], refuse[txn], strict=True) if r)
                out[i].append(_PlannedCommit(planned.gap_s, "commit", txn, nodes[0], 0, no))
                txn += 1
        return out

    def check(self, history: History) -> CheckResult:
        return check_atomic_commit(history)
