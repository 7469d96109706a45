"""A learner's desk for the browser tests: one JupyterLab server and one headless Chromium.

The server runs from the project's own environment on a free loopback port, with throwaway
Jupyter config, data, runtime, settings and workspace folders, and serves a temporary copy of
``notebooks/`` and ``exercises/`` (plus the fixtures here), so nothing a run writes reaches the
working tree.
Both are shut down by finalizers even when a test fails.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from course.paths import EXERCISES, NOTEBOOKS

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
    """Skip on a developer machine; fail in CI, where the browser tests must run."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI is set, so the browser tests may not be skipped)")
    pytest.skip(reason)


@dataclass
class Lab:
    """A running JupyterLab server serving ``root`` (a temporary copy of the course)."""

    url: str
    token: str
    root: Path
    process: subprocess.Popen
    log: Path

    def api(self, method: str, path: str) -> object:
        request = urllib.request.Request(
            f"{self.url}/api/{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def end_sessions(self) -> None:
        """Shut down every kernel session, so the next notebook starts with a fresh kernel."""
        for session in self.api("GET", "sessions"):
            try:
                self.api("DELETE", f"sessions/{session['id']}")
            except urllib.error.HTTPError as error:
                if error.code != 404:  # 404: it ended by itself (its tab was closed) meanwhile
                    raise

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Ask the server to shut down (it stops its kernels), then end its process group."""
        if self.process.poll() is None:
            try:
                self.api("POST", "shutdown")
                self.process.wait(timeout=20)
            except (OSError, urllib.error.URLError, subprocess.TimeoutExpired):
                pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                continue


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_settings(folder: Path) -> None:
    for plugin, values in LAB_SETTINGS.items():
        path = folder / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Lab:
    home = tmp_path_factory.mktemp("jupyterlab")
    root = home / "root"
    skip = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
    for folder in (NOTEBOOKS, EXERCISES):  # what a learner opens; lessons link to exercises
        if folder.exists():
            shutil.copytree(folder, root / folder.name, ignore=skip)
    shutil.copytree(FIXTURES, root / "fixtures", ignore=skip)
    dirs = {name: home / name for name in ("config", "data", "runtime", "ipython", "settings",
                                           "workspaces")}
    for folder in dirs.values():
        folder.mkdir()
    _write_settings(dirs["settings"])
    inherited = {key: value for key, value in os.environ.items()
                 if key not in ("JUPYTER_PATH", "JUPYTER_CONFIG_PATH")}  # the user's extra dirs
    env = {
        **inherited,
        "JUPYTER_CONFIG_DIR": str(dirs["config"]),
        "JUPYTER_DATA_DIR": str(dirs["data"]),
        "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
        "IPYTHONDIR": str(dirs["ipython"]),
        "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
        "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]),
    }
    token, port = secrets.token_hex(16), _free_port()
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser",
        f"--ServerApp.token={token}", f"--port={port}", "--ip=127.0.0.1",
        f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
        "--LabApp.news_url=None",
        f"--LabApp.user_settings_dir={dirs['settings']}",
        f"--LabApp.workspaces_dir={dirs['workspaces']}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    log = home / "jupyterlab.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    server = Lab(f"http://127.0.0.1:{port}", token, root, process, log)
    request.addfinalizer(server.stop)
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        if process.poll() is not None:
            pytest.fail(f"JupyterLab exited with code {process.returncode}:\n{server.log_tail()}")
        try:
            server.api("GET", "status")
            return server
        except (OSError, urllib.error.URLError):
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer /api/status within "
                            f"{SERVER_START_TIMEOUT:.0f} s:\n{server.log_tail()}")
            time.sleep(0.5)


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
def open_notebook(browser, lab: Lab):
    """Open a notebook (path relative to the served root) in a new page of the browser."""
    from lab_page import LabPage  # imports playwright, which ``browser`` has checked for

    pages: list[LabPage] = []

    def open_(path: str) -> LabPage:
        page = LabPage.open(browser.new_page(), lab.url, lab.token, path, lab.root)
        pages.append(page)
        return page

    yield open_
    for page in pages:
        page.page.close()
    lab.end_sessions()
