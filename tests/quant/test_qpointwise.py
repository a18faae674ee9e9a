"""Quantized sigmoid / tanh / hardsigmoid / hardswish / mean as torch.ao runs them
(ir/ops/quantized_pointwise.py): the 8-bit tables against torch's quantized kernels on
every input integer, the ops on quantized tensors in eager mode, and convert_fx's graph
keeping them on the int8 value (node targets, names and qparams buffers as torch.ao's),
eager and ember.compile bit for bit torch.ao's converted model."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import ember
from ember.ir import dtypes
from ember.ir.ops import quantized_pointwise as QP
from ember.ir.quantized import QuantizedArray
from quant_twins import converted_twins, share_random_weights

warnings.filterwarnings("ignore")
pytestmark = pytest.mark.filterwarnings("ignore")
torch.backends.quantized.engine = "x86"

TORCH_FIXED = {"sigmoid": torch.sigmoid, "tanh": torch.tanh,
               "hardsigmoid": torch.nn.functional.hardsigmoid}
DTYPES = [(dtypes.quint8, torch.quint8, 0), (dtypes.qint8, torch.qint8, -128)]


def all_integers(dtype):
    return np.arange(256, dtype=np.uint8).view(dtype.np_dtype)


def random_qparams(rng, low):
    return float(rng.uniform(0.001, 0.2)), int(rng.integers(0, 256)) + low


@pytest.mark.parametrize("dtype, tdtype, low", DTYPES)
def test_fixed_qparams_tables_equal_torch_on_every_integer(rng, dtype, tdtype, low):
    q = all_integers(dtype)
    for _ in range(12):
        scale, zero_point = random_qparams(rng, low)
        tq = torch._make_per_tensor_quantized_tensor(torch.from_numpy(q.copy()), scale,
                                                     zero_point)
        for name, fn in TORCH_FIXED.items():
            want = fn(tq)
            got = QP.apply_fixed(name, QuantizedArray(q, dtype, scale, zero_point))
            np.testing.assert_array_equal(got.int_repr, want.int_repr().numpy())
            assert (got.scale, got.zero_point) == (want.q_scale(), want.q_zero_point())


@pytest.mark.parametrize("dtype, tdtype, low", DTYPES)
def test_hardswish_table_equals_torch_quantized_hardswish(rng, dtype, tdtype, low):
    q = all_integers(dtype)
    for _ in range(12):
        scale, zero_point = random_qparams(rng, low)
        out_scale, out_zero_point = random_qparams(rng, low)
        tq = torch._make_per_tensor_quantized_tensor(torch.from_numpy(q.copy()), scale,
                                                     zero_point)
        want = torch.ops.quantized.hardswish(tq, out_scale, out_zero_point)
        got = QP.apply_table("hardswish", QuantizedArray(q, dtype, scale, zero_point),
                             out_scale, out_zero_point)
        np.testing.assert_array_equal(got.int_repr, want.int_repr().numpy())


@pytest.mark.parametrize("dtype, tdtype, low", DTYPES)
def test_eager_ops_on_quantized_tensors_equal_torch(rng, dtype, tdtype, low):
    x = (rng.standard_normal((2, 5, 4, 3)) * 3).astype(np.float32)
    e = ember.quantize_per_tensor(ember.tensor(x), 0.04, 7 + low // 2, dtype)
    t = torch.quantize_per_tensor(torch.from_numpy(x), 0.04, 7 + low // 2, tdtype)
    pairs = [(ember.sigmoid, torch.sigmoid), (ember.tanh, torch.tanh),
             (lambda v: v.sigmoid(), lambda v: v.sigmoid()),
             (ember.nn.functional.hardsigmoid, torch.nn.functional.hardsigmoid),
             (ember.nn.Sigmoid(), torch.nn.Sigmoid()), (ember.nn.Tanh(), torch.nn.Tanh()),
             (ember.nn.Hardsigmoid(), torch.nn.Hardsigmoid()),
             (lambda v: v.mean((2, 3), keepdim=True), lambda v: v.mean((2, 3), keepdim=True)),
             (lambda v: ember.quantized_hardswish(v, 0.03, 20 + low),
              lambda v: torch.ops.quantized.hardswish(v, 0.03, 20 + low))]
    for ef, tf in pairs:
        got, want = ef(e), tf(t)
        assert got.dtype == dtype
        np.testing.assert_array_equal(got.int_repr().numpy(), want.int_repr().numpy())
        assert (got.q_scale(), got.q_zero_point()) == (want.q_scale(), want.q_zero_point())


def test_quantized_hardswish_module_equals_torch_ao(rng):
    x = (rng.standard_normal((2, 8, 5, 5)) * 3).astype(np.float32)
    em = ember.ao.nn.quantized.Hardswish(0.025, 40)
    tm = torch.ao.nn.quantized.Hardswish(0.025, 40)
    got = em(ember.quantize_per_tensor(ember.tensor(x), 0.05, 120, ember.quint8))
    want = tm(torch.quantize_per_tensor(torch.from_numpy(x), 0.05, 120, torch.quint8))
    np.testing.assert_array_equal(got.int_repr().numpy(), want.int_repr().numpy())


def pointwise_model(lib):
    nn, F = lib.nn, lib.nn.functional

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)
            self.hs, self.hsig, self.sig, self.tanh = (nn.Hardswish(), nn.Hardsigmoid(),
                                                       nn.Sigmoid(), nn.Tanh())
            self.conv2 = nn.Conv2d(8, 8, 1)

        def forward(self, x):
            x = self.conv(x)
            y = self.hs(x) + self.hsig(x) + self.sig(x) + self.tanh(x)
            y = y + lib.sigmoid(x) + lib.tanh(x) + x.mean(dim=(2, 3), keepdim=True)
            y = y + F.hardswish(x) + F.hardsigmoid(x) + x.sigmoid()
            return self.conv2(y)
    return M().eval()


@pytest.fixture(scope="module")
def converted():
    rng = np.random.default_rng(3)
    t_model, e_model = pointwise_model(torch), pointwise_model(ember)
    share_random_weights(t_model, e_model, rng)
    calib = [rng.standard_normal((2, 3, 8, 8)).astype(np.float32) for _ in range(3)]
    return converted_twins(t_model, e_model, calib)


ON_INT8 = ["hs", "hsig", "sig", "tanh", "sigmoid", "tanh_1", "mean", "hardswish_1",
           "hardsigmoid", "sigmoid_1"]


def test_convert_fx_keeps_pointwise_ops_on_the_int8_value_as_torch_ao(converted):
    t_q, e_q = converted
    t_nodes = {n.name: n for n in t_q.graph.nodes}
    e_nodes = {n.name: n for n in e_q.graph.nodes}
    for name in ON_INT8:
        assert t_nodes[name].args[0].name == "conv"          # the premise, in torch.ao
        assert name in e_nodes and e_nodes[name].args[0].name == "conv", name
        assert e_nodes[name].op == t_nodes[name].op
    assert e_nodes["hardswish_1"].target is ember.quantized_hardswish
    assert set(e_nodes["hardswish_1"].kwargs) == set(t_nodes["hardswish_1"].kwargs) == \
        {"output_scale", "output_zero_point"}
    buffers = lambda m: {k for k, _ in m.named_buffers() if k.startswith("_scale_")}  # noqa
    assert buffers(e_q) == buffers(t_q)
    assert not any(n.name.startswith("quantize_per_tensor_") for n in e_q.graph.nodes)


def test_converted_pointwise_model_equals_torch_ao_eager_and_compiled(converted, rng):
    t_q, e_q = converted
    compiled = ember.compile(e_q)
    for _ in range(2):
        x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
        want = t_q(torch.from_numpy(x)).numpy()
        with ember.no_grad():
            got = e_q(ember.tensor(x)).numpy()
            got_compiled = compiled(ember.tensor(x)).numpy()
        # the same integers (the last conv's output scales differ in the last bit: the
        # observers' float arithmetic, not these ops)
        np.testing.assert_array_equal(np.rint(got / e_q.conv2.scale),
                                      np.rint(want / t_q.conv2.scale))
        np.testing.assert_array_equal(got_compiled, got)


def lut_model(lib):
    nn, F = lib.nn, lib.nn.functional

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)
            self.hs, self.sig = nn.Hardswish(), nn.Sigmoid()
            self.conv2 = nn.Conv2d(8, 8, 1)

        def forward(self, x):
            x = self.conv(x)
            y = self.hs(x) + self.sig(x) + lib.tanh(x) + F.hardsigmoid(x) + F.hardswish(x)
            return self.conv2(y)
    return M().eval()


def test_packaged_pointwise_model_equals_eager(rng, tmp_path):
    """ember.aot packages the table ops (qlut steps) and the artifact equals eager mode."""
    t_model, e_model = lut_model(torch), lut_model(ember)
    share_random_weights(t_model, e_model, rng)
    calib = [rng.standard_normal((2, 3, 8, 8)).astype(np.float32) for _ in range(2)]
    _, e_q = converted_twins(t_model, e_model, calib)
    x = ember.tensor(calib[0])
    with ember.no_grad():
        path = ember.aot.compile_and_package(ember.export(e_q, (x,)), tmp_path / "lut.ember")
        run = ember.aot.load_package(path)
        for _ in range(2):
            np.testing.assert_array_equal(run(x).numpy(), e_q(x).numpy())
            x = ember.tensor(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))
    kinds = [s.get("kind") for s in run.lite.plan["steps"]]
    ops = sorted(s.get("fn") for s in run.lite.plan["steps"] if s.get("kind") == "qlut")
    # (the module's and F.hardswish's calls see one input and calibrate to the same
    # qparams: the exported graph may keep one of the two)
    assert set(ops) == {"hardsigmoid", "hardswish", "sigmoid", "tanh"}, ops


def mean_model(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.conv2 = nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 1)

        def forward(self, x):
            x = self.conv(x)
            return self.conv2(x + x.mean(dim=(2, 3), keepdim=True))     # a broadcast add
    return M().eval()


def test_mean_and_its_broadcast_add_package_and_equal_torch_ao(rng, tmp_path):
    t_model, e_model = mean_model(torch), mean_model(ember)
    share_random_weights(t_model, e_model, rng)
    calib = [rng.standard_normal((2, 3, 8, 8)).astype(np.float32) for _ in range(2)]
    t_q, e_q = converted_twins(t_model, e_model, calib)
    x = ember.tensor(calib[0])
    with ember.no_grad():
        path = ember.aot.compile_and_package(ember.export(e_q, (x,)), tmp_path / "m.ember")
        run = ember.aot.load_package(path)
        for _ in range(2):
            eager = e_q(x).numpy()
            np.testing.assert_array_equal(run(x).numpy(), eager)
            want = t_q(torch.from_numpy(x.numpy())).numpy()
            np.testing.assert_array_equal(np.rint(eager / e_q.conv2.scale),
                                          np.rint(want / t_q.conv2.scale))
            x = ember.tensor(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))
    assert "qmean" in [s.get("kind") for s in run.lite.plan["steps"]]
