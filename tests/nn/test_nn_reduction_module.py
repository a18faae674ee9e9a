"""ember.nn._reduction against torch.nn._reduction (imported by loss code written for
PyTorch: `from torch.nn import _reduction as _Reduction`)."""
from __future__ import annotations

import warnings

import pytest

import ember.nn as nn
from ember.nn import _reduction as ember_reduction

torch = pytest.importorskip("torch")
from torch.nn import _reduction as torch_reduction  # noqa: E402


@pytest.mark.parametrize("name", ["none", "mean", "sum", "elementwise_mean"])
def test_get_enum(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ember_reduction.get_enum(name) == torch_reduction.get_enum(name)


def test_get_enum_rejects_unknown():
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        ember_reduction.get_enum("avg")
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        torch_reduction.get_enum("avg")


@pytest.mark.parametrize("size_average", [None, True, False])
@pytest.mark.parametrize("reduce", [None, True, False])
def test_legacy_pair(size_average, reduce):
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        name = ember_reduction.legacy_get_string(size_average, reduce)
    assert name == torch_reduction.legacy_get_string(size_average, reduce, emit_warning=False)
    assert any("size_average and reduce args will be deprecated" in str(w.message)
               for w in got)
    assert ember_reduction.legacy_get_enum(size_average, reduce, emit_warning=False) == \
        torch_reduction.legacy_get_enum(size_average, reduce, emit_warning=False)


def test_reachable_as_attribute():
    assert nn._reduction is ember_reduction
