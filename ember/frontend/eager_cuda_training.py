"""CUDA routes for the ops a training step runs that have no lowering rule of their own.

eager_cuda.compute asks `run(op, args, out_meta, index)` after the view, fill and plan
routes and before the host fallback. Each entry either launches a kernel built for the op
(codegen/lowering_training.py, codegen/triton/scatter.py) or rewrites the op exactly into
ops that have CUDA kernels:

- convolution_backward_input: a convolution of the gradient (padded by
  dilation*(k-1) - padding) with the weights flipped in space and transposed per group;
  for strided convolutions one stride-1 convolution per phase of the input positions
  with the taps that reach it, written into the phase's strided view (no zero-inserted
  buffer);
- convolution_backward_weight: a split-K implicit GEMM over N*Ho*Wo and an in-order sum
  of its chunks (codegen/triton/conv_wgrad.py) for float operands; depthwise and thin
  grouped convolutions (under 8 output or input columns a group): a convolution whose
  batch is the input's channels and whose channels are the batch, with stride and
  dilation swapped, cropped to the kernel;
- max_pool2d_with_indices: one kernel (window max, then the first position holding it);
  max_pool_scatter: an atomic scatter-add of the gradient at the indices, into a
  channels-last gradient directly for channels-last operands (on the host in
  deterministic mode: with overlapping windows the atomics add in any order);
- adaptive_avg_pool2d_backward (output size dividing the input): the gradient spread over
  each window and divided by its size;
- cross_entropy / nll_loss with class-index or probability targets: log_softmax and a
  one-hot mask from comparing the targets with the class numbers;
- conv1d: conv2d over a height of 1;
- dropout / native_dropout: one kernel draws the keep mask on the device (Philox, seed and
  offset in device memory, advanced by a second one-program kernel) and scales; nothing
  goes through the host, so steps with dropout can be captured in a CUDA graph;
- gather (torch.gather, grid_sample's reads): one kernel over strided operands after
  the range check;
- index_select and embedding: a row gather; index_add (index_select's backward): an
  atomic row scatter-add (on the host in deterministic mode). Both after PyTorch's range
  check: eagerly it reads the index's min and max back to the host and raises at once;
  inside a compiled step a kernel checks on the device and the error is raised at the
  next read from the device (as PyTorch's device-side asserts surface); embedding's
  backward is one-hot products, which have kernels;
- sort and argsort (rows up to codegen/triton/sorting.MAX_ROW): a stable rank-counting
  sort kernel along the last dim of a dense copy;
- copy (broadcast and cast into a fresh tensor), arange, slice_scatter (a copy, then a
  copy into a slice view of it), reshape/flatten of a tensor no view can express (a
  dense copy, then the view), and matmul/linear on operand layouts the GEMM template
  does not take (the same op on dense copies).

Both convolution backward routes first ask cudnn_conv.backward, which runs cuDNN's dgrad /
wgrad instead where cuDNN is available and timed faster for the shape (ember's route
otherwise, and always where cuDNN is absent).

conv_transpose2d is convolution_backward_input's route with its input as the gradient;
its backward reuses both: the input gradient is a plain convolution of grad_output, the
weight gradient a plain weight gradient with input and grad_output swapped.

An entry returns None where its arguments are outside what it handles (N-d
convolutions, for example): the caller then runs the op on the host, with a warning.
Entries run with gradient recording off (eager.run_op records the op itself).
"""
from __future__ import annotations

import math

from ..ir.meta import TensorMeta
from ..ir.registry import OPS
from . import eager_cuda
from .autograd import grad_mode
from .devices import empty_cuda
from .tensor import Tensor


def run(op, args: tuple, out_meta, index: int):
    """The op's result computed on the device, or None (no CUDA route for these args)."""
    route = ROUTES.get(op.name)
    if route is None:
        return None
    with grad_mode.no_grad():
        return route(args, out_meta, index)


# --- helpers -------------------------------------------------------------------------------
def _launch(kernel, tensors, index):
    from ..codegen.triton.source import generate
    eager_cuda.launch(generate(kernel), tensors, index)


def _fresh(meta: TensorMeta, index: int) -> Tensor:
    return empty_cuda(meta.shape, meta.strides, meta.dtype, index)


def _as_meta(value: Tensor, meta: TensorMeta, index: int) -> Tensor:
    """`value` with exactly the geometry and dtype the op's meta promises."""
    if tuple(value.stride()) == tuple(meta.strides) and value.dtype == meta.dtype and \
            value.storage_offset() == 0:
        return value
    out = _fresh(meta, index)
    eager_cuda.copy_into(out, value)
    return out


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _zeros(shape, dtype, index, memory_format=None) -> Tensor:
    from ..ir.meta import contiguous_format
    return eager_cuda._fill(TensorMeta(tuple(shape), dtype,
                                       memory_format=memory_format or contiguous_format),
                            0, index)


def _layout_of(t: Tensor):
    """channels_last for a 4-D tensor stored NHWC (and not also NCHW), else None."""
    from ..ir.meta import channels_last, is_contiguous_for
    if t.ndim == 4 and not t.is_contiguous() and \
            is_contiguous_for(tuple(t.shape), tuple(t.stride()), channels_last):
        return channels_last
    return None


