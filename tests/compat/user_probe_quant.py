"""Quantization as the PyTorch tutorials write it: the FX graph-mode post-training
static flow (get_default_qconfig_mapping, prepare_fx, calibrate, convert_fx) on a small
CNN, and quantize_dynamic on an LSTM + Linear model, with the quantized modules' reprs
and state_dict keys; ember's int8 results are compared with torch.ao's."""
import copy
import re

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import (QConfigMapping, get_default_qconfig,
                                   get_default_qconfig_mapping, quantize_dynamic)
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx, prepare_qat_fx


def t(*shape, seed=0, scale=1.0):
    return torch.from_numpy((np.random.default_rng(seed).standard_normal(shape) * scale)
                            .astype(np.float32))


def load_(model, scale=0.3):
    with torch.no_grad():
        for i, (name, p) in enumerate(sorted(model.named_parameters())):
            p.copy_(t(*p.shape, seed=300 + i, scale=scale))
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.copy_(torch.from_numpy(np.linspace(0.5, 1.5, b.numel()).astype(np.float32)))
            elif name.endswith("running_mean"):
                b.copy_(torch.from_numpy(np.linspace(-0.2, 0.2, b.numel()).astype(np.float32)))
    return model


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.conv2(x))
        x = torch.flatten(self.pool(x), 1)
        return self.fc(x)


def case_fx_ptq_tutorial_flow():
    torch.backends.quantized.engine = "x86"
    model_fp32 = load_(SmallCNN()).eval()
    model_to_quantize = copy.deepcopy(model_fp32)
    qconfig_mapping = get_default_qconfig_mapping("x86")
    example_inputs = (t(1, 3, 8, 8, seed=1),)
    prepared = prepare_fx(model_to_quantize, qconfig_mapping, example_inputs)
    with torch.no_grad():
        for i in range(4):
            prepared(t(2, 3, 8, 8, seed=10 + i))
    quantized = convert_fx(prepared)
    x = t(2, 3, 8, 8, seed=20)
    with torch.no_grad():
        out_q = quantized(x)
        out_f = model_fp32(x)
    keys = sorted(k for k in quantized.state_dict() if not k.endswith("_packed_params"))
    # (torch.ao's quantized Linear holds a LinearPackedParams submodule; ember keeps the
    # packed weight on the Linear itself: docs/compat.md, known differences)
    kinds = [type(m).__name__ for n, m in quantized.named_modules()
             if n and not n.endswith("_packed_params")]
    return out_q, (out_q - out_f).abs().max() < 0.2, kinds, keys


def case_fx_ptq_with_global_qconfig():
    model = load_(SmallCNN()).eval()
    qconfig = get_default_qconfig("fbgemm")
    mapping = QConfigMapping().set_global(qconfig).set_module_name("fc", None)
    prepared = prepare_fx(model, mapping, (t(1, 3, 8, 8, seed=2),))
    with torch.no_grad():
        prepared(t(4, 3, 8, 8, seed=3))
    quantized = convert_fx(prepared)
    return quantized(t(2, 3, 8, 8, seed=4)), type(quantized.fc).__name__, \
        type(quantized.conv1).__name__


class LSTMModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(12, 6)
        self.lstm = nn.LSTM(6, 5, num_layers=1, batch_first=True)
        self.fc = nn.Linear(5, 3)

    def forward(self, tokens):
        out, (h, c) = self.lstm(self.embedding(tokens))
        return self.fc(out[:, -1]), h


def case_quantize_dynamic_lstm_linear():
    model = load_(LSTMModel()).eval()
    qmodel = quantize_dynamic(model, {nn.LSTM, nn.Linear}, dtype=torch.qint8)
    tokens = torch.from_numpy(np.random.default_rng(5).integers(0, 12, (2, 4)))
    with torch.no_grad():
        out_q, h_q = qmodel(tokens)
        out_f, h_f = model(tokens)
    names = [type(m).__name__ for n, m in qmodel.named_modules()
             if n and not n.endswith("_packed_params")]
    return out_q, h_q, (out_q - out_f).abs().max() < 0.05, names, repr(qmodel.fc)


def case_quantize_dynamic_linear_only_set_spec():
    model = load_(nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 2))).eval()
    qmodel = quantize_dynamic(model, qconfig_spec={nn.Linear}, dtype=torch.qint8,
                              inplace=False)
    x = t(3, 8, seed=6)
    w = qmodel[0].weight()
    return (qmodel(x), w.dtype, w.int_repr(), w.q_scale(), str(w.qscheme()),
            str(qmodel).splitlines(), type(model[0]).__name__)


def case_quantize_per_tensor_basics():
    x = t(6, seed=7)
    q = torch.quantize_per_tensor(x, scale=0.05, zero_point=3, dtype=torch.quint8)
    qc = torch.quantize_per_channel(t(2, 3, seed=8), torch.tensor([0.1, 0.02]),
                                    torch.tensor([0, 1]), axis=0, dtype=torch.qint8)
    return (q.int_repr(), q.dequantize(), q.q_zero_point(), q.dtype, qc.int_repr(),
            qc.q_per_channel_scales(), qc.dequantize(), repr(q), repr(qc))


class EagerNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = torch.ao.quantization.QuantStub()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 2)
        self.dequant = torch.ao.quantization.DeQuantStub()

    def forward(self, x):
        x = self.relu(self.bn(self.conv(self.quant(x))))
        # (x.mean((2, 3)) on the quantized value can land one step apart from torch at
        # exact .5 ties: docs/compat.md, known differences)
        x = self.fc(torch.flatten(self.pool(x), 1))
        return self.dequant(x)


def case_eager_static_quant_tutorial():
    model = load_(EagerNet()).eval()
    model.qconfig = torch.ao.quantization.get_default_qconfig("x86")
    fused = torch.ao.quantization.fuse_modules(model, [["conv", "bn", "relu"]])
    prepared = torch.ao.quantization.prepare(fused)
    for i in range(3):
        prepared(t(2, 3, 6, 6, seed=30 + i))
    quantized = torch.ao.quantization.convert(prepared)
    x = t(2, 3, 6, 6, seed=40)
    # observed scales can differ in float32's last bit (calibration sums in another order)
    lines = [re.sub(r"scale=([0-9.e-]+)", lambda m: f"scale={float(m.group(1)):.6g}", line)
             for line in str(quantized).splitlines()]
    return (quantized(x), lines, type(fused.bn).__name__,
            # (ember's Quantize keeps scale / zero_point as Python numbers, torch.ao as
            # [1]-shaped buffers: float() reads both; docs/compat.md, known differences)
            float(quantized.quant.scale), quantized.conv.zero_point)


def case_qat_fx_flow():
    model = load_(SmallCNN()).train()
    mapping = torch.ao.quantization.get_default_qat_qconfig_mapping("x86")
    prepared = prepare_qat_fx(model, mapping, (t(1, 3, 8, 8, seed=50),))
    opt = torch.optim.SGD(prepared.parameters(), lr=0.01)
    for i in range(2):
        opt.zero_grad()
        prepared(t(2, 3, 8, 8, seed=51 + i)).pow(2).mean().backward()
        opt.step()
    prepared.eval()
    quantized = convert_fx(prepared)
    return quantized(t(2, 3, 8, 8, seed=60))
