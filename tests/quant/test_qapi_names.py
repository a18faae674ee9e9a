"""torch.ao.quantization's public names exist in ember.ao.quantization and behave as
torch.ao's (the oracle) on the same data."""
import importlib
import warnings

import numpy as np
import pytest
import torch
import torch.ao.quantization as tq

import ember
import ember.ao.quantization as eq

pytestmark = pytest.mark.filterwarnings("ignore")

# TorchScript flows, 4-bit dtypes, sparse mappings and torchao's affine-quantization
# prototypes are not part of ember
NOT_IN_EMBER = {
    "convert_dynamic_jit", "convert_jit", "fuse_conv_bn_jit",
    "prepare_dynamic_jit", "prepare_jit", "quantize_dynamic_jit", "quantize_jit",
    "script_qconfig", "script_qconfig_dict", "default_embedding_fake_quant_4bit",
    "default_float_qparams_observer_4bit", "fuse_convtranspose_bn",
    "get_default_compare_output_module_list",
    "get_default_dynamic_sparse_quant_module_mappings",
    "get_default_static_sparse_quant_module_mappings", "get_fuser_method_new",
    "get_default_float_to_quantized_operator_mappings", "get_quantized_operator",
    "AffineQuantizedObserverBase", "Granularity", "MappingType", "PerAxis", "PerBlock",
    "PerGroup", "PerRow", "PerTensor", "PerToken", "TorchAODType", "ZeroPointDomain",
    "get_block_size"}


def test_public_names_exist():
    missing = [n for n in tq.__all__ if not hasattr(eq, n) and n not in NOT_IN_EMBER]
    assert missing == []
    now_present = sorted(n for n in NOT_IN_EMBER if hasattr(eq, n))
    assert now_present == [], "take these off NOT_IN_EMBER"
    importlib.import_module("ember.ao.quantization.fuser_method_mappings")


@pytest.mark.parametrize("name", ["default_histogram_fake_quant", "default_dynamic_fake_quant",
                                  "default_fused_act_fake_quant",
                                  "default_fused_per_channel_wt_fake_quant",
                                  "fused_wt_fake_quant_range_neg_127_to_127",
                                  "fused_per_channel_wt_fake_quant_range_neg_127_to_127"])
def test_default_fake_quants_match_torch(name):
    x = (np.random.default_rng(2).standard_normal((6, 10)) * 1.5 + 0.3).astype(np.float32)
    ours, theirs = getattr(eq, name)(), getattr(tq, name)()
    got = ours(ember.tensor(x)).detach().numpy()
    want = theirs(torch.tensor(x)).detach().numpy()
    np.testing.assert_array_equal(got, want)
    # torch.ao's calculate_qparams is its observer's, also for the fused fake quantize
    # (the fused kernel's own choice only shows in the forward output compared above)
    (es, ez), (ts, tz) = ours.calculate_qparams(), theirs.calculate_qparams()
    np.testing.assert_array_equal(es.numpy(), ts.numpy())
    np.testing.assert_array_equal(ez.numpy(), tz.numpy())


@pytest.mark.parametrize("name", ["default_histogram_observer",
                                  "default_symmetric_fixed_qparams_observer",
                                  "default_affine_fixed_qparams_observer"])
def test_default_observers_match_torch(name):
    x = np.random.default_rng(3).standard_normal((8, 8)).astype(np.float32)
    ours, theirs = getattr(eq, name)(), getattr(tq, name)()
    ours(ember.tensor(x))
    theirs(torch.tensor(x))
    (es, ez), (ts, tz) = ours.calculate_qparams(), theirs.calculate_qparams()
    np.testing.assert_array_equal(es.numpy(), ts.numpy())
    np.testing.assert_array_equal(ez.numpy(), tz.numpy())


def test_embedding_fake_quant_observes_like_torch():
    # (its forward rounds the float zero points: a known difference, see docs)
    x = np.random.default_rng(2).standard_normal((6, 10)).astype(np.float32)
    ours, theirs = eq.default_embedding_fake_quant(), tq.default_embedding_fake_quant()
    ours(ember.tensor(x))
    theirs(torch.tensor(x))
    (es, ez), (ts, tz) = ours.calculate_qparams(), theirs.calculate_qparams()
    np.testing.assert_array_equal(es.numpy(), ts.numpy())
    np.testing.assert_array_equal(ez.numpy(), tz.numpy())


def test_qconfig_dynamic():
    qc = eq.QConfigDynamic(weight=eq.default_weight_observer)
    tqc = tq.QConfigDynamic(weight=tq.default_weight_observer)
    assert qc.activation is ember.nn.Identity and tqc.activation is torch.nn.Identity
    assert qc.weight().dtype == ember.qint8
    with pytest.raises(ValueError):
        eq.QConfigDynamic(weight=eq.MinMaxObserver())


def test_recording_observer():
    obs = eq.default_debug_observer()
    a, b = ember.randn(2, 3), ember.randn(4)
    assert obs(a) is a and obs(b) is b
    values = obs.get_tensor_value()
    assert len(values) == 2 and np.array_equal(values[1].numpy(), b.numpy())
    with pytest.raises(Exception, match="RecordingObserver"):
        obs.calculate_qparams()


def _prepared(lib):
    q = importlib.import_module(f"{lib.__name__}.ao.quantization")
    qfx = importlib.import_module(f"{lib.__name__}.ao.quantization.quantize_fx")
    model = lib.nn.Sequential(lib.nn.Linear(4, 6), lib.nn.ReLU(), lib.nn.Linear(6, 2)).eval()
    x = lib.tensor(np.random.default_rng(5).standard_normal((8, 4)).astype(np.float32))
    return qfx.prepare_fx(model, q.get_default_qconfig_mapping("x86"), (x,)), x


def test_observer_state_dict_round_trip():
    e_prep, x = _prepared(ember)
    t_prep, _ = _prepared(torch)
    e_prep(x)
    saved = eq.get_observer_state_dict(e_prep)
    assert saved and all("activation_post_process" in k for k in saved)
    assert len(saved) == len(tq.get_observer_state_dict(t_prep))
    fresh, _ = _prepared(ember)                     # never calibrated
    eq.load_observer_state_dict(fresh, saved)
    for name, module in e_prep.named_modules():
        if isinstance(module, eq.ObserverBase):
            got = dict(fresh.named_modules())[name].calculate_qparams()
            want = module.calculate_qparams()
            np.testing.assert_array_equal(got[0].numpy(), want[0].numpy())
            np.testing.assert_array_equal(got[1].numpy(), want[1].numpy())
    del saved[next(iter(saved))]
    with pytest.raises(Exception, match="Missing keys"):
        eq.load_observer_state_dict(fresh, saved)


def test_module_class_lookups():
    assert eq.get_static_quant_module_class(ember.nn.Linear).__name__ == \
        tq.get_static_quant_module_class(torch.nn.Linear).__name__
    ref = eq.get_static_quant_module_class(ember.nn.Conv2d, is_reference=True)
    assert ref.__module__.endswith("reference") and ref._IS_REFERENCE
    assert eq.get_dynamic_quant_module_class(ember.nn.LSTM).__name__ == \
        tq.get_dynamic_quant_module_class(torch.nn.LSTM).__name__
    with pytest.raises(AssertionError):
        eq.get_static_quant_module_class(ember.nn.Softplus)
    assert eq.get_fuser_method((ember.nn.Conv2d, ember.nn.BatchNorm2d)) is eq.fuse_conv_bn
