"""Lowering (codegen/lowering.py): every op with a lowering rule, lowered alone and in
fused chains, evaluated through the kernel description's reference semantics, equals
eager ember on its registry samples."""
import numpy as np
import pytest

import ember
from ember.codegen import kernel as K
from ember.codegen.lowering import can_lower, lower_group
from ember.ir.errors import LoweringError
from ember.ir.meta import meta_of
from ember.ir.symbolic import build_graph
from tests.op_samples import lowering_rule_cases, sample_call


def run_lowered(fn, *tensors):
    """Build fn's graph over `tensors`, lower it to one kernel, evaluate it with NumPy."""
    graph, constants = build_graph(fn, [meta_of(t) for t in tensors])
    assert not constants
    lowered = lower_group(graph, "k")
    buffers = {}
    for spec, node, t in zip(lowered.kernel.inputs, lowered.inputs, tensors):
        base = np.lib.stride_tricks.as_strided(
            t.numpy(), shape=(spec.numel,), strides=(t.numpy().itemsize,)) if spec.numel else \
            np.empty(0, t.numpy().dtype)
        buffers[spec.name] = np.ascontiguousarray(base)
    outs = []
    for spec, node in zip(lowered.kernel.outputs, lowered.outputs):
        buffers[spec.name] = np.zeros(spec.numel, spec.dtype.np_dtype)
        outs.append((spec.name, node.meta["val"]))
    K.evaluate(lowered.kernel, buffers)
    results = [np.lib.stride_tricks.as_strided(
        buffers[name], shape=meta.shape,
        strides=[s * meta.dtype.itemsize for s in meta.strides]) for name, meta in outs]
    return results, lowered.kernel


@pytest.mark.parametrize("op, sample", lowering_rule_cases(per_op=3, seed=0))
def test_each_rule_matches_eager(op, sample):
    fn, tensors = sample_call(op, sample)
    if any(t.dtype.is_complex for t in tensors):
        pytest.skip("complex values are not lowered")
    expected = fn(*tensors)
    if isinstance(expected, (tuple, list)):
        pytest.skip("multi-output op")
    graph, _ = build_graph(fn, [meta_of(t) for t in tensors])
    node = [n for n in graph.nodes if n.op == "call_function"][-1]
    if not can_lower(node):
        pytest.skip(f"{op.name} with these arguments is not lowerable")
    try:
        (got,), _ = run_lowered(fn, *tensors)
    except LoweringError as err:
        pytest.skip(f"not lowerable here: {err}")
    want = expected.numpy()
    assert got.dtype == want.dtype
    tol = dict(rtol=1e-5, atol=1e-6) if want.dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got, want, **tol, equal_nan=True)


def _chain(x, w, b):
    return ember.nn.functional.gelu(x * w + b) * ember.sigmoid(x)


def test_fused_pointwise_chain_is_one_flat_loop(rng):
    x = ember.randn(4, 8, 16)
    w, b = ember.randn(16), ember.randn(8, 1)
    (got,), kernel = run_lowered(_chain, x, w, b)
    np.testing.assert_allclose(got, _chain(x, w, b).numpy(), rtol=1e-5, atol=1e-6)
    assert kernel.inner == () and len(kernel.outer) <= 3


def test_contiguous_pointwise_collapses_to_one_dim():
    x, y = ember.randn(3, 5, 7), ember.randn(3, 5, 7)
    (got,), kernel = run_lowered(lambda a, b: (a + b).exp(), x, y)
    assert kernel.outer == (105,)
    np.testing.assert_allclose(got, (x + y).exp().numpy(), rtol=1e-6)


@pytest.mark.parametrize("fn", [
    lambda x: ember.softmax(x, -1),
    lambda x: ember.log_softmax(x, 1),
    lambda x: ember.nn.functional.layer_norm(x, [9]),
    lambda x: x.var(1, keepdim=True),
    lambda x: (x - x.mean(-1, keepdim=True)).relu().sum(-1),
    lambda x: ember.logsumexp(x, 1),
], ids=["softmax", "log_softmax", "layer_norm", "var", "center_relu_sum", "logsumexp"])
def test_row_reductions_are_one_kernel(fn):
    x = ember.randn(6, 9)
    (got,), kernel = run_lowered(fn, x)
    np.testing.assert_allclose(got, fn(x).numpy(), rtol=1e-5, atol=1e-6)
    assert kernel.inner == (9,) and kernel.outer == (6,)


def test_transposed_input_and_channels_last_output():
    x = ember.randn(2, 3, 4, 5).contiguous(memory_format=ember.channels_last)
    (got,), _ = run_lowered(lambda a: a.relu() + 1, x)
    np.testing.assert_allclose(got, (x.relu() + 1).numpy())
    y = ember.randn(5, 4)
    (got,), _ = run_lowered(lambda a: a.t().exp(), y)
    np.testing.assert_allclose(got, y.t().exp().numpy(), rtol=1e-6)


def test_two_reduction_spaces_are_refused():
    x = ember.randn(4, 6)
    with pytest.raises(LoweringError, match="one reduction space"):
        run_lowered(lambda a: a.sum(0).sum() + a.sum(1).sum(), x)


def test_batch_norm_eval_is_pointwise():
    x = ember.randn(2, 3, 4, 4)
    rm, rv, w, b = ember.randn(3), ember.rand(3) + 0.5, ember.randn(3), ember.randn(3)
    fn = lambda x, rm, rv, w, b: ember.nn.functional.batch_norm(  # noqa: E731
        x, rm, rv, w, b, training=False).relu()
    (got,), kernel = run_lowered(fn, x, rm, rv, w, b)
    np.testing.assert_allclose(got, fn(x, rm, rv, w, b).numpy(), rtol=1e-5, atol=1e-6)
    assert kernel.inner == ()


