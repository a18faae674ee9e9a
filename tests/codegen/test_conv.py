"""conv2d (im2col + GEMM) against torch in float64, NCHW and NHWC."""
import numpy as np
import pytest
import torch

from ember.codegen.llvm.conv import conv2d
from ember.ir.errors import DTypeError, ShapeError

CASES = [
    ((2, 3, 9, 11), (4, 3, 3, 3), {}),
    ((2, 4, 8, 8), (6, 2, 3, 3), dict(stride=2, padding=1, groups=2)),
    ((1, 6, 10, 7), (6, 1, 3, 3), dict(padding=(2, 1), dilation=2, groups=6)),   # depthwise
    ((2, 8, 5, 5), (16, 8, 1, 1), {}),                                           # pointwise
    ((1, 8, 6, 6), (4, 4, 1, 1), dict(groups=2)),                                # grouped 1x1
    ((2, 6, 7, 7), (5, 6, 1, 1), dict(stride=2)),                                # downsample
    ((1, 3, 7, 7), (5, 3, 2, 4), dict(stride=(2, 3), padding="valid")),
    ((1, 3, 7, 9), (5, 3, 3, 5), dict(padding="same", dilation=(1, 2))),
    ((1, 3, 16, 16), (8, 3, 7, 7), dict(stride=2, padding=3)),                   # a stem
    # >= 16 channels per group: channels-last patches (the native im2col) in both layouts
    ((1, 32, 6, 5), (8, 16, 3, 3), dict(padding=1, groups=2, stride=(1, 2))),
    ((2, 16, 5, 5), (4, 16, 3, 3), dict(dilation=2, padding=2)),
]


def _reference(x, w, bias, kwargs):
    t = torch.nn.functional.conv2d(torch.from_numpy(x).double(), torch.from_numpy(w).double(),
                                   None if bias is None else torch.from_numpy(bias).double(),
                                   **kwargs)
    return t.numpy()


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("x_shape,w_shape,kwargs", CASES, ids=[str(c[2]) + str(c[1]) for c in CASES])
def test_conv2d_matches_torch(x_shape, w_shape, kwargs, layout, rng):
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    bias = rng.standard_normal(w_shape[0]).astype(np.float32)
    want = _reference(x, w, bias, kwargs)
    if layout == "nhwc":
        got = conv2d(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), w, bias, layout="nhwc",
                     **kwargs).transpose(0, 3, 1, 2)
    else:
        got = conv2d(x, w, bias, **kwargs)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_no_bias_and_channels_last_view(rng):
    x = rng.standard_normal((2, 5, 6, 6)).astype(np.float32)
    w = rng.standard_normal((3, 5, 3, 3)).astype(np.float32)
    view = x.transpose(0, 2, 3, 1)            # NHWC view of an NCHW array (not contiguous)
    got = conv2d(view, w, padding=1, layout="nhwc").transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, _reference(x, w, None, dict(padding=1)), rtol=1e-5,
                               atol=1e-5)


def test_bad_inputs_are_named():
    x = np.zeros((1, 4, 5, 5), np.float32)
    with pytest.raises(ShapeError, match=r"has 4 channels, but weight \(2, 3, 3, 3\) expects 3"):
        conv2d(x, np.zeros((2, 3, 3, 3), np.float32))
    with pytest.raises(ShapeError, match="groups=3 must divide in_channels=4"):
        conv2d(x, np.zeros((3, 1, 3, 3), np.float32), groups=3)
    with pytest.raises(ShapeError, match="smaller than the dilated kernel"):
        conv2d(x, np.zeros((2, 4, 3, 3), np.float32), dilation=3)
    with pytest.raises(ShapeError, match="padding='same' is not supported for strided"):
        conv2d(x, np.zeros((2, 4, 3, 3), np.float32), padding="same", stride=2)
    with pytest.raises(ShapeError, match=r"bias must have shape \(2,\)"):
        conv2d(x, np.zeros((2, 4, 3, 3), np.float32), np.zeros(3, np.float32))
    with pytest.raises(DTypeError, match="input must be a float32 numpy array, got float64"):
        conv2d(x.astype(np.float64), np.zeros((2, 4, 3, 3), np.float32))
    with pytest.raises(ShapeError, match="layout must be one of"):
        conv2d(x, np.zeros((2, 4, 3, 3), np.float32), layout="chwn")


