"""Zero-trust mTLS: every hop proves who it is, and pooled connections pay for the proof once.

Picture an office where every door has a badge reader, not only the front door. Showing the
badge at each door takes a moment; walking through a door that is still open from your last
pass (a reused connection) costs nothing, and a badge the reader remembers from this morning (a
resumed session) is read faster than a new one.

`MtlsPool` is the Level 2 idea: one mutually authenticated connection per peer, reused until
it is ``max_age_s`` old; an old one is replaced by a *resumed* handshake while the peer's
session ticket is younger than ``ticket_lifetime_s``, otherwise by a *full* one. A ticket's age
counts from the full handshake its chain of resumptions began with, so resuming cannot extend
the life of one certificate check (RFC 8446 §4.6.1 recommends such a limit). ``connect``
is injected (a real TLS connection here, a fake one in a test or a simulation) and so is the
``clock``. `IdentityPolicy` is the other half of zero trust: the peer's certificate says *who*
it is; the policy says whether that identity may call.

`ProductionMtlsPool` hardens the pool for Level 3: a validated `PoolConfig`, a lock, ``logging``,
``prometheus_client`` metrics. The real parts are Python's ``ssl``: `server_context` and
`client_context` (TLS 1.3 minimum, ``CERT_REQUIRED`` on both sides), `tls_connector` (a
``connect`` for the pool) and `MtlsEchoServer`, a localhost server with bounded worker threads,
a timeout on every blocking call, stopped in ``close()``. Nothing here imports from
``simulations``.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from patterns.checks import check_non_negative, check_positive
from patterns.metrics import Instruments

Clock = Callable[[], float]
# connect(peer, ticket or None) -> (connection, ticket for next time or None, resumed?)
Connect = Callable[[str, Any], tuple[Any, Any, bool]]
KINDS = ("reused", "resumed", "full")
log = logging.getLogger(__name__)


class MtlsPool:
    """One pooled mTLS connection per peer: reuse it, else resume with a ticket, else full."""

    def __init__(self, connect: Connect, max_age_s: float, ticket_lifetime_s: float = 0.0,
                 clock: Clock = time.monotonic) -> None:
        self.connect, self.clock = connect, clock
        self.max_age_s = check_positive("max_age_s", max_age_s, allow_inf=True)
        self.ticket_lifetime_s = check_non_negative("ticket_lifetime_s", ticket_lifetime_s)
        self.connections: dict[str, tuple[Any, float]] = {}  # peer -> (connection, opened at)
        # peer -> (ticket, time of the full handshake that its chain of resumptions began with)
        self.tickets: dict[str, tuple[Any, float]] = {}
        self.counts: Counter[str] = Counter()

    def acquire(self, peer: str) -> tuple[Any, str]:
        """A connection to ``peer`` and how it was had: "reused", "resumed" or "full"."""
        now = self.clock()
        if peer in self.connections:
            conn, opened = self.connections[peer]
            if now - opened < self.max_age_s:
                self.counts["reused"] += 1
                return conn, "reused"
            self.discard(peer)
        ticket, authenticated = self.tickets.get(peer, (None, -float("inf")))
        if now - authenticated >= self.ticket_lifetime_s:
            ticket = None
        conn, new_ticket, resumed = self.connect(peer, ticket)
        self.connections[peer] = (conn, now)
        if new_ticket is not None:  # a resumed session's ticket keeps its chain's start
            self.tickets[peer] = (new_ticket, authenticated if resumed else now)
        kind = "resumed" if resumed else "full"
        self.counts[kind] += 1
        return conn, kind

    def discard(self, peer: str) -> None:
        """Close and forget the pooled connection to ``peer`` (its ticket stays)."""
        conn, _ = self.connections.pop(peer, (None, 0.0))
        if conn is not None and hasattr(conn, "close"):
            conn.close()

    def flush(self) -> None:
        """Drop every connection and ticket (a CA rotation: old sessions must not resume)."""
        for peer in list(self.connections):
            self.discard(peer)
        self.tickets.clear()

    @property
    def reuse_ratio(self) -> float:
        """The share of acquires served by an open connection, q."""
        total = sum(self.counts[k] for k in KINDS)
        return self.counts["reused"] / total if total else 0.0


class NotAuthorized(PermissionError):
    """The peer proved who it is, but that identity may not call this service."""


def peer_identities(cert: dict[str, Any] | None) -> list[str]:
    """The names a verified peer certificate (``SSLSocket.getpeercert()``) vouches for: its
    subject alternative names (DNS, URI, IP), in order."""
    if not cert:
        return []
    return [value for kind, value in cert.get("subjectAltName", ())
            if kind in ("DNS", "URI", "IP Address")]


class IdentityPolicy:
    """Which peer identities may call: authorization by who, not by network address."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = frozenset(allowed)

    def check(self, cert: dict[str, Any] | None) -> str:
        """The first allowed identity of the peer's certificate; ``NotAuthorized`` if none."""
        names = peer_identities(cert)
        for name in names:
            if name in self.allowed:
                return name
        raise NotAuthorized(f"peer {names or 'without a certificate'} may not call "
                            f"(allowed: {sorted(self.allowed)})")


