"""torch.library API ember.library keeps (found running PyTorch's custom_op_db):
keyword-only arguments (schema, kernel, fake, setup_context with keyword_only_inputs,
no gradient for them), List[Tensor] outputs and their gradients as one list,
torch.types.Number annotations, register_vmap rules under ember.func.vmap (and a
per-example fallback without one), get_ctx() data-dependent sizes in eager, and
Library.define / register_fake(..., lib=)."""
from __future__ import annotations

from typing import List, Sequence

import numpy as np
import pytest
import torch

import ember
from ember import Tensor
from ember.types import Number


def _np(t):
    return t.detach().numpy()


def test_keyword_only_scalar_and_its_gradient():
    @ember.library.custom_op("ember_test_api::mul_kw", mutates_args=())
    def mul_kw(x: Tensor, *, scalar: float) -> Tensor:
        return ember.tensor(x.numpy() * scalar)

    @mul_kw.register_fake
    def _(x, *, scalar):
        return ember.empty_like(x)

    seen = {}

    def setup_context(ctx, inputs, keyword_only_inputs, output):
        seen["inputs"], ctx.scalar = inputs, keyword_only_inputs["scalar"]

    mul_kw.register_autograd(lambda ctx, g: g * ctx.scalar, setup_context=setup_context)
    assert "*, float scalar" in str(mul_kw.op.schema.text)
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = mul_kw(x, scalar=3.0)
    y.sum().backward()
    assert len(seen["inputs"]) == 1
    np.testing.assert_allclose(_np(y), [3.0, 6.0])
    np.testing.assert_allclose(_np(x.grad), [3.0, 3.0])
    compiled = ember.compile(lambda t: mul_kw(t, scalar=2.0))(ember.tensor([1.0, 4.0]))
    np.testing.assert_allclose(_np(compiled), [2.0, 8.0])


def test_list_output_gradients_arrive_as_one_list():
    @ember.library.custom_op("ember_test_api::split_copy", mutates_args=())
    def split_copy(x: Tensor, splits: Sequence[int], dim: int) -> List[Tensor]:
        return [ember.tensor(a) for a in np.split(x.numpy(), splits, axis=dim)]

    @split_copy.register_fake
    def _(x, splits, dim):
        return [t.clone() for t in ember.tensor_split(x, splits, dim)]

    def backward(ctx, grads):
        assert isinstance(grads, list)
        return ember.cat(grads, dim=ctx.dim), None, None

    def setup_context(ctx, inputs, output):
        ctx.dim = inputs[2]

    split_copy.register_autograd(backward, setup_context=setup_context)
    x = ember.arange(12.0).reshape(2, 6).requires_grad_()
    parts = split_copy(x, [2, 5], 1)
    assert [tuple(p.shape) for p in parts] == [(2, 2), (2, 3), (2, 1)]
    (parts[0].sum() * 2 + parts[2].sum()).backward()
    t = torch.arange(12.0).reshape(2, 6).requires_grad_()
    tp = torch.tensor_split(t, [2, 5], 1)
    (tp[0].sum() * 2 + tp[2].sum()).backward()
    np.testing.assert_allclose(_np(x.grad), t.grad.numpy())


def test_number_annotation_is_a_scalar():
    def f(x: Tensor, s: Number) -> Tensor:
        return x
    assert ember.library.infer_schema(f) == "(Tensor x, Scalar s) -> Tensor"


def test_register_vmap_rule_and_loop_fallback():
    calls = []

    @ember.library.custom_op("ember_test_api::square", mutates_args=())
    def square(x: Tensor) -> Tensor:
        return ember.tensor(x.numpy() ** 2)

    @square.register_fake
    def _(x):
        return ember.empty_like(x)

    def square_vmap(info, in_dims, x):
        calls.append((info.batch_size, in_dims))
        return square(x), in_dims[0]

    square.register_vmap(square_vmap)
    xs = ember.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    out = ember.func.vmap(square, in_dims=1)(xs)
    np.testing.assert_allclose(_np(out), (xs.numpy() ** 2).T)
    assert calls == [(2, (1,))]

    @ember.library.custom_op("ember_test_api::cube", mutates_args=())
    def cube(x: Tensor) -> Tensor:
        return ember.tensor(x.numpy() ** 3)

    @cube.register_fake
    def _(x):
        return ember.empty_like(x)

    np.testing.assert_allclose(_np(ember.func.vmap(cube)(xs)), xs.numpy() ** 3)


def test_data_dependent_fake_runs_eagerly_and_refuses_tracing():
    @ember.library.custom_op("ember_test_api::nonzero_rows", mutates_args=())
    def nonzero_rows(x: Tensor) -> Tensor:
        return ember.tensor(np.stack(np.nonzero(x.numpy()), axis=1))

    @nonzero_rows.register_fake
    def _(x):
        n = ember.library.get_ctx().create_unbacked_symint()
        return x.new_empty([n, x.dim()], dtype=ember.long)

    x = ember.tensor([0.0, 1.0, 0.0, 2.0])
    np.testing.assert_array_equal(_np(nonzero_rows(x)), [[1], [3]])
    with pytest.raises(RuntimeError, match="depends on the input's values"):
        ember.compile(nonzero_rows, fullgraph=True)(x)
    # without fullgraph the graph breaks there and the op runs eagerly
    np.testing.assert_array_equal(_np(ember.compile(nonzero_rows)(x)), [[1], [3]])


def test_library_define_and_register_fake_with_lib():
    lib = ember.library.Library("ember_test_api", "FRAGMENT")
    lib.define("twice(Tensor x) -> Tensor")
    ember.library.register_fake("ember_test_api::twice", lambda x: x.clone(), lib=lib)
    lib.impl("twice", lambda x: x * 2, "CompositeExplicitAutograd")
    out = ember.ops.ember_test_api.twice(ember.tensor([1.0, 3.0]))
    np.testing.assert_allclose(_np(out), [2.0, 6.0])
