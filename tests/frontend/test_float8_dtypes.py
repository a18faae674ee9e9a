"""torch's float8 dtypes: conversion to and from them with torch's rounding and
saturation, finfo, and torch's refusal to promote them."""
import numpy as np
import pytest
import torch

import ember

NAMES = ["float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz",
         "float8_e8m0fnu"]


@pytest.mark.parametrize("name", NAMES)
def test_conversion_matches_torch(name):
    values = np.array([1.5, -0.3, 300.0, 1e6, -1e6, 500.0, 0.017, 2.0 ** -9, 1e30],
                      np.float32)
    ours = ember.tensor(values).to(getattr(ember, name))
    theirs = torch.tensor(values).to(getattr(torch, name))
    assert ours.dtype.itemsize == theirs.element_size() == 1
    assert str(ours.dtype).split(".")[1] == name
    np.testing.assert_array_equal(ours.float().numpy(), theirs.float().numpy())


@pytest.mark.parametrize("name", ["float8_e4m3fn", "float8_e5m2"])
def test_finfo_and_promotion_match_torch(name):
    ours, theirs = ember.finfo(getattr(ember, name)), torch.finfo(getattr(torch, name))
    for field in ("max", "min", "eps", "tiny", "bits"):
        assert float(getattr(ours, field)) == float(getattr(theirs, field)), field
    for m in (ember, torch):
        with pytest.raises((ember.DTypeError, RuntimeError),
                           match="Promotion for Float8 Types is not supported"):
            m.promote_types(getattr(m, name), m.float32)
