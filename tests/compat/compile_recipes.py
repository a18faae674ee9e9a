"""torch.compile, torch.export and quantization scripts as PyTorch users write them.

tests/compat/test_compile_recipes.py runs every `recipe_*` here with the real torch and
with `torch` imported as ember, and compares what they return. Weights and data come
from NumPy generators so both runs compute with the same numbers.
"""
import copy
import io
import os
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import get_default_qconfig_mapping
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
from torch.export import Dim, export

# (imports stay at module level: the ember run imports this module with `torch` aliased
# to ember, and an import statement inside a function would find the real torch)


def seeded(model, scale=0.3):
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.copy_(torch.tensor(rng.standard_normal(tuple(p.shape)) * scale, dtype=p.dtype))
    return model


def data(*shape, seed=1):
    return torch.tensor(np.random.default_rng(seed).standard_normal(shape), dtype=torch.float32)


def labels(n, classes, seed=2):
    return torch.tensor(np.random.default_rng(seed).integers(0, classes, n))


def numpy(t):
    return t.detach().float().numpy()


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 32)
        self.fc2 = nn.Linear(32, 4)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


# --- torch.compile ----------------------------------------------------------------------------
def recipe_compiled_training_loop():
    torch._dynamo.reset()
    model = seeded(MLP())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    compiled = torch.compile(model, mode="reduce-overhead", fullgraph=True, dynamic=False)
    x, y = data(8, 16), labels(8, 4)
    losses = []
    for _ in range(3):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(compiled(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return {"losses": np.array(losses), "weight": numpy(model.fc1.weight)}


def recipe_compiled_function_with_python_control_flow():
    @torch.compile
    def f(x, n: int):
        if n > 2:
            return torch.sin(x) * n
        for _ in range(n):
            x = x + 1
        return x
    return {"small": numpy(f(data(3), 1)), "large": numpy(f(data(3), 3))}


def recipe_inductor_backend_dynamic_shapes():
    @torch.compile(backend="inductor", dynamic=True)
    def attention_scores(a, b):
        return (a @ b).softmax(-1)
    return {"four": numpy(attention_scores(data(4, 5), data(5, 6))),
            "seven": numpy(attention_scores(data(7, 5), data(5, 6)))}


def recipe_disable_and_reset():
    torch._dynamo.reset()

    @torch.compiler.disable
    def host_sum(x):
        return float(x.numpy().sum())

    def f(x):
        return torch.relu(x) + host_sum(x)
    compiled = torch.compile(f)
    first = compiled(data(4))
    torch._dynamo.reset()
    return {"first": numpy(first), "again": numpy(compiled(data(4, seed=3)))}


def recipe_module_compile_method():
    model = seeded(MLP()).eval()
    x = data(8, 16)
    expected = model(x)
    model.compile()
    with torch.no_grad():
        got = model(x)
    return {"eager": numpy(expected), "compiled": numpy(got),
            "type": type(model).__name__}


def recipe_bf16_autocast_training_step():
    model = seeded(MLP())
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    compiled = torch.compile(model)
    x, y = data(8, 16), labels(8, 4)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = compiled(x)
        loss = F.cross_entropy(out.float(), y)
    loss.backward()
    opt.step()
    return {"dtype": str(out.dtype).split(".")[-1], "loss": np.array(loss.item())}


def recipe_dynamo_marks_and_breaks():
    torch._dynamo.config.cache_size_limit = 16
    model = seeded(MLP())
    x = data(5, 16)
    torch._dynamo.mark_dynamic(x, 0)
    compiled = torch.compile(model)
    for _ in range(2):
        torch.compiler.cudagraph_mark_step_begin()
        out = compiled(x)
        out.sum().backward()

    def with_break(t):
        t = t * 2
        torch._dynamo.graph_break()
        return t + 1

    @torch.compile(fullgraph=True)
    def no_grad_inside(t):
        with torch.no_grad():
            doubled = t * 2
        return doubled + t
    leaf = data(3).requires_grad_(True)
    mixed = no_grad_inside(leaf)
    mixed.sum().backward()
    return {"out": numpy(out), "grad": numpy(model.fc1.weight.grad),
            "orig_is_model": compiled._orig_mod is model,
            "keys": sorted(k.replace("_orig_mod.", "") for k in compiled.state_dict()),
            "broken": numpy(torch.compile(with_break)(data(2))),
            "mixed": numpy(mixed), "leaf_grad": numpy(leaf.grad)}


# --- torch.export -------------------------------------------------------------------------------
class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(8, 16)
        self.l2 = nn.Linear(16, 4)
        self.register_buffer("scale", torch.tensor(2.0))

    def forward(self, x):
        return self.l2(torch.relu(self.l1(x))) * self.scale


def recipe_export_dynamic_batch_save_load():
    model = seeded(Scaled()).eval()
    batch = Dim("batch", min=1, max=1024)
    ep = export(model, (data(3, 8),), dynamic_shapes={"x": {0: batch}})
    buffer = io.BytesIO()
    torch.export.save(ep, buffer)
    buffer.seek(0)
    loaded = torch.export.load(buffer)
    x5 = data(5, 8, seed=4)
    return {"module": numpy(ep.module()(x5)), "loaded": numpy(loaded.module()(x5)),
            "decomposed": numpy(ep.run_decompositions().module()(x5)),
            "eager": numpy(model(x5)),
            "user_inputs": list(ep.graph_signature.user_inputs),
            "parameters": sorted(ep.graph_signature.parameters),
            "buffers": list(ep.graph_signature.buffers),
            "state": sorted(ep.state_dict)}


def recipe_aoti_package():
    model = seeded(Scaled()).eval()
    x = data(2, 8)
    ep = export(model, (x,))
    with tempfile.TemporaryDirectory() as folder:
        path = torch._inductor.aoti_compile_and_package(
            ep, package_path=os.path.join(folder, "model.pt2"))
        runner = torch._inductor.aoti_load_package(path)
        out = runner(x)
    return {"packaged": numpy(out), "eager": numpy(model(x))}


# --- quantization -------------------------------------------------------------------------------
class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self.relu(self.bn(self.conv(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def recipe_fx_post_training_quantization():
    model = seeded(SmallCNN()).eval()
    calibration = [data(4, 3, 8, 8, seed=s) for s in range(4)]
    mapping = get_default_qconfig_mapping("x86")
    prepared = prepare_fx(copy.deepcopy(model), mapping, (calibration[0],))
    with torch.inference_mode():
        for x in calibration:
            prepared(x)
    quantized = convert_fx(prepared)
    buffer = io.BytesIO()
    torch.save(quantized.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer)
    x = calibration[0]
    return {"float": numpy(model(x)), "quantized": numpy(quantized(x)),
            "reloaded_equal": _equal_states(quantized.state_dict(), state)}


def _equal_states(a, b):
    """Entries equal after a save/load round trip (quantized tensors by value)."""
    def same(x, y):
        if isinstance(x, torch.Tensor):
            x, y = (t.dequantize() if t.is_quantized else t for t in (x, y))
            return bool((numpy(x) == numpy(y)).all())
        if isinstance(x, (tuple, list)):
            return len(x) == len(y) and all(same(i, j) for i, j in zip(x, y))
        return x == y
    return set(a) == set(b) and all(same(a[k], b[k]) for k in a)


def recipe_dynamic_quantization_linear():
    model = seeded(MLP()).eval()
    quantized = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    x = data(8, 16)
    return {"float": numpy(model(x)), "quantized": numpy(quantized(x))}


RECIPES = {name[len("recipe_"):]: fn for name, fn in globals().items()
           if name.startswith("recipe_")}
