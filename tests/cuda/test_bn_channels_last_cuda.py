"""Training-mode BatchNorm over channels-last activations on (emulated) CUDA: the per-channel
statistics and gradient sums are column reductions (codegen/triton/source.py column tiles).
Eager forward and backward equal torch on the CPU; a compiled training step of a small
channels-last conv net equals ember's eager CPU step. On CI the kernels run in Triton's
interpreter (tests/cuda/emulation.py); run_on_gpu.sh runs the same tests on the GPU."""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)


import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

import ember  # noqa: E402
from ember import nn  # noqa: E402
from ember.codegen.triton import source  # noqa: E402

from test_compile_cuda import device  # noqa: E402,F401 - the emulated/real CUDA fixture
from train_step_checks import assert_sgd_steps_match_eager  # noqa: E402


def _host(t) -> np.ndarray:
    return t.detach().cpu().numpy()


@pytest.mark.parametrize("shape", [(4, 8, 5, 5), (3, 13, 7, 3)])
def test_eager_batch_norm_relu_forward_backward_channels_last(device, shape):  # noqa: F811
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal(shape).astype(np.float32)
    dy_np = rng.standard_normal(shape).astype(np.float32)
    c = shape[1]
    w_np = np.linspace(0.5, 1.5, c, dtype=np.float32)
    b_np = np.linspace(-0.3, 0.2, c, dtype=np.float32)

    x = ember.tensor(x_np).to(device).contiguous(memory_format=ember.channels_last)
    x.requires_grad_(True)
    bn = nn.BatchNorm2d(c).to(device)
    with ember.no_grad():
        bn.weight.copy_(ember.tensor(w_np).to(device))
        bn.bias.copy_(ember.tensor(b_np).to(device))
    out = ember.relu(bn(x))
    out.backward(ember.tensor(dy_np).to(device).contiguous(memory_format=ember.channels_last))

    tx = torch.tensor(x_np).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    tbn = torch.nn.BatchNorm2d(c)
    with torch.no_grad():
        tbn.weight.copy_(torch.tensor(w_np))
        tbn.bias.copy_(torch.tensor(b_np))
    tout = torch.relu(tbn(tx))
    tout.backward(torch.tensor(dy_np))

    assert out.is_cuda
    tol = dict(rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(_host(out), tout.detach().numpy(), **tol)
    np.testing.assert_allclose(_host(x.grad), tx.grad.numpy(), **tol)
    np.testing.assert_allclose(_host(bn.weight.grad), tbn.weight.grad.numpy(), **tol)
    np.testing.assert_allclose(_host(bn.bias.grad), tbn.bias.grad.numpy(), **tol)
    np.testing.assert_allclose(_host(bn.running_mean), tbn.running_mean.numpy(), **tol)
    np.testing.assert_allclose(_host(bn.running_var), tbn.running_var.numpy(), **tol)


def _net():
    return nn.Sequential(nn.Conv2d(3, 12, 3, padding=1, bias=False), nn.BatchNorm2d(12),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 5))


@pytest.fixture
def columns(monkeypatch):
    """The kernels generated meanwhile that the column rule picked."""
    picked, rule = [], source.is_column_reduction

    def spy(kernel):
        hit = rule(kernel)
        if hit:
            picked.append(kernel.name)
        return hit
    monkeypatch.setattr(source, "is_column_reduction", spy)
    return picked


def test_compiled_step_channels_last_batch_norm_equals_eager_cpu(device, columns):  # noqa: F811
    ember.manual_seed(0)
    assert_sgd_steps_match_eager(_net().to(memory_format=ember.channels_last), (4, 3, 9, 7),
                                 device=device, buffers=False, backend="triton")
    assert columns            # the step's per-channel reductions took column tiles


def test_compiled_step_with_split_reductions_equals_eager_cpu(device, monkeypatch):  # noqa: F811
    """The same step with tiles small enough that the per-channel sums split along N*H*W
    (codegen/triton/split_reduce.py: partial kernels, then a final kernel)."""
    from ember.codegen.triton import split_reduce
    monkeypatch.setattr(source, "COLUMN_TILE", 64)
    made, generate = [], split_reduce.generate_split

    def spy(kernel, split=None):
        found = generate(kernel, split)
        if found is not None:
            made.append(found)
        return found
    monkeypatch.setattr(split_reduce, "generate_split", spy)
    test_compiled_step_channels_last_batch_norm_equals_eager_cpu(device, [True])
    assert made and all(s.plan.splits > 2 for s in made)


_SPLIT_IMPORTS = '''
import ember
from ember.codegen.lowering import lower_group
from ember.codegen.triton import split_reduce
from ember.ir.meta import meta_of
from ember.ir.symbolic import build_graph
F = ember.nn.functional
x = ember.empty(64, 64, 112, 112, memory_format=ember.channels_last)
w = ember.empty(64)
fn = lambda t, a, b: F.relu(F.batch_norm(t, None, None, a, b, training=True))
graph, _ = build_graph(fn, [meta_of(v) for v in (x, w, w)])
split = split_reduce.generate_split(lower_group(graph, "bn").kernel)
'''


def test_split_batch_norm_kernels_compile_to_sm90_cubins():
    """resnet18's conv1 BatchNorm forward as split kernels: the first partial phase and
    the final one (the partials combined, the chunk stored) compile for sm_90 with the
    parameters the launcher packs."""
    from sm90_cubins import assert_launchable, compile_for_sm90
    results = compile_for_sm90(_SPLIT_IMPORTS, "split.kernels[0], split.kernels[-1]")
    assert sorted(n.rsplit("_", 1)[1] for n in results) == ["final", "partial0"]
    assert_launchable(results)
