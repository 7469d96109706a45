"""Run one exercise of a submission in a process of its own, sandboxed when the machine allows.

Like an exam hall with a room per candidate, each with a desk, the exam paper and nothing else:
on Linux, bubblewrap (``bwrap``, Debian's package ``bubblewrap``) gives the grading process a
file system made of exactly what it needs, read-only (``/usr`` and the few files of ``/etc``
that loading libraries reads, the Python installation, and the course's own packages
``course``, ``patterns`` and ``simulations``), an empty private ``/tmp`` as its scratch space,
no network, its own process and IPC namespaces (every process in it dies with the grader), no
capabilities and no view of ``/proc``, the solutions, the other submissions or the grader.
The process runs :mod:`course.runner`, which reports through lines on its standard output
that carry a secret the grader made for this run; the limits (memory, CPU time, file size,
processes) are set by the runner before any submission code runs, and the grader here enforces
each cell's wall-clock timeout (each cell once, in order, and the whole job within their sum)
and caps how much output it reads.

Without bubblewrap (macOS, Windows, a container without user namespaces) the same process runs
unsandboxed: good enough for learners checking their own answers, refused for a class's batch
unless the instructor asks for it (``course check --batch DIR --no-sandbox``).
"""

from __future__ import annotations

import ast
import functools
import json
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import course

RUNNER = "from course.runner import main; main()"
OUTPUT_CAP = 1 << 20  # bytes of report read from one process; more is an attack
START_TIMEOUT_S = 30.0  # for the interpreter to start and read its job
MEMORY_BYTES = 4 << 30
FILE_BYTES = 64 << 20
PROCESSES = 64
NOBODY = 65534
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
                "/etc/fonts", "/etc/alternatives")
# The environment inside: no secrets of the grader's, one thread per numerical library.
ENVIRONMENT = {"HOME": "/tmp", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "MPLBACKEND": "Agg",
               "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "PYTHONDONTWRITEBYTECODE": "1"}


def code_roots() -> list[Path]:
    """The course's own packages, as the grader imports them."""
    top = Path(course.__file__).resolve().parent.parent
    return [top / name for name in ("course", "patterns", "simulations") if (top / name).is_dir()]


def python_roots() -> list[Path]:
    """The Python installation and its packages: the venv, the interpreter it was made from,
    and the folders on sys.path outside this repository (inside it, only the packages)."""
    installed = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(),
                 Path(sys.executable).resolve().parent}
    repository = Path(course.__file__).resolve().parent.parent
    roots = installed | {
        path for path in (Path(entry).resolve() for entry in sys.path if entry)
        if path.is_dir() and not path.is_relative_to(repository)}
    return sorted(r for r in roots if not r.is_relative_to("/usr")
                  and not any(r.is_relative_to(i) and r != i for i in installed))


def bwrap_command(argv: list[str]) -> list[str]:
    """``argv`` inside a bubblewrap sandbox made of read-only binds of what grading needs."""
    command = [shutil.which("bwrap") or "bwrap", "--die-with-parent", "--unshare-all",
               "--new-session", "--cap-drop", "ALL", "--tmpfs", "/", "--tmpfs", "/tmp",
               "--dev", "/dev"]  # first, so that binds below /tmp (a clone there) stay
    if os.geteuid() == 0:  # root: the sandbox runs as nobody in a user namespace of its own
        command += ["--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY),
                    "--disable-userns"]
    command += ["--ro-bind", "/usr", "/usr"]
    for needed in SYSTEM_FILES:  # of /etc, only what loading libraries and fonts reads
        if Path(needed).exists():
            command += ["--ro-bind", needed, needed]
    for link in ("bin", "lib", "lib64", "sbin"):
        target = Path("/", link)
        if target.is_symlink():
            command += ["--symlink", os.readlink(target), str(target)]
        elif target.is_dir():
            command += ["--ro-bind", str(target), str(target)]
    for root in python_roots() + code_roots():
        command += ["--ro-bind", str(root), str(root)]
    command += ["--remount-ro", "/", "--chdir", "/tmp", "--clearenv"]
    for key, value in ENVIRONMENT.items():
        command += ["--setenv", key, value]
    return command + ["--", *argv]


