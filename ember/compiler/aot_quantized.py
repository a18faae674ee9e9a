"""ember.aot for converted (int8) models: the plan steps of quantized nodes, described for
the lite runtime: host steps between the native segments (compiler/native_program.py),
run by runtime/lite_int8.py's step classes.

ember.compile runs nodes that produce or read quantized values as eager steps on their
native kernels (compiler/compile.py). Packaging describes each such step so the lite
runtime runs the same kernels without the compiler:

  quantize / dequantize   quantize_per_tensor (quint8, qint8) and dequantize, in NumPy
  qgemm                   quantized_linear / quantized_conv2d (groups 1): the fused int8
                          GEMM (codegen/llvm/qgemm.py's module linked into model.so); the
                          weight is packed here, with its per-column zero-point correction,
                          multiplier and bias ("pq<step>" members of the weights);
                          gemm "depthwise": quantized_conv2d with groups == channels on
                          codegen/llvm/qdepthwise.py's kernel, packed alike;
                          quantized_conv2d_add (passes/qfuse.py): a conv step with a
                          "residual" entry and the residual as its second input, on
                          qgemm_u8_add (the add in the epilogue)
  qgemm_dynamic           quantized_linear_dynamic (quantize_dynamic's Linear): the input
                          quantized per call, the same GEMM with a float32 epilogue
  qadd                    quantized_add (+ relu): codegen/llvm/qelementwise.py's kernel
  qmaxpool / qavgpool     max_pool2d and adaptive_avg_pool2d on a quantized value
  qreshape                flatten / reshape / view of a quantized value
  qclamp                  relu / hardtanh / relu6 / clamp (number bounds) on a quantized value:
                          the integers clipped to the bounds quantized with the input's
                          qparams (as eager mode and torch's quantized clamps do)
  qcat                    cat of quantized values: the first input's qparams; the integers
                          of inputs that share them joined as they are, others requantized
  qlut                    sigmoid / tanh / hardsigmoid / quantized_hardswish of an 8-bit
                          value: its 256-entry table (ir/ops/quantized_pointwise.py, made
                          at packaging from the input's qparams), gathered
  qmean                   mean of a quantized value (dims, keepdim): the input's qparams
                          (lite_int8.mean_quantized, what eager mode runs)

On AMX hosts a conv step keeps AMX tiles or takes the VNNI kernels as eager mode chose for
its shape on the packaging host (_choose_kernel, at the probe run); a clamp after a conv
that nothing else reads is fused into the conv's epilogue before planning (fuse_clamps).

Values are plain integer arrays in the artifact, so every step's description carries the
qparams of its quantized operands. They are static in a converted graph; packaging reads
them off one run of the plan (as it measures views). Anything else that touches a
quantized value (quantized_mul, grouped int8 convs other than depthwise ones, CPUs
without an int8 kernel) is
refused by name, as every step without a native kernel is.
"""
from __future__ import annotations

import functools

import numpy as np

from ..codegen import quantized as CQ
from ..codegen.extern import _bound
from ..codegen.llvm import qdepthwise as QD
from ..codegen.llvm import qelementwise as QE
from ..codegen.llvm import qgemm as Q
from ..codegen.llvm import qgemm_amx as QA
from ..codegen.llvm.target import Isa, host_isa
from ..ir import dtypes
from ..ir.errors import LoweringError
from ..ir.graph import Node, OpKind
from ..ir.ops import quantized_pointwise as QP
from ..ir.quantized import QuantizedArray, qrange, quantize_array
from ..runtime import lite_int8 as lite
from .native_program import is_dense
from .plan_probe import run_with_probes

QUANTIZED_KINDS = ("quantize", "dequantize", "qgemm", "qgemm_dynamic", "qadd", "qmaxpool",
                   "qavgpool", "qreshape", "qclamp", "qcat", "qlut", "qmean")
