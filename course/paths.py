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
# Folders under notebooks/ that hold lessons: the pattern categories plus the foundations.
LESSON_FOLDERS = ("foundations", *CATEGORIES)
DIFFICULTIES = ("beginner", "intermediate", "advanced", "expert")
STATUSES = ("stub", "partial", "complete")
