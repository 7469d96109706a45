"""The circuit-breaker lesson's model: breakers, their agreement with pybreaker, the theory."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import pybreaker
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patterns.resilience.circuit_breaker import (
    BreakerConfig,
    CircuitBreaker,
    CircuitOpenError,
    ConsecutiveFailures,
    ErrorRate,
    ProductionCircuitBreaker,
    State,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fail() -> None:
    raise ConnectionError("dependency down")


def ok() -> str:
    return "ok"


def outcome(breaker: CircuitBreaker, fn) -> str:
    try:
        breaker.call(fn)
        return "ok"
    except CircuitOpenError:
        return "refused"
    except ConnectionError:
        return "failed"


# ---------------------------------------------------------------- state transitions

def test_consecutive_failures_trip_sleep_and_half_open_close() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(ConsecutiveFailures(3), sleep_window_s=5, clock=clock)
    assert [outcome(breaker, fail) for _ in range(2)] == ["failed", "failed"]
    assert breaker.state is State.CLOSED
    assert outcome(breaker, ok) == "ok"  # a success resets the run of failures
    assert [outcome(breaker, fail) for _ in range(3)] == ["failed"] * 3
    assert breaker.state is State.OPEN
    clock.now = 4.999
    assert outcome(breaker, ok) == "refused"
    clock.now = 5.0  # the sleep window is over: one trial call goes through
    assert outcome(breaker, ok) == "ok"
    assert breaker.state is State.CLOSED
    assert [(t, a.value, b.value) for t, a, b in breaker.transitions] == [
        (0.0, "closed", "open"), (5.0, "open", "half-open"), (5.0, "half-open", "closed")]


def test_failed_trial_reopens_and_restarts_the_sleep_window() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(ConsecutiveFailures(1), sleep_window_s=2, clock=clock)
    outcome(breaker, fail)
    clock.now = 2.0
    assert outcome(breaker, fail) == "failed"
    assert breaker.state is State.OPEN and breaker.opened_at == 2.0
    clock.now = 3.9
    assert outcome(breaker, ok) == "refused"


def test_half_open_admits_only_its_trial_calls() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(ConsecutiveFailures(1), sleep_window_s=1, clock=clock,
                             half_open_calls=2)
    outcome(breaker, fail)
    clock.now = 1.0
    assert [breaker.allow() for _ in range(3)] == [True, True, False]
    breaker.record(True)
    assert breaker.state is State.HALF_OPEN  # one success of the two needed
    breaker.record(True)
    assert breaker.state is State.CLOSED


def test_error_rate_needs_minimum_volume_and_forgets_old_calls() -> None:
    clock = FakeClock()
    policy = ErrorRate(threshold=0.5, window_s=10, minimum_calls=4)
    breaker = CircuitBreaker(policy, sleep_window_s=5, clock=clock)
    for _ in range(3):
        outcome(breaker, fail)
    assert breaker.state is State.CLOSED, "3 calls are below the minimum volume of 4"
    clock.now = 10.0  # the three failures leave the 10 s window
    for result in (ok, ok, fail):
        outcome(breaker, result)
    assert breaker.state is State.CLOSED, "1 failure in 3 calls: volume too low"
    outcome(breaker, fail)  # 2 of 4 = 50 %: the threshold is reached
    assert breaker.state is State.OPEN


# ---------------------------------------------------------------- production breaker

@pytest.mark.parametrize(("field", "value", "allowed"), [
    ("failure_rate_threshold", 0, "in (0, 1]"),
    ("failure_rate_threshold", 50, "in (0, 1]"),
    ("window_s", -1.0, "> 0"),
    ("window_s", float("nan"), "> 0"),
    ("minimum_calls", 0, "integer >= 1"),
    ("minimum_calls", 2.5, "integer >= 1"),
    ("sleep_window_s", 0, "> 0"),
    ("half_open_calls", True, "integer >= 1"),
])
def test_config_errors_name_field_value_and_allowed_range(field, value, allowed) -> None:
    with pytest.raises(ValueError) as error:
        BreakerConfig(**{field: value})
    message = str(error.value)
    assert f"BreakerConfig.{field}" in message and repr(value) in message and allowed in message


def test_production_breaker_logs_counts_and_falls_back(caplog) -> None:
    clock, seen = FakeClock(), []
    config = BreakerConfig(minimum_calls=2, sleep_window_s=1)
    breaker = ProductionCircuitBreaker("inventory", config, clock,
                                       listeners=[lambda *t: seen.append(t)])
    with caplog.at_level("INFO", logger="patterns.resilience.circuit_breaker"):
        for _ in range(2):
            with pytest.raises(ConnectionError):
                breaker.call(fail)
        assert breaker.call(ok, fallback=lambda: "cached") == "cached"
    assert seen == [("inventory", State.CLOSED, State.OPEN)]
    assert "breaker inventory: closed -> open" in caplog.text
    assert breaker.metrics.counts == {"calls": 3, "failures": 2, "rejections": 1, "transitions": 1}
    assert breaker.metrics.observed("call_seconds") == 2


def test_production_breaker_counters_add_up_under_threads() -> None:
    breaker = ProductionCircuitBreaker("shared", BreakerConfig(
        failure_rate_threshold=0.3, minimum_calls=5, window_s=0.05, sleep_window_s=0.001))
    threads, calls_each = 8, 400

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(calls_each):
            try:
                breaker.call(fail if rng.random() < 0.5 else ok)
            except (ConnectionError, CircuitOpenError):
                pass

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    c = breaker.metrics.counts
    assert c["calls"] == threads * calls_each
    assert c["successes"] + c["failures"] + c["rejections"] == c["calls"]
    assert breaker.metrics.observed("call_seconds") == c["successes"] + c["failures"]
    assert c["transitions"] == len(breaker.transitions) > 0
    # the transitions form one unbroken chain of legal moves
    legal = {(State.CLOSED, State.OPEN), (State.OPEN, State.HALF_OPEN),
             (State.HALF_OPEN, State.OPEN), (State.HALF_OPEN, State.CLOSED)}
    previous = State.CLOSED
    for _, old, new in breaker.transitions:
        assert old is previous and (old, new) in legal
        previous = new


def test_listener_may_call_the_breaker_again_without_deadlock() -> None:
    clock, seen = FakeClock(), []
    breaker = ProductionCircuitBreaker("inventory", BreakerConfig(minimum_calls=2), clock)

    def on_change(name: str, old: State, new: State) -> None:
        seen.append((old, new, dict(breaker.metrics.counts)))
        if new is State.OPEN:  # e.g. a health probe that goes through the breaker
            breaker.call(ok, fallback=lambda: "cached")

    breaker.listeners.append(on_change)

    def drive() -> None:
        for _ in range(2):
            with pytest.raises(ConnectionError):
                breaker.call(fail)

    thread = threading.Thread(target=drive, daemon=True)
    thread.start()
    thread.join(timeout=5)
    assert not thread.is_alive(), "a listener calling the breaker deadlocked it"
    assert [(old, new) for old, new, _ in seen] == [(State.CLOSED, State.OPEN)]
    assert breaker.metrics.counts["rejections"] == 1  # the listener's call was refused: it is open


# ---------------------------------------------------------------- agreement with pybreaker

class _PatchedClock:
    """pybreaker reads ``datetime.now(UTC)``; this stands in for it, driven by a FakeClock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def now(self, tz=None) -> datetime:
        return datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=self.clock.now)


