"""Tensor methods as PyTorch's test_torch.py pins them down: type()/to() variants,
copy_'s broadcasting and casting, item/tolist, Size arithmetic, storage and set_,
resize_, deepcopy keeping shared storage, pickling, version counters, new_* defaults,
dtype/finfo/iinfo facts, the deprecation warnings of x.T and var/std without degrees of
freedom, printing under set_printoptions, and the determinism switches. Each case
runs with torch and ember and compares."""
from __future__ import annotations

import copy
import io
import pickle
import warnings

import numpy as np
import pytest
import torch

import ember
from torch_suite_common import IGNORE, both, raises_both


def test_type_and_to_variants():
    def f(L):
        t = L.tensor([1.5])
        return [t.type(), t.int().type(), L.zeros(2, dtype=L.bool).type(), t.type(L.int32),
                t.type(f"{L.__name__}.DoubleTensor"), t.type(L.float32) is t, t.to(L.int64),
                t.to("cpu") is t, t.to(L.float32) is t, t.to(L.float32, copy=True) is t,
                t.to(L.zeros(1, dtype=L.float64)).dtype, t.to("cpu", L.float16).dtype,
                t.to(device="cpu", dtype=L.int8).dtype,
                t.to(L.float64, non_blocking=True).dtype, t.cpu() is t, t.float() is t,
                t.contiguous() is t, t.detach() is t, t.type_as(L.zeros(1, dtype=L.int32))]
    both(f)


def test_conversion_methods_and_casts():
    def f(L):
        t = L.tensor([1, 0, 2])
        return [t.bool(), t.any(), t.all(), t.float().dtype, t.half().dtype, t.double().dtype,
                t.long().dtype, t.short().dtype, t.char().dtype, t.byte().dtype,
                t.bfloat16().dtype, t.cfloat().dtype, L.tensor([300]).to(L.uint8),
                L.tensor([2.9, -2.9]).int()]
    both(f)


def test_copy_broadcasts_and_casts():
    def f(L):
        t = L.zeros(2, 3)
        t.copy_(L.tensor([1, 2, 3]))
        c = L.zeros(2)
        with __import__("warnings").catch_warnings():
            __import__("warnings").simplefilter("ignore")
            c.copy_(L.tensor([1 + 1j, 2]))
        r = L.zeros(2)
        return [t, c, r.copy_(L.ones(2)) is r]
    both(f)
    raises_both(lambda L: L.zeros(2, 3).copy_(L.ones(2)), "must match")


def test_size_is_a_tuple_that_stays_a_size():
    def f(L):
        s = L.zeros(2, 3).shape
        return [type(s).__name__, s[1:], s.numel(), s == (2, 3), isinstance(s, tuple),
                type(s + (4,)).__name__, s + (4,), type((1,) + s).__name__, (1,) + s,
                type(s * 2).__name__, type(s[:1]).__name__, L.zeros(2, 3).size(-1),
                L.zeros(2, 3).stride(0), L.zeros(2, 3).stride(-1)]
    both(f)
    raises_both(lambda L: L.zeros(2, 3).size(2), kind=IndexError)


def test_metadata_methods():
    def f(L):
        t = L.zeros(2, 3)
        return [t.dim(), t.ndim, t.ndimension(), t.nelement(), t.numel(), t.element_size(),
                t.itemsize, t.nbytes, L.zeros(1, dtype=L.bool).element_size(),
                L.zeros(1, dtype=L.complex64).element_size(), t.is_floating_point(),
                t.is_complex(), t.is_signed(), L.zeros(2, dtype=L.uint8).is_signed(),
                t.is_leaf, t.is_cuda, t.is_sparse, t.is_quantized, t.is_meta,
                t.is_inference(), str(t.device), t.device.type, t.device.index,
                t.get_device(), t[1:].data_ptr() - t.data_ptr(), L.numel(t), L.is_tensor(t),
                L.is_tensor(1), L.is_floating_point(t), L.is_storage(t.untyped_storage()),
                L.tensor([1]).is_nonzero(), L.tensor(0.).is_nonzero(),
                t.is_same_size(L.ones(2, 3)), t.is_same_size(L.ones(3)),
                L.equal(L.tensor([1, 2]), L.tensor([1., 2.])),
                L.tensor([1]).equal(L.tensor([1, 1]))]
    both(f)
    raises_both(lambda L: L.tensor([1, 2]).is_nonzero(), "ambiguous")


