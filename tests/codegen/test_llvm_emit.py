"""The LLVM backend for kernel descriptions (codegen/llvm/emit.py) equals the
descriptions' NumPy reference semantics (codegen/kernel.evaluate) and eager ember."""
import numpy as np
import pytest

import ember
from ember.codegen import kernel as K
from ember.codegen.llvm.emit import compile_kernel
from ember.codegen.lowering import lower_group
from ember.ir.errors import LoweringError
from ember.ir.meta import meta_of
from ember.ir.symbolic import build_graph
from tests.op_samples import assert_arrays_close, lowering_rule_cases, sample_call


def flat_input(t):
    """The flat buffer of a tensor as the kernel sees it (its strided extent)."""
    a = t.numpy()
    if a.size == 0:
        return np.empty(0, a.dtype)
    extent = 1 + sum((s - 1) * st // a.itemsize for s, st in zip(a.shape, a.strides))
    return np.ascontiguousarray(np.lib.stride_tricks.as_strided(a, (extent,), (a.itemsize,)))


def run_both(fn, *tensors, lanes=None):
    graph, _ = build_graph(fn, [meta_of(t) for t in tensors])
    lowered = lower_group(graph, "k")
    kernel = lowered.kernel
    ins = [flat_input(t) for t in tensors]
    # inputs the kernel does not read were dropped: map by placeholder position
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    ins = [ins[placeholders.index(n)] for n in lowered.inputs]
    ref = {s.name: a for s, a in zip(kernel.inputs, ins)}
    got = dict(ref)
    for spec in kernel.outputs:
        ref[spec.name] = np.full(spec.numel, 7, spec.dtype.np_dtype)   # gaps stay 7
        got[spec.name] = np.full(spec.numel, 7, spec.dtype.np_dtype)
    K.evaluate(kernel, ref)
    compiled = compile_kernel(kernel, lanes)
    compiled([got[s.name] for s in kernel.inputs + kernel.outputs])
    return [(ref[s.name], got[s.name]) for s in kernel.outputs], kernel


def assert_close(pairs, rtol=2e-6, atol=1e-6):
    for want, got in pairs:
        assert_arrays_close(got, want, rtol, atol)


# transcendental ops: the vector code differs from NumPy by a few ulp
LOOSE = {"erf", "erfc", "tanh", "gelu", "mish", "softplus", "log_sigmoid", "silu", "sigmoid",
         "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sin", "cos", "tan", "atan",
         "asin", "acos", "sinh", "cosh", "atan2", "pow", "elu", "selu", "celu", "softmax",
         "log_softmax", "logsumexp", "hardswish", "hardsigmoid", "tanhshrink", "lerp", "xlogy",
         "hypot", "rsqrt", "var", "std", "layer_norm", "mean", "sum", "prod"}


def assert_rule_sample_matches(run, op, sample, unsupported, why: str):
    """`run(fn, *tensors)` -> (reference, backend) output pairs on `op`'s sample agree, at
    transcendental tolerances for LOOSE ops; samples with an `unsupported` tensor (`why`)
    and graphs that do not lower are skipped."""
    fn, tensors = sample_call(op, sample)
    if any(unsupported(t) for t in tensors):
        pytest.skip(why)
    try:
        pairs, _ = run(fn, *tensors)
    except LoweringError as err:
        pytest.skip(f"not lowerable here: {err}")
    loose = op.name in LOOSE
    assert_close(pairs, rtol=1e-4 if loose else 2e-6, atol=1e-5 if loose else 1e-6)


@pytest.mark.parametrize("op, sample", lowering_rule_cases(per_op=2, seed=1))
def test_every_rule_compiles_and_matches(op, sample):
    assert_rule_sample_matches(run_both, op, sample,
                               lambda t: t.dtype.is_complex or t.dtype.name == "bfloat16",
                               "complex/bfloat16 are not compiled by the LLVM backend")


@pytest.mark.parametrize("shape", [(1,), (7,), (16,), (33,), (3, 17), (2, 3, 40)])
def test_pointwise_chain_all_remainders(shape):
    fn = lambda x, w, b: ember.nn.functional.gelu(x * w + b) * ember.sigmoid(x)  # noqa: E731
    x = ember.randn(*shape)
    pairs, _ = run_both(fn, x, ember.randn(shape[-1]), ember.randn(shape[-1]))
    assert_close(pairs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fn", [
    lambda x: ember.softmax(x, -1),
    lambda x: ember.nn.functional.layer_norm(x, [x.shape[-1]]),
    lambda x: x.sum(0),                    # column sums: OUTER mode
    lambda x: x.amax(1),
    lambda x: x.sum(),                     # full reduction: one outer point
    lambda x: ember.log_softmax(x, 0),
], ids=["softmax", "layer_norm", "sum0", "amax1", "sum_all", "log_softmax0"])
@pytest.mark.parametrize("shape", [(5, 37), (64, 100)])
def test_reductions(fn, shape):
    ember.manual_seed(0)
    x = ember.randn(*shape)
    pairs, _ = run_both(fn, x)
    # a full sum of 6400 normal values is ~80 in size and may land near 0: float32's
    # order-dependent rounding there is ~1e-5 absolute, so its bound scales with sqrt(n)
    atol = 1e-5 * max(1.0, (x.numel() / 256) ** 0.5)
    assert_close(pairs, rtol=1e-5, atol=atol)


