"""Quantization as the torch.ao tutorials and user repos write it: observers and their
calculate_qparams, per-channel against per-tensor qconfigs, QConfigMapping tweaks
(set_module_name, set_object_type, set_module_name_regex), eager static quantization
with QuantStub / DeQuantStub / FloatFunctional and fuse_modules, eager QAT, saving and
loading a quantized state_dict, fake-quantize ops, and the numeric suite's
compare_weights / compare_model_outputs."""
import copy
import io
import operator

import numpy as np
import torch
import torch.ao.nn.intrinsic.qat as nniqat
import torch.ao.ns._numeric_suite as ns
import torch.ao.quantization as tq
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import (DeQuantStub, HistogramObserver, MinMaxObserver,
                                   MovingAverageMinMaxObserver, PerChannelMinMaxObserver,
                                   QConfig, QConfigMapping, QuantStub, default_observer,
                                   default_per_channel_weight_observer, default_weight_observer)
import torch.ao.quantization.quantize_fx as from_fx
from torch.ao.quantization.backend_config import get_native_backend_config
from torch.ao.quantization.fx.custom_config import PrepareCustomConfig
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx


def t(*shape, seed=0, scale=1.0):
    return torch.from_numpy((np.random.default_rng(seed).standard_normal(shape) * scale)
                            .astype(np.float32))


def load_(model, scale=0.3):
    with torch.no_grad():
        for i, (name, p) in enumerate(sorted(model.named_parameters())):
            p.copy_(t(*p.shape, seed=400 + i, scale=scale))
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.copy_(torch.from_numpy(np.linspace(0.5, 1.5, b.numel()).astype(np.float32)))
            elif name.endswith("running_mean"):
                b.copy_(torch.from_numpy(np.linspace(-0.2, 0.2, b.numel()).astype(np.float32)))
    return model


def case_observers_calculate_qparams():
    x = t(4, 6, seed=1) * 3
    y = t(4, 6, seed=2)
    out = []
    for obs in (MinMaxObserver(), MinMaxObserver(dtype=torch.qint8,
                                                 qscheme=torch.per_tensor_symmetric),
                MovingAverageMinMaxObserver(averaging_constant=0.5),
                MinMaxObserver(quant_min=0, quant_max=127, reduce_range=False),
                PerChannelMinMaxObserver(ch_axis=1, dtype=torch.qint8,
                                         qscheme=torch.per_channel_symmetric),
                PerChannelMinMaxObserver(ch_axis=0)):
        obs(x)
        obs(y)
        scale, zp = obs.calculate_qparams()
        out.append((scale, zp, zp.dtype, obs.min_val, obs.max_val))
    return out


def case_histogram_observer():
    obs = HistogramObserver(bins=64)
    obs(t(200, seed=3))
    obs(t(200, seed=4) * 2)
    scale, zp = obs.calculate_qparams()
    return scale, zp, obs.min_val, obs.max_val


def case_default_observers_and_repr():
    w = default_weight_observer()
    a = default_observer()
    pc = default_per_channel_weight_observer()
    w(t(3, 4, seed=5))
    pc(t(3, 4, seed=5))
    return (w.calculate_qparams(), pc.calculate_qparams(), repr(a), str(w.dtype),
            str(pc.qscheme), w.quant_min, w.quant_max)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 6, 1)
        self.fc1 = nn.Linear(6, 8)
        self.fc2 = nn.Linear(8, 4)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        x = self.conv2(x) + x
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc2(F.relu(self.fc1(x)))


def _calibrate(prepared, n=3):
    with torch.no_grad():
        for i in range(n):
            prepared(t(2, 3, 6, 6, seed=10 + i))


