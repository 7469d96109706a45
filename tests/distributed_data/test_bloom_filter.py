"""The Bloom-filter lesson's model: the filters, the production filter and the on-disk store,
agreement with rbloom, and the study's simulation against the closed forms."""

from __future__ import annotations

import hashlib
import logging
import math
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import rbloom
from concurrently import run_concurrently
from hypothesis import given, settings
from hypothesis import strategies as st

from patterns.caching.eviction_policies import LRUCache
from patterns.distributed_data.bloom_filter import (
    BlockedBloomFilter,
    BloomConfig,
    BloomFilter,
    LSMStore,
    ProductionBloomFilter,
    SortedRun,
    add_hashes,
    contains_hashes,
    hash_matrix,
    key_bytes,
    key_hashes,
    optimal_hashes,
)
from simulations.distributed_data import bloom_filter as study
from simulations.experiments import replicate

# ---------------------------------------------------------------- the Level 2 filter


def test_added_keys_are_always_found_and_absent_ones_mostly_not() -> None:
    bloom = BloomFilter.for_keys(1_000, bits_per_key=10)
    assert (bloom.m, bloom.k) == (10_000, 7)
    for i in range(1_000):
        bloom.add(f"user:{i}")
    assert all(f"user:{i}" in bloom for i in range(1_000)), "a Bloom filter has no false negatives"
    false_positives = sum(f"ghost:{i}" in bloom for i in range(5_000))
    assert 0 < false_positives < 5_000 * 0.03  # about 0.8 %: 41 expected
    assert bloom.n == 1_000 and 0.45 < bloom.fill_ratio() < 0.55  # half the bits at the best k


def test_positions_are_double_hashing_of_one_blake2b_digest() -> None:
    bloom = BloomFilter(m=1_009, k=5)
    digest = hashlib.blake2b(b"user:42", digest_size=16).digest()
    h1, h2 = int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little")
    assert key_hashes("user:42") == (h1, h2)
    assert bloom.positions("user:42") == [(h1 + i * h2) % 1_009 for i in range(5)]
    assert key_bytes(42) == key_bytes("42") == b"42" and key_bytes(b"\x00") == b"\x00"
    with pytest.raises(ValueError, match="key must be str, bytes or int"):
        key_bytes(4.2)


def test_hashes_do_not_depend_on_the_process() -> None:
    """Python's hash() of a str is salted per process; the filter's hash is not."""
    code = ("import hashlib; d = hashlib.blake2b(b'user:42', digest_size=16).digest();"
            "print(int.from_bytes(d[:8], 'little'), int.from_bytes(d[8:], 'little'),"
            " hash('user:42'))")
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run([sys.executable, "-S", "-c", code], env=env,
                                capture_output=True, text=True, check=True)
        h1, h2, salted = result.stdout.split()
        outputs.append(((int(h1), int(h2)), salted))
    (ours_1, salted_1), (ours_2, salted_2) = outputs
    assert ours_1 == ours_2 == key_hashes("user:42")
    assert salted_1 != salted_2


@pytest.mark.parametrize("cls", [BloomFilter, BlockedBloomFilter])
def test_batch_path_sets_the_same_bits_and_answers_the_same(cls) -> None:
    keys, others = [f"k{i}" for i in range(600)], [f"x{i}" for i in range(3_000)]
    one_by_one, batch = cls(6_000, 4), cls(6_000, 4)
    for key in keys:
        one_by_one.add(key)
    add_hashes(batch, hash_matrix(keys))
    assert batch.array == one_by_one.array and batch.n == one_by_one.n == 600
    expected = np.array([key in one_by_one for key in others])
    assert (contains_hashes(batch, hash_matrix(others)) == expected).all()
    assert expected.any() and not expected.all()


