"""Run one exercise of a submission in a fresh interpreter, as an invigilated exam.

Like an examiner who lays out the room, seals the cupboards, lets the candidate write, and
checks the seals every time a mark is given: ``python -I -c 'from course.runner import main;
main()'`` reads one job from stdin (the lesson's setup cells, the learner's answer cells of one
exercise, that exercise's test cell, the limits and a one-time secret), and

1. sets its limits and runs the setup cells (the course's own code, trusted), then imports what
   the test imports;
2. seals the room: records every module, every attribute of every module, every class's
   attributes and every function's code and defaults, and installs an audit hook (PEP 578)
   that refuses what no answer needs and the known ways to tamper from inside: trace and
   profile hooks, the garbage collector's object lists, frames (the way to the runner's and
   the test's variables), ctypes, processes, threads, sockets, signals to others, replacing a
   function's code, further audit hooks;
3. runs the answer cells, checks the seals, then runs the test cell as a function of its own:
   every name it reads is passed in (the setup's objects, else the answers'), so rebinding a
   global changes nothing it sees;
4. counts a check as passed only when the hook sees ``course.feedback`` report it from a
   check called by the test's own code, with the seals intact at that moment;
5. reports each cell on stdout in lines that start with the secret. The grader outside believes
   only those lines, and passes an exercise only when its test finished and the number of
   sealed checks is the number the reference solution makes.

Everything the runner uses after the room is sealed (the secret, the seals, the builtins it
calls, its helpers) is held in the locals of :func:`_invigilate`, which only frames could
reach. What this cannot stop, code that rewrites the interpreter's memory directly, is said in
docs/instructors.md; the sandbox around the process (:mod:`course.sandbox`) bounds it to the
learner's own exercise.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import json
import os
import sys
import types

# Audit events refused once learner code runs: each one is a route to the grader's state or
# out of the sandbox, and no exercise needs it.
REFUSED = {
    "sys.settrace": "installed a trace function", "sys.setprofile": "installed a profiler",
    "sys._current_frames": "reached into the interpreter's frames",
    "sys.addaudithook": "added an audit hook",
    "gc.get_objects": "searched the interpreter's objects",
    "gc.get_referrers": "searched the interpreter's objects",
    "gc.get_referents": "searched the interpreter's objects",
    "os.fork": "started a process", "os.forkpty": "started a process",
    "os.system": "started a process", "os.exec": "started a process",
    "os.posix_spawn": "started a process", "os.spawn": "started a process",
    "subprocess.Popen": "started a process", "pty.spawn": "started a process",
    "_thread.start_new_thread": "started a thread", "socket.__new__": "opened a socket",
    "os.kill": "sent a signal", "os.killpg": "sent a signal",
    "signal.pthread_kill": "sent a signal", "course.signal": "installed a signal handler",
}
FRAME_EVENTS = {"tb_frame", "gi_frame", "cr_frame", "ag_frame"}
# Library code that reads its caller's frame and never hands the frame on: allowed. (Not
# inspect.currentframe or logging's, which return the frame to whoever called them.)
FRAME_USERS = (("collections", "namedtuple"), ("enum", "EnumType._create_"),
               ("typing", "_caller"), ("matplotlib._api", "warn_external"),
               ("simpy.events", "Process._resume"))
# The checks of course.feedback whose passes count, and the function that reports a pass.
CHECKS = ("expect_equal", "expect_close", "expect_true", "expect_no_mistake", "expect_raises")
CAP = 2000  # characters of a message


def main() -> None:
    """Read the job from stdin, run it, report on stdout; ends the process."""
    _invigilate(sys.stdin.buffer.read())


def _invigilate(raw: bytes) -> None:  # noqa: C901, PLR0915 - one room, sealed in one frame
    # Everything used after the seal is a local of this frame, taken before learner code runs.
    id_, type_, str_, len_, exec_, compile_, repr_, getattr_, vars_ = (
        id, type, str, len, exec, compile, repr, getattr, vars)
    isinstance_, list_, dict_, int_, base_exception = isinstance, list, dict, int, BaseException
    modules, getframe, write, exit_now = sys.modules, sys._getframe, os.write, os._exit
    function_type, module_type, builtins_module = types.FunctionType, types.ModuleType, builtins
    keywords_of, refusals, frame_events = _keywords, dict(REFUSED), frozenset(FRAME_EVENTS)
    refusal, missing = RuntimeError, object()

    job = json.loads(raw)
    prefix = job["secret"].encode() + b" "
    _limit(job["limits"])

    def say(**message) -> None:
        write(1, prefix + repr_(message).encode() + b"\n")

    def text(value: object) -> str:
        """A learner's message as a plain, capped string (never a str subclass)."""
        try:
            shown = str_(value)
            return "".__add__(shown)[:CAP]
        except base_exception:  # noqa: B036 - a __str__ that raises or lies
            return "(its message could not be shown)"

    def error_of(index: int, error: BaseException) -> dict:
        line = getattr_(error, "lineno", None) if isinstance_(error, SyntaxError) else None
        tb = error.__traceback__
        if line is None and tb is not None and tb.tb_next is not None:
            line = tb.tb_next.tb_lineno  # the cell's own frame, the first below the runner
        crashed = isinstance_(error, SystemExit | KeyboardInterrupt)
        return {"index": index, "status": "crashed" if crashed else "error",
                "ename": text(type_(error).__name__), "evalue": text(error),
                "line": line if type_(line) is int_ else None}

    def run(cell: dict, namespace: dict) -> dict:
        try:
            exec_(compile_(cell["source"], f"<cell {cell['index']}>", "exec"), namespace)
        except base_exception as error:  # noqa: B036 - an answer's error costs its exercise
            return error_of(cell["index"], error)
        return {"index": cell["index"], "status": "ok"}

    def seal() -> list:
        """(where, key, value, type) for every module attribute and class attribute, and
        (function, code, defaults, keyword defaults) for every function among them."""
        marks: list = [(modules, name, module, type_(module), f"sys.modules[{name!r}]")
                       for name, module in list_(modules.items()) if name != "__main__"]
        for name, module in list_(modules.items()):
            if name == "__main__" or not isinstance_(module, module_type):
                continue
            space = vars_(module)
            for key, value in list_(space.items()):
                marks.append((space, key, value, type_(value), f"{name}.{key}"))
                if type_(value) is function_type:
                    marks.append(_function_mark(value))
                elif isinstance_(value, type) and getattr_(value, "__module__", None) == name:
                    members = vars_(value)
                    for attribute, member in list_(members.items()):
                        marks.append((members, attribute, member, type_(member),
                                      f"{name}.{key}.{attribute}"))
                        inner = getattr_(member, "__func__", member)
                        if type_(inner) is function_type:
                            marks.append(_function_mark(inner))
        return marks

    def broken(marks: list) -> str:
        """What changed since the seal ("" if nothing did)."""
        for where, key, value, kind, label in marks:
            if type_(where) is function_type:
                if (where.__code__ is not key or where.__defaults__ is not value
                        or keywords_of(where.__kwdefaults__) != kind):
                    return f"it changed the function {label}"
                continue
            now = where.get(key, missing)
            if now is not value or type_(now) is not kind:
                return f"it replaced {label}"
        return ""

    # The setup, as the course wrote it; then every module the tests import, before the seal.
    namespace = {"__name__": "__main__", "__builtins__": builtins_module}
    cells = job["cells"]
    for cell in cells:
        if cell["kind"] == "setup":
            say(start=cell["index"])
            say(**run(cell, namespace))
    setup = dict_(namespace)
    tests = [cell for cell in cells if cell["kind"] == "test"]
    for cell in tests:
        _import_what_it_imports(cell["source"])
    import course.feedback as feedback

    passed_code = feedback._passed.__code__
    check_codes = {id_(getattr_(feedback, name).__code__) for name in CHECKS}
    test_codes: set = set()
    for cell in tests:
        cell["function"], cell["reads"] = _test_function(cell, test_codes)
    frame_users = _frame_users()
    _no_signal_handlers()
    sys.stdout = sys.stderr = _Sink()  # a learner's prints are not the report
    marks = seal()
    refused: list = []
    counted = [0]
    armed = [True]
    inside = [False]

    def hook(event: str, args: tuple) -> None:
        if not armed or inside[0]:
            return
        inside[0] = True
        blocked = ""
        try:
            if event == "course.check":
                reporter = getframe(1)
                check = reporter.f_back
                caller = check.f_back if check is not None else None
                if (reporter.f_code is passed_code and check is not None
                        and id_(check.f_code) in check_codes and caller is not None
                        and id_(caller.f_code) in test_codes):
                    blocked = broken(marks)
                    if not blocked:
                        counted[0] += 1
            elif event in refusals or event.startswith("ctypes."):
                blocked = "it " + refusals.get(event, f"used {event}")
            elif event == "import" and args and args[0] in ("signal", "_signal", "ctypes",
                                                            "_ctypes", "gc"):
                blocked = f"it imported {text(args[0])} again"
            elif event == "object.__setattr__" and len_(args) > 1 and args[1] == "__code__":
                blocked = "it rewrote a function's code"
            elif (event == "sys._getframe" or event == "object.__getattr__"
                  and len_(args) > 1 and args[1] in frame_events):
                if id_(getframe(1).f_code) not in frame_users:
                    blocked = "it reached into the interpreter's frames"
        finally:
            inside[0] = False
        if blocked:
            if not refused:
                refused.append(f"the submission modified the grader: {blocked}")
            raise refusal("grading does not allow this: the submission " + blocked[3:])

    sys.addaudithook(hook)
    for cell in cells:
        if cell["kind"] == "answer":
            say(start=cell["index"])
            say(**run(cell, namespace))
    tampered = refused[0] if refused else (
        f"the submission modified the grader: {broken(marks)}" if broken(marks) else "")
    for cell in tests:
        if tampered:
            say(index=cell["index"], status="tampered", evalue=tampered)
            continue
        say(start=cell["index"])
        values = {name: setup[name] if name in setup else namespace.get(name)
                  for name in cell["reads"]}
        gone = tuple(name for name in cell["reads"] if name not in setup
                     and name not in namespace)
        counted[0] = 0
        try:
            cell["function"](_missing_=gone, **values)
            outcome = {"index": cell["index"], "status": "ok"}
        except base_exception as error:  # noqa: B036 - whatever it was, the test did not pass
            outcome = error_of(cell["index"], error)
        why = broken(marks)
        tampered = refused[0] if refused else (
            f"the submission modified the grader: {why}" if why else "")
        outcome["checks"] = counted[0]
        say(**(outcome if not tampered else
               {"index": cell["index"], "status": "tampered", "evalue": tampered}))
    armed.clear()
    say(done=True)
    exit_now(0)


