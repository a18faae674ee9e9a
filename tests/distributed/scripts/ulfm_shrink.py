"""Under the launcher's --ulfm, 3 ranks: rank 2 dies; the survivors' all_reduce fails
naming the op, shrink_group([2]) gives them a 2-rank default group that works."""
import datetime
import os
import signal

import numpy as np

import ember
import ember.distributed as dist

dist.init_process_group(backend="mpi", timeout=datetime.timedelta(seconds=30))
rank = dist.get_rank()
t = ember.ones(4)
dist.all_reduce(t)
assert float(t[0]) == 3.0
if rank == 2:
    os.kill(os.getpid(), signal.SIGKILL)
try:
    for _ in range(50):                 # the failure shows within a collective or two
        dist.all_reduce(ember.ones(4))
    raise SystemExit(f"rank {rank}: all_reduce kept working with a dead rank")
except dist.DistBackendError as err:
    message = str(err)
    assert f"[Rank {rank}]" in message and "OpType=ALLREDUCE" in message, message
    assert "MPI_ERR_PROC_FAILED" in message or "MPI_ERR_REVOKED" in message, message
    print(f"rank {rank}: the collective failed: {message[:160]}", flush=True)
group = dist.shrink_group([2])
assert group is dist.group.WORLD and dist.get_world_size() == 2 and dist.get_rank() == rank
t = ember.tensor(np.full(5, rank + 1.0, np.float32))
dist.all_reduce(t)
assert np.all(t.numpy() == 3.0), t
dist.barrier()
print(f"rank {rank}: shrunk to {dist.get_world_size()} ranks, all_reduce gives "
      f"{float(t[0])}", flush=True)
dist.destroy_process_group()
print(f"rank {rank}: destroyed the group", flush=True)
