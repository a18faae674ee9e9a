"""benchmarks/cuda.py's pieces that need no GPU: row selection, the accuracy summary, a
failing torch.compile column, and the torch twins its rows load ember's weights into."""
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ember  # noqa: E402
from benchmarks import cuda as bench  # noqa: E402


def test_only_selects_rows_by_full_name_or_by_word():
    assert bench.parse_args(["--only", "train_mlp"]).rows == ["train_mlp"]
    assert bench.parse_args(["--only", "mlp"]).rows == ["train_mlp", "train_mlp_bf16"]
    assert bench.parse_args(["--only", "infer_resnet50,cold_resnet18_step"]).rows == [
        "infer_resnet50", "cold_resnet18_step"]
    assert bench.parse_args(["--only", "infer"]).rows == [
        "infer_resnet18", "infer_resnet50", "cold_resnet18_infer"]
    assert bench.parse_args([]).rows == list(bench.ROWS)
    with pytest.raises(SystemExit):
        bench.parse_args(["--only", "resnet34"])


def test_errors_name_the_worst_tensor_relative_to_its_scale():
    ref = {"w": np.array([1.0, -2.0]), "b": np.array([1e-9, 1e-3])}
    got = {"w": np.array([1.0, -2.002]), "b": np.array([1e-3, 1e-3])}
    found = bench.errors([2.0, 1.5], got, [2.0, 1.0], ref)
    assert found["worst_param"] == "b"
    assert found["param_rel_err"] == pytest.approx(1.0, rel=1e-5)
    assert found["loss_rel_err"] == pytest.approx(0.5)
    assert found["param_rel_err_l2"] == pytest.approx(
        np.sqrt((0.002 ** 2 + (1e-3 - 1e-9) ** 2) / (5 + 1e-18 + 1e-6)))


def test_a_failing_torch_compile_column_is_recorded_and_left_out():
    def broken():
        raise RuntimeError("recompiled and failed")
    spec = bench.Spec(None, None, (1,), None, inner=1)
    out = bench.timed({"ember": lambda: None, "torch": lambda: None, "torch_compile": broken},
                      spec, types.SimpleNamespace(warmup=0, repeats=2))
    assert "recompiled and failed" in out["torch_compile_error"]
    assert "torch_compile_ms" not in out and out["torch_over_ember"] > 0


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "transformer", "mlp"])
def test_torch_twins_load_embers_weights_and_agree(name):
    spec = bench.specs(False)[name]
    model, twin, _, _ = bench.build(spec)            # load_state_dict is strict
    model, twin = model.eval(), twin.eval()
    shape = (2, 3, 32, 32) if len(spec.x) == 4 else (2,) + spec.x[1:]
    if name == "transformer":
        shape = (2, 4, 512)
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    with ember.no_grad(), torch.no_grad():
        got = model(ember.tensor(x)).numpy()
        want = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
