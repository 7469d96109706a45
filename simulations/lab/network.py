"""The network between the nodes: links with latencies, the nemesis's faults, and a journal.

Picture the firm's internal post. Each letter takes its own time to arrive (a draw from the
link's ``Latency`` distribution, the toolkit's ``simulations.distributions``); a link delivers
in the order letters were posted unless the nemesis lets them overtake (``Reorder``); letters
may go missing (``Loss``), arrive twice (``Duplicate``), or be stopped at a closed border
(``Partition``, ``OneWay``: checked when the letter arrives), and a letter to a burnt-down
office is lost (``down``). The post room writes every letter in a ledger, the ``Journal``: who
sent what to whom, when it was posted and when it arrived, or what became of it.

Clients reach the nodes over links with latency only: the nemesis's link faults act between
nodes, while a crashed or paused node is as unreachable to a client as to a peer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from patterns.checks import check_positive
from simulations.distributions import Distribution, make_distribution
from simulations.lab.nemesis import Duplicate, Loss, Nemesis, OneWay, Partition, Reorder

__all__ = ["FATES", "Journal", "Latency", "MessageTable", "Network"]

FATES = ("delivered", "lost", "cut", "down", "in flight")
"""What became of a message: arrived; dropped by ``Loss``; dropped at a ``Partition`` or
``OneWay`` cut; its receiver was crashed; still travelling when the run ended."""


@dataclass(frozen=True)
class Latency:
    """The one-way delay of the links from ``src`` to ``dst`` (None: any), as a toolkit
    distribution by name (``make_distribution``): e.g. ``Latency(0.005)`` (exponential, mean
    5 ms), ``Latency(0.05, "lognormal", scv=4, src="n1")``. The first match in a scenario's
    list applies."""

    mean_s: float = 0.005
    distribution: str = "exponential"
    scv: float | None = None
    src: str | None = None
    dst: str | None = None

    def make(self) -> Distribution:
        check_positive("Latency.mean_s", self.mean_s)
        return make_distribution(self.distribution, self.mean_s, self.scv)

    def matches(self, src: str, dst: str) -> bool:
        return self.src in (None, src) and self.dst in (None, dst)


class Journal:
    """Every message of a run, one row each, written while it runs (see ``MessageTable``)."""

    def __init__(self) -> None:
        self.src: list[str] = []
        self.dst: list[str] = []
        self.sent_s: list[float] = []
        self.arrived_s: list[float] = []
        self.fate: list[str] = []
        self.copy_of: list[int] = []
        self.body: list[Any] = []

    def add(self, src: str, dst: str, sent_s: float, body: Any, fate: str = "in flight",
            copy_of: int = -1) -> int:
        self.src.append(src)
        self.dst.append(dst)
        self.sent_s.append(sent_s)
        self.arrived_s.append(np.nan)
        self.fate.append(fate)
        self.copy_of.append(copy_of)
        self.body.append(body)
        return len(self.src) - 1

    def table(self) -> MessageTable:
        return MessageTable(np.array(self.src, dtype=str), np.array(self.dst, dtype=str),
                            np.array(self.sent_s, dtype=float),
                            np.array(self.arrived_s, dtype=float),
                            np.array(self.fate, dtype=str), np.array(self.copy_of, dtype=int),
                            tuple(self.body))


@dataclass(frozen=True, eq=False)
class MessageTable:
    """A run's messages as columns: ``src``, ``dst``, ``sent_s``, ``arrived_s`` (when it
    reached the receiver or its cut; NaN if lost or still in flight), ``fate`` (one of
    ``FATES``), ``copy_of`` (the row this is a duplicate of, -1 if none) and ``body`` (the
    message itself)."""

    src: np.ndarray
    dst: np.ndarray
    sent_s: np.ndarray
    arrived_s: np.ndarray
    fate: np.ndarray
    copy_of: np.ndarray
    body: tuple[Any, ...]

    def __len__(self) -> int:
        return len(self.src)

    def between_nodes(self, nodes: Sequence[str]) -> np.ndarray:
        """Mask of the messages from one node to another (not to or from clients)."""
        return np.isin(self.src, nodes) & np.isin(self.dst, nodes)

    def rows(self) -> list[tuple]:
        """Every message as a plain tuple, to compare two runs message for message."""
        return [(str(s), str(d), float(t), None if np.isnan(a) else float(a), str(f), int(c),
                 repr(b)) for s, d, t, a, f, c, b in zip(
            self.src, self.dst, self.sent_s, self.arrived_s, self.fate, self.copy_of,
            self.body, strict=True)]


class Network:
    """Carries messages between endpoints (nodes and clients), applying the nemesis."""

    def __init__(self, env: simpy.Environment, nodes: Sequence[str], latency: Sequence[Latency],
                 rng: np.random.Generator, nemesis: Nemesis) -> None:
        self.env, self.rng, self.nodes = env, rng, set(nodes)
        self.journal = Journal()
        self._latency = tuple(latency)
        self._made: dict[Latency, Distribution] = {}
        self._links: dict[tuple[str, str], Distribution] = {}
        self._last_arrival: dict[tuple[str, str], float] = {}
        self._endpoints: dict[str, Callable[[str, Any], None]] = {}
        self._is_up: dict[str, Callable[[], bool]] = {}
        self._loss = nemesis.of(Loss)
        self._duplicate = nemesis.of(Duplicate)
        self._reorder = nemesis.of(Reorder)
        self._cuts = nemesis.of(Partition, OneWay)

    def attach(self, name: str, deliver: Callable[[str, Any], None],
               is_up: Callable[[], bool] = lambda: True) -> None:
        """Make ``name`` reachable: ``deliver(src, message)`` is called when a message arrives
        and ``is_up()`` is true."""
        self._endpoints[name] = deliver
        self._is_up[name] = is_up

    def link(self, src: str, dst: str) -> Distribution:
        """The latency distribution of the link from ``src`` to ``dst``."""
        key = (src, dst)
        if key not in self._links:
            spec = next((s for s in self._latency if s.matches(src, dst)), None)
            if spec is None:
                raise ValueError(f"no Latency matches the link {src}→{dst}: add a Latency "
                                 f"without src and dst as the default")
            if spec not in self._made:
                self._made[spec] = spec.make()
            self._links[key] = self._made[spec]
        return self._links[key]

    def send(self, src: str, dst: str, body: Any) -> None:
        """Post ``body`` from ``src`` to ``dst`` now."""
        if dst not in self._endpoints:
            raise ValueError(f"{src} sent a message to {dst!r}, which is not in this run "
                             f"(nodes: {', '.join(sorted(self.nodes))})")
        now = self.env.now
        copies = 1
        if src in self.nodes and dst in self.nodes:
            if any(f.applies(now, src, dst) and self.rng.random() < f.probability
                   for f in self._loss):
                self.journal.add(src, dst, now, body, "lost")
                return
            copies += any(f.applies(now, src, dst) and self.rng.random() < f.probability
                          for f in self._duplicate)
        ordered = not any(f.applies(now, src, dst) for f in self._reorder)
        first = -1
        for _ in range(copies):
            arrival = now + float(self.link(src, dst).sample(self.rng))
            if ordered:
                arrival = max(arrival, self._last_arrival.get((src, dst), 0.0))
                self._last_arrival[(src, dst)] = arrival
            row = self.journal.add(src, dst, now, body, copy_of=first)
            first = row if first == -1 else first
            event = self.env.timeout(arrival - now)
            event.callbacks.append(lambda _, row=row: self._arrive(row))

    def _arrive(self, row: int) -> None:
        journal, now = self.journal, self.env.now
        src, dst = journal.src[row], journal.dst[row]
        journal.arrived_s[row] = now
        if src in self.nodes and dst in self.nodes and any(
                cut.cuts(now, src, dst) for cut in self._cuts):
            journal.fate[row] = "cut"
        elif not self._is_up[dst]():
            journal.fate[row] = "down"
        else:
            journal.fate[row] = "delivered"
            self._endpoints[dst](src, journal.body[row])
