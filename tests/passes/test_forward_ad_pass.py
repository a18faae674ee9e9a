"""Forward mode as a graph transform (passes.forward_ad.jvp_graph).

- every differentiable op: the JVP graph is the adjoint of the joint graph's VJP
  (<J v, u> == <v, J^T u>, the dot-product test), which checks each derived rule;
- a few ops and two models against torch.func.jvp;
- declared jvp rules agree with the derived ones.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from ember.ir.meta import TensorMeta
from ember.ir.parser import graphs_equal, parse
from ember.ir.registry import OPS
from ember.ir.symbolic import build_graph, call_graph
from ember.ir.verifier import verify
from ember.passes.autograd import cotangent_placeholders, joint_graph, trace_forward
from ember.passes.forward_ad import jvp_graph, tangent_placeholders

from tests.oracle import as_numpy, assert_close, kwargs_to_torch, torch_fn
from tests.passes.test_autograd_pass import TESTED, differentiable_op_graph


def _random_like(rng, meta):
    shape, dtype = meta.shape, meta.dtype.np_dtype
    value = rng.standard_normal(shape)
    if meta.dtype.is_complex:
        value = value + 1j * rng.standard_normal(shape)
    return ember.tensor(np.asarray(value, dtype=dtype))


def _inner(a, b) -> float:
    """Re<a, b>: the real inner product under which torch's VJP is the JVP's adjoint."""
    return float(np.real(np.vdot(as_numpy(a).astype(np.complex128),
                                 as_numpy(b).astype(np.complex128))))


def _leaves(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


@pytest.mark.parametrize("op", TESTED, ids=lambda op: op.name)
def test_jvp_graph_is_adjoint_of_joint_graph(op, rng):
    sample, graph, constants, arrays, wrt = differentiable_op_graph(op, rng)
    jvp = jvp_graph(graph, wrt)
    joint = joint_graph(graph, wrt)
    verify(jvp)
    inputs = [ember.tensor(a) for a in arrays]
    tangents = [_random_like(rng, p.meta["val"]) for p in tangent_placeholders(jvp)]
    cots = [_random_like(rng, p.meta["val"]) for p in cotangent_placeholders(joint)]
    ember.manual_seed(0)
    outs, jv = call_graph(jvp, inputs + tangents, constants)
    ember.manual_seed(0)
    _, vjp = call_graph(joint, inputs + cots, constants)
    live = [t for o, t in zip(_leaves(outs), _leaves(jv))
            if o.dtype.is_floating_point or o.dtype.is_complex]
    lhs = sum(_inner(c, t) for c, t in zip(cots, live))
    rhs = sum(_inner(g, v) for g, v in zip(vjp, tangents))
    scale = 1 + sum(abs(_inner(c, c)) ** 0.5 for c in cots) * \
        sum(abs(_inner(v, v)) ** 0.5 for v in tangents)
    assert abs(lhs - rhs) <= 1e-4 * scale, f"{op.name} {sample}: <Jv,u>={lhs} <v,J^T u>={rhs}"


TORCH_CHECKED = ["sin", "mul", "matmul", "softmax", "layer_norm", "max", "cat", "conv2d",
                 "log_softmax", "var"]


@pytest.mark.parametrize("name", TORCH_CHECKED)
def test_jvp_graph_matches_torch_func_jvp(name, rng):
    op = OPS[name]
    sample, graph, constants, arrays, wrt = differentiable_op_graph(op, rng)
    jvp = jvp_graph(graph, wrt)
    assert graphs_equal(parse(ember.ir.print_graph(jvp)), jvp)
    tangents = [rng.standard_normal(arrays[i].shape).astype(arrays[i].dtype) for i in wrt]
    _, got = call_graph(jvp, [ember.tensor(a) for a in arrays] +
                        [ember.tensor(t) for t in tangents], constants)
    from tests.passes.test_autograd_pass import _fill, _split_arrays
    template = _split_arrays(sample.args, [])
    kwargs = kwargs_to_torch(sample.kwargs)
    fixed = [torch.from_numpy(a) for a in arrays]

    def f(*diff):
        values = list(fixed)
        for i, d in zip(wrt, diff):
            values[i] = d
        return torch_fn(op)(*_fill(template, values), **kwargs)
    _, want = torch.func.jvp(f, tuple(fixed[i] for i in wrt),
                             tuple(torch.from_numpy(t) for t in tangents))
    for g, w in zip(_leaves(got), _leaves(want)):
        if w.dtype.is_floating_point:
            assert_close(g, w.detach(), rtol=1e-4, atol=1e-5, what=f"{name} tangent")


def _torch_twin(name, model):
    tnn = torch.nn
    if name == "mlp":
        twin = tnn.Sequential(tnn.Flatten(), tnn.Linear(12, 8), tnn.ReLU(), tnn.Linear(8, 4))
    else:
        twin = tnn.Sequential(
            tnn.Conv2d(1, 16, 3, padding=1), tnn.BatchNorm2d(16), tnn.ReLU(), tnn.MaxPool2d(2),
            tnn.Conv2d(16, 32, 3, padding=1), tnn.BatchNorm2d(32), tnn.ReLU(), tnn.MaxPool2d(2),
            tnn.AdaptiveAvgPool2d((1, 1)), tnn.Flatten(), tnn.Linear(32, 3))
    twin.load_state_dict({k: torch.from_numpy(as_numpy(v).copy())
                          for k, v in model.state_dict().items()})
    return twin.eval()


@pytest.mark.parametrize("name,shape", [("mlp", (3, 12)), ("small_cnn", (2, 1, 8, 8))])
def test_jvp_graph_of_model_matches_torch(name, shape, rng):
    model = ember.models.mlp(in_features=12, hidden=(8,), num_classes=4) if name == "mlp" \
        else ember.models.small_cnn(in_channels=1, num_classes=3)
    model.eval()
    x = rng.standard_normal(shape).astype(np.float32)
    graph, constants, n_params = trace_forward(model, [ember.tensor(x)])
    jvp = jvp_graph(graph, list(range(n_params + 1)))
    verify(jvp)
    params = [as_numpy(p) for p in model.parameters()]
    tangents = [rng.standard_normal(a.shape).astype(np.float32) for a in params + [x]]
    _, got = call_graph(jvp, [ember.tensor(a) for a in params + [x] + tangents], constants)
    twin = _torch_twin(name, model)
    names = [n for n, _ in twin.named_parameters()]

    def f(*values):
        return torch.func.functional_call(twin, dict(zip(names, values[:-1])), (values[-1],))
    _, want = torch.func.jvp(f, tuple(torch.from_numpy(a) for a in params + [x]),
                             tuple(torch.from_numpy(t) for t in tangents))
    assert_close(got, want.detach(), rtol=1e-4, atol=1e-5, what=f"{name} jvp")


def _declared_sin(tangents, self):
    (t,) = tangents
    return t * self.cos()


def _declared_mul(tangents, self, other):
    t_self, t_other = tangents
    terms = [t * o for t, o in ((t_self, other), (t_other, self)) if t is not None]
    return sum(terms[1:], terms[0])


def test_declared_jvp_rules_agree_with_derived(monkeypatch, rng):
    def f(x, y):
        return (x.sin() * y).sin()
    graph, _ = build_graph(f, [TensorMeta((3, 4), ember.float32), TensorMeta((4,), ember.float32)])
    derived = jvp_graph(graph, [0, 1])
    monkeypatch.setattr(OPS["sin"], "jvp", _declared_sin)
    monkeypatch.setattr(OPS["mul"], "jvp", _declared_mul)
    declared = jvp_graph(graph, [0, 1])
    assert "cos" in ember.ir.print_graph(declared) and not graphs_equal(declared, derived)
    values = [ember.randn(3, 4), ember.randn(4), ember.randn(3, 4), ember.randn(4)]
    (_, want), (_, got) = (call_graph(g, values) for g in (derived, declared))
    assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_jvp_graph_zero_tangent_for_independent_output():
    graph, _ = build_graph(lambda x, y: (x.exp(), y * 2),
                           [TensorMeta((3,), ember.float32), TensorMeta((2,), ember.float32)])
    jvp = jvp_graph(graph, [0])
    assert [p.name for p in tangent_placeholders(jvp)] == ["tangent0"]
    _, (tx, ty) = call_graph(jvp, [ember.randn(3), ember.randn(2), ember.ones(3)])
    assert_close(ty, np.zeros(2, np.float32))
