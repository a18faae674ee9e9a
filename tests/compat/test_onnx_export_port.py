"""torch.onnx.export-style deploy scripts with `torch` as ember: the file ember writes,
run by onnxruntime, computes what torch's model (same weights) computes."""
from __future__ import annotations

import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

import ember  # noqa: E402
from porting import copy_state_dict  # noqa: E402


def _cnn(lib):
    nn, F = lib.nn, lib.nn.functional

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1, stride=2)
            self.bn = nn.BatchNorm2d(8)
            self.fc = nn.Linear(8, 10)
            self.ln = nn.LayerNorm(10)

        def forward(self, x):
            y = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)
            y = F.adaptive_avg_pool2d(y, 1).flatten(1)
            y = self.ln(self.fc(y))
            return F.softmax(F.gelu(y) * 2 + y.sigmoid() - y.tanh(), -1)
    return Net().eval()


def _encoder(lib):
    nn, F = lib.nn, lib.nn.functional

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(20, 16)
            self.qkv = nn.Linear(16, 48)
            self.out = nn.Linear(16, 16)
            self.norm = nn.LayerNorm(16)
            self.ff = nn.Sequential(nn.Linear(16, 32), nn.GELU(approximate="tanh"),
                                    nn.Linear(32, 16))

        def forward(self, ids):
            h = self.emb(ids)
            b, t, c = h.shape
            q, k, v = self.qkv(h).view(b, t, 3, 2, c // 2).permute(2, 0, 3, 1, 4)
            att = (q @ k.transpose(-2, -1)) * (1.0 / (c // 2) ** 0.5)
            y = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, t, c)
            h = self.norm(h + self.out(y))
            return h + self.ff(h)
    return Encoder().eval()


def _pair(build):
    torch.manual_seed(0)
    ref = build(torch)
    port = build(ember)
    copy_state_dict(ref, port)
    return ref, port


def _run_onnx(data: bytes, feeds: dict):
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds)


@pytest.mark.parametrize("build,make_input", [
    (_cnn, lambda rng: rng.standard_normal((2, 3, 16, 16)).astype(np.float32)),
    (_encoder, lambda rng: rng.integers(0, 20, (2, 5)))], ids=["cnn", "encoder"])
def test_exported_file_computes_what_torch_computes(build, make_input):
    ref, port = _pair(build)
    x = make_input(np.random.default_rng(0))
    buffer = io.BytesIO()
    ember.onnx.export(port, (ember.tensor(x),), buffer, input_names=["x"],
                      output_names=["y"], opset_version=17)
    (got,) = _run_onnx(buffer.getvalue(), {"x": x})
    with torch.no_grad():
        want = ref(torch.tensor(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_dynamic_axes_and_their_refusal(tmp_path):
    ref, port = _pair(lambda lib: lib.nn.Sequential(lib.nn.Linear(4, 8), lib.nn.ReLU(),
                                                    lib.nn.Linear(8, 3)))
    path = tmp_path / "mlp.onnx"
    ember.onnx.export(port, ember.randn(2, 4), str(path), input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    x = np.random.default_rng(1).standard_normal((7, 4)).astype(np.float32)
    (got,) = _run_onnx(path.read_bytes(), {"x": x})
    with torch.no_grad():
        np.testing.assert_allclose(got, ref(torch.tensor(x)).numpy(), rtol=1e-5, atol=1e-6)
    # shape ops write the dynamic batch as Reshape's 0 (the encoder's views)
    ref, encoder = _pair(_encoder)
    buffer = io.BytesIO()
    ember.onnx.export(encoder, ember.tensor(np.zeros((2, 5), dtype=np.int64)), buffer,
                      dynamic_axes={"ids": {0: "batch"}})
    ids = np.random.default_rng(2).integers(0, 20, (3, 5))
    (got,) = _run_onnx(buffer.getvalue(), {"ids": ids})
    with torch.no_grad():
        np.testing.assert_allclose(got, ref(torch.tensor(ids)).numpy(), rtol=1e-4, atol=1e-5)
    # a shape ONNX cannot write is refused, naming the op
    with pytest.raises(ember.onnx.OnnxExportError, match="upsample_nearest2d over dynamic"):
        q = ember.randn(1, 2, 4, 4)
        ember.onnx.export(lambda q: ember.nn.functional.interpolate(q, scale_factor=2.0),
                          q, io.BytesIO(), input_names=["q"], dynamic_axes={"q": {2: "h"}})


def test_an_op_without_onnx_form_is_named():
    with pytest.raises(ember.onnx.OnnxExportError, match="no ONNX form for op 'cumsum'"):
        ember.onnx.export(lambda x: x.cumsum(0), (ember.ones(3),), io.BytesIO())