def test_dtype_facts():
    def f(L):
        fi = L.finfo(L.float16)
        return [L.float16.is_floating_point, L.float16.is_complex, L.float16.is_signed,
                L.float16.itemsize, L.uint8.is_signed, L.complex64.to_real(),
                L.float32.to_complex(), fi.eps, fi.max, fi.tiny, fi.bits, fi.resolution,
                L.iinfo(L.int8).min, L.iinfo(L.uint8).max, L.finfo().eps]
    both(f)
    raises_both(lambda L: L.finfo(L.int32), kind=TypeError)


def test_storage_set_and_resize(monkeypatch):
    # both libraries warn about TypedStorage once a process: rearm both, so the
    # comparison does not depend on which test of this worker called .storage() first
    from ember.frontend import storage as ember_storage
    torch.storage._reset_warn_typed_storage_removal()
    monkeypatch.setattr(ember_storage, "_warned", [False])

    def f(L):
        t = L.arange(4.)
        s = t.untyped_storage()
        v = t[2:]
        a = L.zeros(3)
        b = L.arange(4.)
        a.set_(b)
        b[0] = 9
        c = L.empty(0)
        c.set_(L.arange(6.).untyped_storage(), 1, (2, 2), (2, 1))
        r = L.arange(6.)
        r.resize_(2, 2)
        g = L.arange(2.)
        g.resize_(3)
        ra = L.arange(6.)
        ra.resize_as_(L.zeros(3))
        return [s.nbytes(), s.size(), len(t.storage()), t.storage().dtype, t.storage().tolist(),
                type(t.storage()[0]).__name__, len(v.storage()), v.storage().tolist(), a,
                a.is_set_to(b), c, r, g.shape, ra,
                L.zeros(1).new_empty_strided((2, 3), (1, 2)).stride()]
    both(f)


def test_python_map_methods():
    def f(L):
        t = L.arange(3.)
        t.apply_(lambda x: x * 2)
        m = L.arange(3.)
        m.map_(L.ones(3), lambda a, b: a + b)
        return [t, m]
    both(f)


def test_deepcopy_keeps_storage_sharing_and_leaves():
    def f(L):
        t = L.arange(6.).reshape(2, 3)
        v = t[:, 1:].t()
        dt, dv = copy.deepcopy([t, v])
        dv[0, 0] = 100
        g = L.zeros(2, requires_grad=True)
        dg = copy.deepcopy(g)
        return [t, dt, dv.stride(), dv.storage_offset(), dg.requires_grad, dg.is_leaf]
    both(f)
    raises_both(lambda L: copy.deepcopy(L.zeros(2, requires_grad=True) * 2),
                "graph leaves")


def test_pickle_round_trip():
    both(lambda L: (lambda s: [s, s.stride()])(pickle.loads(pickle.dumps(L.arange(4.)[1:]))))


def test_fill_zero_and_in_place_returns():
    both(lambda L: [L.zeros(2).fill_(L.tensor(3)), L.zeros(2, dtype=L.int32).fill_(2.7),
                    (lambda t: t.zero_() is t)(L.ones(2))])
    raises_both(lambda L: L.zeros(2).fill_(L.tensor([3.])), "0-dim")
    raises_both(lambda L: L.zeros(2, dtype=L.int64).requires_grad_(), "floating point")
    raises_both(lambda L: L.zeros(3).add_(L.ones(2, 3)), "doesn't match the broadcast shape")


def test_versions_and_detach():
    def f(L):
        t = L.zeros(2)
        v0 = t._version
        t.add_(1)
        t[0] = 3
        d = t.detach()
        d[1] = 5
        return [v0, t._version, d._version, t, d._is_view()]
    both(f)


def test_data_and_grad_attributes():
    def f(L):
        t = L.zeros(2, requires_grad=True)
        d = t.data
        d[0] = 4
        u = L.zeros(2, requires_grad=True)
        u.data = L.ones(3)
        return [t.detach(), d.requires_grad, u.shape, u.requires_grad]
    both(f)


def test_transpose_attributes_and_their_warnings():
    # torch warns once per process about x.T off matrices, so does ember: whether this
    # test sees the warning depends on what ran before it
    both(lambda L: [L.zeros(2, 3, 4).T.shape, L.zeros(3).T.shape, L.tensor(2.).T],
         warns=IGNORE)
    for lib in (torch, ember):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            lib.zeros(2, 3, 4).T
            lib.zeros(2, 3, 4).T
        assert len([w for w in caught if "x.T" in str(w.message)]) <= 1
    both(lambda L: [L.zeros(2, 3).T.shape, L.tensor([[1 + 1j, 2]]).H.tolist(),
                    L.tensor([[[1j]]]).mH.tolist()])
    raises_both(lambda L: L.zeros(3).mT, "only supported on matrices")


