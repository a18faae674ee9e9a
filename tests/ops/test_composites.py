"""The composite functions (ir/composite.py: shape, indexing, statistics and product
functions written as op calls) against torch: values, dtypes and float64 gradients on
random inputs; views share storage where torch's do; compiled equals eager; ops with
data-dependent shapes refuse to be traced with a clear error.

Each case is `f(lib, *inputs)` run once with lib=torch and once with lib=ember on the
same numpy inputs, so a case reads exactly like the user code it checks.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from tests.oracle import TORCH_DTYPES, as_numpy, assert_close


def _f(*shape):
    return ("f", shape)


def _i(*shape, low=0, high=5):
    return ("i", shape, low, high)


def _b(*shape):
    return ("b", shape)


def _make(rng, spec):
    kind, shape = spec[0], spec[1]
    if kind == "f":
        return rng.standard_normal(shape)
    if kind == "i":
        return rng.integers(spec[2], spec[3], size=shape).astype(np.int64)
    return rng.random(shape) > 0.5


# (id, inputs, f(lib, *tensors)); float inputs are float64 and get gradients checked
CASES = [
    ("broadcast_to", [_f(3, 1)], lambda L, x: L.broadcast_to(x, (2, 3, 4))),
    ("broadcast_tensors", [_f(3, 1), _f(4)], lambda L, a, b: L.broadcast_tensors(a, b)),
    ("meshgrid_xy", [_f(3), _f(2), _f(4)], lambda L, a, b, c: L.meshgrid(a, b, c,
                                                                       indexing="xy")),
    ("tensor_split_sections", [_f(7, 3)], lambda L, x: L.tensor_split(x, 3)),
    ("tensor_split_indices", [_f(3, 7)], lambda L, x: x.tensor_split([1, 5, 9], dim=1)),
    ("hsplit", [_f(2, 6)], lambda L, x: L.hsplit(x, 3)),
    ("vsplit_dsplit", [_f(4, 2, 6)], lambda L, x: L.vsplit(x, [1]) + L.dsplit(x, 2)),
    ("split_with_sizes", [_f(6, 2)], lambda L, x: x.split_with_sizes([1, 5])),
    ("unsafe_chunk", [_f(5, 2)], lambda L, x: L.unsafe_chunk(x, 2)),
    ("diag_1d", [_f(4)], lambda L, x: L.diag(x, -1)),
    ("diag_2d", [_f(3, 5)], lambda L, x: L.diag(x, 2)),
    ("diag_embed", [_f(2, 3)], lambda L, x: L.diag_embed(x, 1, 0, 2)),
    ("diagflat", [_f(2, 2)], lambda L, x: L.diagflat(x, -2)),
    ("block_diag", [_f(2, 3), _f(), _f(4)], lambda L, a, b, c: L.block_diag(a, b, c)),
    ("rot90", [_f(2, 3, 4)], lambda L, x: (L.rot90(x, 1, [0, 2]), L.rot90(x, -2, [1, 2]),
                                          L.rot90(x, 3))),
    ("flips", [_f(3, 4)], lambda L, x: (L.fliplr(x), L.flipud(x))),
    ("atleast", [_f(), _f(3), _f(2, 3)], lambda L, a, b, c: L.atleast_3d(a, b, c)
     + L.atleast_2d([a, b]) + (L.atleast_1d(a),)),
    ("column_dstack", [_f(3), _f(3, 2)], lambda L, a, b: (L.column_stack([a, b]),
                                                          L.dstack([a, a]))),
    ("cartesian_prod", [_f(2), _f(3)], lambda L, a, b: L.cartesian_prod(a, b)),
    ("combinations", [_f(4)], lambda L, x: (L.combinations(x, 3),
                                            L.combinations(x, 2, with_replacement=True))),
    ("ravel_sum_to_size", [_f(2, 3, 4)], lambda L, x: (x.transpose(0, 2).ravel(),
                                                       x.sum_to_size(3, 1))),
    ("transposes", [_f(2, 3, 4)], lambda L, x: (x.mT, x.mH, x[0].T, x[0].H)),
    ("copies", [_f(3, 4)], lambda L, x: (L.transpose_copy(x, 0, 1), L.t_copy(x),
                                         L.diagonal_copy(x, 1), L.narrow_copy(x, 1, 1, 2),
                                         L.unsqueeze_copy(x, 1), L.expand_copy(x[:1], (2, 4)),
                                         L.view_copy(x, (6, 2)))),
    ("fill", [_f(2, 3), _f()], lambda L, x, v: (L.fill(x, 2.5), L.fill(x, v))),
    ("masked_select", [_f(3, 4), _b(4)], lambda L, x, m: L.masked_select(x, m)),
    ("masked_scatter", [_f(3, 4), _b(3, 1), _f(12)],
     lambda L, x, m, s: L.masked_scatter(x, m, s)),
    ("take_put", [_f(3, 4), _i(5, low=-12, high=12), _f(5)],
     lambda L, x, i, s: (L.take(x, i), L.put(x, i, s, accumulate=True))),
    ("take_along_dim", [_f(3, 4), _i(3, 2, low=-4, high=4)],
     lambda L, x, i: (L.take_along_dim(x, i, 1), L.take_along_dim(x, i.abs()))),
    ("index_fill_copy", [_f(4, 3), _i(2, low=0, high=3), _f(4, 2)],
     lambda L, x, i, s: (x.index_fill(1, i, -1.0),
                         x.index_copy(1, L.tensor([2, 0]), s))),
    ("index_reduce", [_f(4, 3), _f(5, 3)],
     lambda L, x, s: tuple(x.index_reduce(0, L.tensor([0, 2, 0, 3, 2]), s, r,
                                          include_self=inc)
                           for r in ("prod", "mean", "amax", "amin")
                           for inc in (True, False))),
    ("scatter_reduce", [_f(3, 4), _i(3, 5, low=0, high=4), _f(3, 5)],
     lambda L, x, i, s: tuple(x.scatter_reduce(1, i, s, r, include_self=inc)
                              for r in ("sum", "prod", "mean", "amax", "amin")
                              for inc in (True, False))),
    ("repeat_interleave", [_f(2, 3)], lambda L, x: (
        x.repeat_interleave(2), L.repeat_interleave(x, L.tensor([1, 0, 2]), dim=1),
        L.repeat_interleave(L.tensor([2, 1])))),
    ("nonzero_unique", [_i(3, 4, low=0, high=3)], lambda L, x: (
        L.nonzero(x), L.nonzero(x, as_tuple=True), L.argwhere(x),
        L.unique(x, return_inverse=True, return_counts=True),
        L.unique(x, dim=1), L.unique_consecutive(x.flatten(), return_counts=True))),
    ("searchsorted_bucketize", [_f(6), _f(2, 3)], lambda L, s, v: (
        L.searchsorted(s.sort()[0], v), L.searchsorted(s, v, sorter=s.argsort(),
                                                       side="right"),
        L.bucketize(v, s.sort()[0], right=True))),
    ("aminmax_mode_nanmedian", [_f(3, 5)], lambda L, x: (
        L.aminmax(x, dim=1), L.aminmax(x), L.mode(x.round(), 0), L.nanmedian(x, 1),
        L.nanmedian(x))),
    ("quantiles", [_f(4, 6)], lambda L, x: tuple(
        L.quantile(x, L.tensor([0.1, 0.5, 0.95], dtype=L.float64), dim=1, keepdim=True,
                   interpolation=m) for m in ("linear", "lower", "higher", "midpoint",
                                              "nearest"))
     + (L.nanquantile(L.where(x > 1, float("nan"), x), 0.3, dim=0), L.quantile(x, 0.25))),
    ("msort_dist_renorm", [_f(4, 3), _f(3)], lambda L, x, y: (
        L.msort(x), L.dist(x, y, 3), L.dist(x, y), x.renorm(2, 0, 1.0), x.renorm(1, 1, 2.0))),
    ("cov_corrcoef", [_f(3, 6), _i(6, low=1, high=4)], lambda L, x, fw: (
        L.cov(x), L.cov(x, correction=0, fweights=fw, aweights=fw.double() / 3),
        L.corrcoef(x))),
    ("diff_gradient", [_f(4, 5), _f(4)], lambda L, x, c: (
        L.diff(x, 2, 1, prepend=x[:, :1], append=x[:, -2:]), L.diff(x > 0, dim=0))
     + L.gradient(x, spacing=2.0) + L.gradient(x, spacing=[c], dim=0, edge_order=2)
     + L.gradient(x, dim=1, edge_order=2)),
    ("trapezoid", [_f(3, 5), _f(5)], lambda L, y, x: (
        L.trapezoid(y, x), L.trapezoid(y, dx=0.5, dim=0), L.trapz(y),
        L.cumulative_trapezoid(y, x), L.cumulative_trapezoid(y, dim=0))),
    ("histograms", [_f(20), _f(10, 2)], lambda L, x, p: _histograms(L, x.detach(),
                                                                      p.detach())),

    ("products", [_f(3), _f(3, 4), _f(4), _f(2, 3, 4), _f(2, 4, 2)],
     lambda L, a, m, v, b1, b2: (
         L.addmv(a, m, v, beta=0.5, alpha=2), L.addr(m, a, v, alpha=3),
         L.addbmm(L.ones(3, 2, dtype=L.float64), b1, b2), L.vdot(v, v), L.inner(m, b1),
         L.kron(m, a), L.trace(m))),
]


def _histograms(L, x, p):
    """Counting is not differentiable (torch raises in backward): inputs detached."""
    return (L.histc(x, 5, -1, 1), L.histogram(x, 4),
            L.histogram(x, 3, range=(0.0, 1.0), density=True)[0],
            L.histogramdd(p, [2, 3])[0], L.bincount(L.tensor([1, 3, 3]), minlength=5))


def _to(lib, v, grad):
    if lib is torch:
        t = torch.from_numpy(np.array(v))
    else:
        t = ember.tensor(np.array(v))
    if grad and t.dtype in (torch.float64, ember.float64):
        t.requires_grad_(True)
    return t


def _flat(v):
    if isinstance(v, (tuple, list)):
        return [x for item in v for x in _flat(item)]
    return [v]


def _run(lib, case, arrays, grad):
    _, _, fn = case
    inputs = [_to(lib, a, grad) for a in arrays]
    return inputs, _flat(fn(lib, *inputs))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_composite_matches_torch(case, rng):
    arrays = [_make(rng, spec) for spec in case[1]]
    t_in, t_out = _run(torch, case, arrays, grad=True)
    e_in, e_out = _run(ember, case, arrays, grad=True)
    assert len(e_out) == len(t_out), f"{case[0]}: {len(e_out)} outputs, torch {len(t_out)}"
    for k, (e, t) in enumerate(zip(e_out, t_out)):
        assert TORCH_DTYPES[e.dtype] == t.dtype, f"{case[0]} output {k}: {e.dtype} {t.dtype}"
        assert_close(e, t, rtol=1e-10, atol=1e-12, what=f"{case[0]} output {k}")
    e_diff = [(e, t) for e, t in zip(e_out, t_out) if t.requires_grad]
    if not e_diff:
        return
    cots = [rng.standard_normal(tuple(t.shape)) for _, t in e_diff]
    t_leaves = [t for t in t_in if t.requires_grad]
    e_leaves = [e for e in e_in if e.requires_grad]
    t_loss = sum((t * torch.from_numpy(c)).sum() for (_, t), c in zip(e_diff, cots))
    t_grads = torch.autograd.grad(t_loss, t_leaves, allow_unused=True)
    connected = [e for e, _ in e_diff if e.requires_grad]
    assert len(connected) == len(e_diff), f"{case[0]}: an output lost its gradient"
    e_loss = sum((e * ember.tensor(c)).sum() for (e, _), c in zip(e_diff, cots))
    e_grads = ember.autograd.grad(e_loss, e_leaves, allow_unused=True)
    for k, (eg, tg) in enumerate(zip(e_grads, t_grads)):
        if tg is None or not tg.any():
            assert eg is None or not np.any(as_numpy(eg)), f"{case[0]} grad {k}"
            continue
        assert eg is not None, f"{case[0]}: no gradient for input {k}"
        assert_close(eg, tg, rtol=1e-8, atol=1e-10, what=f"{case[0]} grad {k}")


# --- views share storage like torch's ------------------------------------------------------

VIEWS = [
    ("broadcast_to", lambda L, x: L.broadcast_to(x[:, :1], (2, 3, 4))),
    ("meshgrid", lambda L, x: L.meshgrid(x[0], x[1])[0]),
    ("tensor_split", lambda L, x: L.tensor_split(x, 2, dim=1)[1]),
    ("hsplit", lambda L, x: L.hsplit(x, [1])[1]),
    ("atleast_3d", lambda L, x: L.atleast_3d(x)),
    ("ravel", lambda L, x: x.ravel()),
    ("T", lambda L, x: x.T),
    ("mT", lambda L, x: x.mT),
    ("mH", lambda L, x: x.mH),
    ("unsafe_split", lambda L, x: L.unsafe_split(x, 2)[1]),
]


@pytest.mark.parametrize("make", [v[1] for v in VIEWS], ids=[v[0] for v in VIEWS])
def test_views_share_storage_and_strides(make):
    base = np.arange(12.0).reshape(3, 4)
    t, e = torch.tensor(base), ember.tensor(base)
    tv, ev = make(torch, t), make(ember, e)
    assert tuple(ev.stride()) == tuple(tv.stride())
    assert ev.storage_offset() == tv.storage_offset()
    e.add_(1.0)                                    # a write through the base shows up
    assert_close(ev, make(torch, t + 1.0), what="view after writing the base")


def test_copies_do_not_share_storage():
    e = ember.arange(6.0).reshape(2, 3)
    copies = [ember.transpose_copy(e, 0, 1), ember.narrow_copy(e, 1, 0, 2),
              ember.diagonal_copy(e), ember.alias_copy(e), ember.diag(e)]
    e.add_(10.0)
    assert all(float(c.max()) < 10 for c in copies)


def test_in_place_variants_write_and_bump_versions(rng):
    x = rng.standard_normal((4, 3))
    cases = [
        (lambda t: t.fill_(2.0), lambda t: t.fill_(2.0)),
        (lambda t: t.zero_(), lambda t: t.zero_()),
        (lambda t: t.index_fill_(0, t.new_tensor([1, 3]).long(), 5.0), None),
        (lambda t: t.masked_scatter_(t > 0, t.new_tensor(np.arange(12.0))), None),
        (lambda t: t.renorm_(2, 0, 1.0), None),
    ]
    for ember_fn, _ in cases:
        e, t = ember.tensor(x), torch.tensor(x)
        version = e._version
        out = ember_fn(e)
        assert out is e and e._version > version
        assert_close(e, ember_fn(t), what="in-place result")


# --- compile and tracing ------------------------------------------------------------------

def test_composites_compile_equal_eager(rng):
    def model(x, i, c):
        parts = ember.tensor_split(x, 3, dim=1)
        q = ember.quantile(x, 0.3, dim=0)
        g = ember.gradient(x, dim=1)[0]
        return (ember.kron(parts[0], parts[1]).sum() + q.sum() + g.sum(),
                x.scatter_reduce(1, i, x[:, :2], "amax"),
                ember.diag_embed(x).sum(0), ember.cov(x), ember.searchsorted(c, x),
                ember.masked_scatter(x, x > 0, x.flatten()), ember.trapezoid(x))
    x = ember.tensor(rng.standard_normal((4, 6)))
    i = ember.tensor(rng.integers(0, 6, (4, 2)))
    c = ember.tensor(np.sort(rng.standard_normal(5)))
    want = model(x, i, c)
    got = ember.compile(model)(x, i, c)
    for w, g in zip(want, got):
        assert_close(g, w, rtol=1e-9, atol=1e-12, what="compiled")


@pytest.mark.parametrize("fn", [
    lambda x: ember.nonzero(x), lambda x: x.masked_select(x > 0),
    lambda x: ember.unique(x), lambda x: ember.unique_consecutive(x),
    lambda x: ember.repeat_interleave(x), lambda x: ember.bincount(x)],
    ids=["nonzero", "masked_select", "unique", "unique_consecutive", "repeat_interleave",
         "bincount"])
def test_data_dependent_shapes_refuse_tracing(fn):
    x = ember.tensor([1, 0, 3])
    want = fn(x)                                 # eager works
    with pytest.raises(ember.TraceError, match="data-dependent"):
        ember.compile(fn, fullgraph=True)(x)
    got = ember.compile(fn)(x)                   # a graph break: that part runs eagerly
    for g, w in zip(got if isinstance(got, tuple) else [got],
                    want if isinstance(want, tuple) else [want]):
        assert g.tolist() == w.tolist()


def test_repeat_interleave_with_output_size_compiles():
    fn = ember.compile(lambda x, r: ember.repeat_interleave(x, r, dim=0, output_size=5))
    x, r = ember.tensor([1.0, 2.0, 3.0]), ember.tensor([2, 0, 3])
    assert fn(x, r).tolist() == [1.0, 1.0, 3.0, 3.0, 3.0]


def test_vmap_over_composites(rng):
    x = rng.standard_normal((3, 4, 4))
    from ember.func import vmap
    got = vmap(lambda m: ember.trace(m) + ember.diag(m).sum())(ember.tensor(x))
    want = torch.vmap(lambda m: torch.trace(m) + torch.diag(m).sum())(torch.tensor(x))
    assert_close(got, want, what="vmap")


# --- errors in PyTorch's words --------------------------------------------------------------

@pytest.mark.parametrize("call, kind, words", [
    (lambda: ember.diag(ember.zeros(2, 2, 2)), RuntimeError, "Supports 1D or 2D"),
    (lambda: ember.hsplit(ember.zeros(2, 5), 2), RuntimeError, "not divisible"),
    (lambda: ember.zeros(3).mT, RuntimeError, "matrices"),
    (lambda: ember.quantile(ember.zeros(3), 1.5), RuntimeError, "in the range"),
    (lambda: ember.masked_select(ember.zeros(3), ember.ones(3)), TypeError, "BoolTensor"),
    (lambda: ember.searchsorted(ember.zeros(2, 3), ember.zeros(3, 3)), ValueError,
     "boundaries tensor"),
    (lambda: ember.zeros(2).uniform_(3, 2), ValueError, "from=3"),
    (lambda: ember.take(ember.zeros(3), ember.tensor([5])), IndexError, "out of bounds"),
    (lambda: ember.broadcast_shapes((2,), (3,)), RuntimeError, "Shape mismatch"),
])
def test_bad_calls_raise_torch_like_errors(call, kind, words):
    with pytest.raises(kind, match=words):
        call()
