"""Op coverage of FX graph-mode quantization against torch.ao on the same weights and
calibration data: depthwise/grouped int8 convs with ReLU6 (a mobilenet_v2-shaped
model), the ops with an output observer of their own (hardswish, elu, leaky_relu), the
clamping ops on quantized tensors (relu6 / hardtanh / clamp), and ember's own
mobilenet_v2 quantized end to end."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.ao.quantization as tq
import torch.ao.quantization.quantize_fx as tqfx

import ember
from tests.quant.quant_twins import ao_modules, int8_layers, output_scale, share_random_weights
import ember.ao.quantization as eq
import ember.ao.quantization.quantize_fx as eqfx

pytestmark = pytest.mark.filterwarnings("ignore")
torch.backends.quantized.engine = "x86"


def model_classes(lib):
    nn, F = lib.nn, lib.nn.functional

    class ConvBNReLU6(nn.Sequential):
        def __init__(self, cin, cout, k=3, stride=1, groups=1):
            super().__init__(nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups,
                                       bias=False), nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))

    class InvertedResidual(nn.Module):
        def __init__(self, cin, cout, stride, expand):
            super().__init__()
            hidden = cin * expand
            self.use_res = stride == 1 and cin == cout
            layers = [ConvBNReLU6(cin, hidden, 1)] if expand != 1 else []
            layers += [ConvBNReLU6(hidden, hidden, 3, stride, groups=hidden),
                       nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
            self.conv = nn.Sequential(*layers)

        def forward(self, x):
            return x + self.conv(x) if self.use_res else self.conv(x)

    class MobileNetV2ish(nn.Module):
        """torchvision's mobilenet_v2 structure, narrower and shorter."""

        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                ConvBNReLU6(3, 16, stride=2), InvertedResidual(16, 8, 1, 1),
                InvertedResidual(8, 12, 2, 6), InvertedResidual(12, 12, 1, 6),
                InvertedResidual(12, 16, 2, 6), InvertedResidual(16, 16, 1, 6),
                ConvBNReLU6(16, 64, 1))
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(64, 10))

        def forward(self, x):
            return self.classifier(lib.flatten(self.pool(self.features(x)), 1))

    class Activations(nn.Module):
        """Grouped conv, then the ops with an output observer of their own and the
        clamping ops, as modules and as functions."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 8, 3, padding=1, groups=2)
            self.hs, self.elu, self.leaky = nn.Hardswish(), nn.ELU(0.7), nn.LeakyReLU(0.05)
            self.tanh_clip = nn.Hardtanh(-0.5, 0.8)
            self.fc = nn.Linear(8 * 6 * 6, 10)

        def forward(self, x):
            x = self.hs(self.conv(x))
            x = F.relu6(self.elu(x))
            x = self.tanh_clip(F.hardswish(self.leaky(x)))
            return self.fc(x.flatten(1))

    class Video(nn.Module):
        """Conv3d (grouped, strided) with relu and pooling, then a linear head."""

        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv3d(3, 6, 3, stride=(1, 2, 2), padding=1, groups=3)
            self.conv2 = nn.Conv3d(6, 8, 2)
            self.pool = nn.AdaptiveAvgPool3d(1) if hasattr(nn, "AdaptiveAvgPool3d") else None
            self.fc = nn.Linear(8 * 3 * 2 * 2, 5)

        def forward(self, x):
            x = F.relu(self.conv1(x))
            return self.fc(self.conv2(x).flatten(1))

    return {"mobilenet": MobileNetV2ish, "activations": Activations, "video": Video}


INPUTS = {"mobilenet": (3, 32, 32), "activations": (4, 6, 6), "video": (3, 4, 6, 6)}


def twin_models(name, rng):
    t_model = model_classes(torch)[name]().eval()
    e_model = model_classes(ember)[name]().eval()
    share_random_weights(t_model, e_model, rng)
    return t_model, e_model


@pytest.mark.parametrize("name", ["mobilenet", "activations", "video"])
def test_convert_fx_agrees_with_torch_ao(rng, name):
    t_model, e_model = twin_models(name, rng)
    shape = INPUTS[name]
    example = rng.standard_normal((2,) + shape).astype(np.float32)
    t_prep = tqfx.prepare_fx(t_model, tq.get_default_qconfig_mapping("x86"),
                             (torch.from_numpy(example),))
    e_prep = eqfx.prepare_fx(e_model, eq.get_default_qconfig_mapping("x86"),
                             (ember.tensor(example),))
    for _ in range(3):
        batch = rng.standard_normal((4,) + shape).astype(np.float32)
        t_prep(torch.from_numpy(batch))
        e_prep(ember.tensor(batch))
    t_q, e_q = tqfx.convert_fx(t_prep), eqfx.convert_fx(e_prep)
    assert e_q.quantization_report == []        # nothing left in float
    graph = ember.ir.print_graph(e_q.graph)
    assert "conv2d(" not in graph and "conv3d(" not in graph     # every conv is int8
    assert ao_modules(e_q) == ao_modules(t_q)      # torch.ao's names and module types
    x = rng.standard_normal((16,) + shape).astype(np.float32)
    t_out, e_out = t_q(torch.from_numpy(x)).numpy(), e_q(ember.tensor(x)).numpy()
    out_scale = output_scale(e_q)
    assert np.abs(t_out - e_out).max() <= 2 * out_scale + 1e-6
    assert (t_out.argmax(1) == e_out.argmax(1)).mean() >= 0.99


@pytest.mark.parametrize("dtype", ["quint8", "qint8"])
def test_clamping_ops_on_quantized_tensors_match_torch(rng, dtype):
    x = rng.standard_normal((3, 40)).astype(np.float32) * 5
    zp = 60 if dtype == "quint8" else 3
    tx = torch.quantize_per_tensor(torch.from_numpy(x), 0.07, zp, getattr(torch, dtype))
    ops = [("relu6", lambda lib, t: lib.nn.functional.relu6(t)),
           ("hardtanh", lambda lib, t: lib.nn.functional.hardtanh(t, -1.55, 2.5)),
           ("clamp", lambda lib, t: lib.clamp(t, min=-1.5)),
           ("ReLU6 inplace", lambda lib, t: lib.nn.ReLU6(inplace=True)(t))]
    for name, op in ops:
        ex = ember.quantize_per_tensor(ember.tensor(x), 0.07, zp, getattr(ember, dtype))
        t_out, e_out = op(torch, tx.clone()), op(ember, ex)
        np.testing.assert_array_equal(e_out.int_repr().numpy(), t_out.int_repr().numpy(),
                                      err_msg=name)
        assert (e_out.q_scale(), e_out.q_zero_point()) == (t_out.q_scale(),
                                                           t_out.q_zero_point())
    assert np.array_equal(ex.int_repr().numpy(), e_out.int_repr().numpy())  # in place


def test_relu6_after_conv_is_not_fused_as_relu(rng):
    """ReLU6 subclasses ReLU in ember: it must still clamp at 6 after quantization, as
    torch.ao's does (at the quantized 6.0 of the conv's output qparams, which may round
    up to half a step above 6: torch.ao gives the same values)."""
    bias = rng.standard_normal(4).astype(np.float32)
    x = np.abs(rng.standard_normal((2, 2, 4, 4))).astype(np.float32) * 3
    outs = []
    for lib, Q, QFX in ((ember, eq, eqfx), (torch, tq, tqfx)):
        model = lib.nn.Sequential(lib.nn.Conv2d(2, 4, 1), lib.nn.ReLU6()).eval()
        model[0].weight = lib.nn.Parameter(lib.full((4, 2, 1, 1), 3.0))
        model[0].bias = lib.nn.Parameter(lib.tensor(bias))
        prepared = QFX.prepare_fx(model, Q.get_default_qconfig_mapping("x86"), (lib.tensor(x),))
        prepared(lib.tensor(x))
        outs.append(QFX.convert_fx(prepared)(lib.tensor(x)).detach().numpy())
    ember_out, torch_out = outs
    assert 5.5 < ember_out.max() < 6.5          # clamped: unclamped values reach ~40
    np.testing.assert_allclose(ember_out, torch_out, atol=1e-5)


def test_ember_mobilenet_v2_quantizes_end_to_end(rng):
    from ember.vision.models import mobilenet_v2
    model = mobilenet_v2(num_classes=10).eval()
    state = {}
    for k, v in model.state_dict().items():        # He-scaled weights keep activations O(1)
        shape = tuple(v.shape)
        if k.endswith("weight") and len(shape) > 1:
            std = np.sqrt(2.0 / np.prod(shape[1:]))
            state[k] = ember.tensor((rng.standard_normal(shape) * std).astype(np.float32))
        elif k.endswith(("bias", "running_mean")):
            state[k] = ember.tensor((rng.standard_normal(shape) * 0.1).astype(np.float32))
    model.load_state_dict(state, strict=False)
    batches = [ember.tensor(rng.standard_normal((2, 3, 48, 48)).astype(np.float32))
               for _ in range(3)]
    prepared = eqfx.prepare_fx(model, eq.get_default_qconfig_mapping("x86"), (batches[0],))
    for b in batches:
        prepared(b)
    quantized = eqfx.convert_fx(prepared)
    assert quantized.quantization_report == []
    graph = ember.ir.print_graph(quantized.graph)
    n_convs = sum(1 for m in model.modules() if isinstance(m, ember.nn.Conv2d))
    assert len(int8_layers(quantized, "conv2d")) == n_convs
    depthwise = [m for m in model.modules() if isinstance(m, ember.nn.Conv2d) and
                 m.groups == m.in_channels > 1]
    assert depthwise and graph.count("quantized_add(") == 10
    x = batches[0]
    f_out, q_out = model(x).detach().numpy(), quantized(x).numpy()
    sqnr = 10 * np.log10((f_out ** 2).sum() / ((f_out - q_out) ** 2).sum())
    assert sqnr > 10


def _ptq_both(name, rng, t_mapping, e_mapping, t_backend=None, e_backend=None):
    t_model, e_model = twin_models(name, rng)
    shape = INPUTS[name]
    example = rng.standard_normal((2,) + shape).astype(np.float32)
    t_prep = tqfx.prepare_fx(t_model, t_mapping, (torch.from_numpy(example),),
                             backend_config=t_backend)
    e_prep = eqfx.prepare_fx(e_model, e_mapping, (ember.tensor(example),),
                             backend_config=e_backend)
    for _ in range(3):
        batch = rng.standard_normal((4,) + shape).astype(np.float32)
        t_prep(torch.from_numpy(batch))
        e_prep(ember.tensor(batch))
    x = rng.standard_normal((16,) + shape).astype(np.float32)
    # torch's reference model (dequantize -> float op -> quantize) is the oracle: torch's
    # x86 kernels take neither signed activations nor affine weights
    t_ref = tqfx.convert_to_reference_fx(t_prep, backend_config=t_backend)
    e_q = eqfx.convert_fx(e_prep, backend_config=e_backend)
    assert e_q.quantization_report == []
    t_out = t_ref(torch.from_numpy(x)).detach().numpy()
    e_out = e_q(ember.tensor(x)).numpy()
    out_scale = output_scale(e_q)
    return t_out, e_out, out_scale, e_q


@pytest.mark.parametrize("name", ["mobilenet", "activations"])
def test_signed_activations_with_the_qnnpack_config(rng, name):
    """qint8 activations (torch.ao's qnnpack symmetric config) on the NumPy references."""
    from torch.ao.quantization.backend_config import get_qnnpack_backend_config as t_qnnpack
    from ember.ao.quantization.backend_config import get_qnnpack_backend_config as e_qnnpack
    t_map = tq.QConfigMapping().set_global(tq.default_per_channel_symmetric_qnnpack_qconfig)
    e_map = eq.QConfigMapping().set_global(eq.default_per_channel_symmetric_qnnpack_qconfig)
    t_out, e_out, step, e_q = _ptq_both(name, rng, t_map, e_map, t_qnnpack(), e_qnnpack())
    assert "qi8)" in ember.ir.print_graph(e_q.graph) and "qu8" not in ember.ir.print_graph(e_q.graph)
    assert np.abs(t_out - e_out).max() <= 2 * step + 1e-6
    assert (t_out.argmax(1) == e_out.argmax(1)).mean() >= 0.99


def test_affine_weights_with_nonzero_zero_points(rng):
    """Weights observed per tensor affine (zero points != 0): the reference subtracts them."""
    def mapping(Q, lib):
        weight = Q.MinMaxObserver.with_args(dtype=lib.qint8, qscheme=lib.per_tensor_affine)
        return Q.QConfigMapping().set_global(
            Q.QConfig(activation=Q.MinMaxObserver.with_args(reduce_range=True),
                      weight=weight))
    t_out, e_out, step, e_q = _ptq_both("activations", rng, mapping(tq, torch),
                                        mapping(eq, ember))
    packed = [m.weight() for _, m in int8_layers(e_q)]
    assert packed and all(w.q_zero_point() != 0 for w in packed)
    assert np.abs(t_out - e_out).max() <= 2 * step + 1e-6
    assert (t_out.argmax(1) == e_out.argmax(1)).mean() >= 0.99
