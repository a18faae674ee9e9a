"""The whole-plan native entry point (codegen/native_entry.py, compiler/native_program.py,
compiler/native_plan.py): in-process ember.compile plans switch to it from their second
call, and artifacts run through it; both equal the Python step loop bit for bit."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import ember


def _three_calls(model, *xs, options=None):
    compiled = ember.compile(model, options=options)
    with ember.no_grad():
        results = [compiled(*xs) for _ in range(3)]
    return compiled.last[0], [r.numpy() for r in results]


@pytest.mark.parametrize("which", ["mlp", "cnn", "transformer"])
def test_in_process_entry_equals_python_loop(which, rng):
    if which == "mlp":
        model = ember.models.mlp(in_features=24, hidden=(40, 16), num_classes=5, seed=2)
        x = rng.standard_normal((7, 24), dtype=np.float32)
    elif which == "cnn":
        model = ember.models.small_cnn(seed=1)
        x = rng.standard_normal((2, 1, 12, 12), dtype=np.float32)
    else:
        ember.manual_seed(3)
        model = ember.nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=48,
                                                 dropout=0.0, batch_first=True)
        x = rng.standard_normal((2, 5, 32), dtype=np.float32)
    plan, (first, second, third) = _three_calls(model.eval(), ember.tensor(x))
    assert plan.run.native is not None, plan.run.failed       # calls 2 and 3 were native
    np.testing.assert_array_equal(second, first)               # call 1 ran the Python loop
    np.testing.assert_array_equal(third, first)
    with ember.no_grad():
        eager = model(ember.tensor(x)).numpy()
    np.testing.assert_allclose(first, eager, rtol=1e-4, atol=1e-5)


class _TransposedLinear(ember.nn.Module):
    """A linear over a transposed activation (attention's (L, N, E) view of a batch-first
    input): the GEMM's operand is copied contiguous first (bias and relu: a kernel)."""

    def __init__(self, features):
        super().__init__()
        self.fc = ember.nn.Linear(features, features)

    def forward(self, x):
        return self.fc(x.transpose(0, 1)).relu()


def test_large_copies_split_across_threads(rng):
    """Copies of 2**18 elements and more run as chunked jobs (ember_copy_rows), equal to
    the Python loop bit for bit, in process and through an artifact."""
    import torch
    model = _TransposedLinear(64).eval()
    x = rng.standard_normal((64, 64, 64), dtype=np.float32)
    plan, (first, second, third) = _three_calls(model, ember.tensor(x))
    native = plan.run.native
    assert native is not None, plan.run.failed
    split = [c for c in native.calls if c["fn"] == "ember_copy_rows"]
    assert len(split) == 1 and split[0]["parallel"] and split[0]["extent"] == 64
    np.testing.assert_array_equal(second, first)
    np.testing.assert_array_equal(third, first)
    linear = torch.nn.Linear(64, 64)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(model.fc.weight.detach().numpy()))
        linear.bias.copy_(torch.from_numpy(model.fc.bias.detach().numpy()))
        want = linear(torch.from_numpy(x).transpose(0, 1)).relu().numpy()
    np.testing.assert_allclose(first, want, rtol=1e-5, atol=1e-5)


class _OneChannel(ember.nn.Module):
    """conv2d over one input channel (the native entry's conv_c1), with a residual."""

    def __init__(self, kernel, padding, c_out):
        super().__init__()
        self.conv = ember.nn.Conv2d(1, c_out, kernel, padding=padding)

    def forward(self, x):
        y = self.conv(x)
        return (y + x).relu() if y.shape == x.shape else y.relu()


@pytest.mark.parametrize("kernel,padding,c_out", [(3, 1, 20), (5, 2, 1), ((2, 4), 0, 3)])
def test_one_channel_convs_equal_python_loop(kernel, padding, c_out, rng):
    """3x3 and 5x5 run unrolled, other kernels in loops; a row of 21 outputs ends in a
    masked vector; the 5x5 conv with one output channel adds its input (residual)."""
    ember.manual_seed(4)
    model = _OneChannel(kernel, padding, c_out).eval()
    x = rng.standard_normal((2, 1, 7, 21), dtype=np.float32)
    plan, (first, second, third) = _three_calls(model, ember.tensor(x))
    assert plan.run.native is not None, plan.run.failed
    np.testing.assert_array_equal(second, first)
    np.testing.assert_array_equal(third, first)
    with ember.no_grad():
        eager = model(ember.tensor(x)).numpy()
    np.testing.assert_allclose(first, eager, rtol=1e-4, atol=1e-5)


