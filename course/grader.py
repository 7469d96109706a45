"""Grade a learner's exercise notebook against the authoritative tests in solutions/.

Like an examiner who copies only the answer boxes from a paper onto fresh exam sheets, one per
question, and marks each sheet in a room of its own: the grader takes each answer cell from
the submission by its nbgrader `grade_id` and, for every exercise, runs the lesson's setup
cells, that exercise's answer cells and its test cell (visible and hidden checks) in a fresh
interpreter (:mod:`course.runner`), sandboxed when the machine allows (:mod:`course.sandbox`).
Whatever else the learner changed (test cells edited or deleted, prose, extra cells) is
ignored; an error, an endless loop (per-cell timeout), a crash or an attempt to tamper with the
grading costs only the exercise it happens in. An exercise passes only when its test finished
and the runner judged as many of its checks passed as with the reference solution:
docs/instructors.md gives the threat model.
"""

from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import json
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from course import paths, sandbox
from course.notebook_files import NotebookError, relative
from course.release import (
    MARKERS,
    METADATA_KEY,
    RAISES,
    MarkupError,
    exercises_of,
    is_answer,
    is_test,
    nbgrader_of,
    read_solution,
    stub_source,
)
from course.submission import GradingError, named_solution, read_submission
from course.text import file_name, printable

DEFAULT_TIMEOUT = 60.0
# Exit codes of `course check`: graded (every exercise passed, or not), a command or a file that
# could not be used at all, and a failure of the grader itself (never a learner's doing).
EXIT_ALL_PASSED, EXIT_NOT_ALL_PASSED, EXIT_USAGE, EXIT_GRADER_FAILED = 0, 1, 2, 3
# Where a syntax error's message names the cell and line it was compiled as, and the name an
# answer never defined.
COMPILED_AT = re.compile(r" \([^()]*, line (\d+)\)$")
UNDEFINED = re.compile(r"name '(\w+)' is not defined|`(\w+)` is not defined"
                       r"|local variable '(\w+)' where it is not associated")


CELL_STATUSES = ("ok", "error", "timeout", "crashed", "tampered", "not-run")


@dataclass
class CellRun:
    """How one cell of the graded notebook ran."""

    status: str = "not-run"  # ok | error | timeout | crashed | tampered | not-run
    ename: str = ""
    evalue: str = ""
    line: int | None = None  # the line of the cell the error came from, when known
    checks: int | None = None  # a test cell's checks the runner judged passed

    @classmethod
    def of(cls, outcome: dict) -> CellRun:
        """From a runner's report of a cell (plain values, as the runner sends them)."""
        def text(key: str) -> str:
            value = outcome.get(key)
            return value if isinstance(value, str) else ""

        line, checks = outcome.get("line"), outcome.get("checks")
        status = text("status")
        return cls(status if status in CELL_STATUSES else "crashed", text("ename"),
                   text("evalue"), line if type(line) is int else None,
                   checks if type(checks) is int else None)

    @property
    def message(self) -> str:
        last = self.evalue.strip().splitlines()[-1] if self.evalue.strip() else ""
        if self.ename in ("AssertionError", "NotAnsweredError"):
            return last or "a check failed"
        where = f" on line {self.line}" if self.line else ""
        return f"{self.ename}{where}: {last}" if last else f"{self.ename}{where}"

    @property
    def undefined_name(self) -> str:
        """The name a NameError (or "not answered yet") says is not defined, if any."""
        found = UNDEFINED.search(self.evalue) if self.status == "error" else None
        return next(filter(None, found.groups()), "") if found else ""


@dataclass
class ExerciseResult:
    exercise: str  # the grade_id of the test cell
    points: float
    max_points: float
    status: str  # passed | failed | unanswered | missing | error | timeout | crashed | tampered
    #               | not-run
    message: str


