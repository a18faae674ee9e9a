"""Deterministic mode on a real GPU: the same training step twice gives the same bits.
Marked `cuda` (skipped without a GPU); run by tests/cuda/run_on_gpu.sh in its own process."""
import os
import warnings

import numpy as np
import pytest

import ember

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1",
                                 reason="TRITON_INTERPRET=1 in this process: run "
                                        "tests/cuda/run_on_gpu.sh")]


@pytest.fixture(autouse=True)
def deterministic():
    ember.use_deterministic_algorithms(True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    ember.use_deterministic_algorithms(False)


def _train(compiled: bool):
    ember.manual_seed(0)
    model = ember.nn.Sequential(
        ember.nn.Conv2d(3, 8, 3, padding=1), ember.nn.ReLU(), ember.nn.Flatten(),
        ember.nn.Linear(8 * 8 * 8, 10)).cuda()
    opt = ember.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x = ember.randn(16, 3, 8, 8).cuda()
    y = ember.randint(0, 10, (16,)).cuda()
    index = ember.tensor([0, 1, 1, 3, 0, 0]).cuda()     # duplicates: atomics would race

    def step(x, y):
        opt.zero_grad()
        logits = model(x)
        pooled = ember.zeros(4, 10, device="cuda").index_add(0, index, logits[:6])
        loss = ember.nn.functional.cross_entropy(logits, y) + pooled.square().mean()
        loss.backward()
        opt.step()
        return loss

    run = ember.compile(step, backend="triton") if compiled else step
    losses = [run(x, y).item() for _ in range(3)]
    return losses, [p.detach().cpu().numpy() for p in model.parameters()]


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_training_step_bit_identical_on_cuda(compiled):
    first, second = _train(compiled), _train(compiled)
    assert first[0] == second[0]
    assert all(np.array_equal(a.view(np.uint32), b.view(np.uint32))
               for a, b in zip(first[1], second[1]))
