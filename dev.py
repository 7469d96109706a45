"""Set up the course and open it, or run every test: the README's two commands.

    python3 dev.py lab    # the learner's environment in .venv, then JupyterLab at the start page
    python3 dev.py test   # the same plus the test and authoring tools, then every test (as CI)
    python3 dev.py site   # the website's tools, then the course as a website in _build/html

Uses only the standard library, so it works on a fresh machine with Python 3.11+. It installs
uv into .venv with pip and lets uv install the rest (several times faster than pip), with the
Binder environment's pins (environment.yml) as constraints, so a fresh setup gets the versions
CI tested. Both commands are idempotent: the environment is reinstalled only when
pyproject.toml or environment.yml changes, or when a command needs tools that `lab` left out.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".installed-from"
CONSTRAINTS = VENV / "constraints.txt"
START_PAGE = "notebooks/index.ipynb"
# `name==version` lines of environment.yml's pip list, as `course pin` writes them.
PIN = re.compile(r"^\s*-\s+([A-Za-z0-9][A-Za-z0-9._-]*==[^\s#]+)\s*$", re.MULTILINE)
# nbgrader's instructor menus and server handlers: the test tools need nbgrader's command line
# only, and the learner's lab must not show them even in a developer's .venv.
NBGRADER_LAB_EXTENSION = "@jupyter/nbgrader"
NBGRADER_SERVER_EXTENSIONS = [f"nbgrader.server_extensions.{name}" for name in
                              ("formgrader", "validate_assignment", "assignment_list",
                               "course_list")]
# The git filter: cell ids are kept (the committed twins have stable ones); the kernel's
# language_info, which JupyterLab adds on save, is stripped with the outputs.
NBSTRIPOUT = ["-m", "nbstripout", "--keep-id", "--extra-keys", "metadata.language_info"]
# From npm, into .npm/: JupyterHub's proxy (tests/hub/ and class/jupyterhub_config.py run it
# from there; 5.3 needs Node 22) and mermaid, which the website serves itself so its diagrams
# need no CDN (course/website/extension.py; 11.12.1 is what sphinxcontrib-mermaid 2.1 loads).
NPM_PACKAGES = {"configurable-http-proxy": "5.2.0", "mermaid": "11.12.1"}
NPM_PREFIX = ROOT / ".npm"


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def pins(environment_yml: Path = ROOT / "environment.yml") -> list[str]:
    """The exact versions environment.yml pins (Binder's environment), as pip constraints."""
    return PIN.findall(environment_yml.read_text(encoding="utf-8"))


def _digest(extras: tuple[str, ...]) -> str:
    sources = b"".join((ROOT / name).read_bytes() for name in ("pyproject.toml", "environment.yml"))
    return json.dumps({"extras": extras, "sha256": hashlib.sha256(sources).hexdigest()})


def ensure_environment(extras: tuple[str, ...]) -> None:
    """Create .venv and install the course with ``extras``, unless already current.

    A venv installed for ``test`` (lab, test and site extras) is current for ``lab`` and
    ``site`` too.
    """
    if sys.version_info < (3, 11):  # noqa: UP036 (dev.py must explain itself on older Pythons)
        sys.exit(f"The course needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    for wider in (extras, ("lab", "test", "site")):
        if STAMP.exists() and STAMP.read_text() == _digest(wider):
            return
    start = time.monotonic()
    if not PYTHON.exists():
        step(f"creating the virtual environment in {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    step("installing uv into it with pip")
    subprocess.run([str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check",
                    "--progress-bar", "off", "uv"], check=True)
    CONSTRAINTS.write_text("\n".join(pins()) + "\n", encoding="utf-8")
    step(f"installing the course with {' and '.join(extras)} extras (first run only)")
    subprocess.run([str(BIN / "uv"), "pip", "install", "--python", str(PYTHON),
                    "--constraint", str(CONSTRAINTS), "-e", f"{ROOT}[{','.join(extras)}]"],
                   check=True)
    hide_instructor_extensions()
    install_server_config()
    STAMP.write_text(_digest(extras))
    step(f"environment ready in {time.monotonic() - start:.0f} s")


def ensure_npm_packages() -> None:
    """Install the npm packages at their pinned versions into .npm/, unless they are there
    already; without npm, say so (the hub and website tests then skip, or fail in CI)."""
    def installed(package: str) -> str | None:
        manifest = NPM_PREFIX / "node_modules" / package / "package.json"
        return json.loads(manifest.read_text()).get("version") if manifest.exists() else None

    missing = [f"{package}@{version}" for package, version in NPM_PACKAGES.items()
               if installed(package) != version]
    if not missing:
        return
    npm = shutil.which("npm")
    if npm is None:
        step(f"npm not found: {', '.join(missing)} not installed")
        return
    step(f"installing {', '.join(missing)} into {NPM_PREFIX} with npm")
    subprocess.run([npm, "install", "--prefix", str(NPM_PREFIX), "--no-audit", "--no-fund",
                    *missing], check=True)


def _merge_json(path: Path, update: dict) -> None:
    """Deep-merge ``update`` into the JSON config file at ``path`` (created if missing)."""
    config = json.loads(path.read_text()) if path.exists() else {}
    for key, values in update.items():
        config.setdefault(key, {}).update(values)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2) + "\n")


def hide_instructor_extensions() -> None:
    """Disable nbgrader's lab and server extensions in .venv (harmless when it is absent)."""
    config = VENV / "etc" / "jupyter"
    _merge_json(config / "labconfig" / "page_config.json",
                {"disabledExtensions": {NBGRADER_LAB_EXTENSION: True}})
    _merge_json(config / "jupyter_server_config.json",
                {"ServerApp": {"jpserver_extensions": dict.fromkeys(NBGRADER_SERVER_EXTENSIONS,
                                                                    False)}})


def install_server_config() -> None:
    """Copy the course's Jupyter server config into .venv (a wheel install carries it as data
    files; an editable install does not): the file browser lists each lesson once."""
    for source in (ROOT / "jupyter-config").rglob("*.json"):
        target = VENV / "etc" / "jupyter" / source.relative_to(ROOT / "jupyter-config")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())