def test_blocked_filter_keeps_a_keys_bits_in_one_cache_line() -> None:
    bloom = BlockedBloomFilter(10_000, 7)
    assert bloom.m == 10_240 and bloom.blocks == 20  # rounded up to whole 512-bit blocks
    for i in range(200):
        assert len({p // 512 for p in bloom.positions(f"k{i}")}) == 1


@settings(max_examples=25, deadline=None)
@given(keys=st.sets(st.text(max_size=8), min_size=1, max_size=40),
       m=st.integers(8, 2_000), k=st.integers(1, 8))
def test_no_false_negatives_for_any_keys_and_shape(keys, m, k) -> None:
    bloom = BloomFilter(m, k)
    for key in keys:
        bloom.add(key)
    assert all(key in bloom for key in keys)


# ---------------------------------------------------------------- the production filter


@pytest.mark.parametrize(("field", "value", "allowed"), [
    ("expected_items", 0, "integer >= 1"),
    ("expected_items", 2.5, "integer >= 1"),
    ("false_positive_rate", 0, "in (0, 1)"),
    ("false_positive_rate", 1, "in (0, 1)"),
    ("false_positive_rate", 5, "in (0, 1)"),
    ("bits_per_key", -1.0, "in (0, 64]"),
    ("hashes", 0, "integer in [1, 32]"),
])
def test_config_errors_name_field_value_and_allowed_range(field, value, allowed) -> None:
    settings_ = {"expected_items": 100, field: value}
    with pytest.raises(ValueError) as error:
        BloomConfig(**settings_)
    message = str(error.value)
    assert f"BloomConfig.{field}" in message and repr(value) in message and allowed in message


def test_config_sizes_the_filter_from_the_target_rate() -> None:
    config = BloomConfig(1_000_000, false_positive_rate=0.01)
    assert config.m == math.ceil(-1_000_000 * math.log(0.01) / math.log(2) ** 2) == 9_585_059
    assert config.k == 7
    assert BloomConfig(1_000, bits_per_key=10).m == 10_000
    assert BloomConfig(1_000, bits_per_key=10, hashes=3).k == 3


def test_threads_adding_at_once_lose_no_key() -> None:
    bloom = ProductionBloomFilter(BloomConfig(16_000, 0.01))

    def writer(t: int) -> None:
        for i in range(2_000):
            bloom.add(f"t{t}:{i}")

    run_concurrently(writer, range(8), timeout_s=30)
    keys = [f"t{t}:{i}" for t in range(8) for i in range(2_000)]
    assert bloom.n == 16_000 and bloom.contains_many(keys).all()
    assert bloom.metrics.counts["adds"] == 16_000


def test_serialisation_round_trip_and_corruption_is_refused() -> None:
    bloom = ProductionBloomFilter(BloomConfig(500, 0.02), "users")
    bloom.add_many(f"u{i}" for i in range(500))
    data = bloom.to_bytes()
    again = ProductionBloomFilter.from_bytes(data, "users")
    assert (again.m, again.k, again.n, again.array) == (bloom.m, bloom.k, 500, bloom.array)
    assert again.contains_many([f"u{i}" for i in range(500)]).all()
    flipped = bytearray(data)
    flipped[40] ^= 0x10
    with pytest.raises(ValueError, match="corrupt: CRC-32"):
        ProductionBloomFilter.from_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="must start with"):
        ProductionBloomFilter.from_bytes(b"nope" + data[4:])


def test_union_holds_both_sets_and_needs_the_same_shape() -> None:
    config = BloomConfig(1_000, 0.01)
    left, right = ProductionBloomFilter(config, "a"), ProductionBloomFilter(config, "b")
    left.add_many(f"a{i}" for i in range(300))
    right.add_many(f"b{i}" for i in range(300))
    both = left.union(right)
    assert both.contains_many([f"a{i}" for i in range(300)] + [f"b{i}" for i in range(300)]).all()
    assert both.array == bytearray(x | y for x, y in zip(left.array, right.array, strict=True))
    with pytest.raises(ValueError, match="same shape"):
        left.union(ProductionBloomFilter(BloomConfig(2_000, 0.01)))


def test_overfilling_warns_once_and_the_estimate_shows_the_damage(caplog) -> None:
    bloom = ProductionBloomFilter(BloomConfig(1_000, 0.01), "sessions")
    with caplog.at_level(logging.WARNING, logger="patterns.distributed_data.bloom_filter"):
        bloom.add_many(f"s{i}" for i in range(1_000))
        assert not caplog.records and bloom.estimated_fpr < 0.015
        bloom.add_many(f"s{i}" for i in range(1_000, 4_000))
        bloom.add("one more")
    assert len(caplog.records) == 1 and "sized for 1000" in caplog.text
    assert bloom.metrics.counts["over_capacity"] == 1
    measured = bloom.contains_many([f"ghost{i}" for i in range(20_000)]).mean()
    assert bloom.estimated_fpr > 0.3 and abs(measured - bloom.estimated_fpr) < 0.03
    scrape = bloom.metrics.exposition()
    assert "bloom_filter_fill_ratio" in scrape and "bloom_filter_batch_seconds_count" in scrape


# ---------------------------------------------------------------- the store on disk


def _keys(rng: np.random.Generator, count: int) -> list[str]:
    return [f"user:{n:010x}" for n in rng.choice(2**40, count, replace=False)]


def test_store_reads_far_fewer_blocks_with_filters_and_answers_the_same(tmp_path) -> None:
    keys = _keys(np.random.default_rng(3), 4 * 400 + 300)
    stored, ghosts = keys[:1_600], keys[1_600:]
    answers, counts = {}, {}
    for bits in (None, 10.0):
        folder = tmp_path / str(bits)
        folder.mkdir()
        store = LSMStore(folder, bits_per_key=bits, block_size=1_024)
        for r in range(4):
            store.flush({k: k.encode()[::-1] for k in stored[r * 400:(r + 1) * 400]})
        answers[bits] = [store.get(k) for k in stored[::8] + ghosts]
        counts[bits] = store.metrics.counts
        store.close()
    assert answers[None] == answers[10.0]
    assert answers[None][:200] == [k.encode()[::-1] for k in stored[::8]]
    assert all(a is None for a in answers[None][200:])
    assert counts[10.0]["block_reads"] < counts[None]["block_reads"] / 3
    assert counts[10.0]["found"] == counts[None]["found"] == 200
    assert counts[10.0]["filter_skips"] > 0 and "filter_skips" not in counts[None]


def test_newest_run_wins_and_out_of_range_keys_cost_nothing(tmp_path) -> None:
    store = LSMStore(tmp_path, bits_per_key=None)
    store.flush({"b": b"old", "c": b"old"})
    store.flush({"b": b"new"})
    assert store.get("b") == b"new" and store.get("c") == b"old"
    before = store.metrics.counts["block_reads"]
    assert store.get("a") is None and store.get("z") is None  # outside every run's key range
    assert store.metrics.counts["block_reads"] == before
    store.close()


def test_a_corrupt_filter_is_dropped_and_reads_stay_correct(tmp_path, caplog) -> None:
    keys = _keys(np.random.default_rng(4), 500)
    run = SortedRun.write(tmp_path / "run.sst", {k: b"v" for k in keys}, bits_per_key=10)
    run.close()
    raw = bytearray((tmp_path / "run.sst").read_bytes())
    raw[-60] ^= 0xFF  # a byte inside the filter block, just before the footer
    (tmp_path / "run.sst").write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING, logger="patterns.distributed_data.bloom_filter"):
        reopened = SortedRun.open(tmp_path / "run.sst")
    assert reopened.bloom is None and "filter dropped" in caplog.text
    store = LSMStore(tmp_path / "unused", bits_per_key=10)
    store.runs.append(reopened)
    assert all(store.get(k) == b"v" for k in keys[:50])
    store.close()


