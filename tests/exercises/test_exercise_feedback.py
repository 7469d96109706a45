"""course.feedback: the messages a learner sees from a test cell."""

from __future__ import annotations

import enum

import numpy as np
import pytest

from course.feedback import (
    NotAnsweredError,
    exercise,
    expect_close,
    expect_equal,
    expect_no_mistake,
    expect_raises,
    expect_true,
)


class State(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"


def placeholder() -> str:
    raise NotImplementedError()


def test_passing_checks_print_one_line_each(capsys):
    with exercise("Exercise 1"):
        expect_equal(State.OPEN, State.OPEN, what="the state after 5 failures")
        expect_close(0.7501, 0.75, rel=0.01, what="the utilisation")
        expect_true(True, "never shown", what="the fraction is between 0 and 1")
        expect_raises(ValueError, lambda: int("x"), what="int('x')", match="invalid")
    assert capsys.readouterr().out.splitlines() == [
        "✓ the state after 5 failures: passed",
        "✓ the utilisation: passed",
        "✓ the fraction is between 0 and 1: passed",
        "✓ int('x'): passed",
        "✓ Exercise 1: all checks passed",
    ]


@pytest.mark.parametrize(("check", "message"), [
    (lambda: expect_equal(State.CLOSED, State.OPEN, what="the state after 5 failures"),
     "the state after 5 failures should be State.OPEN, but it is State.CLOSED."),
    (lambda: expect_equal("4", 4, what="servers", hint="count whole servers"),
     "servers should be 4, but it is '4' (type str, expected int). Hint: count whole servers"),
    (lambda: expect_equal(3.0, 4, what="servers"), "servers should be 4, but it is 3."),
    (lambda: expect_equal(np.array([1, 2]), np.array([1, 3]), what="the counts"),
     "the counts should be array([1, 3]), but it is array([1, 2])."),
    (lambda: expect_close(0.8, 0.75, rel=0.01, what="the utilisation"),
     "the utilisation should be about 0.75 (within 0.01 relative), but it is 0.8."),
    (lambda: expect_close(0.8, 0.75, rel=0, abs=0.01, what="p"),
     "p should be about 0.75 (within ± 0.01), but it is 0.8."),
    (lambda: expect_close("0.75", 0.75, what="the utilisation"),
     "the utilisation should be a number, but it is '0.75' (a str)."),
    (lambda: expect_true(False, "the timeout must be below 2 s"), "the timeout must be below 2 s"),
    (lambda: expect_raises(ValueError, lambda: None, what="a threshold of 0"),
     "a threshold of 0 should raise ValueError, but nothing was raised."),
    (lambda: expect_raises(ValueError, lambda: {}["k"], what="a threshold of 0"),
     "a threshold of 0 should raise ValueError, but it raised KeyError: 'k'."),
    (lambda: expect_raises(ValueError, lambda: int("x"), what="int('x')", match="threshold"),
     "int('x') should raise ValueError mentioning 'threshold', but its message is "
     "\"invalid literal for int() with base 10: 'x'\"."),
])
def test_failing_checks_say_what_was_expected_and_found(check, message):
    with pytest.raises(AssertionError) as caught:
        check()
    assert str(caught.value) == message
    assert not isinstance(caught.value, NotAnsweredError)


def test_the_placeholder_means_not_answered_even_inside_expect_raises():
    for body in (lambda: expect_equal(placeholder(), "OPEN", what="x"),
                 lambda: expect_raises(Exception, placeholder, what="x")):
        with pytest.raises(NotAnsweredError, match=r"^Exercise 2 is not answered yet: replace "
                                                   r"`raise NotImplementedError\(\)`"):
            with exercise("Exercise 2"):
                body()


def test_an_undefined_answer_means_not_answered_but_a_bug_inside_it_does_not():
    with pytest.raises(NotAnsweredError, match="^Exercise 3 is not answered yet: "
                                               "`servers_needed` is not defined"):
        with exercise("Exercise 3"):
            servers_needed  # noqa: B018, F821 - the name the learner has not defined yet

    def buggy() -> int:
        return undefined_helper()  # noqa: F821 - the learner's typo

    with pytest.raises(NameError, match="undefined_helper") as caught:
        with exercise("Exercise 3"):
            buggy()
    assert not isinstance(caught.value, NotAnsweredError)


def test_a_none_answer_is_not_answered_and_names_the_exercise():
    with pytest.raises(NotAnsweredError, match=r"^the utilisation is None: Exercise 4 looks "
                                               r"unanswered \(or a function forgot"):
        with exercise("Exercise 4"):
            expect_close(None, 0.75, what="the utilisation")


def test_an_exercise_with_hidden_checks_says_they_are_still_to_come(capsys):
    with exercise("Exercise 2", hidden=3):
        expect_true(True, "never shown", what="a plausible probability")
    with exercise("Exercise 3", hidden=1):
        pass
    assert capsys.readouterr().out.splitlines() == [
        "✓ a plausible probability: passed",
        "✓ Exercise 2: visible checks passed; 3 more checks run when you check your answers",
        "✓ Exercise 3: visible checks passed; 1 more check run when you check your answers",
    ]
    with pytest.raises(ValueError, match=r"hidden=\.\.\.\) must be a whole number >= 0, got -1"):
        exercise("Exercise 4", hidden=-1)


def test_a_known_mistake_is_named_with_the_lesson_part_and_no_expected_value():
    mistakes = {240.0: "an inverted ratio: λ / T instead of λ · T", 0.5 / 120: "λ and T swapped"}
    with pytest.raises(AssertionError) as caught:
        expect_no_mistake(240.01, mistakes, what="tied_up", where="Level 5, Little's law")
    assert str(caught.value) == ("tied_up is 240.01: an inverted ratio: λ / T instead of λ · T. "
                                 "The lesson derives it in Level 5, Little's law.")
    expect_no_mistake(61.0, mistakes, what="tied_up", where="Level 5")  # not a known mistake
    with pytest.raises(AssertionError) as caught:
        expect_close(61.0, 60.0, rel=1e-3, what="tied_up", mistakes=mistakes, reveal=False,
                     hint="L = λ·W", where="Level 5")
    assert str(caught.value) == ("tied_up is 61, which is not right yet. Hint: L = λ·W. "
                                 "The lesson derives it in Level 5.")
    assert "60" not in str(caught.value)


def test_equal_names_the_mistake_of_a_wrong_choice_and_reveals_only_when_allowed():
    mistakes = {State.CLOSED: "closed after the first trial, but two are required"}
    with pytest.raises(AssertionError, match="^the state is State.CLOSED: closed after the "
                                             "first trial, but two are required.$"):
        expect_equal(State.CLOSED, State.OPEN, what="the state", mistakes=mistakes)
    with pytest.raises(AssertionError) as caught:
        expect_equal("two slow", "one fast", what="better_at_low_load", reveal=False,
                     where="Level 5")
    assert str(caught.value) == ("better_at_low_load is 'two slow', which is not right yet. "
                                 "The lesson derives it in Level 5.")
    with pytest.raises(AssertionError, match="^p99 is 4.2 s. The lesson derives it in Level 3."):
        expect_true(False, "p99 is 4.2 s.", what="p99", where="Level 3")


TEST_CELL = ('from course.feedback import exercise, expect_equal\n'
             'with exercise("Exercise 3"):\n'
             '    expect_equal(tied_up, 60, what="tied_up")\n')


@pytest.mark.parametrize(("answer", "said"), [
    ("x = 1\ntied_up = 120 / 0\n",
     "`tied_up` is not defined because the cell you ran before this one raised "
     "ZeroDivisionError on line 2: division by zero"),
    ("tied_up = (120 * 0.5\n",
     "`tied_up` is not defined because the cell you ran before this one does not parse: "
     "SyntaxError on line 1"),
    ("# YOUR CODE HERE\nraise NotImplementedError()\ntied_up = 1\n",
     "Exercise 3 is not answered yet: `tied_up` is not defined"),
    ("other = 1 / 0\n", "Exercise 3 is not answered yet: `tied_up` is not defined"),
])
def test_a_test_cell_after_a_failed_answer_cell_says_how_it_failed(answer, said):
    """In IPython, a name left undefined by the answer cell run just before is reported with
    that cell's error and line; a placeholder, or a failed cell about another name, is not."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        shell.run_cell(answer)
        result = shell.run_cell(TEST_CELL)
    finally:
        InteractiveShell.clear_instance()
    assert said in str(result.error_in_exec), result.error_in_exec
