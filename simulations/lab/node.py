"""A node: a small class whose handlers run when a message, a timer or a client request arrives.

Picture a clerk in one branch office of a firm. Letters from other branches arrive
(``on_message``), an alarm clock rings (``on_timer``), a customer walks in (``on_request``); the
clerk reads the office's own wall clock (``ctx.now``, which may be wrong), writes letters
(``ctx.send``), sets alarms (``ctx.set_timer``), answers the customer (``ctx.reply`` /
``ctx.fail``) and files things in a cabinet that survives a fire (``ctx.disk``). Whatever the
clerk only remembers (attributes on ``self``) is lost when the office burns down and is rebuilt:
a crash-restart makes a new instance of the class and calls ``on_start`` again, with the same
disk.

Write a node by subclassing ``Node``: ``on_request`` is required (clients talk to it);
``on_message`` and ``on_timer`` as the protocol needs; ``on_start`` to set up (also after a
restart). Handlers are plain methods and take no simulated time.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

__all__ = ["Context", "Node", "Request", "check_node_class"]


@dataclass(frozen=True)
class Request:
    """A client's operation as the node sees it: answer it with ``ctx.reply`` or ``ctx.fail``
    (any node may answer it, e.g. the leader a follower forwarded it to)."""

    id: int
    client: int
    f: str
    key: Hashable
    value: Any


class Node:
    """Subclass this and define the handlers your protocol needs; ``on_request`` is required."""

    def on_start(self, ctx: Context) -> None:
        """Called when the node starts, and again after every restart (read ``ctx.disk``)."""

    def on_message(self, ctx: Context, src: str, message: Any) -> None:
        raise NotImplementedError(
            f"{ctx.node_id} got a message from {src} but {type(self).__name__} defines no "
            f"on_message(ctx, src, message)")

    def on_timer(self, ctx: Context, name: Hashable) -> None:
        raise NotImplementedError(
            f"{ctx.node_id}'s timer {name!r} rang but {type(self).__name__} defines no "
            f"on_timer(ctx, name)")


def check_node_class(node_class: object) -> type:
    """The class itself if it can serve clients, else one ValueError naming it."""
    if not (isinstance(node_class, type) and callable(getattr(node_class, "on_request", None))):
        name = getattr(node_class, "__name__", repr(node_class))
        raise ValueError(f"node class {name} has no on_request handler: a node must define "
                         f"on_request(ctx, request) to answer clients (and on_message, on_timer "
                         f"as its protocol needs)")
    return node_class


class _Clock:
    """A node's wall clock: ``local = base + rate * (now - since)``; skew jumps it, drift
    changes its rate (1 + drift)."""

    def __init__(self) -> None:
        self.base, self.since, self.rate = 0.0, 0.0, 1.0

    def local(self, now: float) -> float:
        return self.base + self.rate * (now - self.since)

    def adjust(self, now: float, skew_s: float, drift: float) -> None:
        self.base, self.since = self.local(now) + skew_s, now
        self.rate = 1.0 + drift


class Context:
    """What a node's handlers may do and read: the node's id, its peers, its clock, its disk.

    The lab hands each handler the context of the node's current incarnation.
    """

    def __init__(self, host: _Host) -> None:
        self._host = host
        self.node_id: str = host.node_id
        self.nodes: tuple[str, ...] = host.nodes
        self.disk: dict[Hashable, Any] = host.disk
        self.rng: np.random.Generator = host.rng

    @property
    def now(self) -> float:
        """The node's own clock, in seconds (skewed and drifting if the nemesis says so)."""
        return self._host.clock.local(self._host.env.now)

    @property
    def peers(self) -> tuple[str, ...]:
        """Every other node."""
        return tuple(n for n in self.nodes if n != self.node_id)

    def send(self, dst: str, message: Any) -> None:
        """Send ``message`` (any Python value) to node ``dst`` over the network."""
        self._host.send(dst, message)

    def broadcast(self, message: Any) -> None:
        """Send ``message`` to every other node."""
        for peer in self.peers:
            self._host.send(peer, message)

    def set_timer(self, delay_s: float, name: Hashable = None) -> None:
        """Ring ``on_timer(ctx, name)`` after ``delay_s`` seconds of this node's clock."""
        self._host.set_timer(delay_s, name)

    def reply(self, request: Request, value: Any = None) -> None:
        """Answer ``request``: it happened, and ``value`` is its result (a read's value)."""
        self._host.answer(request, True, value)

    def fail(self, request: Request) -> None:
        """Answer ``request``: it certainly did not happen (a refused compare-and-set)."""
        self._host.answer(request, False, None)


class _Host:
    """The machine a node runs on: it starts, crashes, restarts and pauses the node, and calls
    its handlers, queueing what arrives while the node is paused."""

    def __init__(self, env: simpy.Environment, node_id: str, nodes: tuple[str, ...],
                 node_class: type, rng: np.random.Generator,
                 send: Callable[[str, str, Any], None]) -> None:
        self.env, self.node_id, self.nodes = env, node_id, nodes
        self.node_class, self.rng, self._send = node_class, rng, send
        self.disk: dict[Hashable, Any] = {}
        self.clock = _Clock()
        self.up, self.paused, self.incarnation = False, False, 0
        self._backlog: list[Callable[[], None]] = []
        self.node: Any = None
        self.ctx: Context | None = None

    def start(self) -> None:
        self.up, self.paused, self.incarnation = True, False, self.incarnation + 1
        self.node, self.ctx = self.node_class(), Context(self)
        self.node.on_start(self.ctx)

    def crash(self) -> None:
        self.up, self.paused, self.node, self.ctx = False, False, None, None
        self._backlog.clear()

    def pause(self) -> None:
        self.paused = self.up

    def resume(self) -> None:
        if not self.paused:
            return
        self.paused = False
        backlog, self._backlog = self._backlog, []
        for handle in backlog:
            if self.up and not self.paused:
                handle()

    def _run(self, handle: Callable[[], None]) -> None:
        if self.paused:
            self._backlog.append(handle)
        elif self.up:
            handle()

    def deliver(self, src: str, message: Any) -> None:
        """A message arrived (the network checked the node is up)."""
        if isinstance(message, Request):
            self._run(lambda: self.node.on_request(self.ctx, message))
        else:
            self._run(lambda: self.node.on_message(self.ctx, src, message))

    def send(self, dst: str, message: Any) -> None:
        self._send(self.node_id, dst, message)

    def answer(self, request: Request, ok: bool, value: Any) -> None:
        self._send(self.node_id, f"c{request.client}", _Reply(request.id, ok, value))

    def set_timer(self, delay_s: float, name: Hashable) -> None:
        if not delay_s >= 0:
            raise ValueError(f"set_timer delay_s must be >= 0 (got {delay_s!r})")
        incarnation = self.incarnation
        event = self.env.timeout(delay_s / self.clock.rate)

        def ring(_: simpy.Event) -> None:
            if self.incarnation == incarnation:
                self._run(lambda: self.node.on_timer(self.ctx, name))

        event.callbacks.append(ring)


@dataclass(frozen=True)
class _Reply:
    """A node's answer to request ``id``, on its way to the client."""

    id: int
    ok: bool
    value: Any
