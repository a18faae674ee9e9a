"""A converted model's eager forward with its residual adds fused into the convolutions
(ao/quantization/fx/fused_forward.py): the same integers as the graph run node by node
(conv, then quantized_add) on every call, torch.ao's printed form kept, and the pair run
unfused wherever something could see the conv's own result (a hook on it)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import ember
from ember.fx import Interpreter
from tests.quant.test_qresidual import converted_twins
from tests.quant.quant_twins import output_scale

pytestmark = pytest.mark.filterwarnings("ignore")
torch.backends.quantized.engine = "x86"


def _node_by_node(gm, x):
    """The converted graph's value run op by op (no fused call)."""
    return Interpreter(gm).run(x)


def _fused(gm) -> bool:
    return type(gm).forward.__code__.co_filename.startswith("<ember-fx-fused")


def _inputs(rng, n=3, shape=(4, 3, 18, 18)):
    return [ember.tensor(rng.standard_normal(shape).astype(np.float32)) for _ in range(n)]


def test_fused_forward_equals_the_graph_and_torch_ao(rng):
    t_q, e_q = converted_twins(rng)
    assert _fused(e_q)
    assert e_q.code.count("quantized_add(") == 3 and "residual_conv_add" not in e_q.code
    with ember.no_grad():
        for x in _inputs(rng) + _inputs(rng, 2, (3, 3, 14, 14)):     # first and later calls
            got = e_q(x).numpy()
            np.testing.assert_array_equal(got, _node_by_node(e_q, x).numpy())
            t_out = t_q(torch.from_numpy(x.numpy())).detach().numpy()
            assert (t_out.argmax(1) == got.argmax(1)).mean() >= 0.99
            assert np.abs(t_out - got).max() <= 3.01 * output_scale(e_q)


def test_fused_calls_run_the_fused_kernel(rng, monkeypatch):
    from ember.ao.quantization.fx import fused_forward
    _, e_q = converted_twins(rng)
    taken = []
    plain = fused_forward.conv2d_add

    def counted(*args):
        value = plain(*args)
        taken.append(value is not None)
        return value
    monkeypatch.setattr(fused_forward, "conv2d_add", counted)
    with ember.no_grad():
        for x in _inputs(rng):
            e_q(x)
    # the first call of each conv takes the checked path (its meta rule), later ones fuse
    assert taken == [False] * 3 + [True] * 6


def test_a_hook_on_the_conv_sees_its_own_result(rng):
    _, e_q = converted_twins(rng)
    conv = e_q.get_submodule(next(str(n.target) for n in e_q.graph.nodes
                                  if n.op.value == "call_module" and
                                  any(getattr(u.target, "name", None) == "quantized_add"
                                      for u in n.users)))
    seen = []
    handle = conv.register_forward_hook(lambda m, args, out: seen.append(out))
    with ember.no_grad():
        for x in _inputs(rng, 2):
            np.testing.assert_array_equal(e_q(x).numpy(), _node_by_node(e_q, x).numpy())
    assert len(seen) == 4          # two calls: each the hooked forward and the oracle's
    handle.remove()


def test_recompile_copy_and_state_load_keep_the_values(rng):
    _, e_q = converted_twins(rng)
    _, other = converted_twins(np.random.default_rng(7))
    xs = _inputs(rng, 2)
    with ember.no_grad():
        e_q.recompile()
        assert _fused(e_q)
        twin = copy.deepcopy(e_q)
        e_q.load_state_dict(other.state_dict())     # other qparams: the constants change
        for x in xs:
            np.testing.assert_array_equal(e_q(x).numpy(), _node_by_node(e_q, x).numpy())
            np.testing.assert_array_equal(e_q(x).numpy(), other(x).numpy())
            np.testing.assert_array_equal(twin(x).numpy(), _node_by_node(twin, x).numpy())


def test_large_residuals_run_as_the_pair(rng, monkeypatch):
    """Above FUSED_RESIDUAL_MAX elements the pair runs unfused (operands larger than any
    measured): the same integers."""
    from ember.frontend import quantized as fq
    _, e_q = converted_twins(rng)
    xs = _inputs(rng, 3)
    with ember.no_grad():
        fused = [e_q(x).numpy() for x in xs]
        monkeypatch.setattr(fq, "FUSED_RESIDUAL_MAX", 0)
        for x, want in zip(xs, fused):
            np.testing.assert_array_equal(e_q(x).numpy(), want)
            np.testing.assert_array_equal(e_q(x).numpy(), _node_by_node(e_q, x).numpy())


def test_a_torch_function_mode_sees_the_add(rng):
    """Under a TorchFunctionMode the pair runs unfused: the mode sees each quantized_add
    the graph makes, and the values are the graph's."""
    from ember.overrides import TorchFunctionMode

    class Seen(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.names = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.names.append(getattr(func, "__name__", str(func)))
            return func(*args, **(kwargs or {}))
    _, e_q = converted_twins(rng)
    x = _inputs(rng, 1)[0]
    with ember.no_grad():
        e_q(x)
        want = _node_by_node(e_q, x).numpy()
        with Seen() as mode:
            got = e_q(x).numpy()
    np.testing.assert_array_equal(got, want)
    assert sum("quantized_add" in n for n in mode.names) == 3
