"""DistributedDataParallel, Join, SyncBatchNorm, ZeroRedundancyOptimizer and
DistributedSampler: the same training program under torch (gloo) and ember (MPI),
compared on every rank. Cases re-express what PyTorch's distributed_test.py (DDP),
test_c10d_*.py (comm hooks, SyncBatchNorm) and test_zero_redundancy_optimizer.py
exercise; see suite_harness.py. Models start from the same numpy weights in both."""
from __future__ import annotations

import numpy as np

from suite_harness import case, data, main

TOL = 2e-5           # float32 matmuls may sum in another order than torch's


def set_params(x, module, seed: int):
    rng = np.random.default_rng(seed)
    with x.torch.no_grad():
        for _, p in module.named_parameters():
            p.copy_(x.tensor((rng.standard_normal(tuple(p.shape)) * 0.5).astype(np.float32)))
    return module


def mlp(x, seed=0, bn=False):
    nn = x.torch.nn
    layers = [nn.Linear(4, 6)] + ([nn.BatchNorm1d(6)] if bn else []) + \
        [nn.Tanh(), nn.Linear(6, 3)]
    return set_params(x, nn.Sequential(*layers), seed)


def batch(x, rank, step=0, n=4):
    return x.tensor(data(rank, (n, 4), seed=10 + step)), \
        x.tensor(data(rank, (n, 3), seed=20 + step))


def whole_batch(x, step=0, n=4):
    xs, ys = zip(*(batch(x, r, step, n) for r in range(x.W)))
    return x.torch.cat(xs), x.torch.cat(ys)


def loss_of(model, xb, yb):
    return ((model(xb) - yb) ** 2).mean()


def grads(module):
    return [p.grad for p in module.parameters()]


def ddp(x, module, **kwargs):
    return x.imp("nn.parallel").DistributedDataParallel(module, **kwargs)


def train(x, model, steps=3, lr=0.1, momentum=0.0, per_rank=None):
    opt = x.torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    for step in range(steps if per_rank is None else per_rank):
        opt.zero_grad()
        loss_of(model, *batch(x, x.R, step)).backward()
        opt.step()
    return list(model.parameters())


# --- DDP ----------------------------------------------------------------------------------
@case("DDP gradients equal one process on the concatenated batch", tol=TOL)
def _(x):
    model = ddp(x, mlp(x))
    loss_of(model, *batch(x, x.R)).backward()
    ref = mlp(x)
    loss_of(ref, *whole_batch(x)).backward()
    return grads(model), grads(ref)


@case("DDP 3 SGD steps with momentum", tol=TOL)
def _(x):
    return train(x, ddp(x, mlp(x)), momentum=0.9)


@case("DDP broadcasts rank 0's parameters at construction")
def _(x):
    return list(ddp(x, mlp(x, seed=x.R)).parameters())


@case("DDP no_sync accumulates locally, the next step averages", tol=TOL)
def _(x):
    model = ddp(x, mlp(x))
    with model.no_sync():
        loss_of(model, *batch(x, x.R, 0)).backward()
    local = [g.clone() for g in grads(model)]
    loss_of(model, *batch(x, x.R, 1)).backward()
    return local, grads(model)


def _branchy(x):
    nn = x.torch.nn

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.unused = nn.Linear(4, 3), nn.Linear(4, 3), nn.Linear(4, 3)

        def forward(self, inp, use_b):
            return self.a(inp) + (self.b(inp) if use_b else 0)
    return set_params(x, Branchy(), 3)


@case("DDP find_unused_parameters: a branch one rank skips, a layer none uses", tol=TOL)
def _(x):
    model = ddp(x, _branchy(x), find_unused_parameters=True)
    xb, yb = batch(x, x.R)
    loss_of(lambda i: model(i, x.R == 0), xb, yb).backward()
    return grads(model)


@case("DDP find_unused_parameters: two iterations", tol=TOL)
def _(x):
    model = ddp(x, _branchy(x), find_unused_parameters=True)
    for step in range(2):
        model.zero_grad()
        loss_of(lambda i: model(i, (x.R + step) % 2 == 0), *batch(x, x.R, step)).backward()
    return grads(model)


@case("DDP static_graph", tol=TOL)
def _(x):
    return train(x, ddp(x, mlp(x), static_graph=True))


@case("DDP gradient_as_bucket_view", tol=TOL)
def _(x):
    model = ddp(x, mlp(x), gradient_as_bucket_view=True)
    loss_of(model, *batch(x, x.R)).backward()
    g = [t.clone() for t in grads(model)]     # views of the bucket: later steps reuse it
    return g, train(x, model, steps=2)


@case("DDP bucket_cap_mb tiny (a bucket per parameter)", tol=TOL)
def _(x):
    return train(x, ddp(x, mlp(x), bucket_cap_mb=0.00001), steps=2)


