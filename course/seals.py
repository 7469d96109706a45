"""The seals on the grading room: what every module, class and function looked like.

Like the tamper-evident tape an invigilator puts on every cupboard before the exam and checks
at every mark: :func:`sealer` runs before any learner code and returns ``broken()``, which
says what changed since (a module attribute, a class attribute, a function's code or defaults,
a module that gained a ``__getattr__``, a class that gained an attribute, the import machinery's
lists). Everything ``broken`` calls was taken as a local when the seal was made, so rebinding
a module's globals (this one's included) changes nothing it does.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable

WATCHED_LISTS = ("meta_path", "path_hooks")  # sys lists that decide what an import runs


def sealer() -> tuple[Callable[[], str], frozenset[int]]:
    """Seal now: ``broken()`` names the first change since ("" if none); also the ids of the
    classes sealed (the course's and the libraries', whose instances the judge may compare)."""
    id_, type_, len_, list_, vars_, getattr_ = id, type, len, list, vars, getattr
    function_type, module_type, modules = types.FunctionType, types.ModuleType, sys.modules
    tuple_, str_, any_, all_, zip_, missing = tuple, str, any, all, zip, object()
    attributes: list = []  # (space, key, value, type, label)
    functions: list = []  # (function, code, defaults, keyword defaults, label)
    sizes: list = []  # (class dict, number of keys, label)
    absent: list = []  # (module dict, label): modules without a module-level __getattr__
    lists = [(getattr_(sys, name), tuple_(getattr_(sys, name)), f"sys.{name}")
             for name in WATCHED_LISTS]

    def keywords(defaults: dict | None) -> tuple:
        return tuple_((key, value) for key, value in (defaults or {}).items())

    def same_keywords(defaults: dict | None, sealed: tuple) -> bool:
        """By identity only: a key's own __eq__ never runs."""
        now = keywords(defaults)
        return len_(now) == len_(sealed) and all_(
            key is key0 and value is value0 for (key, value), (key0, value0) in zip_(now, sealed))

    def function_mark(function: types.FunctionType, label: str) -> None:
        functions.append((function, function.__code__, function.__defaults__,
                          keywords(function.__kwdefaults__), label))

    classes: set[int] = set()
    for name, module in list_(modules.items()):
        attributes.append((modules, name, module, type_(module), f"sys.modules[{name!r}]"))
        if name == "__main__" or not isinstance(module, module_type):
            continue
        space = vars_(module)
        if "__getattr__" not in space:
            absent.append((space, name))
        for key, value in list_(space.items()):
            attributes.append((space, key, value, type_(value), f"{name}.{key}"))
            if type_(value) is function_type:
                function_mark(value, f"{name}.{key}")
            elif isinstance(value, type) and id_(value) not in classes:
                classes.add(id_(value))
                members = vars_(value)
                sizes.append((members, len_(members), f"{name}.{key}"))
                for attribute, member in list_(members.items()):
                    label = f"{name}.{key}.{attribute}"
                    attributes.append((members, attribute, member, type_(member), label))
                    inner = getattr_(member, "__func__", member)
                    if type_(inner) is function_type:
                        function_mark(inner, label)

    spaces = [(modules, "sys.modules")] + [(vars_(m), n) for n, m in list_(modules.items())
                                           if n != "__main__" and isinstance(m, module_type)]
    spaces += [(members, label) for members, _, label in sizes]

    def broken() -> str:
        # First what makes a lookup run code: a key that is not a plain string (its __eq__
        # would run on a hash collision), a class that gained an attribute.
        for space, label in spaces:
            for key in space:
                if type_(key) is not str_:
                    return f"it put a key that is not a string into {label}"
        for members, size, label in sizes:
            if len_(members) != size:
                return f"it added an attribute to the class {label}"
        for space, key, value, kind, label in attributes:
            now = space.get(key, missing)
            if now is not value or type_(now) is not kind:
                return f"it replaced {label}"
        for function, code, defaults, keyword_defaults, label in functions:
            if (function.__code__ is not code or function.__defaults__ is not defaults
                    or not same_keywords(function.__kwdefaults__, keyword_defaults)):
                return f"it changed the function {label}"
        for space, label in absent:
            if "__getattr__" in space:
                return f"it gave the module {label} a __getattr__"
        for watched, items, label in lists:
            if len_(watched) != len_(items) or any_(a is not b for a, b in zip_(watched, items)):
                return f"it changed {label}"
        return ""

    return broken, frozenset(classes)
