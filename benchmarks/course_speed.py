"""How fast the course feels: each lesson's Run All, each slider's redraw, each part of the suite.

Like timing a commute leg by leg (walk to the station, the train, the walk at the other end) to
see which leg to fix, this script times the three waits a learner or an author meets:

- **Run All** of every lesson in a fresh kernel, with the kernel's start reported apart;
- **redraw** of every ``explore`` control: the lesson's ``draw`` at the default settings and at
  the two ends of each control's range (the others at their defaults), rendered to PNG as the
  inline backend does, ``--repeat`` times each (median and worst);
- **the test suite**, part by part (lint and checks, toolkit and tooling tests, lesson tests,
  notebooks, exercise workflow, browser), with a projection to 55 lessons: the parts that grow
  with the lessons scale by 55 / (lessons now), the rest stays.

It prints a table and writes JSON (``--json``, default ``benchmarks/course_speed.json``).
``--check`` exits 1 when a budget is broken (Run All median over 10 s or worst over 20 s; a
redraw over 0.5 s or a control's median over 0.25 s; the suite projected over 15 min).

    .venv/bin/python benchmarks/course_speed.py                  # everything (about 15 min)
    .venv/bin/python benchmarks/course_speed.py --no-suite       # lessons and sliders only
    .venv/bin/python benchmarks/course_speed.py --lessons resilience/timeouts --no-suite
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dev  # noqa: E402  (the README's test command: its checks and its pytest options)
from course.lessons import discover  # noqa: E402

PROJECTED_LESSONS = 55
BUDGETS = {"run_all_median_s": 10.0, "run_all_worst_s": 20.0, "redraw_worst_s": 0.5,
           "redraw_median_s": 0.25, "suite_projected_s": 15 * 60}

# Run in the lesson's kernel before its first cell: record every explore() call.
RECORD = """
import course.explore as _course_explore
_BENCH_CALLS = []
_bench_explore = getattr(_course_explore, "_unrecorded", _course_explore.explore)
_course_explore._unrecorded = _bench_explore
def _recording_explore(draw, **controls):
    _BENCH_CALLS.append((draw, controls))
    return _bench_explore(draw, **controls)
_course_explore.explore = _recording_explore
"""

# Run after the last cell: time each recorded draw at its default and at each control's ends.
TIME_REDRAWS = """
import inspect as _inspect, io as _io, json as _json, statistics as _st, time as _time
import matplotlib.pyplot as _plt
from simulations.plots import INLINE_PNG as _INLINE_PNG  # as the lesson's inline figures render

def _ends(abbrev, default):
    if isinstance(abbrev, bool):
        return [not default]
    if isinstance(abbrev, tuple):
        return [abbrev[0], abbrev[1]]
    if isinstance(abbrev, list):
        return [value for value in (abbrev[0], abbrev[-1]) if value != default]
    return []

def _timed(draw, values, repeat):
    seconds = []
    for _ in range(repeat):
        start = _time.perf_counter()
        with _plt.ioff():
            draw(**values)
            figure = _plt.gcf()
        figure.savefig(_io.BytesIO(), format="png", dpi=2 * figure.dpi, **_INLINE_PNG)
        _plt.close(figure)
        seconds.append(_time.perf_counter() - start)
    return seconds

_rows = []
for _draw, _controls in _BENCH_CALLS:
    _params = _inspect.signature(_draw).parameters
    _defaults = {name: _params[name].default for name in _controls}
    _rows.append({"draw": _draw.__name__, "control": "(defaults)", "value": None,
                  "seconds": _timed(_draw, _defaults, REPEAT)})
    for _name, _abbrev in _controls.items():
        for _value in _ends(_abbrev, _defaults[_name]):
            _rows.append({"draw": _draw.__name__, "control": _name, "value": _value,
                          "seconds": _timed(_draw, {**_defaults, _name: _value}, REPEAT)})
print(_json.dumps(_rows))
"""


def lesson_speed(slug: str, repeat: int, timeout: int) -> dict:
    """Run one lesson's twin in a fresh kernel; time the kernel start, Run All and redraws."""
    import nbformat
    from nbclient import NotebookClient

    path = ROOT / "notebooks" / f"{slug}.ipynb"
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(path.parent)}})
    record = nbformat.v4.new_code_cell(RECORD)
    timing = nbformat.v4.new_code_cell(f"REPEAT = {repeat}\n" + TIME_REDRAWS)
    nb.cells = [record, *nb.cells, timing]
    started = time.perf_counter()
    with client.setup_kernel():
        kernel_s = time.perf_counter() - started
        client.execute_cell(record, 0)
        started = time.perf_counter()
        for index, cell in enumerate(nb.cells[1:-1], start=1):
            client.execute_cell(cell, index)
        run_all_s = time.perf_counter() - started
        client.execute_cell(timing, len(nb.cells) - 1)
    printed = "".join(out.get("text", "") for out in timing.outputs if out.output_type == "stream")
    redraws = json.loads(printed.strip().splitlines()[-1]) if printed.strip() else []
    return {"lesson": slug, "kernel_start_s": kernel_s, "run_all_s": run_all_s,
            "redraws": redraws}


def suite_parts() -> list[tuple[str, list[str], bool]]:
    """(part, command, grows with the lessons) for each part of the README's test command."""
    python = str(dev.PYTHON)
    lesson_tests = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").iterdir()
                          if p.is_dir() and p.name not in ("simulations", "course", "patterns",
                                                           "exercises", "browser"))
    pytest = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider"]  # options: pyproject
    return [
        *((f"check: {name}", [python, *args], True) for name, args in dev.CHECKS),
        ("toolkit and tooling tests", [*pytest, "tests/simulations", "tests/course",
                                       "tests/patterns"], False),
        ("lesson tests", [*pytest, *lesson_tests], True),
        ("notebooks (nbval)", [*pytest, *dev.NOTEBOOK_DIRS], True),
        ("exercise workflow", [*pytest, "tests/exercises"], True),
        ("browser", [*pytest, "tests/browser"], True),
    ]


