"""The course as Binder and a hub install it: the pinned environment plus the course's wheel.

Like a show house furnished from the catalogue rather than from the builder's own workshop,
one throwaway venv is built as Binder builds its image: exactly environment.yml's pins (no test
extra), then the course installed the way postBuild installs it (a wheel, not an editable
checkout). The notebooks, exercises and solutions are copied beside it without the source
packages, so every import comes from the installed wheel. It is built once per test run, under a
lock, and shared by the pytest workers: every notebook runs there (tests/executed.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from filelock import FileLock
from jupyter_servers import isolated_env

import dev
from course.paths import ROOT

UV = Path(sys.executable).parent / "uv"  # installed into .venv by dev.py
PACKAGE_SOURCES = ("pyproject.toml", "README.md", "course", "simulations", "patterns",
                   "jupyter-config")
COPIED = ("notebooks", "exercises", "solutions", "README.md")
KERNEL = "binder-python"


class BinderError(RuntimeError):
    """A step of the build failed; the message names the command and ends with its stderr."""


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
    if done.returncode != 0:
        raise BinderError(f"{' '.join(map(str, command))} failed:\n{done.stderr[-3000:]}")
    return done


class Binder:
    """The built environment under ``home``: its python, its environment, the course folder."""

    def __init__(self, home: Path) -> None:
        self.home, self.course, self.venv = home, home / "course", home / "venv"
        self.kernels = home / "kernels"
        self.python = self.venv / ("Scripts" if os.name == "nt" else "bin") / (
            "python.exe" if os.name == "nt" else "python")
        self.env = {**isolated_env(home / "jupyter"), "VIRTUAL_ENV": str(self.venv),
                    "PATH": f"{self.python.parent}{os.pathsep}{os.environ['PATH']}"}
        self.env.pop("PYTHONPATH", None)

    def build(self) -> None:
        if not UV.exists():
            raise BinderError(f"{UV} is missing: set up the environment with "
                              "`python3 dev.py test`")
        source, dist = self.home / "source", self.home / "dist"
        _copy(PACKAGE_SOURCES, source)
        _run([UV, "build", "--wheel", "--out-dir", dist, source])
        wheel = next(dist.glob("*.whl"))
        (self.home / "pins.txt").write_text("\n".join(dev.pins()) + "\n")
        _run([UV, "venv", "--python", sys.executable, self.venv])
        _run([UV, "pip", "install", "--python", self.python, "-r", self.home / "pins.txt"])
        _run([UV, "pip", "install", "--python", self.python, "--no-deps", wheel])
        _copy(COPIED, self.course)
        self.kernels.joinpath(KERNEL).mkdir(parents=True)
        self.kernels.joinpath(KERNEL, "kernel.json").write_text(json.dumps({
            "argv": [str(self.python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (Binder's environment)", "language": "python"}))

    def kernel_manager(self):
        """A kernel manager that starts this environment's Python kernel in its environment."""
        from jupyter_client.kernelspec import KernelSpecManager
        from jupyter_client.manager import AsyncKernelManager

        return AsyncKernelManager(kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(
            kernel_dirs=[str(self.kernels)], ensure_native_kernel=False))

    def run(self, *args, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return _run([self.python, *args], cwd=cwd or self.course, env=self.env, timeout=600)

    def copy_of(self, path: Path) -> Path:
        """Where a file of the repository (under notebooks/, exercises/, solutions/) is in
        the course folder; a file from elsewhere stays where it is."""
        path = path.resolve()
        return self.course / path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def built_once(home: Path) -> Binder:
    """The environment under ``home``, built by whichever worker asks first."""
    ready = home / "ready"
    with FileLock(f"{home}.lock"):
        if not ready.exists():
            shutil.rmtree(home, ignore_errors=True)  # a build cut off half-way
            home.mkdir(parents=True)
            Binder(home).build()
            ready.touch()
    return Binder(home)
