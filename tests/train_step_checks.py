"""Compiled training steps against eager ones, for the CPU and CUDA step tests: the same
weights trained by `ember.compile_train_step` and by eager forward/backward/SGD on the
CPU, losses compared every step, parameters (and buffers) after the last."""
from __future__ import annotations

import copy

import numpy as np

import ember


def _host(t) -> np.ndarray:
    return t.detach().cpu().numpy()


def assert_sgd_steps_match_eager(ref, batch_shape, *, device=None, steps=2, classes=5,
                                 rtol=2e-4, atol=2e-4, buffers=True, **compile_kwargs):
    """Train a copy of `ref` (moved to `device`) with a compiled step and `ref` itself
    eagerly, on channels-last batches of `batch_shape` with CrossEntropyLoss and
    SGD(lr=0.1, momentum=0.9); returns the compiled step (its graph, for the caller's
    checks). `compile_kwargs` go to compile_train_step (backend=, options=)."""
    model = copy.deepcopy(ref) if device is None else copy.deepcopy(ref).to(device)
    loss_fn = ember.nn.CrossEntropyLoss()
    opt = ember.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt_ref = ember.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    step = ember.compile_train_step(model, loss_fn, opt, **compile_kwargs)
    place = (lambda t: t) if device is None else (lambda t: t.to(device))
    for _ in range(steps):
        x = ember.randn(*batch_shape).contiguous(memory_format=ember.channels_last)
        y = ember.randint(0, classes, (batch_shape[0],))
        got = step(place(x), place(y))
        want = loss_fn(ref(x), y)
        want.backward()
        opt_ref.step()
        opt_ref.zero_grad()
        np.testing.assert_allclose(got.item(), want.item(), rtol=rtol, atol=atol)
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        np.testing.assert_allclose(_host(p), _host(q), rtol=rtol, atol=atol, err_msg=name)
    if buffers:
        for (name, b), c in zip(model.named_buffers(), ref.buffers()):
            np.testing.assert_allclose(_host(b), _host(c), rtol=rtol, atol=atol,
                                       err_msg=name)
    return step
