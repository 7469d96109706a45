"""Running a lesson leaves git clean: the nbstripout filter that `dev.py lab` configures.

A learner clones the course, runs a lesson in JupyterLab and saves it; later they `git pull`
new lessons. Here the same happens in a throwaway clone: the lesson, executed by a kernel, is
saved through a Jupyter server's contents API (as JupyterLab saves, with the repository's own
jupytext.toml in force), then the upstream gains a commit touching that lesson.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_servers import isolated_env, start

import dev
from course.notebook_files import read_ipynb, read_markdown, write_pair
from course.paths import ROOT

LESSON = "notebooks/foundations/queueing-basics"
TRACKED = (".gitattributes", ".gitignore", "jupytext.toml", f"{LESSON}.md", f"{LESSON}.ipynb")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), "-c", "user.name=test",
                           "-c", "user.email=test@example.com", *args],
                          capture_output=True, text=True)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout


@pytest.fixture
def clone(tmp_path: Path) -> tuple[Path, Path]:
    """(upstream, learner's clone with the filter configured)."""
    upstream = tmp_path / "upstream"
    for name in TRACKED:
        (upstream / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, upstream / name)
    git(upstream, "init", "-q", "-b", "main")
    git(upstream, "add", ".")
    git(upstream, "commit", "-q", "-m", "course")
    learner = tmp_path / "learner"
    subprocess.run(["git", "clone", "-q", str(upstream), str(learner)], check=True)
    assert dev.configure_git_filter(learner, Path(sys.executable))
    return upstream, learner


@pytest.fixture
def executed(run_once) -> nbformat.NotebookNode:
    """The lesson as a kernel leaves it: outputs, execution counts, language_info (the test
    run's executed copy, tests/executed.py, so the lesson is not run again here)."""
    run = run_once(ROOT / f"{LESSON}.ipynb")
    assert not run.problems, run.failure()
    return read_ipynb(run.copy)


def save(learner: Path, nb: nbformat.NotebookNode, tmp_path: Path) -> Path:
    """Save ``nb`` as the lesson through a Jupyter server, as JupyterLab saves."""
    server = start([sys.executable, "-m", "jupyter", "server"], learner,
                   isolated_env(tmp_path / "jupyter"), tmp_path / "server.log")
    try:
        server.api("PUT", f"contents/{LESSON}.ipynb",
                   {"type": "notebook", "format": "json", "content": nb})
    finally:
        server.stop()
    return learner / f"{LESSON}.ipynb"


def test_running_and_saving_a_lesson_leaves_git_clean(clone, executed, tmp_path):
    _, learner = clone
    md_before = (learner / f"{LESSON}.md").read_bytes()
    saved = save(learner, executed, tmp_path)
    cells = nbformat.read(saved, as_version=4).cells
    assert any(cell.get("outputs") for cell in cells if cell.cell_type == "code")
    assert (learner / f"{LESSON}.md").read_bytes() == md_before  # the reviewed source untouched
    assert git(learner, "status", "--porcelain") == ""
    assert git(learner, "diff") == ""


def test_an_edited_lesson_shows_as_modified(clone, executed, tmp_path):
    _, learner = clone
    edited = copy.deepcopy(executed)
    edited.cells[-1].source += "\n\nThe learner's own note."
    save(learner, edited, tmp_path)
    assert git(learner, "status", "--porcelain") == f" M {LESSON}.ipynb\n"


def test_pull_brings_new_lessons_over_a_run_lesson(clone, executed, tmp_path):
    upstream, learner = clone
    save(learner, executed, tmp_path)
    nb = read_markdown(upstream / f"{LESSON}.md")
    nb.cells[-1].source += "\n\nA sentence added upstream."
    write_pair(nb, upstream / f"{LESSON}.md")
    shutil.copy2(upstream / f"{LESSON}.md", upstream / "notebooks/foundations/new-lesson.md")
    git(upstream, "add", ".")
    git(upstream, "commit", "-q", "-m", "a new lesson and an edit")
    git(learner, "pull", "-q", "--no-rebase")
    assert "A sentence added upstream." in (learner / f"{LESSON}.ipynb").read_text()
    assert (learner / "notebooks/foundations/new-lesson.md").exists()
    assert git(learner, "status", "--porcelain") == ""


def test_the_filter_keeps_every_committed_twin_byte_for_byte(tmp_path):
    """The clean filter leaves a committed .ipynb (no outputs, stable ids) unchanged, so `git
    add` never rewrites what `course sync` wrote."""
    twins = [path for folder in dev.NOTEBOOK_DIRS for path in (ROOT / folder).rglob("*.ipynb")
             if ".ipynb_checkpoints" not in path.parts]
    copies = [tmp_path / f"{n}.ipynb" for n in range(len(twins))]
    for twin, copied in zip(twins, copies, strict=True):
        shutil.copy2(twin, copied)
    subprocess.run([sys.executable, *dev.NBSTRIPOUT, *map(str, copies)], check=True)
    changed = [str(twin.relative_to(ROOT)) for twin, copied in zip(twins, copies, strict=True)
               if copied.read_bytes() != twin.read_bytes()]
    assert twins and not changed, f"nbstripout changes {changed}"


def test_no_filter_outside_a_git_clone(tmp_path):
    assert dev.configure_git_filter(tmp_path, Path(sys.executable)) is False
