"""QConfigMapping behaviour from PyTorch's TestQuantizeFx, run against torch.ao on the same
weights: precedence (global < object_type < module_name_regex < module_name <
module_name_object_type_order), None qconfigs leaving parts in float, regexes,
object_type on functions and methods, `_remove_qconfig`, to_dict / from_dict, and the
errors for bad configs."""
from __future__ import annotations

import operator

import numpy as np
import pytest
import torch

import ember
from qfx_suite_common import api, assert_same, batches, count, flow, node_kinds, tensor, twins

pytestmark = pytest.mark.filterwarnings("ignore")


def _linear_sub(lib):
    nn, F = lib.nn, lib.nn.functional

    class Sub(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(6, 6), nn.Linear(6, 6)

        def forward(self, x):
            return self.fc2(self.fc1(x))

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 6)
            self.sub = Sub()
            self.fc3 = nn.Linear(6, 6)

        def forward(self, x):
            x = self.fc(x)
            x = self.sub(x)
            x = x + x
            return self.fc3(x)
    return M()


SHAPE = (4, 6)


def _check(mapping, *, atol=1e-5):
    t, e = flow(_linear_sub, mapping, SHAPE)
    assert_same(t, e, atol=atol)
    return t, e


def test_global_qconfig_quantizes_every_pattern():
    t, e = _check(lambda lib, aq: aq.QConfigMapping().set_global(aq.default_qconfig))
    assert count(e[1], "call_function", "quantize_per_tensor") == 1
    assert count(e[1], "call_method", "dequantize") == 1


def test_none_for_a_module_name_keeps_that_submodule_in_float():
    t, e = _check(lambda lib, aq: aq.QConfigMapping().set_global(aq.default_qconfig)
                  .set_module_name("sub", None))
    kinds = node_kinds(e[1])
    assert ("call_module", "Linear") in kinds            # sub.fc1, sub.fc2 stay float
    assert count(e[1], "call_method", "dequantize") == 2


def test_global_none_and_object_type_on_a_function_quantizes_only_that_function():
    t, e = _check(lambda lib, aq: {"": None, "object_type": [(operator.add, aq.default_qconfig)]})
    assert count(e[1], "call_function", "quantize_per_tensor") >= 1
    assert not any("Quantized" in k[1] for k in node_kinds(e[1]) if k[0] == "call_module")


def test_object_type_on_a_module_class_overrides_global_none():
    _check(lambda lib, aq: aq.QConfigMapping().set_global(None)
           .set_object_type(lib.nn.Linear, aq.default_qconfig))


def test_module_name_regex_selects_submodules():
    _check(lambda lib, aq: aq.QConfigMapping().set_global(None)
           .set_module_name_regex("sub\\.fc.*", aq.default_qconfig))


def test_first_matching_regex_wins():
    _check(lambda lib, aq: aq.QConfigMapping().set_global(aq.default_qconfig)
           .set_module_name_regex("sub\\.fc1", None)
           .set_module_name_regex("sub\\..*", aq.default_qconfig))


def test_precedence_module_name_over_regex_over_object_type_over_global():
    def mapping(lib, aq):
        return (aq.QConfigMapping().set_global(None)
                .set_object_type(lib.nn.Linear, aq.default_qconfig)
                .set_module_name_regex("sub\\..*", None)
                .set_module_name("sub.fc2", aq.default_qconfig)
                .set_module_name("fc3", None))
    t, e = _check(mapping)
    names = {str(n.target): type(e[1].get_submodule(str(n.target))).__name__
             for n in e[1].graph.nodes if getattr(n.op, "value", n.op) == "call_module"}
    assert names["fc"] == names["sub.fc2"] == "Linear" and \
        "Quantized" in repr(e[1].fc) and "Quantized" in repr(e[1].sub.fc2)
    assert "Quantized" not in repr(e[1].sub.fc1) and "Quantized" not in repr(e[1].fc3)


def test_module_name_object_type_order_overrides_module_name():
    def mapping(lib, aq):
        return (aq.QConfigMapping().set_global(aq.default_qconfig)
                .set_module_name("sub", None)
                .set_module_name_object_type_order("sub", lib.nn.Linear, 1, aq.default_qconfig))
    t, e = _check(mapping)
    assert "Quantized" in repr(e[1].sub.fc2) and "Quantized" not in repr(e[1].sub.fc1)


def _functions(lib):
    nn, F = lib.nn, lib.nn.functional

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 1)
            self.w = nn.Parameter(lib.ones(4, 8))

        def forward(self, x):
            x = self.conv(x)
            y = x.sigmoid()
            x = x + y
            x = lib.mul(x, y)
            x = x.reshape(x.shape[0], -1)
            x = F.linear(x, self.w)
            return x.relu()
    return M()


@pytest.mark.parametrize("which", ["add", "mul", "linear", "sigmoid_method", "conv_module"])
def test_object_type_on_functions_and_methods(which):
    def mapping(lib, aq):
        target = {"add": operator.add, "mul": lib.mul, "linear": lib.nn.functional.linear,
                  "sigmoid_method": "sigmoid", "conv_module": lib.nn.Conv2d}[which]
        return aq.QConfigMapping().set_global(None).set_object_type(target, aq.default_qconfig)
    t, e = flow(_functions, mapping, (2, 2, 2, 2))
    # functional linear: ember observes its weight outside the graph, so the qparams
    # buffers after it are numbered apart from torch.ao's (docs/quantization.md)
    functional = which == "linear"
    assert_same(t, e, atol=1e-5, keys=not functional, params=not functional)
    if which == "sigmoid_method":       # a MinMax observer cannot quantize a fixed-qparams op
        assert count(e[1], "call_function", "quantize_per_tensor") == 0


