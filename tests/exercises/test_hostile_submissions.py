"""Hostile submissions against the sandboxed grader, one batch per class of attack (issue 14).

Each test grades one class's batch of the fixture lesson: ``alice`` answers everything right
(5/5), ``bob`` hands in the untouched copy (0/5), and every other learner hands in wrong
answers plus an attack that would earn points, or harm someone, if it worked. Each asserts the
honest scores, zero points for every attacker, nothing changed outside the sandbox and no
process left behind.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from class_batch import assert_honest_scores, rows_by_learner, run_check

import course.feedback
from course import grader, sandbox

needs_sandbox = pytest.mark.skipif(
    bool(sandbox.unavailable()) and not os.environ.get("CI"),
    reason=f"no sandbox on this machine: {sandbox.unavailable()}")

WRONG = "utilisation = 0.1\n"  # the right answer is 0.75
# The red team's re-arming attack, cut down: a new property on ModuleSpec (read by every
# `from module import name`) switches course.feedback's failure off once the test has started.
REARMED = """import course.feedback as f
real_fail = f._fail
spec = f.__spec__
def arming(self):
    if self is spec:
        f._fail = lambda *a, **k: None
    return self.__dict__.get('_init_', False)
def setting(self, value):
    self.__dict__['_init_'] = value
type(spec)._initializing = property(arming, setting)
"""


def grade_attacks(tree, attacks: dict[str, dict[str, str]], *extra: str) -> dict:
    """Grade the honest pair and the attackers in one batch; the rows by learner."""
    for name, answers in attacks.items():
        tree.submission(name, answers=answers, folder="class")
    before = fingerprint(tree)
    code, grades = run_check(tree, *extra)
    rows = rows_by_learner(grades)
    assert code == grader.EXIT_NOT_ALL_PASSED
    assert_honest_scores(rows)
    undeserved = {name: [row["points"] for row in rows[name]] for name in attacks
                  if any(row["points"] != "0" for row in rows[name])}
    assert undeserved == {}
    assert fingerprint(tree) == before, "a file outside the sandbox changed"
    assert runners_left() == []
    return {name: {row["exercise"]: row for row in rows[name]} for name in attacks}


def fingerprint(tree) -> dict[str, str]:
    """The contents of everything a submission must not change: the class's folder, the
    solutions, the course's code and the Python installation's .pth files."""
    files = [*(tree.root / "class").iterdir(), *tree.solutions.rglob("*"),
             *Path(course.feedback.__file__).parent.glob("*.py"),
             *Path(sys.prefix).rglob("*.pth")]
    return {str(path): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in files if path.is_file()}


def runners_left() -> list[str]:
    """Command lines of processes still running a grading job or an attack's children."""
    left = []
    for entry in Path("/proc").iterdir():
        try:
            args = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, UnicodeDecodeError):
            continue
        if sandbox.grading_label() in args or "hostile-marker" in args or "314159" in args:
            left.append(args)
    return left


def statuses(results: dict, exercise: str) -> dict[str, str]:
    return {name: rows[exercise]["status"] for name, rows in results.items()}


