"""Index ops as llvm/index_ops.py kernels: which nodes, and the geometry of one call.

    desc = describe(node)                      # JSON-able, or None (the op runs eagerly)
    spec = kernel_spec(desc)                   # the IndexKernel to compile
    geom = geometry(desc, ins, out)            # ins/out: (shape, strides in elements)

`describe` reads only the node (op, arguments, metas), so the plan's Python step, the
in-process entry point and an artifact all call the same kernel; `geometry` reads the
operands' actual strides (the Python step's arrays, the native program's Values), so a
kernel never assumes a layout. Covered: gather, index_select, embedding, aten.index
(`x[i]`, `x[:, i]`, `x[i, j]`; bool masks stay eager: their shape depends on values),
scatter (tensor or scalar src, reduce add/multiply), scatter_add, scatter_reduce
(sum/prod/amax/amin/mean, include_self either way), index_add (any alpha)
and index_put (accumulate or not). Composites built on them (take_along_dim, index_copy,
index_fill's index_put, embedding's and gather's gradients) follow.
"""
from __future__ import annotations

import numpy as np

from ..ir.graph import Node, OpKind
from ..ir.meta import TensorMeta
from ..ir.registry import is_op
from .llvm.index_ops import IndexKernel, index_supported, supported

OPS = ("gather", "index_select", "embedding", "index", "index_put", "scatter", "scatter_add",
       "scatter_reduce", "index_add")
_REDUCE = {None: "none", "add": "add", "sum": "add", "multiply": "mul", "prod": "mul",
           "amax": "amax", "amin": "amin", "mean": "mean"}


def _meta(v) -> TensorMeta | None:
    return v.meta.get("val") if isinstance(v, Node) else None


def describe(node: Node) -> dict | None:
    """The kernel call for `node`, or None when it is not one of these or its dtypes,
    arguments or shapes are ones the kernel does not take (it then runs eagerly)."""
    if node.op != OpKind.call_function or not is_op(node.target) or \
            node.target.name not in OPS:
        return None
    op = node.target
    args = op.schema.as_kwargs(op.schema.bind(node.args, node.kwargs))
    out = node.meta.get("val")
    if not isinstance(out, TensorMeta):
        return None
    try:
        desc = _DESCRIBE[op.name](args, out)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    if desc is None:
        return None
    metas = [_meta(v) for v in _flat(args)]
    if any(m is None for m in metas):
        return None
    indices = [metas[i] for i in desc["index_inputs"]]
    if not indices or not all(index_supported(m.dtype.np_dtype) for m in indices):
        return None
    if not supported(desc["mode"], desc["reduce"], out.dtype.np_dtype):
        return None
    if desc["data_input"] is not None and metas[desc["data_input"]].dtype != out.dtype:
        return None
    desc.update(op=op.name, dtype=np.dtype(out.dtype.np_dtype).name,
                in_ndims=[len(m.shape) for m in metas],
                index_dtypes=[np.dtype(m.dtype.np_dtype).name for m in indices],
                ndim=max(1, _iteration_ndim(desc, metas, out)))
    return desc


def _flat(args: dict) -> list:
    """The tensor arguments in tensor_inputs order (lists flattened, Nones dropped)."""
    found = []
    for v in args.values():
        for x in (v if isinstance(v, (list, tuple)) else [v]):
            if isinstance(x, Node):
                found.append(x)
    return found


