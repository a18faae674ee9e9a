"""PyTorch-style op signatures: `add(Tensor self, Tensor other, *, Scalar alpha=1) -> Tensor`.

A parsed `Schema` binds a call's positional and keyword arguments into one ordered
tuple (defaults filled in) and says which arguments are tensors, which is what
eager dispatch, tracing, the IR printer and the verifier all need.
"""
from __future__ import annotations

import ast
import re
import types
from dataclasses import dataclass

from .errors import EmberError


class SchemaError(EmberError, TypeError):
    """A call whose arguments do not fit the op's signature."""


_NO_DEFAULT = object()


@dataclass(frozen=True)
class Arg:
    name: str
    type: str            # 'Tensor', 'Tensor?', 'Tensor[]', 'int', 'int[]', 'float', ...
    default: object = _NO_DEFAULT
    kwarg_only: bool = False

    @property
    def has_default(self) -> bool:
        return self.default is not _NO_DEFAULT

    @property
    def is_tensor(self) -> bool:
        return self.type in ("Tensor", "Tensor?")

    @property
    def is_tensor_list(self) -> bool:
        return self.type in ("Tensor[]", "Tensor?[]")

    @property
    def holds_tensors(self) -> bool:
        return self.is_tensor or self.is_tensor_list


@dataclass(frozen=True)
class Return:
    name: str | None
    type: str


@dataclass(frozen=True)
class Schema:
    name: str
    args: tuple[Arg, ...]
    returns: tuple[Return, ...]
    text: str

    def __post_init__(self):
        # Facts every op call reads, computed once (a frozen dataclass: set directly).
        facts = {
            "tensor_arg_indices": tuple(i for i, a in enumerate(self.args) if a.holds_tensors),
            "returns_tuple": len(self.returns) > 1,
            "returns_list": len(self.returns) == 1 and self.returns[0].type == "Tensor[]",
            "_n_positional": sum(1 for a in self.args if not a.kwarg_only),
            "_defaults": tuple(a.default for a in self.args),
            # positional arguments a call must give (a kwarg-only one without a default
            # makes this exceed _n_positional, so such calls always take the full path)
            "_n_required": max((i + 1 for i, a in enumerate(self.args) if not a.has_default),
                               default=0),
            "_needs_convert": any(a.type.rstrip("?") in ("ScalarType", "MemoryFormat")
                                  for a in self.args),
            # `int` arguments: a 0-dim integer tensor there converts (torch accepts it)
            # `int`/`float` arguments: a 0-dim tensor there converts (torch accepts it)
            "_int_positions": tuple(i for i, a in enumerate(self.args)
                                    if a.type.rstrip("?") in ("int", "float")),
        }
        for name, value in facts.items():
            object.__setattr__(self, name, value)

    def bind(self, args: tuple, kwargs: dict) -> tuple:
        """Arguments in schema order with defaults filled; raises SchemaError naming the op."""
        if not kwargs and self._n_required <= len(args) <= self._n_positional:
            # the common call: positional arguments, defaults for the rest
            values = tuple(args) + self._defaults[len(args):]
            if self._needs_convert or any(type(values[i]) not in _PLAIN_INT
                                          for i in self._int_positions):
                return tuple(_convert(p.type, v) for p, v in zip(self.args, values))
            return values
        params = self.args
        positional = [a for a in params if not a.kwarg_only]
        if len(args) > len(positional):
            raise SchemaError(
                f"{self.name}() takes {len(positional)} positional arguments but "
                f"{len(args)} were given\n  signature: {self.text}")
        values = list(args)
        known = {a.name for a in params}
        if any(k not in known for k in kwargs):
            kwargs = _numpy_names(kwargs, known)
        for param in params[len(args):]:
            if param.name in kwargs:
                values.append(kwargs[param.name])
            elif param.has_default:
                values.append(param.default)
            else:
                raise SchemaError(f"{self.name}() missing required argument '{param.name}'"
                                  f"\n  signature: {self.text}")
        extra = [k for k in kwargs if k not in known]
        if extra:
            raise SchemaError(f"{self.name}() got unexpected keyword argument(s) {extra}"
                              f"\n  signature: {self.text}")
        dup = [p.name for p in params[:len(args)] if p.name in kwargs]
        if dup:
            raise SchemaError(f"{self.name}() got multiple values for argument '{dup[0]}'")
        return tuple(_convert(p.type, v) for p, v in zip(params, values))

    def unbind(self, bound: tuple) -> tuple[tuple, dict]:
        """Bound values back to a minimal call: positional args up to the last one that
        differs from its default, and keyword-only args that differ from theirs."""
        positional = [(a, v) for a, v in zip(self.args, bound) if not a.kwarg_only]
        while positional and positional[-1][0].has_default and \
                _same_default(positional[-1][1], positional[-1][0].default):
            positional.pop()
        kwargs = {a.name: v for a, v in zip(self.args, bound)
                  if a.kwarg_only and not (a.has_default and _same_default(v, a.default))}
        return tuple(v for _, v in positional), kwargs

    def as_kwargs(self, bound: tuple) -> dict:
        return {a.name: v for a, v in zip(self.args, bound)}


