"""Graph reverse-mode autograd (passes.autograd.joint_graph) against the eager tape.

For every differentiable registry op (one sample each) and every built-in model (small
configs, all parameters) the joint graph's gradients must equal `ember.autograd.grad`;
joint graphs must verify and survive a print/parse round trip.
"""
from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.ir.errors import AutogradError
from ember.ir.meta import TensorMeta, meta_of
from ember.ir.parser import graphs_equal, parse
from ember.ir.registry import OPS, Tag
from ember.ir.symbolic import build_graph, call_graph
from ember.ir.verifier import verify
from ember.passes.autograd import cotangent_placeholders, joint_graph, trace_joint

from tests.oracle import as_numpy, assert_close, flat_tensors

F32 = ember.float32
TESTED = sorted((op for op in OPS.values() if op.is_differentiable and op.samples is not None
                 and not op.has_tag(Tag.INPLACE)), key=lambda op: op.name)


def _is_float_array(v) -> bool:
    return isinstance(v, np.ndarray) and v.dtype.kind in "fc"


def _richest_sample(op, rng):
    """The differentiable sample with the most float inputs and dims (broadcasting)."""
    samples = [s for s in op.samples(rng)
               if s.grad and any(_is_float_array(a) for a in flat_tensors(s.args))]
    if not samples:
        return None
    return max(samples, key=lambda s: sum((1000 + a.ndim) for a in flat_tensors(s.args)
                                          if _is_float_array(a)))


def _split_arrays(value, arrays: list):
    """Replace each numpy array in `value` by an index into `arrays` (a template)."""
    if isinstance(value, np.ndarray):
        arrays.append(value)
        return _Slot(len(arrays) - 1)
    if isinstance(value, (list, tuple)):
        return type(value)(_split_arrays(v, arrays) for v in value)
    return value


class _Slot:
    def __init__(self, index):
        self.index = index


def _fill(template, values):
    if isinstance(template, _Slot):
        return values[template.index]
    if isinstance(template, (list, tuple)):
        return type(template)(_fill(t, values) for t in template)
    return template


def _leaves(v):
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _differentiable(values):
    return [v for v in values if v.dtype.is_floating_point or v.dtype.is_complex]


def _op_graph(op, sample):
    """The one-op forward graph over the sample's arrays, and the arrays."""
    arrays: list = []
    args_t = _split_arrays(sample.args, arrays)
    kwargs = sample.kwargs

    def fn(*values):
        return op(*_fill(args_t, values), **kwargs)

    metas = [meta_of(ember.tensor(a)) for a in arrays]
    graph, constants = build_graph(fn, metas)
    return graph, constants, arrays


def differentiable_op_graph(op, rng):
    """(sample, graph, constants, arrays, wrt) for the op's richest differentiable sample:
    the graph of one call, its input arrays, and the float inputs' positions; skips
    the test when the op has no differentiable sample."""
    sample = _richest_sample(op, rng)
    if sample is None:
        pytest.skip(f"{op.name}: no differentiable sample")
    graph, constants, arrays = _op_graph(op, sample)
    wrt = [i for i, a in enumerate(arrays) if _is_float_array(a)]
    return sample, graph, constants, arrays, wrt


def _eager_grads(fn, inputs, wrt, cotangents):
    leaves = [ember.tensor(a) for a in inputs]
    for i in wrt:
        leaves[i].requires_grad_(True)
    ember.manual_seed(0)
    outs = _differentiable(_leaves(fn(*leaves)))
    live = [(o, c) for o, c in zip(outs, cotangents) if o.requires_grad]
    if not live:
        return [None] * len(wrt)
    # one real loss whose gradient w.r.t. each output is its cotangent, torch's convention
    # (Re<c, o> for complex o); passing several outputs of one multi-output node to
    # autograd.grad directly trips the tape's seeding
    loss = sum(_real_inner(o, c) for o, c in live)
    return ember.autograd.grad(loss, [leaves[i] for i in wrt], allow_unused=True)


def _real_inner(o, c):
    if o.dtype.is_complex:
        return ember.real(o * ember.conj(c)).sum()
    return (o * c).sum()


def _joint_grads(joint, constants, inputs, cotangents):
    ember.manual_seed(0)
    _, grads = call_graph(joint, [ember.tensor(a) for a in inputs] + list(cotangents),
                          constants)
    return grads


def _check_roundtrip(joint):
    verify(joint)
    assert graphs_equal(parse(ember.ir.print_graph(joint)), joint), "print/parse round trip changed the graph"


