"""Checks for exercise test cells that say what is wrong, not just that something is.

Like a driving examiner who says "you rolled through the stop sign at the second junction"
rather than "fail", every check names what it looked at, what it expected and what it found.
A test cell wraps its checks in ``exercise(...)`` so that an exercise the learner has not
answered yet gets that message instead of a traceback::

    from course.feedback import exercise, expect_equal

    with exercise("Exercise 1 (breaker state)"):
        expect_equal(breaker_state(5, threshold=5), "OPEN",
                     what="the state after 5 consecutive failures with threshold 5")

Each check prints a short "✓ ... passed" line when it passes and raises ``AssertionError``
with a teaching message when it does not. A test cell whose hidden part holds checks says how
many (``exercise("Exercise 1 (...)", hidden=3)``), so the learner, who sees only the visible
part, reads "visible checks passed; 3 more checks run when you check your answers".

Feedback teaches without giving the answer away. ``mistakes`` maps the plausible wrong answers
(values) to the mistake each one shows, and ``where`` names the part of the lesson that derives
the right one; ``reveal=False`` (for a number or a choice the learner must reason out) keeps the
expected value out of every message::

    expect_no_mistake(tied_up, {240.0: "an inverted ratio: λ / T instead of λ · T"},
                      what="tied_up", where="Level 5, Little's law")
"""

from __future__ import annotations

import enum
import math
import re
import sys
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, NoReturn

__all__ = ["AnswerCellError", "NotAnsweredError", "exercise", "expect_close", "expect_equal",
           "expect_no_mistake", "expect_raises", "expect_true"]

_MAX_SHOWN = 120
# Every check announces what it compares before it compares it: the grader's audit hook judges
# the same values itself (course/runner.py), so a check that was tampered with cannot pass.
CHECK_EVENT = "course.check"
_PLAIN_NUMBERS = frozenset({int, float})

_current: list[str] = []  # the exercises being checked, innermost last


class NotAnsweredError(AssertionError):
    """The exercise still holds its placeholder (or its answer cell has not been run)."""


class AnswerCellError(AssertionError):
    """The answer cell run just before the test cell did not parse or raised."""


def _last_cell_failure(name: str) -> str:
    """How the cell run just before this one failed, if it did and it mentions `name`.

    Like asking "did the last thing you tried work?": IPython keeps the result of the cell run
    before the one running now (``last_execution_result``), with its error, if any. A cell
    that still holds the placeholder (``NotImplementedError``) is unanswered, not failed.
    """
    try:
        from IPython import get_ipython
    except ImportError:  # plain Python: no cells, nothing to say
        return ""
    result = getattr(get_ipython(), "last_execution_result", None)
    if result is None:
        return ""
    error = result.error_before_exec or result.error_in_exec
    source = getattr(result.info, "raw_cell", "") or ""
    if (error is None or isinstance(error, NotImplementedError)
            or not re.search(rf"\b{re.escape(name)}\b", source)):
        return ""
    if isinstance(error, SyntaxError):
        return f"does not parse: {type(error).__name__} on line {error.lineno}: {error.msg}"
    frames = []
    tb = error.__traceback__
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    line = next((f.tb_lineno for f in frames if f.tb_frame.f_code.co_name == "<module>"), None)
    where = f" on line {line}" if line else ""
    return f"raised {type(error).__name__}{where}: {error}"


class _Exercise:
    def __init__(self, name: str, hidden: int) -> None:
        self.name = name
        self.hidden = hidden

    def __enter__(self) -> _Exercise:
        _current.append(self.name)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        __tracebackhide__ = True
        _current.pop()
        if error is None:
            more = (f"visible checks passed; {self.hidden} more check"
                    f"{'s' if self.hidden > 1 else ''} run when you check your answers")
            print(f"✓ {self.name}: {more if self.hidden else 'all checks passed'}")
            return False
        if isinstance(error, NotImplementedError):
            raise NotAnsweredError(
                f"{self.name} is not answered yet: replace `raise NotImplementedError()` in "
                "its answer cell with your code, then run that cell."
            ) from None
        # A name missing in the test cell itself (not deeper, inside the learner's code) is
        # the answer that was never defined: its cell still raises, or was not run.
        if isinstance(error, NameError) and traceback is not None and traceback.tb_next is None:
            name = missing_name(error)
            failed = _last_cell_failure(name)
            if failed:
                raise AnswerCellError(
                    f"{self.name}: `{name}` is not defined because the cell you ran "
                    f"before this one {failed}. Fix that cell and run it again (it must finish "
                    "without an error), then run this one."
                ) from None
            raise NotAnsweredError(
                f"{self.name} is not answered yet: `{name}` is not defined. Write your "
                "answer in its answer cell and run that cell (it must finish without an error)."
            ) from None
        return False


