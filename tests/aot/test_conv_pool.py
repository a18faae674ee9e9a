"""A max pool of a conv's output, run inside the conv by the native program
(compiler/native_program.py: _conv_pool; llvm/implicit_conv.py: conv_pool_rows): each
thread computes the conv rows its pooled rows need into a ring and pools them there.
The same bits as the conv and pool steps run apart (the Python loop of ember.compile's
first call, or the native program with the fusion off), in process and through an
artifact, on 1 and 3 threads; torch is the oracle."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import ember
from ember.compiler import native_program


class _ConvPool(ember.nn.Module):
    """conv -> (relu) -> max_pool2d -> conv: the pool's result stays inside the plan."""

    def __init__(self, c_in, c_out, kernel, stride, padding, pool, relu=True):
        super().__init__()
        self.conv = ember.nn.Conv2d(c_in, c_out, kernel, stride, padding)
        self.pool = ember.nn.MaxPool2d(*pool)
        self.after = ember.nn.Conv2d(c_out, 4, 1)
        self.relu = relu

    def forward(self, x):
        y = self.conv(x)
        return self.after(self.pool(y.relu() if self.relu else y))


def _torch_twin(model):
    import torch
    conv, after = model.conv, model.after
    pool = model.pool
    t_conv = torch.nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                             conv.stride, conv.padding)
    t_after = torch.nn.Conv2d(after.in_channels, after.out_channels, 1)
    for t, e in ((t_conv, conv), (t_after, after)):
        with torch.no_grad():
            t.weight.copy_(torch.from_numpy(e.weight.detach().numpy()))
            t.bias.copy_(torch.from_numpy(e.bias.detach().numpy()))
    t_pool = torch.nn.MaxPool2d(pool.kernel_size, pool.stride, pool.padding,
                                ceil_mode=pool.ceil_mode)
    return lambda x: t_after(t_pool(t_conv(x).relu() if model.relu else t_conv(x)))


CASES = [  # c_in, c_out, kernel, stride, padding, (pool k, s, p[, dilation, ...]), shape
    (3, 64, 7, 2, 3, (3, 2, 1), (2, 3, 30, 26)),           # resnet's stem, small
    (8, 32, 3, 1, 1, (2, 2), (3, 8, 9, 11)),                # 2x2 pool, odd sizes
    (8, 16, 3, 1, 1, (3, 1, 1), (1, 8, 7, 5)),              # stride-1 pool: rows overlap
    (4, 48, 5, 1, 2, (3, 2, 0, 1, False, True), (2, 4, 12, 13)),   # ceil_mode
    # 16 channels read in place (no padded copy): the pool's result takes the conv
    # input's memory, which the conv still reads while pooling, so the steps stay apart
    (16, 32, 3, 1, 1, (2, 2), (3, 16, 9, 11)),
]
FUSED = [1, 1, 1, 1, 0]


def _three_calls(model, x):
    compiled = ember.compile(model)
    with ember.no_grad():
        results = [compiled(x).numpy() for _ in range(3)]
    return compiled.last[0].run, results


@pytest.mark.parametrize("case", range(len(CASES)))
def test_pool_in_conv_equals_separate_steps(case, rng, tmp_path):
    import torch
    c_in, c_out, kernel, stride, padding, pool, shape = CASES[case]
    ember.manual_seed(case)
    model = _ConvPool(c_in, c_out, kernel, stride, padding, pool, relu=case != 2).eval()
    x = rng.standard_normal(shape, dtype=np.float32)
    run, (first, second, third) = _three_calls(model, ember.tensor(x))
    assert run.native is not None, run.failed
    assert [c["sig"] for c in run.native.calls].count("conv_pool") == FUSED[case]
    np.testing.assert_array_equal(second, first)        # call 1: the Python loop, apart
    np.testing.assert_array_equal(third, first)
    path = str(tmp_path / "m.ember")
    ember.aot.compile_and_package(ember.export(model, (ember.tensor(x),)), path)
    np.testing.assert_array_equal(ember.aot.load_package(path).lite(x)[0], first)
    with torch.no_grad():
        want = _torch_twin(model)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(first, want, rtol=1e-4, atol=1e-4)