def case_per_tensor_vs_per_channel_fx():
    model = load_(Net()).eval()
    per_tensor = QConfig(activation=MinMaxObserver.with_args(reduce_range=True),
                         weight=default_weight_observer)
    per_channel = QConfig(activation=MinMaxObserver.with_args(reduce_range=True),
                          weight=default_per_channel_weight_observer)
    x = t(2, 3, 6, 6, seed=20)
    outs, schemes = [], []
    for qconfig in (per_tensor, per_channel):
        prepared = prepare_fx(copy.deepcopy(model), QConfigMapping().set_global(qconfig),
                              (x,))
        _calibrate(prepared)
        q = convert_fx(prepared)
        outs.append(q(x))
        schemes.append(str(q.fc1.weight().qscheme()))
    return outs, schemes


def case_qconfig_mapping_tweaks():
    model = load_(Net()).eval()
    qconfig = tq.get_default_qconfig("x86")
    mapping = (QConfigMapping().set_global(qconfig)
               .set_module_name("fc2", None)
               .set_object_type(operator.add, None)
               .set_module_name_regex("conv2", None))
    x = t(2, 3, 6, 6, seed=21)
    prepared = prepare_fx(copy.deepcopy(model), mapping, (x,))
    _calibrate(prepared)
    q = convert_fx(prepared)
    kinds = {name: type(m).__name__ for name, m in q.named_children()}
    return q(x), kinds, sorted(mapping.to_dict())


def case_fusion_with_mismatched_qconfigs_messages():
    # fc1 + F.relu fuse, but the mapping gives them different qconfigs
    model = load_(Net()).eval()
    mapping = (QConfigMapping().set_global(tq.get_default_qconfig("x86"))
               .set_object_type(nn.Linear, QConfig(
                   activation=MinMaxObserver.with_args(reduce_range=True),
                   weight=default_weight_observer)))
    try:
        prepare_fx(model, mapping, (t(2, 3, 6, 6, seed=22),))
        return [None]
    except LookupError as e:
        text = str(e)
        return [text.split(" in <class")[0], text.split("offending type: ")[1].split("'")[1]
                .rsplit(".", 1)[-1]]


class EagerNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.skip_add = FloatFunctional()
        self.cat = FloatFunctional()
        self.fc = nn.Linear(8, 3)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.quant(x)
        y = self.relu1(self.bn1(self.conv1(x)))
        z = self.relu2(self.conv2(y))
        s = self.skip_add.add(y, z)
        s = self.cat.cat([s, z], dim=1)
        s = F.adaptive_avg_pool2d(s, 1).flatten(1)
        return self.dequant(self.fc(s))

    def fuse_model(self):
        tq.fuse_modules(self, [["conv1", "bn1", "relu1"], ["conv2", "relu2"]], inplace=True)


def case_eager_static_float_functional():
    model = load_(EagerNet()).eval()
    model.fuse_model()
    model.qconfig = tq.get_default_qconfig("x86")
    prepared = tq.prepare(model, inplace=False)
    for i in range(3):
        prepared(t(2, 3, 5, 5, seed=30 + i))
    q = tq.convert(prepared, inplace=False)
    x = t(2, 3, 5, 5, seed=40)
    return (q(x), type(q.conv1).__name__, type(q.skip_add).__name__,
            float(q.skip_add.scale), int(q.skip_add.zero_point),
            float(q.cat.scale), [type(m).__name__ for m in (q.bn1, q.relu1, q.relu2)])


def case_eager_qat_flow():
    model = load_(EagerNet()).train()
    model.fuse_modules_qat = None
    tq.fuse_modules_qat(model, [["conv1", "bn1", "relu1"], ["conv2", "relu2"]], inplace=True)
    model.qconfig = tq.get_default_qat_qconfig("x86")
    prepared = tq.prepare_qat(model)
    opt = torch.optim.SGD(prepared.parameters(), lr=0.05)
    for i in range(2):
        opt.zero_grad()
        prepared(t(2, 3, 5, 5, seed=50 + i)).pow(2).mean().backward()
        opt.step()
    prepared.eval()
    kinds = [(name, type(m).__name__) for name, m in prepared.named_modules()
             if "post_process" not in name and "fake_quant" not in name]
    q = tq.convert(prepared)
    return q(t(2, 3, 5, 5, seed=60)), kinds, type(q.conv1).__name__, \
        sorted(k for k in prepared.state_dict() if "post_process" not in k)


