"""Two-phase commit: every participant promises first, then one coordinator decides for all.

Picture a wedding. The officiant asks each partner "do you?" (phase 1, prepare); once someone
says "I do" they may not walk away, whatever happens next, until the officiant pronounces the
result (phase 2, the decision). One "no" and there is no marriage; two "I do"s and there is.
If the officiant faints between the vows and the pronouncement, both partners stand at the
altar, bound and undecided, until the officiant comes round: that wait is 2PC's blocking.

- ``Coordinator`` (Level 2): sends PREPARE, collects votes, decides commit only on a yes from
  every participant, abort on any no or when ``vote_timeout_s`` of its injectable ``clock``
  passes; every decision is written to its ``log`` (a dict standing for a forced log write)
  before anyone hears it, and never changes. Asked about a transaction it has no record of, it
  answers abort (presumed abort).
- ``Participant`` (Level 2): votes, writing "prepared" to its log before a yes (after which it
  may not abort on its own), and applies the decision it is told.
- ``CoordinatorConfig``, ``ProductionCoordinator`` (Level 3): validated settings, a lock,
  logging, counters and a decision-time histogram, and a late or unknown vote refused loudly.

Nothing here imports from ``simulations``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, MutableMapping, Sequence
from dataclasses import dataclass

from patterns.checks import check_positive
from patterns.metrics import Instruments

__all__ = ["COMMIT", "ABORT", "PREPARED", "Coordinator", "CoordinatorConfig", "Participant",
           "ProductionCoordinator", "ProtocolError"]

log = logging.getLogger(__name__)

Clock = Callable[[], float]
COMMIT, ABORT, PREPARED = "committed", "aborted", "prepared"


class ProtocolError(ValueError):
    """A message the protocol does not allow (a vote from a stranger, a second decision)."""


class Coordinator:
    """Phase 1 and phase 2 for many transactions at once; ``log`` holds the decisions."""

    def __init__(self, participants: Sequence[str], vote_timeout_s: float,
                 clock: Clock = time.monotonic,
                 log: MutableMapping[Hashable, str] | None = None) -> None:
        self.participants = tuple(participants)
        self.vote_timeout_s = vote_timeout_s
        self.clock = clock
        self.log = {} if log is None else log  # txn -> decision, forced before it is sent
        self.pending: dict[Hashable, tuple[float, dict[str, bool]]] = {}  # lost on a crash

    def begin(self, txn: Hashable) -> tuple[str, ...]:
        """Start phase 1 for ``txn``: the participants to send PREPARE to."""
        self.pending[txn] = (self.clock(), {})
        return self.participants

    def vote(self, txn: Hashable, participant: str, yes: bool) -> str | None:
        """Record a vote; the decision if this vote settles ``txn``, else None."""
        if txn not in self.pending:
            return None  # decided already, or begun before a crash: presumed abort
        votes = self.pending[txn][1]
        votes[participant] = yes
        if not yes:
            return self.decide(txn, ABORT)
        if all(votes.get(p, False) for p in self.participants):
            return self.decide(txn, COMMIT)
        return None

    def expired(self) -> list[tuple[Hashable, str]]:
        """Abort every transaction whose votes did not all come within the timeout."""
        now = self.clock()
        late = [txn for txn, (start, _) in self.pending.items()
                if now - start >= self.vote_timeout_s]
        return [(txn, self.decide(txn, ABORT)) for txn in late]

    def decide(self, txn: Hashable, decision: str) -> str:
        """Force the decision to the log (once), then it may be sent."""
        self.pending.pop(txn, None)
        return self.log.setdefault(txn, decision)

    def status(self, txn: Hashable) -> str | None:
        """What a participant asking about ``txn`` is told: the logged decision, None while
        votes are still coming, abort for a transaction with no record (presumed abort)."""
        if txn in self.log:
            return self.log[txn]
        return None if txn in self.pending else self.decide(txn, ABORT)


class Participant:
    """One resource manager: votes, then obeys; ``log`` survives a crash."""

    def __init__(self, name: str, log: MutableMapping[Hashable, str] | None = None) -> None:
        self.name = name
        self.log = {} if log is None else log  # txn -> "prepared" | "committed" | "aborted"

    def prepare(self, txn: Hashable, can_commit: bool) -> bool:
        """The vote for ``txn``: yes only if it can commit, after forcing "prepared". Asked
        again, it gives the same answer."""
        state = self.log.get(txn)
        if state is None:
            state = self.log[txn] = PREPARED if can_commit else ABORT
        return state != ABORT

    def learn(self, txn: Hashable, decision: str) -> str:
        """Apply the coordinator's decision (idempotent); a conflicting one is refused."""
        state = self.log.get(txn)
        if state in (COMMIT, ABORT) and state != decision:
            raise ProtocolError(f"{self.name} already {state} {txn!r}; told {decision}")
        self.log[txn] = decision
        return decision

    def uncertain(self) -> list[Hashable]:
        """Transactions voted yes on and not yet decided: the ones holding locks."""
        return [txn for txn, state in self.log.items() if state == PREPARED]


# --- Level 3 -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CoordinatorConfig:
    """``participants``: the resource managers (at least one, distinct); ``vote_timeout_s``:
    how long phase 1 may take before the coordinator aborts."""

    participants: tuple[str, ...]
    vote_timeout_s: float = 1.0

    def __post_init__(self) -> None:
        if not self.participants or len(set(self.participants)) != len(self.participants):
            raise ValueError(f"CoordinatorConfig.participants must be one or more distinct "
                             f"names (got {self.participants!r})")
        check_positive("CoordinatorConfig.vote_timeout_s", self.vote_timeout_s)


class ProductionCoordinator(Coordinator):
    """The Level 2 coordinator with a lock, logging, metrics, and strangers' votes refused."""

    def __init__(self, config: CoordinatorConfig, clock: Clock = time.monotonic,
                 log: MutableMapping[Hashable, str] | None = None) -> None:
        super().__init__(config.participants, config.vote_timeout_s, clock, log)
        self.config = config
        self._lock = threading.Lock()
        self.metrics = Instruments("two_phase_commit", "Transactions through the coordinator")
        self._decision_s = self.metrics.histogram(
            "decision_seconds", "Time from PREPARE to the decision")

    def begin(self, txn: Hashable) -> tuple[str, ...]:
        with self._lock:
            if txn in self.pending or txn in self.log:
                raise ProtocolError(f"transaction {txn!r} was already begun")
            self.metrics.count("begun")
            return super().begin(txn)

    def vote(self, txn: Hashable, participant: str, yes: bool) -> str | None:
        if participant not in self.participants:
            raise ProtocolError(f"vote for {txn!r} from {participant!r}, not a participant "
                                f"({', '.join(self.participants)})")
        with self._lock:
            if txn not in self.pending:
                self.metrics.count("late_votes")
                log.info("late vote on %r from %s ignored", txn, participant)
            return super().vote(txn, participant, yes)

    def expired(self) -> list[tuple[Hashable, str]]:
        with self._lock:
            return super().expired()

    def decide(self, txn: Hashable, decision: str) -> str:
        started = self.pending.get(txn, (None,))[0]
        first = txn not in self.log
        final = super().decide(txn, decision)
        if first:
            self.metrics.count(final)
            if started is not None:
                self._decision_s.observe(self.clock() - started)
            log.info("%s %r", final, txn)
        return final

    def status(self, txn: Hashable) -> str | None:
        with self._lock:
            return super().status(txn)
