"""The server pool: FIFO order, capacity, utilisation, Little's law, handlers, invariants,
priority and preemptive-resume disciplines."""

from __future__ import annotations

import math
from collections.abc import Generator

import numpy as np
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations.clients import RequestSource
from simulations.distributions import Deterministic, Exponential
from simulations.metrics import number_in_system_over_time, occupancy, time_average, utilisation
from simulations.records import Outcome
from simulations.servers import DISCIPLINES, ServerPool
from simulations.workloads import PoissonArrivals


def _mmc(servers: int, arrival_rate: float, n: int, seed: int, **options) -> ServerPool:
    env = simpy.Environment()
    rng = np.random.default_rng(seed)
    pool = ServerPool(env, servers, Exponential(1.0), rng, **options)
    RequestSource(env, PoissonArrivals(arrival_rate), pool.submit, rng, n=n)
    env.run()
    return pool


def test_fifo_service_starts_in_arrival_order() -> None:
    table = _mmc(3, 2.7, 20_000, seed=1).log.table()
    assert np.all(np.diff(table.arrival) >= 0)
    assert np.all(np.diff(table.start) >= 0)  # first come, first served


def test_deterministic_single_server_timeline() -> None:
    env = simpy.Environment()
    pool = ServerPool(env, 1, Deterministic(2.0), np.random.default_rng())
    for _ in range(3):
        pool.submit()
    assert (pool.busy, pool.queue_length, pool.in_system) == (1, 2, 3)
    env.run()
    table = pool.log.table()
    assert table.start.tolist() == [0.0, 2.0, 4.0]
    assert table.end.tolist() == [2.0, 4.0, 6.0]
    assert (pool.busy, pool.in_system) == (0, 0)


def test_capacity_rejects_arrivals_beyond_k() -> None:
    env = simpy.Environment()
    pool = ServerPool(env, 2, Deterministic(1.0), np.random.default_rng(), capacity=3)
    events = [pool.call() for _ in range(5)]
    env.run()
    assert [e.value for e in events] == [Outcome.OK] * 3 + [Outcome.REJECTED] * 2
    table = pool.log.table()
    assert table.end.tolist() == [1.0, 1.0, 2.0, 0.0, 0.0]  # rejections answered at once
    assert table.server.tolist()[3:] == [-1, -1]


def _batch_halfwidth(values: np.ndarray) -> float:
    """5 standard errors of the mean of batch estimates."""
    return 5 * values.std(ddof=1) / math.sqrt(len(values))


def test_utilisation_matches_offered_load() -> None:
    # M/M/2 at rho = 1.2 / 2 = 0.6; 100,000 customers; tolerance from 20 batch means
    pool = _mmc(2, 1.2, 100_000, seed=2)
    table = pool.log.table()
    end = float(table.arrival[-1])
    edges = np.linspace(0.0, end, 21)
    batches = np.array([utilisation(table, 2, a, b) for a, b in zip(edges, edges[1:],
                                                                      strict=False)])
    assert abs(utilisation(table, 2, 0.0, end) - 0.6) < _batch_halfwidth(batches)
    assert np.all(batches > 0.4) and np.all(batches < 0.8)


def test_littles_law_holds_on_the_sample_path() -> None:
    # Over [0, last departure] every request both arrives and leaves, so L = lambda W exactly.
    table = _mmc(4, 3.6, 50_000, seed=3).log.table()
    end = float(np.max(table.end))
    mean_in_system = time_average(*number_in_system_over_time(table), 0.0, end)
    arrival_rate = len(table) / end
    assert mean_in_system == pytest.approx(arrival_rate * table.latency.mean(), rel=1e-9)


def test_unlimited_servers_never_queue() -> None:
    env = simpy.Environment()
    rng = np.random.default_rng(4)
    pool = ServerPool(env, None, Exponential(1.0), rng)
    RequestSource(env, PoissonArrivals(50.0), pool.submit, rng, n=2_000)
    env.run()
    table = pool.log.table()
    assert np.all(table.start == table.arrival) and np.all(table.outcome == Outcome.OK)
    assert pool.busy == 0


