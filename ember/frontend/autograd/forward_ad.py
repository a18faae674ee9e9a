"""ember.autograd.forward_ad: eager forward-mode AD with dual tensors, as torch's.

    with forward_ad.dual_level():
        x = forward_ad.make_dual(primal, tangent)
        y = f(x)
        out, jvp = forward_ad.unpack_dual(y)

While a dual level is open, a dispatch *mode* (`_ForwardMode`) sees every op call.
It runs the op as usual, then, when some tensor argument carries a tangent, gives the
output the tangent J(args) . tangents:

- an op declaring a `jvp` rule runs it: `jvp(tangents, <schema args by name>, [out])`
  with `tangents` aligned with the op's tensor arguments (None where there is none);
- a view op is linear in `self`: the output tangent is the same view of the tangent,
  so it shares storage with it, and in-place updates reach the base's tangent;
- any other differentiable op derives its JVP from its VJP rule (the double-vjp trick):
  the VJP is linear in its cotangent u, so with the real inner product
  <a, b> = Re sum(conj(a) b), J v = d/du <vjp(u), v>, computed on the eager tape.
  This is exactly the adjoint of torch's conjugate-Wirtinger VJP, so complex
  tangents come out as torch's.

In-place ops compute the new tangent from the old primal and write it into the
target's tangent in place (creating a zero tangent for the target's base if it had
none), so views and their bases stay consistent. Tangents are attributes of the tensor
objects; leaving the level strips them. As in torch, only one level may be open.
"""
from __future__ import annotations

import weakref
from collections import namedtuple

from ...ir import autodiff, dispatch
from ...ir.errors import AutogradError, at_user_line
from ...ir.ops import OPS_NS
from ...ir.registry import NOT_DIFFERENTIABLE, Tag
from ..tensor import Tensor
from . import grad_mode
from .engine import grad as autograd_grad

__all__ = ["dual_level", "make_dual", "unpack_dual", "enter_dual_level", "exit_dual_level",
           "UnpackedDualTensor"]

UnpackedDualTensor = namedtuple("UnpackedDualTensor", ["primal", "tangent"])

_ATTR = "_fw_tangent"           # tensor.__dict__ entry: (level, tangent)


class _ForwardMode:
    """The dispatch mode of one open dual level."""

    def __init__(self, level: int):
        self.level = level
        self.duals: list = []   # weakrefs of tensors given a tangent, stripped on exit
        self._context = None

    def handle(self, op, args: tuple):
        tangents = _tangents_of_args(self, op, args)
        if op.has_tag(Tag.INPLACE) and any(t is not None for t in tangents):
            return _run_inplace(self, op, args, tangents)
        with dispatch.disabled(self):
            out = dispatch.dispatch(op, args)
        if all(t is None for t in tangents):
            return out
        with dispatch.disabled(self):
            out_tangents = _output_tangents(op, args, out, tangents)
        for o, t in zip(_as_tuple(out), out_tangents):
            if t is not None:
                _set_tangent(self, o, t)
        return out


_levels: list[_ForwardMode] = []


def enter_dual_level() -> int:
    """Open a new dual level and return its index (torch allows one at a time)."""
    if _levels:
        raise AutogradError("Nested forward mode AD is not supported at the moment")
    mode = _ForwardMode(len(_levels))
    mode._context = dispatch.enabled(mode)
    mode._context.__enter__()
    _levels.append(mode)
    return mode.level


def exit_dual_level(*, level: int | None = None) -> None:
    """Close the innermost dual level: its tensors lose their tangents."""
    mode = _current(level, "exit_dual_level")
    _levels.remove(mode)
    mode._context.__exit__(None, None, None)
    for ref in mode.duals:
        t = ref()
        if t is not None and t.__dict__.get(_ATTR, (None,))[0] is mode:
            del t.__dict__[_ATTR]


class dual_level:
    """Context manager for a dual level: `with dual_level(): ...`."""

    def __enter__(self) -> int:
        return enter_dual_level()

    def __exit__(self, *exc) -> None:
        exit_dual_level()