# --- the implicit-GEMM kernel (groups=1) with fused epilogues ---------------------------------
from llvm_isas import isa_params  # noqa: E402  (tests/codegen is on sys.path)

from ember.codegen.llvm import winograd  # noqa: E402
from ember.codegen.llvm.implicit_conv import (  # noqa: E402
    Epilogue, columns_first, k_block, prepare_conv2d)
from ember.codegen.llvm.target import Isa  # noqa: E402

IMPLICIT_CASES = [   # x shape, w shape, stride, padding, dilation: each path of the kernel
    ((2, 3, 9, 11), (4, 3, 3, 3), (1, 1), (0, 0), (1, 1)),         # small C, no padding
    ((1, 3, 16, 16), (8, 3, 7, 7), (2, 2), (3, 3), (1, 1)),        # stem: padded copy
    ((2, 16, 9, 11), (70, 16, 3, 3), (2, 1), (1, 1), (1, 1)),      # C_out past one tile
    ((2, 32, 5, 5), (4, 32, 3, 3), (1, 1), (2, 2), (2, 2)),        # dilation, taps in padding
    ((1, 20, 6, 7), (5, 20, 2, 3), (1, 2), ((0, 1), (2, 0)), (1, 1)),  # asymmetric padding
    ((1, 300, 4, 4), (9, 300, 3, 3), (1, 1), (1, 1), (1, 1)),      # C > KC: chunked segments
    ((2, 24, 7, 7), (33, 24, 1, 1), (2, 2), (0, 0), (1, 1)),       # 1x1 downsample
    ((1, 128, 5, 5), (128, 128, 3, 3), (1, 1), (1, 1), (1, 1)),    # K = 1152: one K block
    # one input channel (padded NHWC copy); NCHW output tiles stored column by column,
    # except the tiles that cross from one image to the next
    ((3, 1, 28, 28), (16, 1, 3, 3), (1, 1), (1, 1), (1, 1)),
]


def _torch_conv(x, w, bias, stride, padding, dilation):
    xt = torch.from_numpy(x).double()
    if not isinstance(padding[0], int):                 # asymmetric: pad explicitly
        (top, bottom), (left, right) = padding
        xt = torch.nn.functional.pad(xt, (left, right, top, bottom))
        padding = (0, 0)
    return torch.nn.functional.conv2d(xt, torch.from_numpy(w).double(),
                                      torch.from_numpy(bias).double(), stride, padding, dilation)


