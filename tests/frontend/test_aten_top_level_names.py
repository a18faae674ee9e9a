"""torch's top-level ATen-form functions (int reductions, *_copy views, deprecated norms,
sym_* helpers, global switches) give torch's values and behaviour under ember's names."""
import warnings

import numpy as np
import pytest
import torch

import ember


def _pair(*shape, seed=0, low=None):
    rng = np.random.default_rng(seed + len(shape))
    a = rng.standard_normal(shape).astype(np.float32)
    if low is not None:
        a = np.abs(a) + low
    return ember.tensor(a), torch.tensor(a)


def _close(ours, theirs, tol=1e-5):
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("reduction", [0, 1, 2])
def test_losses_with_int_reduction_match_torch(reduction):
    (x, tx), (y, ty) = _pair(4, 5, seed=1), _pair(4, 5, seed=2)
    (p, tp) = _pair(4, 5, seed=3, low=0.1)
    (t1, tt1) = ember.tensor([1., -1., 1., -1.]), torch.tensor([1., -1., 1., -1.])
    probs = ember.sigmoid(y)
    cases = [
        ("binary_cross_entropy_with_logits", (x, probs, None, None, reduction),
         (tx, torch.sigmoid(ty), None, None, reduction)),
        ("kl_div", (x, p, reduction), (tx, tp, reduction)),
        ("cosine_embedding_loss", (x, y, t1, 0.1, reduction), (tx, ty, tt1, 0.1, reduction)),
        ("margin_ranking_loss", (x[:, 0], y[:, 0], t1, 0.2, reduction),
         (tx[:, 0], ty[:, 0], tt1, 0.2, reduction)),
        ("triplet_margin_loss", (x, y, p, 1.0, 2.0, 1e-6, True, reduction),
         (tx, ty, tp, 1.0, 2.0, 1e-6, True, reduction)),
        ("hinge_embedding_loss", (x, ember.sign(y), 1.0, reduction),
         (tx, torch.sign(ty), 1.0, reduction)),
        ("poisson_nll_loss", (x, p, True, True, 1e-8, reduction),
         (tx, tp, True, True, 1e-8, reduction)),
    ]
    for name, ours, theirs in cases:
        _close(getattr(ember, name)(*ours), getattr(torch, name)(*theirs))


def test_losses_without_reduction_follow_torch_binding_default():
    """torch's bindings parse the schema's `reduction=Mean` default as 0: an omitted
    reduction gives the unreduced loss; aten's margin ranking loss broadcasts (no
    same-dimension check) and its triplet loss takes any margin."""
    (x, tx), (y, ty) = _pair(4, 5, seed=1), _pair(4, 5, seed=2)
    (p, tp) = _pair(4, 5, seed=3, low=0.1)
    (t, tt) = ember.tensor([1., -1., 1., -1., 1.]), torch.tensor([1., -1., 1., -1., 1.])
    cases = [
        ("binary_cross_entropy_with_logits", (x, ember.sigmoid(y)), (tx, torch.sigmoid(ty))),
        ("kl_div", (x, p), (tx, tp)),
        ("cosine_embedding_loss", (x, y, t[:4]), (tx, ty, tt[:4])),
        ("margin_ranking_loss", (x, y, t), (tx, ty, tt)),
        ("triplet_margin_loss", (x, y, p), (tx, ty, tp)),
        ("triplet_margin_loss", (x, y, p, -0.5), (tx, ty, tp, -0.5)),
        ("hinge_embedding_loss", (x, t.int()), (tx, tt.int())),
    ]
    for name, ours, theirs in cases:
        want = getattr(torch, name)(*theirs)
        got = getattr(ember, name)(*ours)
        assert tuple(got.shape) == tuple(want.shape), name
        _close(got, want)
    with ember.autocast("cpu", dtype=ember.bfloat16):
        got = ember.margin_ranking_loss(x.bfloat16(), y.bfloat16(), t.bfloat16())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = torch.margin_ranking_loss(tx.bfloat16(), ty.bfloat16(), tt.bfloat16())
    assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1] == "float32"
    _close(got, want)


def test_ctc_loss_and_rms_norm_match_torch():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((6, 2, 4)).astype(np.float32)
    lp = ember.log_softmax(ember.tensor(logits), 2)
    tlp = torch.log_softmax(torch.tensor(logits), 2)
    targets = np.array([[1, 2], [3, 1]])
    args = ([6, 6], [2, 2], 0, 1, False)
    _close(ember.ctc_loss(lp, ember.tensor(targets), *args),
           torch.ctc_loss(tlp, torch.tensor(targets), *args), 1e-4)
    per_sample = ember.ctc_loss(lp, ember.tensor(targets), [6, 6], [2, 2])
    _close(per_sample, torch.ctc_loss(tlp, torch.tensor(targets), [6, 6], [2, 2]), 1e-4)
    (x, tx), (w, tw) = _pair(3, 4), _pair(4, seed=5)
    _close(ember.rms_norm(x, [4], w, 1e-6), torch.rms_norm(tx, [4], tw, 1e-6))


