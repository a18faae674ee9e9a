"""A conv's result written over its residual (passes/memory.py's `residual_in_place`,
which the CPU drivers set where the conv sums all of K before its epilogue; the native
program then reads the residual where it stores, compiler/native_program.py). The same
bits as the residual read from a buffer of its own (ember.compile's first call, the
Python loop, copies an aliased residual first), in process and through an artifact;
torch is the oracle."""
from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.ir.fused import is_fused


class _Block(ember.nn.Module):
    """A conv, then resnet's basic block over its result (the identity is planned: not
    an input), then a 1x1 conv (the block's result is not an output either)."""

    def __init__(self, channels):
        super().__init__()
        self.conv0, self.conv1, self.conv2 = (
            ember.nn.Conv2d(channels, channels, 3, padding=1) for _ in range(3))
        self.head = ember.nn.Conv2d(channels, 4, 1)

    def forward(self, x):
        h = self.conv0(x).relu()
        y = self.conv1(h).relu()
        return self.head((self.conv2(y) + h).relu())


def _residual_steps(graph) -> list[tuple]:
    """(output slot, residual slot) of each conv epilogue group with a residual."""
    found = []
    for node in graph.nodes:
        if node.op != "call_function" or not is_fused(node.target) or \
                node.target.kind != "epilogue" or len(node.args) < 4:
            continue
        residual = node.args[3]
        if "buffer" in node.meta and "buffer" in residual.meta:
            found.append((node.meta["buffer"][0], residual.meta["buffer"][0]))
    return found


@pytest.mark.parametrize("channels,in_place", [(16, True), (256, True), (320, False)])
def test_residual_in_place_equals_its_own_buffer(channels, in_place, rng, tmp_path):
    """84 output rows: the conv runs panel by panel (implicit_conv.columns_first), K in
    blocks of up to 2560. 16 channels: K = 144, one block, in place; 256: K = 2304, one
    block, in place (resnet18's layer 3); 320: K = 2880 in blocks of 2560 and 320 (the
    partial sums would overwrite the residual), a buffer of its own."""
    import torch
    ember.manual_seed(channels)
    model = _Block(channels).eval()
    x = rng.standard_normal((2, channels, 6, 7), dtype=np.float32)
    compiled = ember.compile(model)
    with ember.no_grad():
        first, second, third = (compiled(ember.tensor(x)).numpy() for _ in range(3))
    assert compiled.last[0].run.native is not None, compiled.last[0].run.failed
    steps = _residual_steps(compiled.graph)
    assert steps and all((out == res) is in_place for out, res in steps), steps
    np.testing.assert_array_equal(second, first)       # call 1: the Python loop
    np.testing.assert_array_equal(third, first)
    path = str(tmp_path / "m.ember")
    ember.aot.compile_and_package(ember.export(model, (ember.tensor(x),)), path)
    np.testing.assert_array_equal(ember.aot.load_package(path).lite(x)[0], first)
    convs = [torch.nn.Conv2d(channels, channels, 3, padding=1) for _ in range(3)]
    for t, e in zip(convs, (model.conv0, model.conv1, model.conv2)):
        with torch.no_grad():
            t.weight.copy_(torch.from_numpy(e.weight.detach().numpy()))
            t.bias.copy_(torch.from_numpy(e.bias.detach().numpy()))
    head = torch.nn.Conv2d(channels, 4, 1)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(model.head.weight.detach().numpy()))
        head.bias.copy_(torch.from_numpy(model.head.bias.detach().numpy()))
        h = convs[0](torch.from_numpy(x)).relu()
        want = head((convs[2](convs[1](h).relu()) + h).relu()).numpy()
    np.testing.assert_allclose(first, want, rtol=1e-4, atol=1e-4)


def test_option_off_keeps_buffers_apart(rng):
    ember.manual_seed(1)
    model = _Block(16).eval()
    x = ember.tensor(rng.standard_normal((1, 16, 5, 5), dtype=np.float32))
    compiled = ember.compile(model, options={"residual_in_place": None})
    with ember.no_grad():
        compiled(x)
    steps = _residual_steps(compiled.graph)
    assert steps and all(out != res for out, res in steps)


def test_python_loop_reads_the_residual_in_place(rng):
    """Plans that keep the Python step loop (native entry off) run PreparedConv with
    the residual in the output's buffer: read as is, the same bits as the native run."""
    ember.manual_seed(3)
    model = _Block(16).eval()
    x = ember.tensor(rng.standard_normal((2, 16, 6, 7), dtype=np.float32))
    looped = ember.compile(model, options={"native_entry": False})
    native = ember.compile(model)
    with ember.no_grad():
        got = [looped(x).numpy() for _ in range(2)]
        want = [native(x).numpy() for _ in range(2)][1]
    assert all(out == res for out, res in _residual_steps(looped.graph))
    np.testing.assert_array_equal(got[0], want)
    np.testing.assert_array_equal(got[1], want)
