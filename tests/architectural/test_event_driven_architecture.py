"""Tests of the event-driven architecture pattern (patterns.architectural.event_driven_architecture)
and its study (simulations.architectural.event_driven_architecture): behaviour, error messages,
durability and idempotency on a real SQLite file, theory vs simulation."""

from __future__ import annotations

import math
import sqlite3
from dataclasses import replace

import numpy as np
import pytest

from patterns.architectural.event_driven_architecture import (
    BusConfig,
    EventBus,
    IdempotentHandler,
    ProductionEventBus,
    ServiceDown,
    SQLiteEventStore,
    SyncChain,
    order_flow,
)
from simulations.architectural import event_driven_architecture as study
from simulations.architectural.event_driven_architecture import (
    Scenario,
    backlog_drain_s,
    chain_availability,
    chain_latency_percentile,
    completion_mean_s,
    simulate,
    summary,
)


def test_the_study_uses_the_pattern_class():
    assert study.EventBus is EventBus and study.SyncChain is SyncChain


def wire(bus, services):
    bus.subscribe("OrderPlaced", services["payment"])
    bus.subscribe("OrderPlaced", services["inventory"])
    bus.subscribe("OrderPlaced", services["email"])


def test_sync_chain_fails_when_any_step_is_down_and_bus_only_delays():
    down = {"inventory"}
    services, effects = order_flow(down)
    chain = SyncChain([(n, services[n]) for n in ("order", "payment", "inventory", "email")])
    with pytest.raises(ServiceDown):
        chain.call({"order_id": 1})
    assert effects["payment"] == [1] and effects["email"] == [] and chain.failed == 1

    services, effects = order_flow(down)
    now = [0.0]
    bus = EventBus(clock=lambda: now[0])
    wire(bus, services)
    bus.publish("OrderPlaced", {"order_id": 2})
    assert bus.dispatch() == 2 and bus.pending() == 1 and bus.failures == 1
    down.clear()
    now[0] = 5.0
    assert bus.dispatch() == 1 and bus.pending() == 0
    assert effects["inventory"] == [2] and bus.delivered[-1][:2] == (5.0, "inventory")


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match=r"BusConfig.lease_s must be > 0 \(got -1\)"):
        BusConfig(lease_s=-1)
    with pytest.raises(ValueError, match="BusConfig.batch_size"):
        BusConfig(batch_size=0)
    with pytest.raises(ValueError, match="Scenario.sync_steps"):
        Scenario(depth=3, sync_steps=3)


def test_durable_store_survives_a_restart_and_redelivers_after_a_crash(tmp_path):
    path = str(tmp_path / "events.db")
    now = [100.0]
    store = SQLiteEventStore(path, clock=lambda: now[0])
    db = sqlite3.connect(str(tmp_path / "app.db"), isolation_level=None)
    db.execute("CREATE TABLE emails (order_id INTEGER)")

    def send(conn, event):
        conn.execute("INSERT INTO emails VALUES (?)", (event.payload["order_id"],))

    email = IdempotentHandler("email", db, send)
    bus = ProductionEventBus(store, BusConfig(lease_s=10), clock=lambda: now[0])
    bus.subscribe("OrderPlaced", email)
    for k in range(3):
        bus.publish("OrderPlaced", {"order_id": k})
    store.close()  # the process dies with three events unhandled

    store = SQLiteEventStore(path, clock=lambda: now[0])
    bus = ProductionEventBus(store, BusConfig(lease_s=10), clock=lambda: now[0])
    bus.subscribe("OrderPlaced", email)
    assert bus.pending() == 3
    with pytest.raises(SystemExit):
        bus.dispatch(crash_after_handler=True)  # handled order 0, died before the ack
    assert bus.dispatch() == 0  # the leases have not run out yet
    now[0] += 11
    assert bus.dispatch() == 3 and bus.pending() == 0
    rows = sorted(r[0] for r in db.execute("SELECT order_id FROM emails"))
    assert rows == [0, 1, 2] and email.duplicates == 1 and email.applied == 3
    assert bus.metrics.counts["delivered"] == 3


