"""ONNX ops in ember: one handler per op type, and NumPy folders for constant subgraphs.

A handler is `handler(node, inputs, attrs, module) -> value or tuple of values`;
`inputs` are `_Value`s (`.tensor()`, `.const()`, `.ints()`, `.shape`, `.present`).
Semantics follow the ONNX operator specs (opsets 11-21 where they differ: axes of
Squeeze/Unsqueeze/Reduce* moved from attributes to inputs in 13/18, Softmax's
coerce-to-2-D before 13).
"""
from __future__ import annotations

import math

import numpy as np

from ..ir.errors import EmberError


class OnnxError(EmberError):
    """An ONNX model ember cannot import (unsupported op, non-constant shape, ...)."""


def attributes(node) -> dict:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


_ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64",
                9: "bool", 10: "float16", 11: "float64", 16: "bfloat16"}


def onnx_dtype(code: int) -> str:
    try:
        return _ONNX_DTYPES[code]
    except KeyError:
        raise OnnxError(f"ONNX element type {code} is not supported") from None


def _f():
    from ..frontend.nn import functional
    return functional


def _e():
    import ember
    return ember


def _s(v):
    return v.decode() if isinstance(v, bytes) else v


# --- element-wise --------------------------------------------------------------------------
def _binary(fn):
    def handler(node, ins, attrs, m):
        a, b = ins
        return fn(_operand(a), _operand(b))
    return handler


def _operand(v):
    """A tensor, or a Python number for a folded scalar (keeps dtype promotion ONNX's:
    both operands of an ONNX binary op have one type)."""
    return v.tensor()


def _unary(name):
    def handler(node, ins, attrs, m):
        return getattr(_e(), name)(ins[0].tensor())
    return handler


def _activation(name):
    def handler(node, ins, attrs, m):
        return getattr(_f(), name)(ins[0].tensor())
    return handler


def _gelu(node, ins, attrs, m):
    return _f().gelu(ins[0].tensor(), approximate=_s(attrs.get("approximate", "none")))


def _leaky_relu(node, ins, attrs, m):
    return _f().leaky_relu(ins[0].tensor(), attrs.get("alpha", 0.01))


def _clip(node, ins, attrs, m):
    lo = float(ins[1].const("Clip's min")) if len(ins) > 1 and ins[1].present else \
        attrs.get("min")
    hi = float(ins[2].const("Clip's max")) if len(ins) > 2 and ins[2].present else \
        attrs.get("max")
    return _e().clamp(ins[0].tensor(), lo, hi)


def _pow(node, ins, attrs, m):
    if ins[1].is_static and ins[1].const().size == 1:
        return ins[0].tensor() ** float(ins[1].const())
    return ins[0].tensor() ** ins[1].tensor()


def _softmax(name):
    def handler(node, ins, attrs, m):
        x = ins[0].tensor()
        shape = ins[0].shape
        axis = attrs.get("axis", -1 if m.opset >= 13 else 1) % max(len(shape), 1)
        fn = getattr(_f(), name)
        if m.opset >= 13 or axis == len(shape) - 1:
            return fn(x, dim=axis)
        flat = x.reshape(math.prod(shape[:axis]), -1)       # opset < 13: coerce to 2-D
        return fn(flat, dim=1).reshape(*shape)
    return handler


def _cast(node, ins, attrs, m):
    return ins[0].tensor().to(getattr(_e(), onnx_dtype(attrs["to"])))


def _identity(node, ins, attrs, m):
    return ins[0].tensor()


def _dropout(node, ins, attrs, m):
    return ins[0].tensor()       # inference: the identity (the mask output is unsupported)


def _where(node, ins, attrs, m):
    return _e().where(ins[0].tensor(), ins[1].tensor(), ins[2].tensor())


