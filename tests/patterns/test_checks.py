"""Every check names the parameter, shows the value and states the allowed range."""

from __future__ import annotations

import math

import pytest

from patterns.checks import (
    check_choice,
    check_int,
    check_non_negative,
    check_positive,
    check_probability,
    check_range,
)


def test_valid_values_come_back_converted() -> None:
    assert check_positive("rate", 2) == 2.0 and isinstance(check_positive("rate", 2), float)
    assert check_non_negative("delay_s", 0) == 0.0
    assert check_probability("p", 1) == 1.0
    assert check_int("servers", 3, 1) == 3
    assert check_choice("kind", "slow", ["error", "slow"]) == "slow"
    assert check_positive("timeout_s", math.inf, allow_inf=True) == math.inf


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: check_positive("rate", -1.0), "rate must be > 0 (got -1.0)"),
        (lambda: check_positive("rate", math.nan), "rate must be > 0 (got nan)"),
        (lambda: check_positive("rate", math.inf), "rate must be > 0 (got inf)"),
        (lambda: check_positive("rate", "fast"), "rate must be a number > 0 (got 'fast')"),
        (lambda: check_positive("rate", True), "rate must be a number > 0 (got True)"),
        (lambda: check_non_negative("delay_s", -0.5), "delay_s must be >= 0 (got -0.5)"),
        (lambda: check_probability("p", 1.5), "p must be in [0, 1] (got 1.5)"),
        (lambda: check_range("alpha", 0, 0, 1, low_open=True), "alpha must be in (0, 1] (got 0)"),
        (lambda: check_range("x", 5, high=3, high_open=True), "x must be < 3 (got 5)"),
        (lambda: check_int("servers", 0, 1), "servers must be an integer >= 1 (got 0)"),
        (lambda: check_int("servers", 2.0, 1), "servers must be an integer >= 1 (got 2.0)"),
        (lambda: check_int("n", 11, 0, 10), "n must be an integer in [0, 10] (got 11)"),
        (lambda: check_int("customers", 5, 100, 2_000_000),
         "customers must be an integer in [100, 2000000] (got 5)"),
        (lambda: check_range("load", -2, 0, 1e7), "load must be in [0, 10000000] (got -2)"),
        (lambda: check_range("p", 2, 0.25, 0.5), "p must be in [0.25, 0.5] (got 2)"),
        (lambda: check_choice("kind", "boom", ["error", "hang"]),
         "kind must be one of error, hang (got 'boom')"),
    ],
)
def test_bad_values_raise_a_message_naming_parameter_value_and_range(call, message) -> None:
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value) == message
