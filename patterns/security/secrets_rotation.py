"""Secrets rotation: every credential has a version id and a best-before time, and is replaced
before it runs out, while the previous version is still accepted.

Picture the door codes of an office. Facilities change the code every month and pin the new one
on the notice board; for a few days the old code still opens the door too, so nobody who has not
read the board yet is locked out. A code that leaks opens the door only until it expires: the
shorter its life, the less a leak is worth, and the more often everyone must read the board.

`KeyRing` is the Level 2 idea, for one named secret (an HMAC-SHA256 signing key): ``rotate``
makes a new version with its own key id (``kid``) and expiry ``ttl_s`` later; the ``keep``
newest versions stay valid (2: current and previous, the overlap; 1: no overlap), and
``verify`` accepts a signature only from a kept, unexpired version. `Refresher` is the client's
side: when to fetch a fresh version (a fraction of its life, with jitter). Time is injectable
(``clock``), so the same classes run in real time, under a test's hand-moved clock and inside a
simulation.

`ProductionKeyRing` hardens it for Level 3: a validated `RotationConfig`, a lock, named secrets,
``logging`` and ``prometheus_client`` metrics, and refusals counted by reason. Nothing here
imports from ``simulations``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from patterns.checks import check_int, check_positive, check_range
from patterns.metrics import Instruments

__all__ = ["Credential", "KeyRing", "ProductionKeyRing", "Refresher", "RotationConfig",
           "sign"]

Clock = Callable[[], float]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Credential:
    """One version of a secret: its key id, the key bytes and its validity window."""

    kid: str
    key: bytes = field(repr=False)
    issued_at: float
    expires_at: float


def sign(credential: Credential, message: bytes) -> tuple[str, bytes]:
    """(kid, HMAC-SHA256 tag) of ``message`` under ``credential``: what a client sends."""
    return credential.kid, hmac.new(credential.key, message, hashlib.sha256).digest()


class KeyRing:
    """Versions of one signing key: ``rotate`` adds one, the ``keep`` newest stay valid."""

    def __init__(self, ttl_s: float, keep: int = 2, clock: Clock = time.monotonic) -> None:
        self.ttl_s = check_positive("ttl_s", ttl_s)
        self.keep = check_int("keep", keep, 1)
        self.clock = clock
        self.versions: dict[str, Credential] = {}  # kept versions, oldest first
        self.serial = 0

    def rotate(self) -> Credential:
        """Make a new current version (a fresh 256-bit key) and drop versions beyond ``keep``."""
        now = self.clock()
        self.serial += 1
        new = Credential(f"v{self.serial}", secrets.token_bytes(32), now, now + self.ttl_s)
        self.versions[new.kid] = new
        while len(self.versions) > self.keep:
            del self.versions[next(iter(self.versions))]
        return new

    def current(self) -> Credential:
        """The newest version (what a client fetches; AWS Secrets Manager calls it AWSCURRENT)."""
        return self.versions[f"v{self.serial}"]

    def refusal(self, kid: str, message: bytes, tag: bytes) -> str | None:
        """Why the signature would be refused ("unknown kid", "expired", "bad signature"), or
        None if it is accepted."""
        version = self.versions.get(kid)
        if version is None:
            return "unknown kid"
        if self.clock() >= version.expires_at:
            return "expired"
        expected = hmac.new(version.key, message, hashlib.sha256).digest()
        return None if hmac.compare_digest(expected, tag) else "bad signature"

    def verify(self, kid: str, message: bytes, tag: bytes) -> bool:
        """True if a kept, unexpired version ``kid`` made ``tag`` for ``message``."""
        return self.refusal(kid, message, tag) is None


class Refresher:
    """The client's schedule: fetch a new version after ``fraction`` of the held one's life,
    drawn ``jitter`` earlier at random (uniform, up to ``jitter`` of that time)."""

    def __init__(self, fraction: float = 0.5, jitter: float = 0.0,
                 rand: Callable[[], float] = random.random) -> None:
        self.fraction = check_range("fraction", fraction, 0.0, 1.0, low_open=True)
        self.jitter = check_range("jitter", jitter, 0.0, 1.0, high_open=True)
        self.rand = rand

    def delay(self, lifetime_s: float, u: float | None = None) -> float:
        """Seconds from a credential's issue to its refresh: fraction·life·(1 − jitter·u)."""
        u = self.rand() if u is None else u
        return self.fraction * lifetime_s * (1.0 - self.jitter * u)

    def due_at(self, credential: Credential, u: float | None = None) -> float:
        """When the client should fetch the next version after ``credential``."""
        return credential.issued_at + self.delay(credential.expires_at - credential.issued_at, u)


