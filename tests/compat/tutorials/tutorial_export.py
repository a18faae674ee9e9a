"""PyTorch's torch.export tutorials, written against plain PyTorch.

Each `case_*` follows one section of "torch.export Tutorial" (intermediate/torch_export_tutorial),
the torch.export documentation's examples (dynamic shapes with Dim, save/load,
run_decompositions, graph_signature) or the AOTInductor tutorial. Results are values,
signatures and whether (and with which kind of error) the program is refused.
"""
import os
import tempfile

import numpy as np
import torch
from torch.export import Dim, export


def data(*shape, seed=1):
    return torch.tensor(np.random.default_rng(seed).standard_normal(shape), dtype=torch.float32)


def seeded(model, scale=0.3):
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.copy_(torch.tensor(rng.standard_normal(tuple(p.shape)) * scale, dtype=p.dtype))
    return model


def numpy(t):
    return t.detach().numpy()


def error_of(fn, *args):
    """The kind of failure: None when `fn` runs, else 'error' (the class differs by library,
    the refusal does not)."""
    try:
        fn(*args)
    except Exception:       # noqa: BLE001 - any refusal counts; the class is torch-internal
        return "error"
    return None


# --- "Basic Usage" ---------------------------------------------------------------------

class MyModule(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(100, 10)

    def forward(self, x, y):
        return torch.nn.functional.relu(self.lin(x + y), inplace=True)


def case_basic_usage():
    """torch_export_tutorial "Basic Usage": export, .module(), graph_signature, state_dict."""
    mod = seeded(MyModule())
    x, y = data(8, 100), data(8, 100, seed=2)
    exported_mod = export(mod, (x, y))
    sig = exported_mod.graph_signature
    return {"type": type(exported_mod).__name__,
            "out": numpy(exported_mod.module()(x, y)), "eager": numpy(mod(x, y)),
            "parameters": list(sig.parameters), "user_inputs": list(sig.user_inputs),
            "user_outputs_count": len(sig.user_outputs),
            "state_dict": sorted(exported_mod.state_dict),
            # the inputs part of the printed signature (outputs are named after the
            # graph's last node, which is ATen's in torch and ember's own op here)
            "signature": str(sig).split("# outputs")[0],
            "input_kinds": [spec.kind.name for spec in sig.input_specs],
            "input_targets": [spec.target for spec in sig.input_specs]}


# --- "Graph Breaks" and "Non-Strict Export" ----------------------------------------------

class Bad1(torch.nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            return torch.sin(x)
        return torch.cos(x)


class ContextManager:
    def __init__(self):
        self.count = 0

    def __enter__(self):
        self.count += 1

    def __exit__(self, exc_type, exc_value, traceback):
        self.count -= 1


class WithContext(torch.nn.Module):
    def forward(self, x):
        with ContextManager():
            return x.sin() + x.cos()


def case_graph_breaks_and_non_strict():
    """torch_export_tutorial: data-dependent control flow is refused, in strict and in
    non-strict mode; a Python context manager exports with strict=False."""
    x = data(3, 3)
    ep = export(WithContext(), (x,), strict=False)
    return {"strict": error_of(export, Bad1(), (x,)),
            "non_strict": error_of(lambda: export(Bad1(), (x,), strict=False)),
            "context_out": numpy(ep.module()(x)), "context_eager": numpy(WithContext()(x))}


# --- "Control Flow Ops" -------------------------------------------------------------------

class Bad1Fixed(torch.nn.Module):
    def forward(self, x):
        def true_fn(x):
            return torch.sin(x)

        def false_fn(x):
            return torch.cos(x)
        return torch.cond(x.sum() > 0, true_fn, false_fn, [x])


def case_control_flow_cond():
    """torch_export_tutorial "Control Flow Ops": torch.cond exported, both branches run."""
    x = data(3, 3)
    ep = export(Bad1Fixed(), (x,))
    pos, neg = x.abs() + 0.1, -x.abs() - 0.1
    return {"pos": numpy(ep.module()(pos)), "neg": numpy(ep.module()(neg)),
            "eager_pos": numpy(Bad1Fixed()(pos)), "eager_neg": numpy(Bad1Fixed()(neg))}


# --- "Constraints/Dynamic Shapes" ---------------------------------------------------------

class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.branch1 = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU())
        self.branch2 = torch.nn.Sequential(torch.nn.Linear(128, 64), torch.nn.ReLU())
        self.buffer = torch.ones(32)

    def forward(self, x1, x2):
        out1 = self.branch1(x1)
        out2 = self.branch2(x2)
        return (out1 + self.buffer, out2)


def case_dynamic_batch_dim():
    """torch_export_tutorial: `batch = Dim("batch")` shared by both inputs; other batch
    sizes run, a mismatched batch and a wrong static size are refused."""
    model = seeded(M())
    example_args = (data(32, 64), data(32, 128, seed=2))
    batch = Dim("batch")
    dynamic_shapes = {"x1": {0: batch}, "x2": {0: batch}}
    ep = export(model, example_args, dynamic_shapes=dynamic_shapes)
    x1, x2 = data(5, 64, seed=3), data(5, 128, seed=4)
    outs = ep.module()(x1, x2)
    eager = model(x1, x2)
    return {"out": [numpy(o) for o in outs], "eager": [numpy(o) for o in eager],
            "mismatch": error_of(ep.module(), data(4, 64), data(5, 128)),
            "static": error_of(ep.module(), data(5, 65), data(5, 128)),
            "ranges": len(ep.range_constraints)}


class DynamicModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.l = torch.nn.Linear(5, 3)

    def forward(self, w, x, y, z):
        x0 = x + y
        x1 = self.l(w)
        x2 = x0.flatten()
        x3 = x2 + z
        return x1, x3


def case_dim_auto():
    """torch_export_tutorial: Dim.AUTO on every dimension; related shapes follow."""
    model = seeded(DynamicModel())
    w, x, y, z = data(6, 5), data(4), data(8, 4), data(32)
    dynamic_shapes = {"w": (Dim.AUTO, Dim.AUTO), "x": (Dim.AUTO,),
                      "y": (Dim.AUTO, Dim.AUTO), "z": (Dim.AUTO,)}
    ep = export(model, (w, x, y, z), dynamic_shapes=dynamic_shapes)
    args2 = (data(3, 5, seed=5), data(6, seed=6), data(2, 6, seed=7), data(12, seed=8))
    return {"out": [numpy(o) for o in ep.module()(*args2)],
            "eager": [numpy(o) for o in model(*args2)],
            "bad_z": error_of(ep.module(), data(3, 5), data(6), data(2, 6), data(13))}


def case_dim_min_max():
    """torch.export docs: Dim("batch", min=4, max=16); sizes outside the range refused
    (torch checks a lower bound above 2 only: sizes 0 and 1 are specialized)."""
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh())
    seeded(model)
    batch = Dim("batch", min=4, max=16)
    ep = export(model, (data(8, 4),), dynamic_shapes=({0: batch},))
    return {"ok": numpy(ep.module()(data(16, 4, seed=2))),
            "eager": numpy(model(data(16, 4, seed=2))),
            "too_big": error_of(ep.module(), data(17, 4)),
            "too_small": error_of(ep.module(), data(3, 4)),
            "min_max": sorted((int(r.lower), int(r.upper)) for r in ep.range_constraints.values())}


