"""nn.Module's API as PyTorch's test_nn.py (TestNN) exercises it, run under torch and ember.

Each case is PyTorch user code; nn_suite_harness runs it with both libraries and compares
what it returns (values, names and orders, reprs, error types and message key words).
"""
from __future__ import annotations

import pytest

from nn_suite_harness import cases_of, run_both


def _net(nn):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.l1 = nn.Linear(3, 4)
            self.l2 = self.l1  # shared
            self.block = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
            self.register_buffer("count", None)
            self.norm = nn.BatchNorm1d(2)
            self.param = nn.Parameter(nn.Linear(1, 2).weight.detach().clone())
    return Net()


def case_named_modules_prefix_and_duplicates(torch, nn, F, h):
    net = _net(nn)
    return ([n for n, _ in net.named_modules()],
            [n for n, _ in net.named_modules(prefix="root")],
            [n for n, _ in net.named_modules(remove_duplicate=False)],
            [n for n, _ in net.named_parameters()],
            [n for n, _ in net.named_parameters(prefix="m", recurse=True)],
            [n for n, _ in net.named_parameters(remove_duplicate=False)],
            [n for n, _ in net.named_parameters(recurse=False)],
            [n for n, _ in net.named_buffers()],
            [n for n, _ in net.named_children()],
            len(list(net.parameters())), len(list(net.modules())))


def case_register_buffer_persistent_and_errors(torch, nn, F, h):
    m = nn.Module()
    m.register_buffer("a", torch.ones(2))
    m.register_buffer("b", torch.zeros(2), persistent=False)
    m.register_buffer("c", None)
    keys = list(m.state_dict().keys())
    names = [n for n, _ in m.named_buffers()]
    m.x = 1
    return (keys, names,
            h.raises(lambda: m.register_buffer("a.b", torch.ones(1)), "."),
            h.raises(lambda: m.register_buffer("", torch.ones(1)), "empty"),
            h.raises(lambda: m.register_buffer("x", torch.ones(1)), "already exists"),
            h.raises(lambda: m.register_buffer("d", 3), "Tensor"),
            h.raises(lambda: m.register_buffer(1, torch.ones(1)), "string"),
            m.b, m.c)


def case_register_parameter_errors(torch, nn, F, h):
    m = nn.Module()
    m.register_parameter("w", nn.Parameter(torch.ones(2)))
    m.register_parameter("none", None)
    m.y = 2
    return ([n for n, _ in m.named_parameters()], list(m.state_dict().keys()), m.none,
            h.raises(lambda: m.register_parameter("a.b", nn.Parameter(torch.ones(1))), "."),
            h.raises(lambda: m.register_parameter("", nn.Parameter(torch.ones(1))), "empty"),
            h.raises(lambda: m.register_parameter("y", nn.Parameter(torch.ones(1))), "already exists"),
            h.raises(lambda: m.register_parameter("z", torch.ones(1)), "Parameter"))


def case_setattr_rules(torch, nn, F, h):
    m = nn.Linear(2, 2)
    out = [h.raises(lambda: setattr(m, "weight", torch.ones(2, 2)), "weight", "Parameter"),
           h.raises(lambda: setattr(m, "weight", 3), "weight")]
    m.weight = None  # allowed: parameters may be set to None
    out.append([n for n, _ in m.named_parameters()])
    out.append(list(m.state_dict().keys()))
    m.register_buffer("buf", torch.zeros(1))
    m.buf = torch.ones(3)  # a buffer takes a new tensor
    out.append(m.buf)
    out.append(h.raises(lambda: setattr(m, "buf", 5), "buf"))
    m.sub = nn.ReLU()
    out.append(h.raises(lambda: setattr(m, "sub", torch.ones(1)), "sub"))
    m.sub = None
    out.append([n for n, _ in m.named_children()])
    m.plain = nn.Parameter(torch.ones(1))
    out.append([n for n, _ in m.named_parameters()])
    return out


