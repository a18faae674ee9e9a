"""dtypes and PyTorch's type promotion: promote_types, result_type tiers, can_cast."""
from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch

import ember
from tests.oracle import TORCH_DTYPES

ALL = list(TORCH_DTYPES)


def _t(d):
    """torch dtype of an ember dtype; ember has no complex32 (chalf), so torch's
    complex32 results are compared as complex64 (documented divergence)."""
    return TORCH_DTYPES[d]


def _norm(td):
    return torch.complex64 if td == torch.complex32 else td


@pytest.mark.parametrize("a,b", list(itertools.product(ALL, ALL)),
                         ids=lambda d: d.name)
def test_promote_types_all_pairs(a, b):
    assert TORCH_DTYPES[ember.promote_types(a, b)] == torch.promote_types(
        TORCH_DTYPES[a], TORCH_DTYPES[b])


@pytest.mark.parametrize("a,b", list(itertools.product(ALL, ALL)), ids=lambda d: d.name)
def test_can_cast_all_pairs(a, b):
    assert ember.can_cast(a, b) == torch.can_cast(TORCH_DTYPES[a], TORCH_DTYPES[b])


def _pair(dt, ndim):
    shape = (2,) * ndim
    e = ember.zeros(*shape, dtype=dt) if shape else ember.zeros((), dtype=dt)
    t = torch.zeros(shape, dtype=TORCH_DTYPES[dt])
    return e, t


SCALARS = [True, 3, 2.5, 1 + 2j]


@pytest.mark.parametrize("a", ALL, ids=lambda d: d.name)
@pytest.mark.parametrize("b", ALL, ids=lambda d: d.name)
def test_result_type_tensor_vs_zero_dim(a, b):
    ea, ta = _pair(a, 1)
    eb, tb = _pair(b, 0)
    assert TORCH_DTYPES[ember.result_type(ea, eb)] == _norm(torch.result_type(ta, tb))
    assert TORCH_DTYPES[ember.result_type(eb, ea)] == _norm(torch.result_type(tb, ta))


@pytest.mark.parametrize("a", ALL, ids=lambda d: d.name)
@pytest.mark.parametrize("s", SCALARS, ids=repr)
@pytest.mark.parametrize("ndim", [0, 1])
def test_result_type_tensor_vs_scalar(a, s, ndim):
    ea, ta = _pair(a, ndim)
    assert TORCH_DTYPES[ember.result_type(ea, s)] == _norm(torch.result_type(ta, s))


@pytest.mark.parametrize("a,b", list(itertools.product(ALL, ALL))[::7], ids=lambda d: d.name)
@pytest.mark.parametrize("s", SCALARS, ids=repr)
def test_result_type_three_tiers(a, b, s):
    ea, ta = _pair(a, 2)
    eb, tb = _pair(b, 0)
    got = ember.result_type(ember.result_type(ea, eb) and ea, eb)  # two-tier sanity
    assert TORCH_DTYPES[got] == _norm(torch.result_type(ta, tb))
    # three tiers through an actual op: dimensioned + 0-d + scalar
    if a is ember.bool or b is ember.bool:
        return
    e = ea + eb + s
    t = ta + tb + s
    assert TORCH_DTYPES[e.dtype] == _norm(t.dtype)


@pytest.mark.parametrize("default", [ember.float64, ember.float16, ember.bfloat16])
def test_default_dtype_affects_scalars(default):
    tdefault = TORCH_DTYPES[default]
    old, told = ember.get_default_dtype(), torch.get_default_dtype()
    ember.set_default_dtype(default)
    torch.set_default_dtype(tdefault)
    try:
        assert ember.get_default_dtype() is default
        assert TORCH_DTYPES[ember.tensor(2.5).dtype] == torch.tensor(2.5).dtype
        if default is ember.float64:   # torch has no complex default for f16/bf16
            assert TORCH_DTYPES[ember.tensor(1j).dtype] == torch.tensor(1j).dtype
        assert TORCH_DTYPES[ember.ones(2).dtype] == torch.ones(2).dtype
        ei, ti = ember.tensor([1, 2]), torch.tensor([1, 2])
        assert TORCH_DTYPES[(ei * 2.5).dtype] == (ti * 2.5).dtype
        assert TORCH_DTYPES[ember.result_type(ei, 1j)] == _norm(torch.result_type(ti, 1j))
    finally:
        ember.set_default_dtype(old)
        torch.set_default_dtype(told)


