"""fuse_fx and prepare_qat_fx fusion as PyTorch's TestFuseFx checks it, against torch.ao
on the same model: conv-bn(-relu) 1d/2d/3d in train and eval mode, linear-bn1d,
convtranspose-bn, module-relu and bn-relu, the fused module under object_type qconfigs,
fuse_custom_config_dict validation and additional fuser methods."""
from __future__ import annotations

import pytest
import torch

import ember
from qfx_suite_common import api, batches, node_kinds, tensor, twins

import numpy as np

pytestmark = pytest.mark.filterwarnings("ignore")


def _conv_bn_relu(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1d, self.conv2d, self.conv3d = nn.Conv1d(1, 1, 1), nn.Conv2d(1, 1, 1), nn.Conv3d(1, 1, 1)
            self.bn1d, self.bn2d, self.bn3d = nn.BatchNorm1d(1), nn.BatchNorm2d(1), nn.BatchNorm3d(1)
            self.conv1d2, self.conv2d2, self.conv3d2 = nn.Conv1d(1, 1, 1), nn.Conv2d(1, 1, 1), nn.Conv3d(1, 1, 1)
            self.bn1d2, self.bn2d2, self.bn3d2 = nn.BatchNorm1d(1), nn.BatchNorm2d(1), nn.BatchNorm3d(1)
            self.relu = nn.ReLU()

        def forward(self, x):
            x = self.bn1d(self.conv1d(x))
            x = self.bn2d(self.conv2d(x))
            x = self.bn3d(self.conv3d(x))
            x = self.relu(self.bn1d2(self.conv1d2(x)))
            x = self.relu(self.bn2d2(self.conv2d2(x)))
            x = self.relu(self.bn3d2(self.conv3d2(x)))
            return x
    return M()


def _modules_called(gm):
    return [k[1] for k in node_kinds(gm) if k[0] == "call_module"]


def _conv_bn_relu_qat(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2)
            self.conv2, self.bn2, self.relu = nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2), nn.ReLU()
            self.linear, self.bn1d = nn.Linear(8, 3), nn.BatchNorm1d(3)

        def forward(self, x):
            x = self.bn(self.conv(x))
            x = self.relu(self.bn2(self.conv2(x)))
            return self.bn1d(self.linear(x.flatten(1)))
    return M()


def test_prepare_qat_fx_fuses_conv_bn_relu_and_linear_bn_into_qat_modules():
    """TestFuseFx.test_fuse_conv_bn_relu's training half, 2-d convs and linear-bn1d (ember
    keeps 1-d and 3-d conv-bn apart in QAT: docs/quantization.md)."""
    t, e = twins(_conv_bn_relu_qat)
    got = {}
    for lib, m in ((torch, t), (ember, e)):
        aq, qfx, _ = api(lib)
        m.train()
        x = tensor(lib, batches((2, 1, 2, 2), n=1)[0])
        prepared = qfx.prepare_qat_fx(m, aq.get_default_qat_qconfig_mapping("x86"), (x,))
        got[lib.__name__] = [n for n in _modules_called(prepared) if "FakeQuantize" not in n]
    assert got["ember"] == got["torch"] == ["ConvBn2d", "ConvBnReLU2d", "LinearBn1d"]


def test_fuse_fx_folds_bn_and_fuses_relu_in_eval_mode():
    t, e = twins(_conv_bn_relu)
    fused = {lib.__name__: api(lib)[1].fuse_fx(m) for lib, m in ((torch, t), (ember, e))}
    assert _modules_called(fused["ember"]) == _modules_called(fused["torch"]) == [
        "Conv1d", "Conv2d", "Conv3d", "ConvReLU1d", "ConvReLU2d", "ConvReLU3d"]


def _conv_bn_relu_2d(lib):
    nn = lib.nn
    return nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(),
                         nn.Conv2d(3, 2, 1), nn.BatchNorm2d(2))


