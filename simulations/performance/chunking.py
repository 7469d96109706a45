"""The Chunking study: transfer time against chunk size, with per-chunk overhead and byte errors.

Picture the house move again with a stopwatch: every box costs a walk to the van (h seconds),
carrying it costs its weight (s / bandwidth), and a box with a single broken item in it is
carried again. Small boxes waste walks; big boxes are carried twice too often.

The model: a payload of S bytes in chunks of s bytes; each attempt at a chunk takes
h + s/B seconds and fails when any of its bytes is damaged, independently with probability p
per byte, so an attempt succeeds with probability q = (1 − p)^s and a chunk takes a geometric
number of attempts (mean 1/q). ``expected_time_s`` is the exact mean, ``exact_optimum_bytes``
its continuous minimiser, ``numeric_optimum_bytes`` the best integer chunk size, and
``sqrt_rule_chunk_size`` (from the pattern) the approximation s* ≈ √(h·B/p).
``simulate_times`` draws whole transfers fast (negative-binomial attempt counts);
``simulate_transfer`` runs the pattern itself, real bytes and CRCs, on a virtual clock.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from patterns.checks import check_int, check_non_negative, check_positive, check_range
from patterns.performance.chunking import (
    Chunk,
    ChunkedSender,
    Reassembler,
    chunk_count,
    sqrt_rule_chunk_size,
)
from patterns.resilience.retry_backoff_jitter import Backoff
from simulations import plots
from simulations.metrics import confidence_interval, rate_over_time

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["Burst", "Scenario", "exact_optimum_bytes", "expected_time_s", "numeric_optimum_bytes",
           "overhead_bytes", "plot_dashboard", "plot_time_vs_chunk", "simulate_times",
           "simulate_transfer", "sqrt_rule_chunk_size", "sweep_chunk_sizes"]


@dataclass(frozen=True)
class Scenario:
    """One transfer: `size_bytes` in chunks of `chunk_bytes`, `overhead_s` per attempt (a round
    trip and a header), `bandwidth_Bps` bytes per second, `error_rate` per byte, and `in_flight`
    chunks pipelined (their round trips overlap, so each attempt pays overhead_s / in_flight)."""

    size_bytes: int = 1 << 30
    chunk_bytes: int = 8 << 20
    overhead_s: float = 0.05
    bandwidth_Bps: float = 100e6
    error_rate: float = 1e-9
    in_flight: int = 1

    def __post_init__(self) -> None:
        check_int("size_bytes", self.size_bytes, 1)
        check_int("chunk_bytes", self.chunk_bytes, 1, self.size_bytes)
        check_non_negative("overhead_s", self.overhead_s)
        check_positive("bandwidth_Bps", self.bandwidth_Bps)
        check_range("error_rate", self.error_rate, 0.0, 1.0, high_open=True)
        check_int("in_flight", self.in_flight, 1, 1024)


def overhead_bytes(scenario: Scenario) -> float:
    """h in byte-times: the bytes the link could have carried during one attempt's overhead."""
    return scenario.overhead_s * scenario.bandwidth_Bps / scenario.in_flight


def _attempt_s(scenario: Scenario, length: np.ndarray | int) -> np.ndarray:
    return scenario.overhead_s / scenario.in_flight + np.asarray(length) / scenario.bandwidth_Bps


def _pieces(scenario: Scenario) -> tuple[int, int]:
    """(number of full chunks, length of the last chunk)."""
    n = chunk_count(scenario.size_bytes, scenario.chunk_bytes)
    return n - 1, scenario.size_bytes - (n - 1) * scenario.chunk_bytes


def expected_time_s(scenario: Scenario) -> float:
    """E[T] = (n−1)·(h + s/B)/(1−p)^s + (h + r/B)/(1−p)^r, with r the last chunk's length.

    Assumes independent byte errors, every damaged chunk detected (CRC) and resent whole,
    chunks sent one after another (or `in_flight` at once with only the overhead overlapped).
    """
    full, last = _pieces(scenario)
    log_q = math.log1p(-scenario.error_rate)  # ln(1 − p), exact for tiny p
    return float(full * _attempt_s(scenario, scenario.chunk_bytes)
                 * math.exp(-scenario.chunk_bytes * log_q)
                 + _attempt_s(scenario, last) * math.exp(-last * log_q))


def exact_optimum_bytes(overhead: float, error_rate: float) -> float:
    """The s minimising (h + s)/s · (1−p)^(−s), the time per byte of a long transfer.

    Setting its log-derivative to zero gives s(h + s) = h/λ with λ = −ln(1 − p), so
    s = (−h + √(h² + 4h/λ)) / 2; for h ≪ s this is √(h/λ) ≈ √(h/p).
    """
    h = check_positive("overhead", overhead)
    lam = -math.log1p(-check_range("error_rate", error_rate, 0.0, 1.0, low_open=True,
                                   high_open=True))
    return (-h + math.sqrt(h * h + 4 * h / lam)) / 2


