"""The lesson card: the front matter shown to the learner at the top of a lesson.

Like the label on a museum exhibit, the card says in a few lines what the lesson is, how long it
takes, what to know first and when the pattern is (not) the right tool. Each lesson's first code
cell calls ``show_card("<folder>/<slug>")``; the card is read from the lesson's own ``.md`` front
matter, so it can never disagree with the catalog. With a front end it is a small HTML card; in
plain Python (or any text-only output) the same card prints as text.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

from course.lessons import Lesson, LessonError, discover, find, load_lesson
from course.paths import ROOT

FIELDS = (
    ("difficulty", "Difficulty"),
    ("reading_time", "Reading time"),
    ("prerequisites", "Prerequisites"),
    ("when_to_use", "When to use"),
    ("when_not_to_use", "When not to use"),
    ("status", "Status"),
    ("last_updated", "Last updated"),
)


@dataclass(frozen=True, repr=False)
class LessonCard:
    """A lesson's card; Jupyter shows `_repr_html_`, text consoles show `__str__`."""

    lesson: Lesson
    prerequisite_links: tuple[tuple[str, str | None], ...]  # (name, link or None)

    def _value(self, key: str) -> str:
        value = self.lesson.metadata.get(key, "")
        return f"{value} min" if key == "reading_time" and value != "" else str(value)

    def __str__(self) -> str:
        lines = [self.lesson.title, str(self.lesson.metadata.get("description", ""))]
        for key, label in FIELDS:
            if key == "prerequisites":
                value = ", ".join(name for name, _ in self.prerequisite_links) or "none"
            else:
                value = self._value(key)
            lines.append(f"{label}: {value}")
        return "\n".join(line for line in lines if line)

    __repr__ = __str__  # what Jupyter shows as text/plain

    def _repr_html_(self) -> str:
        rows = []
        for key, label in FIELDS:
            if key == "prerequisites":
                items = [
                    f'<a href="{html.escape(link)}">{html.escape(name)}</a>' if link
                    else html.escape(name)
                    for name, link in self.prerequisite_links
                ]
                value = ", ".join(items) or "none"
            else:
                value = html.escape(self._value(key))
            rows.append(
                f'<tr><th style="text-align:left;padding-right:1em">{label}</th>'
                f'<td style="text-align:left">{value}</td></tr>'
            )
        return (
            '<div class="lesson-card" style="border:1px solid #ccc;border-radius:6px;'
            'padding:0.6em 1em;max-width:48em">'
            f"<strong>{html.escape(self.lesson.title)}</strong>"
            f"<p>{html.escape(str(self.lesson.metadata.get('description', '')))}</p>"
            f"<table>{''.join(rows)}</table></div>"
        )


def course_root(slug: str) -> Path:
    """The course holding lesson ``slug``: the working folder or one above it (a kernel runs in
    the lesson's folder), else this checkout."""
    here = Path.cwd()
    for candidate in (here, *here.parents):
        if (candidate / "notebooks" / f"{slug}.md").exists():
            return candidate
    return ROOT


def card(slug: str, root: Path | None = None) -> LessonCard:
    """The card of lesson ``slug`` (``folder/name``); ValueError if there is no such lesson."""
    root = Path(root) if root is not None else course_root(slug)
    path = root / "notebooks" / f"{slug}.md"
    if "/" not in slug or not path.exists():
        raise ValueError(f"no lesson {slug!r}: expected the file notebooks/{slug}.md")
    try:
        lesson = load_lesson(path)
    except LessonError as error:
        raise ValueError(str(error)) from None
    lessons, _ = discover(root)
    links = []
    for prerequisite in lesson.metadata.get("prerequisites") or []:
        other = find(str(prerequisite), lessons)
        links.append((str(prerequisite), other.link(lesson.path.parent) if other else None))
    return LessonCard(lesson=lesson, prerequisite_links=tuple(links))


def show_card(slug: str, root: Path | None = None) -> None:
    """Display the card of lesson ``slug``: HTML in Jupyter, text everywhere else.

    Being every lesson's first cell, it also applies the course's plot style
    (``simulations.plots.use_style``), so every figure of the lesson has it.
    """
    from simulations.plots import use_style  # matplotlib only once a lesson runs

    use_style()
    lesson_card = card(slug, root)
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display(lesson_card)
    else:
        print(lesson_card)