def test_block_cache_answers_repeated_blocks_from_memory(tmp_path) -> None:
    keys = _keys(np.random.default_rng(5), 800)
    store = LSMStore(tmp_path, bits_per_key=10, block_size=512, block_cache=LRUCache(64))
    store.flush({k: b"v" for k in keys})
    for _ in range(5):
        assert store.get(keys[7]) == b"v"
    counts = store.metrics.counts
    assert counts["block_reads"] == 1 and counts["cache_hits"] == 4
    store.close()


# ---------------------------------------------------------------- agreement with rbloom


def _blake(key) -> int:
    """rbloom's hash_func: 128 signed bits of BLAKE2b, so results do not depend on the process."""
    return int.from_bytes(hashlib.blake2b(key_bytes(key), digest_size=16).digest(), "little",
                          signed=True)


def test_hand_made_filter_agrees_with_rbloom_on_the_false_positive_rate() -> None:
    n, queries = 10_000, 50_000
    theirs = rbloom.Bloom(n, 0.01, _blake)
    m = theirs.size_in_bits
    k = int.from_bytes(theirs.save_bytes()[:8], "little")  # save_bytes: k (u64 LE), then bits
    assert k == int(-math.log(0.01) / math.log(2)) == 6  # rbloom truncates k = -ln p / ln 2
    ours = BloomFilter(m, k)
    stored, absent = [f"user:{i}" for i in range(n)], [f"ghost:{i}" for i in range(queries)]
    theirs.update(stored)
    add_hashes(ours, hash_matrix(stored))
    assert all(key in theirs for key in stored) and contains_hashes(ours, hash_matrix(stored)).all()
    f_theirs = sum(key in theirs for key in absent) / queries
    f_ours = float(contains_hashes(ours, hash_matrix(absent)).mean())
    f_theory = study.false_positive_rate(m / n, k)
    # Each rate is a mean of `queries` Bernoulli(f) trials given its bit array (the bit arrays'
    # own variation adds about 1 % relative here, negligible): sd = sqrt(f(1 - f)/q) ≈ 4.5e-4.
    # The two filters hash differently, so they agree statistically: within 4 sd of their
    # difference, sqrt(2)·sd, and each within 4 sd of the closed form.
    sd = math.sqrt(f_theory * (1 - f_theory) / queries)
    assert abs(f_ours - f_theirs) < 4 * math.sqrt(2) * sd
    assert abs(f_ours - f_theory) < 4 * sd and abs(f_theirs - f_theory) < 4 * sd


