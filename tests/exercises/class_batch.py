"""A class's batch for the hostile-grading tests: grade a folder, read its CSV by learner.

Like the instructor's own routine at the end of term: run ``course check --batch`` over the
class's folder, open the spreadsheet, and check the two learners whose marks are known first
(``alice`` answered everything right, ``bob`` handed in the untouched copy).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from course import grader


def run_check(tree, *extra: str) -> tuple[int, Path]:
    """``course check --batch <tree>/class --csv <tree>/grades.csv [extra]``: exit code, CSV."""
    grades = tree.root / "grades.csv"
    parser = argparse.ArgumentParser()
    grader.add_arguments(parser)
    code = grader.run(parser.parse_args(["--batch", str(tree.root / "class"), "--csv",
                                         str(grades), *extra]))
    return code, grades


def rows_by_learner(grades: Path) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    with grades.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):  # Python's reader: fields of at most 128 KiB
            rows.setdefault(row["learner"], []).append(row)
    return rows


def assert_honest_scores(rows: dict[str, list[dict]]) -> None:
    assert [row["points"] for row in rows["alice"]] == ["2", "1", "2"]
    assert [row["points"] for row in rows["bob"]] == ["0", "0", "0"]
