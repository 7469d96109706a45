"""The queueing-basics study: one FIFO queue, or several, run at a chosen utilisation.

Picture a post office: customers arrive at random, each needs a few minutes at a counter, and
they wait in one line for the first free clerk (one queue for ``servers`` clerks), or pick a
clerk's own line at random and stay in it (separate queues). The lesson runs both at many loads
and holds every figure against the closed forms of ``simulations.theory``.

Runs use the toolkit's fast path (``simulations.fastpath``: the same rows as the SimPy
``ServerPool`` for the same seed, without the event loop), so a sweep of forty long runs stays
well under a second or two. The textbook models behind ``python -m simulations`` (M/M/1 ...
M/M/1/K with their predictions) stay in the toolkit's ``simulations.textbook``: they are the
validation bench of every lesson, not this lesson's study.
"""

from __future__ import annotations

import numpy as np

from simulations import theory
from simulations.distributions import Distribution, Exponential, make_distribution
from simulations.fastpath import fifo_queue, simulate_fifo
from simulations.metrics import drop_warmup, summarize
from simulations.records import RequestTable
from simulations.workloads import PoissonArrivals

__all__ = ["CUSTOMERS", "MEAN_SERVICE_S", "SERVICE_RATE", "WARMUP", "exact_mean_response",
           "run_queue", "run_split"]

MEAN_SERVICE_S = 0.010             # mean service time of one request (s)
SERVICE_RATE = 1 / MEAN_SERVICE_S  # μ: requests per second one server can finish
CUSTOMERS = 40_000                 # requests per simulated run
WARMUP = 2_000                     # first requests dropped from every run (the queue starts empty)


def run_queue(rng: np.random.Generator, load: float, servers: int = 1,
              distribution: str = "exponential", scv: float | None = None,
              customers: int = CUSTOMERS) -> dict[str, float]:
    """One simulated FIFO queue at utilisation `load`; the toolkit's standard report."""
    service = make_distribution(distribution, MEAN_SERVICE_S, scv)
    arrivals = PoissonArrivals(load * servers * SERVICE_RATE)
    table = simulate_fifo(arrivals, service, rng, customers, servers)
    return summarize(drop_warmup(table, count=WARMUP), servers=servers)


def run_split(rng: np.random.Generator, load: float, servers: int) -> dict[str, float]:
    """`servers` separate FIFO queues; each request picks one at random."""
    arrivals = PoissonArrivals(load * servers * SERVICE_RATE).times(rng, n=CUSTOMERS)
    choice = rng.integers(servers, size=len(arrivals))
    services = Exponential(MEAN_SERVICE_S).sample(rng, len(arrivals))
    tables = [fifo_queue(arrivals[choice == k], services[choice == k]) for k in range(servers)]
    return summarize(drop_warmup(RequestTable.concat(tables), count=WARMUP), servers=servers)


def exact_mean_response(load: float, servers: int, service: Distribution) -> float | None:
    """Exact mean response time (s), or None where no closed form exists: Pollaczek–Khinchine
    for one server and any distribution, Erlang C for exponential service and any c."""
    rate = load * servers * SERVICE_RATE
    if servers == 1:
        return theory.mg1_mean_response(rate, MEAN_SERVICE_S, service.scv)
    if isinstance(service, Exponential):
        return theory.mmc_mean_response(rate, SERVICE_RATE, servers)
    return None
