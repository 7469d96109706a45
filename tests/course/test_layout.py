"""The repository's own layout: one slug, one path in every tree, and no circle between trees."""

from __future__ import annotations

import ast

import pytest

from course.lessons import lesson_sources, load_lesson
from course.paths import ROOT, code_paths, module_of

COMPLETE = [lesson for lesson in map(load_lesson, lesson_sources(ROOT))
            if lesson.metadata.get("status") == "complete"]


def test_there_are_complete_lessons_to_check():
    assert len(COMPLETE) >= 9


@pytest.mark.parametrize("lesson", COMPLETE, ids=lambda lesson: lesson.slug)
def test_every_complete_lesson_has_its_files_in_every_tree(lesson):
    paths = code_paths(ROOT, lesson.folder, lesson.name)
    assert ("patterns" in paths) == lesson.is_pattern
    missing = [str(path.relative_to(ROOT)) for path in paths.values() if not path.exists()]
    assert not missing, f"{lesson.slug} lacks {missing}"


def imports_of(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


PATTERN_FILES = sorted((ROOT / "patterns").rglob("*.py"))


@pytest.mark.parametrize("path", PATTERN_FILES, ids=lambda path: module_of(path, ROOT))
def test_patterns_import_nothing_from_the_simulations(path):
    bad = [name for name in imports_of(path) if name.split(".")[0] == "simulations"]
    assert not bad, f"{module_of(path, ROOT)} imports {bad}: studies import patterns, not back"


def test_the_flat_layout_is_gone():
    """Only the toolkit is left at the root of simulations/; every lesson's code is in a tree."""
    toolkit = {"__init__", "__main__", "caches", "cli", "clients", "distributions", "experiments",
               "fastpath", "faults", "metrics", "plots", "records", "redis_server", "servers",
               "textbook", "theory", "workloads"}
    assert {path.stem for path in (ROOT / "simulations").glob("*.py")} == toolkit
