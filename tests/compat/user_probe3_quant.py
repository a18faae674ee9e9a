"""Quantization as user repos write it (beyond the tutorials the earlier probes ported):
FX PTQ of models with shared modules, functional F.linear / F.conv2d with their own
parameters, torch.cat and residual adds; fixed-qparams ops (sigmoid, tanh,
hardsigmoid); per-channel weight observers with custom quant ranges; quantize_dynamic
of stacked bidirectional LSTMs and shared Linears; an eager QAT loop with
disable_fake_quant / enable_fake_quant toggles; QuantWrapper; and the state_dict of a
converted model loaded into a freshly converted one (FX and eager)."""
import copy
import io

import numpy as np
import torch
import torch.ao.quantization as tq
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import (MinMaxObserver, PerChannelMinMaxObserver, QConfig,
                                   QConfigMapping, QuantStub, DeQuantStub, QuantWrapper,
                                   quantize_dynamic)
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx


def t(*shape, seed=0, scale=1.0):
    return torch.from_numpy((np.random.default_rng(seed).standard_normal(shape) * scale)
                            .astype(np.float32))


def load_(model, scale=0.3):
    with torch.no_grad():
        for i, (name, p) in enumerate(sorted(model.named_parameters())):
            p.copy_(t(*p.shape, seed=1100 + i, scale=scale))
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.copy_(torch.from_numpy(np.linspace(0.5, 1.5, b.numel()).astype(np.float32)))
            elif name.endswith("running_mean"):
                b.copy_(torch.from_numpy(np.linspace(-0.2, 0.2, b.numel()).astype(np.float32)))
    return model


def calibrate(model, shape, seeds=range(3)):
    with torch.no_grad():
        for seed in seeds:
            model(t(*shape, seed=seed))
    return model


def fx_ptq(model, shape, mapping=None):
    model = model.eval()
    example = (t(*shape, seed=99),)
    prepared = prepare_fx(model, mapping or tq.get_default_qconfig_mapping("x86"), example)
    return convert_fx(calibrate(prepared, shape))


def observers(prepared):
    return sorted(name for name, m in prepared.named_modules()
                  if "activation_post_process" in name)


# --- shared modules ----------------------------------------------------------------------
class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 6)
        self.act = nn.ReLU()
        self.out = nn.Linear(6, 2)

    def forward(self, x):
        x = self.act(self.fc(x))
        x = self.act(self.fc(x))            # the same Linear and ReLU again
        return self.out(x)


def case_fx_ptq_shared_modules():
    model = load_(Shared())
    x = t(4, 6, seed=10)
    prepared = prepare_fx(copy.deepcopy(model).eval(), tq.get_default_qconfig_mapping("x86"),
                          (x,))
    obs = observers(prepared)
    q = convert_fx(calibrate(prepared, (4, 6)))
    kinds = [(name, type(m).__name__) for name, m in q.named_children()]
    return q(x), len(obs), kinds, float((q(x) - model(x)).abs().max()) < 0.1


# --- functional linear / conv with their own parameters -----------------------------------
class Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.w1 = nn.Parameter(t(4, 3, 3, 3, seed=20, scale=0.3))
        self.b1 = nn.Parameter(t(4, seed=21, scale=0.1))
        self.w2 = nn.Parameter(t(5, 4, seed=22, scale=0.3))
        self.b2 = nn.Parameter(t(5, seed=23, scale=0.1))

    def forward(self, x):
        x = F.relu(F.conv2d(x, self.w1, self.b1, [1, 1], [1, 1], [1, 1], 1))  # torch needs these
        x = x.mean((2, 3))
        return F.linear(x, self.w2, self.b2)


def case_fx_ptq_functional_conv_and_linear():
    model = Functional()
    q = fx_ptq(copy.deepcopy(model), (2, 3, 5, 5))
    x = t(2, 3, 5, 5, seed=24)
    # the graphs call torch's quantized ops and ember's: compare the state they read
    return q(x), sorted(q.state_dict()), float((q(x) - model(x)).abs().max()) < 0.1


