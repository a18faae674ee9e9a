"""ember.nn.utils.prune: torch.nn.utils.prune's pruning of parameters by masks.

Pruning `module.<name>` moves the parameter to `<name>_orig`, stores a `<name>_mask`
buffer and sets `module.<name> = <name>_orig * <name>_mask` (a plain tensor attribute,
recomputed by a forward pre-hook before every call), as torch does. Pruning the same
tensor again prunes among the entries (unstructured) or channels (structured) that
are still unpruned, and multiplies into the existing mask; `remove` makes the pruning
permanent. Random methods draw from ember's generator (reproducible per seed, not
torch's draws).
"""
from __future__ import annotations

import numbers

from ....ir.ops import OPS_NS as ops
from ...autograd import no_grad
from ...factories import ones_like, rand, rand_like, zeros_like
from ...tensor import Tensor


def _check_amount(amount) -> None:
    if isinstance(amount, numbers.Integral) and not isinstance(amount, bool):
        if amount < 0:
            raise ValueError(f"amount={amount} should either be a float in the range "
                             "[0, 1] or a non-negative integer")
    elif isinstance(amount, numbers.Real):
        if not 0.0 <= amount <= 1.0:
            raise ValueError(f"amount={amount} should either be a float in the range "
                             "[0, 1] or a non-negative integer")
    else:
        raise TypeError(f"Invalid type for amount: {amount}. Must be int or float.")


def _n_to_prune(amount, size: int) -> int:
    if isinstance(amount, numbers.Integral):
        if amount > size:
            raise ValueError(f"amount={amount} should be smaller than the number of "
                             f"parameters to prune={size}")
        return int(amount)
    return round(amount * size)


def _channel_index(t: Tensor, dim: int, channels) -> tuple:
    index = [slice(None)] * t.dim()
    index[dim] = channels
    return tuple(index)


class BasePruningMethod:
    """A pruning technique: compute_mask(t, default_mask) -> mask. Also the forward
    pre-hook that recomputes the pruned tensor before each call."""
    PRUNING_TYPE = "unstructured"
    _tensor_name: str

    def compute_mask(self, t: Tensor, default_mask: Tensor) -> Tensor:
        raise NotImplementedError

    def __call__(self, module, inputs):
        setattr(module, self._tensor_name, self.apply_mask(module))

    def apply_mask(self, module) -> Tensor:
        orig = getattr(module, self._tensor_name + "_orig")
        mask = getattr(module, self._tensor_name + "_mask")
        return mask.to(dtype=orig.dtype) * orig

    def _combined_mask(self, t: Tensor, old_mask: Tensor) -> Tensor:
        """This method's mask computed on what is still unpruned, times the old mask."""
        if self.PRUNING_TYPE == "unstructured" or self.PRUNING_TYPE == "global":
            keep = old_mask == 1
            new_mask = old_mask.clone()
            partial = self.compute_mask(t[keep], default_mask=old_mask[keep])
            new_mask[keep] = partial.to(dtype=new_mask.dtype)
            return new_mask
        dim = self.dim if self.dim >= 0 else self.dim + t.dim()
        others = [d for d in range(t.dim()) if d != dim]
        alive = (old_mask.sum(dim=others) != 0).nonzero().view(-1)
        index = _channel_index(t, dim, alive)
        new_mask = old_mask.clone()
        new_mask[index] = self.compute_mask(t[index], default_mask=old_mask[index]).to(
            dtype=new_mask.dtype)
        return new_mask

    @classmethod
    def apply(cls, module, name: str, *args, importance_scores=None, **kwargs):
        method = cls(*args, **kwargs)
        method._tensor_name = name
        hook = _hook_for(module, name)
        orig = getattr(module, name)
        scores = importance_scores if importance_scores is not None else orig
        if importance_scores is not None and tuple(scores.shape) != tuple(orig.shape):
            raise ValueError(f"importance_scores should have the same shape as parameter "
                             f"{name} of {module}")
        with no_grad():
            if hook is None:
                module.register_parameter(name + "_orig", orig)
                del module._parameters[name]
                mask = method.compute_mask(scores, default_mask=_ones_like(orig))
            else:
                old_mask = getattr(module, name + "_mask")
                mask = method._combined_mask(scores, old_mask)
            if name + "_mask" in module._buffers:
                del module._buffers[name + "_mask"]
            module.register_buffer(name + "_mask", mask)
        # the method itself is the forward pre-hook (PyTorch's form: code finds pruned
        # tensors by isinstance(hook, BasePruningMethod)); pruning again chains the
        # methods in one PruningContainer
        if hook is not None:
            _remove_hook(module, hook)
            if not isinstance(hook, PruningContainer):
                hook = PruningContainer(hook)
            hook.add_pruning_method(method)
            method = hook
        module.register_forward_pre_hook(method)
        setattr(module, name, method.apply_mask(module))
        return method

    def remove(self, module) -> None:
        remove(module, self._tensor_name)


