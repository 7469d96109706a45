"""`course list`, lesson discovery, and the generated course-map blocks of the real repository."""

from __future__ import annotations

import subprocess

import pytest
from course_fixtures import write_notebook

from course import catalog
from course.lessons import discover, find
from course.paths import ROOT


def make_course(course):
    course.lesson("resilience/toy-breaker", difficulty="advanced")
    course.lesson("resilience/easy-one", title="Easy One", difficulty="beginner", status="stub")
    course.lesson("caching/cache-aside", title="Cache Aside")
    course.lesson("foundations/queueing-basics", title="Queueing Basics")


def test_discover_reads_front_matter_and_names_unusable_files(course):
    make_course(course)
    write_notebook(course.root / "notebooks" / "index.md", "# Start\n")
    write_notebook(course.root / "notebooks" / "caching" / "plain.md", "# No card\n")
    lessons, problems = discover(course.root)
    assert [lesson.slug for lesson in lessons] == [
        "foundations/queueing-basics", "caching/cache-aside",
        "resilience/easy-one", "resilience/toy-breaker",
    ]
    assert lessons[1].metadata["title"] == "Cache Aside" and lessons[1].name == "cache-aside"
    assert len(problems) == 1 and "plain.md: no 'lesson' front matter" in problems[0]
    assert find("cache-aside", lessons) is lessons[1]
    assert find("resilience/toy-breaker", lessons).title == "Toy Breaker"
    assert find("latency", lessons) is None


def test_list_orders_foundations_first_then_categories_then_difficulty(course, capsys):
    make_course(course)
    assert catalog.run(course.args(markdown=False)) == 0
    lines = capsys.readouterr().out.splitlines()
    slugs = [line.split()[0] for line in lines if line.startswith("  ")]
    assert slugs == ["foundations/queueing-basics", "caching/cache-aside",
                     "resilience/easy-one", "resilience/toy-breaker"]
    assert [line for line in lines if line and not line.startswith(" ")] == [
        "foundations", "caching", "resilience"]
    easy = next(line for line in lines if "easy-one" in line)
    assert "Easy One" in easy and "beginner" in easy and "20 min" in easy and "stub" in easy


def test_markdown_table_links_every_lesson_with_its_status(course, capsys):
    make_course(course)
    assert catalog.run(course.args(markdown=True)) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[0] == "| Category | Lesson | Difficulty | Reading time | Status |"
    assert rows[4] == ("| resilience | [Easy One](notebooks/resilience/easy-one.ipynb) "
                       "| beginner | 20 min | 📝 stub |")
    assert len(rows) == 2 + 4


def test_list_exits_1_when_a_lesson_cannot_be_read(course, capsys):
    (course.root / "notebooks" / "caching").mkdir()
    (course.root / "notebooks" / "caching" / "bad.md").write_text("---\nlesson: [\n---\n")
    assert catalog.run(course.args(markdown=False)) == 1
    assert "bad.md: front matter is not valid YAML" in capsys.readouterr().err


def test_learning_paths_link_existing_lessons_and_mark_planned_ones(course):
    make_course(course)
    lessons, _ = discover(course.root)
    text = catalog.learning_paths(lessons, course.root / "notebooks")
    assert "- Beginner: [Easy One](resilience/easy-one.ipynb) (📝 stub)" in text
    assert "[Toy Breaker](resilience/toy-breaker.ipynb)" not in text.split("**By goal**")[1]
    assert "Circuit breaker (planned)" in text
    assert "[Queueing Basics](foundations/queueing-basics.ipynb)" in text.split("**By goal**")[1]
    paths = [line for line in text.splitlines() if line.startswith("- ")]
    assert len(paths) == 4 + len(catalog.GOAL_PATHS)
    assert all(line.endswith("Capstone: a bad day (planned)") for line in paths)


def test_every_learning_path_ends_with_the_capstone_lab(course):
    make_course(course)
    course.lesson("capstone/bad-day", title="Bad Day", difficulty="advanced")
    lessons, _ = discover(course.root)
    text = catalog.learning_paths(lessons, course.root / "notebooks")
    paths = [line for line in text.splitlines() if line.startswith("- ")]
    capstone = "[Bad Day](capstone/bad-day.ipynb) (✅ complete)"
    assert all(line.endswith(capstone) and line.count(capstone) == 1 for line in paths), paths
    assert "- Advanced: [Toy Breaker](resilience/toy-breaker.ipynb) (✅ complete); then " \
        + capstone in paths


def test_the_repository_course_map_matches_the_lessons():
    """Fails when README.md or notebooks/index.md drifts from the lessons: run `course sync`."""
    lessons, _ = discover(ROOT)
    for path, required in catalog.block_files(ROOT).items():
        text = path.read_text(encoding="utf-8")
        assert catalog.refresh_blocks(text, lessons, path.parent, required) == text, (
            f"{path.name}: the generated course map is stale; run `course sync`"
        )


@pytest.mark.parametrize(("setting", "badge"), [
    ("", None),
    ('[tool.course]\ngithub = "acme/patterns-course"\n', "acme/patterns-course"),
])
def test_binder_badge_follows_the_committed_setting(tmp_path, setting, badge):
    (tmp_path / "pyproject.toml").write_text(setting)
    (tmp_path / "notebooks").mkdir()
    block = catalog.binder_block([], tmp_path / "notebooks")
    if badge is None:
        assert block == catalog.BINDER_OFF and "http" not in block
    else:
        assert f"https://mybinder.org/v2/gh/{badge}/HEAD?urlpath=lab/tree/notebooks/" in block


def test_a_github_remote_alone_changes_nothing(tmp_path):
    """Clones differ in their remotes (CI clones a local path); the README must not."""
    (tmp_path / "pyproject.toml").write_text("")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "remote", "add", "origin",
                    "git@github.com:acme/patterns-course.git"], check=True)
    assert catalog.binder_block([], tmp_path) == catalog.BINDER_OFF


def test_a_malformed_setting_is_one_clear_error(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.course]\ngithub = "https://github.com/x"\n')
    with pytest.raises(ValueError, match=r"\[tool.course\] github must be 'owner/name'"):
        catalog.binder_block([], tmp_path)
