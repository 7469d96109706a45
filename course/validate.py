"""``course validate``: check lessons against the lesson contract.

Like a building inspector with a checklist, the checker walks each lesson and writes one report:
``OK``, or each problem with where it is (cell number and the heading above it). Errors make the
command exit 1; warnings are printed but pass. A file that cannot be read at all (bad YAML, bad
JSON in the twin, no twin, no ``lesson`` front matter, unknown folder) gets one line naming the
file and the problem, and the other lessons are still checked.

Rules for a pattern lesson (``notebooks/<category>/<slug>.md``):

- Front matter (error at any status): every field present; title, description, when_to_use and
  when_not_to_use non-empty text; category equal to the folder; difficulty and status from
  ``course.paths``; reading_time a positive whole number of minutes; last_updated a real date
  written YYYY-MM-DD; prerequisites a list. Unknown fields are warnings.
- Opening (error at any status): before the first ``##`` heading, a ``# Title`` equal to the
  front-matter title, a bold one-line value proposition (``**...**``) and a quote line (``> ...``).
- Card (error at any status): the first code cell calls ``show_card("<folder>/<slug>")`` with the
  lesson's own slug.
- Links (error at any status): every relative link to a ``.md`` or ``.ipynb`` file resolves.
- Structure: the seven ``##`` sections of the template in order (the five levels, accepted with
  or without their emoji, then Additional Resources and Pattern Checklist), each with the
  sub-sections the contract names (``###`` or deeper, matched by prefix so "Production Example:
  Netflix" counts), and a ```` ```mermaid ```` block in a Markdown cell. Level 3 must also hold a
  "Production-Grade Implementation" sub-section: the template folds it into Production Example,
  the contract names it as its own part, and we follow the contract. Structure problems are
  errors for ``partial`` and ``complete`` lessons and warnings for a ``stub`` (whose levels may be
  empty or missing).
- Completeness (``complete`` only, errors): no template placeholder (a ``[Capitalised text]``
  in prose that is not a link, a checkbox, inline code or ``$math$``, nor an index such as
  ``E[S]``; in code the template's tokens ``[PatternName]``, ``[pattern]``, ``[method]``,
  ``[core_method]``), no ``TODO``, no class or function whose body is
  only ``pass`` (a docstring alone is fine), and ``solutions/<category>/<slug>.md`` exists with at
  least three graded test cells (nbgrader ``grade: true`` with positive ``points``).
- Layout (``complete`` only, errors): the lesson's files in the other trees exist
  (``course.paths.code_paths``: its pattern in ``patterns/``, its study in ``simulations/``, its
  tests in ``tests/``), and the lesson's code cells import its pattern and its study from there.

Foundations lessons (``notebooks/foundations/*``) are not patterns: front matter (category
``foundations``), opening, card, mermaid and links are checked as above, completeness and layout
too but without the solutions requirement and with no pattern module (a foundations lesson
teaches a model); the level headings are optional. The capstone lab (``notebooks/capstone/*``)
composes the patterns of the other lessons: it is checked like a pattern lesson (its exercises in
``solutions/`` included) except that it has no pattern module and, instead of the template's
levels, holds the lab's own ``##`` sections in order (``CAPSTONE_SECTIONS``), the last being
Exercises. The start page
``notebooks/index.md`` is checked for its links only.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from course.lessons import (
    FOUNDATIONS,
    Lesson,
    LessonError,
    UsageError,
    in_scope,
    lesson_sources,
    load_lesson,
    resolve_paths,
    start_page,
)
from course.notebook_files import NotebookError, read_ipynb, read_markdown, relative, twin_of
from course.paths import (
    CAPSTONE,
    DIFFICULTIES,
    LESSON_FOLDERS,
    ROOT,
    STATUSES,
    code_paths,
    module_of,
)

REQUIRED_FIELDS = (
    "title", "description", "category", "difficulty", "reading_time", "prerequisites",
    "when_to_use", "when_not_to_use", "status", "last_updated",
)
TEXT_FIELDS = ("title", "description", "when_to_use", "when_not_to_use")

# The template's ## sections in order, each with the sub-sections the contract names.
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("🎯 Level 1: Intuition", ("Core Concept", "Visual Overview", "Key Benefits")),
    ("🏗️ Level 2: Core Implementation", ("Basic Structure", "Key Components", "Example Usage")),
    ("🚀 Level 3: Real-World Usage", (
        "Production Example", "Production-Grade Implementation", "Common Pitfalls",
        "Performance Considerations",
    )),
    ("⚡ Level 4: Advanced Techniques", (
        "Optimization Strategies", "Integration Patterns", "Monitoring & Observability",
    )),
    ("🔬 Level 5: Deep Dive", (
        "Mathematical Foundation", "Research Papers", "Industry Evolution", "Future Directions",
    )),
    ("📚 Additional Resources", ("Implementations", "Tools & Libraries", "Related Patterns")),
    ("✅ Pattern Checklist", ()),
)
# The capstone lab's ## sections in order: the system, the day it must survive, the learner's
# design, how to read what happened, how it is scored, and the graded exercises.
CAPSTONE_SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("🗺️ The System", ()),
    ("🌩️ The Bad Day", ()),
    ("🧰 Your Design", ()),
    ("📊 The Dashboard", ()),
    ("🏁 The Score Card", ()),
    ("Exercises", ()),
)
CODE_PLACEHOLDERS = ("[PatternName]", "[pattern]", "[method]", "[core_method]")
MIN_GRADED_TESTS = 3

HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
INLINE_CODE = re.compile(r"`[^`\n]*`")
INLINE_MATH = re.compile(r"\$\$?[^$\n]+\$\$?")
MD_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_LINK = re.compile(r"""href=["']([^"']+)["']""")
PROSE_PLACEHOLDER = re.compile(r"(?<![\w!\\\]])\[([A-Z][^\[\]\n]*)\](?![(\[:])")
MERMAID = re.compile(r"^(```|~~~)\s*\{?mermaid\}?\s*$", re.MULTILINE)
TODO = re.compile(r"\bTODO\b")


@dataclass(frozen=True)
class Finding:
    level: str  # "error" or "warning"
    where: str
    message: str


@dataclass
class Report:
    """What the checker found in one file; ``broken`` is set when the file could not be read."""

    path: Path
    findings: list[Finding] = field(default_factory=list)
    broken: str | None = None

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    @property
    def failed(self) -> bool:
        return bool(self.broken or self.errors)

    def render(self) -> str:
        if self.broken:
            return self.broken
        name = relative(self.path)
        if not self.findings:
            return f"{name}: OK"
        head = (f"{name}: {len(self.errors)} error(s), {len(self.warnings)} warning(s)"
                if self.errors else f"{name}: OK ({len(self.warnings)} warning(s))")
        body = [f"  {f.level}: {f.where}: {f.message}" for f in self.findings]
        return "\n".join([head, *body])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                        help="only the lessons in these files or folders (default: all)")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    try:
        reports = validate(args.root, resolve_paths(args.paths))
    except UsageError as error:
        print(f"course validate: {error}", file=sys.stderr)
        return 2
    for report in reports:
        print(report.render())
    failed = [r for r in reports if r.failed]
    print(f"{len(reports)} file(s) checked, {len(failed)} with errors", file=sys.stderr)
    return 1 if failed else 0


def validate(root: Path = ROOT, scopes: list[Path] | None = None) -> list[Report]:
    """One report per lesson (and the start page) in scope; UsageError if a scope holds none."""
    scopes = scopes or []
    paths = [p for p in lesson_sources(root) if in_scope(p, scopes)]
    index = start_page(root)
    reports = [check_start_page(index)] if index.exists() and in_scope(index, scopes) else []
    reports += [check_file(path) for path in paths]
    for scope in scopes:
        if not any(in_scope(report.path, [scope]) for report in reports):
            raise UsageError(f"no lesson in {scope} (lessons are notebooks/<folder>/<slug>.md)")
    return reports


def _read_pair(path: Path) -> nbformat.NotebookNode:
    """The notebook from its .md, after making sure its .ipynb twin exists and is valid JSON."""
    twin = twin_of(path)
    if not twin.exists():
        raise NotebookError(f"{relative(path)}: no .ipynb twin (run `course sync`)")
    read_ipynb(twin)
    return read_markdown(path)


def check_start_page(path: Path) -> Report:
    report = Report(path)
    try:
        nb = _read_pair(path)
    except NotebookError as error:
        report.broken = str(error)
        return report
    report.findings += check_links(nb, path)
    return report


def check_file(path: Path) -> Report:
    """The full report for one lesson file."""
    report = Report(path)
    try:
        lesson = load_lesson(path)
        nb = _read_pair(path)
    except (LessonError, NotebookError) as error:
        report.broken = str(error)
        return report
    status = lesson.metadata.get("status")
    structure_level = "warning" if status == "stub" else "error"
    findings = check_front_matter(lesson)
    findings += check_opening(nb, lesson)
    findings += check_card(nb, lesson)
    findings += check_links(nb, path)
    findings += [
        Finding(structure_level, where, message)
        for where, message in check_mermaid(nb)
        + (check_sections(nb) if lesson.is_pattern else [])
        + (check_sections(nb, CAPSTONE_SECTIONS) if lesson.folder == CAPSTONE else [])
    ]
    if status == "complete":
        findings += check_complete(nb)
        findings += check_layout(nb, lesson)
        if lesson.folder != FOUNDATIONS:
            findings += check_solutions(lesson)
    findings += check_exercise_links(nb, lesson, structure_level)
    report.findings = findings
    return report


# -- front matter --------------------------------------------------------------------------


def check_front_matter(lesson: Lesson) -> list[Finding]:
    meta = lesson.metadata
    problems: list[str] = []
    missing = [name for name in REQUIRED_FIELDS if name not in meta]
    if missing:
        problems.append("missing field(s): " + ", ".join(missing))
    for name in TEXT_FIELDS:
        if name in meta and (not isinstance(meta[name], str) or not meta[name].strip()):
            problems.append(f"{name} must be non-empty text, got {meta[name]!r}")
    category = meta.get("category")
    if "category" in meta and category not in LESSON_FOLDERS:
        problems.append(f"unknown category {category!r} (allowed: {', '.join(LESSON_FOLDERS)})")
    elif "category" in meta and category != lesson.folder:
        problems.append(f"category {category!r} does not match the folder {lesson.folder!r}")
    for name, allowed in (("difficulty", DIFFICULTIES), ("status", STATUSES)):
        if name in meta and meta[name] not in allowed:
            problems.append(f"{name} {meta[name]!r} is not one of {', '.join(allowed)}")
    minutes = meta.get("reading_time")
    if "reading_time" in meta and (
        not isinstance(minutes, int) or isinstance(minutes, bool) or minutes <= 0
    ):
        problems.append(f"reading_time must be a positive whole number of minutes, got {minutes!r}")
    if "last_updated" in meta and not _is_date(meta["last_updated"]):
        problems.append(
            f"last_updated must be a real date written YYYY-MM-DD, got {meta['last_updated']!r}"
        )
    if "prerequisites" in meta and not isinstance(meta["prerequisites"], list):
        problems.append(f"prerequisites must be a list, got {meta['prerequisites']!r}")
    findings = [Finding("error", "front matter", problem) for problem in problems]
    unknown = sorted(set(meta) - set(REQUIRED_FIELDS) - {"type"})
    if unknown:
        findings.append(
            Finding("warning", "front matter", "unknown field(s): " + ", ".join(unknown))
        )
    return findings


def _is_date(value: object) -> bool:
    if isinstance(value, datetime.date):
        return True
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return False
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        return False
    return True


# -- cells and headings --------------------------------------------------------------------


@dataclass(frozen=True)
class Heading:
    cell: int  # 1-based cell number
    line: int  # 0-based line in the cell
    depth: int
    text: str

    @property
    def key(self) -> str:
        return normalise(self.text)

    def __str__(self) -> str:
        return f"cell {self.cell} ({'#' * self.depth} {self.text})"


def normalise(title: str) -> str:
    """A heading without its leading emoji and with case folded, for comparison."""
    return re.sub(r"^[^\w\[]+", "", title).strip().casefold()


def markdown_lines(nb: nbformat.NotebookNode) -> Iterator[tuple[int, int, str, bool]]:
    """(cell number, line index, line, inside a fenced block) for every Markdown line."""
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "markdown":
            continue
        fence = None
        for index, line in enumerate(cell.source.splitlines()):
            stripped = line.strip()
            if fence is None and stripped.startswith(("```", "~~~")):
                fence = stripped[:3]
                yield number, index, line, True
            elif fence is not None and stripped.startswith(fence) and not stripped.strip("`~"):
                fence = None
                yield number, index, line, True
            else:
                yield number, index, line, fence is not None


def headings(nb: nbformat.NotebookNode) -> list[Heading]:
    found = []
    for number, index, line, fenced in markdown_lines(nb):
        match = None if fenced else HEADING.match(line)
        if match:
            found.append(Heading(number, index, len(match.group(1)), match.group(2)))
    return found


def _where(nb: nbformat.NotebookNode, cell: int, line: int | None = None) -> str:
    """``cell N (the heading above)``: above the cell's ``line``, or above its end."""
    position = (cell, line if line is not None else float("inf"))
    above = [h for h in headings(nb) if (h.cell, h.line) <= position]
    return f"cell {cell} ({'#' * above[-1].depth} {above[-1].text})" if above else f"cell {cell}"