def test_var_std_without_degrees_of_freedom_warn():
    both(lambda L: L.tensor([1.]).std(), warns="degrees of freedom is <= 0")
    both(lambda L: L.zeros(2, 1).var(1), warns="degrees of freedom is <= 0")
    both(lambda L: [L.tensor([1., 2, 4]).var(correction=0), L.tensor([1., 2, 4]).var(
        unbiased=False), L.tensor([1., 2, 4]).std(dim=0, keepdim=True)])


def test_empty_reductions():
    both(lambda L: [L.zeros(0).sum(), L.zeros(0).prod(), L.zeros(0, 3).sum(0),
                    L.zeros(0).mean(), L.zeros(0, 3).amax(1).shape])
    raises_both(lambda L: L.zeros(0).max(), "numel() == 0")


def test_reduction_results_and_named_tuples():
    def f(L):
        r = L.tensor([[1, 5], [3, 2]]).max(dim=1)
        u = L.unique(L.tensor([3, 1, 3, 2]), return_inverse=True, return_counts=True)
        return [r.values, r.indices, type(r).__name__, r[0], u,
                L.tensor([2, 1, 2, 1]).sort(stable=True), L.where(L.tensor([0, 1, 1])),
                L.clamp(L.tensor([1., 5]), min=4, max=2), L.tensor([1, 3, 3]).argmax(),
                L.tensor([[1, 3], [3, 1]]).argmax(), L.tensor([1, 2]).repeat(2, 2),
                L.tensor([1, 2]).repeat(0).shape, L.tensor([[1, 2]]).tile(2),
                L.arange(6).view_as(L.zeros(2, 3)).shape]
    both(f)
    raises_both(lambda L: L.tensor([[1, 2]]).repeat(2), "Number of dimensions of repeat dims")


PRINT_CASES = {
    "floats": lambda L: L.tensor([1., 2.5, 3]),
    "ints": lambda L: L.tensor([1, 2, 3]),
    "zero_dim": lambda L: [L.tensor(3.5), L.tensor(2), L.tensor(True)],
    "empty": lambda L: [L.tensor([]), L.zeros(0, 3), L.zeros(2, 0, dtype=L.int32)],
    "dtype_suffixes": lambda L: [L.tensor([1.], dtype=L.float64),
                                 L.tensor([1], dtype=L.int32),
                                 L.tensor([1.], dtype=L.float16),
                                 L.tensor([1.], dtype=L.bfloat16)],
    "scientific": lambda L: [L.tensor([1e-5, 1.]), L.tensor([1e10, 1.]),
                             L.tensor([123456789.]), L.tensor([1e-10, 1e10])],
    "nan_inf": lambda L: L.tensor([float("nan"), float("inf"), -float("inf"), 1.5]),
    "integral_floats": lambda L: L.tensor([1., 2., 100.]),
    "complex": lambda L: L.tensor([1 + 2j, -3.5 - 0.5j]),
    "bool": lambda L: L.tensor([True, False]),
    "requires_grad": lambda L: L.tensor([1.], requires_grad=True),
    "matrix": lambda L: L.arange(6.).reshape(2, 3),
    "three_dims": lambda L: L.arange(12).reshape(2, 2, 3),
    "summarized": lambda L: L.arange(2000),
    "summarized_matrix": lambda L: L.arange(4000.).reshape(40, 100),
    "wrapped_line": lambda L: L.arange(30) * 1000,
    "mixed_signs": lambda L: L.tensor([[-1.5, 2.25], [3, -40]]),
    "transposed": lambda L: L.arange(6.).reshape(2, 3).t(),
    "uint8": lambda L: L.tensor([1, 200], dtype=L.uint8),
}


@pytest.mark.parametrize("name", sorted(PRINT_CASES))
def test_repr(name):
    both(lambda L: (lambda v: [repr(x) for x in v] if isinstance(v, list) else repr(v))(
        PRINT_CASES[name](L)))


@pytest.mark.parametrize("options, make", [
    (dict(precision=2), lambda L: L.tensor([1.23456, 2.])),
    (dict(sci_mode=True), lambda L: L.tensor([1.5, 2.])),
    (dict(threshold=5, edgeitems=2), lambda L: L.arange(10)),
    (dict(linewidth=20), lambda L: L.arange(10.)),
    (dict(profile="short"), lambda L: L.tensor([1.23456, 2.])),
], ids=["precision", "sci_mode", "threshold", "linewidth", "short"])
def test_set_printoptions(options, make):
    def f(L):
        L.set_printoptions(**options)
        try:
            return repr(make(L))
        finally:
            L.set_printoptions(profile="default")
    both(f)


