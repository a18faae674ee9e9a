"""prepare_pt2e / convert_pt2e against torch's own pt2e flow (torchao.quantization.pt2e,
where torch.ao's pt2e moved after torch 2.9): the same script with `torch` changed to
`ember`, on twin models with the same weights and calibration data.

Compared: the model input's HistogramObserver qparams (bit for bit), the per-channel
weight scales after BN folding (float32 rounding apart: BN is folded by each library's own
arithmetic), the values each library observes (node by node, the same set), and the
converted models' outputs (float32 rounding apart: both run torch's q/dq form; the
quantize / dequantize placement itself is compared in test_pt2e_x86_parity.py). QAT
goes through ember's FX patterns (simulated BN folding), which also observe three values
torch's x86 recipe leaves float (pinned below). Skipped, saying why, when torchao is not
installed."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import ember
from tests.quant.quant_twins import share_random_weights

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    tao_pt2e = pytest.importorskip("torchao.quantization.pt2e.quantize_pt2e",
                                   reason="torchao (torch's pt2e flow) is not installed")
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as tao_x86

from ember.ao.quantization import quantize_pt2e as em_pt2e
from ember.ao.quantization.quantizer import x86_inductor_quantizer as em_x86

pytestmark = pytest.mark.filterwarnings("ignore")


def _models(lib):
    nn = lib.nn

    class ConvBnReluLinear(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
            self.fc = nn.Linear(4 * 6 * 6, 5)

        def forward(self, x):
            return self.fc(lib.flatten(lib.relu(self.bn(self.conv(x))), 1))

    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(12, 16), nn.Linear(16, 3)
            self.relu = nn.ReLU()

        def forward(self, x):
            return self.fc2(self.relu(self.fc1(x)))

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
            self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
            self.pool = nn.MaxPool2d(2)
            self.fc = nn.Linear(4 * 3 * 3, 6)

        def forward(self, x):
            y = lib.relu(self.bn1(self.conv1(x)))
            y = lib.relu(self.conv2(y) + y)
            return self.fc(lib.flatten(self.pool(y), 1))

    return {"conv_bn_relu_linear": (ConvBnReluLinear, (2, 3, 6, 6)),
            "mlp": (Mlp, (4, 12)), "residual": (Residual, (2, 3, 6, 6))}


def _twins(name, rng):
    t_cls, shape = _models(torch)[name]
    e_cls, _ = _models(ember)[name]
    t_model, e_model = t_cls().eval(), e_cls().eval()
    share_random_weights(t_model, e_model, rng)
    return t_model, e_model, shape


def _observers(model):
    return {n: m for n, m in model.named_modules() if hasattr(m, "calculate_qparams")}


def _input_observer(model):
    """The observer the model's (first) input goes through."""
    x = next(n for n in model.graph.nodes if n.op == "placeholder")
    (user,) = [u for u in x.users if u.op == "call_module"]
    return model.get_submodule(str(user.target))


def _x86_twins(name, rng, n_calib=3):
    """Prepared twins calibrated on the same batches (returned too)."""
    t_model, e_model, shape = _twins(name, rng)
    calib = [rng.standard_normal(shape).astype(np.float32) for _ in range(n_calib)]
    t_prep = tao_pt2e.prepare_pt2e(
        torch.export.export(t_model, (torch.from_numpy(calib[0]),)).module(),
        tao_x86.X86InductorQuantizer().set_global(
            tao_x86.get_default_x86_inductor_quantization_config()))
    e_prep = em_pt2e.prepare_pt2e(
        ember.export(e_model, (ember.tensor(calib[0]),)).module(),
        em_x86.X86InductorQuantizer().set_global(
            em_x86.get_default_x86_inductor_quantization_config()))
    with torch.no_grad(), ember.no_grad():
        for c in calib:
            t_prep(torch.from_numpy(c))
            e_prep(ember.tensor(c))
    return t_prep, e_prep, calib


