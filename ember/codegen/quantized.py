"""Native kernels for the quantized ops eager mode runs (ir/ops/quantized.py).

`kernel_for(op, args, cache)` returns a callable computing a quantized op natively, or None
where no native kernel applies (then the caller runs the NumPy reference):

- quantized_linear / quantized_conv2d / quantized_linear_dynamic: the int8 GEMM of
  codegen/llvm/qgemm.py (AMX tiles where the CPU has them: qgemm_amx.py; VNNI
  `vpdpbusd`; or AVX2 `vpmaddubsw`+`vpmaddwd` where the CPU lacks VNNI) with the zero-point correction, per-channel scales, bias, relu and the
  requantization to uint8 fused in its epilogue. Convolutions are implicit GEMMs over a
  channels-last uint8 input and give a channels-last result (a [N, C, H, W] view of NHWC
  memory), so a chain of convolutions never changes layout. On AMX hosts each
  convolution shape runs AMX tiles or VNNI, whichever a one-time timing found faster
  (conv_gemm_config, codegen/qgemm_choice.py).
- quantized_conv2d with groups == channels (depthwise): codegen/llvm/qdepthwise.py's
  direct kernel over the channels-last input, the same epilogue, channels-last result.
- quantized_add (add + relu): codegen/llvm/qelementwise.py, in the operands' layout.
- max_pool2d on a per-tensor quint8 value, adaptive_avg_pool2d on a per-tensor quint8 or
  qint8 one of 3 or 4 dims (`same_qparams_kernel`):
  qelementwise's uint8 max pooling over channels-last integers (C a multiple of 16; else
  NumPy's shifted views), lite's integer window sums requantized as torch's quantized
  average pooling computes them (runtime/lite_int8.py adaptive_average_quantized).

Every kernel computes what the reference computes, operation for operation, so results
are identical bit for bit (tests/quant/test_qkernels.py, test_qfused.py). Native paths
need quint8 activations, qint8 weights with zero points 0 (symmetric: every default weight
observer) per tensor or per output channel, and groups == 1 or depthwise.
"""
from __future__ import annotations

import functools
import os
import threading

import numpy as np

from ..ir import dtypes
from ..ir.ops.quantized import dynamic_input_qparams
from ..ir.quantized import QuantizedArray, qrange, quantize_array, requant_columns
from ..runtime import lite_int8 as lite
from ..runtime.threads import default_pool
from . import qgemm_choice as QC
from .llvm import qdepthwise as QD
from .llvm import qelementwise as QE
from .llvm import qgemm as Q
from .llvm import qgemm_amx as QA
from .llvm import qgemm_input as QI
from .llvm import qrow_pairs as QP
from .llvm import qstem_pool as QS


def gemm_config():
    """The int8 GEMM eager mode uses: AMX tiles where the CPU and OS allow them, else
    qgemm's choice (VNNI, AVX2 or None). Decided once per EMBER_ISA value (every
    quantized op asks: the CPU checks cost ~10 us a call)."""
    return _gemm_config_for(os.environ.get("EMBER_ISA"))


@functools.lru_cache(maxsize=8)
def _gemm_config_for(_isa_override):
    cfg = Q.active_config()
    return QA.AMX if cfg is Q.VNNI and QA.available() else cfg


def _run_gemm(cfg, gather, packed, *args, **kwargs):
    return (QA.run if cfg is QA.AMX else Q.run)(gather, packed, *args, **kwargs)


def kernel_for(op_name: str, args: list, cache: dict, clamp=None):
    """A callable computing the op on `args` (the reference's arguments), or None.
    `cache` is owned by the weight tensor: it keeps the packed weight between calls.
    clamp: integer bounds of a clamp fused into a quantized_conv2d's epilogue (None for
    other ops: there is no kernel for them with one)."""
    cfg = gemm_config()
    if cfg is None or (clamp is not None and op_name != "quantized_conv2d"):
        return None
    if op_name == "quantized_linear":
        x, w = args[0], args[1]
        if _activation(x) and _cached_weight(cache, w, 2) and _exact(cfg, x.int_repr, 0):
            return lambda: linear(*args, cache=cache, cfg=cfg)
    elif op_name == "quantized_conv2d":
        x, w, groups = args[0], args[1], args[6]
        if not (_activation(x) and _cached_weight(cache, w, 4)):
            return None
        if groups == 1 and _exact(cfg, x.int_repr, int(x.zero_point)):
            return lambda: conv2d(*args, cache=cache, clamp=clamp,
                                  cfg=conv_gemm_config(cfg, args, cache, clamp))
        if _depthwise(x, w, groups) and QD.available():
            return lambda: depthwise_conv2d(*args, cache=cache, clamp=clamp)
        if groups > 1 and _exact(cfg, x.int_repr, int(x.zero_point)):
            return lambda: grouped_conv2d(*args, cache=cache, cfg=cfg, clamp=clamp)
    elif op_name == "quantized_conv2d_add":
        x, w, groups, other = args[0], args[1], args[6], args[10]
        if groups == 1 and _activation(x) and _activation(other) and \
                _cached_weight(cache, w, 4) and _exact(cfg, x.int_repr, int(x.zero_point)):
            return lambda: conv2d(*args[:10], cache=cache, residual=args[10:],
                                  cfg=conv_gemm_config(cfg, args[:10], cache,
                                                       residual=args[10:]))
    elif op_name == "quantized_linear_dynamic":
        if _cached_weight(cache, args[1], 2):   # dynamic inputs: 0..127, exact on both
            return lambda: linear_dynamic(*args, cache=cache, cfg=cfg)
    return None


def dequantize_kernel(qa: QuantizedArray):
    """dequantize of a contiguous per-tensor 8-bit value natively (qelementwise's
    qdequantize, the reference's float32 steps: the same floats, contiguous as the op's
    meta rule lays the result out), or None. None for any other layout (channels-last,
    transposed, sliced): a result in the input's layout would not be the one a compiled
    plan reads (it reads the meta rule's), so those take the reference path, whose result
    the caller lays out by the meta rule."""
    q = qa.int_repr
    if qa.axis is not None or q.dtype.itemsize != 1 or q.dtype.kind not in "ui" or \
            not q.flags.c_contiguous or not _elementwise_native(os.environ.get("EMBER_ISA")):
        return None
    zero_point = int(qa.zero_point)
    if abs(zero_point) >= 1 << 23:
        return None
    return lambda: QE.dequantize(q, float(qa.scale), zero_point)


@functools.lru_cache(maxsize=8)
def _elementwise_native(_isa_override) -> bool:
    """QE.available(), asked once per EMBER_ISA value (as gemm_config)."""
    return QE.available()


def binary_kernel(op_name: str, a: QuantizedArray, b: QuantizedArray):
    """quantized_add of two per-tensor quint8 values of one shape, or None. Operands of one
    layout (contiguous or channels-last) are read in place and the result has it; others
    are made contiguous first (elementwise: the values do not depend on the layout)."""
    if op_name != "quantized_add" or not QE.available():
        return None
    if not (_activation(a) and _activation(b)) or a.shape != b.shape:
        return None
    flat_a, flat_b = _memory_order(a.int_repr), _memory_order(b.int_repr)
    if flat_a is None or flat_b is None or a.int_repr.strides != b.int_repr.strides:
        flat_a = _memory_order(np.ascontiguousarray(a.int_repr))
        flat_b = _memory_order(np.ascontiguousarray(b.int_repr))

    def run(scale, zero_point, relu):
        out = QE.qadd(flat_a[0], flat_b[0], (a.scale, a.zero_point), (b.scale, b.zero_point),
                      scale, zero_point, relu)
        return QuantizedArray(flat_a[1](out), a.dtype, float(scale), int(zero_point))
    return run


