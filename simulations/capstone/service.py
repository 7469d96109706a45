"""The capstone's service graph and the learner's design of it.

clients → edge (rate limit, admission, load shedding) → load balancer → API instances (each a
worker pool, autoscaled) with a cache-aside cache → the database (a primary for writes, read
replicas behind a round-robin router), two dependencies (payments on the critical checkout,
recommendations on browse, with a fallback) and a queue to a background worker that charges
deferred payments. Every pattern is the course's own class, driven by ``env.now``:

========================  ================================================================
edge                      ``TokenBucket`` (rate limit), the learner's ``admit``, ``LoadShedder``
load balancer             ``POLICIES`` of ``patterns.performance.load_balancing``
autoscaler                ``HPAPolicy`` within ``ScalingLimits``
cache                     ``CacheAside`` over an ``LRUCache``; ``xfetch`` early refresh and a
                          single-flight fill (a shared SimPy event, as the stampede study does:
                          ``SingleFlight`` blocks a thread, which a SimPy process cannot do)
database                  ``Primary``, ``Replica``, ``RoundRobinRouter`` (which replica to read)
dependency calls          ``Deadline`` (per-call timeouts), ``Backoff`` and ``RetryBudget``,
                          ``CircuitBreaker`` with an ``ErrorRate`` policy, ``Bulkhead``
background queue          ``LevelingQueue`` (bounded), drained by a background worker
========================  ================================================================

Queues and servers are the toolkit's (``ServerPool``, ``Client``, ``RequestSource``); every call
leaves a row in a ``RequestLog``. ``simulate(design, day)`` runs one day and returns the raw
``Run``; ``simulations.capstone.scorecard`` turns it into series and a score card.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy
from simpy.events import Event, Timeout

from patterns.caching.cache_aside import CacheAside
from patterns.caching.cache_stampede_protection import xfetch
from patterns.caching.eviction_policies import LRUCache
from patterns.checks import check_choice, check_int, check_positive, check_range
from patterns.communication.queue_load_leveling import LevelingQueue
from patterns.performance.auto_scaling import HPAPolicy, ScalingLimits
from patterns.performance.load_balancing import POLICIES
from patterns.performance.read_replicas import Primary, Replica, RoundRobinRouter
from patterns.resilience.bulkhead import Bulkhead
from patterns.resilience.circuit_breaker import CircuitBreaker, ErrorRate, State
from patterns.resilience.load_shedding import LoadShedder
from patterns.resilience.retry_backoff_jitter import Backoff, RetryBudget
from patterns.resilience.timeouts import Deadline
from patterns.security.rate_limiting import TokenBucket
from simulations.capstone.day import DAY_S, Day
from simulations.clients import Client, RequestSource
from simulations.distributions import LogNormal
from simulations.faults import FaultSchedule, FaultWindow
from simulations.records import Outcome, RequestLog
from simulations.servers import ServerPool
from simulations.workloads import TimeVaryingArrivals, ZipfKeys

__all__ = ["CHECKOUT", "BROWSE", "HOT_KEY", "STAMPEDE", "Design", "Run", "Signals",
           "SYSTEM", "simulate"]

CHECKOUT, BROWSE = 0, 1
"""Request classes: checkout is the critical endpoint (its SLO is graded), browse is not."""
HOT_KEY = 0
"""The key of the expensive page the hot-key incident asks for."""
STAMPEDE = ("none", "single_flight", "xfetch")
_OK, _ERR, _REJ, _TMO = Outcome.OK, Outcome.ERROR, Outcome.REJECTED, Outcome.TIMEOUT


@dataclass(frozen=True)
class System:
    """The fixed parts of the service graph (the design cannot change them)."""

    workers: int = 3  # per API instance
    backlog: int = 40  # requests an instance holds (queued + in service); more are refused
    api_work_s: float = 0.08  # an API worker's own work per request (mean)
    keys: int = 5_000  # catalogue pages, Zipf-popular
    zipf_alpha: float = 0.9
    replicas: int = 2
    replica_servers: int = 2  # concurrent queries per replica
    read_s: float = 0.2  # one page query (mean)
    hot_read_s: float = 1.5  # the expensive page's query
    primary_servers: int = 8
    write_s: float = 0.01
    payments_servers: int = 2
    payments_s: float = 0.08
    recs_servers: int = 20
    recs_s: float = 0.05
    worker_charge_every_s: float = 0.2  # the background worker's pace when payments is healthy
    provisioning_s: float = 10.0  # a new API instance is ready after this long
    hot_ttl_s: float = 3.0  # the flash-sale page may be at most this stale
    control_s: float = 5.0  # the autoscaler's period
    sample_s: float = 1.0  # the monitors sample the system this often


SYSTEM = System()


@dataclass(frozen=True)
class Signals:
    """What the learner's ``admit`` function sees about one request and the system now."""

    now: float
    endpoint: str  # "checkout" or "browse"
    instances: int
    busy: float  # busy share of the API workers (0 to 1)
    queued: int  # requests waiting for an API worker, all instances
    rate: float  # requests/s that arrived over the last second


