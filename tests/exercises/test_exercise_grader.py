"""`course check`: grading submissions for real (each exercise in a fresh, sandboxed Python)."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import nbformat
import pytest

from course import batch, grader, paths
from course.submission import read_submission


def check(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    grader.add_arguments(parser)
    return grader.run(parser.parse_args(argv))


def by_exercise(report: grader.Report) -> dict[str, grader.ExerciseResult]:
    return {result.exercise: result for result in report.exercises}


@pytest.fixture
def repo_solutions(course_tree, monkeypatch):
    """`course check` looks in the fixture's solutions/ as it would in the repository's."""
    monkeypatch.setattr(paths, "SOLUTIONS", course_tree.solutions)
    return course_tree


def test_correct_answers_score_full_marks_and_json_is_one_object(repo_solutions, capsys):
    submission = repo_solutions.submission("ada", answers=repo_solutions.solved_answers())
    assert check([str(submission), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["points"], result["max_points"], result["passed"]) == (5, 5, True)
    assert result["solution"].endswith("solutions/resilience/toy-breaker.md")
    assert [(e["exercise"], e["status"]) for e in result["exercises"]] == [
        ("breaker-state-tests", "passed"), ("utilisation-tests", "passed"),
        ("check-threshold-tests", "passed")]


def test_the_solution_graded_against_itself_runs_each_exercise_once(repo_solutions,
                                                                   monkeypatch, tmp_path):
    """The reference run (the count of checks) and the graded run are the same code: one run.
    A changed answer is run again, and only its exercise."""
    from course import sandbox

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no stored reference
    monkeypatch.setattr(grader, "_REFERENCES", {})
    monkeypatch.setattr(grader, "_TRUSTED_RUNS", {})
    jobs = []
    run_job = sandbox.run_job
    monkeypatch.setattr(sandbox, "run_job", lambda cells, **kw: jobs.append(cells) or
                        run_job(cells, **kw))
    solved = repo_solutions.submission("ada", answers=repo_solutions.solved_answers())
    assert grader.grade(solved).points == 5 and len(jobs) == 3

    answers = repo_solutions.solved_answers()
    changed = next(iter(answers))
    answers[changed] += "\n# the same answer, one comment longer"
    again = repo_solutions.submission("bea", answers=answers)
    assert grader.grade(again).points == 5 and len(jobs) == 4
    assert any(cell["kind"] == "answer" and cell["source"].endswith("one comment longer")
               for cell in jobs[-1])


def test_batch_grades_every_learner_and_survives_a_broken_file(repo_solutions, capsys):
    tree = repo_solutions
    tree.submission("alice", answers=tree.solved_answers(), folder="class")
    (tree.root / "class" / "bob.ipynb").write_bytes(tree.student.read_bytes())  # untouched
    (tree.root / "class" / "carol.ipynb").write_text("{not json", encoding="utf-8")
    (tree.root / "class" / "notes.txt").write_text("not a submission", encoding="utf-8")
    grades = tree.root / "grades.csv"

    assert check(["--batch", str(tree.root / "class"), "--csv", str(grades)]) == 1
    out = capsys.readouterr().out
    assert "alice: 5/5 points" in out and "bob: 0/5 points" in out
    assert "carol: unusable:" in out and "not a valid notebook" in out
    assert "notes.txt: unusable: " in out and "not a notebook (only .ipynb files" in out
    assert "4 files: 2 graded, 2 unusable" in out

    rows = list(csv.DictReader(grades.open(encoding="utf-8")))
    assert list(rows[0]) == list(batch.CSV_FIELDS)
    alice = [r for r in rows if r["learner"] == "alice"]
    bob = [r for r in rows if r["learner"] == "bob"]
    assert [(r["exercise"], r["points"], r["max_points"]) for r in alice] == [
        ("breaker-state-tests", "2", "2"), ("utilisation-tests", "1", "1"),
        ("check-threshold-tests", "2", "2")]
    assert {r["status"] for r in bob} == {"unanswered"} and {r["points"] for r in bob} == {"0"}
    assert "Exercise 1 (breaker state) is not answered yet" in bob[0]["message"]
    assert "`utilisation` is not defined" in bob[1]["message"]
    assert [r["status"] for r in rows if r["learner"] == "carol"] == ["unusable"]


def test_tampering_with_tests_and_hard_coding_answers_is_caught(course_tree):
    tree = course_tree
    answers = {
        # passes both visible checks, and shadows a helper the tests use: the tests re-import
        "breaker-state": 'def breaker_state(failures, threshold=5):\n'
                         '    return "OPEN" if failures == 5 else "CLOSED"\n'
                         'expect_equal = lambda *args, **kwargs: None',
        # passes the visible check, and shadows the helper that its test cell uses unimported
        "utilisation": "utilisation = 0.5\nexpect_close = lambda *args, **kwargs: None",
        # passes both visible checks, and disarms the helper in the module the tests import
        "check-threshold": "def check_threshold(n):\n"
                           "    if n == 0:\n        raise ValueError('0')\n    return n\n"
                           "import course.feedback\n"
                           "course.feedback.expect_raises = lambda *args, **kwargs: None",
    }
    tests = {"breaker-state-tests": "pass", "check-threshold-tests": "print('all passed')"}
    submission = tree.submission("mallory", answers=answers, tests=tests,
                                 drop=("utilisation-tests",))
    results = by_exercise(grader.grade(submission, solutions_root=tree.solutions, timeout=30))
    assert results["breaker-state-tests"].status == "failed"
    assert results["breaker-state-tests"].message == (
        "the state after 9 consecutive failures with threshold 5 should be 'OPEN', "
        "but it is 'CLOSED'.")
    assert results["utilisation-tests"].status == "failed"  # its deleted test still runs
    assert results["utilisation-tests"].message == (
        "the utilisation should be about 0.75 (within 0.01 relative), but it is 0.5. "
        "Hint: utilisation = arrival rate / service rate")
    assert results["check-threshold-tests"].status == "tampered"
    assert results["check-threshold-tests"].points == 0
    assert results["check-threshold-tests"].message == (
        "the submission modified the grader: it replaced course.feedback.expect_raises")


def test_syntax_error_endless_loop_and_renamed_cell_cost_only_their_exercise(course_tree):
    tree = course_tree
    answers = {"breaker-state": "LIMIT = 5\n\ndef breaker_state(failures, threshold=LIMIT)\n"
                                "    return 'OPEN'",
               "utilisation": "while True:\n    pass"}
    submission = tree.submission("eve", answers=answers,
                                 rename={"check-threshold": "my-threshold"})
    report = grader.grade(submission, solutions_root=tree.solutions, timeout=4)
    results = by_exercise(report)
    assert results["breaker-state-tests"].status == "error"
    assert results["breaker-state-tests"].message == (
        "your answer cell 'breaker-state': does not parse: SyntaxError on line 3: expected ':'")
    assert results["utilisation-tests"].status == "timeout"
    assert "timed out after 4 s" in results["utilisation-tests"].message
    assert results["check-threshold-tests"].status == "missing"
    assert results["check-threshold-tests"].message == (
        "answer cell 'check-threshold' missing or renamed in the submission")
    assert (report.points, report.passed) == (0, False)


def test_process_crash_and_exception_cost_only_their_exercise(course_tree):
    tree = course_tree
    answers = {**tree.solved_answers(),
               "breaker-state": "import os\nos._exit(1)",
               "utilisation": "rates = [30, 0]\nutilisation = rates[0] / rates[1]"}
    submission = tree.submission("crash", answers=answers)
    results = by_exercise(grader.grade(submission, solutions_root=tree.solutions, timeout=30))
    assert results["breaker-state-tests"].status == "crashed"
    assert "the Python process grading it died" in results["breaker-state-tests"].message
    assert results["utilisation-tests"].status == "error"
    assert results["utilisation-tests"].message == (
        "your answer cell 'utilisation': raised ZeroDivisionError on line 2: division by zero")
    # after the restart the earlier cells were replayed: the last exercise still passes
    assert results["check-threshold-tests"].status == "passed"
    assert results["check-threshold-tests"].points == 2


def test_an_endless_loop_inside_the_tested_function_times_out_the_tests(course_tree):
    tree = course_tree
    answers = {**tree.solved_answers(),
               "check-threshold": "def check_threshold(n):\n    while True:\n        pass"}
    submission = tree.submission("loop", answers=answers)
    report = grader.grade(submission, solutions_root=tree.solutions, timeout=4)
    results = by_exercise(report)
    assert [results[k].status for k in ("breaker-state-tests", "utilisation-tests")] == [
        "passed", "passed"]
    assert results["check-threshold-tests"].status == "timeout"
    assert results["check-threshold-tests"].message.startswith("the tests: timed out after 4 s")
    assert (report.points, report.max_points) == (3, 5)
    assert "✗ check-threshold-tests  0/2  timeout" in grader.format_report(report)


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("answers.txt", "print('hi')", "not a notebook (only .ipynb files are graded)"),
    ("broken.ipynb", "{not json", "not a valid notebook"),
    ("unknown.ipynb", json.dumps({"cells": [], "metadata": {}, "nbformat": 4,
                                  "nbformat_minor": 5}), "no matching solutions notebook"),
])
def test_unusable_input_is_one_clear_line_and_exit_2(repo_solutions, capsys, name, content,
                                                       expected):
    path = repo_solutions.root / name
    path.write_text(content, encoding="utf-8")
    assert check([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("course check: ") and expected in err


@pytest.mark.parametrize(("argv", "expected"), [
    ([], "give one SUBMISSION.ipynb or --batch DIR"),
    (["x.ipynb", "--batch", "d"], "give one SUBMISSION.ipynb or --batch DIR"),
    (["x.ipynb", "--csv", "g.csv"], "--csv needs --batch DIR"),
    (["x.ipynb", "--timeout", "0"], "--timeout must be a positive number of seconds, got 0"),
    (["--batch", "no-such-folder"], "no-such-folder: not a folder"),
])
def test_bad_arguments_exit_2(argv, expected, capsys):
    assert check(argv) == 2
    assert expected in capsys.readouterr().err


def test_submission_metadata_cannot_point_outside_solutions(repo_solutions, capsys):
    tree = repo_solutions
    submission = tree.submission("sneaky")
    data = json.loads(submission.read_text(encoding="utf-8"))
    data["metadata"]["exercise"]["source"] = "exercises/resilience/toy-breaker.md"
    submission.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(grader.GradingError, match="no matching solutions notebook"):
        grader.find_solution(read_submission(submission), submission, tree.solutions)
    # ... and the file name alone is a fallback when it matches one solutions notebook
    named = Path(submission.with_name("toy-breaker.ipynb"))
    submission.rename(named)
    assert grader.find_solution(read_submission(named), named,
                                tree.solutions) == tree.solution_md.resolve()


def test_a_helper_outside_the_answer_cells_is_explained(course_tree):
    tree = course_tree
    answers = {**tree.solved_answers(),
               "breaker-state": "def breaker_state(failures, threshold=5):\n"
                                "    return opened(failures, threshold)",
               "utilisation": "utilisation = busy_share"}
    submission = tree.submission("helper", answers=answers)
    nb = nbformat.read(submission, as_version=4)
    nb.cells.insert(1, nbformat.v4.new_code_cell(
        "def opened(failures, threshold):\n    return 'OPEN' if failures >= threshold "
        "else 'CLOSED'\n\nbusy_share = 30 / 40"))
    nbformat.write(nb, submission)
    results = by_exercise(grader.grade(submission, solutions_root=tree.solutions, timeout=30))
    for exercise, name, answer in (("breaker-state-tests", "opened", "breaker-state"),
                                   ("utilisation-tests", "busy_share", "utilisation")):
        assert (results[exercise].status, results[exercise].message) == ("error", (
            f"`{name}` is defined in a cell that is not an answer cell, and only answer cells "
            f"are graded: move it into the answer cell {answer!r}"))
    assert results["check-threshold-tests"].status == "passed"


def test_a_failing_cell_that_is_not_graded_is_named_in_the_report(course_tree):
    tree = course_tree
    broken = tree.solution_md.read_text(encoding="utf-8").replace(
        "THRESHOLD = 5", "THRESHOLD = 5\nraise RuntimeError('the setup broke')")
    tree.solution_md.write_text(broken, encoding="utf-8")
    report = grader.grade(tree.submission("alice", answers=tree.solved_answers()),
                          solutions_root=tree.solutions, timeout=30)
    assert report.other_errors == [
        "cell 1 ('from course.feedback import exercise, expect_close, expect_true'): "
        "raised RuntimeError on line 4: the setup broke"]
    assert "! not graded, but it failed: cell 1" in grader.format_report(report)
    assert report.to_dict()["other_errors"] == report.other_errors
