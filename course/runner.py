"""Run one exercise of a submission in a fresh interpreter, as an invigilated exam.

Like an examiner who lays out the room, seals the cupboards, lets the candidate write, and
checks the seals every time a mark is given: ``python -I -c 'from course.runner import main;
main()'`` reads one job from stdin (the lesson's setup cells, the learner's answer cells of one
exercise, that exercise's test cell, the limits and a one-time secret), and

1. sets its limits and runs the setup cells (the course's own code, trusted), then imports what
   the test imports;
2. seals the room (:mod:`course.seals`), removes signal handlers and the raw process starter,
   and installs an audit hook (PEP 578) that refuses what no answer needs and the known ways to
   tamper from inside: trace and profile hooks, the garbage collector's object lists, frames
   (the way to the runner's and the test's variables), reading the tests' code, ctypes,
   processes, threads, sockets, signals to others, replacing a function's code, further hooks;
3. runs the answer cells, checks the seals, then runs the test cell as a function of its own:
   every name it reads is passed in (the setup's objects, else the answers'), so rebinding a
   global changes nothing it sees, and an answer value that only passes for a plain one fails;
4. judges every check itself (:mod:`course.judge`) from the values the check announces, when
   the announcement comes from a real ``course.feedback`` check called by the test's own code
   and the seals are intact at that moment;
5. reports each cell on stdout in lines that start with the secret. The grader outside believes
   only those lines, and passes an exercise only when its test finished, no check was judged
   failed, and the number judged passed is the number the reference solution gets.

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

from course.judge import judge_maker
from course.seals import sealer

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
    "course.process": "started a process",
}
FRAME_EVENTS = {"tb_frame", "gi_frame", "cr_frame", "ag_frame"}
CODE_ATTRIBUTES = {"__code__", "gi_code", "cr_code", "ag_code"}  # audited reads of code
# Modules whose functions grading removes or refuses: importing them afresh would bring them back.
REIMPORTS = {"signal", "_signal", "ctypes", "_ctypes", "gc", "_posixsubprocess", "subprocess"}
# Library code that reads its caller's frame and never hands the frame on: allowed. (Not
# inspect.currentframe or logging's, which return the frame to whoever called them.)
FRAME_USERS = (("collections", "namedtuple"), ("enum", "EnumType._create_"),
               ("typing", "_caller"), ("matplotlib._api", "warn_external"),
               ("simpy.events", "Process._resume"))
# The checks of course.feedback whose announcements (audit events) the hook judges.
CHECKS = ("expect_equal", "expect_close", "expect_true", "expect_no_mistake", "expect_raises")
CAP = 2000  # characters of a message


def main() -> None:
    """Read the job from stdin, run it, report on stdout; ends the process."""
    _invigilate(sys.stdin.buffer.read())


def _invigilate(raw: bytes) -> None:  # noqa: C901, PLR0915 - one room, sealed in one frame
    # Everything used after the seal is a local of this frame, taken before learner code runs.
    id_, type_, str_, len_, exec_, compile_, repr_, getattr_, vars_ = (
        id, type, str, len, exec, compile, repr, getattr, vars)
    isinstance_, dict_, int_, base_exception = isinstance, dict, int, BaseException
    getframe, write, exit_now, builtins_module = sys._getframe, os.write, os._exit, builtins
    refusals, frame_events = dict(REFUSED), frozenset(FRAME_EVENTS)
    code_attributes, reimports = frozenset(CODE_ATTRIBUTES), frozenset(REIMPORTS)
    refusal, assertion = RuntimeError, AssertionError

    job = json.loads(raw)
    prefix = job.pop("secret").encode() + b" "
    del raw  # (the bytes it was read from are freed, not erased: docs/instructors.md, §8)
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

    # (by id, and kept alive, so that an id is never reused by another object)
    check_codes = {id_(code): code for code in (getattr_(feedback, n).__code__ for n in CHECKS)}
    check_event, feedback_globals = feedback.CHECK_EVENT, vars_(feedback)
    test_codes: dict = {}  # id -> the code object, kept alive so that its id is never reused
    for cell in tests:
        cell["function"], cell["reads"] = _test_function(cell, test_codes)
    frame_users = _frame_users()
    _no_signal_handlers()
    _no_processes()
    _not_dumpable()
    sys.stdout = sys.stderr = _Sink()  # a learner's prints are not the report
    broken, sealed_classes = sealer()
    judge, impostor = judge_maker(sealed_classes)
    refused: list = []
    counted, failed = [0], []
    armed = [True]
    inside = [False]

    def hook(event: str, args: tuple) -> None:
        if not armed or inside[0] or type_(event) is not str_:
            return  # (an event name that is not a plain string comes from learner code)
        inside[0] = True
        blocked = ""
        # Only plain strings are compared below: a str subclass's __eq__ or __hash__ would
        # run learner code inside the hook, where nested events are not watched.
        first = args[0] if len_(args) > 0 and type_(args[0]) is str_ else None
        second = args[1] if len_(args) > 1 and type_(args[1]) is str_ else None
        try:
            if event == check_event:
                reporter = getframe(1)
                caller = reporter.f_back
                if (id_(reporter.f_code) in check_codes
                        and reporter.f_globals is feedback_globals
                        and caller is not None and id_(caller.f_code) in test_codes):
                    blocked = broken()
                    if not blocked:
                        try:
                            passed = judge(args)
                        except base_exception:  # noqa: B036 - not judged, so not passed
                            passed = False
                        if passed:
                            counted[0] += 1
                        else:
                            failed.append(text(args[1]))
            elif event in refusals or event.startswith("ctypes."):
                blocked = "it " + refusals.get(event, f"used {event}")
            elif event == "import" and (first is None or first in reimports):
                blocked = f"it imported {first or 'a module with a strange name'} again"
            elif event == "object.__setattr__" and len_(args) > 1 and (
                    second is None or second == "__code__"):
                blocked = "it rewrote a function's code"
            elif (event == "sys._getframe" or event == "object.__getattr__"
                  and (second is None or second in frame_events)):
                if id_(getframe(1).f_code) not in frame_users:
                    blocked = "it reached into the interpreter's frames"
            elif (event == "object.__getattr__" and second in code_attributes
                  and id_(getattr_(args[0], second, None)) in test_codes):
                blocked = "it read the code of the tests"
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
    why = broken()
    tampered = refused[0] if refused else (
        f"the submission modified the grader: {why}" if why else "")
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
        failed.clear()
        fake = next(((name, found) for name in cell["reads"] if name not in setup
                     and name in namespace for found in [impostor(namespace[name])] if found),
                    None)
        try:
            if fake:  # the test would compare with the answer's own operators
                raise assertion(f"`{fake[0]}` is {fake[1]}: an answer's values must be "
                                     "plain values")
            cell["function"](_missing_=gone, **values)
            outcome = {"index": cell["index"], "status": "ok"}
        except base_exception as error:  # noqa: B036 - whatever it was, the test did not pass
            outcome = error_of(cell["index"], error)
        why = broken()
        tampered = refused[0] if refused else (
            f"the submission modified the grader: {why}" if why else "")
        if not tampered and failed and outcome["status"] == "ok":
            tampered = (f"the submission modified the grader: the check of {failed[0]} did "
                        "not pass, yet the test carried on")
        outcome["checks"] = counted[0]
        say(**(outcome if not tampered else
               {"index": cell["index"], "status": "tampered", "evalue": tampered}))
    armed.clear()
    say(done=True)
    exit_now(0)


class _Sink:
    """Where print() goes while grading: nowhere (the report is what the tests say)."""

    __slots__ = ()  # nothing to hang a learner's own write() on

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


def _test_function(cell: dict, codes: dict) -> tuple:
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
    codes.update((id(c), c) for c in _nested(code))
    space = {"__builtins__": builtins}
    exec(code, space)  # noqa: S102 - defines the course's own test as a function
    # The functions the test defines share this namespace: leave nothing in it to read.
    return space.pop("test"), reads


def _no_signal_handlers() -> None:
    """A signal handler is handed the frame it interrupts: grading installs none."""
    import _signal
    import signal

    def refuse(*_args: object) -> None:
        sys.audit("course.signal")  # the hook refuses it, and says so in the report
        raise RuntimeError("grading does not allow signal handlers")

    signal.signal = _signal.signal = refuse


def _no_processes() -> None:
    """subprocess starts programs through _posixsubprocess.fork_exec, which raises no audit
    event of its own: grading replaces it with a refusal."""
    try:
        import _posixsubprocess
    except ImportError:  # not POSIX
        return

    def refuse(*_args: object) -> None:
        sys.audit("course.process")  # the hook refuses it, and says so in the report
        raise RuntimeError("grading does not allow new processes")

    _posixsubprocess.fork_exec = refuse


def _not_dumpable() -> None:
    """Ask Linux to keep this process's memory from other processes of the same user
    (PR_SET_DUMPABLE 0: no ptrace, no process_vm_readv, no /proc/<pid>/mem)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):
        pass


def loaded_names(tree: ast.AST) -> set[str]:
    """Every bare name a piece of code reads."""
    return {node.id for node in ast.walk(tree)
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}


def _nested(code: types.CodeType):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _nested(const)


def _frame_users() -> dict[int, types.CodeType]:
    """The code of the library functions in FRAME_USERS that are loaded, by id."""
    found = {}
    for module_name, qualname in FRAME_USERS:
        target = sys.modules.get(module_name)
        for part in qualname.split("."):
            target = getattr(target, part, None)
        code = getattr(target, "__code__", None)
        if isinstance(code, types.CodeType):
            found[id(code)] = code
    return found


if __name__ == "__main__":
    main()
