"""ONNX files written by torch.onnx.export (the TorchScript exporter, dynamo=False: the
dynamo one needs onnxscript) at several opsets, read by ember.onnx.load: the imported
module's results must equal torch's eager model. The ops PyTorch's ONNX suites export
for common layers: comparisons and logic, activations written as their own ONNX ops
(Elu, Selu, HardSigmoid, HardSwish, Softplus), ArgMax/TopK, Pad, 1-D Conv,
ConvTranspose, LSTM and GRU (bidirectional, stacked), and the Mod that attention's
shape arithmetic folds. An imported model
also packages with ember.aot."""
from __future__ import annotations

import io

import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
import ember.onnx  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore")


def _to_onnx(model, args, opset=17) -> bytes:
    buffer = io.BytesIO()
    torch.onnx.export(model.eval(), args, buffer, dynamo=False, opset_version=opset,
                      input_names=[f"in{i}" for i in range(len(args))])
    return buffer.getvalue()


def check(model, args, opset=17, rtol=1e-4, atol=1e-5):
    module = ember.onnx.load(_to_onnx(model, args, opset))
    with torch.no_grad():
        want = model(*args)
    got = module(*[ember.tensor(a.numpy()) for a in args])
    want = list(want) if isinstance(want, (tuple, list)) else [want]
    got = list(got) if isinstance(got, (tuple, list)) else [got]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert tuple(g.shape) == tuple(w.shape)
        np.testing.assert_allclose(g.numpy(), w.numpy().astype(g.numpy().dtype), rtol=rtol,
                                   atol=atol)
    return module


class Lambda(torch.nn.Module):
    def __init__(self, fn, *layers):
        super().__init__()
        self.fn, self.layers = fn, torch.nn.ModuleList(layers)

    def forward(self, *xs):
        return self.fn(self.layers, *xs)


F = torch.nn.functional
CASES = {
    "compare_logic": (lambda m, x: ((x > 0) & (x < 0.5) | (x == x.max())).float() +
                      (x >= 0.2).float() - (x <= -0.2).float() + torch.logical_not(x > 1)
                      .float(), [(2, 5)]),
    "activations": (lambda m, x: F.elu(x) + F.selu(x) + F.hardsigmoid(x) + F.hardswish(x) +
                    F.softplus(x) + torch.sin(x) * torch.cos(x) + torch.floor(x) +
                    torch.sign(x), [(3, 4)]),
    "argmax_topk": (lambda m, x: (x.argmax(-1), x.argmin(0), x.topk(2, dim=-1).values),
                    [(3, 5)]),
    "pad": (lambda m, x: F.pad(x, (1, 2, 0, 1), value=-1.0) * 2, [(1, 2, 3, 3)]),
    "conv1d": (lambda m, x: torch.relu(m[0](x)), [(2, 3, 9)], torch.nn.Conv1d(3, 4, 3,
                                                                               padding=2,
                                                                               dilation=2)),
    "conv_transpose": (lambda m, x: m[0](x), [(1, 3, 4, 4)],
                       torch.nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1,
                                                output_padding=1)),
    "resize": (lambda m, x: F.interpolate(x, scale_factor=2, mode="nearest") +
               F.interpolate(x, size=(6, 6), mode="bilinear", align_corners=False) +
               F.interpolate(x, size=(6, 6), mode="bilinear", align_corners=True),
               [(1, 2, 3, 3)]),
    "attention": (lambda m, x: m[0](x, x, x, need_weights=False)[0], [(2, 5, 8)],
                  torch.nn.MultiheadAttention(8, 2, batch_first=True)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_ops(name):
    fn, shapes, *layers = CASES[name]
    torch.manual_seed(0)
    check(Lambda(fn, *layers), tuple(torch.randn(*s) for s in shapes))


@pytest.mark.parametrize("kind,options", [
    ("LSTM", dict(num_layers=2, bidirectional=True)), ("GRU", dict(batch_first=True)),
    ("GRU", dict(bidirectional=True))], ids=["lstm_2layer_bidir", "gru_batch_first",
                                             "gru_bidir"])
def test_recurrent_layers(kind, options):
    """torch writes nn.LSTM / nn.GRU as ONNX's LSTM / GRU ops (one per layer)."""
    torch.manual_seed(0)
    layer = getattr(torch.nn, kind)(4, 5, **options)
    shape = (2, 3, 4)
    def run(m, x):
        out, state = m[0](x)
        return (out, *state) if isinstance(state, tuple) else (out, state)
    check(Lambda(run, layer), (torch.randn(*shape),))


@pytest.mark.parametrize("opset", [11, 13, 17])
def test_opsets_of_a_padded_cnn(opset):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ELU(),
                                torch.nn.ZeroPad2d((1, 0, 1, 0)), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 5 * 5, 3), torch.nn.Hardswish())
    check(model, (torch.randn(2, 3, 6, 6),), opset=opset)


def test_a_file_with_dynamic_axes_imports_at_given_sizes(tmp_path):
    """A file exported with dynamic_axes has no static input sizes: ember.onnx.load
    refuses it saying how to give them; with input_shapes (or `ember compile --input`)
    the module is traced at those sizes."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 4 * 4, 2))
    path = tmp_path / "dynamic.onnx"
    torch.onnx.export(model.eval(), (torch.randn(2, 3, 6, 6),), str(path), dynamo=False,
                      input_names=["image"], dynamic_axes={"image": {0: "batch"}})
    with pytest.raises(ember.onnx.OnnxError, match="input_shapes"):
        ember.onnx.load(str(path))
    with pytest.raises(ember.onnx.OnnxError, match="dim 1 of input 'image' is 3"):
        ember.onnx.load(str(path), input_shapes={"image": (5, 4, 6, 6)})
    x = torch.randn(5, 3, 6, 6)
    module = ember.onnx.load(str(path), input_shapes={"image": (5, 3, 6, 6)})
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(module(ember.tensor(x.numpy())).numpy(), want, rtol=1e-4,
                               atol=1e-5)
    from click.testing import CliRunner
    from ember.cli import main
    out = tmp_path / "dynamic.pt2"
    result = CliRunner().invoke(main, ["compile", str(path), "--input", "image:5x3x6x6",
                                       "-o", str(out)])
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(ember.aot.load_package(out)(x.numpy()).numpy(), want,
                               rtol=1e-4, atol=1e-5)


def test_imported_model_packages(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv1d(2, 4, 3, padding=1), torch.nn.SELU(),
                                torch.nn.Flatten(), torch.nn.Linear(4 * 6, 2))
    x = torch.randn(3, 2, 6)
    module = check(model, (x,))
    ex = ember.tensor(x.numpy())
    path = tmp_path / "imported.pt2"
    ember.aot.compile_and_package(ember.export(module, (ex,)), path)
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(ember.aot.load_package(path)(ex).numpy(), want, rtol=1e-4,
                               atol=1e-5)