# --- creation and copies ---------------------------------------------------------------------
def _arange(args, out_meta, index):
    from ..codegen.lowering_training import arange_kernel
    start, _, step = args[0], args[1], args[2]
    out = _fresh(out_meta, index)
    n = out_meta.shape[0]
    if n:
        stride = out_meta.strides[0] if out_meta.strides else 1
        _launch(arange_kernel(n, _number(start), _number(step), out_meta.dtype, stride), [out],
                index)
    return out


def _number(v):
    return v.item() if isinstance(v, Tensor) else v


def _copying_reshape(op_name: str, args, out_meta, index):
    """reshape/flatten of a tensor whose strides allow no view: a dense copy, then the
    view (what PyTorch's reshape does)."""
    x = args[0]
    if x.is_contiguous():
        return None                      # a view would have been found: not this case
    return _as_meta(eager_cuda._call(OPS[op_name], (x.contiguous(),) + tuple(args[1:])),
                    out_meta, index)


def _slice_scatter(args, out_meta, index):
    target, src, dim, start, end, step = args
    out = _fresh(out_meta, index)
    eager_cuda.copy_into(out, target)
    window = OPS["slice"](out, dim, start, end, step)           # a view of `out`
    if window.numel():
        eager_cuda.copy_into(window, src)
    return out


def _dense_operands(args, out_meta, index, op_name: str, count: int):
    """A GEMM op whose operand layouts the GEMM template does not take: the same op on
    dense copies of the operands (None when they are dense already)."""
    operands = list(args[:count])
    if all(t.is_contiguous() for t in operands):
        return None
    dense = [t.contiguous() for t in operands] + list(args[count:])
    return _as_meta(eager_cuda._call(OPS[op_name], tuple(dense)), out_meta, index)


# --- convolution -----------------------------------------------------------------------------
def _conv1d(args, out_meta, index):
    """conv1d as conv2d over a height of 1 (numeric padding; 'same'/'valid' strings are
    resolved by the host path)."""
    x, w, bias, stride, padding, dilation, groups = args
    if isinstance(padding, str) or x.ndim not in (2, 3) or w.ndim != 3:
        return None
    batched = x if x.ndim == 3 else x.unsqueeze(0)
    as_2d = [[v] if isinstance(v, int) else list(v) for v in (stride, padding, dilation)]
    out = OPS["conv2d"](batched.unsqueeze(2), w.unsqueeze(2), bias, [1] + as_2d[0],
                        [0] + as_2d[1], [1] + as_2d[2], groups).squeeze(2)
    return _as_meta(out if x.ndim == 3 else out.squeeze(0), out_meta, index)


# --- convolution backward --------------------------------------------------------------------
def _conv_args(args):
    stride, padding, dilation, transposed, output_padding, groups = args[3:9]
    return _pair(stride), _pair(padding), _pair(dilation), transposed, groups


def _flipped_transposed_weight(w: Tensor, groups: int, index: int) -> Tensor:
    """[Cout, Cin/g, kh, kw] -> [Cin, Cout/g, kh, kw], each kernel flipped in space; in
    the weight's own layout (a channels-last weight gives an OHWI one: the implicit-GEMM
    conv's fast layout; an H100 ran resnet18's input-gradient convs 4-5x slower from
    OIHW copies of channels-last weights)."""
    from ..codegen.lowering_training import strided_copy
    from ..ir.meta import channels_last, contiguous_strides, is_contiguous_for
    co, cig, kh, kw = w.shape
    cog = co // groups
    s0, s1, s2, s3 = w.stride()
    shape = (groups, cig, cog, kh, kw)          # output [g, ci, co_local, kh, kw]
    src_strides = (cog * s0, s1, s0, -s2, -s3)
    offset = (kh - 1) * s2 + (kw - 1) * s3
    strides = contiguous_strides(shape)
    if is_contiguous_for(tuple(w.shape), tuple(w.stride()), channels_last) and \
            not w.is_contiguous():
        strides = (cig * kh * kw * cog, kh * kw * cog, 1, kw * cog, cog)
    out = empty_cuda(shape, strides, w.dtype, index)
    kernel = strided_copy(shape, src_strides, offset, w.dtype, w._array.extent(), strides,
                          w.dtype, out._array.extent())
    _launch(kernel, [w, out], index)
    return out.view([groups * cig, cog, kh, kw])


def _conv_backward_input(args, out_meta, index):
    g, w, input_size = args[0], args[1], list(args[2])
    stride, padding, dilation, transposed, groups = _conv_args(args)
    if w.ndim != 4 or len(input_size) != 4:
        return None
    if transposed:
        return _transposed_conv_backward_input(args, out_meta, index)
    from . import cudnn_conv                 # cuDNN's dgrad where it is the faster
    return cudnn_conv.backward("dgrad", g, w, out_meta, (stride, padding, dilation), index,
                               lambda: _conv_backward_input_triton(args, out_meta, index))


