"""Leaders: did two nodes ever claim to lead the same term?

Picture a club that numbers its chairmanships: chair of the 7th term, chair of the 8th. Two
people may both believe they are chair for a while (the old one has not heard of the vote yet),
but never of the same numbered term: that would be two chairs elected by majorities that share
a member who voted twice. Each acknowledged ``leader`` operation names ``(term, node)``; the
checker groups them by term.
"""

from __future__ import annotations

from simulations.lab.checkers.result import CheckResult
from simulations.lab.history import History, Op, Status

__all__ = ["check_one_leader_per_term"]


def check_one_leader_per_term(history: History) -> CheckResult:
    """Check a history of ``leader → (term, node)`` answers: at most one node per term."""
    claims: dict[int, dict[str, Op]] = {}
    for op in history.where(f="leader", status=Status.OK):
        term, node = op.output
        claims.setdefault(term, {}).setdefault(node, op)
    asked = len(history.where(f="leader"))
    answered = len(history.where(f="leader", status=Status.OK))
    details = {"terms": len(claims), "answered": answered,
               "availability": answered / asked if asked else float("nan")}
    for term in sorted(claims):
        if len(claims[term]) > 1:
            nodes = sorted(claims[term])
            return CheckResult("one leader per term", False,
                               f"term {term} had {len(nodes)} leaders: {', '.join(nodes)}",
                               tuple(claims[term][n] for n in nodes), details)
    return CheckResult("one leader per term", True,
                       f"{len(claims)} terms, each with one leader", (), details)