def _scalar(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _gather(args, out):
    return {"mode": "gather", "reduce": "none", "include_self": True, "negative": False,
            "fill": None, "dim": args["dim"], "data_input": 0, "index_inputs": [1],
            "layout": "fiber"}


def _index_select(args, out):
    return {"mode": "gather", "reduce": "none", "include_self": True, "negative": False,
            "fill": None, "dim": args["dim"], "data_input": 0, "index_inputs": [1],
            "layout": "select"}


def _embedding(args, out):
    return {"mode": "gather", "reduce": "none", "include_self": True, "negative": False,
            "fill": None, "dim": 0, "data_input": 0, "index_inputs": [1],
            "layout": "embedding"}


def _positions(indices) -> list | None:
    """Per entry of aten.index's list: None, or the entry's tensor position (1, 2, ...
    after self); None overall when an entry is a bool/uint8 mask or not a tensor."""
    found, at = [], 1
    for idx in indices:
        if idx is None:
            found.append(None)
            continue
        meta = _meta(idx)
        if meta is None or np.dtype(meta.dtype.np_dtype).kind not in "iu" or \
                np.dtype(meta.dtype.np_dtype) == np.uint8:
            return None
        found.append(at)
        at += 1
    return found


def _index(args, out):
    where = _positions(args["indices"])
    if where is None or all(w is None for w in where):
        return None
    return {"mode": "gather", "reduce": "none", "include_self": True, "negative": True,
            "fill": None, "dim": 0, "data_input": 0,
            "index_inputs": [w for w in where if w is not None], "layout": "advanced",
            "entries": [w is not None for w in where]}


def _index_put(args, out):
    where = _positions(args["indices"])
    if where is None or all(w is None for w in where):
        return None
    values = args["values"]
    fill = None if isinstance(values, Node) else _scalar(values)
    if fill is None and not isinstance(values, Node):
        return None
    k = sum(w is not None for w in where)
    return {"mode": "scatter", "reduce": "add" if args["accumulate"] else "none",
            "include_self": True, "negative": True, "fill": fill, "dim": 0,
            "data_input": None if fill is not None else k + 1,
            "index_inputs": [w for w in where if w is not None], "layout": "advanced",
            "entries": [w is not None for w in where]}


def _scatter_like(args, reduce, include_self=True):
    src = args.get("src")
    fill = None if isinstance(src, Node) else _scalar(src)
    if fill is None and not isinstance(src, Node):
        return None
    return {"mode": "scatter", "reduce": _REDUCE[reduce], "include_self": include_self,
            "negative": False, "fill": fill, "dim": args["dim"],
            "data_input": None if fill is not None else 2, "index_inputs": [1],
            "layout": "fiber"}


def _scatter(args, out):
    return _scatter_like(args, args.get("reduce"))


def _scatter_add(args, out):
    return _scatter_like(args, "add")


def _scatter_reduce(args, out):
    if args["reduce"] not in ("sum", "prod", "amax", "amin", "mean"):
        return None
    return _scatter_like(args, args["reduce"], bool(args["include_self"]))


def _index_add(args, out):
    alpha = args.get("alpha", 1)
    if not isinstance(args["source"], Node) or not out.shape or _scalar(alpha) is None or \
            (not out.dtype.is_floating_point and not isinstance(alpha, int)):
        return None
    return {"mode": "scatter", "reduce": "add", "include_self": True, "negative": False,
            "fill": None, "dim": args["dim"], "data_input": 2, "index_inputs": [1],
            "layout": "select", "alpha": None if alpha == 1 else alpha}


_DESCRIBE = {"gather": _gather, "index_select": _index_select, "embedding": _embedding,
             "index": _index, "index_put": _index_put, "scatter": _scatter,
             "scatter_add": _scatter_add, "scatter_reduce": _scatter_reduce,
             "index_add": _index_add}


def _iteration_ndim(desc, metas, out) -> int:
    ins = [(tuple(m.shape), tuple(m.strides)) for m in metas]
    return len(_iteration(desc, ins, (tuple(out.shape), tuple(out.strides)))[0])


def kernel_spec(desc: dict) -> IndexKernel:
    return IndexKernel(desc["mode"], desc["reduce"], bool(desc["include_self"]), desc["dtype"],
                       tuple(desc["index_dtypes"]), int(desc["ndim"]), bool(desc["negative"]),
                       desc["fill"], desc.get("alpha"))


def _norm(shape, strides):
    """A 0-d operand as one element (the kernels loop over at least one dim)."""
    return (list(shape), list(strides)) if len(shape) else ([1], [0])


def _wrap(dim: int, ndim: int) -> int:
    return dim + ndim if dim < 0 else dim


def _iteration(desc, ins, out):
    """(shape, dst_st, data_st, [(idx_st, target_st, size, dim)] per index): the
    iteration space and every operand's strides over it (see llvm/index_ops.py)."""
    layout, gather = desc["layout"], desc["mode"] == "gather"
    out_shape, out_st = _norm(*out)
    self_shape, self_st = _norm(*ins[0])
    # the indexed operand: self for a gather, the result (a copy of self) for a scatter
    t_shape, t_st = (self_shape, self_st) if gather else (out_shape, out_st)
    if layout == "advanced":
        return _advanced(desc, ins, out, t_shape, t_st, gather)
    if layout == "embedding":
        i_shape, i_st = list(ins[1][0]), list(ins[1][1])
        rest = len(t_shape) - 1
        shape = i_shape + t_shape[1:]
        if not shape:
            return [1], [0], [0], [([0], t_st[0], t_shape[0], 0)]
        return (shape, out_st, [0] * len(i_shape) + t_st[1:],
                [(i_st + [0] * rest, t_st[0], t_shape[0], 0)])
    d = _wrap(desc["dim"], len(ins[0][0])) if ins[0][0] else 0
    base_st = list(t_st)
    base_st[d] = 0
    i_shape, i_st = _norm(*ins[1])
    if layout == "fiber":             # gather / scatter: the index's own positions
        shape = i_shape
        idx_st = i_st
    else:                             # index_select / index_add: a vector along dim d
        shape = out_shape if gather else _norm(*ins[2])[0]
        idx_st = [0] * len(shape)
        idx_st[d] = i_st[0] if ins[1][0] else 0
    if gather:
        dst_st, data_st = out_st, base_st
    else:
        dst_st = base_st
        data_st = _norm(*ins[desc["data_input"]])[1] if desc["data_input"] is not None \
            else [0] * len(shape)
    return shape, dst_st, data_st, [(idx_st, t_st[d], t_shape[d], d)]


def _broadcast(shapes):
    return list(np.broadcast_shapes(*[tuple(s) for s in shapes]))


def _bstrides(shape, strides, to):
    """strides of an operand broadcast (right-aligned) to `to` (0 where broadcast)."""
    pad = len(to) - len(shape)
    return [0] * pad + [st if s != 1 else 0 for s, st in zip(shape, strides)]


def _advanced(desc, ins, out, t_shape, t_st, gather):
    """aten.index / index_put: index tensors broadcast to B; the result is the self dims
    before the indexed block, B, the dims after it (NumPy's rule), or B first when the
    indexed dims are not adjacent."""
    entries = list(desc["entries"]) + [False] * (len(t_shape) - len(desc["entries"]))
    dims = [d for d, e in enumerate(entries) if e]
    idx = [ins[p] for p in desc["index_inputs"]]
    b_shape = _broadcast([s for s, _ in idx])
    adjacent = dims == list(range(dims[0], dims[-1] + 1))
    plain = [d for d, e in enumerate(entries) if not e]
    before = [d for d in plain if adjacent and d < dims[0]]
    after = [d for d in plain if d not in before]
    shape = [t_shape[d] for d in before] + b_shape + [t_shape[d] for d in after]
    base = [t_st[d] for d in before] + [0] * len(b_shape) + [t_st[d] for d in after]
    per_index = []
    for (s, st), d in zip(idx, dims):
        bst = _bstrides(s, st, b_shape)
        per_index.append(([0] * len(before) + bst + [0] * len(after), t_st[d], t_shape[d], d))
    if gather:
        dst_st = _norm(*out)[1] if shape else [0]
        data_st = base
    else:
        dst_st = base
        if desc["data_input"] is None:
            data_st = [0] * len(shape)
        else:
            v_shape, v_st = ins[desc["data_input"]]
            v_shape, v_st = list(v_shape), list(v_st)
            while len(v_shape) > len(shape) and v_shape[0] == 1:
                v_shape, v_st = v_shape[1:], v_st[1:]
            data_st = _bstrides(v_shape, v_st, shape)
    if not shape:       # every dim indexed by 0-d indices: one element
        return [1], [0] if gather else [0], [0], [([0], t, sz, d) for _, t, sz, d in per_index]
    if gather and list(shape) != list(_norm(*out)[0]):
        raise ValueError(f"index result shape {shape} != {list(out[0])}")
    return shape, dst_st, data_st, per_index


def geometry(desc: dict, ins: list, out: tuple) -> tuple[list, list]:
    """(the kernel's geometry array, the dim each index addresses)."""
    shape, dst_st, data_st, per_index = _iteration(desc, ins, out)
    geom = list(shape) + list(dst_st) + list(data_st)
    for idx_st, target_st, size, _ in per_index:
        geom += list(idx_st) + [target_st, size]
    return [int(g) for g in geom], [d for *_, d in per_index]
