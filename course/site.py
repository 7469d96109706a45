"""``course build``: execute every lesson and write a static HTML site.

Like a dress rehearsal before opening night, the build plays every lesson from the first cell to
the last in a fresh kernel, with a time limit per cell, and keeps what the audience would see:
``_build/html/<folder>/<slug>.html`` per lesson and ``_build/html/index.html`` linking them all
with their status. A lesson whose cell fails is reported (lesson, cell number, the error's last
line), its page is still written with the outputs up to the failure, the other lessons still run,
and the command exits 1 at the end.
"""

from __future__ import annotations

import argparse
import html
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from course.catalog import STATUS_WORDS, ordered
from course.lessons import Lesson, UsageError, discover, in_scope, resolve_paths
from course.notebook_files import NotebookError, read_markdown, relative
from course.paths import ROOT

DEFAULT_TIMEOUT_S = 120


@dataclass(frozen=True)
class BuildResult:
    lesson: Lesson
    seconds: float
    error: str | None = None  # "cell N: <last line of the error>" when the lesson failed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                        help="only the lessons in these files or folders (default: all)")
    parser.add_argument("--timeout", type=_positive_int, default=DEFAULT_TIMEOUT_S,
                        help=f"seconds allowed per cell (default {DEFAULT_TIMEOUT_S})")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: _build/html in the repository)")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    try:
        scopes = resolve_paths(args.paths)
    except UsageError as error:
        print(f"course build: {error}", file=sys.stderr)
        return 2
    lessons, problems = discover(args.root)
    lessons = [lesson for lesson in ordered(lessons) if in_scope(lesson.path, scopes)]
    for problem in problems:
        print(problem, file=sys.stderr)
    if scopes and not lessons:
        print("course build: no lesson in " + ", ".join(map(str, args.paths)), file=sys.stderr)
        return 2
    out = args.out or Path(args.root) / "_build" / "html"
    results = build(lessons, out, args.timeout)
    failed = [r for r in results if r.error]
    print(f"{len(results) - len(failed)} of {len(results)} lesson(s) built into {relative(out)}")
    return 1 if failed or problems else 0


def build(lessons: list[Lesson], out: Path, timeout: int) -> list[BuildResult]:
    """Execute and export each lesson, printing progress; then write the index page."""
    results = []
    for number, lesson in enumerate(lessons, start=1):
        print(f"[{number}/{len(lessons)}] {lesson.slug} ...", end=" ", flush=True)
        result = build_lesson(lesson, out, timeout)
        verdict = "FAILED" if result.error else "ok"
        print(f"{verdict} ({result.seconds:.1f} s)", flush=True)
        if result.error:
            print(f"    {lesson.slug}, {result.error}", flush=True)
        results.append(result)
    write_index(results, out)
    return results


def build_lesson(lesson: Lesson, out: Path, timeout: int) -> BuildResult:
    """Run one lesson in a fresh kernel and write its HTML page."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    start = time.perf_counter()
    try:
        nb = read_markdown(lesson.path)
    except NotebookError as error:
        return BuildResult(lesson, time.perf_counter() - start, str(error))
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3",
        resources={"metadata": {"path": str(lesson.path.parent)}},
    )
    error = None
    number = 0
    try:
        # The kernel's own stderr (transport warnings) is not the lesson's output.
        with client.setup_kernel(stderr=subprocess.DEVNULL):
            for index, cell in enumerate(nb.cells):
                number = index + 1
                client.execute_cell(cell, index)
    except CellTimeoutError:
        error = f"cell {number}: no result within {timeout} s (the per-cell timeout)"
    except CellExecutionError as failure:
        error = f"cell {number}: {_last_line(failure)}"
    except DeadKernelError:
        error = f"cell {number}: the kernel died"
    except Exception as failure:  # a kernel that will not start, a missing kernelspec, ...
        error = f"cell {number}: {type(failure).__name__}: {_last_line(failure)}"
    page = out / lesson.folder / f"{lesson.name}.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(_html(nb), encoding="utf-8")
    return BuildResult(lesson, time.perf_counter() - start, error)


def _last_line(error: Exception) -> str:
    ename, evalue = getattr(error, "ename", None), getattr(error, "evalue", None)
    if ename:
        return f"{ename}: {evalue}" if evalue else ename
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(error).__name__


def _html(nb) -> str:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    return body


def write_index(results: list[BuildResult], out: Path) -> Path:
    """``index.html``: every built lesson with its status and build result."""
    rows = []
    for result in results:
        lesson = result.lesson
        built = "build failed" if result.error else "ok"
        rows.append(
            f'<tr><td>{html.escape(lesson.folder)}</td>'
            f'<td><a href="{html.escape(lesson.folder)}/{html.escape(lesson.name)}.html">'
            f"{html.escape(lesson.title)}</a></td>"
            f"<td>{html.escape(str(lesson.metadata.get('difficulty', '?')))}</td>"
            f"<td>{html.escape(STATUS_WORDS.get(lesson.status, lesson.status))}</td>"
            f"<td>{built}</td></tr>"
        )
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        "<title>Distributed-systems design patterns</title></head><body>"
        "<h1>Distributed-systems design patterns</h1>"
        "<table><tr><th>Category</th><th>Lesson</th><th>Difficulty</th><th>Status</th>"
        f"<th>Build</th></tr>{''.join(rows)}</table></body></html>\n"
    )
    out.mkdir(parents=True, exist_ok=True)
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
