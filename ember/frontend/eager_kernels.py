"""Generated kernels for eager CPU ops, chosen by measurement (issue 22).

Eager execution runs each op's NumPy reference. For a few heavy float32 ops ember
owns faster native kernels (the LLVM implicit-GEMM convolution and GEMM that
compiled plans use); this module offers them to eager dispatch:

    kernel = candidate(op, args, out_meta)   # None, or kernel(args) -> np.ndarray

`eager.run_op` asks once per cached call plan (one per op, argument dtypes, shapes,
strides and scalar arguments) and then *measures*: the first call runs both the
candidate and the reference on the real inputs (alternately, best of three each),
compares the values (float32 tolerance; a mismatch keeps the reference and is recorded) and keeps
the kernel only when it is at least 10% faster; in deterministic mode
(`use_deterministic_algorithms(True)`) it keeps an agreeing kernel without timing, so
results do not depend on the machine's load.
Every decision lands in `CHOICES`, keyed by (op, dtype, argument shapes), which
`print_choices()` (the eager benchmark) prints. Compiled kernels are cached per
process and on disk by codegen (`gemm_kernel`, `conv_kernels`).

Covered: conv2d / convolution forward (groups 1), both convolution backward products
(the input gradient as a stride-1 convolution of grad_output with the rotated
weight, the weight gradient as a convolution of the input with grad_output), and
linear / matmul / mm / addmm / bmm through the LLVM GEMM; and one NumPy rewrite,
max pooling over tiled windows (kernel == stride), which is a reshape instead of the
reference's padded strided gather, and max pooling's values over any windows as a
running maximum of shifted slices.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from typing import Callable

import numpy as np

from ..ir import determinism
from ..ir.meta import TensorMeta, channels_last
from ..ir.ops.conv import ConvParams
from .tensor import Tensor

# (op, dtype, layout class) -> {"kernel": "llvm" | "numpy", "llvm_ms", "numpy_ms", ...}
CHOICES: dict[tuple, dict] = {}

_MIN_WORK = 1 << 16        # multiply-adds below which NumPy's call overhead is unbeatable
_RTOL, _ATOL = 1e-4, 1e-5
_RUNS = 3                  # timed calls of each side; the best counts
_MARGIN = 0.9              # the kernel must beat NumPy by 10% (noise must not flip it)


def _arr(v):
    return v._array if isinstance(v, Tensor) else v


def _f32(*values) -> bool:
    return all(isinstance(v, Tensor) and v._array.dtype == np.float32 for v in values)


def _empty(meta: TensorMeta) -> np.ndarray:
    """A fresh result in the meta's layout (PyTorch's strides), for kernels to write."""
    if meta.memory_format is channels_last and len(meta.shape) == 4:
        n, c, h, w = meta.shape
        return np.empty((n, h, w, c), np.float32).transpose(0, 3, 1, 2)
    return np.empty(meta.shape, np.float32)


# --- convolution ---------------------------------------------------------------------------

def _conv_fn(w: np.ndarray, bias, stride, pads, dilation):
    from ..codegen.llvm.implicit_conv import ConvGeometry, PreparedConv
    geometry = ConvGeometry(tuple(w.shape[2:]), tuple(stride), tuple(pads), tuple(dilation))
    return PreparedConv(w, bias, geometry)


def _conv_forward(op, args, meta):
    if op.name == "conv2d":
        x, w, b, stride, padding, dilation, groups = args
        transposed = False
    else:
        x, w, b, stride, padding, dilation, transposed, _, groups = args
    if transposed or groups != 1 or w.ndim != 4 or x.ndim != 4 or not _f32(x, w) or \
            (b is not None and not _f32(b)):
        return None
    p = ConvParams(2, stride, padding, dilation, False, 0, groups, tuple(w.shape))

    def run(args):
        x, w, b = args[0]._array, args[1]._array, args[2]
        out = _empty(meta)
        _conv_fn(w, None if b is None else b._array, p.stride, p.pads, p.dilation)(x, out)
        return out
    return run


def _conv_backward_input(op, args, meta):
    """dx as a stride-1 convolution of grad_output with the weight rotated 180 degrees
    and its channel dims swapped. A strided forward (dilation 1) splits dx into its
    stride*stride phases (polyphase): the rows r, r+s, r+2s, ... of dx receive only the
    taps i = r+p (mod s), so each phase is its own stride-1 convolution of grad_output
    with that sub-kernel, written into a strided view of dx; no zero-stuffed copy of
    grad_output and no multiply by an inserted zero. Other strided forwards (dilation >
    1) convolve grad_output zero-stuffed between rows and columns."""
    g, w, input_size, stride, padding, dilation, transposed, _, groups = args
    if transposed or groups != 1 or w.ndim != 4 or g.ndim != 4 or not _f32(g, w):
        return None
    p = ConvParams(2, stride, padding, dilation, False, 0, groups, tuple(w.shape))
    in_hw = tuple(input_size[2:])
    if any(s != 1 for s in p.stride) and p.dilation == (1, 1):
        return _conv_backward_input_phases(p, g.shape, w.shape, in_hw, meta)
    k, out_hw = w.shape[2:], g.shape[2:]
    stuffed = tuple((o - 1) * s + 1 for o, s in zip(out_hw, p.stride))
    pads = tuple((d * (n - 1) - lo, size + lo - st)
                 for (lo, _), d, n, size, st in zip(p.pads, p.dilation, k, in_hw, stuffed))
    if any(v < 0 for pair in pads for v in pair):
        return None
    strided = any(s != 1 for s in p.stride)

    def run(args):
        g, w = args[0]._array, args[1]._array
        if strided:
            full = np.zeros(g.shape[:2] + stuffed, np.float32)
            full[:, :, ::p.stride[0], ::p.stride[1]] = g
            g = full
        w_rot = w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]
        out = _empty(meta)
        _conv_fn(w_rot, None, (1, 1), pads, p.dilation)(g, out)
        return out
    return run


def _input_phase(r, size, k, s, pad, g_len):
    """One dimension of one dx phase (rows r, r+s, ... of a size-long input) for a
    forward of kernel k, stride s, low padding pad, dilation 1: (taps, from largest i,
    the grad_output slice, its (low, high) padding, the phase's length), or None when no
    tap or no grad_output row reaches the phase. Row s*a+r receives g[a + q] * w[i] for
    the taps i = r+pad (mod s), q = (r+pad-i)/s, q growing by 1 as i falls by s."""
    taps = [i for i in range(k - 1, -1, -1) if (r + pad - i) % s == 0]
    length = len(range(r, size, s))
    if not taps or not length:
        return None
    q_min = (r + pad - taps[0]) // s
    q_end = q_min + length + len(taps) - 1          # one past the last g row read
    start, end = max(0, q_min), min(g_len, q_end)
    if end <= start:
        return None
    return taps, slice(start, end), (start - q_min, q_end - end), length


def _conv_backward_input_phases(p, g_shape, w_shape, in_hw, meta):
    k, s, lows, g_hw = w_shape[2:], p.stride, (p.pads[0][0], p.pads[1][0]), g_shape[2:]
    phases = []
    for r0 in range(s[0]):
        for r1 in range(s[1]):
            rows = _input_phase(r0, in_hw[0], k[0], s[0], lows[0], g_hw[0])
            cols = _input_phase(r1, in_hw[1], k[1], s[1], lows[1], g_hw[1])
            if rows is not None and cols is not None:
                phases.append(((r0, r1), rows, cols))

    def run(args):
        g, w = args[0]._array, args[1]._array
        out = _empty(meta)
        covered = sum(len(rows[0]) * len(cols[0]) for _, rows, cols in phases)
        if covered < k[0] * k[1] or len(phases) < s[0] * s[1]:
            out[...] = 0            # rows no tap reaches (a 1x1 kernel's odd rows)
        # channels-last grad_output: every phase reads whole channel runs, no copy each
        g = np.ascontiguousarray(g.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        for (r0, r1), (t0, sl0, pad0, _), (t1, sl1, pad1, _) in phases:
            sub = w[:, :, t0][:, :, :, t1].transpose(1, 0, 2, 3)
            conv = _conv_fn(sub, None, (1, 1), (pad0, pad1), (1, 1))
            conv(g[:, :, sl0, sl1], out[:, :, r0::s[0], r1::s[1]])
        return out
    return run


def _conv_backward_weight(op, args, meta):
    """dw[f, c, i, j] = sum over n, oh, ow of g[n, f, oh, ow] * x_pad[n, c, oh*s + i*d,
    ow*s + j*d]: a convolution of x (channels as batch, batch as channels) with g as the
    weight, the forward's stride as dilation and its dilation as stride. A strided
    forward (dilation 1) splits x_pad into its stride*stride phases instead: the taps
    i = r (mod s) read only x_pad's rows r, r+s, ..., so each phase is a stride-1,
    dilation-1 convolution of that phase of x with g, whose kernel rows are contiguous
    runs (a dilated g would make every tap its own short run); g is packed once."""
    g, x, weight_size, stride, padding, dilation, transposed, _, groups = args
    if transposed or groups != 1 or len(weight_size) != 4 or x.ndim != 4 or \
            not _f32(g, x):
        return None
    p = ConvParams(2, stride, padding, dilation, False, 0, groups, tuple(weight_size))
    kh, kw = weight_size[2:]
    if any(s != 1 for s in p.stride) and p.dilation == (1, 1):
        return _conv_backward_weight_phases(p, g.shape, x.shape, tuple(weight_size), meta)

    def run(args):
        g, x = args[0]._array, args[1]._array
        xt = x.transpose(1, 0, 2, 3)                       # (C, N, H, W)
        gt = g.transpose(1, 0, 2, 3)                       # (F, N, OH, OW): the "weight"
        n_c, n_f = x.shape[1], g.shape[1]
        full = [(xt.shape[2 + i] + sum(p.pads[i]) - p.stride[i] * (g.shape[2 + i] - 1) - 1)
                // p.dilation[i] + 1 for i in range(2)]
        res = np.empty((n_c, n_f, full[0], full[1]), np.float32)
        _conv_fn(gt, None, p.dilation, p.pads, p.stride)(xt, res)
        out = _empty(meta)
        out[...] = res[:, :, :kh, :kw].transpose(1, 0, 2, 3)
        return out
    return run


def _weight_phase(r, size, k, s, pad, g_len):
    """One dimension of one dw phase: taps i = r, r+s, ... (m of them) read x_pad rows
    s*(o+m) + r, i.e. x rows s*a + r - pad for a in [0, g_len + m - 1). Returns (the x
    slice, its (low, high) padding, m) or None when no tap or no x row is in the phase."""
    m = len(range(r, k, s))
    if not m:
        return None
    need = g_len + m - 1
    a_lo = max(0, -((r - pad) // s))                # first a whose x row is >= 0
    a_hi = min(need, -(-(size - r + pad) // s))     # one past the last a inside x
    if a_hi <= a_lo:
        return None
    first = s * a_lo + r - pad
    return slice(first, first + s * (a_hi - a_lo - 1) + 1, s), (a_lo, need - a_hi), m


def _conv_backward_weight_phases(p, g_shape, x_shape, w_shape, meta):
    s, lows, g_hw = p.stride, (p.pads[0][0], p.pads[1][0]), g_shape[2:]
    phases = []
    for r0 in range(s[0]):
        for r1 in range(s[1]):
            rows = _weight_phase(r0, x_shape[2], w_shape[2], s[0], lows[0], g_hw[0])
            cols = _weight_phase(r1, x_shape[3], w_shape[3], s[1], lows[1], g_hw[1])
            if rows is not None and cols is not None:
                phases.append(((r0, r1), rows, cols))

    def run(args):
        g, x = args[0]._array, args[1]._array
        out = _empty(meta)
        if sum(rows[2] * cols[2] for _, rows, cols in phases) < w_shape[2] * w_shape[3]:
            out[...] = 0            # taps that read only padding
        xt = x.transpose(1, 0, 2, 3)                       # (C, N, H, W): C as the batch
        shared = _conv_fn(g.transpose(1, 0, 2, 3), None, (1, 1), ((0, 0), (0, 0)), (1, 1))
        for (r0, r1), (sl0, pad0, m0), (sl1, pad1, m1) in phases:
            conv = copy.copy(shared)                       # g's packed panels, shared
            conv.geometry = dataclasses.replace(shared.geometry, padding=(pad0, pad1))
            res = np.empty((x.shape[1], g.shape[1], m0, m1), np.float32)
            conv(xt[:, :, sl0, sl1], res)
            out[:, :, r0::s[0], r1::s[1]] = res.transpose(1, 0, 2, 3)
        return out
    return run


# --- GEMM ----------------------------------------------------------------------------------

def _gemm(a, b, out, beta=0.0):
    from ..codegen.llvm.gemm import gemm
    gemm(a, b, out, beta=beta)


def _linear(op, args, meta):
    x, w, b = args
    if not _f32(x, w) or w.ndim != 2 or x.ndim < 1 or (b is not None and not _f32(b)):
        return None

    def run(args):
        x, w, b = args[0]._array, args[1]._array, args[2]
        x2 = x.reshape(-1, x.shape[-1])
        out = np.empty((x2.shape[0], w.shape[0]), np.float32)
        if b is not None:
            out[...] = b._array
        _gemm(x2, w.T, out, beta=1.0 if b is not None else 0.0)
        return out.reshape(meta.shape)
    return run


def _mm(op, args, meta):
    a, b = args[0], args[1]
    if not _f32(a, b) or a.ndim != 2 or b.ndim != 2:
        return None

    def run(args):
        out = np.empty(meta.shape, np.float32)
        _gemm(args[0]._array, args[1]._array, out)
        return out
    return run


def _matmul(op, args, meta):
    a, b = args
    if _f32(a, b) and a.ndim == 3 and b.ndim == 3 and a.shape[0] == b.shape[0]:
        return _bmm(op, args, meta)         # attention's per-head products
    if not _f32(a, b) or b.ndim != 2 or a.ndim < 2:
        return None

    def run(args):
        a, b = args[0]._array, args[1]._array
        a2 = a.reshape(-1, a.shape[-1])
        out = np.empty((a2.shape[0], b.shape[1]), np.float32)
        _gemm(a2, b, out)
        return out.reshape(meta.shape)
    return run


def _bmm(op, args, meta):
    a, b = args
    if not _f32(a, b) or a.ndim != 3 or b.ndim != 3:
        return None

    def run(args):
        from ..codegen.llvm.gemm import gemm_batched
        out = np.empty(meta.shape, np.float32)
        gemm_batched(args[0]._array, args[1]._array, out)
        return out
    return run


def _addmm(op, args, meta):
    bias, a, b, beta, alpha = args
    if not _f32(bias, a, b) or a.ndim != 2 or b.ndim != 2 or alpha != 1 or \
            isinstance(beta, complex):
        return None

    def run(args):
        bias, a, b, beta = args[0]._array, args[1]._array, args[2]._array, args[3]
        out = np.empty(meta.shape, np.float32)
        out[...] = bias * np.float32(beta) if beta != 1 else bias
        _gemm(a, b, out, beta=1.0 if beta != 0 else 0.0)
        return out
    return run


# --- max pooling over tiled windows ----------------------------------------------------------

def _max_pool_tiles(op, args, meta):
    """kernel == stride, no padding or dilation (MaxPool2d(2)): the windows tile the
    input, so they are a reshape of it rather than a padded strided gather. Same argmax
    over the same window order as the reference: the same values, ties and NaNs."""
    x = args[0]
    if not isinstance(x, Tensor) or x._array.dtype not in (np.float32, np.float64) or \
            x.ndim != 4:
        return None
    from ..ir.ops.pooling import PoolParams
    p = PoolParams(x, *args[1:6])
    if p.k != p.s or any(p.p) or p.d != (1, 1):
        return None
    (kh, kw), (oh, ow) = p.k, p.out
    with_indices = op.name == "max_pool2d_with_indices"

    def run(args):
        # a running maximum over the kh*kw strided slices (no gathered copy of the
        # windows): NaN propagates, as the reference's argmax picks a window's NaN
        a = args[0]._array
        slices = [a[:, :, i:i + oh * kh:kh, j:j + ow * kw:kw]
                  for i in range(kh) for j in range(kw)]
        best = np.array(slices[0])
        for view in slices[1:]:
            np.maximum(best, view, out=best)
        if not with_indices:
            return best
        # argmax's index: the first slice holding the maximum (or, in a NaN window, the
        # first NaN); masked arithmetic, as np.copyto(..., where=) is ~20x slower
        nan_windows = bool(np.isnan(best).any())
        found = slices[0] == best
        if nan_windows:
            found |= np.isnan(slices[0])
        which = np.zeros(best.shape, np.int64)
        for k in range(1, len(slices)):
            first = slices[k] == best
            if nan_windows:
                first |= np.isnan(slices[k])
            first &= ~found
            which += first * k
            found |= first
        ki = which // kw
        kj = which - ki * kw
        row = np.arange(oh)[:, None] * kh + ki
        col = np.arange(ow)[None, :] * kw + kj
        return best, row * x.shape[3] + col
    run.impl = "numpy-tiles"
    return run


def _max_pool_shifted(op, args, meta):
    """Values of any float max pooling (overlapping windows, padding, dilation,
    ceil_mode) as a running np.maximum over the KH*KW strided slices of the padded
    input: KH*KW passes over the output instead of a gathered window copy and an
    argmax. NaN propagates as in the reference (whose argmax picks a NaN first)."""
    x = args[0]
    if not isinstance(x, Tensor) or x._array.dtype not in (np.float32, np.float64) or \
            x.ndim != 4:
        return None
    from ..ir.ops.pooling import PoolParams
    p = PoolParams(x, *args[1:6])
    (oh, ow), (sh, sw), (dh, dw) = p.out, p.s, p.d
    pads = [(0, 0), (0, 0)]
    for i in range(2):
        need = (p.out[i] - 1) * p.s[i] + p.d[i] * (p.k[i] - 1) + 1
        pads.append((p.p[i], max(need - p.p[i] - x.shape[2 + i], 0)))

    def run(args):
        a = args[0]._array
        if any(lo or hi for lo, hi in pads):
            a = np.pad(a, pads, constant_values=-np.inf)
        out = None
        for i in range(p.k[0]):
            for j in range(p.k[1]):
                view = a[:, :, i * dh:i * dh + (oh - 1) * sh + 1:sh,
                         j * dw:j * dw + (ow - 1) * sw + 1:sw]
                if out is None:
                    out = np.array(view)
                else:
                    np.maximum(out, view, out=out)
        return out
    run.impl = "numpy-shifts"
    return run


def _max_pool(op, args, meta):
    tiles = _max_pool_tiles(op, args, meta)
    if tiles is not None or op.name != "max_pool2d":
        return tiles
    return _max_pool_shifted(op, args, meta)


def _quantize_per_tensor(op, args, meta):
    """quantize_per_tensor of a contiguous float32 tensor to quint8/qint8 natively
    (codegen/llvm/qelementwise.py): the reference's arithmetic step for step, so the
    kernel is `exact` and taken without measuring."""
    from ..codegen.llvm import qelementwise as QE
    from ..ir import dtypes
    from ..ir.quantized import QuantizedArray
    x, scale, zero_point, dtype = args
    dtype = dtypes.as_dtype(dtype)
    if not (_f32(x) and x._array.flags.c_contiguous and dtype in (dtypes.quint8, dtypes.qint8)
            and QE.available()):
        return None

    def kernel(call_args):
        x, scale, zero_point = call_args[0], float(call_args[1]), int(call_args[2])
        values = QE.quantize(x._array, scale, zero_point, dtype.np_dtype)
        return QuantizedArray(values, dtype, scale, zero_point)
    kernel.exact = True
    return kernel


# relu natively from _MIN_WORK float32 elements (its work: one per element): below, NumPy's
# maximum (0.3 ns an element here, 4x a copy) is done before the kernel path's few
# microseconds of Python pay off


def _relu(op, args, meta):
    """relu of a contiguous float32 tensor natively (codegen/llvm/qelementwise.py
    relu_f32: np.maximum(x, 0)'s values bit for bit, so `exact`): a dynamically
    quantized model's float relu between its int8 layers, 80 -> 20 us at 64 x 4096."""
    from ..codegen.llvm import qelementwise as QE
    x = args[0]
    if not (_f32(x) and x._array.flags.c_contiguous and QE.available()):
        return None

    def kernel(call_args):
        a = call_args[0]._array
        return QE.relu_f32(a) if a.flags.c_contiguous else op.reference(a)
    kernel.exact = True
    return kernel


_CANDIDATES: dict[str, Callable] = {
    "quantize_per_tensor": _quantize_per_tensor, "relu": _relu,
    "max_pool2d": _max_pool, "max_pool2d_with_indices": _max_pool_tiles,
    "conv2d": _conv_forward, "convolution": _conv_forward,
    "convolution_backward_input": _conv_backward_input,
    "convolution_backward_weight": _conv_backward_weight,
    "linear": _linear, "mm": _mm, "matmul": _matmul, "bmm": _bmm, "addmm": _addmm,
}


def _work(op, args, meta) -> int:
    """Multiply-adds, roughly: output elements times the reduced length."""
    if op.name.startswith("max_pool") or op.name == "relu":
        return int(np.prod(args[0].shape))
    out = int(np.prod(meta.shape))
    if op.name.startswith("conv"):
        if op.name == "convolution_backward_weight":
            return out * int(np.prod(args[0].shape[2:])) * args[0].shape[0]
        w = args[1]
        return out * int(np.prod(w.shape[1:])) if op.name != \
            "convolution_backward_input" else out * w.shape[0] * int(np.prod(w.shape[2:]))
    shape = args[0].shape if op.name != "addmm" else args[1].shape
    return out * (shape[-1] if len(shape) else 1)      # a 0-d operand (quantize_per_tensor)


def candidate(op, args: tuple, meta) -> Callable | None:
    """A native kernel for this call, or None (then the NumPy reference runs)."""
    make = _CANDIDATES.get(op.name)
    if make is None:
        return None
    try:
        kernel = make(op, args, meta)
    except Exception:  # noqa: BLE001 - arguments a kernel cannot take: the reference runs
        return None
    if kernel is None or _work(op, args, meta) < _MIN_WORK:
        return None
    return kernel


def _dtype_of(args) -> str:
    return next((a.dtype.name for a in args if isinstance(a, Tensor)), "-")


def _layout_class(op, args) -> tuple:
    """How CHOICES groups calls: the tensor arguments' shapes (the benchmark's table)."""
    return tuple(tuple(a.shape) for a in args if isinstance(a, Tensor))


def _all_close(got, expected) -> bool:
    if isinstance(expected, (tuple, list)):
        return len(got) == len(expected) and all(map(_all_close, got, expected))
    got, expected = np.asarray(got), np.asarray(expected)
    if got.shape != expected.shape:
        return False
    if expected.dtype.kind in "iub":
        return bool(np.array_equal(got, expected))
    scale = max(1.0, float(np.abs(expected).max())) if expected.size else 1.0
    return bool(np.allclose(got, expected, rtol=_RTOL, atol=_ATOL * scale, equal_nan=True))


def _clock(fn):
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


def _race(kernel, reference):
    """(reference's result, kernel's result, best reference time, best kernel time):
    the two run alternately, so a burst of load on a shared machine hits both sides;
    a kernel that is still >4x slower after a round (and slow in absolute terms)
    stops early."""
    expected, t_ref = _clock(reference)
    kernel()                                             # first call compiles/packs
    got, t_kernel = None, float("inf")
    for _ in range(_RUNS):
        value, t = _clock(kernel)
        got = value if got is None else got
        t_kernel = min(t_kernel, t)
        if t_kernel > 4 * t_ref and t_kernel > 0.05:
            break
        t_ref = min(t_ref, _clock(reference)[1])
    return expected, got, t_ref, t_kernel


def choose(op, args: tuple, kernel: Callable, reference: Callable):
    """Race the kernel against the reference on the real inputs (alternating calls, best
    of three each) and compare their values; returns (this call's result, the kernel
    to keep or None)."""
    key = (op.name, _dtype_of(args), _layout_class(op, args))
    try:
        expected, got, t_ref, t_kernel = _race(lambda: kernel(args), reference)
        close = _all_close(got, expected)
    except Exception as err:  # noqa: BLE001 - a kernel failure keeps the reference
        CHOICES[key] = {"kernel": "reference",
                        "why": f"kernel failed: {type(err).__name__}: {err}"[:120]}
        return reference(), None
    # deterministic mode: a choice by timing would make results (the summation order)
    # depend on the machine's load, so the generated kernel (fixed order by construction)
    # is kept whenever its values agree
    faster = t_kernel < _MARGIN * t_ref or determinism.enabled()
    use = close and faster
    impl = getattr(kernel, "impl", "llvm")
    why = ("values differ: kept the reference" if not close else
           "deterministic mode: chosen without timing" if determinism.enabled() else "")
    CHOICES[key] = {"kernel": impl if use else "reference", "kernel_ms": t_kernel * 1e3,
                    "reference_ms": t_ref * 1e3, "candidate": impl, "why": why}
    return (got if use else expected), (kernel if use else None)


def choices() -> list[dict]:
    return [{"op": k[0], "dtype": k[1], "shapes": k[2], **v} for k, v in CHOICES.items()]


def print_choices() -> None:
    rows = choices()
    if not rows:
        return
    print(f"\neager kernel choices ({len(rows)}; measured on first use of each shape):")
    for r in rows:
        shapes = " ".join("x".join(map(str, s)) for s in r["shapes"])
        times = (f"{r['candidate']} {r['kernel_ms']:.2f} ms, reference (NumPy) "
                 f"{r['reference_ms']:.2f} ms" if "kernel_ms" in r else "")
        print(f"  {r['op']:<28} {r['dtype']:<8} {shapes:<40} -> {r['kernel']:<11} {times} "
              f"{r['why']}")
