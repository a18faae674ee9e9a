"""ember.autograd.functional: jacobian, hessian, vjp, jvp, hvp, vhp.

The same arguments, semantics, error messages and output structures as
`torch.autograd.functional`:

- `inputs` (and `v`) are a Tensor or a tuple of Tensors; results keep that shape:
  one level of tuple per tuple argument, nested `(output, input)` for jacobians and
  `(input, input)` for hessians.
- `create_graph=True` keeps the results differentiable; otherwise they are detached.
- `strict=True` raises when an output is independent of an input (naming both
  indices) instead of silently returning zeros.
- `jvp` and `hvp` use the double-backward trick (the VJP is linear in its cotangent,
  so differentiating it w.r.t. a dummy cotangent gives the JVP), as torch does.
- `vectorize=True` computes all rows of a jacobian in one batched call: `ember.func.vmap`
  over a `vjp` (reverse mode) or `jvp` (forward mode) function, instead of a Python
  loop over output (or input) elements.
"""
from __future__ import annotations

from ...ir.errors import AutogradError
from ...ir.symbolic import SymbolicTensor
from ..factories import eye, zeros_like
from ...ir.ops import OPS_NS
from ..tensor import Tensor
from . import grad_mode
from .engine import grad as autograd_grad

__all__ = ["vjp", "jvp", "jacobian", "hessian", "hvp", "vhp"]

_STRATEGIES = ("forward-mode", "reverse-mode")


# --- argument plumbing (torch's _as_tuple, _grad_preprocess, ...) ---------------------

def _as_tuple(value, arg_name: str, fn_name: str):
    """(was it a tuple, the values as a tuple); anything but Tensors is a TypeError."""
    is_tuple = isinstance(value, tuple)
    values = value if is_tuple else (value,)
    for i, el in enumerate(values):
        if not isinstance(el, (Tensor, SymbolicTensor)):   # symbolic: inside ember.func
            where = (f"the value at index {i} has type {type(el)}" if is_tuple
                     else f"the given {arg_name} has type {type(el)}")
            raise TypeError(f"The {arg_name} given to {fn_name} must be either a Tensor or a "
                            f"tuple of Tensors but {where}.")
    return is_tuple, values


def _unpack(res, to_unpack):
    """Undo the tuple wrapping: `to_unpack` is a bool, or (outer, inner) for nested results."""
    if isinstance(to_unpack, tuple):
        if not to_unpack[1]:
            res = tuple(el[0] for el in res)
        if not to_unpack[0]:
            res = res[0]
        return res
    return res if to_unpack else res[0]


def _grad_preprocess(inputs, create_graph: bool, need_graph: bool) -> tuple:
    """Fresh leaves to differentiate with respect to; with create_graph, views that
    keep the user's graph so the results stay differentiable w.r.t. the originals."""
    out = []
    for inp in inputs:
        if create_graph and inp.requires_grad:
            out.append(inp.view_as(inp))
        else:
            out.append(inp.detach().requires_grad_(need_graph))
    return tuple(out)


def _grad_postprocess(values, create_graph: bool):
    if isinstance(values[0], Tensor):
        return values if create_graph else tuple(v.detach() for v in values)
    return tuple(_grad_postprocess(v, create_graph) for v in values)


def _validate_v(v, other, is_other_tuple: bool) -> None:
    if len(other) != len(v):
        if is_other_tuple:
            raise AutogradError(f"v is a tuple of invalid length: should be {len(other)} but "
                                f"got {len(v)}.")
        raise AutogradError("The given v should contain a single Tensor.")
    for idx, (el_v, el_other) in enumerate(zip(v, other)):
        if tuple(el_v.shape) != tuple(el_other.shape):
            prefix = f"Entry {idx} in " if is_other_tuple else ""
            raise AutogradError(f"{prefix}v has invalid size: should be {el_other.shape} but "
                                f"got {el_v.shape}.")


def _preprocess_v(v, fn_name, create_graph, other, is_other_tuple, none_ok_msg):
    if v is None:
        if len(other) != 1 or other[0].numel() != 1:
            raise AutogradError(none_ok_msg)
        return None
    _, v = _as_tuple(v, "v", fn_name)
    v = _grad_preprocess(v, create_graph=create_graph, need_graph=False)
    _validate_v(v, other, is_other_tuple)
    return v


