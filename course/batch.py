"""Grade a class's folder of submissions: one row for every file, whatever is in it.

Like an exam office that logs every envelope in the pile, the empty, the torn and the misfiled
ones too: each file in the folder gets a result, a file that cannot be graded gets its reason
(and costs only its own row), and the grades go to the CSV in one piece at the end. A batch
grades one lesson: the one ``--solution`` names, else the one most submissions name; a notebook
of another lesson is reported as such.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from course import grader, paths
from course.submission import GradingError, named_solution, read_submission
from course.text import file_name, printable, spreadsheet_cell

CSV_FIELDS = ("learner", "exercise", "points", "max_points", "status", "message")


@dataclass(frozen=True)
class Unusable:
    """A file that could not be graded, and why; ``internal`` when the grader itself failed."""

    reason: str
    internal: bool = False


Result = grader.Report | Unusable


def learner_of(path: Path) -> str:
    """The learner's id: a notebook's file stem, else the whole file name, shown as text."""
    return file_name(path.stem if path.suffix == ".ipynb" else path.name)


def files_in(folder: Path) -> list[Path]:
    """Every entry of ``folder`` that is not a folder (links and special files included)."""
    with os.scandir(folder) as entries:
        return sorted(Path(entry.path) for entry in entries
                      if not entry.is_dir(follow_symlinks=False))


def batch_lesson(files: list[Path], solutions_root: Path) -> Path | None:
    """The solutions notebook most of the readable submissions name, if any names one."""
    named = Counter()
    for path in files:
        try:
            found = named_solution(read_submission(path), solutions_root)
        except GradingError:
            continue
        if found is not None:
            named[found] += 1
    return named.most_common(1)[0][0] if named else None


def grade_batch(folder: Path, on_result: Callable[[str, Result], None] | None = None, *,
                solution: Path | None = None, solutions_root: Path | None = None,
                **options) -> list[tuple[str, Result]]:
    """Grade every file in ``folder``; ``on_result`` hears each learner's result at once."""
    root = solutions_root or paths.SOLUTIONS
    files = files_in(folder)
    lesson = Path(solution) if solution else batch_lesson(files, root)
    results: list[tuple[str, Result]] = []
    for path in files:
        try:
            result: Result = grader.grade(path, solution=lesson, solutions_root=root, **options)
        except GradingError as error:
            result = Unusable(printable(str(error)))
        except Exception as error:  # a bug of the grader's: this row says so, the rest go on
            result = Unusable(printable(f"the grader failed on this file: "
                                        f"{type(error).__name__}: {error}"), internal=True)
        results.append((learner_of(path), result))
        if on_result:
            on_result(*results[-1])
    return results


def write_csv(results: list[tuple[str, Result]], target: Path) -> None:
    """One row per learner and exercise (one row for an unusable file), written to a temporary
    file beside ``target`` and moved into place, so ``target`` is whole or untouched."""
    rows = [CSV_FIELDS]
    for learner, result in results:
        if isinstance(result, Unusable):
            rows.append((learner, "", "0", "", "unusable", result.reason))
            continue
        rows += [(learner, r.exercise, grader.format_points(r.points),
                  grader.format_points(r.max_points), r.status, r.message)
                 for r in result.exercises]
    target = Path(target)
    handle = tempfile.NamedTemporaryFile("w", newline="", encoding="utf-8", delete=False,
                                         dir=target.parent, prefix=f".{target.name}.")
    try:
        with handle:
            csv.writer(handle).writerows([spreadsheet_cell(printable(cell)) for cell in row]
                                         for row in rows)
        os.replace(handle.name, target)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def exit_code(results: list[tuple[str, Result]]) -> int:
    """3 if the grader failed on a file, else 0 if every file was graded and passed, else 1."""
    if any(isinstance(result, Unusable) and result.internal for _, result in results):
        return grader.EXIT_GRADER_FAILED
    if all(isinstance(result, grader.Report) and result.passed for _, result in results):
        return grader.EXIT_ALL_PASSED
    return grader.EXIT_NOT_ALL_PASSED


def run_batch(args: argparse.Namespace, options: dict) -> int:
    """``course check --batch DIR [--csv FILE] [--json]``."""
    if not args.batch.is_dir():
        return grader.usage(f"--batch {args.batch}: not a folder")
    results = grade_batch(args.batch, None if args.json else _print_learner, **options)
    if not results:
        return grader.usage(f"--batch {args.batch}: no files in it")
    if args.csv:
        write_csv(results, args.csv)
    unusable = sum(isinstance(result, Unusable) for _, result in results)
    if args.json:
        print(json.dumps({"submissions": [
            {"learner": learner, "error": result.reason, "internal": result.internal}
            if isinstance(result, Unusable) else {"learner": learner, **result.to_dict()}
            for learner, result in results]}, indent=2))
    else:
        print(f"{len(results)} files: {len(results) - unusable} graded, {unusable} unusable"
              + (f"; rows in {file_name(str(args.csv))}" if args.csv else "")
              + ("" if options.get("sandboxed") else
                 " (graded WITHOUT a sandbox, with your own rights: --no-sandbox)"))
    return exit_code(results)


def _print_learner(learner: str, result: Result) -> None:
    if isinstance(result, Unusable):
        print(f"{learner}: unusable: {result.reason}", flush=True)
    else:
        print(f"{learner}: {grader.format_points(result.points)}/"
              f"{grader.format_points(result.max_points)} points", flush=True)
