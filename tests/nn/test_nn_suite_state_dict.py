"""state_dict / load_state_dict as PyTorch's test/nn/test_load_state_dict.py exercises them,
run under torch and ember."""
from __future__ import annotations

import copy

import pytest

from nn_suite_harness import cases_of, run_both


def _net(torch, nn):
    lin = nn.Linear(5, 5)
    block = nn.Module()
    block.conv1 = nn.Conv2d(3, 3, 3, bias=True)
    block.conv2 = nn.Conv2d(3, 3, 3, bias=False)
    net = nn.Module()
    net.linear1 = lin
    net.linear2 = lin
    net.bn = nn.BatchNorm2d(2)
    net.block = block
    net.add_module("empty", None)
    return net


def case_load_shared_and_empty_children(torch, nn, F, h):
    net = _net(torch, nn)
    sd = net.state_dict()
    sd.update({"linear1.weight": torch.ones(5, 5), "block.conv1.bias": torch.arange(1.0, 4.0),
               "bn.running_mean": h.randn(2)})
    res = net.load_state_dict(sd)
    out = [list(sd.keys()), res.missing_keys, res.unexpected_keys, str(res),
           net.linear2.weight, net.block.conv1.bias, net.bn.running_mean]
    sd = net.state_dict()
    sd["extra"] = torch.ones(5)
    sd["extra.param"] = torch.ones(5)
    del sd["linear1.weight"]
    out.append(h.raises(lambda: net.load_state_dict(sd), "Missing key(s)", "Unexpected key(s)"))
    res = net.load_state_dict(sd, strict=False)
    out += [res.missing_keys, res.unexpected_keys, "Incompatible" in str(res)]
    sd = net.state_dict()
    sd["bn.running_mean"] = torch.rand(14, 4)
    out.append(h.raises(lambda: net.load_state_dict(sd, strict=False), "size mismatch for bn.running_mean"))
    return out


def case_unexpected_key_under_a_parameter(torch, nn, F, h):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(5, 10)

    m = M()
    sd = m.state_dict()
    sd["fc1.bad_suffix"] = torch.ones(1)
    sd["fc1.weight.bad_suffix"] = torch.ones(1)
    return (h.raises(lambda: m.load_state_dict(sd), "Unexpected key", "fc1.bad_suffix",
                     "fc1.weight.bad_suffix"),
            m.load_state_dict(sd, strict=False).unexpected_keys)


def case_consume_prefix(torch, nn, F, h):
    from importlib import import_module
    U = import_module(nn.__name__ + ".modules.utils")
    net = _net(torch, nn)
    sd = net.state_dict()
    ddp = type(sd)(("module." + k, v) for k, v in sd.items())
    ddp._metadata = type(sd._metadata)(("module." + k if k else "module", v)
                                       for k, v in sd._metadata.items())
    U.consume_prefix_in_state_dict_if_present(ddp, "module.")
    res = net.load_state_dict(ddp)
    return list(ddp.keys()), sorted(ddp._metadata.keys()), res.missing_keys


def case_batchnorm_bc_no_version(torch, nn, F, h):
    bn = nn.BatchNorm2d(3)
    sd = bn.state_dict()
    del sd["num_batches_tracked"]
    sd._metadata[""]["version"] = 1
    bn.load_state_dict(sd)
    a = (bn.num_batches_tracked.dtype, int(bn.num_batches_tracked))
    del sd._metadata[""]["version"]
    bn.load_state_dict(sd)
    return a, bn.num_batches_tracked.dtype, int(bn.num_batches_tracked)


def case_pre_hook_sees_only_its_keys(torch, nn, F, h):
    model = nn.Linear(1, 1)
    for _ in range(2):
        model = nn.Sequential(*[copy.deepcopy(model) for _ in range(3)])
    seen = []

    def hook(module, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
        seen.append((prefix, sorted(state_dict.keys()), len(module.state_dict())))

    model[0][1].register_load_state_dict_pre_hook(hook)
    model.load_state_dict(model.state_dict(), strict=True)
    return seen


def case_custom_save_and_load_overrides(torch, nn, F, h):
    class CustomState(nn.Module):
        def __init__(self):
            super().__init__()
            self.param = nn.Parameter(torch.ones(1))
            self.sub = nn.Linear(5, 5)

        def _save_to_state_dict(self, destination, prefix, keep_vars):
            destination[prefix + "serialized"] = self.param.data + 1

        def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                                  missing_keys, unexpected_keys, error_msgs):
            self.param.data.copy_(state_dict[prefix + "serialized"] - 1)

    m = nn.Sequential(CustomState())
    with torch.no_grad():
        m[0].param[0] = 10
        m[0].sub.weight[0, 0] = 555
    sd = m.state_dict()
    mm = nn.Sequential(CustomState())
    mm.load_state_dict(sd)
    return list(sd.keys()), sd["0.serialized"], mm[0].param, mm[0].sub.weight[0, 0]


