"""nn.utils and nn.init as PyTorch's test/nn tests use them (test_parametrization.py,
test_pruning.py, test_packed_sequence.py, test_init.py), run under torch and ember."""
from __future__ import annotations

import math

import pytest

from nn_suite_harness import cases_of, run_both


# --- parametrizations -------------------------------------------------------------------

def case_register_parametrization_right_inverse(torch, nn, F, h):
    import importlib
    P = importlib.import_module(nn.__name__ + ".utils.parametrize")

    class Symmetric(nn.Module):
        def forward(self, X):
            return X.triu() + X.triu(1).transpose(-1, -2)

    class Scale(nn.Module):
        def forward(self, X):
            return X * 2

        def right_inverse(self, Y):
            return Y / 2

    m = h.det(nn.Linear(3, 3))
    orig = m.weight.detach().clone()
    P.register_parametrization(m, "weight", Symmetric())
    P.register_parametrization(m, "weight", Scale())
    out = [P.is_parametrized(m), P.is_parametrized(m, "weight"), P.is_parametrized(m, "bias"),
           [n for n, _ in m.named_parameters()], list(m.state_dict().keys()),
           type(m).__name__, m.weight, m.parametrizations.weight.original]
    out.append(h.raises(lambda: setattr(m, "weight", h.randn(3, 3)), "right_inverse"))
    scaled = P.register_parametrization(h.det(nn.Linear(3, 3)), "weight", Scale())
    scaled.weight = h.randn(3, 3, seed=3)  # through right_inverse: original = target / 2
    out += [scaled.parametrizations.weight.original, scaled.weight]
    y = m(h.randn(2, 3, seed=4))
    y.sum().backward()
    out.append(m.parametrizations.weight.original.grad)
    P.remove_parametrizations(m, "weight", leave_parametrized=True)
    out += [P.is_parametrized(m), [n for n, _ in m.named_parameters()], m.weight,
            type(m).__name__, orig.shape]
    return out


def case_parametrization_remove_original_and_errors(torch, nn, F, h):
    import importlib
    P = importlib.import_module(nn.__name__ + ".utils.parametrize")

    class Double(nn.Module):
        def forward(self, X):
            return X * 2

    m = h.det(nn.Linear(2, 2))
    w0 = m.weight.detach().clone()
    P.register_parametrization(m, "weight", Double())
    P.remove_parametrizations(m, "weight", leave_parametrized=False)
    out = [m.weight, (m.weight - w0).abs().max()]

    class NoInverse(nn.Module):
        def forward(self, X):
            return X + 1

    P.register_parametrization(m, "bias", NoInverse())
    out.append(h.raises(lambda: setattr(m, "bias", torch.zeros(2)), "right_inverse"))
    out.append(h.raises(lambda: P.remove_parametrizations(m, "weight"), "does not have a parametrization"))
    out.append(h.raises(lambda: P.register_parametrization(m, "nothere", Double()), "nothere"))

    class ChangesShape(nn.Module):
        def forward(self, X):
            return X.sum()

    out.append(h.raises(lambda: P.register_parametrization(nn.Linear(2, 2), "weight",
                                                           ChangesShape()), "shape"))
    return out


def case_parametrize_cached(torch, nn, F, h):
    import importlib
    P = importlib.import_module(nn.__name__ + ".utils.parametrize")
    calls = []

    class Counting(nn.Module):
        def forward(self, X):
            calls.append(1)
            return X * 3

    m = h.det(nn.Linear(2, 2))
    P.register_parametrization(m, "weight", Counting())
    with P.cached():
        a = m.weight
        b = m.weight
        same = a is b
    n_cached = len(calls)
    m.weight
    m.weight
    return same, n_cached, len(calls), P.is_parametrized(m)


