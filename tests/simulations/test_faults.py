"""Fault windows: fast errors, hangs and slowdowns happen inside the windows and only there."""

from __future__ import annotations

import numpy as np
import pytest
import simpy

from simulations.distributions import Deterministic, Exponential
from simulations.faults import FaultSchedule, FaultWindow
from simulations.records import Outcome
from simulations.servers import ServerPool


def _run(window: FaultWindow, arrivals: list[float]) -> ServerPool:
    env = simpy.Environment()
    pool = ServerPool(env, 4, Deterministic(1.0), np.random.default_rng(),
                      faults=FaultSchedule([window]))

    def send():
        for t in arrivals:
            yield env.timeout(t - env.now)
            pool.submit()

    env.process(send())
    env.run(until=100.0)
    return pool


def test_error_window_fails_fast_without_using_a_server() -> None:
    table = _run(FaultWindow(10.0, 20.0, "error", error_delay_s=0.05),
                 [5.0, 10.0, 15.0, 20.0]).log.table()
    assert table.outcome.tolist() == [Outcome.OK, Outcome.ERROR, Outcome.ERROR, Outcome.OK]
    assert table.latency.tolist() == pytest.approx([1.0, 0.05, 0.05, 1.0])
    assert table.server.tolist()[1:3] == [-1, -1]


def test_hang_window_never_answers() -> None:
    table = _run(FaultWindow(10.0, 20.0, "hang"), [5.0, 12.0, 25.0]).log.table()
    assert table.outcome.tolist() == [Outcome.OK, Outcome.IN_FLIGHT, Outcome.OK]
    assert np.isnan(table.end[1])


def test_slow_window_stretches_service_started_inside_it() -> None:
    window = FaultWindow(10.0, 20.0, "slow", slow_factor=3.0, slow_add_s=0.5)
    table = _run(window, [5.0, 10.0, 19.5, 20.0]).log.table()
    assert table.service.tolist() == pytest.approx([1.0, 3.5, 3.5, 1.0])
    assert np.all(table.outcome == Outcome.OK)


def test_lookup_is_start_inclusive_end_exclusive() -> None:
    schedule = FaultSchedule([FaultWindow(5.0, 6.0, "hang"), FaultWindow(1.0, 2.0, "error")])
    assert [w.start_s for w in schedule.windows] == [1.0, 5.0]
    assert schedule.active(0.999) is None
    assert schedule.active(1.0).kind == "error"
    assert schedule.active(2.0) is None
    assert schedule.active(5.5).kind == "hang"
    assert schedule.spans() == [(1.0, 2.0), (5.0, 6.0)]


def test_random_outages_alternate_within_the_horizon() -> None:
    a = FaultSchedule.random_outages(np.random.default_rng(1), 50.0, 5.0, 10_000.0,
                                     kind="slow", slow_factor=4.0)
    b = FaultSchedule.random_outages(np.random.default_rng(1), 50.0, 5.0, 10_000.0,
                                     kind="slow", slow_factor=4.0)
    assert a.spans() == b.spans()  # seeded
    assert 100 < len(a.windows) < 300  # about 10,000 / 55 cycles
    assert all(w.kind == "slow" and w.slow_factor == 4.0 for w in a.windows)
    assert all(w.start_s < 10_000.0 for w in a.windows)


def test_alternating_windows_follow_the_given_distributions() -> None:
    rng = np.random.default_rng(2)
    schedule = FaultSchedule.alternating(rng, Deterministic(9.0), Deterministic(1.0), 100.0,
                                         kind="hang")
    assert schedule.spans() == [(9.0 + 10.0 * k, 10.0 + 10.0 * k) for k in range(10)]
    assert all(w.kind == "hang" for w in schedule.windows)
    long = FaultSchedule.alternating(np.random.default_rng(3), Exponential(90.0),
                                     Exponential(10.0), 1_000_000.0)
    down = sum(end - start for start, end in long.spans())
    assert down / 1_000_000.0 == pytest.approx(0.1, abs=0.01)  # 10 / (90 + 10), ~1e4 cycles


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: FaultWindow(5.0, 5.0), "end_s must be > 5 (got 5.0)"),
        (lambda: FaultWindow(0.0, 1.0, "crash"), "kind must be one of error, hang, slow"),
        (lambda: FaultWindow(0.0, 1.0, "slow", slow_factor=0.0), "slow_factor must be > 0"),
        (lambda: FaultSchedule([FaultWindow(0.0, 2.0), FaultWindow(1.0, 3.0)]),
         "fault windows must not overlap (got [0, 2) and [1, 3))"),
    ],
)
def test_bad_windows_are_named(build, message: str) -> None:
    with pytest.raises(ValueError) as info:
        build()
    assert message in str(info.value)
