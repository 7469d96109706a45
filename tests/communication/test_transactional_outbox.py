"""Tests of the Transactional Outbox pattern (patterns.communication.transactional_outbox) and
its study (simulations.communication.transactional_outbox): behaviour, error messages, theory vs
simulation, and a real SQLite relay."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import numpy as np
import pytest

from patterns.communication.transactional_outbox import (
    DualWriter,
    IdempotentConsumer,
    OutboxConfig,
    ProductionOutboxRelay,
    RelayCrash,
    TransactionalOutbox,
    insert_order,
)
from patterns.resilience.retry_backoff_jitter import ProductionRetrier, RetryConfig
from simulations.communication import transactional_outbox as study


def test_the_study_uses_the_pattern_class():
    assert study.TransactionalOutbox is TransactionalOutbox


def make(tmp_path, cls=TransactionalOutbox, **kw):
    sent = []
    db = sqlite3.connect(tmp_path / "shop.db")
    return cls(db, sent.append, **kw), sent, db


def place(outbox, k):
    return outbox.record(insert_order(f"o{k}", 1.0), "Order", f"o{k}", "OrderPlaced", {"k": k})


def test_change_and_event_commit_together_or_not_at_all(tmp_path):
    outbox, sent, db = make(tmp_path)
    place(outbox, 1)

    def failing(db):
        db.execute("INSERT INTO orders VALUES ('o2', 1.0)")
        raise ValueError("validation failed")

    with pytest.raises(ValueError):
        outbox.record(failing, "Order", "o2", "OrderPlaced", {})
    assert db.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 1
    assert outbox.pending() == 1


def test_relay_publishes_in_order_and_marks(tmp_path):
    outbox, sent, db = make(tmp_path)
    ids = [place(outbox, k) for k in range(5)]
    assert outbox.relay_once(3) == 3 and outbox.relay_once(3) == 2 and outbox.relay_once(3) == 0
    assert [e.id for e in sent] == ids
    assert sent[0].aggregatetype == "Order" and sent[0].payload == {"k": 0}


def test_crash_before_mark_gives_duplicates_and_loses_nothing(tmp_path):
    outbox, sent, db = make(tmp_path)
    ids = [place(outbox, k) for k in range(10)]

    def crash(batch):
        raise RelayCrash("killed")

    outbox.relay_once(4)
    with pytest.raises(RelayCrash):
        outbox.relay_once(4, before_mark=crash)
    while outbox.relay_once(4):
        pass
    assert len(sent) == 14 and {e.id for e in sent} == set(ids)
    consumer = IdempotentConsumer()
    applied = [consumer.handle(e) for e in sent]
    assert consumer.applied == 10 and consumer.duplicates == 4 and applied.count(False) == 4


def test_dual_write_loses_or_invents_events(tmp_path):
    for order, lost in (("db-first", True), ("publish-first", False)):
        sent = []
        db = sqlite3.connect(tmp_path / f"{order}.db")
        writer = DualWriter(db, sent.append, order)
        with pytest.raises(RelayCrash):
            writer.place_order("o1", 5.0, crash_between=True)
        rows = db.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
        assert (rows, len(sent)) == ((1, 0) if lost else (0, 1))
    with pytest.raises(ValueError, match="DualWriter.order must be one of"):
        DualWriter(sqlite3.connect(":memory:"), print, "both")


def test_config_errors_name_the_field():
    with pytest.raises(ValueError,
                       match=r"OutboxConfig.batch_size must be an integer >= 1 \(got 0\)"):
        OutboxConfig(batch_size=0)
    with pytest.raises(ValueError, match=r"OutboxConfig.poll_interval_s must be > 0 \(got -1\)"):
        OutboxConfig(poll_interval_s=-1)
    with pytest.raises(ValueError, match="Scenario.mode must be one of"):
        study.Scenario(mode="push")


def test_production_relay_keeps_the_rest_after_a_failed_publish(tmp_path):
    calls = []

    def flaky(event):
        calls.append(event.id)
        if len(calls) == 3:
            raise ConnectionError("broker down")

    db = sqlite3.connect(tmp_path / "p.db")
    relay = ProductionOutboxRelay(db, flaky, OutboxConfig(batch_size=5))
    for k in range(5):
        place(relay, k)
    assert relay.relay_once() == 2 and relay.pending() == 3
    assert relay.drain() == 3 and relay.pending() == 0
    c = relay.metrics.counts
    assert c["recorded"] == 5 and c["published"] == 5 and c["publish_errors"] == 1
    assert c["marked"] == 5


def test_production_relay_with_retries_publishes_the_whole_batch(tmp_path):
    calls = []

    def flaky(event):
        calls.append(event.id)
        if len(calls) % 3 == 0:
            raise ConnectionError("broker busy")

    db = sqlite3.connect(tmp_path / "r.db")
    retrier = ProductionRetrier("publish", RetryConfig(max_attempts=3, base_s=0.0,
                                                       budget_ratio=None), sleep=lambda s: None)
    relay = ProductionOutboxRelay(db, flaky, OutboxConfig(batch_size=10), retrier=retrier)
    for k in range(10):
        place(relay, k)
    assert relay.relay_once() == 10 and relay.metrics.counts["publish_errors"] == 0
    assert retrier.metrics.counts["retries"] > 0


# --- theory against simulation --------------------------------------------------------------


def test_mean_lag_matches_t_over_2_plus_query_time():
    # 5 replications × 200 s at λ = 100/s: ~10⁵ lags per setting; the lag of one event has an SD
    # of about T/√12 + q₁·√(λT) ≤ 0.3·T, and lags within one poll are shared (about λT of them),
    # so the SE of the mean is ≈ 0.3·T/√(polls) ≤ 0.3·T/√(5·200/T); 5 % of the mean is > 4 SE.
    for T in (0.1, 0.3, 0.5):
        lags = [study.summary(study.simulate(study.Scenario(poll_interval_s=T, duration_s=200,
                                                           seed=s)), 10)["mean_lag_s"]
                for s in range(1, 6)]
        theory = study.mean_lag(100.0, T, 0.002, 0.0002)
        assert abs(np.mean(lags) - theory) / theory < 0.05


def test_poll_rate_is_one_over_t():
    # The polls are a fixed grid when q < T: the count over 180 s is exact to one poll.
    for T in (0.05, 0.5, 2.0):
        s = study.summary(study.simulate(study.Scenario(poll_interval_s=T, duration_s=200)), 20)
        assert abs(s["polls_per_s"] - study.poll_rate(T)) <= 1 / 180 + 1e-9


def test_backlog_grows_at_lambda_minus_b_over_t():
    # Over 120 s the end backlog is (λ − B/T)·120 ± Poisson noise √(λ·120) ≈ 110 rows; 4 SD.
    for B, T in ((30, 0.5), (10, 0.2), (100, 2.0)):
        sc = study.Scenario(batch_size=B, poll_interval_s=T, duration_s=120)
        backlog = study.summary(study.simulate(sc))["backlog_end"]
        growth = study.backlog_growth(100.0, B, T, sc.query_s, sc.per_row_s)
        assert abs(backlog - growth * 120) < 4 * np.sqrt(100 * 120)
    assert study.backlog_growth(100.0, 100, 0.5) == 0.0


def test_optimisations_cut_lag():
    base = study.Scenario(poll_interval_s=1.0, duration_s=60)
    poll = study.summary(study.simulate(base), 6)
    notify = study.summary(study.simulate(replace(base, mode="notify")), 6)
    cdc = study.summary(study.simulate(replace(base, mode="cdc")), 6)
    assert notify["mean_lag_s"] < 0.05 * poll["mean_lag_s"]
    assert cdc["polls_per_s"] == 0 and cdc["mean_lag_s"] < 0.02
    burst = replace(base, poll_interval_s=0.5, outage=(20, 30), duration_s=60)
    plain = study.summary(study.simulate(burst), 30)
    drain = study.summary(study.simulate(replace(burst, mode="drain")), 30)
    assert drain["p99_lag_s"] < plain["p99_lag_s"]


def test_a_real_sqlite_relay_moves_every_event():
    measured = study.measure_relay(events=50, batch_size=20)
    assert measured["published"] == 50 and measured["empty_poll_s"] < measured["full_poll_s"]


def test_the_real_outbox_matches_the_model_event_for_event():
    # With q0 = q1 = 0 the model's delivery is the start of the poll that takes the event; the
    # real class, driven by the same commit and poll times, must publish each event then.
    for B in (100, 20):
        run = study.simulate(study.Scenario(duration_s=5.0, query_s=0.0, per_row_s=0.0,
                                            batch_size=B, seed=3))
        real = study.replay_real(run)
        assert len(real) == len(run.lag) and np.allclose(real, run.lag, atol=1e-9)
