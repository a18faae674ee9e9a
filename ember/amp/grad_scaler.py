"""ember.amp.GradScaler: dynamic loss scaling for float16 training (torch.amp.GradScaler).

float16 gradients underflow below 6e-8; multiplying the loss by a large scale moves them
into range, and unscaling before the optimizer step restores their values. PyTorch's
semantics, step by step:

- `scale(outputs)` multiplies a tensor (or nested lists/tuples of them) by the current
  scale, a float32 0-dim tensor on the outputs' device (created on first use);
- `unscale_(optimizer)` multiplies every gradient of the optimizer's params in place by
  1/scale (computed in float64, then rounded to float32, as PyTorch does) and records
  whether any gradient held an inf or NaN;
- `step(optimizer)` unscales if not yet done, then runs `optimizer.step()` only when no
  inf/NaN was found (else the step is skipped and None returned);
- `update()` halves the scale (`backoff_factor`) after a step that found inf/NaN and
  resets the growth tracker; after `growth_interval` clean steps in a row it multiplies
  the scale by `growth_factor` (only if the result is finite). `update(new_scale)` sets it.

Found-inf flags stay tensors on the gradients' device until `step` reads them (one host
sync per device and step, as PyTorch's `.item()` there). Sparse gradients are not supported.
"""
from __future__ import annotations

import enum
import math
import warnings

from ..frontend import factories
from ..frontend.tensor import Tensor
from ..ir import dtypes
from ..ir.registry import OPS


class _Stage(enum.Enum):
    READY = 0
    UNSCALED = 1
    STEPPED = 2


_NO_SCALE = ("Attempted {} but _scale is None.  This may indicate your script did not use "
             "scaler.scale(loss or outputs) earlier in the iteration.")


