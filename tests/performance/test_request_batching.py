"""Tests of request batching (patterns.performance.request_batching) and its study
(simulations.performance.request_batching): behaviour, error messages, the SimPy run against
the fast path, theory against simulation, and a real SQLite flush."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import replace

import numpy as np
import pytest

from patterns.performance.request_batching import (
    Batcher,
    BatcherConfig,
    BatcherFullError,
    ProductionBatcher,
    SQLiteSink,
)
from simulations.performance import request_batching as study
from simulations.performance.request_batching import (
    Scenario,
    capacity,
    mean_added_wait,
    mean_batch_size,
    oldest_wait,
    rough_added_wait,
    simulate,
    simulate_simpy,
    summary,
)


def hand_batcher(max_items=3, linger_s=1.0):
    now, out = [0.0], []
    return Batcher(max_items, linger_s, out.append, clock=lambda: now[0]), now, out


def test_the_study_uses_the_pattern_class():
    assert study.Batcher is Batcher


def test_flushes_when_full_and_when_the_linger_is_over():
    b, now, out = hand_batcher()
    for t, item in [(0.0, "a"), (0.1, "b"), (0.2, "c")]:
        now[0] = t
        b.add(item)
    assert out == [["a", "b", "c"]] and b.pending == []
    now[0] = 1.0
    b.add("d")
    assert b.deadline() == 2.0
    now[0] = 1.99
    b.poll()
    assert out == [["a", "b", "c"]]
    now[0] = 2.0
    b.poll()
    assert out[-1] == ["d"]
    assert [reason for _, _, reason in b.flushes] == ["size", "linger"]
    assert b.deadline() == math.inf


def test_zero_linger_sends_every_item_at_once():
    b, now, out = hand_batcher(max_items=10, linger_s=0.0)
    for item in range(3):
        b.add(item)
    assert out == [[0], [1], [2]]


def test_an_add_after_the_deadline_flushes_without_a_poll():
    b, now, out = hand_batcher(max_items=10, linger_s=1.0)
    b.add("a")
    now[0] = 1.5
    b.add("b")
    assert out == [["a", "b"]]


@pytest.mark.parametrize("kwargs, message", [
    ({"max_items": 0, "linger_s": 1}, "max_items must be an integer >= 1 (got 0)"),
    ({"max_items": 2, "linger_s": -1}, "linger_s must be >= 0 (got -1)"),
])
def test_bad_settings_name_the_parameter(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Batcher(flush=print, **kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"max_items": 2.5}, "BatcherConfig.max_items must be an integer >= 1"),
    ({"linger_s": -0.1}, "BatcherConfig.linger_s must be >= 0"),
    ({"max_items": 100, "max_pending": 10}, "BatcherConfig.max_pending must be an integer >= 100"),
])
def test_bad_config_names_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BatcherConfig(**kwargs)


def test_bad_scenario_names_the_field():
    with pytest.raises(ValueError, match=r"Scenario.arrival_rate must be > 0 \(got 0\)"):
        Scenario(arrival_rate=0)


def test_production_batcher_under_threads_loses_nothing_and_keeps_order():
    got, lock = [], threading.Lock()

    def flush(batch):
        with lock:
            got.append(list(batch))

    batcher = ProductionBatcher("t", BatcherConfig(max_items=25, linger_s=0.002), flush)

    def producer(k):
        for i in range(500):
            batcher.add((k, i))

    threads = [threading.Thread(target=producer, args=(k,), daemon=True) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    batcher.close()
    assert not any(t.is_alive() for t in threads) and not batcher._thread.is_alive()
    items = [item for batch in got for item in batch]
    assert sorted(items) == sorted((k, i) for k in range(4) for i in range(500))
    for k in range(4):  # each producer's items leave in the order it added them
        assert [i for kk, i in items if kk == k] == list(range(500))
    assert all(1 <= len(batch) <= 25 for batch in got)
    c = batcher.metrics.counts
    assert c["items"] == c["flushed_items"] == 2000 and c["batches"] == len(got)
    assert batcher.metrics.observed("batch_items") == len(got)


def test_a_failed_flush_is_kept_and_counted():
    calls = []

    def flaky(batch):
        calls.append(batch)
        if len(calls) == 1:
            raise OSError("disk full")

    batcher = ProductionBatcher("f", BatcherConfig(max_items=2, linger_s=10.0), flaky)
    for i in range(4):
        batcher.add(i)
    batcher.close()
    assert batcher.failed == [[0, 1]] and calls[1] == [2, 3]
    assert batcher.metrics.counts["flush_errors"] == 1


def test_close_flushes_a_partial_batch_before_its_linger():
    got = []
    batcher = ProductionBatcher("c", BatcherConfig(max_items=100, linger_s=60.0), got.append)
    batcher.add("only")
    began = time.monotonic()
    batcher.close()
    assert got == [["only"]] and time.monotonic() - began < 5
    assert batcher.metrics.counts["flush_close"] == 1


def test_the_pending_bound_refuses_with_backpressure():
    release = threading.Event()
    batcher = ProductionBatcher("b", BatcherConfig(max_items=2, linger_s=10.0, max_pending=4),
                                lambda batch: release.wait(5))
    batcher.add(0)
    batcher.add(1)  # the flusher takes these and blocks in the callback
    deadline = time.monotonic() + 5
    while batcher.pending and time.monotonic() < deadline:
        time.sleep(0.001)
    for i in range(4):
        batcher.add(i)
    with pytest.raises(BatcherFullError, match="4 items pending"):
        batcher.add(99)
    release.set()
    batcher.close()
    assert batcher.metrics.counts["rejected"] == 1


def test_sqlite_sink_inserts_every_row_and_batching_is_cheaper(tmp_path):
    sink = SQLiteSink(str(tmp_path / "events.db"))
    rows = [(i, "x" * 20) for i in range(200)]
    began = time.perf_counter()
    for row in rows:
        sink.insert([row])
    one_by_one = time.perf_counter() - began
    began = time.perf_counter()
    sink.insert(rows)
    batched = time.perf_counter() - began
    assert sink.count() == 400
    sink.close()
    # 200 commits against one: the batched insert must be several times faster on any disk.
    assert batched * 5 < one_by_one


def test_fit_costs_recovers_a_line():
    sizes = [1, 2, 4, 8, 16]
    assert study.fit_costs(sizes, [0.003 + 0.0002 * n for n in sizes]) == pytest.approx(
        (0.003, 0.0002))


@pytest.mark.parametrize("settings", [
    {}, {"max_items": 1}, {"linger_s": 0.0}, {"linger_s": 0.05, "arrival_rate": 900.0},
    {"max_items": 64, "linger_s": 0.02, "arrival_rate": 2000.0, "duration_s": 5.0},
])
def test_simpy_run_of_the_pattern_gives_the_same_rows_as_the_fast_path(settings):
    scenario = replace(Scenario(duration_s=5.0), **settings)
    fast, slow = simulate(scenario), simulate_simpy(scenario)
    np.testing.assert_array_equal(fast.batch_size, slow.batch_size)
    np.testing.assert_allclose(fast.dispatch, slow.dispatch, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fast.end, slow.end, rtol=0, atol=1e-9)


def test_throughput_at_saturation_is_the_capacity():
    # Offered load far above capacity, so the server always has a full batch. Over a window
    # of T s the completions miss at most one batch at each end: |throughput - capacity| <= 2b/T.
    for b in (1, 4, 16, 64):
        scenario = Scenario(arrival_rate=30_000.0, max_items=b, linger_s=1.0, duration_s=4.0)
        measured = summary(simulate(scenario), 1.0, 4.0)["throughput_rps"]
        assert abs(measured - capacity(b, 0.004, 0.0002)) <= 2 * b / 3.0


@pytest.mark.parametrize("rate, b, linger_s", [
    (400.0, 16, 0.005), (400.0, 16, 0.1), (100.0, 8, 0.02), (2000.0, 64, 0.01), (50.0, 4, 0.05),
])
def test_mean_added_wait_and_batch_size_match_the_closed_forms(rate, b, linger_s):
    scenario = Scenario(arrival_rate=rate, max_items=b, linger_s=linger_s, duration_s=200.0,
                        seed=7)
    run = simulate(scenario)
    n = len(run.arrival)
    # Tolerance: each wait lies in [0, linger], so its sd is at most linger/2; items of one batch
    # are correlated, but at least n/b independent batches remain, so the standard error of the
    # mean is at most (linger/2)/sqrt(n/b). Allow 4 of those (false alarm < 1e-4).
    tolerance = 4 * (linger_s / 2) / math.sqrt(n / b)
    assert abs(run.added_wait.mean() - mean_added_wait(rate, b, linger_s)) <= tolerance
    # Batch size lies in [1, b]: sd <= (b - 1)/2 over the number of batches.
    batches = len(run.batch_size)
    assert abs(run.batch_size.mean() - mean_batch_size(rate, b, linger_s)) <= \
        4 * ((b - 1) / 2) / math.sqrt(batches) + 1e-12


def test_the_closed_forms_have_the_right_limits():
    assert mean_added_wait(100.0, 9, math.inf) == pytest.approx(8 / (2 * 100.0))
    lam, linger = 300.0, 0.01
    assert mean_added_wait(lam, 10**4, linger) == pytest.approx(
        linger * (lam * linger + 2) / (2 * (1 + lam * linger)), rel=1e-9)
    assert mean_added_wait(100.0, 1, 0.5) == 0 and mean_batch_size(100.0, 1, 0.5) == 1
    for rate, b, linger_s in [(400, 16, 0.005), (100, 8, 0.02), (1000, 4, 1.0)]:
        assert oldest_wait(rate, b, linger_s) <= rough_added_wait(rate, b, linger_s) + 1e-12
        assert mean_added_wait(rate, b, linger_s) <= oldest_wait(rate, b, linger_s)
