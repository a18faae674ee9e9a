"""torch's pt2e annotation API with a user's own Quantizer subclass, the same code run on
torch's pt2e flow (torchao.quantization.pt2e, where torch.ao's moved) and on ember:
QuantizationAnnotation on op-level nodes matched by `ops.aten.<op>.<overload>`,
QuantizationSpec (per-tensor activations, per-channel weights), implicit sharing of a
producer's output observer, SharedQuantizationSpec (cat's inputs and output, sigmoid's
input), DerivedQuantizationSpec (int32 bias, scale = input scale * weight scale) and
FixedQParamsQuantizationSpec (sigmoid's 1/256). Compared: the converted graph's count of
quantize / dequantize nodes, every quantize's zero point and scale (the same observers on the
same values: float32 rounding after a float op apart) and the outputs (within one
quantization step). Skipped, saying why, when torchao is not installed."""
from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import ember
from tests.quant.quant_twins import share_random_weights

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    tao_pt2e = pytest.importorskip("torchao.quantization.pt2e.quantize_pt2e",
                                   reason="torchao (torch's pt2e flow) is not installed")
    import torchao.quantization.pt2e.fake_quantize as tao_fq
    import torchao.quantization.pt2e.observer as tao_obs
    import torchao.quantization.pt2e.quantizer as tao_q

import ember.ao.quantization.fake_quantize as em_fq
import ember.ao.quantization.observer as em_obs
import ember.ao.quantization.quantizer as em_q
from ember.ao.quantization import quantize_pt2e as em_pt2e

pytestmark = pytest.mark.filterwarnings("ignore")

TORCH = SimpleNamespace(lib=torch, q=tao_q, obs=tao_obs, fq=tao_fq, pt2e=tao_pt2e,
                        export=lambda m, args: torch.export.export(m, args).module(),
                        move_to_eval=lambda m: __import__(
                            "torchao.quantization.pt2e", fromlist=["x"]
                        ).move_exported_model_to_eval(m))
EMBER = SimpleNamespace(lib=ember, q=em_q, obs=em_obs, fq=em_fq, pt2e=em_pt2e,
                        export=lambda m, args: ember.export(m, args).module(),
                        move_to_eval=em_pt2e.move_exported_model_to_eval)


