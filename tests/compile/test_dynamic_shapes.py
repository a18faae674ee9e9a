"""Dynamic shapes in ember.compile (frontend/compile_dynamic.py, ir/symdim.py): one
symbolic compile after the second size, compiled-vs-eager over many sizes, the log's
reasons, and the symbolic type's text."""
import logging

import numpy as np
import pytest

import ember
from ember.ir.meta import TensorMeta
from ember.ir.parser import parse
from ember.ir.printer import print_graph
from ember.ir.symdim import SymDim, verify_symbolic


def _entries(fast):
    return [type(e).__name__ for e in fast.dispatcher.entries.values()]


def _check_sizes(model, shape_of, sizes, atol=1e-4, **compile_kwargs):
    fast = ember.compile(model, **compile_kwargs)
    with ember.no_grad():
        for n in sizes:
            x = ember.randn(*shape_of(n))
            np.testing.assert_allclose(fast(x).numpy(), model(x).numpy(), atol=atol, rtol=1e-4,
                                       err_msg=f"size {n}")
    return fast


def test_mlp_sizes_1_to_17_one_dynamic_compile():
    model = ember.models.mlp(in_features=12, hidden=(16,), num_classes=5).eval()
    fast = _check_sizes(model, lambda n: (n, 12), range(1, 18))
    # size 1 is specialized (as torch does), size 2 makes dim 0 dynamic: two entries in all
    assert _entries(fast) == ["InferenceEntry", "DynamicEntry"]
    entry = fast.dispatcher.dynamic.entries[0]
    assert entry.kernels_generated == fast.stats.kernels     # no codegen after the first size


def test_small_cnn_sizes_1_to_17():
    model = ember.models.small_cnn().eval()
    fast = _check_sizes(model, lambda n: (n, 1, 28, 28), range(1, 18))
    assert _entries(fast) == ["InferenceEntry", "DynamicEntry"]


def test_transformer_encoder_layer_sizes_1_to_17():
    layer = ember.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True).eval()
    fast = _check_sizes(layer, lambda n: (n, 5, 16), range(1, 18))
    assert _entries(fast) == ["InferenceEntry", "DynamicEntry"]


def test_compiles_once_after_the_second_size_and_counts_no_more():
    model = ember.nn.Sequential(ember.nn.Linear(8, 8), ember.nn.GELU()).eval()
    fast = ember.compile(model)
    with ember.no_grad():
        fast(ember.randn(3, 8))
        assert len(fast.plans) == 1
        fast(ember.randn(5, 8))
        assert len(fast.plans) == 2 and _entries(fast)[-1] == "DynamicEntry"
        for n in (2, 7, 30, 64, 5):
            fast(ember.randn(n, 8))
    assert len(fast.plans) == 2


def test_dynamic_true_is_symbolic_from_the_first_call_and_false_never():
    model = ember.nn.Linear(4, 3).eval()
    with ember.no_grad():
        eager = _check_sizes(model, lambda n: (n, 4), (3, 4, 5), dynamic=True)
        assert _entries(eager) == ["DynamicEntry"]
        never = _check_sizes(model, lambda n: (n, 4), (3, 4, 5), dynamic=False)
        assert _entries(never) == ["InferenceEntry"] * 3


def test_log_names_the_recompile_and_the_dynamic_dim(caplog):
    fast = ember.compile(lambda x: (x * 2).sum(1))
    with caplog.at_level(logging.INFO, logger="ember.compile"):
        fast(ember.randn(3, 4))
        fast(ember.randn(6, 4))
    text = caplog.text
    assert "tensor 'x' size mismatch at index 0: expected 3, actual 6" in text
    assert "making dim 0 of 'x' dynamic (s0, range [2, inf))" in text


def test_a_size_used_nonlinearly_specializes_and_names_the_op(caplog):
    # n * n * 2 elements: not a*s0 + c, so each shape gets its own plan (never wrong)
    def f(x):
        n = x.shape[0]
        return x.unsqueeze(0).expand(n, n, 2).reshape(n * n * 2) * 2
    fast = ember.compile(f)
    with caplog.at_level(logging.INFO, logger="ember.compile"):
        for n in (2, 3, 4):
            x = ember.randn(n, 2)
            np.testing.assert_allclose(fast(x).numpy(), f(x).numpy(), rtol=1e-5)
    assert "DynamicEntry" not in _entries(fast)
    assert "cannot make dim 0 of 'x' dynamic" in caplog.text
    assert "nonlinear in the dynamic size" in caplog.text


def test_other_static_dims_still_guard():
    fast = ember.compile(lambda x: x.softmax(-1))
    with ember.no_grad():
        for shape in ((2, 4), (3, 4), (5, 4), (5, 6)):
            x = ember.randn(*shape)
            np.testing.assert_allclose(fast(x).numpy(), x.softmax(-1).numpy(), rtol=1e-5)
    assert _entries(fast).count("DynamicEntry") == 1 and len(fast.plans) == 3


SYMBOLIC_GRAPH = """\
graph(%x: f32[s0,128]):
  %0 = view(%x, [sym("128*s0")]) : f32[128*s0]
  %1 = relu(%0) : f32[128*s0]
  return %1
"""


def test_symbolic_type_golden_text_round_trips_and_verifies():
    graph = parse(SYMBOLIC_GRAPH)
    x = graph.placeholders[0].meta["val"]
    assert x.shape == (SymDim(1, 0), 128) and x.strides == (128, 1)
    assert print_graph(graph) == SYMBOLIC_GRAPH
    verify_symbolic(graph)
    assert str(TensorMeta((SymDim.parse("s0+1"), 3), ember.float32).shape[0]) == "s0+1"


def test_compiled_symbolic_graph_prints_s0():
    fast = ember.compile(ember.nn.Linear(6, 2).eval(), dynamic=True)
    with ember.no_grad():
        fast(ember.randn(4, 6))
    text = print_graph(fast.dispatcher.dynamic.entries[0].symbolic_graph())
    assert "graph(%arg0: f32[s0,6])" in text and ": f32[s0,2]" in text