def case_setattr_before_init_errors(torch, nn, F, h):
    class Bad(nn.Module):
        def __init__(self):
            self.p = nn.Parameter(torch.ones(1))
            super().__init__()

    class BadMod(nn.Module):
        def __init__(self):
            self.m = nn.ReLU()
            super().__init__()

    return (h.raises(Bad, "__init__"), h.raises(BadMod, "__init__"))


def case_delattr_and_getattr_error(torch, nn, F, h):
    m = nn.Linear(2, 3)
    m.register_buffer("buf", torch.ones(1))
    m.sub = nn.Tanh()
    del m.bias
    del m.buf
    del m.sub
    return ([n for n, _ in m.named_parameters()], [n for n, _ in m.named_buffers()],
            [n for n, _ in m.named_children()],
            h.raises(lambda: m.bias, "has no attribute", "bias", "Linear"),
            h.raises(lambda: m.nonexistent, "has no attribute", "nonexistent"))


def case_dir_lists_members(torch, nn, F, h):
    m = nn.Linear(2, 3)
    m.register_buffer("buf", torch.ones(1))
    m.child = nn.ReLU()
    keys = dir(m)
    return [k in keys for k in ("weight", "bias", "buf", "child", "forward", "in_features",
                                "_parameters", "state_dict")]


def case_repr_and_extra_repr(torch, nn, F, h):
    class WithExtra(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2))

        def extra_repr(self):
            return "scale=2,\nmode=fast"

    seq = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2), nn.ReLU())
    return (repr(WithExtra()), repr(seq), repr(nn.ModuleList([nn.ReLU(), nn.ReLU(), nn.Tanh()])),
            repr(nn.ModuleDict({"a": nn.ReLU(), "b": nn.Identity()})), repr(nn.Module()),
            repr(nn.Dropout(0.3, inplace=True)), repr(nn.Embedding(4, 3, padding_idx=0)),
            repr(nn.MaxPool2d(2, ceil_mode=True)), repr(nn.LSTM(3, 4, num_layers=2, dropout=0.1)))


def case_train_eval_propagate(torch, nn, F, h):
    m = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(), nn.BatchNorm1d(2)))
    m.eval()
    a = [x.training for x in m.modules()]
    m.train()
    b = [x.training for x in m.modules()]
    m[1].train(False)
    c = [x.training for x in m.modules()]
    r = m.train(True) is m
    return a, b, c, r, h.raises(lambda: m.train("yes"), "bool")


def case_requires_grad_and_zero_grad(torch, nn, F, h):
    m = h.det(nn.Linear(3, 2))
    m.requires_grad_(False)
    a = [p.requires_grad for p in m.parameters()]
    m.requires_grad_()
    x = h.randn(4, 3)
    m(x).sum().backward()
    g = m.weight.grad.clone()
    m.zero_grad(set_to_none=False)
    zeroed = m.weight.grad
    m(x).sum().backward()
    m.zero_grad()
    return a, g, zeroed, m.weight.grad, m.bias.grad


def case_apply_returns_self_and_visits_children_first(torch, nn, F, h):
    order = []
    m = nn.Sequential(nn.Linear(1, 1), nn.Sequential(nn.ReLU(), nn.Tanh()))
    r = m.apply(lambda mod: order.append(type(mod).__name__))
    return r is m, order


def case_to_half_double_keep_parameters(torch, nn, F, h):
    m = h.det(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)))
    w = m[0].weight
    m.double()
    a = (m[0].weight is w, m[0].weight.dtype, type(m[0].weight).__name__,
         m[1].running_mean.dtype, m[1].num_batches_tracked.dtype)
    m.half()
    b = (m[0].weight.dtype, m[1].num_batches_tracked.dtype, m[0].weight.requires_grad)
    m.to(torch.float32)
    c = m[0].weight
    m.to(dtype=torch.float64)
    d = m[0].bias.dtype
    r = m.float() is m
    return a, b, c, d, r, h.raises(lambda: m.to(torch.int32), "floating point")


