"""The learner's file browser: one file per lesson.

Like a shop window that shows the finished cake and keeps the recipe card in the kitchen, the
file browser lists each paired notebook once, as its ``.ipynb``; the ``.md`` twin (the authors'
reviewed source) stays on disk and opens by its path, but is not listed beside it. A Markdown
file with no ``.ipynb`` beside it (a README, a guide) is listed as usual.

Running a lesson should also leave ``git status`` clean. The git filter that ``dev.py lab``
configures strips outputs, but git reports a tracked file whose size changed as modified until
it is staged again; so after a save whose stripped content equals what git holds, the notebook
is staged again (the index gains nothing new) and ``git status`` stays clean. A real edit is
left alone, and so is any notebook outside a git clone.

This module is a Jupyter server extension, enabled in every environment where the course is
installed: the package installs ``etc/jupyter/jupyter_server_config.d/course.json``. On load it
gives the server's contents manager (Jupytext's, or Jupyter's own) the listing filter below.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path


def without_twins(entries: list[dict]) -> list[dict]:
    """The directory listing less every ``x.md`` that has an ``x.ipynb`` beside it."""
    names = {entry["name"] for entry in entries}
    return [entry for entry in entries
            if not (entry["name"].endswith(".md") and f"{entry['name'][:-3]}.ipynb" in names)]


def restage_if_unchanged(notebook: Path) -> bool:
    """Stage ``notebook`` again when git's clean filter makes it equal to the index; True if
    it did. `git diff --exit-code` compares the filtered content (``--quiet`` would stop at the
    changed size)."""
    def git(*args: str) -> int:
        try:
            return subprocess.run(["git", "-C", str(notebook.parent), *args],
                                  capture_output=True).returncode
        except OSError:  # no git on this machine
            return 1

    if git("ls-files", "--error-unmatch", "--", notebook.name) != 0:
        return False
    if git("diff", "--exit-code", "--", notebook.name) != 0:
        return False
    return git("add", "--", notebook.name) == 0


class OneFilePerLesson:
    """Mixed into an asynchronous contents manager: directory listings pass `without_twins`;
    a saved notebook is restaged when its stripped content is unchanged."""

    async def save(self, model, path=""):
        saved = await super().save(model, path)
        if path.endswith(".ipynb"):
            restage_if_unchanged(Path(self._get_os_path(path)))
        return saved

    async def get(self, path, content=True, type=None, format=None, **kwargs):  # noqa: A002
        model = await super().get(path, content=content, type=type, format=format, **kwargs)
        if model["type"] == "directory" and model.get("content") is not None:
            model["content"] = without_twins(model["content"])
        return model


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": "course.lab"}]


def _load_jupyter_server_extension(serverapp) -> None:
    """Swap in a contents manager that lists each lesson once (as Jupytext swaps in its own)."""
    base = serverapp.contents_manager_class
    if issubclass(base, OneFilePerLesson):
        return
    if not asyncio.iscoroutinefunction(base.get):
        serverapp.log.warning(f"course.lab: {base.__name__} is synchronous; lessons are listed "
                              "with their .md twins")
        return
    serverapp.contents_manager_class = type(base.__name__, (OneFilePerLesson, base), {})
    manager = serverapp.contents_manager_class(parent=serverapp, log=serverapp.log)
    serverapp.contents_manager = manager
    serverapp.session_manager.contents_manager = manager
    serverapp.web_app.settings["contents_manager"] = manager
    serverapp.log.info("course.lab: the file browser lists each lesson once, as its .ipynb")
