"""Autograd spellings from PyTorch's tutorials: grad_fn.name(), autograd.grad's
only_inputs, autograd.Variable, torch.autograd.function imports, torch.cuda's seeding."""
from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

import ember


def test_grad_fn_name_is_callable_like_torch():
    for lib in (ember, torch):
        x = lib.ones(2, requires_grad=True)
        y = (x * 2).sum()
        assert y.grad_fn.name() == "SumBackward0"
        assert (x * 2).grad_fn.name() == "MulBackward0"
    assert repr((ember.ones(1, requires_grad=True) * 2)).endswith("grad_fn=<MulBackward0>)")


def test_custom_function_node_name():
    class Twice(ember.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2
    y = Twice.apply(ember.ones(1, requires_grad=True))
    assert y.grad_fn.name() == "TwiceBackward"


def test_gradient_penalty_with_only_inputs_matches_torch(rng):
    w = rng.standard_normal((3, 4)).astype(np.float32)
    x = rng.standard_normal((5, 4)).astype(np.float32)

    def penalty(lib):
        weight = lib.tensor(w, requires_grad=True)
        inp = lib.tensor(x, requires_grad=True)
        out = lib.tanh(inp @ weight.t())
        grads = lib.autograd.grad(outputs=out, inputs=inp, grad_outputs=lib.ones_like(out),
                                  create_graph=True, retain_graph=True, only_inputs=True)[0]
        loss = ((grads.norm(2, dim=1) - 1) ** 2).mean()
        loss.backward()
        return loss.item(), weight.grad.numpy()
    ours, ref = penalty(ember), penalty(torch)
    assert ours[0] == pytest.approx(ref[0], rel=1e-5)
    np.testing.assert_allclose(ours[1], ref[1], rtol=1e-4, atol=1e-5)


def test_variable_wraps_a_tensor():
    from ember.autograd import Variable
    data = ember.tensor([1.0, 2.0])
    v = Variable(data, requires_grad=True)
    (v * v).sum().backward()
    np.testing.assert_array_equal(v.grad.numpy(), [2.0, 4.0])
    assert isinstance(v, Variable) and isinstance(data, Variable)
    assert not data.requires_grad                  # the wrapped tensor is left alone
    v.data[0] = 5.0                                # but its data is shared, as in torch
    assert data[0].item() == 5.0
    with pytest.raises(TypeError, match="Variable data has to be a tensor, but got list"):
        Variable([1.0])


def test_autograd_function_module_imports():
    function = importlib.import_module("ember.autograd.function")
    assert function.once_differentiable is ember.autograd.once_differentiable
    assert function.Function is ember.autograd.Function


def test_cuda_seeding_functions_seed_the_default_generator():
    ember.manual_seed(7)
    first = ember.rand(3)
    ember.cuda.manual_seed_all(7)
    assert ember.equal(ember.rand(3), first)
    ember.cuda.manual_seed(11)
    assert ember.initial_seed() == ember.cuda.initial_seed() == 11
    state = ember.cuda.get_rng_state()
    a = ember.randn(2)
    ember.cuda.set_rng_state(state)
    assert ember.equal(ember.randn(2), a)


@pytest.mark.parametrize("retain_first", [True, False])
def test_retained_grad_is_the_hooked_gradient(retain_first):
    """PyTorch stores a retained .grad after the tensor's hooks ran, whatever the order
    of retain_grad() and register_hook()."""
    results = []
    for lib in (ember, torch):
        a = lib.tensor([2.0, 3.0], requires_grad=True)
        h = a * a
        if retain_first:
            h.retain_grad()
        h.register_hook(lambda g: g * 10)
        if not retain_first:
            h.retain_grad()
        (h * lib.tensor([1.0, -1.0])).sum().backward()
        results.append((h.grad.numpy(), a.grad.numpy()))
    for ours, ref in zip(*results):
        np.testing.assert_allclose(ours, ref)


def test_optimizer_step_in_backward_with_post_accumulate_hooks(rng):
    """The 'fuse the optimizer step into backward' tutorial: one optimizer per
    parameter, stepped from register_post_accumulate_grad_hook."""
    w = rng.standard_normal((3, 4)).astype(np.float32)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    results = []
    for lib in (ember, torch):
        model = lib.nn.Linear(4, 3)
        with lib.no_grad():
            model.weight.copy_(lib.tensor(w))
            model.bias.zero_()
        optimizers = {p: lib.optim.Adam([p], lr=0.1) for p in model.parameters()}
        seen = []

        def hook(param, optimizers=optimizers, seen=seen):
            seen.append(param.grad.clone().numpy())
            optimizers[param].step()
            optimizers[param].zero_grad()
        handles = [p.register_post_accumulate_grad_hook(hook) for p in model.parameters()]
        for _ in range(3):
            (model(lib.tensor(x)) ** 2).mean().backward()
        handles[0].remove()
        (model(lib.tensor(x)) ** 2).mean().backward()     # weight: no step, grad kept
        results.append((model.weight.detach().numpy(), model.bias.detach().numpy(),
                        model.weight.grad.numpy(), len(seen)))
    ours, ref = results
    for a, b in zip(ours[:3], ref[:3]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert ours[3] == ref[3]
    with pytest.raises(RuntimeError, match="non-leaf"):
        (ember.ones(1, requires_grad=True) * 2).register_post_accumulate_grad_hook(print)


@pytest.mark.parametrize("kind", ["identity", "numpy_offload", "save_on_cpu", "nested"])
def test_saved_tensors_hooks_gradients_match_torch(kind, rng):
    x_np = rng.standard_normal((3, 4)).astype(np.float32)
    w_np = rng.standard_normal((4, 2)).astype(np.float32)
    results = []
    for lib in (ember, torch):
        graph = lib.autograd.graph
        calls = {"pack": 0, "unpack": 0}

        def pack(t, calls=calls):
            calls["pack"] += 1
            return t.detach().numpy().copy() if kind == "numpy_offload" else t

        def unpack(p, calls=calls, lib=lib):
            calls["unpack"] += 1
            return lib.from_numpy(p) if kind == "numpy_offload" else p
        x = lib.tensor(x_np, requires_grad=True)
        w = lib.tensor(w_np, requires_grad=True)
        if kind == "save_on_cpu":
            context = graph.save_on_cpu()
        else:
            context = graph.saved_tensors_hooks(pack, unpack)
        with context:
            if kind == "nested":
                with graph.saved_tensors_hooks(lambda t: t * 1, lambda t: t):
                    h = lib.tanh(x @ w)
            else:
                h = lib.tanh(x @ w)
            loss = (h * h).sum()
        loss.backward()
        results.append((x.grad.numpy(), w.grad.numpy(), calls))
    (xg, wg, calls), (xg_ref, wg_ref, calls_ref) = results
    np.testing.assert_allclose(xg, xg_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(wg, wg_ref, rtol=1e-5, atol=1e-6)
    if kind in ("identity", "numpy_offload"):
        assert calls["pack"] > 0 and calls["unpack"] == calls["pack"]
    if kind == "nested":       # the inner block's hooks win inside it
        assert (calls["pack"] > 0) == (calls_ref["pack"] > 0)


def test_autograd_profiler_spelling():
    model = ember.nn.Linear(4, 2)
    with ember.autograd.profiler.profile(record_shapes=True) as prof:
        with ember.autograd.profiler.record_function("model_inference"):
            model(ember.ones(3, 4))
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10)
    assert "model_inference" in table and "linear" in table
    profiler = importlib.import_module("ember.autograd.profiler")
    assert profiler.profile is ember.autograd.profiler.profile
