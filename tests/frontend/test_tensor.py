"""The Tensor core against torch: factories, generator, views and storage, memory
formats, in-place ops and version counters, conversions."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from tests.oracle import TORCH_DTYPES


def T(d):
    return TORCH_DTYPES[d]


def _geom(x):
    return tuple(x.shape), tuple(x.stride()), x.storage_offset()


def _check(e, t, values=True):
    assert tuple(e.shape) == tuple(t.shape)
    assert T(e.dtype) == t.dtype
    if values:
        a = e.detach().numpy()
        b = t.detach().numpy() if t.dtype != torch.bfloat16 else t.detach().float().numpy()
        np.testing.assert_allclose(a.astype(np.float64) if a.dtype.kind != "c" else a,
                                   b.astype(np.float64) if b.dtype.kind != "c" else b,
                                   rtol=1e-6, atol=1e-6)


# --- factories ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["zeros", "ones", "empty"])
@pytest.mark.parametrize("dtype", [None, ember.float64, ember.int32, ember.bool, ember.float16])
def test_constant_factories(name, dtype):
    kw = {} if dtype is None else {"dtype": dtype}
    tkw = {} if dtype is None else {"dtype": T(dtype)}
    for size in [(2, 3), ((2, 3),), ([4],), ((),), (0, 2)]:
        e, t = getattr(ember, name)(*size, **kw), getattr(torch, name)(*size, **tkw)
        _check(e, t, values=name != "empty")
        assert e.stride() == t.stride()
        assert not e.requires_grad


def test_full_and_dtype_inference():
    for v in [1, 2.5, True, 1 + 1j]:
        _check(ember.full((2, 2), v), torch.full((2, 2), v))
    _check(ember.full((3,), 7, dtype=ember.float64), torch.full((3,), 7, dtype=torch.float64))


@pytest.mark.parametrize("args", [(5,), (1, 4), (0, 10, 3), (1.0, 2.0, 0.25), (5, 0, -1),
                                  (0, 1, 0.1), (-3, 3), (2.5,)], ids=str)
def test_arange(args):
    _check(ember.arange(*args), torch.arange(*args))
    _check(ember.arange(*args, dtype=ember.float64), torch.arange(*args, dtype=torch.float64))


def test_linspace_logspace_eye():
    _check(ember.linspace(0, 1, 5), torch.linspace(0, 1, 5))
    _check(ember.linspace(-2, 10, 7, dtype=ember.float64),
           torch.linspace(-2, 10, 7, dtype=torch.float64))
    _check(ember.linspace(0, 1, 1), torch.linspace(0, 1, 1))
    _check(ember.logspace(0, 2, 3), torch.logspace(0, 2, 3))
    _check(ember.eye(3), torch.eye(3))
    _check(ember.eye(2, 4, dtype=ember.int64), torch.eye(2, 4, dtype=torch.int64))


@pytest.mark.parametrize("name", ["zeros_like", "ones_like", "empty_like", "rand_like",
                                  "randn_like"])
def test_like_factories_preserve_format_and_dtype(name):
    x = np.arange(24, dtype=np.float64).reshape(1, 2, 3, 4)
    e = ember.tensor(x).to(memory_format=ember.channels_last)
    t = torch.tensor(x).to(memory_format=torch.channels_last)
    ge, gt = getattr(ember, name)(e), getattr(torch, name)(t)
    _check(ge, gt, values=name in ("zeros_like", "ones_like"))
    assert ge.stride() == gt.stride()
    ge = getattr(ember, name)(e, dtype=ember.float32, memory_format=ember.contiguous_format)
    gt = getattr(torch, name)(t, dtype=torch.float32, memory_format=torch.contiguous_format)
    assert ge.stride() == gt.stride() and T(ge.dtype) == gt.dtype
    assert getattr(ember, name)(e, requires_grad=True).requires_grad


def test_full_like_and_randint_like():
    e, t = ember.zeros(2, 3, dtype=ember.int32), torch.zeros(2, 3, dtype=torch.int32)
    _check(ember.full_like(e, 4), torch.full_like(t, 4))
    r = ember.randint_like(e, 3, 7)
    assert r.dtype is ember.int32 and r.shape == (2, 3)
    assert (r.numpy() >= 3).all() and (r.numpy() < 7).all()


@pytest.mark.parametrize("fmt", ["channels_last", "contiguous_format"])
def test_factories_with_memory_format(fmt):
    for name in ["zeros", "ones", "empty", "rand", "randn"]:
        e = getattr(ember, name)(2, 3, 4, 5, memory_format=getattr(ember, fmt))
        t = torch.empty(2, 3, 4, 5, memory_format=getattr(torch, fmt))  # torch: empty only
        assert e.stride() == t.stride(), name
        assert e.is_contiguous(memory_format=getattr(ember, fmt))


def test_factory_requires_grad():
    for e in [ember.zeros(2, requires_grad=True), ember.ones(2, requires_grad=True),
              ember.rand(2, requires_grad=True), ember.randn(2, requires_grad=True),
              ember.full((2,), 1.0, requires_grad=True), ember.tensor([1.], requires_grad=True),
              ember.arange(3.0, requires_grad=True), ember.linspace(0, 1, 3, requires_grad=True),
              ember.eye(2, requires_grad=True)]:
        assert e.requires_grad and e.is_leaf and e.grad_fn is None
    with pytest.raises(RuntimeError, match="floating point"):
        ember.zeros(2, dtype=ember.int64, requires_grad=True)
    with pytest.raises(RuntimeError, match="floating point"):
        torch.zeros(2, dtype=torch.int64, requires_grad=True)


def test_random_factories_shapes_dtypes_ranges():
    ember.manual_seed(0)
    r = ember.rand(1000)
    assert r.dtype is ember.float32 and 0 <= r.numpy().min() and r.numpy().max() < 1
    n = ember.randn(2000, dtype=ember.float64)
    assert n.dtype is ember.float64 and abs(n.numpy().mean()) < 0.1
    assert abs(n.numpy().std() - 1) < 0.1
    i = ember.randint(3, 10, (50,))
    assert i.dtype is ember.int64 and i.numpy().min() >= 3 and i.numpy().max() < 10
    assert ember.randint(5, (2, 2)).shape == (2, 2)
    p = ember.randperm(10)
    assert sorted(p.tolist()) == list(range(10)) and p.dtype is ember.int64
    with pytest.raises(TypeError):
        ember.rand(2, dtype=ember.int64)


# --- generator ------------------------------------------------------------------------

def test_manual_seed_reproducible():
    ember.manual_seed(123)
    a = (ember.rand(5), ember.randn(3), ember.randint(0, 100, (4,)))
    ember.manual_seed(123)
    b = (ember.rand(5), ember.randn(3), ember.randint(0, 100, (4,)))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    assert ember.initial_seed() == 123
    ember.manual_seed(124)
    assert not np.array_equal(ember.rand(5).numpy(), a[0].numpy())


def test_generator_objects_independent_of_default():
    g1 = ember.Generator().manual_seed(7)
    g2 = ember.Generator()
    g2.manual_seed(7)
    ember.manual_seed(0)
    x = ember.rand(4, generator=g1)
    ember.rand(10)            # default generator use does not disturb g2
    y = ember.rand(4, generator=g2)
    np.testing.assert_array_equal(x.numpy(), y.numpy())
    assert g1.initial_seed() == 7


def test_rng_state_roundtrip():
    ember.manual_seed(5)
    state = ember.get_rng_state()
    a = ember.randn(6)
    ember.set_rng_state(state)
    np.testing.assert_array_equal(a.numpy(), ember.randn(6).numpy())
    g = ember.Generator().manual_seed(3)
    s = g.get_state()
    a = ember.rand(3, generator=g)
    g.set_state(s)
    np.testing.assert_array_equal(a.numpy(), ember.rand(3, generator=g).numpy())


# --- views share storage --------------------------------------------------------------

VIEW_CASES = [
    ("view", lambda x: x.view(6, 4)), ("view_varargs", lambda x: x.view(-1)),
    ("reshape", lambda x: x.reshape(4, 6)), ("permute", lambda x: x.permute(2, 0, 1)),
    ("transpose", lambda x: x.transpose(0, 2)), ("unsqueeze", lambda x: x.unsqueeze(1)),
    ("unsqueeze_neg", lambda x: x.unsqueeze(-1)),
    ("expand", lambda x: x.unsqueeze(0).expand(3, 2, 3, 4)),
    ("squeeze", lambda x: x.unsqueeze(0).squeeze(0)), ("squeeze_all", lambda x: x.view(
        1, 2, 1, 12).squeeze()), ("as_strided", lambda x: x.as_strided((2, 2), (1, 2), 3)),
    ("as_strided_default_offset", lambda x: x.as_strided((3,), (5,))),
    ("perm_then_view", lambda x: x.permute(1, 0, 2).transpose(1, 2)),
]


@pytest.mark.parametrize("name,f", VIEW_CASES, ids=[c[0] for c in VIEW_CASES])
def test_view_geometry_and_shared_storage(name, f):
    base = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    eb, tb = ember.tensor(base), torch.tensor(base)
    ev, tv = f(eb), f(tb)
    assert _geom(ev) == _geom(tv)
    assert ev.is_contiguous() == tv.is_contiguous()
    assert ev.data_ptr() - eb.data_ptr() == (tv.data_ptr() - tb.data_ptr())
    assert ev._base is eb
    np.testing.assert_array_equal(ev.numpy(), tv.numpy())
    # writes through the base are visible in the view, and the version is shared
    eb.add_(1)
    tb.add_(1)
    np.testing.assert_array_equal(ev.numpy(), tv.numpy())
    assert ev._version == tv._version == eb._version


def test_view_of_view_base_is_root():
    x = ember.zeros(4, 4)
    v = x[1:] if False else x.view(16).view(2, 8)
    assert v._base is x


def test_write_through_view_visible_in_base():
    eb, tb = ember.zeros(2, 3), torch.zeros(2, 3)
    ev, tv = eb.transpose(0, 1), tb.transpose(0, 1)
    ev.mul_(0).add_(5)
    tv.mul_(0).add_(5)
    np.testing.assert_array_equal(eb.numpy(), tb.numpy())
    ez = eb.view(6)
    ez.add_(ember.arange(6.0))
    tb.view(6).add_(torch.arange(6.0))
    np.testing.assert_array_equal(eb.numpy(), tb.numpy())
    assert eb._version == tb._version


def test_reshape_copies_when_needed():
    base = np.arange(6, dtype=np.float32).reshape(2, 3)
    ev, tv = ember.tensor(base).transpose(0, 1), torch.tensor(base).transpose(0, 1)
    er, tr = ev.reshape(6), tv.reshape(6)
    assert _geom(er) == _geom(tr)
    assert er._base is None
    np.testing.assert_array_equal(er.numpy(), tr.numpy())
    with pytest.raises(RuntimeError):
        tv.view(6)
    with pytest.raises(ValueError, match="view size is not compatible"):   # ember.ShapeError
        ev.view(6)


def test_contiguous_returns_self_or_copy():
    e = ember.zeros(2, 3)
    assert e.contiguous() is e
    et, tt = e.transpose(0, 1), torch.zeros(2, 3).transpose(0, 1)
    ec, tc = et.contiguous(), tt.contiguous()
    assert _geom(ec) == _geom(tc) and ec.is_contiguous()
    assert ec.data_ptr() != et.data_ptr()


def test_size_stride_metadata():
    e, t = ember.zeros(2, 3, 4), torch.zeros(2, 3, 4)
    assert e.size() == t.size() and e.size(-1) == t.size(-1) and e.stride(1) == t.stride(1)
    assert isinstance(e.shape, ember.Size) and e.shape[1:] == ember.Size([3, 4])
    assert e.numel() == t.numel() and e.dim() == t.dim() and e.ndim == 3
    assert e.element_size() == t.element_size() and e.nbytes == t.nbytes
    assert len(e) == 2 and e.shape.numel() == 24
    with pytest.raises(IndexError):
        e.size(3)
    with pytest.raises(IndexError):
        e.stride(-4)


# --- memory formats -------------------------------------------------------------------

def _nchw(dtype=np.float32):
    return np.arange(2 * 3 * 4 * 5, dtype=dtype).reshape(2, 3, 4, 5)


def test_to_channels_last():
    e = ember.tensor(_nchw()).to(memory_format=ember.channels_last)
    t = torch.tensor(_nchw()).to(memory_format=torch.channels_last)
    assert e.stride() == t.stride()
    for fmt in ["contiguous_format", "channels_last"]:
        assert e.is_contiguous(memory_format=getattr(ember, fmt)) == \
            t.is_contiguous(memory_format=getattr(torch, fmt))
    np.testing.assert_array_equal(e.numpy(), t.numpy())
    back = e.contiguous()
    assert back.stride() == t.contiguous().stride()
    assert e.contiguous(memory_format=ember.channels_last) is e


def test_is_contiguous_size_one_dims():
    for shape in [(1, 3, 1, 1), (2, 1, 4, 4), (1, 1, 1, 1), (2, 3, 1, 5)]:
        e = ember.zeros(*shape, memory_format=ember.channels_last)
        t = torch.empty(*shape, memory_format=torch.channels_last)
        assert e.stride() == t.stride(), shape
        for fmt in ["contiguous_format", "channels_last"]:
            assert e.is_contiguous(memory_format=getattr(ember, fmt)) == \
                t.is_contiguous(memory_format=getattr(torch, fmt)), (shape, fmt)


@pytest.mark.parametrize("fmt", ["preserve_format", "contiguous_format", "channels_last"])
def test_clone_memory_format(fmt):
    e = ember.tensor(_nchw()).to(memory_format=ember.channels_last)
    t = torch.tensor(_nchw()).to(memory_format=torch.channels_last)
    ec, tc = e.clone(memory_format=getattr(ember, fmt)), t.clone(
        memory_format=getattr(torch, fmt))
    assert ec.stride() == tc.stride()
    assert e.clone().stride() == t.clone().stride()


@pytest.mark.parametrize("op", ["add", "mul", "relu", "exp", "neg", "sigmoid", "add_scalar",
                                "add_contig", "contig_add"])
def test_pointwise_carries_channels_last(op):
    e = ember.tensor(_nchw()).to(memory_format=ember.channels_last)
    t = torch.tensor(_nchw()).to(memory_format=torch.channels_last)
    ec, tc = ember.tensor(_nchw()), torch.tensor(_nchw())
    f = {"add": lambda x, c: x + x, "mul": lambda x, c: x * x, "relu": lambda x, c: x.relu(),
         "exp": lambda x, c: x.exp(), "neg": lambda x, c: -x,
         "sigmoid": lambda x, c: x.sigmoid(), "add_scalar": lambda x, c: x + 1,
         "add_contig": lambda x, c: x + c, "contig_add": lambda x, c: c + x}[op]
    re, rt = f(e, ec), f(t, tc)
    assert re.stride() == rt.stride()
    np.testing.assert_allclose(re.numpy(), rt.numpy(), rtol=1e-6)


@pytest.mark.parametrize("first,second", [
    (((2, 3, 4, 5), "cl"), ((2, 3, 4, 5), "c")), (((2, 3, 4, 5), "c"), ((2, 3, 4, 5), "cl")),
    (((1, 3, 1, 1), "c"), ((2, 3, 4, 5), "cl")), (((2, 3, 4, 5), "cl"), ((3, 1, 1), "c")),
    (((5,), "c"), ((2, 3, 4, 5), "cl")), (((2, 3, 1, 1), "cl"), ((2, 3, 4, 5), "c")),
    (((1, 3, 4, 5), "c"), ((2, 3, 4, 5), "cl")), (((2, 1, 1, 1), "c"), ((2, 3, 4, 5), "cl"))])
def test_binary_result_layout_follows_the_first_operand_that_decides(first, second):
    """TensorIterator: broadcast operands say nothing about the layout; the first full one does."""
    def make(lib, shape, fmt):
        t = lib.tensor(np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape))
        return t.to(memory_format=lib.channels_last) if fmt == "cl" else t
    re = make(ember, *first) * make(ember, *second)
    rt = make(torch, *first) * make(torch, *second)
    assert re.stride() == rt.stride()
    np.testing.assert_array_equal(re.numpy(), rt.numpy())


def test_to_dtype_preserves_channels_last():
    e = ember.tensor(_nchw()).to(memory_format=ember.channels_last)
    t = torch.tensor(_nchw()).to(memory_format=torch.channels_last)
    assert e.to(ember.float64).stride() == t.to(torch.float64).stride()
    assert e.to(ember.float32) is e
    assert e.to(ember.float32, copy=True) is not e


# --- in-place and versions ------------------------------------------------------------

def test_version_counter_matches_torch():
    e, t = ember.zeros(3), torch.zeros(3)
    assert e._version == t._version == 0
    for fe, ft in [(lambda x: x.add_(1), lambda x: x.add_(1)),
                   (lambda x: x.mul_(2), lambda x: x.mul_(2)),
                   (lambda x: x.exp_(), lambda x: x.exp_()),
                   (lambda x: x.__iadd__(1), lambda x: x.__iadd__(1)),
                   (lambda x: x.__imul__(1), lambda x: x.__imul__(1))]:
        fe(e)
        ft(t)
        assert e._version == t._version
    e2, t2 = e + 1, t + 1         # out-of-place results start fresh
    assert e2._version == t2._version == 0
    ev, tv = e.view(3), t.view(3)
    ev.sub_(1)
    tv.sub_(1)
    assert e._version == t._version == ev._version == tv._version


def test_inplace_returns_self_and_values():
    e, t = ember.tensor([1., 2.]), torch.tensor([1., 2.])
    assert e.add_(ember.tensor([1., 1.]), alpha=2) is e
    t.add_(torch.tensor([1., 1.]), alpha=2)
    np.testing.assert_array_equal(e.numpy(), t.numpy())
    x = e
    x += 1
    assert x is e


def test_inplace_broadcast_into_target():
    e, t = ember.zeros(2, 3), torch.zeros(2, 3)
    e.add_(ember.tensor([1., 2., 3.]))
    t.add_(torch.tensor([1., 2., 3.]))
    np.testing.assert_array_equal(e.numpy(), t.numpy())
    with pytest.raises(ValueError):
        ember.zeros(3).add_(ember.zeros(2, 3))


def test_inplace_int_target_float_result_raises_like_torch():
    with pytest.raises(RuntimeError, match="result type Float can't be cast to the desired "
                       "output type Long"):
        torch.zeros(2, dtype=torch.int64).add_(1.5)
    with pytest.raises(Exception, match="result type Float can't be cast to the desired "
                       "output type Long"):
        ember.zeros(2, dtype=ember.int64).add_(1.5)


def test_inplace_float_target_int_operand_ok():
    e = ember.zeros(2)
    e.add_(ember.tensor([1, 2]))
    assert e.dtype is ember.float32 and e.tolist() == [1.0, 2.0]


# --- conversions ----------------------------------------------------------------------

def test_numpy_item_tolist():
    e, t = ember.tensor([[1.5, 2.0], [3.0, 4.0]]), torch.tensor([[1.5, 2.0], [3.0, 4.0]])
    assert e.tolist() == t.tolist()
    assert ember.tensor(3).item() == torch.tensor(3).item() == 3
    assert isinstance(ember.tensor(3).item(), int)
    assert isinstance(ember.tensor(2.5).item(), float)
    assert isinstance(ember.tensor(True).item(), bool)
    assert ember.tensor([7.0]).item() == 7.0
    assert ember.tensor(2.5).tolist() == 2.5
    with pytest.raises(ValueError):
        e.item()
    n = e.numpy()
    n[0, 0] = 10
    assert e.tolist()[0][0] == 10          # numpy() shares memory
    r = ember.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="detach"):
        r.numpy()
    assert r.detach().numpy().tolist() == [1.0]
    assert float(ember.tensor(2.5)) == 2.5 and int(ember.tensor(3)) == 3
    assert bool(ember.tensor([1])) is True
    with pytest.raises(RuntimeError):
        bool(ember.tensor([1, 2]))
    assert [10, 20, 30][ember.tensor(1)] == 20
    with pytest.raises(TypeError):
        [1, 2][ember.tensor(1.0)]
    assert np.asarray(ember.tensor([1, 2])).tolist() == [1, 2]


def test_from_numpy_shares_memory():
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    e = ember.from_numpy(a)
    assert e.dtype is ember.float64 and e.stride() == torch.from_numpy(a).stride()
    a[0, 0] = 100
    assert e[0, 0].item() == 100 if hasattr(e, "__getitem__") and _has_indexing() else \
        e.tolist()[0][0] == 100
    e.add_(1)
    assert a[0, 0] == 101
    f = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert ember.from_numpy(f).stride() == torch.from_numpy(f).stride()
    s = np.arange(10, dtype=np.int32)[::2]
    es = ember.from_numpy(s)
    assert es.stride() == torch.from_numpy(s).stride() and es.tolist() == s.tolist()
    with pytest.raises(TypeError):
        ember.from_numpy([1, 2])


def _has_indexing():
    try:
        ember.zeros(2)[0]
        return True
    except Exception:
        return False


def test_as_tensor_shares_or_copies():
    a = np.array([1.0, 2.0], dtype=np.float32)
    e = ember.as_tensor(a)
    a[0] = 5
    assert e.tolist()[0] == 5
    c = ember.as_tensor(a, dtype=ember.float64)
    a[0] = 6
    assert c.tolist()[0] == 5 and c.dtype is ember.float64
    x = ember.tensor([1.0])
    assert ember.as_tensor(x) is x
    assert ember.as_tensor([1, 2]).dtype is ember.int64


def test_tensor_copies_data():
    a = np.array([1.0, 2.0])
    e = ember.tensor(a)
    a[0] = 9
    assert e.tolist() == [1.0, 2.0]
    src = ember.tensor([1.0, 2.0])
    cp = ember.tensor(src)
    src.add_(1)
    assert cp.tolist() == [1.0, 2.0]
    with pytest.raises(ValueError):
        ember.tensor([[1, 2], [3]])


def test_detach_shares_storage_and_version():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.data_ptr() == x.data_ptr()
    d.add_(1)
    assert x.detach().tolist() == [2.0, 3.0]
    assert x._version == 1


def test_deepcopy_and_pickle():
    import copy
    import pickle
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = copy.deepcopy(x)
    assert y.requires_grad and y.tolist() == [1.0, 2.0] and y.data_ptr() != x.data_ptr()
    z = pickle.loads(pickle.dumps(ember.zeros(1, 2, 2, 2, memory_format=ember.channels_last)))
    assert z.stride() == (8, 1, 4, 2)


@pytest.mark.parametrize("name", ["zeros", "ones", "empty", "rand", "randn"])
def test_factories_take_size_keyword(name):
    """torch.zeros(size=(2, 3)) (timm's beit writes it): the shape as a keyword."""
    factory = getattr(ember, name)
    assert tuple(factory(size=(2, 3)).shape) == tuple(getattr(torch, name)(size=(2, 3)).shape)
    assert tuple(factory(size=[4]).shape) == (4,)
    with pytest.raises(TypeError, match=f"{name}\\(\\) got multiple values for argument "
                                        "'size'"):
        factory(2, size=(3,))
