"""How fast the course feels: each lesson's Run All, each slider's redraw, each part of the suite.

Like timing a commute leg by leg (walk to the station, the train, the walk at the other end) to
see which leg to fix, this script times the three waits a learner or an author meets:

- **Run All** of every lesson in a fresh kernel, with the kernel's start reported apart;
- **redraw** of every ``explore`` control: the lesson's ``draw`` at the default settings and at
  the two ends of each control's range (the others at their defaults), rendered to PNG as
  ``explore`` renders it, ``--repeat`` times each (median and worst); each time as a move
  from the defaults, with the lesson's caches holding only what the defaults computed;
- **the test suite** as the README's test command runs it (the checks, then one pytest run),
  part by part (checks, toolkit and tooling tests, lesson tests, notebooks run, exercise
  workflow, browser) from each test's time in pytest's JUnit report, with a projection to 55
  lessons: the time of the tests that belong to one lesson scales by 55 / (lessons now).

It prints a table and writes JSON (``--json``, default ``benchmarks/course_speed.json``).
``--check`` exits 1 when a budget is broken (Run All median over 10 s or worst over 20 s; a
redraw over 0.5 s or a control's median over 0.25 s; the suite projected over 15 min).

    .venv/bin/python benchmarks/course_speed.py                  # everything (about 12 min)
    .venv/bin/python benchmarks/course_speed.py --no-suite       # lessons and sliders only
    .venv/bin/python benchmarks/course_speed.py --lessons resilience/timeouts --no-suite
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
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
import inspect as _inspect, json as _json, time as _time
import matplotlib.pyplot as _plt
from course.explore import render_png as _render_png  # how explore shows each redraw

def _ends(abbrev, default):
    if isinstance(abbrev, bool):
        return [not default]
    if isinstance(abbrev, tuple):
        return [abbrev[0], abbrev[1]]
    if isinstance(abbrev, list):
        return [value for value in (abbrev[0], abbrev[-1]) if value != default]
    return []

# A lesson may cache what a control does not change (functools.cache): time each move as a
# learner makes it, from the defaults, with only the defaults' results cached.
_CACHES = [value for value in list(globals().values())
           if callable(getattr(value, "cache_clear", None))]

def _drawn(draw, values):
    with _plt.ioff():
        draw(**values)
        figure = _plt.gcf()
    _plt.close(figure)
    return figure

def _timed(draw, values, defaults, repeat):
    seconds = []
    for _ in range(repeat):
        for cached in _CACHES:
            cached.cache_clear()
        _drawn(draw, defaults)
        start = _time.perf_counter()
        _render_png(_drawn(draw, values))
        seconds.append(_time.perf_counter() - start)
    return seconds

_rows = []
for _draw, _controls in _BENCH_CALLS:
    _params = _inspect.signature(_draw).parameters
    _defaults = {name: _params[name].default for name in _controls}
    _rows.append({"draw": _draw.__name__, "control": "(defaults)", "value": None,
                  "seconds": _timed(_draw, _defaults, _defaults, REPEAT)})
    for _name, _abbrev in _controls.items():
        for _value in _ends(_abbrev, _defaults[_name]):
            _rows.append({"draw": _draw.__name__, "control": _name, "value": _value,
                          "seconds": _timed(_draw, {**_defaults, _name: _value}, _defaults,
                                            REPEAT)})
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


# The parts of the suite, by the folder a test lives in (the first that matches).
PARTS = {"tests/notebooks/": "notebooks run", "tests/exercises/": "exercise workflow",
         "tests/browser/": "browser"}
TOOLKIT = "toolkit and tooling tests"  # tests/simulations, course, patterns, lab, ...
LESSON_TESTS = "lesson tests"  # tests/<category>/test_<module>.py


def lesson_marks(lessons) -> tuple[set[str], tuple[str, ...]]:
    """The lesson test folders (one per category) and the strings that tie a test to one
    lesson: its slug, its name, its module name (as in ``test_<module>.py``)."""
    folders = {f"tests/{lesson.slug.split('/')[0]}/" for lesson in lessons}
    names = {lesson.slug.rsplit("/", 1)[-1] for lesson in lessons}
    return folders, tuple(sorted(names | {name.replace("-", "_") for name in names}))


def classify(nodeid: str, folders: set[str], names: tuple[str, ...]) -> tuple[str, bool]:
    """(part, whether the test belongs to one lesson, so grows with the lessons): it is in a
    lesson's test folder, or its parameters name a lesson."""
    path = nodeid.split("::", 1)[0]
    if any(path.startswith(folder) for folder in folders):
        return LESSON_TESTS, True
    part = next((name for prefix, name in PARTS.items() if path.startswith(prefix)), TOOLKIT)
    parameters = nodeid[nodeid.index("["):] if "[" in nodeid else ""
    return part, any(name in parameters for name in names)


