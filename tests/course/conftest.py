"""The ``course`` fixture: a throwaway course tree (helpers in course_fixtures.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from course_fixtures import Course


@pytest.fixture
def course(tmp_path: Path) -> Course:
    return Course(tmp_path / "course")
