"""A class on a real JupyterHub for one test: local users, the hub, their servers and kernels.

Like a school's caretaker who opens a classroom for an exam, hands out the named desks and
afterwards clears them and locks up, these helpers create real local accounts (``useradd``),
start JupyterHub from the shipped ``class/jupyterhub_config.py`` on free loopback ports, spawn
each account's server through the hub's REST API, run code in a kernel of that server (so it
runs as that account, in the environment the hub gives it), and undo all of it even when a step
fails: the caller registers every undo with a finalizer.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import os
import pwd
import re
import secrets
import shlex
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_servers import free_port

from course.paths import ROOT

HUB_CONFIG = ROOT / "class" / "jupyterhub_config.py"
PROXY = ROOT / ".npm" / "node_modules" / ".bin" / "configurable-http-proxy"
BIN = Path(sys.executable).parent
SERVICE = "class-test"
# The test's service may manage users and their servers and reach those servers.
SERVICE_SCOPES = ["admin:users", "admin:servers", "access:servers", "tokens"]
START_TIMEOUT = 60.0


class HubError(RuntimeError):
    """The hub or a server did not do what was asked; the message ends with the hub's log."""


def pull_link(hub_url: str, repo: str, branch: str, urlpath: str) -> str:
    """The nbgitpuller link a student clicks: log in, clone or update ``repo`` at ``branch`` into
    the home folder (named after the repository), then open ``urlpath`` (e.g.
    ``lab/tree/course/notebooks/index.ipynb``)."""
    query = urllib.parse.urlencode({"repo": repo, "branch": branch, "urlpath": urlpath})
    return f"{hub_url.rstrip('/')}/hub/user-redirect/git-pull?{query}"


def create_user(name: str, homes: Path) -> str:
    """A local account with its home under ``homes``; returns its (random) password."""
    subprocess.run(["useradd", "--create-home", "--base-dir", str(homes), "--shell", "/bin/bash",
                    "--user-group", name], check=True, capture_output=True, text=True)
    password = secrets.token_urlsafe(12)
    subprocess.run(["chpasswd"], input=f"{name}:{password}\n", check=True,
                   capture_output=True, text=True)
    return password


def remove_user(name: str) -> None:
    """End what still runs as ``name`` (its server's kernels, once the hub is gone), then delete
    the account with its home."""
    try:
        uid = pwd.getpwnam(name).pw_uid
    except KeyError:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = [int(p.name) for p in Path("/proc").iterdir()
                if p.name.isdigit() and _owner(p) == uid]
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if not pids:
            break
        time.sleep(1)
    subprocess.run(["userdel", "--remove", name], capture_output=True)


def _owner(proc: Path) -> int | None:
    try:
        return proc.stat().st_uid
    except OSError:
        return None


