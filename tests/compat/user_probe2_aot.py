"""Ahead-of-time compilation as PyTorch users write it: torch.export with
run_decompositions and module(), dynamic shapes with Dim, save / load of a .pt2,
AOTInductor's aoti_compile_and_package / aoti_load_package round trip, jit.trace and
jit.script with save / load, freeze and optimize_for_inference, and torch.onnx.export
checked with onnxruntime."""
import io
import os
import tempfile

import numpy as np
import onnxruntime as ort
import torch
import torch._inductor
import torch.nn as nn
import torch.nn.functional as F
from torch.export import Dim, export


def t(*shape, seed=0, scale=1.0):
    return torch.from_numpy((np.random.default_rng(seed).standard_normal(shape) * scale)
                            .astype(np.float32))


def load_(model, scale=0.3):
    with torch.no_grad():
        for i, (name, p) in enumerate(sorted(model.named_parameters())):
            p.copy_(t(*p.shape, seed=200 + i, scale=scale))
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.copy_(torch.from_numpy(np.linspace(0.5, 1.5, b.numel()).astype(np.float32)))
            elif name.endswith("running_mean"):
                b.copy_(torch.from_numpy(np.linspace(-0.2, 0.2, b.numel()).astype(np.float32)))
    return model


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 16)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x, bias=None):
        h = F.gelu(self.fc1(x))
        out = self.fc2(h)
        if bias is not None:
            out = out + bias
        return out.softmax(dim=-1)


def _signature(ep):
    return ([(s.kind.name, s.target) for s in ep.graph_signature.input_specs],
            [s.kind.name for s in ep.graph_signature.output_specs],
            list(ep.graph_signature.user_inputs))


def case_export_module_and_decompositions():
    model = load_(SmallCNN()).eval()
    x = t(2, 3, 6, 6, seed=1)
    ep = export(model, (x,))
    decomposed = ep.run_decompositions()
    m = decomposed.module()
    y = t(2, 3, 6, 6, seed=2)
    return (ep.module()(y), m(y), model(y), _signature(ep), _signature(decomposed),
            sorted(ep.state_dict), isinstance(ep, torch.export.ExportedProgram))


def case_export_kwargs_and_call_errors():
    model = load_(MLP()).eval()
    x, b = t(4, 6, seed=3), t(3, seed=4)
    ep = export(model, (x,), kwargs={"bias": b})
    m = ep.module()
    out = m(t(4, 6, seed=5), bias=t(3, seed=6))
    try:
        m(t(5, 6, seed=7), bias=b)
        message = None
    except Exception as e:        # torch: a guard on the static batch size
        message = isinstance(e, (AssertionError, RuntimeError))
    try:
        ep(x)
        direct = None
    except Exception as e:
        direct = type(e).__name__
    return out, message, direct, _signature(ep)


def case_dynamic_batch_dim():
    model = load_(MLP()).eval()
    batch = Dim("batch", min=2, max=32)
    ep = export(model, (t(4, 6, seed=8),), dynamic_shapes={"x": {0: batch}})
    m = ep.module()
    outs = [m(t(n, 6, seed=9 + n)) for n in (2, 7, 32)]
    try:
        m(t(40, 6, seed=10))
        message = None
    except Exception as e:
        message = isinstance(e, (AssertionError, RuntimeError))
    ranges = sorted((str(v.lower), str(v.upper)) for v in ep.range_constraints.values())
    return outs, message, ranges


def case_dynamic_dims_tuple_spec_and_auto():
    model = load_(SmallCNN()).eval()
    dyn = {0: Dim.AUTO, 2: Dim("h", min=4, max=16), 3: Dim("w", min=4, max=16)}
    ep = export(model, (t(2, 3, 8, 8, seed=11),), dynamic_shapes=(dyn,))
    m = ep.module()
    return [m(t(n, 3, h, w, seed=12)).shape for n, h, w in ((1, 5, 9), (3, 16, 4))], \
        m(t(3, 3, 7, 5, seed=13))


def case_export_save_load_pt2():
    model = load_(SmallCNN()).eval()
    x = t(2, 3, 6, 6, seed=14)
    ep = export(model, (x,))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "cnn.pt2")
        torch.export.save(ep, path)
        loaded = torch.export.load(path)
        buf = io.BytesIO()
        torch.export.save(ep, buf)
        buf.seek(0)
        loaded2 = torch.export.load(buf)
    y = t(2, 3, 6, 6, seed=15)
    return loaded.module()(y), loaded2.module()(y), model(y), _signature(loaded)


