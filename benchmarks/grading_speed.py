"""How long the grader takes over one honest learner's notebook, lesson by lesson.

Like timing the examiner per paper rather than per pile: for every solutions notebook with
exercises, the solved notebook (every answer right, the slowest honest case: every test runs to
its end) is graded with ``course check``'s own code, first with an empty cache (so that the
grader also runs the solution once, for the reference count of checks it keeps per lesson),
then ``--repeat`` more times; the first time and the median of the others are printed, in
wall-clock seconds, with their means over lessons. The figures of issue 14 (a sandbox and a
fresh interpreter per exercise) are in ``benchmarks/RESULTS.md``.

    .venv/bin/python benchmarks/grading_speed.py --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from course import grader, paths, release  # noqa: E402
from course.notebook_files import ipynb_text, read_markdown  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3,
                        help="gradings per lesson after the first (default 3)")
    args = parser.parse_args()
    firsts, medians = [], []
    print(f"{'lesson':<34} {'first s':>8} {'median s':>9}  points")
    with tempfile.TemporaryDirectory() as folder:
        os.environ["XDG_CACHE_HOME"] = str(Path(folder) / "cache")  # no reference kept yet
        for solution_md in release.solution_sources(paths.SOLUTIONS):
            nb = read_markdown(solution_md)
            if not release.exercises_of(nb):
                continue
            solved = Path(folder) / f"{solution_md.stem}.ipynb"
            solved.write_text(ipynb_text(nb), encoding="utf-8")
            times = []
            for _ in range(args.repeat + 1):
                start = time.perf_counter()
                report = grader.grade(solved, solution=solution_md)
                times.append(time.perf_counter() - start)
            firsts.append(times[0])
            medians.append(statistics.median(times[1:]))
            lesson = solution_md.relative_to(paths.SOLUTIONS).with_suffix("")
            print(f"{str(lesson):<34} {firsts[-1]:>8.2f} {medians[-1]:>9.2f}  "
                  f"{report.points:g}/{report.max_points:g}", flush=True)
    print(f"{'mean':<34} {statistics.mean(firsts):>8.2f} {statistics.mean(medians):>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
