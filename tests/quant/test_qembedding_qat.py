"""Embeddings under torch.ao's float-qparams scheme: fake quantization with float zero
points (default_embedding_fake_quant), QAT Embedding / EmbeddingBag in eager mode
(default_embedding_qat_qconfig, get_embedding_qat_module_mappings) and their
conversion to the weight-only quantized modules, all against torch.ao."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.ao.quantization as tq

import ember
import ember.ao.quantization as eq

pytestmark = pytest.mark.filterwarnings("ignore")


def test_fake_quantize_per_channel_with_float_zero_points_matches_torch(rng):
    x = (rng.standard_normal((16, 9)) * 3).astype(np.float32)
    scale = (rng.random(16) * 0.02 + 0.001).astype(np.float32)
    zero = (rng.random(16) * 255).astype(np.float32)          # fractional zero points
    tx = torch.from_numpy(x).requires_grad_()
    t_out = torch.fake_quantize_per_channel_affine(tx, torch.from_numpy(scale),
                                                   torch.from_numpy(zero), 0, 0, 255)
    t_out.sum().backward()
    ex = ember.tensor(x, requires_grad=True)
    e_out = ember.fake_quantize_per_channel_affine(ex, ember.tensor(scale),
                                                   ember.tensor(zero), 0, 0, 255)
    e_out.sum().backward()
    np.testing.assert_array_equal(e_out.detach().numpy(), t_out.detach().numpy())
    np.testing.assert_array_equal(ex.grad.numpy(), tx.grad.numpy())
    assert 0 < tx.grad.numpy().mean() < 1                     # some values clipped


def test_default_embedding_fake_quant_keeps_float_zero_points(rng):
    w = rng.standard_normal((12, 7)).astype(np.float32)
    t_fq, e_fq = tq.default_embedding_fake_quant(), eq.default_embedding_fake_quant()
    t_out, e_out = t_fq(torch.from_numpy(w)), e_fq(ember.tensor(w))
    np.testing.assert_array_equal(e_out.detach().numpy(), t_out.detach().numpy())
    assert e_fq.zero_point.dtype is ember.float32
    np.testing.assert_array_equal(e_fq.zero_point.numpy(), t_fq.zero_point.numpy())
    np.testing.assert_array_equal(e_fq.scale.numpy(), t_fq.scale.numpy())
    assert set(e_fq.state_dict()) == set(t_fq.state_dict())
    fresh = eq.default_embedding_fake_quant()
    fresh.load_state_dict(e_fq.state_dict())
    np.testing.assert_array_equal(fresh.zero_point.numpy(), t_fq.zero_point.numpy())


def _model(lib, rng):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 6)
            self.bag = nn.EmbeddingBag(10, 6, mode="sum")

        def forward(self, i):
            return self.emb(i).sum(1) + self.bag(i)
    model = M()
    model.load_state_dict({k: lib.tensor(rng.standard_normal(tuple(v.shape)).astype(
        np.float32)) for k, v in model.state_dict().items()})
    return model


def _qat_then_convert(lib, Q, mappings, seed):
    rng = np.random.default_rng(seed)
    model = _model(lib, rng).train()
    model.emb.qconfig = model.bag.qconfig = Q.default_embedding_qat_qconfig
    prepared = Q.prepare_qat(model, mapping=mappings.get_embedding_qat_module_mappings())
    opt = lib.optim.SGD(prepared.parameters(), lr=0.1)
    idx = lib.tensor(np.array([[1, 2, 3], [4, 5, 9]]))
    losses = []
    for _ in range(3):
        opt.zero_grad()
        out = prepared(idx)
        loss = (out * out).mean()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    kinds = (type(prepared.emb).__name__, type(prepared.bag).__name__)
    prepared.eval()
    converted = Q.convert(prepared,
                          mapping=mappings.get_embedding_static_quant_module_mappings())
    return losses, kinds, converted, converted(idx).numpy()


def test_eager_qat_embeddings_train_and_convert_like_torch_ao():
    import ember.ao.quantization.quantization_mappings as em
    import torch.ao.quantization.quantization_mappings as tm
    t_losses, t_kinds, t_conv, t_out = _qat_then_convert(torch, tq, tm, 3)
    e_losses, e_kinds, e_conv, e_out = _qat_then_convert(ember, eq, em, 3)
    assert e_kinds == t_kinds == ("Embedding", "EmbeddingBag")
    np.testing.assert_allclose(e_losses, t_losses, rtol=1e-6)
    np.testing.assert_allclose(e_out, t_out, rtol=1e-5, atol=1e-6)
    for name in ("emb", "bag"):
        t_w, e_w = getattr(t_conv, name).weight(), getattr(e_conv, name).weight()
        np.testing.assert_array_equal(e_w.int_repr().numpy(), t_w.int_repr().numpy())
        # the trained weights agree to float rounding, so do the float zero points
        np.testing.assert_allclose(e_w.q_per_channel_zero_points().numpy(),
                                   t_w.q_per_channel_zero_points().numpy(), rtol=1e-6)
        assert str(getattr(e_conv, name)).replace("ember.", "torch.") == \
            str(getattr(t_conv, name))


def test_qat_embedding_refuses_an_integer_zero_point_scheme():
    emb = ember.nn.Embedding(4, 3)
    emb.qconfig = eq.default_qat_qconfig
    with pytest.raises(AssertionError, match="per_channel_affine_float_qparams"):
        ember.ao.nn.qat.Embedding.from_float(emb)
