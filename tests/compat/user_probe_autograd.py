"""Autograd as users poke at it: manual SGD under no_grad, .data writes, retain_grad,
backward twice with retain_graph, grad_tensors, detach_, weights changed in place
between forward and backward, and requires_grad on integer tensors."""
import numpy as np
import torch


def t(*shape, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape)
                            .astype(np.float32))


def error_of(fn):
    """The error's gist (the libraries name tensor types and dtypes differently)."""
    try:
        fn()
        return None
    except RuntimeError as e:
        text = str(e).lower()
        for gist in ("modified by an inplace operation", "can require gradients",
                     "backward through the graph a second time", "leaf variable"):
            if gist in text:
                return gist
        return text


def case_manual_sgd_and_data_writes():
    w = t(3, seed=1).requires_grad_()
    b = torch.zeros(1, requires_grad=True)
    x, y = t(5, 3, seed=2), t(5, seed=3)
    losses = []
    for _ in range(3):
        loss = ((x @ w + b - y) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            w -= 0.1 * w.grad
            b.sub_(0.1 * b.grad)
            w.grad.zero_()
            b.grad = None
        losses.append(loss.item())
    w.data.mul_(0.5)
    w.data = w.data * 2
    return losses, w, b, w.requires_grad, w.is_leaf, w.grad


def case_retain_grad_and_backward_twice():
    x = t(3, seed=4).requires_grad_()
    h = x.exp()
    h.retain_grad()
    out = (h * 2).sum()
    out.backward(retain_graph=True)
    first = x.grad.clone()
    out.backward()
    z = x * 3
    torch.autograd.backward([z], grad_tensors=[torch.tensor([1.0, 0.0, 2.0])])
    second_error = error_of(lambda: (x * x).sum().backward() or (x * x).sum().backward())
    y = (x * 1).sum()
    y.backward()
    again = error_of(y.backward)
    return first, h.grad, x.grad, second_error, again


def case_changed_weights_between_forward_and_backward():
    w = t(3, seed=5).requires_grad_()
    x = t(3, seed=6).requires_grad_()
    y = (x * w).sum()
    with torch.no_grad():
        w.add_(1.0)
    err = error_of(y.backward)
    a = t(3, seed=7).requires_grad_()
    d = a.detach()
    d.zero_()
    z = (a * 2).sum()
    z.backward()
    return err, a, a.grad, d.requires_grad


def case_requires_grad_rules():
    msgs = [error_of(lambda: torch.tensor([1, 2]).requires_grad_()),
            error_of(lambda: torch.ones(2, requires_grad=True).add_(1))]
    x = torch.ones(2, requires_grad=True)
    y = x * 2
    y.detach_()
    with torch.no_grad():
        x.mul_(3)
    return msgs, y.requires_grad, y.grad_fn is None, x, x.requires_grad