def case_orthogonal(torch, nn, F, h):
    from importlib import import_module
    PZ = import_module(nn.__name__ + ".utils.parametrizations")
    out = []
    for shape, kwargs in (((4, 4), {}), ((5, 3), {}), ((3, 5), {"orthogonal_map": "cayley"}),
                          ((4, 4), {"orthogonal_map": "householder"})):
        m = nn.Linear(shape[1], shape[0], bias=False)
        h.det(m)
        PZ.orthogonal(m, **kwargs)
        W = m.weight
        eye = W @ W.T if shape[0] <= shape[1] else W.T @ W
        n = min(shape)
        out.append(float((eye - torch.eye(n)).abs().max()) < 1e-4)
        out.append([k for k in m.state_dict().keys()])
    out.append(h.raises(lambda: PZ.orthogonal(nn.Linear(3, 3), orthogonal_map="bogus"),
                        "orthogonal_map"))
    return out


def case_spectral_norm_new_api(torch, nn, F, h):
    from importlib import import_module
    PZ = import_module(nn.__name__ + ".utils.parametrizations")
    torch.manual_seed(0)  # the power iteration's start
    m = h.det(nn.Linear(5, 4))
    PZ.spectral_norm(m)
    keys = list(m.state_dict().keys())
    w = m.weight
    sigma = torch.linalg.matrix_norm(w.detach(), ord=2)
    return keys, [n for n, _ in m.named_parameters()], abs(float(sigma) - 1.0) < 0.05, tuple(w.shape)


def case_spectral_norm_old_api(torch, nn, F, h):
    m = h.det(nn.Linear(5, 4))
    m = nn.utils.spectral_norm(m)
    out = [sorted(m.state_dict().keys()), [n for n, _ in m.named_parameters()],
           [n for n, _ in m.named_buffers()]]
    m.eval()
    out.append(tuple(m(h.randn(2, 5)).shape))
    nn.utils.remove_spectral_norm(m)
    out.append(sorted(m.state_dict().keys()))
    out.append(h.raises(lambda: nn.utils.remove_spectral_norm(m), "spectral_norm", "not found"))
    return out


def case_weight_norm_both_apis(torch, nn, F, h):
    from importlib import import_module
    PZ = import_module(nn.__name__ + ".utils.parametrizations")
    m = h.det(nn.Linear(3, 4))
    w0 = m.weight.detach().clone()
    PZ.weight_norm(m, dim=0)
    out = [list(m.state_dict().keys()), m.parametrizations.weight.original0,
           m.parametrizations.weight.original1, m.weight]
    x = h.randn(2, 3)
    m(x).sum().backward()
    out.append(m.parametrizations.weight.original0.grad)
    out.append(m.parametrizations.weight.original1.grad)
    old = nn.utils.weight_norm(h.det(nn.Linear(3, 4)), dim=None)
    out += [sorted(old.state_dict().keys()), old.weight_g, old(x)]
    nn.utils.remove_weight_norm(old)
    out.append(sorted(old.state_dict().keys()))
    out.append((m.weight - w0).abs().max())
    return out


def case_parametrization_state_dict_roundtrip(torch, nn, F, h):
    from importlib import import_module
    PZ = import_module(nn.__name__ + ".utils.parametrizations")
    a = PZ.weight_norm(h.det(nn.Linear(3, 2)))
    b = PZ.weight_norm(nn.Linear(3, 2))
    b.load_state_dict(a.state_dict())
    return b.weight, b.bias


# --- pruning ------------------------------------------------------------------------------

