"""Tests of the secrets-rotation pattern (patterns.security.secrets_rotation) and its study
(simulations.security.secrets_rotation): behaviour, error messages, theory vs simulation."""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from dataclasses import replace

import numpy as np
import pytest

from patterns.security.secrets_rotation import (
    KeyRing,
    ProductionKeyRing,
    Refresher,
    RotationConfig,
    sign,
)
from simulations.security import secrets_rotation as study


def ring(ttl_s=100.0, keep=2):
    now = [0.0]
    return KeyRing(ttl_s, keep, clock=lambda: now[0]), now


def test_the_study_uses_the_pattern_classes():
    assert study.KeyRing is KeyRing and study.Refresher is Refresher


def test_rotate_gives_fresh_versioned_keys_and_keeps_current_and_previous():
    r, now = ring()
    first = r.rotate()
    now[0] = 10.0
    second = r.rotate()
    assert (first.kid, second.kid) == ("v1", "v2") and len(second.key) == 32
    assert first.key != second.key and second.expires_at == 110.0
    assert r.current() is second and list(r.versions) == ["v1", "v2"]
    r.rotate()
    assert list(r.versions) == ["v2", "v3"]


def test_verify_accepts_kept_versions_and_refuses_safely():
    r, now = ring(ttl_s=100.0, keep=2)
    old = r.rotate()
    msg = b"transfer 10"
    kid, tag = sign(old, msg)
    assert tag == hmac.new(old.key, msg, hashlib.sha256).digest()
    r.rotate()
    assert r.verify(kid, msg, tag)  # the previous version still works (overlap)
    assert r.refusal(kid, b"transfer 1000", tag) == "bad signature"  # a forged message
    assert r.refusal("v9", msg, tag) == "unknown kid"
    now[0] = 100.0
    assert r.refusal(kid, msg, tag) == "expired"
    r.rotate()
    assert r.refusal(kid, msg, tag) == "unknown kid"  # dropped beyond keep


def test_no_overlap_refuses_the_old_version_at_once():
    r, _ = ring(keep=1)
    old = r.rotate()
    r.rotate()
    kid, tag = sign(old, b"m")
    assert not r.verify(kid, b"m", tag) and r.refusal(kid, b"m", tag) == "unknown kid"


def test_refresher_schedule():
    f = Refresher(0.5, 0.4)
    assert f.delay(600.0, 0.0) == 300.0 and f.delay(600.0, 1.0) == pytest.approx(180.0)
    r, _ = ring(ttl_s=600.0)
    assert f.due_at(r.rotate(), 0.5) == pytest.approx(240.0)


def test_errors_name_the_field_and_value():
    with pytest.raises(ValueError, match=r"RotationConfig.ttl_s must be > 0 \(got -1\)"):
        RotationConfig(ttl_s=-1)
    with pytest.raises(ValueError, match="rotate_every_s must be <= ttl_s"):
        RotationConfig(ttl_s=10, rotate_every_s=20)
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]"):
        Refresher(0.0)
    with pytest.raises(ValueError, match="Scenario.jitter"):
        study.Scenario(jitter=0.95)


def test_production_ring_rotates_on_schedule_counts_and_revokes(caplog):
    now = [0.0]
    ring_ = ProductionKeyRing("api", RotationConfig(ttl_s=100, rotate_every_s=50),
                              clock=lambda: now[0])
    old = ring_.current()
    now[0] = 49.0
    assert not ring_.tick()
    now[0] = 50.0
    with caplog.at_level(logging.INFO, logger="patterns.security.secrets_rotation"):
        assert ring_.tick()
    assert "rotated to v2" in caplog.text
    kid, tag = sign(old, b"m")
    assert ring_.verify(kid, b"m", tag)
    assert not ring_.revoke(ring_.current().kid) and ring_.revoke(old.kid)
    assert not ring_.verify(kid, b"m", tag)
    c = ring_.metrics.counts
    assert (c["rotations"], c["accepted"], c["refused_unknown_kid"], c["revocations"]) == \
        (2, 1, 1, 1)


def test_production_ring_is_thread_safe():
    ring_ = ProductionKeyRing("t", RotationConfig(ttl_s=1e6, rotate_every_s=1e6))
    results = []

    def worker():
        for _ in range(200):
            kid, tag = sign(ring_.current(), b"x")
            results.append(ring_.verify(kid, b"x", tag))

    def rotator():
        for _ in range(50):
            ring_.rotate()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(3)]
    threads.append(threading.Thread(target=rotator, daemon=True))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads)
    c = ring_.metrics.counts
    assert len(results) == 600 and c["accepted"] + c["refused_unknown_kid"] == 600
    assert c["rotations"] == 51


def test_shared_key_switch_no_overlap_refuses_overlap_does_not():
    no, yes = study.shared_key_switch(1), study.shared_key_switch(2)
    assert no["unknown kid"] > 0 and yes["unknown kid"] == 0
    assert sum(no.values()) == sum(yes.values()) == 6 * 1200


