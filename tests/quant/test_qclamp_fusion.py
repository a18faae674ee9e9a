"""relu6 / hardtanh after a quantized Conv2d, clamped by the convolution's epilogue
(convert_fx marks the conv; frontend/quantized.py conv2d_clamped): the same integers as
the unfused pair and as torch.ao's converted model, the graph still torch.ao's."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from quant_twins import converted_twins, share_random_weights

pytestmark = pytest.mark.filterwarnings("ignore:.*quantized tensor creation")
torch.backends.quantized.engine = "x86"


def clamp_model(lib):
    nn, F = lib.nn, lib.nn.functional

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16),
                                      nn.ReLU6())
            self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1, groups=16),
                                    nn.BatchNorm2d(16), nn.ReLU6(inplace=True))
            self.pw = nn.Conv2d(16, 24, 1)
            self.tanh_like = nn.Hardtanh(-0.5, 0.75)
            self.shared = nn.Conv2d(24, 24, 1)      # two readers: not fused
            self.act = nn.ReLU6()
            self.last = nn.Conv2d(24, 8, 1)

        def forward(self, x):
            x = self.dw(self.stem(x))
            x = self.tanh_like(self.pw(x))
            s = self.shared(x)
            y = self.act(s) + s
            return F.relu6(self.last(y))
    return M().eval()


def twins(rng):
    t_model, e_model = clamp_model(torch), clamp_model(ember)
    share_random_weights(t_model, e_model, rng)
    calib = [rng.standard_normal((2, 3, 20, 20)).astype(np.float32) for _ in range(3)]
    return converted_twins(t_model, e_model, calib) + (calib,)


def fused_modules(model) -> dict:
    return {name: m._fused_clamp for name, m in model.named_modules()
            if m.__dict__.get("_fused_clamp") is not None}


def test_convert_fx_fuses_the_clamp_after_a_conv_with_one_reader(rng):
    _, e_q, _ = twins(rng)
    assert fused_modules(e_q) == {"stem.0": (0.0, 6.0), "dw.0": (0.0, 6.0),
                                  "pw": (-0.5, 0.75), "last": (0.0, 6.0)}


def test_fused_clamps_give_the_unfused_integers_and_torch_ao_values(rng):
    t_q, e_q, calib = twins(rng)
    x = rng.standard_normal((2, 3, 20, 20)).astype(np.float32)
    with ember.no_grad():
        fused = e_q(ember.tensor(x)).numpy()
        compiled = ember.compile(e_q)(ember.tensor(x)).numpy()
        for m in e_q.modules():
            m.__dict__.pop("_fused_clamp", None)
        unfused = e_q(ember.tensor(x)).numpy()
    np.testing.assert_array_equal(fused, unfused)
    np.testing.assert_array_equal(compiled, unfused)
    expected = t_q(torch.from_numpy(x)).numpy()
    step = float(np.abs(expected).max()) / 255
    assert np.abs(expected - fused).max() <= 2 * step + 1e-6


def test_the_fused_path_runs_in_the_graph_and_the_clamp_node_copies_nothing(rng,
                                                                          monkeypatch):
    import ember.ao.nn.quantized.modules as qmodules
    import ember.frontend.quantized as fq
    _, e_q, _ = twins(rng)
    fused_calls, reused = [], []
    conv2d_clamped, already_clamped = qmodules.conv2d_clamped, fq._already_clamped

    def spy_conv(op, args, low, high):
        fused_calls.append((low, high))
        return conv2d_clamped(op, args, low, high)

    def spy_clamp(qt, bounds):
        done = already_clamped(qt, bounds)
        reused.append(done is not None)
        return done
    monkeypatch.setattr(qmodules, "conv2d_clamped", spy_conv)
    monkeypatch.setattr(fq, "_already_clamped", spy_clamp)
    x = ember.tensor(rng.standard_normal((2, 3, 10, 10)).astype(np.float32))
    with ember.no_grad():
        e_q(x)
    assert sorted(fused_calls) == sorted(fused_modules(e_q).values())
    assert reused.count(True) == 4          # each fused conv's clamp node found it done


def test_repeated_fused_calls_take_the_prepared_call_and_keep_the_integers(rng,
                                                                           monkeypatch):
    """A fused conv's second like call runs its kept runner directly (_seen_clamped);
    every call gives the unfused integers, a call of the conv alone in between (no clamp)
    included, and a batch of another size takes the full path again."""
    import copy
    import ember.frontend.quantized as fq
    _, e_q, _ = twins(rng)
    unfused = copy.deepcopy(e_q)
    for m in unfused.modules():
        m.__dict__.pop("_fused_clamp", None)
    seen_clamped, hits = fq._seen_clamped, []

    def spy(op, args, low, high):
        found = seen_clamped(op, args, low, high)
        hits.append(found is not None)
        return found
    monkeypatch.setattr(fq, "_seen_clamped", spy)
    with ember.no_grad():
        for i, batch in enumerate((2, 2, 2, 3, 3)):
            x = ember.tensor(rng.standard_normal((batch, 3, 20, 20)).astype(np.float32))
            np.testing.assert_array_equal(e_q(x).numpy(), unfused(x).numpy())
            if i == 1:      # the pw conv alone: torch.ao's unclamped result, not the kept one
                q = _quantized_input(np.random.default_rng(1), ember)
                np.testing.assert_array_equal(e_q.pw(q).int_repr().numpy(),
                                              unfused.pw(q).int_repr().numpy())
    fused = len(fused_modules(e_q))
    assert hits[:fused] == [False] * fused          # first call: runners made
    assert hits[fused:2 * fused] == [True] * fused  # same shapes: the kept calls
    assert hits[3 * fused:4 * fused] == [False] * fused   # a new batch size: full path


def _quantized_input(rng, lib):
    x = np.abs(rng.standard_normal((2, 16, 10, 10))).astype(np.float32)
    return lib.quantize_per_tensor(lib.tensor(x), 0.02, 3, lib.quint8)


def test_a_fused_conv_called_alone_gives_torch_ao_unclamped_result(rng):
    t_q, e_q, _ = twins(rng)
    got = e_q.pw(_quantized_input(np.random.default_rng(1), ember))
    want = t_q.pw(_quantized_input(np.random.default_rng(1), torch))
    assert got.q_scale() == pytest.approx(want.q_scale(), rel=1e-6)
    diff = got.int_repr().numpy().astype(int) - want.int_repr().numpy().astype(int)
    assert np.abs(diff).max() <= 1
    real = got.dequantize().numpy()
    assert real.min() < -0.5 - got.q_scale() or real.max() > 0.75 + got.q_scale()


def _hooked_outputs(model, names, x):
    seen = {}
    handles = [model.get_submodule(n).register_forward_hook(
        lambda m, args, out, n=n: seen.__setitem__(n, out.int_repr().numpy()))
        for n in names]
    out = model(x).numpy()
    for h in handles:
        h.remove()
    return seen, out


def test_forward_hooks_on_fused_convs_see_torch_ao_outputs(rng):
    t_q, e_q, _ = twins(rng)
    x = rng.standard_normal((2, 3, 20, 20)).astype(np.float32)
    names = ["stem.0", "pw", "last"]
    with ember.no_grad():
        plain = e_q(ember.tensor(x)).numpy()
        seen, hooked = _hooked_outputs(e_q, names, ember.tensor(x))
    want, expected = _hooked_outputs(t_q, names, torch.from_numpy(x))
    np.testing.assert_array_equal(hooked, plain)
    for n in names:
        assert np.abs(seen[n].astype(int) - want[n].astype(int)).max() <= 1, n
    pw = e_q.pw
    outside = (seen["pw"].astype(int) - pw.zero_point) * pw.scale
    assert outside.min() < -0.5 - pw.scale or outside.max() > 0.75 + pw.scale
    # a hook on the clamp module reads the conv's result as its input: unfused too
    inputs = {}
    handle = e_q.tanh_like.register_forward_pre_hook(
        lambda m, args: inputs.__setitem__("x", args[0].int_repr().numpy()))
    with ember.no_grad():
        np.testing.assert_array_equal(e_q(ember.tensor(x)).numpy(), plain)
    handle.remove()
    np.testing.assert_array_equal(inputs["x"], seen["pw"])


def test_numeric_suite_loggers_see_torch_ao_conv_outputs(rng):
    import ember.ao.ns._numeric_suite_fx as ens
    t_q, e_q, _ = twins(rng)
    x = rng.standard_normal((2, 3, 20, 20)).astype(np.float32)
    want, _ = _hooked_outputs(t_q, ["pw", "last"], torch.from_numpy(x))
    float_twin = clamp_model(ember)
    _, logged_model = ens.add_loggers("fp32", float_twin, "int8", e_q)
    with ember.no_grad():
        logged_model(ember.tensor(x))
    logged = {m.ref_name: m.stats[0] for m in logged_model.modules()
              if isinstance(m, ens.OutputLogger)}
    for name in ("pw", "last"):
        got = logged[name].int_repr().numpy().astype(int)
        assert np.abs(got - want[name].astype(int)).max() <= 1, name
    pw = e_q.pw
    real = logged["pw"].dequantize().numpy()
    assert real.min() < -0.5 - pw.scale or real.max() > 0.75 + pw.scale


def test_a_changed_clamp_module_or_edited_graph_is_not_fused(rng):
    """The fusion follows the model as it is at each call: new clamp bounds, a
    replaced clamp module, a graph edited and recompiled."""
    import copy
    t_q, e_q, _ = twins(rng)
    unfused = copy.deepcopy(e_q)
    for m in unfused.modules():
        m.__dict__.pop("_fused_clamp", None)
    x = rng.standard_normal((2, 3, 20, 20)).astype(np.float32)

    def both(change):
        with ember.no_grad():
            before = unfused(ember.tensor(x)).numpy()
            np.testing.assert_array_equal(e_q(ember.tensor(x)).numpy(), before)
        for model in (t_q, e_q, unfused):
            change(model)
        with ember.no_grad():
            got = e_q(ember.tensor(x)).numpy()
            np.testing.assert_array_equal(got, unfused(ember.tensor(x)).numpy())
        assert not np.array_equal(got, before)        # the change matters here
        want = t_q(torch.from_numpy(x)).numpy()
        step = float(np.abs(want).max()) / 255
        assert np.abs(want - got).max() <= 2 * step + 1e-6
    both(lambda m: setattr(m.tanh_like, "max_val", 3.0))
    both(lambda m: setattr(m, "tanh_like", type(m.tanh_like)(-0.25, 0.25)))

    def drop_last_relu6(gm):
        for node in list(gm.graph.nodes):
            if node.op == "call_function" and "relu6" in str(node.target):
                node.replace_all_uses_with(node.args[0])
                gm.graph.erase_node(node)
        gm.recompile()
    both(drop_last_relu6)


def test_quantize_per_tensor_of_a_0d_tensor_matches_torch():
    for v in (0.3, -1.7, 40.0):
        got = ember.quantize_per_tensor(ember.tensor(np.float32(v)), 0.1, 2, ember.quint8)
        want = torch.quantize_per_tensor(torch.tensor(np.float32(v)), 0.1, 2, torch.quint8)
        assert got.shape == () and got.int_repr().item() == want.int_repr().item()