def missing_name(error: NameError) -> str:
    """The name a NameError is about: its ``name``, else the one its message quotes (the
    grader runs a test as a function, where a missing answer is a deleted local)."""
    if error.name:
        return error.name
    found = re.search(r"variable '(\w+)'", str(error))
    return found.group(1) if found else ""


def exercise(name: str, *, hidden: int = 0) -> _Exercise:
    """Context manager around one exercise's checks; `name` is how the learner knows it and
    `hidden` how many checks its hidden part holds (`course assign` checks the count)."""
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 0:
        raise ValueError(f"exercise(hidden=...) must be a whole number >= 0, got {hidden!r}")
    return _Exercise(name, hidden)


def expect_equal(actual: Any, expected: Any, *, what: str, hint: str = "",
                 mistakes: Mapping[Any, str] | None = None, where: str = "",
                 reveal: bool = True) -> None:
    """Check ``actual == expected``; `what` names the value ("the state after 5 failures")."""
    __tracebackhide__ = True
    sys.audit(CHECK_EVENT, "equal", what, actual, expected)
    _reject_unanswered(actual, expected, what)
    if not _same(actual, expected):
        _wrong(actual, mistakes, what, where, hint, _same)
        message = f"{what} should be {_show(expected)}, but it is {_show(actual)}"
        if type(actual) is not type(expected) and not _both_numbers(actual, expected):
            message += f" (type {type(actual).__name__}, expected {type(expected).__name__})"
        _fail(message if reveal else _not_right(actual, what), hint, where)
    _passed(what)


def expect_close(
    actual: Any,
    expected: float,
    *,
    what: str,
    rel: float = 1e-6,
    abs: float = 0.0,  # noqa: A002 - the same name as math.isclose's
    hint: str = "",
    mistakes: Mapping[float, str] | None = None,
    where: str = "",
    reveal: bool = True,
) -> None:
    """Check that the number `actual` is within `rel` (relative) or `abs` of `expected`."""
    __tracebackhide__ = True
    sys.audit(CHECK_EVENT, "close", what, actual, expected, rel, abs)
    _reject_unanswered(actual, expected, what)
    _require_number(actual, what, hint, where)
    if not math.isclose(actual, expected, rel_tol=rel, abs_tol=abs):
        _wrong(actual, mistakes, what, where, hint, _near(rel, abs))
        tolerance = " or ".join(
            text for text, on in ((f"{rel:.2g} relative", rel > 0), (f"± {abs:.3g}", abs > 0)) if on
        )
        message = (f"{what} should be about {_show(expected)} (within {tolerance}), "
                   f"but it is {_show(actual)}")
        _fail(message if reveal else _not_right(actual, what), hint, where)
    _passed(what)


def expect_no_mistake(
    actual: Any,
    mistakes: Mapping[Any, str],
    *,
    what: str,
    where: str,
    rel: float = 1e-3,
    abs: float = 0.0,  # noqa: A002 - the same name as math.isclose's
) -> None:
    """Check that `actual` is none of the plausible wrong answers in `mistakes`, without
    saying what the right one is: safe in a visible test cell of a reasoning question."""
    __tracebackhide__ = True
    sys.audit(CHECK_EVENT, "no_mistake", what, actual, tuple(mistakes), rel, abs)
    _reject_unanswered(actual, "", what)
    _wrong(actual, mistakes, what, where, "",
           _near(rel, abs) if _both_numbers(actual, 0) else _same)
    _passed(what)


def expect_true(condition: object, message: str, *, what: str = "check",
                where: str = "") -> None:
    """Check that `condition` holds; `message` says what is wrong when it does not."""
    __tracebackhide__ = True
    sys.audit(CHECK_EVENT, "true", what, condition)
    if not _truth_value(condition):
        _fail(f"{what}: the check needs True or False, but got a {type(condition).__name__}",
              "", where)
    if not condition:
        if where:
            _fail(message.rstrip("."), "", where)
        raise AssertionError(message)
    _passed(what)


