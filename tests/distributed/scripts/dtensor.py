"""DTensor layouts on a 1-d mesh of every rank, against numpy's chunks of the global
array (torch.chunk's split: the last pieces shorter or empty). Run by test_dtensor.py
through the launcher; each rank asserts."""
import numpy as np

import ember
import ember.distributed as dist
from ember.distributed._functional_collectives import all_to_all_single_autograd
from ember.distributed.tensor import (DTensor, Partial, Replicate, Shard,
                                      distribute_tensor, init_device_mesh)
from ember.distributed.tensor._utils import compute_local_shape_and_global_offset

dist.init_process_group(backend="mpi")
R, W = dist.get_rank(), dist.get_world_size()
mesh = init_device_mesh("cpu", (W,))


def chunk(array, dim):
    """This rank's torch.chunk piece of `array` along `dim`."""
    size, full = array.shape[dim], -(-array.shape[dim] // W)
    start = min(full * R, size)
    return np.take(array, range(start, min(size, start + full)), axis=dim)


for rows in (4 * W, 4 * W - 1):                      # even and uneven
    whole = np.arange(rows * 3, dtype=np.float32).reshape(rows, 3)
    sharded = distribute_tensor(ember.tensor(whole), mesh, [Shard(0)])
    assert sharded.shape == whole.shape and sharded.placements == (Shard(0),)
    np.testing.assert_array_equal(sharded.to_local().numpy(), chunk(whole, 0))
    np.testing.assert_array_equal(sharded.full_tensor().numpy(), whole)
    by_columns = sharded.redistribute(mesh, [Shard(1)])
    np.testing.assert_array_equal(by_columns.to_local().numpy(), chunk(whole, 1))
    shape, offset = compute_local_shape_and_global_offset(whole.shape, mesh, [Shard(0)])
    assert shape == chunk(whole, 0).shape, (shape, chunk(whole, 0).shape)
    assert offset == (min(-(-rows // W) * R, rows), 0), offset

partial = DTensor.from_local(ember.full((2, 2), float(R + 1)), mesh, [Partial()])
np.testing.assert_array_equal(partial.redistribute(mesh, [Replicate()]).to_local().numpy(),
                              np.full((2, 2), W * (W + 1) / 2))

# all_to_all_single_autograd: row i of each rank goes to rank i; gradients come back
rows = ember.tensor(np.arange(W, dtype=np.float32) + 10 * R, requires_grad=True)
moved = all_to_all_single_autograd(rows.reshape(W, 1), [1] * W, [1] * W, mesh.get_group())
np.testing.assert_array_equal(moved.reshape(-1).detach().numpy(),
                              [R + 10 * r for r in range(W)])
(moved.reshape(-1) * ember.arange(W, dtype=ember.float32)).sum().backward()
np.testing.assert_array_equal(rows.grad.numpy(), np.full(W, float(R)))

print(f"rank {R} dtensor OK", flush=True)
dist.destroy_process_group()
