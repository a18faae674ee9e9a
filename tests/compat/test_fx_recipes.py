"""torch.fx tutorial-style programs (tests/compat/fx_recipes.py) run with torch and with
`torch` imported as ember: same numbers, same generated code, same node listings."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fx_recipes as reference  # noqa: E402
from porting import torch_as_ember  # noqa: E402

with torch_as_ember("fx_recipes") as _ported:
    ported = _ported["fx_recipes"]


def _same(got, want, path="result"):
    if isinstance(want, dict):
        assert set(got) == set(want), path
        for key in want:
            _same(got[key], want[key], f"{path}[{key!r}]")
    elif isinstance(want, np.ndarray):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5, err_msg=path)
    elif isinstance(want, str):
        assert got.replace("ember", "torch") == want, path
    else:
        assert got == want, path


@pytest.mark.parametrize("name", sorted(reference.RECIPES))
def test_recipe_matches_torch(name):
    _same(ported.RECIPES[name](), reference.RECIPES[name]())


def test_fused_models_equal_the_original():
    result = ported.recipe_conv_bn_fusion()
    for key in ("by_hand", "library"):
        np.testing.assert_allclose(result[key], result["reference"], rtol=1e-4, atol=1e-5)
    assert "bn" not in result["modules"]


def test_leaf_module_and_split_module_equal_eager():
    for result in (ported.recipe_custom_tracer_leaf_module(), ported.recipe_split_module()):
        np.testing.assert_allclose(result["out"], result["eager"], rtol=1e-6, atol=1e-6)