@needs_sandbox
def test_class_1_a_pass_cannot_be_forged_from_inside(classroom):
    attacks = {
        "transformer": {"utilisation": "get_ipython().input_transformers_post.append(\n"
                                       "    lambda lines: ['pass\\n'])\n" + WRONG},
        "tracer": {"utilisation": "import sys\nsys.settrace(lambda *a: None)\n" + WRONG},
        "isclose": {"utilisation": "import math\nmath.isclose = lambda *a, **k: True\n" + WRONG},
        "helpers": {"utilisation": "import course.feedback as f\n"
                                   "f._same = lambda a, b: True\n"
                                   "f.expect_close = lambda *a, **k: None\n" + WRONG},
        "setup-globals": {"utilisation": "expect_close = expect_true = lambda *a, **k: None\n"
                                         "import contextlib\n"
                                         "exercise = lambda *a, **k: contextlib.nullcontext()\n"
                                         + WRONG},
        "builtins": {"utilisation": "import builtins\n"
                                    "builtins.isinstance = lambda *a: True\n" + WRONG},
        "module-swap": {"utilisation": "import sys, types, contextlib\n"
                                       "fake = types.ModuleType('course.feedback')\n"
                                       "fake.exercise = lambda *a, **k: "
                                       "contextlib.nullcontext()\n"
                                       "fake.expect_close = fake.expect_true = "
                                       "lambda *a, **k: None\n"
                                       "sys.modules['course.feedback'] = fake\n" + WRONG},
        "equal-to-all": {"breaker-state": "class Anything(str):\n"
                                          "    def __eq__(self, other): return True\n"
                                          "    __hash__ = str.__hash__\n"
                                          "def breaker_state(failures, threshold=5):\n"
                                          "    return Anything('CLOSED')"},
        "peeking-float": {"utilisation": "import sys\nclass Peek(float):\n"
                                         "    def __float__(self):\n"
                                         "        return sys._getframe(1).f_locals['expected']\n"
                                         "    def __eq__(self, other): return True\n"
                                         "    __hash__ = float.__hash__\n"
                                         "utilisation = Peek(0.1)"},
        "patch-while-tested": {"breaker-state": "import course.feedback as f\n"
                                                "def breaker_state(failures, threshold=5):\n"
                                                "    f._same = lambda a, b: True\n"
                                                "    return 'CLOSED'"},
        "code-swap": {"check-threshold": "import course.feedback as f\n"
                                         "f.expect_raises.__code__ = "
                                         "(lambda *a, **k: None).__code__\n"
                                         "def check_threshold(n):\n    return n"},
        "forged-report": {"utilisation": "import os\nfor secret in ('', '0' * 32):\n"
                                         "    os.write(1, (secret + \" {'index': 7, 'status': "
                                         "'ok', 'checks': 2}\\n\").encode())\n" + WRONG},
        "signal-frames": {"utilisation": "import signal\n"
                                         "signal.signal(signal.SIGALRM, lambda n, f: None)\n"
                                         + WRONG},
        "exit-zero": {"utilisation": "raise SystemExit(0)"},
        # found by the red team: patches armed by a new property of a sealed class, which the
        # test's own import reads, and put back just before each check is counted
        "rearmed": {"breaker-state": REARMED + "def breaker_state(failures, threshold=5):\n"
                                    "    return 'CLOSED'"},
        "new-enum-eq": {"breaker-state": "import enum\n"
                                         "enum.Enum.__eq__ = lambda self, other: True\n"
                                         "def breaker_state(failures, threshold=5):\n"
                                         "    return 'CLOSED'"},
        # found by the second red team: learner code run inside the hook, through a str
        # subclass's __hash__ or __eq__ where the hook or the seals compare names
        "strange-import": {"breaker-state": "class S(str):\n"
                                            "    def __hash__(self): return 0\n"
                                            "__import__(S('no_such_module_here'))\n"
                                            "def breaker_state(failures, threshold=5):\n"
                                            "    return 'CLOSED'"},
        "strange-keyword": {"breaker-state": "import json\nclass S(str):\n"
                                             "    def __eq__(self, other): return True\n"
                                             "    __hash__ = str.__hash__\n"
                                             "json.dumps.__kwdefaults__[S('indent')] = 1\n"
                                             "def breaker_state(failures, threshold=5):\n"
                                             "    return 'CLOSED'"},
        "numpy-type-table": {"breaker-state": "import numpy\nclass Lie(numpy.int64):\n"
                                              "    def __eq__(self, other): return True\n"
                                              "    __hash__ = numpy.int64.__hash__\n"
                                              "numpy.sctypeDict['lie'] = Lie\n"
                                              "def breaker_state(failures, threshold=5):\n"
                                              "    return Lie(0)"},
    }
    results = grade_attacks(classroom, attacks)
    on_utilisation = statuses(results, "utilisation-tests")
    tampered = ("tracer", "isclose", "helpers", "builtins", "module-swap", "signal-frames")
    assert {name: on_utilisation[name] for name in tampered} == dict.fromkeys(tampered,
                                                                              "tampered")
    assert results["isclose"]["utilisation-tests"]["message"] == (
        "the submission modified the grader: it replaced math.isclose")
    assert results["tracer"]["utilisation-tests"]["message"] == (
        "the submission modified the grader: it installed a trace function")
    assert results["patch-while-tested"]["breaker-state-tests"]["status"] == "tampered"
    assert results["rearmed"]["breaker-state-tests"]["message"] == (
        "the submission modified the grader: it added an attribute to the class "
        "_frozen_importlib.ModuleSpec")
    assert results["new-enum-eq"]["breaker-state-tests"]["status"] == "tampered"
    assert results["strange-import"]["breaker-state-tests"]["message"] == (
        "the submission modified the grader: it imported a module with a strange name again")
    assert results["strange-keyword"]["breaker-state-tests"]["message"] == (
        "the submission modified the grader: it changed the function json.dumps")
    assert results["numpy-type-table"]["breaker-state-tests"]["status"] == "failed"
    assert results["code-swap"]["check-threshold-tests"]["status"] == "tampered"
    assert results["equal-to-all"]["breaker-state-tests"]["status"] == "failed"
    assert on_utilisation["setup-globals"] == on_utilisation["forged-report"] == "failed"
    assert on_utilisation["peeking-float"] == "failed"  # a float subclass is not a number
    assert results["peeking-float"]["utilisation-tests"]["message"] == (
        "`utilisation` is an object of a subclass of float, not a plain float: an answer's "
        "values must be plain values")
    assert on_utilisation["exit-zero"] == "crashed"


