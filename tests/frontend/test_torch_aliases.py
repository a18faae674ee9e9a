"""PyTorch's other names for ember's ops and functions, compared with torch on the same
inputs: aliases, linalg methods, in-place forms, legacy tensor types, predicates,
torch.testing, torch.random, anomaly detection and the small device/util modules."""
import numpy as np
import pytest
import torch

import ember
from ember.frontend import aliases

A = np.array([[1.5, -2.0], [0.25, 3.0]], dtype=np.float32)


def both(array=A):
    return ember.tensor(array), torch.tensor(array)


@pytest.mark.parametrize("alias", sorted(aliases.ALIASES))
def test_every_alias_exists_where_torch_has_it(alias):
    if hasattr(torch, alias):
        assert hasattr(ember, alias), f"ember.{alias}"
    if hasattr(torch.Tensor, alias):
        assert hasattr(ember.Tensor, alias), f"Tensor.{alias}"


@pytest.mark.parametrize("call", [
    lambda m, x: m.arccos(x.clamp(-1, 1)), lambda m, x: m.clip(x, -1, 1),
    lambda m, x: m.divide(x, 2), lambda m, x: m.multiply(x, x), lambda m, x: m.subtract(x, 1),
    lambda m, x: m.greater(x, 0), lambda m, x: m.less_equal(x, 0), lambda m, x: m.negative(x),
    lambda m, x: m.fix(x), lambda m, x: m.moveaxis(x, 0, 1), lambda m, x: m.concat([x, x]),
    lambda m, x: m.row_stack([x, x]), lambda m, x: m.ger(x[0], x[1]),
    lambda m, x: x.det(), lambda m, x: x.inverse(), lambda m, x: m.inverse(x),
    lambda m, x: x.slogdet()[1], lambda m, x: x.matrix_power(3), lambda m, x: x.matrix_exp(),
    lambda m, x: x.arctan2(x), lambda m, x: x.absolute(), lambda m, x: m.chain_matmul(x, x, x),
    lambda m, x: m.vander(x[0], 3), lambda m, x: m.vander(x[0], increasing=True),
    lambda m, x: x.hardshrink(0.5), lambda m, x: x.clone().cumsum_(0),
    lambda m, x: x.clone().clip_(0, 1), lambda m, x: x.clone().fill_diagonal_(7.0),
    lambda m, x: m.zeros(5, 3).fill_diagonal_(2.0, wrap=True),
    lambda m, x: m.zeros(7, 3).fill_diagonal_(2.0, wrap=True),
    lambda m, x: m.relu_(x.clone()), lambda m, x: m.abs_(x.clone()),
    lambda m, x: m.batch_norm(x, None, None, m.zeros(2), m.ones(2), False, 0.1, 1e-5, False),
    lambda m, x: m.group_norm(x.reshape(1, 2, 2), 2), lambda m, x: x.new([1, 2]),
    lambda m, x: x.new(3, 2).shape, lambda m, x: m.asarray([1, 2, 3]),
])
def test_alias_results_equal_torch(call):
    e, t = both()
    got, want = call(ember, e), call(torch, t)
    if isinstance(want, torch.Tensor):
        np.testing.assert_allclose(np.asarray(got.tolist()), want.numpy(), rtol=1e-5, atol=1e-6)
        assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1]
    else:
        assert tuple(got) == tuple(want)


def test_alias_gradients_flow():
    e = ember.tensor(A.astype(np.float64), requires_grad=True)
    t = torch.tensor(A.astype(np.float64), requires_grad=True)
    ember.arctan(e).sum().backward()
    torch.arctan(t).sum().backward()
    np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy())


def test_legacy_tensor_types():
    e, t = both()
    assert e.type() == t.type().replace("torch", "ember")
    assert e.type("ember.DoubleTensor").dtype is ember.float64
    assert e.type(ember.LongTensor).dtype is ember.int64
    assert isinstance(e, ember.FloatTensor) and not isinstance(e, ember.DoubleTensor)
    assert tuple(ember.FloatTensor(2, 3).shape) == tuple(torch.FloatTensor(2, 3).shape)
    assert ember.LongTensor([1, 2]).tolist() == torch.LongTensor([1, 2]).tolist()
    assert ember.typename(e) == torch.typename(t).replace("torch", "ember")


def test_predicates_match_torch():
    e, t = both()
    for name in ("is_cpu",):
        assert getattr(e, name) == getattr(t, name)
    for name in ("get_device", "is_signed", "ndimension", "is_conj", "is_neg"):
        assert getattr(e, name)() == getattr(t, name)()
    assert ember.is_nonzero(ember.tensor([2])) == torch.is_nonzero(torch.tensor([2]))
    with pytest.raises(RuntimeError, match="ambiguous"):
        ember.is_nonzero(ember.tensor([1, 2]))
    assert ember.is_same_size(e, e) and not ember.tensor([1]).is_same_size(e)
    assert not ember.tensor([1], dtype=ember.uint8).is_signed()