def case_to_keeps_grad(torch, nn, F, h):
    m = h.det(nn.Linear(2, 2))
    m(h.randn(3, 2)).sum().backward()
    m.double()
    return m.weight.grad, m.weight.grad is not None and m.weight.grad.dtype


def case_get_submodule_parameter_buffer(torch, nn, F, h):
    m = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.BatchNorm1d(2)))
    return (type(m.get_submodule("1.0")).__name__, m.get_submodule("") is m,
            tuple(m.get_parameter("0.weight").shape), tuple(m.get_buffer("1.0.running_mean").shape),
            h.raises(lambda: m.get_submodule("2"), "has no attribute", "2"),
            h.raises(lambda: m.get_submodule("0.weight"), "is not an nn.Module"),
            h.raises(lambda: m.get_parameter("0.nope"), "has no attribute", "nope"),
            h.raises(lambda: m.get_parameter("1.0.running_mean"), "is not an nn.Parameter"),
            h.raises(lambda: m.get_buffer("0.weight"), "is not a buffer"))


def case_set_submodule(torch, nn, F, h):
    m = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU()))
    m.set_submodule("1.0", nn.Tanh())
    m.set_submodule("1.extra", nn.Sigmoid())
    out = [repr(m)]
    out.append(h.raises(lambda: m.set_submodule("1.missing", nn.ReLU(), strict=True), "has no attribute"))
    out.append(h.raises(lambda: m.set_submodule("0.weight", nn.ReLU()), "is not an nn.Module"))
    out.append(h.raises(lambda: m.set_submodule("", nn.ReLU()), "target name"))
    return out


def case_add_module_errors(torch, nn, F, h):
    m = nn.Module()
    m.attr = 3
    return (h.raises(lambda: m.add_module("a.b", nn.ReLU()), "."),
            h.raises(lambda: m.add_module("", nn.ReLU()), "empty"),
            h.raises(lambda: m.add_module("attr", nn.ReLU()), "already exists"),
            h.raises(lambda: m.add_module("x", 3), "Module"),
            h.raises(lambda: m.add_module(3, nn.ReLU()), "string"))


def case_call_without_forward(torch, nn, F, h):
    return h.raises(lambda: nn.Module()(torch.ones(1)), "forward")


def case_unexpected_constructor_arguments(torch, nn, F, h):
    return (h.raises(lambda: nn.Tanh(inplace=True), "unexpected keyword argument 'inplace'"),
            h.raises(lambda: nn.Module(3), "positional argument"))


def case_state_dict_order_and_keep_vars(torch, nn, F, h):
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Linear(2, 2))
    sd = m.state_dict()
    kv = m.state_dict(keep_vars=True)
    prefixed = m.state_dict(prefix="model.")
    return (list(sd.keys()), type(sd).__name__, sd["0.weight"].requires_grad,
            kv["0.weight"].requires_grad, type(kv["0.weight"]).__name__, list(prefixed.keys()))


def case_state_dict_metadata_versions(torch, nn, F, h):
    m = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    meta = m.state_dict()._metadata
    return sorted(meta.keys()), meta[""], meta["1"]


def case_load_state_dict_strict_false_result(torch, nn, F, h):
    src = h.det(nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1)))
    dst = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1), nn.Linear(1, 1))
    sd = src.state_dict()
    sd["extra.weight"] = torch.ones(1)
    res = dst.load_state_dict(sd, strict=False)
    return (res.missing_keys, res.unexpected_keys, type(res).__name__, repr(
        dst.load_state_dict(dst.state_dict())), dst[0].weight, tuple(res))