def case_quantized_state_dict_save_load():
    model = load_(EagerNet()).eval()
    model.fuse_model()
    model.qconfig = tq.get_default_qconfig("x86")
    prepared = tq.prepare(model)
    for i in range(2):
        prepared(t(2, 3, 5, 5, seed=70 + i))
    q = tq.convert(prepared)
    buf = io.BytesIO()
    torch.save(q.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf)
    # the usual reload: build the float model, fuse, prepare, convert, then load
    fresh = EagerNet().eval()
    fresh.fuse_model()
    fresh.qconfig = tq.get_default_qconfig("x86")
    fresh = tq.convert(tq.prepare(fresh))
    fresh.load_state_dict(state)
    x = t(2, 3, 5, 5, seed=80)
    keys = sorted(k for k in state if "_packed_params" not in k)
    return fresh(x), q(x), keys, state["conv1.weight"].q_per_channel_scales()


def case_compare_weights_and_outputs():
    model = load_(EagerNet()).eval()
    float_model = copy.deepcopy(model)
    model.fuse_model()
    model.qconfig = tq.get_default_qconfig("x86")
    prepared = tq.prepare(model)
    for i in range(2):
        prepared(t(2, 3, 5, 5, seed=90 + i))
    q = tq.convert(prepared)
    wdict = ns.compare_weights(float_model.state_dict(), q.state_dict())
    keys = sorted(wdict)
    errors = {}
    for key in keys:
        f, qw = wdict[key]["float"], wdict[key]["quantized"].dequantize()
        errors[key] = (f.shape, bool((f - qw).abs().max() < 0.05))
    return keys, errors


def case_fake_quantize_ops():
    x = t(3, 5, seed=100) * 2
    a = torch.fake_quantize_per_tensor_affine(x, 0.05, 3, 0, 255)
    b = torch.fake_quantize_per_channel_affine(x, torch.tensor([0.1, 0.02, 0.05]),
                                               torch.tensor([0, 1, -2], dtype=torch.int32),
                                               0, -128, 127)
    fq = tq.FakeQuantize(observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255)
    fq(x)
    c = fq(x * 0.5)
    fq.disable_fake_quant()
    d = fq(x)
    return a, b, c, d, fq.scale, fq.zero_point, fq.calculate_qparams()


def case_quantize_dynamic_qconfig_dict_and_float16():
    model = load_(nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))).eval()
    q8 = tq.quantize_dynamic(copy.deepcopy(model), {"0": tq.default_dynamic_qconfig},
                             dtype=torch.qint8)
    q16 = tq.quantize_dynamic(copy.deepcopy(model), {nn.Linear}, dtype=torch.float16)
    x = t(4, 6, seed=110)
    return q8(x), q16(x), [type(m).__name__ for m in q8], [type(m).__name__ for m in q16], \
        str(q16[0]).split("(")[0]


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.conv = nn.Conv2d(3, 4, 3)
        self.relu = nn.ReLU()
        self.add = FloatFunctional()
        self.fc = nn.Linear(4, 2)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.quant(x)
        y = self.relu(self.conv(x))
        y = self.add.add(y, y)
        return self.dequant(self.fc(y.mean((2, 3))))


