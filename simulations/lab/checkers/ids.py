"""Unique identifiers: were any two handed out twice?

Picture a ticket machine split across several counters: however the counters coordinate (or
don't), no two customers may hold the same ticket number. Only acknowledged identifiers count:
one that never reached its client was never handed out.
"""

from __future__ import annotations

from simulations.lab.checkers.result import CheckResult
from simulations.lab.history import History, Op, Status

__all__ = ["check_unique_ids"]


def check_unique_ids(history: History) -> CheckResult:
    """Check a history of ``generate → id`` operations: every ok id differs from every other."""
    holders: dict[object, list[Op]] = {}
    for op in history.where(f="generate", status=Status.OK):
        holders.setdefault(op.output, []).append(op)
    duplicated = [ops for ops in holders.values() if len(ops) > 1]
    details = {"ids": len(holders), "duplicated": len(duplicated)}
    if duplicated:
        return CheckResult("unique ids", False, f"{len(duplicated)} ids were handed out more "
                           f"than once (first: {duplicated[0][0].output!r})",
                           tuple(duplicated[0]), details)
    return CheckResult("unique ids", True, f"all {len(holders)} acknowledged ids differ", (),
                       details)
