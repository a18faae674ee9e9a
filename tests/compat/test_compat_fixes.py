"""Focused checks, against torch, for gaps the compat programs (tests/compat/*_recipes.py,
llama_port.py) ran into."""
from __future__ import annotations

import io
import operator

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ember  # noqa: E402
import ember.fx  # noqa: E402


def test_torch_fx_module_paths_import():
    from ember.fx.experimental.optimization import fuse  # noqa: F401
    from ember.fx.graph import Graph
    from ember.fx.graph_module import GraphModule
    from ember.fx.node import Argument, Node, Target, map_aggregate, map_arg  # noqa: F401
    from ember.fx.passes.shape_prop import ShapeProp, TensorMetadata  # noqa: F401
    from ember.fx.proxy import GraphAppendingTracer, Proxy  # noqa: F401
    assert Graph is ember.fx.Graph and GraphModule is ember.fx.GraphModule
    assert map_aggregate((1, [2, {"a": 3}]), lambda v: v * 10) == \
        torch.fx.node.map_aggregate((1, [2, {"a": 3}]), lambda v: v * 10)


def _is_impure_by_name(lib):
    def f(x):
        y = x.add_(1)        # noqa: F841 - in-place: kept
        z = x.relu()         # noqa: F841 - pure and unused
        return x * 2
    gm = lib.fx.symbolic_trace(f)
    return {n.name: n.is_impure() for n in gm.graph.nodes}


def test_node_is_impure_matches_torch():
    """Except for an in-place method call, which torch.fx counts as pure (its dead-code
    elimination drops `x.add_(1)` when the result is unused); ember keeps it."""
    got, want = _is_impure_by_name(ember), _is_impure_by_name(torch)
    assert got.pop("add_") and not want.pop("add_")
    assert got == want


def test_graph_python_code_is_the_graph_modules_code():
    gm = ember.fx.symbolic_trace(lambda x: x.relu() + 1)
    assert gm.graph.python_code("self").src == gm.code


def test_delete_all_unused_submodules_matches_torch():
    def build(lib):
        class Net(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.a = lib.nn.Linear(2, 2)
                self.b = lib.nn.Sequential(lib.nn.Linear(2, 2), lib.nn.ReLU())
                self.c = lib.nn.Linear(2, 2)

            def forward(self, x):
                return self.b(self.a(x)) + self.c.weight.sum()
        gm = lib.fx.symbolic_trace(Net())
        for node in list(gm.graph.nodes):
            if node.op == "call_module" and node.target == "a":
                node.replace_all_uses_with(node.args[0])
                gm.graph.erase_node(node)
        gm.delete_all_unused_submodules()
        assert gm.add_submodule("new.deep", lib.nn.Identity())
        assert gm.delete_submodule("new.deep") and not gm.delete_submodule("missing")
        return sorted(name for name, _ in gm.named_modules())
    assert build(ember) == build(torch)


def test_compiler_disable_breaks_the_graph_and_fullgraph_refuses():
    @ember.compiler.disable
    def host(x):
        return float(x.numpy().sum())

    def f(x):
        return ember.relu(x) + host(x)
    x = ember.tensor([-1.0, 2.0, 3.0])
    np.testing.assert_allclose(ember.compile(f)(x).numpy(), [4.0, 6.0, 7.0])
    assert ember.compile(host) is host
    with pytest.raises(ember.EmberError, match="marked torch.compiler.disable"):
        ember.compile(f, fullgraph=True)(x)


def test_dynamo_reset_recompiles():
    calls = []

    def counting_backend(gm, example_inputs):
        calls.append(1)
        return gm.forward
    f = ember.compile(lambda x: x * 2, backend=counting_backend)
    f(ember.ones(2))
    f(ember.ones(2))
    g = ember.compile(lambda x: x + 1)
    g(ember.ones(2))
    assert g.plans
    ember._dynamo.reset()
    assert not g.plans
    np.testing.assert_allclose(g(ember.ones(2)).numpy(), [2.0, 2.0])


@pytest.mark.parametrize("backend", ["inductor", "eager", "aot_eager"])
def test_torch_backend_names_compile_with_embers_compiler(backend):
    f = ember.compile(lambda x: (x * 3).sin(), backend=backend)
    x = np.linspace(-1, 1, 5, dtype=np.float32)
    np.testing.assert_allclose(f(ember.tensor(x)).numpy(),
                               torch.sin(torch.tensor(x) * 3).numpy(), rtol=1e-6)
    assert "inductor" in ember._dynamo.list_backends()


def test_module_compile_keeps_the_module_and_its_hooks():
    lin = ember.nn.Linear(3, 2)
    seen = []
    lin.register_forward_hook(lambda m, args, out: seen.append(tuple(out.shape)))
    x = ember.randn(4, 3)
    want = lin(x).detach().numpy()
    assert lin.compile() is None
    with ember.no_grad():
        np.testing.assert_allclose(lin(x).numpy(), want, rtol=1e-6, atol=1e-6)
    assert seen == [(4, 2), (4, 2)] and isinstance(lin, ember.nn.Linear)
    import copy
    twin = copy.deepcopy(lin)              # compiles again instead of copying native code
    assert twin._compiled_call_impl is not lin._compiled_call_impl
    with ember.no_grad():
        np.testing.assert_allclose(twin(x).numpy(), want, rtol=1e-6, atol=1e-6)


def test_save_and_load_quantized_tensors():
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    per_tensor = ember.quantize_per_tensor(ember.tensor(x), 0.05, 3, ember.quint8)
    per_channel = ember.quantize_per_channel(
        ember.tensor(x), ember.tensor([0.01, 0.02, 0.03], dtype=ember.float64),
        ember.tensor([0, 1, -1]), 0, ember.qint8)
    buffer = io.BytesIO()
    ember.save({"t": per_tensor, "c": per_channel}, buffer)
    buffer.seek(0)
    loaded = ember.load(buffer)
    t_ref = torch.quantize_per_tensor(torch.tensor(x), 0.05, 3, torch.quint8)
    c_ref = torch.quantize_per_channel(torch.tensor(x), torch.tensor([0.01, 0.02, 0.03],
                                       dtype=torch.float64), torch.tensor([0, 1, -1]), 0,
                                       torch.qint8)
    for got, want in ((loaded["t"], t_ref), (loaded["c"], c_ref)):
        assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1]
        np.testing.assert_array_equal(got.int_repr().numpy(), want.int_repr().numpy())
        np.testing.assert_array_equal(got.dequantize().numpy(), want.dequantize().numpy())
    assert loaded["c"].q_per_channel_axis() == 0 and loaded["t"].q_scale() == 0.05


