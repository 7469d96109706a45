"""The whole exercise workflow over every real solutions notebook, so that a new lesson's
exercises are covered without new test code: the solution scores full marks, and the student
copy that `course assign` releases scores zero with a "not answered yet" message."""

from __future__ import annotations

import pytest

from course import grader, paths, release
from course.notebook_files import ipynb_text, read_markdown

SOURCES = release.solution_sources(paths.SOLUTIONS)


@pytest.mark.parametrize("solution_md", SOURCES,
                         ids=[str(p.relative_to(paths.SOLUTIONS)) for p in SOURCES])
def test_solution_scores_full_marks_and_released_copy_scores_zero(solution_md, tmp_path):
    if not release.exercises_of(read_markdown(solution_md)):
        pytest.skip(f"{solution_md.name} has no exercises yet")
    solved = tmp_path / "solved.ipynb"
    solved.write_text(ipynb_text(read_markdown(solution_md)), encoding="utf-8")
    full = grader.grade(solved, solution=solution_md)
    assert [(r.exercise, r.status) for r in full.exercises if r.status != "passed"] == []
    assert full.points == full.max_points > 0

    student = tmp_path / f"{solution_md.stem}.ipynb"
    student.write_text(release.render(solution_md, paths.SOLUTIONS)[student.name],
                       encoding="utf-8")
    zero = grader.grade(student)  # found through the `exercise` metadata of the release
    assert zero.solution == f"solutions/{solution_md.relative_to(paths.SOLUTIONS)}"
    assert zero.points == 0
    assert [(r.exercise, r.status) for r in zero.exercises if r.status != "unanswered"] == []