class _Transitions(pybreaker.CircuitBreakerListener):
    def __init__(self, clock: FakeClock) -> None:
        self.clock, self.seen = clock, []

    def state_change(self, cb, old_state, new_state) -> None:
        self.seen.append((self.clock.now, old_state.name, new_state.name))


@settings(max_examples=60, deadline=None)
@given(fail_max=st.integers(1, 4), reset_timeout=st.integers(1, 5),
       steps=st.lists(st.tuples(st.integers(0, 3), st.booleans()), min_size=1, max_size=60))
def test_hand_made_breaker_agrees_with_pybreaker(fail_max, reset_timeout, steps) -> None:
    clock = FakeClock()
    ours = CircuitBreaker(ConsecutiveFailures(fail_max), reset_timeout, clock=clock)
    theirs = pybreaker.CircuitBreaker(fail_max=fail_max, reset_timeout=reset_timeout)
    listener = _Transitions(clock)
    theirs.add_listener(listener)
    original = pybreaker.datetime
    pybreaker.datetime = _PatchedClock(clock)
    try:
        for dt, succeeds in steps:
            clock.now += dt
            reached = []

            def dependency(succeeds=succeeds, reached=reached) -> str:
                reached.append(True)
                if not succeeds:
                    raise ConnectionError("down")
                return "ok"

            outcome(ours, dependency)
            ours_reached = bool(reached)
            reached.clear()
            try:
                theirs.call(dependency)
            except (ConnectionError, pybreaker.CircuitBreakerError):
                pass
            assert bool(reached) == ours_reached, "one breaker refused a call the other made"
            assert theirs.current_state == ours.state.value
    finally:
        pybreaker.datetime = original
    assert listener.seen == [(t, a.value, b.value) for t, a, b in ours.transitions]


