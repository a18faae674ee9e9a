"""Quantization scripts as PyTorch's FX and eager tutorials shape them, in forms the
earlier probes did not cover: a QConfigMapping built per module name, per type, per
name regex and per (module, type, order); PrepareCustomConfig with standalone and
non-traceable classes and quantized input / output indexes; ConvertCustomConfig's
preserved attributes; nested fuse_modules lists (conv-bn-relu, linear-relu) in the
eager static flow; quantize_dynamic with a set spec and float16 on an LSTM+Linear
model and its state_dict saved and loaded; torch.ao.ns's FX weight and activation
comparison (extract_weights, add_loggers, compute_sqnr); and a per-layer SQNR table
as the numeric-debugging tutorial builds it."""
import copy
import io
import re

import numpy as np
import torch
import torch.ao.quantization as tq
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import (DeQuantStub, QConfigMapping, QuantStub,
                                   default_dynamic_qconfig, float16_dynamic_qconfig,
                                   get_default_qconfig, quantize_dynamic)
from torch.ao.quantization.fx.custom_config import (ConvertCustomConfig,
                                                    PrepareCustomConfig)
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx


def t(*shape, seed=0, scale=1.0):
    return torch.from_numpy((np.random.default_rng(seed).standard_normal(shape) * scale)
                            .astype(np.float32))


def load_(model, scale=0.3):
    with torch.no_grad():
        for i, (name, p) in enumerate(sorted(model.named_parameters())):
            p.copy_(t(*p.shape, seed=1900 + i, scale=scale))
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


def kinds(model):
    # (torch.ao's quantized Linear holds a LinearPackedParams child: ember has none)
    return [(name, type(m).__name__) for name, m in model.named_modules()
            if name and not name.endswith("_packed_params")]


