"""How fast is the toolkit's M/M/c model, and how accurate? A script, not a test.

Like timing a new car on a known track against a few others: the same M/M/c queue (c = 4 servers,
load 0.9, 200,000 customers) is run by

- the toolkit's SimPy model (``ServerPool`` fed by ``RequestSource``, with its request log),
- the toolkit's fast path (``simulations.fastpath``, no event loop),
- a bare SimPy model (a ``simpy.Resource`` and a process per customer, recording nothing),
- a plain event-list model in Python (a heap of events, no library),
- Ciw and salabim, if installed (``pip install -e .[benchmark]``); salabim is run on a tenth
  of the customers because it is much slower,

each the best wall time of a few repeats. Accuracy: the mean wait over independent
replications (fast path, which gives the same rows as the SimPy model), its 95 % confidence
interval, and Erlang C. Writes the table to ``benchmarks/RESULTS.md``.

    .venv/bin/python benchmarks/mmc_benchmark.py               # full run (about a minute)
    .venv/bin/python benchmarks/mmc_benchmark.py --profile     # plus cProfile of the SimPy model
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import heapq
import io
import os
import platform
import pstats
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np
import simpy

from simulations.distributions import Exponential
from simulations.metrics import confidence_interval, drop_warmup
from simulations.textbook import simulate
from simulations.theory import mmc_mean_wait
from simulations.workloads import PoissonArrivals

RESULTS = Path(__file__).with_name("RESULTS.md")


def toolkit_simpy(lam: float, mu: float, c: int, n: int, seed: int) -> None:
    simulate("simpy", PoissonArrivals(lam), Exponential(1 / mu), np.random.default_rng(seed), n, c)


def toolkit_fast(lam: float, mu: float, c: int, n: int, seed: int) -> None:
    simulate("fast", PoissonArrivals(lam), Exponential(1 / mu), np.random.default_rng(seed), n, c)


def bare_simpy(lam: float, mu: float, c: int, n: int, seed: int) -> None:
    """The textbook SimPy M/M/c: a source process and one process per customer."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1 / lam, n).tolist()
    services = rng.exponential(1 / mu, n).tolist()
    env = simpy.Environment()
    servers = simpy.Resource(env, capacity=c)

    def customer(service: float):
        with servers.request() as request:
            yield request
            yield env.timeout(service)

    def source():
        for gap, service in zip(gaps, services, strict=True):
            yield env.timeout(gap)
            env.process(customer(service))

    env.process(source())
    env.run()


