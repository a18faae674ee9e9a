"""TestQuantizeFx's qconfig and flow cases with their own small models (qconfig None,
module type, function, regex, precedence, module_name_object_type_order over nested
modules, call_method / call_function qconfigs inside submodules, qconfig after None,
return None, dict input and output, the attention corner case, observer state_dict
save / load, standalone modules with float and quantized interfaces), run through
torch.ao and ember.ao and compared node for node and by value."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from qfx_suite_common import api, batches, node_kinds, tensor, twins, to_numpy

pytestmark = pytest.mark.filterwarnings("ignore")


def _both(make, mapping, shape, *, prepare=None, inputs=None, qat=False, seed=0):
    """{lib: (prepared kinds, converted kinds, output)} for torch and ember."""
    t_model, e_model = twins(make, seed)
    data = batches(shape, n=2, seed=seed + 1)
    inputs = inputs or (lambda lib, arr: (tensor(lib, arr),))
    got = {}
    for lib, model in ((torch, t_model), (ember, e_model)):
        aq, qfx, cc = api(lib)
        if qat:
            model.train()
        prep = qfx.prepare_qat_fx if qat else qfx.prepare_fx
        p = prep(model, mapping(lib, aq), inputs(lib, data[0]),
                 prepare_custom_config=prepare(lib, aq, cc) if prepare else None)
        p(*inputs(lib, data[0]))
        prepared_kinds = node_kinds(p)
        if qat:
            p.eval()
        q = qfx.convert_fx(p)
        with torch.no_grad(), ember.no_grad():
            y = q(*inputs(lib, data[1]))
        got[lib.__name__] = (prepared_kinds, node_kinds(q), None if y is None else to_numpy(y), q)
    return got["torch"], got["ember"]


def _check(t, e, atol=1e-5, prepared=True):
    if prepared:
        assert e[0] == t[0]
    assert e[1] == t[1]
    if t[2] is not None:
        np.testing.assert_allclose(np.asarray(e[2]), np.asarray(t[2]), atol=atol)


def _two_convs(lib, transpose=False):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(1, 1, 1), nn.Conv2d(1, 1, 1)

        def forward(self, x):
            x = self.conv1(x)
            if transpose:
                x = x.transpose(2, 3)
            return self.conv2(x)
    return M()


IMG = (2, 1, 3, 3)


@pytest.mark.parametrize("name,mapping", [
    ("qconfig_none", lambda lib, aq: {"": aq.default_qconfig, "module_name": [("conv2", None)]}),
    ("module_type", lambda lib, aq: {"object_type": [(lib.nn.Conv2d, aq.default_qconfig)]}),
    ("module_name_regex", lambda lib, aq: {"module_name_regex": [("conv*", aq.default_qconfig)]}),
    ("none_first", lambda lib, aq: {"": aq.default_qconfig, "module_name": [("conv1", None)]}),
])
def test_two_conv_qconfigs(name, mapping):
    _check(*_both(lambda lib: _two_convs(lib, transpose=name == "none_first"), mapping, IMG))


def test_qconfig_function_on_two_inputs():
    def make(lib):
        class M(lib.nn.Module):
            def forward(self, x, y):
                return x + y
        return M()
    t, e = _both(make, lambda lib, aq: {"object_type": [(__import__("operator").add, aq.default_qconfig)]},
                 IMG, inputs=lambda lib, a: (tensor(lib, a), tensor(lib, a * 0.5)))
    _check(t, e)
    assert ("call_function", "quantized_add") in e[1]


def test_qconfig_qat_module_type():
    def make(lib):
        nn = lib.nn

        class LinearRelu(nn.Sequential):
            def __init__(self):
                super().__init__(nn.Linear(5, 5), nn.ReLU())

        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.lin_relu, self.linear = LinearRelu(), nn.Linear(5, 5)

            def forward(self, x):
                return self.linear(self.lin_relu(x))
        return M()

    def mapping(lib, aq):
        return {"": None, "object_type": [(lib.nn.Linear, aq.default_qat_qconfig),
                                          (lib.nn.ReLU, aq.default_qat_qconfig)]}
    t, e = _both(make, mapping, (5, 5), qat=True)
    _check(t, e, atol=1e-4, prepared=False)
    assert [k[1] for k in e[1] if k[0] == "call_module"] == ["LinearReLU", "Linear"]


def test_qconfig_precedence_sets_each_prepared_modules_qconfig():
    def make(lib):
        nn = lib.nn

        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.linear, self.conv = nn.Linear(1, 1), nn.Conv2d(1, 1, 1)
                self.module_conv1, self.module_conv2 = nn.Conv2d(1, 1, 1), nn.Conv2d(1, 1, 1)

            def forward(self, x):
                x = self.linear(x)
                x = self.conv(x)
                x = self.module_conv1(x)
                return self.module_conv2(x)
        return M()
    for lib in (torch, ember):
        aq, qfx, _ = api(lib)
        qconfig_dict = {"": aq.default_qconfig,
                        "object_type": [(lib.nn.Conv2d, aq.default_dynamic_qconfig)],
                        "module_name_regex": [("module_conv*", aq.float16_dynamic_qconfig)],
                        "module_name": [("module_conv2", aq.default_qat_qconfig)]}
        p = qfx.prepare_fx(make(lib).eval(), qconfig_dict, (lib.randn(1, 1, 1, 1),))
        for name, want in (("linear", aq.default_qconfig), ("conv", aq.default_dynamic_qconfig),
                           ("module_conv1", aq.float16_dynamic_qconfig),
                           ("module_conv2", aq.default_qat_qconfig)):
            got = getattr(p, name).qconfig
            for part in ("activation", "weight"):       # torch.ao wraps the qconfig
                assert _factory(getattr(got, part)) is _factory(getattr(want, part)), name


def _factory(constructor):
    """The observer class behind a qconfig's activation / weight constructor."""
    while hasattr(constructor, "p") or hasattr(constructor, "func"):
        constructor = getattr(constructor, "p", None) or constructor.func
    return constructor


