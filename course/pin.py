"""``course pin``: write environment.yml (Binder's environment) from the tested environment.

Like a label on a jar that says exactly what went in, environment.yml lists every package the
lessons' kernel and the learner's JupyterLab need (the course's dependencies and its ``lab``
extra, followed through their own requirements) at the exact version installed here, where the
tests ran. Binder builds that list, so it runs what CI tested, not next year's releases;
``python3 dev.py`` installs with the same pins as constraints.

``course pin --check`` changes nothing and exits 1 when environment.yml differs from what this
environment would write (a dependency added, removed or upgraded without re-pinning).
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from pathlib import Path

from course.paths import ROOT

DISTRIBUTION = "distributed-patterns-course"
EXTRAS = ("lab",)  # the learner's front end; the test tools stay out of Binder
HEADER = """\
# The Binder environment: the course's dependencies and its `lab` extra, with everything they
# need, at the versions CI tested. Written by `course pin` from the test environment; do not
# edit by hand (`course pin --check`, run by `python3 dev.py test`, fails when it drifts).
# `python3 dev.py` installs with these pins as constraints.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if environment.yml differs from this "
                             "environment")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    target = Path(args.root) / "environment.yml"
    try:
        fresh = environment_yml(pinned_closure())
    except metadata.PackageNotFoundError as error:
        print(f"course pin: {error} is not installed here; run `python3 dev.py test` first",
              file=sys.stderr)
        return 2
    current = target.read_text(encoding="utf-8") if target.exists() else ""
    if args.check:
        if current == fresh:
            return 0
        print(f"environment.yml: {drift(current, fresh)}; run `course pin` and commit the "
              "result", file=sys.stderr)
        return 1
    if current != fresh:
        target.write_text(fresh, encoding="utf-8")
        print(f"wrote {target.name}: {fresh.count('==')} pinned packages")
    return 0


def _name(text: str) -> str:
    from packaging.utils import canonicalize_name

    return canonicalize_name(text)


def pinned_closure(root: str = DISTRIBUTION, extras: tuple[str, ...] = EXTRAS) -> dict[str, str]:
    """Every distribution that ``root[extras]`` needs here, directly or not: name -> version.

    Follows each installed distribution's requirements whose markers hold on this machine, with
    the extras asked of it; ``root`` itself is left out.
    """
    from packaging.requirements import Requirement

    found: dict[str, str] = {}
    queue = [(root, ("",) + tuple(extras))]
    seen: set[tuple[str, str]] = set()
    while queue:
        name, wanted = queue.pop()
        dist = metadata.distribution(name)
        for extra in wanted:
            if (_name(name), extra) in seen:
                continue
            seen.add((_name(name), extra))
            for line in dist.requires or []:
                requirement = Requirement(line)
                if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
                    continue
                child = _name(requirement.name)
                found[child] = metadata.version(child)
                queue.append((child, ("", *sorted(requirement.extras))))
    found.pop(_name(root), None)
    return dict(sorted(found.items()))


def environment_yml(pins: dict[str, str]) -> str:
    """environment.yml for repo2docker: conda's Python and pip, then every pin through pip
    (the same wheels from the same index as the tested environment)."""
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    lines = [HEADER.rstrip("\n"), "name: distributed-patterns-course", "channels:",
             "  - conda-forge", "dependencies:", f"  - python={python}", "  - pip", "  - pip:"]
    lines += [f"      - {name}=={version}" for name, version in pins.items()]
    return "\n".join(lines) + "\n"


def _pins_in(text: str) -> dict[str, str]:
    pairs = (line.strip()[2:].split("==", 1) for line in text.splitlines()
             if line.strip().startswith("- ") and "==" in line)
    return {name: version for name, version in pairs}


def drift(current: str, fresh: str) -> str:
    """One line saying how the pinned list differs from this environment's."""
    old, new = _pins_in(current), _pins_in(fresh)
    changes = [f"{name} {old[name]} pinned, {new[name]} installed"
               for name in sorted(old.keys() & new.keys()) if old[name] != new[name]]
    changes += [f"{name} {new[name]} not pinned" for name in sorted(new.keys() - old.keys())]
    changes += [f"{name} pinned but not needed" for name in sorted(old.keys() - new.keys())]
    if not changes:
        return "differs from what `course pin` writes (header or Python version)"
    shown = ", ".join(changes[:3]) + (f" and {len(changes) - 3} more" if len(changes) > 3 else "")
    return f"{len(changes)} pin(s) out of date ({shown})"
