"""ember.compile: compiled equals eager for every registry op with samples, every
built-in model, and random fused chains; guards recompile; buffers are reused."""
import gc

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import ember
from ember.ir.registry import OPS, Tag
from ember.runtime.allocator import default_allocator
from ember.runtime.plan import page_faults


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
    g, w = got.detach().numpy(), want.detach().numpy()
    if w.dtype.kind in "fc":
        tol = 1e-4 if loose else 2e-5
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol, equal_nan=True)
    else:
        np.testing.assert_array_equal(g, w)


def _op_cases():
    rng = np.random.default_rng(3)
    cases = []
    for op in sorted(OPS.values(), key=lambda o: o.name):
        if op.samples is None or op.tags & {Tag.INPLACE, Tag.RANDOM, Tag.NONDETERMINISTIC}:
            continue
        samples = op.samples(rng)
        if samples:
            cases.append(pytest.param(op, samples[0], id=op.name))
    return cases


def _arrays_in(value, found):
    if isinstance(value, np.ndarray):
        found.append(value)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _arrays_in(v, found)
    elif isinstance(value, dict):
        for v in value.values():
            _arrays_in(v, found)
    return found


def _substitute(value, tensors):
    if isinstance(value, np.ndarray):
        return next(tensors)
    if isinstance(value, (list, tuple)):
        return type(value)(_substitute(v, tensors) for v in value)
    if isinstance(value, dict):
        return {k: _substitute(v, tensors) for k, v in value.items()}
    return value


@pytest.mark.parametrize("op, sample", _op_cases())
def test_every_op_compiled_equals_eager(op, sample):
    tensors = [ember.tensor(a) for a in _arrays_in((sample.args, sample.kwargs), [])]

    def fn(*ts):
        args, kwargs = _substitute((sample.args, sample.kwargs), iter(ts))
        return op(*args, **kwargs)
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
    gc.collect()
    reserved = default_allocator().reserved_bytes
    before = page_faults()
    for _ in range(5):
        f(x, w)
    gc.collect()
    assert default_allocator().reserved_bytes == reserved
    # a fresh 512 KiB intermediate would fault ~128 pages per call
    assert page_faults() - before < 5 * 64


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