def test_large_sum_error_stays_near_float64():
    x = ember.rand(1 << 20)
    pairs, _ = run_both(lambda t: t.sum(), x)
    (_, got), = pairs
    exact = x.numpy().astype(np.float64).sum()
    assert abs(got[0] - exact) / exact < 1e-5


def test_nan_propagates_through_max_and_relu():
    x = ember.tensor([[1.0, float("nan"), 3.0], [4.0, 5.0, 6.0]])
    pairs, _ = run_both(lambda t: t.amax(1), x)
    assert np.isnan(pairs[0][1][0]) and pairs[0][1][1] == 6.0


def test_int_and_bool_kernels():
    a = ember.randint(-50, 50, (3, 19))
    b = ember.randint(1, 7, (19,))
    pairs, _ = run_both(lambda x, y: (x // y, x % y, x > 3), a, b)
    assert_close(pairs)


def test_channels_last_and_transposed_access():
    x = ember.randn(2, 8, 5, 5).contiguous(memory_format=ember.channels_last)
    pairs, _ = run_both(lambda t: t.relu() * 2 + 1, x)
    assert_close(pairs)
    y = ember.randn(33, 20)
    pairs, _ = run_both(lambda t: t.t().exp() + 1, y)
    assert_close(pairs, rtol=1e-5)


def test_threads_split_a_large_kernel():
    x = ember.randn(600, 300)
    pairs, _ = run_both(lambda t: ember.softmax(t, -1), x)
    assert_close(pairs, rtol=1e-5, atol=1e-6)
    y = ember.randn(1 << 18)
    pairs, _ = run_both(lambda t: (t * 3).tanh(), y)
    assert_close(pairs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fn", [
    lambda x: ember.nn.functional.max_pool2d(x, 3, 2, 1),
    lambda x: ember.nn.functional.max_pool2d(x, 2),
    lambda x: ember.nn.functional.max_pool2d(x, 3, 2, 1, ceil_mode=True),
    lambda x: ember.nn.functional.avg_pool2d(x, 3, 1, 1),
    lambda x: ember.nn.functional.avg_pool2d(x, 3, 2, 1, count_include_pad=False, ceil_mode=True),
    lambda x: ember.nn.functional.adaptive_avg_pool2d(x, 1),
    lambda x: ember.nn.functional.adaptive_avg_pool2d(x, (3, 2)),
    lambda x: ember.nn.functional.pad(x, (1, 2, 0, 1), value=-3.0),
    lambda x: ember.cat([x, x.flip(0)], 1),
], ids=["max3s2p1", "max2", "max_ceil", "avg3p1", "avg_ceil_nopad", "adaptive1", "adaptive32",
        "pad", "cat"])
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_windowed_ops(fn, layout):
    x = ember.randn(2, 3, 6, 4)
    if layout == "nhwc":
        x = x.contiguous(memory_format=ember.channels_last)
    try:
        pairs, kernel = run_both(fn, x)
    except LoweringError as err:
        pytest.skip(str(err))
    assert_close(pairs, rtol=1e-5, atol=1e-6)
