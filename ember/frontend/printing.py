"""repr(Tensor) in PyTorch's style: `tensor([1., 2.], requires_grad=True)`.

A port of torch/_tensor_str.py onto numpy arrays, so the text is PyTorch's to the
character: one formatter per tensor (integer-valued floats print as `1.`; 4 decimals;
scientific when max/min > 1000, max > 1e8 or, for non-integers, min < 1e-4; columns
right-justified to the widest nonzero finite value), PyTorch's line breaking at
`linewidth`, summarization with `...` above `threshold` elements, and the suffixes
(`dtype=`, `size=`, `grad_fn=`, `requires_grad=True`) wrapped like PyTorch's.
"""
from __future__ import annotations

import math

import numpy as np

from ..ir import dtypes

PRINT_OPTIONS = {"precision": 4, "threshold": 1000, "edgeitems": 3, "linewidth": 80,
                 "sci_mode": None}

_PROFILES = {"default": dict(precision=4, threshold=1000, edgeitems=3, linewidth=80),
             "short": dict(precision=2, threshold=1000, edgeitems=2, linewidth=80),
             "full": dict(precision=4, threshold=math.inf, edgeitems=3, linewidth=80)}


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None,
                     profile=None, sci_mode=None) -> None:
    """torch.set_printoptions: a profile first, then the explicit options over it."""
    if profile is not None:
        PRINT_OPTIONS.update(_PROFILES[profile])
    for key, value in (("precision", precision), ("threshold", threshold),
                       ("edgeitems", edgeitems), ("linewidth", linewidth)):
        if value is not None:
            PRINT_OPTIONS[key] = value
    PRINT_OPTIONS["sci_mode"] = sci_mode


class _Formatter:
    """torch._tensor_str._Formatter over a numpy array (floats already widened)."""

    def __init__(self, arr: np.ndarray):
        self.floating = arr.dtype.kind == "f"
        self.int_mode, self.sci_mode, self.max_width = True, False, 1
        precision = PRINT_OPTIONS["precision"]
        flat = arr.reshape(-1)
        if not self.floating:
            for v in flat.tolist():
                self.max_width = max(self.max_width, len(f"{v}"))
        else:
            vals = flat[np.isfinite(flat) & (flat != 0)]
            if vals.size:
                absv = np.abs(vals.astype(np.float64))
                lo, hi = absv.min(), absv.max()
                values = vals.tolist()
                self.int_mode = bool(np.all(vals == np.ceil(vals)))
                forced = PRINT_OPTIONS["sci_mode"]
                self.sci_mode = (hi / lo > 1000.0 or hi > 1.0e8 or lo < 1.0e-4) \
                    if forced is None else bool(forced)
                if self.sci_mode:
                    widths = (len(f"{v:.{precision}e}") for v in values)
                elif self.int_mode:
                    widths = (len(f"{v:.0f}") + 1 for v in values)
                else:
                    widths = (len(f"{v:.{precision}f}") for v in values)
                self.max_width = max(self.max_width, max(widths))

    def width(self) -> int:
        return self.max_width

    def format(self, value) -> str:
        precision = PRINT_OPTIONS["precision"]
        if self.floating:
            if self.sci_mode:
                ret = f"{value:{self.max_width}.{precision}e}"
            elif self.int_mode:
                ret = f"{value:.0f}"
                if not (math.isinf(value) or math.isnan(value)):
                    ret += "."
            else:
                ret = f"{value:.{precision}f}"
        else:
            ret = f"{value}"
        return (self.max_width - len(ret)) * " " + ret


def _summarized(arr: np.ndarray) -> np.ndarray:
    """torch's get_summarized_data: only the edge items decide the format."""
    e = PRINT_OPTIONS["edgeitems"]
    if arr.ndim == 0:
        return arr
    if arr.ndim == 1:
        return np.concatenate((arr[:e], arr[-e:])) if arr.shape[0] > 2 * e else arr
    if not e:
        return np.empty((0,) * arr.ndim, arr.dtype)
    rows = list(range(e)) + list(range(arr.shape[0] - e, arr.shape[0])) \
        if arr.shape[0] > 2 * e else range(arr.shape[0])
    return np.stack([_summarized(arr[i]) for i in rows])


def _val(val, f1: _Formatter, f2: _Formatter | None) -> str:
    if f2 is None:
        return f1.format(val)
    real = f1.format(val.real)
    imag = (f2.format(val.imag) + "j").lstrip()
    return real + imag if imag[0] in "+-" else real + "+" + imag


