"""Replaying a stream of requests through a cache, one key at a time.

Picture a librarian with a tally sheet at the desk: for each request she looks on the desk
first (a hit), or fetches the folder from the archive and puts it on the desk (a miss). The
sheet of hits and misses, in request order, is all a cache study needs: the hit ratio, the
database load (the misses), the hit ratio over time while a cache warms up.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["replay"]

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