# --- cat and residual adds -------------------------------------------------------------------
class CatResidual(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1)
        self.b = nn.Conv2d(3, 4, 3, padding=1)
        self.mix = nn.Conv2d(8, 3, 1)
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        y = torch.cat([F.relu(self.a(x)), self.b(x)], dim=1)
        y = self.mix(y) + x                   # residual add
        y = y * 0.5 + torch.ones_like(y)      # scalar mul / add on a quantized value
        return self.head(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))


def case_fx_ptq_cat_and_residual():
    model = load_(CatResidual())
    q = fx_ptq(copy.deepcopy(model), (2, 3, 6, 6))
    x = t(2, 3, 6, 6, seed=30)
    return q(x), float((q(x) - model(x)).abs().max()) < 0.2


# --- fixed-qparams ops -------------------------------------------------------------------------
class Gates(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 6)

    def forward(self, x):
        h = self.fc(x)
        return torch.sigmoid(h), torch.tanh(h), F.hardsigmoid(h), h.sigmoid() * 2


def case_fixed_qparams_ops():
    model = load_(Gates()).eval()
    prepared = prepare_fx(model, tq.get_default_qconfig_mapping("x86"), (t(5, 6, seed=99),))
    fixed = sorted((type(m).__name__, round(float(m.scale), 6), int(m.zero_point))
                   for name, m in prepared.named_modules()
                   if type(m).__name__.startswith("FixedQParams"))
    q = convert_fx(calibrate(prepared, (5, 6)))
    x = t(5, 6, seed=40) * 2
    return q(x), fixed


# --- custom quant ranges with per-channel weights ------------------------------------------
class ConvLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(F.relu(self.conv(x)).mean((2, 3)))


def case_per_channel_custom_qranges_close():
    # the calibration runs float convs, whose sums round as each library orders them: the
    # output scale may differ by a float32 ulp, and a mean on a rounding tie by one step
    qconfig = QConfig(
        activation=MinMaxObserver.with_args(dtype=torch.quint8, quant_min=0, quant_max=127),
        weight=PerChannelMinMaxObserver.with_args(dtype=torch.qint8,
                                                  qscheme=torch.per_channel_symmetric,
                                                  quant_min=-63, quant_max=63))
    model = load_(ConvLinear())
    q = fx_ptq(copy.deepcopy(model), (2, 3, 6, 6), QConfigMapping().set_global(qconfig))
    w = q.conv.weight()
    return (q(t(2, 3, 6, 6, seed=50)), w.q_per_channel_scales(),
            w.q_per_channel_zero_points(), w.int_repr().abs().max(),
            round(q.conv.scale, 6), q.conv.zero_point, str(w.qscheme()))


# --- quantize_dynamic: stacked bidirectional LSTM, shared Linear ---------------------------
class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(5, 4, num_layers=2, bidirectional=True, batch_first=True)
        self.proj = nn.Linear(8, 8)
        self.out = nn.Linear(8, 3)

    def forward(self, x, state=None):
        h, (hn, cn) = self.lstm(x, state)
        h = self.proj(torch.relu(self.proj(h)))     # the same Linear twice
        return self.out(h), hn, cn


def case_quantize_dynamic_bilstm_shared_linear():
    model = load_(Tagger()).eval()
    q = quantize_dynamic(model, {nn.LSTM, nn.Linear}, dtype=torch.qint8)
    x = t(2, 4, 5, seed=60)
    state = (t(4, 2, 4, seed=61, scale=0.1), t(4, 2, 4, seed=62, scale=0.1))
    with torch.no_grad():
        out, hn, cn = q(x, state)
        ref = model(x, state)
    # torch also lists each Linear's LinearPackedParams child (docs/compat.md)
    kinds = sorted({type(m).__name__ for m in q.modules()} - {"Tagger", "LinearPackedParams"})
    return out, hn, cn, float((out - ref[0]).abs().max()) < 0.05, kinds