# --- linear algebra, conv, norms, pooling --------------------------------------------------
def _gemm(node, ins, attrs, m):
    a, b = ins[0].tensor(), ins[1].tensor()
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    if attrs.get("transA", 0):
        a = a.transpose(0, 1)
    bias = ins[2].tensor() if len(ins) > 2 and ins[2].present else None
    if attrs.get("transB", 0) and alpha == 1.0 and beta in (1.0,):
        return _f().linear(a, b, bias)
    b = b.transpose(0, 1) if attrs.get("transB", 0) else b
    out = _e().matmul(a, b)
    if alpha != 1.0:
        out = out * alpha
    if bias is not None:
        out = out + (bias * beta if beta != 1.0 else bias)
    return out


def _matmul(node, ins, attrs, m):
    return _e().matmul(ins[0].tensor(), ins[1].tensor())


def _spatial(attrs, ins, kernel) -> tuple:
    """(strides, symmetric padding or None when asymmetric, pads, dilations)."""
    n = len(kernel)
    if _s(attrs.get("auto_pad", "NOTSET")) not in ("NOTSET", "VALID"):
        raise OnnxError(f"auto_pad={_s(attrs['auto_pad'])} is not supported; export with "
                        "explicit pads")
    strides = list(attrs.get("strides", [1] * n))
    pads = list(attrs.get("pads", [0] * (2 * n)))
    dilations = list(attrs.get("dilations", [1] * n))
    symmetric = pads[:n] == pads[n:]
    return strides, (pads[:n] if symmetric else None), pads, dilations


def _pad_input(x, pads, n, value=0.0):
    """ONNX pads [x1_begin, x2_begin, ..., x1_end, x2_end] -> F.pad's last-dim-first."""
    pairs = []
    for i in reversed(range(n)):
        pairs += [pads[i], pads[i + n]]
    return _f().pad(x, pairs, value=value)


def _conv(node, ins, attrs, m):
    x, w = ins[0].tensor(), ins[1].tensor()
    kernel = ins[1].shape[2:]
    n = len(kernel)
    if n not in (1, 2):
        raise OnnxError(f"Conv with {n} spatial dims is not supported (1-D and 2-D)")
    strides, padding, pads, dilations = _spatial(attrs, ins, kernel)
    if padding is None:
        x, padding = _pad_input(x, pads, n), [0] * n
    bias = ins[2].tensor() if len(ins) > 2 and ins[2].present else None
    conv = _f().conv2d if n == 2 else _f().conv1d
    return conv(x, w, bias, strides, padding, dilations, attrs.get("group", 1))


def _conv_transpose(node, ins, attrs, m):
    x, w = ins[0].tensor(), ins[1].tensor()
    kernel = ins[1].shape[2:]
    n = len(kernel)
    if n not in (1, 2) or "output_shape" in attrs:
        raise OnnxError(f"ConvTranspose (node {node.name!r}) is supported for 1-D and 2-D "
                        "inputs without output_shape")
    strides, padding, pads, dilations = _spatial(attrs, ins, kernel)
    if padding is None:
        raise OnnxError(f"ConvTranspose (node {node.name!r}) with asymmetric pads is not "
                        "supported")
    bias = ins[2].tensor() if len(ins) > 2 and ins[2].present else None
    conv = _f().conv_transpose2d if n == 2 else _f().conv_transpose1d
    return conv(x, w, bias, strides, padding, list(attrs.get("output_padding", [0] * n)),
                attrs.get("group", 1), dilations)


# --- recurrent layers ----------------------------------------------------------------------
def _recurrent_inputs(node, ins, attrs, gates: int):
    """X as (seq, batch, input), per direction its W, R, bias (Wb + Rb kept apart) and
    initial states, the directions' order and hidden size; refusals named."""
    e = _e()
    direction = _s(attrs.get("direction", "forward"))
    if attrs.get("layout", 0):
        raise OnnxError(f"{node.op_type} (node {node.name!r}) with layout=1 is not supported")
    if "activations" in attrs or "clip" in attrs:
        raise OnnxError(f"{node.op_type} (node {node.name!r}) with custom activations or "
                        "clip is not supported")
    if len(ins) > 4 and ins[4].present:
        lengths = ins[4].const("sequence_lens")
        if np.any(lengths != ins[0].shape[0]):
            raise OnnxError(f"{node.op_type} (node {node.name!r}): sequence_lens shorter "
                            "than the sequence are not supported")
    hidden = int(attrs["hidden_size"])
    x, w, r = ins[0].tensor(), ins[1].tensor(), ins[2].tensor()
    dirs = 2 if direction == "bidirectional" else 1
    batch = ins[0].shape[1]
    bias = ins[3].tensor() if len(ins) > 3 and ins[3].present else \
        e.zeros(dirs, 2 * gates * hidden)
    h0 = ins[5].tensor() if len(ins) > 5 and ins[5].present else e.zeros(dirs, batch, hidden)
    return x, w, r, bias, h0, dirs, direction, hidden