def case_load_state_dict_errors(torch, nn, F, h):
    m = nn.Linear(2, 3)
    return (h.raises(lambda: m.load_state_dict({"weight": torch.ones(3, 2)}), "Missing key(s)", '"bias"'),
            h.raises(lambda: m.load_state_dict({"weight": torch.ones(3, 2), "bias": torch.ones(3),
                                                "foo": torch.ones(1)}), "Unexpected key(s)", '"foo"'),
            h.raises(lambda: m.load_state_dict({"weight": torch.ones(2, 2), "bias": torch.ones(3)}),
                     "size mismatch for weight", "Size([2, 2])", "Size([3, 2])"),
            h.raises(lambda: m.load_state_dict([1, 2]), "Expected state_dict to be dict-like"),
            h.raises(lambda: m.load_state_dict({"weight": torch.ones(2, 2), "bias": torch.ones(3)},
                                               strict=False), "size mismatch"),
            h.raises(lambda: m.load_state_dict({"weight": 3, "bias": torch.ones(3)}), "weight"))


def case_load_state_dict_assign(torch, nn, F, h):
    m = nn.Linear(2, 3)
    old = m.weight
    new = {"weight": h.randn(3, 2, dtype="float64"), "bias": h.randn(3, seed=1, dtype="float64")}
    m.load_state_dict(new, assign=True)
    copied = nn.Linear(2, 3)
    copied.load_state_dict(new)
    return (m.weight is old, type(m.weight).__name__, m.weight.dtype, m.weight.requires_grad,
            copied.weight.dtype, copied.weight)


def case_load_state_dict_pre_and_post_hooks(torch, nn, F, h):
    calls = []
    m = nn.Sequential(nn.Linear(2, 2))

    def post(module, incompatible):
        calls.append((type(module).__name__, list(incompatible.missing_keys),
                      list(incompatible.unexpected_keys)))
        incompatible.unexpected_keys.clear()  # a post hook may forgive keys

    m.register_load_state_dict_post_hook(post)
    m[0].register_load_state_dict_post_hook(post)
    sd = m.state_dict()
    sd["zz"] = torch.ones(1)
    res = m.load_state_dict(sd)

    def pre(module, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
        calls.append(("pre", prefix, sorted(state_dict.keys())))
        state_dict[prefix + "bias"] = torch.zeros(2)

    h2 = m[0].register_load_state_dict_pre_hook(pre)
    m.load_state_dict({"0.weight": torch.ones(2, 2)})
    h2.remove()
    return calls, res.unexpected_keys, m[0].bias


def case_load_from_state_dict_override_upgrades_keys(torch, nn, F, h):
    class Old(nn.Module):
        _version = 2

        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(2))

        def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                                  missing_keys, unexpected_keys, error_msgs):
            version = local_metadata.get("version", None)
            if version is None or version < 2:
                if prefix + "weight_old" in state_dict:
                    state_dict[prefix + "w"] = state_dict.pop(prefix + "weight_old")
            super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                          missing_keys, unexpected_keys, error_msgs)

    outer = nn.Sequential(Old())
    sd = outer.state_dict()
    version = sd._metadata["0"]["version"]
    legacy = {"0.weight_old": torch.ones(2)}
    outer.load_state_dict(legacy)
    return version, outer[0].w


def case_state_dict_hooks(torch, nn, F, h):
    m = nn.Linear(1, 1)
    seen = []
    m.register_state_dict_pre_hook(lambda mod, prefix, keep_vars: seen.append(("pre", prefix)))

    def post(mod, sd, prefix, local_metadata):
        sd[prefix + "added"] = torch.ones(1)

    m.register_state_dict_post_hook(post)
    outer = nn.Sequential(m)
    keys = list(outer.state_dict().keys())
    return keys, seen