def _check_optional(name: str, value: Any, check: Callable[[str, Any], Any]) -> None:
    if value is not None:
        check(name, value)


@dataclass(frozen=True)
class Design:
    """The learner's design: one field per knob. ``Design()`` is the baseline: no patterns.

    See the lesson's "Your Design" for what each field does and which lesson teaches it.
    """

    balancer: str = "round_robin"
    instances: int = 2  # fixed count, or the autoscaler's floor
    autoscale: bool = False
    max_instances: int = 2
    target_utilisation: float = 0.6
    cache_size: int = 100
    cache_ttl_s: float = 10.0
    stampede: str = "none"
    payments_timeout_s: float | None = None
    recs_timeout_s: float | None = None
    retry_attempts: int = 3  # attempts per dependency call, the first included
    backoff_base_s: float = 0.0  # 0: retry at once
    backoff_cap_s: float = 1.0
    retry_budget: float | None = None  # retries per request allowed (ratio); None: unlimited
    breaker: bool = False
    breaker_threshold: float = 0.5
    breaker_window_s: float = 5.0
    breaker_sleep_s: float = 5.0
    payments_bulkhead: int | None = None  # permits per instance
    recs_bulkhead: int | None = None
    shed_wait_s: float | None = None  # shed browse above this estimated queueing wait
    rate_limit: float | None = None  # requests/s at the edge
    recs_fallback: bool = False  # browse answers without recommendations when they fail
    defer_payments: bool = False  # a failed charge goes on the queue instead of failing
    queue_bound: int | None = None  # None: unbounded
    admit: Callable[[Signals], bool] | None = None

    def __post_init__(self) -> None:
        check_choice("Design.balancer", self.balancer, POLICIES)
        check_int("Design.instances", self.instances, 1, 40)
        check_int("Design.max_instances", self.max_instances, self.instances, 40)
        check_range("Design.target_utilisation", self.target_utilisation, 0.0, 1.0,
                    low_open=True)
        check_int("Design.cache_size", self.cache_size, 1, SYSTEM.keys)
        check_positive("Design.cache_ttl_s", self.cache_ttl_s)
        check_choice("Design.stampede", self.stampede, STAMPEDE)
        _check_optional("Design.payments_timeout_s", self.payments_timeout_s, check_positive)
        _check_optional("Design.recs_timeout_s", self.recs_timeout_s, check_positive)
        check_int("Design.retry_attempts", self.retry_attempts, 1, 10)
        check_range("Design.backoff_base_s", self.backoff_base_s, 0.0)
        check_range("Design.backoff_cap_s", self.backoff_cap_s, self.backoff_base_s)
        _check_optional("Design.retry_budget", self.retry_budget,
                        lambda n, v: check_range(n, v, 0.0, 1.0))
        check_range("Design.breaker_threshold", self.breaker_threshold, 0.0, 1.0,
                    low_open=True)
        check_positive("Design.breaker_window_s", self.breaker_window_s)
        check_positive("Design.breaker_sleep_s", self.breaker_sleep_s)
        _check_optional("Design.payments_bulkhead", self.payments_bulkhead,
                        lambda n, v: check_int(n, v, 1, SYSTEM.workers))
        _check_optional("Design.recs_bulkhead", self.recs_bulkhead,
                        lambda n, v: check_int(n, v, 1, SYSTEM.workers))
        _check_optional("Design.shed_wait_s", self.shed_wait_s, check_positive)
        _check_optional("Design.rate_limit", self.rate_limit, check_positive)
        _check_optional("Design.queue_bound", self.queue_bound,
                        lambda n, v: check_int(n, v, 1))
        if self.admit is not None and not callable(self.admit):
            raise ValueError(f"Design.admit must be a function of Signals or None "
                             f"(got {self.admit!r})")


