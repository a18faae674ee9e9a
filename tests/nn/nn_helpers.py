"""Run an ember layer and the torch layer holding the same weights; compare everything."""
from __future__ import annotations

import numpy as np
import torch

import ember


def copy_weights(ember_module, torch_module) -> None:
    """torch -> ember through state_dict, as numpy arrays."""
    state = {k: v.detach().numpy().copy() for k, v in torch_module.state_dict().items()}
    ember_module.load_state_dict(state)


def _as_np(t):
    if isinstance(t, torch.Tensor):
        return t.detach().numpy()
    return t.detach().numpy()


def close(a, b, rtol=1e-4, atol=1e-5, what=""):
    np.testing.assert_allclose(_as_np(a), _as_np(b), rtol=rtol, atol=atol, err_msg=what)


def check_layer(ember_module, torch_module, inputs, rng, train=False, grad=True,
                rtol=1e-4, atol=1e-5, copy=True):
    """Forward values, input and parameter gradients, and buffers after the call."""
    if copy:
        copy_weights(ember_module, torch_module)
    ember_module.train(train)
    torch_module.train(train)
    floating = [np.issubdtype(a.dtype, np.floating) for a in inputs]
    ex = [ember.tensor(a, requires_grad=grad and f) for a, f in zip(inputs, floating)]
    tx = [torch.tensor(a, requires_grad=grad and f) for a, f in zip(inputs, floating)]
    eo, to = ember_module(*ex), torch_module(*tx)
    if isinstance(to, tuple):
        eo, to = eo[0], to[0]
    close(eo, to, rtol, atol, "forward")
    for (name, eb), (_, tb) in zip(ember_module.named_buffers(), torch_module.named_buffers()):
        close(eb, tb, rtol, atol, f"buffer {name}")
    if not grad:
        return
    g = rng.standard_normal(tuple(to.shape)).astype(_as_np(to).dtype)
    (eo * ember.tensor(g)).sum().backward()
    (to * torch.tensor(g)).sum().backward()
    for i, (a, b) in enumerate(zip(ex, tx)):
        if b.grad is not None:
            close(a.grad, b.grad, rtol, atol, f"grad of input {i}")
    tparams = dict(torch_module.named_parameters())
    for name, p in ember_module.named_parameters():
        if tparams[name].grad is not None:
            assert p.grad is not None, f"no gradient for parameter {name}"
            close(p.grad, tparams[name].grad, rtol, atol, f"grad of {name}")
