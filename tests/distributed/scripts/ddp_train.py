"""DDP (each option and comm hook) and ZeRO against single-process training.

Every rank also trains the reference model on the whole batch (the concatenation of
every rank's shard), so parameters can be compared after N steps on every rank. The
reference loss is the mean of the per-rank losses: what DDP's averaged gradients
descend. A failed assertion aborts the job; the test reads the exit status.
"""
import numpy as np

import ember
import ember.distributed as dist
import ember.nn as nn
import ember.nn.functional as F
from ember.distributed.algorithms.ddp_comm_hooks import default_hooks
from ember.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as powerSGD
from ember.distributed.optim import ZeroRedundancyOptimizer
from ember.nn.parallel import DistributedDataParallel as DDP

dist.init_process_group(backend="mpi")
R, W = dist.get_rank(), dist.get_world_size()
STEPS, SHARD = 3, 4


class Net(nn.Module):
    """A small CNN + MLP, with a branch only some inputs use and a layer none use."""

    def __init__(self, unused_layers: bool):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.fc1 = nn.Linear(4 * 5 * 5, 16)
        self.fc2 = nn.Linear(16, 3)
        if unused_layers:
            self.branch = nn.Linear(16, 16)
            self.never_used = nn.Linear(3, 3)

    def forward(self, x, use_branch=False):
        h = F.relu(self.conv(x)).flatten(1)
        h = ember.tanh(self.fc1(h))
        if use_branch:
            h = h + self.branch(h)
        return self.fc2(h)


def fresh_net(unused_layers=False):
    ember.manual_seed(0)
    return Net(unused_layers)


rng = np.random.default_rng(1)
X = rng.standard_normal((STEPS, W * SHARD, 2, 5, 5)).astype(np.float32)
Y = rng.standard_normal((STEPS, W * SHARD, 3)).astype(np.float32)


def shard_loss(model, step, rank, use_branch=False):
    rows = slice(rank * SHARD, (rank + 1) * SHARD)
    out = model(ember.tensor(X[step, rows]), use_branch=use_branch)
    return F.mse_loss(out, ember.tensor(Y[step, rows]))


def reference(opt_class, branch_ranks=(), return_optimizer=False, **opt_kwargs):
    model = fresh_net(bool(branch_ranks))
    opt = opt_class(model.parameters(), **opt_kwargs)
    for step in range(STEPS):
        opt.zero_grad()
        loss = sum(shard_loss(model, step, r, r in branch_ranks) for r in range(W)) / W
        loss.backward()
        opt.step()
    return (model, opt) if return_optimizer else model


def train_ddp(make_opt, branch_ranks=(), hook=None, state=None, compiled=False, **ddp_kwargs):
    model = fresh_net(bool(branch_ranks))
    if R != 0:                       # DDP must start every replica from rank 0's weights
        with ember.no_grad():
            for p in model.parameters():
                p.add_(0.5)
    ddp = DDP(model, **ddp_kwargs)
    if hook is not None:
        ddp.register_comm_hook(state, hook)
    opt = make_opt(ddp.parameters())
    run = ember.compile(ddp) if compiled else ddp
    for step in range(STEPS):
        opt.zero_grad()
        shard_loss(run, step, R, R in branch_ranks).backward()
        opt.step()
    return model


def assert_same(model, ref, what, tol):
    worst = 0.0
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        a, b = p.detach().numpy(), q.detach().numpy()
        err = float(np.abs(a - b).max())
        assert err <= tol, f"rank {R} {what}: {name} differs from single-process by {err}"
        worst = max(worst, err)
    print(f"rank {R}: {what} OK (max |diff| {worst:.1e})", flush=True)


def sgd(params):
    return ember.optim.SGD(params, lr=0.1, momentum=0.9)


ref_sgd = reference(ember.optim.SGD, lr=0.1, momentum=0.9)
assert_same(train_ddp(sgd), ref_sgd, "DDP", 2e-6)
assert_same(train_ddp(sgd, bucket_cap_mb=0.0005, gradient_as_bucket_view=True), ref_sgd,
            "DDP small buckets + gradient_as_bucket_view", 2e-6)
# ember.compile(DDP(model)): DDP's forward breaks the graph, the model is compiled
assert_same(train_ddp(sgd, compiled=True), ref_sgd, "ember.compile(DDP(model))", 2e-6)
assert_same(train_ddp(sgd, hook=default_hooks.allreduce_hook), ref_sgd, "allreduce_hook", 2e-6)
assert_same(train_ddp(sgd, hook=default_hooks.fp16_compress_hook), ref_sgd,
            "fp16_compress_hook", 5e-4)
assert_same(train_ddp(sgd, hook=default_hooks.bf16_compress_hook), ref_sgd,
            "bf16_compress_hook", 2e-3)

# PowerSGD at full rank projects on the whole column space: exact up to rounding
full = powerSGD.PowerSGDState(None, matrix_approximation_rank=1000, start_powerSGD_iter=2,
                              min_compression_rate=1e-3)
assert_same(train_ddp(sgd, hook=powerSGD.powerSGD_hook, state=full), ref_sgd,
            "powerSGD_hook at full rank", 1e-5)
# rank 1 with error feedback: a real compression, still close to exact averaging
low = powerSGD.PowerSGDState(None, matrix_approximation_rank=1, start_powerSGD_iter=2,
                             min_compression_rate=1)