def _layout(a, channels_last):
    """(N, C, H, W)-shaped array in NCHW or channels-last memory."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2) \
        if channels_last else np.ascontiguousarray(a)


@pytest.mark.parametrize("epilogue", [Epilogue.NONE, Epilogue.RELU,
                                      Epilogue.RESIDUAL | Epilogue.RELU])
@pytest.mark.parametrize("x_cl,out_cl", [(False, False), (True, True), (False, True)])
@pytest.mark.parametrize("case", IMPLICIT_CASES, ids=[str(c[:2]) for c in IMPLICIT_CASES])
def test_implicit_conv_matches_torch(case, x_cl, out_cl, epilogue, rng, monkeypatch):
    # the implicit GEMM itself: channels-last 3x3 stride-1 convs would take Winograd
    # (tests/codegen/test_winograd.py, its own error bound)
    monkeypatch.setattr(winograd, "WINOGRAD", False)
    x_shape, w_shape, stride, padding, dilation = case
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    bias = rng.standard_normal(w_shape[0]).astype(np.float32)
    want = _torch_conv(x, w, bias, stride, padding, dilation)
    residual = None
    if Epilogue.RESIDUAL in epilogue:
        residual = rng.standard_normal(want.shape).astype(np.float32)
        want = want + torch.from_numpy(residual).double()
        residual = _layout(residual, out_cl)
    if Epilogue.RELU in epilogue:
        want = want.relu()
    out = _layout(np.full(want.shape, np.nan, np.float32), out_cl)   # old NaNs must not leak
    prepare_conv2d(w, bias, stride, padding, dilation, epilogue)(_layout(x, x_cl), out, residual)
    np.testing.assert_allclose(out, want.numpy(), rtol=1e-5, atol=1e-4)


def test_k_blocks_take_all_of_k_when_its_weights_fit_in_l2():
    """KC x NC floats of weights per K block, or all of K when that block is at most
    WHOLE_K_FLOATS (resnet18's 3x3 128 -> 128 conv: 1152 x 128 floats)."""
    assert k_block(1152, 128, 64) == 1152              # 576 KiB: one block, not 1024 + 128
    assert k_block(2304, 256, 64) == 512               # 2.3 MiB: blocks of KC x NC
    assert k_block(576, 64, 64) == 2048                # K within one block already
    assert k_block(4608, 512, 64) == 256
    # few output rows: panel by panel, K blocks of up to WHOLE_K_FLOATS / NR values of k
    assert columns_first(392, 4608, 512, 64) and columns_first(1568, 2304, 256, 64)
    assert not columns_first(6272, 1152, 128, 64)       # many rows
    assert not columns_first(1568, 128, 256, 64)        # a 1x1 downsample: weights in L2
    assert k_block(2304, 256, 64, m=1568) == 2304       # resnet18's layer 3: all of K
    assert k_block(4608, 512, 64, m=392) == 2560        # layer 4: 2560 + 2048
    assert k_block(2304, 256, 64, m=6272) == 512        # many rows: by rows, as above


def test_columns_first_conv_with_several_k_blocks(rng):
    """Few output rows (conv_cols, (panel, rows) items), K = 2880 in blocks of 2560 and
    320, a partial last panel (100 channels), a residual and relu."""
    x = rng.standard_normal((2, 320, 5, 4)).astype(np.float32)
    w = (rng.standard_normal((100, 320, 3, 3)) * 0.05).astype(np.float32)
    bias = rng.standard_normal(100).astype(np.float32)
    residual = rng.standard_normal((2, 100, 5, 4)).astype(np.float32)
    want = (_torch_conv(x, w, bias, (1, 1), (1, 1), (1, 1)) +
            torch.from_numpy(residual).double()).relu().numpy()
    out = _layout(np.full(want.shape, np.nan, np.float32), True)
    prepare_conv2d(w, bias, (1, 1), (1, 1), epilogue=Epilogue.RESIDUAL | Epilogue.RELU)(
        _layout(x, True), out, _layout(residual, True))
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("isa", isa_params(Isa.AVX2, Isa.PORTABLE))
def test_implicit_conv_other_isas(isa, rng):
    x = rng.standard_normal((2, 17, 6, 5)).astype(np.float32)
    w = rng.standard_normal((21, 17, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(21).astype(np.float32)
    out = np.empty((2, 21, 6, 5), np.float32)
    prepare_conv2d(w, bias, (1, 1), (1, 1), isa=isa)(_layout(x, True), out)
    want = _torch_conv(x, w, bias, (1, 1), (1, 1), (1, 1)).numpy()
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-4)


def test_residual_may_be_the_output_buffer(rng):
    """A memory plan may give the block's output the residual's buffer (in place)."""
    x = rng.standard_normal((1, 16, 5, 5)).astype(np.float32)
    w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    bias = np.zeros(16, np.float32)
    buf = rng.standard_normal((1, 16, 5, 5)).astype(np.float32)
    want = (_torch_conv(x, w, bias, (1, 1), (1, 1), (1, 1)) + torch.from_numpy(buf)).numpy()
    prepare_conv2d(w, bias, (1, 1), (1, 1), epilogue=Epilogue.RESIDUAL)(x, buf, buf)
    np.testing.assert_allclose(buf, want, rtol=1e-5, atol=1e-4)


def test_relu_keeps_nan_like_torch():
    x = np.full((1, 16, 1, 6), np.nan, np.float32)
    x[..., :3] = 1.0
    out = np.empty((1, 2, 1, 6), np.float32)
    prepare_conv2d(-np.ones((2, 16, 1, 1), np.float32), epilogue=Epilogue.RELU)(x, out)
    assert (out[..., :3] == 0).all() and np.isnan(out[..., 3:]).all()


def test_prepared_conv_errors_name_the_shapes():
    conv = prepare_conv2d(np.zeros((4, 3, 3, 3), np.float32), padding=(1, 1))
    with pytest.raises(ShapeError, match=r"input \(1, 5, 8, 8\) and output"):
        conv(np.zeros((1, 5, 8, 8), np.float32), np.zeros((1, 4, 8, 8), np.float32))
    with pytest.raises(ShapeError, match="residual missing"):
        prepare_conv2d(np.zeros((4, 3, 1, 1), np.float32), epilogue=Epilogue.RESIDUAL)(
            np.zeros((1, 3, 2, 2), np.float32), np.zeros((1, 4, 2, 2), np.float32))


def test_compiled_block_fuses_conv_epilogues(rng):
    """conv-bn-relu and conv-bn-add-relu groups become one conv step each (the epilogue
    in the tile store); the result equals eager, in both input layouts."""
    import ember
    from ember.frontend.models.vision import BasicBlock
    ember.manual_seed(0)
    block = BasicBlock(16, 16).eval()
    for bn in (block.bn1, block.bn2):        # non-trivial folded batchnorm
        bn.running_mean.copy_(ember.randn(16))
        bn.running_var.copy_(ember.rand(16) + 0.5)
    compiled = ember.compile(block)
    x = ember.tensor(rng.standard_normal((2, 16, 6, 5)).astype(np.float32))
    with ember.no_grad():
        want = block(x).numpy()
        for xin in (x, x.contiguous(memory_format=ember.channels_last)):
            np.testing.assert_allclose(compiled(xin).numpy(), want, rtol=1e-5, atol=1e-5)
    plan = compiled.last[0]
    assert compiled.stats.kernels == 0, [s.name for s in plan.steps]
    assert not any(step.name.endswith(".anchor") for step in plan.steps)


def test_zero_input_channels_give_the_epilogue_of_zeros():
    bias = np.array([-1.0, 2.0], np.float32)
    out = np.empty((1, 2, 3, 3), np.float32)
    prepare_conv2d(np.zeros((2, 0, 1, 1), np.float32), bias, epilogue=Epilogue.RELU)(
        np.zeros((1, 0, 3, 3), np.float32), out)
    np.testing.assert_array_equal(out[0, :, 0, 0], [0.0, 2.0])


@pytest.mark.parametrize("c_out", [3, 16, 30, 64])
def test_narrow_register_tiles(c_out, rng):
    """Few output channels take narrower, taller tiles (each width checked at its edge)."""
    x = rng.standard_normal((1, 4, 7, 9)).astype(np.float32)
    w = rng.standard_normal((c_out, 4, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(c_out).astype(np.float32)
    out = np.empty((1, c_out, 7, 9), np.float32)
    prepare_conv2d(w, bias, (1, 1), (1, 1), epilogue=Epilogue.RELU)(x, out)
    want = _torch_conv(x, w, bias, (1, 1), (1, 1), (1, 1)).relu().numpy()
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-4)


def test_tile_prefetch_changes_no_bits(monkeypatch, rng):
    """The microkernel's prefetch of output and residual rows (implicit_conv's
    _emit_tile_prefetch) is a hint: results equal the kernel without it bit for bit,
    over two K blocks (K = 1440), a residual and a partial last row tile (70 rows)."""
    from ember.codegen.llvm import implicit_conv
    x = rng.standard_normal((2, 5, 7, 160), dtype=np.float32).transpose(0, 3, 1, 2)
    w = rng.standard_normal((96, 160, 3, 3), dtype=np.float32) * 0.05
    res = rng.standard_normal((2, 5, 7, 96), dtype=np.float32).transpose(0, 3, 1, 2)
    outs = []
    for flag in (True, False):
        monkeypatch.setattr(implicit_conv, "PREFETCH_TILE", flag)
        implicit_conv.conv_kernels.cache_clear()
        conv = prepare_conv2d(w, np.ones(96, np.float32), (1, 1), (1, 1),
                              epilogue=Epilogue.RELU | Epilogue.RESIDUAL)
        out = np.empty((2, 5, 7, 96), np.float32).transpose(0, 3, 1, 2)
        outs.append(conv(x, out, res))
    implicit_conv.conv_kernels.cache_clear()
    assert np.array_equal(outs[0], outs[1])
    want = torch.relu(torch.nn.functional.conv2d(torch.from_numpy(np.ascontiguousarray(x)),
                                                 torch.from_numpy(w), torch.ones(96),
                                                 padding=1) + torch.from_numpy(
                                                     np.ascontiguousarray(res)))
    np.testing.assert_allclose(outs[0], want.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("source", ["nhwc_dense", "nhwc_strided", "nchw", "nchw_wide",
                                    "nchw_strided"])
def test_padded_copy_equals_numpy_pad(source, rng):
    """The conv's zero-padded NHWC copy (pad_nhwc): a dense NHWC row is copied as one
    run, NCHW rows by 8x8 register transposes (20 channels: two blocks and 4 left over;
    11 columns: 8 and a masked 3), other layouts element by element; all equal numpy's
    pad exactly."""
    base = rng.standard_normal((2, 9, 11, 20 if source == "nchw_wide" else 6),
                               dtype=np.float32)                        # N, H, W, C
    if source == "nchw_strided":
        x = np.ascontiguousarray(base.transpose(0, 3, 1, 2))[:, :, :, ::2]
    elif source == "nhwc_dense":
        x = base.transpose(0, 3, 1, 2)
    elif source == "nhwc_strided":
        x = base[:, :, :, :3].transpose(0, 3, 1, 2)                     # pixels 6 apart
    elif source in ("nchw", "nchw_wide"):
        x = np.ascontiguousarray(base.transpose(0, 3, 1, 2))
    conv = prepare_conv2d(rng.standard_normal((4, x.shape[1], 3, 3), dtype=np.float32),
                          None, (1, 1), ((2, 1), (3, 2)))
    got = conv._padded(x)
    want = np.pad(x.transpose(0, 2, 3, 1), ((0, 0), (2, 1), (3, 2), (0, 0)))
    assert got.shape == want.shape
    assert np.array_equal(got, want)


def test_partial_panel_stores_only_its_channels(rng):
    """6 output channels in a 16-wide panel: full tiles store them with masked vectors.
    The output is a 6-channel slice of a 16-channel channels-last buffer, so a lane past
    the sixth would land on the slice's neighbours (they must keep their values)."""
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    w = rng.standard_normal((6, 3, 5, 5)).astype(np.float32)
    bias = rng.standard_normal(6).astype(np.float32)
    want = _torch_conv(x, w, bias, (1, 1), (0, 0), (1, 1)).relu().numpy()
    big = _layout(np.full((2, 16, 5, 5), 7.0, np.float32), True)
    out = big[:, :6]
    prepare_conv2d(w, bias, epilogue=Epilogue.RELU)(_layout(x, True), out)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-4)
    assert (big[:, 6:] == 7.0).all()
