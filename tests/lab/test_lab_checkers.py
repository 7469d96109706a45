"""The set, counter and unique-id checkers on hand-made histories and on small lab systems;
and bad input to the lab, each with one clear error naming it."""

from __future__ import annotations

import itertools

import pytest

from simulations.lab import (
    Crash,
    History,
    Latency,
    Loss,
    Nemesis,
    Node,
    Op,
    Partition,
    RandomNemesis,
    RegisterWorkload,
    Scenario,
    SetWorkload,
    SingleLeaderRegister,
    Status,
    UniqueIdWorkload,
    check_counter,
    check_set,
    check_unique_ids,
    run,
)

OK, FAIL, UNKNOWN = Status.OK, Status.FAIL, Status.UNKNOWN


def op(f, value=None, output=None, start=0.0, end=1.0, status=OK, node="n1"):
    return Op(0, 0, f, 0, value, output, start, end, status, node)


def test_the_set_checker_measures_time_to_visibility_and_finds_lost_and_phantom_elements():
    h = History.of([op("add", 1, start=0, end=1), op("read", None, frozenset(), 2, 3, node="n2"),
                    op("read", None, frozenset({1}), 4, 5, node="n2"),
                    op("read", None, frozenset({1}), 6, 7, node="n1")])
    result = check_set(h)
    assert result.valid and result.details["visibility_p50_s"] == pytest.approx(3.0)  # 4 - 1
    lost = History.of([*h, op("add", 2, start=8, end=9),
                       op("read", None, frozenset({1}), 10, 11, node="n2")])
    result = check_set(lost)
    assert not result.valid and result.details["lost"] == [2]
    assert [o.f for o in result.witness] == ["add", "read", "read"]  # both nodes lack it
    phantom = History.of([op("add", 1, start=0, end=1, status=FAIL),
                          op("read", None, frozenset({1}), 2, 3)])
    assert "never added" in check_set(phantom).reason


def test_the_counter_checker_bounds_each_read_by_sure_and_possible_adds():
    adds = [op("add", 2, start=0, end=1), op("add", 3, start=0, end=1, status=UNKNOWN),
            op("add", 10, start=0, end=1, status=FAIL)]
    for value, valid in ((2, True), (5, True), (1, False), (6, False), (12, False)):
        result = check_counter(History.of([*adds, op("read", None, value, 2, 3)]))
        assert result.valid == valid, value
    # an add concurrent with the read may or may not be counted
    concurrent = [op("add", 4, start=1, end=5), op("read", None, 0, 2, 3)]
    assert check_counter(History.of(concurrent)).valid


def test_the_unique_id_checker_names_the_operations_sharing_an_id():
    h = History.of([op("generate", None, "a"), op("generate", None, "b"),
                    op("generate", None, "a", 2, 3), op("generate", None, "a", 4, 5, UNKNOWN)])
    result = check_unique_ids(h)
    assert not result.valid and [o.output for o in result.witness] == ["a", "a"]
    assert check_unique_ids(History.of(h.ops[:2])).valid


class LocalSet(Node):
    """Each node keeps its own set and never tells the others: adds are lost to other nodes."""

    def on_request(self, ctx, request):
        elements = ctx.disk.setdefault("set", set())
        if request.f == "add":
            elements.add(request.value)
            ctx.reply(request)
        else:
            ctx.reply(request, frozenset(elements))


class GossipSet(LocalSet):
    """Adds are sent to every peer; reads answer from the local copy."""

    def on_request(self, ctx, request):
        super().on_request(ctx, request)
        if request.f == "add":
            ctx.broadcast(request.value)

    def on_message(self, ctx, src, message):
        ctx.disk.setdefault("set", set()).add(message)


def test_a_gossiped_set_passes_with_its_time_to_visibility_and_a_local_one_loses_adds():
    scenario = Scenario(nodes=3, workload=SetWorkload(n_ops=200, rate=50.0, clients=4))
    gossip = run(GossipSet, scenario, seed=1).check()
    assert gossip.valid and 0 < gossip.details["visibility_p99_s"] < 0.1
    assert set(gossip.details["nodes_read"]) == {"n1", "n2", "n3"}
    local = run(LocalSet, scenario, seed=1).check()
    assert not local.valid and len(local.details["lost"]) > 100


