"""A converted model's int8 convolutions run by their layer's runner from the second
call of a seen geometry on (codegen/quantized.py conv_runner: everything but the input
made once): the same integers as the full kernel choice and as torch.ao's model, and a
bias changed between calls is seen."""
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


def chain(lib):
    nn = lib.nn
    return nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.ReLU6(),
                         nn.Conv2d(32, 32, 3, 1, 1, groups=32), nn.BatchNorm2d(32), nn.ReLU6(),
                         nn.Conv2d(32, 40, 1), nn.ReLU(),
                         nn.Conv2d(40, 40, 3, 1, 1, groups=40),
                         nn.Conv2d(40, 16, 3, 1, 1)).eval()


def _models(rng):
    t_model, e_model = chain(torch), chain(ember)
    share_random_weights(t_model, e_model, rng)
    calib = [rng.standard_normal((2, 3, 16, 16)).astype(np.float32) for _ in range(2)]
    return converted_twins(t_model, e_model, calib)


def _forget_kernels(model) -> None:
    from ember.frontend import quantized as fq
    cleared = 0
    for m in model.modules():
        w = getattr(m, "_packed_weight", None)
        if w is not None:
            cleared += w.__dict__.pop("_kernel_cache", None) is not None
    assert cleared
    fq._CHECKED.clear()


def _runners(model) -> int:
    count = 0
    for m in model.modules():
        w = getattr(m, "_packed_weight", None)
        cache = {} if w is None else w.__dict__.get("_kernel_cache", {})
        count += sum(isinstance(k, tuple) and k[0] == "runner" and callable(v)
                     for k, v in cache.items())
    return count


def test_runners_give_the_full_paths_integers_and_torch_ao_values(rng, monkeypatch):
    from ember.frontend import quantized as fq
    t_q, e_q = _models(rng)
    x = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
    with ember.no_grad():
        with monkeypatch.context() as m:       # the full kernel choice on every call
            m.setattr(fq, "_run_conv_runner", lambda *args: None)
            full = [e_q(ember.tensor(x)).numpy() for _ in range(2)]
        assert _runners(e_q) == 0
        first = e_q(ember.tensor(x)).numpy()
        again = [e_q(ember.tensor(x)).numpy() for _ in range(2)]
    assert _runners(e_q) == 5           # every conv: GEMM and depthwise, clamped or not
    for out in full[1:] + again:
        np.testing.assert_array_equal(out, full[0])
    np.testing.assert_array_equal(first, full[0])
    want = t_q(torch.from_numpy(x)).numpy()
    step = float(np.abs(want).max()) / 127
    assert np.abs(want - first).max() <= 3 * step


def test_a_bias_changed_between_calls_is_seen(rng):
    _, e_q = _models(rng)
    x = ember.tensor(rng.standard_normal((2, 3, 16, 16)).astype(np.float32))
    convs = [m for m in e_q.modules() if hasattr(m, "_packed_weight")]
    weights = [conv.weight() for conv in convs]
    with ember.no_grad():
        e_q(x)
        before = e_q(x).numpy()
        for conv in convs:
            bias = conv.bias()
            conv.set_weight_bias(conv.weight(), bias + 0.5)
        changed = e_q(x).numpy()
        _forget_kernels(e_q)
        fresh = e_q(x).numpy()
        e_q(x)
        for conv in convs:          # in place: the same bias tensor, new values
            conv.bias().add_(0.25)
        in_place = e_q(x).numpy()
        _forget_kernels(e_q)
        in_place_fresh = e_q(x).numpy()
    assert all(conv.weight() is w for conv, w in zip(convs, weights))    # same caches
    assert not np.array_equal(changed, before)
    np.testing.assert_array_equal(changed, fresh)
    assert not np.array_equal(in_place, changed)
    np.testing.assert_array_equal(in_place, in_place_fresh)