def case_prune_l1_random_identity_remove(torch, nn, F, h):
    from importlib import import_module
    prune = import_module(nn.__name__ + ".utils.prune")
    m = h.det(nn.Linear(4, 3))
    prune.l1_unstructured(m, "weight", amount=0.5)
    out = [sorted(m.state_dict().keys()), [n for n, _ in m.named_parameters()],
           [n for n, _ in m.named_buffers()], m.weight_mask, m.weight, prune.is_pruned(m)]
    prune.l1_unstructured(m, "weight", amount=2)  # iterative: 2 more of the remaining
    out.append(m.weight_mask.sum())
    prune.remove(m, "weight")
    out += [[n for n, _ in m.named_parameters()], type(m.weight).__name__, m.weight,
            prune.is_pruned(m)]
    n = nn.Linear(2, 2)
    prune.identity(n, "bias")
    out.append(n.bias_mask)
    out.append(h.raises(lambda: prune.l1_unstructured(nn.Linear(2, 2), "weight", amount=1.5),
                        "amount"))
    out.append(h.raises(lambda: prune.l1_unstructured(nn.Linear(2, 2), "weight", amount=10),
                        "amount"))
    out.append(h.raises(lambda: prune.remove(nn.Linear(2, 2), "weight"), "weight",
                        "has to be pruned"))
    out.append(h.raises(lambda: prune.l1_unstructured(nn.Linear(2, 2), "nope", amount=1),
                        "nope"))
    return out


def case_prune_ln_structured_and_global(torch, nn, F, h):
    from importlib import import_module
    prune = import_module(nn.__name__ + ".utils.prune")
    conv = h.det(nn.Conv2d(2, 4, 3))
    prune.ln_structured(conv, "weight", amount=0.5, n=2, dim=0)
    kept = conv.weight_mask.sum(dim=(1, 2, 3))
    a, b = h.det(nn.Linear(4, 4), seed=1), h.det(nn.Linear(4, 2), seed=2)
    prune.global_unstructured([(a, "weight"), (b, "weight")],
                              pruning_method=prune.L1Unstructured, amount=10)
    total = a.weight_mask.sum() + b.weight_mask.sum()
    c = h.det(nn.Linear(3, 3), seed=5)
    prune.custom_from_mask(c, "bias", mask=torch.tensor([0.0, 1.0, 1.0]))
    return kept, conv.weight, total, a.weight_mask, b.weight_mask, c.bias


def case_prune_hooks_and_grad(torch, nn, F, h):
    from importlib import import_module
    prune = import_module(nn.__name__ + ".utils.prune")
    m = h.det(nn.Linear(3, 2))
    prune.l1_unstructured(m, "weight", amount=3)
    hooks = [type(v).__name__ for v in m._forward_pre_hooks.values()]
    x = h.randn(4, 3)
    m(x).sum().backward()
    return hooks, m.weight_orig.grad


# --- packed sequences ---------------------------------------------------------------------

def case_pack_padded_sorted_and_unsorted(torch, nn, F, h):
    U = nn.utils.rnn
    x = h.randn(3, 4, 2)  # batch_first
    lengths = torch.tensor([4, 2, 3])
    p = U.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out = [p.data, p.batch_sizes, p.sorted_indices, p.unsorted_indices, type(p).__name__]
    pad, lens = U.pad_packed_sequence(p, batch_first=True)
    out += [pad, lens]
    pad2, lens2 = U.pad_packed_sequence(p, batch_first=False, padding_value=-1.0, total_length=6)
    out += [pad2, lens2]
    out.append(h.raises(lambda: U.pack_padded_sequence(x, lengths, batch_first=True),
                        "must be sorted in decreasing order", "enforce_sorted"))
    out.append(h.raises(lambda: U.pad_packed_sequence(p, total_length=2), "total_length"))
    out.append(h.raises(lambda: U.pack_padded_sequence(x, torch.tensor([4, 0, 3]),
                                                       batch_first=True, enforce_sorted=False),
                        "Length of all samples has to be greater than 0"))
    s = U.pack_padded_sequence(x, [4, 3, 2], batch_first=True)
    out += [s.sorted_indices, s.unsorted_indices, s.batch_sizes]
    return out


