"""The fast path must reproduce the SimPy server pool request by request.

Both are fed the same arrival and service times: the pool replays the arrival times through a
``RequestSource`` and takes its service times from a distribution that hands out the given array
in order (the pool draws one per started request, as ``fifo_queue`` consumes them).
"""

from __future__ import annotations

import numpy as np
import pytest
import simpy

from simulations.clients import Client, RequestSource
from simulations.distributions import Distribution, Exponential, LogNormal
from simulations.fastpath import fifo_ends, fifo_queue, fifo_with_timeouts, simulate_fifo
from simulations.faults import FaultSchedule, FaultWindow
from simulations.records import Outcome, RequestLog, RequestTable
from simulations.servers import ServerPool
from simulations.workloads import ArrivalProcess, PoissonArrivals


class _GivenTimes(ArrivalProcess):
    """An arrival process that returns the given times (for replaying an array)."""

    def __init__(self, times: np.ndarray) -> None:
        self._times = times

    def times(self, rng, n=None, horizon=None):
        return self._times

    def rate_at(self, t):
        return np.full(np.shape(t), len(self._times) / self._times[-1])

    def _guess_rate(self) -> float:
        return 1.0

    def _window(self, rng, span):
        return self._times[self._times < span]


class _Replay(Distribution):
    """Service times taken from a given array, in order (NaN once it runs out)."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values
        self.mean = float(values.mean())
        self.scv = float(values.var() / self.mean**2)
        self._used = 0

    def sample(self, rng, size=None):
        chunk = self.values[self._used : self._used + size]
        self._used += size
        return np.concatenate((chunk, np.full(size - len(chunk), np.nan)))


def _simpy_pool(
    arrivals: np.ndarray, services: np.ndarray, servers: int, capacity: int | None
) -> RequestTable:
    env = simpy.Environment()
    rng = np.random.default_rng(0)  # unused by the replaying distribution and arrivals
    pool = ServerPool(env, servers, _Replay(services), rng, capacity=capacity)
    RequestSource(env, _GivenTimes(arrivals), pool.submit, rng)
    env.run()
    return pool.log.table()


def _assert_same_rows(simpy_rows: RequestTable, fast_rows: RequestTable) -> None:
    assert len(simpy_rows) == len(fast_rows)
    np.testing.assert_array_equal(simpy_rows.outcome, fast_rows.outcome)
    # The source replays arrivals as gaps, so times may differ in the last bits only.
    for column in ("arrival", "start", "end"):
        np.testing.assert_allclose(
            getattr(simpy_rows, column), getattr(fast_rows, column), rtol=1e-12, atol=1e-9
        )
    np.testing.assert_allclose(simpy_rows.wait, fast_rows.wait, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    ("servers", "capacity", "load"),
    [(1, None, 0.9), (4, None, 0.9), (1, 3, 1.2), (3, 5, 0.95), (2, 2, 0.8)],
)
def test_fast_path_matches_simpy_pool_for_given_arrays(servers, capacity, load):
    rng = np.random.default_rng(2024)
    n = 20_000
    arrivals = np.cumsum(rng.exponential(1.0 / (load * servers), n))
    services = rng.lognormal(-0.5, 1.0, n)  # mean 1, SCV e - 1
    simpy_rows = _simpy_pool(arrivals, services, servers, capacity)
    fast_rows = fifo_queue(arrivals, services, servers, capacity)
    _assert_same_rows(simpy_rows, fast_rows)
    if capacity is not None:  # the bounded cases must actually turn requests away
        assert 0 < np.sum(fast_rows.outcome == int(Outcome.REJECTED)) < n


@pytest.mark.parametrize(("servers", "capacity"), [(1, None), (4, None), (2, 4)])
def test_same_seed_gives_same_rows_as_the_simpy_model(servers, capacity):
    """``simulate_fifo`` draws from the generator in the order the SimPy model does."""
    n, service = 10_000, LogNormal(1.0, 4.0)
    arrivals = PoissonArrivals(0.85 * servers)
    env = simpy.Environment()
    rng = np.random.default_rng(11)
    pool = ServerPool(env, servers, service, rng, capacity=capacity)
    RequestSource(env, arrivals, pool.submit, rng, n=n)
    env.run()
    fast = simulate_fifo(arrivals, service, np.random.default_rng(11), n, servers, capacity)
    _assert_same_rows(pool.log.table(), fast)


def test_fifo_invariants():
    rng = np.random.default_rng(5)
    arrivals = np.cumsum(rng.exponential(1.0, 5000))
    rows = fifo_queue(arrivals, rng.exponential(2.5, 5000), servers=3, capacity=6)
    served = rows.outcome == int(Outcome.OK)
    assert np.all(rows.wait[served] >= 0)
    assert np.all(np.diff(rows.start[served]) >= 0)  # first come, first served
    # At every arrival, the requests present (admitted earlier, not yet gone) are at most K.
    ends = rows.end[served]
    for i in np.flatnonzero(served)[::50]:
        present = np.sum((rows.arrival[served] < rows.arrival[i]) & (ends > rows.arrival[i]))
        assert present < 6


def test_vectorised_single_server_ends_match_fifo_queue():
    rng = np.random.default_rng(3)
    arrivals = np.sort(rng.uniform(0, 10, 2000))
    services = rng.exponential(0.004, 2000)  # load 0.8: queues form and drain
    assert np.allclose(fifo_ends(arrivals, services), fifo_queue(arrivals, services).end)
    assert np.allclose(fifo_ends([0.0, 0.0, 5.0], [1.0, 2.0, 1.0]), [1.0, 3.0, 6.0])


def test_hand_worked_example():
    rows = fifo_queue(np.array([0.0, 1.0, 1.5, 10.0]), np.array([2.0, 2.0, 1.0, 1.0]))
    np.testing.assert_array_equal(rows.wait, [0.0, 1.0, 2.5, 0.0])
    np.testing.assert_array_equal(rows.end, [2.0, 4.0, 5.0, 11.0])
    bounded = fifo_queue(np.array([0.0, 1.0, 1.5, 10.0]), np.array([2.0, 2.0, 1.0, 9.0]), 1, 2)
    np.testing.assert_array_equal(
        bounded.outcome, [Outcome.OK, Outcome.OK, Outcome.REJECTED, Outcome.OK]
    )
    np.testing.assert_array_equal(bounded.end, [2.0, 4.0, 1.5, 11.0])  # third time used


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"servers": 0}, "servers"),
        ({"servers": 2, "capacity": 1}, "capacity"),
        ({"arrivals": np.array([1.0, 0.5])}, "arrivals"),
        ({"services": np.array([1.0, -1.0])}, "services"),
        ({"services": np.array([1.0])}, "services"),
    ],
)
def test_bad_input_names_the_parameter(kwargs, message):
    arguments = {"arrivals": np.array([0.0, 1.0]), "services": np.array([1.0, 1.0])} | kwargs
    with pytest.raises(ValueError, match=message):
        fifo_queue(**arguments)


def test_simulate_fifo_rejects_a_non_positive_customer_count():
    with pytest.raises(ValueError, match="customers"):
        simulate_fifo(PoissonArrivals(1.0), Exponential(0.5), np.random.default_rng(1), 0)


def _simpy_callers(arrivals, services, servers, timeout_s, retries, faults, until):
    """Callers with a ``Client`` timeout and immediate retries before a SimPy pool."""
    env = simpy.Environment()
    rng = np.random.default_rng(0)  # unused by the replaying distribution and arrivals
    pool = ServerPool(env, servers, _Replay(services), rng, faults=faults)
    attempts = RequestLog()

    def request(key, cls):
        for _ in range(retries + 1):
            outcome = yield Client(env, pool, timeout_s, attempts).call()
            if outcome is Outcome.OK:
                break
        return int(outcome)

    callers = ServerPool(env, None, request)
    RequestSource(env, _GivenTimes(arrivals), callers.submit, rng)
    env.run(until=until)
    return callers.log.table(), attempts.table(), pool.log.table()


@pytest.mark.parametrize(
    ("servers", "load", "timeout_s", "retries", "slow"),
    [(1, 0.7, 2.0, 0, None), (4, 0.6, 3.0, 1, None),
     (2, 0.5, 3.0, 2, FaultWindow(200, 400, "slow", slow_factor=1.5))],
)
def test_timeouts_and_retries_match_simpy_callers(servers, load, timeout_s, retries, slow):
    rng = np.random.default_rng(7)
    n = 3000
    arrivals = np.cumsum(rng.exponential(1.0 / (load * servers), n))
    services = rng.lognormal(-0.5, 1.0, 4 * n)  # enough for every retry
    faults = FaultSchedule([slow] if slow else [])
    until = arrivals[-1] + 0.5 * timeout_s  # stops with some requests still open
    expected = _simpy_callers(arrivals, services, servers, timeout_s, retries, faults, until)
    got = fifo_with_timeouts(arrivals, iter(services.tolist()), servers, timeout_s, retries,
                             faults, until)
    for simpy_rows, fast_rows in zip(expected, got, strict=True):
        _assert_same_rows(simpy_rows, fast_rows)
    requests, attempts, _ = got
    assert 0 < np.sum(attempts.outcome == int(Outcome.TIMEOUT)) < len(attempts)
    assert np.sum(requests.outcome == int(Outcome.IN_FLIGHT)) > 0
    if retries:
        assert len(attempts) > len(requests)


def test_timeout_hand_worked_example():
    # One server, 1 s timeout, one retry. Request 0 (at 0 s) takes 1.5 s: its caller hangs up
    # at 1 s and calls again; request 1 (at 0.2 s) waits until 1.5 s, so hangs up at 1.2 s and
    # calls again. The retries (0.1 s each) start at 1.6 s and 1.7 s and are answered in time.
    requests, attempts, work = fifo_with_timeouts(
        np.array([0.0, 0.2]), iter([1.5, 0.1, 0.1, 0.1]), 1, 1.0, retries=1)
    np.testing.assert_allclose(work.start, [0.0, 1.5, 1.6, 1.7])
    np.testing.assert_allclose(attempts.arrival, [0.0, 0.2, 1.0, 1.2])
    np.testing.assert_allclose(attempts.end, [1.0, 1.2, 1.7, 1.8])
    np.testing.assert_array_equal(attempts.outcome, [Outcome.TIMEOUT] * 2 + [Outcome.OK] * 2)
    np.testing.assert_array_equal(requests.outcome, [Outcome.OK, Outcome.OK])
    np.testing.assert_allclose(requests.end, [1.7, 1.8])
    with pytest.raises(ValueError, match="slow"):
        fifo_with_timeouts(np.array([0.0]), iter([1.0]), 1, 1.0,
                           faults=FaultSchedule([FaultWindow(0, 1, "hang")]))