@dataclass
class Report:
    submission: str
    solution: str
    exercises: list[ExerciseResult] = field(default_factory=list)
    # Cells that are neither answers nor tests (setup, demonstrations) and failed unexpectedly:
    # "cell N ('first line'): what happened". They score nothing but explain what follows.
    other_errors: list[str] = field(default_factory=list)
    sandboxed: bool = False  # graded inside bubblewrap (course.sandbox)

    @property
    def points(self) -> float:
        return sum(result.points for result in self.exercises)

    @property
    def max_points(self) -> float:
        return sum(result.max_points for result in self.exercises)

    @property
    def passed(self) -> bool:
        return all(result.status == "passed" for result in self.exercises)

    def to_dict(self) -> dict:
        return {"submission": self.submission, "solution": self.solution,
                "points": self.points, "max_points": self.max_points, "passed": self.passed,
                "exercises": [asdict(result) for result in self.exercises],
                "other_errors": self.other_errors, "sandboxed": self.sandboxed}


def grade(
    submission: Path,
    *,
    solutions_root: Path | None = None,
    solution: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    sandboxed: bool | None = None,
) -> Report:
    """Grade one submission; GradingError when it cannot be graded at all. ``sandboxed``:
    True to require the sandbox, False to go without, None to use it where it can be made."""
    submission = Path(submission)
    learner_nb = read_submission(submission)
    solutions_root = solutions_root or paths.SOLUTIONS
    solution_md = Path(solution) if solution else find_solution(learner_nb, submission,
                                                                solutions_root)
    named = named_solution(learner_nb, solutions_root)
    if named is not None and named != solution_md.resolve():
        home = solutions_root.resolve().parent  # name both as the metadata does
        graded = solution_md.resolve()
        raise GradingError(
            f"{file_name(relative(submission))}: the notebook of {named.relative_to(home)}, "
            f"not of {graded.relative_to(home) if graded.is_relative_to(home) else graded}, "
            "which is being graded")
    try:
        solution_nb = read_solution(solution_md)
    except (NotebookError, MarkupError) as error:
        raise GradingError(str(error)) from None
    if sandboxed is None:
        sandboxed = not sandbox.unavailable()
    elif sandboxed and sandbox.unavailable():
        raise GradingError(f"no sandbox: {sandbox.unavailable()}")
    exercises = exercises_of(solution_nb)
    reference = _reference_checks(solution_md, solution_nb, exercises, timeout, sandboxed)
    graded, missing = _graded_notebook(solution_nb, learner_nb)
    runs = _execute(graded, exercises, timeout, sandboxed)
    report = Report(file_name(relative(submission)), relative(solution_md), sandboxed=sandboxed)
    answer_index = {nbgrader_of(c)["grade_id"]: i for i, c in enumerate(graded.cells)
                    if is_answer(c)}
    outside = _defined_outside_answers(learner_nb, set(answer_index))
    for ex in exercises:
        status, message = _verdict(ex.answer_ids, runs[ex.test_index], missing, answer_index,
                                   runs, timeout, reference.get(ex.test_index))
        status, message = _outside_answers(status, message, ex.answer_ids, runs,
                                           answer_index, runs[ex.test_index], outside)
        points = ex.max_points if status == "passed" else 0.0
        report.exercises.append(ExerciseResult(ex.grade_id, points, ex.max_points, status,
                                               printable(message)))
    report.other_errors = [
        printable(f"cell {index} ({(cell.source.splitlines() or [''])[0]!r}): "
                  f"{_describe(run, timeout)}")
        for index, (cell, run) in enumerate(zip(graded.cells, runs, strict=True))
        if cell.cell_type == "code" and not (is_answer(cell) or is_test(cell))
        and run.status not in ("ok", "not-run") and RAISES not in cell.metadata.get("tags", [])]
    return report


def find_solution(nb: nbformat.NotebookNode, submission: Path, solutions_root: Path) -> Path:
    """The solutions notebook a submission was released from: its `exercise` metadata, else
    the one solutions notebook with the submission's file name."""
    named = named_solution(nb, solutions_root)
    if named is not None:
        return named
    root = solutions_root.resolve()
    by_name = sorted(root.glob(f"*/{submission.stem}.md"))
    if len(by_name) == 1:
        return by_name[0]
    source = nb.metadata.get(METADATA_KEY, {}).get("source")
    names = f"its metadata names {printable(repr(source), 80)} and " if source else ""
    raise GradingError(f"{file_name(relative(submission))}: no matching solutions notebook "
                       f"({names}no {relative(root)}/<category>/{file_name(submission.stem)}.md);"
                       " use --solution")