def test_convert_fx_keeps_no_float_copies_of_quantized_layers():
    from ember.ao.quantization import get_default_qconfig_mapping
    from ember.ao.quantization.quantize_fx import convert_fx, prepare_fx
    model = ember.nn.Sequential(ember.nn.Linear(4, 4), ember.nn.ReLU(),
                                ember.nn.Linear(4, 2)).eval()
    x = ember.randn(3, 4)
    prepared = prepare_fx(model, get_default_qconfig_mapping("x86"), (x,))
    prepared(x)
    quantized = convert_fx(prepared)
    assert not any(key.endswith(".weight") for key in quantized.state_dict())
    np.testing.assert_allclose(quantized(x).numpy(), model(x).detach().numpy(), atol=0.05)


def test_export_module_imports_and_dim_hints():
    from ember.export import Dim, ExportedProgram, export
    ep = export(ember.nn.Linear(3, 2), (ember.randn(4, 3),),
                dynamic_shapes=({0: Dim("batch", min=1)},))
    assert isinstance(ep, ExportedProgram) and ember.export(ember.nn.ReLU(), (ember.ones(2),))
    assert ep.graph_signature.user_inputs == ("input",)
    assert sorted(ep.graph_signature.parameters) == ["bias", "weight"]
    assert "linear" in ep.graph_module.code


def test_split_module_keeps_original_node_names_on_request():
    gm = ember.fx.symbolic_trace(lambda x: (x.sin() + 1).cos())
    split = ember.fx.split_module(gm, gm, lambda n: 0, keep_original_node_name=True)
    assert [n.name for n in split.submod_0.graph.nodes if n.op == "call_method"] == \
        ["sin", "cos"]
    assert operator.add in [n.target for n in split.submod_0.graph.nodes]


def _grad_then_backward(lib):
    x = lib.tensor([0.5, -1.0, 2.0], requires_grad=True)
    h = x.exp()
    (dh,) = lib.autograd.grad((h * 2).sum(), h)
    h.sum().backward()            # h's own history was not consumed by autograd.grad
    return dh.numpy(), x.grad.numpy()


