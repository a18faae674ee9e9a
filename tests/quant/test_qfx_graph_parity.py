"""prepare_fx / convert_to_reference_fx / convert_fx graphs node for node against torch.ao's
(op and node name), converted state_dict keys in torch.ao's order, and the same values:
a module called at several places, `torch.relu` after a conv (a float op in torch.ao, not
fused), functional softmax (a float op: the next quantized op observes its output), and
the quantize_per_tensor_N / dequantize_N names torch.ao's convert numbers by observer."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.ao.quantization as tq
import torch.ao.quantization.quantize_fx as tqfx

import ember
import ember.ao.quantization as eq
import ember.ao.quantization.quantize_fx as eqfx
from quant_twins import share_random_weights

pytestmark = pytest.mark.filterwarnings("ignore")


def _ops_and_names(gm) -> list:
    return [(getattr(n.op, "value", n.op), n.name) for n in gm.graph.nodes]


def _stages(make, shape, seed=0):
    """torch.ao's and ember's prepared (calibrated), reference and converted twins, and
    an input batch."""
    rng = np.random.default_rng(seed)
    t_model, e_model = make(torch).eval(), make(ember).eval()
    share_random_weights(t_model, e_model, rng)
    calib = [rng.standard_normal(shape).astype(np.float32) * 2 for _ in range(3)]
    t_prep = tqfx.prepare_fx(t_model, tq.get_default_qconfig_mapping("x86"),
                             (torch.from_numpy(calib[0]),))
    e_prep = eqfx.prepare_fx(e_model, eq.get_default_qconfig_mapping("x86"),
                             (ember.tensor(calib[0]),))
    with torch.no_grad(), ember.no_grad():
        for c in calib:
            t_prep(torch.from_numpy(c))
            e_prep(ember.tensor(c))
    t = (t_prep, tqfx.convert_to_reference_fx(copy.deepcopy(t_prep)),
         tqfx.convert_fx(copy.deepcopy(t_prep)))
    e = (e_prep, eqfx.convert_to_reference_fx(e_prep), eqfx.convert_fx(e_prep))
    return t, e, rng.standard_normal(shape).astype(np.float32)


def _assert_like_torch(make, shape):
    (t_prep, t_ref, t_q), (e_prep, e_ref, e_q), x = _stages(make, shape)
    for stage, t, e in (("prepared", t_prep, e_prep), ("reference", t_ref, e_ref),
                        ("converted", t_q, e_q)):
        assert _ops_and_names(e) == _ops_and_names(t), stage
    assert list(e_q.state_dict()) == list(t_q.state_dict())
    assert list(e_ref.state_dict()) == list(t_ref.state_dict())
    assert list(e_prep.state_dict()) == list(t_prep.state_dict())
    with torch.no_grad(), ember.no_grad():
        want = t_q(torch.from_numpy(x)).numpy()
        got = e_q(ember.tensor(x)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    return e_q, t_q


def _linear_twice(lib, scalar=None):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)
            self.fc2 = nn.Linear(8, 8)

        def forward(self, x):
            x = self.fc(x)
            x = self.fc(x if scalar is None else x * scalar)
            return self.fc2(self.fc2(x))
    return M()


def test_a_module_called_twice_is_called_at_each_site_with_its_last_calls_qparams():
    e_q, t_q = _assert_like_torch(_linear_twice, (4, 8))
    for name in ("fc", "fc2"):
        assert type(e_q.get_submodule(name)).__name__ == type(t_q.get_submodule(name)).__name__
        assert e_q.get_submodule(name).scale == pytest.approx(t_q.get_submodule(name).scale)
        assert e_q.get_submodule(name).zero_point == t_q.get_submodule(name).zero_point


@pytest.mark.parametrize("scalar", [3.0, 0.5])
def test_an_op_after_a_repeated_module_reads_the_modules_last_qparams(scalar):
    # the first call's int8 output is at the module's (last call's) scale: the mul with a
    # number after it must start from that scale, as torch.ao's quantized mul_scalar does
    make = lambda lib: _linear_twice(lib, scalar)      # noqa: E731
    (t_prep, _, t_q), (e_prep, _, e_q), x = _stages(make, (4, 8))
    # the mul's output observer: the input's, registered again under the next name
    assert _ops_and_names(e_prep) == _ops_and_names(t_prep)
    assert [str(n.target) for n in e_prep.graph.nodes if getattr(n.op, "value", n.op) ==
            "call_module"] == [str(n.target) for n in t_prep.graph.nodes
                               if n.op == "call_module"]
    assert list(e_prep.state_dict()) == list(t_prep.state_dict())
    with torch.no_grad(), ember.no_grad():
        want = t_q(torch.from_numpy(x)).numpy()
        got = e_q(ember.tensor(x)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


def _conv_twice_relu(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)
            self.relu = nn.ReLU()

        def forward(self, x):
            x = self.relu(self.conv(x))
            x = self.conv(x)
            return self.relu(x) + x
    return M()


def test_a_fused_conv_relu_called_twice_matches_torch():
    _assert_like_torch(_conv_twice_relu, (2, 4, 6, 6))


def _torch_relu_softmax(lib):
    nn, F = lib.nn, lib.nn.functional

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.conv2 = nn.Conv2d(4, 4, 1)
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            x = lib.relu(self.conv(x))           # not fused: runs in float after conv
            y = F.softmax(x, dim=1)              # a float op, observed by conv2's input
            return self.fc(self.conv2(y))
    return M()


def test_torch_relu_after_conv_and_functional_softmax_run_in_float_as_in_torch():
    e_q, t_q = _assert_like_torch(_torch_relu_softmax, (2, 3, 6, 6))
    # a quantized Conv2d, not ConvReLU2d
    assert type(e_q.conv) is ember.ao.nn.quantized.Conv2d
    assert type(t_q.conv) is torch.ao.nn.quantized.Conv2d


def _captured_functional_relu(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.act = nn.Conv2d(3, 4, 3), lib.nn.functional.relu

        def forward(self, x):
            return self.act(self.conv(x))         # F.relu kept before tracing: fused
    return M()


def test_a_captured_functional_relu_fuses_into_the_conv_as_in_torch():
    e_q, t_q = _assert_like_torch(_captured_functional_relu, (2, 3, 6, 6))
    assert type(t_q.conv) is torch.ao.nn.intrinsic.quantized.ConvReLU2d
    assert type(e_q.conv) is ember.ao.nn.intrinsic.quantized.ConvReLU2d


def _add_torch_relu(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return lib.relu(self.conv(x) + x)     # fused into add_relu, as in torch.ao
    return M()


def test_torch_relu_after_add_is_still_fused():
    e_q, _ = _assert_like_torch(_add_torch_relu, (2, 3, 5, 5))
    assert any(n.name == "add_relu" for n in e_q.graph.nodes)


def _pooled_block(lib):
    nn, F = lib.nn, lib.nn.functional

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4)
            self.relu = nn.ReLU()
            self.pool = nn.MaxPool2d(2)
            self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
            self.avg = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(4, 5)

        def forward(self, x):
            x = self.pool(self.relu(self.bn(self.conv1(x))))
            x = F.relu(x + self.conv2(x))
            x = lib.flatten(self.avg(x), 1)
            return lib.sigmoid(self.fc(x)).mean(-1)
    return M()


def test_quantize_and_dequantize_names_count_observers_as_torch_does():
    # shared ops (pooling, flatten) have observers of their own in torch.ao's numbering
    e_q, _ = _assert_like_torch(_pooled_block, (2, 3, 8, 8))
    assert any(n.name.startswith("dequantize_") for n in e_q.graph.nodes)


def _norm_act_prelu(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.gn = nn.GroupNorm(2, 4)      # float in torch.ao's x86 config, as here
            self.silu = nn.SiLU()             # float too; prelu's input observer follows
            self.prelu = nn.PReLU()
            self.conv2 = nn.Conv2d(4, 4, 1)

        def forward(self, x):
            return self.conv2(self.prelu(self.silu(self.gn(self.conv(x)))))
    return M()


def test_prelu_becomes_torch_aos_quantized_prelu():
    (t_prep, t_ref, t_q), (e_prep, e_ref, e_q), x = _stages(_norm_act_prelu, (2, 3, 6, 6))
    for stage, t, e in (("prepared", t_prep, e_prep), ("reference", t_ref, e_ref),
                        ("converted", t_q, e_q)):
        assert _ops_and_names(e) == _ops_and_names(t), stage
    assert list(e_q.state_dict()) == list(t_q.state_dict())
    assert repr(e_q.prelu) == repr(t_q.prelu) == "QuantizedPReLU()"
    assert (e_q.prelu.scale, e_q.prelu.zero_point) == \
        pytest.approx((t_q.prelu.scale, t_q.prelu.zero_point))
    w_e, w_t = e_q.prelu.weight, t_q.prelu.weight
    assert (w_e.q_scale(), w_e.q_zero_point()) == pytest.approx((w_t.q_scale(), w_t.q_zero_point()))
    np.testing.assert_array_equal(w_e.int_repr().numpy(), w_t.int_repr().numpy())
    # values: torch's reference model (torch's x86 quantized prelu kernel in this build
    # also scales non-negative inputs by the slope; ember's computes PReLU)
    with torch.no_grad(), ember.no_grad():
        want = t_ref(torch.from_numpy(x)).numpy()
        got = e_q(ember.tensor(x)).numpy()
    np.testing.assert_allclose(got, want, atol=2 * float(t_q.conv2.scale) + 1e-6)


def _embedding_model(lib, bag: bool):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.EmbeddingBag(10, 4, mode="sum") if bag else nn.Embedding(10, 4)
            self.fc = nn.Linear(4, 3)

        def forward(self, idx):
            return self.fc(self.emb(idx))
    return M().eval()


@pytest.mark.parametrize("bag", [False, True])
def test_reference_embedding_modules_as_torch_ao(bag):
    """convert_to_reference_fx under float_qparams_weight_only_qconfig: torch.ao's
    reference Embedding / EmbeddingBag (float weight, per-row float qparams as state,
    the quantize -> dequantize weight looked up)."""
    rng = np.random.default_rng(3)
    idx = rng.integers(0, 10, (3, 4))
    out = {}
    t_model, e_model = _embedding_model(torch, bag), _embedding_model(ember, bag)
    share_random_weights(t_model, e_model, rng)
    for lib, q, fx, model in ((torch, tq, tqfx, t_model), (ember, eq, eqfx, e_model)):
        emb_type = lib.nn.EmbeddingBag if bag else lib.nn.Embedding
        mapping = q.get_default_qconfig_mapping("x86").set_object_type(
            emb_type, q.float_qparams_weight_only_qconfig)
        x = lib.tensor(idx)
        prepared = fx.prepare_fx(model, mapping, (x,))
        prepared(x)
        ref = fx.convert_to_reference_fx(prepared)
        with lib.no_grad():
            out[lib.__name__] = (ref, ref(x).numpy())
    (t_ref, want), (e_ref, got) = out["torch"], out["ember"]
    assert repr(e_ref.emb) == repr(t_ref.emb)
    assert list(e_ref.state_dict()) == list(t_ref.state_dict())
    for key in ("emb.weight_scale", "emb.weight_zero_point"):
        np.testing.assert_allclose(e_ref.state_dict()[key].numpy(),
                                   t_ref.state_dict()[key].numpy(), rtol=1e-6)
        assert str(e_ref.state_dict()[key].dtype).split(".")[-1] == \
            str(t_ref.state_dict()[key].dtype).split(".")[-1]
    np.testing.assert_allclose(got, want, atol=1e-5)



def test_a_repeated_module_compiles_and_trains_as_in_torch():
    """prepare_qat_fx -> convert_fx of a model calling one Linear twice: torch.ao's graph
    and values, and ember.compile of the result gives the eager values."""
    rng = np.random.default_rng(4)
    t_model, e_model = _linear_twice(torch).train(), _linear_twice(ember).train()
    share_random_weights(t_model, e_model, rng)
    x = rng.standard_normal((4, 8)).astype(np.float32)
    t_prep = tqfx.prepare_qat_fx(t_model, tq.get_default_qat_qconfig_mapping("x86"),
                                 (torch.from_numpy(x),))
    e_prep = eqfx.prepare_qat_fx(e_model, eq.get_default_qat_qconfig_mapping("x86"),
                                 (ember.tensor(x),))
    t_prep(torch.from_numpy(x))
    e_prep(ember.tensor(x))
    t_q, e_q = tqfx.convert_fx(t_prep.eval()), eqfx.convert_fx(e_prep.eval())
    assert _ops_and_names(e_q) == _ops_and_names(t_q)
    with torch.no_grad(), ember.no_grad():
        want = t_q(torch.from_numpy(x)).numpy()
        got = e_q(ember.tensor(x)).numpy()
        compiled = ember.compile(e_q)(ember.tensor(x)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_array_equal(compiled, got)
