"""Closed forms that a queueing simulation is checked against.

Picture a bank with tellers: customers walk in at some rate, each teller serves at some rate, and
whoever finds every teller busy waits in one line. Queueing theory predicts, without simulating,
how long that line is on average, how often somebody waits at all, and how long the unlucky few
wait. The formulas below are the standard ones (Harchol-Balter, *Performance Modeling and Design
of Computer Systems*, 2013; Kingman 1961 for the G/G/1 approximation; Little 1961 for L = λW).
Then come priority classes (Cobham 1954), staffing (Erlang C and the square-root rule of Halfin &
Whitt 1981), load balancing (the supermarket model of Mitzenmacher 2001), operational bounds
(Denning & Buzen 1978) and the order statistics of parallel calls (the slowest of N, the k-th of
N). A cache is a queue of another kind: its section holds Che's approximation of its hit ratio.

Notation: ``arrival_rate`` λ (customers per second), ``service_rate`` μ (per server), ``servers``
c, load ρ = λ/(cμ). "Wait" is the time in the queue before service starts; "response" is wait plus
service. Every function checks its inputs and raises ``ValueError`` naming the parameter, its
value and the allowed range; an unbounded queue needs ρ < 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from patterns.checks import (
    check_choice,
    check_int,
    check_non_negative,
    check_positive,
    check_probability,
    check_range,
)


def _check_stable(arrival_rate: float, capacity_rate: float, what: str) -> float:
    """Return the load λ/capacity after checking it is below 1 (an unbounded queue must drain)."""
    load = arrival_rate / capacity_rate
    if load >= 1:
        raise ValueError(
            f"arrival_rate must be < {what} = {capacity_rate:g} for an unbounded queue (load"
            f" ρ < 1); got {arrival_rate!r}, i.e. ρ = {load:g}"
        )
    return load


def _check_quantile(quantile: float) -> float:
    return check_range("quantile", quantile, 0.0, 1.0, low_open=True, high_open=True)


def _invert_survival(survival: Callable[[float], float], quantile: float, scale: float) -> float:
    """Smallest t with survival(t) <= 1 - quantile, by bisection (survival is non-increasing)."""
    target = 1.0 - quantile
    if survival(0.0) <= target:
        return 0.0
    high = scale
    while survival(high) > target:
        high *= 2.0
    low = 0.0
    for _ in range(200):
        middle = 0.5 * (low + high)
        if survival(middle) > target:
            low = middle
        else:
            high = middle
        if high - low <= 1e-12 * high:
            break
    return high


# --- M/M/1 -------------------------------------------------------------------------------------


def mm1_mean_wait(arrival_rate: float, service_rate: float) -> float:
    """M/M/1 mean time in queue, ρ/(μ − λ)."""
    return mmc_mean_wait(arrival_rate, service_rate, 1)


def mm1_mean_response(arrival_rate: float, service_rate: float) -> float:
    """M/M/1 mean response time, 1/(μ − λ)."""
    return mmc_mean_response(arrival_rate, service_rate, 1)


def mm1_response_percentile(arrival_rate: float, service_rate: float, quantile: float) -> float:
    """M/M/1 response-time quantile: the response time is exponential with rate μ − λ."""
    check_positive("arrival_rate", arrival_rate)
    check_positive("service_rate", service_rate)
    _check_stable(arrival_rate, service_rate, "service_rate")
    return -math.log1p(-_check_quantile(quantile)) / (service_rate - arrival_rate)


# --- M/M/c -------------------------------------------------------------------------------------


def erlang_b(servers: int, offered_load: float) -> float:
    """Erlang B blocking probability for c servers and offered load a = λ/μ (recursion in c).

    B(0) = 1, B(k) = a·B(k−1) / (k + a·B(k−1)); every step stays in [0, 1], so it is stable for
    thousands of servers.
    """
    check_int("servers", servers, 1)
    check_positive("offered_load", offered_load)
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = offered_load * blocking / (k + offered_load * blocking)
    return blocking


def erlang_c(arrival_rate: float, service_rate: float, servers: int) -> float:
    """Probability that an arriving customer waits in an M/M/c queue (Erlang C).

    Computed from Erlang B as C = B / (1 − ρ(1 − B)), which is finite and accurate up to
    c = 1000 and beyond.
    """
    check_positive("arrival_rate", arrival_rate)
    check_positive("service_rate", service_rate)
    check_int("servers", servers, 1)
    capacity_name = "service_rate" if servers == 1 else "servers·service_rate"
    load = _check_stable(arrival_rate, servers * service_rate, capacity_name)
    blocking = erlang_b(servers, arrival_rate / service_rate)
    return blocking / (1.0 - load * (1.0 - blocking))


def mmc_mean_wait(arrival_rate: float, service_rate: float, servers: int) -> float:
    """M/M/c mean time in queue, C / (cμ − λ)."""
    waiting = erlang_c(arrival_rate, service_rate, servers)
    return waiting / (servers * service_rate - arrival_rate)


def mmc_mean_response(arrival_rate: float, service_rate: float, servers: int) -> float:
    """M/M/c mean response time, C / (cμ − λ) + 1/μ."""
    return mmc_mean_wait(arrival_rate, service_rate, servers) + 1.0 / service_rate


def mmc_wait_percentile(
    arrival_rate: float, service_rate: float, servers: int, quantile: float
) -> float:
    """M/M/c waiting-time quantile from P(Wq > t) = C·e^{−(cμ−λ)t} (zero when 1 − q ≥ C)."""
    waiting = erlang_c(arrival_rate, service_rate, servers)
    tail = 1.0 - _check_quantile(quantile)
    if tail >= waiting:
        return 0.0
    return math.log(waiting / tail) / (servers * service_rate - arrival_rate)


def mmc_response_survival(
    arrival_rate: float, service_rate: float, servers: int, time: float
) -> float:
    """P(response > t) in M/M/c: the wait (0, or Exp(cμ − λ) with probability C) plus Exp(μ)."""
    waiting = erlang_c(arrival_rate, service_rate, servers)
    check_non_negative("time", time)
    drain = servers * service_rate - arrival_rate
    served_tail = math.exp(-service_rate * time)
    if math.isclose(drain, service_rate):
        both_tail = (1.0 + service_rate * time) * served_tail
    else:
        both_tail = (drain * served_tail - service_rate * math.exp(-drain * time)) / (
            drain - service_rate
        )
    return (1.0 - waiting) * served_tail + waiting * both_tail


def mmc_response_percentile(
    arrival_rate: float, service_rate: float, servers: int, quantile: float
) -> float:
    """M/M/c response-time quantile, by inverting :func:`mmc_response_survival`."""
    erlang_c(arrival_rate, service_rate, servers)  # validates the inputs before inverting
    return _invert_survival(
        lambda t: mmc_response_survival(arrival_rate, service_rate, servers, t),
        _check_quantile(quantile),
        1.0 / service_rate,
    )


# --- M/G/1, M/D/1 and Kingman ------------------------------------------------------------------


def mg1_mean_wait(arrival_rate: float, mean_service: float, service_scv: float) -> float:
    """Pollaczek–Khinchine mean wait: ρ·E[S]·(1 + SCV) / (2(1 − ρ)).

    ``service_scv`` is the squared coefficient of variation Var[S]/E[S]² (0 deterministic,
    1 exponential).
    """
    check_positive("arrival_rate", arrival_rate)
    check_positive("mean_service", mean_service)
    check_non_negative("service_scv", service_scv)
    load = _check_stable(arrival_rate, 1.0 / mean_service, "1/mean_service")
    return load * mean_service * (1.0 + service_scv) / (2.0 * (1.0 - load))


def mg1_mean_response(arrival_rate: float, mean_service: float, service_scv: float) -> float:
    """M/G/1 mean response time: the Pollaczek–Khinchine wait plus E[S]."""
    return mg1_mean_wait(arrival_rate, mean_service, service_scv) + mean_service


def md1_mean_wait(arrival_rate: float, service_time: float) -> float:
    """M/D/1 mean wait, ρ·D / (2(1 − ρ)) (Pollaczek–Khinchine with SCV 0)."""
    check_positive("arrival_rate", arrival_rate)
    check_positive("service_time", service_time)
    _check_stable(arrival_rate, 1.0 / service_time, "1/service_time")
    return mg1_mean_wait(arrival_rate, service_time, 0.0)


def md1_mean_response(arrival_rate: float, service_time: float) -> float:
    """M/D/1 mean response time, the wait plus D."""
    return md1_mean_wait(arrival_rate, service_time) + service_time


def kingman_mean_wait(
    arrival_rate: float, service_rate: float, arrival_scv: float, service_scv: float
) -> float:
    """Kingman's G/G/1 approximation E[Wq] ≈ (ρ/(1 − ρ))·((c_a² + c_s²)/2)·E[S].

    Exact for M/G/1 (c_a² = 1, where it is Pollaczek–Khinchine) and in heavy traffic (ρ → 1);
    at moderate load it is only an approximation, e.g. it overstates the D/M/1 wait (see
    :func:`dm1_mean_wait`).
    """
    check_positive("arrival_rate", arrival_rate)
    check_positive("service_rate", service_rate)
    check_non_negative("arrival_scv", arrival_scv)
    check_non_negative("service_scv", service_scv)
    load = _check_stable(arrival_rate, service_rate, "service_rate")
    return load / (1.0 - load) * (arrival_scv + service_scv) / 2.0 / service_rate


def dm1_mean_wait(arrival_rate: float, service_rate: float) -> float:
    """Exact D/M/1 mean wait σ / (μ(1 − σ)), where σ = e^{−μ(1−σ)/λ} is the root in (0, 1).

    The GI/M/1 result for evenly spaced arrivals; the reference point for Kingman's error.
    """
    check_positive("arrival_rate", arrival_rate)
    check_positive("service_rate", service_rate)
    _check_stable(arrival_rate, service_rate, "service_rate")
    ratio = service_rate / arrival_rate
    low, high = 0.0, 1.0 - 1e-15
    for _ in range(200):  # f(σ) = e^{−ratio(1−σ)} − σ is > 0 below the root and < 0 above it
        sigma = 0.5 * (low + high)
        if math.exp(-ratio * (1.0 - sigma)) > sigma:
            low = sigma
        else:
            high = sigma
    sigma = 0.5 * (low + high)
    return sigma / (service_rate * (1.0 - sigma))


# --- M/M/1/K -----------------------------------------------------------------------------------


def mm1k_state_probabilities(
    arrival_rate: float, service_rate: float, capacity: int
) -> list[float]:
    """Stationary P(n in system), n = 0..K, for M/M/1/K (K = most customers in the system)."""
    check_positive("arrival_rate", arrival_rate)
    check_positive("service_rate", service_rate)
    check_int("capacity", capacity, 1)
    load = arrival_rate / service_rate
    # Scale by the largest term so that ρ far above 1 does not overflow.
    if load <= 1:
        weights = [load**n for n in range(capacity + 1)]
    else:
        weights = [(1.0 / load) ** (capacity - n) for n in range(capacity + 1)]
    total = math.fsum(weights)
    return [w / total for w in weights]


def mm1k_blocking(arrival_rate: float, service_rate: float, capacity: int) -> float:
    """M/M/1/K blocking probability (1 − ρ)ρ^K / (1 − ρ^{K+1}) (PASTA: arrivals see P(K))."""
    return mm1k_state_probabilities(arrival_rate, service_rate, capacity)[-1]


def mm1k_mean_number(arrival_rate: float, service_rate: float, capacity: int) -> float:
    """M/M/1/K mean number in system, Σ n·P(n)."""
    probabilities = mm1k_state_probabilities(arrival_rate, service_rate, capacity)
    return math.fsum(n * p for n, p in enumerate(probabilities))


def mm1k_mean_response(arrival_rate: float, service_rate: float, capacity: int) -> float:
    """M/M/1/K mean response of admitted customers, L / λ_eff with λ_eff = λ(1 − P_block)."""
    admitted_rate = arrival_rate * (1.0 - mm1k_blocking(arrival_rate, service_rate, capacity))
    return mm1k_mean_number(arrival_rate, service_rate, capacity) / admitted_rate


def mm1k_mean_wait(arrival_rate: float, service_rate: float, capacity: int) -> float:
    """M/M/1/K mean wait of admitted customers, the mean response minus 1/μ."""
    return mm1k_mean_response(arrival_rate, service_rate, capacity) - 1.0 / service_rate


def mm1k_response_survival(
    arrival_rate: float, service_rate: float, capacity: int, time: float
) -> float:
    """P(response > t) for an admitted M/M/1/K customer.

    An admitted arrival finds n < K customers with probability P(n)/(1 − P(K)) and then waits
    for n + 1 exponential services, an Erlang(n + 1, μ) time.
    """
    probabilities = mm1k_state_probabilities(arrival_rate, service_rate, capacity)
    check_non_negative("time", time)
    admitted = 1.0 - probabilities[-1]
    x = service_rate * time
    term = math.exp(-x)  # Poisson(x) probability of j events, j = 0, 1, ...
    erlang_tail = 0.0
    total = 0.0
    for n, p in enumerate(probabilities[:-1]):
        erlang_tail += term  # P(Erlang(n+1, μ) > t) = Σ_{j≤n} e^{−x} x^j / j!
        total += p * erlang_tail
        term *= x / (n + 1)
    return total / admitted


def mm1k_response_percentile(
    arrival_rate: float, service_rate: float, capacity: int, quantile: float
) -> float:
    """M/M/1/K response-time quantile for admitted customers (inverts the survival function)."""
    return _invert_survival(
        lambda t: mm1k_response_survival(arrival_rate, service_rate, capacity, t),
        _check_quantile(quantile),
        1.0 / service_rate,
    )


# --- Little's law and fan-out ------------------------------------------------------------------


def littles_law(
    *,
    arrival_rate: float | None = None,
    mean_time: float | None = None,
    mean_number: float | None = None,
) -> float:
    """L = λW: give exactly two of ``arrival_rate``, ``mean_time`` and ``mean_number``."""
    given = {
        name: value
        for name, value in (
            ("arrival_rate", arrival_rate),
            ("mean_time", mean_time),
            ("mean_number", mean_number),
        )
        if value is not None
    }
    if len(given) != 2:
        raise ValueError(
            f"littles_law got {sorted(given) or 'nothing'}; give exactly two of"
            " arrival_rate, mean_time, mean_number"
        )
    for name, value in given.items():
        check_non_negative(name, value)
    if mean_number is None:
        return arrival_rate * mean_time
    if mean_time is None:
        check_positive("arrival_rate", arrival_rate)
        return mean_number / arrival_rate
    check_positive("mean_time", mean_time)
    return mean_number / mean_time


def fanout_tail(slow_probability: float, fanout: int) -> float:
    """P(at least one of N parallel calls is slow) = 1 − (1 − q)^N (Dean & Barroso 2013)."""
    check_probability("slow_probability", slow_probability)
    check_int("fanout", fanout, 1)
    return -math.expm1(fanout * math.log1p(-slow_probability)) if slow_probability < 1 else 1.0


# --- Priority classes and order statistics ------------------------------------------------------


def priority_mean_waits(
    arrival_rates: Sequence[float], mean_services: Sequence[float], service_scvs: Sequence[float]
) -> list[float]:
    """Mean queue wait of each class in a non-preemptive M/G/1 priority queue (Cobham 1954).

    Class 0 is served first; within a class, first come first served; a request in service is
    never interrupted. W_k = W₀ / ((1 − σ_{k−1})(1 − σ_k)), where σ_k = Σ_{i≤k} λᵢE[Sᵢ] is the load
    of classes 0..k and W₀ = Σᵢ λᵢE[Sᵢ²]/2 the mean residual work found in service, with
    E[S²] = (1 + c_s²)E[S]². Needs total load σ_K < 1; every class then has a finite wait, however
    close σ_K is to 1 (the lowest class's wait grows without bound as it gets there).
    """
    rates = [check_non_negative("arrival_rates[i]", r) for r in arrival_rates]
    means = [check_positive("mean_services[i]", m) for m in mean_services]
    scvs = [check_non_negative("service_scvs[i]", c) for c in service_scvs]
    if not rates or not len(rates) == len(means) == len(scvs):
        raise ValueError(
            "arrival_rates, mean_services and service_scvs must be non-empty and of one length"
            f" (got {len(rates)}, {len(means)} and {len(scvs)})")
    loads = [r * m for r, m in zip(rates, means, strict=True)]
    if sum(loads) >= 1:
        raise ValueError(f"total load Σλᵢ·E[Sᵢ] must be < 1 (got {sum(loads):g})")
    residual = sum(r * m * m * (1.0 + c) / 2.0 for r, m, c in zip(rates, means, scvs, strict=True))
    waits, above = [], 0.0
    for load in loads:
        waits.append(residual / ((1.0 - above) * (1.0 - above - load)))
        above += load
    return waits


def exponential_order_statistic_mean(n: int, k: int, rate: float) -> float:
    """E[k-th smallest of n independent Exp(rate)] = Σ_{i=0}^{k−1} 1/((n − i)·rate).

    The gaps between successive finishers are exponential: after i of n have finished, the next
    one comes at rate (n − i)·rate. With k = n this is the slowest of n, H_n/rate (H_n the n-th
    harmonic number): waiting for all of n parallel calls costs ln n + 0.577 mean call times.
    """
    check_int("n", n, 1)
    check_int("k", k, 1)
    if k > n:
        raise ValueError(f"k must be between 1 and n = {n} (got {k})")
    check_positive("rate", rate)
    return sum(1.0 / (n - i) for i in range(k)) / rate


def order_statistic_cdf(probability: float, n: int, k: int) -> float:
    """P(the k-th smallest of n independent draws ≤ t), given F(t) = ``probability``.

    At least k of the n draws are ≤ t: Σ_{j=k}^{n} C(n, j)·F^j·(1 − F)^(n−j). With k = n it is
    F(t)^n (all n done by t); with k = 1 it is 1 − (1 − F(t))^n (the first one done by t).
    """
    p = check_probability("probability", probability)
    check_int("n", n, 1)
    check_int("k", k, 1)
    if k > n:
        raise ValueError(f"k must be between 1 and n = {n} (got {k})")
    if k == n:
        return p**n
    return sum(math.comb(n, j) * p**j * (1.0 - p) ** (n - j) for j in range(k, n + 1))


def order_statistic_percentile(
    cdf: Callable[[float], float], quantile: float, n: int, k: int, scale: float = 1.0
) -> float:
    """The ``quantile`` of the k-th smallest of n independent draws with distribution ``cdf``.

    Inverts :func:`order_statistic_cdf` by bisection; ``scale`` is a first guess at the answer's
    size (seconds). The p99 of waiting for all of N calls is the (0.99^(1/N))-quantile of one.
    """
    _check_quantile(quantile)
    check_positive("scale", scale)
    return _invert_survival(
        lambda t: 1.0 - order_statistic_cdf(cdf(t), n, k), quantile, scale)


# --- Staffing, balancing and operational bounds ------------------------------------------------


def min_servers(arrival_rate: float, service_rate: float, max_wait_probability: float) -> int:
    """The fewest servers c for which an M/M/c arrival waits with probability at most the target.

    Searches c upward from the smallest stable count, ⌊λ/μ⌋ + 1, with :func:`erlang_c`.
    """
    check_positive("arrival_rate", arrival_rate)
    check_positive("service_rate", service_rate)
    check_range("max_wait_probability", max_wait_probability, 0.0, 1.0, low_open=True)
    servers = math.floor(arrival_rate / service_rate) + 1
    while erlang_c(arrival_rate, service_rate, servers) > max_wait_probability:
        servers += 1
    return servers


def square_root_staffing(offered_load: float, beta: float) -> int:
    """Square-root staffing c = ⌈R + β√R⌉ for offered load R = λ/μ (Halfin & Whitt 1981).

    With this many servers the probability of waiting tends to
    :func:`halfin_whitt_wait_probability` (β) as R grows: the spare capacity a target needs grows
    like √R, not like R.
    """
    check_positive("offered_load", offered_load)
    check_positive("beta", beta)
    return math.ceil(offered_load + beta * math.sqrt(offered_load))


def halfin_whitt_wait_probability(beta: float) -> float:
    """The Halfin–Whitt limit of Erlang C, 1 / (1 + β·Φ(β)/φ(β)), for c = R + β√R servers."""
    check_positive("beta", beta)
    normal_cdf = 0.5 * (1.0 + math.erf(beta / math.sqrt(2.0)))
    normal_pdf = math.exp(-0.5 * beta * beta) / math.sqrt(2.0 * math.pi)
    return 1.0 / (1.0 + beta * normal_cdf / normal_pdf)


def supermarket_tail(load: float, length: int, choices: int = 2) -> float:
    """Fraction of queues holding at least ``length`` requests when each request joins the
    shortest of ``choices`` queues picked at random: λ^((dⁱ − 1)/(d − 1)), and λⁱ for d = 1.

    The many-server limit of n exponential servers at load λ each (Mitzenmacher, IEEE TPDS
    12(10), 2001); d = 1 is random assignment, i.e. n independent M/M/1 queues.
    """
    check_range("load", load, 0.0, 1.0, low_open=True, high_open=True)
    check_int("length", length, 0)
    check_int("choices", choices, 1)
    if choices == 1:
        return load**length
    return load ** ((choices**length - 1) / (choices - 1))


def supermarket_mean_response(load: float, choices: int = 2, service_rate: float = 1.0) -> float:
    """Mean response time in the supermarket model: Σᵢ≥₁ sᵢ requests per queue over λ (Little).

    sᵢ is :func:`supermarket_tail`; for d = 1 this is the M/M/1 1/(μ − λ).
    """
    check_positive("service_rate", service_rate)
    check_int("choices", choices, 1)
    total, length = 0.0, 1
    while (tail := supermarket_tail(load, length, choices)) > 1e-15 * max(total, 1e-300):
        total += tail
        length += 1
    return total / (load * service_rate)


def max_load_estimate(bins: int, choices: int) -> float:
    """Leading term of the fullest bin's load when n balls go into n bins: ln n / ln ln n for one
    random choice, ln ln n / ln d for the least loaded of d ≥ 2 (Azar, Broder, Karlin & Upfal,
    SIAM J. Comput. 1999). Both hold up to an additive O(1), so compare growth, not values.
    """
    check_int("bins", bins, 3)
    check_int("choices", choices, 1)
    if choices == 1:
        return math.log(bins) / math.log(math.log(bins))
    return math.log(math.log(bins)) / math.log(choices)


def _check_demands(total_demand: float, bottleneck_demand: float, think_time: float) -> None:
    check_positive("total_demand", total_demand)
    check_range("bottleneck_demand", bottleneck_demand, 0.0, total_demand, low_open=True)
    check_non_negative("think_time", think_time)


def throughput_bound(
    population: float, total_demand: float, bottleneck_demand: float, think_time: float = 0.0
) -> float:
    """Operational bound X(N) ≤ min(N / (D + Z), 1 / D_max) on a closed system's throughput.

    N requests in flight (or users), D the total service demand of one request, D_max the
    busiest resource's demand, Z the think time (Denning & Buzen, ACM Computing Surveys 10(3),
    1978).
    """
    check_positive("population", population)
    _check_demands(total_demand, bottleneck_demand, think_time)
    return min(population / (total_demand + think_time), 1.0 / bottleneck_demand)


def response_bound(
    population: float, total_demand: float, bottleneck_demand: float, think_time: float = 0.0
) -> float:
    """The matching lower bound on response time, R(N) ≥ max(D, N·D_max − Z)."""
    check_positive("population", population)
    _check_demands(total_demand, bottleneck_demand, think_time)
    return max(total_demand, population * bottleneck_demand - think_time)


def knee_population(
    total_demand: float, bottleneck_demand: float, think_time: float = 0.0
) -> float:
    """N* = (D + Z) / D_max, where the two throughput bounds meet: past it, more concurrency only
    adds queueing."""
    _check_demands(total_demand, bottleneck_demand, think_time)
    return (total_demand + think_time) / bottleneck_demand


# --- Caches under the independent-reference model -----------------------------------------------

# Che's approximation: a key stays in an LRU cache for a "characteristic time" T after its last
# request, the same T for every key. Key i, requested at rate p_i, is then in the cache with
# probability 1 − e^(−p_i·T), and T is where these sum to the capacity C (Che, Tung & Wang, IEEE
# JSAC 2002). For FIFO and RANDOM a key's time in the cache does not restart on a hit, which
# gives p_i·T / (1 + p_i·T) instead (Martina, Garetto & Leonardi, IEEE INFOCOM 2014).
_OCCUPANCY = {
    "lru": lambda x: -np.expm1(-x),
    "fifo": lambda x: x / (1.0 + x),
    "random": lambda x: x / (1.0 + x),
}


def _popularity(probabilities: Sequence[float] | np.ndarray) -> np.ndarray:
    p = np.asarray(probabilities, dtype=float)
    if p.ndim != 1 or len(p) == 0 or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise ValueError(
            "probabilities must be a non-empty list of finite non-negative request rates with a"
            f" positive sum (got {len(p) if p.ndim == 1 else p.shape} values)"
        )
    return p / p.sum()


def characteristic_time(
    probabilities: Sequence[float] | np.ndarray, capacity: int, policy: str = "lru"
) -> float:
    """Che's characteristic time T_C, in requests: Σᵢ occupancy(pᵢ·T_C) = C.

    ``probabilities`` are the keys' request probabilities (normalised here; ``ZipfKeys`` has
    them), ``capacity`` the number of entries, ``policy`` "lru", "fifo" or "random". Infinite
    when the cache holds every key that is ever requested.
    """
    p = _popularity(probabilities)
    check_int("capacity", capacity, 1)
    occupancy = _OCCUPANCY[check_choice("policy", policy, _OCCUPANCY)]
    if capacity >= np.count_nonzero(p):
        return math.inf
    low, high = 0.0, capacity / p.max()
    while occupancy(p * high).sum() < capacity:
        low, high = high, 2.0 * high
    for _ in range(100):
        middle = 0.5 * (low + high)
        if occupancy(p * middle).sum() < capacity:
            low = middle
        else:
            high = middle
        if high - low <= 1e-12 * high:
            break
    return 0.5 * (low + high)


def che_hit_probabilities(
    probabilities: Sequence[float] | np.ndarray, capacity: int, policy: str = "lru"
) -> np.ndarray:
    """Each key's hit probability hᵢ = occupancy(pᵢ·T_C) (Che's approximation; see above)."""
    p = _popularity(probabilities)
    t = characteristic_time(p, capacity, policy)
    if math.isinf(t):
        return (p > 0).astype(float)
    return _OCCUPANCY[policy](p * t)


def che_hit_ratio(
    probabilities: Sequence[float] | np.ndarray, capacity: int, policy: str = "lru"
) -> float:
    """The cache's hit ratio h = Σᵢ pᵢ·hᵢ under the independent-reference model."""
    p = _popularity(probabilities)
    return float(p @ che_hit_probabilities(p, capacity, policy))