def _run_direction(x, step, reverse: bool) -> tuple[list, object]:
    """`step(x_t)` over the sequence (backwards when `reverse`), outputs in time order."""
    seq = x.shape[0]
    order = range(seq - 1, -1, -1) if reverse else range(seq)
    outs = [None] * seq
    for t in order:
        outs[t] = step(x[t])
    return outs


def _lstm(node, ins, attrs, m):
    """ONNX LSTM (gate order i, o, f, c; default activations sigmoid/tanh/tanh; no
    peepholes): Y (seq, dirs, batch, hidden), Y_h and Y_c (dirs, batch, hidden)."""
    e = _e()
    if len(ins) > 7 and ins[7].present:
        raise OnnxError(f"LSTM (node {node.name!r}) with peepholes is not supported")
    if attrs.get("input_forget", 0):
        raise OnnxError(f"LSTM (node {node.name!r}) with input_forget=1 is not supported")
    x, w, r, bias, h0, dirs, direction, hidden = _recurrent_inputs(node, ins, attrs, 4)
    c0 = ins[6].tensor() if len(ins) > 6 and ins[6].present else e.zeros_like(h0)
    ys, hs, cs = [], [], []
    for d in range(dirs):
        state = {"h": h0[d], "c": c0[d]}
        b = bias[d][:4 * hidden] + bias[d][4 * hidden:]

        def step(xt, d=d, state=state, b=b):
            g = e.matmul(xt, w[d].t()) + e.matmul(state["h"], r[d].t()) + b
            i, o, f, c = (g[:, k * hidden:(k + 1) * hidden] for k in range(4))
            state["c"] = e.sigmoid(f) * state["c"] + e.sigmoid(i) * e.tanh(c)
            state["h"] = e.sigmoid(o) * e.tanh(state["c"])
            return state["h"]
        reverse = direction == "reverse" or d == 1
        ys.append(e.stack(_run_direction(x, step, reverse), 0))
        hs.append(state["h"])
        cs.append(state["c"])
    return e.stack(ys, 1), e.stack(hs, 0), e.stack(cs, 0)


def _gru(node, ins, attrs, m):
    """ONNX GRU (gate order z, r, h; linear_before_reset as torch writes it, 1, or 0):
    Y (seq, dirs, batch, hidden) and Y_h (dirs, batch, hidden)."""
    e = _e()
    x, w, r, bias, h0, dirs, direction, hidden = _recurrent_inputs(node, ins, attrs, 3)
    before_reset = attrs.get("linear_before_reset", 0)
    ys, hs = [], []
    for d in range(dirs):
        state = {"h": h0[d]}
        wb, rb = bias[d][:3 * hidden], bias[d][3 * hidden:]

        def step(xt, d=d, state=state, wb=wb, rb=rb):
            gx = e.matmul(xt, w[d].t()) + wb
            h = state["h"]
            rw = r[d]
            gh = e.matmul(h, rw[:2 * hidden].t()) + rb[:2 * hidden]
            z = e.sigmoid(gx[:, :hidden] + gh[:, :hidden])
            reset = e.sigmoid(gx[:, hidden:2 * hidden] + gh[:, hidden:])
            if before_reset:
                cand = gx[:, 2 * hidden:] + reset * (e.matmul(h, rw[2 * hidden:].t()) +
                                                     rb[2 * hidden:])
            else:
                cand = gx[:, 2 * hidden:] + e.matmul(reset * h, rw[2 * hidden:].t()) + \
                    rb[2 * hidden:]
            state["h"] = (1 - z) * e.tanh(cand) + z * h
            return state["h"]
        reverse = direction == "reverse" or d == 1
        ys.append(e.stack(_run_direction(x, step, reverse), 0))
        hs.append(state["h"])
    return e.stack(ys, 1), e.stack(hs, 0)


