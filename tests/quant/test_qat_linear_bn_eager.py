"""Eager QAT of Linear + BatchNorm1d: fuse_modules_qat keeps them apart as
ember.ao.nn.intrinsic.LinearBn1d, prepare_qat swaps in the QAT LinearBn1d (BN folded into
the fake-quantized weight), convert gives a quantized Linear, as torch.ao does."""
import warnings

import numpy as np
import pytest
import torch

import ember
import ember.ao.quantization as eq
import torch.ao.quantization as tq
from quant_twins import share_random_weights

warnings.filterwarnings("ignore")


def _model(lib):
    nn, q = lib.nn, lib.ao.quantization

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.quant, self.dequant = q.QuantStub(), q.DeQuantStub()
            self.fc = nn.Linear(4, 6)
            self.bn = nn.BatchNorm1d(6)

        def forward(self, x):
            return self.dequant(self.bn(self.fc(self.quant(x))))
    return M().train()


def test_linear_bn1d_eager_qat_as_torch_ao():
    t_model, e_model = _model(torch), _model(ember)
    share_random_weights(t_model, e_model, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    data = [rng.standard_normal((8, 4)).astype(np.float32) for _ in range(3)]
    got = []
    for lib, q, model in ((torch, tq, t_model), (ember, eq, e_model)):
        fused = q.fuse_modules_qat(model, [["fc", "bn"]])
        assert type(fused.fc).__name__ == "LinearBn1d" and type(fused.bn).__name__ == "Identity"
        fused.qconfig = q.get_default_qat_qconfig("fbgemm")
        prepared = q.prepare_qat(fused)
        assert type(prepared.fc).__module__.startswith(lib.__name__ + ".ao.nn.intrinsic.qat")
        train_out = [prepared(lib.tensor(d)).detach().numpy() for d in data]
        prepared.eval()
        converted = q.convert(prepared)
        got.append((train_out, type(converted.fc).__name__, list(converted.state_dict()),
                    float(converted.fc.scale), converted(lib.tensor(data[0])).numpy()))
    (t_train, t_cls, t_keys, scale, t_out), (e_train, e_cls, e_keys, _, e_out) = got
    for t, e in zip(t_train, e_train):
        np.testing.assert_allclose(e, t, atol=1e-4)
    assert (e_cls, e_keys) == (t_cls, t_keys)
    np.testing.assert_allclose(e_out, t_out, atol=1.01 * scale)


def test_linear_bn1d_qat_fusion_checks_as_torch_ao():
    for lib, q in ((torch, tq), (ember, eq)):
        nn = lib.nn
        model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6, affine=False)).train()
        with pytest.raises(AssertionError, match="affine"):
            q.fuse_modules_qat(model, [["0", "1"]])
