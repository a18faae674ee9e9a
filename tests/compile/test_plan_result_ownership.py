"""A plan's results that live in its persistent buffers (which the next call overwrites)
are copied out; results in memory of their own are not. The host checks a result
against the buffers' byte ranges, kept between calls and renewed when a buffer is
rebound (a training step binding its parameters)."""
import numpy as np

from ember.ir import dtypes
from ember.ir.meta import TensorMeta, contiguous_strides
from ember.runtime.plan import BufferSpec, Plan, Step


def _meta(shape):
    return TensorMeta(shape, dtypes.float32, "cpu", strides=contiguous_strides(shape))


def _plan():
    """slot 0: input; slot 1: a persistent kernel output (x + 1); outputs: slot 1, then a
    view of it (slot 2), then a fresh array (slot 3)."""
    def add_one(arrays):
        np.add(arrays[0], 1, out=arrays[1])
    steps = [Step("add", add_one, (0,), (1,), kernel=True, out_specs=(BufferSpec(_meta((4,))),)),
             Step("view", lambda a: a[1:3], (1,), (2,)),
             Step("fresh", lambda a: a * 2, (1,), (3,))]
    return Plan(4, [0], (1, 2, 3), steps=steps)


def test_results_in_reused_buffers_are_copied_and_others_kept():
    plan = _plan()
    first = plan.run([np.zeros(4, np.float32)])
    kept = [r.copy() for r in first]
    plan.run([np.full(4, 5, np.float32)])          # overwrites the persistent buffer
    for got, want in zip(first, kept):
        np.testing.assert_array_equal(got, want)
    buffer = plan._fixed[1]
    assert not np.may_share_memory(first[0], buffer)
    assert not np.may_share_memory(first[1], buffer)
    assert plan._owns(buffer[2:]) and not plan._owns(first[2]) and not plan._owns(3.0)


def test_rebinding_a_buffer_renews_the_ranges():
    plan = _plan()
    plan.run([np.zeros(4, np.float32)])
    old = plan._fixed[1]
    assert plan._owns(old)
    mine = np.zeros(4, np.float32)
    plan.bind(1, mine)                             # the caller's array becomes the buffer
    assert plan._owns(mine[1:]) and not plan._owns(old)
    out = plan.run([np.ones(4, np.float32)])
    np.testing.assert_array_equal(mine, np.full(4, 2, np.float32))
    assert not np.may_share_memory(out[0], mine)   # copied out of the caller's buffer
