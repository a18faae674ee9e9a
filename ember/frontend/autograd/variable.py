"""torch.autograd.Variable: the pre-0.4 wrapper, today a Tensor. Old tutorials still
write `Variable(x, requires_grad=True)`; it returns a tensor sharing x's data (the
given requires_grad set on it), and `isinstance(t, Variable)` holds for every tensor."""
from __future__ import annotations

from ..tensor import Tensor


class _VariableMeta(type):
    def __instancecheck__(cls, instance) -> bool:
        return isinstance(instance, Tensor)


class Variable(metaclass=_VariableMeta):
    def __new__(cls, data=None, requires_grad: bool = False, volatile: bool = False):
        if data is None:
            from ..factories import tensor
            return tensor([])
        if not isinstance(data, Tensor):
            raise TypeError(f"Variable data has to be a tensor, but got "
                            f"{type(data).__name__}")
        return data.detach().requires_grad_(requires_grad)
