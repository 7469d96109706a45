"""`course build`: every lesson executed in a fresh kernel and exported; failures reported."""

from __future__ import annotations

import re

from course_fixtures import lesson_text

from course import site
from course.notebook_files import read_markdown

FAILING_CELL = "```{code-cell} ipython3\nprint('before')\n1 / 0\n```\n\nafter the failure\n"


def test_build_runs_each_lesson_reports_failures_and_keeps_going(course, capsys):
    broken = course.lesson("caching/broken",
                           lesson_text("caching/broken", status="stub", imports=False)
                           + FAILING_CELL)
    failing = len(read_markdown(broken).cells) - 1  # the cell before the closing text
    course.lesson("resilience/toy-breaker", imports=False)
    out = course.root / "site"
    code = site.run(course.args(paths=[], timeout=60, out=out))
    printed = capsys.readouterr().out
    assert code == 1
    assert re.search(r"^\[1/2\] caching/broken \.\.\. FAILED \(\d+\.\d s\)$", printed, re.M)
    assert re.search(r"^\[2/2\] resilience/toy-breaker \.\.\. ok \(\d+\.\d s\)$", printed, re.M)
    assert f"caching/broken, cell {failing}: ZeroDivisionError: division by zero" in printed
    broken_page = (out / "caching" / "broken.html").read_text()
    assert "before" in broken_page and "ZeroDivisionError" in broken_page
    good_page = (out / "resilience" / "toy-breaker.html").read_text()
    assert "lesson-card" in good_page  # the card cell ran and its HTML was kept
    index = (out / "index.html").read_text()
    assert 'href="resilience/toy-breaker.html"' in index and 'href="caching/broken.html"' in index
    assert "build failed" in index and "📝 stub" in index and "✅ complete" in index


def test_build_of_one_path_and_usage_errors(course, capsys):
    course.lesson("resilience/toy-breaker", imports=False)
    course.lesson("caching/other", status="stub")
    out = course.root / "site"
    assert site.run(course.args(paths=[course.root / "notebooks" / "resilience"],
                                timeout=60, out=out)) == 0
    assert "[1/1] resilience/toy-breaker ... ok" in capsys.readouterr().out
    assert not (out / "caching").exists()
    assert site.run(course.args(paths=[course.root / "nope"], timeout=60, out=out)) == 2
    assert "no such file or directory" in capsys.readouterr().err


def test_failing_cell_number_is_the_notebook_cell(course, capsys):
    text = lesson_text("caching/broken", status="stub", imports=False)  # cell 2 is the card
    course.lesson("caching/broken", text.replace('show_card("caching/broken")',
                                                 'raise RuntimeError("card broke")'))
    assert site.run(course.args(paths=[], timeout=60, out=course.root / "site")) == 1
    assert "caching/broken, cell 2: RuntimeError: card broke" in capsys.readouterr().out