def _conv_backward_input_triton(args, out_meta, index):
    g, w, input_size = args[0], args[1], list(args[2])
    stride, padding, dilation, transposed, groups = _conv_args(args)
    n, _, ho, wo = g.shape
    size = input_size[2:]
    ks = w.shape[2:]
    # where the gradient's elements go in a zero buffer that a stride-1 convolution reads
    lead, lengths, crops = [], [], []
    for d in range(2):
        reach = dilation[d] * (ks[d] - 1)
        q = reach - padding[d]
        extra = size[d] + 2 * padding[d] - reach - 1 - ([ho, wo][d] - 1) * stride[d]
        lead.append(max(q, 0))
        lengths.append(([ho, wo][d] - 1) * stride[d] + 1 + extra + 2 * max(q, 0))
        crops.append(max(-q, 0))
    weight = _flipped_transposed_weight(w, groups, index)
    if stride != (1, 1):
        return _input_gradient_by_phase(g, weight, size, ks, stride, padding, dilation,
                                        groups, out_meta, index)
    if stride == (1, 1) and crops == [0, 0]:
        spread, pad = g, lead                   # plain padding does the zero insertion
    else:
        spread = _zeros([n, g.shape[1]] + lengths, g.dtype, index,
                        _layout_of(g))           # the gradient's layout (channels-last)
        window = spread[:, :, lead[0]:lead[0] + (ho - 1) * stride[0] + 1:stride[0],
                        lead[1]:lead[1] + (wo - 1) * stride[1] + 1:stride[1]]
        eager_cuda.copy_into(window, g)
        pad = [0, 0]
    out = OPS["conv2d"](spread, weight, None, [1, 1], pad, list(dilation), groups)
    if crops != [0, 0]:
        out = out[:, :, crops[0]:crops[0] + size[0], crops[1]:crops[1] + size[1]]
    return _as_meta(out, out_meta, index)


def _phases(size: int, k: int, stride: int, padding: int, dilation: int, g_size: int):
    """Per output phase r (the input positions h = stride*q + r): None where no kernel tap
    reaches them (their gradient is zero), else (r, count, first, step, taps, dilation',
    padding', start). For a phase, the taps kh with (r + padding - kh*dilation) divisible
    by stride read the gradient at q + (r + padding - kh*dilation) / stride: a stride-1
    convolution of the gradient with those taps of the flipped kernel (`first`::`step` of
    it, `taps` of them, dilation'), padded by padding' both sides and cropped from `start`
    to `count` positions."""
    phases = []
    for r in range(min(stride, size)):
        count = len(range(r, size, stride))
        taps = [kh for kh in range(k) if (r + padding - kh * dilation) % stride == 0]
        if not taps:
            phases.append(None)
            continue
        step = taps[1] - taps[0] if len(taps) > 1 else 1
        reach = dilation * step // stride if len(taps) > 1 else 1   # taps' offset in g
        low = (r + padding - taps[-1] * dilation) // stride  # the last tap reads lowest
        pad = max(0, -low, count + low + reach * (len(taps) - 1) - g_size)
        phases.append((r, count, k - 1 - taps[-1], step, len(taps), reach, pad, low + pad))
    return phases


def _input_gradient_by_phase(g, weight, size, ks, stride, padding, dilation, groups, out_meta,
                             index):
    """A strided convolution's input gradient without a zero-inserted buffer: for each of
    the stride_h * stride_w phases of the input positions, a stride-1 convolution of the
    gradient with the kernel taps that reach that phase, written into that phase's strided
    view of the result. The zero-inserted route filled a buffer of the input's size and
    spent (stride_h*stride_w - 1)/(stride_h*stride_w) of its convolution's products on
    the inserted zeros; positions that no tap reaches (a 1x1 stride-2 kernel's odd rows)
    are the only ones filled."""
    per_dim = [_phases(size[d], ks[d], stride[d], padding[d], dilation[d], g.shape[2 + d])
               for d in range(2)]
    if any(p is None for p in per_dim[0] + per_dim[1]):
        out = eager_cuda._fill(out_meta, 0, index)
    else:
        out = _fresh(out_meta, index)
    for ph in per_dim[0]:
        for pw in per_dim[1]:
            if ph is None or pw is None:
                continue
            (rh, nh, fh, sh, th, dh, padh, starth), (rw, nw, fw, sw, tw, dw, padw, startw) = \
                ph, pw
            # the taps as a strided view: ember's conv reads weights in any strides (the
            # same products in the same order), where a dense copy of each phase's taps
            # was a kernel of its own to compile and launch (a resnet18 training step: 13)
            taps = weight[:, :, fh::sh, fw::sw][:, :, :th, :tw]
            part = OPS["conv2d"](g, taps, None, [1, 1], [padh, padw], [dh, dw], groups)
            part = part[:, :, starth:starth + nh, startw:startw + nw]
            eager_cuda.copy_into(out[:, :, rh::stride[0], rw::stride[1]], part)
    return out