# --- production --------------------------------------------------------------------------


class HandshakeError(ConnectionError):
    """A connection to a peer could not be set up (refused, timed out, certificate rejected)."""


@dataclass(frozen=True)
class PoolConfig:
    """A production pool's settings, checked when created."""

    max_age_s: float = 300.0  # retire a connection after this long, so rotated certs take effect
    ticket_lifetime_s: float = 3600.0  # resume with a ticket no older than this
    handshake_timeout_s: float = 2.0  # the limit on one connect + handshake

    def __post_init__(self) -> None:
        check_positive("PoolConfig.max_age_s", self.max_age_s)
        check_non_negative("PoolConfig.ticket_lifetime_s", self.ticket_lifetime_s)
        check_positive("PoolConfig.handshake_timeout_s", self.handshake_timeout_s)


class ProductionMtlsPool(MtlsPool):
    """A thread-safe pool: a lock around the maps, handshake errors logged and counted,
    handshake times in a histogram, events in ``metrics.counts``."""

    def __init__(self, name: str, config: PoolConfig, connect: Connect,
                 clock: Clock = time.monotonic) -> None:
        super().__init__(connect, config.max_age_s, config.ticket_lifetime_s, clock)
        self.name, self.config = name, config
        self._lock = threading.RLock()
        self.metrics = Instruments("mtls_pool", "Connections acquired from the mTLS pool")
        self._handshake_seconds = self.metrics.histogram(
            "handshake_seconds", "Time to open a connection (connect + TLS handshake)",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 2.0))

    def acquire(self, peer: str) -> tuple[Any, str]:
        with self._lock:
            began = time.perf_counter()
            try:
                conn, kind = super().acquire(peer)
            except (OSError, TimeoutError) as error:
                self.metrics.count("handshake_errors")
                log.warning("pool %s: connection to %s failed: %s", self.name, peer, error)
                raise HandshakeError(f"cannot connect to {peer}: {error}") from error
            self.metrics.count(kind)
            if kind != "reused":
                self._handshake_seconds.observe(time.perf_counter() - began)
                log.debug("pool %s: %s handshake with %s", self.name, kind, peer)
            return conn, kind

    def discard(self, peer: str) -> None:
        with self._lock:
            super().discard(peer)

    def flush(self) -> None:
        with self._lock:
            count = len(self.connections)
            super().flush()
            self.metrics.count("flushes")
            log.info("pool %s: flushed %d connections and every ticket", self.name, count)


# --- the real parts: Python's ssl on localhost ---------------------------------------------


