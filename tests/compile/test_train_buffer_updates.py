"""A compiled CPU training step updates module buffers as eager steps do: a BatchNorm
applied twice in one step updates its running statistics twice (the second update from
the first) and counts two batches; the statistics are stored in place."""
import copy

import numpy as np
import pytest

pytest.importorskip("torch")

import ember  # noqa: E402
from tests.compile.helpers import eager_step  # noqa: E402

nn = ember.nn


class BatchNormTwice(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        h = self.bn(self.conv(x)).relu()
        return self.head(self.bn(h * 2.0).mean((2, 3)))


def test_a_batchnorm_run_twice_per_step_matches_eager():
    ember.manual_seed(0)
    ref = BatchNormTwice()
    model = copy.deepcopy(ref)
    loss_fn = nn.CrossEntropyLoss()
    opt = ember.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt_ref = ember.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    step = ember.compile_train_step(model, loss_fn, opt)
    for _ in range(3):
        x, y = ember.randn(2, 3, 5, 5), ember.randint(0, 3, (2,))
        got, want = step(x, y), eager_step(ref, loss_fn, opt_ref, x, y)
        np.testing.assert_allclose(got.item(), want.item(), rtol=1e-5, atol=1e-6)
    for (name, b), c in zip(model.named_buffers(), ref.buffers()):
        np.testing.assert_allclose(b.numpy(), c.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
    assert int(model.bn.num_batches_tracked.item()) == 6
    loss, updates, buffers = step.graph.output_node.args[0]
    assert len(buffers) == 2 and all(b is None for b in buffers)     # stored in place
