"""Scheduler and serialization corners users hit: CyclicLR, PolynomialLR,
ChainedScheduler, MultiStepLR state round trips, SWA utilities, saving views that
share storage, loading with mmap, and tensors round-tripped through pickle."""
import io
import os
import pickle
import tempfile

import numpy as np
import torch
import torch.nn as nn
from torch.optim.swa_utils import SWALR, AveragedModel, get_ema_multi_avg_fn


def t(*shape, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape)
                            .astype(np.float32))


def lrs(opt, sched, steps):
    out = []
    for _ in range(steps):
        opt.step()
        sched.step()
        out.append([round(g["lr"], 10) for g in opt.param_groups])
    return out


def case_more_schedulers():
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    cyc = torch.optim.lr_scheduler.CyclicLR(opt, base_lr=0.01, max_lr=0.1, step_size_up=2,
                                            mode="triangular2")
    a = lrs(opt, cyc, 7)
    moms = opt.param_groups[0]["momentum"]
    opt2 = torch.optim.Adam([p], lr=0.1)
    poly = torch.optim.lr_scheduler.PolynomialLR(opt2, total_iters=4, power=2.0)
    b = lrs(opt2, poly, 5)
    opt3 = torch.optim.SGD([p], lr=1.0)
    chained = torch.optim.lr_scheduler.ChainedScheduler([
        torch.optim.lr_scheduler.ConstantLR(opt3, factor=0.5, total_iters=2),
        torch.optim.lr_scheduler.ExponentialLR(opt3, gamma=0.9)])
    c = lrs(opt3, chained, 4)
    opt4 = torch.optim.SGD([p], lr=1.0)
    ms = torch.optim.lr_scheduler.MultiStepLR(opt4, milestones=[2, 4], gamma=0.1)
    lrs(opt4, ms, 3)
    state = ms.state_dict()
    ms2 = torch.optim.lr_scheduler.MultiStepLR(opt4, milestones=[9], gamma=0.5)
    ms2.load_state_dict(state)
    return a, moms, b, c, sorted(state), dict(ms2.milestones), ms2.last_epoch, \
        ms.get_last_lr()


def case_swa_and_ema_models():
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -1.0]]))
        model.bias.fill_(0.5)
    swa = AveragedModel(model)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    sched = SWALR(opt, swa_lr=0.05, anneal_epochs=2, anneal_strategy="linear")
    x = t(4, 2, seed=1)
    lr_hist = []
    for _ in range(3):
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
        swa.update_parameters(model)
        ema.update_parameters(model)
        sched.step()
        lr_hist.append(opt.param_groups[0]["lr"])
    return (list(swa.module.parameters()), list(ema.module.parameters()), swa.n_averaged,
            lr_hist, sorted(swa.state_dict()))


def case_save_views_sharing_storage():
    base = torch.arange(6.0)
    views = {"a": base[:3], "b": base[2:], "full": base}
    buf = io.BytesIO()
    torch.save(views, buf)
    buf.seek(0)
    loaded = torch.load(buf)
    loaded["a"][2] = 100.0
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "t.pt")
        torch.save({"w": torch.ones(2, 2)}, path)
        mm = torch.load(path, mmap=True, weights_only=True)
    pickled = pickle.loads(pickle.dumps(torch.tensor([1.5, 2.5], requires_grad=True)))
    return (loaded["b"], loaded["full"], mm["w"], pickled, pickled.requires_grad,
            loaded["a"].storage_offset() if hasattr(loaded["a"], "storage_offset") else None)
