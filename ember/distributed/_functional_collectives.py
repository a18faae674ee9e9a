"""torch.distributed._functional_collectives: collectives that return their result.

ember's collectives complete before they return, so a result never needs waiting for:
`wait_tensor(t)` gives `t` back.
"""
from __future__ import annotations

from . import c10d


def wait_tensor(tensor):
    return tensor


def _all_to_all(input, output_split_sizes, input_split_sizes, group):
    import ember
    rows = sum(output_split_sizes) if output_split_sizes is not None else input.shape[0]
    output = ember.empty((rows, *input.shape[1:]), dtype=input.dtype, device=input.device)
    c10d.all_to_all_single(output, input.contiguous(), output_split_sizes,
                           input_split_sizes, group=group)
    return output


def all_to_all_single(input, output_split_sizes, input_split_sizes, group, tag: str = ""):
    """Rows of `input` split by input_split_sizes go to each rank; the rows received, by
    output_split_sizes, are concatenated (None: equal splits)."""
    return _all_to_all(input, output_split_sizes, input_split_sizes, group)


def _autograd_all_to_all():
    import ember

    class AllToAllSingle(ember.autograd.Function):
        """The gradient goes back the way the rows came (the splits swapped)."""

        @staticmethod
        def forward(ctx, input, output_split_sizes, input_split_sizes, group):
            ctx.splits = (output_split_sizes, input_split_sizes)
            ctx.group = group
            return _all_to_all(input, output_split_sizes, input_split_sizes, group)

        @staticmethod
        def backward(ctx, grad):
            output_split_sizes, input_split_sizes = ctx.splits
            return (_all_to_all(grad, input_split_sizes, output_split_sizes, ctx.group),
                    None, None, None)

    return AllToAllSingle


def all_to_all_single_autograd(input, output_split_sizes, input_split_sizes, group,
                               tag: str = ""):
    """all_to_all_single that autograd differentiates."""
    return _autograd_all_to_all().apply(input, output_split_sizes, input_split_sizes, group)
