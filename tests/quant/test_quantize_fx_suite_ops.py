"""Op behaviour from PyTorch's TestQuantizeFxOps, against torch.ao on the same weights:
fixed-qparams ops (sigmoid, tanh, hardsigmoid, softmax) with their fixed output qparams,
copy nodes (reshape / flatten / max pool / dropout ...) running on the quantized value
with its observer's qparams, convert_to_reference_fx's dequantize -> op -> quantize
patterns, dynamic quantization of Linear / LSTM / GRU through FX, weight-only
Embedding / EmbeddingBag, and float16 static / dynamic qconfigs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from qfx_suite_common import api, assert_same, count, flow, node_kinds, tensor

pytestmark = pytest.mark.filterwarnings("ignore")


def _default(lib, aq):
    return aq.get_default_qconfig_mapping("x86")


def _fixed(lib, op):
    nn, F = lib.nn, lib.nn.functional
    make = {"sigmoid_module": lambda: nn.Sigmoid(), "tanh_module": lambda: nn.Tanh(),
            "hardsigmoid_module": lambda: nn.Hardsigmoid(),
            "softmax_module": lambda: nn.Softmax(dim=1)}

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3)
            self.op = make[op]() if op in make else None

        def forward(self, x):
            x = self.conv(x)
            if self.op is not None:
                x = self.op(x)
            elif op == "sigmoid_function":
                x = lib.sigmoid(x)
            elif op == "sigmoid_method":
                x = x.sigmoid()
            elif op == "tanh_function":
                x = lib.tanh(x)
            elif op == "tanh_method":
                x = x.tanh()
            elif op == "hardsigmoid_function":
                x = F.hardsigmoid(x)
            return self.conv(x)
    return M()


FIXED = ["sigmoid_module", "sigmoid_function", "sigmoid_method", "tanh_module", "tanh_function",
         "tanh_method", "hardsigmoid_module", "hardsigmoid_function", "softmax_module"]


@pytest.mark.parametrize("op", FIXED)
def test_fixed_qparams_ops_run_on_the_int8_value_with_torch_qparams(op):
    t, e = flow(lambda lib: _fixed(lib, op), _default, (2, 3, 6, 6))
    assert_same(t, e, atol=1e-5)
    assert count(e[1], "call_function", "quantize_per_tensor") == 1
    assert count(e[1], "call_method", "dequantize") == 1


@pytest.mark.parametrize("op", ["sigmoid_module", "tanh_method", "softmax_module"])
def test_fixed_qparams_ops_in_the_reference_graph(op):
    t, e = flow(lambda lib: _fixed(lib, op), _default, (2, 3, 6, 6), reference=True)
    assert_same(t, e, atol=1e-5, keys=False)


@pytest.mark.parametrize("op", ["sigmoid_module", "tanh_function"])
def test_fixed_qparams_ops_under_qat_use_fixed_qparams_fake_quantize(op):
    got = {}
    for lib in (torch, ember):
        aq, qfx, _ = api(lib)
        m = _fixed(lib, op).train()
        x = (lib.randn(2, 3, 6, 6),)
        p = qfx.prepare_qat_fx(m, aq.get_default_qat_qconfig_mapping("x86"), x)
        got[lib.__name__] = sorted({type(mod).__name__ for _, mod in p.named_modules()
                                    if "FakeQuantize" in type(mod).__name__})
        fixed = [mod for _, mod in p.named_modules()
                 if type(mod).__name__ == "FixedQParamsFakeQuantize"]
        assert len(fixed) == 1
        got[lib.__name__ + "_qparams"] = (float(fixed[0].scale), int(fixed[0].zero_point))
    assert got["ember"] == got["torch"]
    assert got["ember_qparams"] == got["torch_qparams"]


def _copy_nodes(lib, dropout=True):
    nn, F = lib.nn, lib.nn.functional

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.pool = nn.MaxPool2d(2)
            self.avg = nn.AdaptiveAvgPool2d(2)
            self.drop = nn.Dropout()
            self.relu6 = nn.ReLU6()
            self.hardtanh = nn.Hardtanh()
            self.fc = nn.Linear(16, 5)

        def forward(self, x):
            x = self.conv(x)
            x = self.pool(x)
            x = F.max_pool2d(x, 1)
            x = self.relu6(x)
            x = self.hardtanh(x)
            x = F.relu(x)
            x = lib.clamp(x, -0.5, 0.5)
            x = self.avg(x)
            if dropout:
                x = self.drop(x)
            x = x.permute(0, 1, 3, 2).contiguous()
            x = x.transpose(2, 3)
            x = lib.flatten(x, 1)
            x = x.reshape(x.shape[0], -1)
            x = x.view(-1, 16)
            x = x.unsqueeze(1).squeeze(1)
            x = self.fc(x)
            return x.detach()
    return M()


def test_copy_nodes_share_their_input_observer_and_run_on_int8():
    t, e = flow(_copy_nodes, _default, (2, 3, 8, 8))
    assert_same(t, e, atol=1e-5)
    assert count(e[1], "call_function", "quantize_per_tensor") == 1
    assert count(e[1], "call_method", "dequantize") == 1
    # prepared: the copy nodes' outputs pass through their input's observer again
    assert node_kinds(e[0]) == node_kinds(t[0])
    assert list(e[0].state_dict()) == list(t[0].state_dict())


def test_copy_nodes_reference_graph():
    # without nn.Dropout: torch.ao observes its output anew (a separate observer the
    # reference graph quantizes with), ember shares its input's (docs/quantization.md)
    t, e = flow(lambda lib: _copy_nodes(lib, dropout=False), _default, (2, 3, 8, 8),
                reference=True)
    assert_same(t, e, atol=1e-5, keys=False)


def _conv_linear_add(lib):
    nn, F = lib.nn, lib.nn.functional

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(2, 2, 1), nn.Conv2d(2, 2, 1)
            self.bn = nn.BatchNorm2d(2)
            self.fc = nn.Linear(8, 4)

        def forward(self, x):
            y = self.bn(self.conv1(x))
            x = F.relu(y + self.conv2(x))
            x = x * self.conv2(x)
            return F.relu(self.fc(x.flatten(1)))
    return M()


def test_reference_patterns_dequantize_op_quantize():
    """convert_fx(is_reference=True) (convert_to_reference_fx): reference Linear / Conv
    modules between dequantize and quantize, torch.ao's graph and values."""
    t, e = flow(_conv_linear_add, _default, (3, 2, 2, 2), reference=True)
    assert_same(t, e, atol=1e-5, keys=False)
    modules = [k[1] for k in node_kinds(e[1]) if k[0] == "call_module"]
    assert modules == [k[1] for k in node_kinds(t[1]) if k[0] == "call_module"]
    assert "ConvReLU2d" in modules or "Conv2d" in modules