@pytest.mark.parametrize("name", ["conv_bn_relu_linear", "mlp", "residual"])
def test_x86_input_observer_qparams_are_torchs(name, rng):
    t_prep, e_prep, _ = _x86_twins(name, rng)
    t_obs, e_obs = _input_observer(t_prep), _input_observer(e_prep)
    assert type(t_obs).__name__ == type(e_obs).__name__ == "HistogramObserver"
    t_scale, t_zp = t_obs.calculate_qparams()
    e_scale, e_zp = e_obs.calculate_qparams()
    assert np.float32(e_scale.numpy()[0]) == np.float32(t_scale.item())
    assert int(e_zp.numpy()[0]) == int(t_zp.item())


def _torch_weight_scales(t_conv):
    """The per-channel weight scales of torch's converted graph, in graph order."""
    return [getattr(t_conv, str(n.args[1].target)).numpy() for n in t_conv.graph.nodes
            if n.op == "call_function" and "dequantize_per_channel" in str(n.target)]


def _ember_weight_scales(e_conv):
    """The per-channel weight scales of ember's converted (q/dq) graph, in graph order."""
    out = []
    for n in e_conv.graph.nodes:
        if n.op == "get_attr" and str(n.target).startswith("_frozen_param"):
            w = getattr(e_conv, str(n.target))
            if w.qscheme() in (ember.per_channel_symmetric, ember.per_channel_affine):
                out.append(np.asarray(w.q_per_channel_scales().numpy()))
    return out


