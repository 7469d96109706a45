"""Parameter sweeps with independent replications, returned as a tidy table.

Like a lab notebook: for every setting of the knobs (offered load, timeout, cache size ...) run
the same experiment several times with different random seeds, write one row per run, then
average the rows of each setting and give a confidence interval. A table is a plain list of
dicts (one row per run, one key per column), which is easy to filter, print and plot.

Seeds: replication r of every sweep point gets child r of ``numpy.random.SeedSequence(seed)``,
so replications are independent of each other while each point sees the same random streams
(common random numbers, which makes differences between points less noisy).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from patterns.checks import check_choice, check_int
from simulations.metrics import confidence_interval

__all__ = ["Model", "aggregate", "column", "replicate", "sweep", "sweep_scenario"]

Model = Callable[..., Mapping[str, float]]
"""``model(rng, **params) -> {metric name: value}``: one simulation run."""


def replicate(
    model: Model, *, seed: int, replications: int, **params: Any
) -> list[dict[str, Any]]:
    """Run ``model(rng, **params)`` once per replication; one row per run.

    Each row holds the parameters, ``replication`` (0, 1, ...) and the model's metrics.
    """
    replications = check_int("replications", replications, 1)
    children = np.random.SeedSequence(seed).spawn(replications)
    rows = []
    for r, child in enumerate(children):
        metrics = model(np.random.default_rng(child), **params)
        rows.append({**params, "replication": r, **metrics})
    return rows


def sweep(
    model: Model,
    grid: Mapping[str, Iterable[Any]],
    *,
    seed: int,
    replications: int = 1,
    fixed: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Run ``model`` at every combination of the ``grid`` values (plus ``fixed`` parameters).

    ``sweep(mm1, {"load": [0.5, 0.9]}, seed=1, replications=5)`` gives 10 rows.
    """
    names = list(grid)
    rows = []
    for values in itertools.product(*(list(grid[name]) for name in names)):
        params = {**(fixed or {}), **dict(zip(names, values, strict=True))}
        rows.extend(replicate(model, seed=seed, replications=replications, **params))
    return rows


def column(rows: Sequence[Mapping[str, Any]], name: str) -> np.ndarray:
    """One column of a table as a numpy array."""
    if rows and name not in rows[0]:
        raise ValueError(f"column must be one of {', '.join(rows[0])} (got {name!r})")
    return np.array([row[name] for row in rows])


def aggregate(
    rows: Sequence[Mapping[str, Any]],
    by: Sequence[str],
    metrics: Sequence[str],
    level: float = 0.95,
) -> list[dict[str, Any]]:
    """Group rows by the ``by`` columns; for each metric give its mean and CI half-width.

    Each output row holds the ``by`` values, ``replications`` (runs averaged), and for every
    metric ``m`` the mean under ``m`` and the half-width of the ``level`` t-interval under
    ``m + "_ci"`` (NaN with one replication). NaN values (e.g. the p99 of a run that served
    nothing) are left out of that metric's mean. Groups keep their first-seen order.
    """
    if not rows:
        return []
    for name in [*by, *metrics]:
        if name not in rows[0]:
            raise ValueError(f"column must be one of {', '.join(rows[0])} (got {name!r})")
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[name] for name in by), []).append(row)
    table = []
    for key, members in groups.items():
        out: dict[str, Any] = {**dict(zip(by, key, strict=True)), "replications": len(members)}
        for m in metrics:
            values = [float(row[m]) for row in members]
            finite = [v for v in values if not math.isnan(v)]
            mean, half = confidence_interval(finite, level) if finite else (math.nan, math.nan)
            out[m], out[m + "_ci"] = mean, half
        table.append(out)
    return table


def sweep_scenario(
    simulate: Callable[..., Any],
    summary: Callable[[Any], Mapping[str, float]],
    base: Any,
    grid: Mapping[str, Iterable[Any]],
    *,
    settings: Iterable[str],
    metrics: Sequence[str],
    replications: int = 1,
) -> list[dict[str, Any]]:
    """A study's sweep: ``summary(simulate(base with the grid's settings, rng))`` at every
    combination of ``grid``, through `sweep` and `aggregate`, seeded by ``base.seed`` (so every
    setting sees the same traffic). ``settings`` are the Scenario fields a sweep may vary."""
    settings = list(settings)
    for name in grid:
        check_choice("sweep setting", name, settings)

    def model(rng: np.random.Generator, **values: Any) -> Mapping[str, float]:
        return summary(simulate(replace(base, **values), rng))

    rows = sweep(model, grid, seed=base.seed, replications=replications)
    return aggregate(rows, by=list(grid), metrics=list(metrics))
