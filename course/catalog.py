"""The course catalog: every lesson by category, and the generated course-map blocks.

Like the departures board at a station, the catalog is never written by hand: it is read from
the lessons' own front matter each time. ``course list`` prints it; ``course sync`` copies it into
the README and the start page between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` markers,
and ``course sync --check`` reports a block that no longer matches the lessons.

Blocks: ``binder`` (the Binder link), ``course-map`` (the lessons table) in README.md and
notebooks/index.md, and ``learning-paths`` (by level and by goal) in notebooks/index.md.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

from course.lessons import Lesson, discover, start_page
from course.paths import CAPSTONE, DIFFICULTIES, LESSON_FOLDERS, ROOT

# A GitHub remote of the clone: https://github.com/o/r(.git), git@github.com:o/r, ssh://...
GITHUB_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
BINDER_OFF = ("Binder: not linked yet; once the course is on GitHub, set `github = \"owner/name\"` "
              "under `[tool.course]` in pyproject.toml and run `course sync`.")

STATUS_WORDS = {"stub": "📝 stub", "partial": "🚧 partial", "complete": "✅ complete"}

# The lab every learning path ends with: the patterns composed into one service on a bad day.
CAPSTONE_LAB = (f"{CAPSTONE}/bad-day", "Capstone: a bad day")
# Learning paths by goal: lesson slugs from the syllabus, in the order to read them (each then
# ends with the capstone lab).
GOAL_PATHS: dict[str, list[tuple[str, str]]] = {
    "Survive failures": [
        ("foundations/queueing-basics", "Queueing basics"),
        ("resilience/timeouts", "Timeouts"),
        ("resilience/retry-backoff-jitter", "Retry with backoff and jitter"),
        ("resilience/circuit-breaker", "Circuit breaker"),
        ("resilience/bulkhead", "Bulkhead"),
        ("resilience/load-shedding", "Load shedding"),
        ("resilience/backpressure", "Backpressure"),
        ("resilience/failure-detection", "Failure detection"),
        ("resilience/failover", "Failover"),
    ],
    "Go faster": [
        ("foundations/queueing-basics", "Queueing basics"),
        ("caching/cache-aside", "Cache-aside"),
        ("caching/eviction-policies", "Eviction policies"),
        ("caching/cache-stampede-protection", "Cache stampede protection"),
        ("performance/load-balancing", "Load balancing"),
        ("performance/request-batching", "Request batching"),
        ("performance/hedged-requests", "Hedged requests"),
        ("performance/concurrency-limits", "Adaptive concurrency limits"),
    ],
    "Decouple services": [
        ("foundations/queueing-basics", "Queueing basics"),
        ("communication/queue-load-leveling", "Queue-based load leveling"),
        ("communication/priority-queue", "Priority queue"),
        ("communication/scatter-gather", "Scatter-gather"),
        ("communication/publish-subscribe", "Publish-subscribe"),
        ("communication/transactional-outbox", "Transactional outbox"),
        ("communication/saga", "Saga"),
        ("communication/push-vs-polling", "Push vs polling"),
    ],
    "Scale data": [
        ("foundations/distributed-system-model", "Distributed system model"),
        ("distributed-data/consistent-hashing", "Consistent hashing"),
        ("distributed-data/sharding", "Sharding"),
        ("distributed-data/replication-sync-async", "Synchronous vs asynchronous replication"),
        ("distributed-data/quorum-consistency", "Quorum consistency"),
        ("performance/read-replicas", "Read replicas"),
        ("distributed-data/gossip-anti-entropy", "Gossip and anti-entropy"),
        ("specialized/consensus", "Consensus"),
    ],
    "Shape the architecture": [
        ("architectural/event-driven-architecture", "Event-driven architecture"),
        ("architectural/cqrs", "CQRS"),
        ("architectural/shared-nothing-scale-out", "Shared-nothing scale-out"),
        ("architectural/cell-based-architecture", "Cell-based architecture"),
        ("architectural/serverless", "Serverless keep-alive"),
        ("architectural/edge-computing", "Edge computing"),
    ],
    "Secure it": [
        ("security/rate-limiting", "Rate limiting"),
        ("security/token-validation", "Token validation at the gateway"),
        ("security/zero-trust-mtls", "Zero-trust mTLS"),
        ("security/secrets-rotation", "Secrets rotation"),
        ("security/envelope-encryption", "Envelope encryption"),
    ],
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    lessons, problems = discover(args.root)
    for problem in problems:
        print(problem, file=sys.stderr)
    if args.markdown:
        print(markdown_table(lessons, args.root))
    else:
        print(text_listing(lessons))
    return 1 if problems else 0


def ordered(lessons: list[Lesson]) -> list[Lesson]:
    """Foundations first, then the categories in the template's order; easy before hard."""
    folder_rank = {folder: i for i, folder in enumerate(LESSON_FOLDERS)}
    level_rank = {level: i for i, level in enumerate(DIFFICULTIES)}
    return sorted(
        lessons,
        key=lambda lesson: (
            folder_rank.get(lesson.folder, len(folder_rank)),
            level_rank.get(str(lesson.metadata.get("difficulty")), len(level_rank)),
            lesson.title.lower(),
        ),
    )


def _field(lesson: Lesson, name: str) -> str:
    value = lesson.metadata.get(name)
    return "?" if value in (None, "") else str(value)


def _minutes(lesson: Lesson) -> str:
    value = lesson.metadata.get("reading_time")
    return f"{value} min" if isinstance(value, int) else "?"


def _status(lesson: Lesson) -> str:
    return STATUS_WORDS.get(lesson.status, lesson.status)