class _Sink:
    """Where print() goes while grading: nowhere (the report is what the tests say)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def _limit(limits: dict) -> None:
    """Memory, CPU time, file size, core dumps and (not as root) processes, hard limits."""
    try:
        import resource
    except ImportError:  # Windows: no resource limits, no sandbox either
        return
    wanted = {resource.RLIMIT_AS: limits["memory_bytes"], resource.RLIMIT_CPU: limits["cpu_s"],
              resource.RLIMIT_FSIZE: limits["file_bytes"], resource.RLIMIT_CORE: 0}
    if os.getuid() != 0:  # the kernel does not count root's processes
        wanted[resource.RLIMIT_NPROC] = limits["processes"]
    for which, value in wanted.items():
        soft, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            pass  # a limit this system will not lower: the sandbox still bounds it


def _function_mark(function: types.FunctionType) -> tuple:
    return (function, function.__code__, function.__defaults__,
            _keywords(function.__kwdefaults__),
            f"{function.__module__}.{function.__qualname__}")


def _keywords(defaults: dict | None) -> tuple:
    return tuple((key, id(value)) for key, value in (defaults or {}).items())


def _import_what_it_imports(source: str) -> None:
    """Import the modules a test cell imports, so that they are sealed before learner code."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return
    for node in ast.walk(tree):
        names = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                 [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                 if isinstance(node, ast.ImportFrom) and node.module and not node.level
                 else [])
        for name in names:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001, S112 - not a module, or broken: the test says so
                continue


