"""PyTorch features that everyday code uses and ember lacked (issue 13), each checked
against torch: keyword arguments of casts and new_* factories, int32 indices, torch.norm's
'nuc', tensordot(dims=int), einsum's call forms, losses' options, attention's bias_k/v."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember

from tests.oracle import assert_close


CASTS = ["float", "double", "half", "bfloat16", "int", "long", "short", "char", "byte", "bool",
         "cfloat", "cdouble"]


@pytest.mark.parametrize("name", CASTS)
@pytest.mark.parametrize("fmt", ["channels_last", "contiguous_format", "preserve_format"])
def test_cast_methods_take_memory_format(name, fmt, rng):
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    e = ember.tensor(x).contiguous(memory_format=ember.channels_last)
    t = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
    eo = getattr(e, name)(memory_format=getattr(ember, fmt))
    to = getattr(t, name)(memory_format=getattr(torch, fmt))
    assert eo.stride() == to.stride()
    assert str(eo.dtype).split(".")[-1] == str(to.dtype).split(".")[-1]


@pytest.mark.parametrize("name,args", [("new_zeros", ((2, 3),)), ("new_ones", ((2,),)),
                                       ("new_full", ((2, 2), 1.5)), ("new_empty", ((3,),)),
                                       ("new_tensor", ([1, 2],))])
def test_new_factories_take_device(name, args):
    e, t = ember.ones(2, dtype=ember.float64), torch.ones(2, dtype=torch.float64)
    eo = getattr(e, name)(*args, device="cpu", dtype=ember.int64)
    to = getattr(t, name)(*args, device="cpu", dtype=torch.int64)
    assert str(eo.device) == str(to.device) == "cpu"
    assert tuple(eo.shape) == tuple(to.shape) and eo.dtype == ember.int64
    if name != "new_empty":
        assert_close(eo, to, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["gather", "scatter", "scatter_add"])
def test_int32_indices_for_gather_and_scatter(name, rng):
    a, src = rng.standard_normal((3, 2)), rng.standard_normal((2, 2))
    idx = np.asarray([[0, 1], [2, 0]], np.int32)
    extra = ()
    ea, es = ember.tensor(a).requires_grad_(True), ember.tensor(src).requires_grad_(True)
    ta, ts = torch.from_numpy(a).requires_grad_(True), torch.from_numpy(src).requires_grad_(True)
    if name == "gather":
        eo, to = ember.gather(ea, 0, ember.tensor(idx)), torch.gather(ta, 0, torch.from_numpy(idx))
    else:
        eo = getattr(ember, name)(ea, 0, ember.tensor(idx), es, *extra)
        to = getattr(torch, name)(ta, 0, torch.from_numpy(idx), ts, *extra)
    assert_close(eo, to.detach(), rtol=0, atol=0)
    cot = rng.standard_normal(tuple(to.shape))
    eo.backward(ember.tensor(cot))
    to.backward(torch.from_numpy(cot))
    assert_close(ea.grad, ta.grad, rtol=1e-12, atol=1e-12, what="grad")


@pytest.mark.parametrize("dim,keepdim", [(None, False), ((0, 1), True), ((1, 0), False)])
def test_norm_nuc(dim, keepdim, rng):
    x = rng.standard_normal((3, 4))
    e, t = ember.tensor(x).requires_grad_(True), torch.from_numpy(x).requires_grad_(True)
    eo = ember.norm(e, p="nuc", dim=dim, keepdim=keepdim)
    to = torch.norm(t, p="nuc", dim=dim, keepdim=keepdim)
    assert_close(eo, to.detach(), rtol=1e-12, atol=1e-12)
    assert_close(e.norm(p="nuc"), torch.norm(t.detach(), p="nuc"), rtol=1e-12, atol=1e-12)
    eo.sum().backward()
    to.sum().backward()
    assert_close(e.grad, t.grad, rtol=1e-9, atol=1e-12, what="grad")
    with pytest.raises(ValueError, match="2-tuple"):
        ember.norm(ember.ones(2, 3, 4), p="nuc")


def test_einsum_call_forms(rng):
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((3, 4))
    ea, eb, ta, tb = ember.tensor(a), ember.tensor(b), torch.from_numpy(a), torch.from_numpy(b)
    want = torch.einsum("ij,jk", ta, tb)
    assert_close(ember.einsum("ij,jk", ea, eb), want, rtol=1e-12, atol=1e-12)
    assert_close(ember.einsum("ij,jk", [ea, eb]), want, rtol=1e-12, atol=1e-12)
    assert_close(ember.einsum(ea, [0, 1], eb, [1, 2], [0, 2]),
                 torch.einsum(ta, [0, 1], tb, [1, 2], [0, 2]), rtol=1e-12, atol=1e-12)
    assert_close(ember.einsum(ea, [Ellipsis, 30], eb, [30, 2]),
                 torch.einsum(ta, [Ellipsis, 30], tb, [30, 2]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("equation,shapes", [("ii->i", [(3, 3)]), ("iji->j", [(2, 3, 2)]),
                                             ("iij,j->i", [(2, 2, 3), (3,)])])
def test_einsum_gradient_with_repeated_subscripts(equation, shapes, rng):
    arrays = [rng.standard_normal(s) for s in shapes]
    es = [ember.tensor(a).requires_grad_(True) for a in arrays]
    ts = [torch.from_numpy(a).requires_grad_(True) for a in arrays]
    eo, to = ember.einsum(equation, es), torch.einsum(equation, ts)
    cot = rng.standard_normal(tuple(to.shape))
    for eg, tg in zip(ember.autograd.grad(eo, es, ember.tensor(cot)),
                      torch.autograd.grad(to, ts, torch.from_numpy(cot))):
        assert_close(eg, tg, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dims", [2, 0, 1, ([0, 1], [2, 0]), torch.tensor(1)])
def test_tensordot_dims_forms(dims, rng):
    a, b = rng.standard_normal((2, 1, 3)), rng.standard_normal((3, 1, 2))
    if isinstance(dims, tuple):
        b = rng.standard_normal((1, 4, 2))      # a's dim 1 (size 1) broadcasts against b's 2
    edims = ember.tensor(dims.numpy()) if isinstance(dims, torch.Tensor) else dims
    if dims == 2 and not isinstance(dims, torch.Tensor):
        b = rng.standard_normal((1, 3, 5))
    eo = ember.tensordot(ember.tensor(a), ember.tensor(b), dims=edims)
    to = torch.tensordot(torch.from_numpy(a), torch.from_numpy(b), dims=dims)
    assert_close(eo, to, rtol=1e-12, atol=1e-12)


def test_mean_backward_of_a_0d_tensor():
    x, t = ember.tensor(2.0).requires_grad_(True), torch.tensor(2.0).requires_grad_(True)
    ember.mean(x, 0, keepdim=True).backward()
    torch.mean(t, 0, keepdim=True).backward()
    assert_close(x.grad, t.grad)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("kwargs", [{"ignore_index": 1}, {"ignore_index": -100},
                                    {"ignore_index": 2, "label_smoothing": 0.2},
                                    {"ignore_index": 0, "weight": True},
                                    {"label_smoothing": 0.1, "weight": True}])
@pytest.mark.parametrize("loss", ["nll_loss", "cross_entropy"])
def test_class_losses_options(loss, kwargs, reduction, rng):
    kwargs = dict(kwargs)
    if loss == "nll_loss" and "label_smoothing" in kwargs:
        pytest.skip("nll_loss has no label_smoothing")
    x, target = rng.standard_normal((4, 3, 2)), rng.integers(0, 3, (4, 2))
    w = rng.uniform(0.5, 2, 3) if kwargs.pop("weight", False) else None
    ex, tx = ember.tensor(x).requires_grad_(True), torch.from_numpy(x).requires_grad_(True)
    e_kw = dict(kwargs, weight=None if w is None else ember.tensor(w), reduction=reduction)
    t_kw = dict(kwargs, weight=None if w is None else torch.from_numpy(w), reduction=reduction)
    eo = getattr(ember.nn.functional, loss)(ex, ember.tensor(target), **e_kw)
    to = getattr(torch.nn.functional, loss)(tx, torch.from_numpy(target), **t_kw)
    assert_close(eo, to.detach(), rtol=1e-12, atol=1e-12)
    cot = rng.standard_normal(tuple(to.shape))
    eo.backward(ember.tensor(cot))
    to.backward(torch.from_numpy(cot))
    assert_close(ex.grad, tx.grad, rtol=1e-10, atol=1e-12, what="grad")


def test_cross_entropy_with_class_probabilities(rng):
    x, p = rng.standard_normal((3, 4)), rng.dirichlet(np.ones(4), 3)
    w = rng.uniform(0.5, 2, 4)
    eo = ember.nn.functional.cross_entropy(ember.tensor(x), ember.tensor(p), ember.tensor(w),
                                           label_smoothing=0.1)
    to = torch.nn.functional.cross_entropy(torch.from_numpy(x), torch.from_numpy(p),
                                           torch.from_numpy(w), label_smoothing=0.1)
    assert_close(eo, to, rtol=1e-12, atol=1e-12)


EMPTY_CASES = [
    ("softmax", lambda lib, x: lib.nn.functional.softmax(x, dim=1), (3, 0)),
    ("softmax0", lambda lib, x: lib.nn.functional.softmax(x, dim=1), (0, 3)),
    ("softmax 0-d", lambda lib, x: lib.nn.functional.softmax(x, dim=0), ()),
    ("log_softmax", lambda lib, x: lib.nn.functional.log_softmax(x, dim=1), (3, 0)),
    ("log_softmax 0-d", lambda lib, x: lib.nn.functional.log_softmax(x, dim=0), ()),
    ("group_norm", lambda lib, x: lib.nn.functional.group_norm(x, 2), (0, 4, 3)),
    ("group_norm spatial", lambda lib, x: lib.nn.functional.group_norm(x, 2), (2, 4, 0)),
    ("batch_norm", lambda lib, x: lib.nn.functional.batch_norm(
        x, lib.zeros(4, dtype=x.dtype), lib.ones(4, dtype=x.dtype), training=True), (0, 4, 3)),
    ("vector_norm", lambda lib, x: lib.linalg.vector_norm(x), (0, 3)),
    ("vector_norm 0-d", lambda lib, x: lib.linalg.vector_norm(x), ()),
    ("eigh", lambda lib, x: lib.linalg.eigh(x), (2, 0, 0)),
    ("eig", lambda lib, x: lib.linalg.eig(x), (2, 0, 0)),
    ("svd", lambda lib, x: lib.linalg.svd(x), (2, 0, 0)),
    ("svd wide", lambda lib, x: lib.linalg.svd(x), (2, 0, 3)),
    ("qr", lambda lib, x: lib.linalg.qr(x), (0, 3, 2)),
    ("cholesky", lambda lib, x: lib.linalg.cholesky(x), (2, 0, 0)),
]


@pytest.mark.parametrize("name,fn,shape", EMPTY_CASES, ids=[c[0] for c in EMPTY_CASES])
def test_empty_and_0d_inputs(name, fn, shape, rng):
    x = rng.standard_normal(shape)
    eo, to = fn(ember, ember.tensor(x)), fn(torch, torch.from_numpy(x))
    eo = eo if isinstance(eo, (tuple, list)) else [eo]
    to = to if isinstance(to, (tuple, list)) else [to]
    for e, t in zip(eo, to):
        assert tuple(e.shape) == tuple(t.shape)
        if t.numel():
            assert_close(e, t, rtol=1e-12, atol=1e-12, what=name)


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_qr_backward_on_wide_matrices(dtype, rng):
    a = rng.standard_normal((2, 3, 5)).astype(dtype)
    if dtype == np.complex128:
        a = a + 1j * rng.standard_normal((2, 3, 5))
    e, t = ember.tensor(a).requires_grad_(True), torch.from_numpy(a).requires_grad_(True)
    eq, er = ember.linalg.qr(e)
    tq, tr = torch.linalg.qr(t)
    cots = [rng.standard_normal(tuple(x.shape)).astype(dtype) for x in (tq, tr)]
    # a loss that does not depend on the signs of Q's columns (they are LAPACK's in both)
    eg, = ember.autograd.grad([eq, er], [e], [ember.tensor(c) for c in cots])
    tg, = torch.autograd.grad([tq, tr], [t], [torch.from_numpy(c) for c in cots])
    assert_close(eg, tg, rtol=1e-9, atol=1e-10)


def _copy_mha(e_mha, t_mha):
    with torch.no_grad():
        for name, p in t_mha.named_parameters():
            target = e_mha
            for part in name.split("."):
                target = getattr(target, part)
            target._array[...] = p.detach().numpy()


@pytest.mark.parametrize("bias_kv,zero_attn", [(True, False), (False, True), (True, True)])
@pytest.mark.parametrize("masks", [False, True])
def test_multihead_attention_bias_kv_and_zero_attn(bias_kv, zero_attn, masks, rng):
    torch.manual_seed(0)
    t_mha = torch.nn.MultiheadAttention(4, 2, add_bias_kv=bias_kv, add_zero_attn=zero_attn)
    t_mha = t_mha.double()
    e_mha = ember.nn.MultiheadAttention(4, 2, add_bias_kv=bias_kv, add_zero_attn=zero_attn,
                                        dtype=ember.float64)
    assert [n for n, _ in e_mha.named_parameters()] == [n for n, _ in t_mha.named_parameters()]
    _copy_mha(e_mha, t_mha)
    q, k = rng.standard_normal((3, 2, 4)), rng.standard_normal((5, 2, 4))
    kw_e, kw_t = {}, {}
    if masks:
        kpm = np.zeros((2, 5), bool)
        kpm[1, 2] = True
        am = rng.standard_normal((3, 5))
        kw_e = dict(key_padding_mask=ember.tensor(kpm), attn_mask=ember.tensor(am))
        kw_t = dict(key_padding_mask=torch.from_numpy(kpm), attn_mask=torch.from_numpy(am))
    eo, ew = e_mha(ember.tensor(q), ember.tensor(k), ember.tensor(k), **kw_e)
    to, tw = t_mha(torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(k), **kw_t)
    assert_close(eo, to.detach(), rtol=1e-10, atol=1e-12, what="output")
    assert_close(ew, tw.detach(), rtol=1e-10, atol=1e-12, what="weights")