# --- QConfigMapping per name, type, regex and order -------------------------------------------
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.features = nn.Sequential(nn.Conv2d(6, 6, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(6, 6, 1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(6, 8)
        self.fc2 = nn.Linear(8, 4)
        self.fc_skip = nn.Linear(6, 4)

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = self.features(x) + x
        x = torch.flatten(self.pool(x), 1)
        return self.fc2(F.relu(self.fc1(x))) + self.fc_skip(x)


def case_qconfig_mapping_by_name_type_regex_order():
    model = load_(Net()).eval()
    qconfig = get_default_qconfig("x86")
    mapping = (QConfigMapping().set_global(qconfig)
               .set_object_type(nn.Linear, None)               # no Linear quantized...
               .set_module_name("fc2", qconfig)                # ...but fc2
               .set_module_name_regex(r"features\.2", None)    # nor the 1x1 conv
               .set_module_name_object_type_order("", F.relu, 0, None))  # first relu float
    x = t(2, 3, 6, 6, seed=5)
    prepared = prepare_fx(copy.deepcopy(model), mapping, (x,))
    q = convert_fx(calibrate(prepared, (2, 3, 6, 6)))
    return (kinds(q), q(x).shape, float((q(x) - model(x)).abs().max()) < 0.15,
            sorted(mapping.to_dict()))


# --- PrepareCustomConfig / ConvertCustomConfig ------------------------------------------------
class Untraceable(nn.Module):
    def forward(self, x):
        if x.sum() > 0:                      # data-dependent: symbolic_trace cannot
            return x * 2
        return x - 1


class WithCustom(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.odd = Untraceable()
        self.fc = nn.Linear(4, 3)
        self.note = "keep me"

    def forward(self, x):
        x = self.odd(F.relu(self.conv(x)))
        return self.fc(x.mean((2, 3)))


def case_prepare_and_convert_custom_config():
    model = load_(WithCustom()).eval()
    x = t(2, 3, 5, 5, seed=6)
    prep = (PrepareCustomConfig().set_non_traceable_module_classes([Untraceable])
            .set_preserved_attributes(["note"]))
    conv_cfg = ConvertCustomConfig().set_preserved_attributes(["note"])
    prepared = prepare_fx(copy.deepcopy(model), get_default_qconfig_mapping(), (x,),
                          prepare_custom_config=prep)
    q = convert_fx(calibrate(prepared, (2, 3, 5, 5)), convert_custom_config=conv_cfg)
    d = prep.to_dict()
    again = PrepareCustomConfig.from_dict(d)
    return (q(x), getattr(prepared, "note", None), getattr(q, "note", None), kinds(q),
            sorted(d), [c.__name__ for c in again.non_traceable_module_classes],
            sorted(conv_cfg.to_dict()))


def get_default_qconfig_mapping():
    return tq.get_default_qconfig_mapping("x86")


def case_input_output_quantized_indexes():
    model = load_(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))).eval()
    x = t(3, 4, seed=7)
    prep = (PrepareCustomConfig().set_input_quantized_indexes([0])
            .set_output_quantized_indexes([0]))
    prepared = prepare_fx(copy.deepcopy(model), get_default_qconfig_mapping(), (x,),
                          prepare_custom_config=prep)
    q = convert_fx(calibrate(prepared, (3, 4)))
    qx = torch.quantize_per_tensor(x, 0.03, 128, torch.quint8)
    out = q(qx)
    ops = [n.op for n in q.graph.nodes]
    return (out.is_quantized, out.dtype, out.dequantize(), ops,
            float((out.dequantize() - model(qx.dequantize())).abs().max()) < 0.1)


# --- eager static flow with nested fuse_modules -----------------------------------------------
class EagerNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.block = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 6)
        self.relu_fc = nn.ReLU()
        self.out = nn.Linear(6, 2)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.quant(x)
        x = self.bn2(self.conv2(self.block(x)))
        x = x.mean((2, 3))
        x = self.out(self.relu_fc(self.fc(x)))
        return self.dequant(x)


def case_eager_fuse_nested_lists_and_convert():
    model = load_(EagerNet()).eval()
    fused = tq.fuse_modules(copy.deepcopy(model),
                            [["block.0", "block.1", "block.2"], ["conv2", "bn2"],
                             ["fc", "relu_fc"]])
    fused.qconfig = get_default_qconfig("x86")
    prepared = tq.prepare(fused)
    calibrate(prepared, (2, 3, 6, 6))
    q = tq.convert(prepared)
    x = t(2, 3, 6, 6, seed=8)
    return (q(x), fused(x), kinds(fused), kinds(q),
            float((q(x) - model(x)).abs().max()) < 0.1, q.block[0].scale,
            q.block[0].zero_point)


def case_eager_fuse_modules_qat_and_train_step():
    model = load_(EagerNet()).train()
    fused = tq.fuse_modules_qat(copy.deepcopy(model),
                                [["block.0", "block.1", "block.2"], ["fc", "relu_fc"]])
    fused.qconfig = tq.get_default_qat_qconfig("x86")
    prepared = tq.prepare_qat(fused)
    opt = torch.optim.SGD(prepared.parameters(), lr=0.05)
    losses = []
    for step in range(3):
        x = t(4, 3, 6, 6, seed=30 + step)
        loss = prepared(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    prepared.eval()
    q = tq.convert(prepared)
    x = t(2, 3, 6, 6, seed=9)
    return losses, q(x), kinds(fused), kinds(q)


# --- quantize_dynamic with a set spec, float16, state_dict --------------------------------------
class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.lstm = nn.LSTM(8, 6, num_layers=2, batch_first=True)
        self.proj = nn.Linear(6, 5)

    def forward(self, tokens):
        h, (hn, cn) = self.lstm(self.emb(tokens))
        return self.proj(h), hn


def case_quantize_dynamic_set_spec_and_state_dict():
    model = load_(Tagger()).eval()
    tokens = torch.tensor([[1, 4, 7, 2], [3, 3, 9, 0]])
    q = quantize_dynamic(copy.deepcopy(model), {nn.LSTM, nn.Linear}, dtype=torch.qint8)
    buf = io.BytesIO()
    torch.save(q.state_dict(), buf)
    buf.seek(0)
    fresh = quantize_dynamic(load_(Tagger(), scale=0.1).eval(), {nn.LSTM, nn.Linear},
                             dtype=torch.qint8)
    fresh.load_state_dict(torch.load(buf, weights_only=False))
    out, hn = q(tokens)
    out2, hn2 = fresh(tokens)
    return (out, hn, out2, hn2, kinds(q), sorted(q.state_dict()),
            float((out - model(tokens)[0]).abs().max()) < 0.05)


def case_quantize_dynamic_float16_mapping():
    model = load_(Tagger()).eval()
    tokens = torch.tensor([[1, 4, 7, 2]])
    q = quantize_dynamic(copy.deepcopy(model), {"lstm": float16_dynamic_qconfig,
                                                "proj": default_dynamic_qconfig})
    out, hn = q(tokens)
    ref, rhn = model(tokens)
    return (kinds(q), float((out - ref).abs().max()) < 0.05,
            float((hn - rhn).abs().max()) < 0.01, q.proj.weight().dtype,
            repr(q.proj).replace("torch.", ""))


# --- numeric suite (FX) ------------------------------------------------------------------------
def case_ns_fx_extract_weights_and_loggers():
    import torch.ao.ns._numeric_suite_fx as ns
    from torch.ao.ns.fx.utils import compute_sqnr
    model = load_(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(),
                                nn.Linear(4 * 4 * 4, 3))).eval()
    x = t(2, 3, 6, 6, seed=11)
    prepared = prepare_fx(copy.deepcopy(model), get_default_qconfig_mapping(), (x,))
    calibrate(prepared, (2, 3, 6, 6))
    q = convert_fx(copy.deepcopy(prepared))
    weights = ns.extract_weights("fp32", prepared, "int8", q)
    ns.extend_logger_results_with_comparison(weights, "fp32", "int8", compute_sqnr, "sqnr")
    w_keys = sorted(weights)
    sqnrs = [float(weights[k]["weight"]["int8"][0]["sqnr"][0]) > 30 for k in w_keys]
    a, b = ns.add_loggers("fp32", copy.deepcopy(prepared), "int8", copy.deepcopy(q),
                          ns.OutputLogger)
    a(x)
    b(x)
    acts = ns.extract_logger_info(a, b, ns.OutputLogger, "int8")
    ns.extend_logger_results_with_comparison(acts, "fp32", "int8", compute_sqnr, "sqnr")
    a_keys = sorted(acts)
    fqns = [(k, v["weight"]["int8"][0]["fqn"], v["weight"]["fp32"][0]["fqn"])
            for k, v in weights.items()]
    loggers = sorted(name for name, m in b.named_modules() if isinstance(m, ns.OutputLogger))
    return (w_keys, fqns, sqnrs, a_keys, loggers,
            [acts[k]["node_output"]["int8"][0]["fqn"] for k in a_keys],
            [float(acts[k]["node_output"]["int8"][0]["sqnr"][0]) > 15 for k in a_keys])


def case_eager_sqnr_table_by_hooks():
    """The numeric-debugging recipe: forward hooks on float and quantized layers by name."""
    from torch.ao.ns.fx.utils import compute_sqnr
    model = load_(EagerNet()).eval()
    fused = tq.fuse_modules(copy.deepcopy(model), [["block.0", "block.1", "block.2"],
                                                    ["conv2", "bn2"], ["fc", "relu_fc"]])
    fused.qconfig = get_default_qconfig("x86")
    q = tq.convert(calibrate(tq.prepare(copy.deepcopy(fused)), (2, 3, 6, 6)))
    seen = {}

    def hook(tag, name):
        def record(module, inputs, output):
            seen.setdefault(name, {})[tag] = (output.dequantize() if output.is_quantized
                                               else output)
        return record

    for tag, m in (("float", fused), ("int8", q)):
        for name in ("block.0", "conv2", "fc", "out"):
            m.get_submodule(name).register_forward_hook(hook(tag, name))
    x = t(2, 3, 6, 6, seed=12)
    fused(x)
    q(x)
    return sorted((name, float(compute_sqnr(v["float"], v["int8"])) > 20)
                  for name, v in seen.items())