def case_export_buffer_mutation_and_train_mode():
    class Counter(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("count", torch.zeros(1))
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            self.count.add_(1)
            return self.fc(x) * self.count

    model = load_(Counter())
    ep = export(model, (t(2, 3, seed=16),))
    m = ep.module()
    a = m(t(2, 3, seed=17))
    b = m(t(2, 3, seed=17))
    dec = ep.run_decompositions()
    kinds = [s.kind.name for s in dec.graph_signature.output_specs]
    return a, b, m.count, kinds, list(dec.graph_signature.buffers_to_mutate.values())


def case_aoti_package_round_trip():
    model = load_(SmallCNN()).eval()
    x = t(2, 3, 6, 6, seed=18)
    batch = Dim("batch", min=1, max=8)
    with torch.no_grad():
        ep = export(model, (x,), dynamic_shapes={"x": {0: batch}})
        with tempfile.TemporaryDirectory() as d:
            path = torch._inductor.aoti_compile_and_package(
                ep, package_path=os.path.join(d, "cnn.pt2"))
            runner = torch._inductor.aoti_load_package(path)
            outs = [runner(t(n, 3, 6, 6, seed=19 + n)) for n in (1, 2, 5)]
            named = os.path.basename(path)
    refs = [model(t(n, 3, 6, 6, seed=19 + n)) for n in (1, 2, 5)]
    return outs, refs, named


def case_jit_trace_save_load():
    model = load_(SmallCNN()).eval()
    x = t(2, 3, 6, 6, seed=30)
    traced = torch.jit.trace(model, x)
    buf = io.BytesIO()
    torch.jit.save(traced, buf)
    buf.seek(0)
    loaded = torch.jit.load(buf)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "cnn.pt")
        traced.save(path)
        loaded2 = torch.jit.load(path, map_location="cpu")
    y = t(2, 3, 6, 6, seed=31)
    return traced(y), loaded(y), loaded2(y), model(y), \
        isinstance(traced, torch.jit.ScriptModule), sorted(loaded.state_dict())


def case_jit_script_freeze_optimize():
    model = load_(SmallCNN()).eval()
    scripted = torch.jit.script(model)
    frozen = torch.jit.freeze(scripted)
    optimized = torch.jit.optimize_for_inference(torch.jit.script(model))
    y = t(2, 3, 6, 6, seed=32)
    buf = io.BytesIO()
    torch.jit.save(frozen, buf)
    buf.seek(0)
    reloaded = torch.jit.load(buf)
    return scripted(y), frozen(y), optimized(y), reloaded(y), model(y)


def case_jit_trace_function_and_check():
    def f(x, w):
        return torch.tanh(x @ w).sum(dim=1)

    x, w = t(3, 4, seed=33), t(4, 5, seed=34)
    traced = torch.jit.trace(f, (x, w))
    return traced(x, w), traced(t(3, 4, seed=35), w), f(x, w)


def case_onnx_export_onnxruntime():
    model = load_(SmallCNN()).eval()
    x = t(2, 3, 6, 6, seed=36)
    f = io.BytesIO()
    torch.onnx.export(model, (x,), f, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      opset_version=17, dynamo=False)
    sess = ort.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"])
    y = t(5, 3, 6, 6, seed=37)
    (got,) = sess.run(None, {"input": y.numpy()})
    inp = sess.get_inputs()[0]
    return got, model(y), inp.name, inp.shape, [o.name for o in sess.get_outputs()]


def case_onnx_export_to_file_mlp():
    model = load_(MLP()).eval()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "mlp.onnx")
        torch.onnx.export(model, (t(2, 6, seed=38),), path, input_names=["x"],
                          output_names=["probs"], opset_version=17, dynamo=False)
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        x = t(2, 6, seed=39)
        got = sess.run(["probs"], {"x": x.numpy()})[0]
    return got, model(x), sess.get_inputs()[0].shape


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.GELU())
        self.cls = nn.Linear(8, 3)
        self.reg = nn.Linear(8, 1)

    def forward(self, x, mask):
        h = self.trunk(x) * mask.unsqueeze(-1)
        return {"logits": self.cls(h), "score": self.reg(h).squeeze(-1)}


def case_export_dict_outputs_and_unflatten():
    model = load_(TwoHeads()).eval()
    x, mask = t(2, 5, 6, seed=40), (t(2, 5, seed=41) > 0).float()
    ep = export(model, (x, mask))
    out = ep.module()(x, mask)
    unflat = torch.export.unflatten(ep)
    out2 = unflat(x, mask)
    return out, out2, sorted(ep.module().state_dict()), \
        [s.kind.name for s in ep.graph_signature.output_specs]


