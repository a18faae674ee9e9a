"""Shared by the pt2e parity tests: torch's and ember's converted pt2e graphs in one
comparable form (which values are quantized where, with which qparams)."""
from __future__ import annotations

import numpy as np

_QUANTIZE = ("quantize_per_tensor", "quantize_per_channel", "choose_qparams")


def _kind(node) -> str:
    """The op a node runs, the same word in both libraries (`aten.conv2d.default` and
    ember's `conv2d` -> conv2d)."""
    if node.op == "placeholder":
        return "input"
    if node.op == "get_attr":
        return "constant"
    target = node.target
    name = getattr(target, "name", None)
    name = name() if callable(name) else name
    text = str(name or getattr(target, "__name__", target))
    text = text.split("::")[-1].replace("aten.", "").split(".")[0]
    return text


def _is_dequantize(node) -> bool:
    return "dequantize" in _kind(node)


def _is_quantize(node) -> bool:
    return any(_kind(node).startswith(q) for q in _QUANTIZE) and not _is_dequantize(node)


def _through_qdq(arg) -> str:
    """How a compute op reads an input: `q(<producer kind>)` through dequantize, the
    producer's kind otherwise."""
    if not hasattr(arg, "op"):
        return repr(arg) if isinstance(arg, (int, float)) else "-"
    if _is_dequantize(arg):
        quantized = arg.args[0]
        if quantized.op == "get_attr":
            return "q(constant)"
        dynamic = _kind(quantized).endswith("dynamic") or hasattr(quantized.args[1], "op")
        return f"{'dq' if dynamic else 'q'}({_kind(quantized.args[0])})"
    return _kind(arg)


def signature(gm) -> list:
    """[(op kind, how each tensor input is read)] for every compute op in graph order,
    then the model outputs' producers: equal lists mean the same quantize / dequantize
    placement."""
    out = []
    for node in gm.graph.nodes:
        if node.op not in ("call_function", "call_method") or _is_quantize(node) or \
                _is_dequantize(node) or _kind(node) in ("_guards_fn", "getitem"):
            continue
        args = [a for a in node.args if hasattr(a, "op")]
        out.append((_kind(node), tuple(_through_qdq(a) for a in args)))
    (result,) = [n for n in gm.graph.nodes if n.op == "output"]
    outs = result.args[0] if isinstance(result.args[0], (tuple, list)) else (result.args[0],)
    out.append(("output", tuple(_through_qdq(a) for a in outs)))
    return out


def activation_qparams(gm) -> list:
    """(scale, zero point) of each activation quantize_per_tensor, in graph order."""
    found = []
    for node in gm.graph.nodes:
        if _kind(node) == "quantize_per_tensor" and node.args[0].op != "get_attr" \
                and not hasattr(node.args[1], "op"):
            found.append((float(node.args[1]), int(node.args[2])))
    return found


def first(out):
    return out[0] if isinstance(out, (tuple, list)) else out


def as_numpy(out) -> list:
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [np.asarray(o.detach().numpy() if hasattr(o, "detach") else o.numpy())
            for o in outs]