def configure_git_filter(root: Path = ROOT, python: Path = PYTHON) -> bool:
    """In a git clone, strip notebook outputs on commit and on diff (nbstripout, as
    .gitattributes asks), so running a lesson leaves ``git status`` clean. False outside git."""
    inside = subprocess.run(["git", "-C", str(root), "rev-parse", "--is-inside-work-tree"],
                            capture_output=True, text=True)
    if inside.returncode != 0:
        return False
    strip = " ".join([f'"{python}"', *NBSTRIPOUT])
    for key, value in (("filter.nbstripout.clean", strip),
                       ("filter.nbstripout.smudge", "cat"),
                       ("filter.nbstripout.required", "true"),
                       ("diff.ipynb.textconv", f"{strip} -t")):
        subprocess.run(["git", "-C", str(root), "config", key, value], check=True)
    return True


def lab(extra: list[str]) -> int:
    ensure_environment(("lab",))
    if configure_git_filter():
        step("git: notebook outputs are stripped on commit and diff (nbstripout)")
    step(f"starting JupyterLab at {START_PAGE} (Ctrl-C to stop)")
    cmd = [str(BIN / "jupyter"), "lab", f"--ServerApp.root_dir={ROOT}",
           f"--LabApp.default_url=/lab/tree/{START_PAGE}", *extra]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI machines run as root
        cmd.append("--allow-root")
    return subprocess.call(cmd, cwd=ROOT)


NOTEBOOK_DIRS = ["notebooks", "solutions", "exercises"]  # the folders of the notebook twins

CHECKS = [
    ("lint", ["-m", "ruff", "check", "course", "patterns", "simulations", "tests", "benchmarks",
              "class", "dev.py", *NOTEBOOK_DIRS]),
    ("notebook twins in sync", ["-m", "course", "sync", "--check"]),
    ("student exercises up to date", ["-m", "course", "assign", "--check"]),
    ("lessons valid", ["-m", "course", "validate"]),
    ("Binder pins match the environment", ["-m", "course", "pin", "--check"]),
]


def test(extra: list[str]) -> int:
    """Lint, the course's own consistency checks, then pytest (its options are in pyproject)."""
    ensure_environment(("lab", "test", "site"))
    ensure_npm_packages()
    failed = []
    for name, args in CHECKS:
        step(name)
        if subprocess.call([str(PYTHON), *args], cwd=ROOT) != 0:
            failed.append(name)
    step("pytest (code, notebooks, exercises under the grader, Binder environment, browser)")
    code = subprocess.call([str(PYTHON), "-m", "pytest", *extra], cwd=ROOT)
    if failed:
        print("Failed checks: " + ", ".join(failed), file=sys.stderr)
        return code or 1
    return code


def site(extra: list[str]) -> int:
    """Build the course website into _build/html (``course build``, options after ``site``)."""
    ensure_environment(("lab", "site"))
    ensure_npm_packages()
    return subprocess.call([str(PYTHON), "-m", "course", "build", *extra], cwd=ROOT)


def main(argv: list[str]) -> int:
    commands = {"lab": lab, "test": test, "site": site}
    if not argv or argv[0] not in commands:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
