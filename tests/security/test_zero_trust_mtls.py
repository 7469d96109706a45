"""Tests of the zero-trust mTLS pattern (patterns.security.zero_trust_mtls) and its study
(simulations.security.zero_trust_mtls): behaviour, error messages, real TLS 1.3 with mutual
authentication on localhost, theory vs simulation."""

from __future__ import annotations

import socket
import ssl
from dataclasses import replace

import numpy as np
import pytest
import trustme

from patterns.security.zero_trust_mtls import (
    IdentityPolicy,
    MtlsEchoServer,
    MtlsPool,
    NotAuthorized,
    PoolConfig,
    ProductionMtlsPool,
    client_context,
    peer_identities,
    server_context,
    tls_connector,
)
from simulations.security import zero_trust_mtls as study
from simulations.security.zero_trust_mtls import (
    Scenario,
    formula_latency,
    mean_latency,
    pool_reuse_ratio,
    simulate,
    summary,
)


def test_the_study_uses_the_pattern_class():
    assert study.MtlsPool is MtlsPool


class FakeConnect:
    def __init__(self):
        self.calls = []

    def __call__(self, peer, ticket):
        self.calls.append((peer, ticket))
        return object(), f"ticket-{len(self.calls)}", ticket is not None


def test_pool_reuses_then_resumes_then_does_a_full_handshake():
    now, connect = [0.0], FakeConnect()
    pool = MtlsPool(connect, max_age_s=10.0, ticket_lifetime_s=25.0, clock=lambda: now[0])
    kinds = []
    for t in (0.0, 5.0, 9.9, 10.0, 19.0, 21.0, 60.0):
        now[0] = t
        kinds.append(pool.acquire("orders")[1])
    # 10.0: the connection is 10 s old -> replaced, ticket (0 s) fresh -> resumed;
    # 21.0: connection from 10.0 is 11 s old, ticket from 10.0 is 11 s old -> resumed;
    # 60.0: ticket from 21.0 is 39 s old > 25 -> full
    assert kinds == ["full", "reused", "reused", "resumed", "reused", "resumed", "full"]
    assert pool.counts == {"full": 2, "reused": 3, "resumed": 2}
    assert pool.reuse_ratio == pytest.approx(3 / 7)


def test_flush_drops_connections_and_tickets():
    now, connect = [0.0], FakeConnect()
    pool = MtlsPool(connect, max_age_s=100.0, ticket_lifetime_s=100.0, clock=lambda: now[0])
    pool.acquire("a")
    pool.acquire("b")
    pool.flush()
    assert pool.connections == {} and pool.tickets == {}
    assert pool.acquire("a")[1] == "full"


def test_identity_policy_authorizes_by_name():
    policy = IdentityPolicy({"checkout.internal"})
    cert = {"subjectAltName": (("DNS", "checkout.internal"), ("IP Address", "10.0.0.1"))}
    assert policy.check(cert) == "checkout.internal"
    assert peer_identities(None) == []
    with pytest.raises(NotAuthorized, match="may not call"):
        policy.check({"subjectAltName": (("DNS", "batch.internal"),)})
    with pytest.raises(NotAuthorized, match="without a certificate"):
        policy.check(None)


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match=r"PoolConfig.max_age_s must be > 0 \(got -1\)"):
        PoolConfig(max_age_s=-1)
    with pytest.raises(ValueError, match=r"Scenario.q_reuse must be in \[0, 1\] \(got 1.5\)"):
        Scenario(q_reuse=1.5)
    with pytest.raises(ValueError, match=r"max_age_s must be > 0"):
        MtlsPool(FakeConnect(), max_age_s=0)


def test_production_pool_counts_and_wraps_handshake_errors():
    def refused(peer, ticket):
        raise ConnectionRefusedError("nobody listens")

    pool = ProductionMtlsPool("t", PoolConfig(max_age_s=1.0), FakeConnect(), clock=lambda: 0.0)
    pool.acquire("a")
    pool.acquire("a")
    assert pool.metrics.counts["full"] == 1 and pool.metrics.counts["reused"] == 1
    assert pool.metrics.observed("handshake_seconds") == 1
    broken = ProductionMtlsPool("b", PoolConfig(), refused)
    with pytest.raises(Exception, match="cannot connect to a") as info:
        broken.acquire("a")
    assert isinstance(info.value, ConnectionError)
    assert broken.metrics.counts["handshake_errors"] == 1


@pytest.fixture(scope="module")
def pki():
    ca = trustme.CA()
    return ca, ca.issue_cert("orders.internal"), ca.issue_cert("checkout.internal")


def test_real_mtls_reuse_resumption_and_rejections(pki):
    ca, server_cert, client_cert = pki
    server = MtlsEchoServer(server_context(ca, server_cert),
                            IdentityPolicy({"checkout.internal"}), timeout_s=2.0)
    try:
        good = client_context(ca, client_cert)
        assert good.minimum_version == ssl.TLSVersion.TLSv1_3
        pool = MtlsPool(tls_connector(server.port, good, "orders.internal"), max_age_s=60,
                        ticket_lifetime_s=60)
        conn, kind = pool.acquire("orders")
        assert kind == "full" and conn.version() == "TLSv1.3"
        assert pool.acquire("orders")[1] == "reused"
        pool.discard("orders")
        conn, kind = pool.acquire("orders")
        assert kind == "resumed" and conn.session_reused
        pool.flush()

        no_cert = tls_connector(server.port, client_context(ca), "orders.internal")
        with pytest.raises((ssl.SSLError, OSError)):
            no_cert("orders", None)
        other_ca = trustme.CA()
        foreign = tls_connector(server.port, client_context(ca, other_ca.issue_cert(
            "checkout.internal")), "orders.internal")
        with pytest.raises((ssl.SSLError, OSError)):
            foreign("orders", None)
        wrong_name = tls_connector(server.port, client_context(ca, ca.issue_cert(
            "batch.internal")), "orders.internal")
        with pytest.raises((ConnectionError, ssl.SSLError, OSError)):
            wrong_name("orders", None)
    finally:
        server.close()
    assert not server.alive
    kinds = [o[0] for o in server.outcomes]
    assert kinds.count("ok") == 2 and kinds.count("rejected") == 3
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=0.5).close()