def case_extra_state(torch, nn, F, h):
    class WithExtra(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(1, 1)
            self.step = 0

        def get_extra_state(self):
            return {"step": self.step}

        def set_extra_state(self, state):
            self.step = state["step"]

    a, b = WithExtra(), WithExtra()
    a.step = 7
    sd = a.state_dict()
    b.load_state_dict(sd)
    return list(sd.keys()), b.step


def case_sequential_semantics(torch, nn, F, h):
    s = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Tanh(), nn.Sigmoid())
    sl = s[1:3]
    out = [type(sl).__name__, [type(x).__name__ for x in sl], len(s), type(s[-1]).__name__,
           [n for n, _ in sl.named_children()]]
    s.append(nn.Identity())
    s.insert(1, nn.ELU())
    s.extend([nn.GELU()])
    out.append([n for n, _ in s.named_children()])
    out.append(type(s.pop(0)).__name__)
    out.append([n for n, _ in s.named_children()])
    del s[0]
    out.append([type(x).__name__ for x in s])
    t = s + nn.Sequential(nn.Softplus())
    out.append([n for n, _ in t.named_children()])
    out.append(len(s * 2))
    s[0] = nn.Hardtanh()
    out.append(repr(s))
    out.append(h.raises(lambda: s[10], "index 10 is out of range"))
    out.append(h.raises(lambda: s + [1], "add"))
    od = nn.Sequential(__import__("collections").OrderedDict([("a", nn.ReLU()), ("b", nn.Tanh())]))
    out.append([n for n, _ in od.named_children()])
    return out


def case_sequential_forward_and_delitem_slice(torch, nn, F, h):
    s = h.det(nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2), nn.Tanh()))
    y = s(h.randn(2, 3))
    del s[1:3]
    return y, [n for n, _ in s.named_children()], s(h.randn(2, 3))


def case_modulelist_semantics(torch, nn, F, h):
    ml = nn.ModuleList([nn.ReLU(), nn.Tanh()])
    ml.append(nn.Sigmoid())
    ml.extend([nn.ELU(), nn.GELU()])
    ml.insert(0, nn.Identity())
    out = [[type(x).__name__ for x in ml], type(ml[1:3]).__name__, len(ml[::2]),
           [n for n, _ in ml.named_children()]]
    del ml[1]
    out.append([n for n, _ in ml.named_children()])
    out.append(type(ml.pop(1)).__name__)
    out.append([n for n, _ in ml.named_children()])
    ml2 = ml + nn.ModuleList([nn.Softsign()])
    out.append([type(x).__name__ for x in ml2])
    ml += [nn.Mish()]
    out.append(len(ml))
    ml[0] = nn.ReLU6()
    out.append(type(ml[0]).__name__)
    out.append(h.raises(lambda: ml[99], "index 99 is out of range"))
    out.append(h.raises(lambda: ml.extend(nn.ReLU()), "iterable"))
    out.append(h.raises(lambda: nn.ModuleList([1]), "Module"))
    out.append(repr(nn.ModuleList()))
    out.append(h.raises(lambda: nn.ModuleList([nn.ReLU()])(torch.ones(1)), "forward"))
    return out


def case_moduledict_semantics(torch, nn, F, h):
    d = nn.ModuleDict({"b": nn.ReLU(), "a": nn.Tanh()})
    d["c"] = nn.Sigmoid()
    d.update([("d", nn.ELU())])
    d.update({"a": nn.GELU()})
    out = [list(d.keys()), [type(v).__name__ for v in d.values()],
           [k for k, _ in d.items()], "a" in d, len(d)]
    out.append(type(d.pop("b")).__name__)
    out.append(list(d.keys()))
    del d["c"]
    out.append([n for n, _ in d.named_children()])
    out.append(h.raises(lambda: d["zz"], "zz"))
    out.append(h.raises(lambda: d.update([("x",)]), "update"))
    out.append(h.raises(lambda: d.update(3), "iterable"))
    d.clear()
    out.append(len(d))
    return out


def case_parameterlist_semantics(torch, nn, F, h):
    pl = nn.ParameterList([nn.Parameter(torch.ones(2)), nn.Parameter(torch.zeros(3))])
    pl.append(nn.Parameter(torch.ones(1)))
    pl.extend([nn.Parameter(torch.ones(4))])
    pl.append(torch.ones(5))  # plain tensors become Parameters
    out = [len(pl), [tuple(p.shape) for p in pl], [type(p).__name__ for p in pl],
           [n for n, _ in pl.named_parameters()], type(pl[1:3]).__name__, len(pl[1:3]),
           repr(nn.ParameterList([nn.Parameter(torch.ones(2, 3))])),
           tuple(pl[-1].shape)]
    pl[0] = nn.Parameter(torch.full((2,), 3.0))
    out.append(pl[0])
    m = nn.Module()
    m.pl = pl
    out.append(list(m.state_dict().keys()))
    return out


