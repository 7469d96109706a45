"""``python -m simulations``: run a textbook queue and compare it with its closed form.

Like a bench test for a scale: put a known weight on it and read both numbers side by side. Each
model here (M/M/1, M/M/c, M/D/1, M/G/1, M/M/1/K) is simulated, the warm-up is deleted, and every
measured figure is printed next to the value queueing theory predicts, with the relative error.

    python -m simulations list
    python -m simulations run mmc --param servers=8 --param arrival_rate=7.2 --seed 3
    python -m simulations run mg1 --param service_scv=4 --customers 200000 --json
    python -m simulations run mm1 --param arrival_rate=0.9 --replications 10 --engine fast

One run's p99 is one draw; ``--replications N`` runs N independent replications and prints each
figure as a mean with the half-width of its 95 % t-interval, beside the theory value.

Engines: ``--engine simpy`` (the default) runs the toolkit's SimPy ``ServerPool`` fed by a
``RequestSource``; ``--engine fast`` runs ``simulations.fastpath``, a recursion without an event
loop that draws the same random numbers in the same order, so for the same seed it gives the
same per-request rows (a test holds it to that) roughly ten times faster. Use it for long runs.

Bad input (an unknown model, parameter or distribution, a non-numeric or out-of-range value, a
load at or above capacity for an unbounded queue) prints one line naming the parameter, its
value and the allowed range on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from patterns.checks import check_int
from simulations.metrics import confidence_interval
from simulations.textbook import (
    DEFAULT_CUSTOMERS,
    MAX_CUSTOMERS,
    MODELS,
    parse_params,
    run_model,
)

MAX_REPLICATIONS = 100


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (and exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m simulations",
                     description=__doc__.splitlines()[0].replace("``", ""))
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)
    sub.add_parser("list", help="list the models and their parameters")
    run = sub.add_parser("run", help="simulate a model and compare it with theory")
    run.add_argument("model", help="one of " + ", ".join(MODELS))
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     help="set a model parameter (repeatable); see `list`")
    run.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    run.add_argument("--customers", type=int, default=DEFAULT_CUSTOMERS,
                     help=f"requests to simulate, 100..{MAX_CUSTOMERS:,} (default"
                          f" {DEFAULT_CUSTOMERS:,})")
    run.add_argument("--warmup", type=int, default=None,
                     help="first requests deleted before measuring (default: a tenth)")
    run.add_argument("--engine", default="simpy", help="simpy (default) or fast")
    run.add_argument("--replications", type=int, default=1, metavar="N",
                     help=f"independent runs (seeds drawn from --seed), 1..{MAX_REPLICATIONS};"
                          " with 2 or more, each figure is the mean with its 95 %% interval")
    run.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _list_models() -> str:
    lines = []
    for model in MODELS.values():
        lines.append(f"{model.name:6} {model.description}")
        for param in model.params:
            lines.append(f"         {param.name:14} default {param.default!s:10} {param.allowed}"
                         f"  ({param.help})")
        lines.append(f"         note: {model.notes}")
    return "\n".join(lines)


def _format(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}g}"


def _table(model: str, header: dict[str, Any], report: dict[str, dict[str, Any]]) -> str:
    interval = any("ci95_half_width" in row for row in report.values())
    lines = [f"{model}: " + ", ".join(f"{k}={v}" for k, v in header.items()),
             f"{'metric':22}{'simulated':>12}" + (f"{'± 95 % CI':>12}" if interval else "")
             + f"{'theory':>12}{'rel. error':>12}"]
    for name, row in report.items():
        error = row["relative_error"]
        half = f"{'± ' + _format(row['ci95_half_width'], 3):>12}" if interval else ""
        lines.append(f"{name:22}{_format(row['simulated']):>12}{half}"
                     f"{_format(row['theory']):>12}{'-' if error is None else f'{error:+.2%}':>12}")
    return "\n".join(lines)


def replicated(model: str, params: dict[str, Any], seed: int, replications: int,
               **options: Any) -> dict[str, dict[str, Any]]:
    """``run_model`` over independent replications (seeds ``seed``, ``seed + 1``, ...): each
    metric's mean, the half-width of its 95 % t-interval, theory and the mean's error."""
    replications = check_int("replications", replications, 1, MAX_REPLICATIONS)
    runs = [run_model(model, params, seed=seed + r, **options) for r in range(replications)]
    if replications == 1:
        return runs[0]
    report = {}
    for name, first in runs[0].items():
        mean, half = confidence_interval([run[name]["simulated"] for run in runs])
        theory = first["theory"]
        report[name] = {"simulated": mean, "ci95_half_width": half, "theory": theory,
                        "relative_error": None if theory in (None, 0) else
                        (mean - theory) / theory}
    return report


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        print(_list_models(), flush=True)
        return 0
    try:
        params = parse_params(args.model, args.param)
        report = replicated(args.model, params, args.seed, args.replications,
                            customers=args.customers, warmup=args.warmup, engine=args.engine)
    except ValueError as error:
        print(f"python -m simulations run: error: {error}", file=sys.stderr)
        return 2
    header = {"engine": args.engine, "seed": args.seed, "customers": args.customers,
              "warmup": args.customers // 10 if args.warmup is None else args.warmup,
              **({"replications": args.replications} if args.replications > 1 else {})}
    if args.json:
        print(json.dumps(_json_safe(
            {"model": args.model, **header, "params": params, "metrics": report})))
    else:
        print(_table(args.model, {**header, **params}, report), flush=True)
    return 0
