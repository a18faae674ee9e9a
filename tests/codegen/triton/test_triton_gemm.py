"""Generated GEMM and implicit-GEMM conv kernels (codegen/triton/gemm.py), run by Triton's
interpreter on torch CPU tensors, against float64 torch; epilogues from real fusion groups."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from triton_device import INTERPRETED, dev, host, torch  # noqa: E402  (TRITON_INTERPRET=1 unless given)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import ember  # noqa: E402
from ember.codegen.lowering import lower_group  # noqa: E402
from ember.codegen.triton import cache  # noqa: E402
from ember.codegen.triton.gemm import (GemmConfig, MatmulProblem, anchor_problem,  # noqa: E402
                                       generate_gemm)
from ember.ir.dtypes import bfloat16, float16, float32  # noqa: E402
from ember.ir.errors import LoweringError  # noqa: E402
from ember.ir.fused import FusedGroup  # noqa: E402
from ember.ir.meta import meta_of  # noqa: E402
from ember.ir.symbolic import build_graph  # noqa: E402
from ember.passes.fuse import fuse  # noqa: E402
from ember.passes.manager import PassContext  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from test_llvm_emit import flat_input  # noqa: E402

SMALL = GemmConfig(block_m=16, block_n=16, block_k=16, group_m=2, num_warps=1, num_stages=1)
F = ember.nn.functional


def _torch_flat(t: ember.Tensor):
    return dev(flat_input(t))


@pytest.mark.parametrize("b_layout", ["row", "kmajor"])
@pytest.mark.parametrize("m, n, k", [(37, 45, 29), (16, 16, 32), (1, 19, 5)])
def test_mm_ieee_matches_float64(b_layout, m, n, k, rng):
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    stored_b = b if b_layout == "row" else np.ascontiguousarray(b.T)
    problem = MatmulProblem.create(m, n, k, b_layout=b_layout, precision="ieee")
    gen = generate_gemm(problem, SMALL)
    c = dev(np.full(m * n, 7.0, np.float32))
    cache.launch(gen, [dev(a), dev(stored_b), c])
    want = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(host(c).reshape(m, n), want, rtol=1e-5, atol=1e-5)
    assert 'input_precision="ieee"' in gen.source


def test_precision_follows_the_flags():
    problem = MatmulProblem.create(32, 32, 32)
    assert 'input_precision="ieee"' in generate_gemm(problem).source   # PyTorch's default
    try:
        ember.backends.cuda.matmul.allow_tf32 = True
        assert 'input_precision="tf32"' in generate_gemm(problem).source
        ember.set_float32_matmul_precision("highest")
        assert 'input_precision="ieee"' in generate_gemm(problem).source
        ember.set_float32_matmul_precision("medium")
        assert ember.backends.cuda.matmul.allow_tf32
    finally:
        ember.set_float32_matmul_precision("highest")
    with pytest.raises(ValueError, match="highest"):
        ember.set_float32_matmul_precision("fast")
    half = MatmulProblem.create(32, 32, 32, dtype=float16)
    assert "input_precision" not in generate_gemm(half).source


def test_tf32_gemm_runs(rng):
    a = rng.standard_normal((20, 24)).astype(np.float32)
    b = rng.standard_normal((24, 18)).astype(np.float32)
    gen = generate_gemm(MatmulProblem.create(20, 18, 24, precision="tf32"), SMALL)
    c = dev(np.zeros(20 * 18, np.float32))
    cache.launch(gen, [dev(a), dev(b), c])
    # TF32 keeps 10 mantissa bits: about 1e-3 relative per product
    np.testing.assert_allclose(host(c).reshape(20, 18), a @ b, rtol=2e-2, atol=2e-2)


def test_fp16_inputs_accumulate_in_float32(rng):
    a = rng.standard_normal((33, 40)).astype(np.float16)
    b = rng.standard_normal((40, 17)).astype(np.float16)
    gen = generate_gemm(MatmulProblem.create(33, 17, 40, dtype=float16, out_dtype=float32), SMALL)
    c = dev(np.zeros(33 * 17, np.float32))
    cache.launch(gen, [dev(a), dev(b), c])
    want = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(host(c).reshape(33, 17), want, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(INTERPRETED, reason="Triton's interpreter (3.9) computes tl.dot of bfloat16 "
                    "tiles wrongly (their loads are right); this runs on the GPU")
def test_bf16_inputs_kmajor(rng):
    a = torch.randn(24, 48, dtype=torch.bfloat16)
    b = torch.randn(20, 48, dtype=torch.bfloat16)            # stored (N, K): K-major
    gen = generate_gemm(MatmulProblem.create(24, 20, 48, dtype=bfloat16, b_layout="kmajor",
                                             out_dtype=float32), SMALL)
    c = dev(np.zeros(24 * 20, np.float32))
    cache.launch(gen, [a.to(c.device), b.to(c.device), c])
    want = a.double() @ b.double().T
    np.testing.assert_allclose(host(c).reshape(24, 20), want.numpy(), rtol=1e-4, atol=1e-4)


def run_epilogue_group(fn, *tensors, config=SMALL):
    """Fuse fn's graph, generate its one epilogue group as a GEMM kernel, run it."""
    graph, constants = build_graph(fn, [meta_of(t) for t in tensors])
    fuse(graph, PassContext(constants=constants))
    env = dict(zip([n for n in graph.nodes if n.op == "placeholder"], tensors))
    [node] = [n for n in graph.nodes if isinstance(n.target, FusedGroup) and
              n.target.kind == "epilogue"]
    inner = [n for n in node.target.graph.nodes if n.op == "placeholder"]
    values = dict(zip(inner, [env[a] for a in node.args]))
    lowered = lower_group(node.target.graph, "epi")
    problem, operands = anchor_problem(lowered.anchor)
    gen = generate_gemm(problem, config, lowered.kernel, name="epi")
    extra = [n for n in lowered.inputs if n is not lowered.anchor]
    outs = [dev(np.full(spec.numel, 7, spec.dtype.np_dtype)) for spec in lowered.kernel.outputs]
    cache.launch(gen, [_torch_flat(values[n]) for n in operands + extra] + outs)
    return [host(o) for o in outs], lowered, gen


