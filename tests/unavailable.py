"""What a test does when a tool it needs is missing: skip on a developer's machine, fail in CI.

Like a fire drill that may be skipped at home but never at the school: CI installs every tool
(.ci/run, dev.py), so there a missing one is a broken set-up, not a reason to skip.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(reason: str, tests: str) -> NoReturn:
    """Skip with ``reason``; in CI, fail saying that ``tests`` may not be skipped."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI is set, so {tests} may not be skipped)")
    pytest.skip(reason)
