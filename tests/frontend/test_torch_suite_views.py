"""View semantics as PyTorch's test_view_ops.py pins them down: which ops return views
(`_is_view`, `_base`, shared storage and offset), their strides and contiguity, writes
through views, view vs reshape and their errors, non-differentiable views (detach,
view(dtype)), refusals to write a tensor whose elements share memory, and the
clone/empty_like/contiguous memory-format rules. Each case runs with torch and ember."""
from __future__ import annotations

import pytest

from torch_suite_common import both, raises_both


def _base3(L):
    return L.arange(24.).reshape(2, 3, 4)


def _view_facts(t, v):
    """What a program can observe of v against the tensor it came from."""
    return [v._is_view(), v._base is t, v.untyped_storage().data_ptr() ==
            t.untyped_storage().data_ptr(), v.storage_offset(), v.stride(), v.is_contiguous(),
            v.shape]


VIEWS = {
    "view": lambda t: t.view(6, 4),
    "view_minus_one": lambda t: t.view(-1),
    "reshape_of_contiguous": lambda t: t.reshape(4, 6),
    "transpose": lambda t: t.transpose(0, 2),
    "t": lambda t: t[0].t(),
    "permute": lambda t: t.permute(2, 0, 1),
    "expand": lambda t: t[:, :1].expand(2, 5, 4),
    "expand_minus_one": lambda t: t[:, :1].expand(-1, 3, -1),
    "expand_as": lambda t: t[:, :1].expand_as(t),
    "unfold": lambda t: t.unfold(2, 2, 1),
    "diagonal": lambda t: t.diagonal(0, 1, 2),
    "diagonal_offset": lambda t: t.diagonal(1, 1, 2),
    "as_strided": lambda t: t.as_strided((2, 2), (1, 2), 1),
    "unflatten": lambda t: t.unflatten(2, (2, 2)),
    "movedim": lambda t: t.movedim(0, -1),
    "narrow": lambda t: t.narrow(1, 1, 2),
    "select": lambda t: t.select(1, 1),
    "int_index": lambda t: t[1],
    "step_slice": lambda t: t[:, ::2],
    "squeeze": lambda t: t[:1].squeeze(0),
    "squeeze_all": lambda t: t[:1, :1].squeeze(),
    "unsqueeze": lambda t: t.unsqueeze(1),
    "flatten_contiguous": lambda t: t.flatten(),
    "split": lambda t: t.split(1, 1)[1],
    "split_sizes": lambda t: t.split([1, 2], 1)[1],
    "chunk": lambda t: t.chunk(2, 2)[1],
    "tensor_split": lambda t: t.tensor_split(2, dim=2)[1],
    "hsplit": lambda t: t.hsplit(3)[1],
    "unbind": lambda t: t.unbind(1)[2],
    "view_as": lambda t: t.view_as(t),
    "mT": lambda t: t.mT,
    "T_of_matrix": lambda t: t[0].T,
    "swapaxes": lambda t: t.swapaxes(0, 1),
    "none_index": lambda t: t[None],
    "ellipsis_index": lambda t: t[..., 1],
    "slice_from": lambda t: t[1:],
    "ravel_contiguous": lambda t: t.ravel(),
    "contiguous_is_self": lambda t: t.contiguous(),
    # not views: a copy, or a storage-sharing tensor torch does not record as a view
    "detach": lambda t: t.detach(),
    "view_dtype_same_size": lambda t: t.view(__import__("torch").int32)
    if "torch" in type(t).__module__ else t.view(__import__("ember").int32),
    "flatten_copy": lambda t: t.transpose(0, 1).flatten(),
    "contiguous_copy": lambda t: t.transpose(0, 1).contiguous(),
    "advanced_index_copy": lambda t: t[[0, 1]],
    "mask_copy": lambda t: t[t > 3],
    "flip_copy": lambda t: t.flip(0),
}


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_view_or_copy(name):
    def f(L):
        t = _base3(L)
        v = VIEWS[name](t)
        facts = _view_facts(t, v)
        if facts[2]:                     # shares memory: the offset must match too
            return facts
        return [facts[0], facts[1], facts[4], facts[5], facts[6]]
    both(f)