@needs_sandbox
def test_class_2_a_submission_cannot_read_what_it_must_not(classroom, monkeypatch, tmp_path):
    secret_cwd = tmp_path / "the-answer-is-0.75"
    secret_cwd.mkdir()
    monkeypatch.chdir(secret_cwd)
    monkeypatch.setenv("COURSE_HOSTILE_ANSWER", "0.75")
    alice = classroom.root / "class" / "alice.ipynb"

    def fallback(code: str) -> str:
        return f"try:\n{indent(code)}\nexcept Exception:\n    utilisation = 0.1\n"

    attacks = {
        "solutions-file": {"utilisation": fallback(
            f"text = open({str(classroom.solution_md)!r}).read()\n"
            "utilisation = 0.75 if 'BEGIN HIDDEN TESTS' in text else 0.1")},
        "classmate": {"utilisation": fallback(
            f"import json\ncells = json.load(open({str(alice)!r}))['cells']\n"
            "exec([''.join(c['source']) for c in cells\n"
            "      if c['metadata'].get('nbgrader', {}).get('grade_id') == 'utilisation'][0])")},
        "grader-memory": {"utilisation": fallback(
            "import os\nopen(f'/proc/{os.getppid()}/mem', 'rb').read(1)\n"
            "utilisation = 0.75")},
        "environment": {"utilisation": "import os\n"
                                       "utilisation = float(os.environ.get("
                                       "'COURSE_HOSTILE_ANSWER', '0.1'))"},
        "cwd": {"utilisation": "import os\n"
                               "utilisation = 0.75 if '0.75' in os.getcwd() else 0.1"},
        "stack": {"utilisation": fallback(
            "import inspect\nseen = [f.frame.f_locals for f in inspect.stack()]\n"
            "utilisation = 0.1")},
        "objects": {"utilisation": fallback(
            "import gc\nfound = [o for o in gc.get_objects() if callable(o)]\n"
            "utilisation = 0.1")},
        "history": {"utilisation": fallback("utilisation = float(In[-1])")},
        "relaxed-rules": {"utilisation": fallback(
            "import course.runner as runner, gc\nrunner.REFUSED.clear()\n"
            "runner.FRAME_EVENTS.clear()\nfound = gc.get_objects()\nutilisation = 0.1")},
        "own-frame": {"utilisation": fallback(
            "import inspect, logging\nframe = inspect.currentframe() or "
            "logging.currentframe()\nwhile frame.f_back:\n    frame = frame.f_back\n"
            "utilisation = 0.1")},
    }
    results = grade_attacks(classroom, attacks)
    on_utilisation = statuses(results, "utilisation-tests")
    assert {name: on_utilisation[name] for name in (
        "solutions-file", "classmate", "grader-memory", "environment", "cwd", "history")} == \
        dict.fromkeys(("solutions-file", "classmate", "grader-memory", "environment", "cwd",
                       "history"), "failed")
    assert {on_utilisation[name] for name in ("stack", "objects", "relaxed-rules",
                                                "own-frame")} == {"tampered"}
    assert results["stack"]["utilisation-tests"]["message"] == (
        "the submission modified the grader: it reached into the interpreter's frames")