# ---------------------------------------------------------------- the closed forms


def test_closed_forms() -> None:
    assert study.best_hashes(10) == pytest.approx(6.931, abs=1e-3)
    assert study.best_false_positive_rate(10) == pytest.approx(0.6185**10, rel=1e-3)
    assert study.false_positive_rate(10, 7) == pytest.approx(0.00819, abs=1e-5)
    assert study.bits_per_key_for(0.01) == pytest.approx(9.585, abs=1e-3)
    assert min(range(1, 20), key=lambda k: study.false_positive_rate(10, k)) == 7
    assert study.disk_reads_per_read(8, 1.0, 0.5) == 0.5 * 8 + 0.5 * 4.5
    assert study.disk_reads_per_read(8, 0.0, 1.0) == 0.0
    assert study.disk_utilisation(2000, 0.5, 0.00025, 4) == pytest.approx(0.0625)
    # a blocked filter is worse than a standard one at the same bits, more so with more bits
    ratio_8 = study.blocked_false_positive_rate(8, 6) / study.false_positive_rate(8, 6)
    ratio_16 = study.blocked_false_positive_rate(16, 11) / study.false_positive_rate(16, 11)
    assert 1.0 < ratio_8 < ratio_16
    with pytest.raises(ValueError, match="bits_per_key must be > 0"):
        study.false_positive_rate(0, 3)
    with pytest.raises(ValueError, match=r"target_fpr must be in \(0, 1\)"):
        study.bits_per_key_for(1.0)


def test_measured_false_positive_rate_matches_the_closed_form() -> None:
    # 10 independent filters of 2048 keys, 20 000 absent queries each, at each setting. Per
    # filter the relative sd of the rate is sqrt(1/(f·q)) from the queries (7.8 % at 10 bits)
    # and about 3 % from the filter's own fill; the mean of 10 has about 2.6 %, so 4 sd is
    # about 11 %: the tolerance below is the t-interval half-width of the replications (about
    # 2 sd) times two, plus 1 % for the large-m approximation of the formula.
    for bits, layout, formula in [(4.0, "standard", study.false_positive_rate),
                                  (10.0, "standard", study.false_positive_rate),
                                  (10.0, "blocked", study.blocked_false_positive_rate)]:
        k = optimal_hashes(bits)
        rows = replicate(study.measure_fpr, seed=11, replications=10, bits_per_key=bits,
                         layout=layout)
        rates = np.array([row["fpr"] for row in rows])
        half = 2.262 * rates.std(ddof=1) / math.sqrt(len(rates))  # t(0.975, 9 df)
        expected = formula(bits, k)
        assert abs(rates.mean() - expected) <= 2 * half + 0.01 * expected, (bits, layout)
        lines = np.mean([row["lines_per_query"] for row in rows])
        probes = np.mean([row["probes_per_query"] for row in rows])
        if layout == "blocked":
            assert lines == 1.0
        else:  # an absent key stops at its first 0 bit: (1 - q^k)/(1 - q) probes, q the fill
            q = np.mean([row["fill_ratio"] for row in rows])
            assert probes == pytest.approx((1 - q**k) / (1 - q), rel=0.03)
            assert 1.0 < lines <= probes