class _OneChannelThenConv(ember.nn.Module):
    """A one-channel conv feeding a second conv: the layout pass makes the first conv's
    output channels-last (its input's strides cannot say so), and conv_c1 writes it
    a pixel's channels per vector."""

    def __init__(self, kernel, padding, c_out):
        super().__init__()
        self.conv1 = ember.nn.Conv2d(1, c_out, kernel, padding=padding)
        self.conv2 = ember.nn.Conv2d(c_out, 8, 3, padding=1)

    def forward(self, x):
        y = ember.nn.functional.max_pool2d(self.conv1(x).relu(), 2)
        return self.conv2(y).relu().mean((2, 3))


@pytest.mark.parametrize("kernel,padding,c_out", [(3, 1, 16), (3, 1, 20), (5, 2, 40),
                                                  ((2, 4), 0, 3)])
def test_one_channel_convs_into_channels_last_equal_python_loop(kernel, padding, c_out,
                                                                rng, tmp_path):
    """3x3 and 5x5 unrolled, other kernels in loops; 20, 40 and 3 channels end in a
    masked vector; the same bits in process (first call: the Python loop's implicit GEMM)
    and through an artifact."""
    ember.manual_seed(5)
    model = _OneChannelThenConv(kernel, padding, c_out).eval()
    x = rng.standard_normal((3, 1, 10, 19), dtype=np.float32)
    plan, (first, second, third) = _three_calls(model, ember.tensor(x))
    assert plan.run.native is not None, plan.run.failed
    np.testing.assert_array_equal(second, first)
    np.testing.assert_array_equal(third, first)
    path = str(tmp_path / "m.ember")
    ember.aot.compile_and_package(ember.export(model, (ember.tensor(x),)), path)
    np.testing.assert_array_equal(ember.aot.load_package(path).lite(x)[0], first)
    with ember.no_grad():
        eager = model(ember.tensor(x)).numpy()
    np.testing.assert_allclose(first, eager, rtol=1e-4, atol=1e-5)


def test_conv_with_all_of_k_in_one_block_equals_python_loop(rng, tmp_path):
    """A 3x3 128 -> 128 conv (K = 1152, one K block: implicit_conv.k_block) and its
    relu: the same K blocks, so the same bits, in both paths and the artifact."""
    ember.manual_seed(6)
    conv = ember.nn.Conv2d(128, 128, 3, padding=1).eval()
    model = ember.nn.Sequential(conv, ember.nn.ReLU(), ember.nn.Conv2d(128, 4, 1)).eval()
    x = rng.standard_normal((2, 128, 5, 5), dtype=np.float32)
    plan, (first, second, third) = _three_calls(model, ember.tensor(x))
    assert plan.run.native is not None, plan.run.failed
    np.testing.assert_array_equal(second, first)
    np.testing.assert_array_equal(third, first)
    path = str(tmp_path / "m.ember")
    ember.aot.compile_and_package(ember.export(model, (ember.tensor(x),)), path)
    np.testing.assert_array_equal(ember.aot.load_package(path).lite(x)[0], first)
    with ember.no_grad():
        eager = model(ember.tensor(x)).numpy()
    np.testing.assert_allclose(first, eager, rtol=1e-4, atol=1e-4)


def test_results_are_fresh_and_structured(rng):
    def f(a, b):
        h = a @ b
        return {"h": h.relu(), "pair": (h + 1, a.t())}
    a = ember.tensor(rng.standard_normal((4, 6), dtype=np.float32))
    b = ember.tensor(rng.standard_normal((6, 3), dtype=np.float32))
    compiled = ember.compile(f)
    outs = [compiled(a, b) for _ in range(3)]
    assert compiled.last[0].run.native is not None
    for out in outs[1:]:
        np.testing.assert_array_equal(out["h"].numpy(), outs[0]["h"].numpy())
        for got, want in zip(out["pair"], outs[0]["pair"]):
            np.testing.assert_array_equal(got.numpy(), want.numpy())
    outs[1]["h"].numpy()[...] = 7                # a caller's result is its own array
    np.testing.assert_array_equal(outs[2]["h"].numpy(), outs[0]["h"].numpy())


