"""Batching rules for vmap: one entry per op or op family (see passes/vmap.py).

A rule is `rule(op, bound, ctx) -> Batched | tuple | list`: `bound` holds the op's
arguments in schema order with `Batched` values where tensors go; the rule records the
batched computation (op calls on physical values) and says where the batch dim of each
result is. `rule_for(op)` picks the entry: RULES by name, then by tag (pointwise,
reduction), then `loop_rule` for ops in LOOPED, and an error for everything else.
The rules themselves live by family in vmap_rules_shape, vmap_rules_linalg and
vmap_rules_nn; the batch-dim helpers in vmap_batchdim.

Conventions: `front(b)` moves a batched value's batch dim to 0; `materialize(b, n)`
also expands an unbatched one; logical dims are the per-example dims, so a rule
wraps a user's `dim` against the logical rank and adds 1.
"""
from __future__ import annotations

from typing import Callable

from ember.ir.registry import OpDef, Tag

from .vmap import Batched, call
from .vmap_batchdim import arg_index, with_front_tensors
from .vmap_rules_linalg import (
    addmm_rule, einsum_rule, linear_rule, matmul_rule, matrix_batch_rule, multi_dot_rule,
    outer_rule, tensordot_rule)
from .vmap_rules_nn import (
    _class_loss_rank, _const_rank, _rank_from_weight, attention_rule, batch_norm_rule,
    conv_backward_input_rule, conv_backward_weight_rule, dropout_rule, embedding_rule,
    fold_rule, index_rule, layer_norm_rule, loop_rule, loss_rule, no_rule)
from .vmap_rules_random import RANDOM_RULES
from .vmap_rules_shape import (
    _dims, _dims_expand, dim_rule, expand_rule, expanded_pointwise_rule, fft_rule,
    flatten_rule, hstack_rule, masked_fill_rule, median_rule, permute_rule, pointwise_rule,
    reduction_rule, repeat_rule, reshape_rule, roll_rule, self_shaped_rule, squeeze_rule,
    t_rule, unary_rule, vstack_rule)


# --- the table ---------------------------------------------------------------------------
_pointwise_loss = loss_rule(expanded_pointwise_rule)
_class_loss = loss_rule(fold_rule(_class_loss_rank, shared=("weight",)))

