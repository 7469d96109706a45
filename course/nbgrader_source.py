"""``course nbgrader-source``: lay out nbgrader's course folder from solutions/.

Like setting out the master copies of each exam in the folder the photocopier reads from: for
every lesson asked for, the solutions notebook (answers and hidden tests included) becomes
``<out>/source/<slug>/<slug>.ipynb``, one nbgrader assignment per lesson, and the class's
``nbgrader_config.py`` is put beside ``source/`` unless one is there already. From there
nbgrader's own ``generate_assignment``, ``release_assignment``, ``collect`` and ``autograde``
take over. The notebook is the one ``course assign`` reads (its markup checked the same way),
with the ``exercise`` metadata the student copies carry, so ``course check --batch`` finds the
lesson of a submission nbgrader collected.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from course import paths, release
from course.notebook_files import NotebookError, ipynb_text, relative

CONFIG = paths.ROOT / "class" / "nbgrader_config.py"


def lesson_sources(lessons: list[str], solutions_root: Path) -> list[Path]:
    """The solutions notebook of each ``<category>/<slug>`` (all of them when none is named);
    NotebookError naming the first lesson that has none."""
    every = release.solution_sources(solutions_root)
    if not lessons:
        return every
    known = {source.relative_to(solutions_root).with_suffix("").as_posix(): source
             for source in every}
    for lesson in lessons:
        if lesson not in known:
            raise NotebookError(f"lesson {lesson!r} has no solutions notebook; allowed: "
                                f"<category>/<slug> of {relative(solutions_root)}/, e.g. "
                                f"{next(iter(sorted(known)), 'resilience/circuit-breaker')}")
    return [known[lesson] for lesson in lessons]


def write_source(sources: list[Path], course_dir: Path, solutions_root: Path) -> list[Path]:
    """Write ``source/<slug>/<slug>.ipynb`` under ``course_dir`` for each solutions notebook,
    and the class's nbgrader_config.py if ``course_dir`` has none; returns the files written."""
    slugs = [source.stem for source in sources]
    twice = sorted({slug for slug in slugs if slugs.count(slug) > 1})
    if twice:
        raise NotebookError(f"assignment names {twice} would be used twice (one assignment per "
                            "lesson slug); name fewer lessons")
    written = []
    for source in sources:
        nb = release.read_solution(source)
        nb.metadata[release.METADATA_KEY] = {"source": release.source_key(source,
                                                                          solutions_root)}
        target = course_dir / "source" / source.stem / f"{source.stem}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(ipynb_text(nb), encoding="utf-8")
        written.append(target)
    config = course_dir / CONFIG.name
    if not config.exists() and CONFIG.is_file():  # not there when installed without the repo
        shutil.copyfile(CONFIG, config)
        written.append(config)
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, metavar="OUT",
                        help="nbgrader's course folder: source/ and nbgrader_config.py go here")
    parser.add_argument("lessons", nargs="*", metavar="LESSON",
                        help="<category>/<slug>, e.g. resilience/circuit-breaker; none means "
                             "every lesson with exercises")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return _usage(f"OUT {out}: is a file; allowed: a folder (created if missing)")
    try:
        written = write_source(lesson_sources(args.lessons, paths.SOLUTIONS), out,
                               paths.SOLUTIONS)
    except (NotebookError, release.MarkupError) as error:
        return _usage(str(error).replace("\n", "; "))
    for path in written:
        print(f"wrote {path}")
    if not (out / CONFIG.name).exists():
        print(f"no {CONFIG.name} in {out}: copy class/{CONFIG.name} from the course repository",
              file=sys.stderr)
    return 0


def _usage(message: str) -> int:
    print(f"course nbgrader-source: {message}", file=sys.stderr)
    return 2