def case_assign_onto_meta(torch, nn, F, h):
    class MyModule(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(3, 5)
            self.bn = nn.BatchNorm1d(5)
            self.x = nn.Parameter(torch.rand(5), requires_grad=False)

        def forward(self, input):
            return self.x + self.bn(self.fc1(input))

    net = h.det(MyModule())
    sd = net.state_dict()
    with torch.device("meta"):
        meta = MyModule()
    old = meta.state_dict(keep_vars=True)
    meta.load_state_dict(sd, assign=True)
    new = meta.state_dict(keep_vars=True)
    x = h.randn(4, 3)
    return ([(k, type(new[k]).__name__, new[k].requires_grad, new[k] is not old[k],
              new[k].device.type) for k in sd],
            [n for n, _ in meta.named_parameters()], net(x), meta(x))


def case_assign_keeps_stride_refuses_shape(torch, nn, F, h):
    net = nn.Linear(3, 5)
    sd = net.state_dict()
    sd["weight"] = h.randn(3, 5).transpose(0, 1)
    net.load_state_dict(sd, assign=True)
    sd["weight"] = h.randn(2, 4)
    return (net.weight, h.raises(lambda: net.load_state_dict(sd, strict=False, assign=True),
                                 "size mismatch for weight: copying a param with shape"))


def case_meta_copy_warns(torch, nn, F, h):
    import warnings
    with torch.device("meta"):
        m = nn.Linear(3, 5)
    sd = m.state_dict()
    sd["weight"] = torch.zeros(5, 3)
    sd["bias"] = torch.zeros(5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m.load_state_dict(sd)
    return sorted({"copying from a non-meta parameter in the checkpoint to a meta" in str(w.message)
                   for w in caught}), m.weight.device.type


def case_load_dict_type_errors(torch, nn, F, h):
    m = nn.Module()
    return (h.raises(lambda: m.load_state_dict(""), "Expected state_dict to be dict-like, got"),
            h.raises(lambda: m.load_state_dict(2), "Expected state_dict to be dict-like, got"))


def case_state_dict_pre_hook_after_delattr(torch, nn, F, h):
    m = nn.Linear(1, 1)
    had = hasattr(m, "_state_dict_pre_hooks")
    delattr(m, "_state_dict_pre_hooks")  # a module pickled before the hooks existed
    import pickle
    m = pickle.loads(pickle.dumps(m))
    m.state_dict()
    called = []
    m.register_state_dict_pre_hook(lambda *a, **k: called.append(1))
    m.state_dict()
    return had, called


def case_state_dict_post_hook_must_return_none(torch, nn, F, h):
    m = nn.Linear(1, 1)
    m.register_state_dict_post_hook(lambda mod, sd, prefix, meta: {})
    return h.raises(lambda: m.state_dict(), "post-hook must return None")


def case_load_post_hook_must_return_none(torch, nn, F, h):
    m = nn.Linear(1, 1)
    m.register_load_state_dict_post_hook(lambda mod, keys: 1)
    return h.raises(lambda: m.load_state_dict(m.state_dict()), "not expected to return new values")


def case_save_load_module_roundtrip(torch, nn, F, h):
    import io
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.LazyLinear(3))
    x = h.randn(2, 1, 5, 5)
    m(x)
    h.det(m)
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    sd = torch.load(buf)
    fresh = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(18, 3))
    fresh.load_state_dict(sd)
    return list(sd.keys()), fresh.eval()(x), m.eval()(x)


cases = cases_of(globals())


@pytest.mark.parametrize("case", cases)
def test_nn_suite_state_dict(case):
    run_both(case, rtol=1e-5, atol=1e-6)