RULES: dict[str, Callable] = {
    # shapes and views
    "view": reshape_rule, "reshape": reshape_rule, "view_as": reshape_rule,
    "reshape_as": reshape_rule, "expand": expand_rule, "expand_as": expand_rule,
    "permute": permute_rule, "t": t_rule, "repeat": repeat_rule, "tile": repeat_rule,
    "squeeze": squeeze_rule, "roll": roll_rule, "flatten": flatten_rule,
    "unsqueeze": dim_rule(result_extra_dims=1), "stack": dim_rule(True, 1),
    "cat": lambda op, bound, ctx: _dims_expand(op, _without_legacy_empties(bound), ctx),
    "hstack": hstack_rule, "vstack": vstack_rule,
    "gather": _dims_expand, "scatter": _dims_expand, "scatter_add": _dims_expand,
    "slice_scatter": _dims_expand, "select_scatter": _dims_expand,
    "diagonal_scatter": _dims_expand,
    "real": unary_rule, "imag": unary_rule, "clone": unary_rule, "contiguous": unary_rule,
    "detach": unary_rule,
    "pad": lambda op, bound, ctx: Batched(call(op, with_front_tensors(op, bound, ctx,
                                                                       False)), 0),
    "tril": lambda op, bound, ctx: Batched(call(op, with_front_tensors(op, bound, ctx,
                                                                        False)), 0),
    "masked_fill": masked_fill_rule, "copy": self_shaped_rule,
    "index": index_rule, "index_put": index_rule,
    # zeros_like & co.: the physical shape already has the batch dim where it is
    "zeros_like": unary_rule, "ones_like": unary_rule, "full_like": unary_rule,
    # reductions that are not plain dim-reductions
    "max": reduction_rule, "min": reduction_rule, "median": median_rule,
    "nanmedian": median_rule, "scatter_reduce": _dims_expand,
    # linear algebra
    "matmul": matmul_rule, "mm": matmul_rule, "bmm": matmul_rule, "mv": matmul_rule,
    "dot": matmul_rule, "outer": outer_rule, "addmm": addmm_rule, "baddbmm": addmm_rule,
    "linear": linear_rule, "einsum": einsum_rule, "tensordot": tensordot_rule,
    "linalg_multi_dot": multi_dot_rule, "lu_unpack": matrix_batch_rule,
    "geqrf": matrix_batch_rule,
    # conv and pooling: the batch joins N
    "conv1d": fold_rule(_const_rank(3), ("weight", "bias")),
    "conv2d": fold_rule(_const_rank(4), ("weight", "bias")),
    "conv_transpose1d": fold_rule(_const_rank(3), ("weight", "bias")),
    "conv_transpose2d": fold_rule(_const_rank(4), ("weight", "bias")),
    "convolution": fold_rule(_rank_from_weight, ("weight", "bias")),
    "convolution_backward_input": conv_backward_input_rule,
    "convolution_backward_weight": conv_backward_weight_rule,
    "max_pool2d": fold_rule(_const_rank(4)), "max_pool2d_with_indices": fold_rule(_const_rank(4)),
    "avg_pool2d": fold_rule(_const_rank(4)), "adaptive_avg_pool2d": fold_rule(_const_rank(4)),
    "max_pool2d_with_indices_backward": fold_rule(_const_rank(4)),
    "avg_pool2d_backward": fold_rule(_const_rank(4)),
    "adaptive_avg_pool2d_backward": fold_rule(_const_rank(4)),
    # normalization, attention, embedding
    "layer_norm": layer_norm_rule, "batch_norm": batch_norm_rule,
    "group_norm": fold_rule(_const_rank(2), ("weight", "bias")),
    "scaled_dot_product_attention": attention_rule,
    "embedding": embedding_rule, "one_hot": unary_rule,
    # losses
    "mse_loss": _pointwise_loss, "l1_loss": _pointwise_loss, "smooth_l1_loss": _pointwise_loss,
    "huber_loss": _pointwise_loss, "binary_cross_entropy": _pointwise_loss,
    "binary_cross_entropy_with_logits": _pointwise_loss, "kl_div": _pointwise_loss,
    "nll_loss": _class_loss, "cross_entropy": _class_loss,
    # randomness
    "dropout": dropout_rule, "native_dropout": dropout_rule,
    # no meaning per example
    "as_strided": no_rule("it addresses physical strides, which vmap changes"),
    "as_strided_scatter": no_rule("it addresses physical strides, which vmap changes"),
    "_batch_norm_running_stat": no_rule("it updates statistics shared by the whole batch"),
}
RULES["triu"] = RULES["tril"]
# complex views: view_as_real appends a dim (the batch dim stays put); view_as_complex
# drops the last one, so the batch dim moves to the front first
RULES["view_as_real"] = RULES["resolve_conj"] = RULES["resolve_neg"] = unary_rule


def _view_as_complex_rule(op, bound, ctx):
    """The batch dim goes to the front, and the (re, im) pairs must then be made adjacent
    again (a copy: the result no longer aliases the input, which vmap's outputs need not)."""
    (x,) = with_front_tensors(op, bound, ctx, False)
    return Batched(call(op, [x.contiguous()]), 0)


RULES["view_as_complex"] = _view_as_complex_rule


def _view_dtype_rule(op, bound, ctx):
    """view(dtype) may rescale the last dim: the batch dim goes to the front, the rest
    made contiguous (a copy when the layout was other, as for view_as_complex)."""
    x, dtype = with_front_tensors(op, bound, ctx, False)
    return Batched(call(op, [x.contiguous(), dtype]), 0)


RULES["view_dtype"] = _view_dtype_rule
# torch.special's aliases batch as the ops they name
RULES["special_softmax"] = RULES["special_log_softmax"] = _dims


def _leading_dims_rule(op, bound, ctx):
    """Ops that treat every dim before their last few alike (pixel_shuffle, the pooling
    index gather/scatter): the batch is one more leading dim."""
    return Batched(call(op, with_front_tensors(op, bound, ctx, True)), 0)


