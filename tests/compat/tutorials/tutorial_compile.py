"""PyTorch's torch.compile tutorials, written against plain PyTorch.

Each `case_*` follows one tutorial page: "Introduction to torch.compile"
(intermediate/torch_compile_tutorial: functions, decorators, modules, training
against eager, graph breaks and explain, fullgraph), "Custom Backends"
(torch.compiler_custom_backends: a backend printing the graph, register_backend,
backends receiving example inputs) and the torch.compiler API page.
"""
import numpy as np
import torch
import torch._dynamo
import torch.nn.functional as F
from torch._dynamo import register_backend


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


# --- "Basic Usage" ---------------------------------------------------------------------------

def foo(x, y):
    a = torch.sin(x)
    b = torch.cos(y)
    return a + b


@torch.compile
def opt_foo2(x, y):
    a = torch.sin(x)
    b = torch.cos(y)
    return a + b


def inner(x):
    return torch.sin(x)


@torch.compile
def outer(x, y):
    a = inner(x)
    b = torch.cos(y)
    return a + b


class MyModule(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 3)

    def forward(self, x):
        return torch.nn.functional.relu(self.lin(x))


def case_basic_usage():
    """torch_compile_tutorial "Basic Usage": torch.compile(foo), @torch.compile, a
    nested function, a compiled module and model.compile()."""
    x, y = data(10, 10), data(10, 10, seed=2)
    opt_foo1 = torch.compile(foo)
    mod = seeded(MyModule())
    opt_mod = torch.compile(mod)
    t = data(10, 3, seed=3)
    mod2 = seeded(MyModule())
    mod2.compile()
    return {"foo": numpy(opt_foo1(x, y)), "foo2": numpy(opt_foo2(x, y)),
            "outer": numpy(outer(x, y)), "eager": numpy(foo(x, y)),
            "mod": numpy(opt_mod(t)), "mod_eager": numpy(mod(t)),
            "method": numpy(mod2(t)), "orig_is_mod": opt_mod._orig_mod is mod}


# --- "Demonstrating Speedups" (correctness part): a training loop, eager vs compiled ----------

class SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(6)
        self.fc = torch.nn.Linear(6 * 4 * 4, 5)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)
        return self.fc(torch.flatten(x, 1))


def _train(model, compile_step):
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    model_fn = torch.compile(model) if compile_step else model

    def train(inp, target):
        opt.zero_grad(True)
        loss = F.cross_entropy(model_fn(inp), target)
        loss.backward()
        opt.step()
        return loss
    losses = []
    for step in range(4):
        inp = data(4, 3, 8, 8, seed=10 + step)
        target = torch.tensor([step % 5, (step + 1) % 5, (step + 2) % 5, 0])
        losses.append(float(train(inp, target)))
    return losses


def case_training_eager_vs_compiled():
    """torch_compile_tutorial: training steps with torch.compile(model) match eager."""
    eager = _train(seeded(SmallCNN()), False)
    compiled_model = seeded(SmallCNN())
    compiled = _train(compiled_model, True)
    return {"eager": np.array(eager), "compiled": np.array(compiled),
            "weight": numpy(compiled_model.fc.weight)}


def case_inference_eager_vs_compiled():
    """torch_compile_tutorial: `model.eval()` under no_grad, compiled with mode="reduce-overhead"."""
    model = seeded(SmallCNN()).eval()
    opt = torch.compile(model, mode="reduce-overhead")
    inp = data(2, 3, 8, 8)
    with torch.no_grad():
        return {"compiled": numpy(opt(inp)), "eager": numpy(model(inp))}


# --- "Graph breaks" and torch._dynamo.explain --------------------------------------------------

def bar(a, b):
    x = a / (torch.abs(a) + 1)
    if b.sum() < 0:
        b = b * -1
    return x * b


