"""How fast the protocol lab checks and runs, against the budgets of issue 15.

Like a stopwatch on each station of an assembly line, this script times, each the best of
``--repeat`` tries (the machine is shared, so the best is the least disturbed):

- the linearizability check of a 1,000-operation single-register history from 10 clients
  (budget 1 s) and of a 10,000-operation key-value history over 100 keys (budget 5 s), both
  recorded from the correct ``SingleLeaderRegister`` with its clients always busy, under a
  random nemesis with a fault every ~80 ms;
- the check of the broken ``ReadAnyReplica``'s history, witness included (no budget: for the
  record);
- a lab run of 5 nodes and 1,000 client operations under a random nemesis (budget 2 s).

It prints a table; ``--check`` exits 1 when a budget is broken.

    .venv/bin/python benchmarks/protocol_lab.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulations.lab import (  # noqa: E402
    RandomNemesis,
    ReadAnyReplica,
    RegisterWorkload,
    Scenario,
    SingleLeaderRegister,
    check_linearizable,
    run,
)


def best_of(repeat: int, task) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = task()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--check", action="store_true", help="exit 1 if a budget is broken")
    args = parser.parse_args()

    # Clients always busy (rate far above what 10 clients can reach, so each asks again as
    # soon as it is answered) under a fault every ~80 ms: the most overlap a run gives.
    busy = RandomNemesis(mean_quiet_s=0.05, mean_fault_s=0.03)
    register = Scenario(nodes=3, workload=RegisterWorkload(n_ops=1000, rate=10_000.0,
                                                           clients=10), nemesis=busy)
    kv = Scenario(nodes=3, workload=RegisterWorkload(n_ops=10_000, rate=10_000.0, clients=10,
                                                     keys=100), nemesis=busy)
    lab = Scenario(nodes=5, workload=RegisterWorkload(n_ops=1000, clients=10),
                   nemesis=RandomNemesis())
    register_history = run(SingleLeaderRegister, register, seed=1).history
    kv_history = run(SingleLeaderRegister, kv, seed=1).history
    broken_history = run(ReadAnyReplica, register, seed=1).history

    rows = []
    for name, budget, task in (
        ("check: register, 1,000 ops, 10 clients", 1.0,
         lambda: check_linearizable(register_history)),
        ("check: key-value, 10,000 ops, 100 keys", 5.0, lambda: check_linearizable(kv_history)),
        ("check + witness: broken register, 1,000 ops", None,
         lambda: check_linearizable(broken_history)),
        ("lab run: 5 nodes, 1,000 ops, random nemesis", 2.0,
         lambda: run(SingleLeaderRegister, lab, seed=1)),
    ):
        seconds, result = best_of(args.repeat, task)
        verdict = getattr(result, "valid", None)
        if verdict is None:
            verdict = f"{len(result.journal)} messages, {len(result.nemesis.faults)} faults"
        else:
            verdict = "linearizable" if verdict else f"not ({len(result.witness)}-op witness)"
        rows.append((name, seconds, budget, verdict))

    print(f"{'case':46} {'seconds':>8} {'budget':>7}  {'within':6}  result")
    broken = False
    for name, seconds, budget, verdict in rows:
        within = "-" if budget is None else ("yes" if seconds <= budget else "NO")
        broken |= within == "NO"
        print(f"{name:46} {seconds:8.3f} {budget or float('nan'):7.1f}  {within:6}  {verdict}")
    return 1 if args.check and broken else 0


if __name__ == "__main__":
    sys.exit(main())
