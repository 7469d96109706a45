"""``python -m simulations``: every model runs, JSON parses, bad input is one line and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from simulations import textbook


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simulations", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.mark.parametrize("model", list(textbook.MODELS))
def test_each_model_runs_and_prints_json_beside_theory(model):
    result = run_cli("run", model, "--customers", "3000", "--seed", "4", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["model"] == model and report["customers"] == 3000 and report["warmup"] == 300
    assert set(report["params"]) == {param.name for param in textbook.MODELS[model].params}
    metrics = report["metrics"]
    expected = {"mean_wait_s", "mean_response_s", "p50_response_s", "p99_response_s",
                "throughput_per_s", "utilisation"}
    assert expected <= set(metrics)
    assert ("blocking_probability" in metrics) == (model == "mm1k")
    for name, row in metrics.items():
        assert row["simulated"] is not None and row["simulated"] >= 0, name
        if row["theory"] is not None:
            assert row["relative_error"] == pytest.approx(
                (row["simulated"] - row["theory"]) / row["theory"])
    # Throughput is the arrival rate (less blocking), and a short run gets it within 10 %.
    assert abs(metrics["throughput_per_s"]["relative_error"]) < 0.1


def test_text_table_lists_every_metric_with_theory():
    result = run_cli("run", "mm1k", "--customers", "2000", "--param", "capacity=3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "capacity=3" in lines[0]
    names = [line.split()[0] for line in lines[2:]]
    assert names == ["mean_wait_s", "mean_response_s", "p50_response_s", "p99_response_s",
                     "throughput_per_s", "utilisation", "blocking_probability"]
    assert all(line.rstrip().endswith("%") for line in lines[2:])  # every row has a rel. error


def test_engines_agree_for_the_same_seed():
    """The fast path draws like the SimPy model, so the reports are the same up to rounding."""
    params = textbook.parse_params("mmc", ["servers=3", "arrival_rate=2.4"])
    simpy_report = textbook.run_model("mmc", params, seed=9, customers=5000, engine="simpy")
    fast_report = textbook.run_model("mmc", params, seed=9, customers=5000, engine="fast")
    for name, row in simpy_report.items():
        assert row["simulated"] == pytest.approx(fast_report[name]["simulated"], rel=1e-9)


def test_list_shows_models_parameters_defaults_and_ranges():
    result = run_cli("list")
    assert result.returncode == 0
    for model in textbook.MODELS.values():
        assert model.name in result.stdout
        for param in model.params:
            assert param.name in result.stdout and param.allowed in result.stdout


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["run", "mm2"], "model"),
        (["run", "mm1", "--param", "arrival_rate=-1"], "arrival_rate"),
        (["run", "mm1", "--param", "service_rate=0"], "service_rate"),
        (["run", "mm1", "--param", "arrival_rate=fast"], "arrival_rate"),
        (["run", "mmc", "--param", "servers=0"], "servers"),
        (["run", "mm1k", "--param", "capacity=-1"], "capacity"),
        (["run", "mm1", "--param", "rate=1"], "parameter"),
        (["run", "mm1", "--param", "arrival_rate=1.5"], "arrival_rate"),
        (["run", "mmc", "--param", "arrival_rate=4"], "arrival_rate"),
        (["run", "md1", "--param", "service_time=1.2"], "arrival_rate"),
        (["run", "mg1", "--param", "distribution=weibull"], "distribution"),
        (["run", "mg1", "--param", "service_scv=-1"], "service_scv"),
        (["run", "mm1", "--customers", "10"], "customers"),
        (["run", "mm1", "--customers", "999999999"], "customers"),
        (["run", "mm1", "--engine", "warp"], "engine"),
        (["run", "mm1", "--seed", "abc"], "--seed"),
        (["launch"], "COMMAND"),
    ],
)
def test_bad_input_is_one_line_naming_the_parameter_with_exit_2(args, named):
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0] and "Traceback" not in result.stderr
    # The message says what is allowed: a range, a bound or the list of choices.
    assert any(word in lines[0] for word in ("<", ">", "[", "one of", "choose from", "invalid"))


def test_output_into_a_closed_pipe_ends_quietly():
    """`python -m simulations list | head`: the reader is gone before the table is written."""
    child = subprocess.Popen([sys.executable, "-m", "simulations", "list"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child.stdout.close()
    _, stderr = child.communicate(timeout=120)
    assert (child.returncode, stderr.decode()) == (0, "")


@pytest.mark.parametrize("prog", [["-m", "simulations"], ["-m", "course"]])
def test_help_shows_no_rest_markup(prog):
    shown = subprocess.run([sys.executable, *prog, "--help"], capture_output=True, text=True,
                           check=True).stdout
    assert "``" not in shown and "usage:" in shown


def test_replications_give_the_mean_and_its_95_percent_interval_beside_theory():
    result = run_cli("run", "mm1", "--param", "arrival_rate=0.5", "--customers", "20000",
                     "--engine", "fast", "--replications", "8", "--json")
    assert result.returncode == 0, result.stderr
    p99 = json.loads(result.stdout)["metrics"]["p99_response_s"]
    theory, mean, half = p99["theory"], p99["simulated"], p99["ci95_half_width"]
    assert 0 < half < 0.2 * theory
    assert abs(mean - theory) < 2 * half  # 8 seeded replications of a queue at load 0.5
    single = json.loads(run_cli("run", "mm1", "--param", "arrival_rate=0.5", "--customers",
                                "20000", "--engine", "fast", "--json").stdout)
    assert "ci95_half_width" not in single["metrics"]["p99_response_s"]
    table = run_cli("run", "mm1", "--customers", "2000", "--replications", "3").stdout
    assert "± 95 % CI" in table.splitlines()[1]


def test_replications_out_of_range_are_one_line():
    result = run_cli("run", "mm1", "--replications", "0")
    assert result.returncode == 2
    assert result.stderr == ("python -m simulations run: error: replications must be an "
                             "integer in [1, 100] (got 0)\n")
