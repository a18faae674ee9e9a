"""torch.func.linearize, functionalize and replace_all_batch_norm_modules_ against torch."""
import numpy as np
import pytest
import torch

import ember


def _pair(*shape, seed=0):
    a = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return ember.tensor(a), torch.tensor(a)


def test_linearize_matches_torch():
    (x, tx), (t, tt) = _pair(5), _pair(5, seed=1)
    out, jvp_fn = ember.func.linearize(lambda a: a.sin() * a, x)
    tout, tjvp_fn = torch.func.linearize(lambda a: a.sin() * a, tx)
    np.testing.assert_allclose(out.numpy(), tout.numpy(), rtol=1e-6)
    np.testing.assert_allclose(jvp_fn(t).numpy(), tjvp_fn(tt).numpy(), rtol=1e-5, atol=1e-6)


def test_functionalize_keeps_results_and_input_mutations():
    def f(a):
        a.add_(1)
        return a * 2
    (x, tx) = _pair(3)
    out, tout = ember.func.functionalize(f)(x), torch.func.functionalize(f)(tx)
    np.testing.assert_allclose(out.numpy(), tout.numpy())
    np.testing.assert_allclose(x.numpy(), tx.numpy())
    for m in (ember, torch):
        with pytest.raises(RuntimeError, match="invalid argument"):
            m.func.functionalize(f, remove="views")


def test_replace_all_batch_norm_modules():
    model = ember.nn.Sequential(ember.nn.Linear(3, 3), ember.nn.BatchNorm1d(3))
    assert ember.func.replace_all_batch_norm_modules_(model) is model
    bn = model[1]
    assert bn.running_mean is None and bn.running_var is None and not bn.track_running_stats
    (x, tx) = _pair(4, 3)
    tbn = torch.func.replace_all_batch_norm_modules_(torch.nn.BatchNorm1d(3))
    bn.eval(), tbn.eval()     # without running stats, eval mode normalizes with batch statistics
    np.testing.assert_allclose(bn(x).detach().numpy(), tbn(tx).detach().numpy(), rtol=1e-5,
                               atol=1e-6)
