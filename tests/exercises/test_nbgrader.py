"""nbgrader accepts solutions/ as its source: generate_assignment and autograde give full marks
to the solution and zero to the untouched student copies (nbgrader's and `course assign`'s),
and both releases show the learner the same code, locked the same way (LockCells) with the same
checksums (ComputeChecksums)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from course import release
from course.notebook_files import ipynb_text, read_ipynb, read_markdown

BIN = Path(sys.executable).parent
ASSIGNMENT = "toy"
CONFIG = """\
c = get_config()
c.CourseDirectory.course_id = "exercise-tooling-test"
# solutions/ pairs every notebook with a .md twin that holds the answers: never release it.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "*.md"]
"""


def nbgrader(course: Path, *args: str) -> None:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # alembic
    done = subprocess.run([str(BIN / "nbgrader"), *args], cwd=course, env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr


def code_cells(path: Path) -> list[str]:
    return ["\n".join(line.rstrip() for line in cell.source.strip().split("\n"))
            for cell in read_ipynb(path).cells if cell.cell_type == "code"]


def locks(path: Path) -> list[dict]:
    """Per cell, what nbgrader's LockCells and ComputeChecksums write into the metadata."""
    return [{key: cell.metadata[key] for key in ("editable", "deletable", "nbgrader")
             if key in cell.metadata} for cell in read_ipynb(path).cells]


def test_nbgrader_grades_solutions_like_course_check(course_tree, tmp_path):
    course = tmp_path / "nbgrader-course"
    source = course / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    (course / "nbgrader_config.py").write_text(CONFIG, encoding="utf-8")
    notebook = course_tree.solution_md.stem + ".ipynb"
    (source / notebook).write_text(ipynb_text(read_markdown(course_tree.solution_md)),
                                   encoding="utf-8")
    (source / notebook).with_suffix(".md").write_bytes(course_tree.solution_md.read_bytes())

    nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    released = course / "release" / ASSIGNMENT
    assert sorted(p.name for p in released.iterdir()) == [notebook]  # the .md stayed behind
    assert code_cells(released / notebook) == code_cells(course_tree.student)
    ours, theirs = locks(course_tree.student), locks(released / notebook)
    assert ours == theirs
    kinds = {(lock.get("editable", True), lock.get("deletable", True)) for lock in ours
             if lock.get("nbgrader")}
    assert kinds == {(True, False), (False, False)}  # answers; tests, setup and check cells

    submissions = {"solver": source / notebook, "idle": released / notebook,
                   "idle-course-assign": course_tree.student}
    for student, path in submissions.items():
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        shutil.copy(path, folder / notebook)
    nbgrader(course, "autograde", ASSIGNMENT, "--create", "--force")

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        scores = {student: (gradebook.find_submission(ASSIGNMENT, student).score,
                            gradebook.find_submission(ASSIGNMENT, student).max_score)
                  for student in submissions}
        per_cell = {grade.name: grade.score for grade in gradebook.find_submission_notebook(
            course_tree.solution_md.stem, ASSIGNMENT, "solver").grades}
    assert scores == {"solver": (5, 5), "idle": (0, 5), "idle-course-assign": (0, 5)}
    expected = {e.grade_id: e.max_points for e in
                release.exercises_of(read_markdown(course_tree.solution_md))}
    assert per_cell == expected
