"""Leader election, Raft style: terms, one vote per term, randomized election timeouts, heartbeats.

Picture a rowing crew whose cox has fallen overboard. Each rower waits a different, random
moment before shouting "I'll steer, who agrees?"; the first to shout usually collects the
crew's agreement before anyone else opens their mouth, and a rower agrees only once per
"round" (term). When two shout at once and neither gets a majority, everyone waits another
random moment and tries again with a higher round number.

``RaftElection`` is the election half of Raft (Ongaro and Ousterhout, USENIX ATC 2014, section
5.2) as a transport-free state machine: every handler returns the messages to send as
``(destination, message)`` pairs, time comes from an injectable ``clock`` and randomness from an
injectable ``rng``, and the state that must survive a crash (``term``, ``voted_for``) lives in
the ``store`` mapping the caller hands in (a protocol-lab node passes ``ctx.disk``).
``ProductionRaftElection`` adds a validated config, a lock, logging and metrics. Nothing here
imports from ``simulations``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from patterns.checks import check_positive
from patterns.metrics import Instruments

__all__ = ["ElectionConfig", "Heartbeat", "HeartbeatAck", "ProductionRaftElection",
           "RaftElection", "Vote", "VoteRequest", "majority"]

Clock = Callable[[], float]
Outbox = list[tuple[str, Any]]
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VoteRequest:
    """A candidate asks for a vote in ``term`` (Raft's RequestVote)."""

    term: int
    candidate: str


@dataclass(frozen=True)
class Vote:
    """The answer to a ``VoteRequest``: granted or not, in the voter's ``term``."""

    term: int
    voter: str
    granted: bool


@dataclass(frozen=True)
class Heartbeat:
    """The leader of ``term`` says it is alive (Raft's empty AppendEntries)."""

    term: int
    leader: str


@dataclass(frozen=True)
class HeartbeatAck:
    """A follower's answer to a heartbeat of ``term``."""

    term: int
    follower: str


def majority(cluster_size: int) -> int:
    """Votes needed to win in a cluster of ``cluster_size`` nodes: ⌊n/2⌋ + 1."""
    return cluster_size // 2 + 1


class RaftElection:
    """One node's view of the election: role, term, vote, leader, and when its timer fires.

    ``deadline`` is when a follower or candidate starts an election (reset on every heartbeat
    and every vote it grants, to ``now + uniform(*timeout_range_s)``); a leader instead sends
    heartbeats every ``heartbeat_s``, and keeps in ``last_ack`` when each peer last answered one
    and in ``leader_since`` when it won. Call ``tick()`` at ``next_wakeup()`` and ``handle(src,
    message)`` on every message; send what they return.
    """

    def __init__(self, node_id: str, peers: Sequence[str],
                 timeout_range_s: tuple[float, float] = (0.15, 0.3), heartbeat_s: float = 0.05,
                 store: MutableMapping | None = None, clock: Clock = time.monotonic,
                 rng: Any = None) -> None:
        self.node_id, self.peers = node_id, tuple(peers)
        self.timeout_range_s, self.heartbeat_s = timeout_range_s, heartbeat_s
        self.store = {} if store is None else store
        self.store.setdefault("term", 0)
        self.store.setdefault("voted_for", None)
        self.clock, self.rng = clock, rng or random.Random()
        self.role, self.leader = "follower", None
        self.votes: set[str] = set()
        self.last_ack: dict[str, float] = {}
        self.next_beat = self.leader_since = 0.0
        self.reset_timer()

    @property
    def term(self) -> int:
        return self.store["term"]

    @property
    def voted_for(self) -> str | None:
        return self.store["voted_for"]

    def reset_timer(self) -> None:
        """Draw a fresh election timeout from now."""
        low, high = self.timeout_range_s
        self.deadline = self.clock() + float(self.rng.uniform(low, high))

    def next_wakeup(self) -> float:
        """When ``tick`` next has something to do."""
        return self.next_beat if self.role == "leader" else self.deadline

    def tick(self) -> Outbox:
        """Heartbeats if a leader's beat is due, a new election if the timer has fired."""
        now = self.clock()
        if self.role == "leader":
            if now < self.next_beat:
                return []
            self.next_beat = now + self.heartbeat_s
            return [(p, Heartbeat(self.term, self.node_id)) for p in self.peers]
        return self.start_election() if now >= self.deadline else []

    def start_election(self) -> Outbox:
        """Become a candidate of the next term, vote for yourself, ask everyone else."""
        self.store["term"] = self.term + 1
        self.store["voted_for"] = self.node_id
        self.role, self.leader, self.votes = "candidate", None, {self.node_id}
        self.reset_timer()
        if len(self.votes) >= majority(len(self.peers) + 1):
            return self.become_leader()
        return [(p, VoteRequest(self.term, self.node_id)) for p in self.peers]

    def become_leader(self) -> Outbox:
        self.role, self.leader, self.last_ack = "leader", self.node_id, {}
        self.next_beat = self.leader_since = self.clock()
        return self.tick()

    def become_follower(self, term: int, leader: str | None = None) -> None:
        """Step down to follower of ``term`` (a new term clears the vote)."""
        if term > self.term:
            self.store["term"], self.store["voted_for"] = term, None
        self.role, self.leader = "follower", leader

    def grant_vote(self, request: VoteRequest) -> bool:
        """Raft's rule: same term, and no vote yet this term (or already this candidate)."""
        return request.term == self.term and self.voted_for in (None, request.candidate)

    def handle(self, src: str, message: Any) -> Outbox:
        """React to one message; return what to send."""
        if message.term > self.term:
            self.become_follower(message.term)
        if isinstance(message, VoteRequest):
            granted = self.grant_vote(message)
            if granted:
                self.store["voted_for"] = message.candidate
                self.reset_timer()
            return [(src, Vote(self.term, self.node_id, granted))]
        if isinstance(message, Vote):
            if self.role == "candidate" and message.term == self.term and message.granted:
                self.votes.add(message.voter)
                if len(self.votes) >= majority(len(self.peers) + 1):
                    return self.become_leader()
            return []
        if isinstance(message, Heartbeat):
            if message.term == self.term and self.role != "leader":
                self.become_follower(message.term, message.leader)  # a candidate gives way
                self.reset_timer()
            return [(src, HeartbeatAck(self.term, self.node_id))]
        if isinstance(message, HeartbeatAck) and message.term == self.term:
            self.last_ack[src] = self.clock()
        return []


@dataclass(frozen=True)
class ElectionConfig:
    """Timing of a production election: the timeout range and the heartbeat interval.

    Raft's timing requirement (section 5.6): broadcast time ≪ election timeout; here the lower
    timeout must exceed the heartbeat, or followers start elections between beats.
    """

    timeout_min_s: float = 0.15
    timeout_max_s: float = 0.3
    heartbeat_s: float = 0.05

    def __post_init__(self) -> None:
        check_positive("ElectionConfig.heartbeat_s", self.heartbeat_s)
        check_positive("ElectionConfig.timeout_min_s", self.timeout_min_s)
        check_positive("ElectionConfig.timeout_max_s", self.timeout_max_s)
        if not self.timeout_min_s > self.heartbeat_s:
            raise ValueError(f"ElectionConfig.timeout_min_s must be > heartbeat_s = "
                             f"{self.heartbeat_s:g} (got {self.timeout_min_s!r})")
        if not self.timeout_max_s >= self.timeout_min_s:
            raise ValueError(f"ElectionConfig.timeout_max_s must be >= timeout_min_s = "
                             f"{self.timeout_min_s:g} (got {self.timeout_max_s!r})")


class ProductionRaftElection(RaftElection):
    """``RaftElection`` with a validated config, a lock around the state, logging of every
    role change, and metrics: elections started, won, votes granted and refused, and the
    seconds each election took (``election_seconds``)."""

    def __init__(self, node_id: str, peers: Sequence[str], config: ElectionConfig | None = None,
                 store: MutableMapping | None = None, clock: Clock = time.monotonic,
                 rng: Any = None) -> None:
        self.config = config or ElectionConfig()
        self._lock = threading.RLock()
        self.metrics = Instruments("leader_election", "Election events")
        self._took = self.metrics.histogram("election_seconds", "Candidacy to leadership")
        self._since: float | None = None
        super().__init__(node_id, peers, (self.config.timeout_min_s, self.config.timeout_max_s),
                         self.config.heartbeat_s, store, clock, rng)

    def tick(self) -> Outbox:
        with self._lock:
            return super().tick()

    def handle(self, src: str, message: Any) -> Outbox:
        with self._lock:
            out = super().handle(src, message)
            if isinstance(message, VoteRequest):
                self.metrics.count("vote_granted" if out[0][1].granted else "vote_refused")
            return out

    def start_election(self) -> Outbox:
        self.metrics.count("election_started")
        if self._since is None:
            self._since = self.clock()
        logger.info("%s starts an election for term %d", self.node_id, self.term + 1)
        return super().start_election()

    def become_leader(self) -> Outbox:
        self.metrics.count("election_won")
        if self._since is not None:
            self._took.observe(self.clock() - self._since)
        self._since = None
        logger.info("%s is leader of term %d", self.node_id, self.term)
        return super().become_leader()

    def become_follower(self, term: int, leader: str | None = None) -> None:
        if self.role != "follower":
            logger.info("%s steps down in term %d", self.node_id, max(term, self.term))
        self._since = None if leader is not None else self._since
        super().become_follower(term, leader)
