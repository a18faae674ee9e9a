"""A converted model's int8 Linear layers run by their layer's runner from the second
call of a seen geometry on (codegen/quantized.py linear_runner: the prepared GEMM looked
up once): the same integers as the full kernel choice and as torch.ao's model, and a bias
changed between calls (replaced or in place) is seen."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from ember.codegen.llvm import qgemm as Q
from quant_twins import converted_twins, share_random_weights

pytestmark = [pytest.mark.filterwarnings("ignore"),
              pytest.mark.skipif(Q.active_config() is None or not Q.active_config().vnni,
                                 reason="runners are made for the VNNI kernels")]
torch.backends.quantized.engine = "x86"


def mlp(lib):
    nn = lib.nn      # 10 outputs: a bias shorter than the packed width (a padded copy)
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 32), nn.ReLU(),
                         nn.Linear(32, 10)).eval()


def _models(rng):
    t_model, e_model = mlp(torch), mlp(ember)
    share_random_weights(t_model, e_model, rng)
    calib = [rng.standard_normal((8, 64)).astype(np.float32) for _ in range(2)]
    return converted_twins(t_model, e_model, calib)


def _linears(model) -> list:
    return [m for m in model.modules() if hasattr(m, "_packed_weight")]


def _runners(model) -> int:
    count = 0
    for m in _linears(model):
        cache = m._packed_weight.__dict__.get("_kernel_cache", {})
        count += sum(isinstance(k, tuple) and k[0] == "runner" and callable(v)
                     for k, v in cache.items())
    return count


def _forget_kernels(model) -> None:
    from ember.frontend import quantized as fq
    for m in _linears(model):
        m._packed_weight.__dict__.pop("_kernel_cache", None)
        m._packed_weight.__dict__.pop("_seen_call", None)
    fq._CHECKED.clear()


def test_runners_give_the_full_paths_integers_and_torch_ao_values(rng, monkeypatch):
    from ember.frontend import quantized as fq
    t_q, e_q = _models(rng)
    assert len(_linears(e_q)) == 3
    x = rng.standard_normal((8, 64)).astype(np.float32)
    with ember.no_grad():
        with monkeypatch.context() as m:       # the full kernel choice on every call
            m.setattr(fq, "_run_conv_runner", lambda *args: None)
            full = [e_q(ember.tensor(x)).numpy() for _ in range(2)]
        assert _runners(e_q) == 0
        first = e_q(ember.tensor(x)).numpy()
        again = [e_q(ember.tensor(x)).numpy() for _ in range(2)]
    assert _runners(e_q) == 3       # the 10-output layer's too (its bias padded)
    for out in full[1:] + [first] + again:
        np.testing.assert_array_equal(out, full[0])
    want = t_q(torch.from_numpy(x)).numpy()
    step = float(np.abs(want).max()) / 127
    assert np.abs(want - first).max() <= 3 * step


def test_a_bias_changed_between_calls_is_seen(rng):
    _, e_q = _models(rng)
    x = ember.tensor(rng.standard_normal((8, 64)).astype(np.float32))
    layers = _linears(e_q)
    with ember.no_grad():
        e_q(x)
        before = e_q(x).numpy()
        for layer in layers:
            layer.set_weight_bias(layer.weight(), layer.bias() + 0.5)
        changed = e_q(x).numpy()
        _forget_kernels(e_q)
        fresh = e_q(x).numpy()
        e_q(x)
        for layer in layers:        # in place: the same bias tensor, new values
            layer.bias().add_(0.25)
        in_place = e_q(x).numpy()
        _forget_kernels(e_q)
        in_place_fresh = e_q(x).numpy()
    assert not np.array_equal(changed, before)
    np.testing.assert_array_equal(changed, fresh)
    assert not np.array_equal(in_place, changed)
    np.testing.assert_array_equal(in_place, in_place_fresh)


def test_dynamic_runners_give_the_full_paths_values_and_torch_ao_values(rng, monkeypatch):
    import torch.ao.quantization as tq
    import ember.ao.quantization as eq
    from ember.frontend import quantized as fq
    t_model, e_model = mlp(torch), mlp(ember)
    share_random_weights(t_model, e_model, rng)
    t_q = tq.quantize_dynamic(t_model, {torch.nn.Linear}, dtype=torch.qint8)
    e_q = eq.quantize_dynamic(e_model, {ember.nn.Linear}, dtype=ember.qint8)
    x = rng.standard_normal((8, 64)).astype(np.float32)
    with ember.no_grad(), torch.no_grad():
        with monkeypatch.context() as m:
            m.setattr(fq, "_run_conv_runner", lambda *args: None)
            full = [e_q(ember.tensor(x)).numpy() for _ in range(2)]
        assert _runners(e_q) == 0
        runs = [e_q(ember.tensor(x * s)).numpy() for s in (1.0, 1.0, 1.0, 2.0)]
        want = t_q(torch.from_numpy(x)).numpy()
        with monkeypatch.context() as m:
            m.setattr(fq, "_run_conv_runner", lambda *args: None)
            full_scaled = e_q(ember.tensor(x * 2.0)).numpy()
    assert _runners(e_q) == 3
    for out in full[1:] + runs[:3]:
        np.testing.assert_array_equal(out, full[0])
    np.testing.assert_array_equal(runs[3], full_scaled)     # new input qparams per call
    np.testing.assert_allclose(runs[0], want, atol=1e-5, rtol=1e-5)
