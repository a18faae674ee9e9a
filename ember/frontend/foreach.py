"""torch._foreach_*: one elementwise op over a list of tensors.

Optimizers and EMA code (timm's ModelEmaV3, PyTorch's own foreach optimizers, custom
training loops) call them on lists of parameters. Each entry applies the tensor method of
the same name tensor by tensor, so autograd, dtypes and devices behave as the per-tensor
op does. The second operand follows PyTorch's overloads: one scalar or tensor shared by
every tensor, or a list (of tensors or of scalars) with one entry per tensor. In-place
forms (`_foreach_add_`) mutate the tensors and return the list; the others return a tuple
of new tensors.
"""
from __future__ import annotations

import numbers

_UNARY = ("abs", "acos", "asin", "atan", "ceil", "cos", "cosh", "erf", "erfc", "exp", "expm1",
          "floor", "frac", "lgamma", "log", "log10", "log1p", "log2", "neg", "reciprocal",
          "round", "rsqrt", "sigmoid", "sign", "sin", "sinh", "sqrt", "tan", "tanh", "trunc")
#: binary ops; `add` and `sub` also take alpha= with a tensor operand
_BINARY = ("add", "sub", "mul", "div", "maximum", "minimum", "clamp_min", "clamp_max", "pow")
#: keyword names PyTorch's overloads give the second operand
_SECOND_NAMES = ("other", "scalar", "scalars", "exponent")


def _check_list(name: str, tensors):
    if not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{name}(): argument 'self' must be a list or tuple of Tensors, "
                        f"not {type(tensors).__name__}")
    return list(tensors)


def _per_tensor(name: str, value, count: int) -> list:
    """`value` spread over `count` tensors: a list gives one entry each, else it is shared."""
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise RuntimeError(f"{name}(): Tensor lists must have the same number of tensors, "
                               f"got {count} and {len(value)}")
        return list(value)
    return [value] * count


def _second_operand(name: str, args: tuple, kwargs: dict):
    if len(args) > 1:
        raise TypeError(f"{name}() takes the tensor list and one operand, got {1 + len(args)} "
                        f"positional arguments")
    if args:
        return args[0]
    for key in _SECOND_NAMES:
        if key in kwargs:
            return kwargs.pop(key)
    raise TypeError(f"{name}() missing its second operand (other=, scalar= or scalars=)")


def _is_number(value) -> bool:
    return isinstance(value, numbers.Number)


def _apply_binary(op: str, tensor, other, alpha):
    if op in ("maximum", "minimum") and _is_number(other):
        op = "clamp_min" if op == "maximum" else "clamp_max"
    method = getattr(tensor, op)
    return method(other) if alpha is None else method(other, alpha=alpha)


def _binary(op: str, inplace: bool):
    name = f"_foreach_{op}{'_' if inplace else ''}"

    def foreach(self, *args, **kwargs):
        if _is_number(self) and not inplace and op == "pow":        # pow(Scalar, Tensor[])
            exponents = _check_list(name, _second_operand(name, args, kwargs))
            return tuple(self ** e for e in exponents)
        tensors = _check_list(name, self)
        other = _second_operand(name, args, kwargs)
        alpha = kwargs.pop("alpha", None)
        if kwargs:
            raise TypeError(f"{name}() got an unexpected keyword argument '{next(iter(kwargs))}'")
        results = [_apply_binary(op, t, o, alpha)
                   for t, o in zip(tensors, _per_tensor(name, other, len(tensors)))]
        if not inplace:
            return tuple(results)
        for tensor, result in zip(tensors, results):
            tensor.copy_(result)
        return self

    foreach.__name__ = foreach.__qualname__ = name
    return foreach


def _unary(op: str, inplace: bool):
    name = f"_foreach_{op}{'_' if inplace else ''}"

    def foreach(self):
        tensors = _check_list(name, self)
        if not inplace:
            return tuple(getattr(t, op)() for t in tensors)
        for t in tensors:
            getattr(t, op + "_")()
        return self

    foreach.__name__ = foreach.__qualname__ = name
    return foreach


