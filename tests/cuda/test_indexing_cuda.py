"""Indexing, scatter, selection and loss ops that training code runs on CUDA tensors
(frontend/eager_cuda_indexing.py), on emulated CUDA (tests/cuda/emulation.py: Triton's
interpreter over host memory): every case equals torch on the CPU and none falls back to
the host. The kernels are also compiled to sm_90 cubins (Triton compiles without a GPU)."""
import os

os.environ["TRITON_INTERPRET"] = "1"      # before triton is imported (see emulation.py)

import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

import ember  # noqa: E402
from ember.frontend import eager_cuda  # noqa: E402

from emulation import emulated_cuda  # noqa: E402
from test_compile_cuda import device as compiled_device  # noqa: E402,F401 - emulated plans
from sm90_cubins import assert_launchable, compile_for_sm90  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.standard_normal((6, 5)).astype(np.float32)
X3 = RNG.standard_normal((4, 5, 3)).astype(np.float32)
IDX = np.array([0, 5, 2, 2, -1])
LABELS = np.array([0, 3, 1, 4, 4, 2])
RNG_LONG = RNG.uniform(0.999, 1.001, (2500, 2)).astype(np.float32)    # 3 blocks a line


def _t(lib, arr, device, grad=False):
    t = lib.tensor(arr, device=device)
    return t.requires_grad_() if grad else t