def _transposed_conv_backward_input(args, out_meta, index):
    """A transposed convolution is the input gradient of a convolution with the same
    weights, so its own input gradient is that convolution run forward on grad_output
    (cropped to the input's size, which output_padding can leave smaller)."""
    g, w, input_size = args[0], args[1], list(args[2])
    stride, padding, dilation, _, groups = _conv_args(args)
    out = OPS["conv2d"](g, w, None, list(stride), list(padding), list(dilation), groups)
    out = out[:, :, :input_size[2], :input_size[3]]
    return _as_meta(out, out_meta, index)


def _conv_transpose2d(args, out_meta, index):
    """conv_transpose2d is the input gradient of the convolution with the same weights:
    convolution_backward_input's route with the input as the gradient."""
    x, w, bias, stride, padding, output_padding, groups, dilation = args
    if x.ndim != 4 or w.ndim != 4:
        return None
    as_gradient = (x, w, list(out_meta.shape), _pair(stride), _pair(padding), _pair(dilation),
                   False, [0, 0], groups)
    out = _conv_backward_input(as_gradient, out_meta, index)
    if bias is not None:
        out = _as_meta(out + bias.reshape([1, -1, 1, 1]), out_meta, index)
    return out


def _conv_backward_weight(args, out_meta, index):
    g, x, weight_size = args[0], args[1], list(args[2])
    stride, padding, dilation, transposed, groups = _conv_args(args)
    if x.ndim != 4 or len(weight_size) != 4:
        return None
    if transposed:
        # the weight gradient of the convolution whose input gradient the transposed one
        # is: that convolution's input is grad_output, its output gradient the input
        return _conv_backward_weight((x, g) + tuple(args[2:6]) + (False,) + tuple(args[7:]),
                                     out_meta, index)
    from . import cudnn_conv                 # cuDNN's wgrad where it is the faster
    return cudnn_conv.backward("wgrad", g, x, out_meta, (stride, padding, dilation), index,
                               lambda: _conv_backward_weight_triton(args, out_meta, index))


def _conv_backward_weight_triton(args, out_meta, index):
    g, x, weight_size = args[0], args[1], list(args[2])
    stride, padding, dilation, transposed, groups = _conv_args(args)
    n, cin, h, w = x.shape
    co, cig, kh, kw = weight_size
    cog = co // groups
    ho, wo = g.shape[2:]
    if _split_k_pays(g, x, cog, cig * kh * kw):
        return _weight_grad_split_k(g, x, weight_size, stride, padding, dilation, groups,
                                    out_meta, index)
    if groups == 1:
        return _as_meta(_weight_grad_per_sample(g, x, kh, kw, stride, padding, dilation),
                        out_meta, index)
    else:
        batch_as_channels = x.reshape([n, groups, cig, h, w]).permute(
            [2, 1, 0, 3, 4]).contiguous().view([cig, groups * n, h, w])
        kernels = g.reshape([n, groups, cog, ho, wo]).permute(
            [1, 2, 0, 3, 4]).contiguous().view([groups * cog, n, ho, wo])
    out = OPS["conv2d"](batch_as_channels, kernels, None, list(dilation), list(padding),
                        list(stride), groups)                 # [Cin/g, Cout, kh', kw']
    out = out[:, :, :kh, :kw].permute([1, 0, 2, 3])
    return _as_meta(out, out_meta, index)


def _split_k_pays(g: Tensor, x: Tensor, m: int, n: int) -> bool:
    """The split-K GEMM (codegen/triton/conv_wgrad.py) for float GEMM dtypes where each
    group's output fills at least half of tl.dot's smallest tile (16) each way; depthwise
    and thin grouped convolutions keep the batch-as-channels convolution."""
    return x.dtype.name in ("float32", "float16", "bfloat16") and g.dtype == x.dtype and \
        m >= 8 and n >= 8


def _weight_grad_split_k(g, x, weight_size, stride, padding, dilation, groups, out_meta,
                         index):
    """dW as one split-K implicit GEMM over N*Ho*Wo and an in-order sum of the chunks."""
    from ..codegen.triton import conv_wgrad
    from ..codegen.triton.gemm import conv_input_precision
    from ..ir.dtypes import float32
    from ..ir.fused import wgrad_reads_nchw
    if wgrad_reads_nchw(x.dtype.name, weight_size):
        # float32 dots (TF32 or IEEE) want both operands contiguous along N*Ho*Wo: Hopper's
        # tf32 wgmma takes no transposed operand, and channels-last tiles went through
        # 4-byte copies, 2-3x slower than NCHW copies of both plus the NCHW kernel where
        # Cin*KH*KW >= 512 (H100, resnet18 at batch 64: layer1 0.72 ms against 0.38,
        # layer3 0.71 against 0.24); below it the copies cost more than they save (conv1
        # 0.52 direct against 0.75, the strided 1x1 downsample 0.064 against 0.215)
        x = x if x.stride(3) == 1 else x.contiguous()
        g = g if g.stride(3) == 1 else g.contiguous()
    problem = conv_wgrad.WeightGradProblem(
        tuple(x.shape), tuple(x.stride()), tuple(g.shape), tuple(g.stride()),
        tuple(weight_size), tuple(out_meta.strides), tuple(stride), tuple(padding),
        tuple(dilation), groups, x.dtype, out_meta.dtype, conv_input_precision(x.dtype))
    split = conv_wgrad.plan(problem, **conv_wgrad.tiles_for(problem))
    out = _fresh(out_meta, index)
    if split.splits == 1:
        eager_cuda.launch(conv_wgrad.partial_kernel(problem, split), [g, x, out], index)
        return out
    workspace = empty_cuda((conv_wgrad.workspace_elements(problem, split),), (1,), float32,
                           index)
    eager_cuda.launch(conv_wgrad.partial_kernel(problem, split), [g, x, workspace], index)
    eager_cuda.launch(conv_wgrad.reduce_kernel(problem, split), [workspace, out], index)
    return out


