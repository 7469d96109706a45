"""Push vs polling: how a client learns that something changed on a server.

Picture waiting for a parcel. You can walk to the door every ten minutes to look (polling: most
trips find nothing, and the parcel waits on the step for five minutes on average), you can stand
at the door until it comes or you give up (long polling), or the courier can ring the bell
(push: you know at once, but the bell must work, and someone must be listening for it).

`Feed` is the server's side: a versioned value with the time each version was published.
`Poller` is the Level 2 client: every ``interval_s`` it asks the feed for anything newer than
the version it holds, counting full and empty polls and the staleness (delivery time minus
publication time) of each update it sees. Time comes from an injectable ``clock``.

The Level 3 part hardens the feed for threads and real HTTP: `ProductionFeed` (a validated
`FeedConfig`, a condition variable so long polls and streams wait without spinning, ``logging``,
``prometheus_client`` metrics) and `FeedHTTPServer`, a standard-library ``ThreadingHTTPServer``
with three endpoints: ``/poll`` (conditional with ETag / If-None-Match, answering 304 when
nothing changed), ``/long-poll?since=v`` (held until an update or the hold timeout) and
``/events`` (server-sent events: ``retry:``, ``id:`` and ``data:`` fields, heartbeat comments).
Nothing here imports from ``simulations``.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from patterns.checks import check_int, check_non_negative, check_positive
from patterns.metrics import Instruments

Clock = Callable[[], float]
log = logging.getLogger(__name__)

__all__ = ["Feed", "FeedConfig", "FeedHTTPServer", "Poller", "ProductionFeed", "Update",
           "conditional_get", "long_poll_get", "read_events"]


@dataclass(frozen=True)
class Update:
    version: int
    value: Any
    published_at: float


class Feed:
    """A versioned value: ``publish`` a new one, ``since(v)`` returns what is newer than v."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self.updates: list[Update] = []

    @property
    def version(self) -> int:
        return len(self.updates)

    def publish(self, value: Any) -> Update:
        update = Update(len(self.updates) + 1, value, self.clock())
        self.updates.append(update)
        return update

    def since(self, version: int) -> list[Update]:
        """The updates newer than ``version`` (empty when the caller is up to date)."""
        return self.updates[version:]


class Poller:
    """Ask ``feed`` every ``interval_s`` for what is newer than the version held."""

    def __init__(self, feed: Feed, interval_s: float, clock: Clock = time.monotonic) -> None:
        self.feed, self.clock = feed, clock
        self.interval_s = check_positive("interval_s", interval_s)
        self.version = 0
        self.next_at = clock()  # the first poll is due at once
        self.polls = self.empty = 0
        self.staleness: list[float] = []  # delivery time minus publication, one per update

    def due(self) -> bool:
        return self.clock() >= self.next_at

    def poll(self) -> list[Update]:
        """One poll: take what is new, record its staleness, schedule the next poll."""
        now = self.clock()
        news = self.feed.since(self.version)
        self.polls += 1
        if news:
            self.version = news[-1].version
            self.staleness += [now - u.published_at for u in news]
        else:
            self.empty += 1
        self.next_at = now + self.interval_s
        return news


@dataclass(frozen=True)
class FeedConfig:
    """Settings of a production feed: the longest hold of a long poll, the heartbeat period of
    a stream, the reconnection delay sent to SSE clients (``retry:``), and a client bound."""

    hold_s: float = 30.0
    heartbeat_s: float = 15.0
    retry_ms: int = 3000
    max_streams: int = 10_000

    def __post_init__(self) -> None:
        check_positive("FeedConfig.hold_s", self.hold_s)
        check_positive("FeedConfig.heartbeat_s", self.heartbeat_s)
        check_int("FeedConfig.retry_ms", self.retry_ms, 0)
        check_int("FeedConfig.max_streams", self.max_streams, 1)


class ProductionFeed(Feed):
    """A thread-safe feed whose readers can wait for the next version (long poll, stream)."""

    def __init__(self, name: str, config: FeedConfig | None = None,
                 clock: Clock = time.monotonic) -> None:
        super().__init__(clock)
        self.name, self.config = name, config or FeedConfig()
        self._changed = threading.Condition()
        self.streams = 0
        self.metrics = Instruments("feed", "Requests and updates of the feed")
        self._staleness = self.metrics.histogram(
            "delivery_staleness_seconds", "Delivery time minus publication time",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5))

    def publish(self, value: Any) -> Update:
        with self._changed:
            update = super().publish(value)
            self._changed.notify_all()
        self.metrics.count("published")
        log.debug("feed %s: version %d published", self.name, update.version)
        return update

    def since(self, version: int) -> list[Update]:
        with self._changed:
            return super().since(version)

    def wait_since(self, version: int, timeout_s: float) -> list[Update]:
        """Block until something newer than ``version`` exists or ``timeout_s`` has passed."""
        check_non_negative("timeout_s", timeout_s)
        with self._changed:
            self._changed.wait_for(lambda: self.version > version, timeout=timeout_s)
            return Feed.since(self, version)

    def delivered(self, updates: list[Update]) -> None:
        """Record the staleness of updates just sent to a client."""
        now = self.clock()
        for u in updates:
            self._staleness.observe(max(0.0, now - u.published_at))
        self.metrics.count("delivered", len(updates))

    def open_stream(self) -> bool:
        with self._changed:
            if self.streams >= self.config.max_streams:
                self.metrics.count("stream_refused")
                log.warning("feed %s: stream refused, %d open", self.name, self.streams)
                return False
            self.streams += 1
        self.metrics.count("stream_opened")
        return True

    def close_stream(self) -> None:
        with self._changed:
            self.streams -= 1
        self.metrics.count("stream_closed")


