"""3x3 stride-1 convs by Winograd F(4x4, 3x3) (llvm/winograd.py) against torch in float64.

Winograd's transforms cost precision: the bound here, 3e-5 of the result's largest
magnitude per element, is about 2x the worst error seen (unit-variance weights and
inputs, up to 512 input channels); the direct implicit GEMM stays within ~5e-6."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import ember
from llvm_isas import isa_params  # tests/codegen is on sys.path
from ember.codegen.llvm import winograd
from ember.codegen.llvm.implicit_conv import Epilogue, prepare_conv2d
from ember.codegen.llvm.target import Isa, host_isa

pytestmark = pytest.mark.skipif(host_isa() == Isa.PORTABLE,
                                reason="Winograd needs vector registers (AVX2 or AVX-512)")

BOUND = 3e-5


def _cl(a):
    """(N, C, H, W)-shaped, channels-last memory."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def _want(x, w, bias, padding, residual, relu):
    xt = torch.from_numpy(np.ascontiguousarray(x)).double()
    (top, bottom), (left, right) = padding
    xt = torch.nn.functional.pad(xt, (left, right, top, bottom))
    y = torch.nn.functional.conv2d(xt, torch.from_numpy(w).double(),
                                   torch.from_numpy(bias).double())
    if residual is not None:
        y = y + torch.from_numpy(np.ascontiguousarray(residual)).double()
    return (y.relu() if relu else y).numpy()


CASES = [   # x shape, C_out, padding: whole tiles, partial tiles, no / asymmetric padding
    ((2, 32, 8, 8), 32, ((1, 1), (1, 1))),
    ((1, 64, 9, 11), 96, ((1, 1), (1, 1))),           # partial tiles; a partial GEMM panel
    ((2, 48, 7, 13), 32, ((0, 0), (0, 0))),
    ((1, 32, 6, 7), 64, ((0, 1), (2, 0))),
    ((1, 512, 7, 7), 64, ((1, 1), (1, 1))),           # many channels: several K blocks
    ((1, 384, 6, 5), 384, ((1, 1), (1, 1))),          # U of 20 MiB: two parts of C_out
]


@pytest.mark.parametrize("epilogue", [Epilogue.NONE, Epilogue.RESIDUAL | Epilogue.RELU])
@pytest.mark.parametrize("case", CASES, ids=[str(c[0]) for c in CASES])
def test_winograd_matches_torch(case, epilogue, rng):
    x_shape, c_out, padding = case
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal((c_out, x_shape[1], 3, 3)).astype(np.float32)
    bias = rng.standard_normal(c_out).astype(np.float32)
    conv = prepare_conv2d(w, bias, (1, 1), padding, epilogue=epilogue)
    oh = x_shape[2] + sum(padding[0]) - 2
    ow = x_shape[3] + sum(padding[1]) - 2
    residual = _cl(rng.standard_normal((x_shape[0], c_out, oh, ow)).astype(np.float32)) \
        if Epilogue.RESIDUAL in epilogue else None
    out = _cl(np.full((x_shape[0], c_out, oh, ow), np.nan, np.float32))
    conv(_cl(x), out, residual)
    assert conv._winograd is not None                    # it ran by Winograd
    want = _want(x, w, bias, padding, residual, Epilogue.RELU in epilogue)
    assert np.abs(out - want).max() <= BOUND * np.abs(want).max()


def test_residual_in_the_output_buffer(rng):
    x = _cl(rng.standard_normal((1, 32, 9, 9)).astype(np.float32))
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    bias = np.zeros(32, np.float32)
    buf = _cl(rng.standard_normal((1, 32, 9, 9)).astype(np.float32))
    want = _want(x, w, bias, ((1, 1), (1, 1)), buf, False)
    prepare_conv2d(w, bias, (1, 1), (1, 1), epilogue=Epilogue.RESIDUAL)(x, buf, buf)
    assert np.abs(buf - want).max() <= BOUND * np.abs(want).max()


def test_only_channels_last_3x3_stride_1_convs_take_it(rng):
    """NCHW (eager's layout), strided, dilated and few-channel convs keep the direct
    implicit GEMM, bit for bit what they were."""
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    x = rng.standard_normal((1, 32, 8, 8)).astype(np.float32)
    conv = prepare_conv2d(w, None, (1, 1), (1, 1))
    conv(x, np.empty((1, 32, 8, 8), np.float32))
    assert conv._winograd is None
    for stride, dilation, c in (((2, 2), (1, 1), 32), ((1, 1), (2, 2), 32), ((1, 1), (1, 1), 16)):
        conv = prepare_conv2d(w[:, :c], None, stride, (1, 1), dilation)
        oh = (8 + 2 - dilation[0] * 2 - 1) // stride[0] + 1
        conv(_cl(x[:, :c]), _cl(np.empty((1, 32, oh, oh), np.float32)))
        assert conv._winograd is None


def test_turning_it_off_gives_the_direct_conv(rng, monkeypatch):
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    x = _cl(rng.standard_normal((1, 32, 8, 8)).astype(np.float32))
    on, off = (_cl(np.empty((1, 32, 8, 8), np.float32)) for _ in range(2))
    prepare_conv2d(w, None, (1, 1), (1, 1))(x, on)
    monkeypatch.setattr(winograd, "WINOGRAD", False)
    conv = prepare_conv2d(w, None, (1, 1), (1, 1))
    conv(x, off)
    assert conv._winograd is None and not np.array_equal(on, off)
    np.testing.assert_allclose(on, off, rtol=1e-4, atol=1e-4)


