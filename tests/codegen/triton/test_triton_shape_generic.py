"""Shape-generic Triton kernels: sizes, strides, element counts and constants are runtime
arguments (LaunchSpec.sizes), so kernels of one structure at different shapes have one
source, one key and one cubin. Each shared kernel runs in Triton's interpreter
(TRITON_INTERPRET=1, or the GPU with TRITON_INTERPRET=0) at several shapes against torch."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from triton_device import dev, host, torch  # noqa: E402  (TRITON_INTERPRET=1 unless given)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import ember  # noqa: E402
from ember.codegen.lowering import lower_group  # noqa: E402
from ember.codegen.triton import cache, source, split_reduce  # noqa: E402
from ember.codegen.triton.gemm import ConvProblem, GemmConfig, generate_gemm  # noqa: E402
from ember.codegen.triton.layout_copy import batched_transpose  # noqa: E402
from ember.ir import dtypes  # noqa: E402
from ember.ir.meta import meta_of  # noqa: E402
from ember.ir.symbolic import build_graph  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from test_llvm_emit import flat_input  # noqa: E402


@pytest.fixture(autouse=True)
def shape_generic():
    """Shape-generic kernels are opt-in (EMBER_TRITON_LITERAL_SIZES=0): every test here
    generates them."""
    with source.literal_sizes(False):
        yield

F = ember.nn.functional
CL = ember.channels_last
SMALL = GemmConfig(block_m=16, block_n=16, block_k=16, group_m=2, num_warps=1, num_stages=1)


def _generated(fn, *tensors, blocks=None):
    graph, _ = build_graph(fn, [meta_of(t) for t in tensors])
    lowered = lower_group(graph, "k")
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    ins = [flat_input(tensors[placeholders.index(n)]) for n in lowered.inputs]
    return lowered.kernel, source.generate(lowered.kernel, blocks), ins


def _code(generated) -> str:
    """The kernel's text below its comments (which name the shape it was made for)."""
    return generated.source.split("@triton.jit", 1)[1]


def _run(kernel, generated, ins):
    outs = [dev(np.full(s.numel, np.nan, s.dtype.np_dtype)) for s in kernel.outputs]
    cache.launch(generated, [dev(a) for a in ins] + outs)
    ref = {s.name: a for s, a in zip(kernel.inputs, ins)}
    for spec in kernel.outputs:
        ref[spec.name] = np.full(spec.numel, 7, spec.dtype.np_dtype)
    from ember.codegen import kernel as K
    K.evaluate(kernel, ref)
    return [(ref[s.name], host(o)) for s, o in zip(kernel.outputs, outs)]


def _bn_apply(x, w, b):
    """The training step's normalize-and-ReLU shape: per-channel scale and shift."""
    return (x * w.reshape(1, -1, 1, 1) + b.reshape(1, -1, 1, 1)).relu() * 0.75


# channels-last activations of resnet-like layers: channels and spatial sizes change, the
# structure does not (the last shape's sizes are not multiples of 16: another cubin
# specialization, the same source)
SHAPES = [(2, 16, 5, 7), (3, 32, 4, 4), (2, 64, 3, 5), (1, 24, 6, 3)]


def test_pointwise_one_source_for_every_shape():
    gens = []
    for shape in SHAPES:
        rng = np.random.default_rng(sum(shape))
        x = ember.tensor(rng.standard_normal(shape, dtype=np.float32)).contiguous(memory_format=CL)
        w = ember.tensor(rng.standard_normal(shape[1], dtype=np.float32))
        b = ember.tensor(rng.standard_normal(shape[1], dtype=np.float32))
        kernel, gen, ins = _generated(_bn_apply, x, w, b, blocks=source.Blocks(64, 1, True, 2))
        (want, got), = _run(kernel, gen, ins)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        tw = torch.tensor(w.numpy()).reshape(1, -1, 1, 1)
        tb = torch.tensor(b.numpy()).reshape(1, -1, 1, 1)
        expect = ((torch.tensor(x.numpy()) * tw + tb).relu() * 0.75).permute(0, 2, 3, 1)
        np.testing.assert_allclose(got, expect.reshape(-1).numpy(), rtol=1e-6, atol=1e-6)
        gens.append(gen)
    assert len({_code(g) for g in gens}) == 1            # no size in the text
    assert "0.75" not in _code(gens[0])                  # constants are arguments too
    assert len({g.launch.bound()[0] for g in gens}) == len(SHAPES)
    # the key is the source, the argument types and the divisibility of the sizes by 16:
    # the first three shapes share one cubin, the last is compiled for its own sizes
    assert len({g.key() for g in gens[:3]}) == 1 and gens[3].key() != gens[0].key()
    assert len({g.body_key() for g in gens[:3]}) == 1
    assert len({g.instance_key() for g in gens}) == len(SHAPES)


