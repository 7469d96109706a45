"""Atomic commitment: did every participant that decided a transaction decide the same, and
did any commit a transaction that someone voted no on?

Picture an auditor after a merger vote in several boardrooms: she reads each board's minutes
and the chairman's announcement. Every board that recorded an outcome must have recorded the
same one (agreement), and "approved" is allowed only if no board voted against (validity). A
board whose minutes say "voted yes, awaiting the result" broke no rule, but it is still stuck:
she counts those as blocked, and as avoidably blocked when another board could have told it
the outcome (it had decided, or it never voted yes, so the answer can only be abort).

The history holds ``commit`` operations (``key`` the transaction, ``value`` the participants
that will vote no; ok means the client was told "committed", fail "aborted") and, at the end,
one ``read`` per node whose output is that node's ``{transaction: state}`` (state
``"committed"``, ``"aborted"`` or ``"prepared"``) as pairs.
"""

from __future__ import annotations

from dataclasses import replace

from simulations.lab.checkers.result import CheckResult
from simulations.lab.history import History, Op, Status

__all__ = ["check_atomic_commit"]

DECIDED = ("committed", "aborted")


def _final_states(history: History) -> dict[str, tuple[Op, dict]]:
    """Each node's final read: the op and its {txn: state}."""
    return {op.node: (op, dict(op.output or ()))
            for op in history.where(f="read", status=Status.OK)}


def check_atomic_commit(history: History) -> CheckResult:
    """Check agreement and validity of every transaction; count the blocked ones."""
    finals = _final_states(history)
    violations: list[tuple[str, tuple[Op, ...]]] = []
    blocked = avoidable = committed = aborted = 0
    for op in history.where(f="commit"):
        txn = op.key
        told = {Status.OK: "committed", Status.FAIL: "aborted"}.get(op.status)
        seen = [(node, states.get(txn), read) for node, (read, states) in finals.items()]
        decided = {state for _, state, _ in seen if state in DECIDED} | ({told} - {None})
        waiting = [node for node, state, _ in seen if state == "prepared"]
        reads = tuple(replace(read, output=frozenset({(txn, state)}))
                      for _, state, read in seen if state is not None)
        if len(decided) > 1:
            violations.append((f"transaction {txn} was both committed and aborted "
                               f"({', '.join(f'{n}: {s}' for n, s, _ in seen if s)}"
                               f"{'; client told ' + told if told else ''})", (op, *reads)))
        elif "committed" in decided and op.value:
            violations.append((f"transaction {txn} was committed although "
                               f"{', '.join(op.value)} voted no", (op, *reads)))
        committed += "committed" in decided
        aborted += decided == {"aborted"}
        if waiting:
            blocked += 1
            avoidable += any(state != "prepared" for _, state, _ in seen)
    txns = len(history.where(f="commit"))
    details = {"transactions": txns, "committed": committed, "aborted": aborted,
               "blocked": blocked, "avoidably_blocked": avoidable, "violations": len(violations)}
    if violations:
        reason, witness = violations[0]
        more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
        return CheckResult("atomic commit", False, reason + more, witness, details)
    return CheckResult("atomic commit", True,
                       f"all {txns} transactions decided alike wherever decided, none committed "
                       f"against a no vote; {blocked} left blocked", (), details)