def same_qparams_kernel(op_name: str, qa: QuantizedArray, args: tuple):
    """max_pool2d on a channels-last per-tensor quint8 value, adaptive_avg_pool2d (integer
    window sums) on a 3-d or 4-d one, mean of an 8-bit one (lite's steps: eager mode and
    an artifact compute alike), or None."""
    if op_name == "mean" and qa.axis is None and qa.int_repr.dtype.itemsize == 1 and \
            len(args) > 3 and args[3] is None:
        dim = args[1]
        axes = None if dim is None or (isinstance(dim, (list, tuple)) and not dim) else \
            [dim] if isinstance(dim, int) else list(dim)
        return lambda: qa.with_values(lite.mean_quantized(
            qa.int_repr, qa.scale, qa.zero_point, axes, bool(args[2])))
    if op_name == "adaptive_avg_pool2d" and _per_tensor_8bit(qa) and qa.int_repr.ndim in (3, 4):
        out_size = _adaptive_size(args[1], qa.int_repr.shape[-2:])
        q4 = qa.int_repr if qa.int_repr.ndim == 4 else qa.int_repr[None]
        if out_size == [1, 1] and q4.dtype == np.uint8 and _channels_last(q4) and \
                QE.available():     # a CNN's global pool: one native call
            return lambda: _global_avg_pool(qa, q4)
        return lambda: qa.with_values(lite.adaptive_average_quantized(
            q4, qa.scale, qa.zero_point, out_size).reshape(
                qa.int_repr.shape[:-2] + tuple(out_size)))
    if op_name != "max_pool2d" or not _activation(qa) or qa.int_repr.ndim != 4:
        return None
    geometry = pool_geometry(args[1:])
    if geometry is None or not _channels_last(qa.int_repr):
        return None
    nhwc = qa.int_repr.transpose(0, 2, 3, 1)
    pool = QE.max_pool2d_nhwc if nhwc.shape[3] % 16 == 0 and QE.available() else \
        max_pool2d_nhwc
    return lambda: qa.with_values(pool(nhwc, *geometry).transpose(0, 3, 1, 2))


def _global_avg_pool(qa: QuantizedArray, q4: np.ndarray) -> QuantizedArray:
    """adaptive_avg_pool2d(qa, 1) of a channels-last uint8 [N, C, H, W] q4 (qa's integers,
    4-d) by the native kernel, else lite's steps: the same integers."""
    out = QE.global_avg_pool_nhwc(q4.transpose(0, 2, 3, 1), qa.zero_point)
    if out is None:
        out = lite.adaptive_average_quantized(q4, qa.scale, qa.zero_point, [1, 1])
    return qa.with_values(out.reshape(qa.int_repr.shape[:-2] + (1, 1)))


# --- operand checks --------------------------------------------------------------------------
def _activation(x) -> bool:
    return isinstance(x, QuantizedArray) and x.dtype is dtypes.quint8 and x.axis is None


def _per_tensor_8bit(x) -> bool:
    return isinstance(x, QuantizedArray) and x.axis is None and \
        x.dtype in (dtypes.quint8, dtypes.qint8)


def _weight(w, ndim: int) -> bool:
    return isinstance(w, QuantizedArray) and w.dtype is dtypes.qint8 and \
        w.int_repr.ndim == ndim and w.axis in (None, 0) and not np.any(w.zero_point)


def _cached_weight(cache: dict, w, ndim: int) -> bool:
    """_weight, asked once per weight tensor (the cache's owner, constant as its packed
    form is)."""
    key = ("native weight", ndim)
    if key not in cache:
        cache[key] = _weight(w, ndim)
    return cache[key]


def _exact(cfg, a: np.ndarray, pad_value: int) -> bool:
    """Whether cfg's dot products are exact on these bytes (and the padding value); only
    AVX2 needs to look at the values."""
    if cfg.vnni:
        return True
    return Q.exact_on(cfg, max(int(a.max()) if a.size else 0, pad_value))


def _depthwise(x: QuantizedArray, w: QuantizedArray, groups: int) -> bool:
    """One input channel per group and one filter per channel (MobileNet's 3x3 layers)."""
    c = x.int_repr.shape[1] if x.int_repr.ndim == 4 else -1
    return groups == c and w.int_repr.shape[:2] == (c, 1)


def _channels_last(a: np.ndarray) -> bool:
    return a.ndim == 4 and a.transpose(0, 2, 3, 1).flags.c_contiguous


_memory_order = lite.memory_order


# --- GEMM-based ops ----------------------------------------------------------------------------
def weight_scales(w: QuantizedArray, n: int) -> np.ndarray:
    if w.axis is None:
        return np.full(n, np.float32(w.scale), np.float32)
    return np.asarray(w.scale, np.float32)


@functools.lru_cache(maxsize=1024)       # a converted model asks the same per layer
def requant_params(scale: float, zero_point: int, dtype, relu: bool, clamp=None):
    """(factor, zero point, low, high) of the epilogue, factor 1.0 until epilogue_inputs
    sets the weight's (it depends on the input and weight scales); clamp: integer bounds
    (low, high) of a clamp that follows the op (relu6 / hardtanh on its result), taken
    into the epilogue's own clamp: clamping twice to nested ranges is one clamp to their
    overlap."""
    lo, hi = qrange(dtype)
    lo = max(lo, zero_point) if relu else lo
    if clamp is not None:
        lo, hi = max(lo, clamp[0]), min(hi, clamp[1])
    return (1.0, float(zero_point), float(lo), float(hi))


def epilogue_inputs(packed, x_scale: float, x_zero_point: int, w, bias, scale: float, qparams,
                    cols=slice(None)):
    """The column vectors (corr, mult, bias_term) and qparams (factor set) of a uint8
    result's epilogue: torch.ao's requantization constants (ir/quantized.py
    requant_columns) for output columns `cols` of the weight."""
    n = w.int_repr.shape[0]
    rc = requant_columns(x_scale, weight_scales(w, n), w.axis is None, bias, scale, n)
    vectors = packed.epilogue_vectors(int(x_zero_point), rc.mult[cols], rc.bias_term[cols])
    return vectors, (rc.factor,) + tuple(qparams[1:])


def _packed(cache: dict, key: str, make):
    if key not in cache:
        cache[key] = make()
    return cache[key]


_MAX_CALLS = 64      # prepared GEMMs a weight keeps (one per input geometry and qparams)