def test_format_and_str():
    both(lambda L: [f"{L.tensor(2.5):.2f}", f"{L.tensor(3)}", format(L.tensor(1.5)),
                    str(L.tensor([1.])) == repr(L.tensor([1.])), repr(L.float32),
                    str(L.int64), repr(L.Size([2, 3]))])


def test_determinism_switches_and_seeds():
    def f(L):
        L.use_deterministic_algorithms(True, warn_only=True)
        a = [L.are_deterministic_algorithms_enabled(),
             L.is_deterministic_algorithms_warn_only_enabled()]
        L.use_deterministic_algorithms(False)
        L.set_deterministic_debug_mode("warn")
        b = L.get_deterministic_debug_mode()
        L.set_deterministic_debug_mode(0)
        L.manual_seed(3)
        x = L.rand(3).tolist()
        L.manual_seed(3)
        state = L.get_rng_state()
        y = L.rand(3).tolist()
        L.set_rng_state(state)
        g = L.Generator().manual_seed(5)
        gx = L.rand(2, generator=g).tolist()
        g.manual_seed(5)
        return [a, b, L.get_deterministic_debug_mode(), x == y, y == L.rand(3).tolist(),
                L.initial_seed(), state.dtype, gx == L.rand(2, generator=g).tolist(),
                g.initial_seed(), L.are_deterministic_algorithms_enabled()]
    both(f)


def test_return_types_print_as_torch():
    both(lambda L: [repr(L.tensor([[1, 5]]).max(1)), str(L.tensor([2, 1]).sort()),
                    repr(L.tensor([3., 1]).topk(1))])


def test_sizes_given_as_numpy_ints_and_zero_dim_tensors():
    both(lambda L: [L.zeros(np.int64(2)).shape, L.zeros((np.int32(2), 3)).shape,
                    L.ones(L.tensor(2), 3).shape, L.zeros(2, 3).view(np.int64(6)).shape,
                    L.zeros(2, 3).reshape(L.tensor(6)).shape,
                    L.zeros(2, 3).view(L.tensor(3), 2).shape])
    raises_both(lambda L: L.ones((2.5,)), kind=TypeError)


def test_dim_order_and_in_place_shape_methods():
    def f(L):
        t = L.zeros(2, 3)
        t.t_()
        u = L.zeros(2, 3)
        u.transpose_(0, 1)
        u.unsqueeze_(0)
        u.squeeze_(0)
        a = L.arange(4.)
        a.as_strided_((2,), (2,))
        return [L.zeros(2, 3, 4, 5).dim_order(),
                L.zeros(2, 3, 4, 5).to(memory_format=L.channels_last).dim_order(),
                L.zeros(3, 4).t().dim_order(), t.shape, t.stride(), u.shape, u.stride(), a]
    both(f)


def test_save_load_keeps_storage_sharing_and_strides():
    def f(L):
        t = L.arange(6.)
        v = t[2:].view(2, 2)
        tr = L.arange(6.).view(2, 3).t()
        cl = L.zeros(2, 3, 4, 5).to(memory_format=L.channels_last)
        buf = io.BytesIO()
        L.save([t, v, tr, cl, {"a": t[:2]}], buf)
        buf.seek(0)
        a, w, r, c, d = L.load(buf)
        w[0, 0] = 100
        return [a, w.stride(), w.storage_offset(), w._is_view(), r.stride(), r.is_contiguous(),
                c.stride(), d["a"].untyped_storage().nbytes(), d["a"].storage_offset()]
    both(f)


def test_float_of_a_tensor_requiring_grad_warns_once_as_torch():
    import subprocess
    import sys
    program = ("import warnings, {lib} as t\n"
               "x = t.ones(2, requires_grad=True)\n"
               "with warnings.catch_warnings(record=True) as seen:\n"
               "    warnings.simplefilter('always')\n"
               "    int(x.sum()); x.sum().item()\n"
               "    with t.no_grad(): float(x.sum())\n"
               "    float(x.sum()); float(x[0])\n"
               "print([str(w.message).splitlines()[0] for w in seen])\n")
    outputs = [subprocess.run([sys.executable, "-c", program.format(lib=lib)],
                              capture_output=True, text=True, check=True).stdout
               for lib in ("torch", "ember")]
    assert outputs[0] == outputs[1]
    assert "requires_grad=True to a scalar" in outputs[1]
