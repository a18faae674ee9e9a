"""The int8 GEMM reading a convolution's padding itself (lite_int8.conv_gather_unpadded,
qgemm.py's border tiles): no padded copy of the input, the same integers as the padded
copy and the NumPy reference, bit for bit, on every geometry the border tiles meet
(padding wider than the window, images smaller than it, stride, row dilation, channel
counts off 4, the stem's 3 channels, every tile width, the fused residual add), and
within a step of torch.ao's quantized conv."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from ember.codegen import quantized as CQ
from ember.codegen.llvm import qgemm as Q
from ember.ir.ops import OPS
from ember.ir.quantized import QuantizedArray
from ember.runtime import lite_int8 as lite

pytestmark = [pytest.mark.filterwarnings("ignore"),
              pytest.mark.skipif(not Q.has_vnni(), reason="this CPU has no AVX-512 VNNI")]
torch.backends.quantized.engine = "x86"


@pytest.fixture
def in_kernel(monkeypatch):
    """Every padded conv with a run layout pads in the kernel (whatever its share of
    border pixels and its run's length); counts the gathers made so."""
    made = []
    real = lite.conv_gather_unpadded
    monkeypatch.setattr(lite, "PAD_IN_KERNEL_MAX_BORDER", 1.0)
    monkeypatch.setattr(lite, "PAD_IN_KERNEL_MIN_RUN", 4)
    monkeypatch.setattr(lite, "conv_gather_unpadded",
                        lambda *args: made.append(args) or real(*args))
    return made


def _activation(rng, shape, zero_point, channels_last):
    x = ember.quantize_per_tensor(ember.tensor(rng.standard_normal(shape).astype(np.float32)),
                                  0.02, zero_point, ember.quint8)._qarray()
    if channels_last:      # a previous conv's result: NHWC memory seen as NCHW
        nhwc = np.ascontiguousarray(x.int_repr.transpose(0, 2, 3, 1))
        x = QuantizedArray(nhwc.transpose(0, 3, 1, 2), x.dtype, x.scale, x.zero_point)
    return x


def _weight(rng, oc, c, kh, kw):
    return ember.quantize_per_channel(
        ember.tensor(rng.standard_normal((oc, c, kh, kw)).astype(np.float32)),
        ember.tensor(rng.uniform(0.005, 0.02, oc).astype(np.float32)),
        ember.tensor(np.zeros(oc, np.int64)), 0, ember.qint8)._qarray()


GEOMETRIES = [  # shape, oc, kernel, stride, padding, dilation, channels-last input
    ((2, 64, 9, 9), 64, (3, 3), (1, 1), (1, 1), (1, 1), True),
    ((2, 64, 9, 9), 128, (3, 3), (2, 2), (1, 1), (1, 1), True),
    ((1, 3, 30, 30), 64, (7, 7), (2, 2), (3, 3), (1, 1), False),      # the stem
    ((2, 3, 9, 9), 8, (3, 3), (1, 1), (1, 1), (1, 1), False),
    ((1, 4, 12, 10), 5, (3, 3), (2, 2), (1, 0), (1, 1), True),
    ((3, 16, 7, 9), 32, (3, 3), (1, 1), (1, 1), (1, 1), True),
    ((1, 8, 10, 10), 24, (3, 3), (2, 1), (0, 1), (1, 1), True),
    ((2, 12, 5, 6), 100, (5, 5), (1, 1), (3, 2), (2, 1), True),      # padding > window
    ((1, 32, 2, 3), 16, (3, 3), (1, 1), (2, 2), (1, 1), True),       # image < window
    ((2, 128, 7, 7), 200, (3, 3), (1, 1), (1, 1), (1, 1), True),
    ((1, 20, 9, 8), 40, (5, 3), (2, 2), (2, 1), (2, 1), True),       # row dilation
    ((2, 7, 11, 13), 70, (4, 4), (3, 2), (1, 2), (1, 1), True),      # channels off 4
]


@pytest.mark.parametrize("shape, oc, kernel, stride, padding, dilation, channels_last",
                         GEOMETRIES)
@pytest.mark.parametrize("zero_point", [0, 100, 255])
def test_padding_in_the_kernel_equals_the_reference(rng, in_kernel, shape, oc, kernel, stride,
                                                    padding, dilation, channels_last,
                                                    zero_point):
    x = _activation(rng, shape, zero_point, channels_last)
    args = [x, _weight(rng, oc, shape[1], *kernel), rng.standard_normal(oc).astype(np.float32),
            list(stride), list(padding), list(dilation), 1, 0.05, 90, True]
    got = CQ.conv2d(*args, cache={}, cfg=Q.active_config())
    assert len(in_kernel) == 1
    np.testing.assert_array_equal(got.int_repr, OPS["quantized_conv2d"].reference(*args).int_repr)


def test_the_fused_residual_add_pads_in_the_kernel_too(rng, in_kernel):
    x = _activation(rng, (2, 24, 8, 8), 70, True)
    other = _activation(rng, (2, 40, 8, 8), 110, True)
    args = [x, _weight(rng, 40, 24, 3, 3), None, [1, 1], [1, 1], [1, 1], 1, 0.11, 70, False]
    got = CQ.conv2d(*args, cache={}, cfg=Q.active_config(), residual=(other, 0.13, 50, True))
    assert len(in_kernel) == 1
    want = OPS["quantized_conv2d_add"].reference(*args, other, 0.13, 50, True)
    np.testing.assert_array_equal(got.int_repr, want.int_repr)


def test_the_converted_model_reads_its_inputs_in_place_and_matches_torch_ao(rng):
    """A resnet-like block on 128x128 images (its 3x3 convs under the border share): they
    pad in the kernel, no padded copy of their inputs is made, the result is the same
    integers as with the host's padded copies, and torch.ao's within a few steps."""
    from quant_twins import converted_twins, share_random_weights

    def block(lib):
        nn = lib.nn
        return nn.Sequential(nn.Conv2d(3, 32, 7, 2, 3), nn.ReLU(), nn.Conv2d(32, 32, 3, 1, 1),
                             nn.ReLU(), nn.Conv2d(32, 32, 3, 2, 1)).eval()
    t_model, e_model = block(torch), block(ember)
    share_random_weights(t_model, e_model, rng)
    calib = [rng.standard_normal((2, 3, 128, 128)).astype(np.float32) for _ in range(2)]
    t_q, e_q = converted_twins(t_model, e_model, calib)
    x = rng.standard_normal((2, 3, 128, 128)).astype(np.float32)
    with ember.no_grad():
        padded_copies = []
        real = lite.nhwc_input
        with pytest.MonkeyPatch.context() as m:
            m.setattr(lite, "nhwc_input",
                      lambda *a, **k: padded_copies.append(a[2]) or real(*a, **k))
            got = [e_q(ember.tensor(x)).numpy() for _ in range(3)]   # full path, runners
        # the stem's NCHW input is copied channels-last with its padding (24-byte runs,
        # under PAD_IN_KERNEL_MIN_RUN); the two 32-channel convs' inputs are read as
        # they are (no copy: nhwc_input returns their memory)
        assert set(padded_copies) == {(3, 3), (0, 0)}
        with pytest.MonkeyPatch.context() as m:     # the host pads every conv
            m.setattr(lite, "PAD_IN_KERNEL_MAX_BORDER", -1.0)
            for module in e_q.modules():
                w = getattr(module, "_packed_weight", None)
                if w is not None:
                    w.__dict__.pop("_kernel_cache", None)
            from ember.frontend import quantized as fq
            fq._CHECKED.clear()
            host = e_q(ember.tensor(x)).numpy()
    for out in got:
        np.testing.assert_array_equal(out, host)
    want = t_q(torch.from_numpy(x)).numpy()
    assert np.abs(want - got[0]).max() <= 3 * float(np.abs(want).max()) / 127


def test_an_artifact_and_ember_compile_pad_in_the_kernel_too(rng, tmp_path, monkeypatch):
    """Packaged conv steps say "pad": "kernel" and their GEMM reads the padding of a
    resnet-like block (a residual add fused into the second conv under ember.compile):
    the integers eager mode gives, with no padded copy of the 32-channel inputs. On the
    VNNI kernels: on AMX hosts artifacts keep the host's padded copy (docs/quantization.md),
    so the AMX kernels are switched off here as EMBER_QGEMM=vnni would."""
    import ember.ao.quantization as eq
    import ember.ao.quantization.quantize_fx as eqfx
    from ember.codegen import quantized
    from ember.codegen.llvm import qgemm_amx

    monkeypatch.setattr(qgemm_amx, "available", lambda: False)
    quantized._gemm_config_for.cache_clear()        # the choice is kept per EMBER_ISA
    try:
        _artifact_and_compile_pad_in_the_kernel(rng, tmp_path, monkeypatch, eq, eqfx)
    finally:
        quantized._gemm_config_for.cache_clear()


def _artifact_and_compile_pad_in_the_kernel(rng, tmp_path, monkeypatch, eq, eqfx):

    class Block(ember.nn.Module):
        def __init__(self):
            super().__init__()
            nn = ember.nn
            self.stem = nn.Conv2d(3, 32, 3, 1, 1)
            self.conv = nn.Conv2d(32, 32, 3, 1, 1)
            self.relu = nn.ReLU()

        def forward(self, x):
            y = self.relu(self.stem(x))
            return self.relu(self.conv(y) + y)
    x = ember.tensor(rng.standard_normal((2, 3, 64, 64)).astype(np.float32))
    unpadded = []
    real = lite.conv_gather_unpadded
    monkeypatch.setattr(lite, "conv_gather_unpadded",
                        lambda *args: unpadded.append(args[0].shape) or real(*args))
    with ember.no_grad():
        prepared = eqfx.prepare_fx(Block().eval(), eq.get_default_qconfig_mapping("x86"), (x,))
        prepared(x)
        quantized = eqfx.convert_fx(prepared)
        want = quantized(x).numpy()
        path = ember.aot.compile_and_package(ember.export(quantized, (x,)),
                                             tmp_path / "m.ember")
        before = len(unpadded)
        np.testing.assert_array_equal(ember.aot.load_package(path)(x).numpy(), want)
        assert (2, 64, 64, 32) in unpadded[before:]
        np.testing.assert_array_equal(ember.compile(quantized)(x).numpy(), want)