@pytest.mark.parametrize("rows, cols", [(5, 300), (7, 180)])
def test_looped_row_reduction_shares_its_source(rows, cols):
    """softmax over long rows, looped in RBLOCK chunks (the loop bound is an argument)."""
    blocks = source.Blocks(2, 64, False, 2)
    gens, x = [], None
    for r, c in ((rows, cols), (rows + 3, cols + 40)):
        x = ember.tensor(np.random.default_rng(r).standard_normal((r, c), dtype=np.float32))
        kernel, gen, ins = _generated(lambda t: F.softmax(t, -1), x, blocks=blocks)
        (want, got), = _run(kernel, gen, ins)
        expect = torch.softmax(torch.tensor(x.numpy()), -1).reshape(-1).numpy()
        np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-6)
        gens.append(gen)
    assert _code(gens[0]) == _code(gens[1])


def _bn_relu(x, w, b):
    return F.relu(F.batch_norm(x, None, None, w, b, training=True))


def test_split_batch_norm_phases_share_their_sources():
    """BatchNorm's training statistics split along N*H*W: the partial and final kernels of
    two layers (other channels, other spatial sizes, other split counts) are the same."""
    sources = []
    for shape, splits in (((2, 8, 6, 6), 3), ((3, 16, 5, 4), 5)):
        rng = np.random.default_rng(shape[1])
        values = rng.standard_normal(shape).astype(np.float32)
        x = ember.tensor(values).contiguous(memory_format=CL)
        w = ember.tensor(np.linspace(0.5, 1.5, shape[1], dtype=np.float32))
        b = ember.tensor(np.linspace(-0.2, 0.3, shape[1], dtype=np.float32))
        graph, _ = build_graph(_bn_relu, [meta_of(t) for t in (x, w, b)])
        lowered = lower_group(graph, "k")
        kernel = lowered.kernel
        r = int(np.prod(kernel.inner))
        chunk = -(-(-(-r // splits)) // 8) * 8
        plan = split_reduce.SplitPlan(source.Blocks(4, 8, False, 4), -(-r // chunk), chunk)
        split = split_reduce.generate_split(kernel, plan)
        placeholders = [n for n in graph.nodes if n.op == "placeholder"]
        ins = [flat_input((x, w, b)[placeholders.index(n)]) for n in lowered.inputs]
        out = dev(np.full(kernel.outputs[0].numel, np.nan, np.float32))
        ws = dev(np.full(split.workspace, np.nan, np.float32))
        for gen in split.kernels:
            cache.launch(gen, [dev(a) for a in ins] + [out, ws])
        want = torch.relu(torch.nn.functional.batch_norm(
            torch.tensor(values), None, None, torch.tensor(w.numpy()), torch.tensor(b.numpy()),
            training=True))
        n, c, h, wd = shape
        got = host(out).reshape(n, h, wd, c).transpose(0, 3, 1, 2)
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-4)
        sources.append([_code(g) for g in split.kernels])
    assert sources[0] == sources[1]


@pytest.mark.parametrize("dtype", [dtypes.float32, dtypes.float16])
def test_layout_copies_share_one_kernel(dtype):
    gens = []
    for batch, rows, cols in ((2, 48, 32), (3, 16, 64), (1, 33, 5)):
        gen = batched_transpose(batch, rows, cols, dtype)
        values = np.random.default_rng(rows).standard_normal((batch, rows, cols))
        values = values.astype(dtype.np_dtype)
        out = dev(np.zeros(values.size, values.dtype))
        cache.launch(gen, [dev(values.reshape(-1)), out])
        want = torch.tensor(values).transpose(1, 2).reshape(-1).numpy()
        np.testing.assert_array_equal(host(out), want)
        gens.append(gen)
    assert len({_code(g) for g in gens}) == 1
    assert gens[0].key() == gens[1].key() != gens[2].key()   # 33 and 5: not multiples of 16


def _conv_case(n, c, h, w, cout, k, stride, padding, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((cout, c, k, k)).astype(np.float32)
    x_cl = np.ascontiguousarray(x.transpose(0, 2, 3, 1))          # NHWC storage
    w_cl = np.ascontiguousarray(wt.transpose(0, 2, 3, 1))         # OHWI storage
    ho = (h + 2 * padding - k) // stride + 1
    wo = (w + 2 * padding - k) // stride + 1
    problem = ConvProblem((n, c, h, w), (h * w * c, 1, w * c, c), (cout, c, k, k),
                          (k * k * c, 1, k * c, c), (ho * wo * cout, 1, wo * cout, cout),
                          (stride, stride), (padding, padding), precision="ieee")
    gen = generate_gemm(problem, SMALL, name="conv")
    out = dev(np.full(n * ho * wo * cout, np.nan, np.float32))
    cache.launch(gen, [dev(x_cl.reshape(-1)), dev(w_cl.reshape(-1)), out])
    want = torch.nn.functional.conv2d(torch.tensor(x).double(), torch.tensor(wt).double(),
                                      stride=stride, padding=padding)
    got = host(out).reshape(n, ho, wo, cout).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-4)
    return gen


def test_conv_layers_of_one_tile_share_one_kernel():
    """Implicit-GEMM convs of resnet's 3x3 layers at other output channels, spatial sizes
    and batches: one source where the tile config is the same (the main loop walks K a
    tap at a time: test_triton_conv_generic.py), sizes and strides are arguments and the
    output pixels are unravelled by multiply-shift with runtime magic numbers; a stride
    or padding of 0 or 1 is a literal (it shapes the index math), so the strided
    layers are a second structure, shared among themselves."""
    gens = [_conv_case(2, 16, 6, 5, 16, 3, 1, 1, 0), _conv_case(1, 16, 7, 7, 48, 3, 1, 1, 1),
            _conv_case(3, 16, 5, 5, 32, 3, 1, 1, 2)]
    assert len({_code(g) for g in gens}) == 1
    assert "umulhi" in _code(gens[0])
    # channels-last: the spatial sizes (6x5 and 7x7, not multiples of 16) are compiled
    # without divisibility, the channel strides (multiples of 16) with it: one cubin
    assert gens[0].key() == gens[1].key()
    assert "ks" in _code(gens[0]) and len(gens[0].launch.plain) >= 4
    strided = [_conv_case(2, 16, 8, 8, 32, 3, 2, 1, 3), _conv_case(1, 16, 9, 7, 64, 3, 2, 1, 4)]
    assert _code(strided[0]) == _code(strided[1]) != _code(gens[0])


def test_literal_sizes_bakes_the_shape_in():
    """literal_sizes() (and EMBER_TRITON_LITERAL_SIZES=1) give the per-shape kernels back: no
    bound arguments, a source per shape (what a plan packaged ahead of time launches)."""
    x = ember.randn(3, 40)
    y = ember.randn(5, 20)
    with source.literal_sizes():
        _, a, _ = _generated(lambda t: (t * 3).sigmoid(), x)
        _, b, _ = _generated(lambda t: (t * 3).sigmoid(), y)
    assert not a.launch.sizes and _code(a) != _code(b)
    _, c, _ = _generated(lambda t: (t * 3).sigmoid(), x)
    _, d, _ = _generated(lambda t: (t * 3).sigmoid(), y)
    assert c.launch.sizes and _code(c) == _code(d)


def _wgrad_case(n, c, h, w, cout, seed):
    """dW of a 3x3, stride 1, padding 1 conv over channels-last x and grad_output, split in
    K (a partial kernel, then the ordered sum), against torch's weight gradient."""
    from ember.codegen.triton import conv_wgrad
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    g = rng.standard_normal((n, cout, h, w)).astype(np.float32)
    problem = conv_wgrad.WeightGradProblem(
        (n, c, h, w), (h * w * c, 1, w * c, c), (n, cout, h, w), (h * w * cout, 1, w * cout, cout),
        (cout, c, 3, 3), (9 * c, 1, 3 * c, c), (1, 1), (1, 1), (1, 1), 1, dtypes.float32,
        dtypes.float32, "ieee")
    split = conv_wgrad.SplitPlan(16, 16, 16, 3, -(-(n * h * w) // 48) * 16, 1, 1)
    parts = conv_wgrad.partial_kernel(problem, split), conv_wgrad.reduce_kernel(problem, split)
    ws = dev(np.full(conv_wgrad.workspace_elements(problem, split), np.nan, np.float32))
    out = dev(np.full(cout * c * 9, np.nan, np.float32))
    cache.launch(parts[0], [dev(np.ascontiguousarray(g.transpose(0, 2, 3, 1)).reshape(-1)),
                            dev(np.ascontiguousarray(x.transpose(0, 2, 3, 1)).reshape(-1)), ws])
    cache.launch(parts[1], [ws, out])
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    tw = torch.zeros((cout, c, 3, 3), dtype=torch.float64, requires_grad=True)
    torch.nn.functional.conv2d(tx, tw, padding=1).backward(torch.tensor(g, dtype=torch.float64))
    got = host(out).reshape(cout, 3, 3, c).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, tw.grad.numpy(), rtol=1e-4, atol=1e-3)
    return parts


def test_conv_weight_gradients_share_their_sums():
    """The partial products keep their sizes literal (their main loop divides by them); the
    ordered sums of two layers' partials are one kernel."""
    a = _wgrad_case(1, 16, 4, 5, 16, 0)
    b = _wgrad_case(2, 16, 3, 3, 32, 1)
    assert _code(a[1]) == _code(b[1]) and _code(a[0]) != _code(b[0])
    assert "CHUNK = ks0" in _code(a[0])             # the chunk of K is an argument
