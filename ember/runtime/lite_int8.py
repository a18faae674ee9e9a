"""The host side of ember's int8 kernels (codegen/llvm/qgemm.py, qgemm_amx.py,
qelementwise.py): how a quantized GEMM/convolution reads its uint8 input (the implicit
im2col as a gather of byte runs), packs its weights and calls the kernel, and the NumPy
steps around it (quantize, dequantize, pooling, reshapes). Eager mode
(codegen/quantized.py) and quantized artifacts (compiler/aot_quantized.py; the step
classes at the end) run this one copy of the code.

Like runtime/lite.py it needs only numpy, ctypes and the standard library, so an artifact
runs without the compiler.
"""
from __future__ import annotations

import ctypes
import functools
import math
import os
import queue
import threading
import time

import numpy as np

try:
    from ..ir.errors import ArtifactError
except ImportError:          # loaded on its own, beside lite.py
    class ArtifactError(Exception):
        """A corrupt or mismatched artifact (ember.ArtifactError inside the package)."""

I64, PTR, I32 = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int32
_ALIGN = 64      # bytes: the alignment artifacts and the kernels' packed data use


def cpu_count() -> int:
    """Threads for this file's own pool (loaded on its own, beside lite.py): as lite.py
    sizes the artifact's native pool, EMBER_NUM_THREADS, else the cores we may use."""
    forced = os.environ.get("EMBER_NUM_THREADS")
    if forced:
        return max(1, int(forced))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def aligned_empty(count: int, dtype, zeros: bool = False) -> np.ndarray:
    dtype = np.dtype(dtype)
    raw = (np.zeros if zeros else np.empty)(max(count, 1) * dtype.itemsize + _ALIGN, np.uint8)
    start = (-raw.ctypes.data) % _ALIGN
    return raw[start:start + count * dtype.itemsize].view(dtype)


def aligned_copy(a: np.ndarray) -> np.ndarray:
    out = aligned_empty(a.size, a.dtype).reshape(a.shape)
    out[...] = a
    return out