@pytest.mark.parametrize("op", TESTED, ids=lambda op: op.name)
def test_joint_graph_matches_eager_tape_for_op(op, rng):
    sample, graph, constants, arrays, wrt = differentiable_op_graph(op, rng)
    joint = joint_graph(graph, wrt)
    _check_roundtrip(joint)
    cots = [ember.tensor(rng.standard_normal(p.meta["val"].shape).astype(
        p.meta["val"].dtype.np_dtype)) for p in cotangent_placeholders(joint)]
    want = _eager_grads(lambda *xs: op(*_fill(_split_arrays(sample.args, []), xs),
                                       **sample.kwargs), arrays, wrt, cots)
    got = _joint_grads(joint, constants, arrays, cots)
    for i, (g, w) in enumerate(zip(got, want)):
        what = f"{op.name} {sample} grad of input {wrt[i]}"
        expected = np.zeros_like(arrays[wrt[i]]) if w is None else as_numpy(w)
        assert_close(g, expected, rtol=1e-4, atol=1e-5, what=what)


# --- models ----------------------------------------------------------------------------------
def _models():
    from ember import models
    return {
        "mlp": (lambda: models.mlp(in_features=12, hidden=(8, 6), num_classes=4),
                (3, 12)),
        "small_cnn": (lambda: models.small_cnn(in_channels=1, num_classes=3), (2, 1, 12, 12)),
        "resnet18": (lambda: models.resnet18(num_classes=3), (1, 3, 16, 16)),
        "transformer_classifier": (lambda: models.transformer_classifier(**_small_transformer()),
                                   None),
    }


def _small_transformer() -> dict:
    from ember import models
    import inspect
    params = inspect.signature(models.TransformerClassifier.__init__).parameters
    small = dict(vocab_size=20, d_model=8, nhead=2, num_layers=1, dim_feedforward=16,
                 num_classes=3, max_len=8, dropout=0.0)
    return {k: v for k, v in small.items() if k in params}


MODELS = ["mlp", "small_cnn", "resnet18", "transformer_classifier"]


def _model_input(name, shape, model, rng):
    if name == "transformer_classifier":
        vocab = getattr(model, "vocab_size", None) or 20
        return ember.tensor(rng.integers(0, min(vocab, 20), size=(2, 5)).astype(np.int64))
    return ember.tensor(rng.standard_normal(shape).astype(np.float32))


@pytest.mark.parametrize("name", MODELS)
def test_joint_graph_matches_eager_tape_for_model(name, rng):
    make, shape = _models()[name]
    model = make()
    model.eval()          # no dropout, running stats fixed: graph and eager see one function
    x = _model_input(name, shape, model, rng)
    joint, constants = trace_joint(model, [x])
    _check_roundtrip(joint)
    params = [p for _, p in model.named_parameters()]
    (cot,) = [ember.tensor(rng.standard_normal(p.meta["val"].shape).astype(np.float32))
              for p in cotangent_placeholders(joint)]
    _, got = call_graph(joint, [p.detach() for p in params] + [x, cot], constants)
    want = ember.autograd.grad(model(x), params, cot, allow_unused=True)
    assert len(got) == len(params)
    for (pname, p), g, w in zip(model.named_parameters(), got, want):
        expected = np.zeros(tuple(p.shape), np.float32) if w is None else as_numpy(w)
        assert_close(g, expected, rtol=1e-4, atol=1e-5, what=f"{name}.{pname}")


# --- semantics -------------------------------------------------------------------------------
def _graph(fn, *shapes, dtype=F32):
    graph, _ = build_graph(fn, [TensorMeta(s, dtype) for s in shapes], ["x", "y", "z"][:len(shapes)])
    return graph


def test_value_used_many_times_accumulates_and_seed_ones_has_no_cotangent():
    joint = joint_graph(_graph(lambda x: (x * x + x.sin() * x).sum(), (5,)), [0], seed="ones")
    assert not cotangent_placeholders(joint)
    x = ember.randn(5)
    _, (g,) = call_graph(joint, [x])
    expected = 2 * x.numpy() + np.cos(x.numpy()) * x.numpy() + np.sin(x.numpy())
    assert_close(g, expected, rtol=1e-5, atol=1e-6)