@pytest.mark.parametrize("name", ["conv_bn_relu_linear", "mlp", "residual"])
def test_x86_converted_matches_torch(name, rng):
    """The same q/dq graph on the same data: outputs to float32 rounding, on the
    calibration batches and on one twice as wide (beyond the calibrated ranges)."""
    t_prep, e_prep, calib = _x86_twins(name, rng)
    t_conv, e_conv = tao_pt2e.convert_pt2e(t_prep), em_pt2e.convert_pt2e(e_prep)
    t_scales, e_scales = _torch_weight_scales(t_conv), _ember_weight_scales(e_conv)
    assert len(t_scales) == len(e_scales) > 0
    for t, e in zip(t_scales, e_scales):
        np.testing.assert_allclose(e, t, rtol=1e-5)
    for x in calib + [2 * calib[0]]:
        with torch.no_grad(), ember.no_grad():
            t_out = t_conv(torch.from_numpy(x))
            e_out = e_conv(ember.tensor(x))
        t_out = (t_out[0] if isinstance(t_out, (tuple, list)) else t_out).numpy()
        np.testing.assert_allclose(e_out.numpy(), t_out, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("per_channel", [False, True])
def test_xnnpack_symmetric_config_matches_torch(per_channel, rng):
    """XNNPACK's int8 activations: ember runs them as uint8 shifted by 128 (same scale,
    zero point + 128, the same dequantized values)."""
    from torchao.testing.pt2e import _xnnpack_quantizer as tao_xnn
    from ember.ao.quantization.quantizer import xnnpack_quantizer as em_xnn
    t_model, e_model, shape = _twins("mlp", rng)
    calib = [rng.standard_normal(shape).astype(np.float32) for _ in range(3)]
    t_prep = tao_pt2e.prepare_pt2e(
        torch.export.export(t_model, (torch.from_numpy(calib[0]),)).module(),
        tao_xnn.XNNPACKQuantizer().set_global(
            tao_xnn.get_symmetric_quantization_config(is_per_channel=per_channel)))
    e_prep = em_pt2e.prepare_pt2e(
        ember.export(e_model, (ember.tensor(calib[0]),)).module(),
        em_xnn.XNNPACKQuantizer().set_global(
            em_xnn.get_symmetric_quantization_config(is_per_channel=per_channel)))
    with torch.no_grad(), ember.no_grad():
        for c in calib:
            t_prep(torch.from_numpy(c))
            e_prep(ember.tensor(c))
    t_scale, t_zp = _input_observer(t_prep).calculate_qparams()
    e_scale, e_zp = _input_observer(e_prep).calculate_qparams()
    assert np.float32(e_scale.numpy()[0]) == np.float32(t_scale.item())
    assert int(e_zp.numpy()[0]) == int(t_zp.item()) + 128
    t_conv, e_conv = tao_pt2e.convert_pt2e(t_prep), em_pt2e.convert_pt2e(e_prep)
    steps = [float(m.calculate_qparams()[0].numpy().max())
             for m in _observers(e_prep).values() if type(m).__name__ == "HistogramObserver"]
    for x in calib:
        with torch.no_grad(), ember.no_grad():
            t_out = t_conv(torch.from_numpy(x))
            e_out = e_conv(ember.tensor(x))
        t_out = (t_out[0] if isinstance(t_out, (tuple, list)) else t_out).numpy()
        assert np.abs(e_out.numpy() - t_out).max() <= 2 * max(steps)


def _embedding_twins(rng):
    def build(lib):
        class EmbeddingLinear(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.emb, self.fc = lib.nn.Embedding(10, 6), lib.nn.Linear(6, 3)

            def forward(self, idx):
                return self.fc(self.emb(idx))
        return EmbeddingLinear().eval()
    t_model, e_model = build(torch), build(ember)
    share_random_weights(t_model, e_model, rng)
    idx = [rng.integers(0, 10, (2, 5)) for _ in range(3)]
    return t_model, e_model, idx


def _prepared_twins(t_model, e_model, batches, t_quantizer, e_quantizer):
    t_prep = tao_pt2e.prepare_pt2e(
        torch.export.export(t_model, (torch.from_numpy(batches[0]),)).module(), t_quantizer)
    e_prep = em_pt2e.prepare_pt2e(ember.export(e_model, (ember.tensor(batches[0]),)).module(),
                                  e_quantizer)
    with torch.no_grad(), ember.no_grad():
        for b in batches:
            t_prep(torch.from_numpy(b))
            e_prep(ember.tensor(b))
    return tao_pt2e.convert_pt2e(t_prep), em_pt2e.convert_pt2e(e_prep), e_prep


def test_embedding_quantizer_matches_torch(rng):
    """Weight-only rows: uint8 with float scale / zero point per row."""
    from torchao.quantization.pt2e.quantizer.embedding_quantizer import \
        EmbeddingQuantizer as TaoEmbedding
    from ember.ao.quantization.quantizer.embedding_quantizer import EmbeddingQuantizer
    t_model, e_model, idx = _embedding_twins(rng)
    t_conv, e_conv, _ = _prepared_twins(t_model, e_model, idx, TaoEmbedding(),
                                        EmbeddingQuantizer())
    (deq,) = [n for n in t_conv.graph.nodes if "dequantize_per_channel" in str(n.target)]
    t_scale, t_zp = (getattr(t_conv, str(a.target)).numpy() for a in deq.args[1:3])
    t_table = (getattr(t_conv, str(deq.args[0].target)).numpy() - t_zp[:, None]) * \
        t_scale[:, None]
    (table,) = [n for n in e_conv.graph.nodes if n.op == "get_attr" and
                str(n.target).startswith("_frozen_param")]
    w = getattr(e_conv, str(table.target))          # read dequantized by the lookup
    assert w.qscheme() is ember.per_channel_affine_float_qparams
    np.testing.assert_allclose(w.q_per_channel_scales().numpy(), t_scale, rtol=1e-6)
    np.testing.assert_allclose(w.q_per_channel_zero_points().numpy(), t_zp, rtol=1e-6)
    # torch's pt2e rounds x / scale and then adds the float zero point, torch.ao's
    # quantized Embedding (ember's) rounds after adding it: one row step at most apart
    diff = np.abs(w.dequantize().numpy() - t_table)
    assert (diff <= t_scale[:, None] * 1.0001).all()


def test_composable_quantizer_embedding_then_x86(rng):
    """ComposableQuantizer([EmbeddingQuantizer(), X86InductorQuantizer]): rows weight-only,
    the Linear int8 after it; the x86 global config does not claim the embedding."""
    from torchao.quantization.pt2e.quantizer import ComposableQuantizer as TaoComposable
    from torchao.quantization.pt2e.quantizer.embedding_quantizer import \
        EmbeddingQuantizer as TaoEmbedding
    from ember.ao.quantization.quantizer.composable_quantizer import ComposableQuantizer
    from ember.ao.quantization.quantizer.embedding_quantizer import EmbeddingQuantizer
    t_model, e_model, idx = _embedding_twins(rng)
    t_q = TaoComposable([TaoEmbedding(), tao_x86.X86InductorQuantizer().set_global(
        tao_x86.get_default_x86_inductor_quantization_config())])
    e_q = ComposableQuantizer([EmbeddingQuantizer(), em_x86.X86InductorQuantizer().set_global(
        em_x86.get_default_x86_inductor_quantization_config())])
    t_conv, e_conv, e_prep = _prepared_twins(t_model, e_model, idx, t_q, e_q)
    frozen = [getattr(e_conv, str(n.target)).qscheme() for n in e_conv.graph.nodes
              if n.op == "get_attr" and str(n.target).startswith("_frozen_param")]
    assert sorted(map(str, frozen)) == sorted(map(str, [
        ember.per_channel_affine_float_qparams, ember.per_channel_affine]))
    step = max(float(m.calculate_qparams()[0].numpy().max())
               for m in _observers(e_prep).values() if type(m).__name__ == "HistogramObserver")
    for b in idx:
        with torch.no_grad(), ember.no_grad():
            t_out = t_conv(torch.from_numpy(b))
            e_out = e_conv(ember.tensor(b))
        t_out = (t_out[0] if isinstance(t_out, (tuple, list)) else t_out).numpy()
        # the tables agree within one row step (see above), the rest as torch's
        assert np.abs(e_out.numpy() - t_out).max() <= 2 * step
    with pytest.raises(TypeError, match="Quantizer"):
        ComposableQuantizer([EmbeddingQuantizer(), "x86"])


def test_qat_on_a_program_exported_in_training_mode(rng):
    """torch's QAT recipe: export the model as built (training mode), prepare_qat_pt2e,
    train, move_exported_model_to_eval, convert. ember lifts the training-mode BatchNorm
    (batch statistics, running statistics updated in place) back to a module, so conv +
    bn + relu train with simulated BN folding. Compared with torch's pt2e: the first
    training forward (within two steps of ember's coarsest activation fake quantize) and the running
    statistics it leaves. Not compared: gradients (torchao's pt2e QAT pattern gives other
    BN gradients than torch.ao's FX ConvBn modules, which ember's match:
    tests/quant/test_qat_bn.py)."""
    from ember.ao.nn.intrinsic import qat as nniqat
    t_cls, shape = _models(torch)["conv_bn_relu_linear"]
    e_cls, _ = _models(ember)["conv_bn_relu_linear"]
    t_model, e_model = t_cls(), e_cls()                   # training mode, as built
    share_random_weights(t_model, e_model, rng)
    xs = [rng.standard_normal(shape).astype(np.float32) for _ in range(3)]
    t_prep = tao_pt2e.prepare_qat_pt2e(
        torch.export.export(t_model, (torch.from_numpy(xs[0]),)).module(),
        tao_x86.X86InductorQuantizer().set_global(
            tao_x86.get_default_x86_inductor_quantization_config(is_qat=True)))
    e_prep = em_pt2e.prepare_qat_pt2e(
        ember.export(e_model, (ember.tensor(xs[0]),)).module(),
        em_x86.X86InductorQuantizer().set_global(
            em_x86.get_default_x86_inductor_quantization_config(is_qat=True)))
    assert isinstance(e_prep.conv, nniqat.ConvBnReLU2d) and e_prep.conv.bn.training
    t_out, e_out = t_prep(torch.from_numpy(xs[0])), e_prep(ember.tensor(xs[0]))
    t_out = (t_out[0] if isinstance(t_out, (tuple, list)) else t_out).detach().numpy()
    step = max(float(m.calculate_qparams()[0].numpy().max())
               for n, m in e_prep.named_children() if n.startswith("activation_post_process"))
    assert np.abs(e_out.detach().numpy() - t_out).max() <= 2 * step
    t_state = {k: v.numpy() for k, v in t_prep.state_dict().items()}
    np.testing.assert_allclose(e_prep.conv.bn.running_mean.numpy(),
                               t_state["bn.running_mean"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(e_prep.conv.bn.running_var.numpy(),
                               t_state["bn.running_var"], rtol=1e-5, atol=1e-6)
    opt = ember.optim.SGD(e_prep.parameters(), lr=0.05)
    for x in xs[1:]:
        out = e_prep(ember.tensor(x))
        opt.zero_grad()
        (out * out).mean().backward()
        opt.step()
    em_pt2e.move_exported_model_to_eval(e_prep)
    converted = em_pt2e.convert_pt2e(e_prep)
    with ember.no_grad():
        for x in xs:
            simulated = e_prep(ember.tensor(x)).numpy()
            assert np.abs(converted(ember.tensor(x)).numpy() - simulated).max() <= 4 * step


def _block_model(lib):
    """nn.ReLU modules (torch's x86 quantizer fuses a conv or linear only with a ReLU
    module), conv + bn + relu, a residual add + relu, max pool, adaptive average pool,
    flatten, linear + relu and a last linear."""
    nn = lib.nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1, self.r1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), \
                nn.ReLU()
            self.conv2, self.r2 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.ReLU()
            self.pool, self.avg = nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1)
            self.fc, self.r3, self.fc2 = nn.Linear(8 * 3 * 3, 6), nn.ReLU(), nn.Linear(6, 4)

        def forward(self, x):
            y = self.r1(self.bn1(self.conv1(x)))
            y = self.r2(self.conv2(y) + y)
            out = self.fc2(self.r3(self.fc(lib.flatten(self.pool(y), 1))))
            return out, self.avg(y).flatten(1)
    return Block().eval()


def _observed_values(gm) -> dict:
    """{producer node name: (scale, zero point)} of every activation observer (weights'
    observers, which read a constant, left out)."""
    out = {}
    for n in gm.graph.nodes:
        if n.op == "call_module" and "activation_post_process" in str(n.target) and \
                n.args[0].op != "get_attr":
            scale, zp = gm.get_submodule(str(n.target)).calculate_qparams()
            out[n.args[0].name] = (float(np.asarray(scale.numpy()).ravel()[0]),
                                   int(np.asarray(zp.numpy()).ravel()[0]))
    return out


# QAT (ember's FX patterns): ember's prepared value (lifted module or node) -> the same
# value in torch's prepared graph
_SAME_VALUE = {"arg0": "x", "conv1": "relu", "relu_1": "relu_1", "max_pool2d": "max_pool2d",
               "flatten": "flatten", "fc": "relu_2", "adaptive_avg_pool2d": "adaptive_avg_pool2d"}
# observed by ember's FX patterns (QAT, or int8_lowering=True), left float by torch's
# X86InductorQuantizer: the conv before the residual add (torch fuses conv + add + relu,
# only the relu's output is quantized), the last linear (a model output) and the flatten
# after the average pool (a model output: the pool's qparams shared, so the same values)
_EMBER_ONLY = {"conv2", "fc2", "flatten_1"}


def _block_twins_prepared(rng, t_quantizer, e_quantizer, is_qat=False):
    t_model, e_model = _block_model(torch), _block_model(ember)
    share_random_weights(t_model, e_model, rng)
    if is_qat:
        t_model.train(), e_model.train()
    calib = [rng.standard_normal((2, 3, 6, 6)).astype(np.float32) for _ in range(3)]
    t_prep = (tao_pt2e.prepare_qat_pt2e if is_qat else tao_pt2e.prepare_pt2e)(
        torch.export.export(t_model, (torch.from_numpy(calib[0]),)).module(), t_quantizer)
    e_prep = (em_pt2e.prepare_qat_pt2e if is_qat else em_pt2e.prepare_pt2e)(
        ember.export(e_model, (ember.tensor(calib[0]),)).module(), e_quantizer)
    if not is_qat:
        with torch.no_grad(), ember.no_grad():
            for c in calib:
                t_prep(torch.from_numpy(c))
                e_prep(ember.tensor(c))
    return t_prep, e_prep


@pytest.mark.parametrize("is_qat", [False, True])
def test_x86_observed_values_node_by_node_against_torch(rng, is_qat):
    """Where ember's prepare_pt2e observes a value and where torchao's
    X86InductorQuantizer does, value by value. Post-training: torch's recipe on the
    exported graph, the same values (named as torch names them, the input apart) with
    torch's qparams (float32 rounding apart: each library computes its own float conv).
    QAT places its fake quantizes through ember's FX patterns, which also quantize
    _EMBER_ONLY (docs/quantization.md; torch's QAT conv + bn pattern also fake-quantizes
    the folded weight, a `mul` node: a weight)."""
    t_prep, e_prep = _block_twins_prepared(
        rng, tao_x86.X86InductorQuantizer().set_global(
            tao_x86.get_default_x86_inductor_quantization_config(is_qat=is_qat)),
        em_x86.X86InductorQuantizer().set_global(
            em_x86.get_default_x86_inductor_quantization_config(is_qat=is_qat)), is_qat)
    t_obs, e_obs = _observed_values(t_prep), _observed_values(e_prep)
    if is_qat:
        t_obs.pop("mul", None)
        assert set(t_obs) == set(_SAME_VALUE.values())
        assert set(e_obs) == set(_SAME_VALUE) | _EMBER_ONLY
        return          # not calibrated: the fake quantizes' qparams are their defaults
    e_obs["x"] = e_obs.pop("arg0")
    assert set(e_obs) == set(t_obs)
    for name, (t_scale, t_zp) in t_obs.items():
        e_scale, e_zp = e_obs[name]
        assert e_zp == t_zp and e_scale == pytest.approx(t_scale, rel=1e-6), name


def test_xnnpack_observed_values_node_by_node_against_torch(rng):
    """XNNPACKQuantizer quantizes the outputs of convs, adds and linears, model outputs
    included: ember observes the same ten values as torchao, with torch's scales and
    zero points 128 higher (int8 run as uint8, docs/quantization.md)."""
    from torchao.testing.pt2e import _xnnpack_quantizer as tao_xnn
    from ember.ao.quantization.quantizer import xnnpack_quantizer as em_xnn
    t_prep, e_prep = _block_twins_prepared(
        rng, tao_xnn.XNNPACKQuantizer().set_global(
            tao_xnn.get_symmetric_quantization_config(is_per_channel=True)),
        em_xnn.XNNPACKQuantizer().set_global(
            em_xnn.get_symmetric_quantization_config(is_per_channel=True)))
    same = dict(_SAME_VALUE, conv2="conv2d_1", fc2="linear_1", flatten_1="flatten_1")
    t_obs, e_obs = _observed_values(t_prep), _observed_values(e_prep)
    assert set(t_obs) == set(same.values()) and set(e_obs) == set(same)
    for e_name, t_name in same.items():
        (e_scale, e_zp), (t_scale, t_zp) = e_obs[e_name], t_obs[t_name]
        assert e_zp == t_zp + 128 and e_scale == pytest.approx(t_scale, rel=1e-6), e_name