def test_fused_conv_bn_relu_computes_the_float_models_values():
    t, e = twins(_conv_bn_relu_2d)
    x = batches((2, 2, 5, 5), n=1)[0]
    fused = {lib.__name__: api(lib)[1].fuse_fx(m) for lib, m in ((torch, t), (ember, e))}
    with torch.no_grad(), ember.no_grad():
        want = fused["torch"](torch.from_numpy(x)).numpy()
        got = fused["ember"](ember.tensor(x)).numpy()
        unfused = e(ember.tensor(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, unfused, rtol=1e-4, atol=1e-5)


def _linear_bn(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear, self.bn1d = nn.Linear(3, 3), nn.BatchNorm1d(3)

        def forward(self, x):
            return self.bn1d(self.linear(x))
    return M()


def _convtranspose_bn(lib, dims=2):
    nn = lib.nn
    ct = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[dims]
    bn = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims]

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = ct(3, 3, 1), bn(3)

        def forward(self, x):
            return self.bn(self.conv(x))
    return M()


@pytest.mark.parametrize("make,shape", [
    (_linear_bn, (4, 3)),
    (lambda lib: _convtranspose_bn(lib, 1), (2, 3, 4)),
    (lambda lib: _convtranspose_bn(lib, 2), (2, 3, 4, 4)),
    (lambda lib: _convtranspose_bn(lib, 3), (2, 3, 2, 2, 2)),
])
def test_fuse_fx_folds_linear_bn1d_and_convtranspose_bn(make, shape):
    t, e = twins(make)
    x = batches(shape, n=1)[0]
    fused = {lib.__name__: api(lib)[1].fuse_fx(m) for lib, m in ((torch, t), (ember, e))}
    assert _modules_called(fused["ember"]) == _modules_called(fused["torch"])
    assert not any(n.startswith("BatchNorm") for n in _modules_called(fused["ember"]))
    with torch.no_grad(), ember.no_grad():
        want = fused["torch"](torch.from_numpy(x)).numpy()
        got = fused["ember"](ember.tensor(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _module_relu(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1d, self.conv2d, self.conv3d = nn.Conv1d(1, 1, 1), nn.Conv2d(1, 1, 1), nn.Conv3d(1, 1, 1)
            self.bn1d, self.bn2d, self.bn3d = nn.BatchNorm1d(1), nn.BatchNorm2d(1), nn.BatchNorm3d(1)
            # one ReLU each: torch.ao's fuse_fx deletes a shared ReLU module that an
            # unfused bn1d -> relu still calls
            self.r1, self.r2, self.r3 = nn.ReLU(), nn.ReLU(), nn.ReLU()
            self.r4, self.r5, self.r6 = nn.ReLU(), nn.ReLU(), nn.ReLU()

        def forward(self, x):
            x = self.r1(self.conv1d(x))
            x = self.r2(self.conv2d(x))
            x = self.r3(self.conv3d(x))
            x = self.r4(self.bn1d(x))
            x = self.r5(self.bn2d(x))
            x = self.r6(self.bn3d(x))
            return x
    return M()


def test_fuse_fx_fuses_module_relu_and_bn_relu():
    t, e = twins(_module_relu)
    fused = {lib.__name__: _modules_called(api(lib)[1].fuse_fx(m)) for lib, m in ((torch, t), (ember, e))}
    assert fused["ember"] == fused["torch"]
    assert fused["ember"] == ["ConvReLU1d", "ConvReLU2d", "ConvReLU3d", "BatchNorm1d", "ReLU",
                              "BNReLU2d", "BNReLU3d"]


def _linear_relu_linear(lib, wrapped=False):
    nn = lib.nn

    class LinearRelu(nn.Sequential):
        def __init__(self):
            super().__init__(nn.Linear(5, 5), nn.ReLU())

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin_relu = LinearRelu() if wrapped else None
            self.fc1, self.relu, self.fc2 = nn.Linear(5, 5), nn.ReLU(), nn.Linear(5, 5)

        def forward(self, x):
            if wrapped:
                return self.fc2(self.lin_relu(x))
            return self.fc2(self.relu(self.fc1(x)))
    return M()


@pytest.mark.parametrize("wrapped", [False, True])
def test_fused_module_takes_its_parts_object_type_qconfig(wrapped):
    """TestFuseFx.test_qconfig_fused_module / test_problematic_fuse_example: global None,
    Linear and ReLU (module and F.relu) configured, the LinearReLU fused and quantized."""
    got = {}
    t, e = twins(lambda lib: _linear_relu_linear(lib, wrapped))
    x = batches((5, 5), n=1)[0]
    for lib, m in ((torch, t), (ember, e)):
        aq, qfx, _ = api(lib)
        qc = aq.get_default_qconfig("fbgemm")
        mapping = {"": None, "object_type": [(lib.nn.Linear, qc), (lib.nn.ReLU, qc),
                                             (lib.nn.functional.relu, qc)]}
        prepared = qfx.prepare_fx(m, mapping, (tensor(lib, x),))
        prepared(tensor(lib, x))
        got[lib.__name__] = node_kinds(qfx.convert_fx(prepared))
    assert got["ember"] == got["torch"]
    assert ("call_module", "QuantizedLinearReLU") in got["ember"] or \
        ("call_module", "LinearReLU") in got["ember"]


def _bn_relu_after_conv(lib):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn, self.relu = nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3), nn.ReLU()
            self.bn3 = nn.BatchNorm3d(3)

        def forward(self, x):
            x = lib.nn.functional.relu(self.bn(self.conv(x)))
            return self.relu(self.bn3(x.unsqueeze(2)))
    return M()


def test_a_fused_bn_relu_converts_to_the_quantized_bn_relu_module():
    from qfx_suite_common import assert_same, flow
    t, e = flow(_bn_relu_after_conv, lambda lib, aq: aq.get_default_qconfig_mapping("x86"),
                (2, 2, 4, 4))
    assert_same(t, e, atol=1e-5)
    assert ("call_module", "BNReLU3d") in node_kinds(e[1])
    assert type(e[1].bn3).__name__ == "BNReLU3d" and "QuantizedBNReLU3d" in repr(e[1].bn3)


def _conv3d_bn(lib, relu):
    nn = lib.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv3d(2, 3, 1), nn.BatchNorm3d(3)
            self.relu = nn.ReLU() if relu else nn.Identity()

        def forward(self, x):
            return self.relu(self.bn(self.conv(x)))
    return M()


@pytest.mark.parametrize("relu", [False, True])
def test_qat_conv3d_bn_trains_and_converts_like_torch(relu):
    """TestQuantizeFx.test_conv_bn_relu's 3-d QAT half: ConvBn3d / ConvBnReLU3d with
    simulated folding over training steps, then the quantized Conv3d / ConvReLU3d."""
    t_model, e_model = twins(lambda lib: _conv3d_bn(lib, relu))
    data = batches((2, 2, 2, 3, 3), n=4, seed=3)
    got = {}
    for lib, m in ((torch, t_model), (ember, e_model)):
        aq, qfx, _ = api(lib)
        m.train()
        p = qfx.prepare_qat_fx(m, aq.get_default_qat_qconfig_mapping("x86"), (tensor(lib, data[0]),))
        kinds = [k for k in _modules_called(p) if "FakeQuantize" not in k]
        opt = lib.optim.SGD(p.parameters(), lr=0.1)
        losses = []
        for x in data:
            opt.zero_grad()
            loss = (p(tensor(lib, x)) ** 2).mean()
            loss.backward()
            opt.step()
            losses.append(float(loss))
        p.eval()
        q = api(lib)[1].convert_fx(p)
        with torch.no_grad(), ember.no_grad():
            y = q(tensor(lib, data[0])).numpy()
        got[lib.__name__] = (kinds, losses, node_kinds(q), y)
    t, e = got["torch"], got["ember"]
    assert e[0] == t[0] == (["ConvBnReLU3d"] if relu else ["ConvBn3d", "Identity"])
    np.testing.assert_allclose(e[1], t[1], rtol=1e-5)
    assert e[2] == t[2]
    np.testing.assert_allclose(e[3], t[3], atol=1e-4)