def suite_speed(lessons: int) -> list[dict]:
    rows = []
    for part, command, grows in suite_parts():
        started = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                                env={**os.environ, "CI": os.environ.get("CI", "true")})
        seconds = time.perf_counter() - started
        scale = PROJECTED_LESSONS / lessons if grows else 1.0
        rows.append({"part": part, "seconds": seconds, "projected_s": seconds * scale,
                     "grows_with_lessons": grows, "exit_code": result.returncode})
        print(f"  {part:<40} {seconds:7.1f} s  (exit {result.returncode})", flush=True)
    return rows


def budget_problems(report: dict) -> list[str]:
    problems = []
    runs = [row["run_all_s"] for row in report["lessons"]]
    if runs and statistics.median(runs) > BUDGETS["run_all_median_s"]:
        problems.append(f"Run All median {statistics.median(runs):.1f} s > 10 s")
    for row in report["lessons"]:
        if row["run_all_s"] > BUDGETS["run_all_worst_s"]:
            problems.append(f"{row['lesson']}: Run All {row['run_all_s']:.1f} s > 20 s")
        for redraw in row["redraws"]:
            setting = redraw["control"] if redraw["value"] is None else \
                f"{redraw['control']}={redraw['value']!r}"
            where = f"{row['lesson']} {redraw['draw']} {setting}"
            if max(redraw["seconds"]) > BUDGETS["redraw_worst_s"]:
                problems.append(f"{where}: worst redraw {max(redraw['seconds']):.2f} s > 0.5 s")
            if statistics.median(redraw["seconds"]) > BUDGETS["redraw_median_s"]:
                problems.append(f"{where}: median redraw "
                                f"{statistics.median(redraw['seconds']):.2f} s > 0.25 s")
    if report["suite"]:
        projected = sum(row["projected_s"] for row in report["suite"])
        if projected > BUDGETS["suite_projected_s"]:
            problems.append(f"suite projected to {PROJECTED_LESSONS} lessons: "
                            f"{projected / 60:.1f} min > 15 min")
    return problems


def print_tables(report: dict) -> None:
    print("\n| lesson | kernel start (s) | Run All (s) | redraws | median redraw (s) | worst (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in report["lessons"]:
        times = [t for redraw in row["redraws"] for t in redraw["seconds"]]
        median = f"{statistics.median(times):.2f}" if times else "–"
        worst = f"{max(times):.2f}" if times else "–"
        print(f"| {row['lesson']} | {row['kernel_start_s']:.1f} | {row['run_all_s']:.1f} | "
              f"{len(row['redraws'])} | {median} | {worst} |")
    print("\n| lesson | draw | control = value | median (s) | worst (s) |")
    print("|---|---|---|---:|---:|")
    for row in report["lessons"]:
        for redraw in row["redraws"]:
            value = "" if redraw["value"] is None else f" = {redraw['value']!r}"
            print(f"| {row['lesson']} | {redraw['draw']} | {redraw['control']}{value} | "
                  f"{statistics.median(redraw['seconds']):.2f} | {max(redraw['seconds']):.2f} |")
    if report["suite"]:
        print(f"\n| part of the test suite | now (s) | projected to {PROJECTED_LESSONS} "
              "lessons (s) |")
        print("|---|---:|---:|")
        for row in report["suite"]:
            print(f"| {row['part']} | {row['seconds']:.1f} | {row['projected_s']:.1f} |")
        now = sum(row["seconds"] for row in report["suite"])
        projected = sum(row["projected_s"] for row in report["suite"])
        print(f"| **total** | **{now:.0f}** | **{projected:.0f}** ({projected / 60:.1f} min) |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lessons", nargs="*", metavar="SLUG",
                        help="only these lessons (folder/name); default: every lesson")
    parser.add_argument("--repeat", type=int, default=3, help="redraws per setting (default 3)")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per cell (default 300)")
    parser.add_argument("--no-suite", action="store_true", help="skip timing the test suite")
    parser.add_argument("--no-lessons", action="store_true", help="skip lessons and sliders")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "course_speed.json")
    parser.add_argument("--check", action="store_true", help="exit 1 when a budget is broken")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1 (got {args.repeat})")

    lessons, _problems = discover()
    slugs = [lesson.slug for lesson in lessons]
    unknown = sorted(set(args.lessons or ()) - set(slugs))
    if unknown:
        parser.error(f"no such lesson: {', '.join(unknown)} (lessons: {', '.join(slugs)})")
    chosen = args.lessons or slugs
    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} cores, "
              f"{platform.processor() or platform.machine()}, Python {platform.python_version()}",
              "lessons": [], "suite": []}
    if not args.no_lessons:
        for slug in chosen:
            print(f"lesson {slug} ...", flush=True)
            report["lessons"].append(lesson_speed(slug, args.repeat, args.timeout))
    if not args.no_suite:
        print("test suite, part by part ...", flush=True)
        report["suite"] = suite_speed(len(slugs))
    args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print_tables(report)
    problems = budget_problems(report)
    for problem in problems:
        print(f"over budget: {problem}")
    print(f"\nwrote {args.json.relative_to(ROOT) if args.json.is_relative_to(ROOT) else args.json}")
    return 1 if args.check and problems else 0


if __name__ == "__main__":
    sys.exit(main())