def junit_durations(xml: Path) -> list[tuple[str, float]]:
    """(node id, seconds with setup and teardown) of every test in a pytest JUnit report."""
    import xml.etree.ElementTree as ElementTree

    rows = []
    for case in ElementTree.parse(xml).iter("testcase"):
        module = case.get("classname", "").replace(".", "/")
        rows.append((f"{module}.py::{case.get('name')}", float(case.get("time", 0))))
    return rows


def suite_speed(lessons) -> dict:
    """Time the README's test command as CI runs it: each check, then one pytest run whose
    JUnit report gives every test's worker time, summed by part and split into what belongs to
    one lesson (it grows with the lessons) and the rest. The projection adds the per-lesson
    worker time of the missing lessons, shared by the workers."""
    env = {**os.environ, "CI": os.environ.get("CI", "true")}
    checks = []
    for name, args in dev.CHECKS:
        started = time.perf_counter()
        code = subprocess.run([str(dev.PYTHON), *args], cwd=ROOT, env=env,
                              capture_output=True).returncode
        checks.append({"check": name, "seconds": time.perf_counter() - started,
                       "exit_code": code})
        print(f"  check: {name:<40} {checks[-1]['seconds']:6.1f} s  (exit {code})", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        xml = Path(folder) / "junit.xml"
        started = time.perf_counter()
        code = subprocess.run([str(dev.PYTHON), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               f"--junitxml={xml}"], cwd=ROOT, env=env,
                              capture_output=True).returncode
        pytest_s = time.perf_counter() - started
        tests = junit_durations(xml)
    print(f"  pytest {pytest_s:.1f} s (exit {code}), {len(tests)} tests", flush=True)
    folders, names = lesson_marks(lessons)
    parts: dict[str, dict] = {}
    rows = []
    for nodeid, seconds in tests:
        part, grows = classify(nodeid, folders, names)
        rows.append({"test": nodeid, "seconds": seconds, "part": part, "per_lesson": grows})
        row = parts.setdefault(part, {"part": part, "tests": 0, "fixed_s": 0.0,
                                      "per_lessons_s": 0.0})
        row["tests"] += 1
        row["per_lessons_s" if grows else "fixed_s"] += seconds
    scale = PROJECTED_LESSONS / len(lessons)
    checks_s = sum(row["seconds"] for row in checks)
    workers = int(found.group(1)) if (found := WORKERS.search(dev_addopts())) else 1
    added = sum(row["per_lessons_s"] for row in parts.values()) * (scale - 1) / workers
    return {"checks": checks, "pytest_s": pytest_s, "pytest_exit_code": code,
            "workers": workers, "parts": sorted(parts.values(), key=lambda row: row["part"]),
            "now_s": checks_s + pytest_s,
            "projected_s": checks_s * scale + pytest_s + added,
            "tests": sorted(rows, key=lambda row: -row["seconds"])}


WORKERS = re.compile(r"(?:^|\s)-n\s*(\d+)")


def dev_addopts() -> str:
    """pytest's addopts from pyproject.toml, where the README's test command takes them."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))[
        "tool"]["pytest"]["ini_options"].get("addopts", "")


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
        projected = report["suite"]["projected_s"]
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
    suite = report["suite"]
    if suite:
        print("\n| part of the test suite | tests | worker time, fixed (s) | worker time, "
              "per lesson (s) |")
        print("|---|---:|---:|---:|")
        for row in suite["checks"]:
            print(f"| check: {row['check']} (before pytest, grows) | – | – | "
                  f"{row['seconds']:.1f} |")
        for row in suite["parts"]:
            print(f"| {row['part']} | {row['tests']} | {row['fixed_s']:.1f} | "
                  f"{row['per_lessons_s']:.1f} |")
        print(f"\npytest wall time {suite['pytest_s']:.0f} s on {suite['workers']} workers; "
              f"README test command {suite['now_s']:.0f} s now, projected to "
              f"{PROJECTED_LESSONS} lessons {suite['projected_s']:.0f} s "
              f"({suite['projected_s'] / 60:.1f} min)")


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
              "lessons": [], "suite": {}}
    if not args.no_lessons:
        for slug in chosen:
            print(f"lesson {slug} ...", flush=True)
            report["lessons"].append(lesson_speed(slug, args.repeat, args.timeout))
    if not args.no_suite:
        print("test suite, part by part ...", flush=True)
        report["suite"] = suite_speed(lessons)
    args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print_tables(report)
    problems = budget_problems(report)
    for problem in problems:
        print(f"over budget: {problem}")
    print(f"\nwrote {args.json.relative_to(ROOT) if args.json.is_relative_to(ROOT) else args.json}")
    return 1 if args.check and problems else 0


if __name__ == "__main__":
    sys.exit(main())
