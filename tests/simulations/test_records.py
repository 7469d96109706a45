"""The request log stores rows compactly, grows without losing data and copies out tables."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulations.records import Outcome, RequestLog, RequestTable


def _log_of_three() -> RequestLog:
    log = RequestLog(expected=2)
    a = log.add(0.0)
    b = log.add(1.0, key=7, cls=1)
    c = log.add(2.0)
    log.started(a, 0.5, server=0)
    log.finished(a, 1.5, Outcome.OK)
    log.finished(b, 1.0, Outcome.REJECTED)
    log.started(c, 2.0, server=1)
    return log


def test_rows_hold_what_was_written_across_growth() -> None:
    table = _log_of_three().table()
    assert len(table) == 3
    assert table.arrival.tolist() == [0.0, 1.0, 2.0]
    assert table.outcome.tolist() == [Outcome.OK, Outcome.REJECTED, Outcome.IN_FLIGHT]
    assert table.server.tolist() == [0, -1, 1]
    assert table.key.tolist() == [-1, 7, -1] and table.cls.tolist() == [-1, 1, -1]
    assert table.latency[0] == 1.5 and table.wait[0] == 0.5 and table.service[0] == 1.0
    assert math.isnan(table.end[2]) and math.isnan(table.start[1])


def test_table_is_a_snapshot() -> None:
    log = _log_of_three()
    table = log.table()
    log.finished(2, 3.0, Outcome.OK)
    assert math.isnan(table.end[2])
    assert log.table().end[2] == 3.0


def test_a_million_rows_stay_small() -> None:
    n = 1_000_000
    log = RequestLog()
    add = log.add
    for t in range(n):
        add(float(t))
    table = log.table()
    assert len(table) == n
    assert table.nbytes == 35 * n  # 3 float64 + int8 + int32 + int16 + int32 per row
    assert log.nbytes < 2 * 35 * n  # headroom from doubling is below 2x
    assert table.arrival[-1] == n - 1


def test_select_has_and_concat() -> None:
    table = _log_of_three().table()
    ok = table.select(table.has(Outcome.OK))
    assert len(ok) == 1 and ok.arrival[0] == 0.0
    assert table.has(Outcome.OK, Outcome.REJECTED).tolist() == [True, True, False]
    later = RequestTable(*(np.array([x]) for x in (0.7, 0.8, 0.9, 1, 3, -1, -1)))
    joined = RequestTable.concat([table, later])
    assert joined.arrival.tolist() == [0.0, 0.7, 1.0, 2.0]
    assert joined.server.tolist() == [0, 3, -1, 1]
    with pytest.raises(ValueError, match="concat needs at least one table"):
        RequestTable.concat([])


def test_expected_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"expected must be an integer >= 1 \(got 0\)"):
        RequestLog(expected=0)
