"""QAT with simulated BatchNorm folding: ember.ao.nn.intrinsic.qat.ConvBn(ReLU)2d against
torch.ao.nn.intrinsic.qat on the same weights, inputs and fake-quant settings (forward
values, gradients, running statistics over training steps, freeze_bn_stats), and
prepare_qat_fx -> train -> convert_fx end to end against torch.ao."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.ao.nn.intrinsic as tnni
import torch.ao.nn.intrinsic.qat as tnniqat
import torch.ao.quantization as tq
import torch.ao.quantization.quantize_fx as tqfx

import ember
from tests.quant.quant_twins import int8_layers
import ember.ao.nn.intrinsic as enni
import ember.ao.nn.intrinsic.qat as enniqat
import ember.ao.quantization as eq
import ember.ao.quantization.quantize_fx as eqfx

pytestmark = pytest.mark.filterwarnings("ignore")
torch.backends.quantized.engine = "x86"


def qat_qconfig(lib):
    """FakeQuantize with moving-average observers (the fused fake-quant kernel of the
    default QAT qconfig rounds differently for symmetric weights, see docs)."""
    q = lib.ao.quantization
    act = q.FakeQuantize.with_args(observer=q.MovingAverageMinMaxObserver, quant_min=0,
                                   quant_max=255, dtype=lib.quint8)
    weight = q.FakeQuantize.with_args(observer=q.MovingAveragePerChannelMinMaxObserver,
                                      quant_min=-128, quant_max=127, dtype=lib.qint8,
                                      qscheme=lib.per_channel_symmetric, ch_axis=0)
    return q.QConfig(activation=act, weight=weight)


def conv_bn_state(rng, cin, cout, bias):
    state = {"0.weight": rng.standard_normal((cout, cin, 3, 3)).astype(np.float32) * 0.3,
             "1.weight": 1 + 0.2 * rng.standard_normal(cout).astype(np.float32),
             "1.bias": 0.1 * rng.standard_normal(cout).astype(np.float32),
             "1.running_mean": 0.1 * rng.standard_normal(cout).astype(np.float32),
             "1.running_var": 1 + np.abs(rng.standard_normal(cout)).astype(np.float32)}
    if bias:
        state["0.bias"] = 0.1 * rng.standard_normal(cout).astype(np.float32)
    return state


def twin_qat_modules(rng, relu, bias):
    state = conv_bn_state(rng, 3, 6, bias)
    mods = []
    for lib, nni, nniqat in ((torch, tnni, tnniqat), (ember, enni, enniqat)):
        conv = lib.nn.Conv2d(3, 6, 3, padding=1, bias=bias)
        bn = lib.nn.BatchNorm2d(6)
        fused = nni.ConvBnReLU2d(conv, bn, lib.nn.ReLU()) if relu else nni.ConvBn2d(conv, bn)
        fused.load_state_dict({k: lib.tensor(v) for k, v in state.items()}, strict=False)
        fused.train()
        fused.qconfig = qat_qconfig(lib)
        mods.append((nniqat.ConvBnReLU2d if relu else nniqat.ConvBn2d).from_float(fused))
    return mods


def _params(mod):
    names = ["weight", "bn.weight", "bn.bias"] + (["bias"] if mod.bias is not None else [])
    return {n: mod.get_parameter(n) for n in names}


@pytest.mark.parametrize("relu,bias", [(False, False), (True, True)])

def test_qat_conv_bn_matches_torch_over_training_steps(rng, relu, bias):
    t_mod, e_mod = twin_qat_modules(rng, relu, bias)
    assert type(e_mod).__name__ == type(t_mod).__name__
    for step in range(4):
        # each step starts from torch's state (parameters, BN stats, observers): fake
        # quantization is discontinuous, so float32 summation-order differences carried over
        # steps would flip a weight's rounding and compare chaos rather than the rules
        e_mod.load_state_dict({k: ember.tensor(v.detach().clone().numpy())
                               for k, v in t_mod.state_dict().items()})
        if step == 2:                      # torch.ao's recipe: freeze BN stats late in QAT
            t_mod.apply(tnniqat.freeze_bn_stats)
            e_mod.apply(enniqat.freeze_bn_stats)
            assert not e_mod.bn.training and e_mod.training
        x = rng.standard_normal((4, 3, 6, 6)).astype(np.float32)
        tx = torch.tensor(x, requires_grad=True)
        ex = ember.tensor(x, requires_grad=True)
        t_out, e_out = t_mod(tx), e_mod(ex)
        np.testing.assert_allclose(e_out.detach().numpy(), t_out.detach().numpy(),
                                   rtol=1e-5, atol=1e-5, err_msg=f"step {step}")
        g = rng.standard_normal(t_out.shape).astype(np.float32)
        t_out.backward(torch.from_numpy(g))
        e_out.backward(ember.tensor(g))
        np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-4)
        t_params, e_params = _params(t_mod), _params(e_mod)
        for name, tp in t_params.items():
            ep = e_params[name]
            np.testing.assert_allclose(ep.grad.numpy(), tp.grad.numpy(), rtol=1e-4,
                                       atol=1e-4, err_msg=f"{name} grad, step {step}")
            with torch.no_grad():                                # the same SGD step
                tp -= 0.05 * tp.grad
            with ember.no_grad():
                ep.sub_(0.05 * ep.grad)
            tp.grad, ep.grad = None, None
        for buf in ("running_mean", "running_var"):
            np.testing.assert_allclose(getattr(e_mod.bn, buf).numpy(),
                                       getattr(t_mod.bn, buf).numpy(), rtol=1e-5, atol=1e-6)
    # eval: BN uses running stats, i.e. the folded conv; to_float folds it for good
    t_mod.eval(), e_mod.eval()
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    e_eval = e_mod(ember.tensor(x)).detach().numpy()
    np.testing.assert_allclose(e_eval, t_mod(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-5)
    folded = e_mod.to_float()
    assert type(folded).__name__ == ("ConvReLU2d" if relu else "Conv2d")
    np.testing.assert_allclose(folded(ember.tensor(x)).detach().numpy(),
                               t_mod.to_float()(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-5)


def test_frozen_bn_stays_in_eval_through_train():
    conv, bn = ember.nn.Conv2d(2, 3, 3), ember.nn.BatchNorm2d(3)
    mod = enniqat.ConvBn2d.from_float(enni.ConvBn2d(conv, bn),
                                      qat_qconfig(ember).weight())
    mod.freeze_bn_stats()
    mod.train()
    assert mod.training and not mod.bn.training
    mod.update_bn_stats()
    assert mod.bn.training
    with pytest.raises(ValueError, match="affine=True"):
        enniqat.ConvBn2d.from_float(enni.ConvBn2d(ember.nn.Conv2d(2, 3, 3),
                                                  ember.nn.BatchNorm2d(3, affine=False)),
                                    qat_qconfig(ember).weight())


def model(lib):
    nn = lib.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
            self.relu = nn.ReLU()
            self.conv2, self.bn2 = nn.Conv2d(8, 5, 3, padding=1, bias=False), nn.BatchNorm2d(5)

        def forward(self, x):
            # no pooling/flatten: torch.ao's QAT re-observes their outputs with the input's
            # shared fake quantize (moving its averages), ember does not; that is the FX
            # path's shared-qparams handling, not BN folding, and is left out here
            x = self.relu(self.bn1(self.conv1(x)))
            return self.bn2(self.conv2(x))

    return Net()


def test_prepare_qat_fx_folds_bn_and_trains_like_torch_ao(rng):
    t_model, e_model = model(torch), model(ember)
    state = {}
    for k, v in t_model.state_dict().items():
        arr = rng.standard_normal(v.shape).astype(np.float32) * 0.3 if v.dtype.is_floating_point \
            else v.numpy()
        if "running_var" in k:
            arr = np.abs(arr) + 0.5
        state[k] = arr
    t_model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    e_model.load_state_dict({k: ember.tensor(np.array(v)) for k, v in state.items()})
    x0 = rng.standard_normal((4, 3, 6, 6)).astype(np.float32)
    t_prep = tqfx.prepare_qat_fx(t_model.train(), tq.QConfigMapping().set_global(
        qat_qconfig(torch)), (torch.from_numpy(x0),))
    e_prep = eqfx.prepare_qat_fx(e_model.train(), eq.QConfigMapping().set_global(
        qat_qconfig(ember)), (ember.tensor(x0),))
    assert type(e_prep.conv1).__name__ == type(t_prep.conv1).__name__ == "ConvBnReLU2d"
    assert type(e_prep.conv2).__name__ == type(t_prep.conv2).__name__ == "ConvBn2d"
    _train_side_by_side(t_prep, e_prep, (4, 3, 6, 6), (4, 5, 6, 6), "conv1", rng)
    t_prep.eval(), e_prep.eval()
    t_q, e_q = tqfx.convert_fx(t_prep), eqfx.convert_fx(e_prep)
    assert int8_layers(e_q, "conv2d")
    x = rng.standard_normal((8, 3, 6, 6)).astype(np.float32)
    t_y, e_y = t_q(torch.from_numpy(x)).numpy(), e_q(ember.tensor(x)).numpy()
    step_size = float(t_q.conv2.scale)                 # the output quantization step
    assert np.abs(t_y - e_y).max() <= 2 * step_size + 1e-6, np.abs(t_y - e_y).max() / step_size
    # same integers on most elements (the scales differ in their last float32 bits)
    assert np.mean(np.abs(t_y - e_y) < 0.5 * step_size) >= 0.9


def linear_bn_model(lib):
    nn = lib.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.bn1 = nn.Linear(6, 8), nn.BatchNorm1d(8)
            self.fc2, self.bn2 = nn.Linear(8, 4, bias=False), nn.BatchNorm1d(4)

        def forward(self, x):
            return self.bn2(self.fc2(self.bn1(self.fc1(x)).relu()))

    return Net()


def test_prepare_qat_fx_linear_bn1d_folds_and_trains_like_torch_ao(rng):
    """Linear + BatchNorm1d become LinearBn1d under prepare_qat_fx (BN folded into the
    fake-quantized weight while training), and convert_fx folds BN into a quantized Linear."""
    t_model, e_model = linear_bn_model(torch), linear_bn_model(ember)
    state = {}
    for k, v in t_model.state_dict().items():
        arr = rng.standard_normal(v.shape).astype(np.float32) * 0.3 \
            if v.dtype.is_floating_point else v.numpy()
        state[k] = np.abs(arr) + 0.5 if "running_var" in k else arr
    t_model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    e_model.load_state_dict({k: ember.tensor(np.array(v)) for k, v in state.items()})
    x0 = rng.standard_normal((8, 6)).astype(np.float32)
    t_prep = tqfx.prepare_qat_fx(t_model.train(), tq.QConfigMapping().set_global(
        qat_qconfig(torch)), (torch.from_numpy(x0),))
    e_prep = eqfx.prepare_qat_fx(e_model.train(), eq.QConfigMapping().set_global(
        qat_qconfig(ember)), (ember.tensor(x0),))
    assert type(e_prep.fc1).__name__ == type(t_prep.fc1).__name__ == "LinearBn1d"
    _train_side_by_side(t_prep, e_prep, (8, 6), (8, 4), "fc1", rng)
    t_prep.eval(), e_prep.eval()
    t_q, e_q = tqfx.convert_fx(t_prep), eqfx.convert_fx(e_prep)
    assert int8_layers(e_q, "linear")
    x = rng.standard_normal((16, 6)).astype(np.float32)
    t_y, e_y = t_q(torch.from_numpy(x)).numpy(), e_q(ember.tensor(x)).numpy()
    step_size = float(t_q.fc2.scale)
    assert np.abs(t_y - e_y).max() <= 2 * step_size + 1e-6, np.abs(t_y - e_y).max() / step_size


def conv1d_bn_model(lib):
    nn = lib.nn
    q = lib.ao.quantization

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.quant, self.dequant = q.QuantStub(), q.DeQuantStub()
            self.conv, self.bn, self.relu = nn.Conv1d(3, 4, 3), nn.BatchNorm1d(4), nn.ReLU()
            self.conv3d = nn.Conv3d(4, 2, 1)

        def forward(self, x):
            x = self.relu(self.bn(self.conv(self.quant(x))))
            return self.dequant(self.conv3d(x.unsqueeze(2).unsqueeze(2)))

    return Net()


def test_eager_qat_conv1d_bn_relu_and_conv3d_like_torch_ao(rng):
    """fuse_modules_qat fuses Conv1d + BatchNorm1d + ReLU into ConvBnReLU1d (prepare_qat:
    the QAT module with BN folded into the fake-quantized weight; convert: a quantized
    ConvReLU1d), and prepare_qat gives Conv3d its QAT form (weight fake-quantized)."""
    t_model, e_model = conv1d_bn_model(torch), conv1d_bn_model(ember)
    e_model.load_state_dict({k: ember.tensor(v.numpy()) for k, v in
                             t_model.state_dict().items()})
    models = []
    for lib, model in ((torch, t_model), (ember, e_model)):
        q = lib.ao.quantization
        model.train()
        model.qconfig = qat_qconfig(lib)
        fused = q.fuse_modules_qat(model, [["conv", "bn", "relu"]])
        models.append(q.prepare_qat(fused))
    t_prep, e_prep = models
    assert type(e_prep.conv).__name__ == type(t_prep.conv).__name__ == "ConvBnReLU1d"
    assert type(e_prep.conv3d).__name__ == type(t_prep.conv3d).__name__ == "Conv3d"
    assert hasattr(e_prep.conv3d, "weight_fake_quant")
    for step in range(3):
        x = rng.standard_normal((4, 3, 9)).astype(np.float32)
        t_out, e_out = t_prep(torch.from_numpy(x)), e_prep(ember.tensor(x))
        np.testing.assert_allclose(e_out.detach().numpy(), t_out.detach().numpy(),
                                   rtol=1e-4, atol=1e-4, err_msg=f"step {step}")
    t_prep.eval(), e_prep.eval()
    t_q, e_q = tq.convert(t_prep), eq.convert(e_prep)
    assert type(e_q.conv).__name__ == type(t_q.conv).__name__ == "ConvReLU1d"
    x = rng.standard_normal((4, 3, 9)).astype(np.float32)
    t_y, e_y = t_q(torch.from_numpy(x)).numpy(), e_q(ember.tensor(x)).numpy()
    step_size = float(t_q.conv3d.scale)
    assert np.abs(t_y - e_y).max() <= 2 * step_size + 1e-6, np.abs(t_y - e_y).max() / step_size


def _train_side_by_side(t_prep, e_prep, in_shape, target_shape, bn_owner: str, rng):
    """Three SGD steps of both prepared QAT models on the same data: outputs and the
    named fused module's BatchNorm weight gradient equal torch's at every step."""
    t_opt = torch.optim.SGD(t_prep.parameters(), lr=0.05)
    e_opt = ember.optim.SGD(e_prep.parameters(), lr=0.05)
    target = rng.standard_normal(target_shape).astype(np.float32)
    for step in range(3):
        x = rng.standard_normal(in_shape).astype(np.float32)
        t_out, e_out = t_prep(torch.from_numpy(x)), e_prep(ember.tensor(x))
        np.testing.assert_allclose(e_out.detach().numpy(), t_out.detach().numpy(),
                                   rtol=1e-4, atol=1e-4, err_msg=f"step {step}")
        t_loss = torch.nn.functional.mse_loss(t_out, torch.from_numpy(target))
        e_loss = ember.nn.functional.mse_loss(e_out, ember.tensor(target))
        t_opt.zero_grad(), e_opt.zero_grad()
        t_loss.backward(), e_loss.backward()
        np.testing.assert_allclose(getattr(e_prep, bn_owner).bn.weight.grad.numpy(),
                                   getattr(t_prep, bn_owner).bn.weight.grad.numpy(),
                                   rtol=1e-3, atol=1e-5)
        t_opt.step(), e_opt.step()
