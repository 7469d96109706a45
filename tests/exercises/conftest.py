"""A throwaway course tree for the exercise tooling: the fixture solutions and their release."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from course import paths, release
from course.notebook_files import read_ipynb, read_markdown

FIXTURE_SOLUTIONS = Path(__file__).parent / "fixtures" / "solutions"
SLUG = Path("resilience") / "toy-breaker"


@dataclass
class CourseTree:
    root: Path

    @property
    def solutions(self) -> Path:
        return self.root / "solutions"

    @property
    def exercises(self) -> Path:
        return self.root / "exercises"

    @property
    def solution_md(self) -> Path:
        return self.solutions / SLUG.with_suffix(".md")

    @property
    def student(self) -> Path:
        return self.exercises / SLUG.with_suffix(".ipynb")

    def solved_answers(self) -> dict[str, str]:
        """Each answer cell's solution as a learner would type it: the markers removed."""
        nb = read_markdown(self.solution_md)
        return {release.nbgrader_of(cell)["grade_id"]: "\n".join(
                    line for line in cell.source.split("\n")
                    if not any(m in line for m in release.MARKERS))
                for cell in nb.cells if release.is_answer(cell)}

    def submission(self, name: str, *, answers: dict[str, str] | None = None,
                   tests: dict[str, str] | None = None, rename: dict[str, str] | None = None,
                   drop: tuple[str, ...] = (), folder: str = "submissions") -> Path:
        """The released student copy with cells (by grade_id) rewritten, renamed or deleted."""
        answers, tests, rename = answers or {}, tests or {}, rename or {}
        nb = read_ipynb(self.student)
        kept = []
        for cell in nb.cells:
            grade_id = release.nbgrader_of(cell).get("grade_id")
            if grade_id in drop:
                continue
            cell.source = answers.get(grade_id, tests.get(grade_id, cell.source))
            if grade_id in rename:
                cell.metadata["nbgrader"]["grade_id"] = rename[grade_id]
            kept.append(cell)
        nb.cells = kept
        path = self.root / folder / f"{name}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
        return path


@pytest.fixture
def course_tree(tmp_path: Path) -> CourseTree:
    """The fixture solutions copied into tmp_path and released with `course assign`'s code."""
    tree = CourseTree(tmp_path)
    shutil.copytree(FIXTURE_SOLUTIONS, tree.solutions)
    release.assign(release.solution_sources(tree.solutions), tree.solutions, tree.exercises)
    return tree


@pytest.fixture
def classroom(course_tree, monkeypatch):
    """The fixture lesson's tree, its solutions where `course check` looks, and a batch folder
    holding alice's (solved) and bob's (untouched) submissions."""
    monkeypatch.setattr(paths, "SOLUTIONS", course_tree.solutions)
    course_tree.submission("alice", answers=course_tree.solved_answers(), folder="class")
    course_tree.submission("bob", folder="class")
    return course_tree
