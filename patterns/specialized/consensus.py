"""Consensus, Raft style: a replicated log that a majority agrees on, built on the election.

Picture a club's minute book kept in five copies. Only the chair (the leader) writes new
minutes; each entry is numbered and stamped with the chair's term; the secretaries copy it, and
an entry counts as decided (committed) once a majority of the books hold it and it was written
in the current chair's term. A new chair can only be elected by members whose books are at
least as complete as the voter's, so nothing decided is ever lost.

``RaftLog`` extends ``patterns.specialized.leader_election.RaftElection`` (one election, not a
copy): vote requests carry the candidate's last log entry and a vote needs an up-to-date log
(Ongaro and Ousterhout 2014, section 5.4.1); the leader's heartbeats are AppendEntries that
repair and extend the followers' logs (section 5.3); an entry commits once a majority stores it
and it belongs to the leader's own term (section 5.4.2, Figure 8). ``term``, ``voted_for`` and
``log`` live in the caller's ``store`` (a lab node passes ``ctx.disk``); the commit index and
the state machine are rebuilt after a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from patterns.checks import check_int
from patterns.specialized.leader_election import (
    ProductionRaftElection,
    RaftElection,
    VoteRequest,
    majority,
)

__all__ = ["AppendEntries", "AppendReply", "LogVoteRequest", "ProductionRaftLog", "RaftLog"]


@dataclass(frozen=True)
class LogVoteRequest(VoteRequest):
    """RequestVote with the candidate's last log index and term."""

    last_index: int = 0
    last_term: int = 0


@dataclass(frozen=True)
class AppendEntries:
    """The leader's heartbeat and replication: entries after ``prev_index`` (whose term is
    ``prev_term``), and how far the leader has committed."""

    term: int
    leader: str
    prev_index: int
    prev_term: int
    entries: tuple
    commit: int


@dataclass(frozen=True)
class AppendReply:
    """A follower's answer: ``ok`` with the index its log now matches up to, or not, with the
    length of its log as a hint where to retry."""

    term: int
    follower: str
    ok: bool
    match: int