def make_dual(tensor: Tensor, tangent: Tensor, *, level: int | None = None) -> Tensor:
    """A view of `tensor` that carries `tangent` at the current dual level."""
    mode = _current(level, "make_dual", creating=True)
    if not isinstance(tensor, Tensor) or not isinstance(tangent, Tensor):
        raise TypeError("make_dual expects Tensors for the primal and the tangent, got "
                        f"{type(tensor).__name__} and {type(tangent).__name__}")
    if tuple(tangent.shape) != tuple(tensor.shape):
        raise AutogradError(f"Trying to set a forward gradient that has a different size than "
                            f"that of the original Tensor, this is not supported. Tensor is of "
                            f"size {list(tensor.shape)} while the given forward gradient is of "
                            f"size {list(tangent.shape)}.{at_user_line()}")
    if tangent.dtype != tensor.dtype:
        raise AutogradError(f"Expected tangent to have the same dtype as the primal: primal "
                            f"is {tensor.dtype}, tangent is {tangent.dtype}.{at_user_line()}")
    if not (tensor.dtype.is_floating_point or tensor.dtype.is_complex):
        raise AutogradError(f"Expected primal to be floating point or complex, but got: "
                            f"{tensor.dtype}{at_user_line()}")
    with dispatch.disabled(mode):
        dual = tensor.view_as(tensor)
    _set_tangent(mode, dual, tangent)
    return dual


def unpack_dual(tensor, *, level: int | None = None) -> UnpackedDualTensor:
    """(primal, tangent): a view of the primal without tangent, and the tangent or None."""
    if not isinstance(tensor, Tensor):
        return UnpackedDualTensor(tensor, None)
    mode = _current(level, "unpack_dual", creating=None)
    tangent = _tangent(mode, tensor) if mode is not None else None
    if tangent is None:
        return UnpackedDualTensor(tensor, None)
    with dispatch.disabled(mode):
        primal = tensor.view_as(tensor)
    return UnpackedDualTensor(primal, tangent)


# --- tangent bookkeeping ---------------------------------------------------------------

def _current(level, fn_name: str, creating: bool | None = False):
    if not _levels:
        if creating is None:
            return None
        if creating:
            raise AutogradError(f"{fn_name}: Trying to create a dual Tensor for forward AD but "
                                "no level exists, make sure to enter_dual_level() first."
                                f"{at_user_line()}")
        raise AutogradError(f"{fn_name}: Trying to exit a forward AD level that was not the "
                            f"last one that was created. This is not supported.{at_user_line()}")
    mode = _levels[-1]
    if level is not None and level != mode.level:
        raise AutogradError(f"{fn_name}: dual level {level} is not the current level "
                            f"({mode.level}){at_user_line()}")
    return mode


def _tangent(mode: _ForwardMode, t):
    if not isinstance(t, Tensor):
        return None
    entry = t.__dict__.get(_ATTR)
    return entry[1] if entry is not None and entry[0] is mode else None


def _set_tangent(mode: _ForwardMode, t: Tensor, tangent: Tensor) -> None:
    if not (t.dtype.is_floating_point or t.dtype.is_complex):
        return                              # integer outputs (argmax, indices) have none
    t.__dict__[_ATTR] = (mode, tangent)
    mode.duals.append(weakref.ref(t))


def _tangents_of_args(mode, op, args) -> list:
    """One entry per tensor argument (flattening Tensor[] arguments), None where none."""
    out = []
    for i in op.schema.tensor_arg_indices:
        values = args[i] if isinstance(args[i], (list, tuple)) else (args[i],)
        out.extend(_tangent(mode, v) for v in values)
    return out


def _tensor_args(op, args) -> list:
    out = []
    for i in op.schema.tensor_arg_indices:
        values = args[i] if isinstance(args[i], (list, tuple)) else (args[i],)
        out.extend(values)
    return out


def _as_tuple(x) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


# --- tangent rules ---------------------------------------------------------------------

def _output_tangents(op, args, out, tangents) -> tuple:
    if op.derivative is NOT_DIFFERENTIABLE:
        return (None,) * len(_as_tuple(out))
    if op.jvp is not None:
        return _as_tuple(_declared_jvp(op, args, out, tangents))
    if op.has_tag(Tag.VIEW) and len(op.schema.tensor_arg_indices) == 1:
        return _as_tuple(_view_tangent(op, args, tangents[0]))
    if op.derivative is None:
        raise AutogradError(f"{op.name}: the derivative for forward-mode AD is not "
                            f"implemented (no jvp rule and no derivative){at_user_line()}")
    return _derived_jvp(op, args, out, tangents)


def _declared_jvp(op, args, out, tangents):
    kwargs = op.schema.as_kwargs(args)
    if op._derivative_wants_out:
        kwargs["out"] = out
    return op.jvp(tuple(tangents), **kwargs)


