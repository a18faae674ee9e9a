"""ember.nn.functional's activations, norms, distances, dropouts, embedding_bag and losses
(issue 13) against torch: float64 values and gradients, in-place variants, module
wrappers, PyTorch's errors, dropout statistics, and ctc_loss's gradient."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import ember
import ember.nn.functional as EF


def _pair(args, grad_args=None):
    """numpy args -> (ember args, torch args); float arrays require grad (only those at
    `grad_args` when given)."""
    def conv(i, v, lib):
        if isinstance(v, np.ndarray):
            t = ember.tensor(v) if lib == "ember" else torch.from_numpy(v.copy())
            if v.dtype.kind == "f" and (grad_args is None or i in grad_args):
                t.requires_grad_(True)
            return t
        return v
    return ([conv(i, a, "ember") for i, a in enumerate(args)],
            [conv(i, a, "torch") for i, a in enumerate(args)])


def check(name, args, kwargs=None, grad=True, rtol=1e-7, atol=1e-9, seed=0, grad_args=None):
    """Same call through both libraries: values, then gradients of every float input."""
    kwargs = kwargs or {}
    e_args, t_args = _pair(args, grad_args)
    e_out = getattr(EF, name)(*e_args, **kwargs)
    t_out = getattr(TF, name)(*t_args, **kwargs)
    np.testing.assert_allclose(e_out.detach().numpy(), t_out.detach().numpy(), rtol=rtol,
                               atol=atol, err_msg=f"{name} value")
    assert str(e_out.dtype).split(".")[-1] == str(t_out.dtype).split(".")[-1]
    if not grad:
        return
    cot = np.random.default_rng(seed).standard_normal(tuple(t_out.shape))
    (e_out * ember.tensor(cot.astype(np.float64))).sum().backward()
    (t_out * torch.from_numpy(cot)).sum().backward()
    for i, (e, t) in enumerate(zip(e_args, t_args)):
        if isinstance(t, torch.Tensor) and t.requires_grad and t.grad is not None:
            np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), rtol=rtol, atol=atol,
                                       err_msg=f"{name} grad of arg {i}")


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# --- activations -------------------------------------------------------------------------
ACTIVATIONS = [
    ("hardswish", {}), ("hardsigmoid", {}), ("selu", {}), ("celu", {"alpha": 0.7}),
    ("mish", {}), ("logsigmoid", {}), ("softsign", {}), ("tanhshrink", {}),
    ("softmin", {"dim": 1}), ("glu", {"dim": 1}), ("threshold", {"threshold": 0.2, "value": -3.0}),
    ("softshrink", {"lambd": 0.3}), ("hardshrink", {"lambd": 0.3}),
    ("rrelu", {"lower": 0.1, "upper": 0.4}), ("relu6", {}), ("hardtanh", {"min_val": -0.5}),
    ("elu", {"alpha": 0.5}), ("leaky_relu", {"negative_slope": 0.2}), ("silu", {}),
    ("gelu", {"approximate": "tanh"}),
]


@pytest.mark.parametrize("name,kwargs", ACTIVATIONS, ids=[a for a, _ in ACTIVATIONS])
def test_activation_matches_torch(name, kwargs):
    check(name, [randn(3, 4) * 3], kwargs)


def test_prelu_per_channel_and_shared_weight():
    check("prelu", [randn(2, 3, 4), np.array([0.1, -0.2, 0.3])])
    check("prelu", [randn(5), np.array([0.25])])


@pytest.mark.parametrize("name,kwargs", [("threshold", {"threshold": 1, "value": 7}),
                                         ("relu6", {}), ("hardtanh", {}), ("softsign", {}),
                                         ("tanhshrink", {})])
def test_activation_on_integers(name, kwargs):
    check(name, [np.arange(-4, 8)], kwargs, grad=False)


@pytest.mark.parametrize("name,kwargs", [
    ("relu_", {}), ("elu_", {"alpha": 0.5}), ("leaky_relu_", {}), ("hardtanh_", {}),
    ("threshold_", {"threshold": 0.1, "value": 2.0}), ("selu_", {}), ("celu_", {}),
    ("rrelu_", {})])
def test_inplace_variant_writes_input_and_keeps_gradients(name, kwargs):
    a = randn(3, 4)
    xe, xt = ember.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    ye, yt = xe * 2, xt * 2
    assert getattr(EF, name)(ye, **kwargs) is ye
    getattr(TF, name)(yt, **kwargs)
    (ye * ye).sum().backward()
    (yt * yt).sum().backward()
    np.testing.assert_allclose(ye.detach().numpy(), yt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(xe.grad.numpy(), xt.grad.numpy(), rtol=1e-12)


def test_inplace_true_on_a_leaf_that_requires_grad_is_refused():
    x = ember.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        EF.hardswish(x, inplace=True)


def test_rrelu_training_draws_slopes_in_range():
    x = -ember.ones(2000)
    slopes = -EF.rrelu(x, 0.1, 0.3, training=True).numpy()
    assert slopes.min() >= 0.1 and slopes.max() < 0.3 and abs(slopes.mean() - 0.2) < 0.01
    assert np.allclose(EF.rrelu(x, 0.1, 0.3).numpy(), -0.2)


@pytest.mark.parametrize("call,error", [
    (lambda: EF.glu(ember.randn(3, 5)), "Halving dimension must be even"),
    (lambda: EF.softshrink(ember.randn(3), -0.5), "lambda must be greater or equal to 0"),
    (lambda: EF.prelu(ember.randn(2, 3), ember.ones(4)), "Mismatch of parameter numbers"),
    (lambda: EF.celu(ember.randn(3), alpha=0.0), "alpha cannot be 0"),
])
def test_activation_errors_are_runtime_errors(call, error):
    with pytest.raises(RuntimeError, match=error):
        call()


def test_activation_modules_match_functionals_and_reprs():
    x = ember.tensor(randn(2, 4))
    pairs = [(ember.nn.Hardswish(), EF.hardswish), (ember.nn.Softmin(1), EF.softmin),
             (ember.nn.Hardshrink(0.2), lambda t: EF.hardshrink(t, 0.2)),
             (ember.nn.GLU(), EF.glu), (ember.nn.Threshold(0.1, 5.0),
                                        lambda t: EF.threshold(t, 0.1, 5.0))]
    for module, fn in pairs:
        np.testing.assert_array_equal(module(x).detach().numpy(), fn(x).detach().numpy())
    for name, args in [("PReLU", (3,)), ("RReLU", (0.1, 0.3)), ("CELU", (0.5,)),
                       ("Softshrink", ()), ("Hardtanh", (-2.0, 2.0)), ("Softmax2d", ())]:
        assert repr(getattr(ember.nn, name)(*args)) == repr(getattr(torch.nn, name)(*args))
    prelu = ember.nn.PReLU(3)
    assert [n for n, _ in prelu.named_parameters()] == ["weight"]
    assert np.allclose(prelu.weight.detach().numpy(), 0.25)


# --- normalization and distances --------------------------------------------------------
def test_rms_norm_and_local_response_norm():
    check("rms_norm", [randn(2, 3, 4), [3, 4], randn(3, 4, seed=1)])
    check("rms_norm", [randn(2, 5), [5]], {"eps": 0.1})
    check("local_response_norm", [randn(2, 6, 3, 2), 3], {"alpha": 0.1, "beta": 0.6, "k": 1.5})


def test_instance_norm_values_gradients_and_running_stats():
    x, w, b = randn(3, 2, 5), randn(2, seed=1), randn(2, seed=2)
    check("instance_norm", [x], {})
    check("instance_norm", [x, None, None, w, b], {"eps": 0.1})
    rm_e, rv_e = ember.zeros(2, dtype=ember.float64), ember.ones(2, dtype=ember.float64)
    rm_t, rv_t = torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)
    EF.instance_norm(ember.tensor(x), rm_e, rv_e, momentum=0.3)
    TF.instance_norm(torch.tensor(x), rm_t, rv_t, momentum=0.3)
    np.testing.assert_allclose(rm_e.numpy(), rm_t.numpy(), rtol=1e-12)
    np.testing.assert_allclose(rv_e.numpy(), rv_t.numpy(), rtol=1e-12)
    e_out = EF.instance_norm(ember.tensor(x), rm_e, rv_e, use_input_stats=False)
    t_out = TF.instance_norm(torch.tensor(x), rm_t, rv_t, use_input_stats=False)
    np.testing.assert_allclose(e_out.numpy(), t_out.numpy(), rtol=1e-12)


def test_instance_norm_modules_match_torch(rng):
    from nn_helpers import check_layer
    for kw in ({}, {"affine": True, "track_running_stats": True}):
        for train in (True, False):
            check_layer(ember.nn.InstanceNorm2d(3, **kw), torch.nn.InstanceNorm2d(3, **kw),
                        [rng.standard_normal((2, 3, 4, 5)).astype(np.float32)], rng,
                        train=train)
    check_layer(ember.nn.InstanceNorm1d(3), torch.nn.InstanceNorm1d(3),
                [rng.standard_normal((3, 6)).astype(np.float32)], rng)   # unbatched
    check_layer(ember.nn.RMSNorm([4]), torch.nn.RMSNorm([4]),
                [rng.standard_normal((2, 4)).astype(np.float32)], rng)
    assert repr(ember.nn.InstanceNorm3d(4)) == repr(torch.nn.InstanceNorm3d(4))
    assert repr(ember.nn.RMSNorm(4, eps=0.1)) == repr(torch.nn.RMSNorm(4, eps=0.1))


@pytest.mark.parametrize("p", [2.0, 1.0, 3.0, math.inf])
def test_distances(p):
    check("pairwise_distance", [randn(4, 3), randn(4, 3, seed=1)], {"p": p})
    check("pdist", [randn(5, 3)], {"p": p})
    e = ember.cdist(ember.tensor(randn(2, 4, 3)), ember.tensor(randn(5, 3, seed=1)), p=p)
    t = torch.cdist(torch.tensor(randn(2, 4, 3)), torch.tensor(randn(5, 3, seed=1)), p=p)
    np.testing.assert_allclose(e.numpy(), t.numpy(), rtol=1e-10)


def test_cdist_gradient_and_cosine_similarity():
    xe, xt = ember.tensor(randn(4, 3), requires_grad=True), torch.tensor(randn(4, 3),
                                                                         requires_grad=True)
    ember.cdist(xe, ember.tensor(randn(2, 3, seed=1))).sum().backward()
    torch.cdist(xt, torch.tensor(randn(2, 3, seed=1))).sum().backward()
    np.testing.assert_allclose(xe.grad.numpy(), xt.grad.numpy(), rtol=1e-10)
    check("cosine_similarity", [randn(3, 4), randn(4, seed=1)], {"dim": -1})
    tiny = randn(2, 3) * 1e-6
    check("cosine_similarity", [tiny, randn(2, 3, seed=1)], {"eps": 1e-3})


def test_distance_modules_and_errors():
    a, b = ember.tensor(randn(3, 4)), ember.tensor(randn(3, 4, seed=1))
    np.testing.assert_allclose(ember.nn.PairwiseDistance(p=1.0)(a, b).numpy(),
                               EF.pairwise_distance(a, b, 1.0).numpy())
    np.testing.assert_allclose(ember.nn.CosineSimilarity(0)(a, b).numpy(),
                               EF.cosine_similarity(a, b, 0).numpy())
    with pytest.raises(RuntimeError, match="pdist only supports 2D tensors"):
        EF.pdist(ember.randn(2, 3, 4))
    with pytest.raises(RuntimeError, match="same number of columns"):
        ember.cdist(ember.randn(2, 3), ember.randn(2, 4))
    with pytest.raises(ValueError, match="Expected 3D or higher"):
        EF.local_response_norm(ember.randn(2, 3), 2)


# --- dropouts -----------------------------------------------------------------------------
@pytest.mark.parametrize("name,shape", [("dropout1d", (300, 20, 3)), ("dropout2d", (300, 20, 2, 2)),
                                        ("dropout3d", (300, 20, 2, 1, 2))])
def test_channel_dropout_zeroes_whole_channels_and_scales(name, shape):
    ember.manual_seed(0)
    x = ember.ones(*shape)
    y = getattr(EF, name)(x, 0.4).numpy().reshape(shape[0], shape[1], -1)
    dropped = (y == 0).all(-1)
    kept = (y == 1 / 0.6).all(-1)
    assert (dropped | kept).all()                        # never part of a channel
    assert abs(dropped.mean() - 0.4) < 0.03
    assert getattr(EF, name)(x, 0.4, training=False) is x


def test_unbatched_channel_dropout_and_inplace():
    ember.manual_seed(1)
    x = ember.ones(50, 4)
    y = EF.dropout1d(x, 0.5).numpy()
    assert ((y == 0).all(-1) | (y == 2).all(-1)).all()
    z = ember.ones(3, 10, 4)
    assert EF.dropout2d(z, 0.5, inplace=True) is z
    assert set(np.unique(z.numpy())) <= {0.0, 2.0}
    with pytest.raises(RuntimeError, match="Expected 2D or 3D input"):
        EF.dropout1d(ember.ones(2, 3, 4, 5))
    with pytest.raises(ValueError, match="between 0 and 1"):
        EF.dropout2d(z, 1.5)


@pytest.mark.parametrize("name", ["alpha_dropout", "feature_alpha_dropout"])
def test_alpha_dropouts_keep_selu_moments(name):
    ember.manual_seed(2)
    x = ember.randn(500, 400, 1) if name == "feature_alpha_dropout" else ember.randn(200000)
    y = getattr(EF, name)(x, 0.2, training=True).numpy()
    assert abs(y.mean()) < 0.02 and abs(y.std() - 1) < 0.02
    if name == "feature_alpha_dropout":
        dropped_value = -1.7580993408473766 / math.sqrt((1.7580993408473766 ** 2 * 0.2 + 1) * 0.8)
        dropped_value += 1.7580993408473766 * 0.2 / math.sqrt(
            (1.7580993408473766 ** 2 * 0.2 + 1) * 0.8)
        frac = np.isclose(y, dropped_value).mean()
        assert abs(frac - 0.2) < 0.02
    assert getattr(EF, name)(x, 0.2) is x                 # training=False by default
    assert (getattr(EF, name)(x, 1.0, training=True).numpy() == 0).all()


def test_dropout_modules_follow_training_flag():
    x = ember.ones(4, 6, 3)
    for cls in (ember.nn.Dropout1d, ember.nn.Dropout2d, ember.nn.AlphaDropout,
                ember.nn.FeatureAlphaDropout):
        m = cls(0.5)
        assert repr(m) == repr(getattr(torch.nn, cls.__name__)(0.5))
        m.eval()
        assert m(x) is x


# --- embedding_bag --------------------------------------------------------------------------
BAG_CASES = [({"mode": "sum"}, True), ({"mode": "mean"}, False), ({"mode": "max"}, False),
             ({"mode": "sum", "padding_idx": 4}, True), ({"mode": "mean", "padding_idx": 0}, False),
             ({"mode": "max", "include_last_offset": True}, False),
             ({"mode": "sum", "include_last_offset": True}, True)]


@pytest.mark.parametrize("kwargs,weighted", BAG_CASES)
def test_embedding_bag_matches_torch(kwargs, weighted):
    w = randn(6, 3)
    idx = np.array([0, 0, 1, 5, 2, 3, 4, 4])
    offsets = np.array([0, 2, 2, 5, 8] if kwargs.get("include_last_offset") else [0, 2, 2, 5])
    extra = {"per_sample_weights": randn(8, seed=3)} if weighted else {}
    e_w, t_w = ember.tensor(w, requires_grad=True), torch.tensor(w, requires_grad=True)
    e_psw = {k: ember.tensor(v, requires_grad=True) for k, v in extra.items()}
    t_psw = {k: torch.tensor(v, requires_grad=True) for k, v in extra.items()}
    e = EF.embedding_bag(ember.tensor(idx), e_w, ember.tensor(offsets), **kwargs, **e_psw)
    t = TF.embedding_bag(torch.tensor(idx), t_w, torch.tensor(offsets), **kwargs, **t_psw)
    np.testing.assert_allclose(e.detach().numpy(), t.detach().numpy(), rtol=1e-12)
    cot = randn(*t.shape, seed=4)
    (e * ember.tensor(cot)).sum().backward()
    (t * torch.tensor(cot)).sum().backward()
    np.testing.assert_allclose(e_w.grad.numpy(), t_w.grad.numpy(), rtol=1e-12, atol=1e-14)
    for k in extra:
        np.testing.assert_allclose(e_psw[k].grad.numpy(), t_psw[k].grad.numpy(), rtol=1e-12)


def test_embedding_bag_2d_input_max_norm_and_module():
    w = randn(5, 4) * 3
    idx = np.array([[0, 1, 1], [4, 3, 2]])
    e_w, t_w = ember.tensor(w), torch.tensor(w)
    e = EF.embedding_bag(ember.tensor(idx), e_w, mode="mean", max_norm=1.0)
    t = TF.embedding_bag(torch.tensor(idx), t_w, mode="mean", max_norm=1.0)
    np.testing.assert_allclose(e.numpy(), t.numpy(), rtol=1e-6)
    np.testing.assert_allclose(e_w.numpy(), t_w.numpy(), rtol=1e-6)    # renormed in place
    bag = ember.nn.EmbeddingBag(10, 3, mode="max", padding_idx=0)
    assert repr(bag) == repr(torch.nn.EmbeddingBag(10, 3, mode="max", padding_idx=0))
    assert np.all(bag.weight.detach().numpy()[0] == 0)
    assert bag(ember.tensor([1, 2, 3]), ember.tensor([0, 1])).shape == (2, 3)
    with pytest.raises(NotImplementedError, match="per_sample_weights"):
        EF.embedding_bag(ember.tensor([1, 2]), ember.randn(4, 2), ember.tensor([0]),
                         per_sample_weights=ember.ones(2))
    with pytest.raises(RuntimeError, match="offsets\\[0\\] has to be 0"):
        EF.embedding_bag(ember.tensor([1, 2]), ember.randn(4, 2), ember.tensor([1]))


# --- losses -----------------------------------------------------------------------------------
def _sign(*shape, seed=0):
    return np.where(randn(*shape, seed=seed) > 0, 1.0, -1.0)


LOSSES = [
    ("margin_ranking_loss", lambda: [randn(5), randn(5, seed=1), _sign(5, seed=2)], {"margin": 0.3}),
    ("hinge_embedding_loss", lambda: [randn(3, 4), _sign(3, 4, seed=1)], {"margin": 0.5}),
    ("soft_margin_loss", lambda: [randn(3, 4), _sign(3, 4, seed=1)], {}),
    ("multilabel_soft_margin_loss",
     lambda: [randn(3, 4), (randn(3, 4, seed=1) > 0) * 1.0, np.abs(randn(4, seed=2))], {}),
    ("multi_margin_loss", lambda: [randn(4, 5), np.array([0, 4, 2, 2])], {"margin": 0.7}),
    ("multi_margin_loss", lambda: [randn(4, 5), np.array([0, 4, 2, 2]), None],
     {"p": 2, "weight": None}),
    ("multilabel_margin_loss", lambda: [randn(3, 4), np.array([[3, 0, -1, 1], [0, 1, 2, 3],
                                                               [1, 1, -1, -1]])], {}),
    ("triplet_margin_loss", lambda: [randn(4, 3), randn(4, 3, seed=1), randn(4, 3, seed=2)],
     {"swap": True, "p": 1.0}),
    ("cosine_embedding_loss", lambda: [randn(4, 3), randn(4, 3, seed=1), _sign(4, seed=2)],
     {"margin": 0.1}),
    ("gaussian_nll_loss", lambda: [randn(4, 3), randn(4, 3, seed=1),
                                   np.abs(randn(4, 1, seed=2)) + 0.1], {"full": True}),
    ("poisson_nll_loss", lambda: [randn(4, 3), np.abs(randn(4, 3, seed=1)) * 3],
     {"full": True}),
    ("poisson_nll_loss", lambda: [np.abs(randn(4, 3)) + 0.1, np.abs(randn(4, 3, seed=1))],
     {"log_input": False}),
]


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("name,make,kwargs", LOSSES, ids=[n for n, _, _ in LOSSES])
def test_loss_matches_torch(name, make, kwargs, reduction):
    args = [a for a in make() if a is not None]
    grad_args = (0,) if name == "soft_margin_loss" else None   # torch refuses target grads
    check(name, args, dict(kwargs, reduction=reduction), rtol=1e-10, atol=1e-12,
          grad_args=grad_args)


def test_gaussian_nll_clamps_var_for_the_value_only():
    var = np.array([[1e-9], [0.5]])
    check("gaussian_nll_loss", [randn(2, 3), randn(2, 3, seed=1), var], {"eps": 1e-3})
    with pytest.raises(ValueError, match="negative"):
        EF.gaussian_nll_loss(ember.randn(2), ember.randn(2), -ember.ones(2))


def test_triplet_margin_with_distance_loss_takes_any_distance():
    a, p, n = randn(4, 3), randn(4, 3, seed=1), randn(4, 3, seed=2)
    e = EF.triplet_margin_with_distance_loss(
        *map(ember.tensor, (a, p, n)), distance_function=lambda x, y: 1 - EF.cosine_similarity(x, y),
        swap=True)
    t = TF.triplet_margin_with_distance_loss(
        *map(torch.tensor, (a, p, n)), distance_function=lambda x, y: 1 - TF.cosine_similarity(x, y),
        swap=True)
    assert abs(e.item() - t.item()) < 1e-12


def test_loss_modules_match_functionals():
    x, y, t = ember.randn(3, 4), ember.randn(3, 4), ember.tensor(_sign(3, 4))
    nn = ember.nn
    assert nn.SoftMarginLoss(reduction="sum")(x, t).item() == \
        EF.soft_margin_loss(x, t, reduction="sum").item()
    assert nn.MarginRankingLoss(0.2)(x, y, t).item() == \
        EF.margin_ranking_loss(x, y, t, margin=0.2).item()
    assert nn.TripletMarginLoss(margin=0.5)(x, y, t).item() == \
        EF.triplet_margin_loss(x, y, t, margin=0.5).item()
    assert nn.GaussianNLLLoss(full=True)(x, y, y.abs()).item() == \
        EF.gaussian_nll_loss(x, y, y.abs(), full=True).item()
    for name in ("HingeEmbeddingLoss", "CosineEmbeddingLoss", "MultiMarginLoss", "CTCLoss",
                 "PoissonNLLLoss", "MultiLabelMarginLoss", "TripletMarginWithDistanceLoss"):
        assert repr(getattr(nn, name)()) == repr(getattr(torch.nn, name)())
    with pytest.raises(ValueError, match="is not a valid value for reduction"):
        EF.soft_margin_loss(x, t, reduction="avg")


# --- ctc_loss -------------------------------------------------------------------------------
def _ctc_inputs(seed=0, frames=12, batch=3, classes=5, width=4):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((frames, batch, classes))
    targets = rng.integers(1, classes, size=(batch, width))
    return logits, targets, [12, 9, 7], [4, 2, 3]


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_ctc_loss_values_and_gradients_match_torch(reduction):
    logits, targets, il, tl = _ctc_inputs()
    lp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    check("ctc_loss", [lp, targets, il, tl], {"reduction": reduction}, rtol=1e-9, atol=1e-11)
    check("ctc_loss", [lp, targets, il, tl], {"reduction": reduction, "blank": 4},
          rtol=1e-9, atol=1e-11)


def test_ctc_loss_target_layouts_and_zero_infinity():
    logits, targets, il, tl = _ctc_inputs(seed=1)
    lp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    concatenated = np.concatenate([targets[i, :n] for i, n in enumerate(tl)])
    check("ctc_loss", [lp, concatenated, il, tl], {"reduction": "sum"}, rtol=1e-9)
    check("ctc_loss", [lp[:, 0], targets[0], [12], [4]], {"reduction": "none"}, rtol=1e-9)
    impossible = [12, 2, 7]                     # 2 frames cannot emit 2 labels + repeats
    repeated = targets.copy()
    repeated[1, :2] = 3
    check("ctc_loss", [lp, repeated, impossible, tl], {"zero_infinity": True}, rtol=1e-9)
    e = EF.ctc_loss(ember.tensor(lp), ember.tensor(repeated), ember.tensor(impossible),
                    ember.tensor(tl), reduction="none")
    assert np.isinf(e.numpy()[1])


def test_ctc_loss_gradient_through_log_softmax_is_the_true_gradient():
    """PyTorch's ctc gradient is w.r.t. logits; through log_softmax it is exact."""
    logits, targets, il, tl = _ctc_inputs(seed=2, frames=6, batch=2, width=2)
    il, tl = [6, 5], [2, 1]
    x = ember.tensor(logits, requires_grad=True)
    loss = EF.ctc_loss(EF.log_softmax(x, 2), ember.tensor(targets), il, tl, reduction="sum")
    (grad,) = ember.autograd.grad(loss, [x])

    def value(arr):
        with ember.no_grad():
            return EF.ctc_loss(EF.log_softmax(ember.tensor(arr), 2), ember.tensor(targets),
                               il, tl, reduction="sum").item()
    for idx in [(0, 0, 1), (3, 1, 2), (5, 0, 0)]:
        up, down = logits.copy(), logits.copy()
        up[idx] += 1e-6
        down[idx] -= 1e-6
        numeric = (value(up) - value(down)) / 2e-6
        assert abs(grad.numpy()[idx] - numeric) < 1e-6


# --- compiled ---------------------------------------------------------------------------------
def test_composites_compile_equal_to_eager():
    def model(x, y, t):
        h = EF.hardswish(x) + EF.softshrink(x) + EF.glu(ember.cat([x, y], 1), 1)
        h = EF.rms_norm(h, [4]) + EF.instance_norm(h.unsqueeze(0)).squeeze(0)
        return (EF.cosine_similarity(h, y).sum() + EF.pdist(h).sum() + ember.cdist(h, y).sum()
                + EF.triplet_margin_loss(h, y, t) + EF.multi_margin_loss(h, ember.tensor([0, 3, 1]))
                + EF.multilabel_margin_loss(h, ember.tensor([[0, 1, -1, 2], [3, -1, 0, 0],
                                                             [2, 1, 0, 3]])))
    x, y, t = ember.randn(3, 4), ember.randn(3, 4), ember.randn(3, 4)
    np.testing.assert_allclose(ember.compile(model)(x, y, t).item(), model(x, y, t).item(),
                               rtol=1e-4)