class RaftLog(RaftElection):
    """A Raft node: the election of ``RaftElection`` plus the replicated log. ``propose(command)``
    on the leader appends; ``committed`` entries are applied, in order, by ``apply(command)``
    (override it, or read ``newly_committed()``)."""

    max_batch = 64

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.store.setdefault("log", [])  # [(term, command)], index i is log[i - 1]
        self.commit_index = self.applied = 0
        self.next_index: dict[str, int] = {}
        self.match_index: dict[str, int] = {}

    @property
    def log(self) -> list:
        return self.store["log"]

    def last(self) -> tuple[int, int]:
        """(index, term) of the last entry, (0, 0) for an empty log."""
        return (len(self.log), self.log[-1][0]) if self.log else (0, 0)

    def term_at(self, index: int) -> int:
        return self.log[index - 1][0] if 0 < index <= len(self.log) else 0

    def start_election(self) -> list:
        out = super().start_election()
        index, term = self.last()
        return [(dst, LogVoteRequest(m.term, m.candidate, index, term)) if
                isinstance(m, VoteRequest) else (dst, m) for dst, m in out]

    def grant_vote(self, request: VoteRequest) -> bool:
        return super().grant_vote(request) and self.log_up_to_date(request)

    def log_up_to_date(self, request: VoteRequest) -> bool:
        """Raft's election restriction: the candidate's last entry has a higher term than ours,
        or the same term and an index at least ours."""
        index, term = self.last()
        theirs = (getattr(request, "last_term", 0), getattr(request, "last_index", 0))
        return theirs >= (term, index)

    def become_leader(self) -> list:
        self.role, self.leader = "leader", self.node_id
        self.next_index = {p: len(self.log) + 1 for p in self.peers}
        self.match_index = {p: 0 for p in self.peers}
        self.log.append((self.term, None))  # a no-op of the new term commits what came before
        return super().become_leader()

    def propose(self, command: Any) -> int:
        """Append ``command`` to the leader's log; its index (commit it by replicating)."""
        if self.role != "leader":
            raise RuntimeError(f"{self.node_id} is not the leader (term {self.term})")
        self.log.append((self.term, command))
        self.advance_commit()
        return len(self.log)

    def tick(self) -> list:
        out = super().tick()
        if self.role != "leader":
            return out
        return [(dst, self.append_for(dst)) if dst in self.next_index else (dst, m)
                for dst, m in out]

    def append_for(self, peer: str) -> AppendEntries:
        """The entries ``peer`` lacks (at most ``max_batch``); ``next_index`` moves past them
        at once (optimistic pipelining: a refusal moves it back)."""
        prev = self.next_index[peer] - 1
        entries = tuple(self.log[prev:prev + self.max_batch])
        self.next_index[peer] = prev + len(entries) + 1
        return AppendEntries(self.term, self.node_id, prev, self.term_at(prev), entries,
                             self.commit_index)

    def handle(self, src: str, message: Any) -> list:
        if isinstance(message, AppendEntries):
            return self.on_append(src, message)
        if isinstance(message, AppendReply):
            return self.on_append_reply(src, message)
        return super().handle(src, message)

    def on_append(self, src: str, m: AppendEntries) -> list:
        if m.term > self.term or (m.term == self.term and self.role != "leader"):
            self.become_follower(m.term, m.leader)
            self.reset_timer()
        if m.term < self.term:
            return [(src, AppendReply(self.term, self.node_id, False, len(self.log)))]
        if m.prev_index > len(self.log) or self.term_at(m.prev_index) != m.prev_term:
            return [(src, AppendReply(self.term, self.node_id, False,
                                      min(len(self.log), m.prev_index - 1)))]
        for offset, entry in enumerate(m.entries):
            index = m.prev_index + 1 + offset
            if index <= len(self.log) and self.log[index - 1][0] != entry[0]:
                del self.log[index - 1:]  # a conflict: drop it and everything after
            if index > len(self.log):
                self.log.append(entry)
        match = m.prev_index + len(m.entries)
        self.commit_index = max(self.commit_index, min(m.commit, match))
        return [(src, AppendReply(self.term, self.node_id, True, match))]

    def on_append_reply(self, src: str, m: AppendReply) -> list:
        if m.term > self.term:
            self.become_follower(m.term)
            return []
        if self.role != "leader" or m.term < self.term:
            return []
        self.last_ack[src] = self.clock()
        if m.ok:
            self.match_index[src] = max(self.match_index[src], m.match)
            self.next_index[src] = max(self.next_index[src], self.match_index[src] + 1)
            self.advance_commit()
            if self.next_index[src] <= len(self.log):
                return [(src, self.append_for(src))]
            return []
        self.next_index[src] = max(self.match_index[src] + 1, min(self.next_index[src] - 1,
                                                                  m.match + 1))
        return [(src, self.append_for(src))]

    def commit_allowed(self, index: int) -> bool:
        """Raft's commit rule: a majority stores the entry, and it is of the leader's term
        (older entries commit with it, never by counting their own replicas)."""
        stored = 1 + sum(match >= index for match in self.match_index.values())
        return stored >= majority(len(self.peers) + 1) and self.term_at(index) == self.term

    def advance_commit(self) -> None:
        for index in range(len(self.log), self.commit_index, -1):
            if self.commit_allowed(index):
                self.commit_index = index
                return

    def newly_committed(self) -> list[tuple[int, Any]]:
        """(index, command) of the entries committed since the last call, in order."""
        out = [(i, self.log[i - 1][1]) for i in range(self.applied + 1, self.commit_index + 1)]
        self.applied = self.commit_index
        return out


class ProductionRaftLog(RaftLog, ProductionRaftElection):
    """``RaftLog`` on ``ProductionRaftElection`` (its validated ``ElectionConfig``, lock,
    logging and election metrics), plus a validated ``max_batch``, the lock around the log's
    handlers too, and log metrics: entries proposed and committed, appends refused."""

    def __init__(self, node_id: str, peers: Any, config: Any = None, max_batch: int = 64,
                 **kwargs: Any) -> None:
        self.max_batch = check_int("ProductionRaftLog.max_batch", max_batch, 1)
        super().__init__(node_id, peers, config, **kwargs)

    def propose(self, command: Any) -> int:
        with self._lock:
            index = super().propose(command)
            self.metrics.count("entry_proposed")
            return index

    def handle(self, src: str, message: Any) -> list:
        with self._lock:
            before = self.commit_index
            out = super().handle(src, message)
            if isinstance(message, AppendReply) and not message.ok:
                self.metrics.count("append_refused")
            if self.commit_index > before:
                self.metrics.count("entry_committed", self.commit_index - before)
            return out
