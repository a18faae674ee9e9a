"""Row kernels of the LLVM backend (softmax, masked and scaled softmax, max reductions)
against torch, and the emitter's exact speed-ups checked bit for bit against the plain
code: a max/min row reduction with several accumulators, softmax's store reading back
the exp(x - max) its sum stage kept in the output, and softmax's shift by a plain
(NaN-skipping) max (codegen/llvm/emit.py: EXACT_ACCUMULATORS, _stash_plan,
_shift_only_maxima)."""
import numpy as np
import pytest
import torch

import ember
from ember.codegen import kernel as K
from ember.codegen.llvm import emit
from ember.codegen.llvm.emit import compile_kernel
from ember.codegen.lowering import lower_group
from ember.ir.meta import meta_of
from ember.ir.symbolic import build_graph


def _kernel(fn, *arrays):
    graph, _ = build_graph(fn, [meta_of(ember.tensor(a)) for a in arrays])
    lowered = lower_group(graph, "k")
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    inputs = [np.ascontiguousarray(arrays[placeholders.index(n)]).ravel()
              for n in lowered.inputs]
    return lowered.kernel, inputs


def _run(kernel, inputs):
    outs = [np.full(s.numel, 7, s.dtype.np_dtype) for s in kernel.outputs]
    compile_kernel(kernel)(inputs + outs)
    return outs


def _plain(kernel, inputs, monkeypatch):
    """The kernel compiled without either speed-up."""
    with monkeypatch.context() as m:
        m.setattr(emit, "_stash_plan", lambda k: {})
        m.setattr(emit, "EXACT_ACCUMULATORS", 1)
        m.setattr(emit, "_shift_only_maxima", lambda k: set())
        return _run(kernel, inputs)


ROWS = [(5, 37), (64, 128), (3, 16), (7, 200), (2, 3, 65)]


@pytest.mark.parametrize("shape", ROWS, ids=lambda s: "x".join(map(str, s)))
def test_softmax_matches_torch_and_the_plain_kernel(shape, monkeypatch):
    x = np.random.default_rng(0).standard_normal(shape, np.float32) * 4
    kernel, inputs = _kernel(lambda t: ember.softmax(t, -1), x)
    assert emit._stash_plan(kernel), "softmax's store should reuse the sum stage's exp"
    (got,) = _run(kernel, inputs)
    want = torch.softmax(torch.from_numpy(x), -1).numpy().ravel()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    (plain,) = _plain(kernel, inputs, monkeypatch)
    assert np.array_equal(got.view(np.uint32), plain.view(np.uint32))


def test_scaled_masked_softmax_matches_torch(monkeypatch):
    rng = np.random.default_rng(1)
    s = rng.standard_normal((2, 4, 9, 33), np.float32)
    mask = np.where(rng.random((9, 33)) < 0.3, -np.inf, 0.0).astype(np.float32)
    mask[:, 0] = 0.0                       # every row keeps one position
    kernel, inputs = _kernel(lambda a, m: ember.softmax(a * 0.125 + m, -1), s, mask)
    assert emit._stash_plan(kernel)
    (got,) = _run(kernel, inputs)
    want = torch.softmax(torch.from_numpy(s) * 0.125 + torch.from_numpy(mask), -1)
    np.testing.assert_allclose(got, want.numpy().ravel(), rtol=1e-5, atol=1e-7)
    (plain,) = _plain(kernel, inputs, monkeypatch)
    assert np.array_equal(got.view(np.uint32), plain.view(np.uint32))


def test_softmax_row_with_nan_or_inf_is_torchs():
    x = np.random.default_rng(2).standard_normal((4, 70), np.float32)
    x[0, 50] = np.nan                          # lands in a later accumulator
    x[1, 3] = np.inf
    x[2, :] = -np.inf
    kernel, inputs = _kernel(lambda t: ember.softmax(t, -1), x)
    (got,) = _run(kernel, inputs)
    want = torch.softmax(torch.from_numpy(x), -1).numpy().ravel()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("op", ["amax", "amin"])
