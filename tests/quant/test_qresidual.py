"""The residual add fused into the int8 conv's epilogue (passes/qfuse.py `fuse-qresidual`,
`quantized_conv2d_add`, qgemm_u8_add): bit for bit the unfused conv + quantized_add pair
(eager ops and the eager converted model), in ember.compile and ember.aot plans, and
against torch.ao's converted model on resnet-style blocks. convert_fx's own graph keeps
the pair (it mirrors torch.ao's)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from ember.ir.registry import OPS
from tests.quant.quant_twins import output_scale, share_random_weights
from tests.quant.quant_twins import converted_twins as ptq_twins

pytestmark = pytest.mark.filterwarnings("ignore")
torch.backends.quantized.engine = "x86"


def blocks(lib):
    nn = lib.nn

    class Block(nn.Module):
        """A ResNet basic block: conv-bn-relu, conv-bn, + identity (or a strided 1x1
        downsample), relu; `swap` adds as identity + conv, `relu` False as MobileNet."""

        def __init__(self, cin, cout, stride, swap=False, relu=True):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))
            self.swap, self.relu = swap, relu

        def forward(self, x):
            y = self.b2(self.c2(lib.relu(self.b1(self.c1(x)))))
            identity = x if self.down is None else self.down(x)
            out = identity + y if self.swap else y + identity
            return lib.relu(out) if self.relu else out

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False),
                                      nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2))
            self.layers = nn.Sequential(Block(16, 16, 1), Block(16, 40, 2),
                                        Block(40, 40, 1, swap=True, relu=False))
            self.avg = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(40, 10)

        def forward(self, x):
            return self.fc(lib.flatten(self.avg(self.layers(self.stem(x))), 1))
    return Net


def converted_twins(rng, shape=(4, 3, 18, 18)):
    t_model, e_model = blocks(torch)().eval(), blocks(ember)().eval()
    share_random_weights(t_model, e_model, rng)
    calib = [rng.standard_normal(shape).astype(np.float32) for _ in range(2)]
    return ptq_twins(t_model, e_model, calib)


def _targets(graph) -> list:
    return [getattr(n.target, "name", None) for n in graph.nodes]


def test_compiled_residual_blocks_fuse_and_equal_eager_and_torch_ao(rng):
    t_q, e_q = converted_twins(rng)
    # convert_fx's graph keeps torch.ao's form: three quantized adds, no fused op
    assert _targets(e_q.graph).count("quantized_add") == 3
    assert "quantized_conv2d_add" not in _targets(e_q.graph)
    x = rng.standard_normal((4, 3, 18, 18)).astype(np.float32)
    with ember.no_grad():
        compiled = ember.compile(e_q)
        got = compiled(ember.tensor(x)).numpy()
        want = e_q(ember.tensor(x)).numpy()
        odd = rng.standard_normal((3, 3, 14, 14)).astype(np.float32)      # partial tiles
        got_odd, want_odd = compiled(ember.tensor(odd)).numpy(), e_q(ember.tensor(odd)).numpy()
    fallbacks = compiled.stats.fallbacks
    assert fallbacks.count("quantized_conv2d_add") == 3 and "quantized_add" not in fallbacks
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_odd, want_odd)
    # against torch.ao's converted model: its conv requantization rounds some ties the
    # other way (docs/quantization.md) and three blocks carry those differences on, so
    # the same argmax and logits within 3 steps of the int8 output's scale
    t_out = t_q(torch.from_numpy(x)).detach().numpy()
    step = output_scale(e_q)
    assert (t_out.argmax(1) == got.argmax(1)).mean() >= 0.99
    assert np.abs(t_out - got).max() <= 3.01 * step


def _quantized(rng, shape, scale, zero_point):
    return ember.quantize_per_tensor(ember.tensor(rng.standard_normal(shape).astype(np.float32)),
                                     scale, zero_point, ember.quint8)


@pytest.mark.parametrize("n,c,h,oc,k,stride,conv_relu,relu", [
    (2, 16, 9, 40, 3, 1, False, True),      # 40 columns: a masked column block
    (3, 32, 11, 70, 3, 2, True, True),      # conv relu, strided, rows not a tile multiple
    (1, 8, 7, 64, 1, 1, False, False),
    (2, 24, 6, 130, 1, 1, False, True),
])
def test_fused_op_equals_the_pair_bit_for_bit(rng, n, c, h, oc, k, stride, conv_relu, relu):
    x = _quantized(rng, (n, c, h, h), 0.05, 60)
    w = ember.quantize_per_channel(
        ember.tensor(rng.standard_normal((oc, c, k, k)).astype(np.float32) * 0.2),
        ember.tensor(rng.uniform(0.005, 0.02, oc).astype(np.float32)),
        ember.tensor(np.zeros(oc, np.int64)), 0, ember.qint8)
    bias = ember.tensor(rng.standard_normal(oc).astype(np.float32))
    oh = (h + 2 * (k // 2) - k) // stride + 1
    conv_args = (x, w, bias, [stride] * 2, [k // 2] * 2, [1, 1], 1, 0.11, 70, conv_relu)
    for other in (_quantized(rng, (n, oc, oh, oh), 0.07, 100),             # contiguous
                  OPS["quantized_conv2d"](*conv_args[:7], 0.09, 30, False)):  # channels-last
        fused = OPS["quantized_conv2d_add"](*conv_args, other, 0.13, 50, relu)
        pair = OPS["quantized_add"](OPS["quantized_conv2d"](*conv_args), other, 0.13, 50, relu)
        swapped = OPS["quantized_add"](other, OPS["quantized_conv2d"](*conv_args), 0.13, 50,
                                       relu)
        np.testing.assert_array_equal(fused.int_repr().numpy(), pair.int_repr().numpy())
        np.testing.assert_array_equal(fused.int_repr().numpy(), swapped.int_repr().numpy())
        assert (fused.q_scale(), fused.q_zero_point()) == (0.13, 50)


def test_pass_rewrites_only_single_use_ordinary_convs():
    from ember.fx import symbolic_trace
    from ember.passes import PassContext, run_passes

    class Pair(ember.nn.Module):
        def forward(self, x, w, other):
            c = OPS["quantized_conv2d"](x, w, None, [1, 1], [1, 1], [1, 1], 1, 0.1, 3)
            shared = OPS["quantized_conv2d"](x, w, None, [1, 1], [1, 1], [1, 1], 1, 0.2, 4)
            y = OPS["quantized_add"](other, c, 0.3, 5, True)          # fused (from the right)
            z = OPS["quantized_add"](shared, y, 0.4, 6)               # shared: two readers
            return z, shared
    rng = np.random.default_rng(0)
    x = _quantized(rng, (1, 4, 5, 5), 0.1, 3)
    w = ember.quantize_per_tensor(ember.tensor(rng.standard_normal((4, 4, 3, 3)).astype(
        np.float32)), 0.02, 0, ember.qint8)
    other = _quantized(rng, (1, 4, 5, 5), 0.1, 3)
    gm = symbolic_trace(Pair())
    from ember.fx.passes.shape_prop import ShapeProp
    ShapeProp(gm).propagate(x, w, other)
    run_passes(gm.graph, "fuse-qresidual", PassContext())
    text = ember.ir.print_graph(gm.graph)
    assert text.count("quantized_conv2d_add(") == 1 and text.count("quantized_add(") == 1
    assert text.count("quantized_conv2d(") == 1
    got, shared = gm(x, w, other)
    want, _ = Pair()(x, w, other)
    np.testing.assert_array_equal(got.int_repr().numpy(), want.int_repr().numpy())


def test_aot_artifact_runs_the_fused_step(rng, tmp_path):
    _, e_q = converted_twins(rng)
    x = ember.tensor(rng.standard_normal((4, 3, 18, 18)).astype(np.float32))
    with ember.no_grad():
        path = ember.aot.compile_and_package(ember.export(e_q, (x,)), tmp_path / "q.ember")
        run = ember.aot.load_package(path)
        for _ in range(2):
            np.testing.assert_array_equal(run(x).numpy(), e_q(x).numpy())
            x = ember.tensor(rng.standard_normal(tuple(x.shape)).astype(np.float32))
    ops = [d.get("op") for d in run.lite.plan["steps"]]
    assert ops.count("quantized_conv2d_add") == 3 and "quantized_add" not in ops


@pytest.mark.parametrize("relu", [False, True])
def test_quantized_add_equals_torch_bit_for_bit(rng, relu):
    """quantized_add (native kernel and reference) computes torch's quantized add: the
    same integers, contiguous and channels-last, on random qparams and on qparams whose
    sums fall on ties (where the float64 quantize steps used before differed on ~1 value
    in 8)."""
    add = torch.ops.quantized.add_relu if relu else torch.ops.quantized.add
    for trial in range(4):
        a, b = (rng.standard_normal((4, 64, 28, 28)).astype(np.float32) * rng.uniform(0.5, 3)
                for _ in range(2))
        (sa, sb, s), (za, zb, z) = rng.uniform(0.005, 0.1, 3), rng.integers(0, 256, 3)
        sa, sb, s = (float(np.float32(v)) for v in (sa, sb, s))
        if trial % 2:   # the output scale twice the inputs': half steps, ties everywhere
            sb, s = sa, float(np.float32(2 * sa))
        ta = torch.quantize_per_tensor(torch.from_numpy(a), sa, int(za), torch.quint8)
        tb = torch.quantize_per_tensor(torch.from_numpy(b), sb, int(zb), torch.quint8)
        want = add(ta, tb, s, int(z)).int_repr().numpy()
        ea = ember.quantize_per_tensor(ember.tensor(a), sa, int(za), ember.quint8)
        eb = ember.quantize_per_tensor(ember.tensor(b), sb, int(zb), ember.quint8)
        got = OPS["quantized_add"](ea, eb, s, int(z), relu)
        np.testing.assert_array_equal(got.int_repr().numpy(), want)
        ref = OPS["quantized_add"].reference(ea._qarray(), eb._qarray(), s, int(z), relu)
        np.testing.assert_array_equal(ref.int_repr, want)
        cl = add(ta.contiguous(memory_format=torch.channels_last),
                 tb.contiguous(memory_format=torch.channels_last), s, int(z))
        np.testing.assert_array_equal(cl.int_repr().numpy(), want)


def test_fused_kernel_on_the_avx2_tile(rng):
    """qgemm_u8_add of the AVX2 config (8 lanes, compiled without AVX-512 here) equals the
    reference too (activation bytes <= 127, where that path is exact)."""
    import ember.codegen.quantized as CQ
    from ember.codegen.llvm import qgemm as Q
    from ember.codegen.llvm.target import Isa, supported_isas
    if Isa.AVX2 not in supported_isas():
        pytest.skip("no AVX2 on this CPU")
    x = ember.quantize_per_tensor(ember.tensor(rng.uniform(-1, 1, (2, 12, 7, 7)).astype(
        np.float32)), 0.02, 60, ember.quint8)
    w = ember.quantize_per_channel(
        ember.tensor(rng.standard_normal((20, 12, 3, 3)).astype(np.float32) * 0.2),
        ember.tensor(rng.uniform(0.005, 0.02, 20).astype(np.float32)),
        ember.tensor(np.zeros(20, np.int64)), 0, ember.qint8)
    other = _quantized(rng, (2, 20, 7, 7), 0.07, 100)
    args = [x._qarray(), w._qarray(), None, [1, 1], [1, 1], [1, 1], 1, 0.11, 70, False]
    got = CQ.conv2d(*args, cache={}, cfg=Q.AVX2, residual=(other._qarray(), 0.13, 50, True))
    want = OPS["quantized_conv2d_add"].reference(*args, other._qarray(), 0.13, 50, True)
    np.testing.assert_array_equal(got.int_repr, want.int_repr)
