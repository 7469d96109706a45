"""Tests of the Saga pattern (patterns.communication.saga) and its study
(simulations.communication.saga): behaviour, error messages, a crashed orchestrator resumed
from its SQLite log, theory vs simulation, and the real class agreeing with the model."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import replace

import numpy as np
import pytest

from patterns.communication.saga import (
    COMMITTED,
    COMPENSATED,
    STUCK,
    OrchestratorCrash,
    ProductionSaga,
    Saga,
    SagaConfig,
    Shop,
    Step,
    StepFailed,
)
from patterns.resilience.retry_backoff_jitter import ProductionRetrier, RetryConfig
from simulations import theory
from simulations.communication import saga as study


def test_the_study_uses_the_pattern_class():
    assert study.Saga is Saga


def recorder(log, name, fail=False):
    def action(ctx):
        log.append(("do", name))
        if fail:
            raise StepFailed(name)
        return {name: True}

    return Step(name, action, lambda ctx: log.append(("undo", name)))


def test_compensations_run_newest_first_and_skip_the_failed_step():
    log = []
    result = Saga([recorder(log, "a"), recorder(log, "b"), recorder(log, "c", fail=True),
                   recorder(log, "d")]).run()
    assert result.status == COMPENSATED and result.failed_step == "c"
    assert log == [("do", "a"), ("do", "b"), ("do", "c"), ("undo", "b"), ("undo", "a")]
    assert result.completed == ["a", "b"] and result.compensated == ["b", "a"]
    ok = Saga([recorder([], "a"), recorder([], "b")]).run({"x": 1})
    assert ok.status == COMMITTED and ok.context == {"x": 1, "a": True, "b": True}


def test_a_failing_compensation_leaves_the_level2_saga_stuck():
    def bad_undo(ctx):
        raise ConnectionError("refund service down")

    steps = [Step("charge", lambda ctx: None, bad_undo),
             Step("ship", lambda ctx: (_ for _ in ()).throw(StepFailed("no stock")))]
    result = Saga(steps).run()
    assert result.status == STUCK and isinstance(result.error, ConnectionError)


def test_the_clock_is_injectable():
    now = [10.0]

    def slow(ctx):
        now[0] += 2.5

    result = Saga([Step("a", slow)], clock=lambda: now[0]).run()
    assert result.duration_s == 2.5


def test_errors_name_the_field():
    with pytest.raises(ValueError, match="Saga.steps must be one or more steps with distinct"):
        Saga([Step("a", print), Step("a", print)])
    with pytest.raises(ValueError, match=r"SagaConfig.compensation_attempts must be an integer "
                                         r">= 1 \(got 0\)"):
        SagaConfig(compensation_attempts=0)
    with pytest.raises(ValueError, match=r"SagaConfig.compensation_backoff_s must be >= 0 "
                                         r"\(got -1\)"):
        SagaConfig(compensation_backoff_s=-1)
    with pytest.raises(ValueError, match=r"Scenario.attempts must be an integer in \[1, 8\]"):
        study.Scenario(attempts=0)
    with pytest.raises(ValueError, match="Scenario.order must list each step index"):
        study.Scenario(order=(0, 1, 1, 2))
    with pytest.raises(ValueError, match="HotRow.protocol must be one of 2pc, saga"):
        study.HotRow("3pc")


def order(k, amount=10.0):
    return {"saga_id": f"o{k}", "item": "lamp", "qty": 1, "amount": amount}


def make_shop(tmp_path, name="shop.db", **kw):
    db = sqlite3.connect(tmp_path / name)
    shop = Shop(db, **kw)
    shop.add_stock("lamp", 100)
    return shop, db


def test_production_saga_commits_and_compensates_the_shop(tmp_path):
    shop, db = make_shop(tmp_path)
    saga = ProductionSaga(shop.steps(), db, sleep=lambda s: None)
    assert saga.run(order(1)).status == COMMITTED
    shop.faults["charge"] = ["decline"]
    result = saga.run(order(2))
    assert result.status == COMPENSATED and result.compensated == ["reserve", "create_order"]
    assert shop.stock_of("lamp") == 99 and shop.charged() == 10.0
    assert shop.orders_by_status() == {"CONFIRMED": 1, "CANCELLED": 1}
    assert saga.history("o2")[-3:] == [("create_order", "compensating"),
                                       ("create_order", "compensated"), ("saga", "compensated")]
    c = saga.metrics.counts
    assert (c["started"], c["committed"], c["compensated"], c["compensations"]) == (2, 1, 1, 2)


def test_compensations_are_retried_with_backoff(tmp_path):
    shop, db = make_shop(tmp_path)
    waits = []
    saga = ProductionSaga(shop.steps(), db, SagaConfig(compensation_attempts=4,
                                                       compensation_backoff_s=0.5),
                          sleep=waits.append)
    shop.faults.update(confirm=["decline"], refund=["fail", "lose_reply"])
    result = saga.run(order(1))
    assert result.status == COMPENSATED and waits == [0.5, 1.0]
    assert shop.charged() == 0.0 and shop.stock_of("lamp") == 100
    shop.faults.update(charge=["decline"], release=["fail"] * 4)
    assert saga.run(order(2)).status == STUCK and saga.status("o2") == STUCK


def test_a_crashed_orchestrator_resumes_from_the_log(tmp_path):
    shop, db = make_shop(tmp_path)
    crashed = {"o3": "charge", "o5": "reserve"}

    def crash(name, ctx):
        if crashed.get(ctx["saga_id"]) == name:
            raise OrchestratorCrash(f"killed after {name} of {ctx['saga_id']}")

    first = ProductionSaga(shop.steps(), db)
    shop.faults["confirm"] = [None] * 4 + ["decline"]  # the fifth confirm is refused
    for k in range(1, 7):
        try:
            first.run(order(k), after_action=crash)
        except OrchestratorCrash:
            continue
    assert first.unfinished() == ["o3", "o5"]
    db.close()
    db2 = sqlite3.connect(tmp_path / "shop.db")
    shop2 = Shop(db2)
    shop2.faults["confirm"] = list(shop.faults.get("confirm", []))
    second = ProductionSaga(shop2.steps(), db2)
    results = {r.context["saga_id"]: r.status for r in second.resume_all()}
    assert results == {"o3": COMPENSATED, "o5": COMMITTED} and second.unfinished() == []
    # o3's charge ran twice (before the crash and on resume) but was taken once: idempotent
    assert db2.execute("SELECT COUNT(*) FROM payments WHERE order_id = 'o3'").fetchone()[0] == 1
    statuses = dict(db2.execute("SELECT id, status FROM orders"))
    charged = {o: shop2.charged(o) for o in statuses}
    assert all((charged[o] == 10.0) == (s == "CONFIRMED") for o, s in statuses.items())
    assert shop2.stock_of("lamp") == 100 - sum(s == "CONFIRMED" for s in statuses.values())
    assert second.metrics.counts["resumed"] == 2


def test_non_idempotent_charge_retried_after_a_lost_reply_charges_twice(tmp_path):
    for idempotent, expected in ((False, 20.0), (True, 10.0)):
        shop, db = make_shop(tmp_path, f"i{idempotent}.db", idempotent=idempotent)
        retrier = ProductionRetrier("steps", RetryConfig(max_attempts=3, budget_ratio=None),
                                    sleep=lambda s: None)
        saga = ProductionSaga(shop.steps(), db, retrier=retrier)
        shop.faults["charge"] = ["lose_reply"]
        assert saga.run(order(1)).status == COMMITTED
        assert shop.charged("o1") == expected


def test_the_pending_state_keeps_a_doomed_order_off_the_pick_list(tmp_path):
    for pending, packed in ((False, ["o1"]), (True, [])):
        shop, db = make_shop(tmp_path, f"p{pending}.db", pending_state=pending)
        seen = []
        shop.faults["charge"] = ["decline"]
        result = Saga(shop.steps()).run(
            order(1), after_step=lambda n, c, s=seen, sh=shop: s.append(sh.pick_list()))
        assert result.status == COMPENSATED and seen[-1] == packed and shop.pick_list() == []


def test_threads_share_one_orchestrator(tmp_path):
    shop = Shop(sqlite3.connect(tmp_path / "shop.db", check_same_thread=False))
    db = sqlite3.connect(tmp_path / "log.db", check_same_thread=False)  # the orchestrator's
    shop.add_stock("lamp", 1000)
    lock = threading.Lock()

    def locked(fn):
        def run(ctx):
            with lock:
                return fn(ctx)
        return run

    steps = [Step(s.name, locked(s.action), s.compensation and locked(s.compensation))
             for s in shop.steps()]
    saga = ProductionSaga(steps, db)
    threads = [threading.Thread(target=lambda k=k: [saga.run(order(10 * k + j))
                                                    for j in range(10)], daemon=True)
               for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)
    assert saga.metrics.counts["committed"] == 40 and shop.stock_of("lamp") == 960
    assert db.execute("SELECT COUNT(*) FROM saga_log").fetchone()[0] == 40 * 10


def test_the_real_saga_and_the_model_agree_saga_for_saga():
    for sc in (study.Scenario(duration_s=20.0),
               study.Scenario(duration_s=20.0, order=(2, 0, 1, 3),
                              outage=(5.0, 10.0, 2, 0.6))):
        run, real = study.simulate(sc), study.replay_real(sc)
        assert np.allclose(real["end"], run.end, atol=1e-12)
        assert (real["committed"] == run.committed).all()
        assert (real["compensations"] == run.compensations).all()


def test_compensations_and_commits_match_the_closed_forms():
    # 5 seeds x ~8,000 sagas: the compensation count per saga has sd <= 1.2, so its mean's
    # standard error is about 0.006; 0.03 is about five of them. Commit share: sd <= 0.5,
    # standard error 0.0025; 0.015 is six.
    for p, attempts, share in ((0.05, 1, 1.0), (0.15, 1, 1.0), (0.2, 3, 0.5)):
        q = study.step_failure_probability(p, share, attempts)
        runs = [study.summary(study.simulate(study.uniform(
            4, p, attempts=attempts, permanent_share=share, duration_s=80.0, seed=s)))
            for s in range(1, 6)]
        comp = np.mean([r["compensations_per_saga"] for r in runs])
        commit = np.mean([r["commit_share"] for r in runs])
        assert abs(comp - study.expected_compensations([q] * 4)) < 0.03
        assert abs(commit - study.commit_probability([q] * 4)) < 0.015
        if attempts == 1:  # mean time: sd about 0.1 s, standard error 0.0005 s; 2 % is ~8
            mean = np.mean([r["mean_s"] for r in runs])
            assert mean == pytest.approx(study.expected_duration([p] * 4, [0.05] * 4,
                                                                 [0.05] * 4), rel=0.02)


def test_closed_forms_on_small_cases():
    assert study.abort_probabilities([0.1, 0.2, 0.3]) == pytest.approx([0.1, 0.18, 0.216])
    assert study.expected_compensations([0.1, 0.2, 0.3]) == pytest.approx(0.18 + 2 * 0.216)
    assert study.step_failure_probability(0.2, 1.0, 3) == pytest.approx(0.2)
    assert study.step_failure_probability(0.2, 0.0, 3) == pytest.approx(0.008)
    assert study.lock_hold_s("2pc", 0.001, 0.01, 0.002) == pytest.approx(0.027)
    assert study.lock_hold_s("saga", 0.001, 0.01, 0.002) == pytest.approx(0.003)


def test_the_hot_row_is_capped_at_one_over_the_lock_hold():
    for protocol, rate in (("2pc", 80.0), ("saga", 600.0)):
        sc = study.HotRow(protocol, arrival_rate=rate)
        s = study.hot_row_summary(study.simulate_hot_row(sc), sc)
        # overloaded: the lock never idles, so commits are one per hold, to within one
        assert abs(s["throughput"] * 27.0 - study.hot_row_capacity(sc.hold_s) * 27.0) <= 1
    sc = study.HotRow("2pc", arrival_rate=25.0, duration_s=400.0)
    s = study.hot_row_summary(study.simulate_hot_row(sc), sc)
    # below the cap: M/D/1 at load 0.675; 360 s x 25/s = 9,000 transactions, mean response
    # ~0.055 s with an autocorrelated sd; 5 % is several standard errors
    assert s["mean_latency_s"] == pytest.approx(theory.md1_mean_response(25.0, sc.hold_s),
                                                rel=0.05)
    assert s["throughput"] == pytest.approx(25.0, rel=0.03)


def test_simpy_and_fast_path_give_the_same_hot_row():
    sc = study.HotRow("2pc", arrival_rate=45.0, duration_s=10.0)
    a, b = study.simulate_hot_row(sc), study.simulate_hot_row(sc, engine="simpy")
    assert len(a) == len(b) and np.allclose(a.end, b.end) and np.allclose(a.start, b.start)


def test_optimisations_do_what_the_lesson_says():
    base = study.Scenario(duration_s=60.0)
    first = replace(base, order=(2, 0, 1, 3))  # the failure-prone charge first
    assert study.summary(study.simulate(first))["compensations_per_saga"] < \
        0.5 * study.summary(study.simulate(base))["compensations_per_saga"]
    par = study.simulate(replace(base, parallel_compensation=True))
    seq = study.simulate(base)
    aborted = ~seq.committed
    assert (par.compensation_s[aborted] <= seq.compensation_s[aborted] + 1e-12).all()
    assert par.compensation_s[aborted].mean() < seq.compensation_s[aborted].mean()


def test_dashboard_series_line_up():
    run = study.simulate(study.Scenario(outage=(20.0, 35.0, 2, 0.6)))
    series = study.over_time(run)
    lengths = {len(v[0]) for v in series.values()} | {len(v[1]) for v in series.values()}
    assert lengths == {60}
    share = series["compensated_share"][1]
    assert np.nanmean(share[22:34]) > 3 * np.nanmean(share[:18])
