"""Chunking: send a large payload as checksummed pieces, resend only the pieces that failed.

Picture moving house with boxes instead of one giant crate: a box dropped on the stairs is
repacked on its own, and a move interrupted at lunch carries on with the boxes still in the
old flat. Each box costs a trip (the per-chunk overhead), and a bigger box is likelier to be
dropped (the per-byte error rate), so there is a best box size.

``split`` cuts the payload into ``Chunk`` records carrying a CRC-32; ``Reassembler`` keeps the
chunks whose checksum holds and says which are missing (the resume point); ``ChunkedSender``
sends the missing ones until the receiver has them all, with time from an injectable ``clock``.
``PartPlan`` picks a part size within an object store's limits; ``ProductionChunkedSender``
adds a validated config, ``logging`` and ``prometheus_client`` metrics. Nothing here imports
from ``simulations``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from patterns.checks import check_int, check_positive, check_range
from patterns.metrics import Instruments

Clock = Callable[[], float]
log = logging.getLogger(__name__)

MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass(frozen=True)
class Chunk:
    """One piece of the payload: its position, its bytes and the CRC-32 of those bytes."""

    index: int
    offset: int
    payload: bytes
    crc: int


def chunk_count(size: int, chunk_size: int) -> int:
    """How many chunks of `chunk_size` bytes a payload of `size` bytes needs (the last may be
    short)."""
    check_int("size", size, 0)
    check_int("chunk_size", chunk_size, 1)
    return -(-size // chunk_size)


def split(data: bytes, chunk_size: int) -> list[Chunk]:
    """Cut `data` into chunks of `chunk_size` bytes, each with its CRC-32."""
    count = chunk_count(len(data), chunk_size)
    return [Chunk(i, i * chunk_size, bytes(data[i * chunk_size:(i + 1) * chunk_size]),
                  zlib.crc32(data[i * chunk_size:(i + 1) * chunk_size]))
            for i in range(count)]


class Reassembler:
    """The receiving end: keeps each chunk whose checksum holds, and knows what is missing."""

    def __init__(self, size: int, chunk_size: int) -> None:
        self.size = size
        self.chunk_size = chunk_size
        self.count = chunk_count(size, chunk_size)
        self.parts: dict[int, bytes] = {}
        self.rejected = 0

    def expected_length(self, index: int) -> int:
        return min(self.chunk_size, self.size - index * self.chunk_size)

    def accept(self, chunk: Chunk) -> bool:
        """Store `chunk` if it belongs here and its bytes match its CRC; returns the ack."""
        ok = (0 <= chunk.index < self.count
              and chunk.offset == chunk.index * self.chunk_size
              and len(chunk.payload) == self.expected_length(chunk.index)
              and zlib.crc32(chunk.payload) == chunk.crc)
        if ok:
            self.parts[chunk.index] = chunk.payload
        else:
            self.rejected += 1
        return ok

    def missing(self) -> list[int]:
        """The indices still to be sent: after a crash, the sender resumes from exactly these."""
        return [i for i in range(self.count) if i not in self.parts]

    @property
    def complete(self) -> bool:
        return len(self.parts) == self.count

    def data(self) -> bytes:
        if not self.complete:
            raise ValueError(f"data() needs every chunk "
                             f"(missing {len(self.missing())} of {self.count})")
        return b"".join(self.parts[i] for i in range(self.count))

    def digest(self) -> str:
        """SHA-256 of the payload, fed chunk by chunk: the end-to-end check after the CRCs."""
        running = hashlib.sha256()
        for i in range(self.count):
            running.update(self.parts[i])
        return running.hexdigest()


@dataclass
class SendReport:
    """What one `send` cost: attempts (chunks put on the wire), failures, bytes and seconds."""

    attempts: int = 0
    failures: int = 0
    bytes_sent: int = 0
    elapsed_s: float = 0.0


class ChunkedSender:
    """The sending end: sends each chunk until it is acknowledged, resending only the failed ones.

    ``deliver(chunk) -> bool`` is the channel plus the receiver: it returns the receiver's ack.
    ``send(only=...)`` resumes a transfer from a receiver's ``missing()`` list.
    """

    def __init__(self, data: bytes, chunk_size: int, clock: Clock = time.monotonic) -> None:
        self.chunks = split(data, chunk_size)
        self.chunk_size = chunk_size
        self.clock = clock

    def send(self, deliver: Callable[[Chunk], bool], only: Iterable[int] | None = None,
             max_attempts: int = 1_000) -> SendReport:
        report = SendReport()
        start = self.clock()
        for index in (range(len(self.chunks)) if only is None else only):
            chunk = self.chunks[index]
            for _ in range(max_attempts):
                report.attempts += 1
                report.bytes_sent += len(chunk.payload)
                if deliver(chunk):
                    break
                report.failures += 1
            else:
                raise RuntimeError(f"chunk {index} failed {max_attempts} times in a row")
        report.elapsed_s = self.clock() - start
        return report


_HEADER = struct.Struct("!qQII")  # index (-1 ends the stream), offset, length, CRC-32


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    buffer = bytearray()
    while len(buffer) < n:
        piece = sock.recv(n - len(buffer))
        if not piece:
            raise ConnectionError(f"the peer closed the connection {n - len(buffer)} bytes short")
        buffer += piece
    return bytes(buffer)


def socket_deliver(sock: socket.socket) -> Callable[[Chunk], bool]:
    """A `deliver` over a real stream socket: header and bytes out, one ack byte back."""
    def deliver(chunk: Chunk) -> bool:
        sock.sendall(_HEADER.pack(chunk.index, chunk.offset, len(chunk.payload), chunk.crc)
                     + chunk.payload)
        return _read_exactly(sock, 1) == b"\x01"
    return deliver


def end_stream(sock: socket.socket) -> None:
    """Tell the `serve` loop at the other end that the transfer is over."""
    sock.sendall(_HEADER.pack(-1, 0, 0, 0))


def serve(sock: socket.socket, receiver: Reassembler,
          damage: Callable[[bytes], bytes] | None = None) -> None:
    """The receiving loop: read each chunk, pass it through `damage` (the noisy wire, for tests
    and demonstrations), hand it to `receiver` and answer with its ack."""
    while True:
        index, offset, length, crc = _HEADER.unpack(_read_exactly(sock, _HEADER.size))
        if index < 0:
            return
        payload = _read_exactly(sock, length)
        if damage is not None:
            payload = damage(payload)
        ok = receiver.accept(Chunk(index, offset, payload, crc))
        sock.sendall(b"\x01" if ok else b"\x00")


def sqrt_rule_chunk_size(overhead_bytes: float, error_rate: float) -> float:
    """The square-root rule s* ≈ √(h/p): per-chunk overhead `overhead_bytes` (h, in byte-times,
    i.e. seconds × bandwidth) against the per-byte error rate `error_rate` (p)."""
    h = check_positive("overhead_bytes", overhead_bytes)
    p = check_range("error_rate", error_rate, 0.0, 1.0, low_open=True, high_open=True)
    return math.sqrt(h / p)


@dataclass(frozen=True)
class PartPlan:
    """An object store's multipart limits; `part_size` clamps a wanted size into them.

    The defaults are Amazon S3's documented limits: parts of 5 MiB to 5 GiB (the last part may
    be smaller) and at most 10,000 parts per upload.
    """

    min_part: int = 5 * MiB
    max_part: int = 5 * GiB
    max_parts: int = 10_000

    def __post_init__(self) -> None:
        check_int("PartPlan.min_part", self.min_part, 1)
        check_int("PartPlan.max_part", self.max_part, self.min_part)
        check_int("PartPlan.max_parts", self.max_parts, 1)

    def part_size(self, size: int, wanted: float) -> int:
        """The part size nearest `wanted` that the store accepts for an object of `size` bytes."""
        check_int("size", size, 1, self.max_part * self.max_parts)
        check_positive("wanted", wanted)
        fewest = -(-size // self.max_parts)  # the 10,000-part cap sets a floor on the part size
        return int(min(self.max_part, max(self.min_part, fewest, math.ceil(wanted))))


@dataclass(frozen=True)
class TransferConfig:
    """Validated settings of a production transfer."""

    chunk_size: int = 8 * MiB
    max_attempts: int = 5

    def __post_init__(self) -> None:
        check_int("TransferConfig.chunk_size", self.chunk_size, 1, 5 * GiB)
        check_int("TransferConfig.max_attempts", self.max_attempts, 1, 100)


class ProductionChunkedSender(ChunkedSender):
    """`ChunkedSender` with a validated config, a lock so several threads can share the work,
    logging of every resend, and counters and a chunk-time histogram in its own registry."""

    def __init__(self, data: bytes, config: TransferConfig, clock: Clock = time.monotonic) -> None:
        super().__init__(data, config.chunk_size, clock)
        self.config = config
        self.metrics = Instruments("chunked_transfer", "Chunks put on the wire")
        self._chunk_seconds = self.metrics.histogram("chunk_seconds", "Seconds per chunk attempt")
        self._lock = threading.Lock()
        self._queue: list[int] = []

    def _observed(self, deliver: Callable[[Chunk], bool]) -> Callable[[Chunk], bool]:
        def timed(chunk: Chunk) -> bool:
            began = self.clock()
            ok = deliver(chunk)
            self._chunk_seconds.observe(self.clock() - began)
            self.metrics.count("attempts")
            self.metrics.count("bytes", len(chunk.payload))
            if not ok:
                self.metrics.count("resends")
                log.info("chunk %d rejected by the receiver; resending", chunk.index)
            return ok
        return timed

    def send(self, deliver: Callable[[Chunk], bool], only: Iterable[int] | None = None,
             max_attempts: int | None = None) -> SendReport:
        attempts = self.config.max_attempts if max_attempts is None else max_attempts
        return super().send(self._observed(deliver), only, attempts)

    def send_parallel(self, deliver: Callable[[Chunk], bool], workers: int = 4,
                      only: Iterable[int] | None = None) -> None:
        """Send with `workers` threads taking chunk indices from one queue (under the lock)."""
        check_int("workers", workers, 1, 64)
        self._queue = list(range(len(self.chunks)) if only is None else only)
        errors: list[BaseException] = []

        def work() -> None:
            while True:
                with self._lock:
                    if not self._queue or errors:
                        return
                    index = self._queue.pop()
                try:
                    self.send(deliver, only=[index])
                except RuntimeError as error:
                    with self._lock:
                        errors.append(error)

        threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        if any(thread.is_alive() for thread in threads):
            raise RuntimeError("send_parallel: a worker did not finish within 30 s")
        if errors:
            raise errors[0]
