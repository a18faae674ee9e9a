"""Module hooks as PyTorch's test/nn/test_module_hooks.py exercises them, run under torch
and ember: firing order with prepend, kwargs hooks, backward (pre-)hooks on nested
modules, state-dict hooks that hold their module, pickling."""
from __future__ import annotations

from functools import partial

import pytest

from nn_suite_harness import cases_of, run_both


def _toy(nn):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.seq1 = nn.Sequential(*[nn.Linear(4, 4) for _ in range(2)])
            self.seq2 = nn.Sequential(*[nn.Linear(4, 4) for _ in range(2)])

        def forward(self, x):
            return self.seq2(self.seq1(x))

    class Toy(nn.Module):
        def __init__(self):
            super().__init__()
            self.net1 = Net()
            self.net2 = Net()

        def forward(self, x):
            return self.net2(self.net1(x))
    return Toy()


def case_hook_order_with_prepend(torch, nn, F, h):
    fired = []
    model = h.det(_toy(nn))

    def fwd(i, module, inp, out):
        fired.append(("fwd", i, len(inp)))

    def pre(i, module, inp):
        fired.append(("pre", i, len(inp)))

    def bwd(i, module, gin, gout):
        fired.append(("bwd", i, len(gin), len(gout)))

    def bpre(i, module, gout):
        fired.append(("bpre", i, len(gout)))

    for i, prepend in enumerate((False, True, False, False, True)):
        model.net1.seq2.register_forward_hook(partial(fwd, i), prepend=prepend)
        model.net2.seq1.register_forward_pre_hook(partial(pre, i), prepend=not prepend)
        model.net1.register_full_backward_hook(partial(bwd, i), prepend=prepend)
        model.net1.register_full_backward_pre_hook(partial(bpre, i), prepend=prepend)
    x = h.randn(3, 4, requires_grad=True)
    out = model(x)
    n_forward = len(fired)
    out.sum().backward()
    return n_forward, fired, x.grad


def case_backward_pre_hook_changes_gradient(torch, nn, F, h):
    a = torch.ones(2, requires_grad=True)
    model = h.det(nn.Linear(2, 2))
    model.register_full_backward_pre_hook(lambda m, gout: (gout[0] * 0,))
    model(a).sum().backward()
    b = torch.ones(2, requires_grad=True)
    model2 = h.det(nn.Linear(2, 2))
    model2.register_full_backward_hook(lambda m, gin, gout: (gin[0] * 3,))
    model2(b).sum().backward()
    return a.grad, b.grad, model.weight.grad


def case_kwarg_hooks_and_removal(torch, nn, F, h):
    class KwargModel(nn.Module):
        def forward(self, x, bias=None):
            return x + bias if bias is not None else x

        def internal_forward_hook(self, module, args, kwargs, out):
            return out + kwargs["bias"]

    fired = []

    def kw_pre(module, args, kwargs):
        fired.append("pre")
        kwargs["bias"] = 2 * kwargs["bias"]
        return args, kwargs

    def kw_post(module, args, kwargs, out):
        fired.append("post")
        return out + kwargs["bias"]

    x, bias = torch.ones(2, 2), torch.ones(2, 2)
    model = KwargModel()
    hf = model.register_forward_hook(kw_post, with_kwargs=True)
    hp = model.register_forward_pre_hook(kw_pre, with_kwargs=True)
    a = model(x, bias=bias)
    hf.remove()
    b = model(x, bias=bias)
    gone_post = hf.id in model._forward_hooks_with_kwargs
    hp.remove()
    c = model(x, bias=bias)
    gone_pre = hp.id in model._forward_pre_hooks_with_kwargs
    m2 = KwargModel()
    m2.register_forward_hook(m2.internal_forward_hook, with_kwargs=True)
    d = m2(x, bias=bias)
    bad = KwargModel()
    bad.register_forward_pre_hook(lambda m, a, k: a, with_kwargs=True)
    return (a, b, c, d, fired, gone_post, gone_pre,
            h.raises(lambda: bad(x, bias=bias), "forward pre-hook must return None or a tuple"))