def _scalars_list(name: str, scalars, count: int) -> list:
    if hasattr(scalars, "tolist"):                 # the Tensor overload: one value a tensor
        scalars = scalars.tolist()
    return _per_tensor(name, scalars, count)


def _pointwise(op: str, inplace: bool):
    """addcmul / addcdiv: self + value * tensor1 (*, /) tensor2."""
    name = f"_foreach_{op}{'_' if inplace else ''}"

    def foreach(self, tensor1, tensor2, value=1, scalars=None):
        tensors = _check_list(name, self)
        values = _scalars_list(name, value if scalars is None else scalars, len(tensors))
        firsts = _per_tensor(name, tensor1, len(tensors))
        seconds = _per_tensor(name, tensor2, len(tensors))
        method = op + "_" if inplace else op
        results = [getattr(t, method)(a, b, value=v)
                   for t, a, b, v in zip(tensors, firsts, seconds, values)]
        return self if inplace else tuple(results)

    foreach.__name__ = foreach.__qualname__ = name
    return foreach


def _lerp(inplace: bool):
    name = f"_foreach_lerp{'_' if inplace else ''}"

    def foreach(self, tensors1, weight=None, weights=None):
        tensors = _check_list(name, self)
        weight = weights if weight is None else weight
        if weight is None:
            raise TypeError(f"{name}() missing required argument 'weight'")
        ends = _per_tensor(name, tensors1, len(tensors))
        method = "lerp_" if inplace else "lerp"
        results = [getattr(t, method)(e, w) for t, e, w in
                   zip(tensors, ends, _per_tensor(name, weight, len(tensors)))]
        return self if inplace else tuple(results)

    foreach.__name__ = foreach.__qualname__ = name
    return foreach


def _foreach_norm(self, ord=2, dtype=None):
    tensors = _check_list("_foreach_norm", self)
    return tuple((t if dtype is None else t.to(dtype)).norm(p=ord) for t in tensors)


def _foreach_powsum(self, ord=2, dtype=None):
    tensors = _check_list("_foreach_powsum", self)
    return tuple((t if dtype is None else t.to(dtype)).abs().pow(ord).sum() for t in tensors)


def _foreach_max(self):
    return tuple(t.max() for t in _check_list("_foreach_max", self))


def _foreach_clone(self):
    return tuple(t.clone() for t in _check_list("_foreach_clone", self))


def _foreach_mm(self, other):
    tensors = _check_list("_foreach_mm", self)
    return tuple(t.mm(o) for t, o in zip(tensors, _per_tensor("_foreach_mm", other, len(tensors))))


def _foreach_copy_(self, src, non_blocking=False):
    tensors = _check_list("_foreach_copy_", self)
    for t, s in zip(tensors, _per_tensor("_foreach_copy_", src, len(tensors))):
        t.copy_(s, non_blocking=non_blocking)
    return self


def _foreach_zero_(self):
    for t in _check_list("_foreach_zero_", self):
        t.zero_()
    return self


def _build() -> dict:
    table = {f.__name__: f for f in (_foreach_norm, _foreach_powsum, _foreach_max,
                                     _foreach_clone, _foreach_mm, _foreach_copy_,
                                     _foreach_zero_)}
    for inplace in (False, True):
        for op in _UNARY:
            f = _unary(op, inplace)
            table[f.__name__] = f
        for op in _BINARY:
            f = _binary(op, inplace)
            table[f.__name__] = f
        for op in ("addcmul", "addcdiv"):
            f = _pointwise(op, inplace)
            table[f.__name__] = f
        f = _lerp(inplace)
        table[f.__name__] = f
    return table


#: ember._foreach_<op> for every PyTorch foreach function
FOREACH = _build()
