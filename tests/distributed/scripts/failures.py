"""Jobs that must fail fast and say where: `failures.py raise|hang|kill`.

raise: rank 1 raises; the launcher must end the job, naming rank 1.
hang:  rank 1 never joins an all_reduce; rank 0's 2 s timeout must name rank and op.
kill:  rank 1 dies by SIGKILL while rank 0 waits in a collective; the job must end.
monitored: rank 1 never reaches monitored_barrier; rank 0's must name rank 1.
"""
import datetime
import os
import signal
import sys
import time

import ember
import ember.distributed as dist

mode = sys.argv[1]
dist.init_process_group(backend="mpi", timeout=datetime.timedelta(seconds=2))
rank = dist.get_rank()
dist.barrier()
dist.monitored_barrier(timeout=datetime.timedelta(seconds=5))   # everyone arrives: passes
if rank == 1:
    if mode == "raise":
        raise ValueError("deliberate failure in the training script")
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(120)                  # hang: the launcher's abort ends this process
elif mode == "monitored":
    dist.monitored_barrier(timeout=datetime.timedelta(seconds=2), wait_all_ranks=True)
else:
    dist.all_reduce(ember.ones(4))
print(f"rank {rank}: unexpectedly finished", flush=True)
