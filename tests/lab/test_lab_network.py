"""The network and the nemesis do what their parameters say: measured loss, duplication and
latency within their sampling error, partitions exact, crashes, pauses and clocks as written."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulations.distributions import LogNormal
from simulations.lab import (
    ClockSkew,
    Crash,
    Duplicate,
    Latency,
    Loss,
    Nemesis,
    Node,
    OneWay,
    Partition,
    Pause,
    Reorder,
    Scenario,
    UniqueIdWorkload,
    run,
)

PERIOD_S = 0.01


class Chatter(Node):
    """Every PERIOD_S of its own clock, sends its clock reading to every peer; counts what it
    hears in memory and on disk; answers clients with the counts."""

    def on_start(self, ctx):
        self.heard = 0
        ctx.set_timer(PERIOD_S, "tick")

    def on_timer(self, ctx, name):
        ctx.broadcast(ctx.now)
        ctx.set_timer(PERIOD_S, "tick")

    def on_message(self, ctx, src, message):
        self.heard += 1
        ctx.disk["heard"] = ctx.disk.get("heard", 0) + 1
        ctx.disk.setdefault("handled_at", []).append((src, message, ctx.now))

    def on_request(self, ctx, request):
        ctx.reply(request, (self.heard, ctx.disk.get("heard", 0)))


LINKS = (Latency(0.005),)


def chat(faults=(), latency=LINKS, nodes=3, seconds=10.0, seed=3):
    """About ``seconds`` of chatter: one client asking every half second keeps the run going."""
    workload = UniqueIdWorkload(n_ops=int(seconds * 2), rate=2.0, clients=1)
    return run(Chatter, Scenario(nodes=nodes, workload=workload, nemesis=Nemesis(tuple(faults)),
                                 latency=tuple(latency)), seed=seed)


def within_sampling_error(measured, expected, standard_error):
    """Four standard errors: a correct network fails this about once in 16,000 seeds."""
    assert abs(measured - expected) <= 4 * standard_error, (measured, expected, standard_error)


def test_the_measured_loss_rate_matches_its_probability():
    lab = chat([Loss(0.0, None, probability=0.2)])
    j = lab.journal
    between = j.between_nodes(lab.nodes)
    n = int(between.sum())
    assert n >= 5000  # the sample: 3 nodes x 2 peers x 100 messages per second for ~10 s
    lost = np.mean(j.fate[between] == "lost")
    within_sampling_error(lost, 0.2, math.sqrt(0.2 * 0.8 / n))
    assert not np.any(j.fate[~between] == "lost")  # clients' links have latency only


def test_the_measured_duplication_rate_matches_its_probability():
    lab = chat([Duplicate(0.0, None, probability=0.3)])
    j = lab.journal
    originals = j.between_nodes(lab.nodes) & (j.copy_of == -1)
    n = int(originals.sum())
    assert n >= 5000
    copied = np.isin(np.flatnonzero(originals), j.copy_of[j.copy_of >= 0])
    within_sampling_error(np.mean(copied), 0.3, math.sqrt(0.3 * 0.7 / n))
    copies = j.copy_of[j.copy_of >= 0]
    assert all(j.body[c] == j.body[i] for i, c in zip(np.flatnonzero(j.copy_of >= 0), copies,
                                                        strict=True))


@pytest.mark.parametrize("spec, distribution", [
    (Latency(0.02), None),
    (Latency(0.01, "lognormal", scv=4.0), LogNormal(0.01, 4.0)),
])
def test_the_measured_latency_mean_matches_the_links_distribution(spec, distribution):
    """Under Reorder, each delay is one draw; the standard error of the mean of n draws is
    mean * sqrt(scv / n) (scv 1 for the exponential)."""
    lab = chat([Reorder(0.0, None)], latency=[spec])
    j = lab.journal
    delivered = j.between_nodes(lab.nodes) & (j.fate == "delivered")
    n = int(delivered.sum())
    assert n >= 5000
    delay = (j.arrived_s - j.sent_s)[delivered]
    scv = 1.0 if distribution is None else distribution.scv
    within_sampling_error(delay.mean(), spec.mean_s, spec.mean_s * math.sqrt(scv / n))


def test_a_latency_for_one_link_applies_to_that_link_only():
    lab = chat([Reorder(0.0, None)], latency=[Latency(0.05, src="n1", dst="n2"), Latency(0.005)])
    j = lab.journal
    delay = j.arrived_s - j.sent_s
    slow = (j.src == "n1") & (j.dst == "n2") & (j.fate == "delivered")
    fast = (j.src == "n2") & (j.dst == "n1") & (j.fate == "delivered")
    n_slow, n_fast = int(slow.sum()), int(fast.sum())
    assert n_slow >= 500 and n_fast >= 500
    within_sampling_error(delay[slow].mean(), 0.05, 0.05 / math.sqrt(n_slow))
    within_sampling_error(delay[fast].mean(), 0.005, 0.005 / math.sqrt(n_fast))


def test_links_keep_order_unless_the_nemesis_reorders_them():
    """With a mean latency (20 ms) twice the sending period, independent delays would overtake
    often; a first-in-first-out link never lets them."""
    for faults, overtaken in (([], False), ([Reorder(0.0, None)], True)):
        j = chat(faults, latency=[Latency(0.02)], seconds=3.0).journal
        link = (j.src == "n1") & (j.dst == "n2")
        arrivals = j.arrived_s[link]  # in sending order
        assert bool(np.any(np.diff(arrivals) < 0)) == overtaken


def test_a_partition_drops_every_message_across_it_while_it_lasts_and_no_other():
    lab = chat([Partition(2.0, 5.0, groups=(("n1",), ("n2", "n3")))])
    j = lab.journal
    nodes = j.between_nodes(lab.nodes)
    across = nodes & ((j.src == "n1") | (j.dst == "n1"))
    during = (j.arrived_s >= 2.0) & (j.arrived_s < 5.0)
    assert np.all(j.fate[across & during] == "cut") and (across & during).sum() >= 1000
    assert np.all(j.fate[nodes & ~during & (j.fate != "in flight")] == "delivered")
    assert np.all(j.fate[nodes & ~across] != "cut")  # n2 and n3 still talk


def test_a_partition_cuts_links_between_nodes_only_and_clients_still_reach_every_node():
    lab = chat([Partition(0.0, None, groups=(("n1",), ("n2", "n3")))])
    j = lab.journal
    clients = ~j.between_nodes(lab.nodes)
    assert clients.sum() >= 10 and not np.any(j.fate[clients] == "cut")
    assert lab.performance()["availability"] == 1.0


def test_a_one_way_cut_drops_one_direction_only():
    lab = chat([OneWay(1.0, 4.0, src=("n1",), dst=("n2", "n3"))])
    j = lab.journal
    during = (j.arrived_s >= 1.0) & (j.arrived_s < 4.0)
    from_n1 = during & (j.src == "n1") & np.isin(j.dst, ["n2", "n3"])
    to_n1 = during & (j.dst == "n1")
    assert np.all(j.fate[from_n1] == "cut") and from_n1.sum() >= 500
    assert np.all(j.fate[to_n1] == "delivered") and to_n1.sum() >= 500


def test_a_crashed_node_hears_and_says_nothing_and_restarts_with_its_disk_only():
    lab = chat([Crash("n2", 2.0, 4.0)], nodes=2)
    j = lab.journal
    down = (j.arrived_s >= 2.0) & (j.arrived_s < 4.0) & (j.dst == "n2")
    assert np.all(j.fate[down] == "down") and down.sum() >= 150
    assert not np.any((j.src == "n2") & (j.dst == "n1") & (j.sent_s >= 2.0) & (j.sent_s < 4.0))
    heard = (j.dst == "n2") & (j.src == "n1") & (j.fate == "delivered")
    assert lab.disks["n2"]["heard"] == heard.sum()  # the disk kept every incarnation's count
    asked = [op for op in lab.history if op.node == "n2" and op.invoke_s > 5.0]
    memory, disk = asked[-1].output
    since_restart = heard & (j.arrived_s >= 4.0) & (j.arrived_s <= asked[-1].complete_s)
    before_crash = heard & (j.arrived_s < 2.0)
    assert 0 < memory <= since_restart.sum() and disk >= memory + before_crash.sum()


def test_a_crash_without_end_is_for_good():
    j = chat([Crash("n2", 2.0)], nodes=2).journal
    assert not np.any((j.src == "n2") & (j.sent_s >= 2.0) & (j.dst == "n1"))


def test_a_paused_node_handles_what_arrived_when_it_resumes():
    lab = chat([Pause("n2", 2.0, 3.0)], nodes=2)
    j = lab.journal
    during = (j.dst == "n2") & (j.arrived_s >= 2.0) & (j.arrived_s < 3.0)
    assert np.all(j.fate[during] == "delivered") and during.sum() >= 90
    assert not np.any((j.src == "n2") & (j.sent_s > 2.0) & (j.sent_s < 3.0))
    # n1's messages are its clock readings (real time here): those sent during the pause
    # were handled by n2 at 3.0 s or later, in the order they arrived
    handled = [(sent, at) for src, sent, at in lab.disks["n2"]["handled_at"]
               if 2.0 <= sent < 2.99]
    assert len(handled) >= 90 and all(at >= 3.0 for _, at in handled)
    assert [sent for sent, _ in handled] == sorted(sent for sent, _ in handled)


def test_a_clock_skew_jumps_the_clock_and_its_drift_changes_its_rate():
    j = chat([ClockSkew("n1", 1.0, skew_s=10.0, drift=0.5)], nodes=2, seconds=3.0).journal
    sent = (j.src == "n1") & (j.dst == "n2")
    real, local = j.sent_s[sent], np.array([j.body[i] for i in np.flatnonzero(sent)])
    before, after = real < 1.0, real >= 1.0
    assert np.allclose(local[before], real[before])
    assert np.allclose(local[after], 1.0 + 10.0 + 1.5 * (real[after] - 1.0))
    # a timer of PERIOD_S on n1's clock rings every PERIOD_S / 1.5 real seconds once it drifts
    assert np.allclose(np.diff(real[after])[1:], PERIOD_S / 1.5)


def test_the_same_seed_gives_the_same_run_message_for_message():
    faults = [Loss(0.0, None, probability=0.1), Duplicate(1.0, 2.0, probability=0.2),
              Crash("n3", 1.0, 2.0), Pause("n2", 2.5, 3.0)]
    first, again, other = (chat(faults, seconds=3.0, seed=s) for s in (7, 7, 8))
    assert first.journal.rows() == again.journal.rows() and len(first.journal) > 1000
    assert list(first.history) == list(again.history)
    assert first.journal.rows() != other.journal.rows()
