"""Binder and a hub, as they install the course: the pinned environment plus the course's wheel.

The environment is the one every notebook runs in during the tests (``binder`` in
tests/conftest.py, built as tests/binder_env.py describes). Here: its course comes from the
wheel, the file browser of a Jupyter server started there lists each lesson once, the wheel's
own templates serve `course new`, and the files Binder reads say what it should install.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from jupyter_servers import start

import dev
from course.paths import ROOT


def test_the_wheel_is_what_runs(binder):
    found = binder.run("-c", "import course, simulations; print(course.__file__)").stdout
    assert "site-packages" in found and str(ROOT) not in found


def test_file_browser_lists_each_lesson_once(binder, tmp_path):
    server = start([binder.python, "-m", "jupyter", "server"], binder.course, binder.env,
                   tmp_path / "server.log")
    try:
        lessons = server.listing("notebooks/resilience")
        root = server.listing("")
        index_md = server.api("GET", "contents/notebooks/index.md")
    finally:
        server.stop()
    assert "circuit-breaker.ipynb" in lessons and "circuit-breaker.md" not in lessons
    assert all(name.endswith(".ipynb") for name in lessons), lessons
    assert "README.md" in root  # a Markdown file with no twin is listed as usual
    assert index_md["name"] == "index.md"  # a hidden twin still opens by its path


def test_course_new_uses_the_templates_in_the_wheel(binder, tmp_path):
    (tmp_path / "notebooks").mkdir()
    script = ("import sys, pathlib; from course.scaffold import create_lesson; "
              "print(*create_lesson('resilience/toy-breaker', pathlib.Path(sys.argv[1])))")
    written = binder.run("-c", script, tmp_path, cwd=tmp_path).stdout.split()
    lesson = tmp_path / "notebooks" / "resilience" / "toy-breaker.md"
    assert str(lesson) in written and "status: stub" in lesson.read_text()


def test_pins_are_exact_and_cover_the_kernel_dependencies():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert environment["channels"] == ["conda-forge"]
    assert f"python={sys.version_info.major}.{sys.version_info.minor}" in environment[
        "dependencies"]
    pip = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    assert pip == dev.pins() and all("==" in pin for pin in pip)
    names = {pin.split("==")[0] for pin in pip}
    assert {"ipykernel", "jupyterlab", "pybreaker", "tenacity", "prometheus-client",
            "nbstripout"} <= names
    assert not {"pytest", "nbgrader", "playwright", "ruff"} & names  # no test tools on Binder


def test_postbuild_is_strict_bash_that_installs_the_course_as_a_wheel():
    lines = (ROOT / "postBuild").read_text().splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert next(line for line in lines[1:] if not line.startswith("#")) == "set -euo pipefail"
    assert "python -m pip install --no-deps ." in lines
    assert (ROOT / "postBuild").stat().st_mode & 0o111


def test_repo2docker_uses_environment_yml_apt_txt_and_postbuild(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("environment.yml", "apt.txt", "postBuild", "pyproject.toml"):
        shutil.copy2(ROOT / name, repo / name)
    repo2docker = Path(sys.executable).parent / "repo2docker"
    result = subprocess.run([str(repo2docker), "--no-build", "--debug", str(repo)],
                            capture_output=True, text=True, timeout=300, check=True)
    dockerfile = result.stdout + result.stderr
    assert "src/environment.yml ${REPO_DIR}/environment.yml" in dockerfile
    assert '--file "environment.yml"' in dockerfile
    assert "RUN ./postBuild" in dockerfile
    # The caching lessons' Redis server (simulations/redis_server.py finds it on the PATH).
    assert "apt-get install --yes --no-install-recommends redis-server" in dockerfile