def _graded_notebook(
    solution_nb: nbformat.NotebookNode, learner_nb: nbformat.NotebookNode
) -> tuple[nbformat.NotebookNode, set[str]]:
    """The solutions notebook with the learner's answer cells; also the grade_ids missing."""
    answers: dict[str, str] = {}
    for cell in learner_nb.cells:
        grade_id = nbgrader_of(cell).get("grade_id")
        if isinstance(grade_id, str) and grade_id not in answers:
            answers[grade_id] = cell.source
    graded = copy.deepcopy(solution_nb)
    missing = set()
    for cell in graded.cells:
        if is_answer(cell):
            grade_id = nbgrader_of(cell)["grade_id"]
            if grade_id in answers:
                cell.source = answers[grade_id]
            else:
                missing.add(grade_id)
                cell.source = stub_source(cell)
    return graded, missing


def _defined_outside_answers(learner_nb: nbformat.NotebookNode, answer_ids: set[str]
                             ) -> set[str]:
    """Names the learner's notebook defines in code cells that are not answer cells."""
    names: set[str] = set()
    for cell in learner_nb.cells:
        if cell.cell_type != "code" or nbgrader_of(cell).get("grade_id") in answer_ids:
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.alias):
                names.add((node.asname or node.name).split(".")[0])
    return names


def _outside_answers(status: str, message: str, answer_ids: tuple[str, ...],
                     runs: list[CellRun], answer_index: dict[str, int], test: CellRun,
                     outside: set[str]) -> tuple[str, str]:
    """Explain an undefined name that the learner defined in a cell that is not graded."""
    if status == "passed" or not answer_ids:
        return status, message
    cells = [runs[answer_index[grade_id]] for grade_id in answer_ids
             if grade_id in answer_index] + [test]
    name = next((run.undefined_name for run in cells if run.undefined_name in outside), "")
    if not name:
        return status, message
    return "error", (f"`{name}` is defined in a cell that is not an answer cell, and only "
                     f"answer cells are graded: move it into the answer cell {answer_ids[0]!r}")


_MARKER_LINES = frozenset(f"### {marker}" for marker in MARKERS)
# The reference solution's own runs, by job: an exercise whose cells are the reference's (marker
# comments aside) has the reference's outcome, so grading the solution runs it once, not twice.
_TRUSTED_RUNS: dict[str, dict[int, dict]] = {}


def _execute(nb: nbformat.NotebookNode, exercises: list, timeout: float, sandboxed: bool,
             *, trusted: bool = False) -> list[CellRun]:
    """Run each exercise in a process of its own (as many at once as there are cores).
    ``trusted``: these are the reference solution's cells; keep their outcomes."""
    jobs = [_job(nb, ex) for ex in exercises]
    keys = [_job_key(cells, timeout, sandboxed) for cells in jobs]

    def run_or_reuse(key: str, cells: list[dict]) -> dict[int, dict]:
        if key in _TRUSTED_RUNS:
            return _TRUSTED_RUNS[key]
        done = sandbox.run_job(cells, timeout=timeout, sandboxed=sandboxed)
        if trusted:
            _TRUSTED_RUNS[key] = done
        return done

    with ThreadPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
        outcomes = list(pool.map(run_or_reuse, keys, jobs))
    runs = [CellRun() for _ in nb.cells]
    for done in outcomes:  # a setup cell runs in every job: the first run that finished counts
        for index, outcome in done.items():
            if runs[index].status == "not-run":
                runs[index] = CellRun.of(outcome)
    return runs


