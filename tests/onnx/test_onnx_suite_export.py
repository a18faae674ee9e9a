"""What PyTorch's ONNX exporter suites (test/onnx) check of torch.onnx.export,
re-expressed for ember.onnx.export: a model is written once against `lib`, ember's copy
gets torch's weights, ember writes the ONNX file, onnxruntime runs it and its results
must equal torch's eager model. Opset choices, input/output names, dynamic_axes and
dynamic_shapes (run at other sizes), several inputs and outputs, and common modules
(MLP, CNN with flatten, layer norm, attention, LSTM/GRU, embedding, conv1d, transposed
conv, padding, upsampling, comparisons, argmax/topk)."""
from __future__ import annotations

import io

import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
import ember.onnx  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore")


def _pair(build):
    torch.manual_seed(0)
    ref = build(torch).eval()
    port = build(ember).eval()
    port.load_state_dict({k: ember.tensor(v.detach().numpy().copy())
                          for k, v in ref.state_dict().items()})
    return ref, port


def _export(port, args, **options) -> bytes:
    buffer = io.BytesIO()
    ember.onnx.export(port, tuple(ember.tensor(a.numpy()) for a in args), buffer, **options)
    return buffer.getvalue()


def _run(data: bytes, args) -> tuple[list, list]:
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, {n: a.numpy() for n, a in zip(names, args)}), names


def check(build, args, calls=None, rtol=1e-4, atol=1e-5, **options):
    """Export `build`'s ember model at `args`; onnxruntime on each call's inputs (default
    `args`) must give torch's results. Returns the ONNX model."""
    ref, port = _pair(build)
    data = _export(port, args, **options)
    for call in calls or [args]:
        got, _ = _run(data, call)
        with torch.no_grad():
            want = ref(*call)
        want = list(want) if isinstance(want, (tuple, list)) else [want]
        assert len(got) == len(want)
        for g, w in zip(got, want):
            w = w.numpy()
            assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, g.dtype, w.shape,
                                                               w.dtype)
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)
    return onnx.load_from_string(data)


def _mlp(lib):
    return lib.nn.Sequential(lib.nn.Linear(4, 8), lib.nn.ReLU(), lib.nn.Linear(8, 3),
                             lib.nn.Softmax(dim=0))


