"""The ``course`` command: one entry point for the course tooling.

Each subcommand lives in its own module with `add_arguments(parser)` and `run(args) -> int`;
modules keep heavy imports inside functions so that `course --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module that implements it, one-line help)
SUBCOMMANDS = {
    "list": ("course.catalog", "print the lessons by category with difficulty, time and status"),
    "validate": ("course.validate", "check lessons against the lesson contract"),
    "sync": ("course.sync", "rebuild every .ipynb twin from its MyST Markdown source"),
    "new": ("course.scaffold", "create a stub lesson and its solutions notebook"),
    "assign": ("course.release", "write the student exercises from solutions/"),
    "check": ("course.grader", "grade a learner's exercise notebook"),
    "nbgrader-source": ("course.nbgrader_source",
                        "lay out nbgrader's source/<assignment>/ folders from solutions/"),
    "build": ("course.site", "build the course website (every lesson executed) in _build/html"),
    "pin": ("course.pin", "write environment.yml (Binder) at the versions installed here"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="course",
                                     description=__doc__.splitlines()[0].replace("``", ""))
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        module.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    try:
        return module.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        sys.stderr.close()
        return 0