def test_complex_views():
    def f(L):
        c = L.tensor([1 + 2j, 3 + 4j])
        r = L.view_as_real(c)
        real, imag = c.real, c.imag
        imag[0] = 9
        m = L.arange(4.).reshape(2, 2)
        z = L.view_as_complex(m)
        return [r._is_view(), r._base is c, r.stride(), real._is_view(), imag._base is c,
                imag.storage_offset(), c, z._is_view(), z._base is m, z.stride()]
    both(f)


def test_view_of_view_has_the_root_base():
    both(lambda L: (lambda t: [t.view(6, 4)[1:]._base is t,
                               t.view(6, 4)[1:]._is_view()])(_base3(L)))


def test_writes_go_through_views():
    def f(L):
        t = _base3(L)
        v = t.transpose(0, 2)
        v[0, 0, 0] = -1
        v[1] += 100
        t.diagonal(0, 1, 2).fill_(7)
        t[0][1] = 5
        t[:, 2][1] = 6
        t[[0, 1]][0] = 1000                         # advanced index: a copy, no effect
        d = t.detach()
        d[1, 0, 0] = -3                             # detach shares the storage
        return t
    both(f)


def test_version_counter_is_shared_through_views():
    def f(L):
        t = L.zeros(3)
        v = t[1:]
        d = t.detach()
        v.mul_(2)
        d.add_(1)
        return [t._version, v._version, d._version]
    both(f)


def test_strides_and_contiguity():
    def f(L):
        cl = L.empty(2, 3, 4, 5).to(memory_format=L.channels_last)
        return [L.empty(1, 3).t().is_contiguous(), L.empty(3, 1).t().is_contiguous(),
                L.empty(2, 3)[:, :1].is_contiguous(), L.empty(0, 3).t().is_contiguous(),
                L.zeros(3)[:1].expand(3).stride(), L.tensor(1.).expand(2, 2).stride(),
                cl.stride(), cl.is_contiguous(),
                cl.is_contiguous(memory_format=L.channels_last),
                L.empty(2, 1, 4, 5).is_contiguous(memory_format=L.channels_last),
                _base3(L).transpose(0, 1).view(3, 2, 2, 2).stride(),
                L.arange(10.).unfold(0, 3, 2)]
    both(f)


@pytest.mark.parametrize("fn, words", [
    (lambda L: _base3(L).transpose(0, 1).view(-1), ("view size is not compatible",)),
    (lambda L: _base3(L).transpose(1, 2).view(2, 12), ("view size is not compatible",)),
    (lambda L: _base3(L).view(5, 5), ("invalid for input of size 24",)),
    (lambda L: _base3(L).view(-1, -1), ("only one dimension can be inferred",)),
    (lambda L: _base3(L).reshape(7, -1), ("invalid for input of size 24",)),
    (lambda L: L.empty(0, 3).view(-1, 0), ("ambiguous",)),
    (lambda L: L.zeros(2, 3).expand(3, 3), ("expanded size",)),
    (lambda L: L.zeros(2, 3).expand(3), ("number of sizes provided",)),
    (lambda L: L.zeros(3).expand(-1, 3), ("isn't allowed in a leading",)),
    (lambda L: L.arange(10.).unfold(0, 11, 1), ("maximum size for tensor at dimension",)),
    (lambda L: _base3(L).unflatten(-1, (3, 2)), ("unflatten",)),
    (lambda L: _base3(L).narrow(2, 3, 2), ("exceeds dimension size",)),
    (lambda L: L.zeros(2, 3, dtype=L.int16).view(L.float32), ("must be divisible by 2",)),
    (lambda L: _base3(L).movedim((0, 0), (1, 2)), ("repeated dim",)),
])
def test_view_refusals(fn, words):
    raises_both(fn, *words)


