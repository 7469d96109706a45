"""Binder: environment.yml matches pyproject's runtime dependencies; repo2docker picks it up."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from course.paths import ROOT

BINDER_FILES = ("environment.yml", "postBuild", "pyproject.toml")


def normalise(requirement: str) -> str:
    name = re.match(r"[A-Za-z0-9._-]+", requirement.strip()).group(0)
    return re.sub(r"[-_.]+", "-", name).lower()


def test_environment_names_the_same_packages_as_pyproject():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    runtime = {normalise(r) for r in pyproject["project"]["dependencies"]}
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert environment["channels"] == ["conda-forge"]
    conda = [d for d in environment["dependencies"] if isinstance(d, str)]
    pip = [r for d in environment["dependencies"] if isinstance(d, dict) for r in d.get("pip", [])]
    assert "python=3.11" in conda
    named = {normalise(r) for r in conda + pip} - {"python", "pip"}
    assert named == runtime


def test_postbuild_is_strict_bash_that_installs_the_course():
    lines = (ROOT / "postBuild").read_text().splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert next(line for line in lines[1:] if not line.startswith("#")) == "set -euo pipefail"
    assert any("pip install --no-deps -e ." in line for line in lines)
    assert (ROOT / "postBuild").stat().st_mode & 0o111


def test_repo2docker_uses_environment_yml_and_postbuild(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in BINDER_FILES:
        shutil.copy2(ROOT / name, repo / name)
    repo2docker = Path(sys.executable).parent / "repo2docker"
    result = subprocess.run([str(repo2docker), "--no-build", "--debug", str(repo)],
                            capture_output=True, text=True, timeout=300, check=True)
    dockerfile = result.stdout + result.stderr
    assert "src/environment.yml ${REPO_DIR}/environment.yml" in dockerfile
    assert '--file "environment.yml"' in dockerfile
    assert "RUN ./postBuild" in dockerfile
