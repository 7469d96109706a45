"""A class taught on a real JupyterHub: nbgrader's whole loop for one lesson, as its people.

JupyterHub (from ``class/jupyterhub_config.py``, with configurable-http-proxy from npm) runs on
loopback with three real local accounts: an instructor and two students. Each command runs in a
kernel of that person's own server, spawned through the hub's REST API, so it runs as that
account with the environment the hub gives it. The instructor lays out the lesson with
``course nbgrader-source``, generates and releases it to the exchange; each student fetches it,
answers (one right, one with a wrong and a missing answer) and submits; the instructor collects,
autogrades and writes feedback; then ``course check --batch`` grades the same two submissions
and must agree with nbgrader's scores, exercise by exercise. A student also pulls a git repository
in through an nbgitpuller link. The accounts with their homes, the hub, the servers and the
temporary folders are removed by finalizers, whatever fails.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import pwd
import secrets
import shutil
import subprocess
import tempfile
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from jupyterhub_class import PROXY, Hub, create_user, pull_link, remove_user, start_hub
from unavailable import unavailable as unavailable_for

from course import release
from course.notebook_files import read_markdown
from course.paths import SOLUTIONS

# One test, so that one hub serves both parts (pytest-xdist spreads tests of a module over the
# workers); nbgrader's commands alone take a minute or two.
pytestmark = pytest.mark.timeout(600)
LESSON = "resilience/circuit-breaker"
ASSIGNMENT = "circuit-breaker"
NOTEBOOK = f"{ASSIGNMENT}/{ASSIGNMENT}.ipynb"  # where fetch_assignment puts it, in the home
# The second student's answers that differ from the solution: Little's law inverted (a wrong
# value) and the last exercise left as released (the stub).
WRONG = {"circuit-breaker-ex3-answer": "tied_up = 120 / 0.5\nlargest_safe_timeout_s = 40 / 120",
         "circuit-breaker-ex4-answer": None}
# Run by the kernel of a person's server: each (folder, command, exit codes allowed) in turn,
# stopping at a failure; prints the account and the Python it ran as.
COMMANDS = """\
import getpass, os, platform, subprocess, time
print("user:", getpass.getuser(), "python:", platform.python_version())
for cwd, args, allowed in {steps!r}:
    os.makedirs(cwd, exist_ok=True)
    start = time.monotonic()
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    print("$", *args, "->", done.returncode, f"({{time.monotonic() - start:.1f}} s)")
    if done.returncode not in allowed:
        raise RuntimeError(done.stdout[-3000:] + done.stderr[-3000:])
"""


def unavailable(reason: str) -> None:
    """CI runs as root with the proxy installed, so there the hub test must run."""
    unavailable_for(reason, "the JupyterHub test")


def run(hub: Hub, user: str, *steps: tuple) -> str:
    """Run each ``(folder, command[, exit codes allowed])`` as ``user``."""
    printed = hub.run_as(user, COMMANDS.format(steps=[
        (cwd, args, list(allowed[0]) if allowed else [0]) for cwd, args, *allowed in steps]))
    # as that account, with the interpreter the tests run on (not the system's)
    assert printed.startswith(f"user: {user} python: {platform.python_version()}\n"), printed
    print(printed, end="")
    return printed


def hand_in(hub: Hub, student: str, answers: dict[str, str | None]) -> None:
    """A student fetches the assignment, answers it in the notebook and submits it."""
    run(hub, student, (".", ["nbgrader", "fetch_assignment", ASSIGNMENT]))
    answer(hub, student, answers)
    run(hub, student, (".", ["nbgrader", "submit", ASSIGNMENT]))


def solved_answers() -> dict[str, str]:
    """Each answer cell of the lesson as a learner who got it right types it."""
    return {release.nbgrader_of(cell)["grade_id"]: "\n".join(
                line for line in cell.source.split("\n")
                if not any(marker in line for marker in release.MARKERS))
            for cell in read_markdown(SOLUTIONS / f"{LESSON}.md").cells
            if release.is_answer(cell)}


def answer(hub: Hub, user: str, answers: dict[str, str | None]) -> None:
    """Write ``answers`` into the fetched notebook through the user's server (None: leave the
    cell as released)."""
    model = hub.api("GET", f"contents/{NOTEBOOK}", user=user)
    for cell in model["content"]["cells"]:
        text = answers.get(cell["metadata"].get("nbgrader", {}).get("grade_id"))
        if text is not None:
            cell["source"] = text
    hub.api("PUT", f"contents/{NOTEBOOK}", {"type": "notebook", "format": "json",
                                            "content": model["content"]}, user=user)


@pytest.fixture
def classroom(request: pytest.FixtureRequest) -> dict:
    """A hub with an instructor and two students, each with a running server."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        unavailable("creating local users for JupyterHub needs root")
    if shutil.which("useradd") is None:
        unavailable("useradd is not installed")
    if not PROXY.exists():
        unavailable(f"configurable-http-proxy is not installed in {PROXY.parents[2]} "
                    "(python3 dev.py test installs it)")
    workdir = Path(tempfile.mkdtemp(prefix="course-hub-"))  # outside pytest's root-only tmp
    request.addfinalizer(lambda: shutil.rmtree(workdir, ignore_errors=True))
    workdir.chmod(0o755)
    homes, exchange = workdir / "home", workdir / "exchange"
    homes.mkdir(mode=0o755)
    tag = secrets.token_hex(3)
    people = {"instructor": f"hub{tag}-ada", "right": f"hub{tag}-amy", "wrong": f"hub{tag}-bob"}
    passwords = {}
    for name in people.values():
        request.addfinalizer(lambda name=name: remove_user(name))
        passwords[name] = create_user(name, homes)
    hub = start_hub(workdir, [people["instructor"]], [people["right"], people["wrong"]],
                    exchange)
    request.addfinalizer(hub.stop)
    hub.spawn(*people.values())
    return {"hub": hub, "workdir": workdir, "homes": homes, "exchange": exchange,
            "passwords": passwords, **people}


