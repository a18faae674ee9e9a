"""Regressions for what the third user-program probe found (docs/compat.md, "The third
probe"), each checked against torch where torch has the answer."""
from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ember  # noqa: E402


def _models(lib):
    nn = lib.nn

    class WithState(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.bn = nn.BatchNorm2d(4)
            self.register_buffer("mask", lib.ones(4), persistent=False)
            self.offset = lib.tensor(0.25)

        def forward(self, x):
            y = self.bn(self.conv(x)) * self.mask.view(1, -1, 1, 1)
            return y.mean((2, 3)) + self.offset

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 4, 1)
            self.b = nn.Conv2d(3, 4, 1)
            self.head = nn.Linear(8, 2)

        def forward(self, x):
            y = lib.cat([self.a(x), self.b(x)], 1) * 0.5 + 1.0
            return self.head(lib.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))

    return WithState, Scaled


def _same_weights(t_model, e_model):
    e_model.load_state_dict({k: ember.tensor(v.detach().numpy())
                             for k, v in t_model.state_dict().items()})
    return e_model


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_exported_state_dict_holds_parameters_and_persistent_buffers_only():
    t_model, e_model = _models(torch)[0]().eval(), _models(ember)[0]().eval()
    _same_weights(t_model, e_model)
    x = _x(2, 3, 6, 6)
    t_ep = torch.export.export(t_model, (torch.from_numpy(x),))
    e_ep = ember.export.export(e_model, (ember.tensor(x),))
    assert sorted(e_ep.state_dict) == sorted(t_ep.state_dict)
    assert sorted(e_ep.constants) == sorted(t_ep.constants) == ["mask", "offset"]
    np.testing.assert_allclose(e_ep.module()(ember.tensor(x)).numpy(),
                               t_ep.module()(torch.from_numpy(x)).detach().numpy(), atol=1e-5)


def test_module_call_graph_lists_the_root_and_each_submodule():
    t_model, e_model = _models(torch)[0]().eval(), _models(ember)[0]().eval()
    x = _x(1, 3, 6, 6)
    t_ep = torch.export.export(t_model, (torch.from_numpy(x),),
                               preserve_module_call_signature=("bn",))
    e_ep = ember.export.export(e_model, (ember.tensor(x),),
                               preserve_module_call_signature=("bn",))
    shape = [(e.fqn, e.signature is None) for e in t_ep.module_call_graph]
    assert [(e.fqn, e.signature is None) for e in e_ep.module_call_graph] == shape
    assert e_ep.module_call_graph[0].signature.forward_arg_names == ["x"]
    loaded = ember.export.load(_saved(e_ep))
    assert [e.fqn for e in loaded.module_call_graph] == [fqn for fqn, _ in shape]


def _saved(ep):
    import io
    buf = io.BytesIO()
    ember.export.save(ep, buf)
    buf.seek(0)
    return buf


def test_train_mode_export_counts_batches_as_torch():
    t_model, e_model = _models(torch)[0]().train(), _models(ember)[0]().train()
    _same_weights(t_model, e_model)
    x = _x(2, 3, 6, 6, seed=1)
    t_m = torch.export.export(t_model, (torch.from_numpy(x),)).module()
    e_m = ember.export.export(e_model, (ember.tensor(x),)).module()
    for _ in range(2):
        t_m(torch.from_numpy(x))
        e_m(ember.tensor(x))
    assert int(e_m.bn.num_batches_tracked.item()) == int(t_m.bn.num_batches_tracked) == 2
    np.testing.assert_allclose(e_m.bn.running_mean.numpy(), t_m.bn.running_mean.numpy(),
                               atol=1e-5)