def test_remove_qconfig_drops_the_qconfig_attributes_unless_asked_to_keep_them():
    for keep in (False, True):
        got = {}
        for lib in (torch, ember):
            aq, qfx, _ = api(lib)
            m = _linear_sub(lib).eval()
            x = (lib.randn(*SHAPE),)
            mapping = aq.get_default_qconfig_mapping("x86").set_module_name("sub.fc1", None)
            p = qfx.prepare_fx(m, mapping, x)
            assert p.sub.fc1.qconfig is None and p.fc.qconfig is not None   # set by prepare
            p(*x)
            q = qfx.convert_fx(p, _remove_qconfig=not keep)
            got[lib.__name__] = sorted(n for n, mod in q.named_modules() if hasattr(mod, "qconfig"))
        assert got["ember"] == got["torch"]
        assert got["ember"] == (["sub.fc1"] if keep else [])   # the module left in float


def test_qconfig_mapping_to_dict_and_from_dict_round_trip_like_torch():
    for lib in (torch, ember):
        aq = api(lib)[0]
        qc = aq.default_qconfig
        mapping = (aq.QConfigMapping().set_global(qc)
                   .set_object_type(lib.nn.Linear, None)
                   .set_object_type(operator.add, qc)
                   .set_module_name_regex("sub.*", qc)
                   .set_module_name("fc", None)
                   .set_module_name_object_type_order("sub", lib.nn.Linear, 0, qc))
        d = mapping.to_dict()
        assert list(d) == ["", "object_type", "module_name_regex", "module_name",
                           "module_name_object_type_order"]
        assert d["object_type"] == [(lib.nn.Linear, None), (operator.add, qc)]
        assert d["module_name_object_type_order"] == [("sub", lib.nn.Linear, 0, qc)]
        back = aq.QConfigMapping.from_dict(d)
        assert back.to_dict() == d
        assert back.global_qconfig is qc
        assert list(back.object_type_qconfigs) == [lib.nn.Linear, operator.add]


def test_a_bad_qconfig_mapping_type_is_an_error_in_both():
    for lib in (torch, ember):
        aq, qfx, _ = api(lib)
        with pytest.raises(Exception):
            qfx.prepare_fx(_linear_sub(lib).eval(), [("", aq.default_qconfig)],
                           (lib.randn(*SHAPE),))


def test_unknown_backend_name_is_an_error():
    for lib in (torch, ember):
        aq = api(lib)[0]
        with pytest.raises((AssertionError, ValueError, RuntimeError)) as info:
            aq.get_default_qconfig_mapping("no_such_backend")
        assert "no_such_backend" in str(info.value)


def test_prepare_fx_on_a_training_model_runs_unless_batchnorm_must_be_folded():
    """torch.ao prepares a training-mode model as it is, and fails only where a
    BatchNorm in training mode would have to be folded."""
    got = {}
    for lib in (torch, ember):
        aq, qfx, _ = api(lib)
        m = _linear_sub(lib).train()
        x = lib.randn(*SHAPE)
        p = qfx.prepare_fx(m, aq.get_default_qconfig_mapping("x86"), (x,))
        p(x)
        got[lib.__name__] = node_kinds(qfx.convert_fx(p))
        nn = lib.nn
        with pytest.raises(Exception) as info:
            qfx.prepare_fx(nn.Sequential(nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1)).train(),
                           aq.get_default_qconfig_mapping("x86"), (lib.randn(1, 1, 2, 2),))
        assert "eval" in str(info.value)
    assert got["ember"] == got["torch"]


def test_convert_fx_qconfig_mapping_with_none_leaves_those_nodes_float():
    """TestQuantizeFx.test_convert_qconfig_mapping: a mapping passed to convert_fx may set
    an observed node's qconfig to None; that node then stays float."""
    t_model, e_model = twins(_linear_sub)
    x = batches(SHAPE, n=2)
    got = {}
    for lib, m in ((torch, t_model), (ember, e_model)):
        aq, qfx, _ = api(lib)
        p = qfx.prepare_fx(m, aq.get_default_qconfig_mapping("x86"), (tensor(lib, x[0]),))
        p(tensor(lib, x[0]))
        q = qfx.convert_fx(p, qconfig_mapping=aq.get_default_qconfig_mapping("x86")
                           .set_module_name("sub.fc2", None))
        with torch.no_grad(), ember.no_grad():
            got[lib.__name__] = (node_kinds(q), q(tensor(lib, x[1])).numpy(),
                                 list(q.state_dict()))
    assert got["ember"][0] == got["torch"][0]
    assert ("call_module", "Linear") in got["ember"][0]
    assert got["ember"][2] == got["torch"][2]
    np.testing.assert_allclose(got["ember"][1], got["torch"][1], atol=1e-5)