def _body(updates: list[Update]) -> bytes:
    return json.dumps([[u.version, u.value, u.published_at] for u in updates]).encode()


class _Handler(BaseHTTPRequestHandler):
    server: FeedHTTPServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Small writes (an SSE event, a body after its headers) must not wait for the peer's
        # delayed ACK (Nagle's algorithm), or every answer is late by up to 40-200 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        log.debug("http: " + format, *args)

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        feed, url = self.server.feed, urlparse(self.path)
        query = parse_qs(url.query)
        if url.path == "/poll":  # the current state, conditional on its ETag
            feed.metrics.count("poll")
            etag = f'"v{feed.version}"'
            if self.headers.get("If-None-Match") == etag:
                feed.metrics.count("not_modified")
                self._send(304, headers={"ETag": etag})
                return
            latest = feed.since(max(0, feed.version - 1))
            self._send(200, _body(latest), {"ETag": etag, "Content-Type": "application/json"})
        elif url.path == "/long-poll":
            feed.metrics.count("long_poll")
            since = int(query.get("since", ["0"])[0])
            hold = min(float(query.get("hold", [feed.config.hold_s])[0]), feed.config.hold_s)
            news = feed.wait_since(since, hold)
            feed.metrics.count("long_poll_full" if news else "long_poll_timeout")
            feed.delivered(news)
            self._send(200, _body(news), {"Content-Type": "application/json"})
        elif url.path == "/events":
            self._stream(feed, int(self.headers.get("Last-Event-ID", "0") or 0))
        else:
            self._send(404)

    def _stream(self, feed: ProductionFeed, version: int) -> None:
        if not feed.open_stream():
            self._send(503, headers={"Retry-After": "1"})
            return
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            self.wfile.write(f"retry: {feed.config.retry_ms}\n\n".encode())
            self.wfile.flush()
            while not self.server.stopping.is_set():
                news = feed.wait_since(version, feed.config.heartbeat_s)
                if self.server.silent.is_set():  # a dead link: nothing reaches the client
                    self.server.stopping.wait(feed.config.heartbeat_s)
                    continue
                if not news:
                    self.wfile.write(b": heartbeat\n\n")
                    feed.metrics.count("heartbeat")
                for u in news:
                    self.wfile.write(f"id: {u.version}\ndata: {json.dumps(u.value)}\n\n".encode())
                feed.delivered(news)
                self.wfile.flush()
                version = news[-1].version if news else version
        except OSError:
            feed.metrics.count("stream_broken")
        finally:
            feed.close_stream()
            self.close_connection = True


class FeedHTTPServer(ThreadingHTTPServer):
    """A real HTTP server for ``feed`` on localhost: ``with FeedHTTPServer(feed) as s: s.port``.

    ``silent.set()`` makes every open stream stop writing without closing (a link that died
    silently, as behind a NAT that dropped its mapping); ``close()`` stops it.
    """

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # the listen backlog: the default 5 drops a burst of connects

    def __init__(self, feed: ProductionFeed, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), _Handler)
        self.feed = feed
        self.stopping, self.silent = threading.Event(), threading.Event()
        self.port = self.server_address[1]
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def __enter__(self) -> FeedHTTPServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.stopping.set()
        with self.feed._changed:
            self.feed._changed.notify_all()
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=2)


def conditional_get(conn: http.client.HTTPConnection,
                    etag: str | None) -> tuple[int, list[list[Any]], str | None, int]:
    """One poll of the current state on a kept-alive connection, conditional when ``etag`` is
    given: (status, [[version, value, published_at]] or [] on 304, etag, body bytes)."""
    headers = {"If-None-Match": etag} if etag else {}
    conn.request("GET", "/poll", headers=headers)
    response = conn.getresponse()
    body = response.read()
    return (response.status, json.loads(body) if body else [],
            response.getheader("ETag"), len(body))


def long_poll_get(conn: http.client.HTTPConnection, since: int,
                  hold_s: float) -> list[list[Any]]:
    """One long poll: returns the new updates, or [] when the hold timed out."""
    conn.request("GET", f"/long-poll?since={since}&hold={hold_s}")
    return json.loads(conn.getresponse().read())


def read_events(response: http.client.HTTPResponse,
                on_event: Callable[[str, str], None],
                on_comment: Callable[[], None] = lambda: None) -> None:
    """Parse a server-sent event stream: ``on_event(id, data)`` per event, until it closes."""
    event_id, data = "", []
    while True:
        line = response.readline()
        if not line:
            return
        text = line.decode().rstrip("\r\n")
        if not text:
            if data:
                on_event(event_id, "\n".join(data))
            data = []
        elif text.startswith(":"):
            on_comment()
        elif text.startswith("id:"):
            event_id = text[3:].strip()
        elif text.startswith("data:"):
            data.append(text[5:].lstrip())