# ---------------------------------------------------------------- the SimPy study


@pytest.fixture(scope="module")
def runs() -> dict[float, study.Run]:
    base = study.Scenario(reads=2_000)
    return {bits: study.simulate(replace(base, bits_per_key=bits)) for bits in (0.0, 4.0, 10.0)}


def test_simulated_block_reads_match_the_closed_form(runs) -> None:
    # Given the filters, a read's block reads are binomial (`disk_reads_sd` gives their sd);
    # the mean of 2000 reads is within 4 of its sd (`theory_reads_sd`) of the closed form, plus
    # 3 % for the rate the filters of one seed realise (a few per cent off the formula's).
    for bits, run in runs.items():
        s = run.scenario
        expected, sd = study.theory_reads(s), study.theory_reads_sd(s)
        numbers = study.summary(run)
        assert abs(numbers["reads_per_lookup"] - expected) <= 4 * sd + 0.03 * expected, bits
        if bits:
            assert numbers["measured_fpr"] == pytest.approx(study.theory_fpr(s), rel=0.25)
    assert study.disk_reads_sd(8, 0.0, 1.0) == 0.0  # every absent read: exactly no block read
    assert study.disk_reads_sd(8, 1.0, 1.0) == 0.0  # no filter: exactly 8
    assert study.disk_reads_sd(8, 1.0, 0.0) == pytest.approx(math.sqrt((64 - 1) / 12))  # uniform
    absent = runs[0.0].holder < 0
    assert (runs[0.0].block_reads[absent] == 8).all()  # no filter: every run, every time
    present = ~absent
    assert (runs[0.0].block_reads[present] == runs[0.0].holder[present] + 1).all()


def test_filters_cut_disk_load_and_latency(runs) -> None:
    none, some, good = (study.summary(runs[b]) for b in (0.0, 4.0, 10.0))
    assert none["reads_per_lookup"] > some["reads_per_lookup"] > good["reads_per_lookup"]
    assert none["p99_latency_ms"] > 3 * good["p99_latency_ms"]
    assert none["disk_utilisation"] > 0.6 > 0.1 > good["disk_utilisation"]
    # busy channels = λ · reads per read · E[S] / c, within the sampling error of the read times
    s = runs[0.0].scenario
    expected = study.disk_utilisation(s.arrival_rate, none["reads_per_lookup"], s.disk.mean,
                                      s.disk_queue_depth)
    assert none["disk_utilisation"] == pytest.approx(expected, rel=0.1)


def test_filter_outage_sends_every_read_to_disk_while_it_lasts() -> None:
    base = study.Scenario(reads=3_000, filters_offline=(0.5, 1.0))
    run = study.simulate(base)
    during = (run.reads.arrival >= 0.55) & (run.reads.arrival < 0.95) & (run.holder < 0)
    after = (run.reads.arrival >= 1.2) & (run.holder < 0)
    assert run.block_reads[during].mean() > 7.5 and run.block_reads[after].mean() < 0.3
    series = study.timeline(run)
    assert series["block_reads_per_s"].max() > 4 * np.nanmin(series["block_reads_per_s"][:2])


def test_same_seed_same_run_and_sweep_rows() -> None:
    base = study.Scenario(reads=400)
    a, b = study.simulate(base), study.simulate(base)
    assert np.array_equal(a.reads.latency, b.reads.latency)
    rows = study.sweep(base, bits_per_key=[2.0, 8.0], absent_fraction=[0.5])
    assert [r["bits_per_key"] for r in rows] == [2.0, 8.0]
    assert rows[0]["reads_per_lookup"] > rows[1]["reads_per_lookup"]
    with pytest.raises(ValueError, match="sweep setting must be one of"):
        study.sweep(base, disk=[1])


@pytest.mark.parametrize(("field", "value"), [("runs", 0), ("bits_per_key", -1.0),
                                              ("absent_fraction", 1.5), ("layout", "fancy"),
                                              ("filters_offline", (2.0, 1.0))])
def test_scenario_rejects_bad_settings(field, value) -> None:
    with pytest.raises(ValueError, match=field.split("_offline")[0]):
        study.Scenario(**{field: value})