def text_listing(lessons: list[Lesson]) -> str:
    """The catalog as plain text, one block per category."""
    if not lessons:
        return "No lessons yet."
    lines: list[str] = []
    folder = None
    slug_width = max(len(lesson.slug) for lesson in lessons)
    title_width = max(len(lesson.title) for lesson in lessons)
    for lesson in ordered(lessons):
        if lesson.folder != folder:
            folder = lesson.folder
            lines.append(("\n" if lines else "") + folder)
        lines.append(
            f"  {lesson.slug:<{slug_width}}  {lesson.title:<{title_width}}  "
            f"{_field(lesson, 'difficulty'):<12} "
            f"{_minutes(lesson):>7}  {lesson.status}"
        )
    return "\n".join(lines)


def markdown_table(lessons: list[Lesson], from_dir: Path) -> str:
    """The catalog as a Markdown table whose links are relative to ``from_dir``."""
    if not lessons:
        return "_No lessons yet._"
    rows = [
        "| Category | Lesson | Difficulty | Reading time | Status |",
        "|---|---|---|---|---|",
    ]
    for lesson in ordered(lessons):
        rows.append(
            f"| {lesson.folder} | [{lesson.title}]({lesson.link(from_dir)}) "
            f"| {_field(lesson, 'difficulty')} | {_minutes(lesson)} | {_status(lesson)} |"
        )
    return "\n".join(rows)


def github_repository(folder: Path) -> str | None:
    """``owner/name`` from ``[tool.course] github`` of the ``pyproject.toml`` at or above
    ``folder``, or None.

    A committed setting, not the clone's git remote: every clone (a fork, CI's clone of a local
    path) then generates the same README and start page, so ``course sync --check`` agrees.
    """
    import tomllib

    for directory in (folder.resolve(), *folder.resolve().parents):
        pyproject = directory / "pyproject.toml"
        if pyproject.exists():
            setting = tomllib.loads(pyproject.read_text(encoding="utf-8")).get(
                "tool", {}).get("course", {}).get("github")
            if setting is not None and not GITHUB_REPOSITORY.match(str(setting)):
                raise ValueError(f"{pyproject}: [tool.course] github must be 'owner/name' "
                                 f"(got {setting!r})")
            return setting
    return None


def binder_block(lessons: list[Lesson], from_dir: Path) -> str:
    """The Binder badge for the course's GitHub repository, or one line on how to get it."""
    repository = github_repository(from_dir)
    if repository is None:
        return BINDER_OFF
    url = (f"https://mybinder.org/v2/gh/{repository}/HEAD"
           "?urlpath=lab/tree/notebooks/index.ipynb")
    return (f"[![Binder](https://mybinder.org/badge_logo.svg)]({url}) "
            "Run the course in your browser on Binder, no installation needed.")


def level_paths(lessons: list[Lesson]) -> dict[str, list[Lesson]]:
    """The lessons of each level, in course order, the capstone lab left out (it ends every
    path)."""
    return {level: [lesson for lesson in ordered(lessons)
                    if lesson.metadata.get("difficulty") == level and lesson.folder != CAPSTONE]
            for level in DIFFICULTIES}


def learning_paths(lessons: list[Lesson], from_dir: Path) -> str:
    """Paths by level (from the lessons' difficulty) and by goal (from the syllabus), each
    ending with the capstone lab."""
    by_slug = {lesson.slug: lesson for lesson in lessons}

    def entry(slug: str, title: str) -> str:
        lesson = by_slug.get(slug)
        if lesson is None:
            return f"{title} (planned)"
        return f"[{lesson.title}]({lesson.link(from_dir)}) ({_status(lesson)})"

    capstone = entry(*CAPSTONE_LAB)
    lines = ["**By level**", ""]
    for level, at_level in level_paths(lessons).items():
        names = ", ".join(entry(lesson.slug, lesson.title) for lesson in at_level)
        lines.append(f"- {level.capitalize()}: {names or 'no lessons yet'}; then {capstone}")
    lines += ["", "**By goal**", ""]
    for goal, path in GOAL_PATHS.items():
        lines.append(f"- {goal}: "
                     + " → ".join(entry(slug, title) for slug, title in [*path, CAPSTONE_LAB]))
    return "\n".join(lines)


BLOCKS: dict[str, Callable[[list[Lesson], Path], str]] = {
    "binder": binder_block,
    "course-map": markdown_table,
    "learning-paths": learning_paths,
}


def block_files(root: Path = ROOT) -> dict[Path, tuple[str, ...]]:
    """The files that carry generated blocks, with the blocks each must have."""
    return {
        Path(root) / "README.md": ("binder", "course-map"),
        start_page(root): ("binder", "course-map", "learning-paths"),
    }


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- {re.escape(name)}:start -->\n)(.*?)(<!-- {re.escape(name)}:end -->)", re.DOTALL
    )


def refresh_blocks(
    text: str, lessons: list[Lesson], from_dir: Path, required: tuple[str, ...] = ()
) -> str:
    """``text`` with every known block rewritten; ValueError names a required block not found."""
    missing = [name for name in required if not _pattern(name).search(text)]
    if missing:
        raise ValueError(
            "missing generated block(s) "
            + ", ".join(f"<!-- {name}:start --> ... <!-- {name}:end -->" for name in missing)
        )
    for name, render in BLOCKS.items():
        content = "\n" + render(lessons, from_dir).strip("\n") + "\n\n"  # blank lines around
        text = _pattern(name).sub(lambda m, c=content: m.group(1) + c + m.group(3), text)
    return text
