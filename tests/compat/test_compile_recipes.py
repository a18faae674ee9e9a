"""torch.compile / torch.export / quantization scripts (tests/compat/compile_recipes.py)
run with torch and with `torch` imported as ember, compared value by value."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import compile_recipes as reference  # noqa: E402
from porting import torch_as_ember  # noqa: E402

with torch_as_ember("compile_recipes") as _ported:
    ported = _ported["compile_recipes"]

# per recipe: keys compared loosely (int8 and bfloat16 arithmetic differ in rounding)
LOOSE = {"bf16_autocast_training_step": {"loss": 3e-2},
         "fx_post_training_quantization": {"quantized": 0.06},
         "dynamic_quantization_linear": {"quantized": 0.05}}


def _same(got, want, loose: dict, path="result"):
    if isinstance(want, dict):
        assert set(got) == set(want), path
        for key in want:
            _same(got[key], want[key], loose, f"{path}[{key!r}]") if key not in loose else \
                np.testing.assert_allclose(got[key], want[key], atol=loose[key], err_msg=key)
    elif isinstance(want, np.ndarray):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=path)
    else:
        assert got == want, path


# torch's AOTInductor compiles C++ for a minute: its packaged result is checked against
# torch's eager model instead (test_aoti_package_matches_torch_eager)
NOT_RUN_IN_TORCH = {"aoti_package"}


def _torch_result(name):
    """The reference run; torch.compile set to run eagerly (same results, without
    Inductor's compile time: what is compared is what the program computes)."""
    with torch.compiler.set_stance("force_eager"):
        return reference.RECIPES[name]()


@pytest.mark.parametrize("name", sorted(set(reference.RECIPES) - NOT_RUN_IN_TORCH))
def test_recipe_matches_torch(name):
    _same(ported.RECIPES[name](), _torch_result(name), LOOSE.get(name, {}))


def test_aoti_package_matches_torch_eager():
    result = ported.recipe_aoti_package()
    with torch.no_grad():
        want = reference.seeded(reference.Scaled()).eval()(reference.data(2, 8)).numpy()
    np.testing.assert_allclose(result["packaged"], want, rtol=1e-5, atol=1e-6)


def test_exported_and_packaged_programs_equal_eager():
    result = ported.recipe_export_dynamic_batch_save_load()
    for key in ("module", "loaded", "decomposed"):
        np.testing.assert_allclose(result[key], result["eager"], rtol=1e-5, atol=1e-6)
    result = ported.recipe_aoti_package()
    np.testing.assert_allclose(result["packaged"], result["eager"], rtol=1e-5, atol=1e-6)


def test_quantized_models_stay_near_float():
    for result in (ported.recipe_fx_post_training_quantization(),
                   ported.recipe_dynamic_quantization_linear()):
        np.testing.assert_allclose(result["quantized"], result["float"], atol=0.1)
