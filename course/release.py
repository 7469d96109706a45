"""Release the student exercises: the solutions notebooks with the answers taken out.

Like photocopying a worked exam with tape over the answers: the questions, the prose and the
visible checks come through; the solution blocks and the hidden tests do not.

`solutions/<category>/<slug>.md` uses nbgrader's markup: an answer cell (nbgrader metadata
``solution: true``) holds ``### BEGIN SOLUTION`` ... ``### END SOLUTION``; a test cell
(``grade: true`` with ``points``) holds visible checks and ``### BEGIN HIDDEN TESTS`` ...
``### END HIDDEN TESTS``. The release replaces each solution block with nbgrader's own stub
(``# YOUR CODE HERE`` / ``raise NotImplementedError()``, indented like the marker; a whole
answer cell without markers becomes the stub), drops the hidden tests, tags the answer and
test cells ``raises-exception`` (they fail until answered, and a run must expect that) and
records the source under the notebook metadata key ``exercise``. Like nbgrader's ``LockCells``
and ``ComputeChecksums``, it makes answer cells undeletable and test and read-only cells
(``locked: true``: the setup and "Check my answers" cells) neither editable nor deletable, and
gives each of them nbgrader's checksum, so JupyterLab and nbgrader treat both releases alike.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat

from course import paths
from course.notebook_files import NotebookError, read_markdown, relative, twin_of, write_pair

BEGIN_SOLUTION, END_SOLUTION = "BEGIN SOLUTION", "END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
MARKERS = (BEGIN_SOLUTION, END_SOLUTION, BEGIN_HIDDEN, END_HIDDEN)
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"  # nbgrader's ClearSolutions stub
RAISES = "raises-exception"
METADATA_KEY = "exercise"
REQUIRED_KEYS = ("grade", "grade_id", "locked", "schema_version", "solution")
CHECK_CALL = re.compile(r"\bexpect_\w+\(")
HIDDEN_COUNT = re.compile(r"\bexercise\([^\n]*?\bhidden\s*=\s*(\d+)")


class MarkupError(ValueError):
    """A solutions notebook whose nbgrader markup is wrong; one problem per line."""


@dataclass(frozen=True)
class Exercise:
    """One graded test cell and the answer cells it checks (those since the previous one)."""

    grade_id: str
    max_points: float
    test_index: int
    answer_ids: tuple[str, ...]


def nbgrader_of(cell: nbformat.NotebookNode) -> dict:
    meta = cell.metadata.get("nbgrader")
    return meta if isinstance(meta, dict) else {}


def is_answer(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "code" and nbgrader_of(cell).get("solution") is True


def is_test(cell: nbformat.NotebookNode) -> bool:
    meta = nbgrader_of(cell)
    return cell.cell_type == "code" and meta.get("grade") is True and not meta.get("solution")


def exercises_of(nb: nbformat.NotebookNode) -> list[Exercise]:
    """The exercises of a solutions notebook, in order (its markup must be valid)."""
    found: list[Exercise] = []
    pending: list[str] = []
    for index, cell in enumerate(nb.cells):
        if is_answer(cell):
            pending.append(nbgrader_of(cell)["grade_id"])
        elif is_test(cell):
            meta = nbgrader_of(cell)
            answers = tuple(pending) or (found[-1].answer_ids if found else ())
            found.append(Exercise(meta["grade_id"], float(meta["points"]), index, answers))
            pending = []
    return found


def check_markup(nb: nbformat.NotebookNode, where: str) -> None:
    """Raise MarkupError naming every cell whose markup nbgrader (or the grader) would reject."""
    problems: list[str] = []
    seen: set[str] = set()
    answer_waiting = ""
    for number, cell in enumerate(nb.cells, start=1):
        label = f"{where}: cell {number} ({cell.cell_type})"
        found = [marker for marker in MARKERS if marker in cell.source]
        meta = nbgrader_of(cell)
        if cell.cell_type != "code":
            if found:
                problems.append(f"{label}: markers {found} are allowed only in code cells")
            if meta.get("solution") or meta.get("grade"):
                problems.append(f"{label}: only code cells can be answer or test cells "
                                "(manually graded answers are not supported)")
            continue
        if meta:
            problems += _metadata_problems(meta, label, seen)
        if (BEGIN_SOLUTION in found or END_SOLUTION in found) and not is_answer(cell):
            problems.append(f"{label}: solution markers outside an answer cell "
                            "(nbgrader metadata solution: true)")
        if (BEGIN_HIDDEN in found or END_HIDDEN in found) and not is_test(cell):
            problems.append(f"{label}: hidden-test markers outside a test cell "
                            "(nbgrader metadata grade: true, solution: false)")
        hidden: list[str] = []
        for begin, end in ((BEGIN_SOLUTION, END_SOLUTION), (BEGIN_HIDDEN, END_HIDDEN)):
            try:
                hidden = _cut(cell.source, begin, end, [])[2]
            except ValueError as error:
                problems.append(f"{label}: {error}")
        if is_test(cell):
            problems += _hidden_count_problems(cell.source, hidden, label)
        if is_answer(cell):
            answer_waiting = str(meta.get("grade_id"))
        elif is_test(cell):
            answer_waiting = ""
    if answer_waiting:
        problems.append(f"{where}: answer cell {answer_waiting!r} has no test cell after it")
    if problems:
        raise MarkupError("\n".join(problems))


def _hidden_count_problems(source: str, hidden: list[str], label: str) -> list[str]:
    """A test cell tells the learner how many checks its hidden part holds."""
    checks = len(CHECK_CALL.findall("\n".join(hidden)))
    declared = HIDDEN_COUNT.search(source)
    said = int(declared.group(1)) if declared else 0
    if said != checks:
        return [f"{label}: its hidden part holds {checks} check(s), but its exercise(...) says "
                f"hidden={said}; write exercise(..., hidden={checks})"]
    return []


def _metadata_problems(meta: dict, label: str, seen: set[str]) -> list[str]:
    problems = [f"{label}: nbgrader metadata lacks {key!r}" for key in REQUIRED_KEYS
                if key not in meta]
    if meta.get("schema_version") != 3:
        problems.append(f"{label}: nbgrader schema_version is {meta.get('schema_version')!r}, "
                        "expected 3")
    grade_id = meta.get("grade_id")
    if not isinstance(grade_id, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", grade_id):
        problems.append(f"{label}: grade_id {grade_id!r} must be letters, digits, - or _")
    elif grade_id in seen:
        problems.append(f"{label}: grade_id {grade_id!r} is used twice")
    seen.add(str(grade_id))
    if meta.get("grade") and meta.get("solution"):
        problems.append(f"{label}: a cell cannot be both answer and test (manually graded "
                        "answers are not supported)")
    points = meta.get("points")
    if meta.get("grade") and (isinstance(points, bool) or not isinstance(points, int | float)
                              or points <= 0):
        problems.append(f"{label}: test cell points {points!r} must be a positive number")
    return problems


def _cut(source: str, begin: str, end: str, replacement: list[str]
         ) -> tuple[str, bool, list[str]]:
    """Replace each begin..end block (marker lines included) by `replacement`, indented like
    the begin marker; the same line-by-line rule as nbgrader's preprocessors. Returns the new
    source, whether a block was cut, and the lines cut out (markers excluded)."""
    lines, inside, cut, dropped = [], False, False, []
    for line in source.split("\n"):
        if begin in line:
            if inside:
                raise ValueError(f"nested {begin!r}")
            inside = cut = True
            indent = re.match(r"\s*", line).group(0)
            lines += [indent + stub_line for stub_line in replacement]
        elif end in line:
            if not inside:
                raise ValueError(f"{end!r} without {begin!r}")
            inside = False
        elif inside:
            dropped.append(line)
        else:
            lines.append(line)
    if inside:
        raise ValueError(f"{begin!r} without {end!r}")
    return "\n".join(lines), cut, dropped


def stub_source(cell: nbformat.NotebookNode) -> str:
    """What the learner sees in an answer cell: its solution blocks replaced by the stub."""
    source, cut, _ = _cut(cell.source, BEGIN_SOLUTION, END_SOLUTION, STUB.split("\n"))
    return source if cut else STUB


def student_copy(nb: nbformat.NotebookNode, source: str) -> nbformat.NotebookNode:
    """The student version of a solutions notebook; `source` is recorded in its metadata."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if is_answer(cell):
            cell.source = stub_source(cell)
        elif is_test(cell):
            cell.source = _cut(cell.source, BEGIN_HIDDEN, END_HIDDEN, [])[0]
        else:
            continue
        tags = cell.metadata.setdefault("tags", [])
        if RAISES not in tags:
            tags.append(RAISES)
    for cell in nb.cells:
        lock(cell)
    nb.metadata[METADATA_KEY] = {"source": source}
    return nb


