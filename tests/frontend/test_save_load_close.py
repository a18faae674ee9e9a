"""ember.save/ember.load (pickle-free, torch.save's interface) and ember.allclose,
ember.isclose, ember.equal against torch's semantics."""
from __future__ import annotations

import collections
import io

import numpy as np
import pytest
import torch

import ember


def as_numpy(t):
    return np.asarray(t.detach().numpy()) if isinstance(t, ember.Tensor) else t.numpy()


# --- isclose / allclose / equal -----------------------------------------------------------------
CASES = [
    ([1.0, float("nan"), float("inf"), 2.0], [1.0 + 1e-9, float("nan"), float("inf"), 2.1], {}),
    ([1.0, float("nan"), -float("inf")], [1.0, float("nan"), float("inf")], {"equal_nan": True}),
    ([[1.0], [2.0]], [1.0, 2.0], {}),
    ([1.0, 2.0, 3.0], [1.05, 2.5, 3.0], {"rtol": 0.1, "atol": 0.0}),
    ([1, 2, 3], [1, 2, 4], {"rtol": 0.5, "atol": 0}),
]


@pytest.mark.parametrize("a,b,kwargs", CASES)
def test_isclose_allclose_match_torch(a, b, kwargs):
    ea, eb, ta, tb = ember.tensor(a), ember.tensor(b), torch.tensor(a), torch.tensor(b)
    np.testing.assert_array_equal(as_numpy(ember.isclose(ea, eb, **kwargs)),
                                  torch.isclose(ta, tb, **kwargs).numpy())
    assert ember.isclose(ea, eb, **kwargs).dtype is ember.bool
    assert ember.allclose(ea, eb, **kwargs) is torch.allclose(ta, tb, **kwargs)
    assert ea.allclose(eb, **kwargs) is ta.allclose(tb, **kwargs)


def test_isclose_errors_name_the_problem():
    with pytest.raises(ember.DTypeError, match="Float did not match Long"):
        ember.isclose(ember.tensor([1.0]), ember.tensor([1]))
    with pytest.raises(ember.DTypeError, match="Float did not match Double"):
        ember.allclose(ember.tensor([1.0]), ember.tensor([1.0], dtype=ember.float64))
    with pytest.raises(ValueError, match="rtol must be greater than or equal to zero"):
        ember.isclose(ember.ones(1), ember.ones(1), rtol=-1)
    with pytest.raises(ember.ShapeError):
        ember.allclose(ember.ones(2), ember.ones(3))


@pytest.mark.parametrize("a,b", [([1.0, 2.0], [1, 2]), ([1.0, 2.0], [[1.0, 2.0]]),
                                 ([float("nan")], [float("nan")]), ([1, 2], [1, 3]),
                                 ([True, False], [True, False])])
def test_equal_matches_torch(a, b):
    want = torch.equal(torch.tensor(a), torch.tensor(b))
    assert ember.equal(ember.tensor(a), ember.tensor(b)) is want
    assert ember.tensor(a).equal(ember.tensor(b)) is want


# --- save / load --------------------------------------------------------------------------------
def test_state_dict_round_trip_through_a_path(tmp_path):
    model = ember.nn.Sequential(ember.nn.Linear(3, 4), ember.nn.BatchNorm1d(4))
    path = tmp_path / "model.pt"
    ember.save(model.state_dict(), path)
    loaded = ember.load(path, map_location="cpu", weights_only=True)
    assert isinstance(loaded, collections.OrderedDict) and list(loaded) == \
        list(model.state_dict())
    fresh = ember.nn.Sequential(ember.nn.Linear(3, 4), ember.nn.BatchNorm1d(4))
    fresh.load_state_dict(loaded)
    x = ember.randn(5, 3)
    np.testing.assert_array_equal(as_numpy(fresh(x)), as_numpy(model(x)))


def test_nested_containers_dtypes_and_parameters_through_a_file_object():
    shared = ember.randn(2, 3)
    obj = {
        "f16": ember.randn(3).half(), "bf16": ember.randn(4).to(ember.bfloat16),
        "c128": ember.randn(2, dtype=ember.complex128), "i64": ember.arange(5),
        "bool": ember.tensor([True, False]), "scalar": ember.tensor(2.5),
        "param": ember.nn.Parameter(ember.randn(2)), "grad": ember.randn(2).requires_grad_(),
        "nested": [shared, (shared, {"k": None, 3: 1.5, "inf": float("inf")})],
        "meta": {"size": ember.Size([2, 3]), "dtype": ember.float16, "name": "x"},
    }
    buffer = io.BytesIO()
    ember.save(obj, buffer)
    buffer.seek(0)
    back = ember.load(buffer)
    for key in ("f16", "bf16", "c128", "i64", "bool", "scalar"):
        assert back[key].dtype is obj[key].dtype and back[key].shape == obj[key].shape
        np.testing.assert_array_equal(as_numpy(back[key]).astype(np.complex128),
                                      as_numpy(obj[key]).astype(np.complex128))
    assert isinstance(back["param"], ember.nn.Parameter) and back["param"].requires_grad
    assert back["grad"].requires_grad and not isinstance(back["grad"], ember.nn.Parameter)
    first, (second, inner) = back["nested"]
    assert first is second, "a tensor saved twice loads as one object"
    assert inner == {"k": None, 3: 1.5, "inf": float("inf")}
    assert back["meta"] == {"size": ember.Size([2, 3]), "dtype": ember.float16, "name": "x"}


def test_map_location_forms_are_accepted(tmp_path):
    path = tmp_path / "t.pt"
    ember.save([ember.ones(2)], path)
    for where in ("cpu", ember.device("cpu"), {"cpu": "cpu"}):
        (t,) = ember.load(path, map_location=where)
        assert t.device == ember.device("cpu")
    with pytest.raises(TypeError, match="map_location"):
        ember.load(path, map_location=3)


def test_unsupported_objects_and_corrupt_files_are_refused(tmp_path):
    with pytest.raises(TypeError, match="cannot save an object of type function"):
        ember.save({"x": lambda: 0}, tmp_path / "bad.pt")     # not data, not picklable
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ember.ArtifactError, match=f"{corrupt}: not a"):
        ember.load(corrupt)
    from safetensors.numpy import save_file
    plain = tmp_path / "plain.safetensors"
    save_file({"w": np.zeros(2, np.float32)}, str(plain))
    with pytest.raises(ember.ArtifactError, match="not a file written by ember.save"):
        ember.load(plain)