def test_nan_and_signed_zeros_pool_as_apart(monkeypatch, tmp_path):
    """NaN wins a window, +0 beats -0, windows of -inf: as the separate max pool."""
    ember.manual_seed(7)
    model = _ConvPool(2, 16, 1, 1, 0, (3, 2, 1), relu=False).eval()
    with ember.no_grad():
        model.conv.weight.copy_(ember.tensor(np.eye(16, 2, dtype=np.float32)[:, :, None, None]))
        model.conv.bias.zero_()
    x = np.zeros((1, 2, 6, 6), np.float32)
    x[0, 0, 1, 1], x[0, 0, 3] = np.nan, -0.0
    x[0, 1, :3, :3] = -np.inf
    x[0, 1, 4, 4] = 5.0
    paths = {}
    for fused in (False, True):
        monkeypatch.setattr(native_program, "POOL_IN_CONV", fused)
        paths[fused] = str(tmp_path / f"{fused}.ember")
        ember.aot.compile_and_package(ember.export(model, (ember.tensor(x),)), paths[fused])
    got, apart = (ember.aot.load_package(paths[f]).lite(x)[0] for f in (True, False))
    run, _ = _three_calls(model, ember.tensor(x))     # fused (the flag is back on)
    assert "conv_pool" in [c["sig"] for c in run.native.calls]
    assert np.isnan(got).any()
    np.testing.assert_array_equal(got, apart)       # NaNs in the same places
    assert np.array_equal(np.signbit(got), np.signbit(apart))


def test_pool_not_fused_when_the_conv_output_is_read_again(rng):
    """The conv's output is also a result: it must be stored, so the steps stay apart."""
    class Both(ember.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = ember.nn.Conv2d(3, 16, 3, padding=1)

        def forward(self, x):
            y = self.conv(x).relu()
            return y, ember.nn.functional.max_pool2d(y, 2)
    model = Both().eval()
    x = ember.tensor(rng.standard_normal((2, 3, 8, 8), dtype=np.float32))
    compiled = ember.compile(model)
    with ember.no_grad():
        first, second = compiled(x), compiled(x)
    assert compiled.last[0].run.native is not None
    assert "conv_pool" not in [c["sig"] for c in compiled.last[0].run.native.calls]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


_THREADS = """
import numpy as np, ember
from ember.compiler import native_program
import test_conv_pool as t
rng = np.random.default_rng(0)
for case in (0, 1):
    c_in, c_out, kernel, stride, padding, pool, shape = t.CASES[case]
    ember.manual_seed(case)
    model = t._ConvPool(c_in, c_out, kernel, stride, padding, pool).eval()
    x = rng.standard_normal((5,) + shape[1:], dtype=np.float32)
    outs = {{}}
    for fused in (True, False):
        native_program.POOL_IN_CONV = fused
        path = {tmp!r} + f"/m{{case}}{{fused}}.ember"
        ember.aot.compile_and_package(ember.export(model, (ember.tensor(x),)), path)
        outs[fused] = ember.aot.load_package(path).lite(x)[0]
    assert np.array_equal(outs[True], outs[False]), case
print("ok")
"""


@pytest.mark.parametrize("threads", ["1", "3"])
def test_thread_counts_give_the_same_bits(threads, tmp_path):
    """Chunks of pooled rows start anywhere: a chunk recomputes the conv row it shares
    with the chunk before, with the same sums."""
    env = dict(os.environ, EMBER_NUM_THREADS=threads,
               PYTHONPATH=os.pathsep.join([os.path.dirname(__file__),
                                           os.path.dirname(os.path.dirname(ember.__file__))]))
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(
        _THREADS.format(tmp=str(tmp_path)))], capture_output=True, text=True, env=env,
        timeout=300)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]