def test_set_default_dtype_rejects_int():
    with pytest.raises(ember.DTypeError):
        ember.set_default_dtype(ember.int32)
    with pytest.raises(TypeError):       # DTypeError is a TypeError
        ember.set_default_dtype(ember.int64)


def test_dtype_aliases_and_properties():
    assert ember.float is ember.float32 and ember.double is ember.float64
    assert ember.half is ember.float16 and ember.long is ember.int64
    assert ember.int is ember.int32 and ember.short is ember.int16
    assert ember.cfloat is ember.complex64 and ember.cdouble is ember.complex128
    for d, t in TORCH_DTYPES.items():
        assert d.is_floating_point == t.is_floating_point
        assert d.is_complex == t.is_complex
        assert d.is_signed == t.is_signed
        assert d.itemsize == t.itemsize
        assert repr(d) == repr(t).replace("torch.", "ember.")


def test_dtype_pickles_as_singleton():
    import pickle
    for d in ALL:
        assert pickle.loads(pickle.dumps(d)) is d


def test_tensor_dtype_inference_matches_torch():
    for data in [1, 1.0, True, 1j, [1, 2], [1, 2.0], [True, False], [True, 1], [1, 2j],
                 [[1, 2], [3, 4]], [], np.float32(1.0), np.array([1, 2], dtype=np.int16)]:
        e, t = ember.tensor(data), torch.tensor(data)
        assert TORCH_DTYPES[e.dtype] == t.dtype, data
        assert tuple(e.shape) == tuple(t.shape), data


def test_type_conversion_methods():
    e = ember.tensor([1.7, -2.2])
    t = torch.tensor([1.7, -2.2])
    for name in ["float", "double", "half", "bfloat16", "int", "long", "short", "char",
                 "byte", "bool", "cfloat", "cdouble"]:
        ev, tv = getattr(e, name)(), getattr(t, name)()
        assert TORCH_DTYPES[ev.dtype] == tv.dtype, name
        if name not in ("byte",):   # negative -> uint8 is implementation-defined
            np.testing.assert_allclose(np.asarray(ev.to(ember.float64)),
                                       tv.to(torch.float64).numpy(), rtol=1e-2)
    assert e.type() == "ember.FloatTensor"      # torch: 'torch.FloatTensor'
    assert e.type(ember.float64).dtype is ember.float64
    assert e.type_as(ember.tensor([1])).dtype is ember.int64


def test_as_dtype_names():
    from ember.ir.dtypes import as_dtype
    assert as_dtype("float32") is ember.float32 and as_dtype("f32") is ember.float32
    assert as_dtype(np.int16) is ember.int16 and as_dtype(float) is ember.float32
    assert as_dtype(int) is ember.int64 and as_dtype(bool) is ember.bool
    with pytest.raises(ember.DTypeError, match="unknown dtype"):
        as_dtype("float128x")


def test_finfo_and_iinfo_match_torch():
    """ember.finfo/iinfo: torch's fields, values, repr and errors (timm's eva uses finfo)."""
    import torch
    for name in ("float16", "bfloat16", "float32", "float64", "complex64", "complex128"):
        ours, theirs = ember.finfo(getattr(ember, name)), torch.finfo(getattr(torch, name))
        assert repr(ours) == repr(theirs), name
        for field in ("bits", "eps", "max", "min", "tiny", "smallest_normal", "resolution"):
            assert getattr(ours, field) == getattr(theirs, field), (name, field)
    assert repr(ember.finfo()) == repr(torch.finfo())
    for name in ("uint8", "int8", "int16", "int32", "int64"):
        ours, theirs = ember.iinfo(getattr(ember, name)), torch.iinfo(getattr(torch, name))
        assert (repr(ours), ours.bits, ours.min, ours.max) == \
            (repr(theirs), theirs.bits, theirs.min, theirs.max)
    with pytest.raises(TypeError, match=r"torch.finfo\(\) requires a floating point"):
        ember.finfo(ember.int32)
    with pytest.raises(TypeError, match=r"torch.iinfo\(\) requires an integer input type"):
        ember.iinfo(ember.float32)
    with pytest.raises(TypeError, match="torch.bool is not supported by torch.iinfo"):
        ember.iinfo(ember.bool)
