"""The deployer's CLI route, beyond test_user_probe2_cli.py: a model file with two inputs
(int64 token ids and a float mask) and two outputs compiled by `ember compile
file.py:make` and run by `ember run`; a torch.onnx export made with the usual batch-1
dummy input and dynamic_axes, compiled at another batch, whose outputs `ember run`
writes under the file's output names; and `python -m ember.cli`, which must know the
compile / run commands as the `ember` script does. Outputs must be torch's."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
from click.testing import CliRunner  # noqa: E402

from ember.cli import main  # noqa: E402

MODEL_FILE = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(30, 8)
        self.norm = nn.LayerNorm(8)
        self.qkv = nn.Linear(8, 24)
        self.head = nn.Linear(8, 5)

    def forward(self, ids, mask):
        x = self.emb(ids)
        q, k, v = self.qkv(self.norm(x)).chunk(3, dim=-1)
        a = F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1),
                                           is_causal=True).squeeze(1)
        x = x + a
        pooled = (x * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return self.head(pooled), x


def make():
    model = Tagger()
    model.load_state_dict(torch.load(WEIGHTS))
    return model.eval()
'''


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x):
        x = torch.nn.functional.hardswish(self.bn(self.conv(x)))
        pooled = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(pooled).softmax(-1)


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _init(model, seed):
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.from_numpy(rng.standard_normal(p.shape).astype(np.float32) * 0.3))
    return model.eval()


def test_two_inputs_and_two_outputs_through_compile_and_run(tmp_path):
    namespace = {"WEIGHTS": str(tmp_path / "weights.pt")}
    exec(MODEL_FILE, namespace)
    model = _init(namespace["Tagger"](), 0)
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    (tmp_path / "model.py").write_text(f"WEIGHTS = {str(tmp_path / 'weights.pt')!r}\n"
                                       + MODEL_FILE.replace("torch", "ember"))
    result = invoke("compile", f"{tmp_path / 'model.py'}:make", "--input", "ids:2x6:int64",
                    "--input", "mask:2x6", "-o", tmp_path / "tagger.ember")
    assert result.exit_code == 0, result.output
    ids = np.array([[1, 2, 3, 4, 5, 6], [7, 8, 9, 1, 2, 0]], np.int64)
    mask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0]], np.float32)
    np.save(tmp_path / "ids.npy", ids)
    np.save(tmp_path / "mask.npy", mask)
    result = invoke("run", tmp_path / "tagger.ember", "--input", f"ids={tmp_path / 'ids.npy'}",
                    "--input", f"mask={tmp_path / 'mask.npy'}", "-o", tmp_path / "out.npz")
    assert result.exit_code == 0, result.output
    got = np.load(tmp_path / "out.npz")
    with torch.no_grad():
        want = model(torch.from_numpy(ids), torch.from_numpy(mask))
    assert sorted(got) == ["output0", "output1"]
    for key, w in zip(("output0", "output1"), want):
        np.testing.assert_allclose(got[key], w.numpy(), rtol=1e-4, atol=1e-5)


def test_a_batch_one_onnx_export_with_dynamic_axes_keeps_its_output_names(tmp_path):
    model = _init(Net(), 1)
    torch.onnx.export(model, (torch.zeros(1, 3, 12, 12),), str(tmp_path / "net.onnx"),
                      input_names=["x"], output_names=["probs"],
                      dynamic_axes={"x": {0: "batch"}, "probs": {0: "batch"}},
                      opset_version=17, dynamo=False)
    result = invoke("compile", tmp_path / "net.onnx", "--input", "x:5x3x12x12",
                    "-o", tmp_path / "net.ember")
    assert result.exit_code == 0, result.output
    x = np.random.default_rng(2).standard_normal((5, 3, 12, 12)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    result = invoke("run", tmp_path / "net.ember", "--input", tmp_path / "x.npy",
                    "-o", tmp_path / "out.npz")
    assert result.exit_code == 0, result.output
    got = np.load(tmp_path / "out.npz")
    assert list(got) == ["probs"]              # the file's name, not `output`
    with torch.no_grad():
        np.testing.assert_allclose(got["probs"], model(torch.from_numpy(x)).numpy(),
                                   rtol=1e-4, atol=1e-6)


def test_python_dash_m_ember_cli_knows_the_aot_commands():
    out = subprocess.run([sys.executable, "-m", "ember.cli", "--help"], capture_output=True,
                         text=True, check=True).stdout
    for command in ("compile", "run", "bench", "inspect"):
        assert f"  {command} " in out, out
