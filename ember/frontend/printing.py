"""repr(Tensor) in PyTorch's style: `tensor([1., 2.], requires_grad=True)`.

Floats: integer-valued -> `1.`; otherwise 4 decimals, or scientific when the
dynamic range is wide (max/min > 1000, max > 1e8 or min < 1e-4), as PyTorch does.
Non-default dtypes are appended (`dtype=ember.float64`); large tensors summarize.
"""
from __future__ import annotations

import numpy as np

from ..ir import dtypes

PRINT_OPTIONS = {"precision": 4, "threshold": 1000, "edgeitems": 3, "linewidth": 80}


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None,
                     profile=None, sci_mode=None) -> None:
    for key, value in (("precision", precision), ("threshold", threshold),
                       ("edgeitems", edgeitems), ("linewidth", linewidth)):
        if value is not None:
            PRINT_OPTIONS[key] = value


def _float_formatter(values: np.ndarray):
    finite = values[np.isfinite(values)]
    precision = PRINT_OPTIONS["precision"]
    if finite.size == 0:
        return lambda v: _special(v) or f"{v}"
    nonzero = np.abs(finite[finite != 0])
    if np.all(finite == np.round(finite)) and (nonzero.size == 0 or nonzero.max() < 1e8):
        return lambda v: _special(v) or f"{v:.0f}."
    sci = nonzero.size > 0 and (nonzero.max() / nonzero.min() > 1000 or nonzero.max() > 1e8
                                or nonzero.min() < 1e-4)
    if sci:
        return lambda v: _special(v) or f"{v:.{precision}e}"
    return lambda v: _special(v) or f"{v:.{precision}f}"


def _special(v) -> str:
    if np.isnan(v):
        return "nan"
    if np.isinf(v):
        return "inf" if v > 0 else "-inf"
    return ""


def _formatter(arr: np.ndarray):
    kind = arr.dtype.kind
    if kind == "b":
        return {"bool": lambda v: "True" if v else "False"}
    if kind in "iu":
        return {"int": lambda v: str(v)}
    if kind == "c":
        real = _float_formatter(arr.real.astype(np.float64).ravel())
        imag = _float_formatter(arr.imag.astype(np.float64).ravel())

        def fmt(v):
            im = imag(abs(v.imag))
            return f"{real(v.real)}{'-' if v.imag < 0 else '+'}{im}j"
        return {"complexfloat": fmt}
    fmt = _float_formatter(arr.astype(np.float64).ravel())
    return {"float": fmt, "float_kind": fmt}


def _padded(formatter: dict, arr: np.ndarray) -> dict:
    """Right-justify every element to the widest one, as PyTorch aligns columns."""
    (key, func), = formatter.items() if len(formatter) == 1 else [next(iter(formatter.items()))]
    width = max(len(func(v)) for v in arr.ravel())
    padded = lambda v: func(v).rjust(width)  # noqa: E731
    return {k: padded for k in formatter}


def _body(arr: np.ndarray) -> str:
    if arr.size == 0:
        return "[]"
    work = arr.astype(np.float64) if arr.dtype.kind == "f" and arr.dtype.itemsize < 4 or \
        str(arr.dtype) == "bfloat16" else arr
    return np.array2string(work, separator=", ", formatter=_padded(_formatter(work), work),
                           threshold=PRINT_OPTIONS["threshold"],
                           edgeitems=PRINT_OPTIONS["edgeitems"],
                           max_line_width=PRINT_OPTIONS["linewidth"], prefix="tensor(")


def tensor_repr(t) -> str:
    arr = t._array
    suffixes = []
    default_for_kind = {"f": dtypes.get_default_dtype(), "i": dtypes.int64, "b": dtypes.bool_,
                        "c": dtypes.get_default_dtype().to_complex()}
    kind = "f" if t.dtype.is_floating_point else arr.dtype.kind
    if t.device.type != "cpu":
        suffixes.append(f"device='{t.device}'")
    if arr.size == 0 and arr.ndim != 1:
        suffixes.append(f"size={tuple(arr.shape)}")
    if default_for_kind.get(kind) is not t.dtype:
        suffixes.append(f"dtype=ember.{t.dtype.name}")
    if t.grad_fn is not None:
        suffixes.append(f"grad_fn=<{t.grad_fn.name}>")
    elif t.requires_grad:
        suffixes.append("requires_grad=True")
    body = _body(arr) if arr.ndim else _scalar(arr)
    return "tensor(" + ", ".join([body] + suffixes) + ")"


def _scalar(arr: np.ndarray) -> str:
    fmt = _formatter(arr.reshape(1))
    v = arr.reshape(()).item() if arr.dtype.kind != "c" else arr.reshape(())[()]
    func = next(iter(fmt.values()))
    if arr.dtype.kind == "f" or str(arr.dtype) == "bfloat16":
        v = float(v)
    return func(v)
