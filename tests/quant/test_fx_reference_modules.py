"""convert_to_reference_fx swaps weighted modules for reference quantized modules, as
torch.ao does (same structure, names and outputs on the same weights), and takes a
BackendConfig's `reference_quantized_module`."""
import importlib

import numpy as np
import pytest
import torch

import ember
from ember.ao.nn.quantized import reference as nnqr
from ember.ao.quantization import backend_config as ebc

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _model(lib):
    return lib.nn.Sequential(lib.nn.Conv2d(3, 4, 3), lib.nn.ReLU(), lib.nn.Flatten(),
                             lib.nn.Linear(64, 5), lib.nn.Linear(5, 2)).eval()


def _reference(lib, model, x, **kw):
    q = importlib.import_module(f"{lib.__name__}.ao.quantization")
    qfx = importlib.import_module(f"{lib.__name__}.ao.quantization.quantize_fx")
    prepared = qfx.prepare_fx(model, q.get_default_qconfig_mapping("x86"), (lib.tensor(x),),
                              **kw)
    prepared(lib.tensor(x))
    return qfx.convert_to_reference_fx(prepared, **kw)


def test_reference_modules_match_torch():
    t_model, e_model = _model(torch), _model(ember)
    e_model.load_state_dict({k: ember.tensor(v.numpy()) for k, v in t_model.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((4, 3, 6, 6)).astype(np.float32)
    t_ref, e_ref = _reference(torch, t_model, x), _reference(ember, e_model, x)
    for name in ["0", "3", "4"]:
        t_mod, e_mod = t_ref.get_submodule(name), e_ref.get_submodule(name)
        assert type(e_mod).__name__ == type(t_mod).__name__
        for t_child, e_child in zip(t_mod.modules(), e_mod.modules()):
            assert e_child._get_name() == t_child._get_name()
    e_lin, t_lin = e_ref.get_submodule("3"), t_ref.get_submodule("3")
    np.testing.assert_array_equal(e_lin.get_weight().detach().numpy(),
                                  t_lin.get_weight().detach().numpy())
    np.testing.assert_allclose(e_ref(ember.tensor(x)).detach().numpy(),
                               t_ref(torch.tensor(x)).detach().numpy(), atol=1e-5)


class MyReferenceLinear(nnqr.Linear):
    pass


def test_backend_config_reference_module_is_used():
    native = ebc.get_native_backend_config()
    linear_dtypes = native.dtype_configs_for("linear")
    custom = ebc.get_native_backend_config().set_backend_pattern_config(
        ebc.BackendPatternConfig(ember.nn.Linear).set_dtype_configs(linear_dtypes)
        .set_reference_quantized_module(MyReferenceLinear))
    x = np.random.default_rng(1).standard_normal((4, 3, 6, 6)).astype(np.float32)
    ref = _reference(ember, _model(ember), x, backend_config=custom)
    assert type(ref.get_submodule("3")) is MyReferenceLinear
    assert type(ref.get_submodule("0")[0]) is nnqr.Conv2d


def test_unknown_backend_pattern_is_reported():
    config = ebc.get_native_backend_config().set_backend_pattern_config(
        ebc.BackendPatternConfig((ember.nn.Conv2d, ember.nn.GELU)).set_dtype_configs(
            ebc.get_native_backend_config().dtype_configs_for("add")))
    x = np.random.default_rng(2).standard_normal((4, 3, 6, 6)).astype(np.float32)
    with pytest.warns(UserWarning, match="GELU"):
        _reference(ember, _model(ember), x, backend_config=config)
