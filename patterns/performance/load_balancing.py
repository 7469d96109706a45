"""Load balancing: pick which server takes the next request.

Picture the checkouts of a supermarket. A shopper can walk to any till (random), take the tills
in turn (round robin), scan every queue for the shortest (join the shortest queue), or glance
at two tills and join the shorter (the power of two choices). The glance costs almost nothing
and gets nearly all the benefit of the full scan; and a shopper who reads the queue lengths off
a board updated once a minute joins, with everyone else, the queue that was short a minute ago.

Every balancer has the same interface, so a simulation or a proxy can swap them:
``pick(loads)`` returns the index of the server for the next request, where ``loads[i]`` is the
balancer's view of server i's queue (possibly stale); ``done(i)`` tells it a request to server i
finished (only ``LeastOutstanding`` uses it: it counts its own requests in flight and ignores
``loads``). ``ProductionBalancer`` wraps any of them with validated settings, health, a lock,
logging and ``prometheus_client`` metrics. Nothing here imports from ``simulations``.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from patterns.checks import check_int
from patterns.metrics import Instruments

__all__ = [
    "Balancer", "BalancerConfig", "JoinShortestQueue", "LeastOutstanding", "NoHealthyServer",
    "POLICIES", "PowerOfChoices", "ProductionBalancer", "RandomBalancer", "RoundRobin",
]

log = logging.getLogger(__name__)


class Balancer:
    """The common interface: ``pick(loads) -> server index`` and ``done(server)``."""

    def __init__(self, servers: int, seed: int | None = 0) -> None:
        self.servers = check_int("servers", servers, 1)
        self.rng = random.Random(seed)

    def pick(self, loads: Sequence[int]) -> int:
        raise NotImplementedError

    def done(self, server: int) -> None:
        """A request sent to ``server`` has finished (most balancers keep no count)."""


class RandomBalancer(Balancer):
    """Any server, uniformly at random; reads no load information at all."""

    def pick(self, loads: Sequence[int]) -> int:
        return self.rng.randrange(self.servers)


class RoundRobin(Balancer):
    """Servers in turn, 0, 1, ..., n − 1, 0, ...; reads no load information either."""

    def __init__(self, servers: int, seed: int | None = 0) -> None:
        super().__init__(servers, seed)
        self.next = 0

    def pick(self, loads: Sequence[int]) -> int:
        server, self.next = self.next, (self.next + 1) % self.servers
        return server


class JoinShortestQueue(Balancer):
    """The server with the smallest load, ties broken at random; reads every server's load."""

    def pick(self, loads: Sequence[int]) -> int:
        shortest = min(loads)
        server = loads.index(shortest)
        for _ in range(self.rng.randrange(loads.count(shortest))):  # a random one of the tied
            server = loads.index(shortest, server + 1)
        return server


class PowerOfChoices(Balancer):
    """The least loaded of ``choices`` distinct servers drawn at random (d = 2: two choices)."""

    def __init__(self, servers: int, choices: int = 2, seed: int | None = 0) -> None:
        super().__init__(servers, seed)
        self.choices = check_int("choices", choices, 1, self.servers)

    def pick(self, loads: Sequence[int]) -> int:
        if self.choices == 2:  # the common case, without sample()'s overhead
            a = self.rng.randrange(self.servers)
            b = self.rng.randrange(self.servers - 1)
            b += b >= a
            return b if loads[b] < loads[a] else a
        return min(self.rng.sample(range(self.servers), self.choices), key=loads.__getitem__)


class LeastOutstanding(Balancer):
    """Fewest requests in flight *from this balancer*, counted by itself (``pick`` adds one,
    ``done`` takes it off), so its view is never stale; ``loads`` is ignored. ``choices=None``
    scans every server; ``choices=2`` compares two random servers, as Envoy's least-request
    policy does by default."""

    def __init__(self, servers: int, choices: int | None = None, seed: int | None = 0) -> None:
        super().__init__(servers, seed)
        self.outstanding = [0] * self.servers
        self.chooser = (JoinShortestQueue(servers, seed) if choices is None
                        else PowerOfChoices(servers, choices, seed))

    def pick(self, loads: Sequence[int] = ()) -> int:
        server = self.chooser.pick(self.outstanding)
        self.outstanding[server] += 1
        return server

    def done(self, server: int) -> None:
        self.outstanding[server] -= 1