def _test_function(cell: dict, codes: set) -> tuple:
    """The test cell as a function whose keyword parameters are the names it reads from
    outside; a name the answers never defined is deleted on entry, so that reading it fails as
    a missing name does. Its code objects (nested ones too) are the test's own."""
    tree = ast.parse(cell["source"])
    reads = sorted(loaded_names(tree) - set(dir(builtins)))
    arguments = ast.arguments(
        posonlyargs=[], args=[], vararg=None, kwarg=None, defaults=[],
        kwonlyargs=[ast.arg(arg=name) for name in ("_missing_", *reads)],
        kw_defaults=[None] * (len(reads) + 1))
    deletes = [ast.If(test=ast.Compare(left=ast.Constant(name), ops=[ast.In()],
                                       comparators=[ast.Name("_missing_", ast.Load())]),
                      body=[ast.Delete(targets=[ast.Name(name, ast.Del())])], orelse=[])
               for name in reads]
    function = ast.FunctionDef(name="test", args=arguments, body=deletes + tree.body
                               or [ast.Pass()], decorator_list=[], returns=None,
                               type_comment=None, lineno=1, col_offset=0)
    module = ast.fix_missing_locations(ast.Module(body=[function], type_ignores=[]))
    code = compile(module, f"<cell {cell['index']}>", "exec")
    codes.update(id(c) for c in _nested(code))
    space = {"__builtins__": builtins}
    exec(code, space)  # noqa: S102 - defines the course's own test as a function
    return space["test"], reads


def _no_signal_handlers() -> None:
    """A signal handler is handed the frame it interrupts: grading installs none."""
    import _signal
    import signal

    def refuse(*_args: object) -> None:
        sys.audit("course.signal")  # the hook refuses it, and says so in the report
        raise RuntimeError("grading does not allow signal handlers")

    signal.signal = _signal.signal = refuse


def loaded_names(tree: ast.AST) -> set[str]:
    """Every bare name a piece of code reads."""
    return {node.id for node in ast.walk(tree)
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}


def _nested(code: types.CodeType):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _nested(const)


def _frame_users() -> set[int]:
    """The code of the library functions in FRAME_USERS that are loaded."""
    found = set()
    for module_name, qualname in FRAME_USERS:
        target = sys.modules.get(module_name)
        for part in qualname.split("."):
            target = getattr(target, part, None)
        code = getattr(target, "__code__", None)
        if isinstance(code, types.CodeType):
            found.add(id(code))
    return found


if __name__ == "__main__":
    main()
