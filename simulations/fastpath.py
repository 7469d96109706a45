"""A fast path for the plain first-come-first-served queue, without an event loop.

Think of a ticket machine at a counter: once you know when each customer walks in and how long
each one takes at the counter, you can work out everyone's wait with a pencil, one customer after
another, without acting the day out minute by minute. With one server the next customer starts
when both they and the server are there (Lindley's recursion); with c servers they take whichever
server frees first, kept in a heap of server-free times (Kiefer and Wolfowitz's workload vector).
A bounded system (at most ``capacity`` customers, queue plus service) turns away arrivals that find
it full, which needs the departure times of the customers still inside.

Given the same arrival and service times, :func:`fifo_queue` gives the same per-customer waits
as the toolkit's SimPy server pool (a test holds it to that) at a small fraction of the cost, so
long validation runs and benchmarks use it. :func:`fifo_with_timeouts` adds callers who hang up
after a timeout and call again at once, while the queue still serves the abandoned call to the
end (as ``Client`` in front of a ``ServerPool`` does), so a slider can redraw a timeout sweep
without an event loop.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator

import numpy as np

from patterns.checks import check_int, check_positive
from simulations.distributions import Distribution
from simulations.faults import FaultSchedule
from simulations.records import Outcome, RequestTable
from simulations.workloads import ArrivalProcess

__all__ = ["fifo_ends", "fifo_queue", "fifo_with_timeouts", "service_stream", "simulate_fifo"]

_OK, _REJECTED, _TIMEOUT = int(Outcome.OK), int(Outcome.REJECTED), int(Outcome.TIMEOUT)
_IN_FLIGHT = int(Outcome.IN_FLIGHT)


def fifo_queue(
    arrivals: np.ndarray,
    services: np.ndarray,
    servers: int = 1,
    capacity: int | None = None,
) -> RequestTable:
    """Per-request rows of a FIFO queue with ``servers`` servers, for given times.

    ``arrivals`` are non-decreasing arrival times (s). ``services[k]`` is the service time of the
    k-th *admitted* request, as in ``ServerPool``, which draws a service time only when service
    starts (with nothing turned away, that is simply request k). ``capacity`` (None: unbounded)
    is the most requests in the system at once, queued plus in service; an arrival that finds it
    full is REJECTED (start NaN, end = arrival). The ``server`` column is not tracked (-1).
    """
    check_int("servers", servers, 1)
    if capacity is not None:
        check_int("capacity", capacity, servers)
    arrival_times = np.asarray(arrivals, dtype=float)
    service_times = np.asarray(services, dtype=float)
    if arrival_times.ndim != 1 or service_times.ndim != 1:
        raise ValueError(
            f"arrivals and services must be 1-D arrays (got shapes {arrival_times.shape}"
            f" and {service_times.shape})"
        )
    if len(service_times) < len(arrival_times):
        raise ValueError(
            f"services needs at least one time per request, {len(arrival_times)}"
            f" (got {len(service_times)})"
        )
    if np.any(np.diff(arrival_times) < 0):
        raise ValueError("arrivals must be non-decreasing times (requests in arrival order)")
    if np.any(service_times < 0):
        raise ValueError("services must be >= 0 seconds (got a negative service time)")
    starts, ends = _run(arrival_times.tolist(), service_times.tolist(), servers, capacity)
    start = np.array(starts)
    n = len(arrival_times)
    return RequestTable(
        arrival=arrival_times,
        start=start,
        end=np.array(ends),
        outcome=np.where(np.isnan(start), _REJECTED, _OK).astype(np.int8),
        server=np.full(n, -1, dtype=np.int32),
        cls=np.full(n, -1, dtype=np.int16),
        key=np.full(n, -1, dtype=np.int32),
    )


def fifo_ends(arrivals: np.ndarray, services: np.ndarray) -> np.ndarray:
    """End times of one FIFO server that turns nobody away, in a single vectorised pass.

    With S the running sum of the service times, end_k = S_k + max_{j<=k}(a_j - S_{j-1}),
    which is Lindley's end_k = max(a_k, end_{k-1}) + s_k unrolled. ``arrivals`` must be
    non-decreasing, one service time per arrival; a test holds it equal to :func:`fifo_queue`.
    """
    total = np.cumsum(services)
    return total + np.maximum.accumulate(np.asarray(arrivals) - (total - services))


def simulate_fifo(
    arrivals: ArrivalProcess,
    service: Distribution,
    rng: np.random.Generator,
    customers: int,
    servers: int = 1,
    capacity: int | None = None,
) -> RequestTable:
    """Draw ``customers`` arrivals and their service times from ``rng``, then run the queue.

    Draws in the order the SimPy model does (arrival times first, then service times in the
    order service starts), so with the same seed both give the same rows up to rounding.
    """
    times = arrivals.times(rng, n=check_int("customers", customers, 1))
    return fifo_queue(times, service.sample(rng, len(times)), servers, capacity)


def service_stream(
    service: Distribution, rng: np.random.Generator, block: int = 4096
) -> Iterator[float]:
    """Service times drawn from ``rng`` in blocks of ``block``, as ``ServerPool`` draws them."""
    while True:
        yield from service.sample(rng, block).tolist()


def fifo_with_timeouts(
    arrivals: np.ndarray,
    services: Iterator[float],
    servers: int,
    timeout_s: float,
    retries: int = 0,
    faults: FaultSchedule | None = None,
    until: float | None = None,
) -> tuple[RequestTable, RequestTable, RequestTable]:
    """Callers with a per-attempt timeout and immediate retries before a FIFO queue.

    Each request arriving at ``arrivals`` (non-decreasing, s) calls the queue; an attempt not
    answered within ``timeout_s`` is abandoned by its caller, who calls again at once, up to
    ``retries`` more times. The queue never hears that a caller left: it serves every attempt to
    the end. ``services`` yields service times in the order service starts; ``faults`` may hold
    "slow" windows, which stretch a service time that starts inside them. Rows still open at
    ``until`` (None: run to the end) are IN_FLIGHT with NaN times and calls from then on are left