def _same_default(value, default) -> bool:
    if hasattr(value, "node") or hasattr(value, "_array"):   # a Proxy/Node/Tensor: never
        return False
    try:
        return type(value) is type(default) and bool(value == default) or \
            (value is None and default is None)
    except Exception:  # noqa: BLE001 - exotic values compare as different
        return False


_PLAIN_INT = (int, bool, float, type(None))


def _convert(type_: str, value):
    """Normalize enum-like arguments: 'float32' -> ember.float32, 'channels_last' -> enum."""
    if value is None:
        return None
    base = type_.rstrip("?")
    if base == "ScalarType":
        from .dtypes import as_dtype
        return as_dtype(value)
    if base == "int" and _is_eager_tensor(value) and value.ndim == 0 and \
            value.dtype.category.name == "INT":
        return int(value.item())    # a 0-dim integer tensor where an int goes, as torch
    if base == "float" and _is_eager_tensor(value) and value.ndim == 0 and \
            not value.requires_grad:
        return float(value.item())  # a 0-dim tensor where a float goes (a stored scale)
    if base == "MemoryFormat":
        from .meta import MemoryFormat
        return value if isinstance(value, MemoryFormat) else MemoryFormat(value)
    return value


def _is_eager_tensor(value) -> bool:
    """An eager Tensor (it holds an array in a slot); never a tracing Proxy, which
    answers every attribute lookup."""
    return isinstance(getattr(type(value), "_array", None), types.MemberDescriptorType)


_ARG_RE = re.compile(r"^\s*(?P<type>[\w\[\]\?]+)\s+(?P<name>\w+)\s*(=\s*(?P<default>.+))?$")


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside brackets."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        parts.append("".join(cur))
    return parts


def _parse_default(text: str):
    text = text.strip()
    consts = {"True": True, "False": False, "None": None}
    if text in consts:
        return consts[text]
    return ast.literal_eval(text)


def parse_schema(text: str) -> Schema:
    m = re.match(r"^\s*([\w.]+(?:::\w+)?)\((.*)\)\s*->\s*(.+)$", text)   # mylib::op too
    if not m:
        raise SchemaError(f"malformed schema: {text!r}")
    name, arg_text, ret_text = m.groups()
    args, kwarg_only = [], False
    for piece in _split_top(arg_text):
        if piece.strip() == "*":
            kwarg_only = True
            continue
        am = _ARG_RE.match(piece)
        if not am:
            raise SchemaError(f"malformed argument {piece!r} in schema {text!r}")
        default = _parse_default(am["default"]) if am["default"] is not None else _NO_DEFAULT
        args.append(Arg(am["name"], am["type"], default, kwarg_only))
    ret_text = ret_text.strip()
    if ret_text.startswith("("):
        rets = []
        for piece in _split_top(ret_text[1:-1]):
            bits = piece.split()
            rets.append(Return(bits[1] if len(bits) > 1 else None, bits[0]))
    else:
        rets = [Return(None, ret_text)]
    return Schema(name, tuple(args), tuple(rets), text.strip())


# keyword names torch's Python argument parser also accepts for these parameters (NumPy's
# spellings: torch.sum(x, axis=1, keepdims=True), torch.argsort(x, axis=0), torch.abs(x=t))
_NUMPY_NAMES = {"axis": ("dim",), "keepdims": ("keepdim",),
                "x": ("input", "self"), "a": ("input", "self"), "x1": ("input", "self"),
                "input": ("self",), "x2": ("other",)}


def _numpy_names(kwargs: dict, known: set) -> dict:
    """kwargs with a NumPy-style name the schema lacks renamed to the schema's name."""
    out = {}
    for k, v in kwargs.items():
        if k not in known:
            k = next((name for name in _NUMPY_NAMES.get(k, ()) if name in known), k)
        out[k] = v
    return out
