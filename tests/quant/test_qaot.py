"""Converted (int8) models through ember.export + ember.aot.compile_and_package: the
artifact (lite runtime, the same int8 kernels linked into model.so) equals the eager
converted model bit for bit; what it has no step for is refused by name."""
from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.codegen import quantized as CQ
from ember.codegen.llvm import qgemm as Q
from tests.quant.test_fx_e2e import INPUTS, twin_models
from tests.quant.test_qcompile import converted

pytestmark = [pytest.mark.filterwarnings("ignore"),
              pytest.mark.skipif(Q.active_config() is None, reason="no int8 kernel on this CPU")]


@pytest.mark.parametrize("name", ["mlp", "resnetish"])
def test_packaged_converted_model_equals_eager(rng, tmp_path, name):
    model, x = converted(name, rng)
    with ember.no_grad():
        path = ember.aot.compile_and_package(ember.export(model, (x,)), tmp_path / "q.ember")
        run = ember.aot.load_package(path)
        for _ in range(2):
            np.testing.assert_array_equal(run(x).numpy(), model(x).numpy())
            x = ember.tensor(rng.standard_normal(tuple(x.shape)).astype(np.float32))
    kinds = {d["kind"] for d in run.lite.plan["steps"]}
    assert {"quantize", "qgemm", "dequantize"} <= kinds
    # the kernel eager mode uses here (on AMX hosts, per conv shape AMX tiles or VNNI:
    # tests/quant/test_qaot_choice.py)
    allowed = {CQ.gemm_config().name} | (
        {"vnni", "vnni_n32", "vnni_n16"} if CQ.gemm_config().name == "amx" else set())
    for config in {d["config"] for d in run.lite.plan["steps"] if d["kind"] == "qgemm"}:
        assert config in allowed
        need = {"vnni": {"avx512_vnni"}, "amx": {"amx_int8", "amx_tile"}}.get(
            config.split("_")[0], set())
        assert need <= set(run.manifest["target"]["required_features"])


def test_packaged_dynamic_quantization_equals_eager(rng, tmp_path):
    _, model = twin_models("mlp", rng)
    dyn = ember.ao.quantization.quantize_dynamic(model, {ember.nn.Linear}, dtype=ember.qint8)
    x = ember.tensor(rng.standard_normal((5,) + INPUTS["mlp"]).astype(np.float32))
    with ember.no_grad():
        run = ember.aot.load_package(ember.aot.compile_and_package(
            ember.export(dyn, (x,)), tmp_path / "d.ember"))
        for _ in range(2):      # the input's qparams change per call
            np.testing.assert_array_equal(run(x).numpy(), dyn(x).numpy())
            x = ember.tensor(3 * rng.standard_normal(tuple(x.shape)).astype(np.float32))
    assert "qgemm_dynamic" in {d["kind"] for d in run.lite.plan["steps"]}


def test_packaging_refuses_quantized_ops_without_a_step_by_name(rng, tmp_path):
    def mul(t):
        q = ember.quantize_per_tensor(t, 0.05, 10, ember.quint8)
        return ember.dequantize(ember.quantized_mul(q, q, 0.1, 3))

    class Mul(ember.nn.Module):
        def forward(self, t):
            return mul(t)
    x = ember.tensor(rng.standard_normal((2, 3)).astype(np.float32))
    with ember.no_grad(), pytest.raises(ember.LoweringError, match="quantized_mul"):
        ember.aot.compile_and_package(ember.export(Mul(), (x,)), tmp_path / "m.ember")


