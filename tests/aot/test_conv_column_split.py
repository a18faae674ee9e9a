"""A conv with few output rows run panel by panel (llvm/implicit_conv.py's conv_cols,
items of (NR-wide panel, block of rows) split across threads; columns_first): the
native program picks it and its K blocks as PreparedConv does, so the same bits as
ember.compile's first call (the Python loop) on any thread count, in process and
through an artifact; torch is the oracle."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import ember


class _Block(ember.nn.Module):
    """resnet's layer-4 shape in small: 3x3 convs over a 4x5 map (M = 2 x 20 rows), the
    second with K = 9 x 200 (all of it in one block panel by panel) and a residual; 200
    output channels are three full 64-wide panels and a partial one."""

    def __init__(self):
        super().__init__()
        self.conv1 = ember.nn.Conv2d(64, 200, 3, padding=1)
        self.conv2 = ember.nn.Conv2d(200, 200, 3, padding=1)

    def forward(self, x):
        y = self.conv1(x).relu()
        return (self.conv2(y) + y).relu()


def _model_and_input(rng):
    ember.manual_seed(5)
    return _Block().eval(), rng.standard_normal((2, 64, 4, 5), dtype=np.float32)


def _torch_result(model, x):
    import torch
    convs = []
    for e in (model.conv1, model.conv2):
        t = torch.nn.Conv2d(e.in_channels, e.out_channels, 3, padding=1)
        with torch.no_grad():
            t.weight.copy_(torch.from_numpy(e.weight.detach().numpy()))
            t.bias.copy_(torch.from_numpy(e.bias.detach().numpy()))
        convs.append(t)
    with torch.no_grad():
        y = convs[0](torch.from_numpy(x)).relu()
        return (convs[1](y) + y).relu().numpy()


def test_column_split_in_process_equals_python_loop(rng):
    model, x = _model_and_input(rng)
    compiled = ember.compile(model)
    with ember.no_grad():
        first, second, third = (compiled(ember.tensor(x)).numpy() for _ in range(3))
    native = compiled.last[0].run.native
    assert native is not None, compiled.last[0].run.failed
    convs = [c for c in native.calls if c["sig"] in ("conv", "conv_cols")]
    # the first conv's weights (576 x 256 floats) fit in L2: by rows; the second's
    # (1800 x 256) do not: M = 40 in 4 panels x 4 blocks of 12, 12, 12 and 4 rows
    assert [c["sig"] for c in convs] == ["conv", "conv_cols"], convs
    assert convs[1]["extent"] == 16 and convs[1]["args"][-2:] == [4, 12], convs
    np.testing.assert_array_equal(second, first)
    np.testing.assert_array_equal(third, first)
    np.testing.assert_allclose(first, _torch_result(model, x), rtol=1e-4, atol=1e-4)


_THREADS = """
import numpy as np, ember
from test_conv_column_split import _Block, _model_and_input
model, x = _model_and_input(np.random.default_rng(0))
compiled = ember.compile(model)
with ember.no_grad():
    first = compiled(ember.tensor(x)).numpy()          # the Python loop
    native = compiled(ember.tensor(x)).numpy()
path = {tmp!r} + "/m.ember"
ember.aot.compile_and_package(ember.export(model, (ember.tensor(x),)), path)
art = ember.aot.load_package(path).lite(x)[0]
assert np.array_equal(native, first) and np.array_equal(art, first)
np.save({tmp!r} + "/out.npy", art)
print("ok")
"""


@pytest.mark.parametrize("threads", ["1", "2", "3"])
def test_thread_counts_give_the_same_bits(threads, tmp_path):
    """Threads take (panel, rows) items; the last panel is partial (200 channels)."""
    env = dict(os.environ, EMBER_NUM_THREADS=threads,
               PYTHONPATH=os.pathsep.join([os.path.dirname(__file__),
                                           os.path.dirname(os.path.dirname(ember.__file__))]))
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(
        _THREADS.format(tmp=str(tmp_path)))], capture_output=True, text=True, env=env,
        timeout=300)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]
    model, x = _model_and_input(np.random.default_rng(0))
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), _torch_result(model, x),
                               rtol=1e-4, atol=1e-4)
