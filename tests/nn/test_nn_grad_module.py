"""ember.nn.grad's convolution gradients against torch.nn.grad."""
import numpy as np
import pytest
import torch

import ember
from ember.nn import grad as egrad


def _pair(*shape, seed=0):
    a = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return ember.tensor(a), torch.tensor(a)


@pytest.mark.parametrize("dims,kwargs", [
    (1, dict(stride=2, padding=1)), (2, dict(stride=1, padding=1, dilation=2)),
    (2, dict(stride=2, padding=0, groups=2)), (3, dict(stride=1, padding=1))])
def test_conv_input_and_weight_grads_match_torch(dims, kwargs):
    spatial = (7,) * dims
    (x, tx) = _pair(2, 4, *spatial)
    (w, tw) = _pair(6, 4 // kwargs.get("groups", 1), *((3,) * dims), seed=1)
    conv = getattr(torch.nn.functional, f"conv{dims}d")
    out_shape = conv(tx, tw, **kwargs).shape
    (g, tg) = _pair(*out_shape, seed=2)
    ours = getattr(egrad, f"conv{dims}d_input")(x.shape, w, g, **kwargs)
    theirs = getattr(torch.nn.grad, f"conv{dims}d_input")(tx.shape, tw, tg, **kwargs)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-4)
    ours = getattr(egrad, f"conv{dims}d_weight")(x, w.shape, g, **kwargs)
    theirs = getattr(torch.nn.grad, f"conv{dims}d_weight")(tx, tw.shape, tg, **kwargs)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-4)


def test_deterministic_debug_mode_matches_torch():
    for mode in ("warn", 2, "default", 1, 0):
        for m in (ember, torch):
            m.set_deterministic_debug_mode(mode)
        assert ember.get_deterministic_debug_mode() == torch.get_deterministic_debug_mode()
        assert ember.are_deterministic_algorithms_enabled() == \
            torch.are_deterministic_algorithms_enabled()
    for m in (ember, torch):
        with pytest.raises(RuntimeError, match="invalid value of debug_mode"):
            m.set_deterministic_debug_mode("x")


def test_common_types_names_match_torch():
    import torch.nn.common_types as tc

    import ember.nn.common_types as ec
    from ember.nn.common_types import _size_2_t  # noqa: F401
    names = [n for n in dir(tc) if n.startswith("_") and n.endswith("_t")]
    assert names and all(hasattr(ec, n) for n in names)
