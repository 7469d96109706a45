"""A small SimPy toolkit for the course's simulations.

Picture a shop: customers arrive (``workloads``), ask for something that takes a while to
prepare (``distributions``), wait in line for one of a few clerks (``servers``), may give up
(``clients``), and the shop has bad days (``faults``). Every customer leaves a row on a ticket
roll (``records``) that the manager summarises (``metrics``), compares across settings
(``experiments``) and draws (``plots``).

The toolkit sits at the root of this package; each lesson's study is in
``simulations/<category>/<module>.py`` and imports its pattern from ``patterns/``. Input checks
(a ValueError naming the input, its value and what is allowed) are shared with the patterns in
``patterns.checks``.

API map (all re-exported here):

- distributions: ``Exponential``, ``Deterministic``, ``LogNormal``, ``Bimodal``, ``Pareto``
  (each with ``.mean``, ``.scv``, ``.second_moment``, ``.sample(rng, size)``, and the exact
  ``.survival(t)`` and ``.quantile(p)``),
  ``make_distribution(name, mean, scv)``
- workloads: ``PoissonArrivals``, ``ConstantArrivals``, ``BurstyArrivals`` (on-off / MMPP-2),
  ``TimeVaryingArrivals`` (``.step``, ``.ramp``, ``.diurnal``; thinning), each with
  ``.times(rng, n=, horizon=)`` and ``.rate_at(t)``; ``ZipfKeys(n_keys, alpha)``
- records: ``Outcome`` (IN_FLIGHT, OK, REJECTED, TIMEOUT, ERROR), ``RequestLog`` (columnar,
  written during a run), ``RequestTable`` (its finished copy: ``latency``, ``wait``, ``select``)
- servers: ``ServerPool`` (c servers, capacity K, service distribution or handler;
  ``submit`` / ``call``; ``discipline`` "fifo" (default), "priority" or "preemptive" by class),
  ``Service`` protocol (``call(key, cls) -> Event`` of an Outcome)
- clients: ``RequestSource`` (replays arrivals into ``send(key, cls)``), ``Client`` (caller with
  a timeout), ``ClosedLoopUsers`` (users who think, call and wait)
- faults: ``FaultWindow`` (error / hang / slow in [start, end)), ``FaultSchedule``
- metrics: ``summarize``, ``latency_percentiles``, ``utilisation``, ``occupancy``,
  ``time_average``, ``queue_length_over_time``, ``number_in_system_over_time``,
  ``drop_warmup``, ``confidence_interval``, ``t_quantile``, ``per_bin``, ``percentile_of``,
  ``rate_over_time``, ``latency_over_time``, ``goodput_over_time``
- experiments: ``replicate``, ``sweep`` (grid x seeded replications -> list of dict rows),
  ``aggregate`` (mean and t-interval per group), ``column``
- theory: closed forms (M/M/1, Erlang C, Pollaczek–Khinchine, M/M/1/K, Kingman, Little, fan-out;
  Che's approximation for caches: ``characteristic_time``, ``che_hit_probabilities``,
  ``che_hit_ratio`` for LRU, FIFO and RANDOM)
- caches (``simulations.caches``): ``replay(cache, keys)``, the hit (True) or miss of each request
- redis_server (``simulations.redis_server``, not re-exported): ``RedisServer(**config)``, a real
  Redis server of the lesson's own on a private socket, ``.client()``; ``unavailable()`` says why
  none runs here
- fastpath: ``fifo_queue``, ``simulate_fifo``: the FIFO queue without an event loop, same rows;
  ``fifo_with_timeouts``: callers who time out and retry before it; ``service_stream``
- textbook: the M/M/1 ... M/M/1/K models beside theory (``simulate``, ``run_model``), used by
  ``python -m simulations``
- plots (import as ``from simulations import plots``, to keep matplotlib out of plain imports):
  ``plots.latency_vs_load``, ``plots.cdf``, ``plots.time_series``, ``plots.dashboard`` (metrics
  stacked over time), ``plots.tradeoff``, ``plots.sweep_panels`` (a sweep, one panel per metric,
  with interval bars), ``plots.new_axes``
- lab (``simulations.lab``, its own API map): learners' nodes on a faulty network under a seeded
  nemesis, client histories, linearizability / set / counter / unique-id checkers, diagrams

Example, an M/M/4 queue at 90 % load::

    env = simpy.Environment()
    rng = np.random.default_rng(1)
    pool = ServerPool(env, 4, Exponential(1.0), rng)
    RequestSource(env, PoissonArrivals(3.6), pool.submit, rng, n=100_000)
    env.run()
    summarize(drop_warmup(pool.log.table(), time_s=100), servers=4)

Composing parts (no queue code in the lesson):

- a cache before a database: ``db = ServerPool(env, 4, LogNormal(0.01, 2), rng)``; a handler
  ``def lookup(key, cls): if hit: yield env.timeout(t_cache) else: return (yield db.call(key))``
  served by ``front = ServerPool(env, None, lookup)``; traffic from
  ``RequestSource(..., front.submit, rng, keys=ZipfKeys(10_000, 0.8))``.
- a caller before a flaky dependency: ``dep = ServerPool(..., faults=FaultSchedule([...]))``,
  ``client = Client(env, dep, timeout_s=1.0)``; the caller's worker pool is
  ``ServerPool(env, 20, handler)`` whose handler does ``return (yield client.call(key, cls))``
  (a breaker is one more ``Service`` wrapping ``client``).
- a load balancer before N servers: ``pools = [ServerPool(...) for _ in range(n)]`` and
  ``send(key, cls)`` picks one (e.g. ``min(pools, key=lambda p: p.in_system)``) and calls its
  ``submit``; ``RequestTable.concat([p.log.table() for p in pools])`` joins the logs.
"""

