"""Bad input: messages name the op, the shapes or dtypes, and the user's file:line."""
from __future__ import annotations

import pytest

import ember

HERE = "test_errors.py:"


def _raises(exc, fn, *needles):
    with pytest.raises(exc) as info:
        fn()
    msg = str(info.value)
    for n in needles:
        assert n in msg, f"{n!r} not in {msg!r}"
    return msg


def test_broadcast_mismatch_names_op_shapes_and_line():
    a, b = ember.zeros(2, 3), ember.zeros(4)
    msg = _raises(ember.ShapeError, lambda: a + b, "add", "[2, 3]", "[4]", HERE)
    assert "a + b" in msg                        # the user's source line is quoted
    _raises(ValueError, lambda: a * b, "mul", "[2, 3]", "[4]", HERE)
    _raises(ValueError, lambda: ember.where(a > 0, a, b), "where", "[2, 3]", "[4]")


def test_non_tensor_operand_is_a_type_error_naming_op_type_and_line():
    """torch: TypeError 'mul(): argument 'other' ... must be Tensor, not tuple'. An
    operator with such an operand is NotImplemented (Python's own TypeError), as torch's:
    `x * x.shape` goes on to tuple's repetition, which asks for an index."""
    x = ember.zeros(2, 3)
    _raises(TypeError, lambda: x * x.shape, "only integer tensors of a single element")
    _raises(TypeError, lambda: x + [1.0], "unsupported operand", "list")
    _raises(ember.DTypeError, lambda: ember.mul(x, (1, 2)), "mul", "tuple", HERE)
    _raises(ember.DTypeError, lambda: ember.add(x, [1.0, 2.0, 3.0]), "add", "list", HERE)
    assert (x * 2).tolist() == [[0.0] * 3] * 2        # numbers are still operands


def test_view_and_reshape_errors():
    x = ember.zeros(2, 3)
    _raises(ember.ShapeError, lambda: x.view(4), "view", "[4]", HERE)
    _raises(ember.ShapeError, lambda: x.reshape(5, -1), "reshape", HERE)
    _raises(ember.ShapeError, lambda: x.expand(4, 3), "expand", HERE)


def test_inplace_shape_and_cast_errors():
    x = ember.zeros(3)
    _raises(ember.ShapeError, lambda: x.add_(ember.zeros(2, 3)), "add_",
            "output with shape [3] doesn't match the broadcast shape [2, 3]", HERE)
    i = ember.zeros(2, dtype=ember.int64)
    _raises(ember.DTypeError, lambda: i.add_(1.5), "add_",
            "result type Float can't be cast to the desired output type Long", HERE)
    _raises(TypeError, lambda: i.mul_(ember.tensor([1.0, 2.0], dtype=ember.float64)),
            "result type Double can't be cast to the desired output type Long")
    b = ember.zeros(2, dtype=ember.bool)
    _raises(TypeError, lambda: b.add_(1), "result type Long can't be cast to the desired "
            "output type Bool")


def test_dim_out_of_range():
    x = ember.zeros(2, 3)
    _raises(IndexError, lambda: x.sum(2), "sum", "Dimension out of range", "[-2, 1]", "2",
            HERE)
    _raises(ember.EmberIndexError, lambda: x.transpose(0, 5), "transpose",
            "Dimension out of range")
    _raises(IndexError, lambda: x.unsqueeze(4), "unsqueeze", "Dimension out of range")
    _raises(IndexError, lambda: x.permute(0, 3), "permute")
    _raises(IndexError, lambda: x.size(2), "Dimension out of range")
    _raises(ValueError, lambda: x.permute(0, 0), "permute")


def test_scalar_conversion_errors():
    _raises(ValueError, lambda: ember.zeros(3).item(), "3 elements")
    _raises(RuntimeError, lambda: bool(ember.zeros(2)), "ambiguous")
    _raises(TypeError, lambda: len(ember.tensor(1.0)), "0-d")


def test_backward_through_freed_graph():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    _raises(ember.AutogradError, y.backward, "second time", "retain_graph=True", "mul")


def test_inplace_change_of_saved_tensor():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = x.sigmoid()
    z = y.sum() * y
    y.mul_(2)
    _raises(ember.AutogradError, lambda: z.sum().backward(),
            "modified by an inplace operation", "[2]", "version 1", "expected version 0")


def test_inplace_on_leaf_names_op_and_line():
    x = ember.tensor([1.0], requires_grad=True)
    _raises(ember.AutogradError, lambda: x.exp_(), "exp_", "leaf Variable", HERE)


def test_requires_grad_on_int_tensor():
    _raises(RuntimeError, lambda: ember.zeros(2, dtype=ember.int64).requires_grad_(),
            "floating point", "int64")
    _raises(RuntimeError, lambda: ember.tensor([1.0], requires_grad=True).numpy(),
            "detach")


def test_device_errors():
    _raises(ember.DeviceError, lambda: ember.zeros(2, device="cuda"), "cuda",
            "not available")
    _raises(RuntimeError, lambda: ember.zeros(2).to("cuda"), "cuda")


def test_device_mismatch_message():
    """Two tensors on different devices: the message names the op and both devices."""
    from ember.frontend.tensor import Storage, Tensor
    a = ember.zeros(2)
    fake = Tensor._make(a._array.copy(), Storage(a._array.copy(), device="cuda:0"))
    _raises(ember.DeviceError, lambda: a + fake, "add", "same device", "cpu", "cuda:0", HERE)


def test_factory_errors():
    _raises(TypeError, lambda: ember.zeros(2.5), "size")
    _raises(ValueError, lambda: ember.tensor([[1, 2], [3]]), "inconsistent")
    _raises(TypeError, lambda: ember.from_numpy([1, 2]), "np.ndarray")
    _raises(TypeError, lambda: ember.randint(5), "size")
    _raises(ember.DeviceError, lambda: ember.tensor(1.0).to("float128"), "device string",
            "float128")                                        # as torch: a str is a device
    _raises(ember.DTypeError, lambda: ember.tensor(1.0).to(dtype="float128"), "unknown dtype")


def test_grad_errors():
    x = ember.tensor([1.0], requires_grad=True)
    y = ember.tensor([1.0])
    _raises(RuntimeError, lambda: ember.autograd.grad((x * 2).sum(), y),
            "does not require grad")
    _raises(RuntimeError, lambda: ember.autograd.grad(y.sum(), x), "does not require grad")


def test_error_classes_are_builtin_subclasses():
    assert issubclass(ember.ShapeError, ValueError)
    assert issubclass(ember.DTypeError, TypeError)
    assert issubclass(ember.EmberIndexError, IndexError)
    assert issubclass(ember.AutogradError, RuntimeError)
    assert issubclass(ember.DeviceError, RuntimeError)
    for cls in (ember.ShapeError, ember.DTypeError, ember.AutogradError):
        assert issubclass(cls, ember.EmberError)


def test_at_user_line_points_here():
    from ember.ir.errors import at_user_line
    text = at_user_line()
    assert HERE in text and "test_at_user_line_points_here" in text