# each case: f(lib, device) -> tensor or tuple of tensors, the same code for torch and ember
CASES = {
    "index_rows": lambda L, d: _t(L, X, d)[_t(L, IDX, d)],
    "index_two_dims": lambda L, d: _t(L, X, d)[_t(L, IDX, d), _t(L, np.array([1, 0, 4, 4, 3]), d)],
    "index_middle_dim": lambda L, d: _t(L, X3, d)[:, _t(L, np.array([[4, 0], [1, 1]]), d)],
    "index_separated_dims": lambda L, d: _t(L, X3, d)[_t(L, np.array([3, 0]), d), :,
                                                       _t(L, np.array([[2], [1]]), d)],
    "index_of_a_view": lambda L, d: _t(L, X, d).t()[_t(L, np.array([4, 1]), d)],
    "bool_mask": lambda L, d: _t(L, X, d)[_t(L, X, d) > 0],
    "bool_mask_rows": lambda L, d: _t(L, X3, d)[_t(L, np.array([True, False, True, True]), d)],
    "masked_select": lambda L, d: L.masked_select(_t(L, X, d), _t(L, X, d) > 0.5),
    "nonzero": lambda L, d: L.nonzero(_t(L, X3, d) > 0),
    "setitem_rows": lambda L, d: _setitem(L, d, _t(L, np.array([1, 3]), d),
                                          _t(L, np.ones((2, 5), np.float32), d)),
    "setitem_scalar": lambda L, d: _setitem(L, d, _t(L, np.array([1, -2]), d), 7.0),
    "setitem_mask_tensor": lambda L, d: _setitem(L, d, _t(L, X, d) > 0,
                                                 _t(L, X * 3, d)[_t(L, X, d) > 0]),
    "index_put_accumulate": lambda L, d: _t(L, X, d).index_put(
        (_t(L, np.array([0, 2, 2, 0, 5]), d),), _t(L, X[:5], d), accumulate=True),
    "index_put_accumulate_2d": lambda L, d: _t(L, X, d).index_put(
        (_t(L, np.array([0, 2, 2]), d), _t(L, np.array([1, 1, 1]), d)),
        _t(L, np.array([1.0, 2.0, 3.0], np.float32), d), accumulate=True),
    "index_put_int64": lambda L, d: _t(L, LABELS, d).index_put(
        (_t(L, np.array([0, 0, 3]), d),), _t(L, np.array([5, 6, 7]), d), accumulate=True),
    "scatter": lambda L, d: _t(L, X, d).scatter(1, _t(L, np.array([[0, 1], [2, 3], [4, 0]]), d),
                                                _t(L, X[:3, :2] * 10, d)),
    "scatter_value": lambda L, d: _t(L, X, d).scatter(0, _t(L, np.array([[5, 1, 0]]), d), 2.5),
    "scatter_add": lambda L, d: _t(L, X, d).scatter_add(
        1, _t(L, np.array([[0, 0], [2, 3], [4, 4]]), d), _t(L, X[:3, :2], d)),
    "scatter_add_rows": lambda L, d: L.zeros(3, 5, device=d).scatter_add(
        0, _t(L, np.array([[0, 1, 2, 1, 0], [2, 2, 2, 0, 0]]), d), _t(L, X[:2], d)),
    "scatter_reduce_amax": lambda L, d: _t(L, X, d).scatter_reduce(
        1, _t(L, np.array([[0, 0], [2, 3], [4, 4]]), d), _t(L, X[:3, 2:4], d), "amax"),
    "scatter_reduce_amin_without_self": lambda L, d: _t(L, X, d).scatter_reduce(
        1, _t(L, np.array([[0, 0], [2, 3], [4, 4]]), d), _t(L, X[:3, 2:4], d), "amin",
        include_self=False),
    "scatter_reduce_mean": lambda L, d: _t(L, X, d).scatter_reduce(
        0, _t(L, np.array([[0, 1, 1, 5, 5]]), d), _t(L, X[3:4], d), "mean"),
    "scatter_reduce_sum_without_self": lambda L, d: _t(L, X, d).scatter_reduce(
        0, _t(L, np.array([[0, 1, 1, 5, 5]]), d), _t(L, X[3:4], d), "sum", include_self=False),
    "index_fill": lambda L, d: _t(L, X, d).index_fill(0, _t(L, np.array([0, 4]), d), 2.0),
    "index_copy": lambda L, d: _t(L, X, d).index_copy(0, _t(L, np.array([0, 4]), d),
                                                      _t(L, X[:2] * 2, d)),
    "bincount": lambda L, d: L.bincount(_t(L, LABELS, d), minlength=7),
    "bincount_weighted": lambda L, d: L.bincount(_t(L, LABELS, d), _t(L, X[:, 0].copy(), d)),
    "unique": lambda L, d: tuple(L.unique(_t(L, np.array([[3, 1, 1], [7, 3, 0]]), d),
                                          return_inverse=True, return_counts=True)),
    "unique_floats": lambda L, d: L.unique(_t(L, np.round(X * 2) / 2, d)),
    "one_hot": lambda L, d: L.nn.functional.one_hot(_t(L, LABELS, d), 6),
    "argmax": lambda L, d: _t(L, X, d).argmax(1),
    "argmax_flat": lambda L, d: _t(L, X, d).argmax(),
    "argmin_keepdim": lambda L, d: _t(L, X3, d).argmin(0, keepdim=True),
    "max_dim": lambda L, d: tuple(_t(L, X, d).max(1)),
    "min_dim_ints": lambda L, d: tuple(_t(L, np.array([[3, 1, 1], [0, 9, 0]]), d).min(1)),
    "max_dim_nan": lambda L, d: tuple(_t(L, np.array([[1.0, np.nan, 3.0], [2.0, 5.0, 1.0]],
                                                     np.float32), d).max(1)),
    "accuracy": lambda L, d: (_t(L, X, d).argmax(1) == _t(L, LABELS % 5, d)).float().mean(),
    "topk": lambda L, d: tuple(_t(L, X, d).topk(3, 1)),
    "topk_smallest_dim0": lambda L, d: tuple(_t(L, X, d).topk(2, 0, largest=False)),
    "top3_accuracy": lambda L, d: (_t(L, X, d).topk(3, 1)[1] == _t(L, LABELS % 5, d).view(-1, 1)
                                   ).any(1).float().mean(),
    "median_dim": lambda L, d: tuple(_t(L, X3, d).median(1)),
    "median_nan": lambda L, d: _t(L, np.array([[1.0, np.nan, 3.0], [2.0, 5.0, 1.0]],
                                               np.float32), d).median(1)[0],
    "kthvalue_keepdim": lambda L, d: tuple(_t(L, X, d).kthvalue(2, 0, keepdim=True)),
    "searchsorted": lambda L, d: L.searchsorted(_t(L, np.sort(X, 1), d), _t(L, X[:, :2] * 1.5,
                                                                            d)),
    "searchsorted_right_1d": lambda L, d: L.searchsorted(
        _t(L, np.array([0.0, 1.0, 1.0, 2.0, np.nan], np.float32), d),
        _t(L, np.array([[1.0, -5.0], [2.0, np.nan]], np.float32), d), right=True),
    "bucketize_int32": lambda L, d: L.bucketize(_t(L, X, d), _t(L, np.array([-1.0, 0.0, 0.5],
                                                                             np.float32), d),
                                                out_int32=True),
    "cumsum": lambda L, d: _t(L, X3, d).cumsum(1),
    "cumprod": lambda L, d: (_t(L, X3, d) * 0.5 + 1).cumprod(1),
    "cumprod_long_lines": lambda L, d: (_t(L, RNG_LONG, d)).cumprod(0),
    "cumsum_long_lines": lambda L, d: (_t(L, RNG_LONG, d)).cumsum(0),
    "cumsum_ints": lambda L, d: _t(L, LABELS, d).cumsum(0),
    "cumsum_bool_last": lambda L, d: (_t(L, X, d) > 0).cumsum(-1),
    "any_all": lambda L, d: ((_t(L, X, d) > 1).any(1), (_t(L, X, d) > -2).all(), _t(L, X, d).any()),
    "sgn": lambda L, d: _t(L, X, d).sgn(),
    "mse_loss": lambda L, d: L.nn.functional.mse_loss(_t(L, X, d), _t(L, X * 0.5, d)),
    "l1_loss_sum": lambda L, d: L.nn.functional.l1_loss(_t(L, X, d), _t(L, X * 0.5, d),
                                                        reduction="sum"),
    "smooth_l1_none": lambda L, d: L.nn.functional.smooth_l1_loss(_t(L, X, d), _t(L, X * 0.1, d),
                                                                  reduction="none", beta=0.5),
    "huber": lambda L, d: L.nn.functional.huber_loss(_t(L, X, d), _t(L, X * 0.1, d), delta=0.7),
}


