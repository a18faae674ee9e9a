"""Fewer walks of the reduced space in looped and split reductions: sums of earlier sums
rewritten as level-0 sums (codegen/triton/reduce_levels.py: BatchNorm's variance as
shifted sums read with the mean's, its backward's second level likewise), and the stages
of one walk sharing one loop (source.walks: the stores of x - mean, x-hat, the ReLU output
and its mask read x once). Values against torch and the description's NumPy semantics;
the kernels run in Triton's interpreter (TRITON_INTERPRET=1) or on a GPU."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from triton_device import dev, host  # noqa: E402  (sets TRITON_INTERPRET=1 unless given)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import ember  # noqa: E402
from ember.codegen import kernel as K  # noqa: E402
from ember.codegen.triton import cache, source, split_reduce  # noqa: E402
from ember.codegen.triton.reduce_levels import flatten_levels  # noqa: E402

from test_triton_split_reduce import _bn_backward, _bn_relu, _cl, _lowered, _nchw, run_split  # noqa: E402,E501

F = ember.nn.functional
CL = ember.channels_last


def _evaluate(kernel, ins):
    buffers = {s.name: a.copy() for s, a in zip(kernel.inputs, ins)}
    for spec in kernel.outputs:
        buffers[spec.name] = np.zeros(spec.numel, spec.dtype.np_dtype)
    K.evaluate(kernel, buffers)
    return [buffers[s.name] for s in kernel.outputs]


def _bn_forward_saved(t, w, b):
    """The forward a training step fuses: mean, centered, variance, x-hat, ReLU output."""
    n = t.shape[0] * t.shape[2] * t.shape[3]
    mean = t.sum((0, 2, 3), keepdim=True) / n
    centered = t - mean
    var = (centered * centered).sum((0, 2, 3), keepdim=True) / n
    xhat = centered / (var + 1e-5).sqrt()
    return mean, var, xhat, F.relu(xhat * w.reshape(1, -1, 1, 1) + b.reshape(1, -1, 1, 1))


def _levels(kernel):
    return sorted(set(split_reduce._levels(kernel).values()))


@pytest.mark.parametrize("offset", [0.0, 1000.0])
def test_batch_norm_statistics_become_one_level_with_the_same_values(offset):
    """The variance's sum of (x - mean)^2 becomes sums of (x - x0)^2 and x - x0 read in the
    mean's walk; with a mean 1000 standard deviations from zero, the shift keeps float32
    as accurate as the two-pass form (sum(x^2) - n mean^2 would lose every digit)."""
    shape = (4, 6, 7, 5)
    values = np.random.default_rng(1).standard_normal(shape).astype(np.float32) + offset
    x = ember.tensor(values).contiguous(memory_format=CL)
    w, b = ember.tensor(np.linspace(0.5, 1.5, 6, dtype=np.float32)), ember.zeros(6)
    kernel, ins = _lowered(_bn_forward_saved, x, w, b)
    flat = flatten_levels(kernel)
    assert _levels(kernel) == [0, 1] and _levels(flat) == [0]
    want = _evaluate(kernel, ins)
    got = _evaluate(flat, ins)
    torch_var = torch.tensor(values.astype(np.float64)).var((0, 2, 3), unbiased=False)
    for g, w_ in zip(got, want):
        np.testing.assert_allclose(g, w_, rtol=1e-5, atol=1e-5 * max(1.0, offset))
    np.testing.assert_allclose(got[1], torch_var.numpy(), rtol=1e-4)


def test_batch_norm_backward_sums_become_one_level():
    shape = (3, 5, 6, 4)
    x, _ = _cl(shape, seed=2)
    dy, _ = _cl(shape, seed=3)
    w = ember.tensor(np.linspace(0.5, 1.5, shape[1], dtype=np.float32))
    kernel, ins = _lowered(_bn_backward, dy, x, w)
    flat = flatten_levels(kernel)
    assert max(_levels(flat)) < max(_levels(kernel))
    for g, w_ in zip(_evaluate(flat, ins), _evaluate(kernel, ins)):
        np.testing.assert_allclose(g, w_, rtol=1e-4, atol=1e-5)


def test_non_linear_uses_of_a_sum_keep_their_level():
    """A max, or a sum of a non-linear function of an earlier sum (softmax's denominator
    reads exp(x - max)), is not rewritten."""
    x = ember.empty(4, 6, 8, 8, memory_format=CL)
    kernel, _ = _lowered(lambda t: (t - t.amax((0, 2, 3), keepdim=True)).exp().sum((0, 2, 3)),
                         x)
    assert flatten_levels(kernel) is kernel
    kernel, _ = _lowered(lambda t: (t - t.mean((0, 2, 3), keepdim=True)).abs().sum((0, 2, 3)), x)
    assert flatten_levels(kernel) is kernel


@pytest.mark.parametrize("offset", [0.0, 100.0])
def test_split_batch_norm_forward_in_two_phases_equals_torch(offset):
    shape = (3, 19, 5, 7)
    values = np.random.default_rng(5).standard_normal(shape).astype(np.float32) * 3 + offset
    x = ember.tensor(values).contiguous(memory_format=CL)
    c = shape[1]
    w, b = np.linspace(0.5, 1.5, c, dtype=np.float32), np.linspace(-0.2, 0.3, c, dtype=np.float32)
    pairs, split = run_split(_bn_relu, x, ember.tensor(w), ember.tensor(b), splits=4)
    want = torch.relu(torch.nn.functional.batch_norm(
        torch.tensor(values), None, None, torch.tensor(w), torch.tensor(b), training=True))
    np.testing.assert_allclose(_nchw(pairs[0][1], shape), want.numpy(), rtol=1e-4, atol=1e-4)
    assert [g.name.rsplit("_", 1)[1] for g in split.kernels] == ["partial0", "final"]


def test_split_batch_norm_backward_in_two_phases_equals_torch():
    shape = (3, 11, 9, 5)
    x, tx = _cl(shape, seed=4)
    dy, tdy = _cl(shape, seed=5)
    w = np.linspace(0.5, 1.5, shape[1], dtype=np.float32)
    pairs, split = run_split(_bn_backward, dy, x, ember.tensor(w), splits=5)
    tx.requires_grad_(True)
    out = torch.nn.functional.batch_norm(tx, None, None, torch.tensor(w), None, training=True)
    out.backward(tdy)
    np.testing.assert_allclose(_nchw(pairs[0][1], shape), tx.grad.numpy(), rtol=1e-3, atol=1e-4)
    # the statistics (mean, variance) and the gradient sums: one walk, then the store
    assert [g.name.rsplit("_", 1)[1] for g in split.kernels] == ["partial0", "final"]
    assert all(g.source.count("for roff") == 1 for g in split.kernels)


def test_looped_kernel_walks_once_per_group():
    """A looped (unsplit) BatchNorm forward that stores several full-size values: one walk
    for the statistics, one for all the stores, each load read once per walk; values
    equal the description's."""
    shape = (2, 3, 40, 40)
    values = np.random.default_rng(6).standard_normal(shape).astype(np.float32) + 5
    x = ember.tensor(values).contiguous(memory_format=CL)
    w, b = ember.tensor(np.linspace(0.5, 1.5, 3, dtype=np.float32)), ember.zeros(3)
    kernel, ins = _lowered(_bn_forward_saved, x, w, b)
    blocks = source.Blocks(4, 64, False, 4)
    generated = source.generate(kernel, blocks)
    loops = generated.source.split("for roff")
    assert len(loops) == 3                                  # statistics, then the stores
    assert loops[-1].count("tl.load(in0_ptr") == 1          # x read once for every store
    got = {s.name: dev(a) for s, a in zip(kernel.inputs, ins)}
    for spec in kernel.outputs:
        got[spec.name] = dev(np.full(spec.numel, np.nan, spec.dtype.np_dtype))
    cache.launch(generated, [got[s.name] for s in kernel.inputs + kernel.outputs])
    for spec, want in zip(kernel.outputs, _evaluate(kernel, ins)):
        np.testing.assert_allclose(host(got[spec.name]), want, rtol=1e-5, atol=1e-5,
                                   err_msg=spec.name)


