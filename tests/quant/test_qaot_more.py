"""Quantized models ember.export / ember.aot could not package before: a mobilenet-style
block (ReLU6 and Hardtanh on quantized values: the artifact's "qclamp" step) and a model
whose quantized branches meet in `cat`. Each artifact equals ember.compile's result bit
for bit, and the converted model agrees with torch.ao's on the same weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.ao.quantization as tq
import torch.ao.quantization.quantize_fx as tqfx

import ember
import ember.ao.quantization as eq
import ember.ao.quantization.quantize_fx as eqfx
from ember.codegen.llvm import qgemm as Q
from tests.quant.quant_twins import share_random_weights

pytestmark = [pytest.mark.filterwarnings("ignore"),
              pytest.mark.skipif(Q.active_config() is None, reason="no int8 kernel on this CPU")]
torch.backends.quantized.engine = "x86"


def mobilenetish(lib):
    nn = lib.nn

    class MobileNetish(nn.Module):
        """conv-bn-relu6 stem, a depthwise-separable block (ReLU6, Hardtanh), a head."""

        def __init__(self):
            super().__init__()
            self.stem, self.bn = nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
            self.act = nn.ReLU6()
            self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.clip = nn.Hardtanh(-0.5, 0.75)
            self.pw = nn.Conv2d(8, 16, 1)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(16, 5)

        def forward(self, x):
            x = self.act(self.bn(self.stem(x)))
            x = self.pw(self.clip(self.dw(x)))
            return self.fc(lib.flatten(self.pool(x), 1))
    return MobileNetish


def _converted_twins(make, rng, shape):
    t_model, e_model = make(torch)().eval(), make(ember)().eval()
    share_random_weights(t_model, e_model, rng)
    calib = [rng.standard_normal((4,) + shape).astype(np.float32) for _ in range(2)]
    t_prep = tqfx.prepare_fx(t_model, tq.get_default_qconfig_mapping("x86"),
                             (torch.from_numpy(calib[0]),))
    e_prep = eqfx.prepare_fx(e_model, eq.get_default_qconfig_mapping("x86"),
                             (ember.tensor(calib[0]),))
    with torch.no_grad(), ember.no_grad():
        for c in calib:
            t_prep(torch.from_numpy(c))
            e_prep(ember.tensor(c))
    return tqfx.convert_fx(t_prep), eqfx.convert_fx(e_prep), t_model


def _check_against_torch_ao(t_q, e_q, t_float, x):
    with torch.no_grad(), ember.no_grad():
        t_out = t_q(torch.from_numpy(x)).numpy()
        e_out = e_q(ember.tensor(x)).numpy()
        step = float(np.abs(t_float(torch.from_numpy(x)).numpy()).max()) / 127
    assert np.abs(t_out - e_out).max() <= 3 * step, np.abs(t_out - e_out).max() / step


def _package_equals_compile(model, rng, shape, tmp_path, kind):
    x = ember.tensor(rng.standard_normal((3,) + shape).astype(np.float32))
    with ember.no_grad():
        run = ember.aot.load_package(ember.aot.compile_and_package(
            ember.export(model, (x,)), tmp_path / "m.ember"))
        compiled = ember.compile(model)
        for scale in (1.0, 4.0):         # 4x: the clamps' bounds clip many values
            xs = x * scale
            want = model(xs).numpy()
            np.testing.assert_array_equal(compiled(xs).numpy(), want)
            np.testing.assert_array_equal(run(xs).numpy(), want)
    kinds = [d["kind"] for d in run.lite.plan["steps"]]
    assert kind in kinds, kinds
    return kinds


def test_quantized_mobilenet_packages_with_relu6_and_hardtanh(rng, tmp_path):
    shape = (3, 10, 10)
    t_q, e_q, t_float = _converted_twins(mobilenetish, rng, shape)
    _check_against_torch_ao(t_q, e_q, t_float,
                            rng.standard_normal((8,) + shape).astype(np.float32))
    kinds = _package_equals_compile(e_q, rng, shape, tmp_path, "qgemm")
    # both clamps follow a conv: in its epilogue (test_clamps_after_convs_fuse_...)
    assert "qclamp" not in kinds


def test_quantized_clamp_with_one_bound_packages(rng, tmp_path):
    """clamp(q, min) on a quantized tensor: the artifact equals eager and torch."""
    def model(bound):
        class M(ember.nn.Module):
            def forward(self, t):
                q = ember.quantize_per_tensor(t, 0.05, 100, ember.quint8)
                return ember.dequantize(ember.clamp(q, bound))
        return M()
    x = ember.tensor(rng.standard_normal((2, 7)).astype(np.float32) * 3)
    with ember.no_grad():
        m = model(-0.4)
        run = ember.aot.load_package(ember.aot.compile_and_package(
            ember.export(m, (x,)), tmp_path / "c.ember"))
        np.testing.assert_array_equal(run(x).numpy(), m(x).numpy())
        t = torch.clamp(torch.quantize_per_tensor(torch.from_numpy(x.numpy()), 0.05, 100,
                                                  torch.quint8), -0.4)
        np.testing.assert_array_equal(run(x).numpy(), t.dequantize().numpy())


def inceptionish(lib):
    nn = lib.nn

    class Inceptionish(nn.Module):
        """Branches joined by cat (one through a shared max pool), then a conv and a head."""

        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 6, 3, padding=1)
            self.b1, self.b2 = nn.Conv2d(6, 4, 1), nn.Conv2d(6, 5, 3, padding=1)
            self.relu, self.pool = nn.ReLU(), nn.MaxPool2d(3, 1, 1)
            self.mix = nn.Conv2d(15, 8, 1)
            self.avg, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(8, 5)

        def forward(self, x):
            x = self.relu(self.stem(x))
            y = lib.cat([self.relu(self.b1(x)), self.b2(x), self.pool(x)], 1)
            return self.fc(lib.flatten(self.avg(self.mix(y)), 1))
    return Inceptionish


def test_convert_fx_quantizes_cat_as_torch_ao(rng, tmp_path):
    shape = (3, 9, 9)
    t_q, e_q, t_float = _converted_twins(inceptionish, rng, shape)
    cats = [n for n in e_q.graph.nodes if getattr(n.target, "name", None) == "cat"]
    assert len(cats) == 1 and not any(
        getattr(n.target, "name", None) == "dequantize" for n in cats[0].all_input_nodes)
    assert e_q.quantization_report == []
    x = rng.standard_normal((6,) + shape).astype(np.float32)
    with torch.no_grad(), ember.no_grad():
        # the same shared qparams and integers as torch.ao's quantized cat
        np.testing.assert_array_equal(e_q(ember.tensor(x)).numpy(),
                                      t_q(torch.from_numpy(x)).numpy())
    _package_equals_compile(e_q, rng, shape, tmp_path, "qcat")


def test_eager_cat_of_quantized_tensors_matches_torch(rng):
    """Shared qparams: the integers joined; others: requantized to the first's."""
    a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    b = rng.standard_normal((2, 2, 4)).astype(np.float32)
    for scale, zero_point in ((0.1, 10), (0.07, 3)):
        qs = [(0.1, 10), (scale, zero_point)]
        e = ember.cat([ember.quantize_per_tensor(ember.tensor(v), s, z, ember.quint8)
                       for v, (s, z) in zip((a, b), qs)], -2)
        t = torch.cat([torch.quantize_per_tensor(torch.from_numpy(v), s, z, torch.quint8)
                       for v, (s, z) in zip((a, b), qs)], -2)
        assert (e.q_scale(), e.q_zero_point()) == (t.q_scale(), t.q_zero_point())
        np.testing.assert_array_equal(e.int_repr().numpy(), t.int_repr().numpy())


