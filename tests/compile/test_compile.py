"""ember.compile: compiled equals eager for every registry op with samples, every
built-in model, and random fused chains; guards recompile; buffers are reused."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import ember
from ember.ir.registry import OPS, Tag
from tests.compile.helpers import assert_steady_calls_allocate_nothing
from tests.op_samples import assert_arrays_close, sample_call, sample_cases


def _close(got, want, loose=False):
    if isinstance(want, (tuple, list)):
        assert isinstance(got, (tuple, list)) and len(got) == len(want)
        for g, w in zip(got, want):
            _close(g, w, loose)
        return
    if not isinstance(want, ember.Tensor):
        assert got == want
        return
    assert got.dtype == want.dtype and tuple(got.shape) == tuple(want.shape)
    tol = 1e-4 if loose else 2e-5
    assert_arrays_close(got.detach().numpy(), want.detach().numpy(), rtol=tol, atol=tol)


# ops whose results are quantized tensors (compared by integers and qparams below)
_QUANTIZED_RESULT = {"quantize_per_tensor", "quantize_per_channel"}
_COMPILED_OPS = [op for op in sorted(OPS.values(), key=lambda o: o.name)
                 if not op.tags & {Tag.INPLACE, Tag.RANDOM, Tag.NONDETERMINISTIC,
                                   Tag.DYNAMIC_SHAPE}
                 and op.name not in _QUANTIZED_RESULT]


def test_compile_keeps_quantized_values():
    x = ember.randn(3, 4)
    want = ember.quantize_per_tensor(x, 0.1, 3, ember.quint8)
    got = ember.compile(lambda t: ember.quantize_per_tensor(t, 0.1, 3, ember.quint8))(x)
    assert got.dtype == ember.quint8 and (got.q_scale(), got.q_zero_point()) == (0.1, 3)
    assert np.array_equal(got.int_repr().numpy(), want.int_repr().numpy())


@pytest.mark.parametrize("op, sample", sample_cases(_COMPILED_OPS, per_op=1, seed=3,
                                                 numbered=False))
def test_every_op_compiled_equals_eager(op, sample):
    fn, tensors = sample_call(op, sample)
    with ember.no_grad():
        want = fn(*tensors)
        got = ember.compile(fn)(*tensors)
    _close(got, want, loose=True)


def _models():
    return [
        pytest.param(lambda: ember.models.mlp(64, (32, 16)), (4, 64), id="mlp"),
        pytest.param(lambda: ember.models.small_cnn(), (2, 1, 28, 28), id="small_cnn"),
        pytest.param(lambda: ember.models.resnet18(num_classes=10), (1, 3, 32, 32), id="resnet18"),
        pytest.param(lambda: ember.models.resnet50(num_classes=10), (1, 3, 32, 32), id="resnet50"),
    ]


@pytest.mark.parametrize("make, shape", _models())
def test_models_compiled_equal_eager(make, shape):
    model = make().eval()
    x = ember.randn(*shape)
    with ember.no_grad():
        _close(ember.compile(model)(x), model(x), loose=True)


def test_transformer_models_compiled_equal_eager():
    layer = ember.nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True).eval()
    x = ember.randn(2, 7, 32)
    clf = ember.models.transformer_classifier(vocab_size=50, d_model=32, nhead=4, num_layers=1,
                                              dim_feedforward=64, max_len=16).eval()
    tokens = ember.randint(0, 50, (2, 9))
    with ember.no_grad():
        _close(ember.compile(layer)(x), layer(x), loose=True)
        _close(ember.compile(clf)(tokens), clf(tokens), loose=True)


def test_channels_last_input():
    model = ember.models.small_cnn().eval()
    x = ember.randn(2, 1, 28, 28).contiguous(memory_format=ember.channels_last)
    with ember.no_grad():
        _close(ember.compile(model)(x), model(x), loose=True)


def test_guards_recompile_on_new_shapes_and_dtypes():
    f = ember.compile(lambda x: (x * 2).exp().sum(-1))
    a, b = ember.randn(3, 4), ember.randn(5, 4)
    _close(f(a), (a * 2).exp().sum(-1))
    _close(f(b), (b * 2).exp().sum(-1))
    c = ember.randn(5, 4, dtype=ember.float64)
    _close(f(c), (c * 2).exp().sum(-1))
    assert len(f.plans) == 3
    f(ember.randn(3, 4))
    assert len(f.plans) == 3


def test_results_are_not_overwritten_by_later_calls():
    f = ember.compile(lambda x: ember.softmax(x * 3, -1))
    a, b = ember.randn(4, 8), ember.randn(4, 8)
    ya = f(a)
    kept = ya.numpy().copy()
    f(b)
    np.testing.assert_array_equal(ya.numpy(), kept)


def test_steady_state_calls_allocate_no_large_buffers():
    f = ember.compile(lambda x, w: ember.nn.functional.gelu(x @ w).sum(0))
    x, w = ember.randn(256, 512), ember.randn(512, 512)
    for _ in range(3):
        f(x, w)
    # a fresh 512 KiB intermediate would fault ~128 pages per call
    assert_steady_calls_allocate_nothing(lambda: f(x, w), max_faults_per_call=64)


def test_decorator_and_unknown_backend():
    @ember.compile
    def f(x):
        return x.relu() + 1
    x = ember.randn(5)
    _close(f(x), x.relu() + 1)
    with pytest.raises(ember.EmberError, match="unknown backend"):
        ember.compile(f, backend="tpu")


_UNARY = ["relu", "exp", "tanh", "sigmoid", "neg", "abs", "sin"]
_BINARY = ["add", "mul", "sub", "maximum"]


@settings(deadline=None, max_examples=12)
@given(st.lists(st.tuples(st.sampled_from(_UNARY + _BINARY), st.integers(0, 3)),
                min_size=1, max_size=6),
       st.sampled_from([(5,), (3, 7), (2, 3, 17)]), st.sampled_from([None, -1, 0]))
def test_random_chains_compiled_equal_eager(program, shape, reduce_dim):
    def fn(x, y):
        values = [x, y]
        for name, pick in program:
            op = OPS[name]
            a = values[pick % len(values)]
            values.append(op(a) if name in _UNARY else op(a, values[(pick + 1) % len(values)]))
        out = values[-1]
        return out if reduce_dim is None else out.sum(reduce_dim)
    x, y = ember.randn(*shape), ember.randn(*shape)
    _close(ember.compile(fn)(x, y), fn(x, y), loose=True)


def test_memory_plan_arenas_cut_resnet_buffers():
    model = ember.models.resnet18(num_classes=10).eval()
    x = ember.randn(2, 3, 64, 64)
    f = ember.compile(model)
    with ember.no_grad():
        _close(f(x), model(x), loose=True)
    plan = f.last[0]
    specs = [sp for st in plan.steps for sp in st.out_specs if sp.persistent]
    unplanned = sum(int(np.prod(sp.meta.shape)) * sp.meta.dtype.itemsize for sp in specs)
    print(f"persistent buffers: {plan.reserved_bytes} B planned vs {unplanned} B one each")
    assert plan.reserved_bytes <= 0.6 * unplanned
