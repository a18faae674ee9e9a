"""CUDA routes for the ops image and audio pipelines run that have no lowering rule:
resampling (F.interpolate's kernels, antialiased resize included, and their backwards) and
the real FFT of float32 signals. eager_cuda_training.ROUTES includes these routes; each
returns None for arguments it does not handle (the op then runs on the host, with a
warning).

- resampling: every mode applies a fixed (out, in) weight matrix along each resized dim
  (ir/ops/resample.py builds it from PyTorch's index rules); the route turns each matrix
  into taps (the few inputs each output reads, with their weights) and runs
  codegen/triton/resample.py's kernel once per resized dim, on a dense copy of the input,
  in float32 (float64 for float64). The backward applies the transposed matrices. The
  taps tables live on the device, cached per (mode, sizes, scale).
- fft_rfft (float32): a GEMM of the (trimmed or zero-padded) signal rows against the real
  DFT basis [n, 2 * (n // 2 + 1)] whose columns interleave cos and -sin, so the product
  is the spectrum's (real, imag) pairs, viewed as complex64. The GEMM runs in IEEE float32
  whatever the TF32 flags say (cuFFT does not use TF32 either). O(n^2) per row instead of
  O(n log n), but on tensor-core-free float32 GEMM throughput it is still far faster than
  a host round trip for the frame sizes spectrograms use (n_fft of a few hundred).
- fft_irfft (complex64): the (real, imag) pairs of the first n // 2 + 1 bins (zero-padded
  when fewer) times the inverse basis [2m, n], the same way.
- mul/div of a complex tensor by a real number: the op on its (real, imag) pairs.
"""
from __future__ import annotations

import contextlib
import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ..ir import dtypes
from ..ir.meta import contiguous_strides
from ..ir.ops import resample as R
from ..ir.registry import OPS
from . import eager_cuda
from .devices import empty_cuda, upload
from .tensor import Tensor

_TABLES: OrderedDict = OrderedDict()     # taps tables on the device, least recently used first
_BASES: OrderedDict = OrderedDict()      # DFT bases on the device
_CACHE_SIZE = 1024                       # entries of each cache (taps tables: ~20 KB each)


def _cached(cache: OrderedDict, key, build):
    value = cache.get(key)
    if value is None:
        value = cache[key] = build()
        if len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)
    else:
        cache.move_to_end(key)
    return value


def _as_meta(value: Tensor, meta, index: int) -> Tensor:
    from .eager_cuda_training import _as_meta as exact   # that module imports this one
    return exact(value, meta, index)


# --- resampling ----------------------------------------------------------------------------
def _resample_ops() -> dict[str, tuple[str, int, bool]]:
    """op name -> (mode, spatial dims, is the backward)."""
    found = {}
    for (mode, nd), forward in R.OPS_BY_MODE.items():
        found[forward.name] = (mode, nd, False)
        found[forward.name + "_backward"] = (mode, nd, True)
    return found


RESAMPLE_OPS = _resample_ops()


def _weight_dtype(dtype):
    return dtypes.float64 if dtype.name == "float64" else dtypes.float32


def _resample(name: str):
    mode, nd, backward = RESAMPLE_OPS[name]

    def route(args, out_meta, index):
        x = args[0]
        if x.dtype.is_complex or (x.dtype.category != dtypes.Category.FLOAT and
                                  not mode.startswith("nearest")):
            return None              # the host path raises PyTorch's error for these
        if backward:
            out_sizes, in_sizes, rest = list(args[1]), list(args[2])[2:], args[3:]
        else:
            out_sizes, in_sizes, rest = list(args[1]), list(x.shape[2:]), args[2:]
        align_corners, scales = R._split(mode, nd, rest)
        dims = [((mode, nd, n, o, align_corners, s, backward),
                 lambda n=n, o=o, s=s: _matrix(mode, nd, n, o, align_corners, s, backward))
                for n, o, s in zip(in_sizes, out_sizes, scales)]
        return _as_meta(_apply_taps(x, dims, out_meta.dtype, index), out_meta, index)
    return route


def _matrix(mode, nd, n_in, n_out, align_corners, scale, backward) -> np.ndarray:
    m = R.weights(mode, n_in, n_out, align_corners, scale, nd)
    return m.T if backward else m


