"""Token validation at the gateway: ask the issuer every time (introspection), or check the
signature locally (JWT), and what each costs in latency, issuer load and revocation delay.

Picture a club door. The bouncer can phone the box office for every guest ("is ticket 4711
still valid?"), which is always up to date but costs a call each time; or he can check the
hologram on the ticket himself, which takes a glance, but a ticket cancelled an hour ago still
carries a perfect hologram until its date runs out. Writing down the answers of the last few
calls (a cache) sits in between: fewer calls, and a cancelled ticket gets in until its note
expires.

Level 2: `AuthServer` (the issuer: signs JWTs with real keys through PyJWT and
``cryptography``, publishes a JWKS-style key set, revokes, and answers RFC 7662-style
introspection), `LocalJWTValidator` (signature, pinned algorithms, ``kid`` lookup in the key
set, ``iss``, ``aud``, ``exp`` with leeway, time from an injectable clock) and
`CachedIntrospection` (one call to the issuer per token per ``cache_ttl_s``, cached in the TTL
cache of the TTL-expiry lesson). Level 3: `ProductionTokenValidator` (validated
`ValidatorConfig`, a lock around the key set, a key-set refetch on an unknown ``kid``, rate
limited, that survives a key rotation and an unreachable key endpoint, ``logging`` and
``prometheus_client`` metrics) and `serve_auth_server`, a real HTTP issuer on 127.0.0.1.
Nothing here imports from ``simulations``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from patterns.caching.ttl_expiry import TTLCache
from patterns.checks import check_non_negative, check_positive
from patterns.metrics import Instruments

Clock = Callable[[], float]
log = logging.getLogger(__name__)

ASYMMETRIC = ("RS256", "ES256", "EdDSA")


class InactiveTokenError(jwt.InvalidTokenError):
    """The issuer says the token is not active (revoked, expired or unknown)."""


class UnknownKeyError(jwt.InvalidTokenError):
    """The token names a ``kid`` that no published key has (not yet fetched, or retired)."""


class AuthUnavailableError(RuntimeError):
    """The issuer (introspection or key endpoint) could not be reached."""


def new_signing_key(alg: str) -> Any:
    """A fresh private key for ``alg``: RSA 2048 for RS256, P-256 for ES256, Ed25519 for EdDSA."""
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"alg must be one of {', '.join(ASYMMETRIC)} (got {alg!r})")


def public_jwk(private_key: Any, kid: str, alg: str) -> dict[str, Any]:
    """The public half of ``private_key`` as a JWK (RFC 7517) with its ``kid``, ``alg``, ``use``."""
    codec = {"RS256": RSAAlgorithm, "ES256": ECAlgorithm, "EdDSA": OKPAlgorithm}[alg]
    jwk = codec.to_jwk(private_key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


class AuthServer:
    """The issuer: signs access tokens, publishes its public keys, revokes, introspects.

    ``rotate(alg)`` adds a new key and signs with it from then on; the old key stays published
    until ``retire(kid)``, so tokens signed before the rotation still validate.
    """

    def __init__(self, issuer: str = "https://auth.example", alg: str = "ES256",
                 clock: Clock = time.time) -> None:
        self.issuer, self.clock = issuer, clock
        self._keys: dict[str, tuple[Any, str]] = {}  # kid -> (private key, alg)
        self.revoked: set[str] = set()  # jti of revoked tokens
        self.introspections = 0
        self.current_kid = self.rotate(alg)

    def rotate(self, alg: str = "ES256") -> str:
        """Publish a new key and sign with it from now on; returns its ``kid``."""
        kid = f"{alg.lower()}-{len(self._keys) + 1}"
        self._keys[kid] = (new_signing_key(alg), alg)
        self.current_kid = kid
        return kid

    def retire(self, kid: str) -> None:
        """Stop publishing ``kid`` (tokens it signed no longer validate anywhere)."""
        del self._keys[kid]

    def jwks(self) -> dict[str, Any]:
        """The key set a validator fetches: every published public key, by ``kid``."""
        return {"keys": [public_jwk(key, kid, alg) for kid, (key, alg) in self._keys.items()]}

    def issue(self, sub: str, aud: str, lifetime_s: float = 300.0, **claims: Any) -> str:
        """A signed JWT for ``sub`` and audience ``aud``, valid for ``lifetime_s`` from now."""
        key, alg = self._keys[self.current_kid]
        now = self.clock()
        payload = {"iss": self.issuer, "sub": sub, "aud": aud, "iat": int(now),
                   "exp": int(now + lifetime_s), "jti": uuid.uuid4().hex, **claims}
        return jwt.encode(payload, key, algorithm=alg, headers={"kid": self.current_kid})

    def revoke(self, token: str) -> None:
        """Revoke a token: introspection answers ``active: false`` for it from now on."""
        self.revoked.add(jwt.decode(token, options={"verify_signature": False})["jti"])

    def introspect(self, token: str) -> dict[str, Any]:
        """An RFC 7662-style answer: ``{"active": True, ...claims}`` or ``{"active": False}``."""
        self.introspections += 1
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key, alg = self._keys[kid]
            claims = jwt.decode(token, key.public_key(), algorithms=[alg],
                                options={"verify_aud": False, "verify_exp": False,
                                         "verify_iat": False, "verify_nbf": False})
        except (jwt.InvalidTokenError, KeyError):
            return {"active": False}
        if claims["jti"] in self.revoked or self.clock() >= claims["exp"]:
            return {"active": False}
        return {"active": True, **claims}


class LocalJWTValidator:
    """Validate a JWT on the spot: ``kid`` → key from the key set, signature with a pinned
    algorithm list, then ``iss``, ``aud`` and ``exp``/``nbf`` (with ``leeway_s``) on ``clock``.

    No network per request; a revoked token stays valid until its ``exp`` (plus leeway).
    Raises a ``jwt.InvalidTokenError`` subclass for every reason a token is refused.
    """

    def __init__(self, jwks: dict[str, Any], issuer: str, audience: str,
                 algorithms: Sequence[str] = ("ES256",), leeway_s: float = 0.0,
                 clock: Clock = time.time) -> None:
        self.issuer, self.audience = issuer, audience
        self.algorithms = list(algorithms)
        self.leeway_s = check_non_negative("leeway_s", leeway_s)
        self.clock = clock
        self.keys = jwt.PyJWKSet.from_dict(jwks)

    def key_for(self, token: str) -> jwt.PyJWK:
        kid = jwt.get_unverified_header(token).get("kid")
        try:
            return self.keys[kid]
        except KeyError:
            raise UnknownKeyError(f"no published key has kid {kid!r}") from None

    def validate(self, token: str) -> dict[str, Any]:
        claims = jwt.decode(
            token, self.key_for(token), algorithms=self.algorithms, audience=self.audience,
            issuer=self.issuer, options={"verify_exp": False, "verify_nbf": False,
                                         "verify_iat": False,
                                         "require": ["exp", "iat", "iss", "aud", "sub"]})
        now = self.clock()
        if now >= claims["exp"] + self.leeway_s:  # RFC 7519: on or after exp, refuse
            raise jwt.ExpiredSignatureError("Signature has expired")
        if "nbf" in claims and now < claims["nbf"] - self.leeway_s:
            raise jwt.ImmatureSignatureError("The token is not yet valid (nbf)")
        return claims


class CachedIntrospection:
    """Ask the issuer (``introspect(token)``) about each token at most once per ``cache_ttl_s``.

    Answers, active or not, are kept in a `TTLCache` (the TTL-expiry lesson's); with
    ``cache_ttl_s = 0`` every request is a call. A revoked token is accepted until its cached
    answer expires: at most ``cache_ttl_s`` after the revocation.
    """

    def __init__(self, introspect: Callable[[str], dict[str, Any]], cache_ttl_s: float,
                 clock: Clock = time.monotonic) -> None:
        self.introspect = introspect
        self.cache_ttl_s = check_non_negative("cache_ttl_s", cache_ttl_s)
        self.clock = clock
        self.cache = TTLCache(cache_ttl_s, clock) if cache_ttl_s > 0 else None
        self.calls = self.hits = 0

    def lookup(self, token: str) -> dict[str, Any]:
        """The issuer's answer for ``token``: from the cache while fresh, else by a call."""
        answer = self.cache.get(token) if self.cache is not None else None
        if answer is not None:
            self.hits += 1
            return answer
        self.calls += 1
        answer = self.introspect(token)  # raises AuthUnavailableError when the issuer is down
        if self.cache is not None:
            self.cache.put(token, answer)
        return answer

    def validate(self, token: str) -> dict[str, Any]:
        answer = self.lookup(token)
        if not answer.get("active"):
            raise InactiveTokenError("the issuer says the token is not active")
        return answer


class VerifiedTokenCache:
    """Check each distinct token's signature once: the claims of a token that passed are kept,
    by a digest of the token, until its ``exp`` (plus leeway); at most ``max_entries`` (the
    oldest goes first). Saves CPU only: a revoked token is no more or less accepted than by
    the validator it wraps.
    """

    def __init__(self, validator: LocalJWTValidator, max_entries: int = 10_000) -> None:
        self.validator = validator
        self.max_entries = int(check_positive("max_entries", max_entries))
        self._claims: dict[str, dict[str, Any]] = {}
        self.hits = self.misses = 0

    def validate(self, token: str) -> dict[str, Any]:
        key = token_digest(token)
        claims = self._claims.get(key)
        if claims is not None and self.validator.clock() < claims["exp"] + self.validator.leeway_s:
            self.hits += 1
            return claims
        self.misses += 1
        claims = self.validator.validate(token)
        if len(self._claims) >= self.max_entries:
            del self._claims[next(iter(self._claims))]
        self._claims[key] = claims
        return claims


@dataclass(frozen=True)
class ValidatorConfig:
    """A production validator's settings, checked when created.

    ``leeway_s``: allowed clock skew on ``exp``/``nbf``. ``max_lifetime_s``: refuse tokens
    whose ``exp - iat`` is longer (a bound on the revocation delay). ``refetch_cooldown_s``:
    at most one key-set fetch per this many seconds when an unknown ``kid`` appears.
    """

    issuer: str = "https://auth.example"
    audience: str = "api"
    algorithms: tuple[str, ...] = ("ES256",)
    leeway_s: float = 30.0
    max_lifetime_s: float = 3600.0
    refetch_cooldown_s: float = 30.0

    def __post_init__(self) -> None:
        bad = [a for a in self.algorithms if a not in ASYMMETRIC]
        if not self.algorithms or bad:
            raise ValueError(f"ValidatorConfig.algorithms must be a non-empty subset of "
                             f"{', '.join(ASYMMETRIC)} (got {self.algorithms!r})")
        check_non_negative("ValidatorConfig.leeway_s", self.leeway_s)
        check_positive("ValidatorConfig.max_lifetime_s", self.max_lifetime_s)
        check_non_negative("ValidatorConfig.refetch_cooldown_s", self.refetch_cooldown_s)


class ProductionTokenValidator(LocalJWTValidator):
    """`LocalJWTValidator` for a gateway: the key set comes from ``fetch_jwks()`` (the issuer's
    JWKS endpoint) and is fetched again, at most once per ``refetch_cooldown_s``, when a token
    names a ``kid`` it does not know (a key rotation). A fetch that fails keeps the old key set.
    Thread-safe; every refusal is counted by reason (the exception class) and logged.
    """

    def __init__(self, config: ValidatorConfig, fetch_jwks: Callable[[], dict[str, Any]],
                 clock: Clock = time.time, monotonic: Clock = time.monotonic) -> None:
        self.config, self.fetch_jwks, self.monotonic = config, fetch_jwks, monotonic
        self._lock = threading.Lock()
        self.metrics = Instruments("token_validator", "Tokens checked at the gateway")
        self._seconds = self.metrics.histogram(
            "validate_seconds", "Time to validate one token",
            buckets=(1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 0.1, 1.0))
        self._fetched_at = monotonic()
        super().__init__(fetch_jwks(), config.issuer, config.audience, config.algorithms,
                         config.leeway_s, clock)
        self.metrics.count("jwks_fetch")

    def key_for(self, token: str) -> jwt.PyJWK:
        kid = jwt.get_unverified_header(token).get("kid")
        with self._lock:
            keys = self.keys
            if not any(key.key_id == kid for key in keys):
                keys = self._refetch(kid)
        try:
            return keys[kid]
        except KeyError:
            raise UnknownKeyError(f"no published key has kid {kid!r}") from None

    def _refetch(self, kid: str | None) -> jwt.PyJWKSet:
        now = self.monotonic()
        if now - self._fetched_at < self.config.refetch_cooldown_s:
            self.metrics.count("jwks_fetch_skipped")
            return self.keys
        self._fetched_at = now
        try:
            self.keys = jwt.PyJWKSet.from_dict(self.fetch_jwks())
            self.metrics.count("jwks_fetch")
            log.info("fetched the key set again for unknown kid %r", kid)
        except Exception as error:  # keep validating with the keys we have
            self.metrics.count("jwks_fetch_error")
            log.warning("key set fetch failed (%s); keeping %d known keys", error,
                        len(self.keys.keys))
        return self.keys

    def validate(self, token: str) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            claims = super().validate(token)
            if claims["exp"] - claims["iat"] > self.config.max_lifetime_s:
                raise jwt.InvalidTokenError(
                    f"token lifetime {claims['exp'] - claims['iat']} s is over "
                    f"max_lifetime_s = {self.config.max_lifetime_s:g}")
        except jwt.InvalidTokenError as error:
            self.metrics.count(f"rejected_{type(error).__name__}")
            log.info("refused a token: %s: %s", type(error).__name__, error)
            raise
        finally:
            self._seconds.observe(time.perf_counter() - started)
        self.metrics.count("accepted")
        return claims


# --- a real issuer on localhost -------------------------------------------------------------


@contextlib.contextmanager
def serve_auth_server(auth: AuthServer) -> Iterator[str]:
    """Serve ``auth`` over HTTP on 127.0.0.1 (a free port): ``POST /introspect`` (form field
    ``token``, RFC 7662 style) and ``GET /jwks``. Yields the base URL; stops on exit."""

    class Handler(BaseHTTPRequestHandler):
        def _send(self, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._send(auth.jwks())

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length", 0))
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            self._send(auth.introspect(form.get("token", [""])[0]))

        def log_message(self, *args: Any) -> None:  # keep the notebook quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def http_introspector(base_url: str, timeout_s: float = 2.0) -> Callable[[str], dict[str, Any]]:
    """``introspect(token)`` over HTTP to ``base_url``/introspect, with a timeout."""

    def introspect(token: str) -> dict[str, Any]:
        body = urllib.parse.urlencode({"token": token}).encode()
        try:
            with urllib.request.urlopen(f"{base_url}/introspect", body, timeout=timeout_s) as r:
                return json.loads(r.read())
        except OSError as error:
            raise AuthUnavailableError(f"introspection failed: {error}") from error

    return introspect


def http_jwks(base_url: str, timeout_s: float = 2.0) -> Callable[[], dict[str, Any]]:
    """``fetch_jwks()`` over HTTP from ``base_url``/jwks, with a timeout."""

    def fetch() -> dict[str, Any]:
        with urllib.request.urlopen(f"{base_url}/jwks", timeout=timeout_s) as r:
            return json.loads(r.read())

    return fetch


def token_digest(token: str) -> str:
    """A short SHA-256 digest of a token: a cache key that does not keep the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()[:32]


__all__ = [
    "ASYMMETRIC", "AuthServer", "AuthUnavailableError", "CachedIntrospection",
    "InactiveTokenError", "LocalJWTValidator", "ProductionTokenValidator", "UnknownKeyError",
    "ValidatorConfig", "VerifiedTokenCache",
    "http_introspector", "http_jwks", "new_signing_key", "public_jwk", "serve_auth_server",
    "token_digest",
]