# -- opening, card, mermaid, links ---------------------------------------------------------


def check_opening(nb: nbformat.NotebookNode, lesson: Lesson) -> list[Finding]:
    opening: list[tuple[int, str]] = []  # (cell, line) before the first ## heading
    for number, _, line, fenced in markdown_lines(nb):
        if line.startswith("## ") and not fenced:
            break
        if not fenced:
            opening.append((number, line))
    titles = [(n, line[2:].strip()) for n, line in opening if line.startswith("# ")]
    findings = []
    if not titles:
        findings.append(Finding("error", "opening", "no '# Title' heading before the first level"))
    elif titles[0][1] != lesson.metadata.get("title"):
        wanted = lesson.metadata.get("title")
        message = f"title {titles[0][1]!r} differs from the front matter's {wanted!r}"
        findings.append(Finding("error", f"cell {titles[0][0]}", message))
    if not any(re.fullmatch(r"\*\*[^*].*\*\*", line.strip()) for _, line in opening):
        findings.append(Finding("error", "opening",
                                "no bold one-line value proposition ('**...**') under the title"))
    if not any(re.match(r">\s*\S", line) for _, line in opening):
        findings.append(Finding("error", "opening", "no quote or insight line ('> ...')"))
    return findings


def _show_card_slugs(source: str) -> list[object] | None:
    """The first argument of every show_card(...) call in ``source`` (None if unparseable)."""
    try:
        tree = ast.parse(_without_magics(source))
    except SyntaxError:
        return None
    slugs: list[object] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name == "show_card":
                first = node.args[0] if node.args else None
                slugs.append(first.value if isinstance(first, ast.Constant) else None)
    return slugs


