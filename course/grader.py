"""Grade a learner's exercise notebook against the authoritative tests in solutions/.

Like an examiner who copies only the answer boxes from a paper onto a fresh exam sheet and
marks that: the grader takes each answer cell from the submission by its nbgrader `grade_id`,
puts it into the solutions notebook in place of the solution, and runs that notebook (visible
and hidden tests) cell by cell in a fresh kernel. Whatever else the learner changed (test cells
edited or deleted, prose, extra cells) is ignored, and the feedback helpers are imported afresh
before every test cell, so an answer that rebinds `expect_equal` gains nothing. An error, an
endless loop (per-cell timeout) or a dead kernel costs only the exercise it happens in: after
a timeout or a crash the kernel is restarted, the earlier cells are replayed and grading goes on.

What this does not defend against: the learner's answer runs as ordinary Python in the same
kernel before the tests, so code written to attack the grader (patching ``importlib`` or
IPython's input transformers, redefining a global other than the helpers that a test reads,
reading the solutions from disk) can fake a pass. Grade untrusted submissions in a sandbox;
docs/instructors.md says more.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from course import paths
from course.notebook_files import NotebookError, relative
from course.release import (
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
# nbclient logs timeouts and dead kernels; the grader reports them in its results instead.
_QUIET = logging.getLogger("course.grader.kernel")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False
# Run before every test cell: fresh feedback helpers, whatever the learner's cells rebound.
TEST_PRELUDE = ("import importlib as _importlib, course.feedback as _feedback; "
                "_importlib.reload(_feedback); from course.feedback import *\n")
# Where IPython's traceback names a line of a cell, and a name an answer never defined.
CELL_LINE = re.compile(r"Cell In\[\d*\], line (\d+)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
IPYTHON_FILE = re.compile(r" \([^()]*, line (\d+)\)$")  # where Python compiled the cell
UNDEFINED = re.compile(r"name '(\w+)' is not defined|`(\w+)` is not defined")
# The kernel that grades is not a JupyterLab session: "Check my answers" in it does nothing.
SESSION_VARIABLE = "JPY_SESSION_NAME"


@dataclass
class CellRun:
    """How one cell of the graded notebook ran."""

    status: str = "not-run"  # ok | error | timeout | crashed | not-run
    ename: str = ""
    evalue: str = ""
    line: int | None = None  # the line of the cell the error came from, when known

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
    status: str  # passed | failed | unanswered | missing | error | timeout | crashed | not-run
    message: str


@dataclass
class Report:
    submission: str
    solution: str
    exercises: list[ExerciseResult] = field(default_factory=list)
    # Cells that are neither answers nor tests (setup, demonstrations) and failed unexpectedly:
    # "cell N ('first line'): what happened". They score nothing but explain what follows.
    other_errors: list[str] = field(default_factory=list)

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
                "other_errors": self.other_errors}


def grade(
    submission: Path,
    *,
    solutions_root: Path | None = None,
    solution: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Report:
    """Grade one submission; GradingError when it cannot be graded at all."""
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
    graded, missing = _graded_notebook(solution_nb, learner_nb)
    with tempfile.TemporaryDirectory(prefix="course-check-") as workdir:
        runs = _execute(graded, timeout, workdir)
    report = Report(file_name(relative(submission)), relative(solution_md))
    answer_index = {nbgrader_of(c)["grade_id"]: i for i, c in enumerate(graded.cells)
                    if is_answer(c)}
    outside = _defined_outside_answers(learner_nb, set(answer_index))
    for ex in exercises_of(solution_nb):
        status, message = _verdict(ex.answer_ids, runs[ex.test_index], missing, answer_index,
                                   runs, timeout)
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
        if is_test(cell):
            cell.source = TEST_PRELUDE + cell.source
        elif is_answer(cell):
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


def _execute(nb: nbformat.NotebookNode, timeout: float, workdir: str) -> list[CellRun]:
    """Run every cell, restarting the kernel after a timeout or a crash."""
    runs = [CellRun() for _ in nb.cells]
    start = 0
    while start < len(nb.cells):
        start = _session(nb, runs, start, timeout, workdir)
    return runs


def _session(nb: nbformat.NotebookNode, runs: list[CellRun], start: int, timeout: float,
             workdir: str) -> int:
    """In a fresh kernel, replay the cells before `start` that finished, then run on from
    `start`; returns where the next session starts (len(cells) when done)."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    replies: dict[int, dict] = {}
    client = NotebookClient(
        nb, timeout=timeout, allow_errors=True, kernel_name="python3",
        shutdown_kernel="immediate",
        resources={"metadata": {"path": workdir}}, log=_QUIET,
        on_cell_executed=lambda cell, cell_index, execute_reply: replies.__setitem__(
            cell_index, execute_reply),
    )
    # The kernel's own stderr (transport warnings, crash noise) is not the learner's output.
    env = {key: value for key, value in os.environ.items() if key != SESSION_VARIABLE}
    with client.setup_kernel(stderr=subprocess.DEVNULL, env=env):
        try:
            for index in range(start):
                if runs[index].status in ("ok", "error"):
                    client.execute_cell(copy.deepcopy(nb.cells[index]), index)
        except (CellTimeoutError, DeadKernelError):
            for run in runs[start:]:
                run.evalue = "replaying the earlier cells after a restart failed"
            return len(nb.cells)
        for index in range(start, len(nb.cells)):
            try:
                client.execute_cell(nb.cells[index], index)
            except CellTimeoutError:
                runs[index] = CellRun("timeout")
                return index + 1
            except DeadKernelError:
                runs[index] = CellRun("crashed")
                return index + 1
            content = replies.get(index, {}).get("content", {})
            if any(isinstance(item, dict) and item.get("source") == "ask_exit"
                   for item in content.get("payload", [])):  # exit() or quit(): the kernel
                runs[index] = CellRun("crashed", "exit")  # stops once the cell is done
                return index + 1
            if content.get("status") == "error":
                runs[index] = CellRun("error", content.get("ename", "Error"),
                                      content.get("evalue", ""),
                                      _error_line(content))
            else:
                runs[index] = CellRun("ok")
    return len(nb.cells)


def _error_line(error: dict) -> int | None:
    """The line of the cell that ran: the first cell frame in IPython's traceback, else (a
    syntax error found while compiling) the line the error message names."""
    found = (CELL_LINE.search(ANSI.sub("", "\n".join(error.get("traceback", []))))
             or IPYTHON_FILE.search(error.get("evalue", "")))
    return int(found.group(1)) if found else None


def _verdict(answer_ids: tuple[str, ...], test: CellRun, missing: set[str],
             answer_index: dict[str, int], runs: list[CellRun], timeout: float
             ) -> tuple[str, str]:
    """An exercise's status and message from how its answer and test cells ran."""
    gone = [grade_id for grade_id in answer_ids if grade_id in missing]
    if gone:
        return "missing", f"answer cell {gone[0]!r} missing or renamed in the submission"
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
    if run.status == "crashed" and run.ename == "exit":
        return ("called exit() or quit(), which stops the kernel; it was restarted for the "
                "other exercises")
    if run.status == "crashed":
        return ("the Python kernel died (os._exit, a crash or out of memory?); it was "
                "restarted for the other exercises")
    if run.status == "not-run":
        return f"not run: {run.evalue or 'grading stopped early'}"
    if run.ename in ("SyntaxError", "IndentationError", "TabError"):
        return f"does not parse: {IPYTHON_FILE.sub('', run.message)}"
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
