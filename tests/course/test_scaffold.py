"""`course new`: a stub lesson and its exercises that the checker accepts; nothing overwritten."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys

import pytest

from course import scaffold, sync, validate
from course.notebook_files import read_markdown
from course.paths import ROOT


def test_new_lesson_is_a_valid_stub_with_graded_exercise(course):
    written = scaffold.create_lesson("resilience/retry-storm", course.root,
                                     today=datetime.date(2024, 6, 1))
    assert [p.relative_to(course.root).as_posix() for p in written] == [
        "notebooks/resilience/retry-storm.md", "notebooks/resilience/retry-storm.ipynb",
        "solutions/resilience/retry-storm.md", "solutions/resilience/retry-storm.ipynb",
        "patterns/resilience/retry_storm.py", "simulations/resilience/retry_storm.py",
        "tests/resilience/test_retry_storm.py",
        "patterns/resilience/__init__.py", "simulations/resilience/__init__.py",
        "exercises/resilience/retry-storm.md", "exercises/resilience/retry-storm.ipynb",
    ]
    meta = read_markdown(written[0]).metadata["lesson"]
    assert meta["status"] == "stub" and meta["last_updated"] == "2024-06-01"
    assert meta["title"] == "Retry Storm" and meta["category"] == "resilience"
    [report] = validate.validate(course.root)
    assert report.findings == [], report.render()
    assert sync.sync(course.root, [], check=True) == ([], [])
    cells = read_markdown(written[2]).cells
    setup, answer, test, check = (c.metadata["nbgrader"] for c in cells if c.cell_type == "code")
    assert setup["locked"] and check["locked"] and not setup["grade"] and not check["solution"]
    assert answer == {"grade": False, "grade_id": "retry-storm-ex1-answer", "locked": False,
                      "schema_version": 3, "solution": True}
    assert test == {"grade": True, "grade_id": "retry-storm-ex1-tests", "locked": True,
                    "points": 1, "schema_version": 3, "solution": False}
    assert "### BEGIN SOLUTION" in [c for c in cells if c.cell_type == "code"][1].source


def test_a_stub_marked_complete_fails_on_the_template_leftovers(course):
    [lesson, *_] = scaffold.create_lesson("caching/half-done", course.root)
    lesson.write_text(lesson.read_text().replace("status: stub", "status: complete"))
    [report] = validate.validate(course.root)
    messages = [f.message for f in report.errors]
    assert any("[One-line value proposition]" in m for m in messages)
    assert any("TODO" in m for m in messages)


@pytest.mark.parametrize(("argument", "expected"), [
    ("gardening/roses", "unknown category 'gardening' (allowed: caching, distributed-data"),
    ("resilience/Retry_Storm", "bad slug 'Retry_Storm'"),
    ("resilience", "expected CATEGORY/SLUG"),
    ("foundations/intro", "unknown category 'foundations'"),
])
def test_bad_arguments_are_usage_errors(course, capsys, argument, expected):
    assert scaffold.run(course.args(lesson=argument)) == 2
    assert expected in capsys.readouterr().err
    assert not (course.root / "solutions").exists()


def test_an_existing_lesson_is_never_overwritten(course, capsys):
    path = course.lesson("resilience/toy-breaker")
    before = path.read_text()
    assert scaffold.run(course.args(lesson="resilience/toy-breaker")) == 2
    assert "already exists" in capsys.readouterr().err
    assert path.read_text() == before
    assert not (course.root / "solutions" / "resilience" / "toy-breaker.md").exists()


def test_new_lesson_code_runs_and_its_lesson_imports_it(course, tmp_path):
    """The scaffolded pattern, study and test import each other and pass; the lesson names them."""
    scaffold.create_lesson("caching/write-around", course.root)
    lesson = (course.root / "notebooks/caching/write-around.md").read_text()
    assert "from patterns.caching.write_around import WriteAround" in lesson
    assert "import simulations.caching.write_around as study" in lesson
    for module in ("patterns/caching/write_around.py", "simulations/caching/write_around.py"):
        compile((course.root / module).read_text(), module, "exec")  # valid Python
    test = course.root / "tests/caching/test_write_around.py"
    # The scaffolded test runs against the scaffolded modules (the course root first on the path).
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         str(test)], cwd=course.root, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(course.root)})
    assert result.returncode == 0, result.stdout + result.stderr


def test_new_lesson_files_pass_the_linter(course):
    """What `course new` writes passes the project's ruff rules (the repository's own config;
    the course's packages named first-party, as they are in the repository)."""
    scaffold.create_lesson("caching/write-around", course.root)
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--config",
         str(ROOT / "pyproject.toml"), "--config",
         "lint.isort.known-first-party = ['course', 'patterns', 'simulations']", "."],
        cwd=course.root, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_existing_module_is_never_overwritten(course, capsys):
    module = course.root / "patterns/resilience/retry_storm.py"
    module.parent.mkdir(parents=True)
    module.write_text("kept = True\n")
    assert scaffold.run(course.args(lesson="resilience/retry-storm")) == 2
    assert "patterns/resilience/retry_storm.py); nothing was written" in capsys.readouterr().err
    assert module.read_text() == "kept = True\n"
    assert not (course.root / "notebooks/resilience/retry-storm.md").exists()