# --- an eager QAT loop toggling fake quantization -----------------------------------------------
class QATNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4, 2)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.relu(self.bn(self.conv(self.quant(x))))
        return self.dequant(self.fc(x.mean((2, 3))))


def case_eager_qat_loop_with_fake_quant_toggles():
    model = load_(QATNet()).train()
    model.qconfig = tq.get_default_qat_qconfig("x86")
    fused = tq.fuse_modules_qat(model, [["conv", "bn", "relu"]])
    prepared = tq.prepare_qat(fused)
    opt = torch.optim.SGD(prepared.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for step in range(4):
        if step == 0:
            prepared.apply(tq.disable_fake_quant)       # warm up in float, observing
        if step == 1:
            prepared.apply(tq.enable_fake_quant)
        if step == 3:
            prepared.apply(torch.ao.nn.intrinsic.qat.freeze_bn_stats)
            prepared.apply(tq.disable_observer)
        x = t(4, 3, 5, 5, seed=70 + step)
        target = torch.from_numpy(np.array([0, 1, 1, 0]))
        loss = F.cross_entropy(prepared(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    prepared.eval()
    q = tq.convert(prepared)
    x = t(2, 3, 5, 5, seed=80)
    return losses, prepared(x), q(x), prepared.conv.bn.running_mean, q.conv.scale


# --- QuantWrapper ------------------------------------------------------------------------------
def case_quant_wrapper_eager_ptq():
    body = load_(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3)))
    model = QuantWrapper(copy.deepcopy(body)).eval()
    model.qconfig = tq.get_default_qconfig("x86")
    tq.prepare(model, inplace=True)
    calibrate(model, (2, 3, 6, 6))
    tq.convert(model, inplace=True)
    x = t(2, 3, 6, 6, seed=90)
    kinds = [type(m).__name__ for m in model.module]
    return model(x), kinds, type(model.quant).__name__, type(model.dequant).__name__


# --- converted state_dicts loaded into fresh models --------------------------------------------
def case_fx_converted_state_dict_into_fresh_model():
    model = load_(CatResidual())
    q = fx_ptq(copy.deepcopy(model), (2, 3, 6, 6))
    buf = io.BytesIO()
    torch.save(q.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf)
    fresh_prepared = prepare_fx(CatResidual().eval(), tq.get_default_qconfig_mapping("x86"),
                                (t(2, 3, 6, 6, seed=99),))
    fresh = convert_fx(fresh_prepared)
    result = fresh.load_state_dict(state)
    x = t(2, 3, 6, 6, seed=100)
    keys = sorted(k for k in state if not k.endswith("_packed_params"))
    return fresh(x), q(x), list(result.missing_keys), list(result.unexpected_keys), keys


def case_eager_converted_state_dict_into_fresh_model():
    def build():
        m = load_(QATNet(), scale=0.2).eval()
        m.qconfig = tq.get_default_qconfig("x86")
        m = tq.fuse_modules(m, [["conv", "bn", "relu"]])
        return tq.prepare(m)

    trained = calibrate(build(), (2, 3, 5, 5))
    load_(trained)
    calibrate(trained, (2, 3, 5, 5))
    q = tq.convert(trained)
    fresh = tq.convert(build())
    fresh.load_state_dict(q.state_dict())
    x = t(2, 3, 5, 5, seed=110)
    return fresh(x), q(x), fresh.conv.scale, fresh.fc.zero_point, sorted(q.state_dict())


# --- quantize_dynamic of GRU and the RNN cells ----------------------------------------------
class Cells(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(4, 5, batch_first=True)
        self.cell = nn.LSTMCell(5, 3)
        self.gcell = nn.GRUCell(3, 3)

    def forward(self, x):
        out, h = self.gru(x)
        hx, cx = self.cell(out[:, -1])
        return self.gcell(hx), h, cx


def case_quantize_dynamic_gru_and_cells():
    model = load_(Cells()).eval()
    q = quantize_dynamic(model, {nn.GRU, nn.LSTMCell, nn.GRUCell}, dtype=torch.qint8)
    x = t(2, 3, 4, seed=120)
    with torch.no_grad():
        out = q(x)
        ref = model(x)
    kinds = [(name, type(m).__name__) for name, m in q.named_children()]
    return out, kinds, float(max((a - b).abs().max() for a, b in zip(out, ref))) < 0.05


# --- 4-bit QAT with custom FakeQuantize ranges (FX) --------------------------------------
def case_fx_qat_four_bit_fake_quant():
    from torch.ao.quantization import (FakeQuantize, MovingAverageMinMaxObserver,
                                       MovingAveragePerChannelMinMaxObserver)
    from torch.ao.quantization.quantize_fx import prepare_qat_fx
    qconfig = QConfig(
        activation=FakeQuantize.with_args(observer=MovingAverageMinMaxObserver,
                                          quant_min=0, quant_max=15, dtype=torch.quint8),
        weight=FakeQuantize.with_args(observer=MovingAveragePerChannelMinMaxObserver,
                                      quant_min=-8, quant_max=7, dtype=torch.qint8,
                                      qscheme=torch.per_channel_symmetric, ch_axis=0))
    model = load_(ConvLinear()).train()
    prepared = prepare_qat_fx(model, QConfigMapping().set_global(qconfig),
                              (t(2, 3, 6, 6, seed=130),))
    opt = torch.optim.Adam(prepared.parameters(), lr=0.01)
    losses = []
    for step in range(3):
        out = prepared(t(2, 3, 6, 6, seed=131 + step))
        loss = out.pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(round(loss.item(), 5))
    prepared.eval()
    fq = prepared.conv.weight_fake_quant
    q = convert_fx(copy.deepcopy(prepared))
    x = t(2, 3, 6, 6, seed=140)
    return (losses, prepared(x), q(x), fq.scale, fq.zero_point,
            q.conv.weight().int_repr().min(), q.conv.weight().int_repr().max())


# --- eager PTQ with one layer left float and per-module qconfigs ----------------------------
class Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.conv = nn.Conv2d(3, 4, 3)
        self.relu = nn.ReLU()
        self.dequant = DeQuantStub()
        self.head = nn.Linear(4, 2)        # left float

    def forward(self, x):
        x = self.dequant(self.relu(self.conv(self.quant(x))))
        return self.head(x.mean((2, 3)))


def case_eager_ptq_skip_layer_and_per_module_qconfig():
    model = load_(Mixed()).eval()
    model.qconfig = tq.get_default_qconfig("x86")
    model.conv.qconfig = QConfig(activation=MinMaxObserver.with_args(dtype=torch.quint8),
                                 weight=tq.default_per_channel_weight_observer)
    model.head.qconfig = None
    fused = tq.fuse_modules(model, [["conv", "relu"]], inplace=False)
    prepared = tq.prepare(fused, inplace=False)
    calibrate(prepared, (2, 3, 5, 5))
    q = tq.convert(prepared, inplace=False)
    x = t(2, 3, 5, 5, seed=150)
    kinds = [(name, type(m).__name__) for name, m in q.named_children()]
    return q(x), kinds, q.conv.scale, str(q.conv.weight().qscheme()), type(model.conv).__name__


def case_quantize_dynamic_transformer_encoder_layer():
    # batch_first=False: torch's fast-path check reads linear1.weight as a tensor, which
    # quantize_dynamic made a method (torch raises AttributeError on its own model)
    layer = load_(nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0)).eval()
    q = quantize_dynamic(layer, {nn.Linear}, dtype=torch.qint8)
    x = t(5, 2, 8, seed=160)
    with torch.no_grad():
        out, ref = q(x), layer(x)
    kinds = sorted({(name, type(m).__name__) for name, m in q.named_modules()
                    if name and "." not in name or name == "self_attn.out_proj"})
    return out, kinds, float((out - ref).abs().max()) < 0.1