_NONE_OUTPUT_V = ("The vector v can only be None if the user-provided function returns a "
                  "single Tensor with a single element.")
_NONE_INPUT_V = ("The vector v can only be None if the input to the user-provided function "
                 "is a single Tensor with a single element.")

_INDEPENDENT = {
    "hessian": ("The hessian of the user-provided function with respect to input {i} is "
                "independent of the input. This is not allowed in strict mode. You should "
                "ensure that your function is thrice differentiable and that the hessian "
                "depends on the inputs."),
    "jacobian": ("While computing the hessian, found that the jacobian of the user-provided "
                 "function with respect to input {i} is independent of the input. This is not "
                 "allowed in strict mode. You should ensure that your function is twice "
                 "differentiable and that the jacobian depends on the inputs (this would be "
                 "violated by a linear function for example)."),
    "grad_inputs": ("The gradient with respect to input {i} is independent of the inputs of "
                    "the user-provided function. This is not allowed in strict mode."),
    "outputs": ("Output {i} of the user-provided function does not require gradients. The "
                "outputs must be computed in a differentiable manner from the input when "
                "running in strict mode."),
}


def _check_requires_grad(values, input_type: str, strict: bool) -> None:
    if not strict:
        return
    for i, value in enumerate(values):
        if value is None:
            raise AutogradError(f"The output of the user-provided function is independent of "
                                f"input {i}. This is not allowed in strict mode.")
        if not value.requires_grad:
            raise AutogradError(_INDEPENDENT[input_type].format(i=i))


def _autograd_grad(outputs, inputs, grad_outputs=None, create_graph=False, retain_graph=None):
    """autograd.grad over the outputs that require grad; None per input when none does."""
    if grad_outputs is None:
        grad_outputs = (None,) * len(outputs)
    live = [(o, g) for o, g in zip(outputs, grad_outputs) if o is not None and o.requires_grad]
    if not live:
        return (None,) * len(inputs)
    for o, g in live:
        if g is None and o.dtype.is_complex:   # an implicit 1 would silently give conj(J)
            raise AutogradError(f"grad can be implicitly created only for real scalar outputs "
                                f"but got {o.dtype}")
    return autograd_grad([o for o, _ in live], list(inputs), [g for _, g in live],
                         retain_graph=retain_graph, create_graph=create_graph,
                         allow_unused=True)


_FILL_STRICT = {
    "back": ("The output of the user-provided function is independent of input {i}. This is "
             "not allowed in strict mode."),
    "back_trick": ("The gradient with respect to the input is independent of entry {i} in the "
                   "grad_outputs when using the double backward trick to compute forward mode "
                   "gradients. This is not allowed in strict mode."),
    "double_back": ("The jacobian of the user-provided function is independent of input {i}. "
                    "This is not allowed in strict mode."),
    "double_back_trick": ("The hessian of the user-provided function is independent of entry "
                          "{i} in the grad_jacobian. This is not allowed in strict mode as it "
                          "prevents from using the double backward trick to replace forward "
                          "mode AD."),
}


def _fill_in_zeros(grads, refs, strict: bool, create_graph: bool, stage: str) -> tuple:
    """Zeros where a gradient is None (an error in strict mode, naming the index)."""
    out = []
    for i, g in enumerate(grads):
        if g is None:
            if strict:
                raise AutogradError(_FILL_STRICT[stage].format(i=i))
            g = zeros_like(refs[i])
        elif strict and create_graph and not g.requires_grad:
            what = "hessian" if "double" in stage else "jacobian"
            raise AutogradError(f"The {what} of the user-provided function is independent of "
                                f"input {i}. This is not allowed in strict mode when "
                                "create_graph=True.")
        out.append(g)
    return tuple(out)


def _call(func, inputs, fn_name: str, strict: bool):
    is_tuple, outputs = _as_tuple(func(*inputs), "outputs of the user-provided function",
                                  fn_name)
    _check_requires_grad(outputs, "outputs", strict=strict)
    return is_tuple, outputs


# --- vjp / jvp -------------------------------------------------------------------------

def _final_grads(outputs, wrt, v, like, create_graph, strict, stage):
    """The last autograd.grad of a product, under the caller's grad mode (kept only when
    create_graph); unused entries become zeros shaped as `like` (or errors when strict)."""
    with grad_mode.set_grad_enabled(create_graph or grad_mode.is_grad_enabled()):
        grads = _autograd_grad(outputs, wrt, v, create_graph=create_graph)
        return _fill_in_zeros(grads, like, strict, create_graph, stage)