def check_card(nb: nbformat.NotebookNode, lesson: Lesson) -> list[Finding]:
    expected = f'show_card("{lesson.slug}")'
    code = [(n, c) for n, c in enumerate(nb.cells, start=1) if c.cell_type == "code"]
    if not code:
        return [Finding("error", "lesson card", f"no code cell; the first must call {expected}")]
    number, cell = code[0]
    slugs = _show_card_slugs(cell.source)
    if not slugs:
        return [Finding("error", _where(nb, number),
                        f"the first code cell must call {expected} (the lesson card)")]
    if lesson.slug not in slugs:
        return [Finding("error", _where(nb, number),
                        f"show_card is called with {slugs[0]!r}; this lesson is {lesson.slug!r}")]
    return []


def check_mermaid(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    if any(c.cell_type == "markdown" and MERMAID.search(c.source) for c in nb.cells):
        return []
    return [("Level 1 (Visual Overview)", "no ```mermaid diagram in a Markdown cell")]


def check_links(nb: nbformat.NotebookNode, path: Path) -> list[Finding]:
    findings = []
    for number, index, line, fenced in markdown_lines(nb):
        text = "" if fenced else INLINE_CODE.sub("", line)
        for target in MD_LINK.findall(text) + HTML_LINK.findall(text):
            if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target, re.IGNORECASE):
                continue
            local = target.split("#", 1)[0].split("?", 1)[0]
            if Path(local).suffix in (".md", ".ipynb") and not (path.parent / local).exists():
                findings.append(Finding("error", _where(nb, number, index),
                                        f"link {target!r} does not resolve to a file"))
            elif Path(local).suffix == ".md" and (path.parent / local).with_suffix(
                    ".ipynb").exists():
                findings.append(Finding("error", _where(nb, number, index),
                                        f"link {target!r} opens the notebook's source; link "
                                        f"its .ipynb (JupyterLab and the website open that)"))
    return findings