POLICIES = {"random": RandomBalancer, "round_robin": RoundRobin, "jsq": JoinShortestQueue,
            "two_choices": PowerOfChoices, "least_outstanding": LeastOutstanding}


_DOWN = 1 << 30


class NoHealthyServer(RuntimeError):
    """Every server is marked down: there is nowhere to send the request."""


@dataclass(frozen=True)
class BalancerConfig:
    """Validated settings: how many servers, the policy's name, its choices d, its seed."""

    servers: int = 10
    policy: str = "least_outstanding"
    choices: int | None = 2
    seed: int | None = 0

    def __post_init__(self) -> None:
        check_int("BalancerConfig.servers", self.servers, 1)
        if self.policy not in POLICIES:
            raise ValueError(f"BalancerConfig.policy must be one of {', '.join(POLICIES)} "
                             f"(got {self.policy!r})")
        if self.choices is not None:
            check_int("BalancerConfig.choices", self.choices, 1, self.servers)

    def build(self) -> Balancer:
        cls = POLICIES[self.policy]
        if cls in (PowerOfChoices, LeastOutstanding) and self.choices is not None:
            return cls(self.servers, choices=self.choices, seed=self.seed)
        return cls(self.servers, seed=self.seed)


class ProductionBalancer:
    """A policy hardened for a proxy: servers marked down get nothing (a request never waits
    on a dead host), the last healthy one still works, all down raises ``NoHealthyServer``;
    a lock around the policy's state; state changes logged; picks counted per server and the
    chosen server's load observed in a histogram, in a registry of its own."""

    def __init__(self, config: BalancerConfig | None = None) -> None:
        self.config = config or BalancerConfig()
        self.policy = self.config.build()
        self.healthy = [True] * self.config.servers
        self._lock = threading.Lock()
        self.metrics = Instruments("load_balancer", "Requests routed by the balancer")
        self._load_seen = self.metrics.histogram(
            "chosen_load", "Load of the chosen server when picked (requests)",
            buckets=(0, 1, 2, 4, 8, 16, 32))

    def pick(self, loads: Sequence[int] | None = None) -> int:
        """The server for the next request, never one marked down."""
        with self._lock:
            live = [i for i, ok in enumerate(self.healthy) if ok]
            if not live:
                self.metrics.count("no_healthy_server")
                raise NoHealthyServer(f"all {self.config.servers} servers are marked down")
            own = isinstance(self.policy, LeastOutstanding)
            seen = list(self.policy.outstanding if own
                        else loads if loads is not None else [0] * self.config.servers)
            for i in range(len(seen)):  # a server marked down looks hopelessly busy
                seen[i] += 0 if self.healthy[i] else _DOWN
            chooser = self.policy.chooser if own else self.policy
            for _ in range(2 * self.config.servers):
                server = chooser.pick(seen)
                if self.healthy[server]:
                    break
            else:  # a load-blind policy kept landing on dead servers
                server = self.policy.rng.choice(live)
            if own:
                self.policy.outstanding[server] += 1
            self.metrics.count("picks")
            self.metrics.count(f"server_{server}")
            self._load_seen.observe(seen[server])
            return server

    def done(self, server: int) -> None:
        check_int("server", server, 0, self.config.servers - 1)
        with self._lock:
            self.policy.done(server)
            self.metrics.count("done")

    def mark(self, server: int, healthy: bool) -> None:
        """Record a health check's verdict on ``server`` (logged when it changes)."""
        check_int("server", server, 0, self.config.servers - 1)
        with self._lock:
            changed, self.healthy[server] = self.healthy[server] != healthy, healthy
        if changed:
            self.metrics.count("up" if healthy else "down")
            log.log(logging.INFO if healthy else logging.WARNING, "server %d marked %s",
                    server, "up" if healthy else "down")
