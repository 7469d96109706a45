"""``course new <category>/<slug>``: start a new lesson from the course's templates.

Like a new notebook bought with the chapter headings already printed, the command writes one
file in each of the lesson's five trees (``course.paths.code_paths``):
``notebooks/<category>/<slug>.md`` (the pattern template's five levels as a MyST notebook, with
front matter, the lesson card cell and a mermaid block; status ``stub``, dated today),
``solutions/<category>/<slug>.md`` (one example exercise in nbgrader markup), each with its
``.ipynb`` twin, and the Python modules ``patterns/<package>/<module>.py`` (the pattern's class),
``simulations/<package>/<module>.py`` (its study) and ``tests/<package>/test_<module>.py``, with
the packages' ``__init__.py`` where the category is new. The templates live in
``course/templates/``. It never overwrites anything.
"""

from __future__ import annotations

import argparse
import datetime
import re
import sys
from pathlib import Path

from course import release
from course.notebook_files import read_markdown, relative, write_pair
from course.paths import CATEGORIES, ROOT, TEMPLATE_DIR, code_paths, python_name

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
    """Write the stub lesson, its solutions notebook (each with its twin), the student copy its
    Exercises section links, and its pattern, study and test modules; return the paths."""
    category, name = parse_slug(text)
    root = Path(root)
    lesson = root / "notebooks" / category / f"{name}.md"
    code = code_paths(root, category, name)
    solution = code["solutions"]
    targets = {lesson: "lesson.md", solution: "solution.md",
               code["patterns"]: "pattern.py.template", code["simulations"]: "study.py.template",
               code["tests"]: "test.py.template"}
    existing = [path for path in (*targets, lesson.with_suffix(".ipynb"),
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
        "__PACKAGE__": python_name(category),
        "__MODULE__": python_name(name),
        "__CLASS__": title_of(name).replace(" ", ""),
        "__TODAY__": (today or datetime.date.today()).isoformat(),
    }
    written = []
    for target, template in targets.items():
        text = (TEMPLATE_DIR / template).read_text(encoding="utf-8")
        for token, value in values.items():
            text = text.replace(token, value)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(target)
        if target.suffix == ".md":
            write_pair(read_markdown(target), target)
            written.append(target.with_suffix(".ipynb"))
    for tree, holds in (("patterns", "patterns"), ("simulations", "studies")):
        init = code[tree].parent / "__init__.py"
        if not init.exists():
            init.write_text(f'"""The {category} lessons\' {holds}."""\n', encoding="utf-8")
            written.append(init)
    written += release.assign([solution], root / "solutions", root / "exercises")
    return written
