"""Pictures of a run: who sent what to whom (space-time), and what each client saw (timeline).

Picture the two exhibits at an accident inquiry. The first is a chart of the radio traffic:
one horizontal line per station, time running right, each message an arrow from the moment it
left one line to the moment it reached another, the lost ones ending in a cross, and the
stretches when a station was down or cut off shaded (a Lamport space-time diagram). The second
is the log of what each pilot asked and heard: one row per client, each operation a bar from
its request to its answer, with the few operations that prove the fault (a checker's witness)
outlined and labelled. Both use the toolkit's house style (``simulations.plots``) and return
their ``Axes``; neither calls ``plt.show()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from simulations.lab.history import History, Op, Status
from simulations.lab.nemesis import ClockSkew, Crash, Pause
from simulations.lab.run import LabRun
from simulations.plots import COLORS, WINDOW, new_axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["space_time", "timeline", "window_of"]

_DROPPED = COLORS[1]
_STATUS_COLORS = {Status.OK: COLORS[0], Status.FAIL: COLORS[4], Status.UNKNOWN: "0.75"}


def window_of(ops: Sequence[Op], margin: float = 0.25) -> tuple[float, float]:
    """The time span of ``ops`` (unknown ones to when their client gave up), widened by
    ``margin`` of its length on each side."""
    start = min(op.invoke_s for op in ops)
    end = max(op.complete_s for op in ops)
    pad = margin * max(end - start, 1e-3)
    return start - pad, end + pad


def space_time(lab_run: LabRun, *, window: tuple[float, float] | None = None,
               witness: Sequence[Op] = (), clients: bool | None = None,
               ax: Axes | None = None) -> Axes:
    """The run's messages sent in ``window`` (default: the witness's span, else the whole run)
    as arrows between node lines; dropped messages end in a cross; crashes and pauses shade
    their node's line, network faults the whole height. With ``clients`` (default: when a
    witness is given) the clients' lines and their requests and answers are drawn too."""
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if window is None:
        window = window_of(witness) if witness else (0.0, lab_run.duration_s)
    clients = bool(witness) if clients is None else clients
    j = lab_run.journal
    nodes = list(lab_run.nodes)
    names = nodes + (sorted({str(n) for n in np.concatenate([j.src, j.dst])} - set(nodes),
                            key=lambda c: int(c[1:])) if clients else [])
    row = {name: i for i, name in enumerate(names)}
    ax = new_axes(ax, figsize=(8.0, 0.5 * len(names) + 1.5))
    start, end = window
    shown = (j.sent_s >= start) & (j.sent_s <= end) & np.isin(j.src, names) & np.isin(j.dst, names)
    typical = float(np.nanmedian(j.arrived_s - j.sent_s)) if len(j) else 0.0
    for fate, color, style in (("delivered", COLORS[0], "-"), ("cut", _DROPPED, "--"),
                               ("down", _DROPPED, "--"), ("lost", _DROPPED, ":")):
        picked = np.flatnonzero(shown & (j.fate == fate))
        if not len(picked):
            continue
        y0 = np.array([row[s] for s in j.src[picked]], dtype=float)
        y1 = np.array([row[d] for d in j.dst[picked]], dtype=float)
        t0 = j.sent_s[picked]
        if fate == "lost":  # it never arrived: draw half of a typical trip
            t1, y1 = t0 + typical / 2, (y0 + y1) / 2
        else:
            t1 = j.arrived_s[picked]
        ax.add_collection(LineCollection(np.stack([np.c_[t0, y0], np.c_[t1, y1]], axis=1),
                                         colors=color, linestyles=style, linewidths=0.8))
        ax.scatter(t1, y1, s=12 if fate == "delivered" else 24, color=color, zorder=3,
                   marker="o" if fate == "delivered" else "x")
    for fault in lab_run.nemesis.faults:
        fault_end = end if getattr(fault, "end_s", None) is None else fault.end_s
        if isinstance(fault, Crash | Pause):
            y = row[fault.node]
            ax.fill_between([fault.start_s, fault_end], y - 0.3, y + 0.3,
                            color=_DROPPED if isinstance(fault, Crash) else COLORS[4], alpha=0.25,
                            linewidth=0)
        elif not isinstance(fault, ClockSkew):
            ax.axvspan(fault.start_s, fault_end, **WINDOW)
    ax.hlines(range(len(names)), start, end, colors="0.6", linewidth=0.8, zorder=0)
    ax.set(xlim=window, ylim=(len(names) - 0.5, -0.5), xlabel="time (s)",
           yticks=range(len(names)), yticklabels=names)
    ax.grid(False)
    drawn = set(j.fate[shown])
    kinds = {type(f) for f in lab_run.nemesis.faults}
    handles = [Line2D([], [], color=COLORS[0], marker="o", markersize=4,
                      label="message delivered")] if "delivered" in drawn else []
    if drawn & {"lost", "cut", "down"}:
        handles.append(Line2D([], [], color=_DROPPED, linestyle="--", marker="x",
                              label="message dropped (lost, cut, receiver down)"))
    if Crash in kinds:
        handles.append(Patch(color=_DROPPED, alpha=0.25, label="node crashed"))
    if Pause in kinds:
        handles.append(Patch(color=COLORS[4], alpha=0.25, label="node paused"))
    if kinds - {Crash, Pause, ClockSkew}:
        handles.append(Patch(label="network fault", **WINDOW))
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return ax


def timeline(history: History, *, witness: Sequence[Op] = (),
             window: tuple[float, float] | None = None, ax: Axes | None = None) -> Axes:
    """Each client's operations as bars from invocation to answer (unknown ones to when the
    client gave up), coloured by how they ended; the ``witness`` outlined and labelled, the
    rest faded. The view spans ``window`` (default: the witness, else the whole history)."""
    from matplotlib.patches import Patch

    if window is None:
        window = window_of(witness) if witness else window_of(history.ops, margin=0.02)
    marked = {op.index for op in witness}
    clients = sorted({op.client for op in history})
    row = {c: i for i, c in enumerate(clients)}
    ax = new_axes(ax, figsize=(8.0, 0.35 * len(clients) + 1.5))
    start, end = window
    visible = [op for op in history if op.complete_s >= start and op.invoke_s <= end]
    label_all = len(visible) <= 40
    for op in visible:
        strong = not marked or op.index in marked
        ax.barh(row[op.client], op.complete_s - op.invoke_s, left=op.invoke_s, height=0.6,
                color=_STATUS_COLORS[op.status], alpha=1.0 if strong else 0.3,
                edgecolor=_DROPPED if op.index in marked else "none",
                linewidth=2 if op.index in marked else 0,
                hatch="//" if op.status is Status.UNKNOWN else None)
        if op.index in marked or (label_all and not marked):
            ax.annotate(op.describe(), (max(op.invoke_s, start), row[op.client] - 0.35),
                        fontsize=8, va="bottom")
    ax.set(xlim=window, ylim=(len(clients) - 0.5, -0.8), xlabel="time (s)", ylabel="client",
           yticks=range(len(clients)), yticklabels=[str(c) for c in clients])
    handles = [Patch(color=color, label=status.value) for status, color in _STATUS_COLORS.items()]
    if marked:
        handles.append(Patch(facecolor="none", edgecolor=_DROPPED, linewidth=2,
                             label="witness: cannot be ordered"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return ax
