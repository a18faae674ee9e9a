"""Lazy modules (LazyLinear, LazyConv2d, LazyBatchNorm2d, ...): the input size is taken
from the first input, as PyTorch's. Until then the parameters are UninitializedParameter;
the first forward (or loading a state_dict) builds the real module with the inferred size
and the module becomes that class (`cls_to_become`), so everything after is ordinary.
"""
from __future__ import annotations

from ....ir.errors import EmberError
from ..parameter import Parameter
from .conv import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from .linear import Linear
from .module import Module
from .normalization import BatchNorm1d, BatchNorm2d, BatchNorm3d
from .normalization_extra import InstanceNorm1d, InstanceNorm2d, InstanceNorm3d


_SHAPE_UNKNOWN = ("Can't access the shape of an uninitialized parameter or buffer. This error "
                  "usually happens in `load_state_dict` when trying to load an uninitialized "
                  "parameter into an initialized one. Call `forward` to initialize the "
                  "parameters before accessing their attributes.")


class UninitializedError(EmberError, RuntimeError, ValueError):
    """Using a lazy layer's parameter before its first input (PyTorch raises RuntimeError
    for its shape, ValueError for computing with it; this is both)."""


class UninitializedParameter(Parameter):
    """A parameter whose shape is not known yet (a lazy module's, before its first input)."""

    cls_to_become = Parameter
    _uninitialized = True          # state_dict keeps it as is (no detach to a plain tensor)

    @property
    def shape(self):
        raise UninitializedError(_SHAPE_UNKNOWN)

    def __repr__(self) -> str:
        return "<UninitializedParameter>"

    def materialize(self, shape, device=None, dtype=None):
        raise RuntimeError("UninitializedParameter.materialize: ember materializes a lazy "
                           "module as a whole on its first forward (or load_state_dict)")


class UninitializedBuffer(Parameter):
    """A buffer whose shape is not known yet."""

    _uninitialized = True

    def __repr__(self) -> str:
        return "<UninitializedBuffer>"

    @property
    def shape(self):
        raise UninitializedError(_SHAPE_UNKNOWN)


class LazyModuleMixin:
    """The first input (or a loaded state_dict) fixes the missing size; the module then
    becomes `cls_to_become` built with that size, its other arguments as given."""

    cls_to_become: type | None = None

    def _lazy_setup(self, **arguments) -> None:
        Module.__init__(self)
        object.__setattr__(self, "_lazy_arguments", arguments)
        for name in self._lazy_parameter_names():
            self.register_parameter(name, UninitializedParameter())
        self.register_forward_pre_hook(_infer_on_first_call)

    def _lazy_parameter_names(self) -> list[str]:
        return ["weight", "bias"] if self._lazy_arguments.get("bias", True) else ["weight"]

    def _apply(self, fn, recurse: bool = True):
        """`.double()`, `.to(dtype)` before the first input: the parameters made later
        take that dtype (PyTorch converts its uninitialized parameters' dtype)."""
        if self.has_uninitialized_params():
            from ...factories import zeros
            probe = fn(zeros(()))
            if probe.dtype.is_floating_point:
                self._lazy_arguments["dtype"] = probe.dtype
                self.__dict__.pop("_lazy_template", None)
            return self
        return Module._apply(self, fn, recurse)

    def has_uninitialized_params(self) -> bool:
        return "_lazy_arguments" in self.__dict__

    def initialize_parameters(self, *args, **kwargs) -> None:
        self._materialize(self._size_from_input(args[0]))

    def _materialize(self, size: int) -> None:
        real = self.cls_to_become(size, **self._lazy_arguments)
        hooks = {k: h for k, h in self._forward_pre_hooks.items()
                 if h is not _infer_on_first_call}
        training = self.training
        self.__dict__.clear()
        self.__dict__.update(real.__dict__)
        self._forward_pre_hooks.update(hooks)
        self.__class__ = self.cls_to_become
        self.train(training)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs):
        size = self._size_from_state(state_dict, prefix)
        if size is not None and self.has_uninitialized_params():
            self._materialize(size)      # now the real class: load through its own method
            return self._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                              missing_keys, unexpected_keys, error_msgs)
        return Module._load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                                            missing_keys, unexpected_keys, error_msgs)

    def _template(self):
        """The real class built with the unknown size 0: its attributes (`in_features`
        is 0, as PyTorch's) and repr before the first input. Built once, without moving
        the random stream (printing a model must not change the numbers drawn next)."""
        template = self.__dict__.get("_lazy_template")
        if template is None:
            from ...random import get_rng_state, set_rng_state
            state = get_rng_state()
            try:
                template = self.cls_to_become(0, **self._lazy_arguments)
            finally:
                set_rng_state(state)
            object.__setattr__(self, "_lazy_template", template)
        return template

    def __getattr__(self, name: str):
        try:
            return Module.__getattr__(self, name)
        except AttributeError:
            if name.startswith("_") or "_lazy_arguments" not in self.__dict__:
                raise
            try:
                template = self._template()
            except Exception:  # noqa: BLE001 - a class that cannot be built with size 0
                raise AttributeError(f"'{type(self).__name__}' object has no attribute "
                                     f"'{name}'") from None
            if name in template.__dict__:
                return template.__dict__[name]
            raise

    def extra_repr(self) -> str:
        # PyTorch's: the real module's text with the unknown size shown as 0
        try:
            return self._template().extra_repr()
        except Exception:  # noqa: BLE001 - a class that cannot be built with size 0
            return ", ".join(f"{k}={v}" for k, v in self._lazy_arguments.items())


