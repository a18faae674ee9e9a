"""BatchNorm1d/2d, LayerNorm, GroupNorm: torch's buffers, momentum rule and reprs.

BatchNorm keeps running_mean/running_var/num_batches_tracked buffers (when
track_running_stats); momentum=None means a cumulative average (factor
1/num_batches_tracked), exactly as PyTorch's _BatchNorm.forward.
"""
from __future__ import annotations

from ....ir import dtypes
from ....ir.errors import ShapeError
from ...factories import ones, tensor, zeros
from .. import functional as F, init
from ._util import checkable, new_param
from .module import Module


class _BatchNorm(Module):
    _version = 2
    _allowed_ndim: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device=None,
                 dtype=None, *, bias: bool = True) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:      # affine=True, bias=False: a scale only (PyTorch's `bias` keyword)
            self.weight = new_param(num_features, dtype=dtype)
            if bias:
                self.bias = new_param(num_features, dtype=dtype)
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", tensor(0, dtype=dtypes.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            init.zeros_(self.num_batches_tracked)

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def _check_input_dim(self, input) -> None:
        if input.ndim not in self._allowed_ndim or input.shape[1] != self.num_features:
            want = " or ".join(f"{n}D" for n in self._allowed_ndim)
            raise ShapeError(f"{self!r}: expected {want} input with {self.num_features} "
                             f"channels at dimension 1, got {list(input.shape)}")

    def forward(self, input):
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            if not self.num_batches_tracked.is_meta:     # meta: no count to bump
                _count_batch(self.num_batches_tracked)
            if self.momentum is None:   # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked.item())
        use_batch_stats = self.training or (self.running_mean is None and
                                            self.running_var is None)
        track = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if track else None,
                            self.running_var if track else None, self.weight, self.bias,
                            use_batch_stats, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        # checkpoints from before num_batches_tracked existed load with a zero count
        key = prefix + "num_batches_tracked"
        if self.track_running_stats and key not in state_dict and \
                prefix + "running_mean" in state_dict:
            state_dict = dict(state_dict)
            state_dict[key] = tensor(0, dtype=dtypes.int64)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)


def _count_batch(counter) -> None:
    """num_batches_tracked += 1. While ember.export traces, as an op-level copy_ the
    graph records, so the exported program counts each call as torch's does (its
    graph holds the add); ember.compile's plans count outside their graphs
    (compile_trace.py), and eager writes the value directly (its fast path)."""
    from ....compiler import is_exporting     # the compiler loads on first use
    if is_exporting():
        from ...autograd.grad_mode import no_grad
        with no_grad():
            counter.copy_(counter + 1)
    else:
        init._fill_(counter, counter._values() + 1)


class BatchNorm1d(_BatchNorm):
    _allowed_ndim = (2, 3)


class BatchNorm2d(_BatchNorm):
    _allowed_ndim = (4,)


class BatchNorm3d(_BatchNorm):
    _allowed_ndim = (5,)


class LayerNorm(Module):
    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        if elementwise_affine:
            self.weight = new_param(*self.normalized_shape, dtype=dtype)
            if bias:
                self.bias = new_param(*self.normalized_shape, dtype=dtype)
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.elementwise_affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def forward(self, input):
        n = len(self.normalized_shape)
        if checkable(input) and (tuple(input.shape[input.ndim - n:]) != self.normalized_shape
                                 or input.ndim < n):
            shape = list(self.normalized_shape)
            raise ShapeError(f"{self!r}: Given normalized_shape={shape}, expected input with "
                             f"shape [*, {', '.join(map(str, shape))}], but got input of size"
                             f"{list(input.shape)}")
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}")


class GroupNorm(Module):
    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, device=None, dtype=None, *, bias: bool = True) -> None:
        super().__init__()
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by "
                             f"num_groups ({num_groups})")
        self.num_groups, self.num_channels = num_groups, num_channels
        self.eps, self.affine = eps, affine
        if affine:
            self.weight = new_param(num_channels, dtype=dtype)
            if bias:
                self.bias = new_param(num_channels, dtype=dtype)
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def forward(self, input):
        if checkable(input) and (input.ndim < 2 or input.shape[1] != self.num_channels):
            shape = list(input.shape)
            torch_words = (   # what PyTorch says, which code written for it matches
                f"Expected number of channels in input to be divisible by num_groups, but got "
                f"input of shape {shape} and num_groups={self.num_groups}"
                if input.ndim >= 2 and input.shape[1] % self.num_groups else
                "Expected weight to be a vector of size equal to the number of channels in "
                f"input, but got input of shape {shape}")
            raise ShapeError(f"{self!r}: expected input with {self.num_channels} channels at "
                             f"dimension 1, got {shape} ({torch_words})")
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, "
                f"affine={self.affine}, bias={self.bias is not None}")