def split_range(n: int, parts: int, align: int = 1) -> list:
    """runtime/threads.py's split: at most `parts` chunks starting on multiples of align."""
    blocks = -(-n // align)
    parts = max(1, min(parts, blocks))
    bounds = [min(n, (blocks * i // parts) * align) for i in range(parts + 1)]
    return [(b, e) for b, e in zip(bounds, bounds[1:]) if e > b]


class Pool:
    """Worker threads running native chunks (a ctypes call releases the GIL)."""

    def __init__(self, n_threads: int):
        self.n_threads = n_threads
        self._queues = [queue.SimpleQueue() for _ in range(n_threads - 1)]
        for q in self._queues:
            threading.Thread(target=self._work, args=(q,), daemon=True).start()

    @staticmethod
    def _work(q) -> None:
        while True:
            fn, args, done, errors = q.get()
            try:
                fn(*args)
            except BaseException as e:    # re-raised by the caller
                errors.append(e)
            done.set()

    def parallel_for(self, fn, n: int, *args, align: int = 1, max_threads=None) -> None:
        threads = min(self.n_threads, max_threads or self.n_threads)
        chunks = split_range(n, threads, align)
        if n <= 0:
            return
        waits, errors = [], []
        for q, (b, e) in zip(self._queues, chunks[1:]):
            done = threading.Event()
            q.put((fn, (b, e, len(waits) + 1, *args), done, errors))
            waits.append(done)
        b, e = chunks[0]
        fn(b, e, 0, *args)
        for done in waits:
            done.wait()
        if errors:
            raise errors[0]


def default_pool() -> Pool:
    global _POOL
    if _POOL is None:
        _POOL = Pool(cpu_count())
    return _POOL


def _address(lib, symbol: str) -> int:
    """The address of `symbol` in the artifact's library (for a typed CFUNCTYPE)."""
    try:
        return ctypes.cast(getattr(lib, symbol), ctypes.c_void_p).value
    except AttributeError:
        raise ArtifactError(f"the artifact's library has no symbol {symbol!r}") from None


_POOL = None


# --- quantized (int8) steps ---------------------------------------------------------------------
# The host side of the int8 kernels (codegen/llvm/qgemm.py, qelementwise.py), shared with
# the in-process eager path (codegen/quantized.py calls these drivers), so the artifact
# computes exactly what eager mode computes. Values are plain integer arrays here; each
# step's description carries the qparams its operands and result have (static in a
# converted graph).

# the int64 parameter block of the qgemm kernels (pointers as addresses)
QGEMM_BASE_FIELDS = ("a", "m", "ohw", "ow", "img_stride", "row_stride", "col_stride", "kq",
                     "offs", "packed", "n_blocks", "m_tiles", "nb_outer", "out", "ldo", "corr",
                     "mult", "bias", "qparams")
# the vector kernels' block adds their schedule: chunk > 0 makes every thread claim `chunk`
# tasks at a time from the shared counter (an atomic add on the block's own "counter"
# word) until none are left, so a thread that starts late or is descheduled on a shared
# host leaves its work to the others; chunk == 0 runs the thread's [t_begin, t_end) (what
# a kernel built before the schedule existed does, ignoring these words). n_valid: the
# output's columns; the kernel stores no column past it, so the output rows are n_valid
# wide (ldo = n_valid: no padding to strip)
# other: the fused residual add's second operand (qgemm_u8_add; [M, n_valid] uint8)
# origin ... zp_row: a convolution's padding read in the kernel (conv_gather_unpadded;
# qgemm.py's docstring): the window origin's offset at output (0, 0), the output rows and
# columns whose windows lie inside the image, the image's size, padding, stride, row
# dilation, kernel rows, k groups per kernel row, row pitch, bytes per pixel, kernel
# width, a row of the zero point. oy_hi = ox_hi = 2**62 (every tile inside) for inputs
# the host padded and linear layers; a kernel built before them ignores them
QGEMM_PAD_FIELDS = ("origin", "oy_lo", "oy_hi", "ox_lo", "ox_hi", "in_h", "in_w", "pad_top",
                    "pad_left", "stride_h", "stride_w", "dil_h", "kh", "run_q", "pitch",
                    "pix", "span_w", "zp_row")
QGEMM_FIELDS = QGEMM_BASE_FIELDS + ("chunk", "counter", "n_valid", "other") + QGEMM_PAD_FIELDS
_NO_PAD = {"origin": 0, "oy_lo": 0, "oy_hi": 1 << 62, "ox_lo": 0, "ox_hi": 1 << 62,
           "in_h": 0, "in_w": 0, "pad_top": 0, "pad_left": 0, "stride_h": 1, "stride_w": 1,
           "dil_h": 1, "kh": 0, "run_q": 0, "pitch": 0, "pix": 0, "span_w": 0, "zp_row": 0}
# the most bytes of kernel-row runs (kh * run) and kernel rows a kernel pads itself: its
# border tiles copy a row's runs into a stack buffer of this size per tile row and keep
# a pointer per (tile row, kernel row) (qgemm.py: RUN_MAX, KH_MAX)
QGEMM_PAD_RUN_MAX = 4096
QGEMM_PAD_KH_MAX = 16
CLAIMS_PER_THREAD = 8     # claims per thread on average: balance against locality
# QGemmCall(claim=GUIDED): claims shrink towards the end (the chunk word holds minus the
# thread count; codegen/llvm/qgemm.py guided_claim), for kernels that read it so (this
# package's own; an artifact's kernel may predate it and gets fixed chunks)
GUIDED = "guided"
QGEMM_TYPE = ctypes.CFUNCTYPE(None, I64, I64, I64, PTR)

# below this many bytes a step's result is a plain NumPy array: malloc serves it from the
# heap (glibc maps fresh pages only from its mmap threshold, 128 KiB at least), where the
# caching allocator's block costs 3-4 us of Python a call (a quantized Linear's output)
_MALLOC_BYTES = 1 << 17

try:       # in the ember package: buffers from the caching allocator (a fresh large array
    from .allocator import default_allocator     # costs its page faults on every call)

    def _empty(shape, dtype) -> np.ndarray:
        shape = tuple(map(int, shape))      # math.prod: np.prod costs 2 us a call
        count = math.prod(shape)
        if count * np.dtype(dtype).itemsize < _MALLOC_BYTES:
            return np.empty(shape, dtype)
        return default_allocator().empty(count, dtype).reshape(shape)
    from .threads import default_pool as _host_pool
except ImportError:      # loaded on its own
    def _empty(shape, dtype) -> np.ndarray:
        return np.empty(shape, dtype)

    _host_pool = None


# readable bytes every int8 kernel output has past its end: the depthwise kernel's last
# 32-channel block may read that far past a channels-last input (depthwise_slack), so it
# reads a convolution's result in place whatever its channel count
OUT_SLACK = 64


def _empty_out(shape, dtype) -> np.ndarray:
    """_empty with OUT_SLACK readable bytes past the array's end."""
    shape, dtype = tuple(map(int, shape)), np.dtype(dtype)
    count = math.prod(shape)
    extra = -(-OUT_SLACK // dtype.itemsize)
    return _empty((count + extra,), dtype)[:count].reshape(shape)


class _OutMaker:
    """_empty_out(shape, dtype) for one shape, its sizes worked out once (a prepared
    GEMM's output every call: ~2 us of shape arithmetic less a call)."""
    __slots__ = ("shape", "dtype", "count", "total", "small")

    def __init__(self, shape, dtype):
        self.shape, self.dtype = tuple(map(int, shape)), np.dtype(dtype)
        self.count = math.prod(self.shape)
        self.total = self.count + -(-OUT_SLACK // self.dtype.itemsize)
        self.small = self.total * self.dtype.itemsize < _MALLOC_BYTES

    def __call__(self) -> np.ndarray:
        if self.small or _host_pool is None:    # as _empty: malloc's heap, or no package
            flat = np.empty(self.total, self.dtype)
        else:
            flat = default_allocator().empty(self.total, self.dtype)
        return flat[:self.count].reshape(self.shape)


def address(a: np.ndarray) -> int:
    """a's data address, as a.ctypes.data, in a fifth of its time (0.2-0.4 us against
    1.2-1.4: a per-call GEMM reads three) through the buffer protocol where a is a
    writable contiguous non-empty array; a.ctypes.data otherwise."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(a))
    except (TypeError, ValueError, BufferError):
        return a.ctypes.data


def readable_past_end(a: np.ndarray) -> int:
    """Bytes past a's last element that belong to the memory a views (its root array's,
    or the caching allocator's block): 0 where that is unknown."""
    root = a
    while isinstance(root, np.ndarray) and root.base is not None:
        root = root.base
    raw = getattr(root, "_raw", root)        # an allocator block (runtime/allocator.py)
    if not isinstance(raw, np.ndarray):
        return 0
    return raw.ctypes.data + raw.nbytes - (a.ctypes.data + a.nbytes)


def host_pool():
    """The thread pool host code splits work over: ember's (runtime/threads.py) inside
    the package, this file's own when loaded on its own."""
    return _host_pool() if _host_pool is not None else default_pool()


def _over_images(n: int, fn) -> None:
    """fn(begin, end) over image ranges of [0, n) on the thread pool (NumPy's copies and
    ufuncs release the GIL, so the pool's threads share the work)."""
    host_pool().parallel_for(lambda begin, end, worker: fn(begin, end), n)
QADD_CHUNK = 1 << 14
# below this many elements an elementwise int8 pass runs on the calling thread: waking a
# worker costs about as much as the whole pass (quantizing 64 x 1024 floats took 28 us
# on one thread and 94 us split over two)
ELEMENTWISE_PARALLEL_MIN = 1 << 18


# a GEMM of fewer multiply-adds runs on the calling thread (about 10 us of work: less
# than handing half of it to a worker; a 64 x 32 x 10 classifier took 47 us on one thread
# and 90 us on two)
GEMM_PARALLEL_MIN_MACS = 1 << 22


def _elementwise_threads(size: int):
    """max_threads for an elementwise pass over `size` elements (None: the pool's)."""
    return 1 if size < ELEMENTWISE_PARALLEL_MIN else None
QADD_TYPE = ctypes.CFUNCTYPE(None, I64, I64, I64, PTR, PTR, PTR, I64, PTR)


class Gather:
    """Where a qgemm's A rows are: row m's k group kk is at buffer + row_base(m) + offs[kk],
    row_base(m) = img * img_stride + oy * row_stride + ox * col_stride ((img, oy, ox) from
    m over the output image). A linear layer: ohw = ow = 1, rows img_stride apart."""

    def __init__(self, buffer, m, offs, ohw=1, ow=1, img_stride=0, row_stride=0, col_stride=0,
                 seg_offs=None, seg_len=0, pad=None):
        self.buffer, self.m, self.offs = buffer, m, offs
        # the padding read in the kernel (conv_gather_unpadded): QGEMM_PAD_FIELDS' values
        self.pad = pad
        self.ohw, self.ow = ohw, ow
        self.img_stride, self.row_stride, self.col_stride = img_stride, row_stride, col_stride
        # the same k bytes as contiguous segments (seg_len bytes at each of seg_offs), for
        # kernels that copy rows whole (AMX)
        self.seg_offs = np.zeros(1, np.int64) if seg_offs is None else seg_offs
        self.seg_len = seg_len or 4 * len(offs)


def linear_gather(a: np.ndarray, kq: int) -> Gather:
    """Rows of a uint8 [M, K] matrix (copied, zero padded, when K is not kq * 4 or the rows
    are not contiguous)."""
    m, k = a.shape
    if k != kq * 4 or not a.flags.c_contiguous:
        padded = np.zeros((m, kq * 4), np.uint8)
        padded[:, :k] = a
        a = padded
    return Gather(a, m, np.arange(kq, dtype=np.int64) * 4, img_stride=a.shape[1])


def conv_output_size(h, w, kernel, stride, padding, dilation):
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    return (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1


def conv_k_layout(c: int, kw: int, dilation_w: int) -> tuple[int, int]:
    """How a convolution's k dimension reads the channels-last input: (cp, run).
    run > 0 (no dilation along W): k grouped by kernel row, each row's kw * c contiguous
    input bytes read as one run padded to `run` (a multiple of 4; the bytes past the
    window meet zero weights), channels unpadded (cp = c): the stem's 3 channels cost
    7 * 3 -> 24 bytes a row, not 7 * 4. run == 0: per tap, channels padded to cp (a
    multiple of 4)."""
    if dilation_w == 1:
        return c, -(-(kw * c) // 4) * 4
    return -(-c // 4) * 4, 0


_POOL_COPY_BYTES = 1 << 20     # padded inputs at least this big are copied on the pool


def nhwc_input(x: np.ndarray, zero_point: int, padding, cp: int, slack: int = 0,
               pack=None, pad=None) -> np.ndarray:
    """A [N, C, H, W] uint8 value as channels-last, padded with its zero point (the
    quantized 0.0) spatially and in channels up to cp, with `slack` readable bytes past
    its end; x's own memory where it already is channels-last and needs none of that.
    pack(x, dst), where given, interleaves a contiguous x of few channels (the stem's
    input) natively (pack_nhwc_run); pad(src, dst, padding, zero_point), where given,
    writes a packed input's border, and the padded copy of a channels-last x of at least
    PAD_PARALLEL_MIN_BYTES, natively over the pool (pad_nhwc_run): at two threads
    NumPy's copy ran on one thread while the other waited, and a copy from 1 MiB went to
    the pool as a Python task."""
    n, c, h, w = x.shape
    ph, pw = padding
    nhwc = x.transpose(0, 2, 3, 1)
    if ph == pw == 0 and c == cp and not slack and nhwc.flags.c_contiguous:
        return nhwc
    shape = (n, h + 2 * ph, w + 2 * pw, cp)
    size = math.prod(shape)
    flat = _empty((size + slack,), np.uint8)
    flat[size:] = zero_point
    buf = flat[:size].reshape(shape)
    packed = pack is not None and c == cp and x.flags.c_contiguous
    # smaller copies: NumPy's slice assignments (one thread; ~2 us less fixed cost)
    if pad is not None and c == cp and x.dtype == np.uint8 and (packed or (
            size >= PAD_PARALLEL_MIN_BYTES and nhwc.strides[2:] == (c, 1))):
        if ph or pw or not packed:      # a packed input without padding: no border
            pad(None if packed else nhwc, buf, (ph, pw), zero_point)
        if packed:
            pack(x, buf[:, ph:ph + h, pw:pw + w, :])
        return buf

    def fill(begin, end):
        images = buf[begin:end]
        if c != cp:
            images.fill(zero_point)
        elif ph == pw == 1:     # both border rows, then both border columns: one step each
            images[:, ::h + 1] = zero_point
            images[:, 1:h + 1, ::w + 1] = zero_point
        elif ph or pw:      # the border only: the interior is written next
            for border in (images[:, :ph], images[:, ph + h:], images[:, ph:ph + h, :pw],
                           images[:, ph:ph + h, pw + w:]):
                border.fill(zero_point)
        if not packed:
            images[:, ph:ph + h, pw:pw + w, :c] = nhwc[begin:end]
    # small copies and a packed input's border (pack writes the interior natively) on
    # this thread: the pool's dispatch of a Python fill would cost more than it splits
    # (a queued task, and a spinning worker sent back to its queue)
    if size < _POOL_COPY_BYTES or packed:
        fill(0, n)
    else:
        _over_images(n, fill)
    if packed:
        pack(x, buf[:, ph:ph + h, pw:pw + w, :])
    return buf


def conv_gather(x_nhwc: np.ndarray, kernel, stride, dilation, out_hw, run: int = 0) -> Gather:
    """A padded channels-last uint8 input [N, Hp, Wp, Cp] read as the implicit im2col of a
    convolution, k ordered (kh, kw, c) (conv_k_layout: runs of kernel rows, or taps)."""
    n, hp, wp, cp = x_nhwc.shape
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
    if run:
        segments, seg_len = np.arange(kh) * dh * wp * cp, run
    else:
        taps = (np.arange(kh)[:, None] * dh * wp + np.arange(kw)[None, :] * dw) * cp
        segments, seg_len = taps.reshape(-1), cp
    offs = segments[:, None] + np.arange(seg_len // 4)[None, :] * 4
    return Gather(x_nhwc, n * oh * ow, offs.reshape(-1).astype(np.int64), ohw=oh * ow, ow=ow,
                  img_stride=hp * wp * cp, row_stride=sh * wp * cp, col_stride=sw * cp,
                  seg_offs=segments.astype(np.int64), seg_len=seg_len)


# the largest share of output pixels whose windows leave the image for which the GEMM
# reads the padding itself. A border tile (any of its rows at an edge, or wrapping to
# the next output row) costs ~20% more than an inside one, and a 6-row tile meets an
# edge about once per output row: in a converted resnet18 at one thread (interleaved,
# thread CPU time) the 56x56 3x3 convs (7% border pixels) gained (4 x 0.13 ms of copies
# saved, +0.25 ms of GEMM), the 28x28 ones (14%) lost (0.25 saved, +0.35), the 14x14 and
# 7x7 ones lose more
PAD_IN_KERNEL_MAX_BORDER = 0.08
# the shortest kernel-row run (bytes) for which it does: a border tile's per-row work
# (a pointer per kernel row, the edge copies) is paid per kernel row, against the run's
# multiply-adds (a 1-channel 3x3 conv, 4-byte runs, went 2x slower; the stem's 24-byte
# runs are copied channels-last anyway, its padding costs no extra pass)
PAD_IN_KERNEL_MIN_RUN = 64


def pads_in_kernel(run: int, padding, in_hw, out_hw, kernel, stride, dilation) -> bool:
    """Whether the GEMM reads a convolution's padding itself (conv_gather_unpadded):
    kernel rows read as runs (no dilation along W), some padding, a run long enough to
    pay for the border tiles' per-row work and short enough for their row buffers, few
    border pixels (PAD_IN_KERNEL_MAX_BORDER)."""
    (h, w), (oh, ow), (kh, kw) = in_hw, out_hw, kernel
    if not (any(padding) and PAD_IN_KERNEL_MIN_RUN <= run and kh * run <= QGEMM_PAD_RUN_MAX
            and kh <= QGEMM_PAD_KH_MAX):
        return False
    oy_lo, oy_hi = _inside_range(h, oh, kh, stride[0], padding[0], dilation[0])
    ox_lo, ox_hi = _inside_range(w, ow, kw, stride[1], padding[1], 1)
    inside = (oy_hi - oy_lo) * (ox_hi - ox_lo)
    return oh * ow > 0 and 1 - inside / (oh * ow) <= PAD_IN_KERNEL_MAX_BORDER


def conv_gather_unpadded(x_nhwc: np.ndarray, kernel, stride, dilation, out_hw, run: int,
                         padding, zero_point: int) -> Gather:
    """conv_gather over an unpadded channels-last uint8 input [N, H, W, C] (a previous
    convolution's result read in place), the padding read in the kernel: tiles whose
    windows lie inside the image read it at the same offsets as a padded copy would give
    (less the origin), border tiles read each kernel row through a pointer of their own
    (a row of the zero point above and below the image, a copy of the run with the zero
    point outside it at the left and right edges). Run layout only (pads_in_kernel)."""
    n, h, w, c = x_nhwc.shape
    (kh, kw), (sh, sw), (dh, _), (oh, ow), (ph, pw) = kernel, stride, dilation, out_hw, padding
    pitch = w * c
    segments = np.arange(kh, dtype=np.int64) * dh * pitch
    offs = segments[:, None] + np.arange(run // 4, dtype=np.int64)[None, :] * 4
    oy_lo, oy_hi = _inside_range(h, oh, kh, sh, ph, dh)
    ox_lo, ox_hi = _inside_range(w, ow, kw, sw, pw, 1)
    zp_row = aligned_empty(-(-run // 64) * 64, np.uint8)
    zp_row.fill(zero_point)
    pad = {"origin": -(ph * pitch + pw * c), "oy_lo": oy_lo, "oy_hi": oy_hi, "ox_lo": ox_lo,
           "ox_hi": ox_hi, "in_h": h, "in_w": w, "pad_top": ph, "pad_left": pw,
           "stride_h": sh, "stride_w": sw, "dil_h": dh, "kh": kh, "run_q": run // 4,
           "pitch": pitch, "pix": c, "span_w": kw, "zp_row": zp_row}
    return Gather(x_nhwc, n * oh * ow, offs.reshape(-1), ohw=oh * ow, ow=ow,
                  img_stride=h * pitch, row_stride=sh * pitch, col_stride=sw * c,
                  seg_offs=segments, seg_len=run, pad=pad)


def qgemm_run(fn, pool, gather: Gather, packed: np.ndarray, kq: int, n: int, mr: int, nr: int,
              corr: np.ndarray, mult: np.ndarray, bias: np.ndarray, qparams, u8_out: bool,
              threads=None, claim: bool = True) -> np.ndarray:
    """One fused int8 GEMM: [M, n] uint8 (u8_out) or float32. corr (int32), mult and bias
    (float32) are per output column, padded to a multiple of nr; qparams = (factor, zero
    point, lo, hi) as float64 (codegen/llvm/qgemm.py's docstring). claim: the kernel
    claims its tasks from a shared counter (QGEMM_FIELDS), else fixed ranges."""
    call = QGemmCall(gather, packed, kq, n, mr, nr, corr, mult, bias, qparams, u8_out, claim)
    return call(fn, pool, gather.buffer, threads)


_A, _OUT = QGEMM_FIELDS.index("a"), QGEMM_FIELDS.index("out")
_CHUNK = QGEMM_FIELDS.index("chunk")
_CORR, _MULT = QGEMM_FIELDS.index("corr"), QGEMM_FIELDS.index("mult")
_BIAS = QGEMM_FIELDS.index("bias")
_OTHER = QGEMM_FIELDS.index("other")


def residual_qparams(conv_qparams, conv_scale: float, other_qparams, scale: float,
                     zero_point: int, relu: bool, hi: float = 255.0) -> tuple:
    """The 11 float64 epilogue parameters of a conv fused with the residual add that reads
    its result (qgemm_u8_add): the conv's requantization (factor, zero point, lo, hi),
    its scale, the other operand's (zero point, scale), then the add's (1/scale, zero
    point, relu floor, hi), as qadd_run makes them."""
    o_scale, o_zp = other_qparams
    inv = np.float32(1.0) / np.float32(scale)
    return tuple(float(v) for v in conv_qparams) + (
        float(conv_scale), float(o_zp), float(o_scale), float(inv), float(zero_point),
        0.0 if relu else -np.inf, float(hi))


def residual_other(other: np.ndarray) -> np.ndarray:
    """A residual operand [N, C, H, W] (or [M, C]) as the fused epilogue reads it: rows of
    channels, contiguous (a conv's channels-last result is that already: no copy)."""
    if other.ndim == 4:
        return np.ascontiguousarray(other.transpose(0, 2, 3, 1))
    return np.ascontiguousarray(other)


class QGemmCall:
    """A fused int8 GEMM's parameter block for one geometry and one set of qparams, made
    once: a call fills in only the input and output addresses (on a copy, so concurrent
    calls never share a block). Reading a NumPy array's address costs microseconds, and a
    converted model calls each layer with the same everything but its activations.

    With `claim` each of the pool's threads runs the kernel once and claims chunks of
    tasks (row tile x column block) from the block's counter, in the task order below, so
    consecutive claims share a weight panel or a row tile; without it each thread gets a
    fixed range (kernels of artifacts packaged before claiming existed). claim=GUIDED:
    claims of the same size that shrink to one task at the end (the threads finish
    within about a task of each other)."""

    def __init__(self, gather: Gather, packed: np.ndarray, kq: int, n: int, mr: int, nr: int,
                 corr: np.ndarray, mult: np.ndarray, bias: np.ndarray, qparams, u8_out: bool,
                 claim: bool = True):
        if len(gather.offs) != kq:
            raise ValueError(f"qgemm: A has {len(gather.offs) * 4} k bytes per row, the "
                             f"packed weight {kq * 4}")
        n_pad = len(corr)
        m_tiles, n_blocks = -(-gather.m // mr), n_pad // nr
        self.m, self.n, self.tasks = gather.m, n, m_tiles * n_blocks
        self.small = gather.m * n * kq * 4 < GEMM_PARALLEL_MIN_MACS
        # a claiming kernel (this file's own generation) stores only the n valid columns
        ldo = n if claim else n_pad
        self.out_shape, self.out_dtype = (m_tiles * mr, ldo), np.uint8 if u8_out else np.float32
        self._new_out = _OutMaker(self.out_shape, self.out_dtype)
        qp = np.asarray(qparams, np.float64)
        # task order: weight panels stay in cache while every row tile passes when that
        # moves fewer bytes than the other way round (n_blocks * |A| against m_tiles * |B|)
        nb_outer = n_blocks * gather.m * kq * 4 < m_tiles * packed.nbytes
        values = {"a": 0, "m": gather.m, "ohw": gather.ohw, "ow": gather.ow,
                  "img_stride": gather.img_stride, "row_stride": gather.row_stride,
                  "col_stride": gather.col_stride, "kq": kq, "offs": gather.offs.ctypes.data,
                  "packed": packed.ctypes.data, "n_blocks": n_blocks, "m_tiles": m_tiles,
                  "nb_outer": int(nb_outer), "out": 0, "ldo": ldo,
                  "corr": corr.ctypes.data, "mult": mult.ctypes.data,
                  "bias": bias.ctypes.data, "qparams": qp.ctypes.data,
                  "chunk": 0, "counter": 0, "n_valid": n, "other": 0}
        values.update(_NO_PAD)
        zp_row = None
        if gather.pad is not None:
            values.update(gather.pad)
            zp_row = gather.pad["zp_row"]
            values["zp_row"] = zp_row.ctypes.data
        self.params = np.array([values[f] for f in QGEMM_FIELDS], np.int64)
        self.claim = claim
        self._keep = (gather.offs, packed, corr, mult, bias, qp, zp_row)   # the addresses' owners
        # the block a call fills in, reused while no other call holds it (a model's layer
        # is called again only after its last call returned): no block allocated a call
        self._block = (ctypes.c_int64 * len(QGEMM_FIELDS))()
        self._block_address = ctypes.addressof(self._block)
        self._block_free = threading.Lock()
        self._params_address, self._block_bytes = self.params.ctypes.data, self.params.nbytes

    def on_one_thread(self, fn, buffer: np.ndarray, other=None) -> np.ndarray:
        """The GEMM on the calling thread alone (callers that run many small GEMMs, a
        grouped convolution's, one per thread)."""
        out = _empty_out(self.out_shape, self.out_dtype)
        params = self.params.copy()
        params[_A], params[_OUT] = buffer.ctypes.data, out.ctypes.data
        if other is not None:
            params[_OTHER] = self._other_address(other)
        fn(0, self.tasks, 0, params.ctypes.data)
        return out[:self.m, :self.n]

    def _other_address(self, other: np.ndarray) -> int:
        """The residual operand's address, checked: [m, n] uint8 rows, contiguous."""
        if other.dtype != np.uint8 or other.size != self.m * self.n or \
                not other.flags.c_contiguous:
            raise ValueError(f"qgemm: the residual operand must be {self.m} x {self.n} "
                             f"contiguous uint8, got {other.shape} {other.dtype}")
        return other.ctypes.data

    def __call__(self, fn, pool, buffer: np.ndarray, threads=None, corr=None,
                 mult=None, other=None, bias=None) -> np.ndarray:
        """The GEMM on `buffer`; corr and mult (where given: arrays shaped as the ones the
        call was made with) replace its epilogue's for this call only (a dynamic
        linear's, which change with every input's qparams), as bias does (float32, as
        long as theirs: a layer's own bias read in place). other: the residual operand
        of qgemm_u8_add (residual_other's layout)."""
        out = self._new_out()
        if self._block_free.acquire(False):
            try:        # the kept block, refilled from params (its counter word: 0)
                ctypes.memmove(self._block_address, self._params_address, self._block_bytes)
                self._run(fn, pool, self._block, self._block_address, buffer, out, threads,
                          corr, mult, other, bias)
            finally:
                self._block_free.release()
        else:           # a concurrent call of the same GEMM: a block of its own
            params = (ctypes.c_int64 * len(QGEMM_FIELDS))(*self.params.tolist())
            self._run(fn, pool, params, ctypes.addressof(params), buffer, out, threads,
                      corr, mult, other, bias)
        return out[:self.m, :self.n]

    def _run(self, fn, pool, params, params_address: int, buffer, out, threads, corr, mult,
             other, bias) -> None:
        """The kernel over the pool on a parameter block (a ctypes int64 array at
        params_address) holding self.params, this call's addresses written in."""
        params[_A], params[_OUT] = address(buffer), address(out)
        if other is not None:
            params[_OTHER] = self._other_address(other)
        if corr is not None:
            params[_CORR], params[_MULT] = address(corr), address(mult)
        if bias is not None:
            params[_BIAS] = address(bias)
        if self.small:
            threads = 1
        if self.claim:
            runners = min(pool.n_threads, threads or pool.n_threads, self.tasks)
            # guided (a kernel of qgemm.py's claim_loop with guided claims): -runners
            params[_CHUNK] = -runners if self.claim == GUIDED else \
                max(1, self.tasks // (runners * CLAIMS_PER_THREAD))
            # one kernel call per thread: [w, w + 1) only names the runner
            pool.parallel_for(fn, runners, params_address, max_threads=threads)
        else:
            pool.parallel_for(fn, self.tasks, params_address, max_threads=threads)


# depthwise convolution (codegen/llvm/qdepthwise.py): its own parameter block, the GEMM's
# epilogue fields by the same names
DW_BLOCK = 32        # channels per kernel step
# rows, chunk, counter: the claiming schedule (as QGEMM_FIELDS'); a kernel packaged
# before it existed ignores them and runs fixed row ranges (claim=False)
# origin ... zp_row: the padding read in the kernel (qdepthwise.py's docstring): the window
# origin's offset at output (0, 0), the output rows and columns whose windows are inside
# the image, stride, padding, the image's size and pitches, each tap's (row, column) from
# the origin, the zero point's row; a kernel packaged before them ignores them (its host
# pads: every pixel inside)
QDW_FIELDS = ("x", "oh", "ow", "img_stride", "row_stride", "col_stride", "taps", "tap_offs",
              "weights", "c_blocks", "out", "ldo", "corr", "mult", "bias", "qparams",
              "n_valid", "w_stride", "rows", "chunk", "counter",
              "origin", "oy_lo", "oy_hi", "ox_lo", "ox_hi", "stride_h", "stride_w",
              "pad_top", "pad_left", "h", "w", "pitch_row", "pitch_col", "tap_dy", "tap_dx",
              "zp_row")
_DW_X, _DW_OUT = QDW_FIELDS.index("x"), QDW_FIELDS.index("out")
_DW_CHUNK = QDW_FIELDS.index("chunk")


def depthwise_slack(c: int) -> int:
    """Readable bytes the depthwise kernel needs past a channels-last input of c channels
    (its last 32-channel block of the last pixel)."""
    return -(-c // DW_BLOCK) * DW_BLOCK - c


def depthwise_reads_in_place(x: np.ndarray) -> bool:
    """Whether the depthwise kernel reads the [N, C, H, W] uint8 x as it is, the padding
    in the kernel: channels-last memory (a convolution's result) whose last channel
    block can be read whole (C a multiple of 32, or readable bytes past x's end: every
    int8 kernel's output has them, OUT_SLACK)."""
    return x.ndim == 4 and x.transpose(0, 2, 3, 1).flags.c_contiguous and \
        (x.shape[1] % DW_BLOCK == 0 or
         readable_past_end(x) >= depthwise_slack(x.shape[1]))


def _inside_range(size: int, out: int, kernel: int, stride: int, pad: int,
                  dilation: int) -> tuple[int, int]:
    """[lo, hi): the output positions along a dim whose windows lie inside [0, size)."""
    lo = -(-pad // stride)
    hi = (size - 1 + pad - (kernel - 1) * dilation) // stride + 1
    lo = min(lo, out)
    return lo, max(lo, min(hi, out))


def _even_taps(taps: np.ndarray) -> np.ndarray:
    """An even count of per-tap values (the kernel takes taps in pairs): an odd count's
    last one again, against zero weights."""
    taps = taps.reshape(-1)
    return np.concatenate([taps, taps[-1:]] if taps.size % 2 else [taps]).astype(np.int64)


class QDepthwiseCall:
    """The depthwise kernel's parameter block for one channels-last input shape
    [N, H, W, C] (made once; a call fills in the input and output addresses). padding:
    read in the kernel (taps outside the image read zero_point); (0, 0) for an input
    the host padded. weights: [tap pairs, C_pad, 2] int16; corr, mult, bias: per
    channel, padded to C_pad."""

    def __init__(self, x_shape, weights: np.ndarray, kernel, stride, dilation, out_hw,
                 corr: np.ndarray, mult: np.ndarray, bias: np.ndarray, qparams,
                 claim: bool = True, padding=(0, 0), zero_point: int = 0):
        n, h, w, c = x_shape
        (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
        ph, pw = padding
        c_pad = weights.shape[1]
        self.m, self.c, self.rows = n * oh * ow, c, n * oh
        self.out_shape = (n * oh * ow, c)      # unpadded rows (the kernel masks its stores)
        dy, dx = np.arange(kh)[:, None] * dh, np.arange(kw)[None, :] * dw
        self.tap_offs = _even_taps((dy * w + dx) * c)
        self.tap_dy = _even_taps(np.broadcast_to(dy, (kh, kw)))
        self.tap_dx = _even_taps(np.broadcast_to(dx, (kh, kw)))
        self.zp_row = np.full(c_pad, zero_point, np.uint8)
        oy_lo, oy_hi = _inside_range(h, oh, kh, sh, ph, dh)
        ox_lo, ox_hi = _inside_range(w, ow, kw, sw, pw, dw)
        qp = np.asarray(qparams, np.float64)
        values = {"x": 0, "oh": oh, "ow": ow, "img_stride": h * w * c,
                  "row_stride": sh * w * c, "col_stride": sw * c, "taps": kh * kw,
                  "tap_offs": self.tap_offs.ctypes.data, "weights": weights.ctypes.data,
                  "c_blocks": c_pad // DW_BLOCK, "out": 0, "ldo": c,
                  "corr": corr.ctypes.data, "mult": mult.ctypes.data, "bias": bias.ctypes.data,
                  "qparams": qp.ctypes.data, "n_valid": c, "w_stride": c_pad,
                  "rows": self.rows, "chunk": 0, "counter": 0,
                  "origin": -(ph * w + pw) * c, "oy_lo": oy_lo, "oy_hi": oy_hi,
                  "ox_lo": ox_lo, "ox_hi": ox_hi, "stride_h": sh, "stride_w": sw,
                  "pad_top": ph, "pad_left": pw, "h": h, "w": w, "pitch_row": w * c,
                  "pitch_col": c, "tap_dy": self.tap_dy.ctypes.data,
                  "tap_dx": self.tap_dx.ctypes.data, "zp_row": self.zp_row.ctypes.data}
        self.params = np.array([values[f] for f in QDW_FIELDS], np.int64)
        self.claim = claim
        self._keep = (weights, corr, mult, bias, qp)      # the addresses' owners
        self._new_out = _OutMaker(self.out_shape, np.uint8)
        # the block a call fills in, kept while no other call holds it (as QGemmCall's:
        # one address every call, so the pool's native lookup is kept too)
        self._block = (ctypes.c_int64 * len(QDW_FIELDS))()
        self._block_address = ctypes.addressof(self._block)
        self._block_free = threading.Lock()
        self._params_address, self._block_bytes = self.params.ctypes.data, self.params.nbytes

    def __call__(self, fn, pool, buffer: np.ndarray, threads=None) -> np.ndarray:
        """[N * OH * OW, C] uint8 (rows: output pixels, channels-last)."""
        out = self._new_out()
        if self._block_free.acquire(False):
            try:        # the kept block, refilled from params (its counter word: 0)
                ctypes.memmove(self._block_address, self._params_address, self._block_bytes)
                self._run(fn, pool, self._block, self._block_address, buffer, out, threads)
            finally:
                self._block_free.release()
        else:           # a concurrent call of the same layer: a block of its own
            params = (ctypes.c_int64 * len(QDW_FIELDS))(*self.params.tolist())
            self._run(fn, pool, params, ctypes.addressof(params), buffer, out, threads)
        return out

    def _run(self, fn, pool, params, params_address: int, buffer, out, threads) -> None:
        params[_DW_X], params[_DW_OUT] = buffer.ctypes.data, address(out)
        if self.claim:
            runners = min(pool.n_threads, threads or pool.n_threads, self.rows)
            params[_DW_CHUNK] = max(1, self.rows // (runners * CLAIMS_PER_THREAD))
            # one kernel call per thread: [w, w + 1) only names the runner
            pool.parallel_for(fn, runners, params_address, max_threads=threads)
        else:
            pool.parallel_for(fn, self.rows, params_address, max_threads=threads)


# AMX tiles (codegen/llvm/qgemm_amx.py): the same parameter block plus a per-thread buffer
# chunk, counter: the claiming schedule over row tiles (QGEMM_FIELDS'; chunk 0: the thread's
# [t_begin, t_end), what a kernel built before it existed runs, ignoring these words);
# n_valid, other: the fused residual add's (qgemm_amx_u8_add: output rows ldo = n_valid wide)
# origin ... zp_row: a convolution's padding read in the kernel (conv_gather_unpadded's
# block, as QGEMM_PAD_FIELDS; run_q 0: the host padded, what an older kernel assumes)
# row_blocks: the row tiles are run in that many blocks of consecutive tiles, each packed
# once and walked over every weight panel (0: a block per tile; amx_row_blocks); the
# thread's scratch holds the largest block's packed rows, then the C tiles (the last
# AMX_C_BYTES of its scratch_stride)
# direct, k_offs: A tiles read in place (amx_in_place): where direct is 1, a 16-row half
# tile on one output row, inside the image, loads its k step kt from the rows' windows
# + k_offs[kt] (int64, one per 64-byte step), rows col_stride apart; where direct is 2
# (AMX_LINEAR: a stride-1 "same" convolution reading its padding, whose windows are
# col_stride apart across output rows and images too), any 16 rows load each k step in
# place unless a row's window leaves the image there, and k_offs holds three more int64
# per step after the offsets: the step's row offset (ky * dil_h - pad_top) and its first
# and last pixel's column offset (- pad_left), to tell which rows' windows leave it
# col_split: 1, the threads split each row block by column blocks (amx_col_split): the A
# rows packed once into the shared part of the scratch (amx_col_scratch), the tiles to
# pack and the column blocks claimed from AMX_COL_WORDS counters per row block, the
# int64 words after the block's fields (zero each call)
QGEMM_AMX_FIELDS = QGEMM_BASE_FIELDS + ("kq_pad", "scratch", "scratch_stride", "tilecfg",
                                        "seg_offs", "n_segs", "seg_len", "chunk", "counter",
                                        "n_valid", "other") + QGEMM_PAD_FIELDS + \
    ("row_blocks", "direct", "k_offs", "k_block", "col_split")
AMX_ROWS, AMX_COLS, AMX_C_BYTES = 32, 32, 32 * 32 * 4
# a weight of more bytes than this is run in row blocks of up to AMX_BLOCK_TILES row tiles
# (smaller ones stay in L2 across row tiles anyway, and one tile's packed rows in L1):
# resnet18's 3x3 x 512 (2.25 MiB) went 1.37 -> 0.98 ms at one thread; its strided
# 3x3 x 256 -> 512 (1.1 MiB) gained nothing (2 MiB of L2 a core on these hosts)
AMX_BLOCK_WEIGHT_MIN = 3 << 19
AMX_BLOCK_TILES = 8


def amx_row_blocks(m_tiles: int, kq_pad: int, n_pad: int, runners: int) -> int:
    """Row blocks of an AMX GEMM of m_tiles row tiles (lite's QGEMM_AMX_FIELDS): one a
    tile where the weight is small, else about AMX_BLOCK_TILES tiles each, their count a
    multiple of the threads (so the blocks, sizes differing by at most a tile, share out
    evenly)."""
    if kq_pad * 4 * n_pad <= AMX_BLOCK_WEIGHT_MIN or m_tiles <= runners:
        return m_tiles
    blocks = -(-m_tiles // AMX_BLOCK_TILES)
    return min(m_tiles, -(-blocks // runners) * runners)


# column splits (qgemm_amx._column_claims) for row-blocked GEMMs (a weight over
# AMX_BLOCK_WEIGHT_MIN) at two or more threads: resnet18's 7x7 x 512 3x3 convs ran their
# 13 row tiles as 2 row blocks, one a thread, and the thread that came late (the caller,
# a step's glue behind) kept the other waiting; split by columns, each thread streams
# only the weight panels it claims (the 512 -> 256 half alone: 0.452 ms against 0.973
# for the whole, one thread) and the late one claims fewer
# Only where every tile's packed rows (shared by the threads: amx_col_scratch) take at most
# AMX_COL_SPLIT_MAX_BYTES (resnet18 b8's 13 tiles x 4608 k bytes: 1.9 MB), measured on
# that shape only
AMX_COL_SPLIT = True
AMX_COL_SPLIT_MAX_BYTES = 1 << 22


# per call, the split runs only while the host's 1-minute load average is under its CPU
# count (checked at most every AMX_COL_LOAD_CHECK_S): its threads wait for each other's
# packed tiles, so a thread descheduled on a busy host holds the other up, where the
# row claims let whichever thread runs take every block (resnet18 b8 at load 3-4: 0.8-5
# ms slower a call with the split)
AMX_COL_LOAD_CHECK_S = 0.25
_COL_QUIET = [True, 0.0]


def amx_col_split_now() -> bool:
    """Whether the host is quiet enough for a column split now (cached for a while)."""
    now = time.monotonic()
    if now > _COL_QUIET[1]:
        try:
            _COL_QUIET[0] = os.getloadavg()[0] < cpu_count()
        except OSError:
            _COL_QUIET[0] = True
        _COL_QUIET[1] = now + AMX_COL_LOAD_CHECK_S
    return _COL_QUIET[0]


def amx_col_split(m_tiles: int, row_blocks: int, runners: int, kq_pad: int) -> bool:
    """Whether an AMX GEMM's threads split its row blocks by column blocks."""
    return AMX_COL_SPLIT and runners > 1 and row_blocks < m_tiles and \
        m_tiles * AMX_ROWS * kq_pad * 4 <= AMX_COL_SPLIT_MAX_BYTES


AMX_COL_WORDS = 3


def amx_col_scratch(m_tiles: int, kq_pad: int, threads: int) -> int:
    """Bytes of a column split's scratch: every tile's packed rows, their spill and
    halves tables (shared), then each thread's C tiles."""
    return amx_scratch_stride(m_tiles, 1, kq_pad, 0) + threads * AMX_C_BYTES


def amx_in_place(gather: Gather, kq_pad: int, pads_read: bool = False
                 ) -> tuple[int, np.ndarray]:
    """(direct, k_offs) of an AMX GEMM's block: whether its A tiles may be read in place
    (a row's k bytes are whole segments of whole 64-byte steps, none padded: then k step
    kt of a row lies at its window + k_offs[kt], and consecutive output pixels' windows
    col_stride apart), and each 64-byte k step's offset in a row's window (kt * 64,
    unused, where not). pads_read: the block holds gather.pad's fields (the kernel reads
    the padding); then a stride-1 conv whose output has the input's size, its windows
    col_stride apart across rows and images, is direct 2 (amx_linear_steps)."""
    steps = kq_pad // 16
    seg_len, segs = gather.seg_len, gather.seg_offs
    if seg_len % 64 or len(segs) * seg_len != kq_pad * 4 or gather.ohw == 1:
        return 0, np.arange(steps, dtype=np.int64) * 64
    at = np.arange(steps, dtype=np.int64) * 64
    k_offs = segs[at // seg_len] + at % seg_len
    if pads_read and AMX_LINEAR and _linear_windows(gather):
        return 2, np.concatenate([k_offs, amx_linear_steps(gather, at)])
    return 1, k_offs


# direct 2 (qgemm_amx._pack_linear_half) on; off: halves in place only on one output row.
# Not for output rows under AMX_LINEAR_MIN_WIDTH pixels: in rows of 7 (resnet18's 7x7 x
# 512 3x3 conv) most of a half's steps hold an edge column, and packing its halves
# whole was ~5% faster (1.00-1.08 against 1.05-1.13 ms, one thread)
AMX_LINEAR = True
AMX_LINEAR_MIN_WIDTH = 12


def _linear_windows(gather: Gather) -> bool:
    """Whether output row m's window lies at m * col_stride (plus the origin) for every m:
    a stride-1 conv whose output has the input's height and width, over an unpadded
    input (gather.pad's); and its output rows are AMX_LINEAR_MIN_WIDTH wide."""
    pad = gather.pad
    return pad is not None and gather.ow >= AMX_LINEAR_MIN_WIDTH and pad["stride_h"] == 1 \
        and gather.col_stride == pad["pix"] \
        and gather.row_stride == gather.ow * gather.col_stride \
        and gather.img_stride == gather.ohw * gather.col_stride


def amx_linear_steps(gather: Gather, at: np.ndarray) -> np.ndarray:
    """Per 64-byte k step at byte `at` of a row (run layout: a kernel row's run of
    span_w pixels per segment), the input row and the first and last input column it
    reads, relative to the output pixel: (ky * dil_h - pad_top) for every step, then the
    first pixels', then the last's (- pad_left)."""
    pad = gather.pad
    ky, within = at // gather.seg_len, at % gather.seg_len
    dy = ky * pad["dil_h"] - pad["pad_top"]
    first = within // pad["pix"] - pad["pad_left"]
    last = np.minimum((within + 63) // pad["pix"], pad["span_w"] - 1) - pad["pad_left"]
    return np.concatenate([dy, first, last]).astype(np.int64)


# bytes past a block's packed rows its packing may overwrite (a segment's last vector)
AMX_PACK_SPILL = 64


def amx_halves_bytes(kq_pad: int) -> int:
    """Bytes of a tile's halves table: each half's window offset (two int64), each
    half's kind (a byte: every k step in place, every step packed, or some of each),
    then from byte 32 a byte per half and k step (half h's step kt at 32 + h * steps +
    kt; 1: that step's A tile is read from the packed rows, 0: in place; written for
    halves of some of each only), to a multiple of 16."""
    return 32 + -(-2 * (kq_pad // 16) // 16) * 16


def amx_scratch_stride(m_tiles: int, row_blocks: int, kq_pad: int, c_blocks: int = 1) -> int:
    """Bytes of a thread's AMX scratch: the largest row block's packed rows, their spill,
    its tiles' halves tables, the C tiles (the last c_blocks * AMX_C_BYTES: one column
    block's, or with k blocks every column block's)."""
    tiles = -(-m_tiles // max(row_blocks, 1))
    used = tiles * (AMX_ROWS * kq_pad * 4 + amx_halves_bytes(kq_pad)) + AMX_PACK_SPILL + \
        c_blocks * AMX_C_BYTES
    return -(-used // 64) * 64


# k blocks (qgemm_amx._k_blocked_tile): a GEMM of a tile a row block whose k has more
# than AMX_K_BLOCK_MIN 64-byte steps runs them AMX_K_BLOCK at a time over every column
# block, the C tiles kept in the scratch between them (one thread, load 9, fastest of
# 9 / 12 / 18 / whole k: resnet18's 14x14 x 256 3x3 conv 0.88 -> 0.79-0.81 ms, its
# 28x28 x 128 one 1.03-1.05 -> 0.94-0.96)
AMX_K_BLOCK, AMX_K_BLOCK_MIN = 9, 9


def amx_k_block(kq_pad: int, m_tiles: int, row_blocks: int) -> int:
    """The block's k_block: steps per k block, 0 for none."""
    steps = kq_pad // 16
    return AMX_K_BLOCK if steps > AMX_K_BLOCK_MIN and row_blocks == m_tiles else 0
_AMX_STATE: list = []


def amx_permission() -> bool:
    """Ask Linux for the AMX tile state (arch_prctl(ARCH_REQ_XCOMP_PERM,
    XFEATURE_XTILEDATA)) once per process; True when granted."""
    if not _AMX_STATE:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            _AMX_STATE.append(libc.syscall(158, 0x1023, 18) == 0)
        except (OSError, AttributeError):
            _AMX_STATE.append(False)
    return _AMX_STATE[0]


def amx_tile_config() -> np.ndarray:
    """ldtilecfg's 64 bytes: palette 1, eight tiles of 16 rows x 64 bytes."""
    cfg = aligned_empty(64, np.uint8)
    cfg[:] = 0
    cfg[0] = 1
    cfg[16:32].view(np.uint16)[:8] = 64
    cfg[48:56] = 16
    return cfg


_AMX_TILECFG = amx_tile_config()


def qgemm_amx_run(fn, pool, gather: Gather, packed: np.ndarray, kq_pad: int, n: int,
                  corr: np.ndarray, mult: np.ndarray, bias: np.ndarray, qparams, u8_out: bool,
                  threads=None) -> np.ndarray:
    """qgemm_run on AMX tiles: row tiles of 32 split across threads, each thread with its
    own buffer for the gathered A rows and the C tiles."""
    n_pad = len(corr)
    m_tiles = -(-gather.m // AMX_ROWS)
    out = _empty((m_tiles * AMX_ROWS, n_pad), np.uint8 if u8_out else np.float32)
    stride = amx_scratch_stride(m_tiles, m_tiles, kq_pad)
    scratch = aligned_empty(stride * pool.n_threads, np.uint8)
    qp = np.asarray(qparams, np.float64)
    values = {"a": gather.buffer.ctypes.data, "m": gather.m, "ohw": gather.ohw,
              "ow": gather.ow, "img_stride": gather.img_stride,
              "row_stride": gather.row_stride, "col_stride": gather.col_stride,
              "kq": len(gather.offs), "offs": gather.offs.ctypes.data,
              "packed": packed.ctypes.data, "n_blocks": n_pad // AMX_COLS, "m_tiles": m_tiles,
              "nb_outer": 0, "out": out.ctypes.data, "ldo": n_pad, "corr": corr.ctypes.data,
              "mult": mult.ctypes.data, "bias": bias.ctypes.data, "qparams": qp.ctypes.data,
              "kq_pad": kq_pad, "scratch": scratch.ctypes.data, "scratch_stride": stride,
              "tilecfg": _AMX_TILECFG.ctypes.data, "seg_offs": gather.seg_offs.ctypes.data,
              "n_segs": len(gather.seg_offs), "seg_len": gather.seg_len,
              "chunk": 0, "counter": 0, "n_valid": n_pad, "other": 0, **_NO_PAD,
              "row_blocks": m_tiles, "k_block": 0, "col_split": 0}
    values["direct"], k_offs = amx_in_place(gather, kq_pad)
    values["k_offs"] = k_offs.ctypes.data
    params = np.array([values[f] for f in QGEMM_AMX_FIELDS], np.int64)
    pool.parallel_for(fn, m_tiles, params.ctypes.data, max_threads=threads)
    return out[:gather.m, :n]


# row-pair inputs (codegen/llvm/qrow_pairs.py) for AMX convolutions of stride 2 over few
# channels (resnet's stem); off: the channels-last copy whose 24-byte kernel-row runs every
# A row packs
AMX_ROW_PAIRS = True


def row_pairs_applies(c: int, kernel, stride, dilation) -> bool:
    """Whether an AMX convolution reads its input as row pairs (qrow_pairs): stride 2
    along H (a pair-row an output row), no dilation, a window's two kernel rows within a
    64-byte k step (2 * c * kw <= 64: the stem's 3 x 7 -> 42 bytes), and at most one k
    step more than the run layout's. Its k grows to 64 bytes a kernel-row pair (the
    stem's 168 padded to 192 -> 256: a third more tile multiplies) and no A row is copied
    (the stem packed ~100K rows of 7 runs a call). Not where the run layout's k is one
    step (a 3x3 over 3 channels: 36 bytes, against two steps as pairs)."""
    kh, kw = kernel
    run = -(-(kw * c) // 4) * 4
    steps, pair_steps = -(-(kh * run) // 64), -(-kh // 2)
    return AMX_ROW_PAIRS and stride[0] == 2 and tuple(dilation) == (1, 1) and \
        0 < 2 * c * kw <= 64 and c <= 4 and 1 < steps and pair_steps <= steps + 1


def row_pairs_shape(n: int, h: int, w: int, c: int, kernel, padding, out_hw) -> tuple:
    """The row-pair input's shape [N, HP2, WP, 2, C]: every pair-row an output row's
    window reads (the last one's lower kernel row may lie below the padded image)."""
    ph, pw = padding
    hp2 = max(-(-(h + 2 * ph) // 2), out_hw[0] + -(-kernel[0] // 2) - 1)
    return (n, hp2, w + 2 * pw, 2, c)


# readable bytes past a row-pair input: the last pixel's last k step reads 64 bytes
ROW_PAIRS_SLACK = 64


def row_pairs_gather(shape, out_hw, kernel, stride) -> Gather:
    """The gather of a row-pair input: k step g of output pixel (oy, ox) is the 64 bytes
    at pair-row oy + g, pixel ox * stride (kernel rows 2g and 2g + 1, the window's
    2 * c * kw bytes then the next pixels', which meet zero weights)."""
    n, hp2, wp, _, c = shape
    (oh, ow), pitch = out_hw, wp * 2 * c
    segs = np.arange(-(-kernel[0] // 2), dtype=np.int64) * pitch
    offs = (segs[:, None] + np.arange(16, dtype=np.int64)[None, :] * 4).reshape(-1)
    return Gather(None, n * oh * ow, offs, ohw=oh * ow, ow=ow, img_stride=hp2 * pitch,
                  row_stride=pitch, col_stride=stride[1] * 2 * c, seg_offs=segs, seg_len=64)


class RowPairsCall:
    """qpairs_<u8|f32>_c<C>'s parameters for one geometry and qparams, made once (a
    converted model's stem every call); a call writes the row-pair input of a contiguous
    [N, C, H, W] source (uint8, or float32 quantized on the way) into a new buffer, pair
    rows split over the pool."""

    def __init__(self, shape, h: int, padding, zero_point: int, scale=None):
        n, hp2, wp, _, c = shape
        self.rows, self.size = n * hp2, math.prod(shape)
        self.zero_point = int(zero_point)
        w = wp - 2 * padding[1]
        self._ip = (ctypes.c_int64 * 7)(h, w, hp2, wp, padding[0], padding[1], self.zero_point)
        self._fp = (ctypes.c_double * 4)(0.0, float(self.zero_point), 0.0, 255.0)
        if scale is not None:
            self._fp[0] = float(np.float32(1.0) / np.float32(scale))     # quantize_run's
        self._ip_address, self._fp_address = ctypes.addressof(self._ip), ctypes.addressof(self._fp)

    def __call__(self, fn, pool, src: np.ndarray) -> np.ndarray:
        """The row-pair buffer (flat, ROW_PAIRS_SLACK bytes of the zero point past it)."""
        flat = _empty((self.size + ROW_PAIRS_SLACK,), np.uint8)
        flat[self.size:] = self.zero_point
        pool.parallel_for(fn, self.rows, address(src), address(flat), self._ip_address,
                          self._fp_address)
        return flat


_AMX_A, _AMX_OUT = QGEMM_AMX_FIELDS.index("a"), QGEMM_AMX_FIELDS.index("out")
_AMX_SCRATCH = QGEMM_AMX_FIELDS.index("scratch")
_AMX_CHUNK, _AMX_OTHER = QGEMM_AMX_FIELDS.index("chunk"), QGEMM_AMX_FIELDS.index("other")
_AMX_COL_SPLIT = QGEMM_AMX_FIELDS.index("col_split")


class QAmxCall:
    """qgemm_amx_run in two steps, as QGemmCall for the vector kernels: the parameter
    block, the threads' scratch buffers and the output's sizes made once per geometry and
    qparams; a call fills in the input, output (and residual operand) addresses on a kept
    block, and the threads claim row tiles (guided claims: a thread that starts late
    leaves its tiles to the other, and both finish within about a tile of each other).
    The per-call work it removes (a dict of a dozen .ctypes addresses, a NumPy block, a
    fresh scratch buffer) was ~40-50 us of serial Python a convolution at two threads."""

    def __init__(self, gather: Gather, packed: np.ndarray, kq_pad: int, n: int,
                 corr: np.ndarray, mult: np.ndarray, bias: np.ndarray, qparams,
                 u8_out: bool, residual: bool = False):
        n_pad = len(corr)
        self.m, self.n, self.n_pad = gather.m, n, n_pad
        self.m_tiles = -(-gather.m // AMX_ROWS)
        self.small = gather.m * n * kq_pad * 4 < GEMM_PARALLEL_MIN_MACS
        # the residual kernel stores only the n valid columns (rows n wide, as the other
        # operand's it reads at the same pitch); the others whole column blocks
        ldo = n if residual else n_pad
        self.dense_out = ldo == n       # out[:m, :n] is the output itself: no copy reads it
        self._new_out = _OutMaker((self.m_tiles * AMX_ROWS, ldo),
                                  np.uint8 if u8_out else np.float32)
        row_blocks = amx_row_blocks(self.m_tiles, kq_pad, n_pad, cpu_count())
        k_block = amx_k_block(kq_pad, self.m_tiles, row_blocks)
        self.col_split = amx_col_split(self.m_tiles, row_blocks, cpu_count(), kq_pad)
        self.scratch_stride = amx_scratch_stride(self.m_tiles, row_blocks, kq_pad,
                                                 n_pad // AMX_COLS if k_block else 1)
        self.row_blocks = row_blocks
        self._scratch = aligned_empty(0, np.uint8)
        qp = np.asarray(qparams, np.float64)
        values = {"a": 0, "m": gather.m, "ohw": gather.ohw, "ow": gather.ow,
                  "img_stride": gather.img_stride, "row_stride": gather.row_stride,
                  "col_stride": gather.col_stride, "kq": len(gather.offs),
                  "offs": gather.offs.ctypes.data, "packed": packed.ctypes.data,
                  "n_blocks": n_pad // AMX_COLS, "m_tiles": self.m_tiles, "nb_outer": 0,
                  "out": 0, "ldo": ldo, "corr": corr.ctypes.data, "mult": mult.ctypes.data,
                  "bias": bias.ctypes.data, "qparams": qp.ctypes.data, "kq_pad": kq_pad,
                  "scratch": 0, "scratch_stride": self.scratch_stride,
                  "tilecfg": _AMX_TILECFG.ctypes.data,
                  "seg_offs": gather.seg_offs.ctypes.data, "n_segs": len(gather.seg_offs),
                  "seg_len": gather.seg_len, "chunk": 0, "counter": 0, "n_valid": ldo,
                  "other": 0, **_NO_PAD, "row_blocks": row_blocks, "k_block": k_block,
                  "col_split": int(self.col_split)}
        values["direct"], k_offs = amx_in_place(gather, kq_pad, gather.pad is not None)
        values["k_offs"] = k_offs.ctypes.data
        zp_row = None
        if gather.pad is not None:      # the padding read in the kernel
            values.update(gather.pad)
            zp_row = gather.pad["zp_row"]
            values["zp_row"] = zp_row.ctypes.data
        # the column claims' counters (zero each call, refilled with the block)
        counters = [0] * (AMX_COL_WORDS * row_blocks if self.col_split else 0)
        self.kq_pad = kq_pad
        self.params = np.array([values[f] for f in QGEMM_AMX_FIELDS] + counters, np.int64)
        self._keep = (gather.offs, gather.seg_offs, packed, corr, mult, bias, qp, zp_row, k_offs)
        self._block = (ctypes.c_int64 * len(self.params))()
        self._block_address = ctypes.addressof(self._block)
        self._block_free = threading.Lock()
        self._params_address, self._block_bytes = self.params.ctypes.data, self.params.nbytes

    def _scratch_for(self, threads: int, kept: bool = True) -> np.ndarray:
        """Scratch for `threads` threads (kept: remade when the pool grew; else new)."""
        need = self.scratch_stride * threads
        if self.col_split:      # (a kernel packaged before col_split runs row claims)
            need = max(need, amx_col_scratch(self.m_tiles, self.kq_pad, threads))
        if not kept:
            return aligned_empty(need, np.uint8)
        if self._scratch.nbytes < need:
            self._scratch = aligned_empty(need, np.uint8)
        return self._scratch

    def __call__(self, fn, pool, buffer: np.ndarray, other=None) -> np.ndarray:
        out = self._new_out()
        runners = 1 if self.small else min(pool.n_threads, self.m_tiles)
        if self._block_free.acquire(False):
            deferred = False
            try:        # the kept block, refilled from params (its counter word: 0)
                ctypes.memmove(self._block_address, self._params_address, self._block_bytes)
                deferred = self._run(fn, pool, self._block, self._block_address, buffer, out,
                                     other, runners, self._scratch_for(pool.n_threads),
                                     self._block_free.release)
            finally:
                if not deferred:    # else the pool's join releases the block
                    self._block_free.release()
        else:           # a concurrent call: a block and scratch of its own
            params = (ctypes.c_int64 * len(self.params))(*self.params.tolist())
            self._run(fn, pool, params, ctypes.addressof(params), buffer, out, other, runners,
                      self._scratch_for(pool.n_threads, kept=False))
        return out[:self.m, :self.n]

    def _run(self, fn, pool, params, params_address: int, buffer, out, other, runners: int,
             scratch: np.ndarray, release=None) -> bool:
        params[_AMX_A], params[_AMX_OUT] = address(buffer), address(out)
        params[_AMX_SCRATCH] = address(scratch)
        if other is not None:
            if other.dtype != np.uint8 or other.size != self.m * self.n or \
                    not other.flags.c_contiguous:
                raise ValueError(f"qgemm_amx: the residual operand must be {self.m} x "
                                 f"{self.n} contiguous uint8, got {other.shape} {other.dtype}")
            params[_AMX_OTHER] = address(other)
        params[_AMX_CHUNK] = -runners        # guided claims for `runners` threads
        if self.col_split and not amx_col_split_now():
            params[_AMX_COL_SPLIT] = 0          # row claims (its scratch fits both)
        # ember's pool may leave the kernel running (ThreadPool.defer: the caller's Python
        # until the next kernel beside the workers' tiles); True: the join releases
        defer = getattr(pool, "defer", None) if release is not None and self.dense_out \
            else None
        if defer is not None and runners > 1 and \
                defer(fn, runners, (params_address,), (buffer, out, other, scratch), release):
            return True
        # one kernel call per thread: [w, w + 1) only names the runner (and its scratch)
        pool.parallel_for(fn, runners, params_address, max_threads=runners)
        return False


def qadd_run(fn, pool, a: np.ndarray, b: np.ndarray, a_qparams, b_qparams, scale: float,
             zero_point: int, relu: bool) -> np.ndarray:
    """uint8 a + b requantized to (scale, zero_point): flat buffers of one size."""
    out = _empty_out(a.shape, a.dtype)
    inv = np.float32(1.0) / np.float32(scale)
    qp = (ctypes.c_double * 8)(float(a_qparams[1]), float(a_qparams[0]), float(b_qparams[1]),
                               float(b_qparams[0]), float(inv), float(zero_point),
                               0.0 if relu else -np.inf, 255.0)
    chunks = -(-a.size // QADD_CHUNK)
    if a.size < ELEMENTWISE_PARALLEL_MIN:
        # one direct call (dequantize_run's reasons: the pool's dispatch and a NumPy
        # parameter array cost ~10 us, a residual add at 7x7 takes 20-30)
        fn(0, chunks, 0, address(a), address(b), address(out), a.size, ctypes.addressof(qp))
        return out
    pool.parallel_for(fn, chunks, a.ctypes.data, b.ctypes.data, out.ctypes.data, a.size,
                      ctypes.addressof(qp))
    return out


def dequantize_run(fn, pool, q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """dequantize_values by the native kernel (qdequantize_u8 / _i8): a contiguous 8-bit
    array to float32, split over the pool from ELEMENTWISE_PARALLEL_MIN elements. A
    smaller one (a model's output) is one direct call into a plain NumPy array: the pool's
    dispatch, the caching allocator and a NumPy parameter array cost 7 us together, more
    than the kernel's 5 us on 64 x 1024 values (NumPy's three passes: 11 us)."""
    chunks = -(-q.size // QADD_CHUNK)
    qp = (ctypes.c_double * 2)(float(np.float32(zero_point)), float(np.float32(scale)))
    if q.size < ELEMENTWISE_PARALLEL_MIN:
        out = np.empty(q.shape, np.float32)
        fn(0, chunks, 0, address(q), address(out), q.size, ctypes.addressof(qp))
        return out
    out = _empty(q.shape, np.float32)
    pool.parallel_for(fn, chunks, q.ctypes.data, out.ctypes.data, q.size,
                      ctypes.addressof(qp))
    return out


def relu_run(fn, pool, x: np.ndarray) -> np.ndarray:
    """relu of a contiguous float32 array by the native kernel (qelementwise relu_f32):
    one direct call below ELEMENTWISE_PARALLEL_MIN elements, split over the pool from
    there (dequantize_run's reasons)."""
    chunks = -(-x.size // QADD_CHUNK)
    if x.size < ELEMENTWISE_PARALLEL_MIN:
        out = np.empty(x.shape, np.float32)
        fn(0, chunks, 0, address(x), address(out), x.size)
        return out
    out = _empty(x.shape, np.float32)
    pool.parallel_for(fn, chunks, x.ctypes.data, out.ctypes.data, x.size)
    return out


QMAXPOOL_TYPE = ctypes.CFUNCTYPE(None, I64, I64, I64, PTR, PTR, PTR)
QQUANTIZE_TYPE = ctypes.CFUNCTYPE(None, I64, I64, I64, PTR, PTR, I64, PTR)


@functools.lru_cache(maxsize=None)
def _int_info(dtype):
    """np.iinfo(dtype), kept (~2 us a call: a model's input quantize asks it every call)."""
    return np.iinfo(dtype)


def quantize_run(fn, pool, x: np.ndarray, scale: float, zero_point: int, dtype) -> np.ndarray:
    """quantize_values by the native kernel: a contiguous float32 array to uint8/int8."""
    info = _int_info(dtype)
    inv = np.float32(1.0) / np.float32(scale)
    if x.size < ELEMENTWISE_PARALLEL_MIN:
        # one direct call into a plain array (dequantize_run's reasons: ~5 us of the pool's
        # dispatch, the caching allocator and a NumPy parameter array saved on a model's
        # input quantize)
        out = np.empty(x.shape, dtype)
        qp = (ctypes.c_double * 4)(float(inv), float(zero_point), float(info.min),
                                   float(info.max))
        fn(0, -(-x.size // QADD_CHUNK), 0, address(x), address(out), x.size,
           ctypes.addressof(qp))
        return out
    out = _empty(x.shape, dtype)
    qp = np.array([inv, zero_point, info.min, info.max], np.float64)
    pool.parallel_for(fn, -(-x.size // QADD_CHUNK), x.ctypes.data, out.ctypes.data, x.size,
                      qp.ctypes.data, max_threads=_elementwise_threads(x.size))
    return out


def qmaxpool_run(fn, pool, x: np.ndarray, kernel, stride, padding, claimed=None
                 ) -> np.ndarray:
    """uint8 max pooling of a channels-last [N, H, W, C] array (C a multiple of 16) by the
    native kernel (codegen/llvm/qelementwise.py), output rows split across threads.
    claimed(), where given, is qmaxpool_claimed, which a split pool runs instead (rows
    claimed: qmaxpool_claimed_run)."""
    x = np.ascontiguousarray(x)
    n, h, w, c = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    out = _empty((n, oh, ow, c), np.uint8)
    threads = _elementwise_threads(out.size)
    if claimed is not None and threads is None and MAXPOOL_CLAIMS and \
            min(pool.n_threads, n * oh) > 1:
        return qmaxpool_claimed_run(claimed(), pool, x, out, (h, w, c, oh, ow, kh, kw, sh, sw,
                                                              ph, pw))
    params = np.array([h, w, c, oh, ow, kh, kw, sh, sw, ph, pw], np.int64)
    args = (x.ctypes.data, out.ctypes.data, params.ctypes.data)
    # ember's pool may leave it running (ThreadPool.defer; QAmxCall's reasons)
    defer = getattr(pool, "defer", None) if threads is None else None
    if defer is None or not defer(fn, n * oh, args, (x, out, params), None):
        pool.parallel_for(fn, n * oh, *args, max_threads=threads)
    return out


# a split max pool claims its rows (qmaxpool_claimed); off: static shares (A/B)
MAXPOOL_CLAIMS = True


def qmaxpool_claimed_run(fn, pool, x: np.ndarray, out: np.ndarray, geometry) -> np.ndarray:
    """qmaxpool_claimed over the pool's threads, guided claims of output rows; left
    running where the pool may defer it (QAmxCall's reasons), the caller then claiming
    at its join what the worker has left."""
    rows = geometry[0 + 3] * x.shape[0]         # n * oh
    runners = min(pool.n_threads, rows)
    params = np.array([*geometry, -runners, 0, rows], np.int64)
    args = (address(x), address(out), params.ctypes.data)
    defer = getattr(pool, "defer", None)
    if defer is None or not defer(fn, runners, args, (x, out, params), None):
        pool.parallel_for(fn, runners, *args, max_threads=runners)
    return out


# qpad_nhwc's parameter block (codegen/llvm/qelementwise.py _emit_pad)
PAD_FIELDS = ("src", "dst", "h", "hp", "top", "row", "left", "right", "img_stride",
              "row_stride", "zero_point")
_PAD_SRC, _PAD_DST = PAD_FIELDS.index("src"), PAD_FIELDS.index("dst")
# a padded copy writing fewer bytes runs on the calling thread: a hand-off to a spinning
# worker costs ~4 us, and hot, one thread copies resnet18's 8 x 9 x 9 x 512 padded input
# in ~6 us, its 8 x 16 x 16 x 256 one (2^19 bytes, split) in ~9, 8 x 30 x 30 x 128 in ~18
PAD_PARALLEL_MIN_BYTES = 1 << 19


class _PadCall:
    """qpad_nhwc's parameter block for one geometry, made once (a converted model pads
    each layer's input alike every call); a call writes in the two addresses. A
    concurrent call of the same geometry makes a block of its own (QGemmCall's way)."""
    __slots__ = ("block", "address", "free", "rows", "threads")

    def __init__(self, values: dict, rows: int, work_bytes: int):
        self.block = (ctypes.c_int64 * len(PAD_FIELDS))(*[values[f] for f in PAD_FIELDS])
        self.address = ctypes.addressof(self.block)
        self.free = threading.Lock()
        self.rows = rows
        self.threads = 1 if work_bytes < PAD_PARALLEL_MIN_BYTES else None

    def run(self, fn, pool, src: int, dst: int) -> None:
        if self.free.acquire(False):
            try:
                self._run(fn, pool, self.block, self.address, src, dst)
            finally:
                self.free.release()
            return
        block = (ctypes.c_int64 * len(PAD_FIELDS))(*self.block)
        self._run(fn, pool, block, ctypes.addressof(block), src, dst)

    def _run(self, fn, pool, block, block_address: int, src: int, dst: int) -> None:
        block[_PAD_SRC], block[_PAD_DST] = src, dst
        if self.threads == 1:       # one direct call: no pool dispatch
            fn(0, self.rows, 0, block_address)
        else:
            pool.parallel_for(fn, self.rows, block_address)


_PAD_CALLS: dict = {}
_MAX_PAD_CALLS = 256


def pad_nhwc_run(fn, pool, src: np.ndarray | None, dst: np.ndarray, padding,
                 zero_point: int) -> None:
    """qpad_nhwc: the dense uint8 [N, Hp, Wp, C] dst = the channels-last [N, H, W, C] src
    (pixels contiguous, rows and images at any stride) padded spatially by `padding` with
    zero_point, rows split over the pool from PAD_PARALLEL_MIN_BYTES written; src None:
    only the border is written (the interior is another kernel's)."""
    ph, pw = padding
    key = (dst.shape, None if src is None else src.shape,
           None if src is None else src.strides, ph, pw, zero_point)
    call = _PAD_CALLS.get(key)
    if call is None:
        call = _pad_call(src, dst, ph, pw, int(zero_point), key)
    if dst.dtype.char != "B" or not dst.flags.c_contiguous or \
            (src is not None and src.dtype.char != "B"):
        raise ValueError(f"pad_nhwc: expected uint8 arrays, got {dst.dtype}")
    if dst.size:
        call.run(fn, pool, 0 if src is None else src.__array_interface__["data"][0],
                 address(dst))


def _pad_call(src, dst, ph: int, pw: int, zero_point: int, key) -> _PadCall:
    """pad_nhwc_run's kept block for this geometry (its operands checked)."""
    n, hp, wp, c = dst.shape
    h, w = hp - 2 * ph, wp - 2 * pw
    if h < 0 or w < 0 or (src is not None and (src.shape != (n, h, w, c) or
                                               src.strides[2:] != (c, 1))):
        raise ValueError(f"pad_nhwc: expected a source of the destination's interior shape "
                         f"with contiguous pixels, got {None if src is None else src.shape} "
                         f"into {dst.shape} padded by {(ph, pw)}")
    strides = (0, 0) if src is None else src.strides[:2]
    values = {"src": 0, "dst": 0, "h": h, "hp": hp, "top": ph, "row": w * c,
              "left": pw * c, "right": pw * c, "img_stride": strides[0],
              "row_stride": strides[1], "zero_point": zero_point}
    work = dst.nbytes if src is not None else dst.nbytes - n * h * w * c
    if len(_PAD_CALLS) >= _MAX_PAD_CALLS:
        _PAD_CALLS.clear()
    call = _PAD_CALLS[key] = _PadCall(values, n * hp, work)
    return call


PACK_TYPE = ctypes.CFUNCTYPE(None, I64, I64, I64, PTR, PTR, PTR)


def pack_nhwc_run(fn, pool, x: np.ndarray, dst: np.ndarray) -> None:
    """qpack_nhwc_c<C> (codegen/llvm/qelementwise.py): contiguous uint8 [N, C, H, W] x into
    the channels-last [N, H, W, C] view dst (pixels contiguous), rows split over threads."""
    n, c, h, w = x.shape
    if dst.shape != (n, h, w, c) or dst.strides[2:] != (c, 1) or not x.flags.c_contiguous:
        raise ValueError(f"pack_nhwc: expected a contiguous [N, C, H, W] source and an "
                         f"[N, H, W, C] destination, got {x.shape} and {dst.shape}")
    params = np.array([h, w, dst.strides[0], dst.strides[1]], np.int64)
    pool.parallel_for(fn, n * h, x.ctypes.data, dst.ctypes.data, params.ctypes.data)


def memory_order(a: np.ndarray):
    """(flat buffer, function giving an array of a's layout from a flat buffer) for a
    contiguous or channels-last array, else None."""
    if a.flags.c_contiguous:
        return a.reshape(-1), lambda flat: flat.reshape(a.shape)
    if a.ndim == 4 and a.transpose(0, 2, 3, 1).flags.c_contiguous:
        nhwc = a.transpose(0, 2, 3, 1)
        return nhwc.reshape(-1), lambda flat: flat.reshape(nhwc.shape).transpose(0, 3, 1, 2)
    return None


def max_pool2d_nhwc(x: np.ndarray, kernel, stride, padding) -> np.ndarray:
    """Max pooling of uint8 [N, H, W, C], padding with 0 (no value is below it): the max
    of the window's shifted views."""
    n, h, w, c = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    padded = _empty((n, h + 2 * ph, w + 2 * pw, c), x.dtype) if ph or pw else x
    out = _empty((n, oh, ow, c), x.dtype)

    def window_max(begin, end):
        if ph or pw:
            padded[begin:end].fill(0)
            padded[begin:end, ph:ph + h, pw:pw + w] = x[begin:end]
        for i in range(kh):
            for j in range(kw):
                view = padded[begin:end, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
                if i == j == 0:
                    np.copyto(out[begin:end], view)
                else:
                    np.maximum(out[begin:end], view, out=out[begin:end])
    _over_images(n, window_max)
    return out


def quantize_values(x: np.ndarray, scale: float, zero_point: int, dtype) -> np.ndarray:
    """quantize_per_tensor to uint8/int8 (ir/quantized.py quantize_array's steps)."""
    info = np.iinfo(dtype)
    inv = np.float32(1.0) / np.float32(scale)
    wide = np.asarray(x, np.float32).astype(np.float64)
    wide *= np.float64(inv)
    wide += zero_point
    q = wide.astype(np.float32)
    np.rint(q, out=q)
    np.clip(q, info.min, info.max, out=q)
    return q.astype(dtype)


def dequantize_values(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    if q.dtype.itemsize == 1 and abs(zero_point) < 1 << 23:
        # q - zp is exact in float32 too: the same values, no int64 pass
        centered = q.astype(np.float32)
        centered -= np.float32(zero_point)
        centered *= np.float32(scale)
        return centered
    return (q.astype(np.int64) - zero_point).astype(np.float32) * np.float32(scale)


def adaptive_average_quantized(q: np.ndarray, scale: float, zero_point: int, output_size):
    """adaptive_avg_pool2d of a per-tensor quantized value, requantized with the input's
    qparams, in integers as torch's quantized kernel computes it: each window's exact sum
    less size * zero_point, times 1 / (1 / m) with m = 1 / size (float32), plus the zero
    point, rounded half to even and clamped. (The average of the dequantized values took
    a float64 requantization and a copy per call: 5x slower, and further from torch.)"""
    sums, sizes = window_sums(q, output_size)
    multiplier = np.float32(1) / sizes.astype(np.float32)
    inv = np.float32(1) / (np.float32(1) / multiplier)
    # acc - size * zp: exact (integers below 2**24, or float64), then float32 as torch's
    centered = (sums - (sizes * zero_point).astype(sums.dtype)).astype(np.float32)
    centered *= inv
    centered += np.float32(zero_point)
    np.rint(centered, out=centered)
    info = np.iinfo(q.dtype)
    np.clip(centered, info.min, info.max, out=centered)
    return centered.astype(q.dtype)


def window_sums(q: np.ndarray, output_size):
    """(sums of the 8-bit q [N, C, H, W] over adaptive pooling's windows as float32, their
    sizes [oh, ow]): window i along a dim of n covers [floor(i n / o), ceil((i + 1) n / o)).
    The sums are products with 0/1 matrices: every partial sum is an integer below 2**24
    (windows under 65536 values), so float32 holds it exactly in any order, and BLAS
    does in microseconds what NumPy's integer reductions over strided axes take 100 for."""
    n, c, h, w = q.shape
    oh, ow = output_size
    if h * w >= 1 << 16:
        return _int_window_sums(q.astype(np.int64), oh, ow)
    if oh == 1 and ow == 1:
        if q.transpose(0, 2, 3, 1).flags.c_contiguous:     # channels-last: [N, HW, C]
            pixels = q.transpose(0, 2, 3, 1).reshape(n, h * w, c)
            if q.dtype == np.uint8 and h * w * 255 < 1 << 16:
                # exact in uint16: a third less time than the float32 copy and product
                # (resnet18's global pool of 8 x 512 x 7 x 7: 27 -> 17 us); einsum's loop
                # over the pixels beats sum's over few channels (the small CNN's
                # 64 x 32 x 7 x 7: 37 -> 18 us, 8 x 512 x 7 x 7 the same 15)
                sums = np.einsum("npc->nc", pixels, dtype=np.uint16).astype(np.float32)
            else:
                sums = np.matmul(np.ones(h * w, np.float32), pixels.astype(np.float32))
        else:
            planes = q.reshape(n, c, h * w).astype(np.float32)
            sums = np.matmul(planes, np.ones(h * w, np.float32))
        return sums.reshape(n, c, 1, 1), np.array([[h * w]])
    rows, cols = _window_matrix(h, oh), _window_matrix(w, ow)
    sums = np.matmul(np.matmul(rows, q.astype(np.float32)), cols.T)
    return sums, rows.sum(1)[:, None].astype(np.int64) * cols.sum(1)[None, :].astype(np.int64)


def _window_matrix(n: int, o: int) -> np.ndarray:
    """[o, n] 0/1 float32: row i marks adaptive pooling's window i along a dim of n."""
    idx = np.arange(o)
    start, end = (idx * n) // o, -((-(idx + 1) * n) // o)
    cols = np.arange(n)
    return ((cols >= start[:, None]) & (cols < end[:, None])).astype(np.float32)


def _int_window_sums(q: np.ndarray, oh: int, ow: int):
    """window_sums for windows too large for float32's exact integers (int64 sums)."""
    h, w = q.shape[-2:]
    rows, cols = _window_matrix(h, oh), _window_matrix(w, ow)
    sums = np.einsum("ih,nchw,jw->ncij", rows.astype(np.int64), q, cols.astype(np.int64))
    return sums.astype(np.float64), np.outer(rows.sum(1), cols.sum(1)).astype(np.int64)


def mean_quantized(q: np.ndarray, scale: float, zero_point: int, axes, keepdim: bool):
    """mean of a per-tensor quantized value over `axes` (None: all): the mean of the
    dequantized values, requantized with the input's qparams (torch's quantized mean;
    equal to it bit for bit in tests/quant/test_qpointwise.py)."""
    # summed in float64 over a contiguous copy: the same result whatever the memory
    # order (an artifact's buffer and eager mode's channels-last value agree)
    real = dequantize_values(np.ascontiguousarray(q), scale, zero_point)
    axes = None if axes is None else tuple(a % q.ndim for a in axes) if q.ndim else None
    mean = np.asarray(real.mean(axis=axes, keepdims=keepdim, dtype=np.float64), np.float32)
    return quantize_values(mean, scale, zero_point, q.dtype)


class QMeanStep:
    def __init__(self, desc):
        self.axes, self.keepdim = desc["axes"], desc["keepdim"]
        self.scale, self.zero_point = desc["in_qparams"][0]

    def __call__(self, q):
        return mean_quantized(q, self.scale, self.zero_point, self.axes, self.keepdim)


class QuantizeStep:
    """quantize_per_tensor: the native kernel (qelementwise's qquantize, the reference's
    arithmetic step for step) on a contiguous float32 input where the step names it, else
    NumPy's quantize_values (the same integers)."""

    def __init__(self, desc, lib=None, pool_fn=None):
        self.scale, self.zero_point = desc["scale"], desc["zero_point"]
        self.dtype = np.dtype(desc["dtype"])
        self.fn = QQUANTIZE_TYPE(_address(lib, desc["symbol"])) if lib is not None else None
        self.pool_fn = pool_fn

    def __call__(self, x):
        if self.fn is not None and x.dtype == np.float32 and x.flags.c_contiguous:
            return quantize_run(self.fn, self.pool_fn(), x, self.scale, self.zero_point,
                                self.dtype)
        return quantize_values(x, self.scale, self.zero_point, self.dtype)


class DequantizeStep:
    def __init__(self, desc):
        self.scale, self.zero_point = desc["in_qparams"][0]

    def __call__(self, q):
        return dequantize_values(q, self.scale, self.zero_point)


def _claims(d: dict) -> bool:
    """Whether a qgemm step's kernel claims its tasks (packaged with the schedule)."""
    return d.get("schedule") == "claim"


def _qgemm(d: dict, fn, pool, gather, packed, corr, mult, bias, qparams, u8_out: bool):
    """A qgemm step's GEMM on the kernel it was packaged for (AMX tiles or vectors)."""
    if d["config"] == "amx":
        if not amx_permission():
            raise ArtifactError(f"step {d['name']}: this process was refused the AMX tile "
                                "state (arch_prctl)")
        return qgemm_amx_run(fn, pool, gather, packed, d["kq"], d["n"], corr, mult, bias,
                             qparams, u8_out)
    return qgemm_run(fn, pool, gather, packed, d["kq"], d["n"], d["mr"], d["nr"], corr, mult,
                     bias, qparams, u8_out, claim=_claims(d))


class QGemmStep:
    """quantized_linear / quantized_conv2d: the fused int8 GEMM (weights packed at
    packaging, with their per-column correction, multiplier and bias)."""

    def __init__(self, desc, lib, packed: dict, pool_fn):
        self.desc = desc
        self.fn = QGEMM_TYPE(_address(lib, desc["symbol"]))
        key = desc["packed"]
        self.packed, self.corr = packed[key], packed[key + ".corr"]
        self.mult, self.bias = packed[key + ".mult"], packed[key + ".bias"]
        self.pool_fn = pool_fn
        self._calls: dict = {}      # input geometry -> QGemmCall (vector kernels)
        add = desc.get("amx_call", {}).get("add_symbol")
        self.add_fn = QGEMM_TYPE(_address(lib, add)) if add else None

    def __call__(self, x, other=None):
        d = self.desc
        if d["gemm"] == "depthwise":
            return self._depthwise(x)
        if d["gemm"] == "conv" and "amx_call" in d:
            return self._amx_conv(x, other)
        if d["gemm"] == "linear":
            k = x.shape[-1]
            gather = linear_gather(x.reshape(-1, k), d["groups"])
        else:
            n, _, h, w = x.shape
            out_hw = conv_output_size(h, w, d["kernel"], d["stride"], d["padding"],
                                      d["dilation"])
            slack = d["run"] - d["kernel"][1] * x.shape[1] if d["run"] else 0
            # "pad": "kernel": packaged with the GEMM that reads a conv's padding itself
            in_kernel = d.get("pad") == "kernel" and pads_in_kernel(
                d["run"], tuple(d["padding"]), (h, w), out_hw, tuple(d["kernel"]),
                tuple(d["stride"]), tuple(d["dilation"]))
            x_nhwc = nhwc_input(x, d["x_zero_point"], (0, 0) if in_kernel else d["padding"],
                                d["cp"], slack)
            call = self._calls.get((x_nhwc.shape, in_kernel)) if d["config"] != "amx" else None
            if call is None and d["config"] != "amx":
                gather = conv_gather_unpadded(
                    x_nhwc, d["kernel"], d["stride"], d["dilation"], out_hw, d["run"],
                    tuple(d["padding"]), d["x_zero_point"]) if in_kernel else \
                    conv_gather(x_nhwc, d["kernel"], d["stride"], d["dilation"], out_hw,
                                d["run"])
                residual = d.get("residual")
                call = QGemmCall(gather, self.packed, d["kq"], d["n"], d["mr"], d["nr"],
                                 self.corr, self.mult, self.bias,
                                 residual["qparams"] if residual else d["qparams"], True,
                                 _claims(d))
                if len(self._calls) < 16:
                    self._calls[(x_nhwc.shape, in_kernel)] = call
            if call is not None:        # the vector kernels (residual add fused)
                fused = None if other is None else residual_other(other)
                out = np.ascontiguousarray(call(self.fn, self.pool_fn(), x_nhwc, other=fused))
                return out.reshape(n, out_hw[0], out_hw[1], d["n"]).transpose(0, 3, 1, 2)
            gather = conv_gather(x_nhwc, d["kernel"], d["stride"], d["dilation"], out_hw,
                                 d["run"])
        out = _qgemm(d, self.fn, self.pool_fn(), gather, self.packed, self.corr, self.mult,
                     self.bias, d["qparams"], True)
        out = np.ascontiguousarray(out)
        if other is not None:       # AMX tiles: the residual add after the GEMM
            out = _residual_add_values(out, other, d)
        if d["gemm"] == "linear":
            return out.reshape(*x.shape[:-1], d["n"])
        return out.reshape(n, out_hw[0], out_hw[1], d["n"]).transpose(0, 3, 1, 2)


    def _amx_conv(self, x, other):
        """A conv on AMX tiles as eager mode runs it (codegen/quantized.py conv_runner): a
        prepared QAmxCall per input geometry, the padding read in the kernel where the
        step says so (a channels-last input then read in place), the residual added in
        the epilogue (qgemm_amx_u8_add). Artifacts packaged before this have no
        "amx_call" and take the host-padded path of __call__."""
        d, amx = self.desc, self.desc["amx_call"]
        if not amx_permission():
            raise ArtifactError(f"step {d['name']}: this process was refused the AMX tile "
                                "state (arch_prctl)")
        n, c, h, w = x.shape
        out_hw = conv_output_size(h, w, d["kernel"], d["stride"], d["padding"], d["dilation"])
        in_kernel = amx["pad"] == "kernel"
        x_nhwc = x.transpose(0, 2, 3, 1) if in_kernel and d["cp"] == c else None
        if x_nhwc is None or not x_nhwc.flags.c_contiguous:
            slack = d["run"] - d["kernel"][1] * c if d["run"] and not in_kernel else 0
            x_nhwc = nhwc_input(x, d["x_zero_point"], (0, 0) if in_kernel else d["padding"],
                                d["cp"], slack)
        key = ("amx", x_nhwc.shape)
        call = self._calls.get(key)
        if call is None:
            gather = conv_gather_unpadded(
                x_nhwc, d["kernel"], d["stride"], d["dilation"], out_hw, d["run"],
                tuple(d["padding"]), d["x_zero_point"]) if in_kernel else \
                conv_gather(x_nhwc, d["kernel"], d["stride"], d["dilation"], out_hw, d["run"])
            residual = d.get("residual")
            call = QAmxCall(gather, self.packed, d["kq"], d["n"], self.corr, self.mult,
                            self.bias, residual["qparams"] if residual else d["qparams"],
                            True, residual=residual is not None)
            gather.buffer = None        # the call keeps no activation alive
            if len(self._calls) < 16:
                self._calls[key] = call
        if other is None:
            out = call(self.fn, self.pool_fn(), x_nhwc)
        else:
            out = call(self.add_fn, self.pool_fn(), x_nhwc, residual_other(other))
        out = np.ascontiguousarray(out)
        return out.reshape(n, out_hw[0], out_hw[1], d["n"]).transpose(0, 3, 1, 2)

    def _depthwise(self, x):
        """groups == channels: codegen/llvm/qdepthwise.py's kernel (QDepthwiseCall)."""
        d = self.desc
        n, c, h, w = x.shape
        out_hw = conv_output_size(h, w, d["kernel"], d["stride"], d["padding"], d["dilation"])
        # "pad": "kernel": packaged with the kernel that reads the padding itself
        in_kernel = d.get("pad") == "kernel" and depthwise_reads_in_place(x)
        if in_kernel:
            x_nhwc = x.transpose(0, 2, 3, 1)        # channels-last memory, read in place
        else:
            x_nhwc = nhwc_input(x, d["x_zero_point"], d["padding"], c, depthwise_slack(c))
        call = self._calls.get((x_nhwc.shape, in_kernel))
        if call is None:
            call = QDepthwiseCall(x_nhwc.shape, self.packed, d["kernel"], d["stride"],
                                  d["dilation"], out_hw, self.corr, self.mult, self.bias,
                                  d["qparams"], _claims(d),
                                  tuple(d["padding"]) if in_kernel else (0, 0),
                                  d["x_zero_point"])
            if len(self._calls) < 16:
                self._calls[(x_nhwc.shape, in_kernel)] = call
        out = call(self.fn, self.pool_fn(), x_nhwc)
        return out.reshape(n, out_hw[0], out_hw[1], c).transpose(0, 3, 1, 2)


def _residual_add_values(out: np.ndarray, other: np.ndarray, d: dict) -> np.ndarray:
    """A conv's [M, N] uint8 result plus its residual operand, as quantized_add computes
    it (dequantize both, add in float32, relu, requantize), for kernels without the fused
    epilogue."""
    r = d["residual"]
    return qadd_values(out, residual_other(other).reshape(out.shape),
                       (d["scale"], d["zero_point"]), r["other_qparams"], r["scale"],
                       r["zero_point"], r["relu"])


def qadd_values(a: np.ndarray, b: np.ndarray, a_qparams, b_qparams, scale: float,
                zero_point: int, relu: bool) -> np.ndarray:
    """quantized_add of uint8 arrays in NumPy, as the qadd kernel computes it (torch's
    arithmetic: ir/ops/quantized.py _add_ref)."""
    def real(q, qparams):
        s = np.float32(qparams[0])
        premul = np.float32(s * np.float32(-qparams[1]))
        return (q.astype(np.float64) * np.float64(s) + np.float64(premul)).astype(np.float32)
    total = real(a, a_qparams) + real(b, b_qparams)
    if relu:
        total = np.maximum(total, np.float32(0))
    total *= np.float32(1.0) / np.float32(scale)
    return np.clip(np.rint(total) + np.float32(zero_point), 0, 255).astype(np.uint8)


def dynamic_qparams(x: np.ndarray, qmin: int = 0, qmax: int = 127):
    """A dynamically quantized input's per-batch qparams (ir/ops/quantized.py
    dynamic_input_qparams: range including 0, 0..127 as fbgemm/x86 do)."""
    lo = min(float(np.min(x)), 0.0) if x.size else 0.0
    hi = max(float(np.max(x)), 0.0) if x.size else 0.0
    scale = (hi - lo) / (qmax - qmin)
    if scale == 0.0:
        scale = 0.1
    scale = float(np.float32(scale))
    return scale, int(min(max(qmin - round(lo / scale), qmin), qmax))


class QGemmDynamicStep:
    """quantized_linear_dynamic: the float input quantized per call, the int8 GEMM with a
    float32 epilogue (multiplier and zero-point correction made per call)."""

    def __init__(self, desc, lib, packed: dict, pool_fn):
        self.desc, self.pool_fn = desc, pool_fn
        self.fn = QGEMM_TYPE(_address(lib, desc["symbol"]))
        key = desc["packed"]
        self.packed, self.row_sums = packed[key], packed[key + ".row_sums"]
        self.scales, self.bias = packed[key + ".scales"], packed[key + ".bias"]

    def __call__(self, x):
        d = self.desc
        scale, zp = dynamic_qparams(x)
        qx = quantize_values(x, scale, zp, np.uint8)
        k = x.shape[-1]
        corr = (np.int64(zp) * self.row_sums).astype(np.int32)
        mult = (np.float32(scale) * self.scales).astype(np.float32)
        out = _qgemm(d, self.fn, self.pool_fn(), linear_gather(qx.reshape(-1, k), d["groups"]),
                     self.packed, corr, mult, self.bias,
                     (0.0, 0.0, 0.0 if d["relu"] else -np.inf, np.inf), False)
        return np.ascontiguousarray(out).reshape(*x.shape[:-1], d["n"])


class QAddStep:
    def __init__(self, desc, lib, pool_fn):
        self.desc, self.pool_fn = desc, pool_fn
        self.fn = QADD_TYPE(_address(lib, desc["symbol"]))

    def __call__(self, a, b):
        d = self.desc
        if a.shape != b.shape:          # a broadcast (x + x.mean(dims, keepdim=True))
            a, b = (np.ascontiguousarray(v) for v in np.broadcast_arrays(a, b))
        fa, fb = memory_order(a), memory_order(b)
        if fa is None or fb is None or a.strides != b.strides:
            a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
            fa, fb = memory_order(a), memory_order(b)
        out = qadd_run(self.fn, self.pool_fn(), fa[0], fb[0], *d["in_qparams"], d["scale"],
                       d["zero_point"], d["relu"])
        return fa[1](out)


class QMaxPoolStep:
    """max_pool2d of a quantized value, channels-last: the native kernel (qelementwise's
    qmaxpool) where the step names it and the channels are a multiple of 16, as eager
    mode picks it (codegen/quantized.py), else NumPy's (the same integers)."""

    def __init__(self, desc, lib=None, pool_fn=None):
        self.desc = desc
        self.fn = QMAXPOOL_TYPE(_address(lib, desc["symbol"])) if lib is not None else None
        self.pool_fn = pool_fn

    def __call__(self, x):
        d = self.desc
        nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        if self.fn is not None and nhwc.shape[3] % 16 == 0 and nhwc.dtype == np.uint8:
            out = qmaxpool_run(self.fn, self.pool_fn(), nhwc, d["kernel"], d["stride"],
                               d["padding"])
        else:
            out = max_pool2d_nhwc(nhwc, d["kernel"], d["stride"], d["padding"])
        return out.transpose(0, 3, 1, 2)


class QAvgPoolStep:
    """adaptive_avg_pool2d on a quantized value: integer window sums requantized with the
    input's qparams (adaptive_average_quantized, as eager does)."""

    def __init__(self, desc):
        self.desc = desc

    def __call__(self, q):
        scale, zero_point = self.desc["in_qparams"][0]
        return adaptive_average_quantized(q, scale, zero_point, self.desc["output_size"])


class QReshapeStep:
    def __init__(self, desc):
        self.shape = tuple(desc["shape"])

    def __call__(self, q):
        return np.ascontiguousarray(q).reshape(self.shape)


class QClampStep:
    """hardtanh / relu6 / clamp on a quantized value: the integers clipped to the bounds
    packaging quantized with the input's qparams (None: no bound on that side)."""

    def __init__(self, desc):
        self.low, self.high = desc["bounds_q"]

    def __call__(self, q):
        low = None if self.low is None else np.asarray(self.low, q.dtype)
        high = None if self.high is None else np.asarray(self.high, q.dtype)
        if low is None and high is None:
            return q.copy()
        return np.clip(q, low, high)


class QCatStep:
    """cat of quantized values: the result has the first input's qparams; inputs with
    others are requantized to them (as eager mode and torch's quantized cat do)."""

    def __init__(self, desc):
        self.dim, self.qparams = desc["dim"], [tuple(q) for q in desc["in_qparams"]]

    def __call__(self, *parts):
        scale, zero_point = self.qparams[0]
        parts = [q if qp == self.qparams[0] else quantize_values(
            dequantize_values(q, *qp), scale, zero_point, q.dtype)
            for q, qp in zip(parts, self.qparams)]
        return np.concatenate(parts, axis=self.dim)


class QLutStep:
    """sigmoid / tanh / hardsigmoid / hardswish of 8-bit values: the step's 256-entry
    table (made at packaging for its input's qparams), indexed by the input's bytes."""

    def __init__(self, desc):
        self.lut = np.array(desc["table"], np.uint8).view(np.dtype(desc["dtype"]))

    def __call__(self, q):
        out = np.empty_like(q)
        np.take(self.lut, q.view(np.uint8), out=out)
        return out


# the step kinds an artifact's plan names (compiler/aot_quantized.py); host steps that
# runtime/lite.py runs with the classes above
QUANTIZED_STEPS = ("quantize", "dequantize", "qgemm", "qgemm_dynamic", "qadd", "qmaxpool",
                   "qavgpool", "qreshape", "qclamp", "qcat", "qlut", "qmean")