@dataclass
class Run:
    """What one simulated day leaves behind: the logs and the monitors' samples."""

    design: Design
    day: Day
    start_s: float
    end_s: float
    requests: dict[int, RequestLog]  # per endpoint, as the client saw it (first try to last answer)
    attempts: RequestLog  # every attempt at the edge
    payments: RequestLog  # every call to payments (API tier's view, timeouts included)
    recs: RequestLog
    replica_reads: RequestLog
    samples: dict[str, list[float]]
    counts: dict[str, int]


class _Dependency:
    """One downstream dependency as the API tier calls it: bulkhead, breaker, timeout, retries."""

    def __init__(self, env: simpy.Environment, pool: ServerPool, design: Design,
                 timeout_s: float | None, bulkhead: int | None, rand: random.Random) -> None:
        self.env, self.pool, self.design, self.rand = env, pool, design, rand
        self.timeout_s = timeout_s
        self.bulkhead_size = bulkhead
        self.log = RequestLog(8192)
        self.client = Client(env, pool, None, log=self.log)
        self.backoff = Backoff(base_s=design.backoff_base_s, cap_s=max(design.backoff_cap_s,
                               design.backoff_base_s), jitter="full")
        self.budget = (None if design.retry_budget is None
                       else RetryBudget(ratio=design.retry_budget, reserve=10.0))

    def for_instance(self) -> tuple[Bulkhead | None, CircuitBreaker | None]:
        clock = self._now
        bulkhead = None if self.bulkhead_size is None else Bulkhead(self.bulkhead_size, clock)
        breaker = None
        if self.design.breaker:
            policy = ErrorRate(self.design.breaker_threshold, self.design.breaker_window_s, 10)
            breaker = CircuitBreaker(policy, self.design.breaker_sleep_s, clock)
        return bulkhead, breaker

    def _now(self) -> float:
        return self.env.now

    def _attempt(self, timeout_s: float | None) -> Event:
        self.client.timeout_s = timeout_s
        return self.client.call(-1, -1)

    def call(self, bulkhead: Bulkhead | None, breaker: CircuitBreaker | None):
        """A SimPy generator: True when the dependency answered OK."""
        if bulkhead is not None and not bulkhead.try_acquire():
            return False
        try:
            if self.budget is not None:
                self.budget.deposit()
            deadline = None if self.timeout_s is None else Deadline(
                self.timeout_s * self.design.retry_attempts, self._now)
            previous = 0.0
            for attempt in range(1, self.design.retry_attempts + 1):
                if breaker is not None and not breaker.allow():
                    return False
                timeout = None
                if deadline is not None:  # this call's timeout, within what the request has left
                    timeout = min(self.timeout_s, deadline.remaining())
                    if timeout <= 0.0:
                        return False
                outcome = yield self._attempt(timeout)
                ok = outcome == _OK
                if breaker is not None:
                    breaker.record(ok)
                if ok:
                    return True
                if attempt == self.design.retry_attempts:
                    return False
                if self.budget is not None and not self.budget.withdraw():
                    return False
                previous = self.backoff.delay(attempt, previous, self.rand.random)
                if previous > 0:
                    yield Timeout(self.env, previous)
            return False
        finally:
            if bulkhead is not None:
                bulkhead.release()