WINDOWED = {
    "max3s2p1": lambda x: ember.nn.functional.max_pool2d(x, 3, 2, 1),
    "max_ceil_dil": lambda x: ember.nn.functional.max_pool2d(x, 2, 2, 1, 2, ceil_mode=True),
    "avg3p1": lambda x: ember.nn.functional.avg_pool2d(x, 3, 1, 1),
    "avg_ceil_nopad": lambda x: ember.nn.functional.avg_pool2d(x, 3, 2, 1, ceil_mode=True,
                                                               count_include_pad=False),
    "avg_divisor": lambda x: ember.nn.functional.avg_pool2d(x, 2, divisor_override=3),
    "adaptive1": lambda x: ember.nn.functional.adaptive_avg_pool2d(x, 1),
    "adaptive32": lambda x: ember.nn.functional.adaptive_avg_pool2d(x, (3, 2)),
    "pad": lambda x: ember.nn.functional.pad(x, (1, 2, 0, 1), value=-3.0),
    "pad_crop": lambda x: ember.nn.functional.pad(x, (-1, 2)),
    "pad_reflect": lambda x: ember.nn.functional.pad(x, (2, 3, 1, 3), mode="reflect"),
    "pad_reflect_crop": lambda x: ember.nn.functional.pad(x, (3, -2, -1, 2), mode="reflect"),
    "pad_replicate": lambda x: ember.nn.functional.pad(x, (2, 1, 4, 0), mode="replicate"),
    "pad_circular": lambda x: ember.nn.functional.pad(x, (1, 3, 2, -1), mode="circular"),
    "flip": lambda x: x.flip([1, 3]) + 1,
}


@pytest.mark.parametrize("name", sorted(WINDOWED))
@pytest.mark.parametrize("channels_last", [False, True])
def test_windowed_ops_match_eager(name, channels_last):
    x = ember.randn(2, 3, 6, 4)
    if channels_last:
        x = x.contiguous(memory_format=ember.channels_last)
    fn = WINDOWED[name]
    (got,), _ = run_lowered(fn, x)
    np.testing.assert_allclose(got, fn(x).numpy(), rtol=1e-6, atol=1e-6)


def test_cat_of_buffers_matches_eager():
    a, b = ember.randn(2, 3, 4), ember.randn(2, 5, 4)
    fn = lambda x, y: ember.cat([x, y], 1) * 2  # noqa: E731
    (got,), _ = run_lowered(fn, a, b)
    np.testing.assert_allclose(got, fn(a, b).numpy(), rtol=1e-6)


@pytest.mark.parametrize("dim, start, end", [(0, 2, 5), (1, None, 3), (1, -3, None),
                                             (0, 4, 100), (-1, 1, 3), (0, 5, 2)])
def test_slice_scatter_into_a_computed_base_matches_eager(dim, start, end):
    base, src = ember.randn(6, 4), ember.randn(6, 4)
    n = len(range(*slice(start, end).indices(base.shape[dim])))
    src = src.narrow(dim % 2, 0, n).contiguous()

    def fn(x, y):
        return ember.slice_scatter(x * 2, y, dim, start, end) + 1
    (got,), kernel = run_lowered(fn, base, src)
    np.testing.assert_allclose(got, fn(base, src).numpy(), rtol=1e-6)
    assert len(kernel.inputs) == 2                  # one kernel: the base is computed in it


def test_gradient_of_three_narrows_is_one_kernel():
    """autograd's gradient of q/k/v narrows of a packed weight: three slice_scatters into
    zeros (a constant buffer once folded), summed: one kernel, which reads the zeros only
    outside each slice."""
    def fn(a, b, c, z):
        return (ember.slice_scatter(z, a, 0, 0, 2) + ember.slice_scatter(z, b, 0, 2, 4)
                + ember.slice_scatter(z, c, 0, 4, 6))
    pieces = [ember.randn(2, 4) for _ in range(3)]
    (got,), kernel = run_lowered(fn, *pieces, ember.zeros(6, 4))
    np.testing.assert_allclose(got, ember.cat(pieces).numpy(), rtol=1e-6)
    assert len(kernel.inputs) == 4
    zero_reads = [e for e in K._walk(kernel.stages[0].value, set())
                  if isinstance(e, (K.Load, K.MaskedLoad)) and e.buffer == kernel.inputs[3].name]
    assert zero_reads and all(isinstance(e, K.MaskedLoad) for e in zero_reads)


def test_stack_of_buffers_and_computed_values_matches_eager():
    a, b = ember.randn(2, 3, 4), ember.randn(2, 3, 4)
    fn = lambda x, y: ember.stack([x, y, x * y], 2)  # noqa: E731
    (got,), _ = run_lowered(fn, a, b)
    np.testing.assert_allclose(got, fn(a, b).numpy(), rtol=1e-6)


def test_max_pool_keeps_nan_like_torch():
    x = ember.randn(1, 1, 4, 4)
    x[0, 0, 1, 1] = float("nan")
    fn = lambda t: ember.nn.functional.max_pool2d(t, 2)  # noqa: E731
    (got,), _ = run_lowered(fn, x)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(fn(x).numpy()))


def test_outer_matches_eager():
    a, b = ember.randn(5), ember.randn(7)
    fn = lambda x, y: ember.outer(x, y) + 1  # noqa: E731
    (got,), _ = run_lowered(fn, a, b)
    np.testing.assert_allclose(got, fn(a, b).numpy(), rtol=1e-6)
