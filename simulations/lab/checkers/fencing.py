"""Fenced writes: did a lock holder ever write after a newer holder had written?

Picture a relay race's baton, numbered anew at every hand-over. The track judge keeps the
order in which runners crossed the line with their baton numbers. If a runner with baton 4
crosses after the one with baton 5, two runners were on the track at once: the old one did not
know the baton had passed. A lock with fencing tokens works the same way: each grant carries a
larger token, and the storage's log of ``(token, value)`` must never see a token smaller than
one it already holds.

The history holds ``write(value)`` operations (ok: the system says the write was applied, with
the token as output) and final ``read`` operations that return the storage's whole log, a tuple
of ``(token, value)`` pairs in the order the storage applied them.
"""

from __future__ import annotations

from simulations.lab.checkers.result import CheckResult
from simulations.lab.history import History, Op, Status

__all__ = ["check_fenced_writes"]


def check_fenced_writes(history: History) -> CheckResult:
    """Check a lock-protected store: tokens in its log never go down, and every acknowledged
    write is in the log (the last successful read is taken as the final log)."""
    writes = history.where(f="write")
    acked = writes.where(status=Status.OK)
    reads = history.where(f="read", status=Status.OK)
    details = {"writes": len(writes), "acknowledged": len(acked),
               "availability": len(acked) / len(writes) if len(writes) else float("nan")}
    if not reads:
        return CheckResult("fenced writes", False,
                           "no final read of the storage's log answered", (), details)
    log = tuple(reads[len(reads) - 1].output or ())
    by_value: dict[object, Op] = {op.value: op for op in writes}
    details["applied"] = len(log)
    highest, first = None, None
    for token, value in log:
        if highest is not None and token < highest[0]:
            witness = tuple(op for op in (by_value.get(highest[1]), by_value.get(value)) if op)
            return CheckResult(
                "fenced writes", False,
                f"two holders at once: the holder of token {token} wrote {value} after the "
                f"holder of token {highest[0]} had written {highest[1]}", witness, details)
        if highest is None or token > highest[0]:
            highest = (token, value)
        first = first or token
    applied = {value for _, value in log}
    lost = [op for op in acked if op.value not in applied]
    if lost:
        return CheckResult("fenced writes", False,
                           f"{len(lost)} acknowledged writes are missing from the storage's log, "
                           f"first {lost[0].describe()}", (lost[0],), details)
    return CheckResult("fenced writes", True,
                       f"{len(log)} writes applied, tokens never went down", (), details)