def _inner_divisions(kernel):
    """Divisions inside the values of Reduce stages (each one runs per element)."""
    return [e for s in kernel.stages if isinstance(s, K.Reduce)
            for e in K._walk(s.value, set()) if isinstance(e, K.Call) and e.op == "div"]


def _bn_backward_saved(dy, t, mean, invstd, w):
    """The backward a training step fuses: x - mean recomputed from the saved mean and
    1/std (per-channel [1, C, 1, 1] inputs), sums of values divided by per-channel ones
    (as autograd writes them)."""
    n = t.shape[0] * t.shape[2] * t.shape[3]
    std = 1.0 / invstd
    centered = t - mean
    xhat = centered / std
    g = dy * w
    dxhat_sum = (g * centered).sum((0, 2, 3), keepdim=True) * -0.5 * invstd * invstd * invstd
    dmean = -(g / std).sum((0, 2, 3), keepdim=True) + \
        dxhat_sum * (-2.0 * centered).sum((0, 2, 3), keepdim=True) / n
    dx = g * invstd + dxhat_sum * 2.0 * centered / n + dmean / n
    return dx, dy.sum((0, 2, 3)), (dy * xhat).sum((0, 2, 3))


def test_kept_point_factors_leave_the_sums_and_equal_terms_share_one():
    """BatchNorm's backward sums dy, dy * x-hat (x-hat = (x - mean) / std), g * (x - mean)
    scaled, g / std and -2 (x - mean): after factoring no summed value divides, and each
    distinct inner term is summed once; the values equal the description's and torch's."""
    shape = (3, 6, 5, 7)
    x, tx = _cl(shape, seed=11)
    dy, tdy = _cl(shape, seed=12)
    rng = np.random.default_rng(13)
    per_channel = [rng.standard_normal(6), rng.uniform(0.5, 2.0, 6), np.linspace(0.5, 1.5, 6)]
    mean, invstd, w = (ember.tensor(a.astype(np.float32).reshape(1, 6, 1, 1))
                       for a in per_channel)
    kernel, ins = _lowered(_bn_backward_saved, dy, x, mean, invstd, w)
    flat = flatten_levels(kernel)
    assert _inner_divisions(kernel) and not _inner_divisions(flat)
    sums = [s for s in flat.stages if isinstance(s, K.Reduce)]
    assert len(sums) < len([s for s in kernel.stages if isinstance(s, K.Reduce)])
    assert len({str(s.value) for s in sums}) == len(sums)     # one accumulator per term
    want = _evaluate(kernel, ins)
    got = _evaluate(flat, ins)
    for g, w_ in zip(got, want):
        np.testing.assert_allclose(g, w_, rtol=1e-4, atol=1e-5)
    tmean, tinvstd = (torch.tensor(a.numpy()) for a in (mean, invstd))
    txhat = (tx - tmean) * tinvstd
    np.testing.assert_allclose(got[-2], tdy.sum((0, 2, 3)).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[-1], (tdy * txhat).sum((0, 2, 3)).numpy(), rtol=1e-4,
                               atol=1e-4)