def case_numeric_suite_compare_model_outputs():
    model = load_(Tiny()).eval()
    float_model = copy.deepcopy(model)
    model.qconfig = tq.get_default_qconfig("x86")
    tq.fuse_modules(model, [["conv", "relu"]], inplace=True)
    prepared = tq.prepare(model)
    for i in range(2):
        prepared(t(2, 3, 5, 5, seed=120 + i))
    q = tq.convert(prepared)
    x = t(2, 3, 5, 5, seed=130)
    act = ns.compare_model_outputs(float_model, q, x)
    out = {}
    for key, pair in act.items():
        f, qv = pair["float"][0], pair["quantized"][0]
        out[key] = (len(pair["float"]), f.shape, str(qv.dtype),
                    bool((f - qv.dequantize()).abs().max() < 0.5))
    return list(act), out, str(float_model).splitlines(), \
        sorted(ns.get_logger_dict(q)), type(q.conv.activation_post_process).__name__


def case_fuse_fx_and_reference_convert():
    model = load_(Net()).eval()
    fused = from_fx.fuse_fx(copy.deepcopy(model))
    x = t(2, 3, 6, 6, seed=140)
    kinds = [type(m).__name__ for _, m in fused.named_children()]
    prepared = prepare_fx(copy.deepcopy(model), tq.get_default_qconfig_mapping("x86"), (x,))
    _calibrate(prepared)
    ref = from_fx.convert_to_reference_fx(prepared)
    return fused(x), model(x), kinds, ref(x)


def case_qnnpack_engine_mapping():
    old = torch.backends.quantized.engine
    torch.backends.quantized.engine = "qnnpack"
    try:
        model = load_(Net()).eval()
        x = t(2, 3, 6, 6, seed=141)
        mapping = tq.get_default_qconfig_mapping("qnnpack")
        prepared = prepare_fx(model, mapping, (x,))
        _calibrate(prepared)
        q = convert_fx(prepared)
        return q(x), torch.backends.quantized.engine, \
            str(q.fc1.weight().qscheme())
    finally:
        torch.backends.quantized.engine = old


class EmbedNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 6)
        self.fc = nn.Linear(6, 3)

    def forward(self, ids):
        return self.fc(self.emb(ids).mean(1))


def case_embedding_weight_only_and_dynamic_linear():
    model = load_(EmbedNet()).eval()
    ids = torch.from_numpy(np.random.default_rng(142).integers(0, 10, (3, 4)))
    mapping = (QConfigMapping().set_object_type(nn.Embedding,
                                                tq.float_qparams_weight_only_qconfig)
               .set_object_type(nn.Linear, tq.default_dynamic_qconfig))
    prepared = prepare_fx(copy.deepcopy(model), mapping, (ids,))
    q = convert_fx(prepared)
    w = q.emb.weight()
    return q(ids), model(ids), type(q.emb).__name__, str(w.qscheme()), str(w.dtype)


def case_quantize_one_call_and_skipped_submodule():
    model = load_(EagerNet()).eval()
    model.fuse_model()
    model.qconfig = tq.get_default_qconfig("x86")
    model.fc.qconfig = None          # keep the classifier in float

    class Wrap(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)

    def run_fn(m, batches):
        for b in batches:
            m(b)
    q = tq.quantize(model, run_fn, [[t(2, 3, 5, 5, seed=150 + i) for i in range(2)]])
    return type(q.fc).__name__, type(q.conv1).__name__, type(Wrap(q).inner).__name__


def case_jit_trace_quantized_model_save_load():
    model = load_(EagerNet()).eval()
    model.fuse_model()
    model.qconfig = tq.get_default_qconfig("x86")
    prepared = tq.prepare(model)
    for i in range(2):
        prepared(t(2, 3, 5, 5, seed=160 + i))
    q = tq.convert(prepared)
    x = t(2, 3, 5, 5, seed=170)
    traced = torch.jit.trace(q, x)
    buf = io.BytesIO()
    torch.jit.save(traced, buf)
    buf.seek(0)
    loaded = torch.jit.load(buf)
    return loaded(x), q(x)


