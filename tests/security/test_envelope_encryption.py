"""Tests of the Envelope Encryption pattern (patterns.security.envelope_encryption) and its study
(simulations.security.envelope_encryption): real AES-GCM behaviour, the cache's limits, error
messages, the production class, and the closed forms against the simulation."""

from __future__ import annotations

import math
import threading
from dataclasses import replace

import numpy as np
import pytest
from cryptography.exceptions import InvalidTag

from patterns.security.envelope_encryption import (
    NONCE_BYTES,
    CachedKey,
    ContextKeyCache,
    DataKeyCache,
    EnvelopeConfig,
    EnvelopeEncryptor,
    KeyService,
    KeyServiceUnavailable,
    ProductionEnvelopeEncryptor,
)
from simulations.security import envelope_encryption as study


def clock_at(t=0.0):
    now = [t]
    return now, (lambda: now[0])


def test_the_study_uses_the_pattern_class():
    assert study.DataKeyCache is DataKeyCache and study.EnvelopeEncryptor is EnvelopeEncryptor


def test_round_trip_and_one_key_service_call_per_key():
    ks = KeyService()
    now, clock = clock_at()
    enc = EnvelopeEncryptor(ks, max_messages=3, max_age_s=10, clock=clock)
    envelopes = [enc.encrypt(f"m{i}".encode(), b"ctx") for i in range(7)]
    assert ks.calls == 3  # keys for messages 1-3, 4-6, 7
    assert len({e.wrapped_key for e in envelopes}) == 3
    assert len({e.nonce for e in envelopes}) == 7 and all(len(e.nonce) == NONCE_BYTES
                                                          for e in envelopes)
    assert [enc.decrypt(e, b"ctx") for e in envelopes] == [f"m{i}".encode() for i in range(7)]


def test_age_limit_boundary_is_expired():
    now, clock = clock_at()
    cache = DataKeyCache(max_messages=100, max_age_s=5.0, clock=clock)
    assert cache.take() is None
    cache.put(CachedKey(b"k", b"w", 0.0))
    now[0] = 4.999
    assert cache.take() is not None
    now[0] = 5.0
    assert cache.take() is None and cache.current is None


def test_pitfalls_fail_safely():
    ks = KeyService()
    enc = EnvelopeEncryptor(ks)
    env = enc.encrypt(b"pay 10 EUR", b"order-1")
    tampered = replace(env, ciphertext=bytes([env.ciphertext[0] ^ 1]) + env.ciphertext[1:])
    with pytest.raises(InvalidTag):
        enc.decrypt(tampered, b"order-1")
    with pytest.raises(InvalidTag):
        enc.decrypt(env, b"order-2")
    other = EnvelopeEncryptor(KeyService())  # another master key: cannot unwrap
    with pytest.raises(InvalidTag):
        other.decrypt(env, b"order-1")


def test_errors_name_the_field():
    with pytest.raises(ValueError, match=r"EnvelopeConfig.max_age_s must be > 0 \(got -1\)"):
        EnvelopeConfig(max_age_s=-1)
    with pytest.raises(ValueError, match=r"EnvelopeConfig.max_messages must be an integer >= 1"):
        EnvelopeConfig(max_messages=0)
    with pytest.raises(ValueError, match=r"max_messages must be an integer >= 1 \(got 2.5\)"):
        DataKeyCache(2.5, 1.0)
    with pytest.raises(ValueError, match=r"Scenario.clients must be an integer >= 1"):
        study.Scenario(clients=0)


def test_production_fails_closed_and_counts():
    ks = KeyService()
    now, clock = clock_at()
    enc = ProductionEnvelopeEncryptor("t", ks, EnvelopeConfig(max_messages=5, max_age_s=10),
                                      clock=clock)
    envs = [enc.encrypt(b"x") for _ in range(3)]
    ks.available = False
    envs += [enc.encrypt(b"x") for _ in range(2)]  # the cached key still has room
    with pytest.raises(KeyServiceUnavailable):
        enc.encrypt(b"x")  # the key is used up: never stretched past its limit
    ks.available = True
    now[0] = 11.0
    envs.append(enc.encrypt(b"x"))
    assert all(enc.decrypt(e) == b"x" for e in envs)
    c = enc.metrics.counts
    assert c["encrypt"] == 6 and c["key_miss"] == 2 and c["key_service_error"] == 1
    assert c["unwrap_miss"] == 2 and c["unwrap_hit"] == 4  # one unwrap per data key
    assert ks.calls == 2 + 2