def test_relu_on_a_quantized_value_packages(rng, tmp_path):
    """relu after a shared op (pool) runs on the quantized value: a qclamp step."""
    def make(lib):
        nn = lib.nn

        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv, self.pool = nn.Conv2d(3, 6, 3), nn.MaxPool2d(2)
                self.fc = nn.Linear(6 * 3 * 3, 4)

            def forward(self, x):
                x = lib.nn.functional.relu(self.pool(self.conv(x)))
                return self.fc(lib.flatten(x, 1))
        return M
    shape = (3, 8, 8)
    t_q, e_q, t_float = _converted_twins(make, rng, shape)
    _check_against_torch_ao(t_q, e_q, t_float,
                            rng.standard_normal((8,) + shape).astype(np.float32))
    _package_equals_compile(e_q, rng, shape, tmp_path, "qclamp")


def test_clamps_after_convs_fuse_into_their_epilogue(rng, tmp_path):
    """A ReLU6 / hardtanh whose input is a conv's (or depthwise conv's) result that nothing
    else reads goes into the conv's epilogue at packaging (its bounds, quantized with the
    conv's output qparams): no qclamp step is left, and the artifact still equals the
    eager model on inputs well beyond the calibrated range (where the clamps bite)."""
    _, e_q, _ = _converted_twins(mobilenetish, rng, (3, 10, 10))
    x = ember.tensor(rng.standard_normal((2, 3, 10, 10)).astype(np.float32))
    with ember.no_grad():
        run = ember.aot.load_package(ember.aot.compile_and_package(
            ember.export(e_q, (x,)), tmp_path / "m.ember"))
        for scale in (1.0, 6.0):
            xs = ember.tensor(scale * rng.standard_normal(tuple(x.shape)).astype(np.float32))
            np.testing.assert_array_equal(run(xs).numpy(), e_q(xs).numpy())
    steps = run.lite.plan["steps"]
    assert "qclamp" not in [d["kind"] for d in steps]
    clamped = [d for d in steps if d["kind"] == "qgemm" and "clamp_q" in d]
    assert {d["gemm"] for d in clamped} == {"conv", "depthwise"}
    for d in clamped:       # the epilogue's range is inside the clamp's
        assert d["qparams"][2] >= d["clamp_q"][0] and d["qparams"][3] <= d["clamp_q"][1]