def _ones_like(t: Tensor) -> Tensor:
    return ones_like(t)


class PruningContainer(BasePruningMethod):
    """The pruning methods applied in turn to one tensor (the hook after a second prune)."""

    def __init__(self, *args):
        self._pruning_methods: tuple = ()
        if len(args) == 1 and not isinstance(args[0], BasePruningMethod):
            args = tuple(args[0])
        for method in args:
            if not hasattr(self, "_tensor_name"):
                self._tensor_name = method._tensor_name
            self.add_pruning_method(method)

    def add_pruning_method(self, method) -> None:
        if not isinstance(method, BasePruningMethod) and method is not None:
            raise TypeError(f"{type(method)} is not a BasePruningMethod subclass")
        if method is not None and self._tensor_name != method._tensor_name:
            raise ValueError("Can only add pruning methods acting on the parameter named "
                             f"'{self._tensor_name}' to PruningContainer. Found "
                             f"'{method._tensor_name}'")
        self._pruning_methods += (method,)

    def __len__(self) -> int:
        return len(self._pruning_methods)

    def __iter__(self):
        return iter(self._pruning_methods)

    def __getitem__(self, idx):
        return self._pruning_methods[idx]

    def compute_mask(self, t, default_mask):
        """The last method's mask on what is still unpruned, times the old mask."""
        return self._pruning_methods[-1]._combined_mask(t, default_mask)

    def _combined_mask(self, t, old_mask):
        return self.compute_mask(t, old_mask)


def _hook_for(module, name: str):
    for hook in module._forward_pre_hooks.values():
        if isinstance(hook, BasePruningMethod) and hook._tensor_name == name:
            return hook
    return None


def _remove_hook(module, hook) -> None:
    for key, value in list(module._forward_pre_hooks.items()):
        if value is hook:
            del module._forward_pre_hooks[key]


class Identity(BasePruningMethod):
    def compute_mask(self, t, default_mask):
        return default_mask

    @classmethod
    def apply(cls, module, name):
        return super().apply(module, name)


class RandomUnstructured(BasePruningMethod):
    def __init__(self, amount):
        _check_amount(amount)
        self.amount = amount

    def compute_mask(self, t, default_mask):
        n = _n_to_prune(self.amount, t.numel())
        mask = default_mask.clone()
        if n != 0:
            mask.view(-1)[rand_like(t, dtype=_float(t)).view(-1).topk(n).indices] = 0
        return mask

    @classmethod
    def apply(cls, module, name, amount):
        return super().apply(module, name, amount=amount)


class L1Unstructured(BasePruningMethod):
    def __init__(self, amount):
        _check_amount(amount)
        self.amount = amount

    def compute_mask(self, t, default_mask):
        n = _n_to_prune(self.amount, t.numel())
        mask = default_mask.clone()
        if n != 0:
            mask.view(-1)[t.abs().view(-1).topk(n, largest=False).indices] = 0
        return mask

    @classmethod
    def apply(cls, module, name, amount, importance_scores=None):
        return super().apply(module, name, amount=amount,
                             importance_scores=importance_scores)


class RandomStructured(BasePruningMethod):
    PRUNING_TYPE = "structured"

    def __init__(self, amount, dim: int = -1):
        _check_amount(amount)
        self.amount, self.dim = amount, dim

    def compute_mask(self, t, default_mask):
        channels = t.shape[self.dim]
        n = _n_to_prune(self.amount, channels)
        if n == 0:
            return default_mask
        scores = rand(channels)
        keep = scores > scores.kthvalue(n).values
        mask = zeros_like(t)
        mask[_channel_index(t, self.dim % t.dim(), keep)] = 1
        return mask * default_mask.to(dtype=mask.dtype)

    @classmethod
    def apply(cls, module, name, amount, dim=-1):
        return super().apply(module, name, amount=amount, dim=dim)