def _resize(node, ins, attrs, m):
    """Resize as torch's exporter writes F.interpolate: nearest with asymmetric
    coordinates and floor (mode="nearest"), linear with half_pixel / pytorch_half_pixel
    (align_corners=False) or align_corners, over the spatial dims (N and C kept)."""
    mode = _s(attrs.get("mode", "nearest"))
    coords = _s(attrs.get("coordinate_transformation_mode", "half_pixel"))
    shape = ins[0].shape
    if m.opset < 11:
        scales = ins[1].const("Resize's scales")
        sizes = None
    else:
        scales = ins[2].const("Resize's scales") if len(ins) > 2 and ins[2].present and \
            ins[2].const().size else None
        sizes = ins[3].ints("Resize's sizes") if len(ins) > 3 and ins[3].present else None
    if sizes is None:
        sizes = [int(math.floor(d * float(f))) for d, f in zip(shape, scales)]
    if list(sizes[:2]) != list(shape[:2]) or len(shape) not in (3, 4, 5):
        raise OnnxError(f"Resize (node {node.name!r}) over the batch or channel dims is not "
                        "supported")
    out = list(sizes[2:])
    x = ins[0].tensor()
    if mode == "nearest":
        if coords != "asymmetric" or _s(attrs.get("nearest_mode", "round_prefer_floor")) \
                != "floor":
            raise OnnxError(f"Resize (node {node.name!r}): nearest with {coords!r} "
                            "coordinates is not supported (asymmetric, floor)")
        return _f().interpolate(x, size=out, mode="nearest")
    if mode == "linear" and len(shape) == 4 and coords in ("half_pixel", "pytorch_half_pixel",
                                                            "align_corners"):
        return _f().interpolate(x, size=out, mode="bilinear",
                                align_corners=coords == "align_corners")
    raise OnnxError(f"Resize (node {node.name!r}) mode {mode!r} with {coords!r} coordinates "
                    "is not supported")


def _compare(fn):
    def handler(node, ins, attrs, m):
        return fn(ins[0].tensor(), ins[1].tensor())
    return handler


def _elu(node, ins, attrs, m):
    return _f().elu(ins[0].tensor(), attrs.get("alpha", 1.0))


def _selu(node, ins, attrs, m):
    alpha, gamma = attrs.get("alpha", 1.67326319217681884765625), \
        attrs.get("gamma", 1.05070102214813232421875)
    x = ins[0].tensor()
    return gamma * _e().where(x > 0, x, alpha * (_e().exp(x) - 1))


def _hard_sigmoid(node, ins, attrs, m):
    x = ins[0].tensor()
    return _e().clamp(x * attrs.get("alpha", 0.2) + attrs.get("beta", 0.5), 0.0, 1.0)


def _hard_swish(node, ins, attrs, m):
    return _f().hardswish(ins[0].tensor())


def _softplus(node, ins, attrs, m):
    x = ins[0].tensor()
    return _e().log(_e().exp(x) + 1)        # ONNX's definition (no threshold)


def _arg(name):
    def handler(node, ins, attrs, m):
        if attrs.get("select_last_index", 0):
            raise OnnxError(f"{node.op_type} (node {node.name!r}) with select_last_index=1 "
                            "is not supported")
        fn = getattr(_e(), name)
        return fn(ins[0].tensor(), dim=attrs.get("axis", 0),
                  keepdim=bool(attrs.get("keepdims", 1)))
    return handler


