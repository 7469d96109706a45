"""The clients: how many there are, how fast they ask, and what they ask for.

Picture a call centre's agents, each with a script: call a branch, ask for one thing, wait for
the answer or hang up after ``timeout_s``, pause, call again. ``clients`` agents work at once
(the concurrency), each pausing an exponential time of mean ``clients / rate`` between calls,
so ``rate`` is the operations per second they would reach if answers were instant. Each call
goes to a node drawn at random. The scripts are drawn up front from the run's seed.

- ``RegisterWorkload``: read, write and compare-and-set on ``keys`` registers (one register,
  or a key-value store), checked for linearizability. Writes carry unique values; a
  compare-and-set expects the value its client last saw for the key.
- ``SetWorkload``: add unique elements to a grow-only set, and read it.
- ``CounterWorkload``: add small positive amounts to a counter, and read it.
- ``UniqueIdWorkload``: ask for an identifier that must be unique.

The set and counter workloads end with a final read from every node, once the nemesis is over
and ``settle_s`` has passed, so "eventually read by all" can be checked.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Hashable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import simpy

from patterns.checks import check_int, check_non_negative, check_positive
from simulations.lab.checkers.counters import check_counter
from simulations.lab.checkers.ids import check_unique_ids
from simulations.lab.checkers.linearizability import check_linearizable
from simulations.lab.checkers.result import CheckResult
from simulations.lab.checkers.sets import check_set
from simulations.lab.history import History, HistoryLog, Status
from simulations.lab.network import Network
from simulations.lab.node import Request, _Reply

__all__ = ["CounterWorkload", "RegisterWorkload", "SetWorkload", "UniqueIdWorkload", "Workload"]


@dataclass(frozen=True)
class _Planned:
    gap_s: float
    f: str
    key: Hashable
    node: str
    amount: int


@dataclass(frozen=True)
class Workload:
    """What every workload shares: ``n_ops`` operations in all from ``clients`` clients at
    about ``rate`` per second, each given up after ``timeout_s``."""

    n_ops: int = 1000
    rate: float = 100.0
    clients: int = 10
    timeout_s: float = 1.0

    final_reads: ClassVar[bool] = False

    def __post_init__(self) -> None:
        name = type(self).__name__
        check_int(f"{name}.n_ops", self.n_ops, 1)
        check_positive(f"{name}.rate", self.rate)
        check_int(f"{name}.clients", self.clients, 1)
        check_positive(f"{name}.timeout_s", self.timeout_s)
        for f, share in self.mix().items():
            check_non_negative(f"{name}.{f}", share)
        if sum(self.mix().values()) <= 0:
            raise ValueError(f"{name} needs some operations: its mix {self.mix()} sums to 0")

    @property
    def horizon_s(self) -> float:
        """About how long the operations take to issue: n_ops / rate."""
        return self.n_ops / self.rate

    def mix(self) -> dict[str, float]:
        """Each operation's share of the workload."""
        raise NotImplementedError

    def key_count(self) -> int:
        return 1

    def argument(self, f: str, planned: _Planned, fresh: int, seen: Any) -> Any:
        """The operation's argument: a unique ``fresh`` number for writes and adds."""
        return None if f in ("read", "generate") else fresh

    def check(self, history: History) -> CheckResult:
        """The checker this workload's history calls for."""
        raise NotImplementedError

    def plan(self, rng: np.random.Generator, nodes: tuple[str, ...]) -> list[list[_Planned]]:
        """Every client's script: think time, operation, key, node, amount."""
        mix = self.mix()
        fs, shares = list(mix), np.array(list(mix.values()), dtype=float)
        n = self.n_ops
        client = np.arange(n) % self.clients
        gaps = rng.exponential(self.clients / self.rate, n)
        kinds = rng.choice(len(fs), n, p=shares / shares.sum())
        keys = rng.integers(0, self.key_count(), n)
        where = rng.integers(0, len(nodes), n)
        amounts = rng.integers(1, 6, n)
        scripts: list[list[_Planned]] = [[] for _ in range(self.clients)]
        for i in range(n):
            scripts[client[i]].append(_Planned(float(gaps[i]), fs[kinds[i]], int(keys[i]),
                                               nodes[where[i]], int(amounts[i])))
        return scripts


