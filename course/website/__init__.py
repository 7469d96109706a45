"""The course as a website: Sphinx with MyST-NB and the book theme (``course build``)."""

from __future__ import annotations

from pathlib import Path

MERMAID_MISSING = ("mermaid is not installed in {folder}: run `python3 dev.py site`, which "
                   "installs it from npm (dev.py's NPM_PACKAGES)")


def mermaid_dist(root: Path) -> Path:
    """Where dev.py's npm install puts mermaid's build, which the site serves itself."""
    return root / ".npm" / "node_modules" / "mermaid" / "dist"