def _job_key(cells: list[dict], timeout: float, sandboxed: bool) -> str:
    """A job's identity, its marker lines (comments) left out: the solution as a learner
    types it is the same job as the solutions notebook's cell."""
    plain = [{**cell, "source": "\n".join(line for line in cell["source"].split("\n")
                                          if line.strip() not in _MARKER_LINES)}
             for cell in cells]
    return hashlib.sha256(json.dumps([plain, timeout, sandboxed]).encode()).hexdigest()


def _job(nb: nbformat.NotebookNode, ex) -> list[dict]:
    """One exercise's cells: the setup cells before its test, its answer cells, its test."""
    cells = []
    for index, cell in enumerate(nb.cells[:ex.test_index + 1]):
        if cell.cell_type != "code":
            continue
        if is_test(cell):
            kind = "test" if index == ex.test_index else ""
        elif is_answer(cell):
            kind = "answer" if nbgrader_of(cell)["grade_id"] in ex.answer_ids else ""
        else:
            kind = "setup"
        if kind:
            cells.append({"index": index, "kind": kind, "source": cell.source})
    return cells


_REFERENCES: dict[str, dict[int, int]] = {}


def _reference_checks(solution_md: Path, solution_nb: nbformat.NotebookNode, exercises: list,
                      timeout: float, sandboxed: bool) -> dict[int, int]:
    """How many checks of each test cell the runner judges passed with the solution's own
    answers (by the test cell's index), computed once per solutions notebook and kept on disk."""
    key = hashlib.sha256(solution_md.read_bytes() + _runner_fingerprint()).hexdigest()
    if key in _REFERENCES:
        return _REFERENCES[key]
    stored = _reference_file(key)
    try:
        found = {int(k): v for k, v in json.loads(stored.read_text(encoding="utf-8")).items()}
    except (OSError, ValueError, AttributeError):
        runs = _execute(solution_nb, exercises, timeout, sandboxed, trusted=True)
        found = {ex.test_index: runs[ex.test_index].checks for ex in exercises
                 if runs[ex.test_index].status == "ok" and runs[ex.test_index].checks}
        if len(found) == len(exercises):  # keep only a reference that passed everywhere
            _store(stored, json.dumps(found))
    _REFERENCES[key] = found
    return found


def _runner_fingerprint() -> bytes:
    """What the count of checks depends on besides the solutions notebook."""
    from course import feedback, judge, runner, seals

    return b"".join(Path(m.__file__).read_bytes() for m in (feedback, judge, runner, seals))


def _reference_file(key: str) -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "course" / "reference-checks" / f"{key}.json"


