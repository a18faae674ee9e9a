"""Module.register_full_backward_hook / register_full_backward_pre_hook against torch
(what the hooks see, when they run, replacing grad_input / grad_output), and the other
Module APIs added with them (register_backward_hook refused, to_empty)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember

pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing")


def _pair(rng):
    """The same two-layer MLP in ember and in torch."""
    w1, b1, w2, b2 = (rng.standard_normal(shape).astype(np.float32)
                      for shape in ((4, 3), (4,), (2, 4), (2,)))
    nets = []
    for lib in (ember, torch):
        net = lib.nn.Sequential(lib.nn.Linear(3, 4), lib.nn.Tanh(), lib.nn.Linear(4, 2))
        with lib.no_grad():
            for param, value in zip(net.parameters(), (w1, b1, w2, b2)):
                param.copy_(lib.tensor(value))
        nets.append(net)
    return nets


def _numpy(values):
    return [None if v is None else v.detach().numpy() for v in values]


def _trace(lib, net, x, *, input_grad: bool, scale_grad_input=None, scale_grad_output=None):
    log = []

    def backward_hook(module, grad_input, grad_output):
        log.append(("hook", _numpy(grad_input), _numpy(grad_output)))
        if scale_grad_input is not None:
            return tuple(None if g is None else g * scale_grad_input for g in grad_input)
        return None

    def pre_hook(module, grad_output):
        log.append(("pre", _numpy(grad_output)))
        if scale_grad_output is not None:
            return tuple(g * scale_grad_output for g in grad_output)
        return None

    net[2].register_full_backward_pre_hook(pre_hook)
    handle = net[2].register_full_backward_hook(backward_hook)
    net[0].register_full_backward_hook(backward_hook)
    inp = lib.tensor(x, requires_grad=input_grad)
    (net(inp) ** 2).sum().backward()
    grads = [p.grad.numpy().copy() for p in net.parameters()]
    handle.remove()
    net.zero_grad()
    (net(lib.tensor(x)) ** 2).sum().backward()          # net[2]'s full hook is gone
    later = [p.grad.numpy().copy() for p in net.parameters()]
    return log, grads, later, (None if inp.grad is None else inp.grad.numpy())


def _assert_same(ours, ref):
    if isinstance(ref, (list, tuple)):
        assert isinstance(ours, (list, tuple)) and len(ours) == len(ref)
        for a, b in zip(ours, ref):
            _assert_same(a, b)
    elif isinstance(ref, np.ndarray):
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)
    else:
        assert ours == ref


@pytest.mark.parametrize("input_grad", [True, False])
@pytest.mark.parametrize("scales", [(None, None), (0.5, None), (None, 3.0), (2.0, -1.0)])
def test_hooks_see_and_replace_gradients_like_torch(rng, input_grad, scales):
    x = rng.standard_normal((5, 3)).astype(np.float32)
    ours_net, ref_net = _pair(rng)
    kwargs = dict(input_grad=input_grad, scale_grad_input=scales[0],
                  scale_grad_output=scales[1])
    _assert_same(_trace(ember, ours_net, x, **kwargs), _trace(torch, ref_net, x, **kwargs))


def test_hooks_with_a_non_tensor_argument_and_tuple_output():
    def build(lib):
        class Scale(lib.nn.Module):
            def forward(self, x, factor, y):
                return x * factor, (x * y).sum(dim=1)
        return Scale()
    seen = {}
    for lib in (ember, torch):
        module = build(lib)
        module.register_full_backward_hook(
            lambda m, gi, go, lib=lib: seen.update({lib.__name__: (_numpy(gi), _numpy(go))}))
        x = lib.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
        y = lib.tensor([[0.5, -1.0], [2.0, 1.0]])     # torch reports its gradient anyway
        a, b = module(x, 3.0, y)
        (a.sum() + (b * b).sum()).backward()
    _assert_same(seen["ember"], seen["torch"])


def test_pre_hook_returning_wrong_count_is_an_error():
    layer = ember.nn.Linear(2, 2)
    layer.register_full_backward_pre_hook(lambda m, go: (go[0], go[0]))
    with pytest.raises(RuntimeError, match="invalid number of grad_output"):
        layer(ember.ones(1, 2, requires_grad=True)).sum().backward()


def test_forward_hooks_still_run_with_backward_hooks():
    layer = ember.nn.Linear(2, 2)
    calls = []
    layer.register_forward_hook(lambda m, a, out: calls.append("fwd"))
    layer.register_full_backward_hook(lambda m, gi, go: calls.append("bwd"))
    with ember.no_grad():
        layer(ember.ones(1, 2))                      # no graph: no backward wrapping
    layer(ember.ones(1, 2)).sum().backward()
    assert calls == ["fwd", "fwd", "bwd"]


def test_legacy_backward_hook_refused_with_the_replacement_named():
    with pytest.raises(NotImplementedError, match="register_full_backward_hook"):
        ember.nn.Linear(2, 2).register_backward_hook(lambda m, gi, go: None)


def test_to_empty_keeps_structure_like_torch():
    results = []
    for lib in (ember, torch):
        model = lib.nn.Sequential(lib.nn.Linear(2, 3), lib.nn.BatchNorm1d(3))
        weight = model[0].weight
        model.to_empty(device="cpu")
        model[0].reset_parameters()
        model[1].reset_running_stats()
        results.append(([(n, tuple(t.shape), str(t.dtype).split(".")[-1], t.device.type)
                         for n, t in model.state_dict().items()],
                        model[0].weight is weight, tuple(model(lib.ones(4, 2)).shape)))
    assert results[0] == results[1]