class Counter(Node):
    """Unique ids from a per-node counter, with (node, n) as the id; or, broken, n alone."""

    with_node = True

    def on_request(self, ctx, request):
        n = ctx.disk["next"] = ctx.disk.get("next", 0) + 1
        ctx.reply(request, (ctx.node_id, n) if self.with_node else n)


class BareCounter(Counter):
    with_node = False


def test_unique_ids_with_the_node_name_pass_and_bare_counters_collide():
    scenario = Scenario(nodes=3, workload=UniqueIdWorkload(n_ops=100))
    run(Counter, scenario, seed=1).check().assert_valid()
    assert not run(BareCounter, scenario, seed=1).check().valid


# Bad input: one clear error naming it.

class NoHandlers(Node):
    pass


@pytest.mark.parametrize("make, message", [
    (lambda: run(NoHandlers), "node class NoHandlers has no on_request handler"),
    (lambda: run(SingleLeaderRegister, Scenario(nodes=3, nemesis=Nemesis((Crash("n9", 1.0),)))),
     r"Crash names node 'n9', which is not in this run \(nodes: n1, n2, n3\)"),
    (lambda: Loss(0.0, 1.0, probability=-0.1), r"Loss.probability must be in \[0, 1\] "
                                               r"\(got -0.1\)"),
    (lambda: Partition(2.0, 1.0, groups=(("n1",),)), "Partition.end_s must be > start_s"),
    (lambda: run(SingleLeaderRegister, Scenario(latency=(Latency(0.01, src="n7"),))),
     "Latency names 'n7', which is not in this run"),
    (lambda: run(SingleLeaderRegister, Scenario(latency=(Latency(-1.0),))),
     r"Latency.mean_s must be > 0 \(got -1.0\)"),
    (lambda: RegisterWorkload(rate=0), r"RegisterWorkload.rate must be > 0 \(got 0\)"),
    (lambda: RandomNemesis(kinds=("flood",)), "RandomNemesis.kinds must be one of loss"),
    (lambda: Nemesis(("crash n1",)), "Nemesis faults must be Loss, Duplicate"),
    (lambda: Scenario(nodes=0), r"Scenario.nodes must be an integer >= 1 \(got 0\)"),
])
def test_bad_input_gets_one_clear_error_naming_it(make, message):
    with pytest.raises(ValueError, match=message) as caught:
        make()
    assert "\n" not in str(caught.value)


def test_a_node_that_gets_a_message_it_has_no_handler_for_says_so():
    class Mute(Node):
        def on_request(self, ctx, request):
            ctx.broadcast("hello")
            ctx.reply(request)

    with pytest.raises(NotImplementedError, match=r"n\d got a message from n\d but Mute "
                                                  r"defines no on_message"):
        run(Mute, Scenario(nodes=2, workload=UniqueIdWorkload(n_ops=5, clients=1)))


def test_every_fault_kind_of_the_random_nemesis_appears_and_names_real_nodes():
    plan = RandomNemesis(mean_quiet_s=0.1, mean_fault_s=0.1)
    import numpy as np
    nemesis = plan.schedule(np.random.default_rng(1), ("n1", "n2", "n3"), 20.0)
    kinds = {type(f).__name__ for f in nemesis.faults}
    assert kinds == {"Loss", "Duplicate", "Reorder", "Partition", "OneWay", "Crash", "Pause",
                     "ClockSkew"}
    nemesis.schedule(np.random.default_rng(2), ("n1", "n2", "n3"), 20.0)  # validates names
    starts = [getattr(f, "start_s", getattr(f, "at_s", None)) for f in nemesis.faults]
    assert starts == sorted(starts) and all(a < b for a, b in itertools.pairwise(starts))
