"""Replaying a stream of requests through a cache, one key at a time.

Picture a librarian with a tally sheet at the desk: for each request she looks on the desk
first (a hit), or fetches the folder from the archive and puts it on the desk (a miss). The
sheet of hits and misses, in request order, is all a cache study needs: the hit ratio, the
database load (the misses), the hit ratio over time while a cache warms up; and, with the times
the requests came, what each reader waited (``read_latencies``).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from simulations.distributions import Distribution
from simulations.fastpath import fifo_queue, service_stream

__all__ = ["read_latencies", "replay"]

_MISSING = object()


def replay(cache, keys: Iterable) -> np.ndarray:
    """True per request that ``cache`` answered; a miss puts the key in (cache-aside, no TTL).

    ``cache`` is anything with ``get(key, default)`` and ``put(key, value)``: the course's
    ``EvictingCache`` policies. Numpy integer keys are converted to ``int`` first, so a cache
    keyed by Python ints (or Redis) sees the same keys.
    """
    keys = keys.tolist() if isinstance(keys, np.ndarray) else list(keys)
    hits = np.empty(len(keys), dtype=bool)
    get, put = cache.get, cache.put
    for i, key in enumerate(keys):
        if get(key, _MISSING) is _MISSING:
            put(key, True)
            hits[i] = False
        else:
            hits[i] = True
    return hits


def read_latencies(times: np.ndarray, hits: np.ndarray, t_cache_s: float, db: Distribution,
                   db_workers: int | None, rng: np.random.Generator) -> np.ndarray:
    """Each read's latency (s) in cache-aside: ``t_cache_s`` for the lookup, and on a miss the
    database after it, queueing FIFO for one of ``db_workers`` (None: a worker each, no queue).

    The misses' service times are drawn from ``rng`` in request order; the queue is the fast
    path's ``fifo_queue``, which gives the rows a SimPy ``ServerPool`` gives.
    """
    misses = ~np.asarray(hits, dtype=bool)
    services = np.fromiter(service_stream(db, rng), float, count=int(misses.sum()))
    latency = np.full(len(misses), float(t_cache_s))
    if db_workers is None:
        latency[misses] += services
    else:
        latency[misses] += fifo_queue(np.asarray(times)[misses] + t_cache_s, services,
                                      db_workers).latency
    return latency
