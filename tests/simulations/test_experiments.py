"""Sweeps and replications: seeded, independent across replications, tidy rows."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import simpy

from simulations.clients import RequestSource
from simulations.distributions import Exponential
from simulations.experiments import aggregate, column, replicate, sweep, sweep_scenario
from simulations.metrics import confidence_interval, summarize
from simulations.servers import ServerPool
from simulations.workloads import PoissonArrivals


def _draw(rng: np.random.Generator, scale: float = 1.0) -> dict[str, float]:
    return {"x": float(rng.random()) * scale}


def test_replications_are_seeded_and_independent() -> None:
    first = replicate(_draw, seed=42, replications=4)
    again = replicate(_draw, seed=42, replications=4)
    other = replicate(_draw, seed=43, replications=4)
    xs = [row["x"] for row in first]
    assert xs == [row["x"] for row in again]
    assert len(set(xs)) == 4
    assert xs != [row["x"] for row in other]
    assert [row["replication"] for row in first] == [0, 1, 2, 3]


def test_sweep_rows_cover_the_grid_with_common_random_numbers() -> None:
    rows = sweep(_draw, {"scale": [1.0, 10.0]}, seed=1, replications=3, fixed={})
    assert len(rows) == 6
    assert column(rows, "scale").tolist() == [1.0] * 3 + [10.0] * 3
    x = column(rows, "x")
    assert np.allclose(x[3:], 10 * x[:3])  # replication r sees the same stream at every point


def test_aggregate_means_and_intervals() -> None:
    rows = sweep(_draw, {"scale": [1.0, 2.0]}, seed=5, replications=5)
    table = aggregate(rows, by=["scale"], metrics=["x"])
    assert [r["scale"] for r in table] == [1.0, 2.0]
    assert all(r["replications"] == 5 for r in table)
    mean, half = confidence_interval([r["x"] for r in rows if r["scale"] == 2.0])
    assert (table[1]["x"], table[1]["x_ci"]) == pytest.approx((mean, half))


def test_aggregate_leaves_out_nan_and_checks_names() -> None:
    rows = [{"a": 1, "m": 1.0}, {"a": 1, "m": math.nan}, {"a": 1, "m": 3.0}]
    assert aggregate(rows, ["a"], ["m"])[0]["m"] == 2.0
    assert aggregate([], ["a"], ["m"]) == []
    with pytest.raises(ValueError, match=r"column must be one of a, m \(got 'b'\)"):
        aggregate(rows, ["b"], ["m"])
    with pytest.raises(ValueError, match=r"replications must be an integer >= 1 \(got 0\)"):
        replicate(_draw, seed=1, replications=0)


def _mm1(rng: np.random.Generator, load: float) -> dict[str, float]:
    env = simpy.Environment()
    pool = ServerPool(env, 1, Exponential(1.0), rng)
    RequestSource(env, PoissonArrivals(load), pool.submit, rng, n=2_000)
    env.run()
    return summarize(pool.log.table(), servers=1)


def test_a_queue_sweep_gives_a_rising_latency_curve() -> None:
    rows = sweep(_mm1, {"load": [0.3, 0.6, 0.9]}, seed=3, replications=2)
    means = [r["latency_mean_s"] for r in aggregate(rows, ["load"], ["latency_mean_s"])]
    assert means[0] < means[1] < means[2]


@dataclass(frozen=True)
class _Coin:
    p: float = 0.5
    flips: int = 200
    seed: int = 3


def _flip(coin: _Coin, rng: np.random.Generator) -> np.ndarray:
    return rng.random(coin.flips) < coin.p


def test_sweep_scenario_varies_the_scenario_and_checks_its_settings() -> None:
    rows = sweep_scenario(_flip, lambda heads: {"share": heads.mean()}, _Coin(),
                          {"p": [0.1, 0.9]}, settings=("p", "flips"), metrics=["share"],
                          replications=4)
    assert [(r["p"], r["replications"]) for r in rows] == [(0.1, 4), (0.9, 4)]
    assert rows[0]["share"] < 0.2 < 0.8 < rows[1]["share"]
    again = sweep_scenario(_flip, lambda heads: {"share": heads.mean()}, _Coin(),
                           {"p": [0.1, 0.9]}, settings=("p",), metrics=["share"], replications=4)
    assert again == rows  # seeded by the scenario's own seed
    with pytest.raises(ValueError, match="sweep setting must be one of p, flips"):
        sweep_scenario(_flip, dict, _Coin(), {"seed": [1]}, settings=("p", "flips"),
                       metrics=["share"])