def _results(outputs, outputs_tuple: bool, result, result_tuple: bool, create_graph):
    """(func's outputs, the product), detached unless create_graph, unpacked as given."""
    return (_unpack(_grad_postprocess(outputs, create_graph), outputs_tuple),
            _unpack(_grad_postprocess(result, create_graph), result_tuple))


def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), v^T J): the vector-Jacobian product at `inputs`."""
    with grad_mode.enable_grad():
        is_inputs_tuple, inputs = _as_tuple(inputs, "inputs", "vjp")
        inputs = _grad_preprocess(inputs, create_graph=create_graph, need_graph=True)
        is_outputs_tuple, outputs = _call(func, inputs, "vjp", strict)
        v = _preprocess_v(v, "vjp", create_graph, outputs, is_outputs_tuple, _NONE_OUTPUT_V)
    result = _final_grads(outputs, inputs, v, inputs, create_graph, strict, "back")
    return _results(outputs, is_outputs_tuple, result, is_inputs_tuple, create_graph)


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), J v), by the double-backward trick."""
    with grad_mode.enable_grad():
        is_inputs_tuple, inputs = _as_tuple(inputs, "inputs", "jvp")
        inputs = _grad_preprocess(inputs, create_graph=create_graph, need_graph=True)
        v = _preprocess_v(v, "jvp", create_graph, inputs, is_inputs_tuple, _NONE_INPUT_V)
        is_outputs_tuple, outputs = _call(func, inputs, "jvp", strict)
        # The VJP is linear in its cotangent, so the dummy cotangent's value never shows in
        # the double-backward result; zeros keep inf/nan out.
        dummies = tuple(zeros_like(o, requires_grad=True) for o in outputs)
        grad_inputs = _autograd_grad(outputs, inputs, dummies, create_graph=True)
        _check_requires_grad(grad_inputs, "grad_inputs", strict=strict)
    result = _final_grads(grad_inputs, dummies, v, outputs, create_graph, strict, "back_trick")
    return _results(outputs, is_outputs_tuple, result, is_outputs_tuple, create_graph)


# --- jacobian --------------------------------------------------------------------------

def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False,
             strategy="reverse-mode"):
    """d func / d inputs: result[i][j] has shape outputs[i].shape + inputs[j].shape."""
    if strategy not in _STRATEGIES:
        raise AutogradError('Expected strategy to be either "forward-mode" or "reverse-mode". '
                            "Hint: If your function has better performance with forward-mode "
                            "use strategy=\"forward-mode\".")
    if strategy == "forward-mode":
        if create_graph:
            raise NotImplementedError(
                "ember.autograd.functional.jacobian: `create_graph=True` and "
                "`strategy=\"forward-mode\"` are not supported together (yet). Please either "
                "set `create_graph=False` or `strategy=\"reverse-mode\"`.")
        return _jacfwd(func, inputs, strict, vectorize)
    with grad_mode.enable_grad():
        is_inputs_tuple, inputs = _as_tuple(inputs, "inputs", "jacobian")
        inputs = _grad_preprocess(inputs, create_graph=create_graph, need_graph=True)
        is_outputs_tuple, outputs = _call(func, inputs, "jacobian", strict)
        if vectorize:
            if strict:
                raise AutogradError(
                    "ember.autograd.functional.jacobian: `strict=True` and `vectorized=True` "
                    "are not supported together. Please either set `strict=False` or "
                    "`vectorize=False`.")
            jac = _jacrev_vectorized(func, inputs, outputs, create_graph)
        else:
            jac = tuple(_jacobian_rows(i, out, inputs, create_graph, strict)
                        for i, out in enumerate(outputs))
    jac = _grad_postprocess(jac, create_graph)
    return _unpack(jac, (is_outputs_tuple, is_inputs_tuple))


