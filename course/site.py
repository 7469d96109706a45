"""``course build``: the course as a website, built by Sphinx with MyST-NB and the book theme.

Like a printed edition of a play made from the rehearsal: the same script (the ``.ipynb`` twins
of the lessons and of the student copies), performed once (every lesson executed, the student
copies shown as handed out), with a contents page (the start page, the learning paths as the
sidebar), an index (search) and a door to the stage on every page (launch buttons to Binder and
to a JupyterHub). Performances are kept in a cache that is thrown away when the code the
lessons import changes, so a second build only runs what changed. Any warning fails the build
at the end (a broken link, a lesson whose cell fails), after every page was tried; then every
link of the written site is checked on disk (``course.website.links``).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from course.catalog import github_repository
from course.paths import ROOT
from course.website import MERMAID_MISSING, links, mermaid_module

CONFIG = Path(__file__).resolve().parent / "website"
# ipykernel's note, from each kernel myst-nb starts, that it talks to it over loopback TCP.
KERNEL_NOISE = "[IPKernelApp] WARNING | Kernel is running over TCP without encryption"
CODE_TREES = ("patterns", "simulations", "course")  # what a lesson's output depends on
SITE_CODE = ("course/site.py", "course/website/")  # ... but for this build, which no lesson imports


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: _build/html in the repository)")
    parser.add_argument("--no-execute", dest="execute", action="store_false",
                        help="show the lessons as committed, without outputs (a quick look)")
    parser.add_argument("--jupyterhub", default="", metavar="URL",
                        help="a JupyterHub for the launch buttons, e.g. https://hub.example.edu "
                             "(the Binder button needs [tool.course] github in pyproject.toml)")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    root = Path(args.root)
    out = args.out or root / "_build" / "html"
    if args.jupyterhub and not args.jupyterhub.startswith(("https://", "http://")):
        print(f"course build: --jupyterhub must be an http(s) URL, got {args.jupyterhub!r}",
              file=sys.stderr)
        return 2
    if args.jupyterhub and github_repository(root) is None:
        print("course build: --jupyterhub needs [tool.course] github in pyproject.toml (its "
              "launch button is an nbgitpuller link that clones that repository)",
              file=sys.stderr)
        return 2
    if not mermaid_module(root).exists():
        print("course build: " + MERMAID_MISSING.format(folder=mermaid_module(root).parent.parent),
              file=sys.stderr)
        return 2
    code = build(root, root, out, execute=args.execute, jupyterhub=args.jupyterhub).code
    broken = links.problems(out) if (out / "index.html").exists() else []
    for problem in broken:
        print(f"course build: {problem}", file=sys.stderr)
    code = code or (1 if broken else 0)
    if code == 0:
        print(f"course build: the site is in {out}; open {out / 'index.html'}")
    else:
        print("course build: the site has problems (the warnings above); it was built all the "
              f"same into {out}", file=sys.stderr)
    return code


@dataclass(frozen=True)
class Built:
    """Sphinx's exit code and the warnings it wrote (a warning fails the build)."""

    code: int
    warnings: tuple[str, ...]


def build(root: Path, source: Path, out: Path, *, execute: bool = True, github: str = "",
          jupyterhub: str = "", quiet: bool = False) -> Built:
    """Build the site of the course at ``root`` from the notebooks under ``source`` (``root``
    itself, or a copy holding executed notebooks) into ``out``. Sphinx's warnings go to stderr
    as they come, unless ``quiet``."""
    settings = {"course_root": root, "course_github": github, "course_jupyterhub": jupyterhub,
                "nb_execution_mode": "cache" if execute else "off",
                "nb_execution_cache_path": cache_folder(root) if execute else ""}
    command = [sys.executable, "-m", "sphinx", "build", "--builder", "html",
               "--fail-on-warning", "--keep-going", *(["--quiet"] if quiet else []),
               "--conf-dir", str(CONFIG),
               "--doctree-dir", str(out.parent / f"{out.name}-doctrees"),
               *(f"--define={name}={value}" for name, value in settings.items() if value != ""),
               str(source), str(out)]
    warnings = []
    with subprocess.Popen(command, cwd=root, stderr=subprocess.PIPE, text=True) as sphinx:
        for line in sphinx.stderr:
            if not line.startswith(KERNEL_NOISE):
                warnings.append(line.rstrip("\n"))
                if not quiet:
                    sys.stderr.write(line)
    return Built(sphinx.returncode, tuple(warnings))


def cache_folder(root: Path) -> Path:
    """The executed lessons' cache, one folder per state of the code they import (older ones
    are removed)."""
    digest = hashlib.sha256()
    for tree in CODE_TREES:
        for path in sorted((root / tree).rglob("*.py")):
            if path.relative_to(root).as_posix().startswith(SITE_CODE):
                continue
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    caches = root / "_build" / "jupyter-cache"
    folder = caches / digest.hexdigest()[:16]
    for old in caches.glob("*") if caches.exists() else ():
        if old != folder:
            shutil.rmtree(old, ignore_errors=True)
    return folder
