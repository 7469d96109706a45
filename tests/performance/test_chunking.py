"""Tests of the Chunking pattern (patterns.performance.chunking) and its study
(simulations.performance.chunking): behaviour, error messages, theory vs simulation."""

from __future__ import annotations

import hashlib
import logging
import math
import zlib
from dataclasses import replace

import numpy as np
import pytest

from patterns.performance.chunking import (
    Chunk,
    ChunkedSender,
    MiB,
    PartPlan,
    ProductionChunkedSender,
    Reassembler,
    TransferConfig,
    split,
    sqrt_rule_chunk_size,
)
from patterns.resilience.retry_backoff_jitter import Backoff
from simulations.performance import chunking as study

DATA = bytes(range(256)) * 40 + b"tail"  # 10,244 bytes: the last 4 KiB chunk is short


def test_the_study_uses_the_pattern_class():
    assert study.ChunkedSender is ChunkedSender and study.Reassembler is Reassembler


def test_split_and_reassemble_round_trip_with_a_short_last_chunk():
    chunks = split(DATA, 4096)
    assert [len(c.payload) for c in chunks] == [4096, 4096, 2052]
    receiver = Reassembler(len(DATA), 4096)
    for chunk in reversed(chunks):  # order of arrival does not matter
        assert receiver.accept(chunk)
    assert receiver.complete and receiver.data() == DATA


def test_the_receiver_rejects_a_damaged_or_misplaced_chunk_and_resumes_from_missing():
    chunks = split(DATA, 4096)
    receiver = Reassembler(len(DATA), 4096)
    damaged = Chunk(1, 4096, b"\xff" + chunks[1].payload[1:], chunks[1].crc)
    assert not receiver.accept(damaged)
    assert not receiver.accept(Chunk(2, 0, chunks[2].payload, chunks[2].crc))  # wrong offset
    assert receiver.accept(chunks[0])
    assert receiver.missing() == [1, 2] and receiver.rejected == 2
    with pytest.raises(ValueError, match="missing 2 of 3"):
        receiver.data()
    report = ChunkedSender(DATA, 4096).send(receiver.accept, only=receiver.missing())
    assert report.attempts == 2 and receiver.data() == DATA


def test_the_sender_resends_only_the_chunks_that_failed():
    receiver = Reassembler(len(DATA), 1024)
    failures = {3: 2, 7: 1}  # chunk index -> times the wire damages it

    def wire(chunk: Chunk) -> bool:
        if failures.get(chunk.index):
            failures[chunk.index] -= 1
            return receiver.accept(Chunk(chunk.index, chunk.offset, chunk.payload[::-1], chunk.crc))
        return receiver.accept(chunk)

    report = ChunkedSender(DATA, 1024).send(wire)
    assert (report.attempts, report.failures) == (11 + 3, 3)
    assert report.bytes_sent == len(DATA) + 3 * 1024
    assert receiver.data() == DATA


def test_a_chunk_that_never_gets_through_stops_the_sender():
    with pytest.raises(RuntimeError, match="chunk 0 failed 3 times"):
        ChunkedSender(DATA, 4096).send(lambda chunk: False, max_attempts=3)


