"""Normalizations compiled under CPU autocast: a bfloat16 activation with float32 weights.

PyTorch keeps layer_norm / group_norm / batch_norm at the input's dtype there (they are on
neither autocast list; the kernels accumulate in float32). ember.compile decomposes them;
the decomposition once promoted to float32 half way through and the pass pipeline stopped
with "the decomposition of layer_norm gives ... float32, not ... bfloat16".
"""
import numpy as np
import pytest
import torch

import ember


def _pair(build):
    torch.manual_seed(0)
    ref = build(torch.nn)
    mine = build(ember.nn)
    mine.load_state_dict({k: ember.tensor(v.detach().numpy()) for k, v in ref.state_dict().items()})
    return ref, mine


NORMS = {
    "layer_norm": lambda nn: nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.Linear(16, 4)),
    "group_norm": lambda nn: nn.Sequential(nn.Conv2d(3, 8, 3), nn.GroupNorm(2, 8), nn.ReLU()),
    "batch_norm": lambda nn: nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU()),
}


@pytest.mark.parametrize("name", sorted(NORMS))
@pytest.mark.parametrize("training", [False, True])
def test_compiled_norm_under_bf16_autocast_matches_eager_and_torch(name, training):
    ref, mine = _pair(NORMS[name])
    ref.train(training)
    mine.train(training)
    shape = (4, 8) if name == "layer_norm" else (2, 3, 6, 6)
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = ref(torch.from_numpy(x))
    compiled = ember.compile(mine)
    with ember.autocast("cpu", dtype=ember.bfloat16):
        eager = mine(ember.tensor(x))
        got = compiled(ember.tensor(x))
    assert str(got.dtype) == str(eager.dtype) == "ember.bfloat16" == str(expected.dtype).replace("torch", "ember")
    want = expected.float().detach().numpy()
    np.testing.assert_allclose(got.float().detach().numpy(), want, rtol=0.05, atol=0.05)
    np.testing.assert_allclose(eager.float().detach().numpy(), want, rtol=0.05, atol=0.05)
