"""Regression tests for ops that gave wrong results (issue 13): each failed before its fix.

Every case compares ember with torch on the same random input, values and float64
gradients through a random cotangent.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember

from tests.oracle import assert_close


def _pair(a: np.ndarray, grad=True):
    """The same array as an ember tensor and a torch tensor, both leaves."""
    e, t = ember.tensor(a.copy()), torch.from_numpy(a.copy())
    if grad:
        e.requires_grad_(True)
        t.requires_grad_(True)
    return e, t


def _grads_match(e_outs, t_outs, e_ins, t_ins, rng, rtol=1e-7, atol=1e-9):
    """Pull the same random cotangent back through both and compare input gradients."""
    e_outs, t_outs = list(e_outs), list(t_outs)
    cots = [rng.standard_normal(tuple(t.shape)) for t in t_outs]
    cots = [c + 1j * rng.standard_normal(c.shape) if t.is_complex() else c
            for c, t in zip(cots, t_outs)]
    t_grads = torch.autograd.grad(t_outs, t_ins, [torch.from_numpy(c) for c in cots],
                                  allow_unused=True)
    e_grads = ember.autograd.grad(e_outs, e_ins, [ember.tensor(c) for c in cots],
                                  allow_unused=True)
    for eg, tg in zip(e_grads, t_grads):
        assert_close(eg, tg, rtol=rtol, atol=atol, what="gradient")


@pytest.mark.parametrize("shape,size,dim", [((5, 5, 5), 5, 1), ((4, 5), 5, 1), ((3, 2), 3, 0)])
def test_split_backward_when_one_chunk_covers_the_dim(shape, size, dim, rng):
    e, t = _pair(rng.standard_normal(shape))
    eo, to = ember.split(e, size, dim), torch.split(t, size, dim)
    assert len(eo) == len(to) == 1
    _grads_match(eo, to, [e], [t], rng)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
def test_embedding_max_norm_renormalizes_referenced_rows_in_place(norm_type, rng):
    w = rng.standard_normal((6, 3)) * 2
    idx = np.asarray([[0, 2, 2], [5, 0, 1]])
    ew, tw = _pair(w)
    eo = ember.nn.functional.embedding(ember.tensor(idx), ew, max_norm=1.0, norm_type=norm_type)
    to = torch.nn.functional.embedding(torch.from_numpy(idx), tw, max_norm=1.0,
                                       norm_type=norm_type)
    assert_close(ew.detach(), tw.detach(), rtol=1e-12, atol=1e-12, what="renormalized weight")
    assert_close(eo.detach(), to.detach(), rtol=1e-12, atol=1e-12, what="lookup")
    _grads_match([eo], [to], [ew], [tw], rng)


def test_embedding_module_max_norm(rng):
    ember.manual_seed(0)
    emb = ember.nn.Embedding(5, 4, max_norm=0.5)
    idx = ember.tensor(np.asarray([1, 3]))
    out = emb(idx)
    assert np.all(np.linalg.norm(out.detach().numpy(), axis=-1) <= 0.5 + 1e-6)
    untouched = np.linalg.norm(emb.weight.detach().numpy()[[0, 2, 4]], axis=-1)
    assert np.all(untouched > 0.5)      # init N(0,1) rows of 4: unreferenced rows kept


@pytest.mark.parametrize("zeros", [[2], [0], [1, 3], [4]])
def test_cumprod_backward_with_zeros(zeros, rng):
    x = rng.standard_normal((2, 5)) + 0.5
    x[:, zeros] = 0
    e, t = _pair(x)
    _grads_match([ember.cumprod(e, 1)], [torch.cumprod(t, 1)], [e], [t], rng)


@pytest.mark.parametrize("scale", [1.0, 500.0, 1e4])
def test_logcumsumexp_backward_on_large_inputs(scale, rng):
    x = rng.standard_normal((3, 6)) * scale
    e, t = _pair(x)
    _grads_match([ember.logcumsumexp(e, 1)], [torch.logcumsumexp(t, 1)], [e], [t], rng,
                 rtol=1e-9)


def test_logcumsumexp_complex_keeps_the_imaginary_branch(rng):
    z = rng.standard_normal((2, 5)) + 1j * rng.standard_normal((2, 5)) * 6
    z[0, 1] = z[0, 0].real - 2j        # a tie in the real part: the new element leads
    eo, to = ember.logcumsumexp(ember.tensor(z), 1), torch.logcumsumexp(torch.from_numpy(z), 1)
    assert_close(eo, to, rtol=1e-12, atol=1e-12, what="complex logcumsumexp")


@pytest.mark.parametrize("size,stride,offset", [([2, 2, 2, 2], [1, 1, 1, 1], 0),
                                                ([2, 1, 1, 2], [1, 7, 7, 1], 0),
                                                ([3, 2], [1, 1], None), ([2, 2], [1, 2], 1)])
def test_as_strided_backward_adds_overlaps_and_reads_the_view_offset(size, stride, offset, rng):
    e_base, t_base = _pair(rng.standard_normal(16))
    # a view with a storage offset (2): size, stride and offset refer to the storage
    e_x, t_x = e_base[2:14], t_base[2:14]
    eo = ember.as_strided(e_x, size, stride, offset)
    to = torch.as_strided(t_x, size, stride, offset)
    assert_close(eo.detach(), to.detach(), rtol=0, atol=0, what="values")
    _grads_match([eo], [to], [e_base], [t_base], rng)


def test_as_strided_backward_through_an_expanded_input(rng):
    e_base, t_base = _pair(rng.standard_normal(3))
    eo = e_base.unsqueeze(0).expand(2, 3).as_strided([2, 2], [1, 1], 0)
    to = t_base.unsqueeze(0).expand(2, 3).as_strided([2, 2], [1, 1], 0)
    _grads_match([eo], [to], [e_base], [t_base], rng)


@pytest.mark.parametrize("mode", ["circular", "reflect", "replicate"])
@pytest.mark.parametrize("pad", [(-1, 2), (2, -1), (-2, -1), (3, -2), (1, -2, -1, 2)])
def test_pad_with_negative_padding(mode, pad, rng):
    e, t = _pair(rng.standard_normal((1, 5, 6)))
    eo = ember.nn.functional.pad(e, pad, mode=mode)
    to = torch.nn.functional.pad(t, pad, mode=mode)
    assert_close(eo.detach(), to.detach(), rtol=0, atol=0, what="values")
    _grads_match([eo], [to], [e], [t], rng)


def test_pad_negative_padding_errors_as_torch():
    x = ember.ones(1, 1, 6)
    with pytest.raises((RuntimeError, ValueError), match="is too small"):
        ember.nn.functional.pad(x, (-3, -3), mode="replicate")
    with pytest.raises((RuntimeError, ValueError), match="wrapping around more than once"):
        ember.nn.functional.pad(x, (5, -2), mode="circular")


def test_squeeze_with_an_empty_dim_list_squeezes_nothing():
    x = ember.ones(1, 3, 1)
    assert tuple(ember.squeeze(x, ()).shape) == (1, 3, 1)
    assert tuple(x.squeeze([]).shape) == (1, 3, 1)
    assert tuple(x.squeeze().shape) == (3,)


def test_complex_logsumexp_wraps_the_imaginary_part(rng):
    z = rng.standard_normal((3, 4)) + 1j * rng.standard_normal((3, 4)) * 8
    for dim in (0, 1):
        assert_close(ember.logsumexp(ember.tensor(z), dim), torch.logsumexp(
            torch.from_numpy(z), dim), rtol=1e-12, atol=1e-12, what=f"dim {dim}")
    one = np.asarray(3 + 20j)
    assert_close(ember.logsumexp(ember.tensor(one), 0),
                 torch.logsumexp(torch.from_numpy(one), 0), rtol=1e-12, atol=1e-12)


def test_l1_loss_of_complex_input_is_real(rng):
    z, w = (rng.standard_normal((2, 3)) + 1j * rng.standard_normal((2, 3)) for _ in range(2))
    for reduction in ("mean", "sum", "none"):
        eo = ember.nn.functional.l1_loss(ember.tensor(z), ember.tensor(w), reduction=reduction)
        to = torch.nn.functional.l1_loss(torch.from_numpy(z), torch.from_numpy(w),
                                         reduction=reduction)
        assert eo.dtype == ember.float64
        assert_close(eo, to, rtol=1e-12, atol=1e-12, what=reduction)


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_pinv_hermitian_reads_the_lower_triangle(dtype, rng):
    a = rng.standard_normal((2, 4, 4)).astype(dtype)
    if dtype == np.complex128:
        a = a + 1j * rng.standard_normal((2, 4, 4))
    a[0, :, 1] = 0                               # rank-deficient: a zero eigenvalue dropped
    a[0, 1, :] = 0
    e, t = _pair(a)                              # not Hermitian: the upper triangle is noise
    eo = ember.linalg.pinv(e, hermitian=True)
    to = torch.linalg.pinv(t, hermitian=True)
    assert_close(eo.detach(), to.detach(), rtol=1e-9, atol=1e-10, what="values")
    _grads_match([eo], [to], [e], [t], rng, rtol=1e-8, atol=1e-9)


def test_logcumsumexp_forward_mode_on_large_inputs(rng):
    import ember.func
    x, t = rng.standard_normal((3, 5)) * 300, rng.standard_normal((3, 5))
    _, tangent = ember.func.jvp(lambda a: ember.logcumsumexp(a, 1), (ember.tensor(x),),
                                (ember.tensor(t),))
    out = np.logaddexp.accumulate(x, axis=1)
    want = np.einsum("bik,bi->bk", np.triu(np.exp(x[:, :, None] - out[:, None, :])), t)
    assert_close(tangent, want, rtol=1e-9, atol=1e-12, what="jvp")


def test_tensor_view_attributes(rng):
    z = rng.standard_normal((2, 3)) + 1j * rng.standard_normal((2, 3))
    e, t = ember.tensor(z.copy()), torch.from_numpy(z.copy())
    for name in ("T", "mT", "H", "mH", "real", "imag"):
        assert_close(getattr(e, name), getattr(t, name), rtol=0, atol=0, what=name)
    e.real = ember.tensor(np.ones(3))            # settable views write through
    t.real = torch.ones(3, dtype=torch.float64)
    e.imag[0, 1] = 7.0
    t.imag[0, 1] = 7.0
    assert_close(e, t, rtol=0, atol=0, what="after setting parts")
    x = ember.ones(2, 3)
    assert x.real is x
    with pytest.raises(RuntimeError, match="non-complex"):
        x.imag
    with pytest.raises(RuntimeError, match="mT is only supported"):
        ember.ones(3).mT
