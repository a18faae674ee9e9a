"""ember.onnx.load: models exported by torch.onnx.export (torch is the oracle) import as
GraphModules whose results match torch's; they compile and package; unsupported ops are
named with their node."""
from __future__ import annotations

import io

import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
import ember.onnx  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def to_onnx(model, *args, opset=17) -> bytes:
    f = io.BytesIO()
    torch.onnx.export(model.eval(), args, f, dynamo=False, opset_version=opset,
                      input_names=[f"in{i}" for i in range(len(args))])
    return f.getvalue()


def check(model, *args, opset=17, rtol=1e-5, atol=1e-5):
    gm = ember.onnx.load(to_onnx(model, *args, opset=opset))
    with torch.no_grad():
        want = model(*args)
    want = want if isinstance(want, tuple) else (want,)
    inputs = [ember.tensor(a.numpy()) for a in args]
    got = gm(*inputs)
    got = got if isinstance(got, tuple) else (got,)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=rtol, atol=atol)
    return gm, inputs, got


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.l1, self.l2, self.l3 = (torch.nn.Linear(10, 16), torch.nn.Linear(16, 16),
                                     torch.nn.Linear(16, 4))

    def forward(self, x):
        x = torch.relu(self.l1(x))
        x = torch.sigmoid(self.l2(x)) + torch.tanh(x) * torch.nn.functional.gelu(x)
        return torch.softmax(self.l3(x), dim=-1)


class CNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.c2 = torch.nn.Conv2d(8, 8, 3, stride=2, padding=(0, 1), groups=2)
        self.fc = torch.nn.Linear(8 * 2 * 2, 5)

    def forward(self, x):
        x = torch.nn.functional.max_pool2d(torch.relu(self.c1(x)), 2)
        x = self.bn(x)                     # after a pool: not folded into the conv
        x = torch.nn.functional.avg_pool2d(self.c2(x), 2, ceil_mode=True)
        x = torch.cat([x, x * 0.5], dim=1)[:, :8]
        return self.fc(torch.flatten(x, 1)), x.mean(dim=(2, 3))


class Encoder(torch.nn.Module):
    """A BERT-style block by hand: embedding (Gather), LayerNorm, MatMul attention with
    Reshape/Transpose, Softmax, GELU MLP."""
    def __init__(self, vocab=20, d=16, heads=2):
        super().__init__()
        self.emb, self.heads = torch.nn.Embedding(vocab, d), heads
        self.qkv, self.out = torch.nn.Linear(d, 3 * d), torch.nn.Linear(d, d)
        self.ln1, self.ln2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
        self.ff = torch.nn.Sequential(torch.nn.Linear(d, 32), torch.nn.GELU(),
                                      torch.nn.Linear(32, d))

    def forward(self, tokens):
        x = self.emb(tokens)
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).chunk(3, dim=-1)
        split = lambda z: z.reshape(b, t, self.heads, d // self.heads).transpose(1, 2)  # noqa
        att = torch.softmax(split(q) @ split(k).transpose(-1, -2) / (d // self.heads) ** 0.5,
                            dim=-1)
        y = (att @ split(v)).transpose(1, 2).reshape(b, t, d)
        x = x + self.out(y)
        return x + self.ff(self.ln2(x))


def test_mlp(rng):
    torch.manual_seed(0)
    gm, inputs, _ = check(MLP(), torch.tensor(rng.standard_normal((3, 10), dtype=np.float32)))
    assert isinstance(gm(*inputs), ember.Tensor)     # one output: a tensor, as in torch


def test_cnn_conv_bn_pools_concat_slice(rng):
    torch.manual_seed(1)
    model = CNN()
    model.bn.running_mean.uniform_(-1, 1)
    model.bn.running_var.uniform_(0.5, 2)
    x = torch.tensor(rng.standard_normal((2, 3, 16, 16), dtype=np.float32))
    ops = {n.op_type for n in onnx.load_model_from_string(to_onnx(model, x)).graph.node}
    assert {"BatchNormalization", "Conv", "MaxPool", "AveragePool", "Slice"} <= ops
    gm, inputs, got = check(model, x)
    names = {n.target.name for n in gm.graph.nodes if n.op == "call_function"
             and hasattr(n.target, "name")}
    assert {"conv2d", "max_pool2d", "avg_pool2d", "cat"} <= names
    compiled = ember.compile(gm)           # the imported graph compiles
    with ember.no_grad():
        again = compiled(*inputs)
    for a, b in zip(again, got):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)


def test_transformer_encoder_block(rng):
    torch.manual_seed(2)
    tokens = torch.tensor(rng.integers(0, 20, (2, 5)))
    check(Encoder(), tokens, rtol=1e-4, atol=1e-5)


def test_old_opset_softmax_and_squeeze(rng):
    class Old(torch.nn.Module):
        def forward(self, x):
            return torch.softmax(x, dim=1).unsqueeze(0).squeeze(0).sum(dim=1, keepdim=True)
    check(Old(), torch.tensor(rng.standard_normal((3, 4), dtype=np.float32)), opset=11)


def test_unsupported_op_is_named():
    class Cum(torch.nn.Module):
        def forward(self, x):
            return torch.cumsum(x, dim=0)
    with pytest.raises(ember.onnx.OnnxError, match=r"unsupported ONNX op 'CumSum' \(node "
                                                   r"'/CumSum'"):
        ember.onnx.load(to_onnx(Cum(), torch.ones(3)))


def test_not_onnx_bytes():
    with pytest.raises(ember.onnx.OnnxError, match="cannot read an ONNX model"):
        ember.onnx.load(b"\x00garbage")


def test_onnx_file_through_cli_to_artifact(tmp_path, rng):
    from click.testing import CliRunner
    from ember.cli import main
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    (tmp_path / "m.onnx").write_bytes(to_onnx(model, torch.zeros(4, 6)))
    result = CliRunner().invoke(main, ["compile", str(tmp_path / "m.onnx"), "-o",
                                       str(tmp_path / "m.ember")])
    assert result.exit_code == 0, result.output
    x = rng.standard_normal((4, 6), dtype=np.float32)
    got = ember.aot.load_package(tmp_path / "m.ember")(x).numpy()
    with torch.no_grad():
        want = model(torch.tensor(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
