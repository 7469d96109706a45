"""Tests of the shared-nothing scale-out pattern (patterns.architectural.shared_nothing_scale_out)
and its study (simulations.architectural.shared_nothing_scale_out): behaviour, error messages,
theory vs simulation."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest

from patterns.architectural.shared_nothing_scale_out import (
    ClusterConfig,
    PartitionedCluster,
    PartitionUnavailableError,
    ProductionPartitionedCluster,
    SQLitePartitions,
    stable_hash,
)
from simulations.architectural import shared_nothing_scale_out as study


def test_the_study_uses_the_pattern_class():
    assert study.PartitionedCluster is PartitionedCluster


def test_keys_have_one_owner_and_nothing_is_shared():
    cluster = PartitionedCluster(4, clock=lambda: 7.0)
    for k in range(400):
        cluster.put(k, k * k)
    assert sum(len(p) for p in cluster.partitions) == 400
    assert all(cluster.get(k) == k * k for k in range(400))
    owners = [cluster.node_for(k) for k in range(400)]
    assert all(k in cluster.partitions[o] for k, o in zip(range(400), owners, strict=True))
    assert min(len(p) for p in cluster.partitions) > 60  # the hash spreads the keys
    assert cluster.last_request_at == [7.0] * 4
    assert stable_hash("a") == stable_hash("a") and cluster.node_for("x") == cluster.node_for("x")


def test_multi_key_writes_are_counted_cross_partition_only_when_they_span_nodes():
    cluster = PartitionedCluster(4)
    same = [k for k in range(100) if cluster.node_for(k) == 0][:2]
    assert cluster.put_many(dict.fromkeys(same, 1)) == [0]
    assert cluster.cross_partition == 0
    other = next(k for k in range(100) if cluster.node_for(k) == 1)
    assert cluster.put_many({same[0]: 2, other: 2}) == [0, 1]
    assert cluster.cross_partition == 1


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match=r"ClusterConfig.nodes must be .*>= 1.*\(got 0\)"):
        ClusterConfig(nodes=0)
    with pytest.raises(ValueError, match=r"Scenario.cross_fraction"):
        study.Scenario(cross_fraction=1.5)
    with pytest.raises(ValueError, match=r"Scenario.work_s must be > 0 \(got -1\)"):
        study.Scenario(work_s=-1)


def test_a_failed_node_takes_down_only_its_partition():
    cluster = ProductionPartitionedCluster("t", ClusterConfig(nodes=4))
    for k in range(100):
        cluster.put(k, k)
    cluster.fail_node(2)
    served = failed = 0
    for k in range(100):
        try:
            assert cluster.get(k) == k
            served += 1
        except PartitionUnavailableError:
            failed += 1
            assert cluster.node_for(k) == 2
    assert failed == len(cluster.partitions[2]) and served == 100 - failed
    assert cluster.metrics.counts["unavailable"] == failed
    cluster.recover_node(2)
    assert all(cluster.get(k) == k for k in range(100))


def test_production_cluster_is_thread_safe():
    cluster = ProductionPartitionedCluster("t", ClusterConfig(nodes=4))

    def work(t):
        for k in range(500):
            cluster.put((t, k), k)
            cluster.put_many({(t, k, "a"): 1, (t, k, "b"): 2})

    threads = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=20)
    assert not any(th.is_alive() for th in threads)
    assert sum(len(p) for p in cluster.partitions) == 4 * 500 * 3
    assert sum(cluster.served) == cluster.metrics.counts["requests"] == 4 * 500 * 3


def test_sqlite_partitions_store_every_row(tmp_path):
    for shared in (True, False):
        folder = tmp_path / str(shared)
        folder.mkdir()
        store = SQLitePartitions(str(folder), 3, shared)
        for p in range(3):
            db = store.connect(p)
            for n in range(5):
                store.write(db, p, n)
            db.close()
        assert store.count() == 15


def test_usl_fit_recovers_known_parameters():
    nodes = np.arange(1, 33)
    x = study.usl_throughput(nodes, 100.0, 0.05, 0.002)
    fit = study.usl_fit(nodes, x)
    assert fit["lam"] == pytest.approx(100.0) and fit["sigma"] == pytest.approx(0.05)
    assert fit["kappa"] == pytest.approx(0.002)
    assert fit["peak"] == pytest.approx(np.sqrt(0.95 / 0.002))
    assert int(nodes[np.argmax(x)]) in (int(fit["peak"]), int(fit["peak"]) + 1)
    amdahl = study.usl_fit(nodes, study.amdahl_throughput(nodes, 50.0, 0.1), amdahl=True)
    assert amdahl["sigma"] == pytest.approx(0.1) and amdahl["peak"] == float("inf")


def test_epoch_simulation_matches_renewal_reward_and_implied_usl():
    # 40 s per point: about 40/0.011 ≈ 3,600 epochs; an epoch's length has cv about 0.1, so
    # the mean's relative standard error is ≈ 0.1/√3600 ≈ 0.2 %: 1.5 % is over 5 SEs.
    for n in (1, 4, 16, 32):
        sc = replace(study.SHARED_EVERYTHING, nodes=n, duration_s=40.0, warmup_s=1.0)
        measured = study.summary(study.simulate(sc))["throughput_rps"]
        assert measured == pytest.approx(study.epoch_throughput(sc), rel=0.015)
    # With near-constant work (cv 0.01) the USL parameters the mechanism implies are exact.
    flat = replace(study.SHARED_EVERYTHING, work_cv=0.01, duration_s=20.0)
    curve = study.scaling_curve(flat, [1, 2, 4, 8, 12, 16, 24, 32], replications=2)
    fit, implied = study.usl_fit(curve["nodes"], curve["mean"]), study.usl_parameters(flat)
    assert fit["sigma"] == pytest.approx(implied["sigma"], abs=0.005)
    assert fit["kappa"] == pytest.approx(implied["kappa"], rel=0.05)


def test_async_simulation_matches_mva():
    # Exponential times; 30 s at up to 3,200 requests/s; a 3 % tolerance is several standard
    # errors of a throughput estimated from thousands of completions (checked on 5 seeds).
    for sc in (replace(study.Scenario(), nodes=8, duration_s=30.0),
               replace(study.Scenario(), nodes=20, duration_s=30.0),
               replace(study.SHARED_NOTHING, nodes=32, duration_s=10.0)):
        measured = study.summary(study.simulate(sc))["throughput_rps"]
        assert measured == pytest.approx(study.mva_throughput(sc), rel=0.03)


def test_shared_nothing_scales_and_shared_everything_turns_down():
    nodes = [1, 4, 8, 16, 32]
    sn = study.scaling_curve(study.SHARED_NOTHING, nodes, replications=2)
    se = study.scaling_curve(study.SHARED_EVERYTHING, nodes, replications=2)
    assert sn["mean"][-1] > 0.95 * 32 * sn["mean"][0]
    assert se["mean"][-1] < se["mean"][3]
    fit = study.usl_fit(sn["nodes"], sn["mean"])
    assert abs(fit["kappa"]) < 1e-4 and fit["sigma"] < 0.01


def test_common_random_numbers_across_node_counts():
    a = study.simulate(replace(study.SHARED_NOTHING, nodes=2, duration_s=1.0))
    b = study.simulate(replace(study.SHARED_NOTHING, nodes=4, duration_s=1.0))
    first = a.ready[a.node == 0][:20]
    assert np.allclose(first, b.ready[b.node == 0][:20])