def test_a_handler_that_keeps_failing_is_dead_lettered(tmp_path):
    store = SQLiteEventStore(str(tmp_path / "e.db"))
    bus = ProductionEventBus(store, BusConfig(max_attempts=3))

    def broken(event):
        raise ServiceDown("down")

    bus.subscribe("OrderPlaced", broken)
    event = bus.publish("OrderPlaced", {"order_id": 9})
    for _ in range(3):
        bus.dispatch()
    assert bus.dead == [("broken", event.id)] and bus.pending() == 0
    assert bus.metrics.counts["handler_errors"] == 3


def test_sync_availability_is_the_product_and_async_is_the_front():
    # 8 runs of 3600 s with A = 0.98, MTTR = 5 s: the standard error of a run's available
    # fraction is about 0.006 (measured); tolerance 4 standard errors of the mean of 8.
    for k, expected in ((3, chain_availability([0.98] * 4)), (0, 0.98)):
        values = [summary(simulate(Scenario(sync_steps=k, duration_s=3600, seed=s)))[
            "availability"] for s in range(8)]
        se = np.std(values, ddof=1) / math.sqrt(len(values))
        assert abs(np.mean(values) - expected) < 4 * max(se, 1e-3), (k, np.mean(values), se)


def test_sync_latency_is_the_sum_and_its_p99_is_erlang():
    # about 70,000 requests: the mean of a sum of 4 exponentials of 20 ms has a standard error
    # of 0.04 / √70000 ≈ 0.15 ms; 1 % is many standard errors; the p99 within 3 %.
    s = summary(simulate(Scenario(sync_steps=3, duration_s=3600, random_outages=False)))
    assert s["mean_latency_s"] == pytest.approx(0.08, rel=0.01)
    assert s["p99_latency_s"] == pytest.approx(chain_latency_percentile(4, 0.02, 0.99), rel=0.03)
    assert chain_latency_percentile(1, 0.02, 0.99) == pytest.approx(0.02 * math.log(100))


def test_async_completion_matches_jackson_and_the_fluid_term():
    # no outages: tandem of 3 M/M/1 (λ = 20, μ = 40), mean 3 × 50 ms + 20 ms; 72,000 events,
    # within 3 %. With outages the fluid term is an approximation: within 25 % of the mean of
    # 10 runs of 3600 s (its standard error is about 12 %, measured).
    quiet = summary(simulate(Scenario(duration_s=3600, random_outages=False)))
    assert quiet["completion_mean_s"] == pytest.approx(
        completion_mean_s(Scenario(random_outages=False)), rel=0.03)
    noisy = [summary(simulate(Scenario(duration_s=3600, seed=s)))["completion_mean_s"]
             for s in range(10)]
    assert np.mean(noisy) == pytest.approx(completion_mean_s(Scenario()), rel=0.25)


def test_backlog_after_a_scripted_outage_drains_as_the_fluid_model_says():
    # a 60 s outage of the last stage at λ = 20, μ = 40: 1200 events pile up and drain in
    # 20·60/(40 − 20) = 60 s; Poisson noise on 1200 is about 3 %, so within 10 %.
    sc = Scenario(outage=(3, 100.0, 160.0), random_outages=False, duration_s=400)
    r = simulate(sc)
    assert r.backlog.max() == pytest.approx(1200, rel=0.1)
    assert study.drained_after_s(r, 160.0) == pytest.approx(backlog_drain_s(20, 60, 40), rel=0.15)
    assert np.isfinite(r.done).all() and r.accepted.all()  # nothing lost
    assert backlog_drain_s(20, 60, 20) == math.inf


def test_common_random_numbers_across_designs():
    a = simulate(Scenario(sync_steps=0, duration_s=100))
    b = simulate(Scenario(sync_steps=3, duration_s=100))
    assert np.array_equal(a.arrival, b.arrival) and a.down == b.down
    c = simulate(replace(Scenario(duration_s=100), depth=6))
    assert np.array_equal(a.arrival, c.arrival) and c.down[:4] == a.down


def test_the_vectorised_stage_matches_the_loop():
    rng = np.random.default_rng(3)
    ready = rng.uniform(0, 100, 2000)
    work = rng.exponential(0.04, 2000)
    windows = [(10.0, 15.0), (40.0, 41.5), (70.0, 90.0)]
    for w in ([], windows):
        fast = study._stage(ready, work, 1, w)
        slow = study._stage(ready, work, 1, w, loop=True)
        assert np.allclose(fast, slow)
