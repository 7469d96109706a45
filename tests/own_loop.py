"""A coroutine run on an event loop of its own, like a side room booked for one meeting.

The browser tests keep Playwright's sync API open for the whole session, and it leaves its
event loop marked as running on the worker's main thread, so a later ``asyncio.run`` there
fails. ``run`` starts the loop on a fresh thread instead."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coroutine)`` on a thread of its own; returns its result or raises."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