def case_graph_breaks_explain():
    """torch_compile_tutorial / compiler_custom_backends: a data-dependent `if` breaks the
    graph; explain() counts graphs and breaks; results stay eager's."""
    torch._dynamo.reset()
    a, b = data(10), data(10, seed=2)
    explanation = torch._dynamo.explain(bar)(a, b)
    opt_bar = torch.compile(bar)
    return {"graph_break_count": explanation.graph_break_count,
            "break_reasons": len(explanation.break_reasons),
            "pos": numpy(opt_bar(a, b.abs())), "neg": numpy(opt_bar(a, -b.abs())),
            "eager_neg": numpy(bar(a, -b.abs()))}


def case_graph_breaks_graph_count():
    """torch_compile_tutorial: the graphs on either side of bar's break (explain's count)."""
    torch._dynamo.reset()
    return {"graph_count": torch._dynamo.explain(bar)(data(10), data(10, seed=2)).graph_count}


def case_fullgraph_refuses_break():
    """torch_compile_tutorial: fullgraph=True turns the graph break into an error."""
    torch._dynamo.reset()
    opt_bar = torch.compile(bar, fullgraph=True)
    try:
        opt_bar(data(10), data(10, seed=2))
    except Exception:       # noqa: BLE001 - torch's class is dynamo-internal
        return {"refused": True}
    return {"refused": False}


# --- "Custom Backends" ---------------------------------------------------------------------------

def case_custom_backend_sees_graphs():
    """torch.compiler_custom_backends: `def my_compiler(gm, example_inputs): ...; return
    gm.forward`; one call per graph, the graph runs as given."""
    torch._dynamo.reset()
    seen = []

    def my_compiler(gm: torch.fx.GraphModule, example_inputs):
        seen.append({"inputs": [tuple(t.shape) for t in example_inputs
                                if isinstance(t, torch.Tensor)],
                     "calls": sorted({str(getattr(n.target, "__name__", n.target))
                                      for n in gm.graph.nodes if n.op == "call_function"}),
                     "is_graph_module": isinstance(gm, torch.fx.GraphModule)})
        return gm.forward

    @torch.compile(backend=my_compiler)
    def toy(x, y):
        return torch.sin(x) * torch.cos(y) + 1

    x, y = data(4), data(4, seed=2)
    out = toy(x, y)
    out2 = toy(x, y)
    return {"out": numpy(out), "again": numpy(out2),
            "eager": numpy(torch.sin(x) * torch.cos(y) + 1),
            "graphs": len(seen), "shapes": seen[0]["inputs"],
            "is_graph_module": seen[0]["is_graph_module"],
            "has_sin": any("sin" in c for c in seen[0]["calls"])}


def case_custom_backend_with_graph_break():
    """torch.compiler_custom_backends: toy_example with a break: the backend is called
    for each graph (3 after both branches ran)."""
    torch._dynamo.reset()
    count = [0]

    def my_compiler(gm, example_inputs):
        count[0] += 1
        return gm.forward

    opt = torch.compile(bar, backend=my_compiler)
    a, b = data(10), data(10, seed=2)
    first = opt(a, b.abs())
    second = opt(a, -b.abs())
    return {"first": numpy(first), "second": numpy(second),
            "eager": numpy(bar(a, -b.abs())), "graphs": count[0]}


@register_backend
def tutorial_backend(gm, example_inputs):
    tutorial_backend.calls += 1
    return gm.forward


tutorial_backend.calls = 0


def case_register_backend():
    """torch.compiler_custom_backends "Registering Custom Backends": @register_backend,
    then torch.compile(backend="tutorial_backend"), listed by list_backends()."""
    torch._dynamo.reset()
    tutorial_backend.calls = 0
    mod = seeded(MyModule())
    opt = torch.compile(mod, backend="tutorial_backend")
    t = data(2, 3)
    out = opt(t)
    return {"out": numpy(out), "eager": numpy(mod(t)),
            "calls": tutorial_backend.calls,
            "listed": "tutorial_backend" in torch._dynamo.list_backends(exclude_tags=())}


