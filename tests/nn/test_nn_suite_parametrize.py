"""torch.nn.utils.parametrize as PyTorch's test/nn/test_parametrization.py exercises it, run
under torch and ember."""
from __future__ import annotations

import copy
import pickle

import pytest

from nn_suite_harness import cases_of, run_both


def _P(nn):
    from importlib import import_module
    return import_module(nn.__name__ + ".utils.parametrize")


def case_nested_parametrization_and_names(torch, nn, F, h):
    P = _P(nn)

    class Skew(nn.Module):
        def forward(self, X):
            X = X.tril(-1)
            return X - X.T

    class Orth(nn.Module):
        def forward(self, X):
            Id = torch.eye(X.size(0))
            return torch.linalg.solve(Id + X, Id - X)

    model = h.det(nn.Linear(4, 4))
    P.register_parametrization(model, "weight", Skew())
    P.register_parametrization(model, "weight", Orth())
    W = model.weight
    out = [float((W.T @ W - torch.eye(4)).abs().max()) < 1e-4, type(model).__name__,
           P.type_before_parametrizations(model).__name__, list(model.state_dict().keys()),
           [type(p).__name__ for p in model.parametrizations.weight],
           repr(model).splitlines()[0]]
    parent = nn.Sequential(model)
    out.append([n for n, _ in parent.named_parameters()])
    P.remove_parametrizations(model, "weight", leave_parametrized=False)
    out += [type(model).__name__, P.is_parametrized(model)]
    return out


def case_multiple_originals_right_inverse_tuple(torch, nn, F, h):
    P = _P(nn)

    class RankOne(nn.Module):
        def forward(self, x, y):
            return x.unsqueeze(-1) @ y.unsqueeze(-2)

        def right_inverse(self, Y):
            U, S, Vh = torch.linalg.svd(Y)
            s0 = S[0].sqrt()
            return U[:, 0] * s0, Vh[0] * s0

    m = nn.Linear(3, 3)
    with torch.no_grad():
        m.weight.copy_(torch.outer(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.5, -1.0, 2.0])))
    P.register_parametrization(m, "weight", RankOne())
    out = [list(m.state_dict().keys()), m.weight,
           [n for n, _ in m.named_parameters()]]
    out.append(h.raises(lambda: P.remove_parametrizations(m, "weight", leave_parametrized=False),
                        "leave_parametrized"))
    P.remove_parametrizations(m, "weight")
    out.append(m.weight)
    return out


def case_caching_counts_calls(torch, nn, F, h):
    P = _P(nn)
    calls = []

    class Counted(nn.Module):
        def forward(self, X):
            calls.append(1)
            return X.exp()

    model = h.det(nn.Linear(3, 3))
    P.register_parametrization(model, "weight", Counted())
    x = h.randn(2, 3)
    with P.cached():
        y = model(x) + model(x)
        inside = len(calls)
    model(x)
    return inside, len(calls), y


def case_parametrization_train_mode_follows(torch, nn, F, h):
    P = _P(nn)

    class Id(nn.Module):
        def forward(self, X):
            return X

    m = nn.Linear(2, 2)
    P.register_parametrization(m, "weight", Id())
    m.eval()
    a = [x.training for x in m.modules()]
    m.train()
    return a, [x.training for x in m.modules()]


def case_deepcopy_and_pickle_parametrized(torch, nn, F, h):
    P = _P(nn)

    class Scale(nn.Module):
        def forward(self, X):
            return X * 2

    m = h.det(nn.Linear(2, 2))
    P.register_parametrization(m, "weight", Scale())
    c = copy.deepcopy(m)
    out = [type(c).__name__, c.weight, P.is_parametrized(c)]
    out.append(h.raises(lambda: pickle.dumps(m), "parametriz"))
    return out


def case_state_dict_load_into_parametrized(torch, nn, F, h):
    P = _P(nn)

    class Scale(nn.Module):
        def forward(self, X):
            return X * 2

    a = nn.Linear(2, 2)
    P.register_parametrization(a, "weight", Scale())
    b = h.det(nn.Linear(2, 2))
    P.register_parametrization(b, "weight", Scale())
    a.load_state_dict(b.state_dict())
    plain = nn.Linear(2, 2)
    res = plain.load_state_dict(b.state_dict(), strict=False)
    return a.weight, res.missing_keys, res.unexpected_keys


def case_buffer_parametrization_and_unsafe(torch, nn, F, h):
    P = _P(nn)

    class Double(nn.Module):
        def forward(self, X):
            return X * 2

    class Flatten(nn.Module):
        def forward(self, X):
            return X.reshape(-1)

    m = nn.Module()
    m.register_buffer("buf", torch.ones(2, 2))
    P.register_parametrization(m, "buf", Double())
    out = [m.buf, list(m.state_dict().keys()), [n for n, _ in m.named_buffers()]]
    n = h.det(nn.Linear(2, 2))
    P.register_parametrization(n, "weight", Flatten(), unsafe=True)
    out.append(tuple(n.weight.shape))
    out.append(h.raises(lambda: P.register_parametrization(h.det(nn.Linear(2, 2)), "weight", Flatten()),
                        "shape"))
    return out


def case_transfer_parametrizations(torch, nn, F, h):
    P = _P(nn)

    class Double(nn.Module):
        def forward(self, X):
            return X * 2

    src = h.det(nn.Linear(2, 2))
    P.register_parametrization(src, "weight", Double())
    dst = nn.Linear(2, 2)
    P.transfer_parametrizations_and_params(src, dst)
    return P.is_parametrized(dst, "weight"), dst.weight, list(dst.state_dict().keys())


def case_new_spectral_norm_eval_stable_and_load(torch, nn, F, h):
    from importlib import import_module
    PZ = import_module(nn.__name__ + ".utils.parametrizations")
    torch.manual_seed(0)
    a = PZ.spectral_norm(h.det(nn.Linear(4, 3)))
    a.eval()
    w1 = a.weight.detach().clone()
    w2 = a.weight.detach().clone()
    b = PZ.spectral_norm(nn.Linear(4, 3))
    b.load_state_dict(a.state_dict())
    b.eval()
    return bool(torch.equal(w1, w2)), b.weight, w1, list(a.state_dict().keys())


cases = cases_of(globals())


@pytest.mark.parametrize("case", cases)
def test_nn_suite_parametrize(case):
    run_both(case, rtol=1e-4, atol=1e-5)