# -- structure -----------------------------------------------------------------------------


def check_sections(nb: nbformat.NotebookNode, sections=SECTIONS) -> list[tuple[str, str]]:
    """``sections`` (the template's by default) in order, each with its sub-sections:
    (where, message) pairs."""
    found = headings(nb)
    problems: list[tuple[str, str]] = []
    tops = [h for h in found if h.depth == 2]
    last_position = -1
    for title, subsections in sections:
        position = next((i for i, h in enumerate(tops) if h.key == normalise(title)), None)
        if position is None:
            problems.append(("lesson", f"missing heading '## {title}'"))
            continue
        heading = tops[position]
        if position < last_position:
            problems.append((str(heading), "out of order: the order is "
                             + " → ".join(t for t, _ in sections)))
        last_position = max(last_position, position)
        start = found.index(heading)
        end = found.index(tops[position + 1]) if position + 1 < len(tops) else len(found)
        inside = [h for h in found[start + 1:end] if h.depth >= 3]
        for name in subsections:
            if not any(h.key.startswith(normalise(name)) for h in inside):
                problems.append((str(heading), f"missing sub-section '### {name}'"))
    return problems


# -- completeness --------------------------------------------------------------------------


def _without_magics(source: str) -> str:
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                     for line in source.splitlines())


