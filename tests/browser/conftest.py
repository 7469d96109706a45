"""A learner's desk for the browser tests: one JupyterLab server and one headless Chromium.

The server runs from the project's own environment on a free loopback port, with throwaway
Jupyter config, data, runtime, settings and workspace folders, and serves a temporary copy of
the repository root as a learner sees it (README, ``docs/``, ``notebooks/``, ``exercises/``,
``solutions/``, plus the fixtures here) as its root, the way ``python3 dev.py lab`` serves the
repository, so nothing a run writes reaches the working tree.
Both are shut down by finalizers even when a test fails.
"""

from __future__ import annotations

import json
import shutil
import sys
import urllib.error
from pathlib import Path

import pytest
from jupyter_servers import Server, ServerError, isolated_env, start
from unavailable import unavailable as unavailable_for

from course.paths import EXERCISES, NOTEBOOKS, ROOT, SOLUTIONS

collect_ignore_glob = ["fixtures/*"]  # notebooks the browser tests open, not tests themselves

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
# Written as the user's JupyterLab settings: no news toast, no autosave (the tests save
# explicitly, into the temporary copy), every cell in the DOM, kernels stop with their tab.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {
        "windowingMode": "none", "kernelShutdown": True, "autoStartDefaultKernel": True},
}
SERVER_START_TIMEOUT = 90.0


def unavailable(reason: str) -> None:
    unavailable_for(reason, "the browser tests")


def _write_settings(folder: Path) -> None:
    for plugin, values in LAB_SETTINGS.items():
        path = folder / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Server:
    home = tmp_path_factory.mktemp("jupyterlab")
    root = home / "root"
    skip = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
    for folder in (NOTEBOOKS, EXERCISES, SOLUTIONS, ROOT / "docs"):  # the repository root
        if folder.exists():
            shutil.copytree(folder, root / folder.name, ignore=skip)
    shutil.copy(ROOT / "README.md", root / "README.md")
    shutil.copytree(FIXTURES, root / "fixtures", ignore=skip)
    settings, workspaces = home / "settings", home / "workspaces"
    workspaces.mkdir()
    _write_settings(settings)
    env = {**isolated_env(home), "JUPYTERLAB_SETTINGS_DIR": str(settings),
           "JUPYTERLAB_WORKSPACES_DIR": str(workspaces)}
    command = [sys.executable, "-m", "jupyter", "lab", "--LabApp.news_url=None",
               f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={workspaces}"]
    try:
        server = start(command, root, env, home / "jupyterlab.log", SERVER_START_TIMEOUT)
    except ServerError as error:
        pytest.fail(str(error))
    request.addfinalizer(server.stop)
    return server


def end_sessions(server: Server) -> None:
    """Shut down every kernel session, so the next notebook starts with a fresh kernel."""
    for session in server.api("GET", "sessions"):
        try:
            server.api("DELETE", f"sessions/{session['id']}")
        except urllib.error.HTTPError as error:
            if error.code != 404:  # 404: it ended by itself (its tab was closed) meanwhile
                raise


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    """One headless Chromium (Debian's, not Playwright's download) with a fresh profile."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        unavailable(f"playwright is not importable ({error}); install the test extra")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        unavailable("Chromium is not installed (apt-get install chromium)")
    playwright = sync_playwright().start()
    request.addfinalizer(playwright.stop)
    context = playwright.chromium.launch_persistent_context(
        tmp_path_factory.mktemp("chromium-profile"),
        executable_path=chromium,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1280, "height": 900},
    )
    request.addfinalizer(context.close)
    context.set_default_timeout(60_000)
    return context


@pytest.fixture
def open_notebook(browser, lab: Server):
    """Open a notebook (path relative to the served root) in a new page of the browser."""
    from lab_page import LabPage  # imports playwright, which ``browser`` has checked for

    pages: list[LabPage] = []

    def open_(path: str, kernel: bool = True) -> LabPage:
        page = LabPage.open(browser.new_page(), lab.url, lab.token, path, lab.root, kernel)
        pages.append(page)
        return page

    yield open_
    for page in pages:
        if not page.page.is_closed():
            page.page.close()
    end_sessions(lab)