@dataclass
class Hub:
    """A running JupyterHub: its public URL (the proxy), its API token and its process."""

    url: str
    token: str
    process: subprocess.Popen
    log: Path
    kernels: dict[str, str] = field(default_factory=dict)  # user -> the kernel run_as uses

    def request(self, method: str, path: str, body: object = None, token: str = "",
                timeout: float = 60) -> tuple[int, bytes, str]:
        """``path`` under the public URL; returns the status, the body and the final URL."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, data=data,
            headers={"Authorization": f"token {token or self.token}",
                     "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read(), response.url
        except urllib.error.HTTPError as error:
            return error.code, error.read(), error.url

    def api(self, method: str, path: str, body: object = None, *, user: str = "",
            token: str = "") -> object:
        """The hub's REST API (``/hub/api/<path>``), or a user's server's (``user``)."""
        prefix = f"/user/{user}/api/" if user else "/hub/api/"
        status, answer, _ = self.request(method, prefix + path, body, token)
        if status >= 400:
            raise HubError(f"{method} {prefix}{path}: HTTP {status}: {answer[:500]!r}\n"
                           f"{self.log_tail()}")
        return json.loads(answer) if answer else None

    def spawn(self, *names: str) -> None:
        """Start these users' servers and wait until the hub says each is ready."""
        for name in names:
            self.api("POST", f"users/{name}/server")
        deadline = time.monotonic() + START_TIMEOUT
        for name in names:
            while not (server := self.api("GET", f"users/{name}")["servers"].get("", {})).get(
                    "ready"):
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise HubError(f"{name}'s server is not ready after {START_TIMEOUT:.0f} s: "
                                   f"{server}\n{self.log_tail()}")
                time.sleep(0.5)

    def run_as(self, name: str, code: str, timeout: float = 300) -> str:
        """Run ``code`` in a kernel of ``name``'s server (so as ``name``; one kernel per user,
        started on first use) and return what it printed; HubError when it raised."""
        if name not in self.kernels:
            self.kernels[name] = self.api("POST", "kernels", {"name": "python3"}, user=name)["id"]
        return asyncio.run(self._execute(name, self.kernels[name], code, timeout))

    async def _execute(self, name: str, kernel: str, code: str, timeout: float) -> str:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        url = self.url.replace("http", "ws", 1) + f"/user/{name}/api/kernels/{kernel}/channels"
        connection = await websocket_connect(HTTPRequest(
            url, headers={"Authorization": f"token {self.token}"}))
        msg_id = uuid.uuid4().hex
        connection.write_message(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": name,
                       "session": uuid.uuid4().hex, "date": "", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}))
        printed, error = [], None
        deadline = time.monotonic() + timeout
        try:
            while True:
                raw = await asyncio.wait_for(connection.read_message(),
                                             max(1.0, deadline - time.monotonic()))
                if raw is None:
                    raise HubError(f"{name}'s kernel closed its channels\n{self.log_tail()}")
                message = json.loads(raw)
                if message.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = message["msg_type"], message["content"]
                if kind == "stream":
                    printed.append(content["text"])
                elif kind == "error":
                    error = f"{content['ename']}: {content['evalue']}"
                elif kind == "status" and content["execution_state"] == "idle":
                    break
        except TimeoutError:
            raise HubError(f"{name}'s kernel ran past {timeout:.0f} s; it printed:\n"
                           + "".join(printed)) from None
        finally:
            connection.close()
        if error:
            raise HubError(f"{name}'s code raised {error}; it printed:\n" + "".join(printed))
        return "".join(printed)

    def browse_as(self, name: str, password: str, link: str) -> tuple[int, bytes, str]:
        """Open ``link`` as a person in a browser would: the hub's login form (PAM, with the
        account's password) and every redirect after it, cookies kept. Returns the status, the
        page and the URL it ended at."""
        cookies = http.cookiejar.CookieJar()
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))
        with browser.open(link, timeout=60) as login:  # no session yet: the login page
            form = login.read().decode()
            target = login.url
        xsrf = re.search(r'name="_xsrf"\s+value="([^"]+)"', form)
        data = urllib.parse.urlencode({"username": name, "password": password,
                                       **({"_xsrf": xsrf.group(1)} if xsrf else {})}).encode()
        try:
            with browser.open(urllib.request.Request(target, data=data), timeout=60) as page:
                return page.status, page.read(), page.url
        except urllib.error.HTTPError as error:
            return error.code, error.read(), error.url

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """End the hub: it stops the servers it spawned and its proxy on the way out."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # a proxy left behind
        except ProcessLookupError:
            pass


def _blocked_ancestor(path: Path) -> Path | None:
    """The first folder above ``path`` that other accounts may not enter, if any."""
    for folder in reversed(path.parents):
        if not folder.stat().st_mode & stat.S_IXOTH:
            return folder
    return None


def _where_users_see_python(command: list[str], workdir: Path) -> list[str]:
    """``command``, run so that the hub's users can read the interpreter it runs from.

    A Python installed under a private folder (pyenv's under /root, as here) runs for another
    account with the system's libpython and standard library instead, a different Python. The
    hub then runs in a private mount namespace (``unshare``, which dies with it) where that
    folder is an empty one others may enter, holding only the way to the interpreter."""
    base = Path(sys.base_prefix).resolve()
    blocked = _blocked_ancestor(base)
    if blocked is None:
        return command
    inside = blocked / base.relative_to(blocked).parts[0]  # e.g. /root/.pyenv, itself readable
    view = workdir / "python-view"
    view.mkdir()
    script = " && ".join(f"mount {args}" for args in (
        f"--bind {shlex.quote(str(inside))} {shlex.quote(str(view))}",
        f"-t tmpfs -o mode=0755 tmpfs {shlex.quote(str(blocked))}",
    )) + f" && mkdir {shlex.quote(str(inside))} && mount --bind {shlex.quote(str(view))} " \
        f"{shlex.quote(str(inside))} && exec \"$@\""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
            *command]


def start_hub(workdir: Path, instructors: list[str], students: list[str],
              exchange: Path) -> Hub:
    """JupyterHub from ``class/jupyterhub_config.py`` with its state in ``workdir``, on free
    loopback ports, with a service token for the test."""
    token = secrets.token_hex(32)
    public, hub, proxy_api = free_port(), free_port(), free_port()
    config = workdir / "jupyterhub_config.py"
    config.write_text(f"""\
c = get_config()
load_subconfig({str(HUB_CONFIG)!r})
c.JupyterHub.bind_url = "http://127.0.0.1:{public}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api}"
c.ConfigurableHTTPProxy.pid_file = {str(workdir / 'proxy.pid')!r}
c.JupyterHub.db_url = "sqlite:///{workdir / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = {str(workdir / 'cookie_secret')!r}
c.JupyterHub.pid_file = {str(workdir / 'jupyterhub.pid')!r}
c.JupyterHub.services = [{{"name": {SERVICE!r}, "api_token": {token!r}}}]
c.JupyterHub.load_roles = [{{"name": {SERVICE!r}, "scopes": {SERVICE_SCOPES!r},
                             "services": [{SERVICE!r}]}}]
""", encoding="utf-8")
    env = {**os.environ, "COURSE_INSTRUCTORS": " ".join(instructors),
           "COURSE_STUDENTS": " ".join(students), "NBGRADER_EXCHANGE": str(exchange),
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    log = workdir / "jupyterhub.log"
    with log.open("wb") as out:
        command = [str(BIN / "jupyterhub"), "-f", str(config)]
        process = subprocess.Popen(_where_users_see_python(command, workdir), cwd=workdir,
                                   env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    running = Hub(f"http://127.0.0.1:{public}", token, process, log)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise HubError(f"JupyterHub exited with code {process.returncode}:\n"
                           f"{running.log_tail()}")
        try:
            running.api("GET", "")
            return running
        except (OSError, HubError):
            if time.monotonic() > deadline:
                running.stop()
                raise HubError(f"JupyterHub did not answer within {START_TIMEOUT:.0f} s:\n"
                               f"{running.log_tail()}") from None
            time.sleep(0.5)
