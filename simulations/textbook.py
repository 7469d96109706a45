"""The textbook queues (M/M/1, M/M/c, M/D/1, M/G/1, M/M/1/K), each beside its closed form.

Like a bench test for a scale: put a known weight on it and read both numbers side by side. Each
model is simulated, the warm-up is deleted, and every measured figure is reported next to the
value queueing theory predicts, with the relative error. ``python -m simulations`` prints these
reports; the validation tests and the benchmark call ``simulate`` directly.

Engines: ``"simpy"`` runs the toolkit's SimPy ``ServerPool`` fed by a ``RequestSource``;
``"fast"`` runs ``simulations.fastpath``, a recursion without an event loop that draws the same
random numbers in the same order, so for the same seed it gives the same per-request rows.
"""


from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from patterns.checks import check_choice, check_int, check_range
from simulations import theory

if TYPE_CHECKING:
    import numpy as np

    from simulations.distributions import Distribution
    from simulations.records import RequestTable
    from simulations.workloads import ArrivalProcess

MAX_CUSTOMERS = 2_000_000
DEFAULT_CUSTOMERS = 100_000
ENGINES = ("simpy", "fast")


@dataclass(frozen=True)
class Param:
    """One model parameter: its default and the values it allows."""

    name: str
    default: float | int | str
    help: str
    kind: str = "float"  # "float" (> 0 unless low is given), "int" (>= low) or "choice"
    low: float = 0.0
    low_open: bool = True
    choices: tuple[str, ...] = ()

    @property
    def allowed(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "int":
            return f"an integer >= {self.low:g}"
        return f"a number {'>' if self.low_open else '>='} {self.low:g}"

    def parse(self, text: str) -> float | int | str:
        """Convert and check the text of ``--param NAME=VALUE``; ValueError names the problem."""
        if self.kind == "choice":
            return check_choice(self.name, text, self.choices)
        try:
            value = int(text) if self.kind == "int" else float(text)
        except ValueError:
            raise ValueError(f"{self.name} must be {self.allowed} (got {text!r})") from None
        if self.kind == "int":
            return check_int(self.name, value, int(self.low))
        return check_range(self.name, value, self.low, low_open=self.low_open)


@dataclass(frozen=True)
class QueueModel:
    """A queue the CLI can run: its parameters, how to build it and what theory predicts."""

    name: str
    description: str
    params: tuple[Param, ...]
    build: Callable[[dict[str, Any]], tuple[Any, Any, int, int | None]]
    """params -> (arrival process, service distribution, servers, capacity)."""
    predict: Callable[[dict[str, Any]], dict[str, float | None]]
    """params -> theory value per metric (None where no closed form is implemented)."""
    notes: str


_ARRIVAL = Param("arrival_rate", 0.9, "arrivals per second (Poisson)")
_SERVICE_RATE = Param("service_rate", 1.0, "services per second per server (exponential)")


def _poisson(p: dict[str, Any]) -> Any:
    from simulations.workloads import PoissonArrivals

    return PoissonArrivals(p["arrival_rate"])


def _exponential(mean: float) -> Any:
    from simulations.distributions import Exponential

    return Exponential(mean)


def _predict_mmc(p: dict[str, Any]) -> dict[str, float | None]:
    lam, mu, c = p["arrival_rate"], p["service_rate"], p.get("servers", 1)
    return {
        "mean_wait_s": theory.mmc_mean_wait(lam, mu, c),
        "mean_response_s": theory.mmc_mean_response(lam, mu, c),
        "p50_response_s": theory.mmc_response_percentile(lam, mu, c, 0.50),
        "p99_response_s": theory.mmc_response_percentile(lam, mu, c, 0.99),
        "throughput_per_s": lam,
        "utilisation": lam / (c * mu),
    }


def _predict_mg1(lam: float, mean: float, wait: float) -> dict[str, float | None]:
    return {
        "mean_wait_s": wait,
        "mean_response_s": wait + mean,
        "p50_response_s": None,
        "p99_response_s": None,
        "throughput_per_s": lam,
        "utilisation": lam * mean,
    }


def _predict_mm1k(p: dict[str, Any]) -> dict[str, float | None]:
    lam, mu, k = p["arrival_rate"], p["service_rate"], p["capacity"]
    blocking = theory.mm1k_blocking(lam, mu, k)
    return {
        "mean_wait_s": theory.mm1k_mean_wait(lam, mu, k),
        "mean_response_s": theory.mm1k_mean_response(lam, mu, k),
        "p50_response_s": theory.mm1k_response_percentile(lam, mu, k, 0.50),
        "p99_response_s": theory.mm1k_response_percentile(lam, mu, k, 0.99),
        "throughput_per_s": lam * (1.0 - blocking),
        "utilisation": lam * (1.0 - blocking) / mu,
        "blocking_probability": blocking,
    }


def _mg1_service(p: dict[str, Any]) -> Any:
    from simulations.distributions import make_distribution

    name, scv = p["distribution"], p["service_scv"]
    fixed = {"exponential": 1.0, "deterministic": 0.0}.get(name)
    if fixed is not None and scv != fixed:
        raise ValueError(f"service_scv must be {fixed:g} for the {name} distribution (got {scv!r})")
    try:
        return make_distribution(name, p["mean_service"], None if fixed is not None else scv)
    except ValueError as error:  # the distribution calls it scv; the command line service_scv
        message = str(error)
        raise ValueError("service_" + message if message.startswith("scv") else message) from None



def _deterministic(value: float) -> Any:
    from simulations.distributions import Deterministic

    return Deterministic(value)


_STABLE = "needs arrival_rate < {} (load below 1)"
MODELS: dict[str, QueueModel] = {
    model.name: model
    for model in (
        QueueModel(
            "mm1",
            "M/M/1: Poisson arrivals, one server, exponential service",
            (_ARRIVAL, _SERVICE_RATE),
            lambda p: (_poisson(p), _exponential(1.0 / p["service_rate"]), 1, None),
            _predict_mmc,
            _STABLE.format("service_rate"),
        ),
        QueueModel(
            "mmc",
            "M/M/c: Poisson arrivals, c servers sharing one FIFO queue, exponential service",
            (Param("arrival_rate", 3.6, "arrivals per second (Poisson)"), _SERVICE_RATE,
             Param("servers", 4, "servers c", kind="int", low=1)),
            lambda p: (_poisson(p), _exponential(1.0 / p["service_rate"]), p["servers"], None),
            _predict_mmc,
            _STABLE.format("servers * service_rate"),
        ),
        QueueModel(
            "md1",
            "M/D/1: Poisson arrivals, one server, every service takes service_time",
            (_ARRIVAL, Param("service_time", 1.0, "the constant service time (s)")),
            lambda p: (_poisson(p), _deterministic(p["service_time"]), 1, None),
            lambda p: _predict_mg1(p["arrival_rate"], p["service_time"],
                                   theory.md1_mean_wait(p["arrival_rate"], p["service_time"])),
            _STABLE.format("1 / service_time") + "; no closed form for percentiles here",
        ),
        QueueModel(
            "mg1",
            "M/G/1: Poisson arrivals, one server, general service (lognormal by default)",
            (_ARRIVAL, Param("mean_service", 1.0, "mean service time (s)"),
             Param("service_scv", 4.0, "squared coefficient of variation of the service time",
                   low_open=False),
             Param("distribution", "lognormal", "service-time distribution", kind="choice",
                   choices=("lognormal", "bimodal", "pareto", "exponential", "deterministic"))),
            lambda p: (_poisson(p), _mg1_service(p), 1, None),
            lambda p: _predict_mg1(p["arrival_rate"], p["mean_service"], theory.mg1_mean_wait(
                p["arrival_rate"], p["mean_service"], p["service_scv"])),
            _STABLE.format("1 / mean_service") + "; no closed form for percentiles here",
        ),
        QueueModel(
            "mm1k",
            "M/M/1/K: one server, at most capacity requests inside (queued + in service)",
            (_ARRIVAL, _SERVICE_RATE,
             Param("capacity", 10, "K, most requests in the system", kind="int", low=1)),
            lambda p: (_poisson(p), _exponential(1.0 / p["service_rate"]), 1, p["capacity"]),
            _predict_mm1k,
            "bounded, so arrival_rate may exceed service_rate; waits are of admitted requests",
        ),
    )
}


METRICS = {  # report name -> key of simulations.metrics.summarize
    "mean_wait_s": "wait_mean_s",
    "mean_response_s": "latency_mean_s",
    "p50_response_s": "latency_p50_s",
    "p99_response_s": "latency_p99_s",
    "throughput_per_s": "throughput_per_s",
    "utilisation": "utilisation",
    "blocking_probability": "rejected_fraction",
}


def parse_params(model_name: str, assignments: Sequence[str]) -> dict[str, Any]:
    """The model's defaults overridden by ``NAME=VALUE`` strings, each checked."""
    model = MODELS[check_choice("model", model_name, MODELS)]
    specs = {param.name: param for param in model.params}
    values: dict[str, Any] = {param.name: param.default for param in model.params}
    for assignment in assignments:
        name, sep, text = assignment.partition("=")
        name = name.strip()
        if not sep:
            raise ValueError(f"--param must look like NAME=VALUE (got {assignment!r})")
        if name not in specs:
            raise ValueError(
                f"parameter must be one of {', '.join(specs)} for {model.name} (got {name!r})")
        values[name] = specs[name].parse(text.strip())
    return values


def run_model(
    model_name: str,
    params: dict[str, Any],
    *,
    seed: int = 1,
    customers: int = DEFAULT_CUSTOMERS,
    warmup: int | None = None,
    engine: str = "simpy",
) -> dict[str, Any]:
    """Simulate a model and compare with theory: {metric: {simulated, theory, relative_error}}.

    The first ``warmup`` requests (default a tenth) are deleted before measuring.
    """
    import numpy as np

    from simulations.metrics import drop_warmup, summarize

    model = MODELS[check_choice("model", model_name, MODELS)]
    check_choice("engine", engine, ENGINES)
    customers = check_int("customers", customers, 100, MAX_CUSTOMERS)
    warmup = customers // 10 if warmup is None else check_int("warmup", warmup, 0, customers - 100)
    predicted = model.predict(params)  # validates the load before anything runs
    arrivals, service, servers, capacity = model.build(params)
    rng = np.random.default_rng(check_int("seed", seed, 0))
    table = simulate(engine, arrivals, service, rng, customers, servers, capacity)
    measured = summarize(drop_warmup(table, count=warmup), servers=servers)
    report = {}
    for name, expected in predicted.items():
        simulated = measured[METRICS[name]]
        error = None if expected in (None, 0) else (simulated - expected) / expected
        report[name] = {"simulated": simulated, "theory": expected, "relative_error": error}
    return report


def simulate(
    engine: str,
    arrivals: ArrivalProcess,
    service: Distribution,
    rng: np.random.Generator,
    customers: int,
    servers: int = 1,
    capacity: int | None = None,
) -> RequestTable:
    """One run of a FIFO queue: the toolkit's SimPy model (``"simpy"``) or the fast path.

    Both draw the same random numbers in the same order, so they give the same rows.
    """
    if check_choice("engine", engine, ENGINES) == "fast":
        from simulations.fastpath import simulate_fifo

        return simulate_fifo(arrivals, service, rng, customers, servers, capacity)
    import simpy

    from simulations.clients import RequestSource
    from simulations.servers import ServerPool

    env = simpy.Environment()
    pool = ServerPool(env, servers, service, rng, capacity=capacity)
    RequestSource(env, arrivals, pool.submit, rng, n=check_int("customers", customers, 1))
    env.run()
    return pool.log.table()