def case_pad_and_pack_sequence(torch, nn, F, h):
    U = nn.utils.rnn
    seqs = [h.randn(3, 2, seed=1), h.randn(5, 2, seed=2), h.randn(1, 2, seed=3)]
    out = [U.pad_sequence(seqs), U.pad_sequence(seqs, batch_first=True, padding_value=9.0),
           U.pad_sequence(seqs, batch_first=True, padding_side="left")]
    p = U.pack_sequence(seqs, enforce_sorted=False)
    out += [p.data, p.batch_sizes, p.sorted_indices]
    out.append(h.raises(lambda: U.pack_sequence(seqs), "enforce_sorted"))
    unpacked = U.unpack_sequence(p)
    out.append(unpacked)
    out.append(U.unpad_sequence(U.pad_sequence(seqs), torch.tensor([3, 5, 1])))
    out.append(U.invert_permutation(torch.tensor([2, 0, 1])))
    out.append(h.raises(lambda: U.pad_sequence(seqs, padding_side="middle"), "padding_side"))
    out.append(h.raises(lambda: U.pad_sequence([]), "empty list of sequences"))
    out.append(h.raises(lambda: U.pack_sequence([]), "empty list of sequences"))
    return out


def case_packed_sequence_methods_and_rnn(torch, nn, F, h):
    U = nn.utils.rnn
    x = h.randn(5, 3, 2, dtype="float64")
    p = U.pack_padded_sequence(x, torch.tensor([5, 3, 2]))
    out = [p.float().data.dtype, p.double().data.dtype, p.is_cuda, p.to(torch.float32).data.dtype,
           type(p.cpu()).__name__, p.is_pinned() if hasattr(p, "is_pinned") else False]
    rnn = h.det(nn.GRU(2, 3).double())
    y, hn = rnn(p)
    out += [type(y).__name__, y.data, y.batch_sizes, hn]
    pad, lens = U.pad_packed_sequence(y)
    out += [pad, lens]
    lstm = h.det(nn.LSTM(2, 3, batch_first=True).double())
    xu = h.randn(3, 4, 2, seed=2, dtype="float64")
    pu = U.pack_padded_sequence(xu, [2, 4, 1], batch_first=True, enforce_sorted=False)
    yu, (hu, cu) = lstm(pu)
    out += [U.pad_packed_sequence(yu, batch_first=True)[0], hu, cu]
    return out


# --- init -----------------------------------------------------------------------------------

def case_init_calculate_gain(torch, nn, F, h):
    init = nn.init
    out = [init.calculate_gain(n) for n in ("linear", "conv1d", "conv2d", "conv3d",
                                            "conv_transpose2d", "sigmoid", "tanh", "relu",
                                            "selu")]
    out += [init.calculate_gain("leaky_relu"), init.calculate_gain("leaky_relu", 0.2),
            init.calculate_gain("leaky_relu", 1)]
    out.append(h.raises(lambda: init.calculate_gain("leaky_relu", "x"), "negative_slope"))
    out.append(h.raises(lambda: init.calculate_gain("bogus"), "Unsupported nonlinearity"))
    return out


def case_init_fan_in_fan_out(torch, nn, F, h):
    init = nn.init
    out = []
    for shape in ((3, 4), (5, 2, 3), (6, 4, 3, 3), (2, 3, 2, 2, 2)):
        out.append(init._calculate_fan_in_and_fan_out(torch.empty(*shape)))
    out.append(h.raises(lambda: init._calculate_fan_in_and_fan_out(torch.empty(3)),
                        "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions"))
    out.append(h.raises(lambda: init.xavier_uniform_(torch.empty(3)), "fewer than 2 dimensions"))
    out.append(h.raises(lambda: init.kaiming_normal_(torch.empty(3)), "fewer than 2 dimensions"))
    out.append(h.raises(lambda: init.kaiming_uniform_(torch.empty(2, 2), mode="fan_avg"),
                        "Mode fan_avg not supported"))
    out.append(h.raises(lambda: init.eye_(torch.empty(2, 2, 2)), "Only tensors with 2 dimensions"))
    out.append(h.raises(lambda: init.dirac_(torch.empty(2, 2)), "Only tensors with 3, 4, or 5 dimensions"))
    out.append(h.raises(lambda: init.orthogonal_(torch.empty(3)), "Only tensors with 2 or more dimensions"))
    out.append(h.raises(lambda: init.sparse_(torch.empty(2, 2, 2), 0.5), "Only tensors with 2 dimensions"))
    out.append(h.raises(lambda: init.uniform_(torch.zeros(3, dtype=torch.int64)), "not implemented for"))
    out.append(h.raises(lambda: init.normal_(torch.zeros(3, dtype=torch.int32)), "not implemented for"))
    return out


