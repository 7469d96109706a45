"""`course sync`: twins rebuilt from their .md; `--check` names every problem, changes nothing."""

from __future__ import annotations

import json

import pytest
from course_fixtures import write_notebook

from course import sync
from course.notebook_files import ipynb_text, read_markdown

NOTEBOOK = "# A page\n\n```{code-cell} ipython3\nprint(1)\n```\n"


def snapshot(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_sync_writes_every_missing_or_stale_twin(course):
    root = course.root
    for folder in ("notebooks/caching", "solutions/caching", "exercises/caching"):
        (root / folder).mkdir(parents=True)
        (root / folder / "page.md").write_text(NOTEBOOK)
    problems, changed = sync.sync(root, [], check=False)
    assert problems == [] and len(changed) == 3
    for folder in ("notebooks", "solutions", "exercises"):
        md = root / folder / "caching" / "page.md"
        assert md.with_suffix(".ipynb").read_text() == ipynb_text(read_markdown(md))
    assert sync.sync(root, [], check=True) == ([], [])  # now everything is in sync


def test_check_names_every_problem_and_changes_nothing(course):
    notebooks = course.root / "notebooks" / "caching"
    stale = write_notebook(notebooks / "stale.md", NOTEBOOK)
    stale.write_text(NOTEBOOK.replace("print(1)", "print(2)"))
    with_outputs = write_notebook(notebooks / "outputs.md", NOTEBOOK).with_suffix(".ipynb")
    nb = json.loads(with_outputs.read_text())
    nb["cells"][1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "1\n"}]
    with_outputs.write_text(json.dumps(nb))
    (notebooks / "lonely.md").write_text(NOTEBOOK)
    (notebooks / "orphan.ipynb").write_text(with_outputs.read_text())
    write_notebook(notebooks / "bad.md", NOTEBOOK).with_suffix(".ipynb").write_text("{oops")
    before = snapshot(course.root)
    problems, changed = sync.sync(course.root, [], check=True)
    assert snapshot(course.root) == before and changed == []
    text = "\n".join(problems)
    assert "stale.ipynb: out of sync with stale.md" in text
    assert "outputs.ipynb: carries outputs in 1 code cell(s)" in text
    assert "lonely.md: no .ipynb twin" in text
    assert "orphan.ipynb: no orphan.md source" in text
    assert "bad.ipynb: not a valid notebook" in text
    assert len(problems) == 5


def test_cli_exit_codes_and_paths(course, capsys):
    notebooks = course.root / "notebooks"
    write_notebook(notebooks / "caching" / "a.md", NOTEBOOK)
    (notebooks / "resilience").mkdir()
    (notebooks / "resilience" / "b.md").write_text(NOTEBOOK)
    assert sync.run(course.args(paths=[notebooks / "caching"], check=True)) == 0
    assert sync.run(course.args(paths=[], check=True)) == 1
    assert "b.md: no .ipynb twin" in capsys.readouterr().out
    assert sync.run(course.args(paths=[notebooks / "resilience" / "b.md"], check=False)) == 0
    assert (notebooks / "resilience" / "b.ipynb").exists()
    assert sync.run(course.args(paths=[course.root / "missing"], check=True)) == 2
    assert "no such file or directory" in capsys.readouterr().err


@pytest.mark.parametrize("check", [True, False])
def test_a_path_with_no_notebook_is_a_usage_error(course, capsys, check):
    empty = course.root / "notebooks" / "caching"
    empty.mkdir()
    assert sync.run(course.args(paths=[empty], check=check)) == 2
    assert capsys.readouterr().err == (f"course sync: no lesson in {empty} (sync rebuilds the "
                                       "notebooks of notebooks/, solutions/, exercises/)\n")


def test_orphan_twin_is_reported_by_plain_sync_too(course):
    (course.root / "notebooks" / "x").mkdir()
    (course.root / "notebooks" / "x" / "o.ipynb").write_text("{}")
    problems, _ = sync.sync(course.root, [], check=False)
    assert len(problems) == 1 and "o.ipynb: no o.md source" in problems[0]


def test_course_map_blocks_are_rewritten_and_checked(course):
    readme = course.root / "README.md"
    readme.write_text("# Course\n\n<!-- binder:start -->\n<!-- binder:end -->\n\n"
                      "<!-- course-map:start -->\nold\n<!-- course-map:end -->\nkept\n")
    course.lesson("resilience/toy-breaker")
    problems, _ = sync.sync(course.root, [], check=True)
    assert problems == ["README.md: generated course-map block(s) out of date".replace(
        "README.md", str(readme.resolve()))]
    assert sync.sync(course.root, [], check=False)[0] == []
    text = readme.read_text()
    assert "[Toy Breaker](notebooks/resilience/toy-breaker.ipynb)" in text
    assert "old" not in text and text.endswith("kept\n") and text.startswith("# Course\n")
    assert sync.sync(course.root, [], check=True) == ([], [])
    course.lesson("caching/new-one", title="New One")  # a new lesson makes the map stale
    assert len(sync.sync(course.root, [], check=True)[0]) == 1


def test_a_file_without_its_markers_is_reported(course):
    (course.root / "README.md").write_text("# Course\n")
    problems, _ = sync.sync(course.root, [], check=False)
    assert len(problems) == 1 and "missing generated block(s) <!-- binder:start -->" in problems[0]
