"""How long the course website takes to build, three ways.

Like timing a print run from a blank press, then a reprint from the same plates, then a proof
without ink: ``course build`` with an empty execution cache (every lesson executed), again from
the cache (Sphinx reads every page anew, nothing is executed), and with ``--no-execute``. Each
builds into a temporary folder; the cold run throws the repository's cache
(``_build/jupyter-cache``) away first and leaves a full one behind.

    .venv/bin/python benchmarks/site_speed.py          # all three (about 10 min on two cores)
    .venv/bin/python benchmarks/site_speed.py --warm   # the cached and no-execute builds only
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed_build(out: Path, *options: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "course", "build", "--out", str(out), *options],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", action="store_true", help="keep the cache: skip the cold build")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        if not args.warm:
            shutil.rmtree(ROOT / "_build" / "jupyter-cache", ignore_errors=True)
            runs.append(("cold: every lesson executed", timed_build(Path(folder) / "cold")))
        runs.append(("warm: from the execution cache", timed_build(Path(folder) / "warm")))
        runs.append(("--no-execute", timed_build(Path(folder) / "plain", "--no-execute")))
    for name, seconds in runs:
        print(f"{name:<34} {seconds:7.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
