"""The course website: built from the run's executed notebooks, every link working, offline.

The site is built once per test run (tests/website.py) by ``course build``'s Sphinx build; these
tests read the files it wrote. tests/browser/test_site_in_browser.py opens it in Chromium.
"""

from __future__ import annotations

import posixpath
import re
from html import unescape
from pathlib import Path

import pytest
from website import GITHUB, JUPYTERHUB

from course.catalog import CAPSTONE_LAB, level_paths
from course.lessons import discover
from course.paths import EXERCISES
from course.website import links

# The first test to need the site may wait for notebooks the run has not executed yet.
pytestmark = pytest.mark.timeout(1200)

@pytest.fixture(scope="module")
def site(website) -> Path:
    out, built = website
    assert built.code == 0, "the site's build failed:\n" + "\n".join(built.warnings)
    return out


def test_the_site_builds_without_a_warning(website):
    out, built = website
    assert built.code == 0 and not built.warnings, "\n".join(built.warnings)
    assert (out / "notebooks" / "resilience" / "circuit-breaker.html").exists()


def test_every_link_resolves_and_nothing_loads_from_outside(site):
    assert links.problems(site) == []
    pages = list(site.rglob("*.html"))
    lessons, _ = discover()
    assert len(pages) > 2 * len(lessons)  # every lesson and student copy, the start page, search


def test_the_link_check_finds_what_is_broken(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "page.html").write_text(
        '<a id="top" href="#top">ok</a> <a href="#gone">anchor</a> <a href="../b.html#x">x</a>'
        ' <a href="missing.html">missing</a> <img src="../../outside.png">'
        ' <script src="https://cdn.example.com/m.js"></script>'
        ' <a href="https://example.com/paper">a paper</a>')
    (tmp_path / "b.html").write_text('<p id="y">no x here</p>')
    (tmp_path / "s.css").write_text("body { background: url('https://example.com/i.png') }")
    assert links.problems(tmp_path) == [
        "a/page.html: #gone: no element has the id 'gone'",
        "a/page.html: ../b.html#x: no element has the id 'x'",
        "a/page.html: missing.html is missing",
        "a/page.html: ../../outside.png leads outside the site",
        "a/page.html: loads https://cdn.example.com/m.js from outside the site",
        "s.css: url() loads from outside",
    ]


def test_the_start_page_is_home_and_the_sidebar_follows_the_learning_paths(site):
    assert 'url=notebooks/index.html' in (site / "index.html").read_text()
    start = (site / "notebooks" / "index.html").read_text()
    sidebar = start.split('<nav class="bd-links', 1)[1].split("</nav>", 1)[0]
    captions = re.findall(r'<span class="caption-text">([^<]+)</span>', sidebar)
    assert captions == ["Beginner", "Intermediate", "Advanced", "Expert", "Capstone"]
    linked = [posixpath.normpath(posixpath.join("notebooks", href)).removesuffix(".html")
              for href in re.findall(r'<a class="reference internal" href="([^"#]+)\.html"',
                                     sidebar)]
    lessons, _ = discover()
    expected = []
    for lesson in [*(lesson for path in level_paths(lessons).values() for lesson in path),
                   *(lesson for lesson in lessons if lesson.slug == CAPSTONE_LAB[0])]:
        expected.append(f"notebooks/{lesson.slug}")
        if (EXERCISES / f"{lesson.slug}.ipynb").exists():
            expected.append(f"exercises/{lesson.slug}")
    assert linked == expected


def test_each_lesson_launches_on_binder_and_on_the_hub(site):
    page = unescape((site / "notebooks" / "resilience" / "circuit-breaker.html").read_text())
    path = "notebooks/resilience/circuit-breaker.ipynb"
    assert (f"https://mybinder.org/v2/gh/{GITHUB}/main?urlpath=lab/tree/{path}") in page
    repository = GITHUB.split("/")[1]
    assert (f"{JUPYTERHUB}/hub/user-redirect/git-pull?repo=https%3A//github.com/{GITHUB}"
            f"&urlpath=lab/tree/{repository}/{path}&branch=main") in page
    exercise = unescape((site / "exercises" / "resilience" / "circuit-breaker.html").read_text())
    assert "urlpath=lab/tree/exercises/resilience/circuit-breaker.ipynb" in exercise


def test_a_lesson_page_shows_its_outputs_and_links_other_lessons(site):
    page = (site / "notebooks" / "resilience" / "circuit-breaker.html").read_text()
    assert 'class="lesson-card' in page  # the card cell's output
    assert page.count('<img alt="_images/') + page.count("src=\"../../_images/") >= 3  # figures
    assert '<pre class="mermaid">' in page or 'class="mermaid"' in page
    assert 'href="../foundations/queueing-basics.html"' in page
    notebooks = re.findall(r'href="(?!https?:)([^"]*\.ipynb)"', page)
    assert notebooks == ["../../_sources/notebooks/resilience/circuit-breaker.ipynb"]  # download