def _vector(arr, indent, summarize, f1, f2) -> str:
    element_length = f1.width() + 2 + (f2.width() + 1 if f2 is not None else 0)
    per_line = max(1, int(math.floor((PRINT_OPTIONS["linewidth"] - indent) / element_length)))
    e = PRINT_OPTIONS["edgeitems"]
    if summarize and not e:
        data = ["..."]
    elif summarize and arr.shape[0] > 2 * e:
        data = [_val(v, f1, f2) for v in arr[:e].tolist()] + [" ..."] + \
            [_val(v, f1, f2) for v in arr[-e:].tolist()]
    else:
        data = [_val(v, f1, f2) for v in arr.tolist()]
    lines = [", ".join(data[i:i + per_line]) for i in range(0, len(data), per_line)]
    return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"


def _nested(arr, indent, summarize, f1, f2) -> str:
    if arr.ndim == 0:
        return _val(arr.item(), f1, f2)
    if arr.ndim == 1:
        return _vector(arr, indent, summarize, f1, f2)
    e, n = PRINT_OPTIONS["edgeitems"], arr.shape[0]
    if summarize and n > 2 * e:
        slices = [_nested(arr[i], indent + 1, summarize, f1, f2) for i in range(e)] + \
            ["..."] + [_nested(arr[i], indent + 1, summarize, f1, f2) for i in range(n - e, n)]
    else:
        slices = [_nested(arr[i], indent + 1, summarize, f1, f2) for i in range(n)]
    return "[" + ("," + "\n" * (arr.ndim - 1) + " " * (indent + 1)).join(slices) + "]"


def _widen(arr: np.ndarray) -> np.ndarray:
    """float16/bfloat16 print through float32, as PyTorch does."""
    if arr.dtype.kind == "f" and arr.dtype.itemsize < 4 or str(arr.dtype) == "bfloat16":
        return arr.astype(np.float32)
    return arr


def tensor_str(arr: np.ndarray, indent: int) -> str:
    if arr.size == 0:
        return "[]"
    summarize = arr.size > PRINT_OPTIONS["threshold"]
    arr = _widen(arr)
    if arr.dtype.kind == "c":
        part = (lambda a: _summarized(a) if summarize else a)
        f1, f2 = _Formatter(part(arr.real)), _Formatter(part(arr.imag))
        return _nested(arr, indent, summarize, f1, f2)
    f1 = _Formatter(_summarized(arr) if summarize else arr)
    return _nested(arr, indent, summarize, f1, None)


def add_suffixes(text: str, suffixes: list, indent: int) -> str:
    """`text` + ", suffix" for each suffix and the closing parenthesis; a suffix that
    would pass the print width starts a new line at `indent`."""
    parts = [text]
    last_line_len = len(text) - text.rfind("\n") + 1
    for suffix in suffixes:
        if last_line_len + len(suffix) + 2 > PRINT_OPTIONS["linewidth"]:
            parts.append(",\n" + " " * indent + suffix)
            last_line_len = indent + len(suffix)
        else:
            parts.append(", " + suffix)
            last_line_len += len(suffix) + 2
    parts.append(")")
    return "".join(parts)


def tensor_repr(t) -> str:
    if t._storage.device == "meta":
        return _meta_repr(t)
    arr = t._values()
    # torch names a user's subclass: `LoggingTensor([1., 2.])`
    prefix = "tensor(" if getattr(t, "_is_param", False) or type(t).__module__.startswith(
        "ember.") else f"{type(t).__name__}("
    indent = len(prefix)
    suffixes = []
    default = dtypes.get_default_dtype()
    default_complex = dtypes.complex128 if default is dtypes.float64 else dtypes.complex64
    if t.device.type != "cpu":
        suffixes.append(f"device='{t.device}'")
    if arr.size == 0:
        if arr.ndim != 1:
            suffixes.append(f"size={tuple(arr.shape)}")
        if t.dtype is not default:
            suffixes.append(f"dtype=ember.{t.dtype.name}")
        body = "[]"
    else:
        if not PRINT_OPTIONS["edgeitems"]:
            suffixes.append(f"size={tuple(arr.shape)}")
        if t.dtype not in (default, default_complex, dtypes.int64, dtypes.bool_):
            suffixes.append(f"dtype=ember.{t.dtype.name}")
        body = tensor_str(arr, indent)
    _autograd_suffix(t, suffixes)
    return add_suffixes(prefix + body, suffixes, indent)


def _autograd_suffix(t, suffixes: list) -> None:
    if t.grad_fn is not None:
        suffixes.append(f"grad_fn=<{t.grad_fn.name}>")
    elif t.requires_grad:
        suffixes.append("requires_grad=True")


def _meta_repr(t) -> str:
    """PyTorch's form for data-less tensors: `tensor(..., device='meta', size=(2, 3))`,
    with the dtype named unless it is the default float dtype."""
    suffixes = ["device='meta'", f"size={tuple(t.shape)}"]
    if t.dtype is not dtypes.get_default_dtype():
        suffixes.append(f"dtype=ember.{t.dtype.name}")
    _autograd_suffix(t, suffixes)
    return "tensor(..., " + ", ".join(suffixes) + ")"