class GradScaler:
    """`GradScaler(device='cuda', init_scale=2.**16, growth_factor=2.0, backoff_factor=0.5,
    growth_interval=2000, enabled=True)`."""

    def __init__(self, device: str = "cuda", init_scale: float = 2.0 ** 16,
                 growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000, enabled: bool = True) -> None:
        self._device = str(device)
        self._enabled = bool(enabled)
        if self._enabled and self._device.split(":")[0] == "cuda":
            from ..frontend import cuda
            if not cuda.is_available():
                warnings.warn("torch.cuda.amp.GradScaler is enabled, but CUDA is not "
                              "available.  Disabling.", stacklevel=2)
                self._enabled = False
        if self._enabled:
            if growth_factor <= 1.0:
                raise AssertionError("The growth factor must be > 1.0.")
            if backoff_factor >= 1.0:
                raise AssertionError("The backoff factor must be < 1.0.")
        self._init_scale = float(init_scale)
        self._growth_factor = float(growth_factor)
        self._backoff_factor = float(backoff_factor)
        self._growth_interval = int(growth_interval)
        self._init_growth_tracker = 0
        self._scale: Tensor | None = None            # float32 0-dim, on the outputs' device
        self._growth_tracker = 0
        self._per_optimizer: dict[int, dict] = {}

    # --- scaling ------------------------------------------------------------------------
    def scale(self, outputs):
        """outputs * scale, for a tensor or (nested) lists/tuples of tensors."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, Tensor):
            return outputs * self._scale_on(outputs.device)
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        raise ValueError("outputs must be a Tensor or an iterable of Tensors")

    def _scale_on(self, device) -> Tensor:
        if self._scale is None:
            self._scale = factories.full((), self._init_scale, dtype=dtypes.float32,
                                         device=device)
        return self._scale if self._scale.device == device else self._scale.to(device)

    def _state(self, optimizer) -> dict:
        return self._per_optimizer.setdefault(
            id(optimizer), {"stage": _Stage.READY, "found_inf": [], "optimizer": optimizer})

    def unscale_(self, optimizer) -> None:
        """Divide the optimizer's gradients by the scale, in place; record inf/NaN."""
        if not self._enabled:
            return
        if self._scale is None:
            raise AssertionError(_NO_SCALE.format("unscale_"))
        state = self._state(optimizer)
        if state["stage"] is _Stage.UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since "
                               "the last update().")
        if state["stage"] is _Stage.STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        inv_scale = OPS["convert_element_type"](
            OPS["reciprocal"](OPS["convert_element_type"](self._scale, dtypes.float64)),
            dtypes.float32)
        state["found_inf"] = self._unscale_grads(optimizer, inv_scale)
        state["stage"] = _Stage.UNSCALED

    def _unscale_grads(self, optimizer, inv_scale: Tensor) -> list:
        """Per device: a float32 probe, sum(grad * 0) over its gradients, which is NaN
        exactly when a gradient there held inf or NaN (0 * inf = NaN) and 0 otherwise:
        one fused pointwise-and-sum kernel per gradient, read at step()."""
        grads = [p.grad for group in optimizer.param_groups for p in group["params"]
                 if p.grad is not None]
        if not any(g.dtype is dtypes.float16 for g in grads):
            # CUDA gradients of one device: one multi-tensor launch unscales and checks
            from ..frontend.optim.multi_tensor_cuda import unscale_grads
            probe = unscale_grads(grads, inv_scale)
            if probe is not None:
                return [probe]
        found: dict[str, Tensor] = {}
        for group in optimizer.param_groups:
            for param in group["params"]:
                grad = param.grad
                if grad is None:
                    continue
                if grad.dtype is dtypes.float16:
                    raise ValueError("Attempting to unscale FP16 gradients.")
                key = str(grad.device)
                probe = OPS["sum"](OPS["mul"](grad, 0.0), dtype=dtypes.float32)
                found[key] = probe if key not in found else OPS["add"](found[key], probe)
                scale = inv_scale if inv_scale.device == grad.device else inv_scale.to(grad.device)
                grad.mul_(scale)
        return list(found.values())

    # --- the step -------------------------------------------------------------------------
    def step(self, optimizer, *args, **kwargs):
        """optimizer.step(*args, **kwargs) unless an inf/NaN gradient was found."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is "
                               "enabled.")
        if self._scale is None:
            raise AssertionError(_NO_SCALE.format("step"))
        state = self._state(optimizer)
        if state["stage"] is _Stage.STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if state["stage"] is _Stage.READY:
            self.unscale_(optimizer)
        if not state["found_inf"]:
            raise AssertionError("No inf checks were recorded for this optimizer.")
        result = None
        if not any(_found_inf(probe) for probe in state["found_inf"]):
            result = optimizer.step(*args, **kwargs)
        state["stage"] = _Stage.STEPPED
        return result

    def update(self, new_scale=None) -> None:
        """Grow or back off the scale from this iteration's inf checks (or set it)."""
        if not self._enabled:
            return
        if self._scale is None:
            raise AssertionError(_NO_SCALE.format("update"))
        if new_scale is not None:
            self._set_scale(new_scale)
        else:
            flags = [f for s in self._per_optimizer.values() for f in s["found_inf"]]
            if not flags:
                raise AssertionError("No inf checks were recorded prior to update.")
            self._grow_or_back_off(any(_found_inf(f) for f in flags))
        self._per_optimizer = {}

    def _set_scale(self, new_scale) -> None:
        if isinstance(new_scale, Tensor):
            if new_scale.numel() != 1 or new_scale.requires_grad or \
                    new_scale.dtype is not dtypes.float32:
                raise AssertionError("new_scale should be a float or a 1-element "
                                     "torch.cuda.FloatTensor or torch.FloatTensor with "
                                     "requires_grad=False.")
            value = float(new_scale.item())
        else:
            value = float(new_scale)
        self._scale = factories.full((), value, dtype=dtypes.float32,
                                     device=self._scale.device)

    def _grow_or_back_off(self, found_inf: bool) -> None:
        scale = float(self._scale.item())
        if found_inf:
            scale, self._growth_tracker = scale * self._backoff_factor, 0
        elif self._growth_tracker + 1 == self._growth_interval:
            grown = _float32(scale * self._growth_factor)
            if grown != float("inf"):
                scale = grown
            self._growth_tracker = 0
        else:
            self._growth_tracker += 1
        self._scale = factories.full((), _float32(scale), dtype=dtypes.float32,
                                     device=self._scale.device)

    # --- settings and state ------------------------------------------------------------------
    def get_scale(self) -> float:
        if not self._enabled:
            return 1.0
        return self._init_scale if self._scale is None else float(self._scale.item())

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def set_growth_factor(self, new_factor: float) -> None:
        self._growth_factor = float(new_factor)

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def set_backoff_factor(self, new_factor: float) -> None:
        self._backoff_factor = float(new_factor)

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def set_growth_interval(self, new_interval: int) -> None:
        self._growth_interval = int(new_interval)

    def is_enabled(self) -> bool:
        return self._enabled

    def state_dict(self) -> dict:
        if not self._enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor,
                "growth_interval": self._growth_interval,
                "_growth_tracker": self._growth_tracker}

    def load_state_dict(self, state_dict: dict) -> None:
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("The source state dict is empty, possibly because it was saved "
                               "from a disabled instance of GradScaler.")
        self._init_scale = float(state_dict["scale"])
        if self._scale is not None:
            self._scale = factories.full((), self._init_scale, dtype=dtypes.float32,
                                         device=self._scale.device)
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._growth_tracker = int(state_dict["_growth_tracker"])


def _found_inf(probe: Tensor) -> bool:
    return not math.isfinite(float(probe.item()))


def _float32(value: float) -> float:
    """value rounded to float32, as PyTorch's scale tensor holds it."""
    import numpy as np
    return float(np.float32(value))
