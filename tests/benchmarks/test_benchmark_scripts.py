"""ember's own benchmarks/ run on ember.utils.benchmark (issue 16): the shared harness
times through Timer and Measurement, interleaves its callables, keeps failing baselines
out of the ratios and writes results only when asked; every script's command line
parses, and the cheap scripts run their smallest rows in --smoke mode. Nothing here
asserts a timing."""
from __future__ import annotations

import importlib
import json

import pytest

from benchmarks import common
from ember.utils.benchmark import Measurement

SCRIPTS = ["aot", "autograd_functional", "cpu", "cuda", "cuda_models", "cuda_train_step", "distributed",
           "eager", "eager_train", "fft_linalg", "quant", "quant_cuda", "train_step", "vision"]


def _args(*argv):
    return common.bench_args("test", list(argv))


# --- the shared harness ---------------------------------------------------------------------
def test_interleaved_rounds_alternate_and_yield_measurements():
    calls = []
    fns = {"ember": lambda: calls.append("e"), "torch": lambda: calls.append("t")}
    found = common.interleaved(fns, warmup=1, repeats=3, inner=2, label="L", sub_label="row")
    # one warm-up call each, then per round a block of 2 calls of each, in turn
    assert "".join(calls) == "et" + "eett" * 3
    for key, m in found.items():
        assert isinstance(m, Measurement)
        assert m.number_per_run == 2 and len(m.raw_times) == 3
        assert (m.label, m.sub_label, m.description) == ("L", "row", key)
        stats = common.stats(m, warmup=1)
        assert stats["q1_s"] <= stats["median_s"] <= stats["q3_s"]
        assert stats["min_s"] <= stats["median_s"] and stats["repeats"] == 3


def test_blocked_autorange_mode_uses_the_timer():
    found = common.interleaved({"ember": lambda: None}, warmup=0, repeats=1,
                               min_run_time=0.002)
    m = found["ember"]
    assert m.number_per_run > 1          # Timer chose a block size for a no-op statement


def test_failing_baseline_is_recorded_and_left_out_of_ratios():
    bench = common.Bench("t", _args("--smoke"))
    row = bench.row("r", ember=lambda: 1, numpy=lambda: 2, torch=lambda: 1 / 0)
    assert "ZeroDivisionError" in row["torch"]["error"]
    assert set(row["ratios"]) == {"numpy"} and set(row["ratios_best"]) == {"numpy"}
    assert bench.columns() == ["numpy", "torch"]
    assert len(bench.measurements) == 2           # ember and numpy, for Compare
    assert "ember" in str(bench.compare()) and "numpy" in str(bench.compare())


def test_other_tools_get_columns_after_the_usual_ones():
    bench = common.Bench("t", _args("--smoke"))
    bench.row("r", ember=lambda: 1, onnxruntime=lambda: 1, torch=lambda: 1)
    assert bench.columns() == ["torch", "onnxruntime"]
    assert set(bench.rows[0]["ratios"]) == {"torch", "onnxruntime"}


def test_results_are_written_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    bench = common.Bench("t", _args("--smoke"))
    bench.row("r", ember=lambda: 1)
    assert bench.finish() is None and not list(tmp_path.iterdir())
    for flag in ("--save", "--write"):
        bench = common.Bench("t", _args("--smoke", flag))
        bench.row("r", ember=lambda: 1)
        path = bench.finish()
        data = json.loads(path.read_text())
        assert data["rows"][0]["name"] == "r" and "Timer" in data["meta"]["timing"]


def test_smoke_and_quick_set_the_counts():
    smoke, quick = _args("--smoke"), _args("--quick")
    assert (smoke.warmup, smoke.repeats, smoke.no_compile) == (0, 2, True)
    assert (quick.warmup, quick.repeats) == (1, 5)


def test_clocks_follow_the_column():
    from ember.utils.benchmark import timer
    assert common.clock_for("ember") is timer and common.clock_for("ember_cuda") is timer
    assert common.clock_for("torch") is common.torch_clock
    assert common.clock_for("torch.compile") is common.torch_clock


# --- every script -----------------------------------------------------------------------
@pytest.mark.parametrize("name", SCRIPTS)
def test_command_line_parses(name):
    module = importlib.import_module(f"benchmarks.{name}")
    args = module.parse_args(["--smoke"])
    assert args.smoke
    if hasattr(args, "save"):                     # results only with --save
        assert not args.save


SMOKE_RUNS = {   # the cheapest rows of each CPU script; the rest are smoke-run by hand
    "fft_linalg": ["--smoke"],
    "eager": ["--smoke", "--only", "overhead", "--threads", "0"],
    "autograd_functional": ["--smoke"],
    "eager_train": ["--smoke"],
}


@pytest.mark.parametrize("name", sorted(SMOKE_RUNS))
def test_smoke_run(name, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    module = importlib.import_module(f"benchmarks.{name}")
    module.main(SMOKE_RUNS[name])
    out = capsys.readouterr().out
    assert "ember" in out
    assert not list(tmp_path.iterdir())           # nothing written without --save
