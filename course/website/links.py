"""Every link and every file a page of the built site points to, checked on disk.

Like walking every corridor of a new building with its floor plan before the doors open: each
``href`` and ``src`` inside the site must lead to a file that is there, each ``#anchor`` to an
element that has that id, and nothing a page needs to draw itself (a script, a style sheet, an
image, a font) may come from outside, so the site works offline. Links out to papers and
projects are the reader's to follow and are not fetched.
"""

from __future__ import annotations

import posixpath
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

OUTSIDE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)
CSS_URL = re.compile(r"""url\(\s*['"]?(https?:)?//""", re.IGNORECASE)
# What a page loads to draw itself, as opposed to a link the reader may follow.
LOADED_BY = {"script", "img", "source", "iframe", "video", "audio"}
LOADED_RELS = {"stylesheet", "preload", "modulepreload", "icon", "prefetch"}


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[tuple[str, bool]] = []  # (the URL, whether the page loads it)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value for name, value in attrs if value is not None}
        if "id" in values:
            self.ids.add(values["id"])
        if tag == "a" and "name" in values:
            self.ids.add(values["name"])
        rels = set(values.get("rel", "").lower().split())
        for name in ("href", "src"):
            if name in values:
                loaded = tag in LOADED_BY or (tag == "link" and bool(rels & LOADED_RELS))
                self.links.append((values[name], loaded))


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8", errors="replace"))
    return page


def problems(site: Path) -> list[str]:
    """``page: what is wrong`` for every broken link or anchor and every outside resource."""
    site = site.resolve()
    pages = {path: _parse(path) for path in sorted(site.rglob("*.html"))
             if not path.relative_to(site).parts[0] == "_static"}  # the theme's macro files
    found = []
    for path, page in pages.items():
        where = path.relative_to(site).as_posix()
        for value, loaded in page.links:
            if OUTSIDE.match(value):
                if loaded and not value.startswith("data:"):
                    found.append(f"{where}: loads {value} from outside the site")
                continue
            found.extend(f"{where}: {problem}" for problem in _check(site, path, value, pages))
    for css in sorted(site.rglob("*.css")):
        if CSS_URL.search(css.read_text(encoding="utf-8", errors="replace")):
            found.append(f"{css.relative_to(site).as_posix()}: url() loads from outside")
    return found


def _check(site: Path, page: Path, value: str, pages: dict[Path, _Page]) -> list[str]:
    parts = urlsplit(value)
    if not parts.path:  # "#anchor" on this page
        target = page
    else:
        joined = posixpath.normpath(posixpath.join(page.parent.as_posix(), unquote(parts.path)))
        target = Path(joined)
        if target.is_dir():
            target = target / "index.html"
        if not target.is_relative_to(site):
            return [f"{value} leads outside the site"]
        if not target.is_file():
            return [f"{value} is missing"]
    if parts.fragment and target.suffix == ".html":
        ids = pages[target].ids if target in pages else _parse(target).ids
        if unquote(parts.fragment) not in ids:
            return [f"{value}: no element has the id {parts.fragment!r}"]
    return []
