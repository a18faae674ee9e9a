"""ember.nn.utils (clip_grad_norm_/clip_grad_value_, parameters_to_vector and back,
conv-bn fusion) and nn.SyncBatchNorm against torch."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from ember.nn.utils import (clip_grad_norm_, clip_grad_value_, fuse_conv_bn_eval,
                            parameters_to_vector, vector_to_parameters)


def _parameter_pairs(rng, shapes):
    pairs = []
    for shape in shapes:
        value, grad = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
        t = torch.nn.Parameter(torch.from_numpy(value.copy()))
        t.grad = torch.from_numpy(grad.copy())
        e = ember.nn.Parameter(ember.tensor(value))
        e.grad = ember.tensor(grad)
        pairs.append((t, e))
    return pairs


@pytest.mark.parametrize("max_norm,norm_type", [(0.5, 2.0), (100.0, 2.0), (1.0, 1.0),
                                                (0.3, float("inf"))])
def test_clip_grad_norm_matches_torch(rng, max_norm, norm_type):
    pairs = _parameter_pairs(rng, [(3, 4), (5,)])
    expected = torch.nn.utils.clip_grad_norm_([t for t, _ in pairs], max_norm, norm_type)
    total = clip_grad_norm_([e for _, e in pairs], max_norm, norm_type)
    np.testing.assert_allclose(total.numpy(), expected.numpy(), rtol=1e-6)
    for t, e in pairs:
        np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_clip_grad_norm_nonfinite_raises_like_torch(rng):
    (_, e), = _parameter_pairs(rng, [(2,)])
    e.grad = ember.tensor([float("nan"), 1.0])
    with pytest.raises(RuntimeError, match="is non-finite, so it cannot be clipped"):
        clip_grad_norm_(e, 1.0, error_if_nonfinite=True)


def test_clip_grad_value_matches_torch(rng):
    pairs = _parameter_pairs(rng, [(4, 3)])
    torch.nn.utils.clip_grad_value_([t for t, _ in pairs], 0.4)
    clip_grad_value_([e for _, e in pairs], 0.4)
    np.testing.assert_array_equal(pairs[0][1].grad.numpy(), pairs[0][0].grad.numpy())


def test_parameters_to_vector_round_trip(rng):
    model = ember.nn.Linear(3, 2)
    vector = parameters_to_vector(model.parameters())
    assert vector.shape == (8,)
    replacement = ember.tensor(rng.standard_normal(8).astype(np.float32))
    vector_to_parameters(replacement, model.parameters())
    np.testing.assert_array_equal(parameters_to_vector(model.parameters()).detach().numpy(),
                                  replacement.numpy())


@pytest.mark.parametrize("transpose", [False, True])
def test_fuse_conv_bn_eval_matches_conv_then_bn(rng, transpose):
    conv = (ember.nn.ConvTranspose2d(3, 4, 3) if transpose else ember.nn.Conv2d(3, 4, 3))
    bn = ember.nn.BatchNorm2d(4)
    bn.running_mean = ember.tensor(rng.standard_normal(4).astype(np.float32))
    bn.running_var = ember.tensor(rng.uniform(0.5, 2, 4).astype(np.float32))
    bn.weight.data = ember.tensor(rng.standard_normal(4).astype(np.float32))
    conv.eval(), bn.eval()
    fused = fuse_conv_bn_eval(conv, bn, transpose=transpose)
    x = ember.tensor(rng.standard_normal((2, 3, 6, 6)).astype(np.float32))
    with ember.no_grad():
        np.testing.assert_allclose(fused(x).numpy(), bn(conv(x)).numpy(), rtol=1e-5,
                                   atol=1e-5)
    with pytest.raises(AssertionError, match="Fusion only for eval"):
        fuse_conv_bn_eval(conv.train(), bn)


def test_sync_batchnorm_single_process_is_batchnorm(rng):
    x = rng.standard_normal((4, 3, 5, 5)).astype(np.float32)
    for training in (True, False):
        reference = torch.nn.SyncBatchNorm(3).train(training)
        sync = ember.nn.SyncBatchNorm(3).train(training)
        if training:
            expected = torch.nn.functional.batch_norm(
                torch.from_numpy(x), None, None, training=True)
        else:
            expected = reference(torch.from_numpy(x))
        np.testing.assert_allclose(sync(ember.tensor(x)).detach().numpy(),
                                   expected.detach().numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="expected at least 2D input"):
        ember.nn.SyncBatchNorm(3)(ember.ones(3))


def test_convert_sync_batchnorm_keeps_state():
    model = ember.nn.Sequential(ember.nn.Conv2d(3, 3, 1), ember.nn.BatchNorm2d(3))
    converted = ember.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert type(converted[1]) is ember.nn.SyncBatchNorm
    assert converted[1].weight is model[1].weight
    assert set(converted.state_dict()) == set(model.state_dict())