def _run_gemm_cached(cfg, cache: dict, geometry, make_gather, buffer, packed, x, w, bias,
                     qparams, out_scale: float, other=None):
    """The GEMM with everything but its input made once per input geometry and qparams and
    kept in the weight's cache: the epilogue's column vectors and the kernel's parameter
    block (the bias is compared by value on every call, so one changed in place is seen).
    make_gather() gives the gather (only on a miss); buffer is this call's input.
    other: the fused residual add's operand (lite.residual_other; qparams then has the
    add's entries too, lite.residual_qparams)."""
    key = ("gemm", cfg.name, geometry, float(x.scale), int(x.zero_point), qparams,
           float(out_scale))
    entry = cache.get(key)
    if entry is None or not _same_bias(entry[0], bias):
        vectors, qparams = epilogue_inputs(packed, x.scale, x.zero_point, w, bias, out_scale,
                                           qparams)
        gather = make_gather()
        run = (QA.prepare if cfg is QA.AMX else Q.prepare)(
            gather, packed, vectors, qparams, True, residual=other is not None)
        gather.buffer = None         # the cache keeps no activation alive
        if sum(isinstance(k, tuple) and k[0] == "gemm" for k in cache) >= _MAX_CALLS:
            for k in [k for k in cache if isinstance(k, tuple) and k[0] == "gemm"]:
                del cache[k]
        entry = cache[key] = (None if bias is None else np.array(bias, copy=True), run)
    return entry[1](buffer) if other is None else entry[1](buffer, other=other)


def _same_bias(kept, bias) -> bool:
    """Whether bias holds the bytes kept (compared as bytes: a few hundred floats take
    about a microsecond, array_equal's checks ten)."""
    if kept is None or bias is None:
        return kept is None and bias is None
    bias = np.asarray(bias)
    return kept.shape == bias.shape and kept.dtype == bias.dtype and \
        kept.tobytes() == bias.tobytes()


def _prepared_calls(cfg, rows: int, k: int) -> bool:
    """Whether a linear layer of `rows` input rows and k inputs runs a prepared GEMM
    (_LinearCall / _DynamicCall): the vector kernels with k a multiple of 4, AMX where
    its linear kernel applies (qgemm_amx.linear_applies); else the general path."""
    return k % 4 == 0 if cfg is not QA.AMX else QA.linear_applies(rows, k)