def tls_unavailable() -> str | None:
    """Why real TLS 1.3 on localhost cannot run here (None when it can): an OpenSSL without
    TLS 1.3, or no permission to open a socket on 127.0.0.1."""
    if not ssl.HAS_TLSv1_3:
        return f"{ssl.OPENSSL_VERSION} has no TLS 1.3"
    try:
        socket.create_server(("127.0.0.1", 0)).close()
    except OSError as error:
        return f"cannot listen on 127.0.0.1: {error}"
    return None


def server_context(ca: Any, cert: Any) -> ssl.SSLContext:
    """A server context that demands a client certificate from ``ca`` (``CERT_REQUIRED``) and
    speaks TLS 1.3 only. ``ca`` and ``cert`` are trustme objects (``configure_trust``,
    ``configure_cert``), or anything with those two methods."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(context)
    cert.configure_cert(context)
    return context


def client_context(ca: Any, cert: Any | None = None) -> ssl.SSLContext:
    """A client context that verifies the server against ``ca`` (hostname included) and, given
    ``cert``, presents it; TLS 1.3 only."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    ca.configure_trust(context)
    if cert is not None:
        cert.configure_cert(context)
    return context


def tls_connector(port: int, context: ssl.SSLContext, server_hostname: str,
                  timeout_s: float = 2.0) -> Connect:
    """A ``connect`` for `MtlsPool`: TCP to 127.0.0.1:``port``, the TLS handshake (resuming
    ``ticket`` if given) and one ping, since a TLS 1.3 server sends its session ticket after
    the handshake. Returns (socket, session, resumed?)."""

    def connect(peer: str, ticket: Any) -> tuple[Any, Any, bool]:
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle + delayed-ACK stall
        try:
            tls = context.wrap_socket(raw, server_hostname=server_hostname, session=ticket)
            tls.sendall(b"ping")
            if tls.recv(16) != b"ping":
                raise ConnectionError(f"{peer} closed the connection (not authorized?)")
        except BaseException:
            raw.close()
            raise
        return tls, tls.session, tls.session_reused

    return connect


class MtlsEchoServer:
    """A TLS 1.3 echo server on 127.0.0.1 (port 0: the system picks one), for the lesson.

    An accept thread hands each connection to a pool of at most ``workers`` threads; every
    blocking call has ``timeout_s``. After the handshake the ``policy`` (if any) checks the
    client's identity and closes the connection of one it does not allow. ``outcomes`` records
    each connection: ("ok", identity, resumed?) or ("rejected", reason). Use it as a context
    manager, or call ``close()`` in a ``finally``.
    """

    def __init__(self, context: ssl.SSLContext, policy: IdentityPolicy | None = None,
                 workers: int = 4, timeout_s: float = 2.0) -> None:
        self.context, self.policy, self.timeout_s = context, policy, timeout_s
        self.outcomes: list[tuple[Any, ...]] = []
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)  # the accept loop checks _stop this often
        self.port = self._listener.getsockname()[1]
        self._workers = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mtls-echo")
        self._thread = threading.Thread(target=self._accept, name="mtls-accept", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            raw.settimeout(self.timeout_s)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._workers.submit(self._serve, raw)

    def _serve(self, raw: socket.socket) -> None:
        try:
            with self.context.wrap_socket(raw, server_side=True) as tls:
                identity = None
                if self.policy is not None:
                    try:
                        identity = self.policy.check(tls.getpeercert())
                    except NotAuthorized as denied:
                        self.outcomes.append(("rejected", str(denied)))
                        return
                self.outcomes.append(("ok", identity, tls.session_reused))
                while not self._stop.is_set():
                    data = tls.recv(4096)
                    if not data:
                        return
                    tls.sendall(data)
        except (OSError, ssl.SSLError) as error:
            self.outcomes.append(("rejected", f"{type(error).__name__}: {error}"))
        finally:
            raw.close()

    def close(self) -> None:
        """Stop accepting, wait (bounded) for the accept thread and the workers."""
        self._stop.set()
        self._listener.close()
        self._thread.join(timeout=2.0)
        self._workers.shutdown(wait=True, cancel_futures=True)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> MtlsEchoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