def case_fx_quantized_state_dict_round_trip():
    model = load_(Net()).eval()
    x = t(2, 3, 6, 6, seed=180)
    mapping = tq.get_default_qconfig_mapping("x86")
    prepared = prepare_fx(copy.deepcopy(model), mapping, (x,))
    _calibrate(prepared)
    q = convert_fx(prepared)
    buf = io.BytesIO()
    torch.save(q.state_dict(), buf)
    buf.seek(0)
    other = prepare_fx(load_(Net(), scale=0.1).eval(), mapping, (x,))
    _calibrate(other, n=1)
    q2 = convert_fx(other)
    q2.load_state_dict(torch.load(buf))
    return q2(x), q(x)


def case_observer_reset_and_repr():
    obs = MinMaxObserver(dtype=torch.quint8)
    obs(t(5, seed=190) * 4)
    first = obs.calculate_qparams()
    obs.reset_min_max_vals()
    obs(t(5, seed=191))
    fq = tq.default_fake_quant()
    return first, obs.calculate_qparams(), repr(obs), type(fq.activation_post_process).__name__


def case_compile_fx_quantized_model():
    model = load_(Net()).eval()
    x = t(2, 3, 6, 6, seed=200)
    prepared = prepare_fx(model, tq.get_default_qconfig_mapping("x86"), (x,))
    _calibrate(prepared)
    q = convert_fx(prepared)
    compiled = torch.compile(q)
    with torch.no_grad():
        return compiled(x), q(x)


def case_script_save_load_fx_quantized():
    model = load_(Net()).eval()
    x = t(2, 3, 6, 6, seed=210)
    prepared = prepare_fx(model, tq.get_default_qconfig_mapping("x86"), (x,))
    _calibrate(prepared)
    q = convert_fx(prepared)
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(q), buf)
    buf.seek(0)
    loaded = torch.jit.load(buf)
    return loaded(x), q(x)


def case_prepared_model_observers_listing():
    model = load_(Net()).eval()
    x = t(2, 3, 6, 6, seed=211)
    prepared = prepare_fx(model, tq.get_default_qconfig_mapping("x86"), (x,))
    _calibrate(prepared)
    observers = [(name, type(m).__name__) for name, m in prepared.named_modules()
                 if "activation_post_process" in name]
    scales = [float(m.calculate_qparams()[0]) for name, m in prepared.named_modules()
              if "activation_post_process" in name and hasattr(m, "calculate_qparams")]
    return observers, scales


