"""A workload that asks "who leads?": clients ask random nodes, a leader answers (term, itself).

Picture a visitor at each office in turn asking "are you in charge?": a node that believes it
leads answers with its term and name, any other refuses (``ctx.fail``). Judged by
``check_one_leader_per_term``; the share answered is the service's availability.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulations.lab.checkers.leaders import check_one_leader_per_term
from simulations.lab.checkers.result import CheckResult
from simulations.lab.history import History
from simulations.lab.workloads import Workload, _Planned

__all__ = ["LeaderWorkload"]


@dataclass(frozen=True)
class LeaderWorkload(Workload):
    """``leader`` questions to random nodes; a node answers ``(term, node_id)`` only while it
    believes it is the leader."""

    def mix(self) -> dict[str, float]:
        return {"leader": 1.0}

    def argument(self, f: str, planned: _Planned, fresh: int, seen: object) -> None:
        return None

    def check(self, history: History) -> CheckResult:
        return check_one_leader_per_term(history)
