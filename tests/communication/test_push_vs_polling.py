"""Tests of the push vs polling pattern (patterns.communication.push_vs_polling) and its study
(simulations.communication.push_vs_polling): behaviour, error messages, theory vs simulation,
the real HTTP server, and agreement with httpx-sse where it is installed."""

from __future__ import annotations

import http.client
import math

import numpy as np
import pytest

from patterns.communication.push_vs_polling import (
    Feed,
    FeedConfig,
    FeedHTTPServer,
    Poller,
    ProductionFeed,
    conditional_get,
    long_poll_get,
)
from simulations.communication import push_vs_polling as study
from simulations.communication.push_vs_polling import Scenario, simulate, summary


def test_poller_counts_empty_polls_and_staleness():
    now = [0.0]
    feed = Feed(clock=lambda: now[0])
    poller = Poller(feed, 2.0, clock=lambda: now[0])
    poller.poll()
    now[0] = 1.0
    feed.publish("a")
    now[0] = 2.0
    assert poller.due()
    assert [u.value for u in poller.poll()] == ["a"]
    assert (poller.polls, poller.empty, poller.staleness) == (2, 1, [1.0])


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match=r"FeedConfig.hold_s must be > 0 \(got -1\)"):
        FeedConfig(hold_s=-1)
    with pytest.raises(ValueError, match="mode must be one of"):
        Scenario(mode="carrier-pigeon")


def test_real_server_conditional_poll_and_long_poll():
    feed = ProductionFeed("t", FeedConfig(hold_s=0.2))
    feed.publish("x")
    with FeedHTTPServer(feed) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=2)
        status, body, etag, _ = conditional_get(conn, None)
        assert status == 200 and body[0][1] == "x"
        status, body, _, size = conditional_get(conn, etag)
        assert (status, body, size) == (304, [], 0)
        assert long_poll_get(conn, 1, 0.1) == []  # times out: nothing newer than version 1
        conn.close()
    assert feed.metrics.counts["not_modified"] == 1
    assert feed.metrics.counts["long_poll_timeout"] == 1


# Theory vs simulation. Tolerances: the staleness of polling is the mean of a uniform wait over
# the updates of one shared Poisson stream; with u = 0.5/s over 5 runs of 400 s there are about
# 1000 updates, so the standard error of T/2 is about (T/sqrt(12))/sqrt(1000) < 1 % of T/2;
# we allow 5 %. The empty fraction is a binomial proportion over about N·D/T polls (but
# correlated through the shared stream, roughly 1000 independent intervals): SE < 0.016, we
# allow 0.05 absolute. The load is deterministic given the timer: 1 %.
@pytest.mark.parametrize("schedule", ["fixed", "sleep"])
@pytest.mark.parametrize("interval", [0.5, 2.0, 5.0])
def test_polling_matches_closed_forms(schedule, interval):
    runs = [summary(simulate(Scenario(clients=20, interval_s=interval, schedule=schedule,
                                      duration_s=400.0, seed=seed)), 5.0) for seed in range(5)]
    stale = np.mean([r["mean_staleness_s"] for r in runs])
    load = np.mean([r["requests_per_s"] for r in runs])
    empty = np.mean([r["empty_fraction"] for r in runs])
    assert stale == pytest.approx(study.poll_staleness(interval, 0.025, schedule), rel=0.05)
    assert load == pytest.approx(study.poll_load(20, interval, 0.025, schedule), rel=0.01)
    assert abs(empty - study.empty_fraction(0.5, interval, 0.025, schedule)) < 0.05


def test_jitter_staleness_follows_the_inspection_paradox():
    # 5 runs of 400 s at T = 2 s: about 1000 updates; SE ~1 %, tolerance 5 %.
    runs = [summary(simulate(Scenario(clients=20, jitter=1.0, duration_s=400.0, seed=seed)), 5.0)
            for seed in range(5)]
    assert np.mean([r["mean_staleness_s"] for r in runs]) == pytest.approx(
        study.poll_staleness(2.0, 0.025, jitter=1.0), rel=0.05)


@pytest.mark.parametrize(("u", "hold", "gap"), [(0.5, 30.0, 0.0), (2.0, 10.0, 0.2)])
def test_long_polling_matches_closed_forms(u, hold, gap):
    # about 1000 updates per run (duration 1000/u): the request rate is one per cycle, with
    # SE ~3 %; we allow 6 %. Staleness is d plus a small gap term: 10 % (its SE is ~5 %).
    s = summary(simulate(Scenario(mode="long_poll", clients=20, update_rate=u, hold_s=hold,
                                  regap_s=gap, duration_s=1000 / u, seed=3)), 10.0)
    assert s["requests_per_s"] == pytest.approx(
        20 / study.long_poll_cycle_s(u, hold, 0.025, gap), rel=0.06)
    assert s["mean_staleness_s"] == pytest.approx(
        study.long_poll_staleness(u, hold, 0.025, gap), rel=0.10)


def test_push_staleness_is_one_way_and_connections_are_n():
    s = summary(simulate(Scenario(mode="push", clients=30, duration_s=60.0)), 5.0)
    assert s["mean_staleness_s"] == pytest.approx(study.push_staleness(0.025))
    assert s["mean_connections"] == pytest.approx(30)
    assert s["requests_per_s"] == 0


def test_silent_drop_needs_heartbeats_and_jitter_spreads_reconnects():
    drop = Scenario(mode="push", clients=20, outage=(20.0, 20.0), silent_drop=True,
                    duration_s=40.0)
    assert summary(simulate(drop), 5.0)["undelivered"] > 0
    assert summary(simulate(Scenario(**{**drop.__dict__, "heartbeat_s": 1.0})),
                   5.0)["undelivered"] == 0
    assert math.isclose(study.long_poll_timeout_fraction(0.1, 10.0, 0.0), math.exp(-1.0))


def test_measure_real_runs_and_leaves_no_thread():
    real = study.measure_real(duration_s=0.5, clients=2)
    assert real["server"]["threads_alive"] == 0
    assert real["poll"]["bytes"] < real["poll_plain"]["bytes"]


def test_httpx_sse_agrees_with_read_events():
    httpx = pytest.importorskip("httpx")
    httpx_sse = pytest.importorskip("httpx_sse")
    feed = ProductionFeed("lib", FeedConfig(heartbeat_s=0.05))
    for v in ("a", {"b": 1}):
        feed.publish(v)
    with FeedHTTPServer(feed) as server, httpx.Client(timeout=2) as client, \
            httpx_sse.connect_sse(client, "GET", f"http://127.0.0.1:{server.port}/events") as src:
        got = []
        for event in src.iter_sse():
            if event.data:
                got.append((event.id, event.data))
            if len(got) == 2:
                break
    assert got == [("1", '"a"'), ("2", '{"b": 1}')]
