"""ember.nn.functional.embedding_bag: sums, means or maxima of bags of embeddings.

A composite: the rows are looked up with the registry's `embedding` (so `weight` gets
its gradient), each position's bag is found from `offsets` with comparisons (a
[bags, positions] membership matrix), and the reduction is a matmul (sum, mean) or a
masked amax (max). Positions equal to padding_idx belong to no bag; empty bags give
zeros. `max_norm` renormalizes the looked-up rows of `weight` in place first, as PyTorch.
"""
from __future__ import annotations

from ...ir import dtypes
from ...ir.registry import OPS
from ..autograd import no_grad
from ..tensor import Tensor
from ._functional_common import BadArgument, cast, refuse_traced_sparse_gradient

_MODES = ("sum", "mean", "max")


def embedding_bag(input: Tensor, weight: Tensor, offsets: Tensor | None = None,
                  max_norm: float | None = None, norm_type: float = 2,
                  scale_grad_by_freq: bool = False, mode: str = "mean", sparse: bool = False,
                  per_sample_weights: Tensor | None = None, include_last_offset: bool = False,
                  padding_idx: int | None = None) -> Tensor:
    from ..devices import creation_device_like
    with creation_device_like([weight, input]):     # its aranges on the tensors' device
        return _embedding_bag(input, weight, offsets, max_norm, norm_type, scale_grad_by_freq,
                              mode, sparse, per_sample_weights, include_last_offset,
                              padding_idx)


def _embedding_bag(input, weight, offsets, max_norm, norm_type, scale_grad_by_freq, mode,
                   sparse, per_sample_weights, include_last_offset, padding_idx):
    if weight.dtype in (dtypes.int64, dtypes.int32) and input.dtype.is_floating_point:
        # the pre-0.4 argument order (weight, input), which PyTorch still accepts
        input, weight = weight, input
    _check_arguments(input, weight, offsets, mode, per_sample_weights, scale_grad_by_freq)
    if sparse and mode == "max":
        raise ValueError("max mode does not support sparse weights")
    padding_idx = _padding_index(padding_idx, weight.shape[0])
    if input.ndim == 2:                     # fixed-length bags, one per row
        rows, length = input.shape
        offsets = OPS["arange"](0, rows * length, max(length, 1), dtype=input.dtype)
        input = input.reshape([-1])
        if per_sample_weights is not None:
            per_sample_weights = per_sample_weights.reshape([-1])
        include_last_offset = False
    _check_indices(input, offsets, weight.shape[0])
    refuse_traced_sparse_gradient(weight, input, sparse, "embedding_bag")
    if max_norm is not None:
        _renorm_rows(weight, input, max_norm, norm_type)
    rows = OPS["embedding"](weight, input, -1 if padding_idx is None else padding_idx,
                            False, sparse)        # sparse: weight's gradient is sparse COO
    if per_sample_weights is not None:
        rows = rows * per_sample_weights.unsqueeze(-1)
    member = _membership(input, offsets, include_last_offset, padding_idx)   # [B, n] bool
    return _reduce_bags(rows, member, mode)


def _check_arguments(input, weight, offsets, mode, per_sample_weights, scale_grad_by_freq):
    if weight.ndim != 2:
        raise BadArgument(f"embedding_bag: weight has to be a 2D Tensor, but got Tensor of "
                          f"dimension {weight.ndim}")
    if input.dtype not in (dtypes.int64, dtypes.int32):
        raise BadArgument(f"embedding_bag: expected input of dtype int64 or int32, got "
                          f"{input.dtype.name}")
    if input.ndim == 2 and offsets is not None:
        raise ValueError("if input is 2D, then offsets has to be None, as input is treated "
                         "is a mini-batch of fixed length sequences. However, found offsets "
                         f"of type {type(offsets).__name__}")
    if input.ndim == 1 and (offsets is None or offsets.ndim != 1):
        raise ValueError(f"offsets has to be a 1D Tensor but got "
                         f"{'None' if offsets is None else f'{offsets.ndim}D'}")
    if input.ndim not in (1, 2):
        raise ValueError(f"input has to be 1D or 2D Tensor, but got Tensor of dimension "
                         f"{input.ndim}")
    if mode not in _MODES:
        raise ValueError(f"mode has to be one of sum, mean or max, but got {mode}")
    if per_sample_weights is not None:
        if mode != "sum":
            raise NotImplementedError(
                f"embedding_bag: per_sample_weights was not None. per_sample_weights is only "
                f"supported for mode='sum' (got mode='{mode}'). Please open a feature "
                f"request on GitHub.")
        if list(per_sample_weights.shape) != list(input.shape):
            raise ValueError(f"embedding_bag: If per_sample_weights ({list(per_sample_weights.shape)}) "
                             f"is not None, then it must have the same shape as the input "
                             f"({list(input.shape)})")
    if scale_grad_by_freq and mode == "max":
        raise ValueError("max mode does not support scaling the gradient by the frequency")