def test_autograd_grad_leaves_the_history_below_its_inputs_alone():
    for got, want in zip(_grad_then_backward(ember), _grad_then_backward(torch)):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def _stacked_checkpoints(lib, dropout: float):
    lib.manual_seed(0)
    pre = lib.nn.Sequential(lib.nn.Linear(4, 4), lib.nn.Dropout(dropout))
    blocks = [lib.nn.Sequential(lib.nn.Linear(4, 4), lib.nn.Tanh()) for _ in range(2)]
    rng = np.random.default_rng(0)
    with lib.no_grad():
        for module in [pre[0]] + [b[0] for b in blocks]:
            module.weight.copy_(lib.tensor(rng.standard_normal((4, 4)), dtype=lib.float32))
            module.bias.copy_(lib.tensor(rng.standard_normal(4), dtype=lib.float32))
    h = pre(lib.tensor(rng.standard_normal((3, 4)), dtype=lib.float32))
    for block in blocks:
        h = lib.utils.checkpoint.checkpoint(block, h, use_reentrant=False)
    h.sum().backward()
    return pre[0].weight.grad.numpy()


def test_stacked_non_reentrant_checkpoints_after_dropout_match_torch():
    """A BERT-style encoder with gradient checkpointing: each checkpointed layer's input
    has history (embedding dropout) that its recomputation must not run."""
    import ember.utils.checkpoint  # noqa: F401
    import torch.utils.checkpoint  # noqa: F401
    np.testing.assert_allclose(_stacked_checkpoints(ember, 0.0),
                               _stacked_checkpoints(torch, 0.0), rtol=1e-5, atol=1e-6)
    assert np.isfinite(_stacked_checkpoints(ember, 0.5)).all()


def _sdpa_flags(lib):
    from importlib import import_module
    attention = import_module(f"{lib.__name__}.nn.attention")
    cuda = lib.backends.cuda
    states = [(cuda.flash_sdp_enabled(), cuda.math_sdp_enabled())]
    with attention.sdpa_kernel(attention.SDPBackend.MATH):
        states.append((cuda.flash_sdp_enabled(), cuda.math_sdp_enabled()))
        q = lib.tensor(np.random.default_rng(0).standard_normal((1, 2, 3, 4)),
                       dtype=lib.float32)
        out = lib.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True)
    with cuda.sdp_kernel(enable_flash=False, enable_math=True, enable_mem_efficient=False):
        states.append((cuda.flash_sdp_enabled(), cuda.mem_efficient_sdp_enabled()))
    states.append((cuda.flash_sdp_enabled(), cuda.math_sdp_enabled()))
    return states, out.numpy()


def test_sdpa_kernel_selection_state_matches_torch():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)   # torch's sdp_kernel is deprecated
        (got, got_out), (want, want_out) = _sdpa_flags(ember), _sdpa_flags(torch)
    assert got == want
    np.testing.assert_allclose(got_out, want_out, rtol=1e-5, atol=1e-6)


def _traced_through_every_layer(lib):
    nn = lib.nn

    class Everything(lib.fx.Tracer):          # FLOP counters and quantizers trace so
        def is_leaf_module(self, m, qualname):
            return False
    lib.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4), nn.MaxPool2d(2),
                          nn.Flatten(), nn.LayerNorm(16), nn.Linear(16, 5)).eval()
    gm = lib.fx.GraphModule(model, Everything().trace(model))
    rng = np.random.default_rng(0)
    with lib.no_grad():
        for p in model.parameters():
            p.copy_(lib.tensor(rng.standard_normal(tuple(p.shape)), dtype=lib.float32))
    x = lib.tensor(rng.standard_normal((2, 3, 6, 6)), dtype=lib.float32)
    modules_called = sum(n.op == "call_module" for n in gm.graph.nodes)
    return gm(x).detach().numpy(), model(x).detach().numpy(), modules_called


def test_layers_trace_through_as_torch_layers_do():
    """A tracer that treats no module as a leaf runs each layer's forward on Proxies:
    ember's input checks stand aside, as torch's layers have none."""
    got, eager, calls = _traced_through_every_layer(ember)
    want, _, torch_calls = _traced_through_every_layer(torch)
    assert calls == torch_calls == 0
    np.testing.assert_allclose(got, eager, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    with pytest.raises(ember.EmberError, match="expected input with last dimension 16"):
        ember.nn.Linear(16, 5)(ember.ones(2, 3))       # eager still checks


def test_graph_drawer_answers_pydot_calls(tmp_path):
    from ember.fx.passes.graph_drawer import FxGraphDrawer
    dot = FxGraphDrawer(ember.fx.symbolic_trace(ember.nn.Linear(2, 2)), "lin").get_dot_graph()
    dot.write_raw(str(tmp_path / "g.dot"))
    text = (tmp_path / "g.dot").read_text()
    assert text == str(dot) and text.startswith('digraph "lin"')
    assert '"weight" -> "linear";' in text and '"linear" -> "output";' in text


@pytest.mark.parametrize("bag", [False, True])
def test_compiled_sparse_embedding_gives_sparse_gradient_as_eager(bag):
    """`Embedding(sparse=True)` / `EmbeddingBag(sparse=True)` under compile: the lookup
    breaks the graph and runs eagerly, so the weight's gradient is sparse COO with
    torch's values (a compiled graph would give a dense one)."""
    indices = np.array([[1, 2, 1], [4, 1, 0]])
    grads = []
    for lib, wrap in ((torch, lambda m: m), (ember, ember.compile)):
        lib.manual_seed(0)
        module = (lib.nn.EmbeddingBag(6, 3, mode="sum", sparse=True) if bag
                  else lib.nn.Embedding(6, 3, sparse=True))
        if lib is ember:
            module.weight.data = ember.tensor(weight)
        weight = module.weight.detach().numpy().copy()
        (wrap(module)(lib.tensor(indices)) ** 2).sum().backward()
        assert module.weight.grad.is_sparse
        grads.append(module.weight.grad.to_dense().numpy())
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-6)


