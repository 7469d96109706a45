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
long validation runs and benchmarks use it.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from simulations.errors import check_int


@dataclass(frozen=True)
class FifoResult:
    """Per-customer outcome of a FIFO queue run, in arrival order (times in seconds).

    ``waits`` and ``responses`` are NaN for customers turned away (``blocked``).
    """

    arrivals: np.ndarray
    services: np.ndarray
    waits: np.ndarray
    blocked: np.ndarray

    @property
    def responses(self) -> np.ndarray:
        return self.waits + self.services

    @property
    def departures(self) -> np.ndarray:
        return self.arrivals + self.responses


def fifo_queue(
    arrivals: np.ndarray,
    services: np.ndarray,
    servers: int = 1,
    capacity: int | None = None,
) -> FifoResult:
    """Waits of a FIFO queue with ``servers`` servers for given arrival and service times.

    ``arrivals`` are non-decreasing arrival times, ``services`` the service time of each customer;
    ``capacity`` (``None`` for unbounded) is the most customers allowed in the system at once.
    """
    check_int("servers", servers, 1)
    if capacity is not None:
        check_int("capacity", capacity, servers)
    arrival_times = np.asarray(arrivals, dtype=float)
    service_times = np.asarray(services, dtype=float)
    if arrival_times.ndim != 1 or arrival_times.shape != service_times.shape:
        raise ValueError(
            f"arrivals and services must be 1-D arrays of the same length; got shapes"
            f" {arrival_times.shape} and {service_times.shape}"
        )
    if np.any(np.diff(arrival_times) < 0):
        raise ValueError("arrivals must be non-decreasing times (sorted arrival order)")
    if np.any(service_times < 0):
        raise ValueError("services must be ≥ 0 (service times in seconds)")
    waits, blocked = _run(arrival_times.tolist(), service_times.tolist(), servers, capacity)
    return FifoResult(arrival_times, service_times, np.array(waits), np.array(blocked, dtype=bool))


def _run(
    arrivals: list[float], services: list[float], servers: int, capacity: int | None
) -> tuple[list[float], list[bool]]:
    """The recursion itself, on plain lists (a tight loop is faster than numpy element access)."""
    nan = float("nan")
    waits = [nan] * len(arrivals)
    blocked = [False] * len(arrivals)
    if servers == 1 and capacity is None:  # Lindley: start = max(arrival, previous departure)
        free_at = 0.0
        for i, (arrival, service) in enumerate(zip(arrivals, services, strict=True)):
            start = arrival if arrival > free_at else free_at
            waits[i] = start - arrival
            free_at = start + service
        return waits, blocked
    free_at_heap = [0.0] * servers  # when each server next becomes free
    inside: list[float] = []  # heap of departure times of the customers in the system
    for i, (arrival, service) in enumerate(zip(arrivals, services, strict=True)):
        if capacity is not None:
            while inside and inside[0] <= arrival:
                heapq.heappop(inside)
            if len(inside) >= capacity:
                blocked[i] = True
                continue
        start = max(arrival, heapq.heappop(free_at_heap))
        waits[i] = start - arrival
        heapq.heappush(free_at_heap, start + service)
        if capacity is not None:
            heapq.heappush(inside, start + service)
    return waits, blocked
