"""A quantized Linear's prepared call (frontend/quantized.py _SeenCall: a layer's next call
that repeats its last one runs the layer's runner at once): whatever a call changes (the
input's qparams or shape, the layer's output qparams, its bias tensor) gives the full
path's integers, and two threads calling one model at once get each their own results
(the GEMM's kept parameter block and the dynamic epilogue's kept vectors are taken by one
call at a time)."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import ember
from ember.codegen.llvm import qgemm as Q
from ember.frontend import quantized as fq
from quant_twins import converted_twins, share_random_weights

pytestmark = [pytest.mark.filterwarnings("ignore"),
              pytest.mark.skipif(Q.active_config() is None or not Q.active_config().vnni,
                                 reason="runners are made for the VNNI kernels")]


def mlp(lib):
    nn = lib.nn
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 48)).eval()


def _static(rng):
    t_model, e_model = mlp(torch), mlp(ember)
    share_random_weights(t_model, e_model, rng)
    calib = [rng.standard_normal((8, 64)).astype(np.float32) for _ in range(2)]
    return converted_twins(t_model, e_model, calib)[1]


def _dynamic(rng):
    import ember.ao.quantization as eq
    return eq.quantize_dynamic(mlp(ember), {ember.nn.Linear}, dtype=ember.qint8)


def _layers(model) -> list:
    return [m for m in model.modules() if hasattr(m, "_packed_weight")]


def _full_path(monkeypatch):
    """Every call through the full kernel choice: no runner, no prepared call."""
    monkeypatch.setattr(fq, "_run_conv_runner", lambda *args, **kwargs: None)
    monkeypatch.setattr(fq, "_seen_call", lambda op, args: None)


def _layer_input(x: np.ndarray, scale: float, zero_point: int):
    return ember.quantize_per_tensor(ember.tensor(x), scale, zero_point, ember.quint8)


def test_changed_calls_give_the_full_paths_integers(rng, monkeypatch):
    model = _static(rng)
    layer = _layers(model)[0]
    x8 = rng.standard_normal((8, 64)).astype(np.float32)
    x4 = rng.standard_normal((4, 64)).astype(np.float32)
    calls = [(x8, 0.05, 128), (x8, 0.05, 128), (x8, 0.05, 128),      # seen from the 3rd
             (x8, 0.04, 128), (x8, 0.05, 120), (x4, 0.05, 128), (x8, 0.05, 128)]

    def run_all():
        outs = []
        with ember.no_grad():
            for i, (x, s, z) in enumerate(calls):
                if i == 6:          # the layer's own output qparams changed
                    layer.scale, layer.zero_point = layer.scale * 1.5, layer.zero_point - 3
                out = layer(_layer_input(x, s, z))
                outs.append((out.int_repr().numpy(), out.q_scale(), out.q_zero_point()))
        layer.scale, layer.zero_point = scale0, zp0
        return outs
    scale0, zp0 = layer.scale, layer.zero_point
    fast = run_all()
    assert isinstance(layer._packed_weight.__dict__.get("_seen_call"), fq._SeenCall)
    with monkeypatch.context() as m:
        _full_path(m)
        full = run_all()
    for (a, sa, za), (b, sb, zb) in zip(fast, full):
        np.testing.assert_array_equal(a, b)
        assert (sa, za) == (sb, zb)
    assert not np.array_equal(fast[2][0], fast[3][0])       # the changes changed results


def test_a_replaced_bias_tensor_is_seen(rng):
    model = _static(rng)
    x = ember.tensor(rng.standard_normal((8, 64)).astype(np.float32))
    with ember.no_grad():
        for _ in range(3):
            before = model(x).numpy()
        for layer in _layers(model):
            layer.set_weight_bias(layer.weight(), layer.bias() - 0.75)
        after = model(x).numpy()
        for layer in _layers(model):
            layer._packed_weight.__dict__.pop("_seen_call", None)
            layer._packed_weight.__dict__.pop("_kernel_cache", None)
        fresh = model(x).numpy()
    assert not np.array_equal(before, after)
    np.testing.assert_array_equal(after, fresh)


@pytest.mark.parametrize("kind", ["static", "dynamic"])
def test_two_threads_calling_one_model(rng, kind):
    model = _static(rng) if kind == "static" else _dynamic(rng)
    xs = [rng.standard_normal((8, 64)).astype(np.float32) * (1 + i % 3) for i in range(6)]
    with ember.no_grad():
        for x in xs[:2]:
            model(ember.tensor(x))
        want = [model(ember.tensor(x)).numpy() for x in xs]
    got: dict = {}
    errors: list = []

    def worker(t):
        try:
            with ember.no_grad():
                for r in range(40):
                    i = (t + r) % len(xs)
                    out = model(ember.tensor(xs[i])).numpy()
                    if not np.array_equal(out, want[i]):
                        got[(t, r)] = i
        except BaseException as e:       # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=worker, args=(t,)) for t in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and not got


def test_dynamic_layers_kept_input_buffer_gives_each_calls_values(rng, monkeypatch):
    """The dynamic layer quantizes every input into one kept buffer: calls with other
    values (other ranges, so other qparams) give the full path's values each."""
    model = _dynamic(rng)
    xs = [rng.standard_normal((8, 64)).astype(np.float32) * s for s in (1, 1, 3, 0.2, 1)]
    with ember.no_grad():
        fast = [model(ember.tensor(x)).numpy() for x in xs]
        with monkeypatch.context() as m:
            _full_path(m)
            full = [model(ember.tensor(x)).numpy() for x in xs]
    for a, b in zip(fast, full):
        np.testing.assert_array_equal(a, b)


def test_dynamic_input_pass_checks_its_out_buffer():
    from ember.codegen.llvm import qgemm_input as QI
    if not QI.available():
        pytest.skip("the native input pass needs AVX-512")
    x = np.random.default_rng(0).standard_normal((4, 64)).astype(np.float32)
    out = np.empty((4, 64), np.uint8)
    q, scale, zero_point = QI.quantize_dynamic_input(x, out=out)
    assert q is out
    np.testing.assert_array_equal(out, QI.quantize_dynamic_input(x)[0])
    with pytest.raises(ValueError, match="contiguous uint8 of shape"):
        QI.quantize_dynamic_input(x, out=np.empty((4, 32), np.uint8))