class _Instance:
    """One API instance: a worker pool, its own bulkheads, breakers and load shedder."""

    def __init__(self, model: _Model, index: int) -> None:
        self.model, self.index = model, index
        d = model.design
        self.pool = ServerPool(model.env, SYSTEM.workers, self.handle, log=model.api_log,
                               capacity=SYSTEM.backlog)
        self.pay_bulkhead, self.pay_breaker = model.payments.for_instance()
        self.recs_bulkhead, self.recs_breaker = model.recs.for_instance()
        self.shedder = (None if d.shed_wait_s is None else
                        LoadShedder([math.inf, d.shed_wait_s], SYSTEM.workers, 1.0,
                                    model._now))

    def handle(self, key: int, cls: int):
        m = self.model
        yield Timeout(m.env, m.work())
        if cls == BROWSE:
            yield from m.read_page(self, key)
            ok = yield from m.recs.call(self.recs_bulkhead, self.recs_breaker)
            if not ok and not m.design.recs_fallback:
                return _ERR
            return _OK
        yield m.primary.call(key, cls)
        ok = yield from m.payments.call(self.pay_bulkhead, self.pay_breaker)
        if ok:
            return _OK
        if m.design.defer_payments and m.queue.send(key) is not None:
            m.counts["deferred"] += 1
            return _OK
        return _ERR


