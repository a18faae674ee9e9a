"""Functions ember composes from several ops where PyTorch's CPU autocast sees one
float32-listed op (found running PyTorch's autocast lists): reflection/replication
padding, smooth_l1_loss, huber_loss, binary_cross_entropy_with_logits and kl_div run in
float32 under ember.autocast("cpu") exactly where torch.autocast("cpu") does."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember

CASES = {
    "pad reflect 1d": lambda L, x, y: L.nn.functional.pad(x[0], (2, 2), mode="reflect"),
    "pad reflect 2d": lambda L, x, y: L.nn.functional.pad(x, (2, 2, 1, 1), mode="reflect"),
    "pad reflect 3d": lambda L, x, y: L.nn.functional.pad(x[None], (1, 1, 1, 1, 1, 1),
                                                          mode="reflect"),
    "pad replicate 1d": lambda L, x, y: L.nn.functional.pad(x[0], (2, 2), mode="replicate"),
    "pad replicate 3d": lambda L, x, y: L.nn.functional.pad(x[None], (1, 1, 1, 1, 1, 1),
                                                            mode="replicate"),
    "pad circular": lambda L, x, y: L.nn.functional.pad(x, (1, 1, 1, 1), mode="circular"),
    "smooth_l1_loss": lambda L, x, y: L.nn.functional.smooth_l1_loss(x, y),
    "huber_loss": lambda L, x, y: L.nn.functional.huber_loss(x, y, delta=0.5),
    "bce_with_logits": lambda L, x, y: L.nn.functional.binary_cross_entropy_with_logits(
        x, y.sigmoid()),
    "kl_div": lambda L, x, y: L.nn.functional.kl_div(x, y.softmax(-1), reduction="batchmean"),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_composed_fp32_ops_follow_torch_cpu_autocast(name, dtype):
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((3, 5, 6)).astype(np.float32) for _ in range(2))
    fn = CASES[name]
    t_dtype, e_dtype = getattr(torch, dtype), getattr(ember, dtype)
    with torch.autocast("cpu", dtype=t_dtype):
        want = fn(torch, torch.tensor(a).to(t_dtype), torch.tensor(b).to(t_dtype))
    with ember.autocast("cpu", dtype=e_dtype):
        got = fn(ember, ember.tensor(a).to(e_dtype), ember.tensor(b).to(e_dtype))
    assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1]
    np.testing.assert_allclose(got.float().numpy(), want.float().numpy(), rtol=2e-2,
                               atol=2e-2)
