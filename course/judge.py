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


def judge_maker(sealed_classes: frozenset[int]
                ) -> tuple[Callable[[tuple], bool], Callable[[object], str]]:
    """``judge(args)`` for the arguments of a ``course.check`` audit event (objects are
    compared attribute by attribute only if their class is one of ``sealed_classes``), and
    ``impostor(value)``: what is wrong with an answer's value that passes for a plain one (a
    ``float`` subclass whose ``>=`` always says yes), "" when nothing is."""
    type_, len_, float_, vars_, all_, any_, zip_, issubclass_, id_ = (
        type, len, float, vars, all, any, zip, issubclass, id)
    str_, bytes_, bool_, int_, tuple_, list_, dict_, set_, frozenset_ = (
        str, bytes, bool, int, tuple, list, dict, set, frozenset)
    isclose, enum_type, none_type = math.isclose, enum.Enum, type(None)
    numpy = sys.modules.get("numpy")
    kept = tuple(numpy.sctypeDict.values()) if numpy else ()  # static types: ids stay theirs
    # Types are looked up by id: a learner's metaclass could define __hash__ and __eq__.
    numpy_numbers = frozenset(id(t) for t in kept
                              if issubclass(t, numpy.integer | numpy.floating))
    numbers = numpy_numbers | {id(int), id(float)}
    ndarray = numpy.ndarray if numpy else None
    array_equal = numpy.array_equal if numpy else None
    numpy_bool = numpy.bool_ if numpy else None
    scalars = numbers | {id(str), id(bytes), id(bool), id(type(None))}

    def number(value: object) -> bool:
        return id_(type_(value)) in numbers

    def python(value: object) -> object:
        """A numpy number as the Python int or float it holds (compared exactly as Python
        compares, not after rounding the other side to the numpy type)."""
        return value.item() if id_(type_(value)) in numpy_numbers else value

    def number_array(value: object) -> bool:
        return type_(value) is ndarray and value.dtype.kind in "iuf"

    def same(actual: object, expected: object, depth: int = 0) -> bool:
        if depth > DEPTH:
            return False
        kind, wanted = type_(actual), type_(expected)
        if number(actual) and number(expected):
            return True if python(actual) == python(expected) else False
        if wanted is none_type:
            return actual is None
        if wanted in (str_, bytes_, bool_):
            return kind is wanted and (True if actual == expected else False)
        if ndarray is not None and (kind is ndarray or wanted is ndarray):
            if number_array(actual) and (number_array(expected) or wanted in (tuple_, list_)
                                         and all_(number(x) for x in expected)):
                return True if array_equal(actual, expected) else False
            return False
        if kind is not wanted:
            return False
        if wanted in (tuple_, list_):
            return len_(actual) == len_(expected) and all_(
                same(a, e, depth + 1) for a, e in zip_(actual, expected))
        if wanted in (set_, frozenset_):
            return all_(id_(type_(x)) in scalars for x in actual) and (
                True if actual == expected else False)
        if wanted is dict_:
            if not all_(id_(type_(key)) in scalars for key in actual):
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

    def close(actual: object, expected: object, rel: object, tolerance: object) -> bool:
        return (number(actual) and number(expected) and number(rel) and number(tolerance)
                and isclose(float_(python(actual)), float_(python(expected)),
                            rel_tol=float_(python(rel)), abs_tol=float_(python(tolerance))))

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

    numpy_scalars = frozenset(id(t) for t in kept)
    plain = (bool_, int_, float_, complex, str_, bytes_, tuple_, list_, dict_, set_, frozenset_)
    containers = {id(tuple_), id(list_), id(set_), id(frozenset_)}

    def impostor(value: object, depth: int = 0) -> str:
        kind = type_(value)
        if depth > DEPTH or id_(kind) in numpy_scalars:
            return ""
        if not any_(kind is base for base in plain):
            for base in plain:
                if issubclass_(kind, base):
                    return (f"an object of a subclass of {base.__name__}, not a plain "
                            f"{base.__name__}")
        if id_(kind) in containers:
            inner = (impostor(item, depth + 1) for item in value)
        elif kind is dict_:
            inner = (impostor(item, depth + 1) for pair in value.items() for item in pair)
        elif id_(kind) in sealed_classes and "__dataclass_fields__" in vars_(kind):
            try:
                inner = (impostor(item, depth + 1) for item in vars_(value).values())
            except TypeError:  # no attributes of its own
                return ""
        else:
            return ""
        return next((found for found in inner if found), "")

    return judge, impostor