@dataclass(frozen=True)
class RegisterWorkload(Workload):
    """Reads, writes and compare-and-sets on ``keys`` registers (a key-value store when
    ``keys`` > 1), each starting at None."""

    keys: int = 1
    read: float = 0.5
    write: float = 0.3
    cas: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("RegisterWorkload.keys", self.keys, 1)

    def mix(self) -> dict[str, float]:
        return {"read": self.read, "write": self.write, "cas": self.cas}

    def key_count(self) -> int:
        return self.keys

    def argument(self, f: str, planned: _Planned, fresh: int, seen: Any) -> Any:
        return (seen, fresh) if f == "cas" else super().argument(f, planned, fresh, seen)

    def check(self, history: History) -> CheckResult:
        return check_linearizable(history)


@dataclass(frozen=True)
class _ReadAddWorkload(Workload):
    """Adds and reads of one growing value, ended by a read from every node."""

    read: float = 0.2
    add: float = 0.8

    final_reads: ClassVar[bool] = True

    def mix(self) -> dict[str, float]:
        return {"read": self.read, "add": self.add}


@dataclass(frozen=True)
class SetWorkload(_ReadAddWorkload):
    """Adds of unique elements to one grow-only set, and reads of the whole set."""

    def check(self, history: History) -> CheckResult:
        return check_set(history)


@dataclass(frozen=True)
class CounterWorkload(_ReadAddWorkload):
    """Adds of 1 to 5 to one counter starting at 0, and reads of its value."""

    def argument(self, f: str, planned: _Planned, fresh: int, seen: Any) -> Any:
        return planned.amount if f == "add" else None

    def check(self, history: History) -> CheckResult:
        return check_counter(history)


@dataclass(frozen=True)
class UniqueIdWorkload(Workload):
    """Requests for identifiers, every one of which must differ from every other."""

    def mix(self) -> dict[str, float]:
        return {"generate": 1.0}

    def check(self, history: History) -> CheckResult:
        return check_unique_ids(history)


class _Client:
    """One client: plays its script against the network and writes the history."""

    def __init__(self, env: simpy.Environment, client: int, workload: Workload,
                 network: Network, log: HistoryLog) -> None:
        self.env, self.client, self.workload = env, client, workload
        self.network, self.log, self.name = network, log, f"c{client}"
        self._waiting: dict[int, simpy.Event] = {}
        self._seen: dict[Hashable, Any] = {}
        network.attach(self.name, self._on_reply)

    def _on_reply(self, src: str, reply: _Reply) -> None:
        event = self._waiting.pop(reply.id, None)
        if event is not None:
            event.succeed(reply)

    def call(self, planned: _Planned) -> Generator[simpy.Event, Any, None]:
        """Ask ``planned.node`` for one operation and wait for its answer or the timeout."""
        env, log = self.env, self.log
        fresh = log.next_index
        value = self.workload.argument(planned.f, planned, fresh, self._seen.get(planned.key))
        index = log.invoke(self.client, planned.f, planned.key, value, planned.node, env.now)
        answer = self._waiting[index] = env.event()
        self.network.send(self.name, planned.node,
                          Request(index, self.client, planned.f, planned.key, value))
        yield answer | env.timeout(self.workload.timeout_s)
        if not answer.triggered:
            del self._waiting[index]
            log.complete(index, Status.UNKNOWN, None, env.now)
            return
        reply: _Reply = answer.value
        if not reply.ok:
            log.complete(index, Status.FAIL, None, env.now)
            return
        log.complete(index, Status.OK, reply.value, env.now)
        if planned.f == "read":
            self._seen[planned.key] = reply.value
        elif planned.f in ("write", "cas"):
            self._seen[planned.key] = value if planned.f == "write" else value[1]

    def play(self, script: list[_Planned]) -> Generator[simpy.Event, Any, None]:
        for planned in script:
            yield self.env.timeout(planned.gap_s)
            yield from self.call(planned)


def final_reads(env: simpy.Environment, client: _Client, nodes: tuple[str, ...],
                after: Callable[[], float]) -> Generator[simpy.Event, Any, None]:
    """At time ``after()``, read once from every node at the same moment."""
    yield env.timeout(max(after() - env.now, 0.0))
    calls = [env.process(client.call(_Planned(0.0, "read", 0, node, 0))) for node in nodes]
    yield env.all_of(calls)