def test_sparse_embedding_under_fullgraph_compile_is_refused_by_name():
    module = ember.nn.Embedding(6, 3, sparse=True)
    with pytest.raises(ember.TraceError if hasattr(ember, "TraceError") else Exception,
                       match=r"embedding\(sparse=True\)"):
        ember.compile(module, fullgraph=True)(ember.tensor([1, 2])).sum().backward()
    with ember.no_grad():                 # no gradient: nothing sparse, the graph compiles
        out = ember.compile(module, fullgraph=True)(ember.tensor([1, 2]))
    np.testing.assert_array_equal(out.numpy(), module.weight.detach().numpy()[[1, 2]])


@pytest.mark.parametrize("dims, fmt", [(5, "channels_last"), (4, "channels_last_3d"),
                                       (2, "channels_last")])
def test_memory_format_of_another_rank_raises_as_torch(dims, fmt):
    shape = (2, 3, 4, 5, 6)[:dims]
    calls = [lambda lib, x: x.contiguous(memory_format=getattr(lib, fmt)),
             lambda lib, x: x.to(memory_format=getattr(lib, fmt)),
             lambda lib, x: x.clone(memory_format=getattr(lib, fmt)),
             lambda lib, x: lib.empty_like(x, memory_format=getattr(lib, fmt)),
             lambda lib, x: lib.empty(shape, memory_format=getattr(lib, fmt))]
    for call in calls:
        with pytest.raises(RuntimeError) as expected:
            call(torch, torch.zeros(shape))
        with pytest.raises(RuntimeError) as actual:
            call(ember, ember.zeros(shape))
        assert str(actual.value) == str(expected.value)
    for lib in (torch, ember):
        assert not lib.zeros(shape).is_contiguous(memory_format=getattr(lib, fmt))


def test_module_to_channels_last_over_conv3d_raises_as_torch():
    """Module.to(memory_format=...) converts every 4-d and 5-d parameter, so a Conv3d's
    weight asked for channels_last (4-d only) raises, and channels_last_3d on a Conv2d."""
    for conv, fmt in (("Conv3d", "channels_last"), ("Conv2d", "channels_last_3d")):
        messages = []
        for lib in (torch, ember):
            model = lib.nn.Sequential(getattr(lib.nn, conv)(2, 3, 3), lib.nn.Linear(3, 2))
            with pytest.raises(RuntimeError) as error:
                model.to(memory_format=getattr(lib, fmt))
            messages.append(str(error.value))
        assert messages[0] == messages[1]
    model = ember.nn.Sequential(ember.nn.Conv2d(2, 3, 3), ember.nn.Linear(3, 2))
    model.to(memory_format=ember.channels_last)
    assert model[0].weight.is_contiguous(memory_format=ember.channels_last)
    assert model[1].weight.is_contiguous()


def test_tensor_split_takes_torchs_overload_keywords():
    """torchvision's MViT calls `torch.tensor_split(x, indices=[...], dim=...)`."""
    calls = [lambda lib, x: lib.tensor_split(x, indices=[1, 3], dim=1),
             lambda lib, x: x.tensor_split(sections=2, dim=1),
             lambda lib, x: lib.tensor_split(x, tensor_indices_or_sections=lib.tensor([2]),
                                             dim=1),
             lambda lib, x: lib.tensor_split(x, 3, 1)]
    data = np.arange(12.0).reshape(2, 6)
    for call in calls:
        expected = call(torch, torch.tensor(data))
        actual = call(ember, ember.tensor(data))
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected):
            np.testing.assert_array_equal(a.numpy(), e.numpy())
