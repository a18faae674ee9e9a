"""A compiled CUDA training step replayed as one CUDA graph reads the parameters, the
optimizer state and the running statistics in place: no copy of them into or out of
the graph per step, and whatever the user does to them between steps (`p.data.mul_()`,
`model.load_state_dict`, `optimizer.load_state_dict`, `p.data = ...`, `zero_grad`)
is what the next replay reads, as an eager step would. Each check trains the same
weights with the compiled step and with eager CPU steps and compares losses every step
and parameters, momentum buffers and running statistics after the last.

Without a GPU the graph is test_compile_cuda.py's RecordingGraph (launches and copies
recorded at capture, replayed in order)."""
import copy
import os

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("torch")
pytest.importorskip("triton")

import ember  # noqa: E402
from ember.runtime.cuda import stream as S  # noqa: E402

from test_compile_cuda import EMULATED, RecordingGraph, device  # noqa: E402,F401
from tests.compile.helpers import eager_step  # noqa: E402

nn = ember.nn
TOL = 2e-4


def _net():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


def _host(t):
    return t.detach().cpu().numpy()


def _assert_same(model, ref, opt, opt_ref):
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        np.testing.assert_allclose(_host(p), _host(q), rtol=TOL, atol=TOL, err_msg=name)
    for (name, b), c in zip(model.named_buffers(), ref.buffers()):
        np.testing.assert_allclose(_host(b), _host(c), rtol=TOL, atol=TOL, err_msg=name)
    for p, q in zip(model.parameters(), ref.parameters()):
        for key, value in opt_ref.state[q].items():
            np.testing.assert_allclose(_host(opt.state[p][key]), _host(value), rtol=TOL,
                                       atol=TOL, err_msg=key)


class _Copies:
    """Counts device-to-device copies queued outside a graph capture."""

    def __init__(self, mp):
        self.count = 0
        copy_d2d = S.copy_device_to_device

        def counted(*args):
            self.count += 1
            return copy_d2d(*args)
        mp.setattr(S, "copy_device_to_device", counted)


def _sgd(params):
    return ember.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=0.01)


def _train(device, between, steps=6, net=_net, make_opt=_sgd):
    """`steps` compiled steps (graph replay forced) against eager CPU steps; before step
    i, `between(i, model, ref, opt, opt_ref)` may touch both sides alike. Returns the
    device-to-device copies each step queued outside the graph."""
    ember.manual_seed(0)
    ref = net()
    model = copy.deepcopy(ref).to(device)
    loss_fn = nn.CrossEntropyLoss()
    opt, opt_ref = make_opt(model.parameters()), make_opt(ref.parameters())
    step = ember.compile_train_step(model, loss_fn, opt, backend="triton",
                                    options={"cuda_graphs": True})
    copies = []
    with pytest.MonkeyPatch.context() as mp:
        counter = _Copies(mp)
        for i in range(steps):
            between(i, model, ref, opt, opt_ref)
            x = ember.randn(2, 3, 6, 6).contiguous(memory_format=ember.channels_last)
            y = ember.randint(0, 3, (2,))
            before = counter.count
            got = step(x.to(device), y.to(device))
            copies.append(counter.count - before)
            want = eager_step(ref, loss_fn, opt_ref, x, y)
            np.testing.assert_allclose(got.item(), want.item(), rtol=TOL, atol=TOL,
                                       err_msg=f"loss of step {i}")
    _assert_same(model, ref, opt, opt_ref)
    return step, copies


def test_replayed_steps_copy_only_the_batch_and_the_loss(device):
    """Replays copy x and y in and the loss out: parameters, momentum and running
    statistics are the graph's own storage (updated in place by its kernels)."""
    step, copies = _train(device, lambda *args: None)
    if EMULATED:
        assert copies[-2:] == [3, 3], copies          # x, y in; the loss out
    entry, n = step.last, len(entry_params := list(step.model.parameters()))
    assert entry_params and len(entry.bindings) == 2 * n + 2   # params, momentum, stats
    assert entry.plan.graph is not None and entry.plan.resident == 2 * n