def _apply_taps(x: Tensor, dims, out_dtype, index: int) -> Tensor:
    """x with each resized dim's weight matrix applied along its last len(dims) dims, one
    kernel launch per dim whose matrix is not the identity (R.apply_taps on the device).
    `dims` holds (key, matrix maker): a matrix is built only when its tables are not
    cached on the device yet (building one costs milliseconds on the host; a random
    crop's sizes recur within an epoch)."""
    work = dtypes.float32 if x.dtype.name in ("float16", "bfloat16") else x.dtype
    weight_dtype = _weight_dtype(work)
    tables = [_cached(_TABLES, key + (weight_dtype.name, index),
                      lambda make=make: _tables(make(), weight_dtype, index))
              for key, make in dims]
    steps = [(k, t) for k, t in enumerate(tables) if not t.identity]
    if not steps:                   # same sizes: a copy (the result never aliases x)
        return eager_cuda.clone(x)
    y = x.contiguous()
    lead = x.ndim - len(dims)
    for count, (k, t) in enumerate(steps):
        last = count == len(steps) - 1
        y = _taps_pass(y, lead + k, t, out_dtype if last else work, weight_dtype, index)
    return y


def _taps_pass(y: Tensor, axis: int, t, out_dtype, weight_dtype, index: int) -> Tensor:
    from ..codegen.triton.resample import taps_kernel
    shape = list(y.shape)
    outer, n_in, inner = math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])
    n_out = t.index.shape[0]
    shape[axis] = n_out
    out = empty_cuda(tuple(shape), contiguous_strides(tuple(shape)), out_dtype, index)
    total = outer * n_out * inner
    if total:
        params = upload(np.array([total, n_in, n_out, inner, t.index.shape[-1]], np.int64),
                        None, index)
        kernel = taps_kernel(y.dtype, out_dtype, weight_dtype, total, t.gather)
        eager_cuda.launch(kernel, [y, t.index, t.weight, params, out], index)
    return out


@dataclass
class _Taps:
    index: Tensor                   # [n_out, taps] int32, on the device
    weight: Tensor                  # [n_out, taps]
    gather: bool                    # one tap of weight 1: a copy of the element
    identity: bool                  # the dim keeps its size and values: no pass


def _tables(m: np.ndarray, weight_dtype, index: int) -> _Taps:
    """The taps of a weight matrix on the device (the nonzero columns of each row)."""
    identity = m.shape[0] == m.shape[1] and np.array_equal(m, np.eye(len(m)))
    taps_index, taps_weight = R._taps(m)
    gather = taps_index.shape[1] == 1 and bool(np.all(taps_weight == 1))
    return _Taps(upload(np.ascontiguousarray(taps_index, np.int32), None, index),
                 upload(np.ascontiguousarray(taps_weight, weight_dtype.np_dtype), None, index),
                 gather, identity)


# --- the real FFT --------------------------------------------------------------------------
@contextlib.contextmanager
def _ieee_float32():
    """GEMMs inside compute in IEEE float32 (not TF32): a transform, not a layer."""
    from ..backends import cuda as flags
    before = flags.get_float32_matmul_precision()
    flags.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        flags.set_float32_matmul_precision(before)


def _dft_basis(n: int, norm, index: int) -> Tensor:
    """[n, 2m] float32, m = n // 2 + 1: column 2k is cos(2 pi j k / n), 2k + 1 is its
    -sin, scaled for `norm`; angles reduced modulo n exactly in integers first."""
    def build():
        m = n // 2 + 1
        j = np.arange(n, dtype=np.int64)[:, None]
        k = np.arange(m, dtype=np.int64)[None, :]
        angle = 2.0 * np.pi * ((j * k) % n) / n
        scale = {"ortho": 1.0 / math.sqrt(n), "forward": 1.0 / n}.get(norm, 1.0)
        basis = np.empty((n, 2 * m), np.float64)
        basis[:, 0::2] = np.cos(angle) * scale
        basis[:, 1::2] = -np.sin(angle) * scale
        return upload(basis.astype(np.float32), None, index)
    return _cached(_BASES, (n, norm, index), build)