def test_factoring_keeps_subtractions_inside_the_sum():
    """sum(x - mean) stays one sum of differences (sum(x) - R * mean would cancel when the
    mean is far from zero), and a sum of a plain inner value is left as it is."""
    x = ember.empty(2, 4, 6, 6, memory_format=CL)
    m = ember.empty(4)
    kernel, _ = _lowered(lambda t, mu: (t - mu.reshape(1, -1, 1, 1)).sum((0, 2, 3)), x, m)
    flat = flatten_levels(kernel)
    assert [str(s.value) for s in flat.stages if isinstance(s, K.Reduce)] == \
        [str(s.value) for s in kernel.stages if isinstance(s, K.Reduce)]
    kernel, _ = _lowered(lambda t: t.sum((0, 2, 3)), x)
    assert flatten_levels(kernel) is kernel


def test_stores_sharing_a_value_compute_it_once_after_rewriting():
    """BatchNorm + ReLU's output and its mask (what the training step's forward stores) share
    x-hat: after the sums are rewritten the shared subexpression stays one object, so the
    final phase's loop computes it once (one division an element, not one per store)."""
    def fn(t, w, b):
        y = F.relu(F.batch_norm(t, None, None, w, b, training=True, eps=1e-5))
        return y, y <= 0
    x = ember.empty(64, 64, 112, 112, memory_format=CL)
    w = ember.empty(64)
    kernel, _ = _lowered(fn, x, w, w)
    final = split_reduce.generate_split(kernel).kernels[-1].source
    loop = final[final.index("for roff"):]
    assert loop.count("tl.store(") == 2 and loop.count("div_rn") == 1, loop
