"""The test tree's root: its folder is on ``sys.path``, so tests in every sub-folder share the
helpers beside this file (``jupyter_servers``, ``binder_env``, ``executed``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from binder_env import Binder, BinderError, built_once
from executed import Executed, executed, store


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