def test_simulation_is_deterministic_and_uses_common_random_numbers():
    a = study.simulate(study.Scenario(duration_s=1200.0))
    b = study.simulate(study.Scenario(duration_s=1200.0))
    assert np.array_equal(a.cred_issued, b.cred_issued)
    c = study.simulate(study.Scenario(duration_s=1200.0, fraction=0.8))
    assert np.array_equal(a.leak_at, c.leak_at)  # same leaks, whatever the schedule


# Theory vs simulation. Exposure: 4000 leaks per run, exposure in [0, TTL] so its sd is at most
# TTL/2 (about TTL/sqrt(12) ≈ 0.29·TTL for a uniform age); 4 standard errors of a mean over
# 4000 leaks is 4·0.29·TTL/sqrt(4000) ≈ 0.018·TTL, so we allow 0.03·TTL (leaks are also
# correlated through shared cycles). Issuer rate: over ≥ 2 TTLs every client renews a whole
# number of times ± 1, so the rate is within clients/span of the closed form: we allow 3 %.
@pytest.mark.parametrize("ttl, fraction, jitter", [
    (600.0, 1.0, 0.0), (600.0, 0.5, 0.0), (300.0, 0.5, 0.5), (900.0, 0.8, 0.3)])
def test_mean_exposure_and_issuer_rate_match_the_closed_forms(ttl, fraction, jitter):
    sc = study.Scenario(ttl_s=ttl, fraction=fraction, jitter=jitter, start_spread_s=ttl,
                        duration_s=5 * ttl, request_rate=0.0)
    s = study.summary(study.simulate(sc))
    theory = study.mean_exposure(ttl, fraction, jitter, sc.issue_s)
    assert abs(s["mean_exposure_s"] - theory) < 0.03 * ttl
    assert s["max_exposure_s"] <= ttl
    rate = study.issuer_rate(sc.clients, ttl, fraction, jitter, sc.issue_s)
    assert s["issuer_qps"] == pytest.approx(rate, rel=0.03)


def test_closed_forms_reduce_to_the_rules_of_thumb():
    assert study.mean_exposure(600.0) == 300.0  # TTL/2
    assert study.issuer_rate(1200, 600.0) == 2.0  # clients/TTL
    assert study.mean_exposure(600.0, 0.5) == 450.0


def test_overlap_survives_an_outage_shorter_than_it_and_renew_at_expiry_does_not():
    base = study.Scenario(outage=(1500.0, 1620.0))
    assert study.summary(study.simulate(base))["refused_requests"] == 0
    assert study.summary(study.simulate(replace(base, fraction=1.0)))["refused_requests"] > 0


def test_jitter_flattens_lockstep_spikes():
    lock = study.summary(study.simulate(study.Scenario(start_spread_s=0.0)))
    jit = study.summary(study.simulate(study.Scenario(start_spread_s=0.0, jitter=0.5)))
    assert lock["peak_issuer_qps"] >= 40 and jit["peak_issuer_qps"] < 0.3 * lock["peak_issuer_qps"]


def test_backoff_cuts_issuer_calls_during_an_outage():
    sc = study.Scenario(outage=(1500.0, 1900.0))
    fixed = study.summary(study.simulate(replace(sc, retry_cap_s=1.0, retry_jitter="none")))
    backed = study.summary(study.simulate(sc))
    assert backed["issuer_calls_qps"] < 0.2 * fixed["issuer_calls_qps"]


def test_dashboard_series_and_plots_run():
    import matplotlib

    matplotlib.use("Agg")
    run = study.simulate(study.Scenario(duration_s=1200.0, outage=(700.0, 800.0)))
    series = study.over_time(run, 20.0)
    assert series["valid_clients"][1].max() == run.scenario.clients
    axes = study.plot_dashboard({"a": run}, 20.0, (700.0, 800.0))
    assert len(axes) == 4
    study.draw_tradeoff(ttl_s=120.0)
    rows = study.sweep({"ttl_s": [120.0, 240.0], "fraction": [0.5, 1.0]}, replications=2,
                       duration_s=960.0, clients=50)
    assert len(study.plot_sweep(rows)) == 3


def test_sign_agrees_with_pyjwt_hs256_and_kid_lookup():
    import base64

    import jwt

    r, now = ring(ttl_s=600.0)
    old = r.rotate()
    token = jwt.encode({"sub": "svc"}, old.key, algorithm="HS256", headers={"kid": old.kid})
    signing_input, _, signature = token.rpartition(".")
    theirs = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    assert sign(old, signing_input.encode())[1] == theirs
    assert jwt.get_unverified_header(token)["kid"] == "v1"
    assert r.verify("v1", signing_input.encode(), theirs)
    r.rotate()
    r.rotate()
    assert not r.verify("v1", signing_input.encode(), theirs)  # dropped: refused like PyJWT
    with pytest.raises(jwt.InvalidSignatureError):  # would refuse it under the current key
        jwt.decode(token, r.current().key, algorithms=["HS256"])