def _infer_on_first_call(module, args):
    if isinstance(module, LazyModuleMixin) and module.has_uninitialized_params():
        module.initialize_parameters(*args)


class LazyLinear(LazyModuleMixin, Module):
    cls_to_become = Linear

    def __init__(self, out_features: int, bias: bool = True, device=None, dtype=None):
        self._lazy_setup(out_features=out_features, bias=bias, dtype=dtype)

    def _size_from_input(self, input) -> int:
        return input.shape[-1]

    def _size_from_state(self, state_dict, prefix):
        weight = state_dict.get(prefix + "weight")
        return None if weight is None else weight.shape[1]


class _LazyConvNd(LazyModuleMixin, Module):
    _dims = 2

    def __init__(self, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        self._lazy_setup(out_channels=out_channels, kernel_size=kernel_size, stride=stride,
                         padding=padding, dilation=dilation, groups=groups, bias=bias,
                         padding_mode=padding_mode, dtype=dtype)

    def _size_from_input(self, input) -> int:
        return input.shape[0] if input.ndim == self._dims + 1 else input.shape[1]

    def _size_from_state(self, state_dict, prefix):
        weight = state_dict.get(prefix + "weight")
        groups = self._lazy_arguments["groups"]
        return None if weight is None else weight.shape[1] * groups


class _LazyConvTransposeNd(_LazyConvNd):
    def __init__(self, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 groups=1, bias=True, dilation=1, padding_mode="zeros", device=None,
                 dtype=None):
        self._lazy_setup(out_channels=out_channels, kernel_size=kernel_size, stride=stride,
                         padding=padding, output_padding=output_padding, groups=groups,
                         bias=bias, dilation=dilation, padding_mode=padding_mode, dtype=dtype)

    def _size_from_state(self, state_dict, prefix):
        weight = state_dict.get(prefix + "weight")
        return None if weight is None else weight.shape[0]


class _LazyNormBase(LazyModuleMixin, Module):
    _dims = 2

    def __init__(self, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 device=None, dtype=None, *, bias=True):
        # PyTorch's lazy instance norms too default to affine and tracked statistics
        self._lazy_setup(eps=eps, momentum=momentum, affine=affine,
                         track_running_stats=track_running_stats, dtype=dtype, bias=bias)

    def _lazy_parameter_names(self) -> list[str]:
        if not self._lazy_arguments["affine"]:
            return []
        return ["weight", "bias"] if self._lazy_arguments["bias"] else ["weight"]

    def _size_from_input(self, input) -> int:
        return input.shape[0] if input.ndim == self._dims + 1 and self._instance else \
            input.shape[1]

    _instance = False

    def _size_from_state(self, state_dict, prefix):
        for key in ("weight", "running_mean"):
            if prefix + key in state_dict:
                return state_dict[prefix + key].shape[0]
        return None


def _lazy(name, base, real, dims, **extra):
    return type(name, (base,), {"cls_to_become": real, "_dims": dims,
                                "__module__": __name__, "__qualname__": name, **extra})


LazyConv1d = _lazy("LazyConv1d", _LazyConvNd, Conv1d, 1)
LazyConv2d = _lazy("LazyConv2d", _LazyConvNd, Conv2d, 2)
LazyConv3d = _lazy("LazyConv3d", _LazyConvNd, Conv3d, 3)
LazyConvTranspose1d = _lazy("LazyConvTranspose1d", _LazyConvTransposeNd, ConvTranspose1d, 1)
LazyConvTranspose2d = _lazy("LazyConvTranspose2d", _LazyConvTransposeNd, ConvTranspose2d, 2)
LazyConvTranspose3d = _lazy("LazyConvTranspose3d", _LazyConvTransposeNd, ConvTranspose3d, 3)
LazyBatchNorm1d = _lazy("LazyBatchNorm1d", _LazyNormBase, BatchNorm1d, 1)
LazyBatchNorm2d = _lazy("LazyBatchNorm2d", _LazyNormBase, BatchNorm2d, 2)
LazyBatchNorm3d = _lazy("LazyBatchNorm3d", _LazyNormBase, BatchNorm3d, 3)
LazyInstanceNorm1d = _lazy("LazyInstanceNorm1d", _LazyNormBase, InstanceNorm1d, 1,
                           _instance=True)
LazyInstanceNorm2d = _lazy("LazyInstanceNorm2d", _LazyNormBase, InstanceNorm2d, 2,
                           _instance=True)
LazyInstanceNorm3d = _lazy("LazyInstanceNorm3d", _LazyNormBase, InstanceNorm3d, 3,
                           _instance=True)

__all__ = ["UninitializedParameter", "UninitializedBuffer", "LazyModuleMixin", "LazyLinear",
           "LazyConv1d", "LazyConv2d", "LazyConv3d", "LazyConvTranspose1d",
           "LazyConvTranspose2d", "LazyConvTranspose3d", "LazyBatchNorm1d", "LazyBatchNorm2d",
           "LazyBatchNorm3d", "LazyInstanceNorm1d", "LazyInstanceNorm2d", "LazyInstanceNorm3d"]