# --- "Serialization", "IR/Decompositions" ----------------------------------------------

def case_save_load():
    """torch_export_tutorial "Serialization": torch.export.save / torch.export.load."""
    mod = seeded(MyModule())
    x, y = data(2, 100), data(2, 100, seed=2)
    ep = export(mod, (x, y))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "exported_program.pt2")
        torch.export.save(ep, path)
        loaded = torch.export.load(path)
    return {"out": numpy(loaded.module()(x, y)), "eager": numpy(mod(x, y)),
            "type": type(loaded).__name__,
            "state_dict": sorted(loaded.state_dict)}


class ConvBN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 3, 1, 1)
        self.bn = torch.nn.BatchNorm2d(3)

    def forward(self, x):
        x = self.conv(x)
        x = self.bn(x)
        return (x,)


def case_run_decompositions():
    """torch_export_tutorial "IR/Decompositions": the training IR decomposed with
    run_decompositions() (and with default_decompositions()) computes the same."""
    mod = seeded(ConvBN()).eval()
    inp = data(1, 1, 3, 3)
    ep = export(mod, (inp,))
    core = ep.run_decompositions()
    table = torch.export.default_decompositions()
    core2 = ep.run_decompositions(table)
    return {"core": numpy(core.module()(inp)[0]), "core2": numpy(core2.module()(inp)[0]),
            "eager": numpy(mod(inp)[0]), "buffers": list(core.graph_signature.buffers),
            "parameters": list(core.graph_signature.parameters)}