def test_the_chunk_checksums_agree_with_the_libraries_whole_file_digests():
    # hashlib fed chunk by chunk and zlib's running CRC over the chunks equal the one-shot values
    receiver = Reassembler(len(DATA), 1000)
    crc = 0
    for chunk in split(DATA, 1000):
        receiver.accept(chunk)
        crc = zlib.crc32(chunk.payload, crc)
    assert receiver.digest() == hashlib.sha256(DATA).hexdigest()
    assert crc == zlib.crc32(DATA)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: split(DATA, 0), "chunk_size must be an integer >= 1 (got 0)"),
    (lambda: sqrt_rule_chunk_size(1e6, 0.0), "error_rate must be"),
    (lambda: sqrt_rule_chunk_size(-1, 1e-9), "overhead_bytes must be"),
    (lambda: PartPlan(min_part=10, max_part=5), "PartPlan.max_part must be an integer >= 10"),
    (lambda: PartPlan().part_size(10**15, 8 * MiB), "size must be an integer"),
    (lambda: TransferConfig(chunk_size=0), "TransferConfig.chunk_size must be an integer"),
    (lambda: TransferConfig(max_attempts=0), "TransferConfig.max_attempts"),
    (lambda: study.Scenario(error_rate=1.0), "error_rate must be"),
    (lambda: study.Scenario(size_bytes=100, chunk_bytes=200), "chunk_bytes must be an integer"),
    (lambda: study.exact_optimum_bytes(0, 1e-9), "overhead must be > 0 (got 0)"),
])
def test_bad_settings_are_refused_with_a_message_naming_them(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


def test_the_part_plan_keeps_to_the_s3_limits():
    plan = PartPlan()
    assert plan.part_size(100 * MiB, 1 * MiB) == 5 * MiB  # below the 5 MiB minimum part
    assert plan.part_size(100 * MiB, 7.5 * MiB) == math.ceil(7.5 * MiB)
    assert plan.part_size(10**12, 8 * MiB) == 10**8  # 10,000 parts of 100 MB for 1 TB
    assert plan.part_size(10**12, 10 * 1024 * MiB) == 5 * 1024 * MiB  # capped at 5 GiB


def test_the_simulated_mean_matches_the_exact_expected_time():
    # n = 4000 transfers: the standard error of the mean is std/√n; 4 standard errors bound the
    # gap (a false alarm about 1 in 16,000 for a fixed seed that is then deterministic).
    for chunk in (1 * MiB, 64 * MiB, 256 * MiB):
        scenario = study.Scenario(chunk_bytes=chunk)
        times = study.simulate_times(scenario, 4000, np.random.default_rng(3))
        tolerance = 4 * times.std(ddof=1) / math.sqrt(len(times))
        assert abs(times.mean() - study.expected_time_s(scenario)) < tolerance


def test_the_pattern_on_a_noisy_wire_matches_the_expected_time():
    # Real bytes, byte flips at rate p, CRC detection: 300 transfers, 4 standard errors.
    scenario = study.Scenario(size_bytes=1 << 17, chunk_bytes=4096, overhead_s=1e-3,
                              bandwidth_Bps=10e6, error_rate=3e-5)
    times = np.array([study.simulate_transfer(scenario, np.random.default_rng(i)).elapsed_s
                      for i in range(300)])
    tolerance = 4 * times.std(ddof=1) / math.sqrt(len(times))
    assert abs(times.mean() - study.expected_time_s(scenario)) < tolerance
    assert study.simulate_transfer(scenario).receiver.data() is not None


def test_the_numeric_optimum_the_exact_optimum_and_the_square_root_rule_agree():
    # With S ≫ s*, the best integer chunk is the continuous optimum up to the rounding of the
    # last chunk (within 2 %); the rule √(h/p) exceeds it by about h/(2s*) relative.
    scenario = study.Scenario(size_bytes=10**11, overhead_s=0.01, error_rate=1e-9)
    h = study.overhead_bytes(scenario)
    exact = study.exact_optimum_bytes(h, scenario.error_rate)
    rule = sqrt_rule_chunk_size(h, scenario.error_rate)
    numeric = study.numeric_optimum_bytes(scenario)
    assert abs(numeric / exact - 1) < 0.02
    assert 0 < rule / exact - 1 < h / exact
    # the minimum is flat: the rule's chunk costs under 0.1 % more time than the best one
    at_rule = study.expected_time_s(replace(scenario, chunk_bytes=round(rule)))
    assert at_rule / study.expected_time_s(replace(scenario, chunk_bytes=numeric)) < 1.001


def test_pipelining_shrinks_the_overhead_and_the_best_chunk_by_the_square_root():
    base = study.Scenario()
    four = replace(base, in_flight=4)
    ratio = (study.exact_optimum_bytes(study.overhead_bytes(base), base.error_rate)
             / study.exact_optimum_bytes(study.overhead_bytes(four), four.error_rate))
    assert 1.9 < ratio < 2.1  # √4, up to the h ≪ s approximation
    assert study.expected_time_s(four) < study.expected_time_s(base)


def test_without_checksums_damage_goes_through_unnoticed():
    scenario = study.Scenario(size_bytes=1 << 16, chunk_bytes=4096, error_rate=1e-4)
    rng_data = np.random.default_rng(5)
    run = study.simulate_transfer(scenario, rng_data, checksums=False)
    original = np.random.default_rng(5).integers(0, 256, 1 << 16, dtype=np.uint8).tobytes()
    assert run.attempt_ok.all() and run.receiver.data() != original


def test_backoff_waits_out_an_error_burst_instead_of_spending_attempts_in_it():
    scenario = study.Scenario(size_bytes=1 << 18, chunk_bytes=8192, overhead_s=1e-3,
                              bandwidth_Bps=10e6, error_rate=1e-7)
    bursts = (study.Burst(0.005, 0.2, 1e-2),)
    plain = study.simulate_transfer(scenario, np.random.default_rng(2), bursts)
    backed = study.simulate_transfer(scenario, np.random.default_rng(2), bursts,
                                     backoff=Backoff(base_s=0.02, cap_s=0.5))
    assert (~backed.attempt_ok).sum() < (~plain.attempt_ok).sum() / 3


def test_the_production_sender_counts_logs_and_shares_the_work_between_threads(caplog):
    receiver = Reassembler(len(DATA), 512)
    flaky = {5}

    def wire(chunk: Chunk) -> bool:
        if chunk.index in flaky:
            flaky.discard(chunk.index)
            return False
        return receiver.accept(chunk)

    sender = ProductionChunkedSender(DATA, TransferConfig(chunk_size=512, max_attempts=3))
    with caplog.at_level(logging.INFO, logger="patterns.performance.chunking"):
        sender.send_parallel(wire, workers=4)
    assert receiver.data() == DATA
    assert sender.metrics.counts == {"attempts": 22, "bytes": len(DATA) + 512, "resends": 1}
    assert sender.metrics.observed("chunk_seconds") == 22
    assert "chunk 5 rejected" in caplog.text


def test_a_real_socket_transfer_with_injected_damage_arrives_intact():
    data = np.random.default_rng(0).integers(0, 256, 1 << 20, dtype=np.uint8).tobytes()
    seconds, attempts, intact = study.socket_transfer(data, 64 * 1024, error_rate=2e-6, seed=1)
    assert intact and attempts > 16 and seconds > 0


def test_the_link_fit_recovers_overhead_and_bandwidth():
    attempts = np.array([1000, 250, 64, 16])
    sent = np.full(4, 1e7)
    seconds = attempts * 5e-5 + sent / 2e9
    h, bandwidth = study.fit_link(attempts, sent, seconds)
    assert h == pytest.approx(5e-5) and bandwidth == pytest.approx(2e9)


def test_with_no_errors_the_expected_time_is_overhead_plus_bytes_over_bandwidth():
    # 1 GiB in 8 MiB chunks: 128 round trips of 50 ms plus 2^30 bytes at 100 MB/s, exactly
    scenario = study.Scenario(error_rate=0.0)
    assert study.expected_time_s(scenario) == pytest.approx(128 * 0.05 + 2**30 / 100e6)
    assert study.simulate_times(scenario, 5).tolist() == [study.expected_time_s(scenario)] * 5
