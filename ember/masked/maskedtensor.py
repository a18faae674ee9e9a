"""MaskedTensor (torch.masked.MaskedTensor): a data tensor and a bool mask of its shape;
masked-out elements take no part in reductions and are carried along by everything else.

An op given a MaskedTensor comes here through ember's dispatch (a value handler, as
sparse tensors have). Reductions run the composites of ember.masked on the data with the
mask (the result's mask says which outputs had any valid input); softmax-like ops keep the
mask; view and shape ops (transpose, select, reshape, cat, ...) move data and mask
alike; elementwise ops run on the data and keep the mask, which must then be the same for
every MaskedTensor operand, as torch requires. The data tensor carries autograd, so
`mt.grad` is the data's gradient under the mask.
"""
from __future__ import annotations

import ember as _e

from ..ir import dispatch
from ..ir.errors import EmberError
from ..ir.registry import OPS, Tag
from . import _ops as masked_ops

# reductions with a masked composite in _ops.py, by op name
_REDUCTIONS = {"sum": "sum", "mean": "mean", "amax": "amax", "amin": "amin", "prod": "prod",
               "argmax": "argmax", "argmin": "argmin", "var": "var", "std": "std",
               "logsumexp": "logsumexp", "nansum": "sum", "norm": "norm"}
_NORMALIZATIONS = {"softmax", "log_softmax", "softmin"}
# ops that move elements around: the same op on the data and on the mask
_STRUCTURAL = {"t", "transpose", "permute", "select", "slice", "reshape", "view", "flatten",
               "unsqueeze", "squeeze", "expand", "expand_as", "movedim", "narrow", "flip",
               "roll", "contiguous", "clone", "detach", "unflatten", "repeat", "index_select",
               "unfold", "chunk", "split", "unbind", "swapaxes", "swapdims", "diagonal",
               "tril", "triu", "alias", "view_as", "reshape_as", "broadcast_to"}
# methods that take a size as varargs, as Tensor's do
_SIZE_ARGS = {"reshape", "view", "expand", "permute", "repeat", "flip", "tile"}
_LISTS = {"cat", "concat", "concatenate", "stack", "hstack", "vstack"}


class MaskedUnsupportedError(EmberError, NotImplementedError, TypeError):
    """An op MaskedTensor does not take: torch's TypeError ("Multiple dispatch failed
    ... returned NotImplemented"), and a NotImplementedError."""


class MaskedTensor:
    """torch.masked.MaskedTensor: `data` where `mask` is True, nothing elsewhere."""
    _ember_tensor_like = True       # ember.is_tensor says True, as torch.is_tensor
    is_sparse = False
    is_sparse_csr = False
    is_quantized = False
    is_nested = False

    def __init__(self, data, mask, requires_grad: bool = False):
        if not (_e.is_tensor(data) and _e.is_tensor(mask)):
            raise TypeError("MaskedTensor: data and mask must be tensors, got "
                            f"{type(data).__name__} and {type(mask).__name__}")
        if mask.dtype != _e.bool:
            raise TypeError("mask must have dtype bool.")
        if data.dim() != mask.dim():
            raise ValueError("data.dim() must equal mask.dim()")
        if tuple(data.shape) != tuple(mask.shape):
            raise ValueError(f"data.size() must equal mask.size(), got {list(data.shape)} "
                             f"and {list(mask.shape)}")
        if requires_grad:
            data = data.detach().requires_grad_()
        self._masked_data, self._masked_mask = data, mask

    # --- the parts and metadata --------------------------------------------------------
    def get_data(self):
        return self._masked_data

    def get_mask(self):
        return self._masked_mask

    def to_tensor(self, value):
        """The data with every masked-out element set to `value`."""
        return _e.where(self._masked_mask, self._masked_data,
                        _e.tensor(value, dtype=self.dtype))

    @property
    def shape(self):
        return self._masked_data.shape

    def size(self, dim=None):
        return self._masked_data.size() if dim is None else self._masked_data.size(dim)

    def dim(self) -> int:
        return self._masked_data.dim()

    ndim = property(dim)

    def numel(self) -> int:
        return self._masked_data.numel()

    def __len__(self) -> int:
        return len(self._masked_data)

    def is_contiguous(self, memory_format=None) -> bool:
        return self._masked_data.is_contiguous()

    def stride(self, dim=None):
        return self._masked_data.stride() if dim is None else self._masked_data.stride(dim)

    @property
    def dtype(self):
        return self._masked_data.dtype

    @property
    def device(self):
        return self._masked_data.device

    @property
    def layout(self):
        return _e.strided

    @property
    def requires_grad(self) -> bool:
        return self._masked_data.requires_grad

    def requires_grad_(self, requires_grad: bool = True) -> "MaskedTensor":
        self._masked_data.requires_grad_(requires_grad)
        return self

    @property
    def is_leaf(self) -> bool:
        return self._masked_data.is_leaf

    @property
    def grad(self):
        grad = self._masked_data.grad
        return None if grad is None else MaskedTensor(grad, self._masked_mask)

    @property
    def grad_fn(self):
        return self._masked_data.grad_fn

    def backward(self, gradient=None, retain_graph=None, create_graph=False):
        if isinstance(gradient, MaskedTensor):
            gradient = gradient.to_tensor(0)
        self._masked_data.backward(gradient, retain_graph=retain_graph,
                                   create_graph=create_graph)

    def item(self):
        return self._masked_data.item()

    def to(self, *args, **kwargs) -> "MaskedTensor":
        data = self._masked_data.to(*args, **kwargs)
        mask = self._masked_mask.to(data.device)
        return MaskedTensor(data, mask)

    def double(self) -> "MaskedTensor":
        return self.to(_e.float64)

    def float(self) -> "MaskedTensor":
        return self.to(_e.float32)

    def type_as(self, other) -> "MaskedTensor":
        return self.to(other.dtype)

    def tolist(self):
        raise RuntimeError(".tolist() is not supported for tensor subclasses, got "
                           "MaskedTensor")

    def __getitem__(self, key) -> "MaskedTensor":
        return MaskedTensor(self._masked_data[key], self._masked_mask[key])

    def __getattr__(self, name: str):
        if name.startswith("__") or name not in OPS:
            raise AttributeError(f"'MaskedTensor' object has no attribute '{name}'")
        op = OPS[name]

        def method(*args, **kwargs):
            if name in _SIZE_ARGS and args and all(isinstance(a, int) for a in args):
                args = (args,)          # t.reshape(3, 2) as t.reshape((3, 2))
            return op(self, *args, **kwargs)
        return method

    def __repr__(self) -> str:
        if self.dim() == 0:
            return (f"MaskedTensor({_element(self._masked_data.item(), self._masked_mask.item())}"
                    f", {bool(self._masked_mask.item())})")
        data = self._masked_data.detach().tolist()
        mask = self._masked_mask.tolist()
        return "MaskedTensor(\n" + _nested(data, mask, "  ") + "\n)"