def case_init_deterministic_fills(torch, nn, F, h):
    init = nn.init
    out = [init.constant_(torch.empty(2, 3), 0.5), init.ones_(torch.empty(2)),
           init.zeros_(torch.empty(3)), init.eye_(torch.empty(3, 4)), init.dirac_(torch.empty(4, 2, 3)),
           init.dirac_(torch.empty(6, 2, 3, 3), groups=2)]
    w = torch.empty(3, 3, requires_grad=True)
    r = init.ones_(w)
    out += [r is w, w.requires_grad, w.grad_fn is None]
    return out


def case_init_random_statistics(torch, nn, F, h):
    """Distribution bounds and spreads (the draws differ; the laws must not)."""
    init = nn.init
    torch.manual_seed(0)
    w = torch.empty(200, 300)
    fan_in, fan_out = 300, 200
    res = []
    init.uniform_(w, -0.5, 2.0)
    res.append((float(w.min()) >= -0.5, float(w.max()) <= 2.0))
    init.normal_(w, mean=3.0, std=0.5)
    res.append((abs(float(w.mean()) - 3.0) < 0.02, abs(float(w.std()) - 0.5) < 0.02))
    init.xavier_uniform_(w, gain=2.0)
    bound = 2.0 * math.sqrt(6.0 / (fan_in + fan_out))
    res.append((float(w.abs().max()) <= bound, float(w.abs().max()) > 0.95 * bound))
    init.xavier_normal_(w)
    res.append(abs(float(w.std()) - math.sqrt(2.0 / (fan_in + fan_out))) < 0.003)
    init.kaiming_uniform_(w, a=math.sqrt(5))
    bound = math.sqrt(6.0 / ((1 + 5) * fan_in))
    res.append((float(w.abs().max()) <= bound, float(w.abs().max()) > 0.95 * bound))
    init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    res.append(abs(float(w.std()) - math.sqrt(2.0 / fan_out)) < 0.003)
    init.trunc_normal_(w, mean=0.0, std=1.0, a=-0.5, b=0.5)
    res.append((float(w.min()) >= -0.5, float(w.max()) <= 0.5))
    q = init.orthogonal_(torch.empty(6, 4), gain=1.5)
    res.append(float((q.T @ q - 2.25 * torch.eye(4)).abs().max()) < 1e-4)
    s = init.sparse_(torch.empty(10, 6), sparsity=0.3)
    res.append([int((s[:, j] == 0).sum()) for j in range(6)])
    g = torch.Generator().manual_seed(1)
    a = init.uniform_(torch.empty(5), generator=g)
    g.manual_seed(1)
    b = init.uniform_(torch.empty(5), generator=g)
    res.append(bool((a == b).all()))
    return res


def case_default_layer_init_bounds(torch, nn, F, h):
    torch.manual_seed(0)
    lin = nn.Linear(400, 50)
    conv = nn.Conv2d(8, 16, 3)
    bound_w = 1 / math.sqrt(400)
    cbound = 1 / math.sqrt(8 * 9)
    emb = nn.Embedding(1000, 20)
    return (float(lin.weight.abs().max()) <= bound_w, float(lin.weight.abs().max()) > 0.9 * bound_w,
            float(lin.bias.abs().max()) <= bound_w, float(conv.weight.abs().max()) <= cbound,
            float(conv.bias.abs().max()) <= cbound, abs(float(emb.weight.std()) - 1) < 0.05,
            nn.BatchNorm2d(3).weight, nn.LayerNorm(4).bias)


cases = cases_of(globals())


@pytest.mark.parametrize("case", cases)
def test_nn_suite_utils(case):
    run_both(case, rtol=1e-4, atol=1e-5)
