"""conv2d forward (float32) in NCHW and NHWC: implicit GEMM, or im2col + GEMM for groups.

groups=1 (every conv of the usual CNNs) runs the implicit-GEMM kernel of
implicit_conv.py on either layout, with no patch matrix and no transposes; what
follows describes the im2col path that grouped convolutions keep.

    y = conv2d(x, w, bias, stride=1, padding=0, dilation=1, groups=1, layout="nchw")

`w` is always in PyTorch's layout (C_out, C_in/groups, kH, kW); `x` and the result
are (N, C, H, W) for layout="nchw" and (N, H, W, C) for "nhwc". Semantics follow
torch.nn.functional.conv2d (zero padding, int/pair or 'valid'/'same' padding).

How each layout maps onto C = A @ B (one GEMM per group; per image in NCHW):
- NHWC: rows are output pixels. A = patches (N*OH*OW, kH*kW*Cg) with channels
  innermost, B = weights (kH*kW*Cg, Cout_g), C = the output's channel slice, which
  is already NHWC. A 1x1, stride-1 convolution uses x itself as A (no copy).
- NCHW: per image, A = weights (Cout_g, Cg*kH*kW), B = patches (Cg*kH*kW, OH*OW),
  C = that image's (Cout_g, OH*OW) output block; a 1x1, stride-1 one uses x[n] as B.
The flavour of im2col follows the channel count, not the layout
(`_patches_channels_last`); the input and result are transposed when they differ.
NHWC patches are gathered by a native, threaded im2col kernel (padding written as
zeros, no padded copy of the input) into a per-thread buffer reused across calls;
NCHW patches by a strided view of the zero-padded input and one NumPy copy.
"""
from __future__ import annotations

import ctypes
import functools
import threading

import numpy as np
from llvmlite import ir
from numpy.lib.stride_tricks import as_strided

from ...ir.errors import DTypeError, ShapeError
from ...runtime.threads import default_pool
from . import irutil as u
from .gemm import gemm
from .implicit_conv import ConvGeometry, PreparedConv
from .jit import compile_built

LAYOUTS = ("nchw", "nhwc")


def _pair(value, name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair):
        raise ShapeError(f"conv2d: {name} must be an int or a pair of ints, got {value!r}")
    return int(pair[0]), int(pair[1])