@pytest.mark.parametrize("n", [16, 63, 64, 65, 130, 300])
def test_max_min_rows_with_several_accumulators(op, n, monkeypatch):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((6, n), np.float32)
    x[1, :] = 0.0
    x[1, n - 1] = -0.0                      # signed zeros in different accumulators
    x[2, :] = -0.0
    x[2, n // 2] = 0.0
    x[3, n - 1] = np.nan
    x[4, :] = -np.inf
    kernel, inputs = _kernel(lambda t: getattr(t, op)(1), x)
    (got,) = _run(kernel, inputs)
    want = getattr(torch, op)(torch.from_numpy(x), 1).numpy()
    np.testing.assert_array_equal(got, want)      # -0 == +0 here: torch's pick of the
    (plain,) = _plain(kernel, inputs, monkeypatch)  # two zeros depends on its order
    assert np.array_equal(got, plain, equal_nan=True)
    assert np.array_equal(np.signbit(got), np.signbit(plain))   # IEEE maximum: -0 < +0


def test_integer_row_sum_with_several_accumulators(monkeypatch):
    x = np.random.default_rng(3).integers(-1000, 1000, (5, 77)).astype(np.int32)
    kernel, inputs = _kernel(lambda t: t.sum(1, dtype=ember.int32), x)
    (got,) = _run(kernel, inputs)
    np.testing.assert_array_equal(got, x.sum(1))


def test_no_stash_where_the_store_reads_memory_or_rounds():
    x = np.random.default_rng(4).standard_normal((4, 40), np.float32)
    # log_softmax's store reads x again: nothing of the sum stage is kept
    kernel, _ = _kernel(lambda t: ember.log_softmax(t, -1), x)
    assert not emit._stash_plan(kernel)
    # a float16 result would round the kept exp
    kernel, _ = _kernel(lambda t: ember.softmax(t, -1).half(), x)
    assert not emit._stash_plan(kernel)


def test_stash_needs_one_element_per_inner_point():
    spec = K.BufferSpec("x", ember.float32, 12)
    out = K.BufferSpec("o", ember.float32, 12)
    x = K.Load("x", K.Affine((4, 1)), ember.float32)
    e = K.Call("exp", (x,), ember.float32)
    total = K.ReduceRef("s", ember.float32)
    stages = [K.Reduce("s", "sum", e, ember.float32),
              K.Store("o", K.Affine((4, 1)), K.Call("div", (e, total), ember.float32), True)]
    k = K.Kernel("k", (3,), (4,), [spec], [out], stages)
    assert emit._stash_plan(k)
    broadcast = [stages[0], K.Store("o", K.Affine((4, 0)), stages[1].value, True)]
    assert not emit._stash_plan(K.Kernel("k", (3,), (4,), [spec], [out], broadcast))


def test_only_a_max_that_shifts_exp_skips_ieee_maximum():
    x = np.random.default_rng(5).standard_normal((4, 40), np.float32)
    kernel, _ = _kernel(lambda t: ember.softmax(t, -1), x)
    assert emit._shift_only_maxima(kernel) == {s.name for s in kernel.stages
                                               if isinstance(s, K.Reduce) and s.combine == "max"}
    for fn in (lambda t: ember.log_softmax(t, -1), lambda t: t.amax(1),
               lambda t: t.logsumexp(1), lambda t: t - t.amax(1, keepdim=True)):
        kernel, _ = _kernel(fn, x)
        assert not emit._shift_only_maxima(kernel)


def test_softmax_rows_of_signed_zeros_and_nans_equal_the_plain_kernel(monkeypatch):
    x = np.zeros((5, 48), np.float32)
    x[0, ::2] = -0.0
    x[1, :] = -0.0
    x[1, 40] = 0.0
    x[2, 7] = np.nan
    x[3, :] = np.nan
    x[4, :] = -np.inf
    kernel, inputs = _kernel(lambda t: ember.softmax(t, -1), x)
    (got,) = _run(kernel, inputs)
    (plain,) = _plain(kernel, inputs, monkeypatch)
    np.testing.assert_array_equal(got[:2 * 48], plain[:2 * 48])
    assert np.array_equal(got.view(np.uint32)[:2 * 48], plain.view(np.uint32)[:2 * 48])
    assert np.isnan(got[2 * 48:]).all() and np.isnan(plain[2 * 48:]).all()
    want = torch.softmax(torch.from_numpy(x), -1).numpy().ravel()
    assert np.isnan(want[2 * 48:]).all()
    np.testing.assert_allclose(got[:2 * 48], want[:2 * 48], rtol=1e-6)


def test_shifted_exp_without_a_sum_keeps_nan_rows_nan(monkeypatch):
    """exp(x - max) alone (no sum after it): a NaN anywhere in a row makes the max, so
    every element, NaN, as torch's amax does; the plain max tracks NaNs beside it."""
    x = np.random.default_rng(6).standard_normal((6, 70), np.float32)
    x[1, 69] = np.nan              # in the scalar remainder
    x[2, 3] = np.nan               # in the first accumulator
    x[3, 40] = np.nan              # in a later one
    x[4, 64:] = np.nan
    kernel, inputs = _kernel(lambda t: (t - t.amax(-1, keepdim=True)).exp(), x)
    assert emit._shift_only_maxima(kernel)
    (got,) = _run(kernel, inputs)
    t = torch.from_numpy(x)
    want = (t - t.amax(-1, keepdim=True)).exp().numpy().ravel()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=2e-6)
    (plain,) = _plain(kernel, inputs, monkeypatch)
    assert np.array_equal(got, plain, equal_nan=True)