@functools.cache
def unavailable() -> str:
    """Why no sandbox can be made here ("" when one can): tried once per process."""
    if sys.platform != "linux":
        return f"sandboxing needs Linux and bubblewrap; this is {sys.platform}"
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    try:
        done = subprocess.run(bwrap_command([sys.executable, "-I", "-c", "pass"]),
                              capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bubblewrap did not start: {error}"
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no reason"]
        return f"bubblewrap could not make a sandbox here ({why[0]}; are user namespaces " \
               "allowed?)"
    return ""


def run_job(cells: list[dict], *, timeout: float, sandboxed: bool) -> dict[int, dict]:
    """Run ``cells`` (dicts with index, kind and source) in one runner process; returns each
    cell's outcome by index (status ok | error | timeout | crashed | tampered | not-run)."""
    secret = secrets.token_hex(16)
    argv = [sys.executable, "-I", "-c", RUNNER, grading_label()]
    command = bwrap_command(argv) if sandboxed else argv
    env = ENVIRONMENT if sandboxed else {
        **{k: v for k, v in os.environ.items() if not k.startswith("JPY_")}, **ENVIRONMENT,
        "HOME": os.environ.get("HOME", "/tmp"), "PATH": os.environ.get("PATH", "")}
    job = {"secret": secret, "cells": cells, "limits": {
        "memory_bytes": MEMORY_BYTES, "file_bytes": FILE_BYTES, "processes": PROCESSES,
        "cpu_s": int(timeout * (len(cells) + 1)) + 30}}  # CPU time grows with the cells
    scratch = None if sandboxed else tempfile.mkdtemp(prefix="course-grade-")
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, env=env, cwd=scratch,
                               start_new_session=True)
    try:
        return _follow(process, json.dumps(job).encode(), secret.encode(), cells, timeout)
    finally:
        _stop(process)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def grading_label() -> str:
    """The runner's argument that says which grader started it (``ps`` shows it)."""
    return f"course-grading-for-{os.getpid()}"


def _follow(process: subprocess.Popen, job: bytes, secret: bytes, cells: list[dict],
            timeout: float) -> dict[int, dict]:
    """Feed the job, then read the report line by line, each cell within its timeout."""
    outcomes: dict[int, dict] = {}
    expected = {cell["index"] for cell in cells}
    try:
        process.stdin.write(job)
        process.stdin.close()
    except OSError:
        pass  # the process died at once: reported below as a crash
    # Each cell once, in order, within its timeout; and the whole job within the sum of them.
    end = time.monotonic() + START_TIMEOUT_S + timeout * len(cells)
    running, deadline, last = None, time.monotonic() + START_TIMEOUT_S, -1
    buffer, read, done = b"", 0, False
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while not done:
            left = min(deadline, end) - time.monotonic()
            if left <= 0 or not selector.select(left):
                if running is not None:
                    outcomes[running] = {"status": "timeout"}
                break
            chunk = os.read(process.stdout.fileno(), 65536)
            read += len(chunk)
            if not chunk or read > OUTPUT_CAP:
                if running is not None:
                    outcomes[running] = {"status": "crashed", "ename": (
                        "output" if chunk else "")}
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                message = _message(line, secret)
                if message is None:
                    continue
                if message.get("done"):
                    done = True
                elif "start" in message:
                    if (type(message["start"]) is int and message["start"] in expected
                            and message["start"] > last):
                        running = last = message["start"]
                        deadline = time.monotonic() + timeout
                elif (type(message.get("index")) is int and message["index"] in expected
                      and message["index"] not in outcomes):
                    outcomes[message["index"]] = message
                    if message["index"] == running:
                        running, deadline = None, time.monotonic() + timeout
    stopped = "timeout" if any(o.get("status") == "timeout" for o in outcomes.values()) else ""
    for cell in cells:
        outcomes.setdefault(cell["index"], {"status": "not-run", "evalue": (
            "the exercise's process was stopped after a timeout" if stopped else
            "the exercise's process ended before this cell")})
    return outcomes


def _message(line: bytes, secret: bytes) -> dict | None:
    """A report line of the runner's (it starts with the secret), else None."""
    head, _, body = line.partition(b" ")
    if not secrets.compare_digest(head, secret):
        return None
    try:
        message = ast.literal_eval(body.decode("utf-8"))
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError):
        return None
    return message if isinstance(message, dict) else None


def _stop(process: subprocess.Popen) -> None:
    """End the process and everything it started (its session; with bwrap, its namespace)."""
    try:
        if hasattr(os, "killpg"):
            os.killpg(process.pid, signal.SIGKILL)
        else:  # Windows: no process groups
            process.kill()
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()
    for stream in (process.stdin, process.stdout):
        if stream and not stream.closed:
            stream.close()