def case_parameterdict_semantics(torch, nn, F, h):
    pd = nn.ParameterDict({"b": nn.Parameter(torch.ones(2)), "a": nn.Parameter(torch.zeros(1))})
    pd["c"] = torch.ones(3)
    pd.update({"d": nn.Parameter(torch.ones(1))})
    out = [list(pd.keys()), [type(v).__name__ for v in pd.values()], "a" in pd, len(pd),
           [n for n, _ in pd.named_parameters()],
           repr(nn.ParameterDict({"w": nn.Parameter(torch.ones(2, 2))}))]
    out.append(tuple(pd.pop("b").shape))
    out.append(list(pd.keys()))
    out.append(pd.get("zz", None))
    out.append(h.raises(lambda: pd["zz"], "zz"))
    both = pd | nn.ParameterDict({"e": nn.Parameter(torch.ones(1))})
    out.append(list(both.keys()))
    out.append(list(pd.fromkeys(["x", "y"], torch.ones(1)).keys()))
    return out


def case_forward_hooks_kwargs_prepend_always_call(torch, nn, F, h):
    calls = []

    class M(nn.Module):
        def forward(self, x, scale=1.0):
            calls.append(("forward", scale))
            return x * scale

    m = M()
    m.register_forward_pre_hook(lambda mod, args: calls.append("pre_a"))
    m.register_forward_pre_hook(lambda mod, args: calls.append("pre_b"), prepend=True)

    def pre_kw(mod, args, kwargs):
        calls.append(("pre_kw", sorted(kwargs)))
        return args, {**kwargs, "scale": 3.0}

    m.register_forward_pre_hook(pre_kw, with_kwargs=True)

    def post_kw(mod, args, kwargs, out):
        calls.append(("post_kw", sorted(kwargs)))
        return out + 1

    m.register_forward_hook(post_kw, with_kwargs=True)
    m.register_forward_hook(lambda mod, args, out: calls.append("post_first"), prepend=True)
    y = m(torch.ones(2), scale=2.0)
    return y, calls


def case_forward_hook_always_call_on_error(torch, nn, F, h):
    calls = []

    class Boom(nn.Module):
        def forward(self, x):
            raise ValueError("boom")

    m = Boom()
    m.register_forward_hook(lambda mod, args, out: calls.append("always"), always_call=True)
    m.register_forward_hook(lambda mod, args, out: calls.append("normal"))
    err = h.raises(lambda: m(torch.ones(1)), "boom")
    return err, calls


def case_forward_pre_hook_replaces_single_arg(torch, nn, F, h):
    m = nn.Identity()
    m.register_forward_pre_hook(lambda mod, args: args[0] * 2)  # non-tuple -> wrapped
    h2 = m.register_forward_hook(lambda mod, args, out: None)  # None keeps output
    y = m(torch.ones(2))
    h2.remove()
    return y


def case_full_backward_hooks(torch, nn, F, h):
    seen = []
    m = h.det(nn.Linear(3, 2))

    def bhook(mod, grad_input, grad_output):
        seen.append(("hook", [None if g is None else tuple(g.shape) for g in grad_input],
                     [tuple(g.shape) for g in grad_output]))
        return (grad_input[0] * 2,)

    def bpre(mod, grad_output):
        seen.append(("pre", [tuple(g.shape) for g in grad_output]))
        return (grad_output[0] * 3,)

    m.register_full_backward_hook(bhook)
    m.register_full_backward_pre_hook(bpre)
    x = h.randn(4, 3, requires_grad=True)
    m(x).sum().backward()
    return seen, x.grad, m.weight.grad