def test_linear_bias_gelu_residual_epilogue():
    x, w, b, r = ember.randn(37, 24), ember.randn(40, 24), ember.randn(40), ember.randn(37, 40)
    fn = lambda x, w, b, r: F.gelu(F.linear(x, w, b)) + r  # noqa: E731
    (out,), lowered, gen = run_epilogue_group(fn, x, w, b, r)
    want = torch.nn.functional.gelu(torch.nn.functional.linear(
        *(torch.from_numpy(t.numpy()).double() for t in (x, w, b)))) + torch.from_numpy(r.numpy())
    np.testing.assert_allclose(out.reshape(37, 40), want.numpy(), rtol=1e-5, atol=1e-5)
    assert lowered.anchor.target.name == "linear"
    assert "tl.store(" in gen.source and gen.source.count("tl.store(") == 1


def test_mm_relu_epilogue_with_column_broadcast():
    x, w, s = ember.randn(19, 21), ember.randn(21, 30), ember.randn(19, 1)
    fn = lambda x, w, s: (x @ w * s).relu()  # noqa: E731
    (out,), _, _ = run_epilogue_group(fn, x, w, s)
    want = ((x.numpy().astype(np.float64) @ w.numpy()) * s.numpy()).clip(0)
    np.testing.assert_allclose(out.reshape(19, 30), want, rtol=1e-5, atol=1e-5)


def test_bmm_epilogue():
    a, b = ember.randn(3, 17, 20), ember.randn(3, 20, 18)
    (out,), _, _ = run_epilogue_group(lambda a, b: ember.bmm(a, b).sigmoid(), a, b)
    want = 1 / (1 + np.exp(-(a.numpy().astype(np.float64) @ b.numpy())))
    np.testing.assert_allclose(out.reshape(3, 17, 18), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("stride, padding, dilation, groups", [
    (1, 1, 1, 1), (2, 0, 1, 1), (1, 2, 2, 2)])
def test_conv2d_nhwc_implicit_gemm_with_epilogue(stride, padding, dilation, groups):
    cl = ember.channels_last
    x = ember.randn(2, 6, 9, 7).contiguous(memory_format=cl)
    w = ember.randn(8, 6 // groups, 3, 3).contiguous(memory_format=cl)
    b = ember.randn(8)
    fn = lambda x, w, b: F.conv2d(x, w, b, stride, padding, dilation, groups).relu()  # noqa: E731
    (out,), lowered, gen = run_epilogue_group(fn, x, w, b)
    want = torch.nn.functional.conv2d(*(torch.from_numpy(t.numpy()).double() for t in (x, w, b)),
                                      stride=stride, padding=padding, dilation=dilation,
                                      groups=groups).relu()
    meta = lowered.outputs[0].meta["val"]
    got = np.lib.stride_tricks.as_strided(out, meta.shape,
                                          [s * 4 for s in meta.strides])
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-5)
    assert "kk[:, None]" in gen.source          # OHWI weight: K-major B, no index math


def test_conv2d_nchw_operands_still_correct():
    x, w = ember.randn(1, 3, 6, 6), ember.randn(4, 3, 2, 2)
    (out,), lowered, _ = run_epilogue_group(lambda x, w: F.conv2d(x, w, padding=1).tanh(), x, w)
    want = np.tanh(torch.nn.functional.conv2d(torch.from_numpy(x.numpy()).double(),
                                              torch.from_numpy(w.numpy()).double(),
                                              padding=1).numpy())
    np.testing.assert_allclose(out.reshape(want.shape), want, rtol=1e-5, atol=1e-6)


def test_unsupported_anchor_is_a_lowering_error():
    x, w = ember.randn(4, 8), ember.randn(8, 8)
    with pytest.raises(LoweringError, match="addmm"):
        run_epilogue_group(lambda b, x, w: ember.addmm(b, x, w, beta=2).relu(),
                           ember.randn(8), x, w)
