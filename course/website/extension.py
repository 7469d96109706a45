"""The course's own additions to the Sphinx build of its website.

Like the signs a museum puts up for its visitors: the exhibits (the lessons) are the same ones
the workshop uses, and the signs add a way through them (the learning paths, as the sidebar),
a door to the workshop (launch buttons to Binder and to a JupyterHub) and the museum's own
lighting (mermaid from the course's npm folder, so no diagram needs the internet).
"""

from __future__ import annotations

import posixpath
import re
import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ExtensionError

from course.catalog import CAPSTONE_LAB, github_repository, level_paths
from course.lessons import Lesson, discover
from course.website import MERMAID_MISSING, mermaid_module

# An href in an output's HTML (a lesson card's prerequisites) to a lesson's notebook.
NOTEBOOK_HREF = re.compile(r'href="(?![a-z]+:|/|#)([^"#?]+)\.ipynb(#[^"]*)?"')


def setup(app: Sphinx) -> dict[str, object]:
    app.add_config_value("course_root", "", "env")
    app.add_config_value("course_github", "", "html")
    app.add_config_value("course_jupyterhub", "", "html")
    app.connect("config-inited", configure)  # before sphinx-external-toc reads the toc (900)
    app.connect("html-page-context", link_notebooks_as_pages)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def configure(app: Sphinx, config: Config) -> None:
    root = Path(config.course_root or app.srcdir)
    config.external_toc_path = str(write_toc(root, Path(app.doctreedir) / "course-toc.yml"))
    config.html_static_path = [*config.html_static_path, str(vendor_mermaid(root, app))]
    config.mermaid_use_local = "mermaid/mermaid.esm.min.mjs"
    github = config.course_github or github_repository(root) or ""
    options = config.html_theme_options
    if github:
        options["repository_url"] = f"https://github.com/{github}"
        options["use_repository_button"] = True
        options["launch_buttons"]["binderhub_url"] = "https://mybinder.org"
        if config.course_jupyterhub:
            options["launch_buttons"]["jupyterhub_url"] = config.course_jupyterhub


def write_toc(root: Path, path: Path) -> Path:
    """The sidebar: the start page, then the path by level (as on the start page), the lab
    last; written as sphinx-external-toc's YAML."""
    import yaml

    lessons, _ = discover(root)
    paths = dict(level_paths(lessons))
    paths["capstone"] = [lesson for lesson in lessons if lesson.slug == CAPSTONE_LAB[0]]
    parts = [{"caption": name.capitalize(), "chapters": [chapter(root, lesson) for lesson in path]}
             for name, path in paths.items() if path]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"format": "jb-book", "root": "notebooks/index",
                                    "parts": parts},
                                   sort_keys=False), encoding="utf-8")
    return path


def chapter(root: Path, lesson: Lesson) -> dict[str, object]:
    """A lesson's entry in the sidebar, with its student copy under it when it has one."""
    entry: dict[str, object] = {"file": f"notebooks/{lesson.slug}"}
    if (root / "exercises" / f"{lesson.slug}.ipynb").exists():
        entry["sections"] = [{"file": f"exercises/{lesson.slug}"}]
    return entry


def vendor_mermaid(root: Path, app: Sphinx) -> Path:
    """A static folder holding mermaid's ES module build, copied from ``.npm/``."""
    module = mermaid_module(root)
    if not module.exists():
        raise ExtensionError(MERMAID_MISSING.format(folder=module.parent.parent))
    static = Path(app.doctreedir) / "course-static"
    target = static / "mermaid"
    shutil.rmtree(target, ignore_errors=True)  # the version installed now, not an older copy
    target.mkdir(parents=True)
    shutil.copy2(module, target)
    chunks = Path("chunks") / "mermaid.esm.min"
    shutil.copytree(module.parent / chunks, target / chunks, ignore=shutil.ignore_patterns("*.map"))
    return static


def link_notebooks_as_pages(app: Sphinx, pagename: str, templatename: str, context: dict,
                            doctree: object) -> None:
    """Point an output's link to a lesson's ``.ipynb`` at that lesson's page."""
    body = context.get("body")
    if not body:
        return
    here = posixpath.dirname(pagename)

    def page(match: re.Match[str]) -> str:
        target, fragment = match.group(1), match.group(2) or ""
        if posixpath.normpath(posixpath.join(here, target)) in app.env.found_docs:
            return f'href="{target}.html{fragment}"'
        return match.group(0)

    context["body"] = NOTEBOOK_HREF.sub(page, body)