def _fx_converted(lib, model, calibrate: bool):
    from importlib import import_module
    q = import_module(f"{lib.__name__}.ao.quantization")
    qfx = import_module(f"{lib.__name__}.ao.quantization.quantize_fx")
    example = (lib.tensor(_x(2, 3, 4, 4, seed=9)),)
    prepared = qfx.prepare_fx(model.eval(), q.get_default_qconfig_mapping("x86"), example)
    if calibrate:
        for seed in range(3):
            prepared(lib.tensor(_x(2, 3, 4, 4, seed=seed) * 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return qfx.convert_fx(prepared)


def test_uncalibrated_convert_fx_then_a_calibrated_state_dict_matches_torch():
    """A fresh model converted without calibration (torch.ao gives its observers scale
    1.0 / zero point 0) takes a calibrated model's state_dict; the cat's and the scalar
    mul / add's qparams names are torch.ao's, and the scalar ops' qparams follow the
    loaded ones."""
    t_cls, e_cls = _models(torch)[1], _models(ember)[1]
    t_model = t_cls()
    e_model = _same_weights(t_model, e_cls())
    t_cal, e_cal = _fx_converted(torch, copy.deepcopy(t_model), True), \
        _fx_converted(ember, copy.deepcopy(e_model), True)
    e_fresh = _fx_converted(ember, e_cls(), False)
    assert sorted(e_cal.state_dict()) == sorted(t_cal.state_dict())
    e_fresh.load_state_dict(e_cal.state_dict())
    x = _x(2, 3, 4, 4, seed=5)
    want = t_cal(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(e_cal(ember.tensor(x)).numpy(), want, atol=1e-5)
    np.testing.assert_allclose(e_fresh(ember.tensor(x)).numpy(), want, atol=1e-5)


def test_uncalibrated_convert_fx_warns_naming_the_node():
    model = _models(ember)[1]()
    from ember.ao.quantization import get_default_qconfig_mapping
    from ember.ao.quantization.quantize_fx import convert_fx, prepare_fx
    prepared = prepare_fx(model.eval(), get_default_qconfig_mapping("x86"),
                          (ember.tensor(_x(1, 3, 4, 4)),))
    with pytest.warns(UserWarning, match=r"activation_post_process_0 .*'x'.* seen no data"):
        convert_fx(prepared)


def test_interpreter_has_torchs_submodules_snapshot():
    class Strip(ember.fx.Transformer):
        def call_module(self, target, args, kwargs):
            if isinstance(self.submodules[target], ember.nn.Dropout):
                return args[0]
            return super().call_module(target, args, kwargs)

    model = ember.nn.Sequential(ember.nn.Linear(3, 3), ember.nn.Dropout(0.5)).train()
    gm = Strip(ember.fx.symbolic_trace(model)).transform()
    assert [n.op for n in gm.graph.nodes] == ["placeholder", "call_module", "output"]
    x = ember.tensor(_x(2, 3))
    np.testing.assert_allclose(gm(x).detach().numpy(), model[0](x).detach().numpy())


def test_exported_module_shows_the_call_signature_and_exports_again():
    import inspect
    t_model, e_model = _models(torch)[0]().eval(), _models(ember)[0]().eval()
    _same_weights(t_model, e_model)
    x = _x(2, 3, 6, 6)
    t_m = torch.export.export(t_model, (torch.from_numpy(x),)).module()
    batch = ember.export.Dim("batch", max=8)
    e_m = ember.export.export(e_model, (ember.tensor(x),),
                              dynamic_shapes=({0: batch},)).module()
    assert str(inspect.signature(e_m.forward)) == str(inspect.signature(t_m.forward)) == "(x)"
    again = ember.export.export(copy.deepcopy(e_m), (ember.tensor(x),),
                                dynamic_shapes={"x": {0: batch}})
    y = _x(5, 3, 6, 6, seed=3)
    np.testing.assert_allclose(again.module()(ember.tensor(y)).numpy(),
                               t_model(torch.from_numpy(y)).detach().numpy(), atol=1e-5)


def test_graph_manipulation_sizes_match_torch():
    from torch.fx.passes import graph_manipulation as t_gm
    from ember.fx.passes import graph_manipulation as e_gm
    t_model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    e_model = _same_weights(t_model, ember.nn.Sequential(
        ember.nn.Linear(4, 8), ember.nn.ReLU(), ember.nn.Linear(8, 2)))
    t_g, e_g = torch.fx.symbolic_trace(t_model), ember.fx.symbolic_trace(e_model)
    with pytest.raises(RuntimeError, match="shape propagation"):
        e_gm.get_tensor_meta(list(e_g.graph.nodes)[1])
    x = _x(3, 4)
    t_gm.get_size_of_all_nodes(t_g, [torch.from_numpy(x)])
    e_gm.get_size_of_all_nodes(e_g, [ember.tensor(x)])
    sizes = [tuple(n.size_bytes) for n in e_g.graph.nodes if hasattr(n, "size_bytes")]
    assert sizes == [tuple(n.size_bytes) for n in t_g.graph.nodes if hasattr(n, "size_bytes")]


def test_unflattened_submodules_run_their_part_of_the_program():
    def build(lib):
        nn = lib.nn
        return nn.Sequential(nn.Linear(4, 6), nn.GELU(),
                             nn.Sequential(nn.Linear(6, 6), nn.LayerNorm(6)), nn.Linear(6, 2))

    t_model = build(torch).eval()
    e_model = _same_weights(t_model, build(ember).eval())
    x = _x(3, 4)
    t_u = torch.export.unflatten(torch.export.export(t_model, (torch.from_numpy(x),)))
    e_u = ember.export.unflatten(ember.export.export(e_model, (ember.tensor(x),)))
    h = _x(3, 6, seed=2)
    for path in ("0", "1", "2", "2.1"):
        got = e_u.get_submodule(path)(ember.tensor(h if path != "0" else x))
        want = t_u.get_submodule(path)(torch.from_numpy(h if path != "0" else x))
        np.testing.assert_allclose(got.numpy(), want.detach().numpy(), atol=1e-5,
                                   err_msg=path)
    with pytest.raises(ember.ir.errors.GuardError, match="'2' input 0 must be float32"):
        e_u.get_submodule("2")(ember.tensor(_x(3, 5)))
