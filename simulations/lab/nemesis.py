"""The nemesis: a written plan of what goes wrong, and when.

Picture a fire drill's script: "at 10:02 the east stairwell is closed; at 10:05 the lift stops
for two minutes; the clock in room 3 runs five minutes fast." The lab reads such a script, a
``Nemesis`` of fault records, and plays it against the nodes and the network:

- on links between nodes: ``Loss`` (each message dropped with a probability), ``Duplicate``
  (delivered twice), ``Reorder`` (links stop keeping order: a later message may overtake),
  ``Partition`` (groups of nodes cannot reach each other, both ways), ``OneWay`` (messages from
  some nodes to others are dropped, the reverse still flows);
- on nodes: ``Crash`` (the node stops; with ``end_s`` it restarts then, its memory lost and its
  disk kept; without, it stays down: crash-stop), ``Pause`` (the node handles nothing, then
  catches up: a long garbage-collection pause), ``ClockSkew`` (its clock jumps, and may drift).

A fault is active in ``[start_s, end_s)``. ``RandomNemesis`` writes such a script from a seed:
quiet spells and faults taking turns, as Jepsen's nemesis does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np

from patterns.checks import check_choice, check_non_negative, check_positive, check_probability

__all__ = ["FAULT_KINDS", "ClockSkew", "Crash", "Duplicate", "Fault", "Loss", "Nemesis",
           "OneWay", "Partition", "Pause", "RandomNemesis", "Reorder"]


def _check_window(fault: object, start_s: float, end_s: float | None) -> None:
    name = type(fault).__name__
    check_non_negative(f"{name}.start_s", start_s)
    if end_s is not None and not end_s > start_s:
        raise ValueError(f"{name}.end_s must be > start_s = {start_s:g} (got {end_s!r})")


def _covers(start_s: float, end_s: float | None, now: float) -> bool:
    return start_s <= now and (end_s is None or now < end_s)


@dataclass(frozen=True)
class _LinkFault:
    """A fault on the links between nodes; ``links`` = ((src, dst), ...), None for every one."""

    start_s: float
    end_s: float | None
    links: tuple[tuple[str, str], ...] | None = None

    def __post_init__(self) -> None:
        _check_window(self, self.start_s, self.end_s)

    def applies(self, now: float, src: str, dst: str) -> bool:
        return _covers(self.start_s, self.end_s, now) and (
            self.links is None or (src, dst) in self.links)

    def named_nodes(self) -> set[str]:
        return {n for link in self.links or () for n in link}


@dataclass(frozen=True)
class Loss(_LinkFault):
    """Each message sent on the links in the window is lost with ``probability``."""

    probability: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_probability("Loss.probability", self.probability)


@dataclass(frozen=True)
class Duplicate(_LinkFault):
    """Each message sent in the window arrives twice with ``probability`` (the copy with a
    latency of its own)."""

    probability: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_probability("Duplicate.probability", self.probability)


@dataclass(frozen=True)
class Reorder(_LinkFault):
    """Links stop delivering in order: each message takes its own latency, so a later one may
    overtake an earlier one (outside the window, each link is first in, first out)."""


@dataclass(frozen=True)
class Partition:
    """Nodes in different ``groups`` cannot reach each other (both ways); nodes in no group
    form one more group. A message is dropped if it arrives while the cut is in place."""

    start_s: float
    end_s: float | None
    groups: tuple[tuple[str, ...], ...]

    def __post_init__(self) -> None:
        _check_window(self, self.start_s, self.end_s)

    def cuts(self, now: float, src: str, dst: str) -> bool:
        if not _covers(self.start_s, self.end_s, now):
            return False
        side = {n: i for i, group in enumerate(self.groups) for n in group}
        return side.get(src, -1) != side.get(dst, -1)

    def named_nodes(self) -> set[str]:
        return {n for group in self.groups for n in group}


@dataclass(frozen=True)
class OneWay:
    """Messages from any of ``src`` to any of ``dst`` are dropped; the other way still works."""

    start_s: float
    end_s: float | None
    src: tuple[str, ...]
    dst: tuple[str, ...]

    def __post_init__(self) -> None:
        _check_window(self, self.start_s, self.end_s)

    def cuts(self, now: float, src: str, dst: str) -> bool:
        return _covers(self.start_s, self.end_s, now) and src in self.src and dst in self.dst

    def named_nodes(self) -> set[str]:
        return set(self.src) | set(self.dst)


@dataclass(frozen=True)
class Crash:
    """``node`` crashes at ``start_s``; with ``end_s`` it restarts then (memory lost, disk
    kept), without it stays down for good (crash-stop)."""

    node: str
    start_s: float
    end_s: float | None = None

    def __post_init__(self) -> None:
        _check_window(self, self.start_s, self.end_s)

    def named_nodes(self) -> set[str]:
        return {self.node}


@dataclass(frozen=True)
class Pause:
    """``node`` handles nothing in the window; what arrives waits, and is handled at the end."""

    node: str
    start_s: float
    end_s: float

    def __post_init__(self) -> None:
        _check_window(self, self.start_s, self.end_s)

    def named_nodes(self) -> set[str]:
        return {self.node}


@dataclass(frozen=True)
class ClockSkew:
    """At ``at_s``, ``node``'s clock jumps by ``skew_s`` and from then runs at ``1 + drift``
    seconds per real second."""

    node: str
    at_s: float
    skew_s: float = 0.0
    drift: float = 0.0

    def __post_init__(self) -> None:
        check_non_negative("ClockSkew.at_s", self.at_s)
        if not self.drift > -1.0:
            raise ValueError(f"ClockSkew.drift must be > -1 (got {self.drift!r})")

    def named_nodes(self) -> set[str]:
        return {self.node}


Fault = Union[Loss, Duplicate, Reorder, Partition, OneWay, Crash, Pause, ClockSkew]  # noqa: UP007
_FAULT_TYPES = (Loss, Duplicate, Reorder, Partition, OneWay, Crash, Pause, ClockSkew)


@dataclass(frozen=True)
class Nemesis:
    """A fault schedule: the faults the run plays, in any order."""

    faults: tuple[Fault, ...] = ()

    def __post_init__(self) -> None:
        for fault in self.faults:
            if not isinstance(fault, _FAULT_TYPES):
                raise ValueError(f"Nemesis faults must be Loss, Duplicate, Reorder, Partition, "
                                 f"OneWay, Crash, Pause or ClockSkew (got {fault!r})")

    def schedule(self, rng: np.random.Generator, nodes: tuple[str, ...],
                 horizon_s: float) -> Nemesis:
        """This schedule itself, checked against the run's ``nodes``."""
        for fault in self.faults:
            unknown = sorted(fault.named_nodes() - set(nodes))
            if unknown:
                raise ValueError(f"{type(fault).__name__} names node {unknown[0]!r}, which is "
                                 f"not in this run (nodes: {', '.join(nodes)})")
        return self

    def of(self, *kinds: type) -> list:
        """The faults of those types, e.g. ``nemesis.of(Crash, Pause)``."""
        return [fault for fault in self.faults if isinstance(fault, kinds)]

    def spans(self) -> list[tuple[float, float | None, str]]:
        """(start_s, end_s, label) of every fault with a window, e.g. to shade on a plot."""
        rows = []
        for fault in self.faults:
            if isinstance(fault, ClockSkew):
                continue
            who = getattr(fault, "node", "")
            rows.append((fault.start_s, fault.end_s, f"{type(fault).__name__} {who}".strip()))
        return rows