def _pad(node, ins, attrs, m):
    mode = _s(attrs.get("mode", "constant"))
    if mode != "constant":
        raise OnnxError(f"Pad (node {node.name!r}) mode {mode!r} is not supported "
                        "('constant' only)")
    ndim = len(ins[0].shape)
    pads = list(ins[1].ints("Pad's pads")) if m.opset >= 11 else list(attrs["pads"])
    value = 0.0
    if m.opset >= 11 and len(ins) > 2 and ins[2].present:
        value = float(ins[2].const("Pad's constant_value"))
    elif m.opset < 11:
        value = attrs.get("value", 0.0)
    axes = list(range(ndim))
    if len(ins) > 3 and ins[3].present:
        axes = [a % ndim for a in ins[3].ints("Pad's axes")]
    full = [0] * (2 * ndim)
    for k, a in enumerate(axes):
        full[a], full[a + ndim] = pads[k], pads[k + len(axes)]
    return _pad_input(ins[0].tensor(), full, ndim, value=value)


def _topk(node, ins, attrs, m):
    k = int(ins[1].ints("TopK's K")[0]) if m.opset >= 10 else attrs["k"]
    values, indices = _e().topk(ins[0].tensor(), k, dim=attrs.get("axis", -1),
                                largest=bool(attrs.get("largest", 1)),
                                sorted=bool(attrs.get("sorted", 1)))
    return values, indices


def _batch_norm(node, ins, attrs, m):
    if attrs.get("training_mode", 0):
        raise OnnxError("BatchNormalization with training_mode=1 is not supported")
    x, scale, bias, mean, var = (v.tensor() for v in ins[:5])
    # written out (inference form), as ember's own BatchNorm traces: per-channel vectors
    # broadcast over (N, C, *spatial)
    shape = (1, ins[0].shape[1]) + (1,) * (len(ins[0].shape) - 2)
    per_channel = [t.reshape(*shape) for t in (scale, bias, mean, var)]
    scale, bias, mean, var = per_channel
    return (x - mean) / _e().sqrt(var + attrs.get("epsilon", 1e-5)) * scale + bias


def _layer_norm(node, ins, attrs, m):
    shape = ins[0].shape
    axis = attrs.get("axis", -1) % len(shape)
    weight = ins[1].tensor() if len(ins) > 1 and ins[1].present else None
    bias = ins[2].tensor() if len(ins) > 2 and ins[2].present else None
    return _f().layer_norm(ins[0].tensor(), list(shape[axis:]), weight, bias,
                           attrs.get("epsilon", 1e-5))


def _max_pool(node, ins, attrs, m):
    kernel = list(attrs["kernel_shape"])
    if len(kernel) != 2:
        raise OnnxError("MaxPool is supported for 2-D inputs only")
    if attrs.get("storage_order", 0):
        raise OnnxError("MaxPool with storage_order=1 is not supported")
    strides, padding, pads, dilations = _spatial(attrs, ins, kernel)
    x = ins[0].tensor()
    if padding is None:
        x, padding = _pad_input(x, pads, 2, value=-math.inf), [0, 0]
    return _f().max_pool2d(x, kernel, strides, padding, dilations,
                           ceil_mode=bool(attrs.get("ceil_mode", 0)))


def _avg_pool(node, ins, attrs, m):
    kernel = list(attrs["kernel_shape"])
    if len(kernel) != 2:
        raise OnnxError("AveragePool is supported for 2-D inputs only")
    strides, padding, pads, dilations = _spatial(attrs, ins, kernel)
    if any(d != 1 for d in dilations):
        raise OnnxError("AveragePool with dilations is not supported")
    include = bool(attrs.get("count_include_pad", 0))
    x = ins[0].tensor()
    if padding is None:
        if not include:
            raise OnnxError("AveragePool with asymmetric pads and count_include_pad=0 is "
                            "not supported")
        x, padding = _pad_input(x, pads, 2), [0, 0]
    return _f().avg_pool2d(x, kernel, strides, padding, ceil_mode=bool(attrs.get("ceil_mode", 0)),
                           count_include_pad=include)