def _rfft(args, out_meta, index):
    x, n, dim, norm = args
    if x.dtype.name != "float32" or x.ndim == 0:
        return None
    dim %= x.ndim
    n = x.shape[dim] if n is None else n
    rows = x.movedim(dim, -1)
    if rows.shape[-1] > n:
        rows = rows[..., :n]
    elif rows.shape[-1] < n:
        rows = OPS["pad"](rows, [0, n - rows.shape[-1]])
    lead = list(rows.shape[:-1])
    m = n // 2 + 1
    with _ieee_float32():
        pairs = OPS["mm"](rows.reshape([-1, n]).contiguous(), _dft_basis(n, norm, index))
    return _complex_from_pairs(pairs.view(lead + [m, 2]).movedim(-2, dim), out_meta, index)


def _inverse_basis(n: int, norm, index: int) -> Tensor:
    """[2m, n] float32, m = n // 2 + 1: row 2k is c_k cos(2 pi j k / n), 2k + 1 is
    -c_k sin(...), with c_k = 2 for the bins that stand for a mirrored pair and 1 for DC
    and (n even) Nyquist, whose imaginary parts the sines zero, as a c2r transform
    ignores them."""
    def build():
        m = n // 2 + 1
        k = np.arange(m, dtype=np.int64)[:, None]
        j = np.arange(n, dtype=np.int64)[None, :]
        angle = 2.0 * np.pi * ((j * k) % n) / n
        twice = np.full((m, 1), 2.0)
        twice[0] = 1.0
        if n % 2 == 0:
            twice[-1] = 1.0
        scale = {"ortho": 1.0 / math.sqrt(n), "forward": 1.0}.get(norm, 1.0 / n)
        basis = np.empty((2 * m, n), np.float64)
        basis[0::2] = np.cos(angle) * twice * scale
        basis[1::2] = -np.sin(angle) * twice * scale
        return upload(basis.astype(np.float32), None, index)
    return _cached(_BASES, ("inverse", n, norm, index), build)


def _irfft(args, out_meta, index):
    x, n, dim, norm = args
    if x.dtype.name != "complex64" or x.ndim == 0:
        return None
    dim %= x.ndim
    n = 2 * (x.shape[dim] - 1) if n is None else n
    if n < 1:
        return None
    m = n // 2 + 1
    bins = x.movedim(dim, -1)
    if bins.shape[-1] > m:
        bins = bins[..., :m]
    pairs = OPS["view_as_real"](bins)                                   # [..., bins, 2]
    if pairs.shape[-2] < m:
        pairs = OPS["pad"](pairs, [0, 0, 0, m - pairs.shape[-2]])
    lead = list(pairs.shape[:-2])
    with _ieee_float32():
        rows = OPS["mm"](pairs.reshape([-1, 2 * m]).contiguous(), _inverse_basis(n, norm, index))
    return _as_meta(rows.view(lead + [n]).movedim(-1, dim), out_meta, index)


def _complex_from_pairs(pairs: Tensor, out_meta, index: int) -> Tensor:
    """A complex tensor with out_meta's geometry from its (real, imag) pairs [..., 2]:
    the pairs are copied into a float buffer laid out as the complex result, then viewed."""
    strides = [2 * s for s in out_meta.strides] + [1]
    real = dtypes.float64 if out_meta.dtype.name == "complex128" else dtypes.float32
    out = empty_cuda(tuple(out_meta.shape) + (2,), tuple(strides), real, index)
    eager_cuda.copy_into(out, pairs)
    return OPS["view_as_complex"](out)


def _complex_by_real_scalar(op_name: str):
    """mul/div of a complex tensor by a real Python number (a spectrogram's normalization):
    the same op on its (real, imag) pairs."""
    def route(args, out_meta, index):
        x, y = args[0], args[1]
        if not (isinstance(x, Tensor) and x.dtype.is_complex and
                isinstance(y, (int, float)) and not isinstance(y, bool)) or \
                out_meta.dtype != x.dtype:
            return None
        pairs = OPS[op_name](OPS["view_as_real"](x), y, *args[2:])
        return _complex_from_pairs(pairs, out_meta, index)
    return route


ROUTES = {name: _resample(name) for name in RESAMPLE_OPS}
ROUTES.update({"fft_rfft": _rfft, "fft_irfft": _irfft, "mul": _complex_by_real_scalar("mul"),
               "div": _complex_by_real_scalar("div")})
