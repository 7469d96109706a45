"""One lab run: your node class on a faulty network, its clients, and what they saw.

Picture a flight simulator session: the instructor's script (the ``Scenario``: how many
engines, what weather, which failures when) and a seed fix everything, so the same session can
be flown again, second for second, to study a crash. ``run(node_class, scenario, seed)`` builds
the SimPy world (nodes ``n1`` ... ``nN``, the network, the nemesis's faults, the clients), runs it
until the clients are done and returns a ``LabRun``: the ``history`` (what clients saw), the
``journal`` (every message), the concrete ``nemesis`` played, and ``check()``, whose report on a
failure names the seed and the one call that replays the run (``run.replay_call``).

Every random number comes from ``numpy.random.SeedSequence(seed)``, split into independent
streams (the clients' scripts, the network, the nemesis, one per node), so a seed fixes the run
message for message.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import simpy

from patterns.checks import check_int, check_non_negative
from simulations.lab.checkers.performance import performance
from simulations.lab.checkers.result import CheckResult
from simulations.lab.history import History, HistoryLog
from simulations.lab.nemesis import ClockSkew, Crash, Nemesis, Pause, RandomNemesis
from simulations.lab.network import Latency, MessageTable, Network
from simulations.lab.node import _Host, check_node_class
from simulations.lab.workloads import RegisterWorkload, Workload, _Client, final_reads

__all__ = ["LabRun", "Scenario", "run"]


@dataclass(frozen=True)
class Scenario:
    """Everything about a run except the node class and the seed.

    ``nodes``: how many (named ``n1`` ... ``nN``); ``workload``: the clients; ``nemesis``: a
    ``Nemesis`` (a fixed schedule) or a ``RandomNemesis`` (written from the seed);
    ``latency``: the links' delays, first match wins (the default: exponential, mean 5 ms);
    ``settle_s``: quiet time after the workload and the faults before the final reads.
    """

    nodes: int = 3
    workload: Workload = field(default_factory=RegisterWorkload)
    nemesis: Nemesis | RandomNemesis = field(default_factory=Nemesis)
    latency: tuple[Latency, ...] = (Latency(),)
    settle_s: float = 1.0

    def __post_init__(self) -> None:
        check_int("Scenario.nodes", self.nodes, 1)
        check_non_negative("Scenario.settle_s", self.settle_s)
        if not isinstance(self.workload, Workload):
            raise ValueError(f"Scenario.workload must be a RegisterWorkload, SetWorkload, "
                             f"CounterWorkload or UniqueIdWorkload (got {self.workload!r})")
        if not isinstance(self.nemesis, Nemesis | RandomNemesis):
            raise ValueError(f"Scenario.nemesis must be a Nemesis or a RandomNemesis "
                             f"(got {self.nemesis!r})")

    @property
    def node_ids(self) -> tuple[str, ...]:
        return tuple(f"n{i}" for i in range(1, self.nodes + 1))


@dataclass(frozen=True, eq=False)
class LabRun:
    """A finished run: its inputs, what the clients saw, every message, and each node's disk
    as the run left it."""

    node_class: type
    scenario: Scenario
    seed: int
    history: History
    journal: MessageTable
    nemesis: Nemesis
    duration_s: float
    disks: dict[str, dict]

    @property
    def nodes(self) -> tuple[str, ...]:
        return self.scenario.node_ids

    @property
    def replay_call(self) -> str:
        """The one call that runs this again, identically (names from ``simulations.lab``
        and the node class)."""
        return f"run({self.node_class.__name__}, {self.scenario!r}, seed={self.seed})"

    def check(self) -> CheckResult:
        """The workload's checker on the history, with this run's seed and replay call."""
        result = self.scenario.workload.check(self.history)
        return replace(result, seed=self.seed, replay=self.replay_call)

    def performance(self) -> dict[str, Any]:
        """Availability, throughput, messages per operation and latency percentiles."""
        return performance(self.history, self.journal, self.nodes)


def _check_latency_names(scenario: Scenario) -> None:
    nodes = scenario.node_ids
    clients = {f"c{i}" for i in range(scenario.workload.clients + 1)}
    for spec in scenario.latency:
        for name in (spec.src, spec.dst):
            if name is not None and name not in nodes and name not in clients:
                raise ValueError(f"Latency names {name!r}, which is not in this run "
                                 f"(nodes: {', '.join(nodes)}; clients c0 ...)")


def run(node_class: type, scenario: Scenario | None = None, seed: int = 0) -> LabRun:
    """Run ``node_class`` in ``scenario`` with ``seed``; see the module's docstring."""
    check_node_class(node_class)
    scenario = scenario or Scenario()
    check_int("seed", seed, 0)
    streams = np.random.SeedSequence(seed).spawn(3 + scenario.nodes)
    rng_clients, rng_network, rng_nemesis = (np.random.default_rng(s) for s in streams[:3])
    nodes, workload = scenario.node_ids, scenario.workload
    nemesis = scenario.nemesis.schedule(rng_nemesis, nodes, workload.horizon_s)
    _check_latency_names(scenario)

    env = simpy.Environment()
    network = Network(env, nodes, scenario.latency, rng_network, nemesis)
    hosts = {}
    for name, stream in zip(nodes, streams[3:], strict=True):
        host = hosts[name] = _Host(env, name, nodes, node_class, np.random.default_rng(stream),
                                   network.send)
        network.attach(name, host.deliver, lambda host=host: host.up)
    for host in hosts.values():
        host.start()
    _play(env, nemesis, hosts)

    log = HistoryLog()
    scripts = workload.plan(rng_clients, nodes)
    clients = [env.process(_Client(env, c, workload, network, log).play(script))
               for c, script in enumerate(scripts)]
    done = env.all_of(clients)
    if workload.final_reads:
        ends = [f.end_s for f in nemesis.faults if getattr(f, "end_s", None) is not None]
        reader = _Client(env, workload.clients, workload, network, log)
        done = env.process(_after(env, done, final_reads(
            env, reader, nodes, lambda: max([env.now, *ends]) + scenario.settle_s)))
    env.run(until=done)
    return LabRun(node_class, scenario, seed, log.table(), network.journal.table(), nemesis,
                  env.now, {name: host.disk for name, host in hosts.items()})


def _after(env: simpy.Environment, first: simpy.Event, then: Any):
    yield first
    yield env.process(then)


def _play(env: simpy.Environment, nemesis: Nemesis, hosts: dict[str, _Host]) -> None:
    """Schedule the node faults: crashes and restarts, pauses, clock jumps."""

    def at(time_s: float, action) -> None:
        env.timeout(time_s).callbacks.append(lambda _: action())

    for fault in nemesis.of(Crash, Pause):
        host = hosts[fault.node]
        down, up = (host.crash, host.start) if isinstance(fault, Crash) else (
            host.pause, host.resume)
        at(fault.start_s, down)
        if fault.end_s is not None:
            at(fault.end_s, up)
    for fault in nemesis.of(ClockSkew):
        clock = hosts[fault.node].clock
        at(fault.at_s, lambda clock=clock, f=fault: clock.adjust(env.now, f.skew_s, f.drift))