def _store(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (a cache: failures are ignored)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    except OSError:
        pass


def _verdict(answer_ids: tuple[str, ...], test: CellRun, missing: set[str],
             answer_index: dict[str, int], runs: list[CellRun], timeout: float,
             reference: int | None) -> tuple[str, str]:
    """An exercise's status and message from how its answer and test cells ran."""
    gone = [grade_id for grade_id in answer_ids if grade_id in missing]
    if gone:
        return "missing", f"answer cell {gone[0]!r} missing or renamed in the submission"
    if test.status == "tampered":
        return "tampered", test.evalue or "the submission modified the grader"
    if test.status == "ok" and reference is None:
        return "not-run", "the reference solution does not pass this test: ask your instructor"
    if test.status == "ok" and test.checks != reference:
        return "tampered", (f"the submission modified the grader: {test.checks or 0} of the "
                            f"test's {reference} checks ran as the course wrote them")
    if test.status == "ok":
        return "passed", "passed"
    for grade_id in answer_ids:
        answer = runs[answer_index[grade_id]]
        if answer.status in ("timeout", "crashed") or (
                answer.status == "error" and answer.ename != "NotImplementedError"):
            return answer.status, f"your answer cell {grade_id!r}: {_describe(answer, timeout)}"
    if test.status == "error":
        unanswered = test.ename == "NotAnsweredError"
        return ("unanswered" if unanswered else "failed"), test.message
    return test.status, f"the tests: {_describe(test, timeout)}"


def _describe(run: CellRun, timeout: float) -> str:
    if run.status == "timeout":
        return f"timed out after {timeout:g} s (an endless loop, or far too slow?)"
    if run.status == "crashed" and run.ename in ("exit", "SystemExit"):
        return ("called exit() or quit() (or raised SystemExit), which ends the grading of "
                "this exercise; the others are graded on their own")
    if run.status == "crashed" and run.ename == "output":
        return (f"wrote more than {sandbox.OUTPUT_CAP >> 20} MiB to the grader's output; it "
                "was stopped")
    if run.status == "crashed":
        return ("the Python process grading it died (os._exit, a crash, or over the memory or "
                "CPU limit?); the other exercises are graded on their own")
    if run.status == "not-run":
        return f"not run: {run.evalue or 'grading stopped early'}"
    if run.status == "tampered":
        return run.evalue or "the submission modified the grader"
    if run.ename in ("SyntaxError", "IndentationError", "TabError"):
        return f"does not parse: {COMPILED_AT.sub('', run.message)}"
    return f"raised {run.message}" if run.ename != "AssertionError" else run.message


def format_report(report: Report) -> str:
    width = max((len(r.exercise) for r in report.exercises), default=0)
    lines = [f"{report.submission}: graded against {report.solution}"]
    for r in report.exercises:
        mark = "✓" if r.status == "passed" else "✗"
        detail = "passed" if r.status == "passed" else f"{r.status}: {r.message}"
        lines.append(f"  {mark} {r.exercise:<{width}}  {format_points(r.points)}/"
                     f"{format_points(r.max_points)}  {detail}")
    done = sum(r.status == "passed" for r in report.exercises)
    lines.append(f"Total: {format_points(report.points)}/{format_points(report.max_points)} points "
                 f"({done} of {len(report.exercises)} exercises passed)")
    lines += [f"  ! not graded, but it failed: {error}" for error in report.other_errors]
    return "\n".join(lines)


def format_points(value: float) -> str:
    return f"{value:g}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("submission", nargs="?", type=Path, metavar="SUBMISSION.ipynb",
                        help="the learner's notebook")
    parser.add_argument("--batch", type=Path, metavar="DIR",
                        help="grade every .ipynb in DIR (one per learner; id = file stem)")
    parser.add_argument("--csv", type=Path, metavar="FILE",
                        help="with --batch: write one row per learner and exercise")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
                        help=f"seconds allowed per cell (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--no-sandbox", action="store_true",
                        help="grade without bubblewrap where it cannot be made (a batch refuses "
                             "to otherwise: every submission then runs with your rights)")
    parser.add_argument("--solution", type=Path, metavar="PATH",
                        help="grade against this solutions notebook (.md) instead of the one "
                             "the submission names")


def run(args: argparse.Namespace) -> int:
    if (args.submission is None) == (args.batch is None):
        return usage("give one SUBMISSION.ipynb or --batch DIR")
    if args.csv and not args.batch:
        return usage("--csv needs --batch DIR")
    if not args.timeout > 0:
        return usage(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    options = {"timeout": args.timeout, "solution": args.solution}
    if args.batch:
        from course.batch import run_batch  # it grades with this module

        why = sandbox.unavailable()
        if why and not args.no_sandbox:
            return usage(f"--batch grades other people's code, and no sandbox can be made here "
                         f"({why}); install bubblewrap, or pass --no-sandbox to grade with "
                         "your own rights (docs/instructors.md, section 8)")
        options["sandboxed"] = not why
        return run_batch(args, options)
    try:
        report = grade(args.submission, **options)
    except GradingError as error:
        if args.json:
            print(json.dumps({"submission": file_name(str(args.submission)),
                              "error": str(error)}))
        return usage(str(error))
    except Exception as error:  # a bug of the grader's, not a problem of the submission
        print(f"course check: the grader failed: {printable(f'{type(error).__name__}: {error}')}",
              file=sys.stderr)
        return EXIT_GRADER_FAILED
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report))
    return EXIT_ALL_PASSED if report.passed else EXIT_NOT_ALL_PASSED


def usage(message: str) -> int:
    print(f"course check: {printable(message)}", file=sys.stderr)
    return EXIT_USAGE
