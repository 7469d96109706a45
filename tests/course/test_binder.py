"""Binder and a hub, as they install the course: the pinned environment plus the course's wheel.

One throwaway venv is built as Binder builds its image: exactly environment.yml's pins (no test
extra), then the course installed the way postBuild installs it (a wheel, not an editable
checkout). The lessons and exercises are copied beside it without the source packages, so every
import comes from the installed wheel. Every lesson and exercise notebook then runs top to
bottom there, the file browser of a Jupyter server started there lists each lesson once, and
the wheel's own templates serve `course new`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from jupyter_servers import isolated_env, start

import dev
from course.paths import ROOT

UV = Path(sys.executable).parent / "uv"  # installed into .venv by dev.py
PACKAGE_SOURCES = ("pyproject.toml", "README.md", "course", "simulations", "patterns",
                   "jupyter-config")
COPIED = ("notebooks", "exercises", "solutions")
NOTEBOOKS = sorted(str(path.relative_to(ROOT)) for folder in ("notebooks", "exercises")
                   for path in (ROOT / folder).rglob("*.ipynb")
                   if ".ipynb_checkpoints" not in path.parts)


def _copy(names: tuple[str, ...], target: Path) -> None:
    skip = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints", "*.egg-info", "build")
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=skip)
        elif source.exists():
            shutil.copy2(source, target / name)


def _run(command: list, **options) -> subprocess.CompletedProcess:
    done = subprocess.run([str(part) for part in command], capture_output=True, text=True,
                          **options)
    assert done.returncode == 0, f"{' '.join(map(str, command))} failed:\n{done.stderr[-3000:]}"
    return done


class Binder:
    """The built environment: its python, its environment variables, the course folder."""

    def __init__(self, home: Path) -> None:
        source, self.course, venv = home / "source", home / "course", home / "venv"
        _copy(PACKAGE_SOURCES, source)
        _run([UV, "build", "--wheel", "--out-dir", home / "dist", source])
        wheel = next((home / "dist").glob("*.whl"))
        (home / "pins.txt").write_text("\n".join(dev.pins()) + "\n")
        _run([UV, "venv", "--python", sys.executable, venv])
        self.python = venv / "bin" / "python"
        _run([UV, "pip", "install", "--python", self.python, "-r", home / "pins.txt"])
        _run([UV, "pip", "install", "--python", self.python, "--no-deps", wheel])
        _copy((*COPIED, "README.md"), self.course)
        self.env = {**isolated_env(home / "jupyter"),
                    "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
                    "VIRTUAL_ENV": str(venv)}
        self.env.pop("PYTHONPATH", None)

    def run(self, *args, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return _run([self.python, *args], cwd=cwd or self.course, env=self.env, timeout=600)


@pytest.fixture(scope="module")
def binder(tmp_path_factory: pytest.TempPathFactory) -> Binder:
    if not UV.exists():
        pytest.fail(f"{UV} is missing: set up the environment with `python3 dev.py test`")
    return Binder(tmp_path_factory.mktemp("binder"))


def test_the_wheel_is_what_runs(binder):
    found = binder.run("-c", "import course, simulations; print(course.__file__)").stdout
    assert "site-packages" in found and str(ROOT) not in found


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_notebook_runs_top_to_bottom_in_the_binder_environment(binder, notebook, tmp_path):
    """nbconvert runs every cell; a cell tagged raises-exception (an unanswered exercise) may
    fail, any other error fails the run."""
    binder.run("-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
               "--ExecutePreprocessor.timeout=120", f"--output-dir={tmp_path}",
               binder.course / notebook)
    assert (tmp_path / Path(notebook).name).exists()


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


def test_repo2docker_uses_environment_yml_and_postbuild(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("environment.yml", "postBuild", "pyproject.toml"):
        shutil.copy2(ROOT / name, repo / name)
    repo2docker = Path(sys.executable).parent / "repo2docker"
    result = subprocess.run([str(repo2docker), "--no-build", "--debug", str(repo)],
                            capture_output=True, text=True, timeout=300, check=True)
    dockerfile = result.stdout + result.stderr
    assert "src/environment.yml ${REPO_DIR}/environment.yml" in dockerfile
    assert '--file "environment.yml"' in dockerfile
    assert "RUN ./postBuild" in dockerfile