def _pass_only(node: ast.AST) -> bool:
    body = list(getattr(node, "body", []))
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    return bool(body) and all(isinstance(statement, ast.Pass) for statement in body)


def check_complete(nb: nbformat.NotebookNode) -> list[Finding]:
    """No placeholder, TODO or pass-only definition survives in a complete lesson."""
    findings = []
    for number, index, line, fenced in markdown_lines(nb):
        findings += _leftovers(_where(nb, number, index), line, fenced)
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code":
            continue
        where = _where(nb, number)
        findings += _leftovers(where, cell.source, code=True)
        try:
            tree = ast.parse(_without_magics(cell.source))
        except SyntaxError as error:
            findings.append(Finding("warning", where, f"not parseable as Python ({error.msg})"))
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) \
                    and _pass_only(node):
                findings.append(Finding("error", where,
                                        f"{node.name!r} has only 'pass' as its body"))
    return findings


def _leftovers(where: str, text: str, code: bool) -> list[Finding]:
    """TODO and template placeholders in one Markdown line or one code cell."""
    findings = []
    if TODO.search(text):
        findings.append(Finding("error", where, "TODO left in a complete lesson"))
    if code:
        tokens = [token for token in CODE_PLACEHOLDERS if token in text]
    else:
        plain = INLINE_MATH.sub("", INLINE_CODE.sub("", text))
        tokens = [f"[{token}]" for token in PROSE_PLACEHOLDER.findall(plain)]
    if tokens:
        message = "template placeholder(s) left: " + ", ".join(tokens)
        findings.append(Finding("error", where, message))
    return findings


def imported_modules(nb: nbformat.NotebookNode) -> set[str]:
    """Every module the notebook's code cells import from (``import m`` or ``from m import``)."""
    modules: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(_without_magics(cell.source))
        except SyntaxError:
            continue  # check_complete reports it
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules.add(node.module)
            elif isinstance(node, ast.Import):
                modules.update(alias.name for alias in node.names)
    return modules


