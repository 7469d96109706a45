"""Every caching lesson that measures a real Redis server still runs where none starts.

Like a cookery class whose practice kitchen is locked: the lesson goes on with the recipe and
says, in one line, which dish it cannot cook today. Each lesson runs top to bottom in a fresh
kernel with ``COURSE_REDIS_SERVER`` pointing at a binary that does not exist, and must finish
without an error and print why it skipped the measurement.
"""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from course.paths import ROOT

LESSONS = sorted(path for path in (ROOT / "notebooks" / "caching").glob("*.ipynb")
                 if "redis_server" in path.with_suffix(".md").read_text(encoding="utf-8"))


def test_the_lessons_that_use_redis_are_found():
    assert len(LESSONS) >= 5


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda path: path.stem)
def test_lesson_runs_without_redis_and_says_so(lesson, monkeypatch, tmp_path):
    missing = tmp_path / "no-such-redis-server"
    monkeypatch.setenv("COURSE_REDIS_SERVER", str(missing))
    nb = nbformat.read(lesson, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = "\n".join(output.get("text", "") for cell in nb.cells
                        for output in cell.get("outputs", []) if output.output_type == "stream")
    assert f"{missing} does not start" in printed
