"""prepare_pt2e / convert_pt2e against torchao's pt2e flow, graph against graph: the same
script with `torch` changed to `ember` on twin models (same weights, same calibration
batches), then the two converted graphs compared node for node.

Compared for each quantizer setting: where quantize / dequantize pairs sit (which op
reads which input through a dequantize, static or per-call dynamic; which model outputs
stay float), the activation qparams (zero points equal, scales to float32 rounding: each
library computes its own float conv and BN folding), and the outputs (float32 rounding
apart, a boundary value one step off; on the calibration data and on data twice as
wide). Settings: X86InductorQuantizer's static and dynamic global configs;
set_module_name_qconfig, set_module_type_qconfig, set_function_type_qconfig (configs and
None) and set_global(None); XNNPACKQuantizer's dynamic configs (per tensor, per channel,
set_module_name, set_module_type) and its static module name / type settings. Skipped,
saying why, when torchao is not installed."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import ember
from tests.quant.pt2e_parity import activation_qparams, as_numpy, signature
from tests.quant.quant_twins import share_random_weights

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    tao_pt2e = pytest.importorskip("torchao.quantization.pt2e.quantize_pt2e",
                                   reason="torchao (torch's pt2e flow) is not installed")
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as tao_x86
    from torchao.testing.pt2e import _xnnpack_quantizer as tao_xnn

from ember.ao.quantization import quantize_pt2e as em_pt2e
from ember.ao.quantization.quantizer import x86_inductor_quantizer as em_x86
from ember.ao.quantization.quantizer import xnnpack_quantizer as em_xnn

pytestmark = pytest.mark.filterwarnings("ignore")

_API = {torch: (tao_x86, tao_xnn), ember: (em_x86, em_xnn)}


def _models(lib):
    """Module ReLUs (torch's x86 recipe fuses a conv or linear only with an nn.ReLU) next
    to functional ones (which it leaves apart), a residual add, pools, flattens, a last
    linear and a flatten as model outputs."""
    nn = lib.nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1, self.r1 = nn.Conv2d(3, 8, 3, padding=1), \
                nn.BatchNorm2d(8), nn.ReLU()
            self.conv2, self.r2 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.ReLU()
            self.pool, self.avg = nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1)
            self.fc, self.r3, self.fc2 = nn.Linear(8 * 3 * 3, 6), nn.ReLU(), nn.Linear(6, 4)

        def forward(self, x):
            y = self.r1(self.bn1(self.conv1(x)))
            y = self.r2(self.conv2(y) + y)
            out = self.fc2(self.r3(self.fc(lib.flatten(self.pool(y), 1))))
            return out, self.avg(y).flatten(1)

    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
            self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
            self.fc = nn.Linear(4 * 3 * 3, 6)

        def forward(self, x):
            y = lib.relu(self.bn1(self.conv1(x)))
            y = lib.relu(self.conv2(y) + y)
            return self.fc(lib.flatten(lib.nn.functional.max_pool2d(y, 2), 1))

    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.relu, self.fc2 = nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3)

        def forward(self, x):
            return self.fc2(self.relu(self.fc1(x)))

    return {"block": (Block, (2, 3, 6, 6)), "functional": (Functional, (2, 3, 6, 6)),
            "mlp": (Mlp, (4, 12))}


def _converted_twins(name, rng, make_quantizer):
    t_cls, shape = _models(torch)[name]
    e_cls, _ = _models(ember)[name]
    t_model, e_model = t_cls().eval(), e_cls().eval()
    share_random_weights(t_model, e_model, rng)
    calib = [rng.standard_normal(shape).astype(np.float32) for _ in range(2)]
    t_prep = tao_pt2e.prepare_pt2e(
        torch.export.export(t_model, (torch.from_numpy(calib[0]),)).module(),
        make_quantizer(torch, *_API[torch]))
    e_prep = em_pt2e.prepare_pt2e(ember.export(e_model, (ember.tensor(calib[0]),)),
                                  make_quantizer(ember, *_API[ember]))
    with torch.no_grad(), ember.no_grad():
        for c in calib:
            t_prep(torch.from_numpy(c))
            e_prep(ember.tensor(c))
    return tao_pt2e.convert_pt2e(t_prep), em_pt2e.convert_pt2e(e_prep), calib


def _assert_same_graph_and_values(t_conv, e_conv, calib):
    t_sig, e_sig = signature(t_conv), signature(e_conv)
    assert e_sig == t_sig, "\n".join(f"{t} | {e}" for t, e in zip(t_sig, e_sig) if t != e)
    # as sets: where a quantize sits between its producer and its first reader may
    # differ, which value it quantizes (the signature) does not
    t_qp, e_qp = sorted(activation_qparams(t_conv)), sorted(activation_qparams(e_conv))
    assert [zp for _, zp in e_qp] == [zp for _, zp in t_qp]
    np.testing.assert_allclose([s for s, _ in e_qp], [s for s, _ in t_qp], rtol=1e-5)
    # a value on a rounding boundary may land one step apart (torch quantizes x * (1 /
    # scale), ember x / scale): nearly every element to float32 rounding, all within a
    # few steps of the coarsest activation
    step = max([s for s, _ in t_qp] + [0.0])
    for x in calib + [2 * calib[0]]:
        with torch.no_grad(), ember.no_grad():
            t_outs = as_numpy(t_conv(torch.from_numpy(x)))
            e_outs = as_numpy(e_conv(ember.tensor(x)))
        assert len(t_outs) == len(e_outs)
        for t, e in zip(t_outs, e_outs):
            close = np.abs(e - t) <= 1e-5 + 1e-5 * np.abs(t)
            assert close.mean() >= 0.9 and np.abs(e - t).max() <= 1e-5 + 4 * step


def _x86(lib, x86, xnn, **kw):
    return x86.X86InductorQuantizer().set_global(
        x86.get_default_x86_inductor_quantization_config(**kw))


@pytest.mark.parametrize("name", ["block", "functional", "mlp"])
@pytest.mark.parametrize("is_dynamic", [False, True])
def test_x86_global_config_graph_matches_torch(name, is_dynamic, rng):
    """Static: torch's values quantized (a conv before a residual add, a last linear and
    a flatten that are model outputs stay float); dynamic: every conv / linear input
    quantized per call, nothing else."""
    t_conv, e_conv, calib = _converted_twins(
        name, rng, lambda lib, x86, xnn: _x86(lib, x86, xnn, is_dynamic=is_dynamic))
    _assert_same_graph_and_values(t_conv, e_conv, calib)
    if not is_dynamic and name == "block":
        (out,) = [n for n in e_conv.graph.nodes if n.op == "output"]
        assert all(o.op == "call_function" and o.target.name in ("linear", "flatten")
                   for o in out.args[0])                     # both outputs float


_X86_SETTINGS = {
    "module name only": lambda lib, x86, xnn: x86.X86InductorQuantizer()
    .set_module_name_qconfig("fc", x86.get_default_x86_inductor_quantization_config()),
    "module type only": lambda lib, x86, xnn: x86.X86InductorQuantizer()
    .set_module_type_qconfig(lib.nn.Linear, x86.get_default_x86_inductor_quantization_config()),
    "global, a module name None": lambda lib, x86, xnn: _x86(lib, x86, xnn)
    .set_module_name_qconfig("conv2", None),
    "global, a function type None": lambda lib, x86, xnn: _x86(lib, x86, xnn)
    .set_function_type_qconfig(lib.nn.functional.linear, None),
    "global None": lambda lib, x86, xnn: x86.X86InductorQuantizer().set_global(None),
    "conv type dynamic": lambda lib, x86, xnn: x86.X86InductorQuantizer()
    .set_module_type_qconfig(lib.nn.Conv2d,
                             x86.get_default_x86_inductor_quantization_config(is_dynamic=True)),
}


@pytest.mark.parametrize("setting", list(_X86_SETTINGS))
def test_x86_settings_graph_matches_torch(setting, rng):
    t_conv, e_conv, calib = _converted_twins("block", rng, _X86_SETTINGS[setting])
    _assert_same_graph_and_values(t_conv, e_conv, calib)


def _xnn_dynamic(per_channel):
    def make(lib, x86, xnn):
        return xnn.XNNPACKQuantizer().set_global(xnn.get_symmetric_quantization_config(
            is_per_channel=per_channel, is_dynamic=True))
    return make


_XNN_SETTINGS = {
    "per tensor": _xnn_dynamic(False),
    "per channel": _xnn_dynamic(True),
    "module name": lambda lib, x86, xnn: _xnn_dynamic(False)(lib, x86, xnn).set_module_name(
        "fc", xnn.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True)),
    "module type": lambda lib, x86, xnn: _xnn_dynamic(False)(lib, x86, xnn).set_module_type(
        lib.nn.Linear, xnn.get_symmetric_quantization_config(is_per_channel=True,
                                                             is_dynamic=True)),
}


@pytest.mark.parametrize("setting", list(_XNN_SETTINGS))
def test_xnnpack_dynamic_graph_matches_torch(setting, rng):
    """torch's dynamic linear: signed int8 activations quantized per call (its
    choose_qparams: the range widened to 0, scale at least eps), weights per tensor or
    per channel, outputs float; convs left float."""
    t_conv, e_conv, calib = _converted_twins("block", rng, _XNN_SETTINGS[setting])
    _assert_same_graph_and_values(t_conv, e_conv, calib)
    kinds = [k for k, _ in signature(e_conv)]
    assert "quantize_per_tensor_dynamic" not in kinds and \
        sum("dq(" in str(reads) for _, reads in signature(e_conv)) == 2     # the linears


def _xnn_static(lib, xnn, **kw):
    return xnn.get_symmetric_quantization_config(**kw)


_XNN_STATIC_SETTINGS = {
    "module name only": lambda lib, x86, xnn: xnn.XNNPACKQuantizer().set_module_name(
        "fc", _xnn_static(lib, xnn)),
    "module type only": lambda lib, x86, xnn: xnn.XNNPACKQuantizer().set_module_type(
        lib.nn.Linear, _xnn_static(lib, xnn)),
    "global per channel, a module name per tensor": lambda lib, x86, xnn:
    xnn.XNNPACKQuantizer().set_global(_xnn_static(lib, xnn, is_per_channel=True))
    .set_module_name("conv2", _xnn_static(lib, xnn)),
    "global, conv type per channel": lambda lib, x86, xnn: xnn.XNNPACKQuantizer()
    .set_global(_xnn_static(lib, xnn)).set_module_type(
        lib.nn.Conv2d, _xnn_static(lib, xnn, is_per_channel=True)),
}


@pytest.mark.parametrize("setting", list(_XNN_STATIC_SETTINGS))
def test_xnnpack_static_settings_graph_matches_torch(setting, rng):
    """Module name / type settings follow torch's filters: a pattern is annotated when
    each of its nodes was recorded inside such a module (a weight constant never is, so
    a conv under a name or type setting stays float, and a linear + relu is a linear
    whose output the relu shares), the global config covering the rest; signed int8
    activations, as torch's."""
    t_conv, e_conv, calib = _converted_twins("block", rng, _XNN_STATIC_SETTINGS[setting])
    _assert_same_graph_and_values(t_conv, e_conv, calib)


