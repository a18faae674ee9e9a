"""Split-K GEMMs (codegen/triton/gemm.py generate_split_gemm): K ranges summed in a fixed
order by a second kernel that applies the bias and the epilogue; run by Triton's
interpreter against float64, and the split choice for few-tile GEMMs."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from triton_device import dev, host, torch  # noqa: E402  (TRITON_INTERPRET=1 unless given)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import ember  # noqa: E402
from ember.codegen.lowering import lower_group  # noqa: E402
from ember.codegen.triton import cache  # noqa: E402
from ember.codegen.triton.autotune import default_config  # noqa: E402
from ember.codegen.triton.source import literal_sizes  # noqa: E402
from ember.codegen.triton.gemm import (SMS, GemmConfig, MatmulProblem,  # noqa: E402
                                       anchor_problem, generate_gemm, generate_split_gemm,
                                       split_k)
from ember.ir.errors import LoweringError  # noqa: E402
from ember.ir.fused import FusedGroup  # noqa: E402
from ember.ir.meta import meta_of  # noqa: E402
from ember.ir.symbolic import build_graph  # noqa: E402
from ember.passes.fuse import fuse  # noqa: E402
from ember.passes.manager import PassContext  # noqa: E402

SMALL = GemmConfig(block_m=16, block_n=16, block_k=16, group_m=2, num_warps=1, num_stages=1)


def _run(split, operands, outs):
    ws = dev(np.full(split.workspace, np.nan, np.float32))   # every element is written
    for kernel in split.kernels:
        cache.launch(kernel, operands + outs + [ws])


@pytest.mark.parametrize("splits", [2, 3, 5])
@pytest.mark.parametrize("m, n, k", [(37, 21, 100), (16, 16, 64)])
def test_split_k_matches_float64(m, n, k, splits, rng):
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    # the weight-gradient form: A = X^T (M-major), B row-major
    problem = MatmulProblem(m, n, k, ember.float32, ember.float32, (0, 1, m), (0, n, 1),
                            (0, n, 1), precision="ieee")
    split = generate_split_gemm(problem, SMALL, splits)
    # K ranges are whole BLOCK_K steps: 100 in 5 ranges of 32 is 4 ranges
    assert 2 <= split.splits <= splits and split.workspace == split.splits * m * n
    c = dev(np.full(m * n, 7.0, np.float32))
    _run(split, [dev(np.ascontiguousarray(a.T)), dev(b)], [c])
    np.testing.assert_allclose(host(c).reshape(m, n), a.astype(np.float64) @ b, rtol=1e-5,
                               atol=1e-4)


def test_split_k_kernels_keep_literal_sizes():
    """The plain GEMM is shape-generic (its strides are bound runtime sizes); the split's
    partial and sum kernels bake the shape in (one body per shape, no bound sizes)."""
    problem = MatmulProblem.create(37, 21, 100, precision="ieee")
    with literal_sizes(False):                  # shape-generic kernels are opt-in
        assert generate_gemm(problem, SMALL).launch.sizes
        split = generate_split_gemm(problem, SMALL, 2)
    for kernel in split.kernels:
        assert kernel.launch.sizes == [] and "ks0" not in kernel.source
        assert "N = 21" in kernel.source
    assert not generate_gemm(problem, SMALL).launch.sizes     # the default bakes them in


def test_split_k_batched_with_bias(rng):
    a = rng.standard_normal((24, 70)).astype(np.float32)
    b = rng.standard_normal((19, 70)).astype(np.float32)             # K-major (a Linear weight)
    bias = rng.standard_normal(19).astype(np.float32)
    problem = MatmulProblem.create(24, 19, 70, b_layout="kmajor", bias=ember.float32,
                                   precision="ieee")
    c = dev(np.zeros(24 * 19, np.float32))
    _run(generate_split_gemm(problem, SMALL, 3), [dev(a), dev(b), dev(bias)], [c])
    np.testing.assert_allclose(host(c).reshape(24, 19), a.astype(np.float64) @ b.T + bias,
                               rtol=1e-5, atol=1e-4)


def test_split_k_applies_a_multi_output_epilogue():
    """An epilogue with two outputs (as an optimizer update fused into a weight-gradient
    GEMM has) runs in the sum kernel, once per element."""
    x, w, r = ember.randn(40, 18), ember.randn(18, 90), ember.randn(40, 90)

    def fn(x, w, r):
        z = (x @ w) * 2 + r
        return z.relu(), z
    graph, constants = build_graph(fn, [meta_of(t) for t in (x, w, r)])
    fuse(graph, PassContext(constants=constants))
    env = dict(zip([n for n in graph.nodes if n.op == "placeholder"], (x, w, r)))
    [node] = [n for n in graph.nodes if isinstance(n.target, FusedGroup) and
              n.target.kind == "epilogue"]
    inner = [n for n in node.target.graph.nodes if n.op == "placeholder"]
    values = dict(zip(inner, [env[a] for a in node.args]))
    lowered = lower_group(node.target.graph, "epi")
    problem, operands = anchor_problem(lowered.anchor)
    split = generate_split_gemm(problem, SMALL, 4, lowered.kernel, name="epi")
    assert split.kernels[0].source.count("tl.store(") == 1      # partials only
    extra = [n for n in lowered.inputs if n is not lowered.anchor]
    outs = [dev(np.full(spec.numel, 7, spec.dtype.np_dtype)) for spec in lowered.kernel.outputs]
    _run(split, [dev(np.ascontiguousarray(values[n].numpy())) for n in operands + extra], outs)
    assert len(outs) == 2
    z = x.numpy().astype(np.float64) @ w.numpy() * 2 + r.numpy()
    got = sorted((host(o) for o in outs), key=lambda o: o.min())   # z's minimum is < 0
    np.testing.assert_allclose(got[0].reshape(40, 90), z, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(got[1].reshape(40, 90), np.maximum(z, 0), rtol=1e-5, atol=1e-4)


def test_split_choice_for_weight_gradient_shapes():
    """A transformer layer's weight gradients over 4096 tokens fill the SMs through K
    splits; GEMMs with enough tiles or short K stay whole."""
    def programs(m, n, k):
        problem = MatmulProblem(m, n, k, ember.float32, ember.float32, (0, 1, m), (0, n, 1),
                                (0, n, 1))
        config = default_config(problem)
        tiles = -(-m // config.block_m) * -(-n // config.block_n)
        return tiles, split_k(problem, config)
    for m, n in [(512, 512), (2048, 512), (512, 2048)]:
        tiles, splits = programs(m, n, 4096)
        assert splits > 1 and SMS // 2 < tiles * splits <= SMS, (m, n, tiles, splits)
    assert programs(4096, 2048, 512)[1] == 1           # 256 tiles: a full wave already
    assert programs(4096, 512, 2048)[1] == 1           # 128 tiles of 128x128
    assert programs(64, 64, 256)[1] == 1               # K too short to split
    assert programs(4, 10, 1024)[1] == 1               # a classifier head: too little work


def test_split_k_refuses_convolutions():
    from ember.codegen.triton.gemm import ConvProblem
    conv = ConvProblem((1, 4, 8, 8), (256, 64, 8, 1), (4, 4, 3, 3), (36, 9, 3, 1),
                       (256, 64, 8, 1))
    assert split_k(conv, SMALL) == 1
    with pytest.raises(LoweringError, match="split-K"):
        generate_split_gemm(conv, SMALL, 2)


# --- TF32 operands staged K-major -----------------------------------------------------------
def _wgrad_problem(m, n, k, batch=1):
    """dW = dY^T @ X: A M-major, B N-major (neither K-major), as a weight gradient reads."""
    return MatmulProblem(m, n, k, ember.float32, ember.float32, (m * k, 1, m), (k * n, n, 1),
                         (m * n, n, 1), batch, precision="tf32")


def test_kmajor_staging_copies_both_operands_of_a_weight_gradient(rng, monkeypatch):
    from ember.codegen.triton import gemm
    from ember.codegen.triton.gemm import generate_gemm, kmajor_staging
    monkeypatch.setattr(gemm, "STAGE_FLOPS_PER_ELEMENT", 1)         # small shapes stage too
    m, n, k, batch = 20, 24, 600, 2
    problem = _wgrad_problem(m, n, k, batch)
    staged, copies = kmajor_staging(problem)
    assert [c.operand for c in copies] == [0, 1]
    assert staged.a_strides[2] == 1 and staged.b_strides[1] == 1
    a = rng.standard_normal((batch, k, m)).astype(np.float32)     # stored (K, M) per batch
    b = rng.standard_normal((batch, k, n)).astype(np.float32)
    operands = [dev(a), dev(b)]
    for c in copies:
        out = dev(np.zeros(c.numel, np.float32))
        cache.launch(c.kernel, [operands[c.operand], out])
        operands[c.operand] = out
    np.testing.assert_array_equal(host(operands[0]).reshape(batch, m, k), a.transpose(0, 2, 1))
    np.testing.assert_array_equal(host(operands[1]).reshape(batch, n, k), b.transpose(0, 2, 1))
    c = dev(np.zeros(batch * m * n, np.float32))
    cache.launch(generate_gemm(staged, SMALL), operands + [c])
    want = np.einsum("bkm,bkn->bmn", a.astype(np.float64), b)
    np.testing.assert_allclose(host(c).reshape(batch, m, n), want, rtol=2e-2, atol=2e-1)


def test_kmajor_staging_only_where_it_pays():
    from ember.codegen.triton.gemm import kmajor_staging
    assert kmajor_staging(_wgrad_problem(512, 512, 4096))[1]          # 2 GFLOP over 2M each
    assert not kmajor_staging(_wgrad_problem(16, 16, 4096))[1]        # 32 FLOPs per element
    ieee = MatmulProblem(512, 512, 4096, ember.float32, ember.float32, (0, 1, 512),
                         (0, 512, 1), (0, 512, 1), precision="ieee")
    assert not kmajor_staging(ieee)[1]                                # only TF32 needs it
    kmajor = MatmulProblem.create(512, 512, 4096, b_layout="kmajor", precision="tf32")
    assert not kmajor_staging(kmajor)[1]
    # a weight shared by every batch (stride 0) is copied once
    shared = MatmulProblem(128, 512, 512, ember.float32, ember.float32, (128 * 512, 512, 1),
                           (0, 512, 1), (128 * 512, 512, 1), 32, precision="tf32")
    staged, copies = kmajor_staging(shared)
    assert [c.operand for c in copies] == [1] and copies[0].numel == 512 * 512
    assert staged.b_strides == (0, 1, 512)