def case_compiler_disable_and_reset():
    """torch.compiler API: torch.compiler.disable on a helper, torch.compiler.reset()."""
    torch.compiler.reset()

    @torch.compiler.disable
    def helper(x):
        return x.relu() * 2

    @torch.compile
    def fn(x):
        return helper(x.sin()) + 1

    x = data(6)
    return {"out": numpy(fn(x)), "eager": numpy((x.sin().relu() * 2) + 1),
            "is_compiling_outside": torch.compiler.is_compiling()}


# --- "Dynamic Compilation Control with torch.compiler.set_stance" ---------------------------

def case_set_stance():
    """torch.compiler.set_stance tutorial: force_eager as decorator, context and global
    setting; fail_on_recompile and eager_on_recompile."""
    torch.compiler.reset()

    @torch.compile
    def foo(x):
        if torch.compiler.is_compiling():
            return x + 1
        return x - 1

    inp = torch.zeros(3)
    seen = [numpy(foo(inp))]

    @torch.compiler.set_stance("force_eager")
    def bar(x):
        return foo(x)

    seen.append(numpy(bar(inp)))
    with torch.compiler.set_stance("force_eager"):
        seen.append(numpy(foo(inp)))
    torch.compiler.set_stance("force_eager")
    seen.append(numpy(foo(inp)))
    torch.compiler.set_stance("default")
    seen.append(numpy(foo(inp)))

    @torch.compile
    def my_big_model(x):
        return torch.relu(x)

    my_big_model(data(3))
    with torch.compiler.set_stance("fail_on_recompile"):
        same_shape = numpy(my_big_model(data(3, seed=2)))
        try:
            my_big_model(data(4))
            refused = False
        except Exception:      # noqa: BLE001 - torch raises RuntimeError
            refused = True

    @torch.compile
    def my_huge_model(x):
        if torch.compiler.is_compiling():
            return x + 1
        return x - 1

    huge = [numpy(my_huge_model(torch.zeros(3)))]
    with torch.compiler.set_stance("eager_on_recompile"):
        huge += [numpy(my_huge_model(torch.zeros(3))), numpy(my_huge_model(torch.zeros(4))),
                 numpy(my_huge_model(torch.zeros(3)))]
    return {"foo": seen, "same_shape": same_shape, "refused": refused, "huge": huge}


# --- "(beta) Compiling the optimizer with torch.compile" and "... with LR Scheduler" ---------

def _linear_stack():
    model = torch.nn.Sequential(*[torch.nn.Linear(16, 16, False) for _ in range(3)])
    return seeded(model)


def case_compiled_optimizer_step():
    """compiling_optimizer tutorial: `@torch.compile(fullgraph=False) def fn(): opt.step()`
    after a backward; the weights after three steps equal eager's."""
    results = {}
    for compiled in (False, True):
        torch._dynamo.reset()
        model = _linear_stack()
        opt = torch.optim.Adam(model.parameters(), lr=0.01)

        def fn():
            opt.step()
        step = torch.compile(fn, fullgraph=False) if compiled else fn
        for i in range(3):
            output = model(data(16, seed=30 + i))
            output.sum().backward()
            step()
            opt.zero_grad()
        results["compiled" if compiled else "eager"] = numpy(model[0].weight)
    return results


def case_compiled_optimizer_with_lr_scheduler():
    """compiling_optimizer_lr_scheduler tutorial: a tensor lr, LinearLR, opt.step() and
    sched.step() in one compiled function; lr values and weights match eager."""
    results = {}
    for compiled in (False, True):
        torch._dynamo.reset()
        model = _linear_stack()
        opt = torch.optim.Adam(model.parameters(), lr=torch.tensor(0.01))
        sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0, end_factor=0.0,
                                                  total_iters=5)

        def fn():
            opt.step()
            sched.step()
        step = torch.compile(fn, fullgraph=False) if compiled else fn
        lrs = []
        for i in range(5):
            model(data(16, seed=40 + i)).sum().backward()
            step()
            opt.zero_grad()
            lrs.append(float(opt.param_groups[0]["lr"]))
        key = "compiled" if compiled else "eager"
        results[key + "_weight"] = numpy(model[0].weight)
        results[key + "_lrs"] = np.array(lrs)
    return results
