"""Primary-backup registers: one that keeps every acknowledged write through a failover, and one
that loses some.

Picture a shop with a head cashier and a deputy. Customers may queue at either till; the
deputy passes every request to whoever is in charge. The head cashier sends the deputy a copy
of every sale. If the head cashier faints, the deputy notices (no word from the head cashier
for a while) and takes over with the copies already received. ``SyncPrimaryBackup`` answers a
customer only once the copy has reached every deputy, so taking over loses nothing the shop
has confirmed. ``AsyncPrimaryBackup`` answers at once and posts the copies in a batch every
``ship_s`` seconds: faster and cheaper, but when the head cashier faints, the sales of the last
batch that was never posted are gone, although their customers were told "done". That is the
anomaly the linearizability checker catches: a read after the failover returns an older value
than a write that had completed before it.

The nodes speak the protocol lab's interface (``on_start``, ``on_request``, ``on_message``,
``on_timer``, and a context with ``node_id``, ``nodes``, ``peers``, ``now``, ``disk``, ``send``,
``broadcast``, ``set_timer``, ``reply``, ``fail``) by duck typing, so nothing here imports the
lab or any study. Failover is decided by heartbeats: each node beats every ``heartbeat_s`` and
takes as primary the first node, in name order, that it has heard from within
``suspect_after_s`` (itself included). That is sound for crash-stop failures on reliable links;
a partition lets two nodes both act as primary (split brain), which needs consensus, not
heartbeats.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

__all__ = ["AsyncPrimaryBackup", "PrimaryBackup", "SyncPrimaryBackup", "apply_register"]


def apply_register(registers: dict, f: str, key: Hashable, value: Any) -> tuple[bool, Any]:
    """Run one ``read``, ``write`` or ``cas`` (value = (expected, new)) on ``registers``:
    (happened?, the value to return)."""
    current = registers.get(key)
    if f == "read":
        return True, current
    if f == "write":
        registers[key] = value
        return True, None
    expected, new = value
    if current != expected:
        return False, None
    registers[key] = new
    return True, None


class PrimaryBackup:
    """What both designs share: heartbeats, the choice of primary, forwarding to it, and
    applying copies on a backup. Subclasses define ``serve`` (the primary's handling of a
    request)."""

    heartbeat_s = 0.05
    suspect_after_s = 0.25

    def on_start(self, ctx: Any) -> None:
        self.last_heard = {peer: ctx.now for peer in ctx.peers}
        ctx.set_timer(self.heartbeat_s, "beat")

    def primary(self, ctx: Any) -> str:
        """The first node, in name order, that this node believes is up."""
        for node in ctx.nodes:
            if node == ctx.node_id or ctx.now - self.last_heard[node] < self.suspect_after_s:
                return node
        return ctx.node_id

    def on_request(self, ctx: Any, request: Any) -> None:
        leader = self.primary(ctx)
        if leader == ctx.node_id:
            self.serve(ctx, request)
        else:
            ctx.send(leader, ("forward", request))

    def on_message(self, ctx: Any, src: str, message: tuple) -> None:
        self.last_heard[src] = ctx.now
        kind = message[0]
        if kind == "forward":
            self.on_request(ctx, message[1])
        elif kind == "copy":
            for key, value in message[1]:
                ctx.disk.setdefault("registers", {})[key] = value
            if len(message) > 2:
                ctx.send(src, ("ack", message[2]))
        elif kind == "ack":
            self.acked(ctx, src, message[1])

    def on_timer(self, ctx: Any, name: Hashable) -> None:
        if name == "beat":
            ctx.broadcast(("beat",))
            ctx.set_timer(self.heartbeat_s, "beat")

    def apply(self, ctx: Any, request: Any) -> tuple[bool, Any]:
        """Apply ``request`` to this node's registers on disk, once per request id."""
        answers = ctx.disk.setdefault("answers", {})
        if request.id not in answers:
            answers[request.id] = apply_register(ctx.disk.setdefault("registers", {}),
                                                 request.f, request.key, request.value)
        return answers[request.id]

    def answer(self, ctx: Any, request: Any, ok: bool, value: Any) -> None:
        if ok:
            ctx.reply(request, value)
        else:
            ctx.fail(request)

    def serve(self, ctx: Any, request: Any) -> None:
        raise NotImplementedError

    def acked(self, ctx: Any, src: str, tag: Any) -> None:
        """A backup confirmed copy ``tag`` (only the synchronous design waits for this)."""


class AsyncPrimaryBackup(PrimaryBackup):
    """The primary answers at once and ships the changed registers to the backups in one batch
    every ``ship_s`` seconds (asynchronous replication): a failover loses the last batch's
    acknowledged writes. Broken, by design."""

    ship_s = 0.1

    def on_start(self, ctx: Any) -> None:
        super().on_start(ctx)
        self.unshipped: dict[Hashable, Any] = {}
        ctx.set_timer(self.ship_s, "ship")

    def serve(self, ctx: Any, request: Any) -> None:
        ok, value = self.apply(ctx, request)
        if ok and request.f != "read":
            self.unshipped[request.key] = ctx.disk["registers"][request.key]
        self.answer(ctx, request, ok, value)

    def on_timer(self, ctx: Any, name: Hashable) -> None:
        if name != "ship":
            return super().on_timer(ctx, name)
        if self.unshipped:
            ctx.broadcast(("copy", tuple(self.unshipped.items())))
            self.unshipped = {}
        ctx.set_timer(self.ship_s, "ship")


class SyncPrimaryBackup(PrimaryBackup):
    """The primary sends each change to every backup it believes up and answers the client only
    when all of them have acknowledged it (synchronous replication), or have since been
    suspected of having crashed: every acknowledged write is on every live backup, so a
    failover keeps it."""

    def on_start(self, ctx: Any) -> None:
        super().on_start(ctx)
        self.waiting: dict[int, tuple[Any, bool, Any, set[str]]] = {}

    def serve(self, ctx: Any, request: Any) -> None:
        ok, value = self.apply(ctx, request)
        up = {peer for peer in ctx.peers if ctx.now - self.last_heard[peer] < self.suspect_after_s}
        if not ok or request.f == "read" or not up:
            return self.answer(ctx, request, ok, value)
        self.waiting[request.id] = (request, ok, value, up)
        copy = (("copy", ((request.key, ctx.disk["registers"][request.key]),), request.id))
        for peer in sorted(up):
            ctx.send(peer, copy)

    def acked(self, ctx: Any, src: str, tag: int) -> None:
        if tag in self.waiting:
            self.waiting[tag][3].discard(src)
            self._release(ctx)

    def on_timer(self, ctx: Any, name: Hashable) -> None:
        super().on_timer(ctx, name)
        for _, _, _, pending in self.waiting.values():
            pending.difference_update(
                {p for p in pending if ctx.now - self.last_heard[p] >= self.suspect_after_s})
        self._release(ctx)

    def _release(self, ctx: Any) -> None:
        for tag in [t for t, entry in self.waiting.items() if not entry[3]]:
            request, ok, value, _ = self.waiting.pop(tag)
            self.answer(ctx, request, ok, value)
