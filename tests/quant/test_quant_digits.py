"""The digits CNN (examples/digits_cnn.py's layers) trained briefly in torch, then
quantized by torch.ao and by ember from the same float weights and calibration data:
same predictions as torch.ao on >= 99% of the test set, int8 accuracy within 1 point of
float."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.ao.quantization as tq
import torch.ao.quantization.quantize_fx as tqfx

import ember
import ember.ao.quantization as eq
import ember.ao.quantization.quantize_fx as eqfx

sklearn = pytest.importorskip("sklearn")
pytestmark = pytest.mark.filterwarnings("ignore")
torch.backends.quantized.engine = "x86"


def digits_cnn(lib):
    nn = lib.nn
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 2 * 2, 64), nn.ReLU(), nn.Linear(64, 10))


def _train(x_tr, y_tr):
    t_model = digits_cnn(torch)
    opt = torch.optim.Adam(t_model.parameters(), lr=5e-3)
    xt, yt = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    for epoch in range(4):
        for i in range(0, len(xt), 64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(t_model(xt[i:i + 64]), yt[i:i + 64]).backward()
            opt.step()
    return t_model.eval()


def test_digits_cnn_int8_agrees_with_torch_ao_and_keeps_accuracy():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    x_tr, x_te, y_tr, y_te = train_test_split(x, digits.target, test_size=0.2, random_state=0,
                                              stratify=digits.target)
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)          # tiny batches: threads only add contention
    try:
        t_model = _train(x_tr, y_tr)
    finally:
        torch.set_num_threads(threads)
    e_model = digits_cnn(ember).eval()
    e_model.load_state_dict({k: ember.tensor(v.detach().numpy())
                             for k, v in t_model.state_dict().items()})
    calib = x_tr[:256]
    t_prep = tqfx.prepare_fx(t_model, tq.get_default_qconfig_mapping("x86"),
                             (torch.from_numpy(calib),))
    t_prep(torch.from_numpy(calib))
    e_prep = eqfx.prepare_fx(e_model, eq.get_default_qconfig_mapping("x86"),
                             (ember.tensor(calib),))
    e_prep(ember.tensor(calib))
    t_pred = tqfx.convert_fx(t_prep)(torch.from_numpy(x_te)).argmax(1).numpy()
    e_pred = eqfx.convert_fx(e_prep)(ember.tensor(x_te)).argmax(1).numpy()
    float_acc = (t_model(torch.from_numpy(x_te)).argmax(1).numpy() == y_te).mean()
    int8_acc = (e_pred == y_te).mean()
    assert float_acc > 0.9, float_acc
    assert (t_pred == e_pred).mean() >= 0.99, (t_pred == e_pred).mean()
    assert int8_acc >= float_acc - 0.01, (int8_acc, float_acc)
