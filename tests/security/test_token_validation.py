"""Tests of token validation (patterns.security.token_validation) and its study
(simulations.security.token_validation): real signatures and the classic pitfalls failing
safely, key rotation, the introspection cache, the production validator, the fast path against
the pattern run request by request, and the closed forms against the simulation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import replace

import jwt
import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization

from patterns.security.token_validation import (
    AuthServer,
    AuthUnavailableError,
    CachedIntrospection,
    InactiveTokenError,
    LocalJWTValidator,
    ProductionTokenValidator,
    UnknownKeyError,
    ValidatorConfig,
    VerifiedTokenCache,
    http_introspector,
    http_jwks,
    serve_auth_server,
)
from simulations.security import token_validation as study
from simulations.security.token_validation import (
    Scenario,
    added_latency,
    hit_ratio,
    hit_ratio_one,
    mean_revocation_delay,
    replay,
    simulate,
    summary,
    ttl_misses,
)
from simulations.workloads import ZipfKeys

T0 = 1_700_000_000.0  # a fixed "now" for the hand-moved clocks


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict, payload: dict, sign=lambda signing_input: b"") -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


@pytest.fixture(scope="module")
def auth():
    now = [T0]
    server = AuthServer(alg="ES256", clock=lambda: now[0])
    server.now = now
    return server


def validator(auth, **kw):
    return LocalJWTValidator(auth.jwks(), auth.issuer, "api", clock=lambda: auth.now[0], **kw)


def test_the_study_uses_the_pattern_classes():
    assert study.CachedIntrospection is CachedIntrospection
    assert study.LocalJWTValidator is LocalJWTValidator


def test_a_valid_token_is_accepted_with_its_claims(auth):
    token = auth.issue("alice", "api", 300, scope="read")
    claims = validator(auth).validate(token)
    assert claims["sub"] == "alice" and claims["scope"] == "read"
    assert jwt.get_unverified_header(token)["kid"] == auth.current_kid


def test_expiry_with_and_without_leeway(auth):
    token = auth.issue("bob", "api", 60)
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    auth.now[0] = exp  # RFC 7519: on or after exp the token must not be accepted
    try:
        with pytest.raises(jwt.ExpiredSignatureError):
            validator(auth).validate(token)
        assert validator(auth, leeway_s=30).validate(token)["sub"] == "bob"
        auth.now[0] = exp + 30
        with pytest.raises(jwt.ExpiredSignatureError):
            validator(auth, leeway_s=30).validate(token)
    finally:
        auth.now[0] = T0


def test_a_token_for_another_audience_is_refused(auth):
    with pytest.raises(jwt.InvalidAudienceError):
        validator(auth).validate(auth.issue("carol", "billing", 300))


def test_alg_none_is_refused_because_algorithms_are_pinned(auth):
    claims = {"iss": auth.issuer, "sub": "mallory", "aud": "api", "iat": int(T0),
              "exp": int(T0) + 300}
    token = forged({"alg": "none", "typ": "JWT", "kid": auth.current_kid}, claims)
    with pytest.raises(jwt.InvalidAlgorithmError):
        validator(auth).validate(token)


def test_hs256_signed_with_the_public_key_is_refused():
    rsa_auth = AuthServer(alg="RS256", clock=lambda: T0)
    public_pem = rsa_auth._keys[rsa_auth.current_kid][0].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    claims = {"iss": rsa_auth.issuer, "sub": "mallory", "aud": "api", "iat": int(T0),
              "exp": int(T0) + 300}
    token = forged({"alg": "HS256", "typ": "JWT", "kid": rsa_auth.current_kid}, claims,
                   lambda data: hmac.new(public_pem, data, hashlib.sha256).digest())
    pinned = LocalJWTValidator(rsa_auth.jwks(), rsa_auth.issuer, "api", ("RS256",),
                               clock=lambda: T0)
    with pytest.raises(jwt.InvalidAlgorithmError):
        pinned.validate(token)
    # even with HS256 allowed, PyJWT refuses a PEM public key as an HMAC secret
    with pytest.raises(jwt.InvalidKeyError):
        jwt.decode(token, public_pem, algorithms=["RS256", "HS256"], audience="api")


def test_a_tampered_payload_fails_the_signature(auth):
    token = auth.issue("dave", "api", 300)
    head, _, sig = token.split(".")
    body = b64(json.dumps({"iss": auth.issuer, "sub": "admin", "aud": "api",
                           "iat": int(T0), "exp": int(T0) + 300}).encode())
    with pytest.raises(jwt.InvalidSignatureError):
        validator(auth).validate(f"{head}.{body}.{sig}")


def test_rotation_keeps_old_tokens_valid_until_the_old_key_is_retired():
    server = AuthServer(alg="ES256", clock=lambda: T0)
    old_kid = server.current_kid
    old = server.issue("erin", "api", 300)
    new_kid = server.rotate("EdDSA")
    new = server.issue("erin", "api", 300)
    both = LocalJWTValidator(server.jwks(), server.issuer, "api", ("ES256", "EdDSA"),
                             clock=lambda: T0)
    assert {k["kid"] for k in server.jwks()["keys"]} == {old_kid, new_kid}
    assert both.validate(old)["sub"] == both.validate(new)["sub"] == "erin"
    server.retire(old_kid)
    after = LocalJWTValidator(server.jwks(), server.issuer, "api", ("ES256", "EdDSA"),
                              clock=lambda: T0)
    with pytest.raises(UnknownKeyError, match="no published key"):
        after.validate(old)
    assert after.validate(new)["sub"] == "erin"


def test_local_validation_agrees_with_plain_pyjwt_in_real_time():
    server = AuthServer(alg="ES256")  # real time: PyJWT checks exp with the wall clock
    ours = LocalJWTValidator(server.jwks(), server.issuer, "api", leeway_s=5)
    key = jwt.PyJWKSet.from_dict(server.jwks())[server.current_kid]
    tokens = [server.issue("u", "api", 300), server.issue("u", "api", -60),
              server.issue("u", "api", -2), server.issue("u", "other", 300)]
    for token in tokens:
        def plain(t=token):
            return jwt.decode(t, key, algorithms=["ES256"], audience="api",
                              issuer=server.issuer, leeway=5)
        outcomes = []
        for check in (ours.validate, lambda t: plain()):
            try:
                check(token)
                outcomes.append("ok")
            except jwt.InvalidTokenError as error:
                outcomes.append(type(error).__name__)
        assert outcomes[0] == outcomes[1], outcomes


def test_cached_introspection_hits_within_the_ttl_and_sees_a_revocation_after_it(auth):
    now = [0.0]
    token = auth.issue("frank", "api", 3600)
    gate = CachedIntrospection(auth.introspect, 10.0, clock=lambda: now[0])
    assert gate.validate(token)["active"] and gate.calls == 1
    now[0] = 9.99
    assert gate.validate(token)["active"] and (gate.calls, gate.hits) == (1, 1)
    auth.revoke(token)
    now[0] = 9.999  # revoked, but the cached answer still says active
    assert gate.validate(token)["active"]
    now[0] = 10.0  # TTLCache: the boundary is a miss
    with pytest.raises(InactiveTokenError):
        gate.validate(token)
    assert gate.calls == 2
    uncached = CachedIntrospection(auth.introspect, 0.0, clock=lambda: now[0])
    for _ in range(3):
        with pytest.raises(InactiveTokenError):
            uncached.validate(token)
    assert uncached.calls == 3 and uncached.cache is None


def test_an_unreachable_issuer_is_not_cached():
    now, up = [0.0], [False]

    def introspect(token):
        if not up[0]:
            raise AuthUnavailableError("down")
        return {"active": True}

    gate = CachedIntrospection(introspect, 10.0, clock=lambda: now[0])
    with pytest.raises(AuthUnavailableError):
        gate.validate("t")
    up[0] = True
    assert gate.validate("t")["active"] and gate.calls == 2


@pytest.mark.parametrize("kwargs, message", [
    ({"algorithms": ("HS256",)}, "ValidatorConfig.algorithms must be a non-empty subset"),
    ({"algorithms": ()}, "ValidatorConfig.algorithms must be a non-empty subset"),
    ({"leeway_s": -1}, r"ValidatorConfig.leeway_s must be >= 0 \(got -1\)"),
    ({"max_lifetime_s": 0}, r"ValidatorConfig.max_lifetime_s must be > 0 \(got 0\)"),
])
def test_bad_config_names_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ValidatorConfig(**kwargs)


def test_bad_scenario_names_the_field():
    with pytest.raises(ValueError, match=r"Scenario.mode must be one of introspect, local, "
                                         r"denylist \(got 'cache'\)"):
        Scenario(mode="cache")
    with pytest.raises(ValueError, match=r"Scenario.cache_ttl_s must be >= 0 \(got -1\)"):
        Scenario(cache_ttl_s=-1)


def test_production_validator_refetches_on_rotation_with_a_cooldown():
    mono, fails = [0.0], [False]
    server = AuthServer(alg="ES256", clock=lambda: T0)

    def fetch():
        if fails[0]:
            raise OSError("key endpoint unreachable")
        return server.jwks()

    v = ProductionTokenValidator(ValidatorConfig(refetch_cooldown_s=30), fetch,
                                 clock=lambda: T0, monotonic=lambda: mono[0])
    old = server.issue("g", "api", 300)
    assert v.validate(old)["sub"] == "g"
    server.rotate("ES256")
    new = server.issue("g", "api", 300)
    with pytest.raises(UnknownKeyError):  # within the cooldown: no fetch
        v.validate(new)
    mono[0] = 31.0
    assert v.validate(new)["sub"] == "g"  # unknown kid after the cooldown: fetched again
    server.rotate("ES256")
    newer = server.issue("g", "api", 300)
    fails[0], mono[0] = True, 70.0
    with pytest.raises(UnknownKeyError):
        v.validate(newer)
    assert v.validate(old)["sub"] == "g"  # the failed fetch kept the known keys
    long = server.issue("g", "api", 7200)
    fails[0], mono[0] = False, 200.0
    with pytest.raises(jwt.InvalidTokenError, match="max_lifetime_s"):
        v.validate(long)
    c = v.metrics.counts
    assert c["jwks_fetch"] == 3 and c["jwks_fetch_error"] == 1
    assert c["jwks_fetch_skipped"] == 1 and c["accepted"] == 3
    assert c["rejected_UnknownKeyError"] == 2 and c["rejected_InvalidTokenError"] == 1
    assert v.metrics.observed("validate_seconds") == 6


def test_production_validator_under_threads_counts_every_token():
    server = AuthServer(alg="EdDSA", clock=lambda: T0)
    v = ProductionTokenValidator(ValidatorConfig(algorithms=("EdDSA",)), server.jwks,
                                 clock=lambda: T0)
    good, bad = server.issue("h", "api", 300), server.issue("h", "elsewhere", 300)
    results = []

    def worker():
        for token in [good, bad] * 25:
            try:
                v.validate(token)
                results.append(True)
            except jwt.InvalidTokenError:
                results.append(False)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)
    c = v.metrics.counts
    assert c["accepted"] == sum(results) == 100 and c["rejected_InvalidAudienceError"] == 100


def test_the_http_issuer_on_localhost_introspects_and_serves_the_key_set():
    server = AuthServer(alg="ES256")
    token = server.issue("i", "api", 300)
    with serve_auth_server(server) as url:
        introspect = http_introspector(url, timeout_s=2.0)
        assert introspect(token)["active"] and introspect(token)["sub"] == "i"
        server.revoke(token)
        assert introspect(token) == {"active": False}
        assert http_jwks(url)()["keys"][0]["kid"] == server.current_kid
    with pytest.raises(AuthUnavailableError):
        introspect(token)


# --- the study ----------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [
    {"cache_ttl_s": 0.0}, {"cache_ttl_s": 1.0}, {"cache_ttl_s": 30.0, "seed": 4},
    {"mode": "local", "token_lifetime_s": 60.0, "leeway_s": 5.0},
    {"mode": "denylist", "denylist_poll_s": 5.0, "seed": 2},
])
def test_the_fast_path_matches_the_pattern_run_request_by_request(settings):
    sc = replace(Scenario(duration_s=40.0, revocations=30), **settings)
    fast, slow = simulate(sc), replay(sc)
    assert np.array_equal(fast.call, slow.call)
    assert np.array_equal(fast.accepted, slow.accepted)
    assert np.allclose(fast.revocation_delay, slow.revocation_delay)
    assert np.array_equal(fast.refreshes, slow.refreshes)


def test_the_ttl_rule_matches_the_per_token_hit_ratio():
    # One token at 2 req/s for 20,000 s: 40,000 requests; a miss cycle lasts ttl + 1/rate, so
    # about 40,000/(1 + rate·ttl) misses; the binomial-like SE of the miss share is below
    # 0.003 at these settings, so 0.01 is over 3 SE.
    rng = np.random.default_rng(5)
    times = np.cumsum(rng.exponential(0.5, 40_000))
    for ttl in (0.2, 1.0, 5.0):
        miss = ttl_misses(times, np.zeros(len(times), dtype=int), ttl)
        assert abs((1 - miss.mean()) - hit_ratio_one(2.0, ttl)) < 0.01


def test_added_latency_and_revocation_delay_match_the_closed_forms():
    # 6 replications of 120 s at 200 req/s (24,000 requests each); the mean added latency is
    # within 4 standard errors of (1 - h)·RTT (SE from the spread of the replications); the
    # revocation delay (40 revocations a run, 240 in all) never exceeds the TTL and its mean
    # is within 4 SE of the mean of hᵢ·ttl/2.
    p = ZipfKeys(200, 0.6).probabilities
    for ttl in (1.0, 10.0, 30.0):
        sc = Scenario(cache_ttl_s=ttl)
        runs = [summary(simulate(sc, np.random.default_rng(seed))) for seed in range(6)]
        added = np.array([r["mean_added_ms"] for r in runs]) / 1e3
        se = added.std(ddof=1) / np.sqrt(len(added))
        assert abs(added.mean() - added_latency(hit_ratio(200.0, p, ttl), sc.rtt_s)) < 4 * se
        delays = np.array([r["mean_revocation_s"] for r in runs])
        se_delay = delays.std(ddof=1) / np.sqrt(len(delays))
        assert abs(delays.mean() - mean_revocation_delay(sc)) < 4 * se_delay
        assert max(r["max_revocation_s"] for r in runs) <= ttl


def test_local_and_denylist_revocation_delays():
    # 400 revocations at uniform times: the delay to exp is uniform on (0, L) (+ leeway), so
    # its mean has SE L/√(12·400) ≈ 0.0144·L; 4 SE is about 0.06·L. Denylist likewise: the
    # time to the next pull is uniform on (0, P) because the 120 s window is 6 whole periods.
    sc = Scenario(mode="local", n_tokens=400, revocations=400, token_lifetime_s=120.0,
                  leeway_s=10.0, duration_s=120.0, request_rate=20.0)
    run = simulate(sc)
    assert run.revocation_delay.max() <= 130.0 and run.revocation_delay.min() >= 10.0
    assert abs(run.revocation_delay.mean() - mean_revocation_delay(sc)) < 0.06 * 120
    dl = replace(sc, mode="denylist", leeway_s=0.0, denylist_poll_s=20.0)
    delays = simulate(dl).revocation_delay
    assert delays.max() <= 20.0
    assert abs(delays.mean() - mean_revocation_delay(dl)) < 0.06 * 20


def test_issuer_load_adds_calls_refreshes_and_polls():
    sc = Scenario(mode="denylist", token_lifetime_s=60.0, denylist_poll_s=5.0)
    s = summary(simulate(sc))
    # 200 tokens / 60 s = 3.33 refreshes/s (about 800 in 120 s, SE ~ 0) plus 1/5 poll/s
    assert s["introspection_qps"] == 0 and abs(s["auth_qps"] - (200 / 60 + 0.2)) < 0.15
    none = summary(simulate(Scenario(cache_ttl_s=0.0)))
    assert abs(none["introspection_qps"] - 200) < 4 * np.sqrt(200 / 120)


def test_an_issuer_outage_stops_uncached_introspection_but_not_local_validation():
    outage = (20.0, 35.0)
    base = Scenario(duration_s=60.0, outage=outage, token_lifetime_s=300.0)
    during = {}
    for name, sc in {"uncached": replace(base, cache_ttl_s=0.0),
                     "cached": replace(base, cache_ttl_s=30.0),
                     "local": replace(base, mode="local")}.items():
        run = replay(sc)
        sel = (run.arrival >= outage[0]) & (run.arrival < outage[1]) & ~run.revoked_token
        during[name] = run.accepted[sel].mean()
    assert during["uncached"] == 0.0
    assert 0.5 < during["cached"] < 1.0 and during["local"] > 0.9
    with pytest.raises(ValueError, match="replay"):
        simulate(base)


def test_measure_seconds_times_a_call():
    assert study.measure_seconds(lambda: time.sleep(0), repeats=5, rounds=2) >= 0


def test_the_verified_token_cache_checks_each_token_once_and_honours_exp(auth):
    cache = VerifiedTokenCache(validator(auth), max_entries=2)
    token = auth.issue("j", "api", 60)
    for _ in range(3):
        assert cache.validate(token)["sub"] == "j"
    assert (cache.misses, cache.hits) == (1, 2)
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    auth.now[0] = exp
    try:
        with pytest.raises(jwt.ExpiredSignatureError):
            cache.validate(token)
    finally:
        auth.now[0] = T0
    for sub in ("k", "l", "m"):
        cache.validate(auth.issue(sub, "api", 60))
    assert len(cache._claims) == 2
    with pytest.raises(jwt.InvalidAudienceError):
        cache.validate(auth.issue("n", "other", 60))


def test_added_latency_scales_with_the_rtt_on_the_same_seed():
    # the slider figure simulates once per TTL at RTT 1 ms and scales: that must be exact
    one = summary(simulate(Scenario(rtt_s=0.001, duration_s=30.0)))
    five = summary(simulate(Scenario(rtt_s=0.005, duration_s=30.0)))
    assert five["mean_added_ms"] == pytest.approx(5 * one["mean_added_ms"], rel=1e-9)
    assert five["mean_revocation_s"] == one["mean_revocation_s"]
