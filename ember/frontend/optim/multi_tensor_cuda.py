"""SGD and Adam/AdamW on CUDA parameters as one multi-tensor kernel per parameter group
(codegen/triton/multi_tensor.py) instead of one kernel per operation per parameter.

Applies when every parameter, gradient and state tensor of the group is a dense float32 or
float64 CUDA tensor on one device, each with its parameter's shape and strides; anything
else (half precision, complex, sparse layouts, mixed devices) takes the per-tensor path.
The update is the per-tensor path's arithmetic (see the kernel module for the bit-level
contract). Adam's step count: with `fused=True` or `capturable=True` it is a float32 tensor
on the parameter's device, incremented and read by the kernel (a captured step stays valid
across replays, as torch's fused/capturable Adam); otherwise it stays on the host as in
torch's default and the bias corrections are computed there in float64, which a CUDA graph
would freeze, so capturing that step raises, as torch's does.
"""
from __future__ import annotations

import math

from ...ir import dtypes
from ..devices import data_ptr
from ..tensor import Tensor

_DTYPES = ("float32", "float64")


def _dense(t: Tensor) -> bool:
    """Non-overlapping and dense (contiguous, channels-last, any permutation)."""
    dims = sorted((s, n) for s, n in zip(t.stride(), t.shape) if n != 1)
    expected = 1
    for stride, size in dims:
        if stride != expected:
            return False
        expected *= size
    return True


def _like(t, p: Tensor) -> bool:
    return (isinstance(t, Tensor) and t.is_cuda and t._storage.index == p._storage.index and
            t.dtype == p.dtype and tuple(t.shape) == tuple(p.shape) and
            t.stride() == p.stride() and not t.requires_grad)


def applies(params, grads, states=()) -> bool:
    """True when the group can be updated by the multi-tensor kernels."""
    if not params:
        return False
    index = getattr(params[0]._storage, "index", None)
    for i, p in enumerate(params):
        if not (p.is_cuda and p._storage.index == index and p.dtype.name in _DTYPES and
                _dense(p) and _like(grads[i], p)):
            return False
    return all(_like(t, params[i]) for i, ts in enumerate(states) for t in ts)


def _numbers(*values) -> bool:
    """Hyperparameters the kernels take as scalar arguments: Python numbers (a tensor lr
    or betas, which torch allows, takes the per-tensor path)."""
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _chunks(params):
    """(dtype, indices) runs of at most MAX_TENSORS parameters of one dtype."""
    from ...codegen.triton.multi_tensor import MAX_TENSORS
    by_dtype: dict = {}
    for i, p in enumerate(params):
        by_dtype.setdefault(p.dtype, []).append(i)
    for dtype, idx in by_dtype.items():
        for start in range(0, len(idx), MAX_TENSORS):
            yield dtype, idx[start:start + MAX_TENSORS]


def _launch(kernel, values, params) -> None:
    from .. import eager_cuda
    eager_cuda.launch(kernel, values, params[0]._storage.index)


def _empty_like(p: Tensor) -> Tensor:
    from ..devices import empty_cuda
    return empty_cuda(tuple(p.shape), p.stride(), p.dtype, p._storage.index)


def sgd(params, grads, bufs, *, weight_decay, momentum, lr, dampening, nesterov,
        maximize):
    """Updates params (and momentum buffers) in place; returns the buffers (new ones on
    the first step), or None, touching nothing, when the group does not fit."""
    from ...codegen.triton.multi_tensor import sgd_kernel
    if not _numbers(weight_decay, momentum, lr, dampening):
        return None
    bufs = list(bufs) if momentum != 0 else []
    present = [b for b in bufs if b is not None]
    first = momentum != 0 and not present
    if present and len(present) != len(params):
        return None                     # some buffers exist and some not: per-tensor path
    if not applies(params, grads, [[b] for b in present]):
        return None
    if first:
        bufs = [_empty_like(p) for p in params]
    for dtype, idx in _chunks(params):
        kernel = sgd_kernel(tuple(params[i].numel() for i in idx), dtype,
                            weight_decay=weight_decay != 0, momentum=momentum != 0,
                            first=first, nesterov=nesterov, maximize=maximize)
        values = []
        for i in idx:
            values += [params[i], grads[i]] + ([bufs[i]] if momentum != 0 else [])
        values += [-lr, weight_decay, momentum, 1 - dampening]
        _launch(kernel, values, params)
    for t in params + [b for b in bufs if b is not None]:
        t._bump_version()
    return bufs