def _is_locked(cell: nbformat.NotebookNode) -> bool:
    """nbgrader's rule: test cells are locked, answer cells never, others when marked."""
    meta = nbgrader_of(cell)
    return not meta.get("solution") and bool(meta.get("grade") or meta.get("locked"))


def lock(cell: nbformat.NotebookNode) -> None:
    """Lock a released cell and give it a checksum, as nbgrader's LockCells and
    ComputeChecksums do: an answer cell cannot be deleted; a test or read-only cell can be
    neither edited nor deleted."""
    meta = nbgrader_of(cell)
    if not meta:
        return
    if meta.get("solution"):
        cell.metadata["deletable"] = False
    elif _is_locked(cell):
        cell.metadata["deletable"] = False
        cell.metadata["editable"] = False
    else:
        return
    digest = hashlib.md5(usedforsecurity=False)
    for part in (cell.source, cell.cell_type, str(bool(meta.get("grade"))),
                 str(bool(meta.get("solution"))), str(_is_locked(cell)), meta["grade_id"],
                 *([str(float(meta["points"]))] if meta.get("grade") else [])):
        digest.update(part.encode("utf-8"))
    meta["checksum"] = digest.hexdigest()
    meta["cell_type"] = cell.cell_type


def source_key(solution_md: Path, solutions_root: Path) -> str:
    """How an exercise names its source: ``solutions/<category>/<slug>.md``."""
    return f"{solutions_root.name}/{solution_md.relative_to(solutions_root).as_posix()}"


