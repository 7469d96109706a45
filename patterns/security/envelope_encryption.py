"""Envelope encryption: encrypt data with a data key, and only the data key with the master key.

Picture a block of flats with one master key kept in the caretaker's safe. Each tenant's flat
has its own cheap key; the caretaker never lends out the master key, he only opens the safe to
cut or check a flat key. A tenant who loses a flat key exposes one flat, not the building; and
because visiting the caretaker takes time, a tenant keeps the flat key on a hook for a while
instead of asking for a new one at every door.

Here the master key lives in a key service (``KeyService``: a real AES-256-GCM key that wraps and
unwraps data keys; only its network latency is simulated, by ``latency_s`` and ``sleep``). Every
message is sealed with a real AES-256-GCM data key and a fresh random 96-bit nonce; the envelope
carries the ciphertext and the *wrapped* data key. ``DataKeyCache`` is the Level 2 policy: a data
key fetched from the key service may serve at most ``max_messages`` messages and for at most
``max_age_s`` seconds (the AWS Encryption SDK calls these "maximum messages encrypted" and
"maximum age"). ``EnvelopeEncryptor`` puts the three together; time is injectable (``clock``),
so the same cache runs in real time, under a test's clock and inside a simulation.

``ProductionEnvelopeEncryptor`` hardens it for Level 3: a validated ``EnvelopeConfig``, a lock,
fail-closed behaviour when the key service is down (a key is never stretched past its limits),
a cache of unwrapped keys on the decrypt side, ``logging`` and ``prometheus_client`` metrics.
``ContextKeyCache`` is the Level 4 integration: one data key per encryption context, held in the
caching lessons' ``BoundedTTLCache`` (``patterns/caching/ttl_expiry.py``), so the TTL is the
maximum age and an LRU bound caps how many plaintext keys sit in memory.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from patterns.caching.ttl_expiry import BoundedTTLCache
from patterns.checks import check_int, check_non_negative, check_positive
from patterns.metrics import Instruments

__all__ = [
    "CachedKey", "ContextKeyCache", "DataKeyCache", "Envelope", "EnvelopeConfig",
    "EnvelopeEncryptor", "KeyService", "KeyServiceUnavailable", "ProductionEnvelopeEncryptor",
    "NONCE_BYTES",
]

Clock = Callable[[], float]
NONCE_BYTES = 12  # 96-bit nonces: RFC 5116 §5.1 sets N_MIN = N_MAX = 12 octets for AES-GCM
log = logging.getLogger(__name__)


class KeyServiceUnavailable(RuntimeError):
    """The key service did not answer: no new data key can be made or unwrapped."""


class KeyService:
    """A key service (KMS) holding one real AES-256 master key that never leaves it.

    ``generate_data_key()`` returns a fresh 256-bit data key in plaintext and wrapped (sealed
    under the master key, nonce prefixed); ``unwrap(wrapped)`` opens a wrapped key. Each call
    costs ``latency_s`` (the network round trip, spent through ``sleep``) and is counted in
    ``calls``. ``available = False`` simulates an outage.
    """

    def __init__(self, latency_s: float = 0.0, sleep: Callable[[float], None] = time.sleep,
                 key_id: str = "master-1") -> None:
        self.latency_s = check_non_negative("latency_s", latency_s)
        self.sleep, self.key_id = sleep, key_id
        self._master = AESGCM(AESGCM.generate_key(bit_length=256))
        self.calls = 0
        self.available = True

    def _call(self) -> None:
        if not self.available:
            raise KeyServiceUnavailable(f"key service {self.key_id} is unavailable")
        self.calls += 1
        if self.latency_s:
            self.sleep(self.latency_s)

    def generate_data_key(self) -> tuple[bytes, bytes]:
        """(plaintext data key, wrapped data key)."""
        self._call()
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(NONCE_BYTES)
        return data_key, nonce + self._master.encrypt(nonce, data_key, self.key_id.encode())

    def unwrap(self, wrapped: bytes) -> bytes:
        """The plaintext data key inside ``wrapped`` (``InvalidTag`` if it is not ours)."""
        self._call()
        return self._master.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:],
                                    self.key_id.encode())


@dataclass(frozen=True)
class Envelope:
    """What is stored or sent: the wrapped data key, the nonce and the AES-GCM ciphertext."""

    wrapped_key: bytes
    nonce: bytes
    ciphertext: bytes  # includes GCM's 16-byte tag


@dataclass
class CachedKey:
    """A data key in the cache, with what it has done so far."""

    plaintext: bytes
    wrapped: bytes
    created_at: float
    messages: int = 0
    bytes: int = 0


class DataKeyCache:
    """Hold one data key while it may still serve: fewer than ``max_messages`` messages so far
    and younger than ``max_age_s`` (an entry at exactly ``max_age_s`` is expired).

    ``take(now)`` returns the key for one more message (counting it) or None when a new key
    is needed; ``put(key)`` installs a new one. ``keys`` counts the keys installed.
    """

    def __init__(self, max_messages: int, max_age_s: float, clock: Clock = time.monotonic) -> None:
        self.max_messages = check_int("max_messages", max_messages, 1)
        self.max_age_s = check_positive("max_age_s", max_age_s, allow_inf=True)
        self.clock = clock
        self.current: CachedKey | None = None
        self.keys = 0

    def usable(self, key: CachedKey, now: float) -> bool:
        """May ``key`` serve one more message at ``now``?"""
        return key.messages < self.max_messages and now - key.created_at < self.max_age_s

    def take(self, nbytes: int = 0) -> CachedKey | None:
        """The cached key, counted for one more message of ``nbytes``, or None (evicted)."""
        key = self.current
        if key is None or not self.usable(key, self.clock()):
            self.current = None
            return None
        key.messages += 1
        key.bytes += nbytes
        return key

    def put(self, key: CachedKey, nbytes: int = 0) -> CachedKey:
        """Install a new key and count its first message."""
        key.messages, key.bytes = 1, nbytes
        self.current = key
        self.keys += 1
        return key


class EnvelopeEncryptor:
    """Seal messages under cached data keys; open envelopes by unwrapping their data key."""

    def __init__(self, key_service: KeyService, max_messages: int = 1000,
                 max_age_s: float = 300.0, clock: Clock = time.monotonic) -> None:
        self.key_service = key_service
        self.cache = DataKeyCache(max_messages, max_age_s, clock)

    def data_key(self, nbytes: int = 0) -> CachedKey:
        """The key for the next message: the cached one, or a new one from the key service."""
        key = self.cache.take(nbytes)
        if key is None:
            plaintext, wrapped = self.key_service.generate_data_key()
            key = self.cache.put(CachedKey(plaintext, wrapped, self.cache.clock()), nbytes)
        return key

    def encrypt(self, plaintext: bytes, aad: bytes = b"") -> Envelope:
        """AES-256-GCM under the current data key, with a fresh random 96-bit nonce."""
        key = self.data_key(len(plaintext))
        nonce = os.urandom(NONCE_BYTES)
        return Envelope(key.wrapped, nonce, AESGCM(key.plaintext).encrypt(nonce, plaintext, aad))

    def decrypt(self, envelope: Envelope, aad: bytes = b"") -> bytes:
        """The plaintext; raises ``InvalidTag`` if the ciphertext, nonce, key or aad differ."""
        data_key = self.key_service.unwrap(envelope.wrapped_key)
        return AESGCM(data_key).decrypt(envelope.nonce, envelope.ciphertext, aad)


@dataclass(frozen=True)
class EnvelopeConfig:
    """A production encryptor's settings, checked when created.

    ``max_messages`` and ``max_age_s`` bound each data key; ``unwrap_cache_size`` is how many
    unwrapped data keys the decrypt side keeps (0: unwrap every envelope).
    """

    max_messages: int = 1000
    max_age_s: float = 300.0
    unwrap_cache_size: int = 64

    def __post_init__(self) -> None:
        check_int("EnvelopeConfig.max_messages", self.max_messages, 1)
        check_positive("EnvelopeConfig.max_age_s", self.max_age_s)
        check_int("EnvelopeConfig.unwrap_cache_size", self.unwrap_cache_size, 0)


class ProductionEnvelopeEncryptor(EnvelopeEncryptor):
    """A thread-safe encryptor that fails closed and keeps metrics.

    The lock covers the cache only; a key-service call is made outside it by one thread at a
    time per miss (others wait for its key). If the key service is down, encryption goes on
    while the cached key is within its limits, then raises ``KeyServiceUnavailable``: an
    expired key is never reused. Decryption keeps up to ``unwrap_cache_size`` unwrapped keys
    (by wrapped key), each for at most ``max_age_s``. Events are counted in ``metrics``
    (encrypt, key_hit, key_miss, key_service_error, decrypt, unwrap_hit, unwrap_miss,
    decrypt_failed); ``key_service_seconds`` times each call to the key service.
    """

    def __init__(self, name: str, key_service: KeyService, config: EnvelopeConfig | None = None,
                 clock: Clock = time.monotonic) -> None:
        self.config = config or EnvelopeConfig()
        super().__init__(key_service, self.config.max_messages, self.config.max_age_s, clock)
        self.name = name
        self._lock = threading.Lock()
        self._fetch = threading.Lock()
        self._unwrapped = BoundedTTLCache(max(1, self.config.unwrap_cache_size),
                                          self.config.max_age_s, clock)
        self.metrics = Instruments("envelope", "Envelope encryption operations")
        self._key_seconds = self.metrics.histogram("key_service_seconds",
                                                   "Time in calls to the key service")

    def _timed(self, call: Callable[[], object]) -> object:
        started = time.perf_counter()
        try:
            return call()
        except KeyServiceUnavailable:
            self.metrics.count("key_service_error")
            log.warning("%s: key service unavailable", self.name)
            raise
        finally:
            self._key_seconds.observe(time.perf_counter() - started)

    def data_key(self, nbytes: int = 0) -> CachedKey:
        with self._lock:
            key = self.cache.take(nbytes)
        if key is not None:
            self.metrics.count("key_hit")
            return key
        with self._fetch:  # one fetch at a time; a waiter may find the new key already there
            with self._lock:
                key = self.cache.take(nbytes)
            if key is not None:
                self.metrics.count("key_hit")
                return key
            plaintext, wrapped = self._timed(self.key_service.generate_data_key)
            with self._lock:
                key = self.cache.put(CachedKey(plaintext, wrapped, self.cache.clock()), nbytes)
        self.metrics.count("key_miss")
        log.info("%s: new data key (%d so far)", self.name, self.cache.keys)
        return key

    def encrypt(self, plaintext: bytes, aad: bytes = b"") -> Envelope:
        envelope = super().encrypt(plaintext, aad)
        self.metrics.count("encrypt")
        return envelope

    def decrypt(self, envelope: Envelope, aad: bytes = b"") -> bytes:
        self.metrics.count("decrypt")
        with self._lock:
            data_key = (self._unwrapped.get(envelope.wrapped_key)
                        if self.config.unwrap_cache_size else None)
        if data_key is None:
            self.metrics.count("unwrap_miss")
            data_key = self._timed(lambda: self.key_service.unwrap(envelope.wrapped_key))
            if self.config.unwrap_cache_size:
                with self._lock:
                    self._unwrapped.put(envelope.wrapped_key, data_key)
        else:
            self.metrics.count("unwrap_hit")
        try:
            return AESGCM(data_key).decrypt(envelope.nonce, envelope.ciphertext, aad)
        except Exception:
            self.metrics.count("decrypt_failed")
            log.warning("%s: an envelope failed authentication", self.name)
            raise


class ContextKeyCache:
    """One data key per encryption context (tenant, table, ...), held in a ``BoundedTTLCache``.

    The TTL is the key's maximum age; at most ``capacity`` plaintext keys stay in memory (the
    least recently used goes first); each key serves at most ``max_messages`` messages.
    ``encrypt(context, plaintext)`` binds the context as associated data, so an envelope
    opened under another context fails with ``InvalidTag``.
    """

    def __init__(self, key_service: KeyService, capacity: int, max_messages: int,
                 max_age_s: float, clock: Clock = time.monotonic) -> None:
        self.key_service = key_service
        self.max_messages = check_int("max_messages", max_messages, 1)
        self.store = BoundedTTLCache(capacity, max_age_s, clock)
        self.clock = clock

    def data_key(self, context: Hashable) -> CachedKey:
        key = self.store.get(context)
        if key is None or key.messages >= self.max_messages:
            plaintext, wrapped = self.key_service.generate_data_key()
            key = CachedKey(plaintext, wrapped, self.clock())
            self.store.put(context, key)
        key.messages += 1
        return key

    def encrypt(self, context: str, plaintext: bytes) -> Envelope:
        key = self.data_key(context)
        nonce = os.urandom(NONCE_BYTES)
        return Envelope(key.wrapped, nonce,
                        AESGCM(key.plaintext).encrypt(nonce, plaintext, context.encode()))

    def decrypt(self, context: str, envelope: Envelope) -> bytes:
        data_key = self.key_service.unwrap(envelope.wrapped_key)
        return AESGCM(data_key).decrypt(envelope.nonce, envelope.ciphertext, context.encode())

    def __len__(self) -> int:
        return len(self.store)
