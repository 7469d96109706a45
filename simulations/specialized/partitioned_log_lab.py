"""At-least-once delivery in the protocol lab: a broker, consumers and a counting sink.

Picture the sorting office once more, now with a tally board at the end of the belts. A clerk
takes letters off a belt, adds each letter's amount to the board, and now and then tells the
supervisor how far down the belt they are (commits the offset). If the clerk faints after the
board was updated but before the supervisor heard, the next clerk starts from the supervisor's
note and adds those letters again: the board over-counts, unless the board itself remembers, per
belt, the number of the last letter it added (an idempotent sink).

One node class plays every role, by name: ``n1`` is the broker (the partitioned log and the
committed offsets, on disk), the last node is the sink (the counter, on disk), the nodes in
between are consumers, each owning partitions p with p mod C = its index. Clients' ``add``
requests go (through any node) to the broker, which appends and acknowledges them; ``read``
requests go to the sink, which answers once it has applied every record the broker held when
the read arrived, so the lab's counter checker can judge it: a double count shows as a read
above every amount that could have been added. Consumers poll every ``poll_s``, send each batch
to the sink, advance when the sink acknowledges it and commit every ``commit_s``; a consumer
that restarts (its memory gone) asks the broker for its committed offsets.

`LogPipeline.apply` is the sink's step: `CountEverything` adds every record it is sent (broken),
`SkipSeenOffsets` skips offsets below the partition's next expected one (idempotent).
`DuplicatingBroker` appends a duplicated produce request twice, as a producer without
idempotence does.
"""

from __future__ import annotations

from typing import Any

from simulations.lab import (
    CounterWorkload,
    Crash,
    Nemesis,
    Node,
    RandomNemesis,
    Request,
    Scenario,
)

__all__ = ["CountEverything", "DuplicatingBroker", "LogPipeline", "SkipSeenOffsets",
           "crash_scenario", "random_scenario"]