CLAMP_DEFAULTS = {"hardtanh": (-1.0, 1.0), "relu6": (0.0, 6.0), "clamp": (None, None),
                  "relu": (0.0, None)}     # relu: max with the zero point, quantize(0.0)
RESHAPES = {"flatten", "reshape", "view", "_unsafe_view", "contiguous"}


def _is_quantized(node) -> bool:
    return getattr(getattr(node.meta.get("val"), "dtype", None), "is_quantized", False)


def quantized_step(node: Node) -> dict | None:
    """The lite description of a node that produces or reads a quantized value (kind
    "unsupported" where the artifact has no step for it), or None for other nodes."""
    if node.op != OpKind.call_function or not hasattr(node.target, "schema"):
        return None
    if not (_is_quantized(node) or any(_is_quantized(a) for a in node.all_input_nodes)):
        return None
    name = node.target.name
    args = _bound(node)
    desc = None
    if name == "quantize_per_tensor":
        dtype = dtypes.as_dtype(args["dtype"])
        if dtype in (dtypes.quint8, dtypes.qint8):
            desc = {"kind": "quantize", "scale": float(args["scale"]),
                    "zero_point": int(args["zero_point"]),
                    "dtype": np.dtype(dtype.np_dtype).str, **_elementwise("qquantize")}
    elif name == "dequantize":
        desc = {"kind": "dequantize"}
    elif name in ("quantized_linear", "quantized_conv2d", "quantized_conv2d_add"):
        desc = _qgemm(node, name, args)
    elif name == "quantized_linear_dynamic" and CQ.gemm_config() is not None:
        desc = {"kind": "qgemm_dynamic", "relu": bool(args["relu"]),
                **_kernel_desc(CQ.gemm_config(), False)}
    elif name == "quantized_add":
        desc = {"kind": "qadd", "scale": float(args["scale"]),
                "zero_point": int(args["zero_point"]), "relu": bool(args["relu"]),
                **_elementwise("qadd")}
    elif name == "max_pool2d":
        geometry = CQ.pool_geometry(tuple(args.values())[1:])
        if geometry is not None:
            desc = {"kind": "qmaxpool", "kernel": list(geometry[0]),
                    "stride": list(geometry[1]), "padding": list(geometry[2]),
                    **_elementwise("qmaxpool")}
    elif name == "adaptive_avg_pool2d":
        desc = {"kind": "qavgpool", "output_size": list(node.meta["val"].shape[-2:])}
    elif name in RESHAPES:
        desc = {"kind": "qreshape", "shape": list(node.meta["val"].shape)}
    elif name in CLAMP_DEFAULTS:
        desc = _clamp_desc(name, args)
    elif name == "cat":
        desc = {"kind": "qcat", "dim": int(args["dim"]) % len(node.meta["val"].shape)}
    elif name in QP.FIXED_QPARAMS:
        desc = {"kind": "qlut", "fn": name}
    elif name == "mean" and args.get("dtype") is None:
        dim = args.get("dim")
        desc = {"kind": "qmean", "keepdim": bool(args.get("keepdim", False)),
                "axes": None if dim is None else [int(d) for d in dim]}
    elif name == "quantized_hardswish":
        desc = {"kind": "qlut", "fn": "hardswish",
                "out_qparams": [float(args["output_scale"]), int(args["output_zero_point"])]}
    if desc is None:
        return {"kind": "unsupported", "op": name}
    desc["op"] = name
    if node.meta.get(FUSED_CLAMP) is not None and desc["kind"] == "qgemm":
        desc["clamp_q"] = list(node.meta[FUSED_CLAMP])
    return desc


FUSED_CLAMP = "ember_fused_qclamp"


