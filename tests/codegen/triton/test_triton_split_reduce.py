"""Reductions split along the reduced space (codegen/triton/split_reduce.py): partial
kernels per reduction level into a float32 workspace, then a final kernel that combines
the partials in split order and stores its chunk. Each phase runs in Triton's interpreter
(TRITON_INTERPRET=1, or the GPU with TRITON_INTERPRET=0) and the outputs are compared with
torch and the description's NumPy semantics, at sizes that leave partial tiles and a
partial last chunk; outputs and workspace start poisoned (NaN) so unwritten elements show."""
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from triton_device import dev, host  # noqa: E402  (sets TRITON_INTERPRET=1 unless given)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import ember  # noqa: E402
from ember.codegen import kernel as K  # noqa: E402
from ember.codegen.lowering import lower_group  # noqa: E402
from ember.codegen.triton import cache, source, split_reduce  # noqa: E402
from ember.ir.meta import meta_of  # noqa: E402
from ember.ir.symbolic import build_graph  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from test_llvm_emit import flat_input  # noqa: E402

F = ember.nn.functional
CL = ember.channels_last


def _lowered(fn, *tensors):
    graph, _ = build_graph(fn, [meta_of(t) for t in tensors])
    lowered = lower_group(graph, "k")
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    return lowered.kernel, [flat_input(tensors[placeholders.index(n)]) for n in lowered.inputs]


