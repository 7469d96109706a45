"""No released file gives away the number a reasoning question asks for.

Like checking a printed exam for the answer key left on the back page: the expected values come
from running the solutions' own answer cells, and every file in exercises/ (both twins) is
searched for them, in its text and as the value of a constant expression in its code cells.
"""

from __future__ import annotations

import ast
import contextlib
import io
import math
import numbers
import re
from pathlib import Path

import pytest

from course import paths, release
from course.notebook_files import read_ipynb, read_markdown

# The answer cells of the exercises that ask for a number to reason out (choices are left out:
# a choice's options are named in its own question).
REASONING = {
    "specialized/two-phase-commit": ("two-phase-commit-ex3-answer",),
    "distributed-data/sharding": ("sharding-ex3-answer",),
    "distributed-data/gossip-anti-entropy": ("gossip-anti-entropy-ex3-answer",),
    "distributed-data/bloom-filter": ("bloom-filter-ex3-answer",),
    "distributed-data/replication-sync-async": ("replication-sync-async-ex3-answer",),
    "distributed-data/event-sourcing-snapshots": ("event-sourcing-snapshots-ex3-answer",),
    "distributed-data/quorum-consistency": ("quorum-consistency-ex3-answer",),
    "distributed-data/consistent-hashing": ("consistent-hashing-ex3-answer",),
    "architectural/shared-nothing-scale-out": ("shared-nothing-scale-out-ex3-answer",),
    "security/token-validation": ("token-validation-ex3-answer",),
    "security/rate-limiting": ("rate-limiting-ex3-answer",),
    "security/envelope-encryption": ("envelope-encryption-ex3-answer",),
    "security/secrets-rotation": ("secrets-rotation-ex3-answer",),
    "security/zero-trust-mtls": ("zero-trust-mtls-ex3-answer",),
    "communication/push-vs-polling": ("push-vs-polling-ex3-answer",),
    "communication/queue-load-leveling": ("queue-load-leveling-ex3-answer",),
    "communication/scatter-gather": ("scatter-gather-ex3-answer",),
    "communication/publish-subscribe": ("publish-subscribe-ex3-answer",),
    "caching/cache-aside": ("cache-aside-ex3-answer",),
    "caching/cache-stampede-protection": ("cache-stampede-protection-ex3-answer",),
    "caching/eviction-policies": ("eviction-policies-ex3-answer",),
    "caching/multi-tier-cache-cdn": ("multi-tier-cache-cdn-ex3-answer",),
    "caching/ttl-expiry": ("ttl-expiry-ex3-answer",),
    "caching/write-through-write-behind": ("write-through-write-behind-ex3-answer",),
    "foundations/distributed-system-model": ("distributed-system-model-ex3-answer",),
    "performance/auto-scaling": ("auto-scaling-ex3-answer",),
    "performance/chunking": ("chunking-ex3-answer",),
    "performance/concurrency-limits": ("concurrency-limits-ex3-answer",),
    "performance/hedged-requests": ("hedged-requests-ex3-answer",),
    "performance/load-balancing": ("load-balancing-ex3-answer",),
    "performance/read-replicas": ("read-replicas-ex3-answer",),
    "performance/request-batching": ("request-batching-ex3-answer",),
    "architectural/cqrs": ("cqrs-ex3-answer",),
    "architectural/event-driven-architecture": ("event-driven-architecture-ex3-answer",),
    "architectural/serverless": ("serverless-ex3-answer",),
    "capstone/bad-day": ("bad-day-ex3-answer",),
    "architectural/edge-computing": ("edge-computing-ex3-answer",),
    "architectural/cell-based-architecture": ("cell-based-architecture-ex3-answer",),
    "communication/priority-queue": ("priority-queue-ex3-answer",),
    "communication/transactional-outbox": ("transactional-outbox-ex3-answer",),
    "communication/saga": ("saga-ex3-answer",),
    "foundations/queueing-basics": ("fanout-answer", "fast-or-pooled-answer"),
    "resilience/backpressure": ("backpressure-ex3-answer",),
    "resilience/bulkhead": ("bulkhead-ex3-answer",),
    "resilience/circuit-breaker": ("circuit-breaker-ex3-answer", "circuit-breaker-ex4-answer"),
    "resilience/failover": ("failover-ex3-answer",),
    "resilience/failure-detection": ("failure-detection-ex3-answer",),
    "resilience/load-shedding": ("load-shedding-ex3-answer",),
    "resilience/retry-backoff-jitter": ("retry-backoff-jitter-ex3-answer",),
    "resilience/timeouts": ("timeouts-ex3-answer",),
    "specialized/clock-sync-commit-wait": ("clock-sync-commit-wait-ex3-answer",),
    "specialized/id-generation": ("id-generation-ex3-answer",),
    "specialized/leader-election": ("leader-election-ex3-answer",),
    "specialized/consensus": ("consensus-ex3-answer",),
    "specialized/leases-distributed-locks": ("leases-distributed-locks-ex3-answer",),
    "specialized/partitioned-log-consumers": ("partitioned-log-consumers-ex3-answer",),
}
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def expected_values(lesson: str) -> dict[str, float]:
    """Each reasoning answer's value: the setup cells and the solution of its answer cell run."""
    nb = read_markdown(paths.SOLUTIONS / f"{lesson}.md")
    prose = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")
    namespace: dict = {}
    values: dict[str, float] = {}
    for cell in nb.cells:
        grade_id = release.nbgrader_of(cell).get("grade_id", "")
        setup = cell.cell_type == "code" and not release.is_answer(cell) and not \
            release.is_test(cell) and grade_id.endswith("-setup")
        if not (setup or grade_id in REASONING[lesson]):
            continue
        source = "\n".join(line for line in cell.source.split("\n")
                           if not any(marker in line for marker in release.MARKERS))
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(source, grade_id, "exec"), namespace)  # noqa: S102 - our own solutions
        if setup:
            continue
        for statement in ast.parse(source).body:
            for target in getattr(statement, "targets", []):
                value = namespace.get(getattr(target, "id", ""))
                if (f"`{getattr(target, 'id', '')}`" in prose and isinstance(value, numbers.Real)
                        and not isinstance(value, bool)):
                    values[target.id] = float(value)  # a variable the question names
    return values


