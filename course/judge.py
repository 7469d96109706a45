"""The grader's own judgement of each check, out of the learner's reach.

Like a second examiner who marks the same answer sheet with their own key: every check of
``course.feedback`` announces what it compares (an audit event, before it compares), and the
runner's audit hook hands those values to the ``judge`` made here, which decides pass or fail
itself. It runs no code a learner could have written or patched: it compares only plain values
of exact types (whole and real numbers of Python's or numpy's own types, strings, bytes,
booleans, None, enum members by identity, tuples, lists, sets and dicts of those, numpy
arrays of numbers, and objects of the expected value's exact class attribute by attribute),
with functions it took as locals before any learner code ran. Anything else does not pass.
"""

from __future__ import annotations

import enum
import math
import sys
from collections.abc import Callable

DEPTH = 20  # nesting the judge follows before it gives up (a pass needs a plain value)


def judge_maker(sealed_classes: frozenset[int]) -> Callable[[tuple], bool]:
    """A ``judge(args)`` for the arguments of a ``course.check`` audit event; objects are
    compared attribute by attribute only if their class is one of ``sealed_classes``."""
    type_, len_, float_, vars_, all_, zip_, issubclass_, id_ = (
        type, len, float, vars, all, zip, issubclass, id)
    str_, bytes_, bool_, int_, tuple_, list_, dict_, set_, frozenset_ = (
        str, bytes, bool, int, tuple, list, dict, set, frozenset)
    isclose, enum_type, none_type = math.isclose, enum.Enum, type(None)
    numpy = sys.modules.get("numpy")
    numbers = frozenset({int, float} | ({t for t in numpy.sctypeDict.values()
                                         if issubclass(t, numpy.number)} if numpy else set()))
    ndarray = numpy.ndarray if numpy else None
    array_equal = numpy.array_equal if numpy else None
    numpy_bool = numpy.bool_ if numpy else None
    scalars = numbers | {str, bytes, bool, type(None)}

    def number_array(value: object) -> bool:
        return type_(value) is ndarray and value.dtype.kind in "biuf"

    def same(actual: object, expected: object, depth: int = 0) -> bool:
        if depth > DEPTH:
            return False
        kind, wanted = type_(actual), type_(expected)
        if kind in numbers and wanted in numbers:
            return True if actual == expected else False
        if wanted is none_type:
            return actual is None
        if wanted in (str_, bytes_, bool_):
            return kind is wanted and (True if actual == expected else False)
        if ndarray is not None and (kind is ndarray or wanted is ndarray):
            if number_array(actual) and (number_array(expected) or wanted in (tuple_, list_)
                                         and all_(type_(x) in numbers for x in expected)):
                return True if array_equal(actual, expected) else False
            return False
        if kind is not wanted:
            return False
        if wanted in (tuple_, list_):
            return len_(actual) == len_(expected) and all_(
                same(a, e, depth + 1) for a, e in zip_(actual, expected))
        if wanted in (set_, frozenset_):
            return all_(type_(x) in scalars for x in actual) and (
                True if actual == expected else False)
        if wanted is dict_:
            if not all_(type_(key) in scalars for key in actual):
                return False
            return len_(actual) == len_(expected) and all_(
                key in actual and same(actual[key], value, depth + 1)
                for key, value in expected.items())
        if issubclass_(wanted, enum_type):
            return actual is expected
        if id_(wanted) not in sealed_classes:  # a class the submission made: nothing to vouch
            return False
        try:
            fields, wanted_fields = vars_(actual), vars_(expected)
        except TypeError:  # no attributes to compare: not a value the judge can vouch for
            return False
        return same(dict_(fields), dict_(wanted_fields), depth + 1)

    def number(value: object) -> bool:
        return type_(value) in numbers

    def close(actual: object, expected: object, rel: object, tolerance: object) -> bool:
        return (number(actual) and number(expected) and number(rel) and number(tolerance)
                and isclose(float_(actual), float_(expected), rel_tol=float_(rel),
                            abs_tol=float_(tolerance)))

    def truth(condition: object) -> bool:
        kind = type_(condition)
        if condition is None:
            return False
        if kind is bool_ or kind is int_ or (numpy_bool is not None and kind is numpy_bool):
            return True if condition else False
        return False

    def judge(args: tuple) -> bool:
        kind = args[0]
        if kind == "equal":
            return same(args[2], args[3])
        if kind == "close":
            return args[2] is not None and close(args[2], args[3], args[4], args[5])
        if kind == "true":
            return truth(args[2])
        if kind == "no_mistake":
            actual, mistakes, rel, tolerance = args[2], args[3], args[4], args[5]
            if actual is None or type_(mistakes) is not tuple_:
                return False
            return all_(not (close(actual, m, rel, tolerance) if number(actual) and number(m)
                             else same(actual, m)) for m in mistakes)
        if kind == "raises":
            wanted, raised, message, match = args[2], args[3], args[4], args[5]
            return (raised is not None and type_(message) is str_ and type_(match) is str_
                    and issubclass_(raised, wanted) and match in message)
        return False

    return judge