@needs_sandbox
def test_class_4_a_submission_cannot_harm_other_learners(classroom):
    alice = classroom.root / "class" / "alice.ipynb"
    site = next(Path(p) for p in sys.path if p.endswith("site-packages"))

    def attempt(code: str) -> str:
        return f"try:\n{indent(code)}\nexcept Exception:\n    pass\n" + WRONG

    attacks = {
        "deleter": {"utilisation": attempt(f"import os\nos.remove({str(alice)!r})")},
        "overwriter": {"utilisation": attempt(f"open({str(alice)!r}, 'w').write('{{}}')")},
        "test-rewriter": {"utilisation": attempt(
            f"open({str(classroom.solution_md)!r}, 'a').write('\\nassert False\\n')")},
        "feedback-rewriter": {"utilisation": attempt(
            f"open({course.feedback.__file__!r}, 'a').write('\\nraise SystemExit\\n')")},
        "pth-planter": {"utilisation": attempt(
            f"open({str(site / 'zz-hostile.pth')!r}, 'w').write('import os\\n')")},
        "solution-planter": {"utilisation": attempt(
            f"open({str(classroom.solutions / 'resilience' / 'evil.md')!r}, 'w')"
            ".write('# evil')")},
        "detached": {"utilisation": attempt(
            "import subprocess\nsubprocess.Popen(['sh', '-c', 'sleep 30; echo hostile-marker "
            f"> {classroom.root / 'grades.csv'}'], start_new_session=True)")},
        "forker": {"utilisation": attempt("import os\nif os.fork() == 0:\n"
                                          "    import time\n    time.sleep(30)")},
    }
    results = grade_attacks(classroom, attacks)
    on_utilisation = statuses(results, "utilisation-tests")
    assert {on_utilisation[name] for name in (
        "deleter", "overwriter", "test-rewriter", "feedback-rewriter", "pth-planter",
        "solution-planter")} == {"failed"}
    assert on_utilisation["detached"] == on_utilisation["forker"] == "tampered"
    assert not (site / "zz-hostile.pth").exists()
    assert not (classroom.solutions / "resilience" / "evil.md").exists()


@needs_sandbox
def test_class_5_a_submission_cannot_harm_the_machine(classroom):
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    connections = []

    def accept() -> None:
        while listener.fileno() != -1:
            try:
                connections.append(listener.accept())
            except OSError:
                continue

    watcher = threading.Thread(target=accept, daemon=True)
    watcher.start()
    free = socket.create_server(("127.0.0.1", 0))
    free_port = free.getsockname()[1]
    free.close()
    attacks = {
        "caller-out": {"utilisation": f"import socket\nsocket.create_connection(('127.0.0.1', "
                                      f"{port}), timeout=2)\n" + WRONG},
        "listener": {"utilisation": f"import socket\ns = socket.create_server(('127.0.0.1', "
                                    f"{free_port}))\nimport time\ntime.sleep(20)\n" + WRONG},
        "outliver": {"utilisation": "import subprocess\n"
                                    "subprocess.Popen(['sleep', '314159'])\n" + WRONG},
        "raw-spawner": {"utilisation": "import _posixsubprocess\n"
                                       "_posixsubprocess.fork_exec([b'/bin/sleep'], "
                                       "[b'314159'], *[None] * 21)\n" + WRONG},
        "memory-hog": {"utilisation": "hog = bytearray(16 * 2**30)\n" + WRONG},
        "spinner": {"utilisation": "while True:\n    pass"},
        "flooder": {"utilisation": "import os\nwhile True:\n    os.write(1, b'x' * 65536)"},
        "disk-filler": {"utilisation": "with open('/tmp/fill', 'wb') as f:\n"
                                       "    for _ in range(200):\n"
                                       "        f.write(b'0' * 2**20)\n" + WRONG},
    }
    try:
        results = grade_attacks(classroom, attacks, "--timeout", "8")
    finally:
        listener.close()
        watcher.join(timeout=5)
    on_utilisation = statuses(results, "utilisation-tests")
    assert connections == []
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", free_port), timeout=1).close()
    assert on_utilisation["caller-out"] == on_utilisation["listener"] == "tampered"
    assert on_utilisation["outliver"] == on_utilisation["raw-spawner"] == "tampered"
    assert results["raw-spawner"]["utilisation-tests"]["message"] == (
        "the submission modified the grader: it started a process")
    assert on_utilisation["memory-hog"] == "error"
    assert "MemoryError" in results["memory-hog"]["utilisation-tests"]["message"]
    assert on_utilisation["spinner"] == "timeout"
    assert on_utilisation["flooder"] == "crashed"
    assert "wrote more than 1 MiB" in results["flooder"]["utilisation-tests"]["message"]
    assert on_utilisation["disk-filler"] in ("crashed", "error")


