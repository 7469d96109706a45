"""Every closed form in ``simulations.theory`` against simulation, with a derived tolerance.

Method: R = 20 independent replications (children of one ``SeedSequence``), each deleting its
first 10 % of requests as warm-up. A check passes when the theory value lies inside the
99.95 % Student-t confidence interval of the replication mean (t ≈ 4.2 with 19 degrees of
freedom): if the formula and the simulation agree, one check fails by chance with probability
0.0005, and the seeds are fixed, so the outcome is deterministic. Each check also asserts that
the interval is narrow enough to have teeth: a half-width under 10 % of the theory value, or
under 35 % for a tail probability of at most 10 %. Percentiles are checked through their tail
probability, P(response > t_q) = 1 − q; with an exponential-like tail a 35 % error in the p99
probability is a 0.35/ln(100) ≈ 7 % error in the p99 itself.

Long runs use the fast path (it gives the same rows as the SimPy model, see test_fastpath.py);
each model family is also checked once through the SimPy ``ServerPool`` at load 0.6.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from fractions import Fraction

import numpy as np
import pytest

from simulations import theory
from simulations.distributions import Deterministic, Exponential, LogNormal
from simulations.metrics import (
    confidence_interval,
    drop_warmup,
    number_in_system_over_time,
    summarize,
    time_average,
)
from simulations.records import Outcome, RequestTable
from simulations.textbook import simulate
from simulations.workloads import ConstantArrivals, PoissonArrivals

REPLICATIONS = 20
LEVEL = 0.9995
PRECISION = 0.10  # largest allowed CI half-width, relative to the theory value ...
TAIL_PRECISION = 0.35  # ... or for a tail probability of at most 10 % (see the docstring)
LOADS = (0.3, 0.6, 0.9)

Statistic = Callable[[RequestTable], float]


def _served(table: RequestTable) -> RequestTable:
    return table.select(table.outcome == int(Outcome.OK))


def mean_wait(table: RequestTable) -> float:
    return float(_served(table).wait.mean())


def mean_response(table: RequestTable) -> float:
    return float(_served(table).latency.mean())


def response_above(threshold: float) -> Statistic:
    return lambda table: float(np.mean(_served(table).latency > threshold))


def wait_above(threshold: float) -> Statistic:
    return lambda table: float(np.mean(_served(table).wait > threshold))


def blocked_fraction(table: RequestTable) -> float:
    return float(np.mean(table.outcome == int(Outcome.REJECTED)))


def mean_in_system(table: RequestTable) -> float:
    times, counts = number_in_system_over_time(table)
    return time_average(times, counts, float(table.arrival[0]), float(table.arrival[-1]))


def replicate(
    run: Callable[[np.random.Generator], RequestTable],
    statistics: dict[str, Statistic],
    seed: int,
) -> dict[str, list[float]]:
    """Each statistic once per replication, on the table after warm-up deletion."""
    values: dict[str, list[float]] = {name: [] for name in statistics}
    for child in np.random.SeedSequence(seed).spawn(REPLICATIONS):
        table = run(np.random.default_rng(child))
        kept = drop_warmup(table, count=len(table) // 10)
        for name, statistic in statistics.items():
            values[name].append(statistic(kept))
    return values


def assert_theory_in_interval(values: list[float], expected: float, label: str) -> None:
    mean, half = confidence_interval(values, LEVEL)
    assert abs(mean - expected) <= half, (
        f"{label}: theory {expected:.5g} outside {mean:.5g} ± {half:.3g} ({LEVEL:.2%} CI)")
    assert half <= (TAIL_PRECISION if expected <= 0.1 else PRECISION) * expected, (
        f"{label}: CI half-width {half:.3g} too wide to test {expected:.5g}")


def check(
    family: str, load: float, engine: str, customers: int,
    model: dict, checks: dict[str, tuple[Statistic, float]],
) -> None:
    def run(rng: np.random.Generator) -> RequestTable:
        return simulate(engine, rng=rng, customers=customers, **model)

    seed = zlib.crc32(f"{family} {load} {engine}".encode())
    values = replicate(run, {name: stat for name, (stat, _) in checks.items()}, seed)
    for name, (_, expected) in checks.items():
        assert_theory_in_interval(values[name], expected, f"{family} ρ={load} {engine} {name}")


# --- one case per model family ------------------------------------------------------------------


def mm1_case(load: float) -> tuple[dict, dict[str, tuple[Statistic, float]]]:
    model = {"arrivals": PoissonArrivals(load), "service": Exponential(1.0)}
    checks = {
        "mean wait": (mean_wait, theory.mm1_mean_wait(load, 1.0)),
        "mean response": (mean_response, theory.mm1_mean_response(load, 1.0)),
    }
    for q in (0.5, 0.95 if load > 0.8 else 0.99):  # t_q is right iff P(response > t_q) = 1 − q
        t_q = theory.mm1_response_percentile(load, 1.0, q)
        checks[f"P(response > p{q * 100:g})"] = (response_above(t_q), 1 - q)
    return model, checks


def mmc_case(load: float, servers: int = 4) -> tuple[dict, dict[str, tuple[Statistic, float]]]:
    lam = load * servers
    model = {"arrivals": PoissonArrivals(lam), "service": Exponential(1.0), "servers": servers}
    waiting = theory.erlang_c(lam, 1.0, servers)
    t_wait = theory.mmc_wait_percentile(lam, 1.0, servers, 1 - waiting / 4)
    checks = {
        "P(wait > 0) = Erlang C": (wait_above(0.0), waiting),
        "P(wait > t) = C·e^(−(cμ−λ)t)": (wait_above(t_wait), waiting / 4),
        "mean wait": (mean_wait, theory.mmc_mean_wait(lam, 1.0, servers)),
        "mean response": (mean_response, theory.mmc_mean_response(lam, 1.0, servers)),
    }
    for q in (0.5, 0.95 if load > 0.8 else 0.99):
        t_q = theory.mmc_response_percentile(lam, 1.0, servers, q)
        checks[f"P(response > p{q * 100:g})"] = (response_above(t_q), 1 - q)
    return model, checks


def md1_case(load: float) -> tuple[dict, dict[str, tuple[Statistic, float]]]:
    model = {"arrivals": PoissonArrivals(load), "service": Deterministic(1.0)}
    return model, {
        "mean wait": (mean_wait, theory.md1_mean_wait(load, 1.0)),
        "mean response": (mean_response, theory.md1_mean_response(load, 1.0)),
    }


def mg1_case(load: float, scv: float = 2.0) -> tuple[dict, dict[str, tuple[Statistic, float]]]:
    model = {"arrivals": PoissonArrivals(load), "service": LogNormal(1.0, scv)}
    return model, {
        "mean wait": (mean_wait, theory.mg1_mean_wait(load, 1.0, scv)),
        "mean response": (mean_response, theory.mg1_mean_response(load, 1.0, scv)),
    }


def mm1k_case(load: float, capacity: int = 5) -> tuple[dict, dict[str, tuple[Statistic, float]]]:
    model = {"arrivals": PoissonArrivals(load), "service": Exponential(1.0),
             "capacity": capacity}
    t99 = theory.mm1k_response_percentile(load, 1.0, capacity, 0.99)
    return model, {
        "blocking": (blocked_fraction, theory.mm1k_blocking(load, 1.0, capacity)),
        "mean number": (mean_in_system, theory.mm1k_mean_number(load, 1.0, capacity)),
        "mean response": (mean_response, theory.mm1k_mean_response(load, 1.0, capacity)),
        "P(response > p99)": (response_above(t99), 0.01),
    }


FAMILIES = {"mm1": mm1_case, "mmc": mmc_case, "md1": md1_case, "mg1": mg1_case,
            "mm1k": mm1k_case}
# Customers per replication on the fast path: more near ρ = 0.9, where runs converge slowly
# (the p99 there is checked as a p95 to keep the file fast).
FAST_CUSTOMERS = {0.3: 40_000, 0.6: 40_000, 0.9: 200_000, 1.5: 20_000}


@pytest.mark.parametrize("load", LOADS)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_closed_form_matches_fast_simulation(family, load):
    model, checks = FAMILIES[family](load)
    check(family, load, "fast", FAST_CUSTOMERS[load], model, checks)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_closed_form_matches_simpy_model(family):
    model, checks = FAMILIES[family](0.6)
    check(family, 0.6, "simpy", 20_000, model, checks)


def test_mm1k_matches_simulation_in_overload():
    model, checks = mm1k_case(1.5)
    check("mm1k", 1.5, "fast", FAST_CUSTOMERS[1.5], model, checks)


# --- Little's law, fan-out, Kingman -----------------------------------------------------------


def test_littles_law_holds_on_simulated_data():
    """Time-average number in system = arrival rate × mean response, on each simulated run."""
    lam, servers = 3.0, 4
    differences, numbers = [], []
    for child in np.random.SeedSequence(7).spawn(REPLICATIONS):
        table = simulate("fast", PoissonArrivals(lam), Exponential(1.0),
                         np.random.default_rng(child), 40_000, servers)
        report = summarize(drop_warmup(table, count=4000), servers=servers)
        from_little = theory.littles_law(arrival_rate=report["arrival_rate_per_s"],
                                         mean_time=report["latency_mean_s"])
        differences.append(report["mean_in_system"] / from_little - 1)
        numbers.append(report["mean_in_system"])
    # A sample-path identity: only requests straddling the window's ends make a difference.
    assert max(abs(d) for d in differences) < 0.01
    expected = theory.littles_law(arrival_rate=lam,
                                  mean_time=theory.mmc_mean_response(lam, 1.0, servers))
    assert_theory_in_interval(numbers, expected, "M/M/4 mean number in system")


def test_littles_law_solves_for_the_missing_quantity():
    assert theory.littles_law(arrival_rate=2.0, mean_time=3.0) == 6.0
    assert theory.littles_law(mean_number=6.0, mean_time=3.0) == 2.0
    assert theory.littles_law(arrival_rate=2.0, mean_number=6.0) == 3.0
    with pytest.raises(ValueError, match="exactly two"):
        theory.littles_law(arrival_rate=2.0)


def test_fanout_tail_matches_a_simulated_fanout():
    """A request calls N = 10 independent M/M/1 backends and is slow if any call is slow."""
    fanout, load, slow = 10, 0.6, 0.05
    threshold = theory.mm1_response_percentile(load, 1.0, 1 - slow)  # P(one call > it) = 5 %
    values = []
    for child in np.random.SeedSequence(11).spawn(REPLICATIONS):
        rng = np.random.default_rng(child)
        calls = []
        for _ in range(fanout):
            table = simulate("fast", PoissonArrivals(load), Exponential(1.0), rng, 11_000)
            calls.append(drop_warmup(table, count=1000).latency)
        values.append(float(np.mean(np.max(calls, axis=0) > threshold)))
    assert_theory_in_interval(values, theory.fanout_tail(slow, fanout), "fan-out tail")


def test_fanout_tail_closed_form_values():
    assert theory.fanout_tail(0.01, 100) == pytest.approx(1 - 0.99**100)  # ≈ 63 %
    assert theory.fanout_tail(0.0, 50) == 0.0
    assert theory.fanout_tail(1.0, 3) == 1.0
    assert theory.fanout_tail(0.2, 1) == pytest.approx(0.2)


@pytest.mark.parametrize("load", [0.5, 0.9])
def test_dm1_exact_wait_matches_simulation(load):
    model = {"arrivals": ConstantArrivals(load), "service": Exponential(1.0)}
    checks = {"mean wait": (mean_wait, theory.dm1_mean_wait(load, 1.0))}
    check("dm1", load, "fast", 40_000 if load < 0.9 else 100_000, model, checks)


def test_kingman_error_against_exact_dm1():
    """Kingman overstates the D/M/1 wait: by about 96 % at ρ = 0.5, under 8 % at ρ = 0.9.

    Its relative error shrinks towards 0 as ρ → 1 (it is a heavy-traffic result).
    """
    errors = {rho: theory.kingman_mean_wait(rho, 1.0, 0.0, 1.0) / theory.dm1_mean_wait(rho, 1.0)
              - 1 for rho in (0.5, 0.7, 0.9, 0.99)}
    assert errors[0.5] == pytest.approx(0.96, abs=0.01)
    assert 0.07 < errors[0.9] < 0.08
    assert errors[0.5] > errors[0.7] > errors[0.9] > errors[0.99] > 0
    assert errors[0.99] < 0.01


@pytest.mark.parametrize("load", LOADS)
def test_kingman_is_exact_for_poisson_arrivals(load):
    for scv in (0.0, 1.0, 4.0):
        assert theory.kingman_mean_wait(load, 1.0, 1.0, scv) == pytest.approx(
            theory.mg1_mean_wait(load, 1.0, scv), rel=1e-12)


# --- Erlang C numerics ----------------------------------------------------------------------


def erlang_c_exact(offered: Fraction, servers: int) -> Fraction:
    """Erlang C from its textbook sum, in exact rational arithmetic."""
    term, total = Fraction(1), Fraction(0)
    for k in range(servers):  # term = a^k / k!
        total += term
        term = term * offered / (k + 1)
    queued = term * servers / (servers - offered)  # a^c / c! · 1/(1 − ρ)
    return queued / (total + queued)


@pytest.mark.parametrize(
    ("servers", "offered"),
    [(1, Fraction(1, 2)), (2, Fraction(3, 2)), (50, Fraction(85, 2)), (200, Fraction(190)),
     (1000, Fraction(950))],
)
def test_erlang_c_matches_exact_rational_computation(servers, offered):
    expected = float(erlang_c_exact(offered, servers))
    assert theory.erlang_c(float(offered), 1.0, servers) == pytest.approx(expected, rel=1e-11)


@pytest.mark.parametrize("load", [0.5, 0.9, 0.99, 0.999])
def test_erlang_c_is_finite_at_a_thousand_servers(load):
    waiting = theory.erlang_c(load * 1000, 1.0, 1000)
    assert 0.0 <= waiting < 1.0 and math.isfinite(waiting)
    assert math.isfinite(theory.mmc_mean_wait(load * 1000, 1.0, 1000))


def test_mmc_with_one_server_is_mm1():
    assert theory.erlang_c(0.7, 1.0, 1) == pytest.approx(0.7)  # P(wait) = ρ
    assert theory.mmc_mean_response(0.7, 1.0, 1) == pytest.approx(1 / 0.3)
    for q in (0.5, 0.9, 0.99):
        assert theory.mmc_response_percentile(0.7, 1.0, 1, q) == pytest.approx(
            theory.mm1_response_percentile(0.7, 1.0, q), rel=1e-9)


def test_mm1k_closed_forms():
    rho, k = 0.8, 6
    assert theory.mm1k_blocking(rho, 1.0, k) == pytest.approx(
        (1 - rho) * rho**k / (1 - rho ** (k + 1)))
    assert theory.mm1k_blocking(1.0, 1.0, k) == pytest.approx(1 / (k + 1))  # ρ = 1: uniform
    assert theory.mm1k_blocking(50.0, 1.0, k) == pytest.approx(1 - 1 / 50, rel=1e-6)
    # A large K is M/M/1.
    assert theory.mm1k_mean_response(0.5, 1.0, 200) == pytest.approx(2.0)
    assert theory.mm1k_response_percentile(0.5, 1.0, 200, 0.99) == pytest.approx(
        theory.mm1_response_percentile(0.5, 1.0, 0.99), rel=1e-9)


# --- priority classes and order statistics ----------------------------------------------------


def test_cobham_priority_waits_match_a_simulated_priority_queue():
    """Two classes (30 % high) on one exponential server at load 0.7, served non-preemptively."""
    import simpy

    from simulations.clients import RequestSource
    from simulations.servers import ServerPool

    rate, share = 0.7, 0.3
    expected = theory.priority_mean_waits([share * rate, (1 - share) * rate], [1.0, 1.0], [1, 1])
    waits: list[list[float]] = [[], []]
    for child in np.random.SeedSequence(12).spawn(REPLICATIONS):
        rng = np.random.default_rng(child)
        env = simpy.Environment()
        pool = ServerPool(env, 1, Exponential(1.0), rng, discipline="priority")
        RequestSource(env, PoissonArrivals(rate), pool.call, rng, n=20_000,
                      class_weights=[share, 1 - share])
        env.run()
        table = drop_warmup(pool.log.table(), count=2000)
        for cls in (0, 1):
            rows = table.cls == cls
            waits[cls].append(float(np.mean(table.start[rows] - table.arrival[rows])))
    for cls in (0, 1):
        assert_theory_in_interval(waits[cls], expected[cls], f"class {cls} wait")


def test_cobham_with_one_class_is_pollaczek_khinchine():
    (wait,) = theory.priority_mean_waits([0.7], [1.0], [0.5])
    assert wait == pytest.approx(theory.mg1_mean_wait(0.7, 1.0, 0.5))
    high, low = theory.priority_mean_waits([0.45, 0.45], [1.0, 1.0], [1.0, 1.0])
    assert high < theory.mm1_mean_wait(0.9, 1.0) < low  # priority moves wait, it does not remove it
    assert 0.5 * high + 0.5 * low == pytest.approx(theory.mm1_mean_wait(0.9, 1.0))  # conservation


def test_exponential_order_statistics():
    harmonic = sum(1 / i for i in range(1, 11))
    assert theory.exponential_order_statistic_mean(10, 10, 2.0) == pytest.approx(harmonic / 2)
    assert theory.exponential_order_statistic_mean(10, 1, 2.0) == pytest.approx(1 / 20)
    rng = np.random.default_rng(13)
    draws = np.sort(rng.exponential(1.0, (200_000, 8)), axis=1)
    for k in (1, 4, 8):  # sampling error of a mean of 200,000: well under 1 %
        assert float(draws[:, k - 1].mean()) == pytest.approx(
            theory.exponential_order_statistic_mean(8, k, 1.0), rel=0.01)


def test_order_statistic_cdf_and_percentile():
    assert theory.order_statistic_cdf(0.9, 5, 5) == pytest.approx(0.9**5)
    assert theory.order_statistic_cdf(0.9, 5, 1) == pytest.approx(1 - 0.1**5)
    assert theory.order_statistic_cdf(0.5, 4, 2) == pytest.approx(11 / 16)  # 6 + 4 + 1 of 16
    def cdf(t: float) -> float:
        return -math.expm1(-t)
    p99_of_all = theory.order_statistic_percentile(cdf, 0.99, 10, 10)
    assert cdf(p99_of_all) == pytest.approx(0.99 ** (1 / 10), rel=1e-9)
    rng = np.random.default_rng(14)
    slowest = rng.exponential(1.0, (200_000, 10)).max(axis=1)
    assert float(np.quantile(slowest, 0.99)) == pytest.approx(p99_of_all, rel=0.03)


# --- input validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "parameter", "value"),
    [
        (lambda: theory.mm1_mean_wait(-1.0, 1.0), "arrival_rate", "-1.0"),
        (lambda: theory.mm1_mean_response(0.5, 0.0), "service_rate", "0.0"),
        (lambda: theory.mm1_mean_wait(1.0, 1.0), "arrival_rate", "1.0"),
        (lambda: theory.erlang_c(1.0, 1.0, 0), "servers", "0"),
        (lambda: theory.mmc_mean_wait(4.5, 1.0, 4), "arrival_rate", "4.5"),
        (lambda: theory.mmc_wait_percentile(1.0, 1.0, 2, 1.5), "quantile", "1.5"),
        (lambda: theory.mm1k_blocking(1.0, 1.0, -1), "capacity", "-1"),
        (lambda: theory.mg1_mean_wait(0.5, 1.0, -0.5), "service_scv", "-0.5"),
        (lambda: theory.md1_mean_wait(0.5, 3.0), "arrival_rate", "0.5"),
        (lambda: theory.kingman_mean_wait(0.5, 1.0, -1.0, 1.0), "arrival_scv", "-1.0"),
        (lambda: theory.dm1_mean_wait(2.0, 1.0), "arrival_rate", "2.0"),
        (lambda: theory.fanout_tail(1.5, 10), "slow_probability", "1.5"),
        (lambda: theory.fanout_tail(0.1, 0), "fanout", "0"),
        (lambda: theory.erlang_b(3, -2.0), "offered_load", "-2.0"),
        (lambda: theory.priority_mean_waits([0.5, 0.6], [1, 1], [1, 1]), "total load", "1.1"),
        (lambda: theory.exponential_order_statistic_mean(3, 4, 1.0), "k", "4"),
        (lambda: theory.order_statistic_cdf(1.2, 3, 3), "probability", "1.2"),
    ],
)
def test_bad_input_names_parameter_value_and_range(call, parameter, value):
    with pytest.raises(ValueError) as error:
        call()
    message = str(error.value)
    assert parameter in message and value in message
    assert any(sign in message for sign in ("<", ">", "[", "("))  # states the allowed range
