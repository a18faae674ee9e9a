"""One focused check against torch per gap the *_port2.py model ports found: NumPy
scalars and arrays beside tensors in operators, symbolic tracing of calls on constant
tensors given traced arguments, grouped-query attention, unpad / unpack of sequences,
and torchvision.ops's submodule names on ember.vision.ops."""
from __future__ import annotations

import importlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ember  # noqa: E402


def _same(got, want):
    assert type(got).__name__ == type(want).__name__ == "Tensor"
    assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1]
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)


@pytest.mark.parametrize("scalar", [np.float64(2.5), np.float32(0.5), np.int64(3)],
                         ids=["float64", "float32", "int64"])
@pytest.mark.parametrize("expression", ["s * t", "t * s", "s + t", "s - t", "s / t",
                                        "s ** t", "s > t", "s == t"])
def test_numpy_scalar_beside_a_tensor_gives_a_tensor(scalar, expression):
    for lib_t, ember_t in ((torch.arange(1, 4), ember.arange(1, 4)),
                           (torch.ones(3), ember.ones(3))):
        want = eval(expression, {"s": scalar, "t": lib_t})
        got = eval(expression, {"s": scalar, "t": ember_t})
        _same(got, want)


def test_sinusoidal_positions_written_with_numpy_scalars():
    def sinusoids(lib, length=5, channels=6):
        increment = np.log(10000) / (channels // 2 - 1)
        inv = lib.exp(-increment * lib.arange(channels // 2))
        scaled = lib.arange(length)[:, np.newaxis] * inv[np.newaxis, :]
        return lib.cat([lib.sin(scaled), lib.cos(scaled)], dim=1)
    _same(sinusoids(ember), sinusoids(torch))


@pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")   # torch's, NumPy 2
def test_numpy_arrays_in_tensor_operators():
    arr = np.array([1.0, 2.0, 3.0])
    _same(ember.ones(3) * arr, torch.ones(3) * arr)
    _same(arr == ember.ones(3), arr == torch.ones(3))
    _same(ember.ones(3) == arr, torch.ones(3) == arr)
    # torch raises for `arr + t`; ember computes it as a tensor of the array's dtype
    _same(arr + ember.ones(3), torch.ones(3) + torch.tensor(arr))


def _module(lib):
    class ConstantsMeetTracedValues(lib.nn.Module):
        def forward(self, x):
            c = lib.arange(3.0)
            a = c.to(x.dtype)
            b = c.to(device=x.device)
            r = lib.eye(3).flatten().view(1, 9).repeat(x.size()[0], 1)
            return (a + b).sum() + r + x
    return ConstantsMeetTracedValues()


def test_symbolic_trace_records_calls_on_constants_given_traced_arguments():
    want_gm = torch.fx.symbolic_trace(_module(torch))
    got_gm = ember.fx.symbolic_trace(_module(ember))
    method_calls = lambda gm: [n.target for n in gm.graph.nodes if n.op == "call_method"]
    assert method_calls(got_gm) == method_calls(want_gm)
    x = np.random.default_rng(0).standard_normal((2, 9)).astype(np.float32)
    np.testing.assert_allclose(got_gm(ember.tensor(x)).numpy(),
                               want_gm(torch.tensor(x)).numpy(), rtol=1e-6)


@pytest.mark.parametrize("heads", [(4, 2, 2), (6, 3, 1), (2, 2, 2)])
def test_sdpa_grouped_query_attention(heads):
    hq, hk, hv = heads
    rng = np.random.default_rng(1)
    q = rng.standard_normal((2, hq, 5, 4)).astype(np.float32)
    k = rng.standard_normal((2, hk, 7, 4)).astype(np.float32)
    v = rng.standard_normal((2, hv, 7, 3)).astype(np.float32)
    results = []
    for lib in (torch, ember):
        qt, kt, vt = (lib.tensor(a, requires_grad=True) for a in (q, k, v))
        out = lib.nn.functional.scaled_dot_product_attention(qt, kt, vt, enable_gqa=True)
        out.pow(2).sum().backward()
        results.append([out.detach().numpy(), qt.grad.numpy(), kt.grad.numpy(),
                        vt.grad.numpy()])
    for got, want in zip(*reversed(results)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_sdpa_grouped_query_attention_needs_dividing_heads():
    q, k = ember.ones(1, 4, 2, 3), ember.ones(1, 3, 2, 3)
    with pytest.raises(RuntimeError, match="must divide the number of heads"):
        ember.nn.functional.scaled_dot_product_attention(q, k, k, enable_gqa=True)


def test_unpad_and_unpack_sequence():
    seqs = [np.random.default_rng(i).standard_normal((n, 2)).astype(np.float32)
            for i, n in enumerate((3, 5, 1))]
    results = []
    for lib in (torch, ember):
        rnn = lib.nn.utils.rnn
        tensors = [lib.tensor(s) for s in seqs]
        padded = rnn.pad_sequence(tensors)                  # (T, B, *)
        unpadded = rnn.unpad_sequence(padded, lib.tensor([3, 5, 1]))
        unpacked = rnn.unpack_sequence(rnn.pack_sequence(tensors, enforce_sorted=False))
        results.append([t.numpy() for t in unpadded + unpacked])
    for got, want in zip(results[1], results[0]):
        np.testing.assert_array_equal(got, want)


def test_vision_ops_answer_to_torchvision_submodule_names():
    from ember.vision.ops.boxes import batched_nms, box_area  # noqa: F401
    from ember.vision.ops import boxes, misc
    assert boxes.nms is ember.vision.ops.nms
    assert misc.FrozenBatchNorm2d is ember.vision.ops.FrozenBatchNorm2d
    assert importlib.import_module("ember.vision.ops.focal_loss").sigmoid_focal_loss \
        is ember.vision.ops.sigmoid_focal_loss
    b = ember.tensor([[0.0, 0.0, 2.0, 3.0], [1.0, 1.0, 2.0, 2.0]])
    np.testing.assert_array_equal(box_area(b).numpy(), [6.0, 1.0])
