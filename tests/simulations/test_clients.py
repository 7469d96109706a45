"""Callers: timeouts (the server keeps working), request sources, closed-loop users."""

from __future__ import annotations

from collections.abc import Generator

import numpy as np
import pytest
import simpy

from simulations.clients import Client, ClosedLoopUsers, RequestSource
from simulations.distributions import Deterministic
from simulations.faults import FaultSchedule, FaultWindow
from simulations.records import Outcome
from simulations.servers import ServerPool
from simulations.workloads import ConstantArrivals, PoissonArrivals, ZipfKeys


def _slow_backend(env: simpy.Environment, seconds: float) -> ServerPool:
    return ServerPool(env, 1, Deterministic(seconds), np.random.default_rng())


def test_timeout_returns_timeout_but_the_server_finishes_the_work() -> None:
    env = simpy.Environment()
    backend = _slow_backend(env, 2.0)
    client = Client(env, backend, timeout_s=1.0)
    answer = client.call()
    env.run()
    assert answer.value == Outcome.TIMEOUT
    mine, theirs = client.log.table(), backend.log.table()
    assert (mine.end[0], mine.outcome[0]) == (1.0, Outcome.TIMEOUT)
    assert (theirs.end[0], theirs.outcome[0]) == (2.0, Outcome.OK)  # wasted work


def test_answer_before_the_timeout_is_passed_through() -> None:
    env = simpy.Environment()
    client = Client(env, _slow_backend(env, 2.0), timeout_s=3.0)
    answer = client.call(key=5)
    env.run()
    table = client.log.table()
    assert answer.value == Outcome.OK
    assert (table.end[0], table.key[0]) == (2.0, 5)


def test_no_timeout_waits_for_a_rejection_or_an_answer() -> None:
    env = simpy.Environment()
    backend = ServerPool(env, 1, Deterministic(1.0), np.random.default_rng(), capacity=1)
    client = Client(env, backend)
    answers = [client.call(), client.call()]
    env.run()
    assert [a.value for a in answers] == [Outcome.OK, Outcome.REJECTED]


def test_a_worker_is_tied_up_until_the_call_times_out() -> None:
    # A caller pool with one worker in front of a dependency that hangs: each request holds
    # the worker for the full timeout, so the second one starts only when the first gives up.
    env = simpy.Environment()
    hanging = ServerPool(env, 1, Deterministic(0.1), np.random.default_rng(),
                         faults=FaultSchedule([FaultWindow(0.0, 100.0, "hang")]))
    client = Client(env, hanging, timeout_s=2.0)

    def call_dependency(key: int, cls: int) -> Generator[simpy.Event, object, Outcome]:
        return (yield client.call(key, cls))

    caller = ServerPool(env, 1, call_dependency)
    caller.submit()
    caller.submit()
    env.run()
    table = caller.log.table()
    assert table.start.tolist() == [0.0, 2.0]
    assert table.end.tolist() == [2.0, 4.0]
    assert table.outcome.tolist() == [Outcome.TIMEOUT] * 2


def test_request_source_replays_times_keys_and_classes() -> None:
    env = simpy.Environment()
    env.run(until=10.0)  # a source started later is offset to the current time
    seen: list[tuple[float, int, int]] = []
    source = RequestSource(
        env, ConstantArrivals(2.0), lambda key, cls: seen.append((env.now, key, cls)),
        np.random.default_rng(1), n=4, keys=ZipfKeys(3, 1.0), class_weights=[1.0, 0.0, 1.0])
    env.run()
    assert [t for t, _, _ in seen] == pytest.approx([10.5, 11.0, 11.5, 12.0])
    assert [k for _, k, _ in seen] == source.keys.tolist()
    assert {c for _, _, c in seen} <= {0, 2}


def test_request_source_without_keys_sends_minus_one() -> None:
    env = simpy.Environment()
    seen: list[tuple[int, int]] = []
    RequestSource(env, PoissonArrivals(5.0), lambda k, c: seen.append((k, c)),
                  np.random.default_rng(2), horizon_s=10.0)
    env.run()
    assert len(seen) > 0 and set(seen) == {(-1, -1)}


def test_closed_loop_throughput_is_users_over_cycle_time() -> None:
    # Deterministic think Z = 1 s and service D = 0.5 s with no queueing: X = N / (D + Z).
    env = simpy.Environment()
    rng = np.random.default_rng(3)
    backend = ServerPool(env, None, Deterministic(0.5), rng)
    ClosedLoopUsers(env, 6, Deterministic(1.0), backend, rng)
    env.run(until=150.5)  # the 100th cycle of each user ends at 150 s
    completed = int(np.sum(backend.log.table().outcome == Outcome.OK))
    assert completed == 6 * 100


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda env: Client(env, _slow_backend(env, 1.0), timeout_s=0.0),
         "timeout_s must be > 0 (got 0.0)"),
        (lambda env: ClosedLoopUsers(env, 0, Deterministic(1.0), _slow_backend(env, 1.0),
                                     np.random.default_rng()),
         "users must be an integer >= 1 (got 0)"),
        (lambda env: RequestSource(env, PoissonArrivals(1.0), print, np.random.default_rng(),
                                   n=3, class_weights=[0.0, 0.0]),
         "class_weights must have a positive sum"),
        (lambda env: RequestSource(env, PoissonArrivals(1.0), print, np.random.default_rng(),
                                   n=3, class_weights=[-1.0]),
         "class_weights must be >= 0 (got -1.0)"),
    ],
)
def test_bad_configuration_is_named(build, message: str) -> None:
    with pytest.raises(ValueError) as info:
        build(simpy.Environment())
    assert message in str(info.value)