# --- "Custom Ops" -----------------------------------------------------------------------

@torch.library.custom_op("tutorial_export::custom_op", mutates_args={})
def custom_op(x: torch.Tensor) -> torch.Tensor:
    return torch.relu(x)


@custom_op.register_fake
def custom_op_meta(x):
    return torch.empty_like(x)


class CustomOpExample(torch.nn.Module):
    def forward(self, x):
        x = torch.sin(x)
        x = torch.ops.tutorial_export.custom_op(x)
        x = torch.cos(x)
        return x


def case_custom_op():
    """torch_export_tutorial "Custom Ops": a torch.library.custom_op with a fake kernel."""
    x = data(3, 3)
    ep = export(CustomOpExample(), (x,))
    return {"out": numpy(ep.module()(x)), "eager": numpy(CustomOpExample()(x)),
            "calls_custom": any("custom_op" in str(n.target) for n in ep.graph.nodes)}


# --- AOTInductor ---------------------------------------------------------------------------

class AOTModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(10, 16)
        self.relu = torch.nn.ReLU()
        self.fc2 = torch.nn.Linear(16, 1)
        self.sigmoid = torch.nn.Sigmoid()

    def forward(self, x):
        x = self.fc1(x)
        x = self.relu(x)
        x = self.fc2(x)
        x = self.sigmoid(x)
        return x


def case_aot_inductor_package():
    """AOTInductor tutorial: export with a batch Dim, aoti_compile_and_package, load, run."""
    with torch.no_grad():
        model = seeded(AOTModel())
        example_inputs = (data(8, 10),)
        batch_dim = Dim("batch", min=1, max=1024)
        exported = export(model, example_inputs, dynamic_shapes={"x": {0: batch_dim}})
        with tempfile.TemporaryDirectory() as tmp:
            path = torch._inductor.aoti_compile_and_package(
                exported, package_path=os.path.join(tmp, "model.pt2"))
            compiled = torch._inductor.aoti_load_package(path)
            out = compiled(data(3, 10, seed=4))
        return {"out": numpy(out), "eager": numpy(model(data(3, 10, seed=4))),
                "path_is_str": isinstance(path, str)}


# --- torch.export docs: keyword and nested inputs, ep.module() as an nn.Module -------------

class KwargsModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)
        self.bn = torch.nn.BatchNorm1d(2)

    def forward(self, x, *, scale=1.0, extra=None):
        return self.bn(self.lin(x)) * scale + extra["b"]


def case_kwargs_pytree_and_module():
    """torch.export docs: export(model, args, kwargs) with a float and a dict of tensors;
    ep.module() is an nn.Module with the model's state; a different float is refused."""
    model = seeded(KwargsModel()).eval()
    x, b = data(4, 3), data(2, seed=3)
    ep = export(model, (x,), kwargs={"scale": 2.0, "extra": {"b": b}})
    mod = ep.module()
    out = mod(x, scale=2.0, extra={"b": b})
    state = model.state_dict()
    state["lin.bias"] = state["lin.bias"] + 1.0
    mod.load_state_dict(state)
    model.load_state_dict(state)
    return {"out": numpy(out), "is_module": isinstance(mod, torch.nn.Module),
            "state_dict": list(mod.state_dict()),
            "parameters": [name for name, _ in mod.named_parameters()],
            "reloaded": numpy(mod(x, scale=2.0, extra={"b": b})),
            "reloaded_eager": numpy(model(x, scale=2.0, extra={"b": b})),
            "other_scale": error_of(lambda: mod(x, scale=3.0, extra={"b": b}))}