def case_export_derived_and_shared_dims():
    class Pair(nn.Module):
        def forward(self, a, b):
            return torch.cat([a, a], dim=0) + b

    n = Dim("n", min=1, max=16)
    ep = export(Pair(), (t(3, 4, seed=42), t(6, 4, seed=43)),
                dynamic_shapes={"a": {0: n}, "b": {0: 2 * n}})
    m = ep.module()
    return m(t(5, 4, seed=44), t(10, 4, seed=45)).shape, m(t(1, 4, seed=46), t(2, 4, seed=47))


def case_export_save_with_extra_files_and_load_state():
    model = load_(MLP()).eval()
    ep = export(model, (t(3, 6, seed=48),))
    buf = io.BytesIO()
    torch.export.save(ep, buf, extra_files={"meta.txt": "v1"})
    buf.seek(0)
    extra = {"meta.txt": ""}
    loaded = torch.export.load(buf, extra_files=extra)
    m = loaded.module()
    fresh = load_(MLP(), scale=0.1)
    m.load_state_dict(fresh.state_dict())
    x = t(3, 6, seed=49)
    return extra, m(x), fresh(x)


def case_jit_trace_module_and_extra_files():
    model = load_(MLP()).eval()
    x = t(2, 6, seed=50)
    traced = torch.jit.trace_module(model, {"forward": (x,)})
    buf = io.BytesIO()
    torch.jit.save(traced, buf, _extra_files={"config.json": '{"a": 1}'})
    buf.seek(0)
    files = {"config.json": ""}
    loaded = torch.jit.load(buf, _extra_files=files)
    return loaded(x), model(x), files


def case_jit_trace_dict_output_strict_false():
    model = load_(TwoHeads()).eval()
    x, mask = t(2, 5, 6, seed=51), torch.ones(2, 5)
    traced = torch.jit.trace(model, (x, mask), strict=False)
    out = traced(x, mask)
    return out, sorted(out)


def case_onnx_two_inputs_dynamic():
    model = load_(TwoHeads()).eval()
    x, mask = t(2, 5, 6, seed=52), torch.ones(2, 5)
    f = io.BytesIO()
    torch.onnx.export(model, (x, mask), f, input_names=["x", "mask"],
                      output_names=["logits", "score"],
                      dynamic_axes={"x": {0: "batch", 1: "seq"}, "mask": {0: "batch", 1: "seq"},
                                    "logits": {0: "batch", 1: "seq"},
                                    "score": {0: "batch", 1: "seq"}},
                      opset_version=17, do_constant_folding=True, dynamo=False)
    sess = ort.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"])
    x2, mask2 = t(3, 7, 6, seed=53), (t(3, 7, seed=54) > 0).float()
    logits, score = sess.run(None, {"x": x2.numpy(), "mask": mask2.numpy()})
    want = model(x2, mask2)
    return logits, score, want["logits"], want["score"], \
        [i.shape for i in sess.get_inputs()], [o.shape for o in sess.get_outputs()]


def case_compile_exported_module_and_default_package_path():
    model = load_(SmallCNN()).eval()
    x = t(2, 3, 6, 6, seed=60)
    ep = export(model, (x,))
    compiled = torch.compile(ep.module())
    with torch.no_grad():
        out = compiled(t(2, 3, 6, 6, seed=61))
    ep2 = export(load_(MLP()).eval(), (t(3, 6, seed=62),), strict=False)
    with tempfile.TemporaryDirectory() as d:
        path = torch._inductor.aoti_compile_and_package(
            ep2, package_path=os.path.join(d, "mlp.pt2"))
        runner = torch._inductor.aoti_load_package(path)
        out2 = runner(t(3, 6, seed=63))
    return out, model(t(2, 3, 6, 6, seed=61)), out2


def case_onnx_older_opsets():
    outs = []
    for opset in (11, 13, 17):
        for model in (load_(SmallCNN()).eval(), load_(TwoHeads()).eval()):
            args = (t(2, 3, 6, 6, seed=64),) if isinstance(model, SmallCNN) else \
                (t(2, 5, 6, seed=65), torch.ones(2, 5))
            f = io.BytesIO()
            torch.onnx.export(model, args, f, opset_version=opset, dynamo=False)
            sess = ort.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"])
            feeds = {i.name: a.numpy() for i, a in zip(sess.get_inputs(), args)}
            outs.append((opset, sess.run(None, feeds)))
    return outs