def padding_pairs(padding, kernel, dilation, stride) -> tuple[tuple[int, int], tuple[int, int]]:
    """((top, bottom), (left, right)) zero padding."""
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        if stride != (1, 1):
            raise ShapeError("conv2d: padding='same' is not supported for strided convolutions")
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple((t // 2, t - t // 2) for t in total)   # PyTorch puts the odd one last
    ph, pw = _pair(padding, "padding")
    if ph < 0 or pw < 0:
        raise ShapeError(f"conv2d: padding must be non-negative, got {padding!r}")
    return (ph, ph), (pw, pw)


def _check(x, w, bias, groups, layout) -> None:
    for name, t in (("input", x), ("weight", w)) + ((("bias", bias),) if bias is not None else ()):
        if not isinstance(t, np.ndarray) or t.dtype != np.float32:
            raise DTypeError(f"conv2d: {name} must be a float32 numpy array, got "
                             f"{getattr(t, 'dtype', type(t).__name__)}")
    if layout not in LAYOUTS:
        raise ShapeError(f"conv2d: layout must be one of {LAYOUTS}, got {layout!r}")
    if x.ndim != 4 or w.ndim != 4:
        raise ShapeError(f"conv2d: expected 4-D input and weight, got {x.shape} and {w.shape}")
    c_in = x.shape[1] if layout == "nchw" else x.shape[3]
    if groups < 1 or c_in % groups or w.shape[0] % groups:
        raise ShapeError(f"conv2d: groups={groups} must divide in_channels={c_in} and "
                         f"out_channels={w.shape[0]}")
    if w.shape[1] * groups != c_in:
        raise ShapeError(f"conv2d: input {x.shape} ({layout}) has {c_in} channels, but weight "
                         f"{w.shape} expects {w.shape[1] * groups} (groups={groups})")
    if bias is not None and bias.shape != (w.shape[0],):
        raise ShapeError(f"conv2d: bias must have shape ({w.shape[0]},), got {bias.shape}")


def conv2d(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1, layout: str = "nchw") -> np.ndarray:
    """2-D cross-correlation, as torch.nn.functional.conv2d, in `layout`."""
    _check(x, w, bias, groups, layout)
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    if min(stride) < 1 or min(dilation) < 1:
        raise ShapeError(f"conv2d: stride {stride} and dilation {dilation} must be positive")
    kernel = w.shape[2:]
    pads = padding_pairs(padding, kernel, dilation, stride)
    nhwc = x if layout == "nhwc" else x.transpose(0, 2, 3, 1)
    n, h, wd, _ = nhwc.shape
    out_hw = [(size + sum(p) - d * (k - 1) - 1) // s + 1
              for size, p, d, k, s in zip((h, wd), pads, dilation, kernel, stride)]
    if min(out_hw) < 1:
        raise ShapeError(f"conv2d: input {x.shape} ({layout}) is smaller than the dilated "
                         f"kernel {tuple(kernel)} (padding {pads}, dilation {dilation})")
    if groups == 1:
        return _implicit_gemm(x, w, bias, ConvGeometry(tuple(kernel), stride, pads, dilation),
                              layout, n, out_hw)
    geometry = _Geometry(tuple(kernel), stride, dilation, pads, tuple(out_hw), groups)
    if _patches_channels_last(geometry, w.shape[1], layout):
        out = _to_layout(_conv_nhwc(nhwc, w, geometry), "nhwc", layout)
    else:
        # contiguous NCHW: the patch copy then runs along input rows (np.pad would
        # keep a transposed view's channels-last order)
        nchw = np.ascontiguousarray(x if layout == "nchw" else x.transpose(0, 3, 1, 2))
        out = _to_layout(_conv_nchw(nchw, w, geometry), "nchw", layout)
    if bias is not None:
        out += bias if layout == "nhwc" else bias[:, None, None]
    return out


def _implicit_gemm(x, w, bias, geometry, layout, n, out_hw) -> np.ndarray:
    """groups=1: the implicit GEMM kernel on (N, C, H, W)-shaped views of either layout."""
    conv = PreparedConv(w, bias, geometry)
    if layout == "nhwc":
        out = np.empty((n, *out_hw, w.shape[0]), np.float32)
        conv(x.transpose(0, 3, 1, 2), out.transpose(0, 3, 1, 2))
    else:
        out = np.empty((n, w.shape[0], *out_hw), np.float32)
        conv(x, out)
    return out


_NHWC_MIN_CHANNELS = 16


def _patches_channels_last(g: "_Geometry", channels_per_group: int, layout: str) -> bool:
    """Which im2col to run, whatever the layout: NHWC patches copy runs of C floats,
    NCHW patches runs of OW floats. With few channels (a 3-channel stem) the NCHW copy
    wins by far; with many, the NHWC one (and its bigger GEMM) wins even after
    transposing an NCHW input and output. A pointwise conv needs no patches at all."""
    if g.is_pointwise:
        return layout == "nhwc"
    return channels_per_group >= _NHWC_MIN_CHANNELS


def _to_layout(out: np.ndarray, have: str, want: str) -> np.ndarray:
    if have == want:
        return out
    axes = (0, 3, 1, 2) if want == "nchw" else (0, 2, 3, 1)
    return np.ascontiguousarray(out.transpose(axes))


class _Geometry:
    def __init__(self, kernel, stride, dilation, pads, out_hw, groups):
        self.kernel, self.stride, self.dilation = kernel, stride, dilation
        self.pads, self.out_hw, self.groups = pads, out_hw, groups

    @property
    def is_pointwise(self) -> bool:
        """1x1, stride 1, no padding: the input already is the patch matrix."""
        return self.kernel == (1, 1) and self.stride == (1, 1) and self.pads == ((0, 0), (0, 0))


# im2col_nhwc(begin, end, worker, x, patches, <_IM2COL_DIMS>): patch rows of output rows
# [begin, end) of N*OH; each patch row is (kh, kw, c) for c in [c0, c0 + cg).
_IM2COL_DIMS = ("h", "w", "c", "oh", "ow", "kh", "kw", "sh", "sw", "dh", "dw", "ph", "pw",
                "c0", "cg")


def _im2col_module() -> ir.Module:
    module = ir.Module(name="ember_im2col_nhwc")
    args = [("begin", u.I64), ("end", u.I64), ("worker", u.I64), ("x", u.PTR),
            ("patches", u.PTR)] + [(d, u.I64) for d in _IM2COL_DIMS]
    fn, b = u.define(module, "im2col_nhwc", u.VOID, args)
    p = dict(zip([name for name, _ in args], fn.args))
    with u.counted_loop(b, p["begin"], p["end"], 1, "row") as row:
        n, oh = b.sdiv(row, p["oh"]), b.srem(row, p["oh"])
        with u.counted_loop(b, u.i64(0), p["ow"], 1, "ow") as ow:
            with u.counted_loop(b, u.i64(0), p["kh"], 1, "kh") as kh:
                with u.counted_loop(b, u.i64(0), p["kw"], 1, "kw") as kw:
                    _emit_patch_pixel(b, p, n, oh, ow, kh, kw, row)
    b.ret_void()
    return module


def _emit_patch_pixel(b, p, n, oh, ow, kh, kw, row) -> None:
    """Copy cg channels of input pixel (ih, iw) into the patch, or zeros in the padding."""
    ih = b.add(b.sub(b.mul(oh, p["sh"]), p["ph"]), b.mul(kh, p["dh"]))
    iw = b.add(b.sub(b.mul(ow, p["sw"]), p["pw"]), b.mul(kw, p["dw"]))
    inside = b.and_(b.and_(b.icmp_signed(">=", ih, u.i64(0)), b.icmp_signed("<", ih, p["h"])),
                    b.and_(b.icmp_signed(">=", iw, u.i64(0)), b.icmp_signed("<", iw, p["w"])))
    patch_row = b.add(b.mul(row, p["ow"]), ow)
    tap = b.add(b.mul(kh, p["kw"]), kw)
    dst = b.mul(b.add(b.mul(patch_row, b.mul(p["kh"], p["kw"])), tap), p["cg"])
    pixel = b.add(b.mul(b.add(b.mul(n, p["h"]), ih), p["w"]), iw)
    src = b.add(b.mul(pixel, p["c"]), p["c0"])
    zero = ir.Constant(u.F32, 0.0)
    with b.if_else(inside) as (copy, pad):
        with copy:
            with u.counted_loop(b, u.i64(0), p["cg"], 1, "c") as c:
                value = b.load(u.elem_ptr(b, p["x"], b.add(src, c)), typ=u.F32)
                b.store(value, u.elem_ptr(b, p["patches"], b.add(dst, c)))
        with pad:
            with u.counted_loop(b, u.i64(0), p["cg"], 1, "z") as c:
                b.store(zero, u.elem_ptr(b, p["patches"], b.add(dst, c)))


@functools.cache
def _im2col_kernel():
    lib = compile_built(_im2col_module)
    return lib.function("im2col_nhwc", None, *[ctypes.c_int64] * 3, ctypes.c_void_p,
                        ctypes.c_void_p, *[ctypes.c_int64] * len(_IM2COL_DIMS))


_SCRATCH = threading.local()


def _scratch(n_floats: int) -> np.ndarray:
    """A per-thread float32 buffer of n_floats, grown but never shrunk: patch matrices
    are large, and a fresh one per call would pay its page faults every time."""
    buf = getattr(_SCRATCH, "buf", None)
    if buf is None or buf.size < n_floats:
        buf = _SCRATCH.buf = np.empty(n_floats, np.float32)
    return buf[:n_floats]


def _patches_nhwc(x: np.ndarray, g: _Geometry, c0: int, cg: int) -> np.ndarray:
    """The (N*OH*OW, kH*kW*cg) patch matrix of channels [c0, c0+cg), built natively."""
    n, h, w, c = x.shape
    (oh, ow), (kh, kw) = g.out_hw, g.kernel
    patches = _scratch(n * oh * ow * kh * kw * cg).reshape(n * oh * ow, kh * kw * cg)
    dims = (h, w, c, oh, ow, kh, kw, *g.stride, *g.dilation, g.pads[0][0], g.pads[1][0], c0, cg)
    default_pool().parallel_for(_im2col_kernel(), n * oh, x.ctypes.data, patches.ctypes.data,
                                *dims)
    return patches


def _conv_nhwc(x: np.ndarray, w: np.ndarray, g: _Geometry) -> np.ndarray:
    n, c_out, (oh, ow) = x.shape[0], w.shape[0], g.out_hw
    cg, og = x.shape[3] // g.groups, c_out // g.groups
    out = np.empty((n, oh, ow, c_out), np.float32)
    rows = out.reshape(n * oh * ow, c_out)
    x = np.ascontiguousarray(x)
    # weights as (kH*kW*Cg, Cout): the same (kh, kw, c) order as a patch row
    w_kc = w.transpose(2, 3, 1, 0).reshape(-1, c_out)
    for grp in range(g.groups):
        if g.is_pointwise:
            a = x.reshape(-1, x.shape[3])[:, grp * cg:(grp + 1) * cg]
        else:
            a = _patches_nhwc(x, g, grp * cg, cg)
        gemm(a, w_kc[:, grp * og:(grp + 1) * og], rows[:, grp * og:(grp + 1) * og])
    return out


def _conv_nchw(x: np.ndarray, w: np.ndarray, g: _Geometry) -> np.ndarray:
    n, c_in, c_out, (oh, ow) = x.shape[0], x.shape[1], w.shape[0], g.out_hw
    cg, og = c_in // g.groups, c_out // g.groups
    out = np.empty((n, c_out, oh, ow), np.float32)
    w_rows = w.reshape(c_out, -1)                 # (Cout, Cg*kH*kW), torch's order
    patches = None if g.is_pointwise else _patches_nchw(x, g)
    # one patch matrix, reused by every image and group (no page faults per image)
    buffer = None if patches is None else np.empty((cg, *g.kernel, oh, ow), np.float32)
    for img in range(n):
        for grp in range(g.groups):
            if patches is None:
                b = x[img, grp * cg:(grp + 1) * cg].reshape(cg, oh * ow)
            else:
                np.copyto(buffer, patches[img, grp * cg:(grp + 1) * cg])
                b = buffer.reshape(-1, oh * ow)
            gemm(w_rows[grp * og:(grp + 1) * og], b,
                 out[img, grp * og:(grp + 1) * og].reshape(og, oh * ow))
    return out


def _patches_nchw(x: np.ndarray, g: _Geometry) -> np.ndarray:
    """(N, C, kH, kW, OH, OW) view of the padded NCHW input: rows in w's (c, kh, kw)
    order, and output columns innermost, so the copy runs along rows of the input."""
    xp = np.pad(x, ((0, 0), (0, 0), g.pads[0], g.pads[1])) if any(map(any, g.pads)) else x
    sn, sc, sh, sw = xp.strides
    (oh, ow), (kh, kw) = g.out_hw, g.kernel
    shape = (xp.shape[0], xp.shape[1], kh, kw, oh, ow)
    strides = (sn, sc, sh * g.dilation[0], sw * g.dilation[1], sh * g.stride[0], sw * g.stride[1])
    return as_strided(xp, shape, strides, writeable=False)
