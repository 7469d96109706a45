"""Edge computing: serve each user from a nearby small site, spilling to the next one when full.

Picture a chain of corner shops instead of one supermarket: the walk is short, but each shop has
two tills, so a burst of customers makes a queue that the supermarket's twenty tills would have
absorbed. When a shop is full or closed, the customer walks on to the next nearest one, and as a
last resort to the supermarket (the central site).

The Level 2 class is :class:`EdgeRouter`: for a user's region it picks the nearest healthy site
with room, spilling over to the next nearest. Health comes from heartbeats timed with an
injectable ``clock``, so the same class runs in real time and inside a SimPy simulation. The
Level 3 class :class:`ProductionEdgeRouter` builds on it: a validated :class:`RouterConfig`, a
lock, ``logging``, ``prometheus_client`` metrics through ``patterns.metrics.Instruments``, and
failover to the central site. Nothing here imports from ``simulations``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from patterns.checks import check_int, check_non_negative, check_positive
from patterns.metrics import Instruments

__all__ = ["EdgeRouter", "NoSiteAvailable", "ProductionEdgeRouter", "RouterConfig"]

Clock = Callable[[], float]
log = logging.getLogger(__name__)


class NoSiteAvailable(RuntimeError):
    """Every site the user could reach is down or full."""


class EdgeRouter:
    """Send a user to the nearest healthy site that has room; spill over to the next nearest.

    ``rtt_s[region][site]`` is the round trip from a region's users to a site (seconds).
    ``capacity[site]`` is the most requests a site takes at once. A site is healthy while its
    last heartbeat is at most ``health_timeout_s`` old (every site starts healthy at creation).
    """

    def __init__(self, rtt_s: Mapping[str, Mapping[str, float]], capacity: Mapping[str, int],
                 health_timeout_s: float = 3.0, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self.capacity = dict(capacity)
        self.health_timeout_s = health_timeout_s
        self.in_flight = {site: 0 for site in self.capacity}
        self.last_beat = {site: clock() for site in self.capacity}
        # For each region, its sites from nearest to farthest (ties: by name).
        self.order = {region: sorted(rtts, key=lambda s: (rtts[s], s))
                      for region, rtts in rtt_s.items()}

    def heartbeat(self, site: str) -> None:
        """The site says it is alive now."""
        self.last_beat[site] = self.clock()

    def healthy(self, site: str) -> bool:
        return self.clock() - self.last_beat[site] <= self.health_timeout_s

    def route(self, region: str) -> str:
        """The site for a request from ``region``; it counts as in flight until ``release``."""
        for site in self.order[region]:
            if self.healthy(site) and self.in_flight[site] < self.capacity[site]:
                self.in_flight[site] += 1
                return site
        raise NoSiteAvailable(f"no healthy site with room for region {region!r}")

    def release(self, site: str) -> None:
        """A request sent to ``site`` has finished."""
        self.in_flight[site] -= 1


@dataclass(frozen=True)
class RouterConfig:
    """Settings of the production router, checked when made."""

    health_timeout_s: float = 3.0
    max_in_flight: int = 64          # per edge site
    central_site: str = "central"    # the site of last resort, never refused while healthy
    central_max_in_flight: int = 1024

    def __post_init__(self) -> None:
        check_positive("RouterConfig.health_timeout_s", self.health_timeout_s)
        check_int("RouterConfig.max_in_flight", self.max_in_flight, 1)
        check_int("RouterConfig.central_max_in_flight", self.central_max_in_flight, 1)
        if not self.central_site:
            raise ValueError("RouterConfig.central_site must be a non-empty name (got '')")


class ProductionEdgeRouter(EdgeRouter):
    """The edge router, hardened: validated config, a lock, logging, metrics, central failover.

    ``edge_rtt_s[region][site]`` lists the edge sites; ``central_rtt_s[region]`` the round trip
    to the central site, which is tried after every edge site (a regional failure or a full
    region still gets an answer, only slower). Metrics: ``routed_edge``, ``spilled`` (not the
    nearest site), ``central`` and ``refused`` events, and a histogram of the chosen site's RTT.
    """

    def __init__(self, edge_rtt_s: Mapping[str, Mapping[str, float]],
                 central_rtt_s: Mapping[str, float], config: RouterConfig | None = None,
                 clock: Clock = time.monotonic) -> None:
        self.config = config or RouterConfig()
        central = self.config.central_site
        sites = sorted({site for rtts in edge_rtt_s.values() for site in rtts})
        if central in sites:
            raise ValueError(
                f"RouterConfig.central_site must not be an edge site (got {central!r})")
        for region in edge_rtt_s:
            check_non_negative(f"central_rtt_s[{region!r}]", central_rtt_s[region])
            for site, rtt in edge_rtt_s[region].items():
                check_non_negative(f"edge_rtt_s[{region!r}][{site!r}]", rtt)
        capacity = {site: self.config.max_in_flight for site in sites}
        capacity[central] = self.config.central_max_in_flight
        super().__init__(edge_rtt_s, capacity, self.config.health_timeout_s, clock)
        # The central site goes last for every region, whatever its RTT.
        for region in self.order:
            self.order[region].append(central)
        self.rtt_s = {region: {**edge_rtt_s[region], central: central_rtt_s[region]}
                      for region in edge_rtt_s}
        self._lock = threading.Lock()
        self.metrics = Instruments("edge_router", "Requests routed by the edge router")
        self._rtt = self.metrics.histogram("chosen_rtt_seconds", "RTT to the chosen site",
                                           buckets=(0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32))
        self._down: set[str] = set()

    def heartbeat(self, site: str) -> None:
        with self._lock:
            super().heartbeat(site)

    def route(self, region: str) -> str:
        with self._lock:
            if region not in self.order:
                raise ValueError(f"region must be one of {', '.join(self.order)} (got {region!r})")
            for site in self.order[region]:
                if not self.healthy(site):
                    if site not in self._down:
                        self._down.add(site)
                        log.warning("site %s missed its heartbeat; routing around it", site)
            try:
                site = super().route(region)
            except NoSiteAvailable:
                self.metrics.count("refused")
                log.error("refused a request from %s: no site has room", region)
                raise
            for down in [s for s in self._down if self.healthy(s)]:
                self._down.discard(down)
                log.info("site %s is back", down)
        if site == self.config.central_site:
            self.metrics.count("central")
        else:
            self.metrics.count("routed_edge")
            if site != self.order[region][0]:
                self.metrics.count("spilled")
        self._rtt.observe(self.rtt_s[region][site])
        return site

    def release(self, site: str) -> None:
        with self._lock:
            if self.in_flight[site] <= 0:
                raise ValueError(f"release({site!r}) without a request in flight there")
            super().release(site)

    def healthy_sites(self) -> Sequence[str]:
        with self._lock:
            return [site for site in self.capacity if self.healthy(site)]