def _jacobian_rows(i: int, out, inputs, create_graph: bool, strict: bool) -> tuple:
    """The jacobian of output `i` w.r.t. every input, one backward pass per element."""
    rows = tuple([] for _ in inputs)
    flat = out.reshape(-1)
    for k in range(out.numel()):
        grads = _autograd_grad((flat[k],), inputs, retain_graph=True, create_graph=create_graph)
        for j, (g, inp) in enumerate(zip(grads, inputs)):
            if g is None:
                if strict:
                    raise AutogradError(f"Output {i} of the user-provided function is "
                                        f"independent of input {j}. This is not allowed in "
                                        "strict mode.")
                g = zeros_like(inp)
            elif strict and create_graph and not g.requires_grad:
                raise AutogradError(f"The jacobian of the user-provided function is "
                                    f"independent of input {i}. This is not allowed in strict "
                                    "mode when create_graph=True.")
            rows[j].append(g)
    return tuple(_stack_rows(r, tuple(out.shape) + tuple(inp.shape))
                 for r, inp in zip(rows, inputs))


def _stack_rows(rows: list, shape: tuple):
    return OPS_NS.stack(rows, 0).reshape(list(shape))


def _standard_basis(tensors) -> tuple:
    """One (N, *t.shape) block per tensor of an N x N identity, N the total numel: row k is
    the k-th unit vector of the flattened tensors. Complex tensors get complex unit rows."""
    numels = [t.numel() for t in tensors]
    total = sum(numels)
    blocks, start = [], 0
    for t, n in zip(tensors, numels):
        identity = eye(total, dtype=t.dtype)
        blocks.append(identity[:, start:start + n].reshape([total] + list(t.shape)))
        start += n
    return tuple(blocks)


def _func_transforms():
    try:
        from ember.func import jvp as func_jvp, vjp as func_vjp, vmap
    except ImportError as err:
        raise NotImplementedError(
            "ember.autograd.functional: vectorize=True needs ember.func (vmap, vjp, jvp), "
            f"which is not available: {err}") from None
    return vmap, func_vjp, func_jvp


def _func_jacrev():
    _func_transforms()      # the same error when ember.func is missing
    from ember.func import jacrev
    return jacrev


def _as_tuple_output(func):
    def call(*args):
        out = func(*args)
        return tuple(out) if isinstance(out, tuple) else (out,)
    return call


def _jacrev_vectorized(func, inputs, outputs, create_graph: bool) -> tuple:
    """All rows of the jacobian at once: vmap of the VJP over the standard basis of the
    flattened outputs (each basis row is one output element's cotangent)."""
    vmap, func_vjp, _ = _func_transforms()
    numels = [o.numel() for o in outputs]
    _, vjp_fn = func_vjp(_as_tuple_output(func), *inputs)
    basis = _standard_basis([o.reshape(-1) for o in outputs])
    cotangents = tuple(b.reshape([b.shape[0]] + list(o.shape)) for b, o in zip(basis, outputs))
    with grad_mode.set_grad_enabled(create_graph):
        per_input = vmap(vjp_fn)(cotangents)
    by_input = []
    for jac_i, inp in zip(per_input, inputs):
        pieces = jac_i.split(numels, 0)
        by_input.append([p.reshape(list(o.shape) + list(inp.shape))
                         for p, o in zip(pieces, outputs)])
    return tuple(zip(*by_input))


def _jacfwd(func, inputs, strict: bool, vectorize: bool):
    if strict:
        raise AutogradError(
            "ember.autograd.functional.jacobian: `strict=True` and `strategy=\"forward-mode\"` "
            "are not supported together (yet). Please either set `strict=False` or "
            "`strategy=\"reverse-mode\"`.")
    is_inputs_tuple, inputs = _as_tuple(inputs, "inputs", "jacobian")
    if not vectorize:
        raise NotImplementedError("Computing Jacobian using forward-AD or forward-over-reverse "
                                  "Hessian is only implemented for `vectorize=True`.")
    vmap, _, func_jvp = _func_transforms()
    numels = [t.numel() for t in inputs]
    info = {}

    def jvp_of(*tangents):
        outs, tans = func_jvp(func, tuple(inputs), tuple(tangents))
        info["is_tuple"] = isinstance(outs, tuple)
        info["outputs"] = outs if isinstance(outs, tuple) else (outs,)
        return tans
    per_output = vmap(jvp_of)(*_standard_basis(inputs))
    per_output = per_output if info["is_tuple"] else (per_output,)
    result = []
    for jac_o, out in zip(per_output, info["outputs"]):
        # the batch dim runs over input elements: move it last, then split it per input
        moved = jac_o.permute(list(range(1, jac_o.ndim)) + [0]) if jac_o.ndim > 1 else jac_o
        pieces = moved.split(numels, -1)
        # lists, not tuples: torch's forward-mode jacobian returns lists of lists
        result.append([p.reshape(list(out.shape) + list(inp.shape)).detach()
                       for p, inp in zip(pieces, inputs)])
    return _unpack(result, (info["is_tuple"], is_inputs_tuple))


