"""The seen-call path (eager_fast.seen_call): a registry op call seen before with the
same metadata skips binding and dispatch. Its results, gradients, errors, views and
version counters must equal the full path's (FAST_CALL emptied) and PyTorch's."""
import numpy as np
import pytest
import torch

import ember
import ember.nn.functional as EF
from ember.frontend import eager_fast
from ember.ir import registry

RNG = np.random.default_rng(3)


@pytest.fixture
def full_path(monkeypatch):
    """Within the test, every op call takes the full path."""
    def off():
        monkeypatch.setattr(registry, "FAST_CALL", [])
    return off


def _x(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


CALLS = {
    "reshape": lambda m, x: x.reshape(6, 4),
    "view": lambda m, x: x.view(-1),
    "flatten": lambda m, x: x.flatten(1),
    "permute": lambda m, x: x.permute(2, 0, 1),
    "transpose": lambda m, x: x.transpose(0, 2),
    "contiguous": lambda m, x: x.transpose(0, 2).contiguous(),
    "relu": lambda m, x: m.nn.functional.relu(x),
    "sum": lambda m, x: x.sum(),
    "sum_dims_kw": lambda m, x: x.sum(dim=[0, 2], keepdim=True),
    "mean": lambda m, x: x.mean(1),
    "cat": lambda m, x: m.cat([x, x * 2], 1),
    "matmul": lambda m, x: m.matmul(x, x.transpose(1, 2)),
    "softmax": lambda m, x: m.nn.functional.softmax(x, -1),
    "log_softmax": lambda m, x: m.nn.functional.log_softmax(x, dim=1),
    "exp": lambda m, x: m.exp(x),
    "pow_int": lambda m, x: x.pow(2),
    "pow_bool": lambda m, x: x.pow(True),
    "amax": lambda m, x: x.amax(1, True),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_seen_calls_match_torch_and_the_full_path(name, full_path):
    fn = CALLS[name]
    x = _x(2, 3, 4)
    results = []
    for _ in range(3):                      # the first call learns, the others are seen
        xe = ember.tensor(x, requires_grad=True)
        out = fn(ember, xe)
        out.backward(ember.ones_like(out))
        results.append((out.detach().numpy(), xe.grad.numpy(), out.grad_fn.name_(),
                        out.stride(), out.dtype))
    xt = torch.tensor(x, requires_grad=True)
    tout = fn(torch, xt)
    tout.backward(torch.ones_like(tout))
    for value, grad, node, stride, dtype in results:
        np.testing.assert_allclose(value, tout.detach().numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-6, atol=1e-6)
        assert stride == tout.stride()
        assert str(dtype).split(".")[-1] == str(tout.dtype).split(".")[-1]
    full_path()
    xe = ember.tensor(x, requires_grad=True)
    out = fn(ember, xe)
    out.backward(ember.ones_like(out))
    value, grad, node, stride, dtype = results[-1]
    np.testing.assert_array_equal(value, out.detach().numpy())
    np.testing.assert_array_equal(grad, xe.grad.numpy())
    assert (node, stride, dtype) == (out.grad_fn.name_(), out.stride(), out.dtype)


def test_seen_calls_are_taken():
    x = ember.randn(3, 4)
    x.reshape(4, 3)
    key_count = len(eager_fast._CALLS)
    taken = []
    original = eager_fast._run_seen

    def spy(op, bound, entry):
        taken.append(op.name)
        return original(op, bound, entry)
    eager_fast._run_seen = spy
    try:
        x.reshape(4, 3)
    finally:
        eager_fast._run_seen = original
    assert taken == ["reshape"] and len(eager_fast._CALLS) == key_count


def test_views_share_storage_and_version_counter():
    x = ember.zeros(2, 6)
    for _ in range(3):
        v = x.view(3, 4)
        assert v._base is x and v._storage is x._storage
    before = x._version
    v.add_(1.0)
    assert x._version == before + 1
    np.testing.assert_array_equal(x.numpy(), np.ones((2, 6), np.float32))


def test_promotion_and_dtypes_follow_each_call():
    for dtype in (np.int64, np.float64, np.float32, np.int64):
        x = ember.tensor(np.arange(6, dtype=dtype).reshape(2, 3))
        t = torch.tensor(np.arange(6, dtype=dtype).reshape(2, 3))
        for _ in range(2):
            out = x.mean(1, dtype=ember.float64) if dtype == np.int64 else x.mean(1)
            ref = t.mean(1, dtype=torch.float64) if dtype == np.int64 else t.mean(1)
            assert str(out.dtype).split(".")[-1] == str(ref.dtype).split(".")[-1]
            np.testing.assert_allclose(out.numpy(), ref.numpy())
            assert ember.exp(x).dtype == (ember.float32 if dtype == np.int64 else x.dtype)


def _outcome(fn):
    try:
        out = fn()
    except Exception as err:                # noqa: BLE001 - the outcome is compared
        return type(err), str(err)
    return "value", out.numpy().tolist()


NUMBER_CALLS = [lambda: ember.exp(2.0), lambda: ember.add(1.0, 2),
                lambda: ember.matmul(2.0, ember.ones(2)), lambda: ember.sum(3)]


def test_errors_are_raised_on_every_call(full_path):
    x = ember.randn(2, 3)
    x.reshape(3, 2)
    for _ in range(2):
        with pytest.raises(Exception, match="invalid for input of size 6|shape"):
            x.reshape(4, 2)
    # numbers where tensors go: the public check reads the caller, on every call
    seen = [[_outcome(fn) for _ in range(3)] for fn in NUMBER_CALLS]
    full_path()
    full = [_outcome(fn) for fn in NUMBER_CALLS]
    for outcomes, expected in zip(seen, full):
        assert outcomes == [expected] * 3
    assert any(kind != "value" for kind, _ in full)    # the case is exercised


def test_keyword_values_are_this_calls_values():
    x = ember.tensor(_x(2, 3, 4))
    dims = [0]
    first = x.sum(dim=dims)
    dims.append(2)                          # the seen entry must not hold the old list
    second = x.sum(dim=dims)
    again = x.sum(dim=[0])
    np.testing.assert_allclose(first.numpy(), x.numpy().sum(0), rtol=1e-6)
    np.testing.assert_allclose(second.numpy(), x.numpy().sum((0, 2)), rtol=1e-6)
    np.testing.assert_allclose(again.numpy(), x.numpy().sum(0), rtol=1e-6)


def test_tensor_keywords_take_the_full_path():
    x, w, b = ember.randn(4, 3), ember.randn(5, 3), ember.randn(5)
    for _ in range(2):
        out = EF.linear(x, weight=w, bias=b)
        np.testing.assert_allclose(out.numpy(), x.numpy() @ w.numpy().T + b.numpy(),
                                   rtol=1e-5, atol=1e-6)


def test_profiler_sees_seen_calls():
    x = ember.randn(3, 4)
    for _ in range(2):
        x.relu()
    with ember.profiler.profile() as prof:
        x.relu()
    assert "aten::relu" in {e.key for e in prof.key_averages()}


def test_grad_mode_and_hooks_on_seen_calls():
    x = ember.randn(3, 4, requires_grad=True)
    for _ in range(2):
        with ember.no_grad():
            y = x.relu()
        assert not y.requires_grad and y.grad_fn is None
    seen = []
    for _ in range(2):
        y = x.relu()
        y.register_hook(lambda g: seen.append(1))
        y.sum().backward()
    assert len(seen) == 2 and y.grad_fn.name_() == "ReluBackward0"
