"""Each notebook run once per test run, its executed copy shared by every test that needs it.

Like a print made once in the darkroom and passed round the class: the first test that needs a
notebook run (the check that it runs, or the browser test that shows it) runs it in a fresh
kernel of Binder's environment (tests/binder_env.py, the strictest place a learner meets) and
leaves the copy, outputs and widget state included, in a folder the whole test run shares;
every later test, on either pytest worker, reads that copy. A lock per notebook keeps two
workers from running the same one at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import nbformat
from binder_env import Binder
from filelock import FileLock

from course.paths import ROOT
from course.text import printable

CELL_TIMEOUT_S = 120
STOPPED = "stopped_by"  # metadata key of a copy whose run a timeout or a dead kernel cut off


@dataclass(frozen=True)
class Executed:
    """A notebook's executed copy and what went wrong in it."""

    source: Path  # the notebook that was run
    copy: Path  # the executed copy, with its outputs
    problems: tuple[str, ...]  # "cell N ('first line'): Error: message", in order

    def failure(self) -> str:
        """The problems, then the traceback of the first error, for an assertion message."""
        nb = nbformat.read(self.copy, as_version=4)
        traceback = next(("\n".join(printable(line, 10_000) for line in output.traceback)
                          for cell in nb.cells for output in cell.get("outputs", [])
                          if output.output_type == "error"
                          and "raises-exception" not in cell.metadata.get("tags", [])), "")
        where = self.source.relative_to(ROOT) if self.source.is_relative_to(ROOT) else self.source
        return "\n".join([f"{where} does not run cleanly:", *self.problems, "", traceback])


def store(basetemp: Path) -> Path:
    """The folder for this test run's executed copies, shared by its xdist workers."""
    shared = basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp
    folder = shared / "shared-by-workers"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def executed(notebook: Path, folder: Path, binder: Binder) -> Executed:
    """Run ``notebook`` (an ``.ipynb``) in its own folder, once per test run, as Run All does:
    an error stops the run unless its cell is tagged ``raises-exception``. Any other error,
    and every code cell left unrun, is a problem. It runs as Binder's copy of the file, in the
    course folder there."""
    notebook = notebook.resolve()
    name = str(notebook.relative_to(ROOT) if notebook.is_relative_to(ROOT) else notebook)
    copy = folder / name.replace(os.sep, "__")
    with FileLock(f"{copy}.lock"):
        if not copy.exists():
            _run(binder.copy_of(notebook), copy, binder)
    return Executed(notebook, copy, tuple(problems(nbformat.read(copy, as_version=4))))


def _run(notebook: Path, copy: Path, binder: Binder) -> None:
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(nb, km=binder.kernel_manager(), timeout=CELL_TIMEOUT_S,
                            resources={"metadata": {"path": str(notebook.parent)}})
    try:
        client.execute(env=binder.env)
    except CellExecutionError:  # Run All stops at an error; its output is in the copy
        pass
    except (CellTimeoutError, DeadKernelError) as error:  # the later cells stay unrun
        nb.metadata[STOPPED] = f"{type(error).__name__}: {str(error).splitlines()[0]}"
    partial = copy.with_suffix(".partial")
    nbformat.write(nb, partial)
    partial.replace(copy)  # whole or not at all, should the run be cut off


def problems(nb: nbformat.NotebookNode) -> list[str]:
    """Error outputs outside cells tagged ``raises-exception``, and code cells never run."""
    found = [f"the run stopped: {nb.metadata[STOPPED]}"] if STOPPED in nb.metadata else []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        first_line = cell.source.splitlines()[0] if cell.source else ""
        expected = "raises-exception" in cell.metadata.get("tags", [])
        for output in cell.get("outputs", []):
            if output.output_type == "error" and not expected:
                found.append(f"cell {index} ({first_line!r}): {output.ename}: {output.evalue}")
        if cell.get("execution_count") is None and cell.source.strip():
            found.append(f"cell {index} ({first_line!r}): not executed")
    return found