class LnStructured(BasePruningMethod):
    PRUNING_TYPE = "structured"

    def __init__(self, amount, n, dim: int = -1):
        _check_amount(amount)
        self.amount, self.n, self.dim = amount, n, dim

    def compute_mask(self, t, default_mask):
        dim = self.dim % t.dim()
        channels = t.shape[dim]
        keep = channels - _n_to_prune(self.amount, channels)
        mask = zeros_like(t)
        if keep == 0:
            return mask
        others = [d for d in range(t.dim()) if d != dim]
        norms = t.norm(p=self.n, dim=others) if others else t.abs()
        mask[_channel_index(t, dim, norms.topk(keep, largest=True).indices)] = 1
        return mask * default_mask.to(dtype=mask.dtype)

    @classmethod
    def apply(cls, module, name, amount, n, dim, importance_scores=None):
        return super().apply(module, name, amount=amount, n=n, dim=dim,
                             importance_scores=importance_scores)


class CustomFromMask(BasePruningMethod):
    PRUNING_TYPE = "global"

    def __init__(self, mask):
        self.mask = mask

    def compute_mask(self, t, default_mask):
        return default_mask * self.mask.to(dtype=default_mask.dtype)

    def _combined_mask(self, t, old_mask):
        return self.compute_mask(t, old_mask)

    @classmethod
    def apply(cls, module, name, mask):
        return super().apply(module, name, mask=mask)


def _float(t):
    from ....ir import dtypes
    return t.dtype if t.dtype.is_floating_point else dtypes.float32


def identity(module, name):
    Identity.apply(module, name)
    return module


def random_unstructured(module, name, amount):
    RandomUnstructured.apply(module, name, amount)
    return module


def l1_unstructured(module, name, amount, importance_scores=None):
    L1Unstructured.apply(module, name, amount=amount, importance_scores=importance_scores)
    return module


def random_structured(module, name, amount, dim):
    RandomStructured.apply(module, name, amount, dim)
    return module


def ln_structured(module, name, amount, n, dim, importance_scores=None):
    LnStructured.apply(module, name, amount, n, dim, importance_scores=importance_scores)
    return module


def custom_from_mask(module, name, mask):
    CustomFromMask.apply(module, name, mask)
    return module


def global_unstructured(parameters, pruning_method, importance_scores=None, **kwargs):
    """Prunes the (module, name) pairs together: the amount counts over all of them."""
    parameters = list(parameters)
    importance_scores = importance_scores or {}
    scores = ops.cat([importance_scores.get((m, n), getattr(m, n)).reshape(-1)
                  for m, n in parameters])
    masks = ops.cat([getattr(m, n + "_mask", None).reshape(-1) if _hook_for(m, n)
                 else _ones_like(getattr(m, n)).reshape(-1) for m, n in parameters])
    method = pruning_method(**kwargs)
    if getattr(method, "PRUNING_TYPE", "unstructured") == "structured":
        raise TypeError("Only \"unstructured\" PRUNING_TYPE supported for the "
                        f"`pruning_method`. Found method {pruning_method} of type structured")
    with no_grad():
        final = method._combined_mask(scores, masks)
    start = 0
    for module, name in parameters:
        param = getattr(module, name)
        mask = final[start:start + param.numel()].view_as(param)
        start += param.numel()
        custom_from_mask(module, name, mask=mask)


def remove(module, name: str):
    """Makes the pruning of module.<name> permanent: <name> becomes a Parameter holding
    the pruned values; <name>_orig, <name>_mask and the hook go."""
    hook = _hook_for(module, name)
    if hook is None:
        raise ValueError(f"Parameter '{name}' of module {module} has to be pruned before "
                         "pruning can be removed")
    with no_grad():
        pruned = hook.apply_mask(module)
    if name in module.__dict__:
        delattr(module, name)
    orig = module._parameters[name + "_orig"]
    orig.data = pruned.data
    del module._parameters[name + "_orig"]
    del module._buffers[name + "_mask"]
    setattr(module, name, orig)
    _remove_hook(module, hook)
    return module


def is_pruned(module) -> bool:
    return any(isinstance(hook, BasePruningMethod) for m in module.modules()
               for hook in m._forward_pre_hooks.values())


__all__ = ["BasePruningMethod", "PruningContainer", "Identity", "RandomUnstructured", "L1Unstructured",
           "RandomStructured", "LnStructured", "CustomFromMask", "identity",
           "random_unstructured", "l1_unstructured", "random_structured", "ln_structured",
           "custom_from_mask", "global_unstructured", "remove", "is_pruned"]