class LogPipeline(Node):
    """Broker, consumers and sink in one class; subclasses choose the sink's `apply`."""

    partitions = 4
    poll_s = 0.05
    commit_s = 0.5
    retry_s = 0.3  # a batch the sink has not acknowledged by then is sent again
    batch = 10
    dedupe_produce = True  # the broker drops a produce request it has already appended

    # ------------------------------------------------ roles
    def on_start(self, ctx) -> None:
        nodes = sorted(ctx.nodes, key=lambda name: int(name[1:]))
        self.broker, self.sink, consumers = nodes[0], nodes[-1], nodes[1:-1]
        self.role = ("broker" if ctx.node_id == self.broker else
                     "sink" if ctx.node_id == self.sink else "consumer")
        if self.role == "broker":
            ctx.disk.setdefault("log", [[] for _ in range(self.partitions)])
            ctx.disk.setdefault("committed", [0] * self.partitions)
            ctx.disk.setdefault("produced", set())
        elif self.role == "sink":
            ctx.disk.setdefault("total", 0)
            ctx.disk.setdefault("next", [0] * self.partitions)
            self.waiting: dict[int, tuple[Request, list[int]]] = {}
        else:
            index = consumers.index(ctx.node_id)
            self.owned = [p for p in range(self.partitions) if p % len(consumers) == index]
            self.position: dict[int, int] | None = None  # unknown until the broker says
            self.in_flight: dict[int, float] = {}  # partition -> when its batch was sent
            ctx.set_timer(0.0, "poll")
            ctx.set_timer(self.commit_s, "commit")

    def on_request(self, ctx, request: Request) -> None:
        if request.f == "add":
            if self.role != "broker":
                return ctx.send(self.broker, request)
            produced = ctx.disk["produced"]
            if not (self.dedupe_produce and request.id in produced):
                produced.add(request.id)
                ctx.disk["log"][request.client % self.partitions].append(
                    (request.id, request.value))
            return ctx.reply(request)
        if self.role != "sink":
            return ctx.send(self.sink, request)
        self.waiting[request.id] = (request, [])
        ctx.send(self.broker, ("ends?", request.id))

    def on_message(self, ctx, src: str, message: Any) -> None:
        getattr(self, f"_{self.role}")(ctx, src, message)

    def on_timer(self, ctx, name) -> None:
        if name == "poll":
            if self.position is None:
                ctx.send(self.broker, ("committed?", tuple(self.owned)))
            else:
                for p in self.owned:
                    if ctx.now - self.in_flight.get(p, -1e9) >= self.retry_s:
                        ctx.send(self.broker, ("fetch", p, self.position[p], self.batch))
            ctx.set_timer(self.poll_s, "poll")
        elif name == "commit":
            if self.position is not None:
                for p in self.owned:
                    ctx.send(self.broker, ("commit", p, self.position[p]))
            ctx.set_timer(self.commit_s, "commit")

    # ------------------------------------------------ the broker
    def _broker(self, ctx, src: str, message: Any) -> None:
        kind, log = message[0], ctx.disk["log"]
        if kind == "fetch":
            _, p, offset, most = message
            records = tuple(log[p][offset:offset + most])
            if records:
                ctx.send(src, ("records", p, offset, records))
        elif kind == "commit":
            ctx.disk["committed"][message[1]] = message[2]
        elif kind == "committed?":
            ctx.send(src, ("committed", {p: ctx.disk["committed"][p] for p in message[1]}))
        elif kind == "ends?":
            ctx.send(src, ("ends", message[1], [len(part) for part in log]))

    # ------------------------------------------------ a consumer
    def _consumer(self, ctx, src: str, message: Any) -> None:
        kind = message[0]
        if kind == "committed" and self.position is None:
            self.position = dict(message[1])
        elif kind == "records" and self.position is not None:
            _, p, offset, records = message
            fresh = ctx.now - self.in_flight.get(p, -1e9) >= self.retry_s
            if offset == self.position[p] and fresh:
                self.in_flight[p] = ctx.now
                ctx.send(self.sink, ("apply", p, offset, records))
        elif kind == "applied" and self.position is not None:
            _, p, next_offset = message
            if next_offset > self.position[p]:
                self.position[p] = next_offset
            self.in_flight.pop(p, None)

    # ------------------------------------------------ the sink
    def _sink(self, ctx, src: str, message: Any) -> None:
        if message[0] == "ends":
            _, read_id, ends = message
            if read_id in self.waiting:
                self.waiting[read_id] = (self.waiting[read_id][0], ends)
        else:
            _, p, offset, records = message
            self.apply(ctx, p, offset, records)
            nxt = ctx.disk["next"]
            nxt[p] = max(nxt[p], offset + len(records))
            ctx.send(src, ("applied", p, offset + len(records)))
        self._answer_reads(ctx)

    def _answer_reads(self, ctx) -> None:
        """Answer every read whose broker ends the sink has now applied."""
        nxt = ctx.disk["next"]
        for read_id, (request, ends) in list(self.waiting.items()):
            if ends and all(done >= end for done, end in zip(nxt, ends, strict=True)):
                del self.waiting[read_id]
                ctx.reply(request, ctx.disk["total"])

    def apply(self, ctx, partition: int, offset: int, records: tuple) -> None:
        """Add the batch's amounts to ``ctx.disk["total"]``. ``records`` are (record id,
        amount) pairs at offsets ``offset``, ``offset + 1``, ...; ``ctx.disk["next"][partition]``
        is the next offset not yet applied (updated after this returns)."""
        raise NotImplementedError("choose a sink: CountEverything or SkipSeenOffsets")


class CountEverything(LogPipeline):
    """The naive sink: every record it is sent is added, replays included."""

    def apply(self, ctx, partition: int, offset: int, records: tuple) -> None:
        ctx.disk["total"] += sum(amount for _, amount in records)


class SkipSeenOffsets(LogPipeline):
    """The idempotent sink: records below the partition's next offset were applied already."""

    def apply(self, ctx, partition: int, offset: int, records: tuple) -> None:
        start = ctx.disk["next"][partition]
        ctx.disk["total"] += sum(amount for k, (_, amount) in enumerate(records)
                                 if offset + k >= start)


class DuplicatingBroker(LogPipeline):
    """A broker without producer idempotence: a duplicated produce is appended twice."""

    dedupe_produce = False


def crash_scenario(n_ops: int = 200) -> Scenario:
    """Two consumers; consumer n2 crashes twice for 0.3 s while work is flowing."""
    return Scenario(nodes=4, workload=CounterWorkload(n_ops=n_ops, rate=50.0, read=0.1, add=0.9),
                    nemesis=Nemesis((Crash("n2", 1.23, 1.53), Crash("n2", 2.71, 3.01))),
                    settle_s=1.5)


def random_scenario(kinds: tuple[str, ...] = ("crash", "loss", "duplicate"),
                    n_ops: int = 200) -> Scenario:
    """Two consumers under a random nemesis of the given kinds."""
    return Scenario(nodes=4, workload=CounterWorkload(n_ops=n_ops, rate=50.0, read=0.1, add=0.9),
                    nemesis=RandomNemesis(kinds=kinds), settle_s=1.5)