def _global_avg_pool(node, ins, attrs, m):
    x = ins[0].tensor()
    return x.mean(dim=tuple(range(2, len(ins[0].shape))), keepdim=True)


def _global_max_pool(node, ins, attrs, m):
    x = ins[0].tensor()
    return _e().amax(x, dim=tuple(range(2, len(ins[0].shape))), keepdim=True)


# --- shapes --------------------------------------------------------------------------------
def _reshape_target(shape_in, target, allowzero=False) -> list:
    out = [shape_in[i] if d == 0 and not allowzero else d for i, d in enumerate(target)]
    return out


def _reshape(node, ins, attrs, m):
    target = _reshape_target(ins[0].shape, ins[1].ints("Reshape's shape"),
                             attrs.get("allowzero", 0))
    return ins[0].tensor().reshape(*target)


def _flatten(node, ins, attrs, m):
    shape = ins[0].shape
    axis = attrs.get("axis", 1) % (len(shape) + 1) if shape else 0
    return ins[0].tensor().reshape(math.prod(shape[:axis]), math.prod(shape[axis:]))


def _transpose(node, ins, attrs, m):
    perm = attrs.get("perm", list(reversed(range(len(ins[0].shape)))))
    return ins[0].tensor().permute(*perm)


def _concat(node, ins, attrs, m):
    return _e().cat([v.tensor() for v in ins if v.present], dim=attrs["axis"])


def _axes(ins, attrs, m, index=1):
    if len(ins) > index and ins[index].present:
        return ins[index].ints("axes")
    return list(attrs["axes"]) if "axes" in attrs else None


def _squeeze(node, ins, attrs, m):
    shape = ins[0].shape
    axes = _axes(ins, attrs, m)
    axes = [a % len(shape) for a in axes] if axes is not None else \
        [i for i, d in enumerate(shape) if d == 1]
    return ins[0].tensor().reshape(*[d for i, d in enumerate(shape) if i not in axes])


def _unsqueeze(node, ins, attrs, m):
    shape = list(ins[0].shape)
    axes = _axes(ins, attrs, m)
    rank = len(shape) + len(axes)
    for a in sorted(a % rank for a in axes):
        shape.insert(a, 1)
    return ins[0].tensor().reshape(*shape)


def _slice(node, ins, attrs, m):
    shape = ins[0].shape
    if m.opset < 10:
        starts, ends = attrs["starts"], attrs["ends"]
        axes, steps = attrs.get("axes", list(range(len(starts)))), [1] * len(starts)
    else:
        starts, ends = ins[1].ints("Slice's starts"), ins[2].ints("Slice's ends")
        axes = ins[3].ints("Slice's axes") if len(ins) > 3 and ins[3].present else \
            list(range(len(starts)))
        steps = ins[4].ints("Slice's steps") if len(ins) > 4 and ins[4].present else \
            [1] * len(starts)
    index = [slice(None)] * len(shape)
    for start, end, axis, step in zip(starts, ends, axes, steps):
        if step <= 0:
            raise OnnxError("Slice with a non-positive step is not supported")
        axis %= len(shape)
        index[axis] = slice(*slice(start, end, step).indices(shape[axis]))
    return ins[0].tensor()[tuple(index)]


def _gather(node, ins, attrs, m):
    shape = ins[0].shape
    axis = attrs.get("axis", 0) % len(shape)
    x = ins[0].tensor()
    if ins[1].is_static:
        idx = np.asarray(ins[1].const())
        if idx.ndim == 0:
            return x.select(axis, int(idx) % shape[axis])
        flat = _e().tensor((idx.reshape(-1) % shape[axis]).astype(np.int64))
        picked = x.index_select(axis, flat)
        return picked.reshape(*shape[:axis], *idx.shape, *shape[axis + 1:])
    idx = ins[1].tensor()
    if axis == 0 and len(shape) == 2:
        return _f().embedding(idx, x)
    ishape = ins[1].shape
    picked = x.index_select(axis, idx.reshape(-1))
    return picked.reshape(*shape[:axis], *ishape, *shape[axis + 1:])


