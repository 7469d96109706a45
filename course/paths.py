"""Where things live in the course repository, and the names the course allows."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SOLUTIONS = ROOT / "solutions"
EXERCISES = ROOT / "exercises"
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"

CATEGORIES = (
    "caching",
    "distributed-data",
    "resilience",
    "communication",
    "architectural",
    "security",
    "performance",
    "specialized",
)
# Folders under notebooks/ that hold lessons: the foundations, the pattern categories, and the
# capstone lab that composes the patterns (read last).
CAPSTONE = "capstone"
LESSON_FOLDERS = ("foundations", *CATEGORIES, CAPSTONE)
DIFFICULTIES = ("beginner", "intermediate", "advanced", "expert")
STATUSES = ("stub", "partial", "complete")


def code_paths(root: Path, folder: str, name: str) -> dict[str, Path]:
    """The files a lesson ``<folder>/<name>`` has beside its notebook, one per tree.

    The slug is the same path in every tree, with underscores where Python needs them:
    ``resilience/circuit-breaker`` has ``solutions/resilience/circuit-breaker.md``,
    ``patterns/resilience/circuit_breaker.py`` (the pattern's own code),
    ``simulations/resilience/circuit_breaker.py`` (its study) and
    ``tests/resilience/test_circuit_breaker.py``. A foundations lesson teaches a model and the
    capstone lab composes the patterns of the others, so neither has a file in ``patterns/``.
    """
    package, module = python_name(folder), python_name(name)
    paths = {
        "solutions": root / "solutions" / folder / f"{name}.md",
        "patterns": root / "patterns" / package / f"{module}.py",
        "simulations": root / "simulations" / package / f"{module}.py",
        "tests": root / "tests" / package / f"test_{module}.py",
    }
    if folder not in CATEGORIES:
        del paths["patterns"]
    return paths


def python_name(part: str) -> str:
    """A slug part as a Python identifier: ``distributed-data`` -> ``distributed_data``."""
    return part.replace("-", "_")


def module_of(path: Path, root: Path) -> str:
    """The dotted module name of a ``.py`` file under ``root``."""
    return ".".join(path.relative_to(root).with_suffix("").parts)
