"""The test tree's root: its folder is on ``sys.path``, so tests in every sub-folder share the
helpers beside this file (``jupyter_servers``, ``binder_env``, ``executed``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from binder_env import Binder, BinderError, built_once
from executed import Executed, executed, store
from unavailable import unavailable
from website import built_site

from course.paths import ROOT
from course.site import Built
from course.website import mermaid_module


@pytest.fixture(scope="session")
def binder(tmp_path_factory: pytest.TempPathFactory) -> Binder:
    """Binder's environment with the course installed, built once per test run."""
    try:
        return built_once(store(tmp_path_factory.getbasetemp()) / "binder")
    except BinderError as error:
        pytest.fail(str(error))


@pytest.fixture(scope="session")
def run_once(tmp_path_factory: pytest.TempPathFactory,
             binder: Binder) -> Callable[[Path], Executed]:
    """``run_once(notebook)``: its executed copy, run in Binder's environment at most once in
    this test run."""
    folder = store(tmp_path_factory.getbasetemp())
    return lambda notebook: executed(notebook, folder, binder)


@pytest.fixture(scope="session")
def website(tmp_path_factory: pytest.TempPathFactory,
            run_once: Callable[[Path], Executed]) -> tuple[Path, Built]:
    """The course website, built once per test run from its executed notebooks."""
    if not mermaid_module(ROOT).exists():
        unavailable("mermaid is not installed in .npm/ (python3 dev.py test installs it with npm)",
                    "the website tests")
    return built_site(store(tmp_path_factory.getbasetemp()) / "website", run_once)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The website's tests last: by then the run has executed the notebooks its build reads."""
    items.sort(key=lambda item: "website" in getattr(item, "fixturenames", ()))
