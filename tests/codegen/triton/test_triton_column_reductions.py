"""Column reductions (the kept dims contiguous, the reduced dims strided: channels-last
BatchNorm statistics and gradients, sums over N, H, W, column sums) get column tiles
(`source.is_column_reduction`, `source._column_blocks`): [XBLOCK consecutive kept elements,
RBLOCK reduced]. Each generated kernel runs in Triton's interpreter (TRITON_INTERPRET=1, or
the GPU with TRITON_INTERPRET=0) and is compared with torch and the description's NumPy
semantics, persistent and looped, at sizes that leave partial tiles on both axes."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from triton_device import dev  # noqa: E402,F401  (sets TRITON_INTERPRET=1 unless given)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import ember  # noqa: E402
from ember.codegen.lowering import lower_group  # noqa: E402
from ember.codegen.triton import source  # noqa: E402
from ember.ir.meta import meta_of  # noqa: E402
from ember.ir.symbolic import build_graph  # noqa: E402

from test_triton_kernels import run_fn  # noqa: E402

F = ember.nn.functional
CL = ember.channels_last


def _lowered(fn, *tensors):
    graph, _ = build_graph(fn, [meta_of(t) for t in tensors])
    return lower_group(graph, "k").kernel


def _pairs_close(pairs, rtol=1e-5, atol=1e-5):
    for want, got in pairs:
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def _cl(shape, seed=0):
    """A channels-last ember tensor and the same values as a torch tensor."""
    values = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return ember.tensor(values).contiguous(memory_format=CL), torch.tensor(values)


def _got(pairs):
    assert len(pairs) == 1
    return pairs[0][1]


# --- which kernels are column reductions -----------------------------------------------------
def test_rule_picks_columns_only_where_kept_dims_are_contiguous():
    x = ember.randn(6, 5, 4, 3)
    assert source.is_column_reduction(_lowered(lambda t: t.sum((0, 2, 3)),
                                               x.contiguous(memory_format=CL)))
    assert source.is_column_reduction(_lowered(lambda t: t.sum(0), ember.randn(40, 7)))
    assert not source.is_column_reduction(_lowered(lambda t: t.sum(1), ember.randn(7, 40)))
    assert not source.is_column_reduction(_lowered(lambda t: t.sum((0, 2, 3)), x))   # NCHW
    assert not source.is_column_reduction(_lowered(lambda t: t.relu(), x))         # pointwise


def test_column_blocks_take_whole_sectors_of_kept_elements():
    kernel = _lowered(lambda t: t.sum((0, 2, 3)), ember.empty(64, 64, 112, 112,
                                                              memory_format=CL))
    blocks = source.default_blocks(kernel)
    assert blocks.xblock * 4 >= source.COLUMN_SECTOR_BYTES
    assert not blocks.persistent and blocks.xblock * blocks.rblock == source.COLUMN_TILE
    half = _lowered(lambda t: t.sum((0, 2, 3)), ember.empty(8, 64, 9, 9, dtype=ember.float16,
                                                           memory_format=CL))
    assert source.default_blocks(half).xblock * 2 >= source.COLUMN_SECTOR_BYTES


# --- values against torch ----------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 5, 3, 3), (3, 13, 7, 5), (4, 70, 6, 6)])
def test_channels_last_sum_over_nhw(shape):
    x, tx = _cl(shape)
    pairs, gen = run_fn(lambda t: t.sum((0, 2, 3)), x)
    _pairs_close(pairs)
    np.testing.assert_allclose(_got(pairs), tx.sum((0, 2, 3)).numpy(), rtol=1e-5, atol=1e-4)
    assert "columns" in gen.source


@pytest.mark.parametrize("rows, cols, looped", [(37, 5, False), (300, 33, False),
                                                (20001, 3, True)])
def test_column_sums_persistent_and_looped(rows, cols, looped):
    values = np.random.default_rng(1).standard_normal((rows, cols)).astype(np.float32)
    pairs, gen = run_fn(lambda t: t.sum(0), ember.tensor(values))
    np.testing.assert_allclose(_got(pairs), torch.tensor(values).sum(0).numpy(),
                               rtol=1e-4, atol=1e-3)
    assert ("for roff" in gen.source) == looped


@pytest.mark.parametrize("xblock, rblock", [(4, 16), (8, 64), (16, 8)])
def test_forced_column_tiles_split_both_axes(xblock, rblock):
    """Partial tiles along the kept and the reduced axis, looped."""
    x, tx = _cl((3, 21, 5, 7), seed=2)
    blocks = source.Blocks(xblock, rblock, False, 4)
    pairs, gen = run_fn(lambda t: t.amax((0, 2, 3)), x, blocks=blocks)
    np.testing.assert_array_equal(_got(pairs), tx.amax((0, 2, 3)).numpy())
    assert "for roff" in gen.source


def _bn_relu(t, w, b):
    return F.relu(F.batch_norm(t, None, None, w, b, training=True, eps=1e-5))


@pytest.mark.parametrize("shape", [(4, 8, 6, 6), (3, 19, 5, 7), (2, 3, 130, 70)])
def test_batch_norm_forward_channels_last(shape):
    x, tx = _cl(shape, seed=3)
    c = shape[1]
    w, b = np.linspace(0.5, 1.5, c, dtype=np.float32), np.linspace(-0.2, 0.3, c, dtype=np.float32)
    pairs, gen = run_fn(_bn_relu, x, ember.tensor(w), ember.tensor(b))
    _pairs_close(pairs, rtol=1e-4, atol=1e-4)
    want = torch.relu(torch.nn.functional.batch_norm(tx, None, None, torch.tensor(w),
                                                     torch.tensor(b), training=True))
    got = _got(pairs).reshape(shape[0], shape[2], shape[3], c).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-4)
    assert "columns" in gen.source


def _bn_backward(dy, t, w):
    """The input gradient of training-mode BatchNorm, written out: two sums over N, H, W
    per channel, then a pointwise pass (what the backward graph fuses)."""
    n = t.shape[0] * t.shape[2] * t.shape[3]
    mean = t.sum((0, 2, 3), keepdim=True) / n
    centered = t - mean
    invstd = ((centered * centered).sum((0, 2, 3), keepdim=True) / n + 1e-5).rsqrt()
    xhat = centered * invstd
    dy_mean = dy.sum((0, 2, 3), keepdim=True) / n
    dyx_mean = (dy * xhat).sum((0, 2, 3), keepdim=True) / n
    return w.reshape(1, -1, 1, 1) * invstd * (dy - dy_mean - xhat * dyx_mean)


@pytest.mark.parametrize("shape", [(4, 8, 6, 6), (3, 11, 9, 5)])
def test_batch_norm_backward_channels_last(shape):
    x, tx = _cl(shape, seed=4)
    dy, tdy = _cl(shape, seed=5)
    w = np.linspace(0.5, 1.5, shape[1], dtype=np.float32)
    pairs, gen = run_fn(_bn_backward, dy, x, ember.tensor(w))
    tx.requires_grad_(True)
    out = torch.nn.functional.batch_norm(tx, None, None, torch.tensor(w), None, training=True)
    out.backward(tdy)
    got = _got(pairs).reshape(shape[0], shape[2], shape[3], shape[1]).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, tx.grad.numpy(), rtol=1e-3, atol=1e-4)
    assert "columns" in gen.source


def test_half_precision_column_sum():
    values = np.random.default_rng(6).standard_normal((5, 24, 7, 3)).astype(np.float16)
    x = ember.tensor(values).contiguous(memory_format=CL)
    pairs, gen = run_fn(lambda t: t.float().sum((0, 2, 3)), x)
    want = torch.tensor(values).float().sum((0, 2, 3)).numpy()
    np.testing.assert_allclose(_got(pairs), want, rtol=1e-4, atol=1e-3)
    assert "columns" in gen.source
