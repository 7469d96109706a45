"""Tests of CQRS (patterns.architectural.cqrs) and its study (simulations.architectural.cqrs):
the store and the read-your-writes sessions, the SQLite projector and its restart from the
checkpoint, error messages, and the M/M/1 lag law against the simulation."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from patterns.architectural.cqrs import (
    CQRSStore,
    ProjectorConfig,
    Session,
    SQLiteCQRS,
    StaleReadError,
)
from simulations import theory
from simulations.architectural import cqrs as study
from simulations.architectural.cqrs import (
    Scenario,
    lag_quantile,
    lag_survival,
    mean_token_wait,
    simulate,
    summary,
)
from simulations.metrics import confidence_interval


def test_the_study_uses_the_pattern_classes():
    assert study.CQRSStore is CQRSStore and study.Session is Session


def test_the_view_lags_until_projected():
    now = [0.0]
    store = CQRSStore(clock=lambda: now[0])
    store.deposit("ann", 10)
    now[0] = 0.5
    store.deposit("ann", 5)
    assert store.read("ann") == 0 and store.lag() == 2 and store.staleness_s() == 0.5
    assert store.project(1) == 1 and store.read("ann") == 10 and store.checkpoint == 1
    assert store.project() == 1 and store.read("ann") == 15 and store.lag() == 0
    assert store.staleness_s() == 0.0 and store.balances == {"ann": 15}


def test_sessions_read_your_writes():
    now = [0.0]
    store = CQRSStore(clock=lambda: now[0])
    plain, window, token = (Session(store, s, window_s=1.0) for s in Session.STRATEGIES)
    plain.deposit("a", 1)
    assert plain.read("a") == 0  # the pitfall: the view has not caught up
    window.deposit("b", 2)
    assert window.read("b") == 2 and store.read("b") == 0  # answered by the write side
    now[0] = 2.0
    assert window.read("b") == 0  # window over, the view is still behind
    token.deposit("c", 3)
    assert token.read("c") == 3 and store.checkpoint == token.token  # waited for the version


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match=r"ProjectorConfig.batch_size must be an integer >= 1 "
                                         r"\(got 0\)"):
        ProjectorConfig(batch_size=0)
    with pytest.raises(ValueError, match=r"ProjectorConfig.poll_s must be > 0 \(got -1\)"):
        ProjectorConfig(poll_s=-1)
    with pytest.raises(ValueError, match="Session.strategy must be one of view, write_side, "
                                         "token"):
        Session(CQRSStore(), "eventual")
    with pytest.raises(ValueError, match=r"Scenario.partitions must be an integer >= 1"):
        Scenario(partitions=0)


def test_sqlite_projector_restarts_from_its_checkpoint(tmp_path):
    store = SQLiteCQRS(str(tmp_path), ProjectorConfig(batch_size=10))
    for i in range(35):
        store.deposit(f"k{i % 3}", 1.0)
    assert store.project() == 10
    store.fail_after = 4  # crash inside the second batch: the transaction rolls back
    with pytest.raises(RuntimeError, match="crashed at version 15"):
        store.project()
    assert store.checkpoint == 10
    store.close()
    again = SQLiteCQRS(str(tmp_path), ProjectorConfig(batch_size=10))
    assert again.checkpoint == 10  # resumed from read.db, not from zero
    while again.project():
        pass
    rows = again.view_rows()
    assert sum(n for _, n in rows.values()) == 35  # each event applied exactly once
    assert rows["k0"] == (12.0, 12) and again.write_side_balance("k0") == 12.0
    assert again.metrics.counts["projected"] == 25
    again.close()


def test_sqlite_token_read_waits_or_times_out(tmp_path):
    store = SQLiteCQRS(str(tmp_path), ProjectorConfig(wait_timeout_s=0.05))
    version = store.deposit("ann", 7.0)
    with pytest.raises(StaleReadError, match="view at version 0 < 1"):
        store.read("ann", min_version=version)
    store.start()
    assert store.read("ann", min_version=version) == 7.0
    threads = [threading.Thread(target=lambda: [store.deposit("bob", 1.0) for _ in range(50)])
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    last = store.version
    assert store.read("bob", min_version=last) == 150.0
    store.close()
    assert store.metrics.counts["writes"] == 151 and store.metrics.counts["stale_timeouts"] == 1


def test_batched_projector_rule():
    sc = Scenario(max_batch=3, setup_s=1.0, per_event_s=0.5)
    ends = study._batched_ends(np.array([0.0, 0.1, 0.2, 0.3, 0.4, 5.0]), sc)
    # {0} ends 1.5; {1,2,3} (max 3) ends 1.5 + 2.5 = 4; {4} ends 5.5; {5} starts 5.5, ends 7
    assert np.allclose(ends, [1.5, 4.0, 4.0, 4.0, 5.5, 7.0])


def test_lag_quantile_agrees_with_the_toolkit_mm1():
    for lam, mu in ((800.0, 1000.0), (300.0, 400.0)):
        assert math.isclose(lag_quantile(0.99, lam, mu), theory.mm1_response_percentile(
            lam, mu, 0.99), rel_tol=1e-12)
    assert lag_survival(0.1, 2000.0, 1000.0) == 1.0 and math.isinf(lag_quantile(0.5, 2, 1))


def test_lag_survival_matches_simulation():
    # 8 replications of 20 s at λ = 800, μ = 1000 (ρ = 0.8); lags within one run are correlated,
    # so the interval is taken across replications (t-interval, 95 %), and we require the closed
    # form inside 3 half-widths plus 0.003 absolute at every t.
    ts = (0.005, 0.01, 0.02)
    rows = []
    for seed in range(8):
        run = simulate(Scenario(duration_s=20.0), np.random.default_rng(seed))
        lags = run.lag[run.written >= 2.0]
        rows.append([np.mean(lags > t) for t in ts])
    rows = np.array(rows)
    for j, t in enumerate(ts):
        mean, half = confidence_interval(rows[:, j])
        assert abs(mean - lag_survival(t, 800.0, 1000.0)) < 3 * half + 0.003, (t, mean, half)


def test_partitions_and_token_wait_match_theory():
    # k = 3 projectors at λ = 1800: each an M/M/1 at 600/1000; 5 runs of 20 s, same rule.
    p99, wait = [], []
    for seed in range(5):
        s = summary(simulate(Scenario(write_rate=1800.0, partitions=3, read_delay_s=0.002),
                             np.random.default_rng(seed)))
        p99.append(s["p99_lag_s"])
        wait.append(s["mean_token_wait_s"])
    for values, expected in ((p99, lag_quantile(0.99, 1800.0, 1000.0, 3)),
                             (wait, mean_token_wait(0.002, 1800.0, 1000.0, 3))):
        mean, half = confidence_interval(values)
        assert abs(mean - expected) < 3 * half + 0.05 * expected, (mean, half, expected)


def test_common_random_numbers_and_summary_fields():
    a = simulate(Scenario(write_rate=500.0))
    b = simulate(Scenario(write_rate=500.0, read_delay_s=0.5))
    assert np.array_equal(a.written, b.written) and np.array_equal(a.applied, b.applied)
    s = summary(a)
    assert s["stale_write_side"] == 0.0 and s["write_side_share"] == 1.0
    late = summary(b)
    assert late["write_side_share"] == 0.0 and late["stale_view"] < 1e-3
