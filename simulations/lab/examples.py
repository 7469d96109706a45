"""Two tiny register services to try the lab on: one correct, one subtly broken.

Picture a library with one master catalogue. In ``SingleLeaderRegister`` every question, even
"is this book in?", goes to the head librarian (node ``n1``), who alone keeps the catalogue, on
disk, and notes every request already answered so a letter delivered twice is not filed twice:
slow when the head office is far or down, but never wrong, so it passes the linearizability
checker under any nemesis. ``ReadAnyReplica`` lets every branch answer "is this book in?" from
its own copy, which the head librarian updates by post after answering a change: quicker, and
wrong whenever a copy lags, so a client can read an old value after a newer write has been
acknowledged (a stale read), which the checker finds and draws.
"""

from __future__ import annotations

from typing import Any

from simulations.lab.node import Context, Node, Request

__all__ = ["ReadAnyReplica", "SingleLeaderRegister", "apply_register"]


def apply_register(registers: dict, request: Request) -> tuple[bool, Any]:
    """Run one read, write or compare-and-set on ``registers``: (happened?, value to return)."""
    current = registers.get(request.key)
    if request.f == "read":
        return True, current
    if request.f == "write":
        registers[request.key] = request.value
        return True, None
    expected, new = request.value
    if current != expected:
        return False, None
    registers[request.key] = new
    return True, None


class SingleLeaderRegister(Node):
    """Followers forward every request to the leader ``n1``, which runs it on the registers it
    keeps on disk and answers the client; it remembers each request's answer, so a duplicated
    message is answered again, not applied twice."""

    def on_request(self, ctx: Context, request: Request) -> None:
        if ctx.node_id == ctx.nodes[0]:
            self._apply(ctx, request)
        else:
            ctx.send(ctx.nodes[0], request)

    def on_message(self, ctx: Context, src: str, message: Request) -> None:
        self._apply(ctx, message)

    def _apply(self, ctx: Context, request: Request) -> None:
        answers = ctx.disk.setdefault("answers", {})
        if request.id not in answers:
            answers[request.id] = apply_register(ctx.disk.setdefault("registers", {}), request)
        ok, value = answers[request.id]
        if ok:
            ctx.reply(request, value)
        else:
            ctx.fail(request)


class ReadAnyReplica(SingleLeaderRegister):
    """Like ``SingleLeaderRegister`` for writes and compare-and-sets, but any node answers a
    read from its own copy, and the leader copies each change to the followers only after
    answering (asynchronous replication): broken, by stale reads."""

    def on_request(self, ctx: Context, request: Request) -> None:
        if request.f == "read":
            ctx.reply(request, ctx.disk.get("registers", {}).get(request.key))
        else:
            super().on_request(ctx, request)

    def on_message(self, ctx: Context, src: str, message: Any) -> None:
        if isinstance(message, Request):
            self._apply(ctx, message)
        else:
            _, key, value = message
            ctx.disk.setdefault("registers", {})[key] = value

    def _apply(self, ctx: Context, request: Request) -> None:
        super()._apply(ctx, request)
        ctx.broadcast(("copy", request.key, ctx.disk["registers"].get(request.key)))