def numeric_optimum_bytes(scenario: Scenario) -> int:
    """The integer chunk size with the smallest `expected_time_s`: a log-spaced scan, then a
    scan of every size between the two grid points around the best."""
    grid = np.unique(np.geomspace(1, scenario.size_bytes, 400).astype(int))
    times = [expected_time_s(replace(scenario, chunk_bytes=int(s))) for s in grid]
    best = int(np.argmin(times))
    low, high = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    fine = np.unique(np.linspace(low, high, 401).astype(int))
    fine_times = [expected_time_s(replace(scenario, chunk_bytes=int(s))) for s in fine]
    return int(fine[int(np.argmin(fine_times))])


def simulate_times(scenario: Scenario, replications: int = 1000,
                   rng: np.random.Generator | None = None) -> np.ndarray:
    """Seconds per transfer for `replications` independent transfers: the failed attempts of the
    full chunks are negative-binomial (a sum of geometrics), those of the last chunk geometric."""
    rng = np.random.default_rng(0) if rng is None else rng
    check_int("replications", replications, 1)
    full, last = _pieces(scenario)
    q_full = (1 - scenario.error_rate) ** scenario.chunk_bytes
    q_last = (1 - scenario.error_rate) ** last
    full_attempts = full + (rng.negative_binomial(full, q_full, replications) if full else 0)
    last_attempts = rng.geometric(q_last, replications)
    return (full_attempts * _attempt_s(scenario, scenario.chunk_bytes)
            + last_attempts * _attempt_s(scenario, last))


def sweep_chunk_sizes(scenario: Scenario, chunk_sizes: np.ndarray, replications: int = 200,
                      seed: int = 1) -> dict[str, np.ndarray]:
    """Theory and simulated mean (with the half-width of its 95 % interval) of the transfer time
    at each chunk size,
    the same seed at every size (common random numbers)."""
    theory, mean, half = [], [], []
    for s in chunk_sizes:
        point = replace(scenario, chunk_bytes=int(s))
        m, h = confidence_interval(simulate_times(point, replications, np.random.default_rng(seed)))
        theory.append(expected_time_s(point))
        mean.append(m)
        half.append(h)
    return {"chunk_bytes": np.asarray(chunk_sizes), "theory": np.array(theory),
            "mean": np.array(mean), "half_width": np.array(half)}


@dataclass(frozen=True)
class Burst:
    """A stretch of virtual time in which the per-byte error rate is `error_rate` instead."""

    start_s: float
    end_s: float
    error_rate: float


@dataclass
class TransferRun:
    """One simulated transfer of real bytes: the receiver, and one row per attempt."""

    receiver: Reassembler
    attempt_end_s: np.ndarray
    attempt_ok: np.ndarray
    attempt_bytes: np.ndarray
    elapsed_s: float


def simulate_transfer(scenario: Scenario, rng: np.random.Generator | None = None,
                      bursts: tuple[Burst, ...] = (), backoff: Backoff | None = None,
                      checksums: bool = True) -> TransferRun:
    """Send a random payload through the pattern (`ChunkedSender` → noisy wire → `Reassembler`)
    on a virtual clock. Each attempt flips Binomial(length, p) random bytes; p follows `bursts`.
    With `backoff`, a resend first waits `backoff.delay(k)` (k = failures of that chunk so far).
    With `checksums=False` the receiver is handed the chunk's CRC recomputed after the damage,
    as if the chunk had no checksum of its own: nothing is ever rejected."""
    rng = np.random.default_rng(0) if rng is None else rng
    data = rng.integers(0, 256, scenario.size_bytes, dtype=np.uint8).tobytes()
    receiver = Reassembler(scenario.size_bytes, scenario.chunk_bytes)
    now = [0.0]
    ends: list[float] = []
    oks: list[bool] = []
    sizes: list[int] = []
    failures_of: dict[int, int] = {}

    def error_rate_at(t: float) -> float:
        return next((b.error_rate for b in bursts if b.start_s <= t < b.end_s), scenario.error_rate)

    def deliver(chunk: Chunk) -> bool:
        if backoff is not None and failures_of.get(chunk.index):
            now[0] += backoff.delay(failures_of[chunk.index], 0.0, rng.random)
        payload = chunk.payload
        hits = rng.binomial(len(payload), error_rate_at(now[0]))
        if hits:
            damaged = bytearray(payload)
            for at in rng.integers(0, len(payload), hits):
                damaged[at] ^= 1 + int(rng.integers(0, 255))  # never a no-op flip
            payload = bytes(damaged)
        crc = chunk.crc if checksums else zlib.crc32(payload)
        now[0] += float(_attempt_s(scenario, len(payload)))
        ok = receiver.accept(Chunk(chunk.index, chunk.offset, payload, crc))
        failures_of[chunk.index] = failures_of.get(chunk.index, 0) + (not ok)
        ends.append(now[0])
        oks.append(ok)
        sizes.append(len(payload))
        return ok

    ChunkedSender(data, scenario.chunk_bytes, clock=lambda: now[0]).send(deliver)
    return TransferRun(receiver, np.array(ends), np.array(oks), np.array(sizes), now[0])