from simulations.clients import Client, ClosedLoopUsers, RequestSource
from simulations.distributions import (
    DISTRIBUTIONS,
    Bimodal,
    Deterministic,
    Distribution,
    Exponential,
    LogNormal,
    Pareto,
    make_distribution,
)
from simulations.experiments import aggregate, column, replicate, sweep
from simulations.faults import FAULT_KINDS, FaultSchedule, FaultWindow
from simulations.metrics import (
    PERCENTILES,
    confidence_interval,
    drop_warmup,
    goodput_over_time,
    latency_over_time,
    latency_percentiles,
    number_in_system_over_time,
    occupancy,
    per_bin,
    percentile_of,
    queue_length_over_time,
    rate_over_time,
    summarize,
    t_quantile,
    time_average,
    utilisation,
)
from simulations.records import Outcome, RequestLog, RequestTable
from simulations.servers import Handler, ServerPool, Service
from simulations.workloads import (
    ArrivalProcess,
    BurstyArrivals,
    ConstantArrivals,
    PoissonArrivals,
    TimeVaryingArrivals,
    ZipfKeys,
)

__all__ = [
    "DISTRIBUTIONS", "FAULT_KINDS", "PERCENTILES",
    "ArrivalProcess", "Bimodal", "BurstyArrivals", "Client", "ClosedLoopUsers",
    "ConstantArrivals", "Deterministic", "Distribution", "Exponential", "FaultSchedule",
    "FaultWindow", "Handler", "LogNormal", "Outcome", "Pareto", "PoissonArrivals",
    "RequestLog", "RequestSource", "RequestTable", "ServerPool", "Service",
    "TimeVaryingArrivals", "ZipfKeys",
    "aggregate", "column", "confidence_interval", "drop_warmup", "goodput_over_time",
    "latency_over_time", "latency_percentiles", "make_distribution",
    "number_in_system_over_time", "occupancy", "per_bin", "percentile_of", "queue_length_over_time",
    "rate_over_time", "replicate", "summarize", "sweep", "t_quantile", "time_average",
    "utilisation",
]