def expect_raises(
    expected: type[BaseException],
    call: Callable[[], object],
    *,
    what: str,
    match: str = "",
    hint: str = "",
    where: str = "",
) -> None:
    """Check that ``call()`` raises `expected` (whose message contains `match`)."""
    __tracebackhide__ = True
    try:
        call()
    except BaseException as error:  # noqa: B036 - re-raised below unless it is the one expected
        if isinstance(error, NotImplementedError) and expected is not NotImplementedError:
            raise  # the placeholder: `exercise` turns it into "not answered yet"
        sys.audit(CHECK_EVENT, "raises", what, expected, type(error), _message_of(error), match)
        if not isinstance(error, expected):
            _fail(f"{what} should raise {expected.__name__}, but it raised "
                  f"{type(error).__name__}: {error}", hint, where)
        if match not in str(error):
            _fail(f"{what} should raise {expected.__name__} mentioning {match!r}, but its "
                  f"message is {str(error)!r}", hint, where)
        _passed(what)
        return
    sys.audit(CHECK_EVENT, "raises", what, expected, None, "", match)
    _fail(f"{what} should raise {expected.__name__}, but nothing was raised", hint, where)


def _require_number(actual: Any, what: str, hint: str, where: str) -> None:
    __tracebackhide__ = True
    if not _both_numbers(actual, 0):
        _fail(f"{what} should be a number, but it is {_show(actual)} "
              f"(a {type(actual).__name__})", hint, where)


def _near(rel: float, abs: float) -> Callable[[Any, Any], bool]:  # noqa: A002
    def near(actual: Any, value: Any) -> bool:
        return _both_numbers(actual, value) and math.isclose(actual, value, rel_tol=rel,
                                                             abs_tol=abs)
    return near


def _wrong(actual: Any, mistakes: Mapping[Any, str] | None, what: str, where: str, hint: str,
           matches: Callable[[Any, Any], bool]) -> None:
    """Fail naming the mistake when `actual` is one of the known wrong answers."""
    __tracebackhide__ = True
    for value, mistake in (mistakes or {}).items():
        if matches(actual, value):
            _fail(f"{what} is {_show(actual)}: {mistake}", hint, where)


def _not_right(actual: Any, what: str) -> str:
    return f"{what} is {_show(actual)}, which is not right yet"


def _reject_unanswered(actual: Any, expected: Any, what: str) -> None:
    __tracebackhide__ = True
    if actual is None and expected is not None:
        name = _current[-1] if _current else "this exercise"
        raise NotAnsweredError(
            f"{what} is None: {name} looks unanswered (or a function forgot to `return` "
            "its result)."
        )


def _same(actual: Any, expected: Any) -> bool:
    """Equal as plain values: numbers of the built-in or numpy kinds by value, anything else
    only if it is of exactly the expected value's type (so an object that claims to equal
    everything, or a subclass that lies about its value, is never equal)."""
    if _both_numbers(actual, expected):  # numpy's as the Python numbers they hold, as exactly
        return _python(actual) == _python(expected)  # (not after rounding to the numpy type)
    numpy = sys.modules.get("numpy")
    if (numpy is not None and type(actual) is numpy.ndarray and actual.dtype.kind in "iuf"
            and type(expected) in (list, tuple)
            and all(type(x) in _numbers() for x in expected)):
        return bool(numpy.array_equal(actual, expected))
    if type(actual) is not type(expected):
        return False
    if isinstance(expected, tuple | list):
        return len(actual) == len(expected) and all(map(_same, actual, expected))
    if isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(
            _same(actual[key], value) for key, value in expected.items())
    if numpy is not None and type(expected) is numpy.ndarray:
        return (actual.dtype.kind in "iuf" and expected.dtype.kind in "iuf"
                and bool(numpy.array_equal(actual, expected)))
    return bool(type(expected).__eq__(expected, actual) is True)


def _truth_value(condition: object) -> bool:
    """True, False, None, a whole number or a numpy bool, of exactly those types."""
    numpy = sys.modules.get("numpy")
    return (condition is None or type(condition) in (bool, int)
            or (numpy is not None and type(condition) is numpy.bool_))


def _both_numbers(a: Any, b: Any) -> bool:
    """Both are numbers of exactly a built-in or numpy type (not bool, not a subclass)."""
    return type(a) in _numbers() and type(b) in _numbers()


def _python(number: Any) -> int | float:
    return number if type(number) in _PLAIN_NUMBERS else number.item()


def _numbers() -> frozenset:
    numpy = sys.modules.get("numpy")
    if numpy is None:
        return _PLAIN_NUMBERS
    return _PLAIN_NUMBERS | {t for t in numpy.sctypeDict.values()
                             if issubclass(t, numpy.integer | numpy.floating)}


def _show(value: Any) -> str:
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _fail(message: str, hint: str, where: str = "") -> NoReturn:
    __tracebackhide__ = True
    text = f"{message}. Hint: {hint}" if hint else f"{message}."
    raise AssertionError(f"{text.rstrip('.')}. The lesson derives it in {where}." if where
                         else text)


def _passed(what: str) -> None:
    print(f"✓ {what}: passed")


def _message_of(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:  # noqa: BLE001 - a learner's exception whose __str__ fails
        return ""