# --- second order ----------------------------------------------------------------------

def hessian(func, inputs, create_graph=False, strict=False, vectorize=False,
            outer_jacobian_strategy="reverse-mode"):
    """The hessian of a scalar function: result[i][j] has shape inputs[i] + inputs[j]."""
    is_inputs_tuple, inputs = _as_tuple(inputs, "inputs", "hessian")
    if outer_jacobian_strategy not in _STRATEGIES:
        raise AutogradError('Expected strategy to be either "forward-mode" or "reverse-mode".')

    def single_output(*inp):
        out = func(*inp)
        is_tuple, outs = _as_tuple(out, "outputs of the user-provided function", "hessian")
        _check_requires_grad(outs, "outputs", strict=strict)
        if is_tuple:
            raise AutogradError("The function given to hessian should return a single Tensor")
        if out.numel() != 1:
            raise AutogradError("The Tensor returned by the function given to hessian should "
                                "contain a single element")
        return out.squeeze()

    def jac_func(*inp):
        if vectorize:       # traceable, so the outer vmap'd vjp/jvp can differentiate it
            _, func_jacrev = _func_transforms()[0], _func_jacrev()
            return tuple(func_jacrev(single_output, argnums=tuple(range(len(inp))))(*inp))
        if outer_jacobian_strategy == "forward-mode":
            inp = tuple(t.requires_grad_(True) for t in inp)
        jac = jacobian(single_output, inp, create_graph=True)
        _check_requires_grad(jac, "jacobian", strict=strict)
        return jac

    res = jacobian(jac_func, inputs, create_graph=create_graph, strict=strict,
                   vectorize=vectorize, strategy=outer_jacobian_strategy)
    return _unpack(res, (is_inputs_tuple, is_inputs_tuple))


def _scalar_function_grad(func, inputs, v, create_graph, strict, fn_name):
    """Shared start of vhp/hvp: preprocessed inputs and v, the output and its gradient."""
    is_inputs_tuple, inputs = _as_tuple(inputs, "inputs", fn_name)
    inputs = _grad_preprocess(inputs, create_graph=create_graph, need_graph=True)
    v = _preprocess_v(v, fn_name, create_graph, inputs, is_inputs_tuple, _NONE_INPUT_V)
    is_outputs_tuple, outputs = _call(func, inputs, fn_name, strict)
    if is_outputs_tuple:
        raise AutogradError(f"The function given to {fn_name} should return a single Tensor")
    if outputs[0].numel() != 1:
        raise AutogradError(f"The Tensor returned by the function given to {fn_name} should "
                            "contain a single element")
    jac = _autograd_grad(outputs, inputs, create_graph=True)
    _check_requires_grad(jac, "jacobian", strict=strict)
    return is_inputs_tuple, inputs, v, outputs, jac


def vhp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), v^T H)."""
    with grad_mode.enable_grad():
        is_inputs_tuple, inputs, v, outputs, jac = _scalar_function_grad(
            func, inputs, v, create_graph, strict, "vhp")
    result = _final_grads(jac, inputs, v, inputs, create_graph, strict, "double_back")
    return _results(outputs, False, result, is_inputs_tuple, create_graph)


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), H v), by the double-backward trick on the gradient."""
    with grad_mode.enable_grad():
        is_inputs_tuple, inputs, v, outputs, jac = _scalar_function_grad(
            func, inputs, v, create_graph, strict, "hvp")
        dummies = tuple(zeros_like(inp, requires_grad=True) for inp in inputs)
        double_back = _autograd_grad(jac, inputs, dummies, create_graph=True)
        _check_requires_grad(jac, "hessian", strict=strict)
    result = _final_grads(double_back, dummies, v, inputs, create_graph, strict,
                          "double_back_trick")
    return _results(outputs, False, result, is_inputs_tuple, create_graph)
