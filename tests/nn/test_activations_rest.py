"""softsign, tanhshrink, mish in ember.nn.functional and their modules, against torch."""
import numpy as np
import pytest
import torch

import ember


@pytest.mark.parametrize("name,module", [("softsign", "Softsign"),
                                         ("tanhshrink", "Tanhshrink"), ("mish", "Mish")])
def test_functional_and_module_match_torch(name, module):
    x = np.random.default_rng(0).standard_normal((3, 4))
    want = getattr(torch.nn.functional, name)(torch.tensor(x))
    got = getattr(ember.nn.functional, name)(ember.tensor(x))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12)
    got_module = getattr(ember.nn, module)()(ember.tensor(x))
    np.testing.assert_allclose(got_module.numpy(), want.numpy(), rtol=1e-12)


@pytest.mark.parametrize("name", ["softsign", "tanhshrink"])
def test_integer_input_gives_float_as_torch(name):
    x = [-3, 0, 2]
    want = getattr(torch.nn.functional, name)(torch.tensor(x))
    got = getattr(ember.nn.functional, name)(ember.tensor(x))
    assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1]
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)


def test_mish_inplace_writes_input():
    x = ember.tensor([-1.0, 0.5, 2.0])
    out = ember.nn.functional.mish(x, inplace=True)
    want = torch.nn.functional.mish(torch.tensor([-1.0, 0.5, 2.0]))
    np.testing.assert_allclose(x.numpy(), want.numpy(), rtol=1e-6)
    assert out is x