def _view_tangent(op, args, tangent):
    """Views are linear in `self`: the same view of the tangent (sharing its storage)."""
    return dispatch.dispatch(op, (tangent,) + tuple(args[1:]))


def _derived_jvp(op, args, out, tangents) -> tuple:
    """J v from the VJP rule: the gradient of u -> <vjp(u), v> (linear in u)."""
    outs = _as_tuple(out)
    differentiable = [o.dtype.is_floating_point or o.dtype.is_complex for o in outs]
    keep_graph = grad_mode.is_grad_enabled() and any(
        isinstance(t, Tensor) and t.requires_grad for t in _tensor_args(op, args) + tangents)
    if not keep_graph:
        # the rule then records only its own few nodes: the backward below must not walk
        # (and free) the user's graph behind the primals
        args, out, tangents = _detached(args), _detached(out), _detached(tangents)
    with grad_mode.enable_grad():
        dummies = [OPS_NS.zeros_like(o).requires_grad_(d) for o, d in zip(outs, differentiable)]
        g = tuple(dummies) if len(outs) > 1 or isinstance(out, (tuple, list)) else dummies[0]
        raw = op.call_derivative(g, args, out)
        pairing = _inner_product(raw, _tensor_args(op, args), tangents)
        wrt = [u for u, d in zip(dummies, differentiable) if d]
        if pairing is None or not pairing.requires_grad:
            grads = [None] * len(wrt)
        else:
            grads = autograd_grad(pairing, wrt, allow_unused=True, create_graph=keep_graph)
    grads = iter(grads)
    return tuple(_zero_if_none(next(grads), o) if d else None
                 for o, d in zip(outs, differentiable))


def _detached(value):
    if isinstance(value, Tensor):
        return value.detach()
    if isinstance(value, (list, tuple)):
        return type(value)(_detached(v) for v in value)
    return value


def _inner_product(raw_grads, inputs, tangents):
    """Re sum(conj(vjp_i) * v_i) over the inputs that carry a tangent."""
    flat = [g for item in raw_grads
            for g in (item if isinstance(item, (list, tuple)) else (item,))]
    total = None
    for g, x, v in zip(flat, inputs, tangents):
        if g is None or v is None:
            continue
        g = autodiff.fit_grad(g, tuple(x.shape), x.dtype)
        term = OPS_NS.sum(g.conj() * v if g.dtype.is_complex else g * v)
        term = OPS_NS.real(term) if term.dtype.is_complex else term
        total = term if total is None else total + term
    return total


def _zero_if_none(g, like):
    return g if g is not None else OPS_NS.zeros_like(like)


# --- in-place --------------------------------------------------------------------------

def _run_inplace(mode, op, args, tangents):
    """Run `x.op_(...)`; x's new tangent is the functional op's JVP at the old x."""
    target = args[0]
    with dispatch.disabled(mode):
        old = OPS_NS.clone(target)
        before = (old,) + tuple(old if a is target else a for a in args[1:])
        dispatch.dispatch(op, args)
        new_tangent = _output_tangents(op.functional, before, target, tangents)[0]
        if new_tangent is not None:
            _write_tangent(mode, target, new_tangent)
    return target


def _write_tangent(mode, target: Tensor, value: Tensor) -> None:
    """Copy into the target's tangent (which views of it share), creating it if needed."""
    tangent = _tangent(mode, target)
    if tangent is None:
        tangent = _fresh_tangent(mode, target)
    if tangent.requires_grad and tangent.is_leaf:
        _set_tangent(mode, target, value)   # a leaf that requires grad cannot be written
        return
    tangent.copy_(value)


def _fresh_tangent(mode, target: Tensor) -> Tensor:
    """A tangent laid out like the target's storage, shared with its base's tangent (zeros
    for both when the base had none). Offsets are absolute, as the primal's are."""
    base = target._base
    storage = _tangent(mode, base) if base is not None else None
    if storage is None:
        storage = OPS_NS.full([target._storage.data.size], 0, dtype=target.dtype)
        if base is not None:
            _set_tangent(mode, base, _strided_like(storage, base))
    tangent = _strided_like(storage, target)
    _set_tangent(mode, target, tangent)
    return tangent


def _strided_like(flat: Tensor, t: Tensor) -> Tensor:
    return OPS_NS.as_strided(flat, list(t.shape), list(t.stride()), t.storage_offset())
