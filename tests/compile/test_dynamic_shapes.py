"""Dynamic shapes in ember.compile (compiler/compile_dynamic.py, ir/symdim.py): one
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
        fast(ember.randn(1, 4))            # outside s0's range: a plan of its own
    text = caplog.text
    assert "tensor 'x' size mismatch at index 0: expected 3, actual 6" in text
    assert "making dim 0 of 'x' dynamic (s0, range [2, inf))" in text
    assert "size 1 of dim 0 of 'x' is outside s0's range [2, inf)" in text
    assert _entries(fast) == ["InferenceEntry", "DynamicEntry", "InferenceEntry"]


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


class _Mixed(ember.nn.Module):
    """embedding, layer_norm, batch_norm (eval), cat along features, view/bmm/flatten,
    linear and softmax: each keeps the batch dim symbolic."""

    def __init__(self):
        super().__init__()
        self.emb, self.ln = ember.nn.Embedding(20, 8), ember.nn.LayerNorm(8)
        self.bn, self.lin = ember.nn.BatchNorm1d(8), ember.nn.Linear(16, 4)

    def forward(self, idx, feats):
        e = self.bn(self.ln(self.emb(idx)))
        h = ember.cat([e, feats], 1)
        a = h.view(h.shape[0], 4, 4)
        b = ember.bmm(a, a.transpose(1, 2)).flatten(1)
        return self.lin(h).softmax(-1), b.sum(1)


def test_embedding_norms_cat_bmm_keep_the_symbol_and_reuse_every_kernel():
    model = _Mixed().eval()
    fast = ember.compile(model)
    with ember.no_grad():
        for n in (3, 4, 9, 2, 13):
            idx, feats = ember.randint(0, 20, (n,)), ember.randn(n, 8)
            for got, want in zip(fast(idx, feats), model(idx, feats)):
                np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5, rtol=1e-5)
            if n == 4:
                generated = fast.dispatcher.dynamic.entries[0].kernels_generated
    assert _entries(fast) == ["InferenceEntry", "DynamicEntry"]
    assert fast.dispatcher.dynamic.entries[0].kernels_generated == generated


def test_reduction_over_the_dynamic_dim_is_right():
    # the batch dim is the reduced one here: such a kernel is generated per size, still right
    fast = ember.compile(lambda x: (x - x.mean(0)).abs().sum(0))
    with ember.no_grad():
        for n in (2, 5, 3, 8):
            x = ember.randn(n, 6)
            np.testing.assert_allclose(fast(x).numpy(), (x - x.mean(0)).abs().sum(0).numpy(),
                                       rtol=1e-5, atol=1e-5)
    assert _entries(fast) == ["InferenceEntry", "DynamicEntry"]


def test_graph_break_functions_still_run_with_new_sizes(caplog):
    def f(x):
        y = x * 2
        if float(y.sum()) > 1e9:           # data-dependent: a graph break
            return y
        return y + 1
    fast = ember.compile(f)
    with caplog.at_level(logging.INFO, logger="ember.compile"):
        for n in (2, 3, 4):
            x = ember.randn(n, 3)
            np.testing.assert_allclose(fast(x).numpy(), f(x).numpy(), rtol=1e-6)


def _branchy(x):
    if x.shape[0] > 4:                    # a branch on the size: torch guards on it
        return x * 2
    return x - 1


def _clamped(x):
    return x[:min(x.shape[0], 4)] + 1     # min() compares the size too


def _returns_size(x):
    return x * 3, x.shape[0]


@pytest.mark.parametrize("fn", [_branchy, _clamped, _returns_size],
                         ids=["branch", "min", "returned-size"])
def test_size_dependent_python_specializes_and_stays_right(fn, caplog):
    fast = ember.compile(fn)
    with caplog.at_level(logging.INFO, logger="ember.compile"):
        for n in (5, 6, 2, 3, 7):
            x = ember.randn(n, 3)
            got, want = fast(x), fn(x)
            if isinstance(want, tuple):
                assert got[1] == want[1]
                got, want = got[0], want[0]
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
    assert "DynamicEntry" not in _entries(fast)
    assert "cannot make dim 0 of 'x' dynamic" in caplog.text
    if fn is not _returns_size:
        assert "compares a dynamic size at test_dynamic_shapes.py:" in caplog.text


def test_lstm_batch_is_dynamic_with_its_folded_zero_state():
    # h0 = zeros(layers, batch, hidden) folds into batch-sized constants that repeat one
    # row: they are rebuilt per size, so the batch dim still becomes s0
    lstm = ember.nn.LSTM(3, 4, bidirectional=True).eval()
    fast = ember.compile(lstm)
    with ember.no_grad():
        for b in (2, 3, 6, 4):
            x = ember.randn(3, b, 3)
            (out, (h, c)), (ref, (ref_h, ref_c)) = fast(x), lstm(x)
            for got, want in ((out, ref), (h, ref_h), (c, ref_c)):
                np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)
    assert _entries(fast) == ["InferenceEntry", "DynamicEntry"]


def test_plans_per_size_stay_within_their_budget(monkeypatch):
    import ember.compiler.compile_dynamic as dynamic
    monkeypatch.setattr(dynamic, "PLAN_BYTES_PER_ENTRY", 1)
    model = ember.nn.Sequential(ember.nn.Linear(4, 8), ember.nn.ReLU(), ember.nn.Linear(8, 2))
    fast = _check_sizes(model.eval(), lambda n: (n, 4), (2, 3, 4, 5, 3))
    assert len(fast.dispatcher.dynamic.entries[0].plans) == 1
