"""Finding the course's lessons and reading their front matter.

Think of a library's card catalogue: every book (lesson) sits on the shelf of its subject
(``notebooks/<folder>/``) and carries a card (the ``lesson`` metadata) with its title, level and
reading time. This module walks the shelves and reads the cards; the catalog, the checker, the
site builder and the lesson card all start from here.

The start page ``notebooks/index.md`` is not a lesson: it has no card and is found with
`start_page`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from course.notebook_files import NotebookError, read_front_matter, relative
from course.paths import CATEGORIES, LESSON_FOLDERS, ROOT

FOUNDATIONS = "foundations"
START_PAGE = Path("notebooks") / "index.md"
FRONT_MATTER_KEY = "lesson"


class LessonError(ValueError):
    """A lesson file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Lesson:
    """One lesson: its MyST source, its folder, its slug ``folder/name`` and its front matter."""

    path: Path
    folder: str
    slug: str
    metadata: dict = field(default_factory=dict, compare=False)

    @property
    def name(self) -> str:
        """The file name without folder or suffix, e.g. ``circuit-breaker``."""
        return self.slug.split("/", 1)[1]

    @property
    def is_pattern(self) -> bool:
        """True for the pattern lessons, False for the foundations and the capstone lab."""
        return self.folder in CATEGORIES

    @property
    def title(self) -> str:
        return str(self.metadata.get("title") or self.name)

    @property
    def status(self) -> str:
        return str(self.metadata.get("status", "?"))

    def link(self, from_dir: Path, suffix: str = ".ipynb") -> str:
        """A relative link to this lesson's notebook from ``from_dir`` (POSIX separators)."""
        target = self.path.with_suffix(suffix)
        return Path(os.path.relpath(target.resolve(), Path(from_dir).resolve())).as_posix()


def notebooks_dir(root: Path = ROOT) -> Path:
    return Path(root) / "notebooks"


def start_page(root: Path = ROOT) -> Path:
    """The course's start page, ``notebooks/index.md``."""
    return Path(root) / START_PAGE


def lesson_sources(root: Path = ROOT) -> list[Path]:
    """Every ``notebooks/<folder>/<name>.md`` that could be a lesson, in a stable order.

    Files in folders that are not lesson folders are included too, so the checker can name them.
    """
    notebooks = notebooks_dir(root)
    order = {folder: i for i, folder in enumerate(LESSON_FOLDERS)}
    found = [
        path
        for path in notebooks.glob("*/*.md")
        if ".ipynb_checkpoints" not in path.parts
    ]
    return sorted(found, key=lambda p: (order.get(p.parent.name, len(order)), p.parent.name, p))


def load_lesson(path: Path) -> Lesson:
    """Read one lesson and its front matter; raise LessonError for anything unusable."""
    path = Path(path)
    folder = path.parent.name
    if folder not in LESSON_FOLDERS:
        raise LessonError(
            f"{relative(path)}: unknown lesson folder {folder!r} "
            f"(allowed: {', '.join(LESSON_FOLDERS)})"
        )
    try:
        metadata = read_front_matter(path).get(FRONT_MATTER_KEY)
    except NotebookError as error:
        raise LessonError(str(error)) from None
    if not isinstance(metadata, dict):
        raise LessonError(
            f"{relative(path)}: no '{FRONT_MATTER_KEY}' front matter "
            "(the YAML block at the top must hold a 'lesson:' mapping)"
        )
    return Lesson(path=path, folder=folder, slug=f"{folder}/{path.stem}", metadata=dict(metadata))


def discover(root: Path = ROOT) -> tuple[list[Lesson], list[str]]:
    """All lessons under ``root/notebooks`` and a one-line problem for each unusable file."""
    lessons, problems = [], []
    for path in lesson_sources(root):
        try:
            lessons.append(load_lesson(path))
        except LessonError as error:
            problems.append(str(error))
    return lessons, problems


def is_lesson_path(path: Path, root: Path = ROOT) -> bool:
    """True when ``path`` has the shape ``<root>/notebooks/<folder>/<name>.md``."""
    path = Path(path).resolve()
    return path.suffix == ".md" and path.parent.parent == notebooks_dir(root).resolve()


def find(slug: str, lessons: list[Lesson]) -> Lesson | None:
    """The lesson with this slug (``folder/name``), or with this name if only one has it."""
    by_slug = {lesson.slug: lesson for lesson in lessons}
    if slug in by_slug:
        return by_slug[slug]
    named = [lesson for lesson in lessons if lesson.name == slug]
    return named[0] if len(named) == 1 else None


class UsageError(ValueError):
    """A command-line argument that names nothing usable; the CLI prints it and exits 2."""


def resolve_paths(paths: list[Path] | None) -> list[Path]:
    """The PATH arguments as absolute paths (an ``.ipynb`` stands for its ``.md`` source)."""
    resolved = []
    for path in paths or []:
        path = Path(path)
        if not path.exists():
            raise UsageError(f"no such file or directory: {path}")
        path = path.resolve()
        resolved.append(path.with_suffix(".md") if path.suffix == ".ipynb" else path)
    return resolved


def in_scope(path: Path, scopes: list[Path]) -> bool:
    """True when no scope is given, or ``path`` is one of them or lies inside one."""
    path = Path(path).resolve()
    if path.suffix == ".ipynb":
        path = path.with_suffix(".md")
    return not scopes or any(path == scope or scope in path.parents for scope in scopes)
