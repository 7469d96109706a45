"""The space-time diagram draws each message in its window once; the timeline outlines the
witness and nothing else."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402

from simulations.lab import (  # noqa: E402
    Crash,
    Loss,
    Nemesis,
    Partition,
    ReadAnyReplica,
    RegisterWorkload,
    Scenario,
    diagrams,
    run,
)


@pytest.fixture(scope="module")
def broken():
    nemesis = Nemesis((Partition(0.5, 1.0, groups=(("n1",), ("n2", "n3"))), Crash("n3", 1.2, 1.4),
                       Loss(1.5, 2.0, probability=0.5)))
    lab_run = run(ReadAnyReplica, Scenario(nodes=3, nemesis=nemesis,
                                           workload=RegisterWorkload(n_ops=300, clients=5)), seed=5)
    return lab_run, lab_run.check()


def test_space_time_draws_every_message_sent_in_its_window_once(broken):
    lab_run, _ = broken
    window = (0.4, 2.1)
    ax = diagrams.space_time(lab_run, window=window)
    j = lab_run.journal
    shown = (j.sent_s >= window[0]) & (j.sent_s <= window[1]) & j.between_nodes(lab_run.nodes)
    arrows = [c for c in ax.collections if isinstance(c, LineCollection) and c.get_zorder() > 0]
    segments = sum(len(c.get_segments()) for c in arrows)  # (the node lines lie at zorder 0)
    assert segments == shown.sum() > 0
    assert "delivered" in set(j.fate[shown]) and set(j.fate[shown]) & {"lost", "cut", "down"}
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "node crashed" in labels and any("dropped" in label for label in labels)
    plt.close("all")


def test_a_witness_diagram_shows_the_clients_and_spans_the_witness(broken):
    lab_run, result = broken
    ax = diagrams.space_time(lab_run, witness=result.witness)
    names = [t.get_text() for t in ax.get_yticklabels()]
    assert names[:3] == ["n1", "n2", "n3"] and any(n.startswith("c") for n in names)
    start, end = ax.get_xlim()
    assert all(start <= op.invoke_s and op.complete_s <= end for op in result.witness)
    plt.close("all")


def test_the_timeline_outlines_exactly_the_witness(broken):
    lab_run, result = broken
    ax = diagrams.timeline(lab_run.history, witness=result.witness)
    outlined = [p for p in ax.patches if p.get_linewidth() == 2]
    assert len(outlined) == len(result.witness) >= 2
    lefts = sorted(p.get_x() for p in outlined)
    assert np.allclose(lefts, sorted(op.invoke_s for op in result.witness))
    assert {t.get_text() for t in ax.texts} == {op.describe() for op in result.witness}
    plt.close("all")