class _Block(ember.nn.Module):
    """conv-bn-relu, conv-bn + residual, relu: resnet's basic block."""

    def __init__(self, c):
        super().__init__()
        self.conv1, self.bn1 = ember.nn.Conv2d(c, c, 3, padding=1), ember.nn.BatchNorm2d(c)
        self.conv2, self.bn2 = ember.nn.Conv2d(c, c, 3, padding=1), ember.nn.BatchNorm2d(c)

    def forward(self, x):
        y = self.bn1(self.conv1(x)).relu()
        return (self.bn2(self.conv2(y)) + x).relu()


def _blocks():
    ember.manual_seed(4)
    model = ember.nn.Sequential(ember.nn.Conv2d(3, 32, 1), _Block(32), _Block(32)).eval()
    x = np.random.default_rng(0).standard_normal((3, 3, 13, 10)).astype(np.float32)
    return model, x


def _three_ways(model, x, path):
    """The Python loop (first call), the native entry (second) and the artifact."""
    compiled = ember.compile(model)
    with ember.no_grad():
        first = compiled(ember.tensor(x)).numpy()
        native = compiled(ember.tensor(x)).numpy()
    assert any(c["sig"] == "wino" for c in compiled.last[0].run.native.calls)
    ember.aot.compile_and_package(ember.export(model, (ember.tensor(x),)), path)
    art = ember.aot.load_package(path).lite(x)[0]
    assert np.array_equal(native, first) and np.array_equal(art, first)
    return first


_THREADS = """
import numpy as np
from test_winograd import _blocks, _three_ways
model, x = _blocks()
np.save({tmp!r} + "/out.npy", _three_ways(model, x, {tmp!r} + "/m.ember"))
print("ok")
"""


def test_python_loop_native_entry_and_artifact_agree_bit_for_bit(tmp_path):
    """In process (the Python loop, the native entry) and the artifact give the same
    bits, here and on 3 threads: a tile's result does not depend on how tiles are split."""
    model, x = _blocks()
    here = _three_ways(model, x, str(tmp_path / "here.ember"))
    with ember.no_grad():
        eager = model(ember.tensor(x)).numpy()
    np.testing.assert_allclose(here, eager, rtol=1e-4, atol=1e-4)
    env = dict(os.environ, EMBER_NUM_THREADS="3",
               PYTHONPATH=os.pathsep.join([os.path.dirname(__file__),
                                           os.path.dirname(os.path.dirname(ember.__file__))]))
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(
        _THREADS.format(tmp=str(tmp_path)))], capture_output=True, text=True, env=env,
        timeout=300)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), here)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_spread_as_in_the_direct_sum(bad, rng):
    """A chunk of tiles whose inputs hold a NaN or an infinity is summed directly:
    the value reaches only the outputs whose 3x3 windows read it, an infinity stays
    infinite (Winograd's transforms would spread it over whole tiles, as NaN)."""
    x = rng.standard_normal((1, 32, 12, 12)).astype(np.float32)
    w = np.abs(rng.standard_normal((32, 32, 3, 3))).astype(np.float32)
    bias = rng.standard_normal(32).astype(np.float32)
    x[0, :, 5, 6] = bad
    conv = prepare_conv2d(w, bias, (1, 1), (1, 1))
    out = _cl(np.empty((1, 32, 12, 12), np.float32))
    conv(_cl(x), out)
    assert conv._winograd is not None
    with np.errstate(invalid="ignore"):
        want = _want(x, w, bias, ((1, 1), (1, 1)), None, False)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(out), np.isinf(want))
    finite = np.isfinite(want)
    assert np.abs(out[finite] - want[finite]).max() <= BOUND * np.abs(want[finite]).max()


def test_non_finite_weights_keep_the_direct_conv(rng):
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    w[3, 4, 1, 1] = np.inf
    conv = prepare_conv2d(w, None, (1, 1), (1, 1))
    x = _cl(rng.standard_normal((1, 32, 8, 8)).astype(np.float32))
    out = _cl(np.empty((1, 32, 8, 8), np.float32))
    conv(x, out)
    assert conv._winograd is None
    assert np.isinf(out[0, 3]).sum() > 0 and np.isfinite(np.delete(out, 3, axis=1)).all()


def test_parts_of_the_output_channels_change_no_bits(rng, monkeypatch):
    x = _cl(rng.standard_normal((2, 384, 6, 9)).astype(np.float32))
    w = rng.standard_normal((384, 384, 3, 3)).astype(np.float32)
    assert winograd.k_parts(384, 384, winograd.wino_config(host_isa(), 384).nr) == 2
    outs = []
    for parts in (1, 2, 3):
        monkeypatch.setattr(winograd, "k_parts", lambda c_in, c_out, nr, parts=parts: parts)
        out = _cl(np.empty((2, 384, 6, 9), np.float32))
        prepare_conv2d(w, None, (1, 1), (1, 1))(x, out)
        outs.append(out)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


@pytest.mark.parametrize("isa", isa_params(Isa.AVX2))
def test_eight_lane_vectors(isa, rng):
    """AVX2: 8-float channel vectors (40 channels: five of them)."""
    x = rng.standard_normal((2, 40, 9, 11)).astype(np.float32)
    w = rng.standard_normal((48, 40, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(48).astype(np.float32)
    conv = prepare_conv2d(w, bias, (1, 1), (1, 1), epilogue=Epilogue.RELU, isa=isa)
    out = _cl(np.empty((2, 48, 9, 11), np.float32))
    conv(_cl(x), out)
    assert conv._winograd is not None
    want = _want(x, w, bias, ((1, 1), (1, 1)), None, True)
    assert np.abs(out - want).max() <= BOUND * np.abs(want).max()