# conv, pooling and resampling beyond the 2-d ops above (issue 13): the batch joins N
RULES.update({
    "conv3d": fold_rule(_const_rank(5), ("weight", "bias")),
    "conv_transpose3d": fold_rule(_const_rank(5), ("weight", "bias")),
    "im2col": fold_rule(_const_rank(4)), "col2im": fold_rule(_const_rank(3)),
    "channel_shuffle": fold_rule(_const_rank(3)),
    "pixel_shuffle": _leading_dims_rule, "pixel_unshuffle": _leading_dims_rule,
    "max_pool_scatter": _leading_dims_rule, "max_pool_gather": _leading_dims_rule,
})
for _nd in (1, 2, 3):
    _linear = {1: "upsample_linear1d", 2: "upsample_bilinear2d", 3: "upsample_trilinear3d"}
    _names = [f"max_pool{_nd}d", f"max_pool{_nd}d_with_indices", f"avg_pool{_nd}d",
              f"adaptive_avg_pool{_nd}d", f"adaptive_max_pool{_nd}d",
              f"upsample_nearest{_nd}d", f"_upsample_nearest_exact{_nd}d", _linear[_nd]]
    if _nd > 1:             # 1-d pools differentiate through the 2-d backward ops
        _names += [f"max_pool{_nd}d_with_indices_backward", f"avg_pool{_nd}d_backward",
                   f"adaptive_avg_pool{_nd}d_backward", f"max_unpool{_nd}d"]
    for _name in _names:
        RULES.setdefault(_name, fold_rule(_const_rank(_nd + 2)))
for _name in ("upsample_bicubic2d", "_upsample_bilinear2d_aa", "_upsample_bicubic2d_aa"):
    RULES[_name] = fold_rule(_const_rank(4))
RULES.update(RANDOM_RULES)
RULES["copy_"] = self_shaped_rule      # x.copy_(src) into a batched x (fill_, zero_, normal_)

for _name in ("softmax", "log_softmax", "cumsum", "cumprod", "cummax", "cummin",
              "logcumsumexp", "sort", "argsort", "topk", "select", "slice", "narrow",
              "unfold", "unbind", "split", "chunk", "flip", "transpose", "swapaxes",
              "swapdims", "movedim", "diagonal", "unflatten", "kthvalue"):
    RULES[_name] = _dims

# quantization (ir/ops/quantize.py): per-tensor ones are elementwise
for _name in ("quantize_per_tensor", "dequantize", "fake_quantize_per_tensor_affine",
              "_fake_quantize_per_tensor_mask"):
    RULES[_name] = unary_rule

# Ops batched by `loop_rule` (one op per example, stacked): no faster rule written yet.
LOOPED = {
    "unfold_backward": "input_sizes would need the batch prepended",
    "pad_backward": "input_sizes would need the batch prepended",
    "linalg_lstsq": "its residuals output is empty or not depending on the batch rank",
    "linalg_tensorinv": "it splits the example's dims at `ind`; no leading batch dims",
    "linalg_tensorsolve": "it splits the example's dims by B's rank; no leading batch dims",
    "fractional_max_pool2d": "random_samples is per (N, C) plane; folding would reorder it",
    "fractional_max_pool3d": "random_samples is per (N, C) plane; folding would reorder it",
    **{f"{name}_backward": "input_sizes would need the batch folded into N" for name in (
        "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d",
        "_upsample_nearest_exact1d", "_upsample_nearest_exact2d", "_upsample_nearest_exact3d",
        "upsample_linear1d", "upsample_bilinear2d", "upsample_trilinear3d",
        "upsample_bicubic2d", "_upsample_bilinear2d_aa", "_upsample_bicubic2d_aa")},
    "isin": "each example may test against its own set of elements",
    "searchsorted": "a batched 1-D boundary would need expanding to the batch's rows",
    "nonzero_static": "coordinates are per example (the batch dim must not appear in them)",
    "histc": "its range defaults to each example's own min and max",
    "_histogramdd_bin_edges": "bin edges default to each example's own min and max",
    "_histogramdd_from_bin_tensors": "points are counted per example",
    "embedding_renorm": "each example renormalizes the rows its own indices refer to",
    "ctc_loss": "target and input lengths are per example (ragged alignments)",
    "ctc_loss_backward": "target and input lengths are per example (ragged alignments)",
    "quantize_per_channel": "its `axis` would need shifting past the batch dim",
    "fake_quantize_per_channel_affine": "its `axis` would need shifting past the batch dim",
    "_fake_quantize_per_channel_mask": "its `axis` would need shifting past the batch dim",
}


def _shared_index_rule(op, bound, ctx):
    """index_select/index_add: one index for the whole batch shifts dims; a different
    index per example (or a 0-d example) loops."""
    index = bound[arg_index(op, "index")]
    if index.is_batched or bound[0].logical_ndim == 0:    # a 0-d self has no dim to shift
        return loop_rule(op, bound, ctx)
    out = list(bound)
    out[arg_index(op, "index")] = index.value
    return _dims_expand(op, out, ctx) if op.name == "index_add" else _dims(op, out, ctx)