FAULT_KINDS = ("loss", "duplicate", "reorder", "partition", "one-way", "crash", "pause", "clock")


@dataclass(frozen=True)
class RandomNemesis:
    """A nemesis written from the run's seed: quiet spells (mean ``mean_quiet_s``) and faults
    (mean ``mean_fault_s``) take turns until the workload's horizon, each fault of a kind drawn
    from ``kinds`` (``FAULT_KINDS``) on randomly chosen nodes.

    A partition splits the nodes into a random minority and majority; a one-way cut drops
    messages from one random half to the other; a crash restarts the node at the fault's end;
    a clock fault jumps one node's clock by up to ``max_skew_s`` either way and makes it drift
    by up to ``max_drift``.
    """

    kinds: tuple[str, ...] = FAULT_KINDS
    mean_quiet_s: float = 1.0
    mean_fault_s: float = 0.5
    loss_probability: float = 0.2
    duplicate_probability: float = 0.2
    max_skew_s: float = 1.0
    max_drift: float = 0.01

    def __post_init__(self) -> None:
        if not self.kinds:
            raise ValueError(f"RandomNemesis.kinds must name at least one of "
                             f"{', '.join(FAULT_KINDS)} (got ())")
        for kind in self.kinds:
            check_choice("RandomNemesis.kinds", kind, FAULT_KINDS)
        check_positive("RandomNemesis.mean_quiet_s", self.mean_quiet_s)
        check_positive("RandomNemesis.mean_fault_s", self.mean_fault_s)
        check_probability("RandomNemesis.loss_probability", self.loss_probability)
        check_probability("RandomNemesis.duplicate_probability", self.duplicate_probability)
        check_non_negative("RandomNemesis.max_skew_s", self.max_skew_s)
        check_non_negative("RandomNemesis.max_drift", self.max_drift)

    def schedule(self, rng: np.random.Generator, nodes: tuple[str, ...],
                 horizon_s: float) -> Nemesis:
        """The concrete fault schedule for a run of ``nodes`` lasting about ``horizon_s``."""
        faults: list[Fault] = []
        t = 0.0
        while True:
            t += float(rng.exponential(self.mean_quiet_s))
            if t >= horizon_s:
                return Nemesis(tuple(faults))
            end = t + float(rng.exponential(self.mean_fault_s))
            faults.append(self._fault(str(rng.choice(self.kinds)), t, end, rng, nodes))
            t = end

    def _fault(self, kind: str, start: float, end: float, rng: np.random.Generator,
               nodes: tuple[str, ...]) -> Fault:
        shuffled = tuple(str(n) for n in rng.permutation(nodes))
        half = len(nodes) // 2
        if kind == "loss":
            return Loss(start, end, probability=self.loss_probability)
        if kind == "duplicate":
            return Duplicate(start, end, probability=self.duplicate_probability)
        if kind == "reorder":
            return Reorder(start, end)
        if kind == "partition":
            return Partition(start, end, (shuffled[:half], shuffled[half:]))
        if kind == "one-way":
            return OneWay(start, end, shuffled[:half], shuffled[half:])
        if kind == "crash":
            return Crash(shuffled[0], start, end)
        if kind == "pause":
            return Pause(shuffled[0], start, end)
        return ClockSkew(shuffled[0], start, float(rng.uniform(-1, 1)) * self.max_skew_s,
                         float(rng.uniform(-1, 1)) * self.max_drift)

