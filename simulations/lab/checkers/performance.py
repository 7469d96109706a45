"""Availability and performance: how often clients got an answer, how fast, at what cost.

Like a service desk's monthly report: of all the requests, how many were answered (and how
many refused or left hanging), how many were answered per second, how long the answers took
(percentiles), and how many internal memos each request cost (messages between nodes per
operation, the figure Gossip Glomers sets targets for).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simulations.lab.history import History, Status
from simulations.lab.network import MessageTable
from simulations.metrics import latency_percentiles

__all__ = ["performance"]


def performance(history: History, journal: MessageTable, nodes: Sequence[str]) -> dict:
    """One row of numbers for a run: ``operations``, ``ok`` / ``fail`` / ``unknown`` counts,
    ``availability`` (the share answered, ok or fail), ``throughput_ops_s`` (ok operations per
    second from the first invocation to the last answer), ``messages_per_op`` (messages between
    nodes per operation) and ``latency_p50_s`` ... of the ok operations."""
    n = len(history)
    counts = history.counts()
    ok = history.where(status=Status.OK)
    invoke, complete = history.column("invoke_s"), history.column("complete_s")
    span = float(np.nanmax(complete) - np.min(invoke)) if n else 0.0
    return {"operations": n, **counts,
            "availability": (counts["ok"] + counts["fail"]) / n if n else float("nan"),
            "throughput_ops_s": counts["ok"] / span if span > 0 else float("nan"),
            "messages_per_op": int(journal.between_nodes(nodes).sum()) / n if n else
            float("nan"),
            **latency_percentiles(ok.column("latency_s"))}
