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
import csv
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from course import paths
from course.notebook_files import NotebookError, read_ipynb, relative
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

DEFAULT_TIMEOUT = 60.0
# nbclient logs timeouts and dead kernels; the grader reports them in its results instead.
_QUIET = logging.getLogger("course.grader.kernel")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False
# Run before every test cell: fresh feedback helpers, whatever the learner's cells rebound.
TEST_PRELUDE = ("import importlib as _importlib, course.feedback as _feedback; "
                "_importlib.reload(_feedback); from course.feedback import *\n")
CSV_FIELDS = ("learner", "exercise", "points", "max_points", "status", "message")
# Where IPython's traceback names a line of a cell, and a name an answer never defined.
CELL_LINE = re.compile(r"Cell In\[\d*\], line (\d+)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
IPYTHON_FILE = re.compile(r" \([^()]*, line (\d+)\)$")  # where Python compiled the cell
UNDEFINED = re.compile(r"name '(\w+)' is not defined|`(\w+)` is not defined")
# The kernel that grades is not a JupyterLab session: "Check my answers" in it does nothing.
SESSION_VARIABLE = "JPY_SESSION_NAME"


class GradingError(ValueError):
    """A submission that cannot be graded at all (not a notebook, no matching solutions)."""


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
    learner_nb = _read_submission(submission)
    solutions_root = solutions_root or paths.SOLUTIONS
    solution_md = Path(solution) if solution else find_solution(learner_nb, submission,
                                                                solutions_root)
    try:
        solution_nb = read_solution(solution_md)
    except (NotebookError, MarkupError) as error:
        raise GradingError(str(error)) from None
    graded, missing = _graded_notebook(solution_nb, learner_nb)
    with tempfile.TemporaryDirectory(prefix="course-check-") as workdir:
        runs = _execute(graded, timeout, workdir)
    report = Report(relative(submission), relative(solution_md))
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
                                               message))
    report.other_errors = [
        f"cell {index} ({(cell.source.splitlines() or [''])[0]!r}): {_describe(run, timeout)}"
        for index, (cell, run) in enumerate(zip(graded.cells, runs, strict=True))
        if cell.cell_type == "code" and not (is_answer(cell) or is_test(cell))
        and run.status not in ("ok", "not-run") and RAISES not in cell.metadata.get("tags", [])]
    return report


def find_solution(nb: nbformat.NotebookNode, submission: Path, solutions_root: Path) -> Path:
    """The solutions notebook a submission was released from: its `exercise` metadata, else
    the one solutions notebook with the submission's file name."""
    root = solutions_root.resolve()
    source = nb.metadata.get(METADATA_KEY, {}).get("source") if isinstance(
        nb.metadata.get(METADATA_KEY), dict) else None
    if isinstance(source, str):
        candidate = (root.parent / source).resolve()
        if candidate.is_relative_to(root) and candidate.suffix == ".md" and candidate.is_file():
            return candidate
    by_name = sorted(root.glob(f"*/{submission.stem}.md"))
    if len(by_name) == 1:
        return by_name[0]
    named = f"its metadata names {source!r} and " if source else ""
    raise GradingError(f"{relative(submission)}: no matching solutions notebook ({named}no "
                       f"{relative(root)}/<category>/{submission.stem}.md); use --solution")


def _read_submission(path: Path) -> nbformat.NotebookNode:
    if path.suffix != ".ipynb":
        raise GradingError(f"{relative(path)}: not a notebook (expected an .ipynb file)")
    try:
        return read_ipynb(path)
    except NotebookError as error:
        raise GradingError(str(error)) from None


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
        lines.append(f"  {mark} {r.exercise:<{width}}  {_num(r.points)}/{_num(r.max_points)}"
                     f"  {detail}")
    done = sum(r.status == "passed" for r in report.exercises)
    lines.append(f"Total: {_num(report.points)}/{_num(report.max_points)} points "
                 f"({done} of {len(report.exercises)} exercises passed)")
    lines += [f"  ! not graded, but it failed: {error}" for error in report.other_errors]
    return "\n".join(lines)


def _num(value: float) -> str:
    return f"{value:g}"


def grade_batch(folder: Path, on_result: Callable[[str, Report | str], None] | None = None,
                **options) -> list[tuple[str, Report | str]]:
    """Grade every .ipynb in `folder` (one per learner, learner id = file stem); a file that
    cannot be graded gives its error message instead of a report. ``on_result`` hears each
    learner's result as soon as it is graded."""
    results: list[tuple[str, Report | str]] = []
    for path in sorted(folder.glob("*.ipynb")):
        if path.name.startswith("."):
            continue
        try:
            results.append((path.stem, grade(path, **options)))
        except GradingError as error:
            results.append((path.stem, str(error)))
        if on_result:
            on_result(*results[-1])
    return results


def write_csv(results: list[tuple[str, Report | str]], target: Path) -> None:
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_FIELDS)
        for learner, result in results:
            if isinstance(result, str):
                writer.writerow([learner, "", 0, "", "unusable", result])
                continue
            for r in result.exercises:
                writer.writerow([learner, r.exercise, _num(r.points), _num(r.max_points),
                                 r.status, r.message])


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
        return _usage("give one SUBMISSION.ipynb or --batch DIR")
    if args.csv and not args.batch:
        return _usage("--csv needs --batch DIR")
    if not args.timeout > 0:
        return _usage(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    options = {"timeout": args.timeout, "solution": args.solution}
    if args.batch:
        return _run_batch(args, options)
    try:
        report = grade(args.submission, **options)
    except GradingError as error:
        if args.json:
            print(json.dumps({"submission": str(args.submission), "error": str(error)}))
        return _usage(str(error))
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report))
    return 0 if report.passed else 1


def _run_batch(args: argparse.Namespace, options: dict) -> int:
    if not args.batch.is_dir():
        return _usage(f"--batch {args.batch}: not a folder")
    results = grade_batch(args.batch, None if args.json else _print_learner, **options)
    if not results:
        return _usage(f"--batch {args.batch}: no .ipynb files in it")
    if args.csv:
        write_csv(results, args.csv)
    unusable = [learner for learner, result in results if isinstance(result, str)]
    if args.json:
        print(json.dumps({"submissions": [
            {"learner": learner, "error": result} if isinstance(result, str)
            else {"learner": learner, **result.to_dict()} for learner, result in results]},
            indent=2))
    else:
        print(f"{len(results)} submissions: {len(results) - len(unusable)} graded, "
              f"{len(unusable)} unusable" + (f"; rows in {args.csv}" if args.csv else ""))
    return 1 if unusable else 0


def _print_learner(learner: str, result: Report | str) -> None:
    print(f"{learner}: unusable: {result}" if isinstance(result, str) else
          f"{learner}: {_num(result.points)}/{_num(result.max_points)} points", flush=True)


def _usage(message: str) -> int:
    print(f"course check: {message}", file=sys.stderr)
    return 2