def test_handler_pool_calls_a_backend_like_a_cache_before_a_database() -> None:
    env = simpy.Environment()
    rng = np.random.default_rng(5)
    database = ServerPool(env, 2, Deterministic(0.1), rng)
    cached: set[int] = set()

    def lookup(key: int, cls: int) -> Generator[simpy.Event, object, Outcome]:
        if key in cached:
            yield env.timeout(0.001)
            return Outcome.OK
        outcome = yield database.call(key)
        cached.add(key)
        return outcome

    front = ServerPool(env, 8, lookup)

    def requests() -> Generator[simpy.Event, object, None]:
        for key in [1, 2, 1, 3, 2, 1]:
            front.submit(key)
            yield env.timeout(1.0)

    env.process(requests())
    env.run()
    front_table, db_table = front.log.table(), database.log.table()
    assert np.all(front_table.outcome == Outcome.OK)
    assert db_table.key.tolist() == [1, 2, 3]  # only misses reach the database
    assert front_table.latency.round(3).tolist() == [0.1, 0.1, 0.001, 0.1, 0.001, 0.001]
    assert front_table.key.tolist() == [1, 2, 1, 3, 2, 1]


def test_handler_may_return_a_failure_outcome() -> None:
    env = simpy.Environment()

    def failing(key: int, cls: int) -> Generator[simpy.Event, object, Outcome]:
        yield env.timeout(0.5)
        return Outcome.ERROR

    pool = ServerPool(env, 1, failing)
    done = pool.call()
    env.run()
    assert done.value == Outcome.ERROR and pool.log.table().end[0] == 0.5


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda env: ServerPool(env, 0, Exponential(1.0), np.random.default_rng()),
         "servers must be an integer >= 1 (got 0)"),
        (lambda env: ServerPool(env, 4, Exponential(1.0), np.random.default_rng(), capacity=2),
         "capacity must be an integer >= 4 (got 2)"),
        (lambda env: ServerPool(env, 1, Exponential(1.0)),
         "rng is required when service is a Distribution"),
        (lambda env: ServerPool(env, 1, 0.5), "service must be a Distribution or a handler"),
        (lambda env: ServerPool(env, 1, Exponential(1.0), np.random.default_rng(),
                                discipline="lifo"),
         "discipline must be one of fifo, priority, preemptive (got 'lifo')"),
        (lambda env: ServerPool(env, 1, lambda key, cls: iter(()), discipline="preemptive"),
         "discipline='preemptive' needs a Distribution of service times"),
    ],
)
def test_bad_configuration_is_named(build, message: str) -> None:
    with pytest.raises(ValueError) as info:
        build(simpy.Environment())
    assert message in str(info.value)


