"""Running one function in many threads at once, as a test of thread safety needs.

Like a race starter: every runner gets the same signal, the race ends when the last one is
home, and a runner who never arrives, or falls, fails the race (an exception in a thread is
raised again here instead of being printed and forgotten).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable


def run_concurrently(target: Callable[[object], object], inputs: Iterable,
                     timeout_s: float = 20.0) -> None:
    """Call ``target(item)`` for every item, each in its own thread, and wait for all."""
    errors: list[BaseException] = []

    def run(item: object) -> None:
        try:
            target(item)
        except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(item,), daemon=True) for item in inputs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout_s)
    stuck = sum(thread.is_alive() for thread in threads)
    assert not stuck, f"{stuck} of {len(threads)} threads still running after {timeout_s:g} s"
    if errors:
        raise errors[0]