def test_unused_input_gets_zeros_or_torchs_error():
    graph = _graph(lambda x, y: x.exp(), (3,), (2, 2))
    _, (gx, gy) = call_graph(joint_graph(graph, [0, 1]),
                             [ember.randn(3), ember.randn(2, 2), ember.ones(3)])
    assert_close(gy, np.zeros((2, 2), np.float32))
    with pytest.raises(AutogradError, match=r"input 1\) appears to not have been used"):
        joint_graph(graph, [0, 1], allow_unused=False)


def test_integer_outputs_get_no_cotangent_and_phases_are_marked():
    joint = joint_graph(_graph(lambda x: (x.argmax(), x.tanh()), (4,)), [0])
    cots = cotangent_placeholders(joint)
    assert [p.name for p in cots] == ["grad_out0"]
    assert cots[0].meta["val"].shape == (4,)
    phases = {n.name: n.meta["phase"] for n in joint.nodes}
    assert phases["x"] == "forward" and phases["grad_out0"] == "backward"
    assert any(n.meta["phase"] == "backward" and n.op == "call_function" for n in joint.nodes)


def test_non_differentiable_op_stops_gradient_like_eager():
    graph = _graph(lambda x: x.sin() * (x > 0), (6,))
    joint = joint_graph(graph, [0], seed=None)
    x, c = ember.randn(6), ember.randn(6)
    _, (g,) = call_graph(joint, [x, c])
    xe = x.detach().requires_grad_()
    (want,) = ember.autograd.grad(xe.sin() * (xe > 0), [xe], c)
    assert_close(g, want)


def test_seed_ones_rejects_non_scalar_and_bad_wrt_is_named():
    graph = _graph(lambda x: x.exp(), (3,))
    with pytest.raises(AutogradError, match=r"only for one scalar output.*\[3\]"):
        joint_graph(graph, [0], seed="ones")
    with pytest.raises(AutogradError, match=r"wrt entry 4"):
        joint_graph(graph, [4])
    int_graph = _graph(lambda x: x * 2, (3,), dtype=ember.int64)
    with pytest.raises(AutogradError, match="floating point and complex"):
        joint_graph(int_graph, [0])


def test_inplace_op_is_functionalized():
    def f(x):
        y = x * 2
        y.add_(x.sin())
        return (y * y).sum()
    joint = joint_graph(_graph(f, (4,)), [0], seed="ones")
    assert not any(getattr(n.target, "name", "").endswith("_") for n in joint.nodes)
    verify(joint)
    x = ember.randn(4)
    _, (g,) = call_graph(joint, [x])
    xe = x.detach().requires_grad_()
    (want,) = ember.autograd.grad(f(xe), [xe])
    assert_close(g, want)


def test_inplace_update_of_input_or_view_is_refused_with_the_line():
    def on_input(x):
        x.mul_(2)
        return x.sum()

    def on_view(x):
        y = x * 1
        ember.select(y, 0, 0).mul_(2)
        return y.sum()
    with pytest.raises(AutogradError, match=r"mul_: in-place update of graph input.*test_"):
        joint_graph(_graph(on_input, (3,)), [0], seed="ones")
    with pytest.raises(AutogradError, match=r"mul_: in-place update of %\w+, which is or has a "
                                            r"view"):
        joint_graph(_graph(on_view, (3,)), [0], seed="ones")


def test_wrt_get_attr_parameter():
    w = ember.randn(3)
    graph, constants = build_graph(lambda x: (x * w).sum(), [TensorMeta((3,), F32)])
    (name,) = constants
    joint = joint_graph(graph, [name], seed="ones")
    x = ember.randn(3)
    _, (g,) = call_graph(joint, [x], constants)
    assert_close(g, x)


def test_op_without_derivative_on_the_path_names_op_and_line(monkeypatch):
    graph, _ = build_graph(lambda x: x.exp().sin(), [TensorMeta((3,), F32)])
    monkeypatch.setattr(OPS["sin"], "derivative", None)
    with pytest.raises(AutogradError, match=r"sin: the derivative is not implemented.*"
                                            r"test_autograd_pass.py:\d+"):
        joint_graph(graph, [0], seed=None)


def test_opaque_call_on_the_path_is_refused():
    graph, _ = build_graph(lambda x: x.exp(), [TensorMeta((3,), F32)])
    exp = next(n for n in graph.nodes if n.op == "call_function")
    with graph.inserting_after(exp):
        opaque = graph.call_method("my_method", (exp,))
    opaque.meta["val"] = exp.meta["val"]
    graph.output_node.args = (opaque,)
    with pytest.raises(AutogradError, match=r"cannot differentiate through call_method "
                                            r"my_method"):
        joint_graph(graph, [0])