@settings(max_examples=25, deadline=None)
@given(
    servers=st.integers(1, 4),
    extra_capacity=st.one_of(st.none(), st.integers(0, 5)),
    load=st.floats(0.2, 2.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_invariants_for_any_pool(servers, extra_capacity, load, seed) -> None:
    capacity = None if extra_capacity is None else servers + extra_capacity
    pool = _mmc(servers, load * servers, 300, seed, capacity=capacity)
    t = pool.log.table()
    served = t.has(Outcome.OK)
    assert np.all(served | t.has(Outcome.REJECTED))
    assert np.all(t.end[served] >= t.start[served])
    assert np.all(t.start[served] >= t.arrival[served])
    _, busy = occupancy(t.start, t.end)
    assert busy.max(initial=0) <= servers
    if capacity is None:
        assert served.all()
    else:
        _, present = occupancy(t.arrival[served], t.end[served])
        assert present.max(initial=0) <= capacity


def _timeline(discipline: str, arrivals: list[tuple[float, int]], service_s: float = 1.0):
    """One server, deterministic service; ``arrivals`` are (time, class) pairs."""
    env = simpy.Environment()
    pool = ServerPool(env, 1, Deterministic(service_s), np.random.default_rng(),
                      discipline=discipline)

    def source() -> Generator[simpy.Event, object, None]:
        for t, cls in arrivals:
            yield env.timeout(t - env.now)
            pool.submit(cls=cls)

    env.process(source())
    env.run()
    return pool.log.table()


def test_priority_serves_lower_classes_first_and_fifo_within_a_class() -> None:
    table = _timeline("priority", [(0, 1), (0.1, 1), (0.2, 0), (0.3, -1), (0.4, 0), (0.5, 1)])
    # row 0 is in service when the others arrive; it is never interrupted
    assert table.start.tolist() == [0.0, 3.0, 1.0, 5.0, 2.0, 4.0]
    assert np.all(table.outcome == Outcome.OK)


def test_fifo_is_the_default_and_ignores_classes() -> None:
    table = _timeline("fifo", [(0, 1), (0.1, 1), (0.2, 0), (0.3, 0)])
    assert table.start.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_preemptive_resume_continues_where_it_stopped() -> None:
    # class 1 starts at 0 (needs 2 s); class 0 arrives at 0.5 and takes the server until 2.5;
    # a second class-1 request (arrived 0.6) waits behind the preempted one, which resumes and
    # finishes its remaining 1.5 s at 4.0
    table = _timeline("preemptive", [(0, 1), (0.5, 0), (0.6, 1)], service_s=2.0)
    assert table.start.tolist() == [0.0, 0.5, 4.0]
    assert table.end.tolist() == [4.0, 2.5, 6.0]
    assert np.all(table.outcome == Outcome.OK)


def test_preemption_only_by_a_more_urgent_class() -> None:
    same = _timeline("preemptive", [(0, 0), (0.5, 0)], service_s=2.0)
    assert same.end.tolist() == [2.0, 4.0]
    with_call = simpy.Environment()
    pool = ServerPool(with_call, 2, Deterministic(1.0), np.random.default_rng(),
                      discipline="preemptive")
    first, second = pool.call(cls=1), pool.call(cls=2)
    urgent = pool.call(cls=0)  # takes the class-2 request's server, the least urgent
    with_call.run()
    assert [first.value, second.value, urgent.value] == [Outcome.OK] * 3
    table = pool.log.table()
    assert table.end.tolist() == [1.0, 2.0, 1.0]
    assert table.server.tolist() == [0, 0, 1]  # row 1 resumed on the first server freed


@settings(max_examples=20, deadline=None)
@given(load=st.floats(0.3, 1.5), seed=st.integers(0, 2**32 - 1))
def test_one_server_departs_at_the_same_instants_under_every_discipline(load, seed) -> None:
    # A single server that never idles with work waiting, and draws the k-th service time for the
    # k-th request it starts: without preemption the k-th departure is at the same instant
    # whatever the order; with preemption the busy periods still end at the same instants.
    ends = []
    for discipline in DISCIPLINES:
        env = simpy.Environment()
        rng = np.random.default_rng(seed)
        pool = ServerPool(env, 1, Exponential(1.0), rng, discipline=discipline)
        RequestSource(env, PoissonArrivals(load), pool.submit, rng, n=300,
                      class_weights=[1, 1, 1])
        env.run()
        table = pool.log.table()
        assert np.all(table.outcome == Outcome.OK)
        ends.append(np.sort(table.end))
    np.testing.assert_allclose(ends[1], ends[0], rtol=1e-9)
    assert ends[2][-1] == pytest.approx(ends[0][-1], rel=1e-9)


def test_preemptive_mm1_top_class_response_ignores_lower_classes() -> None:
    # Preemptive-resume M/M/1, same mu for both classes: class 0 sees an M/M/1 queue of its own,
    # mean response 1 / (mu - lambda_0), whatever class 1 offers (even past total load 1).
    # Tolerance: 4 standard errors of the mean over 8 independent replications.
    mu, lam0 = 1.0, 0.3
    for lam1 in (0.2, 0.9):
        means = []
        for seed in range(8):
            env = simpy.Environment()
            rng = np.random.default_rng([seed, int(lam1 * 10)])
            pool = ServerPool(env, 1, Exponential(1 / mu), rng, discipline="preemptive")
            RequestSource(env, PoissonArrivals(lam0 + lam1), pool.submit, rng,
                          horizon_s=20_000.0, class_weights=[lam0, lam1])
            env.run(until=20_000.0)
            table = pool.log.table()
            top = table.select((table.cls == 0) & (table.arrival > 100) & table.has(Outcome.OK))
            means.append(top.latency.mean())
        means = np.array(means)
        error = abs(means.mean() - 1 / (mu - lam0))
        assert error < 4 * means.std(ddof=1) / math.sqrt(len(means)), (lam1, means.mean())