@case("DDP broadcast_buffers: BatchNorm running stats follow rank 0", tol=TOL)
def _(x):
    model = ddp(x, mlp(x, bn=True))
    train(x, model, steps=2)
    return dict(model.module[1].named_buffers()), list(model.parameters())


@case("DDP broadcast_buffers=False: each rank keeps its own stats", tol=TOL)
def _(x):
    model = ddp(x, mlp(x, bn=True), broadcast_buffers=False)
    train(x, model, steps=2)
    return dict(model.module[1].named_buffers())


@case("DDP state_dict: 'module.' keys, loads into the plain model")
def _(x):
    model = ddp(x, mlp(x))
    sd = model.state_dict()
    plain = mlp(x, seed=5)
    plain.load_state_dict({k[len("module."):]: v for k, v in sd.items()})
    return list(sd.keys()), list(plain.state_dict().values())


@case("DDP eval under no_grad: no reduction, same outputs", tol=TOL)
def _(x):
    model = ddp(x, mlp(x))
    with x.torch.no_grad():
        out = model(batch(x, x.R)[0])
    return out, [p.grad for p in model.parameters()]


@case("DDP frozen layer (requires_grad=False) gets no gradient", tol=TOL)
def _(x):
    module = mlp(x)
    module[0].weight.requires_grad_(False)
    model = ddp(x, module)
    loss_of(model, *batch(x, x.R)).backward()
    return grads(model)


@case("DDP named_parameters and state_dict carry the 'module.' prefix")
def _(x):
    model = ddp(x, mlp(x, bn=True))
    return [n for n, _ in model.named_parameters()], [n for n, _ in model.named_buffers()]


@case("DDP no_sync over three micro-batches, then a step", tol=TOL)
def _(x):
    model = ddp(x, mlp(x))
    opt = x.torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(3):
        with model.no_sync():
            loss_of(model, *batch(x, x.R, step)).backward()
    loss_of(model, *batch(x, x.R, 3)).backward()
    opt.step()
    return list(model.parameters())


@case("DDP over a new_group of every rank", tol=TOL)
def _(x):
    group = x.dist.new_group(list(range(x.W)))
    return train(x, ddp(x, mlp(x), process_group=group), steps=2)


# --- communication hooks ------------------------------------------------------------------
def _hooks(x):
    return x.imp("distributed.algorithms.ddp_comm_hooks.default_hooks")


@case("DDP allreduce_hook", tol=TOL)
def _(x):
    model = ddp(x, mlp(x))
    model.register_comm_hook(None, _hooks(x).allreduce_hook)
    return train(x, model, steps=2)


@case("DDP fp16_compress_hook", tol=2e-3)
def _(x):
    model = ddp(x, mlp(x))
    model.register_comm_hook(None, _hooks(x).fp16_compress_hook)
    loss_of(model, *batch(x, x.R)).backward()
    return grads(model), [g.dtype for g in grads(model)]


@case("DDP custom comm hook (sum, then scale by the state)", tol=TOL)
def _(x):
    def hook(state, bucket):
        buf = bucket.buffer()
        fut = x.dist.all_reduce(buf, async_op=True).get_future()
        return fut.then(lambda f: f.value()[0] * state)
    model = ddp(x, mlp(x))
    model.register_comm_hook(0.25, hook)
    loss_of(model, *batch(x, x.R)).backward()
    return grads(model)


@case("DDP GradBucket API seen by a hook", tol=TOL)
def _(x):
    seen = []

    def hook(state, bucket):
        seen.append((bucket.index(), bucket.is_last(), len(bucket.parameters()),
                     [tuple(g.shape) for g in bucket.gradients()], bucket.buffer().numel()))
        return _hooks(x).allreduce_hook(None, bucket)
    model = ddp(x, mlp(x))
    model.register_comm_hook(None, hook)
    loss_of(model, *batch(x, x.R)).backward()
    return sorted(seen), grads(model)


@case("DDP register_comm_hook twice", errors="once")
def _(x):
    model = ddp(x, mlp(x))
    model.register_comm_hook(None, _hooks(x).allreduce_hook)
    model.register_comm_hook(None, _hooks(x).allreduce_hook)


# --- Join (uneven inputs) -----------------------------------------------------------------
def _join_train(x, model, steps, **join_kwargs):
    Join = x.imp("distributed.algorithms.join").Join
    opt = x.torch.optim.SGD(model.parameters(), lr=0.1)
    with Join([model], **join_kwargs):
        for step in range(steps):
            opt.zero_grad()
            loss_of(model, *batch(x, x.R, step)).backward()
            opt.step()
    return list(model.parameters())