def test_a_test_function_handed_to_an_answer_shows_neither_its_code_nor_the_test():
    cells = [{"index": 0, "kind": "setup", "source": "from course.feedback import expect_equal"},
             {"index": 1, "kind": "answer", "source": "def peek(f):\n    return f.__code__"},
             {"index": 2, "kind": "test", "source":
              "expect_equal(peek(lambda: 'hidden'), None, what='the code')"}]
    assert sandbox.run_job(cells, timeout=20, sandboxed=False)[2]["evalue"] == (
        "the submission modified the grader: it read the code of the tests")
    cells[1]["source"] = "def peek(f):\n    return sorted(f.__globals__)"
    cells[2]["source"] = ("expect_equal(peek(lambda: 'hidden'), ['__builtins__'], "
                          "what='the names the functions of the test share')")
    outcome = sandbox.run_job(cells, timeout=20, sandboxed=False)[2]
    assert (outcome["status"], outcome["checks"]) == ("ok", 1)


def test_a_job_that_keeps_saying_it_started_a_cell_is_stopped_at_its_timeout():
    """A report line re-announcing a cell (it would need the secret) restarts nothing."""
    secret = b"s" * 32
    chatter = ("import time\nfor _ in range(100):\n"
               f"    print({secret.decode()!r} + \" {{'start': 0}}\", flush=True)\n"
               "    time.sleep(0.2)")
    process = subprocess.Popen([sys.executable, "-c", chatter], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, start_new_session=True)
    start = time.monotonic()
    try:
        outcomes = sandbox._follow(process, b"{}", secret, [{"index": 0}], timeout=1)
    finally:
        sandbox._stop(process)
    assert outcomes[0]["status"] == "timeout"
    assert time.monotonic() - start < 5


def test_the_judge_compares_numbers_as_python_does_and_no_impostor_passes():
    import numpy as np

    from course.judge import judge_maker

    judge, impostor = judge_maker(frozenset())
    assert judge(("equal", "x", np.float16("inf"), 70000)) is False  # not after rounding
    assert judge(("equal", "x", np.float16(2048), 2049)) is False
    assert judge(("equal", "x", np.int64(3), 3.0)) is True
    assert judge(("close", "x", 1 + 1e-9j, 1.0, 1e-6, 0.0)) is False  # not a real number
    assert judge(("close", "x", np.float64(0.75), 0.75, 1e-6, 0.0)) is True
    assert judge(("true", "x", np.bool_(True))) is True
    assert judge(("true", "x", "yes")) is False

    class Lie(float):
        def __ge__(self, other):
            return True

    assert impostor(Lie(0.1)) == "an object of a subclass of float, not a plain float"
    assert impostor([1.0, (2, Lie(3))]) != "" and impostor([1.0, (2, np.float64(3))]) == ""
    assert impostor(True) == impostor(np.int64(1)) == ""


def indent(code: str) -> str:
    return "\n".join("    " + line for line in code.splitlines())


def test_without_a_sandbox_a_batch_is_refused_unless_the_instructor_says_so(classroom,
                                                                           monkeypatch, capsys):
    monkeypatch.setattr(sandbox, "unavailable", lambda: "bubblewrap is not installed")
    code, grades = run_check(classroom)
    assert code == grader.EXIT_USAGE and not grades.exists()
    assert "no sandbox can be made here (bubblewrap is not installed)" in capsys.readouterr().err
    code, grades = run_check(classroom, "--no-sandbox")
    assert_honest_scores(rows_by_learner(grades))
    assert "graded WITHOUT a sandbox" in capsys.readouterr().out
    with pytest.raises(grader.GradingError, match="no sandbox: bubblewrap is not installed"):
        grader.grade(classroom.root / "class" / "alice.ipynb", sandboxed=True)
    assert grader.grade(classroom.root / "class" / "alice.ipynb").sandboxed is False


def test_the_notebook_feedback_and_the_judge_agree_on_what_is_equal():
    """What the test cell tells the learner at once and the grader's verdict are the same."""
    import numpy as np

    from course.feedback import _same
    from course.judge import judge_maker

    judge, _ = judge_maker(frozenset())
    pairs = [(np.float16(2048), 2049), (np.int64(3), 3.0), (3, 3), (True, 1), (1, True),
             (np.complex128(1), 1.0), (np.array([True, False]), [True, False]),
             (np.array([1, 0]), [True, False]), (np.array([1, 2]), [1, 2]),
             (np.array([1.0, 2.0]), (1, 2.0)), (np.array([True]), np.array([True])),
             (np.array([1, 2]), np.array([1, 2])), (np.array(["a"]), ["a"]),
             ([1, (2.0, "x")], [1, (2.0, "x")]), ({"a": np.int32(1)}, {"a": 1}),
             ("r1", "r1"), (None, None), ([np.float32(0.1)], [0.1])]
    for actual, expected in pairs:
        verdict = judge(("equal", "x", actual, expected))
        assert _same(actual, expected) == verdict, (actual, expected, verdict)