def test_cond_and_while_loop_follow_torch():
    x = ember.tensor([1.0, 2.0])
    assert ember.cond(x.sum() > 0, lambda v: v * 2, lambda v: v - 1, (x,)).tolist() == [2, 4]
    out = ember.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, v * 2),
                           (ember.tensor(0), x))
    assert out[0].item() == 3 and out[1].tolist() == [8.0, 16.0]


def test_default_device_and_its_context_manager():
    assert str(ember.get_default_device()) == "cpu"
    with ember.device("meta"):
        assert str(ember.get_default_device()) == "meta"
    assert str(ember.get_default_device()) == "cpu"
    ember.set_default_device(None)
    assert ember.zeros(1).device.type == "cpu"


def test_detect_anomaly_names_the_function_like_torch():
    x = ember.tensor([-1.0, 1.0], requires_grad=True)
    with ember.autograd.detect_anomaly():
        with pytest.raises(RuntimeError, match="Function 'SqrtBackward0' returned nan"):
            x.sqrt().sum().backward()
    assert not ember.autograd.is_anomaly_enabled()
    x.sqrt().sum().backward()          # off again: NaN gradients pass as in PyTorch
    assert np.isnan(x.grad.numpy()[0])


def test_testing_assert_close_matches_torch_behaviour():
    from ember.testing import assert_close, make_tensor
    assert_close(ember.tensor([1.0, 2.0]), ember.tensor([1.0, 2.0 + 1e-7]))
    with pytest.raises(AssertionError, match="Mismatched elements: 1 / 3"):
        assert_close(ember.tensor([1.0, 2.0, 3.0]), ember.tensor([1.0, 2.5, 3.0]))
    with pytest.raises(AssertionError, match="'dtype' do not match"):
        assert_close(ember.ones(2), ember.ones(2, dtype=ember.float64))
    assert_close(ember.ones(2), ember.ones(2, dtype=ember.float64), check_dtype=False)
    with pytest.raises(ValueError, match="Both 'rtol' and 'atol'"):
        assert_close(ember.ones(1), ember.ones(1), rtol=1e-3)
    assert_close({"a": [1.0, ember.ones(2)]}, {"a": [1.0, ember.ones(2)]})
    with pytest.raises(AssertionError):
        assert_close(1.0, 1.1)
    t = make_tensor(3, 4, dtype=ember.float32, low=-1, high=1)
    assert tuple(t.shape) == (3, 4) and float(t.abs().max()) <= 1
    assert make_tensor((5,), dtype=ember.uint8).min().item() >= 0


def test_random_fork_rng_restores_the_stream():
    ember.manual_seed(3)
    with ember.random.fork_rng():
        inside = ember.rand(2)
    assert ember.rand(2).tolist() == inside.tolist()


def test_small_modules_import_like_torch():
    assert ember.version.__version__ == ember.__version__
    assert ember.cpu.is_available() and ember.cpu.device_count() == 1
    assert ember.functional.einsum is ember.einsum
    from ember.quantization.quantize_fx import prepare_fx  # noqa: F401 - torch's old path
    assert ember.quantization.QConfig is ember.ao.quantization.QConfig
    import ember.multiprocessing as mp
    assert callable(mp.spawn) and mp.get_sharing_strategy() in mp.get_all_sharing_strategies()


@pytest.mark.parametrize("name, args", [("unsqueeze_", (0,)), ("t_", ()), ("transpose_", (0, 1)),
                                        ("swapaxes_", (0, 1)), ("swapdims_", (1, 0))])
def test_in_place_views_match_torch_values_and_gradients(name, args):
    base_e = ember.tensor(A.astype(np.float64), requires_grad=True)
    base_t = torch.tensor(A.astype(np.float64), requires_grad=True)
    e, t = base_e * 2, base_t * 2
    before_e = e[0]                          # a view taken before keeps its own shape
    assert getattr(e, name)(*args) is e
    getattr(t, name)(*args)
    assert tuple(e.shape) == tuple(t.shape) and tuple(before_e.shape) == (2,)
    weights = np.arange(t.numel(), dtype=np.float64).reshape(tuple(t.shape))
    (e * ember.tensor(weights)).sum().backward()
    (t * torch.tensor(weights)).sum().backward()
    np.testing.assert_allclose(base_e.grad.numpy(), base_t.grad.numpy())


def test_in_place_view_of_a_leaf_that_requires_grad_is_refused_like_torch():
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        ember.ones(3, requires_grad=True).unsqueeze_(0)
    squeezed = ember.ones(1, 3).squeeze_()
    assert tuple(squeezed.shape) == (3,)


def test_compiler_is_compiling_and_is_exporting_follow_the_trace():
    seen = []

    def f(x):
        seen.append((ember.compiler.is_compiling(), ember.compiler.is_exporting()))
        return x * 2

    assert not ember.compiler.is_compiling() and not ember.compiler.is_exporting()
    f(ember.ones(2))
    ember.compile(f)(ember.ones(2))
    ember.export(f, (ember.ones(2),))
    assert seen == [(False, False), (True, False), (True, True)]
    assert ember.compiler.is_dynamo_compiling() is False
