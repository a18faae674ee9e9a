"""SyncBatchNorm across processes: batch statistics reduced over a process group.

The frontend's SyncBatchNorm (frontend/nn/modules/sync_batchnorm.py) computes plain
BatchNorm; this module plugs the group-reduced forward into it when ember.distributed
is imported (the frontend never imports the distributed layer). In training, with a
group of more than one process, each rank sums its channels (and counts its
elements), all-reduces the sums, centers its input on the global mean, and
all-reduces the squared deviations: the mean and (biased) variance of the whole
global batch, two-pass so float32 keeps its precision. The all-reduces are an
autograd function whose backward all-reduces the gradient, so each rank's backward
gets every rank's contribution through the statistics, as PyTorch's
SyncBatchNorm does; DDP then averages the affine parameters' gradients.
"""
from __future__ import annotations

from ...frontend.autograd import grad_mode
from ...frontend.autograd.function import Function
from ...frontend.factories import tensor as ember_tensor
from ...frontend.nn.modules import sync_batchnorm as frontend_sync_bn
from ...ir.errors import TraceError
from ...ir.symbolic import SymbolicTensor
from .. import c10d


class _AllReduceSum(Function):
    """Sum a tensor over the group; its gradient is the sum of every rank's gradient."""

    @staticmethod
    def forward(ctx, tensor, group):
        ctx.group = group
        out = tensor.detach().clone()
        c10d.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx, grad):
        grad = grad.detach().clone()
        c10d.all_reduce(grad, group=ctx.group)
        return grad, None


def group_batch_norm(bn, x):
    """`bn`'s training forward with statistics over its process group, or None where
    there is nothing to synchronize (no group, or a group of one process)."""
    if not c10d.is_initialized():
        return None
    if isinstance(x, SymbolicTensor):
        # under ember.compile: a graph break, so this forward runs eagerly (its
        # all-reduces cannot be part of a compiled graph); fullgraph=True raises
        raise TraceError("SyncBatchNorm over a process group cannot be traced into one "
                         "graph: its batch statistics are all-reduced eagerly")
    group = bn.process_group if bn.process_group is not None else c10d.group.WORLD
    if group is c10d.GroupMember.NON_GROUP_MEMBER or c10d.get_world_size(group) < 2:
        return None
    bn._check_input_dim(x)
    channels = x.shape[1]
    dims = [0] + list(range(2, x.ndim))
    shape = [1, channels] + [1] * (x.ndim - 2)
    count = ember_tensor([float(x.numel() // channels)], dtype=x.dtype)
    c10d.all_reduce(count, group=group)          # ranks may hold batches of other sizes
    total = float(count.item())
    mean = _AllReduceSum.apply(x.sum(dim=dims), group) / total
    centered = x - mean.reshape(shape)
    var = _AllReduceSum.apply((centered * centered).sum(dim=dims), group) / total
    out = centered * (var + bn.eps).rsqrt().reshape(shape)
    if bn.weight is not None:
        out = out * bn.weight.reshape(shape)
    if bn.bias is not None:
        out = out + bn.bias.reshape(shape)
    if bn.track_running_stats and bn.running_mean is not None:
        _update_running_stats(bn, mean, var, total)
    return out


def _update_running_stats(bn, mean, var, n: float) -> None:
    """PyTorch's update: the unbiased variance, `momentum` (or a cumulative average when
    momentum is None, counted by num_batches_tracked)."""
    with grad_mode.no_grad():
        if bn.num_batches_tracked is not None:
            bn.num_batches_tracked.add_(1)
        factor = bn.momentum
        if factor is None:
            factor = 1.0 / float(bn.num_batches_tracked.item())
        unbiased = var.detach() * (n / max(n - 1.0, 1.0))
        bn.running_mean.mul_(1 - factor).add_(mean.detach() * factor)
        bn.running_var.mul_(1 - factor).add_(unbiased * factor)


frontend_sync_bn.register_group_batch_norm(group_batch_norm)