assert_same(train_ddp(sgd, hook=powerSGD.powerSGD_hook, state=low), ref_sgd,
            "powerSGD_hook at rank 1", 5e-2)
rate, before, after = low.compression_stats()
assert rate > 3 and low.iter == STEPS, (rate, before, after, low.iter)

# a branch rank 0 uses and the others do not, and a layer nobody uses
branch = (0,)
net = train_ddp(sgd, branch_ranks=branch, find_unused_parameters=True)
assert_same(net, reference(ember.optim.SGD, branch, lr=0.1, momentum=0.9),
            "find_unused_parameters", 2e-6)
assert net.never_used.weight.grad is None, "a parameter no rank used keeps grad None"

# a parameter without a gradient and no find_unused_parameters: PyTorch's error, naming it
ddp = DDP(fresh_net(unused_layers=True))
shard_loss(ddp, 0, R).backward()
try:
    shard_loss(ddp, 1, R)
except dist.DistError as err:
    assert "Expected to have finished reduction in the prior iteration" in str(err), err
    assert "find_unused_parameters=True" in str(err) and "[6, 7, 8, 9]" in str(err), err
else:
    raise AssertionError("the second forward must refuse the unfinished reduction")
print(f"rank {R}: unfinished reduction error OK", flush=True)

# no_sync: the first micro-batch accumulates locally, the second averages both
model = fresh_net()
ddp = DDP(model)
opt = ember.optim.SGD(ddp.parameters(), lr=0.1)
ref = fresh_net()
ref_opt = ember.optim.SGD(ref.parameters(), lr=0.1)
opt.zero_grad()
with ddp.no_sync():
    shard_loss(ddp, 0, R).backward()
shard_loss(ddp, 1, R).backward()
opt.step()
ref_opt.zero_grad()
(sum(shard_loss(ref, 0, r) + shard_loss(ref, 1, r) for r in range(W)) / W).backward()
ref_opt.step()
assert_same(model, ref, "no_sync accumulation", 2e-6)

# join: odd ranks run out of batches one step early
def steps_of(rank):
    return STEPS - rank % 2


def reference_uneven(divide_by_initial):
    model = fresh_net()
    opt = sgd(model.parameters())
    for step in range(STEPS):
        active = [r for r in range(W) if step < steps_of(r)]
        opt.zero_grad()
        divisor = W if divide_by_initial else len(active)
        (sum(shard_loss(model, step, r) for r in active) / divisor).backward()
        opt.step()
    return model


for divide_by_initial in (True, False):
    model = fresh_net()
    ddp = DDP(model)
    opt = sgd(ddp.parameters())
    with ddp.join(divide_by_initial_world_size=divide_by_initial):
        for step in range(steps_of(R)):
            opt.zero_grad()
            shard_loss(ddp, step, R).backward()
            opt.step()
    assert_same(model, reference_uneven(divide_by_initial),
                f"join (divide_by_initial_world_size={divide_by_initial})", 2e-6)

# ZeRO: sharded Adam equals plain Adam
model = fresh_net()
ddp = DDP(model)
zero = ZeroRedundancyOptimizer(ddp.parameters(), ember.optim.Adam, lr=0.01)
for step in range(STEPS):
    zero.zero_grad()
    shard_loss(ddp, step, R).backward()
    zero.step()
owned = sum(len(g["params"]) for g in zero.optim.param_groups) if zero.optim else 0
assert owned < len(list(model.parameters())) or W == 1, "each rank must own only a shard"
ref, ref_adam = reference(ember.optim.Adam, lr=0.01, return_optimizer=True)
assert_same(model, ref, "ZeroRedundancyOptimizer(Adam)", 2e-6)

# ZeRO's consolidated state equals plain Adam's; loaded into a new ZeRO, the next step
# equals plain Adam's next step (Adam's moments and step count carry over)
zero.consolidate_state_dict(to=0)
saved = [zero.state_dict() if R == 0 else None]
dist.broadcast_object_list(saved, src=0)
want = ref_adam.state_dict()
assert sorted(saved[0]["state"]) == sorted(want["state"]), (saved[0]["state"].keys(),)
for k, st in want["state"].items():
    for name, value in st.items():
        got = np.asarray(saved[0]["state"][k][name].detach().numpy(), np.float64)
        assert np.allclose(got, np.asarray(value.detach().numpy(), np.float64), atol=1e-6), \
            (k, name)
resumed = ZeroRedundancyOptimizer(ddp.parameters(), ember.optim.Adam, lr=0.01)
resumed.load_state_dict(saved[0])
resumed.zero_grad()
shard_loss(ddp, 0, R).backward()
resumed.step()
ref_adam.zero_grad()
(sum(shard_loss(ref, 0, r) for r in range(W)) / W).backward()
ref_adam.step()
assert_same(model, ref, "ZeRO consolidate_state_dict/load_state_dict", 2e-6)

# DistributedSampler: the ranks' shards cover the dataset exactly once
sampler = dist.DistributedSampler(list(range(10)), shuffle=True, seed=3)
sampler.set_epoch(2)
mine = ember.tensor(np.array(list(sampler), np.int64))
everyone = [ember.zeros(len(sampler), dtype=ember.int64) for _ in range(W)]
dist.all_gather(everyone, mine)
seen = sorted(int(i) for t in everyone for i in t.tolist())
assert set(seen) == set(range(10)) and len(seen) == len(sampler) * W, seen
print(f"rank {R}: DistributedSampler OK", flush=True)
dist.destroy_process_group()
