"""The patterns themselves: code a reader could lift into a service.

Like the tools on a workshop wall, each lesson's pattern hangs in its own place,
``patterns/<category>/<module>.py``: the small Level 2 class (time injectable, so the same class
runs in real time and inside a simulation) and the Level 3 production class built on it, with
its validated config, its errors, ``logging`` and ``prometheus_client`` metrics
(``patterns.metrics``). Input checks shared with the simulations are in ``patterns.checks``.
Nothing here imports from ``simulations``: the studies import their pattern, never the reverse.
"""
