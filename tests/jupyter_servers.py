"""A Jupyter server for one test session, started the way a learner's machine starts it.

Like a stage hand who opens the theatre, checks the lights answer and locks up afterwards,
``start`` runs ``jupyter lab`` (or ``jupyter server``) from a chosen environment on a free
loopback port with a random token, waits until ``/api/status`` answers, and hands back a
`Server` whose ``stop`` ends it and its kernels even when a test fails.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT = 90.0


class ServerError(RuntimeError):
    """The server exited or did not answer in time; the message ends with its log."""


@dataclass
class Server:
    """A running Jupyter server serving ``root``."""

    url: str
    token: str
    root: Path
    process: subprocess.Popen
    log: Path

    def api(self, method: str, path: str, body: object = None) -> object:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/api/{path}", method=method, data=data,
            headers={"Authorization": f"token {self.token}",
                     "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = response.read()
        return json.loads(answer) if answer else None

    def listing(self, folder: str) -> list[str]:
        """The names the file browser lists in ``folder`` (a path relative to the root)."""
        return sorted(entry["name"] for entry in self.api("GET", f"contents/{folder}")["content"])

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(command: list[str], root: Path, env: dict[str, str], log: Path,
          timeout: float = START_TIMEOUT) -> Server:
    """Run ``command`` (e.g. ``[python, "-m", "jupyter", "lab", ...options]``) serving ``root``
    and wait until it answers; `ServerError` when it exits or stays silent."""
    token, port = secrets.token_hex(16), free_port()
    command = [*command, "--no-browser", f"--ServerApp.token={token}", f"--port={port}",
               "--ip=127.0.0.1", f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", token, root, process, log)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise ServerError(f"Jupyter exited with code {process.returncode}:\n"
                              f"{server.log_tail()}")
        try:
            server.api("GET", "status")
            return server
        except (OSError, urllib.error.URLError):
            if time.monotonic() > deadline:
                server.stop()
                raise ServerError(f"Jupyter did not answer /api/status within {timeout:.0f} s:"
                                  f"\n{server.log_tail()}") from None
            time.sleep(0.5)


def isolated_env(home: Path) -> dict[str, str]:
    """The current environment with throwaway Jupyter config, data, runtime and IPython
    folders under ``home`` (the environment's own etc/jupyter still applies)."""
    inherited = {key: value for key, value in os.environ.items()
                 if key not in ("JUPYTER_PATH", "JUPYTER_CONFIG_PATH")}  # the user's extra dirs
    names = {"JUPYTER_CONFIG_DIR": "config", "JUPYTER_DATA_DIR": "data",
             "JUPYTER_RUNTIME_DIR": "runtime", "IPYTHONDIR": "ipython"}
    for name in names.values():
        (home / name).mkdir(parents=True, exist_ok=True)
    return {**inherited, **{key: str(home / name) for key, name in names.items()}}
