"""Reading a learner's submission without trusting it.

Like a mailroom that weighs and opens every parcel before it goes upstairs: the file must be a
plain file of reasonable size (not a link, a pipe or a device), UTF-8 JSON in the notebook
format, with text where text belongs and short names where names belong. Anything else becomes
one `GradingError` naming what was wrong, so the grader never meets it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import nbformat

from course.notebook_files import relative
from course.release import METADATA_KEY
from course.text import file_name, printable

MAX_BYTES = 50 * 2**20  # a lesson's exercises with every plot saved is a few MB
MAX_NAME = 200  # characters of a grade_id or of the metadata naming the solutions notebook


class GradingError(ValueError):
    """A submission that cannot be graded at all (not a notebook, no matching solutions)."""


def read_submission(path: Path) -> nbformat.NotebookNode:
    """The notebook in ``path``, checked as described above."""
    name = file_name(relative(path))
    if path.suffix != ".ipynb":
        raise GradingError(f"{name}: not a notebook (only .ipynb files are graded)")
    nb = _parse(_text(path, name), name)
    _check_structure(nb, name)
    return nb


def named_solution(nb: nbformat.NotebookNode, solutions_root: Path) -> Path | None:
    """The solutions notebook the submission's ``exercise`` metadata names, when that is a
    ``.md`` file inside ``solutions_root``."""
    root = solutions_root.resolve()
    source = _exercise_source(nb)
    if source is None:
        return None
    candidate = (root.parent / source).resolve()
    inside = candidate.is_relative_to(root) and candidate.suffix == ".md"
    return candidate if inside and candidate.is_file() else None


def _text(path: Path, name: str) -> str:
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    if path.is_symlink():
        raise GradingError(f"{name}: a symbolic link, not a file (hand in the notebook itself)")
    try:
        fd = os.open(path, flags)
    except OSError as error:
        raise GradingError(f"{name}: cannot be read ({error.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise GradingError(f"{name}: not a regular file (a folder, pipe, device or socket)")
        if info.st_size > MAX_BYTES:
            raise GradingError(f"{name}: too large ({info.st_size / 2**20:.0f} MB; at most "
                               f"{MAX_BYTES // 2**20} MB)")
        data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise GradingError(f"{name}: too large (more than {MAX_BYTES // 2**20} MB)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise GradingError(f"{name}: not a valid notebook (not UTF-8 text)") from None


def _parse(text: str, name: str) -> nbformat.NotebookNode:
    try:
        return nbformat.reads(text, as_version=4)
    except Exception as error:  # nbformat raises many kinds for malformed JSON or schema
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise GradingError(f"{name}: not a valid notebook ({printable(reason, 300)})") from None


def _check_structure(nb: nbformat.NotebookNode, name: str) -> None:
    cells = nb.get("cells")
    if not isinstance(cells, list):
        raise GradingError(f"{name}: not a valid notebook (its cells are not a list)")
    for index, cell in enumerate(cells):
        where = f"{name}: cell {index}"
        if not isinstance(cell, dict) or not isinstance(cell.get("source"), str):
            raise GradingError(f"{where}: its source is not text")
        grading = cell.get("metadata", {}).get("nbgrader") if isinstance(
            cell.get("metadata"), dict) else None
        if grading is not None and not isinstance(grading, dict):
            raise GradingError(f"{where}: its nbgrader metadata is not a mapping")
        grade_id = (grading or {}).get("grade_id")
        if grade_id is not None and not _short_name(grade_id):
            raise GradingError(f"{where}: its grade_id is not a short name "
                               f"({_shown(grade_id)})")
    source = nb.get("metadata", {}).get(METADATA_KEY)
    if source is not None and not (isinstance(source, dict) and _short_name(
            source.get("source", ""))):
        raise GradingError(f"{name}: its {METADATA_KEY!r} metadata is not a short path "
                           f"({_shown(source)})")


def _exercise_source(nb: nbformat.NotebookNode) -> str | None:
    metadata = nb.metadata.get(METADATA_KEY)
    source = metadata.get("source") if isinstance(metadata, dict) else None
    return source if isinstance(source, str) else None


def _short_name(value: object) -> bool:
    return isinstance(value, str) and len(value) <= MAX_NAME and printable(value) == value \
        and "\n" not in value and "\t" not in value


def _shown(value: object) -> str:
    return printable(repr(value), 60)
