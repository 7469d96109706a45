"""``course sync``: rebuild every ``.ipynb`` twin from its MyST Markdown source.

Like a printer that reprints a page whenever the manuscript changes, sync rewrites each
``.ipynb`` under notebooks/, solutions/ and exercises/ from its ``.md`` (no outputs, stable cell
ids) and rewrites the generated course-map blocks of README.md and notebooks/index.md from the
lessons' front matter. It never edits a ``.md`` lesson body.

``course sync --check`` changes nothing; it exits 1 and names every twin out of sync, every
twin that carries outputs, every ``.md`` with no twin, every ``.ipynb`` with no ``.md`` and every
stale generated block. An ``.ipynb`` with no ``.md`` is reported by plain ``sync`` too (it cannot
be rebuilt; write its source with ``jupytext --to md:myst`` or delete it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from course.catalog import block_files, refresh_blocks
from course.lessons import UsageError, discover, in_scope, resolve_paths
from course.notebook_files import (
    NotebookError,
    ipynb_text,
    read_ipynb,
    read_markdown,
    relative,
    twin_of,
)
from course.paths import ROOT

SOURCE_DIRS = ("notebooks", "solutions", "exercises")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                        help="only these files or folders (default: the whole course)")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 and name every file that sync would change")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    try:
        scopes = resolve_paths(args.paths)
    except UsageError as error:
        print(f"course sync: {error}", file=sys.stderr)
        return 2
    try:
        problems, changed = sync(args.root, scopes, check=args.check)
    except UsageError as error:
        print(f"course sync: {error}", file=sys.stderr)
        return 2
    for line in changed:
        print(line)
    for line in problems:
        print(line)
    if args.check and (problems or changed):
        print(f"{len(problems)} problem(s): run `course sync` and commit the result",
              file=sys.stderr)
    return 1 if problems else 0


def notebook_files(root: Path) -> list[Path]:
    """Every ``.md`` and ``.ipynb`` under the notebook folders, checkpoints excluded."""
    found = []
    for folder in SOURCE_DIRS:
        for pattern in ("*.md", "*.ipynb"):
            found += [
                path for path in (Path(root) / folder).rglob(pattern)
                if ".ipynb_checkpoints" not in path.parts
            ]
    return sorted(found)


def sync(root: Path, scopes: list[Path], check: bool) -> tuple[list[str], list[str]]:
    """Bring twins and blocks up to date (or, with ``check``, report them).

    Returns (problems, changes): one line per problem found and per file written;
    UsageError when a scope holds no notebook.
    """
    problems: list[str] = []
    changed: list[str] = []
    lessons, _ = discover(root)  # unreadable lessons are reported below, file by file
    blocks = {path: required for path, required in block_files(root).items()
              if path.exists() and in_scope(path, scopes)}
    files = [path for path in notebook_files(root) if in_scope(path, scopes)]
    for scope in scopes:
        if not any(in_scope(path, [scope]) for path in [*blocks, *files]):
            raise UsageError(f"no lesson in {scope} (sync rebuilds the notebooks of "
                             f"{', '.join(f'{folder}/' for folder in SOURCE_DIRS)})")
    for path, required in blocks.items():
        text = path.read_text(encoding="utf-8")
        try:
            fresh = refresh_blocks(text, lessons, path.parent, required)
        except ValueError as error:
            problems.append(f"{relative(path)}: {error}")
            continue
        if fresh != text:
            if check:
                problems.append(f"{relative(path)}: generated course-map block(s) out of date")
            else:
                path.write_text(fresh, encoding="utf-8")
                changed.append(f"rewrote generated blocks in {relative(path)}")
    for path in files:
        if path.suffix == ".ipynb":
            if not twin_of(path).exists():
                problems.append(f"{relative(path)}: no {twin_of(path).name} source "
                                "(write it with `jupytext --to md:myst`, or delete the .ipynb)")
            continue
        problem = _sync_pair(path, check)
        if problem and problem.startswith("wrote "):
            changed.append(problem)
        elif problem:
            problems.append(problem)
    return problems, changed


def _sync_pair(md: Path, check: bool) -> str | None:
    """Rebuild (or check) one twin; a one-line problem or change, or None when already right."""
    try:
        expected = ipynb_text(read_markdown(md))
    except NotebookError as error:
        return str(error)
    twin = twin_of(md)
    current = twin.read_text(encoding="utf-8") if twin.exists() else None
    if current == expected:
        return None
    if not check:
        twin.write_text(expected, encoding="utf-8")
        return f"wrote {relative(twin)}"
    if current is None:
        return f"{relative(md)}: no .ipynb twin"
    try:
        nb = read_ipynb(twin)
    except NotebookError as error:
        return str(error)
    reasons = []
    with_outputs = [
        cell for cell in nb.cells
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count"))
    ]
    if with_outputs:
        reasons.append(f"carries outputs in {len(with_outputs)} code cell(s)")
    if ipynb_text(nb) != expected:
        reasons.append(f"out of sync with {md.name}")
    return f"{relative(twin)}: " + ("; ".join(reasons) or "not in the committed form")
