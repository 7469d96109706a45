"""What each environment installs: every import a lesson makes is provided where it runs.

Like a packing list checked against the recipes before the trip, the test reads the code cells
of every lesson, solution and exercise (and the course's own modules they import, followed
through), keeps the third-party modules, and asserts that the kernel's dependencies in
pyproject, and the pins of environment.yml (Binder), provide each.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import tomllib
from importlib import metadata

import pytest

import dev
from course import pin
from course.notebook_files import METADATA_FILTER, read_markdown
from course.paths import ROOT

FIRST_PARTY = ("course", "simulations", "patterns")


def _imports(source: str) -> set[str]:
    """Dotted module names imported by ``source`` (IPython magics and shell lines ignored)."""
    code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                     for line in source.splitlines())
    found = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _spec(name: str):
    """The module's spec, or None for a name that is not a module (``from m import function``)."""
    try:
        return importlib.util.find_spec(name)
    except ModuleNotFoundError:
        return None


def third_party_imports() -> dict[str, str]:
    """Top-level third-party module -> the first file that imports it."""
    queue = [(cell.source, str(path.relative_to(ROOT)))
             for folder in dev.NOTEBOOK_DIRS for path in sorted((ROOT / folder).rglob("*.md"))
             for cell in read_markdown(path).cells if cell.cell_type == "code"]
    seen_modules: set[str] = set()
    found: dict[str, str] = {}
    while queue:
        source, where = queue.pop()
        for name in sorted(_imports(source)):
            top = name.split(".")[0]
            if top in FIRST_PARTY:
                spec = None if name in seen_modules else _spec(name)
                seen_modules.add(name)
                if spec and spec.origin and spec.origin.endswith(".py"):
                    queue.append((open(spec.origin, encoding="utf-8").read(), spec.origin))
            elif top not in sys.stdlib_module_names and top != "__future__":
                found.setdefault(top, where)
    return found


def providers(module: str) -> set[str]:
    return {pin._name(dist) for dist in metadata.packages_distributions().get(module, [])}


def test_lessons_import_third_party_modules():
    imported = third_party_imports()
    assert {"numpy", "simpy", "pybreaker", "tenacity", "matplotlib"} <= imported.keys()


def test_every_import_is_provided_by_the_kernel_dependencies_and_the_pins():
    kernel = pin.pinned_closure(extras=())  # dependencies only: no lab, no test extra
    binder = {line.split("==")[0] for line in dev.pins()}
    missing = [f"{module} (imported in {where}; provided by {sorted(providers(module))})"
               for module, where in sorted(third_party_imports().items())
               if not providers(module) & kernel.keys() or not providers(module) & binder]
    assert not missing, "not in pyproject's dependencies or environment.yml: " + "; ".join(missing)


def test_kernel_dependencies_name_what_the_lessons_import_directly():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    direct = {pin._name(r.split(">")[0].split("=")[0].split("<")[0])
              for r in pyproject["project"]["dependencies"]}
    assert {"prometheus-client", "pybreaker", "tenacity", "ipykernel"} <= direct
    assert not {"jupyterlab", "pytest", "nbgrader"} & direct


def test_pin_check_reports_drift_in_one_line(tmp_path, capsys):
    (tmp_path / "environment.yml").write_text(
        (ROOT / "environment.yml").read_text().replace("      - simpy==", "      - simpy==0.0.1"
                                                       "#"), encoding="utf-8")
    code = pin.run(pin.argparse.Namespace(check=True, root=tmp_path))
    message = capsys.readouterr().err
    assert code == 1 and message.count("\n") == 1
    assert "simpy" in message and "run `course pin`" in message


def test_pins_follow_this_environment():
    assert pin.run(pin.argparse.Namespace(check=True, root=ROOT)) == 0, \
        "environment.yml is stale: run `.venv/bin/course pin`"


def test_jupytext_toml_filters_metadata_like_the_course():
    config = tomllib.loads((ROOT / "jupytext.toml").read_text())
    assert config["notebook_metadata_filter"] == METADATA_FILTER
    assert "formats" not in config  # no pairing: a learner's save writes the .ipynb only


@pytest.mark.parametrize("kind", ["labextension", "server extension"])
def test_nbgrader_extensions_are_disabled_in_the_lab(kind):
    listed = subprocess.run([sys.executable, "-m", "jupyter", *kind.split(), "list"],
                            capture_output=True, text=True, check=True)
    lines = [line for line in (listed.stdout + listed.stderr).splitlines()
             if "nbgrader" in line and "abled" in line]
    assert lines and all("disabled" in line for line in lines), lines
