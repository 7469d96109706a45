"""Set up the course and open it, or run every test: the README's two commands.

    python3 dev.py lab    # virtual env in .venv, then JupyterLab at the start page
    python3 dev.py test   # virtual env in .venv, then every test (what CI runs)

Uses only the standard library, so it works on a fresh machine with Python 3.11+.
Both commands are idempotent: the environment is reinstalled only when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".installed-from"


def _requirements_digest() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def ensure_environment() -> None:
    """Create .venv and install the course with its test extra, unless already current."""
    if sys.version_info < (3, 11):  # noqa: UP036 (dev.py must explain itself on older Pythons)
        sys.exit(f"The course needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    if not PYTHON.exists():
        print(f"Creating the virtual environment in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = _requirements_digest()
    if STAMP.exists() and STAMP.read_text() == digest:
        return
    print("Installing the course and its test tools (first run only) ...", flush=True)
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[test]"], check=True)
    STAMP.write_text(digest)


def lab(extra: list[str]) -> int:
    ensure_environment()
    start_page = "notebooks/index.ipynb"
    cmd = [str(BIN / "jupyter"), "lab", start_page, *extra]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI machines run as root
        cmd.append("--allow-root")
    return subprocess.call(cmd, cwd=ROOT)


NOTEBOOK_DIRS = ["notebooks", "solutions", "exercises"]

CHECKS = [
    ("lint", ["-m", "ruff", "check", "course", "patterns", "simulations", "tests", "benchmarks",
              "dev.py", *NOTEBOOK_DIRS]),
    ("notebook twins in sync", ["-m", "course", "sync", "--check"]),
    ("student exercises up to date", ["-m", "course", "assign", "--check"]),
    ("lessons valid", ["-m", "course", "validate"]),
]


def test(extra: list[str]) -> int:
    """Lint, the course's own consistency checks, then pytest over code and every notebook."""
    ensure_environment()
    failed = []
    for name, args in CHECKS:
        print(f"== {name}", flush=True)
        if subprocess.call([str(PYTHON), *args], cwd=ROOT) != 0:
            failed.append(name)
    print("== pytest (code, notebooks under nbval, browser)", flush=True)
    pytest = [str(PYTHON), "-m", "pytest", "-n", "2", "--dist", "loadscope", "--nbval-lax",
              "--nbval-cell-timeout=120", "tests", *NOTEBOOK_DIRS, *extra]
    code = subprocess.call(pytest, cwd=ROOT)
    if failed:
        print("Failed checks: " + ", ".join(failed), file=sys.stderr)
        return code or 1
    return code


def main(argv: list[str]) -> int:
    commands = {"lab": lab, "test": test}
    if not argv or argv[0] not in commands:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