def _padding_index(padding_idx, num_embeddings):
    if padding_idx is None:
        return None
    if not -num_embeddings <= padding_idx < num_embeddings:
        raise BadArgument(f"padding_idx must be within the number of embeddings "
                          f"({num_embeddings}), got {padding_idx}")
    return padding_idx % num_embeddings


def _check_indices(input, offsets, num_embeddings):
    """Data checks PyTorch makes; they need values, so they run only on concrete tensors."""
    if not isinstance(input, Tensor) or not isinstance(offsets, Tensor):
        return
    values = input._values()          # a device tensor's values are read back
    bad = (values < 0) | (values >= num_embeddings)
    if bad.any():
        k = int(bad.argmax())
        raise BadArgument(f"Index {k} of input takes value {int(values[k])} which is not in "
                          f"the valid range [0, {num_embeddings})")
    starts = offsets._values()
    if starts.size and starts[0] != 0:
        raise BadArgument(f"offsets[0] has to be 0, i.e., the first sequence in the "
                          f"mini-batch has to start from position 0. However, got "
                          f"{int(starts[0])}")
    if (starts[1:] < starts[:-1]).any() or (starts.size and starts[-1] > values.size):
        raise BadArgument("embedding_bag: offsets must be non-decreasing and at most the "
                          "input's length")


def _renorm_rows(weight, input, max_norm, norm_type):
    """Scale each looked-up row whose norm exceeds max_norm down to max_norm, in place."""
    with no_grad():
        row_ids = OPS["arange"](0, weight.shape[0], dtype=input.dtype)
        used = cast(row_ids.unsqueeze(1) == input.reshape([-1]).unsqueeze(0),
                    dtypes.int64).sum([1], keepdim=True) > 0                        # [V, 1]
        norms = OPS["linalg_vector_norm"](weight, norm_type, [-1], True)
        shrink = OPS["logical_and"](used, norms > max_norm)
        scale = OPS["where"](shrink, max_norm / (norms + 1e-7), OPS["ones_like"](norms))
        weight.copy_(weight * scale)


def _membership(input, offsets, include_last_offset, padding_idx):
    """member[b, p]: position p belongs to bag b (and is not padding)."""
    n = input.shape[0]
    positions = OPS["arange"](0, n, dtype=offsets.dtype)
    starts = offsets[:-1] if include_last_offset else offsets
    started = positions.unsqueeze(0) >= starts.unsqueeze(1)              # [B, n]
    bag_of_position = cast(started, dtypes.int64).sum([0]) - 1              # [n]
    bag_ids = OPS["arange"](0, starts.shape[0], dtype=dtypes.int64)
    member = bag_of_position.unsqueeze(0) == bag_ids.unsqueeze(1)        # [B, n]
    if include_last_offset and offsets.shape[0] > 0:
        member = OPS["logical_and"](member, (positions < offsets[-1]).unsqueeze(0))
    if padding_idx is not None:
        member = OPS["logical_and"](member, (input != padding_idx).unsqueeze(0))
    return member