def solution_sources(solutions_root: Path) -> list[Path]:
    """Every solutions notebook: ``<root>/<category>/<slug>.md``."""
    return sorted(p for p in solutions_root.glob("*/*.md") if not _hidden(p, solutions_root))


def exercise_files(exercises_root: Path) -> list[Path]:
    """Every released file: ``<root>/<category>/<slug>.md`` and ``.ipynb``."""
    return sorted(p for p in exercises_root.glob("*/*") if p.suffix in (".md", ".ipynb")
                  and p.is_file() and not _hidden(p, exercises_root))


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def read_solution(solution_md: Path) -> nbformat.NotebookNode:
    """Read a solutions notebook and check its markup (NotebookError or MarkupError)."""
    nb = read_markdown(solution_md)
    check_markup(nb, relative(solution_md))
    return nb


def render(solution_md: Path, solutions_root: Path) -> dict[str, str]:
    """The released pair of one solutions notebook: file name -> text, exactly as written."""
    student = student_copy(read_solution(solution_md), source_key(solution_md, solutions_root))
    with tempfile.TemporaryDirectory() as tmp:
        md = Path(tmp) / solution_md.name
        write_pair(student, md)
        return {p.name: p.read_text(encoding="utf-8") for p in (md, twin_of(md))}


def assign(sources: list[Path], solutions_root: Path, exercises_root: Path) -> list[Path]:
    """Write the student pair of each solutions notebook; returns the files written."""
    written = []
    for solution_md in sources:
        folder = exercises_root / solution_md.parent.relative_to(solutions_root)
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in render(solution_md, solutions_root).items():
            (folder / name).write_text(text, encoding="utf-8")
            written.append(folder / name)
    return written