def test_conv_tbc_and_channel_shuffle_match_torch():
    (x, tx), (w, tw), (b, tb) = _pair(7, 2, 3), _pair(3, 3, 5, seed=1), _pair(5, seed=2)
    _close(ember.conv_tbc(x, w, b, 1), torch.conv_tbc(tx, tw, tb, 1), 1e-4)
    (y, ty) = _pair(2, 6, 3, 3)
    _close(ember.native_channel_shuffle(y, 3), torch.native_channel_shuffle(ty, 3))


def test_copy_variants_own_their_memory():
    (x, tx) = _pair(4, 6)
    for name, args in (("slice_copy", (1, 1, 5, 2)), ("select_copy", (0, 2)),
                       ("detach_copy", ())):
        ours, theirs = getattr(ember, name)(x, *args), getattr(torch, name)(tx, *args)
        _close(ours, theirs)
        assert ours.is_contiguous()
        ours.fill_(7.0)
    _close(x, tx)          # the source is untouched
    c = ember.view_as_complex_copy(x.reshape(4, 3, 2))
    _close(ember.view_as_real_copy(c), torch.view_as_real_copy(
        torch.view_as_complex_copy(tx.reshape(4, 3, 2))))


def test_deprecated_norms_warn_and_match_torch():
    (x, tx) = _pair(3, 4)
    with pytest.warns(UserWarning, match="deprecated"):
        fro = ember.frobenius_norm(x, [0, 1])
    with pytest.warns(UserWarning, match="deprecated"):
        nuc = ember.nuclear_norm(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _close(fro, torch.frobenius_norm(tx, [0, 1]))
        _close(nuc, torch.nuclear_norm(tx), 1e-4)
    with pytest.raises(RuntimeError, match="linalg.matrix_rank"):
        ember.matrix_rank(x)
    with pytest.raises(RuntimeError, match="linalg.matrix_rank"):
        torch.matrix_rank(tx)
    _close(ember.linalg.matmul(x, x.T), torch.linalg.matmul(tx, tx.T))


def test_in_place_dropouts():
    x = ember.ones(4, 8, 3)
    assert ember.alpha_dropout_(x, 0.5, False) is x
    out = ember.feature_dropout_(x, 0.5, True)
    assert out is x
    kept = x.numpy()[:, :, 0]
    assert set(np.unique(kept)) <= {0.0, 2.0}
    assert (x.numpy() == x.numpy()[:, :, :1]).all()   # whole channels are kept or dropped


@pytest.mark.parametrize("name,args", [
    ("sym_int", (3.7,)), ("sym_int", (-3.7,)), ("sym_int", (5,)), ("sym_float", (2,)),
    ("sym_max", (2, 3.0)), ("sym_max", (4, 3)), ("sym_min", (2, 1.5)), ("sym_min", (1, 3)),
    ("sym_not", (0,)), ("sym_ite", (True, 1, 2)), ("sym_ite", (False, 1, 2)),
    ("sym_sqrt", (4,)), ("sym_sum", ([1, 2, 3],))])
def test_sym_functions_match_torch(name, args):
    ours, theirs = getattr(ember, name)(*args), getattr(torch, name)(*args)
    assert ours == theirs and type(ours) is type(theirs)


def test_sym_constrain_range_and_types():
    ember.sym_constrain_range(5, min=0, max=10)
    ember.sym_constrain_range_for_size(3)
    for call in (lambda m: m.sym_constrain_range(5, min=6, max=10),
                 lambda m: m.sym_constrain_range_for_size(-1)):
        with pytest.raises(RuntimeError) as ours:
            call(ember)
        with pytest.raises(RuntimeError) as theirs:
            call(torch)
        assert str(ours.value) == str(theirs.value)
    for value in (3, 2.5, True):
        for kind in ("SymInt", "SymFloat", "SymBool"):
            assert isinstance(value, getattr(ember, kind)) == isinstance(value, getattr(torch, kind))


def test_global_switches():
    assert ember.is_warn_always_enabled() is False
    ember.set_warn_always(True)
    try:
        assert ember.is_warn_always_enabled() is True
    finally:
        ember.set_warn_always(False)
    assert isinstance(ember.set_flush_denormal(False), bool)
    assert ember.get_device_module("cpu") is ember.cpu
    assert ember.get_device_module(ember.device("cuda:0")) is ember.cuda
    assert ember.get_device(ember.ones(2)) == torch.get_device(torch.ones(2)) == -1


def test_older_autocast_setters():
    assert ember.is_autocast_cpu_enabled() is torch.is_autocast_cpu_enabled() is False
    assert ember.get_autocast_cpu_dtype() == ember.bfloat16
    ember.set_autocast_cpu_dtype(ember.float16)
    try:
        assert ember.get_autocast_cpu_dtype() == ember.float16
        assert ember.get_autocast_dtype("cpu") == ember.float16
    finally:
        ember.set_autocast_cpu_dtype(ember.bfloat16)
    assert ember.get_autocast_gpu_dtype() == ember.float16
    ember.set_autocast_cpu_enabled(True)
    try:
        assert ember.is_autocast_enabled("cpu")
    finally:
        ember.set_autocast_cpu_enabled(False)


def test_to_dlpack_round_trip_shares_memory():
    x = ember.arange(6.0).reshape(2, 3)
    y = ember.from_dlpack(ember.to_dlpack(x))
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    t = torch.from_dlpack(ember.to_dlpack(x))
    assert t.data_ptr() == x.data_ptr()
    np.testing.assert_array_equal(t.numpy(), x.numpy())


@pytest.mark.parametrize("kwargs", [{}, {"use_gelu": True}, {"beta": 0.5, "alpha": 2.0}])
def test_addmm_activation_matches_torch(kwargs):
    (a, ta), (m1, tm1), (m2, tm2) = _pair(3, 5, seed=1), _pair(3, 4, seed=2), _pair(4, 5)
    m1.requires_grad_(True)
    tm1.requires_grad_(True)
    ours = ember._addmm_activation(a, m1, m2, **kwargs)
    theirs = torch._addmm_activation(ta, tm1, tm2, **kwargs)
    _close(ours.detach(), theirs.detach())
    # torch has no derivative for it; ember's is that of addmm and the activation
    ours.sum().backward()
    act = (lambda t: torch.nn.functional.gelu(t)) if kwargs.get("use_gelu") else torch.relu
    act(torch.addmm(ta, tm1, tm2, beta=kwargs.get("beta", 1),
                    alpha=kwargs.get("alpha", 1))).sum().backward()
    _close(m1.grad, tm1.grad)
    _close(a._addmm_activation(m1.detach(), m2, **kwargs), theirs.detach())
    with ember.autocast("cpu", dtype=ember.bfloat16):
        assert ember._addmm_activation(a, m1, m2, **kwargs).dtype == ember.bfloat16


@pytest.mark.parametrize("extra", ["none", "no_weights", "per_head", "key_padding",
                                   "attn_mask", "merged_mask"])
def test_native_multi_head_attention_matches_torch(extra):
    rng = np.random.default_rng(0)
    batch, length, embed, heads = 2, 4, 8, 2

    def arr(*shape):
        return rng.standard_normal(shape).astype(np.float32)
    inputs = [arr(batch, length, embed) for _ in range(3)]
    params = [arr(3 * embed, embed), arr(3 * embed), arr(embed, embed), arr(embed)]
    masks = {"key_padding": (np.eye(batch, length, 1, dtype=bool), 1),
             "attn_mask": (np.eye(length, k=1, dtype=bool), 0),
             "merged_mask": (np.eye(length, dtype=bool)[::-1].copy()[None, None]
                             .repeat(batch, 0).repeat(heads, 1), 2)}
    kwargs = {"no_weights": {"need_weights": False},
              "per_head": {"average_attn_weights": False}}.get(extra, {})

    def run(lib, fn):
        extra_kwargs = dict(kwargs)
        if extra in masks:
            extra_kwargs.update(mask=lib.tensor(masks[extra][0]), mask_type=masks[extra][1])
        return fn(*[lib.tensor(x) for x in inputs], embed, heads,
                  *[lib.tensor(p) for p in params], **extra_kwargs)
    ours = run(ember, ember._native_multi_head_attention)
    theirs = run(torch, torch._native_multi_head_attention)
    _close(ours[0], theirs[0], 1e-5)
    assert (ours[1] is None) == (theirs[1] is None)
    if theirs[1] is not None:
        _close(ours[1], theirs[1], 1e-5)
    with ember.autocast("cpu", dtype=ember.bfloat16):
        assert run(ember, ember._native_multi_head_attention)[0].dtype == ember.bfloat16
