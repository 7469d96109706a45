"""`course assign`: the student release, its staleness check and the leak scan."""

from __future__ import annotations

import argparse
import copy

import pytest

from course import paths, release
from course.notebook_files import read_ipynb, read_markdown


def assign(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    release.add_arguments(parser)
    return release.run(parser.parse_args(argv))


def cells_by_id(nb) -> dict:
    return {release.nbgrader_of(c)["grade_id"]: c for c in nb.cells if release.nbgrader_of(c)}


def test_student_copy_keeps_the_questions_and_drops_the_answers(course_tree):
    solution = read_markdown(course_tree.solution_md)
    for student in (read_markdown(course_tree.student.with_suffix(".md")),
                    read_ipynb(course_tree.student)):
        cells = cells_by_id(student)
        assert cells["breaker-state"].source == (
            "def breaker_state(failures: int, threshold: int = THRESHOLD) -> str:\n"
            '    """The breaker\'s state after `failures` consecutive failures."""\n'
            "    # YOUR CODE HERE\n"
            "    raise NotImplementedError()")
        assert cells["utilisation"].source == "# YOUR CODE HERE\nraise NotImplementedError()"
        tests = cells["breaker-state-tests"].source
        assert "expect_equal(breaker_state(5, threshold=5)" in tests
        assert "breaker_state(9" not in tests and "HIDDEN" not in tests
        for cell in student.cells:
            graded = release.is_answer(cell) or release.is_test(cell)
            assert ("raises-exception" in cell.metadata.get("tags", [])) == graded
        prose = [c.source for c in student.cells if c.cell_type == "markdown"]
        assert prose == [c.source for c in solution.cells if c.cell_type == "markdown"]
        assert student.metadata["exercise"] == {"source": "solutions/resilience/toy-breaker.md"}
        assert student.metadata["kernelspec"] == solution.metadata["kernelspec"]
    assert not any("raises-exception" in c.metadata.get("tags", []) for c in solution.cells)


def test_an_answer_cell_without_markers_becomes_the_stub(course_tree):
    cell = copy.deepcopy(read_markdown(course_tree.solution_md).cells[6])
    cell.source = "choice = 'B'"
    assert release.stub_source(cell) == release.STUB


def test_release_is_deterministic_and_check_passes_when_fresh(course_tree):
    before = {p: p.read_bytes() for p in release.exercise_files(course_tree.exercises)}
    assert len(before) == 2
    release.assign(release.solution_sources(course_tree.solutions), course_tree.solutions,
                   course_tree.exercises)
    assert {p: p.read_bytes() for p in before} == before
    assert release.stale(course_tree.solutions, course_tree.exercises) == []
    assert release.leaks(course_tree.solutions, course_tree.exercises) == []


def test_check_names_stale_missing_and_orphaned_files(course_tree):
    tree = course_tree
    text = tree.solution_md.read_text(encoding="utf-8")
    tree.solution_md.write_text(text.replace("THRESHOLD = 5", "THRESHOLD = 6"), encoding="utf-8")
    tree.student.unlink()
    (tree.exercises / "caching").mkdir()
    (tree.exercises / "caching" / "gone.md").write_text("# old", encoding="utf-8")
    (tree.exercises / "resilience" / ".ipynb_checkpoints").mkdir()
    (tree.exercises / "resilience" / ".ipynb_checkpoints" / "x.ipynb").write_text("{}")
    problems = release.stale(tree.solutions, tree.exercises)
    assert len(problems) == 3
    assert problems[0].endswith("exercises/resilience/toy-breaker.md: stale, differs from "
                                f"{tree.solution_md} (run `course assign`)")
    assert problems[1].endswith("exercises/resilience/toy-breaker.ipynb: missing "
                                "(run `course assign`)")
    assert "exercises/caching/gone.md: its solutions source is gone" in problems[2]


def test_cli_check_and_release_of_one_path(course_tree, monkeypatch, capsys):
    monkeypatch.setattr(paths, "SOLUTIONS", course_tree.solutions)
    monkeypatch.setattr(paths, "EXERCISES", course_tree.exercises)
    assert assign(["--check"]) == 0
    assert "up to date with solutions/ (1 notebooks)" in capsys.readouterr().out
    course_tree.student.unlink()
    assert assign(["--check"]) == 1
    assert "toy-breaker.ipynb: missing" in capsys.readouterr().err
    assert assign([str(course_tree.solution_md.with_suffix(".ipynb"))]) == 0
    assert course_tree.student.exists() and assign(["--check"]) == 0
    assert assign([str(course_tree.student)]) == 2
    assert "not a solutions notebook" in capsys.readouterr().err
    assert assign([str(course_tree.solution_md), "--all"]) == 2


def _mutate(nb, index: int, **changes):
    cell = nb.cells[index]
    for key, value in changes.items():
        if key == "source":
            cell.source = value
        elif value is None:
            del cell.metadata["nbgrader"][key]
        else:
            cell.metadata["nbgrader"][key] = value
    return nb


# Cells of the fixture: 0 title, 1 setup, 2 prose, 3 answer, 4 test, 5 prose, 6 answer, 7 test
@pytest.mark.parametrize(("change", "expected"), [
    (lambda nb: _mutate(nb, 2, source="### BEGIN SOLUTION\nx\n### END SOLUTION"),
     "cell 3 (markdown): markers ['BEGIN SOLUTION', 'END SOLUTION'] are allowed only in code"),
    (lambda nb: _mutate(nb, 1, source="### BEGIN SOLUTION\nx = 1\n### END SOLUTION"),
     "cell 2 (code): solution markers outside an answer cell"),
    (lambda nb: _mutate(nb, 3, source="### BEGIN HIDDEN TESTS\n### END HIDDEN TESTS"),
     "cell 4 (code): hidden-test markers outside a test cell"),
    (lambda nb: _mutate(nb, 3, source="def f():\n    ### BEGIN SOLUTION\n    return 1"),
     "cell 4 (code): 'BEGIN SOLUTION' without 'END SOLUTION'"),
    (lambda nb: _mutate(nb, 6, grade_id="breaker-state"),
     "cell 7 (code): grade_id 'breaker-state' is used twice"),
    (lambda nb: _mutate(nb, 4, points=None),
     "cell 5 (code): test cell points None must be a positive number"),
    (lambda nb: _mutate(nb, 4, schema_version=2),
     "cell 5 (code): nbgrader schema_version is 2, expected 3"),
    (lambda nb: _mutate(nb, 4, locked=None), "cell 5 (code): nbgrader metadata lacks 'locked'"),
    (lambda nb: _mutate(nb, 3, grade=True, points=1),
     "cell 4 (code): a cell cannot be both answer and test"),
    (lambda nb: nb.cells.pop(-3) and nb,  # its test cell, before Check my answers
     "answer cell 'check-threshold' has no test cell after it"),
    (lambda nb: _mutate(nb, 4, source=nb.cells[4].source.replace("hidden=3", "hidden=2")),
     "cell 5 (code): its hidden part holds 3 check(s), but its exercise(...) says hidden=2"),
])
def test_markup_errors_name_the_cell_and_the_problem(course_tree, change, expected):
    nb = change(read_markdown(course_tree.solution_md))
    with pytest.raises(release.MarkupError) as caught:
        release.check_markup(nb, "toy.md")
    assert expected in str(caught.value)


def test_assign_refuses_bad_markup_with_exit_2(course_tree, monkeypatch, capsys):
    monkeypatch.setattr(paths, "SOLUTIONS", course_tree.solutions)
    monkeypatch.setattr(paths, "EXERCISES", course_tree.exercises)
    text = course_tree.solution_md.read_text(encoding="utf-8")
    course_tree.solution_md.write_text(text.replace("  points: 1\n", ""), encoding="utf-8")
    assert assign([]) == 2
    assert "test cell points None must be a positive number" in capsys.readouterr().err


def test_leak_scan_finds_solution_lines_hidden_tests_and_markers(course_tree):
    tree = course_tree
    md = tree.student.with_suffix(".md")
    md.write_text(md.read_text(encoding="utf-8") + '\n    return "OPEN" if failures >= '
                  'threshold else "CLOSED"\n', encoding="utf-8")
    raw = tree.student.read_text(encoding="utf-8")
    tree.student.write_text(raw.replace("# YOUR CODE HERE", "### BEGIN HIDDEN TESTS"),
                            encoding="utf-8")
    found = release.leaks(tree.solutions, tree.exercises)
    assert any("toy-breaker.md: a line of the solution leaked" in p and "failures >=" in p
               for p in found)
    assert any("toy-breaker.ipynb: marker 'BEGIN HIDDEN TESTS' leaked" in p for p in found)
    nb = read_markdown(tree.solution_md)
    hidden = next(line for line in cells_by_id(nb)["breaker-state-tests"].source.split("\n")
                  if "breaker_state(9" in line)
    md.write_text(md.read_text(encoding="utf-8") + hidden + "\n", encoding="utf-8")
    assert any("breaker_state(9" in p for p in release.leaks(tree.solutions, tree.exercises))


def test_the_repository_exercises_leak_nothing_and_are_up_to_date():
    """The leak test over the real exercises/ (both twins of every notebook)."""
    assert release.leaks(paths.SOLUTIONS, paths.EXERCISES) == []
    assert release.stale(paths.SOLUTIONS, paths.EXERCISES) == []
