"""A class's batch that holds against hostile files: every file gets a row, the honest learners
get their scores, and nothing printed or stored can mislead the instructor.

Each test builds one batch from the fixture lesson: ``alice`` answers everything right and
``bob`` hands in the untouched student copy (5/5 and 0/5 whatever else is in the folder), beside
files built the way a hostile learner would (issue 14's classes 3, "losing the whole batch", and
6, "misleading reports", and a notebook of another lesson).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import nbformat
import pytest
from class_batch import assert_honest_scores, rows_by_learner, run_check

from course import batch, grader

CSI = "\x1b["


def notebook_json(tree, **changes) -> dict:
    data = json.loads(tree.student.read_text(encoding="utf-8"))
    for cell in data["cells"]:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in changes:
            changes[grade_id](cell)
    return data


def test_files_that_are_not_plain_notebooks_cost_only_their_own_row(classroom, capsys):
    folder = classroom.root / "class"
    os.mkfifo(folder / "pipe.ipynb")  # would block a reader forever
    (folder / "zero.ipynb").symlink_to("/dev/zero")  # would fill the grader's memory
    (folder / "classmate.ipynb").symlink_to(folder / "alice.ipynb")  # someone else's work
    (folder / "essay.txt").write_text("=1+1", encoding="utf-8")
    (folder / "huge.ipynb").write_bytes(b" " * (50 * 2**20 + 1))
    (folder / "latin1.ipynb").write_bytes('{"cells": "é"}'.encode("latin-1"))
    data = notebook_json(classroom, **{"breaker-state": lambda cell: cell.update(source=42)})
    (folder / "number.ipynb").write_text(json.dumps(data), encoding="utf-8")
    long_id = notebook_json(classroom, **{"utilisation": lambda cell: cell["metadata"][
        "nbgrader"].update(grade_id="u" * 5000)})
    (folder / "long.ipynb").write_text(json.dumps(long_id), encoding="utf-8")
    nul_id = notebook_json(classroom, **{"utilisation": lambda cell: cell["metadata"][
        "nbgrader"].update(grade_id="utilisation\x00")})
    (folder / "nul.ipynb").write_text(json.dumps(nul_id), encoding="utf-8")
    (folder / "subfolder.ipynb").mkdir()  # a folder is not a file: no row

    code, grades = run_check(classroom)
    out = capsys.readouterr().out
    rows = rows_by_learner(grades)
    assert code == grader.EXIT_NOT_ALL_PASSED
    assert_honest_scores(rows)
    reasons = {learner: found[0]["message"] for learner, found in rows.items()
               if found[0]["status"] == "unusable"}
    assert set(reasons) == {"pipe", "zero", "classmate", "essay.txt", "huge", "latin1",
                            "number", "long", "nul"}
    for learner, expected in {
            "pipe": "not a regular file", "zero": "a symbolic link, not a file",
            "classmate": "a symbolic link, not a file",
            "essay.txt": "not a notebook (only .ipynb files are graded)",
            "huge": "too large (50 MB; at most 50 MB)", "latin1": "not UTF-8 text",
            "number": "cell 3: its source is not text",
            "long": "cell 6: its grade_id is not a short name",
            "nul": "cell 6: its grade_id is not a short name"}.items():
        assert expected in reasons[learner], (learner, reasons[learner])
    assert "11 files: 2 graded, 9 unusable" in out
    assert len(reasons["long"]) < 300  # the 5,000-character name is not repeated in full


def test_a_file_name_that_is_not_utf8_is_graded_and_shown_escaped(classroom, capsys):
    folder = classroom.root / "class"
    strange = os.fsdecode(b"\xff\xfe-bob2.ipynb")
    (folder / strange).write_bytes(classroom.student.read_bytes())
    code, grades = run_check(classroom)
    rows = rows_by_learner(grades)
    assert_honest_scores(rows)
    assert [row["points"] for row in rows["\\xff\\xfe-bob2"]] == ["0", "0", "0"]
    assert "\\xff\\xfe-bob2: 0/5 points" in capsys.readouterr().out
    assert code == grader.EXIT_NOT_ALL_PASSED


def test_messages_cannot_redraw_the_terminal_start_a_formula_or_swamp_the_report(classroom,
                                                                                  capsys):
    answers = {
        "breaker-state": f"raise ValueError('{CSI}2J{CSI}H{CSI}32mTotal: 5/5 points')",
        "utilisation": "raise ValueError('=HYPERLINK(\"http://example.invalid\",\"5/5\")')",
        "check-threshold": "raise ValueError('x' * 20_000_000)",
    }
    classroom.submission("mallory", answers={**classroom.solved_answers(), **answers},
                         folder="class")
    code, grades = run_check(classroom)
    out = capsys.readouterr().out
    rows = rows_by_learner(grades)
    assert_honest_scores(rows)
    mallory = {row["exercise"]: row for row in rows["mallory"]}
    assert [row["points"] for row in mallory.values()] == ["0", "0", "0"]
    assert CSI not in grades.read_text(encoding="utf-8") and "\x1b" not in out
    assert "Total: 5/5 points" in mallory["breaker-state-tests"]["message"]  # shown, inert
    assert "=HYPERLINK" in mallory["utilisation-tests"]["message"]
    assert all(not row[field].startswith(("=", "+", "-", "@"))
               for learner_rows in rows.values() for row in learner_rows for field in row)
    big = mallory["check-threshold-tests"]["message"]
    assert len(big) < 2100 and "more characters left out" in big
    assert code == grader.EXIT_NOT_ALL_PASSED


def test_a_message_that_starts_a_formula_is_stored_as_text(tmp_path):
    report = grader.Report("s.ipynb", "s.md", [grader.ExerciseResult(
        "ex1", 0, 1, "failed", "=cmd|' /C calc'!A0")])
    target = tmp_path / "grades.csv"
    batch.write_csv([("-mallory", report), ("@bob", batch.Unusable("+SUM(1)"))], target)
    with target.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[1][0] == "'-mallory" and rows[1][5] == "'=cmd|' /C calc'!A0"
    assert rows[2][0] == "'@bob" and rows[2][5] == "'+SUM(1)"


def test_the_csv_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    target = tmp_path / "grades.csv"
    target.write_text("last week's grades\n", encoding="utf-8")

    class Broken:
        def writerows(self, rows):
            raise OSError("disk full")

    monkeypatch.setattr(batch.csv, "writer", lambda handle: Broken())
    with pytest.raises(OSError, match="disk full"):
        batch.write_csv([("alice", batch.Unusable("x"))], target)
    assert target.read_text(encoding="utf-8") == "last week's grades\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["grades.csv"]


def test_a_notebook_of_another_lesson_is_reported_as_such(classroom, capsys):
    other = classroom.solutions / "resilience" / "other-lesson.md"
    other.write_text(classroom.solution_md.read_text(encoding="utf-8"), encoding="utf-8")
    nb = nbformat.read(classroom.student, as_version=4)
    nb.metadata["exercise"]["source"] = "solutions/resilience/other-lesson.md"
    nbformat.write(nb, classroom.root / "class" / "eve.ipynb")

    code, grades = run_check(classroom)  # the lesson most submissions name
    rows = rows_by_learner(grades)
    assert_honest_scores(rows)
    assert rows["eve"][0]["status"] == "unusable"
    assert "the notebook of solutions/resilience/other-lesson.md, not of" in rows["eve"][0][
        "message"]

    code, grades = run_check(classroom, "--solution", str(classroom.solution_md))
    assert rows_by_learner(grades)["eve"][0]["status"] == "unusable"
    single = classroom.root / "class" / "eve.ipynb"
    with pytest.raises(grader.GradingError, match="the notebook of .*other-lesson.md, not of"):
        grader.grade(single, solution=classroom.solution_md)


def test_a_failure_of_the_grader_costs_one_row_and_its_own_exit_code(classroom, monkeypatch,
                                                                     capsys):
    real = grader.grade

    def failing_on_bob(path, **options):
        if Path(path).stem == "bob":
            raise RuntimeError("a bug in the grader")
        return real(path, **options)

    monkeypatch.setattr(grader, "grade", failing_on_bob)
    code, grades = run_check(classroom)
    rows = rows_by_learner(grades)
    assert [row["points"] for row in rows["alice"]] == ["2", "1", "2"]
    assert rows["bob"][0]["message"] == (
        "the grader failed on this file: RuntimeError: a bug in the grader")
    assert code == grader.EXIT_GRADER_FAILED == 3


def test_exit_in_an_answer_costs_only_its_own_exercise(classroom):
    """exit() ends the process grading its exercise: that exercise is the one it costs."""
    answers = {**classroom.solved_answers(), "breaker-state": "exit()"}
    report = grader.grade(classroom.submission("quitter", answers=answers), timeout=20)
    results = {result.exercise: result for result in report.exercises}
    assert results["breaker-state-tests"].status == "crashed"
    assert "called exit() or quit()" in results["breaker-state-tests"].message
    assert [results[name].status for name in ("utilisation-tests", "check-threshold-tests")] \
        == ["passed", "passed"]
    assert report.points == 3