def _element(value, valid: bool) -> str:
    if not valid:
        return "      --"
    if isinstance(value, float):
        return f"{value:8.4f}"
    return str(value)


def _nested(data, mask, indent: str) -> str:
    if not data or not isinstance(data[0], list):
        return indent + "[" + ", ".join(_element(v, m) for v, m in zip(data, mask)) + "]"
    inner = ",\n".join(_nested(d, m, indent + "  ") for d, m in zip(data, mask))
    return f"{indent}[\n{inner}\n{indent}]"


def _binary(name: str):
    def method(self, other):
        return OPS[name](self, other)
    return method


def _reflected(name: str):
    def method(self, other):
        return OPS[name](other, self)
    return method


for _dunder, _name in (("add", "add"), ("sub", "sub"), ("mul", "mul"), ("truediv", "div"),
                       ("floordiv", "floor_divide"), ("mod", "remainder"), ("pow", "pow"),
                       ("matmul", "matmul"), ("lt", "lt"), ("le", "le"), ("gt", "gt"),
                       ("ge", "ge"), ("eq", "eq"), ("ne", "ne"), ("and", "bitwise_and"),
                       ("or", "bitwise_or"), ("xor", "bitwise_xor"), ("iadd", "add_"),
                       ("isub", "sub_"), ("imul", "mul_"), ("itruediv", "div_")):
    setattr(MaskedTensor, f"__{_dunder}__", _binary(_name))
for _dunder, _name in (("radd", "add"), ("rmul", "mul")):
    setattr(MaskedTensor, f"__{_dunder}__", _binary(_name))
for _dunder, _name in (("rsub", "sub"), ("rtruediv", "div")):
    setattr(MaskedTensor, f"__{_dunder}__", _reflected(_name))
MaskedTensor.__neg__ = lambda self: OPS["neg"](self)
MaskedTensor.__abs__ = lambda self: OPS["abs"](self)
MaskedTensor.__invert__ = lambda self: OPS["bitwise_not"](self)
MaskedTensor.__hash__ = object.__hash__


def masked_tensor(data, mask, requires_grad: bool = False) -> MaskedTensor:
    """torch.masked.masked_tensor: a MaskedTensor of (a copy of the graph leaf of) data."""
    return MaskedTensor(data, mask, requires_grad)


def as_masked_tensor(data, mask) -> MaskedTensor:
    """torch.masked.as_masked_tensor: differentiable with respect to `data`."""
    return MaskedTensor(data, mask)


def is_masked_tensor(value) -> bool:
    return isinstance(value, MaskedTensor)


# --- dispatch -------------------------------------------------------------------------
def _named(op, args: tuple) -> dict:
    return {arg.name: value for arg, value in zip(op.schema.args, args)}