def stale(solutions_root: Path, exercises_root: Path) -> list[str]:
    """Every way exercises/ differs from a fresh release, one line each (empty: up to date)."""
    problems = []
    expected: set[Path] = set()
    for solution_md in solution_sources(solutions_root):
        folder = exercises_root / solution_md.parent.relative_to(solutions_root)
        for name, text in render(solution_md, solutions_root).items():
            path = folder / name
            expected.add(path)
            if not path.exists():
                problems.append(f"{relative(path)}: missing (run `course assign`)")
            elif path.read_text(encoding="utf-8") != text:
                problems.append(f"{relative(path)}: stale, differs from "
                                f"{relative(solution_md)} (run `course assign`)")
    for path in exercise_files(exercises_root):
        if path not in expected:
            problems.append(f"{relative(path)}: its solutions source is gone "
                            f"(no {relative(solutions_root / path.relative_to(exercises_root))})"
                            "; delete it or restore the source")
    return problems


def leaks(solutions_root: Path, exercises_root: Path) -> list[str]:
    """Every solution line, hidden test or nbgrader marker found in exercises/, one per line."""
    problems = []
    for path in exercise_files(exercises_root):
        source = solutions_root / path.relative_to(exercises_root).with_suffix(".md")
        secret = _secret_lines(source) if source.exists() else set()
        for number, line in _text_lines(path):
            text = line.strip()
            marker = next((m for m in MARKERS if m in text), None)
            if marker or text in secret:
                what = f"marker {marker!r}" if marker else "a line of the solution"
                problems.append(f"{relative(path)}: {what} leaked ({_where(path, number)}): "
                                f"{text[:80]}")
    return problems


def _secret_lines(solution_md: Path) -> set[str]:
    """Lines in the solutions notebook that its student copy must not contain."""
    nb = read_markdown(solution_md)
    student = student_copy(nb, "")
    public = {line.strip() for cell in student.cells for line in cell.source.split("\n")}
    every = {line.strip() for cell in nb.cells for line in cell.source.split("\n")}
    return {line for line in every - public if line}


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The file's lines; for an .ipynb, the lines of every string in its JSON (number 0)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix != ".ipynb":
        yield from enumerate(text.splitlines(), start=1)
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        yield from enumerate(text.splitlines(), start=1)
        return
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield from ((0, line) for line in item.splitlines())
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _where(path: Path, number: int) -> str:
    return f"line {number}" if number else "in the notebook JSON"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                        help="solutions notebooks to release (solutions/<category>/<slug>.md "
                             "or its .ipynb twin); none means all")
    parser.add_argument("--all", action="store_true", help="release every solutions notebook")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if exercises/ is stale or leaks a solution")


def run(args: argparse.Namespace) -> int:
    solutions_root, exercises_root = paths.SOLUTIONS, paths.EXERCISES
    if args.paths and (args.all or args.check):
        return _usage("give PATHs or --all/--check, not both")
    try:
        if args.check:
            problems = stale(solutions_root, exercises_root) + leaks(solutions_root,
                                                                      exercises_root)
            for problem in problems:
                print(problem, file=sys.stderr)
            count = len(solution_sources(solutions_root))
            if not problems:
                print(f"exercises/ is up to date with solutions/ ({count} notebooks)")
            return 1 if problems else 0
        sources = [_as_source(p, solutions_root) for p in args.paths]
        written = assign(sources or solution_sources(solutions_root), solutions_root,
                         exercises_root)
    except (NotebookError, MarkupError) as error:
        return _usage(str(error))
    for path in written:
        print(f"wrote {relative(path)}")
    return 0


def _as_source(path: Path, solutions_root: Path) -> Path:
    md = path.resolve().with_suffix(".md")
    if (md.parent.parent != solutions_root.resolve() or not md.is_file()
            or path.suffix not in (".md", ".ipynb")):
        raise NotebookError(f"{path}: not a solutions notebook "
                            f"(expected {relative(solutions_root)}/<category>/<slug>.md)")
    return md


def _usage(message: str) -> int:
    print(f"course assign: {message}", file=sys.stderr)
    return 2