def significant_digits(token: str) -> int:
    mantissa = token.lower().split("e")[0]
    digits = mantissa.replace(".", "").lstrip("0")
    return len(digits if "." in mantissa else digits.rstrip("0"))


def shown_in_text(text: str, value: float) -> list[str]:
    """Numbers written in `text` (three significant digits or more) that round to `value`."""
    found = []
    for token in NUMBER.findall(text):
        if significant_digits(token) < 3:
            continue  # "60" or "0.5" is too common to mean the answer
        decimals = len(token.split(".")[1]) if "." in token and "e" not in token.lower() else 0
        shown = float(token)
        if math.isclose(round(value, decimals) if decimals else value, shown, rel_tol=1e-9) or (
                "e" in token.lower() and math.isclose(value, shown, rel_tol=1e-3)):
            found.append(token)
    return found


def constants_in_code(source: str) -> list[float]:
    """The numbers a code cell writes, constant expressions (`1000 / 30`) included."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant | ast.BinOp | ast.UnaryOp):
            try:
                value = ast.literal_eval(node) if isinstance(node, ast.Constant) else eval(  # noqa: S307
                    compile(ast.Expression(node), "<constant>", "eval"), {"__builtins__": {}})
            except Exception:  # noqa: BLE001 - not a constant expression
                continue
            if isinstance(value, numbers.Real) and not isinstance(value, bool):
                found.append(float(value))
    return found


def released_files(lesson: str) -> list[Path]:
    return sorted(paths.EXERCISES.glob(f"{lesson}.*"))


@pytest.mark.parametrize("lesson", sorted(REASONING))
def test_no_released_file_shows_a_reasoning_answer(lesson):
    values = expected_values(lesson)
    assert values, f"{lesson}: no reasoning answer found in its solutions"
    files = released_files(lesson)
    assert {f.suffix for f in files} == {".md", ".ipynb"}, files
    leaks = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        code = [cell.source for cell in read_ipynb(path).cells
                if cell.cell_type == "code"] if path.suffix == ".ipynb" else []
        for name, value in values.items():
            leaks += [f"{path.name}: {name} = {value:g} written as {token}"
                      for token in shown_in_text(text, value)]
            leaks += [f"{path.name}: {name} = {value:g} as a constant in a code cell"
                      for source in code for constant in constants_in_code(source)
                      if math.isclose(constant, value, rel_tol=1e-9)]
    assert not leaks, "\n".join(leaks)


def test_the_scan_finds_an_answer_that_is_there():
    """The checks above find a value written in prose, and one computed in a visible cell."""
    assert shown_in_text("the share is 0.333 of the pool", 1 / 3) == ["0.333"]
    assert shown_in_text("about 0.3 of it, 60 s", 1 / 3) == []
    assert 0.5 in constants_in_code("expect_close(partitioned_s, 0.5, rel=1e-3)")
    assert any(math.isclose(c, 1000 / 30) for c in constants_in_code("x = 1000 / 30"))