def test_production_threads_use_each_key_at_most_max_messages_times():
    ks = KeyService()
    enc = ProductionEnvelopeEncryptor("t", ks, EnvelopeConfig(max_messages=7, max_age_s=60))
    out: list = []

    def work():
        for _ in range(50):
            out.append(enc.encrypt(b"payload"))

    threads = [threading.Thread(target=work, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)
    counts: dict = {}
    for e in out:
        counts[e.wrapped_key] = counts.get(e.wrapped_key, 0) + 1
    assert len(out) == 200 and max(counts.values()) <= 7
    assert ks.calls == len(counts) >= math.ceil(200 / 7)


def test_context_cache_on_bounded_ttl_cache():
    ks = KeyService()
    now, clock = clock_at()
    cache = ContextKeyCache(ks, capacity=2, max_messages=3, max_age_s=5.0, clock=clock)
    env = cache.encrypt("tenant-a", b"a1")
    cache.encrypt("tenant-a", b"a2")
    cache.encrypt("tenant-b", b"b1")
    cache.encrypt("tenant-c", b"c1")  # evicts tenant-a's key (LRU, capacity 2)
    assert len(cache) == 2 and ks.calls == 3
    cache.encrypt("tenant-a", b"a3")
    assert ks.calls == 4
    now[0] = 5.0
    cache.encrypt("tenant-a", b"a4")  # expired by the TTL = max age
    assert ks.calls == 5
    assert cache.decrypt("tenant-a", env) == b"a1"
    with pytest.raises(InvalidTag):
        cache.decrypt("tenant-b", env)


def test_simulation_is_deterministic_and_respects_the_limits():
    sc = study.Scenario(duration_s=5.0, max_messages=50, max_age_s=0.3)
    a, b = study.simulate(sc), study.simulate(sc)
    assert np.array_equal(a.key, b.key) and np.array_equal(a.latency, b.latency)
    assert a.key_messages.max() <= 50
    # every message was sealed before its key's age limit
    assert np.all(a.arrival - a.key_start[a.key] < 0.3)
    # common random numbers: the same arrivals whatever the limits
    c = study.simulate(replace(sc, max_messages=5))
    assert np.array_equal(a.arrival, c.arrival)


def test_closed_form_limits():
    assert study.messages_per_key(100.0, 50, math.inf) == 50
    assert study.messages_per_key(100.0, study.NO_LIMIT, 2.0) == pytest.approx(201)
    assert study.key_service_qps(1000, 4, 100, math.inf) == pytest.approx(10)
    assert study.key_service_qps(1000, 4, study.NO_LIMIT, 1.0) == pytest.approx(4 / 1.004)


@pytest.mark.parametrize("m,age", [(10, 60.0), (200, 0.5), (1000, 0.3), (50, 0.2)])
def test_key_service_qps_matches_the_closed_form(m, age):
    # 5 replications of 20 s (first 2 s dropped) at λ = 1000/s, 4 clients. The key count in
    # a run is close to Poisson-like with variance at most its mean, so the relative standard
    # error of the mean over 5 runs is at most 1/sqrt(5 · 18 s · qps) ≤ 4 % for qps ≥ 7/s;
    # with the renewal edge effect (≤ 4 clients' partial keys per run) a 6 % band is ~1.5 σ
    # at worst and far wider in practice (observed gaps < 1 %).
    rows = study.theory_rows([m], [age], replications=5, seed=3)
    row = rows[0]
    assert row["key_qps"] == pytest.approx(row["theory_qps"], rel=0.06)
    assert row["mean_messages_per_key"] == pytest.approx(row["theory_messages"], rel=0.03)


def test_no_caching_overloads_the_key_service_and_caching_does_not():
    base = study.Scenario(duration_s=5.0)
    none = study.summary(study.simulate(replace(base, max_messages=1)), 1.0)
    cached = study.summary(study.simulate(replace(base, max_messages=100)), 1.0)
    assert none["p99_latency_s"] > 0.5 and cached["p99_latency_s"] < 0.02


def test_a_key_service_slowdown_hurts_small_m_and_drains_afterwards():
    base = study.Scenario(slowdown=(8.0, 12.0, 10.0))
    small = study.simulate(replace(base, max_messages=10))
    large = study.simulate(replace(base, max_messages=100))
    assert study.summary(small, 8.0, 12.0)["p99_latency_s"] > 1.0  # 100 calls/s > 25/s
    assert study.summary(large, 8.0, 12.0)["p99_latency_s"] < 0.1  # 10 calls/s < 25/s
    assert study.summary(small, 16.0, 20.0)["p99_latency_s"] < 0.05  # the backlog drained


def test_the_study_rule_agrees_with_the_real_encryptor():
    # The study's assign_keys and the real EnvelopeEncryptor (real AES-GCM, hand-moved clock)
    # change keys at exactly the same messages on the same arrival times.
    run = study.simulate(study.Scenario(clients=1, duration_s=1.0, max_messages=40,
                                        max_age_s=0.03))
    keys, starts = study.assign_keys(run.arrival, run.client, 1, 40, 0.03)
    now, clock = clock_at()
    ks = KeyService()
    enc = EnvelopeEncryptor(ks, max_messages=40, max_age_s=0.03, clock=clock)
    wrapped = []
    for t in run.arrival:
        now[0] = float(t)
        wrapped.append(enc.encrypt(b"m").wrapped_key)
    changes = [a != b for a, b in zip(wrapped, wrapped[1:], strict=False)]
    assert ks.calls == len(starts)
    assert changes == list(np.diff(keys) != 0)