def case_backward_hook_on_dict_output_warns(torch, nn, F, h):
    import warnings
    counter = {"forward": 0, "backward": 0}

    class DictModule(nn.Module):
        def forward(self, d):
            return {"x": F.softmax(d["x"], dim=0)}

    model = DictModule()
    model.register_forward_pre_hook(lambda m, i: counter.__setitem__("forward", counter["forward"] + 1))
    model.register_forward_hook(lambda m, i, o: counter.__setitem__("forward", counter["forward"] + 1))
    model.register_full_backward_pre_hook(lambda m, g: counter.__setitem__("backward", counter["backward"] + 1))
    model.register_full_backward_hook(lambda m, gi, go: counter.__setitem__("backward", counter["backward"] + 1))
    x = torch.ones(2, requires_grad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model({"x": x})["x"].sum().backward()
    return counter, [("should be a Tensor or a tuple of Tensors" in str(w.message)) for w in caught], x.grad


def case_load_pre_hook_with_and_without_module(torch, nn, F, h):
    m = h.det(nn.Linear(3, 3))
    sd = m.state_dict()
    m_load = nn.Linear(3, 3)
    calls = []

    def without_module(state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
        calls.append(("without", sorted(state_dict)))

    def with_module(module, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
        calls.append(("with", module is m_load))

    m_load._register_load_state_dict_pre_hook(without_module)
    m_load.load_state_dict(sd)
    m_load._register_load_state_dict_pre_hook(with_module, True)
    m_load.load_state_dict(sd)
    return calls, m_load.weight


def _hook_to_pickle(*args, **kwargs):
    pass


def case_hook_holding_module_pickles_and_frees(torch, nn, F, h):
    import gc
    import pickle
    import weakref
    m = nn.Linear(2, 2)
    m._register_load_state_dict_pre_hook(_hook_to_pickle, True)
    m.register_load_state_dict_pre_hook(_hook_to_pickle)
    copy = pickle.loads(pickle.dumps(m))
    copy.load_state_dict(m.state_dict())
    try:
        gc.disable()
        n = nn.Linear(2, 2)
        n._register_load_state_dict_pre_hook(_hook_to_pickle, True)
        weak = weakref.ref(n)
        del n
        freed = weak() is None
    finally:
        gc.enable()
    return type(copy).__name__, freed


def case_forward_hook_sees_hooked_input_and_output_types(torch, nn, F, h):
    seen = []

    class Multi(nn.Module):
        def forward(self, a, b, *, scale=1.0):
            return a * scale, b + 1

    m = Multi()
    m.register_forward_pre_hook(lambda mod, args: seen.append([type(a).__name__ for a in args]))
    m.register_forward_hook(lambda mod, args, out: (out[0] * 2, out[1]))
    y = m(torch.ones(2), torch.zeros(2), scale=3.0)
    return y, seen, type(y).__name__


def case_module_hook_on_shared_child_fires_per_call(torch, nn, F, h):
    lin = h.det(nn.Linear(2, 2))
    seq = nn.Sequential(lin, nn.ReLU(), lin)
    fired = []
    lin.register_forward_hook(lambda m, i, o: fired.append(tuple(o.shape)))
    lin.register_full_backward_hook(lambda m, gi, go: fired.append("bwd"))
    x = h.randn(3, 2, requires_grad=True)
    seq(x).sum().backward()
    return fired, x.grad, lin.weight.grad


def case_global_registration_hooks(torch, nn, F, h):
    from importlib import import_module
    mod = import_module(nn.__name__ + ".modules.module")
    seen = []

    def on_buffer(module, name, buf):
        seen.append(("buffer", type(module).__name__, name))
        return buf * 0 + 7

    def on_param(module, name, param):
        seen.append(("param", type(module).__name__, name, tuple(param.shape)))

    def on_module(module, name, sub):
        seen.append(("module", type(module).__name__, name, type(sub).__name__))
        return nn.Identity() if isinstance(sub, nn.Dropout) else None

    handles = [mod.register_module_buffer_registration_hook(on_buffer),
               mod.register_module_parameter_registration_hook(on_param),
               mod.register_module_module_registration_hook(on_module)]
    try:
        m = nn.Sequential(nn.Linear(2, 1), nn.Dropout(0.5), nn.BatchNorm1d(1))
        m.extra = nn.Tanh()
    finally:
        for handle in handles:
            handle.remove()
    after = nn.BatchNorm1d(1)
    return seen, repr(m), m[2].running_mean, after.running_mean


def case_global_forward_hook_kwargs_and_always_call(torch, nn, F, h):
    from importlib import import_module
    mod = import_module(nn.__name__ + ".modules.module")
    seen = []

    class Boom(nn.Module):
        def forward(self, x, fail=False):
            if fail:
                raise ValueError("boom")
            return x + 1

    handle = mod.register_module_forward_hook(
        lambda m, args, out: seen.append((type(m).__name__, len(args), out is None)),
        always_call=True)
    kw = mod.register_module_forward_hook(
        lambda m, args, kwargs, out: seen.append(("kw", sorted(kwargs))), with_kwargs=True)
    try:
        y = Boom()(torch.ones(1), fail=False)
        err = h.raises(lambda: Boom()(torch.ones(1), fail=True), "boom")
    finally:
        handle.remove()
        kw.remove()
    return y, err, seen


def case_global_backward_hooks(torch, nn, F, h):
    from importlib import import_module
    mod = import_module(nn.__name__ + ".modules.module")
    seen = []
    model = h.det(nn.Sequential(nn.Linear(3, 2), nn.Tanh()))
    model[0].register_full_backward_hook(lambda m, gi, go: seen.append(("own", type(m).__name__)))

    def everywhere(m, gi, go):
        seen.append(("global", type(m).__name__, len(gi), len(go)))

    def everywhere_pre(m, go):
        seen.append(("global_pre", type(m).__name__))
        return (go[0] * 2,) if isinstance(m, nn.Tanh) else None

    handles = [mod.register_module_full_backward_hook(everywhere),
               mod.register_module_full_backward_pre_hook(everywhere_pre)]
    x = h.randn(4, 3, requires_grad=True)
    try:
        model(x).sum().backward()
    finally:
        for handle in handles:
            handle.remove()
    first = x.grad.clone()
    x.grad = None
    model(x).sum().backward()
    return seen, first, x.grad


cases = cases_of(globals())


@pytest.mark.parametrize("case", cases)
def test_nn_suite_hooks(case):
    run_both(case, rtol=1e-5, atol=1e-6)