# ---------------------------------------------------------------- Level 3: production


@dataclass(frozen=True)
class RotationConfig:
    """A production key ring's settings, checked when created."""

    ttl_s: float = 3600.0  # how long each version is accepted after it is made
    rotate_every_s: float = 1800.0  # how often a new version is made
    keep: int = 2  # versions accepted at once: current and previous

    def __post_init__(self) -> None:
        check_positive("RotationConfig.ttl_s", self.ttl_s)
        check_positive("RotationConfig.rotate_every_s", self.rotate_every_s)
        check_int("RotationConfig.keep", self.keep, 1)
        if self.rotate_every_s > self.ttl_s:
            raise ValueError(f"RotationConfig.rotate_every_s must be <= ttl_s ({self.ttl_s:g}) "
                             f"(got {self.rotate_every_s!r}): a version would expire before "
                             "the next one exists")


class ProductionKeyRing(KeyRing):
    """A thread-safe key ring that rotates on schedule (``tick``), logs, and counts.

    ``tick()`` rotates when the current version is ``rotate_every_s`` old (call it from a timer);
    ``verify`` counts accepted and refused signatures by reason; ``revoke(kid)`` drops a leaked
    version at once.
    """

    def __init__(self, name: str, config: RotationConfig | None = None,
                 clock: Clock = time.monotonic) -> None:
        self.config = config or RotationConfig()
        super().__init__(self.config.ttl_s, self.config.keep, clock)
        self.name = name
        self._lock = threading.Lock()
        self.metrics = Instruments("keyring", "Rotations and verifications of the key ring")
        self._age = self.metrics.histogram(
            "verified_age_seconds", "Age of the version that verified a signature",
            buckets=tuple(self.config.ttl_s * f for f in (0.1, 0.25, 0.5, 0.75, 1.0)))
        self.rotate()

    def rotate(self) -> Credential:
        with self._lock:
            new = super().rotate()
        self.metrics.count("rotations")
        log.info("keyring %s: rotated to %s (keeps %d, expires at %.1f)", self.name, new.kid,
                 self.keep, new.expires_at)
        return new

    def current(self) -> Credential:
        with self._lock:
            return super().current()

    def tick(self) -> bool:
        """Rotate if the current version is due; True if it rotated."""
        if self.clock() - self.current().issued_at >= self.config.rotate_every_s:
            self.rotate()
            return True
        return False

    def revoke(self, kid: str) -> bool:
        """Stop accepting version ``kid`` now (a leak); the current one cannot be revoked
        without rotating first."""
        with self._lock:
            if kid not in self.versions or kid == f"v{self.serial}":
                return False
            del self.versions[kid]
        self.metrics.count("revocations")
        log.warning("keyring %s: revoked %s", self.name, kid)
        return True

    def verify(self, kid: str, message: bytes, tag: bytes) -> bool:
        with self._lock:
            reason = self.refusal(kid, message, tag)
            version = self.versions.get(kid)
        if reason is None and version is not None:
            self.metrics.count("accepted")
            self._age.observe(self.clock() - version.issued_at)
            return True
        self.metrics.count(f"refused_{reason.replace(' ', '_')}")
        log.debug("keyring %s: refused %s (%s)", self.name, kid, reason)
        return False