def _device_steps(states, params) -> bool:
    """Each state's 'step' as a float32 0-d tensor on its parameter's device (moved there
    once, as torch's fused Adam keeps it)."""
    for st, p in zip(states, params):
        step = st.get("step")
        if not isinstance(step, Tensor) or step.numel() != 1:
            return False
        if not (step.is_cuda and step._storage.index == p._storage.index and
                step.dtype == dtypes.float32 and step.ndim == 0):
            st["step"] = step.reshape(()).to(device=p.device, dtype=dtypes.float32)
    return True


def _counter(counters: dict, key) -> Tensor:
    """The int32 zero a chunk's kernel counts finished programs in (it resets it)."""
    counter = counters.get(key)
    if counter is None:
        from ... import zeros, int32
        counter = counters[key] = zeros((), dtype=int32, device=key[0])
    return counter


def adam(params, grads, states, *, amsgrad, beta1, beta2, lr, weight_decay, eps, maximize,
         decoupled, device_step: bool, counters: dict, name: str) -> bool:
    """Adam/AdamW in place on params and their states; False, touching nothing, when the
    group does not fit."""
    from ...codegen.triton.multi_tensor import adam_kernel
    keys = ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if amsgrad else [])
    if not _numbers(beta1, beta2, lr, weight_decay, eps):
        return False
    if not applies(params, grads, [[st.get(k) for k in keys] for st in states]):
        return False
    if device_step:
        if not _device_steps(states, params):
            return False
        if len({data_ptr(st["step"]) for st in states}) != len(states):
            return False                # a shared step would be incremented once per use
    else:
        steps = [st.get("step") for st in states]
        if not all(isinstance(s, Tensor) and not s.is_cuda and s.numel() == 1 for s in steps):
            return False
        _refuse_capture(name)
    weight = 1 - beta1
    for dtype, idx in _chunks(params):
        kernel = adam_kernel(tuple(params[i].numel() for i in idx), dtype,
                             weight_decay=weight_decay != 0, decoupled=decoupled,
                             amsgrad=amsgrad, maximize=maximize, lerp_low=weight < 0.5,
                             device_step=device_step)
        values = []
        for i in idx:
            st = states[i]
            values += [params[i], grads[i]] + [st[k] for k in keys]
            if device_step:
                values.append(st["step"])
            else:
                values += _host_corrections(st["step"], lr, beta1, beta2)
        if device_step:
            values.append(_counter(counters, (params[idx[0]].device, id(params[idx[0]]))))
        values += [lr, beta1, beta2, weight, 1 - weight, 1 - beta2, eps, weight_decay,
                   1 - lr * weight_decay]
        _launch(kernel, values, params)
    for p, st in zip(params, states):
        p._bump_version()
        for k in keys + ["step"]:
            st[k]._bump_version()
    return True


def _host_corrections(step: Tensor, lr, beta1, beta2) -> list:
    """Increment a host step in place; (step_size, sqrt(bias_correction2)) in float64, as
    the per-tensor path computes them."""
    arr = step._array
    arr += 1
    n = arr.item()
    return [lr / (1 - beta1 ** n), math.sqrt(1 - beta2 ** n)]


def _refuse_capture(name: str) -> None:
    from .. import cuda
    from ...ir.errors import DeviceError
    try:
        capturing = cuda.is_current_stream_capturing()
    except DeviceError:                 # no driver to ask (an emulated device): no capture
        capturing = False
    if capturing:
        raise RuntimeError(f"Attempting CUDA graph capture of step() for an instance of "
                           f"{name} but param_groups' capturable is False.")