@case("Join: rank 1 runs out a step early", tol=TOL)
def _(x):
    return _join_train(x, ddp(x, mlp(x)), 3 - x.R % 2)


@case("Join: divide_by_initial_world_size=False", tol=TOL)
def _(x):
    return _join_train(x, ddp(x, mlp(x)), 3 + x.R, divide_by_initial_world_size=False)


@case("Join: rank 0 runs out first, BatchNorm buffers", tol=TOL)
def _(x):
    model = ddp(x, mlp(x, bn=True))
    params = _join_train(x, model, 1 + x.R)
    return params, dict(model.module[1].named_buffers())


@case("DDP.join() context manager", tol=TOL)
def _(x):
    model = ddp(x, mlp(x))
    opt = x.torch.optim.SGD(model.parameters(), lr=0.1)
    with model.join():
        for step in range(2 + x.R):
            opt.zero_grad()
            loss_of(model, *batch(x, x.R, step)).backward()
            opt.step()
    return list(model.parameters())


@case("Join([ddp, ZeroRedundancyOptimizer]) with uneven inputs", tol=TOL)
def _(x):
    Join = x.imp("distributed.algorithms.join").Join
    model = ddp(x, mlp(x))
    opt = _zero(x, model, x.torch.optim.SGD, lr=0.1)
    with Join([model, opt]):
        for step in range(2 + x.R):
            opt.zero_grad()
            loss_of(model, *batch(x, x.R, step)).backward()
            opt.step()
    return list(model.parameters())


@case("Join([ddp, ZeroRedundancyOptimizer]), rank 0 trains longer, Adam", tol=TOL)
def _(x):
    Join = x.imp("distributed.algorithms.join").Join
    model = ddp(x, mlp(x))
    opt = _zero(x, model, x.torch.optim.Adam, lr=0.01)
    with Join([model, opt]):
        for step in range(3 - x.R):
            opt.zero_grad(set_to_none=False)
            loss_of(model, *batch(x, x.R, step)).backward()
            opt.step()
    return list(model.parameters())


@case("Join: throw_on_early_termination", errors="exhausted")
def _(x):
    _join_train(x, ddp(x, mlp(x)), 2 + x.R, throw_on_early_termination=True)


@case("Join: enable=False with even inputs", tol=TOL)
def _(x):
    return _join_train(x, ddp(x, mlp(x)), 2, enable=False)


# --- SyncBatchNorm ------------------------------------------------------------------------
def _bn_net(x, dims=1):
    nn = x.torch.nn
    if dims == 1:
        return set_params(x, nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU()), 4)
    return set_params(x, nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3),
                                       nn.ReLU()), 4)


def _bn_input(x, rank, dims):
    return x.tensor(data(rank, (4, 4) if dims == 1 else (2, 2, 5, 5), seed=31))


# torch's SyncBatchNorm refuses CPU tensors ("only work with GPU modules"), so its oracle
# is the equal big-batch program: plain BatchNorm over every rank's batch at once, this
# rank's rows of the output, and gradients averaged as DDP would (the loss / W).
def _sync_bn_oracle(dims):
    def oracle(x):
        kinds = [type(m).__name__ for m in
                 x.torch.nn.SyncBatchNorm.convert_sync_batchnorm(_bn_net(x, dims))]
        ref = _bn_net(x, dims)
        out = ref(x.torch.cat([_bn_input(x, r, dims) for r in range(x.W)]))
        ((out ** 2).sum() / x.W).backward()
        rows = out.shape[0] // x.W
        return kinds, out[x.R * rows:(x.R + 1) * rows], grads(ref), \
            dict(ref[1].named_buffers())
    return oracle


for _dims in (1, 2):
    def _sbn(dims=_dims):
        @case(f"SyncBatchNorm {dims}d under DDP equals BatchNorm over the whole batch",
              oracle=_sync_bn_oracle(dims), tol=1e-4)
        def _(x):
            nn = x.torch.nn
            model = nn.SyncBatchNorm.convert_sync_batchnorm(_bn_net(x, dims))
            kinds = [type(m).__name__ for m in model]
            net = ddp(x, model)
            out = net(_bn_input(x, x.R, dims))
            (out ** 2).sum().backward()
            return kinds, out, grads(net), dict(model[1].named_buffers())
    _sbn()


def _sync_bn_eval_oracle(x):
    ref = _bn_net(x)
    ref(x.torch.cat([_bn_input(x, r, 1) for r in range(x.W)]))
    ref.eval()
    with x.torch.no_grad():
        return ref(_bn_input(x, x.R, 1))


@case("SyncBatchNorm eval uses running stats (no communication)", tol=1e-5,
      oracle=_sync_bn_eval_oracle)
