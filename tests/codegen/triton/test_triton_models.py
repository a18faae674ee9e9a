"""Every kernel a built-in model needs, generated for Triton and run by the interpreter in
place of its fused group or GEMM, gives the model's eager output (ops with no generated
kernel, such as max_pool2d, run eagerly between them)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from triton_device import dev, host  # noqa: E402  (TRITON_INTERPRET=1 unless given)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import ember  # noqa: E402
from ember.codegen.triton import cache  # noqa: E402
from ember.codegen.triton.collect import graph_kernels  # noqa: E402
from ember.compiler.triton_kernels import builtin_model_cases  # noqa: E402
from ember.ir.fused import EPILOGUE_ANCHORS, FusedGroup  # noqa: E402
from ember.ir.graph import OpKind, map_arg  # noqa: E402
from ember.ir.meta import meta_of  # noqa: E402
from ember.ir.symbolic import build_graph  # noqa: E402
from ember.passes.manager import PassContext, run_passes  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from test_llvm_emit import flat_input  # noqa: E402


def _extent(meta) -> int:
    return 1 + sum((s - 1) * st for s, st in zip(meta.shape, meta.strides)) \
        if all(meta.shape) else 0


def _strided(flat: np.ndarray, meta) -> ember.Tensor:
    view = np.lib.stride_tricks.as_strided(flat, tuple(meta.shape),
                                           [s * flat.itemsize for s in meta.strides])
    return ember.from_numpy(view)


def _acc_meta(node):
    return next(n.meta["val"] for n in node.target.graph.nodes if n.op == OpKind.call_function
                and getattr(n.target, "name", "") in EPILOGUE_ANCHORS)


def run_with_triton(graph, constants, inputs):
    """Execute a fused graph: generated kernels through the interpreter, the rest eagerly."""
    kernels, _ = graph_kernels(graph)
    by_node: dict[str, list] = {}
    for k in kernels:
        by_node.setdefault(k.node, []).append(k)
    env, flats, args = {}, {}, iter(inputs)
    for node in graph.nodes:
        fetch = lambda n: env[n]  # noqa: E731
        if node.op == OpKind.placeholder:
            env[node] = next(args)
        elif node.op == OpKind.get_attr:
            env[node] = constants[node.target]
        elif node.op == OpKind.output:
            return map_arg(node.args[0], fetch)
        elif node.name in by_node:
            env[node] = _launch_all(node, by_node[node.name], env, flats)
        else:
            env[node] = node.target(*map_arg(node.args, fetch), **map_arg(node.kwargs, fetch))


def _launch_all(node, kernels, env, flats):
    values = {n.name: v for n, v in env.items()}
    metas = node.meta["val"] if isinstance(node.meta["val"], (tuple, list)) else [node.meta["val"]]
    outs = {}
    for k, meta in enumerate(metas):
        name = node.name if len(metas) == 1 else f"{node.name}[{k}]"
        outs[name] = (np.full(_extent(meta), np.nan, meta.dtype.np_dtype), meta)
    if isinstance(node.target, FusedGroup) and node.target.kind == "epilogue":
        meta = _acc_meta(node)
        flats[f"{node.name}.acc"] = np.zeros(_extent(meta), meta.dtype.np_dtype)
    on_device = {name: dev(flat) for name, (flat, _) in outs.items()}
    on_device.update({name: dev(flat) for name, flat in flats.items()})
    for gk in kernels:
        buffers = [on_device[arg] if arg in on_device else dev(flat_input(values[arg].detach()))
                   for arg in gk.arguments]
        cache.launch(gk.kernel, buffers)
    results = [_strided(host(on_device[name]), meta) for name, (_, meta) in outs.items()]
    return results[0] if len(results) == 1 else tuple(results)


def check_model(name, rtol=1e-4, atol=1e-4):
    model, inputs = (builtin_model_cases() | RESNET_CASES)[name]()
    graph, constants = build_graph(model, [meta_of(t) for t in inputs])
    run_passes(graph, "default-inference,fuse", PassContext(constants=constants))
    with ember.no_grad():
        got = run_with_triton(graph, constants, inputs)
        want = model(*inputs)
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=rtol, atol=atol)
    return graph_kernels(graph)


def test_mlp_runs_on_generated_kernels():
    kernels, externs = check_model("mlp")
    assert [k.kind for k in kernels] == ["gemm+epilogue"] * 3 and not externs


def test_small_cnn_runs_on_generated_kernels():
    kernels, externs = check_model("small_cnn")
    kinds = [k.kind for k in kernels]
    assert kinds.count("gemm+epilogue") == 3          # conv+relu, conv+relu, linear+bias


def test_transformer_runs_on_generated_kernels():
    kernels, _ = check_model("transformer")
    assert {"reduction", "pointwise", "gemm", "gemm+epilogue"} <= {k.kind for k in kernels}


def _one_block_a_stage(block, batch):
    """A ResNet of `block` with one block a stage, on 16x16 images. Under the interpreter a
    kernel costs its grid times its K loop: the full-depth resnet18 and resnet50 at 32x32
    took ~73 s of CPU, much of it the max pool's 128 programs (~75 ms each) and the
    stages' repeated widest 3x3 convs. One block a stage still generates every kernel
    kind of the full models: the 7x7 stem conv+bn+relu, the padded 3x3/2 max pool,
    stride-2 3x3 convs with their 1x1 stride-2 downsample, conv+bn+add+relu epilogues
    (the identity residual in resnet18's layer1, a downsample's output elsewhere),
    bottleneck 1x1 convs with and without the residual, the average-pool reduction and
    the fc GEMM. At 16x16 the last two stages run 1x1 maps, where every tap but the
    centre of a padded 3x3 conv is masked, and the pool's 4x4 output still has a border
    and an interior."""
    def case():
        ember.manual_seed(0)
        return (ember.models.ResNet(block, [1, 1, 1, 1], num_classes=10).eval(),
                [ember.randn(batch, 3, 16, 16)])
    return case


RESNET_CASES = {"resnet18_blocks": _one_block_a_stage(ember.models.BasicBlock, 2),
                "resnet50_blocks": _one_block_a_stage(ember.models.Bottleneck, 1)}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RESNET_CASES))
def test_resnets_run_on_generated_kernels(name):
    kernels, _ = check_model(name)
    assert {"gemm", "gemm+epilogue", "pointwise", "reduction"} <= {k.kind for k in kernels}