def test_a_class_on_jupyterhub(classroom):
    """nbgrader's loop agrees with course check; then a student pulls the course in with
    nbgitpuller."""
    nbgrader_loop_agrees_with_course_check(classroom)
    nbgitpuller_link_pulls_a_repository_into_a_students_home(classroom)


def nbgrader_loop_agrees_with_course_check(classroom: dict) -> None:
    hub, teacher = classroom["hub"], classroom["instructor"]
    students = {classroom["right"]: solved_answers(),
                classroom["wrong"]: {**solved_answers(), **WRONG}}
    home = classroom["homes"] / teacher

    run(hub, teacher, (".", ["course", "nbgrader-source", "class", LESSON]),
        ("class", ["nbgrader", "generate_assignment", ASSIGNMENT]),
        ("class", ["nbgrader", "release_assignment", ASSIGNMENT]))
    outbound = classroom["exchange"] / "distributed-patterns" / "outbound" / ASSIGNMENT
    assert sorted(p.name for p in outbound.iterdir()) == [f"{ASSIGNMENT}.ipynb"]  # no .md

    with ThreadPoolExecutor(len(students)) as pool:  # the class works at the same time
        for done in [pool.submit(hand_in, hub, student, answers)
                     for student, answers in students.items()]:
            done.result()
    for student in students:
        assert (classroom["homes"] / student / NOTEBOOK).stat().st_uid == _uid(student)

    run(hub, teacher, ("class", ["nbgrader", "collect", ASSIGNMENT]),
        ("class", ["nbgrader", "autograde", ASSIGNMENT]),
        ("class", ["nbgrader", "generate_feedback", ASSIGNMENT]))
    for student in students:
        assert (home / "class" / "feedback" / student / ASSIGNMENT
                / f"{ASSIGNMENT}.html").is_file()
    nbgrader_points = _gradebook_points(home / "class" / "gradebook.db", students)

    # The same submissions, named by learner, through the course's own grader.
    copies = [("batch", ["cp", f"../class/submitted/{student}/{NOTEBOOK}", f"{student}.ipynb"])
              for student in students]
    run(hub, teacher, *copies, (".", ["course", "check", "--batch", "batch", "--csv",
                                      "grades.csv"], (0, 1)))  # 1: not all exercises passed
    course_points = {}
    for row in csv.DictReader(io.StringIO((home / "grades.csv").read_text(encoding="utf-8"))):
        course_points.setdefault(row["learner"], {})[row["exercise"]] = float(row["points"])
    assert course_points == nbgrader_points
    assert {student: sum(points.values()) for student, points in nbgrader_points.items()} == {
        classroom["right"]: 6, classroom["wrong"]: 4}


def nbgitpuller_link_pulls_a_repository_into_a_students_home(classroom: dict) -> None:
    hub, student = classroom["hub"], classroom["right"]
    repo = classroom["workdir"] / "course-repo"
    git = ["git", "-c", "user.name=Course", "-c", "user.email=course@example.invalid"]
    subprocess.run([*git, "init", "--quiet", "--initial-branch=main", str(repo)], check=True)
    (repo / "notebooks").mkdir()
    (repo / "notebooks" / "index.md").write_text("# The course\n", encoding="utf-8")
    subprocess.run([*git, "-C", str(repo), "add", "."], check=True)
    subprocess.run([*git, "-C", str(repo), "commit", "--quiet", "-m", "course"], check=True)
    subprocess.run(["chown", "-R", f"{student}:{student}", str(repo)], check=True)

    link = pull_link(hub.url, f"file://{repo}", "main", "lab/tree/course-repo/notebooks/index.md")
    status, page, landed = hub.browse_as(student, classroom["passwords"][student], link)
    assert status == 200, page[:500]
    assert urllib.parse.urlparse(landed).path == f"/user/{student}/git-pull", landed
    assert b"nbgitpuller" in page.lower()
    # What the page's script asks for next: the pull itself, reported as server-sent events.
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(landed).query))
    api = f"/user/{student}/git-pull/api?" + urllib.parse.urlencode(
        {"repo": query["repo"], "branch": query["branch"], "targetpath": "course-repo"})
    status, events, _ = hub.request("GET", api)
    phases = [json.loads(line[len("data: "):]).get("phase")
              for line in events.decode().splitlines() if line.startswith("data: ")]
    assert status == 200 and phases[-1] == "finished", events.decode()[-2000:]
    pulled = classroom["homes"] / student / "course-repo" / "notebooks" / "index.md"
    assert pulled.read_text(encoding="utf-8") == "# The course\n"
    assert pulled.stat().st_uid == _uid(student)


def _uid(user: str) -> int:
    return pwd.getpwnam(user).pw_uid


def _gradebook_points(database: Path, students) -> dict[str, dict[str, float]]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{database}") as gradebook:
        return {student: {grade.name: float(grade.score) for grade in
                          gradebook.find_submission_notebook(ASSIGNMENT, ASSIGNMENT,
                                                             student).grades}
                for student in students}
