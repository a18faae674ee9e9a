"""The kernel description's reference semantics (codegen/kernel.evaluate)."""
import numpy as np
import pytest

from ember.codegen.kernel import (Affine, BufferSpec, Kernel, Load, Reduce, ReduceRef, Store,
                                  call, const, evaluate, strided_index, validate)
from ember.ir.dtypes import float32


def _softmax_kernel(n, d):
    idx = strided_index((d, 1))                     # x[i, j] at i*d + j
    x = Load("x", idx, float32)
    shifted = call("sub", x, ReduceRef("mx", float32))
    return Kernel("softmax", outer=(n,), inner=(d,),
                  inputs=[BufferSpec("x", float32, n * d)],
                  outputs=[BufferSpec("out", float32, n * d)],
                  stages=[Reduce("mx", "max", x, float32),
                          Reduce("den", "sum", call("exp", shifted), float32),
                          Store("out", idx, call("div", call("exp", shifted),
                                                 ReduceRef("den", float32)), over_inner=True)])


def test_softmax_rows(rng):
    x = rng.standard_normal((5, 7)).astype(np.float32)
    out = np.empty(35, np.float32)
    evaluate(_softmax_kernel(5, 7), {"x": x.ravel(), "out": out})
    e = np.exp(x - x.max(1, keepdims=True))
    np.testing.assert_allclose(out.reshape(5, 7), e / e.sum(1, keepdims=True), rtol=1e-6)


def test_pointwise_with_broadcast_and_transpose(rng):
    a = rng.standard_normal((3, 4)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    out = np.empty(12, np.float32)
    # out[j, i] = a[i, j] * b[j] + 1: loops over (i, j); out is stored transposed
    expr = call("add", call("mul", Load("a", Affine((4, 1)), float32),
                            Load("b", Affine((0, 1)), float32)), const(1.0, float32))
    kernel = Kernel("fma_t", outer=(3, 4), inputs=[BufferSpec("a", float32, 12),
                                                    BufferSpec("b", float32, 4)],
                    outputs=[BufferSpec("out", float32, 12)],
                    stages=[Store("out", Affine((1, 3)), expr)])
    evaluate(kernel, {"a": a.ravel(), "b": b, "out": out})
    np.testing.assert_allclose(out.reshape(4, 3), (a * b + 1).T, rtol=1e-6)


def test_sum_reduction_keeps_outer(rng):
    x = rng.standard_normal((4, 6)).astype(np.float32)
    out = np.empty(6, np.float32)
    kernel = Kernel("colsum", outer=(6,), inner=(4,), inputs=[BufferSpec("x", float32, 24)],
                    outputs=[BufferSpec("out", float32, 6)],
                    stages=[Reduce("s", "sum", Load("x", Affine((1, 6)), float32), float32),
                            Store("out", Affine((1, 0)), ReduceRef("s", float32))])
    evaluate(kernel, {"x": x.ravel(), "out": out})
    np.testing.assert_allclose(out, x.sum(0), rtol=1e-5)


@pytest.mark.parametrize("bad, message", [
    (lambda k: k.stages.insert(0, Store("x", Affine((1,)), const(0.0, float32))), "not an output"),
    (lambda k: k.stages.insert(0, Store("out", Affine((1,)), ReduceRef("zz", float32))),
     "used before"),
    (lambda k: k.stages.append(Store("out", Affine((0, 1)), Load("x", Affine((0, 1)), float32))),
     "inner variable"),
])
def test_validate_names_the_problem(bad, message):
    kernel = _softmax_kernel(2, 3)
    bad(kernel)
    with pytest.raises(ValueError, match=message):
        validate(kernel)


def test_unknown_scalar_op_is_refused():
    with pytest.raises(ValueError, match="unknown scalar op"):
        call("frobnicate", const(1.0, float32))
