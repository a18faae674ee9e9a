"""Module idioms PyTorch's test_nn.py checks and user code leans on (EMA through
state_dict views, deepcopy keeping hooks, `.data` swaps, type conversions), run under torch
and ember."""
from __future__ import annotations

import copy

import pytest

from nn_suite_harness import cases_of, run_both


def case_state_dict_entries_share_storage_ema(torch, nn, F, h):
    model = h.det(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)))
    ema = copy.deepcopy(model)
    h.det(model, seed=5)
    msd = model.state_dict()
    with torch.no_grad():
        for k, v in ema.state_dict().items():  # the timm / yolov5 EMA update
            if v.dtype.is_floating_point:
                v *= 0.9
                v += 0.1 * msd[k].detach()
    return ema[0].weight, ema[1].running_var, ema.state_dict()["0.bias"].requires_grad


def case_deepcopy_keeps_hooks_and_params(torch, nn, F, h):
    m = h.det(nn.Linear(2, 2))
    m.register_forward_hook(lambda mod, i, o: o * 10)
    c = copy.deepcopy(m)
    x = h.randn(1, 2)
    return c(x), m(x), c.weight is m.weight, len(c._forward_hooks)


def case_data_swap_and_shape_change(torch, nn, F, h):
    m = nn.Linear(2, 3)
    w = m.weight
    m.weight.data = torch.ones(4, 2)
    out = [m.weight is w, tuple(m.weight.shape), type(m.weight).__name__, m.weight.requires_grad]
    m.bias.data.fill_(0.5)
    out.append(m.bias)
    with torch.no_grad():
        m.weight.mul_(2)
    out.append(m.weight)
    return out


def case_type_and_to_variants(torch, nn, F, h):
    m = h.det(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)))
    a = m.type(torch.float64)
    out = [a is m, m[0].weight.dtype, m[1].num_batches_tracked.dtype]
    m.to("cpu", torch.float32, non_blocking=True)
    out.append(m[0].weight.dtype)
    m.to(torch.zeros(1, dtype=torch.float64))
    out.append(m[0].bias.dtype)
    m.to(device="cpu", dtype=torch.float16)
    out.append(m[0].weight.dtype)
    out.append(h.raises(lambda: m.to("cpu", torch.int64), "floating point"))
    return out


def case_half_forward_and_bfloat16(torch, nn, F, h):
    m = h.det(nn.Linear(4, 3)).bfloat16()
    y = m(h.randn(2, 4).bfloat16())
    return y.dtype, y.float(), m.weight.dtype


def case_zero_grad_default_and_set_to_none_false(torch, nn, F, h):
    m = h.det(nn.Linear(2, 2))
    m(h.randn(3, 2)).sum().backward()
    g = m.weight.grad
    m.zero_grad(set_to_none=False)
    same_object = m.weight.grad is g
    m.zero_grad()
    return same_object, g, m.weight.grad


def case_register_module_alias_and_children_order(torch, nn, F, h):
    m = nn.Module()
    m.register_module("b", nn.ReLU())
    m.add_module("a", nn.Tanh())
    m.c = nn.Sigmoid()
    m.b = nn.GELU()  # re-assignment keeps the position
    return [n for n, _ in m.named_children()], repr(m)


def case_forward_assigned_as_attribute(torch, nn, F, h):
    m = nn.Linear(2, 2)
    m.forward = lambda x: x * 3
    return m(torch.ones(2))


def case_module_call_with_kwargs_only_and_dict_input(torch, nn, F, h):
    class M(nn.Module):
        def forward(self, *, x, extras=None):
            return x.sum() + (extras["y"].sum() if extras else 0)

    m = M()
    return m(x=torch.ones(2)), m(x=torch.ones(2), extras={"y": torch.ones(3)})


def case_convert_sync_batchnorm_and_fuse(torch, nn, F, h):
    model = h.det(nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU()))
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(model))
    model.eval()
    from importlib import import_module
    fusion = import_module(nn.__name__ + ".utils.fusion")
    fused = fusion.fuse_conv_bn_eval(model[0], model[1])
    x = h.randn(1, 2, 5, 5)
    return (type(synced[1]).__name__, list(synced.state_dict().keys()), fused(x),
            model[1](model[0](x)), repr(fused))


def case_parameters_generator_and_named_buffers_recurse(torch, nn, F, h):
    m = nn.Sequential(nn.BatchNorm1d(2), nn.Sequential(nn.BatchNorm1d(2)))
    return ([n for n, _ in m.named_buffers(recurse=False)],
            [n for n, _ in m.named_buffers(prefix="x")],
            [n for n, _ in m[1].named_buffers(remove_duplicate=False)],
            type(m.parameters()).__name__, sum(p.numel() for p in m.parameters()))


def case_requires_grad_false_params_skip_grad(torch, nn, F, h):
    m = h.det(nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1)))
    m[0].requires_grad_(False)
    m(h.randn(3, 2)).sum().backward()
    return m[0].weight.grad, m[1].weight.grad, [p.requires_grad for p in m.parameters()]


def case_train_returns_self_and_eval_chain(torch, nn, F, h):
    m = nn.Sequential(nn.Dropout(0.5))
    return m.eval() is m, m.train() is m, m.requires_grad_() is m, m.float() is m, \
        m.zero_grad() is None, m.apply(lambda x: None) is m, m.cpu() is m


def case_parameter_in_set_and_dict_keys(torch, nn, F, h):
    m = nn.Linear(2, 2)
    params = set(m.parameters())
    groups = {p: n for n, p in m.named_parameters()}
    return len(params), m.weight in params, groups[m.bias]


def case_no_grad_forward_and_inference_mode(torch, nn, F, h):
    m = h.det(nn.Linear(2, 2))
    x = h.randn(1, 2)
    with torch.no_grad():
        a = m(x)
    with torch.inference_mode():
        b = m(x)
    return a.requires_grad, b.requires_grad, a, b


def case_functional_call(torch, nn, F, h):
    m = nn.Linear(2, 2)
    with torch.no_grad():
        m.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        m.bias.zero_()
    x = torch.ones(1, 2)
    fc = torch.func.functional_call
    return (fc(m, {"weight": torch.eye(2)}, (x,)), fc(m, ({"weight": torch.eye(2)}, {"bias": torch.ones(2)}), x),
            fc(m, {"nope": torch.eye(2)}, (x,)), hasattr(m, "nope"), m.weight,
            h.raises(lambda: fc(m, {"weight": torch.eye(2)}, (x,), strict=True),
                     "Error(s) in reparametrizing for Linear", "Missing key(s): 'bias'"))


cases = cases_of(globals())


@pytest.mark.parametrize("case", cases)
def test_nn_suite_idioms(case):
    run_both(case, rtol=1e-2, atol=1e-2) if "bfloat16" in case.__name__ else run_both(case)