def plain_heap(lam: float, mu: float, c: int, n: int, seed: int) -> None:
    """A classic event-list simulation: a heap of (time, kind) events and a FIFO line."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / lam, n)).tolist()
    services = rng.exponential(1 / mu, n).tolist()
    events = [(arrivals[0], 0, 0)]  # (time, kind 0 arrival / 1 departure, customer)
    line: deque[int] = deque()
    free, total_wait = c, 0.0
    while events:
        now, kind, who = heapq.heappop(events)
        if kind == 0:
            if who + 1 < n:
                heapq.heappush(events, (arrivals[who + 1], 0, who + 1))
            if free:
                free -= 1
                heapq.heappush(events, (now + services[who], 1, who))
            else:
                line.append(who)
        elif line:
            nxt = line.popleft()
            total_wait += now - arrivals[nxt]
            heapq.heappush(events, (now + services[nxt], 1, nxt))
        else:
            free += 1


def ciw_model(lam: float, mu: float, c: int, n: int, seed: int) -> None:
    import ciw

    network = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(rate=lam)],
        service_distributions=[ciw.dists.Exponential(rate=mu)],
        number_of_servers=[c],
    )
    ciw.seed(seed)
    ciw.Simulation(network).simulate_until_max_customers(n, method="Arrive")


def salabim_model(lam: float, mu: float, c: int, n: int, seed: int) -> None:
    import salabim as sim

    sim.yieldless(True)
    env = sim.Environment(trace=False, random_seed=seed)
    servers = sim.Resource("servers", capacity=c, env=env)
    gap, service = sim.Exponential(1 / lam, env=env), sim.Exponential(1 / mu, env=env)

    class Customer(sim.Component):
        def process(self) -> None:
            self.request(servers)
            self.hold(service.sample())
            self.release()

    class Source(sim.Component):
        def process(self) -> None:
            for _ in range(n):
                Customer(env=env)
                self.hold(gap.sample())

    Source(env=env)
    env.run()


def best_time(model: Callable[..., None], repeats: int, *args: float) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(*args)
        times.append(time.perf_counter() - start)
    return min(times)


def accuracy(lam: float, mu: float, c: int, n: int, replications: int) -> tuple[float, float]:
    waits = []
    for child in np.random.SeedSequence(2024).spawn(replications):
        table = simulate("fast", PoissonArrivals(lam), Exponential(1 / mu),
                         np.random.default_rng(child), n, c)
        waits.append(float(np.mean(drop_warmup(table, count=n // 10).wait)))
    return confidence_interval(waits, 0.95)


def profile_toolkit(lam: float, mu: float, c: int, n: int) -> str:
    profiler = cProfile.Profile()
    profiler.runcall(toolkit_simpy, lam, mu, c, n, 1)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
    return out.getvalue()


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--servers", type=int, default=4)
    parser.add_argument("--load", type=float, default=0.9)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--replications", type=int, default=60)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args(argv)
    c, mu, n = args.servers, 1.0, args.customers
    lam = args.load * c * mu
    contenders: list[tuple[str, Callable[..., None], int]] = [
        ("toolkit SimPy model (ServerPool)", toolkit_simpy, n),
        ("toolkit fast path", toolkit_fast, n),
        ("bare SimPy (Resource, no metrics)", bare_simpy, n),
        ("plain heap event list (Python)", plain_heap, n),
        ("Ciw", ciw_model, n),
        ("salabim (yieldless)", salabim_model, n // 10),
    ]
    rows, notes = [], []
    for name, model, customers in contenders:
        try:
            seconds = best_time(model, args.repeats, lam, mu, c, customers, 1)
        except ImportError as error:
            notes.append(f"{name}: skipped ({error}); pip install -e .[benchmark]")
            continue
        rows.append((name, customers, seconds, customers / seconds))
        print(f"{name:36} {customers:>9,} customers {seconds:8.3f} s {customers / seconds:>12,.0f}"
              " customers/s", flush=True)
    rate = {name: speed for name, _, _, speed in rows}
    mean, half = accuracy(lam, mu, c, n, args.replications)
    exact = mmc_mean_wait(lam, mu, c)
    lines = [
        f"# M/M/c benchmark (c = {c}, load {args.load:g}, {n:,} customers)", "",
        "Command: `" + " ".join([".venv/bin/python", f"benchmarks/{Path(__file__).name}",
                                 *(argv if argv is not None else sys.argv[1:])]) + "`  ",
        f"Date: {datetime.date.today().isoformat()}  ",
        f"Machine: {os.cpu_count()} cores, {_cpu_name()},"
        f" Python {platform.python_version()}, SimPy {simpy.__version__}  ",
        "Wall time is the best of"
        f" {args.repeats} repeats; the machine was shared with other jobs, so treat the"
        " figures as rough. Every contender runs with its default settings, untuned.", "",
        "| model | customers | best wall time (s) | customers/s |",
        "|---|---:|---:|---:|",
        *(f"| {name} | {customers:,} | {seconds:.3f} | {speed:,.0f} |"
          for name, customers, seconds, speed in rows),
        "", *(f"- {note}" for note in notes), *([""] if notes else []),
        "Ratios (goals in brackets):", "",
    ]
    toolkit, fast = rate.get(rows[0][0]), rate.get(rows[1][0])
    bare = rate.get("bare SimPy (Resource, no metrics)")
    if "Ciw" in rate:
        lines.append(f"- toolkit SimPy model / Ciw: {toolkit / rate['Ciw']:.2f}x (goal >= 2x)")
    lines += [
        f"- toolkit SimPy model / bare SimPy: {toolkit / bare:.2f}x (goal >= 0.8x)",
        f"- fast path / bare SimPy: {fast / bare:.1f}x (goal >= 10x)",
        "",
        f"Accuracy: mean wait over {args.replications} replications of {n:,} customers (fast"
        f" path, first {n // 10:,} deleted as warm-up): {mean:.4f} ± {half:.4f} (95 % CI);"
        f" Erlang C {exact:.4f}; CI half-width {half / exact:.2%} of Erlang C (goal <= 2 %),"
        f" theory {'inside' if abs(mean - exact) <= half else 'OUTSIDE'} the interval.",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.profile:
        print(profile_toolkit(lam, mu, c, n))
    if not args.no_write:
        RESULTS.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