out, as when SimPy stops there.

    Returns three tables, as ``Client`` and ``ServerPool`` log them: the requests as their
    callers saw them (start = arrival, end = answer or final give-up), every attempt as its
    caller saw it (end = answer or ``timeout_s`` later) and, in the same order, the queue's row
    for each attempt (when it really ran).
    """
    check_int("servers", servers, 1)
    timeout = check_positive("timeout_s", timeout_s)
    check_int("retries", retries, 0)
    windows = faults.windows if faults is not None else ()
    if any(w.kind != "slow" for w in windows):
        raise ValueError("fifo_with_timeouts models only 'slow' fault windows (got "
                         f"{sorted({w.kind for w in windows})})")
    times = np.asarray(arrivals, dtype=float)
    if times.ndim != 1 or np.any(np.diff(times) < 0):
        raise ValueError("arrivals must be a 1-D array of non-decreasing times")
    n = len(times)
    answered = [math.nan] * n
    outcome = [_TIMEOUT] * n
    calls: list[tuple[float, float, float, int]] = []  # (call time, start, end, request)
    free_at = [0.0] * servers
    retry_at: list[tuple[float, int, int]] = []  # heap of (time, request, attempts left)
    pending = times.tolist()
    i = 0
    while i < n or retry_at:
        if retry_at and (i == n or retry_at[0][0] < pending[i]):
            now, request, left = heapq.heappop(retry_at)
        else:
            now, request, left = pending[i], i, retries
            i += 1
        start = now if now > free_at[0] else free_at[0]
        delay = next(services)
        window = faults.active(start) if faults is not None else None
        if window is not None:
            delay = delay * window.slow_factor + window.slow_add_s
        end = start + delay
        heapq.heapreplace(free_at, end)
        calls.append((now, start, end, request))
        if end - now <= timeout:
            answered[request], outcome[request] = end, _OK
        elif left:
            heapq.heappush(retry_at, (now + timeout, request, left - 1))
        else:
            answered[request] = now + timeout
    call, start, end, owner = (np.array(column) for column in zip(*calls, strict=True)) \
        if calls else (np.empty(0),) * 4
    given_up = end - call > timeout
    seen = np.where(given_up, call + timeout, end)
    stop = math.inf if until is None else until
    return (
        _table(times, times, np.array(answered), np.array(outcome), stop),
        _table(call, call, seen, np.where(given_up, _TIMEOUT, _OK), stop),
        _table(call, start, end, np.full(len(call), _OK), stop),
    )


def _table(arrival, start, end, outcome, stop: float) -> RequestTable:
    """The rows a run stopped at ``stop`` leaves: none arriving from then on, later times
    unknown."""
    keep = arrival < stop
    arrival, start, end, outcome = arrival[keep], start[keep], end[keep], outcome[keep]
    n = len(arrival)
    late = end > stop
    return RequestTable(
        arrival=arrival,
        start=np.where(start > stop, np.nan, start),
        end=np.where(late, np.nan, end),
        outcome=np.where(late, _IN_FLIGHT, outcome).astype(np.int8),
        server=np.full(n, -1, dtype=np.int32),
        cls=np.full(n, -1, dtype=np.int16),
        key=np.full(n, -1, dtype=np.int32),
    )


def _run(
    arrivals: list[float], services: list[float], servers: int, capacity: int | None
) -> tuple[list[float], list[float]]:
    """Start and end times (start NaN if rejected), on plain lists: a tight loop beats numpy."""
    n = len(arrivals)
    nan = float("nan")
    starts, ends = [nan] * n, [nan] * n
    if servers == 1 and capacity is None:  # Lindley: start = max(arrival, previous end)
        free_at = 0.0
        for i, (arrival, service) in enumerate(zip(arrivals, services[:n], strict=True)):
            start = arrival if arrival > free_at else free_at
            starts[i] = start
            free_at = ends[i] = start + service
        return starts, ends
    free_at = [0.0] * servers  # heap: when each server next becomes free
    if capacity is None:  # Kiefer-Wolfowitz: start = max(arrival, earliest free server)
        for i, (arrival, service) in enumerate(zip(arrivals, services[:n], strict=True)):
            start = arrival if arrival > free_at[0] else free_at[0]
            starts[i] = start
            ends[i] = end = start + service
            heapq.heapreplace(free_at, end)
        return starts, ends
    inside: list[float] = []  # heap of the end times of requests still in the system
    admitted = 0
    for i, arrival in enumerate(arrivals):
        while inside and inside[0] <= arrival:
            heapq.heappop(inside)
        if len(inside) >= capacity:
            ends[i] = arrival  # turned away at once, as ServerPool records it
            continue
        start = arrival if arrival > free_at[0] else free_at[0]
        end = start + services[admitted]
        admitted += 1
        starts[i], ends[i] = start, end
        heapq.heapreplace(free_at, end)
        heapq.heappush(inside, end)
    return starts, ends