def fuse_clamps(graph) -> None:
    """A relu / relu6 / hardtanh / clamp (number bounds) whose input is a quantized_conv2d
    (depthwise ones included) that nothing else reads and that is not a result goes into
    the conv's epilogue, as eager mode fuses it (codegen/quantized.py requant_params:
    clamping twice to nested ranges is one clamp to their overlap): its bounds, quantized
    with the conv's output qparams, are kept on the conv (FUSED_CLAMP) and the clamp's
    readers read the conv. Its step and the copy of its result are gone (15 NumPy steps,
    1.3-1.8 ms of the mobilenet-style model's call at one thread)."""
    results = set(graph.output_node.all_input_nodes) if graph.output_node is not None \
        else set()
    for node in list(graph.nodes):
        if node.op != OpKind.call_function or not hasattr(node.target, "schema") or \
                node.target.name not in CLAMP_DEFAULTS or not node.args:
            continue
        conv = node.args[0]
        if not isinstance(conv, Node) or conv.op != OpKind.call_function or \
                getattr(conv.target, "name", None) != "quantized_conv2d" or \
                len(conv.users) != 1 or conv in results or FUSED_CLAMP in conv.meta:
            continue
        bounds_q = _fusable_bounds(node, conv)
        if bounds_q is None:
            continue
        conv.meta[FUSED_CLAMP] = bounds_q
        node.replace_all_uses_with(conv)
        graph.erase_node(node)


def _fusable_bounds(clamp: Node, conv: Node) -> tuple | None:
    """The clamp's bounds as integers of the conv's result (its dtype's range where a side
    has none), or None where they cannot go into the conv's epilogue (a tensor bound, an
    empty overlap with the conv's own range)."""
    desc = _clamp_desc(clamp.target.name, _bound(clamp))
    dtype = getattr(conv.meta.get("val"), "dtype", None)
    if desc is None or dtype not in (dtypes.quint8, dtypes.qint8):
        return None
    args = _bound(conv)
    scale, zero_point = float(args["scale"]), int(args["zero_point"])
    lo, hi = qrange(dtype)
    q = [None if b is None else int(quantize_array(np.float32(b), scale, zero_point,
                                                   dtype).int_repr) for b in desc["bounds"]]
    low, high = lo if q[0] is None else q[0], hi if q[1] is None else q[1]
    own_lo = max(lo, zero_point) if args["relu"] else lo
    if max(own_lo, low) > min(hi, high):
        return None
    return (low, high)


def _elementwise(symbol: str) -> dict:
    """A step's kernel in codegen/llvm/qelementwise.py's module (qadd, qquantize, qmaxpool:
    one module, linked once), the one eager mode calls; {} where that module does not
    run here (the lite step then takes its NumPy path, the same values)."""
    if not QE.available():
        return {}
    return {"symbol": symbol, "_module": ("qadd", _llvm_text(QE.module), (symbol,))}


def _clamp_desc(name: str, args: dict) -> dict | None:
    """A clamp's real bounds (None for a side without one; a tensor bound is refused):
    packaging quantizes them once the input's qparams are known (_clamp_bounds_q)."""
    values = list(args.values())[1:3]
    bounds = tuple(v if v is not None else d for v, d in
                   zip(values + [None] * (2 - len(values)), CLAMP_DEFAULTS[name]))
    if name in ("relu6", "relu"):
        bounds = CLAMP_DEFAULTS[name]
    if any(b is not None and not isinstance(b, (int, float)) for b in bounds):
        return None
    return {"kind": "qclamp", "bounds": [None if b is None else float(b) for b in bounds]}


def _clamp_bounds_q(desc: dict) -> None:
    """The bounds as integers of the input's quantized dtype, rounded as eager mode rounds
    them (quantize_per_tensor of the float32 bound)."""
    (scale, zero_point), dtype = desc["in_qparams"][0], desc["in_dtype"]
    desc["bounds_q"] = [None if b is None else int(quantize_array(
        np.float32(b), scale, zero_point, dtypes.as_dtype(dtype)).int_repr)
        for b in desc["bounds"]]


@functools.cache
def _llvm_text(emit, *args) -> str:
    """The LLVM text of a kernel module, emitted once per process: each int8 step of an
    artifact names its module, and re-emitting it per step made packaging a model with
    a dynamic batch (6 builds) emit the AMX GEMM's module 19 times, ~10 s."""
    return str(emit(*args))


