"""The course in a real browser: every finished lesson shows in JupyterLab as a learner sees it.

A learner opens the start page, follows a link to a lesson, chooses Run All and reads the
result. These tests do the same in headless Chromium, for the start page and every lesson whose
front matter says ``status: complete``, so each lesson is covered as soon as it is finished.
Each lesson is run once per test run (tests/executed.py, which also proves it runs): the
browser opens that executed copy and checks what only a browser can tell, that its figures,
widgets and diagrams are drawn. One lesson is run live, Run All in the page, and its slider
moved; the exercise check cell runs live too.
Each pytest worker that runs one of these tests has its own JupyterLab server and Chromium.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbformat.sign import NotebookNotary

from course.lessons import discover, start_page
from course.notebook_files import read_ipynb, read_markdown
from course.paths import NOTEBOOKS, ROOT

pytestmark = pytest.mark.browser

SCREENSHOTS = ROOT / "test-artifacts" / "browser"
START_PAGE = start_page().stem
SLIDER_LESSONS = ("resilience/circuit-breaker", "foundations/queueing-basics")
MERMAID_FENCE = re.compile(r"^(```|~~~)\s*mermaid\s*$", re.MULTILINE)
IMPORTS_SIMULATIONS = re.compile(r"^\s*(import|from)\s+simulations\b", re.MULTILINE)


def complete_lessons() -> list[str]:
    """Slugs (``folder/name``) of the lessons whose front matter says status: complete."""
    lessons, _problems = discover()  # unusable files are course validate's to report
    return [lesson.slug for lesson in lessons if lesson.status == "complete"]


def slider_lesson() -> str | None:
    """The first of SLIDER_LESSONS that is complete, if any."""
    return next((lesson for lesson in SLIDER_LESSONS if lesson in complete_lessons()), None)


def course_notebooks() -> list[str]:
    """The start page (when it exists) and every complete lesson, as paths under notebooks/.

    The slider lesson is left out: its own test runs it live, checks the same, then moves a
    slider.
    """
    start = [START_PAGE] if start_page().exists() else []
    return start + [lesson for lesson in complete_lessons() if lesson != slider_lesson()]


def has_outputs(twin: Path) -> bool:
    """Whether a repository ``.ipynb`` holds outputs (it is committed without; a save from
    JupyterLab would add them). Robust to others regenerating the twin meanwhile."""
    return any(cell.get("outputs") or cell.get("execution_count")
               for cell in read_ipynb(twin).cells)


def failure(name: str, problems: list) -> str:
    return f"{name} in JupyterLab:\n" + "\n".join(f"  {problem}" for problem in problems)


def serve_trusted(lab, copy: Path, served_path: str) -> None:
    """Put an executed copy where the server serves ``served_path``, signed with the server's
    own secret: JupyterLab trusts the outputs of a run, as after the learner's own Run All
    (an untrusted notebook shows its widgets as plain text)."""
    nb = read_ipynb(copy)
    NotebookNotary(data_dir=str(lab.root.parent / "data")).sign(nb)  # isolated_env's data dir
    (lab.root / served_path).write_text(nbformat.writes(nb), encoding="utf-8")


def screenshot(page, served_path: str) -> str:
    """Save the whole page as a screenshot; its path, to quote in a failure message."""
    slug = served_path.removeprefix("notebooks/").removesuffix(".ipynb").replace("/", "-")
    page.screenshot(SCREENSHOTS / f"{slug}.png")
    return f"test-artifacts/browser/{slug}.png"


def check_drawn(page, name: str, source: Path) -> None:
    """No dialog; every mermaid block of the source drawn; at least one plot when the notebook
    imports ``simulations``."""
    assert not page.dialogs(), failure(name, page.dialogs())
    markdown = "\n".join(cell.source for cell in read_markdown(source).cells
                         if cell.cell_type == "markdown")
    expected = len(MERMAID_FENCE.findall(markdown))
    page.wait_for_mermaid(expected)
    drawn, errors = page.mermaid()
    assert (drawn, errors) == (expected, []), failure(
        name, [f"{drawn} of {expected} mermaid diagrams drawn", *errors])

    code = "\n".join(cell.source for cell in read_markdown(source).cells
                     if cell.cell_type == "code")
    if IMPORTS_SIMULATIONS.search(code):
        assert page.plot_count() >= 1, failure(name, ["imports simulations but shows no plot"])


def run_and_check(open_notebook, served_path: str, source: Path):
    """Open, Run All, save (into the temporary copy), screenshot, then check what shows.

    Checks: no error output and every code cell executed; ``check_drawn``; still no outputs in
    the repository's own ``.ipynb`` (the run wrote only into the temporary copy). Returns the
    open page for further checks.
    """
    twin = source.with_suffix(".ipynb")
    assert twin.exists(), f"{twin.relative_to(ROOT)} is missing: run `course sync`"
    page = open_notebook(served_path)
    page.run_all()
    page.save()
    name = f"{served_path} (screenshot {screenshot(page, served_path)})"
    problems = page.cell_problems()
    assert not problems, failure(name, problems)
    check_drawn(page, name, source)
    assert not has_outputs(twin), f"running {served_path} saved outputs into {twin}"
    return page


@pytest.mark.parametrize("notebook", course_notebooks())
def test_notebook_shows_its_figures_widgets_and_diagrams(open_notebook, run_once, lab,
                                                        notebook):
    """The executed copy, opened as a learner finds it after Run All: each plot image and
    each widget view among its outputs drawn, and every mermaid diagram. A screenshot is
    taken when a check fails."""
    from lab_page import output_counts  # imports playwright, which ``browser`` has checked for
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    run = run_once(NOTEBOOKS / f"{notebook}.ipynb")
    assert not run.problems, run.failure()
    served = f"notebooks/{notebook}.ipynb"
    serve_trusted(lab, run.copy, served)
    plots, widgets = output_counts(read_ipynb(run.copy))
    page = open_notebook(served, kernel=False)  # looked at, not run
    try:
        try:
            page.wait_for_drawn(plots, widgets, timeout_ms=30_000)
        except PlaywrightTimeoutError:
            # jupyterlab-manager reads the saved widget state only after its first query to the
            # new kernel succeeds, once per opening; on a busy machine that query can fail and
            # the widget stays "Loading". A learner reloads the tab; so does the test, once.
            page.page.close()
            page = open_notebook(served, kernel=False)
            try:
                page.wait_for_drawn(plots, widgets)
            except PlaywrightTimeoutError:
                raise AssertionError(failure(served, [
                    f"{page.plot_count()} of {plots} plots and {page.widget_count()} of "
                    f"{widgets} widget views drawn (also after reopening it)"])) from None
        check_drawn(page, served, NOTEBOOKS / f"{notebook}.md")
    except AssertionError as error:
        raise AssertionError(f"{error}\n(screenshot {screenshot(page, served)})") from None


def test_start_page_links_open_their_lessons(open_notebook, lab):
    """Every complete lesson is linked from the start page and every link names a notebook the
    server has; one link per lesson folder is clicked and opens its lesson (the links are all
    written alike, and every lesson is opened by the test above)."""
    if not start_page().exists():
        pytest.skip(f"no start page yet ({start_page().relative_to(ROOT)})")
    page = open_notebook(f"notebooks/{START_PAGE}.ipynb")
    links = page.notebook_links()
    missing = sorted(target for target in links.values() if not (lab.root / target).is_file())
    assert not missing, f"notebooks/{START_PAGE}.ipynb links to missing notebooks: {missing}"
    unlinked = sorted(set(f"notebooks/{lesson}.ipynb" for lesson in complete_lessons())
                      - set(links.values()))
    assert not unlinked, f"notebooks/{START_PAGE}.ipynb does not link {unlinked}"
    clicked: set[str] = set()
    for index, target in links.items():
        folder = target.rsplit("/", 1)[0]
        if folder not in clicked:
            clicked.add(folder)
            page.open_link(index, target)


def test_a_lesson_runs_live_and_its_slider_redraws_its_plot(open_notebook):
    """Run All in the page, for one lesson (the others' runs are shown from their executed
    copies), then a slider moved until the plot is redrawn."""
    lesson = slider_lesson()
    if lesson is None:
        pytest.skip("no complete lesson with sliders yet: needs notebooks/"
                    + " or notebooks/".join(f"{name}.md" for name in SLIDER_LESSONS)
                    + " with status: complete")
    page = run_and_check(open_notebook, f"notebooks/{lesson}.ipynb", NOTEBOOKS / f"{lesson}.md")
    before, after = page.move_slider(SCREENSHOTS / f"{lesson.replace('/', '-')}-slider.png")
    assert after != before


EXERCISE_LESSON = "resilience/circuit-breaker"


def test_learner_follows_the_lesson_to_its_exercises_and_checks_the_answers(open_notebook):
    """From the lesson to its exercises, one answer right and one wrong, Check my answers."""
    exercises = f"exercises/{EXERCISE_LESSON}.ipynb"
    lesson = open_notebook(f"notebooks/{EXERCISE_LESSON}.ipynb")
    assert {"exercises", "notebooks", "README.md"} <= set(lesson.root_listing())
    links = lesson.notebook_links()
    [index] = [index for index, target in links.items() if target == exercises]
    lesson.open_link(index, exercises)

    page = open_notebook(exercises)
    cells = page.panel.locator(".jp-CodeCell")
    answers = [index for index, text in enumerate(cells.all_inner_texts())
               if "YOUR CODE HERE" in text]  # exercises 1 to 4
    page.type_into_cell(cells.nth(answers[2]),
                        "tied_up = 120 * 0.5\nlargest_safe_timeout_s = 40 / 120")
    page.type_into_cell(cells.nth(answers[3]), "p_false_trip = 0.2**10")
    check = cells.last
    assert "check_my_answers" in check.inner_text()
    report = page.run_cell(check)
    page.screenshot(SCREENSHOTS / "exercises-check-my-answers.png")
    assert "✓ circuit-breaker-ex3-tests  1/1  passed" in report, report
    assert "✗ circuit-breaker-ex4-tests  0/1  failed: p_false_trip is 1.024e-07: the wrong " \
           "formula: 0.2¹⁰ is one ordering of 10 failures" in report, report
    assert "✗ circuit-breaker-ex1-tests  0/2  unanswered" in report, report
    assert "Total: 1/6 points (1 of 4 exercises passed)" in report, report
    assert "did not save" not in report, report


# The machinery itself, on fixture notebooks that exist whatever the state of the lessons.
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_fixture_slider_redraws_plot(open_notebook):
    page = run_and_check(open_notebook, "fixtures/widget-plot.ipynb", FIXTURES / "widget-plot.md")
    assert page.plot_count() == 1
    before, after = page.move_slider(SCREENSHOTS / "fixtures-widget-plot-slider.png")
    assert after.startswith("data:image/png") and after != before


def test_fixture_error_is_reported_with_its_cell(open_notebook):
    page = open_notebook("fixtures/failing-cell.ipynb")
    page.run_all()
    page.save()
    reported = [str(problem) for problem in page.cell_problems()]
    assert reported == [
        "cell 3 ('raise ValueError(\"fixture failure: expected by the browser tests\")'): "
        "ValueError: fixture failure: expected by the browser tests",
        "cell 4 ('print(\"never reached: Run All stops at the error\")'): not executed",
    ]
    saved = read_ipynb(page.file).cells
    assert saved[2].outputs[0].ename == "KeyError"  # tagged raises-exception: shown, allowed