def plot_time_vs_chunk(sweeps: dict[str, dict[str, np.ndarray]],
                       marks: dict[str, float] | None = None,
                       ax: Axes | None = None) -> Axes:
    """Transfer time against chunk size: a theory line and simulated means (95 % bars) per sweep,
    and a grey vertical line per named chunk size in `marks` (up to three)."""
    ax = plots.new_axes(ax)
    for name, sweep in sweeps.items():
        line, = ax.plot(sweep["chunk_bytes"] / 2**20, sweep["theory"], label=f"{name}: theory")
        ax.errorbar(sweep["chunk_bytes"] / 2**20, sweep["mean"],
                    yerr=sweep["half_width"],
                    fmt="o", ms=3, color=line.get_color(), label=f"{name}: simulated mean")
    for (name, s), style in zip((marks or {}).items(), (":", "--", "-."), strict=False):
        ax.axvline(s / 2**20, ls=style, color="grey", label=name)
    plots.log_scale(ax, "both")
    ax.set_xlabel("chunk size (MiB)")
    ax.set_ylabel("expected transfer time (s, log scale)")
    ax.legend(fontsize=8)
    return ax


def plot_dashboard(run: TransferRun, bin_s: float, bursts: tuple[Burst, ...] = ()) -> list[Axes]:
    """Goodput, attempts and resends per second over one transfer, with the bursts shaded."""
    end = math.ceil(run.elapsed_s / bin_s) * bin_s
    mids, attempts = rate_over_time(run.attempt_end_s, bin_s, 0.0, end)
    _, resends = rate_over_time(run.attempt_end_s[~run.attempt_ok], bin_s, 0.0, end)
    good = np.histogram(run.attempt_end_s[run.attempt_ok], np.arange(0.0, end + bin_s / 2, bin_s),
                        weights=run.attempt_bytes[run.attempt_ok])[0] / bin_s / 1e6
    return plots.dashboard(mids, {"goodput (MB/s)": {"delivered": good},
                                  "chunks per second": {"attempts": attempts,
                                                        "rejected (resent)": resends}},
                           windows=[(b.start_s, b.end_s) for b in bursts],
                           window_label="error burst")


def socket_transfer(data: bytes, chunk_bytes: int, error_rate: float = 0.0,
                    seed: int = 0) -> tuple[float, int, bool]:
    """Send `data` through a real local socket pair with the pattern (a receiver thread runs
    `serve`); each chunk is damaged on arrival with Binomial(length, `error_rate`) flipped bytes.
    Returns (wall-clock seconds, attempts, whether the receiver's copy is identical)."""
    import socket
    import threading
    import time

    from patterns.performance.chunking import end_stream, serve, socket_deliver

    rng = np.random.default_rng(seed)

    def damage(payload: bytes) -> bytes:
        hits = rng.binomial(len(payload), error_rate) if error_rate else 0
        if not hits:
            return payload
        damaged = bytearray(payload)
        for at in rng.integers(0, len(payload), hits):
            damaged[at] ^= 0xFF
        return bytes(damaged)

    receiver = Reassembler(len(data), chunk_bytes)
    sender = ChunkedSender(data, chunk_bytes)
    near, far = socket.socketpair()
    with near, far:
        thread = threading.Thread(target=serve, args=(far, receiver, damage), daemon=True)
        thread.start()
        began = time.perf_counter()
        report = sender.send(socket_deliver(near))
        seconds = time.perf_counter() - began
        end_stream(near)
        thread.join(timeout=10)
        if thread.is_alive():
            raise RuntimeError("socket_transfer: the receiver thread did not finish within 10 s")
    return seconds, report.attempts, receiver.complete and receiver.data() == data


def fit_link(attempts: np.ndarray, bytes_sent: np.ndarray,
             seconds: np.ndarray) -> tuple[float, float]:
    """Least-squares fit of seconds = h·attempts + bytes/B over several transfers:
    (h in seconds, B in bytes per second)."""
    design = np.column_stack([np.asarray(attempts, float), np.asarray(bytes_sent, float)])
    (h, per_byte), *_ = np.linalg.lstsq(design, np.asarray(seconds, float), rcond=None)
    return float(h), float(1 / per_byte)
