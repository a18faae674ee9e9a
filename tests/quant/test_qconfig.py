"""FakeQuantize against torch.ao (forward, gradients, qparams over steps); QConfig and
QConfigMapping precedence; the backends' default mappings."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.ao.quantization as tq

import ember
import ember.ao.quantization as eq

pytestmark = pytest.mark.filterwarnings("ignore:.*reduce_range will be deprecated")


@pytest.mark.parametrize("name", ["default_fake_quant", "default_weight_fake_quant",
                                  "default_per_channel_weight_fake_quant",
                                  "default_fused_act_fake_quant",
                                  "default_fixed_qparams_range_0to1_fake_quant"])
def test_fake_quantize_modules_match_torch_over_steps(rng, name):
    e_fq, t_fq = getattr(eq, name)(), getattr(tq, name)()
    for step in range(4):
        x = (rng.standard_normal((4, 6)) * (1 + step)).astype(np.float32)
        g = rng.standard_normal((4, 6)).astype(np.float32)
        ex = ember.tensor(x, requires_grad=True)
        tx = torch.from_numpy(x).requires_grad_()
        ey, ty = e_fq(ex), t_fq(tx)
        ey.backward(ember.tensor(g))
        ty.backward(torch.from_numpy(g))
        np.testing.assert_array_equal(ey.detach().numpy(), ty.detach().numpy())
        np.testing.assert_array_equal(ex.grad.numpy(), tx.grad.numpy())
        np.testing.assert_array_equal(e_fq.scale.numpy(), t_fq.scale.numpy())
        np.testing.assert_array_equal(e_fq.zero_point.numpy(), t_fq.zero_point.numpy())
    e_fq.disable_fake_quant()
    x = ember.randn(4, 6)
    assert e_fq(x) is x


def test_qconfig_refuses_instances():
    with pytest.raises(ValueError, match="pass observer class"):
        eq.QConfig(activation=eq.MinMaxObserver(), weight=eq.default_weight_observer)


def test_qconfig_mapping_precedence():
    g, ot, rx, nm, order = (eq.QConfig(activation=eq.MinMaxObserver.with_args(quant_min=0,
                                                                              quant_max=i),
                                       weight=eq.default_weight_observer) for i in range(5))
    m = (eq.QConfigMapping().set_global(g).set_object_type(ember.nn.Linear, ot)
         .set_module_name_regex(r"block\..*", rx).set_module_name("block.fc2", nm)
         .set_module_name_object_type_order("block", ember.add, 1, order)
         .set_module_name("frozen", None))
    assert m.qconfig_for("head", ember.nn.Conv2d) is g
    assert m.qconfig_for("head", ember.nn.Linear) is ot
    assert m.qconfig_for("block.fc1", ember.nn.Linear) is rx
    assert m.qconfig_for("block.fc2", ember.nn.Linear) is nm
    assert m.qconfig_for("block.fc2.inner", ember.nn.Linear) is nm      # parent's name
    assert m.qconfig_for("block", ember.add, 1) is order
    assert m.qconfig_for("frozen.fc", ember.nn.Linear) is None
    again = eq.QConfigMapping.from_dict(m.to_dict())
    assert again.qconfig_for("block", ember.add, 1) is order
    assert again.qconfig_for("block.fc2", ember.nn.Linear) is nm


@pytest.mark.parametrize("backend", ["x86", "fbgemm", "qnnpack", "onednn"])
def test_default_qconfig_mappings_follow_torch(backend):
    for get, tget in ((eq.get_default_qconfig_mapping, tq.get_default_qconfig_mapping),
                      (eq.get_default_qat_qconfig_mapping, tq.get_default_qat_qconfig_mapping)):
        e_map, t_map = get(backend), tget(backend)
        e_obs = e_map.global_qconfig.activation()
        t_obs = t_map.global_qconfig.activation()
        e_w, t_w = e_map.global_qconfig.weight(), t_map.global_qconfig.weight()
        for e, t in ((e_obs, t_obs), (e_w, t_w)):
            assert type(e).__name__ == type(t).__name__
            assert (e.quant_min, e.quant_max) == (t.quant_min, t.quant_max)
            assert e.qscheme.name == str(t.qscheme).split(".")[1]
        t_names = {k if isinstance(k, str) else k.__name__ for k in t_map.object_type_qconfigs}
        e_names = {k if isinstance(k, str) else getattr(k, "__name__", getattr(k, "name", k))
                   for k in e_map.object_type_qconfigs}
        missing = t_names - e_names
        # ember has no ConvTranspose1d/3d, PReLU or Hardsigmoid modules yet
        assert missing <= {"ConvTranspose1d", "ConvTranspose3d", "conv_transpose1d",
                           "conv_transpose3d", "PReLU", "Hardsigmoid", "hardsigmoid"}, missing
    sig = eq.get_default_qconfig_mapping(backend).qconfig_for("", ember.nn.Sigmoid)
    assert sig.activation().calculate_qparams()[0].tolist() == [1.0 / 256.0]


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="backend: tpu not supported"):
        eq.get_default_qconfig_mapping("tpu")