@pytest.mark.parametrize("fn", [
    lambda L: _base3(L).transpose(0, 3),
    lambda L: _base3(L).select(1, 5),
    lambda L: _base3(L)[5],
], ids=["transpose_dim", "select_index", "int_index"])
def test_index_and_dim_errors(fn):
    raises_both(fn, kind=IndexError)


def test_view_dtype_of_another_size():
    both(lambda L: (lambda v: [v.shape, v.stride(), v._is_view()])(
        L.zeros(2, 2).view(L.uint8)))
    both(lambda L: L.zeros(2, 4, dtype=L.int16).view(L.float64).shape)


def test_misc_view_shapes():
    both(lambda L: [_base3(L).movedim((0, 1), (2, 0)).shape, _base3(L).moveaxis(0, 2).stride(),
                    L.zeros(1, 2, 1).squeeze((0, 2)).shape, L.zeros(1, 2, 1).squeeze(1).shape,
                    _base3(L).unflatten(-1, (-1, 2)).shape, _base3(L).narrow(2, -2, 2),
                    _base3(L).narrow(2, L.tensor(1), 2),
                    L.arange(10.).as_strided((3,), (2,), 1).as_strided((2,), (1,)),
                    L.diag_embed(L.tensor([1., 2]))])


@pytest.mark.parametrize("fn", [
    lambda L: L.zeros(1).expand(3).add_(1),
    lambda L: L.zeros(1).expand(3).mul_(2),
    lambda L: L.zeros(1).expand(3).copy_(L.ones(3)),
    lambda L: L.zeros(1).expand(3).relu_(),
    lambda L: L.zeros(1).expand(3).exp_(),
    lambda L: L.zeros(1).expand(3).clamp_(0, 1),
    lambda L: L.zeros(3, 1).expand(3, 2).uniform_(),
], ids=["add_", "mul_", "copy_", "relu_", "exp_", "clamp_", "uniform_"])
def test_writing_an_expanded_tensor_is_refused(fn):
    raises_both(fn, "more than one element of the written-to tensor")


def test_fills_of_an_expanded_tensor_are_allowed():
    def f(L):
        t = L.zeros(1).expand(3)
        t.fill_(2)
        a = t.tolist()
        t.zero_()
        t[0] = 4.
        return a, t
    both(f)

    def masked(L):
        t = L.zeros(1).expand(3)
        t.masked_fill_(L.tensor([True, False, True]), 5.)
        return t
    both(masked, warns="on expanded tensors is deprecated")


def test_memory_format_rules():
    def f(L):
        cl = L.empty(2, 3, 4, 5).to(memory_format=L.channels_last)
        plain = L.empty(2, 3, 4, 5)
        return [L.empty_like(cl).stride(), L.zeros_like(cl).stride(),
                L.ones_like(cl, memory_format=L.contiguous_format).stride(),
                L.rand_like(cl).stride(), L.full_like(cl, 2).stride(), cl.clone().stride(),
                cl.clone(memory_format=L.contiguous_format).stride(),
                plain.contiguous(memory_format=L.channels_last).stride(),
                plain.to(memory_format=L.channels_last) is plain, (cl + 1).stride(),
                (cl * cl).stride(), cl.relu().stride(), (cl + plain).stride(),
                L.ones(3, 1).expand(3, 4).contiguous().stride(),
                (L.ones(3, 1).expand(3, 4) + 1).stride()]
    both(f)


def test_is_set_to_and_storage_sharing():
    def f(L):
        t = _base3(L)
        v = t[1]
        return [t.is_set_to(t), t.is_set_to(t.view(2, 3, 4)), t.is_set_to(t.view(-1)),
                t.untyped_storage().data_ptr() == v.untyped_storage().data_ptr(),
                v.untyped_storage().nbytes(), v.storage_offset()]
    both(f)


def test_writing_an_empty_expanded_tensor_is_allowed():
    def f(L):
        t = L.zeros(0, 1).expand(0, 5)
        t.copy_(L.zeros(0, 5))
        t.add_(1)
        return [t.shape, t.tolist()]
    both(f)