def _weight_grad_per_sample(g, x, kh, kw, stride, padding, dilation):
    """The weight gradient as a grouped convolution, one group per sample, then a sum over
    the samples. One convolution over the whole batch would reduce N*Ho*Wo products in
    one tile (a GEMM with a tiny output and a huge K, a single program on the GPU); one
    group per sample gives N programs of Ho*Wo each."""
    n, cin = x.shape[:2]
    co, ho, wo = g.shape[1:]
    samples_as_channels = x.permute([1, 0, 2, 3])              # [Cin, N, H, W] (a view)
    kernels = g.reshape([n * co, 1, ho, wo])                   # sample-major groups
    out = OPS["conv2d"](samples_as_channels, kernels, None, list(dilation), list(padding),
                        list(stride), n)                       # [Cin, N*Cout, kh', kw']
    out = out[:, :, :kh, :kw].reshape([cin, n, co, kh, kw]).sum([1])
    return out.permute([1, 0, 2, 3])


# --- sorting -------------------------------------------------------------------------------
def _sorted_along(x: Tensor, dim: int, descending: bool, index: int):
    """(values, indices) of a stable sort of x along dim on the device, or None (empty,
    0-d, complex or bool tensors, rows longer than the kernel takes)."""
    from ..codegen.triton.sorting import sort_rows
    from ..ir import dtypes
    from ..ir.errors import LoweringError
    from ..ir.meta import contiguous_strides
    if x.ndim == 0 or x.numel() == 0:
        return None
    dim = dim % x.ndim
    n = x.shape[dim]
    try:
        kernel = sort_rows(x.numel() // n, n, x.dtype, bool(descending))
    except LoweringError:
        return None
    rows = x.movedim(dim, -1).contiguous()
    shape = tuple(rows.shape)
    values = empty_cuda(shape, contiguous_strides(shape), x.dtype, index)
    indices = empty_cuda(shape, contiguous_strides(shape), dtypes.int64, index)
    eager_cuda.launch(kernel, [rows, values, indices], index)
    return values.movedim(-1, dim), indices.movedim(-1, dim)


def _sort(args, out_meta, index):
    x, dim, descending = args[:3]
    found = _sorted_along(x, dim, descending, index)
    if found is None:
        return None
    return tuple(_as_meta(t, m, index) for t, m in zip(found, out_meta))


def _argsort(args, out_meta, index):
    x, dim, descending = args[:3]
    found = _sorted_along(x, dim, descending, index)
    return None if found is None else _as_meta(found[1], out_meta, index)


# --- pooling -------------------------------------------------------------------------------
def _max_pool2d_with_indices(args, out_meta, index):
    from ..codegen.lowering_training import max_pool2d_with_indices_kernel
    from ..ir.meta import meta_of
    x = args[0]
    values_meta, indices_meta = out_meta
    values, indices = _fresh(values_meta, index), _fresh(indices_meta, index)
    if values.numel():
        kernel = max_pool2d_with_indices_kernel(meta_of(x), x._array.extent(), tuple(args[1:6]),
                                                values_meta, indices_meta)
        _launch(kernel, [x, values, indices], index)
    return values, indices


def _max_pool_scatter(args, out_meta, index):
    from ..codegen.triton.scatter import plane_scatter_add
    from ..ir.errors import LoweringError
    g, x, indices, dims = args
    from .determinism import are_deterministic_algorithms_enabled
    if are_deterministic_algorithms_enabled():
        return None                   # atomics add overlapping windows in any order
    spatial_in = math.prod(x.shape[-dims:]) if dims else 1
    spatial_out = math.prod(g.shape[-dims:]) if dims else 1
    work = _atomic_dtype(g.dtype)
    # channels-last operands scatter into a channels-last gradient: no NCHW copies of the
    # gradient and indices, no copy of the result back (resnet18's stem pool at batch 64:
    # 205 MB each way)
    values = g.to(work)
    layout = _layout_of(x) if dims == 2 and _layout_of(values) and _layout_of(indices) \
        else None
    channels = x.shape[1] if layout is not None else 0
    try:
        kernel = plane_scatter_add(g.numel(), max(spatial_out, 1), spatial_in, work, channels)
    except LoweringError:
        return None
    out = _zeros(list(x.shape), work, index, layout)
    if g.numel():
        if layout is None:
            values, indices = values.contiguous(), indices.contiguous()
        eager_cuda.launch(kernel, [values, indices, out], index)
    return _as_meta(out, out_meta, index)


def _atomic_dtype(dtype):
    """float16/bfloat16 gradients are added in float32 (no half atomics in the scatter
    kernels; the sums are also more exact), then rounded once by _as_meta's copy."""
    from ..ir import dtypes
    return dtypes.float32 if dtype.name in ("float16", "bfloat16") else dtype


def _adaptive_avg_pool2d_backward(args, out_meta, index):
    g, x = args
    (h, w), (oh, ow) = x.shape[-2:], g.shape[-2:]
    if h % oh or w % ow:
        return None                   # overlapping adaptive windows: not handled here
    kh, kw = h // oh, w // ow
    lead = list(g.shape[:-2])
    spread = (g / float(kh * kw)).reshape(lead + [oh, 1, ow, 1]).expand(
        lead + [oh, kh, ow, kw]).contiguous().view(list(x.shape))
    return _as_meta(spread, out_meta, index)


# --- indexing --------------------------------------------------------------------------------
def _gather(src: Tensor, dim: int, index: Tensor, out_meta, index_: int):
    """src's slices at `index` along `dim` (a contiguous copy), after the range check that
    PyTorch makes (a bad index is an error, never a silent read elsewhere)."""
    from ..codegen.triton.scatter import gather_rows
    if src.ndim == 0 or src.dtype.is_complex or index.dtype.name not in ("int64", "int32"):
        return None
    size = src.shape[dim]
    flat = _checked_rows(index, size, dim)
    outer = math.prod(src.shape[:dim])
    inner = math.prod(src.shape[dim + 1:])
    out = _fresh(TensorMeta(tuple(out_meta.shape), src.dtype), index_)
    if out.numel():
        kernel = gather_rows(outer, size, flat.numel(), inner, src.dtype, flat.dtype)
        eager_cuda.launch(kernel, [src.contiguous(), flat, out], index_)
    return _as_meta(out, out_meta, index_)


def _checked_rows(index: Tensor, size: int, dim: int) -> Tensor:
    """The index flattened, after PyTorch's range check (a bad index is an error, never
    a silent access elsewhere). Eagerly it reads the index's min and max back and raises
    at once; inside a compiled CUDA step (`deferred_index_checks`) a kernel checks it on
    the device instead, so the step may be captured in a CUDA graph."""
    from ..ir.errors import EmberIndexError
    flat = index.reshape([-1])
    if _DEFERRED[0]:
        return _checked_on_device(flat.contiguous(), size, dim)
    if flat.numel():
        low, high = int(flat.amin().item()), int(flat.amax().item())
        if low < 0 or high >= size:
            raise EmberIndexError(f"index out of range in self (index {low if low < 0 else high}"
                                  f" for dim {dim} of size {size})")
    return flat.contiguous()


# --- index range checks on the device ------------------------------------------------------
# PyTorch's CUDA gathers assert on the device and the error surfaces at a later
# synchronization; here a bad index is replaced by 0 (the gather reads in range) and
# recorded in a per-device int64 pair (index, size + 1) that the next read of a CUDA
# tensor's values (Tensor.cpu/.item/...) checks, raising PyTorch's IndexError there.
_DEFERRED = [0]
_INDEX_FLAGS: dict[int, Tensor] = {}


class deferred_index_checks:
    """Inside: gathers check their indices on the device (compile_cuda's eager steps)."""

    def __enter__(self):
        _DEFERRED[0] += 1

    def __exit__(self, *exc):
        _DEFERRED[0] -= 1


def _checked_on_device(flat: Tensor, size: int, dim: int) -> Tensor:
    from ..codegen.triton.scatter import checked_index
    from ..ir import dtypes
    from .devices import tensor_index
    index = tensor_index(flat)
    flag = _INDEX_FLAGS.get(index)
    if flag is None or not _same_memory(flag, index):
        flag = _INDEX_FLAGS[index] = eager_cuda._fill(TensorMeta((2,), dtypes.int64), 0, index)
    out = _fresh(TensorMeta(tuple(flat.shape), flat.dtype), index)
    if flat.numel():
        eager_cuda.launch(checked_index(flat.numel(), size, flat.dtype), [flat, flag, out], index)
    return out


def raise_deferred_index_error(index: int) -> None:
    """Raise PyTorch's error if a device-side index check on device `index` failed since
    the last call (then clear it). Called after a device-to-host read, which has
    synchronized the stream the checks ran on."""
    import numpy as np
    from ..ir.errors import EmberIndexError
    from ..runtime.cuda.stream import copy_device_to_host, current_stream
    from .devices import data_ptr
    flag = _INDEX_FLAGS.get(index)
    if flag is None or not _same_memory(flag, index):
        return
    pair = np.zeros(2, np.int64)
    copy_device_to_host(pair, data_ptr(flag), current_stream(index))
    if pair[1]:
        # cleared in place: a captured CUDA graph keeps writing to this buffer
        eager_cuda.copy_into(flag, eager_cuda._fill(TensorMeta((2,), flag.dtype), 0, index))
        raise EmberIndexError(f"index out of range in self (index {int(pair[0])} for a dim of "
                              f"size {int(pair[1]) - 1}; found by a device-side check of a "
                              "compiled CUDA step, raised at the first read from the device "
                              "after it)")


def _gather_op(args, out_meta, index):
    """torch.gather on strided operands: one kernel reading src at the index's values,
    after the range check (gather never wraps negative indices)."""
    from ..codegen.triton.scatter import gather_along
    src, dim, idx = args[0], args[1], args[2]
    if src.ndim != idx.ndim or src.dtype.is_complex or idx.dtype.name not in ("int64", "int32"):
        return None
    if src.ndim == 0:                            # a scalar is its own 1-element row
        src, idx = src.reshape([1]), idx.reshape([1])
    dim %= src.ndim
    _checked_rows(idx, src.shape[dim], dim)
    out = _fresh(TensorMeta(tuple(idx.shape), src.dtype), index)
    if out.numel():
        kernel = gather_along(tuple(idx.shape), dim, tuple(src.stride()), tuple(idx.stride()),
                              src.dtype, idx.dtype)
        eager_cuda.launch(kernel, [src, idx, out], index)
    return _as_meta(out, out_meta, index)


def _index_add(args, out_meta, index):
    from ..codegen.triton.scatter import scatter_add_rows
    from ..ir.errors import LoweringError
    from .determinism import are_deterministic_algorithms_enabled
    target, dim, idx, source, alpha = args
    if target.ndim == 0 or idx.dtype.name not in ("int64", "int32") or \
            are_deterministic_algorithms_enabled():  # atomics add repeats in any order
        return None
    dim %= target.ndim
    size = target.shape[dim]
    work = _atomic_dtype(out_meta.dtype)
    try:
        kernel = scatter_add_rows(math.prod(target.shape[:dim]), size,
                                  max(idx.numel(), 1), math.prod(target.shape[dim + 1:]),
                                  work, idx.dtype)
    except LoweringError:
        return None
    flat = _checked_rows(idx, size, dim)
    from ..ir.meta import contiguous_strides
    out = empty_cuda(tuple(target.shape), contiguous_strides(tuple(target.shape)), work, index)
    eager_cuda.copy_into(out, target)
    values = source if alpha == 1 else source * alpha
    if values.numel():
        values = values.to(work).contiguous()
        eager_cuda.launch(kernel, [values, flat, out], index)
    return _as_meta(out, out_meta, index)


def _index_select(args, out_meta, index):
    src, dim, idx = args
    if src.ndim == 0:
        return None
    return _gather(src, dim % src.ndim, idx, out_meta, index)


def _embedding(args, out_meta, index):
    weight, indices = args[0], args[1]
    return _gather(weight, 0, indices, out_meta, index)


# --- dropout --------------------------------------------------------------------------------
def _dropout_pair(x: Tensor, p: float, train, index: int):
    """(output, keep mask) of dropout, the mask drawn on the device by a counter-based
    generator (codegen/triton/dropout.py) whose seed and offset live in device memory:
    no host read or upload, so a compiled step with dropout replays as one CUDA graph and
    each replay draws a new mask. Deterministic per seed (ember.manual_seed /
    ember.cuda.manual_seed restart the sequence); the masks differ from the CPU's."""
    from ..codegen.triton.dropout import advance_kernel, dropout_kernel
    if train is False or p == 0:
        return eager_cuda.clone(x), OPS["ones_like"](x, dtype=_bool())
    if p == 1:
        return OPS["zeros_like"](x), OPS["zeros_like"](x, dtype=_bool())
    if x.dtype.is_complex or not x.dtype.is_floating_point:
        return None
    seed, offset = _philox_state(index)
    dense = x.contiguous()
    out = _fresh(TensorMeta(tuple(x.shape), x.dtype), index)
    keep = _fresh(TensorMeta(tuple(x.shape), _bool()), index)
    if x.numel():
        eager_cuda.launch(dropout_kernel(x.numel(), float(p), x.dtype),
                          [dense, seed, offset, out, keep], index)
        eager_cuda.launch(advance_kernel(x.numel()), [offset], index)
    return out, keep


# per device: the dropout generator's (seed, offset), int64 tensors of one element
_PHILOX: dict[int, tuple[Tensor, Tensor]] = {}


def _philox_state(index: int) -> tuple[Tensor, Tensor]:
    """The device generator's (seed, offset) tensors, made on first use by fill kernels
    (no upload) from the default generator's seed. Reseeding rewrites them in place
    (`_restart_device_generators`), so a captured graph that reads them follows too."""
    from .random import default_generator
    state = _PHILOX.get(index)
    if state is None or not _same_memory(state[0], index):
        seed = _fill_int64(_int64_bits(default_generator.initial_seed()), index)
        state = _PHILOX[index] = (seed, _fill_int64(0, index))
    return state


def _same_memory(kept: Tensor, index: int) -> bool:
    """Whether a tensor kept across calls is still in the device's current allocator (CPU
    tests emulate a fresh device per test)."""
    from ..runtime.cuda.allocator import device_allocator
    return kept._storage._allocator is device_allocator(index)


def _int64_bits(seed: int) -> int:
    return seed - 2 ** 64 if seed >= 2 ** 63 else seed


def _fill_int64(value: int, index: int, into: Tensor | None = None) -> Tensor:
    from ..ir import dtypes
    made = eager_cuda._fill(TensorMeta((1,), dtypes.int64), value, index)
    if into is None:
        return made
    eager_cuda.copy_into(into, made)
    return into


def _restart_device_generators(seed: int) -> None:
    """ember.manual_seed (or cuda.manual_seed, seed, set_rng_state): every device's
    dropout generator restarts at offset 0 of the new seed."""
    for index, (seed_t, offset_t) in list(_PHILOX.items()):
        if not _same_memory(seed_t, index):
            del _PHILOX[index]
            continue
        _fill_int64(_int64_bits(seed), index, into=seed_t)
        _fill_int64(0, index, into=offset_t)


def _register_reseed_hook():
    from .random import ON_RESEED
    ON_RESEED.append(_restart_device_generators)


_register_reseed_hook()


def _bool():
    from ..ir import dtypes
    return dtypes.bool_


def _native_dropout(args, out_meta, index):
    pair = _dropout_pair(*args, index)
    if pair is None:
        return None
    out, keep = pair
    return _as_meta(out, out_meta[0], index), _as_meta(keep, out_meta[1], index)


def _dropout(args, out_meta, index):
    pair = _dropout_pair(*args, index)
    return None if pair is None else _as_meta(pair[0], out_meta, index)


# --- losses -------------------------------------------------------------------------------
def _class_loss(logits: bool):
    def route(args, out_meta, index):
        x, target, weight, ignore_index, reduction = args[:5]
        smoothing = args[5] if logits else 0.0
        cd = 1 if x.ndim >= 2 else 0
        c = x.shape[cd]
        lsm = OPS["log_softmax"](x, cd) if logits else x
        trailing = [1] * (x.ndim - cd - 1)
        wb = None if weight is None else weight.reshape([c] + trailing)
        if target.dtype.is_floating_point:
            return _as_meta(_probability_loss(lsm, target, wb, reduction, smoothing, cd, c),
                            out_meta, index)
        classes = OPS["arange"](0, c, 1, dtype=target.dtype, device=x.device)
        onehot = (target.unsqueeze(cd) == classes.reshape([c] + trailing)).to(x.dtype)
        mask = (target != ignore_index).to(x.dtype).unsqueeze(cd)
        pattern = onehot * (1 - smoothing) + smoothing / c if smoothing > 0 else onehot
        coeff = mask * pattern if wb is None else mask * wb * pattern
        loss = -(coeff * lsm).sum([cd])
        if reduction == "mean":
            chosen = mask * onehot if wb is None else mask * onehot * wb
            loss = loss.sum() / chosen.sum()
        elif reduction == "sum":
            loss = loss.sum()
        return _as_meta(loss, out_meta, index)
    return route


def _probability_loss(lsm, target, wb, reduction, smoothing, cd, c):
    t = target * (1 - smoothing) + smoothing / c if smoothing > 0 else target
    weighted = lsm * t if wb is None else lsm * t * wb
    loss = -weighted.sum([cd])
    if reduction == "mean":
        return loss.sum() / float(max(lsm.numel() // c, 1)) if lsm.numel() else \
            loss.sum() / 0.0
    return loss.sum() if reduction == "sum" else loss


ROUTES = {
    "arange": _arange,
    "convolution_backward_input": _conv_backward_input,
    "convolution_backward_weight": _conv_backward_weight,
    "conv_transpose2d": _conv_transpose2d,
    "sort": _sort, "argsort": _argsort,
    "max_pool2d_with_indices": _max_pool2d_with_indices,
    "max_pool_scatter": _max_pool_scatter,
    "adaptive_avg_pool2d_backward": _adaptive_avg_pool2d_backward,
    "cross_entropy": _class_loss(True), "nll_loss": _class_loss(False),
    "index_select": _index_select, "embedding": _embedding, "index_add": _index_add,
    "gather": _gather_op, "conv1d": _conv1d,
    "dropout": _dropout, "native_dropout": _native_dropout,
    "reshape": lambda a, m, i: _copying_reshape("reshape", a, m, i),
    "flatten": lambda a, m, i: _copying_reshape("flatten", a, m, i),
    "slice_scatter": _slice_scatter,
    "matmul": lambda a, m, i: _dense_operands(a, m, i, "matmul", 2),
    "linear": lambda a, m, i: _dense_operands(a, m, i, "linear", 2),
}

# image and audio ops (resampling, the real FFT): their own module, the same table
from . import eager_cuda_media  # noqa: E402 - needs the helpers above
ROUTES.update(eager_cuda_media.ROUTES)
from . import eager_cuda_indexing  # noqa: E402 - needs the helpers above
ROUTES.update(eager_cuda_indexing.ROUTES)
from . import eager_cuda_rewrites  # noqa: E402 - needs the helpers above
ROUTES.update(eager_cuda_rewrites.ROUTES)