def _model(lib):
    class TwoBranch(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = lib.nn.Linear(6, 4), lib.nn.Linear(5, 4)

        def forward(self, x, y):
            a, b = self.fc1(x), self.fc2(y)
            return lib.sigmoid(lib.cat([a, b], 1)), a + b
    return TwoBranch().eval()


def _quantizer(api, is_qat=False, act_range=(-128, 127)):
    """A user's quantizer, written once against the library's names."""
    lib, q, obs = api.lib, api.q, api.obs
    aten = lib.ops.aten
    if is_qat:
        fused = api.fq.FusedMovingAvgObsFakeQuantize
        act_ctr = fused.with_args(observer=obs.MovingAverageMinMaxObserver, eps=2 ** -12)
        weight_ctr = fused.with_args(observer=obs.MovingAveragePerChannelMinMaxObserver,
                                     eps=2 ** -12)
    else:
        act_ctr = obs.HistogramObserver.with_args(eps=2 ** -12)
        weight_ctr = obs.PerChannelMinMaxObserver.with_args(eps=2 ** -12)
    act = q.QuantizationSpec(dtype=lib.int8, quant_min=act_range[0], quant_max=act_range[1],
                             qscheme=lib.per_tensor_affine, observer_or_fake_quant_ctr=act_ctr)
    weight = q.QuantizationSpec(dtype=lib.int8, quant_min=-127, quant_max=127,
                                qscheme=lib.per_channel_symmetric, ch_axis=0,
                                observer_or_fake_quant_ctr=weight_ctr)

    def bias_qparams(observers):
        act_scale, _ = observers[0].calculate_qparams()
        weight_scale, _ = observers[1].calculate_qparams()
        scale = (act_scale * weight_scale).to(lib.float32)
        return scale, lib.zeros(scale.shape, dtype=lib.int32)

    class UserQuantizer(q.Quantizer):
        def annotate(self, model):
            for n in model.graph.nodes:
                if n.target == aten.linear.default:
                    x, w, b = n.args[:3]
                    bias = q.DerivedQuantizationSpec(
                        derived_from=[(x, n), (w, n)], derive_qparams_fn=bias_qparams,
                        dtype=lib.int32, quant_min=-2 ** 31, quant_max=2 ** 31 - 1,
                        qscheme=lib.per_channel_symmetric, ch_axis=0)
                    n.meta["quantization_annotation"] = q.QuantizationAnnotation(
                        input_qspec_map={x: act, w: weight, b: bias}, output_qspec=act,
                        _annotated=True)
                elif n.target == aten.cat.default:
                    first, second = n.args[0]
                    shared = q.SharedQuantizationSpec((first, n))
                    n.meta["quantization_annotation"] = q.QuantizationAnnotation(
                        input_qspec_map={first: act, second: shared}, output_qspec=shared,
                        _annotated=True)
                elif n.target == aten.sigmoid.default:
                    fixed = q.FixedQParamsQuantizationSpec(
                        dtype=lib.uint8, scale=1.0 / 256.0, zero_point=0, quant_min=0,
                        quant_max=255, qscheme=lib.per_tensor_affine)
                    n.meta["quantization_annotation"] = q.QuantizationAnnotation(
                        input_qspec_map={n.args[0]: q.SharedQuantizationSpec(n.args[0])},
                        output_qspec=fixed, _annotated=True)
                elif n.target == aten.add.Tensor:           # torch's helpers
                    a, b = n.args[:2]
                    q.annotate_input_qspec_map(n, a, act)
                    q.annotate_input_qspec_map(n, b, act)
                    q.annotate_output_qspec(n, act)
                    assert q.is_valid_annotation(n.meta["quantization_annotation"])
            return model

        def validate(self, model):
            pass

    return UserQuantizer()


def _run(api, model, batches, is_qat=False, act_range=(-128, 127), test=None):
    """(converted model, its outputs on the batches[, the prepared model's training
    outputs]) after calibration, or QAT forwards (no optimizer steps), on the batches."""
    lib = api.lib
    first = tuple(lib.tensor(v) for v in batches[0])
    prepare = api.pt2e.prepare_qat_pt2e if is_qat else api.pt2e.prepare_pt2e
    prepared = prepare(api.export(model, first), _quantizer(api, is_qat, act_range))
    trained = []
    with lib.no_grad():
        for b in batches:
            trained.append([np.asarray(o.numpy()) for o in prepared(*(lib.tensor(v)
                                                                      for v in b))])
        if is_qat:
            api.move_to_eval(prepared)
        converted = api.pt2e.convert_pt2e(prepared)
        outs = [converted(*(lib.tensor(v) for v in b)) for b in test or batches]
    outs = [[np.asarray(o.numpy()) for o in out] for out in outs]
    return (converted, outs, trained) if is_qat else (converted, outs)


def _quantizes(converted):
    """[(scale, zero point)] of every activation quantize, in graph order."""
    out = []
    for n in converted.graph.nodes:
        if n.op == "call_function" and "quantize_per_tensor" in str(n.target) and \
                "dequantize" not in str(n.target):
            out.append((np.float32(n.args[1]), int(n.args[2])))
    return out


def _dequantize_count(converted):
    return sum(1 for n in converted.graph.nodes
               if "dequantize" in str(n.target) and n.op in ("call_function", "call_method"))


@pytest.mark.parametrize("act_range", [(-128, 127), (-100, 100)])
def test_user_quantizer_annotations_match_torch(rng, act_range):
    """With a narrower activation range, values beyond the calibrated range (the test
    batches are 3x the calibration ones) clamp to quant_min / quant_max as torch's."""
    t_model, e_model = _model(torch), _model(ember)
    share_random_weights(t_model, e_model, rng)
    batches = [(rng.standard_normal((3, 6)).astype(np.float32),
                rng.standard_normal((3, 5)).astype(np.float32)) for _ in range(3)]
    test = [(3 * x, 3 * y) for x, y in batches]
    t_conv, t_outs = _run(TORCH, t_model, batches, act_range=act_range, test=test)
    e_conv, e_outs = _run(EMBER, e_model, batches, act_range=act_range, test=test)
    t_q, e_q = sorted(_quantizes(t_conv)), sorted(_quantizes(e_conv))   # graph orders differ
    assert len(e_q) == len(t_q) > 0
    assert [z for _, z in e_q] == [z for _, z in t_q]
    # float32 rounding of the values observed after a float op may differ in the last bit
    np.testing.assert_allclose([s for s, _ in e_q], [s for s, _ in t_q], rtol=1e-6)
    assert _dequantize_count(e_conv) == _dequantize_count(t_conv)
    add_scale = max(s for s, _ in t_q)
    for t_out, e_out in zip(t_outs, e_outs):
        assert np.abs(e_out[0] - t_out[0]).max() <= 1 / 256 + 1e-7
        assert np.abs(e_out[1] - t_out[1]).max() <= add_scale * 1.0001


def test_user_quantizer_qat_matches_torch(rng):
    """The same quantizer with fused moving-average fake quantizes, prepare_qat_pt2e on
    the model as built: training forwards agree (fake quantized values within one step;
    the fixed-qparams sigmoid output fake-quantized with 1/256 as torch's), then the
    converted graphs as in PTQ."""
    t_model, e_model = _model(torch).train(), _model(ember).train()
    share_random_weights(t_model, e_model, rng)
    batches = [(rng.standard_normal((3, 6)).astype(np.float32),
                rng.standard_normal((3, 5)).astype(np.float32)) for _ in range(3)]
    t_conv, t_outs, t_train = _run(TORCH, t_model, batches, is_qat=True)
    e_conv, e_outs, e_train = _run(EMBER, e_model, batches, is_qat=True)
    t_q, e_q = sorted(_quantizes(t_conv)), sorted(_quantizes(e_conv))
    assert len(e_q) == len(t_q) > 0
    assert [z for _, z in e_q] == [z for _, z in t_q]
    np.testing.assert_allclose([s for s, _ in e_q], [s for s, _ in t_q], rtol=1e-6)
    step = max(s for s, _ in t_q)
    for t, e in zip(t_train + t_outs, e_train + e_outs):
        assert np.abs(e[0] - t[0]).max() <= 1 / 256 + 1e-7
        assert np.abs(e[1] - t[1]).max() <= step * 1.0001


@pytest.mark.parametrize("api", [TORCH, EMBER], ids=["torch", "ember"])
def test_spec_checks_are_torchs(api):
    lib, q = api.lib, api.q
    ctr = api.obs.MinMaxObserver
    with pytest.raises(ValueError, match="quant_min 10 must be <= quant_max 5"):
        q.QuantizationSpec(dtype=lib.int8, observer_or_fake_quant_ctr=ctr, quant_min=10,
                           quant_max=5)
    with pytest.raises(ValueError, match="Ch_axis is < 0"):
        q.QuantizationSpec(dtype=lib.int8, observer_or_fake_quant_ctr=ctr, ch_axis=-1)
    spec = q.QuantizationSpec(dtype=lib.int8, observer_or_fake_quant_ctr=ctr)
    assert spec == q.QuantizationSpec(dtype=lib.int8, observer_or_fake_quant_ctr=ctr)
    ann = q.QuantizationAnnotation()
    assert ann.input_qspec_map == {} and ann.output_qspec is None and \
        ann.allow_implicit_sharing and not ann._annotated
    assert not q.is_valid_annotation(ann) and not q.is_valid_annotation(None)


def test_ember_refusals_name_the_problem(rng):
    model = _model(ember)
    x, y = ember.tensor(np.ones((2, 6), np.float32)), ember.tensor(np.ones((2, 5), np.float32))

    def quantizer(spec_for):
        class Q(em_q.Quantizer):
            def annotate(self, gm):
                for n in gm.graph.nodes:
                    if n.target == ember.ops.aten.linear.default:
                        n.meta["quantization_annotation"] = em_q.QuantizationAnnotation(
                            input_qspec_map={n.args[0]: spec_for(n)})
                return gm
        return Q()
    dynamic = em_q.QuantizationSpec(dtype=ember.int8, is_dynamic=True,
                                    observer_or_fake_quant_ctr=em_obs.MinMaxObserver)
    with pytest.raises(NotImplementedError, match="is_dynamic"):     # dynamic QAT
        em_pt2e.prepare_qat_pt2e(ember.export(model, (x, y)), quantizer(lambda n: dynamic))
    with pytest.raises(em_pt2e.QuantizationError, match="SharedQuantizationSpec"):
        em_pt2e.prepare_pt2e(ember.export(model, (x, y)), quantizer(
            lambda n: em_q.SharedQuantizationSpec(n)))


def _conv_quantizer(api):
    lib, q, obs = api.lib, api.q, api.obs
    act = q.QuantizationSpec(dtype=lib.uint8, quant_min=0, quant_max=255,
                             qscheme=lib.per_tensor_affine,
                             observer_or_fake_quant_ctr=obs.HistogramObserver)
    weight = q.QuantizationSpec(dtype=lib.int8, quant_min=-128, quant_max=127,
                                qscheme=lib.per_channel_symmetric, ch_axis=0,
                                observer_or_fake_quant_ctr=obs.PerChannelMinMaxObserver)

    class ConvQuantizer(q.Quantizer):
        def annotate(self, model):
            for n in model.graph.nodes:
                if n.target == lib.ops.aten.conv2d.default:
                    n.meta["quantization_annotation"] = q.QuantizationAnnotation(
                        input_qspec_map={n.args[0]: act, n.args[1]: weight},
                        output_qspec=act, _annotated=True)
            return model

        def validate(self, model):
            pass
    return ConvQuantizer()


def test_eval_batch_norm_is_folded_into_the_conv_before_annotation(rng):
    """torch's prepare_pt2e folds an eval BatchNorm into the conv before the quantizer
    sees the graph, so the conv's output observer sees the normalized values."""
    def build(lib):
        class ConvBn(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv, self.bn = lib.nn.Conv2d(3, 4, 3, bias=False), lib.nn.BatchNorm2d(4)

            def forward(self, x):
                return lib.relu(self.bn(self.conv(x)))
        return ConvBn().eval()
    t_model, e_model = build(torch), build(ember)
    share_random_weights(t_model, e_model, rng)
    batches = [rng.standard_normal((2, 3, 6, 6)).astype(np.float32) for _ in range(3)]
    outs, quantizes = [], []
    for api, model in ((TORCH, t_model), (EMBER, e_model)):
        lib = api.lib
        prepared = api.pt2e.prepare_pt2e(api.export(model, (lib.tensor(batches[0]),)),
                                         _conv_quantizer(api))
        with lib.no_grad():
            for b in batches:
                prepared(lib.tensor(b))
            converted = api.pt2e.convert_pt2e(prepared)
            out = [converted(lib.tensor(b)) for b in batches]
        outs.append([np.asarray((o[0] if isinstance(o, (tuple, list)) else o).numpy())
                     for o in out])
        quantizes.append(sorted(_quantizes(converted)))
        assert not [n for n in converted.graph.nodes if "batch_norm" in str(n.target) or
                    str(n.target).endswith(("sqrt", "div"))]
    (t_q, e_q) = quantizes
    assert [z for _, z in e_q] == [z for _, z in t_q] and len(t_q) == 2
    np.testing.assert_allclose([s for s, _ in e_q], [s for s, _ in t_q], rtol=1e-5)
    for t, e in zip(*outs):
        assert np.abs(e - t).max() <= max(s for s, _ in t_q) * 1.0001


def _composed_run(api, rng_seed):
    """The converted graph's quantizes, and the error of an overwriting composition."""
    lib, q = api.lib, api.q
    rng = np.random.default_rng(rng_seed)
    model = _model(lib)         # weights do not matter: the graph's q/dq is compared
    x, y = lib.tensor(rng.standard_normal((2, 6)).astype(np.float32)), \
        lib.tensor(rng.standard_normal((2, 5)).astype(np.float32))

    class Overwriting(q.Quantizer):
        def annotate(self, gm):
            for n in gm.graph.nodes:
                if n.target == lib.ops.aten.linear.default:
                    n.meta["quantization_annotation"] = q.QuantizationAnnotation()
            return gm

        def validate(self, gm):
            pass
    composed = q.ComposableQuantizer([_quantizer(api), _conv_quantizer(api)])
    prepared = api.pt2e.prepare_pt2e(api.export(model, (x, y)), composed)
    prepared(x, y)
    with lib.no_grad():
        converted = api.pt2e.convert_pt2e(prepared)
    with pytest.raises(RuntimeError) as err:
        api.pt2e.prepare_pt2e(api.export(model, (x, y)),
                              q.ComposableQuantizer([_quantizer(api), Overwriting()]))
    return _quantizes(converted), str(err.value)


def test_composed_annotating_quantizers():
    """ComposableQuantizer of two user quantizers: both annotate (the conv quantizer finds
    nothing here, the graph is the first one's); one that overwrites an earlier
    annotation is refused with torch's words."""
    (t_q, t_err), (e_q, e_err) = _composed_run(TORCH, 7), _composed_run(EMBER, 7)
    assert len(e_q) == len(t_q) > 0
    assert "Overwriting has changed annotations on node" in t_err
    assert "Overwriting has changed annotations on node" in e_err


@pytest.mark.parametrize("fold", [True, False])
def test_fold_quantize_keeps_or_folds_the_weight_quantize(rng, fold):
    """fold_quantize=True (default): weights are stored quantized, the graph only
    dequantizes them; False: their quantize stays in the graph. Same counts as torch."""
    counts, outs = [], []
    models = {torch: _model(torch), ember: _model(ember)}
    share_random_weights(models[torch], models[ember], rng)
    for api in (TORCH, EMBER):
        lib = api.lib
        model = models[lib]
        x, y = lib.tensor(np.ones((2, 6), np.float32)), lib.tensor(np.ones((2, 5), np.float32))
        prepared = api.pt2e.prepare_pt2e(api.export(model, (x, y)), _quantizer(api))
        prepared(x, y)
        converted = api.pt2e.convert_pt2e(prepared, fold_quantize=fold)
        outs.append(np.asarray(converted(x, y)[1].detach().numpy()))
        counts.append(sum(1 for n in converted.graph.nodes if n.op == "call_function" and
                          "quantize_per" in str(n.target) and "dequantize" not in
                          str(n.target)))
    assert counts[0] == counts[1]
    assert counts[0] == 7 + (0 if fold else 4)     # activations; weights and biases
    np.testing.assert_allclose(outs[1], outs[0], atol=0.05)