def _expand(node, ins, attrs, m):
    target = ins[1].ints("Expand's shape")
    shape = ins[0].shape
    out = list(np.broadcast_shapes(tuple(shape), tuple(target)))
    return ins[0].tensor().expand(*out)


def _reduce(name):
    def handler(node, ins, attrs, m):
        x = ins[0].tensor()
        axes = _axes(ins, attrs, m) if (m.opset >= 18 or name == "sum" and m.opset >= 13) \
            else attrs.get("axes")
        keep = bool(attrs.get("keepdims", 1))
        if not axes:
            if attrs.get("noop_with_empty_axes", 0):
                return x
            axes = list(range(len(ins[0].shape)))
        fn = {"mean": lambda: x.mean(dim=tuple(axes), keepdim=keep),
              "sum": lambda: x.sum(dim=tuple(axes), keepdim=keep),
              "max": lambda: _e().amax(x, dim=tuple(axes), keepdim=keep),
              "min": lambda: _e().amin(x, dim=tuple(axes), keepdim=keep)}[name]
        return fn()
    return handler


HANDLERS = {
    "Add": _binary(lambda a, b: a + b), "Sub": _binary(lambda a, b: a - b),
    "Mul": _binary(lambda a, b: a * b), "Div": _binary(lambda a, b: a / b),
    "Pow": _pow, "Max": _binary(lambda a, b: _e().maximum(a, b)),
    "Min": _binary(lambda a, b: _e().minimum(a, b)),
    "Relu": _activation("relu"), "Sigmoid": _activation("sigmoid"),
    "Tanh": _unary("tanh"), "Erf": _unary("erf"), "Exp": _unary("exp"), "Log": _unary("log"),
    "Sqrt": _unary("sqrt"), "Neg": _unary("neg"), "Abs": _unary("abs"),
    "Reciprocal": _unary("reciprocal"), "Gelu": _gelu, "LeakyRelu": _leaky_relu,
    "Clip": _clip, "Softmax": _softmax("softmax"), "LogSoftmax": _softmax("log_softmax"),
    "Cast": _cast, "Identity": _identity, "Dropout": _dropout, "Where": _where,
    "Gemm": _gemm, "MatMul": _matmul, "Conv": _conv, "BatchNormalization": _batch_norm,
    "LayerNormalization": _layer_norm, "MaxPool": _max_pool, "AveragePool": _avg_pool,
    "GlobalAveragePool": _global_avg_pool, "GlobalMaxPool": _global_max_pool,
    "Reshape": _reshape, "Flatten": _flatten, "Transpose": _transpose, "Concat": _concat,
    "Squeeze": _squeeze, "Unsqueeze": _unsqueeze, "Slice": _slice, "Gather": _gather,
    "Expand": _expand, "ReduceMean": _reduce("mean"), "ReduceSum": _reduce("sum"),
    "ReduceMax": _reduce("max"), "ReduceMin": _reduce("min"),
    "ConvTranspose": _conv_transpose,
    "Greater": _compare(lambda a, b: a > b), "Less": _compare(lambda a, b: a < b),
    "GreaterOrEqual": _compare(lambda a, b: a >= b),
    "LessOrEqual": _compare(lambda a, b: a <= b),
    "Equal": _compare(lambda a, b: _e().eq(a, b)),
    "And": _compare(lambda a, b: _e().logical_and(a, b)),
    "Or": _compare(lambda a, b: _e().logical_or(a, b)),
    "Xor": _compare(lambda a, b: _e().logical_xor(a, b)),
    "Not": _unary("logical_not"), "Sin": _unary("sin"), "Cos": _unary("cos"),
    "Floor": _unary("floor"), "Ceil": _unary("ceil"), "Sign": _unary("sign"),
    "Elu": _elu, "Selu": _selu, "HardSigmoid": _hard_sigmoid, "HardSwish": _hard_swish,
    "Softplus": _softplus, "ArgMax": _arg("argmax"), "ArgMin": _arg("argmin"),
    "Pad": _pad, "TopK": _topk, "LSTM": _lstm, "GRU": _gru,
    "Resize": _resize,
}