def _kernel_desc(cfg, u8_out: bool) -> dict:
    """The config, tile and LLVM module of the int8 GEMM an artifact uses (the one eager
    mode uses on this machine: AMX tiles, VNNI or AVX2)."""
    if cfg is QA.AMX:
        module = ("qgemm_amx", _llvm_text(QA.module_for), ("qgemm_amx_u8", "qgemm_amx_f32"))
        symbol = f"qgemm_amx_{'u8' if u8_out else 'f32'}"
    else:
        module = ("qgemm", _llvm_text(Q.module_for, cfg), Q.KERNEL_NAMES)
        symbol = f"qgemm_{'u8' if u8_out else 'f32'}"
    # "claim": the vector kernels claim their tasks from a shared counter (lite_int8)
    schedule = "ranges" if cfg is QA.AMX else "claim"
    return {"config": cfg.name, "mr": cfg.mr, "nr": cfg.nr, "symbol": symbol,
            "schedule": schedule, "_module": module}


CONFIGS = {c.name: c for c in (QA.AMX, Q.VNNI, Q.VNNI_N32, Q.VNNI_N16, Q.AVX2)}


def _depthwise_desc(args: dict) -> dict | None:
    """quantized_conv2d with groups == channels (codegen/llvm/qdepthwise.py's kernel), or
    None (other grouped convolutions are refused)."""
    w_shape = tuple(args["weight"].meta["val"].shape)
    if not QD.available() or w_shape[1] != 1 or args["groups"] != w_shape[0] or \
            tuple(args["self"].meta["val"].shape)[1] != w_shape[0]:
        return None
    isa = Isa.AVX512 if host_isa() is Isa.AVX512 else Isa.AVX2
    return {"kind": "qgemm", "gemm": "depthwise", "config": "depthwise",
            "symbol": "qdepthwise_u8", "schedule": "claim", "pad": "kernel",
            "_module": ("qdepthwise", _llvm_text(QD.module, isa), ("qdepthwise_u8",)),
            "scale": float(args["scale"]), "zero_point": int(args["zero_point"]),
            "relu": bool(args["relu"]), "kernel": list(w_shape[2:]),
            "stride": list(args["stride"]), "padding": list(args["padding"]),
            "dilation": list(args["dilation"])}


def _qgemm(node: Node, name: str, args: dict) -> dict | None:
    cfg = CQ.gemm_config()
    if name == "quantized_conv2d" and args["groups"] != 1:
        return _depthwise_desc(args)
    if cfg is None or (name == "quantized_conv2d_add" and args["groups"] != 1):
        return None
    desc = {"kind": "qgemm", "gemm": "linear", "scale": float(args["scale"]),
            "zero_point": int(args["zero_point"]), "relu": bool(args["relu"])}
    if name == "quantized_conv2d_add":
        # the conv's own requantization, then the residual add (qgemm_u8_add's epilogue,
        # qgemm_amx_u8_add's on AMX tiles: _amx_call)
        desc.update(scale=float(args["conv_scale"]), zero_point=int(args["conv_zero_point"]),
                    relu=bool(args["conv_relu"]),
                    residual={"scale": float(args["scale"]),
                              "zero_point": int(args["zero_point"]),
                              "relu": bool(args["relu"])})
    if name in ("quantized_conv2d", "quantized_conv2d_add"):
        desc.update(gemm="conv", kernel=list(args["weight"].meta["val"].shape[2:]),
                    stride=list(args["stride"]), padding=list(args["padding"]),
                    dilation=list(args["dilation"]),
                    n=int(args["weight"].meta["val"].shape[0]))
    return _on_kernel(desc, cfg)