def _swap(args, part: str):
    """args with every MaskedTensor replaced by its data (or its mask)."""
    def one(value):
        if isinstance(value, MaskedTensor):
            return value._masked_data if part == "data" else value._masked_mask
        if isinstance(value, (list, tuple)) and any(isinstance(v, MaskedTensor)
                                                    for v in value):
            return type(value)(one(v) for v in value)
        return value
    return tuple(one(a) for a in args)


def _wrap(data, mask):
    if isinstance(data, (list, tuple)):
        return type(data)(MaskedTensor(d, m) for d, m in zip(data, mask))
    return MaskedTensor(data, mask)


def _reduce(op, args: tuple) -> MaskedTensor:
    named = _named(op, args)
    source = named.pop("self")
    data, mask = source._masked_data, source._masked_mask
    dim = named.get("dim")
    keepdim = bool(named.get("keepdim", False))
    kwargs = {"keepdim": keepdim, "mask": mask}
    if named.get("dtype") is not None:
        kwargs["dtype"] = named["dtype"]
    name = _REDUCTIONS[op.name]
    if name in ("var", "std"):
        if named.get("correction") is not None:
            kwargs["correction"] = named["correction"]
        elif named.get("unbiased") is not None:
            kwargs["unbiased"] = named["unbiased"]
    if name == "norm":
        order = named.get("p")
        order = 2.0 if order in (None, "fro") else order     # Frobenius: the 2-norm
        value = masked_ops.norm(data, order, dim, **kwargs)
    else:
        value = getattr(masked_ops, name)(data, dim, **kwargs)
    if dim is None or dim == () or dim == []:
        valid = mask.any() if not keepdim else mask.reshape([-1]).any().reshape(
            [1] * mask.dim())
    else:
        valid = mask.any(tuple(dim) if isinstance(dim, (list, tuple)) else dim,
                         keepdim=keepdim)
    return MaskedTensor(value, valid)


def _all_any(op, args: tuple) -> MaskedTensor:
    named = _named(op, args)
    source = named["self"]
    identity = op.name == "all"
    filled = _e.where(source._masked_mask, source._masked_data.bool(),
                      _e.tensor(identity))
    dim, keepdim = named.get("dim"), bool(named.get("keepdim", False))
    if dim is None:
        return MaskedTensor(getattr(filled, op.name)(), source._masked_mask.any())
    return MaskedTensor(getattr(filled, op.name)(dim, keepdim=keepdim),
                        source._masked_mask.any(dim, keepdim=keepdim))


def _normalize(op, args: tuple) -> MaskedTensor:
    named = _named(op, args)
    source = named["self"]
    value = getattr(masked_ops, op.name)(source._masked_data, named["dim"],
                                         dtype=named.get("dtype"),
                                         mask=source._masked_mask)
    return MaskedTensor(value, source._masked_mask)


def _common_mask(op_name: str, args: tuple):
    masks = [v._masked_mask for v in _flat(args) if isinstance(v, MaskedTensor)]
    first = masks[0]
    for other in masks[1:]:
        if tuple(other.shape) != tuple(first.shape) or not bool((other == first).all()):
            raise ValueError(f"{op_name}: Input masks must match. If you need support for "
                             "this, please open an issue on Github.")
    return first


def _flat(args):
    for value in args:
        if isinstance(value, (list, tuple)):
            yield from value
        else:
            yield value


def _run_masked(op, args: tuple):
    name = op.name
    if name in _REDUCTIONS:
        return _reduce(op, args)
    if name in ("all", "any"):
        return _all_any(op, args)
    if name in _NORMALIZATIONS:
        return _normalize(op, args)
    if name in _STRUCTURAL or name in _LISTS:
        data = dispatch.dispatch(op, _swap(args, "data"))
        mask = dispatch.dispatch(op, _swap(args, "mask"))
        return _wrap(data, mask)
    if not (op.has_tag(Tag.POINTWISE) or op.has_tag(Tag.FACTORY)):
        # cumsum, sort, ... see masked-out elements: no silent answer
        raise MaskedUnsupportedError(f"MaskedTensor: {name} is not supported (it is "
                                     "neither a reduction ember.masked has, a shape op, "
                                     "nor an elementwise op); use get_data() / to_tensor()")
    mask = _common_mask(name, args)
    if name.endswith("_") and isinstance(args[0], MaskedTensor):
        dispatch.dispatch(op, _swap(args, "data"))
        return args[0]
    data = dispatch.dispatch(op, _swap(args, "data"))
    if not _e.is_tensor(data) or tuple(data.shape) != tuple(mask.shape):
        raise MaskedUnsupportedError(f"MaskedTensor: {name} is not supported (it is "
                                     "neither a reduction ember.masked has, a shape op, "
                                     "nor an elementwise op); use get_data() / to_tensor()")
    return MaskedTensor(data, mask)


# above eager tensors (0), below sparse tensors (3, 4), fx's shape propagation (5) and proxies (10)
dispatch.register_value_handler(MaskedTensor, _run_masked, priority=2)
