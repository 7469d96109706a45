"""Reading and writing the course's paired notebooks.

A notebook is a MyST Markdown file (the reviewed source) with an ``.ipynb`` twin beside it.
The twin is always rebuilt from the Markdown, without outputs and with cell ids derived from
the cells' content, so the same source gives the same bytes on every machine.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from course.paths import ROOT

if TYPE_CHECKING:  # nbformat and jupytext are slow to import: functions import them when used
    import nbformat

MYST = "md:myst"
# Metadata kept in both files; jupytext's version stamps are dropped so diffs stay clean.
# jupytext.toml says the same for JupyterLab's saves (a test holds the two equal); it is not read
# here, so the package works where it is installed without the repository.
METADATA_FILTER = ("kernelspec,jupytext,lesson,exercise,"
                   "-jupytext.text_representation.jupytext_version,"
                   "-jupytext.text_representation.format_version")
_STAMPS = ("jupytext_version", "format_version")


class NotebookError(ValueError):
    """A notebook file that cannot be read; the message names the file and the problem."""


def relative(path: Path) -> str:
    """The path as the learner sees it: relative to the repository when inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def twin_of(path: Path) -> Path:
    """The other file of a pair: ``x.md`` <-> ``x.ipynb``."""
    path = Path(path)
    return path.with_suffix(".ipynb" if path.suffix == ".md" else ".md")


def read_front_matter(path: Path) -> dict:
    """Only the YAML block at the top of a MyST notebook: fast (no jupytext), for the catalog
    and the lesson card."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError) as error:
        raise NotebookError(f"{relative(path)}: cannot read ({error})") from None
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---" or "---" not in (line.strip() for line in lines[1:]):
        return {}
    end = next(i for i, line in enumerate(lines[1:], 1) if line.strip() == "---")
    try:
        metadata = yaml.safe_load("\n".join(lines[1:end])) or {}
    except yaml.YAMLError as error:
        reason = " ".join(str(error).split())
        raise NotebookError(f"{relative(path)}: front matter is not valid YAML ({reason})") \
            from None
    if not isinstance(metadata, dict):
        raise NotebookError(f"{relative(path)}: front matter is not a YAML mapping")
    return _dates_as_text(metadata)


def read_markdown(path: Path) -> nbformat.NotebookNode:
    """Read a MyST Markdown notebook, with deterministic cell ids and no version stamps."""
    import jupytext

    try:
        nb = jupytext.read(path, fmt=MYST)
    except FileNotFoundError:
        raise NotebookError(f"{relative(path)}: file not found") from None
    except Exception as error:  # jupytext raises many types for malformed input
        reason = " ".join(str(error).split()) or type(error).__name__
        raise NotebookError(f"{relative(path)}: not a readable MyST notebook ({reason})") from None
    _normalise(nb)
    return nb


def read_ipynb(path: Path) -> nbformat.NotebookNode:
    """Read an ``.ipynb`` file; any JSON or schema problem becomes a one-line NotebookError."""
    import nbformat

    try:
        return nbformat.read(path, as_version=4)
    except FileNotFoundError:
        raise NotebookError(f"{relative(path)}: file not found") from None
    except Exception as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise NotebookError(f"{relative(path)}: not a valid notebook ({reason})") from None


def ipynb_text(nb: nbformat.NotebookNode) -> str:
    """The committed form of a twin: outputs and execution counts cleared, and no
    ``jupytext.text_representation`` (it describes the ``.md``; Jupytext drops it from an
    ``.ipynb`` it saves, so keeping it would show every lesson saved in JupyterLab as changed)."""
    import nbformat

    nb = copy.deepcopy(nb)
    _normalise(nb)
    nb.metadata.get("jupytext", {}).pop("text_representation", None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nbformat.writes(nb) + "\n"


def markdown_text(nb: nbformat.NotebookNode) -> str:
    """The MyST Markdown form of a notebook, keeping the lesson metadata."""
    import jupytext
    from jupytext.config import JupytextConfiguration

    nb = copy.deepcopy(nb)
    _normalise(nb)
    config = JupytextConfiguration(notebook_metadata_filter=METADATA_FILTER)
    return jupytext.writes(nb, fmt=MYST, config=config)


def write_pair(nb: nbformat.NotebookNode, md_path: Path) -> None:
    """Write ``nb`` as ``md_path`` and its ``.ipynb`` twin."""
    md_path = Path(md_path)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(markdown_text(nb), encoding="utf-8")
    twin_of(md_path).write_text(ipynb_text(read_markdown(md_path)), encoding="utf-8")


def _dates_as_text(value: object) -> object:
    """YAML reads ``2024-05-01`` as a date, which JSON cannot hold: keep it as ISO text."""
    if isinstance(value, dict):
        return {key: _dates_as_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_dates_as_text(item) for item in value]
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def _normalise(nb: nbformat.NotebookNode) -> None:
    import nbformat

    nb.metadata = nbformat.from_dict(_dates_as_text(nb.metadata))
    text_repr = nb.metadata.get("jupytext", {}).get("text_representation", {})
    for stamp in _STAMPS:
        text_repr.pop(stamp, None)
    seen: set[str] = set()
    for cell in nb.cells:
        digest = hashlib.sha1(f"{cell.cell_type}\n{cell.source}".encode()).hexdigest()[:8]
        cell_id, n = digest, 1
        while cell_id in seen:
            cell_id, n = f"{digest}-{n}", n + 1
        seen.add(cell_id)
        cell["id"] = cell_id
