"""The "Check my answers" cell: grade the open exercise notebook from inside JupyterLab.

Like handing your paper to the examiner at the front of the room instead of posting it: the
last cell of every exercise notebook asks JupyterLab to save the notebook, then runs the real
grader (`course check`: visible and hidden tests, one fresh process per exercise) on the saved
file and shows each exercise's result under the cell. No terminal and no PATH are needed. The hidden
tests come from the solutions notebook the exercise was released from (`solutions/` in this
repository), which the grader finds through the notebook's `exercise` metadata.

Outside a JupyterLab session (the tests, nbconvert, nbgrader, the grader's own process) there is no
front end to save the notebook and the grading would grade itself, so the cell only says how to
get graded there.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

SAVE_TIMEOUT_S = 15.0
# Set in a kernel that JupyterLab started for a notebook: its path. The grader's own processes
# never have it (course.sandbox passes no JPY_ variable on), so "Check my answers" does nothing
# there.
SESSION_VARIABLE = "JPY_SESSION_NAME"
# Runs in the browser as this cell's output: press the notebook's own Save button. JupyterLab
# evaluates the output before it attaches it to the page, so the script waits until it is.
SAVE_SCRIPT = """
const press = tries => {
  const panel = element.closest('.jp-NotebookPanel');
  const save = panel && panel.querySelector('[data-command="docmanager:save"]');
  if (save) {
    save.click();
  } else if (tries > 0) {
    setTimeout(() => press(tries - 1), 100);
  }
};
press(50);
"""


def check_my_answers(notebook: str) -> None:
    """Save this notebook (`notebook` is its file name) and grade it; show the report."""
    from IPython.display import Javascript, display

    session = os.environ.get(SESSION_VARIABLE, "")
    if not session:
        print(f"Checking needs this notebook open in JupyterLab (or run `course check "
              f"{notebook}` in a terminal).")
        return
    path = Path(session) if session.endswith(".ipynb") else Path.cwd() / notebook
    if not path.is_file():
        print(f"Cannot find this notebook's file ({path}); save it and run this cell again.")
        return
    before = path.stat().st_mtime_ns
    display(Javascript(SAVE_SCRIPT))
    if not _saved_since(path, before):
        print(f"JupyterLab did not save the notebook within {SAVE_TIMEOUT_S:g} s: grading the "
              "version saved last (save with Ctrl+S and run this cell again to include your "
              "latest edits).")
    print("Grading your answer cells with the visible and the hidden checks, a fresh process "
          "per exercise ...", flush=True)
    from course import grader  # here, not at the top: nbformat takes seconds to import

    try:
        report = grader.grade(path)
    except grader.GradingError as error:
        print(f"Cannot grade this notebook: {error}")
        return
    print(grader.format_report(report))


def _saved_since(path: Path, before: int) -> bool:
    """Wait until the file has been written after `before` (ns); False after the timeout."""
    deadline = time.monotonic() + SAVE_TIMEOUT_S
    while time.monotonic() < deadline:
        if path.stat().st_mtime_ns != before:
            time.sleep(0.2)  # let the server finish writing
            return True
        time.sleep(0.1)
    return False