def clip_grad_norm(grads, max_norm, norm_type: float, before_scale):
    """nn.utils.clip_grad_norm_ over CUDA gradients in three launches (partial norms, their
    total and the coefficient, the multi-tensor scale), nothing read back unless
    `before_scale(total)` reads it (error_if_nonfinite). The total norm (a 0-d device
    tensor), or None when the gradients do not fit (then the per-tensor path runs)."""
    from ...codegen.triton import multi_tensor as K
    inf = norm_type == math.inf
    if not (inf or norm_type == 2.0) or not _numbers(max_norm) or not grads:
        return None
    first = grads[0]
    if not all(isinstance(g, Tensor) and not getattr(g, "is_symbolic", False) and
               g.is_cuda and g._storage.index == first._storage.index and
               g.dtype == first.dtype and g.dtype.name in _DTYPES and _dense(g) and
               not g.requires_grad for g in grads):
        return None
    from ..devices import empty_cuda
    index, dtype = first._storage.index, first.dtype
    chunks = [idx for _, idx in _chunks(grads)]
    counts = [sum(K.blocks_of([grads[i].numel() for i in idx])) for idx in chunks]
    partials = empty_cuda((sum(counts),), (1,), dtype, index)
    start = 0
    for idx, count in zip(chunks, counts):
        kernel = K.norm_partials_kernel(tuple(grads[i].numel() for i in idx), dtype, inf)
        _launch(kernel, [grads[i] for i in idx] + [partials[start:start + count]], grads)
        start += count
    total, coef = (empty_cuda((), (), dtype, index) for _ in range(2))
    _launch(K.norm_total_kernel(sum(counts), dtype, inf), [partials, total, coef, max_norm],
            grads)
    before_scale(total)
    for idx in chunks:
        kernel = K.scale_kernel(tuple(grads[i].numel() for i in idx), dtype)
        _launch(kernel, [grads[i] for i in idx] + [coef], grads)
    for g in grads:
        g._bump_version()
    return total


def unscale_grads(grads, inv_scale: Tensor):
    """GradScaler.unscale_ over CUDA gradients of one device: grads *= inv_scale and an
    inf/NaN check in one launch per chunk. Returns the probe GradScaler reads at step() (a
    float32 0-d device tensor: NaN when a gradient held inf or NaN, else 0), or None when
    the gradients do not fit (then the per-gradient path runs)."""
    from ...codegen.triton.multi_tensor import unscale_kernel
    if not grads:
        return None
    first = grads[0]
    if not all(isinstance(g, Tensor) and g.is_cuda and
               g._storage.index == first._storage.index and g.dtype.name in _DTYPES and
               _dense(g) and not g.requires_grad for g in grads):
        return None
    from ... import zeros
    found = zeros((), dtype=dtypes.float32, device=first.device)
    inv = inv_scale.to(device=first.device, dtype=dtypes.float32)
    for dtype, idx in _chunks(grads):
        kernel = unscale_kernel(tuple(grads[i].numel() for i in idx), dtype)
        _launch(kernel, [grads[i] for i in idx] + [inv, found], grads)
    for g in grads:
        g._bump_version()
    return found


def increment(counters: list) -> bool:
    """counter += 1 for each one-element integer CUDA tensor of `counters`, one launch per
    MAX_TENSORS of one device and dtype; False (nothing done) when they are not all such
    tensors (the caller adds one to each instead)."""
    from ...codegen.triton.multi_tensor import MAX_TENSORS, increment_kernel
    from .. import eager_cuda
    if not counters or not all(isinstance(t, Tensor) and t.is_cuda and t.numel() == 1 and
                               not t.dtype.is_floating_point and not t.dtype.is_complex and
                               t.dtype.name != "bool" for t in counters):
        return False
    runs: dict = {}
    for t in counters:
        runs.setdefault((t._storage.index, t.dtype), []).append(t)
    for (index, dtype), ts in runs.items():
        for start in range(0, len(ts), MAX_TENSORS):
            chunk = ts[start:start + MAX_TENSORS]
            eager_cuda.launch(increment_kernel(len(chunk), dtype), chunk, index)
    return True
