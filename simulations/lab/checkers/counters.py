"""A counter: does every read fall between what surely was added and what may have been?

Picture a tip jar that several waiters drop coins into and count from time to time. A count
taken at some moment must be at least the coins whose drop was confirmed before the count
began, and at most every coin whose drop was started before the count ended (confirmed or
not). Failed adds certainly did not happen; unknown ones may have. The final reads from every
node must lie in the same bounds, once all the adds are over.
"""

from __future__ import annotations

from simulations.lab.checkers.result import CheckResult
from simulations.lab.history import History, Status

__all__ = ["check_counter"]


def check_counter(history: History) -> CheckResult:
    """Check a history of ``add(amount)`` (amounts >= 0) and ``read → value`` operations on a
    counter that starts at 0."""
    adds = [op for op in history.where(f="add") if op.status is not Status.FAIL]
    reads = list(history.where(f="read", status=Status.OK))
    bad = []
    for read in reads:
        low = sum(op.value for op in adds
                  if op.status is Status.OK and op.complete_s < read.invoke_s)
        high = sum(op.value for op in adds if op.invoke_s < read.complete_s)
        if not low <= read.output <= high:
            bad.append((read, low, high))
    details = {"reads": len(reads), "out_of_bounds": len(bad),
               "acknowledged_total": sum(op.value for op in adds if op.status is Status.OK)}
    if bad:
        read, low, high = bad[0]
        return CheckResult("counter", False, f"{len(bad)} reads lie outside their bounds; the "
                           f"first read {read.output} where only {low} to {high} was possible",
                           (read,), details)
    if not reads:
        return CheckResult("counter", False, "no read succeeded, so nothing was checked", (),
                           details)
    return CheckResult("counter", True, f"all {len(reads)} reads lie within their bounds", (),
                       details)