def test_user_writes_between_replays_are_read(device):
    """In-place writes to parameters and buffers between steps reach the next replay."""
    def between(i, model, ref, opt, opt_ref):
        if i == 3:
            with ember.no_grad():
                for p, q in zip(model.parameters(), ref.parameters()):
                    p.data.mul_(0.5)
                    q.data.mul_(0.5)
        if i == 4:
            model.load_state_dict(copy.deepcopy(ref.state_dict()))
            with ember.no_grad():
                model[1].running_var.fill_(2.0)
                ref[1].running_var.fill_(2.0)
    _train(device, between)


def _load_scaled_momentum(device, opt, opt_ref, same_layout: bool) -> None:
    """Both optimizers load the reference's state with momentum scaled by 1/4 (new
    tensors); the compiled side's moved to the device, in its old layout or as loaded."""
    state = opt_ref.state_dict()
    for buf in state["state"].values():
        buf["momentum_buffer"] = buf["momentum_buffer"] * 0.25
    old = [opt.state[p]["momentum_buffer"] for group in opt.param_groups
           for p in group["params"]]
    opt_ref.load_state_dict(state)
    opt.load_state_dict(state)
    params = [p for group in opt.param_groups for p in group["params"]]
    for p, before in zip(params, old):
        loaded = opt.state[p]["momentum_buffer"].to(device)
        opt.state[p]["momentum_buffer"] = \
            ember.empty_like(before).copy_(loaded) if same_layout else loaded


def test_replaced_state_and_parameter_storage_recapture(device):
    """New tensors for the optimizer state (load_state_dict) or a parameter's data make
    the next call capture the graph again over them (another layout: another plan);
    zero_grad(set_to_none) is a no-op for a step that stores no gradients."""
    captures = []

    def between(i, model, ref, opt, opt_ref):
        captures.append(RecordingGraph.captures)
        if i == 3:
            _load_scaled_momentum(device, opt, opt_ref, same_layout=True)
        if i == 4:
            with ember.no_grad():
                model[5].weight.data = model[5].weight.data * 2.0
                ref[5].weight.data = ref[5].weight.data * 2.0
            opt.zero_grad(set_to_none=True)
            opt_ref.zero_grad(set_to_none=True)
        if i == 6:
            _load_scaled_momentum(device, opt, opt_ref, same_layout=False)
    _train(device, between, steps=8)
    if EMULATED:      # the one plan's capture (its second call: step 1; the momentum
        #               buffers exist from step 0), a replay, then one per replacement
        assert np.diff(captures[:6]).tolist() == [0, 1, 0, 1, 1], captures


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_adam_steps_replay_one_capture(device, name):
    """Adam's step count is a CPU tensor (as in PyTorch) that every call uploads: into the
    same device buffer each call, so the graph captured on call 2 is replayed from then on
    (a fresh upload per call made every step capture again: 25x slower on an H100)."""
    captures = []

    def between(i, *args):
        captures.append(RecordingGraph.captures)
    make = lambda params: getattr(ember.optim, name)(params, lr=1e-2)   # noqa: E731
    step, _ = _train(device, between, steps=6, make_opt=make)
    if EMULATED:
        assert np.diff(captures).tolist() == [0, 1, 0, 0, 0], captures
    p = next(step.model.parameters())
    assert float(step.optimizer.state[p]["step"]) == 6.0 and \
        not step.optimizer.state[p]["step"].is_cuda


class _BatchNormTwice(nn.Module):
    """One BatchNorm applied twice per step: eager updates its statistics and its batch
    counter twice, the second update starting from the first."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        h = self.bn(self.conv(x)).relu()
        return self.head(self.bn(h * 2.0).mean((2, 3)))


def test_a_module_run_twice_updates_its_statistics_twice(device):
    step, _ = _train(device, lambda *args: None, steps=4, net=_BatchNormTwice)
    assert int(step.model.bn.num_batches_tracked.cpu().item()) == 8