def test_mixed_configs_are_skipped_with_torchs_warning():
    config = em_x86.get_default_x86_inductor_quantization_config
    quantizer = em_x86.X86InductorQuantizer().set_global(config())
    with pytest.warns(UserWarning, match="Mixed dynamic and static"):
        quantizer.set_module_name_qconfig("fc", config(is_dynamic=True))
    with pytest.warns(UserWarning, match="Mixed QAT and Non-QAT"):
        quantizer.set_module_type_qconfig(ember.nn.Linear, config(is_qat=True))
    assert quantizer.module_name_config == {} and quantizer.module_type_config == {}
    with pytest.warns(UserWarning, match="Unable to customize"):
        quantizer.set_module_type_qconfig(ember.nn.Sigmoid, config())


def test_x86_tiny_activation_range_takes_torchs_eps():
    """An activation whose calibrated range is nearly 0: the scale is raised to the
    config's eps (2**-12), torch's value, not float32's."""
    def model(lib):
        class Tiny(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.fc, self.fc2 = lib.nn.Linear(4, 4), lib.nn.Linear(4, 2)

            def forward(self, x):
                return self.fc2(self.fc(x) * 0 + 1e-6)
        return Tiny().eval()
    x = np.full((2, 4), 1e-6, np.float32)
    t_prep = tao_pt2e.prepare_pt2e(torch.export.export(model(torch), (torch.from_numpy(x),))
                                   .module(), _x86(torch, *_API[torch]))
    e_prep = em_pt2e.prepare_pt2e(ember.export(model(ember), (ember.tensor(x),)),
                                  _x86(ember, *_API[ember]))
    with torch.no_grad(), ember.no_grad():
        t_prep(torch.from_numpy(x))
        e_prep(ember.tensor(x))
    t_qp = activation_qparams(tao_pt2e.convert_pt2e(t_prep))
    assert activation_qparams(em_pt2e.convert_pt2e(e_prep)) == t_qp == [(2 ** -12, 0)] * 2


@pytest.mark.parametrize("with_global", [False, True])
def test_x86_matmul_setting_graph_matches_torch(with_global, rng):
    """matmul is quantized only under its operator-type setting (torch's global filter
    counts the default-quantizable ops, which matmul is not)."""
    def model(lib):
        class Attention(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = lib.nn.Linear(4, 4)

            def forward(self, x):
                y = self.fc(x)
                return lib.matmul(y, y.transpose(0, 1))
        return Attention().eval()

    def quantizer(lib, x86):
        config = x86.get_default_x86_inductor_quantization_config()
        q = x86.X86InductorQuantizer()
        if with_global:
            q.set_global(config)
        return q.set_function_type_qconfig(lib.matmul, config)
    t_model, e_model = model(torch), model(ember)
    share_random_weights(t_model, e_model, rng)
    calib = [rng.standard_normal((3, 4)).astype(np.float32) for _ in range(2)]
    t_prep = tao_pt2e.prepare_pt2e(torch.export.export(
        t_model, (torch.from_numpy(calib[0]),)).module(), quantizer(torch, tao_x86))
    e_prep = em_pt2e.prepare_pt2e(ember.export(e_model, (ember.tensor(calib[0]),)),
                                  quantizer(ember, em_x86))
    with torch.no_grad(), ember.no_grad():
        for c in calib:
            t_prep(torch.from_numpy(c))
            e_prep(ember.tensor(c))
    _assert_same_graph_and_values(tao_pt2e.convert_pt2e(t_prep),
                                  em_pt2e.convert_pt2e(e_prep), calib)