def test_lowered_conv_linear_add_mul_relu():
    t, e = flow(_conv_linear_add, _default, (3, 2, 2, 2))
    assert_same(t, e, atol=1e-5)
    assert ("call_function", "quantized_add_relu") in node_kinds(t[1])


def _dynamic_model(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.relu, self.fc2 = nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4)

        def forward(self, x):
            return self.fc2(self.relu(self.fc1(x)))
    return M()


@pytest.mark.parametrize("qconfig", ["default_dynamic_qconfig", "per_channel_dynamic_qconfig",
                                     "float16_dynamic_qconfig"])
def test_dynamic_linear_through_fx(qconfig):
    def mapping(lib, aq):
        return aq.QConfigMapping().set_object_type(lib.nn.Linear, getattr(aq, qconfig)) \
            .set_object_type(lib.nn.ReLU, getattr(aq, qconfig))
    t, e = flow(_dynamic_model, mapping, (5, 6))
    assert_same(t, e, atol=1e-4, params=False)
    assert count(e[1], "call_function", "quantize_per_tensor") == 0
    assert any(k[1] in ("LinearReLU", "Linear") for k in node_kinds(e[1]))
    assert "Dynamic" in repr(e[1].fc2)


def _rnn(lib, cls):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = getattr(nn, cls)(4, 5, num_layers=1)

        def forward(self, x):
            return self.rnn(x)[0]
    return M()


