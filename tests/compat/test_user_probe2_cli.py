"""The ember CLI on a user's model file: a CNN trained (here: initialised from NumPy)
and saved with torch, its model file with `torch` changed to `ember` loading that
checkpoint, compiled with `ember compile file.py:make` (static and --dynamic batch) and
run with `ember run`; and a torch.onnx-exported file compiled by `ember compile`. The
outputs must be torch's."""
from __future__ import annotations

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


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return F.log_softmax(self.fc(x), dim=-1)


def make():
    model = Net()
    model.load_state_dict(torch.load(WEIGHTS, map_location="cpu"))
    return model.eval()
'''


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    """(folder, torch model): the torch model file and checkpoint, and the file ported."""
    tmp = tmp_path_factory.mktemp("user_cli")
    namespace = {"WEIGHTS": str(tmp / "weights.pt")}
    exec(MODEL_FILE, namespace)
    model = namespace["Net"]()
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.from_numpy(rng.standard_normal(p.shape).astype(np.float32) * 0.3))
        model.bn1.running_mean.copy_(torch.linspace(-0.2, 0.2, 8))
        model.bn1.running_var.copy_(torch.linspace(0.5, 1.5, 8))
    torch.save(model.state_dict(), tmp / "weights.pt")
    ported = MODEL_FILE.replace("torch", "ember")
    (tmp / "model.py").write_text(f"WEIGHTS = {str(tmp / 'weights.pt')!r}\n" + ported)
    return tmp, model.eval()


def _run(tmp, artifact, x, name, key="output"):
    np.save(tmp / f"{name}.npy", x)
    result = invoke("run", artifact, "--input", f"x={tmp / (name + '.npy')}", "-o",
                    tmp / f"{name}.npz")
    assert result.exit_code == 0, result.output
    return np.load(tmp / f"{name}.npz")[key]


def _torch(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def test_compile_a_users_model_file_with_a_torch_checkpoint(user_files):
    tmp, model = user_files
    artifact = tmp / "net.ember"
    result = invoke("compile", f"{tmp / 'model.py'}:make", "--input", "x:4x3x16x16",
                    "-o", artifact)
    assert result.exit_code == 0, result.output
    x = np.random.default_rng(1).standard_normal((4, 3, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(_run(tmp, artifact, x, "static"), _torch(model, x),
                               rtol=1e-4, atol=1e-5)


def test_compile_with_a_dynamic_batch(user_files):
    tmp, model = user_files
    artifact = tmp / "net_dyn.ember"
    result = invoke("compile", f"{tmp / 'model.py'}:make", "--input", "x:8x3x16x16",
                    "--dynamic", "x:0:1-8", "-o", artifact)
    assert result.exit_code == 0, result.output
    for n in (1, 3, 8):
        x = np.random.default_rng(n).standard_normal((n, 3, 16, 16)).astype(np.float32)
        np.testing.assert_allclose(_run(tmp, artifact, x, f"dyn{n}"), _torch(model, x),
                                   rtol=1e-4, atol=1e-5)


def test_compile_a_torch_onnx_export(user_files):
    tmp, model = user_files
    x = np.random.default_rng(2).standard_normal((2, 3, 16, 16)).astype(np.float32)
    torch.onnx.export(model, (torch.from_numpy(x),), str(tmp / "net.onnx"),
                      input_names=["x"], output_names=["y"], opset_version=17, dynamo=False)
    artifact = tmp / "net_onnx.ember"
    result = invoke("compile", tmp / "net.onnx", "-o", artifact)
    assert result.exit_code == 0, result.output
    # the .npz key is the file's output name
    np.testing.assert_allclose(_run(tmp, artifact, x, "onnx", key="y"), _torch(model, x),
                               rtol=1e-4, atol=1e-5)


def test_compile_a_saved_exported_program(user_files):
    """The AOT user's other route: export in the ported script, save the .pt2, compile."""
    import ember
    tmp, model = user_files
    namespace = {}
    exec((tmp / "model.py").read_text(), namespace)
    x = np.random.default_rng(3).standard_normal((2, 3, 16, 16)).astype(np.float32)
    ep = ember.export.export(namespace["make"](), (ember.tensor(x),))
    ember.export.save(ep, str(tmp / "net.pt2"))
    artifact = tmp / "net_pt2.ember"
    result = invoke("compile", tmp / "net.pt2", "-o", artifact)
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(_run(tmp, artifact, x, "pt2"), _torch(model, x),
                               rtol=1e-4, atol=1e-5)
