"""examples/out_of_tree_device: a package registers a device ('numdev', NumPy buffers in
its own memory) and a compile backend; a small model runs on it eagerly (claimed ops on
the device's kernels, the rest through the CPU), trains (autograd, in-place optimizer
updates), and compiles with the registered backend and with a callable. Checked against
torch on the same weights."""
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import ember
from ember.utils import backend_registration as reg
from ember.compiler.compile_options import CompileArgumentError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "out_of_tree_device"))
import ember_numdev  # noqa: E402
from ember_numdev import kernels  # noqa: E402

from example_loader import load_example  # noqa: E402


class SmallNet(ember.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = ember.nn.Linear(6, 10)
        self.fc2 = ember.nn.Linear(10, 3)

    def forward(self, x):
        return self.fc2(ember.tanh(ember.relu(self.fc1(x)) * 2.0 + 0.5))


def _torch_twin(model):
    net = torch.nn.Sequential(torch.nn.Linear(6, 10), torch.nn.Linear(10, 3))
    with torch.no_grad():
        for (name, p), q in zip(model.named_parameters(), net.parameters()):
            q.copy_(torch.from_numpy(p.detach().cpu().numpy().copy()))
    return lambda x: net[1](torch.tanh(torch.relu(net[0](x)) * 2.0 + 0.5)), net


def _host(t):
    return t.detach().cpu().numpy()


def test_device_is_registered_and_its_memory_is_separate():
    x = ember.arange(6.0).reshape(2, 3).to("numdev")
    assert str(x.device) == "numdev:0" and ember.device("numdev:0").type == "numdev"
    assert "numdev" in reg.registered_devices() and reg.registered_devices()[0] == "cuda"
    with pytest.raises(TypeError, match="numdev:0 device type tensor to numpy"):
        x.numpy()
    assert ember_numdev.MEMORY.buffers[reg.device_buffer(x).handle].dtype == np.uint8
    with pytest.raises(ember.DeviceError, match="numdev"):
        ember.device("nodev:0")


def test_views_and_in_place_writes_share_device_storage():
    x = ember.zeros(3, 4).to("numdev")
    row = x[1]                              # a view: same device storage
    row.add_(2.0)
    x.t()[0].mul_(3.0)                      # column 0 through a transposed view
    expected = np.zeros((3, 4), np.float32)
    expected[1] += 2
    expected[:, 0] *= 3
    np.testing.assert_array_equal(_host(x), expected)
    assert reg.device_buffer(row).offset == 4


def test_eager_forward_and_training_step_match_torch(rng):
    ember.manual_seed(1)
    model = SmallNet()
    twin, net = _torch_twin(model)
    model.to("numdev")
    assert all(p.device.type == "numdev" for p in model.parameters())
    x = rng.standard_normal((5, 6)).astype(np.float32)
    target = rng.standard_normal((5, 3)).astype(np.float32)
    before = dict(kernels.CALLS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = model(ember.tensor(x).to("numdev"))
        model(ember.tensor(x).to("numdev"))
    assert out.device.type == "numdev"
    tanh_warnings = [w for w in caught if "tanh" in str(w.message)]
    assert len(tanh_warnings) <= 1        # once per op (earlier tests may have warned)
    assert kernels.CALLS["linear"] >= before.get("linear", 0) + 4
    assert kernels.CALLS["relu"] > before.get("relu", 0)
    np.testing.assert_allclose(_host(out), twin(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)

    opt = ember.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    # torch's SGD-with-momentum update written out (torch.optim imports dynamo: seconds)
    buffers = [None] * len(list(net.parameters()))
    for _ in range(2):
        opt.zero_grad()
        loss = ((model(ember.tensor(x).to("numdev")) - ember.tensor(target).to("numdev"))
                ** 2).mean()
        loss.backward()
        opt.step()
        net.zero_grad()
        tloss = ((twin(torch.from_numpy(x)) - torch.from_numpy(target)) ** 2).mean()
        tloss.backward()
        with torch.no_grad():
            for i, q in enumerate(net.parameters()):
                buffers[i] = q.grad.clone() if buffers[i] is None else \
                    buffers[i] * 0.9 + q.grad
                q -= 0.1 * buffers[i]
        np.testing.assert_allclose(float(loss.cpu()), tloss.item(), rtol=1e-5)
    for p, q in zip(model.parameters(), net.parameters()):
        assert p.device.type == "numdev" and p.grad.device.type == "numdev"
        np.testing.assert_allclose(_host(p.grad), q.grad.numpy(), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(_host(p), q.detach().numpy(), rtol=1e-4, atol=1e-6)
    assert kernels.CALLS.get("copy_", 0) > 0           # optimizer updates on the device


def test_compiled_with_the_registered_backend_and_a_callable(rng):
    ember.manual_seed(2)
    model = SmallNet()
    twin, _ = _torch_twin(model)
    model.to("numdev")
    x = rng.standard_normal((4, 6)).astype(np.float32)
    want = twin(torch.from_numpy(x)).detach().numpy()

    with ember.no_grad():
        compiled = ember.compile(model, backend="numdev")
        before = kernels.CALLS.get("linear", 0)
        got = compiled(ember.tensor(x).to("numdev"))
    assert got.device.type == "numdev"
    np.testing.assert_allclose(_host(got), want, rtol=1e-5, atol=1e-6)
    assert ember_numdev.backend.LAST["inputs"] == [(4, 6)]
    assert {"relu", "tanh"} <= set(ember_numdev.backend.LAST["ops"])

    seen = []

    def my_backend(gm, example_inputs):
        seen.append((len(list(gm.graph.nodes)), [tuple(t.shape) for t in example_inputs]))
        return gm.forward

    fn = ember.compile(model, backend=my_backend)
    for rows in (4, 4, 2):
        out = fn(ember.tensor(x[:rows]).to("numdev"))
        np.testing.assert_allclose(_host(out), want[:rows], rtol=1e-5, atol=1e-6)
    assert [shapes for _, shapes in seen] == [[(4, 6)], [(2, 6)]]   # recompiled per shape
    assert fn.fc1 is model.fc1                                        # attributes forward
    assert before < kernels.CALLS["linear"]


def test_registration_errors():
    with pytest.raises(RuntimeError, match="already registered"):
        reg.register_device("numdev", allocator=len, to_host=len, from_host=len)
    with pytest.raises(TypeError, match="to_host, from_host must be callables"):
        reg.register_device("halfdev", allocator=len)
    with pytest.raises(ValueError, match="cannot name a device type"):
        reg.register_device("cpu", allocator=len, to_host=len, from_host=len)
    with pytest.raises(CompileArgumentError, match="unknown backend 'nope'"):
        ember.compile(SmallNet(), backend="nope")
    assert "numdev" in reg.list_backends() and "llvm" in reg.list_backends()


def test_a_kernel_that_disagrees_with_the_op_rule_is_refused():
    memory = ember_numdev.memory.DeviceMemory()

    def bad_neg(a):                       # returns the wrong shape
        return ember.zeros(1).to("baddev")
    reg.register_device("baddev", allocator=memory.allocate, to_host=memory.to_host,
                        from_host=memory.from_host, ops={"neg": bad_neg})
    try:
        x = ember.ones(2, 2).to("baddev")
        with pytest.raises(ember.EmberError, match=r"neg: the 'baddev' kernel returned "
                                                   r"f32\[1\].*op gives f32\[2, 2\]"):
            -x
    finally:
        reg.unregister_device("baddev")


def test_the_example_script_runs(capsys):
    load_example("out_of_tree_device/model_on_device").main()
    out = capsys.readouterr().out
    assert "eager   max |diff| vs CPU: 0.0" in out and "compiled max |diff| vs CPU: 0.0" in out


def test_a_custom_op_kernel_for_the_device():
    from ember.ir.registry import OPS
    before = set(OPS)
    try:
        @ember.library.custom_op("numdevtest::twice_plus", mutates_args=())
        def twice_plus(x: ember.Tensor, c: float) -> ember.Tensor:
            return x * 2 + c
        twice_plus.register_fake(lambda x, c: ember.empty_like(x))
        seen = []

        @twice_plus.register_kernel("numdev")
        def _(x, c):
            seen.append(x.device.type)
            return kernels._tensor(kernels._array(x) * 2 + c, x)
        x = ember.arange(4.0)
        out = twice_plus(x.to("numdev"), 1.0)
        assert seen == ["numdev"] and out.device.type == "numdev"
        np.testing.assert_array_equal(_host(out), [1.0, 3.0, 5.0, 7.0])
        with pytest.raises(RuntimeError, match="unknown device type 'nodev'; expected one of "
                                               "'cpu', 'cuda', .*'numdev'"):
            twice_plus.register_kernel("nodev", lambda x, c: x)
    finally:
        for name in set(OPS) - before:
            del OPS[name]