def test_plans_with_python_steps_keep_the_loop(rng):
    x = ember.tensor(rng.standard_normal((5, 4), dtype=np.float32))
    compiled = ember.compile(lambda t: t.sort(dim=-1).values * 2)
    outs = [compiled(x).numpy() for _ in range(2)]
    run = compiled.last[0].run
    assert run.native is None and "sort" in run.failed
    np.testing.assert_array_equal(outs[1], outs[0])


def test_native_entry_can_be_turned_off(rng):
    x = ember.tensor(rng.standard_normal((3, 4), dtype=np.float32))
    compiled = ember.compile(lambda t: (t * 2).exp(), options={"native_entry": False})
    compiled(x)
    compiled(x)
    assert not hasattr(compiled.last[0].run, "native")


_THREADS = """
import numpy as np, ember
rng = np.random.default_rng(0)
ember.manual_seed(1)
layer = ember.nn.TransformerEncoderLayer(d_model=32, nhead=8, dim_feedforward=40,
                                         dropout=0.0, batch_first=True).eval()
mlp = ember.models.mlp(in_features=16, hidden=(64,), num_classes=70, seed=1).eval()
for i, (model, x) in enumerate([(layer, rng.standard_normal((2, 9, 32), dtype=np.float32)),
                                (mlp, rng.standard_normal((3, 16), dtype=np.float32))]):
    x = ember.tensor(x)
    path = {tmp!r} + f"/m{{i}}.ember"
    ember.aot.compile_and_package(ember.export(model, (x,)), path)
    compiled = ember.compile(model)
    with ember.no_grad():
        calls = [compiled(x).numpy() for _ in range(2)]
    got = ember.aot.load_package(path)(x).numpy()
    assert np.array_equal(got, calls[0]) and np.array_equal(calls[1], calls[0]), i
print("ok")
"""


@pytest.mark.parametrize("threads", ["1", "3"])
def test_thread_counts_take_the_same_splits(threads, tmp_path):
    """Rows or columns, batch or per-matrix GEMMs: the entry decides by the thread count
    at run time, as the Python drivers do (m < n here; 8 heads over 3 threads)."""
    env = dict(os.environ, EMBER_NUM_THREADS=threads)
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(
        _THREADS.format(tmp=str(tmp_path)))], capture_output=True, text=True, env=env,
        cwd=os.path.dirname(os.path.dirname(ember.__file__)), timeout=300)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]


def test_embedding_indices_are_checked_natively(tmp_path):
    model = ember.models.transformer_classifier(vocab_size=30, d_model=16, nhead=2,
                                                num_layers=1).eval()
    tokens = ember.randint(0, 30, (2, 5))
    compiled = ember.compile(model)
    with ember.no_grad():
        first, second = compiled(tokens).numpy(), compiled(tokens).numpy()
        assert compiled.last[0].run.native is not None
        np.testing.assert_array_equal(second, first)
        for bad in (30, -1):                  # as eager (and torch): 0 <= index < rows
            with pytest.raises(IndexError, match="index out of range in self"):
                compiled(ember.full((2, 5), bad, dtype=ember.int64))
    path = tmp_path / "text.ember"
    ember.aot.compile_and_package(ember.export(model, (tokens,)), path)
    with pytest.raises(IndexError, match="embedding"):
        ember.aot.load_package(path)(np.full((2, 5), -1, np.int64))


def test_a_forked_child_runs_native_plans(rng):
    """The pool's threads do not survive fork: the child runs serially, not hanging."""
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    model = ember.models.mlp(in_features=16, hidden=(300,), num_classes=4, seed=0).eval()
    x = ember.tensor(rng.standard_normal((64, 16), dtype=np.float32))
    compiled = ember.compile(model)
    with ember.no_grad():
        want = [compiled(x).numpy() for _ in range(2)][1]
    assert compiled.last[0].run.native is not None
    pid = os.fork()
    if pid == 0:                       # the child: exit status says whether it matched
        ok = False
        try:
            with ember.no_grad():
                ok = np.array_equal(compiled(x).numpy(), want)
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