def test_quantized_artifact_runs_in_the_lite_runtime_alone(rng, tmp_path):
    """runtime/lite.py loaded on its own (no ember package: NumPy buffers, lite's thread
    pool) runs the int8 artifact with the same results."""
    import subprocess
    import sys

    from ember.runtime import lite
    model, x = converted("resnetish", rng)
    with ember.no_grad():
        path = ember.aot.compile_and_package(ember.export(model, (x,)), tmp_path / "q.ember")
        want = model(x).numpy()
    np.save(tmp_path / "x.npy", x.numpy())
    script = f"""
import importlib.util, sys
import numpy as np
spec = importlib.util.spec_from_file_location('ember_lite', {lite.__file__!r})
lite = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lite)
(y,) = lite.load_package({str(path)!r})(np.load({str(tmp_path / 'x.npy')!r}))
np.save({str(tmp_path / 'y.npy')!r}, y)
assert not [m for m in sys.modules if m.split('.')[0] == 'ember']
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), want)


def test_int8_steps_between_native_segments(rng, tmp_path):
    """Float work before and after the int8 part runs natively; the int8 steps are host
    steps between segments (plan.json's host_steps, with their kinds). Equal to
    ember.compile bit for bit (the float kernels are the compiled ones, not eager's)."""
    import json
    import zipfile
    quantized, x = converted("mlp", rng)

    class Sandwich(ember.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = quantized
            self.head = ember.nn.Linear(quantized(x).shape[-1], 3)

        def forward(self, t):
            return ember.tanh(self.head(self.inner(t * 0.5 + 0.25)))
    model = Sandwich().eval()
    with ember.no_grad():
        path = ember.aot.compile_and_package(ember.export(model, (x,)), tmp_path / "s.ember")
        run = ember.aot.load_package(path)
        compiled = ember.compile(model)
        for _ in range(2):
            np.testing.assert_array_equal(run(x).numpy(), compiled(x).numpy())
            x = ember.tensor(rng.standard_normal(tuple(x.shape)).astype(np.float32))
    with zipfile.ZipFile(path) as z:
        entry = json.loads(z.read("plan.json"))["entry"]
    kinds = [h["kind"] for h in entry["host_steps"]]
    assert kinds[0] == "quantize" and kinds[-1] == "dequantize" and "qgemm" in kinds
    assert len(entry["segments"]) == len(kinds) + 1 and entry["calls"] > 0


def test_int8_artifact_with_a_dynamic_batch(rng, tmp_path):
    model, x = converted("mlp", rng)
    batch = ember.export.Dim("batch", min=2, max=6)
    with ember.no_grad():
        ep = ember.export(model, (x,), dynamic_shapes=({0: batch},))
        run = ember.aot.load_package(ember.aot.compile_and_package(ep, tmp_path / "d.ember"))
        for n in (2, 5):
            xn = ember.tensor(rng.standard_normal((n,) + tuple(x.shape[1:])).astype(np.float32))
            np.testing.assert_array_equal(run(xn).numpy(), model(xn).numpy())


def test_int8_steps_and_a_custom_op_share_the_host_steps(rng, tmp_path):
    """A custom op after the int8 part: both are host steps of one program."""
    from ember.ir.registry import OPS
    quantized, x = converted("mlp", rng)
    before = set(OPS)

    @ember.library.custom_op("qaottest::wobble", mutates_args=())
    def wobble(t: ember.Tensor, scale: float) -> ember.Tensor:
        return ember.sin(t * scale) + t

    wobble.register_fake(lambda t, scale: ember.empty_like(t))
    try:
        class Tail(ember.nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = quantized

            def forward(self, t):
                return wobble(self.inner(t), 1.5) * 2.0
        model = Tail().eval()
        with ember.no_grad():
            path = ember.aot.compile_and_package(ember.export(model, (x,)), tmp_path / "c.ember")
            run = ember.aot.load_package(path)
            np.testing.assert_array_equal(run(x).numpy(), ember.compile(model)(x).numpy())
        kinds = [d["kind"] for d in run.lite.plan["steps"]]
        hosts = [h["kind"] for h in run.lite.plan["entry"]["host_steps"]]
        assert "custom_op" in hosts and "qgemm" in hosts and "kernel" in kinds
    finally:
        for name in set(OPS) - before:
            del OPS[name]


def test_packaged_quantize_and_max_pool_run_the_native_kernels(rng, tmp_path):
    """The input's quantize and a 16-channel max pool are steps naming qelementwise's
    kernels (the ones eager mode runs), equal to the eager model; an 8-channel pool keeps
    NumPy's (eager mode's choice there too)."""
    import ember.ao.quantization as eq
    import ember.ao.quantization.quantize_fx as eqfx
    nn = ember.nn
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(16, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(8 * 3 * 3, 5)).eval()
    x = ember.tensor(rng.standard_normal((2, 3, 12, 12)).astype(np.float32))
    with ember.no_grad():
        prepared = eqfx.prepare_fx(model, eq.get_default_qconfig_mapping("x86"), (x,))
        prepared(x)
        q = eqfx.convert_fx(prepared)
        run = ember.aot.load_package(
            ember.aot.compile_and_package(ember.export(q, (x,)), tmp_path / "p.ember"))
        for _ in range(2):
            np.testing.assert_array_equal(run(x).numpy(), q(x).numpy())
            x = ember.tensor(2 * rng.standard_normal(tuple(x.shape)).astype(np.float32))
    steps = run.lite.plan["steps"]
    if CQ.gemm_config() is not None:
        assert all(d["symbol"].endswith("qquantize") for d in steps if d["kind"] == "quantize")
        pools = [d for d in steps if d["kind"] == "qmaxpool"]
        assert len(pools) == 2 and all(d["symbol"].endswith("qmaxpool") for d in pools)