def test_simulation_matches_the_closed_form():
    # 3 replications x 200 s at 100 req/s (≈ 20,000 requests, 4 hops): the standard error of
    # the mean latency is about 0.1 ms; 3 % (0.4-1 ms here) is several standard errors.
    # At q ≥ 0.5 the hops' utilisation stays ≤ 0.25, where the Poisson-at-every-hop
    # assumption of hop_wait holds well.
    for q in (0.5, 0.9, 1.0):
        sc = Scenario(q_reuse=q, duration_s=200.0)
        sims = [summary(simulate(sc, np.random.default_rng(k)), 20.0)["mean_latency_s"]
                for k in range(3)]
        assert np.mean(sims) == pytest.approx(mean_latency(sc), rel=0.03)
    # at low load queueing vanishes and the syllabus form alone holds (within 3 %)
    sc = Scenario(arrival_rate=10.0, q_reuse=0.3, depth=6, duration_s=500.0)
    sim = summary(simulate(sc), 50.0)["mean_latency_s"]
    assert sim == pytest.approx(formula_latency(sc), rel=0.03)


def test_tls12_costs_twice_the_round_trips_of_tls13():
    base = Scenario(q_reuse=0.0, handshake_cpu_s=0.0, arrival_rate=5.0)
    added13 = formula_latency(base) - formula_latency(replace(base, q_reuse=1.0))
    added12 = formula_latency(replace(base, handshake_rtts=2)) - formula_latency(
        replace(base, q_reuse=1.0))
    assert added12 == pytest.approx(2 * added13)
    assert added13 == pytest.approx(base.depth * base.rtt_s)


def test_pool_reuse_ratio_matches_pools_on_the_simulated_clock():
    # 120 s, 100 req/s over 50 pairs (2 calls/s per pair), 4 hops: ≈ 48,000 acquires; a
    # connection serves 1 + r·A calls (geometric-like counts), so q is known to about ±0.005.
    for age in (0.5, 2.0):
        sc = Scenario(pairs=50, max_age_s=age, duration_s=120.0)
        q = summary(simulate(sc), 12.0)["reuse_ratio"]
        assert q == pytest.approx(pool_reuse_ratio(100.0 / 50, age), abs=0.015)


def test_rotation_storm_and_jittered_drain():
    storm = Scenario(arrival_rate=300.0, pairs=100, max_age_s=1e9, rotation_at=10.0,
                     duration_s=20.0, seed=3)
    sudden = summary(simulate(storm), 10.0, 11.0)
    spread = summary(simulate(replace(storm, drain_s=4.0)), 10.0, 11.0)
    assert sudden["handshakes_per_s"] > 2 * spread["handshakes_per_s"]
    assert sudden["p99_latency_s"] > spread["p99_latency_s"]


def test_runs_are_deterministic_with_common_random_numbers():
    a, b = simulate(Scenario(q_reuse=0.5)), simulate(Scenario(q_reuse=0.5))
    assert np.array_equal(a.end, b.end)
    lo, hi = simulate(Scenario(q_reuse=0.2)), simulate(Scenario(q_reuse=0.9))
    assert np.array_equal(lo.arrival, hi.arrival)
    assert np.all(hi.kind <= 2) and np.mean(hi.latency) < np.mean(lo.latency)


def test_production_pool_is_thread_safe():
    import threading

    connect = FakeConnect()
    pool = ProductionMtlsPool("t", PoolConfig(max_age_s=1e6), connect, clock=lambda: 0.0)

    def caller(k):
        for i in range(200):
            pool.acquire(f"peer-{(k + i) % 5}")

    threads = [threading.Thread(target=caller, args=(k,), daemon=True) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads)
    counts = pool.metrics.counts
    # one handshake per peer, whatever the interleaving; every other call reused
    assert counts["full"] == 5 and counts["reused"] == 8 * 200 - 5
    assert len(connect.calls) == 5


def test_tls_is_available_on_this_machine():
    from patterns.security.zero_trust_mtls import tls_unavailable

    assert tls_unavailable() is None


def test_resumption_cannot_extend_a_tickets_life():
    # Tickets count from the full handshake their chain began with (RFC 8446 §4.6.1's limit):
    # resumed at 10 s and 20 s, full again at 30 s although the last ticket is 10 s old.
    now = [0.0]
    pool = MtlsPool(lambda peer, ticket: (object(), object(), ticket is not None), 10.0,
                    ticket_lifetime_s=30.0, clock=lambda: now[0])
    kinds = []
    for t in (0, 10, 20, 30, 40, 50, 60):
        now[0] = float(t)
        kinds.append(pool.acquire("orders")[1])
    assert kinds == ["full", "resumed", "resumed", "full", "resumed", "resumed", "full"]
