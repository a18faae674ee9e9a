"""Generated Triton kernels (codegen/triton/source.py), run by Triton's interpreter on
torch CPU tensors, equal the descriptions' NumPy semantics (codegen/kernel.evaluate).

TRITON_INTERPRET must be set before triton is imported: Triton reads it when a
kernel is decorated (triton_device.py sets it; with TRITON_INTERPRET=0 on the GPU machine
the same tests run on the GPU). The cubin tests run in a subprocess (test_triton_aot.py).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from triton_device import dev, host  # noqa: E402  (sets TRITON_INTERPRET=1 unless given)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import ember  # noqa: E402
from ember.codegen import kernel as K  # noqa: E402
from ember.codegen.lowering import lower_group  # noqa: E402
from ember.codegen.triton import cache, source  # noqa: E402
from ember.ir.meta import meta_of  # noqa: E402
from ember.ir.symbolic import build_graph  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from test_llvm_emit import assert_close, assert_rule_sample_matches, flat_input  # noqa: E402

from tests.op_samples import lowering_rule_cases  # noqa: E402


def run_kernel(kernel: K.Kernel, inputs: list[np.ndarray], blocks=None):
    """(reference, triton) output pairs for one description on flat input arrays."""
    ref = {s.name: a for s, a in zip(kernel.inputs, inputs)}
    got = {s.name: dev(a) for s, a in zip(kernel.inputs, inputs)}
    for spec in kernel.outputs:
        ref[spec.name] = np.full(spec.numel, 7, spec.dtype.np_dtype)   # gaps stay 7
        got[spec.name] = dev(np.full(spec.numel, 7, spec.dtype.np_dtype))
    K.evaluate(kernel, ref)
    generated = source.generate(kernel, blocks)
    cache.launch(generated, [got[s.name] for s in kernel.inputs + kernel.outputs])
    return [(ref[s.name], host(got[s.name])) for s in kernel.outputs], generated


def run_fn(fn, *tensors, blocks=None):
    graph, _ = build_graph(fn, [meta_of(t) for t in tensors])
    lowered = lower_group(graph, "k")
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    ins = [flat_input(tensors[placeholders.index(n)]) for n in lowered.inputs]
    return run_kernel(lowered.kernel, ins, blocks)


@pytest.mark.parametrize("op, sample", lowering_rule_cases(per_op=2, seed=1))
def test_every_rule_matches_evaluate(op, sample):
    assert_rule_sample_matches(run_fn, op, sample, lambda t: t.dtype.is_complex,
                               "complex tensors are not generated code")


@pytest.mark.parametrize("shape", [(1,), (33,), (3, 17), (2, 3, 40)])
def test_pointwise_chain(shape):
    fn = lambda x, w, b: ember.nn.functional.gelu(x * w + b) * ember.sigmoid(x)  # noqa: E731
    pairs, gen = run_fn(fn, ember.randn(*shape), ember.randn(shape[-1]), ember.randn(shape[-1]))
    assert_close(pairs, rtol=1e-5, atol=1e-6)
    assert "RBLOCK" not in gen.launch.constexprs


REDUCTIONS = {
    "softmax": lambda x: ember.softmax(x, -1),
    "layer_norm": lambda x: ember.nn.functional.layer_norm(x, [x.shape[-1]]),
    "sum0": lambda x: x.sum(0),
    "amax1": lambda x: x.amax(1),
    "sum_all": lambda x: x.sum(),
    "log_softmax0": lambda x: ember.log_softmax(x, 0),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@pytest.mark.parametrize("shape", [(5, 37), (64, 100)])
def test_reductions_persistent(name, shape):
    pairs, gen = run_fn(REDUCTIONS[name], ember.randn(*shape))
    assert_close(pairs, rtol=1e-5, atol=1e-5)
    # rows fit: one pass over memory (short column reductions that store nothing over
    # the reduced space step one element at a time: one loop, still one pass)
    assert gen.source.count("for roff") <= (1 if name == "sum0" else 0)


@pytest.mark.parametrize("name", ["softmax", "layer_norm", "sum_all", "amax1"])
def test_reductions_looped(name):
    """Rows longer than RBLOCK: every stage loops over chunks (blocks forced small)."""
    x = ember.randn(3, 300)
    blocks = source.Blocks(xblock=2, rblock=64, persistent=False, num_warps=4)
    pairs, gen = run_fn(REDUCTIONS[name], x, blocks=blocks)
    assert_close(pairs, rtol=1e-5, atol=1e-5)
    assert "for roff" in gen.source


def test_softmax_reads_the_row_once():
    _, gen = run_fn(REDUCTIONS["softmax"], ember.randn(4, 64))
    assert gen.source.count("tl.load(") == 1


def test_nan_propagates_through_max():
    x = ember.tensor([[1.0, float("nan"), 3.0], [4.0, 5.0, 6.0]])
    pairs, _ = run_fn(lambda t: t.amax(1), x)
    assert np.isnan(pairs[0][1][0]) and pairs[0][1][1] == 6.0
    pairs, _ = run_fn(lambda t: ember.maximum(t, t.t().t() * 0.5), x)
    assert np.isnan(pairs[0][1][1]) and pairs[0][1][5] == 6.0


def test_int_and_bool_kernels():
    a = ember.randint(-50, 50, (3, 19))
    b = ember.randint(1, 7, (19,))
    pairs, _ = run_fn(lambda x, y: (x // y, x % y, x > 3, ember.fmod(x, y)), a, b)
    assert_close(pairs)


def test_half_precision_rounds_like_numpy():
    x = ember.randn(4, 33).to(ember.float16)
    pairs, _ = run_fn(lambda t: (t * 3 + 1).exp(), x)
    # float16 keeps 11 bits (ulp ~ 1e-3 relative); exp amplifies a one-ulp difference in its
    # rounded input, and the GPU's libdevice exp differs from NumPy's: allow 4 ulps
    assert_close(pairs, rtol=4e-3, atol=1e-3)


def test_channels_last_and_transposed_access():
    x = ember.randn(2, 8, 5, 5).contiguous(memory_format=ember.channels_last)
    pairs, _ = run_fn(lambda t: t.relu() * 2 + 1, x)
    assert_close(pairs)
    pairs, _ = run_fn(lambda t: t.t().exp() + 1, ember.randn(33, 20))
    assert_close(pairs, rtol=1e-5)


def test_transcendentals_near_zero_and_large():
    x = ember.tensor([-30.0, -3.0, -1e-6, 0.0, 1e-7, 0.4, 0.9, 2.0, 30.0])
    fns = [ember.tanh, ember.expm1, ember.sinh, ember.cosh, ember.atan, ember.sigmoid]
    for fn in fns:
        pairs, _ = run_fn(fn, x)
        assert_close(pairs, rtol=1e-5, atol=1e-7)
    y = ember.tensor([-0.99, -0.5, 0.0, 1e-6, 0.7, 0.999])
    for fn in (ember.asin, ember.acos, ember.log1p):
        pairs, _ = run_fn(fn, y)
        assert_close(pairs, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["softmax", "layer_norm", "amax1"])
def test_few_long_rows_take_one_row_a_program(name):
    """Few rows longer than MAX_PERSISTENT (BatchNorm's per-channel sums) get the default
    blocks [1, FEW_ROWS_RBLOCK]: one row a program, a partial last chunk masked."""
    x = ember.randn(3, source.MAX_PERSISTENT + 1000)
    pairs, gen = run_fn(REDUCTIONS[name], x)
    assert_close(pairs, rtol=1e-4, atol=1e-4)
    assert "for roff" in gen.source
    assert gen.launch.constexprs == {"XBLOCK": 1, "RBLOCK": source.FEW_ROWS_RBLOCK}