def _nested_order(lib):
    nn = lib.nn

    def body(self, x):
        x = self.fc2(self.fc1(x))
        x = lib.add(x, x)
        return lib.add(x, x)

    class M1(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(1, 1), nn.Linear(1, 1)

        def forward(self, x):
            return body(self, x)

    class M2(M1):
        def __init__(self):
            super().__init__()
            self.m1 = M1()

        def forward(self, x):
            return self.m1(body(self, x))

    class M3(M1):
        def __init__(self):
            super().__init__()
            self.m2 = M2()

        def forward(self, x):
            return self.m2(body(self, x))
    return M3()


def test_module_name_object_type_order_in_nested_modules():
    def mapping(lib, aq):
        qc = aq.default_qconfig
        return {"module_name_object_type_order": [
            ("", lib.nn.Linear, 0, qc), ("", lib.add, 0, qc),
            ("m2", lib.nn.Linear, 1, qc), ("m2", lib.add, 1, qc),
            ("m2.m1", lib.nn.Linear, 0, qc), ("m2.m1", lib.add, 0, qc)]}
    _check(*_both(_nested_order, mapping, (1, 1, 1, 1)))


def test_module_name_object_type_order_overrides_global():
    def mapping(lib, aq):
        return {"": aq.default_qconfig, "module_name_object_type_order": [
            ("", lib.nn.Linear, 1, None), ("", lib.add, 1, None)]}
    _check(*_both(_nested_order, mapping, (1, 1, 1, 1)))


def _call_method_sub(lib):
    nn = lib.nn

    class Sub(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 1)

        def forward(self, x):
            return self.conv(x.transpose(2, 3)).transpose(2, 3)

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.sub, self.conv1, self.conv2 = Sub(), nn.Conv2d(1, 1, 1), nn.Conv2d(1, 1, 1)

        def forward(self, x):
            return self.conv2(self.sub(self.conv1(x))).transpose(2, 3)
    return M()


@pytest.mark.parametrize("which", ["sub_none", "only_sub"])
def test_qconfig_for_call_method_follows_the_enclosing_module(which):
    def mapping(lib, aq):
        if which == "sub_none":
            return {"": aq.default_qconfig, "module_name": [("sub", None)]}
        return {"": None, "module_name": [("sub", aq.default_qconfig)]}
    _check(*_both(_call_method_sub, mapping, IMG))


def test_qconfig_for_call_function_inside_submodules():
    def make(lib):
        nn = lib.nn

        class Linear(nn.Module):
            def __init__(self):
                super().__init__()
                self.w = nn.Parameter(lib.ones(5, 5) * 0.1)
                self.b = nn.Parameter(lib.zeros(5))

            def forward(self, x):
                return nn.functional.linear(x, self.w, self.b)

        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.mods1 = nn.Sequential(Linear(), Linear())
                self.mods2 = Linear()

            def forward(self, x):
                return self.mods2(self.mods1(x))
        return M()
    t, e = _both(make, lambda lib, aq: {"": aq.default_qconfig, "module_name": [("mods2", None)]},
                 (5, 5))
    _check(t, e, prepared=False)   # ember observes functional weights outside the graph
    assert [k[1] for k in e[1]] == ["quantize_per_tensor", "quantized_linear", "quantized_linear",
                                    "dequantize", "linear"]


def test_return_none_and_dict_input_output():
    def none_model(lib):
        class M(lib.nn.Module):
            def forward(self, x):
                pass
        return M()
    t, e = _both(none_model, lambda lib, aq: {"": aq.default_qconfig}, (1,))
    assert e[2] is None

    def dict_model(lib):
        class M(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = lib.nn.Conv2d(1, 1, 1)

            def forward(self, x):
                return {"output": self.conv(x["input"])}
        return M()
    got = {}
    t_model, e_model = twins(dict_model)
    x = batches((1, 1, 2, 2), n=1)[0]
    for lib, m in ((torch, t_model), (ember, e_model)):
        aq, qfx, _ = api(lib)
        p = qfx.prepare_fx(m, {"": aq.default_qconfig}, ({"input": tensor(lib, x)},))
        p({"input": tensor(lib, x)})
        q = qfx.convert_fx(p)
        got[lib.__name__] = q({"input": tensor(lib, x)})["output"].detach().numpy()
    np.testing.assert_allclose(got["ember"], got["torch"], atol=1e-5)


def test_attention_corner_case_runs_like_torch():
    def make(lib):
        class M(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = lib.nn.Conv2d(1, 1, 1)

            def forward(self, x):
                x = self.conv(x)
                q, k, v = x.chunk(3, dim=0)
                q = q.contiguous().view(-1, 1).transpose(0, 1)
                k = k.contiguous().view(-1, 1).transpose(0, 1)
                v = v.contiguous().view(-1, 1).transpose(0, 1)
                r = lib.mm(k, v)
                return q * k + r
        return M()
    t, e = _both(make, lambda lib, aq: {"": None, "object_type": [(lib.nn.Conv2d, aq.default_qconfig)]},
                 (3, 1, 1, 1))
    _check(t, e, prepared=False)


def test_observer_state_dict_save_and_load_gives_the_same_model():
    def make(lib):
        nn = lib.nn
        return nn.Sequential(nn.Linear(5, 5), nn.ReLU(), nn.Linear(5, 5))
    t_model, e_model = twins(make)
    x = batches((5, 5), n=1)[0]
    outs = {}
    for lib, m in ((torch, t_model), (ember, e_model)):
        aq, qfx, _ = api(lib)
        import copy
        fresh = copy.deepcopy(m)
        p = qfx.prepare_fx(m, {"": aq.get_default_qconfig("fbgemm")}, (tensor(lib, x),))
        p(tensor(lib, x))
        observers = aq.get_observer_state_dict(p)
        q = qfx.convert_fx(p)
        p2 = qfx.prepare_fx(fresh, {"": aq.get_default_qconfig("fbgemm")}, (tensor(lib, x),))
        aq.load_observer_state_dict(p2, observers)
        q2 = qfx.convert_fx(p2)
        with torch.no_grad(), ember.no_grad():
            outs[lib.__name__] = (q(tensor(lib, x)).numpy(), q2(tensor(lib, x)).numpy())
        np.testing.assert_array_equal(outs[lib.__name__][0], outs[lib.__name__][1])
    np.testing.assert_allclose(outs["ember"][0], outs["torch"][0], atol=1e-5)


def _standalone(lib):
    nn = lib.nn

    class Standalone(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 1)

        def forward(self, x):
            return self.conv(x)

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.standalone = nn.Conv2d(1, 1, 1), Standalone()

        def forward(self, x):
            return self.standalone(self.conv(x))
    return M()


@pytest.mark.parametrize("interface", ["float", "quantized"])
def test_standalone_module_interfaces(interface):
    idxs = [] if interface == "float" else [0]
    t_model, e_model = twins(_standalone)
    x = batches((1, 1, 2, 2), n=1)[0]
    got = {}
    for lib, m in ((torch, t_model), (ember, e_model)):
        aq, qfx, cc = api(lib)
        interface = cc.PrepareCustomConfig().set_input_quantized_indexes(idxs) \
            .set_output_quantized_indexes(idxs)
        config = cc.PrepareCustomConfig().set_standalone_module_name(
            "standalone", None, (tensor(lib, x),), interface, None)
        p = qfx.prepare_fx(m, {"": aq.default_qconfig}, (tensor(lib, x),),
                           prepare_custom_config=config)
        p(tensor(lib, x))
        kinds = (node_kinds(p), node_kinds(p.standalone))
        import copy
        r = qfx.convert_to_reference_fx(copy.deepcopy(p) if lib is torch else p)
        ref = (node_kinds(r), node_kinds(r.standalone))
        with torch.no_grad(), ember.no_grad():
            y_ref = r(tensor(lib, x)).numpy()
        if lib is ember:        # convert_fx again from a fresh prepare (ref consumed it)
            p = qfx.prepare_fx(twins(_standalone)[1], {"": aq.default_qconfig},
                               (tensor(lib, x),), prepare_custom_config=config)
            p(tensor(lib, x))
        q = qfx.convert_fx(p)
        with torch.no_grad(), ember.no_grad():
            y = q(tensor(lib, x)).numpy()
        got[lib.__name__] = (kinds, node_kinds(q), node_kinds(q.standalone), y, ref, y_ref)
    t, e = got["torch"], got["ember"]
    assert e[0] == t[0] and e[1] == t[1] and e[2] == t[2] and e[4] == t[4]
    np.testing.assert_allclose(e[3], t[3], atol=1e-5)
    np.testing.assert_allclose(e[5], t[5], atol=1e-5)
