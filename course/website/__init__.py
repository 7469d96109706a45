"""The course as a website: Sphinx with MyST-NB and the book theme (``course build``)."""

from __future__ import annotations

from pathlib import Path

MERMAID_MISSING = ("mermaid is not installed in {folder}: run `python3 dev.py site`, which "
                   "installs it from npm (dev.py's NPM_PACKAGES)")


def mermaid_module(root: Path) -> Path:
    """Mermaid's ES module, where dev.py's npm install puts it; the site serves it itself,
    with the chunks it imports from ``chunks/mermaid.esm.min/`` beside it."""
    return root / ".npm" / "node_modules" / "mermaid" / "dist" / "mermaid.esm.min.mjs"