def run_split(fn, *tensors, xblock=4, rblock=8, splits=None):
    """(reference, triton) output pairs, and the SplitReduction, for `fn` split into
    chunks of 2 * rblock reduced rows (or `splits` chunks)."""
    kernel, ins = _lowered(fn, *tensors)
    r = int(np.prod(kernel.inner))
    per_split = 2 * rblock if splits is None else -(-r // splits)
    chunk = -(-per_split // rblock) * rblock           # a multiple of RBLOCK
    plan = split_reduce.SplitPlan(source.Blocks(xblock, rblock, False, 4), -(-r // chunk), chunk)
    split = split_reduce.generate_split(kernel, plan)
    ref = {s.name: a for s, a in zip(kernel.inputs, ins)}
    got = {s.name: dev(a) for s, a in zip(kernel.inputs, ins)}
    for spec in kernel.outputs:
        ref[spec.name] = np.full(spec.numel, 7, spec.dtype.np_dtype)
        got[spec.name] = dev(np.full(spec.numel, np.nan, spec.dtype.np_dtype))
    K.evaluate(kernel, ref)
    workspace = dev(np.full(split.workspace, np.nan, np.float32))
    for generated in split.kernels:
        cache.launch(generated, [got[s.name] for s in kernel.inputs + kernel.outputs]
                     + [workspace])
    return [(ref[s.name], host(got[s.name])) for s in kernel.outputs], split


def _cl(shape, seed=0):
    values = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return ember.tensor(values).contiguous(memory_format=CL), torch.tensor(values)


def _nchw(flat, shape):
    n, c, h, w = shape
    return flat.reshape(n, h, w, c).transpose(0, 3, 1, 2)


def _bn_relu(t, w, b):
    return F.relu(F.batch_norm(t, None, None, w, b, training=True, eps=1e-5))


# --- when to split ---------------------------------------------------------------------------
def test_resnet18_batch_norm_shapes_split_into_hundreds_of_programs():
    big = ember.empty(64, 64, 112, 112, memory_format=CL)
    w = ember.empty(64)
    kernel, _ = _lowered(_bn_relu, big, w, w)
    split = split_reduce.generate_split(kernel)
    assert split is not None
    grid = split.kernels[0].launch.grid
    assert grid[0] * grid[1] >= 2 * 132
    # one walk for the statistics (the centered squares are shifted sums read with the
    # mean's: codegen/triton/reduce_levels.py) and the final pass
    assert [g.name.rsplit("_", 1)[1] for g in split.kernels] == ["partial0", "final"]
    assert split.plan.chunk % split.plan.blocks.rblock == 0
    assert split.plan.splits * split.plan.chunk >= 64 * 112 * 112


def test_small_or_wide_reductions_stay_one_kernel():
    assert split_reduce.plan(_lowered(lambda t: t.sum((0, 2, 3)),
                                      ember.empty(4, 8, 6, 6, memory_format=CL))[0]) is None
    assert split_reduce.plan(_lowered(lambda t: t.sum(1), ember.empty(4096, 512))[0]) is None
    assert split_reduce.plan(_lowered(lambda t: t.relu(), ember.empty(64, 512))[0]) is None
    # integer accumulators are not split (the workspace is float32)
    assert split_reduce.plan(_lowered(lambda t: t.sum((0, 2, 3)),
                                      ember.empty(64, 8, 112, 112, dtype=ember.int32,
                                                  memory_format=CL))[0]) is None


# --- values against torch ----------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(3, 5, 7, 5), (2, 13, 9, 4)])
def test_split_channels_last_sum_and_amax(shape):
    x, tx = _cl(shape)
    pairs, split = run_split(lambda t: t.sum((0, 2, 3)), x)
    np.testing.assert_allclose(pairs[0][1], tx.sum((0, 2, 3)).numpy(), rtol=1e-5, atol=1e-4)
    assert split.plan.splits > 2 and len(split.kernels) == 2
    pairs, _ = run_split(lambda t: t.amax((0, 2, 3)), x)
    np.testing.assert_array_equal(pairs[0][1], tx.amax((0, 2, 3)).numpy())


@pytest.mark.parametrize("shape, splits", [((4, 8, 6, 6), None), ((3, 19, 5, 7), 3),
                                           ((2, 3, 13, 10), 7)])
def test_split_batch_norm_forward_channels_last(shape, splits):
    x, tx = _cl(shape, seed=3)
    c = shape[1]
    w, b = np.linspace(0.5, 1.5, c, dtype=np.float32), np.linspace(-0.2, 0.3, c, dtype=np.float32)
    pairs, split = run_split(_bn_relu, x, ember.tensor(w), ember.tensor(b), splits=splits)
    want = torch.relu(torch.nn.functional.batch_norm(tx, None, None, torch.tensor(w),
                                                     torch.tensor(b), training=True))
    np.testing.assert_allclose(_nchw(pairs[0][1], shape), want.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(pairs[0][1], pairs[0][0], rtol=1e-4, atol=1e-4)
    assert len(split.kernels) == 2          # the statistics in one walk, then the store


def _bn_backward(dy, t, w):
    n = t.shape[0] * t.shape[2] * t.shape[3]
    mean = t.sum((0, 2, 3), keepdim=True) / n
    centered = t - mean
    invstd = ((centered * centered).sum((0, 2, 3), keepdim=True) / n + 1e-5).rsqrt()
    xhat = centered * invstd
    dy_mean = dy.sum((0, 2, 3), keepdim=True) / n
    dyx_mean = (dy * xhat).sum((0, 2, 3), keepdim=True) / n
    return w.reshape(1, -1, 1, 1) * invstd * (dy - dy_mean - xhat * dyx_mean)


def test_split_rows_nchw_with_per_channel_outputs():
    """A row reduction (NCHW) that stores per-channel results (written by split 0 only)
    and a full-size output over every chunk."""
    values = np.random.default_rng(7).standard_normal((3, 6, 8, 7)).astype(np.float32)
    x, tx = ember.tensor(values), torch.tensor(values)

    def fn(t):
        return t.mean((0, 2, 3)) * 2.0, t - t.mean((0, 2, 3), keepdim=True)

    pairs, split = run_split(fn, x, xblock=1, rblock=16, splits=4)
    np.testing.assert_allclose(pairs[0][1], (tx.mean((0, 2, 3)) * 2).numpy(), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(pairs[1][1].reshape(values.shape),
                               (tx - tx.mean((0, 2, 3), keepdim=True)).numpy(), rtol=1e-5,
                               atol=1e-5)
    assert split.kernels[0].launch.grid[1] == 4


def test_split_is_deterministic():
    x, _ = _cl((4, 6, 10, 9), seed=8)
    first, _ = run_split(lambda t: (t * t).sum((0, 2, 3)), x, splits=6)
    again, _ = run_split(lambda t: (t * t).sum((0, 2, 3)), x, splits=6)
    np.testing.assert_array_equal(first[0][1], again[0][1])


def test_final_combines_more_splits_than_one_step_holds(monkeypatch):
    """The final phase combines the partials SBLOCK at a time (4 here, 32 for the stem's
    32 kept points) with a masked last step: 10 splits, for the statistics and the
    gradient sums, and for a max; values against torch."""
    monkeypatch.setattr(split_reduce, "FINISH_SBLOCK", 4)
    monkeypatch.setattr(split_reduce, "FINISH_TILE", 4)
    shape = (1, 5, 6, 5)
    x, tx = _cl(shape, seed=9)
    dy, tdy = _cl(shape, seed=10)
    w = np.linspace(0.5, 1.5, shape[1], dtype=np.float32)
    pairs, split = run_split(_bn_backward, dy, x, ember.tensor(w), xblock=8, rblock=1,
                             splits=10)
    sblock = split.kernels[-1].launch.constexprs["SBLOCK"]
    assert sblock == 4 and split.plan.splits == 10
    assert "for s0 in range(0, S, SBLOCK)" in split.kernels[-1].source
    tx.requires_grad_(True)
    out = torch.nn.functional.batch_norm(tx, None, None, torch.tensor(w), None, training=True)
    out.backward(tdy)
    np.testing.assert_allclose(_nchw(pairs[0][1], shape), tx.grad.numpy(), rtol=1e-3, atol=1e-4)
    pairs, _ = run_split(lambda t: t.amax((0, 2, 3)), x, xblock=8, rblock=1, splits=10)
    np.testing.assert_array_equal(pairs[0][1], tx.detach().amax((0, 2, 3)).numpy())


@pytest.mark.parametrize("shape", [(64, 64, 112, 112), (64, 64, 56, 56), (64, 128, 28, 28),
                                   (64, 256, 14, 14), (64, 512, 7, 7)])
def test_resnet18_batch_norm_column_splits_fill_an_h100(shape):
    """Every BatchNorm of resnet18 at batch 64 splits into at least 3.8 programs per
    multiprocessor of an H100 (132), of [32 channels (one 128-byte line), 32 rows] tiles at
    4 warps: 8 elements a thread, loaded as two 16-byte vectors."""
    big = ember.empty(*shape, memory_format=CL)
    w = ember.empty(shape[1])
    kernel, _ = _lowered(_bn_relu, big, w, w)
    plan = split_reduce.plan(kernel)
    programs = -(-shape[1] // plan.blocks.xblock) * plan.splits
    assert programs >= 3.8 * 132, (plan, programs)
    assert (plan.blocks.xblock, plan.blocks.rblock, plan.blocks.num_warps) == (32, 32, 4)


@pytest.mark.parametrize("fn", [_bn_relu, lambda t, w, b: t.sum()])
def test_nchw_rows_and_whole_tensor_sums_split_into_small_row_tiles(fn):
    """NCHW BatchNorm at resnet18's stem (64 rows of 64x12544) and a sum over the whole
    tensor (one row) split into [1, 2048] tiles at 4 warps, at least 4 programs per
    multiprocessor of an H100; the single row takes up to ROW_MAX_SPLITS chunks."""
    x = ember.empty(64, 64, 112, 112)
    w = ember.empty(64)
    kernel, _ = _lowered(fn, x, w, w)
    plan = split_reduce.plan(kernel)
    rows = int(np.prod(kernel.outer))
    assert (plan.blocks.xblock, plan.blocks.rblock, plan.blocks.num_warps) == (1, 2048, 4)
    assert rows * plan.splits >= 3.9 * 132, plan
    assert plan.splits <= split_reduce.ROW_MAX_SPLITS


def test_final_walks_its_chunk_backward_with_the_same_bits(monkeypatch):
    """The final phase walks its chunk last row first (the partials' tail is what L2
    still holds); the partials keep their order. Its stores are pointwise, so the outputs
    equal the forward walk's bit for bit (EMBER_SPLIT_FINAL_FORWARD=1), partial last chunk
    included."""
    x, tx = _cl((3, 7, 9, 5), seed=11)
    c = 7
    w, b = np.linspace(0.5, 1.5, c, dtype=np.float32), np.linspace(-0.2, 0.3, c, dtype=np.float32)
    args = (x, ember.tensor(w), ember.tensor(b))
    backward, split = run_split(_bn_relu, *args, splits=4)
    final, partial = split.kernels[-1].source, split.kernels[0].source
    assert "rlast - roff" in final and "rlast" not in partial
    assert split.plan.splits * split.plan.chunk > 3 * 9 * 5      # a partial last chunk
    monkeypatch.setenv("EMBER_SPLIT_FINAL_FORWARD", "1")
    forward, split = run_split(_bn_relu, *args, splits=4)
    assert "rlast" not in split.kernels[-1].source
    for (_, got), (_, want) in zip(backward, forward):
        np.testing.assert_array_equal(got, want)
    want = torch.relu(torch.nn.functional.batch_norm(tx, None, None, torch.tensor(w),
                                                     torch.tensor(b), training=True))
    np.testing.assert_allclose(_nchw(backward[0][1], (3, 7, 9, 5)), want.numpy(), rtol=1e-4,
                               atol=1e-4)


def test_column_split_warps_knob(monkeypatch):
    """EMBER_SPLIT_COLUMN_WARPS=8: [32, 64] column tiles at 8 warps (still 8 elements a
    thread), the chunks a multiple of the taller tile; other values keep 4 warps."""
    big = ember.empty(64, 64, 56, 56, memory_format=CL)
    w = ember.empty(64)
    kernel, _ = _lowered(_bn_relu, big, w, w)
    monkeypatch.setenv("EMBER_SPLIT_COLUMN_WARPS", "8")
    plan = split_reduce.plan(kernel)
    assert (plan.blocks.xblock, plan.blocks.rblock, plan.blocks.num_warps) == (32, 64, 8)
    assert plan.chunk % 64 == 0 and plan.splits * plan.chunk >= 64 * 56 * 56
    monkeypatch.setenv("EMBER_SPLIT_COLUMN_WARPS", "5")
    assert split_reduce.plan(kernel).blocks.num_warps == 4


# --- shape-generic split phases (source.GENERIC_FAMILIES) --------------------------------------
def _bn_relu_and_nchw_copy(t, w, b):
    """A BatchNorm that also stores its output NCHW (a weight gradient's operand, as the
    training step's wgrad-nchw pass fuses it): its rows walk (N, H*W), not one dim."""
    y = _bn_relu(t, w, b)
    return y, y.contiguous()


@pytest.mark.parametrize("shape", [(2, 32, 8, 8), (2, 16, 16, 4)])
def test_split_batch_norm_with_nchw_copy_is_shape_generic_and_exact(shape):
    """By default the split phases take their sizes as arguments where they are multiples
    of 16 (one cubin for every such shape of a structure); rows are unravelled by a
    multiply-high with constancy/contiguity hints, no runtime division; both outputs
    equal the description's NumPy semantics and torch's."""
    x, tx = _cl(shape)
    w = ember.ones(shape[1])
    pairs, split = run_split(_bn_relu_and_nchw_copy, x, w, ember.zeros(shape[1]),
                             xblock=16, rblock=16)
    for ref, got in pairs:
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    want = torch.relu(torch.nn.functional.batch_norm(tx, None, None, training=True, eps=1e-5))
    np.testing.assert_allclose(pairs[1][1].reshape(shape), want.numpy(), rtol=1e-4, atol=1e-4)
    final = split.kernels[-1]
    assert final.launch.sizes and "tl.umulhi" in final.source and "max_contiguous" in final.source
    assert not re.search(r"(//|%)\s*ks\d", final.source)
    assert all(source.runs_as_literal(k) for k in split.kernels)


def test_generic_split_phases_share_one_key_across_shapes_and_keep_odd_sizes_literal():
    """Two shapes whose sizes are multiples of 16 share every phase's key (one compile);
    H*W = 49 keeps its literal (Triton sees what 49 divides) and gets keys of its own;
    EMBER_TRITON_LITERAL_SIZES=1 bakes every size in again."""
    def keys(shape, literal=None):
        x = ember.empty(*shape, memory_format=CL)
        kernel, _ = _lowered(_bn_relu_and_nchw_copy, x, ember.empty(shape[1]),
                             ember.empty(shape[1]))
        plan = split_reduce.SplitPlan(source.Blocks(16, 16, False, 4), 4, 32)
        if literal is None:
            return [k.key() for k in split_reduce.generate_split(kernel, plan).kernels]
        with source.literal_sizes(literal):
            return [k.key() for k in split_reduce.generate_split(kernel, plan).kernels]
    assert keys((2, 32, 8, 8)) == keys((4, 64, 4, 4))
    assert keys((2, 32, 7, 7)) != keys((2, 32, 8, 8))
    assert keys((2, 32, 8, 8), True) != keys((4, 64, 4, 4), True)


def test_split_that_would_divide_at_runtime_stays_literal():
    """An NCHW row split unravels its rows (N, H*W) along the contiguous dimension: the
    generic text would divide by a runtime H*W per element, so the phases are generated
    with literal sizes (source.runs_as_literal), and still compute torch's values."""
    values = np.random.default_rng(5).standard_normal((4, 16, 8, 8)).astype(np.float32)
    x, tx = ember.tensor(values), torch.tensor(values)

    def fn(t):
        return t - t.mean((0, 2, 3), keepdim=True)

    pairs, split = run_split(fn, x, xblock=1, rblock=16, splits=4)
    np.testing.assert_allclose(pairs[0][1].reshape(values.shape),
                               (tx - tx.mean((0, 2, 3), keepdim=True)).numpy(), rtol=1e-5,
                               atol=1e-5)
    assert all(not k.launch.sizes for k in split.kernels)
    assert all(source.runs_as_literal(k) for k in split.kernels)