@pytest.mark.parametrize("cls", ["LSTM", "GRU"])
def test_dynamic_lstm_gru_through_fx(cls):
    def mapping(lib, aq):
        return aq.QConfigMapping().set_object_type(getattr(lib.nn, cls), aq.default_dynamic_qconfig)
    t, e = flow(lambda lib: _rnn(lib, cls), mapping, (3, 2, 4))
    assert_same(t, e, atol=2e-2, params=False)
    assert type(e[1].rnn).__module__.startswith("ember.ao.nn.quantized.dynamic")


def _embeddings(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 12)
            self.bag = nn.EmbeddingBag(10, 12, mode="sum")

        def forward(self, idx):
            return self.emb(idx).sum(1) + self.bag(idx)
    return M()


def test_weight_only_embedding_and_embedding_bag():
    def mapping(lib, aq):
        return aq.QConfigMapping().set_object_type(lib.nn.Embedding, aq.float_qparams_weight_only_qconfig) \
            .set_object_type(lib.nn.EmbeddingBag, aq.float_qparams_weight_only_qconfig)
    idx = np.random.default_rng(3).integers(0, 10, (4, 3))

    def inputs(lib, arr):
        return (tensor(lib, idx),)
    t, e = flow(_embeddings, mapping, (1,), inputs=inputs)
    assert_same(t, e, atol=1e-5, params=False)
    assert "QuantizedEmbedding" in repr(e[1].emb) and "QuantizedEmbeddingBag" in repr(e[1].bag)


def test_float16_static_qconfig_casts_like_torch():
    def mapping(lib, aq):
        return aq.QConfigMapping().set_global(aq.float16_static_qconfig)
    t, e = flow(_dynamic_model, mapping, (5, 6))
    # the x86 backend has no float16 static pattern: torch.ao leaves the model in float
    assert_same(t, e, atol=1e-6, params=False)
    assert count(e[1], "call_function", "quantize_per_tensor") == 0


def _interpolate(lib, mode):
    F = lib.nn.functional

    class M(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = lib.nn.Conv2d(3, 3, 1)

        def forward(self, x):
            x = self.conv(x)
            kw = {} if mode == "nearest" else {"align_corners": False}
            x = F.interpolate(x, scale_factor=2, mode=mode, **kw)
            return F.avg_pool2d(F.pad(x, (1, 1)), 2)
    return M()


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_interpolate_runs_on_the_int8_value_as_a_copy_node(mode):
    t, e = flow(lambda lib: _interpolate(lib, mode), _default, (2, 3, 4, 4))
    step = float(e[1].conv.scale)
    # nearest is exact; bilinear is computed on the dequantized values and requantized
    # with the input's qparams (within one step of torch's integer kernel)
    assert_same(t, e, atol=1e-5 if mode == "nearest" else 1.01 * step)
    assert node_kinds(e[1])[:3] == [("call_function", "quantize_per_tensor"),
                                    ("call_module", "Conv2d"), ("call_function", "interpolate")]


def _functional_norm_act(lib):
    F = lib.nn.functional

    class M(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = lib.nn.Conv2d(3, 4, 1)

        def forward(self, x):
            x = F.layer_norm(self.conv(x), [4, 4, 4])
            return F.leaky_relu(x, 0.2)
    return M()


def test_functional_layer_norm_and_leaky_relu_get_their_own_output_observer():
    """torch.ao lowers them to quantized::layer_norm / leaky_relu with an observer of
    their own; ember computes them on the dequantized value and quantizes with that
    observer's qparams: same qparams, same values."""
    t, e = flow(_functional_norm_act, _default, (2, 3, 4, 4))
    assert_same(t, e, atol=1e-5, kinds=False)
    assert count(e[1], "call_function", "quantize_per_tensor") == \
        1 + count(t[1], "call_function", "quantized_layer_norm") + \
        count(t[1], "call_function", "quantized_leaky_relu")
