"""Factories on their cached paths (issue 22) equal torch's, call after call: dtype,
values, strides, requires_grad and memory format; every call a fresh tensor; random
factories draw new values each call."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ember  # noqa: E402

CALLS = [
    ("zeros", (3,), {}), ("zeros", (2, 3), {"dtype": "int64"}), ("zeros", ((2, 0),), {}),
    ("zeros", ((),), {}), ("ones", (2, 3), {"dtype": "float64"}), ("ones", (4,), {"dtype": "bool"}),
    ("empty", (5,), {"dtype": "int32"}), ("full", ((2, 2), 1.5), {}),
    ("full", ((3,), 7), {}), ("full", ((3,), True), {}), ("full", ((2,), -0.0), {}),
    ("full", ((2,), 2 + 1j), {}), ("full", ((2,), 300), {"dtype": "int16"}),
    ("full", ((2, 3), 0), {"dtype": "float16"}),
    ("empty", (2, 3, 4, 5), {"memory_format": "channels_last"}),
    ("ones", (3,), {"requires_grad": True}), ("zeros_like", ("x",), {}),
    ("ones_like", ("x",), {"dtype": "int32"}), ("full_like", ("x", 2.5), {}),
    ("empty_like", ("x",), {}), ("zeros_like", ("xcl",), {}),
    ("arange", (10,), {}), ("arange", (1.0, 2.0, 0.25), {}), ("eye", (3,), {}),
    ("tensor", ([1.0, 2.0],), {}), ("scalar_tensor", (2.0,), {}),
]


def _resolve(lib, value):
    if value == "x":
        return lib.ones(2, 3)
    if value == "xcl":
        return lib.ones(2, 3, 4, 5).to(memory_format=lib.channels_last)
    return value


def _call(lib, name, args, kwargs):
    kw = {k: getattr(lib, v) if isinstance(v, str) else v for k, v in kwargs.items()}
    return getattr(lib, name)(*[_resolve(lib, a) for a in args], **kw)


@pytest.mark.parametrize("name, args, kwargs", CALLS, ids=lambda v: str(v))
def test_factory_equals_torch_every_call(name, args, kwargs):
    want = _call(torch, name, args, kwargs)
    if name.startswith("empty"):            # ember's empty is zero-filled
        want = want.zero_()
    made = [_call(ember, name, args, kwargs) for _ in range(4)]   # learn, then cached paths
    for got in made:
        assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1]
        assert tuple(got.shape) == tuple(want.shape)
        assert tuple(got.stride()) == tuple(want.stride())
        assert got.requires_grad == want.requires_grad
        np.testing.assert_array_equal(got.detach().numpy(), want.detach().numpy())
        if got.dtype.is_floating_point and got.numel():   # -0.0 kept
            np.testing.assert_array_equal(np.signbit(got.detach().numpy()),
                                          np.signbit(want.detach().numpy()))
    if made[0].numel():                     # fresh memory each call: writes stay local
        first = (0,) * made[0].ndim
        made[-2].detach().numpy()[first] = 5
        assert made[-1].detach().numpy()[first] == want.detach().numpy()[first]


def test_default_dtype_change_reaches_cached_factories():
    for _ in range(3):
        assert ember.zeros(2).dtype == ember.float32
        assert ember.full((2,), 1.5).dtype == ember.float32
    previous = ember.get_default_dtype()
    ember.set_default_dtype(ember.float64)
    try:
        assert ember.zeros(2).dtype == ember.float64
        assert ember.full((2,), 1.5).dtype == ember.float64
        assert ember.arange(1.0, 2.0).dtype == ember.float64
    finally:
        ember.set_default_dtype(previous)
    assert ember.zeros(2).dtype == ember.float32


@pytest.mark.parametrize("name", ["rand", "randn"])
def test_random_factories_draw_each_call(name):
    factory = getattr(ember, name)
    ember.manual_seed(0)
    first = [factory(4).numpy() for _ in range(4)]
    assert all(not np.array_equal(a, b) for a, b in zip(first, first[1:]))
    ember.manual_seed(0)
    again = [factory(4).numpy() for _ in range(4)]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


def test_factories_negative_size_still_raise_after_caching():
    for _ in range(3):
        ember.zeros(2)
    with pytest.raises(Exception, match="negative dimension"):
        ember.zeros(-1)
    with pytest.raises(Exception, match="negative dimension"):
        ember.full((2, -3), 1.0)