def _setitem(L, d, key, value):
    x = _t(L, X, d)
    x[key] = value
    return x


def _as_tuple(v):
    return v if isinstance(v, tuple) else (v,)


def _host_fallbacks(caught) -> list[str]:
    return [str(w.message) for w in caught if "runs on the host" in str(w.message)]


@pytest.fixture
def cuda():
    with emulated_cuda() as allocator:
        eager_cuda._WARNED.clear()
        yield allocator


@pytest.mark.parametrize("name", sorted(CASES))
def test_case_on_cuda_equals_torch_without_host_fallback(cuda, name):
    want = _as_tuple(CASES[name](torch, "cpu"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = _as_tuple(CASES[name](ember, "cuda"))
    assert not _host_fallbacks(caught)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.is_cuda and tuple(g.shape) == tuple(w.shape)
        assert str(g.dtype).split(".")[-1] == str(w.dtype).split(".")[-1]
        np.testing.assert_allclose(g.cpu().numpy(), w.numpy(), rtol=1e-5, atol=1e-6)


GRAD_CASES = {
    "index": lambda L, x, d: x[_t(L, IDX, d)] * _t(L, np.arange(25, dtype=np.float32)
                                                  .reshape(5, 5), d),
    "index_two_dims": lambda L, x, d: x[_t(L, np.array([1, 1, 4]), d),
                                        _t(L, np.array([0, 0, 2]), d)],
    "bool_mask": lambda L, x, d: x[_t(L, X, d) > 0] * 3,
    "gather": lambda L, x, d: x.gather(1, _t(L, np.array([[0, 0], [1, 4], [3, 3], [2, 2], [4, 0],
                                                           [1, 1]]), d)),
    "index_put": lambda L, x, d: x.index_put((_t(L, np.array([0, 2]), d),), x[3:5] * 2),
    "scatter_add": lambda L, x, d: x.scatter_add(1, _t(L, np.array([[0, 1], [2, 2], [4, 4],
                                                                    [0, 0], [1, 1], [3, 3]]), d),
                                                 x[:, :2] * 2),
    "max_dim": lambda L, x, d: x.max(1)[0],
    "topk": lambda L, x, d: x.topk(2, 1)[0],
    "cumsum": lambda L, x, d: x.cumsum(1),
    "cumprod": lambda L, x, d: x.cumprod(0),
    "mse_loss": lambda L, x, d: L.nn.functional.mse_loss(x, _t(L, X * 0.5, d)),
}


@pytest.mark.parametrize("name", sorted(GRAD_CASES))
def test_gradient_on_cuda_equals_torch_without_host_fallback(cuda, name):
    weights = RNG.standard_normal(64).astype(np.float32)

    def grad(L, d):
        x = _t(L, X, d, grad=True)
        y = GRAD_CASES[name](L, x, d)
        w = _t(L, weights[:y.numel()].reshape(tuple(y.shape)), d)
        (y * w).sum().backward()
        return x.grad
    want = grad(torch, "cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = grad(ember, "cuda")
    assert not _host_fallbacks(caught)
    np.testing.assert_allclose(got.cpu().numpy(), want.numpy(), rtol=1e-5, atol=1e-6)


def test_out_of_range_indices_raise_index_error(cuda):
    x = ember.randn(4, 3, device="cuda")
    with pytest.raises(IndexError, match="out of bounds for dimension 0 with size 4"):
        x[ember.tensor([0, 4], device="cuda")]
    with pytest.raises(IndexError, match="out of bounds"):
        x[ember.tensor([-5], device="cuda")] = 1.0
    with pytest.raises(IndexError):
        x.scatter_add(0, ember.tensor([[4, 0, 0]], device="cuda"), ember.ones(1, 3, device="cuda"))
    with pytest.raises(IndexError, match="smaller than num_classes"):
        ember.nn.functional.one_hot(ember.tensor([0, 3], device="cuda"), 3)


def test_atomic_routes_run_on_the_host_in_deterministic_mode(cuda):
    ember.use_deterministic_algorithms(True)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            x = ember.zeros(4, device="cuda").index_put(
                (ember.tensor([1, 1, 2], device="cuda"),), ember.ones(3, device="cuda"),
                accumulate=True)
        assert x.cpu().tolist() == [0.0, 2.0, 1.0, 0.0]
        assert any("index_put" in m for m in _host_fallbacks(caught))
    finally:
        ember.use_deterministic_algorithms(False)


def test_a_training_step_with_index_ops_stays_on_the_device(cuda):
    """A classifier step with label handling and accuracy counting as user code writes it:
    embedding rows picked by integer indexing, a one-hot target, an argmax accuracy."""
    def step(L, d):
        L.manual_seed(0)
        table = _t(L, X, d, grad=True)
        w = _t(L, X3[0], d, grad=True)
        rows = table[_t(L, IDX, d)]
        logits = rows @ w
        target = L.nn.functional.one_hot(_t(L, LABELS[:5] % 3, d), 3).float()
        loss = L.nn.functional.mse_loss(logits.softmax(1), target)
        loss.backward()
        correct = (logits.argmax(1) == target.argmax(1)).sum()
        return loss, correct, table.grad, w.grad
    want = step(torch, "cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = step(ember, "cuda")
    assert not _host_fallbacks(caught)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.detach().cpu().numpy(), w.detach().numpy(), rtol=1e-5,
                                   atol=1e-6)


_KERNEL_IMPORTS = """
from ember.codegen.triton import indexing as K
from ember.ir import dtypes
f32, i64 = dtypes.float32, dtypes.int64
plan = K.IndexPlan((5, 3), [(1, 1)], [0], [(1,)], [3])
"""
_KERNELS = """
K.indexed_gather(plan, f32, [i64]), K.indexed_put(plan, (0, 1), f32, [i64], True),
K.scatter_along((2, 3), 1, (3, 1), (3, 1), (3, 1), f32, i64, "amax"),
K.scatter_along((2, 3), 0, (3, 1), (3, 1), None, f32, i64, None),
K.scan_lines(2, 70, 3, f32, f32, f32), K.nonzero_coordinates((4, 5), (5, 1), dtypes.bool_),
K.search_sorted(12, 3, 9, False, True, f32, f32, i64),
K.scan_lines(4, 3000, 1, f32, f32, f32, "prod"),
K.scatter_along((2, 3), 1, (3, 1), (3, 1), (3, 1), i64, i64, "sum")
"""


def test_indexing_kernels_compile_to_sm90_cubins():
    """What CI can check of the GPU path: the kernels compile for sm_90 and take the
    arguments the launcher packs (pointers, and the scatter's scalar value)."""
    results = compile_for_sm90(_KERNEL_IMPORTS, _KERNELS)
    assert len(results) == 9
    assert_launchable(results)


def test_compiled_step_with_index_ops_replays_as_a_cuda_graph(compiled_device):
    """Inside ember.compile(backend="triton") the routes run as eager steps: no host
    fallback, no read back (the index checks are the device's), so the plan is captured."""
    def f(x, i, j):
        return (x[i] * 2.0, x.scatter_add(1, j, x * 3.0), x.argmax(1), x.cumsum(0),
                x.topk(2, 1)[0])
    fast = ember.compile(f, backend="triton")
    j = RNG.integers(0, 5, (6, 5))
    want = f(*(torch.tensor(a) for a in (X, IDX, j)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            got = fast(*(ember.tensor(a).to(compiled_device) for a in (X, IDX, j)))
    assert not _host_fallbacks(caught)      # (stats.fallbacks lists these eager steps)
    assert fast.last[0].graph is not None
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.cpu().numpy(), w.numpy(), rtol=1e-5, atol=1e-6)
    bad = (ember.tensor(a).to(compiled_device) for a in (X, np.array([0, 6]), j))
    with pytest.raises(IndexError, match="for a dim of size 6"):
        fast(*bad)[0].cpu()


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_index_ops_equal_torch(cuda, dtype):
    """Half-precision values: gathers copy them, atomic routes add in float32 and round once
    (as the sum of a few exactly representable values, equal to torch's)."""
    def run(L, d):
        dt = getattr(L, dtype)
        x = _t(L, X, d).to(dt)
        i = _t(L, np.array([0, 2, 2, 5]), d)
        j = _t(L, np.array([[0, 0], [2, 3], [4, 4]]), d)
        return (x[i], L.zeros(6, 5, dtype=dt, device=d).index_put((i,), x[:4], accumulate=True),
                x[:3].scatter_add(1, j, x[:3, :2]), x.argmax(1), x.cumsum(1))
    want = run(torch, "cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = run(ember, "cuda")
    assert not _host_fallbacks(caught)
    for g, w in zip(got, want):
        assert str(g.dtype).split(".")[-1] == str(w.dtype).split(".")[-1]
        np.testing.assert_allclose(g.cpu().float().numpy(), w.float().numpy(), rtol=1e-2,
                                   atol=1e-2)


def test_cpu_index_tensors_index_a_cuda_tensor(cuda):
    """As in PyTorch, x[cpu_index], x[cpu_mask] and x[cpu_index] = v work on a CUDA x (the
    indices are moved to x's device); repeated calls too."""
    for _ in range(2):
        x, tx = ember.tensor(X, device="cuda"), torch.tensor(X)
        idx, mask = np.array([4, 0, -1]), X[:, 0] > 0
        np.testing.assert_array_equal(x[ember.tensor(idx)].cpu().numpy(),
                                      tx[torch.tensor(idx)].numpy())
        np.testing.assert_array_equal(x[ember.tensor(mask)].cpu().numpy(),
                                      tx[torch.tensor(mask)].numpy())
        x[ember.tensor(idx)] = 3.0
        tx[torch.tensor(idx)] = 3.0
        x.index_put_((ember.tensor([1, 1]),), ember.ones(2, 5, device="cuda"), accumulate=True)
        tx.index_put_((torch.tensor([1, 1]),), torch.ones(2, 5), accumulate=True)
        assert x.is_cuda
        np.testing.assert_allclose(x.cpu().numpy(), tx.numpy(), rtol=1e-6)