def _on_kernel(desc: dict, cfg) -> dict:
    """desc (a qgemm step's) set up for the GEMM `cfg`: its tile, symbol, module and
    schedule; a conv on the VNNI kernels takes the tile eager mode takes for its output
    channels (qgemm.tile_for) and reads its padding in the kernel."""
    for key in ("pad", "_chooses"):
        desc.pop(key, None)
    if desc["gemm"] == "conv" and cfg is not QA.AMX:
        cfg = Q.tile_for(cfg, desc["n"])
    desc.update(_kernel_desc(cfg, True))
    if cfg is not QA.AMX and "residual" in desc:
        desc["symbol"] = "qgemm_u8_add"
    if desc["gemm"] == "conv" and cfg is not QA.AMX and cfg.vnni:
        # packaged with the uint8 VNNI kernels that read a conv's padding themselves
        # (lite_int8.pads_in_kernel says where); older artifacts pad on the host
        desc["pad"] = "kernel"
    if desc["gemm"] == "conv" and cfg is QA.AMX:
        desc["_chooses"] = True     # AMX or VNNI per shape, at the probe (_choose_kernel)
    return desc


def _quantized_qparams(plan, exported, shapes: list | None = None,
                       layouts: dict | None = None) -> dict:
    """{step name: [(scale, zero point, dtype) of each quantized input]}, read off one run
    of the plan on zeros (of the user inputs' `shapes`, default the exported ones); {}
    without a quantized step (no run). `layouts` (when given) receives {step name:
    element strides of its quantized result as eager mode laid it out} (a conv's is
    channels-last, where the graph's metadata says contiguous)."""
    seen = {}
    if not any(getattr(s.fn, "desc", {}).get("kind") in QUANTIZED_KINDS for s in plan.steps):
        return seen

    def probe(step, fn):
        def run(*values):
            seen[step.name] = [_qparams_of(v) for v in values if isinstance(v, QuantizedArray)]
            result = fn(*values)
            if fn.desc.get("_chooses"):
                _choose_kernel(fn.desc, values)
            if layouts is not None and isinstance(result, QuantizedArray):
                ints = result.int_repr
                layouts[step.name] = [st // ints.itemsize for st in ints.strides]
            return result
        return run
    run_with_probes(plan, exported.user_inputs, shapes,
                    lambda s: getattr(s.fn, "desc", {}).get("kind") in QUANTIZED_KINDS, probe)
    return seen


def _choose_kernel(desc: dict, values: tuple) -> None:
    """A conv step packaged for AMX tiles keeps them or takes the VNNI kernels, whichever
    eager mode runs on this shape on this host (codegen/quantized.conv_gemm_config: timed
    once per shape, kept in the process and on disk; the probe's run just asked it, so
    this is a lookup), so the artifact runs what the in-process model runs. The step's
    operands: the input, the weight, the bias where there is one, the residual last."""
    x, w = values[0], values[1]
    bias = values[2] if len(values) > 2 and not isinstance(values[2], QuantizedArray) \
        else None
    args = [x, w, bias, desc["stride"], desc["padding"], desc["dilation"], 1, desc["scale"],
            desc["zero_point"], desc["relu"]]
    res = desc.get("residual")
    residual = None if res is None else \
        (values[-1], res["scale"], res["zero_point"], res["relu"])
    chosen = CQ.conv_gemm_config(QA.AMX, args, {}, residual=residual)
    if chosen is not QA.AMX:
        _on_kernel(desc, chosen)


def _qparams_of(v: QuantizedArray) -> tuple:
    if v.axis is not None:          # a per-channel weight: packed from the constant itself
        return (None, None, v.dtype.name, v.axis)
    return (float(v.scale), int(v.zero_point), v.dtype.name, None)


def _lut_table(desc: dict, operand) -> None:
    """A qlut step's table for its input's qparams (the one eager mode gathers from)."""
    scale, zero_point, dtype_name, _ = operand
    dtype = dtypes.dtype_from_name(dtype_name)
    out = desc.get("out_qparams") or QP.fixed_qparams(desc["fn"], dtype)
    lut = QP.table(desc["fn"], dtype_name, float(scale), int(zero_point), float(out[0]),
                   int(out[1]))
    desc["table"] = [int(v) for v in lut.view(np.uint8)]
    desc["dtype"] = np.dtype(dtype.np_dtype).str


def _quantized_weights(plan, table: list, qparams: dict, layouts: dict | None = None) -> dict:
    """Complete the quantized steps' descriptions with their operands' qparams (and their
    results' `layouts`, see _quantized_qparams), pack the int8 weights; returns the
    arrays to store ("pq<i>", "pq<i>.corr", ...)."""
    arrays = {}
    for i, desc in enumerate(table):
        if desc["kind"] in QUANTIZED_KINDS:
            _lay_out_result(desc, (layouts or {}).get(desc["name"]))
        if desc["kind"] not in QUANTIZED_KINDS or desc["kind"] == "quantize":
            continue
        seen = qparams.get(desc["name"], [])
        # the activations (a qgemm's second quantized operand is its per-channel weight;
        # a dynamic linear's only one is)
        activations = {"qgemm": seen[:1], "qgemm_dynamic": []}.get(desc["kind"], seen)
        if any(axis is not None or dtype not in ("quint8", "qint8")
               for _, _, dtype, axis in activations):
            _refuse(desc, "its quantized input is not per-tensor quint8/qint8")
        desc["in_qparams"] = [[scale, zp] for scale, zp, _, _ in seen]
        if desc["kind"] == "qclamp":
            desc["in_dtype"] = seen[0][2]
            _clamp_bounds_q(desc)
        if desc["kind"] == "qlut":
            _lut_table(desc, seen[0])
        if desc["kind"] == "qgemm":
            arrays.update(_pack_qgemm(plan, desc, f"pq{i}"))
        elif desc["kind"] == "qgemm_dynamic":
            arrays.update(_pack_dynamic(plan, desc, f"pq{i}"))
    return arrays


def _lay_out_result(desc: dict, strides) -> None:
    """A quantized result's buffer in the artifact gets the layout eager mode gives it
    (only host steps read integer values, on views of any layout): copying the step's
    result in is then a plain copy, and the next step sees what it sees in eager mode
    (a conv's channels-last input read in place)."""
    results = desc.get("results")
    if strides is None or not results or len(results) != 1 or \
            len(strides) != len(results[0]["shape"]) or \
            not is_dense(results[0]["shape"], strides):
        return
    results[0]["strides"] = list(strides)


def _pack_qgemm(plan, desc: dict, key: str) -> dict:
    x_slot = desc["inputs"][0]
    w = _constant_weight(plan, desc)
    residual = desc.get("residual")
    slots = desc["inputs"][:-1] if residual else desc["inputs"]     # other: the last
    other_slot = desc["inputs"][-1]
    bias = plan.constants.get(slots[2]) if len(slots) > 2 else None
    (x_scale, x_zp), x_dtype = desc["in_qparams"][0], desc.get("x_dtype", dtypes.quint8)
    n = w.int_repr.shape[0]
    if desc["gemm"] == "depthwise":
        return _pack_depthwise(desc, key, w, bias, x_slot, x_scale, x_zp, x_dtype)
    cfg = CONFIGS[desc["config"]]
    if desc["gemm"] == "conv":
        cp, run = lite.conv_k_layout(w.int_repr.shape[1], w.int_repr.shape[3],
                                     desc["dilation"][1])
        packed = Q.PackedWeight(CQ.conv_weight_matrix(w.int_repr, cp, run), cfg)
        desc.update(cp=cp, run=run)
        if cfg is QA.AMX:
            _amx_call(desc, run, residual is not None)
    else:
        packed = Q.PackedWeight(w.int_repr, cfg)
    (corr, mult, bias), qparams = CQ.epilogue_inputs(
        packed, x_scale, x_zp, w, bias, desc["scale"],
        CQ.requant_params(desc["scale"], desc["zero_point"], x_dtype, desc["relu"],
                          _clamp_of(desc)))
    desc.update(packed=key, kq=packed.kq, groups=-(-packed.k // 4), n=n,
                x_zero_point=int(x_zp), inputs=[x_slot], qparams=list(qparams))
    if residual:
        other_qparams = desc["in_qparams"][-1]
        residual["qparams"] = list(lite.residual_qparams(
            qparams, desc["scale"], other_qparams, residual["scale"],
            residual["zero_point"], residual["relu"]))
        residual["other_qparams"] = list(other_qparams)
        desc["inputs"] = [x_slot, other_slot]
    return {key: packed.data, f"{key}.corr": corr, f"{key}.mult": mult, f"{key}.bias": bias}


def _amx_call(desc: dict, run: int, residual: bool) -> None:
    """An AMX conv step runs as eager mode runs it (lite_int8.QGemmStep._amx_conv): a
    prepared call, the padding read in the kernel where eager mode reads it there
    (codegen/quantized.py _pads_in_kernel), a residual added in the epilogue. New keys
    only ("amx_call"), so a runtime without them still runs the step its old way (host
    padding, the add after the GEMM) from the same description."""
    amx = {"pad": "kernel" if run >= lite.PAD_IN_KERNEL_MIN_RUN and any(desc["padding"])
           and CQ.AMX_PAD_IN_KERNEL else "host"}
    if residual:        # the same module's fused kernel (symbols: m<i>_qgemm_amx_u8)
        amx["add_symbol"] = desc["symbol"] + "_add"
    desc["amx_call"] = amx


def _clamp_of(desc: dict) -> tuple | None:
    """A conv step's fused clamp (fuse_clamps) as requant_params takes it."""
    return tuple(desc["clamp_q"]) if desc.get("clamp_q") else None


def _pack_depthwise(desc, key, w, bias, x_slot, x_scale, x_zp, x_dtype) -> dict:
    packed = QD.PackedDepthwise(w.int_repr)
    (corr, mult, bias), qparams = CQ.epilogue_inputs(
        packed, x_scale, x_zp, w, bias, desc["scale"],
        CQ.requant_params(desc["scale"], desc["zero_point"], x_dtype, desc["relu"],
                          _clamp_of(desc)))
    desc.update(packed=key, n=packed.n, x_zero_point=int(x_zp), inputs=[x_slot],
                qparams=list(qparams))
    return {key: packed.data, f"{key}.corr": corr, f"{key}.mult": mult, f"{key}.bias": bias}


def _constant_weight(plan, desc: dict) -> QuantizedArray:
    w = plan.constants.get(desc["inputs"][1])
    if not isinstance(w, QuantizedArray) or w.dtype is not dtypes.qint8 or \
            w.axis not in (None, 0) or np.any(w.zero_point):
        _refuse(desc, "its weight is not a constant qint8 tensor with zero points 0")
    return w


def _pack_dynamic(plan, desc: dict, key: str) -> dict:
    """quantized_linear_dynamic: the packed weight, its row sums, scales and the bias (the
    input's qparams, so the correction and multiplier, are made per call)."""
    w = _constant_weight(plan, desc)
    packed = Q.PackedWeight(w.int_repr, CONFIGS[desc["config"]])
    n = w.int_repr.shape[0]
    bias = plan.constants.get(desc["inputs"][2]) if len(desc["inputs"]) > 2 else None
    desc.update(packed=key, kq=packed.kq, groups=-(-packed.k // 4), n=n,
                inputs=desc["inputs"][:1])
    return {key: packed.data, f"{key}.row_sums": packed.column_vector(packed.row_sums, np.int64),
            f"{key}.scales": packed.column_vector(CQ.weight_scales(w, n), np.float32),
            f"{key}.bias": packed.column_vector(0.0 if bias is None else bias, np.float32)}


def _refuse(desc: dict, why: str):
    raise LoweringError(f"ember.aot: step {desc['name']} ({desc.get('op')}): {why}; it "
                        "cannot be packaged")
