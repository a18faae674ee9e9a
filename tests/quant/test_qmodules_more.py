"""Quantized modules beyond the tutorial's set, each against torch.ao on the same
weights and inputs: QFunctional's scalar forms, ConvTranspose1d/2d, GroupNorm,
InstanceNorm1d/2d/3d and the dynamic RNN cells."""
import warnings

import numpy as np
import pytest
import torch

import ember
import ember.ao.nn.quantized as enq
import torch.ao.nn.quantized as tnq

warnings.filterwarnings("ignore")

_DT = {torch.quint8: ember.quint8, torch.qint8: ember.qint8}


def _same_quantized(t, e):
    assert t.q_scale() == e.q_scale()
    assert t.q_zero_point() == e.q_zero_point()
    np.testing.assert_array_equal(t.int_repr().numpy(), e.int_repr().numpy())


@pytest.mark.parametrize("dtype", [torch.quint8, torch.qint8])
def test_qfunctional_scalar_ops_are_bit_exact(dtype):
    rng = np.random.default_rng(0)
    for trial in range(60):
        scale = float(np.float32(rng.uniform(0.001, 0.2)))
        zp = int(rng.integers(0, 256) if dtype == torch.quint8 else rng.integers(-128, 128))
        x = (rng.standard_normal(64) * 3).astype(np.float32)
        c = float([0.0, rng.standard_normal() * 0.1, rng.standard_normal() * 10,
                   rng.standard_normal() * 200][trial % 4])
        tx = torch.quantize_per_tensor(torch.from_numpy(x), scale, zp, dtype)
        ex = ember.quantize_per_tensor(ember.tensor(x), scale, zp, _DT[dtype])
        for op in ("add_scalar", "mul_scalar"):
            _same_quantized(getattr(tnq.QFunctional(), op)(tx, c),
                            getattr(enq.QFunctional(), op)(ex, c))