def _reduce_bags(rows, member, mode):
    weights = cast(member, rows.dtype)                                    # [B, n]
    if mode == "max":
        masked = OPS["where"](member.unsqueeze(-1), rows.unsqueeze(0), float("-inf"))
        best = masked.amax([1])                                          # [B, D]
        nonempty = (weights.sum([1]) > 0).unsqueeze(-1)
        return OPS["where"](nonempty, best, OPS["zeros_like"](best))
    total = OPS["matmul"](weights, rows)
    if mode == "sum":
        return total
    return total / weights.sum([1], keepdim=True).clamp_min(1)


# --- torch.embedding_bag: ATen's form, with the bookkeeping tensors ------------------------
_MODE_NUMBERS = {0: "sum", 1: "mean", 2: "max"}


def aten_embedding_bag(weight, indices, offsets, scale_grad_by_freq: bool = False,
                       mode: int = 0, sparse: bool = False, per_sample_weights=None,
                       include_last_offset: bool = False, padding_idx=None):
    """torch.embedding_bag: (output, offset2bag, bag_size, max_indices), with the values
    PyTorch's CPU kernel gives the three bookkeeping tensors: offset2bag is each
    position's bag (empty in sum mode without padding_idx), bag_size each bag's count
    of non-padding positions (zeros in sum mode), max_indices the weight row chosen per
    bag and column in max mode (bag_size in mean mode, zeros in sum mode)."""
    if mode not in _MODE_NUMBERS:
        raise ValueError(f"embedding_bag: mode has to be 0 (sum), 1 (mean) or 2 (max), "
                         f"got {mode}")
    output = embedding_bag(indices, weight, offsets, None, 2, scale_grad_by_freq,
                           _MODE_NUMBERS[mode], sparse, per_sample_weights,
                           include_last_offset, padding_idx)
    if indices.ndim == 2:
        rows, length = indices.shape
        offsets = OPS["arange"](0, rows * length, max(length, 1), dtype=indices.dtype)
        indices, include_last_offset = indices.reshape([-1]), False
    padding_idx = _padding_index(padding_idx, weight.shape[0])
    starts = offsets[:-1] if include_last_offset else offsets
    bags, int_dtype = starts.shape[0], indices.dtype
    bag_of_position = _bag_of_position(indices.shape[0], starts)
    if mode == 0:                       # (PyTorch sizes these by offsets, last one included)
        zeros = OPS["full"]([offsets.shape[0]], 0, dtype=int_dtype)
        offset2bag = bag_of_position if padding_idx is not None else \
            OPS["full"]([0], 0, dtype=int_dtype)
        return output, cast(offset2bag, int_dtype), zeros, zeros
    member = bag_of_position.unsqueeze(0) == OPS["arange"](0, bags, dtype=dtypes.int64) \
        .unsqueeze(1)                                                        # [B, n]
    if padding_idx is not None:
        member = OPS["logical_and"](member, (indices != padding_idx).unsqueeze(0))
    bag_size = cast(cast(member, dtypes.int64).sum([1]), int_dtype)
    if mode == 1:
        return output, cast(bag_of_position, int_dtype), bag_size, bag_size
    return output, cast(bag_of_position, int_dtype), bag_size, \
        _max_rows(weight, indices, member, bag_size)


def _bag_of_position(n: int, starts):
    """Each position's bag: the last bag starting at or before it (PyTorch's CPU
    kernel counts positions past include_last_offset's end in the last bag)."""
    positions = OPS["arange"](0, n, dtype=starts.dtype)
    started = cast(positions.unsqueeze(0) >= starts.unsqueeze(1), dtypes.int64).sum([0])
    return (started - 1).clamp(0, max(starts.shape[0] - 1, 0))


def _max_rows(weight, indices, member, bag_size):
    """max mode: per bag and column, the weight row holding the maximum (0 when empty)."""
    with no_grad():
        rows = OPS["embedding"](weight.detach(), indices)                     # [n, D]
        masked = OPS["where"](member.unsqueeze(-1), rows.unsqueeze(0), float("-inf"))
        position = masked.argmax(1)                                         # [B, D]
        chosen = indices[position.reshape([-1])].reshape(list(position.shape))
        nonempty = (bag_size > 0).unsqueeze(-1)
        return OPS["where"](nonempty, chosen, OPS["zeros_like"](chosen))


__all__ = ["embedding_bag"]
