"""Shape ops as PyTorch's test_shape_ops.py pins them down: clamp (bounds, NaN, inverted
bounds), diagonal, flip / fliplr / flipud, rot90, movedim, narrow, unfold, roll, nonzero
and their errors. Each case is user code run with torch (the oracle) and ember, compared
on values, dtypes, shapes and strides (torch_suite_common.both / raises_both)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "frontend"))
from torch_suite_common import both, raises_both  # noqa: E402

NAN = float("nan")


def _m(L, *shape, dtype=None):
    n = 1
    for s in shape:
        n *= s
    return L.arange(n, dtype=dtype or L.float32).reshape(*shape)


def _v(t):
    """Shape, dtype and values: for zero-element results, whose strides ember does not
    keep (its storage reports none for them)."""
    return t.shape, t.dtype, t.tolist()


def _coords(t):
    """nonzero / argwhere: shape, dtype and values. PyTorch lays the coordinates out
    column-major, ember row-major (docs/compat.md)."""
    return tuple(_v(c) for c in t) if isinstance(t, tuple) else _v(t)


CASES = {
    # clamp
    "clamp_min_only": lambda L: L.clamp(L.tensor([-2., 0, 3]), min=0),
    "clamp_max_only": lambda L: L.clamp(L.tensor([-2., 0, 3]), max=1),
    "clamp_min_gt_max": lambda L: L.clamp(L.tensor([-2., 0, 3]), min=2, max=1),
    "clamp_nan_input": lambda L: L.clamp(L.tensor([NAN, 1., 5.]), 0, 2),
    "clamp_nan_bound": lambda L: L.clamp(L.tensor([0., 1., 5.]), min=NAN),
    "clamp_tensor_bounds": lambda L: L.clamp(_m(L, 2, 3), min=L.tensor([1., 2, 3]),
                                             max=L.tensor([[2.], [4]])),
    "clamp_tensor_bound_nan": lambda L: L.clamp(L.tensor([1., 2, 3]),
                                                min=L.tensor([NAN, 0, 5])),
    "clamp_int_int_bounds": lambda L: L.clamp(L.tensor([1, 5, 9]), 2, 6),
    "clamp_uint8_float_bound": lambda L: L.clamp(L.tensor([1, 5], dtype=L.uint8), max=2.5),
    "clamp_min_fn": lambda L: L.clamp_min(L.tensor([-1., 2]), 0.5),
    "clamp_max_fn": lambda L: L.clamp_max(L.tensor([-1., 2]), 0.5),
    "clip_alias": lambda L: L.clip(L.tensor([-1., 2]), -0.5, 0.5),
    "clamp_inplace": lambda L: L.tensor([-3., 0, 3]).clamp_(-1, 1),
    "clamp_empty": lambda L: L.clamp(L.empty(0, 3), 0, 1),
    "clamp_bool_tensor_min": lambda L: L.clamp(L.tensor([1, 2, 3]),
                                               min=L.tensor([2, 2, 2])),
    "clamp_out": lambda L: L.clamp(L.tensor([-3., 0, 3]), -1, 1, out=L.empty(3)),
    # diagonal
    "diagonal_offsets": lambda L: [_v(L.diagonal(_m(L, 3, 4), o))
                                    for o in (-3, -1, 0, 1, 3, 5)],
    "diagonal_dims": lambda L: L.diagonal(_m(L, 2, 3, 4), 0, 2, 0),
    "diagonal_negative_dims": lambda L: L.diagonal(_m(L, 2, 3, 4), 1, -1, -2),
    "diagonal_is_view_strides": lambda L: L.diagonal(_m(L, 4, 4), -1).stride(),
    "diagonal_method_kw": lambda L: _m(L, 3, 3).diagonal(offset=1, dim1=1, dim2=0),
    "diagonal_noncontig": lambda L: _m(L, 3, 4).t().diagonal(1),
    "diagonal_writes_through": lambda L: (lambda x: (x.diagonal().fill_(-1), x)[1])(
        _m(L, 3, 3)),
    "diag_embed": lambda L: L.diag_embed(_m(L, 2, 3), offset=1, dim1=0, dim2=2),
    "diag_1d_2d": lambda L: [L.diag(L.tensor([1, 2])), L.diag(_m(L, 3, 3), -1)],
    # flip
    "flip_dims": lambda L: L.flip(_m(L, 2, 3, 2), [0, 2]),
    "flip_negative_dims": lambda L: L.flip(_m(L, 2, 3), (-1,)),
    "flip_no_dims": lambda L: L.flip(_m(L, 2, 3), []),
    "flip_scalar": lambda L: L.flip(L.tensor(3.), [0]),
    "flip_empty": lambda L: L.flip(L.empty(0, 2), [0, 1]),
    "flip_transposed": lambda L: L.flip(_m(L, 2, 3).t(), [0]).contiguous(),
    "flip_bool": lambda L: L.flip(L.tensor([True, False, False]), [0]),
    "flip_int_method": lambda L: _m(L, 2, 2, dtype=L.int64).flip(1),
    "flip_expanded": lambda L: L.tensor([1, 2]).expand(3, 2).flip(0, 1),
    "fliplr_flipud": lambda L: [L.fliplr(_m(L, 2, 3)), L.flipud(_m(L, 2, 3)),
                                L.flipud(L.tensor([1, 2, 3]))],
    # rot90
    "rot90_k": lambda L: [L.rot90(_m(L, 2, 3), k) for k in (-5, -1, 0, 1, 2, 3, 4, 6)],
    "rot90_dims_reversed": lambda L: L.rot90(_m(L, 2, 3), 1, [1, 0]),
    "rot90_3d": lambda L: L.rot90(_m(L, 2, 3, 4), 1, [0, 2]),
    "rot90_negative_dims": lambda L: L.rot90(_m(L, 2, 3, 4), 1, [-1, -2]),
    # movedim
    "movedim_int": lambda L: L.movedim(_m(L, 2, 3, 4), 0, -1),
    "movedim_lists": lambda L: L.movedim(_m(L, 2, 3, 4, 5), [0, 1], [3, 0]),
    "movedim_tuples_negative": lambda L: L.movedim(_m(L, 2, 3, 4), (-1, -3), (0, 1)),
    "movedim_noop": lambda L: L.movedim(_m(L, 2, 3), [], []),
    "moveaxis_alias": lambda L: L.moveaxis(_m(L, 2, 3, 4), 1, 0),
    "movedim_scalar": lambda L: L.movedim(L.tensor(2.), 0, 0),
    "swapaxes_swapdims": lambda L: [L.swapaxes(_m(L, 2, 3, 4), 0, 2).stride(),
                                    _m(L, 2, 3).swapdims(0, 1)],
    # narrow
    "narrow_basic": lambda L: L.narrow(_m(L, 3, 4), 1, 1, 2),
    "narrow_negative_start": lambda L: L.narrow(_m(L, 3, 4), 0, -2, 2),
    "narrow_tensor_start": lambda L: L.narrow(_m(L, 3, 4), 1, L.tensor(2), 2),
    "narrow_zero_length": lambda L: _v(L.narrow(_m(L, 3, 4), 1, 4, 0)),
    "narrow_negative_dim": lambda L: _m(L, 3, 4).narrow(-1, 0, 1).stride(),
    "narrow_copy": lambda L: L.narrow_copy(_m(L, 3, 4), 1, 1, 2),
    # unfold
    "unfold_basic": lambda L: _m(L, 7).unfold(0, 2, 1),
    "unfold_step": lambda L: _m(L, 7).unfold(0, 3, 2),
    "unfold_2d_dim1": lambda L: _m(L, 3, 5).unfold(1, 2, 2),
    "unfold_size_equal": lambda L: _m(L, 4).unfold(0, 4, 1),
    "unfold_zero_size": lambda L: _m(L, 3).unfold(0, 0, 1),
    "unfold_scalar": lambda L: L.tensor(5.).unfold(0, 1, 1),
    "unfold_negative_dim_strides": lambda L: _m(L, 2, 6).unfold(-1, 3, 3).stride(),
    # roll
    "roll_flat": lambda L: L.roll(_m(L, 2, 3), 1),
    "roll_dim": lambda L: L.roll(_m(L, 2, 3), -1, 1),
    "roll_multi": lambda L: L.roll(_m(L, 2, 3, 2), (1, -2), (0, 1)),
    "roll_big_shift": lambda L: L.roll(_m(L, 5), 13),
    "roll_negative_big_shift": lambda L: L.roll(_m(L, 5), -13, 0),
    "roll_empty": lambda L: L.roll(L.empty(0, 2), 1, 0),
    "roll_transposed": lambda L: L.roll(_m(L, 3, 2).t(), 1, 1),
    "roll_same_dim_twice": lambda L: L.roll(_m(L, 4), (1, 1), (0, 0)),
    # nonzero / argwhere
    "nonzero_2d": lambda L: _coords(L.nonzero(L.tensor([[1, 0], [0, 3]]))),
    "nonzero_as_tuple": lambda L: _coords(L.nonzero(L.tensor([[1, 0], [0, 3]]), as_tuple=True)),
    "nonzero_scalar": lambda L: [_v(L.nonzero(L.tensor(3))), _v(L.nonzero(L.tensor(0)))],
    "nonzero_scalar_as_tuple": lambda L: L.nonzero(L.tensor(3), as_tuple=True),
    "nonzero_empty": lambda L: _v(L.nonzero(L.empty(0, 3))),
    "nonzero_nan_and_negzero": lambda L: _coords(L.nonzero(L.tensor([NAN, -0.0, 0.0, 1.0]))),
    "argwhere": lambda L: _coords(L.argwhere(L.tensor([[True, False], [True, True]]))),
    "count_nonzero_dims": lambda L: L.count_nonzero(_m(L, 2, 3) % 2, dim=(0, 1)),
    # misc shape
    "tensor_split_sections": lambda L: L.tensor_split(_m(L, 7), 3),
    "tensor_split_indices": lambda L: [_v(t) for t in
                                       L.tensor_split(_m(L, 2, 7), [1, 5, 9], dim=1)],
    "chunk_uneven": lambda L: L.chunk(_m(L, 5), 3),
    "split_sizes": lambda L: L.split(_m(L, 5, 2), [2, 3]),
    "unbind_dim1": lambda L: L.unbind(_m(L, 2, 3), 1),
    "tile_reps": lambda L: L.tile(_m(L, 2, 2), (2,)),
    "repeat_interleave_tensor": lambda L: L.repeat_interleave(L.tensor([1, 2]),
                                                              L.tensor([2, 3])),
    "squeeze_dims_tuple": lambda L: L.squeeze(L.zeros(1, 2, 1, 1), (0, 2)),
    "atleast_nd": lambda L: [L.atleast_1d(L.tensor(1.)), L.atleast_2d(L.tensor([1.])),
                             L.atleast_3d(_m(L, 2, 2)).shape],
    "trace_int": lambda L: L.trace(_m(L, 3, 3, dtype=L.int32)),
    "tril_triu_offsets": lambda L: [L.tril(_m(L, 3, 4), -1), L.triu(_m(L, 3, 4), 2),
                                    L.triu(_m(L, 2, 3, 3), -5)],
    # more edge cases (empty, 0-d, NaN, mixed dtypes)
    "flip_0d_empty_dims": lambda L: L.flip(L.tensor(2.), []),
    "roll_0d": lambda L: L.roll(L.tensor(2.), 1),
    "roll_negative_dim": lambda L: L.roll(_m(L, 2, 3), 1, -1),
    "diag_embed_neg_offset": lambda L: L.diag_embed(L.tensor([1., 2]), -1),
    "diagonal_empty": lambda L: L.diagonal(L.empty(0, 3)).shape,
    "narrow_dim_wrap": lambda L: L.narrow(_m(L, 3, 4), -2, 1, 1),
    "unfold_step_gt_size": lambda L: _m(L, 10).unfold(0, 2, 4),
    "unfold_3d_mid": lambda L: _m(L, 2, 5, 2).unfold(1, 3, 1).shape,
    "clamp_int_tensor_float_bound": lambda L: L.clamp(L.tensor([1, 5]), min=L.tensor([2.5, 2.5])),
    "clamp_min_max_tensor_nan":
        lambda L: L.clamp(L.tensor([1., 2]), min=L.tensor([0., 0.]), max=L.tensor([NAN, 1.])),
    "clamp_scalar_tensor_mixed": lambda L: L.clamp(L.tensor([1., 5.]), min=0, max=L.tensor(3.)),
    "movedim_all": lambda L: L.movedim(_m(L, 2, 3, 4), (0, 1, 2), (2, 0, 1)).stride(),
    "swapdims_same": lambda L: L.swapaxes(_m(L, 2, 3), 1, 1).stride(),
    "flatten_0d": lambda L: L.flatten(L.tensor(3.)),
    "unflatten_neg1": lambda L: L.unflatten(_m(L, 2, 6), 1, (-1, 2)),
    "take_along_dim_none": lambda L: L.take_along_dim(_m(L, 2, 3), L.tensor([5, 0])),
    "nonzero_static": lambda L: L.nonzero_static(L.tensor([0, 3, 0, 4]), size=3, fill_value=-1),
    # keyword / method forms, dtypes, keepdim
    "flip_3d_all": lambda L: L.flip(_m(L, 2, 2, 2), [0, 1, 2]),
    "roll_3dims": lambda L: L.roll(_m(L, 2, 2, 2), (1, 1, 1), (0, 1, 2)),
    "rot90_k_neg2_dims": lambda L: L.rot90(_m(L, 2, 3, 2), -2, (2, 0)),
    "diagonal_neg_offset_dims": lambda L: L.diagonal(_m(L, 3, 3, 2), -1, 0, 1),
    "diag_embed_3d": lambda L: L.diag_embed(_m(L, 2, 2)).shape,
    "clamp_tensor_min_only_broadcast": lambda L: L.clamp(_m(L, 2, 2), min=L.tensor([[2.], [1.]])),
    "clamp_max_lt_min_tensor": lambda L: L.clamp(_m(L, 3), min=L.tensor(2.), max=L.tensor(1.)),
    "clamp_half": lambda L: L.clamp(L.tensor([1., 70000.], dtype=L.float16), max=2.),
    "movedim_method": lambda L: _m(L, 2, 3, 4).movedim(-1, 0).shape,
    "narrow_method_tensor_start": lambda L: _m(L, 5).narrow(0, L.tensor(1), 2),
    "unfold_then_contig": lambda L: _m(L, 2, 5).unfold(1, 2, 1).contiguous(),
    "nonzero_bool_3d": lambda L: _coords(L.nonzero(L.tensor([[[True, False]], [[False, True]]]))),
    "nonzero_noncontig": lambda L: _coords(L.nonzero(_m(L, 2, 3).t() > 2)),
    "argwhere_float": lambda L: _coords(L.argwhere(L.tensor([0., 1.5, NAN]))),
    "nonzero_as_tuple_1d": lambda L: L.nonzero(L.tensor([0, 3, 4]), as_tuple=True),
    "nonzero_then_view": lambda L: L.nonzero(L.tensor([0, 1, 1])).view(-1),
    # take / put / splits / out= of nonzero
    "take":
        lambda L: L.take(_m(L, 2, 3), L.tensor([[0, 5], [-1, 2]])),
    "put":
        lambda L: L.put(_m(L, 2, 2), L.tensor([0, 3]), L.tensor([9., 8.])),
    "put_accumulate":
        lambda L: L.put(L.zeros(3), L.tensor([0, 0, 2]), L.tensor([1., 2., 3.]), accumulate=True),
    "diagonal_4d":
        lambda L: L.diagonal(_m(L, 2, 3, 3, 2), 1, 1, 2),
    "diag_embed_dims":
        lambda L: L.diag_embed(_m(L, 2, 3), 0, -2, -1).shape,
    "trace_nonsquare":
        lambda L: L.trace(_m(L, 2, 3)),
    "clamp_propagates_nans_tensor":
        lambda L: L.clamp(L.tensor([1., NAN]), L.tensor([NAN, 0.]), L.tensor([2., NAN])),
    "clamp_min_tensor_max_none":
        lambda L: L.clamp(L.tensor([1., 5.]), None, L.tensor([2., 2.])),
    "tensor_split_tensor_indices":
        lambda L: L.tensor_split(_m(L, 6), L.tensor([1, 4])),
    "tensor_split_tensor_sections":
        lambda L: L.tensor_split(_m(L, 7), L.tensor(3)),
    "hsplit_vsplit_dsplit":
        lambda L: [L.hsplit(_m(L, 2, 4), 2), L.vsplit(_m(L, 4, 2), [1]), L.dsplit(_m(L, 1, 1,
            4), 2)],
    "flip_large_dims_tuple_neg":
        lambda L: L.flip(_m(L, 2, 3, 4), (-1, -3)),
    "roll_tuple_one_dim_list":
        lambda L: L.roll(_m(L, 3, 2), [1], [0]),
    "unfold_noncontig":
        lambda L: _m(L, 4, 3).t().unfold(1, 2, 2).contiguous(),
    "rot90_noncontig":
        lambda L: L.rot90(_m(L, 3, 2).t(), 1).contiguous(),
    "narrow_copy_neg":
        lambda L: L.narrow_copy(_m(L, 4), 0, -2, 2),
    "select_neg_index":
        lambda L: _m(L, 3, 2).select(0, -1),
    "expand_as_movedim":
        lambda L: L.movedim(_m(L, 1, 3).expand(2, 3), 0, 1).stride(),
    "nonzero_out_values":
        lambda L: (lambda o: [_v(L.nonzero(L.tensor([0, 2, 3]), out=o)), _v(o)])(
            L.empty(0, dtype=L.long)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_shape_op(name):
    both(CASES[name])


ERRORS = {
    "clamp_no_bounds": (lambda L: L.clamp(L.tensor([1.])), RuntimeError,
                        ("At least one of 'min' or 'max' must not be None",)),
    "clamp_int_inplace_float_bound": (lambda L: L.tensor([1, 2]).clamp_(0.5),
                                      RuntimeError, ("can't be cast",)),
    "diagonal_same_dims": (lambda L: L.diagonal(_m(L, 3, 3), 0, 1, 1), RuntimeError,
                           ("diagonal dimensions cannot be identical",)),
    "diagonal_dim_out_of_range": (lambda L: L.diagonal(_m(L, 3, 3), 0, 0, 2), IndexError,
                                  ("Dimension out of range",)),
    "flip_repeated_dim": (lambda L: L.flip(_m(L, 2, 3), [0, 0]), RuntimeError,
                          ("appears multiple times",)),
    "flip_dim_out_of_range": (lambda L: L.flip(_m(L, 2, 3), [2]), IndexError,
                              ("Dimension out of range",)),
    "fliplr_1d": (lambda L: L.fliplr(L.tensor([1, 2])), RuntimeError, ("Input must be >= 2-d",)),
    "flipud_0d": (lambda L: L.flipud(L.tensor(1)), RuntimeError, ("Input must be >= 1-d",)),
    "rot90_one_dim": (lambda L: L.rot90(_m(L, 2, 3), 1, [0]), RuntimeError,
                      ("expected total rotation dims == 2",)),
    "rot90_same_dims": (lambda L: L.rot90(_m(L, 2, 3), 1, [1, 1]), RuntimeError,
                        ("expected rotation dims to be different",)),
    "rot90_1d": (lambda L: L.rot90(L.tensor([1, 2]), 1, [0, 0]), RuntimeError,
                 ("expected total dims >= 2",)),
    "rot90_dim_out_of_range": (lambda L: L.rot90(_m(L, 2, 3), 1, [0, 3]), IndexError,
                               ("Dimension out of range",)),
    "movedim_length_mismatch": (lambda L: L.movedim(_m(L, 2, 3), [0, 1], [0]),
                                RuntimeError, ("should contain the same number of dims",)),
    "movedim_repeated_source": (lambda L: L.movedim(_m(L, 2, 3), [0, 0], [0, 1]),
                                RuntimeError, ("repeated dim in `source`",)),
    "movedim_repeated_destination": (lambda L: L.movedim(_m(L, 2, 3), [0, 1], [1, 1]),
                                     RuntimeError, ("repeated dim in `destination`",)),
    "movedim_out_of_range": (lambda L: L.movedim(_m(L, 2, 3), 0, 2), IndexError,
                             ("Dimension out of range",)),
    "narrow_past_end": (lambda L: L.narrow(_m(L, 3, 4), 1, 3, 2), RuntimeError,
                        ("exceeds dimension size",)),
    "narrow_start_out_of_range": (lambda L: L.narrow(_m(L, 3, 4), 1, -5, 1), IndexError,
                                  ("out of range",)),
    "narrow_negative_length": (lambda L: L.narrow(_m(L, 3, 4), 1, 0, -1), RuntimeError,
                               ("must be non-negative",)),
    "narrow_0d": (lambda L: L.narrow(L.tensor(1.), 0, 0, 1), RuntimeError,
                  ("narrow() cannot be applied to a 0-dim tensor",)),
    "unfold_size_too_big": (lambda L: _m(L, 3).unfold(0, 4, 1), RuntimeError,
                            ("maximum size for tensor at dimension 0 is 3 but size is 4",)),
    "unfold_zero_step": (lambda L: _m(L, 3).unfold(0, 1, 0), RuntimeError,
                         ("step is 0 but must be > 0",)),
    "roll_shift_dim_mismatch": (lambda L: L.roll(_m(L, 2, 3), (1, 2), (0,)), RuntimeError,
                                ("shifts and dimensions must align",)),
    "roll_dim_out_of_range": (lambda L: L.roll(_m(L, 2, 3), 1, 2), IndexError,
                              ("Dimension out of range",)),
    "roll_0d_dim": (lambda L: L.roll(L.tensor(2.), 1, 0), IndexError,
        ()),
    "roll_list_no_dims_err": (lambda L: L.roll(_m(L, 4), [1, 2]), RuntimeError,
        ()),
    "rot90_0d_err": (lambda L: L.rot90(L.tensor(1.)), RuntimeError,
        ("expected total dims >= 2",)),
    "diagonal_0d_err": (lambda L: L.diagonal(L.tensor(1.)), IndexError,
        ("Dimension out of range",)),
    "diagonal_1d_err": (lambda L: L.diagonal(L.tensor([1.])), IndexError,
        ("Dimension out of range",)),
    "narrow_tensor_length_err":
        (lambda L: L.narrow(_m(L, 4), 0, L.tensor([1, 2]), 1), RuntimeError,
        ("start must be an 0-dim integral Tensor",)),
    "unfold_neg_size_err": (lambda L: _m(L, 3).unfold(0, -1, 1), RuntimeError,
        ("size is -1 but must be >= 0",)),
    "unfold_dim_out_of_range": (lambda L: _m(L, 3).unfold(1, 1, 1), IndexError,
        ("Dimension out of range",)),
    "clamp_complex_err": (lambda L: L.clamp(L.tensor([1j]), 0, 1), RuntimeError,
        ("clamp is not supported for complex types",)),
    "clamp_out_int":
        (lambda L: L.clamp(L.tensor([1., 5.]), 0, 2, out=L.empty(2, dtype=L.long)), RuntimeError,
        ()),
    "flip_dim_tuple_neg_dup_err": (lambda L: L.flip(_m(L, 2, 3), (0, -2)), RuntimeError,
        ("appears multiple times",)),
    "flatten_range_err": (lambda L: L.flatten(_m(L, 2, 3, 4), 2, 1), RuntimeError,
        ("start_dim cannot come after end_dim",)),
    "clamp_int8_big_bound":
        (lambda L: L.clamp(L.tensor([1, 100], dtype=L.int8), max=300), RuntimeError,
        ("value cannot be converted to type int8_t without overflow",)),
    "nonzero_out_as_tuple_err":
        (lambda L: L.nonzero(L.tensor([0, 2]), out=L.empty(0, dtype=L.long), as_tuple=True),
            RuntimeError,
         ("nonzero does not support the out kwarg when as_tuple is True",)),
    "nonzero_out_wrong_dtype_err":
        (lambda L: L.nonzero(L.tensor([0, 2]), out=L.empty(0, dtype=L.int32)), RuntimeError,
         ()),
    "count_nonzero_keepdim_err":
        (lambda L: L.count_nonzero(_m(L, 2, 2), 0, keepdim=True), TypeError,
         ()),
    "take_oob_err":
        (lambda L: L.take(_m(L, 2, 3), L.tensor([6])), IndexError,
         ()),
    "trace_3d_err":
        (lambda L: L.trace(_m(L, 2, 2, 2)), RuntimeError,
         ()),
    "clamp_tensor_none_none_err":
        (lambda L: L.clamp(L.tensor([1.]), None, None), RuntimeError,
         ("At least one of 'min' or 'max' must not be None",)),
    "tensor_split_zero_err":
        (lambda L: L.tensor_split(_m(L, 6), 0), RuntimeError,
         ()),
    "hsplit_uneven_err":
        (lambda L: L.hsplit(_m(L, 2, 3), 2), RuntimeError,
         ()),
    "select_oob_err":
        (lambda L: _m(L, 3, 2).select(0, 3), IndexError,
         ()),
}


def test_nonzero_out_resize_warns():
    both(lambda L: _v(L.nonzero(L.tensor([0, 2, 3]), out=L.empty(5, dtype=L.long))),
         warns="An output with one or more elements was resized")


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_shape_op_error(name):
    fn, kind, words = ERRORS[name]
    raises_both(fn, *words, kind=kind)