# --- NumPy folding of constant subgraphs ---------------------------------------------------
def _fold_constant(values, attrs):
    from onnx import numpy_helper
    if "value" in attrs:
        return [numpy_helper.to_array(attrs["value"])]
    for key, dtype in (("value_float", np.float32), ("value_int", np.int64)):
        if key in attrs:
            return [np.asarray(attrs[key], dtype)]
    for key, dtype in (("value_floats", np.float32), ("value_ints", np.int64)):
        if key in attrs:
            return [np.asarray(list(attrs[key]), dtype)]
    raise ValueError(f"Constant with attributes {sorted(attrs)} is not supported")


def _fold_unsqueeze(values, attrs):
    x = values[0]
    axes = [int(a) for a in (values[1] if len(values) > 1 and values[1] is not None
                             else attrs["axes"])]
    rank = x.ndim + len(axes)
    for a in sorted(a % rank for a in axes):
        x = np.expand_dims(x, a)
    return [x]


def _fold_squeeze(values, attrs):
    axes = values[1] if len(values) > 1 and values[1] is not None else attrs.get("axes")
    return [np.squeeze(values[0], axis=tuple(int(a) for a in axes) if axes is not None
                       else None)]


def _fold_gather(values, attrs):
    return [np.take(values[0], values[1], axis=attrs.get("axis", 0))]


def _fold_slice(values, attrs):
    x, starts, ends = values[:3]
    axes = values[3] if len(values) > 3 and values[3] is not None else range(len(starts))
    steps = values[4] if len(values) > 4 and values[4] is not None else [1] * len(starts)
    index = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        index[int(a)] = slice(int(s), int(e), int(st))
    return [x[tuple(index)]]


def _fold_reshape(values, attrs):
    x, shape = values
    target = _reshape_target(x.shape, [int(d) for d in shape], attrs.get("allowzero", 0))
    return [x.reshape(target)]


def _fold_constant_of_shape(values, attrs):
    from onnx import numpy_helper
    fill = numpy_helper.to_array(attrs["value"]) if "value" in attrs else np.zeros(1, np.float32)
    return [np.full([int(d) for d in values[0]], fill.reshape(-1)[0], fill.dtype)]


def _fold_cast(values, attrs):
    return [values[0].astype(np.dtype(onnx_dtype(attrs["to"]).replace("bfloat16", "float32")))]


def _fold_binary(fn):
    return lambda values, attrs: [fn(values[0], values[1]).astype(
        np.result_type(values[0], values[1]))]


STATIC = {
    "Constant": _fold_constant, "Shape": lambda v, a: [np.asarray(v[0].shape, np.int64)],
    "Gather": _fold_gather, "Unsqueeze": _fold_unsqueeze, "Squeeze": _fold_squeeze,
    "Concat": lambda v, a: [np.concatenate([x for x in v if x is not None], axis=a["axis"])],
    "Slice": _fold_slice, "Reshape": _fold_reshape, "Cast": _fold_cast,
    "ConstantOfShape": _fold_constant_of_shape, "Identity": lambda v, a: [v[0]],
    "Add": _fold_binary(np.add), "Sub": _fold_binary(np.subtract),
    "Mul": _fold_binary(np.multiply),
    "Div": _fold_binary(lambda a, b: a // b if np.issubdtype(np.result_type(a, b), np.integer)
                        else a / b),
    "Range": lambda v, a: [np.arange(v[0], v[1], v[2])],
    "Equal": lambda v, a: [np.equal(v[0], v[1])],
    "Where": lambda v, a: [np.where(v[0], v[1], v[2])],
    "Transpose": lambda v, a: [np.transpose(v[0], a.get("perm"))],
    "Sqrt": lambda v, a: [np.sqrt(v[0])],
    # Mod of integers: fmod=0 takes the divisor's sign (Python's %), fmod=1 C's
    "Mod": lambda v, a: [np.fmod(v[0], v[1]) if a.get("fmod", 0) else np.mod(v[0], v[1])],
}
