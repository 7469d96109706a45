"""What the caching lessons' tests share: a real Redis server, skipped where none starts."""

from __future__ import annotations

import pytest

from simulations import redis_server


@pytest.fixture(scope="module")
def redis_client():
    """A redis-py client on a fresh server of the test module's own."""
    reason = redis_server.unavailable()
    if reason:
        pytest.skip(f"Redis not available here ({reason})")
    with redis_server.RedisServer() as server:
        yield server.client()
