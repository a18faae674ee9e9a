"""`ember compile / run / bench / inspect` through click's CliRunner."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
from click.testing import CliRunner

import ember
from ember.cli import main
from ember.runtime import lite

MODEL_SOURCE = """
import ember
from ember import nn

def make():
    ember.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3))
"""


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """(tmp dir, artifact path, the model) compiled once from a file.py:factory."""
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "model.py").write_text(MODEL_SOURCE)
    out = tmp / "model.ember"
    result = invoke("compile", f"{tmp / 'model.py'}:make", "--input", "x:5x12", "-o", out)
    assert result.exit_code == 0, result.output
    return tmp, out


def _model_from_source(tmp):
    namespace = {}
    exec(MODEL_SOURCE, namespace)
    model = namespace["make"]()
    model.eval()
    return model


def test_compile_then_run_matches_compiled_model(compiled):
    tmp, artifact = compiled
    x = np.random.default_rng(1).standard_normal((5, 12)).astype(np.float32)
    np.save(tmp / "x.npy", x)
    result = invoke("run", artifact, "--input", f"x={tmp / 'x.npy'}", "-o", tmp / "out.npz")
    assert result.exit_code == 0, result.output
    got = np.load(tmp / "out.npz")["output"]
    with ember.no_grad():
        want = ember.compile(_model_from_source(tmp))(ember.tensor(x)).numpy()
    np.testing.assert_array_equal(got, want)
    # one-input models take the file alone too
    assert invoke("run", artifact, "--input", tmp / "x.npy", "-o", tmp / "o2.npz").exit_code == 0


def test_inspect_shows_manifest_plan_and_graph(compiled):
    _, artifact = compiled
    result = invoke("inspect", artifact, "--graph")
    assert result.exit_code == 0, result.output
    for text in (f"ember-artifact v{lite.FORMAT_VERSION}", "5x12", "gemm", "model.so", "graph("):
        assert text in result.stdout


def test_inspect_profile_times_each_step(compiled):
    _, artifact = compiled
    result = invoke("inspect", artifact, "--profile")
    assert result.exit_code == 0, result.output
    assert "median ms" in result.stdout


def test_inspect_profile_by_thread_cpu_time(compiled):
    """--cpu-time: the steps' stamps read the calling thread's CPU time; the library's
    clock is the wall clock again afterwards."""
    _, artifact = compiled
    result = invoke("inspect", artifact, "--profile", "--cpu-time")
    assert result.exit_code == 0, result.output
    assert "median ms" in result.stdout
    bad = invoke("inspect", artifact, "--cpu-time")
    assert bad.exit_code != 0 and "--cpu-time goes with --profile" in bad.output
    model = lite.load_package(str(artifact))
    x = np.ones(model.inputs[0]["shape"], np.float32)
    steps = model.profile(x, repeats=2, thread_cpu=True)
    assert steps and all(seconds >= 0 for _, _, seconds in steps)
    before, _ = model.lib.ember_now(), time.sleep(0.05)
    assert model.lib.ember_now() - before >= 40_000_000    # the wall clock: sleep counts


def test_bench_reports_percentiles(compiled):
    _, artifact = compiled
    result = invoke("bench", artifact, "--warmup", 1, "--iters", 5, "--json")
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert stats["iters"] == 5 and 0 < stats["p50_ms"] <= stats["p90_ms"] <= stats["p99_ms"]
    assert stats["items_per_s"] == pytest.approx(5 * stats["calls_per_s"])


def test_compile_saved_exported_program(tmp_path):
    model = ember.nn.Linear(4, 2)
    x = ember.randn(3, 4)
    ember.export.save(ember.export(model, (x,)), tmp_path / "lin.ep")
    result = invoke("compile", tmp_path / "lin.ep", "-o", tmp_path / "lin.ember")
    assert result.exit_code == 0, result.output
    with ember.no_grad():
        want = ember.compile(model)(x).numpy()
    got = ember.aot.load_package(tmp_path / "lin.ember")(x).numpy()
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("args, message", [
    (("compile", "nofile.py:make", "--input", "x:2x3", "-o", "o.ember"), "no file nofile.py"),
    (("compile", "ember.models:mlp", "--input", "x:2xq", "-o", "o.ember"),
     "dimensions must be integers"),
    (("compile", "ember.models:mlp", "-o", "o.ember"), "give each input's shape"),
    (("compile", "ember.models:mlp", "--input", "x:2x784", "--dynamic", "y:0", "-o", "o.ember"),
     "NAME one of the --input names (x)"),
    (("compile", "ember.models:mlp", "--input", "x:3x784", "--dynamic", "x:0", "-o", "o.ember"),
     "holds fewer than the three sizes"),
    (("compile", "ember.models:nothing", "--input", "x:2", "-o", "o.ember"),
     "has no callable 'nothing'"),
    (("compile", "m.onnx", "-o", "o.ember"), "no such file"),
    (("run", "missing.ember", "--input", "x.npy", "-o", "o.npz"), "not a readable ember artifact"),
    (("inspect", "missing.ember"), "not a readable ember artifact"),
])
def test_bad_input_is_one_line(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = invoke(*args)
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert "Traceback" not in result.output


def test_run_names_wrong_input(compiled):
    tmp, artifact = compiled
    np.save(tmp / "bad.npy", np.zeros((4, 12), np.float32))
    result = invoke("run", artifact, "--input", f"x={tmp / 'bad.npy'}", "-o", tmp / "o.npz")
    assert result.exit_code == 1
    assert "input 'x' must be float32[5, 12], got float32[4, 12]" in result.stderr
    result = invoke("run", artifact, "--input", f"y={tmp / 'bad.npy'}", "-o", tmp / "o.npz")
    assert "no input named 'y'" in result.stderr


def test_compile_with_a_dynamic_batch_runs_every_size(tmp_path):
    (tmp_path / "model.py").write_text(MODEL_SOURCE)
    out = tmp_path / "dyn.ember"
    result = invoke("compile", f"{tmp_path / 'model.py'}:make", "--input", "x:4x12",
                    "--dynamic", "x:0:2-6", "-o", out)
    assert result.exit_code == 0, result.output
    model = _model_from_source(tmp_path)
    for n in (2, 6):
        x = np.random.default_rng(n).standard_normal((n, 12)).astype(np.float32)
        np.save(tmp_path / "x.npy", x)
        result = invoke("run", out, "--input", tmp_path / "x.npy", "-o", tmp_path / "o.npz")
        assert result.exit_code == 0, result.output
        with ember.no_grad():
            want = ember.compile(model, dynamic=False)(ember.tensor(x)).numpy()
        np.testing.assert_array_equal(np.load(tmp_path / "o.npz")["output"], want)
    result = invoke("inspect", out)
    assert result.exit_code == 0, result.output
