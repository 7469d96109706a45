"""A grow-only set: is every acknowledged add eventually seen by every node, and how soon?

Picture a notice board copied to every branch office: once a notice is confirmed pinned, every
office's copy should show it sooner or later, and no office should show a notice nobody pinned.
The checker reads the history only: the final read of each node (the workload reads every node
once the nemesis is over) must hold every acknowledged element; no read may hold an element
whose add was never attempted or certainly failed; and for each acknowledged element, the time
to visibility is how long after its acknowledgement the reads stopped missing it (from the
first read after which every read, on any node, holds it).
"""

from __future__ import annotations

import numpy as np

from simulations.lab.checkers.result import CheckResult
from simulations.lab.history import History, Status
from simulations.metrics import latency_percentiles

__all__ = ["check_set"]


def check_set(history: History) -> CheckResult:
    """Check a history of ``add(element)`` and ``read → frozenset`` operations."""
    adds = history.where(f="add")
    reads = sorted(history.where(f="read", status=Status.OK), key=lambda op: op.invoke_s)
    acked = {op.value: op for op in adds if op.status is Status.OK}
    possible = {op.value for op in adds if op.status is not Status.FAIL}
    unexpected = [op for op in reads if not op.output <= possible]
    last_read = {op.node: op for op in reads}  # each node's final read
    lost = sorted(v for v in acked if any(v not in op.output for op in last_read.values()))
    visibility = []
    for element, add in acked.items():
        missing = [j for j, op in enumerate(reads)
                   if op.invoke_s >= add.invoke_s and element not in op.output]
        if missing and missing[-1] == len(reads) - 1:
            continue  # never stably visible: counted as lost
        stable_from = reads[missing[-1] + 1].invoke_s if missing else add.complete_s
        visibility.append(max(stable_from - add.complete_s, 0.0))
    details = {"acknowledged": len(acked), "lost": lost, "unexpected_reads": len(unexpected),
               "nodes_read": sorted(last_read),
               **{k.replace("latency", "visibility"): v
                  for k, v in latency_percentiles(np.array(visibility)).items()}}
    if unexpected:
        return CheckResult("set", False, f"{len(unexpected)} reads hold elements that were "
                           f"never added", tuple(unexpected[:3]), details)
    if lost:
        witness = tuple([acked[lost[0]]] + [op for op in last_read.values()
                                             if lost[0] not in op.output])
        return CheckResult("set", False, f"{len(lost)} acknowledged adds are missing from a "
                           f"node's final read (first: {lost[0]!r})", witness, details)
    if not reads:
        return CheckResult("set", False, "no read succeeded, so nothing was checked", (),
                           details)
    return CheckResult("set", True, f"all {len(acked)} acknowledged adds were read by "
                       f"{len(last_read)} nodes; visibility p99 "
                       f"{details['visibility_p99_s']:.3f} s", (), details)