def _norm_block(lib):
    class Model(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = lib.nn.Linear(8, 8)
            self.norm = lib.nn.LayerNorm(8)

        def forward(self, x):
            return lib.nn.functional.gelu(self.norm(self.linear(x))).sum(1)
    return Model()


@pytest.mark.parametrize("opset", [9, 11, 13, 17, 18])
def test_opset_versions(opset):
    """Softmax over a leading dim, LayerNormalization, ReduceSum: each written as the
    opset defines it (before 13 Softmax coerces to 2-D; LayerNormalization is 17's;
    axes moved to inputs in 13 and 18)."""
    model = check(_mlp, (torch.randn(2, 4),), opset_version=opset)
    assert model.opset_import[0].version == opset
    check(_norm_block, (torch.randn(2, 3, 8),), opset_version=opset)


def _two(lib):
    class Model(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = lib.nn.Linear(4, 4)

        def forward(self, x, y):
            return self.linear(x) + y, (x * y).sum(-1)
    return Model()


def test_input_and_output_names():
    model = check(_two, (torch.randn(2, 4), torch.randn(2, 4)), input_names=["a", "b"],
                  output_names=["total", "dot"])
    assert [i.name for i in model.graph.input if i.name in ("a", "b")] == ["a", "b"]
    assert [o.name for o in model.graph.output] == ["total", "dot"]
    # unnamed inputs take forward's parameter names, as torch's exporter names them
    model = check(_two, (torch.randn(2, 4), torch.randn(2, 4)))
    assert [i.name for i in model.graph.input][:2] == ["x", "y"]


def _cnn(lib):
    class Model(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = lib.nn.Conv2d(3, 8, 3, padding=1)
            self.bn = lib.nn.BatchNorm2d(8)
            self.grouped = lib.nn.Conv2d(8, 8, 3, stride=2, groups=2)
            self.fc = lib.nn.Linear(8 * 2 * 2, 4)

        def forward(self, x):
            y = lib.nn.functional.max_pool2d(lib.relu(self.bn(self.conv(x))), 2)
            return self.fc(self.grouped(y).flatten(1))
    return Model()


def test_dynamic_axes_through_shape_ops():
    """A dynamic batch through flatten/reshape (ONNX Reshape's 0 keeps it), named as
    dynamic_axes names it, run at other batch sizes."""
    model = check(_cnn, (torch.randn(2, 3, 12, 12),),
                  calls=[(torch.randn(3, 3, 12, 12),), (torch.randn(1, 3, 12, 12),)],
                  input_names=["image"], output_names=["logits"],
                  dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [3, 12, 12]
    assert model.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def _encoder(lib):
    class Model(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = lib.nn.Embedding(20, 16)
            self.qkv = lib.nn.Linear(16, 48)
            self.norm = lib.nn.LayerNorm(16)

        def forward(self, ids):
            h = self.embed(ids)
            b, t, c = h.shape
            q, k, v = self.qkv(h).view(b, t, 3, 2, 8).permute(2, 0, 3, 1, 4)
            y = lib.nn.functional.scaled_dot_product_attention(q, k, v)
            return self.norm(h + y.transpose(1, 2).reshape(b, t, c))
    return Model()


def test_dynamic_batch_and_sequence_of_an_encoder():
    ids = torch.randint(0, 20, (2, 5))
    check(_encoder, (ids,), calls=[(ids,), (torch.randint(0, 20, (3, 7)),)],
          input_names=["ids"], dynamic_axes={"ids": {0: "batch", 1: "seq"}})


def test_dynamic_shapes_and_list_form_of_dynamic_axes():
    x = torch.randn(2, 4)
    check(_mlp_rows, (x,), calls=[(torch.randn(6, 4),)],
          dynamic_shapes={"x": {0: ember.export.Dim("rows")}})
    model = check(_mlp_rows, (x,), calls=[(torch.randn(5, 4),)], input_names=["x"],
                  dynamic_axes={"x": [0]})
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == \
        "x_dynamic_axes_1"


def _mlp_rows(lib):
    class Model(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = lib.nn.Sequential(lib.nn.Linear(4, 8), lib.nn.Tanh(),
                                         lib.nn.Linear(8, 2))

        def forward(self, x):
            return self.net(x)
    return Model()


def test_sizes_computed_from_the_inputs_shapes():
    """A dynamic size no Reshape 0/-1 or Expand 1 can carry is computed in the file
    from the inputs' shapes: nn.TransformerEncoderLayer with a dynamic batch and
    sequence (reshape to (seq, batch, d) from (seq*batch, d)), an expand of a constant."""
    def layer(lib):
        return lib.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
    check(layer, (torch.randn(2, 5, 16),), calls=[(torch.randn(3, 7, 16),),
                                                  (torch.randn(1, 2, 16),)],
          input_names=["src"], dynamic_axes={"src": {0: "batch", 1: "seq"}})
    buffer = io.BytesIO()
    ember.onnx.export(lambda x: x + ember.ones(1, 4).expand(x.shape[0], 4),
                      ember.randn(2, 4), buffer, input_names=["x"],
                      dynamic_axes={"x": {0: "batch"}})
    (got,), _ = _run(buffer.getvalue(), (torch.zeros(5, 4),))
    np.testing.assert_array_equal(got, np.ones((5, 4), np.float32))


def test_what_onnx_cannot_write_is_refused():
    q = ember.randn(1, 2, 4, 8)
    # a dynamic length's causal mask is Trilu of ones, which opset 14 brought
    with pytest.raises(ember.onnx.OnnxExportError, match="causal attention's mask with a "
                       "dynamic sequence length needs opset 14"):
        ember.onnx.export(lambda q: ember.nn.functional.scaled_dot_product_attention(
            q, q, q, is_causal=True), q, io.BytesIO(), input_names=["q"],
            dynamic_axes={"q": {2: "seq"}}, opset_version=13)


def _recurrent(kind):
    def build(lib):
        class Model(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn = getattr(lib.nn, kind)(4, 6, batch_first=True)

            def forward(self, x):
                return self.rnn(x)[0]
        return Model()
    return build


def _layer(make, forward):
    def build(lib):
        class Model(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.layer = make(lib)

            def forward(self, *xs):
                return forward(lib, self.layer, *xs)
        return Model()
    return build


_F = lambda lib: lib.nn.functional  # noqa: E731
CASES = {
    "lstm": (_recurrent("LSTM"), [(2, 3, 4)]),
    "gru": (_recurrent("GRU"), [(2, 3, 4)]),
    "mha": (_layer(lambda lib: lib.nn.MultiheadAttention(8, 2, batch_first=True),
                   lambda lib, m, x: m(x, x, x, need_weights=False)[0]), [(2, 5, 8)]),
    "sdpa_causal": (_layer(lambda lib: lib.nn.Identity(), lambda lib, m, q, k, v:
                           _F(lib).scaled_dot_product_attention(q, k, v, is_causal=True)),
                    [(1, 2, 4, 8)] * 3),
    "conv1d": (_layer(lambda lib: lib.nn.Conv1d(3, 4, 3, padding=1, dilation=1),
                      lambda lib, m, x: lib.tanh(m(x))), [(2, 3, 7)]),
    "conv_transpose2d": (_layer(lambda lib: lib.nn.ConvTranspose2d(3, 4, 2, stride=2),
                                lambda lib, m, x: m(x)), [(1, 3, 4, 4)]),
    "activations": (_layer(lambda lib: lib.nn.Identity(), lambda lib, m, x: lib.cat([
        _F(lib).leaky_relu(x, 0.1), _F(lib).elu(x), _F(lib).hardtanh(x, -0.5, 0.5),
        _F(lib).softplus(x), _F(lib).hardswish(x), _F(lib).relu6(x * 4),
        _F(lib).hardsigmoid(x)], 1).max(dim=-1)[0]), [(2, 3)]),
    "pad_upsample": (_layer(lambda lib: lib.nn.Identity(), lambda lib, m, x: _F(lib).interpolate(
        _F(lib).pad(x, (1, 1, 2, 0), value=0.5), scale_factor=2, mode="nearest")),
        [(1, 2, 3, 3)]),
    "argmax_topk_compare": (_layer(lambda lib: lib.nn.Identity(), lambda lib, m, x: (
        x.argmax(-1), x.topk(2, -1).values, (x > 0).float(), lib.where(x < 0.5, x, -x))),
        [(2, 5)]),
    "narrow_chunk_stack": (_layer(lambda lib: lib.nn.Identity(), lambda lib, m, x: lib.stack(
        x.chunk(2, dim=1), 0).narrow(2, 1, 2)), [(2, 6)]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_modules(name):
    build, shapes = CASES[name]
    check(build, tuple(torch.randn(*s) for s in shapes))


def test_in_place_updates():
    """In-place ops are written functionally (torch's exporter does the same): updates
    of a local through an index and a slice, an in-place activation, an updated input."""
    def build(lib):
        class Model(lib.nn.Module):
            def forward(self, x):
                y = x.clone()
                y[0] = 5.0
                y[:, 1:3] *= 2
                y.relu_()
                x.add_(1)
                return y + x
        return Model()
    check(build, (torch.randn(3, 4),))       # onnxruntime runs before torch updates x


def test_int_and_bool_inputs():
    def build(lib):
        class Model(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = lib.nn.Embedding(10, 4)

            def forward(self, ids, mask):
                return lib.where(mask.unsqueeze(-1), self.embed(ids), 0.0).sum(1)
        return Model()
    check(build, (torch.randint(0, 10, (2, 3)), torch.rand(2, 3) > 0.5))