class _Model:
    def __init__(self, design: Design, day: Day, start_s: float, end_s: float,
                 seed: int) -> None:
        self.design, self.day = design, day
        self.start_s, self.end_s = start_s, end_s
        self.env = env = simpy.Environment(initial_time=start_s)
        seeds = np.random.SeedSequence([day.seed, seed]).spawn(8)
        self.rng = np.random.default_rng(seeds[0])
        self.rand = random.Random(int(seeds[1].generate_state(1)[0]))
        self.counts = {"deferred": 0, "charged_later": 0, "rate_limited": 0, "admit_refused": 0,
                       "shed": 0, "hot_fills": 0}
        self._work = iter(())
        # database: the primary takes writes, reads go round-robin over the live replicas
        self.primary = ServerPool(env, SYSTEM.primary_servers, LogNormal(SYSTEM.write_s, 1.0),
                                  np.random.default_rng(seeds[2]))
        self.read_log = RequestLog(8192)
        read_dist = LogNormal(SYSTEM.read_s, 1.0)
        self._reads = iter(())
        self._read_rng = np.random.default_rng(seeds[3])
        self._read_dist = read_dist
        self.replicas = {f"replica-{i}": ServerPool(env, SYSTEM.replica_servers, self.query,
                                                    log=self.read_log)
                         for i in range(SYSTEM.replicas)}
        self.router = RoundRobinRouter(Primary(self._now),
                                       [Replica(name) for name in self.replicas])
        # dependencies, with the day's incidents as fault windows
        dep = day.incident("dependency")
        storm = day.incident("retry_storm")
        cut = dep.start_s + 0.6 * (dep.end_s - dep.start_s)
        third = storm.start_s + (storm.end_s - storm.start_s) / 3
        windows = sorted([FaultWindow(dep.start_s, cut, "slow", slow_factor=dep.magnitude),
                          FaultWindow(cut, dep.end_s, "hang"),
                          FaultWindow(storm.start_s, third, "error", error_delay_s=0.005),
                          FaultWindow(third, storm.end_s, "slow", slow_factor=storm.magnitude)],
                         key=lambda w: w.start_s)
        self.payments_pool = ServerPool(env, SYSTEM.payments_servers,
                                        LogNormal(SYSTEM.payments_s, 0.5),
                                        np.random.default_rng(seeds[4]),
                                        faults=FaultSchedule(windows))
        self.recs_pool = ServerPool(env, SYSTEM.recs_servers, LogNormal(SYSTEM.recs_s, 0.5),
                                    np.random.default_rng(seeds[5]))
        self.payments = _Dependency(env, self.payments_pool, design, design.payments_timeout_s,
                                    design.payments_bulkhead, self.rand)
        self.recs = _Dependency(env, self.recs_pool, design, design.recs_timeout_s,
                                design.recs_bulkhead, self.rand)
        # the cache: cache-aside over an LRU store, filled from the replicas
        self.cache = CacheAside(LRUCache(design.cache_size), self._no_load, self._no_save,
                                ttl_s=design.cache_ttl_s, clock=self._now)
        self.hot_cache = CacheAside(self.cache.cache, self._no_load, self._no_save,
                                    ttl_s=SYSTEM.hot_ttl_s, clock=self._now)  # same store
        self.flights: dict[int, Event] = {}  # fills in progress (a lock on the shared cache)
        self.queue = LevelingQueue(design.queue_bound, visibility_timeout_s=30.0,
                                   clock=self._now)
        # API tier and edge
        self.api_log = RequestLog(65536)
        self.instances: list[_Instance] = []
        self.active: list[_Instance] = []
        for _ in range(design.instances):
            self._add_instance()
        self.balancer = POLICIES[design.balancer](len(self.active), seed=day.seed)
        self.bucket = (None if design.rate_limit is None
                       else TokenBucket(design.rate_limit, design.rate_limit, self._now))
        self.autoscaler = HPAPolicy(design.target_utilisation, scale_down_window_s=60.0)
        self.limits = ScalingLimits(design.instances, design.max_instances)
        self.attempts = RequestLog(65536)
        self.requests = {CHECKOUT: RequestLog(16384), BROWSE: RequestLog(65536)}
        self.samples: dict[str, list[float]] = {name: [] for name in (
            "t", "instances", "busy", "queued", "replica_busy", "payments_open", "recs_open",
            "queue_depth", "payments_in_flight")}
        self.arrived_last_s: list[float] = []
        self.pending = 0  # instances being provisioned
        self.busy_window: list[float] = []

    # -- helpers
    def _now(self) -> float:
        return self.env.now

    @staticmethod
    def _no_load(key: int) -> None:  # the simulation fills the cache itself (see read_page)
        raise RuntimeError("the capstone fills the cache from SimPy, not through load()")

    @staticmethod
    def _no_save(key: int, value: Any) -> None:
        raise RuntimeError("browse never writes")

    def work(self) -> float:
        try:
            return next(self._work)
        except StopIteration:
            self._work = iter(LogNormal(SYSTEM.api_work_s, 0.5).sample(self.rng, 4096).tolist())
            return next(self._work)

    def query(self, key: int, cls: int):
        """A replica's handler: the expensive page takes ``hot_read_s``, any other a draw."""
        if key == HOT_KEY:
            self.counts["hot_fills"] += 1
            yield Timeout(self.env, SYSTEM.hot_read_s)
            return None
        try:
            delay = next(self._reads)
        except StopIteration:
            self._reads = iter(self._read_dist.sample(self._read_rng, 4096).tolist())
            delay = next(self._reads)
        yield Timeout(self.env, delay)
        return None

    def _fill_from_db(self, key: int):
        name, _ = self.router.read(key)
        started = self.env.now
        yield self.replicas[name].call(key, BROWSE)
        return self.env.now - started

    def read_page(self, instance: _Instance, key: int):
        """Cache-aside read of page ``key``, with the design's stampede protection."""
        cache, now = self.cache, self.env.now
        entry = cache.cache.get(key, None)
        mode = self.design.stampede
        if entry is not None and entry[1] > now:
            cache.hits += 1
            value, expires_at = entry
            if mode == "xfetch" and key not in self.flights and xfetch(
                    now, expires_at, value, 1.0, self.rand.random):
                self.flights[key] = self.env.process(self._refresh(instance, key))
            return
        cache.misses += 1
        if mode != "none":
            flight = self.flights.get(key)
            if flight is not None:  # share the fill in progress
                yield flight
                return
            flight = self.flights[key] = self.env.process(self._refresh(instance, key))
            yield flight
            return
        took = yield from self._fill_from_db(key)
        self._cache_for(key).fill(key, took)

    def _cache_for(self, key: int) -> CacheAside:
        return self.hot_cache if key == HOT_KEY else self.cache

    def _refresh(self, instance: _Instance, key: int):
        try:
            took = yield from self._fill_from_db(key)
            self._cache_for(key).fill(key, took)  # the value is how long it took (xfetch's delta)
        finally:
            self.flights.pop(key, None)

    def _add_instance(self) -> None:
        instance = _Instance(self, len(self.instances))
        self.instances.append(instance)
        self.active.append(instance)

    # -- the edge
    def edge(self, key: int, cls: int) -> Event:
        """One attempt from a client: rate limit, admission, shedding, balancer, instance."""
        env, d = self.env, self.design
        row = self.attempts.add(env.now, key, cls)
        self.attempts.started(row, env.now)
        done = Event(env)
        self.arrived_last_s.append(env.now)

        def finish(outcome: int) -> None:
            self.attempts.finished(row, env.now, outcome)
            done.succeed(Outcome(outcome))

        if self.bucket is not None and not self.bucket.allow():
            self.counts["rate_limited"] += 1
            finish(_REJ)
            return done
        if d.admit is not None and not d.admit(self.signals(cls)):
            self.counts["admit_refused"] += 1
            finish(_REJ)
            return done
        active = self.active
        if len(active) != self.balancer.servers:
            self.balancer = POLICIES[d.balancer](len(active), seed=self.day.seed)
        balancer = self.balancer
        index = balancer.pick([i.pool.in_system for i in active])
        instance = active[index]
        shedder = instance.shedder
        if shedder is not None and not shedder.admit(cls):
            self.counts["shed"] += 1
            balancer.done(index)
            finish(_REJ)
            return done

        def answered(event: Event) -> None:
            if shedder is not None:
                shedder.done()
            balancer.done(index)
            finish(int(event.value))

        instance.pool.call(key, cls).callbacks.append(answered)
        return done

    def signals(self, cls: int) -> Signals:
        now = self.env.now
        recent = self.arrived_last_s
        while recent and recent[0] < now - 1.0:
            recent.pop(0)
        busy = sum(i.pool.busy for i in self.active)
        return Signals(now, "checkout" if cls == CHECKOUT else "browse", len(self.active),
                       busy / (SYSTEM.workers * len(self.active)),
                       sum(i.pool.queue_length for i in self.active), float(len(recent)))

    # -- the clients
    def client(self, key: int, cls: int) -> None:
        """One client request: tries, and retries every failure or timeout (the day's fuse)."""
        env, day, log = self.env, self.day, self.requests[cls]
        row = log.add(env.now, key, cls)
        log.started(row, env.now)
        tries = [day.client_retries + 1]

        def attempt() -> None:
            tries[0] -= 1
            answer = self.edge(key, cls)
            timer = Timeout(env, day.client_timeout_s)
            state = [False]

            def settle(outcome: int) -> None:
                if state[0]:
                    return
                state[0] = True
                if outcome == _OK or tries[0] == 0:
                    log.finished(row, env.now, int(outcome))
                else:
                    attempt()

            answer.callbacks.append(lambda event: settle(int(event.value)))
            timer.callbacks.append(lambda _: settle(int(_TMO)))

        attempt()

    # -- the control loops
    def monitor(self):
        env, s = self.env, self.samples
        while True:
            yield Timeout(env, SYSTEM.sample_s)
            active = self.active
            busy = sum(i.pool.busy for i in active) / (SYSTEM.workers * len(active))
            s["t"].append(env.now)
            s["instances"].append(len(active))
            s["busy"].append(busy)
            s["queued"].append(sum(i.pool.queue_length for i in active))
            s["replica_busy"].append(max(p.busy for name, p in self.replicas.items()
                                         if any(r.name == name for r in self.router.replicas))
                                     / SYSTEM.replica_servers)
            s["payments_open"].append(_open_share([i.pay_breaker for i in active]))
            s["recs_open"].append(_open_share([i.recs_breaker for i in active]))
            s["queue_depth"].append(self.queue.depth)
            s["payments_in_flight"].append(self.payments_pool.in_system)
            self.busy_window.append(busy)

    def scale(self):
        env = self.env
        while True:
            yield Timeout(env, SYSTEM.control_s)
            window, self.busy_window = self.busy_window, []
            metric = sum(window) / len(window) if window else 0.0
            current = len(self.active) + self.pending
            wanted = self.autoscaler.desired(metric, current, env.now)
            wanted = max(self.limits.min_replicas, min(self.limits.max_replicas, wanted))
            if wanted > current:
                self.pending += wanted - current
                env.process(self._provision(wanted - current))
            elif wanted < current and self.pending == 0:
                for _ in range(current - wanted):
                    if len(self.active) > 1:
                        self.active.pop()  # drained: it finishes what it holds, gets no more

    def _provision(self, n: int):
        yield Timeout(self.env, SYSTEM.provisioning_s)
        for _ in range(n):
            self._add_instance()
        self.pending -= n

    def replica_loss(self):
        lost = self.day.incident("replica_lost")
        name = f"replica-{int(lost.magnitude)}"
        if self.env.now < lost.start_s:
            yield Timeout(self.env, lost.start_s - self.env.now)
        if self.env.now < lost.end_s:
            self.router.replicas = [r for r in self.router.replicas if r.name != name]
            self.router._next = 0
            yield Timeout(self.env, lost.end_s - self.env.now)
            self.router.replicas = [Replica(n) for n in self.replicas]

    def background_worker(self):
        """Charges deferred payments one at a time, when payments answers."""
        env = self.env
        client = Client(env, self.payments_pool, 1.0)
        while True:
            message = self.queue.receive()
            if message is None:
                yield Timeout(env, SYSTEM.worker_charge_every_s)
                continue
            outcome = yield client.call(-1, -1)
            if outcome == _OK:
                self.queue.ack(message)
                self.counts["charged_later"] += 1
            else:
                self.queue.nack(message)
                yield Timeout(env, 1.0)

    def run(self) -> Run:
        env, day = self.env, self.day
        duration = self.end_s - self.start_s

        class _Window:  # the day's rate, seen from the window's start
            mean = day.base_rate

            @staticmethod
            def rate_at(t: Any) -> Any:
                return day.rate_at(np.asarray(t) + self.start_s)

        peak = float(np.max(day.rate_at(np.linspace(self.start_s, self.end_s, 200))))
        arrivals = TimeVaryingArrivals(_Window.rate_at, peak)
        self.hot = day.incident("hot_key")
        keys = ZipfKeys(SYSTEM.keys, SYSTEM.zipf_alpha)
        RequestSource(env, arrivals, self._send, self.rng, horizon_s=duration, keys=keys,
                      class_weights=[day.checkout_share, 1.0 - day.checkout_share])
        env.process(self.monitor())
        if self.design.autoscale:
            env.process(self.scale())
        env.process(self.replica_loss())
        env.process(self.background_worker())
        env.run(until=self.end_s)
        return Run(self.design, day, self.start_s, self.end_s, self.requests, self.attempts,
                   self.payments.log, self.recs.log, self.read_log, self.samples, self.counts)

    def _send(self, key: int, cls: int) -> None:
        if cls == CHECKOUT:
            key = -1
        elif self.hot.active(self.env.now) and self.rand.random() < self.hot.magnitude:
            key = HOT_KEY
        else:
            key += 1  # 1 .. keys: key 0 is the expensive page
        self.client(key, cls)


def _open_share(breakers: list[CircuitBreaker | None]) -> float:
    live = [b for b in breakers if b is not None]
    if not live:
        return 0.0
    return sum(b.state is not State.CLOSED for b in live) / len(live)


def simulate(design: Design, day: Day, start_s: float = 0.0, end_s: float = DAY_S,
             seed: int = 0) -> Run:
    """Run ``design`` through ``day`` from ``start_s`` to ``end_s`` (the whole day by default)."""
    return _Model(design, day, start_s, end_s, seed).run()
