"""A checker's verdict: passed or not, in one line, with the operations that prove it.

Like a referee's report: the result, the reason in a sentence, the moments of play that
decided it (the ``witness``), and, when the match was a lab run, how to replay it: its seed
and the one call that runs it again exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simulations.lab.history import Op

__all__ = ["CheckResult"]


@dataclass(frozen=True)
class CheckResult:
    """``valid`` or not, by ``checker``; ``reason`` says why in a sentence; ``witness`` holds
    the operations that show a failure (few, with their times); ``details`` the checker's
    numbers; ``seed`` and ``replay`` are set when the history came from a lab run."""

    checker: str
    valid: bool
    reason: str
    witness: tuple[Op, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    replay: str | None = None

    def __str__(self) -> str:
        lines = [f"{'PASS' if self.valid else 'FAIL'} {self.checker}: {self.reason}"]
        for op in self.witness:
            lines.append(f"  client {op.client} at {op.node or '?'}: {op.describe()} "
                         f"[{op.invoke_s:.4f} s, {op.complete_s:.4f} s]")
        if self.seed is not None and not self.valid:
            lines.append(f"  seed {self.seed}; replay it with: {self.replay}")
        return "\n".join(lines)

    def assert_valid(self) -> None:
        """Raise AssertionError with the whole report (seed and replay call included) unless
        the check passed: the line a test or an exercise ends with."""
        if not self.valid:
            raise AssertionError(str(self))
