"""The PyTorch DDP tutorial's shape: mp.spawn, then init_process_group in each process
(tests/distributed/test_spawn_job.py runs it; `torch` changed to `ember` is all)."""
import os
import sys

import numpy as np

import ember
import ember.distributed as dist
import ember.multiprocessing as mp
import ember.nn as nn
from ember.nn.parallel import DistributedDataParallel as DDP


def setup(rank, world_size, init):
    if init == "env":
        os.environ["MASTER_ADDR"] = "localhost"
        os.environ["MASTER_PORT"] = "12355"
        dist.init_process_group("gloo", rank=rank, world_size=world_size)
    else:
        dist.init_process_group("gloo", init_method="tcp://127.0.0.1:23456", rank=rank,
                                world_size=world_size)


def train(rank, world_size, init, out_dir):
    setup(rank, world_size, init)
    summed = ember.ones(3) * (rank + 1)
    dist.all_reduce(summed)
    ember.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    ddp = DDP(model)
    opt = ember.optim.SGD(ddp.parameters(), lr=0.1)
    data = np.random.RandomState(rank).randn(5, 4).astype("float32")
    loss = ddp(ember.tensor(data)).pow(2).sum()
    loss.backward()
    opt.step()
    weight = model[0].weight.detach().numpy()
    np.save(os.path.join(out_dir, f"rank{rank}.npy"),
            np.concatenate([summed.numpy(), weight.ravel()]))
    dist.destroy_process_group()


def fail(rank, world_size):
    dist.init_process_group("gloo", init_method="tcp://127.0.0.1:23457", rank=rank,
                            world_size=world_size)
    if rank == 1:
        raise ValueError("rank 1 gives up")
    dist.barrier()                       # rank 0 would wait here forever without the abort


if __name__ == "__main__":
    mode, out_dir = sys.argv[1], sys.argv[2]
    if mode == "fail":
        try:
            mp.spawn(fail, args=(2,), nprocs=2, join=True)
        except mp.ProcessRaisedException as err:
            print(f"raised index={err.error_index} {str(err).strip().splitlines()[-1]}")
    else:
        mp.spawn(train, args=(2, mode, out_dir), nprocs=2, join=True)
        print("spawned job done")