def case_global_module_hooks(torch, nn, F, h):
    from importlib import import_module
    mod = import_module(nn.__name__ + ".modules.module")
    seen = []
    h1 = mod.register_module_forward_pre_hook(lambda m, args: seen.append(("pre", type(m).__name__)))
    h2 = mod.register_module_forward_hook(lambda m, args, out: seen.append(("post", type(m).__name__)))
    try:
        nn.Sequential(nn.ReLU())(torch.ones(1))
    finally:
        h1.remove()
        h2.remove()
    nn.ReLU()(torch.ones(1))
    return seen


def case_hook_handle_context_manager(torch, nn, F, h):
    seen = []
    m = nn.Identity()
    with m.register_forward_hook(lambda mod, a, o: seen.append(1)):
        m(torch.ones(1))
    m(torch.ones(1))
    return seen


def case_buffer_class_and_parameter_repr(torch, nn, F, h):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.b = nn.Buffer(torch.ones(2))
            self.np = nn.Buffer(torch.zeros(1), persistent=False)

    m = M()
    p = nn.Parameter(torch.ones(2), requires_grad=False)
    return (list(m.state_dict().keys()), [n for n, _ in m.named_buffers()], repr(p),
            p.requires_grad, repr(nn.Parameter(torch.tensor([1.0, 2.0]))),
            type(nn.Parameter()).__name__, tuple(nn.Parameter().shape))


def case_parameter_deepcopy_and_ops(torch, nn, F, h):
    import copy
    m = h.det(nn.Linear(2, 2))
    c = copy.deepcopy(m)
    return (type(c.weight).__name__, c.weight is not m.weight, c.weight,
            type(m.weight * 2).__name__, type(m.weight.detach()).__name__,
            type(m.weight.data).__name__)


def case_share_params_after_to(torch, nn, F, h):
    m = nn.Module()
    m.a = nn.Linear(2, 2)
    m.b = m.a
    m.double()
    return m.a.weight is m.b.weight, len(list(m.parameters())), m.b.weight.dtype


def case_modules_train_flag_in_repr_free_forward(torch, nn, F, h):
    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(3))

        def forward(self, x):
            return x * self.w if self.training else x

    m = Custom()
    x = torch.full((3,), 2.0)
    return m(x), m.eval()(x), m.training


def case_sequential_arithmetic(torch, nn, F, h):
    a = nn.Sequential(nn.ReLU(), nn.Tanh())
    out = [repr(a * 2), repr(2 * a), len(a + a)]
    a += nn.Sequential(nn.Sigmoid())
    out.append(len(a))
    a *= 2
    out.append([type(m).__name__ for m in a])
    out.append(h.raises(lambda: a * 0, "Non-positive"))
    out.append(h.raises(lambda: a * 1.5, "unsupported operand"))
    out.append(h.raises(lambda: a + nn.ModuleList([nn.ReLU()]), "Sequential class"))
    return out


def case_parameter_containers_extras(torch, nn, F, h):
    pl = nn.ParameterList([torch.ones(1), "text", torch.zeros(2)])
    out = [repr(pl), [type(p).__name__ for p in pl], len(list(pl.parameters())),
           h.raises(lambda: pl.extend(torch.ones(2)), "iterable"),
           h.raises(lambda: pl[5], "out of range"), h.raises(lambda: pl(1), "should not be called")]
    pd = nn.ParameterDict({"b": torch.ones(1), "a": 3})
    out += [list(pd.keys()), repr(pd), pd.setdefault("c", torch.zeros(2)), pd.popitem()[0],
            list(reversed(pd)), list(pd.copy().keys()),
            h.raises(lambda: pd[1], "not a string"), h.raises(lambda: pd.update(3), "iterable"),
            h.raises(lambda: pd(1), "should not be called")]
    pd |= nn.ParameterDict({"z": nn.Parameter(torch.ones(1))})
    out.append(list(pd.keys()))
    return out


cases = cases_of(globals())


@pytest.mark.parametrize("case", cases)
def test_nn_suite_module(case):
    run_both(case)
