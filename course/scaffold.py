"""``course new <category>/<slug>``: start a new lesson from the course's templates.

Like a new notebook bought with the chapter headings already printed, the command writes
``notebooks/<category>/<slug>.md`` (the pattern template's five levels as a MyST notebook, with
front matter, the lesson card cell and a mermaid block; status ``stub``, dated today) and
``solutions/<category>/<slug>.md`` (one example exercise in nbgrader markup), each with its
``.ipynb`` twin. The templates live in ``course/templates/``. It never overwrites anything.
"""

from __future__ import annotations

import argparse
import datetime
import re
import sys
from pathlib import Path

from course import release
from course.notebook_files import read_markdown, relative, write_pair
from course.paths import CATEGORIES, ROOT, TEMPLATE_DIR

SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("lesson", metavar="CATEGORY/SLUG",
                        help="for example resilience/circuit-breaker")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    try:
        written = create_lesson(args.lesson, args.root)
    except ValueError as error:
        print(f"course new: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {relative(path)}")
    return 0


def parse_slug(text: str) -> tuple[str, str]:
    """Split ``category/slug`` and check both parts; ValueError says what is allowed."""
    category, sep, name = text.strip("/").partition("/")
    if not sep:
        raise ValueError(f"expected CATEGORY/SLUG, got {text!r} (for example resilience/timeouts)")
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r} (allowed: {', '.join(CATEGORIES)})")
    if not SLUG.match(name):
        raise ValueError(
            f"bad slug {name!r}: use lowercase letters, digits and single hyphens "
            "(for example circuit-breaker)"
        )
    return category, name


def title_of(name: str) -> str:
    """A first title from the slug: ``circuit-breaker`` -> ``Circuit Breaker``."""
    return " ".join(word.capitalize() for word in name.split("-"))


def create_lesson(text: str, root: Path = ROOT, today: datetime.date | None = None) -> list[Path]:
    """Write the stub lesson, its solutions notebook (each with its twin) and the student copy
    its Exercises section links; return the paths."""
    category, name = parse_slug(text)
    root = Path(root)
    lesson = root / "notebooks" / category / f"{name}.md"
    solution = root / "solutions" / category / f"{name}.md"
    existing = [path for path in (lesson, solution, lesson.with_suffix(".ipynb"),
                                  solution.with_suffix(".ipynb")) if path.exists()]
    if existing:
        raise ValueError(
            f"lesson {category}/{name} already exists ({', '.join(map(relative, existing))}); "
            "nothing was written"
        )
    values = {
        "__TITLE__": title_of(name),
        "__SLUG__": f"{category}/{name}",
        "__NAME__": name,
        "__CATEGORY__": category,
        "__TODAY__": (today or datetime.date.today()).isoformat(),
    }
    for target, template in ((lesson, "lesson.md"), (solution, "solution.md")):
        text = (TEMPLATE_DIR / template).read_text(encoding="utf-8")
        for token, value in values.items():
            text = text.replace(token, value)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        write_pair(read_markdown(target), target)
    released = release.assign([solution], root / "solutions", root / "exercises")
    return [lesson, lesson.with_suffix(".ipynb"), solution, solution.with_suffix(".ipynb"),
            *released]