# ---------------------------------------------------------------- theory against the simulation

from simulations.faults import FaultWindow  # noqa: E402
from simulations.resilience.circuit_breaker import (  # noqa: E402
    Scenario,
    busy_workers,
    busy_workers_between,
    detection_delay_s,
    exhaustion_arrival_rate,
    simulate,
    snapshot_false_trip_probability,
    snapshot_trips,
    window_false_trip_probability,
)


def test_busy_workers_follow_littles_law_during_an_outage() -> None:
    rate, hold = 15.0, 0.005 + 1.0  # local work + the whole client timeout
    start, end = 12.0, 210.0
    run = simulate(Scenario(arrival_rate=rate, workers=30, duration_s=220,
                            outage=FaultWindow(10.0, 210.0, "hang")))
    measured = busy_workers_between(run, start, end)
    # Busy workers form an M/D/inf count; its time average over D seconds has standard error
    # hold * sqrt(rate / D). Allow four standard errors.
    tolerance = 4 * hold * (rate / (end - start)) ** 0.5
    assert abs(measured - busy_workers(rate, hold)) < tolerance


def test_an_open_breaker_frees_the_workers() -> None:
    config = BreakerConfig(minimum_calls=10, window_s=5, sleep_window_s=5)
    run = simulate(Scenario(arrival_rate=40, workers=20, breaker=config, duration_s=60,
                            outage=FaultWindow(10.0, 60.0, "hang")))
    opened = run.transitions[0][0]
    measured = busy_workers_between(run, opened + 2, 60)
    # fast-fails hold a worker for local work + fast_fail_s; one trial call per sleep window
    # holds one for the whole timeout
    ceiling = busy_workers(40, 0.005 + 0.001) + 1.0 / 5 * 1.0
    assert measured < 2 * ceiling < busy_workers(40, 1.0) / 10
    assert exhaustion_arrival_rate(20, 1.0) == 20.0


def test_window_false_trip_probability_is_a_binomial_tail() -> None:
    assert window_false_trip_probability(4, 0.5, 0.5) == pytest.approx(11 / 16)
    assert window_false_trip_probability(19, 0.9, 0.5, minimum_calls=20) == 0.0
    assert window_false_trip_probability(20, 0.0, 0.5) == 0.0


def test_snapshot_false_trips_match_the_binomial_model() -> None:
    config = BreakerConfig(failure_rate_threshold=0.5, window_s=5, minimum_calls=10)
    run = simulate(Scenario(arrival_rate=4, baseline_error_rate=0.3, outage=None,
                            duration_s=2000, seed=7))
    verdicts = snapshot_trips(run, config)
    theory = snapshot_false_trip_probability(4, 5, 0.3, 0.5, 10)
    # disjoint windows are independent: the observed share is Binomial(n, theory) / n
    half_width = 4 * (theory * (1 - theory) / len(verdicts)) ** 0.5
    assert abs(verdicts.mean() - theory) < half_width


def test_detection_delay_matches_the_fluid_model() -> None:
    config = BreakerConfig(failure_rate_threshold=0.5, window_s=10, minimum_calls=20)
    delays = []
    for seed in range(5):
        run = simulate(Scenario(breaker=config, seed=seed))  # 40 req/s, 20 workers, T = 1 s
        delays.append(run.transitions[0][0] - run.scenario.outage.start_s)
    theory = detection_delay_s(40, 0.01, 0.5, 10, 20, 1.0, workers=20)
    # the fluid model ignores the discreteness of calls (1/λ = 25 ms) and local work; allow 5 %
    assert abs(sum(delays) / len(delays) - theory) < 0.05 * theory