RULES["index_select"] = RULES["index_add"] = _shared_index_rule


def _without_legacy_empties(bound):
    """cat skips 1-d empty tensors (PyTorch's legacy rule): they neither join the result
    nor set the rank `dim` wraps against, so they leave the batched list too."""
    tensors = bound[0]
    kept = [t for t in tensors if tuple(getattr(t, "logical_shape", ())) != (0,)]
    if not kept or len(kept) == len(tensors):
        return bound
    return [kept] + list(bound[1:])


def _scalar_example_as_vector(rule: Callable, squeeze_result: bool) -> Callable:
    """vander and unfold read a 0-d example as a 1-element vector: run the rule on that
    vector (unfold's result then loses the window dim a vector's has)."""
    def wrapped(op, bound, ctx):
        i = op.schema.tensor_arg_indices[0]
        if bound[i].logical_ndim != 0:
            return rule(op, bound, ctx)
        out = list(bound)
        out[i] = Batched(with_front_tensors(op, bound, ctx, False)[i].unsqueeze(1), 0)
        result = rule(op, out, ctx)
        return Batched(result.value.squeeze(1), 0) if squeeze_result else result
    return wrapped


RULES["unfold"] = _scalar_example_as_vector(_dims, squeeze_result=True)
RULES["linalg_vander"] = _scalar_example_as_vector(matrix_batch_rule, squeeze_result=False)


class _VmapInfo:
    """The `info` a custom op's vmap rule gets (torch.library.register_vmap)."""

    def __init__(self, ctx):
        self.batch_size, self.randomness = ctx.batch_size, ctx.randomness


def custom_op_rule(op, bound, ctx):
    """A custom op: its register_vmap rule, called as torch calls it (positional args
    with one in_dim each, None where unbatched; keyword-only args unbatched) on the
    physical values; without a rule, one call per example."""
    rule = getattr(op.custom, "_vmap", None)
    if rule is None:
        return loop_rule(op, bound, ctx)
    args, in_dims, kwargs = [], [], {}
    for param, value in zip(op.schema.args, bound):
        if param.kwarg_only:
            kwargs[param.name] = _physical(value)
            continue
        args.append(_physical(value))
        in_dims.append(_bdims(value))
    out, out_dims = rule(_VmapInfo(ctx), tuple(in_dims), *args, **kwargs)
    return _batched_out(out, out_dims)


def _physical(value):
    if isinstance(value, Batched):
        return value.value
    if isinstance(value, (list, tuple)):
        return type(value)(_physical(v) for v in value)
    return value


def _bdims(value):
    if isinstance(value, Batched):
        return value.bdim
    if isinstance(value, (list, tuple)) and any(isinstance(v, Batched) for v in value):
        return [v.bdim if isinstance(v, Batched) else None for v in value]
    return None


def _batched_out(out, out_dims):
    if isinstance(out, (list, tuple)):
        dims = out_dims if isinstance(out_dims, (list, tuple)) else [out_dims] * len(out)
        items = [_batched_out(o, d) for o, d in zip(out, dims)]
        return list(items) if isinstance(out, list) else tuple(items)
    return Batched(out, out_dims) if hasattr(out, "shape") else out


_DATA_DEPENDENT = no_rule("its output shape depends on each example's values, so the "
                          "examples' results cannot be stacked")


def rule_for(op: OpDef) -> Callable:
    """The batching rule of `op` (see the module docstring for the lookup order)."""
    if op.name in RULES:
        return RULES[op.name]
    if getattr(op, "custom", None) is not None:      # ember.library.custom_op
        return custom_op_rule
    if op.name in LOOPED:
        return loop_rule
    if Tag.INPLACE in op.tags:
        if Tag.POINTWISE in op.tags:
            return self_shaped_rule
        return no_rule("in-place op; vmap only batches in-place pointwise ops")
    if Tag.DYNAMIC_SHAPE in op.tags:
        return _DATA_DEPENDENT
    if Tag.POINTWISE in op.tags:
        return unary_rule if _single_tensor(op) else pointwise_rule
    if Tag.REDUCTION in op.tags:
        return reduction_rule
    if Tag.FFT in op.tags:
        return fft_rule
    if op.name.startswith("linalg_"):
        return matrix_batch_rule
    return no_rule("none is registered (add one to ember/passes/vmap_rules.py)")


def _single_tensor(op: OpDef) -> bool:
    return len(op.schema.tensor_arg_indices) == 1