def _(x):
    model = x.torch.nn.SyncBatchNorm.convert_sync_batchnorm(_bn_net(x))
    net = ddp(x, model)
    net(_bn_input(x, x.R, 1))
    net.eval()
    with x.torch.no_grad():
        return net(_bn_input(x, x.R, 1))


@case("SyncBatchNorm keeps affine weights and momentum")
def _(x):
    nn = x.torch.nn
    bn = nn.BatchNorm1d(5, momentum=0.3, eps=1e-3, affine=True)
    sync = nn.SyncBatchNorm.convert_sync_batchnorm(nn.Sequential(bn))[0]
    return type(sync).__name__, sync.momentum, sync.eps, sync.num_features, \
        list(dict(sync.named_parameters()))


# --- ZeroRedundancyOptimizer -------------------------------------------------------------
def _zero(x, model, optim, **kwargs):
    Z = x.imp("distributed.optim").ZeroRedundancyOptimizer
    return Z(model.parameters(), optimizer_class=optim, **kwargs)


def _train_with(x, model, opt, steps=3):
    for step in range(steps):
        opt.zero_grad()
        loss_of(model, *batch(x, x.R, step)).backward()
        opt.step()
    return list(model.parameters())


for _optim, _kw in [("SGD", {"lr": 0.1, "momentum": 0.9}), ("Adam", {"lr": 0.01}),
                    ("AdamW", {"lr": 0.01, "weight_decay": 0.1})]:
    for _view in (False, True):
        def _z(optim=_optim, kw=_kw, view=_view):
            @case(f"ZeroRedundancyOptimizer({optim}) parameters_as_bucket_view={view} "
                  "equals the plain optimizer", tol=TOL)
            def _(x):
                model = ddp(x, mlp(x))
                opt = _zero(x, model, getattr(x.torch.optim, optim),
                            parameters_as_bucket_view=view, **kw)
                params = _train_with(x, model, opt)
                ref = ddp(x, mlp(x))
                return params, _train_with(x, ref, getattr(x.torch.optim, optim)(
                    ref.parameters(), **kw))
        _z()


@case("ZeroRedundancyOptimizer consolidate_state_dict to rank 0", tol=TOL)
def _(x):
    model = ddp(x, mlp(x))
    opt = _zero(x, model, x.torch.optim.Adam, lr=0.01)
    _train_with(x, model, opt, steps=2)
    opt.consolidate_state_dict(to=0)
    if x.R != 0:
        return None
    sd = opt.state_dict()
    return {k: dict(v) for k, v in sorted(sd["state"].items())}, \
        [{k: v for k, v in g.items() if k != "params"} | {"n": len(g["params"])}
         for g in sd["param_groups"]]


@case("ZeroRedundancyOptimizer state_dict before consolidating", errors="consolidate")
def _(x):
    model = ddp(x, mlp(x))
    opt = _zero(x, model, x.torch.optim.SGD, lr=0.1)
    opt.state_dict()


# --- DistributedSampler -------------------------------------------------------------------
def _sampler(x, **kwargs):
    return x.imp("utils.data.distributed").DistributedSampler(list(range(kwargs.pop("n"))),
                                                              **kwargs)


for _n, _reps, _shuffle, _drop, _seed in [
        (10, 3, True, False, 0), (10, 3, True, True, 0), (10, 3, False, False, 0),
        (10, 3, False, True, 0), (7, 2, True, False, 5), (12, 4, True, False, 1),
        (5, 8, True, False, 0), (5, 8, False, True, 0), (100, 3, True, True, 42)]:
    def _ds(n=_n, reps=_reps, shuffle=_shuffle, drop=_drop, seed=_seed):
        @case(f"DistributedSampler n={n} replicas={reps} shuffle={shuffle} "
              f"drop_last={drop} seed={seed}")
        def _(x):
            out = []
            for rank in range(reps):
                s = _sampler(x, n=n, num_replicas=reps, rank=rank, shuffle=shuffle,
                             drop_last=drop, seed=seed)
                epochs = []
                for epoch in (0, 1, 3):
                    s.set_epoch(epoch)
                    epochs.append(list(s))
                out.append((len(s), epochs))
            return out
    _ds()


@case("DistributedSampler takes rank and replicas from the group")
def _(x):
    s = _sampler(x, n=9)
    return s.num_replicas, s.rank, list(s)


@case("DistributedSampler rank out of range", errors="rank")
def _(x):
    _sampler(x, n=9, num_replicas=2, rank=2)


@case("DistributedSampler feeding a DataLoader")
def _(x):
    ds = x.imp("utils.data").TensorDataset(x.torch.arange(10.0))
    s = x.imp("utils.data.distributed").DistributedSampler(ds, seed=3)
    s.set_epoch(2)
    return [b[0] for b in x.imp("utils.data").DataLoader(ds, batch_size=2, sampler=s)]


if __name__ == "__main__":
    main()
