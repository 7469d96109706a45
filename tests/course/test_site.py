"""`course build`: the course as a website, its lessons executed once and cached.

These build a throwaway course of one lesson; tests/site/ checks the real course's site.
"""

from __future__ import annotations

from course_fixtures import lesson_text, write_notebook

from course import site
from course.paths import ROOT

FAILING_CELL = "```{code-cell} ipython3\nprint('before')\n1 / 0\n```\n\nafter the failure\n"


def _course_with_mermaid(course):
    (course.root / ".npm").symlink_to(ROOT / ".npm")  # mermaid, as dev.py installs it
    write_notebook(course.root / "notebooks" / "index.md", "# The toy course\n\nStart here.\n")
    return course


def test_build_executes_each_lesson_once_and_then_uses_the_cache(course, capfd):
    _course_with_mermaid(course).lesson("foundations/queueing-basics", imports=False)
    out = course.root / "_build" / "html"
    assert site.run(course.args(out=out, execute=True, jupyterhub="")) == 0
    first = capfd.readouterr()
    assert "notebooks/foundations/queueing-basics.ipynb: Executed notebook" in first.out
    assert "Kernel is running over TCP" not in first.err  # the kernels' own noise is dropped
    page = (out / "notebooks" / "foundations" / "queueing-basics.html").read_text()
    assert "lesson-card" in page  # the card cell ran and its HTML was kept
    assert (out / "exercises" / "foundations" / "queueing-basics.html").exists()
    assert "url=notebooks/index.html" in (out / "index.html").read_text()

    (out.parent / "html-doctrees").rename(out.parent / "old-doctrees")  # Sphinx reads anew
    assert site.run(course.args(out=out, execute=True, jupyterhub="")) == 0
    again = capfd.readouterr().out
    assert "Using cached notebook" in again and "Executed notebook" not in again


def test_a_failing_lesson_fails_the_build_after_every_page(course, capfd):
    _course_with_mermaid(course).lesson(
        "foundations/queueing-basics",
        lesson_text("foundations/queueing-basics", status="stub", imports=False) + FAILING_CELL)
    out = course.root / "_build" / "html"
    assert site.run(course.args(out=out, execute=True, jupyterhub="")) == 1
    err = capfd.readouterr().err
    assert "queueing-basics.ipynb" in err and "ZeroDivisionError" in err
    assert "the site has problems" in err
    assert "before" in (out / "notebooks" / "foundations" / "queueing-basics.html").read_text()


def test_the_cache_is_thrown_away_when_the_code_changes(course):
    module = course.root / "simulations" / "study.py"
    module.parent.mkdir(parents=True)
    module.write_text("A = 1\n")
    first = site.cache_folder(course.root)
    first.mkdir(parents=True)
    assert site.cache_folder(course.root) == first
    module.write_text("A = 2\n")
    second = site.cache_folder(course.root)
    assert second != first and not first.exists()


def test_usage_errors_are_one_line(course, capfd):
    write_notebook(course.root / "notebooks" / "index.md", "# The toy course\n")
    assert site.run(course.args(out=None, execute=False, jupyterhub="hub.example.edu")) == 2
    assert capfd.readouterr().err == ("course build: --jupyterhub must be an http(s) URL, "
                                      "got 'hub.example.edu'\n")
    assert site.run(course.args(out=None, execute=False, jupyterhub="https://hub.example.edu")) == 2
    assert capfd.readouterr().err.startswith("course build: --jupyterhub needs [tool.course] "
                                             "github in pyproject.toml")
    assert site.run(course.args(out=None, execute=False, jupyterhub="")) == 2
    err = capfd.readouterr().err
    assert err.startswith("course build: mermaid is not installed in ") and err.count("\n") == 1
    assert "python3 dev.py site" in err
