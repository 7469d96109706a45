"""The course website built once per test run, from the notebooks the run has executed.

Like binding the proofs the printer has already pulled instead of printing the book again:
every lesson's executed copy (tests/executed.py, run in Binder's environment) is laid out as
``notebooks/`` beside the student copies as handed out (``exercises/``), and ``course build``'s
Sphinx build turns that into the site, without running anything itself. Both pytest workers
share the one build: a lock keeps the second waiting for the first.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from executed import Executed
from filelock import FileLock

from course import site
from course.paths import EXERCISES, NOTEBOOKS, ROOT

GITHUB = "example-org/patterns-course"  # the launch buttons' repository in the tests
JUPYTERHUB = "https://hub.example.edu"


def built_site(folder: Path, run_once: Callable[[Path], Executed]) -> tuple[Path, site.Built]:
    """The site's folder and its build's result, built into ``folder`` at most once."""
    out, result = folder / "html", folder / "result.txt"
    with FileLock(f"{folder}.lock"):
        if not result.exists():
            source = folder / "source"
            shutil.rmtree(source, ignore_errors=True)
            for notebook in sorted(NOTEBOOKS.rglob("*.ipynb")):
                _place(run_once(notebook).copy, source / notebook.relative_to(ROOT))
            for notebook in sorted(EXERCISES.rglob("*.ipynb")):
                _place(notebook, source / notebook.relative_to(ROOT))
            built = site.build(ROOT, source, out, execute=False, github=GITHUB,
                               jupyterhub=JUPYTERHUB, quiet=True)
            result.write_text("\n".join([str(built.code), *built.warnings]), encoding="utf-8")
    code, *warnings = result.read_text(encoding="utf-8").split("\n")
    return out, site.Built(int(code), tuple(line for line in warnings if line))


def _place(notebook: Path, target: Path) -> None:
    if ".ipynb_checkpoints" in notebook.parts:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(notebook, target)