class Branchy(nn.Module):
    """A submodule with data-dependent control flow: FX cannot trace it."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        if x.sum() > 0:
            return self.fc(x)
        return -self.fc(x)


class WithBranchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.branchy = Branchy()
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(self.branchy(F.relu(self.fc1(x))))


def case_prepare_custom_config_non_traceable():
    model = load_(WithBranchy()).eval()
    x = t(4, 6, seed=220)
    config = PrepareCustomConfig().set_non_traceable_module_names(["branchy"])
    mapping = QConfigMapping().set_global(tq.get_default_qconfig("x86")) \
        .set_module_name("branchy", None)
    prepared = prepare_fx(model, mapping, (x,), prepare_custom_config=config)
    with torch.no_grad():
        for i in range(2):
            prepared(t(4, 6, seed=221 + i))
    q = convert_fx(prepared)
    return q(x), model(x), type(q.branchy).__name__, type(q.fc1).__name__


def case_backend_config_and_convert_custom_config():
    model = load_(Net()).eval()
    x = t(2, 3, 6, 6, seed=230)
    prepared = prepare_fx(model, tq.get_default_qconfig_mapping("x86"), (x,),
                          backend_config=get_native_backend_config())
    _calibrate(prepared)
    q = convert_fx(prepared, backend_config=get_native_backend_config())
    return q(x)


def case_eager_qat_tutorial_epochs():
    model = load_(EagerNet()).train()
    tq.fuse_modules_qat(model, [["conv1", "bn1", "relu1"], ["conv2", "relu2"]], inplace=True)
    model.qconfig = tq.get_default_qat_qconfig("x86")
    tq.prepare_qat(model, inplace=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for epoch in range(4):
        model.train()
        if epoch > 1:
            model.apply(tq.disable_observer)
        if epoch > 0:
            model.apply(nniqat.freeze_bn_stats)
        opt.zero_grad()
        loss = model(t(2, 3, 5, 5, seed=240 + epoch)).pow(2).mean()
        loss.backward()
        opt.step()
        losses.append(loss)
        q = tq.convert(copy.deepcopy(model).eval(), inplace=False)
    return losses, q(t(2, 3, 5, 5, seed=250)), model.conv1.bn.running_mean, \
        float(model.conv1.weight_fake_quant.scale[0])


class Stub(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.conv = nn.Conv2d(3, 4, 3)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4, 3)
        self.fc2 = nn.Linear(3, 2)
        self.dequant = DeQuantStub()

    def forward(self, x):
        y = self.relu(self.conv(self.quant(x))).mean((2, 3))
        return self.dequant(self.fc2(self.fc(y)))


def case_numeric_suite_compare_model_stub():
    model = load_(Stub()).eval()
    float_model = copy.deepcopy(model)
    model.qconfig = tq.get_default_qconfig("x86")
    prepared = tq.prepare(model)
    for i in range(2):
        prepared(t(2, 3, 5, 5, seed=260 + i))
    q = tq.convert(prepared)
    x = t(2, 3, 5, 5, seed=270)
    stats = ns.compare_model_stub(float_model, q, [nn.Linear, nn.Conv2d], x)
    out = {key: (value["float"][0], value["quantized"][0].dequantize(),
                 str(value["quantized"][0].dtype)) for key, value in stats.items()}
    return sorted(stats), out, [type(m).__name__ for m in q.children()], \
        [name for name, _ in q.fc.named_children()], q(x)


def case_observer_edge_cases():
    out = []
    zeros = torch.zeros(3, 4)
    const = torch.full((3, 4), 2.5)
    for make in (lambda: MinMaxObserver(),
                 lambda: MinMaxObserver(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric),
                 lambda: tq.MovingAveragePerChannelMinMaxObserver(ch_axis=1),
                 lambda: PerChannelMinMaxObserver(ch_axis=1, dtype=torch.qint8,
                                                  qscheme=torch.per_channel_affine),
                 lambda: HistogramObserver(bins=32),
                 lambda: tq.FixedQParamsObserver(scale=1.0 / 256, zero_point=0),
                 lambda: tq.PlaceholderObserver(dtype=torch.float16)):
        for data in (zeros, const, t(3, 4, seed=280)):
            obs = make()
            obs(data)
            try:
                qparams = obs.calculate_qparams()
            except Exception as e:      # noqa: BLE001
                qparams = type(e).__name__
            out.append((type(obs).__name__, qparams))
    return out


def case_fx_qat_tutorial_with_freeze_bn():
    model = load_(Net()).train()
    x = t(2, 3, 6, 6, seed=290)
    prepared = from_fx.prepare_qat_fx(model, tq.get_default_qat_qconfig_mapping("x86"), (x,))
    opt = torch.optim.SGD(prepared.parameters(), lr=0.02)
    for epoch in range(3):
        prepared.train()
        if epoch > 0:
            prepared.apply(nniqat.freeze_bn_stats)
        if epoch > 1:
            prepared.apply(tq.disable_observer)
        opt.zero_grad()
        prepared(t(2, 3, 6, 6, seed=291 + epoch)).pow(2).mean().backward()
        opt.step()
    prepared.eval()
    q = convert_fx(copy.deepcopy(prepared))
    kinds = sorted({type(m).__name__ for m in prepared.modules()} - {"GraphModule"})
    converted = [(name, type(m).__name__) for name, m in q.named_children()
                 if not name.endswith("_packed_params")]
    return q(x), prepared(x), kinds, converted
