"""The lab's judges: each reads a history (never the nodes) and returns a ``CheckResult``.

- ``check_linearizable``: registers and key-value stores (Wing-Gong-Lowe search, per key)
- ``check_set``: grow-only set, with time to visibility
- ``check_counter``: counter reads within their bounds
- ``check_unique_ids``: no id handed out twice
- ``check_atomic_commit``: transactions decided alike everywhere, committed only on all yes
- ``check_one_leader_per_term``: no two leaders reported for one term
- ``check_fenced_writes``: the storage never takes an older fencing token after a newer one
- ``performance``: availability, throughput, messages per operation, latency percentiles
"""

from simulations.lab.checkers.atomic_commit import check_atomic_commit
from simulations.lab.checkers.counters import check_counter
from simulations.lab.checkers.fencing import check_fenced_writes
from simulations.lab.checkers.ids import check_unique_ids
from simulations.lab.checkers.leaders import check_one_leader_per_term
from simulations.lab.checkers.linearizability import (
    CasRegister,
    check_linearizable,
    is_linearizable,
)
from simulations.lab.checkers.performance import performance
from simulations.lab.checkers.result import CheckResult
from simulations.lab.checkers.sets import check_set

__all__ = [
    "CasRegister", "CheckResult", "check_atomic_commit", "check_counter",
    "check_fenced_writes", "check_linearizable", "check_one_leader_per_term", "check_set",
    "check_unique_ids", "is_linearizable", "performance",
]