def _prepare_linear(cfg, rows: int, k: int, packed, vectors, qparams, u8_out: bool,
                    dequant_scale=None):
    """qgemm.prepare on a contiguous [rows, k] uint8 input (k a multiple of 4), or
    qgemm_amx.prepare_linear for AMX tiles (shapes linear_applies to, any k: no zero
    padded copy of the input): the same call."""
    if cfg is QA.AMX:
        return QA.prepare_linear(QA.linear_rows(rows, k, packed), packed, vectors, qparams,
                                 u8_out, dequant_scale)
    gather = lite.Gather(None, rows, np.arange(k // 4, dtype=np.int64) * 4, img_stride=k)
    return Q.prepare(gather, packed, vectors, qparams, u8_out, dequant_scale=dequant_scale)


def linear(x, w, bias, scale, zero_point, relu, cache, cfg):
    n, k = w.int_repr.shape
    a = x.int_repr
    if _prepared_calls(cfg, a.size // max(k, 1), k) and a.flags.c_contiguous:
        call = _linear_call(cache, cfg, x, w, scale, zero_point, relu)
        if bias is None or call.bias_in_place(bias):
            out = call.run(a, bias=bias).reshape(call.out_shape)
            return QuantizedArray(out, x.dtype, float(scale), int(zero_point))
    cfg = Q.tile_for(cfg, n)
    packed = _packed(cache, f"linear-{cfg.name}", lambda: Q.PackedWeight(w.int_repr, cfg))
    gather = Q.linear_gather(x.int_repr.reshape(-1, k), -(-k // 4))
    out = _run_gemm_cached(cfg, cache, ("linear", gather.m), lambda: gather, gather.buffer,
                           packed, x, w, bias, requant_params(scale, zero_point, x.dtype, relu),
                           scale)
    out = np.ascontiguousarray(out).reshape(*x.int_repr.shape[:-1], n)
    return QuantizedArray(out, x.dtype, float(scale), int(zero_point))


class _LinearCall:
    """A static linear's GEMM for one input shape and set of qparams, made once (the
    quantized model calls each layer with the same everything but its activations): the
    parameter block reads the layer's float32 bias in place on every call, so a call
    neither compares nor copies it (a bias changed in place is seen). Per-channel
    weights take bias / (x_scale * w_scale) (requant_columns' bias term), made per call
    (a division of n floats)."""

    def __init__(self, x, w, scale, zero_point, relu, cfg, cache):
        n, k = w.int_repr.shape
        packed = _packed(cache, f"linear-{cfg.name}", lambda: Q.PackedWeight(w.int_repr, cfg))
        a = x.int_repr.reshape(-1, k)
        self.n_pad, self.out_shape = packed.n_pad, x.int_repr.shape[:-1] + (n,)
        # a zero bias: its columns' constants, with per-tensor weights' factor for any bias
        zero = np.zeros(n, np.float32)
        vectors, qparams = epilogue_inputs(packed, x.scale, x.zero_point, w, zero, scale,
                                           requant_params(scale, zero_point, x.dtype, relu))
        self._divisor = None
        if w.axis is not None:
            atw = np.float32(x.scale) * weight_scales(w, n)
            # padding columns divide by 1 (their bias is 0): 0 / 0 would be NaN there
            self._divisor = np.ones(packed.n_pad, np.float32)
            self._divisor[:n] = atw
        self._cfg = cfg
        self._gemm = _prepare_linear(cfg, a.shape[0], k, packed, vectors, qparams, True)
        # the GEMM that dequantizes its result (run_dequantized), made on its first call
        # (from that call's input: the same geometry; no input array kept meanwhile)
        self._dequant_inputs = (packed, vectors, qparams, float(scale)) \
            if cfg is QA.AMX or Q.dequantizes(cfg) else None
        self._dequant = None

    def run(self, a, bias=None):
        if bias is not None and self._divisor is not None:
            bias = bias / self._divisor
        return self._gemm(a, bias=bias)

    def run_dequantized(self, a, bias=None):
        """dequantize(run(a, bias)) as float32 by one GEMM whose epilogue dequantizes the
        uint8 values it rounds (qgemm_u8_deq: the dequantize's floats exactly), or None
        where the layer's tile has no such kernel."""
        if self._dequant is None:
            if self._dequant_inputs is None:
                return None
            packed, vectors, qparams, scale = self._dequant_inputs
            rows = a.reshape(-1, a.shape[-1])     # a 3-d input's rows, as __init__'s
            self._dequant = _prepare_linear(self._cfg, rows.shape[0], rows.shape[1], packed,
                                            vectors, qparams, True, dequant_scale=scale)
        if bias is not None and self._divisor is not None:
            bias = bias / self._divisor
        return self._dequant(a, bias=bias)

    def bias_in_place(self, bias) -> bool:
        return type(bias) is np.ndarray and bias.dtype == np.float32 and \
            bias.shape == (self.n_pad,) and bias.flags.c_contiguous


def _linear_call(cache: dict, cfg, x, w, scale, zero_point, relu) -> _LinearCall:
    key = ("linear", cfg.name, x.int_repr.shape, x.scale, x.zero_point, scale, zero_point,
           relu)
    call = cache.get(key)
    if call is None:
        _forget_calls(cache, "linear")
        call = cache[key] = _LinearCall(x, w, scale, zero_point, relu,
                                        Q.tile_for(cfg, w.int_repr.shape[0]), cache)
    return call


def conv_weight_matrix(w_q: np.ndarray, cp: int, run: int) -> np.ndarray:
    """[OC, C, KH, KW] -> [OC, K] in the implicit GEMM's k order (lite.conv_k_layout): per
    kernel row, kw * c weights zero padded to `run`; or per tap, c padded to cp."""
    oc, c, kh, kw = w_q.shape
    rows = w_q.transpose(0, 2, 3, 1)               # [OC, KH, KW, C]
    if run:
        out = np.zeros((oc, kh, run), np.int8)
        out[..., :kw * c] = rows.reshape(oc, kh, kw * c)
    else:
        out = np.zeros((oc, kh, kw, cp), np.int8)
        out[..., :c] = rows
    return out.reshape(oc, -1)


def _pads_in_kernel(cfg, run: int, padding, in_hw, out_hw, kernel, stride, dilation) -> bool:
    """Whether the GEMM reads this convolution's padding itself, so that no padded copy
    of the input is made (a previous conv's channels-last result is read in place): the
    uint8 VNNI kernels' border tiles (qgemm.py) where few pixels are border pixels; AMX
    tiles (qgemm_amx.py) wherever kernel rows are runs (no dilation along W) of at least
    PAD_IN_KERNEL_MIN_RUN bytes, as they copy every A row into their tile buffer already
    and fill its padding there. Not the stem (3 channels: 24-byte runs, whose input is
    copied channels-last anyway): with every row's runs copied by masked edge copies it
    went from 3.9 to 8.3 ms at one thread (batch 8)."""
    if cfg is QA.AMX:
        return run >= lite.PAD_IN_KERNEL_MIN_RUN and any(padding) and AMX_PAD_IN_KERNEL
    return cfg.vnni and \
        lite.pads_in_kernel(run, tuple(padding), in_hw, out_hw, kernel, tuple(stride),
                            tuple(dilation))


# the AMX kernels' own padding (qgemm_amx._pack_padded_row) on; off: host-padded copies
AMX_PAD_IN_KERNEL = True


def _host_slack(cfg, pad_in_kernel: bool, slack: int) -> int:
    """Readable bytes a conv's channels-last input needs past its end: a run's slack,
    except where AMX tiles read the padding (they read no byte past a window)."""
    return 0 if pad_in_kernel and cfg is QA.AMX else slack


def _pad_copy():
    """The native padded copy of a convolution's input (qelementwise pad_nhwc: split over
    the pool), or None (NumPy's slice assignments, on the calling thread)."""
    return QE.pad_nhwc if _elementwise_native(os.environ.get("EMBER_ISA")) else None


def _conv_gather(x_nhwc, geometry, zero_point: int):
    """The gather of a conv's channels-last input: padded by the host (geometry's last
    entry None) or read unpadded, the padding in the kernel."""
    _, kernel, stride, dilation, out_hw, run, padding = geometry
    if padding is None:
        return Q.conv_gather(x_nhwc, kernel, stride, dilation, out_hw, run)
    return lite.conv_gather_unpadded(x_nhwc, kernel, stride, dilation, out_hw, run, padding,
                                     zero_point)


def conv2d(x, w, bias, stride, padding, dilation, groups, scale, zero_point, relu, cache, cfg,
           residual=None, clamp=None):
    """quantized_conv2d (groups 1) on the fused GEMM; with residual = (other, scale,
    zero_point, relu), quantized_conv2d_add: the conv's result, rounded to its own
    (scale, zero_point), added to `other` in the epilogue (qgemm_u8_add)."""
    oc, c, kh, kw = w.int_repr.shape
    cp, run = lite.conv_k_layout(c, kw, dilation[1])
    cfg = Q.tile_for(cfg, oc)
    packed = _packed(cache, f"conv-{cfg.name}",
                     lambda: Q.PackedWeight(conv_weight_matrix(w.int_repr, cp, run), cfg))
    n, _, h, wd = x.int_repr.shape
    oh, ow = lite.conv_output_size(h, wd, (kh, kw), stride, padding, dilation)
    slack = run - kw * c if run else 0
    pack = QE.pack_nhwc if c in QE.PACK_CHANNELS and QE.available() else None
    pad_in_kernel = _pads_in_kernel(cfg, run, padding, (h, wd), (oh, ow), (kh, kw), stride,
                                    dilation)
    x_nhwc = lite.nhwc_input(x.int_repr, int(x.zero_point), (0, 0) if pad_in_kernel else
                             padding, cp, _host_slack(cfg, pad_in_kernel, slack), pack,
                             _pad_copy())
    geometry = (x_nhwc.shape, (kh, kw), tuple(stride), tuple(dilation), (oh, ow), run,
                tuple(padding) if pad_in_kernel else None)
    qparams = requant_params(scale, zero_point, x.dtype, relu, clamp)
    other, conv_scale = None, scale
    if residual is not None:
        o, add_scale, add_zero_point, add_relu = residual
        qparams = lite.residual_qparams(qparams, scale, (o.scale, o.zero_point), add_scale,
                                        add_zero_point, add_relu, qrange(x.dtype)[1])
        other = lite.residual_other(o.int_repr)
        scale, zero_point = add_scale, add_zero_point
    out = _run_gemm_cached(cfg, cache, geometry,
                           lambda: _conv_gather(x_nhwc, geometry, int(x.zero_point)),
                           x_nhwc, packed, x, w, bias, qparams, conv_scale, other=other)
    nhwc = np.ascontiguousarray(out).reshape(n, oh, ow, oc)
    return QuantizedArray(nhwc.transpose(0, 3, 1, 2), x.dtype, float(scale), int(zero_point))


def conv_gemm_config(cfg, args, cache: dict, clamp=None, residual=None):
    """The GEMM a groups-1 quantized_conv2d (quantized_conv2d_add with residual) on
    `args` runs: cfg, except on AMX hosts, where AMX tiles or the VNNI kernels, whichever
    ran this convolution's shape faster (qgemm_choice: timed once on this call's operands
    at the pool's thread count, then kept in the weight's cache, the process and on
    disk). Both give the same integers, so the result does not depend on the choice."""
    if cfg is not QA.AMX:
        return cfg
    x, w, _, stride, padding, dilation = args[:6]
    a = x.int_repr
    threads = default_pool().n_threads
    key = ("conv choice", a.shape, _channels_last(a), tuple(stride), tuple(padding),
           tuple(dilation), residual is not None, threads)
    chosen = cache.get(key)
    if chosen is None:
        description = (f"quantized_conv2d x {list(a.shape)} "
                       f"{'channels_last' if key[2] else 'contiguous'} w "
                       f"{list(w.int_repr.shape)} stride {list(key[3])} padding "
                       f"{list(key[4])} dilation {list(key[5])} add {key[6]} threads {threads}")

        def on(c):
            return lambda: conv2d(*args[:10], cache=cache, cfg=c, residual=residual,
                                  clamp=clamp)
        name = QC.choose(description, {"amx": on(QA.AMX), "vnni": on(Q.VNNI)})
        chosen = cache[key] = QA.AMX if name == "amx" else Q.VNNI
        _forget_packed(cache, Q.tile_for(Q.VNNI if chosen is QA.AMX else QA.AMX,
                                         w.int_repr.shape[0]).name)
    return chosen


def _forget_packed(cache: dict, tile: str) -> None:
    """Drop the weight's packed form and prepared GEMMs for the kernel `tile` that lost
    the timing (made again should another input shape choose it)."""
    cache.pop(f"conv-{tile}", None)
    for k in [k for k in cache if isinstance(k, tuple) and k[0] == "gemm" and k[1] == tile]:
        del cache[k]


def depthwise_conv2d(x, w, bias, stride, padding, dilation, groups, scale, zero_point, relu,
                     cache, clamp=None):
    """quantized_conv2d with groups == channels (qdepthwise.py): channels-last in and out."""
    c, _, kh, kw = w.int_repr.shape
    packed = _packed(cache, "depthwise", lambda: QD.PackedDepthwise(w.int_repr))
    n, _, h, wd = x.int_repr.shape
    oh, ow = lite.conv_output_size(h, wd, (kh, kw), stride, padding, dilation)
    # a convolution's channels-last result is read as it is, the kernel reading the
    # padding; other inputs are copied channels-last with the padding around them
    in_kernel = lite.depthwise_reads_in_place(x.int_repr)
    if in_kernel:
        x_nhwc, pad = x.int_repr.transpose(0, 2, 3, 1), tuple(padding)
    else:
        x_nhwc, pad = lite.nhwc_input(x.int_repr, int(x.zero_point), padding, c,
                                      lite.depthwise_slack(c), pad=_pad_copy()), (0, 0)
    qparams = requant_params(scale, zero_point, x.dtype, relu, clamp)
    key = ("depthwise", x_nhwc.shape, pad, tuple(stride), tuple(dilation), float(x.scale),
           int(x.zero_point), qparams)
    entry = cache.get(key)
    if entry is None or not _same_bias(entry[0], bias):
        vectors, qp = epilogue_inputs(packed, x.scale, x.zero_point, w, bias, scale, qparams)
        run = QD.prepare(x_nhwc.shape, packed, tuple(stride), tuple(dilation), (oh, ow),
                         vectors, qp, pad, int(x.zero_point))
        _forget_calls(cache, "depthwise")
        entry = cache[key] = (None if bias is None else np.array(bias, copy=True), run)
    nhwc = np.ascontiguousarray(entry[1](x_nhwc)).reshape(n, oh, ow, c)
    return QuantizedArray(nhwc.transpose(0, 3, 1, 2), x.dtype, float(scale), int(zero_point))


def linear_runner(args, cache: dict):
    """quantized_linear for calls like `args` (conv_runner's contract: the same input
    geometry, layout and qparams and the same other arguments), the layer's prepared GEMM
    (_LinearCall) looked up now: a function(x, bias) of the input's integers and the
    layer's bias giving the result (a QuantizedArray). A bias that cannot be read in place
    (out_features not a multiple of the tile: a classifier's 1000) is read from a copy
    padded to the tile, made again whenever the bias's bytes change. None where no such
    runner applies (AMX tiles on a shape their linear kernel does not take, AVX2's value
    checks, k not a multiple of 4 on the vector kernels, an input that is not
    contiguous): kernel_for's path runs those. The result is linear()'s, from the
    same kernel call, without its per-call kernel choice and keys (~5 us a layer)."""
    cfg = gemm_config()
    x, w, _, scale, zero_point, relu = args[:6]
    if cfg is None or not cfg.vnni or \
            not (_activation(x) and _cached_weight(cache, w, 2)):
        return None
    k = w.int_repr.shape[1]
    if not _prepared_calls(cfg, x.int_repr.size // max(k, 1), k) or \
            not x.int_repr.flags.c_contiguous:
        return None
    call = _linear_call(cache, cfg, x, w, scale, zero_point, relu)
    run, bias_in_place, out_shape = call.run, call.bias_in_place, call.out_shape
    dtype, out_scale, out_zp = x.dtype, float(scale), int(zero_point)
    n, n_pad = w.int_repr.shape[0], call.n_pad
    padded = [None]         # (the bias's bytes, its padded float32 copy)

    def padded_bias(b):
        kept = padded[0]
        if kept is None or not _same_bias(kept[0], b):
            vector = np.zeros(n_pad, np.float32)
            vector[:n] = b          # what epilogue_vectors makes of it (column_vector)
            kept = padded[0] = (np.array(b, copy=True), vector)
        return kept[1]

    def runner(xq, b):
        if b is not None and not bias_in_place(b):
            if np.ndim(b) != 1 or np.shape(b)[0] != n:
                return None
            b = padded_bias(b)
        return QuantizedArray(run(xq, bias=b).reshape(out_shape), dtype, out_scale, out_zp)

    def dequantized(xq, b):
        """The float32 result of dequantize(runner(xq, b)) by one GEMM, or None (no such
        kernel for this tile, a bias the runner would decline)."""
        if b is not None and not bias_in_place(b):
            if np.ndim(b) != 1 or np.shape(b)[0] != n:
                return None
            b = padded_bias(b)
        value = call.run_dequantized(xq, b)
        return None if value is None else value.reshape(out_shape)
    def dequantized_for(b):
        """dequantized with the bias resolved now (a step's Python that runs before its
        input exists: fused_forward.pool_linear_dequantize): a function(xq) giving
        dequantized(xq, b), or None where the runner would decline the bias."""
        if b is not None and not bias_in_place(b):
            if np.ndim(b) != 1 or np.shape(b)[0] != n:
                return None
            b = padded_bias(b)

        def run(xq):
            value = call.run_dequantized(xq, b)
            return None if value is None else value.reshape(out_shape)
        return run
    runner.dequantized = dequantized
    runner.dequantized_for = dequantized_for
    return runner


def dynamic_runner(args, cache: dict):
    """quantized_linear_dynamic for calls like `args` (linear_runner's contract; a float
    input of one shape, contiguous float32): a function(x, bias) of the input's values
    and the layer's bias giving linear_dynamic's float32 result by the same native input
    pass and prepared GEMM, or None where the input pass declines (then the full path
    runs). None where no such runner applies (AMX tiles on a shape their linear kernel
    does not take, no native input pass)."""
    cfg = gemm_config()
    x, w, _, relu = args[:4]
    if cfg is None or not QI.available() or \
            not _cached_weight(cache, w, 2) or not isinstance(x, np.ndarray) or \
            x.dtype != np.float32 or not x.flags.c_contiguous:
        return None
    if cfg is QA.AMX and not _prepared_calls(cfg, x.size // max(x.shape[-1], 1),
                                             x.shape[-1]):
        return None
    return _dynamic_call(cache, cfg, w, x.shape, relu).run_float


def conv_runner(args, cache: dict, clamp=None, residual=None):
    """quantized_conv2d for calls like `args` (the same input geometry, layout and
    qparams, the same other arguments; a converted model's every call of one layer),
    everything but the input made now: a function(x, bias) of the input's integers
    [N, C, H, W] and the bias giving the result (a QuantizedArray), or None where this
    bias differs from the one it was made with (the full path then remakes its
    epilogue). None where no such runner applies (AMX tiles, AVX2's value checks,
    grouped convs other than depthwise, the reference): kernel_for's path runs those.
    The result is the one conv2d / depthwise_conv2d give, from the same kernel call.
    residual = (other, scale, zero_point, relu) of a quantized_add reading the conv's
    result (groups 1): the runner is then function(x, bias, other) giving the add's
    result, conv2d(residual=...)'s kernel (qgemm_u8_add), for operands `other`'s
    geometry, layout and qparams (the integers the caller passes)."""
    cfg = gemm_config()
    x, w, bias, stride, padding, dilation, groups, scale, zero_point, relu = args[:10]
    if cfg is None or not (cfg is QA.AMX or cfg.vnni) or \
            not (_activation(x) and _cached_weight(cache, w, 4)) or \
            (residual is not None and groups != 1):
        return None
    oc, c, kh, kw = w.int_repr.shape
    n, _, h, wd = x.int_repr.shape
    oh, ow = lite.conv_output_size(h, wd, (kh, kw), stride, padding, dilation)
    x_zp, dtype = int(x.zero_point), x.dtype
    qparams = requant_params(scale, zero_point, dtype, relu, clamp)
    if groups == 1:
        cp, run = lite.conv_k_layout(c, kw, dilation[1])
        cfg = Q.tile_for(conv_gemm_config(cfg, args, cache, clamp, residual), oc)
        if residual is None and cfg is QA.AMX and _row_pairs(x.int_repr, (kh, kw), stride,
                                                              dilation):
            return _row_pairs_runner(args, cache, cfg, qparams)
        packed = _packed(cache, f"conv-{cfg.name}",
                         lambda: Q.PackedWeight(conv_weight_matrix(w.int_repr, cp, run), cfg))
        slack = run - kw * c if run else 0
        pack = QE.pack_nhwc if c in QE.PACK_CHANNELS and QE.available() else None
        pad_copy = _pad_copy()
        in_kernel = _pads_in_kernel(cfg, run, padding, (h, wd), (oh, ow), (kh, kw), stride,
                                    dilation)
        host_pad = (0, 0) if in_kernel else padding
        host_slack = _host_slack(cfg, in_kernel, slack)

        # AMX tiles reading the padding: the input's channels-last view, no copy
        view = cfg is QA.AMX and host_pad == (0, 0) and cp == c and not host_slack

        def nhwc(xq):
            if view:
                t = xq.transpose(0, 2, 3, 1)
                if t.flags.c_contiguous:
                    return t
            # a copy reads xq: a deferred kernel writing it finishes first (ThreadPool.defer)
            _join_deferred()
            return lite.nhwc_input(xq, x_zp, host_pad, cp, host_slack, pack, pad_copy)
        x_nhwc = nhwc(x.int_repr)
        gather = _conv_gather(x_nhwc, (x_nhwc.shape, (kh, kw), tuple(stride), tuple(dilation),
                                       (oh, ow), run, tuple(padding) if in_kernel else None),
                              x_zp)
        conv_scale = scale
        if residual is not None:
            other, scale, zero_point, add_relu = residual
            qparams = lite.residual_qparams(qparams, conv_scale,
                                            (other.scale, other.zero_point), scale,
                                            zero_point, add_relu, qrange(dtype)[1])
        vectors, qp = epilogue_inputs(packed, x.scale, x.zero_point, w, bias, conv_scale,
                                      qparams)
        gemm = (QA.prepare if cfg is QA.AMX else Q.prepare)(
            gather, packed, vectors, qp, True, residual=residual is not None)
        gather.buffer = None            # the runner keeps no activation alive
    elif _depthwise(x, w, groups) and QD.available():
        packed = _packed(cache, "depthwise", lambda: QD.PackedDepthwise(w.int_repr))
        pad_copy = _pad_copy()
        in_kernel = lite.depthwise_reads_in_place(x.int_repr)
        pad = tuple(padding) if in_kernel else (0, 0)

        def nhwc(xq):
            _join_deferred()        # the depthwise kernel may run on this thread alone
            if in_kernel:
                return xq.transpose(0, 2, 3, 1)
            return lite.nhwc_input(xq, x_zp, padding, oc, lite.depthwise_slack(oc),
                                   pad=pad_copy)
        vectors, qp = epilogue_inputs(packed, x.scale, x.zero_point, w, bias, scale, qparams)
        gemm = QD.prepare(nhwc(x.int_repr).shape, packed, tuple(stride), tuple(dilation),
                          (oh, ow), vectors, qp, pad, x_zp)
        if in_kernel:       # the runner is for inputs read in place (the key's layout)
            reads_in_place = lite.depthwise_reads_in_place

            def nhwc(xq):        # noqa: F811 (the in-place check per call: slack varies)
                _join_deferred()
                return xq.transpose(0, 2, 3, 1) if reads_in_place(xq) else None
    else:
        return None
    kept = None if bias is None else np.array(bias, copy=True)
    out_scale, out_zp = float(scale), int(zero_point)
    if residual is not None:
        def runner_add(xq, b, other):
            if not _same_bias(kept, b):
                return None
            if not other.transpose(0, 2, 3, 1).flags.c_contiguous:
                _join_deferred()        # residual_other copies it
            out = gemm(nhwc(xq), other=lite.residual_other(other))
            out = np.ascontiguousarray(out).reshape(n, oh, ow, oc)
            return QuantizedArray(out.transpose(0, 3, 1, 2), dtype, out_scale, out_zp)
        return runner_add

    def runner(xq, b):
        if not _same_bias(kept, b):
            return None
        x_nhwc = nhwc(xq)
        if x_nhwc is None:
            return None
        out = np.ascontiguousarray(gemm(x_nhwc)).reshape(n, oh, ow, oc)
        return QuantizedArray(out.transpose(0, 3, 1, 2), dtype, out_scale, out_zp)
    return runner


def _row_pairs(xq: np.ndarray, kernel, stride, dilation) -> bool:
    """Whether an AMX convolution of this contiguous input reads it as row pairs
    (lite.row_pairs_applies: resnet's stem) through codegen/llvm/qrow_pairs.py."""
    c = xq.shape[1]
    return c in QP.CHANNELS and xq.flags.c_contiguous and QP.available() and \
        lite.row_pairs_applies(c, kernel, tuple(stride), tuple(dilation))


def row_pairs_weight_matrix(w_q: np.ndarray) -> np.ndarray:
    """[OC, C, KH, KW] -> [OC, K] in a row-pair input's k order (lite.row_pairs_gather):
    per pair of kernel rows 64 bytes, byte kx * 2C + r * C + ch the weight of kernel row
    2g + r, column kx, channel ch; zeros past 2 * C * KW bytes and for a last odd row's
    partner."""
    oc, c, kh, kw = w_q.shape
    steps = -(-kh // 2)
    rows = np.zeros((oc, 2 * steps, kw, c), np.int8)
    rows[:, :kh] = w_q.transpose(0, 2, 3, 1)
    pairs = rows.reshape(oc, steps, 2, kw, c).transpose(0, 1, 3, 2, 4).reshape(oc, steps, -1)
    out = np.zeros((oc, steps, 64), np.int8)
    out[..., :2 * c * kw] = pairs
    return out.reshape(oc, -1)


def _row_pairs_runner(args, cache: dict, cfg, qparams):
    """conv_runner's runner for an input read as row pairs (_row_pairs): each call writes
    the row-pair copy of its [N, C, H, W] integers (qrow_pairs' uint8 kernel, in place of
    the channels-last pack and border), then the AMX GEMM reads every A tile in place.
    runner.from_float(x, bias), for a float32 [N, C, H, W] x (contiguous, this input's
    shape), gives the conv of quantize_per_tensor(x, the input's scale and zero point,
    quint8) by the float kernel (quantizing on the way: one pass over the float image in
    place of the model's input quantize and the copy); None where it declines (another
    bias, layout or shape). The integers are conv2d's: the same sums, k order aside."""
    x, w, bias, stride, padding, dilation, _, scale, zero_point, _ = args[:10]
    oc, c, kh, kw = w.int_repr.shape
    n, _, h, wd = x.int_repr.shape
    oh, ow = lite.conv_output_size(h, wd, (kh, kw), stride, padding, dilation)
    x_zp, dtype = int(x.zero_point), x.dtype
    packed = _packed(cache, f"conv-pairs-{cfg.name}",
                     lambda: Q.PackedWeight(row_pairs_weight_matrix(w.int_repr), cfg))
    shape = lite.row_pairs_shape(n, h, wd, c, (kh, kw), tuple(padding), (oh, ow))
    gather = lite.row_pairs_gather(shape, (oh, ow), (kh, kw), tuple(stride))
    vectors, qp = epilogue_inputs(packed, x.scale, x.zero_point, w, bias, scale, qparams)
    gemm = QA.prepare(gather, packed, vectors, qp, True)
    copies = (lite.RowPairsCall(shape, h, tuple(padding), x_zp),
              lite.RowPairsCall(shape, h, tuple(padding), x_zp, x.scale))
    kernels = (QP.kernel(c, False), QP.kernel(c, True))
    kept = None if bias is None else np.array(bias, copy=True)
    out_scale, out_zp = float(scale), int(zero_point)

    def run(src, which: int):
        _join_deferred()        # a deferred kernel may still write src
        out = gemm(copies[which](kernels[which], default_pool(), src))
        out = np.ascontiguousarray(out).reshape(n, oh, ow, oc)
        return QuantizedArray(out.transpose(0, 3, 1, 2), dtype, out_scale, out_zp)

    def runner(xq, b):
        if not _same_bias(kept, b) or not xq.flags.c_contiguous:
            return None
        return run(xq, 0)

    def from_float(xf, b):
        if not _same_bias(kept, b) or type(xf) is not np.ndarray or \
                xf.dtype != np.float32 or xf.shape != (n, c, h, wd) or \
                not xf.flags.c_contiguous:
            return None
        return run(xf, 1)
    runner.from_float = from_float
    call, conv_fn = gemm.args
    stems: dict = {}

    def pooled(src, b, pool_geometry):
        """maxpool(conv(src)) by one kernel (codegen/llvm/qstem_pool.py), src uint8 or
        float32 as runner / from_float take it; pool_geometry ((kh, kw), (sh, sw), (ph,
        pw)); None where it declines."""
        which = int(type(src) is np.ndarray and src.dtype == np.float32)
        if not _same_bias(kept, b) or type(src) is not np.ndarray or \
                src.shape != (n, c, h, wd) or not src.flags.c_contiguous or \
                src.dtype != (np.float32 if which else np.uint8):
            return None
        stem = stems.get(pool_geometry)
        if stem is None:
            stem = stems[pool_geometry] = QS.StemPoolCall(
                call, conv_fn, (n, oh, ow, oc), pool_geometry, (shape, kh, copies, kernels)) \
                if QS.StemPoolCall.applies(call, (n, oh, ow, oc), pool_geometry) else False
        if stem is False:
            return None
        _join_deferred()        # a deferred kernel may still write src
        out = stem(default_pool(), src, which)
        return None if out is None else \
            QuantizedArray(out.transpose(0, 3, 1, 2), dtype, out_scale, out_zp)
    runner.pooled = pooled
    return runner


def _join_deferred() -> None:
    """Finish this thread's deferred kernel (runtime/threads.py ThreadPool.defer) before
    Python or a direct kernel call reads what it writes."""
    default_pool().join()


def grouped_conv2d(x, w, bias, stride, padding, dilation, groups, scale, zero_point, relu,
                   cache, cfg, clamp=None):
    """quantized_conv2d with groups > 1 (ResNeXt's, or grouped 1x1s): one fused GEMM per
    group over the shared channels-last input. A group's k runs per tap over its cg
    channels, read as 4-byte groups in place (cg rounded up to 4: the bytes past it belong
    to the next group, or to the slack past the buffer, and meet zero weights); each
    group's [M, og] result goes into its columns of the output."""
    oc, cg, kh, kw = w.int_repr.shape
    og, cpg = oc // groups, -(-cg // 4) * 4
    # the vector kernels' prepared calls (AMX tiles have no grouped form: their packing
    # pads k to 64 bytes, which these gathers' k groups are not)
    cfg = Q.tile_for(Q.VNNI if cfg is QA.AMX else cfg, og)
    n, c, h, wd = x.int_repr.shape
    oh, ow = lite.conv_output_size(h, wd, (kh, kw), stride, padding, dilation)
    x_nhwc = lite.nhwc_input(x.int_repr, int(x.zero_point), padding, c, cpg - cg)
    qparams = requant_params(scale, zero_point, x.dtype, relu, clamp)
    key = ("grouped", cfg.name, x_nhwc.shape, tuple(stride), tuple(dilation), float(x.scale),
           int(x.zero_point), qparams)
    entry = cache.get(key)
    if entry is None or not _same_bias(entry[0], bias):
        packs = _packed(cache, f"grouped-{cfg.name}", lambda: [
            Q.PackedWeight(conv_weight_matrix(w.int_repr[g * og:(g + 1) * og], cpg, 0), cfg)
            for g in range(groups)])
        _, hp, wp, _ = x_nhwc.shape
        taps = ((np.arange(kh)[:, None] * dilation[0] * wp +
                 np.arange(kw)[None, :] * dilation[1]) * c).reshape(-1, 1)
        calls = []
        for g, packed in enumerate(packs):
            cols = slice(g * og, (g + 1) * og)
            offs = (taps + g * cg + np.arange(cpg // 4)[None, :] * 4).reshape(-1)
            gather = lite.Gather(None, n * oh * ow, offs.astype(np.int64), ohw=oh * ow, ow=ow,
                                 img_stride=hp * wp * c, row_stride=stride[0] * wp * c,
                                 col_stride=stride[1] * c)
            vectors, qp = epilogue_inputs(packed, x.scale, x.zero_point, w, bias, scale,
                                          qparams, cols)
            calls.append(Q.prepare(gather, packed, vectors, qp, True))
        _forget_calls(cache, "grouped")
        entry = cache[key] = (None if bias is None else np.array(bias, copy=True), calls)
    out = lite._empty((n, oh, ow, oc), np.uint8)

    def run(begin, end, worker=0, one_thread=True):
        for g in range(begin, end):
            call = entry[1][g]
            part = call.on_one_thread(x_nhwc) if one_thread else call(x_nhwc)
            out[..., g * og:(g + 1) * og] = part.reshape(n, oh, ow, og)
    pool = default_pool()
    if groups >= 2 * pool.n_threads:    # many small GEMMs: a thread runs whole groups
        pool.parallel_for(run, groups)
    else:                               # a few large ones: every thread on each
        run(0, groups, one_thread=False)
    return QuantizedArray(out.transpose(0, 3, 1, 2), x.dtype, float(scale), int(zero_point))


def _forget_calls(cache: dict, kind: str) -> None:
    """Drop a weight's prepared calls of `kind` once it has _MAX_CALLS (a model fed ever
    new input shapes keeps a bounded cache)."""
    keys = [k for k in cache if isinstance(k, tuple) and k[0] == kind]
    if len(keys) >= _MAX_CALLS:
        for k in keys:
            del cache[k]


def linear_dynamic(x, w, bias, relu, cache, cfg):
    n, k = w.int_repr.shape
    if (cfg is not QA.AMX or _prepared_calls(cfg, x.size // max(k, 1), k)) and \
            QI.available() and x.dtype == np.float32 and x.flags.c_contiguous:
        quantized = QI.quantize_dynamic_input(x)
        if quantized is not None:
            return _dynamic_call(cache, cfg, w, x.shape, relu)(quantized, bias)
    cfg = Q.tile_for(cfg, n)
    packed = _packed(cache, f"linear-{cfg.name}", lambda: Q.PackedWeight(w.int_repr, cfg))
    scale, zp = dynamic_input_qparams(x)
    if QE.available() and x.dtype == np.float32 and x.flags.c_contiguous:
        q = QE.quantize(x, scale, zp, np.uint8)     # quantize_array's steps, natively
    else:
        q = quantize_array(x, scale, zp, dtypes.quint8).int_repr
    gather = Q.linear_gather(q.reshape(-1, k), -(-k // 4))
    mult = np.float32(scale) * weight_scales(w, n)
    qparams = (0.0, 0.0, 0.0 if relu else -np.inf, np.inf)
    out = _run_gemm(cfg, gather, packed, zp, mult, bias, qparams, u8_out=False)
    return np.ascontiguousarray(out).reshape(*x.shape[:-1], n)


class _DynamicCall:
    """A dynamic linear's GEMM for one input shape, made once: the parameter block, the
    weight's row sums and scales padded to the packed width. A call brings the input's
    quantized values and qparams (qgemm_input.quantize_dynamic_input) and makes only the
    epilogue's two per-call vectors, corr = zp * rowsum(W) and mult = scale * w_scale
    (with the reference's float32 and wrapping int32 arithmetic)."""

    def __init__(self, w, packed, x_shape, relu: bool):
        n, k = w.int_repr.shape
        self.k, self.kq, self.out_shape = k, -(-k // 4), tuple(x_shape[:-1]) + (n,)
        self.packed = packed
        self.row_sums = packed.column_vector(packed.row_sums, np.int32)
        self.scales = packed.column_vector(weight_scales(w, n), np.float32)
        self.zero_bias = packed.column_vector(0.0, np.float32)
        qparams = (0.0, 0.0, 0.0 if relu else -np.inf, np.inf)
        # rows zero padded to whole 4-byte groups in __call__, but where AMX tiles read
        # them in place whatever k
        self._pad_rows = bool(k % 4) and packed.cfg is not QA.AMX
        self.run = _prepare_linear(packed.cfg, int(np.prod(x_shape[:-1])),
                                   k if packed.cfg is QA.AMX else self.kq * 4, packed,
                                   (self.row_sums, self.scales, self.zero_bias), qparams,
                                   False)
        # the per-call vectors' own arrays, reused while no other call holds them, and
        # likewise the quantized input's buffer (run_float)
        self._corr, self._mult = np.empty_like(self.row_sums), np.empty_like(self.scales)
        self._vectors_free = threading.Lock()
        self._input = np.empty(x_shape, np.uint8)
        self._input_free = threading.Lock()

    def run_float(self, x: np.ndarray, bias):
        """The layer on a float32 input of the call's shape (contiguous): the native input
        pass into the kept buffer, then the GEMM; None where the input pass declines (a
        NaN or an infinity: the full path's reference handles it)."""
        if not self._input_free.acquire(False):     # a concurrent call: a buffer of its own
            quantized = QI.quantize_dynamic_input(x)
            return None if quantized is None else self(quantized, bias)
        try:
            quantized = QI.quantize_dynamic_input(x, out=self._input)
            return None if quantized is None else self(quantized, bias)
        finally:
            self._input_free.release()

    def __call__(self, quantized, bias):
        q, scale, zero_point = quantized
        if self._pad_rows:
            q = Q.linear_gather(q.reshape(-1, self.k), self.kq).buffer
        bias = self._bias_vector(bias)
        if not self._vectors_free.acquire(False):      # a concurrent call: arrays of its own
            return self._run(q, self.row_sums * np.int32(zero_point),
                             self.scales * np.float32(scale), bias)
        try:
            return self._run(q, np.multiply(self.row_sums, np.int32(zero_point),
                                            out=self._corr),
                             np.multiply(self.scales, np.float32(scale), out=self._mult), bias)
        finally:
            self._vectors_free.release()

    def _run(self, q, corr, mult, bias):
        return self.run(q, corr=corr, mult=mult, bias=bias).reshape(self.out_shape)

    def _bias_vector(self, bias):
        """The epilogue's bias: the layer's own array where it is float32 and as long as
        the packed width (read in place: no copy, and a change to it is seen), else a
        padded float32 copy."""
        if bias is None:
            return self.zero_bias
        if type(bias) is np.ndarray and bias.dtype == np.float32 and \
                bias.shape == self.zero_bias.shape and bias.flags.c_contiguous:
            return bias
        return self.packed.column_vector(bias, np.float32)


def _dynamic_call(cache: dict, cfg, w, x_shape, relu) -> _DynamicCall:
    key = ("dynamic", cfg.name, x_shape, bool(relu))
    call = cache.get(key)
    if call is None:
        tile = Q.tile_for(cfg, w.int_repr.shape[0])
        packed = _packed(cache, f"linear-{tile.name}", lambda: Q.PackedWeight(w.int_repr, tile))
        _forget_calls(cache, "dynamic")
        call = cache[key] = _DynamicCall(w, packed, x_shape, relu)
    return call


# --- pooling -----------------------------------------------------------------------------------
def _pair(v, default=None):
    if v is None or (isinstance(v, (list, tuple)) and len(v) == 0):
        return default
    if isinstance(v, (list, tuple)):
        return tuple(int(i) for i in v) if len(v) == 2 else (int(v[0]),) * 2
    return (int(v), int(v))


def _adaptive_size(output_size, spatial) -> list[int]:
    """adaptive pooling's output_size (an int, or a list with None for 'keep') as ints."""
    if output_size is None or isinstance(output_size, (int, np.integer)):
        output_size = [output_size] * 2
    output_size = list(output_size) * (2 if len(output_size) == 1 else 1)
    return [int(n if o is None else o) for o, n in zip(output_size, spatial)]


def pool_geometry(args: tuple):
    """(kernel, stride, padding) of max_pool2d's arguments after the input, or None where
    the native pooling does not apply (dilation, ceil_mode)."""
    args = tuple(args) + (None,) * (5 - len(args))
    kernel = _pair(args[0])
    stride = _pair(args[1], kernel)
    padding = _pair(args[2], (0, 0))
    dilation = _pair(args[3], (1, 1))
    if kernel is None or dilation != (1, 1) or bool(args[4]):
        return None
    return kernel, stride, padding


max_pool2d_nhwc = lite.max_pool2d_nhwc