# --- Hedged requests ---------------------------------------------------------------------------


def hedged_survival(survival: Callable[[float], float], t: float, delay_s: float) -> float:
    """P(L > t) for a request hedged after ``delay_s`` (Dean & Barroso's hedged request).

    The first copy takes T₁; if it has not answered by d, a second copy goes to another replica
    and takes T₂; L = T₁ if T₁ ≤ d, else min(T₁, d + T₂). With T₁, T₂ independent with survival S
    and no queueing: P(L > t) = S(t) for t < d and S(t)·S(t − d) beyond. ``delay_s`` = inf: no
    hedging. The extra load is P(T₁ > d) = S(d) copies per request.
    """
    delay = check_range("delay_s", delay_s, 0.0, allow_inf=True)
    tail = survival(t)
    return tail if t < delay else tail * survival(t - delay)


def hedged_percentile(
    survival: Callable[[float], float],
    quantile: float,
    delay_s: float,
    fanout: int = 1,
    scale: float = 1.0,
) -> float:
    """The ``quantile`` of a request that waits for ``fanout`` independent hedged reads.

    P(request > t) = 1 − (1 − P(L > t))^N (the slowest of N, as in ``fanout_tail``), inverted by
    bisection; ``scale`` is a first guess at the answer's size (seconds).
    """
    _check_quantile(quantile)
    n = check_int("fanout", fanout, 1)
    check_positive("scale", scale)

    def request_survival(t: float) -> float:
        tail = hedged_survival(survival, t, delay_s)
        return 1.0 if tail >= 1.0 else -math.expm1(n * math.log1p(-tail))

    return _invert_survival(request_survival, quantile, scale)