def check_layout(nb: nbformat.NotebookNode, lesson: Lesson) -> list[Finding]:
    """A complete lesson's pattern, study and tests exist, and the lesson imports the first two."""
    root = lesson.path.parent.parent.parent
    findings, imported = [], imported_modules(nb)
    for tree, path in code_paths(root, lesson.folder, lesson.name).items():
        if tree == "solutions":
            continue  # check_solutions counts its graded cells
        if not path.exists():
            findings.append(Finding("error", "layout", f"no {tree} file: {relative(path)} "
                                    "does not exist (see docs/authoring.md, 'Where each piece "
                                    "lives')"))
        elif tree != "tests" and module_of(path, root) not in imported:
            findings.append(Finding("error", "layout", f"the lesson never imports "
                                    f"{module_of(path, root)}: show its code from there "
                                    "rather than keeping a copy"))
    return findings


def check_solutions(lesson: Lesson) -> list[Finding]:
    """A complete pattern lesson has its graded exercises in solutions/<category>/<slug>.md."""
    path = lesson.path.parent.parent.parent / "solutions" / lesson.folder / f"{lesson.name}.md"
    where = "exercises"
    if not path.exists():
        return [Finding("error", where, f"no exercises: {relative(path)} does not exist")]
    try:
        nb = read_markdown(path)
    except NotebookError as error:
        return [Finding("error", where, str(error))]
    graded = [
        cell for cell in nb.cells
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade") is True
        and isinstance(cell.metadata.nbgrader.get("points"), int | float)
        and cell.metadata.nbgrader.points > 0
    ]
    if len(graded) < MIN_GRADED_TESTS:
        return [Finding("error", where,
                        f"{relative(path)} has {len(graded)} graded test cell(s); "
                        f"a complete lesson needs at least {MIN_GRADED_TESTS}")]
    return []


# -- the way between a lesson and its exercises -----------------------------------------------

EXERCISES_HEADING = "exercises"
CHECK_CALL = re.compile(r"^\s*check_my_answers\(\s*[\"']([^\"']+)[\"']\s*\)", re.MULTILINE)


def _links(nb: nbformat.NotebookNode, cells: range) -> set[str]:
    return {target.split("#", 1)[0] for number, _, line, fenced in markdown_lines(nb)
            if number in cells and not fenced
            for target in MD_LINK.findall(INLINE_CODE.sub("", line))}


def check_exercise_links(nb: nbformat.NotebookNode, lesson: Lesson, level: str = "error"
                         ) -> list[Finding]:
    """A lesson with exercises ends with an Exercises section linking its exercise notebook,
    and that notebook opens with a link back and ends with the "Check my answers" cell
    (`level` is "warning" for a stub)."""
    course = lesson.path.parent.parent.parent
    solution = course / "solutions" / lesson.folder / f"{lesson.name}.md"
    if not solution.exists():
        return []
    findings = []
    exercises = f"../../exercises/{lesson.folder}/{lesson.name}.ipynb"
    tops = [h for h in headings(nb) if h.depth == 2]
    if not tops or tops[-1].key != EXERCISES_HEADING:
        findings.append(Finding(level, "lesson", "the last section must be '## Exercises' "
                                f"(it links {exercises})"))
    elif exercises not in _links(nb, range(tops[-1].cell, len(nb.cells) + 1)):
        findings.append(Finding(level, str(tops[-1]), f"does not link {exercises}"))
    try:
        exercise_nb = read_markdown(solution)
    except NotebookError as error:
        return [*findings, Finding(level, "exercises", str(error))]
    where = relative(solution)
    back = f"../../notebooks/{lesson.folder}/{lesson.name}.ipynb"
    first = next((n for n, c in enumerate(exercise_nb.cells, 1) if c.cell_type == "markdown"), 0)
    if back not in _links(exercise_nb, range(first, first + 1)):
        findings.append(Finding(level, where, f"its opening does not link back to {back}"))
    code = [cell.source for cell in exercise_nb.cells if cell.cell_type == "code"]
    called = CHECK_CALL.findall(code[-1]) if code else []
    if called != [f"{lesson.name}.ipynb"]:
        findings.append(Finding(level, where, "its last code cell must be "
                                f"check_my_answers({lesson.name + '.ipynb'!r}), the \"Check my "
                                "answers\" cell"))
    return findings
