"""Every lesson and every student copy runs top to bottom, as Run All would, on Binder.

Each runs in a fresh kernel of Binder's environment (the pins and the course's wheel, no test
tools); its executed copy is kept for the rest of the test run, and the browser tests show that
copy in JupyterLab instead of running the lesson again. A student copy's answer and test cells
fail until answered (they are tagged ``raises-exception``); nothing else may. The solutions run
under the grader (tests/exercises/test_exercise_solutions.py).
"""

from __future__ import annotations

import nbformat
import pytest

from course.notebook_files import read_markdown
from course.paths import EXERCISES, NOTEBOOKS, ROOT

NOTEBOOK_FILES = sorted(path for folder in (NOTEBOOKS, EXERCISES)
                        for path in folder.rglob("*.ipynb")
                        if ".ipynb_checkpoints" not in path.parts)


@pytest.mark.parametrize("notebook", NOTEBOOK_FILES,
                         ids=[str(p.relative_to(ROOT)) for p in NOTEBOOK_FILES])
def test_notebook_runs_without_errors(run_once, notebook):
    run = run_once(notebook)
    assert not run.problems, run.failure()


def test_a_failing_cell_is_reported_with_its_traceback(run_once, tmp_path):
    broken = tmp_path / "broken.ipynb"
    source = ROOT / "tests" / "browser" / "fixtures" / "failing-cell.md"
    nbformat.write(read_markdown(source), broken)
    run = run_once(broken)
    assert run.problems == (
        "cell 3 ('raise ValueError(\"fixture failure: expected by the browser tests\")'): "
        "ValueError: fixture failure: expected by the browser tests",
        "cell 4 ('print(\"never reached: Run All stops at the error\")'): not executed")
    assert 'raise ValueError("fixture failure' in run.failure()  # the traceback, for debugging
