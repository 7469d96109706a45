"""The protocol lab: your node code on a faulty network, judged by what its clients saw.

Picture a driving test on a closed course. You bring the car (a node class); the examiner
sets up the course (a ``Scenario``: how many nodes, what the clients ask, the links'
latencies) and a script of mishaps (the nemesis: lost and duplicated messages, partitions,
crashes, pauses, wrong clocks); the run is filmed (the ``history`` of every client operation
and the ``journal`` of every message), and judges score the film, not the engine (the
checkers). The seed fixes everything, so a failed test can be replayed exactly.

API map (all re-exported here):

- node: ``Node`` (subclass it: ``on_request(ctx, request)`` required, ``on_message(ctx, src,
  message)``, ``on_timer(ctx, name)``, ``on_start(ctx)``), ``Context`` (``node_id``, ``nodes``,
  ``peers``, ``now`` (the node's clock), ``disk`` (kept across restarts), ``rng``, ``send``,
  ``broadcast``, ``set_timer``, ``reply``, ``fail``), ``Request`` (``id``, ``client``, ``f``,
  ``key``, ``value``)
- network: ``Latency`` (a link's delay distribution by name), ``MessageTable`` (the journal:
  ``src``, ``dst``, ``sent_s``, ``arrived_s``, ``fate``, ``copy_of``, ``body``), ``FATES``
- nemesis: ``Nemesis`` (a fixed schedule) of ``Loss``, ``Duplicate``, ``Reorder``,
  ``Partition``, ``OneWay``, ``Crash`` (restart with ``end_s``, else crash-stop), ``Pause``,
  ``ClockSkew``; ``RandomNemesis`` (a schedule written from the seed), ``FAULT_KINDS``
- workloads: ``RegisterWorkload`` (read / write / cas on ``keys`` registers), ``SetWorkload``,
  ``CounterWorkload``, ``UniqueIdWorkload``, ``CommitWorkload`` (atomic commit),
  ``LeaderWorkload`` (who leads, in which term), ``LockedWriteWorkload`` (writes under a lock,
  to a storage node); each with ``n_ops``, ``rate``, ``clients``, ``timeout_s``
- history: ``History`` (``Op`` rows: ``client``, ``f``, ``key``, ``value``, ``output``,
  ``invoke_s``, ``complete_s``, ``status``, ``node``; ``column``, ``where``, ``by_key``,
  ``counts``), ``Status`` (OK, FAIL, UNKNOWN)
- run: ``Scenario``, ``run(node_class, scenario, seed) -> LabRun`` (``history``, ``journal``,
  ``nemesis``, ``check()``, ``performance()``, ``replay_call``)
- checkers: ``check_linearizable`` (registers and key-value stores), ``is_linearizable``,
  ``CasRegister``, ``check_set``, ``check_counter``, ``check_unique_ids``,
  ``check_atomic_commit``, ``check_one_leader_per_term``, ``check_fenced_writes`` (no write
  with an older fencing token after a newer one), ``performance``,
  ``CheckResult`` (``valid``, ``reason``, ``witness``, ``seed``, ``replay``, ``assert_valid()``)
- examples: ``SingleLeaderRegister`` (correct), ``ReadAnyReplica`` (stale reads)
- diagrams (import as ``from simulations.lab import diagrams``, to keep matplotlib out of plain
  imports): ``diagrams.space_time`` (a run or a witness as a Lamport diagram),
  ``diagrams.timeline`` (each client's operations as bars, the witness highlighted)

Example: a broken register under a random nemesis, its witness, and its replay::

    result = run(ReadAnyReplica, Scenario(nodes=3, nemesis=RandomNemesis()), seed=1).check()
    print(result)             # FAIL linearizability: ... seed 1; replay it with: run(...)
    diagrams.timeline(lab_run.history, witness=result.witness)
"""

from simulations.lab.checkers import (
    CasRegister,
    CheckResult,
    check_atomic_commit,
    check_counter,
    check_fenced_writes,
    check_linearizable,
    check_one_leader_per_term,
    check_set,
    check_unique_ids,
    is_linearizable,
    performance,
)
from simulations.lab.commit import CommitWorkload
from simulations.lab.examples import ReadAnyReplica, SingleLeaderRegister
from simulations.lab.history import History, Op, Status
from simulations.lab.leadership import LeaderWorkload
from simulations.lab.locking import LockedWriteWorkload
from simulations.lab.nemesis import (
    FAULT_KINDS,
    ClockSkew,
    Crash,
    Duplicate,
    Loss,
    Nemesis,
    OneWay,
    Partition,
    Pause,
    RandomNemesis,
    Reorder,
)
from simulations.lab.network import FATES, Latency, MessageTable
from simulations.lab.node import Context, Node, Request
from simulations.lab.run import LabRun, Scenario, run
from simulations.lab.workloads import (
    CounterWorkload,
    RegisterWorkload,
    SetWorkload,
    UniqueIdWorkload,
)

__all__ = [
    "FATES", "FAULT_KINDS",
    "CasRegister", "CheckResult", "ClockSkew", "CommitWorkload", "Context", "CounterWorkload",
    "Crash", "Duplicate", "History", "LabRun", "Latency", "LeaderWorkload",
    "LockedWriteWorkload", "Loss", "MessageTable", "Nemesis", "Node", "OneWay", "Op",
    "Partition", "Pause", "RandomNemesis", "ReadAnyReplica", "RegisterWorkload", "Reorder",
    "Request", "Scenario", "SetWorkload", "SingleLeaderRegister", "Status", "UniqueIdWorkload",
    "check_atomic_commit", "check_counter", "check_fenced_writes", "check_linearizable",
    "check_one_leader_per_term", "check_set", "check_unique_ids", "is_linearizable",
    "performance", "run",
]
